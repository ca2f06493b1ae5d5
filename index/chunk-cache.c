/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Decoded-chunk cache: shards of (hash table + LRU list), "loading"
 * entries that later readers wait on, and a small pool of prefetch
 * workers fed by a bounded ring.
 *
 * Lock order: a shard's lock and the prefetch queue's lock are never held
 * together; neither is held while a blob is read or decoded.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chunk-cache.h"
#include "codec.h"
#include "log.h"
#include "pack.h"
#include "repo.h"
#include "util.h"

#define N_SHARDS 16
#define QUEUE_SIZE 64
#define TABLES_PER_FILE 4096           /* segment tables one prefetch_tables() loads at most */
#define MIN_BUDGET (16u * 1024 * 1024)

enum entry_state { LOADING, READY, FAILED };

/* What an entry holds of its chunk: the whole chunk, one segment (0..n-1)
 * of a segmented chunk, or that chunk's location and segment header. */
#define PART_WHOLE UINT32_MAX
#define PART_TABLE (UINT32_MAX - 1)

struct entry {
        struct cairn_chunk pub;          /* first: a released pointer is cast back */
        uint8_t id[CAIRN_ID_SIZE];
        uint32_t part;
        size_t chunk_len;                /* the whole chunk's length (its content row) */
        uint8_t *buf;
        unsigned refs;                   /* protected by the shard lock */
        enum entry_state state;          /* protected by the shard lock */
        bool dead;                       /* out of the table, freed at its last release; shard lock */
        int error;                       /* FAILED: the -errno */
        struct entry *hnext;             /* hash chain; protected by the shard lock */
        struct entry *prev, *next;       /* LRU, only while READY and refs == 0 */
};

struct shard {
        pthread_mutex_t lock;
        pthread_cond_t loaded;           /* broadcast when a LOADING entry settles */
        struct entry **buckets;          /* protected by lock */
        size_t n_buckets, count;         /* protected by lock */
        struct entry *lru_head, *lru_tail; /* head: most recently released */
        size_t bytes;                    /* READY bytes; protected by lock */
};

struct request {
        uint8_t id[CAIRN_ID_SIZE];       /* a chunk, or a content (tables) */
        size_t len;
        bool tables;
};

struct cairn_chunk_cache {
        struct cairn_repo *repo;
        size_t shard_budget;
        struct shard shards[N_SHARDS];

        pthread_mutex_t qlock;           /* protects the fields below */
        pthread_cond_t qcond;
        struct request queue[QUEUE_SIZE];
        size_t qhead, qlen;
        bool stopping;
        pthread_t *workers;
        unsigned n_workers;

        /* statistics: updated with atomics, read without a lock */
        uint64_t hits, misses, prefetched, waits, evictions, errors;
        uint64_t tables_prefetched;
};

static struct shard *shard_of(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE]) {
        return &c->shards[id[0] % N_SHARDS];
}

static uint64_t hash_of(const uint8_t id[CAIRN_ID_SIZE], uint32_t part) {
        uint64_t h;
        memcpy(&h, id + 8, sizeof h);
        return h ^ ((uint64_t) part * UINT64_C(0x9e3779b97f4a7c15));
}

static size_t bucket_of(const struct shard *s, const uint8_t id[CAIRN_ID_SIZE], uint32_t part) {
        return (size_t) (hash_of(id, part) & (s->n_buckets - 1));
}

static struct entry *shard_find(struct shard *s, const uint8_t id[CAIRN_ID_SIZE], uint32_t part) {
        for (struct entry *e = s->buckets[bucket_of(s, id, part)]; e; e = e->hnext)
                if (e->part == part && memcmp(e->id, id, CAIRN_ID_SIZE) == 0)
                        return e;
        return NULL;
}

static void shard_unlink(struct shard *s, struct entry *e) {
        struct entry **p = &s->buckets[bucket_of(s, e->id, e->part)];
        while (*p && *p != e)
                p = &(*p)->hnext;
        if (*p) {
                *p = e->hnext;
                s->count--;
        }
        e->hnext = NULL;
}

