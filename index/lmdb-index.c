/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include "fault.h"
#include "lmdb-index.h"
#include "log.h"
#include "util.h"

/*
 * Row layouts (see lmdb-index.h).  Offsets in keys are big-endian so that
 * LMDB's default memcmp order is numeric order; values are little-endian
 * like the rest of the format.
 *
 * Snapshot keys hold the start time as be64 of the uint64_t bit pattern:
 * negative times (before 1970) would sort after every positive one, so
 * they are refused with -EINVAL rather than stored out of order.
 */

#define CHUNK_VAL_SIZE (CAIRN_ID_SIZE + 8 + 4 + 4 + 1)
#define PACK_VAL_SIZE (8 + 4)
#define CONTENT_KEY_SIZE (CAIRN_ID_SIZE + 8)
#define CONTENT_VAL_SIZE (CAIRN_ID_SIZE + 8 + 1)
#define TREE_KEY_MAX (CAIRN_ID_SIZE + CAIRN_NAME_MAX)

/* LMDB's compile-time key limit (MDB_MAXKEYSIZE, 511 by default); a job
 * name longer than this leaves no room for the 0x00 and the time. */
#define KEY_MAX 511
#define JOB_MAX (KEY_MAX - 1 - 8)

/* Address space only: the file grows with the data (no MDB_WRITEMAP), so a
 * map far larger than any index costs nothing and is never resized while
 * readers hold it. */
#define MAP_SIZE (sizeof(size_t) >= 8 ? (size_t) 1 << 40 : (size_t) 1 << 30)

static const char *const table_names[_CAIRN_TABLE_MAX] = {
        [CAIRN_TABLE_CHUNKS] = "chunks",
        [CAIRN_TABLE_PACKS] = "packs",
        [CAIRN_TABLE_TREES] = "trees",
        [CAIRN_TABLE_CONTENTS] = "contents",
        [CAIRN_TABLE_SNAPSHOTS] = "snapshots",
};

struct cairn_index {
        MDB_env *env;
        MDB_dbi dbi[_CAIRN_TABLE_MAX];   /* set once at open, read-only after */
};

struct cairn_txn {
        MDB_txn *txn;
        struct cairn_index *idx;
        bool write;
};

/* Walks one directory.  It owns an MDB cursor of its transaction, and for
 * a write transaction LMDB frees that cursor itself when the transaction
 * ends, so an iterator must be freed before its txn is committed, aborted
 * or reset (freeing it later would close the cursor twice). */
struct cairn_tree_iter {
        MDB_cursor *cursor;
        uint8_t key[TREE_KEY_MAX];
        size_t key_len;                  /* id | after, or just the id */
        bool skip_exact;                 /* the first row may be `after` itself */
        bool started, done;
};

/* The one mapping from LMDB's error space to ours. */
static int mdb_errno(int rc, const char *what) {
        if (rc == 0)
                return 0;
        if (rc == MDB_NOTFOUND)
                return -ENOENT;
        if (rc == MDB_MAP_FULL)
                return log_error_errno(-ENOSPC, "LMDB index is full (%s): %s", what, mdb_strerror(rc));
        if (rc > 0)
                return -rc;
        return log_error_errno(-EIO, "LMDB %s failed: %s", what, mdb_strerror(rc));
}

const char *cairn_index_table_name(enum cairn_index_table t) {
        if ((unsigned) t >= _CAIRN_TABLE_MAX)
                return NULL;
        return table_names[t];
}

static MDB_dbi table_dbi(struct cairn_txn *t, enum cairn_index_table table) {
        return t->idx->dbi[table];
}

/* Set once by the program before it opens an index (see the header). */
static bool random_access;

void cairn_index_set_random_access(bool on) {
        random_access = on;
}

static void index_freep(struct cairn_index **idx) {
        cairn_index_free(*idx);
}

static void txn_abortp(MDB_txn **txn) {
        if (*txn)
                mdb_txn_abort(*txn);
}

