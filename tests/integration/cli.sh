#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The cairn command line: init/info/index, passphrase handling, messages
# and exit statuses an operator sees.
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"

T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true
printf 'correct horse\n' > "$T/pw"
printf 'wrong horse\n' > "$T/badpw"

expect 0 "--help succeeds" -- "$CAIRN" --help
contains "index rebuild" "$out" "--help lists the commands"
expect 0 "--version succeeds" -- "$CAIRN" --version
contains "cairn " "$out" "--version prints the name and version"
expect 2 "no command is a usage error" -- "$CAIRN"
expect 2 "an unknown command is a usage error" -- "$CAIRN" -r "$T/r" frobnicate
contains 'unknown command "frobnicate"' "$err" "naming the command"
expect 1 "no repository given" -- env CAIRN_CONFIG= "$CAIRN" -c /nonexistent/cairn.conf info
contains "/nonexistent/cairn.conf" "$err" "names the missing config"

expect 2 "init of an encrypted repository without a passphrase" -- "$CAIRN" -r "$T/r" init
contains "passphrase" "$err" "says a passphrase is needed"
expect 0 "init with --password-file" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" init --scrypt-n 1024
contains "created encrypted repository" "$out" "reports what it created"
test "$(stat -c %a "$T/r")" = 700; tap_ok $? "repository directory is 0700"
test "$(stat -c %a "$T/r/config")" = 600; tap_ok $? "config is 0600"
test "$(stat -c %a "$T/r/keys")" = 700; tap_ok $? "keys/ is 0700"
for d in keys packs snapshots index locks; do
        test -d "$T/r/$d"; tap_ok $? "layout has $d/"
done

expect 0 "info opens with the right passphrase (file)" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" info
contains "AES-256-GCM" "$out" "info shows the encryption"
# The key cache: an entry in the kernel keyring after an open; off removes it.
expect 0 "info --json gives the repository id" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" info --json
rid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
grep -q " user *cairn:$rid: 60\$" /proc/keys; tap_ok $? "the kernel keyring holds cairn:$rid (60 bytes: the sealed key)"
expect 0 "CAIRN_KEY_CACHE=off opens" -- env CAIRN_KEY_CACHE=off "$CAIRN" -r "$T/r" --password-file "$T/pw" info
# (/proc/keys lists a removed key until the kernel's collector frees it: a moment)
gone=1; for i in $(seq 50); do grep -q "cairn:$rid:" /proc/keys || { gone=0; break; }; sleep 0.1; done
test $gone = 0; tap_ok $? "and removes the entry"
expect 1 "a bad CAIRN_KEY_CACHE is an error" -- env CAIRN_KEY_CACHE=forever "$CAIRN" -r "$T/r" --password-file "$T/pw" info
contains 'CAIRN_KEY_CACHE: "forever"' "$err" "naming the variable and the value"
expect 1 "the wrong passphrase fails (nothing cached)" -- "$CAIRN" -r "$T/r" --password-file "$T/badpw" info
expect 0 "info caches again" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" info
expect 1 "the wrong passphrase fails with the key cached too" -- "$CAIRN" -r "$T/r" --password-file "$T/badpw" info
contains "Wrong passphrase" "$err" "saying so"
expect 0 "info with the passphrase in \$CAIRN_PASSWORD" -- env CAIRN_PASSWORD="correct horse" "$CAIRN" -r "$T/r" info
expect 0 "info with --password-command" -- "$CAIRN" -r "$T/r" --password-command "cat $T/pw" info
expect 0 "info --json" -- env CAIRN_PASSWORD_FILE="$T/pw" CAIRN_REPO="$T/r" "$CAIRN" info --json
echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["encryption"]=="aes-256-gcm" and d["snapshots"]==0'
tap_ok $? "info --json is valid JSON with the encryption and snapshot count"

expect 1 "a wrong passphrase fails" -- "$CAIRN" -r "$T/r" --password-file "$T/badpw" info
contains "Wrong passphrase for repository $T/r" "$err" "saying so, with the path"
expect 1 "no passphrase for an encrypted repository fails" -- "$CAIRN" -r "$T/r" info
contains "is encrypted" "$err" "saying it is encrypted"
expect 1 "a missing passphrase file fails" -- "$CAIRN" -r "$T/r" --password-file "$T/nope" info
contains "$T/nope" "$err" "naming the file"
expect 1 "a failing passphrase command fails" -- "$CAIRN" -r "$T/r" --password-command "false" info
contains 'command "false" failed' "$err" "naming the command"

expect 1 "init over an existing repository fails" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" init
contains "already holds a cairn repository" "$err" "saying so"
expect 1 "info on a directory that is not a repository" -- "$CAIRN" -r "$T" info
contains "is not a cairn repository" "$err" "saying so"
expect 1 "info on a missing path" -- "$CAIRN" -r "$T/missing" info
contains "$T/missing" "$err" "naming the path"

expect 0 "init --no-encryption" -- "$CAIRN" -r "$T/plain" init --no-encryption
expect 0 "an unencrypted repository opens without a passphrase" -- "$CAIRN" -r "$T/plain" info
contains "encryption  none" "$out" "info says unencrypted"

sed -i 's/^version = 1/version = 9/' "$T/plain/config"
expect 1 "a repository of a newer format is refused" -- "$CAIRN" -r "$T/plain" info
contains "version 9 is newer than this cairn supports" "$err" "saying so"

expect 0 "index rebuild on an empty repository" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" index rebuild
rm -rf "$T/r/index"
expect 0 "index rebuild after the index was deleted" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" index rebuild
test -f "$T/r/index/data.mdb"; tap_ok $? "the index is back"
test "$(stat -c %a "$T/r/index/data.mdb")" = 600; tap_ok $? "index data.mdb is 0600 (it holds plaintext names)"
expect 0 "snapshots on an empty repository" -- "$CAIRN" -r "$T/r" --password-file "$T/pw" snapshots --json
test "$out" = "[]"; tap_ok $? "prints an empty JSON list"

tap_finish
