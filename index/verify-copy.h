/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Verify a copy of a repository (`cairn sync --verify`): does the copy
 * hold everything its own snapshots need?
 *
 * A copy holds what `cairn sync` copies: config, keys/, packs/xx/ID and
 * snapshots/ID, never index/ or locks/.  It is not opened as a
 * repository (cairn_repo_open would create index/ in it): it has the
 * source's config and key files, so the source repository's codec reads
 * it, and nothing is ever written to it.
 *
 *   cairn_copy_verify_dir()      a copy in a local directory.  Its config
 *                                is the source's, byte for byte, and every
 *                                key file of the source is there; every
 *                                snapshot file at the copy reads and
 *                                verifies; every pack trailer at the copy is
 *                                read (and a pack whose size differs from
 *                                the source's `packs` row is damage); every
 *                                tree, content and data blob each of the
 *                                copy's snapshots needs is listed by one of
 *                                those trailers with the right type, and the
 *                                tree and content blobs are read from the
 *                                copy's packs, not the source's.  So the copy
 *                                proves itself, also for snapshots the
 *                                source has forgotten.
 *   cairn_copy_verify_listing()  a copy known only by a listing (path and
 *                                size of every file, e.g. `rclone lsf`).
 *                                The config and the source's key files are
 *                                listed with the source's sizes; every
 *                                snapshot file listed is one the source
 *                                repository has (else it cannot be checked:
 *                                a problem); and for every blob such a
 *                                snapshot needs, walked through the source
 *                                repository, the pack the source's index
 *                                puts it in is listed with the size the
 *                                source's `packs` row records.
 *
 * A missing blob is reported as the pack the source's index puts it in
 * ("the copy lacks pack ID"), once, with the first snapshot and path that
 * need it; a blob the source does not know either is reported by blob id.
 * Then every snapshot of the copy that cannot be read in full is reported
 * once more ("snapshot JOB/TIME (ID) at the copy is incomplete").  Shared
 * subtrees are walked once; memory is one hash-set entry per tree and
 * content, plus (local copies) one entry (48 bytes) per blob of the copy.
 *
 * Each problem is logged with log_error() and passed to @on_problem.
 * Locking: the caller holds the source repository's lock shared, so that
 * no prune changes the source's packs under the walk.
 */

#include <stdbool.h>
#include <stdint.h>

#include "crypto.h"

struct cairn_repo;

/* One problem.  Everything is borrowed for the duration of the call. */
struct cairn_copy_problem {
        int error;                      /* -ENOENT missing at the copy, -EBADMSG damaged or inconsistent */
        const char *message;            /* as logged, without "error: " */
        const char *file;               /* the file at the copy ("packs/ab/ab12…", "config"), or NULL */
        const uint8_t *snapshot;        /* the snapshot it concerns, or NULL */
};

struct cairn_copy_verify_options {
        void (*on_problem)(const struct cairn_copy_problem *p, void *userdata);   /* may be NULL */
        void *userdata;
};

struct cairn_copy_verify_stats {
        uint64_t snapshots;             /* snapshot files at the copy */
        uint64_t incomplete_snapshots;  /* of those, cannot be read in full */
        uint64_t packs;                 /* pack files at the copy */
        uint64_t blobs;                 /* blobs looked up (each tree and content once) */
        uint64_t missing_packs;         /* packs the copy lacks (or holds with the wrong size) */
        uint64_t source_snapshots;      /* snapshot rows in the source's index */
        uint64_t behind;                /* of those, not at the copy (not an error: a sync is due) */
        uint64_t errors;                /* problems (each passed to on_problem) */
};

/* One file of a listed copy: @path relative to the copy's top ("config",
 * "keys/…", "packs/ab/…", "snapshots/…").  Borrowed. */
struct cairn_copy_file {
        const char *path;
        uint64_t size;
};

/* Verify the copy in the directory @dest_fd (@dest_name for messages).
 * @o may be NULL.  *ret (may be NULL) receives the statistics, also when
 * problems are found.  0 nothing is wrong; -EBADMSG the check ran to its
 * end and found ret->errors problems; other -errno: it could not finish
 * (logged). */
int cairn_copy_verify_dir(struct cairn_repo *r, int dest_fd, const char *dest_name,
                          const struct cairn_copy_verify_options *o, struct cairn_copy_verify_stats *ret);

/* Verify the copy @dest_name known by the listing @files[0..n) (any
 * order; files that are no part of a repository are ignored).  Returns
 * as cairn_copy_verify_dir(). */
int cairn_copy_verify_listing(struct cairn_repo *r, const struct cairn_copy_file *files, size_t n, const char *dest_name,
                              const struct cairn_copy_verify_options *o, struct cairn_copy_verify_stats *ret);
