#!/usr/bin/env bash
# The Debian package, end to end (meson test --suite package; as root):
#   - built with dpkg-buildpackage -us -uc -b from a copy of the source
#     tree (the work tree's tracked and new files, not its build dirs) in a
#     fresh temporary directory: nothing is written into the tree;
#   - lintian on the .deb and the .changes: no E: or W: line (overrides in
#     debian/stablefs.lintian-overrides are applied by lintian itself);
#   - what it holds: the binary, man page, bash completion, copyright,
#     docs, the systemd unit and the example instance configuration;
#   - installed with apt-get; /usr/bin/stablefs --version says VERSION and
#     the unit passes systemd-analyze verify;
#   - mount -t fuse.stablefs SRC MNT (as fstab does, through mount.fuse3)
#     runs /usr/bin/stablefs, a file reads through, umount ends the daemon;
#   - apt-get purge leaves nothing of the package: no dpkg record, none of
#     the files it listed, no /etc/stablefs.
# A stablefs installed by `meson install` (/usr/local) is not the package's
# and must come out untouched. Skipped (77) when not root, without the
# tools, without /dev/fuse, or when a stablefs package is already installed
# (purging it would remove what this test did not install).
# Usage: package.sh SOURCE_DIR VERSION
set -u
srcdir=$(cd "$1" && pwd) version=$2
arch=$(dpkg --print-architecture 2>/dev/null)
pkg=stablefs
fail=0

skip() { echo "1..0 # SKIP $*"; exit 77; }
ok() { echo "ok: $*"; }
bad() { echo "not ok: $*"; fail=1; }

[ "$(id -u)" -eq 0 ] || skip "installs a package: needs root"
for tool in dpkg-buildpackage lintian apt-get fusermount3; do
	command -v $tool >/dev/null || skip "no $tool"
done
[ -c /dev/fuse ] || skip "no /dev/fuse"
if dpkg-query -W -f='${Status}' $pkg 2>/dev/null | grep -q "installed"; then
	skip "a $pkg package is already installed"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sfs-package-XXXXXX") || exit 1
