#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Through the mountpoint, a snapshot is the source tree: rsync -aHAXS, GNU
# tar --compare, cp -a, hard links, sparse files (st_blocks, SEEK_DATA /
# SEEK_HOLE), xattrs and ACLs all see what was backed up.
set -u
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"

# ---- a source tree with every kind of entry (as backup.sh) ----
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
setfattr -n user.binary -v 0x00ff00fe "$S/dir/random.bin"
setfacl -m u:1234:r-- "$S/dir/sub/numbers.txt"
setfacl -d -m u:1234:rwx "$S/dir"
touch -h -d '2021-03-04 05:06:07.123456789' "$S/dir/link-to-hello"
touch -d '2020-01-02 03:04:05.987654321' "$S/dir/sub/numbers.txt"
touch -d '2019-05-06 07:08:09.5' "$S/empty"

printf 'correct horse\n' > "$T/pw"
expect 0 "init" -- "$CAIRN" -r "$T/repo" --password-file "$T/pw" init --scrypt-n 1024
expect 0 "backup the tree" -- "$CAIRN" -r "$T/repo" --password-file "$T/pw" backup --job app "$S"

M=$T/mnt
log=$T/cairnfs.log
mount_start "$log" "$M" -o password_file="$T/pw" "$T/repo" "$M"; tap_ok $? "mount"
pid=$mnt_pid
P=$M/app/latest$S
test -d "$P"; tap_ok $? "the source is at app/latest$S"

# rsync compares type, mode, owner, group, size, mtime (ns), link targets,
# devices, hard links, xattrs and ACLs; --checksum also reads every file.
diffs=$(rsync -aHAXS -@-1 --numeric-ids --dry-run --itemize-changes "$S/" "$P/" 2>&1)
test -z "$diffs"; tap_ok $? "rsync -aHAXS --dry-run finds no difference between the source and the mount"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head -20
diffs=$(rsync -aHAXS -@-1 --numeric-ids --dry-run --itemize-changes --checksum "$S/" "$P/" 2>&1)
test -z "$diffs"; tap_ok $? "nor with --checksum (every byte read through the mount)"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head -20

# find -printf: what ls -l shows, with ns mtimes and link counts.
listing() { # dir
        (cd "$1" && find . ! -type d -printf '%p %M %U %G %s %T@ %n %l\n' | sort &&
                find . -type d -printf '%p %M %U %G %T@\n' | sort)
}
diffs=$(diff <(listing "$S") <(listing "$P") 2>&1)
test -z "$diffs"; tap_ok $? "find -printf (mode, owner, size, ns mtime, links, targets) is the same"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head -20

(cd "$S" && tar -cf - --xattrs --acls .) > "$T/src.tar"
out=$(tar -C "$P" --compare --xattrs --acls -f "$T/src.tar" 2>&1); st=$?
test "$st" -eq 0 && test -z "$out"; tap_ok $? "GNU tar --compare --xattrs --acls against the mount finds nothing (exit $st)"
[ -z "$out" ] || echo "$out" | sed 's/^/#   /' | head -20

cmp -s "$S/dir/random.bin" "$P/dir/random.bin"; tap_ok $? "random data reads byte for byte"
cmp -s "$S/dir/sub/numbers.txt" "$P/dir/sub/numbers.txt"; tap_ok $? "text reads byte for byte"
test -f "$P/zero-length" && test "$(stat -c %s "$P/zero-length")" = 0 && test -z "$(cat "$P/zero-length")"; tap_ok $? "empty file"

ino() { stat -c %i "$1"; }
test -n "$(ino "$P/hl/a")" && test "$(ino "$P/hl/a")" = "$(ino "$P/hl/b")" && test "$(ino "$P/hl/a")" = "$(ino "$P/dir/c-same-inode")"; tap_ok $? "hard links: one st_ino for the three names ($(ino "$P/hl/a") $(ino "$P/hl/b") $(ino "$P/dir/c-same-inode"))"
test "$(stat -c %h "$P/hl/a"):$(stat -c %h "$P/hl/b"):$(stat -c %h "$P/dir/c-same-inode")" = 3:3:3; tap_ok $? "hard links: st_nlink 3"
test "$(ino "$P/hl/a")" != "$(ino "$P/hello.txt")"; tap_ok $? "other files have other inode numbers"

