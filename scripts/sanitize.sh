#!/usr/bin/env bash
# The slow sanitizer runs, one command (not run by CI; doc/sanitizers.md):
#
#   scripts/sanitize.sh [TSAN_DIR [PLAIN_DIR]]    (as root, /dev/fuse needed)
#
# 1. ThreadSanitizer: builds TSAN_DIR (default /tmp/sfs-tsan) with
#    -Db_sanitize=thread and runs the lib unit tests and the concurrency
#    tests; every report of every process (the daemons are children of the
#    tests) goes to $SANITIZE_OUT/tsan/r.PID.
# 2. valgrind memcheck: builds PLAIN_DIR (default /tmp/sfs-plain) without
#    sanitizers and runs twin, cli and escape with every daemon under
#    valgrind (leaks after unmount, invalid accesses, uninitialised bytes,
#    fds); one log per process in $SANITIZE_OUT/valgrind/vg.PID.
#
# Prints a summary and exits 1 if any report lies in our code (fs/, lib/,
# test/), 2 if a step could not run, 0 if clean. Test failures alone do not
# decide: a TSan daemon's reports and a daemon's valgrind exit status make
# tests fail by design (and cli cannot find a daemon under valgrind).
#
# Environment: SANITIZE_OUT (default /tmp/sfs-sanitize), SFS_STRESS_SECONDS
# (default 10), SANITIZE_SKIP=tsan|valgrind, CC (e.g. clang).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tsan_dir=${1:-/tmp/sfs-tsan}
plain_dir=${2:-/tmp/sfs-plain}
out=${SANITIZE_OUT:-/tmp/sfs-sanitize}
skip=${SANITIZE_SKIP:-}
export SFS_STRESS_SECONDS=${SFS_STRESS_SECONDS:-10}

tsan_tests=(test_range_lock test_inode_table test_history test_cred
	    test_options test_paths
	    test_xxh3 splice_stress snapshot_stress fsx_run stable_splice snapshot
	    digest)
vg_tests=(twin cli escape)
status=0
worse() { [ "$1" -gt "$status" ] && status=$1; }

# Our own mount base: whatever is left under it afterwards is ours to detach.
mkdir -p "$out"
tmp=$(mktemp -d "$out/mnt.XXXXXX") || exit 2
chmod 755 "$tmp"
cleanup() {
	local pid
	awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/mounts |
		while read -r m; do fusermount3 -uz "$m" 2>/dev/null; done
	# Daemons the tests left running (daemonized ones): only ours, by path.
	for pid in $(pgrep -f -- "$tmp/" 2>/dev/null); do
		[ "$pid" != $$ ] && kill "$pid" 2>/dev/null
	done
	rm -rf "$tmp" 2>/dev/null
}
trap cleanup EXIT

build() {	# dir, meson options...
	local dir=$1
	shift
	echo "== build $dir $*"
	if [ -f "$dir/build.ninja" ]; then
		(cd "$repo" && meson setup --reconfigure "$dir" "$@") >"$dir.setup.log" 2>&1
	else
		(cd "$repo" && meson setup "$dir" "$@") >"$dir.setup.log" 2>&1
	fi || { cat "$dir.setup.log"; return 1; }
	ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -n 30 "$dir.build.log"; return 1; }
}

# Does a report (one TSan block, one valgrind record) name our sources?
ours_re=' (fs|lib|test)/[a-z_]+\.c:[0-9]+'

run_tsan() {
	local rep="$out/tsan" prefix=()
	build "$tsan_dir" -Db_sanitize=thread -Db_lundef=false || return 1
	rm -rf "$rep"
	mkdir -p "$rep"
	# Newer kernels randomize mmap with more bits than TSan's fixed shadow
	# layout allows ("FATAL: ThreadSanitizer: unexpected memory mapping"):
	# then run everything without ASLR (inherited by every child).
	if "$tsan_dir/test/test_paths" 2>&1 | grep -q "unexpected memory mapping"; then
		echo "== TSan: unexpected memory mapping; running under setarch -R"
		prefix=(setarch "$(uname -m)" -R)
	fi
	echo "== TSan: ${tsan_tests[*]} (SFS_STRESS_SECONDS=$SFS_STRESS_SECONDS)"
	# exitcode=0: a daemon with reports must still exit 0 or the tests'
	# teardown fails; the reports are judged from the logs below.
	# G_SLICE=always-malloc: GSlice recycles blocks between threads under
	# GMutex (a raw futex TSan cannot see): false races on GArrays.
	TMPDIR="$tmp" G_SLICE=always-malloc \
	TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 history_size=4 log_path=$rep/r" \
		"${prefix[@]}" meson test -C "$tsan_dir" --num-processes 1 \
		--timeout-multiplier 3 "${tsan_tests[@]}" >"$rep/meson-test.log" 2>&1
	tsan_test_rc=$?
	grep -E '^ *[0-9]+/[0-9]+ ' "$rep/meson-test.log"
}

