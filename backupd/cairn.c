/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairn: the operator's command line.  Global options, then a command
 * with its own options; "cairn COMMAND --help" describes each.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "backup.h"
#include "check.h"
#include "conf.h"
#include "config.h"
#include "lmdb-index.h"
#include "log.h"
#include "ls.h"
#include "prune.h"
#include "repo.h"
#include "restore.h"
#include "retention.h"
#include "snapshot.h"
#include "util.h"

/* Exit statuses, as --help documents them. */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,          /* a job or the command failed */
        EXIT_USAGE = 2,
        EXIT_PARTIAL = 3,       /* every job ran; some snapshots are partial */
        EXIT_LOCKED = 75,       /* another cairn holds a lock we need (EX_TEMPFAIL) */
};

#define DEFAULT_CONFIG "/etc/cairn/cairn.conf"

struct opts {
        const char *config_path;
        bool config_explicit;
        const char *repo;
        struct cairn_pass_source pass;
        bool pass_explicit;
        struct bk_config *config;
        int verbosity;
        bool json;
};

static void log_to_stderr(int level, const char *msg, void *userdata) {
        fprintf(stderr, "cairn: %s%s\n", level <= CAIRN_LOG_ERR ? "error: " : level == CAIRN_LOG_WARNING ? "warning: " : "",
                msg);
}

static const char usage_text[] =
        "Usage: cairn [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Deduplicated, compressed, encrypted backups with an instant FUSE mount.\n"
        "\n"
        "Commands:\n"
        "  init                          create the repository\n"
        "  info                          open the repository and describe it\n"
        "  backup JOB                    back up one job of the config\n"
        "  backup --job NAME PATH...     back up paths as job NAME (no config needed)\n"
        "  run                           back up every job of the config (what cron runs)\n"
        "  snapshots [JOB]               list snapshots\n"
        "  ls SNAPSHOT[:PATH]            list files of a snapshot\n"
        "  restore SNAPSHOT[:PATH] --target DIR\n"
        "                                restore files with all their metadata\n"
        "  forget [JOB...]               drop snapshots outside the jobs' keep-* rules\n"
        "  prune                         delete data no snapshot needs, repack sparse packs\n"
        "  check [--read-data[=N%]]      verify that every snapshot is complete and intact\n"
        "  index rebuild                 rebuild the index from packs and snapshot files\n"
        "  mount [-f] [-o OPTS] DIR      mount every snapshot read-only at DIR (runs cairnfs)\n"
        "\n"
        "SNAPSHOT is JOB (its latest complete snapshot), JOB/latest, JOB/2026-11-21T01:00:00Z\n"
        "(UTC, as \"cairn snapshots\" prints) or an id prefix of at least 6 hex digits.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE          config file (default $CAIRN_CONFIG, else " DEFAULT_CONFIG ")\n"
        "  -r, --repo PATH            repository (default $CAIRN_REPO, else the config's [repository] path)\n"
        "      --password-file FILE   read the passphrase from FILE ($CAIRN_PASSWORD_FILE)\n"
        "      --password-command CMD use the output of CMD ($CAIRN_PASSWORD_COMMAND)\n"
        "                             else $CAIRN_PASSWORD, else the config's password-file/-command\n"
        "      --json                 machine-readable output (info, snapshots, ls, run, forget, prune, check)\n"
        "  -v, --verbose              say what happens (twice: debug)\n"
        "  -q, --quiet                only errors\n"
        "  -h, --help                 this text; \"cairn COMMAND --help\" for a command\n"
        "      --version              print the version\n"
        "\n"
        "Exit status: 0 success; 1 failure; 2 usage error; 3 done, but some snapshots are partial\n"
        "(files that could not be read or changed while read); 75 another cairn holds the lock.\n";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "cairn %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry \"cairn %s --help\".\n", cmd);
        return EXIT_USAGE;
}

/* Load the config if there is one to load: -c and $CAIRN_CONFIG must
 * exist; the default path may be absent when --repo is given. */
static int load_config(struct opts *o, bool required) {
        int k;
        if (o->config)
                return 0;
        if (!o->config_explicit && access(o->config_path, F_OK) < 0) {
                if (!required)
                        return 0;
                log_error("No config file %s and no --repo: give a config with -c FILE or $CAIRN_CONFIG "
                          "(see cairn.conf.example), or the repository with --repo PATH or $CAIRN_REPO", o->config_path);
                return -ENOENT;
        }
        k = bk_config_load(o->config_path, &o->config);
        return k;
}

static int open_repo(struct opts *o, struct cairn_repo **ret) {
        struct cairn_pass_source pass = o->pass;
        int k;

        if (!o->repo || (!o->pass_explicit && o->pass.kind == CAIRN_PASS_NONE)) {
                k = load_config(o, !o->repo);
                if (k < 0)
                        return k;
        }
        if (!o->repo && o->config)
                o->repo = o->config->repo_path;
        if (!o->repo) {
                log_error("No repository: give --repo PATH, set $CAIRN_REPO, or a [repository] path in the config");
                return -EINVAL;
        }
        if (pass.kind == CAIRN_PASS_NONE && o->config)
                pass = o->config->pass;
        o->pass = pass;
        return cairn_repo_open(o->repo, &pass, ret);
}

static bool want_help(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (streq(argv[i], "--help") || streq(argv[i], "-h"))
                        return true;
        return false;
}

/* ---- init, info ---- */

