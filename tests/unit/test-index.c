/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdb-index.h"
#include "log.h"
#include "tap.h"
#include "tree.h"
#include "util.h"

static uint64_t rng_state = 0xc0ffee;

static uint64_t rng(void) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void fill_random(void *buf, size_t n) {
        uint8_t *p = buf;
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) rng();
}

/* Expected failures log through libcairn; keep them out of the output but
 * count the errors so that an unexpected one can be reported. */
static atomic_int logged_errors;
static void log_quiet(int level, const char *msg, void *userdata) {
        if (level <= CAIRN_LOG_ERR)
                atomic_fetch_add(&logged_errors, 1);
}

static char *dir;
static struct cairn_index *idx;

static struct cairn_txn *begin(bool write) {
        struct cairn_txn *t;
        int r = cairn_index_txn_begin(idx, write, &t);
        if (r < 0)
                BAIL_OUT("cannot begin a transaction: %d", r);
        return t;
}

static void commit(struct cairn_txn *t) {
        int r = cairn_index_txn_commit(t);
        if (r < 0)
                BAIL_OUT("cannot commit: %d", r);
}

static void test_open(void) {
        char path[4096];
        struct stat st;
        struct cairn_index *other;
        int r;

        r = cairn_index_open(dir, &idx);
        is(r, 0, "index opens in a fresh directory");
        if (r < 0)
                BAIL_OUT("cannot open the index in %s", dir);

        snprintf(path, sizeof path, "%s/data.mdb", dir);
        ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "data.mdb has mode 0600 (got %o)",
           (unsigned) (st.st_mode & 07777));

        snprintf(path, sizeof path, "%s/no/such/dir", dir);
        ok(cairn_index_open(path, &other) < 0, "opening a missing directory fails");

        for (int i = 0; i < _CAIRN_TABLE_MAX; i++)
                ok(cairn_index_table_name(i) != NULL, "table %d is named %s", i, cairn_index_table_name(i));
}

static void test_chunks_packs(void) {
        uint8_t id[CAIRN_ID_SIZE], other[CAIRN_ID_SIZE], pack[CAIRN_ID_SIZE];
        struct cairn_chunk_loc loc = { .offset = 0x123456789aULL, .stored_len = 1000, .raw_len = 4000000000u, .type = 2 };
        struct cairn_chunk_loc got;
        struct cairn_txn *t;
        uint64_t size;
        uint32_t count;

        fill_random(id, sizeof id);
        memcpy(other, id, sizeof id);
        other[31] ^= 1;
        fill_random(loc.pack, sizeof loc.pack);
        fill_random(pack, sizeof pack);

        t = begin(true);
        is(cairn_index_chunk_put(t, id, &loc), 0, "chunk put");
        is(cairn_index_chunk_get(t, id, &got), 0, "chunk get in the same write txn");
        is(cairn_index_pack_put(t, pack, 48u << 20, 77), 0, "pack put");
        commit(t);

        t = begin(false);
        memset(&got, 0, sizeof got);
        is(cairn_index_chunk_get(t, id, &got), 0, "chunk get in a read txn");
        ok(memcmp(got.pack, loc.pack, CAIRN_ID_SIZE) == 0 && got.offset == loc.offset &&
           got.stored_len == loc.stored_len && got.raw_len == loc.raw_len && got.type == loc.type,
           "chunk location survives");
        is(cairn_index_chunk_get(t, other, &got), -ENOENT, "unknown chunk is -ENOENT");
        ok(cairn_index_pack_get(t, pack, &size, &count) == 0 && size == 48u << 20 && count == 77, "pack get");
        is(cairn_index_pack_get(t, id, &size, &count), -ENOENT, "unknown pack is -ENOENT");
        is(cairn_index_chunk_put(t, other, &loc), -EACCES, "a read txn refuses writes");
        cairn_index_txn_abort(t);

        t = begin(true);
        is(cairn_index_chunk_put(t, other, &loc), 0, "put in a write txn");
        cairn_index_txn_abort(t);
        t = begin(false);
        is(cairn_index_chunk_get(t, other, &got), -ENOENT, "an aborted write leaves nothing");
        cairn_index_txn_abort(t);
        cairn_index_txn_abort(NULL);
}

/* Trees */

#define N_NAMES 1000
static char tree_names[N_NAMES][16];   /* sorted */
static uint8_t tree_a[CAIRN_ID_SIZE], tree_b[CAIRN_ID_SIZE], tree_c[CAIRN_ID_SIZE];

static uint8_t *build_tree(const uint8_t *id, size_t n, uint32_t uid_base, size_t *ret_len) {
        struct cairn_tree_builder *b = cairn_tree_builder_new();
        size_t perm[N_NAMES];
        uint8_t *blob;

        for (size_t i = 0; i < n; i++)
                perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
                size_t j = rng() % (i + 1), x = perm[i];
                perm[i] = perm[j];
                perm[j] = x;
        }
        for (size_t k = 0; k < n; k++) {
                size_t i = perm[k];
                struct cairn_entry e = {
                        .type = i % 10 == 0 ? CAIRN_ENTRY_DIR : CAIRN_ENTRY_FILE,
                        .mode = i % 10 == 0 ? 040755 : 0100644,
                        .uid = uid_base + (uint32_t) i, .size = i * 3,
                };
                memcpy(e.ref, id, CAIRN_ID_SIZE);
                if (cairn_tree_builder_add(b, tree_names[i], strlen(tree_names[i]), &e, NULL, 0) < 0)
                        BAIL_OUT("builder add failed");
        }
        if (cairn_tree_builder_finish(b, &blob, ret_len) < 0)
                BAIL_OUT("builder finish failed");
        cairn_tree_builder_free(b);
        return blob;
}

