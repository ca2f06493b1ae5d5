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
#include "codec.h"
#include "conf.h"
#include "config.h"
#include "export.h"
#include "import.h"
#include "lmdb-index.h"
#include "alert.h"
#include "drill.h"
#include "log.h"
#include "ls.h"
#include "prune.h"
#include "repo.h"
#include "restore.h"
#include "retention.h"
#include "snapshot.h"
#include "state.h"
#include "status.h"
#include "sync.h"
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
        bool repo_newer;        /* its format is newer than ours: write nothing into it (no state/) */
};

static void log_to_stderr(int level, const char *msg, void *userdata) {
        bk_error_capture_note(level, msg);     /* what a failed job's state and alert say */
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
        "  import ARCHIVE... [--job NAME] [--time TIME]\n"
        "                                store tar/zip/... archives as snapshots (one each)\n"
        "  export SNAPSHOT[:PATH] [-o FILE] [--format pax|gnutar|zip]\n"
        "                                write a snapshot as an archive (default: pax, stdout)\n"
        "  forget [JOB...]               drop snapshots outside the jobs' keep-* rules\n"
        "  prune                         delete data no snapshot needs, repack sparse packs\n"
        "  check [--read-data[=N%]]      verify that every snapshot is complete and intact\n"
        "  index rebuild                 rebuild the index from packs and snapshot files\n"
        "  mount [-f] [-o OPTS] DIR      mount every snapshot read-only at DIR (runs cairnfs)\n"
        "  status [--textfile FILE] [--notify]\n"
        "                                fresh or stale, last results and drills of every job;\n"
        "                                Prometheus metrics, the daily summary alert\n"
        "  verify JOB [--exec SCRIPT] [--runtime bwrap|docker|podman] [--image IMAGE]\n"
        "                                a restore drill: SCRIPT run on JOB's latest snapshot\n"
        "                                in a sandbox or container\n"
        "  sync [--delete] [--verify] DEST\n"
        "                                copy packs, snapshots, config and keys offsite (DIR or\n"
        "                                rclone:REMOTE:PATH); --verify checks such a copy\n"
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
        "      --json                 machine-readable output (info, snapshots, ls, run, forget, prune, check, sync, import,\n"
        "                             status, verify)\n"
        "  -v, --verbose              say what happens (twice: debug)\n"
        "  -q, --quiet                only errors\n"
        "  -h, --help                 this text; \"cairn COMMAND --help\" for a command\n"
        "      --version              print the version\n"
        "\n"
        "Exit status: 0 success; 1 failure; 2 usage error; 3 done, but some snapshots are partial\n"
        "(files that could not be read or changed while read); 4 (status) a job is stale;\n"
        "75 another cairn holds the lock.\n";

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

/* The key cache lifetime: $CAIRN_KEY_CACHE, else the config's key-cache,
 * else the default (0).  The result is also left in $CAIRN_KEY_CACHE so
 * that cairnfs started by mount and verify uses the same. */
static int key_cache_setting(const struct opts *o, int *ret) {
        const char *e = getenv("CAIRN_KEY_CACHE");
        char buf[32];

        *ret = 0;
        if (e && *e) {
                if (cairn_key_cache_parse(e, ret) < 0)
                        return log_error_errno(-EINVAL, "$CAIRN_KEY_CACHE: \"%s\" is not \"off\" or a duration "
                                               "up to 30d (like 12h or 1d)", e);
                return 0;
        }
        if (o->config && o->config->pass.key_cache != 0) {
                *ret = o->config->pass.key_cache;
                snprintf(buf, sizeof buf, *ret < 0 ? "off" : "%d", *ret);
                setenv("CAIRN_KEY_CACHE", buf, 1);
        }
        return 0;
}

static int open_repo_as(struct opts *o, bool for_rebuild, struct cairn_repo **ret) {
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
        k = key_cache_setting(o, &pass.key_cache);
        if (k < 0)
                return k;
        o->pass = pass;
        k = for_rebuild ? cairn_repo_open_for_rebuild(o->repo, &pass, ret) : cairn_repo_open(o->repo, &pass, ret);
        if (k == -EPROTONOSUPPORT)
                o->repo_newer = true;
        return k;
}

static int open_repo(struct opts *o, struct cairn_repo **ret) {
        return open_repo_as(o, false, ret);
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
                { "segment-size", required_argument, NULL, 'S' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct cairn_repo_params p;
        unsigned long long seg;
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
                case 'S':
                        seg = strtoull(optarg, &end, 10);
                        if (end != optarg && (*end == 'k' || *end == 'K')) {
                                seg *= 1024;
                                end++;
                        }
                        if (end == optarg || *end || seg > UINT32_MAX || !cairn_codec_segment_size_valid((uint32_t) seg))
                                return usage_error("init", "--segment-size: expected 0 or a power of two from 16K to 8192K, "
                                                           "got \"%s\"", optarg);
                        p.segment_size = (uint32_t) seg;
                        break;
                case 'h':
                        printf("Usage: cairn init [--no-encryption] [--compression LEVEL] [--scrypt-n N] [--segment-size N]\n\n"
                               "Create the repository named by --repo, $CAIRN_REPO or the config. It is encrypted\n"
                               "with the passphrase (AES-256-GCM, scrypt) unless --no-encryption or the config's\n"
                               "\"encryption = no\". The directory must be new or empty.\n\n"
                               "--segment-size N  chunks larger than N bytes (N[K]; default 64K) are stored as\n"
                               "                  segments of N bytes, each compressed and authenticated alone,\n"
                               "                  so a random read through the mount decodes one segment, not\n"
                               "                  the whole chunk; 0 stores whole chunks (slightly smaller).\n");
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
        char idhex[33], segtext[32];
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
        snprintf(segtext, sizeof segtext, "%" PRIu32 " bytes", p->segment_size);
        if (o->json) {
                json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:i, s:i, s:{s:i, s:i, s:i}, s:I}", "path", o->repo, "id", idhex,
                                      "version", CAIRN_FORMAT_VERSION, "encryption", p->encrypted ? "aes-256-gcm" : "none",
                                      "compression_level", p->zstd_level, "segment_size", (int) p->segment_size,
                                      "chunker", "min", (int) p->chunker.min_size,
                                      "avg", (int) p->chunker.avg_size, "max", (int) p->chunker.max_size,
                                      "snapshots", (json_int_t) n);
                json_dumpf(j, stdout, JSON_COMPACT);
                printf("\n");
                json_decref(j);
        } else
                printf("repository  %s\nid          %s\nformat      %d\nencryption  %s\ncompression zstd level %d\n"
                       "chunks      %u / %u / %u bytes (min / avg / max)\nsegments    %s\nsnapshots   %zu\n",
                       o->repo, idhex, CAIRN_FORMAT_VERSION, p->encrypted ? "AES-256-GCM (key unlocked)" : "none",
                       p->zstd_level, p->chunker.min_size, p->chunker.avg_size, p->chunker.max_size,
                       p->segment_size ? segtext : "none (whole chunks)", n);
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

/* ---- results: state, alerts, metrics (state.h, alert.h, status.h) ---- */

/* A webhook alert, when the config has a webhook.  Never changes a result. */
static void send_alert(struct opts *o, const char *event, const char *job, const char *status, const char *message) {
        struct bk_alert a = { .event = event, .job = job, .status = status, .message = message };

        if (o->config && o->config->webhook)
                (void) bk_alert_send(o->config->webhook, &a);
}

/* Record a backup's result in REPO/state/ and alert on anything but a
 * success.  Returns true when it sent (or would have sent) an alert. */
static bool record_backup(struct opts *o, const char *job, const struct job_result *res, int64_t start_ns) {
        _cleanup_free_ char *first = bk_error_capture_first(), *msg = NULL;
        struct bk_run run = { .start_ns = start_ns, .end_ns = now_ns() };

        if (res->status == EXIT_LOCKED)
                return false;   /* the run holding the lock records its own result */
        if (res->snap) {
                run.start_ns = res->snap->start_ns;
                run.end_ns = res->snap->end_ns;
                run.bytes = res->snap->bytes;
                run.added_bytes = res->snap->added_bytes;
                hex_encode(res->id, CAIRN_ID_SIZE, run.snapshot);
        }
        if (res->status == EXIT_OK)
                run.result = BK_RESULT_OK;
        else if (res->status == EXIT_PARTIAL && res->snap) {
                run.result = BK_RESULT_PARTIAL;
                if (res->snap->n_errors > 0 &&
                    asprintf(&msg, "%zu warning%s, first %s: %s", res->snap->n_errors, res->snap->n_errors == 1 ? "" : "s",
                             res->snap->errors[0].path, res->snap->errors[0].reason) < 0)
                        msg = NULL;
        } else {
                run.result = BK_RESULT_FAILED;
                msg = TAKE_PTR(first);
        }
        run.message = msg ? msg : run.result == BK_RESULT_OK ? NULL : (char *) "see the log of the run";
        /* A repository of a newer format is left as it is: its state/
         * may mean something else there.  The alert still goes out. */
        if (o->repo && !o->repo_newer)
                (void) bk_state_record(o->repo, job, BK_STATE_BACKUP, &run);
        if (run.result == BK_RESULT_OK)
                return false;
        send_alert(o, "backup", job, bk_result_name(run.result), run.message);
        return true;
}

/* One stale alert per stale stretch of a job (keyed by its last
 * success), unless @skip[i] (the job was alerted about just now) or
 * @mark_only (the summary says it): then it is only marked as told. */
static void alert_stale(struct opts *o, const struct bk_status *st, const bool *skip, bool mark_only) {
        if (!o->config || !o->config->webhook || !o->repo)
                return;
        for (size_t i = 0; i < st->n_jobs; i++) {
                const struct bk_job_status *js = &st->jobs[i];
                _cleanup_free_ char *msg = NULL;
                char when[32], age[32], max[32];

                if (!js->stale || (js->state.stale_alerted && js->state.stale_alerted_for == js->last_success_ns))
                        continue;
                if (!mark_only && !(skip && skip[i])) {
                        bk_format_age((int64_t) js->job->max_age_s, max, sizeof max);
                        if (js->last_success_ns <= 0)
                                msg = strdup("no successful backup yet");
                        else {
                                bk_format_age((st->now_ns - js->last_success_ns) / 1000000000, age, sizeof age);
                                if (asprintf(&msg, "no successful backup since %s (%s ago; max-age %s)",
                                             cairn_time_format(js->last_success_ns, when, sizeof when), age, max) < 0)
                                        msg = NULL;
                        }
                        send_alert(o, "stale", js->job->name, "stale", msg);
                }
                (void) bk_state_mark_stale_alerted(o->repo, js->job->name, js->last_success_ns);
        }
}

/* After a backup, run, check or drill: the config's textfile (and,
 * with @stale_alerts, the stale alerts; @skip as alert_stale).  Only
 * warnings: the metrics never change the run's result. */
static void after_run(struct opts *o, struct cairn_repo *r, bool stale_alerts, const bool *skip) {
        _cleanup_(bk_status_freep) struct bk_status *st = NULL;

        if (!r || !o->config || !o->repo || (!o->config->textfile && !(stale_alerts && o->config->webhook)))
                return;
        if (bk_status_collect(o->config, o->repo, r, &st) < 0)
                return;
        if (o->config->textfile)
                (void) bk_status_write_textfile(st, o->config->textfile);
        if (stale_alerts)
                alert_stale(o, st, skip, false);
}

static int run_config_drills(struct opts *o, struct cairn_repo *r, json_t *list);

struct backup_args {
        char **excludes, **paths;      /* malloc'd arrays; paths[] entries malloc'd */
        size_t n_excludes, n_paths;
};

static int cmd_backup_args(struct opts *o, int argc, char **argv, struct backup_args *a);

static int cmd_backup(struct opts *o, int argc, char **argv) {
        struct backup_args a = { 0 };
        int status = cmd_backup_args(o, argc, argv, &a);

        for (size_t i = 0; i < a.n_paths; i++)
                free(a.paths[i]);
        free(a.paths);
        free(a.excludes);
        return status;
}

static int cmd_backup_args(struct opts *o, int argc, char **argv, struct backup_args *a) {
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
        bool wait = false, one_fs = false;
        const char *name = NULL;
        json_t *list;
        int64_t start_ns;
        int c;

        while ((c = getopt_long(argc, argv, "+xh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'j': name = optarg; break;
                case 'e': {
                        char **e = realloc(a->excludes, (a->n_excludes + 1) * sizeof *e);
                        if (!e)
                                return EXIT_FAIL;
                        a->excludes = e;
                        a->excludes[a->n_excludes++] = optarg;
                        break;
                }
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
                a->paths = calloc((size_t) (argc - optind), sizeof *a->paths);
                if (!a->paths)
                        return EXIT_FAIL;
                for (int i = optind; i < argc; i++) {
                        char *abs = realpath(argv[i], NULL);
                        if (!abs) {
                                log_error_errno(-errno, "job \"%s\": source %s: %m", name, argv[i]);
                                return EXIT_FAIL;
                        }
                        a->paths[a->n_paths++] = abs;
                }
                adhoc.name = (char *) name;
                adhoc.paths = a->paths;
                adhoc.n_paths = a->n_paths;
                adhoc.excludes = a->excludes;
                adhoc.n_excludes = a->n_excludes;
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
        bk_error_capture_reset();
        start_ns = now_ns();
        if (open_repo(o, &r) < 0) {
                res.status = EXIT_FAIL;
                (void) record_backup(o, job->name, &res, start_ns);
                return EXIT_FAIL;
        }
        list = json_array();
        run_job(o, r, job, wait, &res);
        report_job(o, job->name, &res, list);
        (void) record_backup(o, job->name, &res, start_ns);
        after_run(o, r, false, NULL);
        if (o->json) {
                json_dumpf(json_array_get(list, 0), stdout, JSON_COMPACT);
                printf("\n");
        }
        json_decref(list);
        cairn_snapshot_free(res.snap);
        return res.status;
}

static int cmd_run(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "wait", no_argument, NULL, 'w' },
                { "drills", no_argument, NULL, 'D' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        json_t *list = json_array();
        bool wait = false, drills = false, *alerted = NULL;
        int c, status = EXIT_OK;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'w': wait = true; break;
                case 'D': drills = true; break;
                case 'h':
                        printf("Usage: cairn run [--wait] [--drills] [-v] [--json]\n\n"
                               "Back up every job of the config, one after another: the cron entry point\n"
                               "(e.g. \"0 1 * * * root cairn run\"). Silent when everything succeeds; -v prints a\n"
                               "line per job. A failed job does not stop the others.\n\n"
                               "Each result is recorded in REPO/state/ (see \"cairn status\"); a failed or partial\n"
                               "job is a webhook alert (the config's [status] webhook), and so is a job found\n"
                               "stale afterwards (once until it succeeds again); [status] textfile is refreshed.\n"
                               "--drills then runs the restore drill of every job with \"drill = SCRIPT\" on its\n"
                               "latest snapshot (one temporary mount for all; see \"cairn verify\").\n\n"
                               "Exit status: 0 all jobs succeeded; 1 some job (or drill) failed; 3 none failed but\n"
                               "some snapshots are partial; 75 some job was already running (see --wait).\n");
                        return EXIT_OK;
                default: return usage_error("run", "bad option");
                }
        }
        if (optind < argc)
                return usage_error("run", "unexpected argument \"%s\" (\"cairn backup JOB\" runs one job)", argv[optind]);
        if (load_config(o, true) < 0)
                return EXIT_FAIL;
        bk_error_capture_reset();
        if (open_repo(o, &r) < 0) {
                /* No job can run tonight: each one's state and alert say why. */
                for (size_t i = 0; i < o->config->n_jobs; i++) {
                        struct job_result res = { .status = EXIT_FAIL };
                        (void) record_backup(o, o->config->jobs[i].name, &res, now_ns());
                }
                return EXIT_FAIL;
        }
        alerted = calloc(o->config->n_jobs + 1, sizeof *alerted);
        for (size_t i = 0; i < o->config->n_jobs; i++) {
                struct job_result res = { 0 };
                int64_t start_ns = now_ns();

                bk_error_capture_reset();
                run_job(o, r, &o->config->jobs[i], wait, &res);
                report_job(o, o->config->jobs[i].name, &res, list);
                if (record_backup(o, o->config->jobs[i].name, &res, start_ns) && alerted)
                        alerted[i] = true;
                status = combine(status, res.status);
                cairn_snapshot_free(res.snap);
        }
        if (drills) {
                /* With --json, each job's entry gets its drill's result. */
                json_t *results = o->json ? json_array() : NULL;
                size_t i, k;
                json_t *d, *j;

                status = combine(status, run_config_drills(o, r, results));
                json_array_foreach(results, i, d)
                        json_array_foreach(list, k, j)
                                if (json_equal(json_object_get(j, "job"), json_object_get(d, "job")))
                                        json_object_set(j, "drill", d);
                json_decref(results);
        }
        after_run(o, r, true, alerted);
        free(alerted);
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
        struct list_ctx c = { .json = o->json };
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
        /* Made only now: an early return must not leak it (LeakSanitizer). */
        c.list = json_array();
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

/* ---- import, export ---- */

static int import_exit(enum bk_import_status s) {
        switch (s) {
        case BK_IMPORT_OK:
        case BK_IMPORT_SKIPPED: return EXIT_OK;
        case BK_IMPORT_PARTIAL: return EXIT_PARTIAL;
        case BK_IMPORT_LOCKED: return EXIT_LOCKED;
        default: return EXIT_FAIL;
        }
}

static const char *import_status_name(enum bk_import_status s) {
        static const char *const names[] = {
                [BK_IMPORT_OK] = "ok", [BK_IMPORT_PARTIAL] = "partial", [BK_IMPORT_SKIPPED] = "skipped",
                [BK_IMPORT_FAILED] = "failed", [BK_IMPORT_LOCKED] = "locked",
        };
        return names[s];
}

static void report_import(struct opts *o, const struct bk_import_item *it, const struct bk_import_result *res,
                          json_t *list) {
        char hex[65], when[32], a[32], bb[32], cc[32];
        bool have_id = res->status == BK_IMPORT_OK || res->status == BK_IMPORT_PARTIAL ||
                       res->status == BK_IMPORT_SKIPPED;

        if (res->time_ns)
                cairn_time_format(res->time_ns, when, sizeof when);
        else
                snprintf(when, sizeof when, "now");
        if (o->json) {
                json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "archive", it->archive, "job", it->job, "time", when,
                                      "status", import_status_name(res->status));
                if (have_id)
                        json_object_set_new(j, "snapshot", json_string(hex_encode(res->id, CAIRN_ID_SIZE, hex)));
                if (res->snap) {
                        json_object_set_new(j, "start_ns", json_integer((json_int_t) res->snap->start_ns));
                        json_object_set_new(j, "files", json_integer((json_int_t) res->snap->files));
                        json_object_set_new(j, "dirs", json_integer((json_int_t) res->snap->dirs));
                        json_object_set_new(j, "bytes", json_integer((json_int_t) res->snap->bytes));
                        json_object_set_new(j, "added_bytes", json_integer((json_int_t) res->snap->added_bytes));
                        json_object_set_new(j, "stored_bytes", json_integer((json_int_t) res->snap->stored_bytes));
                        json_object_set_new(j, "warnings", json_integer((json_int_t) res->snap->n_errors));
                }
                json_array_append_new(list, j);
                return;
        }
        if (o->verbosity < 1 || !res->snap)
                return;
        printf("%s: %s/%s %s, snapshot %.8s: %" PRIu64 " files, %s, %s new (%s stored)%s\n", it->archive, it->job,
               when, import_status_name(res->status), hex_encode(res->id, CAIRN_ID_SIZE, hex), res->snap->files,
               human(res->snap->bytes, a, sizeof a), human(res->snap->added_bytes, bb, sizeof bb),
               human(res->snap->stored_bytes, cc, sizeof cc), res->snap->n_errors ? " (see warnings)" : "");
}

static int cmd_import(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "job", required_argument, NULL, 'j' },
                { "time", required_argument, NULL, 't' },
                { "local-time", no_argument, NULL, 'l' },
                { "directory", required_argument, NULL, 'd' },
                { "wait", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static const char help[] =
                "Usage: cairn import [--job NAME] [--time TIME] [--local-time] [--directory DIR] [--wait]\n"
                "                    [--json] ARCHIVE...\n"
                "\n"
                "Store each archive (a file, or - for stdin) as one snapshot, the way a tar-command\n"
                "source stores its stream: a browsable tree with the archive's modes, owners, ns\n"
                "times, symlinks, hard links, devices, fifos, xattrs and ACLs, sparse files, as far\n"
                "as the format has them. Formats: tar (ustar, pax, GNU; plain or compressed with\n"
                "gzip, bzip2, xz, zstd, lz4, ...), zip, 7-Zip, cpio, ISO 9660, RAR, xar, LHA, CAB.\n"
                "A zip or 7-Zip archive on a pipe is first copied to a temporary file ($TMPDIR, else\n"
                "/var/tmp): its modes and symlinks are in its directory at the end.\n"
                "\n"
                "  --job NAME        the job; default: SERVICE of an archive named\n"
                "                    SERVICE_YYYYMMDD_HHMMSS.EXT (grafana_20250101_020000.tar.gz\n"
                "                    is job \"grafana\" at 2025-01-01T02:00:00Z)\n"
                "  --time TIME       the snapshot's time, for one archive: 2026-11-21T01:00:00Z\n"
                "                    (UTC) or 20261121_010000. Default: the time in the name, else\n"
                "                    the file's mtime, else (stdin) now\n"
                "  --local-time      YYYYMMDD_HHMMSS (in names and --time) is local time, not UTC\n"
                "  --directory DIR   put the archive's tree at DIR in the snapshot (like the\n"
                "                    \"directory\" of a tar-command job); default: the root\n"
                "  --wait            wait for a running backup of the job instead of exit status 75\n"
                "\n"
                "Archives are imported oldest first, each with the locks \"cairn backup\" takes.\n"
                "Importing again: an archive whose job already has a snapshot at exactly its time is\n"
                "taken to be imported before and is skipped with a warning, so the same import can\n"
                "be run again over a directory of archives and adds only the new ones (any data\n"
                "stored twice would be deduplicated anyway).\n"
                "\n"
                "Hostile entries are handled as for tar-command: \"..\" paths, names over 255 bytes,\n"
                "paths through a symlink or a file, and hard links to nowhere are left out with a\n"
                "warning naming them (the snapshot is partial); absolute paths are kept inside the\n"
                "snapshot; symlink targets are stored as they are, never followed.\n"
                "A damaged, truncated or unrecognized archive is an error naming the archive and\n"
                "the entry where it went wrong, and records no snapshot (data already stored is\n"
                "freed by the next prune); the other archives are still imported.\n"
                "\n"
                "--json prints one object per archive: archive, job, time, status (ok, partial,\n"
                "skipped, failed, locked) and, for a snapshot made, its id and totals; -v a line each.\n"
                "\n"
                "Exit status: 0 every archive imported or skipped; 1 some archive failed; 3 none\n"
                "failed but some snapshot is partial; 2 usage; 75 a lock was held (see --wait).\n";
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct bk_import_options io = { .progress = o->verbosity >= 0 && isatty(2) && !o->json };
        struct bk_import_item *items = NULL;
        const char *job = NULL, *when = NULL;
        bool local = false;
        size_t n = 0;
        json_t *list;
        int c, k, status = EXIT_OK;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'j': job = optarg; break;
                case 't': when = optarg; break;
                case 'l': local = true; break;
                case 'd': io.dir = optarg; break;
                case 'w': io.wait = true; break;
                case 'h': fputs(help, stdout); return EXIT_OK;
                default: return usage_error("import", "bad option");
                }
        }
        if (optind >= argc)
                return usage_error("import", "give at least one ARCHIVE (- for stdin)");
        k = bk_import_plan(argv + optind, (size_t) (argc - optind), job, when, local, &items, &n);
        if (k == -EINVAL)
                return usage_error("import", "nothing was imported");
        if (k < 0) {
                log_error("Nothing was imported");
                return EXIT_FAIL;
        }
        if (open_repo(o, &r) < 0) {
                bk_import_items_free(items, n);
                return EXIT_FAIL;
        }
        list = json_array();
        for (size_t i = 0; i < n; i++) {
                struct bk_import_result res;

                k = bk_import_one(r, &items[i], &io, &res);
                if (k < 0) {
                        log_error_errno(k, "Import stopped: %m");
                        status = EXIT_FAIL;
                        break;
                }
                report_import(o, &items[i], &res, list);
                status = combine(status, import_exit(res.status));
                cairn_snapshot_free(res.snap);
        }
        if (o->json) {
                json_dumpf(list, stdout, JSON_COMPACT);
                printf("\n");
        }
        json_decref(list);
        bk_import_items_free(items, n);
        return status;
}

