#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mount benchmark: cairnfs against `restic mount`, `borg mount`, squashfuse over
# a zstd squashfs image, and the source directory itself, on one dataset, in
# one run, as ratios.  Not a test: numbers depend on the machine.
#
#   bench/mount-bench.sh [SCALE]       SCALE 1 ≈ 2 GB of data (default 1; 0.1 for a quick look)
#
# Environment: CAIRN, CAIRNFS (binaries; default build/backupd/cairn,
# build/fusefs/cairnfs), BENCH_DIR (work dir, default /var/tmp/cairn-mount-bench),
# TOOLS (subset, default "cairnfs restic borg squashfuse source"),
# CAIRNFS_CACHE (cache_size in MiB, default 256), REUSE=1 (keep the dataset and
# the restic/borg/squashfs repositories of an earlier run at the same SCALE;
# the cairn repository is always made afresh), TIMEOUT (s per step, default 1800).
#
# Dataset (one source tree $BENCH_DIR/src, backed up once by every tool):
#   data/   backup-bench.sh's dataset: a pg_dumpall of a pgbench -i database,
#           a few thousand small files, two incompressible files in Hugging
#           Face cache layout, a sparse file, hard links (≈ 2 GB apparent);
#   small/  100,000 files of 100–2000 bytes in 1000 directories (× SCALE);
#   rand/   one 500 MB file (× SCALE), half random, half log-like text.
# Every measurement runs on a fresh mount after `sync; echo 3 > drop_caches`:
#   mount ms   start of the mount command → first successful `ls` of the
#              source root inside the snapshot (tight loop); median of the
#              four cold mounts the other columns make;
#   cp MB/s    cold `cp -a` of data/ (apparent bytes / wall time); the copy is
#              then checked against the source (diff -r, and a metadata walk:
#              type, mode, owner, size, mtime ns, link count, link target, sparse);
#   p50/p99    2000 random 4 KiB os.pread()s (fixed seed) in rand/'s file, ms;
#              the bytes read are checked against the source;
#   seq MB/s   dd bs=1M of data/'s largest file (by allocated size);
#   walk s     find small/ -type f | xargs stat;
#   HWM/RSS    the daemon's VmHWM / VmRSS / RssAnon (MiB) after that walk
#              (VmRSS counts the pages of a memory-mapped index, RssAnon not);
#              cp HWM: VmHWM at the end of the cp -a mount.
# Then for cairnfs alone: mount → ls of a tiny job's latest snapshot with 1
# and with 200 snapshots of that job (two small repositories, mounted in turn).
set -eu
export LC_ALL=C
SCALE=${1:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN:-$here/build/backupd/cairn}
CAIRNFS=${CAIRNFS:-$here/build/fusefs/cairnfs}
W=${BENCH_DIR:-/var/tmp/cairn-mount-bench}
TOOLS=${TOOLS:-cairnfs restic borg squashfuse source}
CACHE_MIB=${CAIRNFS_CACHE:-256}
TIMEOUT=${TIMEOUT:-1800}
NREADS=2000

. "$here/scripts/deps.sh"
CAIRN_DEPS="$CAIRN_DEPS restic borgbackup python3-llfuse squashfuse squashfs-tools postgresql-contrib diffutils"
cairn_install_deps

S=$W/src
D=$S/data
mb() { python3 -c "print(int($1 * $SCALE))"; }
now() { local t=$EPOCHREALTIME; echo "${t/./}"; }    # µs, no fork for the clock itself
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
log() { echo "$*" >&2; }

