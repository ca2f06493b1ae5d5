/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "retention.h"

#define NSEC_PER_SEC 1000000000LL

enum period {
        PERIOD_HOURLY,
        PERIOD_DAILY,
        PERIOD_WEEKLY,
        PERIOD_MONTHLY,
        PERIOD_YEARLY,
        _PERIOD_MAX,
};

static const unsigned period_reason[_PERIOD_MAX] = {
        [PERIOD_HOURLY] = BK_KEEP_HOURLY,
        [PERIOD_DAILY] = BK_KEEP_DAILY,
        [PERIOD_WEEKLY] = BK_KEEP_WEEKLY,
        [PERIOD_MONTHLY] = BK_KEEP_MONTHLY,
        [PERIOD_YEARLY] = BK_KEEP_YEARLY,
};

/* The UTC calendar fields every period key is made of. */
struct when {
        long long year;                /* proleptic Gregorian */
        int yday, hour, month;
        long long iso_year;
        int iso_week;
};

static void when_of(int64_t ns, struct when *w) {
        /* Floor, not truncation: a time before 1970 belongs to the second
         * (and so the day) before it, not after it. */
        time_t s = (time_t) (ns / NSEC_PER_SEC - (ns % NSEC_PER_SEC < 0));
        struct tm tm;
        char buf[64];

        if (!gmtime_r(&s, &tm)) {
                /* Out of range for struct tm (billions of years): one
                 * period of its own per second, which is still an order. */
                *w = (struct when) { .year = (long long) s };
                return;
        }
        w->year = (long long) tm.tm_year + 1900;
        w->yday = tm.tm_yday;
        w->hour = tm.tm_hour;
        w->month = tm.tm_mon;
        /* The ISO 8601 week-numbering year differs from the calendar year
         * around New Year (2024-12-30 is 2025-W01, 2021-01-03 is 2020-W53);
         * strftime knows the rule. */
        if (strftime(buf, sizeof buf, "%G %V", &tm) == 0 || sscanf(buf, "%lld %d", &w->iso_year, &w->iso_week) != 2) {
                w->iso_year = w->year;
                w->iso_week = tm.tm_yday / 7;
        }
}

/* A number naming the period of @w: equal for two times exactly when they
 * fall into the same hour / day / ISO week / month / year. */
static long long period_key(const struct when *w, enum period p) {
        switch (p) {
        case PERIOD_HOURLY:
                return (w->year * 366 + w->yday) * 24 + w->hour;
        case PERIOD_DAILY:
                return w->year * 366 + w->yday;
        case PERIOD_WEEKLY:
                return w->iso_year * 54 + w->iso_week;
        case PERIOD_MONTHLY:
                return w->year * 12 + w->month;
        case PERIOD_YEARLY:
        default:
                return w->year;
        }
}

struct order {
        int64_t t;
        size_t i;
};

/* Newest first; equal times in input order, so the result never depends
 * on qsort's instability. */
static int cmp_newest_first(const void *a, const void *b) {
        const struct order *x = a, *y = b;
        if (x->t != y->t)
                return x->t > y->t ? -1 : 1;
        return x->i < y->i ? -1 : x->i > y->i;
}

static void keep_all(bool *keep, unsigned *reasons, size_t n) {
        for (size_t i = 0; i < n; i++) {
                keep[i] = true;
                if (reasons)
                        reasons[i] = BK_KEEP_ALL;
        }
}

void bk_retention_select(const struct bk_retention *r, const int64_t *times, size_t n, bool *keep, unsigned *reasons) {
        const unsigned counts[_PERIOD_MAX] = {
                [PERIOD_HOURLY] = r->hourly,
                [PERIOD_DAILY] = r->daily,
                [PERIOD_WEEKLY] = r->weekly,
                [PERIOD_MONTHLY] = r->monthly,
                [PERIOD_YEARLY] = r->yearly,
        };
        unsigned left[_PERIOD_MAX];
        long long last_key[_PERIOD_MAX];
        bool seen[_PERIOD_MAX] = { false };
        struct order *o;

        if (n == 0)
                return;
        if (r->last == 0 && r->hourly == 0 && r->daily == 0 && r->weekly == 0 && r->monthly == 0 && r->yearly == 0) {
                keep_all(keep, reasons, n);
                return;
        }

        o = malloc(n * sizeof *o);
        if (!o) {
                /* Keeping everything is the one answer that can never lose a
                 * snapshot an operator wanted; forget then deletes nothing. */
                log_warning("Out of memory while applying retention to %zu snapshots: keeping all of them", n);
                keep_all(keep, reasons, n);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                o[i] = (struct order) { .t = times[i], .i = i };
                keep[i] = false;
                if (reasons)
                        reasons[i] = 0;
        }
        qsort(o, n, sizeof *o, cmp_newest_first);
        memcpy(left, counts, sizeof left);

        for (size_t k = 0; k < n; k++) {
                unsigned why = 0;
                struct when w;

                if (k < r->last)
                        why |= BK_KEEP_LAST;
                when_of(o[k].t, &w);
                for (int p = 0; p < _PERIOD_MAX; p++) {
                        long long key;

                        if (left[p] == 0)
                                continue;
                        /* Going from newest to oldest, the first snapshot met
                         * in a period is that period's newest: it is kept, and
                         * only then does the period count toward N. */
                        key = period_key(&w, (enum period) p);
                        if (seen[p] && key == last_key[p])
                                continue;
                        seen[p] = true;
                        last_key[p] = key;
                        left[p]--;
                        why |= period_reason[p];
                }
                keep[o[k].i] = why != 0;
                if (reasons)
                        reasons[o[k].i] = why;
        }
        free(o);
}

char *bk_retention_reasons(unsigned reasons, char *buf, size_t size) {
        static const struct {
                unsigned bit;
                const char *name;
        } names[] = {
                { BK_KEEP_LAST, "last" },
                { BK_KEEP_HOURLY, "hourly" },
                { BK_KEEP_DAILY, "daily" },
                { BK_KEEP_WEEKLY, "weekly" },
                { BK_KEEP_MONTHLY, "monthly" },
                { BK_KEEP_YEARLY, "yearly" },
                { BK_KEEP_ALL, "all" },
        };
        size_t used = 0;

        if (size == 0)
                return buf;
        buf[0] = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                int m;

                if (!(reasons & names[i].bit))
                        continue;
                m = snprintf(buf + used, size - used, "%s%s", used > 0 ? ", " : "", names[i].name);
                if (m < 0 || (size_t) m >= size - used) {
                        buf[used] = 0;  /* whole names only */
                        break;
                }
                used += (size_t) m;
        }
        return buf;
}
