/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Retention selection: which snapshots forget keeps.  Every table names its
 * snapshots by UTC time, so a wrong calendar rule (calendar year instead of
 * ISO week-year, a day key without the year, oldest-of-period instead of
 * newest) changes the kept set and fails a check. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "retention.h"
#include "tap.h"
#include "test-util.h"
#include "util.h"

#define NS 1000000000LL
#define MAXN 128

/* "YYYY-MM-DD HH:MM:SS" (UTC) in ns since the epoch. */
static int64_t T(const char *s) {
        struct tm tm = { 0 };
        if (sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec) != 6)
                BAIL_OUT("bad time literal %s", s);
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t) timegm(&tm) * NS;
}

static const char *fmt(int64_t ns, char *buf, size_t size) {
        time_t s = (time_t) (ns / NS - (ns % NS < 0));
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
        return buf;
}

/* Run the selection over @times and check that exactly @expected (a subset
 * of @times, in any order) is kept.  Reasons are left in @reasons. */
static bool check_kept(const char *what, const struct bk_retention *r, const int64_t *times, size_t n,
                       const char *const *expected, size_t n_expected, unsigned *reasons) {
        bool keep[MAXN], good = true;
        size_t kept = 0;
        char buf[64];

        if (n > MAXN)
                BAIL_OUT("table too large");
        bk_retention_select(r, times, n, keep, reasons);
        for (size_t i = 0; i < n; i++) {
                bool want = false;
                for (size_t j = 0; j < n_expected; j++)
                        want |= T(expected[j]) == times[i];
                if (keep[i] != want) {
                        diag("%s: %s is %s but should be %s", what, fmt(times[i], buf, sizeof buf),
                             keep[i] ? "kept" : "dropped", want ? "kept" : "dropped");
                        good = false;
                }
                kept += keep[i];
        }
        return ok(good && kept == n_expected, "%s: keeps exactly %zu of %zu", what, n_expected, n);
}

/* Times from string literals, so each table reads as a calendar. */
static size_t times_of(const char *const *s, size_t n, int64_t *out) {
        for (size_t i = 0; i < n; i++)
                out[i] = T(s[i]);
        return n;
}

static unsigned reason_of(const int64_t *times, const unsigned *reasons, size_t n, const char *when) {
        for (size_t i = 0; i < n; i++)
                if (times[i] == T(when))
                        return reasons[i];
        BAIL_OUT("no snapshot at %s", when);
}

static void test_last(void) {
        static const char *const snaps[] = {
                "2025-05-01 01:00:00", "2025-05-03 01:00:00", "2025-05-02 01:00:00",
                "2025-05-05 01:00:00", "2025-05-04 01:00:00",
        };
        static const char *const want[] = { "2025-05-05 01:00:00", "2025-05-04 01:00:00", "2025-05-03 01:00:00" };
        struct bk_retention r = { .last = 3 };
        int64_t t[MAXN];
        unsigned why[MAXN];
        size_t n = times_of(snaps, ELEMENTSOF(snaps), t);

        check_kept("keep-last 3", &r, t, n, want, ELEMENTSOF(want), why);
        is(reason_of(t, why, n, "2025-05-05 01:00:00"), BK_KEEP_LAST, "keep-last: reason is last only");
        is(reason_of(t, why, n, "2025-05-01 01:00:00"), 0, "keep-last: a dropped snapshot has no reason");

        r.last = 10;
        check_kept("keep-last larger than the job", &r, t, n, snaps, n, NULL);
}

