#!/usr/bin/env bash
# README's tar, rsync, restic and borg recipes, run as they are written
# (the indented blocks after the lines naming this script), over a real
# mount while every
# file is being rewritten through MNT (test/mount/backup_states.py): each command
# must exit 0, and each restored file must be exactly a state its file had,
# as it was when the tool opened it (a torn copy is seen: chunks of two
# versions in an order the writer never wrote, or of three versions).
# In the recipe, MNT, /backup/, /restore/ and /etc/backup/ are replaced by
# fresh temporary paths; the tools' caches and borg's security directory
# go there too (HOME, XDG_CACHE_HOME, BORG_BASE_DIR), nothing in /root.
# SFS_BACKUP_TOOLS_DIR=src backs up SRC itself instead of MNT while the
# files are rewritten (a control: copies tear there, the test fails).
# SFS_BACKUP_TOOLS_WRITER=src rewrites the files in SRC directly, behind
# the mount's back (oob=detect: snapshot reads fail with EIO, the tools
# report it and the test fails; what README says they do).
# Needs root, /dev/fuse, restic and borg; skipped (77) otherwise.
# Usage: backup_tools.sh README.md backup_states.py
set -u
readme=$1 states=$2
bin=${STABLEFS_BIN:-./fs/stablefs}
fail=0

skip() { echo "1..0 # SKIP $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "mounts: needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
for tool in restic borg fusermount3 python3; do
	command -v $tool >/dev/null || skip "no $tool"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sfs-backup-XXXXXX") || exit 1
src=$tmp/src mnt=$tmp/mnt daemon= writer=
cleanup() {
	[ -n "$writer" ] && kill "$writer" 2>/dev/null && wait "$writer"
	grep -q " $mnt fuse.stablefs " /proc/self/mounts && fusermount3 -u -z "$mnt"
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon"
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$src" "$mnt" "$tmp/backup" "$tmp/restore" "$tmp/etc" "$tmp/home"
echo "restic passphrase of the test" >"$tmp/etc/restic.pass"
echo "borg passphrase of the test" >"$tmp/etc/borg.pass"
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/home/.cache BORG_BASE_DIR=$tmp/home

# --- the recipe, from README -----------------------------------------------
target=$mnt
[ "${SFS_BACKUP_TOOLS_DIR:-mnt}" = src ] && target=$src
python3 - "$readme" "$target" "$tmp" >"$tmp/recipe.sh" <<'EOF' || exit 1
import re, shlex, sys
readme, target, tmp = sys.argv[1:]
lines = open(readme).read().split("\n")
# Every indented block that follows a paragraph naming this script.
block = []
for start in (i for i, l in enumerate(lines) if "test/mount/backup_tools.sh" in l):
    i = start + 1
    while i < len(lines) and not lines[i].startswith("    "):
        i += 1
    while i < len(lines) and (lines[i].startswith("    ") or lines[i] == ""):
        block.append(lines[i][4:])
        i += 1
n = 0
commands = open(tmp + "/commands", "w")
for line in block:
    if not line.strip():
        continue
    line = line.replace("/etc/backup/", tmp + "/etc/")
    line = re.sub(r"(?<![\w/])/backup/", tmp + "/backup/", line)
    line = re.sub(r"(?<![\w/])/restore/", tmp + "/restore/", line)
    line = re.sub(r"\bMNT\b", shlex.quote(target), line)
    n += 1
    # Each command's status, by its number ($? of the line before).
    print("echo %s >&2" % shlex.quote("+ " + line))
    print(line)
    print("echo \"%d $?\" >>%s" % (n, shlex.quote(tmp + "/status")))
    print(line, file=commands)
EOF
ncmd=$(grep -c '/status$' "$tmp/recipe.sh")
[ "$ncmd" -ge 9 ] || { echo "not ok: found $ncmd commands after test/mount/backup_tools.sh in $readme"; exit 1; }
for want in "tar .*-cf " "rsync -aHAX " "restic .* backup " "borg create "; do
	grep -q -- "$want" "$tmp/recipe.sh" ||
		{ echo "not ok: the recipe lacks '$want'"; exit 1; }
done

# --- mount, files, writer ---------------------------------------------------
python3 "$states" init "$src" || exit 1
"$bin" -f "$src" "$mnt" &
daemon=$!
for _ in $(seq 100); do
	grep -q " $mnt fuse.stablefs " /proc/self/mounts && break
	sleep 0.1
done
grep -q " $mnt fuse.stablefs " /proc/self/mounts || { echo "not ok: no mount"; exit 1; }
wdir=$mnt
[ "${SFS_BACKUP_TOOLS_WRITER:-mnt}" = src ] && wdir=$src
python3 "$states" write "$wdir" "$tmp/journal" &
writer=$!
sleep 1	# a few versions before the tools start

# --- run it -----------------------------------------------------------------
(cd "$tmp" && bash "$tmp/recipe.sh") >"$tmp/recipe.log" 2>&1
kill "$writer" && wait "$writer"
writer=
sed 's/^/# /' "$tmp/recipe.log" | grep -vE '^# (ok|open|remaining|Enter|Your|Make sure|See |Use |IMPORTANT|If you)' | head -60
while read -r n rc; do
	cmd=$(sed -n "${n}p" "$tmp/commands")
	if [ "$rc" -eq 0 ]; then
		echo "ok: exit 0: $cmd"
	else
		echo "not ok: exit $rc: $cmd"
		fail=1
	fi
done <"$tmp/status"
[ "$(wc -l <"$tmp/status")" -eq "$ncmd" ] ||
	{ echo "not ok: $(wc -l <"$tmp/status") of $ncmd commands ran"; fail=1; }
echo "# writer journal: $(wc -l <"$tmp/journal") versions started"

# --- what came back ---------------------------------------------------------
restored=0
for dir in "$tmp/restore/tar" "$tmp/backup/data" \
	   "$tmp/restore/restic$target" "$tmp/restore/borg$target"; do
	if [ -d "$dir" ]; then
		echo "# restored in ${dir#"$tmp"/}"
		python3 "$states" check "$dir" "$tmp/journal" || fail=1
		restored=$((restored + 1))
	else
		echo "not ok: nothing restored in $dir"
		fail=1
	fi
done
[ "$restored" -eq 4 ] || fail=1
exit $fail
