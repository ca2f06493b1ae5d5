/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn_repo_check: a clean repository (plain and encrypted) passes, also
 * reading every pack or a share of them; a deleted pack, a truncated pack,
 * a flipped byte in a blob (found only when reading data), a deleted
 * chunks row of a data chunk or a tree, a chunks row that disagrees with
 * the pack's trailer, a wrong packs row, a tree without its trees rows and
 * a missing snapshot file are each reported with the right pack, blob,
 * snapshot and paths, and nothing else is. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "backup.h"
#include "check.h"
#include "log.h"
#include "pack.h"
#include "repo.h"
#include "restore.h"
#include "snapshot.h"
#include "tap.h"
#include "test-util.h"
#include "tree.h"
#include "util.h"

#define RANDOM_SIZE (3u << 20)
#define NEW_SIZE 200000

/* Every log message of the library. */
static char log_all[65536];
static size_t log_all_len;

static void log_collect(int level, const char *msg, void *userdata) {
        int n = snprintf(log_all + log_all_len, sizeof log_all - log_all_len, "%s\n", msg);
        if (n > 0 && (size_t) n < sizeof log_all - log_all_len)
                log_all_len += (size_t) n;
}

static void log_clear(void) {
        log_all_len = 0;
        log_all[0] = 0;
}

/* What the callbacks were told. */
struct problem_rec {
        int error;
        bool has_pack, has_blob, has_snap;
        uint8_t pack[CAIRN_ID_SIZE], blob[CAIRN_ID_SIZE], snap[CAIRN_ID_SIZE];
        char msg[600];
};

struct damage_rec {
        uint8_t snap[CAIRN_ID_SIZE];
        bool record;
        char path[600];
};

static struct problem_rec problems[512];
static size_t n_problems;
static struct damage_rec damages[512];
static size_t n_damages;

static void on_problem(const struct cairn_check_problem *p, void *userdata) {
        struct problem_rec *pr;
        if (n_problems == ELEMENTSOF(problems))
                return;
        pr = &problems[n_problems++];
        *pr = (struct problem_rec) { .error = p->error, .has_pack = p->pack, .has_blob = p->blob, .has_snap = p->snapshot };
        if (p->pack)
                memcpy(pr->pack, p->pack, CAIRN_ID_SIZE);
        if (p->blob)
                memcpy(pr->blob, p->blob, CAIRN_ID_SIZE);
        if (p->snapshot)
                memcpy(pr->snap, p->snapshot, CAIRN_ID_SIZE);
        snprintf(pr->msg, sizeof pr->msg, "%s", p->message);
}

static void on_damage(const struct cairn_check_damage *d, void *userdata) {
        struct damage_rec *dr;
        if (n_damages == ELEMENTSOF(damages))
                return;
        dr = &damages[n_damages++];
        *dr = (struct damage_rec) { .record = !d->path };
        memcpy(dr->snap, d->snapshot, CAIRN_ID_SIZE);
        snprintf(dr->path, sizeof dr->path, "%s", d->path ? d->path : "");
}

/* A repository with two snapshots of job "app": the first of src/hello.txt
 * and src/dir/random.bin, the second also of src/dir/new.bin; each backup
 * wrote one pack. */
struct fixture {
        char *dir, *src, *repo_path;
        struct cairn_repo *r;
        struct cairn_pass_source pass;
        uint8_t snap[2][CAIRN_ID_SIZE];
        uint8_t random_chunk[CAIRN_ID_SIZE], new_chunk[CAIRN_ID_SIZE];   /* the first data chunk of each */
        struct cairn_chunk_loc random_loc, new_loc;
        uint8_t dir_tree[CAIRN_ID_SIZE];                                  /* src/dir in the second snapshot */
        char random_path[4200], new_path[4200], hello_path[4200], dir_path[4200];   /* as check names them */
};

static void write_file(const char *path, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write_full(fd, data, len) < 0 || close(fd) < 0)
                BAIL_OUT("cannot write %s: %m", path);
}

static void backup(struct fixture *f, uint8_t id[CAIRN_ID_SIZE]) {
        struct bk_backup_options o = { .job = "app" };
        struct bk_backup *b = NULL;
        int k;

        k = bk_backup_new(f->r, &o, &b);
        if (k >= 0)
                k = bk_backup_path(b, f->src);
        if (k >= 0)
                k = bk_backup_commit(b, id);
        bk_backup_free(b);
        if (k < 0)
                BAIL_OUT("backup failed: %s", log_all);
}

