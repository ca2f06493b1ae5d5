/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mount's catalog: job and snapshot names (same-second and partial
 * suffixes), latest, reuse of snapshot objects across reloads, change
 * detection, and stable inode numbers. */
#include <errno.h>

#include "catalog.h"
#include "lmdb-index.h"
#include "log.h"
#include "snapshot.h"
#include "tap.h"
#include "test-util.h"
#include "util.h"

#define SEC 1000000000LL
/* 2026-11-21T01:00:00Z */
#define T0 (1795222800LL * SEC)

static int put(struct cairn_index *idx, const char *job, int64_t start_ns, bool partial, uint8_t tag) {
        struct cairn_snapshot s = { .job = (char *) job, .host = (char *) "h", .start_ns = start_ns,
                                    .end_ns = start_ns + 5, .status = partial ? CAIRN_SNAPSHOT_PARTIAL : CAIRN_SNAPSHOT_COMPLETE };
        _cleanup_free_ char *json = NULL;
        struct cairn_txn *t = NULL;
        uint8_t id[CAIRN_ID_SIZE] = { tag, (uint8_t) (start_ns / SEC), (uint8_t) start_ns };
        size_t len;
        int r;

        memset(s.root, tag, sizeof s.root);
        r = cairn_snapshot_to_json(&s, &json, &len);
        if (r < 0)
                return r;
        r = cairn_index_txn_begin(idx, true, &t);
        if (r < 0)
                return r;
        r = cairn_index_snapshot_put(t, job, start_ns, id, json, len);
        if (r < 0) {
                cairn_index_txn_abort(t);
                return r;
        }
        return cairn_index_txn_commit(t);
}

static int del(struct cairn_index *idx, const char *job, int64_t start_ns) {
        struct cairn_txn *t = NULL;
        int r = cairn_index_txn_begin(idx, true, &t);
        if (r < 0)
                return r;
        r = cairn_index_snapshot_del(t, job, start_ns);
        if (r < 0) {
                cairn_index_txn_abort(t);
                return r;
        }
        return cairn_index_txn_commit(t);
}

static int cmp_u64(const void *x, const void *y) {
        uint64_t p = *(const uint64_t *) x, q = *(const uint64_t *) y;
        return p < q ? -1 : p > q;
}

static struct fs_catalog *load(struct cairn_index *idx, const struct fs_catalog *prev) {
        struct cairn_txn *t = NULL;
        struct fs_catalog *c = NULL;
        if (cairn_index_txn_begin(idx, false, &t) < 0 || fs_catalog_load(t, prev, &c) < 0)
                BAIL_OUT("catalog load failed");
        cairn_index_txn_abort(t);
        return c;
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-catalog");
        struct cairn_index *idx = NULL;
        struct fs_catalog *c, *c2, *c3;
        const struct fs_job *j;
        const struct fs_job_snap *js;

        if (cairn_index_open(tmp, &idx) < 0)
                BAIL_OUT("cannot open an index");

        c = load(idx, NULL);
        is(c->n_jobs, 0, "an empty index has no jobs");
        fs_catalog_unref(c);

        if (put(idx, "pgdb", T0, false, 1) < 0 || put(idx, "pgdb", T0 + 86400 * SEC, false, 2) < 0 ||
            put(idx, "pgdb", T0 + 86400 * SEC + SEC / 2, false, 3) < 0 ||
            put(idx, "pgdb", T0 + 86400 * SEC + SEC * 3 / 4, true, 4) < 0 ||
            put(idx, "pgdb", T0 + 2 * 86400 * SEC, true, 5) < 0 || put(idx, "configs", T0 + SEC, true, 6) < 0 ||
            put(idx, "pg", T0, false, 7) < 0)
                BAIL_OUT("cannot write snapshot rows");

