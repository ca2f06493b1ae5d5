#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn sync: an offsite copy holds config, keys, packs and snapshot files
# (never index/ or locks/), a second sync copies nothing, a new backup only
# its new files; --verify proves the copy whole and names a pack it lacks;
# forget + prune then --delete leave exactly the source's files; an
# encrypted copy holds no plaintext name or content; and from the copy
# alone (a new path, only the passphrase file) index rebuild, check
# --read-data and a cairnfs mount give back every job's latest snapshot
# byte for byte.  The same through rclone to a local remote.
set -u
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
if [ -z "$T" ] || [ ! -d "$T" ]; then
        echo "Bail out! no temporary directory (is CAIRN_TEST_TMPDIR=${CAIRN_TEST_TMPDIR:-} a directory?)"
        exit 1
fi
. "$(dirname "$0")/mount-lib.sh"

# ---- two jobs: a tree and a command ----
S=$T/src/srv/app
mkdir -p "$S/dir/sub"
NAME=zebra-quartz-manifest.txt                  # a file name found nowhere else
SECRET=cairn-sync-plaintext-canary-7f3a9c       # content found nowhere else
# Random around the canary: zstd saves nothing, so an unencrypted pack
# stores it as it is (the control below relies on that).
{ head -c 200000 /dev/urandom; printf '%s' "$SECRET"; head -c 200000 /dev/urandom; } > "$S/dir/$NAME"
printf 'hello\n' > "$S/hello.txt"
head -c 3000000 /dev/urandom > "$S/dir/random.bin"
head -c 2000000 /dev/urandom > "$S/old.bin"     # removed before the second backup: prune frees it
seq 1 100000 > "$S/dir/sub/numbers.txt"
ln -s ../hello.txt "$S/dir/link"
ln "$S/hello.txt" "$S/dir/hardlink"
setfattr -n user.origin -v from-the-test "$S/hello.txt"
head -c 1500000 /dev/urandom > "$T/dump.src"
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
REPO=$T/repo
cat > "$T/cairn.conf" <<CONF
[repository]
path = $REPO
password-file = $T/pw

[job app]
path = $S
keep-last = 1

[job dump]
command = cat $T/dump.src
filename = dump.sql
keep-last = 1
CONF
export CAIRN_CONFIG=$T/cairn.conf

# repo_files DIR: what a copy must hold, as sorted relative paths.
repo_files() {
        (cd "$1" && find config keys packs snapshots -type f ! -name '.tmp-*' 2>/dev/null | LC_ALL=C sort)
}
# bytes_of DIR < PATHS: their total size.
bytes_of() {
        local f total=0
        while read -r f; do
                [ -n "$f" ] && total=$((total + $(stat -c %s "$1/$f")))
        done
        echo $total
}
# jcheck PYTHON-EXPR DESCRIPTION: evaluates EXPR with d = the JSON in $out.
jcheck() {
        OUT=$out python3 -c '
import json, os, sys
d = json.loads(os.environ["OUT"])
ok = eval(sys.argv[1])
if not ok:
    print("#   json: %s" % d)
sys.exit(0 if ok else 1)' "$1"
        tap_ok $? "$2"
}
same_files() { # A B DESCRIPTION: the same repository files, byte for byte
        local d f bad=0
        d=$(diff <(repo_files "$1") <(repo_files "$2"))
        if [ -n "$d" ]; then
                echo "$d" | sed 's/^/#   /' | head -20
                bad=1
        fi
        for f in $(repo_files "$1"); do
                cmp -s "$1/$f" "$2/$f" || { echo "#   differs: $f"; bad=1; }
        done
        tap_ok $bad "$3"
}

expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup app" -- "$CAIRN" backup app
expect 0 "backup dump" -- "$CAIRN" backup dump

# ---- the first sync copies everything ----
D=$T/offsite/copy
n0=$(repo_files "$REPO" | wc -l)
b0=$(repo_files "$REPO" | bytes_of "$REPO")
expect 0 "sync to a new directory" -- "$CAIRN" sync --json "$D"
test -z "$err"; tap_ok $? "with nothing on stderr ('$err')"
jcheck "d['ok'] and d['copied'] == $n0 and d['bytes'] == $b0 and d['skipped'] == 0 and d['deleted'] == 0" \
        "--json: copied all $n0 files ($b0 bytes), skipped and deleted none"
