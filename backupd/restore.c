/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Restore: the snapshot's tree is walked with index cursors inside one read
 * transaction (entries are borrowed from it, so it lives for the whole
 * restore), and every object is created relative to its parent's directory
 * fd with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW: a symlink, whether restored a
 * moment ago or already in the target, is never walked through.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "link-map.h"
#include "log.h"
#include "restore.h"
#include "util.h"

static const uint8_t zero_id[CAIRN_ID_SIZE];

static bool id_is_zero(const uint8_t id[CAIRN_ID_SIZE]) {
        return memcmp(id, zero_id, CAIRN_ID_SIZE) == 0;
}

static void tree_iter_freep(struct cairn_tree_iter **it) {
        cairn_index_tree_iter_free(*it);
}

/* A tree id with no rows in `trees` is an empty directory only if its
 * blob is known; otherwise the index lacks it, and walking it would
 * quietly give nothing. */
static int tree_known(struct cairn_txn *t, const uint8_t tree[CAIRN_ID_SIZE]) {
        struct cairn_chunk_loc loc;

        if (id_is_zero(tree))
                return 0;
        return cairn_index_chunk_get(t, tree, &loc);
}

int bk_tree_resolve(struct cairn_txn *t, const uint8_t root[CAIRN_ID_SIZE], const char *path,
                    struct cairn_entry *ret_entry, bool *ret_is_root) {
        struct cairn_entry e = { .type = CAIRN_ENTRY_DIR, .mode = S_IFDIR | 0755, .nlink = 2 };
        const char *p = path ? path : "";
        bool is_root = true, trailing_slash = false;
        int r;

        r = tree_known(t, root);
        if (r == -ENOENT) {
                char hex[2 * CAIRN_ID_SIZE + 1];
                return log_error_errno(r, "Root tree %s of the snapshot is not in the index",
                                       hex_encode(root, CAIRN_ID_SIZE, hex));
        }
        if (r < 0)
                return r;

        memcpy(e.ref, root, CAIRN_ID_SIZE);
        for (;;) {
                const char *end;
                uint8_t dir[CAIRN_ID_SIZE];

                while (*p == '/') {
                        trailing_slash = true;
                        p++;
                }
                if (!*p)
                        break;
                trailing_slash = false;
                if (e.type != CAIRN_ENTRY_DIR)
                        return -ENOTDIR;

                end = strchrnul(p, '/');
                /* The lookup overwrites e, whose ref names the directory. */
                memcpy(dir, e.ref, CAIRN_ID_SIZE);
                r = cairn_index_tree_lookup(t, dir, p, (size_t) (end - p), &e);
                if (r < 0)
                        return r;
                is_root = false;
                p = end;
        }
        /* "file/" names a directory that is not there, as in POSIX. */
        if (!is_root && trailing_slash && e.type != CAIRN_ENTRY_DIR)
                return -ENOTDIR;

        if (ret_entry)
                *ret_entry = e;
        if (ret_is_root)
                *ret_is_root = is_root;
        return 0;
}

/* One data chunk, decoded, checked against the length its content row
 * claims.  *ret malloc'd.  Not logged: callers name the file. */
static int chunk_read(struct cairn_repo *r, struct cairn_txn *t, const struct cairn_content_chunk *c,
                      uint8_t **ret) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        int k;

        k = cairn_repo_blob_read(r, t, c->id, &data, &len);
        if (k < 0)
                return k;
        if (len != c->length)
                return -EBADMSG;
        *ret = TAKE_PTR(data);
        return 0;
}

ssize_t bk_content_pread(struct cairn_repo *r, struct cairn_txn *t, const uint8_t content[CAIRN_ID_SIZE],
                         void *buf, size_t len, uint64_t offset) {
        uint8_t *out = buf;
        uint64_t size;
        size_t done = 0;
        int k;

        if (id_is_zero(content))
                return 0;
        k = cairn_index_content_size(t, content, &size);
        if (k < 0)
                return k;
        if (offset >= size)
                return 0;
        len = (size_t) MIN((uint64_t) len, size - offset);
        len = MIN(len, (size_t) SSIZE_MAX);

        while (done < len) {
                _cleanup_free_ uint8_t *data = NULL;
                struct cairn_content_chunk c;
                uint64_t start, in;
                size_t n;

                k = cairn_index_content_find(t, content, offset + done, &c, &start);
                if (k < 0)
                        return k;
                in = offset + done - start;
                n = (size_t) MIN(c.length - in, (uint64_t) (len - done));
                if (c.flags & CAIRN_CHUNK_HOLE)
                        memset(out + done, 0, n);
                else {
                        k = chunk_read(r, t, &c, &data);
                        if (k < 0) {
                                char cid[2 * CAIRN_ID_SIZE + 1], chid[2 * CAIRN_ID_SIZE + 1];
                                return log_error_errno(k, "Cannot read content %s at offset %" PRIu64 ": chunk %s: %m",
                                                       hex_encode(content, CAIRN_ID_SIZE, cid), start,
                                                       hex_encode(c.id, CAIRN_ID_SIZE, chid));
                        }
                        memcpy(out + done, data + in, n);
                }
                done += n;
        }
        return (ssize_t) done;
}

