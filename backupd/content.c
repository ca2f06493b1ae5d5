/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Streaming content: bytes in, chunks out, stored in batches.
 *
 * The chunker needs max_size bytes of look-ahead, so bytes collect in a
 * buffer of BATCH + max_size.  When it is full, every chunk that can be cut
 * (all but the last < max_size bytes) forms a batch, processed in four
 * steps: ids on all cores, dedup lookups in order (the store is single-
 * threaded), compression + encryption of the new chunks on all cores, and
 * appending them to the pack in order.  Dedup happens before compression,
 * so an incremental run over mostly-unchanged data costs hashing only.
 *
 * Reading overlaps with that work: there are two buffers, and while the
 * batch thread processes the batch cut from one, the reader fills the
 * other (the uncut tail is copied over first).  Batches run one at a
 * time and in order, so the store and the file's chunk list are touched
 * by one thread at a time: the batch thread while a batch is in flight,
 * the caller otherwise (every entry point waits for the batch in flight
 * before it touches either).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "backup.h"
#include "log.h"
#include "util.h"

#define BATCH (8u * 1024 * 1024)

/* A fixed set of threads that run one function over indices 0..n-1;
 * the calling thread works too. */
struct bk_pool {
        pthread_mutex_t lock;
        pthread_cond_t work, done;
        pthread_t *threads;
        unsigned n_threads;
        /* protected by lock: */
        void (*fn)(void *ctx, size_t i);
        void *ctx;
        size_t n;
        unsigned generation;
        unsigned busy;
        bool stop;
        atomic_size_t next;
};

static void pool_drain(struct bk_pool *p, void (*fn)(void *, size_t), void *ctx, size_t n) {
        size_t i;
        while ((i = atomic_fetch_add(&p->next, 1)) < n)
                fn(ctx, i);
}

static void *pool_thread(void *arg) {
        struct bk_pool *p = arg;
        unsigned seen = 0;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->stop && p->generation == seen)
                        pthread_cond_wait(&p->work, &p->lock);
                if (p->stop)
                        break;
                seen = p->generation;
                void (*fn)(void *, size_t) = p->fn;
                void *ctx = p->ctx;
                size_t n = p->n;
                pthread_mutex_unlock(&p->lock);
                pool_drain(p, fn, ctx, n);
                pthread_mutex_lock(&p->lock);
                if (--p->busy == 0)
                        pthread_cond_signal(&p->done);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int bk_pool_new(unsigned threads, struct bk_pool **ret) {
        struct bk_pool *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->done, NULL);
        p->threads = calloc(threads ? threads : 1, sizeof *p->threads);
        if (!p->threads) {
                free(p);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < threads; i++) {
                if (pthread_create(&p->threads[i], NULL, pool_thread, p) != 0)
                        break;
                p->n_threads++;
        }
        *ret = p;
        return 0;
}

struct bk_pool *bk_pool_free(struct bk_pool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->done);
        free(p->threads);
        free(p);
        return NULL;
}

/* Run fn(ctx, i) for i in [0, n) on every thread; returns when all are done. */
static void pool_run(struct bk_pool *p, void (*fn)(void *, size_t), void *ctx, size_t n) {
        if (n == 0)
                return;
        if (p->n_threads == 0 || n == 1) {
                for (size_t i = 0; i < n; i++)
                        fn(ctx, i);
                return;
        }
        pthread_mutex_lock(&p->lock);
        p->fn = fn;
        p->ctx = ctx;
        p->n = n;
        atomic_store(&p->next, 0);
        p->busy = p->n_threads;
        p->generation++;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);

        pool_drain(p, fn, ctx, n);

        pthread_mutex_lock(&p->lock);
        while (p->busy > 0)
                pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
}

struct pending_chunk {
        const uint8_t *data;
        size_t len;
        uint8_t id[CAIRN_ID_SIZE];
        bool needed;
        int r;
        uint8_t *out;                   /* encoded, out_size allocated */
        size_t out_size, stored;
};

struct bk_content {
        struct bk_backup *b;
        const struct cairn_codec *codec;
        const struct cairn_chunker *chunker;
        size_t max;
        uint8_t *bufs[2];
        uint8_t *buf;                   /* bufs[cur]: being filled */
        size_t fill, cap;
        int cur;
        struct pending_chunk *batches[2];
        size_t cap_batches[2];
        struct pending_chunk *batch;    /* batches[cur] while cutting; the one processed in process_batch */
        size_t n_batch, cap_batch;
        struct cairn_content_chunk *chunks;
        size_t n_chunks, cap_chunks;
        uint64_t total;

        /* The batch thread. */
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool job, stop;                 /* protected by lock */
        struct pending_chunk *job_batch; /* protected by lock */
        size_t job_n;                   /* protected by lock */
        bool in_flight;                 /* caller's view: a batch was handed over */
        int job_result;                 /* protected by lock */
};

static void do_id(void *ctx, size_t i) {
        struct bk_content *c = ctx;
        struct pending_chunk *p = &c->batch[i];
        cairn_codec_id(c->codec, p->data, p->len, p->id);
}

