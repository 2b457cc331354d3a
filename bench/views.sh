#!/usr/bin/env bash
# What tree views (SFS_IOC_VIEW_CREATE, MNT/.snapshots/NAME) cost, in one
# run: every configuration of a section is measured once per round, in an
# order that rotates round by round, each on a fresh mount, so drift on the
# machine hits all alike; figures are read against a baseline of the same
# run. A benchmark, not a test: it never fails on a slow number, only on a
# broken setup. See doc/performance.md, "Tree views".
#
#   bench/views.sh [options]           (as root: loop device, mounts)
#     --quick            2 rounds, fewer files, trees of 10, 10,000, 100,000
#     --runs N           rounds (default 5; median, min, max over them)
#     --only LIST        sections, comma list of changes,take,dir (default all)
#     --stablefs BIN     use this binary instead of building build/fs/stablefs
#     --workdir DIR      where the loop image and the trees go (default
#                        /dev/shm if it has 6 GiB free, else /tmp)
#     --out DIR          results directory (default results/views-<timestamp>)
#     --note TEXT        free text stored with the results
#
# Sections:
#   changes  changes through MNT to SRC on an ext4 loop (1 GiB, on the work
#            dir) with 0, 1 and 10 views taken after the files exist and
#            before the timed loop (a fresh mount and fresh files each
#            time); also 1 view with -o oob=ignore (no watch to arm at a
#            capture) and raw SRC (no mount). Ops (bench/views.c):
#            a) 4 KiB pwrite in place, offsets cycling over a 64 MiB file,
#               after one untimed pass (steady state),
#            b) first touch: open(O_RDWR)+pwrite 4 KiB+close of N different
#               existing files (each one capture),
#            c) create+write 100 B+close of new files in one directory,
#            d) rename of N different files within a directory,
#            e) 1 MiB pwrites rewriting a 64 MiB file in place, one pass
#               (each range preserved once for the views), and a 2nd pass.
#            a-d: the best of 10 batches (us/op); e: the pass's mean. Also
#            the daemon's CPU time per op (/proc/PID/stat, all batches).
#   take     the SFS_IOC_VIEW_CREATE ioctl alone, on a fresh mount of a tree
#            of 10, 100,000 and 1,000,000 empty files in directories of
#            1,000 (our own tmpfs), and of the 100,000 tree after a walk of
#            it through MNT (every inode cached in the daemon): REPS views
#            taken and deleted in turn, median of the takes per round.
#   dir      the first change after a view in a directory of 1,000 and of
#            100,000 entries (it reads the entry list once): take a view,
#            time create+close of a new file, then of another (second
#            change), delete the view; REPS times, medians.
#
# Output: the table on stdout; DIR/table.txt, DIR/raw.tsv (every run),
# DIR/info.txt, DIR/log (daemon stderr, stats after each measurement).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
top="$(dirname "$here")"
runs=5 quick=0 only=all sfs_bin="" base="" out="" note=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 runs=2 ;;
	--runs) runs=$2; shift ;;
	--only) only=$2; shift ;;
	--stablefs) sfs_bin=$(realpath "$2"); shift ;;
	--workdir) base=$2; shift ;;
	--out) out=$2; shift ;;
	--note) note=$2; shift ;;
	-h|--help) usage 0 ;;
	*) echo "views: unknown option $1" >&2; usage 2 >&2 ;;
	esac
	shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "views: --runs needs a positive integer" >&2; exit 2; }
