/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The write side of a repository: blobs in, packs and index rows out.
 *
 * Blobs are deduplicated against the index and the pack being filled,
 * appended to a pack; when the pack reaches its target size (or on
 * cairn_store_flush) it is published durably and only then are its index
 * rows committed (chunks, packs, and the trees/contents rows of tree and
 * content blobs) in one write transaction.  A crash at any point leaves
 * either a pack nobody references (removed by prune) or a complete pack
 * with its rows.
 *
 * One store is used by one thread; the CPU-heavy part (cairn_codec_id and
 * cairn_codec_encode) can run on other threads before
 * cairn_store_put_encoded().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

struct cairn_repo;
struct cairn_store;

struct cairn_store_stats {
        uint64_t blobs_added, raw_added, stored_added;  /* new blobs */
        uint64_t blobs_dedup, raw_dedup;                /* already present */
        uint64_t packs_written;
};

int cairn_store_new(struct cairn_repo *r, struct cairn_store **ret);
/* Frees; a pack not yet flushed is discarded (its blobs are not in the
 * index, so nothing refers to them).  Accepts NULL. */
struct cairn_store *cairn_store_free(struct cairn_store *s);

/* 1 when the blob is already stored (index or pending pack), else 0. */
int cairn_store_contains(struct cairn_store *s, const uint8_t id[CAIRN_ID_SIZE]);

/* Add a plaintext blob: id, dedup, encode, append.  *ret_id receives the
 * id; *ret_added (may be NULL) whether it was new. */
int cairn_store_add(struct cairn_store *s, enum cairn_blob_type type, const void *data, size_t len,
                    uint8_t ret_id[CAIRN_ID_SIZE], bool *ret_added);

/* Add a blob encoded elsewhere.  @raw is needed for tree and content
 * blobs (their index rows come from it); NULL for data.  Duplicates are
 * ignored (returns 0). */
int cairn_store_put_encoded(struct cairn_store *s, enum cairn_blob_type type, const uint8_t id[CAIRN_ID_SIZE],
                            const void *stored, size_t stored_len, const void *raw, size_t raw_len);

/* Publish the pending pack and commit its rows.  No-op when empty. */
int cairn_store_flush(struct cairn_store *s);

const struct cairn_store_stats *cairn_store_stats(const struct cairn_store *s);
