#!/usr/bin/env bash
# A/B sequential read throughput of two stablefs binaries on one SRC, in the
# same run, alternating A and B so drift hits both alike. Prints per-mode
# median MiB/s (min..max) and the ratio B/A. A benchmark, not a test.
#   bench/ab_read.sh BIN_A BIN_B [SIZE_MIB=1024] [RUNS=7]
# A_OPTS / B_OPTS: -o options for each (e.g. B_OPTS=snapshot=off).
set -euo pipefail
a=$1 b=$2 size=${3:-1024} runs=${4:-7}
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d /tmp/sfs-ab-XXXXXX)
tool="$work/splice_read"
cleanup() {
	for m in "$work"/mnt-*; do fusermount3 -u -z "$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -D_GNU_SOURCE -o "$tool" "$here/splice_read.c"
mkdir -p "$work/src" "$work/mnt-a" "$work/mnt-b"
dd if=/dev/urandom of="$work/src/f" bs=1M count="$size" status=none
cat "$work/src/f" >/dev/null	# backing file hot: we measure the daemon
"$a" ${A_OPTS:+-o "$A_OPTS"} "$work/src" "$work/mnt-a"
"$b" ${B_OPTS:+-o "$B_OPTS"} "$work/src" "$work/mnt-b"

median() { sort -n | awk '{v[NR]=$1} END {printf "%d %d %d\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
for mode in splice read; do
	: >"$work/A" ; : >"$work/B"
	for ((i = 0; i < runs; i++)); do
		"$tool" "$work/mnt-a/f" "$mode" | awk '{print $2}' >>"$work/A"
		"$tool" "$work/mnt-b/f" "$mode" | awk '{print $2}' >>"$work/B"
	done
	read -r ma mina maxa < <(median <"$work/A")
	read -r mb minb maxb < <(median <"$work/B")
	printf '%-6s A %6d MiB/s (%d..%d)  B %6d MiB/s (%d..%d)  B/A %.3f\n' \
		"$mode" "$ma" "$mina" "$maxa" "$mb" "$minb" "$maxb" \
		"$(echo "$mb / $ma" | bc -l)"
done
