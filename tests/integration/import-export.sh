#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn import and cairn export end to end: archives made by GNU tar,
# bsdtar and zip imported and restored (compared with rsync against the
# source), a named series, re-import, hostile and damaged archives; exports
# extracted by GNU tar / bsdtar / unzip and compared, subtrees, and a
# damaged repository that must not yield an archive that looks whole.
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true

# rsync's itemized differences between two trees ("" when equal).
# -@-1: compare mtimes to the nanosecond (rsync's default is whole seconds).
differ() { rsync --dry-run --itemize-changes --numeric-ids "$@" 2>&1; }
same() { # description rsync-args...
        local desc=$1; shift
        local d; d=$(differ "$@")
        test -z "$d"; tap_ok $? "$desc"
        [ -z "$d" ] || echo "$d" | sed 's/^/#   /' | head -20
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

# ---- a source tree with every kind of entry (as backup.sh) ----
P=$T/src/srv
S=$P/app
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
truncate -s 5M "$S/allhole.img"
mkfifo "$S/fifo"
mknod "$S/null-dev" c 1 3
printf '#!/bin/sh\n' > "$S/setuid-prog"
chown 1234:5678 "$S/setuid-prog"
chmod 4755 "$S/setuid-prog"
chmod 1777 "$S/sticky"
chmod 0600 "$S/hello.txt"
setfattr -n user.origin -v "from-the-test" "$S/hello.txt"
setfacl -m u:1234:r-- "$S/dir/sub/numbers.txt"
setfacl -m u:4321:rwx "$S/zero-length"        # a mask (rwx) other than the group entry (r--)
setfacl -d -m u:1234:rwx "$S/dir"
touch -h -d '2021-03-04 05:06:07.123456789' "$S/dir/link-to-hello"
touch -d '2020-01-02 03:04:05.987654321' "$S/dir/sub/numbers.txt"
touch -d '2019-05-06 07:08:09.5' "$S/empty"
touch -d '2022-02-02 02:02:02.222222222' "$S"
sparse_du=$(du -k "$S/sparse.img" | cut -f1)

printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
export CAIRN_REPO=$T/repo CAIRN_PASSWORD_FILE=$T/pw
expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
A=$T/archives
mkdir -p "$A"

# ---- import: GNU tar ----
(cd "$P" && tar --xattrs --acls --sparse -czf "$A/gnu.tar.gz" app); tap_ok $? "GNU tar --xattrs --acls --sparse -czf"
expect 0 "import a GNU tar.gz" -- "$CAIRN" import --job gnu "$A/gnu.tar.gz"
test -z "$out"; tap_ok $? "import is silent on success (stdout: '$out')"
expect 0 "restore it" -- "$CAIRN" restore gnu --target "$T/r-gnu"
same "GNU tar: rsync -aHAXS (ns times) finds no difference between the source and the restore" \
        -aHAXS -@-1 "$S/" "$T/r-gnu/app/"
test "$(du -k "$T/r-gnu/app/sparse.img" | cut -f1)" = "$sparse_du"; tap_ok $? "GNU tar: the sparse file is as sparse as the original"
test "$(du -k "$T/r-gnu/app/allhole.img" | cut -f1)" = 0; tap_ok $? "GNU tar: the file that is all hole has no blocks"
test "$(stat -c %h "$T/r-gnu/app/hl/a")" = 3; tap_ok $? "GNU tar: hard links come back as one inode with 3 links"
getfacl -p "$T/r-gnu/app/zero-length" 2>/dev/null | grep -q '^mask::rwx'; tap_ok $? "GNU tar: the ACL mask is kept apart from the group entry"
mtime=$(stat -c %Y "$A/gnu.tar.gz")
expect 0 "snapshots --json gnu" -- "$CAIRN" snapshots --json gnu
echo "$out" | json "
s=d[0]; assert len(d)==1 and s['start_ns']//10**9==$mtime and s['status']=='complete' and 'import' in s['tags'], s
assert 0 <= s['end_ns']-s['start_ns'] < 60*10**9, s"
tap_ok $? "without a time in the name, the snapshot is at the archive's mtime, tagged import, and its end is its start plus the import's duration"

# ---- import: bsdtar (pax, zstd) and zip ----
if command -v bsdtar >/dev/null; then
        (cd "$P" && bsdtar --zstd --format pax -cf "$A/bsd.tar.zst" app); tap_ok $? "bsdtar --zstd --format pax"
        expect 0 "import a bsdtar pax .tar.zst" -- "$CAIRN" import --job bsd "$A/bsd.tar.zst"
        expect 0 "restore it" -- "$CAIRN" restore bsd --target "$T/r-bsd"
        same "bsdtar: rsync -aHAXS (ns times) finds no difference" -aHAXS -@-1 "$S/" "$T/r-bsd/app/"
        test "$(du -k "$T/r-bsd/app/sparse.img" | cut -f1)" = "$sparse_du"; tap_ok $? "bsdtar: sparse file kept sparse"
else
        tap_ok 1 "bsdtar is installed (libarchive-tools)"
fi
if command -v zip >/dev/null; then
        (cd "$P" && zip -qry "$A/app.zip" app 2>/dev/null); tap_ok $? "zip -ry (symlinks as links)"
        expect 0 "import a zip" -- "$CAIRN" import --job zipped "$A/app.zip"
        expect 0 "restore it" -- "$CAIRN" restore zipped --target "$T/r-zip"
        # zip holds no fifo, device, hard link, xattr, ACL, hole or sub-second time
        same "zip: rsync -rlptgoD finds no difference but the fifo and the device zip skipped" \
                -rlptgoD --exclude=/fifo --exclude=/null-dev "$S/" "$T/r-zip/app/"
        cmp -s "$S/dir/random.bin" "$T/r-zip/app/dir/random.bin"; tap_ok $? "zip: data byte for byte"
        # modes and symlinks are in the zip's directory at its end: a pipe is copied first
        expect 0 "import a zip from a pipe" -- sh -c "cat '$A/app.zip' | '$CAIRN' import --job zipped-pipe -"
        expect 0 "restore it" -- "$CAIRN" restore zipped-pipe --target "$T/r-zip-pipe"
        same "zip from a pipe: the same modes, owners, times and symlinks" \
                -rlptgoD --exclude=/fifo --exclude=/null-dev "$S/" "$T/r-zip-pipe/app/"
        test "$(readlink "$T/r-zip/app/dangling")" = /nonexistent/target; tap_ok $? "zip: symlink kept as a link"
else
        tap_ok 1 "zip is installed"
fi

# ---- a series: SERVICE_YYYYMMDD_HHMMSS.tar.gz ----
mkdir -p "$T/svc"
for day in 1 2 3; do
        printf 'day %s\n' $day > "$T/svc/day$day.txt"
        tar -C "$T/svc" -czf "$A/svc_2025010${day}_020000.tar.gz" .
done
# given out of order: imported in time order
expect 0 "import a series of three (given out of order)" -- "$CAIRN" import --json \
        "$A/svc_20250103_020000.tar.gz" "$A/svc_20250101_020000.tar.gz" "$A/svc_20250102_020000.tar.gz"
echo "$out" | json "
assert [x['time'] for x in d]==['2025-01-01T02:00:00Z','2025-01-02T02:00:00Z','2025-01-03T02:00:00Z'], d
assert all(x['job']=='svc' and x['status']=='ok' and len(x['snapshot'])==64 for x in d), d
assert [x['files'] for x in d]==[1,2,3], d"
tap_ok $? "--json lists three snapshots of job svc, oldest first, with ids and totals"
expect 0 "snapshots --json svc" -- "$CAIRN" snapshots --json svc
echo "$out" | json "
assert [x['time'] for x in d]==['2025-01-01T02:00:00Z','2025-01-02T02:00:00Z','2025-01-03T02:00:00Z'], d
assert [x['start_ns'] for x in d]==[1735696800*10**9, 1735783200*10**9, 1735869600*10**9], d
assert all(0 <= x['end_ns']-x['start_ns'] < 60*10**9 for x in d), d"
tap_ok $? "three snapshots at exactly the times in the names"
expect 0 "ls svc/2025-01-02T02:00:00Z" -- "$CAIRN" ls svc/2025-01-02T02:00:00Z
test "$out" = "$(printf '/day1.txt\n/day2.txt')"; tap_ok $? "the middle snapshot holds days 1 and 2 (got: $(echo $out))"
expect 0 "importing the same series again" -- "$CAIRN" import --json "$A"/svc_*.tar.gz
echo "$out" | json "assert [x['status'] for x in d]==['skipped']*3, d"; tap_ok $? "skips all three"
contains "has a snapshot at 2025-01-01T02:00:00Z already" "$err" "saying the job already has a snapshot at that time"
contains "svc_20250101_020000.tar.gz" "$err" "naming the archive"
n=$("$CAIRN" snapshots --json svc | json "print(len(d))")
test "$n" = 3; tap_ok $? "still three snapshots of svc"
cp "$A/svc_20250103_020000.tar.gz" "$A/svc_20250104_020000.tar.gz"
expect 0 "a new archive next to the old ones" -- "$CAIRN" import --json "$A"/svc_*.tar.gz
echo "$out" | json "assert [x['status'] for x in d]==['skipped']*3+['ok'], d"; tap_ok $? "only the new one is imported"
expect 0 "--job overrides the name's service" -- "$CAIRN" import --job other --json "$A/svc_20250101_020000.tar.gz"
echo "$out" | json "assert d[0]['job']=='other' and d[0]['time']=='2025-01-01T02:00:00Z', d"; tap_ok $? "job other, time from the name"

expect 0 "--directory puts the tree below a directory" -- "$CAIRN" import --job vol --directory volumes/grafana \
        "$A/svc_20250101_020000.tar.gz"
expect 0 "ls -R vol" -- "$CAIRN" ls -R vol
test "$out" = "$(printf '/volumes/\n/volumes/grafana/\n/volumes/grafana/day1.txt')"; tap_ok $? "as a tar-command job's directory (got: $(echo $out))"

# ---- --time, stdin, usage errors ----
expect 0 "--time (ISO 8601 UTC)" -- "$CAIRN" import --job timed --time 2026-11-21T01:00:00Z "$A/gnu.tar.gz"
expect 0 "--time (YYYYMMDD_HHMMSS)" -- "$CAIRN" import --job timed --time 20261122_013000 "$A/gnu.tar.gz"
"$CAIRN" snapshots --json timed | json "assert [x['time'] for x in d]==['2026-11-21T01:00:00Z','2026-11-22T01:30:00Z'], d"
tap_ok $? "the snapshots are at those times"
expect 0 "stdin" -- sh -c "'$CAIRN' import --job piped --json - < '$A/svc_20250102_020000.tar.gz'"
echo "$out" | json "assert d[0]['archive']=='-' and d[0]['status']=='ok' and d[0]['files']==2, d"; tap_ok $? "stdin becomes a snapshot"
expect 0 "a tar.gz on a pipe" -- sh -c "cat '$A/gnu.tar.gz' | '$CAIRN' import --job piped -"
expect 0 "restore it" -- "$CAIRN" restore piped --target "$T/r-piped"
same "tar.gz from a pipe: no difference" -aHAXS -@-1 "$S/" "$T/r-piped/app/"
expect 2 "an archive name without a service and no --job" -- "$CAIRN" import "$A/gnu.tar.gz"
contains "give --job" "$err" "asks for --job"
expect 2 "a bad --time" -- "$CAIRN" import --job x --time 2026-13-01T00:00:00Z "$A/gnu.tar.gz"
contains "--time 2026-13-01T00:00:00Z" "$err" "names the bad time"
expect 2 "--time with two archives" -- "$CAIRN" import --job x --time 2026-11-21T01:00:00Z "$A/gnu.tar.gz" "$A/app.zip"
cp "$A/gnu.tar.gz" "$A/bad_20251399_020000.tar.gz"
expect 2 "an impossible date in a series name" -- "$CAIRN" import "$A/bad_20251399_020000.tar.gz"
contains "bad_20251399_020000.tar.gz" "$err" "names the archive"
expect 1 "a missing archive" -- "$CAIRN" import --job x "$A/nonexistent.tar"
contains "nonexistent.tar" "$err" "names it"
"$CAIRN" snapshots --json x | json "assert d==[], d"; tap_ok $? "nothing was imported for these"

# ---- a hostile tar: nothing outside the snapshot, nothing outside the target ----
H=$T/h
mkdir -p "$H/outside"
python3 - "$A/hostile.tar" "$H" <<'PY'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], mode='w', format=tarfile.PAX_FORMAT)
base = sys.argv[2]
def f(name, data=b'x'):
    i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1700000000; i.mode = 0o644
    t.addfile(i, io.BytesIO(data))
