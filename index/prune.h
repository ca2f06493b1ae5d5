/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Prune: give back the space of blobs that no snapshot needs any more.
 *
 *   mark    every blob reachable from a snapshot row of the index: the
 *           root tree, every tree below it (through the `trees` table),
 *           every content a file names and the data chunks of that content
 *           (through `contents`; holes and empty files name nothing).
 *           Shared trees and contents are walked once; memory is one hash
 *           set entry per used blob, whatever the size of the files.
 *   sweep   the `chunks` table, pack by pack: used and unused blobs and
 *           their stored bytes.
 *   delete  packs holding no used blob: their rows (chunks, packs, and the
 *           trees/contents rows of their tree and content blobs) go in one
 *           write transaction; the files are unlinked after it commits.
 *   repack  packs with unused blobs whose used blobs fill less than
 *           repack_threshold_pct of the file: the used blobs are verified
 *           (decoded; a damaged pack is reported and left as it is) and
 *           copied as stored into a new pack, which is published durably;
 *           then one write transaction points their `chunks` rows at it,
 *           adds its `packs` row and drops the old packs' rows; then the
 *           old files are unlinked.
 *   tidy    pack files that no index row names (a backup that crashed
 *           between pack and index) and `.tmp-*` files in packs/ and
 *           snapshots/, once older than grace_ns.
 *
 * Snapshot files without an index row (a backup or forget that died
 * between the two) first get their rows back (cairn_snapshot_adopt_orphans;
 * not in a dry run, which then counts their data as unused): the files are
 * the truth, and a prune that only saw rows would delete what they name.
 *
 * A crash at any point leaves a valid repository: rows never name a pack
 * before it is durable, and a pack whose rows are gone is at worst a file
 * that the next prune removes (or that `cairn index rebuild` re-indexes).
 *
 * Locking: the caller holds the repository's exclusive lock
 * (cairn_repo_lock(r, "repository", true, …)), so no backup runs
 * meanwhile.  That matters: a backup deduplicates against the index, and
 * a blob it found there must not be deleted before its snapshot names it.
 *
 * Readers (the mount, restore, another process) take no lock and need
 * none.  A reader whose read transaction began before a repack committed
 * still sees the old location; once prune has unlinked the old pack,
 * opening it fails with ENOENT and cairn_repo_blob_read() looks the blob up
 * again in a fresh transaction, which sees the committed new location.
 * Rows and files change in that order (new pack durable → rows committed
 * → old file unlinked), so every location a reader can see names a file
 * that exists or is being retried; and a reader that had the old file
 * open keeps reading it, since unlinking does not take data from an open
 * file.  So deleting the replaced pack right after the commit is safe for
 * readers and no grace period is needed for them.  The packs deleted for
 * holding only unused blobs hold nothing a remaining snapshot can reach;
 * only a reader still walking a forgotten snapshot can lose them.
 *
 * Never blocks on readers: LMDB readers do not hold up a writer.
 */

#include <stdbool.h>
#include <stdint.h>

struct cairn_repo;

#define CAIRN_PRUNE_REPACK_THRESHOLD_PCT 50
#define CAIRN_PRUNE_GRACE_NS (3600LL * 1000000000LL)

struct cairn_prune_options {
        bool dry_run;                   /* compute and report, change nothing */
        unsigned repack_threshold_pct;  /* default 50; 0 never repacks */
        int64_t grace_ns;               /* temp files and unindexed packs younger than this are left alone; default 1 h */
};

/* dry_run false, the defaults above. */
void cairn_prune_options_default(struct cairn_prune_options *o);

struct cairn_prune_stats {
        uint64_t packs_total;           /* packs in the index before prune */
        uint64_t packs_deleted;         /* indexed packs without a used blob, plus unindexed pack files past grace */
        uint64_t packs_repacked;        /* old packs whose used blobs were copied into new packs */
        uint64_t blobs_used, blobs_unused;  /* `chunks` rows reachable / not reachable from a snapshot */
        uint64_t bytes_freed;           /* pack and temporary file bytes deleted, minus the new packs written
                                         * (a dry run counts the copied blobs instead of the new packs) */
        uint64_t bytes_repacked;        /* stored bytes copied into new packs */
};

/* Prune @r (see above).  @o NULL: the defaults.  *ret (may be NULL)
 * receives the statistics, also of a dry run.
 * Returns 0, or:
 *   -EBADMSG  the index does not hold every blob a snapshot needs (a
 *             missing row or a snapshot record that does not parse):
 *             nothing is deleted; `cairn check` / `cairn index rebuild`
 *   -ENOSPC, -EIO, -ENOMEM  on the way; what was committed before stays
 *             consistent (see above)
 * A damaged pack met while repacking is logged and left alone; it does not
 * fail the prune. */
int cairn_prune(struct cairn_repo *r, const struct cairn_prune_options *o, struct cairn_prune_stats *ret);
