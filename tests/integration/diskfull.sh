#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A repository on a full disk: a 64 MiB tmpfs made here.  A backup that
# does not fit fails with "No space left on device" naming what it was
# writing, and leaves the repository valid (check passes, earlier
# snapshots restore byte-identical, no temporary file left); so does a
# small backup with only 0..1 MiB free, wherever that space runs out (pack,
# index, snapshot file).  Once space is back the next backup succeeds and
# prune removes what the failed runs left (counted).
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG CAIRN_FAULT || true

M=$T/fs
mkdir -p "$M"
if ! mount -t tmpfs -o size=64m cairn-diskfull "$M"; then
        echo "Bail out! cannot mount a tmpfs at $M (needs root)"
        exit 1
fi
trap 'umount "$M" 2>/dev/null || umount -l "$M"; rm -rf --one-file-system "$tap_tmp"' EXIT
trap 'exit 143' TERM INT

REPO=$M/repo
S=$T/src/app
B=$T/src/big
mkdir -p "$S/etc" "$B"
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $REPO
password-file = $T/pw

[job app]
path = $S

[job big]
path = $B
CONF
export CAIRN_CONFIG=$T/cairn.conf

avail() { df -B1 --output=avail "$M" | tail -n 1 | tr -d ' '; }
no_sanitizer() { ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$@"; }

ID=()
snap() { # N
        "$CAIRN" backup app || return 1
        ID[$1]=$("$CAIRN" snapshots --json app | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
        rm -rf "$T/exp/$1"; mkdir -p "$T/exp/$1"; cp -a "$S/." "$T/exp/$1/"
}
verify() { # DESC
        local bad="" d i
        for i in "${!ID[@]}"; do
                rm -rf "$T/r"
                if ! "$CAIRN" restore "${ID[$i]}" --target "$T/r" >/dev/null 2>"$T/r.err"; then
                        bad="$bad s$i-restore-failed"; sed 's/^/#   /' "$T/r.err" | head -3; continue
                fi
                d=$(rsync -ac --delete --dry-run --itemize-changes "$T/exp/$i/" "$T/r$S/" 2>&1)
                [ -z "$d" ] || bad="$bad s$i-differs"
        done
        test -z "$bad"; tap_ok $? "$1: all ${#ID[@]} earlier snapshots restore byte-identical${bad:+ (got:$bad)}"
}
no_temp_files() { # DESC
        local left
        left=$(ls -d "$REPO"/packs/.tmp-* "$REPO"/snapshots/.tmp-* "$REPO"/state/*/.tmp-* "$REPO"/state/.tmp-* 2>/dev/null)
        test -z "$left"; tap_ok $? "$1: no temporary file left behind${left:+ ($left)}"
}

expect 0 "init on a 64 MiB tmpfs" -- "$CAIRN" init --scrypt-n 1024
for i in $(seq 1 20); do printf 'line %d\n' "$i" > "$S/etc/f$i"; done
head -c 3000000 /dev/urandom > "$S/data1.bin"
snap 1; tap_ok $? "snapshot 1"
head -c 2000000 /dev/urandom > "$S/data2.bin"
printf 'more\n' >> "$S/etc/f1"
snap 2; tap_ok $? "snapshot 2"
echo "# $(avail) bytes free on the tmpfs"

# ---- a backup that does not fit ----
head -c 90000000 /dev/urandom > "$B/huge.bin"
expect 1 "a backup of 90 MB into the 64 MiB tmpfs fails" -- "$CAIRN" backup big
contains "No space left on device" "$err" "the message says no space"
printf '%s' "$err" | grep -q 'Failed to write pack file packs/.tmp-[0-9a-f]*: No space left on device'
tap_ok $? "and names the pack file it was writing"
printf '%s\n' "$err" | sed 's/^/#   /' | head -6
contains 'job "big" failed; no snapshot was recorded' "$err" "and that no snapshot was recorded"
no_sanitizer "$tap_tmp/stderr"; tap_ok $? "no sanitizer report"
no_temp_files "the failed big backup"
expect 0 "check passes after it" -- "$CAIRN" check
expect 0 "check --read-data passes" -- "$CAIRN" check --read-data
verify "after the failed big backup"
expect 0 "snapshots lists only app's two" -- "$CAIRN" snapshots --json
n=$(echo "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
test "$n" = 2; tap_ok $? "two snapshots (got $n)"

# ---- small backups with almost no space left, wherever it runs out ----
# One new 600000-byte file each time, so that each run's pack has the same
# size P (measured by the first, which has room): the free space is then
# set to just below, at and above what a run needs, 4 KiB (a tmpfs page)
# apart, so that the space runs out in the pack, the index or the snapshot.
newfile() { rm -f "$S"/new-*.bin; head -c 600000 /dev/urandom > "$S/new-$1.bin"; printf 'change %s\n' "$1" >> "$S/etc/f2"; }
addsnap() {
        local n=$((${#ID[@]} + 1))
        ID[$n]=$("$CAIRN" snapshots --json app | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
        rm -rf "$T/exp/$n"; mkdir -p "$T/exp/$n"; cp -a "$S/." "$T/exp/$n/"
}
newfile calibrate
a0=$(avail)
expect 0 "a small backup with room to spare" -- "$CAIRN" backup app
addsnap
P=$(stat -c %s "$(ls -t "$REPO"/packs/*/* | head -n 1)")
used=$((a0 - $(avail)))
echo "# its pack: $P bytes; the run took $used bytes of the tmpfs"
failures=0; successes=0; sites=
P4=$(( (P + 4095) / 4096 * 4096 ))
for free in 0 16384 $((P4 - 4096)) $P4 $((P4 + 4096)) $((P4 + 8192)) $((P4 + 12288)) $((P4 + 16384)) \
            $((P4 + 24576)) $((P4 + 32768)) $((P4 + 65536)); do
        [ "$free" -lt 0 ] && free=0
        rm -f "$M/filler"
        newfile "$free"
        a=$(avail)
        if [ "$a" -gt "$free" ]; then
                head -c $((a - free)) /dev/zero > "$M/filler" 2>/dev/null
        fi
        "$CAIRN" backup app >"$T/b.out" 2>"$T/b.err"; st=$?
        first=$(grep -m 1 'error:' "$T/b.err")
        if [ $st -eq 0 ]; then
                successes=$((successes + 1))
                echo "# $free bytes free: the backup fit$(grep -m 1 'warning:' "$T/b.err" | sed 's/^/, /')"
                addsnap
        else
                failures=$((failures + 1))
                echo "# $free bytes free: exit $st: $first"
                grep 'error:' "$T/b.err" | sed -n '2,3p' | sed 's/^/#     /'
                case $first in
                *"pack file"*) sites="$sites pack" ;;
                *"index"*) sites="$sites index" ;;
                *"snapshot file"*) sites="$sites snapshot" ;;
                *) sites="$sites other" ;;
                esac
                test $st -eq 1 && grep -q 'No space left on device' "$T/b.err"
                tap_ok $? "$free bytes free: the backup fails with exit 1 and \"No space left on device\""
                grep -Eq 'error: .*(pack|snapshot file|index|lock|snapshots/|packs/).*No space left on device' "$T/b.err"
                tap_ok $? "$free bytes free: the error names what was being written"
                # (unless it stopped before it began: no room for its lock's holder line)
                grep -q 'no snapshot was recorded\|Cannot write lock' "$T/b.err"
                tap_ok $? "$free bytes free: and says that no snapshot was recorded"
        fi
        no_sanitizer "$T/b.err"; tap_ok $? "$free bytes free: no sanitizer report"
        no_temp_files "$free bytes free"
        "$CAIRN" check >"$T/c.out" 2>"$T/c.err"; st=$?
        tap_ok $st "$free bytes free: check passes on the full disk (exit $st)"
        [ $st -eq 0 ] || sed 's/^/#   /' "$T/c.err" | head -5
