#!/usr/bin/env bash
# Cost of the out-of-band watch (-o oob=detect, -o oob=preserve) and of
# snapshot clones at open, in one run, on fresh loop filesystems. Every
# configuration is measured in every run, in an order that rotates, so
# drift on the machine hits all alike. A benchmark, not a test: it never
# fails on a slow number, only on a broken setup. See doc/performance.md,
# "Out-of-band watch".
#
#   bench/oob_cost.sh [options]        (as root: loop devices, mounts)
#     --quick            3 runs, smaller loops, 256 MiB instead of 1 GiB clone file
#     --runs N           runs per measurement (default 9; median, min, max)
#     --only LIST        sections, comma list of io,preserve,clone (default all)
#     --stablefs BIN     use this binary instead of building build/fs/stablefs
#     --workdir DIR      where the loop images go (default /dev/shm if it has
#                        4 GiB free, else /tmp): tmpfs keeps the disk out
#     --out DIR          results directory (default results/oob-<timestamp>)
#     --note TEXT        free text stored with the results
#
# Sections:
#   io        direct I/O on SRC's filesystem (ext4 loop, 512 MiB), not
#             through the mount, to files no snapshot holds: no mount
#             (baseline), oob=ignore (a mount without a watch: control),
#             oob=detect, oob=preserve. Plus open+close through the mount.
#   preserve  a 64 MiB file rewritten in place in SRC directly (1 MiB
#             pwrites, then fsync) while a reader holds a snapshot of it
#             open through the mount, idle or reading 1 MiB every 20 ms;
#             against the same rewrite with no reader and with no mount.
#             ext4 and XFS (reflink=1) loops.
#   clone     open()+close() through the mount on XFS (reflink=1) of files
#             of 1 MiB, 64 MiB, 1 GiB and of 10,000 4 KiB extents, with
#             clone=auto (default), clone=off, and clone=auto oob=preserve.
#
# Output: the table on stdout; DIR/table.txt, DIR/raw.tsv (every run),
# DIR/rows.tsv, DIR/info.txt, DIR/log (daemon stderr, stats after each run).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
top="$(dirname "$here")"
runs=9 quick=0 only=all sfs_bin="" base="" out="" note=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 runs=3 ;;
	--runs) runs=$2; shift ;;
	--only) only=$2; shift ;;
	--stablefs) sfs_bin=$(realpath "$2"); shift ;;
	--workdir) base=$2; shift ;;
	--out) out=$2; shift ;;
	--note) note=$2; shift ;;
	-h|--help) usage 0 ;;
	*) echo "oob_cost: unknown option $1" >&2; usage 2 >&2 ;;
	esac
	shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "oob_cost: --runs needs a positive integer" >&2; exit 2; }
want() { [ "$only" = all ] || [[ ",$only," == *",$1,"* ]]; }
say() { printf 'oob_cost: %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root (loop devices, mounts, fanotify)"; exit 1; }
for t in cc fusermount3 mountpoint losetup mkfs.ext4 python3; do
	command -v "$t" >/dev/null || { say "$t not found"; exit 1; }
done
has_xfs=0; command -v mkfs.xfs >/dev/null && has_xfs=1

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
	   [ "$(df --output=avail -k /dev/shm | tail -1)" -gt $((4 << 20)) ]; then base=/dev/shm; fi
fi
work=$(mktemp -d "$base/sfs-oob-XXXXXX")
cp "$sfs_bin" "$work/stablefs"	# one binary for the whole run
sfs_bin_given=$sfs_bin sfs="$work/stablefs"
[ -n "$out" ] || out="$top/results/oob-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"; out=$(realpath "$out")
log="$out/log"; : >"$log"

# ------------------------------------------------------------ cleanup ----
declare -A pid_of=()		# FUSE mount point -> daemon pid (our child, -f)
declare -a fsmnts=() loops=()	# loop filesystems we mounted, loop devices we attached
holder=""			# pid of a snapshot holder we started
cleanup() {
	local m p
	set +e
	[ -n "$holder" ] && { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; }
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
cc -O2 -Wall -Wextra -D_GNU_SOURCE -o "$work/oob_cost" "$here/oob_cost.c" 2>>"$log"
tool="$work/oob_cost"

# mkloop NAME FSTYPE MIB: a fresh loop filesystem mounted on $work/NAME
mkloop() {
	local name=$1 type=$2 mib=$3 dev
	truncate -s "${mib}M" "$work/$name.img"
	case $type in
	ext4) mkfs.ext4 -q -F "$work/$name.img" >>"$log" 2>&1 ;;
	xfs) mkfs.xfs -q -f -m reflink=1 "$work/$name.img" >>"$log" 2>&1 ;;
	esac
	dev=$(losetup -f --show "$work/$name.img")
	loops+=("$dev")
	mkdir -p "$work/$name"
	mount "$dev" "$work/$name"
	fsmnts+=("$work/$name")
	mkdir "$work/$name/src"
}

