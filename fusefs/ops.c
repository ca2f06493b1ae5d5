/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE low-level handlers of cairnfs.  Each request takes a short
 * read transaction of the index, copies what it needs into nodes or the
 * reply buffer, ends the transaction and replies exactly once.
 *
 * Inside a snapshot nothing ever changes, so entries and attributes are
 * cached by the kernel for a day, file pages are kept (keep_cache) and
 * directory listings are cached (cache_readdir).  The top two levels
 * (jobs, snapshots, latest) change with backups and prunes: they get
 * short timeouts, and the refresher invalidates them when the catalog
 * changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "restore.h"
#include "snapshot.h"
#include "util.h"

#define READ_IOV_MAX 64
#define RA_BYTES_MAX (16u * 1024 * 1024)
#define SEQ_REQUEST_MIN (64u * 1024)       /* a readahead-sized request */
#define SEQ_WINDOW (2u * 1024 * 1024)      /* how far out of order one may arrive */

static const uint8_t zeros[128 * 1024];
static const uint8_t zero_id[CAIRN_ID_SIZE];

static struct fs_ctx *ctx_of(fuse_req_t req) {
        return fuse_req_userdata(req);
}

static struct fs_node *node_of(struct fs_ctx *ctx, fuse_ino_t ino) {
        return ino == FUSE_ROOT_ID ? fs_nodes_root(ctx->nodes) : (struct fs_node *) (uintptr_t) ino;
}

static fuse_ino_t nodeid_of(struct fs_ctx *ctx, const struct fs_node *n) {
        return n == fs_nodes_root(ctx->nodes) ? FUSE_ROOT_ID : (fuse_ino_t) (uintptr_t) n;
}

static struct fs_catalog *catalog_get(struct fs_ctx *ctx) {
        struct fs_catalog *c;
        pthread_mutex_lock(&ctx->cat_lock);
        c = fs_catalog_ref(ctx->cat);
        pthread_mutex_unlock(&ctx->cat_lock);
        return c;
}

static void catalog_unrefp(struct fs_catalog **c) {
        fs_catalog_unref(*c);
}

static int txn_begin(struct fs_ctx *ctx, struct cairn_txn **ret) {
        return cairn_index_txn_begin(ctx->index, false, ret);
}

/* Index and codec errors become what a reader understands. */
static int reply_errno(int r) {
        switch (r) {
        case -ENOENT:
        case -ENOTDIR:
        case -ENOMEM:
        case -ENODATA:
        case -ERANGE:
        case -ENXIO:
        case -EROFS:
        case -EACCES:
                return -r;
        default:
                return EIO;
        }
}

static struct timespec ts_of(int64_t ns) {
        struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
        if (ts.tv_nsec < 0) {
                ts.tv_nsec += 1000000000;
                ts.tv_sec--;
        }
        return ts;
}

static void attr_dir(struct fs_ctx *ctx, struct stat *st, uint64_t ino, int64_t ns, nlink_t nlink) {
        st->st_ino = ino;
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = nlink;
        st->st_uid = ctx->uid;
        st->st_gid = ctx->gid;
        st->st_blksize = 4096;
        st->st_mtim = st->st_ctim = st->st_atim = ts_of(ns);
}

/* Attributes of @n as of catalog @cat. */
static void node_attr(struct fs_ctx *ctx, const struct fs_catalog *cat, const struct fs_node *n, struct stat *st) {
        const struct fs_job *j;

        memset(st, 0, sizeof *st);
        switch (n->kind) {
        case FS_NODE_ROOT:
                attr_dir(ctx, st, FUSE_ROOT_ID, ctx->mount_ns, 2 + cat->n_jobs);
                return;
        case FS_NODE_JOB:
                j = fs_catalog_job(cat, n->job, strlen(n->job));
                attr_dir(ctx, st, n->ino, j && j->n_snaps ? j->snaps[j->n_snaps - 1].snap->start_ns : ctx->mount_ns,
                         2 + (j ? j->n_snaps : 0));
                return;
        case FS_NODE_LATEST:
                j = fs_catalog_job(cat, n->job, strlen(n->job));
                st->st_ino = n->ino;
                st->st_mode = S_IFLNK | 0777;
                st->st_nlink = 1;
                st->st_uid = ctx->uid;
                st->st_gid = ctx->gid;
                st->st_size = j ? (off_t) strlen(fs_job_latest_name(j)) : 0;
                st->st_mtim = st->st_ctim = st->st_atim = ts_of(j && j->latest ? j->latest->start_ns : ctx->mount_ns);
                return;
        case FS_NODE_SNAPSHOT:
                attr_dir(ctx, st, n->ino, n->snap->start_ns, 2);
                return;
        case FS_NODE_ENTRY:
                break;
        }
        st->st_ino = n->ino;
        st->st_mode = n->mode;
        st->st_nlink = n->nlink ? n->nlink : 1;
        st->st_uid = n->uid;
        st->st_gid = n->gid;
        st->st_rdev = n->rdev;
        st->st_size = (off_t) n->size;
        st->st_blocks = (blkcnt_t) n->blocks;
        st->st_blksize = 4096;
        st->st_mtim = ts_of(n->mtime_ns);
        st->st_ctim = ts_of(n->ctime_ns);
        /* atime is not stored for path sources: show mtime, as restore sets it. */
        st->st_atim = ts_of(n->atime_ns ? n->atime_ns : n->mtime_ns);
}

