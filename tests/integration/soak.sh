#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Everything at once on one repository for SOAK_SECONDS (default 30): a
# loop of backups of changing data, a cairnfs mount read by a reader that
# compares every file of the snapshots it knows against saved copies,
# `cairn forget --prune` (keep-last rules that keep the reader's fixed
# snapshot) and `cairn check`, each in a loop.  At the end: no reader
# error for a file of a snapshot that still exists, no deadlock (every
# command finishes within its timeout, every loop ends), a final
# `cairn check --read-data` passes.
set -u
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"
unset CAIRN_FAULT || true
SOAK_SECONDS=${SOAK_SECONDS:-30}
CMD_TIMEOUT=${SOAK_CMD_TIMEOUT:-120}
echo "# soaking for $SOAK_SECONDS s"

K=$T/src/keep
C=$T/src/churn
mkdir -p "$K/sub" "$C/sub" "$T/copies"
for i in 1 2 3; do
        head -c 2000000 /dev/urandom > "$K/f$i-keep.bin"
        head -c 5000000 /dev/urandom > "$K/f$i-zdrop.bin"
done
for i in $(seq 1 20); do printf 'small file %d\n' "$i" > "$K/sub/s$i.txt"; done
for i in $(seq 1 10); do printf 'churn small %d\n' "$i" > "$C/sub/c$i.txt"; done
printf 'correct horse\n' > "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $T/repo
password-file = $T/pw

[job keep]
path = $K
keep-last = 1

[job churn]
path = $C
keep-last = 2
CONF
export CAIRN_CONFIG=$T/cairn.conf

expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup keep (with the *-zdrop.bin files)" -- "$CAIRN" backup keep
rm "$K"/*-zdrop.bin
sleep 1.1
expect 0 "backup keep again: the reader's snapshot (keep-last 1 keeps it)" -- "$CAIRN" backup keep
kept=$(snap_names keep | tail -n 1)
mkdir -p "$T/copies/keep"
cp -a "$K" "$T/copies/keep/$kept"

M=$T/mnt
log=$T/cairnfs.log
mount_start "$log" "$M" -o password_file="$T/pw",cache_size=16 "$T/repo" "$M"; tap_ok $? "mount with a 16 MiB cache"
pid=$mnt_pid
test -d "$M/keep/$kept$K"; tap_ok $? "the reader's snapshot $kept is mounted"

# ---- the loops; each writes "ok failed timeouts" to $T/count.NAME ----
stop=$T/stop
count() { echo "$2 $3 $4" > "$T/count.$1.tmp" && mv "$T/count.$1.tmp" "$T/count.$1"; }
# runc NAME COMMAND...: one run under a timeout; logs failures
runc() {
        local name=$1 st
        shift
        timeout -k 10 "$CMD_TIMEOUT" "$@" >>"$T/$name.out" 2>"$T/$name.err"; st=$?
        if [ "$st" -ne 0 ]; then
                { echo "--- exit $st: $*"; cat "$T/$name.err"; } >> "$T/$name.fail"
        fi
        grep -hE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/$name.err" >> "$T/sanitizer.log"
        return $st
}

backup_loop() {
        local ok=0 bad=0 to=0 i=0 st t
        while [ ! -e "$stop" ]; do
                i=$((i + 1))
                head -c 1500000 /dev/urandom > "$C/d$i.bin"
                rm -f "$C/d$((i - 3)).bin"
                # c1/c2 in turn: a round's pack holds d$i and that file's
                # blob, both unused a few rounds later, so prunes delete
                # whole packs (not only repack) even in a short, slow soak.
                printf 'round %d\n' "$i" >> "$C/sub/c$((i % 2 + 1)).txt"
                runc backup "$CAIRN" backup churn; st=$?
                if [ $st -eq 0 ]; then
                        ok=$((ok + 1))
                        t=$("$CAIRN" snapshots --json churn | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["time"])')
                        mkdir -p "$T/copies/churn"
                        rm -rf "$T/copies/.tmp"; cp -a "$C" "$T/copies/.tmp" && mv "$T/copies/.tmp" "$T/copies/churn/$t"
                elif [ $st -eq 124 ] || [ $st -eq 137 ]; then to=$((to + 1))
                else bad=$((bad + 1)); fi
                count backup $ok $bad $to
                sleep 1.05      # each snapshot starts in a second of its own: its mount name never changes
        done
        count backup $ok $bad $to
}

forget_loop() {
        local ok=0 bad=0 to=0 st
        sleep 3
        while [ ! -e "$stop" ]; do
                runc forget "$CAIRN" forget --prune --wait; st=$?
                if [ $st -eq 0 ]; then ok=$((ok + 1))
                elif [ $st -eq 124 ] || [ $st -eq 137 ]; then to=$((to + 1))
                else bad=$((bad + 1)); fi
                count forget $ok $bad $to
                sleep 2
        done
        count forget $ok $bad $to
}

check_loop() {
        local ok=0 bad=0 to=0 st
        while [ ! -e "$stop" ]; do
                runc check "$CAIRN" check --wait; st=$?
                if [ $st -eq 0 ]; then ok=$((ok + 1))
                elif [ $st -eq 124 ] || [ $st -eq 137 ]; then to=$((to + 1))
                else bad=$((bad + 1)); fi
                count check $ok $bad $to
                sleep 0.5
        done
        count check $ok $bad $to
}

# The reader: over and over, every file of every snapshot it has a copy
# of (keep/$kept always, churn/* once the backup loop saved one), whole,
# against the copy.  A failure counts only if the snapshot still exists
# afterwards (a forgotten snapshot's files may go EIO once pruned).
cat > "$T/reader.py" <<'EOF'
import json, os, subprocess, sys, time
copies, mnt, stop, status, cairn = sys.argv[1:6]
passes = files = errors = forgotten = 0
def report():
    with open(status + ".tmp", "w") as s:
        s.write("%d %d %d %d\n" % (passes, files, errors, forgotten))
    os.replace(status + ".tmp", status)
def exists(job, name):
    out = subprocess.run([cairn, "snapshots", "--json", job], capture_output=True, text=True, timeout=120).stdout
    return any(s["time"] == name for s in json.loads(out or "[]"))
while not os.path.exists(stop):
    for job in ("keep", "churn"):
        if not os.path.isdir(os.path.join(copies, job)):
            continue
        for name in sorted(os.listdir(os.path.join(copies, job))):
            src = os.path.join(copies, job, name)
            root = os.path.join(mnt, job, name)
            # the mount shows a new snapshot within about a second
            if not os.path.isdir(root) and time.time() - os.stat(src).st_ctime < 5:
                continue
            problems = []
            for d, _, fs in os.walk(src):
                for f in fs:
                    p = os.path.join(d, f)
                    rel = os.path.relpath(p, src)
                    # the mount holds the absolute source path below the snapshot
                    q = os.path.join(root, os.environ["SRC_" + job].lstrip("/"), rel)
                    try:
                        fd = os.open(q, os.O_RDONLY)
                        try:
                            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                            data = b""
                            while True:
                                b = os.read(fd, 1 << 20)
                                if not b:
                                    break
                                data += b
                            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                        finally:
                            os.close(fd)
                        files += 1
                        if data != open(p, "rb").read():
                            problems.append("%s/%s/%s: wrong bytes" % (job, name, rel))
                    except OSError as e:
                        problems.append("%s/%s/%s: %s" % (job, name, rel, e))
            if problems:
                if exists(job, name):
                    errors += len(problems)
                    for x in problems[:5]:
                        print("ERROR (snapshot exists): " + x, flush=True)
                else:
                    forgotten += 1
                    print("forgotten meanwhile: %s/%s (%s)" % (job, name, problems[0]), flush=True)
                    subprocess.run(["rm", "-rf", src])
    passes += 1
    report()
report()
EOF
SRC_keep=$K SRC_churn=$C python3 "$T/reader.py" "$T/copies" "$M" "$stop" "$T/reader.status" "$CAIRN" > "$T/reader.log" 2>&1 &
reader=$!
backup_loop & bl=$!
forget_loop & fl=$!
check_loop & cl=$!
pid_list+=("$reader" "$bl" "$fl" "$cl")
sleep "$SOAK_SECONDS"
touch "$stop"

# wait_done PID DESC SECONDS: the process ends within SECONDS
wait_done() {
        local p=$1 desc=$2 limit=$3 t=0
        while kill -0 "$p" 2>/dev/null && [ $t -lt $((limit * 10)) ]; do sleep 0.1; t=$((t + 1)); done
        if kill -0 "$p" 2>/dev/null; then
                tap_ok 1 "$desc ends (still running after $limit s: a deadlock?)"
                kill "$p" 2>/dev/null
                return 1
        fi
        wait "$p"
        tap_ok 0 "$desc ends within $limit s of the stop"
}
wait_done "$bl" "the backup loop" $((CMD_TIMEOUT + 30))
wait_done "$fl" "the forget --prune loop" $((CMD_TIMEOUT + 30))
wait_done "$cl" "the check loop" $((CMD_TIMEOUT + 30))
wait_done "$reader" "the reader" $((CMD_TIMEOUT + 60))

for n in backup forget check; do
        read -r ok bad to < "$T/count.$n" || { ok=0; bad=0; to=0; }
        echo "# $n: $ok succeeded, $bad failed, $to timed out"
        test "$bad" -eq 0 && test "$to" -eq 0; tap_ok $? "$n loop: no failure, no timeout ($ok runs)"
        [ -s "$T/$n.fail" ] && sed 's/^/#   /' "$T/$n.fail" | head -n 20
        test "$ok" -ge 2; tap_ok $? "$n loop ran at least twice ($ok)"
done
# what the prunes did: "deleted D of N packs, repack R (...), free ..."
read -r p_del p_rep < <(awk '/^deleted [0-9]+ of [0-9]+ packs, repack/ { d += $2; r += $7 } END { print d + 0, r + 0 }' "$T/forget.out")
echo "# prunes deleted $p_del packs and repacked $p_rep"
test "$p_rep" -ge 1 && test "$p_del" -ge 1; tap_ok $? "the prunes deleted ($p_del) and repacked ($p_rep) packs while the reader read"
read -r passes files errors forgotten < "$T/reader.status"
echo "# reader: $passes passes, $files files read, $errors errors on existing snapshots, $forgotten snapshots forgotten while read"
test "$errors" -eq 0; tap_ok $? "the reader saw no error in a file of an existing snapshot"
[ "$errors" -eq 0 ] || grep ERROR "$T/reader.log" | head -n 20 | sed 's/^/#   /'
test "$passes" -ge 2; tap_ok $? "the reader made at least two passes ($passes)"
n_churn=$(ls "$T/copies/churn" 2>/dev/null | wc -l)
echo "# churn snapshots still held as copies: $n_churn; snapshots now: $(snap_names churn | tr '\n' ' ')"
test ! -s "$T/sanitizer.log"; tap_ok $? "no sanitizer report from any command"
[ -s "$T/sanitizer.log" ] && head -n 10 "$T/sanitizer.log" | sed 's/^/#   /'
kill -0 "$pid"; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "soak"
log_clean "$log" "soak"
expect 0 "a final check --read-data" -- "$CAIRN" check --read-data
expect 0 "and a final forget --prune" -- "$CAIRN" forget --prune
expect 0 "check --read-data after it" -- "$CAIRN" check --read-data

tap_finish
