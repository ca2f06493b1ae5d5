/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The operator's config file, parsed with inih.
 *
 * inih does the key = value splitting, trimming and comment handling; we
 * feed it through our own line reader because the library as Debian ships
 * it (and upstream's default build) cannot tell the handler which line it
 * is on, and because the reader sees things the handler never does:
 *
 *   - section headers.  Without INI_CALL_HANDLER_ON_NEW_SECTION (off in
 *     Debian's build) inih reports a section only through the keys in it,
 *     so an empty [job x], or a second [job x] straight after the first,
 *     would be invisible.  The reader therefore opens and closes sections
 *     itself, and the handler works on the reader's idea of the section.
 *   - lines longer than inih's buffer (200 bytes in Debian's build).  inih
 *     would silently parse the first part and take the rest for the next
 *     line, which can turn "path = /srv/very/long/…" into a shorter path
 *     that exists.
 *   - indented lines, which inih takes for the continuation of the
 *     previous value: an accidentally indented "filename = x" would become
 *     part of the command above it.
 *
 * A line the reader has rejected (after logging why) is handed to inih as
 * an empty line, so each problem is reported exactly once.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "util.h"

#define JOB_NAME_MAX 64
#define FILENAME_MAX_BYTES 255

enum section_kind {
        SEC_NONE,        /* before the first header */
        SEC_REPOSITORY,
        SEC_JOB,
        SEC_STATUS,
        SEC_BAD,         /* a header we rejected: its keys are skipped, not reported */
};

enum key_id {
        KEY_REPO_PATH,
        KEY_PASSWORD_FILE,
        KEY_PASSWORD_COMMAND,
        KEY_COMPRESSION,
        KEY_ENCRYPTION,
        KEY_KEY_CACHE,
        KEY_JOB_PATH,
        KEY_EXCLUDE,
        KEY_ONE_FILE_SYSTEM,
        KEY_COMMAND,
        KEY_FILENAME,
        KEY_TAR_COMMAND,
        KEY_DIRECTORY,
        KEY_KEEP_LAST,
        KEY_KEEP_HOURLY,
        KEY_KEEP_DAILY,
        KEY_KEEP_WEEKLY,
        KEY_KEEP_MONTHLY,
        KEY_KEEP_YEARLY,
        KEY_MAX_AGE,
        KEY_DRILL,
        KEY_DRILL_RUNTIME,
        KEY_DRILL_IMAGE,
        KEY_DRILL_USER,
        KEY_DRILL_TIMEOUT,
        KEY_TEXTFILE,
        KEY_WEBHOOK,
        _KEY_MAX,
};

static const struct key_def {
        const char *name;
        enum section_kind section;
        bool repeatable;
} key_defs[_KEY_MAX] = {
        [KEY_REPO_PATH]        = { "path",             SEC_REPOSITORY, false },
        [KEY_PASSWORD_FILE]    = { "password-file",    SEC_REPOSITORY, false },
        [KEY_PASSWORD_COMMAND] = { "password-command", SEC_REPOSITORY, false },
        [KEY_COMPRESSION]      = { "compression",      SEC_REPOSITORY, false },
        [KEY_ENCRYPTION]       = { "encryption",       SEC_REPOSITORY, false },
        [KEY_KEY_CACHE]        = { "key-cache",        SEC_REPOSITORY, false },
        [KEY_JOB_PATH]         = { "path",             SEC_JOB,        true },
        [KEY_EXCLUDE]          = { "exclude",          SEC_JOB,        true },
        [KEY_ONE_FILE_SYSTEM]  = { "one-file-system",  SEC_JOB,        false },
        [KEY_COMMAND]          = { "command",          SEC_JOB,        false },
        [KEY_FILENAME]         = { "filename",         SEC_JOB,        false },
        [KEY_TAR_COMMAND]      = { "tar-command",      SEC_JOB,        false },
        [KEY_DIRECTORY]        = { "directory",        SEC_JOB,        false },
        [KEY_KEEP_LAST]        = { "keep-last",        SEC_JOB,        false },
        [KEY_KEEP_HOURLY]      = { "keep-hourly",      SEC_JOB,        false },
        [KEY_KEEP_DAILY]       = { "keep-daily",       SEC_JOB,        false },
        [KEY_KEEP_WEEKLY]      = { "keep-weekly",      SEC_JOB,        false },
        [KEY_KEEP_MONTHLY]     = { "keep-monthly",     SEC_JOB,        false },
        [KEY_KEEP_YEARLY]      = { "keep-yearly",      SEC_JOB,        false },
        [KEY_MAX_AGE]          = { "max-age",          SEC_JOB,        false },
        [KEY_DRILL]            = { "drill",            SEC_JOB,        false },
        [KEY_DRILL_RUNTIME]    = { "drill-runtime",    SEC_JOB,        false },
        [KEY_DRILL_IMAGE]      = { "drill-image",      SEC_JOB,        false },
        [KEY_DRILL_USER]       = { "drill-user",       SEC_JOB,        false },
        [KEY_DRILL_TIMEOUT]    = { "drill-timeout",    SEC_JOB,        false },
        [KEY_TEXTFILE]         = { "textfile",         SEC_STATUS,     false },
        [KEY_WEBHOOK]          = { "webhook",          SEC_STATUS,     false },
};

struct parser {
        FILE *f;
        const char *file;
        struct bk_config *config;

        unsigned line;               /* of the line last handed to inih: the handler's line */
        char *raw;                   /* copy of that line before inih cuts it up */
        size_t raw_size;
        int read_errno;              /* a read error ended the file early */
        int fatal;                   /* -ENOMEM: stop reading, give up */
        unsigned n_errors;

        enum section_kind section;
        unsigned section_line;
        bool section_damaged;        /* a line of it was refused whole: its key is unknown */
        bool header_refused;         /* a refused header may have been meant as [repository] */
        size_t job;                  /* index into config->jobs when section == SEC_JOB */
        unsigned repo_line;          /* of [repository], 0: not seen */
        unsigned status_line;        /* of [status], 0: not seen */
        unsigned seen[_KEY_MAX];     /* line of each key in the current section, 0: not given */
};

static struct bk_job *parser_job(struct parser *p) {
        return &p->config->jobs[p->job];
}

__attribute__((format(printf, 3, 4)))
static void error_at(struct parser *p, unsigned line, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&what, fmt, ap);
        va_end(ap);
        p->n_errors++;
        if (k < 0) {
                what = NULL;
                log_error("%s:%u: invalid line (out of memory describing it)", p->file, line);
                return;
        }
        if (line > 0)
                log_error("%s:%u: %s", p->file, line, what);
        else
                log_error("%s: %s", p->file, what);
}