static double node_timeout(struct fs_ctx *ctx, const struct fs_node *n) {
        return n->kind == FS_NODE_SNAPSHOT || n->kind == FS_NODE_ENTRY ? ctx->tree_timeout : ctx->virtual_timeout;
}

static void entry_param(struct fs_ctx *ctx, const struct fs_catalog *cat, const struct fs_node *n,
                        struct fuse_entry_param *e) {
        memset(e, 0, sizeof *e);
        e->ino = nodeid_of(ctx, n);
        node_attr(ctx, cat, n, &e->attr);
        e->attr_timeout = e->entry_timeout = node_timeout(ctx, n);
}

/* ---- making nodes ---- */

static struct fs_node *job_node(struct fs_ctx *ctx, const struct fs_job *j) {
        size_t len = strlen(j->name);
        struct fs_node *n = fs_nodes_find_ref(ctx->nodes, FUSE_ROOT_ID, j->name, len);
        if (n)
                return n;
        n = fs_node_new(FS_NODE_JOB, FUSE_ROOT_ID, j->name, len);
        if (!n || !(n->job = strdup(j->name))) {
                fs_node_discard(n);
                return NULL;
        }
        n->type = CAIRN_ENTRY_DIR;
        n->ino = j->ino;
        return fs_nodes_intern(ctx->nodes, n);
}

static struct fs_node *latest_node(struct fs_ctx *ctx, const struct fs_node *jobnode) {
        uint64_t key = nodeid_of(ctx, jobnode);
        struct fs_node *n = fs_nodes_find_ref(ctx->nodes, key, "latest", 6);
        if (n)
                return n;
        n = fs_node_new(FS_NODE_LATEST, key, "latest", 6);
        if (!n || !(n->job = strdup(jobnode->job))) {
                fs_node_discard(n);
                return NULL;
        }
        n->type = CAIRN_ENTRY_SYMLINK;
        n->ino = fs_ino_child(jobnode->ino, "latest", 6);
        return fs_nodes_intern(ctx->nodes, n);
}

static struct fs_node *snapshot_node(struct fs_ctx *ctx, struct fs_snap *s) {
        uint64_t key = fs_key_snapshot(s);
        struct fs_node *n = fs_nodes_find_ref(ctx->nodes, key, "", 0);
        if (n)
                return n;
        n = fs_node_new(FS_NODE_SNAPSHOT, key, "", 0);
        if (!n)
                return NULL;
        n->snap = fs_snap_ref(s);
        n->type = CAIRN_ENTRY_DIR;
        n->mode = S_IFDIR | 0755;
        n->ino = s->ino;
        memcpy(n->ref, s->root, CAIRN_ID_SIZE);
        return fs_nodes_intern(ctx->nodes, n);
}

/* Allocated size of a content as the source file system would count it:
 * each run of data chunks rounded out to 4 KiB blocks; holes take none. */
static uint64_t content_blocks(struct cairn_txn *t, const uint8_t content[CAIRN_ID_SIZE], uint64_t size) {
        uint64_t off = 0, run_start = 0, total = 0;
        bool in_run = false;

        if (memcmp(content, zero_id, CAIRN_ID_SIZE) == 0 || size == 0)
                return 0;
        while (off < size) {
                struct cairn_content_chunk c;
                uint64_t start;

                if (cairn_index_content_find(t, content, off, &c, &start) < 0 || c.length == 0)
                        return (size + 4095) / 4096 * 8;   /* reads will report the damage */
                if (c.flags & CAIRN_CHUNK_HOLE) {
                        if (in_run)
                                total += ((start + 4095) & ~4095ULL) - (run_start & ~4095ULL);
                        in_run = false;
                } else if (!in_run) {
                        run_start = start;
                        in_run = true;
                }
                off = start + c.length;
        }
        if (in_run)
                total += ((size + 4095) & ~4095ULL) - (run_start & ~4095ULL);
        return total / 512;
}

static struct fs_node *entry_node(struct fs_ctx *ctx, struct cairn_txn *t, const struct fs_node *parent,
                                  const char *name, size_t len, const struct cairn_entry *e) {
        bool hardlink = e->hardlink_group != 0 && e->type != CAIRN_ENTRY_DIR;
        uint8_t group[8];
        uint64_t key = hardlink ? fs_key_hardlinks(parent->snap) : nodeid_of(ctx, parent);
        const char *kname = name;
        size_t klen = len;
        struct fs_node *n;

        if (hardlink) {
                put_le64(group, e->hardlink_group);
                kname = (const char *) group;
                klen = sizeof group;
        }
        n = fs_nodes_find_ref(ctx->nodes, key, kname, klen);
        if (n)
                return n;

        n = fs_node_new(FS_NODE_ENTRY, key, kname, klen);
        if (!n)
                return NULL;
        n->snap = fs_snap_ref(parent->snap);
        n->ino = hardlink ? fs_ino_hardlink(parent->snap->id, e->hardlink_group) : fs_ino_child(parent->ino, name, len);
        n->type = e->type;
        n->mode = e->mode;
        n->uid = e->uid;
        n->gid = e->gid;
        n->nlink = e->nlink;
        n->size = e->size;
        n->rdev = e->rdev;
        n->mtime_ns = e->mtime_ns;
        n->ctime_ns = e->ctime_ns;
        n->atime_ns = e->atime_ns;
        memcpy(n->ref, e->ref, CAIRN_ID_SIZE);
        if (e->type == CAIRN_ENTRY_SYMLINK) {
                n->target = malloc(e->target_len + 1);
                if (!n->target) {
                        fs_node_discard(n);
                        return NULL;
                }
                memcpy(n->target, e->target, e->target_len);
                n->target[e->target_len] = 0;
                n->target_len = e->target_len;
                n->size = e->target_len;
        }
        if (e->n_xattrs > 0) {
                n->xattrs = malloc(e->xattrs_len);
                if (!n->xattrs) {
                        fs_node_discard(n);
                        return NULL;
                }
                memcpy(n->xattrs, e->xattrs, e->xattrs_len);
                n->xattrs_len = e->xattrs_len;
                n->n_xattrs = e->n_xattrs;
        }
        if (e->type == CAIRN_ENTRY_FILE)
                n->blocks = content_blocks(t, e->ref, e->size);
        return fs_nodes_intern(ctx->nodes, n);
}

