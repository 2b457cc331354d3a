#!/usr/bin/env bash
# stablefs benchmark harness: builds stablefs and libfuse's passthrough_ll
# example in this run, mounts both on the same SRC and measures them and raw
# SRC in the same run, alternating targets. A benchmark, not a test: it never
# fails on a slow number, only on a broken setup. See doc/performance.md.
#
#   bench/run.sh [options]
#     --quick            256 MiB file, 10,000 files, 3 runs, 2 s fio jobs
#     --runs N           runs per measurement (default 5; median, min, max)
#     --size MIB         sequential file size (default 1024)
#     --files N          metadata / inode-memory file count (default 100000)
#     --fio-seconds S    duration of each fio job (default 5)
#     --only LIST        sections to run, comma list of
#                        read,conc,write,random,meta,snapshot,mem (default all)
#     --stablefs BIN     use this binary instead of building build/fs/stablefs
#     --workdir DIR      where SRC and the mounts are made (default /tmp)
#     --out DIR          results directory (default results/<timestamp>)
#     --note TEXT        free text stored with the results (e.g. "machine busy")
#     --no-warm          do not touch fresh memory before each cold, concurrent
#                        or sequential-write measurement (see warm_memory)
#
# Output: a table on stdout; DIR/results.json, DIR/raw.tsv, DIR/table.txt,
# DIR/plot.png (gnuplot), DIR/log. Cold-cache rows, the XFS loop device and
# installing gnuplot need root.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
top="$(dirname "$here")"
size=1024 files=100000 runs=5 fio_secs=5 only=all sfs_bin="" base=/tmp out="" note=""
quick=0 warm=1
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 size=256 files=10000 runs=3 fio_secs=2 ;;
	--runs) runs=$2; shift ;;
	--size) size=$2; shift ;;
	--files) files=$2; shift ;;
	--fio-seconds) fio_secs=$2; shift ;;
	--only) only=$2; shift ;;
	--stablefs) sfs_bin=$(realpath "$2"); shift ;;
	--workdir) base=$2; shift ;;
	--out) out=$2; shift ;;
	--note) note=$2; shift ;;
	--no-warm) warm=0 ;;
	-h|--help) usage 0 ;;
	*) echo "bench: unknown option $1" >&2; usage 2 >&2 ;;
	esac
	shift