# ---------------------------------------------------------------- cleanup
MOUNTS="" PIDS="" PGBIN="" PID="" MNT="" WD=""
cleanup() {
        set +e
        [ -n "$WD" ] && kill "$WD" 2>/dev/null
        for m in $MOUNTS; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m"; }; done
        for p in $PIDS; do kill -0 "$p" 2>/dev/null && { kill "$p"; sleep 0.5; kill -9 "$p" 2>/dev/null; }; done
        if [ -n "$PGBIN" ] && [ -d "$W/pg/data" ]; then
                runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate stop >/dev/null 2>&1
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- dataset
# data/: the generator of backup-bench.sh (same files, same sizes per SCALE).
gen_backup_bench_dataset() { # dir
        local D=$1 i d hf f sha
        PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
        rm -rf "$W/pg"; mkdir -p "$W/pg" && chown postgres: "$W/pg"
        runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg/data" -A trust -U postgres >/dev/null
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -o "-k $W/pg -c listen_addresses=''" -w -l "$W/pg/log" start >/dev/null
        runuser -u postgres -- pgbench -h "$W/pg" -U postgres -i -q -s "$(python3 -c "print(max(1, int(60 * $SCALE)))")" postgres >/dev/null 2>&1
        mkdir -p "$D/db"
        runuser -u postgres -- pg_dumpall -h "$W/pg" -U postgres > "$D/db/pgdump.sql"
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -m fast stop >/dev/null
        rm -rf "$W/pg"; PGBIN=""
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
}

gen_small_files() { # dir count: count files of 100-2000 bytes, 100 per directory
        python3 - "$1" "$2" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
r = random.Random(42)
pool = "".join(f'node_cpu_seconds_total{{cpu="{r.randrange(64)}",mode="idle"}} {r.random() * 1e6:.3f} {1700000000 + i}\n'
               for i in range(40000)).encode()
ndirs = max(1, n // 100)
for d in range(ndirs):
    os.makedirs(os.path.join(root, f"d{d:04d}"), exist_ok=True)
for i in range(n):
    size = r.randint(100, 2000)
    off = r.randrange(len(pool) - size)
    with open(os.path.join(root, f"d{i % ndirs:04d}", f"f{i:06d}"), "wb") as f:
        f.write(pool[off:off + size])
PY
}

gen_mixed_file() { # path MiB: 64 KiB pieces, half random bytes, half log text (zstd ≈ 2:1)
        python3 - "$1" "$2" <<'PY'
import random, sys
path, mib = sys.argv[1], int(sys.argv[2])
r = random.Random(7)
n = 0
with open(path, "wb") as f:
    for _ in range(mib * 16):
        if r.random() < 0.5:
            f.write(r.randbytes(65536))
            continue
        lines = []
        size = 0
        while size < 65536:
            n += 1
            l = (f"2026-11-21T01:{n // 60 % 60:02d}:{n % 60:02d}.{r.randrange(1000):03d}Z INFO req={r.getrandbits(48):012x} "
                 f"GET /api/v1/items/{r.randrange(100000)} status={r.choice((200, 200, 200, 304, 404))} dur={r.randrange(900)}ms\n")
            lines.append(l)
            size += len(l)
        f.write("".join(lines).encode()[:65536])
PY
}

mkdir -p "$W"; chmod 755 "$W"
if [ "${REUSE:-0}" = 1 ] && [ "$(cat "$W/.dataset" 2>/dev/null)" = "$SCALE" ]; then
        log "== reusing dataset (scale $SCALE) in $S"
else
        rm -rf "$W"; mkdir -p "$S/small" "$S/rand"; chmod 755 "$W"
        log "== dataset (scale $SCALE) in $S"
        gen_backup_bench_dataset "$D"
        gen_small_files "$S/small" "$(python3 -c "print(max(1000, int(100000 * $SCALE)))")"
        gen_mixed_file "$S/rand/mixed.bin" "$(mb 500)"
        echo "$SCALE" > "$W/.dataset"
fi
rm -rf "$W/mnt" "$W/restore" "$W/log"; mkdir -p "$W/mnt" "$W/log"
DATA_BYTES=$(du -sb --apparent-size "$D" | cut -f1)
RAND_FILE=rand/mixed.bin
SEQ_FILE=$(cd "$S" && find data -type f -printf '%b %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
SEQ_BYTES=$(stat -c %s "$S/$SEQ_FILE")
NSMALL=$(find "$S/small" -type f | wc -l)
log "dataset: data/ $((DATA_BYTES / 1048576)) MiB apparent, $(( $(du -sk "$D" | cut -f1) / 1024 )) MiB allocated;" \
    "small/ $NSMALL files; $RAND_FILE $(( $(stat -c %s "$S/$RAND_FILE") / 1048576 )) MiB; largest: $SEQ_FILE $((SEQ_BYTES / 1048576)) MiB"

cat > "$W/randread.py" <<'PY'
# randread.py FILE N: N random 4 KiB preads (fixed seed); prints p50 ms, p99 ms, total s, sha256 of the bytes
import hashlib, os, random, sys, time
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
blocks = os.fstat(fd).st_size // 4096
r = random.Random(20261121)
h = hashlib.sha256()
lat = []
t0 = time.perf_counter()
for _ in range(n):
    off = r.randrange(blocks) * 4096
    t = time.perf_counter_ns()
    b = os.pread(fd, 4096, off)
    lat.append(time.perf_counter_ns() - t)
    h.update(b)
total = time.perf_counter() - t0
lat.sort()
print(f"{lat[n // 2] / 1e6:.3f} {lat[min(n - 1, int(n * 0.99))] / 1e6:.3f} {total:.2f} {h.hexdigest()}")
PY
RAND_REF=$(python3 "$W/randread.py" "$S/$RAND_FILE" "$NREADS" | cut -d' ' -f4)

cat > "$W/treemeta.py" <<'PY'
# treemeta.py SRC COPY: compare metadata of two trees; prints "ok" or "N entries: field=count ..."
import os, sys, collections
a, b = sys.argv[1], sys.argv[2]
bad = collections.Counter(); nbad = 0
def walk(root):
    yield ""
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            yield os.path.relpath(os.path.join(d, name), root)
for rel in walk(a):
    pa, pb = os.path.join(a, rel), os.path.join(b, rel)
    try:
        sb = os.lstat(pb)
    except OSError:
        bad["missing"] += 1; nbad += 1; continue
    sa = os.lstat(pa)
    diff = []
    for f in ("st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns", "st_nlink"):
        if getattr(sa, f) != getattr(sb, f):
            diff.append(f[3:])
    if os.path.islink(pa) and os.readlink(pa) != os.readlink(pb):
        diff.append("target")
    if not os.path.islink(pa) and os.path.isfile(pa) and sa.st_blocks * 512 < sa.st_size // 2 \
            and sb.st_blocks > 2 * sa.st_blocks + 2048:
        diff.append("sparse")
    for f in diff:
        bad[f] += 1
    nbad += bool(diff)
print("ok" if not nbad else f"{nbad} differ: " + " ".join(f"{k}={v}" for k, v in sorted(bad.items())))
PY

# ---------------------------------------------------------------- repositories
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes \
       BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
printf 'bench\n' > "$W/pw"
results=$W/results.txt; : > "$results"
rec() { echo "$1 $2 $3" >> "$results"; }   # tool metric value
FAILED=""
fail_tool() { log "$1: $2 (see $W/log/$1.log)"; FAILED="$FAILED $1"; rec "$1" setup failed; }
has_failed() { case " $FAILED " in *" $1 "*) return 0;; esac; return 1; }
timed() { # tool what command...: run, log, print wall seconds to stderr
        local tool=$1 what=$2 t0 rc; shift 2; t0=$(now)
        "$@" >>"$W/log/$tool.log" 2>&1; rc=$?
        log "$tool: $what $(( ($(now) - t0) / 1000 )) ms (exit $rc)"
        return $rc
}
set +e

setup_tool() {
        case $1 in
        cairnfs)
                [ -x "$CAIRN" ] || { fail_tool cairnfs "no $CAIRN (build cairn first)"; return; }
                [ -x "$CAIRNFS" ] || { fail_tool cairnfs "no $CAIRNFS (build cairnfs first)"; return; }
                rm -rf "$W/cairn" "$W/tiny"; mkdir -p "$W/tiny"
                timed cairnfs init "$CAIRN" -r "$W/cairn" --password-file "$W/pw" init &&
                timed cairnfs backup "$CAIRN" -q -r "$W/cairn" --password-file "$W/pw" backup --job bench "$S" ||
                        fail_tool cairnfs "backup failed" ;;
        restic)
                [ "${REUSE:-0}" = 1 ] && [ -f "$W/restic.done" ] && return
                rm -rf "$W/restic"
                timed restic init restic -q -r "$W/restic" init &&
                timed restic backup restic -q -r "$W/restic" backup "$S" && touch "$W/restic.done" ||
                        fail_tool restic "backup failed" ;;
        borg)
                [ "${REUSE:-0}" = 1 ] && [ -f "$W/borg.done" ] && return
                rm -rf "$W/borg"
                timed borg init borg init --encryption=repokey "$W/borg" &&
                timed borg create borg create --compression zstd,3 "$W/borg::src" "$S" && touch "$W/borg.done" ||
                        fail_tool borg "backup failed" ;;
        squashfuse)
                [ "${REUSE:-0}" = 1 ] && [ -f "$W/sqfs.done" ] && return
                rm -f "$W/src.sqfs"
                timed squashfuse mksquashfs mksquashfs "$S" "$W/src.sqfs" -comp zstd -noappend -quiet && touch "$W/sqfs.done" ||
                        fail_tool squashfuse "mksquashfs failed" ;;
        esac
}

