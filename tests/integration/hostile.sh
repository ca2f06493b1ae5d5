#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Hostile input, end to end:
#  - tar streams (python tarfile) with "../" entries, absolute paths,
#    symlinks and hard links out of the tree, files through a symlink, a
#    4096-byte path and a 6000-byte one, 255- and 256-byte names, very many
#    entries in one directory, paths nested 1024 names deep (stored) and
#    deeper (refused): through a tar-command job and through `cairn
#    import`.  Each must give a clear error or a contained snapshot:
#    nothing written outside the repository, and a `cairn restore` of the
#    result writes only below its target (the test directory around both,
#    with the files the archives aim at, is listed before and after and
#    compared; the absolute path they name and the directory above are
#    checked too).
#  - config files with wrong types, duplicate jobs, unknown keys and an
#    unreadable passphrase file (mode 000, read by an unprivileged user;
#    a directory in its place; a missing one): errors naming file, line
#    and key; a repository `config` with an unknown key below blank lines:
#    the right line.
#  - a repository whose config says "version = 2": every command that
#    opens it says "newer than this cairn supports", and nothing in it
#    changes (files, sizes, modes and times compared before and after).
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true
# Entries in the one-directory test: 300000 keeps the whole test under
# ~30 s on two busy cores; HOSTILE_ENTRIES=1000000 (the full million:
# its backup takes ~9 s) passes too.
MANY=${HOSTILE_ENTRIES:-300000}

REPO=$T/repo
O=$T/outside                    # what symlinks and absolute paths in the archives point at
S=$T/scratch                    # this script's own files: not part of any listing
mkdir -p "$O" "$T/arch" "$S" "$T/restores"
printf 'original\n' > "$O/target-file"
ABS_TMP=/tmp/cairn-hostile-abs-$$-$RANDOM      # an absolute path outside $T, must never appear

# The tree around the repository and the restore targets: every path with
# its type, size, mode and mtime (a directory's mtime shows a file made and
# removed again), and the content hash of every file the archives aim at.
# Left out: the repository, this script's scratch files, tap.sh's stderr
# file and $1 (a restore target, made empty beforehand so that making it
# changes nothing around it).
listing() {
        (cd "$T" && find . \( -path ./repo -o -path ./scratch -o -path ./stderr -o -path "./${1:-.none}" \) -prune \
                -o -printf '%p %y %s %m %T@\n' | LC_ALL=C sort &&
                find "$O" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
# nothing_outside DESCRIPTION BEFORE-FILE [EXCLUDED]
nothing_outside() {
        listing "${3:-}" > "$S/after" 2>&1
        diff "$2" "$S/after" > "$S/diff"
        tap_ok $? "$1"
        [ -s "$S/diff" ] && sed 's/^/#   /' "$S/diff" | head -20
        test ! -e "$ABS_TMP" && test ! -e /tmp/evil-1 && test ! -e "$(dirname "$T")/evil-1" &&
                test ! -e "$(dirname "$T")/evil-2"
        tap_ok $? "$1: and nothing above $T or at the absolute path"
}

# The newest snapshot of a job, partial or not (a bare job name is its newest complete one).
sid() { "$CAIRN" snapshots --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])'; }

cat > "$T/cairn.conf" <<CONF
[repository]
path = $REPO
encryption = no

[job stream]
tar-command = cat $T/arch/hostile.tar

[job stream-under]
tar-command = cat $T/arch/hostile.tar
directory = srv/data

[job longnames]
tar-command = cat $T/arch/long.tar

[job many]
tar-command = cat $T/arch/many.tar.gz

[job deep]
tar-command = cat $T/arch/deep.tar
CONF
export CAIRN_CONFIG=$T/cairn.conf
expect 0 "init (unencrypted)" -- "$CAIRN" init

# ---- the archives ----
python3 - "$T/arch" "$O" "$ABS_TMP" <<'PY'
import io, os, sys, tarfile
d, outside, abs_tmp = sys.argv[1:4]
def f(t, name, data=b'x', **kw):
    i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1700000000; i.mode = 0o644
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i, io.BytesIO(data))
def e(t, name, kind, target='', mode=0o755):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; i.mtime = 1700000000; i.mode = mode
    t.addfile(i)