summarize_tsan() {
	local rep="$out/tsan" kinds distinct n_ours
	echo
	echo "== TSan reports ($rep)"
	if ! compgen -G "$rep/r.*" >/dev/null; then
		echo "   none (0 reports)"
		return
	fi
	kinds=$(cat "$rep"/r.* | sed -n 's/^WARNING: ThreadSanitizer: \(.*\) (pid=.*/\1/p' |
		sort | uniq -c)
	echo "   reports per kind:"
	echo "$kinds" | sed 's/^/   /'
	# Distinct: by kind and the top frame of each of the first two stacks.
	distinct=$(cat "$rep"/r.* | awk '
		/^WARNING: ThreadSanitizer:/ { kind = $0; sub(/ \(pid=.*/, "", kind);
			sub(/^WARNING: ThreadSanitizer: /, "", kind); n = 0; key = kind; next }
		/^    #0 / && n < 2 { f = $3; sub(/.*\.\.\//, "", f);
			if (match(f, /(fs|lib|test)\/[a-z_]+\.c:[0-9]+$/)) f = substr(f, RSTART);
			key = key " | " $2 " " f; n++; next }
		/^SUMMARY: ThreadSanitizer/ { print key }' | sort | uniq -c | sort -rn)
	echo "   distinct (count | kind | top frames of the two accesses):"
	echo "$distinct" | sed 's/^/   /'
	n_ours=$(echo "$distinct" | grep -cE "$ours_re")
	echo "   distinct reports in our code: $n_ours"
	[ "$n_ours" -gt 0 ] && worse 1
}

run_valgrind() {
	local rep="$out/valgrind" t wrapper
	build "$plain_dir" || return 1
	rm -rf "$rep"
	mkdir -p "$rep"
	wrapper="$rep/stablefs-under-valgrind"
	cat >"$wrapper" <<EOF
#!/bin/sh
exec valgrind --leak-check=full --show-leak-kinds=definite,indirect \\
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \\
	--track-fds=yes --num-callers=30 --log-file="$rep/vg.%p" \\
	"$plain_dir/fs/stablefs" "\$@"
EOF
	chmod +x "$wrapper"
	# meson's test() env sets STABLEFS_BIN itself (it wins over ours), so
	# the test programs run directly with the environment it would give.
	for t in "${vg_tests[@]}"; do
		echo "== valgrind: $t"
		(cd "$plain_dir" && TMPDIR="$tmp" STABLEFS_BIN="$wrapper" \
			CMOCKA_MESSAGE_OUTPUT=TAP G_SLICE=always-malloc \
			KFUSE_BIN="$plain_dir/test/kfuse_daemon" FSX_BIN="$plain_dir/test/fsx" \
			timeout 1800 "./test/$t") >"$rep/$t.log" 2>&1
		echo "   exit $? ($(grep -c '^ok' "$rep/$t.log") ok, $(grep -c '^not ok' "$rep/$t.log") not ok)"
	done
}

summarize_valgrind() {
	local rep="$out/valgrind" records n_ours ours
	echo
	echo "== valgrind reports ($rep)"
	if ! compgen -G "$rep/vg.*" >/dev/null; then
		echo "   no valgrind logs"
		worse 2
		return
	fi
	echo "   $(ls "$rep"/vg.* | wc -l) daemon processes, $(grep -l 'ERROR SUMMARY: [1-9]' "$rep"/vg.* | wc -l) with errors"
	# One record per error/leak/fd: headline and the frames below it.
	ours=$(cd "$repo" && ls fs/*.c lib/*.c | sed 's,.*/,,; s,\.c$,,' | paste -sd '|')
	# Fds still open when fuse_daemonize()'s parent _exit()s are the
	# child's: that process's fd records are not counted.
	records=$(awk -v ours="\\((${ours})\\.c:[0-9]+\\)" '
		function flush() {
			if (head != "") { rec[++n] = head " @ " where; isfd[n] = head ~ /^Open file/ }
			head = ""; where = ""
		}
		function done_file() {
			flush()
			for (i = 1; i <= n; i++) if (!(isfd[i] && daemonize_parent)) print rec[i]
			n = 0; daemonize_parent = 0
		}
		FNR == 1 && NR > 1 { done_file() }
		{ line = $0; sub(/^==[0-9]+== ?/, "", line) }
		line == "" { flush(); next }
		line ~ /^(Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap)/ ||
		line ~ /are (definitely|indirectly) lost/ ||
		(line ~ /^Open file descriptor/ && line !~ /vg\.[0-9]+$/) {
			flush(); head = line
			sub(/^[0-9,]+ (\([^)]*\) )?bytes in [0-9,]+ blocks/, "N bytes", head)
			sub(/ in loss record .*/, "", head)
			sub(/descriptor [0-9]+:.*/, "descriptor", head); next }
		head ~ /^Open file/ && line ~ /fuse_daemonize/ { daemonize_parent = 1 }
		head != "" && line ~ /^   (at|by) / && where == "" && line ~ ours {
			where = line; sub(/^ *(at|by) 0x[0-9A-F]+: /, "", where) }
		head != "" && line ~ /<inherited from parent>/ { head = "" }
		END { done_file() }' "$rep"/vg.* | sort | uniq -c | sort -rn)
	if [ -z "$records" ]; then
		echo "   none (0 records)"
		return
	fi
	echo "   records (count | kind @ first frame in our code):"
	echo "$records" | sed 's/^/   /'
	n_ours=$(echo "$records" | grep -c ' @ [^ ]')
	echo "   distinct records in our code: $n_ours"
	[ "$n_ours" -gt 0 ] && worse 1
}

[ "$(id -u)" = 0 ] || echo "stablefs: mount tests need root; they will skip"
if [ "$skip" != tsan ]; then
	if run_tsan; then summarize_tsan; else echo "TSan build failed"; worse 2; fi
fi
if [ "$skip" != valgrind ]; then
	if run_valgrind; then summarize_valgrind; else echo "plain build failed"; worse 2; fi
fi
echo
case $status in
0) echo "sanitize: clean" ;;
1) echo "sanitize: reports in our code (see above and $out)" ;;
*) echo "sanitize: a step could not run" ;;
esac
exit $status
