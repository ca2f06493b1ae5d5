#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Restore drills with "cairn verify": a real PostgreSQL dumped by a command
# job; the drill script restores the dump into a fresh cluster inside the
# sandbox (bwrap) or container (podman, runc) and checks the rows; the
# pass or fail lands in "cairn status", the metrics and the webhook; the
# docker, podman and bwrap command lines of --print, checked exactly.
set -u
# The postgres user must reach the test directory: not below a 0700 checkout.
CAIRN_TEST_TMPDIR=/tmp
. "$(dirname "$0")/tap.sh"
T=$tap_tmp
. "$(dirname "$0")/mount-lib.sh"
chmod 755 "$T"

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ]; then
        echo "Bail out! PostgreSQL server binaries not found (test.sh installs postgresql)"
        exit 1
fi
pg() { runuser -u postgres -- "$@"; }
hook_pid=
stop_all() {
        [ -d "$T/pg1/data" ] && pg "$PGBIN/pg_ctl" -D "$T/pg1/data" -m immediate stop >/dev/null 2>&1
        [ -n "$hook_pid" ] && kill "$hook_pid" 2>/dev/null
        return 0
}
extra_cleanup=stop_all
# cairn verify's own mountpoints go here, so the test can see they are gone.
export TMPDIR=$T/tmp
mkdir -p "$TMPDIR"
export CAIRN_TEST_SECRET=leaked

# ---- the database and its backup ----
mkdir -p "$T/pg1" && chown postgres: "$T/pg1"
pg "$PGBIN/initdb" -D "$T/pg1/data" -A trust -U postgres >/dev/null &&
        pg "$PGBIN/pg_ctl" -D "$T/pg1/data" -o "-k $T/pg1 -c listen_addresses=''" -w -l "$T/pg1/log" start >/dev/null
tap_ok $? "source cluster starts"
pg psql -h "$T/pg1" -U postgres -qc "CREATE DATABASE shop" &&
pg psql -h "$T/pg1" -U postgres -d shop -qc "CREATE TABLE orders (id int primary key, note text);
        INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 20000) g;"
tap_ok $? "source data created"
src=$(pg psql -h "$T/pg1" -U postgres -d shop -tAc "SELECT count(*) || ' ' || md5(string_agg(id || note, ',' ORDER BY id)) FROM orders")
test -n "$src"; tap_ok $? "source rows: $src"