done
for v in size files runs fio_secs; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: --${v//_/-} needs a positive integer" >&2; exit 2; }
done
[ "$runs" -ge 5 ] || [ "$quick" = 1 ] || echo "bench: note: fewer than 5 runs per measurement" >&2
want() { [ "$only" = all ] || [[ ",$only," == *",$1,"* ]]; }
is_root=0; [ "$(id -u)" -eq 0 ] && is_root=1
say() { printf 'bench: %s\n' "$*" >&2; }

# The snapshot rows (item 5, memory per preserved extent) run by default;
# SFS_BENCH_SNAPSHOTS=0 skips them (they print NA_SNAP).
NA_SNAP="n/a (skipped: SFS_BENCH_SNAPSHOTS=0)"
snapshots_supported() { [ "${SFS_BENCH_SNAPSHOTS:-1}" = 1 ]; }

# ---------------------------------------------------------------- build ----
examples=/usr/share/doc/libfuse3-dev/examples
for t in cc pkg-config fusermount3 mountpoint; do
	command -v "$t" >/dev/null || { say "$t not found (scripts/deps.sh installs it)"; exit 1; }
done
[ -f "$examples/passthrough_ll.c" ] || { say "$examples/passthrough_ll.c missing: apt-get install libfuse3-dev"; exit 1; }
if [ -z "$sfs_bin" ]; then
	say "building stablefs (ninja -C build)"
	{ [ -f "$top/build/build.ninja" ] || meson setup "$top/build" >&2; } &&
		ninja -C "$top/build" >&2 ||
		{ say "building stablefs failed; --stablefs BIN benchmarks an existing binary"; exit 1; }
	sfs_bin="$top/build/fs/stablefs"
fi
if ! command -v gnuplot >/dev/null; then
	if [ "$is_root" = 1 ]; then
		say "gnuplot is missing; installing gnuplot-nox with apt-get for the plot"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox >&2 ||
			{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox >&2; } ||
			say "could not install gnuplot-nox: no plot this time"
	else
		say "gnuplot is missing (apt-get install gnuplot-nox as root): no plot this time"
	fi
fi
has_fio=0
if command -v fio >/dev/null && command -v jq >/dev/null; then has_fio=1
else say "fio or jq missing: random 4 KiB rows are skipped (apt-get install fio jq)"; fi

work=$(mktemp -d "$base/sfs-bench-XXXXXX")
# Every mount of the run uses one copy of the binary: a rebuild of the tree
# while the benchmark runs (cold rows remount each time) changes nothing.
cp "$sfs_bin" "$work/stablefs" || { say "cannot copy $sfs_bin"; exit 1; }
sfs_bin_given=$sfs_bin
sfs_bin="$work/stablefs"
[ -n "$out" ] || out="$top/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
out=$(realpath "$out")
log="$out/log"
: >"$log"

declare -A pid_of=()	# mount point -> daemon pid (daemons run with -f, our children)
loopdev="" xfsmnt=""
cleanup() {
	local m p
	set +e
	for m in "${!pid_of[@]}"; do fusermount3 -u -z "$m" 2>/dev/null; done
	for m in "${!pid_of[@]}"; do
		p=${pid_of[$m]}
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "$xfsmnt" ] && umount -l "$xfsmnt" 2>/dev/null
	[ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
	[ -n "$shm" ] && rm -f "$shm"
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "work dir $work, results $out"
cc -O2 -Wall -o "$work/passthrough_ll" "$examples/passthrough_ll.c" \
	$(pkg-config --cflags --libs fuse3) 2>>"$log"
for t in splice_read meta wbench; do
	cc -O2 -Wall -D_GNU_SOURCE -o "$work/$t" "$here/$t.c" 2>>"$log"
done
pll_bin="$work/passthrough_ll"

# ---------------------------------------------------------------- mounts ---
# mount_fs KIND SRC MNT [extra stablefs options...]; KIND is pll or sfs.
# passthrough_ll runs with its defaults (only source=); stablefs too.
mount_fs() {
	local kind=$1 src=$2 mnt=$3 p
	shift 3
	mkdir -p "$mnt"
	case $kind in
	pll) "$pll_bin" -f -o source="$src" "$mnt" 2>>"$log" & ;;
	sfs) "$sfs_bin" -f "$@" "$src" "$mnt" 2>>"$log" & ;;
	esac
	p=$!
	pid_of[$mnt]=$p
	for _ in $(seq 200); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	say "mounting $kind on $mnt failed (see $log)"
	exit 1
}
umount_fs() {
	local mnt=$1 p=${pid_of[$1]}
	fusermount3 -u "$mnt" || fusermount3 -u -z "$mnt"
	wait "$p" || true
	unset "pid_of[$mnt]"
}
remount_fs() {	# same kind, same SRC, same options as the first mount
	local mnt=$1
	umount_fs "$mnt"
	mount_fs "${kind_of[$mnt]}" "${src_of[$mnt]}" "$mnt"
}
declare -A kind_of=() src_of=()
src="$work/src"
mkdir -p "$src"
declare -A dir_of=([raw]="$src" [pll]="$work/mnt-pll" [sfs]="$work/mnt-sfs")
# passthrough_ll keeps an fd per looked-up inode: 100,000 files need more
# than a typical RLIMIT_NOFILE (20,000 here; 1,024 soft on stock Debian).
# stablefs does not (file handles, -o fd_cache), but both daemons get the
# same files: raise the limit for this shell, so for both alike; the value
# goes into info.json.
want_nofile=$((files + 4096))
[ "$want_nofile" -le "$(cat /proc/sys/fs/nr_open)" ] || want_nofile=$(cat /proc/sys/fs/nr_open)
if [ "$(ulimit -n)" -lt "$want_nofile" ]; then
	ulimit -Hn "$want_nofile" 2>/dev/null || true
	ulimit -n "$want_nofile" 2>/dev/null || true