want() { [ "$only" = all ] || [[ ",$only," == *",$1,"* ]]; }
say() { printf 'views: %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root (loop device, mounts)"; exit 1; }
for t in cc fusermount3 mountpoint losetup mkfs.ext4 python3; do
	command -v "$t" >/dev/null || { say "$t not found"; exit 1; }
done

if [ -z "$sfs_bin" ]; then
	say "building stablefs (ninja -C build)"
	{ [ -f "$top/build/build.ninja" ] || meson setup "$top/build" >&2; } &&
		ninja -C "$top/build" >&2 ||
		{ say "building stablefs failed; --stablefs BIN benchmarks an existing binary"; exit 1; }
	sfs_bin="$top/build/fs/stablefs"
fi
if [ -z "$base" ]; then
	base=/tmp
	if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
	   [ "$(df --output=avail -k /dev/shm | tail -1)" -gt $((6 << 20)) ]; then base=/dev/shm; fi
fi
if [ "$quick" = 1 ]; then
	nfiles=500 trees="10 10000 100000" dirs="1000 10000" reps=50 dreps=5
else
	nfiles=2000 trees="10 100000 1000000" dirs="1000 100000" reps=200 dreps=20
fi
work=$(mktemp -d "$base/sfs-vbench-XXXXXX")
cp "$sfs_bin" "$work/stablefs"	# one binary for the whole run
sfs_bin_given=$sfs_bin sfs="$work/stablefs"
[ -n "$out" ] || out="$top/results/views-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"; out=$(realpath "$out")
log="$out/log"; : >"$log"

# ------------------------------------------------------------ cleanup ----
declare -A pid_of=()		# FUSE mount point -> daemon pid (our child, -f)
declare -a fsmnts=() loops=()	# filesystems we mounted, loop devices we attached
cleanup() {
	local m p
	set +e
	for m in "${!pid_of[@]}"; do fusermount3 -u -z "$m" 2>/dev/null; done
	for m in "${!pid_of[@]}"; do
		p=${pid_of[$m]}
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for m in "${fsmnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
	for m in "${loops[@]}"; do losetup -d "$m" 2>/dev/null; done
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "work dir $work, results $out"
cc -O2 -Wall -Wextra -D_GNU_SOURCE -I"$top/include" -o "$work/views" "$here/views.c" 2>>"$log"
tool="$work/views"

# mount_sfs SRC MNT [OPTS]: the daemon in the foreground, our child;
# returns once it answers.
mount_sfs() {
	local src=$1 mnt=$2 opts=${3:-} p
	mkdir -p "$mnt"
	echo "== mount ${opts:+-o $opts }$src" >>"$log"
	"$sfs" -f ${opts:+-o "$opts"} "$src" "$mnt" 2>>"$log" &
	p=$!
	pid_of[$mnt]=$p
	for _ in $(seq 200); do
		mountpoint -q "$mnt" && break
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	mountpoint -q "$mnt" && "$sfs" stats "$mnt" >/dev/null 2>>"$log" ||
		{ say "mounting stablefs on $mnt failed (see $log)"; exit 1; }
}
umount_sfs() {
	local mnt=$1 p=${pid_of[$1]}
	"$sfs" stats "$mnt" 2>/dev/null |
		grep -E '^ *(views|view_captures|view_eio|view_capture_failures|bytes_preserved|oob_changes|oob_ignore_marks|inodes) ' |
		tr -s ' ' | paste -sd' ' >>"$log" || true
	fusermount3 -u "$mnt" 2>>"$log" || fusermount3 -u -z "$mnt"
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill "$p" 2>/dev/null || true
	wait "$p" || say "the daemon of $mnt exited with status $? (see $log)"
	unset "pid_of[$mnt]"
}

# ------------------------------------------------------------ records ----
# raw.tsv: section id config run value
raw="$out/raw.tsv"; : >"$raw"
rec() {	# section config run: "id value" lines on stdin
	local id v
	while read -r id v; do
		if [[ $v =~ ^[0-9.]+$ ]]; then printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$id" "$2" "$3" "$v" >>"$raw"
		else say "$1 $id $2 run $3: no value (see $log)"; fi
	done
}
rotate() {	# run word...: the words rotated by run
	local r=$1; shift
	local a=("$@") k=$((r % $#))
	echo "${a[@]:k}" "${a[@]:0:k}"
}

# ------------------------------------------------------------ setup ------
if want changes; then
	truncate -s 1G "$work/e.img"
	mkfs.ext4 -q -F "$work/e.img" >>"$log" 2>&1
	dev=$(losetup -f --show "$work/e.img"); loops+=("$dev")
	mkdir -p "$work/e"; mount "$dev" "$work/e"; fsmnts+=("$work/e")
	mkdir "$work/e/src" "$work/e/src/w"
	"$tool" fill "$work/e/src/w/w4k" 64
	"$tool" fill "$work/e/src/w/w1m" 64
fi
if want take || want dir; then
	say "making the trees on tmpfs"
	mkdir -p "$work/tt"
	mount -t tmpfs -o size=8g,nr_inodes=0 sfs-vbench "$work/tt"; fsmnts+=("$work/tt")
	if want take; then
		for n in $trees; do "$tool" tree "$work/tt/s$n" "$n" 1000; done
	fi
	if want dir; then
		mkdir "$work/tt/dirs"
		for n in $dirs; do "$tool" mkfiles "$work/tt/dirs/d$n" "$n" 0; done
	fi
fi

# one_changes CONFIG RUN: fresh files, a fresh mount, views, the ops.
one_changes() {
	local c=$1 r=$2 src="$work/e/src" mnt="$work/mnt" opts="" k=0 dir pid=0
	rm -rf "$src/w/t" "$src/w/r" "$src/w/c"
	"$tool" mkfiles "$src/w/t" "$nfiles" 4096
	"$tool" mkfiles "$src/w/r" $((nfiles + 1)) 0
	sync -f "$src"
	case $c in
	raw) dir="$src/w" ;;
	v0) k=0 ;;
	v1) k=1 ;;
	v10) k=10 ;;
	v1ign) k=1 opts=oob=ignore ;;
	esac
	if [ "$c" != raw ]; then
		mount_sfs "$src" "$mnt" "$opts"
		dir="$mnt/w" pid=${pid_of[$mnt]}
		[ "$k" = 0 ] || "$tool" take "$mnt" "$k" 2>>"$log"
	fi
	echo "== changes $c run $r" >>"$log"
	"$tool" changes "$dir" "$pid" 2>>"$log" | rec changes "$c" "$r" ||
		say "changes $c run $r: the helper failed (see $log)"
	[ "$c" = raw ] || umount_sfs "$mnt"
}

