/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn import's planning: times (ISO 8601 UTC, YYYYMMDD_HHMMSS, local),
 * series names SERVICE_YYYYMMDD_HHMMSS.EXT, and the order and job of a
 * set of archives.  Every expected time is an epoch number worked out by
 * hand, so a wrong month base, a local-time slip or an accepted 31 April
 * fails a check. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "import.h"
#include "log.h"
#include "tap.h"
#include "util.h"

#define NS 1000000000LL

static void quiet(int level, const char *msg, void *userdata) {
}

static int64_t parse(const char *s, bool local) {
        int64_t ns = -1;
        return bk_import_parse_time(s, local, &ns) == 0 ? ns : -1;
}

static void test_times(void) {
        is(parse("2026-11-21T01:00:00Z", false), 1795222800LL * NS, "ISO 8601 UTC");
        is(parse("2026-11-21t01:00:00z", false), 1795222800LL * NS, "lower-case t and z");
        is(parse("2026-11-21T01:00:00+00:00", false), 1795222800LL * NS, "+00:00 for Z");
        is(parse("2026-11-21T01:00:00.5Z", false), 1795222800LL * NS + 500000000, "a fraction of a second");
        is(parse("2026-11-21T01:00:00.123456789Z", false), 1795222800LL * NS + 123456789, "nanoseconds");
        is(parse("20261121_010000", false), 1795222800LL * NS, "YYYYMMDD_HHMMSS is UTC");
        is(parse("20261121T010000Z", false), 1795222800LL * NS, "the basic ISO form");
        is(parse("2024-02-29T00:00:00Z", false), 1709164800LL * NS, "a leap day");
        is(parse("1970-01-01T00:00:00Z", false), 0, "the epoch");
        is(parse("2025-02-29T00:00:00Z", false), -1, "29 February of a common year is refused");
        is(parse("2026-04-31T00:00:00Z", false), -1, "31 April is refused");
        is(parse("2026-13-01T00:00:00Z", false), -1, "month 13 is refused");
        is(parse("2026-11-21T24:00:00Z", false), -1, "hour 24 is refused");
        is(parse("2026-11-21T01:00:60Z", false), -1, "second 60 is refused");
        is(parse("2026-11-21T01:00:00", false), -1, "an ISO time without a zone is refused (UTC must be said)");
        is(parse("2026-11-21T01:00:00+01:00", false), -1, "an offset other than UTC is refused");
        is(parse("2026-11-21T01:00:00.Z", false), -1, "an empty fraction is refused");
        is(parse("2026-11-21", false), -1, "a date alone is refused");
        is(parse("20261121_0100", false), -1, "a short stamp is refused");
        is(parse("1969-12-31T23:59:59Z", false), -1, "before 1970 is refused");
        is(parse("", false), -1, "empty is refused");

        if (access("/usr/share/zoneinfo/America/New_York", R_OK) < 0) {
                skip("no tzdata: --local-time not checked");
                return;
        }
        setenv("TZ", "America/New_York", 1);
        tzset();
        is(parse("20261121_010000", true), (1795222800LL + 5 * 3600) * NS, "--local-time: 01:00 in New York (EST) is 06:00Z");
        is(parse("20260701_010000", true), (1782867600LL + 4 * 3600) * NS, "--local-time: and 05:00Z in summer (EDT)");
        is(parse("2026-11-21T01:00:00Z", true), 1795222800LL * NS, "--local-time leaves an ISO time UTC");
        is(parse("20260308_023000", true), -1, "--local-time: a time the clocks skip is refused");
        unsetenv("TZ");
        tzset();
}

static void test_names(void) {
        char *svc = NULL;
        int64_t ns = 0;

        is(bk_import_name_parse("/backups/grafana_20250101_020000.tar.gz", false, &svc, &ns), 1, "a series name");
        ok(svc && streq(svc, "grafana") && ns == 1735696800LL * NS, "grafana at 2025-01-01T02:00:00Z (%s)", svc);
        free(svc);
        is(bk_import_name_parse("my_service_20250101_020000.zip", false, &svc, &ns), 1, "underscores in the service");
        ok(svc && streq(svc, "my_service"), "the service keeps its underscores (%s)", svc);
        free(svc);
        is(bk_import_name_parse("db_20250101_020000_20250102_030000.tar", false, &svc, &ns), 1, "two stamps");
        ok(svc && streq(svc, "db_20250101_020000") && ns == 1735786800LL * NS, "the rightmost stamp counts (%s)", svc);
        free(svc);
        is(bk_import_name_parse("pg_20250101_020000", false, &svc, &ns), 1, "no extension");
        free(svc);
        is(bk_import_name_parse("grafana.tar.gz", false, &svc, &ns), 0, "a name without a stamp");
        ok(svc == NULL, "gives no service");
        is(bk_import_name_parse("x_20250101_0200001.tar", false, &svc, &ns), 0, "a stamp run into more digits is none");
        is(bk_import_name_parse("_20250101_020000.tar", false, &svc, &ns), 0, "a stamp without a service is none");
        is(bk_import_name_parse("/20250101_020000/x.tar", false, &svc, &ns), 0, "a stamp in a directory name is ignored");
        is(bk_import_name_parse("bad_20251399_020000.tar.gz", false, &svc, &ns), -EINVAL, "an impossible date is an error");
        ok(svc == NULL, "and gives no service");
}