        c = load(idx, NULL);
        is(c->n_jobs, 3, "three jobs");
        ok(streq(c->jobs[0].name, "configs") && streq(c->jobs[1].name, "pg") && streq(c->jobs[2].name, "pgdb"),
           "jobs in name order");
        j = fs_catalog_job(c, "pgdb", 4);
        ok(j && j->n_snaps == 5, "pgdb has five snapshots");
        ok(j && streq(j->snaps[0].name, "2026-11-21T01:00:00Z"), "a snapshot is named by its start time: %s",
           j ? j->snaps[0].name : "");
        ok(j && streq(j->snaps[1].name, "2026-11-22T01:00:00Z"), "second day: %s", j ? j->snaps[1].name : "");
        ok(j && streq(j->snaps[2].name, "2026-11-22T01:00:00Z.2"), "same second again gets .2: %s",
           j ? j->snaps[2].name : "");
        ok(j && streq(j->snaps[3].name, "2026-11-22T01:00:00Z.3.partial"), "a third, partial: %s",
           j ? j->snaps[3].name : "");
        ok(j && streq(j->snaps[4].name, "2026-11-23T01:00:00Z.partial"), "a partial snapshot is marked: %s",
           j ? j->snaps[4].name : "");
        ok(j && j->latest == j->snaps[2].snap, "latest is the newest complete snapshot, not a partial one");
        ok(j && streq(fs_job_latest_name(j), "2026-11-22T01:00:00Z.2"), "latest's name: %s",
           j ? fs_job_latest_name(j) : "");
        js = j ? fs_job_snap(j, "2026-11-22T01:00:00Z.2", strlen("2026-11-22T01:00:00Z.2")) : NULL;
        ok(js && js->snap->root[0] == 3, "a snapshot is found by name, with its root tree");
        ok(j && !fs_job_snap(j, "2026-11-22T01:00:00Z.", 21), "a prefix of a name is not a name");
        j = fs_catalog_job(c, "configs", 7);
        ok(j && j->latest == NULL && fs_job_latest_name(j)[0] == 0, "a job with only partial snapshots has no latest");
        ok(!fs_catalog_job(c, "pgd", 3) && !fs_catalog_job(c, "pgdbx", 5), "job lookup is exact");

        c2 = load(idx, c);
        ok(fs_catalog_equal(c, c2), "reloading an unchanged index gives an equal catalog");
        ok(c2->jobs[2].snaps[0].snap == c->jobs[2].snaps[0].snap, "and the same snapshot objects");
        fs_catalog_unref(c2);

        if (put(idx, "pgdb", T0 + 3 * 86400 * SEC, false, 8) < 0 || del(idx, "pgdb", T0) < 0)
                BAIL_OUT("cannot change the rows");
        c2 = load(idx, c);
        ok(!fs_catalog_equal(c, c2), "a new and a forgotten snapshot change the catalog");
        ok(fs_job_equal(&c->jobs[0], &c2->jobs[0]), "other jobs are unchanged");
        j = fs_catalog_job(c2, "pgdb", 4);
        ok(j && j->n_snaps == 5 && streq(fs_job_latest_name(j), "2026-11-24T01:00:00Z"), "latest moves to the new one");
        ok(j && j->snaps[0].snap == c->jobs[2].snaps[1].snap, "kept snapshots keep their objects");

        /* Snapshots live on while held, after their catalogs are gone. */
        struct fs_snap *held = fs_snap_ref(c->jobs[2].snaps[0].snap);
        fs_catalog_unref(c);
        ok(held->root[0] == 1 && streq(held->job, "pgdb"), "a held snapshot outlives the catalog");
        fs_snap_unref(held);

