#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairnfs: mount and unmount (SIGTERM, fusermount3 -u, daemon mode,
# `cairn mount`), passphrase sources, the errors an operator meets before
# anything is mounted, and the tree: jobs, snapshot names, latest, partial
# snapshots, snapshots and jobs that appear while mounted.
set -u
# An unprivileged user makes the partial snapshot and must reach the test directory.
CAIRN_TEST_TMPDIR=/tmp
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"
chmod 711 "$T"

S=$T/src
mkdir -p "$S/etc"
printf 'hello\n' > "$S/hello.txt"
printf 'listen 80;\n' > "$S/etc/site.conf"
printf 'correct horse\n' > "$T/pw"
printf 'wrong horse\n' > "$T/badpw"
chmod 600 "$T/pw" "$T/badpw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $T/repo
password-file = $T/pw

[job app]
path = $S

[job dump]
command = printf 'CREATE TABLE t (x int);\\n'
filename = dump.sql
CONF
export CAIRN_CONFIG=$T/cairn.conf
R=$T/repo
M=$T/mnt
mkdir -p "$M"

expect 0 "init an encrypted repository" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup app" -- "$CAIRN" backup app
expect 0 "backup dump" -- "$CAIRN" backup dump
# Two snapshots of app in the same second: the second is named "<time>.2".
# A backup this small takes milliseconds; retry if one straddled a second.
for try in 1 2 3 4 5; do
        "$CAIRN" backup app && "$CAIRN" backup app || break
        n=$("$CAIRN" snapshots --json app | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(1 if s[-1]["time"] == s[-2]["time"] else 0)')
        [ "$n" = 1 ] && break
done
test "${n:-0}" = 1; tap_ok $? "two snapshots of app made in the same second (try $try)"

# ---- lifecycle: foreground, SIGTERM ----
log=$T/fg.log
mount_start "$log" "$M" -o password_file="$T/pw" "$R" "$M"; tap_ok $? "cairnfs -f mounts $M"
pid=$mnt_pid
test "$(ls "$M" | tr '\n' ' ')" = "app dump "; tap_ok $? "the root lists the jobs ($(ls "$M" | tr '\n' ' '))"
test "$(cat "$M/app/latest$S/hello.txt" 2>&1)" = hello; tap_ok $? "a file reads through the mount"
out=$(touch "$M/app/latest$S/new" 2>&1); st=$?
test "$st" -ne 0 && test ! -e "$M/app/latest$S/new"; tap_ok $? "creating a file fails"
contains "Read-only file system" "$out" "with EROFS"
out=$(rm -f "$M/app/latest$S/hello.txt" 2>&1)
test -e "$M/app/latest$S/hello.txt"; tap_ok $? "removing a file fails ($out)"
out=$(df -P "$M" 2>&1); tap_ok $? "df of the mount works (statfs)"
echo "$out" | sed 's/^/#   /'
kill -0 "$pid" 2>/dev/null; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "foreground"
log_clean "$log" "after SIGTERM"

# ---- fusermount3 -u ----
log=$T/fg2.log
mount_start "$log" "$M" -o password_file="$T/pw" "$R" "$M"; tap_ok $? "cairnfs -f mounts again"
mount_stop_u "$M" "$mnt_pid" "fusermount3 -u"
log_clean "$log" "after fusermount3 -u"

# ---- daemon mode ----
daemon_pid() { # the pid of the daemonized cairnfs serving $1
        ps -eo pid=,args= | awk -v m=" $1" 'index($0, "cairnfs") && substr($0, length($0) - length(m) + 1) == m { print $1 }'
}
log=$T/daemon.log
mnt_list+=("$M")
"$CAIRNFS" -o password_file="$T/pw" "$R" "$M" 2>>"$log" >/dev/null </dev/null; st=$?
test "$st" -eq 0; tap_ok $? "without -f cairnfs returns 0 (got $st)"
mountpoint -q "$M"; tap_ok $? "and the mount is up when it returns"
dpid=$(daemon_pid "$M")
test -n "$dpid" && [ "$dpid" != $$ ]; tap_ok $? "a daemon serves it (pid ${dpid:-none})"
test "$(cat "$M/dump/latest/dump.sql" 2>&1)" = 'CREATE TABLE t (x int);'; tap_ok $? "the command job's file reads"
fusermount3 -u "$M"; tap_ok $? "fusermount3 -u"
# Exited: no such process, or a zombie that init has yet to reap.
gone() { case "$(ps -o stat= -p "$1" 2>/dev/null)" in ""|Z*) return 0;; *) return 1;; esac; }
wait_for "the daemon exits after the unmount" 30 gone "${dpid:-0}"
log_clean "$log" "daemon mode"