static bool is_tree_dir(const struct fs_node *n) {
        return n->kind == FS_NODE_SNAPSHOT || (n->kind == FS_NODE_ENTRY && n->type == CAIRN_ENTRY_DIR);
}

/* A directory's tree must be known to the index: an unknown tree id
 * would otherwise look like an empty directory. */
static int tree_check(struct cairn_txn *t, const struct fs_node *dir) {
        struct cairn_chunk_loc loc;
        char hex[2 * CAIRN_ID_SIZE + 1];
        int r;

        if (memcmp(dir->ref, zero_id, CAIRN_ID_SIZE) == 0)
                return 0;
        r = cairn_index_chunk_get(t, dir->ref, &loc);
        if (r == -ENOENT)
                return log_error_errno(-EIO, "Tree %s (snapshot of job \"%s\") is not in the index: "
                                       "run \"cairn index rebuild\"", hex_encode(dir->ref, CAIRN_ID_SIZE, hex),
                                       dir->snap->job);
        return r;
}

/* ---- handlers ---- */

static void fs_op_init(void *userdata, struct fuse_conn_info *conn) {
        struct fs_ctx *ctx = userdata;

        if (conn->capable & FUSE_CAP_READDIRPLUS)
                conn->want |= FUSE_CAP_READDIRPLUS;
        if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
                conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
        if (conn->capable & FUSE_CAP_ASYNC_READ)
                conn->want |= FUSE_CAP_ASYNC_READ;
        if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
                conn->want |= FUSE_CAP_CACHE_SYMLINKS;
        if (ctx->default_permissions && (conn->capable & FUSE_CAP_POSIX_ACL))
                conn->want |= FUSE_CAP_POSIX_ACL;
        conn->want &= ~(unsigned) FUSE_CAP_AUTO_INVAL_DATA;
        conn->time_gran = 1;
        conn->max_readahead = 4u * 1024 * 1024;
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
        struct fs_ctx *ctx = ctx_of(req);
        _cleanup_(catalog_unrefp) struct fs_catalog *cat = catalog_get(ctx);
        struct fs_node *p = node_of(ctx, parent), *n = NULL;
        size_t len = strlen(name);
        struct fuse_entry_param ep;
        int r;

        switch (p->kind) {
        case FS_NODE_ROOT: {
                const struct fs_job *j = fs_catalog_job(cat, name, len);
                if (!j) {
                        fuse_reply_err(req, ENOENT);
                        return;
                }
                n = job_node(ctx, j);
                break;
        }
        case FS_NODE_JOB: {
                const struct fs_job *j = fs_catalog_job(cat, p->job, strlen(p->job));
                const struct fs_job_snap *js;
                if (!j) {
                        fuse_reply_err(req, ENOENT);
                        return;
                }
                if (streq(name, "latest")) {
                        if (!j->latest) {
                                fuse_reply_err(req, ENOENT);
                                return;
                        }
                        n = latest_node(ctx, p);
                        break;
                }
                js = fs_job_snap(j, name, len);
                if (!js) {
                        fuse_reply_err(req, ENOENT);
                        return;
                }
                n = snapshot_node(ctx, js->snap);
                break;
        }
        case FS_NODE_LATEST:
                fuse_reply_err(req, ENOTDIR);
                return;
        case FS_NODE_SNAPSHOT:
        case FS_NODE_ENTRY: {
                _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
                struct cairn_entry e;

                if (!is_tree_dir(p)) {
                        fuse_reply_err(req, ENOTDIR);
                        return;
                }
                if (len > CAIRN_NAME_MAX) {
                        fuse_reply_err(req, ENAMETOOLONG);
                        return;
                }
                r = txn_begin(ctx, &t);
                if (r >= 0)
                        r = cairn_index_tree_lookup(t, p->ref, name, len, &e);
                if (r == -ENOENT)
                        r = tree_check(t, p) < 0 ? -EIO : -ENOENT;
                if (r < 0) {
                        cairn_index_txn_abort(TAKE_PTR(t));
                        fuse_reply_err(req, reply_errno(r));
                        return;
                }
                n = entry_node(ctx, t, p, name, len, &e);
                break;
        }
        }
        if (!n) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        entry_param(ctx, cat, n, &ep);
        if (fuse_reply_entry(req, &ep) < 0)
                fs_nodes_forget(ctx->nodes, n, 1);   /* the kernel did not take it */
}

static void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
        struct fs_ctx *ctx = ctx_of(req);
        fs_nodes_forget(ctx->nodes, node_of(ctx, ino), nlookup);
        fuse_reply_none(req);
}

