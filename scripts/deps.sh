#!/usr/bin/env bash
# Install, with apt-get, every Debian package stablefs needs to build, run,
# test and benchmark. Installs only what is missing; safe to run again.
set -euo pipefail

packages=(
	gcc libc6-dev pkg-config meson ninja-build python3
	fuse3 libfuse3-dev libglib2.0-dev libxxhash-dev libcmocka-dev
	libsystemd-dev
	util-linux procps attr xfsprogs btrfs-progs fio rsync
	restic borgbackup
	dpkg-dev debhelper lintian fakeroot
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "stablefs: missing packages: ${missing[*]} (run as root to install them)" >&2
	exit 1
fi
echo "stablefs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
