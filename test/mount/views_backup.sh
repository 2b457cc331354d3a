#!/usr/bin/env bash
# Tree views (G7, S10): a consistent backup of a tree that keeps changing.
# A tree of SFS_VIEWS_FILES files (default 10,000) in a few hundred
# directories, with xattrs, symlinks and hard links (views_tree.py init),
# is mounted; SFS_VIEWS_WRITERS writers (default 2) change it through MNT
# all the time (rewrite, truncate, append, create, delete, rename files and
# directories, chmod, utime, xattrs, symlinks, links). The writers are
# paused (each acknowledges), a view is taken and SRC is copied with
# cp -a as the model of the instant, and the writers resume. Then, while
# they keep going: the view itself, and what tar, rsync -aHAX and restic
# back up from it and restore, must equal the model: names, types, bytes,
# modes, owners, mtimes, user.* xattrs, symlink targets, hard links
# (views_tree.py compare says what differs). Every tool must exit 0 without
# a "changed"/"vanished" warning. Then the view is deleted: no longer
# listed, its directory gone. The writers must have met no error and the
# daemon must exit 0 at the unmount.
# SFS_VIEWS_SRC_WRITERS more writers (default 1) change files' bytes in
# SRC directly (rewrite, truncate, append: what the kernel holds before it
# lands, K9), each in a part of the tree of its own; SRC is then an ext4
# loop device and the mount has -o oob=preserve, so the view keeps those
# files as they were too. Without loop devices or pre-content events they
# are left out (said so).
# SFS_VIEWS_TARGET=mnt backs up MNT itself instead of a view (a control:
# the copies then mix instants, and the test must fail; that is
# views_backup_control.sh). SFS_VIEWS_TOOLS picks among the tools.
# Needs root and /dev/fuse; skipped (77) without them or without all of
# tar, rsync and restic (a missing one is skipped alone).
# Usage: views_backup.sh views_tree.py
set -u
tree=$1
bin=${STABLEFS_BIN:-./fs/stablefs}
view_bin=${SFS_VIEW_BIN:-./test/sfs_view}
files=${SFS_VIEWS_FILES:-10000}
nwriters=${SFS_VIEWS_WRITERS:-2}
nsrc=${SFS_VIEWS_SRC_WRITERS:-1}
name=backup
target=${SFS_VIEWS_TARGET:-view}
warnings='changed as we read|shrank|removed before|vanished|could not be read|no such file|^error|warning'
fail=0

skip() { echo "1..0 # SKIP $*"; exit 77; }
notok() { echo "not ok: $*"; fail=1; }
[ "$(id -u)" -eq 0 ] || skip "mounts: needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
for tool in fusermount3 python3 cp; do
	command -v $tool >/dev/null || skip "no $tool"
done
tools=
for tool in ${SFS_VIEWS_TOOLS:-tar rsync restic}; do
	if command -v $tool >/dev/null; then
		tools="$tools $tool"
	else
		echo "# SKIP $tool: not installed"
	fi
