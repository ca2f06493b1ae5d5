/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Which snapshots of a job to keep (restic/borg semantics, UTC calendar).
 *
 * Snapshots are taken newest first.  keep-last N keeps the N newest.  For
 * each of hourly/daily/weekly (ISO 8601 week)/monthly/yearly with a count
 * N, the newest snapshot of each of the N most recent periods that have a
 * snapshot is kept.  A snapshot may be kept for several reasons.  With
 * every count zero, everything is kept (forget never empties a job by
 * accident).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* Reasons, as a bit set in *ret_reasons[i]. */
enum {
        BK_KEEP_LAST = 1 << 0,
        BK_KEEP_HOURLY = 1 << 1,
        BK_KEEP_DAILY = 1 << 2,
        BK_KEEP_WEEKLY = 1 << 3,
        BK_KEEP_MONTHLY = 1 << 4,
        BK_KEEP_YEARLY = 1 << 5,
        BK_KEEP_ALL = 1 << 6,          /* no keep-* rule configured */
};

/* @times: start times (ns since the epoch) of one job's snapshots, in any
 * order.  keep[i] says whether snapshot i stays; reasons[i] (may be NULL)
 * why.  Never fails for valid input. */
void bk_retention_select(const struct bk_retention *r, const int64_t *times, size_t n, bool *keep, unsigned *reasons);

/* "daily, weekly" for a reason set, into @buf. */
char *bk_retention_reasons(unsigned reasons, char *buf, size_t size);