# ---------------------------------------------------------------- mounts
start_mount() { # tool mountpoint (foreground daemon)
        case $1 in
        cairnfs)    exec "$CAIRNFS" "$CAIRN_REPO" "$2" -f -o "password_file=$W/pw,cache_size=$CACHE_MIB" ;;
        restic)     exec restic -r "$W/restic" mount "$2" ;;
        borg)       exec borg mount -f "$W/borg::src" "$2" ;;
        squashfuse) exec squashfuse -f "$W/src.sqfs" "$2" ;;
        esac
}
root_in() { # tool mountpoint: where the source tree $S is inside the mount
        case $1 in
        cairnfs)    echo "$2/bench/latest$S" ;;
        restic)     echo "$2/snapshots/latest$S" ;;
        borg)       echo "$2$S" ;;
        squashfuse) echo "$2" ;;
        source)     echo "$S" ;;
        esac
}

# Watchdog: a hung daemon must not hang the benchmark.  Kills the daemon
# (which aborts the FUSE connection, so blocked readers get ENOTCONN).
guard() {
        [ -n "$PID" ] || return 0
        ( trap 'kill $s 2>/dev/null; exit 0' TERM; sleep "$TIMEOUT" & s=$!; wait $s
          echo "watchdog: $TOOL timed out after $TIMEOUT s, killing $PID" >&2
          kill -9 "$PID" 2>/dev/null; fusermount3 -u -z "$MNT" 2>/dev/null ) &
        WD=$!
}
unguard() { [ -n "$WD" ] && { kill "$WD" 2>/dev/null; wait "$WD" 2>/dev/null; }; WD=""; }