static int shard_insert(struct shard *s, struct entry *e) {
        if (s->count + 1 > s->n_buckets) {
                size_t n = s->n_buckets * 2;
                struct entry **b = calloc(n, sizeof *b);
                if (!b)
                        return -ENOMEM;
                for (size_t i = 0; i < s->n_buckets; i++)
                        for (struct entry *x = s->buckets[i], *next; x; x = next) {
                                uint64_t h = hash_of(x->id, x->part);
                                next = x->hnext;
                                x->hnext = b[h & (n - 1)];
                                b[h & (n - 1)] = x;
                        }
                free(s->buckets);
                s->buckets = b;
                s->n_buckets = n;
        }
        size_t i = bucket_of(s, e->id, e->part);
        e->hnext = s->buckets[i];
        s->buckets[i] = e;
        s->count++;
        return 0;
}

static void lru_remove(struct shard *s, struct entry *e) {
        if (e->prev)
                e->prev->next = e->next;
        else if (s->lru_head == e)
                s->lru_head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else if (s->lru_tail == e)
                s->lru_tail = e->prev;
        e->prev = e->next = NULL;
}

static void lru_push(struct shard *s, struct entry *e) {
        e->prev = NULL;
        e->next = s->lru_head;
        if (s->lru_head)
                s->lru_head->prev = e;
        s->lru_head = e;
        if (!s->lru_tail)
                s->lru_tail = e;
}

static void entry_free(struct entry *e) {
        if (!e)
                return;
        free(e->buf);
        free(e);
}

/* Called with the shard lock held. */
static void shard_evict(struct cairn_chunk_cache *c, struct shard *s) {
        while (s->bytes > c->shard_budget && s->lru_tail) {
                struct entry *e = s->lru_tail;
                lru_remove(s, e);
                shard_unlink(s, e);
                s->bytes -= e->pub.len;
                entry_free(e);
                __atomic_add_fetch(&c->evictions, 1, __ATOMIC_RELAXED);
        }
}

/* With the shard lock held: drop one reference. */
static void entry_unref_locked(struct cairn_chunk_cache *c, struct shard *s, struct entry *e) {
        if (--e->refs > 0)
                return;
        if (e->state == FAILED || e->dead) {
                entry_free(e);
                return;
        }
        lru_push(s, e);
        shard_evict(c, s);
}

static int chunk_length_mismatch(const uint8_t id[CAIRN_ID_SIZE], size_t n, size_t len) {
        char hex[2 * CAIRN_ID_SIZE + 1];
        return log_error_errno(-EBADMSG, "Chunk %s is %zu bytes long, its content row says %zu",
                               hex_encode(id, CAIRN_ID_SIZE, hex), n, len);
}

static int load_whole(struct cairn_chunk_cache *c, struct entry *e) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0;
        int k;

        k = cairn_repo_blob_read(c->repo, NULL, e->id, &buf, &n);
        if (k < 0)
                return k;
        if (n != e->chunk_len)
                return chunk_length_mismatch(e->id, n, e->chunk_len);
        e->buf = TAKE_PTR(buf);
        e->pub.len = n;
        return 0;
}

/* A PART_TABLE entry's bytes: the chunk's location, whether it is stored
 * in segments after all, then its segment header. */
struct table_head {
        struct cairn_chunk_loc loc;
        bool segmented;
};

