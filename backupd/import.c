/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairn import: which job and time each archive becomes, and one archive
 * → one snapshot.  Reading the archive is source-tar.c's: the same code
 * stores a tar-command's stream, so an imported series and the job that
 * continues it with a tar-command look alike.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "import.h"
#include "log.h"
#include "util.h"

#define JOB_NAME_MAX 64         /* as `cairn backup --job` */

static bool digits(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char) s[i]))
                        return false;
        return true;
}

static int num(const char *s, size_t n) {
        int v = 0;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (s[i] - '0');
        return v;
}

/* The broken-down time must survive a round trip: no 31 February, no
 * second 61 (a leap second has no time_t of its own). */
static int tm_to_ns(struct tm *tm, bool local, long nsec, int64_t *ret_ns) {
        struct tm want = *tm, back;
        time_t t;

        tm->tm_isdst = -1;
        t = local ? mktime(tm) : timegm(tm);
        if (t < 0)
                return -EINVAL;         /* before 1970, or out of range */
        if (!(local ? localtime_r(&t, &back) : gmtime_r(&t, &back)))
                return -EINVAL;
        if (back.tm_year != want.tm_year || back.tm_mon != want.tm_mon || back.tm_mday != want.tm_mday ||
            back.tm_hour != want.tm_hour || back.tm_min != want.tm_min || back.tm_sec != want.tm_sec)
                return -EINVAL;
        if (t > INT64_MAX / 1000000000 - 1)
                return -EINVAL;
        *ret_ns = (int64_t) t * 1000000000 + nsec;
        return 0;
}

/* "YYYYMMDD" "HHMMSS" at @d and @t. */
static void tm_from_compact(const char *d, const char *t, struct tm *tm) {
        *tm = (struct tm) {
                .tm_year = num(d, 4) - 1900, .tm_mon = num(d + 4, 2) - 1, .tm_mday = num(d + 6, 2),
                .tm_hour = num(t, 2), .tm_min = num(t + 2, 2), .tm_sec = num(t + 4, 2),
        };
}

int bk_import_parse_time(const char *s, bool local, int64_t *ret_ns) {
        size_t n = strlen(s);
        struct tm tm;
        long nsec = 0;
        const char *p;

        /* 20261121_010000 */
        if (n == 15 && digits(s, 8) && s[8] == '_' && digits(s + 9, 6)) {
                tm_from_compact(s, s + 9, &tm);
                return tm_to_ns(&tm, local, 0, ret_ns);
        }
        /* 20261121T010000Z */
        if (n == 16 && digits(s, 8) && s[8] == 'T' && digits(s + 9, 6) && s[15] == 'Z') {
                tm_from_compact(s, s + 9, &tm);
                return tm_to_ns(&tm, false, 0, ret_ns);
        }
        /* 2026-11-21T01:00:00[.fraction](Z|+00:00) */
        if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
            (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) ||
            s[16] != ':' || !digits(s + 17, 2))
                return -EINVAL;
        tm = (struct tm) {
                .tm_year = num(s, 4) - 1900, .tm_mon = num(s + 5, 2) - 1, .tm_mday = num(s + 8, 2),
                .tm_hour = num(s + 11, 2), .tm_min = num(s + 14, 2), .tm_sec = num(s + 17, 2),
        };
        p = s + 19;
        if (*p == '.') {
                long scale = 100000000;
                p++;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                for (; isdigit((unsigned char) *p); p++) {
                        nsec += (*p - '0') * scale;
                        scale /= 10;
                }
        }
        if (!streq(p, "Z") && !streq(p, "z") && !streq(p, "+00:00"))
                return -EINVAL;
        return tm_to_ns(&tm, false, nsec, ret_ns);
}

static bool job_name_valid(const char *name) {
        size_t n = strlen(name);
        return n <= JOB_NAME_MAX && cairn_name_valid(name, n);
}

int bk_import_name_parse(const char *path, bool local, char **ret_service, int64_t *ret_ns) {
        const char *base = strrchr(path, '/'), *stamp = NULL;
        size_t n;
        int k;

        *ret_service = NULL;
        base = base ? base + 1 : path;
        n = strlen(base);
        /* "_YYYYMMDD_HHMMSS" then the end or a '.' */
        for (size_t i = 1; i + 16 <= n; i++)
                if (base[i] == '_' && digits(base + i + 1, 8) && base[i + 9] == '_' && digits(base + i + 10, 6) &&
                    (base[i + 16] == 0 || base[i + 16] == '.'))
                        stamp = base + i;
        if (!stamp)
                return 0;
        {
                char t[16];
                memcpy(t, stamp + 1, 15);
                t[15] = 0;
                k = bk_import_parse_time(t, local, ret_ns);
                if (k < 0)
                        return k;
        }
        *ret_service = strndup(base, (size_t) (stamp - base));
        return *ret_service ? 1 : -ENOMEM;
}