MOUNT_MS="" REC_MOUNT=1 CAIRN_REPO=$W/cairn
do_mount() { # tool [path to ls, default the source root]: sets MNT PID ROOT MOUNT_MS
        local tool=$1 t0 t1 p deadline
        TOOL=$tool; MOUNT_MS=""; PID=""
        if [ "$tool" = source ]; then MNT=""; ROOT=$S; drop_caches; return 0; fi
        MNT=$W/mnt/$tool; mkdir -p "$MNT"
        mountpoint -q "$MNT" && fusermount3 -u -z "$MNT"
        ROOT=$(root_in "$tool" "$MNT"); p=${2:-$ROOT}
        drop_caches
        echo "== mount $(date -u +%FT%TZ)" >> "$W/log/$tool.log"
        t0=$(now); deadline=$((t0 + TIMEOUT * 1000000))
        start_mount "$tool" "$MNT" >>"$W/log/$tool.log" 2>&1 &
        PID=$!; PIDS="$PIDS $PID"; MOUNTS="$MOUNTS $MNT"
        guard
        until ls "$p" >/dev/null 2>&1; do
                if ! kill -0 "$PID" 2>/dev/null || [ "$(now)" -gt "$deadline" ]; then
                        unguard; log "$tool: mount failed (see $W/log/$tool.log)"; do_umount; return 1
                fi
        done
        t1=$(now); unguard
        MOUNT_MS=$(python3 -c "print(round(($t1 - $t0) / 1000, 1))")
        [ "$REC_MOUNT" = 1 ] && rec "$tool" mount_ms "$MOUNT_MS"
        drop_caches
        return 0
}
do_umount() {
        local i
        [ -n "$PID" ] || return 0
        for i in 1 2 3 4 5; do
                mountpoint -q "$MNT" || break
                fusermount3 -u "$MNT" 2>>"$W/log/$TOOL.log" && break
                sleep 1
        done
        mountpoint -q "$MNT" && fusermount3 -u -z "$MNT"
        for i in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$PID" 2>/dev/null && { log "$TOOL: daemon $PID still running after unmount, killing it"; kill -9 "$PID"; }
        wait "$PID" 2>/dev/null
        PID=""
}
status_mib() { # field (VmHWM, VmRSS) of $PID in MiB
        [ -n "$PID" ] && awk -v f="$1:" '$1 == f { printf "%.0f", $2 / 1024 }' "/proc/$PID/status" 2>/dev/null
}
mbs() { python3 -c "print(round($1 / (($2 - $3) / 1e6) / 1e6, 1))"; }   # bytes t1 t0