static void test_daily(void) {
        int64_t t[MAXN];

        /* Month boundary: Jan 31 and Feb 1 are two days, and the newest
         * snapshot of each is the one kept. */
        static const char *const month[] = {
                "2025-01-30 01:00:00", "2025-01-31 01:00:00", "2025-01-31 23:00:00",
                "2025-02-01 00:30:00", "2025-02-01 02:00:00",
        };
        static const char *const month_want[] = { "2025-02-01 02:00:00", "2025-01-31 23:00:00" };
        struct bk_retention r = { .daily = 2 };
        check_kept("daily 2 across Jan 31 -> Feb 1", &r, t, times_of(month, ELEMENTSOF(month), t), month_want,
                   ELEMENTSOF(month_want), NULL);

        /* Year boundary, down to the last second of the year. */
        static const char *const year[] = {
                "2024-12-30 12:00:00", "2024-12-31 22:00:00", "2024-12-31 23:59:59",
                "2025-01-01 00:00:00", "2025-01-01 10:00:00",
        };
        static const char *const year_want[] = { "2025-01-01 10:00:00", "2024-12-31 23:59:59", "2024-12-30 12:00:00" };
        r.daily = 3;
        check_kept("daily 3 across Dec 31 -> Jan 1", &r, t, times_of(year, ELEMENTSOF(year), t), year_want,
                   ELEMENTSOF(year_want), NULL);

        /* Same day of the year in two years: a day key without the year
         * would merge them. */
        static const char *const yday[] = { "2024-01-01 12:00:00", "2025-01-01 12:00:00" };
        r.daily = 2;
        check_kept("daily 2: Jan 1 of two years are two days", &r, t, times_of(yday, ELEMENTSOF(yday), t), yday,
                   ELEMENTSOF(yday), NULL);

        /* Leap day. */
        static const char *const leap[] = {
                "2024-02-27 23:00:00", "2024-02-28 23:00:00", "2024-02-29 00:00:00",
                "2024-02-29 23:00:00", "2024-03-01 00:00:00",
        };
        static const char *const leap_want[] = { "2024-03-01 00:00:00", "2024-02-29 23:00:00", "2024-02-28 23:00:00" };
        r.daily = 3;
        check_kept("daily 3 across the leap day", &r, t, times_of(leap, ELEMENTSOF(leap), t), leap_want,
                   ELEMENTSOF(leap_want), NULL);

        /* Several snapshots in one day: only the newest of that day. */
        static const char *const same[] = {
                "2025-03-09 19:00:00", "2025-03-10 01:00:00", "2025-03-10 07:00:00",
                "2025-03-10 13:00:00", "2025-03-10 19:00:00",
        };
        static const char *const same1[] = { "2025-03-10 19:00:00" };
        static const char *const same2[] = { "2025-03-10 19:00:00", "2025-03-09 19:00:00" };
        size_t n = times_of(same, ELEMENTSOF(same), t);
        r.daily = 1;
        check_kept("daily 1 with four snapshots that day", &r, t, n, same1, ELEMENTSOF(same1), NULL);
        r.daily = 2;
        check_kept("daily 2 with four snapshots on the newest day", &r, t, n, same2, ELEMENTSOF(same2), NULL);

        /* Times before the epoch: the last nanosecond of 1969 is another day. */
        int64_t epoch[] = { -1, 0 };
        bool keep[2];
        bk_retention_select(&r, epoch, 2, keep, NULL);
        ok(keep[0] && keep[1], "daily 2: 1969-12-31 23:59:59.999999999 and 1970-01-01 are two days");
}

static void test_hourly(void) {
        static const char *const snaps[] = {
                "2025-06-01 09:59:59", "2025-06-01 10:05:00", "2025-06-01 10:55:00",
                "2025-06-01 11:00:00", "2025-06-01 11:30:00",
        };
        static const char *const want[] = { "2025-06-01 11:30:00", "2025-06-01 10:55:00" };
        struct bk_retention r = { .hourly = 2 };
        int64_t t[MAXN];
        check_kept("hourly 2", &r, t, times_of(snaps, ELEMENTSOF(snaps), t), want, ELEMENTSOF(want), NULL);
}

