#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Security of access:
#  - every file of a repository is created 0600 and every directory 0700
#    (the repository itself, keys/, packs/xx/, snapshots/, index/, locks/,
#    state/ …), after init, backups, forget + prune (repacking), check,
#    index rebuild, status and run, under umask 000 so that a mode left to
#    the umask shows; the same at a `cairn sync` copy;
#  - `cairn sync DIR` copies no index/, state/ or locks/;
#  - an encrypted repository's packs and snapshot files (and its sync
#    copy) hold no plaintext: distinctive file names, random-looking
#    markers in incompressible and in compressible files, a symlink
#    target, the job name and the source directory's name are not found by
#    grep -r -a; the control: in an unencrypted repository of the same
#    files the same grep finds the marker stored as it is (in random
#    bytes), and every marker is in its blobs once decoded (zstd), so each
#    was there to be found.
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true
umask 000

# ---- the source: markers in names, incompressible and compressible contents ----
mark() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }     # 48 random hex digits
M_NAME=nm$(mark)                # in a file name
M_DIR=dn$(mark)                 # in a directory name
M_RAW=rw$(mark)                 # in the middle of random bytes (stored as is when unencrypted)
M_TXT=tx$(mark)                 # inside a compressible text
M_LINK=lk$(mark)                # a symlink target
JOB=job-$(mark | head -c 20)    # the job name
M_SRC=srv-$(mark | head -c 16)  # the source directory (the snapshot holds its path, one name per level)
SRC=$T/src/$M_SRC
mkdir -p "$SRC/$M_DIR" "$SRC/plain"
{ head -c 300000 /dev/urandom; printf '%s' "$M_RAW"; head -c 300000 /dev/urandom; } > "$SRC/plain/random.bin"
for i in $(seq 2000); do echo "line $i of an ordinary log file, $M_TXT, nothing else of note"; done > "$SRC/plain/app.log"
head -c 5000 /dev/urandom > "$SRC/$M_DIR/$M_NAME.dat"
ln -s "/opt/$M_LINK" "$SRC/plain/link"
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"

conf() { # FILE REPO ENCRYPTION
        cat > "$1" <<CONF
[repository]
path = $2
password-file = $T/pw
encryption = $3

[job $JOB]
path = $SRC
keep-last = 1
CONF
}
conf "$T/enc.conf" "$T/enc" yes
conf "$T/plain.conf" "$T/plain" no

# ---- modes: init, two backups, forget + prune, check, index rebuild, status, run ----
export CAIRN_CONFIG=$T/enc.conf
expect 0 "init (umask 000)" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup" -- "$CAIRN" backup "$JOB"
head -c 2000000 /dev/urandom > "$SRC/plain/second.bin"
expect 0 "a second backup" -- "$CAIRN" backup "$JOB"
rm "$SRC/plain/second.bin"
expect 0 "a third backup" -- "$CAIRN" backup "$JOB"
expect 0 "forget (keep-last = 1)" -- "$CAIRN" forget
expect 0 "prune" -- "$CAIRN" prune
expect 0 "check --read-data" -- "$CAIRN" check --read-data
expect 0 "index rebuild" -- "$CAIRN" index rebuild
expect 0 "status" -- "$CAIRN" status
expect 0 "run" -- "$CAIRN" run
R=$T/enc
# modes_ok DIR DESCRIPTION: every file 0600, every directory 0700 (DIR itself too).
modes_ok() {
        local bad_f bad_d nf nd
        bad_f=$(find "$1" -type f ! -perm 0600 -printf '%m %p\n')
        bad_d=$(find "$1" -type d ! -perm 0700 -printf '%m %p\n')
        nf=$(find "$1" -type f | wc -l)
        nd=$(find "$1" -type d | wc -l)
        test -z "$bad_f$bad_d"; tap_ok $? "$2: all $nf files are 0600 and all $nd directories 0700"
        [ -z "$bad_f$bad_d" ] || printf '%s\n%s\n' "$bad_f" "$bad_d" | sed '/^$/d; s/^/#   /' | head -20
        test -z "$(find "$1" ! -type f ! -type d)"; tap_ok $? "$2: nothing but files and directories"
}
modes_ok "$R" "encrypted repository"
# The check above must have looked at each part (it cannot pass on an empty tree).
missing=""
for p in config keys packs snapshots index index/data.mdb index/lock.mdb locks state state/jobs "state/jobs/$JOB.json" state/check.json; do
        [ -e "$R/$p" ] || missing="$missing $p"
done
test -z "$missing"; tap_ok $? "which holds config, keys, packs, snapshots, index/, locks/ and state/ (missing:${missing:- none})"
test "$(find "$R/packs" -mindepth 2 -type f | wc -l)" -ge 1 && test "$(find "$R/keys" -type f | wc -l)" -ge 1 &&
        test "$(find "$R/locks" -type f | wc -l)" -ge 1
tap_ok $? "with at least one pack, key file and lock file"
test "$(stat -c %a "$R")" = 700; tap_ok $? "the repository directory itself is 0700"

# An unencrypted one (no keys/, a chunker seed in its config).
expect 0 "init an unencrypted repository" -- "$CAIRN" -r "$T/new-repo" --password-file "$T/pw" init --no-encryption
modes_ok "$T/new-repo" "a new unencrypted repository"