/* The chunk's index row, then its segment header from the pack. */
static int load_table(struct cairn_chunk_cache *c, struct entry *e) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        const struct cairn_codec *codec = cairn_repo_codec(c->repo);
        size_t size = cairn_codec_header_size(codec, e->chunk_len), got = 0;
        _cleanup_free_ uint8_t *buf = NULL;
        struct table_head head = {};
        struct cairn_chunk_loc loc;
        int k;

        k = cairn_index_txn_begin(cairn_repo_index(c->repo), false, &t);
        if (k < 0)
                return k;
        k = cairn_index_chunk_get(t, e->id, &loc);
        if (k < 0)
                return k;
        if (loc.raw_len != e->chunk_len)
                return chunk_length_mismatch(e->id, loc.raw_len, e->chunk_len);
        buf = malloc(sizeof head + size);
        if (!buf)
                return -ENOMEM;
        k = cairn_pack_read_header(cairn_repo_fd(c->repo), codec, loc.pack, e->id, loc.offset, loc.stored_len,
                                   loc.raw_len, buf + sizeof head, &got);
        if (k < 0)
                return k;
        head.loc = loc;
        head.segmented = cairn_codec_is_segmented(codec, e->chunk_len, buf + sizeof head, got);
        memcpy(buf, &head, sizeof head);
        e->buf = TAKE_PTR(buf);
        e->pub.len = sizeof head + size;
        return 0;
}

static int cache_get(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], uint32_t part, size_t len,
                     const struct cairn_chunk **ret);

/* Take @e out of the table now; it is freed at its last release. */
static void entry_kill(struct cairn_chunk_cache *c, const struct cairn_chunk *chunk) {
        struct entry *e = (struct entry *) chunk;
        struct shard *s = shard_of(c, e->id);

        pthread_mutex_lock(&s->lock);
        if (!e->dead && e->state == READY) {
                shard_unlink(s, e);
                s->bytes -= e->pub.len;
                e->dead = true;
        }
        pthread_mutex_unlock(&s->lock);
}

static int load_segment(struct cairn_chunk_cache *c, struct entry *e) {
        const struct cairn_codec *codec = cairn_repo_codec(c->repo);
        size_t len = cairn_codec_segment_len(codec, e->chunk_len, e->part);
        _cleanup_free_ uint8_t *buf = malloc(MAX(len, (size_t) 1));
        int k = -ENOENT;

        if (!buf)
                return -ENOMEM;
        /* A cached location can outlive its pack (a prune repacked the
         * chunk): then look it up again, once. */
        for (int attempt = 0; attempt < 2 && k == -ENOENT; attempt++) {
                const struct cairn_chunk *table;
                struct table_head head;

                k = cache_get(c, e->id, PART_TABLE, e->chunk_len, &table);
                if (k < 0)
                        return k;
                memcpy(&head, table->data, sizeof head);
                k = cairn_pack_read_segment(cairn_repo_fd(c->repo), codec, head.loc.pack, e->id, head.loc.offset,
                                            head.loc.stored_len, head.loc.raw_len, table->data + sizeof head,
                                            e->part, buf);
                if (k == -ENOENT)        /* the pack is gone: the location is stale */
                        entry_kill(c, table);
                cairn_chunk_cache_release(c, table);
        }
        if (k < 0)
                return k;
        e->buf = TAKE_PTR(buf);
        e->pub.len = len;
        e->pub.base = (uint64_t) e->part * cairn_codec_segment_size(codec);
        return 0;
}

static int entry_load(struct cairn_chunk_cache *c, struct entry *e) {
        switch (e->part) {
        case PART_WHOLE: return load_whole(c, e);
        case PART_TABLE: return load_table(c, e);
        default: return load_segment(c, e);
        }
}

