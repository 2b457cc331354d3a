#!/usr/bin/env bash
# Configure (once) and build into DIR (default: build), extra meson
# options after it, e.g.: scripts/build.sh build-asan -Db_sanitize=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" "$@" >/dev/null
else
	meson setup --reconfigure "$dir" "$@" >/dev/null
fi
ninja -C "$dir"
