/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fault.h"
#include "idset.h"
#include "log.h"
#include "repo.h"
#include "snapshot.h"
#include "util.h"

#define SNAPSHOT_MAGIC "CAIRNSN\x01"
#define SNAPSHOT_MAGIC_SIZE 8
#define SNAPSHOT_JSON_MAX (64u * 1024 * 1024)


struct cairn_snapshot *cairn_snapshot_free(struct cairn_snapshot *s) {
        if (!s)
                return NULL;
        free(s->job);
        free(s->host);
        for (size_t i = 0; i < s->n_errors; i++) {
                free(s->errors[i].path);
                free(s->errors[i].reason);
        }
        free(s->errors);
        for (size_t i = 0; i < s->n_tags; i++)
                free(s->tags[i]);
        free(s->tags);
        free(s->log);
        free(s);
        return NULL;
}

int cairn_snapshot_add_error(struct cairn_snapshot *s, const char *path, const char *reason) {
        struct cairn_snapshot_error *e = realloc(s->errors, (s->n_errors + 1) * sizeof *e);
        if (!e)
                return -ENOMEM;
        s->errors = e;
        e[s->n_errors].path = strdup(path);
        e[s->n_errors].reason = strdup(reason);
        if (!e[s->n_errors].path || !e[s->n_errors].reason) {
                free(e[s->n_errors].path);
                free(e[s->n_errors].reason);
                return -ENOMEM;
        }
        s->n_errors++;
        s->status = CAIRN_SNAPSHOT_PARTIAL;
        return 0;
}

char *cairn_time_format(int64_t ns, char *buf, size_t size) {
        time_t t = (time_t) (ns / 1000000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return buf;
}

static json_t *hex_json(const uint8_t *id, size_t n) {
        char hex[2 * CAIRN_ID_SIZE + 1];
        return json_string(hex_encode(id, n, hex));
}

int cairn_snapshot_to_json(const struct cairn_snapshot *s, char **ret, size_t *ret_len) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        json_t *errors, *tags;
        char when[32];
        char *text;

        if (!s->job || !s->host)
                return -EINVAL;
        errors = json_array();
        tags = json_array();
        o = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:o, s:s, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
                      "version", 1,
                      "job", s->job,
                      "host", s->host,
                      "time", cairn_time_format(s->start_ns, when, sizeof when),
                      "start_ns", (json_int_t) s->start_ns,
                      "end_ns", (json_int_t) s->end_ns,
                      "root", hex_json(s->root, CAIRN_ID_SIZE),
                      "status", s->status == CAIRN_SNAPSHOT_COMPLETE ? "complete" : "partial",
                      "errors", errors,
                      "tags", tags,
                      "stats",
                      "files", (json_int_t) s->files,
                      "dirs", (json_int_t) s->dirs,
                      "bytes", (json_int_t) s->bytes,
                      "bytes_read", (json_int_t) s->bytes_read,
                      "added_bytes", (json_int_t) s->added_bytes,
                      "stored_bytes", (json_int_t) s->stored_bytes);
        if (!o)
                return -ENOMEM;
        if (s->has_parent)
                json_object_set_new(o, "parent", hex_json(s->parent, CAIRN_ID_SIZE));
        if (s->log)
                json_object_set_new(o, "log", json_string(s->log));
        for (size_t i = 0; i < s->n_errors; i++)
                json_array_append_new(errors, json_pack("{s:s, s:s}", "path", s->errors[i].path,
                                                        "reason", s->errors[i].reason));
        for (size_t i = 0; i < s->n_tags; i++)
                json_array_append_new(tags, json_string(s->tags[i]));

        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        *ret = text;
        if (ret_len)
                *ret_len = strlen(text);
        return 0;
}