same_files "$REPO" "$D" "the copy holds config, keys, packs and snapshots, byte for byte"
test "$(repo_files "$D" | grep -c '^packs/')" -ge 1 && test "$(repo_files "$D" | grep -c '^snapshots/')" = 2
tap_ok $? "among them packs and both snapshot files"
test ! -e "$D/index" && test ! -e "$D/locks"; tap_ok $? "index/ and locks/ are not copied"
test -z "$(find "$D" -name '.tmp-*')"; tap_ok $? "no temporary file is left at the copy"

# ---- a second sync copies nothing ----
expect 0 "second sync" -- "$CAIRN" sync --json "$D"
jcheck "d['copied'] == 0 and d['bytes'] == 0 and d['skipped'] == $n0 and d['deleted'] == 0" \
        "--json: copied nothing, skipped all $n0"
expect 0 "sync without --json" -- "$CAIRN" sync "$D"
test -z "$out" && test -z "$err"; tap_ok $? "is silent on success (stdout '$out', stderr '$err')"
expect 0 "sync -v" -- "$CAIRN" sync -v "$D"
contains "copied 0 files" "$out" "-v prints a summary"

# ---- a new backup: only its new files are copied ----
rm "$S/old.bin"
printf 'new\n' > "$S/dir/new.txt"
repo_files "$REPO" > "$T/before"
expect 0 "a second backup of app" -- "$CAIRN" backup app
repo_files "$REPO" > "$T/after"
comm -13 "$T/before" "$T/after" > "$T/new"
n_new=$(wc -l < "$T/new")
b_new=$(bytes_of "$REPO" < "$T/new")
grep -q '^packs/' "$T/new" && grep -q '^snapshots/' "$T/new"; tap_ok $? "the backup added a pack and a snapshot file ($n_new files)"
expect 0 "sync after the backup" -- "$CAIRN" sync -v --json "$D"
jcheck "d['copied'] == $n_new and d['bytes'] == $b_new and d['skipped'] == $n0" \
        "--json: copied only the $n_new new files ($b_new bytes), skipped the $n0 already there"
same_files "$REPO" "$D" "the copy is the repository's files again"

# ---- --verify ----
expect 0 "sync --verify" -- "$CAIRN" sync --verify "$D"
test -z "$out" && test -z "$err"; tap_ok $? "is silent when the copy is whole"
expect 0 "sync --verify --json" -- "$CAIRN" sync --verify --json "$D"
jcheck "d['ok'] and d['snapshots'] == 3 and d['incomplete_snapshots'] == 0 and d['errors'] == 0 and d['behind'] == 0 and d['blobs'] > 10" \
        "--json: 3 snapshots, all complete, nothing behind"
expect 0 "sync --verify -v" -- "$CAIRN" sync --verify -v "$D"
contains "0 errors" "$out" "-v prints a summary"

