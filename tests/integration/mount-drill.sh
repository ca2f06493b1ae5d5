#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The restore drill of DESIGN.md: a real PostgreSQL dumped by a command job,
# the snapshot mounted with allow_other and bound read-only at /backup into
# a container (podman with runc, as CONTAINERS.md; then bubblewrap) that
# starts a fresh cluster, loads the dump with psql and counts the rows.
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
stop_cluster() {
        [ -d "$T/pg1/data" ] && pg "$PGBIN/pg_ctl" -D "$T/pg1/data" -m immediate stop >/dev/null 2>&1
        return 0
}
extra_cleanup=stop_cluster

mkdir -p "$T/pg1" && chown postgres: "$T/pg1"
pg "$PGBIN/initdb" -D "$T/pg1/data" -A trust -U postgres >/dev/null &&
        pg "$PGBIN/pg_ctl" -D "$T/pg1/data" -o "-k $T/pg1 -c listen_addresses=''" -w -l "$T/pg1/log" start >/dev/null
tap_ok $? "source cluster starts"
pg psql -h "$T/pg1" -U postgres -qc "CREATE DATABASE shop" &&
pg psql -h "$T/pg1" -U postgres -d shop -qc "CREATE TABLE orders (id int primary key, note text);
        INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 20000) g;"
tap_ok $? "source data created"
src=$(pg psql -h "$T/pg1" -U postgres -d shop -tAc "SELECT count(*) || ' ' || md5(string_agg(id || note, ',' ORDER BY id)) FROM orders")

printf 'pw\n' > "$T/pw"
cat > "$T/cairn.conf" <<CONF
[repository]
path = $T/repo
password-file = $T/pw

[job pgdb]
command = runuser -u postgres -- pg_dumpall -h $T/pg1 -U postgres
filename = pgdump.sql
CONF
export CAIRN_CONFIG=$T/cairn.conf
expect 0 "init" -- "$CAIRN" init --scrypt-n 1024
expect 0 "backup the pg_dumpall output" -- "$CAIRN" backup pgdb

M=$T/restore
log=$T/cairnfs.log
mount_start "$log" "$M" -o password_file="$T/pw",allow_other "$T/repo" "$M"; tap_ok $? "mount with allow_other"
pid=$mnt_pid
test -s "$M/pgdb/latest/pgdump.sql"; tap_ok $? "pgdb/latest/pgdump.sql is there"

# The drill: a fresh cluster in the container's own /tmp, the dump loaded
# from the read-only /backup, the rows counted and summed.
drill='set -e
D=$(mktemp -d)
'"$PGBIN"'/initdb -D $D/data -A trust -U postgres >/dev/null
'"$PGBIN"'/pg_ctl -D $D/data -o "-k $D -c listen_addresses=" -w -l $D/log start >/dev/null
psql -h $D -U postgres -d postgres -qf ${BACKUP:-/backup}/pgdump.sql >/dev/null 2>$D/psql.err || { cat $D/psql.err; exit 1; }
psql -h $D -U postgres -d shop -tAc "SELECT count(*) || '"' '"' || md5(string_agg(id || note, '"','"' ORDER BY id)) FROM orders"
'"$PGBIN"'/pg_ctl -D $D/data -m fast stop >/dev/null'

out=$(podman_run --user postgres -v "$M/pgdb/latest:/backup:ro" --rootfs /:O /bin/sh -c "$drill" 2>&1); st=$?
test "$st" -eq 0; tap_ok $? "podman: the drill runs (exit $st)"
[ "$st" -eq 0 ] || echo "$out" | sed 's/^/#   /' | tail -n 15
got=$(echo "$out" | tail -n 1)
test -n "$src" && test "$got" = "$src"; tap_ok $? "podman: the restored database has the source's rows (${got:-nothing} vs $src)"

# bwrap binds over a read-only / cannot create /backup: the snapshot goes
# below the sandbox's own /tmp.
snap=$M/pgdb/$(readlink "$M/pgdb/latest")
out=$(timeout 600 bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /dev/shm \
        --ro-bind "$snap" /tmp/backup --setenv BACKUP /tmp/backup --unshare-all --uid "$(id -u postgres)" --gid "$(id -g postgres)" /bin/sh -c "$drill" 2>&1); st=$?
test "$st" -eq 0; tap_ok $? "bwrap: the drill runs (exit $st)"
[ "$st" -eq 0 ] || echo "$out" | sed 's/^/#   /' | tail -n 15
got=$(echo "$out" | tail -n 1)
test -n "$src" && test "$got" = "$src"; tap_ok $? "bwrap: the restored database has the source's rows (${got:-nothing} vs $src)"

kill -0 "$pid"; tap_ok $? "the daemon still runs"
mount_stop_term "$M" "$pid" "drill"
log_clean "$log" "drill"

tap_finish
