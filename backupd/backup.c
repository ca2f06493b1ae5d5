/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One backup run: path and command sources (tar-command is in
 * source-tar.c), incremental reuse, warnings, the snapshot record.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "fault.h"
#include "log.h"
#include "util.h"

#define READ_SIZE (1024u * 1024)
#define XATTR_LIST_MAX_ (64u * 1024)

/* (dev, ino) of files with several links → their content, so a hard link
 * group is read once and its entries share one group id. */
struct bk_hardlinks {
        struct hl_slot {
                uint64_t dev, ino;
                uint8_t content[CAIRN_ID_SIZE];
                uint64_t size;
                bool used;
        } *slots;
        size_t n_slots, n;
};

static uint64_t hl_hash(uint64_t dev, uint64_t ino) {
        uint64_t h = dev * 0x9e3779b97f4a7c15ULL ^ ino;
        h ^= h >> 31;
        h *= 0xbf58476d1ce4e5b9ULL;
        return h ^ (h >> 29);
}

static struct hl_slot *hl_find(struct bk_hardlinks *h, uint64_t dev, uint64_t ino, bool create) {
        if (create && (h->n + 1) * 2 > h->n_slots) {
                size_t n_old = h->n_slots;
                struct hl_slot *old = h->slots;
                h->n_slots = n_old ? n_old * 2 : 256;
                h->slots = calloc(h->n_slots, sizeof *h->slots);
                if (!h->slots) {
                        h->slots = old;
                        h->n_slots = n_old;
                        return NULL;
                }
                h->n = 0;
                for (size_t i = 0; i < n_old; i++)
                        if (old[i].used) {
                                struct hl_slot *s = hl_find(h, old[i].dev, old[i].ino, true);
                                *s = old[i];
                        }
                free(old);
        }
        if (h->n_slots == 0)
                return NULL;
        for (size_t i = hl_hash(dev, ino) & (h->n_slots - 1);; i = (i + 1) & (h->n_slots - 1)) {
                struct hl_slot *s = &h->slots[i];
                if (s->used && s->dev == dev && s->ino == ino)
                        return s;
                if (!s->used) {
                        if (!create)
                                return NULL;
                        s->used = true;
                        s->dev = dev;
                        s->ino = ino;
                        h->n++;
                        return s;
                }
        }
}

void bk_backup_warn(struct bk_backup *b, const char *path, const char *fmt, ...) {
        char reason[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof reason, fmt, ap);
        va_end(ap);
        log_warning("job \"%s\": %s: %s", b->opts->job, path, reason);
        if (cairn_snapshot_add_error(b->snap, path, reason) < 0)
                log_error("Out of memory recording a warning");
}

struct latest_ctx {
        char *json;
        size_t len;
        uint8_t id[CAIRN_ID_SIZE];
};

static int latest_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                     size_t json_len, void *userdata) {
        struct latest_ctx *c = userdata;
        free(c->json);
        c->json = strndup(json, json_len);
        c->len = json_len;
        memcpy(c->id, id, CAIRN_ID_SIZE);
        return c->json ? 0 : -ENOMEM;
}

