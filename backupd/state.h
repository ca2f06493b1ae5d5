/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What ran on this host, and how it went: REPO/state/.  Host-local
 * operational state, not part of the repository format: never synced
 * offsite, never read by libcairn, and independent of the (derived)
 * index, so "cairn index rebuild" leaves it alone and losing it loses
 * only history (docs/FORMAT.md).
 *
 *   REPO/state/jobs/NAME.json   backups and restore drills of job NAME
 *   REPO/state/check.json       cairn check
 *   REPO/state/lock             flock(2), held while a file is updated
 *
 * Each file keeps, per kind of run, the last run, the last success and
 * the last failure.  Files are replaced atomically (temporary file,
 * fsync, rename), mode 0600 (messages may name paths).
 *
 * Nothing here may change a backup's outcome: every function logs its
 * own problems as warnings and the callers only carry on.
 */

#include <stdbool.h>
#include <stdint.h>

#include "crypto.h"

enum bk_result {
        BK_RESULT_NONE = 0,     /* nothing recorded */
        BK_RESULT_OK,           /* backup complete, drill passed, check clean */
        BK_RESULT_PARTIAL,      /* backups only: a snapshot with warnings */
        BK_RESULT_FAILED,
};

/* "none", "ok", "partial", "failed" (the JSON and --json spelling). */
const char *bk_result_name(enum bk_result r);

struct bk_run {
        enum bk_result result;
        int64_t start_ns, end_ns;
        uint64_t bytes;                         /* backup: total size of the snapshot's files */
        uint64_t added_bytes;                   /* backup: raw bytes of data new to the repository */
        char snapshot[2 * CAIRN_ID_SIZE + 1];   /* backup: snapshot id; drill: the snapshot's time; "" none */
        char *message;                          /* owned by the run; NULL: none */
};

enum bk_state_kind {
        BK_STATE_BACKUP,        /* in jobs/NAME.json */
        BK_STATE_DRILL,         /* in jobs/NAME.json */
        BK_STATE_CHECK,         /* in check.json */
        _BK_STATE_KIND_MAX,
};

struct bk_history {
        struct bk_run last;     /* result NONE: never ran */
        struct bk_run success;  /* the last OK run */
        struct bk_run failure;  /* the last FAILED run (a partial backup is neither) */
};

struct bk_state {
        struct bk_history h[_BK_STATE_KIND_MAX];
        /* The stale alert sent last was about the job's success that
         * ended at stale_alerted_for (0: about a job that never
         * succeeded): one alert per stale stretch. */
        bool stale_alerted;
        int64_t stale_alerted_for;
};

/* Read the state of @job (NULL: the repository's, i.e. check.json) of
 * the repository at @repo into *ret (zeroed first; release it with
 * bk_state_release).  A missing file is an empty state; an unreadable or
 * damaged one is logged as a warning and read as empty.  0 or -ENOMEM. */
int bk_state_load(const char *repo, const char *job, struct bk_state *ret);
void bk_state_release(struct bk_state *s);

/* Record @run as the newest run of @kind (of @job, or of the repository
 * for BK_STATE_CHECK): under REPO/state/lock, read, update, write
 * atomically.  The strings of @run are copied.  Problems are logged as
 * warnings naming the file and returned as -errno. */
int bk_state_record(const char *repo, const char *job, enum bk_state_kind kind, const struct bk_run *run);

/* Remember that a stale alert about the success ending at @for_ns
 * (0: none ever) went out for @job.  As bk_state_record. */
int bk_state_mark_stale_alerted(const char *repo, const char *job, int64_t for_ns);

/* The first error message logged since bk_error_capture_reset(), so a
 * failed job's state and alert can say what failed.  cairn's log
 * handler calls bk_error_capture_note() for every message.  Thread-safe.
 * bk_error_capture_first() returns a malloc'd copy, or NULL when none
 * was logged (or out of memory). */
void bk_error_capture_reset(void);
void bk_error_capture_note(int level, const char *msg);
char *bk_error_capture_first(void);
