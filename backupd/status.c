/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The status of every job: state files + the index's snapshot rows, as
 * text, JSON and Prometheus metrics (text exposition format 0.0.4, one
 * HELP and TYPE line per metric family, read by node_exporter's textfile
 * collector).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmdb-index.h"
#include "log.h"
#include "repo.h"
#include "snapshot.h"
#include "status.h"
#include "util.h"

#define NS ((int64_t) 1000000000)

/* Values of cairn_job_last_status, cairn_drill_last_status and
 * cairn_check_last_status (docs in the HELP lines and README). */
enum {
        METRIC_STATUS_OK = 0,
        METRIC_STATUS_PARTIAL = 1,
        METRIC_STATUS_FAILED = 2,
        METRIC_STATUS_NEVER = 3,
};

const char *bk_health_name(enum bk_health h) {
        switch (h) {
        case BK_HEALTH_OK: return "ok";
        case BK_HEALTH_PARTIAL: return "partial";
        case BK_HEALTH_STALE: return "stale";
        case BK_HEALTH_DRILL_FAILED: return "drill-failed";
        case BK_HEALTH_FAILED: return "failed";
        }
        return "unknown";
}

struct bk_status *bk_status_free(struct bk_status *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_jobs; i++)
                bk_state_release(&s->jobs[i].state);
        free(s->jobs);
        bk_state_release(&s->check);
        free(s);
        return NULL;
}

/* ---- collecting ---- */

struct snap_scan {
        uint64_t n;
        int64_t complete_end_ns;        /* end of the newest complete snapshot, 0: none */
        struct cairn_snapshot *newest;  /* the newest of any status */
        uint8_t newest_id[CAIRN_ID_SIZE];
};

static int scan_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json, size_t len,
                   void *userdata) {
        struct snap_scan *sc = userdata;
        struct cairn_snapshot *s = NULL;
        int k;

        sc->n++;
        k = cairn_snapshot_from_json(json, len, &s);
        if (k < 0)
                return 0;       /* "cairn check" reports damaged rows; a count is still a count */
        if (s->status == CAIRN_SNAPSHOT_COMPLETE && s->end_ns > sc->complete_end_ns)
                sc->complete_end_ns = s->end_ns;
        /* Rows come in time order: the last one seen is the newest. */
        cairn_snapshot_free(sc->newest);
        sc->newest = s;
        memcpy(sc->newest_id, id, CAIRN_ID_SIZE);
        return 0;
}

static enum bk_health job_health(const struct bk_job_status *js) {
        if (js->state.h[BK_STATE_BACKUP].last.result == BK_RESULT_FAILED)
                return BK_HEALTH_FAILED;
        if (js->state.h[BK_STATE_DRILL].last.result == BK_RESULT_FAILED)
                return BK_HEALTH_DRILL_FAILED;
        if (js->stale)
                return BK_HEALTH_STALE;
        if (js->state.h[BK_STATE_BACKUP].last.result == BK_RESULT_PARTIAL)
                return BK_HEALTH_PARTIAL;
        return BK_HEALTH_OK;
}