static int cmd_export(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "output", required_argument, NULL, 'o' },
                { "format", required_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static const char help[] =
                "Usage: cairn export SNAPSHOT[:PATH] [-o FILE|-] [--format pax|gnutar|zip]\n"
                "\n"
                "Write the snapshot, or PATH inside it, as an archive to FILE or (default, or -o -)\n"
                "to stdout, reading it through the index. Entries are named as \"cairn restore\" would\n"
                "create them: the snapshot's top-level names, or PATH's last component and what is\n"
                "below it. Nothing is compressed: pipe it through gzip or zstd.\n"
                "\n"
                "  -o, --output FILE   the archive; replaced only once complete, mode 0600\n"
                "  -f, --format F      one of:\n"
                "      pax             (default) everything cairn stores: ns times, owners (ids,\n"
                "                      and names known here), xattrs, POSIX ACLs, hard links,\n"
                "                      symlinks, devices, fifos, sparse files, empty directories;\n"
                "                      extract with \"tar --xattrs --acls -xpf\" (GNU tar restores\n"
                "                      only user.* xattrs unless given --xattrs-include='*') or bsdtar\n"
                "      gnutar          the same without xattrs, ACLs, sub-second times and holes\n"
                "                      (sparse files are stored in full)\n"
                "      zip             files, directories, symlinks, modes, owners, times in whole\n"
                "                      seconds; hard links as copies; no devices, fifos, xattrs, ACLs\n"
                "An entry the format cannot hold (a socket; in zip a device or fifo) is skipped with\n"
                "a warning. A running prune is waited for; prune waits for (or, without --wait,\n"
                "leaves) a running export.\n"
                "\n"
                "If data cannot be read (a damaged or missing chunk) the export fails naming the path:\n"
                "FILE is then neither created nor changed, and an archive on stdout is left without\n"
                "its end and with a last block that makes tar and unzip fail, never as a shorter\n"
                "archive that looks whole. -v prints a summary on stderr.\n"
                "\n"
                "Exit status: 0 written; 1 failed; 2 usage.\n";
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        enum bk_export_format format = BK_EXPORT_PAX;
        struct bk_export_stats st = { 0 };
        struct cairn_lock *lock = NULL;
        const char *out = NULL, *path;
        uint8_t id[CAIRN_ID_SIZE];
        pid_t holder = 0;
        char a[32];
        int c, k;

        while ((c = getopt_long(argc, argv, "o:f:h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'o': out = optarg; break;
                case 'f':
                        if (bk_export_format_parse(optarg, &format) < 0)
                                return usage_error("export", "--format: pax, gnutar or zip, not \"%s\"", optarg);
                        break;
                case 'h': fputs(help, stdout); return EXIT_OK;
                default: return usage_error("export", "bad option");
                }
        }
        if (optind + 1 != argc)
                return usage_error("export", "give one SNAPSHOT[:PATH]");
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k < 0 || resolve_arg(t, argv[optind], &s, id, &path) < 0)
                return EXIT_FAIL;
        cairn_index_txn_abort(TAKE_PTR(t));
        /* As a backup reads the repository: shared, so that no prune
         * deletes packs under a long export; a running prune is waited for. */
        k = cairn_repo_lock(r, "repository", false, false, NULL, &lock, &holder);
        if (k == -EBUSY) {
                log_info("Waiting for the prune of process %d to finish", (int) holder);
                k = cairn_repo_lock(r, "repository", false, true, NULL, &lock, &holder);
        }
        if (k < 0)
                return EXIT_FAIL;
        k = bk_export(r, s->root, path, format, out, &st);
        cairn_lock_release(lock);
        if (k < 0)
                return EXIT_FAIL;
        if (o->verbosity >= 1)
                fprintf(stderr, "exported %" PRIu64 " files, %" PRIu64 " directories, %" PRIu64 " symlinks, %" PRIu64
                        " others, %s of data%s%s%s\n", st.files, st.dirs, st.symlinks, st.others,
                        human(st.bytes, a, sizeof a), out && !streq(out, "-") ? " to " : "",
                        out && !streq(out, "-") ? out : "", st.skipped ? " (some entries skipped, see above)" : "");
        return EXIT_OK;
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
        json_t *out = NULL;
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
        out = json_array();
        if (!dry_run && acquire_exclusive(o, r, "forget", wait, &lock) < 0) {
                json_decref(out);
                return EXIT_LOCKED;
        }
        /* A forget or backup that died between a snapshot's file and its
         * row left a file without a row: give it its row back, so that the
         * keep rules see it (an interrupted forget is then finished). */
        if (!dry_run && cairn_snapshot_adopt_orphans(r, NULL) < 0) {
                cairn_lock_release(lock);
                json_decref(out);
                return EXIT_FAIL;
        }

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
        /* A damaged index is what a rebuild is for: it must not stop it. */
        if (open_repo_as(o, true, &r) < 0)
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
        int64_t check_start;
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
        bk_error_capture_reset();
        check_start = now_ns();
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

        {
                _cleanup_free_ char *first = k < 0 ? bk_error_capture_first() : NULL, *msg = NULL;
                struct bk_run run = { .result = k < 0 ? BK_RESULT_FAILED : BK_RESULT_OK, .start_ns = check_start,
                                      .end_ns = now_ns(), .message = summary };

                if (first && asprintf(&msg, "%s (%s)", first, summary) >= 0)
                        run.message = msg;
                (void) bk_state_record(o->repo, NULL, BK_STATE_CHECK, &run);
                if (k < 0)
                        send_alert(o, "check", NULL, "failed", run.message);
                after_run(o, r, false, NULL);
        }
        return k < 0 ? EXIT_FAIL : EXIT_OK;
}