static int cmd_init(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "no-encryption", no_argument, NULL, 'n' },
                { "compression", required_argument, NULL, 'z' },
                { "scrypt-n", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct cairn_repo_params p;
        int c, k, enc = -1;
        char *end;

        cairn_repo_params_default(&p);
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'n': enc = 0; break;
                case 'z':
                        p.zstd_level = (int) strtol(optarg, &end, 10);
                        if (*end || p.zstd_level < 1 || p.zstd_level > 19)
                                return usage_error("init", "--compression: expected a level from 1 to 19, got \"%s\"", optarg);
                        break;
                case 's':
                        p.scrypt_n = strtoull(optarg, &end, 10);
                        if (*end || p.scrypt_n < 2 || (p.scrypt_n & (p.scrypt_n - 1)))
                                return usage_error("init", "--scrypt-n: expected a power of two, got \"%s\"", optarg);
                        break;
                case 'h':
                        printf("Usage: cairn init [--no-encryption] [--compression LEVEL] [--scrypt-n N]\n\n"
                               "Create the repository named by --repo, $CAIRN_REPO or the config. It is encrypted\n"
                               "with the passphrase (AES-256-GCM, scrypt) unless --no-encryption or the config's\n"
                               "\"encryption = no\". The directory must be new or empty.\n");
                        return EXIT_OK;
                default: return usage_error("init", "bad option");
                }
        }
        if (optind < argc)
                return usage_error("init", "unexpected argument \"%s\" (give the path with --repo)", argv[optind]);
        if (!o->repo || !o->pass_explicit) {
                k = load_config(o, !o->repo);
                if (k < 0)
                        return EXIT_FAIL;
        }
        if (!o->repo && o->config)
                o->repo = o->config->repo_path;
        if (o->config) {
                if (enc < 0 && o->config->encryption >= 0)
                        enc = o->config->encryption;
                if (o->config->compression && p.zstd_level == 3)
                        p.zstd_level = o->config->compression;
                if (o->pass.kind == CAIRN_PASS_NONE)
                        o->pass = o->config->pass;
        }
        if (!o->repo)
                return usage_error("init", "no repository: give --repo PATH or set $CAIRN_REPO");
        p.encrypted = enc != 0;
        if (p.encrypted && o->pass.kind == CAIRN_PASS_NONE)
                return usage_error("init", "an encrypted repository needs a passphrase: --password-file, "
                                           "--password-command or $CAIRN_PASSWORD (or --no-encryption)");
        k = cairn_repo_create(o->repo, &p, &o->pass);
        if (k < 0)
                return EXIT_FAIL;
        if (o->verbosity >= 0)
                printf("created %s repository at %s\n", p.encrypted ? "encrypted" : "unencrypted", o->repo);
        return EXIT_OK;
}

static int count_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json, size_t len,
                    void *userdata) {
        (*(size_t *) userdata)++;
        return 0;
}

static int cmd_info(struct opts *o, int argc, char **argv) {
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        const struct cairn_repo_params *p;
        size_t n = 0;
        char idhex[33];
        int k;

        if (want_help(argc, argv)) {
                printf("Usage: cairn info [--json]\n\nOpen the repository (checking the passphrase) and describe it.\n");
                return EXIT_OK;
        }
        if (argc > 1)
                return usage_error("info", "unexpected argument \"%s\"", argv[1]);
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k >= 0)
                k = cairn_index_snapshot_foreach(t, NULL, count_cb, &n);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", o->repo), EXIT_FAIL;
        p = cairn_repo_params(r);
        hex_encode(cairn_repo_id(r), 16, idhex);
        if (o->json) {
                json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:i, s:{s:i, s:i, s:i}, s:I}", "path", o->repo, "id", idhex,
                                      "version", CAIRN_FORMAT_VERSION, "encryption", p->encrypted ? "aes-256-gcm" : "none",
                                      "compression_level", p->zstd_level, "chunker", "min", (int) p->chunker.min_size,
                                      "avg", (int) p->chunker.avg_size, "max", (int) p->chunker.max_size,
                                      "snapshots", (json_int_t) n);
                json_dumpf(j, stdout, JSON_COMPACT);
                printf("\n");
                json_decref(j);
        } else
                printf("repository  %s\nid          %s\nformat      %d\nencryption  %s\ncompression zstd level %d\n"
                       "chunks      %u / %u / %u bytes (min / avg / max)\nsnapshots   %zu\n",
                       o->repo, idhex, CAIRN_FORMAT_VERSION, p->encrypted ? "AES-256-GCM (key unlocked)" : "none",
                       p->zstd_level, p->chunker.min_size, p->chunker.avg_size, p->chunker.max_size, n);
        return EXIT_OK;
}

/* ---- backup, run ---- */

struct job_result {
        int status;                     /* EXIT_OK / EXIT_PARTIAL / EXIT_FAIL / EXIT_LOCKED */
        uint8_t id[CAIRN_ID_SIZE];
        struct cairn_snapshot *snap;    /* copy of the record, for -v / --json */
};

static char *human(uint64_t bytes, char *buf, size_t size) {
        const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = (double) bytes;
        unsigned u = 0;
        while (v >= 1024 && u < 4) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
        return buf;
}

/* Run one job with its locks held.  Never exits. */
static void run_job(struct opts *o, struct cairn_repo *r, const struct bk_job *job, bool wait, struct job_result *res) {
        struct bk_backup_options bo = {
                .job = job->name, .excludes = job->excludes, .n_excludes = job->n_excludes,
                .one_file_system = job->one_file_system, .progress = o->verbosity >= 0 && isatty(2),
        };
        struct cairn_lock *jl = NULL, *rl = NULL;
        struct bk_backup *b = NULL;
        char lockname[128];
        pid_t holder = 0;
        int k;

        res->status = EXIT_FAIL;
        snprintf(lockname, sizeof lockname, "job-%s", job->name);
        k = cairn_repo_lock(r, lockname, true, wait, "backup", &jl, &holder);
        if (k == -EBUSY) {
                log_error("job \"%s\" is already running (pid %d); not starting it again", job->name, (int) holder);
                res->status = EXIT_LOCKED;
                return;
        }
        if (k < 0)
                return;
        /* Shared with other backups, exclusive against prune. */
        k = cairn_repo_lock(r, "repository", false, false, NULL, &rl, &holder);
        if (k == -EBUSY) {
                /* A prune is bounded and holds the lock only while it runs:
                 * a backup must not fail because one is running, so it
                 * waits (the job lock above still keeps two runs apart). */
                log_info("job \"%s\": waiting for the prune of process %d to finish", job->name, (int) holder);
                k = cairn_repo_lock(r, "repository", false, true, NULL, &rl, &holder);
        }
        if (k < 0) {
                cairn_lock_release(jl);
                return;
        }

        k = bk_backup_new(r, &bo, &b);
        for (size_t i = 0; k >= 0 && i < job->n_paths; i++)
                k = bk_backup_path(b, job->paths[i]);
        if (k >= 0 && job->command)
                k = bk_backup_command(b, job->command, job->filename);
        if (k >= 0 && job->tar_command)
                k = bk_backup_tar_command(b, job->tar_command, job->directory);
        if (k >= 0)
                k = bk_backup_commit(b, res->id);
        if (k >= 0) {
                res->status = b->snap->status == CAIRN_SNAPSHOT_COMPLETE ? EXIT_OK : EXIT_PARTIAL;
                res->snap = TAKE_PTR(b->snap);
        } else
                log_error("job \"%s\" failed; no snapshot was recorded", job->name);
        bk_backup_free(b);
        cairn_lock_release(rl);
        cairn_lock_release(jl);
}

