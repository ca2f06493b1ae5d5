/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairn-microbench: single-thread throughput of each stage of the data path
 * (chunk, hash, compress, encrypt, index), to see which one bounds a
 * backup or a mount and to catch a stage that got slower.
 *
 *   cairn-microbench [SIZE_MIB]      (default 256)
 *
 * Every byte-rate line processes at least SIZE_MIB MiB; MB/s is 10^6
 * bytes per second.  The data sets are SIZE_MIB (at most 64 MiB), larger
 * than the caches, walked as often as needed.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunker.h"
#include "codec.h"
#include "crypto.h"
#include "lmdb-index.h"
#include "util.h"

#define MiB (1024u * 1024)
#define BLOCK MiB                       /* the unit hashed, sealed and encoded */
#define DATA_MAX (64u * MiB)

#define INDEX_IDS 1000000u
#define INDEX_BATCH 10000u
#define INDEX_LOOKUPS 1000000u
#define LOOKUPS_PER_TXN 10000u          /* a mount renews its snapshot often too */

/* Results flow here so no stage can be optimized away. */
static volatile uint8_t sink;

static uint64_t splitmix(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
                put_le64(p + i, splitmix(&seed));
        for (; i < n; i++)
                p[i] = (uint8_t) splitmix(&seed);
}

/* What a database server's dump and logs look like: repeated structure,
 * varying numbers.  zstd gets a realistic, not a trivial, ratio on it. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed) {
        static const char *const status[] = { "new", "paid", "shipped", "cancelled", "refunded" };
        static const char *const level[] = { "LOG", "LOG", "LOG", "WARNING", "ERROR" };
        char line[512];
        size_t i = 0;

        while (i < n) {
                uint64_t r = splitmix(&seed), q = splitmix(&seed);
                int len;

                if (r % 3)
                        len = snprintf(line, sizeof line,
                                       "INSERT INTO orders (id, customer_id, amount, status, created_at) VALUES "
                                       "(%" PRIu64 ", %" PRIu64 ", %" PRIu64 ".%02" PRIu64
                                       ", '%s', '2024-%02" PRIu64 "-%02" PRIu64 " %02" PRIu64 ":%02" PRIu64
                                       ":%02" PRIu64 "');\n",
                                       q % 100000000, (q >> 27) % 1000000, (r >> 8) % 100000, (r >> 25) % 100,
                                       status[(r >> 32) % ELEMENTSOF(status)], (r >> 36) % 12 + 1,
                                       (r >> 40) % 28 + 1, (r >> 45) % 24, (r >> 50) % 60, (q >> 50) % 60);
                else
                        len = snprintf(line, sizeof line,
                                       "2024-05-%02" PRIu64 " %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64
                                       " UTC [%" PRIu64 "] %s:  duration: %" PRIu64 ".%03" PRIu64
                                       " ms  statement: SELECT * FROM orders WHERE customer_id = %" PRIu64 "\n",
                                       (r >> 3) % 28 + 1, (r >> 8) % 24, (r >> 13) % 60, (r >> 19) % 60,
                                       (r >> 25) % 1000, 1000 + q % 60000, level[(q >> 20) % ELEMENTSOF(level)],
                                       (q >> 24) % 5000, (q >> 37) % 1000, (q >> 47) % 1000000);
                if (len < 0)
                        break;
                memcpy(p + i, line, MIN((size_t) len, n - i));
                i += MIN((size_t) len, n - i);
        }
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static void report_rate(const char *name, double bytes, double secs, const char *note) {
        printf("%-34s %10.1f MB/s%s%s\n", name, bytes / secs / 1e6, note ? "  " : "", note ? note : "");
        fflush(stdout);
}

static void report_ops(const char *name, double ops, double secs) {
        printf("%-34s %10.0f ops/s\n", name, ops / secs);
        fflush(stdout);
}

/* How many passes over @data_size bytes make at least @total. */
static size_t passes_for(size_t total, size_t data_size) {
        return (total + data_size - 1) / data_size;
}

