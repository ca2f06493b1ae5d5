/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prune: packs only forgotten snapshots used are deleted, a mostly-empty
 * pack is repacked, everything a remaining snapshot holds still reads
 * back (also for a reader running during the prune), a dry run and a
 * second prune change nothing, the result equals a rebuilt index, and
 * leftovers of crashed writers go once past grace. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "crypto.h"
#include "log.h"
#include "pack.h"
#include "prune.h"
#include "repo.h"
#include "snapshot.h"
#include "store.h"
#include "tap.h"
#include "test-util.h"
#include "tree.h"
#include "util.h"

#define HOUR_NS (3600LL * 1000000000LL)
#define DAY_S 86400LL

/* ---- table digests and file lists -------------------------------------- */

struct table_digest {
        size_t rows;
        struct cairn_sha256 *h;
};

static int digest_row(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        struct table_digest *d = userdata;
        uint8_t len[8];
        put_le64(len, klen);
        cairn_sha256_update(d->h, len, 8);
        cairn_sha256_update(d->h, key, klen);
        put_le64(len, vlen);
        cairn_sha256_update(d->h, len, 8);
        cairn_sha256_update(d->h, val, vlen);
        d->rows++;
        return 0;
}

struct digests {
        size_t rows[_CAIRN_TABLE_MAX];
        uint8_t sums[_CAIRN_TABLE_MAX][32];
};

static void digest_tables(struct cairn_repo *r, struct digests *d) {
        struct cairn_txn *t = NULL;
        if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0)
                BAIL_OUT("cannot begin a read transaction");
        for (int i = 0; i < _CAIRN_TABLE_MAX; i++) {
                struct table_digest td = { .h = cairn_sha256_new() };
                if (cairn_index_foreach_raw(t, i, digest_row, &td) < 0)
                        BAIL_OUT("cannot walk table %s", cairn_index_table_name(i));
                cairn_sha256_final(td.h, d->sums[i]);
                cairn_sha256_free(td.h);
                d->rows[i] = td.rows;
        }
        cairn_index_txn_abort(t);
}

static bool digests_equal(const struct digests *a, const struct digests *b, const char *what) {
        bool same = true;
        for (int i = 0; i < _CAIRN_TABLE_MAX; i++)
                if (a->rows[i] != b->rows[i] || memcmp(a->sums[i], b->sums[i], 32) != 0) {
                        diag("%s: table %s differs (%zu rows vs %zu)", what, cairn_index_table_name(i), a->rows[i],
                             b->rows[i]);
                        same = false;
                }
        return same;
}

/* "path size mtime" of every file below packs/ and snapshots/, sorted. */
static char *file_list_buf;
static size_t file_list_len, file_list_skip;