static void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
        struct fs_ctx *ctx = ctx_of(req);
        for (size_t i = 0; i < count; i++)
                fs_nodes_forget(ctx->nodes, node_of(ctx, forgets[i].ino), forgets[i].nlookup);
        fuse_reply_none(req);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        struct fs_ctx *ctx = ctx_of(req);
        _cleanup_(catalog_unrefp) struct fs_catalog *cat = catalog_get(ctx);
        struct fs_node *n = node_of(ctx, ino);
        struct stat st;

        node_attr(ctx, cat, n, &st);
        fuse_reply_attr(req, &st, node_timeout(ctx, n));
}

static void fs_op_readlink(fuse_req_t req, fuse_ino_t ino) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *n = node_of(ctx, ino);

        if (n->kind == FS_NODE_LATEST) {
                _cleanup_(catalog_unrefp) struct fs_catalog *cat = catalog_get(ctx);
                const struct fs_job *j = fs_catalog_job(cat, n->job, strlen(n->job));
                if (!j || !j->latest)
                        fuse_reply_err(req, ENOENT);
                else
                        fuse_reply_readlink(req, fs_job_latest_name(j));
                return;
        }
        if (n->kind != FS_NODE_ENTRY || n->type != CAIRN_ENTRY_SYMLINK) {
                fuse_reply_err(req, EINVAL);
                return;
        }
        fuse_reply_readlink(req, n->target);
}

/* ---- directories ---- */

struct fs_dir {
        struct fs_catalog *cat;          /* root and job directories: the listing's catalog */
        char *last_name;                 /* tree directories: where the last reply stopped */
        size_t last_len;
        off_t last_off;
};

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *n = node_of(ctx, ino);
        struct fs_dir *d;

        if (n->kind == FS_NODE_LATEST || (n->kind == FS_NODE_ENTRY && n->type != CAIRN_ENTRY_DIR)) {
                fuse_reply_err(req, ENOTDIR);
                return;
        }
        if (is_tree_dir(n)) {
                _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
                int r = txn_begin(ctx, &t);
                if (r >= 0)
                        r = tree_check(t, n);
                if (r < 0) {
                        cairn_index_txn_abort(TAKE_PTR(t));
                        fuse_reply_err(req, reply_errno(r));
                        return;
                }
        }
        d = calloc(1, sizeof *d);
        if (!d) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        if (is_tree_dir(n)) {
                fi->cache_readdir = 1;
                fi->keep_cache = 1;
        } else
                d->cat = catalog_get(ctx);
        fi->fh = (uint64_t) (uintptr_t) d;
        if (fuse_reply_open(req, fi) < 0) {
                fs_catalog_unref(d->cat);
                free(d);
        }
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        struct fs_dir *d = (struct fs_dir *) (uintptr_t) fi->fh;
        if (d) {
                fs_catalog_unref(d->cat);
                free(d->last_name);
                free(d);
        }
        fuse_reply_err(req, 0);
}

struct dirbuf {
        char *buf;
        size_t size, pos;
        bool plus;
};

/* Add one name; @n (when plus) is a counted node that is handed to the
 * kernel when it fits and forgotten when not.  Returns false when full. */
static bool dirbuf_add(struct fs_ctx *ctx, fuse_req_t req, struct dirbuf *b, const struct fs_catalog *cat,
                       const char *name, struct fs_node *n, uint64_t ino, mode_t type, off_t next) {
        size_t need;

        if (b->plus) {
                struct fuse_entry_param ep;
                if (n)
                        entry_param(ctx, cat, n, &ep);
                else {
                        /* "." and "..": the kernel ignores all but the type */
                        memset(&ep, 0, sizeof ep);
                        ep.attr.st_ino = ino;
                        ep.attr.st_mode = type;
                }
                need = fuse_add_direntry_plus(req, b->buf + b->pos, b->size - b->pos, name, &ep, next);
        } else {
                struct stat st = { .st_ino = ino, .st_mode = type };
                need = fuse_add_direntry(req, b->buf + b->pos, b->size - b->pos, name, &st, next);
        }
        if (need > b->size - b->pos) {
                if (n)
                        fs_nodes_forget(ctx->nodes, n, 1);
                return false;
        }
        b->pos += need;
        return true;
}

static mode_t type_bits(uint8_t type) {
        switch (type) {
        case CAIRN_ENTRY_FILE: return S_IFREG;
        case CAIRN_ENTRY_DIR: return S_IFDIR;
        case CAIRN_ENTRY_SYMLINK: return S_IFLNK;
        case CAIRN_ENTRY_FIFO: return S_IFIFO;
        case CAIRN_ENTRY_CHR: return S_IFCHR;
        case CAIRN_ENTRY_BLK: return S_IFBLK;
        case CAIRN_ENTRY_SOCK: return S_IFSOCK;
        default: return 0;
        }
}

/* Root and job directories: a listing of the catalog taken at opendir.
 * Offsets are positions: 1 after ".", 2 after "..", k+2 after item k. */