done
[ -n "$tools" ] || skip "none of tar, rsync, restic"
[ -x "$view_bin" ] || { echo "not ok: no $view_bin (SFS_VIEW_BIN)"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sfs-views-XXXXXX") || exit 1
src=$tmp/src mnt=$tmp/mnt ctl=$tmp/ctl restore=$tmp/restore
daemon= writers= running=
# Stop pid (TERM, KILL after 20 s: a process stuck in a request of a hung
# daemon only dies of SIGKILL); false if it had to be killed.
stop() {
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 200); do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 1
}
cleanup() {
	rm -f "$ctl/pause"
	[ -n "$running" ] && stop "$running"
	for w in $writers; do
		stop "$w"
	done
	grep -q " $mnt fuse.stablefs " /proc/self/mounts && fusermount3 -u -z "$mnt"
	[ -n "$daemon" ] && stop "$daemon"
	grep -q " $src " /proc/self/mounts && umount -l "$src"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
mkdir -p "$src" "$mnt" "$ctl" "$restore" "$tmp/backup" "$tmp/home"
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/home/.cache
export RESTIC_REPOSITORY=$tmp/backup/restic RESTIC_PASSWORD_FILE=$tmp/restic.pass
echo "restic passphrase of the test" >"$RESTIC_PASSWORD_FILE"

# Run "$@" as step $1, its output in $tmp/$1.log (shown, # prefixed): it
# must exit 0 within SFS_VIEWS_STEP_TIMEOUT seconds (default 300) and
# warn of no file changed or gone while it read.
step() {
	local label=$1 start=$SECONDS rc limit=${SFS_VIEWS_STEP_TIMEOUT:-300}
	shift
	# In the background: a signal (meson's timeout) ends the wait at once.
	timeout "$limit" "$@" >"$tmp/$label.log" 2>&1 &
	running=$!
	wait $running
	rc=$?
	running=
	sed "s/^/# $label: /" "$tmp/$label.log" | head -20
	if [ $rc -eq 124 ]; then
		notok "$label: still running after $limit s, stopped: $*"
		return 1
	fi
	if [ $rc -ne 0 ]; then
		notok "$label: exit $rc: $*"
		return 1
	fi
	if grep -Eiq "$warnings" "$tmp/$label.log"; then
		notok "$label: warned that files changed while it read: $(grep -Ei "$warnings" "$tmp/$label.log" | head -3)"
		return 1
	fi
	echo "ok: $label ($((SECONDS - start)) s): $*"
}

# The tree at $2 must equal the model (views_tree.py compare says how not).
same_as_model() {
	local label=$1 dir=$2 rc
	timeout "${SFS_VIEWS_STEP_TIMEOUT:-300}" python3 "$tree" compare "$tmp/model" "$dir" "$label" &
	running=$!
	wait $running
	rc=$?
	running=
	[ $rc -eq 124 ] && notok "$label: comparing with the model took too long"
	[ $rc -eq 0 ] || fail=1
}

# --- tree, mount, writers ---------------------------------------------------
# Writers in SRC need a filesystem of its own for the watch (an ext4 loop
# device: the mark covers a whole filesystem).
opts=
if [ "$nsrc" -gt 0 ]; then
	if command -v mkfs.ext4 >/dev/null && truncate -s 4G "$tmp/src.img" &&
	   mkfs.ext4 -q -F "$tmp/src.img" && mount -o loop "$tmp/src.img" "$src"; then
		opts="-o oob=preserve"
	else
		echo "# no ext4 loop device for SRC: no writers in SRC"
		nsrc=0
	fi
fi
python3 "$tree" init "$src" "$files" || exit 1
"$bin" -f $opts "$src" "$mnt" 2>"$tmp/daemon.log" &
daemon=$!
for _ in $(seq 100); do
	grep -q " $mnt fuse.stablefs " /proc/self/mounts && break
	sleep 0.1
done
grep -q " $mnt fuse.stablefs " /proc/self/mounts || { echo "not ok: no mount"; cat "$tmp/daemon.log"; exit 1; }
if [ "$nsrc" -gt 0 ] && grep -q "no pre-content watch" "$tmp/daemon.log"; then
	echo "# no pre-content events on this kernel: no writers in SRC"
	nsrc=0
fi
total=$((nwriters + nsrc))
for i in $(seq 0 $((total - 1))); do
	if [ "$i" -lt "$nwriters" ]; then
		python3 "$tree" write "$mnt" "$ctl" "$i" "$total" >"$tmp/writer.$i.log" 2>&1 &
	else
		python3 "$tree" write "$src" "$ctl" "$i" "$total" --data >"$tmp/writer.$i.log" 2>&1 &
	fi
	writers="$writers $!"
done
echo "# $nwriters writers through MNT, $nsrc in SRC directly (file bytes)"
sleep 2	# the tree changes before the instant too

# --- the instant: writers paused, view taken, SRC copied as the model --------
touch "$ctl/pause"
paused=0
for _ in $(seq 600); do
	paused=$(find "$ctl" -name 'paused.*' | wc -l)
	[ "$paused" -eq "$total" ] && break
	sleep 0.05
done
if [ "$paused" -ne "$total" ]; then
	echo "not ok: only $paused of $total writers paused within 30 s"
	cat "$tmp"/writer.*.log
	exit 1
fi
if [ "$target" = view ]; then
	out=$("$view_bin" create "$mnt" "$name" 2>&1) ||
		{ echo "not ok: no view was taken: $out"; exit 1; }
fi
start=$SECONDS
cp -a --preserve=all "$src" "$tmp/model" || { echo "not ok: cp -a of SRC"; exit 1; }
rm "$ctl/pause"
echo "# writers paused for the view and the model ($((SECONDS - start)) s);" \
     "the daemon has $(ls /proc/$daemon/fd | wc -l) fds open"
view=$mnt/.snapshots/$name
[ "$target" = mnt ] && view=$mnt && echo "# control: backing up MNT, not a view"
[ -d "$view" ] || { echo "not ok: no directory $view after taking the view"; exit 1; }

# --- the view and its backups, while the writers go on -----------------------
same_as_model "the view" "$view"
for tool in $tools; do
	case $tool in
	tar)
		mkdir "$restore/tar"
		step tar-create tar --format=posix --numeric-owner --xattrs \
			--xattrs-include='user.*' -cf "$tmp/backup/view.tar" -C "$view" . &&
		step tar-extract tar --numeric-owner --xattrs --xattrs-include='user.*' \
			-xpf "$tmp/backup/view.tar" -C "$restore/tar" &&
		same_as_model "tar's restore" "$restore/tar"
		;;
	rsync)
		step rsync rsync -aHAX --numeric-ids "$view/" "$restore/rsync/" &&
		same_as_model "rsync -aHAX's copy" "$restore/rsync"
		;;
	restic)
		step restic-init restic init &&
		step restic-backup restic backup "$view" &&
		step restic-restore restic restore latest --target "$restore/restic" &&
		same_as_model "restic's restore" "$restore/restic$view"
		;;
	esac
