/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Snapshot records and snapshot files (REPO/snapshots/ID).
 *
 * A record is JSON (jansson); the file holds
 *   "CAIRNSN\x01" | raw length (le32) | the JSON encoded with the repository
 *   codec (codec.h)
 * and its name ID is cairn_codec_id() of the JSON, so an encrypted
 * repository's snapshot files reveal nothing and any damage is detected.
 * Files are published atomically and never changed; forgetting a snapshot
 * deletes its file.  Each file has a row in the index's `snapshots` table.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "lmdb-index.h"

struct cairn_repo;

enum cairn_snapshot_status {
        CAIRN_SNAPSHOT_COMPLETE = 0,
        CAIRN_SNAPSHOT_PARTIAL = 1,   /* some paths could not be read: see errors */
};

struct cairn_snapshot_error {
        char *path;
        char *reason;
};

struct cairn_snapshot {
        char *job;
        char *host;
        int64_t start_ns, end_ns;
        uint8_t root[CAIRN_ID_SIZE];       /* root tree id */
        bool has_parent;
        uint8_t parent[CAIRN_ID_SIZE];     /* snapshot this one was incremental to */
        enum cairn_snapshot_status status;
        struct cairn_snapshot_error *errors;
        size_t n_errors;
        char **tags;
        size_t n_tags;
        char *log;                         /* command stderr and warnings, may be NULL */
        uint64_t files, dirs, bytes;       /* totals of the tree */
        uint64_t bytes_read;               /* file data actually read this run */
        uint64_t added_bytes;              /* raw bytes of new blobs */
        uint64_t stored_bytes;             /* stored bytes of new blobs */
};

/* All strings of a snapshot are owned by it. Accepts NULL, returns NULL. */
struct cairn_snapshot *cairn_snapshot_free(struct cairn_snapshot *s);
static inline void cairn_snapshot_freep(struct cairn_snapshot **s) {
        cairn_snapshot_free(*s);
}

/* Append an error (copies both strings). -ENOMEM. */
int cairn_snapshot_add_error(struct cairn_snapshot *s, const char *path, const char *reason);

/* JSON form; *ret malloc'd, NUL-terminated. */
int cairn_snapshot_to_json(const struct cairn_snapshot *s, char **ret, size_t *ret_len);
/* -EBADMSG when not a valid record (missing job, bad id hex, ...). */
int cairn_snapshot_from_json(const char *json, size_t len, struct cairn_snapshot **ret);

/* Write the snapshot file durably, then its index row (its own write
 * transaction).  The record must name a root tree already in the index. */
int cairn_snapshot_write(struct cairn_repo *r, const struct cairn_snapshot *s, uint8_t ret_id[CAIRN_ID_SIZE]);

/* Read and verify a snapshot file. -ENOENT, -EBADMSG. */
int cairn_snapshot_read_file(struct cairn_repo *r, const uint8_t id[CAIRN_ID_SIZE], struct cairn_snapshot **ret);

/* The verified JSON of a snapshot file, exactly as written (rebuild puts
 * these bytes in the index).  *ret malloc'd, NUL-terminated. */
int cairn_snapshot_read_json(struct cairn_repo *r, const uint8_t id[CAIRN_ID_SIZE], char **ret, size_t *ret_len);

/* Ids of every file in snapshots/ (temporary files skipped). *ret malloc'd. */
int cairn_snapshot_list_files(struct cairn_repo *r, uint8_t (**ret)[CAIRN_ID_SIZE], size_t *ret_n);

/* Give every snapshot file without an index row its row back (one write
 * transaction).  Such a file is what a backup leaves that died between its
 * snapshot file and its row, or a forget between the row and the file; the
 * files are the truth, so without this a prune would delete data a snapshot
 * file still names.  Call it holding the repository lock exclusively (no
 * backup may be between the two steps): prune and forget do.  Damaged
 * files are skipped (`cairn check` reports them).  *ret_n (may be NULL):
 * how many rows were added.  -ENOMEM, -EIO, -ENOSPC. */
int cairn_snapshot_adopt_orphans(struct cairn_repo *r, unsigned *ret_n);
/* The same inside write transaction @t, which the caller commits or
 * aborts; @dry_run only changes the words of the warnings (a prune
 * --dry-run adopts in a transaction it aborts, so that what it plans is
 * what a prune would do). */
int cairn_snapshot_adopt_orphans_txn(struct cairn_repo *r, struct cairn_txn *t, bool dry_run, unsigned *ret_n);

/* Delete a snapshot's file and index row. */
int cairn_snapshot_forget(struct cairn_repo *r, const struct cairn_snapshot *s, const uint8_t id[CAIRN_ID_SIZE]);

/* Find a snapshot in the index by what an operator types:
 *   "JOB" or "JOB/latest"     the newest complete snapshot of JOB
 *   "JOB/2026-11-21T01:00:00Z" the snapshot of JOB started in that second
 *                              (the newest, if several)
 *   "3fa4b2c1"                 an id prefix of at least 6 hex digits
 * *ret (may be NULL) receives the record, ret_id (may be NULL) its id.
 * -ENOENT (logged: no such job / snapshot / no complete snapshot),
 * -EEXIST for an ambiguous id prefix. */
int cairn_snapshot_resolve(struct cairn_txn *t, const char *spec, struct cairn_snapshot **ret,
                           uint8_t ret_id[CAIRN_ID_SIZE]);

/* "2026-11-21T01:00:00Z" (second precision, UTC) into buf[>= 21]. */
char *cairn_time_format(int64_t ns, char *buf, size_t size);
