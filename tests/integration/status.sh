#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# cairn status, the Prometheus textfile and the webhook alerts, as an
# operator's cron meets them: fresh and stale by max-age, a failing
# command job, the metrics checked line by line and replaced atomically,
# "cairn run" and "cairn check" refreshing them; a real HTTP server on
# 127.0.0.1 receiving the alerts (and nothing on success), a webhook that
# is refused, answers 500 or never answers, and the daily summary.
set -u
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true

pids=()
cleanup() {
        local p
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
        rm -rf "$tap_tmp"
}
trap cleanup EXIT

REPO=$T/repo
MET=$T/metrics
mkdir -p "$T/src/etc" "$MET"
printf 'listen 80;\n' > "$T/src/etc/app.conf"
head -c 300000 /dev/urandom > "$T/src/etc/blob"
printf 'pw\n' > "$T/pw"

# write_conf [WEBHOOK-URL]: two jobs: "files" (a path, max-age 3s) and
# "flaky" (a command without max-age that fails while $T/fail exists).
write_conf() {
        {
                printf '[repository]\npath = %s\npassword-file = %s\n\n' "$REPO" "$T/pw"
                printf '[status]\ntextfile = %s\n' "$MET/cairn.prom"
                [ -n "${1:-}" ] && printf 'webhook = %s\n' "$1"
                printf '\n[job files]\npath = %s\nmax-age = 3s\n' "$T/src"
                printf '\n[job flaky]\ncommand = test ! -e %s && printf dump-data\nfilename = dump.sql\n' "$T/fail"
        } > "$T/cairn.conf"
}
write_conf
export CAIRN_CONFIG=$T/cairn.conf

# jq-less JSON checks: json_check 'PYTHON-ASSERTIONS' DESCRIPTION, with d = json.loads($out)
json_check() {
        printf '%s' "$out" | python3 -c '
import json, sys, time
d = json.load(sys.stdin)
jobs = {j["job"]: j for j in d.get("jobs", [])} if isinstance(d, dict) else {}
'"$1" 2>"$T/json.err"
        local st=$?
        tap_ok $st "$2"
        [ $st -eq 0 ] || { sed 's/^/#   /' "$T/json.err"; echo "#   json: $out"; }
}

# metric FILE NAME{LABELS}: the value of exactly one sample line.
metric() {
        awk -v s="$2" '$1 == s { v = $2; n++ } END { if (n == 1) print v; else print "MISSING(" n + 0 ")" }' "$1"
}
# metric_is FILE SAMPLE OP VALUE DESCRIPTION (OP: = or -gt/-ge/-le/... on integers)
metric_is() {
        local v
        v=$(metric "$1" "$2")
        if [ "$3" = "=" ]; then [ "$v" = "$4" ]; else [ "$v" -eq "$v" ] 2>/dev/null && [ "$v" "$3" "$4" ]; fi
        tap_ok $? "$5 ($2 = $v, want $3 $4)"
}

# ---- before any backup ----
expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 4 "status before any backup: every job is stale (never succeeded)" -- "$CAIRN" status
contains "files: stale; never succeeded (max-age 3s)" "$out" "the text says files never succeeded, with its max-age"
contains "flaky: stale; never succeeded (no max-age)" "$out" "and flaky too"
expect 4 "status --json" -- "$CAIRN" status --json
json_check '
assert d["status"] == "stale" and d["ok"] is False and d["exit_status"] == 4, d
assert set(jobs) == {"files", "flaky"}, jobs
for j in jobs.values():
    assert j["stale"] is True and j["fresh"] is False and j["last_success"] is None and j["last"] is None, j
    assert j["snapshots"] == 0 and j["status"] == "stale", j
assert jobs["files"]["max_age_s"] == 3 and jobs["flaky"]["max_age_s"] is None, jobs
assert d["check"]["last"] is None' "--json: both jobs stale, never succeeded, no snapshots, max-age 3 s and none"