static void test_weekly(void) {
        int64_t t[MAXN];
        unsigned why[MAXN];
        size_t n;

        /* 2025-01-01 is a Wednesday, so ISO week 2025-W01 runs from Monday
         * 2024-12-30 to Sunday 2025-01-05; 2024-12-29 (Sunday) is the last
         * day of 2024-W52.  A calendar-year week key ("%Y-%V") would make
         * 2024-12-30 a week of its own. */
        static const char *const y2025[] = {
                "2024-12-28 01:00:00",   /* Sat 2024-W52 */
                "2024-12-29 01:00:00",   /* Sun 2024-W52: newest of W52 */
                "2024-12-30 01:00:00",   /* Mon 2025-W01 */
                "2025-01-01 01:00:00",   /* Wed 2025-W01 */
                "2025-01-05 01:00:00",   /* Sun 2025-W01: newest of W01 */
                "2025-01-06 01:00:00",   /* Mon 2025-W02 */
        };
        static const char *const y2025_want[] = { "2025-01-06 01:00:00", "2025-01-05 01:00:00", "2024-12-29 01:00:00" };
        struct bk_retention r = { .weekly = 3 };
        n = times_of(y2025, ELEMENTSOF(y2025), t);
        check_kept("weekly 3 across 2025-W01 (starts 2024-12-30)", &r, t, n, y2025_want, ELEMENTSOF(y2025_want), why);
        is(reason_of(t, why, n, "2024-12-29 01:00:00"), BK_KEEP_WEEKLY, "weekly: reason is weekly");

        /* 2020 has 53 ISO weeks: 2020-W53 is Mon 2020-12-28 .. Sun 2021-01-03. */
        static const char *const w53[] = {
                "2020-12-27 01:00:00",   /* Sun 2020-W52 */
                "2020-12-28 01:00:00",   /* Mon 2020-W53 */
                "2021-01-01 01:00:00",   /* Fri 2020-W53 */
                "2021-01-03 01:00:00",   /* Sun 2020-W53: newest of W53 */
                "2021-01-04 01:00:00",   /* Mon 2021-W01 */
        };
        static const char *const w53_want[] = { "2021-01-04 01:00:00", "2021-01-03 01:00:00", "2020-12-27 01:00:00" };
        check_kept("weekly 3 across 2020-W53", &r, t, times_of(w53, ELEMENTSOF(w53), t), w53_want,
                   ELEMENTSOF(w53_want), NULL);

        /* A Sunday and the Monday after it are two weeks (ISO weeks start on
         * Monday, not Sunday as %U would have it). */
        static const char *const sunmon[] = { "2025-03-08 12:00:00", "2025-03-09 12:00:00", "2025-03-10 12:00:00" };
        static const char *const sunmon_want[] = { "2025-03-10 12:00:00", "2025-03-09 12:00:00" };
        r.weekly = 2;
        check_kept("weekly 2: Sun 2025-03-09 and Mon 2025-03-10 are two weeks", &r, t,
                   times_of(sunmon, ELEMENTSOF(sunmon), t), sunmon_want, ELEMENTSOF(sunmon_want), NULL);
}

static void test_monthly_yearly(void) {
        int64_t t[MAXN];
        unsigned why[MAXN];
        size_t n;

        static const char *const months[] = {
                "2024-10-15 01:00:00", "2024-11-10 01:00:00", "2024-11-30 01:00:00", "2024-12-01 01:00:00",
                "2024-12-31 23:00:00", "2025-01-01 00:00:00", "2025-01-20 01:00:00", "2025-02-03 01:00:00",
        };
        static const char *const months_want[] = {
                "2025-02-03 01:00:00", "2025-01-20 01:00:00", "2024-12-31 23:00:00", "2024-11-30 01:00:00",
        };
        struct bk_retention r = { .monthly = 4 };
        check_kept("monthly 4 across a year", &r, t, times_of(months, ELEMENTSOF(months), t), months_want,
                   ELEMENTSOF(months_want), NULL);

        /* The same month a year apart: a month key without the year would
         * merge them. */
        static const char *const twelve[] = { "2024-01-15 01:00:00", "2025-01-15 01:00:00" };
        r.monthly = 2;
        check_kept("monthly 2: January of two years", &r, t, times_of(twelve, ELEMENTSOF(twelve), t), twelve,
                   ELEMENTSOF(twelve), NULL);

        static const char *const years[] = {
                "2022-06-01 01:00:00", "2023-01-01 00:00:00", "2023-12-31 23:59:59",
                "2024-02-29 01:00:00", "2024-12-31 01:00:00",
        };
        static const char *const years2[] = { "2024-12-31 01:00:00", "2023-12-31 23:59:59" };
        static const char *const years5[] = { "2024-12-31 01:00:00", "2023-12-31 23:59:59", "2022-06-01 01:00:00" };
        n = times_of(years, ELEMENTSOF(years), t);
        r = (struct bk_retention) { .yearly = 2 };
        check_kept("yearly 2", &r, t, n, years2, ELEMENTSOF(years2), NULL);
        r.yearly = 5;
        check_kept("yearly 5 with three years of snapshots", &r, t, n, years5, ELEMENTSOF(years5), why);
        is(reason_of(t, why, n, "2022-06-01 01:00:00"), BK_KEEP_YEARLY, "yearly: reason is yearly");
}