def l(name, target, kind=tarfile.SYMTYPE):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; i.mtime = 1700000000; t.addfile(i)
f('ok.txt', b'fine\n')
f('../evil', b'evil\n')
f('../../evil2', b'evil\n')
f('a/../../evil3', b'evil\n')
f(base + '/abs-evil', b'abs\n')          # absolute: kept inside the snapshot
l('link', base + '/outside')
f('link/pwned', b'pwned\n')             # through a symlink
l('rel', '../outside')
f('rel/pwned2', b'pwned\n')
l('hl', '../evil', tarfile.LNKTYPE)
l('hl2', base + '/outside/x', tarfile.LNKTYPE)
t.close()
PY
tap_ok $? "python tarfile writes a hostile archive"
expect 3 "importing it makes a partial snapshot (exit 3)" -- "$CAIRN" import --job hostile --json "$A/hostile.tar"
hid=$(echo "$out" | json "print(d[0]['snapshot'])")
echo "$out" | json "assert d[0]['status']=='partial' and d[0]['warnings']==7, d"; tap_ok $? "with seven warnings"
contains '../evil: refused: the path contains ".."' "$err" "../evil refused"
contains 'link/pwned: refused: the path goes through a non-directory' "$err" "a path through a symlink refused"
contains 'hl: refused: hard link to "../evil"' "$err" "a hard link out of the tree refused"
expect 0 "ls -R of it" -- "$CAIRN" ls -R "$hid"
want=$(printf '/link\n/ok.txt\n/rel\n'; d=""; for c in $(echo "${H#/}" | tr / ' '); do d="$d/$c"; echo "$d/"; done; echo "$H/abs-evil")
# ls -R lists in name order, and where $H's first component sorts depends on where the test runs
out=$(echo "$out" | LC_ALL=C sort); want=$(echo "$want" | LC_ALL=C sort)
test "$out" = "$want"; tap_ok $? "exactly the safe entries are stored, the absolute path inside"
[ "$out" = "$want" ] || { echo "#   got: $(echo $out)"; echo "#   want: $(echo $want)"; }
expect 0 "restore the hostile snapshot" -- "$CAIRN" restore "$hid" --target "$H/r"
test -z "$(ls -A "$H/outside")"; tap_ok $? "nothing was written through the symlinks"
test "$(ls -A "$H" | tr '\n' ' ')" = "outside r "; tap_ok $? "nothing was written next to the target"
test ! -e "$T/evil" && test ! -e "$T/evil2" && test ! -e "$H/abs-evil"; tap_ok $? "nor above it"
test -f "$H/r$H/abs-evil" && test "$(readlink "$H/r/link")" = "$H/outside"; tap_ok $? "the absolute path and the symlink are inside"

