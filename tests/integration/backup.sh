#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn backup / run / restore end to end, as an operator would check it:
# restore fidelity compared by rsync, incremental reads, partial snapshots,
# command sources, locks, kill -9.
set -u
# Part of it runs as an unprivileged user, who must reach the test directory.
CAIRN_TEST_TMPDIR=/tmp
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true

# ---- a source tree with every kind of entry ----
S=$T/src/srv/app
mkdir -p "$S/dir/sub" "$S/empty" "$S/sticky" "$S/hl"
printf 'hello\n' > "$S/hello.txt"
head -c 3000000 /dev/urandom > "$S/dir/random.bin"
seq 1 200000 > "$S/dir/sub/numbers.txt"
: > "$S/zero-length"
ln -s ../hello.txt "$S/dir/link-to-hello"
ln -s /nonexistent/target "$S/dangling"
printf 'linked\n' > "$S/hl/a"
ln "$S/hl/a" "$S/hl/b"
ln "$S/hl/a" "$S/dir/c-same-inode"
truncate -s 64M "$S/sparse.img"
printf 'start' | dd of="$S/sparse.img" conv=notrunc status=none
printf 'middle' | dd of="$S/sparse.img" bs=1 seek=$((32*1024*1024)) conv=notrunc status=none
mkfifo "$S/fifo"
mknod "$S/null-dev" c 1 3
printf '#!/bin/sh\n' > "$S/setuid-prog"
chown 1234:5678 "$S/setuid-prog"
chmod 4755 "$S/setuid-prog"
chmod 1777 "$S/sticky"
chmod 0600 "$S/hello.txt"
setfattr -n user.origin -v "from-the-test" "$S/hello.txt"
setfacl -m u:1234:r-- "$S/dir/sub/numbers.txt"
setfacl -d -m u:1234:rwx "$S/dir"
touch -h -d '2021-03-04 05:06:07.123456789' "$S/dir/link-to-hello"
touch -d '2020-01-02 03:04:05.987654321' "$S/dir/sub/numbers.txt"
touch -d '2019-05-06 07:08:09.5' "$S/empty"

printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $T/repo
password-file = $T/pw

[job app]
path = $S
exclude = *.tmp
keep-last = 3

[job dump]
command = printf 'CREATE TABLE t (x int);\\nINSERT INTO t VALUES (1);\\n'
filename = dump.sql

[job broken]
command = echo "pg_dumpall: error: connection refused" >&2; exit 2
filename = dump.sql
CONF
export CAIRN_CONFIG=$T/cairn.conf
printf 'junk' > "$S/skip-me.tmp"

expect 0 "init from the config" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup app" -- "$CAIRN" backup app
test -z "$out"; tap_ok $? "backup is silent on success (stdout: '$out')"

