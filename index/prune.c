/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>


#include "fault.h"
#include "idset.h"
#include "log.h"
#include "pack.h"
#include "prune.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"
#include "util.h"

#define HEX_ID_SIZE (2 * CAIRN_ID_SIZE + 1)
#define CHUNK_VAL_SIZE (CAIRN_ID_SIZE + 8 + 4 + 4 + 1)   /* FORMAT.md, table chunks */
#define PACK_VAL_SIZE (8 + 4)                            /* FORMAT.md, table packs */

/* A tree or content blob listing nothing: magic (4) and a zero count (4).
 * Only such a blob may have no rows in `trees` / `contents`. */
#define EMPTY_LIST_BLOB_SIZE 8

static const uint8_t zero_id[CAIRN_ID_SIZE];

static bool id_is_zero(const uint8_t id[CAIRN_ID_SIZE]) {
        return memcmp(id, zero_id, CAIRN_ID_SIZE) == 0;
}

/* A growable array of ids (the trees still to walk, snapshot roots). */
struct idvec {
        uint8_t (*ids)[CAIRN_ID_SIZE];
        size_t n, cap;
};

static int idvec_push(struct idvec *v, const uint8_t id[CAIRN_ID_SIZE]) {
        if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 256;
                uint8_t (*p)[CAIRN_ID_SIZE] = reallocarray(v->ids, cap, CAIRN_ID_SIZE);
                if (!p)
                        return -ENOMEM;
                v->ids = p;
                v->cap = cap;
        }
        memcpy(v->ids[v->n++], id, CAIRN_ID_SIZE);
        return 0;
}

static void idvec_release(struct idvec *v) {
        free(v->ids);
        *v = (struct idvec) { 0 };
}

/* --- mark --------------------------------------------------------------- */

struct mark {
        struct cairn_txn *t;
        struct cairn_idset used;
        struct idvec roots, todo;
};

static int collect_root(const char *job, int64_t start_ns, const uint8_t snap_id[CAIRN_ID_SIZE], const char *json,
                        size_t json_len, void *userdata) {
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        struct mark *m = userdata;
        char hex[HEX_ID_SIZE], when[32];
        int k;

        k = cairn_snapshot_from_json(json, json_len, &s);
        if (k < 0)
                /* Its blobs cannot be marked, so they would look unused. */
                return log_error_errno(k == -ENOMEM ? k : -EBADMSG,
                                       "Snapshot %s of job %s (%s) in the index does not parse; "
                                       "nothing was pruned (run `cairn index rebuild`): %m",
                                       hex_encode(snap_id, CAIRN_ID_SIZE, hex), job,
                                       cairn_time_format(start_ns, when, sizeof when));
        return idvec_push(&m->roots, s->root);
}

/* A tree or content with no rows must be an empty one: otherwise the index
 * lost rows and what they named would look unused. */
static int check_no_rows(struct mark *m, const uint8_t id[CAIRN_ID_SIZE], const char *what) {
        struct cairn_chunk_loc loc;
        char hex[HEX_ID_SIZE];
        int k;

        k = cairn_index_chunk_get(m->t, id, &loc);
        if (k == -ENOENT)
                return 0;               /* missing altogether: the sweep counts it */
        if (k < 0)
                return k;
        if (loc.raw_len > EMPTY_LIST_BLOB_SIZE)
                return log_error_errno(-EBADMSG, "The index has no rows for %s %s (%" PRIu32 " bytes); "
                                       "nothing was pruned (run `cairn index rebuild`)",
                                       what, hex_encode(id, CAIRN_ID_SIZE, hex), loc.raw_len);
        return 0;
}

static int mark_content(struct mark *m, const uint8_t content_id[CAIRN_ID_SIZE]) {
        uint64_t offset = 0;

        for (;;) {
                struct cairn_content_chunk chunk;
                uint64_t start;
                int k;

                k = cairn_index_content_find(m->t, content_id, offset, &chunk, &start);
                if (k == -ENOENT)
                        return offset == 0 ? check_no_rows(m, content_id, "content") : 0;
                if (k < 0)
                        return k;
                if (!(chunk.flags & CAIRN_CHUNK_HOLE) && !id_is_zero(chunk.id)) {
                        k = cairn_idset_add(&m->used, chunk.id);
                        if (k < 0)
                                return k;
                }
                if (chunk.length == 0 || start + chunk.length <= offset)
                        return log_error_errno(-EBADMSG, "Malformed chunk list in the index");
                offset = start + chunk.length;
        }
}

