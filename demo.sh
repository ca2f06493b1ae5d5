#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Set up a fresh Debian 12 machine (as root), build cairn, and run the main
# job on demo data: an encrypted repository, a config with a directory job
# and a "database dump" command job, "cairn run" twice (the second is
# incremental), then list, restore, and mount every snapshot at demo/restore.
set -eu
cd "$(dirname "$0")"
. scripts/deps.sh
cairn_install_deps

if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
ninja -C build >/dev/null

demo=${CAIRN_DEMO_DIR:-$PWD/demo}
# A mount left by an earlier run goes first: rm cannot walk into it.
if mountpoint -q "$demo/restore" 2>/dev/null; then fusermount3 -u "$demo/restore"; fi
rm -rf "$demo"
mkdir -p "$demo"
umask 077
head -c 24 /dev/urandom | base64 > "$demo/passphrase"
export CAIRN_REPO="$demo/repo" CAIRN_PASSWORD_FILE="$demo/passphrase"

mkdir -p "$demo/data/configs/nginx" "$demo/data/models/blobs" "$demo/data/models/snapshots/rev1"
printf 'server { listen 80; }\n' > "$demo/data/configs/nginx/site.conf"
head -c 20000000 /dev/urandom > "$demo/data/models/blobs/abc123"
ln -s ../../blobs/abc123 "$demo/data/models/snapshots/rev1/model.safetensors"
cat > "$demo/cairn.conf" <<CONF
[repository]
path = $demo/repo
password-file = $demo/passphrase

[job files]
path = $demo/data
keep-daily = 3

[job pgdb]
command = printf 'CREATE TABLE t (x int);\\nINSERT INTO t VALUES (42);\\n'
filename = pgdump.sql
keep-last = 1
CONF
export CAIRN_CONFIG="$demo/cairn.conf"
unset CAIRN_REPO CAIRN_PASSWORD_FILE
cairn=build/backupd/cairn

echo "== cairn init"
$cairn init
echo "== cairn info"
$cairn info
echo "== cairn run -v (first: reads everything)"
$cairn run -v
echo "== cairn run -v (second: nothing changed, nothing read)"
$cairn run -v
echo "== cairn snapshots"
$cairn snapshots
echo "== cairn ls -l pgdb"
$cairn ls -l pgdb
echo "== cairn restore files --target $demo/restored"
$cairn restore files --target "$demo/restored"
diff -r "$demo/data" "$demo/restored$demo/data" && echo "restored tree is identical"

# The mount: every snapshot of every job as one read-only tree.  It stays
# mounted at the end so it can be looked at; "fusermount3 -u" unmounts it.
mnt=$demo/restore
mkdir -p "$mnt"
echo "== cairn mount $mnt"
CAIRNFS=$PWD/build/fusefs/cairnfs $cairn mount "$mnt"
echo "== ls $mnt $mnt/pgdb"
ls "$mnt"
ls -l "$mnt/pgdb"
echo "== cat $mnt/pgdb/latest/pgdump.sql"
cat "$mnt/pgdb/latest/pgdump.sql"
echo "== cp -a $mnt/files/latest$demo/data $demo/copied"
rm -rf "$demo/copied"
cp -a "$mnt/files/latest$demo/data" "$demo/copied"
diff -r "$demo/data" "$demo/copied" && echo "the copy from the mount is identical"
echo "== still mounted at $mnt (unmount: fusermount3 -u $mnt)"