static int file_list_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        char line[4400];
        int n;
        (void) ftw;
        if (flag != FTW_F)
                return 0;
        n = snprintf(line, sizeof line, "%s %lld %lld.%09ld\n", path + file_list_skip, (long long) st->st_size,
                     (long long) st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        file_list_buf = realloc(file_list_buf, file_list_len + (size_t) n + 1);
        memcpy(file_list_buf + file_list_len, line, (size_t) n + 1);
        file_list_len += (size_t) n;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *file_list(const char *repo) {
        char dir[4300], *lines[4096], *out, *save = NULL;
        size_t n = 0, len;

        file_list_buf = NULL;
        file_list_len = 0;
        file_list_skip = strlen(repo) + 1;
        snprintf(dir, sizeof dir, "%s/packs", repo);
        nftw(dir, file_list_one, 16, FTW_PHYS);
        snprintf(dir, sizeof dir, "%s/snapshots", repo);
        nftw(dir, file_list_one, 16, FTW_PHYS);
        if (!file_list_buf)
                return strdup("");
        for (char *l = strtok_r(file_list_buf, "\n", &save); l && n < 4096; l = strtok_r(NULL, "\n", &save))
                lines[n++] = l;
        qsort(lines, n, sizeof *lines, cmp_str);
        len = file_list_len + 1;
        out = malloc(len);
        out[0] = 0;
        for (size_t i = 0; i < n; i++) {
                strcat(out, lines[i]);
                strcat(out, "\n");
        }
        free(file_list_buf);
        return out;
}

static bool pack_file_exists(const char *repo, const uint8_t id[32]) {
        char rel[100], path[4300];
        cairn_pack_path(id, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", repo, rel);
        return access(path, F_OK) == 0;
}

/* ---- building a repository --------------------------------------------- */

/* Full-file SHA-256 of every content stored, to check reads against. */
struct expect {
        uint8_t cid[32];
        uint8_t sum[32];
        uint64_t size;
};

struct fixture {
        const char *repo;
        struct cairn_repo *r;
        struct cairn_store *s;
        struct expect exp[32];
        size_t n_exp;
};

/* A file of chunks: lens[i] pseudo-random bytes from seeds[i], or a hole
 * when seeds[i] is 0.  Stores the chunks and the content blob; returns the
 * content id and (when @chunk_ids) the chunk ids. */
static void put_content(struct fixture *f, const size_t *lens, const uint64_t *seeds, size_t n, uint8_t cid[32],
                        uint8_t (*chunk_ids)[32]) {
        struct cairn_content_chunk chunks[8];
        struct cairn_sha256 *h = cairn_sha256_new();
        struct expect *e = &f->exp[f->n_exp++];
        uint8_t *blob;
        size_t len;

        e->size = 0;
        for (size_t i = 0; i < n; i++) {
                uint8_t *buf = calloc(1, lens[i]);
                memset(&chunks[i], 0, sizeof chunks[i]);
                chunks[i].length = lens[i];
                if (seeds[i] == 0)
                        chunks[i].flags = CAIRN_CHUNK_HOLE;
                else {
                        test_fill_random(buf, lens[i], seeds[i]);
                        if (cairn_store_add(f->s, CAIRN_BLOB_DATA, buf, lens[i], chunks[i].id, NULL) < 0)
                                BAIL_OUT("cannot store a chunk");
                }
                if (chunk_ids)
                        memcpy(chunk_ids[i], chunks[i].id, 32);
                cairn_sha256_update(h, buf, lens[i]);
                e->size += lens[i];
                free(buf);
        }
        cairn_sha256_final(h, e->sum);
        cairn_sha256_free(h);
        if (cairn_content_encode(chunks, n, &blob, &len) < 0 ||
            cairn_store_add(f->s, CAIRN_BLOB_CONTENT, blob, len, cid, NULL) < 0)
                BAIL_OUT("cannot store a content");
        memcpy(e->cid, cid, 32);
        free(blob);
}

static const struct expect *expect_of(const struct expect *exp, size_t n, const uint8_t cid[32]) {
        for (size_t i = 0; i < n; i++)
                if (memcmp(exp[i].cid, cid, 32) == 0)
                        return &exp[i];
        return NULL;
}

static void add_file(struct cairn_tree_builder *b, const char *name, const uint8_t cid[32], uint64_t size) {
        struct cairn_entry e = { .type = CAIRN_ENTRY_FILE, .mode = 0100644, .nlink = 1, .size = size,
                                 .mtime_ns = 1700000000000000000LL };
        if (cid)
                memcpy(e.ref, cid, 32);
        if (cairn_tree_builder_add(b, name, strlen(name), &e, NULL, 0) < 0)
                BAIL_OUT("cannot add %s", name);
}

static void add_dir(struct cairn_tree_builder *b, const char *name, const uint8_t tid[32]) {
        struct cairn_entry e = { .type = CAIRN_ENTRY_DIR, .mode = 040755, .nlink = 2 };
        memcpy(e.ref, tid, 32);
        if (cairn_tree_builder_add(b, name, strlen(name), &e, NULL, 0) < 0)
                BAIL_OUT("cannot add %s", name);
}

static void put_tree(struct fixture *f, struct cairn_tree_builder *b, uint8_t tid[32]) {
        uint8_t *blob;
        size_t len;
        if (cairn_tree_builder_finish(b, &blob, &len) < 0 || cairn_store_add(f->s, CAIRN_BLOB_TREE, blob, len, tid, NULL) < 0)
                BAIL_OUT("cannot store a tree");
        cairn_tree_builder_free(b);
        free(blob);
}

static void flush(struct fixture *f) {
        if (cairn_store_flush(f->s) < 0)
                BAIL_OUT("cannot flush");
}

static void write_snapshot(struct fixture *f, const char *job, int64_t t, const uint8_t root[32], uint8_t id[32]) {
        struct cairn_snapshot s = { .job = (char *) job, .host = (char *) "testhost", .start_ns = t, .end_ns = t + 1 };
        memcpy(s.root, root, 32);
        if (cairn_snapshot_write(f->r, &s, id) < 0)
                BAIL_OUT("cannot write a snapshot");
}

static int forget(struct fixture *f, const char *job, int64_t t, const uint8_t id[32]) {
        struct cairn_snapshot s = { .job = (char *) job, .start_ns = t };
        return cairn_snapshot_forget(f->r, &s, id);
}

static int chunk_loc(struct cairn_repo *r, const uint8_t id[32], struct cairn_chunk_loc *loc) {
        struct cairn_txn *t = NULL;
        int k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k >= 0)
                k = cairn_index_chunk_get(t, id, loc);
        cairn_index_txn_abort(t);
        return k;
}

/* ---- reading a snapshot back through blobs ----------------------------- */

/* Walk the tree @id by reading blobs (cairn_repo_blob_read in @t, NULL: a
 * private transaction per blob): every file's bytes must hash as stored.
 * With @index_t also checks each name against the `trees` rows.  Returns
 * 0, or the first error (-EUCLEAN for wrong bytes). */
static int verify_tree(struct cairn_repo *r, struct cairn_txn *t, struct cairn_txn *index_t, const uint8_t id[32],
                       const struct expect *exp, size_t n_exp, size_t *files) {
        uint8_t *blob = NULL;
        size_t len, cursor = 0;
        const char *name;
        const uint8_t *enc;
        size_t name_len, enc_len;
        int k;

        k = cairn_repo_blob_read(r, t, id, &blob, &len);
        if (k < 0)
                return k;
        while ((k = cairn_tree_next(blob, len, &cursor, &name, &name_len, &enc, &enc_len)) > 0) {
                struct cairn_entry e;
                static const uint8_t zero[32];

                k = cairn_entry_decode(enc, enc_len, &e);
                if (k < 0)
                        break;
                if (index_t) {
                        struct cairn_entry row;
                        k = cairn_index_tree_lookup(index_t, id, name, name_len, &row);
                        if (k < 0 || row.type != e.type || memcmp(row.ref, e.ref, 32) != 0) {
                                k = k < 0 ? k : -EUCLEAN;
                                break;
                        }
                }
                if (e.type == CAIRN_ENTRY_DIR) {
                        k = verify_tree(r, t, index_t, e.ref, exp, n_exp, files);
                        if (k < 0)
                                break;
                } else if (e.type == CAIRN_ENTRY_FILE && memcmp(e.ref, zero, 32) != 0) {
                        const struct expect *x = expect_of(exp, n_exp, e.ref);
                        struct cairn_content_chunk *chunks = NULL;
                        struct cairn_sha256 *h;
                        uint8_t *cblob = NULL, sum[32];
                        uint64_t total = 0;
                        size_t nc = 0, clen;

                        k = cairn_repo_blob_read(r, t, e.ref, &cblob, &clen);
                        if (k >= 0)
                                k = cairn_content_decode(cblob, clen, &chunks, &nc);
                        free(cblob);
                        if (k < 0)
                                break;
                        h = cairn_sha256_new();
                        for (size_t i = 0; k >= 0 && i < nc; i++) {
                                if (chunks[i].flags & CAIRN_CHUNK_HOLE) {
                                        static const uint8_t zeros[65536];
                                        for (uint64_t left = chunks[i].length; left > 0;) {
                                                size_t m = left < sizeof zeros ? (size_t) left : sizeof zeros;
                                                cairn_sha256_update(h, zeros, m);
                                                left -= m;
                                        }
                                } else {
                                        uint8_t *data = NULL;
                                        size_t dlen;
                                        k = cairn_repo_blob_read(r, t, chunks[i].id, &data, &dlen);
                                        if (k >= 0 && dlen != chunks[i].length)
                                                k = -EUCLEAN;
                                        if (k >= 0)
                                                cairn_sha256_update(h, data, dlen);
                                        free(data);
                                }
                                total += chunks[i].length;
                        }
                        cairn_sha256_final(h, sum);
                        cairn_sha256_free(h);
                        free(chunks);
                        if (k < 0)
                                break;
                        if (!x || x->size != total || memcmp(x->sum, sum, 32) != 0) {
                                k = -EUCLEAN;
                                break;
                        }
                        (*files)++;
                }
        }
        free(blob);
        return k < 0 ? k : 0;
}

static int verify_snapshot(struct cairn_repo *r, struct cairn_txn *t, bool check_index, const uint8_t root[32],
                           const struct expect *exp, size_t n_exp, size_t *files) {
        struct cairn_txn *it = NULL;
        int k = 0;

        *files = 0;
        if (check_index)
                k = cairn_index_txn_begin(cairn_repo_index(r), false, &it);
        if (k >= 0)
                k = verify_tree(r, t, it, root, exp, n_exp, files);
        cairn_index_txn_abort(it);
        return k;
}

/* Reads that found their pack gone and looked again (pack.c logs them at
 * debug level), to tell whether the reader really raced the repack. */
static atomic_long retries;

/* A reader beside the prune: walks every remaining snapshot in a loop
 * until told to stop, in its own read transactions: every other walk one
 * per blob, the others one for the whole walk, as a long request would
 * (so a walk that spans the repack's commit reads stale locations). */
struct reader {
        struct cairn_repo *r;
        uint8_t (*roots)[32];
        size_t n_roots;
        const struct expect *exp;
        size_t n_exp;
        atomic_bool stop;
        atomic_long loops;
        atomic_int errors;
        int first_error;
};

static void *reader_main(void *userdata) {
        struct reader *rd = userdata;

        for (long n = 0; !atomic_load(&rd->stop); n++) {
                struct cairn_txn *t = NULL;
                int k = 0;

                if (n % 2 == 1)
                        k = cairn_index_txn_begin(cairn_repo_index(rd->r), false, &t);
                for (size_t i = 0; k >= 0 && i < rd->n_roots; i++) {
                        size_t files;
                        k = verify_snapshot(rd->r, t, false, rd->roots[i], rd->exp, rd->n_exp, &files);
                }
                cairn_index_txn_abort(t);
                if (k < 0 && atomic_fetch_add(&rd->errors, 1) == 0)
                        rd->first_error = k;
                atomic_fetch_add(&rd->loops, 1);
        }
        return NULL;
}

static void wait_loops(struct reader *rd, long target) {
        for (int i = 0; i < 60000 && atomic_load(&rd->loops) < target; i++)
                usleep(1000);
}

/* A file that looks like a pack nobody indexed, @age_ns old. */
static void leftover_pack(const char *repo, uint64_t seed, int64_t age_ns, uint8_t id[32]) {
        char rel[100], path[4300], dir[4300];
        uint8_t buf[5000];
        struct timespec ts[2];
        int fd;

        test_fill_random(id, 32, seed);
        test_fill_random(buf, sizeof buf, seed + 1);
        cairn_pack_path(id, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", repo, rel);
        snprintf(dir, sizeof dir, "%s/packs/%02x", repo, id[0]);
        (void) mkdir(dir, 0700);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t) sizeof buf)
                BAIL_OUT("cannot write %s", path);
        close(fd);
        clock_gettime(CLOCK_REALTIME, &ts[0]);
        int64_t t = (int64_t) ts[0].tv_sec * 1000000000LL + ts[0].tv_nsec - age_ns;
        ts[0].tv_sec = t / 1000000000LL;
        ts[0].tv_nsec = t % 1000000000LL;
        ts[1] = ts[0];
        if (utimensat(AT_FDCWD, path, ts, 0) < 0)
                BAIL_OUT("cannot set the mtime of %s", path);
}