expect 0 "snapshots --json" -- "$CAIRN" snapshots --json app
count=$(echo "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
test "$count" = 1; tap_ok $? "one snapshot of app"

expect 0 "restore app/latest" -- "$CAIRN" restore app --target "$T/restore1"
R=$T/restore1$S
diffs=$(rsync -aHAXS -@-1 --numeric-ids --dry-run --itemize-changes --exclude=skip-me.tmp "$S/" "$R/" 2>&1) || true
test -z "$diffs"; tap_ok $? "rsync -aHAXS --dry-run finds no difference between source and restore"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head -20
test ! -e "$R/skip-me.tmp"; tap_ok $? "excluded file is not in the snapshot"
cmp -s "$S/dir/random.bin" "$R/dir/random.bin"; tap_ok $? "random data restored byte for byte"
test "$(stat -c %i "$R/hl/a")" = "$(stat -c %i "$R/dir/c-same-inode")"; tap_ok $? "hard links restored as one inode"
test "$(stat -c %h "$R/hl/a")" = 3; tap_ok $? "with link count 3"
test "$(du -k "$R/sparse.img" | cut -f1)" -le 64; tap_ok $? "sparse file restored sparse ($(du -k "$R/sparse.img" | cut -f1) KiB for 64 MiB)"
test "$(du -k "$R/sparse.img" | cut -f1)" = "$(du -k "$S/sparse.img" | cut -f1)"; tap_ok $? "du of the copy equals du of the original"
test "$(stat -c %a:%u:%g "$R/setuid-prog")" = "4755:1234:5678"; tap_ok $? "setuid mode and owner"
test "$(stat -c %a "$R/sticky")" = 1777; tap_ok $? "sticky directory"
test "$(getfattr --only-values -n user.origin "$R/hello.txt" 2>/dev/null)" = from-the-test; tap_ok $? "xattr"
getfacl -p "$R/dir/sub/numbers.txt" 2>/dev/null | grep -q '^user:1234:r--'; tap_ok $? "ACL"
getfacl -p -d "$R/dir" 2>/dev/null | grep -q '^user:1234:rwx'; tap_ok $? "default ACL"
test "$(stat -c %y "$R/dir/sub/numbers.txt")" = "$(stat -c %y "$S/dir/sub/numbers.txt")"; tap_ok $? "mtime with nanoseconds"
test "$(stat -c %F:%t:%T "$R/null-dev")" = "character special file:1:3"; tap_ok $? "device node"
test -p "$R/fifo"; tap_ok $? "fifo"
test "$(readlink "$R/dangling")" = /nonexistent/target; tap_ok $? "dangling symlink kept as a link"
test -d "$R/empty" && test -z "$(ls -A "$R/empty")"; tap_ok $? "empty directory"
(cd "$S" && tar --exclude=skip-me.tmp -cf - --xattrs --acls . | tar -C "$R" --compare --xattrs --acls -f - >/dev/null 2>"$T/tarcmp") ; tap_ok $? "GNU tar --compare against the restore finds nothing"

# ---- incremental ----
expect 0 "second backup of an unchanged tree" -- "$CAIRN" backup app --json
read_bytes=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_read"])')
test "$read_bytes" = 0; tap_ok $? "reads no file data (bytes_read=$read_bytes)"
added=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["added_bytes"])')
# Only the directories above the source (whose mtime the test changed) are new.
test "$added" -lt 2000; tap_ok $? "stores no new tree for the unchanged source (added_bytes=$added)"
head -c 100000 /dev/urandom > "$S/dir/new.bin"
expect 0 "third backup after adding a 100000-byte file" -- "$CAIRN" backup app --json
read_bytes=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_read"])')
test "$read_bytes" = 100000; tap_ok $? "reads exactly the new file (bytes_read=$read_bytes)"
expect 0 "ls of the latest snapshot" -- "$CAIRN" ls "app:$S/dir"
contains "$S/dir/new.bin" "$out" "ls shows the new file"
expect 0 "ls -l" -- "$CAIRN" ls -l "app:$S/setuid-prog"
contains "rwsr-xr-x" "$out" "ls -l shows the setuid mode"
first=$("$CAIRN" snapshots --json app | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
expect 0 "restore the first snapshot by id prefix, one subdirectory" -- "$CAIRN" restore "${first:0:10}:$S/dir" --target "$T/restore-old"
test ! -e "$T/restore-old/dir/new.bin" && cmp -s "$S/dir/random.bin" "$T/restore-old/dir/random.bin"; tap_ok $? "the old snapshot does not have the new file"

# ---- one-file-system: a mount point is kept as an empty directory ----
mkdir -p "$T/fs/mnt" && printf 'outer\n' > "$T/fs/outer.txt"
if mount -t tmpfs -o size=1m cairn-test "$T/fs/mnt"; then
        printf 'inner\n' > "$T/fs/mnt/inner.txt"
        expect 0 "backup --one-file-system across a mount point" -- "$CAIRN" backup --job fs --one-file-system "$T/fs"
        expect 0 "ls -R of it" -- "$CAIRN" ls -R "fs:$T/fs"
        contains "$T/fs/mnt/" "$out" "the mount point is there"
        case "$out" in *inner.txt*) tap_ok 1 "the mounted filesystem's files are not";; *) tap_ok 0 "the mounted filesystem's files are not";; esac
        expect 0 "without --one-file-system" -- "$CAIRN" backup --job fs2 "$T/fs"
        expect 0 "ls -R" -- "$CAIRN" ls -R "fs2:$T/fs"
        contains "$T/fs/mnt/inner.txt" "$out" "the mounted files are included"
        umount "$T/fs/mnt"
else
        tap_ok 1 "mount a tmpfs for the one-file-system test"
fi

# ---- command sources ----
expect 0 "command job" -- "$CAIRN" backup dump
expect 0 "restore the dump" -- "$CAIRN" restore dump --target "$T/dump"
printf 'CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\n' | cmp -s - "$T/dump/dump.sql"; tap_ok $? "the command's stdout is the file"
expect 1 "a failing command fails the job" -- "$CAIRN" backup broken
contains 'job "broken": command' "$err" "naming the job and command"
contains "exited with status 2: pg_dumpall: error: connection refused" "$err" "with its status and stderr"
expect 1 "no snapshot of the failed job" -- "$CAIRN" restore broken --target "$T/nothing"
contains 'Job "broken" has no snapshots' "$err" "restore says there is none"

# ---- cairn run: exit status and output ----
expect 1 "run with a failing job exits 1" -- "$CAIRN" run
sed -i '/^\[job broken\]/,$d' "$T/cairn.conf"
expect 0 "run with good jobs exits 0" -- "$CAIRN" run
test -z "$out"; tap_ok $? "run is silent on success"
expect 0 "run -v prints a line per job" -- "$CAIRN" run -v
contains "app: ok, snapshot" "$out" "line for app"
contains "dump: ok, snapshot" "$out" "line for dump"