# one_take TREE RUN: a fresh mount of the tree, REPS views taken and deleted.
one_take() {
	local c=$1 r=$2 mnt="$work/mnt" n=${1#t}
	n=${n%w}
	mount_sfs "$work/tt/s$n" "$mnt"
	[[ $c == *w ]] && du -s "$mnt" >/dev/null	# a lookup of every entry
	echo "== take $c run $r" >>"$log"
	"$tool" viewtime "$mnt" "$reps" 2>>"$log" | rec take "$c" "$r" ||
		say "take $c run $r: the helper failed (see $log)"
	umount_sfs "$mnt"
}

# one_dir DIR RUN: a fresh mount, REPS first changes after a view.
one_dir() {
	local c=$1 r=$2 mnt="$work/mnt"
	mount_sfs "$work/tt/dirs" "$mnt"
	echo "== dir $c run $r" >>"$log"
	"$tool" firstchange "$mnt" "$c" "$dreps" 2>>"$log" | rec dir "$c" "$r" ||
		say "dir $c run $r: the helper failed (see $log)"
	umount_sfs "$mnt"
}

take_cfgs=""
for n in $trees; do take_cfgs="$take_cfgs t$n"; done
mid=$(echo $trees | cut -d' ' -f2)
take_cfgs="$take_cfgs t${mid}w"
dir_cfgs=""
for n in $dirs; do dir_cfgs="$dir_cfgs d$n"; done

for ((r = 1; r <= runs; r++)); do
	say "round $r of $runs (load $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "== round $r load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"
	if want changes; then
		for c in $(rotate "$r" raw v0 v1 v10 v1ign); do one_changes "$c" "$r"; done
	fi
	if want take; then
		for c in $(rotate "$r" $take_cfgs); do one_take "$c" "$r"; done
	fi
	if want dir; then
		for c in $(rotate "$r" $dir_cfgs); do one_dir "$c" "$r"; done
	fi
done

# ------------------------------------------------------------- report ---
cat >"$out/info.txt" <<EOF
date: $(date -Is)
host: $(uname -n), kernel $(uname -r), $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM
work dir: $base ($(stat -f -c %T "$base")); changes on ext4 (loop), trees on tmpfs
stablefs: $sfs_bin_given, commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo "?")
runs: $runs, quick: $quick, files per op: $nfiles, trees: $trees, dirs: $dirs, reps: $reps/$dreps
load average at end: $(cut -d' ' -f1-3 /proc/loadavg)
note: $note
EOF
python3 - "$raw" "$nfiles" <<'EOF' | tee "$out/table.txt"
import collections, statistics, sys