int cairn_index_open(const char *path, struct cairn_index **ret) {
        _cleanup_(index_freep) struct cairn_index *idx = NULL;
        _cleanup_(txn_abortp) MDB_txn *txn = NULL;
        int rc, dead = 0;

        idx = calloc(1, sizeof *idx);
        if (!idx)
                return -ENOMEM;

        rc = mdb_env_create(&idx->env);
        if (rc == 0)
                rc = mdb_env_set_maxdbs(idx->env, 8);
        if (rc == 0)
                rc = mdb_env_set_maxreaders(idx->env, 512);
        if (rc == 0)
                rc = mdb_env_set_mapsize(idx->env, MAP_SIZE);
        if (rc != 0)
                return log_error_errno(mdb_errno(rc, "environment set-up"), "Failed to set up index %s: %m", path);

        /* MDB_NOTLS: reader slots belong to transactions, not threads, so a
         * FUSE worker may hand a read txn on or keep several.
         * MDB_NORDAHEAD (madvise MADV_RANDOM on the map) when asked: from
         * a cold cache each page fault would otherwise read read_ahead_kb
         * around its page (8 MiB on some virtual disks: 25 ms a fault). */
        rc = mdb_env_open(idx->env, path, MDB_NOTLS | (random_access ? MDB_NORDAHEAD : 0), 0600);
        if (rc != 0)
                return log_error_errno(mdb_errno(rc, "mdb_env_open"), "Failed to open index %s: %m", path);

        /* LMDB reads pages through its map and trusts the file to hold
         * every page its meta page counts: a shorter file (truncated,
         * or a partial copy) would be SIGBUS on the first read of a page
         * past its end, so it is refused here. */
        {
                MDB_envinfo info;
                MDB_stat mst;
                struct stat st;
                int fd;

                if (mdb_env_info(idx->env, &info) == 0 && mdb_env_stat(idx->env, &mst) == 0 &&
                    mdb_env_get_fd(idx->env, &fd) == 0 && fstat(fd, &st) == 0 &&
                    (uint64_t) st.st_size < ((uint64_t) info.me_last_pgno + 1) * mst.ms_psize)
                        return log_error_errno(-EBADMSG, "Index %s is damaged: data.mdb is %" PRIu64 " bytes, "
                                               "but its pages need %" PRIu64 " (truncated?)", path,
                                               (uint64_t) st.st_size,
                                               ((uint64_t) info.me_last_pgno + 1) * mst.ms_psize);
        }

        /* Reader slots of processes that died (a kill -9 during a backup)
         * would otherwise pin old pages and let the file grow forever. */
        rc = mdb_reader_check(idx->env, &dead);
        if (rc != 0)
                log_warning("Failed to check stale readers of index %s: %s", path, mdb_strerror(rc));
        else if (dead > 0)
                log_debug("Cleared %d stale reader slots of index %s", dead, path);

        /* Handles opened in a committed txn are valid for every later txn
         * of every thread, so this is the only place that opens them.
         * When every table exists, a read-only txn opens them: it neither
         * takes the writers' lock (a mount must not wait for a backup's
         * commit) nor writes; else a write txn creates what is missing. */
        rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return log_error_errno(mdb_errno(rc, "mdb_txn_begin"),
                                       "Failed to begin a transaction on index %s: %m", path);
        for (int i = 0; i < _CAIRN_TABLE_MAX && rc == 0; i++)
                rc = mdb_dbi_open(txn, table_names[i], 0, &idx->dbi[i]);
        if (rc == 0) {
                rc = mdb_txn_commit(TAKE_PTR(txn));
                if (rc != 0)
                        return log_error_errno(mdb_errno(rc, "mdb_txn_commit"),
                                               "Failed to open the tables of index %s: %m", path);
                *ret = TAKE_PTR(idx);
                return 0;
        }
        mdb_txn_abort(TAKE_PTR(txn));
        if (rc != MDB_NOTFOUND)
                return log_error_errno(mdb_errno(rc, "mdb_dbi_open"), "Failed to open the tables of index %s: %m",
                                       path);

        rc = mdb_txn_begin(idx->env, NULL, 0, &txn);
        if (rc != 0)
                return log_error_errno(mdb_errno(rc, "mdb_txn_begin"),
                                       "Failed to begin a transaction on index %s: %m", path);
        for (int i = 0; i < _CAIRN_TABLE_MAX; i++) {
                rc = mdb_dbi_open(txn, table_names[i], MDB_CREATE, &idx->dbi[i]);
                if (rc != 0)
                        return log_error_errno(mdb_errno(rc, "mdb_dbi_open"), "Failed to open table %s of index %s: %m",
                                               table_names[i], path);
        }
        rc = mdb_txn_commit(TAKE_PTR(txn));
        if (rc != 0)
                return log_error_errno(mdb_errno(rc, "mdb_txn_commit"), "Failed to create the tables of index %s: %m",
                                       path);

        *ret = TAKE_PTR(idx);
        return 0;
}

/*
 * Warming the page cache before the environment is opened.  A cold B-tree
 * walk waits for one page at a time; this reads the same pages through a
 * plain fd, a level at a time, every page of a level asked for at once
 * (POSIX_FADV_WILLNEED), so the disk serves them in parallel.  It follows
 * LMDB's data file format (version 1, lmdb 0.9's mdb.c): a page header
 * of pgno (8), pad (2), flags (2), lower (2), upper (2), then 16-bit node
 * offsets; the meta page's MDB_meta after the header; a branch node's
 * child page number in its first six bytes.  Only a hint: every field is
 * checked, and whatever does not look right ends the walk; the index
 * itself is only ever read through LMDB.
 */
#define W_PAGEHDR 16
#define W_P_BRANCH 0x01
#define W_P_LEAF 0x02
#define W_P_META 0x08
#define W_F_SUBDATA 0x02
#define W_MAGIC 0xBEEFC0DEu
#define W_MAX_LEVEL 8192          /* pages asked for at one level of one table */

struct warm {
        int fd;
        uint64_t psize, npages;
        uint8_t *page;
};

static uint16_t w_u16(const uint8_t *p) {
        uint16_t v;
        memcpy(&v, p, sizeof v);
        return v;
}

static uint64_t w_u64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        return v;
}

/* Read page @pgno into w->page; its flags must include @flag. */
static bool w_read(struct warm *w, uint64_t pgno, uint16_t flag) {
        uint16_t lower, upper;

        if (pgno >= w->npages || pread(w->fd, w->page, w->psize, (off_t) (pgno * w->psize)) != (ssize_t) w->psize)
                return false;
        lower = w_u16(w->page + 12);
        upper = w_u16(w->page + 14);
        return w_u64(w->page) == pgno && (w_u16(w->page + 10) & flag) && lower >= W_PAGEHDR && lower <= upper &&
               upper <= w->psize;
}

