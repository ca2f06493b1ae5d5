/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairn: the operator's command line.  This file holds the option parsing
 * shared by every command and the repository-level commands (init, info,
 * index); the writer's commands come with it as they are built.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "lmdb-index.h"
#include "log.h"
#include "repo.h"
#include "snapshot.h"
#include "util.h"

/* Exit statuses (documented in --help). */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
};

struct opts {
        const char *repo;
        struct cairn_pass_source pass;
        bool json;
        bool no_encryption;
        int compression;
        uint64_t scrypt_n;
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
        "  init                 create a new repository\n"
        "  info                 open the repository and describe it\n"
        "  snapshots [JOB]      list snapshots (from the index)\n"
        "  index rebuild        rebuild the index from packs and snapshot files\n"
        "\n"
        "Options:\n"
        "  -r, --repo PATH            repository (default: $CAIRN_REPO)\n"
        "      --password-file FILE   read the passphrase from FILE (or $CAIRN_PASSWORD_FILE)\n"
        "      --password-command CMD run CMD and use its output (or $CAIRN_PASSWORD_COMMAND)\n"
        "                             otherwise the passphrase is taken from $CAIRN_PASSWORD\n"
        "      --json                 machine-readable output where supported\n"
        "  -v, --verbose              more messages\n"
        "  -q, --quiet                only errors\n"
        "  -h, --help                 this text\n"
        "      --version              print the version\n"
        "\n"
        "Options of init:\n"
        "      --no-encryption        store data unencrypted (no passphrase)\n"
        "      --compression LEVEL    zstd level 1..19 (default 3)\n"
        "      --scrypt-n N           scrypt cost, a power of two (default 32768)\n"
        "\n"
        "Exit status: 0 success, 1 failure, 2 usage error.\n";

static int cmd_init(struct opts *o, int argc, char **argv) {
        struct cairn_repo_params p;
        int k;

        if (argc > 0) {
                fprintf(stderr, "cairn: init takes no arguments (give the path with --repo)\n");
                return EXIT_USAGE;
        }
        cairn_repo_params_default(&p);
        p.encrypted = !o->no_encryption;
        if (o->compression)
                p.zstd_level = o->compression;
        if (o->scrypt_n)
                p.scrypt_n = o->scrypt_n;
        if (p.encrypted && o->pass.kind == CAIRN_PASS_NONE) {
                fprintf(stderr, "cairn: error: init needs a passphrase: --password-file, --password-command or "
                                "$CAIRN_PASSWORD (or --no-encryption)\n");
                return EXIT_USAGE;
        }
        k = cairn_repo_create(o->repo, &p, &o->pass);
        if (k < 0)
                return EXIT_FAIL;
        if (cairn_log_get_level() >= CAIRN_LOG_INFO)
                printf("created %s repository at %s\n", p.encrypted ? "encrypted" : "unencrypted", o->repo);
        return EXIT_OK;
}

struct count_ctx {
        size_t n;
        bool json;
        bool first;
};

static int count_snapshot(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                          size_t json_len, void *userdata) {
        struct count_ctx *c = userdata;
        c->n++;
        return 0;
}

static int cmd_info(struct opts *o, int argc, char **argv) {
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        const struct cairn_repo_params *p;
        struct count_ctx c = { 0 };
        char idhex[33];
        int k;

        k = cairn_repo_open(o->repo, &o->pass, &r);
        if (k < 0)
                return EXIT_FAIL;
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k >= 0)
                k = cairn_index_snapshot_foreach(t, NULL, count_snapshot, &c);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", o->repo), EXIT_FAIL;
        p = cairn_repo_params(r);
        hex_encode(cairn_repo_id(r), 16, idhex);
        if (o->json)
                printf("{\"path\":\"%s\",\"id\":\"%s\",\"version\":%d,\"encryption\":\"%s\",\"compression\":\"zstd:%d\","
                       "\"chunker\":{\"min\":%u,\"avg\":%u,\"max\":%u},\"snapshots\":%zu}\n",
                       o->repo, idhex, CAIRN_FORMAT_VERSION, p->encrypted ? "aes-256-gcm" : "none", p->zstd_level,
                       p->chunker.min_size, p->chunker.avg_size, p->chunker.max_size, c.n);
        else
                printf("repository  %s\n"
                       "id          %s\n"
                       "format      %d\n"
                       "encryption  %s\n"
                       "compression zstd level %d\n"
                       "chunks      %u / %u / %u bytes (min / avg / max)\n"
                       "snapshots   %zu\n",
                       o->repo, idhex, CAIRN_FORMAT_VERSION, p->encrypted ? "AES-256-GCM (key unlocked)" : "none",
                       p->zstd_level, p->chunker.min_size, p->chunker.avg_size, p->chunker.max_size, c.n);
        return EXIT_OK;
}

static int print_snapshot(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                          size_t json_len, void *userdata) {
        struct count_ctx *c = userdata;
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        char when[32], hex[65];

        if (c->json) {
                printf("%s%.*s", c->first ? "" : ",", (int) json_len, json);
                c->first = false;
                return 0;
        }
        if (cairn_snapshot_from_json(json, json_len, &s) < 0)
                return -EBADMSG;
        printf("%-16s %s  %.12s  %-8s %" PRIu64 " files\n", job, cairn_time_format(start_ns, when, sizeof when),
               hex_encode(id, CAIRN_ID_SIZE, hex), s->status == CAIRN_SNAPSHOT_COMPLETE ? "complete" : "partial",
               s->files);
        return 0;
}

