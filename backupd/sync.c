/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairn sync (sync.h): list both sides, copy in stages (config and keys,
 * packs, snapshot files), then delete what the source no longer has.
 * A destination is a local directory or an rclone remote; everything that
 * differs between the two is in the functions named local_* and rclone_*.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "repo.h"
#include "sync.h"
#include "util.h"
#include "verify-copy.h"

#define RCLONE_PREFIX "rclone:"
#define TEMP_PREFIX ".tmp-sync-"
#define PATH_SIZE 256
#define CONFIG_MAX (64u * 1024)
#define COPY_CHUNK (8u << 20)

/* rclone's exit status for "directory not found" (rclone docs, "Exit Code"). */
#define RCLONE_EXIT_DIR_NOT_FOUND 3

enum file_kind {
        KIND_CONFIG,
        KIND_KEY,
        KIND_PACK,
        KIND_SNAPSHOT,
        KIND_TEMP,                      /* DIR/.tmp-sync-…: an interrupted local copy's */
};

struct sync_file {
        char path[PATH_SIZE];           /* relative to the repository or DEST */
        uint64_t size;
        uint8_t kind;                   /* enum file_kind */
};

struct file_list {
        struct sync_file *f;            /* sorted by path once listed */
        size_t n, cap;
        size_t others;                  /* files listed that are no part of a repository */
};

struct sync {
        struct cairn_repo *r;
        const struct bk_sync_options *o;
        struct bk_sync_stats st;
        const char *dest;               /* as given, for messages */
        bool rclone;
        char *remote;                   /* rclone: "REMOTE:PATH" */
        char *src_abs;                  /* rclone: the repository's absolute path */
        int fd;                         /* local: DEST, flock()ed; -1 when it does not exist (dry run) */
};

static void sync_release(struct sync *s) {
        free(s->remote);
        free(s->src_abs);
        if (s->fd >= 0)
                close(s->fd);       /* also releases the flock */
}

bool bk_sync_dest_is_rclone(const char *dest) {
        return strncmp(dest, RCLONE_PREFIX, strlen(RCLONE_PREFIX)) == 0;
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_hex_id(const char *s) {
        uint8_t id[CAIRN_ID_SIZE];
        return strlen(s) == 2 * CAIRN_ID_SIZE && hex_decode(s, id, CAIRN_ID_SIZE) >= 0;
}

/* What a path inside a repository (or a copy) is; -1: no part of one. */
static int classify(const char *path) {
        const char *name;

        if (streq(path, "config"))
                return KIND_CONFIG;
        if (startswith(path, "keys/")) {
                name = path + 5;
                if (!*name || strchr(name, '/'))
                        return -1;
                if (startswith(name, TEMP_PREFIX))
                        return KIND_TEMP;
                return name[0] == '.' ? -1 : KIND_KEY;
        }
        if (startswith(path, "snapshots/")) {
                name = path + 10;
                if (strchr(name, '/'))
                        return -1;
                if (startswith(name, TEMP_PREFIX))
                        return KIND_TEMP;
                return is_hex_id(name) ? KIND_SNAPSHOT : -1;
        }
        if (startswith(path, "packs/")) {
                name = path + 6;
                if (strlen(name) < 4 || name[2] != '/' || !isxdigit((unsigned char) name[0]) ||
                    !isxdigit((unsigned char) name[1]) || strchr(name + 3, '/'))
                        return -1;
                if (startswith(name + 3, TEMP_PREFIX))
                        return KIND_TEMP;
                /* packs/xx/ID: xx is the first byte of ID */
                return is_hex_id(name + 3) && strncmp(name, name + 3, 2) == 0 ? KIND_PACK : -1;
        }
        return -1;
}

static int cmp_path(const void *a, const void *b) {
        return strcmp(((const struct sync_file *) a)->path, ((const struct sync_file *) b)->path);
}

/* Add @path (of @size) when it is part of a repository; count it in
 * ->others when not. */
static int list_add(struct file_list *l, const char *path, uint64_t size) {
        int kind = classify(path);

        if (kind < 0 || strlen(path) >= PATH_SIZE) {
                l->others++;
                return 0;
        }
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 256;
                struct sync_file *f = reallocarray(l->f, cap, sizeof *f);
                if (!f)
                        return -ENOMEM;
                l->f = f;
                l->cap = cap;
        }
        snprintf(l->f[l->n].path, PATH_SIZE, "%s", path);
        l->f[l->n].size = size;
        l->f[l->n].kind = (uint8_t) kind;
        l->n++;
        return 0;
}