/* The first data chunk of the file at @path of snapshot @snap, and its row. */
static void first_chunk(struct fixture *f, const uint8_t snap[CAIRN_ID_SIZE], const char *path,
                        uint8_t ret[CAIRN_ID_SIZE], struct cairn_chunk_loc *ret_loc) {
        struct cairn_txn *t = NULL;
        struct cairn_snapshot *s = NULL;
        struct cairn_content_chunk chunk;
        struct cairn_entry e;
        char hex[2 * CAIRN_ID_SIZE + 1];
        uint64_t start;

        if (cairn_index_txn_begin(cairn_repo_index(f->r), false, &t) < 0 ||
            cairn_snapshot_resolve(t, hex_encode(snap, CAIRN_ID_SIZE, hex), &s, NULL) < 0 ||
            bk_tree_resolve(t, s->root, path, &e, NULL) < 0 ||
            cairn_index_content_find(t, e.ref, 0, &chunk, &start) < 0 ||
            cairn_index_chunk_get(t, chunk.id, ret_loc) < 0)
                BAIL_OUT("cannot find the first chunk of %s: %s", path, log_all);
        memcpy(ret, chunk.id, CAIRN_ID_SIZE);
        cairn_snapshot_free(s);
        cairn_index_txn_abort(t);
}

static void fixture_new(struct fixture *f, const char *name, bool encrypted) {
        struct cairn_repo_params p;
        struct cairn_txn *t = NULL;
        struct cairn_snapshot *s = NULL;
        struct cairn_entry e;
        char hex[2 * CAIRN_ID_SIZE + 1], path[4200], *real;
        uint8_t *buf;

        *f = (struct fixture) { .pass = { encrypted ? CAIRN_PASS_STRING : CAIRN_PASS_NONE, encrypted ? "pw" : NULL } };
        f->dir = test_mkdtemp(name);
        if (asprintf(&f->repo_path, "%s/repo", f->dir) < 0)
                BAIL_OUT("out of memory");
        snprintf(path, sizeof path, "%s/src", f->dir);
        if (mkdir(path, 0755) < 0 || !(real = realpath(path, NULL)))
                BAIL_OUT("cannot make %s: %m", path);
        f->src = real;
        snprintf(path, sizeof path, "%s/dir", f->src);
        if (mkdir(path, 0755) < 0)
                BAIL_OUT("cannot make %s: %m", path);

        buf = malloc(RANDOM_SIZE);
        if (!buf)
                BAIL_OUT("out of memory");
        test_fill_random(buf, RANDOM_SIZE, 11);
        snprintf(path, sizeof path, "%s/dir/random.bin", f->src);
        write_file(path, buf, RANDOM_SIZE);
        snprintf(path, sizeof path, "%s/hello.txt", f->src);
        write_file(path, "hello, check\n", 13);

        cairn_repo_params_default(&p);
        p.encrypted = encrypted;
        p.scrypt_n = 1024;
        if (cairn_repo_create(f->repo_path, &p, &f->pass) < 0 || cairn_repo_open(f->repo_path, &f->pass, &f->r) < 0)
                BAIL_OUT("cannot create a repository: %s", log_all);
        backup(f, f->snap[0]);

        test_fill_random(buf, NEW_SIZE, 12);
        snprintf(path, sizeof path, "%s/dir/new.bin", f->src);
        write_file(path, buf, NEW_SIZE);
        free(buf);
        backup(f, f->snap[1]);

        snprintf(f->random_path, sizeof f->random_path, "%s/dir/random.bin", f->src);
        snprintf(f->new_path, sizeof f->new_path, "%s/dir/new.bin", f->src);
        snprintf(f->hello_path, sizeof f->hello_path, "%s/hello.txt", f->src);
        snprintf(f->dir_path, sizeof f->dir_path, "%s/dir/", f->src);
        first_chunk(f, f->snap[1], f->random_path, f->random_chunk, &f->random_loc);
        first_chunk(f, f->snap[1], f->new_path, f->new_chunk, &f->new_loc);
        if (memcmp(f->random_loc.pack, f->new_loc.pack, CAIRN_ID_SIZE) == 0)
                BAIL_OUT("the test expects each backup to write its own pack");

        if (cairn_index_txn_begin(cairn_repo_index(f->r), false, &t) < 0 ||
            cairn_snapshot_resolve(t, hex_encode(f->snap[1], CAIRN_ID_SIZE, hex), &s, NULL) < 0 ||
            bk_tree_resolve(t, s->root, f->dir_path, &e, NULL) < 0)
                BAIL_OUT("cannot resolve %s: %s", f->dir_path, log_all);
        memcpy(f->dir_tree, e.ref, CAIRN_ID_SIZE);
        cairn_snapshot_free(s);
        cairn_index_txn_abort(t);
}