# ---- a good run ----
t0=$(date +%s)
expect 0 "cairn run" -- "$CAIRN" run
test -z "$out$err"; tap_ok $? "is silent on success (stdout '$out', stderr '$err')"
t1=$(date +%s)
P=$MET/cairn.prom
test -f "$P"; tap_ok $? "cairn run wrote the configured textfile"
test "$(ls -A "$MET")" = "cairn.prom"; tap_ok $? "and nothing else in its directory (no temporary file left: $(ls -A "$MET" | tr '\n' ' '))"
stat -c %a "$P" | grep -qx 644; tap_ok $? "mode 0644, readable by node_exporter ($(stat -c %a "$P"))"
for m in cairn_job_configured cairn_job_last_success_timestamp_seconds cairn_job_last_failure_timestamp_seconds \
         cairn_job_last_status cairn_job_duration_seconds cairn_job_added_bytes cairn_job_size_bytes \
         cairn_job_snapshots cairn_job_max_age_seconds cairn_job_stale cairn_drill_last_success_timestamp_seconds \
         cairn_drill_last_status cairn_check_last_success_timestamp_seconds cairn_check_last_status; do
        grep -qx "# HELP $m .*" "$P" && grep -qx "# TYPE $m gauge" "$P"
        tap_ok $? "$m has its HELP and TYPE lines"
done
# Every line is a comment or "name{job=\"…\"} number" / "name number".
bad=$(grep -vE '^# (HELP|TYPE) cairn_[a-z_]+ .+$|^cairn_[a-z_]+(\{job="[a-z]+"\})? -?[0-9]+(\.[0-9]+)?$' "$P")
test -z "$bad"; tap_ok $? "every line of the textfile is well-formed (bad: ${bad:-none})"
test "$(grep -c '^cairn_' "$P")" = 22; tap_ok $? "10 per-job families x 2 jobs + 0 drills + 2 check samples = 22 samples (got $(grep -c '^cairn_' "$P"))"
metric_is "$P" 'cairn_job_configured{job="files"}' = 1 "configured"
metric_is "$P" 'cairn_job_configured{job="flaky"}' = 1 "configured"
metric_is "$P" 'cairn_job_last_status{job="files"}' = 0 "last status ok"
metric_is "$P" 'cairn_job_last_status{job="flaky"}' = 0 "last status ok"
metric_is "$P" 'cairn_job_snapshots{job="files"}' = 1 "one snapshot"
metric_is "$P" 'cairn_job_snapshots{job="flaky"}' = 1 "one snapshot"
metric_is "$P" 'cairn_job_stale{job="files"}' = 0 "fresh"
metric_is "$P" 'cairn_job_stale{job="flaky"}' = 0 "fresh"
metric_is "$P" 'cairn_job_max_age_seconds{job="files"}' = 3 "max-age"
metric_is "$P" 'cairn_job_max_age_seconds{job="flaky"}' = 0 "no max-age"
metric_is "$P" 'cairn_job_last_success_timestamp_seconds{job="files"}' -ge "$t0" "last success at the run"
metric_is "$P" 'cairn_job_last_success_timestamp_seconds{job="files"}' -le "$t1" "last success at the run"
metric_is "$P" 'cairn_job_last_failure_timestamp_seconds{job="files"}' = 0 "no failure"
metric_is "$P" 'cairn_job_added_bytes{job="files"}' -ge 300000 "added bytes: the random file at least"
metric_is "$P" 'cairn_job_size_bytes{job="files"}' = 300011 "size: the two files"
metric_is "$P" 'cairn_job_size_bytes{job="flaky"}' = 9 "size: the dump"
metric_is "$P" 'cairn_check_last_status' = 3 "check never ran"
metric_is "$P" 'cairn_check_last_success_timestamp_seconds' = 0 "check never succeeded"
d=$(metric "$P" 'cairn_job_duration_seconds{job="files"}')
python3 -c "import sys; v=float('$d'); sys.exit(not (0 <= v < 60))" 2>/dev/null; tap_ok $? "duration in seconds ($d)"
python3 - "$REPO/state/jobs/files.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["version"] == 1 and s["job"] == "files", s
b = s["backup"]
assert b["last"]["result"] == "ok" and b["success"]["end_ns"] == b["last"]["end_ns"] and "failure" not in b, b
assert len(b["last"]["snapshot"]) == 64 and b["last"]["added_bytes"] >= 300000, b
PY
tap_ok $? "REPO/state/jobs/files.json records the run (result, snapshot id, added bytes)"
stat -c %a "$REPO/state/jobs/files.json" | grep -qx 600; tap_ok $? "the state file is mode 0600"