# mount_sfs SRC MNT OPTS: the daemon in the foreground, our child; returns
# once it serves requests (the watch starts before it serves: main.c).
mount_sfs() {
	local src=$1 mnt=$2 opts=$3 p
	mkdir -p "$mnt"
	echo "== mount -o $opts $src" >>"$log"
	"$sfs" -f -o "$opts" "$src" "$mnt" 2>>"$log" &
	p=$!
	pid_of[$mnt]=$p
	for _ in $(seq 200); do
		mountpoint -q "$mnt" && break
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	mountpoint -q "$mnt" && "$sfs" stats "$mnt" >/dev/null 2>>"$log" ||
		{ say "mounting stablefs -o $opts on $mnt failed (see $log)"; exit 1; }
}
umount_sfs() {
	local mnt=$1 p=${pid_of[$1]}
	"$sfs" stats "$mnt" 2>/dev/null | grep -E 'oob_|snapshot_clones|bytes_preserved_total|bytes_reflinked' | tr -s ' ' |
		paste -sd' ' >>"$log" || true
	fusermount3 -u "$mnt" 2>>"$log" || fusermount3 -u -z "$mnt"
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill "$p" 2>/dev/null || true
	wait "$p" || true
	unset "pid_of[$mnt]"
}
stat_of() { "$sfs" stats "$1" | awk -v k="$2" '$1 == k {print $2}'; }

# ------------------------------------------------------------ records ----
# rows.tsv: section id label unit; confs.tsv: section config label (first = baseline)
# raw.tsv: section id config run value
rows="$out/rows.tsv" confs="$out/confs.tsv" raw="$out/raw.tsv"
: >"$rows"; : >"$confs"; : >"$raw"
row() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$rows"; }
conf() { printf '%s\t%s\t%s\n' "$@" >>"$confs"; }
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
preserve_ok=""	# set if oob=preserve fell back to detect

if want io || want preserve; then mkloop e ext4 512; fi
if { want preserve || want clone; } && [ "$has_xfs" = 1 ]; then mkloop x xfs $((quick ? 1536 : 3072)); fi
[ "$has_xfs" = 1 ] || say "mkfs.xfs missing: no XFS rows"

