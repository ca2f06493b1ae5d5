/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Restore drills: command lines for bwrap, docker and podman; running
 * one with its output collected; a cairnfs mount of our own for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drill.h"
#include "log.h"
#include "util.h"

#define MOUNT_WAIT_MS 60000
#define STOP_WAIT_MS 20000
#define KILL_GRACE_MS 10000
#define OUTPUT_TAIL 4096
#define MESSAGE_MAX 300
#define DRILL_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int bk_drill_runtime_parse(const char *s, enum bk_drill_runtime *ret) {
        if (!s)
                return -EINVAL;
        if (streq(s, "bwrap"))
                *ret = BK_DRILL_BWRAP;
        else if (streq(s, "docker"))
                *ret = BK_DRILL_DOCKER;
        else if (streq(s, "podman"))
                *ret = BK_DRILL_PODMAN;
        else
                return -EINVAL;
        return 0;
}

const char *bk_drill_runtime_name(enum bk_drill_runtime r) {
        switch (r) {
        case BK_DRILL_BWRAP: return "bwrap";
        case BK_DRILL_DOCKER: return "docker";
        case BK_DRILL_PODMAN: return "podman";
        }
        return "unknown";
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- argv ---- */

char **bk_strv_free(char **v) {
        if (!v)
                return NULL;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
        return NULL;
}

static void bk_strv_freep(char ***v) {
        bk_strv_free(*v);
}

struct strv {
        char **v;
        size_t n;
        int error;
};

static void add(struct strv *s, const char *arg) {
        char **nv;
        char *copy;

        if (s->error)
                return;
        copy = strdup(arg);
        nv = copy ? reallocarray(s->v, s->n + 2, sizeof *s->v) : NULL;
        if (!nv) {
                free(copy);
                s->error = -ENOMEM;
                return;
        }
        s->v = nv;
        s->v[s->n++] = copy;
        s->v[s->n] = NULL;
}

__attribute__((format(printf, 2, 3)))
static void addf(struct strv *s, const char *fmt, ...) {
        _cleanup_free_ char *arg = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&arg, fmt, ap);
        va_end(ap);
        if (k < 0) {
                arg = NULL;
                if (!s->error)
                        s->error = -ENOMEM;
                return;
        }
        add(s, arg);
}

/* A user name or uid → uid and (its primary, else the same number) gid. */
static int resolve_user(const char *user, uid_t *ret_uid, gid_t *ret_gid) {
        struct passwd *pw;
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(user, &end, 10);
        if (*user && !*end && !errno && v < (unsigned long) UINT32_MAX) {
                pw = getpwuid((uid_t) v);
                *ret_uid = (uid_t) v;
                *ret_gid = pw ? pw->pw_gid : (gid_t) v;
                return 0;
        }
        pw = getpwnam(user);
        if (!pw)
                return -ESRCH;
        *ret_uid = pw->pw_uid;
        *ret_gid = pw->pw_gid;
        return 0;
}