int bk_status_collect(const struct bk_config *c, const char *repo_path, struct cairn_repo *r, struct bk_status **ret) {
        _cleanup_(bk_status_freep) struct bk_status *s = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        int k;

        if (!c || !repo_path || !ret)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->config = c;
        s->now_ns = now_ns();
        snprintf(s->host, sizeof s->host, "localhost");
        (void) gethostname(s->host, sizeof s->host - 1);
        if (c->n_jobs > 0) {
                s->jobs = calloc(c->n_jobs, sizeof *s->jobs);
                if (!s->jobs)
                        return -ENOMEM;
        }
        if (r) {
                k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
                if (k < 0)
                        return log_error_errno(k, "Cannot read the index of %s: %m", repo_path);
        }

        for (size_t i = 0; i < c->n_jobs; i++) {
                struct bk_job_status *js = &s->jobs[i];
                struct snap_scan sc = { 0 };
                struct bk_run *last;

                js->job = &c->jobs[i];
                s->n_jobs++;
                k = bk_state_load(repo_path, js->job->name, &js->state);
                if (k < 0)
                        return k;
                if (t) {
                        k = cairn_index_snapshot_foreach(t, js->job->name, scan_cb, &sc);
                        if (k < 0) {
                                cairn_snapshot_free(sc.newest);
                                return log_error_errno(k, "Cannot read the snapshots of job \"%s\": %m", js->job->name);
                        }
                }
                js->snapshots = sc.n;
                js->last_success_ns = MAX(js->state.h[BK_STATE_BACKUP].success.end_ns, sc.complete_end_ns);

                /* No recorded run (a new host, a lost state/): the newest
                 * snapshot says what the last backup did. */
                last = &js->state.h[BK_STATE_BACKUP].last;
                if (last->result == BK_RESULT_NONE && sc.newest) {
                        last->result = sc.newest->status == CAIRN_SNAPSHOT_COMPLETE ? BK_RESULT_OK : BK_RESULT_PARTIAL;
                        last->start_ns = sc.newest->start_ns;
                        last->end_ns = sc.newest->end_ns;
                        last->bytes = sc.newest->bytes;
                        last->added_bytes = sc.newest->added_bytes;
                        hex_encode(sc.newest_id, CAIRN_ID_SIZE, last->snapshot);
                }
                cairn_snapshot_free(sc.newest);

                js->stale = js->last_success_ns <= 0 ||
                            (js->job->max_age_s > 0 && s->now_ns - js->last_success_ns > (int64_t) js->job->max_age_s * NS);
                js->has_drill = js->job->drill || js->state.h[BK_STATE_DRILL].last.result != BK_RESULT_NONE;
                js->health = job_health(js);
                s->health = MAX(s->health, js->health);
        }
        k = bk_state_load(repo_path, NULL, &s->check);
        if (k < 0)
                return k;
        if (s->check.h[BK_STATE_CHECK].last.result == BK_RESULT_FAILED)
                s->health = BK_HEALTH_FAILED;
        *ret = TAKE_PTR(s);
        return 0;
}

int bk_status_exit_code(const struct bk_status *s) {
        switch (s->health) {
        case BK_HEALTH_OK: return BK_STATUS_EXIT_OK;
        case BK_HEALTH_PARTIAL: return BK_STATUS_EXIT_PARTIAL;
        case BK_HEALTH_STALE: return BK_STATUS_EXIT_STALE;
        default: return BK_STATUS_EXIT_FAILED;
        }
}

/* ---- text ---- */

static char *format_bytes(uint64_t bytes, char *buf, size_t size) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = (double) bytes;
        unsigned u = 0;

        while (v >= 1024 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
        return buf;
}

char *bk_format_age(int64_t seconds, char *buf, size_t size) {
        if (seconds < 0)
                seconds = 0;
        if (seconds < 60)
                snprintf(buf, size, "%" PRId64 "s", seconds);
        else if (seconds < 3600)
                snprintf(buf, size, "%" PRId64 "m %" PRId64 "s", seconds / 60, seconds % 60);
        else if (seconds < 86400)
                snprintf(buf, size, "%" PRId64 "h %" PRId64 "m", seconds / 3600, seconds % 3600 / 60);
        else
                snprintf(buf, size, "%" PRId64 "d %" PRId64 "h", seconds / 86400, seconds % 86400 / 3600);
        return buf;
}

