# SPDX-License-Identifier: LGPL-2.1-or-later
# What every mount*.sh test shares.  Source it after tap.sh, with $T set.
#
# The daemon runs in the foreground with its stderr in a log file; the test
# waits for the mount by polling mountpoint(1) while checking the daemon is
# alive, and an EXIT trap always unmounts (fusermount3 -u, then kill), so a
# failing test never leaves a mount behind.  Set extra_cleanup to a function
# name for more to undo at exit (database clusters, users).
: "${CAIRN:?set CAIRN to the cairn binary}"
: "${CAIRNFS:?set CAIRNFS to the cairnfs binary}"
if [ ! -x "$CAIRNFS" ]; then
        echo "Bail out! CAIRNFS=$CAIRNFS is not an executable"
        exit 1
fi
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true

mnt_list=()     # mountpoints to unmount at exit
pid_list=()     # daemons started here, ended at exit if still alive
extra_cleanup=

# Reads /proc, never stats the mountpoint: a hung daemon cannot hang this.
is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }

mnt_cleanup() {
        local m p
        for m in "${mnt_list[@]}"; do
                is_mounted "$m" && timeout 20 fusermount3 -u "$m" 2>/dev/null
        done
        for p in "${pid_list[@]}"; do
                kill -0 "$p" 2>/dev/null || continue
                kill "$p" 2>/dev/null; sleep 1
                kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
        done
        for m in "${mnt_list[@]}"; do
                is_mounted "$m" && fusermount3 -uz "$m" 2>/dev/null
        done
        [ -n "$extra_cleanup" ] && "$extra_cleanup"
        # Never descend into a mount that is somehow still there.
        rm -rf --one-file-system "$tap_tmp"
}
trap mnt_cleanup EXIT
trap 'exit 143' TERM INT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# mount_start LOG MNT ARGS...: runs `cairnfs -f ARGS...` in the background
# (ARGS end with REPO MNT), stderr appended to LOG; $mnt_pid is its pid.
# Waits (up to 60 s) until MNT is a mountpoint; fails at once, showing the
# log, if the daemon exits first.
mount_start() {
        local log=$1 mnt=$2 t0 waited
        shift 2
        mkdir -p "$mnt"
        mnt_list+=("$mnt")
        t0=$(now_ms)
        "$CAIRNFS" -f "$@" 2>>"$log" &
        mnt_pid=$!
        pid_list+=("$mnt_pid")
        while ! mountpoint -q "$mnt"; do
                if ! kill -0 "$mnt_pid" 2>/dev/null; then
                        wait "$mnt_pid"
                        echo "# cairnfs exited with status $? before the mount was up; its log:"
                        sed 's/^/#   /' "$log" | tail -n 20
                        return 1
                fi
                if [ $(( $(now_ms) - t0 )) -gt 60000 ]; then
                        echo "# $mnt is not a mountpoint 60 s after starting cairnfs; its log:"
                        sed 's/^/#   /' "$log" | tail -n 20
                        return 1
                fi
                sleep 0.05
        done
        waited=$(( $(now_ms) - t0 ))
        echo "# mounted $mnt in $waited ms"
}

# mount_stop_term MNT PID DESC: SIGTERM ends the daemon with status 0 and
# the mount is gone.
mount_stop_term() {
        local st
        kill -TERM "$2"
        wait "$2"; st=$?
        test "$st" -eq 0; tap_ok $? "$3: SIGTERM ends cairnfs with exit status 0 (got $st)"
        ! is_mounted "$1"; tap_ok $? "$3: and $1 is no longer mounted"
}

# mount_stop_u MNT PID DESC: fusermount3 -u, then the daemon exits 0.
mount_stop_u() {
        local st
        fusermount3 -u "$1"; st=$?
        test "$st" -eq 0; tap_ok $? "$3: fusermount3 -u succeeds (exit $st)"
        wait "$2"; st=$?
        test "$st" -eq 0; tap_ok $? "$3: cairnfs then exits with status 0 (got $st)"
}

# log_clean LOG DESC: no sanitizer report in the daemon's log.
log_clean() {
        if grep -qE 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' "$1"; then
                tap_ok 1 "$2: the cairnfs log holds no sanitizer report"
                grep -E -m 5 -A 5 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' "$1" | sed 's/^/#   /'
        else
                tap_ok 0 "$2: the cairnfs log holds no sanitizer report"
        fi
}

# wait_for DESC SECONDS COMMAND...: polls COMMAND every 0.1 s until it
# succeeds or SECONDS pass; prints the measured time as a diagnostic.
wait_for() {
        local desc=$1 limit=$(( $2 * 1000 )) t0 st
        shift 2
        t0=$(now_ms)
        until "$@" >/dev/null 2>&1; do
                if [ $(( $(now_ms) - t0 )) -gt "$limit" ]; then
                        tap_ok 1 "$desc (not within $((limit / 1000)) s)"
                        return 1
                fi
                sleep 0.1
        done
        tap_ok 0 "$desc"
        echo "# took $(( $(now_ms) - t0 )) ms"
}

# snap_names JOB [CAIRN-OPTIONS...]: the directory names the mount should
# show for JOB, from `cairn snapshots --json`, oldest first: the start time,
# ".2", ".3"… for more snapshots of the same second, ".partial" for partial.
snap_names() {
        local job=$1
        shift
        "$CAIRN" "$@" snapshots --json "$job" | python3 -c '
import json, sys
seen, out = {}, []
for s in sorted(json.load(sys.stdin), key=lambda s: s["start_ns"]):
    t = s["time"]
    seen[t] = seen.get(t, 0) + 1
    name = t if seen[t] == 1 else "%s.%d" % (t, seen[t])
    out.append(name + (".partial" if s["status"] == "partial" else "") + "\n")
sys.stdout.write("".join(out))'
}

# latest_name JOB [CAIRN-OPTIONS...]: the name `latest` should point to.
latest_name() {
        snap_names "$@" | grep -v '\.partial$' | tail -n 1
}

# run_files COMMAND...: like expect's capture, but through files, not a
# pipe: a daemon that forks keeps its stdout open, and a $(…) would wait
# for it.  Sets $st, $out, $err.
run_n=0
run_files() {
        run_n=$((run_n + 1))
        "$@" >"$T/run$run_n.out" 2>"$T/run$run_n.err" </dev/null
        st=$?
        out=$(cat "$T/run$run_n.out")
        err=$(cat "$T/run$run_n.err")
}

# expect_files STATUS DESCRIPTION -- COMMAND...: expect, with run_files.
expect_files() {
        local want=$1 desc=$2
        shift 3
        run_files "$@"
        [ "$st" -eq "$want" ]
        tap_ok $? "$desc (exit $st, want $want)"
        [ "$st" -eq "$want" ] || { echo "#   stdout: $out"; echo "#   stderr: $err"; }
}

# The first line of $err that starts "cairnfs: error: ".
err_line() { printf '%s\n' "$err" | grep -m 1 '^cairnfs: error: '; }

# podman_run ARGS...: `podman run --rm` as CONTAINERS.md runs it (runc,
# cgroupfs; ARGS end with --rootfs /:O and the command).  The limits are
# explicit because podman's defaults (nofile 1048576, nproc 4194304) exceed
# what runc may set where root lacks CAP_SYS_RESOURCE ("error setting
# rlimit type 7: operation not permitted").
podman_run() {
        timeout 600 podman --runtime runc --cgroup-manager cgroupfs run --rm \
                --ulimit nofile=16384:16384 --ulimit nproc=16384:16384 "$@"
}