# ------------------------------------------------ 1. direct I/O on SRC ---
if want io; then
	src="$work/e/src" d="$work/e/src/direct" mnt="$work/mnt-io"
	nopen=$((quick ? 500 : 1000)) ntouch=$((quick ? 1000 : 2000)) scale=1
	conf io none "no mount"
	conf io ignore "oob=ignore"
	conf io detect "oob=detect"
	conf io preserve "oob=preserve"
	for t in "" .cpu; do
		u=us/op; [ -n "$t" ] && u="us/op CPU"
		row io first$t "first touch: open+pwrite 4K+close, unseen files" "$u"
		row io again$t "... the same files again" "$u"
		row io pwrite4k$t "pwrite 4 KiB (1 MiB region)" "$u"
		row io pread4k$t "pread 4 KiB (1 MiB region)" "$u"
		row io pwrite1m$t "pwrite 1 MiB (16 MiB region)" "$u"
		row io openclose$t "open+close, $nopen existing files in turn" "$u"
		row io create$t "create+write 100 B+close, new files" "$u"
	done
	row io mnt_open "through MNT: open+close, $nopen files" us/op
	row io mnt_reopen "through MNT: open+close, one 16 MiB file" us/op
	"$tool" prep "$d" "$nopen"
	say "1. direct I/O on SRC's filesystem, $runs runs"
	for ((r = 1; r <= runs; r++)); do
		for c in $(rotate "$r" none ignore detect preserve); do
			rm -rf "$d/t"; "$tool" mkfiles "$d/t" "$ntouch"; sync
			[ "$c" = none ] || mount_sfs "$src" "$mnt" "oob=$c"
			"$tool" ops "$d" "$scale" | rec io "$c" "$r"
			if [ "$c" != none ]; then
				"$tool" openclose "$mnt/direct/o" 0.5 20000 "$nopen" |
					awk '$1 == "open_us" {print "mnt_open", $2}' | rec io "$c" "$r"
				"$tool" openclose "$mnt/direct/data" 0.5 20000 |
					awk '$1 == "open_us" {print "mnt_reopen", $2}' | rec io "$c" "$r"
				[ "$c" = preserve ] && grep -q 'no pre-content watch' "$log" && preserve_ok="fell back to detect"
				umount_sfs "$mnt"
			fi
		done
	done
	rm -rf "$d"
fi

# ---------------------------------- 2. preserved out-of-band 1 MiB writes
# rewrite_round SECTION FS CONFIG RUN: one 64 MiB in-place rewrite in SRC.
declare -A gen_of=()
rewrite_round() {
	local sec=$1 fs=$2 c=$3 r=$4 f="$work/$2/src/big" mnt="$work/mnt-rw" opts="" slow=0 g
	g=${gen_of[$fs]}
	case $c in
	none) ;;
	pres) opts=oob=preserve ;;
	pres_idle) opts=oob=preserve ;;
	pres_slow) opts=oob=preserve slow=20 ;;
	pres_idle_off) opts=oob=preserve,clone=off ;;
	det_idle) opts=oob=detect ;;
	esac
	sync
	[ -n "$opts" ] && mount_sfs "$work/$fs/src" "$mnt" "$opts"
	if [[ $c == *_* ]]; then
		rm -f "$work/ready"
		"$tool" hold "$mnt/big" 64 "$g" "$slow" "$work/ready" >"$work/hold.out" 2>>"$log" &
		holder=$!
		for _ in $(seq 400); do [ -e "$work/ready" ] && break; sleep 0.01; done
		[ -e "$work/ready" ] || { say "snapshot holder did not open $mnt/big"; exit 1; }
	fi
	"$tool" rewrite "$f" 64 $((g + 1)) | awk '{print; if ($1 == "fsync_ms") print "total_ms", t + $2; t = $2}' |
		rec "$sec" "$c" "$r"
	gen_of[$fs]=$((g + 1))
	if [ -n "$holder" ]; then
		kill -USR1 "$holder"; wait "$holder" || true; holder=""
		echo "== $sec $c run $r holder: $(paste -sd' ' "$work/hold.out")" >>"$log"
		# the reader's check: blocks that were not the snapshot's bytes
		awk '$1 == "hold_bad_blocks" || $1 == "hold_errors" {print}' "$work/hold.out" | rec "$sec" "$c" "$r"
	fi
	if [ -n "$opts" ]; then
		[ "$c" = none ] || stat_of "$mnt" oob_held | sed 's/^/held /' | rec "$sec" "$c" "$r"
		umount_sfs "$mnt"
	fi
}
if want preserve; then
	fss=ext4; [ "$has_xfs" = 1 ] && fss="ext4 xfs"
	for fs in $fss; do
		sec=pres_$fs
		conf $sec none "no mount, no reader"
		conf $sec pres "oob=preserve, no reader"
		conf $sec pres_idle "preserve, reader idle"
		conf $sec pres_slow "preserve, reader 1 MiB/20 ms"
		[ $fs = xfs ] && conf $sec pres_idle_off "preserve, idle, clone=off"
		conf $sec det_idle "detect, reader idle (not preserved)"
		row $sec write_ms "$fs: 64 MiB rewrite in SRC, 1 MiB pwrites" ms
		row $sec total_ms "$fs: ... plus fsync" ms
		row $sec held "$fs: accesses held by the watch (count)" n
		row $sec hold_bad_blocks "$fs: reader saw changed 4 KiB blocks (count)" n
		row $sec hold_errors "$fs: reader's failed 1 MiB reads (count)" n
	done
	say "2. out-of-band rewrite under a snapshot, $runs runs"
	for fs in $fss; do
		fsdir=$([ $fs = ext4 ] && echo e || echo x)
		"$tool" fill "$work/$fsdir/src/big" 64 1
		gen_of[$fsdir]=1
		cs="none pres pres_idle pres_slow det_idle"; [ $fs = xfs ] && cs="$cs pres_idle_off"
		for ((r = 1; r <= runs; r++)); do
			for c in $(rotate "$r" $cs); do rewrite_round "pres_$fs" "$fsdir" "$c" "$r"; done
		done
		rm -f "$work/$fsdir/src/big"
	done
