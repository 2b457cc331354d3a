#!/usr/bin/env bash
# One command: install what is missing, build (-Werror), run every test;
# then build again with AddressSanitizer + UBSan and the lock-order check
# (include/sfs/lock_order.h), and run every test again.
# Exits non-zero if any test fails. Mount tests need root and /dev/fuse.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
"$here/deps.sh" || exit 1

status=0
run_suite() {	# build dir, meson test options, meson options...
	local dir=$1 test_opts=$2
	shift 2
	echo "== $dir: build"
	"$here/build.sh" "$dir" "$@" >"$dir.build.log" 2>&1 ||
		{ cat "$dir.build.log"; echo "stablefs: $dir: build failed"; status=1; return; }
	echo "== $dir: meson test"
	# shellcheck disable=SC2086
	meson test -C "$dir" --print-errorlogs --num-processes 2 $test_opts || status=1
}

run_suite build ""
# The package suite builds the Debian package from the sources, not from
# the build dir: once is enough.
run_suite build-asan "--no-suite package" \
	-Db_sanitize=address,undefined -Db_lundef=false -Dlock_debug=true

python3 "$here/summarize-tests.py" build build-asan || status=1
exit $status
