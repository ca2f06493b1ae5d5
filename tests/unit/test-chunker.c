/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunker.h"
#include "crypto.h"
#include "tap.h"
#include "util.h"

#define KiB 1024u
#define MiB (1024u * 1024)

/* Large enough for ~50 chunks of the default sizes, small enough to stay a
 * few seconds under ASan. */
#define DATA_SIZE (64u * MiB)

static const struct cairn_chunker_params defaults = {
        CAIRN_CHUNK_MIN_DEFAULT, CAIRN_CHUNK_AVG_DEFAULT, CAIRN_CHUNK_MAX_DEFAULT,
};

/* splitmix64: fixed, portable data; rand() differs between libcs. */
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

static void seed_from(uint8_t seed[32], uint8_t first) {
        for (unsigned i = 0; i < 32; i++)
                seed[i] = (uint8_t) (first + i);
}

static struct cairn_chunker *chunker_or_bail(const struct cairn_chunker_params *p, const uint8_t seed[32]) {
        struct cairn_chunker *c = NULL;
        int r = cairn_chunker_new(p, seed, &c);
        if (r < 0 || !c)
                BAIL_OUT("cairn_chunker_new failed: %d", r);
        return c;
}

struct cut_list {
        size_t *len;
        size_t n;
        bool bad;               /* a cut of 0 or past the window was returned */
};

static void cut_list_release(struct cut_list *l) {
        free(l->len);
        *l = (struct cut_list) {};
}

/* Chunk @buf the way the writer does: each call sees at most max_size
 * bytes, or what is left at the end of the input. */
static struct cut_list chunk_all(const struct cairn_chunker *c, const uint8_t *buf, size_t len) {
        struct cut_list l = {};
        size_t cap = 0, max = cairn_chunker_params(c)->max_size;

        for (size_t pos = 0; pos < len;) {
                size_t w = MIN(len - pos, max), n = cairn_chunker_cut(c, buf + pos, w);

                if (n == 0 || n > w) {
                        l.bad = true;
                        break;
                }
                if (l.n == cap) {
                        cap = cap ? 2 * cap : 64;
                        l.len = realloc(l.len, cap * sizeof *l.len);
                        if (!l.len)
                                BAIL_OUT("out of memory");
                }
                l.len[l.n++] = n;
                pos += n;
        }
        return l;
}

static bool cut_lists_equal(const struct cut_list *a, const struct cut_list *b) {
        return a->n == b->n && memcmp(a->len, b->len, a->n * sizeof *a->len) == 0;
}

/* How many cut offsets (chunk ends) two lists over the same data share. */
static size_t shared_cut_offsets(const struct cut_list *a, const struct cut_list *b) {
        size_t i = 0, j = 0, oa, ob, shared = 0;

        if (a->n == 0 || b->n == 0)
                return 0;
        oa = a->len[0];
        ob = b->len[0];
        for (;;) {
                if (oa == ob)
                        shared++;
                if (oa <= ob) {
                        if (++i == a->n)
                                break;
                        oa += a->len[i];
                } else {
                        if (++j == b->n)
                                break;
                        ob += b->len[j];
                }
        }
        return shared;
}

static int cmp_id(const void *a, const void *b) {
        return memcmp(a, b, CAIRN_ID_SIZE);
}

/* SHA-256 of every chunk, sorted, so two lists compare as multisets. */
static uint8_t *chunk_ids(const uint8_t *buf, const struct cut_list *l) {
        uint8_t *ids = malloc(l->n * CAIRN_ID_SIZE + 1);
        size_t pos = 0;

        if (!ids)
                BAIL_OUT("out of memory");
        for (size_t i = 0; i < l->n; i++) {
                cairn_sha256(buf + pos, l->len[i], ids + i * CAIRN_ID_SIZE);
                pos += l->len[i];
        }
        qsort(ids, l->n, CAIRN_ID_SIZE, cmp_id);
        return ids;
}

static size_t common_ids(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
        size_t i = 0, j = 0, common = 0;

        while (i < na && j < nb) {
                int d = memcmp(a + i * CAIRN_ID_SIZE, b + j * CAIRN_ID_SIZE, CAIRN_ID_SIZE);
                if (d == 0) {
                        common++;
                        i++;
                        j++;
                } else if (d < 0)
                        i++;
                else
                        j++;
        }
        return common;
}

/* Every chunk but the last within [min, max], the last within [1, max],
 * and nothing lost or invented. */
