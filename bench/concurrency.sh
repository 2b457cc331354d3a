#!/usr/bin/env bash
# Readers of different files at once, as backup tools read (restic reads
# several files in parallel): N processes each read(2) (or splice(2)) a
# file of its own, 1 MiB at a time, from a fresh mount (the FUSE cache
# cold, SRC's bytes in the page cache). Aggregate MiB/s = all bytes / the
# time until the last reader is done, for raw SRC, stablefs and libfuse's
# passthrough_ll, N = 1, 2, 4, 8 by default, every configuration once per
# round in rotating order. Prints median (min..max) and the ratios to raw
# and to passthrough_ll of the same N. A benchmark, not a test. As root.
#   bench/concurrency.sh [--runs N] [--size MIB] [--readers LIST]
#                        [--mode read|splice] [--open ro|rw] STABLEFS
set -euo pipefail
runs=3 size=256 readers=1,2,4,8 mode=read open=ro
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift ;;
	--size) size=$2; shift ;;
	--readers) readers=$2; shift ;;
	--mode) mode=$2; shift ;;
	--open) open=$2; shift ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
	shift
done
[ $# -eq 1 ] || { echo "usage: bench/concurrency.sh [options] STABLEFS" >&2; exit 2; }
bin=$(realpath "$1")
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d /tmp/sfs-conc-XXXXXX)
cleanup() {	# a lazy unmount also ends a passthrough_ll left running
	for m in "$work"/mnt-*; do [ -d "$m" ] && fusermount3 -u -z "$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -D_GNU_SOURCE -o "$work/splice_read" "$here/splice_read.c"
cc -O2 -o "$work/passthrough_ll" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
	$(pkg-config --cflags --libs fuse3)
maxn=0
for n in ${readers//,/ }; do [ "$n" -gt "$maxn" ] && maxn=$n; done
mkdir -p "$work/src"
for ((i = 0; i < maxn; i++)); do
	dd if=/dev/urandom of="$work/src/f$i" bs=1M count="$size" status=none
done

# N readers of f0..f(N-1) under DIR at once: aggregate MiB/s.
readers_at() {	# DIR N
	local t0 t1 pids=()
	t0=$(date +%s.%N)
	for ((i = 0; i < $2; i++)); do
		"$work/splice_read" "$1/f$i" "$mode" 1 "$open" >/dev/null & pids+=($!)
	done
	wait "${pids[@]}"
	t1=$(date +%s.%N)
	echo "$size $2 $t0 $t1" | awk '{printf "%.0f\n", $1 * $2 / ($4 - $3)}'
}

# One measurement: a fresh mount (none for raw), N readers, unmount.
one() {	# raw|stablefs|pt N
	local m pid="" v
	if [ "$1" = raw ]; then
		readers_at "$work/src" "$2"
		return
	fi
	m=$(mktemp -d "$work/mnt-XXXXXX")
	if [ "$1" = pt ]; then
		"$work/passthrough_ll" -f -o source="$work/src" "$m" 2>/dev/null & pid=$!
		for _ in $(seq 250); do mountpoint -q "$m" && break; sleep 0.02; done
	else
		"$bin" "$work/src" "$m"
	fi
	v=$(readers_at "$m" "$2")
	fusermount3 -u -z "$m"
	[ -z "$pid" ] || wait "$pid" || true
	rmdir "$m"
	echo "$v"
}

cfgs=()
for n in ${readers//,/ }; do
	for t in raw stablefs pt; do cfgs+=("$t $n"); done
done
: >"$work/raw.tsv"
for ((r = 0; r < runs; r++)); do
	cat "$work"/src/f* >/dev/null	# SRC's bytes in the page cache
	k=${#cfgs[@]}
	for ((j = 0; j < k; j++)); do
		read -r t n <<<"${cfgs[$(((j + r) % k))]}"
		printf '%s\t%s\t%s\n' "$t" "$n" "$(one "$t" "$n")" >>"$work/raw.tsv"
	done
done
echo "# $(nproc) CPUs, $size MiB per file, $mode(2) $open, $runs rounds, aggregate MiB/s"
python3 - "$work/raw.tsv" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, n, v = line.split()
    runs[(t, int(n))].append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
names = {"raw": "raw SRC", "stablefs": "stablefs", "pt": "passthrough_ll"}
for n in sorted({n for _, n in runs}):
    for t in ("raw", "stablefs", "pt"):
        v = runs[(t, n)]
        extra = ""
        if t != "raw":
            extra = f"  {med[(t, n)] / med[('raw', n)]:.2f}x raw"
        if t == "stablefs":
            extra += f"  {med[(t, n)] / med[('pt', n)]:.2f}x passthrough_ll"
        print(f"{n} readers  {names[t]:15s} {med[(t, n)]:7.0f} ({min(v):.0f}..{max(v):.0f}){extra}")
EOF
