#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Restore drill for a pg_dumpall job (filename = pgdump.sql): start a fresh
# PostgreSQL cluster, load the dump, check that the databases came back.
# Install as /etc/cairn/drills/pgdb.sh and name it in the job:
#
#   drill = /etc/cairn/drills/pgdb.sh
#   drill-runtime = docker        (or podman, or bwrap: the host's own PostgreSQL)
#   drill-image = postgres:15     (the major version of the dumped server, or newer)
#   drill-user = postgres         (initdb refuses to run as root)
#
# "cairn verify pgdb" runs it with the latest snapshot read-only at $BACKUP
# (/backup in a container, /tmp/backup with bwrap); exit status 0 is a
# pass, anything else a failure that "cairn status", the metrics and the
# webhook report with the last line printed here.  Add the checks that
# prove the restore usable for you (a row count, the newest order's date).
set -eu

# Debian/Ubuntu keep the server programs out of $PATH; the official image has them in it.
for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && PATH=$d:$PATH
done
DUMP=${BACKUP:-/backup}/pgdump.sql
[ -s "$DUMP" ] || { echo "no dump at $DUMP"; exit 1; }

D=$(mktemp -d)
initdb -D "$D/data" -A trust -U postgres >/dev/null
pg_ctl -D "$D/data" -o "-k $D -c listen_addresses=" -w -l "$D/server.log" start >/dev/null
trap 'pg_ctl -D "$D/data" -m immediate stop >/dev/null 2>&1 || true' EXIT

# The dump recreates the role "postgres", which exists: that one error is
# expected; any other is printed and fails the drill.
psql -X -h "$D" -U postgres -d postgres -q -f "$DUMP" >/dev/null 2>"$D/restore.err" || true
if grep -v 'role "postgres" already exists' "$D/restore.err" | grep -q 'ERROR'; then
        grep 'ERROR' "$D/restore.err" | grep -v 'role "postgres" already exists' | tail -n 5
        echo "the dump did not load cleanly"
        exit 1
fi

n=0
for db in $(psql -X -h "$D" -U postgres -d postgres -tAc \
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"); do
        tables=$(psql -X -h "$D" -U postgres -d "$db" -tAc \
                 "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
        echo "database $db: $tables tables"
        n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no database restored from $DUMP"; exit 1; }
echo "restored $n database(s) from $DUMP"
