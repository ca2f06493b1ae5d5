/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The operator's config file (default /etc/cairn/cairn.conf, -c FILE,
 * $CAIRN_CONFIG): INI, parsed with inih.
 *
 *   [repository]
 *   path = /backups/repo
 *   password-file = /etc/cairn/passphrase      (or password-command = …)
 *   compression = 3                             (cairn init)
 *   encryption = yes                            (cairn init; "no" for none)
 *
 *   [job pgdb]
 *   command = docker exec ml_postgres pg_dumpall -U postgres
 *   filename = pgdump.sql
 *   keep-last = 1
 *   max-age = 26h
 *   drill = /etc/cairn/drills/pgdb.sh           (cairn verify, cairn run --drills)
 *   drill-runtime = podman                      (bwrap, docker or podman; default bwrap)
 *   drill-image = postgres:15                   (docker: required; podman: default the host's /)
 *   drill-user = postgres                       (default root)
 *   drill-timeout = 30m                         (stopped and failed after that; default 1h)
 *
 *   [status]
 *   textfile = /var/lib/node_exporter/textfile/cairn.prom
 *   webhook = https://hooks.example.com/cairn   (JSON POST on failure, partial, stale, drill failure)
 *
 * Every error names the file, the line and the key.
 *
 * Syntax (inih as Debian builds it, plus checks of our own):
 *   - One "key = value" per line ("key: value" works too); whitespace
 *     around key and value is dropped.  Lines starting with '#' or ';' are
 *     comments, and " ;" (whitespace, then ';') starts a comment after a
 *     value: "keep-daily = 3 ; three days" is 3.  A command key
 *     (command, tar-command, password-command) containing " ;" is refused
 *     rather than cut short; put such commands in a script.
 *   - A line that starts with whitespace (other than a blank or comment
 *     line) is refused: inih would take it for a continuation of the
 *     previous value, and an accidental indent would silently glue two
 *     settings together.
 *   - A line may hold at most 198 characters (inih's 200-byte buffer); a
 *     longer one is refused, never split.
 *   - Section names are exact: [repository], [status], [job NAME] (NAME: 1-64 of
 *     A-Z a-z 0-9 . _ -, not starting with '.').  Keys are lower case.
 *   - Paths are normalized ("//" and a trailing '/' dropped); "." and
 *     ".." components are refused.  A key that takes one value may appear
 *     once per section; path and exclude repeat.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo.h"

struct bk_retention {
        unsigned last, hourly, daily, weekly, monthly, yearly;
};

struct bk_job {
        char *name;
        unsigned line;                 /* of its [job NAME] header */
        char **paths;                  /* absolute */
        size_t n_paths;
        char **excludes;
        size_t n_excludes;
        bool one_file_system;
        char *command;                 /* with filename */
        char *filename;
        char *tar_command;             /* with optional directory */
        char *directory;
        struct bk_retention keep;
        bool has_keep;                 /* any keep-* given: otherwise keep everything */
        uint64_t max_age_s;            /* 0: no freshness check */
        char *drill;                   /* restore drill script (absolute path), NULL: none */
        char *drill_runtime;           /* "bwrap", "docker" or "podman"; NULL: bwrap */
        char *drill_image;             /* docker/podman image; NULL: podman runs on the host's root */
        char *drill_user;              /* user (name or uid) the drill runs as; NULL: root */
        uint64_t drill_timeout_s;      /* stop the drill after this; 0: BK_DRILL_TIMEOUT_DEFAULT */
};

struct bk_config {
        char *file;
        char *repo_path;
        struct cairn_pass_source pass; /* value owned by the config */
        int compression;               /* 0: default */
        int encryption;                /* -1 unset, 0 no, 1 yes */
        struct bk_job *jobs;
        size_t n_jobs;
        char *textfile;                /* [status] textfile: Prometheus metrics file, NULL: none */
        char *webhook;                 /* [status] webhook: http(s) URL for alerts, NULL: none */
};

/* Parse @path.  Errors are logged as "FILE:LINE: …" and returned:
 * -ENOENT (no such file), -EINVAL (any content error). */
int bk_config_load(const char *path, struct bk_config **ret);
struct bk_config *bk_config_free(struct bk_config *c);
const struct bk_job *bk_config_job(const struct bk_config *c, const char *name);

/* "90", "90s", "15m", "26h", "7d", "2w" → seconds. -EINVAL. */
int bk_parse_duration(const char *s, uint64_t *ret);