vals = collections.defaultdict(dict)     # (sec, id, conf) -> {run: value}
for line in open(sys.argv[1]):
    sec, id_, conf, run, v = line.rstrip("\n").split("\t")
    vals[(sec, id_, conf)][int(run)] = float(v)
n = int(sys.argv[2])

def fmt(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"

def cell(sec, id_, conf, base):
    v = vals.get((sec, id_, conf))
    if not v:
        return "-"
    med = statistics.median(v.values())
    s = f"{fmt(med)} ({fmt(min(v.values()))}..{fmt(max(v.values()))})"
    b = vals.get((sec, id_, base)) if base and base != conf else None
    if b:
        per = [v[r] / b[r] for r in v if r in b and b[r] > 0]
        s += f" {med / statistics.median(b.values()):.2f}x"
        if per:
            s += f" [{statistics.median(per):.2f}]"
    return s

def table(title, sec, rows, confs, base):
    if not any((sec, i, c) in vals for i, _ in rows for c, _ in confs):
        return
    print(f"\n{title}")
    w = max(len(l) for _, l in rows)
    print(" | ".join([" " * w] + [l for _, l in confs]))
    for id_, label in rows:
        if not any((sec, id_, c) in vals for c, _ in confs):
            continue
        print(" | ".join([label.ljust(w)] + [cell(sec, id_, c, base) for c, _ in confs]))

runs = max((r for d in vals.values() for r in d), default=0)
print(f"# tree views: median (min..max) over {runs} rounds; Nx = ratio of the medians"
      " to the baseline column, [N] = median of the per-round ratios")
confs = [("raw", "raw SRC"), ("v0", "0 views"), ("v1", "1 view"),
         ("v10", "10 views"), ("v1ign", "1 view, oob=ignore")]
ops = [("pwrite4k", "a) pwrite 4 KiB in place, 64 MiB file"),
       ("touch", f"b) first touch: open+pwrite 4K+close"),
       ("create", "c) create+write 100 B+close"),
       ("rename", "d) rename within a directory"),
       ("pwrite1m", "e) pwrite 1 MiB, rewrite pass"),
       ("pwrite1m2", "e2) pwrite 1 MiB, 2nd pass")]
table("Changes through MNT, us per op by the clock (a-d: best of 10 batches;"
      " ratios to 0 views)", "changes", ops, confs, "v0")
table("The same, the daemon's CPU us per op (all batches)", "changes",
      [(i + ".dcpu", l) for i, l in ops], confs[1:], "v0")
take = sorted({c for (s, i, c) in vals if s == "take"},
              key=lambda c: (int(c[1:].rstrip("w")), c.endswith("w")))
table("Taking a view: the ioctl, us (median per round of the takes; ratios"
      " to the smallest tree)", "take",
      [("take_us", "take (median)"), ("take_min_us", "take (fastest)"),
       ("take_max_us", "take (slowest)"), ("take_p90_us", "take (90th percentile)"),
       ("take_over_1ms", f"takes over 1 ms (count)"), ("delete_us", "delete (median)")],
      [(c, f"{int(c[1:].rstrip('w')):,} files" + (", walked" if c.endswith("w") else ""))
       for c in take], take[0] if take else None)
dirs = sorted({c for (s, i, c) in vals if s == "dir"}, key=lambda c: int(c[1:]))
table("First change after a view in a directory: create+close, us (medians;"
      " ratios to the smallest directory)", "dir",
      [("first_us", "first create (captures the directory)"),
       ("second_us", "second create"), ("delete_us", "view delete after")],
      [(c, f"{int(c[1:]):,} entries") for c in dirs], dirs[0] if dirs else None)
EOF
