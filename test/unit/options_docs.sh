#!/usr/bin/env bash
# Every stablefs -o option that `stablefs --help` lists is documented in
# README.md and the man page and completed by completion/stablefs.bash,
# and none of them documents an option --help does not know.
# Usage: options_docs.sh STABLEFS README MANPAGE COMPLETION
set -u
bin=$1 readme=$2 man=$3 completion=$4
fail=0

# --help lists ours under "stablefs options:", up to a blank line.
ours=$("$bin" --help 2>&1 |
	awk '/^stablefs options:/ { on = 1; next } /^$/ { on = 0 } on' |
	grep -oE '^ +-o [a-z_]+' | awk '{print $2}' | sort -u)
[ -n "$ours" ] || { echo "not ok: no options found in --help"; exit 1; }

for o in $ours; do
	grep -qE -- "-o ${o}([= \`]|\$)" "$readme" ||
		{ echo "not ok: README.md does not document -o $o"; fail=1; }
	grep -qE -- "^\.B[IR]? ${o}(=|\$| )" "$man" ||
		{ echo "not ok: the man page does not document -o $o"; fail=1; }
	grep -qE -- "\b${o}\b" "$completion" ||
		{ echo "not ok: the completion does not offer -o $o"; fail=1; }
done

# The other way: options the man page lists under OPTIONS (.BI name=)
# that --help does not know.
for o in $(sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$man" |
	   grep -oE '^\.B[IR]? [a-z_]+' | awk '{print $2}' | sort -u); do
	grep -qx -- "$o" <<<"$ours" || {
		# libfuse's options may be documented too: they pass through.
		"$bin" --help 2>&1 | grep -qE -- "-o $o\b" ||
			{ echo "not ok: the man page lists -o $o, --help does not"; fail=1; }
	}
done
[ $fail -eq 0 ] && echo "ok: $(echo $ours | wc -w) options agree in --help, README, man page, completion"
exit $fail