# ---- damaged archives: an error naming archive and entry, no snapshot, check passes ----
size=$(stat -c %s "$A/gnu.tar.gz")
head -c $((size / 2)) "$A/gnu.tar.gz" > "$A/cut.tar.gz"
expect 1 "a truncated tar.gz fails" -- "$CAIRN" import --job cut "$A/cut.tar.gz"
contains 'archive "'"$A"'/cut.tar.gz" is damaged' "$err" "naming the archive"
contains '(in entry "app/' "$err" "and the entry where it broke"
contains "no snapshot was recorded" "$err" "saying that no snapshot was recorded"
gzip -dc "$A/gnu.tar.gz" | head -c 2500000 > "$A/cut.tar"
expect 1 "a tar cut in a file's data fails" -- "$CAIRN" import --job cut "$A/cut.tar"
contains 'Truncated tar archive (in entry "app/dir/random.bin")' "$err" "naming the entry"
head -c 100000 /dev/urandom > "$A/junk.tar.gz"
expect 1 "random bytes fail" -- "$CAIRN" import --job cut "$A/junk.tar.gz"
contains "damaged or not an archive" "$err" "as not an archive"
: > "$A/empty.tar"
expect 1 "an empty file fails" -- "$CAIRN" import --job cut "$A/empty.tar"
contains "empty" "$err" "as empty"
expect 1 "a damaged archive among good ones: the others are imported" -- "$CAIRN" import --job cut --json \
        "$A/cut.tar.gz" "$A/svc_20250101_020000.tar.gz"