static void report_job(struct opts *o, const char *name, struct job_result *res, json_t *list) {
        char hex[65], a[32], bb[32], cc[32], dd[32];
        double secs;

        if (o->json) {
                json_t *j = json_pack("{s:s, s:s}", "job", name,
                                      "status", res->status == EXIT_OK ? "ok" : res->status == EXIT_PARTIAL ? "partial" :
                                                res->status == EXIT_LOCKED ? "locked" : "failed");
                if (res->snap) {
                        json_object_set_new(j, "snapshot", json_string(hex_encode(res->id, CAIRN_ID_SIZE, hex)));
                        json_object_set_new(j, "files", json_integer((json_int_t) res->snap->files));
                        json_object_set_new(j, "bytes", json_integer((json_int_t) res->snap->bytes));
                        json_object_set_new(j, "bytes_read", json_integer((json_int_t) res->snap->bytes_read));
                        json_object_set_new(j, "added_bytes", json_integer((json_int_t) res->snap->added_bytes));
                        json_object_set_new(j, "stored_bytes", json_integer((json_int_t) res->snap->stored_bytes));
                        json_object_set_new(j, "duration_s",
                                            json_real((double) (res->snap->end_ns - res->snap->start_ns) / 1e9));
                        json_object_set_new(j, "warnings", json_integer((json_int_t) res->snap->n_errors));
                }
                json_array_append_new(list, j);
                return;
        }
        if (o->verbosity < 1 || !res->snap)
                return;
        secs = (double) (res->snap->end_ns - res->snap->start_ns) / 1e9;
        printf("%s: %s, snapshot %.8s: %" PRIu64 " files, %s, %s read, %s new (%s stored), %.1f s%s\n", name,
               res->status == EXIT_OK ? "ok" : "partial", hex_encode(res->id, CAIRN_ID_SIZE, hex), res->snap->files,
               human(res->snap->bytes, a, sizeof a), human(res->snap->bytes_read, bb, sizeof bb),
               human(res->snap->added_bytes, cc, sizeof cc), human(res->snap->stored_bytes, dd, sizeof dd), secs,
               res->snap->n_errors ? " (see warnings)" : "");
}

static int combine(int all, int one) {
        /* failure > locked > partial > ok */
        if (all == EXIT_FAIL || one == EXIT_FAIL)
                return EXIT_FAIL;
        if (all == EXIT_LOCKED || one == EXIT_LOCKED)
                return EXIT_LOCKED;
        if (all == EXIT_PARTIAL || one == EXIT_PARTIAL)
                return EXIT_PARTIAL;
        return EXIT_OK;
}

static int cmd_backup(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "job", required_argument, NULL, 'j' },
                { "exclude", required_argument, NULL, 'e' },
                { "one-file-system", no_argument, NULL, 'x' },
                { "wait", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct bk_job adhoc = { 0 };
        const struct bk_job *job = NULL;
        struct job_result res = { 0 };
        char **excludes = NULL, **paths = NULL;
        size_t n_ex = 0;
        bool wait = false, one_fs = false;
        const char *name = NULL;
        json_t *list = json_array();
        int c, status;

        while ((c = getopt_long(argc, argv, "+xh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'j': name = optarg; break;
                case 'e':
                        excludes = realloc(excludes, (n_ex + 1) * sizeof *excludes);
                        excludes[n_ex++] = optarg;
                        break;
                case 'x': one_fs = true; break;
                case 'w': wait = true; break;
                case 'h':
                        printf("Usage: cairn backup [--wait] JOB\n"
                               "       cairn backup --job NAME [--exclude GLOB]... [--one-file-system] PATH...\n\n"
                               "Back up one job of the config, or PATHs as job NAME without a config. Files whose\n"
                               "size, mtime, ctime and inode match the job's previous snapshot are not read again.\n"
                               "A file that cannot be read or changes while read makes the snapshot partial\n"
                               "(exit status 3). --wait waits for a running backup of the same job instead of\n"
                               "exiting with status 75.\n");
                        return EXIT_OK;
                default: return usage_error("backup", "bad option");
                }
        }
        if (name) {
                if (optind >= argc)
                        return usage_error("backup", "--job %s needs at least one PATH", name);
                if (!cairn_name_valid(name, strlen(name)) || strlen(name) > 64)
                        return usage_error("backup", "bad job name \"%s\"", name);
                paths = calloc((size_t) (argc - optind), sizeof *paths);
                for (int i = optind; i < argc; i++) {
                        char *abs = realpath(argv[i], NULL);
                        if (!abs) {
                                log_error_errno(-errno, "job \"%s\": source %s: %m", name, argv[i]);
                                return EXIT_FAIL;
                        }
                        paths[adhoc.n_paths++] = abs;
                }
                adhoc.name = (char *) name;
                adhoc.paths = paths;
                adhoc.excludes = excludes;
                adhoc.n_excludes = n_ex;
                adhoc.one_file_system = one_fs;
                job = &adhoc;
        } else {
                if (optind + 1 != argc)
                        return usage_error("backup", optind >= argc ? "which job? (or --job NAME PATH...)"
                                                                    : "one job at a time (\"cairn run\" runs them all)");
                if (load_config(o, true) < 0)
                        return EXIT_FAIL;
                job = bk_config_job(o->config, argv[optind]);
                if (!job) {
                        log_error("No job \"%s\" in %s", argv[optind], o->config_path);
                        return EXIT_FAIL;
                }
        }
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        run_job(o, r, job, wait, &res);
        report_job(o, job->name, &res, list);
        if (o->json) {
                json_dumpf(json_array_get(list, 0), stdout, JSON_COMPACT);
                printf("\n");
        }
        json_decref(list);
        cairn_snapshot_free(res.snap);
        for (size_t i = 0; i < adhoc.n_paths; i++)
                free(paths[i]);
        free(paths);
        free(excludes);
        status = res.status;
        return status;
}

static int cmd_run(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "wait", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        json_t *list = json_array();
        bool wait = false;
        int c, status = EXIT_OK;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'w': wait = true; break;
                case 'h':
                        printf("Usage: cairn run [--wait] [-v] [--json]\n\n"
                               "Back up every job of the config, one after another: the cron entry point\n"
                               "(e.g. \"0 1 * * * root cairn run\"). Silent when everything succeeds; -v prints a\n"
                               "line per job. A failed job does not stop the others.\n\n"
                               "Exit status: 0 all jobs succeeded; 1 some job failed; 3 none failed but some\n"
                               "snapshots are partial; 75 some job was already running (see --wait).\n");
                        return EXIT_OK;
                default: return usage_error("run", "bad option");
                }
        }
        if (optind < argc)
                return usage_error("run", "unexpected argument \"%s\" (\"cairn backup JOB\" runs one job)", argv[optind]);
        if (load_config(o, true) < 0)
                return EXIT_FAIL;
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        for (size_t i = 0; i < o->config->n_jobs; i++) {
                struct job_result res = { 0 };
                run_job(o, r, &o->config->jobs[i], wait, &res);
                report_job(o, o->config->jobs[i].name, &res, list);
                status = combine(status, res.status);
                cairn_snapshot_free(res.snap);
        }
        if (o->json) {
                json_dumpf(list, stdout, JSON_COMPACT);
                printf("\n");
        }
        json_decref(list);
        return status;
}

