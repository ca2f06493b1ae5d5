/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config file: a full config parses to the right values, every kind of
 * mistake is refused naming file, line and key, and the shipped examples
 * parse. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "tap.h"
#include "test-util.h"
#include "util.h"

/* Every error message of the last load, separated by " | ", and how many. */
static char log_all[16384];
static size_t log_len;
static int log_errors;

static void log_collect(int level, const char *msg, void *userdata) {
        int k;

        if (level > CAIRN_LOG_ERR)
                return;
        log_errors++;
        k = snprintf(log_all + log_len, sizeof log_all - log_len, "%s%s", log_len ? " | " : "", msg);
        if (k > 0)
                log_len = MIN(log_len + (size_t) k, sizeof log_all - 1);
}

static void log_reset(void) {
        log_all[0] = 0;
        log_len = 0;
        log_errors = 0;
}

static const char *tmpdir;
static char conf_path[PATH_MAX];

/* Writes @text to a fresh file and loads it; conf_path names the file. */
static int load_text(const char *text, struct bk_config **ret) {
        static unsigned n;
        FILE *f;

        snprintf(conf_path, sizeof conf_path, "%s/case-%u.conf", tmpdir, ++n);
        f = fopen(conf_path, "we");
        if (!f)
                BAIL_OUT("cannot write %s", conf_path);
        fputs(text, f);
        fclose(f);
        log_reset();
        *ret = NULL;
        return bk_config_load(conf_path, ret);
}

static bool log_has(const char *needle) {
        return strstr(log_all, needle) != NULL;
}

/* @text must be refused with exactly one message, which starts with
 * "FILE:LINE: " and contains @needle. */
static void expect_error(const char *what, const char *text, unsigned line, const char *needle) {
        struct bk_config *c = NULL;
        char prefix[PATH_MAX + 32];
        int r;

        r = load_text(text, &c);
        snprintf(prefix, sizeof prefix, "%s:%u: ", conf_path, line);
        is(r, -EINVAL, "%s: refused with -EINVAL", what);
        ok(c == NULL, "%s: no config returned", what);
        is(log_errors, 1, "%s: exactly one message", what);
        ok(strncmp(log_all, prefix, strlen(prefix)) == 0 && log_has(needle),
           "%s: message names line %u and says '%s': %s", what, line, needle, log_all);
        bk_config_free(c);
}

#define REPO "[repository]\npath = /backups/repo\n"   /* lines 1-2 */

static const char full_config[] =
        "# a comment\n"                                              /* 1 */
        "[repository]\n"                                             /* 2 */
        "path = /backups//repo/\n"                                   /* 3 */
        "password-file = /etc/cairn/passphrase\n"                    /* 4 */
        "compression = 7\n"                                          /* 5 */
        "encryption = yes\n"                                         /* 6 */
        "\n"                                                         /* 7 */
        "; another comment\n"                                        /* 8 */
        "[job files]\n"                                              /* 9 */
        "path = /srv//data/\n"                                       /* 10 */
        "path = /etc/nginx\n"                                        /* 11 */
        "path=/\n"                                                   /* 12 */
        "exclude = *.log\n"                                          /* 13 */
        "exclude = /srv/data/cache\n"                                /* 14 */
        "one-file-system = on\n"                                     /* 15 */
        "keep-daily = 3   ; three days\n"                            /* 16 */
        "keep-weekly = 2\n"                                          /* 17 */
        "keep-monthly=2\n"                                           /* 18 */
        "max-age = 26h\n"                                            /* 19 */
        "\n"
        "[job pg-db_1.x]\n"                                          /* 21 */
        "command = docker exec ml_postgres pg_dumpall -U postgres\n"
        "filename = pgdump.sql\n"
        "tar-command = docker run --rm -v grafana_data:/data:ro busybox tar -C /data -cf - .\n"
        "directory = volumes//grafana/\n"
        "keep-last = 1\n"
        "keep-hourly = 0\n"
        "keep-yearly = 4294967295\n"
        "max-age = 7\n"
        "\n"
        "[job empty-keep]\n"                                         /* 31 */
        "tar-command = tar -cf - -C / etc\n";