/* ---- sync ---- */

static void sync_on_problem(const struct cairn_copy_problem *p, void *userdata) {
        json_t *list = userdata, *j;
        char hex[65];

        /* The library has logged it; only --json collects it. */
        if (!list)
                return;
        j = json_pack("{s:s, s:s}", "error", p->error == -ENOENT ? "missing" : "damaged", "message", p->message);
        if (p->file)
                json_object_set_new(j, "file", json_string(p->file));
        if (p->snapshot)
                json_object_set_new(j, "snapshot", json_string(hex_encode(p->snapshot, CAIRN_ID_SIZE, hex)));
        json_array_append_new(list, j);
}

static int sync_verify(struct opts *o, struct cairn_repo *r, const char *dest) {
        json_t *problems = o->json ? json_array() : NULL;
        struct cairn_copy_verify_options vo = { .on_problem = sync_on_problem, .userdata = problems };
        struct cairn_copy_verify_stats st = { 0 };
        char summary[512];
        int k;

        k = bk_sync_verify(r, dest, &vo, &st);
        snprintf(summary, sizeof summary, "verify %s: %" PRIu64 " snapshot%s (%" PRIu64 " incomplete), %" PRIu64
                 " pack%s (%" PRIu64 " missing), %" PRIu64 " blobs, %" PRIu64 " error%s; the repository has %" PRIu64
                 " snapshot%s, %" PRIu64 " not at the copy", dest, st.snapshots, st.snapshots == 1 ? "" : "s",
                 st.incomplete_snapshots, st.packs, st.packs == 1 ? "" : "s", st.missing_packs, st.blobs, st.errors,
                 st.errors == 1 ? "" : "s", st.source_snapshots, st.source_snapshots == 1 ? "" : "s", st.behind);
        if (k < 0 && k != -EBADMSG)
                snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "; the verification did not finish");
        if (o->json) {
                json_t *j = json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "dest", dest,
                                      "ok", k == 0, "finished", k == 0 || k == -EBADMSG,
                                      "snapshots", (json_int_t) st.snapshots,
                                      "incomplete_snapshots", (json_int_t) st.incomplete_snapshots,
                                      "packs", (json_int_t) st.packs, "missing_packs", (json_int_t) st.missing_packs,
                                      "blobs", (json_int_t) st.blobs, "errors", (json_int_t) st.errors,
                                      "source_snapshots", (json_int_t) st.source_snapshots,
                                      "behind", (json_int_t) st.behind, "problems", problems);
                json_dumpf(j, stdout, JSON_COMPACT);
                printf("\n");
                json_decref(j);
        } else if (k < 0)
                fprintf(stderr, "cairn: %s\n", summary);
        else if (o->verbosity >= 1)
                printf("%s\n", summary);
        return k == -EBUSY ? EXIT_LOCKED : k < 0 ? EXIT_FAIL : EXIT_OK;
}