static int cmd_snapshots(struct opts *o, int argc, char **argv) {
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct count_ctx c = { .json = o->json, .first = true };
        int k;

        if (argc > 1) {
                fprintf(stderr, "cairn: snapshots takes at most one job name\n");
                return EXIT_USAGE;
        }
        k = cairn_repo_open(o->repo, &o->pass, &r);
        if (k < 0)
                return EXIT_FAIL;
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k < 0)
                return EXIT_FAIL;
        if (o->json)
                printf("[");
        k = cairn_index_snapshot_foreach(t, argc ? argv[0] : NULL, print_snapshot, &c);
        if (o->json)
                printf("]\n");
        if (k < 0)
                return log_error_errno(k, "Cannot list snapshots of %s: %m", o->repo), EXIT_FAIL;
        return EXIT_OK;
}

static int cmd_index(struct opts *o, int argc, char **argv) {
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        struct cairn_lock *lock = NULL;
        pid_t holder = 0;
        int k;

        if (argc != 1 || !streq(argv[0], "rebuild")) {
                fprintf(stderr, "cairn: usage: cairn index rebuild\n");
                return EXIT_USAGE;
        }
        k = cairn_repo_open(o->repo, &o->pass, &r);
        if (k < 0)
                return EXIT_FAIL;
        /* Nothing may write while the index is replaced. */
        k = cairn_repo_lock(r, "repository", true, false, "index rebuild", &lock, &holder);
        if (k == -EBUSY) {
                log_error("Repository %s is in use by process %d; try again when it is done", o->repo, (int) holder);
                return EXIT_FAIL;
        }
        if (k < 0)
                return EXIT_FAIL;
        k = cairn_repo_rebuild_index(r);
        cairn_lock_release(lock);
        if (k < 0)
                return EXIT_FAIL;
        if (cairn_log_get_level() >= CAIRN_LOG_INFO)
                printf("index of %s rebuilt\n", o->repo);
        return EXIT_OK;
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*fn)(struct opts *o, int argc, char **argv);
                bool needs_repo;
        } commands[] = {
                { "init", cmd_init, true },
                { "info", cmd_info, true },
                { "snapshots", cmd_snapshots, true },
                { "index", cmd_index, true },
        };
        enum { OPT_PWFILE = 256, OPT_PWCMD, OPT_JSON, OPT_NOENC, OPT_COMPRESSION, OPT_SCRYPT_N, OPT_VERSION };
        static const struct option longopts[] = {
                { "repo", required_argument, NULL, 'r' },
                { "password-file", required_argument, NULL, OPT_PWFILE },
                { "password-command", required_argument, NULL, OPT_PWCMD },
                { "json", no_argument, NULL, OPT_JSON },
                { "no-encryption", no_argument, NULL, OPT_NOENC },
                { "compression", required_argument, NULL, OPT_COMPRESSION },
                { "scrypt-n", required_argument, NULL, OPT_SCRYPT_N },
                { "verbose", no_argument, NULL, 'v' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {}
        };
        struct opts o = { .repo = getenv("CAIRN_REPO") };
        int c;

        cairn_log_set_handler(log_to_stderr, NULL);
        if (getenv("CAIRN_PASSWORD_FILE"))
                o.pass = (struct cairn_pass_source) { CAIRN_PASS_FILE, getenv("CAIRN_PASSWORD_FILE") };
        else if (getenv("CAIRN_PASSWORD_COMMAND"))
                o.pass = (struct cairn_pass_source) { CAIRN_PASS_COMMAND, getenv("CAIRN_PASSWORD_COMMAND") };
        else if (getenv("CAIRN_PASSWORD"))
                o.pass = (struct cairn_pass_source) { CAIRN_PASS_ENV, "CAIRN_PASSWORD" };

        /* Options may come before or after the command. */
        while ((c = getopt_long(argc, argv, "r:vqh", longopts, NULL)) >= 0) {
                char *end;
                switch (c) {
                case 'r': o.repo = optarg; break;
                case OPT_PWFILE: o.pass = (struct cairn_pass_source) { CAIRN_PASS_FILE, optarg }; break;
                case OPT_PWCMD: o.pass = (struct cairn_pass_source) { CAIRN_PASS_COMMAND, optarg }; break;
                case OPT_JSON: o.json = true; break;
                case OPT_NOENC: o.no_encryption = true; break;
                case OPT_COMPRESSION:
                        o.compression = (int) strtol(optarg, &end, 10);
                        if (*end || o.compression < 1 || o.compression > 19) {
                                fprintf(stderr, "cairn: --compression: expected a level from 1 to 19, got \"%s\"\n", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case OPT_SCRYPT_N:
                        o.scrypt_n = strtoull(optarg, &end, 10);
                        if (*end || o.scrypt_n < 2 || (o.scrypt_n & (o.scrypt_n - 1))) {
                                fprintf(stderr, "cairn: --scrypt-n: expected a power of two, got \"%s\"\n", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 'v': cairn_log_set_level(CAIRN_LOG_DEBUG); break;
                case 'q': cairn_log_set_level(CAIRN_LOG_WARNING); break;
                case 'h': fputs(usage_text, stdout); return EXIT_OK;
                case OPT_VERSION: printf("cairn %s\n", PACKAGE_VERSION); return EXIT_OK;
                default: fputs("Try \"cairn --help\".\n", stderr); return EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                fputs(usage_text, stderr);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(argv[optind], commands[i].name))
                        continue;
                if (commands[i].needs_repo && !o.repo) {
                        fprintf(stderr, "cairn: error: no repository: give --repo PATH or set $CAIRN_REPO\n");
                        return EXIT_USAGE;
                }
                return commands[i].fn(&o, argc - optind - 1, argv + optind + 1);
        }
        fprintf(stderr, "cairn: unknown command \"%s\"; try \"cairn --help\"\n", argv[optind]);
        return EXIT_USAGE;
}