struct restore_ctx {
        struct cairn_repo *repo;
        struct cairn_txn *t;
        struct bk_restore_options o;
        struct bk_restore_stats stats;
        const char *target;      /* for messages, without trailing '/' */
        int target_fd;
        char *path;              /* of the entry being restored, relative to target_fd */
        size_t path_len, path_cap;
        struct bk_link_map links;
        bool chown_warned;
};

/* Errors that every following entry would hit as well: stop at once. */
static bool error_is_fatal(int r) {
        return r == -ENOMEM || r == -ENOSPC || r == -EDQUOT || r == -EROFS || r == -EMFILE || r == -ENFILE;
}

/* Log a failure of the current entry, naming its restored path; returns @r. */
__attribute__((format(printf, 3, 4)))
static int entry_fail(struct restore_ctx *c, int r, const char *fmt, ...) {
        char what[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        return log_error_errno(r, "Cannot restore %s/%s: %s: %m", c->target, c->path, what);
}

/* Append "/name" (or "name" at the top) to c->path; returns the previous
 * length for path_pop. */
static int path_push(struct restore_ctx *c, const char *name, size_t len, size_t *ret_saved) {
        size_t need = c->path_len + 1 + len + 1;

        if (need > c->path_cap) {
                size_t cap = MAX(need, c->path_cap * 2);
                char *p = realloc(c->path, cap);
                if (!p)
                        return -ENOMEM;
                c->path = p;
                c->path_cap = cap;
        }
        *ret_saved = c->path_len;
        if (c->path_len > 0)
                c->path[c->path_len++] = '/';
        memcpy(c->path + c->path_len, name, len);
        c->path_len += len;
        c->path[c->path_len] = 0;
        return 0;
}

static void path_pop(struct restore_ctx *c, size_t saved) {
        c->path_len = saved;
        c->path[saved] = 0;
}

static struct timespec ns_to_timespec(int64_t ns) {
        struct timespec ts = { .tv_sec = (time_t) (ns / 1000000000), .tv_nsec = (long) (ns % 1000000000) };
        /* Division truncates toward zero; times before 1970 need the floor. */
        if (ts.tv_nsec < 0) {
                ts.tv_nsec += 1000000000;
                ts.tv_sec--;
        }
        return ts;
}

/* A name that a new non-directory wants is taken: refuse, or with
 * overwrite remove what is there, unless it is a directory (whose
 * contents we will not throw away). */
static int make_room(struct restore_ctx *c, int dirfd, const char *name) {
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!c->o.overwrite)
                return -EEXIST;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static const char *make_room_reason(int r) {
        if (r == -EEXIST)
                return "it already exists (restore with overwrite to replace it)";
        if (r == -EISDIR)
                return "a directory is in the way";
        return "cannot replace what is there";
}

/* Owner, xattrs, mode, times of a restored object: through @fd when the
 * object is open (files, directories), else by @name in @dirfd without
 * following it.  Owner first because chown clears setuid/setgid and file
 * capabilities; xattrs (ACLs among them) before the mode so that the mode
 * has the last word on the ACL mask, as in the source; times last.  Every
 * step is tried; returns the first failure (each one logged). */
static int apply_metadata(struct restore_ctx *c, int fd, int dirfd, const char *name, const struct cairn_entry *e) {
        bool is_link = e->type == CAIRN_ENTRY_SYMLINK;
        mode_t mode = e->mode & 07777;
        char proc[64 + CAIRN_NAME_MAX];
        struct cairn_xattr x;
        size_t cursor = 0;
        int k, r = 0;

        if ((fd >= 0 ? fchown(fd, e->uid, e->gid) : fchownat(dirfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW)) < 0) {
                if (errno == EPERM && geteuid() != 0) {
                        /* Like cp -a: an unprivileged restore keeps its own
                         * owner, and a setuid bit must not end up on a file
                         * owned by someone else than the snapshot says. */
                        if (!c->chown_warned)
                                log_warning("Not running as root: files keep the restoring user as owner");
                        c->chown_warned = true;
                        if (e->type != CAIRN_ENTRY_DIR)
                                mode &= ~(mode_t) (S_ISUID | S_ISGID);
                } else
                        r = entry_fail(c, -errno, "setting owner %" PRIu32 ":%" PRIu32, e->uid, e->gid);
        }

        /* Objects we do not hold open get their xattrs by a path that
         * resolves the directory through its fd and leaves the last
         * component unfollowed (lsetxattr), so no symlink is walked. */
        if (fd < 0)
                snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", dirfd, name);
        for (;;) {
                char xname[XATTR_NAME_MAX + 1];

                k = cairn_entry_xattr_next(e, &cursor, &x);
                if (k < 0) {
                        k = entry_fail(c, k, "its extended attributes are malformed in the index");
                        r = r < 0 ? r : k;
                        break;
                }
                if (k == 0)
                        break;
                if (x.name_len > XATTR_NAME_MAX) {
                        k = entry_fail(c, -ERANGE, "extended attribute %.*s", (int) MIN(x.name_len, (size_t) 64), x.name);
                        r = r < 0 ? r : k;
                        continue;
                }
                memcpy(xname, x.name, x.name_len);
                xname[x.name_len] = 0;
                k = fd >= 0 ? fsetxattr(fd, xname, x.value, x.value_len, 0)
                            : lsetxattr(proc, xname, x.value, x.value_len, 0);
                if (k < 0) {
                        k = entry_fail(c, -errno, "setting extended attribute %s", xname);
                        r = r < 0 ? r : k;
                }
        }

        /* A symlink's mode is fixed at 0777 on Linux. */
        if (!is_link) {
                k = fd >= 0 ? fchmod(fd, mode) : fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW);
                if (k < 0) {
                        k = entry_fail(c, -errno, "setting mode %04o", (unsigned) mode);
                        r = r < 0 ? r : k;
                }
        }

        /* Path sources do not store atime (see backup.c): 0 means "not
         * stored", and the restored file gets its mtime as atime. */
        struct timespec ts[2] = { ns_to_timespec(e->atime_ns ? e->atime_ns : e->mtime_ns), ns_to_timespec(e->mtime_ns) };
        k = fd >= 0 ? futimens(fd, ts) : utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
        if (k < 0) {
                k = entry_fail(c, -errno, "setting times");
                r = r < 0 ? r : k;
        }
        return r;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
        while (n > 0) {
                ssize_t w = pwrite(fd, p, n, (off_t) off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                n -= (size_t) w;
                off += (uint64_t) w;
        }
        return 0;
}

/* The file's data: its size first (so holes stay unallocated), then each
 * data chunk at its offset, one decoded chunk in memory at a time. */
static int write_content(struct restore_ctx *c, int fd, const struct cairn_entry *e) {
        char chid[2 * CAIRN_ID_SIZE + 1];
        uint64_t size, off = 0;
        int k;

        if (ftruncate(fd, (off_t) e->size) < 0)
                return entry_fail(c, -errno, "setting its size to %" PRIu64, e->size);
        /* No content id: nothing to write; a non-zero size (should a writer
         * store a file that is all hole this way) is then one hole. */
        if (id_is_zero(e->ref))
                return 0;

        k = cairn_index_content_size(c->t, e->ref, &size);
        if (k < 0)
                return entry_fail(c, k, "content %s is not in the index", hex_encode(e->ref, CAIRN_ID_SIZE, chid));
        if (size != e->size)
                return entry_fail(c, -EBADMSG, "its content holds %" PRIu64 " bytes but its entry says %" PRIu64,
                                  size, e->size);

        while (off < size) {
                _cleanup_free_ uint8_t *data = NULL;
                struct cairn_content_chunk ch;
                uint64_t start;

                k = cairn_index_content_find(c->t, e->ref, off, &ch, &start);
                if (k < 0)
                        return entry_fail(c, k, "finding the chunk at offset %" PRIu64, off);
                if (!(ch.flags & CAIRN_CHUNK_HOLE)) {
                        k = chunk_read(c->repo, c->t, &ch, &data);
                        if (k < 0)
                                return entry_fail(c, k, "chunk %s at offset %" PRIu64,
                                                  hex_encode(ch.id, CAIRN_ID_SIZE, chid), start);
                        k = pwrite_all(fd, data, ch.length, start);
                        if (k < 0)
                                return entry_fail(c, k, "writing %" PRIu64 " bytes at offset %" PRIu64, ch.length, start);
                        c->stats.bytes += ch.length;
                }
                off = start + ch.length;
        }
        return 0;
}

/* Each restore_* below returns 0 or the entry's first failure (logged);
 * *ret_created says whether the object now exists, so hard links to it
 * can follow even when some metadata could not be set. */

static int restore_file(struct restore_ctx *c, int dirfd, const char *name, const struct cairn_entry *e,
                        bool *ret_created) {
        _cleanup_close_ int fd = -1;
        int k;

        for (int attempt = 0;; attempt++) {
                /* O_EXCL never opens through a symlink, not even a dangling one. */
                fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0)
                        break;
                k = -errno;
                if (k != -EEXIST || attempt > 0)
                        return entry_fail(c, k, "creating it");
                k = make_room(c, dirfd, name);
                if (k < 0)
                        return entry_fail(c, k, "%s", make_room_reason(k));
        }

        k = write_content(c, fd, e);
        if (k < 0) {
                /* Never leave a file with wrong bytes where the right
                 * ones are expected. */
                (void) unlinkat(dirfd, name, 0);
                return k;
        }
        *ret_created = true;
        return apply_metadata(c, fd, dirfd, name, e);
}