int bk_drill_argv(const struct bk_drill_spec *s, bool for_print, char ***ret) {
        _cleanup_free_ char *latest = NULL, *snap = NULL;
        struct strv a = { 0 };

        if (!s || !s->job || !s->script || !s->mountpoint || !ret)
                return -EINVAL;
        if (asprintf(&latest, "%s/%s/latest", s->mountpoint, s->job) < 0)
                return -ENOMEM;

        switch (s->runtime) {
        case BK_DRILL_DOCKER:
        case BK_DRILL_PODMAN:
                if (s->runtime == BK_DRILL_DOCKER) {
                        if (!s->image)
                                return log_error_errno(-EINVAL, "job \"%s\": a docker drill needs an image "
                                                       "(--image IMAGE or drill-image = IMAGE)", s->job);
                        add(&a, "docker");
                } else {
                        add(&a, "podman");
                        add(&a, "--runtime");
                        add(&a, "runc");
                        add(&a, "--cgroup-manager");
                        add(&a, "cgroupfs");
                }
                add(&a, "run");
                add(&a, "--rm");
                if (s->runtime == BK_DRILL_PODMAN) {
                        add(&a, "--ulimit");
                        add(&a, "nofile=16384:16384");
                        add(&a, "--ulimit");
                        add(&a, "nproc=16384:16384");
                }
                if (s->user) {
                        add(&a, "--user");
                        add(&a, s->user);
                }
                add(&a, "-e");
                add(&a, "BACKUP=/backup");
                add(&a, "-v");
                addf(&a, "%s:/backup:ro", latest);
                add(&a, "-v");
                addf(&a, "%s:/drill.sh:ro", s->script);
                if (s->image)
                        add(&a, s->image);
                else {
                        /* Options before --rootfs: what follows its path is the command. */
                        add(&a, "--rootfs");
                        add(&a, "/:O");
                }
                add(&a, "/bin/sh");
                add(&a, "/drill.sh");
                break;
        case BK_DRILL_BWRAP: {
                uid_t uid = 0;
                gid_t gid = 0;

                if (s->image)
                        log_warning("job \"%s\": bwrap runs on the host's root; the image %s is not used", s->job, s->image);
                if (s->user && resolve_user(s->user, &uid, &gid) < 0)
                        return log_error_errno(-EINVAL, "job \"%s\": no user \"%s\" for the drill", s->job, s->user);
                if (for_print)
                        snap = strdup(latest);
                else {
                        /* A bind of the symlink would follow it anyway; resolving
                         * it here pins the snapshot and names it in errors. */
                        snap = realpath(latest, NULL);
                        if (!snap) {
                                int k = -errno;
                                return log_error_errno(k, "job \"%s\": no complete snapshot to drill on (%s: %m)",
                                                       s->job, latest);
                        }
                }
                if (!snap)
                        return -ENOMEM;
                add(&a, "bwrap");
                add(&a, "--ro-bind");
                add(&a, "/");
                add(&a, "/");
                add(&a, "--dev");
                add(&a, "/dev");
                add(&a, "--proc");
                add(&a, "/proc");
                add(&a, "--tmpfs");
                add(&a, "/tmp");
                add(&a, "--tmpfs");
                add(&a, "/dev/shm");
                add(&a, "--ro-bind");
                add(&a, snap);
                add(&a, "/tmp/backup");
                add(&a, "--ro-bind");
                add(&a, s->script);
                add(&a, "/tmp/drill.sh");
                /* Our environment stays out (it may hold $CAIRN_PASSWORD), as
                 * it does in a container. */
                add(&a, "--clearenv");
                add(&a, "--setenv");
                add(&a, "PATH");
                add(&a, DRILL_PATH);
                add(&a, "--setenv");
                add(&a, "HOME");
                add(&a, "/tmp");
                add(&a, "--setenv");
                add(&a, "BACKUP");
                add(&a, "/tmp/backup");
                add(&a, "--unshare-all");
                if (s->user) {
                        add(&a, "--uid");
                        addf(&a, "%u", (unsigned) uid);
                        add(&a, "--gid");
                        addf(&a, "%u", (unsigned) gid);
                }
                add(&a, "--die-with-parent");
                add(&a, "/bin/sh");
                add(&a, "/tmp/drill.sh");
                break;
        }
        default:
                return -EINVAL;
        }
        if (a.error) {
                bk_strv_free(a.v);
                return a.error;
        }
        *ret = a.v;
        return 0;
}

static bool shell_safe(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("_./:=,@%+-", *s)))
                        return false;
        return true;
}

char *bk_drill_argv_format(char *const *argv) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        for (size_t i = 0; argv[i]; i++) {
                if (i)
                        fputc(' ', f);
                if (shell_safe(argv[i])) {
                        fputs(argv[i], f);
                        continue;
                }
                fputc('\'', f);
                for (const char *c = argv[i]; *c; c++)
                        if (*c == '\'')
                                fputs("'\\''", f);
                        else
                                fputc(*c, f);
                fputc('\'', f);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* ---- running ---- */

void bk_drill_result_release(struct bk_drill_result *r) {
        if (!r)
                return;
        free(r->snapshot);
        free(r->message);
        *r = (struct bk_drill_result) { 0 };
}

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
        stop_signal = sig;
}