fi
if [ "$(ulimit -n)" -lt "$want_nofile" ]; then
	nofile=$(ulimit -n)
	files=$(( (nofile - 4096) / 1000 * 1000 ))
	say "cannot raise RLIMIT_NOFILE to $want_nofile (it is $nofile; no CAP_SYS_RESOURCE?):"
	say "  the daemons would run out of fds, so metadata and inode rows use $files files"
fi
# warm_memory MIB: write and delete a tmpfs file of MIB, untimed, right
# before a measurement that fills the page cache. On a VM that hands freed
# guest memory back to the host (virtio-balloon free page reporting, as on
# the machine of doc/performance.md), the first touch of such memory faults
# in the host: ~7-22 us per 4 KiB page, more than a FUSE READ of it. Which
# target ran after an idle or a slow neighbour then decided the number (8
# readers through stablefs: 700-1,200 MiB/s right after passthrough_ll's
# run, 3,400-4,400 after a warm). Every target gets the same warm-up.
shm=""
if [ "$warm" = 1 ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
	shm=/dev/shm/sfs-bench-warm-$$
fi
warm_memory() {
	[ -n "$shm" ] || return 0
	dd if=/dev/zero of="$shm" bs=1M count="$1" status=none 2>>"$log" || true
	rm -f "$shm"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
for k in pll sfs; do
	kind_of[${dir_of[$k]}]=$k src_of[${dir_of[$k]}]=$src
	mount_fs "$k" "$src" "${dir_of[$k]}"
done

# ---------------------------------------------------------------- records --
# rows.tsv: id section label unit better(higher|lower) na-text   (display order)
# raw.tsv:  id target run value
rows="$out/rows.tsv" raw="$out/raw.tsv"
: >"$rows"; : >"$raw"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >>"$rows"; }
rec() {
	if [[ $4 =~ ^[0-9.]+$ ]]; then printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$raw"
	else say "$1 $2 run $3: no value (see $log)"; fi
}
# targets in a rotating order, so no target always goes first
order() { local t=(raw pll sfs) k=$(($1 % 3)); echo "${t[@]:k}" "${t[@]:0:k}"; }
gib=$(awk -v m="$size" 'BEGIN { printf (m % 1024 ? "%d MiB" : "%d GiB"), (m % 1024 ? m : m / 1024) }')

say "creating a $gib test file"
dd if=/dev/urandom of="$src/f" bs=1M count="$size" status=none
sync

# ------------------------------------------ 1. sequential read (splice/read)
# hot: everything cached (SRC's page cache, and stablefs keeps its own for
# an unchanged file opened read-only). FUSE-cold: SRC's bytes cached, a
# fresh FUSE mount before every read, so every byte goes through READ
# requests (what the kernel must copy into the mount's page cache; memcpy
# of the same amount in the same run is its floor). disk-cold: drop_caches
# as well. stablefs also runs FUSE-cold with -o readahead_kb=128 (its
# default is 1 MiB) on a mount of its own.
if want read; then
	for c in hot fcold cold; do for m in splice read; do
		case $c in hot) cl=hot ;; fcold) cl="FUSE-cold" ;; cold) cl="disk-cold" ;; esac
		na=""; [ $c = cold ] && [ "$is_root" = 0 ] && na="n/a (cold cache needs root)"
		row "read.$m.$c" read "seq read $gib, $m(), $cl" MiB/s higher "$na"
	done; done
	row read.splice.fcold128 read "  the same, -o readahead_kb=128" MiB/s higher
	row read.memcpy read "memcpy 1 GiB, 1 MiB at a time" MiB/s higher
	ra128="$work/mnt-ra128"
	say "1. sequential read, hot"
	cat "$src/f" >/dev/null
	for ((r = 1; r <= runs; r++)); do for t in $(order $r); do for m in splice read; do
		rec "read.$m.hot" $t $r "$("$work/splice_read" "${dir_of[$t]}/f" $m 2>>"$log" | awk '{print $2}')"
	done; done; done
	say "1. sequential read, FUSE-cold (SRC cached, remount FUSE, each run) and memcpy"
	for ((r = 1; r <= runs; r++)); do
		cat "$src/f" >/dev/null
		rec read.memcpy raw $r "$("$work/splice_read" - memcpy 2 2>>"$log" | awk 'END {print $2}')"
		for t in $(order $r); do for m in splice read; do
			[ $t = raw ] || remount_fs "${dir_of[$t]}"
			warm_memory "$size"
			rec "read.$m.fcold" $t $r "$("$work/splice_read" "${dir_of[$t]}/f" $m 2>>"$log" | awk '{print $2}')"
		done; done
		mount_fs sfs "$src" "$ra128" -o readahead_kb=128
		warm_memory "$size"
		rec read.splice.fcold128 sfs $r "$("$work/splice_read" "$ra128/f" splice 2>>"$log" | awk '{print $2}')"
		umount_fs "$ra128"
	done
	if [ "$is_root" = 1 ]; then
		say "1. sequential read, disk-cold (drop_caches, remount FUSE, each run)"
		for ((r = 1; r <= runs; r++)); do for t in $(order $r); do for m in splice read; do
			[ $t = raw ] || remount_fs "${dir_of[$t]}"
			drop_caches
			warm_memory $((2 * size))
			rec "read.$m.cold" $t $r "$("$work/splice_read" "${dir_of[$t]}/f" $m 2>>"$log" | awk '{print $2}')"
		done; done; done
	fi