static int json_strdup(json_t *o, const char *key, bool required, char **ret) {
        json_t *v = json_object_get(o, key);
        if (!v)
                return required ? -EBADMSG : 0;
        if (!json_is_string(v))
                return -EBADMSG;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int json_hex(json_t *o, const char *key, uint8_t *out) {
        json_t *v = json_object_get(o, key);
        if (!json_is_string(v))
                return -EBADMSG;
        return hex_decode(json_string_value(v), out, CAIRN_ID_SIZE) < 0 ? -EBADMSG : 0;
}

static uint64_t json_u64(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;
}

int cairn_snapshot_from_json(const char *text, size_t len, struct cairn_snapshot **ret) {
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        _cleanup_(json_decrefp) json_t *o = NULL;
        json_error_t err;
        json_t *v, *stats, *item;
        const char *status;
        size_t i;
        int k;

        o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!o || !json_is_object(o))
                return log_error_errno(-EBADMSG, "Snapshot record is not valid JSON: %s", o ? "not an object" : err.text);
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        v = json_object_get(o, "version");
        if (!json_is_integer(v) || json_integer_value(v) != 1)
                return log_error_errno(-EBADMSG, "Snapshot record has an unknown version");
        if ((k = json_strdup(o, "job", true, &s->job)) < 0 ||
            (k = json_strdup(o, "host", true, &s->host)) < 0 ||
            (k = json_strdup(o, "log", false, &s->log)) < 0 ||
            (k = json_hex(o, "root", s->root)) < 0)
                return k == -ENOMEM ? k : log_error_errno(-EBADMSG, "Snapshot record lacks a valid job, host or root");
        if (json_object_get(o, "parent")) {
                if (json_hex(o, "parent", s->parent) < 0)
                        return log_error_errno(-EBADMSG, "Snapshot record has a bad parent id");
                s->has_parent = true;
        }
        v = json_object_get(o, "start_ns");
        if (!json_is_integer(v))
                return log_error_errno(-EBADMSG, "Snapshot record lacks start_ns");
        s->start_ns = json_integer_value(v);
        v = json_object_get(o, "end_ns");
        s->end_ns = json_is_integer(v) ? json_integer_value(v) : s->start_ns;
        status = json_string_value(json_object_get(o, "status"));
        if (!status || (!streq(status, "complete") && !streq(status, "partial")))
                return log_error_errno(-EBADMSG, "Snapshot record has a bad status");
        s->status = streq(status, "complete") ? CAIRN_SNAPSHOT_COMPLETE : CAIRN_SNAPSHOT_PARTIAL;

        json_array_foreach(json_object_get(o, "errors"), i, item) {
                const char *p = json_string_value(json_object_get(item, "path"));
                const char *why = json_string_value(json_object_get(item, "reason"));
                if (!p || !why)
                        return log_error_errno(-EBADMSG, "Snapshot record has a malformed error entry");
                k = cairn_snapshot_add_error(s, p, why);
                if (k < 0)
                        return k;
        }
        /* add_error marks partial; the stored status is authoritative. */
        s->status = streq(status, "complete") ? CAIRN_SNAPSHOT_COMPLETE : CAIRN_SNAPSHOT_PARTIAL;

        v = json_object_get(o, "tags");
        if (json_array_size(v) > 0) {
                s->tags = calloc(json_array_size(v), sizeof *s->tags);
                if (!s->tags)
                        return -ENOMEM;
                json_array_foreach(v, i, item) {
                        if (!json_is_string(item))
                                return log_error_errno(-EBADMSG, "Snapshot record has a non-string tag");
                        s->tags[s->n_tags] = strdup(json_string_value(item));
                        if (!s->tags[s->n_tags])
                                return -ENOMEM;
                        s->n_tags++;
                }
        }
        stats = json_object_get(o, "stats");
        s->files = json_u64(stats, "files");
        s->dirs = json_u64(stats, "dirs");
        s->bytes = json_u64(stats, "bytes");
        s->bytes_read = json_u64(stats, "bytes_read");
        s->added_bytes = json_u64(stats, "added_bytes");
        s->stored_bytes = json_u64(stats, "stored_bytes");
        *ret = TAKE_PTR(s);
        return 0;
}