/* The operator looks for the key, so every value error names it. */
__attribute__((format(printf, 4, 5)))
static void key_error_at(struct parser *p, unsigned line, enum key_id key, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&what, fmt, ap);
        va_end(ap);
        if (k < 0)
                what = NULL;
        error_at(p, line, "key \"%s\": %s", key_defs[key].name, what ? what : "invalid value");
}

#define key_error(p, key, ...) key_error_at((p), (p)->line, (key), __VA_ARGS__)

/* ---- values ---- */

static int parse_uint(const char *s, unsigned long long max, unsigned long long *ret) {
        unsigned long long v = 0;

        /* strtoull would take "-1", " 7" and "0x10"; an operator means none of them. */
        if (!*s)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (v > (max - (unsigned) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (unsigned) (*s - '0');
        }
        *ret = v;
        return 0;
}

int bk_parse_duration(const char *s, uint64_t *ret) {
        static const struct {
                char unit;
                uint64_t seconds;
        } units[] = {
                { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 },
        };
        unsigned long long n = 0;
        uint64_t mult = 1;
        size_t len;
        char digits[32];

        if (!s || !ret)
                return -EINVAL;
        len = strlen(s);
        if (len == 0)
                return -EINVAL;
        if (s[len - 1] < '0' || s[len - 1] > '9') {
                size_t i;
                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (s[len - 1] == units[i].unit)
                                break;
                if (i == ELEMENTSOF(units))
                        return -EINVAL;
                mult = units[i].seconds;
                len--;
        }
        if (len == 0 || len >= sizeof digits)
                return -EINVAL;
        memcpy(digits, s, len);
        digits[len] = 0;
        if (parse_uint(digits, UINT64_MAX, &n) < 0)
                return -EINVAL;
        if (n > UINT64_MAX / mult)
                return -EINVAL;
        *ret = (uint64_t) n * mult;
        return 0;
}

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" };
        static const char *const no[] = { "no", "false", "off", "0" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (streq(s, yes[i])) {
                        *ret = true;
                        return 0;
                }
                if (streq(s, no[i])) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

/* Splits @in on '/', drops empty components (so "//" and a trailing '/'
 * vanish) and refuses "." and "..": a backup source or a place inside a
 * snapshot must say plainly where it is.  *ret malloc'd.  On -EINVAL
 * *ret_why says what is wrong. */
static int normalize_path(const char *in, bool absolute, char **ret, const char **ret_why) {
        _cleanup_free_ char *out = NULL;
        size_t n = 0;
        const char *s = in;

        if (absolute && *in != '/') {
                *ret_why = "must be an absolute path (starting with '/')";
                return -EINVAL;
        }
        if (!absolute && *in == '/') {
                *ret_why = "must be a relative path (not starting with '/')";
                return -EINVAL;
        }
        out = malloc(strlen(in) + 2);
        if (!out)
                return -ENOMEM;
        while (*s) {
                size_t len = strcspn(s, "/");

                if (len == 0) {
                        s++;
                        continue;
                }
                if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) {
                        *ret_why = "must not contain \".\" or \"..\" components";
                        return -EINVAL;
                }
                if (len > FILENAME_MAX_BYTES) {
                        *ret_why = "has a component longer than 255 bytes";
                        return -EINVAL;
                }
                if (absolute || n > 0)
                        out[n++] = '/';
                memcpy(out + n, s, len);
                n += len;
                s += len;
        }
        if (n == 0) {
                if (!absolute) {
                        *ret_why = "must name a directory below the snapshot's root";
                        return -EINVAL;
                }
                out[n++] = '/';
        }
        out[n] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

static bool filename_valid(const char *s) {
        size_t len = strlen(s);

        return len >= 1 && len <= FILENAME_MAX_BYTES && !strchr(s, '/') && !streq(s, ".") && !streq(s, "..");
}

static bool job_name_valid(const char *s) {
        size_t len = strlen(s);

        if (len < 1 || len > JOB_NAME_MAX || s[0] == '.')
                return false;
        for (; *s; s++)
                if (!isascii((unsigned char) *s) ||
                    !(isalnum((unsigned char) *s) || *s == '.' || *s == '_' || *s == '-'))
                        return false;
        return true;
}

static int strv_push(char ***v, size_t *n, char *s) {
        char **nv = reallocarray(*v, *n + 1, sizeof **v);

        if (!nv)
                return -ENOMEM;
        nv[(*n)++] = s;
        *v = nv;
        return 0;
}

/* inih strips " ;comment" from values (INI_ALLOW_INLINE_COMMENTS, on in
 * Debian's build).  For a shell command that silently drops everything
 * after "cmd1 ; cmd2", so commands with such a ';' are refused instead.
 * Looks at the raw line: the value inih hands us has already lost it. */
static bool raw_value_has_inline_comment(const struct parser *p) {
        const char *s = p->raw ? p->raw + strcspn(p->raw, "=:") : NULL;

        if (!s || !*s)
                return false;
        for (s++; *s; s++)
                if (s[0] == ';' && (s[-1] == ' ' || s[-1] == '\t'))
                        return true;
        return false;
}

/* ---- keys ---- */

static int set_string(char **field, const char *value) {
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static int set_command(struct parser *p, enum key_id key, char **field, const char *value) {
        if (raw_value_has_inline_comment(p)) {
                key_error(p, key, "\" ;\" starts a comment in this file, so the command would be cut short "
                          "there; put the commands in a script (or use \"&&\")");
                return 0;
        }
        return set_string(field, value);
}

static int set_keep(struct parser *p, enum key_id key, unsigned *field, const char *value) {
        unsigned long long v;
        int k;

        if (value[0] == '-') {
                key_error(p, key, "\"%s\" is negative: a count of snapshots must be 0 or more", value);
                return 0;
        }
        k = parse_uint(value, UINT_MAX, &v);
        if (k == -ERANGE)
                key_error(p, key, "\"%s\" is too large", value);
        else if (k < 0)
                key_error(p, key, "\"%s\" is not a non-negative integer", value);
        else {
                *field = (unsigned) v;
                parser_job(p)->has_keep = true;
        }
        return 0;
}

static int handle_repository_key(struct parser *p, enum key_id key, const char *value) {
        struct bk_config *c = p->config;
        const char *why = NULL;
        unsigned long long v;
        bool b;
        int k;

        switch (key) {
        case KEY_REPO_PATH: {
                _cleanup_free_ char *norm = NULL;

                k = normalize_path(value, true, &norm, &why);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        key_error(p, key, "\"%s\" %s", value, why);
                        return 0;
                }
                free(c->repo_path);
                c->repo_path = TAKE_PTR(norm);
                return 0;
        }
        case KEY_PASSWORD_FILE:
        case KEY_PASSWORD_COMMAND: {
                enum key_id other = key == KEY_PASSWORD_FILE ? KEY_PASSWORD_COMMAND : KEY_PASSWORD_FILE;
                char *s;

                if (p->seen[other]) {
                        key_error(p, key, "conflicts with %s on line %u: give only one of them",
                                  key_defs[other].name, p->seen[other]);
                        return 0;
                }
                /* cron starts us in some directory or other: a relative file would be found by luck. */
                if (key == KEY_PASSWORD_FILE && value[0] != '/') {
                        key_error(p, key, "\"%s\" must be an absolute path (starting with '/')", value);
                        return 0;
                }
                if (key == KEY_PASSWORD_COMMAND && raw_value_has_inline_comment(p)) {
                        key_error(p, key, "\" ;\" starts a comment in this file, so the command would be cut "
                                  "short there; put the commands in a script (or use \"&&\")");
                        return 0;
                }
                s = strdup(value);
                if (!s)
                        return -ENOMEM;
                free((char *) c->pass.value);
                c->pass.value = s;
                c->pass.kind = key == KEY_PASSWORD_FILE ? CAIRN_PASS_FILE : CAIRN_PASS_COMMAND;
                return 0;
        }
        case KEY_COMPRESSION:
                k = parse_uint(value, 19, &v);
                if (k < 0 || v < 1)
                        key_error(p, key, "\"%s\" is not a zstd level from 1 to 19", value);
                else
                        c->compression = (int) v;
                return 0;
        case KEY_KEY_CACHE:
                if (cairn_key_cache_parse(value, &c->pass.key_cache) < 0)
                        key_error(p, key, "\"%s\" is not \"off\" or a duration up to 30d (like 12h or 1d)", value);
                return 0;
        case KEY_ENCRYPTION:
                if (parse_bool(value, &b) < 0)
                        key_error(p, key, "\"%s\" is not yes or no", value);
                else
                        c->encryption = b;
                return 0;
        default:
                return 0;
        }
}

/* A word handed to docker or podman as one argument: printable ASCII, no
 * blanks, and no leading '-', which would turn it into an option. */
static bool word_valid(const char *s, const char *extra_allowed) {
        if (!*s || *s == '-')
                return false;
        for (; *s; s++)
                if (!(isalnum((unsigned char) *s) || strchr(extra_allowed, *s)))
                        return false;
        return true;
}

static int handle_status_key(struct parser *p, enum key_id key, const char *value) {
        struct bk_config *c = p->config;
        const char *why = NULL;
        int k;

        switch (key) {
        case KEY_TEXTFILE: {
                _cleanup_free_ char *norm = NULL;
                size_t len;

                k = normalize_path(value, true, &norm, &why);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        key_error(p, key, "\"%s\" %s", value, why);
                        return 0;
                }
                /* node_exporter's textfile collector reads *.prom and nothing else. */
                len = strlen(norm);
                if (len < 6 || !streq(norm + len - 5, ".prom")) {
                        key_error(p, key, "\"%s\" must end in \".prom\": node_exporter's textfile collector "
                                  "reads only *.prom files", value);
                        return 0;
                }
                free(c->textfile);
                c->textfile = TAKE_PTR(norm);
                return 0;
        }
        case KEY_WEBHOOK: {
                const char *host;

                if (strncmp(value, "https://", 8) == 0)
                        host = value + 8;
                else if (strncmp(value, "http://", 7) == 0)
                        host = value + 7;
                else {
                        key_error(p, key, "\"%s\" is not an http:// or https:// URL", value);
                        return 0;
                }
                if (!*host || *host == '/') {
                        key_error(p, key, "\"%s\" has no host name", value);
                        return 0;
                }
                for (const char *t = value; *t; t++)
                        if ((unsigned char) *t <= ' ' || (unsigned char) *t >= 0x7f) {
                                key_error(p, key, "\"%s\" contains a blank or control character "
                                          "(percent-encode it)", value);
                                return 0;
                        }
                return set_string(&c->webhook, value);
        }
        default:
                return 0;
        }
}

static int handle_job_key(struct parser *p, enum key_id key, const char *value) {
        struct bk_job *j = parser_job(p);
        const char *why = NULL;
        bool b;
        int k;

        switch (key) {
        case KEY_JOB_PATH:
        case KEY_DIRECTORY: {
                _cleanup_free_ char *norm = NULL;

                k = normalize_path(value, key == KEY_JOB_PATH, &norm, &why);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        key_error(p, key, "\"%s\" %s", value, why);
                        return 0;
                }
                if (key == KEY_DIRECTORY) {
                        free(j->directory);
                        j->directory = TAKE_PTR(norm);
                        return 0;
                }
                /* The same tree twice would be two sources for one place in the snapshot. */
                for (size_t i = 0; i < j->n_paths; i++)
                        if (streq(j->paths[i], norm)) {
                                key_error(p, key, "\"%s\" is already a path of this job", norm);
                                return 0;
                        }
                k = strv_push(&j->paths, &j->n_paths, norm);
                if (k < 0)
                        return k;
                norm = NULL;
                return 0;
        }
        case KEY_EXCLUDE: {
                char *s = strdup(value);

                if (!s)
                        return -ENOMEM;
                k = strv_push(&j->excludes, &j->n_excludes, s);
                if (k < 0)
                        free(s);
                return k;
        }
        case KEY_ONE_FILE_SYSTEM:
                if (parse_bool(value, &b) < 0)
                        key_error(p, key, "\"%s\" is not yes or no", value);
                else
                        j->one_file_system = b;
                return 0;
        case KEY_COMMAND:
                return set_command(p, key, &j->command, value);
        case KEY_TAR_COMMAND:
                return set_command(p, key, &j->tar_command, value);
        case KEY_FILENAME:
                if (!filename_valid(value)) {
                        key_error(p, key, "\"%s\" must be a single file name: 1 to 255 bytes, no '/', "
                                  "not \".\" or \"..\"", value);
                        return 0;
                }
                return set_string(&j->filename, value);
        case KEY_KEEP_LAST:
                return set_keep(p, key, &j->keep.last, value);
        case KEY_KEEP_HOURLY:
                return set_keep(p, key, &j->keep.hourly, value);
        case KEY_KEEP_DAILY:
                return set_keep(p, key, &j->keep.daily, value);
        case KEY_KEEP_WEEKLY:
                return set_keep(p, key, &j->keep.weekly, value);
        case KEY_KEEP_MONTHLY:
                return set_keep(p, key, &j->keep.monthly, value);
        case KEY_KEEP_YEARLY:
                return set_keep(p, key, &j->keep.yearly, value);
        case KEY_MAX_AGE:
                if (bk_parse_duration(value, &j->max_age_s) < 0)
                        key_error(p, key, "\"%s\" is not a duration (a number with an optional unit "
                                  "s, m, h, d or w, e.g. 26h)", value);
                return 0;
        case KEY_DRILL: {
                _cleanup_free_ char *norm = NULL;

                k = normalize_path(value, true, &norm, &why);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        key_error(p, key, "\"%s\" %s", value, why);
                        return 0;
                }
                free(j->drill);
                j->drill = TAKE_PTR(norm);
                return 0;
        }
        case KEY_DRILL_RUNTIME:
                if (!streq(value, "bwrap") && !streq(value, "docker") && !streq(value, "podman")) {
                        key_error(p, key, "\"%s\" is not bwrap, docker or podman", value);
                        return 0;
                }
                return set_string(&j->drill_runtime, value);
        case KEY_DRILL_IMAGE:
                if (!word_valid(value, "._-/:@+")) {
                        key_error(p, key, "\"%s\" is not an image name (letters, digits and . _ - / : @ +, "
                                  "not starting with '-')", value);
                        return 0;
                }
                return set_string(&j->drill_image, value);
        case KEY_DRILL_USER:
                if (!word_valid(value, "._-")) {
                        key_error(p, key, "\"%s\" is not a user name or uid (letters, digits and . _ -, "
                                  "not starting with '-')", value);
                        return 0;
                }
                return set_string(&j->drill_user, value);
        case KEY_DRILL_TIMEOUT:
                if (bk_parse_duration(value, &j->drill_timeout_s) < 0 || j->drill_timeout_s == 0)
                        key_error(p, key, "\"%s\" is not a duration above zero (a number with an optional unit "
                                  "s, m, h, d or w, e.g. 30m)", value);
                return 0;
        default:
                return 0;
        }
}