# ---- a partial snapshot: an unreadable file, as an unprivileged user ----
mkdir -p "$T/user/data"
printf 'public\n' > "$T/user/data/public.txt"
printf 'secret\n' > "$T/user/data/secret.txt"
chmod 600 "$T/user/data/secret.txt"
chown -R 65534:65534 "$T/user"
chown root:root "$T/user/data/secret.txt"
chmod 711 "$T"
nobody() { env -u CAIRN_CONFIG setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
cp "$CAIRN" "$T/cairn-copy" && chmod 755 "$T/cairn-copy"   # the checkout may be unreadable to nobody
expect 0 "an unprivileged user's repository" -- nobody "$T/cairn-copy" -r "$T/user/repo" init --no-encryption
expect 3 "backup with an unreadable file is partial (exit 3)" -- nobody "$T/cairn-copy" -r "$T/user/repo" backup --job userdata "$T/user/data"
contains "secret.txt: cannot open: Permission denied" "$err" "the warning names the file and the reason"
expect 0 "snapshots list it" -- env -u CAIRN_CONFIG "$CAIRN" -r "$T/user/repo" snapshots --json
echo "$out" | python3 -c '
import json,sys
s=json.load(sys.stdin)[0]
assert s["status"]=="partial", s
assert any(e["path"].endswith("secret.txt") and "Permission denied" in e["reason"] for e in s["errors"]), s' 
tap_ok $? "the record is partial and lists the path and reason"
expect 0 "snapshots (text) marks it" -- env -u CAIRN_CONFIG "$CAIRN" -r "$T/user/repo" snapshots
contains "partial" "$out" "as partial"

# ---- locks ----
cat >> "$T/cairn.conf" <<CONF

[job slow]
command = sleep 3; echo done
filename = slow.txt
CONF
"$CAIRN" backup slow & slow_pid=$!
sleep 1
expect 75 "a second backup of a running job exits 75" -- "$CAIRN" backup slow
contains "is already running (pid $slow_pid)" "$err" "naming the pid"
expect 0 "--wait waits for it instead" -- "$CAIRN" backup --wait slow
wait $slow_pid; tap_ok $? "the first one succeeded"

# ---- kill -9 in the middle of a backup ----
cat >> "$T/cairn.conf" <<CONF

[job big]
command = head -c 300000000 /dev/urandom
filename = big.bin
CONF
"$CAIRN" backup big & big_pid=$!
sleep 1.5
kill -9 $big_pid; wait $big_pid 2>/dev/null || true
expect 0 "a backup after kill -9 succeeds" -- "$CAIRN" backup app
expect 0 "check after kill -9 and the next backup" -- "$CAIRN" check -v
contains " 0 errors" "$out" "check's summary counts no error"
expect 0 "check --read-data after kill -9" -- "$CAIRN" check --read-data
test -z "$out"; tap_ok $? "check is silent on success (stdout: '$out')"
expect 0 "the earlier snapshot still restores" -- "$CAIRN" restore "${first:0:10}" --target "$T/after-kill"
diffs=$(rsync -aHAXS -@-1 --numeric-ids --dry-run --itemize-changes "$T/restore-old/dir/" "$T/after-kill$S/dir/" 2>&1) || true
test -z "$diffs"; tap_ok $? "byte-identical after the kill"
expect 0 "index rebuild after the kill" -- "$CAIRN" index rebuild
expect 0 "restore after the rebuild" -- "$CAIRN" restore app --target "$T/after-rebuild"
cmp -s "$S/dir/new.bin" "$T/after-rebuild$S/dir/new.bin"; tap_ok $? "same bytes through the rebuilt index"

# ---- forget and prune (app keeps the last 3) ----
n_app() { "$CAIRN" snapshots --json app | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
before=$(n_app)
expect 0 "forget --dry-run" -- "$CAIRN" forget --dry-run app
test "$(echo "$out" | grep -c 'would forget')" = $((before - 3)); tap_ok $? "lists the $((before - 3)) snapshot(s) beyond keep-last 3"
test "$(n_app)" = "$before"; tap_ok $? "and removes nothing"
expect 0 "forget --prune" -- "$CAIRN" forget --prune app
test "$(n_app)" = 3; tap_ok $? "three snapshots of app remain"
expect 0 "the latest still restores after prune" -- "$CAIRN" restore app --target "$T/after-prune"
cmp -s "$S/dir/random.bin" "$T/after-prune$S/dir/random.bin"; tap_ok $? "with the same bytes"
expect 0 "a second prune has nothing to do" -- "$CAIRN" prune --json
echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["packs_deleted"]==0 and d["packs_repacked"]==0, d'
tap_ok $? "no pack deleted or repacked"

# A backup that meets a running prune waits for it instead of failing
# (a stand-in prune: the repository lock held exclusively for 2 s).
L=$T/repo/locks/repository.lock
flock -x "$L" sleep 2 & holder=$!
for _ in $(seq 100); do flock -n -s "$L" true || break; sleep 0.05; done
! flock -n -s "$L" true; tap_ok $? "a stand-in prune holds the repository lock"
expect 0 "a backup during the prune waits for it and succeeds" -- "$CAIRN" -v backup app
contains "waiting for the prune" "$err" "and says that it waits (with -v)"
! kill -0 $holder 2>/dev/null; tap_ok $? "it finished only after the prune let go"
wait $holder

tap_finish
