/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * `cairn import`: archive files (or stdin) as snapshots, one per archive,
 * stored as a tar-command source stores its stream (bk_backup_archive in
 * source-tar.c): a browsable tree with the archive's metadata, hostile
 * entries refused with a warning.
 *
 *   bk_import_plan()     which job and time each archive gets, in time order
 *   bk_import_one()      one archive → one snapshot, under the job's locks
 *
 * The time of an archive is, in this order: --time; the YYYYMMDD_HHMMSS
 * of a name like SERVICE_YYYYMMDD_HHMMSS.EXT (grafana_20250101_020000.tar.gz,
 * which also names the job SERVICE unless --job is given); the file's
 * mtime; for stdin, now.  An archive whose job already has a snapshot at
 * exactly its time is taken to be imported already and is skipped, so an
 * import over a whole directory of archives can be run again and imports
 * only the new ones.  A damaged archive records no snapshot.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo.h"
#include "snapshot.h"

struct bk_import_item {
        char *archive;          /* as given; "-" is stdin */
        char *job;
        int64_t time_ns;        /* 0 for stdin without --time: the time of the import */
        size_t order;           /* position on the command line (ties in time) */
};

/* Parse @s as "2026-11-21T01:00:00Z" (optionally with a fraction of a
 * second, "+00:00" for "Z", or the basic form 20261121T010000Z) or
 * "20261121_010000".  ISO forms are UTC; the YYYYMMDD_HHMMSS form is UTC,
 * or local time ($TZ) when @local.  Returns 0 or -EINVAL (not logged). */
int bk_import_parse_time(const char *s, bool local, int64_t *ret_ns);

/* A file name of the series form SERVICE_YYYYMMDD_HHMMSS[.EXT...] (the
 * directory part is ignored, the rightmost such stamp counts): 1 with
 * *ret_service (malloc'd) and *ret_ns, 0 when the name is not of that
 * form (*ret_service NULL), -EINVAL when its stamp is not a valid time,
 * -ENOMEM. */
int bk_import_name_parse(const char *path, bool local, char **ret_service, int64_t *ret_ns);

/* The job and time of each of @archives[0..n) as described above, sorted
 * by time (command-line order between equal times).  @job and @time may
 * be NULL; @time is refused with more than one archive, "-" more than
 * once.  Every problem is logged naming the archive; then -EINVAL (a
 * usage problem: no job, a bad time) or -errno (an archive that cannot be
 * stat'ed), and nothing is returned.  *ret malloc'd: free with
 * bk_import_items_free(). */
int bk_import_plan(char *const *archives, size_t n, const char *job, const char *time, bool local,
                   struct bk_import_item **ret, size_t *ret_n);
void bk_import_items_free(struct bk_import_item *items, size_t n);

struct bk_import_options {
        const char *dir;        /* where in the snapshot the archive goes; NULL: the root */
        bool wait;              /* wait for the job's and the repository's locks */
        bool progress;          /* the backup progress line on stderr */
};

enum bk_import_status {
        BK_IMPORT_OK,
        BK_IMPORT_PARTIAL,      /* committed; entries were refused or unreadable (warned) */
        BK_IMPORT_SKIPPED,      /* the job has a snapshot at that time already */
        BK_IMPORT_FAILED,       /* logged; no snapshot was recorded */
        BK_IMPORT_LOCKED,       /* a backup of the job, or a prune, holds a lock */
};

struct bk_import_result {
        enum bk_import_status status;
        uint8_t id[CAIRN_ID_SIZE];      /* the snapshot made (ok, partial) or found (skipped) */
        int64_t time_ns;                /* its time */
        struct cairn_snapshot *snap;    /* the record made (ok, partial); owned by the caller */
};

/* Import one archive as a snapshot of item->job at item->time_ns, with
 * the locks `cairn backup` takes: the job's, exclusive (never two
 * writers of one job), and the repository's, shared (excluding prune).
 * Problems are logged naming the archive.  Returns 0 with *ret filled in
 * (including FAILED and LOCKED: the status says), or -ENOMEM. */
int bk_import_one(struct cairn_repo *r, const struct bk_import_item *item, const struct bk_import_options *o,
                  struct bk_import_result *ret);
