#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A real PostgreSQL (Debian's package) on a unix socket in a temp dir:
# pg_dumpall through a command source, restored with psql into a fresh
# cluster, same rows.
set -u
# The postgres user must reach the test directory: not below a 0700 checkout.
CAIRN_TEST_TMPDIR=/tmp
. "$(dirname "$0")/tap.sh"
: "${CAIRN:?set CAIRN to the cairn binary}"
T=$tap_tmp
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_CONFIG || true

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ]; then
        echo "Bail out! PostgreSQL server binaries not found (test.sh installs postgresql)"
        exit 1
fi
chmod 755 "$T"
pg() { runuser -u postgres -- "$@"; }
start_cluster() { # dir
        mkdir -p "$1" && chown postgres: "$1"
        pg "$PGBIN/initdb" -D "$1/data" -A trust -U postgres >/dev/null &&
        pg "$PGBIN/pg_ctl" -D "$1/data" -o "-k $1 -c listen_addresses=''" -w -l "$1/log" start >/dev/null
}
stop_clusters() {
        for d in "$T/pg1" "$T/pg2"; do
                [ -d "$d/data" ] && pg "$PGBIN/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1
        done
        rm -rf "$tap_tmp"
}
trap stop_clusters EXIT

start_cluster "$T/pg1"; tap_ok $? "source cluster starts"
pg psql -h "$T/pg1" -U postgres -qc "CREATE DATABASE shop" &&
pg psql -h "$T/pg1" -U postgres -d shop -qc "CREATE TABLE orders (id int primary key, note text);
        INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
        CREATE TABLE users (name text); INSERT INTO users VALUES ('ada'), ('grace');"
tap_ok $? "source data created"

printf 'pw\n' > "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $T/repo
password-file = $T/pw

[job pgdb]
command = runuser -u postgres -- pg_dumpall -h $T/pg1 -U postgres
filename = pgdump.sql
keep-last = 1
CONF
export CAIRN_CONFIG=$T/cairn.conf
expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup the pg_dumpall output" -- "$CAIRN" backup pgdb
expect 0 "restore the dump" -- "$CAIRN" restore pgdb --target "$T/restored"
test -s "$T/restored/pgdump.sql"; tap_ok $? "pgdump.sql restored"

start_cluster "$T/pg2"; tap_ok $? "fresh cluster starts"
pg psql -h "$T/pg2" -U postgres -d postgres -q -v ON_ERROR_STOP=0 -f "$T/restored/pgdump.sql" >/dev/null 2>"$T/psql.err"
tap_ok $? "psql loads the restored dump"
src=$(pg psql -h "$T/pg1" -U postgres -d shop -tAc "SELECT count(*), sum(id), string_agg(note, '' ORDER BY id) = string_agg(note, '' ORDER BY id) FROM orders")
dst=$(pg psql -h "$T/pg2" -U postgres -d shop -tAc "SELECT count(*), sum(id), string_agg(note, '' ORDER BY id) = string_agg(note, '' ORDER BY id) FROM orders")
test -n "$src" && test "$src" = "$dst"; tap_ok $? "same rows in orders ($src vs $dst)"
src=$(pg psql -h "$T/pg1" -U postgres -d shop -tAc "SELECT md5(string_agg(id || note, ',' ORDER BY id)) FROM orders")
dst=$(pg psql -h "$T/pg2" -U postgres -d shop -tAc "SELECT md5(string_agg(id || note, ',' ORDER BY id)) FROM orders")
test -n "$src" && test "$src" = "$dst"; tap_ok $? "same content of orders (md5 $src)"
dst=$(pg psql -h "$T/pg2" -U postgres -d shop -tAc "SELECT string_agg(name, ',' ORDER BY name) FROM users")
test "$dst" = "ada,grace"; tap_ok $? "users restored ($dst)"

# The dump of a stopped server fails: the job fails and records nothing.
pg "$PGBIN/pg_ctl" -D "$T/pg1/data" -m fast stop >/dev/null
expect 1 "backup fails when pg_dumpall cannot connect" -- "$CAIRN" backup pgdb
contains 'command "runuser -u postgres -- pg_dumpall' "$err" "naming the command"
contains "exited with status 1" "$err" "and its status"
expect 0 "snapshots" -- "$CAIRN" snapshots --json pgdb
n=$(echo "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
test "$n" = 1; tap_ok $? "still exactly one snapshot"

tap_finish
