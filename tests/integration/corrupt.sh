#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Damage, seeded: byte flips and truncations in packs, snapshot files,
# config, the key file and the LMDB index (data.mdb).  For each: nothing
# crashes (no signal, no sanitizer report); `cairn check` / `--read-data`
# finds pack and snapshot damage and names the pack or snapshot; a restore
# gives every undamaged file byte-identical and never wrong bytes; a bad
# config or key file is a clear error; a damaged index is a clear error or
# harmless, and `cairn index rebuild` recovers from it.  Through a cairnfs
# mount, damaged files are EIO and every other file reads right.
set -u
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"
unset CAIRN_FAULT || true
SEED=${CORRUPT_SEED:-4242}
echo "# seed $SEED (CORRUPT_SEED=...)"

REPO=$T/repo
S=$T/src/app
mkdir -p "$S/docs/deep"
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $REPO
password-file = $T/pw

[job app]
path = $S
CONF
export CAIRN_CONFIG=$T/cairn.conf

# run DESC COMMAND...: $st, $err; fails the test on a signal or a sanitizer report
run() {
        local desc=$1; shift
        "$@" >"$T/run.out" 2>"$T/run.err" </dev/null; st=$?
        err=$(cat "$T/run.err")
        if [ "$st" -ge 128 ] || grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/run.err"; then
                tap_ok 1 "$desc: does not crash (exit $st)"
                grep -E -m 3 -A 8 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/run.err" | sed 's/^/#   /'
                return 1
        fi
        tap_ok 0 "$desc: does not crash (exit $st)"
}