static void test_full(void) {
        struct bk_config *c = NULL;
        const struct bk_job *j;

        is(load_text(full_config, &c), 0, "a full config parses");
        is(log_errors, 0, "without messages (%s)", log_all);
        if (!c) {
                skip("no config to look at");
                return;
        }
        ok(c->file && streq(c->file, conf_path), "file is remembered");
        ok(c->repo_path && streq(c->repo_path, "/backups/repo"), "repository path normalized: %s", c->repo_path);
        is(c->pass.kind, CAIRN_PASS_FILE, "password-file gives a file source");
        ok(c->pass.value && streq(c->pass.value, "/etc/cairn/passphrase"), "password-file value");
        is(c->compression, 7, "compression");
        is(c->encryption, 1, "encryption = yes");
        is(c->n_jobs, 3, "three jobs");

        j = bk_config_job(c, "files");
        ok(j != NULL, "job \"files\" found");
        if (j) {
                is(j->line, 9, "job line is its header's");
                is(j->n_paths, 3, "three paths");
                if (j->n_paths == 3) {
                        ok(streq(j->paths[0], "/srv/data"), "\"//\" collapsed, trailing '/' stripped: %s", j->paths[0]);
                        ok(streq(j->paths[1], "/etc/nginx"), "second path: %s", j->paths[1]);
                        ok(streq(j->paths[2], "/"), "the root stays \"/\": %s", j->paths[2]);
                }
                is(j->n_excludes, 2, "two excludes");
                if (j->n_excludes == 2)
                        ok(streq(j->excludes[0], "*.log") && streq(j->excludes[1], "/srv/data/cache"), "excludes");
                ok(j->one_file_system, "one-file-system = on");
                ok(!j->command && !j->filename && !j->tar_command && !j->directory, "no command or tar source");
                ok(j->has_keep, "has_keep");
                is(j->keep.daily, 3, "keep-daily (inline comment dropped)");
                is(j->keep.weekly, 2, "keep-weekly");
                is(j->keep.monthly, 2, "keep-monthly");
                ok(j->keep.last == 0 && j->keep.hourly == 0 && j->keep.yearly == 0, "other keep-* are 0");
                is(j->max_age_s, 26 * 3600, "max-age = 26h");
        }

        j = bk_config_job(c, "pg-db_1.x");
        ok(j != NULL, "job \"pg-db_1.x\" found");
        if (j) {
                is(j->line, 21, "its header line");
                is(j->n_paths, 0, "no paths");
                ok(j->command && streq(j->command, "docker exec ml_postgres pg_dumpall -U postgres"), "command");
                ok(j->filename && streq(j->filename, "pgdump.sql"), "filename");
                ok(j->tar_command && streq(j->tar_command, "docker run --rm -v grafana_data:/data:ro busybox tar "
                                           "-C /data -cf - ."), "tar-command, with its ':' intact");
                ok(j->directory && streq(j->directory, "volumes/grafana"), "directory normalized: %s", j->directory);
                ok(!j->one_file_system, "one-file-system defaults to off");
                ok(j->has_keep, "has_keep");
                is(j->keep.last, 1, "keep-last");
                is(j->keep.yearly, 4294967295u, "keep-yearly at UINT_MAX");
                is(j->max_age_s, 7, "max-age without a unit is seconds");
        }

        j = bk_config_job(c, "empty-keep");
        ok(j && !j->has_keep && j->max_age_s == 0, "a job without keep-* has has_keep false, max-age 0");
        ok(j && !j->directory, "tar-command without directory");
        ok(bk_config_job(c, "nope") == NULL, "an unknown job is NULL");
        ok(bk_config_job(NULL, "files") == NULL, "bk_config_job(NULL) is NULL");
        ok(bk_config_free(c) == NULL, "bk_config_free returns NULL");
        ok(bk_config_free(NULL) == NULL, "bk_config_free(NULL)");
}