static void print_job(const struct bk_status *s, const struct bk_job_status *js, FILE *f) {
        const struct bk_history *b = &js->state.h[BK_STATE_BACKUP], *d = &js->state.h[BK_STATE_DRILL];
        char when[32], age[32], max[32], sz[32], add[32];

        fprintf(f, "%s: %s", js->job->name, bk_health_name(js->health));
        if (js->last_success_ns > 0)
                fprintf(f, "; last success %s (%s ago", cairn_time_format(js->last_success_ns, when, sizeof when),
                        bk_format_age((s->now_ns - js->last_success_ns) / NS, age, sizeof age));
        else
                fprintf(f, "; never succeeded (");
        if (js->job->max_age_s > 0)
                fprintf(f, "%smax-age %s)", js->last_success_ns > 0 ? "; " : "",
                        bk_format_age((int64_t) js->job->max_age_s, max, sizeof max));
        else
                fprintf(f, "%s)", js->last_success_ns > 0 ? "; no max-age" : "no max-age");
        if (b->failure.result == BK_RESULT_FAILED)
                fprintf(f, "; last failure %s", cairn_time_format(b->failure.end_ns, when, sizeof when));
        fprintf(f, "; %" PRIu64 " snapshot%s", js->snapshots, js->snapshots == 1 ? "" : "s");
        if (b->last.result != BK_RESULT_NONE) {
                fprintf(f, "; last backup %s", bk_result_name(b->last.result));
                if (b->last.result != BK_RESULT_FAILED)
                        fprintf(f, ": %s, %s added", format_bytes(b->last.bytes, sz, sizeof sz),
                                format_bytes(b->last.added_bytes, add, sizeof add));
                fprintf(f, ", %.1f s", b->last.end_ns > b->last.start_ns ? (double) (b->last.end_ns - b->last.start_ns) / 1e9 : 0.0);
                if (b->last.result != BK_RESULT_OK && b->last.message)
                        fprintf(f, " (%s)", b->last.message);
        }
        if (d->last.result != BK_RESULT_NONE) {
                fprintf(f, "; drill %s %s", d->last.result == BK_RESULT_OK ? "passed" : "failed",
                        cairn_time_format(d->last.end_ns, when, sizeof when));
                if (d->last.result != BK_RESULT_OK && d->last.message)
                        fprintf(f, " (%s)", d->last.message);
        } else if (js->job->drill)
                fprintf(f, "; drill never ran");
        fputc('\n', f);
}

int bk_status_print(const struct bk_status *s, FILE *f) {
        const struct bk_history *c = &s->check.h[BK_STATE_CHECK];
        char when[32];

        for (size_t i = 0; i < s->n_jobs; i++)
                print_job(s, &s->jobs[i], f);
        fprintf(f, "check: ");
        if (c->last.result == BK_RESULT_NONE)
                fprintf(f, "never ran");
        else {
                fprintf(f, "last %s %s", c->last.result == BK_RESULT_OK ? "passed" : "failed",
                        cairn_time_format(c->last.end_ns, when, sizeof when));
                if (c->last.result != BK_RESULT_OK && c->last.message)
                        fprintf(f, " (%s)", c->last.message);
                if (c->last.result != BK_RESULT_OK && c->success.result == BK_RESULT_OK)
                        fprintf(f, "; last passed %s", cairn_time_format(c->success.end_ns, when, sizeof when));
        }
        fputc('\n', f);
        return ferror(f) ? -EIO : 0;
}