/* Nightly snapshots at 01:00 UTC for @days days from @first. */
static size_t nightly(const char *first, size_t days, int64_t *out) {
        int64_t t0 = T(first);
        for (size_t i = 0; i < days; i++)
                out[i] = t0 + (int64_t) i * 86400 * NS;
        return days;
}

static void shuffle(int64_t *t, size_t n, uint64_t seed) {
        for (size_t i = n - 1; i > 0; i--) {
                uint64_t x;
                test_fill_random(&x, sizeof x, seed + i);
                size_t j = (size_t) (x % (i + 1));
                int64_t tmp = t[i];
                t[i] = t[j];
                t[j] = tmp;
        }
}

static void test_combination(void) {
        struct bk_retention r = { .daily = 3, .weekly = 2, .monthly = 2 };
        int64_t t[MAXN];
        unsigned why[MAXN];
        char buf[64];
        size_t n;

        /* 2025-01-01 .. 2025-03-31, 90 nights.  Jan 1 is a Wednesday, so
         * Mar 31 is a Monday (first day of 2025-W14) and Mar 30 a Sunday.
         * Newest first:
         *   daily 3:   Mar 31, Mar 30, Mar 29
         *   weekly 2:  Mar 31 (newest of W14), Mar 30 (newest of W13)
         *   monthly 2: Mar 31 (March), Feb 28 (February)
         * Kept: Mar 31 (daily, weekly, monthly), Mar 30 (daily, weekly),
         * Mar 29 (daily), Feb 28 (monthly); the other 86 go. */
        static const char *const q1_want[] = {
                "2025-03-31 01:00:00", "2025-03-30 01:00:00", "2025-03-29 01:00:00", "2025-02-28 01:00:00",
        };
        n = nightly("2025-01-01 01:00:00", 90, t);
        is(t[89], T("2025-03-31 01:00:00"), "90 nights from Jan 1 end on Mar 31");
        check_kept("3 daily, 2 weekly, 2 monthly over Jan-Mar 2025", &r, t, n, q1_want, ELEMENTSOF(q1_want), why);
        is(reason_of(t, why, n, "2025-03-31 01:00:00"), BK_KEEP_DAILY | BK_KEEP_WEEKLY | BK_KEEP_MONTHLY,
           "Mar 31 is kept as daily, weekly and monthly");
        is(reason_of(t, why, n, "2025-03-30 01:00:00"), BK_KEEP_DAILY | BK_KEEP_WEEKLY,
           "Mar 30 is kept as daily and weekly");
        is(reason_of(t, why, n, "2025-03-29 01:00:00"), BK_KEEP_DAILY, "Mar 29 is kept as daily");
        is(reason_of(t, why, n, "2025-02-28 01:00:00"), BK_KEEP_MONTHLY, "Feb 28 is kept as monthly");
        ok(streq(bk_retention_reasons(reason_of(t, why, n, "2025-03-31 01:00:00"), buf, sizeof buf),
                 "daily, weekly, monthly"), "reasons of Mar 31 read \"daily, weekly, monthly\" (%s)", buf);

        /* 90 nights ending Wednesday 2025-03-26 (from 2024-12-27), so the
         * weekly picks are not all daily ones:
         *   daily 3:   Mar 26 (Wed), Mar 25, Mar 24 (Mon)
         *   weekly 2:  Mar 26 (newest of W13: Mar 24..30),
         *              Mar 23 (Sunday, newest of W12: Mar 17..23)
         *   monthly 2: Mar 26 (March), Feb 28 (February)
         * Kept: Mar 26, Mar 25, Mar 24, Mar 23, Feb 28. */
        static const char *const mid_want[] = {
                "2025-03-26 01:00:00", "2025-03-25 01:00:00", "2025-03-24 01:00:00",
                "2025-03-23 01:00:00", "2025-02-28 01:00:00",
        };
        n = nightly("2024-12-27 01:00:00", 90, t);
        is(t[89], T("2025-03-26 01:00:00"), "90 nights from Dec 27 end on Mar 26");
        check_kept("3 daily, 2 weekly, 2 monthly ending on a Wednesday", &r, t, n, mid_want, ELEMENTSOF(mid_want), why);
        is(reason_of(t, why, n, "2025-03-23 01:00:00"), BK_KEEP_WEEKLY, "Mar 23 is kept as weekly only");

        /* The input order does not matter. */
        for (uint64_t seed = 1; seed <= 3; seed++) {
                shuffle(t, n, seed * 7919);
                check_kept("the same, shuffled", &r, t, n, mid_want, ELEMENTSOF(mid_want), why);
                is(reason_of(t, why, n, "2025-03-26 01:00:00"), BK_KEEP_DAILY | BK_KEEP_WEEKLY | BK_KEEP_MONTHLY,
                   "shuffled: Mar 26 keeps all three reasons");
        }

        /* keep-last on top: the two newest are kept for that reason too. */
        n = nightly("2024-12-27 01:00:00", 90, t);
        r.last = 2;
        check_kept("keep-last 2 plus 3 daily, 2 weekly, 2 monthly", &r, t, n, mid_want, ELEMENTSOF(mid_want), why);
        is(reason_of(t, why, n, "2025-03-25 01:00:00"), BK_KEEP_LAST | BK_KEEP_DAILY, "Mar 25 is kept as last and daily");
}

