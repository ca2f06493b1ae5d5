/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The LMDB index (REPO/index/data.mdb): derived from packs and snapshot
 * files, rebuilt by cairn_repo_rebuild_index().  Tables (LMDB named dbs):
 *
 *   chunks     blob id (32)                      → pack id (32) | offset (le64) | stored (le32)
 *                                                  | raw (le32) | type (u8)
 *   packs      pack id (32)                      → size (le64) | blob count (le32)
 *   trees      tree id (32) | name               → encoded entry (tree.h)
 *   contents   content id (32) | end offset (be64) → chunk id (32) | length (le64) | flags (u8)
 *   snapshots  job | 0x00 | start time ns (be64)  → snapshot id (32) | snapshot JSON
 *
 * A directory is the key range of its tree id: lookup is a point read,
 * readdir a cursor walk.  A file offset maps to its chunk with one
 * MDB_SET_RANGE on (content id, offset + 1) since keys hold the chunk's
 * end offset.  Rows are written only for blobs that are already in a
 * published pack.
 *
 * Threads: the environment is opened with MDB_NOTLS; any number of read
 * transactions may be live in any threads at once (one per thread at a
 * time is the rule of thumb), plus one write transaction per process
 * (LMDB serializes writers across processes).  Data returned from a
 * transaction (names, entries) is borrowed until it ends or is reset.
 * Never use an index after fork().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "tree.h"

struct cairn_index;
struct cairn_txn;

enum cairn_index_table {
        CAIRN_TABLE_CHUNKS,
        CAIRN_TABLE_PACKS,
        CAIRN_TABLE_TREES,
        CAIRN_TABLE_CONTENTS,
        CAIRN_TABLE_SNAPSHOTS,
        _CAIRN_TABLE_MAX,
};

const char *cairn_index_table_name(enum cairn_index_table t);

/* Open (creating if needed, mode 0600) the environment in directory
 * @path, which must exist.  -errno. */
int cairn_index_open(const char *path, struct cairn_index **ret);
struct cairn_index *cairn_index_free(struct cairn_index *idx);   /* accepts NULL */

/* For the whole process, before it opens an index: @on tells the kernel
 * that the map is read at random (madvise MADV_RANDOM), so a page fault
 * reads its page and not read_ahead_kb around it.  For a program whose
 * reads are few and scattered, like the mount, which must answer from a
 * cold cache in milliseconds; a program that walks most of the index is
 * better off with the default (off). */
void cairn_index_set_random_access(bool on);

/* Read into the page cache, without opening the environment, the pages
 * of the index in directory @path that a first walk of @tables needs:
 * each table's branch pages, and its leaves too where @leaves[i].  The
 * pages of one level are asked for at once, so that a cold disk serves
 * them in parallel rather than one per B-tree step.  Only a hint, for a
 * thread of its own: it reads the data file's layout itself (lmdb 0.9,
 * format version 1), and stops quietly at anything else. */
void cairn_index_warm(const char *path, const char *const *tables, const bool *leaves, size_t n_tables);

/* Read the whole data file of @idx into the page cache, front to back, a
 * MiB at a time, when it is no bigger than @max_bytes: with random access
 * set, a walk of many directories would otherwise read it page by page.
 * Stops early once *@stop is set (read with an atomic load).  Blocks: for
 * a thread of its own.  1 when read, 0 when too big or stopped, -errno. */
int cairn_index_prefetch(struct cairn_index *idx, uint64_t max_bytes, const bool *stop);

/* Transactions.  commit and abort free the txn; abort accepts NULL. */
int cairn_index_txn_begin(struct cairn_index *idx, bool write, struct cairn_txn **ret);
int cairn_index_txn_commit(struct cairn_txn *t);
void cairn_index_txn_abort(struct cairn_txn *t);
/* Reuse of a read transaction: reset releases its snapshot of the
 * database, renew takes a fresh one (cheaper than abort + begin). */
void cairn_index_txn_reset(struct cairn_txn *t);
int cairn_index_txn_renew(struct cairn_txn *t);
static inline void cairn_index_txn_abortp(struct cairn_txn **t) {
        cairn_index_txn_abort(*t);
}

/* chunks */
struct cairn_chunk_loc {
        uint8_t pack[CAIRN_ID_SIZE];
        uint64_t offset;
        uint32_t stored_len;
        uint32_t raw_len;
        uint8_t type;                  /* enum cairn_blob_type */
};
int cairn_index_chunk_put(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], const struct cairn_chunk_loc *loc);
/* -ENOENT when absent. */
int cairn_index_chunk_get(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], struct cairn_chunk_loc *ret);

