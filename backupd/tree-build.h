/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An in-memory directory tree that composes a snapshot's root from its
 * sources: path sources attach already-stored subtrees at their absolute
 * paths (etc/nginx), a command source adds one file (pgdump.sql), a
 * tar-command source adds every archive entry by path.  bk_tree_store()
 * then writes the tree blobs bottom-up.
 *
 * Paths are relative, '/'-separated, without "." or ".." components (the
 * caller sanitizes; bk_tree_add refuses them with -EINVAL).  Missing
 * intermediate directories are created with mode 0755, root-owned, time 0;
 * adding a directory later sets its metadata and keeps its children.
 */

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "tree.h"

struct bk_tree;

struct bk_tree *bk_tree_new(void);                   /* NULL on OOM */
struct bk_tree *bk_tree_free(struct bk_tree *t);     /* accepts NULL */

/* Add (or replace) the entry at @path, copying @e, its symlink target and
 * the xattrs.  A directory entry whose e->ref is non-zero is a stored
 * subtree (a leaf here); one with a zero ref gets the tree made of the
 * children added below it.  -EINVAL for a bad path, -ENOTDIR when a
 * non-directory is in the way, -EEXIST when a directory would replace a
 * stored subtree or a file would replace a directory with children. */
int bk_tree_add(struct bk_tree *t, const char *path, const struct cairn_entry *e,
                const struct cairn_xattr *xa, size_t n_xa);

/* Set the metadata of the root directory itself (default 0755 root). */
int bk_tree_set_root(struct bk_tree *t, const struct cairn_entry *e, const struct cairn_xattr *xa, size_t n_xa);

/* Store every directory that has children here as a tree blob, deepest
 * first, and return the root tree id. */
int bk_tree_store(struct bk_tree *t, struct cairn_store *s, uint8_t ret_root[CAIRN_ID_SIZE]);

/* Copy the xattrs of a decoded entry into an array of borrowed
 * cairn_xattr (pointing into e->xattrs); *ret malloc'd. */
int bk_entry_xattrs(const struct cairn_entry *e, struct cairn_xattr **ret, size_t *ret_n);
