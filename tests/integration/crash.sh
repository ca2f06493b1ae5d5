#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crashes at every step of a backup, forget, prune and index rebuild
# (CAIRN_FAULT=POINT[:N], index/fault.h), then plain SIGKILL at seeded
# random moments of a large backup and of a prune.  After each: the
# operation died where it was told to, `cairn check --read-data` passes,
# every snapshot that existed before restores byte-identical (rsync -ac
# --dry-run --itemize-changes prints nothing), the snapshots the keep
# rules keep are all there, and the next backup (and forget --prune) works
# and checks clean again.
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG CAIRN_FAULT || true
SEED=${CRASH_SEED:-20261201}
RANDOM=$SEED
echo "# seed $SEED (CRASH_SEED=...)"
t_start=$(date +%s)

REPO=$T/repo
S=$T/src/app
B=$T/src/big
mkdir -p "$S/etc/sub" "$S/data" "$B"
printf 'correct horse\n' > "$T/pw"
chmod 600 "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $REPO
password-file = $T/pw

[job app]
path = $S
keep-last = 2

[job big]
path = $B
keep-last = 1
CONF
export CAIRN_CONFIG=$T/cairn.conf

# snapshot ids of job app, oldest first, and a copy of each one's source
ID=()
snap() { # N: back up app as snapshot N and keep a copy of what it holds
        "$CAIRN" backup app || return 1
        ID[$1]=$("$CAIRN" snapshots --json app | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
        rm -rf "$T/exp/$1"; mkdir -p "$T/exp/$1"
        cp -a "$S/." "$T/exp/$1/"
}

# ---- the repository every scenario starts from ----
"$CAIRN" init --scrypt-n 1024 >/dev/null; tap_ok $? "init"
for i in $(seq 1 30); do printf 'config line %d\n' "$i" > "$S/etc/conf$i"; done
ln -s ../etc/conf1 "$S/data/link"
head -c 1500000 /dev/urandom > "$S/data/big1.bin"       # kept by every snapshot
head -c 2000000 /dev/urandom > "$S/data/drop.bin"       # only in s1: its pack gets repacked
snap 1; tap_ok $? "snapshot 1"
rm "$S/data/drop.bin"
head -c 1200000 /dev/urandom > "$S/data/tmp2.bin"       # only in s2: its pack gets deleted
snap 2; tap_ok $? "snapshot 2"
rm "$S/data/tmp2.bin"
printf 'new in 3\n' > "$S/etc/sub/three"
printf 'changed in 3\n' >> "$S/etc/conf2"
snap 3; tap_ok $? "snapshot 3"
printf 'changed in 4\n' >> "$S/etc/conf4"
head -c 300000 /dev/urandom > "$S/data/four.bin"
snap 4; tap_ok $? "snapshot 4"
"$CAIRN" check --read-data; tap_ok $? "the base repository checks clean"
cp -a "$REPO" "$T/base"
# The same after `cairn forget app` (s1, s2 forgotten, nothing pruned yet).
"$CAIRN" forget app >/dev/null; tap_ok $? "forget (for the prune base)"
"$CAIRN" prune --dry-run --json > "$T/dry.json"
python3 - "$T/dry.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["packs_deleted"] >= 1 and d["packs_repacked"] >= 1, d
PY
tap_ok $? "the prune base has a pack to delete and one to repack ($(cat "$T/dry.json"))"
cp -a "$REPO" "$T/base-forgotten"
rm -rf "$REPO"

listed_ids() { "$CAIRN" snapshots --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))'; }

