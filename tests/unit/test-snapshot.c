/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshot records: JSON round trip, files written/read/verified, forget. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "log.h"
#include "repo.h"
#include "snapshot.h"
#include "tap.h"
#include "test-util.h"
#include "util.h"

static int count_rows(const char *job, int64_t start_ns, const uint8_t id[32], const char *json, size_t len, void *u) {
        (*(int *) u)++;
        return 0;
}

static void run(const char *tmp, bool encrypted) {
        const char *mode = encrypted ? "encrypted" : "unencrypted";
        struct cairn_pass_source pw = { CAIRN_PASS_STRING, "snapshot test" };
        struct cairn_repo_params p;
        struct cairn_repo *r = NULL;
        struct cairn_snapshot *back = NULL;
        char *repo, *json = NULL, path[4300], hex[65];
        uint8_t id[32], (*ids)[32] = NULL;
        size_t n = 0, len;
        char *tags[] = { (char *) "nightly", (char *) "ml" };
        struct cairn_snapshot s = {
                .job = (char *) "pgdb", .host = (char *) "ml-server", .start_ns = 1763686800123456789LL,
                .end_ns = 1763687000000000000LL, .has_parent = true, .tags = tags, .n_tags = 2,
                .log = (char *) "pg_dumpall: warning: something\n", .files = 1, .dirs = 1, .bytes = 123456789012ULL,
                .bytes_read = 42, .added_bytes = 7, .stored_bytes = 5,
        };
        memset(s.root, 0xab, 32);
        memset(s.parent, 0xcd, 32);

        if (asprintf(&repo, "%s/%s", tmp, mode) < 0)
                exit(1);
        cairn_repo_params_default(&p);
        p.encrypted = encrypted;
        p.scrypt_n = 1024;
        if (cairn_repo_create(repo, &p, &pw) < 0 || cairn_repo_open(repo, &pw, &r) < 0)
                BAIL_OUT("set-up failed");

        is(cairn_snapshot_add_error(&s, "/var/lib/prometheus/wal/000123", "file changed while read"), 0, "add an error");
        is(s.status, CAIRN_SNAPSHOT_PARTIAL, "%s: an error makes the snapshot partial", mode);

        is(cairn_snapshot_to_json(&s, &json, &len), 0, "%s: to JSON", mode);
        ok(json && strstr(json, "\"time\":\"2025-11-21T01:00:00Z\""), "%s: JSON has the ISO time: %s", mode, json);
        is(cairn_snapshot_from_json(json, len, &back), 0, "%s: from JSON", mode);
        if (back) {
                ok(streq(back->job, "pgdb") && streq(back->host, "ml-server"), "job and host round trip");
                ok(back->start_ns == s.start_ns && back->end_ns == s.end_ns, "times round trip to the nanosecond");
                ok(memcmp(back->root, s.root, 32) == 0 && back->has_parent && memcmp(back->parent, s.parent, 32) == 0,
                   "root and parent round trip");
                ok(back->status == CAIRN_SNAPSHOT_PARTIAL && back->n_errors == 1 &&
                   streq(back->errors[0].path, "/var/lib/prometheus/wal/000123") &&
                   streq(back->errors[0].reason, "file changed while read"), "status and errors round trip");
                ok(back->n_tags == 2 && streq(back->tags[1], "ml") && streq(back->log, s.log), "tags and log round trip");
                ok(back->bytes == 123456789012ULL && back->bytes_read == 42 && back->stored_bytes == 5, "stats round trip");
                back = cairn_snapshot_free(back);
        }
        free(json);

        is(cairn_snapshot_from_json("{\"version\":1}", 13, &back), -EBADMSG, "a record without job is refused");
        is(cairn_snapshot_from_json("not json", 8, &back), -EBADMSG, "garbage is refused");
        is(cairn_snapshot_from_json("{\"version\":2,\"job\":\"x\"}", 23, &back), -EBADMSG, "unknown version refused");

        is(cairn_snapshot_write(r, &s, id), 0, "%s: write a snapshot file", mode);
        snprintf(path, sizeof path, "%s/snapshots/%s", repo, hex_encode(id, 32, hex));
        struct stat st;
        ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "%s: snapshots/ID exists, mode 0600", mode);
        {
                _cleanup_free_ char *raw = NULL;
                size_t rl = 0;
                read_file_at(AT_FDCWD, path, 1 << 20, &raw, &rl);
                bool plain = raw && memmem(raw, rl, "ml-server", 9) != NULL;
                if (encrypted)
                        ok(raw && !plain, "encrypted: the host name is not visible in the file");
        }
        is(cairn_snapshot_read_file(r, id, &back), 0, "%s: read it back", mode);
        ok(back && streq(back->job, "pgdb") && back->n_errors == 1, "%s: same record", mode);
        back = cairn_snapshot_free(back);

        int rows = 0;
        struct cairn_txn *t = NULL;
        cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        cairn_index_snapshot_foreach(t, "pgdb", count_rows, &rows);
        cairn_index_txn_abort(t);
        is(rows, 1, "%s: the index has its row", mode);

        is(cairn_snapshot_list_files(r, &ids, &n), 0, "list snapshot files");
        ok(n == 1 && memcmp(ids[0], id, 32) == 0, "%s: one file, the right id", mode);
        free(ids);

        /* Damage: one flipped byte anywhere is detected. */
        {
                int fd = open(path, O_RDWR);
                uint8_t c;
                off_t where = st.st_size / 2;
                pread(fd, &c, 1, where);
                c ^= 0x10;
                pwrite(fd, &c, 1, where);
                is(cairn_snapshot_read_file(r, id, &back), -EBADMSG, "%s: a flipped byte is -EBADMSG", mode);
                c ^= 0x10;
                pwrite(fd, &c, 1, where);
                ftruncate(fd, 10);
                is(cairn_snapshot_read_file(r, id, &back), -EBADMSG, "%s: a truncated file is -EBADMSG", mode);
                close(fd);
        }

        is(cairn_snapshot_forget(r, &s, id), 0, "%s: forget", mode);
        ok(access(path, F_OK) < 0, "%s: file gone", mode);
        rows = 0;
        cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        cairn_index_snapshot_foreach(t, NULL, count_rows, &rows);
        cairn_index_txn_abort(t);
        is(rows, 0, "%s: row gone", mode);

        free(s.errors[0].path);
        free(s.errors[0].reason);
        free(s.errors);
        cairn_repo_free(r);
        free(repo);
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-snapshot");
        cairn_log_set_level(CAIRN_LOG_ERR - 1);   /* the damage checks log errors by design */
        run(tmp, true);
        run(tmp, false);
        test_rm_rf(tmp);
        return tap_done();
}
