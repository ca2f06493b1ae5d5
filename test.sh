#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Set up a fresh Debian 12 machine (as root) and run the whole test suite:
#   1. gcc build, warnings are errors: unit and integration tests;
#   2. clang build with AddressSanitizer + UBSan: the same tests.
# The last line is "N passed, N failed[, N skipped]" over every check of both.
set -eu
cd "$(dirname "$0")"
. scripts/deps.sh
cairn_install_deps

setup() { # dir, then meson options
        dir=$1; shift
        if [ -f "$dir/build.ninja" ]; then
                meson setup --reconfigure "$dir" "$@" >/dev/null
        else
                meson setup "$dir" "$@" >/dev/null
        fi
}

status=0
CC=gcc setup build -Dwerror=true
ninja -C build
meson test -C build --print-errorlogs || status=1

CC=clang setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C build-asan --print-errorlogs || status=1

python3 scripts/count-tests.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json || status=1
exit $status