# ---- passphrase sources ----
# mount_try DESC COMMAND...: COMMAND mounts $M in daemon mode; read a
# file, unmount.
mount_try() {
        local desc=$1 dp
        shift
        mnt_list+=("$M")
        expect_files 0 "$desc: mounts" -- "$@"
        test "$(cat "$M/app/latest$S/hello.txt" 2>&1)" = hello; tap_ok $? "$desc: reads"
        dp=$(daemon_pid "$M")
        is_mounted "$M" && fusermount3 -u "$M"
        [ -z "$dp" ] || wait_for "$desc: the daemon exits after the unmount" 30 gone "$dp"
}
mount_try "\$CAIRN_PASSWORD_FILE" env CAIRN_PASSWORD_FILE="$T/pw" "$CAIRNFS" "$R" "$M"
mount_try "\$CAIRN_PASSWORD_COMMAND" env CAIRN_PASSWORD_COMMAND="cat $T/pw" "$CAIRNFS" "$R" "$M"
mount_try "\$CAIRN_PASSWORD" env CAIRN_PASSWORD="correct horse" "$CAIRNFS" "$R" "$M"
mount_try "-o password_command" "$CAIRNFS" -o "password_command=cat $T/pw" "$R" "$M"
log=$T/cache.log
mount_start "$log" "$M" -o password_file="$T/pw",cache_size=16 "$R" "$M"; tap_ok $? "-o cache_size=16 mounts"
cmp -s "$S/etc/site.conf" "$M/app/latest$S/etc/site.conf"; tap_ok $? "and reads"
mount_stop_u "$M" "$mnt_pid" "cache_size=16"

# ---- errors before mounting ----
# fails DESC TEXT CAIRNFS-ARGS...: exit 1, a "cairnfs: error: " line naming
# TEXT, nothing mounted.
fails() {
        local desc=$1 text=$2
        shift 2
        expect_files 1 "$desc" -- timeout 60 "$CAIRNFS" "$@"
        local line
        line=$(err_line)
        test -n "$line"; tap_ok $? "$desc: stderr has a \"cairnfs: error: \" line"
        contains "$text" "$line" "$desc: the message names it"
        echo "#   $line"
        ! is_mounted "$M"; tap_ok $? "$desc: nothing is mounted"
}
fails "no repository" "$T/nope" -f -o password_file="$T/pw" "$T/nope" "$M"
fails "a directory that is not a repository" "$S" -f -o password_file="$T/pw" "$S" "$M"
fails "wrong passphrase" "passphrase" -f -o password_file="$T/badpw" "$R" "$M"
fails "wrong passphrase, daemon mode" "passphrase" -o password_file="$T/badpw" "$R" "$M"
expect_files 2 "a bad key_cache is a usage error" -- timeout 60 "$CAIRNFS" -f -o password_file="$T/pw",key_cache=forever "$R" "$M"
contains 'key_cache: "forever"' "$(err_line)" "naming the option and the value"
fails "no passphrase for an encrypted repository" "passphrase" -f "$R" "$M"
fails "a missing password file" "$T/no-pw" -f -o password_file="$T/no-pw" "$R" "$M"
fails "a missing mountpoint" "$T/no-mnt" -f -o password_file="$T/pw" "$R" "$T/no-mnt"
fails "a missing mountpoint, daemon mode" "$T/no-mnt" -o password_file="$T/pw" "$R" "$T/no-mnt"
: > "$T/plain-file"
fails "a mountpoint that is not a directory" "$T/plain-file" -f -o password_file="$T/pw" "$R" "$T/plain-file"
contains "ot a directory" "$(err_line)" "saying it is not a directory"
expect_files 1 "no /dev/fuse" -- timeout 60 unshare -m sh -c 'mount -t tmpfs none /dev && exec "$0" "$@"' \
        "$CAIRNFS" -f -o password_file="$T/pw" "$R" "$M"
contains "/dev/fuse" "$(err_line)" "the message names /dev/fuse"
echo "#   $(err_line)"
! is_mounted "$M"; tap_ok $? "nothing is mounted"