fi

# --------------------------------------------- 1b. concurrent readers
# Backup tools read several files at once (restic: 2 to 8). N readers, each
# read(2)ing a file of its own 1 MiB at a time, FUSE-cold (SRC cached, a
# fresh FUSE mount per measurement); aggregate MiB/s = all bytes / the
# time until the last reader is done.
conc_mib=$(( size < 256 ? size : 256 ))
if want conc; then
	for n in 1 2 4 8; do
		row "conc.$n" conc "$n readers x $conc_mib MiB, read(), FUSE-cold" MiB/s higher
	done
	say "1b. concurrent readers (1, 2, 4, 8), FUSE-cold"
	mkdir -p "$src/conc"
	for i in 0 1 2 3 4 5 6 7; do
		dd if="$src/f" of="$src/conc/f$i" bs=1M count="$conc_mib" status=none
	done
	readers_at() {	# DIR N: aggregate MiB/s of N readers of f0..f(N-1) at once
		local t0 t1 i pids=()
		t0=$(date +%s.%N)
		for ((i = 0; i < $2; i++)); do
			"$work/splice_read" "$1/f$i" read >/dev/null 2>>"$log" & pids+=($!)
		done
		wait "${pids[@]}" || return 0
		t1=$(date +%s.%N)
		awk -v m="$conc_mib" -v n="$2" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", m * n / (b - a)}'
	}
	for ((r = 1; r <= runs; r++)); do for n in 1 2 4 8; do for t in $(order $((r + n))); do
		cat "$src/conc"/f* >/dev/null
		[ $t = raw ] || remount_fs "${dir_of[$t]}"
		warm_memory $((n * conc_mib))
		rec "conc.$n" $t $r "$(readers_at "${dir_of[$t]}/conc" "$n")"
	done; done; done
	rm -rf "$src/conc"
fi