static void test_defaults(void) {
        struct bk_config *c = NULL;

        is(load_text(REPO, &c), 0, "a repository without jobs parses");
        ok(c && c->pass.kind == CAIRN_PASS_NONE && !c->pass.value, "no password source: CAIRN_PASS_NONE");
        ok(c && c->encryption == -1 && c->compression == 0, "encryption and compression unset");
        ok(c && c->n_jobs == 0, "no jobs");
        ok(c && c->pass.key_cache == 0, "key-cache unset: the default");
        bk_config_free(c);
        c = NULL;
        is(load_text("[repository]\npath = /r\nkey-cache = 12h\n", &c), 0, "key-cache = 12h parses");
        ok(c && c->pass.key_cache == 43200, "as 43200 s");
        bk_config_free(c);
        c = NULL;
        is(load_text("[repository]\npath = /r\nkey-cache = off\n", &c), 0, "key-cache = off parses");
        ok(c && c->pass.key_cache < 0, "as not cached");
        bk_config_free(c);
        expect_error("key-cache forever", "[repository]\npath = /r\nkey-cache = forever\n", 3, "key \"key-cache\"");

        is(load_text("[repository]\npath = /r\npassword-command = pass show cairn\nencryption = off\n", &c), 0,
           "password-command parses");
        ok(c && c->pass.kind == CAIRN_PASS_COMMAND && streq(c->pass.value, "pass show cairn"), "password-command");
        ok(c && c->encryption == 0, "encryption = off");
        bk_config_free(c);

        /* Windows line endings, a byte order mark and header spacing are no reason to refuse a file. */
        is(load_text("\xEF\xBB\xBF[repository]\r\npath = /r\r\n[ job  x ]\r\npath = /srv\r\n", &c), 0,
           "CRLF, BOM and spaced header parse (%s)", log_all);
        ok(c && c->n_jobs == 1 && streq(c->jobs[0].name, "x") && streq(c->jobs[0].paths[0], "/srv"),
           "with the right values");
        bk_config_free(c);

        is(load_text("[repository]\npath = /r\n[job x]\n   # an indented comment\n\t\npath = /a\n", &c), 0,
           "indented comments and whitespace-only lines are fine");
        bk_config_free(c);

        /* The longest line that fits inih's buffer (200 in Debian's build:
         * 198 characters, newline, NUL) must still work. */
        {
                char text[512], path[256];

                memset(path, 'a', sizeof path);
                path[0] = '/';
                path[198 - strlen("path = ")] = 0;
                snprintf(text, sizeof text, "[repository]\npath = %s\n", path);
                is(load_text(text, &c), 0, "a 198-character line parses (%s)", log_all);
                ok(c && c->repo_path && strlen(c->repo_path) == 198 - strlen("path = "), "all of it");
                bk_config_free(c);
                snprintf(text, sizeof text, "[repository]\npath = %s", path);
                is(load_text(text, &c), 0, "also as the last line without a newline");
                bk_config_free(c);
        }
}