# verify DESC FIRST: every recorded snapshot of app that is still listed
# restores byte-identical; snapshots FIRST..4 must be listed.
verify() {
        local desc=$1 first=$2 listed bad="" d i
        listed=$(listed_ids)
        for i in 1 2 3 4; do
                case " $listed " in
                *" ${ID[$i]} "*) ;;
                *) [ "$i" -ge "$first" ] && bad="$bad s$i-missing"; continue ;;
                esac
                rm -rf "$T/r"
                if ! "$CAIRN" restore "${ID[$i]}" --target "$T/r" >/dev/null 2>"$T/r.err"; then
                        bad="$bad s$i-restore-failed"; sed 's/^/#   /' "$T/r.err" | head -5
                        continue
                fi
                d=$(rsync -ac --delete --dry-run --itemize-changes "$T/exp/$i/" "$T/r$S/" 2>&1)
                [ -z "$d" ] || { bad="$bad s$i-differs"; echo "$d" | head -5 | sed 's/^/#   /'; }
        done
        test -z "$bad"; tap_ok $? "$desc: snapshots restore byte-identical${bad:+ (got:$bad)}"
}

# check_ok DESC [ARGS]: cairn check ARGS exits 0
check_ok() {
        local desc=$1; shift
        "$CAIRN" check "$@" >"$T/check.out" 2>"$T/check.err"
        local st=$?
        tap_ok $st "$desc: check $* passes (exit $st)"
        [ $st -eq 0 ] || sed 's/^/#   /' "$T/check.err" | head -10
}

# latest_matches DESC: the newest snapshot of app restores as $S is now
latest_matches() {
        local d
        rm -rf "$T/r"
        "$CAIRN" restore app --target "$T/r" >/dev/null 2>"$T/r.err" &&
                d=$(rsync -ac --delete --dry-run --itemize-changes "$S/" "$T/r$S/" 2>&1) && [ -z "$d" ]
        tap_ok $? "$1: the new backup restores as its source is"
}

# crash BASE POINT[:N][:kill] KIND COMMAND...: runs COMMAND on a fresh copy
# of BASE with CAIRN_FAULT set; it must die at POINT.  KIND (backup,
# forget, prune, rebuild) picks the checks and the follow-up.
n_points=0
points_seen=" "
crash() {
        local base=$1 fault=$2 kind=$3 st want name
        shift 3
        rm -rf "$REPO"; cp -a "$base" "$REPO"
        [ "$kind" = backup ] && head -c 1100000 /dev/urandom > "$S/data/new.bin"
        name=${fault%%:*}
        want=99; case $fault in *:kill) want=137 ;; esac
        CAIRN_FAULT=$fault "$@" >"$T/c.out" 2>"$T/c.err"; st=$?
        [ "$st" -eq "$want" ] && grep -q "fault injected at $name (hit" "$T/c.err"
        tap_ok $? "$fault: \`${*##*/}\` dies there (exit $st, want $want)"
        [ "$st" -eq "$want" ] || sed 's/^/#   /' "$T/c.err" | tail -5
        n_points=$((n_points + 1))
        case "$points_seen" in *" $name "*) ;; *) points_seen="$points_seen$name " ;; esac
        # what is left must look like a crash there, not elsewhere
        [ -n "${leftover:-}" ] && { eval "$leftover"; tap_ok $? "$fault: leaves $leftover_desc"; }
        leftover=
        check_ok "$fault" --read-data
        case $kind in
        backup|rebuild) verify "$fault" 1 ;;
        forget|prune) verify "$fault" 3 ;;
        esac
        case $kind in
        backup|rebuild)
                "$CAIRN" backup app 2>"$T/n.err"; st=$?
                tap_ok $st "$fault: the next backup succeeds (exit $st)"
                [ $st -eq 0 ] || sed 's/^/#   /' "$T/n.err" | head -5
                latest_matches "$fault"
                ;;
        forget|prune)
                "$CAIRN" forget --prune app >/dev/null 2>"$T/n.err"; st=$?
                tap_ok $st "$fault: forget --prune then succeeds (exit $st)"
                [ $st -eq 0 ] || sed 's/^/#   /' "$T/n.err" | head -5
                local after
                after=$(listed_ids)
                [ "$after" = "${ID[3]} ${ID[4]}" ]; tap_ok $? "$fault: and leaves exactly snapshots 3 and 4"
                # nothing left to delete or repack: the interrupted prune was finished
                "$CAIRN" prune --json > "$T/p2.json" 2>&1 &&
                        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["packs_deleted"]==0 and d["packs_repacked"]==0, d' "$T/p2.json"
                tap_ok $? "$fault: a second prune has nothing left to do ($(head -c 200 "$T/p2.json"))"
                "$CAIRN" backup app 2>"$T/n.err"; st=$?
                tap_ok $st "$fault: the next backup succeeds (exit $st)"
                ;;
        esac
        check_ok "$fault: after the follow-up" --read-data
        # Packs and snapshot files are the truth: a prune, then an index
        # built from them alone, must still check clean (a prune that
        # deleted what a snapshot file without a row names would fail here).
        "$CAIRN" prune >/dev/null 2>"$T/n.err"; st=$?
        tap_ok $st "$fault: a prune after it succeeds (exit $st)"
        n_files=$(ls "$REPO/snapshots" | wc -l)
        n_rows=$(listed_ids | wc -w)
        test "$n_files" -eq "$n_rows"; tap_ok $? "$fault: every snapshot file has its row ($n_files files, $n_rows rows)"
        "$CAIRN" index rebuild >/dev/null 2>"$T/n.err"; st=$?
        tap_ok $st "$fault: index rebuild from packs and snapshot files (exit $st)"
        [ $st -eq 0 ] || sed 's/^/#   /' "$T/n.err" | head -5
        check_ok "$fault: after the rebuild"
        [ "$kind" = backup ] && rm -f "$S/data/new.bin"
        return 0
}
# crash_backup POINT: a backup of app with a new 1.1 MB file
crash_backup() { crash "$T/base" "$1" backup "$CAIRN" backup app; }

