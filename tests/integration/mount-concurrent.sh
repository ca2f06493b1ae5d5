#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Backups, forget and prune while mounted: a reader that keeps reading every
# file of a snapshot that is kept never sees an error, even when prune
# repacks the very pack that snapshot's data is in and deletes the old one.
set -u
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"

K=$T/src/keep
C=$T/src/churn
mkdir -p "$K/sub" "$C"
# Beside each kept file, a bigger one that only the first snapshot holds:
# once that snapshot is forgotten, every pack is less than half used and
# prune repacks the kept files' data (and deletes the old packs).
for i in 1 2 3 4 5; do
        head -c 5000000 /dev/urandom > "$K/f$i-keep.bin"
        head -c 12000000 /dev/urandom > "$K/f$i-zdrop.bin"
done
for i in $(seq 1 40); do printf 'small file %d\n' "$i" > "$K/sub/s$i.txt"; done
printf 'correct horse\n' > "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $T/repo
password-file = $T/pw

[job keep]
path = $K
keep-last = 2

[job churn]
path = $C
keep-last = 1
CONF
export CAIRN_CONFIG=$T/cairn.conf

expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup keep (with the *-zdrop.bin files)" -- "$CAIRN" backup keep
rm "$K"/*-zdrop.bin
sleep 1.1   # the kept snapshot gets a name of its own second
expect 0 "backup keep again (without them): the snapshot the reader reads" -- "$CAIRN" backup keep
first=$(snap_names keep | head -n 1)
kept=$(snap_names keep | tail -n 1)

M=$T/mnt
log=$T/cairnfs.log
# The smallest chunk cache (16 MiB) holds less than the 25 MB the reader
# reads in a cycle, so every pass reads the packs again.
mount_start "$log" "$M" -o password_file="$T/pw",cache_size=16 "$T/repo" "$M"; tap_ok $? "mount with a 16 MiB cache"
pid=$mnt_pid
P=$M/keep/$kept$K
test -d "$P"; tap_ok $? "the kept snapshot $kept is mounted"

# The reader: every file of the kept snapshot, whole, against the source's
# sha256; drops the file's pages from the kernel's cache before and after,
# so the daemon serves every pass.  Runs until $T/stop exists.
cat > "$T/reader.py" <<'EOF'
import hashlib, os, sys, time
src, mnt, stop, status = sys.argv[1:5]
want = {}
for d, _, files in os.walk(src):
    for f in files:
        p = os.path.join(d, f)
        want[os.path.relpath(p, src)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
passes = errors = 0
def report():
    with open(status + ".tmp", "w") as s:
        s.write("%d %d\n" % (passes, errors))
    os.replace(status + ".tmp", status)
while not os.path.exists(stop):
    seen = set()
    try:
        def fail(e):
            raise e
        for d, _, files in os.walk(mnt, onerror=fail):
            for f in files:
                seen.add(os.path.relpath(os.path.join(d, f), mnt))
    except OSError as e:
        errors += 1
        print("walk: %s" % e, flush=True)
    if seen != set(want):
        errors += 1
        print("walk: the listing differs: %s" % sorted(seen ^ set(want)), flush=True)
    for rel, h in sorted(want.items()):
        p = os.path.join(mnt, rel)
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                m = hashlib.sha256()
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    m.update(b)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            if m.hexdigest() != h:
                errors += 1
                print("%s: wrong bytes" % rel, flush=True)
        except OSError as e:
            errors += 1
            print("%s: %s" % (rel, e), flush=True)
    passes += 1
    report()
report()
EOF
python3 "$T/reader.py" "$K" "$P" "$T/stop" "$T/reader.status" > "$T/reader.log" 2>&1 &
reader=$!
pid_list+=("$reader")
passes() { cut -d' ' -f1 "$T/reader.status" 2>/dev/null || echo 0; }
# passes_after N: the reader has finished a pass that began after now.
passes_after() { test "$(passes)" -ge $(( $1 + 2 )); }
wait_for "the reader completes a pass" 120 passes_after -1

for i in 1 2 3; do
        head -c 5000000 /dev/urandom > "$C/data$i.bin"
        rm -f "$C/data$((i - 1)).bin"
        expect 0 "backup churn ($i) while the reader reads" -- "$CAIRN" backup churn
        expect 0 "forget --prune churn ($i)" -- "$CAIRN" forget --prune churn
done
printf 'changed\n' > "$K/sub/s1.txt"   # the next snapshot of keep differs; the reader still reads $kept
expect 0 "backup keep while mounted" -- "$CAIRN" backup keep
expect 0 "forget keep: keep-last 2 drops only the first snapshot" -- "$CAIRN" forget keep
test "$(snap_names keep | head -n 1)" = "$kept"; tap_ok $? "the reader's snapshot $kept is kept"
n=$(passes)
expect 0 "prune while the reader reads" -- "$CAIRN" prune --json
repacked=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["packs_repacked"])' 2>/dev/null)
deleted=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["packs_deleted"])' 2>/dev/null)
echo "# prune: packs_repacked=$repacked packs_deleted=$deleted; the reader was at pass $n when it began, at $(passes) when it ended"
test "${repacked:-0}" -ge 1; tap_ok $? "prune repacked the pack of the kept snapshot's data"
n=$(passes)
wait_for "the reader completes a pass after the prune (reading the repacked data)" 300 passes_after "$n"
touch "$T/stop"
wait "$reader"; tap_ok $? "the reader exits"
read -r total errors < "$T/reader.status"
test "$errors" -eq 0 && test "$total" -ge 2; tap_ok $? "the reader saw no error in $total passes over every file (errors: $errors)"
[ "$errors" -eq 0 ] || sed 's/^/#   /' "$T/reader.log" | head -n 20

# The kept snapshot still reads after it all, as does the newest.
diffs=$(rsync -a --omit-dir-times --exclude=/sub/s1.txt --dry-run --itemize-changes --checksum "$K/" "$P/" 2>&1)
test -z "$diffs"; tap_ok $? "rsync --checksum: the kept snapshot holds the source's files"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head
latest_is() { test -n "$1" && test "$(readlink "$M/keep/latest")" = "$1"; }
wait_for "keep/latest is the newest snapshot" 30 latest_is "$(latest_name keep)"
test "$(cat "$M/keep/latest$K/sub/s1.txt" 2>&1)" = changed; tap_ok $? "whose changed file reads"
test "$(snap_names churn | wc -l)" = 1; tap_ok $? "churn kept one snapshot"
listed() { test "$(ls "$M/$1" | tr '\n' ' ')" = "$( (snap_names "$1"; echo latest) | sort | tr '\n' ' ')"; }
wait_for "keep/ no longer lists the forgotten $first" 30 listed keep
wait_for "churn/ lists just its one snapshot (and latest)" 30 listed churn
kill -0 "$pid"; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "concurrent"
log_clean "$log" "concurrent"

tap_finish