echo "$out" | json "assert sorted(x['status'] for x in d)==['failed','ok'], d"; tap_ok $? "one failed, one ok"
"$CAIRN" snapshots --json cut | json "assert len(d)==1 and d[0]['time']=='2025-01-01T02:00:00Z', d"
tap_ok $? "only the good archive left a snapshot"
expect 0 "check passes after the failed imports" -- "$CAIRN" check -v
contains " 0 errors" "$out" "with 0 errors"

# ---- locks: the job's lock, as for a backup ----
mkdir -p "$T/repo/locks"
flock "$T/repo/locks/job-locked.lock" sleep 3 & flock_pid=$!
sleep 0.5
expect 75 "import while the job's lock is held exits 75" -- "$CAIRN" import --job locked "$A/app.zip"
contains "not imported" "$err" "saying the archive was not imported"
expect 0 "--wait waits for the lock" -- "$CAIRN" import --wait --job locked "$A/app.zip"
wait $flock_pid

# ---- export: pax, extracted by GNU tar ----
expect 0 "backup the source as a path job" -- "$CAIRN" backup --job src "$S"
expect 0 "export it as pax to a file" -- "$CAIRN" export "src:$S" -o "$T/src.tar"
test -z "$out"; tap_ok $? "export -o is silent"
test "$(stat -c %a "$T/src.tar")" = 600; tap_ok $? "the archive file is mode 0600"
mkdir "$T/x-gnu"
tar --xattrs --acls -xpf "$T/src.tar" -C "$T/x-gnu" 2>"$T/tar.err"; tap_ok $? "GNU tar --xattrs --acls -xpf extracts it"
test ! -s "$T/tar.err"; tap_ok $? "without a warning ($(head -c 300 "$T/tar.err"))"
same "pax: rsync -aHAXS (ns times) finds no difference between the source and GNU tar's extraction" \
        -aHAXS -@-1 "$S/" "$T/x-gnu/app/"