static int cmd_sync(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "delete", no_argument, NULL, 'd' },
                { "verify", no_argument, NULL, 'V' },
                { "dry-run", no_argument, NULL, 'n' },
                { "wait", no_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct bk_sync_options so = { .out = stdout };
        struct bk_sync_stats st = { 0 };
        struct cairn_lock *lock = NULL;
        bool verify = false, wait = false;
        const char *dest;
        pid_t holder = 0;
        char a[32], bb[32];
        int c, k;

        while ((c = getopt_long(argc, argv, "nh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'd': so.delete_gone = true; break;
                case 'V': verify = true; break;
                case 'n': so.dry_run = true; break;
                case 'w': wait = true; break;
                case 'h':
                        printf("Usage: cairn sync [--delete] [--dry-run] [--wait] [--json] [-v] DEST\n"
                               "       cairn sync --verify [--wait] [--json] [-v] DEST\n\n"
                               "Copy what never changes in the repository (config, keys/, packs/ and snapshots/;\n"
                               "never index/, which holds plaintext names, nor locks/) to DEST: a local directory,\n"
                               "or rclone:REMOTE:PATH through rclone (e.g. rclone:offsite:backups/cairn). Config\n"
                               "and keys go first, then packs, then the snapshot files that need them, so a sync\n"
                               "interrupted at any point leaves a copy whose every snapshot is whole. Files already\n"
                               "at DEST with the same size are skipped. DEST must be empty or a copy of this\n"
                               "repository. --delete then removes from DEST the snapshot files, then the packs,\n"
                               "that the repository no longer has (after forget and prune). --dry-run lists what\n"
                               "would be copied and deleted, and changes nothing.\n\n"
                               "--verify copies nothing: it proves that DEST holds everything its snapshots need.\n"
                               "A local copy is read itself (snapshot files, pack trailers, trees, contents); an\n"
                               "rclone copy is listed, and every pack that the repository's index says its\n"
                               "snapshots need must be there with the right size. What is missing is named.\n\n"
                               "From a copy alone: \"cairn --repo COPY index rebuild\", then \"cairn --repo COPY\n"
                               "check --read-data\", then mount or restore as usual (the passphrase is needed).\n\n"
                               "Silent on success; -v lists each file copied or deleted and a summary. Holds the\n"
                               "repository lock shared, like check: backups run beside it; prune waits for it,\n"
                               "and a sync started during a prune exits with status 75 (or waits, with --wait).\n\n"
                               "Exit status: 0 done (or verified); 1 failure, or --verify found something missing;\n"
                               "2 usage error; 75 locked (a prune, or another sync to the same local DEST).\n");
                        return EXIT_OK;
                default: return usage_error("sync", "bad option");
                }
        }
        if (optind + 1 != argc)
                return usage_error("sync", optind >= argc ? "give the DEST to copy to (a directory or "
                                                            "rclone:REMOTE:PATH)" : "one DEST at a time");
        dest = argv[optind];
        if (!*dest)
                return usage_error("sync", "DEST is empty");
        if (verify && (so.delete_gone || so.dry_run))
                return usage_error("sync", "--verify copies and deletes nothing: give it alone (then sync "
                                           "separately)");
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        /* Shared: backups go on beside it; prune (exclusive) cannot delete
         * packs under the copy. */
        k = cairn_repo_lock(r, "repository", false, wait, NULL, &lock, &holder);
        if (k == -EBUSY) {
                log_error("The repository is being pruned (pid %d); try later or use --wait", (int) holder);
                return EXIT_LOCKED;
        }
        if (k < 0)
                return EXIT_FAIL;
        if (verify) {
                int status = sync_verify(o, r, dest);
                cairn_lock_release(lock);
                return status;
        }
        so.list = !o->json && (o->verbosity >= 1 || (so.dry_run && o->verbosity >= 0));
        so.rclone_verbosity = o->verbosity;
        k = bk_sync(r, dest, &so, &st);
        cairn_lock_release(lock);
        if (o->json) {
                json_t *j = json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I}", "dest", dest, "ok", k >= 0,
                                      "dry_run", so.dry_run, "copied", (json_int_t) st.copied,
                                      "bytes", (json_int_t) st.bytes, "skipped", (json_int_t) st.skipped,
                                      "deleted", (json_int_t) st.deleted, "deleted_bytes", (json_int_t) st.deleted_bytes);
                json_dumpf(j, stdout, JSON_COMPACT);
                printf("\n");
                json_decref(j);
        } else if (o->verbosity >= 1 || (so.dry_run && o->verbosity >= 0))
                printf("sync %s: %s %" PRIu64 " file%s (%s), %" PRIu64 " already there, %s %" PRIu64 " (%s)%s\n", dest,
                       so.dry_run ? "would copy" : "copied", st.copied, st.copied == 1 ? "" : "s",
                       human(st.bytes, a, sizeof a), st.skipped, so.dry_run ? "would delete" : "deleted", st.deleted,
                       human(st.deleted_bytes, bb, sizeof bb), k < 0 ? "; stopped by an error" : "");
        return k == -EBUSY ? EXIT_LOCKED : k < 0 ? EXIT_FAIL : EXIT_OK;
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
        if (key_cache_setting(o, &o->pass.key_cache) < 0)
                return EXIT_FAIL;

        /* cairnfs reads $CAIRN_PASSWORD and $CAIRN_KEY_CACHE itself; files and commands are passed on. */
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