# ---------------------------------------------------- 2. sequential write
w4k=$((size / 4))	# 4 KiB writes of the whole file take too long through FUSE
dsync_ops=$((quick ? 500 : 2000))
if want write; then
	row write.1m write "seq write $gib, 1 MiB writes" MiB/s higher
	row write.4k write "seq write $w4k MiB, 4 KiB writes" MiB/s higher
	row write.fsync write "seq write $gib, 1 MiB + fsync" MiB/s higher
	row write.dsync write "4 KiB write + fdatasync ($dsync_ops)" "us/write" lower
	say "2. sequential write"
	wb() {	# id target run wbench-args...; field 1 MiB/s, field 2 us/write
		local id=$1 t=$2 r=$3 field=1
		shift 3
		[ "$id" = write.dsync ] && field=2
		rm -f "${dir_of[$t]}/w"; sync
		[ "$id" = write.dsync ] || warm_memory $((2 * size))
		rec "$id" $t $r "$("$work/wbench" "$@" "${dir_of[$t]}/w" 2>>"$log" | awk -v f=$field '{print $f}')"
	}
	for ((r = 1; r <= runs; r++)); do for t in $(order $r); do
		wb write.1m $t $r -b 1M -s "${size}M"
		wb write.4k $t $r -b 4K -s "${w4k}M"
		wb write.fsync $t $r -b 1M -s "${size}M" -f end
		wb write.dsync $t $r -b 4K -s "$((dsync_ops * 4))K" -f each
	done; done
	rm -f "$src/w"; sync
fi

# ------------------------------------------------- 3. random 4 KiB (fio)
if want random; then
	na=""; [ "$has_fio" = 1 ] || na="n/a (fio not installed)"
	row rand.read.psync random "rand 4 KiB read, fio psync" kIOPS higher "$na"
	row rand.read.splice random "rand 4 KiB read, fio splice" kIOPS higher "$na"
	row rand.write.psync random "rand 4 KiB write, fio psync" kIOPS higher "$na"
	if [ "$has_fio" = 1 ]; then
		say "3. random 4 KiB (fio, ${fio_secs}s per job)"
		cp "$src/f" "$src/r"; sync; cat "$src/r" >/dev/null
		fio_iops() {	# target rw engine
			fio --name=bench --filename="${dir_of[$1]}/r" --size="${size}M" --bs=4k \
				--rw="$2" --ioengine="$3" --iodepth=1 --numjobs=1 --invalidate=0 \
				--runtime="$fio_secs" --time_based --output-format=json 2>>"$log" |
				jq -r "if .jobs[0].error == 0 then .jobs[0].${2#rand}.iops / 1000 else empty end" 2>>"$log"
		}
		for ((r = 1; r <= runs; r++)); do for t in $(order $r); do
			rec rand.read.psync $t $r "$(fio_iops $t randread psync)"
			rec rand.read.splice $t $r "$(fio_iops $t randread splice)"
			rec rand.write.psync $t $r "$(fio_iops $t randwrite psync)"
		done; done
		rm -f "$src/r"
	fi
fi

# ------------------------------------------------------------- 4. metadata
if want meta; then
	for ph in create stat open readdir unlink; do
		row "meta.$ph" meta "meta $files files: $ph" "us/file" lower
	done
	say "4. metadata, $files files"
	for ((r = 1; r <= runs; r++)); do for t in $(order $r); do
		"$work/meta" "${dir_of[$t]}/meta" "$files" 2>>"$log" >"$work/meta.out" || true
		for ph in create stat open readdir unlink; do
			rec "meta.$ph" $t $r "$(awk -v p=$ph '$1 == p {print $2}' "$work/meta.out")"
		done
		rm -rf "$src/meta"
	done; done
fi