void bk_import_items_free(struct bk_import_item *items, size_t n) {
        for (size_t i = 0; items && i < n; i++) {
                free(items[i].archive);
                free(items[i].job);
        }
        free(items);
}

static int item_cmp(const void *x, const void *y) {
        const struct bk_import_item *a = x, *b = y;

        /* stdin (time 0: now) goes last, after everything older */
        if ((a->time_ns == 0) != (b->time_ns == 0))
                return a->time_ns == 0 ? 1 : -1;
        if (a->time_ns != b->time_ns)
                return a->time_ns < b->time_ns ? -1 : 1;
        return a->order < b->order ? -1 : a->order > b->order;
}

int bk_import_plan(char *const *archives, size_t n, const char *job, const char *time, bool local,
                   struct bk_import_item **ret, size_t *ret_n) {
        struct bk_import_item *items;
        int64_t forced = 0;
        bool have_stdin = false;
        int k, r = 0;

        *ret = NULL;
        *ret_n = 0;
        if (n == 0)
                return log_error_errno(-EINVAL, "No archive given");
        if (job && !job_name_valid(job))
                return log_error_errno(-EINVAL, "Bad job name \"%s\" (1 to %d bytes, no '/')", job, JOB_NAME_MAX);
        if (time) {
                if (n > 1)
                        return log_error_errno(-EINVAL, "--time names the time of one archive; %zu were given", n);
                if (bk_import_parse_time(time, local, &forced) < 0)
                        return log_error_errno(-EINVAL, "--time %s: expected 2026-11-21T01:00:00Z (UTC) or "
                                               "20261121_010000", time);
        }
        items = calloc(n, sizeof *items);
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct bk_import_item *it = &items[i];
                const char *a = archives[i];
                _cleanup_free_ char *service = NULL;
                int64_t named = 0;
                struct stat st;

                it->order = i;
                if (!(it->archive = strdup(a))) {
                        r = -ENOMEM;
                        break;
                }
                if (streq(a, "-")) {
                        if (have_stdin) {
                                r = log_error_errno(-EINVAL, "\"-\" (stdin) can be imported once");
                                continue;
                        }
                        have_stdin = true;
                } else if (stat(a, &st) < 0) {
                        k = log_error_errno(-errno, "Archive %s: %m", a);
                        r = r < 0 ? r : k;
                        continue;
                } else if (S_ISDIR(st.st_mode)) {
                        k = log_error_errno(-EISDIR, "Archive %s is a directory (give the archive files, e.g. %s/*.tar.gz)",
                                            a, a);
                        r = r < 0 ? r : k;
                        continue;
                }

                k = streq(a, "-") ? 0 : bk_import_name_parse(a, local, &service, &named);
                if (k == -ENOMEM) {
                        r = k;
                        break;
                }
                if (k == -EINVAL) {
                        k = log_error_errno(-EINVAL, "Archive %s: the time in its name is not a valid date and time "
                                            "(SERVICE_YYYYMMDD_HHMMSS)", a);
                        r = r < 0 ? r : k;
                        continue;
                }
                if (job)
                        it->job = strdup(job);
                else if (service && job_name_valid(service))
                        it->job = TAKE_PTR(service);
                else {
                        k = log_error_errno(-EINVAL, "Archive %s: which job? Its name is not SERVICE_YYYYMMDD_HHMMSS.EXT "
                                            "with a usable SERVICE; give --job NAME", a);
                        r = r < 0 ? r : k;
                        continue;
                }
                if (!it->job) {
                        r = -ENOMEM;
                        break;
                }
                if (time)
                        it->time_ns = forced;
                else if (named)
                        it->time_ns = named;
                else if (!streq(a, "-"))
                        it->time_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        }
        if (r < 0) {
                bk_import_items_free(items, n);
                return r;
        }
        qsort(items, n, sizeof *items, item_cmp);
        *ret = items;
        *ret_n = n;
        return 0;
}

struct find_ctx {
        int64_t start_ns;
        bool found;
        uint8_t id[CAIRN_ID_SIZE];
};

static int find_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                   size_t json_len, void *userdata) {
        struct find_ctx *c = userdata;

        if (start_ns == c->start_ns) {
                c->found = true;
                memcpy(c->id, id, CAIRN_ID_SIZE);
        }
        return 0;
}