/* ---- status, verify (status.h, drill.h) ---- */

/* The -o options that hand cairnfs our passphrase source, as cmd_mount
 * does: a file or command is passed on, $CAIRN_PASSWORD is inherited.
 * *ret malloc'd ("" when there is nothing to pass). */
static int cairnfs_pass_options(struct opts *o, char **ret) {
        _cleanup_free_ char *v = NULL;

        if (o->pass.kind == CAIRN_PASS_NONE && o->config)
                o->pass = o->config->pass;
        if (key_cache_setting(o, &o->pass.key_cache) < 0)
                return -EINVAL;
        if (o->pass.kind == CAIRN_PASS_FILE || o->pass.kind == CAIRN_PASS_COMMAND) {
                v = escape_option(o->pass.value);
                if (!v || asprintf(ret, "%s=%s", o->pass.kind == CAIRN_PASS_FILE ? "password_file" : "password_command",
                                   v) < 0)
                        return -ENOMEM;
                /* cairnfs must not find another source in its environment.
                 * (glibc keeps the strings, so o->pass stays valid.) */
                unsetenv("CAIRN_PASSWORD_FILE");
                unsetenv("CAIRN_PASSWORD_COMMAND");
                return 0;
        }
        if (o->pass.kind == CAIRN_PASS_ENV && !streq(o->pass.value, "CAIRN_PASSWORD")) {
                const char *e = getenv(o->pass.value);
                if (e)
                        setenv("CAIRN_PASSWORD", e, 1);
        }
        *ret = strdup("");
        return *ret ? 0 : -ENOMEM;
}