/* Node @i of the page in w->page, or NULL. */
static const uint8_t *w_node(struct warm *w, unsigned i) {
        uint16_t off = w_u16(w->page + W_PAGEHDR + 2 * i);
        return off >= w_u16(w->page + 14) && off + 8u <= w->psize ? w->page + off : NULL;
}

static unsigned w_nkeys(struct warm *w) {
        return (w_u16(w->page + 12) - W_PAGEHDR) / 2;
}

static void w_advise(struct warm *w, const uint64_t *pgnos, size_t n) {
        for (size_t i = 0; i < n; i++)
                (void) posix_fadvise(w->fd, (off_t) (pgnos[i] * w->psize), (off_t) w->psize, POSIX_FADV_WILLNEED);
}

/* Descend the tree at @root of @depth levels: every branch page, and the
 * leaves too when @leaves. */
static void w_tree(struct warm *w, uint64_t root, unsigned depth, bool leaves) {
        _cleanup_free_ uint64_t *level = malloc(W_MAX_LEVEL * sizeof *level);
        _cleanup_free_ uint64_t *next = malloc(W_MAX_LEVEL * sizeof *next);
        size_t n = 1;

        if (!level || !next || depth == 0 || depth > 16)
                return;
        level[0] = root;
        for (unsigned d = 1; d < depth; d++) {   /* levels of branch pages */
                size_t m = 0;
                w_advise(w, level, n);
                for (size_t i = 0; i < n; i++) {
                        if (!w_read(w, level[i], W_P_BRANCH))
                                return;
                        for (unsigned k = 0; k < w_nkeys(w) && m < W_MAX_LEVEL; k++) {
                                const uint8_t *node = w_node(w, k);
                                if (!node)
                                        return;
                                next[m++] = w_u16(node) | (uint64_t) w_u16(node + 2) << 16 |
                                            (uint64_t) w_u16(node + 4) << 32;
                        }
                }
                if (d + 1 == depth && !leaves)
                        return;
                memcpy(level, next, m * sizeof *level);
                n = m;
        }
        w_advise(w, level, n);
}

void cairn_index_warm(const char *path, const char *const *tables, const bool *leaves, size_t n_tables) {
        char file[4200];
        struct warm w = { .psize = 4096 };
        uint8_t meta[2][W_PAGEHDR + 136];
        const uint8_t *m = NULL;
        struct stat st;
        uint64_t main_root;
        unsigned main_depth;

        snprintf(file, sizeof file, "%s/data.mdb", path);
        w.fd = open(file, O_RDONLY | O_CLOEXEC);
        if (w.fd < 0)
                return;
        /* Read ahead only what is asked for: the pages are scattered. */
        (void) posix_fadvise(w.fd, 0, 0, POSIX_FADV_RANDOM);
        if (fstat(w.fd, &st) < 0 || pread(w.fd, meta[0], sizeof meta[0], 0) != (ssize_t) sizeof meta[0])
                goto out;
        /* The page size is the free DB's md_pad (mm_psize). */
        w.psize = w_u64(meta[0] + W_PAGEHDR + 24) & 0xffffffffu;
        if (w.psize < 512 || w.psize > 65536 || (w.psize & (w.psize - 1)) ||
            pread(w.fd, meta[1], sizeof meta[1], (off_t) w.psize) != (ssize_t) sizeof meta[1])
                goto out;
        w.npages = (uint64_t) st.st_size / w.psize;
        for (int i = 0; i < 2; i++) {
                const uint8_t *p = meta[i];
                if (!(w_u16(p + 10) & W_P_META) || (w_u64(p + W_PAGEHDR) & 0xffffffffu) != W_MAGIC ||
                    w_u64(p + W_PAGEHDR) >> 32 != 1)
                        continue;
                /* the newer of the two: mm_txnid */
                if (!m || w_u64(p + W_PAGEHDR + 128) > w_u64(m + W_PAGEHDR + 128))
                        m = p;
        }
        if (!m)
                goto out;
        main_depth = w_u16(m + W_PAGEHDR + 24 + 48 + 6);      /* mm_dbs[MAIN].md_depth */
        main_root = w_u64(m + W_PAGEHDR + 24 + 48 + 40);      /* mm_dbs[MAIN].md_root */
        w.page = malloc(w.psize);
        if (!w.page || main_depth != 1 || !w_read(&w, main_root, W_P_LEAF))
                goto out;   /* a main DB of more than a page: not ours */

        /* The main DB's leaf: one F_SUBDATA node per table, an MDB_db. */
        {
                uint64_t roots[16];
                unsigned depths[16];
                size_t n = MIN(n_tables, ELEMENTSOF(roots));

                for (size_t t = 0; t < n; t++)
                        depths[t] = 0;
                for (unsigned k = 0; k < w_nkeys(&w); k++) {
                        const uint8_t *node = w_node(&w, k);
                        uint16_t ksize;
                        if (!node)
                                goto out;
                        ksize = w_u16(node + 6);
                        if (!(w_u16(node + 4) & W_F_SUBDATA) || (w_u16(node) | (uint32_t) w_u16(node + 2) << 16) != 48 ||
                            (size_t) (node - w.page) + 8 + ksize + 48 > w.psize)
                                continue;
                        for (size_t t = 0; t < n; t++)
                                if (strlen(tables[t]) == ksize && memcmp(node + 8, tables[t], ksize) == 0) {
                                        depths[t] = w_u16(node + 8 + ksize + 6);
                                        roots[t] = w_u64(node + 8 + ksize + 40);
                                }
                }
                for (size_t t = 0; t < n; t++)
                        if (depths[t] > 0)
                                w_tree(&w, roots[t], depths[t], leaves[t]);
        }
out:
        free(w.page);
        close(w.fd);
}