# ---- a backup ----
crash_backup backup.mid-file
crash_backup backup.after-tree
leftover='ls "$REPO"/packs/.tmp-* >/dev/null 2>&1'; leftover_desc="a temporary pack file"
crash_backup pack.written
crash_backup pack.fsynced:kill
leftover='test "$(ls "$REPO"/packs/*/* | wc -l)" -gt "$(ls "$T"/base/packs/*/* | wc -l)"'; leftover_desc="a new pack no row names"
crash_backup pack.renamed
crash_backup store.before-index-commit
crash_backup store.after-index-commit
crash_backup backup.before-snapshot
leftover='ls "$REPO"/snapshots/.tmp-* >/dev/null 2>&1'; leftover_desc="a temporary snapshot file"
crash_backup atomic-write.tmp-written
crash_backup atomic-write.renamed
leftover='test "$(ls "$REPO"/snapshots | wc -l)" -eq 5 && test "$(listed_ids | wc -w)" -eq 4'
leftover_desc="a snapshot file without an index row"
crash_backup snapshot.file-written
crash_backup snapshot.before-index-commit:kill
crash_backup snapshot.after-index-commit
crash_backup index.after-commit:2

# ---- forget (s1 and s2 go) ----
crash "$T/base" forget.before-row-delete forget "$CAIRN" forget app
crash "$T/base" forget.row-deleted forget "$CAIRN" forget app
crash "$T/base" forget.file-deleted forget "$CAIRN" forget app
crash "$T/base" forget.row-deleted:2 forget "$CAIRN" forget app
crash "$T/base" forget.file-deleted:2 forget "$CAIRN" forget --prune app