/* ---- snapshots, ls, restore ---- */

struct list_ctx {
        bool json;
        json_t *list;
};

static int list_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json, size_t len,
                   void *userdata) {
        struct list_ctx *c = userdata;
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        char when[32], hex[65], size[32];

        if (c->json) {
                json_t *j = json_loadb(json, len, 0, NULL);
                if (!j)
                        return -EBADMSG;
                json_object_set_new(j, "id", json_string(hex_encode(id, CAIRN_ID_SIZE, hex)));
                json_array_append_new(c->list, j);
                return 0;
        }
        if (cairn_snapshot_from_json(json, len, &s) < 0)
                return -EBADMSG;
        printf("%-20s %s  %.12s  %-8s %8" PRIu64 " files %10s  %.1f s\n", job, cairn_time_format(start_ns, when, sizeof when),
               hex_encode(id, CAIRN_ID_SIZE, hex), s->status == CAIRN_SNAPSHOT_COMPLETE ? "complete" : "partial", s->files,
               human(s->bytes, size, sizeof size), (double) (s->end_ns - s->start_ns) / 1e9);
        return 0;
}

static int cmd_snapshots(struct opts *o, int argc, char **argv) {
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct list_ctx c = { .json = o->json, .list = json_array() };
        int k;

        if (want_help(argc, argv)) {
                printf("Usage: cairn snapshots [--json] [JOB]\n\nList snapshots (all jobs, or one), oldest first:\n"
                       "job, start time (UTC), id, status, file count, size, duration.\n");
                return EXIT_OK;
        }
        if (argc > 2)
                return usage_error("snapshots", "at most one JOB");
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k >= 0)
                k = cairn_index_snapshot_foreach(t, argc > 1 ? argv[1] : NULL, list_cb, &c);
        if (k < 0) {
                json_decref(c.list);
                return log_error_errno(k, "Cannot list snapshots of %s: %m", o->repo), EXIT_FAIL;
        }
        if (o->json) {
                json_dumpf(c.list, stdout, JSON_COMPACT);
                printf("\n");
        }
        json_decref(c.list);
        return EXIT_OK;
}

/* "SNAPSHOT[:PATH]" → record, and path inside it. */
static int resolve_arg(struct cairn_txn *t, const char *arg, struct cairn_snapshot **ret, uint8_t id[CAIRN_ID_SIZE],
                       const char **ret_path) {
        _cleanup_free_ char *spec = NULL;
        /* ISO times contain ':' too: then the path starts at the first ':' after the 'Z'. */
        const char *slash = strchr(arg, '/'), *search = arg, *colon;
        if (slash && (!strchr(arg, ':') || slash < strchr(arg, ':')) && slash[1] >= '0' && slash[1] <= '9' &&
            strchr(slash, 'Z'))
                search = strchr(slash, 'Z');
        colon = strchr(search, ':');
        spec = colon ? strndup(arg, (size_t) (colon - arg)) : strdup(arg);
        if (!spec)
                return -ENOMEM;
        *ret_path = colon ? colon + 1 : "";
        return cairn_snapshot_resolve(t, spec, ret, id);
}

static int cmd_ls(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "long", no_argument, NULL, 'l' },
                { "recursive", no_argument, NULL, 'R' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        struct bk_ls_options lo = { .json = o->json };
        uint8_t id[CAIRN_ID_SIZE];
        const char *path;
        int c, k;

        while ((c = getopt_long(argc, argv, "lRh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'l': lo.long_format = true; break;
                case 'R': lo.recursive = true; break;
                case 'h':
                        printf("Usage: cairn ls [-l] [-R] [--json] SNAPSHOT[:PATH]\n\n"
                               "List a directory (or one file) of a snapshot. -l: mode, owner, size, time;\n"
                               "-R: the whole subtree; --json: one object per line.\n");
                        return EXIT_OK;
                default: return usage_error("ls", "bad option");
                }
        }
        if (optind + 1 != argc)
                return usage_error("ls", "give one SNAPSHOT[:PATH]");
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k < 0 || resolve_arg(t, argv[optind], &s, id, &path) < 0)
                return EXIT_FAIL;
        k = bk_ls(r, t, s->root, path, &lo, stdout);
        return k < 0 ? EXIT_FAIL : EXIT_OK;
}

static int cmd_restore(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "target", required_argument, NULL, 't' },
                { "overwrite", no_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        struct bk_restore_options ro = { 0 };
        struct bk_restore_stats st = { 0 };
        const char *target = NULL, *path;
        uint8_t id[CAIRN_ID_SIZE];
        char a[32];
        int c, k;

        while ((c = getopt_long(argc, argv, "t:oh", longopts, NULL)) >= 0) {
                switch (c) {
                case 't': target = optarg; break;
                case 'o': ro.overwrite = true; break;
                case 'h':
                        printf("Usage: cairn restore SNAPSHOT[:PATH] --target DIR [--overwrite]\n\n"
                               "Restore a snapshot, or PATH inside it, into DIR with everything stored: modes,\n"
                               "owners, ns times, symlinks, hard links, xattrs and ACLs, sparse files, devices.\n"
                               "Existing files are not replaced unless --overwrite. A file whose data is damaged\n"
                               "is reported and skipped; the others are restored (exit status 1).\n");
                        return EXIT_OK;
                default: return usage_error("restore", "bad option");
                }
        }
        if (optind + 1 != argc)
                return usage_error("restore", "give one SNAPSHOT[:PATH]");
        if (!target)
                return usage_error("restore", "--target DIR is required");
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k < 0 || resolve_arg(t, argv[optind], &s, id, &path) < 0)
                return EXIT_FAIL;
        cairn_index_txn_abort(TAKE_PTR(t));
        k = bk_restore(r, s->root, path, target, &ro, &st);
        if (o->verbosity >= 1 || o->json) {
                if (o->json)
                        printf("{\"files\":%" PRIu64 ",\"dirs\":%" PRIu64 ",\"symlinks\":%" PRIu64 ",\"bytes\":%" PRIu64
                               ",\"errors\":%" PRIu64 "}\n", st.files, st.dirs, st.symlinks, st.bytes, st.errors);
                else
                        printf("restored %" PRIu64 " files, %" PRIu64 " directories, %s into %s%s\n", st.files, st.dirs,
                               human(st.bytes, a, sizeof a), target, st.errors ? " (with errors)" : "");
        }
        return k < 0 ? EXIT_FAIL : EXIT_OK;
}

