/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cairn export: walk a snapshot's tree with index cursors, as restore
 * does, and hand every entry to libarchive's writer.  The archive's bytes
 * go out through one write callback, so a failed write and a damaged
 * chunk end the export the same way: no end-of-archive, and a stream gets
 * a block that spoils it for every reader.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <locale.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export.h"
#include "lmdb-index.h"
#include "link-map.h"
#include "log.h"
#include "restore.h"
#include "tree.h"
#include "util.h"

#define EXPORT_BLOCK (1024u * 1024)     /* file data read and handed to libarchive at a time */

/* The kernel's form of a POSIX ACL (system.posix_acl_*), as source-tar.c
 * writes it. */
#define ACL_XATTR_VERSION 2
#define ACL_TAG_USER_OBJ 0x01
#define ACL_TAG_USER 0x02
#define ACL_TAG_GROUP_OBJ 0x04
#define ACL_TAG_GROUP 0x08
#define ACL_TAG_MASK 0x10
#define ACL_TAG_OTHER 0x20

static const uint8_t zero_id[CAIRN_ID_SIZE];

int bk_export_format_parse(const char *s, enum bk_export_format *ret) {
        if (streq(s, "pax"))
                *ret = BK_EXPORT_PAX;
        else if (streq(s, "gnutar") || streq(s, "gnu"))
                *ret = BK_EXPORT_GNUTAR;
        else if (streq(s, "zip"))
                *ret = BK_EXPORT_ZIP;
        else
                return -EINVAL;
        return 0;
}

static const char *format_name(enum bk_export_format f) {
        return f == BK_EXPORT_PAX ? "pax" : f == BK_EXPORT_GNUTAR ? "gnutar" : "zip";
}

/* uid/gid → name, looked up once each (NULL: unknown here). */
struct name_cache {
        struct name_slot {
                uint32_t id;
                char *name;
        } *v;
        size_t n, cap;
};

static void name_cache_release(struct name_cache *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->v[i].name);
        free(c->v);
        *c = (struct name_cache) { 0 };
}

static const char *name_lookup(struct name_cache *c, uint32_t id, bool group) {
        char buf[16384];
        char *name = NULL;

        for (size_t i = 0; i < c->n; i++)
                if (c->v[i].id == id)
                        return c->v[i].name;
        if (group) {
                struct group gr, *res = NULL;
                if (getgrgid_r((gid_t) id, &gr, buf, sizeof buf, &res) == 0 && res && res->gr_name)
                        name = strdup(res->gr_name);
        } else {
                struct passwd pw, *res = NULL;
                if (getpwuid_r((uid_t) id, &pw, buf, sizeof buf, &res) == 0 && res && res->pw_name)
                        name = strdup(res->pw_name);
        }
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 16;
                struct name_slot *v = realloc(c->v, cap * sizeof *v);
                if (!v) {
                        free(name);
                        return NULL;
                }
                c->v = v;
                c->cap = cap;
        }
        c->v[c->n++] = (struct name_slot) { id, name };
        return name;
}

struct region {
        uint64_t off, len;
};

struct export_ctx {
        struct cairn_repo *repo;
        struct cairn_txn *t;
        enum bk_export_format format;
        struct archive *a;
        struct archive_entry *ae;
        int fd;
        int write_error;                /* errno of a failed write of the archive, or 0 */
        bool failed;                    /* the export failed: what libarchive still writes is dropped */
        char *path;                     /* archive path of the current entry, without a '/' at the end */
        size_t path_len, path_cap;
        struct bk_link_map links;
        struct name_cache users, groups;
        uint8_t *buf;                   /* EXPORT_BLOCK bytes */
        uint8_t *zeros;                 /* EXPORT_BLOCK zero bytes: the holes */
        struct bk_export_stats stats;
};

static la_ssize_t export_write(struct archive *a, void *userdata, const void *buf, size_t len) {
        struct export_ctx *c = userdata;
        int k;

        if (c->failed)
                return (la_ssize_t) len;
        k = write_full(c->fd, buf, len);
        if (k < 0) {
                c->write_error = -k;
                archive_set_error(a, -k, "%s", strerror(-k));
                return -1;
        }
        return (la_ssize_t) len;
}