static void known_keys(enum section_kind section, char *buf, size_t size) {
        size_t n = 0;

        buf[0] = 0;
        for (size_t i = 0; i < _KEY_MAX && n < size; i++)
                if (key_defs[i].section == section) {
                        int k = snprintf(buf + n, size - n, "%s%s", n ? ", " : "", key_defs[i].name);
                        if (k < 0)
                                break;
                        n += (size_t) k;
                }
}

static int handler(void *userdata, const char *section, const char *name, const char *value) {
        struct parser *p = userdata;
        enum key_id key;
        int k;

        /* A build with INI_CALL_HANDLER_ON_NEW_SECTION announces headers
         * this way; the reader has already dealt with them. */
        if (!name || p->fatal)
                return 1;
        if (!value) {   /* INI_ALLOW_NO_VALUE builds */
                error_at(p, p->line, "expected \"key = value\", found \"%s\"", name);
                return 1;
        }

        if (p->section == SEC_BAD)
                return 1;     /* its header was reported; its keys would only add noise */
        if (p->section == SEC_NONE) {
                error_at(p, p->line, "key \"%s\" before any section: put it under [repository] or [job NAME]",
                         name);
                return 1;
        }

        for (key = 0; key < _KEY_MAX; key++)
                if (key_defs[key].section == p->section && streq(key_defs[key].name, name))
                        break;
        if (key == _KEY_MAX) {
                char known[256];

                known_keys(p->section, known, sizeof known);
                error_at(p, p->line, "key \"%s\": unknown key in [%s%s] (known: %s)", name,
                         p->section == SEC_JOB ? "job " : "",
                         p->section == SEC_REPOSITORY ? "repository" : p->section == SEC_STATUS ? "status" :
                         parser_job(p)->name, known);
                return 1;
        }

        if (!key_defs[key].repeatable && p->seen[key]) {
                key_error(p, key, "given twice (first on line %u); it takes one value", p->seen[key]);
                return 1;
        }
        p->seen[key] = p->line;

        if (!*value) {
                key_error(p, key, "empty value");
                return 1;
        }

        k = p->section == SEC_REPOSITORY ? handle_repository_key(p, key, value) :
            p->section == SEC_STATUS ? handle_status_key(p, key, value) : handle_job_key(p, key, value);
        if (k < 0)
                p->fatal = k;
        return 1;
}