# ---- the tree ----
log=$T/tree.log
mount_start "$log" "$M" -o password_file="$T/pw" "$R" "$M"; tap_ok $? "mount for the tree checks"
pid=$mnt_pid
want=$( (snap_names app; echo latest) | sort | tr '\n' ' ')
got=$(ls "$M/app" | tr '\n' ' ')
test "$got" = "$want"; tap_ok $? "app/ holds one directory per snapshot, named by start time, and latest"
[ "$got" = "$want" ] || { echo "#   want: $want"; echo "#   got:  $got"; }
case "$got" in *Z.2\ *) tap_ok 0 "the second snapshot of a second is <time>.2";; *) tap_ok 1 "the second snapshot of a second is <time>.2";; esac
test -L "$M/app/latest"; tap_ok $? "latest is a symlink"
test -n "$(latest_name app)" && test "$(readlink "$M/app/latest")" = "$(latest_name app)"; tap_ok $? "to the newest snapshot ($(readlink "$M/app/latest"))"
first=$(snap_names app | head -n 1)
cmp -s "$S/hello.txt" "$M/app/$first$S/hello.txt"; tap_ok $? "an older snapshot reads by its name"
top=${T#/}; top=${top%%/*}
test "$(ls "$M/app/latest")" = "$top"; tap_ok $? "a path job's snapshot holds the absolute source path (/$top/…)"
test -d "$M/app/latest$S/etc" && test -f "$M/app/latest$S/etc/site.conf"; tap_ok $? "down to the source's files"
test "$(ls "$M/dump/latest")" = dump.sql; tap_ok $? "a command job's snapshot holds its filename"
out=$(ls "$M/no-such-job" 2>&1); st=$?
test "$st" -ne 0; tap_ok $? "a job that does not exist is not there"
contains "No such file or directory" "$out" "ENOENT"
test ! -e "$M/app/2001-01-01T00:00:00Z"; tap_ok $? "nor a snapshot that does not exist"

printf 'new\n' > "$S/added.txt"
expect 0 "backup app while mounted" -- "$CAIRN" backup app
new=$(latest_name app)
wait_for "the new snapshot $new appears without remounting" 30 test -d "$M/app/$new"
latest_is() { test -n "$1" && test "$(readlink "$M/app/latest")" = "$1"; }
wait_for "latest moves to it" 30 latest_is "$new"
test "$(cat "$M/app/latest$S/added.txt" 2>&1)" = new; tap_ok $? "its new file reads through latest"
expect 0 "backup a new job while mounted" -- "$CAIRN" backup --job fresh "$S/etc"
wait_for "the new job appears without remounting" 30 test -e "$M/fresh/latest$S/etc/site.conf"
cmp -s "$S/etc/site.conf" "$M/fresh/latest$S/etc/site.conf"; tap_ok $? "and its file reads"
kill -0 "$pid"; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "tree"
log_clean "$log" "tree"

# ---- a partial snapshot (an unprivileged user's backup meets an unreadable file) ----
U=$T/user
mkdir -p "$U/data"
printf 'public\n' > "$U/data/public.txt"
chown -R 65534:65534 "$U"
nobody() { env -u CAIRN_CONFIG setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
cp "$CAIRN" "$T/cairn-copy" && chmod 755 "$T/cairn-copy"
expect 0 "an unprivileged user's repository" -- nobody "$T/cairn-copy" -r "$U/repo" init --no-encryption
expect 0 "a complete backup" -- nobody "$T/cairn-copy" -r "$U/repo" backup --job userdata "$U/data"
printf 'secret\n' > "$U/data/secret.txt"
chmod 600 "$U/data/secret.txt"
sleep 1.1   # a new second, so the partial one does not share the complete one's name
expect 3 "a backup meeting an unreadable file is partial (exit 3)" -- nobody "$T/cairn-copy" -r "$U/repo" backup --job userdata "$U/data"
log=$T/partial.log
mount_start "$log" "$M" "$U/repo" "$M"; tap_ok $? "mount the unencrypted repository without a passphrase"
want=$( (snap_names userdata -r "$U/repo"; echo latest) | sort | tr '\n' ' ')
got=$(ls "$M/userdata" | tr '\n' ' ')
test "$got" = "$want"; tap_ok $? "the partial snapshot is named <time>.partial ($got)"
case "$got" in *.partial\ *) tap_ok 0 "a .partial entry is listed";; *) tap_ok 1 "a .partial entry is listed";; esac
first=$(snap_names userdata -r "$U/repo" | head -n 1)
test -n "$first" && test "$(readlink "$M/userdata/latest")" = "$first"; tap_ok $? "latest points at the complete snapshot, not the newer partial one"
p=$(snap_names userdata -r "$U/repo" | tail -n 1)
test "$(cat "$M/userdata/$p$U/data/public.txt" 2>&1)" = public; tap_ok $? "the partial snapshot's files read"
test ! -e "$M/userdata/$p$U/data/secret.txt"; tap_ok $? "the unreadable file is not in it"
mount_stop_u "$M" "$mnt_pid" "partial"
log_clean "$log" "partial"

# ---- cairn mount ----
export PATH=$(dirname "$CAIRNFS"):$PATH
log=$T/cairn-mount.log
mnt_list+=("$M")
expect_files 0 "cairn mount MNT (the config's repository and password)" -- "$CAIRN" mount "$M"
mountpoint -q "$M"; tap_ok $? "is mounted when it returns"
cmp -s "$S/hello.txt" "$M/app/latest$S/hello.txt"; tap_ok $? "reads"
fusermount3 -u "$M"; tap_ok $? "fusermount3 -u"
dp=$(daemon_pid "$M")
[ -z "$dp" ] || wait_for "the daemon exits" 30 gone "$dp"
mnt_list+=("$M")
t0=$(now_ms)
"$CAIRN" mount "$M" -f -o cache_size=32 2>>"$log" &
cpid=$!
pid_list+=("$cpid")
until mountpoint -q "$M" || ! kill -0 "$cpid" 2>/dev/null || [ $(( $(now_ms) - t0 )) -gt 60000 ]; do sleep 0.05; done
mountpoint -q "$M"; tap_ok $? "cairn mount MNT -f -o cache_size=32 mounts"
cmp -s "$S/hello.txt" "$M/app/latest$S/hello.txt"; tap_ok $? "reads"
mount_stop_term "$M" "$cpid" "cairn mount -f"
log_clean "$log" "cairn mount"

tap_finish