static int readdir_virtual(struct fs_ctx *ctx, fuse_req_t req, struct fs_node *dir, struct fs_dir *d,
                           struct dirbuf *b, off_t off) {
        const struct fs_catalog *cat = d->cat;
        const struct fs_job *j = NULL;
        size_t n_items;
        bool has_latest = false;

        if (dir->kind == FS_NODE_JOB) {
                j = fs_catalog_job(cat, dir->job, strlen(dir->job));
                has_latest = j && j->latest;
                n_items = j ? j->n_snaps + has_latest : 0;
        } else
                n_items = cat->n_jobs;

        for (off_t pos = off; pos < (off_t) n_items + 2; pos++) {
                struct fs_node *n = NULL;
                const char *name;
                uint64_t ino;
                mode_t type = S_IFDIR;

                if (pos == 0) {
                        name = ".";
                        ino = dir->ino;
                } else if (pos == 1) {
                        name = "..";
                        ino = FUSE_ROOT_ID;
                } else if (!j) {
                        const struct fs_job *jj = &cat->jobs[pos - 2];
                        name = jj->name;
                        ino = jj->ino;
                        if (b->plus && !(n = job_node(ctx, jj)))
                                return -ENOMEM;
                } else if (has_latest && pos == 2) {
                        name = "latest";
                        type = S_IFLNK;
                        ino = fs_ino_child(dir->ino, "latest", 6);
                        if (b->plus && !(n = latest_node(ctx, dir)))
                                return -ENOMEM;
                } else {
                        const struct fs_job_snap *js = &j->snaps[pos - 2 - has_latest];
                        name = js->name;
                        ino = js->snap->ino;
                        if (b->plus && !(n = snapshot_node(ctx, js->snap)))
                                return -ENOMEM;
                }
                if (!dirbuf_add(ctx, req, b, cat, name, n, ino, type, pos + 1))
                        break;
        }
        return 0;
}

static void tree_iter_freep(struct cairn_tree_iter **it) {
        cairn_index_tree_iter_free(*it);
}

/* Tree directories: a cursor walk.  Offsets: 1 after ".", 2 after "..",
 * k+2 after the k-th name.  A reply that continues where the last one
 * stopped resumes after its last name; any other offset walks from the
 * start. */
static int readdir_tree(struct fs_ctx *ctx, fuse_req_t req, struct fs_node *dir, struct fs_dir *d,
                        struct dirbuf *b, off_t off) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_(tree_iter_freep) struct cairn_tree_iter *it = NULL;
        const struct fs_catalog *cat = NULL;   /* entries never need it */
        char last[CAIRN_NAME_MAX + 1];
        size_t last_len = 0;
        bool resumed;
        off_t pos;
        int r;

        if (off == 0 && !dirbuf_add(ctx, req, b, cat, ".", NULL, dir->ino, S_IFDIR, 1))
                return 0;
        if (off <= 1 && !dirbuf_add(ctx, req, b, cat, "..", NULL, FUSE_ROOT_ID, S_IFDIR, 2))
                return 0;
        pos = MAX(off, (off_t) 2);

        r = txn_begin(ctx, &t);
        if (r < 0)
                return r;
        resumed = pos > 2 && d->last_name && d->last_off == pos;
        r = cairn_index_tree_iter_new(t, dir->ref, resumed ? d->last_name : NULL, resumed ? d->last_len : 0, &it);
        if (r < 0)
                return r;
        if (!resumed)
                for (off_t skip = 2; skip < pos; skip++) {
                        const char *name;
                        size_t len;
                        struct cairn_entry e;
                        r = cairn_index_tree_iter_next(it, &name, &len, &e);
                        if (r <= 0)
                                return r;
                }

        for (;;) {
                const char *name;
                size_t len;
                struct cairn_entry e;
                struct fs_node *n = NULL;
                char cname[CAIRN_NAME_MAX + 1];

                r = cairn_index_tree_iter_next(it, &name, &len, &e);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (len > CAIRN_NAME_MAX)
                        return -EBADMSG;
                memcpy(cname, name, len);
                cname[len] = 0;
                if (b->plus && !(n = entry_node(ctx, t, dir, name, len, &e)))
                        return -ENOMEM;
                if (!dirbuf_add(ctx, req, b, cat, cname, n,
                                n ? n->ino : (e.hardlink_group && e.type != CAIRN_ENTRY_DIR
                                                      ? fs_ino_hardlink(dir->snap->id, e.hardlink_group)
                                                      : fs_ino_child(dir->ino, name, len)),
                                type_bits(e.type), pos + 1))
                        break;
                memcpy(last, name, len);
                last_len = len;
                pos++;
        }
        if (last_len > 0) {
                char *copy = malloc(last_len);
                if (copy) {
                        memcpy(copy, last, last_len);
                        free(d->last_name);
                        d->last_name = copy;
                        d->last_len = last_len;
                        d->last_off = pos;
                }
        }
        return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi, bool plus) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *dir = node_of(ctx, ino);
        struct fs_dir *d = (struct fs_dir *) (uintptr_t) fi->fh;
        struct dirbuf b = { .size = size, .plus = plus };
        int r;

        b.buf = malloc(size ? size : 1);
        if (!b.buf) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        r = is_tree_dir(dir) ? readdir_tree(ctx, req, dir, d, &b, off) : readdir_virtual(ctx, req, dir, d, &b, off);
        if (r < 0 && b.pos == 0)
                fuse_reply_err(req, reply_errno(r));
        else
                fuse_reply_buf(req, b.buf, b.pos);
        free(b.buf);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        do_readdir(req, ino, size, off, fi, false);
}

static void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        do_readdir(req, ino, size, off, fi, true);
}

/* ---- files ---- */

struct fs_file {
        uint64_t next_off;               /* where a sequential reader reads next; racy hint */
        uint64_t ra_end;                 /* prefetch asked up to here; racy hint */
        bool tables_asked;               /* segment tables prefetched for a random reader; racy hint */
};

static void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *n = node_of(ctx, ino);
        struct fs_file *f;

        if (n->kind != FS_NODE_ENTRY || n->type != CAIRN_ENTRY_FILE) {
                fuse_reply_err(req, n->type == CAIRN_ENTRY_DIR ? EISDIR : EACCES);
                return;
        }
        if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
                fuse_reply_err(req, EROFS);
                return;
        }
        f = calloc(1, sizeof *f);
        if (!f) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        fi->fh = (uint64_t) (uintptr_t) f;
        fi->keep_cache = 1;              /* snapshot content never changes */
        if (fuse_reply_open(req, fi) < 0)
                free(f);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        free((void *) (uintptr_t) fi->fh);
        fuse_reply_err(req, 0);
}