static int restore_symlink(struct restore_ctx *c, int dirfd, const char *name, const struct cairn_entry *e,
                           bool *ret_created) {
        _cleanup_free_ char *target = NULL;
        int k;

        if (e->target_len == 0 || memchr(e->target, 0, e->target_len))
                return entry_fail(c, -EINVAL, "its link target is empty or holds a NUL byte");
        target = strndup(e->target, e->target_len);
        if (!target)
                return -ENOMEM;

        for (int attempt = 0;; attempt++) {
                if (symlinkat(target, dirfd, name) == 0)
                        break;
                k = -errno;
                if (k != -EEXIST || attempt > 0)
                        return entry_fail(c, k, "creating the symlink");
                k = make_room(c, dirfd, name);
                if (k < 0)
                        return entry_fail(c, k, "%s", make_room_reason(k));
        }
        *ret_created = true;
        return apply_metadata(c, -1, dirfd, name, e);
}

static int restore_special(struct restore_ctx *c, int dirfd, const char *name, const struct cairn_entry *e,
                           bool *ret_created) {
        mode_t type;
        dev_t dev = 0;
        int k;

        switch (e->type) {
        case CAIRN_ENTRY_FIFO:
                type = S_IFIFO;
                break;
        case CAIRN_ENTRY_CHR:
                type = S_IFCHR;
                dev = (dev_t) e->rdev;
                break;
        case CAIRN_ENTRY_BLK:
                type = S_IFBLK;
                dev = (dev_t) e->rdev;
                break;
        case CAIRN_ENTRY_SOCK:
                type = S_IFSOCK;
                break;
        default:
                return entry_fail(c, -EBADMSG, "unknown entry type %u", e->type);
        }

        for (int attempt = 0;; attempt++) {
                if (mknodat(dirfd, name, type | 0600, dev) == 0)
                        break;
                k = -errno;
                if (k != -EEXIST || attempt > 0)
                        return entry_fail(c, k, "creating the %s", type == S_IFIFO ? "fifo" : type == S_IFSOCK ? "socket" : "device node");
                k = make_room(c, dirfd, name);
                if (k < 0)
                        return entry_fail(c, k, "%s", make_room_reason(k));
        }
        *ret_created = true;
        return apply_metadata(c, -1, dirfd, name, e);
}