/* An unlinked file for the child's output, in $TMPDIR or /tmp. */
static int capture_file(void) {
        const char *dir = getenv("TMPDIR");
        char path[PATH_MAX];
        int fd;

        if (!dir || !*dir)
                dir = "/tmp";
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0)
                return fd;
        snprintf(path, sizeof path, "%s/cairn-drill.XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        (void) unlink(path);
        return fd;
}

/* fork + exec @argv with stdin /dev/null and stdout/stderr on @out_fd
 * (and @err_fd, -1: the same).  The child dies with us (PDEATHSIG). */
static int spawn(char *const *argv, int out_fd, int err_fd, bool new_group, pid_t *ret_pid) {
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY);
                sigset_t none;

                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                signal(SIGPIPE, SIG_DFL);
                if (new_group)
                        (void) setpgid(0, 0);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (devnull >= 0 && devnull != 0) {
                        dup2(devnull, 0);
                        close(devnull);
                }
                if (out_fd >= 0 && dup2(out_fd, 1) < 0)
                        _exit(127);
                if (dup2(err_fd >= 0 ? err_fd : out_fd >= 0 ? out_fd : 2, 2) < 0)
                        _exit(127);
                execvp(argv[0], argv);
                dprintf(2, "cairn: cannot run %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        *ret_pid = pid;
        return 0;
}

/* The last non-empty line of @buf[0..n), at most MESSAGE_MAX bytes, malloc'd ("" when none). */
static char *last_line(const char *buf, size_t n) {
        size_t end = n, start;

        while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' '))
                end--;
        start = end;
        while (start > 0 && buf[start - 1] != '\n')
                start--;
        if (end - start > MESSAGE_MAX)
                start = end - MESSAGE_MAX;
        return strndup(buf + start, end - start);
}

static void show_tail(const char *buf, size_t n, unsigned max_lines, const char *title) {
        size_t start = n;
        unsigned lines = 0;

        while (n > 0 && buf[n - 1] == '\n')
                n--;
        start = n;
        while (start > 0 && lines < max_lines) {
                start--;
                if (buf[start] == '\n' && ++lines == max_lines) {
                        start++;
                        break;
                }
        }
        fprintf(stderr, "cairn: %s:\n", title);
        for (size_t i = start; i < n;) {
                size_t e = i;
                while (e < n && buf[e] != '\n')
                        e++;
                fprintf(stderr, "  | %.*s\n", (int) (e - i), buf + i);
                i = e + 1;
        }
}

/* Read what the child wrote: all of it to stdout with @show, the tail into @tail. */
static size_t collect_output(int fd, bool show, char *tail, size_t tail_size) {
        char buf[65536];
        size_t kept = 0;
        ssize_t n;

        if (lseek(fd, 0, SEEK_SET) < 0)
                return 0;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
                if (show)
                        fwrite(buf, 1, (size_t) n, stdout);
                if ((size_t) n >= tail_size) {
                        memcpy(tail, buf + n - tail_size, tail_size);
                        kept = tail_size;
                } else {
                        size_t keep = MIN(kept, tail_size - (size_t) n);
                        memmove(tail, tail + kept - keep, keep);
                        memcpy(tail + keep, buf, (size_t) n);
                        kept = keep + (size_t) n;
                }
        }
        if (show)
                fflush(stdout);
        return kept;
}

/* Wait for the drill (the leader of its own process group); on
 * SIGINT/SIGTERM/SIGHUP of ours, or after @timeout_s (0: never; then
 * *ret_timed_out), stop the group: SIGTERM, SIGKILL after a grace period. */
