/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cairn sync: an offsite copy of a repository.
 *
 * What is copied is what never changes: config, keys/NAME, packs/xx/ID and
 * snapshots/ID.  Never index/ (it holds plaintext names and stays on the
 * host; `cairn index rebuild` makes it again from a copy) nor locks/.
 *
 * DEST is a local directory (created if missing), or "rclone:REMOTE:PATH"
 * for anything rclone(1) reaches, run as a subprocess: `rclone lsf` to
 * list, `rclone copy --files-from-raw` to copy, `rclone deletefile` to
 * delete, `rclone cat` for DEST's config.
 *
 * Order: config and keys, then packs, then the snapshot files; the
 * snapshot files to copy are listed before the packs, and a snapshot file
 * is only ever published after its packs, so a copy interrupted at any
 * point never has a snapshot file whose packs are missing.  A file already
 * at DEST with the source's size is skipped (names are content hashes, key
 * files have random names; DEST's config must be the source's, byte for
 * byte).  Local copies are
 * written to DIR/.tmp-sync-XXXX, fsynced, renamed, and the directory
 * fsynced.  DEST must be empty or a copy of this repository: another
 * repository's copy, or a directory holding other files, is refused.
 *
 * --delete then removes from DEST the snapshot files the source no longer
 * has, then the packs it no longer has (so again no snapshot at DEST ever
 * lacks a pack), and a local DEST's leftover .tmp-sync-* files.
 *
 * Locking: the caller holds the source repository's lock shared, so no
 * prune deletes a pack under the copy; backups may run beside it (what
 * they add is copied by the next sync).  A local DEST directory is
 * flock()ed exclusively for the run, so two syncs to it do not overlap.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "verify-copy.h"

struct cairn_repo;

struct bk_sync_options {
        bool delete_gone;               /* --delete */
        bool dry_run;                   /* say what would be done; change nothing */
        bool list;                      /* print a line per file copied or deleted on @out */
        FILE *out;
        int rclone_verbosity;           /* < 2: rclone -q (errors only); 2: rclone -v */
};

struct bk_sync_stats {
        uint64_t copied, bytes;         /* files copied and their bytes */
        uint64_t skipped;               /* files already at DEST */
        uint64_t deleted, deleted_bytes;
};

/* "rclone:REMOTE:PATH" (true) or a local path. */
bool bk_sync_dest_is_rclone(const char *dest);

/* Copy @r to @dest (see above).  *ret (may be NULL) receives what was
 * done, also on failure.  0, or -errno (logged, naming the file):
 * -EXDEV DEST holds a copy of another repository, -ENOTEMPTY DEST holds
 * other files, -EBUSY another sync to DEST runs, -ECHILD rclone failed. */
int bk_sync(struct cairn_repo *r, const char *dest, const struct bk_sync_options *o, struct bk_sync_stats *ret);

/* Verify the copy at @dest (verify-copy.h: a local directory is read
 * itself, an rclone DEST by its listing).  Returns as
 * cairn_copy_verify_dir(); -ECHILD when rclone failed. */
int bk_sync_verify(struct cairn_repo *r, const char *dest, const struct cairn_copy_verify_options *vo,
                   struct cairn_copy_verify_stats *ret);