fi

# ------------------------------------------- 3. clone cost at each open
if want clone && [ "$has_xfs" = 1 ]; then
	xs="$work/x/src" mnt="$work/mnt-clone"
	gib=$((quick ? 256 : 1024)) nfrag=10000
	conf clone off "clone=off"
	conf clone auto "clone=auto (default)"
	conf clone auto_pres "clone=auto, oob=preserve"
	row clone c1m "XFS: open+close through MNT, 1 MiB file" us/op
	row clone c64m "XFS: ... 64 MiB file" us/op
	row clone cbig "XFS: ... $gib MiB file" us/op
	row clone cfrag "XFS: ... file of $nfrag 4 KiB extents" us/op
	say "3. open+close through the mount on XFS: clone cost, $runs runs"
	"$tool" fill "$xs/c1m" 1 1
	"$tool" fill "$xs/c64m" 64 1
	"$tool" fill "$xs/cbig" "$gib" 1
	"$tool" frag "$xs/cfrag" "$nfrag"
	sync
	for f in c1m c64m cbig cfrag; do
		echo "== $f data extents: $(xfs_bmap "$xs/$f" 2>/dev/null | tail -n +2 | grep -vc hole)" >>"$log"
	done
	for ((r = 1; r <= runs; r++)); do
		for c in $(rotate "$r" off auto auto_pres); do
			case $c in
			off) opts=clone=off ;; auto) opts=clone=auto ;; auto_pres) opts=clone=auto,oob=preserve ;;
			esac
			mount_sfs "$xs" "$mnt" "$opts"
			for f in c1m c64m cbig cfrag; do
				"$tool" openclose "$mnt/$f" 1 5000 | awk -v f=$f '$1 == "open_us" {print f, $2}' |
					rec clone "$c" "$r"
			done
			umount_sfs "$mnt"
		done
	done
fi

# ------------------------------------------------------------- report ---
cat >"$out/info.txt" <<EOF
date: $(date -Is)
host: $(uname -n), kernel $(uname -r), $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM
loop images in: $base ($(stat -f -c %T "$base"))
stablefs: $sfs_bin_given, commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo "?")
runs: $runs, quick: $quick, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)
oob=preserve: ${preserve_ok:-pre-content watch in use}
note: $note
EOF
python3 "$here/oob_report.py" "$out" | tee "$out/table.txt"