/* Walks @id from @after and checks it yields tree_names[first..n) with uids
 * from @uid_base.  Returns the number of entries seen. */
static size_t check_iter(struct cairn_txn *t, const uint8_t *id, const char *after, size_t after_len,
                         size_t first, size_t n, uint32_t uid_base, const char *what) {
        struct cairn_tree_iter *it;
        const char *name;
        size_t name_len, i = first, seen = 0;
        struct cairn_entry e;
        bool good = true;
        int r;

        r = cairn_index_tree_iter_new(t, id, after, after_len, &it);
        if (r < 0) {
                ok(false, "%s: iterator opens (%d)", what, r);
                return 0;
        }
        while ((r = cairn_index_tree_iter_next(it, &name, &name_len, &e)) > 0) {
                if (i >= n || name_len != strlen(tree_names[i]) || memcmp(name, tree_names[i], name_len) != 0 ||
                    e.uid != uid_base + i || memcmp(e.ref, id, CAIRN_ID_SIZE) != 0) {
                        if (good)
                                diag("%s: entry %zu is \"%.*s\" uid %u", what, seen, (int) name_len, name, e.uid);
                        good = false;
                }
                i++;
                seen++;
        }
        is(cairn_index_tree_iter_next(it, &name, &name_len, &e), 0, "%s: iterator stays at the end", what);
        cairn_index_tree_iter_free(it);
        ok(r == 0 && good && i == n, "%s: yields entries %zu..%zu in order (r=%d, saw %zu)", what, first, n, r, seen);
        return seen;
}

static int count_rows(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        (*(size_t *) userdata)++;
        return 0;
}

static int stop_at_three(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        return ++(*(size_t *) userdata) == 3 ? 7 : 0;
}