static int cache_get(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], uint32_t part, size_t len,
                     const struct cairn_chunk **ret) {
        struct shard *s = shard_of(c, id);
        struct entry *e;
        int k;

        pthread_mutex_lock(&s->lock);
        e = shard_find(s, id, part);
        if (e) {
                if (e->refs == 0 && e->state == READY)
                        lru_remove(s, e);
                e->refs++;
                if (e->state == LOADING) {
                        __atomic_add_fetch(&c->waits, 1, __ATOMIC_RELAXED);
                        while (e->state == LOADING)
                                pthread_cond_wait(&s->loaded, &s->lock);
                } else
                        __atomic_add_fetch(&c->hits, 1, __ATOMIC_RELAXED);
                if (e->state == FAILED) {
                        k = e->error;
                        entry_unref_locked(c, s, e);
                        pthread_mutex_unlock(&s->lock);
                        return k;
                }
                pthread_mutex_unlock(&s->lock);
                *ret = &e->pub;
                return 0;
        }

        __atomic_add_fetch(&c->misses, 1, __ATOMIC_RELAXED);
        e = calloc(1, sizeof *e);
        if (!e) {
                pthread_mutex_unlock(&s->lock);
                return -ENOMEM;
        }
        memcpy(e->id, id, CAIRN_ID_SIZE);
        e->part = part;
        e->chunk_len = len;
        e->state = LOADING;
        e->refs = 1;
        k = shard_insert(s, e);
        pthread_mutex_unlock(&s->lock);
        if (k < 0) {
                free(e);
                return k;
        }

        k = entry_load(c, e);

        pthread_mutex_lock(&s->lock);
        if (k < 0) {
                e->state = FAILED;
                e->error = k;
                shard_unlink(s, e);
                __atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
        } else {
                e->state = READY;
                e->pub.data = e->buf;
                s->bytes += e->pub.len;
        }
        pthread_cond_broadcast(&s->loaded);
        if (k < 0) {
                entry_unref_locked(c, s, e);
                pthread_mutex_unlock(&s->lock);
                return k;
        }
        pthread_mutex_unlock(&s->lock);
        *ret = &e->pub;
        return 0;
}

int cairn_chunk_cache_get(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], size_t len,
                          const struct cairn_chunk **ret) {
        return cache_get(c, id, PART_WHOLE, len, ret);
}

/* A reference to (@id, @part) if it is ready now; never waits or loads. */
static bool take_ready(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], uint32_t part,
                       const struct cairn_chunk **ret) {
        struct shard *s = shard_of(c, id);
        struct entry *e;
        bool found = false;

        pthread_mutex_lock(&s->lock);
        e = shard_find(s, id, part);
        if (e && e->state == READY) {
                if (e->refs == 0)
                        lru_remove(s, e);
                e->refs++;
                __atomic_add_fetch(&c->hits, 1, __ATOMIC_RELAXED);
                *ret = &e->pub;
                found = true;
        }
        pthread_mutex_unlock(&s->lock);
        return found;
}

int cairn_chunk_cache_get_part(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], size_t len,
                               uint64_t off, const struct cairn_chunk **ret) {
        const struct cairn_codec *codec = cairn_repo_codec(c->repo);

        const struct cairn_chunk *table;
        struct table_head head;
        int k;

        if (cairn_codec_segments(codec, len) == 0 || off >= len)
                return cache_get(c, id, PART_WHOLE, len, ret);
        if (take_ready(c, id, PART_WHOLE, ret))
                return 0;
        /* Its header says whether it is stored in segments at all. */
        k = cache_get(c, id, PART_TABLE, len, &table);
        if (k < 0)
                return k;
        memcpy(&head, table->data, sizeof head);
        cairn_chunk_cache_release(c, table);
        if (!head.segmented)
                return cache_get(c, id, PART_WHOLE, len, ret);
        return cache_get(c, id, (uint32_t) (off / cairn_codec_segment_size(codec)), len, ret);
}

void cairn_chunk_cache_release(struct cairn_chunk_cache *c, const struct cairn_chunk *chunk) {
        struct entry *e = (struct entry *) chunk;
        struct shard *s;

        if (!chunk)
                return;
        s = shard_of(c, e->id);
        pthread_mutex_lock(&s->lock);
        entry_unref_locked(c, s, e);
        pthread_mutex_unlock(&s->lock);
}

static bool cached(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE]) {
        struct shard *s = shard_of(c, id);
        bool found;

        pthread_mutex_lock(&s->lock);
        found = shard_find(s, id, PART_WHOLE) != NULL;
        pthread_mutex_unlock(&s->lock);
        return found;
}