test "$(readlink "$P/dir/link-to-hello")" = ../hello.txt; tap_ok $? "relative symlink"
test "$(readlink "$P/dangling")" = /nonexistent/target && test -L "$P/dangling"; tap_ok $? "dangling symlink"
test "$(cat "$P/dir/link-to-hello" 2>&1)" = hello; tap_ok $? "a relative symlink resolves inside the snapshot"
test "$(stat -c %y "$P/dir/link-to-hello")" = "$(stat -c %y "$S/dir/link-to-hello")"; tap_ok $? "symlink mtime with ns ($(stat -c %y "$P/dir/link-to-hello"))"
test "$(stat -c %y "$P/dir/sub/numbers.txt")" = "$(stat -c %y "$S/dir/sub/numbers.txt")"; tap_ok $? "file mtime with ns"
test "$(stat -c %y "$P/empty")" = "$(stat -c %y "$S/empty")"; tap_ok $? "directory mtime with ns"
test -p "$P/fifo"; tap_ok $? "fifo"
test "$(stat -c %F:%t:%T "$P/null-dev")" = "character special file:1:3"; tap_ok $? "character device 1:3"
test "$(stat -c %a:%u:%g "$P/setuid-prog")" = "4755:1234:5678"; tap_ok $? "setuid mode and another owner"
test "$(stat -c %a "$P/sticky")" = 1777; tap_ok $? "sticky directory"
test -d "$P/empty" && test -z "$(ls -A "$P/empty")"; tap_ok $? "empty directory"

# ---- sparse ----
test "$(stat -c %b "$P/sparse.img")" = "$(stat -c %b "$S/sparse.img")"; tap_ok $? "sparse: st_blocks through the mount equals the source's ($(stat -c %b "$P/sparse.img") vs $(stat -c %b "$S/sparse.img"))"
test "$(stat -c %s "$P/sparse.img")" = $((64*1024*1024)); tap_ok $? "sparse: size 64 MiB"
extents() { # SEEK_DATA/SEEK_HOLE walk: "data-start hole-start ..."
        python3 - "$1" <<'EOF'
import os, sys, errno
fd = os.open(sys.argv[1], os.O_RDONLY)
pos, out = 0, []
while True:
    try:
        d = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as e:
        if e.errno != errno.ENXIO:
            raise
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    out += [d, h]
    pos = h
print(" ".join(map(str, out)))
EOF
}
src_ext=$(extents "$S/sparse.img")
mnt_ext=$(extents "$P/sparse.img" 2>&1)
test -n "$src_ext" && test "$mnt_ext" = "$src_ext"; tap_ok $? "sparse: SEEK_DATA/SEEK_HOLE give the source's offsets ($mnt_ext)"
[ "$mnt_ext" = "$src_ext" ] || echo "#   source: $src_ext"
test "$(extents "$P/dir/random.bin" 2>&1)" = "0 3000000"; tap_ok $? "a dense file is one data extent up to its size"
test "$(head -c 5 "$P/sparse.img")" = start && test "$(dd if="$P/sparse.img" bs=1 skip=$((32*1024*1024)) count=6 status=none)" = middle; tap_ok $? "sparse: the data reads at its offsets"
cmp -s "$S/sparse.img" "$P/sparse.img"; tap_ok $? "sparse: all 64 MiB compare (holes read as zeros)"

# ---- xattrs and ACLs ----
test "$(getfattr --absolute-names --only-values -n user.origin "$P/hello.txt" 2>&1)" = from-the-test; tap_ok $? "getfattr reads the xattr"
out=$(getfattr --absolute-names -e hex -n user.binary "$P/dir/random.bin" 2>&1 | grep '^user')
test "$out" = "user.binary=0x00ff00fe"; tap_ok $? "a binary xattr value ($out)"
getfacl -p "$P/dir/sub/numbers.txt" 2>/dev/null | grep -q '^user:1234:r--'; tap_ok $? "getfacl shows the ACL"
getfacl -p -d "$P/dir" 2>/dev/null | grep -q '^user:1234:rwx'; tap_ok $? "getfacl -d shows the default ACL"
out=$(getfattr -n user.none "$P/hello.txt" 2>&1); st=$?
test "$st" -ne 0; tap_ok $? "a missing xattr is an error"
contains "No such attribute" "$out" "ENODATA"
attrs() { # every xattr and ACL of every non-symlink, in name order
        (cd "$1" && find . ! -type l | sort | xargs -d '\n' getfattr -h -d -m - -e hex --absolute-names 2>&1 &&
                find . ! -type l | sort | xargs -d '\n' getfacl -p 2>&1)
}
diffs=$(diff <(attrs "$S") <(attrs "$P") 2>&1)
test -z "$diffs"; tap_ok $? "getfattr -d -m - and getfacl of the whole tree are the same"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head -20

