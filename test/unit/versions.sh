#!/usr/bin/env bash
# One version everywhere: meson.build's (passed in) is the one
# debian/changelog's newest entry (a native package: no Debian revision)
# and the man page's footer ("stablefs X.Y.Z") carry.
# Usage: versions.sh MESON_VERSION debian/changelog doc/stablefs.1
set -u
want=$1 changelog=$2 man=$3
fail=0

# The first line: "stablefs (VERSION) DIST; urgency=..."
deb=$(sed -n '1s/^stablefs (\([^)]*\)) .*/\1/p' "$changelog")
if [ "$deb" = "$want" ]; then
	echo "ok: debian/changelog is at $want"
else
	echo "not ok: debian/changelog's newest entry is '$deb', meson.build says '$want'"
	fail=1
fi
if command -v dpkg-parsechangelog >/dev/null; then
	parsed=$(dpkg-parsechangelog -l "$changelog" -S Version)
	if [ "$parsed" = "$want" ]; then
		echo "ok: dpkg-parsechangelog agrees"
	else
		echo "not ok: dpkg-parsechangelog says '$parsed', meson.build '$want'"
		fail=1
	fi
fi
th=$(sed -n 's/^\.TH STABLEFS 1 "[^"]*" "stablefs \([^"]*\)".*/\1/p' "$man")
if [ "$th" = "$want" ]; then
	echo "ok: the man page is at $want"
else
	echo "not ok: the man page's .TH says '$th', meson.build '$want'"
	fail=1
fi
exit $fail