/* The job's snapshot at exactly @start_ns, if any: the archive is in
 * already (and a second row at that key would replace the first). */
static int find_at(struct cairn_repo *r, const char *job, int64_t start_ns, bool *ret_found,
                   uint8_t ret_id[CAIRN_ID_SIZE]) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct find_ctx c = { .start_ns = start_ns };
        int k;

        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k >= 0)
                k = cairn_index_snapshot_foreach(t, job, find_cb, &c);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(r));
        *ret_found = c.found;
        memcpy(ret_id, c.id, CAIRN_ID_SIZE);
        return 0;
}

int bk_import_one(struct cairn_repo *r, const struct bk_import_item *item, const struct bk_import_options *o,
                  struct bk_import_result *ret) {
        static char tag_import[] = "import";
        static char *tags[] = { tag_import };
        struct bk_backup_options bo = {
                .job = item->job, .no_incremental = true, .progress = o && o->progress,
                .tags = tags, .n_tags = ELEMENTSOF(tags), .start_ns = item->time_ns,
        };
        struct cairn_lock *jl = NULL, *rl = NULL;
        struct bk_backup *b = NULL;
        _cleanup_close_ int owned = -1;
        _cleanup_free_ char *shown = NULL;
        char lockname[128], when[32], hex[2 * CAIRN_ID_SIZE + 1];
        bool is_stdin = streq(item->archive, "-"), found = false;
        pid_t holder = 0;
        int fd, k;

        *ret = (struct bk_import_result) { .status = BK_IMPORT_FAILED, .time_ns = item->time_ns };
        if (is_stdin)
                shown = strdup("\"-\" (stdin)");
        else if (asprintf(&shown, "\"%s\"", item->archive) < 0)
                shown = NULL;
        if (!shown)
                return -ENOMEM;

        if (is_stdin)
                fd = STDIN_FILENO;
        else {
                fd = owned = open(item->archive, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        log_error_errno(-errno, "job \"%s\": archive %s: %m; not imported", item->job, shown);
                        return 0;
                }
        }

        snprintf(lockname, sizeof lockname, "job-%s", item->job);
        k = cairn_repo_lock(r, lockname, true, o && o->wait, "import", &jl, &holder);
        if (k == -EBUSY) {
                log_error("job \"%s\" is being backed up or imported by process %d; archive %s not imported "
                          "(try later or use --wait)", item->job, (int) holder, shown);
                ret->status = BK_IMPORT_LOCKED;
                return 0;
        }
        if (k < 0)
                return 0;
        /* As a backup: shared with other writers, waiting out a prune. */
        k = cairn_repo_lock(r, "repository", false, false, NULL, &rl, &holder);
        if (k == -EBUSY) {
                log_info("job \"%s\": waiting for the prune of process %d to finish", item->job, (int) holder);
                k = cairn_repo_lock(r, "repository", false, true, NULL, &rl, &holder);
        }
        if (k < 0)
                goto out;

        if (item->time_ns != 0) {
                k = find_at(r, item->job, item->time_ns, &found, ret->id);
                if (k < 0)
                        goto out;
                if (found) {
                        log_warning("job \"%s\" has a snapshot at %s already (%.8s): archive %s is taken to be "
                                    "imported before; skipped", item->job,
                                    cairn_time_format(item->time_ns, when, sizeof when),
                                    hex_encode(ret->id, CAIRN_ID_SIZE, hex), shown);
                        ret->status = BK_IMPORT_SKIPPED;
                        goto out;
                }
        }

        k = bk_backup_new(r, &bo, &b);
        if (k < 0) {
                log_error_errno(k, "job \"%s\": cannot start the import of %s: %m", item->job, shown);
                goto out;
        }
        k = bk_backup_archive(b, fd, shown, o ? o->dir : NULL);
        if (k >= 0)
                k = bk_backup_commit(b, ret->id);
        if (k >= 0) {
                ret->status = b->snap->status == CAIRN_SNAPSHOT_COMPLETE ? BK_IMPORT_OK : BK_IMPORT_PARTIAL;
                ret->time_ns = b->snap->start_ns;
                ret->snap = TAKE_PTR(b->snap);
        } else
                log_error("job \"%s\": archive %s not imported; no snapshot was recorded", item->job, shown);
        k = 0;
out:
        bk_backup_free(b);
        cairn_lock_release(rl);
        cairn_lock_release(jl);
        return k == -ENOMEM ? k : 0;
}
