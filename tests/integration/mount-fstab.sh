#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs as mount(8) knows it: the mount.cairnfs helper convention,
# `mount -t fuse.cairnfs`, and an fstab line (mount -T FILE MNT), as an
# operator's /etc/fstab would hold it.
set -u
# mount(8) gives its helpers no PATH (util-linux 2.38), so mount.fuse3's
# shell finds "cairnfs" only in the default path (/usr/local/sbin:...),
# where an install puts it.  So the test runs in a mount namespace of its
# own, in which a read-only overlay adds the build's cairnfs to
# /usr/local/sbin; nothing changes outside it, and its mounts go with it.
if [ -z "${CAIRN_FSTAB_NS:-}" ]; then
        CAIRN_FSTAB_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
# An unprivileged user checks allow_other and must reach the test directory.
CAIRN_TEST_TMPDIR=/tmp
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"
chmod 711 "$T"

mkdir -p "$T/bin"
ln -s "$CAIRNFS" "$T/bin/cairnfs"
ln -s "$CAIRNFS" "$T/bin/mount.cairnfs"
drop_overlay() { umount /usr/local/sbin 2>/dev/null; return 0; }
extra_cleanup=drop_overlay
mount -t overlay cairn-test-bin -o "lowerdir=$T/bin:/usr/local/sbin" /usr/local/sbin
test "$(readlink /usr/local/sbin/cairnfs)" = "$CAIRNFS"; tap_ok $? "(in this test's mount namespace) /usr/local/sbin/cairnfs is the build's"
export PATH=/usr/local/sbin:$PATH

S=$T/src
mkdir -p "$S"
printf 'hello\n' > "$S/hello.txt"
chmod 644 "$S/hello.txt"
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
R=$T/repo
expect 0 "init" -- "$CAIRN" -r "$R" --password-file "$T/pw" init --scrypt-n 1024
expect 0 "backup" -- "$CAIRN" -r "$R" --password-file "$T/pw" backup --job app "$S"
M=$T/mnt
mkdir -p "$M"
mnt_list+=("$M")
fstype() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo; }
mntopts() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $6 "," $(i + 3) }' /proc/self/mountinfo; }
reads() { test "$(cat "$M/app/latest$S/hello.txt" 2>&1)" = hello; }
unmounted() { ! is_mounted "$M"; }

# ---- mount.cairnfs REPO MNT -o OPTS ----
expect_files 0 "mount.cairnfs REPO MNT -o password_file=…" -- mount.cairnfs "$R" "$M" -o password_file="$T/pw"
mountpoint -q "$M"; tap_ok $? "is mounted when it returns (it daemonizes)"
reads; tap_ok $? "reads"
expect 0 "umount MNT" -- umount "$M"
wait_for "the mount is gone" 30 unmounted

# ---- mount -t fuse.cairnfs ----
expect_files 0 "mount -t fuse.cairnfs REPO MNT -o password_file=…" -- mount -t fuse.cairnfs "$R" "$M" -o password_file="$T/pw"
mountpoint -q "$M"; tap_ok $? "is mounted"
test "$(fstype "$M")" = fuse.cairnfs; tap_ok $? "its type is fuse.cairnfs ($(fstype "$M"))"
reads; tap_ok $? "reads"
expect 0 "umount MNT" -- umount "$M"
wait_for "the mount is gone" 30 unmounted

# ---- an fstab line ----
cat > "$T/fstab" <<FSTAB
# an operator's /etc/fstab
$R $M fuse.cairnfs ro,allow_other,password_file=$T/pw 0 0
FSTAB
expect_files 0 "mount -T FSTAB MNT" -- mount -T "$T/fstab" "$M"
mountpoint -q "$M"; tap_ok $? "is mounted"
test "$(fstype "$M")" = fuse.cairnfs; tap_ok $? "as fuse.cairnfs"
case ",$(mntopts "$M")," in *,ro,*) tap_ok 0 "read-only";; *) tap_ok 1 "read-only ($(mntopts "$M"))";; esac
case ",$(mntopts "$M")," in *,allow_other,*) tap_ok 0 "with allow_other";; *) tap_ok 1 "with allow_other ($(mntopts "$M"))";; esac
reads; tap_ok $? "reads"
test "$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$M/app/latest$S/hello.txt" 2>&1)" = hello; tap_ok $? "another user reads a 0644 file (allow_other took effect)"
expect 0 "umount MNT" -- umount "$M"
wait_for "the mount is gone" 30 unmounted

# A wrong line fails as mount(8) reports it, and mounts nothing.
cat > "$T/fstab.bad" <<FSTAB
$T/no-repo $M fuse.cairnfs ro,password_file=$T/pw 0 0
FSTAB
run_files mount -T "$T/fstab.bad" "$M"
test "$st" -ne 0; tap_ok $? "an fstab line naming no repository fails (exit $st)"
contains "$T/no-repo" "$err" "naming the repository"
! is_mounted "$M"; tap_ok $? "and mounts nothing"

tap_finish