/* A libarchive failure: the write error behind it, else its message. */
static int archive_failed(struct export_ctx *c, const char *what) {
        if (c->write_error)
                return log_error_errno(-c->write_error, "Cannot write the archive: %m");
        return log_error_errno(-EIO, "Cannot write the archive: %s %s: %s", what, c->path[0] ? c->path : "/",
                               archive_error_string(c->a) ? archive_error_string(c->a) : "unknown error");
}

static int path_push(struct export_ctx *c, const char *name, size_t len, size_t *ret_saved) {
        size_t need = c->path_len + 1 + len + 2;

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

static void path_pop(struct export_ctx *c, size_t saved) {
        c->path_len = saved;
        c->path[saved] = 0;
}

static void set_time(struct archive_entry *ae, int64_t ns,
                     void (*set)(struct archive_entry *, time_t, long)) {
        int64_t s = ns / 1000000000, n = ns % 1000000000;
        if (n < 0) {
                n += 1000000000;
                s--;
        }
        set(ae, (time_t) s, (long) n);
}

/* The ACL in @x (kernel form) as libarchive ACL entries of @type.  An
 * access ACL of only the three entries the mode holds adds nothing.
 * libarchive keeps the group entry's permissions as the mode's group
 * bits, as bsdtar's archives have them; the mask restores the mode on
 * extraction (and on import). */
static void export_acl(struct export_ctx *c, const struct cairn_xattr *x, int type) {
        const uint8_t *v = x->value;
        size_t n;
        bool extended = false;

        if (x->value_len < 4 || (x->value_len - 4) % 8 != 0 || get_le32(v) != ACL_XATTR_VERSION) {
                log_warning("%s: its ACL (%.*s) is malformed; not exported", c->path, (int) x->name_len, x->name);
                return;
        }
        n = (x->value_len - 4) / 8;
        for (size_t i = 0; i < n; i++) {
                uint16_t tag = get_le16(v + 4 + 8 * i);
                if (tag == ACL_TAG_USER || tag == ACL_TAG_GROUP || tag == ACL_TAG_MASK)
                        extended = true;
        }
        if (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && !extended)
                return;
        for (size_t i = 0; i < n; i++) {
                uint16_t tag = get_le16(v + 4 + 8 * i), perm = get_le16(v + 6 + 8 * i) & 7;
                uint32_t id = get_le32(v + 8 + 8 * i);
                const char *name = NULL;
                int atag, qual = -1;

                switch (tag) {
                case ACL_TAG_USER_OBJ: atag = ARCHIVE_ENTRY_ACL_USER_OBJ; break;
                case ACL_TAG_USER:
                        atag = ARCHIVE_ENTRY_ACL_USER;
                        qual = (int) id;
                        name = name_lookup(&c->users, id, false);
                        break;
                case ACL_TAG_GROUP_OBJ: atag = ARCHIVE_ENTRY_ACL_GROUP_OBJ; break;
                case ACL_TAG_GROUP:
                        atag = ARCHIVE_ENTRY_ACL_GROUP;
                        qual = (int) id;
                        name = name_lookup(&c->groups, id, true);
                        break;
                case ACL_TAG_MASK: atag = ARCHIVE_ENTRY_ACL_MASK; break;
                case ACL_TAG_OTHER: atag = ARCHIVE_ENTRY_ACL_OTHER; break;
                default:
                        log_warning("%s: ACL entry with unknown tag 0x%x not exported", c->path, tag);
                        continue;
                }
                /* rwx have the same bits in both forms */
                if (archive_entry_acl_add_entry(c->ae, type, perm, atag, qual, name) != ARCHIVE_OK)
                        log_warning("%s: an ACL entry cannot be exported", c->path);
        }
}

/* Extended attributes, POSIX ACLs among them as ACLs (pax only). */
static int export_xattrs(struct export_ctx *c, const struct cairn_entry *e) {
        struct cairn_xattr x;
        size_t cursor = 0;
        int k;

        for (;;) {
                _cleanup_free_ char *name = NULL;

                k = cairn_entry_xattr_next(e, &cursor, &x);
                if (k < 0)
                        return log_error_errno(k, "Cannot export %s: its extended attributes are malformed in the index",
                                               c->path);
                if (k == 0)
                        return 0;
                name = strndup(x.name, x.name_len);
                if (!name)
                        return -ENOMEM;
                if (streq(name, "system.posix_acl_access"))
                        export_acl(c, &x, ARCHIVE_ENTRY_ACL_TYPE_ACCESS);
                else if (streq(name, "system.posix_acl_default"))
                        export_acl(c, &x, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT);
                else
                        archive_entry_xattr_add_entry(c->ae, name, x.value, x.value_len);
        }
}

/* The data regions of a file, from its chunk list (holes are rows of
 * their own).  *ret malloc'd; adjacent data chunks merged. */
static int file_regions(struct export_ctx *c, const struct cairn_entry *e, struct region **ret, size_t *ret_n) {
        _cleanup_free_ struct region *v = NULL;
        char hex[2 * CAIRN_ID_SIZE + 1];
        size_t n = 0, cap = 0;
        uint64_t size, off = 0;
        int k;

        *ret = NULL;
        *ret_n = 0;
        if (memcmp(e->ref, zero_id, CAIRN_ID_SIZE) == 0)
                return 0;       /* empty, or (as restore reads it) all hole */
        k = cairn_index_content_size(c->t, e->ref, &size);
        if (k < 0)
                return log_error_errno(k == -ENOENT ? -EBADMSG : k, "Cannot export %s: its content %s is not in the "
                                       "index", c->path, hex_encode(e->ref, CAIRN_ID_SIZE, hex));
        if (size != e->size)
                return log_error_errno(-EBADMSG, "Cannot export %s: its content holds %" PRIu64 " bytes but its "
                                       "entry says %" PRIu64, c->path, size, e->size);
        while (off < size) {
                struct cairn_content_chunk ch;
                uint64_t start;

                k = cairn_index_content_find(c->t, e->ref, off, &ch, &start);
                if (k >= 0 && (start > off || ch.length == 0 || start + ch.length <= off))
                        k = -EBADMSG;
                if (k < 0)
                        return log_error_errno(k == -ENOENT ? -EBADMSG : k, "Cannot export %s: its chunk list in the "
                                               "index is broken at offset %" PRIu64 ": %m", c->path, off);
                if (!(ch.flags & CAIRN_CHUNK_HOLE)) {
                        if (n > 0 && v[n - 1].off + v[n - 1].len == start)
                                v[n - 1].len += ch.length;
                        else {
                                if (n == cap) {
                                        size_t ncap = cap ? cap * 2 : 8;
                                        struct region *bigger = realloc(v, ncap * sizeof *bigger);
                                        if (!bigger)
                                                return -ENOMEM;
                                        v = bigger;
                                        cap = ncap;
                                }
                                v[n++] = (struct region) { start, ch.length };
                        }
                }
                off = start + ch.length;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static int write_bytes(struct export_ctx *c, const void *p, size_t len) {
        la_ssize_t w = archive_write_data(c->a, p, len);

        /* A sparse entry's writer takes nothing past its last data block. */
        if (w < 0)
                return archive_failed(c, "data of");
        return 0;
}

/* The whole file as libarchive wants it: holes as zeros (which the pax
 * writer drops for a sparse entry), data read through the index. */
static int export_file_data(struct export_ctx *c, const struct cairn_entry *e, const struct region *v, size_t n,
                            bool sparse) {
        uint64_t off = 0;
        int k;

        for (size_t i = 0; i <= n; i++) {
                uint64_t hole_end = i < n ? v[i].off : e->size;

                /* After the last data block a sparse entry needs nothing more. */
                if (sparse && i == n)
                        break;
                while (off < hole_end) {
                        size_t len = (size_t) MIN((uint64_t) EXPORT_BLOCK, hole_end - off);
                        k = write_bytes(c, c->zeros, len);
                        if (k < 0)
                                return k;
                        off += len;
                }
                if (i == n)
                        break;
                while (off < v[i].off + v[i].len) {
                        size_t len = (size_t) MIN((uint64_t) EXPORT_BLOCK, v[i].off + v[i].len - off);
                        ssize_t got = bk_content_pread(c->repo, c->t, e->ref, c->buf, len, off);
                        if (got >= 0 && (size_t) got != len)
                                got = -EBADMSG;
                        if (got < 0)
                                return log_error_errno((int) got, "Cannot export %s: its data at offset %" PRIu64
                                                       " cannot be read: %m; the archive is incomplete", c->path, off);
                        k = write_bytes(c, c->buf, len);
                        if (k < 0)
                                return k;
                        off += len;
                        c->stats.bytes += len;
                }
        }
        return 0;
}

/* Write the header in c->ae: 1 written, 0 skipped (warned), or -errno. */
static int write_header(struct export_ctx *c) {
        int r = archive_write_header(c->a, c->ae);

        if (r == ARCHIVE_OK)
                return 1;
        if (r == ARCHIVE_WARN) {
                /* e.g. a name that is not UTF-8: written as bytes (hdrcharset=BINARY) */
                log_debug("%s: %s", c->path, archive_error_string(c->a));
                return 1;
        }
        if (r == ARCHIVE_FATAL || c->write_error)
                return archive_failed(c, "header of");
        log_warning("%s: cannot be stored in a %s archive (%s); skipped", c->path, format_name(c->format),
                    archive_error_string(c->a) ? archive_error_string(c->a) : "unsupported");
        c->stats.skipped++;
        return 0;
}

static int finish_entry(struct export_ctx *c) {
        if (archive_write_finish_entry(c->a) < ARCHIVE_WARN)
                return archive_failed(c, "end of");
        return 0;
}

/* A tree id with no rows is an empty directory only if its blob is
 * known (restore.c: tree_known). */
static int tree_known(struct export_ctx *c, const uint8_t tree[CAIRN_ID_SIZE]) {
        struct cairn_chunk_loc loc;
        char hex[2 * CAIRN_ID_SIZE + 1];
        int k;

        if (memcmp(tree, zero_id, CAIRN_ID_SIZE) == 0)
                return 0;
        k = cairn_index_chunk_get(c->t, tree, &loc);
        if (k == -ENOENT)
                return log_error_errno(-EBADMSG, "Cannot export %s: its tree %s is not in the index",
                                       c->path[0] ? c->path : "/", hex_encode(tree, CAIRN_ID_SIZE, hex));
        if (k < 0)
                return log_error_errno(k, "Cannot export %s: %m", c->path[0] ? c->path : "/");
        return 0;
}

static int export_entry(struct export_ctx *c, const char *name, size_t name_len, const struct cairn_entry *e);

static void tree_iter_freep(struct cairn_tree_iter **it) {
        cairn_index_tree_iter_free(*it);
}

static int export_children(struct export_ctx *c, const uint8_t tree[CAIRN_ID_SIZE]) {
        _cleanup_(tree_iter_freep) struct cairn_tree_iter *it = NULL;
        int k;

        k = tree_known(c, tree);
        if (k < 0 || memcmp(tree, zero_id, CAIRN_ID_SIZE) == 0)
                return k;
        k = cairn_index_tree_iter_new(c->t, tree, NULL, 0, &it);
        if (k < 0)
                return log_error_errno(k, "Cannot read directory %s from the index: %m", c->path[0] ? c->path : "/");
        for (;;) {
                struct cairn_entry e;
                const char *name;
                size_t len;

                k = cairn_index_tree_iter_next(it, &name, &len, &e);
                if (k < 0)
                        return log_error_errno(k, "Cannot read directory %s from the index: %m",
                                               c->path[0] ? c->path : "/");
                if (k == 0)
                        return 0;
                k = export_entry(c, name, len, &e);
                if (k < 0)
                        return k;
        }
}

/* Zip has no hard links: there every name gets the data. */
static bool linkable(const struct export_ctx *c, const struct cairn_entry *e) {
        return e->hardlink_group != 0 && e->type != CAIRN_ENTRY_DIR && c->format != BK_EXPORT_ZIP;
}

/* Header and data of a regular file (not a later hard link). */
static int export_file(struct export_ctx *c, const struct cairn_entry *e) {
        _cleanup_free_ struct region *v = NULL;
        bool sparse = false;
        size_t n = 0;
        int k;

        k = file_regions(c, e, &v, &n);
        if (k < 0)
                return k;
        archive_entry_set_size(c->ae, (la_int64_t) e->size);
        if (c->format == BK_EXPORT_PAX && e->size > 0 && !(n == 1 && v[0].off == 0 && v[0].len == e->size)) {
                sparse = true;
                for (size_t i = 0; i < n; i++)
                        archive_entry_sparse_add_entry(c->ae, (la_int64_t) v[i].off, (la_int64_t) v[i].len);
                /* A hole at the end (or nothing but a hole) needs an entry
                 * too, as GNU tar writes it, or the file would look whole. */
                if (n == 0 || v[n - 1].off + v[n - 1].len < e->size)
                        archive_entry_sparse_add_entry(c->ae, (la_int64_t) e->size, 0);
        }
        k = write_header(c);
        if (k <= 0)
                return k;
        /* The pax writer puts a sparse file's map out with its first data:
         * make sure there is a first even for a file that is all hole. */
        if (sparse) {
                k = write_bytes(c, c->zeros, 0);
                if (k < 0)
                        return k;
        }
        k = export_file_data(c, e, v, n, sparse);
        if (k < 0)
                return k;
        return 1;
}

/* One entry and, for a directory, everything below it. */
static int export_entry(struct export_ctx *c, const char *name, size_t name_len, const struct cairn_entry *e) {
        _cleanup_free_ char *target = NULL;
        const char *first = NULL;
        size_t saved;
        int k;

        k = path_push(c, name, name_len, &saved);
        if (k < 0)
                return k;

        if (e->type == CAIRN_ENTRY_SOCK) {
                /* No archive format holds one; tar skips them too. */
                log_warning("%s: a socket cannot be stored in an archive; skipped", c->path);
                c->stats.skipped++;
                goto out;
        }
        if (c->format == BK_EXPORT_ZIP &&
            (e->type == CAIRN_ENTRY_FIFO || e->type == CAIRN_ENTRY_CHR || e->type == CAIRN_ENTRY_BLK)) {
                log_warning("%s: a %s cannot be stored in a zip archive; skipped", c->path,
                            e->type == CAIRN_ENTRY_FIFO ? "fifo" : "device node");
                c->stats.skipped++;
                goto out;
        }

        archive_entry_clear(c->ae);
        if (e->type == CAIRN_ENTRY_DIR) {
                /* tar and zip both mark a directory by the '/' at its end */
                c->path[c->path_len] = '/';
                c->path[c->path_len + 1] = 0;
                archive_entry_set_pathname(c->ae, c->path);
                c->path[c->path_len] = 0;
        } else
                archive_entry_set_pathname(c->ae, c->path);
        archive_entry_set_mode(c->ae, (mode_t) e->mode);
        archive_entry_set_uid(c->ae, e->uid);
        archive_entry_set_gid(c->ae, e->gid);
        if (c->format != BK_EXPORT_ZIP) {
                const char *u = name_lookup(&c->users, e->uid, false), *g = name_lookup(&c->groups, e->gid, true);
                if (u)
                        archive_entry_set_uname(c->ae, u);
                if (g)
                        archive_entry_set_gname(c->ae, g);
        }
        set_time(c->ae, e->mtime_ns, archive_entry_set_mtime);
        /* 0: not stored (path sources keep no atime) */
        if (e->atime_ns != 0)
                set_time(c->ae, e->atime_ns, archive_entry_set_atime);
        if (e->ctime_ns != 0)
                set_time(c->ae, e->ctime_ns, archive_entry_set_ctime);
        archive_entry_set_size(c->ae, 0);

        if (linkable(c, e))
                first = bk_link_map_get(&c->links, e->hardlink_group);
        if (first) {
                /* A later name of an inode already in the archive. */
                archive_entry_set_hardlink(c->ae, first);
                k = write_header(c);
        } else {
                if (c->format == BK_EXPORT_PAX) {
                        k = export_xattrs(c, e);
                        if (k < 0)
                                goto out;
                }
                switch (e->type) {
                case CAIRN_ENTRY_FILE:
                        k = export_file(c, e);
                        break;
                case CAIRN_ENTRY_DIR:
                        k = write_header(c);
                        break;
                case CAIRN_ENTRY_SYMLINK:
                        target = strndup(e->target, e->target_len);
                        if (!target) {
                                k = -ENOMEM;
                                goto out;
                        }
                        archive_entry_set_symlink(c->ae, target);
                        k = write_header(c);
                        break;
                case CAIRN_ENTRY_CHR:
                case CAIRN_ENTRY_BLK:
                        archive_entry_set_rdev(c->ae, (dev_t) e->rdev);
                        k = write_header(c);
                        break;
                case CAIRN_ENTRY_FIFO:
                        k = write_header(c);
                        break;
                default:
                        k = log_error_errno(-EBADMSG, "Cannot export %s: unknown entry type %u in the index", c->path,
                                            e->type);
                        goto out;
                }
        }
        if (k <= 0)
                goto out;       /* failed, or skipped (warned) */
        k = finish_entry(c);
        if (k < 0)
                goto out;
        if (!first && linkable(c, e)) {
                k = bk_link_map_put(&c->links, e->hardlink_group, c->path);
                if (k < 0)
                        goto out;
        }
        switch (e->type) {
        case CAIRN_ENTRY_FILE: c->stats.files++; break;
        case CAIRN_ENTRY_DIR: c->stats.dirs++; break;
        case CAIRN_ENTRY_SYMLINK: c->stats.symlinks++; break;
        default: c->stats.others++; break;
        }
        if (e->type == CAIRN_ENTRY_DIR)
                k = export_children(c, e->ref);
out:
        path_pop(c, saved);
        return k < 0 ? k : 0;
}

/* The last name of @path ("a/b/" → "b"); NULL for the root. */
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

/* After a failure, so that no reader takes what was written for a whole
 * (shorter) archive: tar readers accept an archive that just ends at a
 * header; a block that is neither a header nor the end-of-archive zeros
 * is an error for them, and no zip reader finds its directory. */
static void spoil_stream(int fd) {
        char block[512];

        memset(block, 'X', sizeof block);
        memcpy(block, "cairn export failed here; this archive is incomplete\n", 53);
        (void) write_full(fd, block, sizeof block);
}

int bk_export_fd(struct cairn_repo *r, const uint8_t root[CAIRN_ID_SIZE], const char *path,
                 enum bk_export_format format, int fd, struct bk_export_stats *ret_stats) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct export_ctx c = { .repo = r, .format = format, .fd = fd };
        locale_t utf8, old = (locale_t) 0;
        struct cairn_entry e;
        bool is_root, opened = false;
        const char *shown;
        int k;

        if (!path)
                path = "";
        shown = path + strspn(path, "/");
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(r));
        k = bk_tree_resolve(t, root, path, &e, &is_root);
        if (k == -ENOENT)
                return log_error_errno(k, "Cannot export /%s: no such file or directory in the snapshot", shown);
        if (k == -ENOTDIR)
                return log_error_errno(k, "Cannot export /%s: a component of the path is not a directory", shown);
        if (k < 0)
                return log_error_errno(k, "Cannot export /%s: %m", shown);
        c.t = t;

        /* Names are handed to libarchive as they are stored (UTF-8 for
         * everything a tar or path source stores); in the "C" locale the
         * pax writer would call every non-ASCII name unconvertible. */
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
        if (utf8)
                old = uselocale(utf8);

        c.buf = malloc(EXPORT_BLOCK);
        c.zeros = calloc(1, EXPORT_BLOCK);
        c.path = calloc(1, c.path_cap = 256);
        c.a = archive_write_new();
        c.ae = archive_entry_new();
        if (!c.buf || !c.zeros || !c.path || !c.a || !c.ae) {
                k = -ENOMEM;
                goto out;
        }
        switch (format) {
        case BK_EXPORT_PAX:
                k = archive_write_set_format_pax(c.a);
                /* Star's records only: GNU tar reads them, and calls the
                 * LIBARCHIVE.xattr copies unknown keywords on every file. */
                if (k == ARCHIVE_OK)
                        k = archive_write_set_format_option(c.a, "pax", "xattrheader", "SCHILY");
                break;
        case BK_EXPORT_GNUTAR:
                k = archive_write_set_format_gnutar(c.a);
                break;
        case BK_EXPORT_ZIP:
                k = archive_write_set_format_zip(c.a);
                /* A tar is padded to whole 10 KiB records; a zip must end
                 * with its directory. */
                if (k == ARCHIVE_OK)
                        k = archive_write_set_bytes_in_last_block(c.a, 1);
                break;
        default:
                k = ARCHIVE_FATAL;
        }
        if (k != ARCHIVE_OK || archive_write_open(c.a, &c, NULL, export_write, NULL) != ARCHIVE_OK) {
                k = log_error_errno(-EIO, "Cannot start a %s archive: %s", format_name(format),
                                    archive_error_string(c.a) ? archive_error_string(c.a) : "unknown error");
                goto out;
        }
        opened = true;

        if (is_root)
                k = export_children(&c, e.ref);
        else {
                size_t len = 0;
                const char *name = last_component(path, &len);
                k = export_entry(&c, name, len, &e);
        }
        if (k >= 0 && archive_write_close(c.a) != ARCHIVE_OK)
                k = archive_failed(&c, "end of archive after");

out:
        if (c.a) {
                /* After a failure the callback drops everything, so the
                 * close puts out neither the end of the archive nor what
                 * libarchive still holds, but frees all (archive_write_fail
                 * would leak the output buffer, a failing write zlib's). */
                if (k < 0) {
                        c.failed = true;
                        if (opened)
                                (void) archive_write_close(c.a);
                }
                archive_write_free(c.a);
        }
        if (k < 0 && opened && !c.write_error)
                spoil_stream(fd);
        archive_entry_free(c.ae);
        if (utf8) {
                uselocale(old);
                freelocale(utf8);
        }
        free(c.buf);
        free(c.zeros);
        free(c.path);
        bk_link_map_release(&c.links);
        name_cache_release(&c.users);
        name_cache_release(&c.groups);
        if (ret_stats)
                *ret_stats = c.stats;
        return k < 0 ? k : 0;
}

int bk_export(struct cairn_repo *r, const uint8_t root[CAIRN_ID_SIZE], const char *path, enum bk_export_format format,
              const char *out, struct bk_export_stats *ret_stats) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        int k;

        if (!out || streq(out, "-")) {
                if (isatty(STDOUT_FILENO))
                        return log_error_errno(-ENOTTY, "Not writing an archive to a terminal: give -o FILE or "
                                               "redirect stdout");
                return bk_export_fd(r, root, path, format, STDOUT_FILENO, ret_stats);
        }
        if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
                if (S_ISDIR(st.st_mode))
                        return log_error_errno(-EISDIR, "Cannot write the archive to %s: it is a directory", out);
                fd = open(out, O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return log_error_errno(-errno, "Cannot open %s: %m", out);
                return bk_export_fd(r, root, path, format, fd, ret_stats);
        }

        {
                const char *slash = strrchr(out, '/');
                int n = slash ? asprintf(&tmp, "%.*s/.%s.cairn-XXXXXX", (int) (slash - out), out, slash + 1)
                              : asprintf(&tmp, ".%s.cairn-XXXXXX", out);
                if (n < 0) {
                        tmp = NULL;
                        return -ENOMEM;
                }
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot create the archive %s: %m", out);
        k = bk_export_fd(r, root, path, format, fd, ret_stats);
        if (k >= 0 && fsync(fd) < 0)
                k = log_error_errno(-errno, "Cannot write the archive %s: %m", out);
        if (k >= 0 && close(TAKE_FD(fd)) < 0)
                k = log_error_errno(-errno, "Cannot write the archive %s: %m", out);
        if (k >= 0 && rename(tmp, out) < 0)
                k = log_error_errno(-errno, "Cannot rename %s to %s: %m", tmp, out);
        if (k < 0) {
                (void) unlink(tmp);
                log_error("No partial archive was kept; %s is as it was", out);
                return k;
        }
        return 0;
}