struct read_plan {
        struct iovec iov[READ_IOV_MAX];
        const struct cairn_chunk *held[READ_IOV_MAX];
        size_t n_iov, n_held;
        uint64_t last_chunk_end;
};

static void plan_release(struct fs_ctx *ctx, struct read_plan *p) {
        for (size_t i = 0; i < p->n_held; i++)
                cairn_chunk_cache_release(ctx->cache, p->held[i]);
        p->n_held = p->n_iov = 0;
}

static int log_read_error(int r, const struct fs_node *n, uint64_t off, const uint8_t chunk[CAIRN_ID_SIZE]) {
        char cid[2 * CAIRN_ID_SIZE + 1], chid[2 * CAIRN_ID_SIZE + 1], when[32];
        return log_error_errno(r, "Read of a file in snapshot %s/%s (content %s) at offset %" PRIu64
                               " failed: chunk %s: %m", n->snap->job, cairn_time_format(n->snap->start_ns, when, sizeof when),
                               hex_encode(n->ref, CAIRN_ID_SIZE, cid), off,
                               chunk ? hex_encode(chunk, CAIRN_ID_SIZE, chid) : "-");
}

/* Gather [off, off+len) as iovecs over cached chunks and zeros.  -E2BIG
 * when it needs more than READ_IOV_MAX pieces. */
static int plan_read(struct fs_ctx *ctx, struct cairn_txn *t, const struct fs_node *n, uint64_t off, size_t len,
                     bool sequential, struct read_plan *p) {
        size_t done = 0;
        int r;

        while (done < len) {
                struct cairn_content_chunk c;
                uint64_t start, in;
                size_t piece;

                r = cairn_index_content_find(t, n->ref, off + done, &c, &start);
                if (r < 0)
                        return log_read_error(r == -ENOENT ? -EIO : r, n, off + done, NULL);
                in = off + done - start;
                piece = (size_t) MIN(c.length - in, (uint64_t) (len - done));
                p->last_chunk_end = start + c.length;
                if (c.flags & CAIRN_CHUNK_HOLE) {
                        while (piece > 0) {
                                size_t z = MIN(piece, sizeof zeros);
                                if (p->n_iov == READ_IOV_MAX)
                                        return -E2BIG;
                                p->iov[p->n_iov++] = (struct iovec) { (void *) zeros, z };
                                piece -= z;
                                done += z;
                        }
                        continue;
                }
                /* A sequential reader takes whole chunks (and prefetches
                 * the next ones); a random one only the segment it needs. */
                while (piece > 0) {
                        const struct cairn_chunk *ch;
                        size_t take;

                        if (p->n_iov == READ_IOV_MAX)
                                return -E2BIG;
                        r = sequential ? cairn_chunk_cache_get(ctx->cache, c.id, (size_t) c.length, &ch)
                                       : cairn_chunk_cache_get_part(ctx->cache, c.id, (size_t) c.length, in, &ch);
                        if (r < 0)
                                return log_read_error(r, n, off + done, c.id);
                        p->held[p->n_held++] = ch;
                        take = (size_t) MIN((uint64_t) piece, ch->base + ch->len - in);
                        p->iov[p->n_iov++] = (struct iovec) { (void *) (ch->data + (in - ch->base)), take };
                        in += take;
                        piece -= take;
                        done += take;
                }
        }
        return 0;
}

/* Queue the chunks after @from for the prefetch workers. */
static void prefetch_after(struct fs_ctx *ctx, struct cairn_txn *t, const struct fs_node *n, struct fs_file *f,
                           uint64_t from) {
        uint64_t off = MAX(from, f->ra_end), limit = from + RA_BYTES_MAX;
        unsigned count = 0;

        while (off < n->size && off < limit && count < ctx->readahead_chunks) {
                struct cairn_content_chunk c;
                uint64_t start;

                if (cairn_index_content_find(t, n->ref, off, &c, &start) < 0 || c.length == 0)
                        break;
                if (!(c.flags & CAIRN_CHUNK_HOLE)) {
                        cairn_chunk_cache_prefetch(ctx->cache, c.id, (size_t) c.length);
                        count++;
                }
                off = start + c.length;
        }
        f->ra_end = off;
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *n = node_of(ctx, ino);
        struct fs_file *f = (struct fs_file *) (uintptr_t) fi->fh;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct read_plan *p = NULL;
        uint8_t *flat = NULL;
        size_t len;
        bool sequential;
        int r;

        if (off < 0 || (uint64_t) off >= n->size || size == 0) {
                fuse_reply_buf(req, NULL, 0);
                return;
        }
        len = (size_t) MIN((uint64_t) size, n->size - (uint64_t) off);
        /* Only the page cache's misses reach us, so a random reader's
         * requests can land near each other; the kernel's readahead for a
         * sequential one sends large requests (or continues exactly where
         * the last one ended).  Sequential readers get whole chunks and
         * prefetch, random ones single segments. */
        sequential = (uint64_t) off == f->next_off ||
                     (size >= SEQ_REQUEST_MIN && (uint64_t) off <= f->next_off + SEQ_WINDOW &&
                      (uint64_t) off + SEQ_WINDOW >= f->next_off);
        f->next_off = (uint64_t) off + len;

        p = malloc(sizeof *p);
        if (!p) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        p->n_iov = p->n_held = 0;
        r = txn_begin(ctx, &t);
        if (r >= 0)
                r = plan_read(ctx, t, n, (uint64_t) off, len, sequential, p);
        if (r == -E2BIG) {
                /* Many small pieces (a file with many holes): copy instead. */
                plan_release(ctx, p);
                flat = malloc(len);
                ssize_t got = flat ? bk_content_pread(ctx->repo, t, n->ref, flat, len, (uint64_t) off) : -ENOMEM;
                r = got < 0 ? (int) got : 0;
                if (r >= 0) {
                        p->iov[0] = (struct iovec) { flat, (size_t) got };
                        p->n_iov = 1;
                }
        }
        if (r >= 0 && sequential && ctx->readahead_chunks > 0 && p->last_chunk_end > f->ra_end)
                prefetch_after(ctx, t, n, f, p->last_chunk_end);
        if (r >= 0 && !sequential && !f->tables_asked && ctx->readahead_chunks > 0) {
                f->tables_asked = true;
                cairn_chunk_cache_prefetch_tables(ctx->cache, n->ref);
        }
        cairn_index_txn_abort(TAKE_PTR(t));

        if (r < 0)
                fuse_reply_err(req, reply_errno(r));
        else
                fuse_reply_iov(req, p->iov, (int) p->n_iov);
        plan_release(ctx, p);
        free(flat);
        free(p);
}