static int wait_child(pid_t pid, uint64_t timeout_s, int *ret_status, int *ret_stop_signal, bool *ret_timed_out) {
        int64_t killed_at = 0, start = mono_ms();
        bool termed = false;

        for (;;) {
                pid_t w = waitpid(pid, ret_status, termed || timeout_s ? WNOHANG : 0);

                if (w == pid)
                        return 0;
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (!termed && timeout_s && mono_ms() - start >= (int64_t) timeout_s * 1000) {
                        *ret_timed_out = true;
                        (void) kill(-pid, SIGTERM);
                        (void) kill(pid, SIGTERM);
                        termed = true;
                        killed_at = mono_ms();
                } else if (stop_signal && !termed) {
                        *ret_stop_signal = stop_signal;
                        (void) kill(-pid, SIGTERM);
                        (void) kill(pid, SIGTERM);
                        termed = true;
                        killed_at = mono_ms();
                } else if (!termed && w == 0)
                        sleep_ms(50);
                else if (termed) {
                        if (killed_at && mono_ms() - killed_at > KILL_GRACE_MS) {
                                (void) kill(-pid, SIGKILL);
                                (void) kill(pid, SIGKILL);
                                killed_at = 0;
                        }
                        sleep_ms(50);
                }
        }
}

int bk_drill_run(const struct bk_drill_spec *s, bool show_output, struct bk_drill_result *ret) {
        _cleanup_(bk_strv_freep) char **argv = NULL;
        _cleanup_free_ char *latest = NULL, *last = NULL;
        _cleanup_close_ int out = -1;
        struct sigaction sa = { .sa_handler = on_stop_signal }, old_int, old_term, old_hup;
        char link[PATH_MAX], tail[OUTPUT_TAIL];
        int status = 0, sig = 0, k;
        bool timed_out = false;
        size_t tail_n;
        pid_t pid = -1;
        ssize_t n;

        *ret = (struct bk_drill_result) { .start_ns = now_ns() };
        if (asprintf(&latest, "%s/%s/latest", s->mountpoint, s->job) < 0)
                return -ENOMEM;
        n = readlink(latest, link, sizeof link - 1);
        if (n > 0) {
                link[n] = 0;
                ret->snapshot = strdup(strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
        }
        if (access(s->script, R_OK) < 0) {
                k = -errno;
                ret->end_ns = now_ns();
                (void) asprintf(&ret->message, "cannot read the drill script %s: %s", s->script, strerror(-k));
                return log_error_errno(k, "job \"%s\": cannot read the drill script %s: %m", s->job, s->script);
        }
        if (n <= 0) {
                k = n < 0 ? -errno : -ENOENT;
                ret->end_ns = now_ns();
                (void) asprintf(&ret->message, "no complete snapshot to drill on (%s: %s)", latest, strerror(-k));
                return log_error_errno(k, "job \"%s\": no complete snapshot to drill on (%s: %m)", s->job, latest);
        }
        k = bk_drill_argv(s, false, &argv);
        if (k < 0) {
                ret->end_ns = now_ns();
                (void) asprintf(&ret->message, "cannot build the %s command line: %s", bk_drill_runtime_name(s->runtime),
                                strerror(-k));
                return k;
        }
        out = capture_file();
        if (out < 0) {
                k = out;
                ret->end_ns = now_ns();
                (void) asprintf(&ret->message, "cannot create a file for the drill's output: %s", strerror(-k));
                return log_error_errno(k, "job \"%s\": cannot create a file for the drill's output: %m", s->job);
        }

        log_info("job \"%s\": drill %s on snapshot %s (%s)", s->job, s->script, ret->snapshot ? ret->snapshot : "?",
                 bk_drill_runtime_name(s->runtime));
        stop_signal = 0;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGHUP, &sa, &old_hup);
        fflush(stdout);
        fflush(stderr);
        /* Its own process group, so that a stop reaches what it started. */
        k = spawn(argv, out, -1, true, &pid);
        if (k >= 0)
                k = wait_child(pid, s->timeout_s, &status, &sig, &timed_out);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        ret->end_ns = now_ns();
        if (k < 0) {
                (void) asprintf(&ret->message, "cannot run %s: %s", argv[0], strerror(-k));
                return log_error_errno(k, "job \"%s\": cannot run %s: %m", s->job, argv[0]);
        }

        tail_n = collect_output(out, show_output, tail, sizeof tail);
        last = last_line(tail, tail_n);
        ret->passed = !sig && !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (ret->passed) {
                ret->message = strdup("passed");
                log_info("job \"%s\": drill passed", s->job);
                return 0;
        }
        if (timed_out)
                k = asprintf(&ret->message, "timed out after %" PRIu64 " s (stopped)%s%s", s->timeout_s,
                             last && *last ? ": " : "", last ? last : "");
        else if (sig)
                k = asprintf(&ret->message, "stopped by signal %d%s%s", sig, last && *last ? ": " : "", last ? last : "");
        else if (WIFEXITED(status))
                k = asprintf(&ret->message, "exit status %d%s%s", WEXITSTATUS(status), last && *last ? ": " : "",
                             last ? last : "");
        else
                k = asprintf(&ret->message, "killed by signal %d%s%s", WTERMSIG(status), last && *last ? ": " : "",
                             last ? last : "");
        if (k < 0)
                ret->message = NULL;
        log_error("job \"%s\": restore drill %s failed (%s, snapshot %s): %s", s->job, s->script,
                  bk_drill_runtime_name(s->runtime), ret->snapshot ? ret->snapshot : "?",
                  ret->message ? ret->message : "out of memory");
        if (tail_n > 0 && !show_output)
                show_tail(tail, tail_n, 10, "the drill's last output");
        return 0;
}

