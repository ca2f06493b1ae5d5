#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Set up a fresh Debian 12 machine (as root), build cairn, and run the main
# job on demo data: create an encrypted repository and open it.
set -eu
cd "$(dirname "$0")"
. scripts/deps.sh
cairn_install_deps

if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
ninja -C build >/dev/null

demo=${CAIRN_DEMO_DIR:-$PWD/demo}
rm -rf "$demo"
mkdir -p "$demo"
umask 077
head -c 24 /dev/urandom | base64 > "$demo/passphrase"
export CAIRN_REPO="$demo/repo" CAIRN_PASSWORD_FILE="$demo/passphrase"

echo "== cairn init $CAIRN_REPO"
build/backupd/cairn init
echo "== cairn info"
build/backupd/cairn info
echo "== repository layout"
(cd "$CAIRN_REPO" && ls -l)