/* A later member of a hard-link group: link to the first one, found by
 * its path below the target one component at a time without following
 * symlinks. */
static int restore_hardlink(struct restore_ctx *c, int dirfd, const char *name, const char *first,
                            bool *ret_created) {
        _cleanup_close_ int owned = -1;
        int parent = c->target_fd;
        const char *p = first, *slash;
        char comp[CAIRN_NAME_MAX + 1];
        int k;

        while ((slash = strchr(p, '/'))) {
                size_t n = (size_t) (slash - p);
                int fd;

                if (n > CAIRN_NAME_MAX)
                        return entry_fail(c, -ENAMETOOLONG, "linking to %s", first);
                memcpy(comp, p, n);
                comp[n] = 0;
                fd = openat(parent, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return entry_fail(c, -errno, "linking to %s/%s", c->target, first);
                closep(&owned);
                owned = parent = fd;
                p = slash + 1;
        }

        for (int attempt = 0;; attempt++) {
                if (linkat(parent, p, dirfd, name, 0) == 0)
                        break;
                k = -errno;
                if (k != -EEXIST || attempt > 0)
                        return entry_fail(c, k, "linking to %s/%s", c->target, first);
                k = make_room(c, dirfd, name);
                if (k < 0)
                        return entry_fail(c, k, "%s", make_room_reason(k));
        }
        *ret_created = true;
        return 0;
}

static int restore_entry(struct restore_ctx *c, int dirfd, const char *name, size_t name_len,
                         const struct cairn_entry *e);

/* Every entry of tree @tree into @dirfd.  Only fatal errors are returned;
 * the failures of single entries are counted in stats.errors. */
static int restore_children(struct restore_ctx *c, int dirfd, const uint8_t tree[CAIRN_ID_SIZE]) {
        _cleanup_(tree_iter_freep) struct cairn_tree_iter *it = NULL;
        int k;

        if (id_is_zero(tree))
                return 0;
        k = cairn_index_tree_iter_new(c->t, tree, NULL, 0, &it);
        if (k < 0)
                return log_error_errno(k, "Cannot read directory %s/%s from the index: %m", c->target, c->path);
        for (;;) {
                struct cairn_entry e;
                const char *name;
                size_t len;

                k = cairn_index_tree_iter_next(it, &name, &len, &e);
                if (k < 0)
                        return log_error_errno(k, "Cannot read directory %s/%s from the index: %m", c->target, c->path);
                if (k == 0)
                        return 0;
                k = restore_entry(c, dirfd, name, len, &e);
                if (k < 0)
                        return k;
        }
}

/* A directory: created 0700 (nothing can slip in while it fills), or an
 * existing one merged into with overwrite; its own metadata is applied
 * after its children, since creating them changes its mtime. */
static int restore_dir(struct restore_ctx *c, int dirfd, const char *name, const struct cairn_entry *e,
                       bool *ret_created) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int k;

        k = tree_known(c->t, e->ref);
        if (k < 0) {
                char hex[2 * CAIRN_ID_SIZE + 1];
                return entry_fail(c, k, "its tree %s is not in the index", hex_encode(e->ref, CAIRN_ID_SIZE, hex));
        }

        for (int attempt = 0;; attempt++) {
                if (mkdirat(dirfd, name, 0700) == 0)
                        break;
                k = -errno;
                if (k != -EEXIST || attempt > 0)
                        return entry_fail(c, k, "creating the directory");
                if (!c->o.overwrite)
                        return entry_fail(c, -EEXIST, "%s", make_room_reason(-EEXIST));
                if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return entry_fail(c, -errno, "inspecting what is there");
                if (S_ISDIR(st.st_mode))
                        break;
                /* A symlink (or anything else) in the way is replaced,
                 * never written through. */
                if (unlinkat(dirfd, name, 0) < 0)
                        return entry_fail(c, -errno, "removing what is there");
        }

        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return entry_fail(c, -errno, "opening the directory");
        *ret_created = true;

        k = restore_children(c, fd, e->ref);
        if (k < 0)
                return k;
        return apply_metadata(c, fd, dirfd, name, e);
}