int cairn_snapshot_write(struct cairn_repo *r, const struct cairn_snapshot *s, uint8_t ret_id[CAIRN_ID_SIZE]) {
        const struct cairn_codec *codec = cairn_repo_codec(r);
        _cleanup_free_ char *json = NULL;
        _cleanup_free_ uint8_t *file = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        char hex[2 * CAIRN_ID_SIZE + 1];
        uint8_t id[CAIRN_ID_SIZE];
        size_t len, stored;
        int k;

        if (s->start_ns < 0)
                return log_error_errno(-EINVAL, "Snapshot times before 1970 are not supported");
        k = cairn_snapshot_to_json(s, &json, &len);
        if (k < 0)
                return k;
        cairn_codec_id(codec, json, len, id);
        file = malloc(SNAPSHOT_MAGIC_SIZE + 4 + cairn_codec_bound(codec, len));
        if (!file)
                return -ENOMEM;
        memcpy(file, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_SIZE);
        put_le32(file + SNAPSHOT_MAGIC_SIZE, (uint32_t) len);
        k = cairn_codec_encode(codec, id, json, len, file + SNAPSHOT_MAGIC_SIZE + 4, &stored);
        if (k < 0)
                return k;
        hex_encode(id, CAIRN_ID_SIZE, hex);
        k = write_file_atomic_at(cairn_repo_fd(r), "snapshots", hex, file, SNAPSHOT_MAGIC_SIZE + 4 + stored, 0600);
        if (k < 0)
                return log_error_errno(k, "Cannot write snapshot file %s/snapshots/%s: %m", cairn_repo_path(r), hex);
        cairn_fault_point("snapshot.file-written");

        k = cairn_index_txn_begin(cairn_repo_index(r), true, &t);
        if (k >= 0)
                k = cairn_index_snapshot_put(t, s->job, s->start_ns, id, json, len);
        if (k >= 0) {
                cairn_fault_point("snapshot.before-index-commit");
                k = cairn_index_txn_commit(TAKE_PTR(t));
        }
        if (k < 0)
                return log_error_errno(k, "Cannot record snapshot %s in the index: %m", hex);
        cairn_fault_point("snapshot.after-index-commit");
        if (ret_id)
                memcpy(ret_id, id, CAIRN_ID_SIZE);
        return 0;
}

int cairn_snapshot_read_json(struct cairn_repo *r, const uint8_t id[CAIRN_ID_SIZE], char **ret, size_t *ret_len) {
        const struct cairn_codec *codec = cairn_repo_codec(r);
        _cleanup_free_ char *file = NULL, *json = NULL;
        char path[100], hex[2 * CAIRN_ID_SIZE + 1];
        size_t len, raw;
        int k;

        snprintf(path, sizeof path, "snapshots/%s", hex_encode(id, CAIRN_ID_SIZE, hex));
        k = read_file_at(cairn_repo_fd(r), path, SNAPSHOT_MAGIC_SIZE + 4 + cairn_codec_bound(codec, SNAPSHOT_JSON_MAX),
                         &file, &len);
        if (k == -ENOENT)
                return k;
        if (k < 0)
                return log_error_errno(k, "Cannot read snapshot file %s/%s: %m", cairn_repo_path(r), path);
        if (len < SNAPSHOT_MAGIC_SIZE + 4 || memcmp(file, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_SIZE) != 0)
                return log_error_errno(-EBADMSG, "Snapshot file %s/%s is damaged (bad header)", cairn_repo_path(r), path);
        raw = get_le32((uint8_t *) file + SNAPSHOT_MAGIC_SIZE);
        if (raw > SNAPSHOT_JSON_MAX)
                return log_error_errno(-EBADMSG, "Snapshot file %s/%s is damaged (bad length)", cairn_repo_path(r), path);
        json = malloc(raw + 1);
        if (!json)
                return -ENOMEM;
        k = cairn_codec_decode(codec, id, file + SNAPSHOT_MAGIC_SIZE + 4, len - SNAPSHOT_MAGIC_SIZE - 4, json, raw);
        if (k < 0)
                return log_error_errno(-EBADMSG, "Snapshot file %s/%s is damaged (%s)", cairn_repo_path(r), path,
                                       k == -EBADMSG ? "does not verify" : "cannot decode");
        json[raw] = 0;
        *ret = TAKE_PTR(json);
        if (ret_len)
                *ret_len = raw;
        return 0;
}

int cairn_snapshot_read_file(struct cairn_repo *r, const uint8_t id[CAIRN_ID_SIZE], struct cairn_snapshot **ret) {
        _cleanup_free_ char *json = NULL;
        size_t len;
        int k;

        k = cairn_snapshot_read_json(r, id, &json, &len);
        if (k < 0)
                return k;
        return cairn_snapshot_from_json(json, len, ret);
}

int cairn_snapshot_list_files(struct cairn_repo *r, uint8_t (**ret)[CAIRN_ID_SIZE], size_t *ret_n) {
        _cleanup_close_ int fd = -1;
        uint8_t (*ids)[CAIRN_ID_SIZE] = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;

        fd = openat(cairn_repo_fd(r), "snapshots", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open %s/snapshots: %m", cairn_repo_path(r));
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                uint8_t id[CAIRN_ID_SIZE];
                if (hex_decode(de->d_name, id, CAIRN_ID_SIZE) < 0)
                        continue;   /* ".", "..", temporary files */
                if (n == cap) {
                        void *bigger = realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof *ids);
                        if (!bigger) {
                                free(ids);
                                closedir(d);
                                return -ENOMEM;
                        }
                        ids = bigger;
                }
                memcpy(ids[n++], id, CAIRN_ID_SIZE);
        }
        closedir(d);
        *ret = ids;
        *ret_n = n;
        return 0;
}