test "$(du -k "$T/x-gnu/app/sparse.img" | cut -f1)" = "$sparse_du"; tap_ok $? "the sparse file's du equals the original's"
test "$(du -k "$T/x-gnu/app/allhole.img" | cut -f1)" = 0; tap_ok $? "a file that is all hole extracts with no blocks"
tar -tvf "$T/src.tar" > "$T/src.list"
grep -q ' app/hl/b link to app/dir/c-same-inode$' "$T/src.list" && grep -q ' app/hl/a link to app/dir/c-same-inode$' "$T/src.list"
tap_ok $? "hard links are stored as links"
grep -q '^-rwsr-xr-x 1234/5678 .* app/setuid-prog$' "$T/src.list"; tap_ok $? "numeric owners without names"
grep -q '^-rw------- root/root .* app/hello.txt$' "$T/src.list"; tap_ok $? "owner names where this host knows them"
expect 0 "export to stdout" -- sh -c "'$CAIRN' export 'src:$S' > '$T/src-stdout.tar'"
cmp -s "$T/src.tar" "$T/src-stdout.tar"; tap_ok $? "stdout gets the same bytes as -o FILE"
expect 1 "export to a terminal is refused" -- script -qec "'$CAIRN' export 'src:$S'" /dev/null
contains "Not writing an archive to a terminal" "$out" "saying why"
if command -v bsdtar >/dev/null; then
        mkdir "$T/x-bsd"
        bsdtar -xpf "$T/src.tar" -C "$T/x-bsd"; tap_ok $? "bsdtar extracts it"
        same "pax: no difference after bsdtar's extraction either" -aHAXS -@-1 "$S/" "$T/x-bsd/app/"