ID=()
snap() {
        "$CAIRN" backup app || return 1
        ID[$1]=$("$CAIRN" snapshots --json app | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
        rm -rf "$T/exp/$1"; mkdir -p "$T/exp/$1"; cp -a "$S/." "$T/exp/$1/"
}
"$CAIRN" init --scrypt-n 1024 >/dev/null; tap_ok $? "init"
for i in 1 2 3 4; do head -c 700000 /dev/urandom > "$S/f$i.bin"; done
for i in $(seq 1 12); do printf 'note %d\n' "$i" > "$S/docs/n$i.txt"; done
printf 'deep\n' > "$S/docs/deep/d.txt"
ln -s docs/n1.txt "$S/link"
snap 1; tap_ok $? "snapshot 1"
head -c 900000 /dev/urandom > "$S/g1.bin"
printf 'two\n' >> "$S/docs/n2.txt"
snap 2; tap_ok $? "snapshot 2"
head -c 800000 /dev/urandom > "$S/docs/deep/h.bin"
rm "$S/f4.bin"
snap 3; tap_ok $? "snapshot 3"
"$CAIRN" check --read-data; tap_ok $? "the pristine repository checks clean"
cp -a "$REPO" "$T/pristine"
pristine() { rm -rf "$REPO"; cp -a "$T/pristine" "$REPO"; }

# damage FILE flip|truncate SEED: one seeded flip (xor with 1..255) or truncation
damage() {
        python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
path, how, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
size = os.path.getsize(path)
if how == "flip":
    at = rnd.randrange(size)
    with open(path, "r+b") as f:
        f.seek(at); b = f.read(1)
        f.seek(at); f.write(bytes([b[0] ^ rnd.randrange(1, 256)]))
    print("flipped byte %d of %d" % (at, size))
else:
    at = rnd.randrange(size)
    os.truncate(path, at)
    print("truncated %d to %d bytes" % (size, at))
PY
}

# A checker: the restore of snapshot SID in RDIR against EXP; files that
# are missing must be ones check listed as damaged, files present must be
# the source's bytes.
cat > "$T/compare.py" <<'PY'
import json, os, sys
exp, got, prefix, check_json, sid = sys.argv[1:6]
try:
    damaged = [d["path"] for d in json.load(open(check_json))["damaged"] if d["snapshot"] == sid]
except Exception:
    damaged = []
whole = None in damaged
dirs = [d for d in damaged if d and d.endswith("/")]
def is_damaged(p):
    return whole or p in damaged or any(p.startswith(d) for d in dirs)
wrong, missing, unexpected = [], [], []
for root, ds, fs in os.walk(exp):
    for f in fs:
        e = os.path.join(root, f)
        rel = os.path.relpath(e, exp)
        g = os.path.join(got, rel)
        p = prefix + "/" + rel
        if os.path.islink(e):
            if os.path.lexists(g) and os.readlink(g) != os.readlink(e):
                wrong.append(p)
            elif not os.path.lexists(g) and not is_damaged(p):
                unexpected.append(p)
            continue
        if os.path.exists(g):
            if open(g, "rb").read() != open(e, "rb").read():
                wrong.append(p)
        else:
            missing.append(p)
            if not is_damaged(p):
                unexpected.append(p)
print("# %s: %d missing (damaged), %d wrong, %d missing though not damaged" % (sid[:8], len(missing), len(wrong), len(unexpected)))
for p in wrong:
    print("#   wrong bytes: " + p)
for p in unexpected:
    print("#   missing, not damaged: " + p)
sys.exit(1 if wrong or unexpected else 0)
PY

# restore_all DESC: every snapshot restored, compared with compare.py
restore_all() {
        local i ok=0
        for i in 1 2 3; do
                rm -rf "$T/r"
                run "$1: restore of snapshot $i" "$CAIRN" restore "${ID[$i]}" --target "$T/r" || { ok=1; continue; }
                python3 "$T/compare.py" "$T/exp/$i" "$T/r$S" "$S" "$T/check.json" "${ID[$i]}" || ok=1
        done
        tap_ok $ok "$1: every undamaged file restores byte-identical, no file restores wrong"
}

# ---- packs ----
packs=($(cd "$REPO/packs" && ls */* | sort))
echo "# ${#packs[@]} packs"
case_n=0
pack_case() { # flip|truncate
        local how=$1 pack id msg
        case_n=$((case_n + 1))
        pristine
        pack=${packs[$(( (SEED + case_n) % ${#packs[@]} ))]}
        id=${pack#*/}
        msg=$(damage "$REPO/packs/$pack" "$how" $((SEED * 100 + case_n)))
        echo "# pack case $case_n: ${id:0:12}: $msg"
        run "pack ${id:0:12} $how: check" "$CAIRN" check
        run "pack ${id:0:12} $how: check --read-data" "$CAIRN" check --read-data --json
        cp "$T/run.out" "$T/check.json"
        test "$st" -eq 1; tap_ok $? "pack ${id:0:12} $how: check --read-data reports it (exit $st)"
        python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert not d["ok"] and any(p.get("pack") == sys.argv[2] or sys.argv[2] in p["message"] for p in d["problems"]), d["problems"]
' "$T/check.json" "$id"
        tap_ok $? "pack ${id:0:12} $how: and names the pack"
        restore_all "pack ${id:0:12} $how"
}
for i in 1 2 3 4 5; do pack_case flip; done
for i in 1 2; do pack_case truncate; done

# ---- snapshot files ----
snap_case() { # flip|truncate N
        local how=$1 n=$2 msg
        case_n=$((case_n + 1))
        pristine
        msg=$(damage "$REPO/snapshots/${ID[$n]}" "$how" $((SEED * 100 + case_n)))
        echo "# snapshot file of snapshot $n: $msg"
        run "snapshot file $n $how: check" "$CAIRN" check --json
        cp "$T/run.out" "$T/check.json"
        test "$st" -eq 1; tap_ok $? "snapshot file $n $how: check reports it (exit $st)"
        contains "snapshots/${ID[$n]}" "$err" "snapshot file $n $how: naming the file"
        restore_all "snapshot file $n $how"
        run "snapshot file $n $how: index rebuild" "$CAIRN" index rebuild
        test "$st" -eq 1; tap_ok $? "snapshot file $n $how: index rebuild says it left a damaged file out (exit $st)"
}
snap_case flip 1
snap_case flip 3
snap_case truncate 2

# ---- config and key file: a clear error, or harmless ----
meta_case() { # FILE flip|truncate LABEL
        local file=$1 how=$2 label=$3 msg ok
        case_n=$((case_n + 1))
        pristine
        msg=$(damage "$file" "$how" $((SEED * 100 + case_n)))
        echo "# $label: $msg"
        for cmd in snapshots check; do
                run "$label $how: $cmd" "$CAIRN" $cmd || continue
                if [ "$st" -eq 0 ]; then
                        harmless=$((harmless + 1))
                else
                        printf '%s' "$err" | grep -qE "$REPO/(config|keys/)|passphrase"
                        tap_ok $? "$label $how: $cmd fails with a message naming the file (exit $st): $(printf '%s' "$err" | head -n 1)"
                        failed=$((failed + 1))
                fi
        done
}
key=$(ls "$REPO/keys" | head -n 1)
harmless=0; failed=0
for i in 1 2 3 4; do meta_case "$REPO/config" flip config; done
meta_case "$REPO/config" truncate config
echo "# config: $failed commands failed clearly, $harmless were unaffected"
test "$failed" -ge 2; tap_ok $? "config damage is found ($failed failures)"
harmless=0; failed=0
for i in 1 2 3 4; do meta_case "$REPO/keys/$key" flip "key file"; done
meta_case "$REPO/keys/$key" truncate "key file"
echo "# key file: $failed commands failed clearly, $harmless were unaffected"
test "$failed" -ge 2; tap_ok $? "key file damage is found ($failed failures)"

# ---- the LMDB index: a clear error or harmless; index rebuild recovers ----
# mdb_after HOW: the commands on a damaged index, then index rebuild
mdb_after() {
        local how=$1 check_st
        run "data.mdb $how: snapshots" "$CAIRN" snapshots
        run "data.mdb $how: ls" "$CAIRN" ls -R app
        run "data.mdb $how: check --read-data" "$CAIRN" check --read-data --json
        check_st=$st
        cp "$T/run.out" "$T/check.json"
        if [ "$check_st" -eq 0 ]; then
                # check found nothing: then nothing a restore gives may be wrong
                restore_all "data.mdb $how (check passed)"
        else
                echo "# check: $(printf '%s' "$err" | grep -m 1 error:)"
                rm -rf "$T/r"
                run "data.mdb $how: restore" "$CAIRN" restore app --target "$T/r"
        fi
        run "data.mdb $how: index rebuild" "$CAIRN" index rebuild
        tap_ok $st "data.mdb $how: index rebuild succeeds (exit $st)"
        [ "$st" -eq 0 ] || printf '%s\n' "$err" | head -5 | sed 's/^/#   /'
        run "data.mdb $how: check --read-data after the rebuild" "$CAIRN" check --read-data --json
        cp "$T/run.out" "$T/check.json"
        tap_ok $st "data.mdb $how: check --read-data passes after the rebuild"
        restore_all "data.mdb $how: after the rebuild"
}
mdb_case() { # flip|truncate
        case_n=$((case_n + 1))
        pristine
        echo "# data.mdb: $(damage "$REPO/index/data.mdb" "$1" $((SEED * 100 + case_n)))"
        mdb_after "$1"
}
for i in 1 2 3 4 5 6; do mdb_case flip; done
for i in 1 2 3; do mdb_case truncate; done
# Random flips mostly land in free space; these land in live rows and in
# the B-tree's own structure: a file name (a key of table trees) changed
# in every copy of its page, a snapshot row's root id, page headers.
target() { # HOW: edit data.mdb in place
        python3 - "$REPO/index/data.mdb" "$1" $((SEED * 100 + case_n)) <<'PY'
import random, sys
path, how, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
data = bytearray(open(path, "rb").read())
hits = []
if how in ("name", "root"):
    needle = b"n7.txt" if how == "name" else b'"root":"'
    at = data.find(needle)
    while at >= 0:
        i = at + (len(needle) - 2 if how == "name" else len(needle) + rnd.randrange(64))
        data[i] ^= 0x01
        hits.append(i)
        at = data.find(needle, at + 1)
else:
    pages = len(data) // 4096
    for _ in range(4):
        i = rnd.randrange(2, pages) * 4096 + rnd.randrange(16)
        data[i] ^= rnd.randrange(1, 256)
        hits.append(i)
open(path, "wb").write(data)
print("%s: flipped bytes at %s" % (how, hits))
PY
}
mdb_case_target() { # name|root|header
        case_n=$((case_n + 1))
        pristine
        echo "# data.mdb: $(target "$1")"
        mdb_after "$1"
}
mdb_case_target name
mdb_case_target root
for i in 1 2 3 4; do mdb_case_target header; done

# ---- through the mount: damaged files EIO, the others read ----
pristine
big=($(cd "$REPO/packs" && ls -S */* | head -n 2))
for i in 0 1; do
        python3 - "$REPO/packs/${big[$i]}" $((SEED + i)) <<'PY'
import os, random, sys
p = sys.argv[1]; rnd = random.Random(int(sys.argv[2]))
size = os.path.getsize(p)
at = rnd.randrange(size // 10, size * 8 // 10)     # in the data blobs
with open(p, "r+b") as f:
    f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ 0x40]))
print("# flipped byte %d of %s" % (at, p))
PY
done
"$CAIRN" check --read-data --json > "$T/check.json" 2>/dev/null
test $? -eq 1; tap_ok $? "mount case: check --read-data finds the damage"
M=$T/mnt
log=$T/cairnfs.log
mount_start "$log" "$M" -o password_file="$T/pw" "$REPO" "$M"; tap_ok $? "mount"
names=($(snap_names app))
export EIO_LOG=$T/eio.log
: > "$EIO_LOG"
for i in 1 2 3; do
        timeout 120 python3 - "$T/exp/$i" "$M/app/${names[$((i - 1))]}$S" "$S" "$T/check.json" "${ID[$i]}" <<'PY'
import errno, json, os, sys
exp, got, prefix, check_json, sid = sys.argv[1:6]
damaged = [d["path"] for d in json.load(open(check_json))["damaged"] if d["snapshot"] == sid]
dirs = [d for d in damaged if d and d.endswith("/")]
bad = lambda p: None in damaged or p in damaged or any(p.startswith(d) for d in dirs)
eio, ok, wrong, unexpected = [], 0, [], []
for root, ds, fs in os.walk(exp):
    for f in fs:
        e = os.path.join(root, f); rel = os.path.relpath(e, exp); p = prefix + "/" + rel
        if os.path.islink(e):
            continue
        try:
            data = open(os.path.join(got, rel), "rb").read()
        except OSError as x:
            eio.append(p)
            if x.errno != errno.EIO or not bad(p):
                unexpected.append("%s: %s" % (p, x))
            continue
        if data != open(e, "rb").read():
            wrong.append(p)
        else:
            ok += 1
print("# mount, snapshot %s: %d read right, %d EIO, %d wrong, %d unexpected" % (sid[:8], ok, len(eio), len(wrong), len(unexpected)))
for p in wrong + unexpected:
    print("#   " + p)
open(os.environ.get("EIO_LOG", "/dev/null"), "a").write("".join(x + "\n" for x in eio))
sys.exit(1 if wrong or unexpected or ok == 0 else 0)
PY
        tap_ok $? "mount: snapshot $i: damaged files are EIO, all others read the source's bytes"
done
test -s "$EIO_LOG"; tap_ok $? "mount: some damaged files did read EIO ($(sort -u "$EIO_LOG" | wc -l) distinct)"
kill -0 "$mnt_pid" 2>/dev/null && mountpoint -q "$M"; tap_ok $? "the daemon is still alive and mounted"
mount_stop_term "$M" "$mnt_pid" "corrupt"
log_clean "$log" "corrupt"

tap_finish
