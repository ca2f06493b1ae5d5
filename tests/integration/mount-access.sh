#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Who may read what through the mount: default_permissions enforces the
# stored modes for another user; allow_other lets containers (podman with
# runc, bubblewrap) read a snapshot bound read-only at /backup.
set -u
# The unprivileged user must reach the test directory.
CAIRN_TEST_TMPDIR=/tmp
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"
chmod 711 "$T"

# A real unprivileged user (not nobody, whose files are "nobody's"); kept
# if it existed, removed at exit if this test made it.
TU=cairn-mnt-test
made_user=
if ! id -u "$TU" >/dev/null 2>&1; then
        useradd -r -M -U -d /nonexistent -s /usr/sbin/nologin "$TU" && made_user=1
fi
id -u "$TU" >/dev/null 2>&1; tap_ok $? "an unprivileged user $TU"
TUID=$(id -u "$TU" 2>/dev/null || echo 65533)
TGID=$(id -g "$TU" 2>/dev/null || echo 65533)
remove_user() { [ -z "$made_user" ] || userdel "$TU" 2>/dev/null || true; }
extra_cleanup=remove_user
as_user() { setpriv --reuid="$TUID" --regid="$TGID" --clear-groups "$@"; }

S=$T/src
mkdir -p "$S/private" "$S/shared"
printf 'root only\n' > "$S/secret"
printf 'for everyone\n' > "$S/public"
printf "the user's own\n" > "$S/mine"
printf 'for the group\n' > "$S/group-file"
printf 'hidden\n' > "$S/private/inner"
printf 'in a shared dir\n' > "$S/shared/doc"
chmod 600 "$S/secret"
chmod 644 "$S/public" "$S/private/inner" "$S/shared/doc"
chown "$TUID:$TGID" "$S/mine" && chmod 600 "$S/mine"
chown "0:$TGID" "$S/group-file" && chmod 640 "$S/group-file"
chmod 700 "$S/private"
chmod 755 "$S/shared" "$S"

printf 'correct horse\n' > "$T/pw"
expect 0 "init" -- "$CAIRN" -r "$T/repo" --password-file "$T/pw" init --scrypt-n 1024
expect 0 "backup" -- "$CAIRN" -r "$T/repo" --password-file "$T/pw" backup --job app "$S"

# ---- without allow_other only the mount's owner gets in ----
M=$T/mnt
log=$T/own.log
mount_start "$log" "$M" -o password_file="$T/pw" "$T/repo" "$M"; tap_ok $? "mount without allow_other"
test "$(cat "$M/app/latest$S/public" 2>&1)" = "for everyone"; tap_ok $? "root (the mount's owner) reads"
out=$(as_user cat "$M/app/latest$S/public" 2>&1)
test "$out" != "for everyone"; tap_ok $? "another user cannot read even a 0644 file without allow_other"
contains "Permission denied" "$out" "EACCES"
grep -q " $M .*default_permissions" /proc/self/mountinfo; tap_ok $? "default_permissions is on by default (mountinfo)"
mount_stop_u "$M" "$mnt_pid" "owner only"

