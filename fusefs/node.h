/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The inode table of the mount: one node per inode the kernel holds, so
 * memory follows the kernel's dentry cache, not the repository.  No FUSE
 * in here.
 *
 * A node's address is its FUSE node id (the root is a static node, id 1).
 * Its st_ino is derived from where it is (catalog.h fs_ino_*), so it is
 * the same on every lookup and every mount; the node id only lives while
 * the kernel holds the inode.  Each node is found again by a key, so a
 * second lookup of a name the kernel still holds returns the same node:
 *
 *   job                (1, job name)
 *   latest             (job node id, "latest")
 *   snapshot root      (snapshot object address | 2, "")
 *   entry in a tree    (parent node id, name)
 *   hard-linked entry  (snapshot object address | 1, le64 group), so all
 *                      names of one hard-link group are one node
 *
 * Lookup counts follow the FUSE protocol: every reply that hands the
 * kernel a node (lookup, readdirplus) counts one; forget subtracts.  At
 * zero the node is freed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "tree.h"

enum fs_node_kind {
        FS_NODE_ROOT,
        FS_NODE_JOB,
        FS_NODE_LATEST,
        FS_NODE_SNAPSHOT,    /* a snapshot's root directory */
        FS_NODE_ENTRY,       /* an entry of a snapshot's tree */
};

struct fs_node {
        struct fs_node *hnext;         /* hash chain; protected by the table lock */
        uint64_t nlookup;              /* protected by the table lock */
        uint64_t key_parent;
        char *key_name;
        size_t key_len;

        enum fs_node_kind kind;
        struct fs_snap *snap;          /* a reference: SNAPSHOT and ENTRY */
        char *job;                     /* JOB and LATEST */
        uint64_t ino;                  /* st_ino */

        /* The stored entry (ENTRY; a synthetic directory for SNAPSHOT).
         * Immutable after the node is published. */
        uint8_t type;                  /* enum cairn_entry_type */
        uint32_t mode, uid, gid, nlink;
        uint64_t size, blocks, rdev;
        int64_t mtime_ns, ctime_ns, atime_ns;
        uint8_t ref[CAIRN_ID_SIZE];    /* content id (file) or tree id (directory) */
        char *target;                  /* symlink target, NUL-terminated */
        size_t target_len;
        uint8_t *xattrs;               /* encoded list, as in the entry */
        size_t xattrs_len;
        uint32_t n_xattrs;
};

struct fs_nodes;

int fs_nodes_new(struct fs_nodes **ret);
struct fs_nodes *fs_nodes_free(struct fs_nodes *t);    /* frees every node; accepts NULL */

/* The root node (id 1 is mapped to it by the caller). */
struct fs_node *fs_nodes_root(struct fs_nodes *t);

/* The node with this key, its lookup count raised by one; NULL if none. */
struct fs_node *fs_nodes_find_ref(struct fs_nodes *t, uint64_t key_parent, const char *name, size_t len);
/* Like fs_nodes_find_ref() but without touching the count; the pointer may
 * be stale by the time it is used (only for kernel cache invalidation). */
struct fs_node *fs_nodes_peek(struct fs_nodes *t, uint64_t key_parent, const char *name, size_t len);

/* A new node for the key, with fields filled from the arguments; the
 * caller fills the rest and then calls fs_nodes_intern().  NULL on OOM. */
struct fs_node *fs_node_new(enum fs_node_kind kind, uint64_t key_parent, const char *name, size_t len);
/* Free a node that was never interned.  Accepts NULL. */
void fs_node_discard(struct fs_node *n);

/* Publish @n (lookup count 1), or, when another thread published a node
 * with the same key first, discard @n and return that one with its count
 * raised.  Never fails. */
struct fs_node *fs_nodes_intern(struct fs_nodes *t, struct fs_node *n);

/* Subtract @n lookups; the node is freed at zero (never the root). */
void fs_nodes_forget(struct fs_nodes *t, struct fs_node *node, uint64_t n);

/* Nodes in the table now (not counting the root). */
size_t fs_nodes_count(struct fs_nodes *t);

/* Keys of snapshot roots and hard-link groups: tagged snapshot addresses. */
static inline uint64_t fs_key_snapshot(const struct fs_snap *s) {
        return (uint64_t) (uintptr_t) s | 2;
}
static inline uint64_t fs_key_hardlinks(const struct fs_snap *s) {
        return (uint64_t) (uintptr_t) s | 1;
}
