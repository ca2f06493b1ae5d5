/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Reading a snapshot's tree and file contents through the index, and
 * `cairn restore`: writing a subtree back to a directory exactly as the
 * entries describe it, as `cp -a` / `rsync -aHAXS` from the mount would
 * (sparse files, hard links, symlinks as links, devices, fifos, sockets,
 * owners, full modes, xattrs and POSIX ACLs, ns times).
 *
 * A snapshot root is a tree id only: the root directory has no stored
 * entry, so restoring the root fills the target directory and leaves the
 * target's own metadata alone.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lmdb-index.h"
#include "repo.h"
#include "tree.h"

/* Find the entry at @path below tree @root.  @path is "" or "/" for the
 * root directory itself, else '/'-separated components (empty components
 * are ignored, so "/a//b/" is "a/b").  When the path is the root,
 * *ret_is_root is true and *ret_entry is a synthesized directory entry
 * (mode 040755, owner 0, times 0, ref = @root).  @ret_entry borrows from
 * @t (valid until @t ends); either output may be NULL.
 * Returns 0, -ENOENT (no such entry; also for components that cannot be
 * names, such as "." or ".."), -ENOTDIR (a non-final component, or a final
 * one followed by '/', is not a directory), or an index error.  Not
 * logged: the caller names the path. */
int bk_tree_resolve(struct cairn_txn *t, const uint8_t root[CAIRN_ID_SIZE], const char *path,
                    struct cairn_entry *ret_entry, bool *ret_is_root);

/* Read @len bytes of content @content (all-zero id: the empty content) at
 * @offset into @buf; holes read as zeros.  Returns the bytes read (short
 * only at the end of the content; 0 at or past it) or -errno:
 * -ENOENT (content or one of its chunks unknown), -EBADMSG (a damaged
 * chunk, logged with the content and chunk ids), -ENOMEM.  Memory: one
 * decoded chunk at a time. */
ssize_t bk_content_pread(struct cairn_repo *r, struct cairn_txn *t, const uint8_t content[CAIRN_ID_SIZE],
                         void *buf, size_t len, uint64_t offset);

struct bk_restore_options {
        bool overwrite;   /* replace existing non-directories and merge into existing
                           * directories, instead of refusing every existing name */
};

struct bk_restore_stats {
        uint64_t files, dirs, symlinks, others;  /* entries restored (hard links count as files) */
        uint64_t bytes;                          /* file data written (holes and links excluded) */
        uint64_t errors;                         /* entries that failed, each logged with its path */
};

/* Restore @path of the snapshot whose root tree is @root into directory
 * @target (created, with missing parents, if needed; the operator's path,
 * so symlinks in it are followed).  The entry at @path becomes
 * target/<its last component>; when @path is the root, the root's
 * children go directly into @target.
 *
 * Everything below @target is created relative to directory fds, never
 * following a symlink, so nothing restored (or found) there can redirect
 * a write elsewhere.  An existing name is refused (an error for that
 * entry) unless @o->overwrite; with it, non-directories are replaced and
 * existing directories merged into, and a directory in the way of a
 * non-directory is still refused.
 *
 * A failing entry (damaged or missing chunk, an existing name, a failed
 * mknod or chown, ...) is logged with its path and counted in
 * stats.errors; a partially written file is removed.  The restore goes on
 * with the rest and then returns -EIO.  Errors that would fail every
 * entry (-ENOSPC, -EDQUOT, -EROFS, -ENOMEM, -EMFILE, index failures) stop
 * it at once.  @o may be NULL (defaults); @ret_stats may be NULL.
 * Returns 0, -ENOENT/-ENOTDIR (bad @path, logged), -EIO, or -errno. */
int bk_restore(struct cairn_repo *r, const uint8_t root[CAIRN_ID_SIZE], const char *path, const char *target,
               const struct bk_restore_options *o, struct bk_restore_stats *ret_stats);