static int bench_chunker(const uint8_t *data, size_t data_size, size_t total) {
        _cleanup_(cairn_chunker_freep) struct cairn_chunker *c = NULL;
        static const struct cairn_chunker_params p = {
                CAIRN_CHUNK_MIN_DEFAULT, CAIRN_CHUNK_AVG_DEFAULT, CAIRN_CHUNK_MAX_DEFAULT,
        };
        uint8_t seed[32];
        size_t chunks = 0, done = 0, passes = passes_for(total, data_size);
        double t;
        char note[64];
        int r;

        fill_random(seed, sizeof seed, 42);
        r = cairn_chunker_new(&p, seed, &c);
        if (r < 0)
                return r;

        t = now_s();
        for (size_t pass = 0; pass < passes; pass++)
                for (size_t pos = 0; pos < data_size; chunks++) {
                        size_t n = cairn_chunker_cut(c, data + pos, MIN(data_size - pos, (size_t) p.max_size));
                        pos += n;
                        done += n;
                }
        t = now_s() - t;
        snprintf(note, sizeof note, "(%zu chunks, mean %zu KiB)", chunks, done / chunks / 1024);
        report_rate("chunker (FastCDC 512K/1M/8M)", (double) done, t, note);
        return 0;
}

static void bench_hash(const uint8_t *data, size_t data_size, size_t total) {
        uint8_t key[CAIRN_KEY_SIZE], out[CAIRN_ID_SIZE];
        size_t passes = passes_for(total, data_size), done = 0;
        double t;

        t = now_s();
        for (size_t pass = 0; pass < passes; pass++)
                for (size_t pos = 0; pos < data_size; pos += BLOCK, done += BLOCK) {
                        cairn_sha256(data + pos, BLOCK, out);
                        sink ^= out[0];
                }
        report_rate("sha256 (1 MiB blocks)", (double) done, now_s() - t, NULL);

        fill_random(key, sizeof key, 43);
        done = 0;
        t = now_s();
        for (size_t pass = 0; pass < passes; pass++)
                for (size_t pos = 0; pos < data_size; pos += BLOCK, done += BLOCK) {
                        cairn_hmac_sha256(key, data + pos, BLOCK, out);
                        sink ^= out[0];
                }
        report_rate("hmac-sha256 (1 MiB blocks)", (double) done, now_s() - t, NULL);
}

static int bench_aead(const uint8_t *data, size_t data_size, size_t total) {
        _cleanup_free_ uint8_t *sealed = malloc(BLOCK + CAIRN_AEAD_OVERHEAD), *opened = malloc(BLOCK);
        uint8_t key[CAIRN_KEY_SIZE], aad[CAIRN_ID_SIZE];
        size_t passes = passes_for(total, data_size), done = 0;
        double t;
        int r;

        if (!sealed || !opened)
                return -ENOMEM;
        fill_random(key, sizeof key, 44);
        fill_random(aad, sizeof aad, 45);

        t = now_s();
        for (size_t pass = 0; pass < passes; pass++)
                for (size_t pos = 0; pos < data_size; pos += BLOCK, done += BLOCK) {
                        r = cairn_aead_seal(key, aad, sizeof aad, data + pos, BLOCK, sealed);
                        if (r < 0)
                                return r;
                        sink ^= sealed[BLOCK];
                }
        report_rate("aes-256-gcm seal (1 MiB blocks)", (double) done, now_s() - t, NULL);

        /* Opening one sealed block over and over is the same work as
         * opening many: GCM has no state that carries between calls. */
        done = 0;
        t = now_s();
        for (size_t pass = 0; pass < passes; pass++)
                for (size_t pos = 0; pos < data_size; pos += BLOCK, done += BLOCK) {
                        r = cairn_aead_open(key, aad, sizeof aad, sealed, BLOCK + CAIRN_AEAD_OVERHEAD, opened);
                        if (r < 0)
                                return r;
                        sink ^= opened[pos % BLOCK];
                }
        report_rate("aes-256-gcm open (1 MiB blocks)", (double) done, now_s() - t, NULL);
        return 0;
}

/* Encode every 1 MiB block of @data with @codec (timed, repeated to reach
 * @total), then decode the stored blocks (timed, likewise).  Decoding
 * includes the integrity check the codec always does. */