static void enqueue(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], size_t len, bool tables) {
        pthread_mutex_lock(&c->qlock);
        if (c->qlen < QUEUE_SIZE && !c->stopping) {
                /* A request already queued is not queued twice. */
                bool dup = false;
                for (size_t i = 0; i < c->qlen && !dup; i++) {
                        const struct request *q = &c->queue[(c->qhead + i) % QUEUE_SIZE];
                        dup = q->tables == tables && memcmp(q->id, id, CAIRN_ID_SIZE) == 0;
                }
                if (!dup) {
                        struct request *q = &c->queue[(c->qhead + c->qlen) % QUEUE_SIZE];
                        memcpy(q->id, id, CAIRN_ID_SIZE);
                        q->len = len;
                        q->tables = tables;
                        c->qlen++;
                        pthread_cond_signal(&c->qcond);
                }
        }
        pthread_mutex_unlock(&c->qlock);
}

void cairn_chunk_cache_prefetch(struct cairn_chunk_cache *c, const uint8_t id[CAIRN_ID_SIZE], size_t len) {
        if (c->n_workers == 0 || cached(c, id))
                return;
        enqueue(c, id, len, false);
}

void cairn_chunk_cache_prefetch_tables(struct cairn_chunk_cache *c, const uint8_t content_id[CAIRN_ID_SIZE]) {
        if (c->n_workers == 0 || cairn_codec_segment_size(cairn_repo_codec(c->repo)) == 0)
                return;
        enqueue(c, content_id, 0, true);
}

/* A worker's part of cairn_chunk_cache_prefetch_tables(): the segment
 * table of each segmented chunk of the content, in file order. */
static void load_tables(struct cairn_chunk_cache *c, const uint8_t content_id[CAIRN_ID_SIZE]) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        const struct cairn_codec *codec = cairn_repo_codec(c->repo);
        uint64_t off = 0;

        if (cairn_index_txn_begin(cairn_repo_index(c->repo), false, &t) < 0)
                return;
        for (unsigned n = 0; n < TABLES_PER_FILE && !__atomic_load_n(&c->stopping, __ATOMIC_RELAXED); n++) {
                struct cairn_content_chunk ch;
                const struct cairn_chunk *table;
                uint64_t start;

                if (cairn_index_content_find(t, content_id, off, &ch, &start) < 0 || ch.length == 0)
                        break;
                off = start + ch.length;
                if ((ch.flags & CAIRN_CHUNK_HOLE) || cairn_codec_segments(codec, (size_t) ch.length) == 0)
                        continue;
                if (cache_get(c, ch.id, PART_TABLE, (size_t) ch.length, &table) >= 0) {
                        cairn_chunk_cache_release(c, table);
                        __atomic_add_fetch(&c->tables_prefetched, 1, __ATOMIC_RELAXED);
                }
        }
}

static void *worker_main(void *userdata) {
        struct cairn_chunk_cache *c = userdata;

        for (;;) {
                struct request q;
                const struct cairn_chunk *chunk;

                pthread_mutex_lock(&c->qlock);
                while (c->qlen == 0 && !c->stopping)
                        pthread_cond_wait(&c->qcond, &c->qlock);
                if (c->stopping) {
                        pthread_mutex_unlock(&c->qlock);
                        return NULL;
                }
                q = c->queue[c->qhead];
                c->qhead = (c->qhead + 1) % QUEUE_SIZE;
                c->qlen--;
                pthread_mutex_unlock(&c->qlock);

                if (q.tables) {
                        load_tables(c, q.id);
                        continue;
                }
                if (cached(c, q.id))
                        continue;
                /* Errors are logged by the read; the reader that needs the
                 * chunk will meet them again and report them. */
                if (cairn_chunk_cache_get(c, q.id, q.len, &chunk) >= 0) {
                        __atomic_add_fetch(&c->prefetched, 1, __ATOMIC_RELAXED);
                        cairn_chunk_cache_release(c, chunk);
                }
        }
}