static const struct sync_file *list_find(const struct file_list *l, const char *path) {
        struct sync_file key;
        if (strlen(path) >= PATH_SIZE)
                return NULL;
        snprintf(key.path, sizeof key.path, "%s", path);
        return l->n > 0 ? bsearch(&key, l->f, l->n, sizeof *l->f, cmp_path) : NULL;
}

/* --- local directories (the source, and a local DEST) ----------------------- */

/* The regular files of directory @dir below @fd. */
static int local_list_dir(int fd, const char *label, const char *dir, struct file_list *l) {
        _cleanup_close_ int dfd = -1;
        struct dirent *de;
        DIR *d;
        int k = 0;

        dfd = openat(fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Cannot open %s/%s: %m", label, dir);
        d = fdopendir(TAKE_FD(dfd));
        if (!d)
                return -errno;
        while (k >= 0 && (de = readdir(d))) {
                char path[PATH_SIZE + 8];
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if ((size_t) snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= PATH_SIZE) {
                        l->others++;
                        continue;
                }
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue;       /* gone meanwhile (a temporary file) */
                        k = log_error_errno(-errno, "Cannot stat %s/%s: %m", label, path);
                        break;
                }
                if (!S_ISREG(st.st_mode)) {
                        l->others += !S_ISDIR(st.st_mode);
                        continue;
                }
                k = list_add(l, path, (uint64_t) st.st_size);
        }
        closedir(d);
        return k;
}

/* config, keys/, packs/xx/ and snapshots/ below @fd.  snapshots/ first:
 * a snapshot file is published after its packs, so every pack a listed
 * snapshot needs is in the packs listed after it. */
static int local_list(int fd, const char *label, struct file_list *l) {
        _cleanup_close_ int pfd = -1;
        struct dirent *de;
        struct stat st;
        DIR *d;
        int k;

        k = local_list_dir(fd, label, "snapshots", l);
        if (k < 0)
                return k;
        pfd = openat(fd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (pfd < 0 && errno != ENOENT)
                return log_error_errno(-errno, "Cannot open %s/packs: %m", label);
        if (pfd >= 0) {
                d = fdopendir(TAKE_FD(pfd));
                if (!d)
                        return -errno;
                while (k >= 0 && (de = readdir(d))) {
                        char dir[16];
                        uint8_t byte;

                        if (strlen(de->d_name) != 2 || hex_decode(de->d_name, &byte, 1) < 0)
                                continue;
                        snprintf(dir, sizeof dir, "packs/%s", de->d_name);
                        k = local_list_dir(fd, label, dir, l);
                }
                closedir(d);
                if (k < 0)
                        return k;
        }
        k = local_list_dir(fd, label, "keys", l);
        if (k < 0)
                return k;
        if (fstatat(fd, "config", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
                k = list_add(l, "config", (uint64_t) st.st_size);
        else if (errno != ENOENT)
                return log_error_errno(-errno, "Cannot stat %s/config: %m", label);
        if (k < 0)
                return k;
        if (l->n > 1)
                qsort(l->f, l->n, sizeof *l->f, cmp_path);
        return 0;
}

/* Bytes from @in to @out: copy_file_range, else read/write. */
static int copy_data(int in, int out, uint64_t *ret_copied) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t done = 0;
        ssize_t n;

        for (;;) {
                n = copy_file_range(in, NULL, out, NULL, COPY_CHUNK, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && done == 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
                                           errno == EINVAL))
                        break;  /* not here: read and write */
                if (n < 0)
                        return -errno;
                if (n == 0) {
                        *ret_copied = done;
                        return 0;
                }
                done += (uint64_t) n;
        }
        buf = malloc(COPY_CHUNK);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                int k;
                n = read_full(in, buf, COPY_CHUNK);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        break;
                k = write_full(out, buf, (size_t) n);
                if (k < 0)
                        return k;
                done += (uint64_t) n;
        }
        *ret_copied = done;
        return 0;
}