/* ---- forget, prune, index ---- */

struct forget_item {
        char *job;
        int64_t start_ns;
        uint8_t id[CAIRN_ID_SIZE];
};

struct forget_ctx {
        struct forget_item *items;
        size_t n, cap;
};

static int collect_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json, size_t len,
                      void *userdata) {
        struct forget_ctx *c = userdata;
        if (c->n == c->cap) {
                struct forget_item *bigger = realloc(c->items, (c->cap = c->cap ? c->cap * 2 : 64) * sizeof *bigger);
                if (!bigger)
                        return -ENOMEM;
                c->items = bigger;
        }
        c->items[c->n].job = strdup(job);
        c->items[c->n].start_ns = start_ns;
        memcpy(c->items[c->n].id, id, CAIRN_ID_SIZE);
        return c->items[c->n++].job ? 0 : -ENOMEM;
}

static int acquire_exclusive(struct opts *o, struct cairn_repo *r, const char *what, bool wait, struct cairn_lock **ret) {
        pid_t holder = 0;
        int k = cairn_repo_lock(r, "repository", true, wait, what, ret, &holder);
        if (k == -EBUSY) {
                log_error("The repository is in use by process %d (a backup or prune); try later or use --wait",
                          (int) holder);
                return -EBUSY;
        }
        return k;
}

static int do_prune(struct opts *o, struct cairn_repo *r, bool dry_run) {
        struct cairn_prune_options po = { .dry_run = dry_run, .repack_threshold_pct = 50, .grace_ns = 3600LL * 1000000000 };
        struct cairn_prune_stats ps = { 0 };
        char a[32], bb[32];
        int k = cairn_prune(r, &po, &ps);
        if (k < 0)
                return k;
        if (o->json)
                printf("{\"dry_run\":%s,\"packs\":%" PRIu64 ",\"packs_deleted\":%" PRIu64 ",\"packs_repacked\":%" PRIu64
                       ",\"bytes_freed\":%" PRIu64 ",\"bytes_repacked\":%" PRIu64 "}\n", dry_run ? "true" : "false",
                       ps.packs_total, ps.packs_deleted, ps.packs_repacked, ps.bytes_freed, ps.bytes_repacked);
        else if (o->verbosity >= 0)
                printf("%s %" PRIu64 " of %" PRIu64 " packs, repack %" PRIu64 " (%s), free %s\n",
                       dry_run ? "would delete" : "deleted", ps.packs_deleted, ps.packs_total, ps.packs_repacked,
                       human(ps.bytes_repacked, a, sizeof a), human(ps.bytes_freed, bb, sizeof bb));
        return 0;
}

static int cmd_forget(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "dry-run", no_argument, NULL, 'n' },
                { "prune", no_argument, NULL, 'p' },
                { "wait", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct cairn_lock *lock = NULL;
        bool dry_run = false, prune = false, wait = false;
        json_t *out = json_array();
        int c, k, status = EXIT_OK;

        while ((c = getopt_long(argc, argv, "nh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'n': dry_run = true; break;
                case 'p': prune = true; break;
                case 'w': wait = true; break;
                case 'h':
                        printf("Usage: cairn forget [--dry-run] [--prune] [--wait] [JOB...]\n\n"
                               "Apply each job's keep-last/-hourly/-daily/-weekly/-monthly/-yearly rules (UTC\n"
                               "calendar; the newest snapshot of each period is kept) and delete the snapshots\n"
                               "they do not keep. A job without keep-* rules keeps everything. --dry-run lists\n"
                               "what would go; --prune then frees the data no snapshot needs.\n");
                        return EXIT_OK;
                default: return usage_error("forget", "bad option");
                }
        }
        if (load_config(o, true) < 0)
                return EXIT_FAIL;
        for (int i = optind; i < argc; i++)
                if (!bk_config_job(o->config, argv[i])) {
                        log_error("No job \"%s\" in %s", argv[i], o->config_path);
                        return EXIT_FAIL;
                }
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        if (!dry_run && acquire_exclusive(o, r, "forget", wait, &lock) < 0)
                return EXIT_LOCKED;

        for (size_t j = 0; j < o->config->n_jobs; j++) {
                const struct bk_job *job = &o->config->jobs[j];
                _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
                struct forget_ctx fc = { 0 };
                bool found = optind == argc;

                for (int i = optind; i < argc; i++)
                        found |= streq(argv[i], job->name);
                if (!found)
                        continue;
                k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
                if (k >= 0)
                        k = cairn_index_snapshot_foreach(t, job->name, collect_cb, &fc);
                cairn_index_txn_abort(TAKE_PTR(t));
                if (k >= 0 && fc.n > 0) {
                        int64_t *times = calloc(fc.n, sizeof *times);
                        bool *keep = calloc(fc.n, sizeof *keep);
                        unsigned *why = calloc(fc.n, sizeof *why);
                        if (!times || !keep || !why)
                                k = -ENOMEM;
                        for (size_t i = 0; k >= 0 && i < fc.n; i++)
                                times[i] = fc.items[i].start_ns;
                        if (k >= 0)
                                bk_retention_select(&job->keep, times, fc.n, keep, why);
                        for (size_t i = 0; k >= 0 && i < fc.n; i++) {
                                char when[32], hex[65], reasons[128];
                                cairn_time_format(fc.items[i].start_ns, when, sizeof when);
                                hex_encode(fc.items[i].id, CAIRN_ID_SIZE, hex);
                                bk_retention_reasons(why[i], reasons, sizeof reasons);
                                if (o->json)
                                        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s}", "job", job->name,
                                                                             "time", when, "id", hex,
                                                                             "action", keep[i] ? "keep" : "forget",
                                                                             "reason", keep[i] ? reasons : ""));
                                else if (!keep[i] || o->verbosity >= 1)
                                        printf("%s %-20s %s  %.12s%s%s\n", keep[i] ? "keep  " : (dry_run ? "would forget" : "forget"),
                                               job->name, when, hex, keep[i] ? "  " : "", keep[i] ? reasons : "");
                                if (!keep[i] && !dry_run) {
                                        struct cairn_snapshot s = { .job = job->name, .start_ns = fc.items[i].start_ns };
                                        k = cairn_snapshot_forget(r, &s, fc.items[i].id);
                                }
                        }
                        free(times);
                        free(keep);
                        free(why);
                }
                for (size_t i = 0; i < fc.n; i++)
                        free(fc.items[i].job);
                free(fc.items);
                if (k < 0)
                        status = EXIT_FAIL;
        }
        if (o->json) {
                json_dumpf(out, stdout, JSON_COMPACT);
                printf("\n");
        }
        json_decref(out);
        if (status == EXIT_OK && prune && do_prune(o, r, dry_run) < 0)
                status = EXIT_FAIL;
        cairn_lock_release(lock);
        return status;
}

