/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairnfs: mount every snapshot of every job of a cairn repository as one
 * read-only tree.  Also installed as mount.cairnfs, the helper mount(8)
 * runs for fstab lines of type cairnfs (fuse.cairnfs goes through
 * mount.fuse3, which runs "cairnfs SOURCE DIR -o OPTIONS").
 *
 * Everything that can fail is checked before the mount, while the
 * operator still sees stderr: the mountpoint, /dev/fuse, the repository
 * and its passphrase.  Without -f the process forks first (the index
 * must never be used across a fork) and the parent waits for the child to
 * say the mount is up, so "mount" returns only once it works, and an error
 * is its exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "fs.h"
#include "log.h"
#include "util.h"

#define DEFAULT_CACHE_MIB 128
#define DEFAULT_READAHEAD 4
#define DEFAULT_THREADS 2

static const char usage_text[] =
        "Usage: cairnfs [OPTIONS] REPOSITORY MOUNTPOINT\n"
        "       mount.cairnfs REPOSITORY MOUNTPOINT [-o OPTIONS]   (mount(8) helper)\n"
        "\n"
        "Mount every snapshot of every job of a cairn repository, read-only:\n"
        "  MOUNTPOINT/JOB/2026-11-21T01:00:00Z/...   a snapshot (start time, UTC)\n"
        "  MOUNTPOINT/JOB/2026-11-21T01:00:00Z.2/... a second snapshot started in the same second\n"
        "  MOUNTPOINT/JOB/2026-11-21T01:00:00Z.partial/  a partial snapshot (some files could not\n"
        "                                            be read; \"cairn snapshots\" says which)\n"
        "  MOUNTPOINT/JOB/latest -> ...              the newest complete snapshot\n"
        "Snapshots that backups add, and those that forget removes, show within about a second.\n"
        "\n"
        "Options:\n"
        "  -f                      stay in the foreground (log to stderr)\n"
        "  -d                      debug: foreground, FUSE requests logged\n"
        "  -s                      one request thread (default: up to threads=N)\n"
        "  -o OPT[,OPT...]         mount options:\n"
        "       password_file=FILE     read the passphrase from FILE (else $CAIRN_PASSWORD_FILE,\n"
        "       password_command=CMD   $CAIRN_PASSWORD_COMMAND or $CAIRN_PASSWORD)\n"
        "       allow_other            let other users (and containers) use the mount; the stored\n"
        "                              modes and owners still decide who reads what\n"
        "       no_default_permissions do not let the kernel check the stored modes (default: it does)\n"
        "       key_cache=TIME|off     keep the unlocked key in the kernel keyring for TIME (like\n"
        "                              12h; default 1d, else $CAIRN_KEY_CACHE): the next mount or\n"
        "                              backup with the same passphrase skips the slow key derivation\n"
        "       cache_size=MIB         decoded chunk cache, 16 or more (default 128)\n"
        "       readahead=N            chunks decoded ahead of a sequential reader (default 4; 0: off)\n"
        "       threads=N              request threads (default 2)\n"
        "       fsname=NAME            what df and /proc/mounts show (default: the repository path)\n"
        "     ro, rw, nosuid, nodev, noexec, noatime, ... and fstab's noauto, nofail, _netdev, x-*:\n"
        "     accepted; the mount is always read-only, nosuid and nodev.\n"
        "  -h, --help              this text\n"
        "  -V, --version           print the version\n"
        "\n"
        "Unmount with \"fusermount3 -u MOUNTPOINT\" (or umount as root); SIGTERM does the same.\n"
        "fstab: /backups/repo /restore fuse.cairnfs ro,allow_other,password_file=/etc/cairn/passphrase 0 0\n"
        "\n"
        "Exit status: 0 after a clean unmount (or, without -f, once mounted); 1 on an error,\n"
        "which is printed before anything is mounted; 2 usage error.\n";

