#!/usr/bin/env bash
# One command: install what is missing, build, and mount SRC on MNT.
#   scripts/demo.sh [SRC MNT]      (default: /tmp/stablefs-demo/{src,mnt})
# Unmount with: fusermount3 -u MNT
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/deps.sh"
"$here/build.sh" build >/dev/null
src=${1:-/tmp/stablefs-demo/src}
mnt=${2:-/tmp/stablefs-demo/mnt}
if [ $# -eq 0 ]; then
	mkdir -p "$src" "$mnt"
	[ -e "$src/hello.txt" ] || echo "hello from stablefs" >"$src/hello.txt"
fi
"$here/../build/fs/stablefs" "$src" "$mnt"
echo "stablefs: $src is mounted on $mnt (unmount: fusermount3 -u $mnt)"