static int bench_codec(const char *what, const struct cairn_codec *codec, const uint8_t *data, size_t data_size,
                       size_t total) {
        size_t blocks = data_size / BLOCK, bound = cairn_codec_bound(codec, BLOCK);
        size_t passes = passes_for(total, data_size), done = 0, stored_total = 0;
        _cleanup_free_ uint8_t *ids = malloc(blocks * CAIRN_ID_SIZE), *stored = malloc(blocks * bound),
                               *out = malloc(BLOCK);
        _cleanup_free_ size_t *stored_len = calloc(blocks, sizeof *stored_len);
        char name[64], note[64];
        double t;
        int r;

        if (!ids || !stored || !out || !stored_len)
                return -ENOMEM;
        for (size_t b = 0; b < blocks; b++)
                cairn_codec_id(codec, data + b * BLOCK, BLOCK, ids + b * CAIRN_ID_SIZE);

        t = now_s();
        for (size_t pass = 0; pass < passes; pass++)
                for (size_t b = 0; b < blocks; b++, done += BLOCK) {
                        r = cairn_codec_encode(codec, ids + b * CAIRN_ID_SIZE, data + b * BLOCK, BLOCK,
                                               stored + b * bound, &stored_len[b]);
                        if (r < 0)
                                return r;
                }
        t = now_s() - t;
        for (size_t b = 0; b < blocks; b++)
                stored_total += stored_len[b];
        snprintf(name, sizeof name, "codec encode %s", what);
        snprintf(note, sizeof note, "(stored %.1f%% of raw)", 100.0 * (double) stored_total / (double) data_size);
        report_rate(name, (double) done, t, note);

        done = 0;
        t = now_s();
        for (size_t pass = 0; pass < passes; pass++)
                for (size_t b = 0; b < blocks; b++, done += BLOCK) {
                        r = cairn_codec_decode(codec, ids + b * CAIRN_ID_SIZE, stored + b * bound, stored_len[b],
                                               out, BLOCK);
                        if (r < 0)
                                return r;
                        sink ^= out[b];
                }
        t = now_s() - t;
        snprintf(name, sizeof name, "codec decode %s", what);
        report_rate(name, (double) done, t, "(includes the integrity check)");
        return 0;
}