static void test_trees(void) {
        _cleanup_free_ uint8_t *blob_a = NULL, *blob_b = NULL, *blob_c = NULL;
        size_t len_a, len_b, len_c, rows;
        struct cairn_txn *t;
        struct cairn_entry e;
        int r;

        /* Equal lengths so that "nXXXXXa" falls between two neighbours. */
        for (size_t i = 0; i < N_NAMES; i++)
                snprintf(tree_names[i], sizeof tree_names[i], "n%05zu", i * 7);

        fill_random(tree_a, sizeof tree_a);
        tree_a[31] = 0x40;
        memcpy(tree_b, tree_a, sizeof tree_a);
        tree_b[31] = 0x41;   /* the very next id: rows of a and b are adjacent */
        memcpy(tree_c, tree_a, sizeof tree_a);
        tree_c[31] = 0x3f;

        blob_a = build_tree(tree_a, N_NAMES, 0, &len_a);
        blob_b = build_tree(tree_b, N_NAMES, 100000, &len_b);
        blob_c = build_tree(tree_c, 10, 200000, &len_c);

        t = begin(true);
        is(cairn_index_tree_put_blob(t, tree_a, blob_a, len_a), 0, "tree blob of %d entries is put", N_NAMES);
        is(cairn_index_tree_put_blob(t, tree_b, blob_b, len_b), 0, "a second tree with the same names is put");
        is(cairn_index_tree_put_blob(t, tree_c, blob_c, len_c), 0, "a third, small tree is put");
        is(cairn_index_tree_put_blob(t, tree_a, blob_a, len_a), 0, "putting a blob again is fine");

        uint8_t bad_id[CAIRN_ID_SIZE];
        memset(bad_id, 0xee, sizeof bad_id);
        int before = atomic_load(&logged_errors);
        is(cairn_index_tree_put_blob(t, bad_id, blob_a, len_a - 1), -EBADMSG, "a truncated tree blob is -EBADMSG");
        ok(atomic_load(&logged_errors) > before, "and the damage is logged");
        is(cairn_index_tree_lookup(t, bad_id, tree_names[0], strlen(tree_names[0]), &e), -ENOENT,
           "and no row of it was written");
        commit(t);

        t = begin(false);
        rows = 0;
        is(cairn_index_foreach_raw(t, CAIRN_TABLE_TREES, count_rows, &rows), 0, "raw walk of trees");
        is(rows, 2 * N_NAMES + 10, "one row per entry, none duplicated by the second put");
        rows = 0;
        is(cairn_index_foreach_raw(t, CAIRN_TABLE_TREES, stop_at_three, &rows), 7,
           "raw walk stops with the callback's value");

        size_t bad = 0;
        for (size_t i = 0; i < N_NAMES; i++) {
                r = cairn_index_tree_lookup(t, tree_a, tree_names[i], strlen(tree_names[i]), &e);
                if (r < 0 || e.uid != i || e.size != i * 3 || memcmp(e.ref, tree_a, CAIRN_ID_SIZE) != 0 ||
                    e.type != (i % 10 == 0 ? CAIRN_ENTRY_DIR : CAIRN_ENTRY_FILE)) {
                        if (bad++ < 5)
                                diag("lookup of %s: r=%d uid=%u", tree_names[i], r, e.uid);
                }
                r = cairn_index_tree_lookup(t, tree_b, tree_names[i], strlen(tree_names[i]), &e);
                if (r < 0 || e.uid != 100000 + i) {
                        if (bad++ < 5)
                                diag("lookup of %s in b: r=%d uid=%u", tree_names[i], r, e.uid);
                }
        }
        is(bad, 0, "point lookup of every name in both trees finds its own entry");

        is(cairn_index_tree_lookup(t, tree_a, "n00001", 6, &e), -ENOENT, "missing name is -ENOENT");
        is(cairn_index_tree_lookup(t, tree_c, tree_names[10], strlen(tree_names[10]), &e), -ENOENT,
           "a name only in the neighbouring trees is -ENOENT");
        is(cairn_index_tree_lookup(t, tree_a, "", 0, &e), -ENOENT, "empty name is -ENOENT");
        is(cairn_index_tree_lookup(t, tree_a, "n00007/x", 8, &e), -ENOENT, "name with '/' is -ENOENT");
        char longname[600];
        memset(longname, 'n', sizeof longname);
        is(cairn_index_tree_lookup(t, tree_a, longname, sizeof longname, &e), -ENOENT, "overlong name is -ENOENT");

        check_iter(t, tree_a, NULL, 0, 0, N_NAMES, 0, "tree a from the start");
        check_iter(t, tree_b, NULL, 0, 0, N_NAMES, 100000, "tree b from the start");
        check_iter(t, tree_c, NULL, 0, 0, 10, 200000, "tree c (id just below a) from the start");
        check_iter(t, tree_a, "", 0, 0, N_NAMES, 0, "tree a after \"\"");
        check_iter(t, tree_a, tree_names[0], strlen(tree_names[0]), 1, N_NAMES, 0, "tree a after its first name");
        check_iter(t, tree_a, tree_names[499], strlen(tree_names[499]), 500, N_NAMES, 0, "tree a after name 499");
        check_iter(t, tree_a, tree_names[N_NAMES - 1], strlen(tree_names[N_NAMES - 1]), N_NAMES, N_NAMES, 0,
                   "tree a after its last name");
        check_iter(t, tree_c, tree_names[9], strlen(tree_names[9]), 10, 10, 200000,
                   "tree c after its last name (tree a follows)");

        char between[32];
        snprintf(between, sizeof between, "%sa", tree_names[123]);
        check_iter(t, tree_a, between, strlen(between), 124, N_NAMES, 0, "tree a after a name between two");
        check_iter(t, tree_a, "a", 1, 0, N_NAMES, 0, "tree a after a name before all");
        check_iter(t, tree_a, "z", 1, N_NAMES, N_NAMES, 0, "tree a after a name past all");

        char after_long[300];
        memset(after_long, 'z', sizeof after_long);
        memcpy(after_long, tree_names[700], strlen(tree_names[700]));
        check_iter(t, tree_a, after_long, sizeof after_long, 701, N_NAMES, 0, "tree a after a 300-byte name");

        /* Names of the longest length: an `after` beyond CAIRN_NAME_MAX
         * must still resume right after its 255-byte prefix. */
        uint8_t tree_d[CAIRN_ID_SIZE];
        char long_a[CAIRN_NAME_MAX], long_b[CAIRN_NAME_MAX], after_d[CAIRN_NAME_MAX + 3];
        memset(tree_d, 0xdd, sizeof tree_d);
        memset(long_a, 'x', sizeof long_a);
        long_a[CAIRN_NAME_MAX - 1] = 'a';
        memcpy(long_b, long_a, sizeof long_a);
        long_b[CAIRN_NAME_MAX - 1] = 'b';
        memcpy(after_d, long_a, sizeof long_a);
        memcpy(after_d + CAIRN_NAME_MAX, "zzz", 3);

        struct cairn_tree_builder *b = cairn_tree_builder_new();
        struct cairn_entry le = { .type = CAIRN_ENTRY_FILE, .mode = 0100644 };
        _cleanup_free_ uint8_t *blob_d = NULL;
        size_t len_d;
        if (cairn_tree_builder_add(b, long_b, sizeof long_b, &le, NULL, 0) < 0 ||
            cairn_tree_builder_add(b, long_a, sizeof long_a, &le, NULL, 0) < 0 ||
            cairn_tree_builder_finish(b, &blob_d, &len_d) < 0)
                BAIL_OUT("cannot build the tree of long names");
        cairn_tree_builder_free(b);
        cairn_index_txn_abort(t);
        t = begin(true);
        is(cairn_index_tree_put_blob(t, tree_d, blob_d, len_d), 0, "a tree of 255-byte names is put");
        commit(t);
        t = begin(false);
        is(cairn_index_tree_lookup(t, tree_d, long_b, sizeof long_b, &e), 0, "a 255-byte name is found");

        struct cairn_tree_iter *it;
        const char *nm;
        size_t nm_len, n_after = 0;
        bool only_b = true;
        if (cairn_index_tree_iter_new(t, tree_d, after_d, sizeof after_d, &it) == 0) {
                while ((r = cairn_index_tree_iter_next(it, &nm, &nm_len, &e)) > 0) {
                        n_after++;
                        only_b = only_b && nm_len == sizeof long_b && memcmp(nm, long_b, nm_len) == 0;
                }
                cairn_index_tree_iter_free(it);
        }
        ok(n_after == 1 && only_b, "after a 258-byte name, only the 255-byte name that sorts later comes (saw %zu)",
           n_after);

        uint8_t unknown[CAIRN_ID_SIZE];
        memcpy(unknown, tree_a, sizeof unknown);
        unknown[31] = 0x42;
        check_iter(t, unknown, NULL, 0, 0, 0, 0, "an unknown tree (id just above b)");
        memset(unknown, 0xff, sizeof unknown);
        check_iter(t, unknown, NULL, 0, 0, 0, 0, "an unknown tree past every row");
        cairn_index_txn_abort(t);
}

