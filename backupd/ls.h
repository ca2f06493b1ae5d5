/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * `cairn ls`: list a snapshot's tree straight from the index (no blob is
 * read), in three forms:
 *
 *   plain   one path per line, relative to the snapshot root with a
 *           leading '/', directories with a trailing '/'
 *   long    like `ls -l`: mode string, numeric uid and gid, size (or
 *           "major, minor" for devices), mtime (ISO 8601 UTC), path and
 *           " -> target" for symlinks
 *   json    one object per line: name, path, type ("file", "dir",
 *           "symlink", "fifo", "chr", "blk", "sock"), mode (permission
 *           bits as an octal string, e.g. "4755"), uid, gid, size,
 *           mtime_ns, nlink, hardlink_group (0: none), target (symlinks),
 *           rdev_major/rdev_minor (devices)
 *
 * Names are arbitrary bytes.  In plain and long output a backslash and
 * the bytes below 0x20 and 0x7f are written as "\ooo" (octal), so that
 * every entry stays on one line; in JSON a name or target that is not
 * UTF-8 has its invalid bytes replaced by U+FFFD, and the exact bytes are
 * given as lower-case hex in path_hex / name_hex / target_hex.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lmdb-index.h"
#include "repo.h"

struct bk_ls_options {
        bool recursive;      /* the whole subtree, parents before their children */
        bool json;           /* wins over long_format */
        bool long_format;
};

/* List @path ("" or "/" = the root) of the tree @root, read in @t, to
 * @out.  A directory lists its children (all descendants when
 * recursive), anything else just itself.  Entries come in name order.
 * Returns 0, -ENOENT / -ENOTDIR (no such path; logged), -EIO (writing
 * @out failed; logged), or an index error. */
int bk_ls(struct cairn_repo *r, struct cairn_txn *t, const uint8_t root[CAIRN_ID_SIZE], const char *path,
          const struct bk_ls_options *o, FILE *out);