static void check_bounds(const char *what, const struct cairn_chunker *c, const struct cut_list *l, size_t len) {
        const struct cairn_chunker_params *p = cairn_chunker_params(c);
        size_t total = 0, small = 0, big = 0;

        ok(!l->bad, "%s: every cut within its window", what);
        for (size_t i = 0; i < l->n; i++) {
                total += l->len[i];
                if (i + 1 < l->n && l->len[i] < p->min_size)
                        small++;
                if (l->len[i] > p->max_size)
                        big++;
        }
        is(total, len, "%s: chunks add up to the input", what);
        is(small, 0, "%s: no chunk but the last below min_size", what);
        is(big, 0, "%s: no chunk above max_size", what);
        ok(l->n > 0 && l->len[l->n - 1] >= 1 && l->len[l->n - 1] <= p->max_size,
           "%s: last chunk within [1, max_size]", what);
}

static void test_params(void) {
        static const struct {
                uint32_t min, avg, max;
                int expect;
        } cases[] = {
                { 512 * KiB, 1 * MiB, 8 * MiB, 0 },
                { 64, 128, 64 * MiB, 0 },                       /* both limits */
                { 63, 128, 1 * MiB, -EINVAL },                  /* min below the window */
                { 0, 128, 1 * MiB, -EINVAL },
                { 1 * MiB, 1 * MiB, 8 * MiB, -EINVAL },         /* min == avg */
                { 2 * MiB, 1 * MiB, 8 * MiB, -EINVAL },         /* min > avg */
                { 512 * KiB, 768 * KiB, 8 * MiB, -EINVAL },     /* avg not a power of two */
                { 512 * KiB, 1 * MiB + 1, 8 * MiB, -EINVAL },
                { 512 * KiB, 1 * MiB, 1 * MiB, -EINVAL },       /* max == avg */
                { 512 * KiB, 1 * MiB, 768 * KiB, -EINVAL },     /* max < avg */
                { 512 * KiB, 1 * MiB, 64 * MiB + 1, -EINVAL },  /* max too large */
                { 512 * KiB, 1 * MiB, UINT32_MAX, -EINVAL },
                { 0, 0, 0, -EINVAL },
        };
        uint8_t seed[32];

        seed_from(seed, 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct cairn_chunker_params p = { cases[i].min, cases[i].avg, cases[i].max };
                struct cairn_chunker *c = NULL;
                int r = cairn_chunker_new(&p, seed, &c);

                is(r, cases[i].expect, "new(%u, %u, %u) = %d", p.min_size, p.avg_size, p.max_size, cases[i].expect);
                ok((r == 0) == (c != NULL), "new(%u, %u, %u): a chunker exactly on success",
                   p.min_size, p.avg_size, p.max_size);
                cairn_chunker_free(c);
        }
        ok(cairn_chunker_free(NULL) == NULL, "free(NULL) returns NULL");
}

/* cut() of exactly @len bytes copied into a heap block of that size, so a
 * sanitizer build catches any read past the end of the input. */
static size_t cut_exact(const struct cairn_chunker *c, const uint8_t *data, size_t len) {
        _cleanup_free_ uint8_t *copy = malloc(len ? len : 1);

        if (!copy)
                BAIL_OUT("out of memory");
        memcpy(copy, data, len);
        return cairn_chunker_cut(c, copy, len);
}

static void test_short_inputs(const struct cairn_chunker *c, const uint8_t *data) {
        const struct cairn_chunker_params *p = cairn_chunker_params(c);

        is(p->min_size, defaults.min_size, "params: min_size kept");
        is(p->avg_size, defaults.avg_size, "params: avg_size kept");
        is(p->max_size, defaults.max_size, "params: max_size kept");

        is(cut_exact(c, data, 0), 0, "len 0 gives 0");
        is(cut_exact(c, data, 1), 1, "len 1 gives 1");
        is(cut_exact(c, data, 64), 64, "len 64 gives 64");
        is(cut_exact(c, data, 65), 65, "len 65 gives 65");
        is(cut_exact(c, data, p->min_size - 1), p->min_size - 1, "len min-1 gives min-1");
        is(cut_exact(c, data, p->min_size), p->min_size, "len min gives min");
        is(cut_exact(c, data, p->min_size + 1), p->min_size + 1, "len min+1 gives min+1");
}

/* A cut depends only on the bytes before it: more input past max_size
 * changes nothing, and input that ends exactly at the cut gets the same
 * cut; input that ends earlier is taken whole. */
static void test_window_rule(const struct cairn_chunker *c, const uint8_t *data, const struct cut_list *l) {
        size_t max = cairn_chunker_params(c)->max_size, pos = 0;
        unsigned more_same = 0, exact_same = 0, shorter_whole = 0, tested = 0;

        for (size_t i = 0; i + 1 < l->n && tested < 16; i++, tested++) {
                size_t n = l->len[i];

                more_same += cairn_chunker_cut(c, data + pos, max + 12345) == n;
                exact_same += cairn_chunker_cut(c, data + pos, n) == n;
                shorter_whole += cairn_chunker_cut(c, data + pos, n - 1) == n - 1;
                pos += n;
        }
        ok(tested > 0, "window rule: %u chunks tested", tested);
        is(more_same, tested, "window rule: bytes past max_size do not move a cut");
        is(exact_same, tested, "window rule: input ending at the cut keeps it");
        is(shorter_whole, tested, "window rule: input ending before the cut is one chunk");
}