static char tmp[4096];

static char *file(const char *name, time_t mtime) {
        static char path[8192];
        struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
        int fd;

        snprintf(path, sizeof path, "%s/%s", tmp, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || futimens(fd, ts) < 0)
                BAIL_OUT("cannot create %s", path);
        close(fd);
        return path;
}

static void test_plan(void) {
        char *a[4];
        struct bk_import_item *it = NULL;
        size_t n = 0;

        a[0] = strdup(file("svc_20250103_020000.tar.gz", 1000));
        a[1] = strdup(file("plain.tar", 1735700000));      /* between day 1 and day 2 */
        a[2] = strdup(file("svc_20250101_020000.tar.gz", 2000));
        a[3] = strdup("-");
        if (!a[0] || !a[1] || !a[2] || !a[3])
                BAIL_OUT("out of memory");

        is(bk_import_plan(a, 4, NULL, NULL, false, &it, &n), -EINVAL, "plain.tar without --job is refused");
        ok(it == NULL && n == 0, "and nothing is planned");

        is(bk_import_plan(a, 4, "web", NULL, false, &it, &n), 0, "with --job");
        if (n == 4) {
                ok(streq(it[0].archive, a[2]) && it[0].time_ns == 1735696800LL * NS, "day 1 first, time from its name");
                ok(streq(it[1].archive, a[1]) && it[1].time_ns == 1735700000LL * NS, "then the plain file at its mtime");
                ok(streq(it[2].archive, a[0]) && it[2].time_ns == 1735869600LL * NS, "then day 3 (its mtime ignored)");
                ok(streq(it[3].archive, "-") && it[3].time_ns == 0, "stdin last, at the time of the import");
                ok(streq(it[0].job, "web") && streq(it[1].job, "web") && streq(it[3].job, "web"), "all job web");
        } else
                ok(false, "four items (%zu)", n);
        bk_import_items_free(it, n);

        is(bk_import_plan(a, 1, NULL, NULL, false, &it, &n), 0, "a series name alone");
        ok(n == 1 && streq(it[0].job, "svc"), "names the job");
        bk_import_items_free(it, n);

        is(bk_import_plan(a, 1, NULL, "2026-11-21T01:00:00Z", false, &it, &n), 0, "--time with one archive");
        ok(n == 1 && it[0].time_ns == 1795222800LL * NS, "wins over the name's time");
        bk_import_items_free(it, n);

        is(bk_import_plan(a, 2, "x", "2026-11-21T01:00:00Z", false, &it, &n), -EINVAL, "--time with two archives is refused");
        is(bk_import_plan(a, 1, "x", "yesterday", false, &it, &n), -EINVAL, "a bad --time is refused");
        is(bk_import_plan(a, 1, "a/b", NULL, false, &it, &n), -EINVAL, "a job name with '/' is refused");
        {
                char *twice[2] = { a[3], a[3] };
                is(bk_import_plan(twice, 2, "x", NULL, false, &it, &n), -EINVAL, "stdin twice is refused");
        }
        {
                char *missing[1] = { file("gone.tar", 0) };
                unlink(missing[0]);
                is(bk_import_plan(missing, 1, "x", NULL, false, &it, &n), -ENOENT, "a missing archive is -ENOENT");
        }
        {
                char *dir[1] = { tmp };
                is(bk_import_plan(dir, 1, "x", NULL, false, &it, &n), -EISDIR, "a directory is refused");
        }
        for (size_t i = 0; i < 4; i++)
                free(a[i]);
}

int main(void) {
        const char *base = getenv("CAIRN_TEST_TMPDIR");

        cairn_log_set_handler(quiet, NULL);
        snprintf(tmp, sizeof tmp, "%s/test-import.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmp))
                BAIL_OUT("mkdtemp");
        test_times();
        test_names();
        test_plan();
        {
                char cmd[8300];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
                if (system(cmd) != 0)
                        diag("could not remove %s", tmp);
        }
        return tap_done();
}