static void fs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *n = node_of(ctx, ino);
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        uint64_t pos = (uint64_t) off;
        int r;

        if (whence != SEEK_DATA && whence != SEEK_HOLE) {
                fuse_reply_err(req, EINVAL);
                return;
        }
        if (off < 0 || pos >= n->size) {
                fuse_reply_err(req, ENXIO);
                return;
        }
        r = txn_begin(ctx, &t);
        if (r < 0) {
                fuse_reply_err(req, reply_errno(r));
                return;
        }
        while (pos < n->size) {
                struct cairn_content_chunk c;
                uint64_t start;

                r = cairn_index_content_find(t, n->ref, pos, &c, &start);
                if (r < 0 || c.length == 0) {
                        cairn_index_txn_abort(TAKE_PTR(t));
                        fuse_reply_err(req, EIO);
                        return;
                }
                bool hole = c.flags & CAIRN_CHUNK_HOLE;
                if ((whence == SEEK_DATA && !hole) || (whence == SEEK_HOLE && hole))
                        break;
                pos = start + c.length;
        }
        cairn_index_txn_abort(TAKE_PTR(t));
        if (pos >= n->size) {
                if (whence == SEEK_DATA) {
                        fuse_reply_err(req, ENXIO);
                        return;
                }
                pos = n->size;   /* the virtual hole at the end */
        }
        fuse_reply_lseek(req, (off_t) pos);
}

/* ---- xattrs ---- */

static struct cairn_entry xattr_view(const struct fs_node *n) {
        return (struct cairn_entry) { .n_xattrs = n->n_xattrs, .xattrs = n->xattrs, .xattrs_len = n->xattrs_len };
}

static void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *n = node_of(ctx, ino);
        struct cairn_entry e = xattr_view(n);
        struct cairn_xattr x;
        size_t cursor = 0, len = strlen(name);
        int r;

        while ((r = cairn_entry_xattr_next(&e, &cursor, &x)) > 0) {
                if (x.name_len != len || memcmp(x.name, name, len) != 0)
                        continue;
                if (size == 0)
                        fuse_reply_xattr(req, x.value_len);
                else if (x.value_len > size)
                        fuse_reply_err(req, ERANGE);
                else
                        fuse_reply_buf(req, x.value, x.value_len);
                return;
        }
        fuse_reply_err(req, r < 0 ? EIO : ENODATA);
}

static void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
        struct fs_ctx *ctx = ctx_of(req);
        struct fs_node *n = node_of(ctx, ino);
        struct cairn_entry e = xattr_view(n);
        struct cairn_xattr x;
        size_t cursor = 0, total = 0;
        _cleanup_free_ char *buf = NULL;
        int r;

        while ((r = cairn_entry_xattr_next(&e, &cursor, &x)) > 0)
                total += x.name_len + 1;
        if (r < 0) {
                fuse_reply_err(req, EIO);
                return;
        }
        if (size == 0) {
                fuse_reply_xattr(req, total);
                return;
        }
        if (total > size) {
                fuse_reply_err(req, ERANGE);
                return;
        }
        buf = malloc(total ? total : 1);
        if (!buf) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        cursor = 0;
        size_t pos = 0;
        while (cairn_entry_xattr_next(&e, &cursor, &x) > 0) {
                memcpy(buf + pos, x.name, x.name_len);
                pos += x.name_len;
                buf[pos++] = 0;
        }
        fuse_reply_buf(req, buf, total);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino) {
        struct fs_ctx *ctx = ctx_of(req);
        struct statvfs sv, out = { .f_bsize = 4096, .f_frsize = 4096, .f_namemax = CAIRN_NAME_MAX };

        /* The size of what holds the repository; nothing is free to write. */
        if (fstatvfs(cairn_repo_fd(ctx->repo), &sv) == 0) {
                out.f_blocks = sv.f_blocks * sv.f_frsize / 4096;
                out.f_files = sv.f_files;
        }
        fuse_reply_statfs(req, &out);
}