static int bench_codecs(const uint8_t *random, const uint8_t *text, size_t data_size, size_t total) {
        _cleanup_(cairn_codec_freep) struct cairn_codec *plain = NULL, *enc = NULL, *enc_seg = NULL;
        uint8_t enc_key[CAIRN_KEY_SIZE], id_key[CAIRN_KEY_SIZE];
        int r;

        r = cairn_codec_new(NULL, NULL, 3, 0, &plain);
        if (r < 0)
                return r;
        fill_random(enc_key, sizeof enc_key, 46);
        fill_random(id_key, sizeof id_key, 47);
        r = cairn_codec_new(enc_key, id_key, 3, 0, &enc);
        if (r < 0)
                return r;
        r = cairn_codec_new(enc_key, id_key, 3, CAIRN_SEGMENT_DEFAULT, &enc_seg);
        if (r < 0)
                return r;

        r = bench_codec("zstd-3 text", plain, text, data_size, total);
        if (r >= 0)
                r = bench_codec("zstd-3 random", plain, random, data_size, total);
        if (r >= 0)
                r = bench_codec("zstd-3+aes text", enc, text, data_size, total);
        if (r >= 0)
                r = bench_codec("zstd-3+aes text, 64K segments", enc_seg, text, data_size, total);
        return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int index_put_all(struct cairn_index *idx, const uint8_t *ids, const struct cairn_chunk_loc *loc) {
        for (size_t i = 0; i < INDEX_IDS; i += INDEX_BATCH) {
                struct cairn_txn *t = NULL;
                int r = cairn_index_txn_begin(idx, true, &t);
                if (r < 0)
                        return r;
                for (size_t j = i; j < MIN(i + INDEX_BATCH, (size_t) INDEX_IDS); j++) {
                        r = cairn_index_chunk_put(t, ids + j * CAIRN_ID_SIZE, loc);
                        if (r < 0) {
                                cairn_index_txn_abort(t);
                                return r;
                        }
                }
                r = cairn_index_txn_commit(t);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int index_get_random(struct cairn_index *idx, const uint8_t *ids) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct cairn_chunk_loc loc;
        uint64_t s = 49;
        int r;

        r = cairn_index_txn_begin(idx, false, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < INDEX_LOOKUPS; i++) {
                if (i > 0 && i % LOOKUPS_PER_TXN == 0) {
                        cairn_index_txn_reset(t);
                        r = cairn_index_txn_renew(t);
                        if (r < 0)
                                return r;
                }
                r = cairn_index_chunk_get(t, ids + (splitmix(&s) % INDEX_IDS) * CAIRN_ID_SIZE, &loc);
                if (r < 0)
                        return r;   /* every id was stored: -ENOENT is a failure too */
                sink ^= loc.pack[0];
        }
        return 0;
}

static int bench_index(void) {
        const char *tmp = getenv("TMPDIR");
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ uint8_t *ids = malloc((size_t) INDEX_IDS * CAIRN_ID_SIZE);
        struct cairn_index *idx = NULL;
        struct cairn_chunk_loc loc = { .offset = 123456, .stored_len = 400000, .raw_len = 1 << 20,
                                       .type = CAIRN_BLOB_DATA };
        char name[64];
        double t;
        int r;

        if (!ids)
                return -ENOMEM;
        if (asprintf(&dir, "%s/cairn-microbench.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
                return -ENOMEM;
        if (!mkdtemp(dir))
                return -errno;
        fill_random(ids, (size_t) INDEX_IDS * CAIRN_ID_SIZE, 48);
        fill_random(loc.pack, sizeof loc.pack, 50);

        r = cairn_index_open(dir, &idx);
        if (r >= 0) {
                t = now_s();
                r = index_put_all(idx, ids, &loc);
                t = now_s() - t;
                if (r >= 0) {
                        snprintf(name, sizeof name, "index chunk_put (%uk/txn)", INDEX_BATCH / 1000);
                        report_ops(name, INDEX_IDS, t);
                }
        }
        if (r >= 0) {
                t = now_s();
                r = index_get_random(idx, ids);
                t = now_s() - t;
                if (r >= 0)
                        report_ops("index chunk_get (random, 1M rows)", INDEX_LOOKUPS, t);
        }
        cairn_index_free(idx);
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return r;
}

int main(int argc, char **argv) {
        _cleanup_free_ uint8_t *random = NULL, *text = NULL;
        size_t total, data_size;
        unsigned long mib = 256;
        char *end;
        int r;

        if (argc > 2 || (argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help")))) {
                fprintf(stderr, "Usage: %s [SIZE_MIB]   (default 256)\n", argv[0]);
                return argc > 2 ? 2 : 0;
        }
        if (argc == 2) {
                errno = 0;
                mib = strtoul(argv[1], &end, 10);
                if (errno || end == argv[1] || *end || mib == 0 || mib > 1024 * 1024) {
                        fprintf(stderr, "%s: SIZE_MIB must be a whole number from 1 to 1048576, not \"%s\"\n",
                                argv[0], argv[1]);
                        return 2;
                }
        }
        total = (size_t) mib * MiB;
        data_size = MIN(total, (size_t) DATA_MAX);

        random = malloc(data_size);
        text = malloc(data_size);
        if (!random || !text) {
                fprintf(stderr, "%s: out of memory\n", argv[0]);
                return 1;
        }
        fill_random(random, data_size, 1);
        fill_text(text, data_size, 2);

        printf("# cairn-microbench: %lu MiB per measurement, one thread\n", mib);
        fflush(stdout);

        r = bench_chunker(random, data_size, total);
        if (r < 0) {
                fprintf(stderr, "chunker: %s\n", strerror(-r));
                return 1;
        }
        bench_hash(random, data_size, total);
        r = bench_codecs(random, text, data_size, total);
        if (r < 0) {
                fprintf(stderr, "codec: %s\n", strerror(-r));
                return 1;
        }
        r = bench_aead(random, data_size, total);
        if (r < 0) {
                fprintf(stderr, "aes-256-gcm: %s\n", strerror(-r));
                return 1;
        }
        r = bench_index();
        if (r < 0) {
                fprintf(stderr, "index: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
