#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn check through the CLI, as an operator meets it: silent when all is
# well, a flipped byte in a pack found by --read-data and named by pack id
# and file path, a lost pack, locking against prune, a rebuilt index that
# checks clean; and the backup's progress line, on a terminal only.
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true

S=$T/src/srv/app
mkdir -p "$S/dir"
printf 'hello\n' > "$S/hello.txt"
head -c 4000000 /dev/urandom > "$S/dir/random.bin"
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
REPO=$T/repo
cat > "$T/cairn.conf" <<CONF
[repository]
path = $REPO
password-file = $T/pw

[job app]
path = $S

[job slow]
command = head -c 2000000 /dev/zero; sleep 1; head -c 1000000 /dev/zero
filename = zeros.bin
CONF
export CAIRN_CONFIG=$T/cairn.conf

expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup app" -- "$CAIRN" backup app

# ---- a clean repository ----
expect 0 "check of a clean repository" -- "$CAIRN" check
test -z "$out" && test -z "$err"; tap_ok $? "is silent (stdout: '$out', stderr: '$err')"
expect 0 "check -v" -- "$CAIRN" check -v
contains "check: 1 snapshot, 1 pack (0 read" "$out" "prints a summary"
contains " 0 errors" "$out" "with no error"
expect 0 "check --read-data -v" -- "$CAIRN" check --read-data -v
contains "1 pack (1 read" "$out" "reads the pack"
expect 0 "check --read-data=50% --json" -- "$CAIRN" check --read-data=50% --json
echo "$out" | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d["ok"] and d["errors"] == 0 and d["packs_read"] == 1 and d["damaged"] == [], d'
tap_ok $? "--json reports ok, one pack of one read (rounded up)"
expect 2 "--read-data=0% is a usage error" -- "$CAIRN" check --read-data=0%
expect 0 "check --help" -- "$CAIRN" check --help
contains "--read-data" "$out" "describes --read-data"
expect 0 "cairn --help lists check" -- "$CAIRN" --help
contains "check [--read-data" "$out" "in the command list"

# ---- locks: shared with backups, exclusive against prune ----
L=$REPO/locks/repository.lock
mkdir -p "$REPO/locks"
# held_as MODE: wait until another process holds $L (-s or -x).
held_as() {
        for _ in $(seq 100); do
                if [ "$1" = -x ]; then flock -n -s "$L" true || return 0
                else flock -n -x "$L" true || return 0; fi
                sleep 0.05
        done
        return 1
}
flock -s "$L" sleep 2 & holder=$!
held_as -s; tap_ok $? "a stand-in backup holds the repository lock shared"
expect 0 "check beside a backup (the repository lock held shared)" -- "$CAIRN" check
wait $holder
flock -x "$L" sleep 2 & holder=$!
held_as -x; tap_ok $? "a stand-in prune holds the repository lock exclusively"
expect 75 "check while a prune holds the repository exits 75" -- "$CAIRN" check
contains "being pruned" "$err" "and says why"
expect 0 "check --wait waits for the prune" -- "$CAIRN" check --wait
wait $holder

# ---- the progress line: on a terminal, never into a pipe ----
tty_out=$(script -qec "$CAIRN backup --job tty $S" /dev/null </dev/null); tty_status=$?
tap_ok $tty_status "backup under a pseudo-terminal (script) succeeds"
printf '%s' "$tty_out" | grep -Eq 'tty: [0-9]+ files, [0-9]+\.[0-9] MiB \([0-9]+\.[0-9] MiB read\), [0-9]+\.[0-9] MiB/s'
tap_ok $? "prints the progress line: files, bytes, bytes read, rate"
printf '%s' "$tty_out" | grep -q $'\r\033\[K$'
tap_ok $? "and clears it at the end"
pipe_out=$("$CAIRN" backup --job pipe "$S" 2>&1 </dev/null | cat); pipe_status=${PIPESTATUS[0]}
tap_ok $pipe_status "backup into a pipe succeeds"
test -z "$pipe_out"; tap_ok $? "and prints nothing, no progress line (got '$pipe_out')"
q_out=$(script -qec "$CAIRN backup -q --job quiet $S" /dev/null </dev/null)
test -z "$q_out"; tap_ok $? "-q on a terminal prints no progress line (got '$q_out')"
# A command that pauses: the line printed after the pause counts what was read before it.
slow_out=$(script -qec "$CAIRN backup slow" /dev/null </dev/null); slow_status=$?
tap_ok $slow_status "a slow command backup under a terminal succeeds"
printf '%s' "$slow_out" | grep -Eq 'slow: 0 files, (1\.9|2\.[0-9]) MiB \((1\.9|2\.[0-9]) MiB read\)'
tap_ok $? "the progress line updates with the bytes read so far"
[ $? -eq 0 ] || printf '%s' "$slow_out" | od -c | head -20 | sed 's/^/#   /'
# The second time the previous snapshot's size (3,000,000 bytes) is known:
# after 2 MB, about two thirds, with an estimate of the time left.
slow_out=$(script -qec "$CAIRN backup slow" /dev/null </dev/null); slow_status=$?
tap_ok $slow_status "the slow backup again, with a previous snapshot"
printf '%s' "$slow_out" | grep -Eq 'slow: 0 files, (1\.9|2\.[0-9]) MiB \((1\.9|2\.[0-9]) MiB read\), [0-9.]+ MiB/s, ~(6[3-9]|7[0-9])%, ETA [0-9]+m[0-5][0-9]s'
tap_ok $? "the progress line shows ~% and an ETA estimated from the previous snapshot"
[ $? -eq 0 ] || printf '%s' "$slow_out" | od -c | head -20 | sed 's/^/#   /'
expect 0 "check after these backups" -- "$CAIRN" check --read-data