const struct fuse_lowlevel_ops fs_ops = {
        .init = fs_op_init,
        .lookup = fs_op_lookup,
        .forget = fs_op_forget,
        .forget_multi = fs_op_forget_multi,
        .getattr = fs_op_getattr,
        .readlink = fs_op_readlink,
        .opendir = fs_op_opendir,
        .readdir = fs_op_readdir,
        .readdirplus = fs_op_readdirplus,
        .releasedir = fs_op_releasedir,
        .open = fs_op_open,
        .read = fs_op_read,
        .release = fs_op_release,
        .lseek = fs_op_lseek,
        .getxattr = fs_op_getxattr,
        .listxattr = fs_op_listxattr,
        .statfs = fs_op_statfs,
};

/* ---- the catalog and its refresher ---- */

int fs_catalog_init(struct fs_ctx *ctx) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct fs_catalog *c;
        int r;

        r = txn_begin(ctx, &t);
        if (r < 0)
                return log_error_errno(r, "Cannot read the index: %m");
        r = fs_catalog_load(t, NULL, &c);
        if (r < 0)
                return log_error_errno(r, "Cannot list the snapshots: %m");
        ctx->cat = c;
        return 0;
}

/* Tell the kernel to forget what it cached of the names that changed. */
static void invalidate(struct fs_ctx *ctx, const struct fs_catalog *old, const struct fs_catalog *cur) {
        bool root_changed = old->n_jobs != cur->n_jobs;

        for (size_t i = 0; i < old->n_jobs; i++) {
                const struct fs_job *oj = &old->jobs[i];
                const struct fs_job *nj = fs_catalog_job(cur, oj->name, strlen(oj->name));
                struct fs_node *jn;

                if (nj && fs_job_equal(oj, nj))
                        continue;
                jn = fs_nodes_peek(ctx->nodes, FUSE_ROOT_ID, oj->name, strlen(oj->name));
                if (!nj) {
                        root_changed = true;
                        fuse_lowlevel_notify_inval_entry(ctx->se, FUSE_ROOT_ID, oj->name, strlen(oj->name));
                        continue;
                }
                if (!jn)
                        continue;
                fuse_ino_t jid = nodeid_of(ctx, jn);
                fuse_lowlevel_notify_inval_inode(ctx->se, jid, 0, 0);
                fuse_lowlevel_notify_inval_entry(ctx->se, jid, "latest", 6);
                struct fs_node *ln = fs_nodes_peek(ctx->nodes, jid, "latest", 6);
                if (ln)
                        fuse_lowlevel_notify_inval_inode(ctx->se, nodeid_of(ctx, ln), 0, 0);
                for (size_t k = 0; k < oj->n_snaps; k++) {
                        const struct fs_job_snap *js = fs_job_snap(nj, oj->snaps[k].name, strlen(oj->snaps[k].name));
                        if (!js || js->snap != oj->snaps[k].snap)
                                fuse_lowlevel_notify_inval_entry(ctx->se, jid, oj->snaps[k].name,
                                                                 strlen(oj->snaps[k].name));
                }
        }
        for (size_t i = 0; i < cur->n_jobs && !root_changed; i++)
                if (!fs_catalog_job(old, cur->jobs[i].name, strlen(cur->jobs[i].name)))
                        root_changed = true;
        if (root_changed)
                fuse_lowlevel_notify_inval_inode(ctx->se, FUSE_ROOT_ID, 0, 0);
}

static void refresh_once(struct fs_ctx *ctx) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_(catalog_unrefp) struct fs_catalog *old = catalog_get(ctx);
        struct fs_catalog *cur = NULL;

        if (txn_begin(ctx, &t) < 0 || fs_catalog_load(t, old, &cur) < 0)
                return;   /* logged; tried again next time */
        cairn_index_txn_abort(TAKE_PTR(t));
        if (fs_catalog_equal(old, cur)) {
                fs_catalog_unref(cur);
                return;
        }
        pthread_mutex_lock(&ctx->cat_lock);
        struct fs_catalog *prev = ctx->cat;
        ctx->cat = cur;
        pthread_mutex_unlock(&ctx->cat_lock);
        fs_catalog_unref(prev);
        invalidate(ctx, old, cur);
}

static void *refresher_main(void *userdata) {
        struct fs_ctx *ctx = userdata;

        pthread_mutex_lock(&ctx->stop_lock);
        while (!ctx->stopping) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += (long) (ctx->refresh_ms % 1000) * 1000000;
                until.tv_sec += ctx->refresh_ms / 1000 + until.tv_nsec / 1000000000;
                until.tv_nsec %= 1000000000;
                pthread_cond_timedwait(&ctx->stop_cond, &ctx->stop_lock, &until);
                if (ctx->stopping)
                        break;
                pthread_mutex_unlock(&ctx->stop_lock);
                refresh_once(ctx);
                pthread_mutex_lock(&ctx->stop_lock);
        }
        pthread_mutex_unlock(&ctx->stop_lock);
        return NULL;
}

int fs_refresher_start(struct fs_ctx *ctx) {
        int r = pthread_create(&ctx->refresher, NULL, refresher_main, ctx);
        if (r != 0)
                return log_error_errno(-r, "Cannot start the catalog thread: %m");
        ctx->refresher_started = true;
        return 0;
}

void fs_refresher_stop(struct fs_ctx *ctx) {
        if (!ctx->refresher_started)
                return;
        pthread_mutex_lock(&ctx->stop_lock);
        ctx->stopping = true;
        pthread_cond_signal(&ctx->stop_cond);
        pthread_mutex_unlock(&ctx->stop_lock);
        pthread_join(ctx->refresher, NULL);
        ctx->refresher_started = false;
}
