/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A bounded, thread-safe cache of decoded data chunks, with background
 * prefetch.  The mount reads file data through it: a chunk (about 1 MiB)
 * is read from its pack, decrypted and verified once, then served from
 * memory to every read that falls into it, by any thread.  A random
 * reader can instead ask for the one segment (codec.h, 64 KiB) that
 * holds its offset, which costs a read of that segment, not of the chunk.
 *
 * The cache is split into shards (by chunk id), each with its own lock,
 * hash table and LRU list, so threads reading different files rarely
 * meet.  A chunk being decoded is in the table as "loading": a second
 * reader of it waits for the first instead of decoding it again.
 * Failures are not cached: the next read tries again.
 *
 * Memory: the decoded bytes of unreferenced chunks stay below the
 * configured budget; chunks still referenced by a reader (or being
 * decoded) are never evicted, so the budget can be exceeded by at most
 * what is in flight.
 *
 * Prefetch: cairn_chunk_cache_prefetch() queues a chunk for the worker
 * threads to decode into the cache; when the queue is full the request is
 * dropped (prefetch is advice).
 */

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

struct cairn_repo;
struct cairn_chunk_cache;

/* A decoded chunk, or a piece of one: @data holds @len bytes of the chunk
 * from byte @base on (0 for a whole chunk).  Owned by the cache; valid
 * until released. */
struct cairn_chunk {
        const uint8_t *data;
        size_t len;
        uint64_t base;
};

struct cairn_chunk_cache_stats {
        uint64_t hits, misses, prefetched, waits, evictions, errors;
        uint64_t tables_prefetched;  /* segment tables loaded by prefetch_tables() */
        uint64_t bytes;          /* decoded bytes held now */
        uint64_t max_bytes;      /* the budget */
};

/* @max_bytes: budget of decoded bytes (at least 16 MiB is used).
 * @workers: prefetch threads (0: no prefetch).  @r must outlive the cache.
 * -ENOMEM, or -errno from pthread_create. */
int cairn_chunk_cache_new(struct cairn_repo *r, size_t max_bytes, unsigned workers, struct cairn_chunk_cache **ret);
/* Stops the workers and frees every chunk; no chunk may still be held.
 * Accepts NULL, returns NULL. */
struct cairn_chunk_cache *cairn_chunk_cache_free(struct cairn_chunk_cache *c);

/* The decoded data chunk @id, which its content row says is @len bytes
 * long.  On success *ret is a reference: pass it to
 * cairn_chunk_cache_release().  Reads the blob through its own index
 * transaction.  -ENOENT (not in the index, or its pack is gone),
 * -EBADMSG (damaged, or not @len bytes long; logged with the pack id),
 * -ENOMEM. */
int cairn_chunk_cache_get(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], size_t len,
                          const struct cairn_chunk **ret);
/* For a random read: a piece of chunk @id (@len bytes) that holds its
 * byte @off.  That is the whole chunk when it is cached already or is not
 * segmented (codec.h), else the one segment holding @off, read and
 * checked on its own (its pack location and segment header are cached
 * too, so the next segment of that chunk is one read).  Errors as
 * cairn_chunk_cache_get(). */
int cairn_chunk_cache_get_part(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], size_t len,
                               uint64_t off, const struct cairn_chunk **ret);

/* Drop a reference taken by cairn_chunk_cache_get() or _get_part().
 * Accepts NULL. */
void cairn_chunk_cache_release(struct cairn_chunk_cache *c, const struct cairn_chunk *chunk);

/* Ask a worker to decode chunk @id (@len bytes) into the cache unless it
 * is there already.  Never blocks. */
void cairn_chunk_cache_prefetch(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], size_t len);

/* For a file read at random: ask a worker to load the segment table of
 * each of content @content_id's segmented chunks (the first 4096), so
 * that a first read in a chunk costs one read of its segment, not two.
 * Never blocks; dropped when the queue is full. */
void cairn_chunk_cache_prefetch_tables(struct cairn_chunk_cache *c, const uint8_t content_id[CAIRN_ID_SIZE]);

void cairn_chunk_cache_get_stats(struct cairn_chunk_cache *c, struct cairn_chunk_cache_stats *ret);