bench_tool() {
        local tool=$1 t0 t1 out v
        # (1) + (2) mount, cold cp -a, then check the copy against the source
        rm -rf "$W/restore"; mkdir -p "$W/restore"
        if do_mount "$tool"; then
                guard; t0=$(now)
                if cp -a "$ROOT/data" "$W/restore/" 2>>"$W/log/$tool.log"; then
                        t1=$(now); rec "$tool" cp_mbs "$(mbs "$DATA_BYTES" "$t1" "$t0")"
                        log "$tool: cp -a $(( (t1 - t0) / 1000 )) ms"
                else
                        rec "$tool" cp_mbs failed; log "$tool: cp -a failed"
                fi
                unguard; v=$(status_mib VmHWM); rec "$tool" cp_hwm "${v:-failed}"
                do_umount
                if [ -d "$W/restore/data" ]; then
                        if diff -r --no-dereference "$D" "$W/restore/data" > "$W/log/$tool.diff" 2>&1; then
                                rec "$tool" diff ok
                        else
                                rec "$tool" diff "DIFF($(grep -c . "$W/log/$tool.diff"))"; log "$tool: copy differs, see $W/log/$tool.diff"
                        fi
                        rec "$tool" meta "$(python3 "$W/treemeta.py" "$D" "$W/restore/data")"
                fi
        fi
        rm -rf "$W/restore"
        # (3) random 4 KiB reads
        if do_mount "$tool"; then
                guard
                if out=$(python3 "$W/randread.py" "$ROOT/$RAND_FILE" "$NREADS" 2>>"$W/log/$tool.log"); then
                        set -- $out
                        rec "$tool" p50 "$1"; rec "$tool" p99 "$2"
                        [ "$4" = "$RAND_REF" ] || { rec "$tool" randcheck WRONG; log "$tool: random reads returned wrong bytes"; }
                        log "$tool: random reads p50 $1 ms p99 $2 ms, $3 s"
                fi
                unguard; do_umount
        fi
        # (4) sequential read of the largest file
        if do_mount "$tool"; then
                guard; t0=$(now)
                if dd if="$ROOT/$SEQ_FILE" of=/dev/null bs=1M status=none 2>>"$W/log/$tool.log"; then
                        t1=$(now); rec "$tool" seq_mbs "$(mbs "$SEQ_BYTES" "$t1" "$t0")"
                        log "$tool: dd $SEQ_FILE $(( (t1 - t0) / 1000 )) ms"
                fi
                unguard; do_umount
        fi
        # (5) walk of the small files, then the daemon's memory
        if do_mount "$tool"; then
                guard; t0=$(now)
                out=$(cd "$ROOT/small" && find . -type f -print0 2>>"$W/log/$tool.log" | xargs -0 stat -c %s 2>>"$W/log/$tool.log" | wc -l)
                t1=$(now); unguard
                if [ "$out" = "$NSMALL" ]; then
                        rec "$tool" walk_s "$(python3 -c "print(round(($t1 - $t0) / 1e6, 2))")"
                else
                        rec "$tool" walk_s "failed($out/$NSMALL)"
                fi
                v=$(status_mib VmHWM); rec "$tool" hwm "${v:-failed}"
                v=$(status_mib VmRSS); rec "$tool" rss "${v:-failed}"
                v=$(status_mib RssAnon); rec "$tool" anon "${v:-failed}"
                log "$tool: walk $(( (t1 - t0) / 1000 )) ms, $out files"
                do_umount
        fi
}