/* ---- sections ---- */

/* The checks that need the whole section: the end of a job.  Skipped when
 * a line of the section was refused whole: "has no source" after a
 * too-long "path = …" line would only send the operator looking for a
 * second problem that is not there. */
static void section_close(struct parser *p) {
        if (p->section == SEC_JOB && !p->section_damaged) {
                const struct bk_job *j = parser_job(p);

                if (!p->seen[KEY_JOB_PATH] && !p->seen[KEY_COMMAND] && !p->seen[KEY_TAR_COMMAND])
                        error_at(p, j->line, "job \"%s\" has no source (path, command or tar-command)", j->name);
                if (p->seen[KEY_COMMAND] && !p->seen[KEY_FILENAME])
                        key_error_at(p, p->seen[KEY_COMMAND], KEY_COMMAND,
                                     "needs \"filename = NAME\", the name its output is stored under");
                if (p->seen[KEY_FILENAME] && !p->seen[KEY_COMMAND])
                        key_error_at(p, p->seen[KEY_FILENAME], KEY_FILENAME,
                                     "only goes with \"command\", which this job does not have");
                if (p->seen[KEY_DIRECTORY] && !p->seen[KEY_TAR_COMMAND])
                        key_error_at(p, p->seen[KEY_DIRECTORY], KEY_DIRECTORY,
                                     "only goes with \"tar-command\", which this job does not have");
                for (enum key_id k = KEY_DRILL_RUNTIME; k <= KEY_DRILL_TIMEOUT; k++)
                        if (p->seen[k] && !p->seen[KEY_DRILL])
                                key_error_at(p, p->seen[k], k, "only goes with \"drill = SCRIPT\", which this job "
                                             "does not have");
                if (j->drill_runtime && streq(j->drill_runtime, "docker") && !p->seen[KEY_DRILL_IMAGE])
                        key_error_at(p, p->seen[KEY_DRILL_RUNTIME], KEY_DRILL_RUNTIME,
                                     "docker needs \"drill-image = IMAGE\" (e.g. postgres:15)");
        } else if (p->section == SEC_REPOSITORY && !p->section_damaged) {
                if (!p->seen[KEY_REPO_PATH])
                        error_at(p, p->section_line, "[repository] has no path (e.g. \"path = /backups/repo\")");
        }
        p->section = SEC_NONE;
        p->section_damaged = false;
        memset(p->seen, 0, sizeof p->seen);
}