expect 0 "status after the run: every job fresh and healthy" -- "$CAIRN" status
contains "files: ok; last success " "$out" "files ok in the text"
contains "max-age 3s); 1 snapshot; last backup ok" "$out" "with its age, max-age, snapshot count and last result"
expect 0 "status --json" -- "$CAIRN" status --json
json_check '
assert d["status"] == "ok" and d["ok"] is True and d["exit_status"] == 0, d
f = jobs["files"]
assert f["fresh"] and not f["stale"] and f["snapshots"] == 1 and f["last"]["result"] == "ok", f
assert f["last"]["added_bytes"] >= 300000 and f["last"]["bytes"] == 300011 and f["last"]["duration_s"] >= 0, f
assert f["age_s"] is not None and 0 <= f["age_s"] <= 3 and f["last_failure"] is None, f
assert jobs["flaky"]["fresh"] and jobs["flaky"]["status"] == "ok", jobs' "--json: fresh, 1 snapshot, size, added bytes, duration, age"
expect 0 "status -q" -- "$CAIRN" status -q
test -z "$out"; tap_ok $? "prints nothing"
ino_run=$(stat -c %i "$P")

# ---- stale by max-age ----
sleep 4
expect 4 "4 s later files is stale (max-age 3s): status exits 4" -- "$CAIRN" status
contains "files: stale; last success " "$out" "the text says stale"
contains "flaky: ok" "$out" "a job without max-age stays fresh once it succeeded"
# That status rewrote the configured textfile (as cairn run does).
metric_is "$P" 'cairn_job_stale{job="files"}' = 1 "status refreshed the configured textfile: files is stale"
test "$(stat -c %i "$P")" != "$ino_run"; tap_ok $? "replaced by a rename (new inode), never rewritten in place"
test "$(ls -A "$MET")" = "cairn.prom"; tap_ok $? "no temporary file left"
expect 4 "status --json" -- "$CAIRN" status --json
json_check '
assert d["status"] == "stale" and jobs["files"]["stale"] and jobs["files"]["age_s"] >= 4, d
assert jobs["flaky"]["fresh"] and not jobs["flaky"]["stale"], jobs' "--json: files stale (age >= 4 s), flaky fresh"
sum=$(md5sum < "$P"); ino=$(stat -c %i "$P")
expect 4 "status --textfile FILE" -- "$CAIRN" status --textfile "$T/other.prom"
metric_is "$T/other.prom" 'cairn_job_stale{job="files"}' = 1 "--textfile FILE: files is stale"
metric_is "$T/other.prom" 'cairn_job_stale{job="flaky"}' = 0 "--textfile FILE: flaky is not"
test "$(ls -A "$T" | grep -c prom)" = 1; tap_ok $? "no temporary file beside it"
test "$(md5sum < "$P")" = "$sum" && test "$(stat -c %i "$P")" = "$ino"; tap_ok $? "--textfile FILE leaves the configured file alone"
expect 1 "status --textfile into a missing directory fails" -- "$CAIRN" status --textfile "$T/nodir/x.prom"
contains "Cannot write the metrics to $T/nodir/x.prom: No such file or directory" "$err" "naming the file and the error"

expect 0 "cairn run" -- "$CAIRN" run
metric_is "$P" 'cairn_job_snapshots{job="files"}' = 2 "cairn run refreshed the textfile: 2 snapshots"
metric_is "$P" 'cairn_job_stale{job="files"}' = 0 "and files is fresh again"
expect 0 "status" -- "$CAIRN" status

# ---- a failing job ----
touch "$T/fail"
expect 1 "cairn run with a failing command job exits 1" -- "$CAIRN" run
contains 'job "flaky": command "test ! -e' "$err" "naming the job and command"
expect 1 "status exits 1: a job failed" -- "$CAIRN" status
contains "flaky: failed; last success" "$out" "the text says flaky failed"
contains "last failure " "$out" "with the failure's time"
contains "exited with status 1" "$out" "and what failed"
expect 1 "status --json" -- "$CAIRN" status --json
json_check '
f = jobs["flaky"]
assert d["status"] == "failed" and d["exit_status"] == 1 and f["status"] == "failed", d
assert f["last"]["result"] == "failed" and "exited with status 1" in f["last"]["message"], f
assert f["last_failure"] is not None and "exited with status 1" in f["last_failure_message"], f
assert f["last_success"] is not None and f["fresh"] and f["snapshots"] == 2, f
assert jobs["files"]["status"] == "ok", jobs' "--json: flaky failed (message, failure time), still 2 snapshots, files ok"
metric_is "$P" 'cairn_job_last_status{job="flaky"}' = 2 "the failure is in the textfile"
metric_is "$P" 'cairn_job_last_failure_timestamp_seconds{job="flaky"}' -gt 0 "with its time"
metric_is "$P" 'cairn_job_snapshots{job="files"}' = 3 "and the good job's third snapshot"
rm -f "$T/fail"

