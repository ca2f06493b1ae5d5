/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * REPO/state/: one small JSON file per job (and one for check), replaced
 * atomically.  A file:
 *
 *   { "version": 1, "job": "pgdb",
 *     "backup": { "last": RUN, "success": RUN, "failure": RUN },
 *     "drill":  { ... },
 *     "stale_alert": { "for_ns": N } }
 *
 *   RUN = { "result": "ok|partial|failed", "time": "ISO 8601 UTC (end)",
 *           "start_ns": N, "end_ns": N, "duration_s": X, "bytes": N,
 *           "added_bytes": N, "snapshot": "…", "message": "…" }
 *
 * Readers take what they understand and skip the rest, so a later cairn
 * may add fields; a file of a newer version is read the same way but
 * never overwritten.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "log.h"
#include "snapshot.h"
#include "state.h"
#include "util.h"

#define STATE_VERSION 1
#define STATE_MAX_BYTES (1024 * 1024)
#define MESSAGE_MAX 1000

static const char *const kind_key[_BK_STATE_KIND_MAX] = {
        [BK_STATE_BACKUP] = "backup",
        [BK_STATE_DRILL] = "drill",
        [BK_STATE_CHECK] = "check",
};

const char *bk_result_name(enum bk_result r) {
        switch (r) {
        case BK_RESULT_OK: return "ok";
        case BK_RESULT_PARTIAL: return "partial";
        case BK_RESULT_FAILED: return "failed";
        default: return "none";
        }
}

static enum bk_result result_parse(const char *s) {
        if (!s)
                return BK_RESULT_NONE;
        if (streq(s, "ok"))
                return BK_RESULT_OK;
        if (streq(s, "partial"))
                return BK_RESULT_PARTIAL;
        if (streq(s, "failed"))
                return BK_RESULT_FAILED;
        return BK_RESULT_NONE;
}

static void run_release(struct bk_run *r) {
        free(r->message);
        *r = (struct bk_run) { 0 };
}

void bk_state_release(struct bk_state *s) {
        if (!s)
                return;
        for (size_t k = 0; k < _BK_STATE_KIND_MAX; k++) {
                run_release(&s->h[k].last);
                run_release(&s->h[k].success);
                run_release(&s->h[k].failure);
        }
        *s = (struct bk_state) { 0 };
}

static int run_copy(struct bk_run *dst, const struct bk_run *src) {
        char *m = NULL;

        if (src->message) {
                m = strndup(src->message, MESSAGE_MAX);
                if (!m)
                        return -ENOMEM;
        }
        run_release(dst);
        *dst = *src;
        dst->message = m;
        return 0;
}

/* ---- paths ---- */

static int state_paths(const char *repo, const char *job, char **ret_dir, char **ret_name) {
        _cleanup_free_ char *dir = NULL, *name = NULL;

        if (job) {
                /* Job names are checked by the config and by "backup --job"; never a path. */
                if (!*job || strchr(job, '/') || job[0] == '.')
                        return -EINVAL;
                if (asprintf(&dir, "%s/state/jobs", repo) < 0 || asprintf(&name, "%s.json", job) < 0)
                        return -ENOMEM;
        } else if (asprintf(&dir, "%s/state", repo) < 0 || !(name = strdup("check.json")))
                return -ENOMEM;
        *ret_dir = TAKE_PTR(dir);
        *ret_name = TAKE_PTR(name);
        return 0;
}

/* ---- reading ---- */

static int64_t json_get_int(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) ? (int64_t) json_integer_value(v) : 0;
}

static uint64_t json_get_uint(json_t *o, const char *key) {
        int64_t v = json_get_int(o, key);
        return v > 0 ? (uint64_t) v : 0;
}

static int run_from_json(json_t *o, struct bk_run *ret) {
        const char *snap, *msg;

        if (!json_is_object(o))
                return 0;
        ret->result = result_parse(json_string_value(json_object_get(o, "result")));
        if (ret->result == BK_RESULT_NONE)
                return 0;
        ret->start_ns = json_get_int(o, "start_ns");
        ret->end_ns = json_get_int(o, "end_ns");
        ret->bytes = json_get_uint(o, "bytes");
        ret->added_bytes = json_get_uint(o, "added_bytes");
        snap = json_string_value(json_object_get(o, "snapshot"));
        if (snap)
                snprintf(ret->snapshot, sizeof ret->snapshot, "%s", snap);
        msg = json_string_value(json_object_get(o, "message"));
        if (msg && !(ret->message = strndup(msg, MESSAGE_MAX)))
                return -ENOMEM;
        return 0;
}

