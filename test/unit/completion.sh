#!/usr/bin/env bash
# completion/stablefs.bash: bash -n accepts it, and sourced, it completes
# what the man page lists. Usage: completion.sh FILE
set -u
file=$1
fail=0

bash -n "$file" || { echo "not ok: bash -n $file"; exit 1; }
# compopt works only inside a completion in progress: a no-op here.
compopt() { :; }
# shellcheck source=/dev/null
. "$file"

# complete LINE: COMPREPLY with the cursor at the end of LINE, one per
# line, as bash sets the variables (COMP_WORDBREAKS: bash's default).
complete_line()
{
	COMP_LINE=$1
	COMP_POINT=${#COMP_LINE}
	COMP_WORDBREAKS=$' \t\n"\'><=;|&(:'
	read -ra COMP_WORDS <<<"$COMP_LINE"
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_stablefs
	printf '%s\n' "${COMPREPLY[@]}"
}

expect()
{
	local want=$1 got
	shift
	got=$(complete_line "$*")
	if ! grep -qxF -- "$want" <<<"$got"; then
		echo "not ok: '$*' lacks '$want' (got: $(echo $got))"
		fail=1
	else
		echo "ok: '$*' -> $want"
	fi
}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/srcdir"

for v in preserve detect ignore; do
	expect "$v" stablefs -o oob=
done
expect "detect" stablefs -o oob=d
expect "preserve" stablefs -o ro,oob=p
expect "ignore" stablefs -ooob=i
expect "off" stablefs -o snapshot=
expect "auto" stablefs -o clone=
expect "max_preserve=" stablefs -o max_p
expect "allow_other" stablefs -o allow_
expect "ro,nonempty" stablefs -o ro,non
expect "$tmp/srcdir" stablefs -o store=$tmp/src
expect "--version" stablefs --ver
expect "stats" stablefs st
expect "$tmp/srcdir" stablefs $tmp/src
expect "$tmp/srcdir" stablefs -o ro $tmp/srcdir $tmp/src
expect "$tmp/srcdir" stablefs stats $tmp/src
expect "--json" stablefs stats /mnt --
expect "snapshot" stablefs sn
expect "$tmp/srcdir" stablefs snapshot $tmp/src
expect "$tmp/srcdir" stablefs snapshot --delete $tmp/src
expect "$tmp/srcdir" stablefs snapshot --list $tmp/src
expect "--list" stablefs snapshot --l
expect "--delete" stablefs snapshot --d
expect "--json" stablefs snapshot --list /mnt --
# --delete offers MNT's views, from `stablefs snapshot --list MNT --json`:
# here a stand-in stablefs (the completion runs the one on the line).
cat >"$tmp/stablefs" <<'EOF'
#!/bin/sh
[ "$1 $2 $4" = "snapshot --list --json" ] || exit 2
printf '%s\n' '{"snapdir":".snapshots","views":[{"name":"nightly-2026-12-01","epoch":1},{"name": "weekly","epoch":2},{"name":"sp\u0022ace","epoch":3}]}'
EOF
chmod +x "$tmp/stablefs"
expect "nightly-2026-12-01" "$tmp/stablefs" snapshot --delete $tmp/srcdir n
expect "weekly" "$tmp/stablefs" snapshot --delete $tmp/srcdir ''
expect "nightly-2026-12-01" "$tmp/stablefs" snapshot $tmp/srcdir --delete ''
[ "$(complete_line "$tmp/stablefs snapshot --delete $tmp/srcdir " | sort | tr '\n' ' ')" = "nightly-2026-12-01 weekly " ] ||
	{ echo "not ok: --delete offers other than the two plain names"; fail=1; }
[ -z "$(complete_line "$tmp/stablefs snapshot $tmp/srcdir ")" ] ||
	{ echo "not ok: a NAME to take was completed"; fail=1; }
[ -z "$(complete_line "$tmp/stablefs snapshot --delete $tmp/srcdir weekly ")" ] ||
	{ echo "not ok: a word after NAME was completed"; fail=1; }
[ -z "$(complete_line "stablefs -o oob=z")" ] || { echo "not ok: oob=z completed"; fail=1; }
[ -z "$(complete_line "stablefs $tmp/srcdir $tmp/srcdir $tmp/s")" ] ||
	{ echo "not ok: a third directory completed"; fail=1; }
exit $fail