int cairn_snapshot_forget(struct cairn_repo *r, const struct cairn_snapshot *s, const uint8_t id[CAIRN_ID_SIZE]) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        char path[100], hex[2 * CAIRN_ID_SIZE + 1];
        int k;

        /* Index row first: a crash in between leaves a file that rebuild
         * would resurrect, never a row naming a missing file. */
        k = cairn_index_txn_begin(cairn_repo_index(r), true, &t);
        if (k >= 0)
                k = cairn_index_snapshot_del(t, s->job, s->start_ns);
        if (k >= 0 || k == -ENOENT) {
                cairn_fault_point("forget.before-row-delete");
                k = cairn_index_txn_commit(TAKE_PTR(t));
        }
        if (k < 0)
                return log_error_errno(k, "Cannot remove snapshot from the index: %m");
        cairn_fault_point("forget.row-deleted");
        snprintf(path, sizeof path, "snapshots/%s", hex_encode(id, CAIRN_ID_SIZE, hex));
        if (unlinkat(cairn_repo_fd(r), path, 0) < 0 && errno != ENOENT)
                return log_error_errno(-errno, "Cannot delete %s/%s: %m", cairn_repo_path(r), path);
        cairn_fault_point("forget.file-deleted");
        return fsync_dir_at(cairn_repo_fd(r), "snapshots");
}

static int row_id_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                     size_t json_len, void *userdata) {
        return cairn_idset_add(userdata, id) < 0 ? -ENOMEM : 0;
}

struct key_ctx {
        int64_t start_ns;
        bool taken;
};

static int key_taken_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                        size_t json_len, void *userdata) {
        struct key_ctx *c = userdata;
        if (start_ns != c->start_ns)
                return 0;
        c->taken = true;
        return 1;
}

int cairn_snapshot_adopt_orphans_txn(struct cairn_repo *r, struct cairn_txn *t, bool dry_run, unsigned *ret_n) {
        _cleanup_free_ uint8_t (*ids)[CAIRN_ID_SIZE] = NULL;
        struct cairn_idset rows = { 0 };
        unsigned adopted = 0;
        size_t n;
        int k;

        k = cairn_snapshot_list_files(r, &ids, &n);
        if (k < 0)
                return k;
        k = cairn_index_snapshot_foreach(t, NULL, row_id_cb, &rows);
        for (size_t i = 0; k >= 0 && i < n; i++) {
                _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
                _cleanup_free_ char *json = NULL;
                char hex[2 * CAIRN_ID_SIZE + 1], when[32];
                struct key_ctx kc;
                size_t len;

                if (cairn_idset_has(&rows, ids[i]))
                        continue;
                k = cairn_snapshot_read_json(r, ids[i], &json, &len);
                if (k >= 0)
                        k = cairn_snapshot_from_json(json, len, &s);
                if (k == -ENOMEM)
                        break;
                if (k < 0) {
                        k = 0;          /* damaged: `cairn check` reports it */
                        continue;
                }
                hex_encode(ids[i], CAIRN_ID_SIZE, hex);
                cairn_time_format(s->start_ns, when, sizeof when);
                kc = (struct key_ctx) { .start_ns = s->start_ns };
                k = cairn_index_snapshot_foreach(t, s->job, key_taken_cb, &kc);
                if (k < 0)
                        break;
                if (kc.taken) {
                        log_warning("Snapshot file snapshots/%s (%s/%s) has no row in the index, and another "
                                    "snapshot has its job and time; it is left as it is", hex, s->job, when);
                        continue;
                }
                k = cairn_index_snapshot_put(t, s->job, s->start_ns, ids[i], json, len);
                if (k < 0)
                        break;
                if (dry_run)
                        log_warning("Snapshot %s/%s (%.8s) has a file but no row in the index (a backup or forget "
                                    "was interrupted); prune would give it its row back and keep its data",
                                    s->job, when, hex);
                else
                        log_warning("Snapshot %s/%s (%.8s) had a file but no row in the index (a backup or forget "
                                    "was interrupted); its row is back", s->job, when, hex);
                adopted++;
        }
        cairn_idset_release(&rows);
        if (k < 0)
                return log_error_errno(k, "Cannot give snapshot files of %s their index rows back: %m",
                                       cairn_repo_path(r));
        if (ret_n)
                *ret_n = adopted;
        return 0;
}