/* *ret_version: the file's version, 0 when there is no (usable) file. */
static int state_read(const char *dir, const char *name, struct bk_state *ret, int *ret_version) {
        _cleanup_free_ char *path = NULL, *data = NULL;
        json_t *root, *v;
        json_error_t jerr;
        size_t len = 0;
        int k = 0;

        *ret = (struct bk_state) { 0 };
        *ret_version = 0;
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        k = read_file_at(AT_FDCWD, path, STATE_MAX_BYTES, &data, &len);
        if (k == -ENOENT)
                return 0;
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                log_warning_errno(k, "Cannot read %s: %m; taking it as empty", path);
                return 0;
        }
        root = json_loadb(data, len, 0, &jerr);
        if (!json_is_object(root) || !json_is_integer(json_object_get(root, "version"))) {
                log_warning("%s is damaged (%s); taking it as empty (the next run rewrites it)", path,
                            root ? "not a state record" : jerr.text);
                json_decref(root);
                return 0;
        }
        *ret_version = (int) json_integer_value(json_object_get(root, "version"));
        for (size_t i = 0; k >= 0 && i < _BK_STATE_KIND_MAX; i++) {
                json_t *h = json_object_get(root, kind_key[i]);

                if (!json_is_object(h))
                        continue;
                k = run_from_json(json_object_get(h, "last"), &ret->h[i].last);
                if (k >= 0)
                        k = run_from_json(json_object_get(h, "success"), &ret->h[i].success);
                if (k >= 0)
                        k = run_from_json(json_object_get(h, "failure"), &ret->h[i].failure);
        }
        v = json_object_get(root, "stale_alert");
        if (json_is_object(v) && json_is_integer(json_object_get(v, "for_ns"))) {
                ret->stale_alerted = true;
                ret->stale_alerted_for = json_get_int(v, "for_ns");
        }
        json_decref(root);
        if (k < 0)
                bk_state_release(ret);
        return k;
}

int bk_state_load(const char *repo, const char *job, struct bk_state *ret) {
        _cleanup_free_ char *dir = NULL, *name = NULL;
        int version, k;

        *ret = (struct bk_state) { 0 };
        k = state_paths(repo, job, &dir, &name);
        if (k < 0)
                return k;
        return state_read(dir, name, ret, &version);
}

/* ---- writing ---- */

static json_t *run_to_json(const struct bk_run *r) {
        char when[32];
        json_t *o;

        o = json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:I}", "result", bk_result_name(r->result),
                      "time", cairn_time_format(r->end_ns, when, sizeof when), "start_ns", (json_int_t) r->start_ns,
                      "end_ns", (json_int_t) r->end_ns,
                      "duration_s", r->end_ns > r->start_ns ? (double) (r->end_ns - r->start_ns) / 1e9 : 0.0,
                      "bytes", (json_int_t) r->bytes, "added_bytes", (json_int_t) r->added_bytes);
        if (!o)
                return NULL;
        if (r->snapshot[0])
                json_object_set_new(o, "snapshot", json_string(r->snapshot));
        if (r->message) {
                json_t *m = json_string(r->message);

                /* json_string refuses invalid UTF-8, and a command's stderr may hold anything. */
                if (!m) {
                        _cleanup_free_ char *ascii = strdup(r->message);
                        for (char *c = ascii; c && *c; c++)
                                if ((unsigned char) *c >= 0x80)
                                        *c = '?';
                        m = ascii ? json_string(ascii) : NULL;
                }
                json_object_set_new(o, "message", m);
        }
        return o;
}

static json_t *state_to_json(const struct bk_state *s, const char *job) {
        json_t *root = json_pack("{s:i}", "version", STATE_VERSION);

        if (!root)
                return NULL;
        if (job)
                json_object_set_new(root, "job", json_string(job));
        for (size_t i = 0; i < _BK_STATE_KIND_MAX; i++) {
                const struct bk_history *h = &s->h[i];
                json_t *o;

                if (h->last.result == BK_RESULT_NONE)
                        continue;
                o = json_object();
                json_object_set_new(o, "last", run_to_json(&h->last));
                if (h->success.result != BK_RESULT_NONE)
                        json_object_set_new(o, "success", run_to_json(&h->success));
                if (h->failure.result != BK_RESULT_NONE)
                        json_object_set_new(o, "failure", run_to_json(&h->failure));
                json_object_set_new(root, kind_key[i], o);
        }
        if (s->stale_alerted)
                json_object_set_new(root, "stale_alert", json_pack("{s:I}", "for_ns", (json_int_t) s->stale_alerted_for));
        return root;
}