static int cmd_prune(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "dry-run", no_argument, NULL, 'n' },
                { "wait", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct cairn_lock *lock = NULL;
        bool dry_run = false, wait = false;
        int c, k;

        while ((c = getopt_long(argc, argv, "nh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'n': dry_run = true; break;
                case 'w': wait = true; break;
                case 'h':
                        printf("Usage: cairn prune [--dry-run] [--wait]\n\n"
                               "Delete packs that no snapshot needs and repack packs less than half used.\n"
                               "Runs beside a mount (readers retry moved data); waits for no mount. Backups and\n"
                               "prune exclude each other: without --wait, a busy repository is exit status 75.\n");
                        return EXIT_OK;
                default: return usage_error("prune", "bad option");
                }
        }
        if (optind < argc)
                return usage_error("prune", "unexpected argument \"%s\"", argv[optind]);
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        if (acquire_exclusive(o, r, "prune", wait, &lock) < 0)
                return EXIT_LOCKED;
        k = do_prune(o, r, dry_run);
        cairn_lock_release(lock);
        return k < 0 ? EXIT_FAIL : EXIT_OK;
}

static int cmd_index(struct opts *o, int argc, char **argv) {
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct cairn_lock *lock = NULL;
        int k;

        if (want_help(argc, argv)) {
                printf("Usage: cairn index rebuild\n\nRebuild the LMDB index from packs and snapshot files (after the\n"
                       "index was lost or damaged, or on a copy made with \"cairn sync\").\n");
                return EXIT_OK;
        }
        if (argc != 2 || !streq(argv[1], "rebuild"))
                return usage_error("index", "usage: cairn index rebuild");
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        if (acquire_exclusive(o, r, "index rebuild", false, &lock) < 0)
                return EXIT_LOCKED;
        k = cairn_repo_rebuild_index(r);
        cairn_lock_release(lock);
        if (k < 0)
                return EXIT_FAIL;
        if (o->verbosity >= 0)
                printf("index of %s rebuilt\n", o->repo);
        return EXIT_OK;
}

/* ---- check ---- */

struct check_out {
        bool json;
        json_t *problems, *damaged;     /* --json */
};

static void check_on_problem(const struct cairn_check_problem *p, void *userdata) {
        struct check_out *co = userdata;
        char hex[65];
        json_t *j;

        /* The library has logged it; only --json collects it. */
        if (!co->json)
                return;
        j = json_pack("{s:s, s:s}", "error", p->error == -ENOENT ? "missing" : "damaged", "message", p->message);
        if (p->pack)
                json_object_set_new(j, "pack", json_string(hex_encode(p->pack, CAIRN_ID_SIZE, hex)));
        if (p->blob)
                json_object_set_new(j, "blob", json_string(hex_encode(p->blob, CAIRN_ID_SIZE, hex)));
        if (p->snapshot)
                json_object_set_new(j, "snapshot", json_string(hex_encode(p->snapshot, CAIRN_ID_SIZE, hex)));
        json_array_append_new(co->problems, j);
}

static void check_on_damage(const struct cairn_check_damage *d, void *userdata) {
        struct check_out *co = userdata;
        char when[32], hex[65];

        cairn_time_format(d->start_ns, when, sizeof when);
        hex_encode(d->snapshot, CAIRN_ID_SIZE, hex);
        if (co->json)
                json_array_append_new(co->damaged, json_pack("{s:s, s:s, s:s, s:o}", "job", d->job, "time", when,
                                                             "snapshot", hex,
                                                             "path", d->path ? json_string(d->path) : json_null()));
        else
                fprintf(stderr, "damaged: %s/%s (%.8s): %s\n", d->job, when, hex,
                        d->path ? d->path : "the snapshot record itself");
}

static int cmd_check(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "read-data", optional_argument, NULL, 'd' },
                { "wait", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct check_out co = { .json = o->json };
        struct cairn_check_options copt = {
                .on_problem = check_on_problem, .on_damage = check_on_damage, .userdata = &co,
        };
        struct cairn_check_stats st = { 0 };
        struct cairn_lock *lock = NULL;
        char summary[256], a[32];
        bool wait = false;
        pid_t holder = 0;
        unsigned long pct;
        char *end;
        int c, k;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        if (!optarg) {
                                copt.read_data_pct = 100;
                                break;
                        }
                        errno = 0;
                        pct = strtoul(optarg, &end, 10);
                        if (end == optarg || (*end && !streq(end, "%")) || errno || pct < 1 || pct > 100)
                                return usage_error("check", "--read-data=N%%: expected a share from 1%% to 100%%, "
                                                   "got \"%s\"", optarg);
                        copt.read_data_pct = (unsigned) pct;
                        break;
                case 'w': wait = true; break;
                case 'h':
                        printf("Usage: cairn check [--read-data[=N%%]] [--wait] [--json] [-v]\n\n"
                               "Verify the repository's structure: every snapshot file and index row reads and\n"
                               "agrees; every tree, content and data blob every snapshot needs is in the index;\n"
                               "every pack the index names exists, has its recorded size, and its trailer parses\n"
                               "and lists each blob where the index says. --read-data also reads every pack in\n"
                               "full: each blob is decrypted and re-hashed, and the file's SHA-256 must be its\n"
                               "name; --read-data=N%% reads a random N%% of the packs (whole packs), so that e.g.\n"
                               "a weekly 15%% covers the repository in about two months.\n\n"
                               "Damage is reported as the problem (\"error: pack ...: blob ... fails its integrity\n"
                               "check\") and as every file of every snapshot it affects (\"damaged: JOB/TIME\n"
                               "(ID): PATH\"), on stderr. Silent when all is well; -v prints a summary.\n"
                               "Runs beside backups and mounts. It and prune exclude each other: a prune started\n"
                               "meanwhile exits with status 75 (or waits, with --wait), and so does a check\n"
                               "started during a prune.\n\n"
                               "Exit status: 0 no problem found; 1 damage found or the check failed; 75 locked.\n");
                        return EXIT_OK;
                default: return usage_error("check", "bad option");
                }
        }
        if (optind < argc)
                return usage_error("check", "unexpected argument \"%s\"", argv[optind]);
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        /* Shared: backups go on beside it; prune (exclusive) cannot move
         * or delete packs under it. */
        k = cairn_repo_lock(r, "repository", false, wait, NULL, &lock, &holder);
        if (k == -EBUSY) {
                log_error("The repository is being pruned (pid %d); try later or use --wait", (int) holder);
                return EXIT_LOCKED;
        }
        if (k < 0)
                return EXIT_FAIL;
        if (co.json) {
                co.problems = json_array();
                co.damaged = json_array();
        }
        k = cairn_repo_check(r, &copt, &st);
        cairn_lock_release(lock);