static char *absolute_path(const char *p) {
        char cwd[PATH_MAX], *r = realpath(p, NULL);

        if (r || p[0] == '/')
                return r ? r : strdup(p);
        if (!getcwd(cwd, sizeof cwd) || asprintf(&r, "%s/%s", cwd, p) < 0)
                return strdup(p);
        return r;
}

struct drill_args {
        const char *exec, *runtime, *image, *user;
        uint64_t timeout_s;             /* 0: the config's, or the default */
};

/* The drill of job @name: the command line's choices over the config's
 * (@job, may be NULL).  The config's image goes with the config's
 * runtime only.  *ret_script: malloc'd absolute path. */
static int drill_spec(const struct bk_job *job, const char *name, const struct drill_args *a, struct bk_drill_spec *spec,
                      char **ret_script) {
        const char *runtime = a->runtime ? a->runtime : job && job->drill_runtime ? job->drill_runtime : "bwrap";
        const char *config_runtime = job && job->drill_runtime ? job->drill_runtime : "bwrap";

        *spec = (struct bk_drill_spec) { .job = name };
        if (bk_drill_runtime_parse(runtime, &spec->runtime) < 0)
                return -EINVAL;
        spec->image = a->image ? a->image : job && streq(runtime, config_runtime) ? job->drill_image : NULL;
        spec->user = a->user ? a->user : job ? job->drill_user : NULL;
        spec->timeout_s = a->timeout_s ? a->timeout_s : job && job->drill_timeout_s ? job->drill_timeout_s
                                                                                    : BK_DRILL_TIMEOUT_DEFAULT;
        *ret_script = absolute_path(a->exec ? a->exec : job && job->drill ? job->drill : "");
        spec->script = *ret_script;
        return *ret_script ? 0 : -ENOMEM;
}

/* Run one drill on spec->mountpoint (or record @mount_error, when the
 * repository could not be mounted), record it, alert on a failure. */
static int drill_one(struct opts *o, const struct bk_drill_spec *spec, const char *mount_error, json_t *list) {
        struct bk_drill_result dr = { 0 };
        struct bk_run run = { 0 };
        int status;

        bk_error_capture_reset();
        if (mount_error) {
                dr.start_ns = dr.end_ns = now_ns();
                dr.message = strdup(mount_error);
        } else
                (void) bk_drill_run(spec, o->verbosity >= 1 && !o->json, &dr);
        run.result = dr.passed ? BK_RESULT_OK : BK_RESULT_FAILED;
        run.start_ns = dr.start_ns;
        run.end_ns = dr.end_ns;
        if (dr.snapshot)
                snprintf(run.snapshot, sizeof run.snapshot, "%s", dr.snapshot);
        run.message = dr.message;
        if (o->repo && !o->repo_newer)
                (void) bk_state_record(o->repo, spec->job, BK_STATE_DRILL, &run);
        if (!dr.passed)
                send_alert(o, "drill", spec->job, "failed", dr.message);
        if (list)
                json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s?, s:f, s:s?}", "job", spec->job,
                                                      "result", dr.passed ? "passed" : "failed",
                                                      "runtime", bk_drill_runtime_name(spec->runtime),
                                                      "snapshot", dr.snapshot,
                                                      "duration_s", (double) (dr.end_ns - dr.start_ns) / 1e9,
                                                      "message", dr.message));
        else if (dr.passed && o->verbosity >= 1 && !o->json)
                printf("%s: drill passed on snapshot %s (%.1f s)\n", spec->job, dr.snapshot ? dr.snapshot : "?",
                       (double) (dr.end_ns - dr.start_ns) / 1e9);
        status = dr.passed ? EXIT_OK : EXIT_FAIL;
        bk_drill_result_release(&dr);
        return status;
}

/* A cairnfs of our own for drills; on failure *ret_error says why (for the state and alert). */
static int drill_mount(struct opts *o, struct bk_drill_mount **ret, char **ret_error) {
        _cleanup_free_ char *cairnfs = find_cairnfs(), *passopt = NULL, *first = NULL;
        int k;

        *ret = NULL;
        *ret_error = NULL;
        bk_error_capture_reset();
        k = cairnfs ? cairnfs_pass_options(o, &passopt) : -ENOMEM;
        if (k >= 0)
                k = bk_drill_mount_start(cairnfs, o->repo, passopt, ret);
        if (k < 0) {
                first = bk_error_capture_first();
                if (asprintf(ret_error, "cannot mount the repository for the drill: %s",
                             first ? first : strerror(-k)) < 0)
                        *ret_error = NULL;
        }
        return k;
}

/* Every configured drill on one mount; with @list (may be NULL), each
 * result is appended there as drill_one() makes it. */
