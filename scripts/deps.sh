#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install the Debian 12 packages cairn needs to build and test.
# Sourced by demo.sh and test.sh; runs apt-get only when something is missing.
set -eu

CAIRN_DEPS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libfuse3-dev fuse3 libzstd-dev zstd libarchive-dev liblmdb-dev lmdb-utils
  libssl-dev openssl libjansson-dev libinih-dev python3 rsync acl attr
  postgresql podman runc bubblewrap libcurl4-openssl-dev libarchive-tools zip unzip rclone
  prometheus scdoc man-db groff-base bsdextrautils file dpkg-dev debhelper lintian"

cairn_install_deps() {
        missing=""
        for p in $CAIRN_DEPS; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
        done
        [ -z "$missing" ] && return 0
        if [ "$(id -u)" != 0 ]; then
                echo "cairn: missing Debian packages:$missing (run as root to install them)" >&2
                exit 1
        fi
        echo "cairn: installing$missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