int cairn_chunk_cache_new(struct cairn_repo *r, size_t max_bytes, unsigned workers, struct cairn_chunk_cache **ret) {
        struct cairn_chunk_cache *c;
        int k;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->repo = r;
        c->shard_budget = MAX(max_bytes, (size_t) MIN_BUDGET) / N_SHARDS;
        for (size_t i = 0; i < N_SHARDS; i++) {
                struct shard *s = &c->shards[i];
                pthread_mutex_init(&s->lock, NULL);
                pthread_cond_init(&s->loaded, NULL);
                s->n_buckets = 64;
                s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
                if (!s->buckets) {
                        cairn_chunk_cache_free(c);
                        return -ENOMEM;
                }
        }
        pthread_mutex_init(&c->qlock, NULL);
        pthread_cond_init(&c->qcond, NULL);
        if (workers > 0) {
                c->workers = calloc(workers, sizeof *c->workers);
                if (!c->workers) {
                        cairn_chunk_cache_free(c);
                        return -ENOMEM;
                }
        }
        for (unsigned i = 0; i < workers; i++) {
                k = pthread_create(&c->workers[i], NULL, worker_main, c);
                if (k != 0) {
                        cairn_chunk_cache_free(c);
                        return log_error_errno(-k, "Cannot start a prefetch thread: %m");
                }
                c->n_workers++;
        }
        *ret = c;
        return 0;
}

struct cairn_chunk_cache *cairn_chunk_cache_free(struct cairn_chunk_cache *c) {
        if (!c)
                return NULL;
        pthread_mutex_lock(&c->qlock);
        __atomic_store_n(&c->stopping, true, __ATOMIC_RELAXED);   /* also read by load_tables() without the lock */
        pthread_cond_broadcast(&c->qcond);
        pthread_mutex_unlock(&c->qlock);
        for (unsigned i = 0; i < c->n_workers; i++)
                pthread_join(c->workers[i], NULL);
        free(c->workers);
        for (size_t i = 0; i < N_SHARDS; i++) {
                struct shard *s = &c->shards[i];
                for (size_t b = 0; s->buckets && b < s->n_buckets; b++)
                        for (struct entry *e = s->buckets[b], *next; e; e = next) {
                                next = e->hnext;
                                entry_free(e);
                        }
                free(s->buckets);
                pthread_mutex_destroy(&s->lock);
                pthread_cond_destroy(&s->loaded);
        }
        pthread_mutex_destroy(&c->qlock);
        pthread_cond_destroy(&c->qcond);
        free(c);
        return NULL;
}

void cairn_chunk_cache_get_stats(struct cairn_chunk_cache *c, struct cairn_chunk_cache_stats *ret) {
        *ret = (struct cairn_chunk_cache_stats) {
                .hits = __atomic_load_n(&c->hits, __ATOMIC_RELAXED),
                .misses = __atomic_load_n(&c->misses, __ATOMIC_RELAXED),
                .prefetched = __atomic_load_n(&c->prefetched, __ATOMIC_RELAXED),
                .waits = __atomic_load_n(&c->waits, __ATOMIC_RELAXED),
                .evictions = __atomic_load_n(&c->evictions, __ATOMIC_RELAXED),
                .errors = __atomic_load_n(&c->errors, __ATOMIC_RELAXED),
                .tables_prefetched = __atomic_load_n(&c->tables_prefetched, __ATOMIC_RELAXED),
                .max_bytes = c->shard_budget * N_SHARDS,
        };
        for (size_t i = 0; i < N_SHARDS; i++) {
                pthread_mutex_lock(&c->shards[i].lock);
                ret->bytes += c->shards[i].bytes;
                pthread_mutex_unlock(&c->shards[i].lock);
        }
}