static int run_config_drills(struct opts *o, struct cairn_repo *r, json_t *list) {
        _cleanup_free_ char *mount_error = NULL;
        struct bk_drill_mount *m = NULL;
        struct drill_args none = { 0 };
        int status = EXIT_OK;
        size_t n = 0;

        for (size_t i = 0; i < o->config->n_jobs; i++)
                n += o->config->jobs[i].drill != NULL;
        if (n == 0) {
                log_warning("--drills: no job of %s has \"drill = SCRIPT\"", o->config_path);
                return EXIT_OK;
        }
        if (drill_mount(o, &m, &mount_error) < 0 && !mount_error)
                mount_error = strdup("cannot mount the repository for the drill");
        for (size_t i = 0; i < o->config->n_jobs; i++) {
                const struct bk_job *job = &o->config->jobs[i];
                _cleanup_free_ char *script = NULL;
                struct bk_drill_spec spec;

                if (!job->drill)
                        continue;
                if (drill_spec(job, job->name, &none, &spec, &script) < 0) {
                        status = EXIT_FAIL;
                        continue;
                }
                spec.mountpoint = m ? bk_drill_mount_path(m) : "";
                status = combine(status, drill_one(o, &spec, m ? NULL : mount_error ? mount_error : "", list));
        }
        (void) bk_drill_mount_stop(m);
        return status;
}