/* Contents */

#define N_CHUNKS 10000
static struct cairn_content_chunk content_chunks[N_CHUNKS];
static uint64_t content_starts[N_CHUNKS + 1];
static uint8_t content_x[CAIRN_ID_SIZE], content_lo[CAIRN_ID_SIZE], content_hi[CAIRN_ID_SIZE];
static uint8_t content_last[CAIRN_ID_SIZE];

static bool same_chunk(const struct cairn_content_chunk *a, const struct cairn_content_chunk *b) {
        return a->length == b->length && a->flags == b->flags && memcmp(a->id, b->id, CAIRN_ID_SIZE) == 0;
}

/* Index of the chunk holding @off by bisection over content_starts. */
static size_t ref_find(uint64_t off) {
        size_t lo = 0, hi = N_CHUNKS;
        while (hi - lo > 1) {
                size_t mid = (lo + hi) / 2;
                if (content_starts[mid] <= off)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

static void test_contents(void) {
        struct cairn_content_chunk lo_chunks[3], hi_chunks[5], last_chunks[2], got;
        struct cairn_txn *t;
        uint64_t start, size;
        size_t holes = 0;
        int r;

        for (size_t i = 0; i < N_CHUNKS; i++) {
                struct cairn_content_chunk *c = &content_chunks[i];
                memset(c, 0, sizeof *c);
                /* Mostly chunker-sized, some tiny, a few single bytes. */
                c->length = i % 97 == 0 ? 1 : i % 13 == 0 ? 1 + rng() % 100 : (512 << 10) + rng() % (7 << 20);
                if (i % 11 == 5 || i == N_CHUNKS - 1) {
                        c->flags = CAIRN_CHUNK_HOLE;
                        holes++;
                } else
                        fill_random(c->id, CAIRN_ID_SIZE);
                content_starts[i + 1] = content_starts[i] + c->length;
        }

        fill_random(content_x, sizeof content_x);
        content_x[0] = 0x55;
        content_x[31] = 0x80;
        memcpy(content_lo, content_x, sizeof content_x);
        content_lo[31] = 0x7f;
        memcpy(content_hi, content_x, sizeof content_x);
        content_hi[31] = 0x81;
        memset(content_last, 0xff, sizeof content_last);

        /* The neighbours reach further than x, so any bleed shows. */
        for (size_t i = 0; i < ELEMENTSOF(lo_chunks); i++)
                lo_chunks[i] = (struct cairn_content_chunk) { .length = (uint64_t) 1 << 50, .id = { 0xaa, (uint8_t) i } };
        for (size_t i = 0; i < ELEMENTSOF(hi_chunks); i++)
                hi_chunks[i] = (struct cairn_content_chunk) { .length = (uint64_t) 1 << 50, .id = { 0xbb, (uint8_t) i } };
        last_chunks[0] = (struct cairn_content_chunk) { .length = 10, .id = { 0xcc } };
        last_chunks[1] = (struct cairn_content_chunk) { .length = 20, .flags = CAIRN_CHUNK_HOLE };

        t = begin(true);
        is(cairn_index_content_put(t, content_lo, lo_chunks, ELEMENTSOF(lo_chunks)), 0, "content below x is put");
        is(cairn_index_content_put(t, content_hi, hi_chunks, ELEMENTSOF(hi_chunks)), 0, "content above x is put");
        is(cairn_index_content_put(t, content_last, last_chunks, 2), 0, "content with the largest id is put");
        is(cairn_index_content_put(t, content_x, content_chunks, N_CHUNKS), 0,
           "content of %d chunks (%zu holes) is put", N_CHUNKS, holes);

        uint8_t empty[CAIRN_ID_SIZE];
        memcpy(empty, content_x, sizeof empty);
        empty[31] = 0x90;
        is(cairn_index_content_put(t, empty, NULL, 0), 0, "a content without chunks is accepted");
        struct cairn_content_chunk zero_len[2] = { { .length = 5, .id = { 1 } }, { .length = 0, .id = { 2 } } };
        is(cairn_index_content_put(t, empty, zero_len, 2), -EINVAL, "a zero-length chunk is -EINVAL");
        struct cairn_content_chunk bad_hole = { .length = 5, .flags = CAIRN_CHUNK_HOLE, .id = { 1 } };
        is(cairn_index_content_put(t, empty, &bad_hole, 1), -EINVAL, "a hole with an id is -EINVAL");
        commit(t);

        t = begin(false);
        ok(cairn_index_content_size(t, content_x, &size) == 0 && size == content_starts[N_CHUNKS],
           "content size is the sum of the chunk lengths");
        ok(cairn_index_content_size(t, content_lo, &size) == 0 && size == 3ULL << 50,
           "size of the content just below x");
        ok(cairn_index_content_size(t, content_hi, &size) == 0 && size == 5ULL << 50,
           "size of the content just above x");
        ok(cairn_index_content_size(t, content_last, &size) == 0 && size == 30,
           "size of the content with the largest id");
        is(cairn_index_content_size(t, empty, &size), -ENOENT, "a content without rows has no size (-ENOENT)");
        is(cairn_index_content_find(t, empty, 0, &got, &start), -ENOENT, "nor a chunk at 0");
        is(cairn_index_content_find(t, empty, 5, &got, &start), -ENOENT, "the refused lists left no rows");

        size_t bad = 0;
        for (size_t i = 0; i < N_CHUNKS; i++) {
                uint64_t probes[2] = { content_starts[i], content_starts[i + 1] - 1 };
                for (size_t k = 0; k < 2; k++) {
                        r = cairn_index_content_find(t, content_x, probes[k], &got, &start);
                        if (r < 0 || start != content_starts[i] || !same_chunk(&got, &content_chunks[i])) {
                                if (bad++ < 5)
                                        diag("find at %llu (chunk %zu, %s byte): r=%d start=%llu",
                                             (unsigned long long) probes[k], i, k ? "last" : "first", r,
                                             (unsigned long long) start);
                        }
                }
        }
        is(bad, 0, "find at the first and last byte of each of the %d chunks", N_CHUNKS);

        bad = 0;
        for (size_t n = 0; n < 10000; n++) {
                uint64_t off = rng() % content_starts[N_CHUNKS];
                size_t i = ref_find(off);
                r = cairn_index_content_find(t, content_x, off, &got, &start);
                if (r < 0 || start != content_starts[i] || !same_chunk(&got, &content_chunks[i])) {
                        if (bad++ < 5)
                                diag("find at %llu: r=%d", (unsigned long long) off, r);
                }
        }
        is(bad, 0, "find at 10000 random offsets");

        is(cairn_index_content_find(t, content_x, content_starts[N_CHUNKS], &got, &start), -ENOENT,
           "offset == size is -ENOENT (not the next content's chunk)");
        is(cairn_index_content_find(t, content_x, content_starts[N_CHUNKS] + 12345, &got, &start), -ENOENT,
           "offset past the end is -ENOENT");
        is(cairn_index_content_find(t, content_x, UINT64_MAX, &got, &start), -ENOENT, "offset 2^64-1 is -ENOENT");
        ok(cairn_index_content_find(t, content_lo, (3ULL << 50) - 1, &got, &start) == 0 && got.id[0] == 0xaa &&
           got.id[1] == 2 && start == 2ULL << 50, "last byte of the content below x");
        is(cairn_index_content_find(t, content_lo, 3ULL << 50, &got, &start), -ENOENT,
           "the content below x ends where it should, not in x");
        ok(cairn_index_content_find(t, content_hi, 0, &got, &start) == 0 && got.id[0] == 0xbb && got.id[1] == 0 &&
           start == 0, "first byte of the content above x");
        ok(cairn_index_content_find(t, content_last, 15, &got, &start) == 0 && got.flags == CAIRN_CHUNK_HOLE &&
           got.length == 20 && start == 10, "a hole is found as a hole");
        is(cairn_index_content_find(t, content_last, 30, &got, &start), -ENOENT, "end of the last content");
        cairn_index_txn_abort(t);
}

/* Snapshots */

struct snap_seen {
        char job[16];
        int64_t t;
        uint8_t id0;
        char json[32];
};

struct snap_walk {
        struct snap_seen seen[16];
        size_t n;
        int stop_after;     /* return 1 after this many, 0: never */
        int fail_with;
};

static int snap_cb(const char *job, int64_t start_ns, const uint8_t snap_id[CAIRN_ID_SIZE],
                   const char *json, size_t json_len, void *userdata) {
        struct snap_walk *w = userdata;
        if (w->fail_with)
                return w->fail_with;
        if (w->n < ELEMENTSOF(w->seen)) {
                struct snap_seen *s = &w->seen[w->n];
                snprintf(s->job, sizeof s->job, "%s", job);
                s->t = start_ns;
                s->id0 = snap_id[0];
                snprintf(s->json, sizeof s->json, "%.*s", (int) json_len, json);
        }
        w->n++;
        return w->stop_after && (int) w->n == w->stop_after ? 1 : 0;
}

static bool walk_is(struct cairn_txn *t, const char *job, const char *expect) {
        struct snap_walk w = {};
        char got[256] = "";
        int r = cairn_index_snapshot_foreach(t, job, snap_cb, &w);
        if (r < 0)
                return false;
        for (size_t i = 0; i < w.n && i < ELEMENTSOF(w.seen); i++) {
                char one[96];
                snprintf(one, sizeof one, "%s%s@%lld#%u=%s", i ? " " : "", w.seen[i].job, (long long) w.seen[i].t,
                         w.seen[i].id0, w.seen[i].json);
                strncat(got, one, sizeof got - strlen(got) - 1);
        }
        if (strcmp(got, expect) != 0) {
                diag("walk of %s: got \"%s\"", job ? job : "(all)", got);
                diag("expected \"%s\"", expect);
                return false;
        }
        return true;
}

static void put_snap(struct cairn_txn *t, const char *job, int64_t when, uint8_t id0, const char *json) {
        uint8_t id[CAIRN_ID_SIZE] = { id0 };
        int r = cairn_index_snapshot_put(t, job, when, id, json, strlen(json));
        if (r < 0)
                diag("snapshot put %s@%lld: %d", job, (long long) when, r);
}

#define DAY 86400000000000LL

static void test_snapshots(void) {
        struct cairn_txn *t;
        uint8_t id[CAIRN_ID_SIZE] = { 9 };

        t = begin(true);
        /* "pg" is a prefix of "pgdb": their rows must not mix. */
        put_snap(t, "pgdb", 3 * DAY, 3, "{\"n\":3}");
        put_snap(t, "pg", 20 * DAY, 12, "{\"n\":12}");
        put_snap(t, "pgdb", 1 * DAY, 1, "{\"n\":1}");
        put_snap(t, "pg", 10 * DAY + 1, 11, "{}");
        put_snap(t, "pgdb", 2 * DAY, 2, "");
        put_snap(t, "pg", 300 * DAY, 13, "[1]");
        is(cairn_index_snapshot_put(t, "pg", -1, id, "{}", 2), -EINVAL, "a start before 1970 is -EINVAL");
        is(cairn_index_snapshot_put(t, "", 5, id, "{}", 2), -EINVAL, "an empty job is -EINVAL");
        commit(t);

        t = begin(false);
        ok(walk_is(t, "pgdb", "pgdb@86400000000000#1={\"n\":1} pgdb@172800000000000#2= pgdb@259200000000000#3={\"n\":3}"),
           "snapshots of one job in time order");
        ok(walk_is(t, "pg", "pg@864000000000001#11={} pg@1728000000000000#12={\"n\":12} pg@25920000000000000#13=[1]"),
           "snapshots of a job whose name prefixes another, in time order");
        ok(walk_is(t, NULL,
                   "pg@864000000000001#11={} pg@1728000000000000#12={\"n\":12} pg@25920000000000000#13=[1] "
                   "pgdb@86400000000000#1={\"n\":1} pgdb@172800000000000#2= pgdb@259200000000000#3={\"n\":3}"),
           "all snapshots in (job, time) order");
        ok(walk_is(t, "p", ""), "a job that prefixes others has no snapshots");
        ok(walk_is(t, "pgdb0", ""), "an unknown job sorting after all has no snapshots");

        struct snap_walk w = { .stop_after = 2 };
        is(cairn_index_snapshot_foreach(t, NULL, snap_cb, &w), 0, "a callback returning 1 stops with success");
        is(w.n, 2, "after two snapshots");
        w = (struct snap_walk) { .fail_with = -ENOTRECOVERABLE };
        is(cairn_index_snapshot_foreach(t, "pg", snap_cb, &w), -ENOTRECOVERABLE, "a callback error is returned");
        cairn_index_txn_abort(t);

        t = begin(true);
        is(cairn_index_snapshot_del(t, "pg", 20 * DAY), 0, "snapshot del");
        is(cairn_index_snapshot_del(t, "pg", 20 * DAY), -ENOENT, "deleting it again is -ENOENT");
        is(cairn_index_snapshot_del(t, "pgdb", 4 * DAY), -ENOENT, "deleting an unknown time is -ENOENT");
        commit(t);

        t = begin(false);
        ok(walk_is(t, "pg", "pg@864000000000001#11={} pg@25920000000000000#13=[1]"), "the deleted one is gone");
        ok(walk_is(t, "pgdb", "pgdb@86400000000000#1={\"n\":1} pgdb@172800000000000#2= pgdb@259200000000000#3={\"n\":3}"),
           "the other job is untouched");
        cairn_index_txn_abort(t);
}

static void test_persistence(void) {
        struct cairn_txn *t;
        struct cairn_entry e;
        struct cairn_content_chunk got;
        uint64_t size, start;
        int r;

        idx = cairn_index_free(idx);
        ok(idx == NULL, "free returns NULL");
        cairn_index_free(NULL);

        r = cairn_index_open(dir, &idx);
        is(r, 0, "index reopens");
        if (r < 0)
                BAIL_OUT("cannot reopen the index");

        t = begin(false);
        ok(cairn_index_tree_lookup(t, tree_a, tree_names[321], strlen(tree_names[321]), &e) == 0 && e.uid == 321,
           "a tree row survives reopening");
        check_iter(t, tree_b, NULL, 0, 0, N_NAMES, 100000, "tree b after reopening");
        ok(cairn_index_content_size(t, content_x, &size) == 0 && size == content_starts[N_CHUNKS],
           "content size survives reopening");
        ok(cairn_index_content_find(t, content_x, content_starts[5000] + 1, &got, &start) == 0 &&
           start == content_starts[5000] && same_chunk(&got, &content_chunks[5000]), "content rows survive reopening");
        ok(walk_is(t, "pg", "pg@864000000000001#11={} pg@25920000000000000#13=[1]"), "snapshots survive reopening");
        cairn_index_txn_abort(t);
}

/* Concurrency: readers see whole commits or nothing of them. */

#define N_READERS 8
#define N_LOOKUPS 10000
#define N_HOT 64

static uint8_t hot_ids[N_HOT][CAIRN_ID_SIZE];
static atomic_int readers_done, reader_errors, reader_inconsistent, readers_saw_commit;

/* Reads the whole hot set: one commit wrote all of it, so one snapshot
 * must show a single generation.  Returns it, 0 on inconsistency. */
static uint64_t sweep(struct cairn_txn *t) {
        uint64_t gen = 0;
        for (size_t i = 0; i < N_HOT; i++) {
                struct cairn_chunk_loc loc;
                if (cairn_index_chunk_get(t, hot_ids[i], &loc) < 0) {
                        atomic_fetch_add(&reader_errors, 1);
                        return 0;
                }
                if (loc.raw_len != loc.offset * N_HOT + i || loc.pack[0] != (uint8_t) loc.offset ||
                    (i > 0 && loc.offset != gen))
                        return 0;
                gen = loc.offset;
        }
        return gen;
}

static void *reader(void *arg) {
        struct cairn_txn *t;
        uint64_t gen, first_gen, rs = (uintptr_t) arg * 1000003 + 1;
        bool saw_commit = false;
        int r;

        r = cairn_index_txn_begin(idx, false, &t);
        if (r < 0) {
                atomic_fetch_add(&reader_errors, 1);
                atomic_fetch_add(&readers_done, 1);
                return NULL;
        }
        first_gen = gen = sweep(t);

        for (size_t n = 0; n < N_LOOKUPS; n++) {
                struct cairn_chunk_loc loc;
                struct cairn_entry e;
                struct cairn_content_chunk c;
                uint64_t start;
                size_t i = (n * 7 + (uintptr_t) arg) % N_HOT;

                rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;

                /* A fresh snapshot now and then, so that commits show up;
                 * generations only ever move forward. */
                if (n % 50 == 0 && n > 0) {
                        cairn_index_txn_reset(t);
                        if (cairn_index_txn_renew(t) < 0) {
                                atomic_fetch_add(&reader_errors, 1);
                                break;
                        }
                        uint64_t g = sweep(t);
                        if (g == 0 || g < gen)
                                atomic_fetch_add(&reader_inconsistent, 1);
                        gen = g;
                        if (gen > first_gen)
                                saw_commit = true;
                }

                /* Halfway, make sure the writer really runs beside us:
                 * wait for a commit this reader has not seen yet. */
                if (n == N_LOOKUPS / 2 && !saw_commit) {
                        for (int tries = 0; tries < 30000 && !saw_commit; tries++) {
                                usleep(1000);
                                cairn_index_txn_reset(t);
                                if (cairn_index_txn_renew(t) < 0) {
                                        atomic_fetch_add(&reader_errors, 1);
                                        break;
                                }
                                uint64_t g = sweep(t);
                                if (g == 0 || g < gen)
                                        atomic_fetch_add(&reader_inconsistent, 1);
                                gen = g;
                                saw_commit = gen > first_gen;
                        }
                }

                switch (n % 4) {
                case 0: {
                        size_t k = (rs >> 33) % N_NAMES;
                        r = cairn_index_tree_lookup(t, tree_a, tree_names[k], strlen(tree_names[k]), &e);
                        if (r < 0 || e.uid != k)
                                atomic_fetch_add(&reader_inconsistent, 1);
                        break;
                }
                case 1: {
                        uint64_t off = (rs >> 11) % content_starts[N_CHUNKS];
                        size_t k = ref_find(off);
                        r = cairn_index_content_find(t, content_x, off, &c, &start);
                        if (r < 0 || start != content_starts[k] || !same_chunk(&c, &content_chunks[k]))
                                atomic_fetch_add(&reader_inconsistent, 1);
                        break;
                }
                default:
                        r = cairn_index_chunk_get(t, hot_ids[i], &loc);
                        if (r < 0)
                                atomic_fetch_add(&reader_errors, 1);
                        else if (loc.offset != gen || loc.raw_len != loc.offset * N_HOT + i)
                                atomic_fetch_add(&reader_inconsistent, 1);
                }
        }

        cairn_index_txn_abort(t);
        if (saw_commit)
                atomic_fetch_add(&readers_saw_commit, 1);
        atomic_fetch_add(&readers_done, 1);
        return NULL;
}

static int write_generation(uint64_t g) {
        struct cairn_txn *t;
        int r;

        r = cairn_index_txn_begin(idx, true, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < N_HOT; i++) {
                struct cairn_chunk_loc loc = { .offset = g, .raw_len = (uint32_t) (g * N_HOT + i), .stored_len = 1 };
                memset(loc.pack, (uint8_t) g, sizeof loc.pack);
                r = cairn_index_chunk_put(t, hot_ids[i], &loc);
                if (r < 0) {
                        cairn_index_txn_abort(t);
                        return r;
                }
        }
        return cairn_index_txn_commit(t);
}

static void test_concurrency(void) {
        pthread_t threads[N_READERS];
        uint64_t g = 1;
        int write_errors = 0;

        for (size_t i = 0; i < N_HOT; i++)
                fill_random(hot_ids[i], CAIRN_ID_SIZE);
        if (write_generation(g) < 0)
                BAIL_OUT("cannot write the first generation");

        for (uintptr_t i = 0; i < N_READERS; i++)
                if (pthread_create(&threads[i], NULL, reader, (void *) i) != 0)
                        BAIL_OUT("pthread_create failed");

        while (atomic_load(&readers_done) < N_READERS)
                if (write_generation(++g) < 0)
                        write_errors++;

        for (size_t i = 0; i < N_READERS; i++)
                pthread_join(threads[i], NULL);

        diag("%llu commits; %d of %d readers saw a commit land while they ran", (unsigned long long) g,
             atomic_load(&readers_saw_commit), N_READERS);
        is(write_errors, 0, "the writer commits while %d readers run", N_READERS);
        is(atomic_load(&readers_saw_commit), N_READERS, "every reader saw commits land while it read");
        is(atomic_load(&reader_errors), 0, "%d readers x %d lookups: no errors", N_READERS, N_LOOKUPS);
        is(atomic_load(&reader_inconsistent), 0, "every read txn saw one whole commit, never going back");
}

static void cleanup_dir(void) {
        char path[4096];
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/lock.mdb", dir);
        unlink(path);
        rmdir(dir);
}


/* Pages a transaction allocates and frees again ("loose" pages) are not
 * written: without care the file ends before the last page its meta page
 * counts, and the open-time truncation check would call a sound index
 * damaged (seen once after a prune).  Transactions that add and delete
 * rows at random, the index reopened after each. */
static void test_loose_pages(void) {
        _cleanup_free_ char *d = NULL;
        struct cairn_index *x = NULL;
        struct cairn_chunk_loc loc = { .offset = 8, .stored_len = 1, .raw_len = 1 };
        uint64_t seed = 99;
        int bad = 0, r = 0, round;

        if (asprintf(&d, "%s/loose", dir) < 0 || mkdir(d, 0700) < 0 || cairn_index_open(d, &x) < 0)
                BAIL_OUT("cannot make an index");
        for (round = 0; round < 60 && !bad && r >= 0; round++) {
                struct cairn_txn *t = NULL;
                uint32_t n = 1 + (uint32_t) (seed % 3000);

                if (cairn_index_txn_begin(x, true, &t) < 0)
                        BAIL_OUT("txn");
                for (uint32_t i = 0; i < 2 * n && r >= 0; i++) {
                        uint8_t id[CAIRN_ID_SIZE] = { 0 };
                        seed = seed * 6364136223846793005u + 1442695040888963407u;
                        uint32_t key = (uint32_t) (seed >> 40) % 5000;
                        memcpy(id, &key, sizeof key);
                        if (i < n || (seed >> 20) % 2)
                                r = cairn_index_chunk_put(t, id, &loc);
                        else if ((r = cairn_index_del(t, CAIRN_TABLE_CHUNKS, id)) == -ENOENT)
                                r = 0;
                }
                if (r < 0 || cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("a transaction failed (%d)", r);
                cairn_index_free(x);
                x = NULL;
                if (cairn_index_open(d, &x) < 0)
                        bad = round + 1;
        }
        is(bad, 0, "60 transactions of adds and deletes: the index reopens after each (%d)", bad);
        cairn_index_free(x);
}

/* cairn_index_warm() reads data.mdb's layout itself (a hint for the
 * mount): on the real file, and on damaged copies of it, it must neither
 * crash nor read out of bounds (ASan builds run this too). */
static void test_warm(void) {
        static const char *const tables[] = { "snapshots", "trees", "chunks", "contents" };
        static const bool leaves[] = { true, false, true, false };
        _cleanup_free_ char *src = NULL, *copy_dir = NULL, *copy = NULL;
        _cleanup_free_ uint8_t *orig = NULL;
        bool stop = false;
        size_t len = 0;
        uint64_t seed = 12345;
        int fd, runs = 0;

        if (asprintf(&src, "%s/data.mdb", dir) < 0 || asprintf(&copy_dir, "%s/warm", dir) < 0 ||
            asprintf(&copy, "%s/warm/data.mdb", dir) < 0 || mkdir(copy_dir, 0700) < 0)
                BAIL_OUT("cannot set up the warm-up test");
        if (read_file_at(AT_FDCWD, src, 1u << 30, (char **) &orig, &len) < 0 || len < 8192)
                BAIL_OUT("cannot read data.mdb");

        cairn_index_warm(dir, tables, leaves, ELEMENTSOF(tables));
        ok(1, "warming a real index (%zu bytes) returns", len);
        is(cairn_index_prefetch(idx, UINT64_MAX, &stop), 1, "the whole index is read into the page cache");
        is(cairn_index_prefetch(idx, 4096, &stop), 0, "not when it is over the limit");
        cairn_index_warm(copy_dir, tables, leaves, ELEMENTSOF(tables));
        ok(1, "warming a directory without data.mdb returns");

        /* Truncated copies, then copies with a few bytes changed: most
         * in the two meta pages and the first pages (the main DB and the
         * tables' roots), some anywhere. */
        for (size_t cut = 0; cut < 12; cut++) {
                size_t n = (size_t[]) { 0, 1, 100, 4095, 4096, 4097, 8191, 8192, 8193, 12288, len / 2, len - 1 }[cut];
                fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || (n && write(fd, orig, n) != (ssize_t) n) || close(fd) < 0)
                        BAIL_OUT("cannot write a copy");
                cairn_index_warm(copy_dir, tables, leaves, ELEMENTSOF(tables));
                runs++;
        }
        for (int i = 0; i < 400; i++) {
                uint8_t *bad = malloc(len);
                if (!bad)
                        BAIL_OUT("out of memory");
                memcpy(bad, orig, len);
                for (int k = 0; k < 1 + i % 8; k++) {
                        seed = seed * 6364136223846793005u + 1442695040888963407u;
                        size_t at = (seed >> 33) % (i % 4 == 3 ? len : MIN(len, (size_t) 16 * 4096));
                        bad[at] = i % 2 ? (uint8_t) (seed >> 17) : 0xff;
                }
                fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || write(fd, bad, len) != (ssize_t) len || close(fd) < 0)
                        BAIL_OUT("cannot write a copy");
                free(bad);
                cairn_index_warm(copy_dir, tables, leaves, ELEMENTSOF(tables));
                runs++;
        }
        is(runs, 412, "warming 12 truncated and 400 damaged copies returns every time");
        (void) unlink(copy);
        (void) rmdir(copy_dir);
}

int main(void) {
        const char *base = getenv("CAIRN_TEST_TMPDIR");

        if (asprintf(&dir, "%s/test-index.XXXXXX", base && *base ? base : "/tmp") < 0 || !mkdtemp(dir))
                BAIL_OUT("cannot create a temporary directory");
        cairn_log_set_handler(log_quiet, NULL);

        test_open();
        test_chunks_packs();
        test_trees();
        test_contents();
        test_snapshots();
        int before = atomic_load(&logged_errors);
        test_persistence();
        test_concurrency();
        test_warm();
        test_loose_pages();
        is(atomic_load(&logged_errors), before, "no errors were logged by reopening or concurrent use");

        idx = cairn_index_free(idx);
        cleanup_dir();
        free(dir);
        return tap_done();
}