with tarfile.open(d + '/hostile.tar', 'w', format=tarfile.PAX_FORMAT) as t:
    f(t, 'ok.txt', b'fine\n')
    f(t, '../evil-1', b'evil\n')                      # refused: ".."
    f(t, '../../evil-2', b'evil\n')                   # refused
    f(t, 'a/../../evil-3', b'evil\n')                 # refused
    f(t, outside + '/abs-evil', b'abs\n')             # absolute: stored below the snapshot's root
    f(t, abs_tmp, b'abs\n')                           # the same
    e(t, 'link', tarfile.SYMTYPE, outside)            # a symlink out of the tree: data, stored as is
    f(t, 'link/pwned-1', b'pwned\n')                  # refused: through a symlink
    e(t, 'rel', tarfile.SYMTYPE, '../../outside')
    f(t, 'rel/pwned-2', b'pwned\n')                   # refused
    e(t, 'd1', tarfile.DIRTYPE)
    e(t, 'd1/up', tarfile.SYMTYPE, '../..')
    f(t, 'd1/up/pwned-3', b'pwned\n')                 # refused
    e(t, 'hl', tarfile.LNKTYPE, '../evil-1')          # refused: hard link out of the tree
    e(t, 'hl2', tarfile.LNKTYPE, outside + '/target-file')   # refused: not an earlier entry
    e(t, 'sd', tarfile.SYMTYPE, outside)
    e(t, 'sd', tarfile.DIRTYPE)                       # a directory where the symlink was
    f(t, 'sd/inside', b'inside\n')                    # then a file in it: inside the snapshot
    e(t, 'later', tarfile.SYMTYPE, outside + '/target-file')
    f(t, 'later', b'replaced the symlink\n')          # a file replacing a symlink: a file
# Long names: a 4096-byte path (20 components of 200 bytes and one to
# make it 4096), a 6000-byte one next to it, a 255-byte name (fine), a
# 256-byte one (refused).
with tarfile.open(d + '/long.tar', 'w', format=tarfile.PAX_FORMAT) as t:
    comps = [chr(ord('a') + i % 26) * 200 for i in range(20)]
    p = '/'.join(comps)
    p4096 = p + '/' + 'z' * (4096 - len(p) - 1)
    assert len(p4096) == 4096
    f(t, p4096, b'path of 4096 bytes\n')
    p6000 = p + '/' + '/'.join(['y' * 200] * 9) + '/' + 'x' * (6000 - len(p) - 1 - 9 * 201)
    assert len(p6000) == 6000, len(p6000)
    f(t, p6000, b'path of 6000 bytes\n')
    f(t, 'n' * 255, b'name of 255 bytes\n')
    f(t, 'm' * 256, b'name of 256 bytes\n')
    f(t, 'dir/' + 'k' * 300 + '/file', b'component of 300 bytes\n')
    f(t, 'ok-long.txt', b'fine\n')
# Deep nesting: 1024 names in a path (the most the tar source stores:
# restore and check walk one level per call), 1025 and 20001 (refused).
with tarfile.open(d + '/deep.tar', 'w', format=tarfile.PAX_FORMAT) as t:
    f(t, '/'.join(['d'] * 1023) + '/bottom', b'1024 names deep\n')
    f(t, '/'.join(['e'] * 1024) + '/too-deep', b'1025 names deep\n')
    f(t, '/'.join(['d'] * 20000) + '/bottom', b'20001 names deep\n')
    f(t, 'top.txt', b'top\n')
PY
tap_ok $? "python tarfile writes the hostile archives"