static int mark_tree(struct mark *m, const uint8_t tree_id[CAIRN_ID_SIZE]) {
        struct cairn_tree_iter *it = NULL;
        size_t entries = 0;
        int k;

        k = cairn_index_tree_iter_new(m->t, tree_id, NULL, 0, &it);
        if (k < 0)
                return k;
        for (;;) {
                struct cairn_entry e;
                const char *name;
                size_t name_len;

                k = cairn_index_tree_iter_next(it, &name, &name_len, &e);
                if (k <= 0)
                        break;
                entries++;
                if ((e.type != CAIRN_ENTRY_DIR && e.type != CAIRN_ENTRY_FILE) || id_is_zero(e.ref))
                        continue;       /* empty file, or nothing stored */
                /* Shared subtrees and contents are walked once: the set of
                 * used blobs is also the set of visited ones. */
                k = cairn_idset_add(&m->used, e.ref);
                if (k <= 0) {
                        if (k < 0)
                                break;
                        continue;
                }
                k = e.type == CAIRN_ENTRY_DIR ? idvec_push(&m->todo, e.ref) : mark_content(m, e.ref);
                if (k < 0)
                        break;
        }
        cairn_index_tree_iter_free(it);
        if (k < 0)
                return k;
        return entries == 0 ? check_no_rows(m, tree_id, "tree") : 0;
}

static int mark_all(struct mark *m) {
        int k;

        k = cairn_index_snapshot_foreach(m->t, NULL, collect_root, m);
        if (k < 0)
                return k;
        for (size_t i = 0; i < m->roots.n; i++) {
                k = cairn_idset_add(&m->used, m->roots.ids[i]);
                if (k <= 0) {
                        if (k < 0)
                                return k;
                        continue;
                }
                /* Depth-first with an explicit stack: deep directory trees
                 * cost heap, not C stack. */
                k = idvec_push(&m->todo, m->roots.ids[i]);
                while (k >= 0 && m->todo.n > 0) {
                        uint8_t id[CAIRN_ID_SIZE];
                        memcpy(id, m->todo.ids[--m->todo.n], CAIRN_ID_SIZE);
                        k = mark_tree(m, id);
                }
                if (k < 0)
                        return k;
        }
        return 0;
}

/* --- sweep -------------------------------------------------------------- */

enum pack_action {
        PACK_KEEP,
        PACK_DELETE,
        PACK_REPACK,
};

struct pack_info {
        uint8_t id[CAIRN_ID_SIZE];
        uint64_t size;                  /* file size, from the packs row */
        uint64_t used_n, unused_n;
        uint64_t used_stored, unused_stored;
        enum pack_action action;
};

struct packs {
        struct pack_info *p;            /* sorted by id (the table's order) */
        size_t n, cap;
};

static int collect_pack(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        struct packs *ps = userdata;
        struct pack_info *pi;

        if (klen != CAIRN_ID_SIZE || vlen != PACK_VAL_SIZE)
                return log_error_errno(-EBADMSG, "Index row of table packs is malformed");
        if (ps->n == ps->cap) {
                size_t cap = ps->cap ? ps->cap * 2 : 64;
                pi = reallocarray(ps->p, cap, sizeof *pi);
                if (!pi)
                        return -ENOMEM;
                ps->p = pi;
                ps->cap = cap;
        }
        pi = &ps->p[ps->n++];
        *pi = (struct pack_info) { .size = get_le64((const uint8_t *) val) };
        memcpy(pi->id, key, CAIRN_ID_SIZE);
        return 0;
}

