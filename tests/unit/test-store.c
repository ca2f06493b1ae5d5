/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store: dedup, publication before index rows, nothing left by an
 * unflushed store, blobs read back through the index. */
#include <dirent.h>
#include <errno.h>

#include "log.h"
#include "repo.h"
#include "store.h"
#include "tap.h"
#include "test-util.h"
#include "util.h"

static size_t count_files(const char *dir) {
        size_t n = 0;
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                char sub[4300];
                if (de->d_name[0] == '.')
                        continue;
                if (strlen(de->d_name) == 2) {
                        snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
                        n += count_files(sub);
                } else
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

static size_t count_tmp(const char *dir) {
        size_t n = 0;
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d)))
                n += strncmp(de->d_name, ".tmp-", 5) == 0;
        if (d)
                closedir(d);
        return n;
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-store");
        char repo[4200], packs[4300];
        struct cairn_repo_params p;
        struct cairn_repo *r = NULL;
        struct cairn_store *s = NULL;
        uint8_t ids[100][32], id[32];
        uint8_t *buf = malloc(1 << 20);
        bool added;

        snprintf(repo, sizeof repo, "%s/repo", tmp);
        snprintf(packs, sizeof packs, "%s/packs", repo);
        cairn_repo_params_default(&p);
        p.scrypt_n = 1024;
        struct cairn_pass_source pw = { CAIRN_PASS_STRING, "store" };
        if (cairn_repo_create(repo, &p, &pw) < 0 || cairn_repo_open(repo, &pw, &r) < 0 || cairn_store_new(r, &s) < 0)
                BAIL_OUT("set-up failed");

        for (int i = 0; i < 100; i++) {
                test_fill_random(buf, 100000, (uint64_t) i);
                cairn_store_add(s, CAIRN_BLOB_DATA, buf, 100000, ids[i], &added);
        }
        is(cairn_store_stats(s)->blobs_added, 100, "100 distinct blobs added");
        test_fill_random(buf, 100000, 7);
        is(cairn_store_add(s, CAIRN_BLOB_DATA, buf, 100000, id, &added), 0, "add a duplicate");
        ok(!added && memcmp(id, ids[7], 32) == 0, "a duplicate in the open pack is not added again");
        is(cairn_store_contains(s, ids[50]), 1, "pending blobs are known to contains()");

        /* Nothing is in the index before the pack is published. */
        {
                struct cairn_txn *t = NULL;
                struct cairn_chunk_loc loc;
                cairn_index_txn_begin(cairn_repo_index(r), false, &t);
                is(cairn_index_chunk_get(t, ids[0], &loc), -ENOENT, "no index row before flush");
                cairn_index_txn_abort(t);
        }
        is(count_files(packs), 0, "no published pack before flush");
        is(count_tmp(packs), 1, "one temporary pack being written");

        is(cairn_store_flush(s), 0, "flush");
        is(count_files(packs), 1, "one pack published");
        is(count_tmp(packs), 0, "no temporary file left");
        {
                uint8_t *back = NULL;
                size_t len = 0;
                test_fill_random(buf, 100000, 42);
                is(cairn_repo_blob_read(r, NULL, ids[42], &back, &len), 0, "read a blob back through the index");
                ok(back && len == 100000 && memcmp(back, buf, len) == 0, "same bytes");
                free(back);
        }
        test_fill_random(buf, 100000, 9);
        cairn_store_add(s, CAIRN_BLOB_DATA, buf, 100000, id, &added);
        ok(!added, "a blob of a published pack is deduplicated through the index");

        /* A store dropped without flush (a crash) leaves no index rows and no temp file. */
        test_fill_random(buf, 1 << 20, 1000);
        cairn_store_add(s, CAIRN_BLOB_DATA, buf, 1 << 20, id, &added);
        ok(added, "a new blob");
        s = cairn_store_free(s);
        is(count_tmp(packs), 0, "an unflushed pack's temporary file is removed");
        is(count_files(packs), 1, "still one pack");
        {
                struct cairn_txn *t = NULL;
                struct cairn_chunk_loc loc;
                cairn_index_txn_begin(cairn_repo_index(r), false, &t);
                is(cairn_index_chunk_get(t, id, &loc), -ENOENT, "the unflushed blob is not in the index");
                cairn_index_txn_abort(t);
        }

        cairn_repo_free(r);
        free(buf);
        test_rm_rf(tmp);
        return tap_done();
}