struct options {
        const char *repo;
        const char *mountpoint;
        bool foreground, debug, fake, single;
        struct cairn_pass_source pass;
        bool allow_other, allow_root, default_permissions, noexec;
        unsigned cache_mib, readahead, threads;
        int key_cache;                  /* cairn_pass_source.key_cache */
        bool key_cache_set;
        char *fsname;
        char *option_lists[16];          /* copies of the -o arguments */
        unsigned n_option_lists;
};

static bool daemon_syslog;

static void log_handler(int level, const char *msg, void *userdata) {
        if (daemon_syslog) {
                syslog(level <= CAIRN_LOG_ERR ? LOG_ERR : level == CAIRN_LOG_WARNING ? LOG_WARNING :
                       level == CAIRN_LOG_INFO ? LOG_INFO : LOG_DEBUG, "%s", msg);
                return;
        }
        fprintf(stderr, "cairnfs: %s%s\n",
                level <= CAIRN_LOG_ERR ? "error: " : level == CAIRN_LOG_WARNING ? "warning: " : "", msg);
}

static int parse_uint(const char *opt, const char *v, unsigned min, unsigned max, unsigned *ret) {
        char *end;
        unsigned long n;

        errno = 0;
        n = strtoul(v, &end, 10);
        if (errno || end == v || *end || n < min || n > max) {
                log_error("Mount option %s: \"%s\" is not a number from %u to %u", opt, v, min, max);
                return -EINVAL;
        }
        *ret = (unsigned) n;
        return 0;
}

/* One option of a -o list. */
static int parse_option(struct options *o, char *opt) {
        static const char *const ignored[] = {
                /* fstab/mount(8) words that are not ours to act on */
                "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser", "owner",
                "ro", "rw", "nosuid", "nodev", "suid", "dev", "exec", "atime", "noatime", "relatime",
                "norelatime", "strictatime", "nodiratime", "diratime", "async", "sync", "dirsync",
                "default_permissions", "lazytime", "nolazytime",
        };
        char *eq = strchr(opt, '=');
        const char *v = eq ? eq + 1 : NULL;

        if (eq)
                *eq = 0;
        if (streq(opt, "password_file") && v && *v)
                o->pass = (struct cairn_pass_source) { CAIRN_PASS_FILE, v };
        else if (streq(opt, "password_command") && v && *v)
                o->pass = (struct cairn_pass_source) { CAIRN_PASS_COMMAND, v };
        else if (streq(opt, "key_cache") && v) {
                if (cairn_key_cache_parse(v, &o->key_cache) < 0) {
                        log_error("Mount option key_cache: \"%s\" is not \"off\" or a duration up to 30d "
                                  "(like 12h or 1d)", v);
                        return -EINVAL;
                }
                o->key_cache_set = true;
        } else if (streq(opt, "cache_size") && v)
                return parse_uint(opt, v, 16, 1u << 20, &o->cache_mib);
        else if (streq(opt, "readahead") && v)
                return parse_uint(opt, v, 0, 64, &o->readahead);
        else if (streq(opt, "threads") && v)
                return parse_uint(opt, v, 1, 256, &o->threads);
        else if (streq(opt, "fsname") && v && *v) {
                free(o->fsname);
                o->fsname = strdup(v);
                if (!o->fsname)
                        return -ENOMEM;
        } else if (streq(opt, "allow_other") && !v)
                o->allow_other = true;
        else if (streq(opt, "allow_root") && !v)
                o->allow_root = true;
        else if (streq(opt, "no_default_permissions") && !v)
                o->default_permissions = false;
        else if (streq(opt, "noexec") && !v)
                o->noexec = true;
        else if (strncmp(opt, "x-", 2) == 0 || streq(opt, "comment") || streq(opt, "context") ||
                 streq(opt, "subtype"))
                ; /* mount(8) and systemd's own */
        else {
                for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
                        if (streq(opt, ignored[i]) && !v)
                                return 0;
                if (v)
                        *eq = '=';
                log_error("Unknown mount option \"%s\" (see cairnfs --help)", opt);
                return -EINVAL;
        }
        return 0;
}