static void fixture_free(struct fixture *f) {
        cairn_repo_free(f->r);
        test_rm_rf(f->dir);
        free(f->dir);
        free(f->src);
        free(f->repo_path);
}

static char *pack_file(struct fixture *f, const uint8_t pack[CAIRN_ID_SIZE]) {
        static char path[4400];
        char rel[100];
        snprintf(path, sizeof path, "%s/%s", f->repo_path, cairn_pack_path(pack, rel, sizeof rel));
        return path;
}

static int run_check(struct fixture *f, unsigned pct, struct cairn_check_stats *st) {
        struct cairn_check_options o = { .read_data_pct = pct, .on_problem = on_problem, .on_damage = on_damage };
        n_problems = n_damages = 0;
        log_clear();
        *st = (struct cairn_check_stats) { 0 };
        return cairn_repo_check(f->r, &o, st);
}

static bool problem_with_pack(const uint8_t pack[CAIRN_ID_SIZE], int error, const char *text) {
        for (size_t i = 0; i < n_problems; i++)
                if (problems[i].has_pack && memcmp(problems[i].pack, pack, CAIRN_ID_SIZE) == 0 &&
                    (!error || problems[i].error == error) && (!text || strstr(problems[i].msg, text)))
                        return true;
        return false;
}

static bool problem_with_blob(const uint8_t blob[CAIRN_ID_SIZE], int error, const char *text) {
        for (size_t i = 0; i < n_problems; i++)
                if (problems[i].has_blob && memcmp(problems[i].blob, blob, CAIRN_ID_SIZE) == 0 &&
                    (!error || problems[i].error == error) && (!text || strstr(problems[i].msg, text)))
                        return true;
        return false;
}

static bool damaged(struct fixture *f, int snap, const char *path) {
        for (size_t i = 0; i < n_damages; i++)
                if (memcmp(damages[i].snap, f->snap[snap], CAIRN_ID_SIZE) == 0 &&
                    (path ? !damages[i].record && streq(damages[i].path, path) : damages[i].record))
                        return true;
        return false;
}

static size_t n_damaged(struct fixture *f, int snap) {
        size_t n = 0;
        for (size_t i = 0; i < n_damages; i++)
                n += memcmp(damages[i].snap, f->snap[snap], CAIRN_ID_SIZE) == 0;
        return n;
}

static void dump(void) {
        for (size_t i = 0; i < n_problems; i++)
                diag("problem: %s", problems[i].msg);
        for (size_t i = 0; i < n_damages; i++)
                diag("damaged: %.8s %s", hex_encode(damages[i].snap, CAIRN_ID_SIZE, (char[65]) { 0 }),
                     damages[i].record ? "(record)" : damages[i].path);
}

/* Every check of a damaged repository starts from a clean one: what it
 * finds is the damage done, not something else. */
static bool clean(struct fixture *f, const char *what) {
        struct cairn_check_stats st;
        int k = run_check(f, 100, &st);
        if (!ok(k == 0 && st.errors == 0 && n_damages == 0, "%s: clean before the damage", what)) {
                dump();
                return false;
        }
        return true;
}

