/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The catalog: which jobs and snapshots the mount shows at its top two
 * levels, and under which names.  No FUSE in here.
 *
 *   /<job>/<time>            a complete snapshot, time = its start in
 *                            ISO 8601 UTC to the second
 *   /<job>/<time>.<n>        the n-th (n >= 2) snapshot of that job
 *                            started within the same second
 *   /<job>/<time>.partial    a partial snapshot (some paths could not be
 *                            read; `cairn snapshots` lists which); also
 *                            <time>.<n>.partial
 *   /<job>/latest            symlink to the newest complete snapshot
 *
 * A catalog is immutable once loaded and shared by reference count; the
 * mount loads a new one when the index changes and swaps it in.
 * Snapshot objects are reference counted on their own and carried over
 * from the previous catalog when their id is unchanged, so a node that
 * holds one keeps its identity across reloads.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "lmdb-index.h"

struct fs_snap {
        unsigned refs;                   /* atomic */
        char *job;
        uint8_t id[CAIRN_ID_SIZE];
        uint8_t root[CAIRN_ID_SIZE];     /* root tree id */
        int64_t start_ns, end_ns;
        bool partial;
        uint64_t ino;                    /* st_ino of its root directory */
};

struct fs_job_snap {
        struct fs_snap *snap;            /* a reference */
        char name[64];                   /* its directory name in this catalog */
};

struct fs_job {
        char *name;
        struct fs_job_snap *snaps;       /* by start time, oldest first */
        size_t n_snaps;
        const struct fs_snap *latest;    /* newest complete, or NULL */
        uint64_t ino;
};

struct fs_catalog {
        unsigned refs;                   /* atomic */
        struct fs_job *jobs;             /* by name (memcmp order, as the index sorts) */
        size_t n_jobs;
};

struct fs_snap *fs_snap_ref(struct fs_snap *s);
struct fs_snap *fs_snap_unref(struct fs_snap *s);   /* accepts NULL, returns NULL */

/* Load the catalog from the index's snapshots table in @t.  Snapshot
 * objects of @prev (may be NULL) with the same id are reused.  Rows whose
 * record cannot be parsed are logged and left out.  -ENOMEM or an index
 * error. */
int fs_catalog_load(struct cairn_txn *t, const struct fs_catalog *prev, struct fs_catalog **ret);

struct fs_catalog *fs_catalog_ref(struct fs_catalog *c);
struct fs_catalog *fs_catalog_unref(struct fs_catalog *c);   /* accepts NULL, returns NULL */

/* Lookups; the results borrow from @c. NULL when absent. */
const struct fs_job *fs_catalog_job(const struct fs_catalog *c, const char *name, size_t len);
const struct fs_job_snap *fs_job_snap(const struct fs_job *j, const char *name, size_t len);
/* The name of @latest in @j ("" when NULL). */
const char *fs_job_latest_name(const struct fs_job *j);

/* Same jobs, same snapshots under the same names, same latest? */
bool fs_job_equal(const struct fs_job *a, const struct fs_job *b);
bool fs_catalog_equal(const struct fs_catalog *a, const struct fs_catalog *b);

/* The st_ino of name @name in a directory whose st_ino is @parent_ino,
 * and of a hard-link group of snapshot @snap_id: stable across mounts,
 * never 0 or 1 (FUSE_ROOT_ID). */
uint64_t fs_ino_child(uint64_t parent_ino, const char *name, size_t len);
uint64_t fs_ino_hardlink(const uint8_t snap_id[CAIRN_ID_SIZE], uint64_t group);