static void leftover_tmp(const char *repo, const char *dir, const char *name, int64_t age_ns) {
        char path[4300];
        struct timespec ts[2];
        int fd;

        snprintf(path, sizeof path, "%s/%s/%s", repo, dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write(fd, "partial", 7) != 7)
                BAIL_OUT("cannot write %s", path);
        close(fd);
        clock_gettime(CLOCK_REALTIME, &ts[0]);
        ts[0].tv_sec -= (time_t) (age_ns / 1000000000LL);
        ts[1] = ts[0];
        utimensat(AT_FDCWD, path, ts, 0);
}

static bool exists_in(const char *repo, const char *rel) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", repo, rel);
        return access(path, F_OK) == 0;
}

static bool rows_of_tree(struct cairn_repo *r, const uint8_t id[32]) {
        struct cairn_txn *t = NULL;
        struct cairn_tree_iter *it = NULL;
        const char *name;
        size_t nl;
        struct cairn_entry e;
        bool any = false;

        cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (cairn_index_tree_iter_new(t, id, NULL, 0, &it) >= 0)
                any = cairn_index_tree_iter_next(it, &name, &nl, &e) > 0;
        cairn_index_tree_iter_free(it);
        cairn_index_txn_abort(t);
        return any;
}

static int content_size(struct cairn_repo *r, const uint8_t id[32]) {
        struct cairn_txn *t = NULL;
        uint64_t size;
        int k;
        cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        k = cairn_index_content_size(t, id, &size);
        cairn_index_txn_abort(t);
        return k;
}