int bk_backup_new(struct cairn_repo *r, const struct bk_backup_options *opts, struct bk_backup **ret) {
        struct bk_backup *b;
        struct latest_ctx latest = { 0 };
        char host[256] = "localhost";
        long ncpu;
        int k;

        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->repo = r;
        b->opts = opts;
        b->links = calloc(1, sizeof *b->links);
        b->snap = calloc(1, sizeof *b->snap);
        b->root = bk_tree_new();
        (void) gethostname(host, sizeof host - 1);
        if (!b->links || !b->snap || !b->root || !(b->snap->job = strdup(opts->job)) || !(b->snap->host = strdup(host))) {
                bk_backup_free(b);
                return -ENOMEM;
        }
        b->run_start_ns = now_ns();
        b->snap->start_ns = opts->start_ns ? opts->start_ns : b->run_start_ns;
        {
                /* The snapshot's root directory: what "ls -ld" of a mount shows. */
                struct cairn_entry root = { .type = CAIRN_ENTRY_DIR, .mode = 040755, .nlink = 2,
                                            .mtime_ns = b->snap->start_ns, .ctime_ns = b->snap->start_ns,
                                            .atime_ns = b->snap->start_ns };
                (void) bk_tree_set_root(b->root, &root, NULL, 0);
        }
        for (size_t i = 0; i < opts->n_tags; i++) {
                char **t = realloc(b->snap->tags, (b->snap->n_tags + 1) * sizeof *t);
                if (!t || !(t[b->snap->n_tags] = strdup(opts->tags[i]))) {
                        if (t)
                                b->snap->tags = t;
                        bk_backup_free(b);
                        return -ENOMEM;
                }
                b->snap->tags = t;
                b->snap->n_tags++;
        }

        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        k = bk_pool_new(ncpu > 1 ? (unsigned) (ncpu - 1) : 0, &b->pool);
        if (k >= 0)
                k = cairn_store_new(r, &b->store);
        if (k >= 0)
                k = cairn_index_txn_begin(cairn_repo_index(r), false, &b->rtxn);
        /* The newest snapshot of the job, complete or partial, is the base
         * for incremental reuse: an entry is reused only when its stat
         * matches, so a file that was partial then is read again now. */
        if (k >= 0 && !opts->no_incremental)
                k = cairn_index_snapshot_foreach(b->rtxn, opts->job, latest_cb, &latest);
        if (k >= 0 && latest.json) {
                k = cairn_snapshot_from_json(latest.json, latest.len, &b->parent);
                if (k >= 0) {
                        b->snap->has_parent = true;
                        memcpy(b->snap->parent, latest.id, CAIRN_ID_SIZE);
                }
        }
        free(latest.json);
        if (k < 0) {
                bk_backup_free(b);
                return k;
        }
        *ret = b;
        return 0;
}

struct bk_backup *bk_backup_free(struct bk_backup *b) {
        if (!b)
                return NULL;
        bk_content_cache_free(b);
        bk_pool_free(b->pool);
        cairn_index_txn_abort(b->rtxn);
        cairn_store_free(b->store);
        cairn_snapshot_free(b->snap);
        cairn_snapshot_free(b->parent);
        bk_tree_free(b->root);
        if (b->links)
                free(b->links->slots);
        free(b->links);
        free(b);
        return NULL;
}