# Very many entries in one directory: ustar headers written directly
# (tarfile takes minutes for a million), gzip'ed (~1/50 of the size).
python3 - "$T/arch/many.tar.gz" "$MANY" <<'PY'
import gzip, sys
path, n = sys.argv[1], int(sys.argv[2])
def header(name, kind=b'0', mode=b'0000644'):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = mode + b'\0'; h[108:116] = b'0000000\0'; h[116:124] = b'0000000\0'
    h[124:136] = b'00000000000\0'; h[136:148] = b'14524543400\0'
    h[156:157] = kind; h[257:263] = b'ustar\0'; h[263:265] = b'00'
    h[148:156] = b' ' * 8
    h[148:156] = b'%06o\0 ' % sum(h)
    return bytes(h)
with gzip.open(path, 'wb', compresslevel=1) as z:
    z.write(header(b'big/', b'5', b'0000755'))
    buf = []
    for i in range(n):
        buf.append(header(b'big/f%07d' % i))
        if len(buf) == 4096:
            z.write(b''.join(buf)); buf = []
    z.write(b''.join(buf) + b'\0' * 1024)
PY
tap_ok $? "a tar.gz with $MANY files in one directory"

# ---- hostile.tar through a tar-command job and through import ----
listing > "$S/before"
expect 3 "tar-command job: a partial snapshot (exit 3)" -- "$CAIRN" backup stream
contains '../evil-1: refused: the path contains ".."' "$err" "tar-command: ../ refused with the path"
contains 'link/pwned-1: refused: the path goes through a non-directory' "$err" "tar-command: a file through a symlink refused"
contains 'd1/up/pwned-3: refused' "$err" "tar-command: a file through a symlink to .. refused"
contains 'hl: refused: hard link to "../evil-1"' "$err" "tar-command: a hard link out of the tree refused"
contains "hl2: refused: hard link to \"$O/target-file\"" "$err" "tar-command: a hard link to an absolute path refused"
nothing_outside "tar-command: nothing outside the repository changed" "$S/before"

expect 3 "import of the same archive: partial (exit 3)" -- "$CAIRN" import --job imported "$T/arch/hostile.tar"
contains '../evil-1: refused: the path contains ".."' "$err" "import: ../ refused"
contains 'link/pwned-1: refused: the path goes through a non-directory' "$err" "import: a file through a symlink refused"
nothing_outside "import: nothing outside the repository changed" "$S/before"

# What was stored: exactly the safe entries, the absolute ones below the root.
want_ls() {
        local p=$1 d="" c
        printf '%s\n' "$p/d1/" "$p/d1/up" "$p/later" "$p/link" "$p/ok.txt" "$p/rel" "$p/sd/" "$p/sd/inside"
        for c in $(echo "${O#/}" | tr / ' '); do d="$d/$c"; echo "$p$d/"; done
        echo "$p$O/abs-evil"
        d=""; for c in $(echo "${ABS_TMP#/}" | tr / ' '); do d="$d/$c"; echo "$p$d/"; done
}
for job in stream imported; do
        expect 0 "ls -R $job" -- "$CAIRN" ls -R "$(sid $job)"
        got=$(echo "$out" | LC_ALL=C sort)
        want=$( { want_ls "" | sed '$d'; echo "$ABS_TMP"; } | LC_ALL=C sort -u)
        test "$got" = "$want"; tap_ok $? "$job: only the safe entries are stored, absolute paths below the root"
        [ "$got" = "$want" ] || diff <(echo "$want") <(echo "$got") | sed 's/^/#   /' | head -20
done
expect 0 "ls -l stream:later" -- "$CAIRN" ls -l "$(sid stream):later"
case "$out" in -*) tap_ok 0 "a file that replaced a symlink is a file" ;; *) tap_ok 1 "a file that replaced a symlink is a file ($out)" ;; esac

