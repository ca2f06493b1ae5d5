/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cairnfs: the state of one mount, shared by the FUSE handlers (ops.c),
 * the catalog refresher and main.c.
 *
 * Lock order: cat_lock, then the node table's lock (node.c), then a
 * chunk cache shard's lock; none is held across an index read, a blob
 * read or a reply to the kernel.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "catalog.h"
#include "chunk-cache.h"
#include "node.h"
#include "repo.h"

struct fs_ctx {
        struct cairn_repo *repo;
        struct cairn_index *index;
        struct cairn_chunk_cache *cache;
        struct fs_nodes *nodes;
        struct fuse_session *se;

        pthread_mutex_t cat_lock;
        struct fs_catalog *cat;          /* protected by cat_lock */

        /* the refresher thread */
        pthread_t refresher;
        bool refresher_started;
        pthread_mutex_t stop_lock;
        pthread_cond_t stop_cond;
        bool stopping;                   /* protected by stop_lock */
        unsigned refresh_ms;

        uid_t uid;                       /* owner of the synthetic directories */
        gid_t gid;
        int64_t mount_ns;
        bool default_permissions;
        double virtual_timeout;          /* root, jobs, latest: they change */
        double tree_timeout;             /* inside snapshots: immutable */
        unsigned readahead_chunks;
};

extern const struct fuse_lowlevel_ops fs_ops;

/* Load the catalog for the first time (before mounting). */
int fs_catalog_init(struct fs_ctx *ctx);
/* Start / stop the thread that reloads the catalog every refresh_ms and
 * invalidates the kernel's caches of what changed. */
int fs_refresher_start(struct fs_ctx *ctx);
void fs_refresher_stop(struct fs_ctx *ctx);