# ---------------------------------------- 5. overwrite under a snapshot reader
# For each SRC filesystem: a $gib in-place overwrite (1 MiB writes + fsync),
# once with no other open and once while a read-only fd is open (a snapshot
# on stablefs; no effect on raw/passthrough_ll, which are listed as the
# baseline). And open()+close() latency with -o snapshot=off vs on.
if want snapshot; then
	na=""; snapshots_supported || na=$NA_SNAP
	fss="ext4"
	if [ "$is_root" = 1 ] && command -v mkfs.xfs >/dev/null; then fss="ext4 xfs"
	else row snap.xfs.plain snapshot "XFS reflink loop: overwrite" MiB/s higher "n/a (needs root and mkfs.xfs)"; fi
	for fs in $fss; do
		row "snap.$fs.plain" snapshot "$fs: overwrite $gib, no reader" MiB/s higher "$na"
		row "snap.$fs.reader" snapshot "$fs: overwrite $gib, snapshot open" MiB/s higher "$na"
	done
	row snap.open.off snapshot "open+close, -o snapshot=off" "us/open" lower "$na"
	row snap.open.on snapshot "open+close, snapshots on" "us/open" lower "$na"
	if [ -z "$na" ]; then
		say "5. overwrite with and without an open snapshot reader"
		for fs in $fss; do
			declare -A sdir=([raw]="$src" [pll]="${dir_of[pll]}" [sfs]="${dir_of[sfs]}")
			if [ $fs = xfs ]; then
				truncate -s $((size * 3 + 1024))M "$work/xfs.img"
				mkfs.xfs -q -m reflink=1 "$work/xfs.img" >>"$log" 2>&1
				loopdev=$(losetup -f --show "$work/xfs.img")
				xfsmnt="$work/xfs"; mkdir -p "$xfsmnt"; mount "$loopdev" "$xfsmnt"
				mkdir "$xfsmnt/src"
				sdir=([raw]="$xfsmnt/src" [pll]="$work/mnt-xfs-pll" [sfs]="$work/mnt-xfs-sfs")
				mount_fs pll "$xfsmnt/src" "${sdir[pll]}"
				mount_fs sfs "$xfsmnt/src" "${sdir[sfs]}"
			fi
			cp "$src/f" "${sdir[raw]}/o"; sync
			for ((r = 1; r <= runs; r++)); do for t in $(order $r); do
				rec "snap.$fs.plain" $t $r "$("$work/wbench" -o -b 1M -s "${size}M" -f end "${sdir[$t]}/o" 2>>"$log" | awk '{print $1}')"
				exec {rfd}<"${sdir[$t]}/o"	# the snapshot reader: this shell holds it
				rec "snap.$fs.reader" $t $r "$("$work/wbench" -o -b 1M -s "${size}M" -f end "${sdir[$t]}/o" 2>>"$log" | awk '{print $1}')"
				exec {rfd}<&-
			done; done
			rm -f "${sdir[raw]}/o"
			if [ $fs = xfs ]; then
				umount_fs "${sdir[pll]}"; umount_fs "${sdir[sfs]}"
				umount "$xfsmnt"; xfsmnt=""; losetup -d "$loopdev"; loopdev=""
				rm -f "$work/xfs.img"
			fi
		done
		nopen=$((files / 10))
		"$work/meta" "$src/opens" "$nopen" create >/dev/null
		kind_of[$work/mnt-nosnap]=sfs src_of[$work/mnt-nosnap]=$src
		mount_fs sfs "$src" "$work/mnt-nosnap" -o snapshot=off
		for ((r = 1; r <= runs; r++)); do
			rec snap.open.off sfs $r "$("$work/meta" "$work/mnt-nosnap/opens" "$nopen" open 2>>"$log" | awk '{print $2}')"
			rec snap.open.on sfs $r "$("$work/meta" "${dir_of[sfs]}/opens" "$nopen" open 2>>"$log" | awk '{print $2}')"
		done
		umount_fs "$work/mnt-nosnap"
		rm -rf "$src/opens"
	fi
fi