static void test_edges(void) {
        struct bk_retention zero = { 0 };
        int64_t t[MAXN];
        unsigned why[MAXN];
        bool keep[MAXN];
        size_t n = nightly("2025-01-01 01:00:00", 10, t);
        bool all = true;

        memset(why, 0, sizeof why);
        bk_retention_select(&zero, t, n, keep, why);
        for (size_t i = 0; i < n; i++)
                all &= keep[i] && why[i] == BK_KEEP_ALL;
        ok(all, "no keep-* rule keeps everything, with reason BK_KEEP_ALL");

        bk_retention_select(&zero, t, n, keep, NULL);
        all = true;
        for (size_t i = 0; i < n; i++)
                all &= keep[i];
        ok(all, "no keep-* rule keeps everything (reasons NULL)");

        struct bk_retention r = { .daily = 3 };
        bk_retention_select(&r, NULL, 0, NULL, NULL);
        ok(true, "n = 0 with NULL arrays is fine");

        /* A single snapshot is kept by any rule. */
        bk_retention_select(&r, t, 1, keep, why);
        ok(keep[0] && why[0] == BK_KEEP_DAILY, "one snapshot, daily 3: kept as daily");

        /* Two snapshots at the very same time: one is the newest of its day. */
        int64_t twin[] = { T("2025-01-01 01:00:00"), T("2025-01-01 01:00:00") };
        r.daily = 1;
        bk_retention_select(&r, twin, 2, keep, NULL);
        is(keep[0] + keep[1], 1, "two snapshots at the same instant, daily 1: exactly one kept");
}

static void test_reasons(void) {
        char buf[128], small[8];

        ok(streq(bk_retention_reasons(BK_KEEP_DAILY | BK_KEEP_WEEKLY, buf, sizeof buf), "daily, weekly"),
           "reasons: daily, weekly (%s)", buf);
        ok(streq(bk_retention_reasons(BK_KEEP_LAST, buf, sizeof buf), "last"), "reasons: last (%s)", buf);
        ok(streq(bk_retention_reasons(BK_KEEP_ALL, buf, sizeof buf), "all"), "reasons: all (%s)", buf);
        ok(streq(bk_retention_reasons(0, buf, sizeof buf), ""), "reasons: none is an empty string");
        ok(streq(bk_retention_reasons(BK_KEEP_LAST | BK_KEEP_HOURLY | BK_KEEP_DAILY | BK_KEEP_WEEKLY |
                                      BK_KEEP_MONTHLY | BK_KEEP_YEARLY, buf, sizeof buf),
                 "last, hourly, daily, weekly, monthly, yearly"),
           "reasons: every rule, in rule order (%s)", buf);
        ok(bk_retention_reasons(BK_KEEP_DAILY | BK_KEEP_MONTHLY, small, sizeof small) == small &&
           strlen(small) < sizeof small, "reasons: a short buffer is truncated and terminated (%s)", small);
}

int main(void) {
        test_last();
        test_daily();
        test_hourly();
        test_weekly();
        test_monthly_yearly();
        test_combination();
        test_edges();
        test_reasons();
        return tap_done();
}