# The webhook: a real HTTP server on 127.0.0.1 that logs each POST body.
cat > "$T/hook.py" <<'PY'
import http.server, os, sys
log, portfile = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(log, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(portfile + ".tmp", portfile)
s.serve_forever()
PY
HOOK=$T/hook.log
: > "$HOOK"
python3 "$T/hook.py" "$HOOK" "$T/port" & hook_pid=$!
for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")
posts() { wc -l < "$HOOK"; }

# The drill: a fresh cluster in the sandbox's own /tmp, the dump loaded
# from the read-only snapshot ($BACKUP), the rows counted and summed and
# compared with the source's.
cat > "$T/drill.sh" <<EOF
set -e
D=\$(mktemp -d)
$PGBIN/initdb -D \$D/data -A trust -U postgres >/dev/null
$PGBIN/pg_ctl -D \$D/data -o "-k \$D -c listen_addresses=" -w -l \$D/log start >/dev/null
psql -h \$D -U postgres -d postgres -qf "\$BACKUP/pgdump.sql" >/dev/null 2>\$D/psql.err || { cat \$D/psql.err; exit 1; }
got=\$(psql -h \$D -U postgres -d shop -tAc "SELECT count(*) || ' ' || md5(string_agg(id || note, ',' ORDER BY id)) FROM orders")
$PGBIN/pg_ctl -D \$D/data -m fast stop >/dev/null
echo "restored: \$got"
echo "secret: \${CAIRN_TEST_SECRET:-none}"
test "\$got" = "$src"
EOF
# A drill that fails: the dump lacks what it looks for.
cat > "$T/drill-fail.sh" <<'EOF'
echo "looking for database billing in $BACKUP/pgdump.sql"
grep -q 'CREATE DATABASE billing' "$BACKUP/pgdump.sql" || { echo "database billing is not in the dump"; exit 3; }
EOF
chmod 644 "$T/drill.sh" "$T/drill-fail.sh"

printf 'pw\n' > "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $T/repo
password-file = $T/pw

[status]
textfile = $T/cairn.prom
webhook = http://127.0.0.1:$PORT/hook

[job pgdb]
command = runuser -u postgres -- pg_dumpall -h $T/pg1 -U postgres
filename = pgdump.sql
max-age = 1d
drill = $T/drill.sh
drill-user = postgres
CONF
export CAIRN_CONFIG=$T/cairn.conf
expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup the pg_dumpall output (job pgdb)" -- "$CAIRN" backup pgdb
snap=$(latest_name pgdb)
test -n "$snap"; tap_ok $? "the snapshot to drill on: $snap"

no_mounts_left() { # DESC
        ! grep -q " $TMPDIR/" /proc/self/mountinfo && test -z "$(ls -A "$TMPDIR")"
        tap_ok $? "$1: the drill's mount is gone and its directory removed ($(ls -A "$TMPDIR" | tr '\n' ' '))"
}

# ---- bwrap: pass ----
expect 0 "verify pgdb --exec drill.sh --runtime bwrap" -- "$CAIRN" verify pgdb --exec "$T/drill.sh" --runtime bwrap -v
contains "restored: $src" "$out" "-v shows the drill's output: the restored rows match the source"
contains "pgdb: drill passed on snapshot $snap" "$out" "and the result"
contains "secret: none" "$out" "cairn's environment (\$CAIRN_TEST_SECRET) does not reach the drill"
test "$(posts)" = 0; tap_ok $? "no webhook POST for a passed drill (got $(posts))"
no_mounts_left "bwrap"
expect 0 "status: fresh, drill passed" -- "$CAIRN" status --json
echo "$out" | SNAP=$snap python3 -c '
import json, os, sys
d = json.load(sys.stdin)
j = d["jobs"][0]
dr = j["drill"]
assert d["status"] == "ok" and j["job"] == "pgdb" and dr["configured"], d
assert dr["last"]["result"] == "ok" and dr["last"]["snapshot"] == os.environ["SNAP"], dr
assert dr["last_success"] is not None and dr["last_failure"] is None, dr'
tap_ok $? "--json: drill result ok, on snapshot $snap, with its time"
expect 0 "status (text)" -- "$CAIRN" status
contains "; drill passed " "$out" "the text says the drill passed"
metric_is() { # SAMPLE OP VALUE DESC
        local v
        v=$(awk -v s="$1" '$1 == s { print $2 }' "$T/cairn.prom")
        if [ "$2" = "=" ]; then [ "$v" = "$3" ]; else [ -n "$v" ] && [ "$v" "$2" "$3" ]; fi
        tap_ok $? "$4 ($1 = ${v:-missing}, want $2 $3)"
}
metric_is 'cairn_drill_last_status{job="pgdb"}' = 0 "metrics: the drill passed"
metric_is 'cairn_drill_last_success_timestamp_seconds{job="pgdb"}' -gt 0 "metrics: with its time"

# ---- bwrap: fail ----
expect 1 "a failing drill script: verify exits 1" -- "$CAIRN" verify pgdb --exec "$T/drill-fail.sh" --runtime bwrap
contains "error: job \"pgdb\": restore drill $T/drill-fail.sh failed (bwrap, snapshot $snap): exit status 3: database billing is not in the dump" \
        "$err" "the error names job, script, runtime, snapshot, exit status and the last line"
contains "  | looking for database billing in /tmp/backup/pgdump.sql" "$err" "the drill's last output lines follow (\$BACKUP is /tmp/backup in bwrap)"
no_mounts_left "failed drill"
test "$(posts)" = 1; tap_ok $? "one webhook POST for the failed drill (got $(posts))"
tail -n 1 "$HOOK" | python3 -c '
import json, sys
b = json.load(sys.stdin)
assert b["event"] == "drill" and b["status"] == "failed" and b["job"] == "pgdb", b
assert b["message"] == "exit status 3: database billing is not in the dump", b
assert b["host"] and b["timestamp"], b'
tap_ok $? "the POST: job pgdb, event drill, status failed, the message"
expect 1 "status exits 1 after a failed drill" -- "$CAIRN" status --json
echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
j = d["jobs"][0]
assert d["status"] == "drill-failed" and j["status"] == "drill-failed" and j["fresh"], d
assert j["drill"]["last"]["result"] == "failed" and "exit status 3" in j["drill"]["last"]["message"], j
assert j["drill"]["last_success"] is not None and j["drill"]["last_failure"] is not None, j'
tap_ok $? "--json: drill-failed (the job itself fresh), the last pass still known"
metric_is 'cairn_drill_last_status{job="pgdb"}' = 2 "metrics: the drill failed"

# ---- the config's drill: cairn verify JOB, cairn run --drills ----
expect 0 "verify pgdb (the config's drill, drill-user postgres, bwrap)" -- "$CAIRN" verify pgdb
expect 0 "status is healthy again" -- "$CAIRN" status
expect 0 "cairn run --drills: the backup and then the drill" -- "$CAIRN" run --drills --json
run_json=$out
snap2=$(latest_name pgdb)
test "$snap2" != "$snap"; tap_ok $? "run made a new snapshot ($snap2)"
echo "$run_json" | SNAP=$snap2 python3 -c '
import json, os, sys
j = [x for x in json.load(sys.stdin) if x["job"] == "pgdb"][0]
assert j["drill"]["result"] == "passed" and j["drill"]["snapshot"] == os.environ["SNAP"], j' 2>&1 | sed 's/^/#   /'
tap_ok ${PIPESTATUS[1]} "run --drills --json: the job's entry has its drill's result, on the snapshot just made"
expect 0 "status --json" -- "$CAIRN" status --json
echo "$out" | SNAP=$snap2 python3 -c '
import json, os, sys
j = json.load(sys.stdin)["jobs"][0]
assert j["snapshots"] == 2 and j["drill"]["last"]["snapshot"] == os.environ["SNAP"], j'
tap_ok $? "the drill of run --drills ran on the new snapshot"
no_mounts_left "run --drills"
test "$(posts)" = 1; tap_ok $? "no more POSTs (got $(posts))"
# What cairn-drill.timer runs: every configured drill, no backup.
before=$("$CAIRN" snapshots --json pgdb | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect 0 "cairn verify --all: the drill of every job that has one" -- "$CAIRN" verify --all -v
contains "restored: $src" "$out" "the drill ran and restored the rows"
after=$("$CAIRN" snapshots --json pgdb | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
test "$after" = "$before"; tap_ok $? "and made no backup ($before snapshots before, $after after)"
no_mounts_left "verify --all"
expect 2 "verify --all with a job is a usage error" -- "$CAIRN" verify --all pgdb

# ---- the packaged example drill ----
cp "$(dirname "$0")/../../packaging/drills/pgdb.sh" "$T/example.sh" && chmod 644 "$T/example.sh"
expect 0 "packaging/drills/pgdb.sh passes on the dump (bwrap)" -- "$CAIRN" verify pgdb --exec "$T/example.sh" -v
contains "database shop: 1 tables" "$out" "it finds the restored database and its table"
contains "restored 1 database(s) from /tmp/backup/pgdump.sql" "$out" "and says so"

# ---- podman, for real ----
expect 0 "verify pgdb --runtime podman (runc, --rootfs /:O)" -- "$CAIRN" verify pgdb --runtime podman -v
contains "restored: $src" "$out" "the restored rows match the source inside the container"
contains "secret: none" "$out" "cairn's environment does not reach the container"
no_mounts_left "podman"
expect 1 "podman: the failing drill fails" -- "$CAIRN" verify pgdb --runtime podman --exec "$T/drill-fail.sh"
contains "failed (podman, snapshot $snap2): exit status 3: database billing is not in the dump" "$err" "with podman's exit status passed on"
contains "  | looking for database billing in /backup/pgdump.sql" "$err" "(\$BACKUP is /backup in a container)"
test "$(posts)" = 2; tap_ok $? "and its webhook POST (got $(posts))"
no_mounts_left "podman fail"

# ---- an existing mount: --mount DIR ----
M=$T/restore
log=$T/cairnfs.log
mount_start "$log" "$M" -o password_file="$T/pw",allow_other "$T/repo" "$M"; tap_ok $? "mount with allow_other"
pid=$mnt_pid
expect 0 "verify pgdb --mount DIR" -- "$CAIRN" verify pgdb --mount "$M" --json
echo "$out" | SNAP=$snap2 python3 -c '
import json, os, sys
d = json.load(sys.stdin)
assert d["job"] == "pgdb" and d["result"] == "passed" and d["runtime"] == "bwrap" and d["snapshot"] == os.environ["SNAP"], d'
tap_ok $? "--json: passed, bwrap, on the latest snapshot"
mountpoint -q "$M"; tap_ok $? "the operator's mount is left mounted"
mount_stop_term "$M" "$pid" "drill mount"
log_clean "$log" "drill mount"

# ---- nothing to drill on ----
expect 1 "verify a job without a complete snapshot" -- "$CAIRN" -v -v verify ghost --exec "$T/drill.sh"
contains 'job "ghost": no complete snapshot to drill on' "$err" "says so"
contains "at $TMPDIR/cairn-verify." "$err" "(the drills mount below \$TMPDIR, where this test looks for leftovers)"
no_mounts_left "no snapshot"
expect 1 "a missing drill script" -- "$CAIRN" verify pgdb --exec "$T/nonexistent.sh"
contains "cannot read the drill script $T/nonexistent.sh" "$err" "names the script"
# ---- a drill that hangs is stopped ----
printf 'echo "restoring forever"\nsleep 600\n' > "$T/drill-hang.sh"
t0=$(date +%s)
expect 1 "a hanging drill with --timeout 2s fails" -- "$CAIRN" verify pgdb --exec "$T/drill-hang.sh" --timeout 2s
took=$(( $(date +%s) - t0 ))
test "$took" -lt 30; tap_ok $? "and is stopped, not waited for (${took} s)"
contains "timed out after 2 s (stopped): restoring forever" "$err" "the message says it timed out, with its last line"
! pgrep -f "$T/drill-hang.sh" >/dev/null && ! pgrep -x -f "sleep 600" >/dev/null; tap_ok $? "nothing of the drill is left running"
no_mounts_left "timeout"
got=$("$CAIRN" status --json | python3 -c 'import json, sys; j = [x for x in json.load(sys.stdin)["jobs"] if x["job"] == "pgdb"][0]; print(j["drill"]["last"]["result"], j["drill"]["last"]["message"])' 2>&1)
contains "failed timed out after 2 s" "$got" "cairn status records the timed-out drill"
expect 2 "--timeout 0 is a usage error" -- "$CAIRN" verify pgdb --exec "$T/drill-hang.sh" --timeout 0
sed 's|^drill-user = postgres$|drill-user = postgres\ndrill-timeout = 1|' "$T/cairn.conf" > "$T/timeout.conf"
grep -q '^drill-timeout = 1$' "$T/timeout.conf"; tap_ok $? "a config with drill-timeout = 1"
cp "$T/drill-hang.sh" "$T/drill.sh.hang" && cp "$T/drill.sh" "$T/drill.sh.keep" && cp "$T/drill-hang.sh" "$T/drill.sh"
expect 1 "the config's drill-timeout stops the config's drill" -- env CAIRN_CONFIG="$T/timeout.conf" "$CAIRN" verify pgdb
contains "timed out after 1 s" "$err" "after its drill-timeout"
cp "$T/drill.sh.keep" "$T/drill.sh"
sed 's|^drill-user = postgres$|drill-user = postgres\ndrill-timeout = soon|' "$T/cairn.conf" > "$T/badtimeout.conf"
expect 1 "a bad drill-timeout is a config error" -- env CAIRN_CONFIG="$T/badtimeout.conf" "$CAIRN" verify pgdb --print
contains 'key "drill-timeout": "soon" is not a duration' "$err" "naming the key"
no_mounts_left "config timeout"
expect 0 "the drill passes again" -- "$CAIRN" verify pgdb

printf 'not the passphrase\n' > "$T/badpw"
expect 1 "a wrong passphrase: verify exits 1" -- "$CAIRN" --password-file "$T/badpw" verify pgdb --exec "$T/drill.sh"
test "$(grep -c 'Wrong passphrase' <<<"$err")" = 1; tap_ok $? "the wrong passphrase is reported once"
contains "cairn: cairnfs said:" "$err" "as what cairnfs said (not as the drill's output)"
no_mounts_left "wrong passphrase"

# ---- the command lines (--print) ----
expect 0 "--runtime docker --print" -- "$CAIRN" verify pgdb --runtime docker --image postgres:15 --mount /restore --print
want="docker run --rm --user postgres -e BACKUP=/backup -v /restore/pgdb/latest:/backup:ro -v $T/drill.sh:/drill.sh:ro postgres:15 /bin/sh /drill.sh"
test "$out" = "$want"; tap_ok $? "the docker command line, exactly"
[ "$out" = "$want" ] || { echo "#   got:  $out"; echo "#   want: $want"; }
expect 0 "--runtime docker --print --user 999 --exec other.sh, no --mount" -- \
        "$CAIRN" verify pgdb --runtime docker --image 'registry.example.com/pg:15' --user 999 --exec "$T/drill-fail.sh" --dry-run
want="docker run --rm --user 999 -e BACKUP=/backup -v MOUNTPOINT/pgdb/latest:/backup:ro -v $T/drill-fail.sh:/drill.sh:ro registry.example.com/pg:15 /bin/sh /drill.sh"
test "$out" = "$want"; tap_ok $? "the docker command line with --user, --exec and the MOUNTPOINT placeholder"
[ "$out" = "$want" ] || { echo "#   got:  $out"; echo "#   want: $want"; }
expect 0 "--runtime podman --print" -- "$CAIRN" verify pgdb --runtime podman --mount /restore --print
want="podman --runtime runc --cgroup-manager cgroupfs run --rm --ulimit nofile=16384:16384 --ulimit nproc=16384:16384 --user postgres -e BACKUP=/backup -v /restore/pgdb/latest:/backup:ro -v $T/drill.sh:/drill.sh:ro --rootfs /:O /bin/sh /drill.sh"
test "$out" = "$want"; tap_ok $? "the podman command line (no image: --rootfs /:O), exactly"
[ "$out" = "$want" ] || { echo "#   got:  $out"; echo "#   want: $want"; }
expect 0 "--runtime bwrap --print" -- "$CAIRN" verify pgdb --mount '/mnt/my restore' --print
want="bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /dev/shm --ro-bind '/mnt/my restore/pgdb/latest' /tmp/backup --ro-bind $T/drill.sh /tmp/drill.sh --clearenv --setenv PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --setenv HOME /tmp --setenv BACKUP /tmp/backup --unshare-all --uid $(id -u postgres) --gid $(id -g postgres) --die-with-parent /bin/sh /tmp/drill.sh"
test "$out" = "$want"; tap_ok $? "the bwrap command line (quoted for the shell), exactly"
[ "$out" = "$want" ] || { echo "#   got:  $out"; echo "#   want: $want"; }
expect 2 "docker without an image is a usage error" -- "$CAIRN" verify pgdb --runtime docker --print
contains "docker needs an image" "$err" "saying what is missing"
expect 2 "an unknown runtime" -- "$CAIRN" verify pgdb --runtime lxc --print
expect 0 "verify --help" -- "$CAIRN" verify --help
contains '/tmp/backup (bwrap cannot create /backup' "$out" "documents where the snapshot appears"

tap_finish