static void test_clean(bool encrypted) {
        const char *what = encrypted ? "clean, encrypted" : "clean";
        struct cairn_check_stats st;
        struct fixture f;
        int k;

        fixture_new(&f, "test-check-clean", encrypted);
        k = run_check(&f, 0, &st);
        is(k, 0, "%s: structure check passes", what);
        is(st.errors, 0, "%s: no errors", what);
        is(n_problems + n_damages, 0, "%s: nothing reported", what);
        is(st.snapshots, 2, "%s: both snapshots checked", what);
        is(st.packs, 2, "%s: both packs checked", what);
        is(st.packs_read, 0, "%s: no pack read without read-data", what);
        ok(st.blobs >= 8, "%s: every chunks row counted (%" PRIu64 ")", what, st.blobs);

        k = run_check(&f, 100, &st);
        is(k, 0, "%s: --read-data passes", what);
        is(st.packs_read, 2, "%s: --read-data reads both packs", what);
        is(st.blobs_read, st.blobs, "%s: and decodes every blob", what);
        ok(st.bytes_read > RANDOM_SIZE + NEW_SIZE, "%s: reading every byte of them (%" PRIu64 ")", what, st.bytes_read);

        k = run_check(&f, 50, &st);
        ok(k == 0 && st.packs_read == 1, "%s: --read-data=50%% reads one pack of two (%" PRIu64 ")", what, st.packs_read);
        k = run_check(&f, 1, &st);
        ok(k == 0 && st.packs_read == 1, "%s: --read-data=1%% rounds up to one pack (%" PRIu64 ")", what, st.packs_read);
        fixture_free(&f);
}

static void test_deleted_pack(void) {
        struct cairn_check_stats st;
        struct fixture f;
        int k;

        fixture_new(&f, "test-check-deleted", false);
        if (clean(&f, "deleted pack")) {
                if (unlink(pack_file(&f, f.random_loc.pack)) < 0)
                        BAIL_OUT("cannot delete a pack: %m");
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "deleted pack: the check fails");
                ok(problem_with_pack(f.random_loc.pack, -ENOENT, "is missing"), "deleted pack: names the pack as missing");
                ok(damaged(&f, 0, f.random_path) && damaged(&f, 1, f.random_path),
                   "deleted pack: random.bin is damaged in both snapshots");
                ok(damaged(&f, 0, f.hello_path) && damaged(&f, 1, f.hello_path),
                   "deleted pack: so is hello.txt, stored in the same pack");
                ok(damaged(&f, 0, "/"), "deleted pack: and the first snapshot's root, whose tree was in it");
                ok(!damaged(&f, 1, f.new_path), "deleted pack: new.bin, in the other pack, is not damaged");
                ok(!damaged(&f, 1, "/"), "deleted pack: nor the second snapshot's root tree");
                is(st.damaged_snapshots, 2, "deleted pack: two damaged snapshots");
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);
}

static void test_truncated_pack(void) {
        struct cairn_check_stats st;
        struct fixture f;
        struct stat sb;
        int k;

        fixture_new(&f, "test-check-truncated", false);
        if (clean(&f, "truncated pack")) {
                const char *path = pack_file(&f, f.new_loc.pack);
                if (stat(path, &sb) < 0 || truncate(path, sb.st_size / 2) < 0)
                        BAIL_OUT("cannot truncate a pack: %m");
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "truncated pack: the check fails");
                ok(problem_with_pack(f.new_loc.pack, -EBADMSG, "truncated"), "truncated pack: its size is wrong");
                ok(problem_with_pack(f.new_loc.pack, -EBADMSG, "trailer cannot be read"),
                   "truncated pack: its trailer is unreadable");
                ok(!problem_with_pack(f.random_loc.pack, 0, NULL), "truncated pack: the other pack is fine");
                ok(damaged(&f, 1, f.new_path), "truncated pack: new.bin is damaged in the second snapshot");
                ok(damaged(&f, 1, f.dir_path), "truncated pack: and its directory, whose tree was in that pack");
                ok(!damaged(&f, 1, f.random_path), "truncated pack: random.bin, in the other pack, is not");
                is(n_damaged(&f, 0), 0, "truncated pack: the first snapshot is intact");
                is(st.damaged_snapshots, 1, "truncated pack: one damaged snapshot");
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);
}