done
echo "# where the space ran out:$sites"
rm -f "$M/filler"
echo "# small backups: $failures failed, $successes fit"
test "$failures" -ge 3 && test "$successes" -ge 1; tap_ok $? "some of them ran out of space ($failures), some fit ($successes)"
verify "after the small backups"
expect 0 "check --read-data after them" -- "$CAIRN" check --read-data

# ---- space back: prune removes the leftovers, the next backups succeed ----
rm -f "$B/huge.bin"
head -c 30000000 /dev/urandom > "$B/huge.bin"
mount -o remount,size=256m "$M"; tap_ok $? "the tmpfs grows to 256 MiB"
packs_before=$(ls "$REPO"/packs/*/* | wc -l)
# Pack files no row names are kept for an hour (a backup may be about to
# record them); these are hours old by now.
find "$REPO/packs" -type f -exec touch -d '2 hours ago' {} +
expect 0 "prune" -- "$CAIRN" prune --json
echo "# $out"
deleted=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["packs_deleted"])')
test "$deleted" -ge 1; tap_ok $? "prune deletes the failed runs' packs ($deleted of $packs_before)"
packs_after=$(ls "$REPO"/packs/*/* | wc -l)
test $((packs_before - packs_after)) -ge "$deleted"; tap_ok $? "and the files are gone ($packs_before -> $packs_after)"
expect 0 "check -v after the prune" -- "$CAIRN" check -v
indexed=$(printf '%s' "$out" | sed -n 's/.* \([0-9]*\) packs\{0,1\} (.*/\1/p')
test "$indexed" = "$packs_after"; tap_ok $? "every pack file left is in the index ($indexed indexed, $packs_after files)"
expect 0 "the big backup now succeeds" -- "$CAIRN" backup big
expect 0 "and app" -- "$CAIRN" backup app
expect 0 "check --read-data at the end" -- "$CAIRN" check --read-data
verify "at the end"
rm -rf "$T/r"
"$CAIRN" restore big --target "$T/r" >/dev/null && cmp -s "$B/huge.bin" "$T/r$B/huge.bin"
tap_ok $? "the big file restores byte-identical"

tap_finish