static struct pack_info *pack_find(const struct packs *ps, const uint8_t id[CAIRN_ID_SIZE]) {
        size_t lo = 0, hi = ps->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = memcmp(ps->p[mid].id, id, CAIRN_ID_SIZE);
                if (c == 0)
                        return &ps->p[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

struct row {
        uint8_t id[CAIRN_ID_SIZE];
        struct cairn_chunk_loc loc;
};

static int parse_chunk_row(const void *key, size_t klen, const void *val, size_t vlen, struct row *ret) {
        const uint8_t *p = val;

        if (klen != CAIRN_ID_SIZE || vlen != CHUNK_VAL_SIZE)
                return log_error_errno(-EBADMSG, "Index row of table chunks is malformed");
        memcpy(ret->id, key, CAIRN_ID_SIZE);
        memcpy(ret->loc.pack, p, CAIRN_ID_SIZE), p += CAIRN_ID_SIZE;
        ret->loc.offset = get_le64(p), p += 8;
        ret->loc.stored_len = get_le32(p), p += 4;
        ret->loc.raw_len = get_le32(p), p += 4;
        ret->loc.type = *p;
        return 0;
}

struct sweep {
        const struct cairn_idset *used;
        struct packs *packs;
        struct cairn_idset *orphan_packs;     /* named by chunk rows, but without a packs row */
        uint64_t used_found, blobs_used, blobs_unused;
};

static int sweep_row(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        struct sweep *sw = userdata;
        struct pack_info *pi;
        struct row row;
        bool used;
        int k;

        k = parse_chunk_row(key, klen, val, vlen, &row);
        if (k < 0)
                return k;
        used = cairn_idset_has(sw->used, row.id);
        if (used) {
                sw->used_found++;
                sw->blobs_used++;
        } else
                sw->blobs_unused++;
        /* A row naming a pack without a packs row (a damaged index) is left
         * alone, and so is that pack's file, though it looks unindexed. */
        pi = pack_find(sw->packs, row.loc.pack);
        if (!pi)
                return cairn_idset_add(sw->orphan_packs, row.loc.pack) < 0 ? -ENOMEM : 0;
        if (used) {
                pi->used_n++;
                pi->used_stored += row.loc.stored_len;
        } else {
                pi->unused_n++;
                pi->unused_stored += row.loc.stored_len;
        }
        return 0;
}

/* The rows of the packs that go: unused blobs of deleted and repacked
 * packs (whose rows are dropped) and used blobs of repacked ones (which
 * move). */
struct plan {
        const struct cairn_idset *used;
        struct packs *packs;
        struct row *drop, *move;
        size_t n_drop, cap_drop, n_move, cap_move;
};

static int row_push(struct row **v, size_t *n, size_t *cap, const struct row *row) {
        if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 256;
                struct row *p = reallocarray(*v, c, sizeof *p);
                if (!p)
                        return -ENOMEM;
                *v = p;
                *cap = c;
        }
        (*v)[(*n)++] = *row;
        return 0;
}

static int plan_row(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        struct plan *pl = userdata;
        struct pack_info *pi;
        struct row row;
        int k;

        k = parse_chunk_row(key, klen, val, vlen, &row);
        if (k < 0)
                return k;
        pi = pack_find(pl->packs, row.loc.pack);
        if (!pi || pi->action == PACK_KEEP)
                return 0;
        if (!cairn_idset_has(pl->used, row.id))
                return row_push(&pl->drop, &pl->n_drop, &pl->cap_drop, &row);
        return row_push(&pl->move, &pl->n_move, &pl->cap_move, &row);
}

/* Pack order, then file order: repacking reads each old pack front to back. */
static int cmp_row_location(const void *a, const void *b) {
        const struct row *x = a, *y = b;
        int c = memcmp(x->loc.pack, y->loc.pack, CAIRN_ID_SIZE);
        if (c != 0)
                return c;
        return x->loc.offset < y->loc.offset ? -1 : x->loc.offset > y->loc.offset;
}

static void plan_release(struct plan *pl) {
        free(pl->drop);
        free(pl->move);
}

/* Rows of the blobs of pack @pack_id that no snapshot uses: the chunk
 * row, and the directory / chunk list of a tree / content blob. */
static int drop_rows_of(struct cairn_txn *t, const struct plan *pl, const uint8_t pack_id[CAIRN_ID_SIZE]) {
        for (size_t i = 0; i < pl->n_drop; i++) {
                const struct row *row = &pl->drop[i];
                int k;

                if (memcmp(row->loc.pack, pack_id, CAIRN_ID_SIZE) != 0)
                        continue;
                k = cairn_index_del(t, CAIRN_TABLE_CHUNKS, row->id);
                if (k >= 0 && row->loc.type == CAIRN_BLOB_TREE)
                        k = cairn_index_del_prefix(t, CAIRN_TABLE_TREES, row->id);
                else if (k >= 0 && row->loc.type == CAIRN_BLOB_CONTENT)
                        k = cairn_index_del_prefix(t, CAIRN_TABLE_CONTENTS, row->id);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* --- deleting files ----------------------------------------------------- */

/* packs/xx directories that lost a file and need an fsync. */
struct dirty_dirs {
        bool xx[256];
};

static int unlink_pack(struct cairn_repo *r, const uint8_t id[CAIRN_ID_SIZE], struct dirty_dirs *dd) {
        char path[100];

        cairn_pack_path(id, path, sizeof path);
        if (unlinkat(cairn_repo_fd(r), path, 0) < 0 && errno != ENOENT)
                return log_error_errno(-errno, "Cannot delete pack %s/%s: %m", cairn_repo_path(r), path);
        log_debug("Deleted pack %s", path);
        dd->xx[id[0]] = true;
        return 0;
}

static int sync_dirs(struct cairn_repo *r, struct dirty_dirs *dd) {
        int ret = 0;

        for (unsigned i = 0; i < 256; i++) {
                char dir[16];
                int k;

                if (!dd->xx[i])
                        continue;
                dd->xx[i] = false;
                snprintf(dir, sizeof dir, "packs/%02x", i);
                k = fsync_dir_at(cairn_repo_fd(r), dir);
                if (k < 0 && k != -ENOENT && ret >= 0)
                        ret = log_error_errno(k, "Cannot sync %s/%s: %m", cairn_repo_path(r), dir);
        }
        return ret;
}

/* Step (c): packs without a used blob.  Rows first, in one transaction;
 * files after it commits, so no committed row ever names a missing file. */
static int delete_unused_packs(struct cairn_repo *r, struct packs *ps, const struct plan *pl,
                               struct cairn_prune_stats *st) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct dirty_dirs dd = { { false } };
        size_t n = 0;
        int k;

        for (size_t i = 0; i < ps->n; i++)
                n += ps->p[i].action == PACK_DELETE;
        if (n == 0)
                return 0;

        k = cairn_index_txn_begin(cairn_repo_index(r), true, &t);
        for (size_t i = 0; k >= 0 && i < ps->n; i++) {
                if (ps->p[i].action != PACK_DELETE)
                        continue;
                k = drop_rows_of(t, pl, ps->p[i].id);
                if (k >= 0)
                        k = cairn_index_del(t, CAIRN_TABLE_PACKS, ps->p[i].id);
        }
        if (k >= 0) {
                cairn_fault_point("prune.before-delete-commit");
                k = cairn_index_txn_commit(TAKE_PTR(t));
        }
        if (k < 0)
                return log_error_errno(k, "Cannot remove unused packs from the index of %s: %m", cairn_repo_path(r));
        cairn_fault_point("prune.before-delete-packs");

        for (size_t i = 0; i < ps->n; i++) {
                if (ps->p[i].action != PACK_DELETE)
                        continue;
                k = unlink_pack(r, ps->p[i].id, &dd);
                if (k < 0)
                        return k;
                cairn_fault_point("prune.mid-delete-packs");
                st->packs_deleted++;
                st->bytes_freed += ps->p[i].size;
        }
        return sync_dirs(r, &dd);
}

/* --- repack ------------------------------------------------------------- */

struct repack {
        struct cairn_repo *r;
        const struct plan *plan;
        struct cairn_prune_stats *st;
        struct cairn_pack_writer *w;    /* NULL when no new pack is open */
        struct pack_info **batch;       /* old packs whose blobs are in w */
        size_t n_batch;
        uint8_t *stored, *raw;          /* read and verify buffers */
        size_t stored_size, raw_size;
};

static int grow(uint8_t **buf, size_t *size, size_t want) {
        if (want <= *size)
                return 0;
        uint8_t *p = realloc(*buf, want);
        if (!p)
                return -ENOMEM;
        *buf = p;
        *size = want;
        return 0;
}

static int open_pack(struct cairn_repo *r, const uint8_t id[CAIRN_ID_SIZE], int *ret_fd) {
        char path[100];
        int fd;

        cairn_pack_path(id, path, sizeof path);
        fd = openat(cairn_repo_fd(r), path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open pack %s/%s: %m", cairn_repo_path(r), path);
        *ret_fd = fd;
        return 0;
}

/* The stored bytes of @row, as they are in its pack; with @verify also
 * decoded, so that a damaged blob is never copied into a new pack. */
static int read_stored(struct repack *rp, int fd, const struct row *row, bool verify) {
        const struct cairn_codec *codec = cairn_repo_codec(rp->r);
        char hex[HEX_ID_SIZE], blob[HEX_ID_SIZE];
        ssize_t got;
        int k;

        hex_encode(row->loc.pack, CAIRN_ID_SIZE, hex);
        if (row->loc.raw_len > CAIRN_BLOB_MAX || row->loc.stored_len < cairn_codec_bound(codec, 0) ||
            row->loc.stored_len > cairn_codec_bound(codec, row->loc.raw_len))
                return log_error_errno(-EBADMSG, "Pack %s: blob %s has an impossible size in the index", hex,
                                       hex_encode(row->id, CAIRN_ID_SIZE, blob));
        k = grow(&rp->stored, &rp->stored_size, row->loc.stored_len);
        if (k < 0)
                return k;
        got = pread_full(fd, rp->stored, row->loc.stored_len, (off_t) row->loc.offset);
        if (got < 0)
                return log_error_errno((int) got, "Cannot read pack %s: %m", hex);
        if ((size_t) got != row->loc.stored_len)
                return log_error_errno(-EBADMSG, "Pack %s is truncated: blob %s at offset %" PRIu64 " is cut short",
                                       hex, hex_encode(row->id, CAIRN_ID_SIZE, blob), row->loc.offset);
        if (!verify)
                return 0;
        k = grow(&rp->raw, &rp->raw_size, row->loc.raw_len ? row->loc.raw_len : 1);
        if (k < 0)
                return k;
        k = cairn_codec_decode(codec, row->id, rp->stored, row->loc.stored_len, rp->raw, row->loc.raw_len);
        if (k == -EBADMSG)
                return log_error_errno(k, "Pack %s: blob %s at offset %" PRIu64 " is damaged", hex,
                                       hex_encode(row->id, CAIRN_ID_SIZE, blob), row->loc.offset);
        return k;
}

/* Publish the open new pack, then in one transaction move the rows of
 * its blobs to it and drop the old packs' rows; then delete the old files. */
static int repack_commit(struct repack *rp) {
        _cleanup_free_ struct cairn_pack_entry *entries = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct cairn_pack_writer *w = TAKE_PTR(rp->w);
        struct dirty_dirs dd = { { false } };
        uint8_t pack_id[CAIRN_ID_SIZE];
        char path[100];
        struct stat st;
        size_t n;
        int k;

        if (!w)
                return 0;
        k = cairn_pack_writer_finish(w, pack_id, &entries, &n);
        cairn_pack_writer_free(w);
        if (k < 0)
                return log_error_errno(k, "Cannot publish a repacked pack in %s/packs: %m", cairn_repo_path(rp->r));
        cairn_pack_path(pack_id, path, sizeof path);
        if (fstatat(cairn_repo_fd(rp->r), path, &st, 0) < 0)
                return log_error_errno(-errno, "Cannot stat new pack %s/%s: %m", cairn_repo_path(rp->r), path);
        cairn_fault_point("prune.mid-repack");

        /* Should this fail, the new pack is a file no row names, which a
         * later prune deletes once past grace. */
        k = cairn_index_txn_begin(cairn_repo_index(rp->r), true, &t);
        for (size_t i = 0; k >= 0 && i < rp->n_batch; i++) {
                k = drop_rows_of(t, rp->plan, rp->batch[i]->id);
                if (k >= 0)
                        k = cairn_index_del(t, CAIRN_TABLE_PACKS, rp->batch[i]->id);
        }
        for (size_t i = 0; k >= 0 && i < n; i++) {
                struct cairn_chunk_loc loc = {
                        .offset = entries[i].offset,
                        .stored_len = entries[i].stored_len,
                        .raw_len = entries[i].raw_len,
                        .type = entries[i].type,
                };
                memcpy(loc.pack, pack_id, CAIRN_ID_SIZE);
                k = cairn_index_chunk_put(t, entries[i].id, &loc);
        }
        if (k >= 0)
                k = cairn_index_pack_put(t, pack_id, (uint64_t) st.st_size, (uint32_t) n);
        if (k >= 0)
                k = cairn_index_txn_commit(TAKE_PTR(t));
        if (k < 0)
                return log_error_errno(k, "Cannot record repacked pack %s in the index: %m", path);
        log_debug("Repacked %zu pack(s) into %s (%zu blobs)", rp->n_batch, path, n);
        cairn_fault_point("prune.after-repack-commit");

        /* Committed: a reader that still looks at an old location finds
         * the file gone and looks again in a fresh transaction (prune.h). */
        for (size_t i = 0; i < rp->n_batch; i++) {
                struct pack_info *pi = rp->batch[i];

                if (memcmp(pi->id, pack_id, CAIRN_ID_SIZE) == 0)
                        continue;       /* the very same bytes again: the file stays */
                k = unlink_pack(rp->r, pi->id, &dd);
                if (k < 0)
                        return k;
                cairn_fault_point("prune.mid-repack-delete");
                rp->st->packs_repacked++;
                rp->st->bytes_freed += pi->size;
        }
        rp->st->bytes_freed -= MIN(rp->st->bytes_freed, (uint64_t) st.st_size);
        rp->n_batch = 0;
        return sync_dirs(rp->r, &dd);
}

/* Copy the used blobs of one old pack, rows[0..n), into the open new pack.
 * A damaged or unreadable old pack is reported and left as it is. */
static int repack_one(struct repack *rp, struct pack_info *pi, const struct row *rows, size_t n) {
        _cleanup_close_ int fd = -1;
        char hex[HEX_ID_SIZE];
        int k;

        k = open_pack(rp->r, pi->id, &fd);
        if (k == -ENOENT || k == -EACCES || k == -EIO)
                goto leave_alone;
        if (k < 0)
                return k;
        /* Verify every blob before copying any: a pack is moved whole or
         * not at all, so no blob is in two packs afterwards. */
        for (size_t i = 0; i < n; i++) {
                k = read_stored(rp, fd, &rows[i], true);
                if (k == -EBADMSG || k == -EIO)
                        goto leave_alone;
                if (k < 0)
                        return k;
        }

        if (rp->w && rp->n_batch > 0 && cairn_pack_writer_size(rp->w) + pi->used_stored > CAIRN_PACK_TARGET_SIZE) {
                k = repack_commit(rp);
                if (k < 0)
                        return k;
        }
        if (!rp->w) {
                k = cairn_pack_writer_new(cairn_repo_fd(rp->r), cairn_repo_codec(rp->r), &rp->w);
                if (k < 0)
                        return log_error_errno(k, "Cannot start a pack in %s/packs: %m", cairn_repo_path(rp->r));
        }
        for (size_t i = 0; i < n; i++) {
                k = read_stored(rp, fd, &rows[i], false);
                if (k >= 0)
                        k = cairn_pack_writer_add(rp->w, rows[i].loc.type, rows[i].id, rp->stored,
                                                  rows[i].loc.stored_len, rows[i].loc.raw_len);
                if (k < 0)
                        return log_error_errno(k, "Cannot copy blobs of pack %s: %m",
                                               hex_encode(pi->id, CAIRN_ID_SIZE, hex));
                rp->st->bytes_repacked += rows[i].loc.stored_len;
        }
        rp->batch[rp->n_batch++] = pi;
        cairn_fault_point("prune.repack-copied");
        return 0;

leave_alone:
        log_error("Pack %s is left as it is: it cannot be read back intact (run `cairn check`)",
                  hex_encode(pi->id, CAIRN_ID_SIZE, hex));
        pi->action = PACK_KEEP;
        return 0;
}

static int repack_packs(struct cairn_repo *r, struct packs *ps, struct plan *pl, struct cairn_prune_stats *st) {
        struct repack rp = { .r = r, .plan = pl, .st = st };
        size_t n_repack = 0, i = 0;
        int k = 0;

        for (size_t j = 0; j < ps->n; j++)
                n_repack += ps->p[j].action == PACK_REPACK;
        if (n_repack == 0)
                return 0;
        rp.batch = calloc(n_repack, sizeof *rp.batch);
        if (!rp.batch)
                return -ENOMEM;

        qsort(pl->move, pl->n_move, sizeof *pl->move, cmp_row_location);
        for (size_t j = 0; k >= 0 && j < ps->n; j++) {
                struct pack_info *pi = &ps->p[j];
                size_t first;

                if (pi->action != PACK_REPACK)
                        continue;
                /* Both lists are in pack id order: skip to this pack's rows. */
                while (i < pl->n_move && memcmp(pl->move[i].loc.pack, pi->id, CAIRN_ID_SIZE) < 0)
                        i++;
                first = i;
                while (i < pl->n_move && memcmp(pl->move[i].loc.pack, pi->id, CAIRN_ID_SIZE) == 0)
                        i++;
                k = repack_one(&rp, pi, pl->move + first, i - first);
        }
        if (k >= 0)
                k = repack_commit(&rp);
        /* An unfinished new pack is removed with its writer; the old packs
         * and their rows are untouched. */
        cairn_pack_writer_free(rp.w);
        free(rp.batch);
        free(rp.stored);
        free(rp.raw);
        return k;
}

/* --- tidy --------------------------------------------------------------- */

struct tidy {
        struct cairn_repo *r;
        struct cairn_txn *t;            /* to tell indexed packs from others */
        const struct cairn_idset *orphan_packs;
        bool dry_run;
        int64_t cutoff_ns;              /* files last changed before this go */
        struct cairn_prune_stats *st;
        struct dirty_dirs dd;
};

static bool older_than_cutoff(const struct stat *sb, int64_t cutoff_ns) {
        int64_t mtime = (int64_t) sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec;
        return mtime < cutoff_ns;
}

/* Delete @name below @dirfd (called @shown) when it is a regular file older
 * than the cutoff.  1 when deleted (or would be, in a dry run). */
static int tidy_file(struct tidy *td, int dirfd, const char *name, const char *shown) {
        struct stat sb;

        if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(-errno, "Cannot stat %s/%s: %m", cairn_repo_path(td->r), shown);
        }
        if (!S_ISREG(sb.st_mode) || !older_than_cutoff(&sb, td->cutoff_ns))
                return 0;
        if (!td->dry_run && unlinkat(dirfd, name, 0) < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(-errno, "Cannot delete %s/%s: %m", cairn_repo_path(td->r), shown);
        }
        if (!td->dry_run)
                cairn_fault_point("prune.mid-tidy");
        log_debug("Deleted leftover %s", shown);
        td->st->bytes_freed += (uint64_t) sb.st_size;
        return 1;
}

static int tidy_temp_files(struct tidy *td, const char *dir) {
        _cleanup_close_ int fd = -1;
        struct dirent *de;
        DIR *d;
        int k = 0, ret = 0;

        fd = openat(cairn_repo_fd(td->r), dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Cannot open %s/%s: %m", cairn_repo_path(td->r), dir);
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -1;
        while ((de = readdir(d))) {
                char shown[300];

                if (strncmp(de->d_name, ".tmp-", 5) != 0)
                        continue;
                snprintf(shown, sizeof shown, "%s/%s", dir, de->d_name);
                k = tidy_file(td, dirfd(d), de->d_name, shown);
                if (k < 0)
                        break;
                ret += k > 0;
        }
        if (k >= 0 && ret > 0 && !td->dry_run && fsync(dirfd(d)) < 0)
                k = log_error_errno(-errno, "Cannot sync %s/%s: %m", cairn_repo_path(td->r), dir);
        closedir(d);
        return k < 0 ? k : 0;
}

static int tidy_packs_in(struct tidy *td, int parent_fd, const char *xx) {
        uint8_t byte;
        struct dirent *de;
        DIR *d;
        int fd, k = 0;

        if (hex_decode(xx, &byte, 1) < 0 || xx[2] != 0)
                return 0;
        fd = openat(parent_fd, xx, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT || errno == ENOTDIR ? 0 :
                        log_error_errno(-errno, "Cannot open %s/packs/%s: %m", cairn_repo_path(td->r), xx);
        d = fdopendir(fd);
        if (!d) {
                k = -errno;
                close(fd);
                return k;
        }
        while ((de = readdir(d))) {
                uint8_t id[CAIRN_ID_SIZE];
                char shown[300];

                /* Only names a pack could have: anything else is not ours. */
                if (strlen(de->d_name) != 2 * CAIRN_ID_SIZE || hex_decode(de->d_name, id, CAIRN_ID_SIZE) < 0 ||
                    id[0] != byte)
                        continue;
                k = cairn_index_pack_get(td->t, id, NULL, NULL);
                if (k != -ENOENT) {
                        if (k < 0)
                                break;
                        continue;
                }
                k = 0;
                if (cairn_idset_has(td->orphan_packs, id))
                        continue;
                snprintf(shown, sizeof shown, "packs/%s/%s", xx, de->d_name);
                k = tidy_file(td, dirfd(d), de->d_name, shown);
                if (k < 0)
                        break;
                if (k > 0) {
                        td->st->packs_deleted++;
                        td->dd.xx[byte] = !td->dry_run;
                }
                k = 0;
        }
        closedir(d);
        return k;
}

/* Step (e): what crashed writers left behind. */
static int tidy_leftovers(struct cairn_repo *r, bool dry_run, int64_t grace_ns, const struct cairn_idset *orphan_packs,
                          struct cairn_prune_stats *st) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct tidy td = { .r = r, .dry_run = dry_run, .orphan_packs = orphan_packs, .st = st };
        _cleanup_close_ int fd = -1;
        struct dirent *de;
        DIR *d;
        int k;

        td.cutoff_ns = now_ns() - MAX(grace_ns, (int64_t) 0);
        k = tidy_temp_files(&td, "packs");
        if (k >= 0)
                k = tidy_temp_files(&td, "snapshots");
        if (k < 0)
                return k;

        k = cairn_index_txn_begin(cairn_repo_index(r), false, &t);
        if (k < 0)
                return k;
        td.t = t;
        fd = openat(cairn_repo_fd(r), "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Cannot open %s/packs: %m", cairn_repo_path(r));
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -1;
        while ((de = readdir(d))) {
                k = tidy_packs_in(&td, dirfd(d), de->d_name);
                if (k < 0)
                        break;
        }
        closedir(d);
        if (k < 0)
                return k;
        return sync_dirs(r, &td.dd);
}

/* --- the whole ---------------------------------------------------------- */

void cairn_prune_options_default(struct cairn_prune_options *o) {
        *o = (struct cairn_prune_options) {
                .repack_threshold_pct = CAIRN_PRUNE_REPACK_THRESHOLD_PCT,
                .grace_ns = CAIRN_PRUNE_GRACE_NS,
        };
}

static void decide(struct packs *ps, unsigned threshold_pct) {
        for (size_t i = 0; i < ps->n; i++) {
                struct pack_info *pi = &ps->p[i];

                if (pi->used_n == 0)
                        pi->action = PACK_DELETE;
                /* Only a pack that has something to drop is rewritten, so a
                 * second prune finds nothing to do. */
                else if (pi->unused_n > 0 && pi->used_stored * 100 < (uint64_t) threshold_pct * pi->size)
                        pi->action = PACK_REPACK;
                else
                        pi->action = PACK_KEEP;
        }
}

/* The index part: mark, sweep, plan; with !dry_run also delete and repack. */
static int prune_index(struct cairn_repo *r, const struct cairn_prune_options *o, struct cairn_idset *orphan_packs,
                       struct cairn_prune_stats *st) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct mark m = { 0 };
        struct packs ps = { 0 };
        struct plan pl = { 0 };
        struct sweep sw = { 0 };
        int k;

        /* A dry run plans with the orphan snapshot files adopted, as a prune
         * would (cairn_prune), in a write transaction that is aborted. */
        k = cairn_index_txn_begin(cairn_repo_index(r), o->dry_run, &t);
        if (k < 0)
                return k;
        if (o->dry_run) {
                k = cairn_snapshot_adopt_orphans_txn(r, t, true, NULL);
                if (k < 0)
                        return k;
        }
        m.t = t;
        k = mark_all(&m);
        if (k >= 0 && !o->dry_run)
                cairn_fault_point("prune.after-mark");
        idvec_release(&m.roots);
        idvec_release(&m.todo);
        if (k >= 0)
                k = cairn_index_foreach_raw(t, CAIRN_TABLE_PACKS, collect_pack, &ps);
        if (k >= 0) {
                sw = (struct sweep) { .used = &m.used, .packs = &ps, .orphan_packs = orphan_packs };
                k = cairn_index_foreach_raw(t, CAIRN_TABLE_CHUNKS, sweep_row, &sw);
        }
        if (k >= 0 && cairn_idset_count(orphan_packs) > 0)
                log_warning("%zu pack(s) named in the index of %s have no row of their own; they are left alone "
                            "(run `cairn check`)", cairn_idset_count(orphan_packs), cairn_repo_path(r));
        if (k >= 0 && sw.used_found != cairn_idset_count(&m.used))
                k = log_error_errno(-EBADMSG, "%" PRIu64 " blob(s) that snapshots need are not in the index of %s; "
                                    "nothing was pruned (run `cairn check`, or `cairn index rebuild`)",
                                    (uint64_t) cairn_idset_count(&m.used) - sw.used_found, cairn_repo_path(r));
        if (k >= 0) {
                st->packs_total = ps.n;
                st->blobs_used = sw.blobs_used;
                st->blobs_unused = sw.blobs_unused;
                decide(&ps, o->repack_threshold_pct);
                pl = (struct plan) { .used = &m.used, .packs = &ps };
                k = cairn_index_foreach_raw(t, CAIRN_TABLE_CHUNKS, plan_row, &pl);
        }
        /* Everything needed from the read transaction is copied out. */
        cairn_index_txn_abort(TAKE_PTR(t));
        cairn_idset_release(&m.used);

        if (k >= 0 && o->dry_run) {
                for (size_t i = 0; i < ps.n; i++) {
                        if (ps.p[i].action == PACK_DELETE) {
                                st->packs_deleted++;
                                st->bytes_freed += ps.p[i].size;
                        } else if (ps.p[i].action == PACK_REPACK) {
                                st->packs_repacked++;
                                st->bytes_repacked += ps.p[i].used_stored;
                                st->bytes_freed += ps.p[i].size - MIN(ps.p[i].size, ps.p[i].used_stored);
                        }
                }
        } else if (k >= 0) {
                k = delete_unused_packs(r, &ps, &pl, st);
                if (k >= 0)
                        k = repack_packs(r, &ps, &pl, st);
        }
        plan_release(&pl);
        free(ps.p);
        return k;
}

int cairn_prune(struct cairn_repo *r, const struct cairn_prune_options *o, struct cairn_prune_stats *ret) {
        struct cairn_prune_options defaults;
        struct cairn_prune_stats st = { 0 };
        struct cairn_idset orphan_packs = { 0 };
        int k;

        if (!o) {
                cairn_prune_options_default(&defaults);
                o = &defaults;
        }
        /* A snapshot file without a row names data too (prune.h); a dry
         * run adopts them in its own transaction (prune_index). */
        k = o->dry_run ? 0 : cairn_snapshot_adopt_orphans(r, NULL);
        if (k >= 0)
                k = prune_index(r, o, &orphan_packs, &st);
        if (k >= 0)
                k = tidy_leftovers(r, o->dry_run, o->grace_ns, &orphan_packs, &st);
        cairn_idset_release(&orphan_packs);
        if (ret)
                *ret = st;
        return k;
}
