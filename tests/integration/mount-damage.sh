#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A damaged pack under a mount: reads of the file whose data it holds fail
# with EIO (never wrong bytes), everything else still reads, the daemon
# keeps running and its log names the pack.
set -u
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"

printf 'correct horse\n' > "$T/pw"
c() { "$CAIRN" -r "$T/repo" --password-file "$T/pw" "$@"; }
A=$T/src/alpha
B=$T/src/beta
mkdir -p "$A" "$B"
head -c 8000000 /dev/urandom > "$A/big.bin"
printf 'alpha notes\n' > "$A/notes.txt"
head -c 2000000 /dev/urandom > "$B/other.bin"
printf 'beta notes\n' > "$B/notes.txt"

expect 0 "init" -- c init --scrypt-n 1024
packs() { find "$T/repo/packs" -type f ! -name '.*' | sort; }
expect 0 "backup job alpha" -- c backup --job alpha "$A"
packs > "$T/packs.alpha"
expect 0 "backup job beta" -- c backup --job beta "$B"
packs > "$T/packs.all"
beta_packs=$(comm -13 "$T/packs.alpha" "$T/packs.all")
test -n "$beta_packs"; tap_ok $? "beta's data went to a pack of its own ($(echo $beta_packs | wc -w))"
# alpha's biggest pack holds big.bin's chunks; damage one byte in its middle.
pack=$(xargs -d '\n' ls -S < "$T/packs.alpha" | head -n 1)
pack_id=$(basename "$pack")
size=$(stat -c %s "$pack")
test "$size" -gt 4000000; tap_ok $? "alpha's big pack found: $pack_id ($size bytes)"
python3 - "$pack" $((size / 2)) <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1)
    f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x5a]))
EOF
tap_ok $? "one byte flipped at offset $((size / 2)) of $pack_id"

M=$T/mnt
log=$T/cairnfs.log
mount_start "$log" "$M" -o password_file="$T/pw" "$T/repo" "$M"; tap_ok $? "mount"
pid=$mnt_pid
PA=$M/alpha/latest$A
PB=$M/beta/latest$B

out=$(timeout 120 cat "$PA/big.bin" 2>&1 >/dev/null); st=$?
test "$st" -ne 0 && test "$st" -ne 124; tap_ok $? "reading the damaged file fails (exit $st)"
contains "Input/output error" "$out" "with EIO"
out=$(timeout 120 cat "$PA/big.bin" 2>&1 >/dev/null); st=$?
contains "Input/output error" "$out" "and again on a second read (exit $st)"
# Never wrong bytes: every 64 KiB block that does read is the source's.
timeout 300 python3 - "$A/big.bin" "$PA/big.bin" <<'EOF'
import os, sys
src = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_RDONLY)
bs, good, failed, wrong = 65536, 0, 0, 0
for off in range(0, len(src), bs):
    try:
        b = os.pread(fd, bs, off)
    except OSError:
        failed += 1
        continue
    if b != src[off:off + len(b)] or not b:
        wrong += 1
    else:
        good += 1
print("# blocks: %d read right, %d failed, %d wrong" % (good, failed, wrong))
sys.exit(1 if wrong or not failed or not good else 0)
EOF
tap_ok $? "block by block: the damaged blocks fail, the others read the source's bytes (never wrong data)"
# Read at random (4 KiB blocks in a shuffled order where no read is
# within 2.5 MiB of the one before: most blocks of the file), the damage costs about one
# 64 KiB segment, not its whole chunk (this one is over 1 MB: chunks are
# at least 512 KiB).  Slack for the kernel's own readahead: a large
# request near the damaged segment is served as the whole chunk and fails.
timeout 300 python3 - "$A/big.bin" "$PA/big.bin" <<'EOF'
import os, random, sys
src = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_RDONLY)
blocks = len(src) // 4096
rest = list(range(blocks))
random.Random(3).shuffle(rest)
order, prev = [], -10**9
while rest:   # till only blocks near the last one are left
    i = next((j for j, b in enumerate(rest) if abs(b - prev) * 4096 > 2.5 * 2**20), None)
    if i is None:
        break
    prev = rest.pop(i)
    order.append(prev)
failed, wrong = [], 0
for b in order:
    off = b * 4096
    try:
        got = os.pread(fd, 4096, off)
    except OSError:
        failed.append(off)
        continue
    if got != src[off:off + 4096]:
        wrong += 1
span = (max(failed) - min(failed) + 4096) if failed else 0
runs = []
for off in sorted(failed):
    if runs and off == runs[-1][1]:
        runs[-1][1] = off + 4096
    else:
        runs.append([off, off + 4096])
print("# failed ranges: " + " ".join("%d+%dK" % (a, (b - a) // 1024) for a, b in runs))
print("# 4 KiB random reads: %d of %d failed, over %d KiB; %d wrong" % (len(failed), len(order), span // 1024, wrong))
# One segment is 16 or 17 pages; a whole chunk at least 128.
sys.exit(1 if wrong or not failed or len(failed) > 3 * 17 or len(order) < blocks * 3 // 4 else 0)
EOF
tap_ok $? "random 4 KiB reads: the damaged segment fails (never wrong bytes), the rest of its chunk reads"
kill -0 "$pid" 2>/dev/null && mountpoint -q "$M"; tap_ok $? "the daemon is still alive and mounted"
cmp -s "$B/other.bin" "$PB/other.bin"; tap_ok $? "a file of the other job reads"
cmp -s "$B/notes.txt" "$PB/notes.txt"; tap_ok $? "a small file of the other job reads"
cmp -s "$A/notes.txt" "$PA/notes.txt"; tap_ok $? "a small file of the damaged job (its blob intact) reads"
test "$(ls "$PA" | tr '\n' ' ')" = "big.bin notes.txt "; tap_ok $? "the damaged job's directory lists"
test "$(stat -c %s "$PA/big.bin")" = 8000000; tap_ok $? "the damaged file's metadata is served"
grep -q "$pack_id" "$log"; tap_ok $? "the daemon's log names the pack $pack_id"
grep -F "$pack_id" "$log" | head -n 3 | sed 's/^/#   /'

kill -0 "$pid"; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "damage"
log_clean "$log" "damage"

tap_finish