static int64_t ts_ns(const struct timespec *ts) {
        return (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static uint8_t entry_type(mode_t m) {
        switch (m & S_IFMT) {
        case S_IFREG: return CAIRN_ENTRY_FILE;
        case S_IFDIR: return CAIRN_ENTRY_DIR;
        case S_IFLNK: return CAIRN_ENTRY_SYMLINK;
        case S_IFIFO: return CAIRN_ENTRY_FIFO;
        case S_IFCHR: return CAIRN_ENTRY_CHR;
        case S_IFBLK: return CAIRN_ENTRY_BLK;
        case S_IFSOCK: return CAIRN_ENTRY_SOCK;
        default: return 0;
        }
}

static void entry_from_stat(const struct stat *st, struct cairn_entry *e) {
        *e = (struct cairn_entry) {
                .type = entry_type(st->st_mode),
                .mode = st->st_mode,
                .uid = st->st_uid,
                .gid = st->st_gid,
                .size = S_ISREG(st->st_mode) || S_ISLNK(st->st_mode) ? (uint64_t) st->st_size : 0,
                .mtime_ns = ts_ns(&st->st_mtim),
                .ctime_ns = ts_ns(&st->st_ctim),
                /* No atime: reading a file or listing a directory changes it,
                 * so storing it would make every directory a new tree blob
                 * (and new index rows) each night. */
                .rdev = S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? (uint64_t) st->st_rdev : 0,
                .ino = st->st_ino,
                .nlink = (uint32_t) st->st_nlink,
        };
        if (!S_ISDIR(st->st_mode) && st->st_nlink > 1)
                e->hardlink_group = hl_hash(st->st_dev, st->st_ino) | 1;
}

/* Extended attributes (POSIX ACLs are the system.posix_acl_* ones), read
 * by path without following a final symlink.  *ret_buf owns the storage
 * the returned cairn_xattr point into. */
static int read_xattrs(struct bk_backup *b, const char *path, struct cairn_xattr **ret, size_t *ret_n, char **ret_buf) {
        _cleanup_free_ char *names = NULL, *values = NULL;
        struct cairn_xattr *xa = NULL;
        ssize_t len, total = 0;
        size_t n = 0, cap = 0, used = 0;

        *ret = NULL;
        *ret_n = 0;
        *ret_buf = NULL;
        len = llistxattr(path, NULL, 0);
        if (len < 0) {
                if (errno == ENOTSUP || errno == ENOENT)
                        return 0;
                bk_backup_warn(b, path, "cannot list extended attributes: %m");
                return 0;
        }
        if (len == 0)
                return 0;
        names = malloc((size_t) len + 1);
        if (!names)
                return -ENOMEM;
        len = llistxattr(path, names, (size_t) len);
        if (len < 0) {
                bk_backup_warn(b, path, "cannot list extended attributes: %m");
                return 0;
        }
        names[len] = 0;
        for (char *p = names; p < names + len; p += strlen(p) + 1) {
                ssize_t v = lgetxattr(path, p, NULL, 0);
                if (v < 0) {
                        if (errno != ENODATA)
                                bk_backup_warn(b, path, "cannot read extended attribute %s: %m", p);
                        continue;
                }
                total += v;
        }
        values = malloc((size_t) total + (size_t) len + 1);
        if (!values)
                return -ENOMEM;
        memcpy(values, names, (size_t) len + 1);
        used = (size_t) len + 1;
        for (char *p = values; p < values + len; p += strlen(p) + 1) {
                ssize_t v;
                if (used >= (size_t) total + (size_t) len + 1)
                        break;
                v = lgetxattr(path, p, values + used, (size_t) total + (size_t) len + 1 - used);
                if (v < 0)
                        continue;       /* vanished or grew: warned above or next run */
                if (n == cap) {
                        struct cairn_xattr *bigger = realloc(xa, (cap = cap ? cap * 2 : 8) * sizeof *xa);
                        if (!bigger) {
                                free(xa);
                                return -ENOMEM;
                        }
                        xa = bigger;
                }
                xa[n++] = (struct cairn_xattr) { p, strlen(p), values + used, (size_t) v };
                used += (size_t) v;
        }
        *ret = xa;
        *ret_n = n;
        *ret_buf = TAKE_PTR(values);
        return 0;
}

void bk_backup_progress(struct bk_backup *b) {
        int64_t now;
        double secs, rate;

        if (!b->opts->progress)
                return;
        now = now_ns();
        if (now - b->last_progress_ns < 250000000)
                return;
        b->last_progress_ns = now;
        /* finished files plus what is read of the current one */
        uint64_t done = b->snap->bytes + (b->bytes_read - b->read_at_file_start);
        secs = (double) (now - b->run_start_ns) / 1e9;
        rate = secs > 0 ? (double) done / secs : 0;
        fprintf(stderr, "\r\033[K%s: %" PRIu64 " files, %.1f MiB (%.1f MiB read), %.1f MiB/s", b->opts->job,
                b->snap->files, (double) done / 1048576.0, (double) b->bytes_read / 1048576.0, rate / 1048576.0);
        /* The size is known only from the previous snapshot: an estimate. */
        if (b->parent && b->parent->bytes > done && rate > 0) {
                double left = (double) (b->parent->bytes - done) / rate;
                fprintf(stderr, ", ~%.0f%%, ETA %dm%02ds", 100.0 * (double) done / (double) b->parent->bytes,
                        (int) left / 60, (int) left % 60);
        }
}

/* Read an open regular file into a content, holes found with
 * SEEK_DATA/SEEK_HOLE and not stored.  Reads exactly @size bytes (the size
 * seen at stat); *ret_short is set when the file ended early. */
static int read_file(struct bk_backup *b, int fd, uint64_t size, uint8_t content[CAIRN_ID_SIZE],
                     uint64_t *ret_size, bool *ret_short) {
        struct bk_content *c = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t off = 0;
        int k;

        *ret_short = false;
        b->read_at_file_start = b->bytes_read;
        buf = malloc(READ_SIZE);
        if (!buf)
                return -ENOMEM;
        k = bk_content_begin(b, &c);
        if (k < 0)
                return k;
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        while (off < size) {
                off_t data = lseek(fd, (off_t) off, SEEK_DATA), hole;
                if (data < 0 && errno == ENXIO) {
                        /* Only a hole remains. */
                        k = bk_content_hole(c, size - off);
                        off = size;
                        break;
                }
                if (data < 0) {
                        data = (off_t) off;     /* no SEEK_DATA here: all data */
                        hole = (off_t) size;
                } else {
                        hole = lseek(fd, data, SEEK_HOLE);
                        if (hole < 0)
                                hole = (off_t) size;
                }
                if ((uint64_t) data > size)
                        data = (off_t) size;
                if ((uint64_t) hole > size)
                        hole = (off_t) size;
                if ((uint64_t) data > off) {
                        k = bk_content_hole(c, (uint64_t) data - off);
                        if (k < 0)
                                break;
                        off = (uint64_t) data;
                }
                while (off < (uint64_t) hole) {
                        ssize_t n = pread(fd, buf, MIN(READ_SIZE, (uint64_t) hole - off), (off_t) off);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                k = -errno;
                                break;
                        }
                        if (n == 0) {
                                *ret_short = true;
                                break;
                        }
                        k = bk_content_write(c, buf, (size_t) n);
                        if (k < 0)
                                break;
                        off += (uint64_t) n;
                        b->bytes_read += (uint64_t) n;
                        bk_backup_progress(b);
                        if (off < size)
                                cairn_fault_point("backup.mid-file");
                }
                if (k < 0 || *ret_short)
                        break;
        }
        if (k < 0) {
                bk_content_abort(c);
                return k;
        }
        k = bk_content_end(c, content, ret_size);
        b->read_at_file_start = b->bytes_read;
        return k;
}

static bool excluded(const struct bk_backup *b, const char *path, const char *name) {
        for (size_t i = 0; i < b->opts->n_excludes; i++) {
                const char *pat = b->opts->excludes[i];
                if (fnmatch(pat, path, FNM_PATHNAME | FNM_PERIOD) == 0 || fnmatch(pat, name, FNM_PERIOD) == 0)
                        return true;
        }
        return false;
}

static int walk_dir(struct bk_backup *b, int dfd, const char *path, dev_t dev, const uint8_t *prev_tree,
                    uint8_t ret_tree[CAIRN_ID_SIZE]);

/* Back up one directory entry (already lstat'ed) into @builder.  A problem
 * with this entry alone is a warning, returned as 0 with nothing added. */
static int backup_entry(struct bk_backup *b, int dfd, const char *name, const char *path, struct stat *st, dev_t dev,
                        const uint8_t *prev_tree, struct cairn_tree_builder *builder) {
        struct cairn_entry e, prev;
        struct cairn_xattr *xa = NULL;
        _cleanup_free_ char *xbuf = NULL, *target = NULL;
        bool have_prev = false;
        size_t n_xa = 0;
        int k;

        entry_from_stat(st, &e);
        if (e.type == 0) {
                bk_backup_warn(b, path, "unknown file type %o", (unsigned) (st->st_mode & S_IFMT));
                return 0;
        }
        if (prev_tree && cairn_index_tree_lookup(b->rtxn, prev_tree, name, strlen(name), &prev) >= 0)
                have_prev = prev.type == e.type;

        k = read_xattrs(b, path, &xa, &n_xa, &xbuf);
        if (k < 0)
                return k;

        switch (e.type) {
        case CAIRN_ENTRY_FILE: {
                struct hl_slot *hl = NULL;
                if (st->st_nlink > 1) {
                        hl = hl_find(b->links, st->st_dev, st->st_ino, false);
                        if (hl) {
                                memcpy(e.ref, hl->content, CAIRN_ID_SIZE);
                                e.size = hl->size;
                                break;
                        }
                }
                if (have_prev && !b->opts->no_incremental && prev.size == e.size && prev.mtime_ns == e.mtime_ns &&
                    prev.ctime_ns == e.ctime_ns && prev.ino == e.ino) {
                        memcpy(e.ref, prev.ref, CAIRN_ID_SIZE);
                        b->files_unchanged++;
                } else {
                        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME | O_NOCTTY);
                        struct stat after;
                        uint64_t size;
                        bool short_read;

                        if (fd < 0 && errno == EPERM)
                                fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                        if (fd < 0) {
                                bk_backup_warn(b, path, errno == ENOENT ? "vanished before it could be read"
                                                                         : "cannot open: %m");
                                free(xa);
                                return 0;
                        }
                        k = read_file(b, fd, e.size, e.ref, &size, &short_read);
                        if (k == -EIO || k == -EISDIR || k == -EINVAL) {
                                bk_backup_warn(b, path, "cannot read: %s", strerror(-k));
                                free(xa);
                                return 0;
                        }
                        if (k < 0) {
                                free(xa);
                                return k;
                        }
                        if (fstat(fd, &after) < 0 || after.st_size != st->st_size ||
                            ts_ns(&after.st_mtim) != e.mtime_ns || ts_ns(&after.st_ctim) != e.ctime_ns || short_read)
                                bk_backup_warn(b, path, "file changed while it was read");
                        e.size = size;
                }
                if (st->st_nlink > 1 && (hl = hl_find(b->links, st->st_dev, st->st_ino, true))) {
                        memcpy(hl->content, e.ref, CAIRN_ID_SIZE);
                        hl->size = e.size;
                }
                b->snap->files++;
                b->snap->bytes += e.size;
                break;
        }
        case CAIRN_ENTRY_DIR: {
                _cleanup_close_ int sub = -1;
                if (st->st_dev != dev && b->opts->one_file_system) {
                        /* A mount point: keep the directory, not what is mounted there. */
                        k = walk_dir(b, -1, path, dev, NULL, e.ref);
                        if (k < 0) {
                                free(xa);
                                return k;
                        }
                        break;
                }
                sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        bk_backup_warn(b, path, errno == ENOENT ? "vanished before it could be read"
                                                                 : "cannot open directory: %m");
                        free(xa);
                        return 0;
                }
                k = walk_dir(b, sub, path, dev, have_prev ? prev.ref : NULL, e.ref);
                if (k < 0) {
                        free(xa);
                        return k;
                }
                break;
        }
        case CAIRN_ENTRY_SYMLINK: {
                size_t cap = (size_t) st->st_size + 1;
                ssize_t n;
                target = malloc(cap);
                if (!target) {
                        free(xa);
                        return -ENOMEM;
                }
                n = readlinkat(dfd, name, target, cap);
                if (n < 0 || (size_t) n >= cap) {
                        bk_backup_warn(b, path, n < 0 ? "cannot read link: %m" : "link changed while it was read");
                        free(xa);
                        return 0;
                }
                e.target = target;
                e.target_len = (size_t) n;
                e.size = (uint64_t) n;
                b->snap->files++;
                break;
        }
        default:
                b->snap->files++;
                break;
        }

        k = cairn_tree_builder_add(builder, name, strlen(name), &e, xa, n_xa);
        free(xa);
        if (k == -EINVAL) {
                bk_backup_warn(b, path, "name or metadata cannot be stored");
                return 0;
        }
        return k;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Store directory @dfd (closed by the caller; -1 stores an empty
 * directory) as a tree blob. @prev_tree: the same directory in the parent
 * snapshot, or NULL. */