static int job_open(struct parser *p, const char *name) {
        struct bk_config *c = p->config;
        struct bk_job *jobs;

        for (size_t i = 0; i < c->n_jobs; i++)
                if (streq(c->jobs[i].name, name)) {
                        error_at(p, p->line, "duplicate [job %s]: already defined on line %u", name, c->jobs[i].line);
                        p->section = SEC_BAD;
                        return 0;
                }

        jobs = reallocarray(c->jobs, c->n_jobs + 1, sizeof *jobs);
        if (!jobs)
                return -ENOMEM;
        c->jobs = jobs;
        jobs[c->n_jobs] = (struct bk_job) { .line = p->line };
        jobs[c->n_jobs].name = strdup(name);
        if (!jobs[c->n_jobs].name)
                return -ENOMEM;
        p->job = c->n_jobs++;
        p->section = SEC_JOB;
        return 0;
}

/* A header we refuse still ends the section before it: its keys must not
 * land in the previous job. */
static void section_refuse(struct parser *p) {
        section_close(p);
        p->section = SEC_BAD;
        p->section_line = p->line;
        p->header_refused = true;
}

/* @s: a line starting with '['.  Returns 0 (an error, if any, is logged
 * and the section marked bad) or -ENOMEM. */
static int section_open(struct parser *p, const char *s) {
        const char *end = strchr(s, ']'), *rest;
        _cleanup_free_ char *inner = NULL;
        char *name, *e;

        section_close(p);
        p->section = SEC_BAD;        /* until the header proves good */
        p->section_line = p->line;

        if (!end) {
                error_at(p, p->line, "section header without ']'");
                return 0;
        }
        rest = end + 1 + strspn(end + 1, " \t\r\n");
        if (*rest && *rest != ';' && *rest != '#') {
                error_at(p, p->line, "unexpected text after the section header: \"%.*s\"",
                         (int) strcspn(rest, "\r\n"), rest);
                return 0;
        }

        inner = strndup(s + 1, (size_t) (end - s - 1));
        if (!inner)
                return -ENOMEM;
        /* "[ job  pgdb ]" means what it says; spacing is no reason to refuse it. */
        name = inner + strspn(inner, " \t");
        for (e = name + strlen(name); e > name && (e[-1] == ' ' || e[-1] == '\t'); e--)
                ;
        *e = 0;

        if (streq(name, "repository")) {
                if (p->repo_line) {
                        error_at(p, p->line, "second [repository] section (the first is on line %u)", p->repo_line);
                        return 0;
                }
                p->repo_line = p->line;
                p->section = SEC_REPOSITORY;
                return 0;
        }
        if (streq(name, "status")) {
                if (p->status_line) {
                        error_at(p, p->line, "second [status] section (the first is on line %u)", p->status_line);
                        return 0;
                }
                p->status_line = p->line;
                p->section = SEC_STATUS;
                return 0;
        }
        if (strncmp(name, "job", 3) == 0 && (name[3] == ' ' || name[3] == '\t' || name[3] == 0)) {
                const char *job = name + 3 + strspn(name + 3, " \t");

                if (!*job) {
                        error_at(p, p->line, "[job] needs a name: [job NAME]");
                        return 0;
                }
                if (!job_name_valid(job)) {
                        error_at(p, p->line, "invalid job name \"%s\": 1 to %d characters of A-Z a-z 0-9 . _ -, "
                                 "not starting with '.'", job, JOB_NAME_MAX);
                        return 0;
                }
                return job_open(p, job);
        }
        error_at(p, p->line, "unknown section [%s] (expected [repository], [status] or [job NAME])", name);
        return 0;
}