static void test_errors(void) {
        char text[1024], longpath[400];

        expect_error("unknown key", REPO "[job a]\npath = /srv\nfoo = 1\n", 5, "key \"foo\": unknown key");
        expect_error("unknown repository key", "[repository]\npath = /r\nkeep-last = 1\n", 3, "key \"keep-last\"");
        expect_error("unknown section", REPO "[jobs a]\npath = /srv\n", 3, "unknown section [jobs a]");
        expect_error("job without name", REPO "[job]\npath = /srv\n", 3, "[job] needs a name");
        expect_error("bad job name", REPO "[job a/b]\npath = /srv\n", 3, "invalid job name \"a/b\"");
        expect_error("job name starting with '.'", REPO "[job .x]\npath = /srv\n", 3, "invalid job name");
        expect_error("bad integer", REPO "[job a]\npath = /srv\nkeep-daily = three\n", 5,
                     "key \"keep-daily\": \"three\"");
        expect_error("negative keep", REPO "[job a]\npath = /srv\nkeep-last = -1\n", 5, "key \"keep-last\": \"-1\"");
        expect_error("keep out of range", REPO "[job a]\npath = /srv\nkeep-weekly = 4294967296\n", 5,
                     "key \"keep-weekly\"");
        expect_error("keep with a sign", REPO "[job a]\npath = /srv\nkeep-weekly = +2\n", 5, "key \"keep-weekly\"");
        expect_error("bad bool", REPO "[job a]\npath = /srv\none-file-system = maybe\n", 5,
                     "key \"one-file-system\": \"maybe\"");
        expect_error("bad encryption", "[repository]\npath = /r\nencryption = si\n", 3, "key \"encryption\"");
        expect_error("compression 0", "[repository]\npath = /r\ncompression = 0\n", 3, "key \"compression\"");
        expect_error("compression 20", "[repository]\npath = /r\ncompression = 20\n", 3, "key \"compression\"");
        expect_error("bad max-age", REPO "[job a]\npath = /srv\nmax-age = 1 day\n", 5, "key \"max-age\": \"1 day\"");
        expect_error("relative path", REPO "[job a]\npath = srv/data\n", 4, "key \"path\": \"srv/data\"");
        expect_error("relative repository path", "[repository]\npath = backups\n", 2, "key \"path\": \"backups\"");
        expect_error("path with ..", REPO "[job a]\npath = /srv/../etc\n", 4, "key \"path\": \"/srv/../etc\"");
        expect_error("path with .", REPO "[job a]\npath = /srv/./etc\n", 4, "key \"path\"");
        expect_error("same path twice", REPO "[job a]\npath = /srv\npath = /srv/\n", 5, "key \"path\"");
        expect_error("empty value", REPO "[job a]\npath = /srv\nexclude =\n", 5, "key \"exclude\": empty value");
        expect_error("duplicate job", REPO "[job a]\npath = /srv\n[job a]\npath = /etc\n", 5,
                     "duplicate [job a]: already defined on line 3");
        expect_error("second [repository]", REPO "[repository]\npath = /x\n", 3, "second [repository]");
        expect_error("duplicate single-valued key", REPO "[job a]\npath = /srv\nkeep-last = 1\nkeep-last = 2\n", 6,
                     "key \"keep-last\": given twice (first on line 5)");
        expect_error("duplicate repository path", REPO "path = /other\n", 3, "key \"path\": given twice");
        expect_error("command without filename", REPO "[job a]\ncommand = pg_dumpall\nkeep-last = 1\n", 4,
                     "key \"command\": needs \"filename");
        expect_error("filename without command", REPO "[job a]\npath = /srv\nfilename = x.sql\n", 5,
                     "key \"filename\": only goes with \"command\"");
        expect_error("directory without tar-command", REPO "[job a]\npath = /srv\ndirectory = x\n", 5,
                     "key \"directory\": only goes with \"tar-command\"");
        expect_error("filename with '/'", REPO "[job a]\ncommand = pg_dumpall\nfilename = a/b.sql\n", 5,
                     "key \"filename\": \"a/b.sql\"");
        expect_error("filename ..", REPO "[job a]\ncommand = pg_dumpall\nfilename = ..\n", 5, "key \"filename\"");
        expect_error("absolute directory", REPO "[job a]\ntar-command = t\ndirectory = /x\n", 5, "key \"directory\"");
        expect_error("directory with ..", REPO "[job a]\ntar-command = t\ndirectory = a/../b\n", 5,
                     "key \"directory\"");
        expect_error("job without source", REPO "[job x]\nkeep-last = 1\n", 3,
                     "job \"x\" has no source (path, command or tar-command)");
        expect_error("empty job at the end", REPO "[job x]\n", 3, "job \"x\" has no source");
        expect_error("missing [repository] path", "[repository]\npassword-file = /etc/pw\n[job a]\npath = /srv\n", 1,
                     "[repository] has no path");
        expect_error("both password-file and password-command",
                     REPO "password-file = /etc/pw\npassword-command = pass show x\n", 4,
                     "key \"password-command\": conflicts with password-file on line 3");
        expect_error("relative password-file", REPO "password-file = pw\n", 3, "key \"password-file\"");
        expect_error("key before any section", "path = /r\n" REPO, 1, "key \"path\" before any section");
        expect_error("line without '='", REPO "[job a]\npath /srv\n", 4, "expected \"key = value\"");
        expect_error("header without ']'", REPO "[job a\npath = /srv\n", 3, "without ']'");
        expect_error("text after header", REPO "[job a] x\npath = /srv\n", 3, "after the section header");
        expect_error("indented key", REPO "[job a]\npath = /srv\n  exclude = *.log\n", 5,
                     "line starts with whitespace");
        expect_error("\" ;\" in a command", REPO "[job a]\ncommand = a ; b\nfilename = x\n", 4,
                     "key \"command\": \" ;\" starts a comment");
        expect_error("\" ;\" in a tar-command", REPO "[job a]\ntar-command = a ;b\n", 4, "key \"tar-command\"");

        memset(longpath, 'a', sizeof longpath);
        longpath[0] = '/';
        longpath[300] = 0;
        snprintf(text, sizeof text, REPO "[job a]\npath = /srv\nexclude = %s\nkeep-last = 1\n", longpath);
        expect_error("too-long line", text, 5, "line too long");
        /* One character more than fits, newline included: still too long. */
        longpath[199 - strlen("path = ")] = 0;
        snprintf(text, sizeof text, "[repository]\npath = %s\n", longpath);
        expect_error("199-character line", text, 2, "line too long");

        {
                static const char nul_text[] = REPO "[job a]\npath = /s\0rv\n";
                struct bk_config *c = NULL;
                FILE *f;

                snprintf(conf_path, sizeof conf_path, "%s/nul.conf", tmpdir);
                f = fopen(conf_path, "we");
                fwrite(nul_text, 1, sizeof nul_text - 1, f);
                fclose(f);
                log_reset();
                is(bk_config_load(conf_path, &c), -EINVAL, "a NUL byte is refused");
                ok(log_errors == 1 && log_has(":4: line contains a NUL byte"), "on its line: %s", log_all);
        }

        /* A refused line is reported alone: no "has no source" for the job
         * whose path line was too long, and the keys after a refused header
         * do not land in the job before it. */
        {
                struct bk_config *c = NULL;
                char longname[300];

                memset(longname, 'j', sizeof longname - 1);
                longname[sizeof longname - 1] = 0;
                snprintf(text, sizeof text, REPO "[job a]\npath = /a\n[job %s]\npath = /b\nkeep-last = 1\n"
                         "[job c]\n  path = /c\n[job d]\nkeep-last = 1\n", longname);
                is(load_text(text, &c), -EINVAL, "refused lines: -EINVAL");
                is(log_errors, 3, "three messages: too long, indented, d without source: %s", log_all);
                ok(log_has(":5: line too long") && log_has(":9: line starts with whitespace") &&
                   log_has(":10: job \"d\" has no source"), "each on its line");
        }

        /* No section at all: there is no line to name, only the file. */
        {
                struct bk_config *c = NULL;

                is(load_text("# nothing\n", &c), -EINVAL, "a file without [repository] is refused");
                ok(log_errors == 1 && log_has("no [repository] section") && strncmp(log_all, conf_path,
                   strlen(conf_path)) == 0, "the message names the file: %s", log_all);
        }

        /* Errors do not stop the parse: each is reported, once. */
        {
                struct bk_config *c = NULL;

                is(load_text(REPO "[job a]\npath = rel\nkeep-last = x\n[weird]\nfoo = 1\n[job b]\n", &c), -EINVAL,
                   "several errors: -EINVAL");
                is(log_errors, 4, "four messages (path, keep-last, section, job b without source; "
                   "none for the keys of the unknown section): %s", log_all);
                ok(log_has(":4: key \"path\"") && log_has(":5: key \"keep-last\"") && log_has(":6: unknown section") &&
                   log_has(":8: job \"b\" has no source"), "each on its line");
        }

        /* A missing file. */
        {
                struct bk_config *c = NULL;
                char missing[PATH_MAX];

                snprintf(missing, sizeof missing, "%s/does-not-exist.conf", tmpdir);
                log_reset();
                is(bk_config_load(missing, &c), -ENOENT, "a missing file is -ENOENT");
                ok(c == NULL, "no config");
                ok(log_errors == 1 && log_has("Cannot open config ") && log_has(missing), "message names it: %s",
                   log_all);
        }

        /* A directory opens but cannot be read: the read error, not an empty config. */
        {
                struct bk_config *c = NULL;

                log_reset();
                is(bk_config_load(tmpdir, &c), -EISDIR, "a directory is -EISDIR");
                ok(c == NULL && log_errors == 1 && log_has(tmpdir), "message names it: %s", log_all);
        }
}