#define S_(n) ((n) == 1 ? "" : "s")
        snprintf(summary, sizeof summary, "check: %" PRIu64 " snapshot%s, %" PRIu64 " pack%s (%" PRIu64 " read, %s), %"
                 PRIu64 " blob%s, %" PRIu64 " error%s", st.snapshots, S_(st.snapshots), st.packs, S_(st.packs),
                 st.packs_read, human(st.bytes_read, a, sizeof a), st.blobs, S_(st.blobs), st.errors, S_(st.errors));
#undef S_
        if (st.damaged_paths > 0)
                snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "; %" PRIu64 " damaged "
                         "path%s in %" PRIu64 " snapshot%s", st.damaged_paths, st.damaged_paths == 1 ? "" : "s",
                         st.damaged_snapshots, st.damaged_snapshots == 1 ? "" : "s");
        if (k < 0 && k != -EBADMSG)
                snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "; the check did not finish");

        if (co.json) {
                json_t *j = json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
                                      "ok", k == 0, "finished", k == 0 || k == -EBADMSG,
                                      "read_data_pct", (json_int_t) copt.read_data_pct,
                                      "snapshots", (json_int_t) st.snapshots, "packs", (json_int_t) st.packs,
                                      "packs_read", (json_int_t) st.packs_read, "bytes_read", (json_int_t) st.bytes_read,
                                      "blobs", (json_int_t) st.blobs, "blobs_read", (json_int_t) st.blobs_read,
                                      "errors", (json_int_t) st.errors,
                                      "damaged_snapshots", (json_int_t) st.damaged_snapshots,
                                      "problems", co.problems, "damaged", co.damaged);
                json_dumpf(j, stdout, JSON_COMPACT);
                printf("\n");
                json_decref(j);
        } else if (k < 0)
                fprintf(stderr, "cairn: %s\n", summary);
        else if (o->verbosity >= 1)
                printf("%s\n", summary);
        return k < 0 ? EXIT_FAIL : EXIT_OK;
}

/* ---- mount ---- */

/* cairnfs next to this binary (installed: same directory; build tree:
 * ../fusefs/), else the configured install path, else $PATH. */
static char *find_cairnfs(void) {
        char self[PATH_MAX], path[PATH_MAX + 32];
        const char *env = getenv("CAIRNFS");
        ssize_t n;

        if (env && *env)
                return strdup(env);
        n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
                char *slash;
                self[n] = 0;
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        snprintf(path, sizeof path, "%s/cairnfs", self);
                        if (access(path, X_OK) == 0)
                                return strdup(path);
                        snprintf(path, sizeof path, "%s/../fusefs/cairnfs", self);
                        if (access(path, X_OK) == 0)
                                return strdup(path);
                }
        }
        if (access(CAIRNFS_PATH, X_OK) == 0)
                return strdup(CAIRNFS_PATH);
        return strdup("cairnfs");
}

/* @s with ',' and '\' escaped for a cairnfs -o list. */
static char *escape_option(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(2 * n + 1), *w = out;
        if (!out)
                return NULL;
        for (; *s; s++) {
                if (*s == ',' || *s == '\\')
                        *w++ = '\\';
                *w++ = *s;
        }
        *w = 0;
        return out;
}