/* ---- the line reader ---- */

/* Hands inih an empty line in place of one we have refused (and reported). */
static char *refuse_line(struct parser *p, char *str) {
        p->section_damaged = true;
        str[0] = '\n';
        str[1] = 0;
        return str;
}

/* Looks at one whole line before inih does.  Returns 0 to pass it on,
 * 1 to hand inih an empty line instead, or -ENOMEM. */
static int line_check(struct parser *p, const char *s) {
        const char *t;

        /* inih skips a UTF-8 byte order mark on the first line; so do we. */
        if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
                s += 3;

        t = s;
        while (*t && isspace((unsigned char) *t))
                t++;
        if (!*t || *t == ';' || *t == '#')
                return 0;                         /* blank or comment, indented or not */
        if (t != s) {
                error_at(p, p->line, "line starts with whitespace: continuation lines are not supported "
                         "and keys and sections must start at the beginning of the line");
                if (*t == '[')
                        section_refuse(p);
                return 1;
        }
        if (*s == '[') {
                int k = section_open(p, s);
                if (k < 0)
                        return k;
                if (p->section == SEC_BAD)
                        p->header_refused = true;
                /* inih only needs to see headers we accept; a rejected one would be reported twice. */
                return p->section == SEC_BAD;
        }
        if (!s[strcspn(s, "=:")]) {
                error_at(p, p->line, "expected \"key = value\" or a [section] header, found \"%.*s\"",
                         (int) strcspn(s, "\r\n"), s);
                return 1;
        }
        return 0;
}

