#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Random 4 KiB reads only, cairnfs and squashfuse alternating on the data
# bench/mount-bench.sh left in its work directory (run it first, with
# TOOLS including cairnfs and squashfuse).  Each round: drop caches, fresh
# mount, bench's randread.py (2000 reads, fixed seed).  Not a test.
#
#   bench/randread-pair.sh [ROUNDS]       (default 3)
#
# Environment: BENCH_DIR (default /var/tmp/cairn-mount-bench), CAIRNFS,
# CAIRNFS_CACHE (MiB, default 256).
set -eu
ROUNDS=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/var/tmp/cairn-mount-bench}
CAIRNFS=${CAIRNFS:-$here/build/fusefs/cairnfs}
CACHE=${CAIRNFS_CACHE:-256}
[ -f "$W/randread.py" ] && [ -f "$W/src.sqfs" ] && [ -d "$W/cairn" ] ||
        { echo "run bench/mount-bench.sh first (it leaves $W)" >&2; exit 1; }
M=$W/pair-mnt
mkdir -p "$M"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
file=rand/mixed.bin
for r in $(seq 1 "$ROUNDS"); do
        drop
        "$CAIRNFS" "$W/cairn" "$M" -o "password_file=$W/pw,cache_size=$CACHE"
        echo "cairnfs    $(python3 "$W/randread.py" "$M/bench/latest$W/src/$file" 2000 | cut -d' ' -f1-2)"
        fusermount3 -u "$M"
        drop
        squashfuse "$W/src.sqfs" "$M"
        echo "squashfuse $(python3 "$W/randread.py" "$M/$file" 2000 | cut -d' ' -f1-2)"
        fusermount3 -u "$M"
done