static int cmd_mount(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "foreground", no_argument, NULL, 'f' },
                { "options", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static const char help[] =
                "Usage: cairn mount [-f] [-o OPTIONS] MOUNTPOINT\n"
                "\n"
                "Mount every snapshot of every job of the repository read-only at MOUNTPOINT:\n"
                "MOUNTPOINT/JOB/2026-11-21T01:00:00Z/... and MOUNTPOINT/JOB/latest.  Runs cairnfs\n"
                "with the repository and passphrase source of the config (or --repo and\n"
                "--password-file/--password-command, or $CAIRN_PASSWORD); see \"cairnfs --help\"\n"
                "for the tree and the mount options.\n"
                "\n"
                "  -f, --foreground      stay in the foreground until unmounted\n"
                "  -o, --options OPTS    cairnfs mount options, e.g. allow_other,cache_size=512\n"
                "\n"
                "Without -f it returns once the mount is up.  Unmount: fusermount3 -u MOUNTPOINT.\n"
                "Exit status: that of cairnfs: 0 mounted (or cleanly unmounted with -f), 1 error, 2 usage.\n";
        _cleanup_free_ char *cairnfs = NULL, *passopt = NULL, *opts = NULL;
        const char *user_opts = NULL;
        bool foreground = false;
        char *args[8];
        int c, n = 0;

        while ((c = getopt_long(argc, argv, "fo:h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'f': foreground = true; break;
                case 'o': user_opts = optarg; break;
                case 'h': fputs(help, stdout); return EXIT_OK;
                default: return usage_error("mount", "unknown option");
                }
        }
        if (optind + 1 != argc)
                return usage_error("mount", "give one MOUNTPOINT");

        if (!o->repo || (!o->pass_explicit && o->pass.kind == CAIRN_PASS_NONE)) {
                if (load_config(o, !o->repo) < 0)
                        return EXIT_FAIL;
        }
        if (!o->repo && o->config)
                o->repo = o->config->repo_path;
        if (!o->repo) {
                log_error("No repository: give --repo PATH, set $CAIRN_REPO, or a [repository] path in the config");
                return EXIT_FAIL;
        }
        if (o->pass.kind == CAIRN_PASS_NONE && o->config)
                o->pass = o->config->pass;

        /* cairnfs reads $CAIRN_PASSWORD itself; files and commands are passed on. */
        if (o->pass.kind == CAIRN_PASS_FILE || o->pass.kind == CAIRN_PASS_COMMAND) {
                _cleanup_free_ char *v = escape_option(o->pass.value);
                if (!v || asprintf(&passopt, "%s=%s", o->pass.kind == CAIRN_PASS_FILE ? "password_file" : "password_command", v) < 0)
                        return EXIT_FAIL;
        } else if (o->pass.kind == CAIRN_PASS_ENV && !streq(o->pass.value, "CAIRN_PASSWORD")) {
                const char *v = getenv(o->pass.value);
                if (v)
                        setenv("CAIRN_PASSWORD", v, 1);
        }
        if (asprintf(&opts, "%s%s%s", passopt ? passopt : "", passopt && user_opts ? "," : "", user_opts ? user_opts : "") < 0)
                return EXIT_FAIL;
        /* The passphrase must not leak in through an inherited variable
         * that names another source. */
        if (passopt) {
                unsetenv("CAIRN_PASSWORD_FILE");
                unsetenv("CAIRN_PASSWORD_COMMAND");
        }

        cairnfs = find_cairnfs();
        if (!cairnfs)
                return EXIT_FAIL;
        args[n++] = cairnfs;
        if (foreground)
                args[n++] = (char *) "-f";
        if (*opts) {
                args[n++] = (char *) "-o";
                args[n++] = opts;
        }
        args[n++] = (char *) o->repo;
        args[n++] = argv[optind];
        args[n] = NULL;
        fflush(stdout);
        execvp(cairnfs, args);
        log_error("Cannot run %s: %s (is cairnfs installed?)", cairnfs, strerror(errno));
        return EXIT_FAIL;
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*fn)(struct opts *o, int argc, char **argv);
        } commands[] = {
                { "init", cmd_init },         { "info", cmd_info },       { "backup", cmd_backup },
                { "run", cmd_run },           { "snapshots", cmd_snapshots }, { "ls", cmd_ls },
                { "restore", cmd_restore },   { "forget", cmd_forget },   { "prune", cmd_prune },
                { "index", cmd_index },       { "check", cmd_check },     { "mount", cmd_mount },
        };
        enum { OPT_PWFILE = 256, OPT_PWCMD, OPT_JSON, OPT_VERSION };
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "repo", required_argument, NULL, 'r' },
                { "password-file", required_argument, NULL, OPT_PWFILE },
                { "password-command", required_argument, NULL, OPT_PWCMD },
                { "json", no_argument, NULL, OPT_JSON },
                { "verbose", no_argument, NULL, 'v' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {}
        };
        struct opts o = { .repo = getenv("CAIRN_REPO"), .config_path = getenv("CAIRN_CONFIG") };
        int c, status;

        cairn_log_set_handler(log_to_stderr, NULL);
        if (o.config_path)
                o.config_explicit = true;
        else
                o.config_path = DEFAULT_CONFIG;
        if (getenv("CAIRN_PASSWORD_FILE"))
                o.pass = (struct cairn_pass_source) { CAIRN_PASS_FILE, getenv("CAIRN_PASSWORD_FILE") };
        else if (getenv("CAIRN_PASSWORD_COMMAND"))
                o.pass = (struct cairn_pass_source) { CAIRN_PASS_COMMAND, getenv("CAIRN_PASSWORD_COMMAND") };
        else if (getenv("CAIRN_PASSWORD"))
                o.pass = (struct cairn_pass_source) { CAIRN_PASS_ENV, "CAIRN_PASSWORD" };
        o.pass_explicit = o.pass.kind != CAIRN_PASS_NONE;

        /* Global options stop at the command ("+"); the command parses the rest. */
        while ((c = getopt_long(argc, argv, "+c:r:vqh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'c': o.config_path = optarg; o.config_explicit = true; break;
                case 'r': o.repo = optarg; break;
                case OPT_PWFILE: o.pass = (struct cairn_pass_source) { CAIRN_PASS_FILE, optarg }; o.pass_explicit = true; break;
                case OPT_PWCMD: o.pass = (struct cairn_pass_source) { CAIRN_PASS_COMMAND, optarg }; o.pass_explicit = true; break;
                case OPT_JSON: o.json = true; break;
                case 'v': o.verbosity++; break;
                case 'q': o.verbosity = -1; break;
                case 'h': fputs(usage_text, stdout); return EXIT_OK;
                case OPT_VERSION: printf("cairn %s\n", PACKAGE_VERSION); return EXIT_OK;
                default: fputs("Try \"cairn --help\".\n", stderr); return EXIT_USAGE;
                }
        }
        cairn_log_set_level(o.verbosity < 0 ? CAIRN_LOG_ERR : o.verbosity == 0 ? CAIRN_LOG_WARNING :
                            o.verbosity == 1 ? CAIRN_LOG_INFO : CAIRN_LOG_DEBUG);
        if (optind >= argc) {
                fputs(usage_text, stderr);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(argv[optind], commands[i].name))
                        continue;
                argc -= optind;
                argv += optind;
                /* --json, -v and -q work after the command name too. */
                int n = 1;
                for (int j = 1; j < argc; j++) {
                        if (streq(argv[j], "--json"))
                                o.json = true;
                        else if (streq(argv[j], "-v") || streq(argv[j], "--verbose"))
                                o.verbosity++;
                        else if (streq(argv[j], "-q") || streq(argv[j], "--quiet"))
                                o.verbosity = -1;
                        else
                                argv[n++] = argv[j];
                }
                argc = n;
                argv[argc] = NULL;
                cairn_log_set_level(o.verbosity < 0 ? CAIRN_LOG_ERR : o.verbosity == 0 ? CAIRN_LOG_WARNING :
                                    o.verbosity == 1 ? CAIRN_LOG_INFO : CAIRN_LOG_DEBUG);
                optind = 0;   /* glibc: 0 re-initializes getopt for the new argv */
                status = commands[i].fn(&o, argc, argv);
                bk_config_free(o.config);
                return status;
        }
        fprintf(stderr, "cairn: unknown command \"%s\"; try \"cairn --help\"\n", argv[optind]);
        return EXIT_USAGE;
}
