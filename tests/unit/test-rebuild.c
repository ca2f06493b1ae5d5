/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The index is derived: rebuilding it from packs and snapshot files gives
 * back the same tables, row for row. Also exercises the store and
 * snapshot files end to end. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "crypto.h"
#include "log.h"
#include "pack.h"
#include "repo.h"
#include "snapshot.h"
#include "store.h"
#include "tap.h"
#include "test-util.h"
#include "tree.h"
#include "util.h"

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

/* Row count and a digest of every (key, value) in key order, per table. */
static void digest_tables(struct cairn_repo *r, size_t rows[_CAIRN_TABLE_MAX], uint8_t sums[_CAIRN_TABLE_MAX][32]) {
        struct cairn_txn *t = NULL;
        if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0)
                BAIL_OUT("cannot begin a read transaction");
        for (int i = 0; i < _CAIRN_TABLE_MAX; i++) {
                struct table_digest d = { .h = cairn_sha256_new() };
                if (cairn_index_foreach_raw(t, i, digest_row, &d) < 0)
                        BAIL_OUT("cannot walk table %s", cairn_index_table_name(i));
                cairn_sha256_final(d.h, sums[i]);
                cairn_sha256_free(d.h);
                rows[i] = d.rows;
        }
        cairn_index_txn_abort(t);
}

static struct cairn_entry file_entry(const uint8_t content[32], uint64_t size, uint64_t ino) {
        struct cairn_entry e = {
                .type = CAIRN_ENTRY_FILE, .mode = 0100644, .uid = 1000, .gid = 1000, .size = size,
                .mtime_ns = 1700000000123456789LL, .ctime_ns = 1700000000123456789LL, .ino = ino, .nlink = 1,
        };
        memcpy(e.ref, content, 32);
        return e;
}

/* A small tree: root/{a.txt, big.bin, sub/{c.txt, link}}, contents made of
 * data chunks (one with a hole). Returns the root tree id. */
static void store_tree(struct cairn_store *s, uint64_t seed, uint8_t root[32]) {
        struct cairn_content_chunk chunks[4];
        uint8_t cid_a[32], cid_big[32], cid_c[32], sub[32];
        uint8_t *buf = malloc(300000);
        uint8_t *blob;
        size_t len;

        /* a.txt: one chunk, shared by every tree (dedup) */
        memset(buf, 'a', 1000);
        cairn_store_add(s, CAIRN_BLOB_DATA, buf, 1000, chunks[0].id, NULL);
        chunks[0].length = 1000;
        chunks[0].flags = 0;
        cairn_content_encode(chunks, 1, &blob, &len);
        cairn_store_add(s, CAIRN_BLOB_CONTENT, blob, len, cid_a, NULL);
        free(blob);

        /* big.bin: two random chunks with a 1 MiB hole between them */
        test_fill_random(buf, 300000, seed);
        cairn_store_add(s, CAIRN_BLOB_DATA, buf, 200000, chunks[0].id, NULL);
        chunks[0].length = 200000;
        memset(&chunks[1], 0, sizeof chunks[1]);
        chunks[1].length = 1 << 20;
        chunks[1].flags = CAIRN_CHUNK_HOLE;
        cairn_store_add(s, CAIRN_BLOB_DATA, buf + 200000, 100000, chunks[2].id, NULL);
        chunks[2].length = 100000;
        chunks[2].flags = 0;
        cairn_content_encode(chunks, 3, &blob, &len);
        cairn_store_add(s, CAIRN_BLOB_CONTENT, blob, len, cid_big, NULL);
        free(blob);

        /* c.txt: text, compressible */
        len = (size_t) snprintf((char *) buf, 300000, "generation %llu\n", (unsigned long long) seed);
        for (size_t i = len; i < 50000; i++)
                buf[i] = "SELECT 1;\n"[i % 10];
        cairn_store_add(s, CAIRN_BLOB_DATA, buf, 50000, chunks[0].id, NULL);
        chunks[0].length = 50000;
        cairn_content_encode(chunks, 1, &blob, &len);
        cairn_store_add(s, CAIRN_BLOB_CONTENT, blob, len, cid_c, NULL);
        free(blob);

        struct cairn_tree_builder *b = cairn_tree_builder_new();
        struct cairn_entry e = file_entry(cid_c, 50000, 3);
        struct cairn_xattr xa = { "user.origin", 11, "test", 4 };
        cairn_tree_builder_add(b, "c.txt", 5, &e, &xa, 1);
        struct cairn_entry l = { .type = CAIRN_ENTRY_SYMLINK, .mode = 0120777, .nlink = 1,
                                 .target = "../a.txt", .target_len = 8 };
        cairn_tree_builder_add(b, "link", 4, &l, NULL, 0);
        cairn_tree_builder_finish(b, &blob, &len);
        cairn_tree_builder_free(b);
        cairn_store_add(s, CAIRN_BLOB_TREE, blob, len, sub, NULL);
        free(blob);

        b = cairn_tree_builder_new();
        e = file_entry(cid_a, 1000, 1);
        cairn_tree_builder_add(b, "a.txt", 5, &e, NULL, 0);
        e = file_entry(cid_big, 200000 + (1 << 20) + 100000, 2);
        cairn_tree_builder_add(b, "big.bin", 7, &e, NULL, 0);
        struct cairn_entry d = { .type = CAIRN_ENTRY_DIR, .mode = 040755, .nlink = 2 };
        memcpy(d.ref, sub, 32);
        cairn_tree_builder_add(b, "sub", 3, &d, NULL, 0);
        struct cairn_entry empty = { .type = CAIRN_ENTRY_FILE, .mode = 0100600, .nlink = 1 };
        cairn_tree_builder_add(b, "empty", 5, &empty, NULL, 0);
        cairn_tree_builder_finish(b, &blob, &len);
        cairn_tree_builder_free(b);
        cairn_store_add(s, CAIRN_BLOB_TREE, blob, len, root, NULL);
        free(blob);
        free(buf);
}