fi

# The imported GNU tar snapshot, exported whole and extracted again.
expect 0 "export the whole imported snapshot" -- "$CAIRN" export gnu -o "$T/gnu-again.tar"
mkdir "$T/x-again"
tar --xattrs --acls -xpf "$T/gnu-again.tar" -C "$T/x-again"; tap_ok $? "extracts"
same "import then export: no difference with the source" -aHAXS -@-1 "$S/" "$T/x-again/app/"
expect 0 "and import that export again" -- "$CAIRN" import --job roundtrip "$T/gnu-again.tar"
expect 0 "restore it" -- "$CAIRN" restore roundtrip --target "$T/r-roundtrip"
same "export, import, restore: no difference with the source" -aHAXS -@-1 "$S/" "$T/r-roundtrip/app/"

# ---- export: gnutar and zip ----
expect 0 "export --format gnutar" -- "$CAIRN" export "src:$S" --format gnutar -o "$T/src-gnu.tar"
tar -tvf "$T/src-gnu.tar" > "$T/gnu.list"; tap_ok $? "tar -tvf lists it"
grep -q ' app/dir/sub/numbers.txt$' "$T/gnu.list" && grep -q ' app/dir/link-to-hello -> ../hello.txt$' "$T/gnu.list" &&
        grep -q ' app/hl/a link to app/dir/c-same-inode$' "$T/gnu.list" && grep -q '^crw-r--r-- .* 1,3 .* app/null-dev$' "$T/gnu.list"
tap_ok $? "with the right names, link targets, hard links and device"
mkdir "$T/x-gnutar"
tar -xpf "$T/src-gnu.tar" -C "$T/x-gnutar"; tap_ok $? "GNU tar extracts it"
same "gnutar: rsync -aHS (whole seconds, no ACLs/xattrs) finds no difference" -aHS "$S/" "$T/x-gnutar/app/"
expect 0 "export --format zip (fifo and device skipped with a warning)" -- "$CAIRN" export "src:$S" --format zip -o "$T/src.zip"
contains "app/fifo: a fifo cannot be stored in a zip archive; skipped" "$err" "warns about the fifo"
contains "app/null-dev: a device node cannot be stored" "$err" "and the device"
unzip -Z1 "$T/src.zip" > "$T/zip.list"; tap_ok $? "unzip lists it"
grep -qx 'app/dir/sub/numbers.txt' "$T/zip.list" && grep -qx 'app/empty/' "$T/zip.list" && grep -qx 'app/hl/b' "$T/zip.list" &&
        ! grep -q fifo "$T/zip.list"
tap_ok $? "with the right names, directories, each hard link, no fifo"
unzip -p "$T/src.zip" app/dir/random.bin | cmp -s - "$S/dir/random.bin"; tap_ok $? "unzip -p gives the data byte for byte"
unzip -p "$T/src.zip" app/hl/b | cmp -s - "$S/hl/a"; tap_ok $? "a hard link is a full copy"
unzip -tq "$T/src.zip" >/dev/null; tap_ok $? "unzip -t: every CRC is right"
if command -v bsdtar >/dev/null; then
        mkdir "$T/x-zip"
        bsdtar -xpf "$T/src.zip" -C "$T/x-zip"; tap_ok $? "bsdtar extracts the zip"
        same "zip: rsync -rlptgoD finds no difference but the skipped fifo and device" \
                -rlptgoD --exclude=/fifo --exclude=/null-dev "$S/" "$T/x-zip/app/"
fi

# ---- export: a subtree, one file ----
expect 0 "export SNAPSHOT:PATH (a directory)" -- "$CAIRN" export "src:$S/dir" -o "$T/sub.tar"
tar -tf "$T/sub.tar" > "$T/sub.list"
test "$(head -n 1 "$T/sub.list")" = dir/ && ! grep -qv '^dir/' "$T/sub.list" && grep -qx 'dir/sub/numbers.txt' "$T/sub.list" &&
        ! grep -q hello.txt "$T/sub.list"