# cairnfs only: does mount → ls depend on the number of snapshots of a job?
# Two repositories of one tiny job, 1 and 200 snapshots, mounted alternately
# (so that load from elsewhere on the machine hits both alike).
cairnfs_snapshot_count() {
        local n i k want repo
        rm -rf "$W/snaps"; mkdir -p "$W/snaps"
        for n in 1 200; do
                repo=$W/snaps/r$n
                "$CAIRN" -q -r "$repo" --password-file "$W/pw" init >>"$W/log/cairnfs.log" 2>&1 || { rec cairnfs "tiny${n}_ms" failed; continue; }
                for i in $(seq 1 "$n"); do
                        echo "$i" > "$W/tiny/file"
                        "$CAIRN" -q -r "$repo" --password-file "$W/pw" backup --job tiny "$W/tiny" >>"$W/log/cairnfs.log" 2>&1 ||
                                { log "cairnfs: tiny backup $i failed"; rec cairnfs "tiny${n}_ms" failed; continue 2; }
                done
        done
        REC_MOUNT=0
        for k in 1 2 3 4 5; do
                for n in 1 200; do
                        [ -d "$W/snaps/r$n/snapshots" ] || continue
                        CAIRN_REPO=$W/snaps/r$n
                        if do_mount cairnfs "$W/mnt/cairnfs/tiny/latest$W/tiny"; then
                                rec cairnfs "tiny${n}_ms" "$MOUNT_MS"
                                rec cairnfs "tiny${n}_entries" "$(ls "$W/mnt/cairnfs/tiny" | wc -l)"
                                [ "$(cat "$W/mnt/cairnfs/tiny/latest$W/tiny/file" 2>/dev/null)" = "$n" ] ||
                                        { rec cairnfs "tiny${n}_latest" WRONG; log "cairnfs: tiny/latest is not the newest snapshot"; }
                                do_umount
                        else
                                rec cairnfs "tiny${n}_ms" failed
                        fi
                done
        done
        REC_MOUNT=1 CAIRN_REPO=$W/cairn
}

for tool in $TOOLS; do
        log "== $tool"
        setup_tool "$tool"
        has_failed "$tool" && continue
        bench_tool "$tool"
        [ "$tool" = cairnfs ] && cairnfs_snapshot_count
done

# ---------------------------------------------------------------- report
python3 - "$results" "$SCALE" "$TOOLS" "$DATA_BYTES" "$SEQ_FILE" "$NSMALL" "$CACHE_MIB" <<'PY'
import statistics, sys
path, scale, tools, data_bytes, seq_file, nsmall, cache = sys.argv[1:]
tools = tools.split()
vals = {}
for line in open(path):
    t, k, v = line.split(maxsplit=2)
    vals.setdefault(t, {}).setdefault(k, []).append(v.strip())