static void write_snapshot(struct cairn_repo *r, const char *job, int64_t t, const uint8_t root[32], bool partial) {
        struct cairn_snapshot s = {
                .job = (char *) job, .host = (char *) "testhost", .start_ns = t, .end_ns = t + 5000000000LL,
                .files = 4, .dirs = 2, .bytes = 1351000,
        };
        struct cairn_snapshot_error err = { (char *) "/srv/prom/wal/00001", (char *) "file changed while read" };
        uint8_t id[32];
        memcpy(s.root, root, 32);
        if (partial) {
                s.status = CAIRN_SNAPSHOT_PARTIAL;
                s.errors = &err;
                s.n_errors = 1;
        }
        if (cairn_snapshot_write(r, &s, id) < 0)
                BAIL_OUT("cannot write snapshot");
}

static void run(const char *tmp, bool encrypted) {
        char *repo;
        struct cairn_repo_params p;
        struct cairn_pass_source pw = { CAIRN_PASS_STRING, "rebuild test" };
        struct cairn_repo *r = NULL;
        struct cairn_store *s = NULL;
        uint8_t roots[3][32];
        size_t rows_a[_CAIRN_TABLE_MAX], rows_b[_CAIRN_TABLE_MAX];
        uint8_t sums_a[_CAIRN_TABLE_MAX][32], sums_b[_CAIRN_TABLE_MAX][32];
        const char *mode = encrypted ? "encrypted" : "unencrypted";

        if (asprintf(&repo, "%s/%s", tmp, mode) < 0)
                exit(1);
        cairn_repo_params_default(&p);
        p.encrypted = encrypted;
        p.scrypt_n = 1024;
        if (cairn_repo_create(repo, &p, &pw) < 0 || cairn_repo_open(repo, &pw, &r) < 0 || cairn_store_new(r, &s) < 0)
                BAIL_OUT("set-up failed");

        /* Three generations in three packs, two jobs. */
        for (int g = 0; g < 3; g++) {
                store_tree(s, 1000 + (uint64_t) g, roots[g]);
                is(cairn_store_flush(s), 0, "%s: flush pack %d", mode, g);
        }
        const struct cairn_store_stats *st = cairn_store_stats(s);
        is(st->packs_written, 3, "%s: three packs written", mode);
        ok(st->blobs_dedup >= 4, "%s: repeated blobs were deduplicated (%llu)", mode, (unsigned long long) st->blobs_dedup);
        cairn_store_free(s);

        write_snapshot(r, "pgdb", 1763600000LL * 1000000000, roots[0], false);
        write_snapshot(r, "pgdb", 1763686400LL * 1000000000, roots[1], false);
        write_snapshot(r, "configs", 1763686500LL * 1000000000, roots[2], true);

        digest_tables(r, rows_a, sums_a);
        ok(rows_a[CAIRN_TABLE_PACKS] == 3 && rows_a[CAIRN_TABLE_SNAPSHOTS] == 3 && rows_a[CAIRN_TABLE_TREES] >= 6 &&
           rows_a[CAIRN_TABLE_CONTENTS] >= 5 && rows_a[CAIRN_TABLE_CHUNKS] >= 10,
           "%s: the original index has rows in every table", mode);

        /* 1. Rebuild in place. */
        is(cairn_repo_rebuild_index(r), 0, "%s: rebuild succeeds", mode);
        digest_tables(r, rows_b, sums_b);
        for (int i = 0; i < _CAIRN_TABLE_MAX; i++)
                ok(rows_a[i] == rows_b[i] && memcmp(sums_a[i], sums_b[i], 32) == 0,
                   "%s: table %s equal after rebuild (%zu rows, %zu before)", mode, cairn_index_table_name(i), rows_b[i], rows_a[i]);
        cairn_repo_free(r);

        /* 2. Index deleted: open recreates an empty one, rebuild restores it. */
        {
                char idx[4200];
                snprintf(idx, sizeof idx, "%s/index", repo);
                test_rm_rf(idx);
        }
        r = NULL;
        is(cairn_repo_open(repo, &pw, &r), 0, "%s: opens with the index directory deleted", mode);
        if (!r)
                return;
        digest_tables(r, rows_b, sums_b);
        is(rows_b[CAIRN_TABLE_CHUNKS], 0, "%s: the new index is empty", mode);
        is(cairn_repo_rebuild_index(r), 0, "%s: rebuild from nothing", mode);
        digest_tables(r, rows_b, sums_b);
        for (int i = 0; i < _CAIRN_TABLE_MAX; i++)
                ok(rows_a[i] == rows_b[i] && memcmp(sums_a[i], sums_b[i], 32) == 0,
                   "%s: table %s equal after rebuild from scratch", mode, cairn_index_table_name(i));

        /* Blobs read back through the rebuilt index. */
        {
                uint8_t *blob = NULL;
                size_t len = 0;
                int k = cairn_repo_blob_read(r, NULL, roots[2], &blob, &len);
                is(k, 0, "%s: root tree of the last snapshot reads through the rebuilt index", mode);
                size_t cursor = 0, n = 0;
                const char *name;
                size_t nl, el;
                const uint8_t *ent;
                while (blob && cairn_tree_next(blob, len, &cursor, &name, &nl, &ent, &el) > 0)
                        n++;
                is(n, 4, "%s: and holds its four entries", mode);
                free(blob);
        }

        /* 3. A damaged pack: rebuild reports it (-EBADMSG) and keeps the rest. */
        {
                uint8_t (*ids)[32] = NULL;
                size_t n = 0;
                struct cairn_txn *t = NULL;
                struct cairn_chunk_loc loc;
                char path[4300], rel[100];
                int fd;

                cairn_index_txn_begin(cairn_repo_index(r), false, &t);
                cairn_index_chunk_get(t, roots[0], &loc);
                cairn_index_txn_abort(t);
                cairn_pack_path(loc.pack, rel, sizeof rel);
                snprintf(path, sizeof path, "%s/%s", repo, rel);
                fd = open(path, O_WRONLY);
                struct stat sb;
                fstat(fd, &sb);
                /* clobber the footer */
                if (pwrite(fd, "XXXXXXXX", 8, sb.st_size - 8) != 8)
                        BAIL_OUT("cannot damage pack");
                close(fd);
                is(cairn_repo_rebuild_index(r), -EBADMSG, "%s: rebuild with a damaged pack reports it", mode);
                digest_tables(r, rows_b, sums_b);
                is(rows_b[CAIRN_TABLE_PACKS], 2, "%s: the two good packs are indexed", mode);
                is(rows_b[CAIRN_TABLE_SNAPSHOTS], 3, "%s: every snapshot is still indexed", mode);
                cairn_snapshot_list_files(r, &ids, &n);
                is(n, 3, "%s: three snapshot files", mode);
                free(ids);
        }
        cairn_repo_free(r);
        free(repo);
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-rebuild");
        run(tmp, true);
        run(tmp, false);
        test_rm_rf(tmp);
        return tap_done();
}