/* One entry and, for a directory, everything below it.  Returns 0 or a
 * fatal error; the entry's own failure is counted in stats.errors. */
static int restore_entry(struct restore_ctx *c, int dirfd, const char *name, size_t name_len,
                         const struct cairn_entry *e) {
        char cname[CAIRN_NAME_MAX + 1];
        const char *first = NULL;
        bool created = false;
        size_t saved;
        int k;

        k = path_push(c, name, name_len, &saved);
        if (k < 0)
                return log_error_errno(k, "Cannot restore into %s: %m", c->target);

        if (!cairn_name_valid(name, name_len)) {
                k = entry_fail(c, -EINVAL, "not a valid file name");
                goto done;
        }
        memcpy(cname, name, name_len);
        cname[name_len] = 0;

        /* Directories cannot be hard links; a group on one is ignored. */
        if (e->hardlink_group != 0 && e->type != CAIRN_ENTRY_DIR)
                first = bk_link_map_get(&c->links, e->hardlink_group);

        if (first)
                k = restore_hardlink(c, dirfd, cname, first, &created);
        else
                switch (e->type) {
                case CAIRN_ENTRY_FILE:
                        k = restore_file(c, dirfd, cname, e, &created);
                        break;
                case CAIRN_ENTRY_DIR:
                        k = restore_dir(c, dirfd, cname, e, &created);
                        break;
                case CAIRN_ENTRY_SYMLINK:
                        k = restore_symlink(c, dirfd, cname, e, &created);
                        break;
                default:
                        k = restore_special(c, dirfd, cname, e, &created);
                        break;
                }

        if (created && !first && e->hardlink_group != 0 && e->type != CAIRN_ENTRY_DIR) {
                int m = bk_link_map_put(&c->links, e->hardlink_group, c->path);
                if (m < 0)
                        k = log_error_errno(m, "Cannot restore into %s: %m", c->target);
        }

done:
        if (k < 0)
                c->stats.errors++;
        else if (e->type == CAIRN_ENTRY_FILE)
                c->stats.files++;
        else if (e->type == CAIRN_ENTRY_DIR)
                c->stats.dirs++;
        else if (e->type == CAIRN_ENTRY_SYMLINK)
                c->stats.symlinks++;
        else
                c->stats.others++;
        path_pop(c, saved);
        return error_is_fatal(k) ? k : 0;
}