# ---- allow_other with default_permissions ----
log=$T/other.log
mount_start "$log" "$M" -o password_file="$T/pw",allow_other "$T/repo" "$M"; tap_ok $? "mount -o allow_other"
pid=$mnt_pid
P=$M/app/latest$S
grep -q " $M .*allow_other" /proc/self/mountinfo; tap_ok $? "allow_other is in the mount's options"
test "$(as_user cat "$P/public" 2>&1)" = "for everyone"; tap_ok $? "$TU reads a 0644 root file"
out=$(as_user cat "$P/secret" 2>&1); st=$?
test "$st" -ne 0 && test "$out" != "root only"; tap_ok $? "$TU cannot read a 0600 root file"
contains "Permission denied" "$out" "Permission denied"
test "$(as_user cat "$P/mine" 2>&1)" = "the user's own"; tap_ok $? "$TU reads its own 0600 file (stored owner)"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$P/mine" 2>&1)
contains "Permission denied" "$out" "nobody cannot read $TU's 0600 file"
test "$(as_user cat "$P/group-file" 2>&1)" = "for the group"; tap_ok $? "$TU reads a 0640 file of its group (stored group)"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$P/group-file" 2>&1)
contains "Permission denied" "$out" "nobody cannot read it"
out=$(as_user ls "$P/private" 2>&1)
contains "Permission denied" "$out" "$TU cannot list a 0700 root directory"
out=$(as_user cat "$P/private/inner" 2>&1)
contains "Permission denied" "$out" "nor read a 0644 file inside it"
test "$(as_user cat "$P/shared/doc" 2>&1)" = "in a shared dir"; tap_ok $? "$TU reads in a 0755 directory"
want=$(latest_name app -r "$T/repo" --password-file "$T/pw")
test "$(as_user ls "$M" 2>&1)" = app && test -n "$want" && test "$(as_user readlink "$M/app/latest" 2>&1)" = "$want"; tap_ok $? "$TU lists the jobs and snapshots"

# ---- containers ----
out=$(podman_run --user 65534:65534 -v "$M/app/latest:/backup:ro" --rootfs /:O cat "/backup$S/public" 2>&1); st=$?
test "$st" -eq 0 && test "$out" = "for everyone"; tap_ok $? "podman (runc, --user 65534) reads a 0644 file at /backup (exit $st)"
[ "$st" -eq 0 ] || echo "$out" | sed 's/^/#   /' | head -10
out=$(podman_run --user 65534:65534 -v "$M/app/latest:/backup:ro" --rootfs /:O cat "/backup$S/secret" 2>&1)
contains "Permission denied" "$out" "and is denied the 0600 root file"
out=$(podman_run --user 0:0 -v "$M/app/latest:/backup:ro" --rootfs /:O sh -c "cat /backup$S/secret && touch /backup$S/new" 2>&1)
contains "root only" "$out" "the container's root reads the 0600 file"
contains "Read-only file system" "$out" "and cannot write in /backup"
doc_sum=$(sha256sum < "$P/shared/doc")
out=$(podman_run --user 65534:65534 -v "$M/app/latest:/backup:ro" --rootfs /:O sh -c "sha256sum < /backup$S/shared/doc" 2>&1)
test "$out" = "$doc_sum"; tap_ok $? "the bytes are right in the container"

# bwrap binds over a read-only / cannot create /backup: the snapshot goes
# below the sandbox's own /tmp.
snap=$M/app/$(readlink "$M/app/latest")
out=$(timeout 120 bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --ro-bind "$snap" /tmp/backup \
        --unshare-all --uid 65534 --gid 65534 cat "/tmp/backup$S/public" 2>&1); st=$?
test "$st" -eq 0 && test "$out" = "for everyone"; tap_ok $? "bwrap (--uid 65534) reads a 0644 file at /tmp/backup (exit $st)"
[ "$st" -eq 0 ] || echo "$out" | sed 's/^/#   /' | head -10
out=$(timeout 120 bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --ro-bind "$snap" /tmp/backup \
        --unshare-all --uid 65534 --gid 65534 sha256sum "/tmp/backup$S/shared/doc" 2>&1)
test "${out%% *}" = "${doc_sum%% *}"; tap_ok $? "the bytes are right in bwrap"

kill -0 "$pid"; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "allow_other"
log_clean "$log" "allow_other"

# ---- no_default_permissions turns the kernel's check off ----
log=$T/nodp.log
mount_start "$log" "$M" -o password_file="$T/pw",allow_other,no_default_permissions "$T/repo" "$M"; tap_ok $? "mount -o no_default_permissions"
! grep -q " $M .*default_permissions" /proc/self/mountinfo; tap_ok $? "default_permissions is then not in the mount's options"
mount_stop_u "$M" "$mnt_pid" "no_default_permissions"
log_clean "$log" "no_default_permissions"

tap_finish