/* fgets-like, for ini_parse_stream(): one call, one line, so the handler
 * can take p->line as its line number.  A line that does not fit in
 * inih's buffer (@num bytes: the text, its newline and a NUL) is
 * refused, not split. */
static char *reader(char *str, int num, void *userdata) {
        struct parser *p = userdata;
        size_t n = 0, max;
        bool nul = false, too_long = false;
        int c = EOF, k;

        if (p->fatal || num < 3)
                return NULL;
        max = (size_t) num - 1;

        while (n < max) {
                c = getc(p->f);
                if (c == EOF)
                        break;
                if (c == 0)
                        nul = true;
                str[n++] = (char) c;
                if (c == '\n')
                        break;
        }
        if (n == 0) {
                if (ferror(p->f))
                        p->read_errno = errno > 0 ? errno : EIO;
                return NULL;
        }
        str[n] = 0;
        p->line++;

        if (str[n - 1] != '\n' && c != EOF) {
                /* The buffer is full.  At the end of the file that is the
                 * whole line; otherwise the rest would reach inih as a line
                 * of its own. */
                c = getc(p->f);
                if (c != EOF) {
                        too_long = true;
                        while (c != EOF && c != '\n')
                                c = getc(p->f);
                }
        }
        if (too_long || nul) {
                const char *s = str + (p->line == 1 && strncmp(str, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0);

                if (too_long)
                        error_at(p, p->line, "line too long (at most %zu characters)", max - 1);
                else
                        error_at(p, p->line, "line contains a NUL byte");
                if (s[strspn(s, " \t")] == '[')
                        section_refuse(p);
                return refuse_line(p, str);
        }

        if (p->raw_size < n + 1) {
                char *raw = realloc(p->raw, n + 1);
                if (!raw) {
                        p->fatal = -ENOMEM;
                        return NULL;
                }
                p->raw = raw;
                p->raw_size = n + 1;
        }
        memcpy(p->raw, str, n + 1);

        k = line_check(p, str);
        if (k < 0) {
                p->fatal = k;
                return NULL;
        }
        if (k > 0)
                return refuse_line(p, str);
        return str;
}

/* ---- public ---- */

struct bk_config *bk_config_free(struct bk_config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_jobs; i++) {
                struct bk_job *j = &c->jobs[i];

                free(j->name);
                for (size_t k = 0; k < j->n_paths; k++)
                        free(j->paths[k]);
                free(j->paths);
                for (size_t k = 0; k < j->n_excludes; k++)
                        free(j->excludes[k]);
                free(j->excludes);
                free(j->command);
                free(j->filename);
                free(j->tar_command);
                free(j->directory);
                free(j->drill);
                free(j->drill_runtime);
                free(j->drill_image);
                free(j->drill_user);
        }
        free(c->textfile);
        free(c->webhook);
        free(c->jobs);
        free((char *) c->pass.value);
        free(c->repo_path);
        free(c->file);
        free(c);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct bk_config *, bk_config_free);

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