# One pack gone from the copy.
pack=$(cd "$D" && ls -S packs/*/* | head -1)
mv "$D/$pack" "$T/lost-pack"
expect 1 "--verify of a copy without $pack" -- "$CAIRN" sync --verify "$D"
contains "$pack is missing" "$err" "names the missing pack"
contains "is incomplete" "$err" "and says which snapshot is incomplete"
expect 1 "--verify --json without the pack" -- "$CAIRN" sync --verify --json "$D"
jcheck "not d['ok'] and d['missing_packs'] == 1 and any(p.get('file') == '$pack' and p['error'] == 'missing' for p in d['problems'])" \
        "--json lists the pack as missing"
# Truncated: same name, wrong size.
head -c 1000 "$T/lost-pack" > "$D/$pack"
expect 1 "--verify of a copy with $pack truncated" -- "$CAIRN" sync --verify "$D"
contains "$pack has 1000 bytes" "$err" "names the truncated pack and its size"
expect 0 "sync repairs the copy" -- "$CAIRN" sync --json "$D"
jcheck "d['copied'] == 1" "by copying that one pack again (its size differs)"
cmp -s "$T/lost-pack" "$D/$pack"; tap_ok $? "with the right bytes"
expect 0 "--verify passes again" -- "$CAIRN" sync --verify "$D"

# A damaged snapshot file at the copy (same size) is found too.
snap=$(cd "$D" && ls snapshots/* | head -1)
cp "$D/$snap" "$T/snap.orig"
python3 -c '
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read()); b[-1] ^= 1; open(p, "wb").write(b)' "$D/$snap"
expect 1 "--verify of a copy with a damaged snapshot file" -- "$CAIRN" sync --verify "$D"
contains "$snap is damaged" "$err" "names the snapshot file"
cp "$T/snap.orig" "$D/$snap"

# ---- an interrupted sync never leaves a snapshot whose packs are missing ----
# A disk that fills up: config and keys fit, the packs do not.
D3=$T/full
mkdir -p "$D3"
umount_full() { mountpoint -q "$D3" && umount "$D3"; }
extra_cleanup=umount_full
mount -t tmpfs -o size=1m tmpfs "$D3"; tap_ok $? "a 1 MiB tmpfs for the copy"
expect 1 "a sync onto a full disk fails" -- "$CAIRN" sync "$D3/copy"
contains "No space left on device" "$err" "says why"
contains "packs/" "$err" "naming the pack it was copying"
test -s "$D3/copy/config" && test -d "$D3/copy/snapshots"; tap_ok $? "config came first"
test -z "$(ls -A "$D3/copy/snapshots")"; tap_ok $? "but no snapshot file was copied before its packs"
test -z "$(find "$D3/copy" -name '.tmp-*')"; tap_ok $? "and the failed copy's temporary file is removed"
umount_full; tap_ok $? "unmount the tmpfs"

# ---- forget + prune, then sync --delete ----
head -c 1500000 /dev/urandom > "$T/dump.src"
expect 0 "a second backup of dump" -- "$CAIRN" backup dump
expect 0 "sync it" -- "$CAIRN" sync "$D"
expect 0 "forget --prune (keep-last 1)" -- "$CAIRN" forget --prune
comm -23 <(repo_files "$D") <(repo_files "$REPO") > "$T/gone"
comm -13 <(repo_files "$D") <(repo_files "$REPO") > "$T/added"
test "$(grep -c '^snapshots/' "$T/gone")" = 2 && grep -q '^packs/' "$T/gone"
tap_ok $? "the source lost 2 snapshot files and some packs ($(wc -l < "$T/gone") files)"
expect 0 "sync without --delete" -- "$CAIRN" sync --json "$D"
jcheck "d['deleted'] == 0" "deletes nothing"
test -z "$(comm -23 "$T/gone" <(repo_files "$D"))"; tap_ok $? "the gone files are still at the copy"
mkdir -p "$D/packs/00"
printf 'junk' > "$D/packs/00/.tmp-sync-0123456789abcdef"        # an interrupted copy's leftover
repo_files "$D" > "$T/d-before"
expect 0 "sync --delete --dry-run" -- "$CAIRN" sync --delete --dry-run "$D"
ok=0
while read -r f; do
        case "$out" in *"would delete $f"*) ;; *) ok=1; echo "#   not listed: $f" ;; esac
done < "$T/gone"
tap_ok $ok "lists every file it would delete"
diff -q <(repo_files "$D") "$T/d-before" >/dev/null && test -e "$D/packs/00/.tmp-sync-0123456789abcdef"
tap_ok $? "and changes nothing"
n_gone=$(wc -l < "$T/gone")
expect 0 "sync --delete" -- "$CAIRN" sync --delete --json "$D"
jcheck "d['deleted'] == $n_gone + 1" "--json: deleted the $n_gone gone files and the leftover"
same_files "$REPO" "$D" "the copy holds exactly the source's files"
test ! -e "$D/packs/00/.tmp-sync-0123456789abcdef"; tap_ok $? "the leftover temporary file is gone"
expect 0 "--verify after --delete" -- "$CAIRN" sync --verify --json "$D"
jcheck "d['ok'] and d['snapshots'] == 2 and d['behind'] == 0" "the copy is whole: 2 snapshots"

# ---- an encrypted copy holds no plaintext ----
grep -r -a -q -- "$NAME" "$REPO/index"; tap_ok $? "control: the name is in the source's index (grep can see it)"
! grep -r -a -q -- "$NAME" "$D"; tap_ok $? "no file at the copy holds the file name $NAME"
! grep -r -a -q -- "$SECRET" "$D"; tap_ok $? "no file at the copy holds the file's content"
! grep -r -a -q -- "$S" "$D"; tap_ok $? "nor the source path"
# Control: an unencrypted repository's copy does show the content.
expect 0 "init an unencrypted repository" -- "$CAIRN" --repo "$T/plain" init --no-encryption
expect 0 "back the tree up into it" -- "$CAIRN" --repo "$T/plain" backup --job app "$S"
expect 0 "sync it" -- "$CAIRN" --repo "$T/plain" sync "$T/offsite/plain"
grep -r -a -q -- "$SECRET" "$T/offsite/plain/packs"; tap_ok $? "control: grep finds the content in an unencrypted copy"

# ---- refusals ----
mkdir -p "$T/other"
printf 'x' > "$T/other/precious"
expect 1 "sync into a directory holding other files" -- "$CAIRN" sync "$T/other"
contains "not empty" "$err" "is refused"
test "$(ls "$T/other")" = precious; tap_ok $? "and writes nothing there"
expect 1 "sync into another repository's copy" -- "$CAIRN" sync "$T/offsite/plain"
contains "another repository" "$err" "is refused"
expect 1 "sync into the repository itself" -- "$CAIRN" sync "$REPO/packs"
expect 2 "--verify with --delete" -- "$CAIRN" sync --verify --delete "$D"
expect 2 "no DEST" -- "$CAIRN" sync
expect 0 "sync --help" -- "$CAIRN" sync --help
contains "--verify" "$out" "describes --verify"
expect 0 "cairn --help" -- "$CAIRN" --help
contains "sync [--delete] [--verify] DEST" "$out" "lists sync"
L=$REPO/locks/repository.lock
flock -x "$L" sleep 3 & holder=$!
for _ in $(seq 100); do flock -n -s "$L" true || break; sleep 0.05; done
expect 75 "sync while a prune holds the repository" -- "$CAIRN" sync "$D"
contains "being pruned" "$err" "says why"
wait $holder      # flock's child (sleep) holds the lock too: let it end

# ---- cold start: the copy alone ----
C=$T/coldstart
mkdir -p "$C"
cp -a "$D" "$C/repo"
cp "$T/pw" "$C/pw"
cold() { env -u CAIRN_CONFIG "$CAIRN" --repo "$C/repo" --password-file "$C/pw" "$@"; }
test ! -e "$C/repo/index"; tap_ok $? "the new copy has no index"
expect 0 "index rebuild from the copy" -- cold index rebuild
expect 0 "check --read-data of the copy" -- cold check --read-data
expect 0 "snapshots of the copy" -- cold snapshots --json
ids_cold=$(echo "$out" | python3 -c 'import json,sys; print(sorted((s["job"], s["id"]) for s in json.load(sys.stdin)))')
ids_src=$("$CAIRN" snapshots --json | python3 -c 'import json,sys; print(sorted((s["job"], s["id"]) for s in json.load(sys.stdin)))')
test "$ids_cold" = "$ids_src"; tap_ok $? "the copy has the source's snapshots ($ids_cold)"
M=$T/mnt
log=$T/cairnfs.log
mount_start "$log" "$M" -o password_file="$C/pw" "$C/repo" "$M"; tap_ok $? "mount the copy with cairnfs"
pid=$mnt_pid
test "$(ls "$M" | tr '\n' ' ')" = "app dump "; tap_ok $? "both jobs are there ($(ls "$M" | tr '\n' ' '))"
diffs=$(rsync -aHAXS --numeric-ids --dry-run --itemize-changes --checksum "$S/" "$M/app/latest$S/" 2>&1)
test -z "$diffs" && test -d "$M/app/latest$S/dir"; tap_ok $? "app/latest is the source tree (rsync -aHAXS --checksum)"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head -20
cmp -s "$S/dir/$NAME" "$M/app/latest$S/dir/$NAME"; tap_ok $? "the canary file reads byte for byte"
cmp -s "$T/dump.src" "$M/dump/latest/dump.sql"; tap_ok $? "dump/latest/dump.sql is the command's output byte for byte"
mount_stop_u "$M" "$pid" "the copy's mount"
log_clean "$log" "the copy's mount"

# ---- the same through rclone, to a local remote ----
if ! command -v rclone >/dev/null; then
        tap_ok 1 "rclone is installed (scripts/deps.sh installs it)"
        tap_finish
        exit
fi
export RCLONE_CONFIG_OFFSITE_TYPE=local
RD=$T/rclone/copy
R=rclone:offsite:$RD
n=$(repo_files "$REPO" | wc -l)
b=$(repo_files "$REPO" | bytes_of "$REPO")
expect 0 "sync through rclone" -- "$CAIRN" sync --json "$R"
test -z "$err"; tap_ok $? "with nothing on stderr ('$err')"
jcheck "d['ok'] and d['copied'] == $n and d['bytes'] == $b and d['skipped'] == 0" "--json: copied all $n files ($b bytes)"
same_files "$REPO" "$RD" "the remote holds the repository's files, byte for byte"
test ! -e "$RD/index" && test ! -e "$RD/locks"; tap_ok $? "but not index/ or locks/"
expect 0 "second sync through rclone" -- "$CAIRN" sync --json "$R"
jcheck "d['copied'] == 0 and d['skipped'] == $n" "copies nothing"
expect 0 "--verify through rclone" -- "$CAIRN" sync --verify "$R"
test -z "$out" && test -z "$err"; tap_ok $? "is silent when the copy is whole ('$err')"
expect 0 "--verify --json through rclone" -- "$CAIRN" sync --verify --json "$R"
jcheck "d['ok'] and d['snapshots'] == 2 and d['packs'] >= 1 and d['blobs'] > 10" "--json: 2 snapshots, all complete"
pack=$(cd "$RD" && ls -S packs/*/* | head -1)
mv "$RD/$pack" "$T/lost-pack"
expect 1 "--verify through rclone without $pack" -- "$CAIRN" sync --verify "$R"
contains "$pack is missing" "$err" "names the missing pack"
head -c 1000 "$T/lost-pack" > "$RD/$pack"
expect 1 "--verify through rclone with $pack truncated" -- "$CAIRN" sync --verify "$R"
contains "$pack has 1000 bytes" "$err" "names the truncated pack"
expect 0 "sync through rclone repairs it" -- "$CAIRN" sync --json "$R"
jcheck "d['copied'] == 1" "by copying that pack again"
expect 0 "--verify through rclone passes again" -- "$CAIRN" sync --verify "$R"
# A new backup, forget + prune: --delete through rclone.
printf 'newer\n' > "$S/dir/newer.txt"
expect 0 "a third backup of app" -- "$CAIRN" backup app
expect 0 "sync it through rclone" -- "$CAIRN" sync "$R"
expect 0 "forget --prune" -- "$CAIRN" forget --prune
n_gone=$(comm -23 <(repo_files "$RD") <(repo_files "$REPO") | wc -l)
test "$n_gone" -ge 2; tap_ok $? "the source lost files the remote has ($n_gone)"
expect 1 "--verify through rclone of a snapshot the source forgot" -- "$CAIRN" sync --verify "$R"
contains "no snapshot of the source repository" "$err" "cannot check it and says so"
expect 0 "sync --delete through rclone" -- "$CAIRN" sync --delete --json "$R"
jcheck "d['deleted'] == $n_gone" "deleted the $n_gone gone files"
same_files "$REPO" "$RD" "the remote holds exactly the source's files"
expect 0 "--verify through rclone after --delete" -- "$CAIRN" sync --verify "$R"
expect 1 "a DEST that is no rclone remote spec" -- "$CAIRN" sync "rclone:nocolon"
contains "rclone:REMOTE:PATH" "$err" "says what is expected"
expect 1 "an unknown rclone remote" -- "$CAIRN" sync "rclone:nosuchremote:/x"
contains "rclone:nosuchremote:/x" "$err" "names the DEST"

tap_finish