/* mkdir @dir below DEST (and fsync its parent when it was made), so a
 * file renamed into it survives a crash. */
static int local_mkdir(struct sync *s, const char *dir) {
        char parent[PATH_SIZE];
        char *slash;

        if (mkdirat(s->fd, dir, 0700) < 0)
                return errno == EEXIST ? 0 : log_error_errno(-errno, "Cannot create %s/%s: %m", s->dest, dir);
        snprintf(parent, sizeof parent, "%s", dir);
        slash = strrchr(parent, '/');
        if (slash)
                *slash = 0;
        return fsync_dir_at(s->fd, slash ? parent : ".");
}

/* Copy one file durably: DIR/.tmp-sync-XXXX, fsync, rename, fsync DIR. */
static int local_copy(struct sync *s, const struct sync_file *f) {
        _cleanup_close_ int in = -1, out = -1;
        char dir[PATH_SIZE], tmp[PATH_SIZE + 64], rhex[17];
        uint8_t rnd[8];
        uint64_t copied = 0;
        char *slash;
        int k;

        snprintf(dir, sizeof dir, "%s", f->path);
        slash = strrchr(dir, '/');
        if (slash) {
                *slash = 0;
                if (f->kind == KIND_PACK) {
                        k = local_mkdir(s, "packs");
                        if (k < 0)
                                return k;
                }
                k = local_mkdir(s, dir);
                if (k < 0)
                        return k;
        } else
                snprintf(dir, sizeof dir, ".");
        k = cairn_random_bytes(rnd, sizeof rnd);
        if (k < 0)
                return k;
        snprintf(tmp, sizeof tmp, "%s/" TEMP_PREFIX "%s", dir, hex_encode(rnd, sizeof rnd, rhex));

        in = openat(cairn_repo_fd(s->r), f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (in < 0)
                return log_error_errno(-errno, "Cannot open %s/%s: %m", cairn_repo_path(s->r), f->path);
        out = openat(s->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return log_error_errno(-errno, "Cannot create %s/%s: %m", s->dest, tmp);
        k = copy_data(in, out, &copied);
        if (k >= 0 && copied != f->size)
                k = log_error_errno(-EIO, "%s/%s has %" PRIu64 " bytes, not the %" PRIu64 " listed (changed while "
                                    "copied?)", cairn_repo_path(s->r), f->path, copied, f->size);
        else if (k < 0)
                k = log_error_errno(k, "Cannot copy %s/%s to %s/%s: %m", cairn_repo_path(s->r), f->path, s->dest, tmp);
        if (k >= 0 && fsync(out) < 0)
                k = log_error_errno(-errno, "Cannot sync %s/%s: %m", s->dest, tmp);
        if (k >= 0 && close(TAKE_FD(out)) < 0)
                k = log_error_errno(-errno, "Cannot write %s/%s: %m", s->dest, tmp);
        if (k >= 0 && renameat(s->fd, tmp, s->fd, f->path) < 0)
                k = log_error_errno(-errno, "Cannot rename %s/%s to %s: %m", s->dest, tmp, f->path);
        if (k < 0) {
                (void) unlinkat(s->fd, tmp, 0);
                return k;
        }
        k = fsync_dir_at(s->fd, dir);
        if (k < 0)
                return log_error_errno(k, "Cannot sync %s/%s: %m", s->dest, dir);
        return 0;
}

static int local_delete(struct sync *s, const struct sync_file *f) {
        char dir[PATH_SIZE];
        char *slash;
        int k;

        if (unlinkat(s->fd, f->path, 0) < 0 && errno != ENOENT)
                return log_error_errno(-errno, "Cannot delete %s/%s: %m", s->dest, f->path);
        snprintf(dir, sizeof dir, "%s", f->path);
        slash = strrchr(dir, '/');
        if (slash)
                *slash = 0;
        k = fsync_dir_at(s->fd, slash ? dir : ".");
        return k < 0 ? log_error_errno(k, "Cannot sync %s/%s: %m", s->dest, dir) : 0;
}

/* mkdir -p of the directories above @path (as mkdir(1): mode 0777 less
 * the umask). */
static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        char *slash;

        if (!p)
                return -ENOMEM;
        for (slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = 0;
                if (mkdir(p, 0777) < 0 && errno != EEXIST)
                        return -errno;
                *slash = '/';
        }
        return 0;
}

/* Open (creating, unless a dry run) and lock a local DEST.  Refuse the
 * repository itself or a directory inside it. */
static int local_open(struct sync *s, bool shared) {
        _cleanup_free_ char *src = NULL, *dst = NULL;
        size_t n;

        if (!s->o || !s->o->dry_run) {
                int k = mkdir_parents(s->dest);
                if (k >= 0 && mkdir(s->dest, 0700) < 0 && errno != EEXIST)
                        k = -errno;
                if (k < 0)
                        return log_error_errno(k, "Cannot create %s: %m", s->dest);
        }
        s->fd = open(s->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->fd < 0) {
                if (errno == ENOENT && s->o && s->o->dry_run)
                        return 0;
                return log_error_errno(-errno, "Cannot open %s: %m", s->dest);
        }
        src = realpath(cairn_repo_path(s->r), NULL);
        dst = realpath(s->dest, NULL);
        if (!src || !dst)
                return log_error_errno(-errno, "Cannot resolve %s: %m", src ? s->dest : cairn_repo_path(s->r));
        n = strlen(src);
        if (strncmp(dst, src, n) == 0 && (dst[n] == 0 || dst[n] == '/'))
                return log_error_errno(-EINVAL, "%s is the repository %s or inside it: sync to another place",
                                       s->dest, cairn_repo_path(s->r));
        if (flock(s->fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return log_error_errno(-EBUSY, "Another cairn sync to %s is running", s->dest);
                return log_error_errno(-errno, "Cannot lock %s: %m", s->dest);
        }
        return 0;
}

/* DEST's top level holds nothing but keys/, packs/ and snapshots/? */
static int local_top_is_clean(struct sync *s) {
        _cleanup_close_ int fd = -1;
        struct dirent *de;
        DIR *d;
        bool clean = true;

        fd = openat(s->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && !streq(de->d_name, "keys") &&
                    !streq(de->d_name, "packs") && !streq(de->d_name, "snapshots") && !startswith(de->d_name, TEMP_PREFIX))
                        clean = false;
        closedir(d);
        return clean;
}

/* --- rclone --------------------------------------------------------------------- */

/* Read a whole (memfd) file from its start; *ret NUL-terminated. */
static int slurp_fd(int fd, char **ret, size_t *ret_len) {
        off_t size = lseek(fd, 0, SEEK_END);
        char *buf;
        ssize_t n;

        if (size < 0)
                return -errno;
        buf = malloc((size_t) size + 1);
        if (!buf)
                return -ENOMEM;
        n = pread_full(fd, buf, (size_t) size, 0);
        if (n < 0) {
                free(buf);
                return (int) n;
        }
        buf[n] = 0;
        *ret = buf;
        if (ret_len)
                *ret_len = (size_t) n;
        return 0;
}

/* Run "rclone ARGS..." with stdin from /dev/null; @keep_fd (or -1) stays
 * open across exec.  @capture: stdout and stderr into *ret_out and
 * *ret_err (malloc'd, NUL-terminated), else inherited.  Returns rclone's
 * exit status, or -errno when it could not run (logged). */
static int rclone_run(const char *const *args, int keep_fd, bool capture, char **ret_out, size_t *ret_out_len,
                      char **ret_err) {
        _cleanup_close_ int out = -1, err = -1;
        const char *argv[32];
        size_t n = 0;
        int status, k;
        pid_t pid;

        argv[n++] = "rclone";
        for (; *args && n < ELEMENTSOF(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        if (capture) {
                out = memfd_create("cairn-rclone-out", MFD_CLOEXEC);
                err = memfd_create("cairn-rclone-err", MFD_CLOEXEC);
                if (out < 0 || err < 0)
                        return log_error_errno(-errno, "Cannot create a buffer for rclone's output: %m");
        }
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0)
                return log_error_errno(-errno, "Cannot fork for rclone: %m");
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY);
                if (devnull >= 0)
                        dup2(devnull, 0);
                if (capture) {
                        dup2(out, 1);
                        dup2(err, 2);
                }
                if (keep_fd >= 0)
                        (void) fcntl(keep_fd, F_SETFD, 0);
                signal(SIGPIPE, SIG_DFL);
                execvp("rclone", (char *const *) argv);
                fprintf(stderr, "cairn: error: Cannot run rclone: %s (install Debian's rclone package)\n",
                        strerror(errno));
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return log_error_errno(-errno, "Cannot wait for rclone: %m");
        if (capture) {
                k = slurp_fd(out, ret_out, ret_out_len);
                if (k >= 0)
                        k = slurp_fd(err, ret_err, NULL);
                if (k < 0)
                        return log_error_errno(k, "Cannot read rclone's output: %m");
        }
        if (WIFSIGNALED(status))
                return log_error_errno(-ECHILD, "rclone %s was killed by signal %d", args[0] ? argv[1] : "",
                                       WTERMSIG(status));
        if (WEXITSTATUS(status) == 127) {
                /* Our child's message ("Cannot run rclone"), or the shell's. */
                if (capture)
                        fputs(*ret_err, stderr);
                return -ENOENT;
        }
        return WEXITSTATUS(status);
}

/* rclone's error lines, each prefixed, for the operator. */
static void rclone_show_errors(const char *err) {
        const char *line = err, *nl;

        while (line && *line) {
                nl = strchr(line, '\n');
                if (nl > line || (!nl && *line))
                        fprintf(stderr, "rclone: %.*s\n", (int) (nl ? nl - line : (ptrdiff_t) strlen(line)), line);
                line = nl ? nl + 1 : NULL;
        }
}

static const char *rclone_quiet(const struct sync *s) {
        int v = s->o ? s->o->rclone_verbosity : 0;
        return v >= 2 ? "-v" : "-q";
}

/* "REMOTE:PATH" + "/" + @rel (no '/' doubled). malloc'd. */
static char *rclone_path(const struct sync *s, const char *rel) {
        size_t n = strlen(s->remote);
        char *p = NULL;
        bool bare = n > 0 && (s->remote[n - 1] == ':' || s->remote[n - 1] == '/');
        if (asprintf(&p, "%s%s%s", s->remote, bare ? "" : "/", rel) < 0)
                return NULL;
        return p;
}

static int rclone_open(struct sync *s) {
        const char *spec = s->dest + strlen(RCLONE_PREFIX);
        size_t n;

        if (!strchr(spec, ':'))
                return log_error_errno(-EINVAL, "%s: expected rclone:REMOTE:PATH (a remote of \"rclone "
                                       "listremotes\", then a path on it)", s->dest);
        s->remote = strdup(spec);
        if (!s->remote)
                return -ENOMEM;
        /* "REMOTE:path/" → "REMOTE:path"; "REMOTE:" and "REMOTE:/" stay. */
        n = strlen(s->remote);
        while (n > 1 && s->remote[n - 1] == '/' && s->remote[n - 2] != ':')
                s->remote[--n] = 0;
        /* Absolute, so that rclone never reads a ':' in it as a remote. */
        s->src_abs = realpath(cairn_repo_path(s->r), NULL);
        if (!s->src_abs)
                return log_error_errno(-errno, "Cannot resolve %s: %m", cairn_repo_path(s->r));
        return 0;
}

/* Every file at the remote; a remote directory that does not exist yet
 * is an empty listing (*ret_exists false). */
static int rclone_list(struct sync *s, struct file_list *l, bool *ret_exists) {
        _cleanup_free_ char *out = NULL, *err = NULL;
        const char *args[] = { "lsf", "-R", "--files-only", "--format", "sp", "--separator", ";", "-q", s->remote, NULL };
        char *line, *next;
        int k;

        *ret_exists = true;
        k = rclone_run(args, -1, true, &out, NULL, &err);
        if (k < 0)
                return k;
        if (k == RCLONE_EXIT_DIR_NOT_FOUND) {
                *ret_exists = false;
                return 0;
        }
        if (k != 0) {
                rclone_show_errors(err);
                return log_error_errno(-ECHILD, "Cannot list %s: rclone lsf exited with status %d", s->dest, k);
        }
        for (line = out; line && *line; line = next) {
                char *semi, *end;
                uint64_t size;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                semi = strchr(line, ';');
                if (!semi)
                        continue;
                *semi = 0;
                size = strtoull(line, &end, 10);
                if (end != semi)
                        continue;
                k = list_add(l, semi + 1, size);
                if (k < 0)
                        return k;
        }
        if (l->n > 1)
                qsort(l->f, l->n, sizeof *l->f, cmp_path);
        return 0;
}

/* DEST's config (which the listing showed), byte for byte; *ret malloc'd. */
static int rclone_read_config(struct sync *s, char **ret, size_t *ret_len) {
        _cleanup_free_ char *path = rclone_path(s, "config"), *out = NULL, *err = NULL;
        const char *args[] = { "cat", "-q", path, NULL };
        size_t len = 0;
        int k;

        if (!path)
                return -ENOMEM;
        k = rclone_run(args, -1, true, &out, &len, &err);
        if (k < 0)
                return k;
        if (k != 0) {
                rclone_show_errors(err);
                return log_error_errno(-ECHILD, "Cannot read %s: rclone cat exited with status %d", path, k);
        }
        *ret = TAKE_PTR(out);
        *ret_len = len;
        return 0;
}

/* One rclone copy of the files @todo[0..n) (from the repository). */
static int rclone_copy(struct sync *s, const struct sync_file *const *todo, size_t n, const char *what) {
        _cleanup_close_ int fd = -1;
        char from[64];
        const char *args[] = { "copy", "--files-from-raw", from, "--no-traverse", rclone_quiet(s), s->src_abs,
                               s->remote, NULL };
        int k;

        if (n == 0)
                return 0;
        fd = memfd_create("cairn-files-from", MFD_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot create a file list for rclone: %m");
        for (size_t i = 0; i < n; i++) {
                k = write_full(fd, todo[i]->path, strlen(todo[i]->path));
                if (k >= 0)
                        k = write_full(fd, "\n", 1);
                if (k < 0)
                        return log_error_errno(k, "Cannot write a file list for rclone: %m");
        }
        snprintf(from, sizeof from, "/proc/self/fd/%d", fd);
        k = rclone_run(args, fd, false, NULL, NULL, NULL);
        if (k < 0)
                return k;
        if (k != 0)
                return log_error_errno(-ECHILD, "Cannot copy %s to %s: rclone copy of %zu file%s exited with "
                                       "status %d (see its errors above)", what, s->dest, n, n == 1 ? "" : "s", k);
        return 0;
}

static int rclone_delete(struct sync *s, const struct sync_file *f) {
        _cleanup_free_ char *path = rclone_path(s, f->path);
        const char *args[] = { "deletefile", rclone_quiet(s), path, NULL };
        int k;

        if (!path)
                return -ENOMEM;
        k = rclone_run(args, -1, false, NULL, NULL, NULL);
        if (k < 0)
                return k;
        if (k != 0)
                return log_error_errno(-ECHILD, "Cannot delete %s: rclone deletefile exited with status %d", path, k);
        return 0;
}

/* --- sync ----------------------------------------------------------------------- */

static int dest_open(struct sync *s, bool shared) {
        s->fd = -1;
        s->rclone = bk_sync_dest_is_rclone(s->dest);
        return s->rclone ? rclone_open(s) : local_open(s, shared);
}

static int dest_list(struct sync *s, struct file_list *l, bool *ret_exists) {
        *ret_exists = s->fd >= 0;
        if (s->rclone)
                return rclone_list(s, l, ret_exists);
        if (s->fd < 0)
                return 0;
        return local_list(s->fd, s->dest, l);
}

/* DEST is empty, or a copy of this repository: its config is ours. */
static int dest_check(struct sync *s, const struct file_list *dst) {
        _cleanup_free_ char *mine = NULL, *theirs = NULL;
        size_t mine_len, theirs_len = 0;
        int k;

        if (!list_find(dst, "config")) {
                bool clean = dst->others == 0;
                /* Only what an interrupted first sync leaves: temporary files. */
                for (size_t i = 0; i < dst->n; i++)
                        clean &= dst->f[i].kind == KIND_TEMP;
                if (clean && !s->rclone && s->fd >= 0) {
                        k = local_top_is_clean(s);
                        if (k < 0)
                                return log_error_errno(k, "Cannot read %s: %m", s->dest);
                        clean = k > 0;
                }
                if (!clean)
                        return log_error_errno(-ENOTEMPTY, "%s is not empty and holds no copy of a cairn repository "
                                               "(no config): refusing to sync into it", s->dest);
                return 0;
        }
        k = read_file_at(cairn_repo_fd(s->r), "config", CONFIG_MAX, &mine, &mine_len);
        if (k < 0)
                return log_error_errno(k, "Cannot read %s/config: %m", cairn_repo_path(s->r));
        if (s->rclone)
                k = rclone_read_config(s, &theirs, &theirs_len);
        else {
                k = read_file_at(s->fd, "config", CONFIG_MAX, &theirs, &theirs_len);
                if (k < 0 && k != -EFBIG)
                        return log_error_errno(k, "Cannot read %s/config: %m", s->dest);
                if (k == -EFBIG)
                        theirs_len = SIZE_MAX;
                k = 0;
        }
        if (k < 0)
                return k;
        if (theirs_len != mine_len || memcmp(mine, theirs, mine_len) != 0)
                return log_error_errno(-EXDEV, "%s holds a copy of another repository (its config is not that of "
                                       "%s): refusing to sync into it", s->dest, cairn_repo_path(s->r));
        return 0;
}

static bool in_stage(uint8_t kind, int stage) {
        switch (stage) {
        case 0: return kind == KIND_CONFIG || kind == KIND_KEY;
        case 1: return kind == KIND_PACK;
        default: return kind == KIND_SNAPSHOT;
        }
}

static const char *const stage_name[] = { "config and key files", "packs", "snapshot files" };

/* Copy the source's files of @stage that DEST lacks or holds with
 * another size. */
static int copy_stage(struct sync *s, const struct file_list *src, const struct file_list *dst, int stage) {
        _cleanup_free_ const struct sync_file **todo = NULL;
        size_t n = 0;
        int k;

        todo = calloc(MAX(src->n, (size_t) 1), sizeof *todo);
        if (!todo)
                return -ENOMEM;
        for (size_t i = 0; i < src->n; i++) {
                const struct sync_file *f = &src->f[i], *d;

                if (!in_stage(f->kind, stage))
                        continue;
                d = list_find(dst, f->path);
                if (d && d->size == f->size) {
                        s->st.skipped++;
                        continue;
                }
                todo[n++] = f;
        }
        for (size_t i = 0; i < n; i++) {
                if (!s->rclone && !s->o->dry_run) {
                        k = local_copy(s, todo[i]);
                        if (k < 0)
                                return k;
                        s->st.copied++;
                        s->st.bytes += todo[i]->size;
                }
                if (s->o->list)
                        fprintf(s->o->out, "%s %s (%" PRIu64 " bytes)\n", s->o->dry_run ? "would copy" : "copy",
                                todo[i]->path, todo[i]->size);
        }
        if (!s->rclone && !s->o->dry_run)
                return 0;
        if (s->rclone && !s->o->dry_run) {
                if (s->o->list)
                        fflush(s->o->out);
                k = rclone_copy(s, todo, n, stage_name[stage]);
                if (k < 0)
                        return k;
        }
        for (size_t i = 0; i < n; i++) {
                s->st.copied++;
                s->st.bytes += todo[i]->size;
        }
        return 0;
}

/* Delete DEST's files of @kind that the source does not have (every
 * leftover temporary file, for KIND_TEMP). */
static int delete_kind(struct sync *s, const struct file_list *src, const struct file_list *dst, uint8_t kind) {
        int k;

        for (size_t i = 0; i < dst->n; i++) {
                const struct sync_file *f = &dst->f[i];

                if (f->kind != kind || (kind != KIND_TEMP && list_find(src, f->path)))
                        continue;
                if (!s->o->dry_run) {
                        k = s->rclone ? rclone_delete(s, f) : local_delete(s, f);
                        if (k < 0)
                                return k;
                }
                if (s->o->list)
                        fprintf(s->o->out, "%s %s\n", s->o->dry_run ? "would delete" : "delete", f->path);
                s->st.deleted++;
                s->st.deleted_bytes += f->size;
        }
        return 0;
}

static int sync_run(struct sync *s) {
        struct file_list src = { 0 }, dst = { 0 };
        bool exists;
        int k;

        k = dest_open(s, false);
        if (k >= 0)
                k = local_list(cairn_repo_fd(s->r), cairn_repo_path(s->r), &src);
        if (k >= 0 && !list_find(&src, "config"))
                k = log_error_errno(-ENOENT, "%s has no config: not a repository", cairn_repo_path(s->r));
        if (k >= 0)
                k = dest_list(s, &dst, &exists);
        if (k >= 0)
                k = dest_check(s, &dst);
        if (k >= 0 && !s->rclone && s->fd >= 0 && !s->o->dry_run) {
                static const char *const dirs[] = { "keys", "packs", "snapshots" };
                for (size_t i = 0; k >= 0 && i < ELEMENTSOF(dirs); i++)
                        k = local_mkdir(s, dirs[i]);
        }
        for (int stage = 0; k >= 0 && stage < 3; stage++)
                k = copy_stage(s, &src, &dst, stage);
        if (k >= 0 && s->o->delete_gone) {
                /* Snapshot files first: no snapshot at DEST ever lacks a pack. */
                k = delete_kind(s, &src, &dst, KIND_SNAPSHOT);
                if (k >= 0)
                        k = delete_kind(s, &src, &dst, KIND_PACK);
                if (k >= 0 && !s->rclone)
                        k = delete_kind(s, &src, &dst, KIND_TEMP);
        }
        free(src.f);
        free(dst.f);
        return k;
}

int bk_sync(struct cairn_repo *r, const char *dest, const struct bk_sync_options *o, struct bk_sync_stats *ret) {
        struct sync s = { .r = r, .o = o, .dest = dest, .fd = -1 };
        int k = sync_run(&s);

        if (ret)
                *ret = s.st;
        sync_release(&s);
        return k;
}

/* --- verify --------------------------------------------------------------------- */

int bk_sync_verify(struct cairn_repo *r, const char *dest, const struct cairn_copy_verify_options *vo,
                   struct cairn_copy_verify_stats *ret) {
        static const struct bk_sync_options dry = { .dry_run = true };
        struct sync s = { .r = r, .o = &dry, .dest = dest, .fd = -1 };
        struct file_list l = { 0 };
        struct cairn_copy_file *files = NULL;
        bool exists;
        int k;

        /* dry_run: a missing local DEST is not created, only reported. */
        k = dest_open(&s, true);
        if (k >= 0 && !s.rclone && s.fd < 0)
                k = log_error_errno(-ENOENT, "There is no copy at %s", dest);
        if (k >= 0 && !s.rclone)
                k = cairn_copy_verify_dir(r, s.fd, dest, vo, ret);
        else if (k >= 0) {
                k = rclone_list(&s, &l, &exists);
                if (k >= 0 && !exists)
                        k = log_error_errno(-ENOENT, "There is no copy at %s", dest);
                if (k >= 0) {
                        files = calloc(MAX(l.n, (size_t) 1), sizeof *files);
                        if (!files)
                                k = -ENOMEM;
                }
                for (size_t i = 0; k >= 0 && i < l.n; i++)
                        files[i] = (struct cairn_copy_file) { .path = l.f[i].path, .size = l.f[i].size };
                if (k >= 0)
                        k = cairn_copy_verify_listing(r, files, l.n, dest, vo, ret);
        }
        free(files);
        free(l.f);
        sync_release(&s);
        return k;
}