static void test_flipped_byte(bool encrypted) {
        const char *what = encrypted ? "flipped byte, encrypted" : "flipped byte";
        struct cairn_check_stats st;
        struct fixture f;
        uint8_t byte;
        off_t at;
        int fd, k;

        fixture_new(&f, "test-check-flip", encrypted);
        if (clean(&f, what)) {
                at = (off_t) (f.random_loc.offset + f.random_loc.stored_len / 2);
                fd = open(pack_file(&f, f.random_loc.pack), O_RDWR | O_CLOEXEC);
                if (fd < 0 || pread(fd, &byte, 1, at) != 1)
                        BAIL_OUT("cannot read a pack: %m");
                byte ^= 0x01;
                if (pwrite(fd, &byte, 1, at) != 1 || close(fd) < 0)
                        BAIL_OUT("cannot write a pack: %m");

                k = run_check(&f, 0, &st);
                ok(k == 0 && n_problems == 0, "%s: the structure check does not read data (%d)", what, k);
                k = run_check(&f, 100, &st);
                is(k, -EBADMSG, "%s: --read-data fails", what);
                ok(problem_with_blob(f.random_chunk, -EBADMSG, "fails its integrity check") &&
                   problem_with_pack(f.random_loc.pack, -EBADMSG, "fails its integrity check"),
                   "%s: names the blob and its pack", what);
                ok(problem_with_pack(f.random_loc.pack, -EBADMSG, "not its name"),
                   "%s: the pack's SHA-256 is no longer its name", what);
                ok(damaged(&f, 0, f.random_path) && damaged(&f, 1, f.random_path),
                   "%s: random.bin is damaged in both snapshots", what);
                ok(!damaged(&f, 0, f.hello_path) && !damaged(&f, 1, f.hello_path) && !damaged(&f, 1, f.new_path),
                   "%s: hello.txt and new.bin are not", what);
                is(n_damages, 2, "%s: exactly those two paths", what);
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);
}

static void del_row(struct fixture *f, enum cairn_index_table table, const uint8_t id[CAIRN_ID_SIZE], bool prefix) {
        struct cairn_txn *t = NULL;
        if (cairn_index_txn_begin(cairn_repo_index(f->r), true, &t) < 0 ||
            (prefix ? cairn_index_del_prefix(t, table, id) : cairn_index_del(t, table, id)) < 0 ||
            cairn_index_txn_commit(t) < 0)
                BAIL_OUT("cannot delete an index row");
}

static void test_deleted_chunk_row(void) {
        struct cairn_check_stats st;
        struct fixture f;
        int k;

        fixture_new(&f, "test-check-row", false);
        if (clean(&f, "deleted chunks row")) {
                del_row(&f, CAIRN_TABLE_CHUNKS, f.new_chunk, false);
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "deleted chunks row: the check fails");
                ok(problem_with_blob(f.new_chunk, -ENOENT, "is not in the index"), "deleted chunks row: names the blob");
                is(n_problems, 1, "deleted chunks row: one problem");
                ok(damaged(&f, 1, f.new_path), "deleted chunks row: new.bin is damaged in the second snapshot");
                is(n_damages, 1, "deleted chunks row: and nothing else");
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);
}

static void test_moved_chunk_row(void) {
        struct cairn_check_stats st;
        struct cairn_chunk_loc loc;
        struct cairn_txn *t = NULL;
        struct fixture f;
        int k;

        fixture_new(&f, "test-check-moved", false);
        if (clean(&f, "wrong location")) {
                /* The row still names the right pack, one byte off: a read
                 * would decode garbage and fail; check says so without
                 * reading any data. */
                loc = f.random_loc;
                loc.offset++;
                if (cairn_index_txn_begin(cairn_repo_index(f.r), true, &t) < 0 ||
                    cairn_index_chunk_put(t, f.random_chunk, &loc) < 0 || cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("cannot rewrite an index row");
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "wrong location: the check fails");
                ok(problem_with_blob(f.random_chunk, -EBADMSG, "by its trailer") &&
                   problem_with_pack(f.random_loc.pack, -EBADMSG, "by the index"),
                   "wrong location: names the blob, its pack, and the trailer's location against the index's");
                is(n_problems, 1, "wrong location: one problem");
                ok(damaged(&f, 0, f.random_path) && damaged(&f, 1, f.random_path) && n_damages == 2,
                   "wrong location: random.bin is damaged in both snapshots, nothing else");
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);

        fixture_new(&f, "test-check-count", false);
        if (clean(&f, "blob count")) {
                if (cairn_index_txn_begin(cairn_repo_index(f.r), true, &t) < 0 ||
                    cairn_index_pack_put(t, f.new_loc.pack, 12345, 99) < 0 || cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("cannot rewrite an index row");
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "packs row: the check fails");
                ok(problem_with_pack(f.new_loc.pack, -EBADMSG, "the index records 12345"), "packs row: wrong size");
                ok(problem_with_pack(f.new_loc.pack, -EBADMSG, "the index records 99"), "packs row: wrong blob count");
                is(n_damages, 0, "packs row: every blob is still where the index says: no file is damaged");
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);
}