static void do_encode(void *ctx, size_t i) {
        struct bk_content *c = ctx;
        struct pending_chunk *p = &c->batch[i];
        size_t bound;

        if (!p->needed)
                return;
        bound = cairn_codec_bound(c->codec, p->len);
        if (p->out_size < bound) {
                free(p->out);
                p->out = malloc(bound);
                p->out_size = p->out ? bound : 0;
                if (!p->out) {
                        p->r = -ENOMEM;
                        return;
                }
        }
        p->r = cairn_codec_encode(c->codec, p->id, p->data, p->len, p->out, &p->stored);
}

static int add_chunk_ref(struct bk_content *c, const uint8_t *id, uint64_t len, uint8_t flags) {
        if (c->n_chunks == c->cap_chunks) {
                size_t cap = c->cap_chunks ? c->cap_chunks * 2 : 16;
                struct cairn_content_chunk *n = realloc(c->chunks, cap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                c->chunks = n;
                c->cap_chunks = cap;
        }
        struct cairn_content_chunk *ch = &c->chunks[c->n_chunks++];
        if (id)
                memcpy(ch->id, id, CAIRN_ID_SIZE);
        else
                memset(ch->id, 0, CAIRN_ID_SIZE);
        ch->length = len;
        ch->flags = flags;
        return 0;
}

static int process_batch(struct bk_content *c, struct pending_chunk *batch, size_t n_batch) {
        struct cairn_store *s = c->b->store;
        int k;

        c->batch = batch;
        c->n_batch = n_batch;

        pool_run(c->b->pool, do_id, c, c->n_batch);
        for (size_t i = 0; i < c->n_batch; i++) {
                struct pending_chunk *p = &c->batch[i];
                /* A chunk repeated inside the batch: only its first copy is new. */
                bool dup_here = false;
                for (size_t j = 0; j < i && !dup_here; j++)
                        dup_here = c->batch[j].needed && memcmp(c->batch[j].id, p->id, CAIRN_ID_SIZE) == 0;
                k = dup_here ? 1 : cairn_store_contains(s, p->id);
                if (k < 0)
                        return k;
                p->needed = k == 0;
                p->r = 0;
        }
        pool_run(c->b->pool, do_encode, c, c->n_batch);
        for (size_t i = 0; i < c->n_batch; i++) {
                struct pending_chunk *p = &c->batch[i];
                if (p->r < 0)
                        return p->r;
                k = p->needed ? cairn_store_put_encoded(s, CAIRN_BLOB_DATA, p->id, p->out, p->stored, NULL, p->len)
                              : cairn_store_put_encoded(s, CAIRN_BLOB_DATA, p->id, NULL, 0, NULL, p->len);
                if (k < 0)
                        return k;
                k = add_chunk_ref(c, p->id, p->len, 0);
                if (k < 0)
                        return k;
        }
        return 0;
}

static void *batch_thread(void *arg) {
        struct bk_content *c = arg;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                while (!c->job && !c->stop)
                        pthread_cond_wait(&c->cond, &c->lock);
                if (c->stop)
                        break;
                struct pending_chunk *batch = c->job_batch;
                size_t n = c->job_n;
                pthread_mutex_unlock(&c->lock);
                int k = process_batch(c, batch, n);
                pthread_mutex_lock(&c->lock);
                c->job_result = k;
                c->job = false;
                pthread_cond_broadcast(&c->cond);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

/* Wait for the batch in flight; its result. */
static int batch_wait(struct bk_content *c) {
        int k;

        if (!c->in_flight)
                return 0;
        pthread_mutex_lock(&c->lock);
        while (c->job)
                pthread_cond_wait(&c->cond, &c->lock);
        k = c->job_result;
        pthread_mutex_unlock(&c->lock);
        c->in_flight = false;
        return k;
}

static void batch_start(struct bk_content *c, struct pending_chunk *batch, size_t n) {
        pthread_mutex_lock(&c->lock);
        c->job_batch = batch;
        c->job_n = n;
        c->job_result = 0;
        c->job = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        c->in_flight = true;
}

/* Cut chunks from the buffer: all of it at @eof, else while at least
 * max_size bytes remain.  At @eof the batch is processed before this
 * returns; otherwise it goes to the batch thread, the tail moves to the
 * other buffer and filling goes on there. */
static int cut_and_store(struct bk_content *c, bool eof) {
        struct pending_chunk *batch = c->batches[c->cur];
        size_t cap = c->cap_batches[c->cur], n = 0, pos = 0;
        int k;

        while (pos < c->fill && (eof || c->fill - pos >= c->max)) {
                size_t len = cairn_chunker_cut(c->chunker, c->buf + pos, c->fill - pos);
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 32;
                        struct pending_chunk *nb = realloc(batch, ncap * sizeof *nb);
                        if (!nb)
                                return -ENOMEM;
                        memset(nb + cap, 0, (ncap - cap) * sizeof *nb);
                        batch = c->batches[c->cur] = nb;
                        cap = c->cap_batches[c->cur] = ncap;
                }
                batch[n].data = c->buf + pos;
                batch[n].len = len;
                n++;
                pos += len;
        }

        /* The other buffer may still be read by the batch in flight. */
        k = batch_wait(c);
        if (k < 0)
                return k;
        if (eof || !c->thread_started) {
                k = process_batch(c, batch, n);
                if (k < 0)
                        return k;
                memmove(c->buf, c->buf + pos, c->fill - pos);
                c->fill -= pos;
                return 0;
        }
        batch_start(c, batch, n);
        c->cur = 1 - c->cur;
        memcpy(c->bufs[c->cur], c->buf + pos, c->fill - pos);
        c->buf = c->bufs[c->cur];
        c->fill -= pos;
        return 0;
}

int bk_content_begin(struct bk_backup *b, struct bk_content **ret) {
        struct bk_content *c;

        if (b->content) {
                /* Reuse the buffers of the previous content. */
                c = b->content;
                b->content = NULL;
                c->fill = c->n_batch = c->n_chunks = 0;
                c->total = 0;
                *ret = c;
                return 0;
        }
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->b = b;
        c->codec = cairn_repo_codec(b->repo);
        c->chunker = cairn_repo_chunker(b->repo);
        c->max = cairn_chunker_params(c->chunker)->max_size;
        c->cap = BATCH + c->max;
        c->bufs[0] = malloc(c->cap);
        c->bufs[1] = malloc(c->cap);
        if (!c->bufs[0] || !c->bufs[1]) {
                free(c->bufs[0]);
                free(c->bufs[1]);
                free(c);
                return -ENOMEM;
        }
        c->buf = c->bufs[0];
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        /* Without the thread everything still works, one batch at a time. */
        c->thread_started = pthread_create(&c->thread, NULL, batch_thread, c) == 0;
        *ret = c;
        return 0;
}

int bk_content_write(struct bk_content *c, const void *data, size_t len) {
        const uint8_t *p = data;
        int k;

        while (len > 0) {
                size_t n = MIN(len, c->cap - c->fill);
                memcpy(c->buf + c->fill, p, n);
                c->fill += n;
                c->total += n;
                p += n;
                len -= n;
                if (c->fill == c->cap) {
                        k = cut_and_store(c, false);
                        if (k < 0)
                                return k;
                }
        }
        return 0;
}

int bk_content_hole(struct bk_content *c, uint64_t len) {
        int k;

        if (len == 0)
                return 0;
        /* A hole ends the data before it: cut points stay a function of
         * the data runs, so an unchanged sparse file chunks the same. */
        k = cut_and_store(c, true);
        if (k < 0)
                return k;
        c->total += len;
        if (c->n_chunks > 0 && (c->chunks[c->n_chunks - 1].flags & CAIRN_CHUNK_HOLE)) {
                c->chunks[c->n_chunks - 1].length += len;
                return 0;
        }
        return add_chunk_ref(c, NULL, len, CAIRN_CHUNK_HOLE);
}

static void content_destroy(struct bk_content *c) {
        (void) batch_wait(c);
        if (c->thread_started) {
                pthread_mutex_lock(&c->lock);
                c->stop = true;
                pthread_cond_broadcast(&c->cond);
                pthread_mutex_unlock(&c->lock);
                pthread_join(c->thread, NULL);
        }
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        for (int j = 0; j < 2; j++) {
                for (size_t i = 0; i < c->cap_batches[j]; i++)
                        free(c->batches[j][i].out);
                free(c->batches[j]);
                free(c->bufs[j]);
        }
        free(c->chunks);
        free(c);
}

static void content_release(struct bk_content *c) {
        struct bk_backup *b = c->b;

        (void) batch_wait(c);    /* an abort's error is the caller's already */
        c->cur = 0;
        c->buf = c->bufs[0];
        if (!b->content) {
                b->content = c;     /* keep the buffers for the next file */
                return;
        }
        content_destroy(c);
}

void bk_content_abort(struct bk_content *c) {
        if (c)
                content_release(c);
}

int bk_content_end(struct bk_content *c, uint8_t ret_id[CAIRN_ID_SIZE], uint64_t *ret_size) {
        _cleanup_free_ uint8_t *blob = NULL;
        size_t len;
        int k;

        k = cut_and_store(c, true);
        if (k >= 0 && c->n_chunks == 0)
                memset(ret_id, 0, CAIRN_ID_SIZE);
        else if (k >= 0) {
                k = cairn_content_encode(c->chunks, c->n_chunks, &blob, &len);
                if (k >= 0)
                        k = cairn_store_add(c->b->store, CAIRN_BLOB_CONTENT, blob, len, ret_id, NULL);
        }
        if (k >= 0)
                *ret_size = c->total;
        content_release(c);
        return k;
}

void bk_content_cache_free(struct bk_backup *b) {
        struct bk_content *c = b->content;
        if (!c)
                return;
        b->content = NULL;
        content_destroy(c);
}