# Restores write only below their targets.
for job in stream imported; do
        mkdir "$T/restores/r-$job"
        listing "restores/r-$job" > "$S/before-r"
        expect 0 "restore $job" -- "$CAIRN" restore "$(sid $job)" --target "$T/restores/r-$job"
        nothing_outside "restore $job: nothing outside the target changed" "$S/before-r" "restores/r-$job"
        test "$(readlink "$T/restores/r-$job/link")" = "$O" && test "$(readlink "$T/restores/r-$job/d1/up")" = ../.. &&
                test -f "$T/restores/r-$job$O/abs-evil" && test -f "$T/restores/r-$job/sd/inside" && test -f "$T/restores/r-$job/later" &&
                test ! -L "$T/restores/r-$job/later"
        tap_ok $? "restore $job: symlinks restored as links, absolute paths inside the target"
done
# The same tree restored again over itself (links already there must not be followed).
listing "restores/r-stream" > "$S/before-r"
"$CAIRN" restore "$(sid stream)" --target "$T/restores/r-stream" >/dev/null 2>&1
nothing_outside "a second restore over the first: nothing outside the target changed" "$S/before-r" "restores/r-stream"

# Below a directory (a job's "directory ="): still contained.
listing > "$S/before"
expect 3 "tar-command with a directory: partial" -- "$CAIRN" backup stream-under
expect 0 "ls -R stream-under" -- "$CAIRN" ls -R "$(sid stream-under)"
got=$(echo "$out" | LC_ALL=C sort)
want=$( { echo /srv/; want_ls /srv/data | sed '$d'; echo "/srv/data$ABS_TMP"; echo /srv/data/; } | LC_ALL=C sort -u)
test "$got" = "$want"; tap_ok $? "below srv/data: the same entries, nothing above srv/data"
[ "$got" = "$want" ] || diff <(echo "$want") <(echo "$got") | sed 's/^/#   /' | head -20
nothing_outside "tar-command with a directory: nothing outside changed" "$S/before"

# ---- long names ----
listing > "$S/before"
expect 3 "long names: partial (the 256- and 300-byte names are refused)" -- "$CAIRN" backup longnames
contains "$(printf 'm%.0s' $(seq 256)): refused: a name in the path is longer than 255 bytes" "$err" "the 256-byte name is refused, named"
contains "refused: a name in the path is longer than 255 bytes" "$err" "the 300-byte component is refused"
expect 3 "long names through import: partial" -- "$CAIRN" import --job longimport "$T/arch/long.tar"
nothing_outside "long names: nothing outside changed" "$S/before"
expect 0 "ls -R longnames" -- "$CAIRN" ls -R "$(sid longnames)"
echo "$out" | grep -qx "/$(printf 'n%.0s' $(seq 255))"; tap_ok $? "the 255-byte name is stored"
echo "$out" | awk '{ if (length($0) == 4097) n++ } END { exit n == 1 ? 0 : 1 }'; tap_ok $? "the 4096-byte path is stored"
echo "$out" | awk '{ if (length($0) == 6001) n++ } END { exit n == 1 ? 0 : 1 }'; tap_ok $? "the 6000-byte path is stored"
mkdir "$T/restores/r-long"
listing "restores/r-long" > "$S/before-r"
expect 0 "restore the long names" -- "$CAIRN" restore "$(sid longnames)" --target "$T/restores/r-long"
nothing_outside "restore of long names: nothing outside the target changed" "$S/before-r" "restores/r-long"
got=$(cd "$T/restores/r-long" && find . -type f -printf '%P\n' | awk '{ print length($0) }' | sort -n | tr '\n' ' ')
test "$got" = "11 255 4096 6000 "; tap_ok $? "restored: files at paths of 11, 255, 4096 and 6000 bytes (got $got)"
test "$(cat "$T/restores/r-long/$(printf 'n%.0s' $(seq 255))")" = "name of 255 bytes"; tap_ok $? "the 255-byte name's content"

