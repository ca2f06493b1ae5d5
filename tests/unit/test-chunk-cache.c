/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The decoded-chunk cache: right bytes, hits, the memory budget, held
 * chunks never evicted, prefetch, many threads at once, single segments
 * for random reads, and damage that is reported every time and never
 * cached. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>

#include "chunk-cache.h"
#include "codec.h"
#include "lmdb-index.h"
#include "tree.h"
#include "log.h"
#include "repo.h"
#include "store.h"
#include "tap.h"
#include "test-util.h"
#include "util.h"

#define N_CHUNKS 48
#define CHUNK (1u << 20)

static uint8_t ids[N_CHUNKS][CAIRN_ID_SIZE];

/* Each thread compares against its own expected buffer. */
static __thread uint8_t *want;

static bool chunk_right(const struct cairn_chunk *c, int i) {
        if (!want && !(want = malloc(CHUNK)))
                return false;
        test_fill_random(want, CHUNK, (uint64_t) i + 1);
        return c && c->len == CHUNK && memcmp(c->data, want, CHUNK) == 0;
}

/* A piece from cairn_chunk_cache_get_part(): right bytes for its place? */
static bool piece_right(const struct cairn_chunk *c, int i, uint64_t off) {
        if (!want && !(want = malloc(CHUNK)))
                return false;
        test_fill_random(want, CHUNK, (uint64_t) i + 1);
        return c && c->base <= off && off < c->base + c->len && c->base + c->len <= CHUNK &&
               memcmp(c->data, want + c->base, c->len) == 0;
}

static void pack_path_of(struct cairn_repo *r, const char *repo, const uint8_t id[CAIRN_ID_SIZE],
                         struct cairn_chunk_loc *ret_loc, char *path, size_t size) {
        struct cairn_txn *t = NULL;
        char hex[2 * CAIRN_ID_SIZE + 1];

        if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0 || cairn_index_chunk_get(t, id, ret_loc) < 0)
                BAIL_OUT("cannot find a chunk");
        cairn_index_txn_abort(t);
        hex_encode(ret_loc->pack, CAIRN_ID_SIZE, hex);
        snprintf(path, size, "%s/packs/%.2s/%s", repo, hex, hex);
}

struct worker_arg {
        struct cairn_chunk_cache *cache;
        unsigned seed;
        int bad;
};