int cairn_index_prefetch(struct cairn_index *idx, uint64_t max_bytes, const bool *stop) {
        const uint64_t step = 1024 * 1024;
        struct stat st;
        int fd;

        if (mdb_env_get_fd(idx->env, &fd) != 0 || fstat(fd, &st) < 0)
                return -EBADF;
        if ((uint64_t) st.st_size > max_bytes)
                return 0;
        for (uint64_t off = 0; off < (uint64_t) st.st_size; off += step) {
                uint64_t n = MIN(step, (uint64_t) st.st_size - off);
                char byte;

                if (__atomic_load_n(stop, __ATOMIC_RELAXED))
                        return 0;
                /* Ask for the MiB, then wait for its last page: one MiB in
                 * flight at a time, so that a request's page fault never
                 * waits behind more than that. */
                if (readahead(fd, (off_t) off, n) < 0)
                        return -errno;
                (void) !pread(fd, &byte, 1, (off_t) (off + n - 1));
        }
        return 1;
}

struct cairn_index *cairn_index_free(struct cairn_index *idx) {
        if (!idx)
                return NULL;
        if (idx->env)   /* NULL when open failed early */
                mdb_env_close(idx->env);
        free(idx);
        return NULL;
}

/* Transactions */

int cairn_index_txn_begin(struct cairn_index *idx, bool write, struct cairn_txn **ret) {
        struct cairn_txn *t;
        int rc;

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        rc = mdb_txn_begin(idx->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
        if (rc != 0) {
                free(t);
                return mdb_errno(rc, "mdb_txn_begin");
        }
        t->idx = idx;
        t->write = write;
        *ret = t;
        return 0;
}

/* LMDB does not write the pages a transaction allocated and freed again
 * ("loose" pages): after such a commit the file can end before the last
 * page the meta page counts, which the open-time check takes for a
 * truncated file.  Grow the file to that size (posix_fallocate never
 * shrinks it, so a writer that grew it since is safe). */
static void index_pad_file(struct cairn_index *idx) {
        MDB_envinfo info;
        MDB_stat mst;
        struct stat st;
        uint64_t need;
        int fd, k;

        if (mdb_env_info(idx->env, &info) != 0 || mdb_env_stat(idx->env, &mst) != 0 ||
            mdb_env_get_fd(idx->env, &fd) != 0 || fstat(fd, &st) < 0)
                return;
        need = ((uint64_t) info.me_last_pgno + 1) * mst.ms_psize;
        if ((uint64_t) st.st_size >= need)
                return;
        k = posix_fallocate(fd, st.st_size, (off_t) (need - (uint64_t) st.st_size));
        if (k != 0)
                log_warning("Cannot grow the index file to %" PRIu64 " bytes: %s", need, strerror(k));
        else
                log_debug("Grew the index file from %" PRIu64 " to %" PRIu64 " bytes (pages LMDB left unwritten)",
                          (uint64_t) st.st_size, need);
}

/* Is the filesystem of the index (nearly) full?  A write that came up
 * short leaves less than a page. */
static bool index_fs_full(struct cairn_index *idx) {
        struct statvfs sv;
        int fd;

        if (mdb_env_get_fd(idx->env, &fd) != 0 || fstatvfs(fd, &sv) < 0)
                return false;
        return (uint64_t) sv.f_bavail * sv.f_frsize < 64 * 1024;
}

int cairn_index_txn_commit(struct cairn_txn *t) {
        struct cairn_index *idx = t->idx;
        bool write = t->write;
        int rc;

        cairn_fault_point("index.before-commit");
        /* LMDB frees the txn whether or not the commit succeeds. */
        rc = mdb_txn_commit(t->txn);
        free(t);
        if (rc == 0 && write)
                index_pad_file(idx);
        if (rc == 0)
                cairn_fault_point("index.after-commit");
        /* LMDB turns a short write into EIO: on a full filesystem (a
         * tmpfs writes what fits, then stops) that is ENOSPC, and the
         * operator must hear "no space", not "I/O error". */
        if (rc == EIO && index_fs_full(idx))
                rc = ENOSPC;
        if (rc > 0)
                return log_error_errno(-rc, "Failed to commit index transaction: %m");
        return mdb_errno(rc, "mdb_txn_commit");
}

void cairn_index_txn_abort(struct cairn_txn *t) {
        if (!t)
                return;
        mdb_txn_abort(t->txn);
        free(t);
}

void cairn_index_txn_reset(struct cairn_txn *t) {
        mdb_txn_reset(t->txn);
}

int cairn_index_txn_renew(struct cairn_txn *t) {
        return mdb_errno(mdb_txn_renew(t->txn), "mdb_txn_renew");
}

/* Small helpers */

static int get(struct cairn_txn *t, enum cairn_index_table table, const void *key, size_t klen, MDB_val *ret) {
        MDB_val k = { .mv_size = klen, .mv_data = (void *) key };
        return mdb_errno(mdb_get(t->txn, table_dbi(t, table), &k, ret), "mdb_get");
}

static int put(struct cairn_txn *t, enum cairn_index_table table, const void *key, size_t klen,
               const void *val, size_t vlen) {
        MDB_val k = { .mv_size = klen, .mv_data = (void *) key };
        MDB_val v = { .mv_size = vlen, .mv_data = (void *) val };
        return mdb_errno(mdb_put(t->txn, table_dbi(t, table), &k, &v, 0), "mdb_put");
}

static void cursor_closep(MDB_cursor **c) {
        if (*c)
                mdb_cursor_close(*c);
}

static int cursor_open(struct cairn_txn *t, enum cairn_index_table table, MDB_cursor **ret) {
        return mdb_errno(mdb_cursor_open(t->txn, table_dbi(t, table), ret), "mdb_cursor_open");
}

/* chunks */

int cairn_index_chunk_put(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], const struct cairn_chunk_loc *loc) {
        uint8_t v[CHUNK_VAL_SIZE], *p = v;

        memcpy(p, loc->pack, CAIRN_ID_SIZE), p += CAIRN_ID_SIZE;
        put_le64(p, loc->offset), p += 8;
        put_le32(p, loc->stored_len), p += 4;
        put_le32(p, loc->raw_len), p += 4;
        *p = loc->type;
        return put(t, CAIRN_TABLE_CHUNKS, id, CAIRN_ID_SIZE, v, sizeof v);
}