/* Pinned cut lengths (format v1): seed 0x00..0x1f, fill_random(seed 1).
 * If this fails the chunker's output changed, and every existing
 * repository would stop deduplicating against new backups. */
static void test_known_answer(const struct cut_list *l) {
        static const size_t expect[] = { 1107121, 1100143, 753201, 1331478, 1298080, 2179583, 1241754, 1583608 };
        size_t n = MIN(l->n, ELEMENTSOF(expect));
        bool same = l->n >= ELEMENTSOF(expect);

        for (size_t i = 0; i < n; i++)
                same = same && l->len[i] == expect[i];
        if (!same) {
                for (size_t i = 0; i < n; i++)
                        diag("cut %zu: %zu (expected %zu)", i, l->len[i], expect[i]);
        }
        ok(same, "known answer: first %zu cut lengths unchanged", ELEMENTSOF(expect));
}

static void test_distribution(const char *what, const struct cairn_chunker *c, const struct cut_list *l, size_t len) {
        const struct cairn_chunker_params *p = cairn_chunker_params(c);
        size_t smallest = SIZE_MAX, largest = 0, full = l->n > 1 ? l->n - 1 : 0, sum = 0;
        double mean;

        /* The last chunk is cut by the end of the input, not the hash. */
        for (size_t i = 0; i < full; i++) {
                sum += l->len[i];
                smallest = MIN(smallest, l->len[i]);
                largest = MAX(largest, l->len[i]);
        }
        mean = full ? (double) sum / (double) full : 0;
        diag("%s: %zu chunks over %zu bytes, mean %.0f (%.2f x avg), smallest %zu, largest %zu", what, l->n, len,
             mean, mean / p->avg_size, smallest, largest);
        ok(full >= 8, "%s: enough chunks to judge (%zu)", what, full);
        ok(mean >= 0.5 * p->avg_size && mean <= 2.0 * p->avg_size, "%s: mean %.0f within 0.5..2 x avg %u", what,
           mean, p->avg_size);
        /* Random data at these sizes cuts by hash, not at max: a chunker
         * that never matches its mask would cut every chunk at max. */
        ok(largest < p->max_size, "%s: random data never reaches max_size", what);
}

/* Normalized chunking, level 2: before avg the mask has log2(avg) + 2
 * bits, so a chunk ends below avg with probability
 * 1 - exp(-(avg - min) / (4 avg)): 17.1 % for 2K/8K.  Level 0 would give
 * 53 %, level 1 31 %. */
static void test_normalization(const struct cairn_chunker *c, const struct cut_list *l) {
        const struct cairn_chunker_params *p = cairn_chunker_params(c);
        size_t below = 0;
        double share;

        for (size_t i = 0; i + 1 < l->n; i++)
                below += l->len[i] < p->avg_size;
        share = l->n > 1 ? 100.0 * (double) below / (double) (l->n - 1) : 0;
        diag("normalization: %.1f%% of chunks below avg (level 2 predicts 17.1%%)", share);
        ok(share >= 12.0 && share <= 23.0, "normalization level 2: %.1f%% of chunks below avg", share);
}

/* Pinned output for tiny sizes, where many cuts fall within 64 bytes of
 * min_size and so depend on the hash being warmed up before it:
 * SHA-256 of the le32 cut lengths of fill_random(seed 3), 1 MiB, seed
 * 0x00..0x1f, sizes 128/256/2048. */
static void test_known_answer_tiny(const uint8_t seed[32]) {
        static const char expect[] = "377ae3ccf8be45b6a137bb9a87fc3e4f756e8983b4a1d8fe599c05dba31905e6";
        _cleanup_(cairn_chunker_freep) struct cairn_chunker *c =
                chunker_or_bail(&(struct cairn_chunker_params) { 128, 256, 2048 }, seed);
        _cleanup_free_ uint8_t *data = malloc(MiB), *lens = NULL;
        struct cut_list l;
        uint8_t digest[CAIRN_ID_SIZE];
        char hex[2 * CAIRN_ID_SIZE + 1];

        if (!data)
                BAIL_OUT("out of memory");
        fill_random(data, MiB, 3);
        l = chunk_all(c, data, MiB);
        lens = malloc(4 * l.n + 1);
        if (!lens)
                BAIL_OUT("out of memory");
        for (size_t i = 0; i < l.n; i++)
                put_le32(lens + 4 * i, (uint32_t) l.len[i]);
        cairn_sha256(lens, 4 * l.n, digest);
        hex_encode(digest, sizeof digest, hex);
        diag("128/256/2048: %zu chunks, cut list digest %s", l.n, hex);
        ok(streq(hex, expect), "known answer: 128/256/2048 cut list unchanged");
        cut_list_release(&l);
}

