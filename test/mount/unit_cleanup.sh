#!/usr/bin/env bash
# stablefs@.service's ExecStopPost= (systemd/stablefs@.service.in), run as
# systemd would after the main process ended ("$$" passed as "$", %f the
# mount point): after a crash (kill -9) it detaches the dead mount, so that
# Restart=on-failure can mount again, and it leaves alone anything else
# mounted on MNT (a tmpfs) and a MNT with nothing mounted.
# Needs root and /dev/fuse; skipped (77) otherwise.
# Usage: unit_cleanup.sh stablefs@.service.in
set -u
unit=$1
bin=${STABLEFS_BIN:-./fs/stablefs}
fail=0

skip() { echo "1..0 # SKIP $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "mounts: needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v findmnt >/dev/null || skip "no findmnt"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sfs-unit-XXXXXX") || exit 1
daemon=
cleanup() {
	[ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	for m in "$tmp/mnt" "$tmp/other"; do
		findmnt -n -M "$m" >/dev/null && umount -l "$m"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/src" "$tmp/mnt" "$tmp/other"

# The line as systemd runs it: "-" (failure ignored) dropped, "$$" is "$".
line=$(sed -n 's/^ExecStopPost=-//p' "$unit")
[ -n "$line" ] || { echo "not ok: no ExecStopPost=- in $unit"; exit 1; }
stop_post() {	# MNT
	local cmd=${line//\$\$/\$}
	cmd=${cmd//%f/$(printf '%q' "$1")}
	eval "$cmd"
}
mounted() { findmnt -n -M "$1" >/dev/null; }

# A crashed daemon: its mount stays, dead.
"$bin" -f "$tmp/src" "$tmp/mnt" 2>/dev/null &
daemon=$!
for _ in $(seq 100); do
	findmnt -n -t fuse.stablefs -M "$tmp/mnt" >/dev/null && break
	sleep 0.1
done
findmnt -n -t fuse.stablefs -M "$tmp/mnt" >/dev/null || { echo "not ok: no mount"; exit 1; }
kill -9 "$daemon" && wait "$daemon" 2>/dev/null
daemon=
if ls "$tmp/mnt" >/dev/null 2>&1; then
	echo "not ok: the mount still answers after kill -9"
	fail=1
fi
stop_post "$tmp/mnt"
mounted "$tmp/mnt" && { echo "not ok: the dead mount is still there"; fail=1; } ||
	echo "ok: the dead mount is detached"
# Mountable again, as a restart would.
"$bin" "$tmp/src" "$tmp/mnt" && echo "ok: MNT mounts again" ||
	{ echo "not ok: MNT does not mount again"; fail=1; }
fusermount3 -u "$tmp/mnt"

# Not ours: left alone.
mount -t tmpfs -o size=1m sfs-unit-test "$tmp/other" || { echo "not ok: tmpfs"; exit 1; }
stop_post "$tmp/other"
mounted "$tmp/other" && echo "ok: a tmpfs on MNT is left mounted" ||
	{ echo "not ok: ExecStopPost unmounted a tmpfs"; fail=1; }
umount "$tmp/other"
# Nothing mounted: nothing done, a failure status (ignored by "-").
if stop_post "$tmp/other"; then
	echo "not ok: ExecStopPost succeeded with nothing to detach"
	fail=1
else
	echo "ok: nothing mounted, nothing done"
fi
exit $fail