int cairn_index_chunk_get(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], struct cairn_chunk_loc *ret) {
        MDB_val v;
        int r;

        r = get(t, CAIRN_TABLE_CHUNKS, id, CAIRN_ID_SIZE, &v);
        if (r < 0)
                return r;
        if (v.mv_size != CHUNK_VAL_SIZE)
                return log_error_errno(-EBADMSG, "Index row of table chunks has %zu bytes, expected %d",
                                       v.mv_size, CHUNK_VAL_SIZE);

        const uint8_t *p = v.mv_data;
        memcpy(ret->pack, p, CAIRN_ID_SIZE), p += CAIRN_ID_SIZE;
        ret->offset = get_le64(p), p += 8;
        ret->stored_len = get_le32(p), p += 4;
        ret->raw_len = get_le32(p), p += 4;
        ret->type = *p;
        return 0;
}

/* packs */

int cairn_index_pack_put(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], uint64_t size, uint32_t count) {
        uint8_t v[PACK_VAL_SIZE];

        put_le64(v, size);
        put_le32(v + 8, count);
        return put(t, CAIRN_TABLE_PACKS, id, CAIRN_ID_SIZE, v, sizeof v);
}

int cairn_index_pack_get(struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE], uint64_t *ret_size, uint32_t *ret_count) {
        MDB_val v;
        int r;

        r = get(t, CAIRN_TABLE_PACKS, id, CAIRN_ID_SIZE, &v);
        if (r < 0)
                return r;
        if (v.mv_size != PACK_VAL_SIZE)
                return log_error_errno(-EBADMSG, "Index row of table packs has %zu bytes, expected %d",
                                       v.mv_size, PACK_VAL_SIZE);
        if (ret_size)
                *ret_size = get_le64(v.mv_data);
        if (ret_count)
                *ret_count = get_le32((const uint8_t *) v.mv_data + 8);
        return 0;
}

/* trees */

int cairn_index_tree_put_blob(struct cairn_txn *t, const uint8_t tree_id[CAIRN_ID_SIZE], const uint8_t *blob, size_t len) {
        uint8_t key[TREE_KEY_MAX];
        size_t cursor = 0;
        int r;

        memcpy(key, tree_id, CAIRN_ID_SIZE);

        /* cairn_tree_next checks the whole blob, entries included, on its
         * first call: a damaged blob writes no row at all. */
        for (;;) {
                const char *name;
                const uint8_t *entry;
                size_t name_len, entry_len;

                r = cairn_tree_next(blob, len, &cursor, &name, &name_len, &entry, &entry_len);
                if (r < 0)
                        return log_error_errno(r, "Tree blob is malformed: %m");
                if (r == 0)
                        return 0;

                memcpy(key + CAIRN_ID_SIZE, name, name_len);
                r = put(t, CAIRN_TABLE_TREES, key, CAIRN_ID_SIZE + name_len, entry, entry_len);
                if (r < 0)
                        return r;
        }
}

static int decode_tree_row(const MDB_val *v, struct cairn_entry *ret) {
        int r = cairn_entry_decode(v->mv_data, v->mv_size, ret);
        if (r < 0)
                return log_error_errno(r, "Index row of table trees is malformed: %m");
        return 0;
}

int cairn_index_tree_lookup(struct cairn_txn *t, const uint8_t tree_id[CAIRN_ID_SIZE],
                            const char *name, size_t name_len, struct cairn_entry *ret) {
        uint8_t key[TREE_KEY_MAX];
        MDB_val v;
        int r;

        /* No row can hold such a name; and a long one would not fit a key. */
        if (!cairn_name_valid(name, name_len))
                return -ENOENT;

        memcpy(key, tree_id, CAIRN_ID_SIZE);
        memcpy(key + CAIRN_ID_SIZE, name, name_len);
        r = get(t, CAIRN_TABLE_TREES, key, CAIRN_ID_SIZE + name_len, &v);
        if (r < 0)
                return r;
        return decode_tree_row(&v, ret);
}

