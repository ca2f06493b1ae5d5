/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Check: is everything a snapshot needs there, and intact?  (`cairn check`)
 *
 *   snapshots  every row of the index's `snapshots` table and every file
 *              in REPO/snapshots/: the file reads and verifies (codec),
 *              the row's id is the id of its JSON, the JSON parses and is
 *              the file's, byte for byte.  A file without a row is a
 *              warning only (a backup committing right now, or a crash
 *              between the snapshot file and its row): it is verified but
 *              its tree is not walked.
 *   packs      every pack in the `packs` table or named by a `chunks` row,
 *              each once: the file exists, has the size the `packs` row
 *              records, its trailer parses and authenticates, lists as
 *              many blobs as the row says, and every `chunks` row naming
 *              the pack matches a trailer entry (type, offset, stored and
 *              raw length).
 *   read data  (read_data_pct > 0) the packs chosen (all, or that share of
 *              them at random, whole packs) are read start to end: every
 *              blob is decoded (GCM tag or SHA-256 of the plaintext), and
 *              the file's SHA-256 must be its name; the index rows of each
 *              tree and content blob found where the index places it
 *              (`trees` / `contents`) must be the blob's, byte for byte.
 *   trees      every snapshot's tree is walked through the index: every
 *              tree, content and data blob it needs has a `chunks` row of
 *              the right type, a tree or content with no rows in `trees` /
 *              `contents` must be an empty one (an unknown tree id is
 *              damage, never an empty directory), and none of them lies in
 *              a pack found damaged above.  Shared clean subtrees are
 *              walked once; memory is one hash-set entry per tree and
 *              content, plus one row (56 bytes) per `chunks` row.
 *
 * Damage is reported twice: as the problem (a missing or damaged pack,
 * a blob that fails its integrity check, a missing index row ...), each
 * logged with log_error() and passed to @on_problem once, and as its
 * consequences: every path of every snapshot that cannot be read in full
 * because of it, passed to @on_damage (not logged).
 *
 * Everything is read in one read transaction, so a backup committing
 * beside the check is not seen half-way.  Locking: the caller holds the
 * repository lock shared (cairn_repo_lock(r, "repository", false, ...)),
 * so that no prune deletes or moves packs under the check; backups may run
 * beside it.  Pack files that no index row names (a crashed backup's, for
 * prune to remove) are not looked at.
 */

#include <stdbool.h>
#include <stdint.h>

#include "crypto.h"

struct cairn_repo;

/* One problem.  Everything is borrowed for the duration of the call. */
struct cairn_check_problem {
        int error;                      /* -ENOENT something is missing, -EBADMSG damaged or inconsistent */
        const char *message;            /* as logged, without "error: " */
        const uint8_t *pack;            /* the pack it concerns, or NULL */
        const uint8_t *blob;            /* the blob it concerns, or NULL */
        const uint8_t *snapshot;        /* the snapshot it concerns, or NULL */
};

/* One path of a snapshot that cannot be read in full.  Borrowed. */
struct cairn_check_damage {
        const char *job;
        int64_t start_ns;
        const uint8_t *snapshot;        /* its id */
        const char *path;               /* "/srv/app/f"; directories end in '/' ("/" is the root);
                                         * NULL: the snapshot's record (its file or index row) */
};

struct cairn_check_options {
        /* 0: structure only; 100: read every pack; 1..99: read that share
         * of the packs (rounded up), chosen at random. */
        unsigned read_data_pct;
        void (*on_problem)(const struct cairn_check_problem *p, void *userdata);   /* may be NULL */
        void (*on_damage)(const struct cairn_check_damage *d, void *userdata);     /* may be NULL */
        void *userdata;
};

struct cairn_check_stats {
        uint64_t snapshots;             /* checked: index rows and files without a row */
        uint64_t packs;                 /* checked (structure) */
        uint64_t packs_read;            /* read in full */
        uint64_t blobs;                 /* `chunks` rows */
        uint64_t blobs_read;            /* decoded while reading packs */
        uint64_t bytes_read;            /* of pack files read in full */
        uint64_t errors;                /* problems (each passed to on_problem) */
        uint64_t damaged_snapshots;     /* snapshots with at least one damaged path */
        uint64_t damaged_paths;         /* calls of on_damage */
};

/* Check @r (see above).  @o NULL: structure only, no callbacks.  *ret
 * (may be NULL) receives the statistics, also when damage is found.
 * Returns 0 when nothing is wrong, or:
 *   -EBADMSG   the check ran to its end and found ret->errors problems
 *   -ENOMEM, -EIO, ...  the check could not finish (logged); what it
 *              found so far was reported
 * Not thread-safe with respect to @r's index swapping (rebuild). */
int cairn_repo_check(struct cairn_repo *r, const struct cairn_check_options *o, struct cairn_check_stats *ret);