# ---- sync: no index/, state/ or locks/, the same modes ----
D=$T/offsite/copy
expect 0 "sync to a new directory" -- "$CAIRN" sync "$D"
test -d "$R/index" && test -d "$R/state" && test -d "$R/locks"; tap_ok $? "the source has index/, state/ and locks/"
test ! -e "$D/index" && test ! -e "$D/state" && test ! -e "$D/locks"; tap_ok $? "the copy has no index/, state/ or locks/"
test "$(cd "$D" && find . -mindepth 1 -maxdepth 1 | LC_ALL=C sort | tr '\n' ' ')" = "./config ./keys ./packs ./snapshots "
tap_ok $? "the copy holds exactly config, keys/, packs/ and snapshots/"
modes_ok "$D" "the sync copy"
expect 0 "a second backup and sync" -- sh -c "'$CAIRN' backup '$JOB' && '$CAIRN' sync '$D'"
test ! -e "$D/index" && test ! -e "$D/state"; tap_ok $? "still no index/ or state/ at the copy"

# ---- no plaintext in the encrypted repository ----
markers="$M_NAME $M_DIR $M_RAW $M_TXT $M_LINK $JOB $M_SRC"
grep -r -a -q -- "$M_NAME" "$R/index"; tap_ok $? "control: the file name is in the index (grep sees it there)"
for m in $markers; do
        found=$(grep -r -a -l -- "$m" "$R/packs" "$R/snapshots" "$D" 2>/dev/null)
        test -z "$found"; tap_ok $? "encrypted: ${m:0:20}… is in no pack, snapshot file or sync copy"
        [ -z "$found" ] || echo "$found" | sed 's/^/#   found in: /' | head -5
done
# Every blob of an encrypted pack is nonce | ciphertext | tag, so the pack
# as a whole should not compress; a plaintext zstd frame would show its
# magic (28 b5 2f fd) right after the 0x01 body byte.
! LC_ALL=C grep -r -a -q -P '\x01\x28\xb5\x2f\xfd' "$R/packs" "$R/snapshots"; tap_ok $? "encrypted: no plaintext zstd frame in packs or snapshot files"

# ---- the control: the same grep over an unencrypted repository ----
export CAIRN_CONFIG=$T/plain.conf
expect 0 "control: init an unencrypted repository" -- "$CAIRN" init
expect 0 "control: back up the same files" -- "$CAIRN" backup "$JOB"
P=$T/plain
grep -r -a -q -- "$M_RAW" "$P/packs"; tap_ok $? "control: the marker in random bytes is found in the unencrypted packs"
LC_ALL=C grep -r -a -q -P '\x01\x28\xb5\x2f\xfd' "$P/packs"; tap_ok $? "control: the unencrypted packs hold zstd frames"
# The names and the text are compressed there (zstd): decoded, each blob
# shows them, so they were in the repository for grep to miss in the
# encrypted one.  Blobs are cut out by the pack trailer (docs/FORMAT.md).
python3 - "$P" $markers <<'PY' > "$T/decoded"
import os, subprocess, sys
repo, markers = sys.argv[1], [m.encode() for m in sys.argv[2:]]
def body(b):
    if b[:1] == b'\x00':
        return b[1:]
    return subprocess.run(['zstd', '-dc'], input=b[1:], capture_output=True, check=True).stdout
# Blobs over the config's segment-size may be stored as segments (magic,
# then a {len, check} per segment, then the bodies): FORMAT.md.
seg = 0
for line in open(os.path.join(repo, 'config')):
    if line.startswith('segment-size'):
        seg = int(line.split('=')[1])
def decode(b, raw):
    if seg and raw > seg and b[:4] == b'\xc5SG\x01':
        n, out = (raw + seg - 1) // seg, b''
        pos = 4 + 20 * n
        for i in range(n):
            l = int.from_bytes(b[4 + 20 * i:8 + 20 * i], 'little')
            out += body(b[pos:pos + l])
            pos += l
        assert len(out) == raw
        return out
    return body(b)
seen = set()
for top in ('packs', 'snapshots'):
    for d, _, files in os.walk(os.path.join(repo, top)):
        for f in files:
            data = open(os.path.join(d, f), 'rb').read()
            if top == 'snapshots':
                blobs = [decode(data[12:], int.from_bytes(data[8:12], 'little'))]
            else:
                tlen, traw = int.from_bytes(data[-16:-12], 'little'), int.from_bytes(data[-12:-8], 'little')
                trailer = decode(data[-48 - tlen:-48], traw)
                blobs = []
                for i in range(int.from_bytes(trailer[:4], 'little')):
                    e = trailer[4 + 49 * i:4 + 49 * (i + 1)]
                    off, st = int.from_bytes(e[33:41], 'little'), int.from_bytes(e[41:45], 'little')
                    blobs.append(decode(data[off:off + st], int.from_bytes(e[45:49], 'little')))
            for b in blobs:
                seen.update(m for m in markers if m in b)
for m in markers:
    print(m.decode(), 'found' if m in seen else 'missing')
PY
for m in $markers; do
        grep -qx -- "$m found" "$T/decoded"; tap_ok $? "control: ${m:0:20}… is in the unencrypted repository's decoded blobs"
done

tap_finish