/* mkdir -p for the operator's target path. */
static int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* The last component of @path ("a/b/" → "b"); NULL for the root. */
static const char *last_component(const char *path, size_t *ret_len) {
        const char *end = path + strlen(path), *start;

        while (end > path && end[-1] == '/')
                end--;
        if (end == path)
                return NULL;
        start = end;
        while (start > path && start[-1] != '/')
                start--;
        *ret_len = (size_t) (end - start);
        return start;
}

int bk_restore(struct cairn_repo *r, const uint8_t root[CAIRN_ID_SIZE], const char *path, const char *target,
               const struct bk_restore_options *o, struct bk_restore_stats *ret_stats) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_close_ int target_fd = -1;
        _cleanup_free_ char *shown = NULL;
        struct restore_ctx c = {};
        struct cairn_entry e;
        bool is_root;
        size_t len;
        int k;

        if (!path)
                path = "";
        if (!target || !*target)
                return log_error_errno(-EINVAL, "No restore target given");

        shown = strdup(target);
        if (!shown)
                return -ENOMEM;
        for (len = strlen(shown); len > 1 && shown[len - 1] == '/'; len--)
                shown[len - 1] = 0;

        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(r));

        k = bk_tree_resolve(t, root, path, &e, &is_root);
        if (k == -ENOENT)
                return log_error_errno(k, "Cannot restore /%s: no such file or directory in the snapshot",
                                       path + strspn(path, "/"));
        if (k == -ENOTDIR)
                return log_error_errno(k, "Cannot restore /%s: a component of the path is not a directory",
                                       path + strspn(path, "/"));
        if (k < 0)
                return log_error_errno(k, "Cannot restore /%s: %m", path + strspn(path, "/"));

        k = mkdir_parents(target, 0755);
        if (k < 0)
                return log_error_errno(k, "Cannot create restore target %s: %m", target);
        target_fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (target_fd < 0)
                return log_error_errno(-errno, "Cannot open restore target %s: %m", target);

        c = (struct restore_ctx) {
                .repo = r,
                .t = t,
                .target = shown[0] == '/' && shown[1] == 0 ? "" : shown,
                .target_fd = target_fd,
        };
        if (o)
                c.o = *o;

        if (is_root) {
                size_t saved;
                /* Start the path buffer empty so messages can name it. */
                k = path_push(&c, "", 0, &saved);
                if (k >= 0)
                        k = restore_children(&c, target_fd, e.ref);
        } else {
                const char *name = last_component(path, &len);
                k = restore_entry(&c, target_fd, name, len, &e);
        }

        bk_link_map_release(&c.links);
        free(c.path);
        if (ret_stats)
                *ret_stats = c.stats;
        if (k < 0)
                return k;
        if (c.stats.errors > 0)
                return log_error_errno(-EIO, "Restore into %s incomplete: %" PRIu64 " entries failed (see above)",
                                       target, c.stats.errors);
        return 0;
}
