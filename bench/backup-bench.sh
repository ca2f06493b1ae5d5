#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Backup benchmark: cairn against restic, borg and tar+zstd on one dataset,
# in one run, as ratios.  Not a test: numbers depend on the machine.
#
#   bench/backup-bench.sh [SCALE]      SCALE 1 ≈ 2 GB of data (default 1; 0.1 for a quick look)
#
# Dataset: a pg_dumpall of a pgbench -i database, a few thousand small files,
# two large low-compressibility files in Hugging Face cache layout
# (snapshots/<rev>/x -> ../../blobs/<sha>), a sparse file, hard links.
# Each tool: initial backup, then an incremental one after a small change.
# Columns: wall s, CPU s (user+sys), peak RSS MiB, repository MiB.
set -eu
SCALE=${1:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN:-$here/build/backupd/cairn}
W=${BENCH_DIR:-/var/tmp/cairn-bench}

. "$here/scripts/deps.sh"
CAIRN_DEPS="$CAIRN_DEPS restic borgbackup time postgresql-contrib"
cairn_install_deps
[ -x "$CAIRN" ] || { echo "build cairn first (ninja -C build)" >&2; exit 1; }

rm -rf "$W"; mkdir -p "$W/data"; chmod 755 "$W"
D=$W/data
mb() { python3 -c "print(int($1 * $SCALE))"; }

echo "== dataset (scale $SCALE) in $D" >&2
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$W/pg" && chown postgres: "$W/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -o "-k $W/pg -c listen_addresses=''" -w -l "$W/pg/log" start >/dev/null
trap 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
runuser -u postgres -- pgbench -h "$W/pg" -U postgres -i -q -s "$(python3 -c "print(max(1, int(60 * $SCALE)))")" postgres >/dev/null 2>&1
mkdir -p "$D/db"
runuser -u postgres -- pg_dumpall -h "$W/pg" -U postgres > "$D/db/pgdump.sql"
mkdir -p "$D/prometheus"
for i in $(seq 1 "$(python3 -c "print(max(10, int(3000 * $SCALE)))")"); do
        d=$D/prometheus/$((i % 40)); mkdir -p "$d"
        printf 'metric_%d{job="node",instance="host:%d"} %d\n' $(seq $i $((i + 200))) | head -c $((2000 + i % 5000)) > "$d/chunk-$i"
done
hf=$D/hf/models--org--model; mkdir -p "$hf/blobs" "$hf/snapshots/rev1" "$hf/snapshots/rev2"
for f in a b; do
        head -c "$(mb 300)M" /dev/urandom > "$hf/blobs/tmp"; sha=$(sha256sum "$hf/blobs/tmp" | cut -c1-64)
        mv "$hf/blobs/tmp" "$hf/blobs/$sha"
        ln -s "../../blobs/$sha" "$hf/snapshots/rev1/model-$f.safetensors"
        ln -s "../../blobs/$sha" "$hf/snapshots/rev2/model-$f.safetensors"
done
truncate -s "$(mb 1000)M" "$D/sparse.img"; printf x | dd of="$D/sparse.img" bs=1 seek=12345 conv=notrunc status=none
mkdir -p "$D/links"; head -c 1000000 /dev/urandom > "$D/links/one"; ln "$D/links/one" "$D/links/two"
size=$(du -sb --apparent-size "$D" | cut -f1); alloc=$(( $(du -sk "$D" | cut -f1) * 1024 ))
echo "dataset: $((size / 1048576)) MiB apparent, $((alloc / 1048576)) MiB allocated" >&2

change() { head -c 5000000 /dev/urandom > "$D/prometheus/new-$1"; echo "-- $1" >> "$D/db/pgdump.sql"; }

export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes \
       BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
printf 'bench\n' > "$W/pw"
results=$W/results.txt; : > "$results"
measure() { # name repo-dir command...
        local name=$1 repo=$2; shift 2
        sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        /usr/bin/time -f "%e %U %S %M" -o "$W/time.out" "$@" >/dev/null 2>"$W/err.out" || { echo "$name failed:" >&2; tail -5 "$W/err.out" >&2; }
        read -r wall user sys rss < "$W/time.out"
        echo "$name $wall $(python3 -c "print(round($user + $sys, 2))") $((rss / 1024)) $(( $(du -sb "$repo" | cut -f1) / 1048576 ))" >> "$results"
}

"$CAIRN" -r "$W/cairn" --password-file "$W/pw" init >/dev/null
restic init -q -r "$W/restic" >/dev/null
borg init --encryption=repokey "$W/borg" >/dev/null 2>&1
mkdir -p "$W/tar"

measure cairn-initial "$W/cairn" "$CAIRN" -r "$W/cairn" --password-file "$W/pw" backup --job data "$D"
measure restic-initial "$W/restic" restic -q -r "$W/restic" backup "$D"
measure borg-initial "$W/borg" borg create --compression zstd,3 "$W/borg::one" "$D"
measure tar-zstd "$W/tar" tar -C "$D" -I 'zstd -T0 -3' --sparse -cf "$W/tar/one.tar.zst" .
change 1
measure cairn-incremental "$W/cairn" "$CAIRN" -r "$W/cairn" --password-file "$W/pw" backup --job data "$D"
measure restic-incremental "$W/restic" restic -q -r "$W/restic" backup "$D"
measure borg-incremental "$W/borg" borg create --compression zstd,3 "$W/borg::two" "$D"

python3 - "$results" <<'PY'
import sys
rows = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in open(sys.argv[1])}
print(f"{'tool':20} {'wall s':>8} {'cpu s':>8} {'rss MiB':>8} {'repo MiB':>9}   wall ratio to cairn")
for name, (wall, cpu, rss, repo) in rows.items():
    base = rows.get('cairn-incremental' if 'incremental' in name else 'cairn-initial')
    ratio = f"{wall / base[0]:.2f}x" if base and base[0] > 0 else "-"
    print(f"{name:20} {wall:8.2f} {cpu:8.2f} {rss:8.0f} {repo:9.0f}   {ratio}")
PY