char *bk_status_text(const struct bk_status *s) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        (void) bk_status_print(s, f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* ---- JSON ---- */

static json_t *time_json(int64_t ns) {
        char when[32];
        return ns > 0 ? json_string(cairn_time_format(ns, when, sizeof when)) : json_null();
}

static json_t *run_json(const struct bk_run *r) {
        json_t *o;

        if (r->result == BK_RESULT_NONE)
                return json_null();
        o = json_pack("{s:s, s:o, s:I, s:I, s:f, s:I, s:I}", "result", bk_result_name(r->result),
                      "time", time_json(r->end_ns), "start_ns", (json_int_t) r->start_ns, "end_ns", (json_int_t) r->end_ns,
                      "duration_s", r->end_ns > r->start_ns ? (double) (r->end_ns - r->start_ns) / 1e9 : 0.0,
                      "bytes", (json_int_t) r->bytes, "added_bytes", (json_int_t) r->added_bytes);
        if (o && r->snapshot[0])
                json_object_set_new(o, "snapshot", json_string(r->snapshot));
        if (o && r->message)
                json_object_set_new(o, "message", json_string(r->message));
        return o;
}

json_t *bk_status_to_json(const struct bk_status *s) {
        const struct bk_history *c = &s->check.h[BK_STATE_CHECK];
        json_t *jobs = json_array(), *root;

        for (size_t i = 0; i < s->n_jobs; i++) {
                const struct bk_job_status *js = &s->jobs[i];
                const struct bk_history *b = &js->state.h[BK_STATE_BACKUP], *d = &js->state.h[BK_STATE_DRILL];
                json_t *j;

                j = json_pack("{s:s, s:s, s:b, s:b, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:I, s:{s:b, s:o, s:o, s:o}}",
                              "job", js->job->name, "status", bk_health_name(js->health), "fresh", !js->stale,
                              "stale", js->stale,
                              "max_age_s", js->job->max_age_s ? json_integer((json_int_t) js->job->max_age_s) : json_null(),
                              "age_s", js->last_success_ns > 0 ? json_integer((json_int_t) ((s->now_ns - js->last_success_ns) / NS))
                                                               : json_null(),
                              "last_success", time_json(js->last_success_ns), "last_success_ns", (json_int_t) js->last_success_ns,
                              "last_failure", time_json(b->failure.result == BK_RESULT_FAILED ? b->failure.end_ns : 0),
                              "last_failure_message", b->failure.message ? json_string(b->failure.message) : json_null(),
                              "last", run_json(&b->last), "snapshots", (json_int_t) js->snapshots,
                              "drill", "configured", js->job->drill != NULL, "last", run_json(&d->last),
                              "last_success", time_json(d->success.result == BK_RESULT_OK ? d->success.end_ns : 0),
                              "last_failure", time_json(d->failure.result == BK_RESULT_FAILED ? d->failure.end_ns : 0));
                if (j)
                        json_array_append_new(jobs, j);
        }
        root = json_pack("{s:s, s:o, s:s, s:b, s:i, s:o, s:{s:o, s:o, s:o}}", "host", s->host, "time", time_json(s->now_ns),
                         "status", bk_health_name(s->health), "ok", s->health == BK_HEALTH_OK,
                         "exit_status", bk_status_exit_code(s), "jobs", jobs,
                         "check", "last", run_json(&c->last),
                         "last_success", time_json(c->success.result == BK_RESULT_OK ? c->success.end_ns : 0),
                         "last_failure", time_json(c->failure.result == BK_RESULT_FAILED ? c->failure.end_ns : 0));
        return root;
}

/* ---- Prometheus ---- */

static int metric_status(enum bk_result r) {
        switch (r) {
        case BK_RESULT_OK: return METRIC_STATUS_OK;
        case BK_RESULT_PARTIAL: return METRIC_STATUS_PARTIAL;
        case BK_RESULT_FAILED: return METRIC_STATUS_FAILED;
        default: return METRIC_STATUS_NEVER;
        }
}

/* A label value, escaped as the exposition format says (\\, \", \n). */
static void put_label(FILE *f, const char *v) {
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        fputc('\\', f);
                if (*v == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                fputc(*v, f);
        }
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void job_sample(FILE *f, const char *name, const char *job, const char *value) {
        fprintf(f, "%s{job=\"", name);
        put_label(f, job);
        fprintf(f, "\"} %s\n", value);
}

static char *seconds(int64_t ns, char *buf, size_t size) {
        snprintf(buf, size, "%" PRId64, ns > 0 ? ns / NS : 0);
        return buf;
}

static int metrics_format(const struct bk_status *s, char **ret, size_t *ret_len) {
        const struct bk_history *c = &s->check.h[BK_STATE_CHECK];
        char *buf = NULL, v[64];
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return -ENOMEM;

#define FOR_JOBS for (size_t i = 0; i < s->n_jobs; i++)
#define JS (&s->jobs[i])
#define LAST (&JS->state.h[BK_STATE_BACKUP].last)
        family(f, "cairn_job_configured", "gauge", "1 for every job of the config.");
        FOR_JOBS job_sample(f, "cairn_job_configured", JS->job->name, "1");

        family(f, "cairn_job_last_success_timestamp_seconds", "gauge",
               "End of the job's last successful backup, Unix time (0: never).");
        FOR_JOBS job_sample(f, "cairn_job_last_success_timestamp_seconds", JS->job->name,
                            seconds(JS->last_success_ns, v, sizeof v));

        family(f, "cairn_job_last_failure_timestamp_seconds", "gauge",
               "End of the job's last failed backup, Unix time (0: never).");
        FOR_JOBS job_sample(f, "cairn_job_last_failure_timestamp_seconds", JS->job->name,
                            seconds(JS->state.h[BK_STATE_BACKUP].failure.end_ns, v, sizeof v));

        family(f, "cairn_job_last_status", "gauge",
               "Result of the job's last backup: 0 ok, 1 partial, 2 failed, 3 never ran.");
        FOR_JOBS {
                snprintf(v, sizeof v, "%d", metric_status(LAST->result));
                job_sample(f, "cairn_job_last_status", JS->job->name, v);
        }

        family(f, "cairn_job_duration_seconds", "gauge", "Duration of the job's last backup.");
        FOR_JOBS {
                snprintf(v, sizeof v, "%.3f", LAST->end_ns > LAST->start_ns ? (double) (LAST->end_ns - LAST->start_ns) / 1e9 : 0.0);
                job_sample(f, "cairn_job_duration_seconds", JS->job->name, v);
        }

        family(f, "cairn_job_added_bytes", "gauge", "Bytes of new data the job's last backup added to the repository.");
        FOR_JOBS {
                snprintf(v, sizeof v, "%" PRIu64, LAST->added_bytes);
                job_sample(f, "cairn_job_added_bytes", JS->job->name, v);
        }

        family(f, "cairn_job_size_bytes", "gauge", "Total size of the files in the job's last snapshot.");
        FOR_JOBS {
                snprintf(v, sizeof v, "%" PRIu64, LAST->bytes);
                job_sample(f, "cairn_job_size_bytes", JS->job->name, v);
        }

        family(f, "cairn_job_snapshots", "gauge", "Snapshots of the job in the repository.");
        FOR_JOBS {
                snprintf(v, sizeof v, "%" PRIu64, JS->snapshots);
                job_sample(f, "cairn_job_snapshots", JS->job->name, v);
        }

        family(f, "cairn_job_max_age_seconds", "gauge", "The job's max-age (0: none).");
        FOR_JOBS {
                snprintf(v, sizeof v, "%" PRIu64, JS->job->max_age_s);
                job_sample(f, "cairn_job_max_age_seconds", JS->job->name, v);
        }

        family(f, "cairn_job_stale", "gauge",
               "1 when the job has no successful backup, or its last one is older than its max-age.");
        FOR_JOBS job_sample(f, "cairn_job_stale", JS->job->name, JS->stale ? "1" : "0");

        family(f, "cairn_drill_last_success_timestamp_seconds", "gauge",
               "End of the job's last passed restore drill, Unix time (0: never).");
        FOR_JOBS if (JS->has_drill)
                job_sample(f, "cairn_drill_last_success_timestamp_seconds", JS->job->name,
                           seconds(JS->state.h[BK_STATE_DRILL].success.end_ns, v, sizeof v));

        family(f, "cairn_drill_last_status", "gauge", "Result of the job's last restore drill: 0 passed, 2 failed, 3 never ran.");
        FOR_JOBS if (JS->has_drill) {
                snprintf(v, sizeof v, "%d", metric_status(JS->state.h[BK_STATE_DRILL].last.result));
                job_sample(f, "cairn_drill_last_status", JS->job->name, v);
        }
#undef LAST
#undef JS
#undef FOR_JOBS

        family(f, "cairn_check_last_success_timestamp_seconds", "gauge",
               "End of the last cairn check that found no problem, Unix time (0: never).");
        fprintf(f, "cairn_check_last_success_timestamp_seconds %s\n", seconds(c->success.end_ns, v, sizeof v));
        family(f, "cairn_check_last_status", "gauge", "Result of the last cairn check: 0 ok, 2 failed, 3 never ran.");
        fprintf(f, "cairn_check_last_status %d\n", metric_status(c->last.result));

        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

int bk_status_write_textfile(const struct bk_status *s, const char *path) {
        _cleanup_free_ char *text = NULL, *dir = NULL;
        const char *slash, *name;
        size_t len = 0;
        int k;

        k = metrics_format(s, &text, &len);
        if (k < 0)
                return log_error_errno(k, "Cannot write the metrics to %s: %m", path);
        slash = strrchr(path, '/');
        if (slash) {
                dir = slash == path ? strdup("/") : strndup(path, (size_t) (slash - path));
                name = slash + 1;
        } else {
                dir = strdup(".");
                name = path;
        }
        if (!dir)
                return -ENOMEM;
        if (!*name)
                return log_error_errno(-EISDIR, "Cannot write the metrics to %s: %m (give a file name)", path);
        /* The temporary name starts with '.' and does not end in .prom:
         * the collector never reads a half-written file. */
        k = write_file_atomic_at(AT_FDCWD, dir, name, text, len, 0644);
        if (k < 0)
                return log_error_errno(k, "Cannot write the metrics to %s: %m", path);
        return 0;
}