# ---- prune --dry-run after an interrupted forget plans what prune does ----
# forget dies after deleting s1's row: s1's file is left without a row.  A
# prune gives it its row back first and keeps its data; the dry run must
# plan the same, and change nothing.
rm -rf "$REPO"; cp -a "$T/base" "$REPO"
CAIRN_FAULT=forget.row-deleted "$CAIRN" forget app >/dev/null 2>&1
before=$(listed_ids)
case " $before " in *" ${ID[1]} "*) tap_ok 1 "an interrupted forget left s1 without a row";; *) tap_ok 0 "an interrupted forget left s1 without a row";; esac
"$CAIRN" prune --dry-run --json > "$T/dry2.json" 2>"$T/dry2.err"; st=$?
tap_ok $st "prune --dry-run (exit $st)"
grep -q "prune would give it its row back" "$T/dry2.err"; tap_ok $? "the dry run says the snapshot file would get its row back"
test "$(listed_ids)" = "$before"; tap_ok $? "and changes nothing (s1 still has no row)"
"$CAIRN" prune --json > "$T/real2.json" 2>/dev/null; st=$?
tap_ok $st "prune (exit $st)"
python3 - "$T/dry2.json" "$T/real2.json" <<'PY'
import json, sys
d, r = (json.load(open(p)) for p in sys.argv[1:3])
keys = ("packs_deleted", "packs_repacked", "bytes_freed")
print("# dry run:", {k: d[k] for k in keys}, "prune:", {k: r[k] for k in keys})
sys.exit(0 if all(d[k] == r[k] for k in keys) else 1)
PY
tap_ok $? "the dry run planned exactly what the prune did"
verify "dry run after an interrupted forget" 1

# ---- prune (of the forgotten base: one pack to delete, one to repack) ----
P=$T/base-forgotten
crash "$P" prune.after-mark prune "$CAIRN" prune
crash "$P" prune.before-delete-commit prune "$CAIRN" prune
crash "$P" prune.before-delete-packs prune "$CAIRN" prune
crash "$P" prune.mid-delete-packs prune "$CAIRN" prune
crash "$P" prune.repack-copied prune "$CAIRN" prune
crash "$P" pack.written prune "$CAIRN" prune
crash "$P" pack.renamed prune "$CAIRN" prune
crash "$P" prune.mid-repack prune "$CAIRN" prune
crash "$P" prune.after-repack-commit prune "$CAIRN" prune
crash "$P" prune.mid-repack-delete prune "$CAIRN" prune
crash "$P" index.before-commit:2 prune "$CAIRN" prune
# leftovers of crashed writers past the grace period: prune deletes them
rm -rf "$T/base-leftovers"; cp -a "$P" "$T/base-leftovers"
for i in 1 2 3; do
        head -c 1000 /dev/urandom > "$T/base-leftovers/packs/.tmp-0000000000000000000000000000000$i"
        touch -d '3 hours ago' "$T/base-leftovers/packs/.tmp-0000000000000000000000000000000$i"
done
crash "$T/base-leftovers" prune.mid-tidy:2 prune "$CAIRN" prune
ls "$REPO"/packs/.tmp-* >/dev/null 2>&1; tap_ok $((!$?)) "prune.mid-tidy: the follow-up prune deleted the old leftovers"

# ---- index rebuild ----
crash "$T/base" index-rebuild.mid rebuild "$CAIRN" index rebuild
crash "$T/base" index-rebuild.before-swap rebuild "$CAIRN" index rebuild
leftover='test -e "$REPO/index/data.mdb"'; leftover_desc="an index in place"
crash "$T/base" index-rebuild.swapped rebuild "$CAIRN" index rebuild

n_distinct=$(echo $points_seen | wc -w)
test "$n_distinct" -ge 20; tap_ok $? "$n_distinct distinct fault points reached ($n_points crashes)"
echo "# points:$points_seen"
echo "# fault scenarios took $(( $(date +%s) - t_start )) s"