int cairn_index_tree_iter_new(struct cairn_txn *t, const uint8_t tree_id[CAIRN_ID_SIZE],
                              const char *after, size_t after_len, struct cairn_tree_iter **ret) {
        struct cairn_tree_iter *it;
        int r;

        it = calloc(1, sizeof *it);
        if (!it)
                return -ENOMEM;

        r = cursor_open(t, CAIRN_TABLE_TREES, &it->cursor);
        if (r < 0) {
                free(it);
                return r;
        }

        memcpy(it->key, tree_id, CAIRN_ID_SIZE);
        it->key_len = CAIRN_ID_SIZE;
        if (after && after_len > 0) {
                /* Every stored name is at most CAIRN_NAME_MAX bytes, so the
                 * names after a longer `after` are exactly those after its
                 * truncation, minus the truncation itself. */
                size_t n = MIN(after_len, (size_t) CAIRN_NAME_MAX);
                memcpy(it->key + CAIRN_ID_SIZE, after, n);
                it->key_len += n;
                it->skip_exact = true;
        }

        *ret = it;
        return 0;
}

/* The next row of the directory: 1 (*k, *v borrowed), 0 at its end, <0. */
static int tree_iter_step(struct cairn_tree_iter *it, MDB_val *ret_k, MDB_val *ret_v) {
        MDB_val k, v;
        int rc;

        if (it->done)
                return 0;

        if (!it->started) {
                k = (MDB_val) { .mv_size = it->key_len, .mv_data = it->key };
                rc = mdb_cursor_get(it->cursor, &k, &v, MDB_SET_RANGE);
                it->started = true;
                if (rc == 0 && it->skip_exact && k.mv_size == it->key_len &&
                    memcmp(k.mv_data, it->key, it->key_len) == 0)
                        rc = mdb_cursor_get(it->cursor, &k, &v, MDB_NEXT);
        } else
                rc = mdb_cursor_get(it->cursor, &k, &v, MDB_NEXT);

        if (rc == MDB_NOTFOUND) {
                it->done = true;
                return 0;
        }
        if (rc != 0)
                return mdb_errno(rc, "mdb_cursor_get");

        /* The next tree's rows follow directly: stop at the id boundary. */
        if (k.mv_size < CAIRN_ID_SIZE || memcmp(k.mv_data, it->key, CAIRN_ID_SIZE) != 0) {
                it->done = true;
                return 0;
        }
        if (k.mv_size == CAIRN_ID_SIZE)
                return log_error_errno(-EBADMSG, "Index row of table trees has an empty name");
        *ret_k = k;
        *ret_v = v;
        return 1;
}

int cairn_index_tree_iter_next(struct cairn_tree_iter *it, const char **ret_name, size_t *ret_name_len,
                               struct cairn_entry *ret_entry) {
        MDB_val k, v;
        int r;

        r = tree_iter_step(it, &k, &v);
        if (r <= 0)
                return r;
        r = decode_tree_row(&v, ret_entry);
        if (r < 0)
                return r;
        *ret_name = (const char *) k.mv_data + CAIRN_ID_SIZE;
        *ret_name_len = k.mv_size - CAIRN_ID_SIZE;
        return 1;
}

int cairn_index_tree_iter_next_raw(struct cairn_tree_iter *it, const char **ret_name, size_t *ret_name_len,
                                   const uint8_t **ret_entry, size_t *ret_entry_len) {
        MDB_val k, v;
        int r;

        r = tree_iter_step(it, &k, &v);
        if (r <= 0)
                return r;
        *ret_name = (const char *) k.mv_data + CAIRN_ID_SIZE;
        *ret_name_len = k.mv_size - CAIRN_ID_SIZE;
        *ret_entry = v.mv_data;
        *ret_entry_len = v.mv_size;
        return 1;
}

struct cairn_tree_iter *cairn_index_tree_iter_free(struct cairn_tree_iter *it) {
        if (!it)
                return NULL;
        mdb_cursor_close(it->cursor);
        free(it);
        return NULL;
}

/* contents */