int bk_config_load(const char *path, struct bk_config **ret) {
        _cleanup_(bk_config_freep) struct bk_config *c = NULL;
        _cleanup_(fclosep) FILE *f = NULL;
        struct parser p = {};
        int k;

        if (!path || !ret)
                return -EINVAL;

        f = fopen(path, "re");
        if (!f)
                return log_error_errno(-errno, "Cannot open config %s: %m", path);

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->encryption = -1;
        c->pass.kind = CAIRN_PASS_NONE;
        c->file = strdup(path);
        if (!c->file)
                return -ENOMEM;

        p = (struct parser) {
                .f = f,
                .file = path,
                .config = c,
                .section = SEC_NONE,
        };

        k = ini_parse_stream(reader, &p, handler, &p);
        free(p.raw);
        p.raw = NULL;
        if (p.fatal < 0)
                return log_error_errno(p.fatal, "Failed to parse config %s: %m", path);
        if (p.read_errno)
                return log_error_errno(-p.read_errno, "Failed to read config %s: %m", path);
        if (k == -2)
                return log_error_errno(-ENOMEM, "Failed to parse config %s: %m", path);
        if (k > 0)
                /* A line inih refused that the reader let through (the
                 * reader blanks every line it reports, and the handler never
                 * fails): only the first such line is known. */
                error_at(&p, (unsigned) k, "syntax error (expected \"key = value\")");
        else if (k < 0)
                return log_error_errno(-EIO, "Failed to parse config %s: %m", path);

        section_close(&p);
        if (!p.repo_line && !p.header_refused)
                error_at(&p, 0, "no [repository] section (it needs at least \"path = /backups/repo\")");

        if (p.n_errors > 0)
                return -EINVAL;
        *ret = TAKE_PTR(c);
        return 0;
}

const struct bk_job *bk_config_job(const struct bk_config *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_jobs; i++)
                if (streq(c->jobs[i].name, name))
                        return &c->jobs[i];
        return NULL;
}