/* ---- the main scenario -------------------------------------------------- */

static void run(const char *tmp, bool encrypted) {
        const char *mode = encrypted ? "encrypted" : "unencrypted";
        struct cairn_pass_source pw = { CAIRN_PASS_STRING, "prune test" };
        struct cairn_repo_params p;
        struct fixture f = { 0 };
        char *repo;
        uint8_t c_common[32], c_sparse[32], c_old[32], c_gone[32], c_kept[32], c_mostly[32], c_gone2[32];
        uint8_t ch_common[1][32], ch_sparse[3][32], ch_old[2][32], ch_gone[1][32], ch_kept[1][32], ch_mostly[1][32],
                ch_gone2[1][32];
        uint8_t t_shared[32], t_sub[32], t_sub2[32], t_empty[32], root1[32], root2[32], root3[32], root4[32];
        uint8_t snap[4][32], pk[5][32];
        const int64_t when[4] = {
                1763600000LL * 1000000000, 1763686400LL * 1000000000, 1763772800LL * 1000000000,
                1763772900LL * 1000000000,
        };
        struct cairn_tree_builder *b;
        struct cairn_chunk_loc loc;

        if (asprintf(&repo, "%s/%s", tmp, mode) < 0)
                exit(1);
        f.repo = repo;
        cairn_repo_params_default(&p);
        p.encrypted = encrypted;
        p.scrypt_n = 1024;
        if (cairn_repo_create(repo, &p, &pw) < 0 || cairn_repo_open(repo, &pw, &f.r) < 0 ||
            cairn_store_new(f.r, &f.s) < 0)
                BAIL_OUT("set-up failed");

        /* Pack 1, used by the kept snapshots: shared/ {common.txt, sparse.img
         * (chunk, 1 MiB hole, chunk), empty, link}. */
        put_content(&f, (size_t[]) { 50000 }, (uint64_t[]) { 11 }, 1, c_common, ch_common);
        put_content(&f, (size_t[]) { 20000, 1 << 20, 10000 }, (uint64_t[]) { 12, 0, 13 }, 3, c_sparse, ch_sparse);
        b = cairn_tree_builder_new();
        add_file(b, "common.txt", c_common, 50000);
        add_file(b, "sparse.img", c_sparse, 20000 + (1 << 20) + 10000);
        add_file(b, "empty", NULL, 0);
        {
                struct cairn_entry l = { .type = CAIRN_ENTRY_SYMLINK, .mode = 0120777, .nlink = 1,
                                         .target = "common.txt", .target_len = 10 };
                cairn_tree_builder_add(b, "link", 4, &l, NULL, 0);
        }
        put_tree(&f, b, t_shared);
        flush(&f);

        /* Pack 2, only snapshot 1 (forgotten) uses it: old.bin and root 1. */
        put_content(&f, (size_t[]) { 150000, 150000 }, (uint64_t[]) { 21, 22 }, 2, c_old, ch_old);
        b = cairn_tree_builder_new();
        add_file(b, "old.bin", c_old, 300000);
        add_dir(b, "shared", t_shared);
        put_tree(&f, b, root1);
        flush(&f);

        /* Pack 3, a quarter used: gone.bin (300 kB, snapshot 2 only) and
         * kept.bin (100 kB, kept). */
        put_content(&f, (size_t[]) { 300000 }, (uint64_t[]) { 31 }, 1, c_gone, ch_gone);
        put_content(&f, (size_t[]) { 100000 }, (uint64_t[]) { 32 }, 1, c_kept, ch_kept);
        flush(&f);

        /* Pack 4, 70 % used: mostly.bin (210 kB, kept), gone2.bin (90 kB)
         * and root 2 (snapshot 2 only): above the threshold, left alone. */
        put_content(&f, (size_t[]) { 210000 }, (uint64_t[]) { 41 }, 1, c_mostly, ch_mostly);
        put_content(&f, (size_t[]) { 90000 }, (uint64_t[]) { 42 }, 1, c_gone2, ch_gone2);
        b = cairn_tree_builder_new();
        add_file(b, "gone.bin", c_gone, 300000);
        add_file(b, "gone2.bin", c_gone2, 90000);
        add_file(b, "kept.bin", c_kept, 100000);
        add_dir(b, "shared", t_shared);
        put_tree(&f, b, root2);
        flush(&f);

        /* Pack 5, trees of the kept snapshots: root 3 {kept.bin, mostly.bin,
         * shared/, sub/ {again.bin = kept.bin's content, deeper/ {deep.txt =
         * common.txt's content}}}, root 4 {mostly.bin, shared/, emptydir/}. */
        b = cairn_tree_builder_new();
        add_file(b, "deep.txt", c_common, 50000);
        put_tree(&f, b, t_sub2);
        b = cairn_tree_builder_new();
        add_file(b, "again.bin", c_kept, 100000);
        add_dir(b, "deeper", t_sub2);
        put_tree(&f, b, t_sub);
        b = cairn_tree_builder_new();
        add_file(b, "kept.bin", c_kept, 100000);
        add_file(b, "mostly.bin", c_mostly, 210000);
        add_dir(b, "shared", t_shared);
        add_dir(b, "sub", t_sub);
        put_tree(&f, b, root3);
        b = cairn_tree_builder_new();
        put_tree(&f, b, t_empty);
        b = cairn_tree_builder_new();
        add_file(b, "mostly.bin", c_mostly, 210000);
        add_dir(b, "shared", t_shared);
        add_dir(b, "emptydir", t_empty);
        put_tree(&f, b, root4);
        flush(&f);
        is(cairn_store_stats(f.s)->packs_written, 5, "%s: five packs written", mode);
        f.s = cairn_store_free(f.s);

        /* Which pack is which, by a blob each holds. */
        const uint8_t *probe[5] = { t_shared, root1, ch_gone[0], root2, root3 };
        for (int i = 0; i < 5; i++) {
                if (chunk_loc(f.r, probe[i], &loc) < 0)
                        BAIL_OUT("blob of pack %d not indexed", i + 1);
                memcpy(pk[i], loc.pack, 32);
        }

        write_snapshot(&f, "pgdb", when[0], root1, snap[0]);
        write_snapshot(&f, "pgdb", when[1], root2, snap[1]);
        write_snapshot(&f, "pgdb", when[2], root3, snap[2]);
        write_snapshot(&f, "configs", when[3], root4, snap[3]);
        is(forget(&f, "pgdb", when[0], snap[0]), 0, "%s: forget snapshot 1", mode);
        is(forget(&f, "pgdb", when[1], snap[1]), 0, "%s: forget snapshot 2", mode);

        /* Leftovers of crashed writers: two hours old, and fresh. */
        uint8_t old_pack[32], fresh_pack[32];
        leftover_pack(repo, 901, 2 * HOUR_NS, old_pack);
        leftover_pack(repo, 902, 0, fresh_pack);
        leftover_tmp(repo, "packs", ".tmp-0123456789abcdef0123456789abcdef", 2 * HOUR_NS);
        leftover_tmp(repo, "packs", ".tmp-fedcba9876543210fedcba9876543210", 0);
        leftover_tmp(repo, "snapshots", ".tmp-00112233445566778899aabbccddeeff", 2 * HOUR_NS);

        struct cairn_prune_options opt;
        struct cairn_prune_stats st;
        struct digests before, after, again;
        char *files_before, *files_after;

        cairn_prune_options_default(&opt);
        is(opt.repack_threshold_pct, 50, "%s: default threshold is 50 %%", mode);
        is(opt.grace_ns, HOUR_NS, "%s: default grace is an hour", mode);

        /* 1. Dry run: the numbers, and nothing changed. */
        digest_tables(f.r, &before);
        files_before = file_list(repo);
        opt.dry_run = true;
        memset(&st, 0xff, sizeof st);
        is(cairn_prune(f.r, &opt, &st), 0, "%s: dry run succeeds", mode);
        is(st.packs_total, 5, "%s: dry run: 5 packs in the index", mode);
        is(st.blobs_used, 15, "%s: dry run: 15 blobs used", mode);
        is(st.blobs_unused, 9, "%s: dry run: 9 blobs unused", mode);
        is(st.packs_deleted, 2, "%s: dry run: would delete pack 2 and the old unindexed pack", mode);
        is(st.packs_repacked, 1, "%s: dry run: would repack pack 3", mode);
        ok(st.bytes_repacked >= 100000 && st.bytes_repacked < 101000, "%s: dry run: ~100 kB to copy (%llu)", mode,
           (unsigned long long) st.bytes_repacked);
        digest_tables(f.r, &after);
        ok(digests_equal(&before, &after, "dry run"), "%s: dry run leaves every table as it was", mode);
        files_after = file_list(repo);
        ok(streq(files_before, files_after), "%s: dry run leaves every file as it was", mode);
        free(files_after);

        /* A read transaction from before the prune: its locations go stale. */
        struct cairn_txn *stale = NULL;
        if (cairn_index_txn_begin(cairn_repo_index(f.r), false, &stale) < 0)
                BAIL_OUT("cannot begin a read transaction");

        /* 2. The prune, with a reader walking the kept snapshots meanwhile. */
        uint8_t kept_roots[2][32];
        memcpy(kept_roots[0], root3, 32);
        memcpy(kept_roots[1], root4, 32);
        enum { N_READERS = 4 };
        struct reader rd[N_READERS];
        pthread_t th[N_READERS];
        long loops_at_prune[N_READERS], walks = 0;
        int reader_errors = 0, first_error = 0;
        bool went_on = true;

        for (int i = 0; i < N_READERS; i++) {
                rd[i] = (struct reader) { .r = f.r, .roots = kept_roots, .n_roots = 2, .exp = f.exp, .n_exp = f.n_exp };
                if (pthread_create(&th[i], NULL, reader_main, &rd[i]) != 0)
                        BAIL_OUT("cannot start a reader");
        }
        for (int i = 0; i < N_READERS; i++)
                wait_loops(&rd[i], 1);

        atomic_store(&retries, 0);
        opt.dry_run = false;
        memset(&st, 0xff, sizeof st);
        int64_t t0 = now_ns();
        int k = cairn_prune(f.r, &opt, &st);
        int64_t t1 = now_ns();
        for (int i = 0; i < N_READERS; i++)
                loops_at_prune[i] = atomic_load(&rd[i].loops);
        for (int i = 0; i < N_READERS; i++)
                wait_loops(&rd[i], loops_at_prune[i] + 3);
        for (int i = 0; i < N_READERS; i++)
                atomic_store(&rd[i].stop, true);
        for (int i = 0; i < N_READERS; i++) {
                pthread_join(th[i], NULL);
                walks += atomic_load(&rd[i].loops);
                went_on &= atomic_load(&rd[i].loops) > loops_at_prune[i];
                if (atomic_load(&rd[i].errors) > 0 && reader_errors++ == 0)
                        first_error = rd[i].first_error;
        }
        diag("%s: readers found a pack gone and looked again %ld time(s)", mode, (long) atomic_load(&retries));

        is(k, 0, "%s: prune succeeds", mode);
        is(reader_errors, 0, "%s: %d readers beside the prune saw no error (%ld walks, first error %d)", mode,
           N_READERS, walks, first_error);
        ok(went_on, "%s: every reader went on after the prune", mode);
        is(st.packs_total, 5, "%s: 5 packs in the index", mode);
        is(st.blobs_used, 15, "%s: 15 blobs used", mode);
        is(st.blobs_unused, 9, "%s: 9 blobs unused", mode);
        is(st.packs_deleted, 2, "%s: pack 2 and the old unindexed pack deleted", mode);
        is(st.packs_repacked, 1, "%s: pack 3 repacked", mode);
        ok(st.bytes_repacked >= 100000 && st.bytes_repacked < 101000, "%s: ~100 kB copied (%llu)", mode,
           (unsigned long long) st.bytes_repacked);
        ok(st.bytes_freed > 300000 + 300000, "%s: bytes freed counts pack 2 and most of pack 3 (%llu)", mode,
           (unsigned long long) st.bytes_freed);
        diag("%s: prune took %.1f ms: %llu packs, %llu deleted, %llu repacked, %llu/%llu blobs used, "
             "%llu bytes freed, %llu repacked", mode, (double) (t1 - t0) / 1e6,
             (unsigned long long) st.packs_total, (unsigned long long) st.packs_deleted,
             (unsigned long long) st.packs_repacked, (unsigned long long) st.blobs_used,
             (unsigned long long) (st.blobs_used + st.blobs_unused), (unsigned long long) st.bytes_freed,
             (unsigned long long) st.bytes_repacked);

        /* Pack 2: file and rows gone, with the rows of its tree and content. */
        ok(!pack_file_exists(repo, pk[1]), "%s: pack 2 file deleted", mode);
        {
                struct cairn_txn *t = NULL;
                cairn_index_txn_begin(cairn_repo_index(f.r), false, &t);
                is(cairn_index_pack_get(t, pk[1], NULL, NULL), -ENOENT, "%s: pack 2 row deleted", mode);
                is(cairn_index_pack_get(t, pk[2], NULL, NULL), -ENOENT, "%s: pack 3 row deleted", mode);
                ok(cairn_index_pack_get(t, pk[0], NULL, NULL) == 0 && cairn_index_pack_get(t, pk[3], NULL, NULL) == 0 &&
                   cairn_index_pack_get(t, pk[4], NULL, NULL) == 0, "%s: packs 1, 4, 5 still indexed", mode);
                is(cairn_index_chunk_get(t, ch_old[0], &loc), -ENOENT, "%s: a chunk of old.bin has no row", mode);
                is(cairn_index_chunk_get(t, root1, &loc), -ENOENT, "%s: root 1 has no chunk row", mode);
                is(cairn_index_chunk_get(t, ch_gone[0], &loc), -ENOENT, "%s: gone.bin's chunk has no row", mode);
                is(cairn_index_chunk_get(t, c_gone, &loc), -ENOENT, "%s: gone.bin's content has no row", mode);
                is(cairn_index_chunk_get(t, ch_gone2[0], &loc), 0, "%s: gone2.bin's chunk stays (pack 4 kept)", mode);
                is(cairn_index_chunk_get(t, root2, &loc), 0, "%s: root 2 stays (pack 4 kept)", mode);
                cairn_index_txn_abort(t);
        }
        ok(!rows_of_tree(f.r, root1), "%s: root 1's directory rows deleted", mode);
        ok(rows_of_tree(f.r, root2), "%s: root 2's directory rows stay", mode);
        is(content_size(f.r, c_old), -ENOENT, "%s: old.bin's chunk list rows deleted", mode);
        is(content_size(f.r, c_gone), -ENOENT, "%s: gone.bin's chunk list rows deleted", mode);
        is(content_size(f.r, c_kept), 0, "%s: kept.bin's chunk list rows stay", mode);

        /* Pack 3 was repacked: old file gone, its used blobs in a new pack. */
        ok(!pack_file_exists(repo, pk[2]), "%s: pack 3 file deleted", mode);
        ok(chunk_loc(f.r, ch_kept[0], &loc) == 0 && memcmp(loc.pack, pk[2], 32) != 0 &&
           pack_file_exists(repo, loc.pack), "%s: kept.bin's chunk now lives in a new pack", mode);
        {
                struct cairn_chunk_loc cl;
                ok(chunk_loc(f.r, c_kept, &cl) == 0 && memcmp(cl.pack, loc.pack, 32) == 0,
                   "%s: kept.bin's content blob is in the same new pack", mode);
                for (int i = 0; i < 5; i++)
                        if (memcmp(loc.pack, pk[i], 32) == 0)
                                ok(false, "%s: the new pack is none of the old ones", mode);
        }
        ok(pack_file_exists(repo, pk[0]) && pack_file_exists(repo, pk[3]) && pack_file_exists(repo, pk[4]),
           "%s: pack files 1, 4 and 5 stay", mode);

        /* The stale transaction still names pack 3: the read retries. */
        {
                uint8_t *data = NULL;
                size_t len = 0;
                struct cairn_chunk_loc old;
                ok(cairn_index_chunk_get(stale, ch_kept[0], &old) == 0 && memcmp(old.pack, pk[2], 32) == 0,
                   "%s: a transaction from before the prune still sees pack 3", mode);
                is(cairn_repo_blob_read(f.r, stale, ch_kept[0], &data, &len), 0,
                   "%s: reading through it finds the blob in its new pack", mode);
                uint8_t want[100000];
                test_fill_random(want, sizeof want, 32);
                ok(len == sizeof want && data && memcmp(data, want, len) == 0, "%s: with the same bytes", mode);
                free(data);
                cairn_index_txn_abort(stale);
        }

        /* Every remaining snapshot reads back byte for byte. */
        for (int i = 0; i < 2; i++) {
                size_t files = 0;
                is(verify_snapshot(f.r, NULL, true, kept_roots[i], f.exp, f.n_exp, &files), 0,
                   "%s: snapshot %d reads back intact, its directories as indexed", mode, i + 3);
                is(files, i == 0 ? 6 : 3, "%s: and holds its %d non-empty files", mode, i == 0 ? 6 : 3);
        }

        /* Leftovers: old ones gone, fresh ones kept. */
        ok(!pack_file_exists(repo, old_pack), "%s: unindexed pack older than grace deleted", mode);
        ok(pack_file_exists(repo, fresh_pack), "%s: fresh unindexed pack kept", mode);
        ok(!exists_in(repo, "packs/.tmp-0123456789abcdef0123456789abcdef"), "%s: old temp pack deleted", mode);
        ok(exists_in(repo, "packs/.tmp-fedcba9876543210fedcba9876543210"), "%s: fresh temp pack kept", mode);
        ok(!exists_in(repo, "snapshots/.tmp-00112233445566778899aabbccddeeff"), "%s: old temp snapshot deleted", mode);

        /* 3. A second prune finds nothing to do. */
        digest_tables(f.r, &after);
        files_after = file_list(repo);
        memset(&st, 0xff, sizeof st);
        is(cairn_prune(f.r, &opt, &st), 0, "%s: second prune succeeds", mode);
        ok(st.packs_deleted == 0 && st.packs_repacked == 0 && st.bytes_freed == 0 && st.bytes_repacked == 0,
           "%s: second prune deletes and repacks nothing", mode);
        is(st.packs_total, 4, "%s: second prune: 4 packs", mode);
        is(st.blobs_used, 15, "%s: second prune: 15 blobs used", mode);
        is(st.blobs_unused, 3, "%s: second prune: 3 unused blobs left in pack 4", mode);
        digest_tables(f.r, &again);
        ok(digests_equal(&after, &again, "second prune"), "%s: second prune leaves the tables as they were", mode);
        free(files_before);
        files_before = file_list(repo);
        ok(streq(files_before, files_after), "%s: second prune leaves the files as they were", mode);
        free(files_before);
        free(files_after);

        /* 4. The pruned index is what a rebuild makes of the pruned files
         * (once the fresh leftovers, which are not packs, are gone). */
        {
                char rel[100], path[4300];
                cairn_pack_path(fresh_pack, rel, sizeof rel);
                snprintf(path, sizeof path, "%s/%s", repo, rel);
                unlink(path);
                snprintf(path, sizeof path, "%s/packs/.tmp-fedcba9876543210fedcba9876543210", repo);
                unlink(path);
        }
        is(cairn_repo_rebuild_index(f.r), 0, "%s: rebuild after prune succeeds", mode);
        digest_tables(f.r, &again);
        ok(digests_equal(&after, &again, "rebuild"), "%s: rebuilt index equals the pruned one, table for table", mode);

        cairn_repo_free(f.r);
        free(repo);
}