installed=false mnt= daemon=
cleanup() {
	if [ -n "$mnt" ] && grep -q " $mnt fuse.stablefs " /proc/self/mounts; then
		fusermount3 -u -z "$mnt"
	fi
	# Only the daemon this test mounted (found by our fresh MNT).
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null
	$installed && apt-get purge -y -q -o DPkg::Lock::Timeout=300 $pkg >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

# A meson-installed stablefs, if any: its bytes must not change.
local_before=$(sha256sum /usr/local/bin/stablefs 2>/dev/null)

# --- build, from a copy --------------------------------------------------
tree=$tmp/$pkg-$version
mkdir "$tree"
if git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked and new files as they are now, never ignored ones (build/).
	git -C "$srcdir" ls-files -z -c -o --exclude-standard |
		(cd "$srcdir" && xargs -0 tar --no-recursion -cf - --) |
		tar -C "$tree" -xf - || { bad "copy of $srcdir"; exit 1; }
else
	tar -C "$srcdir" --exclude='./build*' --exclude='./obj-*' -cf - . |
		tar -C "$tree" -xf - || { bad "copy of $srcdir"; exit 1; }
fi
# What git sees in the source tree, ignored files included (debian/stablefs/).
tree_state() { git -C "$srcdir" status --porcelain --ignored 2>/dev/null; }
state_before=$(tree_state)
echo "# dpkg-buildpackage in $tree"
if (cd "$tree" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b"
else
	tail -40 "$tmp/build.log"
	bad "dpkg-buildpackage failed"
	exit 1
fi
deb=$tmp/${pkg}_${version}_$arch.deb
changes=$tmp/${pkg}_${version}_$arch.changes
[ -f "$deb" ] && ok "built $(basename "$deb")" || { bad "no $deb"; ls "$tmp"; exit 1; }
[ -f "$changes" ] || { bad "no $changes"; exit 1; }
# The build happened in the copy only.
[ "$(tree_state)" = "$state_before" ] && ok "the source tree is as it was" ||
	bad "the source tree changed: $(diff <(echo "$state_before") <(tree_state))"

# --- lintian --------------------------------------------------------------
lintian "$deb" "$changes" >"$tmp/lintian.log" 2>&1
sed 's/^/# lintian: /' "$tmp/lintian.log"
if grep -qE '^[EW]: ' "$tmp/lintian.log"; then
	bad "lintian: $(grep -cE '^[EW]: ' "$tmp/lintian.log") error/warning line(s)"
else
	ok "lintian: no errors, no warnings"
fi

# --- contents -------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$tmp/contents"
for f in /usr/bin/stablefs /usr/share/man/man1/stablefs.1.gz \
	 /usr/share/bash-completion/completions/stablefs \
	 /usr/share/doc/stablefs/copyright /usr/share/doc/stablefs/README.md.gz \
	 /usr/share/doc/stablefs/changelog.gz \
	 /usr/share/doc/stablefs/examples/mnt-data.conf \
	 /lib/systemd/system/stablefs@.service; do
	grep -qxF "$f" "$tmp/contents" && ok "ships $f" || bad "does not ship $f"
done
depends=$(dpkg-deb -f "$deb" Depends)
for d in fuse3 libfuse3 libsystemd0 libglib2.0; do
	grep -q "$d" <<<"$depends" && ok "Depends: $d" || bad "Depends lacks $d: $depends"
done
grep -q "^License: GPL-2.0-or-later" "$srcdir/debian/copyright" &&
	ok "copyright: GPL-2.0-or-later" || bad "copyright: no GPL-2.0-or-later"

# --- install ----------------------------------------------------------------
installed=true	# from here on, cleanup purges (a no-op if it never got in)
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
	"$deb" >"$tmp/install.log" 2>&1; then
	ok "apt-get install"
else
	cat "$tmp/install.log"
	bad "apt-get install failed"
	exit 1
fi
dpkg -L $pkg >"$tmp/files"
got=$(/usr/bin/stablefs --version | head -1)
[ "$got" = "stablefs version $version" ] && ok "--version: $got" || bad "--version: '$got'"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify --man=no /lib/systemd/system/stablefs@.service 2>&1)
	[ -z "$out" ] && ok "systemd-analyze verify stablefs@.service" ||
		bad "systemd-analyze verify: $out"
fi

# --- mount as fstab would ---------------------------------------------------
mkdir "$tmp/src" "$tmp/mnt"
mnt=$tmp/mnt
echo "through the package" >"$tmp/src/file"
# mount.fuse3 runs "stablefs" from PATH: the package's, not /usr/local's.
if PATH=/usr/sbin:/usr/bin:/sbin:/bin mount -t fuse.stablefs "$tmp/src" "$mnt"; then
	ok "mount -t fuse.stablefs"
else
	bad "mount -t fuse.stablefs failed"
	exit 1
fi
for pid in $(pgrep -x stablefs); do
	grep -qF "$mnt" "/proc/$pid/cmdline" 2>/dev/null && daemon=$pid
done
exe=$([ -n "$daemon" ] && readlink "/proc/$daemon/exe")
[ "$exe" = /usr/bin/stablefs ] && ok "the daemon is /usr/bin/stablefs" ||
	bad "the daemon for $mnt is '$exe' (pid '$daemon')"
grep -q " $mnt fuse.stablefs " /proc/self/mounts && ok "$mnt is fuse.stablefs" ||
	bad "$mnt is not in /proc/self/mounts as fuse.stablefs"
got=$(cat "$mnt/file")
[ "$got" = "through the package" ] && ok "a file reads through" || bad "read '$got'"
umount "$mnt" && ok "umount" || bad "umount failed"
for _ in $(seq 100); do
	[ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null || break
	sleep 0.1
done
if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
	bad "the daemon $daemon outlived the unmount"
else
	daemon=
	ok "the daemon exited"
fi

# --- purge ------------------------------------------------------------------
if apt-get purge -y -q -o DPkg::Lock::Timeout=300 $pkg >"$tmp/purge.log" 2>&1; then
	installed=false
	ok "apt-get purge"
else
	cat "$tmp/purge.log"
	bad "apt-get purge failed"
fi
dpkg -L $pkg >/dev/null 2>&1 && bad "dpkg -L $pkg still answers" || ok "dpkg -L $pkg: gone"
dpkg-query -W -f='${Status}' $pkg 2>/dev/null | grep -q "installed\|config-files" &&
	bad "dpkg still knows $pkg: $(dpkg-query -W -f='${Status}' $pkg)" || ok "no dpkg record"
left=0
while read -r f; do
	# Directories are shared (/usr/bin); files and our own doc dir are not.
	if [ -e "$f" ] && { [ ! -d "$f" ] || [ "$f" = /usr/share/doc/stablefs ]; }; then
		bad "left behind: $f"
		left=1
	fi
done <"$tmp/files"
[ $left -eq 0 ] && ok "none of the $(wc -l <"$tmp/files") listed paths is left"
for f in /usr/bin/stablefs /etc/stablefs /var/lib/dpkg/info/$pkg.list; do
	[ -e "$f" ] && bad "left behind: $f" || ok "$f: gone"
done
[ "$(sha256sum /usr/local/bin/stablefs 2>/dev/null)" = "$local_before" ] &&
	ok "/usr/local/bin/stablefs untouched" || bad "/usr/local/bin/stablefs changed"
exit $fail