done

echo "# backups done: the daemon has $(ls /proc/$daemon/fd | wc -l) fds open" \
     "(limit $(awk '/open files/ {print $4}' /proc/$daemon/limits))"

# --- delete the view -----------------------------------------------------------
if [ "$target" = mnt ]; then
	:
elif out=$("$view_bin" delete "$mnt" "$name" 2>&1); then
	python3 "$tree" views "$mnt" --empty || fail=1
	[ -e "$view" ] && notok "$view still exists after deleting the view"
	left=$(ls -A "$mnt/.snapshots" 2>&1)
	[ -z "$left" ] && echo "ok: the view is deleted, $mnt/.snapshots is empty" ||
		notok "$mnt/.snapshots after deleting the view: $left"
else
	notok "deleting the view: $out"
fi

# --- writers, daemon -------------------------------------------------------------
for w in $writers; do
	kill "$w" 2>/dev/null
done
for w in $writers; do
	stop "$w" || notok "a writer did not stop within 20 s (killed)"
done
writers=
sed 's/^/# /' "$tmp"/writer.*.log | grep -v '^# not ok'
grep -h '^not ok' "$tmp"/writer.*.log && fail=1
timeout 20 python3 -c 'import os, sys; print("# stats: " + os.getxattr(sys.argv[1], "user.stablefs.stats").decode())' "$mnt"
fusermount3 -u "$mnt" || notok "fusermount3 -u $mnt"
rc=
for _ in $(seq 100); do
	kill -0 "$daemon" 2>/dev/null || { wait "$daemon"; rc=$?; break; }
	sleep 0.1
done
[ -n "$rc" ] || { notok "the daemon did not exit within 10 s of the unmount"; exit 1; }
daemon=
[ $rc -eq 0 ] && echo "ok: the daemon exited 0" || notok "the daemon exited $rc"
tail -20 "$tmp/daemon.log" | sed 's/^/# daemon: /'
exit $fail