int main(void) {
        _cleanup_(cairn_chunker_freep) struct cairn_chunker *c = NULL, *again = NULL, *other = NULL, *small = NULL;
        _cleanup_free_ uint8_t *shifted = NULL, *ids_a = NULL, *ids_b = NULL;
        struct cut_list a, a2, a_other, b, s;
        uint8_t seed[32], seed2[32];
        const uint8_t *orig;
        size_t common, shared;
        double pct;

        test_params();

        seed_from(seed, 0);
        seed_from(seed2, 1);
        c = chunker_or_bail(&defaults, seed);
        again = chunker_or_bail(&defaults, seed);
        other = chunker_or_bail(&defaults, seed2);

        /* shifted = one byte, then data: the insert at the start of a dump. */
        shifted = malloc(DATA_SIZE + 1);
        if (!shifted)
                BAIL_OUT("out of memory");
        fill_random(shifted + 1, DATA_SIZE, 1);
        shifted[0] = 0x5a;
        orig = shifted + 1;

        test_short_inputs(c, orig);

        a = chunk_all(c, orig, DATA_SIZE);
        check_bounds("random", c, &a, DATA_SIZE);
        test_distribution("random", c, &a, DATA_SIZE);
        test_window_rule(c, orig, &a);
        test_known_answer(&a);

        a2 = chunk_all(again, orig, DATA_SIZE);
        ok(cut_lists_equal(&a, &a2), "same seed, same data: same cuts (%zu chunks)", a.n);
        cut_list_release(&a2);
        a2 = chunk_all(c, orig, DATA_SIZE);
        ok(cut_lists_equal(&a, &a2), "same chunker twice: same cuts");
        cut_list_release(&a2);

        a_other = chunk_all(other, orig, DATA_SIZE);
        check_bounds("other seed", other, &a_other, DATA_SIZE);
        shared = shared_cut_offsets(&a, &a_other);
        diag("other seed: %zu chunks, %zu cut offsets shared with the first seed (the end counts as one)",
             a_other.n, shared);
        ok(!cut_lists_equal(&a, &a_other), "another seed gives other cuts");
        ok(a.len[0] != a_other.len[0], "another seed moves the first cut");
        ok(shared * 10 < a.n, "another seed shares < 10%% of cut offsets");
        cut_list_release(&a_other);

        b = chunk_all(c, shifted, DATA_SIZE + 1);
        check_bounds("one byte inserted", c, &b, DATA_SIZE + 1);
        ids_a = chunk_ids(orig, &a);
        ids_b = chunk_ids(shifted, &b);
        common = common_ids(ids_a, a.n, ids_b, b.n);
        pct = b.n ? 100.0 * (double) common / (double) b.n : 0;
        diag("one byte inserted at the start: %zu of %zu chunks identical (%.1f%%), %zu chunks before",
             common, b.n, pct, a.n);
        ok(pct >= 95.0, "one byte inserted: >= 95%% of chunks identical (%.1f%%)", pct);
        ok(b.n - common <= 2, "one byte inserted: at most 2 chunks new (%zu)", b.n - common);
        cut_list_release(&b);
        cut_list_release(&a);

        /* Constant data never matches by hash (or matches everywhere):
         * the bounds must hold either way. */
        memset(shifted, 0, DATA_SIZE + 1);
        b = chunk_all(c, shifted, 20 * MiB + 3);
        check_bounds("zeros", c, &b, 20 * MiB + 3);
        cut_list_release(&b);
        ok(cairn_chunker_cut(c, shifted, 3 * (size_t) defaults.max_size) <= defaults.max_size,
           "more than max_size of input still cuts at max_size at the latest");

        /* Small sizes give thousands of chunks: a finer look at the mean,
         * and min_size/avg_size that are not the defaults. */
        fill_random(shifted, DATA_SIZE, 7);
        small = chunker_or_bail(&(struct cairn_chunker_params) { 2 * KiB, 8 * KiB, 64 * KiB }, seed);
        s = chunk_all(small, shifted, 16 * MiB);
        check_bounds("2K/8K/64K", small, &s, 16 * MiB);
        test_distribution("2K/8K/64K", small, &s, 16 * MiB);
        test_normalization(small, &s);
        cut_list_release(&s);

        test_known_answer_tiny(seed);

        return tap_done();
}