/* ---- the mount ---- */

struct bk_drill_mount {
        char *dir;              /* the temporary directory */
        char *mnt;              /* dir/mnt, canonical */
        char *log;              /* dir/cairnfs.log */
        pid_t pid;
};

/* Reads /proc/self/mountinfo, never stats @path: a hung daemon cannot hang us. */
static bool is_mounted(const char *path) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        bool found = false;
        FILE *f = fopen("/proc/self/mountinfo", "re");

        if (!f)
                return false;
        while (!found && getline(&line, &size, f) > 0) {
                char *p = line, *field, out[PATH_MAX];
                size_t o = 0;

                /* id parent major:minor root MOUNTPOINT ... */
                for (int i = 0; i < 4 && p; i++)
                        p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
                if (!p)
                        continue;
                field = p;
                for (; *field && *field != ' ' && o + 1 < sizeof out; field++) {
                        /* octal escapes: \040 space, \011 tab, \012 newline, \134 backslash */
                        if (field[0] == '\\' && field[1] >= '0' && field[1] <= '3' && field[2] >= '0' && field[2] <= '7' &&
                            field[3] >= '0' && field[3] <= '7') {
                                out[o++] = (char) ((field[1] - '0') * 64 + (field[2] - '0') * 8 + (field[3] - '0'));
                                field += 3;
                        } else
                                out[o++] = *field;
                }
                out[o] = 0;
                found = streq(out, path);
        }
        fclose(f);
        return found;
}

static void log_tail_of(const char *path, const char *what) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;

        if (read_file_at(AT_FDCWD, path, 1 << 20, &data, &len) < 0 || len == 0)
                return;
        show_tail(data, len, 10, what);
}

static void mount_free(struct bk_drill_mount *m) {
        if (!m)
                return;
        if (m->log)
                (void) unlink(m->log);
        if (m->mnt)
                (void) rmdir(m->mnt);
        if (m->dir)
                (void) rmdir(m->dir);
        free(m->dir);
        free(m->mnt);
        free(m->log);
        free(m);
}