# ---- config errors name file, line and key ----
cp "$T/cairn.conf" "$T/good.conf"
bad_conf() { # DESCRIPTION LINE-TO-ADD EXPECTED-TEXT
        { cat "$T/good.conf"; printf '%s\n' "$2"; } > "$T/bad.conf"
        expect 1 "config: $1" -- "$CAIRN" -c "$T/bad.conf" status
        contains "$3" "$err" "$1: the error names file, line and key"
}
n=$(( $(wc -l < "$T/good.conf") + 1 ))
bad_conf "drill-image without drill" "drill-image = postgres:15" "$T/bad.conf:$n: key \"drill-image\": only goes with \"drill = SCRIPT\""
bad_conf "a bad drill-runtime" "drill-runtime = lxc" "$T/bad.conf:$n: key \"drill-runtime\": \"lxc\" is not bwrap, docker or podman"
bad_conf "a relative drill" "drill = drills/x.sh" "$T/bad.conf:$n: key \"drill\": \"drills/x.sh\" must be an absolute path"
{ printf '[status]\nwebhook = ftp://example.com/x\ntextfile = /var/lib/node_exporter/cairn.txt\n'; cat "$T/good.conf"; } > "$T/bad.conf"
expect 1 "config: bad webhook and textfile" -- "$CAIRN" -c "$T/bad.conf" status
contains "$T/bad.conf:2: key \"webhook\": \"ftp://example.com/x\" is not an http:// or https:// URL" "$err" "webhook: file:line: key"
contains "$T/bad.conf:3: key \"textfile\": \"/var/lib/node_exporter/cairn.txt\" must end in \".prom\"" "$err" "textfile: file:line: key"
contains "$T/bad.conf:8: second [status] section (the first is on line 1)" "$err" "a second [status] section"

# ---- alerts ----
cat > "$T/hook.py" <<'PY'
import http.server, json, os, sys
log, portfile = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        # Logged before the answer: when curl returns, the line is there.
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "type": self.headers.get("Content-Type"),
                                "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(500 if self.path == "/fail" else 200)
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
python3 "$T/hook.py" "$HOOK" "$T/port" & pids+=($!)
for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port" 2>/dev/null)
test -n "$PORT"; tap_ok $? "the test's webhook server listens on 127.0.0.1:$PORT"
posts() { wc -l < "$HOOK"; }
# post_check N 'PYTHON' DESCRIPTION: assertions on b, the body of the N-th POST (1-based).
post_check() {
        python3 - "$HOOK" "$1" "$(hostname)" <<PY 2>"$T/post.err"
import json, sys, time, re
lines = open(sys.argv[1]).read().splitlines()
r = json.loads(lines[int(sys.argv[2]) - 1])
assert r["type"] == "application/json" and r["path"] == "/hook", r
b = json.loads(r["body"])
host = sys.argv[3]
assert b["host"] == host, b
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b["timestamp"]), b
assert abs(b["timestamp_unix"] - time.time()) < 120, b
assert b["text"].startswith("cairn on " + host + ": "), b
$2
PY
        local st=$?
        tap_ok $st "$3"
        [ $st -eq 0 ] || { sed 's/^/#   /' "$T/post.err"; sed -n "$1p" "$HOOK" | sed 's/^/#   /'; }
}

write_conf "http://127.0.0.1:$PORT/hook"
expect 0 "run with a webhook, everything succeeds" -- "$CAIRN" run
expect 0 "status" -- "$CAIRN" status
test "$(posts)" = 0; tap_ok $? "no POST on success (got $(posts))"