int cairn_snapshot_adopt_orphans(struct cairn_repo *r, unsigned *ret_n) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        unsigned adopted = 0;
        int k;

        k = cairn_index_txn_begin(cairn_repo_index(r), true, &t);
        if (k >= 0)
                k = cairn_snapshot_adopt_orphans_txn(r, t, false, &adopted);
        if (k >= 0 && adopted > 0) {
                k = cairn_index_txn_commit(TAKE_PTR(t));
                if (k < 0)
                        return log_error_errno(k, "Cannot give snapshot files of %s their index rows back: %m",
                                               cairn_repo_path(r));
        }
        if (k < 0)
                return k;
        if (ret_n)
                *ret_n = adopted;
        return 0;
}

struct resolve_ctx {
        const char *when;             /* ISO second to match, or NULL for latest */
        const char *prefix;           /* hex id prefix, or NULL */
        size_t prefix_len;
        bool complete_only;
        unsigned matches;
        bool any_in_job;
        uint8_t id[CAIRN_ID_SIZE];
        char *json;
        size_t json_len;
};

static int resolve_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                      size_t json_len, void *userdata) {
        struct resolve_ctx *c = userdata;
        char hex[2 * CAIRN_ID_SIZE + 1], when[32];

        c->any_in_job = true;
        if (c->prefix) {
                if (strncmp(hex_encode(id, CAIRN_ID_SIZE, hex), c->prefix, c->prefix_len) != 0)
                        return 0;
        } else if (c->when) {
                if (!streq(cairn_time_format(start_ns, when, sizeof when), c->when))
                        return 0;
        } else if (c->complete_only) {
                /* Cheap test first: every record has this exact field. */
                if (!memmem(json, json_len, "\"status\":\"complete\"", 19))
                        return 0;
        }
        /* Rows come oldest first: the last match is the newest. */
        c->matches++;
        memcpy(c->id, id, CAIRN_ID_SIZE);
        free(c->json);
        c->json = strndup(json, json_len);
        c->json_len = json_len;
        return c->json ? 0 : -ENOMEM;
}

int cairn_snapshot_resolve(struct cairn_txn *t, const char *spec, struct cairn_snapshot **ret,
                           uint8_t ret_id[CAIRN_ID_SIZE]) {
        struct resolve_ctx c = { 0 };
        _cleanup_free_ char *job = NULL;
        const char *slash = strchr(spec, '/');
        size_t n = strlen(spec);
        bool hex = n >= 6 && n <= 2 * CAIRN_ID_SIZE && strspn(spec, "0123456789abcdef") == n;
        int k;

        job = slash ? strndup(spec, (size_t) (slash - spec)) : strdup(spec);
        if (!job)
                return -ENOMEM;
        if (slash && !streq(slash + 1, "latest"))
                c.when = slash + 1;
        c.complete_only = true;

        k = cairn_index_snapshot_foreach(t, job, resolve_cb, &c);
        if (k >= 0 && c.matches == 0 && !slash && hex) {
                /* Not a job with snapshots: try it as an id prefix. */
                c = (struct resolve_ctx) { .prefix = spec, .prefix_len = n };
                k = cairn_index_snapshot_foreach(t, NULL, resolve_cb, &c);
                if (k >= 0 && c.matches > 1) {
                        free(c.json);
                        return log_error_errno(-EEXIST, "Snapshot id prefix \"%s\" is ambiguous: give more digits", spec);
                }
        }
        if (k < 0) {
                free(c.json);
                return log_error_errno(k, "Cannot look up snapshot \"%s\": %m", spec);
        }
        if (c.matches == 0) {
                if (c.prefix)
                        return log_error_errno(-ENOENT, "No snapshot or job named \"%s\"", spec);
                if (!c.any_in_job)
                        return log_error_errno(-ENOENT, "Job \"%s\" has no snapshots", job);
                if (c.when)
                        return log_error_errno(-ENOENT, "Job \"%s\" has no snapshot at %s (times are UTC, "
                                               "like 2026-11-21T01:00:00Z; see \"cairn snapshots %s\")", job, c.when, job);
                return log_error_errno(-ENOENT, "Job \"%s\" has no complete snapshot (only partial ones)", job);
        }
        if (ret_id)
                memcpy(ret_id, c.id, CAIRN_ID_SIZE);
        k = 0;
        if (ret)
                k = cairn_snapshot_from_json(c.json, c.json_len, ret);
        free(c.json);
        return k;
}