/* Split a -o list at commas; "\," is a comma inside a value. */
static int parse_option_list(struct options *o, char *list) {
        char *p = list;

        while (*p) {
                char *start = p, *w = p;
                while (*p && *p != ',') {
                        if (*p == '\\' && p[1])
                                p++;
                        *w++ = *p++;
                }
                if (*p == ',')
                        p++;
                *w = 0;
                if (*start) {
                        int r = parse_option(o, start);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int parse_args(int argc, char **argv, struct options *o, bool as_helper) {
        static const struct option longopts[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        const char *positional[2];
        int n_pos = 0, c;

        /* Options may follow the positional arguments, as mount(8) passes them. */
        while (optind < argc) {
                if ((c = getopt_long(argc, argv, as_helper ? "+fnsvo:t:N:hV" : "+fdso:hV", longopts, NULL)) < 0) {
                        if (n_pos == 2) {
                                log_error("Too many arguments: \"%s\" (see cairnfs --help)", argv[optind]);
                                return -EINVAL;
                        }
                        positional[n_pos++] = argv[optind++];
                        continue;
                }
                switch (c) {
                case 'f':
                        if (as_helper)
                                o->fake = true;   /* mount(8): do everything but mount */
                        else
                                o->foreground = true;
                        break;
                case 'd':
                        o->debug = o->foreground = true;
                        break;
                case 's':
                        if (!as_helper)
                                o->single = true;   /* mount(8)'s -s is "sloppy": ignored */
                        break;
                case 'o': {
                        /* A copy: values point into it for the whole run,
                         * and ps keeps showing the command line as given. */
                        char *list = strdup(optarg);
                        if (!list || parse_option_list(o, list) < 0) {
                                free(list);
                                return -EINVAL;
                        }
                        o->option_lists[o->n_option_lists++ % ELEMENTSOF(o->option_lists)] = list;
                        break;
                }
                case 'n': case 'v': case 't': case 'N':
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        exit(0);
                case 'V':
                        printf("cairnfs %s\n", PACKAGE_VERSION);
                        exit(0);
                default:
                        return -EINVAL;
                }
        }
        if (n_pos != 2) {
                log_error("Give the repository and the mountpoint (see cairnfs --help)");
                return -EINVAL;
        }
        o->repo = positional[0];
        o->mountpoint = positional[1];
        return 0;
}

static int check_mountpoint(const char *path) {
        struct stat st;

        if (stat(path, &st) < 0)
                return log_error_errno(-errno, "Mountpoint %s: %m%s", path,
                                       errno == ENOENT ? " (create it first: mkdir -p)" : "");
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "Mountpoint %s is not a directory", path);
        return 0;
}

static int check_fuse_device(void) {
        int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return log_error_errno(-errno, "Cannot open /dev/fuse: %m (%s)",
                                       errno == ENOENT ? "no FUSE device: load the fuse module, or give the "
                                                         "container --device /dev/fuse" :
                                                         "FUSE is not usable here");
        close(fd);
        return 0;
}

/* "a,b" → "a\,b" for a value inside a -o list. */
static char *escape_commas(const char *s) {
        size_t n = 0;
        char *out, *w;

        for (const char *p = s; *p; p++)
                n += (*p == ',' || *p == '\\') ? 2 : 1;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        w = out;
        for (const char *p = s; *p; p++) {
                if (*p == ',' || *p == '\\')
                        *w++ = '\\';
                *w++ = *p;
        }
        *w = 0;
        return out;
}

static struct fuse_session *session_new(struct options *o, struct fs_ctx *ctx) {
        _cleanup_free_ char *fsname = escape_commas(o->fsname ? o->fsname : o->repo);
        char opts[PATH_MAX + 256];
        char *argv[4] = { (char *) "cairnfs", (char *) "-o", opts, NULL };
        struct fuse_args args;
        struct fuse_session *se;

        if (!fsname)
                return NULL;
        snprintf(opts, sizeof opts, "ro,nosuid,nodev,fsname=%s,subtype=cairnfs%s%s%s%s%s", fsname,
                 o->default_permissions ? ",default_permissions" : "", o->allow_other ? ",allow_other" : "",
                 o->allow_root ? ",allow_root" : "", o->noexec ? ",noexec" : "", o->debug ? ",debug" : "");
        args = (struct fuse_args) FUSE_ARGS_INIT(3, argv);
        se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, ctx);
        fuse_opt_free_args(&args);
        return se;
}

/* Fork; the parent waits for the child's word (one byte: its exit status)
 * and exits with it.  Returns the write end of the pipe in the child. */
static int fork_and_wait(void) {
        int pfd[2];
        pid_t pid;

        if (pipe2(pfd, O_CLOEXEC) < 0)
                return log_error_errno(-errno, "pipe: %m");
        pid = fork();
        if (pid < 0)
                return log_error_errno(-errno, "fork: %m");
        if (pid > 0) {
                unsigned char status = 1;
                close(pfd[1]);
                if (read(pfd[0], &status, 1) != 1) {
                        int ws;
                        /* The child died before it could say. */
                        if (waitpid(pid, &ws, 0) == pid && WIFEXITED(ws))
                                _exit(WEXITSTATUS(ws) ? WEXITSTATUS(ws) : 1);
                        _exit(1);
                }
                _exit(status);
        }
        close(pfd[0]);
        if (setsid() < 0)
                log_warning_errno(-errno, "setsid: %m");
        return pfd[1];
}

static void tell_parent(int *fd, unsigned char status) {
        if (*fd < 0)
                return;
        (void) !write(*fd, &status, 1);
        close(*fd);
        *fd = -1;
}

static void detach_stdio(void) {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return;
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
}

/* The request threads.  libfuse's own multi-threaded loop (3.14) ends
 * an idle thread after nearly every request and starts a new one for the
 * next, which made each request cost a thread creation; these threads
 * live as long as the mount.  Each blocks in read(/dev/fuse) with
 * cancellation enabled only there, as libfuse's loop does. */
struct request_loop {
        struct fuse_session *se;
        pthread_mutex_t lock;
        pthread_cond_t ended;            /* a thread left its loop */
        unsigned running;                /* protected by lock */
        int error;                       /* protected by lock */
};

struct request_worker {
        struct request_loop *loop;
        pthread_t thread;
        struct fuse_buf buf;             /* freed by request_loop(): the thread may be cancelled */
};

static void *request_thread(void *userdata) {
        struct request_worker *w = userdata;
        struct request_loop *l = w->loop;
        int r = 0;

        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        while (!fuse_session_exited(l->se)) {
                pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
                r = fuse_session_receive_buf(l->se, &w->buf);
                pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
                if (r == -EINTR)
                        continue;
                if (r <= 0)
                        break;   /* 0 or -ENODEV: unmounted */
                fuse_session_process_buf(l->se, &w->buf);
        }
        fuse_session_exit(l->se);
        pthread_mutex_lock(&l->lock);
        if (r < 0 && r != -ENODEV && r != -EINTR)
                l->error = r;
        l->running--;
        pthread_cond_signal(&l->ended);
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

/* Returns 0 when the session ended by an unmount or a signal, else -errno. */
static int request_loop(struct fuse_session *se, unsigned n) {
        struct request_loop l = { .se = se, .lock = PTHREAD_MUTEX_INITIALIZER, .ended = PTHREAD_COND_INITIALIZER };
        struct request_worker *threads = calloc(n, sizeof *threads);
        unsigned started = 0;
        int r;

        if (!threads)
                return -ENOMEM;
        for (; started < n; started++) {
                pthread_mutex_lock(&l.lock);
                l.running++;
                pthread_mutex_unlock(&l.lock);
                threads[started].loop = &l;
                r = pthread_create(&threads[started].thread, NULL, request_thread, &threads[started]);
                if (r != 0) {
                        pthread_mutex_lock(&l.lock);
                        l.running--;
                        pthread_mutex_unlock(&l.lock);
                        if (started == 0) {
                                free(threads);
                                return log_error_errno(-r, "Cannot start a request thread: %m");
                        }
                        break;
                }
        }
        /* Until a thread ends (unmount) or a signal handler ends the
         * session (the signal may land in this thread, which a condition
         * wait does not notice: hence the timeout). */
        pthread_mutex_lock(&l.lock);
        while (l.running == started && !fuse_session_exited(se)) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += 200 * 1000000;
                if (until.tv_nsec >= 1000000000) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&l.ended, &l.lock, &until);
        }
        pthread_mutex_unlock(&l.lock);
        fuse_session_exit(se);
        for (unsigned i = 0; i < started; i++)
                pthread_cancel(threads[i].thread);
        for (unsigned i = 0; i < started; i++) {
                pthread_join(threads[i].thread, NULL);
                free(threads[i].buf.mem);
        }
        free(threads);
        return l.error;
}

/* Work that the first "ls" needs and that need not wait for the key:
 * run beside the repository's opening (key files, key derivation), in
 * threads of their own, before anything is mounted. */
struct warmup {
        pthread_t index_thread, crypto_thread;
        bool index_started, crypto_started;
        char index_dir[PATH_MAX];
};

static void *warm_index(void *userdata) {
        static const char *const tables[] = { "snapshots", "trees", "chunks", "contents" };
        static const bool leaves[] = { true, false, false, false };   /* the catalog reads every snapshot */
        struct warmup *w = userdata;

        cairn_index_warm(w->index_dir, tables, leaves, ELEMENTSOF(tables));
        return NULL;
}

static void *warm_crypto(void *userdata) {
        static const uint8_t zero[CAIRN_KEY_SIZE];
        uint8_t out[CAIRN_ID_SIZE];

        /* OpenSSL's initialization (its config file, the providers) and
         * the fetches of SHA-256, AES-GCM and HKDF, once per process. */
        cairn_sha256(zero, sizeof zero, out);
        (void) cairn_hkdf(zero, sizeof zero, "cairnfs warm-up", out, sizeof out);
        return NULL;
}

static void warmup_start(struct warmup *w, const char *repo) {
        if ((size_t) snprintf(w->index_dir, sizeof w->index_dir, "%s/index", repo) < sizeof w->index_dir)
                w->index_started = pthread_create(&w->index_thread, NULL, warm_index, w) == 0;
        w->crypto_started = pthread_create(&w->crypto_thread, NULL, warm_crypto, w) == 0;
}

static void warmup_join(struct warmup *w) {
        if (w->index_started)
                pthread_join(w->index_thread, NULL);
        if (w->crypto_started)
                pthread_join(w->crypto_thread, NULL);
        w->index_started = w->crypto_started = false;
}

/* After the mount, in a thread: first the pages that an "ls" of each
 * job's latest snapshot reads (its root directory's rows, the tree's
 * chunk row, its files' first content rows), beside the first requests
 * that wait for them; then the whole index into the page cache at idle
 * I/O priority (when it is no more than an eighth of the memory, and
 * 1 GiB): the index is mapped for random access, and a walk of many
 * directories would else read it page by page. */
#define PREFETCH_JOBS 64
#define PREFETCH_ENTRIES 256

struct prefetch {
        struct fs_ctx *ctx;
        pthread_t thread;
        bool started;
        bool stop;                       /* atomic */
};

static void touch_latest_roots(struct fs_ctx *ctx) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct fs_catalog *cat;

        pthread_mutex_lock(&ctx->cat_lock);
        cat = fs_catalog_ref(ctx->cat);
        pthread_mutex_unlock(&ctx->cat_lock);
        if (!cat)
                return;
        if (cairn_index_txn_begin(ctx->index, false, &t) >= 0)
                for (size_t i = 0; i < MIN(cat->n_jobs, (size_t) PREFETCH_JOBS); i++) {
                        const struct fs_snap *s = cat->jobs[i].latest;
                        struct cairn_tree_iter *it = NULL;
                        struct cairn_chunk_loc loc;
                        const char *name;
                        size_t len;
                        struct cairn_entry e;

                        if (!s)
                                continue;
                        (void) cairn_index_chunk_get(t, s->root, &loc);
                        if (cairn_index_tree_iter_new(t, s->root, NULL, 0, &it) < 0)
                                continue;
                        for (unsigned k = 0; k < PREFETCH_ENTRIES && cairn_index_tree_iter_next(it, &name, &len, &e) > 0;
                             k++)
                                if (e.type == CAIRN_ENTRY_FILE) {
                                        struct cairn_content_chunk c;
                                        uint64_t start;
                                        (void) cairn_index_content_find(t, e.ref, 0, &c, &start);
                                }
                        cairn_index_tree_iter_free(it);
                }
        fs_catalog_unref(cat);
}