static int walk_dir(struct bk_backup *b, int dfd, const char *path, dev_t dev, const uint8_t *prev_tree,
                    uint8_t ret_tree[CAIRN_ID_SIZE]) {
        struct cairn_tree_builder *builder = NULL;
        char **names = NULL;
        size_t n = 0, cap = 0;
        _cleanup_free_ uint8_t *blob = NULL;
        size_t len;
        int k = 0;

        builder = cairn_tree_builder_new();
        if (!builder)
                return -ENOMEM;

        if (dfd >= 0) {
                int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
                DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
                struct dirent *de;

                if (!d) {
                        if (dup_fd >= 0)
                                close(dup_fd);
                        cairn_tree_builder_free(builder);
                        return -errno;
                }
                /* Names first, then entries: the directory stream is not held
                 * open across the whole subtree. */
                errno = 0;
                while ((de = readdir(d))) {
                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        if (n == cap) {
                                char **bigger = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
                                if (!bigger) {
                                        k = -ENOMEM;
                                        break;
                                }
                                names = bigger;
                        }
                        if (!(names[n] = strdup(de->d_name))) {
                                k = -ENOMEM;
                                break;
                        }
                        n++;
                }
                if (k >= 0 && errno)
                        bk_backup_warn(b, path, "cannot list the whole directory: %m");
                closedir(d);
                if (n > 1)
                        qsort(names, n, sizeof *names, cmp_str);
        }

        for (size_t i = 0; k >= 0 && i < n; i++) {
                _cleanup_free_ char *child = NULL;
                struct stat st;

                if (asprintf(&child, "%s/%s", streq(path, "/") ? "" : path, names[i]) < 0) {
                        k = -ENOMEM;
                        break;
                }
                if (excluded(b, child, names[i]))
                        continue;
                if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        bk_backup_warn(b, child, errno == ENOENT ? "vanished before it could be read" : "cannot stat: %m");
                        continue;
                }
                k = backup_entry(b, dfd, names[i], child, &st, dev, prev_tree, builder);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);

        if (k >= 0)
                k = cairn_tree_builder_finish(builder, &blob, &len);
        cairn_tree_builder_free(builder);
        if (k >= 0)
                k = cairn_store_add(b->store, CAIRN_BLOB_TREE, blob, len, ret_tree, NULL);
        if (k >= 0) {
                b->snap->dirs++;
                bk_backup_progress(b);
                cairn_fault_point("backup.after-tree");
        }
        return k;
}

