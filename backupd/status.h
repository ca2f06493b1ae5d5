/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * "cairn status": per job of the config, from REPO/state/ (state.h) and
 * the index's snapshot rows, whether it is fresh and healthy; as text,
 * JSON, and a Prometheus textfile for node_exporter.
 *
 * A job is fresh when it has a last success (the later of the state's
 * last successful backup and the end of its newest complete snapshot)
 * and, when it has a max-age, that success is at most max-age old; a job
 * without max-age is fresh once it ever succeeded.  A stale job is one
 * that is not fresh.
 *
 * The health of a job, worst first (its "status"):
 *   failed        the last backup failed
 *   drill-failed  the last restore drill failed
 *   stale         not fresh
 *   partial       the last backup made a partial snapshot
 *   ok
 * and of the whole: the worst job, or failed when the last check failed.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conf.h"
#include "state.h"

struct cairn_repo;

enum bk_health {
        BK_HEALTH_OK,
        BK_HEALTH_PARTIAL,
        BK_HEALTH_STALE,
        BK_HEALTH_DRILL_FAILED,
        BK_HEALTH_FAILED,
};

/* "ok", "partial", "stale", "drill-failed", "failed". */
const char *bk_health_name(enum bk_health h);

/* Exit statuses of "cairn status" (cairn --help documents them). */
enum {
        BK_STATUS_EXIT_OK = 0,          /* every job fresh and healthy */
        BK_STATUS_EXIT_FAILED = 1,      /* a backup, drill or the check failed (or status could not tell) */
        BK_STATUS_EXIT_PARTIAL = 3,     /* only partial snapshots are wrong */
        BK_STATUS_EXIT_STALE = 4,       /* a job is stale (and none failed) */
};

struct bk_job_status {
        const struct bk_job *job;       /* borrowed from the config */
        struct bk_state state;
        uint64_t snapshots;             /* rows in the index */
        int64_t last_success_ns;        /* 0: never */
        bool stale;
        bool has_drill;                 /* configured, or a drill result recorded */
        enum bk_health health;
};

struct bk_status {
        const struct bk_config *config; /* borrowed */
        char host[256];
        int64_t now_ns;
        struct bk_job_status *jobs;
        size_t n_jobs;
        struct bk_state check;          /* REPO/state/check.json */
        enum bk_health health;          /* the worst of jobs and check */
};

/* Collect the status of every job of @c from the state under @repo_path
 * and the index of @r (an open repository; NULL: state only, snapshot
 * counts 0).  *ret owned by the caller.  -ENOMEM, -EIO (index; logged). */
int bk_status_collect(const struct bk_config *c, const char *repo_path, struct cairn_repo *r, struct bk_status **ret);
struct bk_status *bk_status_free(struct bk_status *s);
static inline void bk_status_freep(struct bk_status **s) {
        bk_status_free(*s);
}

int bk_status_exit_code(const struct bk_status *s);

/* "45s", "12m 5s", "5h 4m", "3d 2h" into @buf; returns @buf. */
char *bk_format_age(int64_t seconds, char *buf, size_t size);

/* One line per job and one for check (the text of "cairn status" and of
 * the summary alert). */
int bk_status_print(const struct bk_status *s, FILE *f);
/* malloc'd text of bk_status_print, NULL on -ENOMEM. */
char *bk_status_text(const struct bk_status *s);
/* The JSON of "cairn status --json" (new reference). */
json_t *bk_status_to_json(const struct bk_status *s);

/* Write the Prometheus text format to @path atomically (a temporary file
 * beside it, fsync, rename), mode 0644.  Logs and returns -errno. */
int bk_status_write_textfile(const struct bk_status *s, const char *path);
