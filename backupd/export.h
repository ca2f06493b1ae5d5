/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * `cairn export`: a snapshot, or a subtree of it, as an archive written
 * with libarchive, read through the index as the mount and restore read
 * it (bk_tree_resolve, bk_content_pread).
 *
 * Entries are named as `cairn restore` would create them below its
 * target: the root's children as "name", "dir/", "dir/file"; a PATH as
 * its last component and what is below it.  Directories come before their
 * contents, in the index's (memcmp) order.
 *
 * What each format keeps:
 *   pax      everything: ns times (atime/ctime when stored), numeric owners
 *            and their names when this host knows them, xattrs
 *            (SCHILY.xattr), POSIX ACLs (SCHILY.acl), hard links as links,
 *            symlinks, devices, fifos, sparse files as sparse (GNU sparse
 *            1.0), empty directories.  Sockets cannot be archived.
 *   gnutar   as pax but whole-second times and no xattrs or ACLs; sparse
 *            files are stored with their holes as zeros.
 *   zip      files, directories, symlinks, modes, owners (ux), second
 *            times; each hard link as a copy; no devices, fifos, sockets,
 *            xattrs or ACLs.
 * An entry the format cannot hold is skipped with a warning naming it.
 */

#include <stdbool.h>
#include <stdint.h>

#include "repo.h"

enum bk_export_format {
        BK_EXPORT_PAX,
        BK_EXPORT_GNUTAR,
        BK_EXPORT_ZIP,
};

/* "pax", "gnutar" (or "gnu"), "zip".  -EINVAL (not logged). */
int bk_export_format_parse(const char *s, enum bk_export_format *ret);

struct bk_export_stats {
        uint64_t files, dirs, symlinks, others;  /* entries written (hard links count as files) */
        uint64_t bytes;                          /* file data read from the repository */
        uint64_t skipped;                        /* entries the format cannot hold (warned) */
};

/* Write @path ("" or "/": the whole snapshot) of the snapshot whose root
 * tree is @root to @fd as an archive in @format, inside one read
 * transaction of the index.  Does not close @fd.
 *
 * Returns 0; -ENOENT/-ENOTDIR for a bad @path (logged); -EBADMSG when
 * data or a directory cannot be read (a damaged or missing chunk; logged
 * naming the path in the snapshot); -EIO or -errno when writing fails.
 * After a failure what was written to @fd is not a complete archive: the
 * end of the archive is never written, and for a stream a last block that
 * no reader takes for a header follows, so that `tar` and `unzip` fail on
 * it instead of listing a shorter archive.  @ret_stats may be NULL. */
int bk_export_fd(struct cairn_repo *r, const uint8_t root[CAIRN_ID_SIZE], const char *path,
                 enum bk_export_format format, int fd, struct bk_export_stats *ret_stats);

/* bk_export_fd() to @out: NULL or "-" is stdout (refused with -ENOTTY
 * when it is a terminal).  A regular file (new or replaced) is written
 * under a temporary name in its directory with mode 0600 (the archive
 * may hold files only root can read), fsynced and renamed into place only
 * when complete, so a failed export leaves no partial file and an
 * existing one untouched; anything else (a fifo, /dev/stdout) is written
 * directly.  Returns as bk_export_fd(), errors about @out logged. */
int bk_export(struct cairn_repo *r, const uint8_t root[CAIRN_ID_SIZE], const char *path, enum bk_export_format format,
              const char *out, struct bk_export_stats *ret_stats);