static int cmd_verify(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "exec", required_argument, NULL, 'e' },
                { "runtime", required_argument, NULL, 'R' },
                { "image", required_argument, NULL, 'i' },
                { "user", required_argument, NULL, 'u' },
                { "mount", required_argument, NULL, 'm' },
                { "timeout", required_argument, NULL, 't' },
                { "print", no_argument, NULL, 'p' },
                { "dry-run", no_argument, NULL, 'p' },
                { "all", no_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static const char help[] =
                "Usage: cairn verify JOB [--exec SCRIPT] [--runtime bwrap|docker|podman] [--image IMAGE]\n"
                "                    [--user USER] [--mount DIR] [--timeout DURATION] [--print] [-v] [--json]\n"
                "       cairn verify --all [-v]\n"
                "\n"
                "A restore drill: mount the repository (cairnfs -o allow_other on a temporary\n"
                "directory, unmounted afterwards; or use the mount at --mount DIR), bind JOB's latest\n"
                "complete snapshot read-only into a sandbox or container and run SCRIPT there with\n"
                "/bin/sh. Exit status 0 of the script is a pass. The result is recorded in\n"
                "REPO/state/ (\"cairn status\", the metrics); a failure is a webhook alert.\n"
                "Without --exec, the job's \"drill = SCRIPT\" of the config is run, with its\n"
                "drill-runtime, drill-image and drill-user (options given here win).\n"
                "\n"
                "Where the snapshot is: $BACKUP names it in every runtime.\n"
                "  docker, podman  /backup; the script is /drill.sh.  docker needs an image; podman\n"
                "                  without one runs on the host's root (--rootfs /:O, an overlay)\n"
                "  bwrap (default) /tmp/backup (bwrap cannot create /backup on the read-only root);\n"
                "                  the host's root read-only, a private /tmp, no network\n"
                "\n"
                "  -e, --exec SCRIPT      the drill script (on the host)\n"
                "      --runtime NAME     bwrap, docker or podman\n"
                "      --image IMAGE      docker/podman image, e.g. postgres:15\n"
                "      --user USER        run the script as USER (name or uid; default root)\n"
                "      --mount DIR        use the cairnfs mount at DIR (it needs allow_other for\n"
                "                         containers)\n"
                "      --timeout DURATION stop the drill (and fail it) after DURATION (e.g. 30m;\n"
                "                         default the job's drill-timeout, else 1h)\n"
                "      --print, --dry-run print the command line and run nothing (without --mount,\n"
                "                         the mountpoint shows as MOUNTPOINT)\n"
                "\n"
                "      --all              the drill of every job with \"drill = SCRIPT\" in the config\n"
                "                         (one temporary mount for all; what cairn-drill.timer runs)\n"
                "\n"
                "The script's output is shown with -v, and its last lines on a failure.\n"
                "Exit status: 0 passed; 1 failed (or could not run); 2 usage error.\n";
        _cleanup_free_ char *script = NULL, *mount_dir = NULL, *mount_error = NULL;
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct drill_args a = { 0 };
        struct bk_drill_mount *m = NULL;
        struct bk_drill_spec spec;
        enum bk_drill_runtime rt;
        const struct bk_job *job = NULL;
        const char *name, *mount_arg = NULL;
        json_t *list = NULL;
        bool print = false, all = false, opened = false;
        int c, status;

        while ((c = getopt_long(argc, argv, "e:h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'a': all = true; break;
                case 'e': a.exec = optarg; break;
                case 'R': a.runtime = optarg; break;
                case 'i': a.image = optarg; break;
                case 'u': a.user = optarg; break;
                case 'm': mount_arg = optarg; break;
                case 't':
                        if (bk_parse_duration(optarg, &a.timeout_s) < 0 || a.timeout_s == 0)
                                return usage_error("verify", "--timeout: expected a duration above zero (e.g. 30m), "
                                                   "got \"%s\"", optarg);
                        break;
                case 'p': print = true; break;
                case 'h': fputs(help, stdout); return EXIT_OK;
                default: return usage_error("verify", "bad option");
                }
        }
        if (all) {
                if (optind != argc || a.exec || a.runtime || a.image || a.user || mount_arg || print || a.timeout_s)
                        return usage_error("verify", "--all takes no job and no other option: each job's drill "
                                           "comes from the config");
                if (load_config(o, true) < 0 || open_repo(o, &r) < 0)
                        return EXIT_FAIL;
                return run_config_drills(o, r, NULL);
        }
        if (optind + 1 != argc)
                return usage_error("verify", optind >= argc ? "which job?" : "one job at a time");
        name = argv[optind];
        if (!cairn_name_valid(name, strlen(name)) || strlen(name) > 64)
                return usage_error("verify", "bad job name \"%s\"", name);
        if (a.runtime && bk_drill_runtime_parse(a.runtime, &rt) < 0)
                return usage_error("verify", "--runtime: expected bwrap, docker or podman, got \"%s\"", a.runtime);
        if (a.image && (!*a.image || a.image[0] == '-'))
                return usage_error("verify", "--image: \"%s\" is not an image name", a.image);
        if (a.user && (!*a.user || a.user[0] == '-'))
                return usage_error("verify", "--user: \"%s\" is not a user", a.user);
        /* The config says where the repository is, and the job's drill;
         * --exec with --print or --repo needs none. */
        if (load_config(o, !(a.exec && (print || o->repo))) < 0)
                return EXIT_FAIL;
        job = o->config ? bk_config_job(o->config, name) : NULL;
        if (!a.exec && !job) {
                log_error("No job \"%s\" in %s", name, o->config_path);
                return EXIT_FAIL;
        }
        if (!a.exec && !job->drill)
                return usage_error("verify", "job \"%s\" has no drill: give --exec SCRIPT, or add \"drill = SCRIPT\" "
                                   "to [job %s] in %s", name, name, o->config_path);
        if (drill_spec(job, name, &a, &spec, &script) < 0)
                return EXIT_FAIL;
        if (spec.runtime == BK_DRILL_DOCKER && !spec.image)
                return usage_error("verify", "docker needs an image: --image IMAGE (or drill-image in the config)");
        if (mount_arg && !(mount_dir = absolute_path(mount_arg)))
                return EXIT_FAIL;

        if (print) {
                _cleanup_free_ char *line = NULL;
                char **args = NULL;

                spec.mountpoint = mount_dir ? mount_dir : "MOUNTPOINT";
                if (bk_drill_argv(&spec, true, &args) < 0)
                        return EXIT_FAIL;
                line = bk_drill_argv_format(args);
                bk_strv_free(args);
                if (!line)
                        return EXIT_FAIL;
                printf("%s\n", line);
                return EXIT_OK;
        }

        if (!o->repo && o->config)
                o->repo = o->config->repo_path;
        if (!o->repo) {
                log_error("No repository: give --repo PATH, set $CAIRN_REPO, or a [repository] path in the config");
                return EXIT_FAIL;
        }
        if (o->json)
                list = json_array();
        if (mount_dir)
                spec.mountpoint = mount_dir;
        else if (drill_mount(o, &m, &mount_error) >= 0)
                spec.mountpoint = bk_drill_mount_path(m);
        else if (!mount_error)
                mount_error = strdup("cannot mount the repository for the drill");
        if (!mount_dir && !m) {
                /* Only cairnfs opened it: is it a repository of a newer
                 * format, to be left alone (no drill state written)?
                 * Quietly: cairnfs has said what is wrong already. */
                struct cairn_repo *probe = NULL;
                int level = cairn_log_get_level();
                cairn_log_set_level(-1);
                if (open_repo(o, &probe) >= 0) {
                        cairn_repo_free(probe);
                        opened = true;
                }
                cairn_log_set_level(level);
        }
        status = drill_one(o, &spec, mount_dir || m ? NULL : mount_error ? mount_error : "", list);
        (void) bk_drill_mount_stop(m);

        /* The metrics count snapshots: that needs the index (not when
         * cairnfs could not open the repository either: it said why). */
        if (o->config && o->config->textfile && (mount_dir || m || opened) && open_repo(o, &r) >= 0)
                after_run(o, r, false, NULL);
        if (list) {
                json_dumpf(json_array_get(list, 0), stdout, JSON_COMPACT);
                printf("\n");
                json_decref(list);
        }
        return status;
}

static void send_summary(struct opts *o, const struct bk_status *st) {
        _cleanup_free_ char *msg = NULL, *details = bk_status_text(st);
        size_t counts[BK_HEALTH_FAILED + 1] = { 0 }, len = 0;
        const struct bk_history *ch = &st->check.h[BK_STATE_CHECK];
        json_t *extra, *all = bk_status_to_json(st);
        struct bk_alert a = { .event = "summary", .status = bk_health_name(st->health), .time_ns = st->now_ns };
        char when[32];
        bool first = true;
        FILE *f;

        f = open_memstream(&msg, &len);
        if (!f) {
                json_decref(all);
                return;
        }
        for (size_t i = 0; i < st->n_jobs; i++)
                counts[st->jobs[i].health]++;
        fprintf(f, "%zu job%s:", st->n_jobs, st->n_jobs == 1 ? "" : "s");
        for (int h = BK_HEALTH_OK; h <= BK_HEALTH_FAILED; h++) {
                if (!counts[h])
                        continue;
                fprintf(f, "%s %zu %s", first ? "" : ",", counts[h], bk_health_name(h));
                first = false;
                if (h == BK_HEALTH_OK)
                        continue;
                fprintf(f, " (");
                for (size_t i = 0, n = 0; i < st->n_jobs; i++)
                        if ((int) st->jobs[i].health == h)
                                fprintf(f, "%s%s", n++ ? ", " : "", st->jobs[i].job->name);
                fprintf(f, ")");
        }
        if (ch->last.result == BK_RESULT_NONE)
                fprintf(f, "; check never ran");
        else
                fprintf(f, "; check %s %s", ch->last.result == BK_RESULT_OK ? "passed" : "failed",
                        cairn_time_format(ch->last.end_ns, when, sizeof when));
        if (fclose(f) != 0) {
                json_decref(all);
                return;
        }
        extra = json_pack("{s:O?, s:s?}", "jobs", all ? json_object_get(all, "jobs") : NULL, "details", details);
        a.message = msg;
        a.extra = extra;
        if (o->config->webhook)
                (void) bk_alert_send(o->config->webhook, &a);
        json_decref(extra);
        json_decref(all);
}

static int cmd_status(struct opts *o, int argc, char **argv) {
        static const struct option longopts[] = {
                { "textfile", required_argument, NULL, 't' },
                { "notify", no_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static const char help[] =
                "Usage: cairn status [--json] [--textfile FILE] [--notify] [-q]\n"
                "\n"
                "Per job of the config: its last success and failure, its age against max-age\n"
                "(fresh or stale; a job without max-age is fresh once it ever succeeded), the size,\n"
                "added data and duration of its last backup, its snapshot count and its last\n"
                "restore drill; and the last check. From REPO/state/ and the index.\n"
                "\n"
                "  --textfile FILE  write Prometheus metrics for node_exporter's textfile collector\n"
                "                   to FILE atomically (default: the config's [status] textfile)\n"
                "  --notify         send the daily summary to the config's [status] webhook\n"
                "  -q               print nothing: only the exit status\n"
                "\n"
                "Without --notify, a job found stale is one webhook alert, once until it succeeds\n"
                "again (the summary of --notify says it instead).\n"
                "\n"
                "Metrics (label job=\"NAME\"): cairn_job_configured, cairn_job_last_success_timestamp_seconds,\n"
                "cairn_job_last_failure_timestamp_seconds, cairn_job_last_status (0 ok, 1 partial,\n"
                "2 failed, 3 never ran), cairn_job_duration_seconds, cairn_job_added_bytes,\n"
                "cairn_job_size_bytes, cairn_job_snapshots, cairn_job_max_age_seconds, cairn_job_stale,\n"
                "cairn_drill_last_success_timestamp_seconds, cairn_drill_last_status (0 passed,\n"
                "2 failed, 3 never ran); without a label: cairn_check_last_success_timestamp_seconds,\n"
                "cairn_check_last_status.\n"
                "\n"
                "Exit status: 0 every job fresh and healthy; 1 the last backup or drill of a job\n"
                "failed, or the last check did, or the status could not be read (or the textfile\n"
                "written); 3 only partial snapshots; 4 a job is stale (none failed); 2 usage error.\n";
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(bk_status_freep) struct bk_status *st = NULL;
        const char *textfile = NULL;
        bool notify = false, textfile_failed = false;
        int c, status;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 't': textfile = optarg; break;
                case 'n': notify = true; break;
                case 'h': fputs(help, stdout); return EXIT_OK;
                default: return usage_error("status", "bad option");
                }
        }
        if (optind < argc)
                return usage_error("status", "unexpected argument \"%s\"", argv[optind]);
        if (load_config(o, true) < 0)
                return EXIT_FAIL;
        if (notify && !o->config->webhook)
                return usage_error("status", "--notify needs \"webhook = URL\" in the [status] section of %s",
                                   o->config_path);
        if (open_repo(o, &r) < 0)
                return EXIT_FAIL;
        if (bk_status_collect(o->config, o->repo, r, &st) < 0)
                return EXIT_FAIL;
        if (o->json) {
                json_t *j = bk_status_to_json(st);
                json_dumpf(j, stdout, JSON_COMPACT);
                printf("\n");
                json_decref(j);
        } else if (o->verbosity >= 0)
                (void) bk_status_print(st, stdout);
        fflush(stdout);
        if (!textfile)
                textfile = o->config->textfile;
        if (textfile && bk_status_write_textfile(st, textfile) < 0)
                textfile_failed = true;
        if (notify)
                send_summary(o, st);
        alert_stale(o, st, NULL, notify);
        status = bk_status_exit_code(st);
        return textfile_failed ? EXIT_FAIL : status;
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
                { "status", cmd_status },     { "verify", cmd_verify },
                { "sync", cmd_sync },
                { "import", cmd_import },     { "export", cmd_export },
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