static void test_duration(void) {
        static const struct {
                const char *s;
                uint64_t seconds;
        } good[] = {
                { "90", 90 },
                { "90s", 90 },
                { "15m", 900 },
                { "26h", 93600 },
                { "7d", 604800 },
                { "2w", 1209600 },
                { "0", 0 },
                { "007m", 420 },
                { "18446744073709551615", UINT64_MAX },
                { "30500568904943w", 30500568904943ULL * 604800 },
        };
        static const char *const bad[] = {
                "", "s", "h1", "1.5h", "-1", "+1", " 1", "1 ", "1 h", "1hh", "1H", "1y", "0x10", "1h30m",
                "18446744073709551616", "30500568904944w", "213503982334602d", "99999999999999999999999999s",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                uint64_t v = 12345;
                int r = bk_parse_duration(good[i].s, &v);
                ok(r == 0 && v == good[i].seconds, "duration \"%s\" = %" PRIu64 " (got r=%d, %" PRIu64 ")",
                   good[i].s, good[i].seconds, r, v);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint64_t v = 12345;
                int r = bk_parse_duration(bad[i], &v);
                ok(r == -EINVAL && v == 12345, "duration \"%s\" is -EINVAL and leaves the result alone", bad[i]);
        }
        {
                uint64_t v;
                is(bk_parse_duration(NULL, &v), -EINVAL, "duration NULL is -EINVAL");
        }
}