        /* A record that does not parse is left out, not fatal. */
        {
                struct cairn_txn *t = NULL;
                uint8_t id[CAIRN_ID_SIZE] = { 9 };
                if (cairn_index_txn_begin(idx, true, &t) < 0 || cairn_index_snapshot_put(t, "bad", T0, id, "{", 1) < 0 ||
                    cairn_index_txn_commit(t) < 0)
                        BAIL_OUT("cannot write a bad row");
                cairn_log_set_handler(test_log_capture, NULL);
                c3 = load(idx, c2);
                j = fs_catalog_job(c3, "bad", 3);
                ok(!j || j->n_snaps == 0, "a snapshot whose record does not parse is not shown");
                ok(strstr(test_last_log, "does not parse") != NULL, "and that is logged: %s", test_last_log);
                fs_catalog_unref(c3);
        }
        /* Records read whatever their key order, spacing and escapes
         * elsewhere in them; a version the catalog does not know stays
         * out. */
        {
                static const char root_ab[] = "abababababababababababababababababababababababababababababababab";
                char rec[3][1024];
                struct cairn_txn *t = NULL;
                snprintf(rec[0], sizeof rec[0],
                         "{\"tags\":[\"a\\\"}b\"],\"version\":1,\"job\":\"scan\",\"host\":\"h\",\"start_ns\":1,"
                         "\"end_ns\":42,\"root\":\"%s\",\"status\":\"partial\",\"errors\":[{\"path\":\"p\\\\\","
                         "\"reason\":\"r]\"}],\"stats\":{\"files\":1,\"x\":[1,[2,{}]]}}", root_ab);
                snprintf(rec[1], sizeof rec[1],
                         "\n{ \"version\" : 1 ,\n  \"job\": \"scan\", \"host\": \"h\", \"start_ns\": 2,\n"
                         "  \"end_ns\": -7, \"root\": \"%s\", \"status\": \"complete\" }\n", root_ab);
                snprintf(rec[2], sizeof rec[2],
                         "{\"version\":2,\"job\":\"scan\",\"host\":\"h\",\"start_ns\":3,\"end_ns\":3,\"root\":\"%s\","
                         "\"status\":\"complete\"}", root_ab);
                for (int i = 0; i < 3; i++) {
                        uint8_t id[CAIRN_ID_SIZE] = { 20, (uint8_t) i };
                        if (cairn_index_txn_begin(idx, true, &t) < 0 ||
                            cairn_index_snapshot_put(t, "scan", T0 + i * SEC, id, rec[i], strlen(rec[i])) < 0 ||
                            cairn_index_txn_commit(t) < 0)
                                BAIL_OUT("cannot write a scan row");
                }
                c3 = load(idx, NULL);
                j = fs_catalog_job(c3, "scan", 4);
                ok(j && j->n_snaps == 2, "two of the three hand-written records are shown");
                ok(j && j->snaps[0].snap->partial && j->snaps[0].snap->end_ns == 42 && j->snaps[0].snap->root[0] == 0xab &&
                   j->snaps[0].snap->root[31] == 0xab, "escapes and nesting elsewhere: status, end and root read right");
                ok(j && !j->snaps[1].snap->partial && j->snaps[1].snap->end_ns == -7 && j->latest == j->snaps[1].snap,
                   "spaces and newlines: read right, and it is the latest");
                fs_catalog_unref(c3);
        }
        fs_catalog_unref(c2);

        /* Inode numbers. */
        uint64_t a = fs_ino_child(5, "a", 1), b = fs_ino_child(5, "b", 1), a6 = fs_ino_child(6, "a", 1);
        ok(a == fs_ino_child(5, "a", 1), "a name's inode number is stable");
        ok(a != b && a != a6, "different names and parents give different numbers");
        ok(a > 1 && b > 1 && a6 > 1, "never 0 or 1");
        uint8_t sid[CAIRN_ID_SIZE] = { 1 }, sid2[CAIRN_ID_SIZE] = { 2 };
        ok(fs_ino_hardlink(sid, 77) == fs_ino_hardlink(sid, 77) && fs_ino_hardlink(sid, 77) != fs_ino_hardlink(sid2, 77) &&
           fs_ino_hardlink(sid, 77) != fs_ino_hardlink(sid, 78), "hard-link groups: stable, per snapshot and group");
        {
                /* 100,000 names in one directory: no collision. */
                size_t n = 100000, dups = 0;
                uint64_t *v = malloc(n * sizeof *v);
                char name[32];
                for (size_t i = 0; i < n; i++) {
                        int len = snprintf(name, sizeof name, "file-%zu", i);
                        v[i] = fs_ino_child(12345, name, (size_t) len);
                }
                for (size_t i = 0; i < n; i++)
                        for (size_t k = i + 1; k < n && k < i + 64; k++)
                                dups += v[i] == v[k];
                qsort(v, n, sizeof *v, cmp_u64);
                for (size_t i = 1; i < n; i++)
                        dups += v[i] == v[i - 1];
                is(dups, 0, "no two of 100,000 names share an inode number");
                free(v);
        }

        cairn_index_free(idx);
        test_rm_rf(tmp);
        return tap_done();
}