int cairn_index_content_put(struct cairn_txn *t, const uint8_t content_id[CAIRN_ID_SIZE],
                            const struct cairn_content_chunk *chunks, size_t n) {
        static const uint8_t zero[CAIRN_ID_SIZE];
        uint8_t key[CONTENT_KEY_SIZE], val[CONTENT_VAL_SIZE];
        uint64_t end = 0;
        int r;

        /* Check everything first so that a bad list leaves no rows behind. */
        for (size_t i = 0; i < n; i++) {
                const struct cairn_content_chunk *c = &chunks[i];
                if (c->length == 0 || c->length > UINT64_MAX - end)
                        return -EINVAL;
                if ((c->flags & ~CAIRN_CHUNK_HOLE) ||
                    ((c->flags & CAIRN_CHUNK_HOLE) && memcmp(c->id, zero, CAIRN_ID_SIZE) != 0))
                        return -EINVAL;
                end += c->length;
        }

        memcpy(key, content_id, CAIRN_ID_SIZE);
        end = 0;
        for (size_t i = 0; i < n; i++) {
                end += chunks[i].length;
                put_be64(key + CAIRN_ID_SIZE, end);
                memcpy(val, chunks[i].id, CAIRN_ID_SIZE);
                put_le64(val + CAIRN_ID_SIZE, chunks[i].length);
                val[CAIRN_ID_SIZE + 8] = chunks[i].flags;
                r = put(t, CAIRN_TABLE_CONTENTS, key, sizeof key, val, sizeof val);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int decode_content_row(const MDB_val *k, const MDB_val *v, uint64_t *ret_end,
                              struct cairn_content_chunk *ret_chunk) {
        if (k->mv_size != CONTENT_KEY_SIZE || v->mv_size != CONTENT_VAL_SIZE)
                return log_error_errno(-EBADMSG, "Index row of table contents has a bad size (key %zu, value %zu)",
                                       k->mv_size, v->mv_size);

        const uint8_t *p = v->mv_data;
        uint64_t end = get_be64((const uint8_t *) k->mv_data + CAIRN_ID_SIZE);
        uint64_t length = get_le64(p + CAIRN_ID_SIZE);
        if (length == 0 || length > end)
                return log_error_errno(-EBADMSG, "Index row of table contents is inconsistent (end %" PRIu64
                                       ", length %" PRIu64 ")", end, length);

        *ret_end = end;
        if (ret_chunk) {
                memcpy(ret_chunk->id, p, CAIRN_ID_SIZE);
                ret_chunk->length = length;
                ret_chunk->flags = p[CAIRN_ID_SIZE + 8];
        }
        return 0;
}

int cairn_index_content_find(struct cairn_txn *t, const uint8_t content_id[CAIRN_ID_SIZE], uint64_t offset,
                             struct cairn_content_chunk *ret_chunk, uint64_t *ret_start) {
        _cleanup_(cursor_closep) MDB_cursor *c = NULL;
        struct cairn_content_chunk chunk;
        uint8_t key[CONTENT_KEY_SIZE];
        uint64_t end;
        MDB_val k, v;
        int r;

        /* An end offset cannot exceed UINT64_MAX, so no chunk holds it. */
        if (offset == UINT64_MAX)
                return -ENOENT;

        r = cursor_open(t, CAIRN_TABLE_CONTENTS, &c);
        if (r < 0)
                return r;

        /* The first chunk whose end lies beyond @offset holds it. */
        memcpy(key, content_id, CAIRN_ID_SIZE);
        put_be64(key + CAIRN_ID_SIZE, offset + 1);
        k = (MDB_val) { .mv_size = sizeof key, .mv_data = key };
        r = mdb_errno(mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), "mdb_cursor_get");
        if (r < 0)
                return r;
        if (k.mv_size < CAIRN_ID_SIZE || memcmp(k.mv_data, content_id, CAIRN_ID_SIZE) != 0)
                return -ENOENT;

        r = decode_content_row(&k, &v, &end, &chunk);
        if (r < 0)
                return r;
        if (end - chunk.length > offset)
                return log_error_errno(-EBADMSG, "Index rows of table contents leave a gap before offset %" PRIu64,
                                       end - chunk.length);

        if (ret_chunk)
                *ret_chunk = chunk;
        if (ret_start)
                *ret_start = end - chunk.length;
        return 0;
}

int cairn_index_content_size(struct cairn_txn *t, const uint8_t content_id[CAIRN_ID_SIZE], uint64_t *ret_size) {
        _cleanup_(cursor_closep) MDB_cursor *c = NULL;
        uint8_t key[CONTENT_KEY_SIZE];
        uint64_t end;
        MDB_val k, v;
        int rc, r;

        r = cursor_open(t, CAIRN_TABLE_CONTENTS, &c);
        if (r < 0)
                return r;

        /* The last row of this content is the one just before the first
         * key past its largest possible end offset. */
        memcpy(key, content_id, CAIRN_ID_SIZE);
        put_be64(key + CAIRN_ID_SIZE, UINT64_MAX);
        k = (MDB_val) { .mv_size = sizeof key, .mv_data = key };
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && !(k.mv_size == sizeof key && memcmp(k.mv_data, key, sizeof key) == 0))
                rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
        else if (rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        r = mdb_errno(rc, "mdb_cursor_get");
        if (r < 0)
                return r;
        if (k.mv_size < CAIRN_ID_SIZE || memcmp(k.mv_data, content_id, CAIRN_ID_SIZE) != 0)
                return -ENOENT;

        r = decode_content_row(&k, &v, &end, NULL);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = end;
        return 0;
}

/* snapshots */

static int snapshot_key(const char *job, int64_t start_ns, uint8_t key[KEY_MAX], size_t *ret_len) {
        size_t n;

        if (!job || start_ns < 0)
                return -EINVAL;
        n = strlen(job);
        if (n == 0 || n > JOB_MAX)
                return -EINVAL;
        memcpy(key, job, n);
        key[n] = 0;
        put_be64(key + n + 1, (uint64_t) start_ns);
        *ret_len = n + 1 + 8;
        return 0;
}

int cairn_index_snapshot_put(struct cairn_txn *t, const char *job, int64_t start_ns,
                             const uint8_t snap_id[CAIRN_ID_SIZE], const char *json, size_t json_len) {
        _cleanup_free_ uint8_t *val = NULL;
        uint8_t key[KEY_MAX];
        size_t klen;
        int r;

        r = snapshot_key(job, start_ns, key, &klen);
        if (r < 0)
                return r;
        if (json_len > SIZE_MAX - CAIRN_ID_SIZE || (json_len > 0 && !json))
                return -EINVAL;

        val = malloc(CAIRN_ID_SIZE + json_len);
        if (!val)
                return -ENOMEM;
        memcpy(val, snap_id, CAIRN_ID_SIZE);
        if (json_len > 0)
                memcpy(val + CAIRN_ID_SIZE, json, json_len);
        return put(t, CAIRN_TABLE_SNAPSHOTS, key, klen, val, CAIRN_ID_SIZE + json_len);
}

int cairn_index_snapshot_del(struct cairn_txn *t, const char *job, int64_t start_ns) {
        uint8_t key[KEY_MAX];
        size_t klen;
        MDB_val k;
        int r;

        r = snapshot_key(job, start_ns, key, &klen);
        if (r < 0)
                return r;
        k = (MDB_val) { .mv_size = klen, .mv_data = key };
        return mdb_errno(mdb_del(t->txn, table_dbi(t, CAIRN_TABLE_SNAPSHOTS), &k, NULL), "mdb_del");
}

int cairn_index_snapshot_foreach(struct cairn_txn *t, const char *job, cairn_snapshot_cb cb, void *userdata) {
        _cleanup_(cursor_closep) MDB_cursor *c = NULL;
        uint8_t prefix[KEY_MAX];
        size_t prefix_len = 0;
        MDB_val k, v;
        int rc, r;

        if (job) {
                prefix_len = strlen(job) + 1;
                if (prefix_len == 1 || prefix_len > JOB_MAX + 1)
                        return -EINVAL;
                memcpy(prefix, job, prefix_len);   /* with its NUL: "pg" must not match "pgdb" */
        }

        r = cursor_open(t, CAIRN_TABLE_SNAPSHOTS, &c);
        if (r < 0)
                return r;

        if (job) {
                k = (MDB_val) { .mv_size = prefix_len, .mv_data = prefix };
                rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        } else
                rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);

        for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                const uint8_t *key = k.mv_data;

                if (job && (k.mv_size < prefix_len || memcmp(key, prefix, prefix_len) != 0))
                        return 0;

                /* The job's NUL sits right before the time, so the key's
                 * job part is handed out as a C string in place. */
                if (k.mv_size < 2 + 8 || key[k.mv_size - 9] != 0 || memchr(key, 0, k.mv_size - 9) ||
                    v.mv_size < CAIRN_ID_SIZE)
                        return log_error_errno(-EBADMSG, "Index row of table snapshots is malformed");

                r = cb((const char *) key, (int64_t) get_be64(key + k.mv_size - 8), v.mv_data,
                       (const char *) v.mv_data + CAIRN_ID_SIZE, v.mv_size - CAIRN_ID_SIZE, userdata);
                if (r < 0)
                        return r;
                if (r > 0)
                        return 0;
        }
        return rc == MDB_NOTFOUND ? 0 : mdb_errno(rc, "mdb_cursor_get");
}