/* The source tree: $CAIRN_SOURCE_DIR, or three levels up from this file.
 * Meson may compile with a path relative to the build directory, and the
 * test may run from elsewhere, so a relative __FILE__ is tried against the
 * current directory and against the build directory (this executable lives
 * in BUILD/tests/). */
static char *find_source_file(const char *rel) {
        char unit_dir[PATH_MAX], exe[PATH_MAX], cand[3 * PATH_MAX];
        const char *env = getenv("CAIRN_SOURCE_DIR");
        char *slash, *p;
        ssize_t n;

        if (env) {
                snprintf(cand, sizeof cand, "%s/%s", env, rel);
                if (access(cand, R_OK) == 0)
                        goto found;
        }

        snprintf(unit_dir, sizeof unit_dir, "%s", __FILE__);
        slash = strrchr(unit_dir, '/');
        if (slash)
                *slash = 0;
        else
                snprintf(unit_dir, sizeof unit_dir, ".");

        snprintf(cand, sizeof cand, "%s/../../%s", unit_dir, rel);
        if (access(cand, R_OK) == 0)
                goto found;

        if (unit_dir[0] != '/') {
                n = readlink("/proc/self/exe", exe, sizeof exe - 1);
                if (n > 0) {
                        exe[n] = 0;
                        slash = strrchr(exe, '/');
                        if (slash)
                                *slash = 0;
                        snprintf(cand, sizeof cand, "%s/../%s/../../%s", exe, unit_dir, rel);
                        if (access(cand, R_OK) == 0)
                                goto found;
                }
        }
        return NULL;

found:
        p = realpath(cand, NULL);
        return p ? p : strdup(cand);
}

static void test_examples(void) {
        static const char *const files[] = {
                "packaging/cairn.conf.example",
                "packaging/cairn-database.conf.example",
        };
        struct bk_config *c = NULL;
        const struct bk_job *j;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = find_source_file(files[i]);

                if (!ok(path != NULL, "found %s (set CAIRN_SOURCE_DIR if not)", files[i]))
                        continue;
                log_reset();
                is(bk_config_load(path, &c), 0, "%s parses", files[i]);
                is(log_errors, 0, "%s: no messages: %s", files[i], log_all);
                if (!c)
                        continue;

                if (i == 0) {
                        is(c->n_jobs, 6, "ML server: six jobs");
                        j = bk_config_job(c, "pgdb");
                        ok(j && j->command && strstr(j->command, "pg_dumpall") && streq(j->filename, "pgdump.sql"),
                           "ML server: pgdb dumps into pgdump.sql");
                        ok(j && j->has_keep && j->keep.daily == 3 && j->keep.weekly == 2 && j->keep.monthly == 2 &&
                           j->keep.last == 0 && j->max_age_s == 26 * 3600, "ML server: 3 daily, 2 weekly, 2 monthly, 26h");
                        j = bk_config_job(c, "qdrant");
                        ok(j && j->tar_command && strstr(j->tar_command, "busybox tar"), "ML server: qdrant is a tar job");
                        j = bk_config_job(c, "ml-stack");
                        ok(j && j->n_paths == 2 && j->n_excludes == 1 && streq(j->excludes[0], "*.log"),
                           "ML server: ml-stack has two paths and excludes *.log");
                        j = bk_config_job(c, "hf-cache");
                        ok(j && j->n_paths == 1 && streq(j->paths[0], "/root/.cache/huggingface/hub"),
                           "ML server: Hugging Face cache");
                } else {
                        is(c->n_jobs, 1, "database: one job");
                        j = c->n_jobs ? &c->jobs[0] : NULL;
                        ok(j && j->command && j->filename && j->has_keep && j->keep.last == 1 && j->keep.daily == 0 &&
                           j->max_age_s == 7 * 3600, "database: latest only, max-age 7h");
                }
                c = bk_config_free(c);
        }
}

int main(void) {
        _cleanup_free_ char *dir = test_mkdtemp("test-conf");

        tmpdir = dir;
        cairn_log_set_handler(log_collect, NULL);

        test_full();
        test_defaults();
        test_errors();
        test_duration();
        test_examples();

        cairn_log_set_handler(NULL, NULL);
        test_rm_rf(dir);
        return tap_done();
}