int bk_drill_mount_start(const char *cairnfs, const char *repo, const char *options, struct bk_drill_mount **ret) {
        _cleanup_free_ char *opts = NULL, *tmpl = NULL, *real = NULL;
        _cleanup_close_ int logfd = -1;
        const char *tmpdir = getenv("TMPDIR");
        struct bk_drill_mount *m;
        char *argv[7];
        int64_t t0;
        int k, status;

        if (!tmpdir || !*tmpdir)
                tmpdir = "/tmp";
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->pid = -1;
        if (asprintf(&tmpl, "%s/cairn-verify.XXXXXX", tmpdir) < 0) {
                free(m);
                return -ENOMEM;
        }
        if (!mkdtemp(tmpl)) {
                k = -errno;
                free(m);
                return log_error_errno(k, "Cannot create a temporary mountpoint in %s: %m", tmpdir);
        }
        real = realpath(tmpl, NULL);
        m->dir = real ? TAKE_PTR(real) : TAKE_PTR(tmpl);
        if (asprintf(&m->mnt, "%s/mnt", m->dir) < 0 || asprintf(&m->log, "%s/cairnfs.log", m->dir) < 0 ||
            asprintf(&opts, "allow_other%s%s", options && *options ? "," : "", options ? options : "") < 0) {
                mount_free(m);
                return -ENOMEM;
        }
        if (mkdir(m->mnt, 0755) < 0) {
                k = -errno;
                mount_free(m);
                return log_error_errno(k, "Cannot create the mountpoint %s: %m", m->mnt);
        }
        logfd = open(m->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (logfd < 0) {
                k = -errno;
                mount_free(m);
                return log_error_errno(k, "Cannot create %s: %m", m->log);
        }

        argv[0] = (char *) cairnfs;
        argv[1] = (char *) "-f";
        argv[2] = (char *) "-o";
        argv[3] = opts;
        argv[4] = (char *) repo;
        argv[5] = m->mnt;
        argv[6] = NULL;
        {
                _cleanup_close_ int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                k = spawn(argv, devnull, logfd, true, &m->pid);
        }
        if (k < 0) {
                mount_free(m);
                return log_error_errno(k, "Cannot start %s: %m", cairnfs);
        }

        t0 = mono_ms();
        while (!is_mounted(m->mnt)) {
                pid_t w = waitpid(m->pid, &status, WNOHANG);

                if (w == m->pid) {
                        log_error("%s exited (%s %d) before %s was mounted", cairnfs,
                                  WIFEXITED(status) ? "status" : "signal",
                                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), m->mnt);
                        log_tail_of(m->log, "cairnfs said");
                        m->pid = -1;
                        mount_free(m);
                        return -EIO;
                }
                if (mono_ms() - t0 > MOUNT_WAIT_MS) {
                        log_error("%s is not mounted %d s after starting %s", m->mnt, MOUNT_WAIT_MS / 1000, cairnfs);
                        log_tail_of(m->log, "cairnfs said");
                        (void) bk_drill_mount_stop(m);
                        return -ETIMEDOUT;
                }
                sleep_ms(50);
        }
        log_debug("mounted %s at %s for the drills (cairnfs pid %d)", repo, m->mnt, (int) m->pid);
        *ret = m;
        return 0;
}

const char *bk_drill_mount_path(const struct bk_drill_mount *m) {
        return m ? m->mnt : NULL;
}

int bk_drill_mount_stop(struct bk_drill_mount *m) {
        int status = 0, k = 0;
        int64_t t0;

        if (!m)
                return 0;
        if (m->pid > 0) {
                (void) kill(m->pid, SIGTERM);
                t0 = mono_ms();
                for (;;) {
                        pid_t w = waitpid(m->pid, &status, WNOHANG);
                        if (w == m->pid || (w < 0 && errno != EINTR))
                                break;
                        if (mono_ms() - t0 > STOP_WAIT_MS) {
                                log_warning("cairnfs (pid %d) did not exit %d s after SIGTERM; killing it", (int) m->pid,
                                            STOP_WAIT_MS / 1000);
                                (void) kill(m->pid, SIGKILL);
                                (void) waitpid(m->pid, &status, 0);
                                k = -EIO;
                                break;
                        }
                        sleep_ms(50);
                }
                if (k == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                        log_warning("cairnfs for the drills ended with %s %d", WIFEXITED(status) ? "status" : "signal",
                                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                        log_tail_of(m->log, "cairnfs said");
                        k = -EIO;
                }
        }
        if (is_mounted(m->mnt)) {
                char *argv[] = { (char *) "fusermount3", (char *) "-uz", m->mnt, NULL };
                pid_t pid = -1;

                if (spawn(argv, -1, -1, false, &pid) >= 0)
                        (void) waitpid(pid, NULL, 0);
                if (is_mounted(m->mnt)) {
                        log_warning("%s is still mounted; unmount it with \"fusermount3 -u %s\"", m->mnt, m->mnt);
                        free(m->mnt);
                        m->mnt = NULL;    /* keep the directory */
                        free(m->dir);
                        m->dir = NULL;
                }
                k = -EIO;
        }
        mount_free(m);
        return k;
}