/* packs */
int cairn_index_pack_put(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], uint64_t size, uint32_t count);
int cairn_index_pack_get(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], uint64_t *ret_size, uint32_t *ret_count);

/* trees: store every entry of a parsed tree blob (cairn_tree_next) under
 * @tree_id.  Idempotent. */
int cairn_index_tree_put_blob(struct cairn_txn *t, const uint8_t tree_id[CAIRN_ID_SIZE], const uint8_t *blob, size_t len);
/* Point lookup; *ret borrows from the txn. -ENOENT. */
int cairn_index_tree_lookup(struct cairn_txn *t, const uint8_t tree_id[CAIRN_ID_SIZE],
                            const char *name, size_t name_len, struct cairn_entry *ret);

/* Cursor walk of one directory in name order, starting after @after (NULL:
 * from the first entry) so readdir can resume from an offset name. */
struct cairn_tree_iter;
int cairn_index_tree_iter_new(struct cairn_txn *t, const uint8_t tree_id[CAIRN_ID_SIZE],
                              const char *after, size_t after_len, struct cairn_tree_iter **ret);
/* 1 with borrowed name/entry, 0 at the end, <0 error. */
int cairn_index_tree_iter_next(struct cairn_tree_iter *it, const char **ret_name, size_t *ret_name_len,
                               struct cairn_entry *ret_entry);
/* The same, with the entry as stored (encoded, as in the tree blob),
 * borrowed from the txn: `cairn check --read-data` compares the two. */
int cairn_index_tree_iter_next_raw(struct cairn_tree_iter *it, const char **ret_name, size_t *ret_name_len,
                                   const uint8_t **ret_entry, size_t *ret_entry_len);
struct cairn_tree_iter *cairn_index_tree_iter_free(struct cairn_tree_iter *it);

/* contents */
int cairn_index_content_put(struct cairn_txn *t, const uint8_t content_id[CAIRN_ID_SIZE],
                            const struct cairn_content_chunk *chunks, size_t n);
/* The chunk holding byte @offset: *ret_chunk and its start offset in the
 * file.  -ENOENT when the content is unknown or @offset is past its end. */
int cairn_index_content_find(struct cairn_txn *t, const uint8_t content_id[CAIRN_ID_SIZE], uint64_t offset,
                             struct cairn_content_chunk *ret_chunk, uint64_t *ret_start);
/* Total length of a content (end offset of its last chunk); -ENOENT. */
int cairn_index_content_size(struct cairn_txn *t, const uint8_t content_id[CAIRN_ID_SIZE], uint64_t *ret_size);

/* snapshots */
int cairn_index_snapshot_put(struct cairn_txn *t, const char *job, int64_t start_ns,
                             const uint8_t snap_id[CAIRN_ID_SIZE], const char *json, size_t json_len);
int cairn_index_snapshot_del(struct cairn_txn *t, const char *job, int64_t start_ns);
/* Walk snapshots of @job (NULL: all jobs) in (job, time) order.
 * The callback returns <0 to stop with that error, 1 to stop with success.
 * @json is borrowed and not NUL-terminated. */
typedef int (*cairn_snapshot_cb)(const char *job, int64_t start_ns, const uint8_t snap_id[CAIRN_ID_SIZE],
                                 const char *json, size_t json_len, void *userdata);
int cairn_index_snapshot_foreach(struct cairn_txn *t, const char *job, cairn_snapshot_cb cb, void *userdata);

/* Deletion (prune).  cairn_index_del removes the row keyed by exactly @id
 * (chunks, packs); cairn_index_del_prefix every row whose key starts with
 * @id (a tree's entries, a content's chunks).  An absent row is not an
 * error.  Write transactions only. */
int cairn_index_del(struct cairn_txn *t, enum cairn_index_table table, const uint8_t id[CAIRN_ID_SIZE]);
int cairn_index_del_prefix(struct cairn_txn *t, enum cairn_index_table table, const uint8_t id[CAIRN_ID_SIZE]);

/* Raw dump of a table in key order, for tests and `cairn index dump`.
 * Stops early when @cb returns non-zero (returned). */
typedef int (*cairn_raw_cb)(const void *key, size_t klen, const void *val, size_t vlen, void *userdata);
int cairn_index_foreach_raw(struct cairn_txn *t, enum cairn_index_table table, cairn_raw_cb cb, void *userdata);