# ---- deep nesting ----
listing > "$S/before"
expect 3 "deep paths: partial (the ones deeper than 1024 names are refused)" -- "$CAIRN" backup deep
contains "/e/too-deep: refused: the path is nested deeper than 1024 directories" "$err" "1025 names: refused, saying why"
contains 'job "deep": e/e/e/e/' "$err" "the warning starts with the path"
contains "e/e/...e/e/" "$err" "and shows it cut in the middle (so the log line keeps the name and the reason)"
contains "/d/bottom: refused: the path is nested deeper than 1024 directories" "$err" "20001 names: refused"
nothing_outside "deep paths: nothing outside changed" "$S/before"
expect 0 "check passes with the 1024-deep path in a snapshot" -- "$CAIRN" check
mkdir "$T/restores/r-deep"
listing "restores/r-deep" > "$S/before-r"
expect 0 "restore of the 1024-deep path" -- "$CAIRN" restore "$(sid deep)" --target "$T/restores/r-deep"
test -f "$T/restores/r-deep/top.txt" &&
        test "$(cd "$T/restores/r-deep" && find d -name bottom -type f | awk -F/ '{ print NF }')" = 1024
tap_ok $? "restored: the file 1024 names deep and the one next to the top"
test ! -e "$T/restores/r-deep/e"; tap_ok $? "nothing of the refused 1025-deep path"
nothing_outside "restore of the deep path: nothing outside the target changed" "$S/before-r" "restores/r-deep"
rm -rf "$T/restores/r-deep"

# ---- many entries in one directory ----
start=$(date +%s)
expect 0 "tar-command: $MANY files in one directory" -- "$CAIRN" backup many
t1=$(( $(date +%s) - start ))
diag_n=$("$CAIRN" ls many:big 2>/dev/null | wc -l)
test "$diag_n" = "$MANY"; tap_ok $? "all $MANY are listed ($diag_n, backup took ${t1}s)"
expect 0 "import of the same tar.gz" -- "$CAIRN" import --job many-import "$T/arch/many.tar.gz"
expect 0 "check" -- "$CAIRN" check

# ---- configs ----
good="[repository]
path = $REPO
encryption = no

[job a]
path = $T/arch
keep-last = 2"
# bad_conf DESCRIPTION EXPECTED-TEXT < CONFIG: refused by "backup a" (stdin is redirected,
# not piped, so the checks count in this shell)
bad_conf() {
        cat > "$T/bad.conf"
        expect 1 "config: $1: refused" -- "$CAIRN" -c "$T/bad.conf" backup a
        contains "$2" "$err" "config: $1: the error names file, line and key"
}
bad_conf "a word for a count" "$T/bad.conf:8: key \"keep-daily\": \"lots\" is not a non-negative integer" < <(printf '%s\nkeep-daily = lots\n' "$good")
bad_conf "a negative count" "$T/bad.conf:8: key \"keep-weekly\": \"-2\" is negative" < <(printf '%s\nkeep-weekly = -2\n' "$good")
bad_conf "a count too large" "$T/bad.conf:8: key \"keep-monthly\": \"99999999999\" is too large" < <(printf '%s\nkeep-monthly = 99999999999\n' "$good")
bad_conf "a bad boolean" "$T/bad.conf:8: key \"one-file-system\": \"maybe\" is not yes or no" < <(printf '%s\none-file-system = maybe\n' "$good")
bad_conf "a bad duration" "$T/bad.conf:8: key \"max-age\": \"forever\" is not a duration" < <(printf '%s\nmax-age = forever\n' "$good")
bad_conf "compression out of range" "$T/bad.conf:3: key \"compression\": \"99\" is not a zstd level from 1 to 19" < <(printf '%s\n' "$good" | sed 's/^encryption = no/compression = 99/')
bad_conf "a bad encryption" "$T/bad.conf:3: key \"encryption\": \"sometimes\" is not yes or no" < <(printf '%s\n' "$good" | sed 's/^encryption = no/encryption = sometimes/')
bad_conf "a relative path" "$T/bad.conf:8: key \"path\": \"relative/dir\" must be an absolute path" < <(printf '%s\npath = relative/dir\n' "$good")
bad_conf "a duplicate job" "$T/bad.conf:9: duplicate [job a]: already defined on line 5" < <(printf '%s\n\n[job a]\npath = /srv\n' "$good")
bad_conf "an unknown key in a job" "$T/bad.conf:8: key \"colour\": unknown key in [job a]" < <(printf '%s\ncolour = blue\n' "$good")
bad_conf "an unknown key in [repository]" "$T/bad.conf:3: key \"passwd-file\": unknown key in [repository]" < <(printf '%s\n' "$good" | sed 's/^encryption = no/passwd-file = \/x/')
bad_conf "a key given twice" "$T/bad.conf:8: key \"keep-last\": given twice (first on line 7)" < <(printf '%s\nkeep-last = 3\n' "$good")
bad_conf "an unknown section" "$T/bad.conf:8: unknown section [jobs b]" < <(printf '%s\n[jobs b]\npath = /srv\n' "$good")
bad_conf "a command without filename" "$T/bad.conf:8: key \"command\": needs \"filename = NAME\"" < <(printf '%s\ncommand = true\n' "$good")
bad_conf "an indented line" "$T/bad.conf:8: line starts with whitespace" < <(printf '%s\n  keep-daily = 3\n' "$good")
bad_conf "a relative password-file" "$T/bad.conf:3: key \"password-file\": \"pw\" must be an absolute path" < <(printf '%s\n' "$good" | sed 's/^encryption = no/password-file = pw/')