touch "$T/fail"
expect 1 "backup of the failing job" -- "$CAIRN" backup flaky
test "$(posts)" = 1; tap_ok $? "exactly one POST for the failure (got $(posts))"
post_check 1 '
assert b["job"] == "flaky" and b["event"] == "backup" and b["status"] == "failed", b
assert "exited with status 1" in b["message"] and b["message"] in b["text"], b' \
        "the POST: host, job, event backup, status failed, the command's message, timestamp"
expect 0 "backup of the good job" -- "$CAIRN" backup files
test "$(posts)" = 1; tap_ok $? "no POST for the success (still $(posts))"

# files goes stale: one alert for the stretch, then silence.
sleep 4
expect 1 "status: flaky failed and files is stale" -- "$CAIRN" status
test "$(posts)" = 2; tap_ok $? "one POST for the stale job (got $(posts))"
post_check 2 '
assert b["job"] == "files" and b["event"] == "stale" and b["status"] == "stale", b
assert b["message"].startswith("no successful backup since ") and b["message"].endswith("max-age 3s)"), b' "the stale POST names the job and its last success"
expect 1 "status again" -- "$CAIRN" status
test "$(posts)" = 2; tap_ok $? "no second stale alert for the same stretch (got $(posts))"

expect 1 "status --notify" -- "$CAIRN" status --notify
test "$(posts)" = 3; tap_ok $? "--notify sends exactly one summary (got $(posts))"
post_check 3 '
assert b["event"] == "summary" and b["job"] is None and b["status"] == "failed", b
assert b["message"].startswith("2 jobs: 1 stale (files), 1 failed (flaky)"), b
assert [j["job"] for j in b["jobs"]] == ["files", "flaky"], b
assert "flaky: failed" in b["details"] and "files: stale" in b["details"], b' \
        "the summary: overall status, per-status counts with job names, the jobs, the full text"

# A job that fails is alerted as a failure by cairn run, not also as stale.
rm -f "$T/fail"
expect 0 "run: both jobs succeed again" -- "$CAIRN" run
test "$(posts)" = 3; tap_ok $? "no POST (got $(posts))"
expect 0 "status" -- "$CAIRN" status

# ---- webhooks that do not work change nothing ----
CLOSED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
write_conf "http://127.0.0.1:$CLOSED/hook"
touch "$T/fail"
t0=$(date +%s)
expect 1 "unreachable webhook: the failing backup still exits 1" -- "$CAIRN" backup flaky
contains "warning: webhook http://127.0.0.1:$CLOSED/...: " "$err" "a warning names the URL's host, not its path (webhook paths carry tokens)"
case "$err" in *"/hook"*) tap_ok 1 "the path is not shown";; *) tap_ok 0 "the path is not shown";; esac
contains "Couldn't connect to server" "$err" "and curl's error"
contains 'exited with status 1' "$err" "the job's own error is still there"
test $(( $(date +%s) - t0 )) -lt 10; tap_ok $? "and it did not wait long"
rm -f "$T/fail"
expect 0 "unreachable webhook: a successful backup exits 0" -- "$CAIRN" backup flaky
test -z "$err"; tap_ok $? "without a word (no alert on success: '$err')"

write_conf "http://127.0.0.1:$PORT/fail"
touch "$T/fail"
expect 1 "a webhook answering HTTP 500: the backup still exits 1" -- "$CAIRN" backup flaky
contains "warning: webhook http://127.0.0.1:$PORT/...: answered HTTP 500" "$err" "a warning with the HTTP status"
test "$(posts)" = 4; tap_ok $? "(the server did receive it: $(posts) POSTs)"

# Credentials in the URL are never shown either.
write_conf "http://alerter:s3cret@127.0.0.1:$CLOSED/T0/B0/tok3n?x=1"
touch "$T/fail"
expect 1 "a webhook URL with credentials, unreachable" -- "$CAIRN" backup flaky
contains "warning: webhook http://***@127.0.0.1:$CLOSED/...: " "$err" "the warning hides user:password and path"
case "$err" in *s3cret*|*tok3n*|*alerter*) tap_ok 1 "no secret in the warning";; *) tap_ok 0 "no secret in the warning";; esac