static void *prefetch_thread(void *userdata) {
        struct prefetch *p = userdata;
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        uint64_t max = MIN((uint64_t) 1 << 30, pages > 0 && psize > 0 ? (uint64_t) pages * (uint64_t) psize / 8 : 0);

        touch_latest_roots(p->ctx);
        /* ioprio_set(IOPRIO_WHO_PROCESS, this thread, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT):
         * the requests' own page faults go first */
        (void) syscall(SYS_ioprio_set, 1, 0, 3 << 13);
        (void) cairn_index_prefetch(p->ctx->index, max, &p->stop);
        return NULL;
}

static void prefetch_start(struct prefetch *p, struct fs_ctx *ctx) {
        p->ctx = ctx;
        p->started = pthread_create(&p->thread, NULL, prefetch_thread, p) == 0;
}

static void prefetch_stop(struct prefetch *p) {
        if (!p->started)
                return;
        __atomic_store_n(&p->stop, true, __ATOMIC_RELAXED);
        pthread_join(p->thread, NULL);
        p->started = false;
}

static void snapshot_passphrase(struct options *o) {
        const char *e = getenv("CAIRN_KEY_CACHE");

        if (!o->key_cache_set && e && *e && cairn_key_cache_parse(e, &o->key_cache) < 0) {
                log_warning("$CAIRN_KEY_CACHE: \"%s\" is not \"off\" or a duration; the key is not cached", e);
                o->key_cache = -1;
        }
        if (o->pass.kind != CAIRN_PASS_NONE)
                return;
        if (getenv("CAIRN_PASSWORD_FILE"))
                o->pass = (struct cairn_pass_source) { CAIRN_PASS_FILE, getenv("CAIRN_PASSWORD_FILE") };
        else if (getenv("CAIRN_PASSWORD_COMMAND"))
                o->pass = (struct cairn_pass_source) { CAIRN_PASS_COMMAND, getenv("CAIRN_PASSWORD_COMMAND") };
        else if (getenv("CAIRN_PASSWORD"))
                o->pass = (struct cairn_pass_source) { CAIRN_PASS_ENV, "CAIRN_PASSWORD" };
}