# ---- plain SIGKILL at random moments ----
# A larger tree for job big: 24 files of 1.5 MB and 300 small ones.
for i in $(seq 1 24); do head -c 1500000 /dev/urandom > "$B/f$i.bin"; done
mkdir -p "$B/small"
for i in $(seq 1 300); do printf 'small file %d\n' "$i" > "$B/small/s$i"; done
rm -rf "$REPO"; cp -a "$T/base" "$REPO"
t0=$(date +%s%N)
"$CAIRN" backup big; tap_ok $? "a full backup of the large tree"
dur_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "# it took $dur_ms ms"
cp -a "$REPO" "$T/base-big"
interrupted=0
for iter in 1 2 3 4; do
        rm -rf "$REPO"; cp -a "$T/base" "$REPO"
        delay=$(( 5 + RANDOM % (dur_ms > 40 ? dur_ms * 3 / 4 : 30) ))
        "$CAIRN" backup big 2>/dev/null & pid=$!
        sleep "$(printf '0.%03d' "$((delay % 1000))")"
        [ "$delay" -ge 1000 ] && sleep $((delay / 1000))
        if kill -9 $pid 2>/dev/null; then interrupted=$((interrupted + 1)); fi
        wait $pid 2>/dev/null
        echo "# backup $iter: SIGKILL after $delay ms"
        check_ok "kill -9 of backup $iter" --read-data
        verify "kill -9 of backup $iter" 1
        "$CAIRN" backup big; tap_ok $? "kill -9 of backup $iter: the next backup of the large tree succeeds"
        "$CAIRN" backup app; tap_ok $? "kill -9 of backup $iter: and a backup of app"
        check_ok "kill -9 of backup $iter: after them"
done
rm -rf "$T/r"
"$CAIRN" restore big --target "$T/r" >/dev/null && d=$(rsync -ac --delete --dry-run --itemize-changes "$B/" "$T/r$B/") && [ -z "$d" ]
tap_ok $? "the large tree restores byte-identical after the kills"
test "$interrupted" -ge 1; tap_ok $? "at least one kill hit a running backup ($interrupted of 4)"

# A prune with much to do: two thirds of the big files change and the old
# snapshot is forgotten (keep-last 1), so prune deletes packs and repacks
# the rest of the first one.
rm -rf "$REPO"; cp -a "$T/base-big" "$REPO"
for i in $(seq 1 16); do head -c 1500000 /dev/urandom > "$B/f$i.bin"; done
printf 'changed\n' >> "$S/etc/conf5"
"$CAIRN" backup big && "$CAIRN" forget app big >/dev/null; tap_ok $? "a base for prune: big changed, old snapshots forgotten"
cp -a "$REPO" "$T/base-prune"
t0=$(date +%s%N)
"$CAIRN" prune >/dev/null; tap_ok $? "the prune itself"
dur_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "# it took $dur_ms ms"
interrupted=0
for iter in 1 2 3 4; do
        rm -rf "$REPO"; cp -a "$T/base-prune" "$REPO"
        delay=$(( 5 + RANDOM % (dur_ms > 40 ? dur_ms * 3 / 4 : 30) ))
        "$CAIRN" prune >/dev/null 2>&1 & pid=$!
        sleep "$(printf '0.%03d' "$((delay % 1000))")"
        [ "$delay" -ge 1000 ] && sleep $((delay / 1000))
        if kill -9 $pid 2>/dev/null; then interrupted=$((interrupted + 1)); fi
        wait $pid 2>/dev/null
        echo "# prune $iter: SIGKILL after $delay ms"
        check_ok "kill -9 of prune $iter" --read-data
        verify "kill -9 of prune $iter" 3
        "$CAIRN" prune >/dev/null; tap_ok $? "kill -9 of prune $iter: the next prune succeeds"
        "$CAIRN" backup app; tap_ok $? "kill -9 of prune $iter: and a backup"
        check_ok "kill -9 of prune $iter: after them" --read-data
done
test "$interrupted" -ge 1; tap_ok $? "at least one kill hit a running prune ($interrupted of 4)"
rm -rf "$T/r"
"$CAIRN" restore big --target "$T/r" >/dev/null && d=$(rsync -ac --delete --dry-run --itemize-changes "$B/" "$T/r$B/") && [ -z "$d" ]
tap_ok $? "the large tree's latest snapshot restores byte-identical after the killed prunes"
echo "# crash.sh took $(( $(date +%s) - t_start )) s"

tap_finish