def num(t, k):
    """median of the numeric values, None if missing or failed"""
    vs = vals.get(t, {}).get(k, [])
    try:
        return statistics.median(float(v) for v in vs) if vs else None
    except ValueError:
        return None

def cell(t, k, fmt="{:.1f}"):
    if t == "source" and k in ("mount_ms", "cp_hwm", "hwm", "rss", "anon"):
        return "-"
    v = num(t, k)
    return fmt.format(v) if v is not None else "failed"

def check(t):
    d = vals.get(t, {})
    if "diff" not in d:
        return "failed"
    parts = [d["diff"][0] if d["diff"][0] != "ok" else "diff ok"]
    m = d.get("meta", ["?"])[0]
    parts.append("meta ok" if m == "ok" else "meta: " + m)
    if "randcheck" in d:
        parts.append("random reads WRONG")
    return "; ".join(parts)

cols = [("mount→ls ms", "mount_ms", "{:.0f}", "lower"), ("cp -a MB/s", "cp_mbs", "{:.0f}", "higher"),
        ("4K p50 ms", "p50", "{:.3f}", "lower"), ("4K p99 ms", "p99", "{:.2f}", "lower"),
        ("seq MB/s", "seq_mbs", "{:.0f}", "higher"), ("walk s", "walk_s", "{:.2f}", "lower"),
        ("HWM MiB", "hwm", "{:.0f}", "lower"), ("RSS MiB", "rss", "{:.0f}", "lower"),
        ("anon MiB", "anon", "{:.0f}", "lower"),
        ("cp HWM MiB", "cp_hwm", "{:.0f}", "lower")]
print(f"\n## Mount benchmark, scale {scale} (data/ {int(data_bytes) / 1e6:.0f} MB apparent, "
      f"{nsmall} small files, seq file {seq_file}, cairnfs cache_size={cache} MiB)\n")
print("| tool | " + " | ".join(c[0] for c in cols) + " | cp -a copy check |")
print("|---|" + "---:|" * len(cols) + "---|")
for t in tools:
    if "setup" in vals.get(t, {}):
        print(f"| {t} | " + " | ".join("failed" for _ in cols) + " | failed |")
        continue
    print(f"| {t} | " + " | ".join(cell(t, k, f) for _, k, f, _ in cols) + f" | {check(t)} |")

if "cairnfs" not in tools:
    sys.exit(0)
print("\n### Ratios: tool / cairnfs (same column; MB/s: >1 is faster than cairnfs; ms, s, MiB: >1 is slower/bigger)\n")
print("| tool | " + " | ".join(c[0] for c in cols) + " |")
print("|---|" + "---:|" * len(cols))
for t in tools:
    if t == "cairnfs":
        continue
    row = []
    for _, k, _, _ in cols:
        a, b = num(t, k), num("cairnfs", k)
        if t == "source" and k in ("mount_ms", "cp_hwm", "hwm", "rss", "anon"):
            row.append("-")
        elif a is None or b is None or b == 0:
            row.append("failed")
        else:
            row.append(f"{a / b:.2f}")
    print(f"| {t} | " + " | ".join(row) + " |")

if True:
    print("\n### cairnfs: mount → ls of a job's latest snapshot vs the number of snapshots of that job\n")
    print("| snapshots of the job | mount→ls ms (median of 5) | min | max | entries in the job dir |")
    print("|---:|---:|---:|---:|---:|")
    for n in (1, 200):
        vs = [float(v) for v in vals.get("cairnfs", {}).get(f"tiny{n}_ms", []) if v != "failed"]
        ent = vals.get("cairnfs", {}).get(f"tiny{n}_entries", ["-"])[0]
        wrong = " (latest WRONG)" if f"tiny{n}_latest" in vals.get("cairnfs", {}) else ""
        if vs:
            print(f"| {n} | {statistics.median(vs):.0f}{wrong} | {min(vs):.0f} | {max(vs):.0f} | {ent} |")
        else:
            print(f"| {n} | failed | failed | failed | - |")
PY