static void *reader(void *p) {
        struct worker_arg *a = p;
        for (int n = 0; n < 200; n++) {
                int i = (int) (rand_r(&a->seed) % N_CHUNKS);
                const struct cairn_chunk *c = NULL;
                if (cairn_chunk_cache_get(a->cache, ids[i], CHUNK, &c) < 0 || !chunk_right(c, i))
                        a->bad++;
                cairn_chunk_cache_release(a->cache, c);
        }
        free(want);
        want = NULL;
        return NULL;
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-chunk-cache");
        char repo[4200], pack[4600];
        struct cairn_repo_params p;
        struct cairn_repo *r = NULL;
        struct cairn_store *s = NULL;
        struct cairn_chunk_cache *cache = NULL;
        struct cairn_chunk_cache_stats st;
        const struct cairn_chunk *c = NULL, *held = NULL;
        uint8_t *buf = malloc(CHUNK), unknown[CAIRN_ID_SIZE] = { 1, 2, 3 }, text_id[CAIRN_ID_SIZE];
        bool added;

        cairn_log_set_handler(test_log_capture, NULL);
        snprintf(repo, sizeof repo, "%s/repo", tmp);
        cairn_repo_params_default(&p);
        p.scrypt_n = 1024;
        struct cairn_pass_source pw = { CAIRN_PASS_STRING, "cache" };
        if (cairn_repo_create(repo, &p, &pw) < 0 || cairn_repo_open(repo, &pw, &r) < 0 || cairn_store_new(r, &s) < 0)
                BAIL_OUT("set-up failed");
        for (int i = 0; i < N_CHUNKS; i++) {
                test_fill_random(buf, CHUNK, (uint64_t) i + 1);
                if (cairn_store_add(s, CAIRN_BLOB_DATA, buf, CHUNK, ids[i], &added) < 0)
                        BAIL_OUT("store failed");
        }
        /* One very compressible chunk: stored whole even in a segmented repository. */
        for (size_t k = 0; k < CHUNK; k++)
                buf[k] = (uint8_t) "a very compressible chunk\n"[k % 26];
        if (cairn_store_add(s, CAIRN_BLOB_DATA, buf, CHUNK, text_id, &added) < 0)
                BAIL_OUT("store failed");
        if (cairn_store_flush(s) < 0)
                BAIL_OUT("flush failed");
        s = cairn_store_free(s);

        /* ---- basics, with a 16 MiB budget and no workers ---- */
        is(cairn_chunk_cache_new(r, 16u << 20, 0, &cache), 0, "cache with a 16 MiB budget");
        is(cairn_chunk_cache_get(cache, ids[3], CHUNK, &c), 0, "get a chunk");
        ok(chunk_right(c, 3), "its bytes are the stored ones");
        cairn_chunk_cache_release(cache, c);
        is(cairn_chunk_cache_get(cache, ids[3], CHUNK, &c), 0, "get it again");
        cairn_chunk_cache_release(cache, c);
        cairn_chunk_cache_get_stats(cache, &st);
        is(st.misses, 1, "one miss");
        is(st.hits, 1, "the second get is a hit");

        is(cairn_chunk_cache_get(cache, unknown, CHUNK, &c), -ENOENT, "an unknown chunk is -ENOENT");
        is(cairn_chunk_cache_get(cache, ids[5], CHUNK - 1, &c), -EBADMSG, "a chunk of another length is -EBADMSG");
        is(cairn_chunk_cache_get(cache, ids[5], CHUNK, &c), 0, "the failure was not cached");
        ok(chunk_right(c, 5), "and the chunk reads right");
        cairn_chunk_cache_release(cache, c);

        /* Hold one chunk while reading everything else through a small budget. */
        is(cairn_chunk_cache_get(cache, ids[0], CHUNK, &held), 0, "hold chunk 0");
        int bad = 0;
        for (int i = 1; i < N_CHUNKS; i++) {
                if (cairn_chunk_cache_get(cache, ids[i], CHUNK, &c) < 0 || !chunk_right(c, i))
                        bad++;
                cairn_chunk_cache_release(cache, c);
        }
        is(bad, 0, "47 chunks read right through a 16 MiB cache");
        cairn_chunk_cache_get_stats(cache, &st);
        ok(st.bytes <= st.max_bytes + CHUNK, "decoded bytes held (%" PRIu64 ") stay within the budget (%" PRIu64 ")",
           st.bytes, st.max_bytes);
        ok(st.evictions >= N_CHUNKS - 17, "older chunks were evicted (%" PRIu64 ")", st.evictions);
        ok(chunk_right(held, 0), "a held chunk is never evicted: its bytes are intact");
        cairn_chunk_cache_release(cache, held);
        cache = cairn_chunk_cache_free(cache);

        /* ---- prefetch ---- */
        is(cairn_chunk_cache_new(r, 64u << 20, 2, &cache), 0, "cache with two prefetch workers");
        for (int i = 0; i < 8; i++)
                cairn_chunk_cache_prefetch(cache, ids[i], CHUNK);
        for (int w = 0; w < 500; w++) {
                cairn_chunk_cache_get_stats(cache, &st);
                if (st.prefetched + st.errors >= 8)
                        break;
                usleep(10000);
        }
        is(st.prefetched, 8, "eight chunks prefetched");
        bad = 0;
        for (int i = 0; i < 8; i++) {
                if (cairn_chunk_cache_get(cache, ids[i], CHUNK, &c) < 0 || !chunk_right(c, i))
                        bad++;
                cairn_chunk_cache_release(cache, c);
        }
        cairn_chunk_cache_get_stats(cache, &st);
        is(bad, 0, "prefetched chunks read right");
        is(st.hits, 8, "and every read of them is a hit");

        /* ---- four threads at once over a cache smaller than the data ---- */
        cache = cairn_chunk_cache_free(cache);
        is(cairn_chunk_cache_new(r, 16u << 20, 2, &cache), 0, "a small cache for four threads");
        {
                pthread_t th[4];
                struct worker_arg a[4];
                for (int i = 0; i < 4; i++) {
                        a[i] = (struct worker_arg) { cache, (unsigned) i * 7919 + 1, 0 };
                        pthread_create(&th[i], NULL, reader, &a[i]);
                }
                bad = 0;
                for (int i = 0; i < 4; i++) {
                        pthread_join(th[i], NULL);
                        bad += a[i].bad;
                }
                is(bad, 0, "800 concurrent random reads, all right");
        }
        cache = cairn_chunk_cache_free(cache);

        /* ---- random reads: one 64 KiB segment, not the chunk ---- */
        is(cairn_codec_segments(cairn_repo_codec(r), CHUNK), 16u, "a 1 MiB chunk is stored as 16 segments");
        is(cairn_chunk_cache_new(r, 16u << 20, 0, &cache), 0, "a fresh cache");
        is(cairn_chunk_cache_get_part(cache, ids[20], CHUNK, 300000, &c), 0, "get the piece holding byte 300000");
        ok(piece_right(c, 20, 300000), "it is segment 2 (base %" PRIu64 ", %zu bytes), with the right bytes",
           c ? c->base : 0, c ? c->len : 0);
        is(c ? c->len : 0, (size_t) 64 * 1024, "one segment long");
        cairn_chunk_cache_release(cache, c);
        cairn_chunk_cache_get_stats(cache, &st);
        is(st.misses, 2, "two misses: the chunk's segment table and the segment");
        uint64_t hits_before = st.hits;
        ok(st.bytes < 200 * 1024, "about one segment is held (%" PRIu64 " bytes), not the chunk", st.bytes);
        is(cairn_chunk_cache_get_part(cache, ids[20], CHUNK, 300001, &c), 0, "the next byte");
        ok(piece_right(c, 20, 300001), "comes from the same piece");
        cairn_chunk_cache_release(cache, c);
        cairn_chunk_cache_get_stats(cache, &st);
        ok(st.hits > hits_before && st.misses == 2, "as a hit (no miss)");
        bad = 0;
        for (uint64_t off = 0; off < CHUNK; off += 64 * 1024) {
                if (cairn_chunk_cache_get_part(cache, ids[20], CHUNK, off + 77, &c) < 0 || !piece_right(c, 20, off + 77))
                        bad++;
                cairn_chunk_cache_release(cache, c);
        }
        is(bad, 0, "all 16 segments read right on their own");
        cairn_chunk_cache_get_stats(cache, &st);
        is(st.misses, 17, "each segment read once, the table once (misses %" PRIu64 ")", st.misses);
        is(cairn_chunk_cache_get(cache, ids[21], CHUNK, &c), 0, "a whole chunk");
        cairn_chunk_cache_release(cache, c);
        is(cairn_chunk_cache_get_part(cache, ids[21], CHUNK, 999999, &c), 0, "then a piece of it");
        ok(c && c->base == 0 && c->len == CHUNK && chunk_right(c, 21), "is served from the whole chunk already cached");
        cairn_chunk_cache_release(cache, c);
        is(cairn_chunk_cache_get_part(cache, ids[22], CHUNK - 1, 5, &c), -EBADMSG,
           "a piece of a chunk of another length is -EBADMSG");
        is(cairn_chunk_cache_get_part(cache, unknown, CHUNK, 5, &c), -ENOENT, "a piece of an unknown chunk is -ENOENT");
        is(cairn_chunk_cache_get_part(cache, text_id, CHUNK, 700000, &c), 0, "a piece of a very compressible chunk");
        ok(c && c->base == 0 && c->len == CHUNK && memcmp(c->data, buf, CHUNK) == 0,
           "is the whole chunk (stored whole, not in segments)");
        cairn_chunk_cache_release(cache, c);
        cache = cairn_chunk_cache_free(cache);

        /* ---- a random reader's segment tables, loaded ahead ---- */
        {
                struct cairn_content_chunk chunks[5];
                uint8_t content[CAIRN_ID_SIZE] = { 0xc0, 0x47 };
                struct cairn_txn *t = NULL;
                uint64_t misses;

                for (int i = 0; i < 5; i++) {
                        memcpy(chunks[i].id, ids[40 + i], CAIRN_ID_SIZE);
                        chunks[i].length = CHUNK;
                        chunks[i].flags = 0;
                }
                if (cairn_index_txn_begin(cairn_repo_index(r), true, &t) < 0 ||
                    cairn_index_content_put(t, content, chunks, 5) < 0 || cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("cannot add a content");
                is(cairn_chunk_cache_new(r, 64u << 20, 2, &cache), 0, "a cache with workers");
                cairn_chunk_cache_prefetch_tables(cache, content);
                for (int w = 0; w < 500; w++) {
                        cairn_chunk_cache_get_stats(cache, &st);
                        if (st.tables_prefetched >= 5)
                                break;
                        usleep(10000);
                }
                is(st.tables_prefetched, 5, "the segment tables of a file's 5 chunks are loaded ahead");
                misses = st.misses;
                bad = 0;
                for (int i = 0; i < 5; i++) {
                        if (cairn_chunk_cache_get_part(cache, ids[40 + i], CHUNK, 400000, &c) < 0 ||
                            !piece_right(c, 40 + i, 400000))
                                bad++;
                        cairn_chunk_cache_release(cache, c);
                }
                is(bad, 0, "then a segment of each reads right");
                cairn_chunk_cache_get_stats(cache, &st);
                is(st.misses - misses, 5, "with one miss each: the segment (its table was there)");
                cache = cairn_chunk_cache_free(cache);
        }

        /* ---- damage: one flipped byte inside chunk 10 ---- */
        {
                struct cairn_txn *t = NULL;
                struct cairn_chunk_loc loc;
                int fd;
                uint8_t byte;

                char hex[2 * CAIRN_ID_SIZE + 1];

                if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0 || cairn_index_chunk_get(t, ids[10], &loc) < 0)
                        BAIL_OUT("cannot find chunk 10");
                cairn_index_txn_abort(t);
                hex_encode(loc.pack, CAIRN_ID_SIZE, hex);
                snprintf(pack, sizeof pack, "%s/packs/%.2s/%s", repo, hex, hex);
                fd = open(pack, O_RDWR);
                if (fd < 0 || pread(fd, &byte, 1, (off_t) (loc.offset + loc.stored_len / 2)) != 1)
                        BAIL_OUT("cannot read the pack");
                byte ^= 0x40;
                if (pwrite(fd, &byte, 1, (off_t) (loc.offset + loc.stored_len / 2)) != 1)
                        BAIL_OUT("cannot write the pack");
                close(fd);
        }
        is(cairn_chunk_cache_new(r, 16u << 20, 0, &cache), 0, "a fresh cache");
        test_last_log[0] = 0;
        is(cairn_chunk_cache_get(cache, ids[10], CHUNK, &c), -EBADMSG, "a damaged chunk is -EBADMSG");
        ok(strstr(test_last_log, "damaged") && strstr(test_last_log, "Pack "), "the log names the pack: %s", test_last_log);
        is(cairn_chunk_cache_get(cache, ids[10], CHUNK, &c), -EBADMSG, "and again: damage is never cached");
        is(cairn_chunk_cache_get(cache, ids[11], CHUNK, &c), 0, "its neighbour in the pack still reads");
        ok(chunk_right(c, 11), "with the right bytes");
        cairn_chunk_cache_release(cache, c);
        cairn_chunk_cache_get_stats(cache, &st);
        is(st.errors, 2, "two errors counted");
        {
                unsigned failed = 0, right = 0;
                for (uint64_t off = 0; off < CHUNK; off += 64 * 1024) {
                        int k = cairn_chunk_cache_get_part(cache, ids[10], CHUNK, off, &c);
                        if (k == -EBADMSG)
                                failed++;
                        else if (k == 0 && piece_right(c, 10, off))
                                right++;
                        if (k == 0)
                                cairn_chunk_cache_release(cache, c);
                }
                is(failed, 1u, "read by segments, exactly one segment of the damaged chunk fails");
                is(right, 15u, "and its other 15 segments read right");
        }
        cache = cairn_chunk_cache_free(cache);

        /* ---- a cached segment table whose pack a prune replaced ---- */
        {
                struct cairn_chunk_loc loc;
                struct cairn_txn *t = NULL;
                char moved[4700], hex[2 * CAIRN_ID_SIZE + 1], cmd[16000];

                is(cairn_chunk_cache_new(r, 16u << 20, 0, &cache), 0, "a fresh cache");
                is(cairn_chunk_cache_get_part(cache, ids[30], CHUNK, 0, &c), 0, "segment 0 of chunk 30 (its table cached)");
                cairn_chunk_cache_release(cache, c);
                /* "Repack": the same bytes under another pack name, the
                 * index row pointed there, the old pack deleted. */
                pack_path_of(r, repo, ids[30], &loc, pack, sizeof pack);
                loc.pack[0] ^= 0xff;
                hex_encode(loc.pack, CAIRN_ID_SIZE, hex);
                snprintf(moved, sizeof moved, "%s/packs/%.2s", repo, hex);
                snprintf(cmd, sizeof cmd, "mkdir -p '%s' && mv '%s' '%s/%s'", moved, pack, moved, hex);
                if (system(cmd) != 0 || cairn_index_txn_begin(cairn_repo_index(r), true, &t) < 0 ||
                    cairn_index_chunk_put(t, ids[30], &loc) < 0 || cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("cannot move the pack");
                is(cairn_chunk_cache_get_part(cache, ids[30], CHUNK, 600000, &c), 0,
                   "a new segment still reads: the stale location is looked up again");
                ok(piece_right(c, 30, 600000), "with the right bytes");
                cairn_chunk_cache_release(cache, c);
                cache = cairn_chunk_cache_free(cache);
        }

        cairn_repo_free(r);
        free(want);
        free(buf);
        test_rm_rf(tmp);
        return tap_done();
}