static void test_unknown_tree(void) {
        struct cairn_check_stats st;
        struct fixture f;
        int k;

        fixture_new(&f, "test-check-tree", false);
        if (clean(&f, "unknown tree")) {
                /* The directory's rows are there, its blob's row is not:
                 * a tree the index does not know. */
                del_row(&f, CAIRN_TABLE_CHUNKS, f.dir_tree, false);
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "unknown tree: the check fails");
                ok(problem_with_blob(f.dir_tree, -ENOENT, "tree"), "unknown tree: names the tree");
                ok(damaged(&f, 1, f.dir_path), "unknown tree: the directory is damaged in the second snapshot");
                is(n_damaged(&f, 0), 0, "unknown tree: the first snapshot (another tree) is intact");
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);

        fixture_new(&f, "test-check-tree-rows", false);
        if (clean(&f, "tree without rows")) {
                /* Now the blob is known and its entries are gone: not an
                 * empty directory. */
                del_row(&f, CAIRN_TABLE_TREES, f.dir_tree, true);
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "tree without rows: the check fails");
                ok(problem_with_blob(f.dir_tree, -EBADMSG, "has no rows"), "tree without rows: names the tree");
                ok(damaged(&f, 1, f.dir_path), "tree without rows: the directory is damaged");
                ok(!damaged(&f, 1, f.new_path), "tree without rows: its files cannot be reached, so are not listed");
                is(n_damaged(&f, 0), 0, "tree without rows: the first snapshot is intact");
                if (tap_failures)
                        dump();
        }
        fixture_free(&f);
}

static void test_snapshot_files(void) {
        struct cairn_check_stats st;
        struct cairn_snapshot *s = NULL;
        struct cairn_txn *t = NULL;
        struct fixture f;
        char path[4400], hex[2 * CAIRN_ID_SIZE + 1];
        int k;

        fixture_new(&f, "test-check-snap", false);
        if (clean(&f, "snapshot file")) {
                snprintf(path, sizeof path, "%s/snapshots/%s", f.repo_path, hex_encode(f.snap[0], CAIRN_ID_SIZE, hex));
                if (unlink(path) < 0)
                        BAIL_OUT("cannot delete a snapshot file: %m");
                k = run_check(&f, 0, &st);
                is(k, -EBADMSG, "missing snapshot file: the check fails");
                ok(n_problems == 1 && problems[0].has_snap && memcmp(problems[0].snap, f.snap[0], CAIRN_ID_SIZE) == 0 &&
                   problems[0].error == -ENOENT, "missing snapshot file: names the snapshot");
                ok(damaged(&f, 0, NULL) && n_damages == 1, "missing snapshot file: its record is damaged, nothing else");
        }
        fixture_free(&f);

        fixture_new(&f, "test-check-snap-row", false);
        if (clean(&f, "snapshot row")) {
                /* A file without its row: a crash between the two, or a
                 * backup committing now; not damage. */
                if (cairn_index_txn_begin(cairn_repo_index(f.r), false, &t) < 0 ||
                    cairn_snapshot_resolve(t, hex_encode(f.snap[1], CAIRN_ID_SIZE, hex), &s, NULL) < 0)
                        BAIL_OUT("cannot resolve a snapshot");
                cairn_index_txn_abort(t);
                if (cairn_index_txn_begin(cairn_repo_index(f.r), true, &t) < 0 ||
                    cairn_index_snapshot_del(t, s->job, s->start_ns) < 0 || cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("cannot delete a snapshot row");
                cairn_snapshot_free(s);
                k = run_check(&f, 0, &st);
                ok(k == 0 && n_problems == 0, "snapshot file without a row: no error (%d)", k);
                ok(strstr(log_all, "no row in the index") != NULL, "snapshot file without a row: a warning says so");
                is(st.snapshots, 2, "snapshot file without a row: still verified");
        }
        fixture_free(&f);
}

int main(void) {
        cairn_log_set_handler(log_collect, NULL);
        test_clean(false);
        test_clean(true);
        test_deleted_pack();
        test_truncated_pack();
        test_flipped_byte(false);
        test_flipped_byte(true);
        test_deleted_chunk_row();
        test_moved_chunk_row();
        test_unknown_tree();
        test_snapshot_files();
        return tap_done();
}