# ------------------------------------------------------ 6. daemon memory
# Per cached inode: a fresh mount, RSS before and after stat() of $files
# files made directly in SRC (the kernel keeps them looked up). Per
# preserved extent: a fresh stablefs mount, a reader holds the file open
# while every other 4 KiB block of it is overwritten (so no two preserved
# extents touch), RSS after minus before, per overwritten block.
if want mem; then
	row mem.inode mem "daemon RSS per cached inode" "bytes" lower
	na=""; snapshots_supported || na=$NA_SNAP
	row mem.extent mem "daemon RSS per preserved extent" "bytes" lower "$na"
	say "6. daemon memory"
	"$work/meta" "$src/mem" "$files" create >/dev/null
	for ((r = 1; r <= runs; r++)); do for t in pll sfs; do
		mnt="$work/mnt-mem-$t"
		mount_fs $t "$src" "$mnt"
		p=${pid_of[$mnt]}
		before=$(rss_kib "$p")
		ok=1; "$work/meta" "$mnt/mem" "$files" stat >/dev/null 2>>"$log" || ok=0
		after=$(rss_kib "$p")
		[ $ok = 1 ] && rec mem.inode $t $r "$(awk -v a="$after" -v b="$before" -v n="$files" 'BEGIN {printf "%.1f", (a - b) * 1024 / n}')"
		umount_fs "$mnt"
	done; done
	rm -rf "$src/mem"
	if [ -z "$na" ]; then
		extents=$((quick ? 10000 : 50000))
		"$work/wbench" -b 4K -S 8K -s "$((extents * 4))K" "$src/x" >/dev/null
		for ((r = 1; r <= runs; r++)); do
			mnt="$work/mnt-mem-sfs"
			mount_fs sfs "$src" "$mnt"
			p=${pid_of[$mnt]}
			exec {rfd}<"$mnt/x"
			before=$(rss_kib "$p")
			"$work/wbench" -o -b 4K -S 8K -s "$((extents * 4))K" "$mnt/x" >/dev/null 2>>"$log"
			after=$(rss_kib "$p")
			exec {rfd}<&-
			rec mem.extent sfs $r "$(awk -v a="$after" -v b="$before" -v n="$extents" 'BEGIN {printf "%.1f", (a - b) * 1024 / n}')"
			umount_fs "$mnt"
		done
		rm -f "$src/x"
	fi
fi

# ---------------------------------------------------------------- report ---
ra=$(cat "/sys/class/bdi/$(mountpoint -d "${dir_of[sfs]}")/read_ahead_kb" 2>/dev/null || echo "?")
cat >"$out/info.json" <<EOF
{
  "date": "$(date -Is)",
  "host": "$(uname -n)",
  "kernel": "$(uname -r)",
  "nproc": $(nproc),
  "mem_total_kib": $(awk '/^MemTotal:/ {print $2}' /proc/meminfo),
  "cpu": "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo | sed 's/"/\\"/g')",
  "src_fs": "$(findmnt -no FSTYPE -T "$src" 2>/dev/null || echo "?") on $(findmnt -no SOURCE -T "$src" 2>/dev/null || echo "?")",
  "libfuse": "$(pkg-config --modversion fuse3)",
  "fio": "$(fio --version 2>/dev/null || echo none)",
  "stablefs_commit": "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo "?")",
  "stablefs_binary": "$sfs_bin_given, built $(date -r "$sfs_bin_given" -Is)",
  "fuse_read_ahead_kb": "$ra",
  "rlimit_nofile": $(ulimit -n),
  "warm_memory": "$([ -n "$shm" ] && echo "yes, $shm" || echo no)",
  "loadavg_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "params": {"size_mib": $size, "files": $files, "runs": $runs, "fio_seconds": $fio_secs,
             "write_4k_mib": $w4k, "fdatasync_ops": $dsync_ops, "quick": $quick, "root": $is_root},
  "note": "$(printf '%s' "$note" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}
EOF
python3 "$here/report.py" "$out"