# ---- cp -a from the mount ----
mkdir "$T/copy"
out=$(cp -a "$P/." "$T/copy/" 2>&1); st=$?
test "$st" -eq 0; tap_ok $? "cp -a from the mount succeeds (exit $st)"
[ -z "$out" ] || echo "$out" | sed 's/^/#   /' | head -10
diffs=$(rsync -aHAXS -@-1 --numeric-ids --dry-run --itemize-changes --checksum "$S/" "$T/copy/" 2>&1)
test -z "$diffs"; tap_ok $? "rsync -aHAXS --checksum finds no difference between the source and the cp -a copy"
[ -z "$diffs" ] || echo "$diffs" | sed 's/^/#   /' | head -20
test "$(du -k "$T/copy/sparse.img" | cut -f1)" = "$(du -k "$S/sparse.img" | cut -f1)"; tap_ok $? "du of the copied sparse file equals the source's ($(du -k "$T/copy/sparse.img" | cut -f1) KiB)"
test "$(stat -c %h "$T/copy/hl/a")" = 3; tap_ok $? "the copy keeps the hard links"

kill -0 "$pid"; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "fidelity"
log_clean "$log" "fidelity"

# ---- random reads: single segments of large chunks ----
# A mixed file (random and text pieces), read at scattered offsets through
# a small cache: a non-sequential read decodes only the segment it needs.
# Repositories: the default (encrypted, 64 KiB segments), unencrypted
# with 16 KiB segments, and whole chunks (--segment-size 0, the form of
# repositories made before segments).
RS=$T/rand-src
mkdir -p "$RS"
python3 - "$RS/mixed.bin" <<'EOF'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "wb") as f:
    for i in range(24 * 16):                     # 24 MiB in 64 KiB pieces
        if r.random() < 0.5:
            f.write(r.randbytes(65536))
        else:
            f.write(b"".join(b"line %d of the log, value %d\n" % (i, r.randrange(10**6)) for _ in range(2400))[:65536])
EOF
randreads() { # SRC MOUNTED: scattered reads, never two in a row within 2 MiB
        timeout 300 python3 - "$1" "$2" <<'EOF'
import math, os, sys
src = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_RDONLY)
blocks = len(src) // 4096
stride = blocks // 2 + 1
while math.gcd(stride, blocks) != 1:
    stride += 1
bad, n = [], 0
for k in range(1500):
    off = (k * stride % blocks) * 4096
    size = (4096, 1, 200000, 65536 + 7)[k % 4]  # pages, one byte, across segment and chunk ends
    if k % 4 == 3:
        off = max(0, off - 100)
    if os.pread(fd, size, off) != src[off:off + size]:
        bad.append(off)
    n += 1
if os.pread(fd, 10000, len(src) - 3000) != src[-3000:]:
    bad.append(len(src) - 3000)
print("# %d scattered reads, %d wrong" % (n + 1, len(bad)))
sys.exit(1 if bad else 0)
EOF
}
for variant in "default::65536" "unencrypted:--no-encryption --segment-size 16K:16384" "whole:--segment-size 0:0"; do
        name=${variant%%:*}; rest=${variant#*:}; opts=${rest%%:*}; seg_want=${rest#*:}
        RR=$T/rand-$name
        # shellcheck disable=SC2086
        expect 0 "$name: init $opts" -- "$CAIRN" -r "$RR" --password-file "$T/pw" init --scrypt-n 1024 $opts
        got=$("$CAIRN" -r "$RR" --password-file "$T/pw" info --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["segment_size"])')
        test "$got" = "$seg_want"; tap_ok $? "$name: cairn info says segment_size $got"
        expect 0 "$name: backup the mixed file" -- "$CAIRN" -r "$RR" --password-file "$T/pw" backup --job rand "$RS"
        log=$T/rand-$name.log
        mount_start "$log" "$M" -o password_file="$T/pw",cache_size=16 "$RR" "$M"; tap_ok $? "$name: mount with cache_size=16"
        randreads "$RS/mixed.bin" "$M/rand/latest$RS/mixed.bin"; tap_ok $? "$name: scattered reads return the source's bytes"
        cmp -s "$RS/mixed.bin" "$M/rand/latest$RS/mixed.bin"; tap_ok $? "$name: and a sequential read after them"
        expect 0 "$name: check --read-data" -- "$CAIRN" -r "$RR" --password-file "$T/pw" check --read-data
        mount_stop_term "$M" "$mnt_pid" "$name random reads"
        log_clean "$log" "$name random reads"
done
grep -q '^segment-size = 65536$' "$T/rand-default/config"; tap_ok $? "the default repository's config records segment-size = 65536"
! grep -q '^segment-size' "$T/rand-whole/config"; tap_ok $? "a whole-chunk repository's config has no segment-size"
expect 2 "init --segment-size 100000 is refused (not a power of two)" -- "$CAIRN" -r "$T/rand-bad" --password-file "$T/pw" init --segment-size 100000
contains "--segment-size" "$err" "the error names the option"
test ! -e "$T/rand-bad/config"; tap_ok $? "and no repository was made"

tap_finish