# ---- a flipped byte in a pack ----
pack=$(ls -S "$REPO"/packs/*/* | head -1)
pack_id=$(basename "$pack")
cp "$pack" "$T/pack.orig"
python3 - "$pack" <<'PY'
import os, sys
p = sys.argv[1]
at = os.path.getsize(p) // 2        # inside random.bin's data blobs
with open(p, "r+b") as f:
    f.seek(at); b = f.read(1)
    f.seek(at); f.write(bytes([b[0] ^ 0x01]))
PY
cmp -s "$pack" "$T/pack.orig"; test $? -eq 1; tap_ok $? "one byte of pack ${pack_id:0:12} flipped"
expect 0 "the structure check does not read blob data" -- "$CAIRN" check
expect 1 "check --read-data finds the flipped byte" -- "$CAIRN" check --read-data
contains "pack $pack_id: blob " "$err" "names the pack id"
contains "fails its integrity check" "$err" "says the blob fails its integrity check"
contains "damaged: app/" "$err" "names the snapshot"
contains "): $S/dir/random.bin" "$err" "names the damaged file's path"
case "$err" in *"$S/hello.txt"*) tap_ok 1 "does not name the intact file";; *) tap_ok 0 "does not name the intact file";; esac
contains "errors; " "$err" "ends with the summary"
expect 1 "check --read-data --json" -- "$CAIRN" check --read-data --json
echo "$out" | PACK=$pack_id F="$S/dir/random.bin" python3 -c '
import json,os,sys
d=json.load(sys.stdin)
assert not d["ok"] and d["errors"] >= 1, d
assert any(p.get("pack") == os.environ["PACK"] and "integrity" in p["message"] for p in d["problems"]), d
paths={x["path"] for x in d["damaged"] if x["job"] == "app"}
assert paths == {os.environ["F"]}, paths'
tap_ok $? "--json lists the problem with the pack id and exactly the damaged path"
expect 1 "restoring the damaged file fails" -- "$CAIRN" restore "app:$S/dir/random.bin" --target "$T/r-damaged"
test ! -e "$T/r-damaged$S/dir/random.bin" && test ! -e "$T/r-damaged/random.bin"; tap_ok $? "and writes no wrong bytes"
cp "$T/pack.orig" "$pack"
expect 0 "check --read-data passes once the pack is repaired" -- "$CAIRN" check --read-data

# ---- a lost pack ----
mv "$pack" "$T/pack.moved"
expect 1 "check without the pack" -- "$CAIRN" check
contains "pack $pack_id is missing" "$err" "names the missing pack"
contains "): $S/dir/random.bin" "$err" "and the files it held"
mv "$T/pack.moved" "$pack"

# ---- a rebuilt index checks clean ----
before=$("$CAIRN" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
rm -rf "$REPO/index"
expect 0 "index rebuild after deleting REPO/index" -- "$CAIRN" index rebuild
after=$("$CAIRN" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
test "$before" = "$after"; tap_ok $? "every snapshot is back ($after of $before)"
expect 0 "check of the rebuilt index" -- "$CAIRN" check -v
contains " 0 errors" "$out" "finds nothing wrong"
expect 0 "check --read-data of the rebuilt index" -- "$CAIRN" check --read-data

tap_finish