/* ---- damage and an incomplete index ------------------------------------ */

static void run_damaged(const char *tmp) {
        struct cairn_pass_source pw = { CAIRN_PASS_NONE, NULL };
        struct cairn_repo_params p;
        struct fixture f = { 0 };
        char *repo;
        uint8_t c_keep[32], c_gone[32], ch_keep[1][32], ch_gone[1][32], root_keep[32], root_gone[32];
        uint8_t snap_keep[32], snap_gone[32], snap_bad[32], bogus[32], pack_a[32];
        struct cairn_chunk_loc loc;
        struct cairn_prune_options opt;
        struct cairn_prune_stats st;
        struct digests before, after;
        struct cairn_tree_builder *b;
        const int64_t t_keep = 1763600000LL * 1000000000, t_gone = t_keep + DAY_S * 1000000000, t_bad = t_gone + 1;

        if (asprintf(&repo, "%s/damaged", tmp) < 0)
                exit(1);
        f.repo = repo;
        cairn_repo_params_default(&p);
        p.encrypted = false;
        if (cairn_repo_create(repo, &p, &pw) < 0 || cairn_repo_open(repo, &pw, &f.r) < 0 ||
            cairn_store_new(f.r, &f.s) < 0)
                BAIL_OUT("set-up failed");

        /* Pack A: keep.bin (50 kB, used) and everything of the forgotten
         * snapshot (200 kB); pack B: the kept root alone. */
        put_content(&f, (size_t[]) { 50000 }, (uint64_t[]) { 51 }, 1, c_keep, ch_keep);
        put_content(&f, (size_t[]) { 200000 }, (uint64_t[]) { 52 }, 1, c_gone, ch_gone);
        b = cairn_tree_builder_new();
        add_file(b, "gone.bin", c_gone, 200000);
        put_tree(&f, b, root_gone);
        flush(&f);
        b = cairn_tree_builder_new();
        add_file(b, "keep.bin", c_keep, 50000);
        put_tree(&f, b, root_keep);
        flush(&f);
        f.s = cairn_store_free(f.s);
        write_snapshot(&f, "job", t_keep, root_keep, snap_keep);
        write_snapshot(&f, "job", t_gone, root_gone, snap_gone);
        forget(&f, "job", t_gone, snap_gone);

        /* Flip a byte inside the one used data blob of the mostly-unused pack. */
        if (chunk_loc(f.r, ch_keep[0], &loc) < 0)
                BAIL_OUT("no row for keep.bin's chunk");
        memcpy(pack_a, loc.pack, 32);
        {
                char rel[100], path[4300];
                uint8_t byte;
                int fd;
                cairn_pack_path(pack_a, rel, sizeof rel);
                snprintf(path, sizeof path, "%s/%s", repo, rel);
                fd = open(path, O_RDWR);
                if (fd < 0 || pread(fd, &byte, 1, (off_t) loc.offset + 1000) != 1)
                        BAIL_OUT("cannot open %s", path);
                byte ^= 0x40;
                if (pwrite(fd, &byte, 1, (off_t) loc.offset + 1000) != 1)
                        BAIL_OUT("cannot damage %s", path);
                close(fd);
        }

        cairn_prune_options_default(&opt);
        is(cairn_prune(f.r, &opt, &st), 0, "damaged: prune succeeds despite a damaged pack");
        is(st.packs_repacked, 0, "damaged: the damaged pack is not repacked");
        ok(pack_file_exists(repo, pack_a), "damaged: the damaged pack file stays");
        ok(chunk_loc(f.r, ch_keep[0], &loc) == 0 && memcmp(loc.pack, pack_a, 32) == 0,
           "damaged: its used blob still points at it");
        ok(chunk_loc(f.r, ch_gone[0], &loc) == 0 && memcmp(loc.pack, pack_a, 32) == 0,
           "damaged: its unused blob's row stays too (the pack is left whole)");
        {
                uint8_t *data = NULL;
                size_t len;
                is(cairn_repo_blob_read(f.r, NULL, ch_keep[0], &data, &len), -EBADMSG,
                   "damaged: reading the damaged blob is still -EBADMSG, never other bytes");
                free(data);
        }

        /* A snapshot whose root the index does not know: prune refuses,
         * rather than take everything under it for unused. */
        test_fill_random(bogus, 32, 777);
        write_snapshot(&f, "job", t_bad, bogus, snap_bad);
        digest_tables(f.r, &before);
        is(cairn_prune(f.r, &opt, &st), -EBADMSG, "incomplete index: prune refuses with -EBADMSG");
        digest_tables(f.r, &after);
        ok(digests_equal(&before, &after, "refused prune"), "incomplete index: nothing changed");
        forget(&f, "job", t_bad, snap_bad);

        /* A directory whose rows went missing from `trees`: refused too. */
        {
                uint8_t dir_id[32];
                struct cairn_tree_builder *bb = cairn_tree_builder_new();
                uint8_t *blob;
                size_t len;

                /* A tree with an entry, its blob in a pack but its rows never
                 * written: what a damaged index looks like. */
                if (cairn_store_new(f.r, &f.s) < 0)
                        BAIL_OUT("cannot open a store");
                add_file(bb, "keep.bin", c_keep, 50000);
                add_file(bb, "other.bin", c_keep, 50000);
                cairn_tree_builder_finish(bb, &blob, &len);
                cairn_tree_builder_free(bb);
                cairn_codec_id(cairn_repo_codec(f.r), blob, len, dir_id);
                {
                        uint8_t *stored = malloc(cairn_codec_bound(cairn_repo_codec(f.r), len));
                        size_t sl;
                        cairn_codec_encode(cairn_repo_codec(f.r), dir_id, blob, len, stored, &sl);
                        /* As data: the store writes no trees rows for it. */
                        cairn_store_put_encoded(f.s, CAIRN_BLOB_DATA, dir_id, stored, sl, NULL, 0);
                        free(stored);
                }
                free(blob);
                flush(&f);
                f.s = cairn_store_free(f.s);
                bb = cairn_tree_builder_new();
                add_dir(bb, "lost", dir_id);
                if (cairn_store_new(f.r, &f.s) < 0)
                        BAIL_OUT("cannot open a store");
                uint8_t root_lost[32];
                put_tree(&f, bb, root_lost);
                flush(&f);
                f.s = cairn_store_free(f.s);
                write_snapshot(&f, "job", t_bad, root_lost, snap_bad);
                digest_tables(f.r, &before);
                is(cairn_prune(f.r, &opt, &st), -EBADMSG, "missing directory rows: prune refuses with -EBADMSG");
                digest_tables(f.r, &after);
                ok(digests_equal(&before, &after, "refused prune"), "missing directory rows: nothing changed");
                forget(&f, "job", t_bad, snap_bad);
        }

        /* A chunk row naming a pack file that has no packs row: the file
         * looks unindexed and old, yet a row needs it, so it stays. */
        {
                struct cairn_txn *t = NULL;
                struct cairn_chunk_loc orphan = { .offset = 8, .stored_len = 100, .raw_len = 99,
                                                  .type = CAIRN_BLOB_DATA };
                uint8_t orphan_pack[32], blob_id[32];

                leftover_pack(repo, 903, 2 * HOUR_NS, orphan_pack);
                memcpy(orphan.pack, orphan_pack, 32);
                test_fill_random(blob_id, 32, 904);
                if (cairn_index_txn_begin(cairn_repo_index(f.r), true, &t) < 0 ||
                    cairn_index_chunk_put(t, blob_id, &orphan) < 0 || cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("cannot write an orphan row");
                is(cairn_prune(f.r, &opt, &st), 0, "orphan row: prune succeeds");
                ok(pack_file_exists(repo, orphan_pack), "orphan row: the pack file it names stays");
                ok(chunk_loc(f.r, blob_id, &loc) == 0, "orphan row: the row stays");
        }

        cairn_repo_free(f.r);
        free(repo);
}

/* Quiet the expected errors (damaged pack) unless asked for.  Called from
 * the reader thread too: touches only atomics and stderr there. */
static void log_quiet(int level, const char *msg, void *userdata) {
        (void) userdata;
        if (getenv("CAIRN_TEST_VERBOSE"))
                fprintf(stderr, "log %d: %s\n", level, msg);
        if (level == CAIRN_LOG_DEBUG && strstr(msg, "No such file"))
                atomic_fetch_add(&retries, 1);
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-prune");
        cairn_log_set_handler(log_quiet, NULL);
        cairn_log_set_level(CAIRN_LOG_DEBUG);
        run(tmp, false);
        run(tmp, true);
        run_damaged(tmp);
        test_rm_rf(tmp);
        return tap_done();
}