tap_ok $? "only that subtree, named from its last component ($(echo $(cat "$T/sub.list")))"
mkdir "$T/x-sub"
tar --xattrs --acls -xpf "$T/sub.tar" -C "$T/x-sub" && same "the subtree extracts equal to the source" -aHAXS -@-1 "$S/dir/" "$T/x-sub/dir/"
expect 0 "export one file" -- "$CAIRN" export "src:$S/hello.txt" -o "$T/one.tar"
test "$(tar -tf "$T/one.tar")" = hello.txt; tap_ok $? "an archive of exactly that file"
expect 1 "export of a path not in the snapshot" -- "$CAIRN" export "src:$S/nope" -o "$T/nope.tar"
contains "no such file or directory in the snapshot" "$err" "says so"
test ! -e "$T/nope.tar"; tap_ok $? "and creates no file"
expect 2 "an unknown --format" -- "$CAIRN" export src --format rar -o "$T/x.rar"

# ---- export of damaged data: an error naming the path, never an archive that looks whole ----
# Two jobs in packs of their own: d1's big file damaged in its middle (the
# archive is cut inside its data), d2's in its first chunk (nothing of the
# archive may have left libarchive's buffer yet).
export CAIRN_REPO=$T/drepo
expect 0 "a second repository" -- "$CAIRN" init --scrypt-n 1024
packs() { find "$T/drepo/packs" -type f ! -name '.*' | sort; }
flip() { # pack offset
        python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1)
    f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x01]))
PY
}
for j in d1 d2; do
        mkdir -p "$T/$j"
        printf 'small\n' > "$T/$j/a-small.txt"
        head -c 8000000 /dev/urandom > "$T/$j/big.bin"
        printf 'after\n' > "$T/$j/z-after.txt"
        packs > "$T/packs.before"
        expect 0 "backup $j" -- "$CAIRN" backup --job $j "$T/$j"
        pack=$(packs | comm -13 "$T/packs.before" - | xargs ls -S | head -n 1)
        size=$(stat -c %s "$pack")
        if [ $j = d1 ]; then at=$((size / 2)); else at=4096; fi
        flip "$pack" $at; tap_ok $? "$j: one byte of its pack flipped at $at of $size"
done
expect 1 "export to a new file fails" -- "$CAIRN" export "d1:$T/d1" -o "$T/d.tar"
contains "Cannot export d1/big.bin" "$err" "naming the damaged file"
test ! -e "$T/d.tar" && test -z "$(ls -A "$T" | grep '\.d\.tar\.cairn-')"; tap_ok $? "no archive and no temporary file is left"
printf 'keep me\n' > "$T/d-old.tar"
expect 1 "export over an existing file fails" -- "$CAIRN" export "d1:$T/d1" -o "$T/d-old.tar"
test "$(cat "$T/d-old.tar")" = "keep me"; tap_ok $? "and leaves it as it was"
for j in d1 d2; do
        expect 1 "$j: export to stdout fails" -- sh -c "'$CAIRN' export '$j:$T/$j' > '$T/$j-stdout.tar'"
        contains "Cannot export $j/big.bin" "$err" "$j: naming the damaged file"
        tar -tf "$T/$j-stdout.tar" >/dev/null 2>&1; test $? -ne 0; tap_ok $? "$j: GNU tar fails on what it wrote"
        if command -v bsdtar >/dev/null; then
                bsdtar -tf "$T/$j-stdout.tar" >/dev/null 2>&1; test $? -ne 0; tap_ok $? "$j: so does bsdtar"
        fi
        expect 1 "$j: export as zip to stdout fails" -- sh -c "'$CAIRN' export '$j:$T/$j' --format zip > '$T/$j-stdout.zip'"
        unzip -l "$T/$j-stdout.zip" >/dev/null 2>&1; test $? -ne 0; tap_ok $? "$j: unzip fails on what it wrote"
        if command -v bsdtar >/dev/null; then
                bsdtar -tf "$T/$j-stdout.zip" >/dev/null 2>&1; test $? -ne 0; tap_ok $? "$j: so does bsdtar"
        fi
done
expect 0 "the undamaged file still exports" -- "$CAIRN" export "d1:$T/d1/a-small.txt" -o "$T/d-small.tar"

tap_finish