int cairn_index_foreach_raw(struct cairn_txn *t, enum cairn_index_table table, cairn_raw_cb cb, void *userdata) {
        _cleanup_(cursor_closep) MDB_cursor *c = NULL;
        MDB_val k, v;
        int rc, r;

        if ((unsigned) table >= _CAIRN_TABLE_MAX)
                return -EINVAL;

        r = cursor_open(t, table, &c);
        if (r < 0)
                return r;

        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                r = cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, userdata);
                if (r != 0)
                        return r;
        }
        return rc == MDB_NOTFOUND ? 0 : mdb_errno(rc, "mdb_cursor_get");
}

int cairn_index_del(struct cairn_txn *t, enum cairn_index_table table, const uint8_t id[CAIRN_ID_SIZE]) {
        MDB_val k = { .mv_size = CAIRN_ID_SIZE, .mv_data = (void *) id };
        int rc = mdb_del(t->txn, t->idx->dbi[table], &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : mdb_errno(rc, "mdb_del");
}

int cairn_index_del_prefix(struct cairn_txn *t, enum cairn_index_table table, const uint8_t id[CAIRN_ID_SIZE]) {
        MDB_cursor *c = NULL;
        int rc;

        rc = mdb_cursor_open(t->txn, t->idx->dbi[table], &c);
        if (rc != 0)
                return mdb_errno(rc, "mdb_cursor_open");
        for (;;) {
                /* After a delete the cursor may sit anywhere: seek afresh. */
                MDB_val k = { .mv_size = CAIRN_ID_SIZE, .mv_data = (void *) id }, v;
                rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
                if (rc != 0 || k.mv_size < CAIRN_ID_SIZE || memcmp(k.mv_data, id, CAIRN_ID_SIZE) != 0)
                        break;
                rc = mdb_cursor_del(c, 0);
                if (rc != 0)
                        break;
        }
        mdb_cursor_close(c);
        return rc == MDB_NOTFOUND || rc == 0 ? 0 : mdb_errno(rc, "mdb_cursor_del");
}