/* Lock, read, let @update change the state, write.  Logs its own
 * problems (as warnings). */
static int state_update(const char *repo, const char *job, int (*update)(struct bk_state *s, const void *arg),
                        const void *arg) {
        _cleanup_free_ char *dir = NULL, *name = NULL, *statedir = NULL, *lockpath = NULL, *text = NULL;
        _cleanup_close_ int lockfd = -1;
        struct bk_state s = { 0 };
        json_t *j;
        int version = 0, k;

        if (!repo)
                return -EINVAL;
        k = state_paths(repo, job, &dir, &name);
        if (k < 0)
                return log_warning_errno(k, "Cannot record the state of job \"%s\": %m", job ? job : "");
        if (asprintf(&statedir, "%s/state", repo) < 0 || asprintf(&lockpath, "%s/lock", statedir) < 0)
                return -ENOMEM;
        k = mkdir_at_p(AT_FDCWD, statedir, 0700);
        if (k >= 0)
                k = mkdir_at_p(AT_FDCWD, dir, 0700);
        if (k < 0)
                return log_warning_errno(k, "Cannot record the result: cannot create %s: %m", dir);
        lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lockfd < 0)
                return log_warning_errno(-errno, "Cannot record the result: cannot open %s: %m", lockpath);
        while (flock(lockfd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return log_warning_errno(-errno, "Cannot record the result: cannot lock %s: %m", lockpath);

        k = state_read(dir, name, &s, &version);
        if (k < 0)
                return log_warning_errno(k, "Cannot record the result in %s/%s: %m", dir, name);
        if (version > STATE_VERSION) {
                bk_state_release(&s);
                log_warning("%s/%s was written by a newer cairn (state version %d); not changing it", dir, name, version);
                return -EPROTONOSUPPORT;
        }
        k = update(&s, arg);
        j = k >= 0 ? state_to_json(&s, job) : NULL;
        bk_state_release(&s);
        if (k >= 0 && j)
                text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(j);
        if (k >= 0 && !text)
                k = -ENOMEM;
        if (k >= 0)
                k = write_file_atomic_at(AT_FDCWD, dir, name, text, strlen(text), 0600);
        if (k < 0)
                return log_warning_errno(k, "Cannot record the result in %s/%s: %m", dir, name);
        return 0;
}

struct record_arg {
        enum bk_state_kind kind;
        const struct bk_run *run;
};

static int record_update(struct bk_state *s, const void *arg) {
        const struct record_arg *a = arg;
        struct bk_history *h = &s->h[a->kind];
        int k;

        k = run_copy(&h->last, a->run);
        if (k >= 0 && a->run->result == BK_RESULT_OK)
                k = run_copy(&h->success, a->run);
        if (k >= 0 && a->run->result == BK_RESULT_FAILED)
                k = run_copy(&h->failure, a->run);
        return k;
}

int bk_state_record(const char *repo, const char *job, enum bk_state_kind kind, const struct bk_run *run) {
        struct record_arg a = { .kind = kind, .run = run };

        if (kind < 0 || kind >= _BK_STATE_KIND_MAX || !run || run->result == BK_RESULT_NONE ||
            (kind == BK_STATE_CHECK) != !job)
                return -EINVAL;
        return state_update(repo, job, record_update, &a);
}

static int stale_update(struct bk_state *s, const void *arg) {
        s->stale_alerted = true;
        s->stale_alerted_for = *(const int64_t *) arg;
        return 0;
}

int bk_state_mark_stale_alerted(const char *repo, const char *job, int64_t for_ns) {
        if (!job)
                return -EINVAL;
        return state_update(repo, job, stale_update, &for_ns);
}

/* ---- the first error of a run ---- */

static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static char capture_first[MESSAGE_MAX + 1];    /* protected by capture_lock */

void bk_error_capture_reset(void) {
        pthread_mutex_lock(&capture_lock);
        capture_first[0] = 0;
        pthread_mutex_unlock(&capture_lock);
}

void bk_error_capture_note(int level, const char *msg) {
        if (level > CAIRN_LOG_ERR || !msg || !*msg)
                return;
        pthread_mutex_lock(&capture_lock);
        if (!capture_first[0])
                snprintf(capture_first, sizeof capture_first, "%s", msg);
        pthread_mutex_unlock(&capture_lock);
}

char *bk_error_capture_first(void) {
        char *s = NULL;

        pthread_mutex_lock(&capture_lock);
        if (capture_first[0])
                s = strdup(capture_first);
        pthread_mutex_unlock(&capture_lock);
        return s;
}