/* The previous snapshot's entry at absolute @path, if any. */
static bool prev_lookup(struct bk_backup *b, const char *path, struct cairn_entry *ret) {
        uint8_t tree[CAIRN_ID_SIZE];
        const char *p = path;
        bool found = false;

        if (!b->parent)
                return false;
        memcpy(tree, b->parent->root, CAIRN_ID_SIZE);
        while (*p == '/')
                p++;
        while (*p) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);
                if (cairn_index_tree_lookup(b->rtxn, tree, p, len, ret) < 0)
                        return false;
                found = true;
                p += len;
                while (*p == '/')
                        p++;
                if (*p) {
                        if (ret->type != CAIRN_ENTRY_DIR)
                                return false;
                        memcpy(tree, ret->ref, CAIRN_ID_SIZE);
                }
        }
        return found;
}

/* Add the directories above @path with their real metadata. */
static int add_ancestors(struct bk_backup *b, const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        int k;

        if (!copy)
                return -ENOMEM;
        for (char *slash = strchr(copy + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                struct cairn_entry e;
                struct cairn_xattr *xa = NULL;
                _cleanup_free_ char *xbuf = NULL;
                struct stat st;
                size_t n_xa = 0;

                *slash = 0;
                if (lstat(copy, &st) < 0 || !S_ISDIR(st.st_mode))
                        return log_error_errno(-errno ? -errno : -ENOTDIR, "job \"%s\": cannot stat %s: %m", b->opts->job, copy);
                entry_from_stat(&st, &e);
                k = read_xattrs(b, copy, &xa, &n_xa, &xbuf);
                if (k >= 0)
                        k = bk_tree_add(b->root, copy + 1, &e, xa, n_xa);
                free(xa);
                *slash = '/';
                if (k < 0 && k != -EEXIST)
                        return log_error_errno(k, "job \"%s\": cannot add %s to the snapshot: %m", b->opts->job, copy);
        }
        return 0;
}

int bk_backup_path(struct bk_backup *b, const char *path) {
        struct cairn_tree_builder *builder = NULL;
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int pfd = -1;
        const char *name;
        struct stat st;
        size_t cursor = 0, name_len, entry_len, blob_len;
        const uint8_t *entry;
        _cleanup_free_ uint8_t *blob = NULL;
        const char *got;
        int k;

        if (path[0] != '/')
                return log_error_errno(-EINVAL, "job \"%s\": path %s is not absolute", b->opts->job, path);
        if (lstat(path, &st) < 0)
                return log_error_errno(-errno, "job \"%s\": source %s: %m", b->opts->job, path);

        if (streq(path, "/")) {
                _cleanup_close_ int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                uint8_t tree[CAIRN_ID_SIZE];
                struct cairn_entry e;
                if (fd < 0)
                        return -errno;
                k = walk_dir(b, fd, "/", st.st_dev, b->parent ? b->parent->root : NULL, tree);
                if (k < 0)
                        return k;
                entry_from_stat(&st, &e);
                memcpy(e.ref, tree, CAIRN_ID_SIZE);
                return bk_tree_set_root(b->root, &e, NULL, 0);
        }

        k = add_ancestors(b, path);
        if (k < 0)
                return k;
        name = strrchr(path, '/') + 1;
        parent = strndup(path, (size_t) (name - path - 1));
        if (!parent)
                return -ENOMEM;
        pfd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return log_error_errno(-errno, "job \"%s\": cannot open %s: %m", b->opts->job, parent[0] ? parent : "/");

        /* Back the entry up into a one-entry builder, then move it to its
         * place in the snapshot tree. */
        builder = cairn_tree_builder_new();
        if (!builder)
                return -ENOMEM;
        {
                /* The parent snapshot's directory holding this path, for reuse. */
                struct cairn_entry pdir;
                const uint8_t *prev_tree = NULL;
                uint8_t ptree[CAIRN_ID_SIZE];
                if (parent[0] == 0 && b->parent) {
                        memcpy(ptree, b->parent->root, CAIRN_ID_SIZE);
                        prev_tree = ptree;
                } else if (prev_lookup(b, parent, &pdir) && pdir.type == CAIRN_ENTRY_DIR) {
                        memcpy(ptree, pdir.ref, CAIRN_ID_SIZE);
                        prev_tree = ptree;
                }
                k = backup_entry(b, pfd, name, path, &st, st.st_dev, prev_tree, builder);
        }
        if (k >= 0)
                k = cairn_tree_builder_finish(builder, &blob, &blob_len);
        cairn_tree_builder_free(builder);
        if (k < 0)
                return k;
        if (cairn_tree_next(blob, blob_len, &cursor, &got, &name_len, &entry, &entry_len) <= 0)
                return 0;   /* warned: nothing to add */
        {
                struct cairn_entry e;
                struct cairn_xattr *xa = NULL;
                size_t n_xa = 0;
                k = cairn_entry_decode(entry, entry_len, &e);
                if (k >= 0)
                        k = bk_entry_xattrs(&e, &xa, &n_xa);
                if (k >= 0)
                        k = bk_tree_add(b->root, path + 1, &e, xa, n_xa);
                free(xa);
        }
        if (k < 0)
                return log_error_errno(k, "job \"%s\": cannot place %s in the snapshot: %m", b->opts->job, path);
        return 0;
}

int bk_backup_command(struct bk_backup *b, const char *command, const char *filename) {
        _cleanup_(bk_child_release) struct bk_child child = BK_CHILD_INIT;
        _cleanup_free_ char *last = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        struct bk_content *c = NULL;
        struct cairn_entry e = { .type = CAIRN_ENTRY_FILE, .mode = 0100644, .nlink = 1 };
        int status, k, kf;

        buf = malloc(READ_SIZE);
        if (!buf)
                return -ENOMEM;
        k = bk_child_start(b, command, &child);
        if (k < 0)
                return k;
        k = bk_content_begin(b, &c);
        while (k >= 0) {
                ssize_t n = read(child.out, buf, READ_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        k = log_error_errno(-errno, "job \"%s\": reading the output of \"%s\": %m", b->opts->job, command);
                        break;
                }
                if (n == 0)
                        break;
                k = bk_content_write(c, buf, (size_t) n);
                b->bytes_read += (uint64_t) n;
                bk_backup_progress(b);
        }
        kf = bk_child_finish(b, command, &child, &status, &last);
        if (k >= 0)
                k = kf;
        if (k >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                k = bk_child_failed(b, command, status, last);
        if (k < 0) {
                if (c)
                        bk_content_abort(c);
                return k;
        }
        k = bk_content_end(c, e.ref, &e.size);
        if (k < 0)
                return k;
        e.mtime_ns = e.ctime_ns = e.atime_ns = now_ns();
        e.uid = getuid();
        e.gid = getgid();
        b->snap->files++;
        b->snap->bytes += e.size;
        k = bk_tree_add(b->root, filename, &e, NULL, 0);
        if (k < 0)
                return log_error_errno(k, "job \"%s\": cannot add %s to the snapshot: %m", b->opts->job, filename);
        return 0;
}

int bk_backup_commit(struct bk_backup *b, uint8_t ret_id[CAIRN_ID_SIZE]) {
        const struct cairn_store_stats *st;
        uint8_t root[CAIRN_ID_SIZE];
        int k;

        k = bk_tree_store(b->root, b->store, root);
        if (k >= 0)
                k = cairn_store_flush(b->store);
        if (k < 0)
                return log_error_errno(k, "job \"%s\": cannot store the snapshot's data: %m", b->opts->job);
        cairn_fault_point("backup.before-snapshot");
        if (b->opts->progress)
                fprintf(stderr, "\r\033[K");
        st = cairn_store_stats(b->store);
        memcpy(b->snap->root, root, CAIRN_ID_SIZE);
        b->snap->end_ns = b->snap->start_ns + (now_ns() - b->run_start_ns);
        b->snap->bytes_read = b->bytes_read;
        b->snap->added_bytes = st->raw_added;
        b->snap->stored_bytes = st->stored_added;
        return cairn_snapshot_write(b->repo, b->snap, ret_id);
}
