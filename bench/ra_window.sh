#!/usr/bin/env bash
# Cold sequential reads through a fresh mount, by read-ahead window: a 1 GiB
# file whose SRC bytes are in the page cache, read once per mount (splice(2)
# to /dev/null and read(2), 1 MiB at a time), every configuration once per
# round, the order rotating round by round, with memcpy of 1 GiB (the copy
# the kernel must make into the FUSE page cache) and passthrough_ll in the
# same rounds. Prints median (min..max) MiB/s per configuration and the
# ratios of the medians. A benchmark, not a test. As root.
#   bench/ra_window.sh [--runs N] [--size MIB] [--ra LIST] [--open ro,rw]
#                      [--modes splice,read] [--pt] STABLEFS [STABLEFS_B]
# --ra: read-ahead windows in KiB (default 128,1024,4096); --open: O_RDONLY
# (a snapshot) and/or O_RDWR (the live file); --pt: passthrough_ll too.
# With STABLEFS_B, both binaries run in every round (A/B).
set -euo pipefail
runs=5 size=1024 ras=128,1024,4096 opens=ro modes=splice,read pt=0
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift ;;
	--size) size=$2; shift ;;
	--ra) ras=$2; shift ;;
	--open) opens=$2; shift ;;
	--modes) modes=$2; shift ;;
	--pt) pt=1 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 1 ] || { echo "usage: bench/ra_window.sh [options] STABLEFS [STABLEFS_B]" >&2; exit 2; }
bins=("$(realpath "$1")"); [ $# -ge 2 ] && bins+=("$(realpath "$2")")
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d /tmp/sfs-ra-XXXXXX)
cleanup() {	# a lazy unmount also ends a passthrough_ll left running
	for m in "$work"/mnt-*; do [ -d "$m" ] && fusermount3 -u -z "$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -D_GNU_SOURCE -o "$work/splice_read" "$here/splice_read.c"
if [ "$pt" = 1 ]; then
	cc -O2 -o "$work/passthrough_ll" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
		$(pkg-config --cflags --libs fuse3)
fi
mkdir -p "$work/src"
dd if=/dev/urandom of="$work/src/f" bs=1M count="$size" status=none

# One cold read: a fresh mount, one read of the whole file, unmount.
one() {	# BIN|pt RA MODE OPEN
	local m pid=""
	m=$(mktemp -d "$work/mnt-XXXXXX")
	if [ "$1" = pt ]; then
		"$work/passthrough_ll" -f -o source="$work/src" "$m" 2>/dev/null & pid=$!
		for _ in $(seq 250); do mountpoint -q "$m" && break; sleep 0.02; done
		echo "$2" >"/sys/class/bdi/$(mountpoint -d "$m")/read_ahead_kb"
	else
		"$1" -o "readahead_kb=$2" "$work/src" "$m"
	fi
	"$work/splice_read" "$m/f" "$3" 1 "$4" | awk '{print $2}'
	fusermount3 -u -z "$m"
	[ -z "$pid" ] || wait "$pid" || true
	rmdir "$m"
}

cfgs=("memcpy")
for mode in ${modes//,/ }; do
	for open in ${opens//,/ }; do
		for ra in ${ras//,/ }; do
			for i in "${!bins[@]}"; do cfgs+=("$i $ra $mode $open"); done
		done
		[ "$pt" = 1 ] && [ "$open" = ro ] && for ra in ${ras//,/ }; do cfgs+=("pt $ra $mode ro"); done
	done
done
: >"$work/raw"
for ((r = 0; r < runs; r++)); do
	cat "$work/src/f" >/dev/null	# SRC's bytes in the page cache
	n=${#cfgs[@]}
	for ((k = 0; k < n; k++)); do
		c=${cfgs[$(((k + r) % n))]}
		if [ "$c" = memcpy ]; then
			v=$("$work/splice_read" - memcpy 2 | awk 'END {print $2}')
			label=memcpy
		else
			read -r b ra mode open <<<"$c"
			if [ "$b" = pt ]; then bin=pt label="passthrough_ll"
			else bin=${bins[$b]} label=$([ "$b" = 0 ] && echo A || echo B); fi
			[ ${#bins[@]} = 1 ] && [ "$b" != pt ] && label=stablefs
			label="$label ra=$ra $mode $open"
			v=$(one "$bin" "$ra" "$mode" "$open")
		fi
		printf '%s\t%s\n' "$label" "$v" >>"$work/raw"
	done
done
python3 - "$work/raw" <<'EOF'
import collections, statistics, sys
runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    label, v = line.rstrip("\n").split("\t")
    runs.setdefault(label, []).append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
mc = med.get("memcpy")
for k, v in runs.items():
    extra = f"  {med[k] / mc:.2f}x memcpy" if mc and k != "memcpy" else ""
    pt = "passthrough_ll " + k.split(" ", 1)[-1]
    if pt in med and not k.startswith("passthrough_ll"):
        extra += f"  {med[k] / med[pt]:.2f}x passthrough_ll"
    print(f"{k:34s} {med[k]:7.0f} MiB/s ({min(v):.0f}..{max(v):.0f}){extra}")
EOF