# Passphrase files: an encrypted repository owned by an unprivileged user
# (it must be able to open the repository to get as far as the passphrase).
U=$T/user
mkdir -p "$U"
printf 'correct horse\n' > "$U/pw"
chown -R 65534:65534 "$U"
chmod 711 "$T"
cp "$CAIRN" "$T/cairn-copy" && chmod 755 "$T/cairn-copy"     # the checkout may be unreadable to nobody
nobody() { env -u CAIRN_CONFIG setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
cat > "$U/cairn.conf" <<CONF
[repository]
path = $U/repo
password-file = $U/pw

[job a]
path = $U
CONF
chmod 644 "$U/cairn.conf"
expect 0 "an unprivileged user's encrypted repository" -- nobody "$T/cairn-copy" -c "$U/cairn.conf" init --scrypt-n 1024
chmod 000 "$U/pw"
expect 1 "a passphrase file of mode 000: refused" -- nobody "$T/cairn-copy" -c "$U/cairn.conf" snapshots
contains "passphrase file $U/pw: Permission denied" "$err" "naming the file and the reason"
chmod 600 "$U/pw"
expect 0 "readable again: it opens" -- nobody "$T/cairn-copy" -c "$U/cairn.conf" snapshots
mkdir "$U/pwdir" && chown 65534:65534 "$U/pwdir"
sed -i "s|^password-file = .*|password-file = $U/pwdir|" "$U/cairn.conf"
expect 1 "a directory as the passphrase file: refused" -- nobody "$T/cairn-copy" -c "$U/cairn.conf" snapshots
contains "passphrase file $U/pwdir" "$err" "naming it"
contains "not a regular file" "$err" "saying it is not a regular file"
sed -i "s|^password-file = .*|password-file = $U/missing|" "$U/cairn.conf"
expect 1 "a missing passphrase file: refused" -- nobody "$T/cairn-copy" -c "$U/cairn.conf" snapshots
contains "passphrase file $U/missing: No such file or directory" "$err" "naming it"

# ---- a repository config with an unknown key below blank lines ----
mkdir -p "$T/kv"
expect 0 "a repository to damage" -- "$CAIRN" -r "$T/kv/repo" init --no-encryption
printf '\n\n# a comment\n\nbogus = 1\n' >> "$T/kv/repo/config"
n=$(grep -n '^bogus' "$T/kv/repo/config" | cut -d: -f1)
expect 1 "its unknown key is refused" -- "$CAIRN" -r "$T/kv/repo" snapshots
contains "$T/kv/repo/config: line $n: unknown key \"bogus\"" "$err" "naming the file and the right line ($n: blank lines count)"

# ---- a repository of format version 2 ----
V=$T/v2
cat > "$T/v2.conf" <<CONF
[repository]
path = $V/repo
encryption = no

[job a]
path = $T/arch
keep-last = 1
drill = $T/drill.sh
CONF
printf '#!/bin/sh\nexit 0\n' > "$T/drill.sh" && chmod 755 "$T/drill.sh"
export CAIRN_CONFIG=$T/v2.conf
mkdir -p "$V"
expect 0 "v2: init" -- "$CAIRN" init
expect 0 "v2: a backup, while it is version 1" -- "$CAIRN" backup a
sed -i 's/^version = 1$/version = 2/' "$V/repo/config"
grep -qx 'version = 2' "$V/repo/config"; tap_ok $? "v2: the config now says version = 2"
v2_listing() { (cd "$V/repo" && find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %F %s %a %Y %Z' &&
                find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }
v2_listing > "$T/v2.before"
sleep 1.1       # a change in the same second would not show in %Y/%Z
v2_cmd() { # DESCRIPTION ARGS...
        local desc=$1; shift
        timeout 60 "$CAIRN" "$@" > "$T/v2.out" 2> "$T/v2.err" < /dev/null
        rc=$?
        [ "$rc" -ne 0 ]; tap_ok $? "v2: $desc fails (exit $rc)"
        grep -q "newer than this cairn supports" "$T/v2.err"; tap_ok $? "v2: $desc says the format is newer than this cairn supports"
        grep -q "newer than this cairn supports" "$T/v2.err" || sed 's/^/#   /' "$T/v2.err" | head -5
}
v2_cmd "info" info
v2_cmd "snapshots" snapshots
v2_cmd "ls" ls a
v2_cmd "restore" restore a --target "$V/restored"
v2_cmd "backup JOB" backup a
v2_cmd "backup --job" backup --job other "$T/arch"
v2_cmd "run" run
v2_cmd "import" import --job imp "$T/arch/hostile.tar"
v2_cmd "export" export a -o "$V/export.tar"
v2_cmd "forget" forget
v2_cmd "prune" prune
v2_cmd "check" check
v2_cmd "index rebuild" index rebuild
v2_cmd "sync" sync "$V/copy"
v2_cmd "verify" verify a
v2_cmd "status" status
mkdir -p "$V/mnt"
v2_cmd "mount" mount -f "$V/mnt"
mountpoint -q "$V/mnt" && fusermount3 -u "$V/mnt"
v2_listing > "$T/v2.after"
diff "$T/v2.before" "$T/v2.after" > "$T/v2.diff"
tap_ok $? "v2: nothing in the repository changed (files, sizes, modes, times, contents)"
sed 's/^/#   /' "$T/v2.diff" | head -20
test ! -e "$V/restored" && test ! -e "$V/export.tar"; tap_ok $? "v2: restore and export wrote nothing either"

# ---- a key file asking scrypt for 16 GiB (tampered offsite copy) ----
printf 'kdf test\n' > "$T/kdf-pw"
expect 0 "init an encrypted repository for the key-file test" -- "$CAIRN" -r "$T/kdf-repo" --password-file "$T/kdf-pw" init --scrypt-n 1024
kf=$(ls "$T"/kdf-repo/keys/* | head -n 1)
sed -i 's/^scrypt-n = .*/scrypt-n = 16777216/' "$kf"
expect 1 "a key file asking for 16 GiB of scrypt memory is refused" -- timeout 60 "$CAIRN" -r "$T/kdf-repo" --password-file "$T/kdf-pw" snapshots
contains "more than the 2048 MiB allowed" "$err" "and the message names the key file's demand"

tap_finish