# A server that accepts the connection and never answers: curl's timeout.
cat > "$T/mute.py" <<'PY'
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
PY
python3 "$T/mute.py" "$T/mute.port" & pids+=($!)
for i in $(seq 100); do [ -s "$T/mute.port" ] && break; sleep 0.1; done
write_conf "http://127.0.0.1:$(cat "$T/mute.port")/hook"
t0=$(date +%s)
expect 1 "a webhook that never answers: the backup still exits 1" -- "$CAIRN" backup flaky
dt=$(( $(date +%s) - t0 ))
contains "Operation timed out" "$err" "curl's timeout is the warning"
test "$dt" -ge 9 && test "$dt" -le 20; tap_ok $? "after about 10 s ($dt s)"
rm -f "$T/fail"

# ---- check results ----
write_conf "http://127.0.0.1:$PORT/hook"
expect 0 "backup flaky" -- "$CAIRN" backup flaky
n0=$(posts)
t0=$(date +%s)
expect 0 "cairn check" -- "$CAIRN" check
metric_is "$P" 'cairn_check_last_status' = 0 "check refreshed the textfile: last check ok"
metric_is "$P" 'cairn_check_last_success_timestamp_seconds' -ge "$t0" "with its time"
test "$(posts)" = "$n0"; tap_ok $? "no POST for a clean check"
pack=$(ls "$REPO"/packs/*/* | head -n 1)
mv "$pack" "$T/pack.moved"
expect 1 "cairn check with a pack gone" -- "$CAIRN" check
test "$(posts)" = $((n0 + 1)); tap_ok $? "one POST for the failed check"
post_check $((n0 + 1)) '
assert b["event"] == "check" and b["status"] == "failed" and b["job"] is None, b
assert "error" in b["message"] and "check:" in b["message"], b' "the check POST says what check found"
metric_is "$P" 'cairn_check_last_status' = 2 "the textfile says the check failed"
expect 1 "status exits 1 after a failed check" -- "$CAIRN" status --json
json_check 'assert d["status"] == "failed" and d["check"]["last"]["result"] == "failed" and d["check"]["last_success"], d' \
        "--json: the check failed (and when it last passed)"
mv "$T/pack.moved" "$pack"

# ---- a partial snapshot (an unreadable file, as an unprivileged user) ----
U=$T/user
mkdir -p "$U/data" "$U/metrics"
printf 'public\n' > "$U/data/public.txt"
printf 'secret\n' > "$U/data/secret.txt"
cat > "$U/cairn.conf" <<CONF
[repository]
path = $U/repo

[status]
textfile = $U/metrics/cairn.prom
webhook = http://127.0.0.1:$PORT/hook

[job userdata]
path = $U/data
CONF
chown -R 65534:65534 "$U"
chmod 711 "$T"
cp "$CAIRN" "$T/cairn-copy" && chmod 755 "$T/cairn-copy"   # the checkout may be unreadable to nobody
nobody() { env -u CAIRN_CONFIG setpriv --reuid=65534 --regid=65534 --clear-groups "$T/cairn-copy" -c "$U/cairn.conf" "$@"; }
expect 0 "an unprivileged user's repository" -- nobody init --no-encryption
expect 0 "a complete backup first" -- nobody backup userdata
chown root:root "$U/data/secret.txt"
chmod 600 "$U/data/secret.txt"
n0=$(posts)
expect 3 "then a backup with an unreadable file: partial (exit 3)" -- nobody backup userdata
test "$(posts)" = $((n0 + 1)); tap_ok $? "one POST for the partial snapshot"
post_check $((n0 + 1)) '
assert b["job"] == "userdata" and b["event"] == "backup" and b["status"] == "partial", b
assert b["message"].startswith("1 warning, first ") and b["message"].endswith("secret.txt: cannot open: Permission denied"), b' \
        "the POST: status partial, the warning's path and reason"
expect 3 "status exits 3: a partial snapshot is all that is wrong" -- nobody status --json
json_check '
u = jobs["userdata"]
assert d["status"] == "partial" and u["status"] == "partial" and u["fresh"] and u["last"]["result"] == "partial", d
assert "Permission denied" in u["last"]["message"] and u["snapshots"] == 2 and u["last_failure"] is None, u' \
        "--json: partial (the job fresh from its complete snapshot), with the warning, no failure"
metric_is "$U/metrics/cairn.prom" 'cairn_job_last_status{job="userdata"}' = 1 "the textfile says partial"
test "$(posts)" = $((n0 + 1)); tap_ok $? "status sent nothing more (a partial job is not stale)"

# ---- the alert rules of packaging/prometheus/ ----
RULES=$(cd "$(dirname "$0")/../.." && pwd)/packaging/prometheus/cairn.rules.yml
python3 - "$RULES" "$P" <<'PY' 2>"$T/rules.err"
import re, sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))["groups"][0]["rules"]
names = {r["alert"] for r in rules}
assert {"CairnBackupStale", "CairnBackupFailed", "CairnDrillFailed"} <= names, names
have = set(re.findall(r"^# TYPE (cairn_[a-z_]+) ", open(sys.argv[2]).read(), re.M))
for r in rules:
    for m in re.findall(r"cairn_[a-z_]+", r["expr"]):
        assert m in have, "%s uses %s, which cairn does not write" % (r["alert"], m)
PY
st=$?; tap_ok $st "cairn.rules.yml is valid YAML with stale, failed and drill-failed alerts, on metrics cairn writes"
[ $st -eq 0 ] || sed 's/^/#   /' "$T/rules.err"
if command -v promtool >/dev/null; then
        promtool check rules "$RULES" >"$T/promtool.out" 2>&1; st=$?
        tap_ok $st "promtool check rules"
        [ $st -eq 0 ] || sed 's/^/#   /' "$T/promtool.out"
        # Series as Prometheus stores them by default: cairn's "job" label
        # becomes exported_job beside the scrape's own "job".
        cat > "$T/rules-test.yml" <<YML
rule_files:
  - $RULES
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'cairn_job_max_age_seconds{instance="h",job="node",exported_job="pgdb"}'
        values: '1800x80'
      - series: 'cairn_job_last_success_timestamp_seconds{instance="h",job="node",exported_job="pgdb"}'
        values: '600x80'
      - series: 'cairn_job_stale{instance="h",job="node",exported_job="pgdb"}'
        values: '0x80'
      - series: 'cairn_job_last_status{instance="h",job="node",exported_job="web"}'
        values: '0x10 2x70'
      - series: 'cairn_drill_last_status{instance="h",job="node",exported_job="pgdb"}'
        values: '0 0 2x78'
      - series: 'cairn_check_last_status{instance="h",job="node"}'
        values: '0x80'
    alert_rule_test:
      - eval_time: 30m
        alertname: CairnBackupStale
        exp_alerts: []
      - eval_time: 55m
        alertname: CairnBackupStale
        exp_alerts:
          - exp_labels: {severity: critical, instance: h, job: node, exported_job: pgdb}
            exp_annotations:
              summary: "cairn on h: job pgdb has no backup younger than its max-age"
              description: 'The last successful backup ended 45m 0s ago. Run "cairn status" on the host; "cairn backup JOB" to retry.'
      - eval_time: 5m
        alertname: CairnBackupFailed
        exp_alerts: []
      - eval_time: 15m
        alertname: CairnBackupFailed
        exp_alerts:
          - exp_labels: {severity: critical, instance: h, job: node, exported_job: web}
            exp_annotations:
              summary: "cairn on h: the last backup of job web failed"
              description: 'See "cairn status" and the cron mail of "cairn run" for what failed.'
      - eval_time: 5m
        alertname: CairnDrillFailed
        exp_alerts:
          - exp_labels: {severity: critical, instance: h, job: node, exported_job: pgdb}
            exp_annotations:
              summary: "cairn on h: the restore drill of job pgdb failed"
              description: 'Run "cairn verify JOB -v" on the host to see the drill output.'
      - eval_time: 60m
        alertname: CairnCheckFailed
        exp_alerts: []
      - eval_time: 60m
        alertname: CairnBackupNeverSucceeded
        exp_alerts: []
YML
        promtool test rules "$T/rules-test.yml" >"$T/promtool.out" 2>&1; st=$?
        tap_ok $st "promtool test rules: stale after max-age, failed, drill failed fire; nothing else"
        [ $st -eq 0 ] || sed 's/^/#   /' "$T/promtool.out"
else
        echo "ok $((tap_n + 1)) # SKIP promtool not installed (Debian package prometheus)"; tap_n=$((tap_n + 1))
        echo "ok $((tap_n + 1)) # SKIP promtool not installed"; tap_n=$((tap_n + 1))
fi

expect 0 "status --help" -- "$CAIRN" status --help
contains "4 a job is stale" "$out" "documents the exit statuses"
contains "cairn_job_last_status (0 ok, 1 partial" "$out" "and the status values"

tap_finish