int main(int argc, char **argv) {
        struct options o = {
                .default_permissions = true,
                .cache_mib = DEFAULT_CACHE_MIB,
                .readahead = DEFAULT_READAHEAD,
                .threads = DEFAULT_THREADS,
        };
        struct fs_ctx ctx = {
                .cat_lock = PTHREAD_MUTEX_INITIALIZER,
                .stop_lock = PTHREAD_MUTEX_INITIALIZER,
                .stop_cond = PTHREAD_COND_INITIALIZER,
                .refresh_ms = 1000,
                .virtual_timeout = 1.0,
                .tree_timeout = 86400.0,
        };
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        bool as_helper = strncmp(base, "mount.", 6) == 0;
        _cleanup_close_ int notify_fd = -1;
        _cleanup_free_ char *mountpoint_abs = NULL;
        struct warmup warm = {};
        struct prefetch prefetch = {};
        int r, status = 1;
        bool mounted = false;

        cairn_log_set_handler(log_handler, NULL);
        /* Chunk buffers (about 1 MiB each, up to 8 MiB) come from the heap
         * and are reused when the cache evicts: fresh mmap()ed buffers cost
         * a page fault per 4 KiB on every cache miss, which was most of a
         * random read's time.  Memory stays bounded by the cache (plus
         * what is in flight); few arenas keep it from multiplying. */
        mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
        mallopt(M_ARENA_MAX, 2);

        if (parse_args(argc, argv, &o, as_helper) < 0)
                return 2;
        snapshot_passphrase(&o);
        if (o.debug)
                cairn_log_set_level(CAIRN_LOG_DEBUG);

        if (check_mountpoint(o.mountpoint) < 0 || check_fuse_device() < 0)
                return 1;
        /* The daemon leaves its working directory; unmounting needs the full path. */
        mountpoint_abs = realpath(o.mountpoint, NULL);
        if (!mountpoint_abs) {
                log_error_errno(-errno, "Mountpoint %s: %m", o.mountpoint);
                return 1;
        }
        o.mountpoint = mountpoint_abs;
        if (o.fake)
                return 0;

        if (!o.foreground) {
                notify_fd = fork_and_wait();
                if (notify_fd < 0)
                        return 1;
        }

        warmup_start(&warm, o.repo);
        o.pass.key_cache = o.key_cache;
        cairn_index_set_random_access(true);
        r = cairn_repo_open(o.repo, &o.pass, &ctx.repo);
        if (r < 0) {
                if (r == -ENOENT)
                        log_error("No cairn repository at %s (create one with \"cairn init\")", o.repo);
                goto out;
        }
        ctx.index = cairn_repo_index(ctx.repo);
        r = fs_nodes_new(&ctx.nodes);
        if (r < 0)
                goto out;
        r = cairn_chunk_cache_new(ctx.repo, (size_t) o.cache_mib << 20, o.readahead ? 2 : 0, &ctx.cache);
        if (r < 0)
                goto out;
        r = fs_catalog_init(&ctx);
        if (r < 0)
                goto out;
        ctx.uid = getuid();
        ctx.gid = getgid();
        ctx.mount_ns = now_ns();
        ctx.default_permissions = o.default_permissions;
        ctx.readahead_chunks = o.readahead;

        ctx.se = session_new(&o, &ctx);
        if (!ctx.se) {
                log_error("Cannot set up the FUSE session (see the message above)");
                goto out;
        }
        if (fuse_set_signal_handlers(ctx.se) < 0) {
                log_error("Cannot install signal handlers");
                goto out;
        }
        if (fuse_session_mount(ctx.se, o.mountpoint) < 0) {
                log_error("Cannot mount on %s (see the message above)", o.mountpoint);
                goto out;
        }
        mounted = true;
        r = fs_refresher_start(&ctx);
        if (r < 0)
                goto out;
        prefetch_start(&prefetch, &ctx);

        if (!o.foreground) {
                openlog("cairnfs", LOG_PID, LOG_DAEMON);
                daemon_syslog = true;
                if (chdir("/") < 0)
                        log_warning_errno(-errno, "chdir /: %m");
                tell_parent(&notify_fd, 0);
                detach_stdio();
        } else if (chdir("/") < 0)
                log_warning_errno(-errno, "chdir /: %m");
        log_info("Mounted %s on %s", o.repo, o.mountpoint);

        r = o.single ? fuse_session_loop(ctx.se) : request_loop(ctx.se, o.threads);
        if (r < 0)
                log_error_errno(r, "The FUSE session ended: %m");
        else
                status = 0;

out:
        tell_parent(&notify_fd, 1);
        warmup_join(&warm);
        prefetch_stop(&prefetch);
        fs_refresher_stop(&ctx);
        if (ctx.se) {
                if (mounted)
                        fuse_session_unmount(ctx.se);
                fuse_remove_signal_handlers(ctx.se);
                fuse_session_destroy(ctx.se);
        }
        cairn_chunk_cache_free(ctx.cache);
        fs_nodes_free(ctx.nodes);
        fs_catalog_unref(ctx.cat);
        cairn_repo_free(ctx.repo);
        free(o.fsname);
        for (unsigned i = 0; i < MIN(o.n_option_lists, (unsigned) ELEMENTSOF(o.option_lists)); i++)
                free(o.option_lists[i]);
        return status;
}
