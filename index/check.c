/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "idset.h"
#include "log.h"
#include "pack.h"
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

/* Deeper than any path a filesystem can hold (PATH_MAX / 2): only a cycle
 * in a damaged index gets there. */
#define CHECK_DEPTH_MAX 4096

#define IO_CHUNK (1u << 20)

static const uint8_t zero_id[CAIRN_ID_SIZE];

static bool id_is_zero(const uint8_t id[CAIRN_ID_SIZE]) {
        return memcmp(id, zero_id, CAIRN_ID_SIZE) == 0;
}

static int cmp_id(const void *a, const void *b) {
        return memcmp(a, b, CAIRN_ID_SIZE);
}

/* --- the state of one check ---------------------------------------------- */

struct snap {
        char *job;
        int64_t start_ns;
        uint8_t id[CAIRN_ID_SIZE];
        uint8_t root[CAIRN_ID_SIZE];
        bool walk;                      /* root is known: walk the tree */
        bool damaged;                   /* counted in damaged_snapshots */
        char label[128];                /* "job/2026-11-21T01:00:00Z (3fa4b2c1)" */
};

struct pack_info {
        uint8_t id[CAIRN_ID_SIZE];
        uint64_t size;                  /* from the packs row */
        uint32_t count;                 /* from the packs row */
        bool has_row;                   /* in the packs table (else only named by chunks rows) */
        bool read;                      /* chosen to be read in full */
        size_t first_row, n_rows;       /* its chunks rows, after sorting */
};

/* A chunks row, compact: the pack is an index into check.packs. */
struct row {
        uint8_t id[CAIRN_ID_SIZE];
        uint64_t offset;
        uint32_t pack;
        uint32_t stored_len, raw_len;
        uint8_t type;
};

struct check {
        struct cairn_repo *r;
        const struct cairn_check_options *o;
        struct cairn_check_stats st;
        struct cairn_txn *t;

        struct snap *snaps;
        size_t n_snaps, cap_snaps;

        struct pack_info *packs;
        size_t n_packs, cap_packs, n_sorted_packs;   /* [0, n_sorted_packs) sorted: the packs table */
        struct row *rows;
        size_t n_rows, cap_rows;

        struct cairn_idset bad;               /* blobs whose indexed location cannot be read intact */
        struct cairn_idset reported;          /* blobs a problem was already reported for */
        struct cairn_idset clean_trees, clean_contents;

        char *path;                     /* the path being walked, "/" based */
        size_t path_len, path_cap;
        uint8_t *io;                    /* IO_CHUNK bytes for hashing */
};

static void check_release(struct check *c) {
        cairn_index_txn_abort(c->t);
        for (size_t i = 0; i < c->n_snaps; i++)
                free(c->snaps[i].job);
        free(c->snaps);
        free(c->packs);
        free(c->rows);
        cairn_idset_release(&c->bad);
        cairn_idset_release(&c->reported);
        cairn_idset_release(&c->clean_trees);
        cairn_idset_release(&c->clean_contents);
        free(c->path);
        free(c->io);
}

static const char *blob_type_name(uint8_t type) {
        switch (type) {
        case CAIRN_BLOB_DATA: return "data blob";
        case CAIRN_BLOB_TREE: return "tree";
        case CAIRN_BLOB_CONTENT: return "content";
        default: return "blob of unknown type";
        }
}

/* Log a problem, pass it to on_problem, count it.  "%m" prints strerror(-@error). */
static void problem(struct check *c, int error, const uint8_t *pack, const uint8_t *blob, const uint8_t *snapshot,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void problem(struct check *c, int error, const uint8_t *pack, const uint8_t *blob, const uint8_t *snapshot,
                    const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        errno = error < 0 ? -error : 0;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        log_error("%s", msg ? msg : fmt);
        c->st.errors++;
        if (c->o->on_problem) {
                struct cairn_check_problem p = {
                        .error = error, .message = msg ? msg : fmt, .pack = pack, .blob = blob, .snapshot = snapshot,
                };
                c->o->on_problem(&p, c->o->userdata);
        }
}

/* The current path (NULL: the snapshot record) of @s is damaged. */
static void damage(struct check *c, struct snap *s, bool record) {
        if (!s->damaged) {
                s->damaged = true;
                c->st.damaged_snapshots++;
        }
        c->st.damaged_paths++;
        if (c->o->on_damage) {
                struct cairn_check_damage d = {
                        .job = s->job, .start_ns = s->start_ns, .snapshot = s->id, .path = record ? NULL : c->path,
                };
                c->o->on_damage(&d, c->o->userdata);
        }
}

/* --- snapshots ------------------------------------------------------------- */

static void snap_label(struct snap *s) {
        char when[32], hex[HEX_ID_SIZE];
        snprintf(s->label, sizeof s->label, "%s/%s (%.8s)", s->job, cairn_time_format(s->start_ns, when, sizeof when),
                 hex_encode(s->id, CAIRN_ID_SIZE, hex));
}

static struct snap *snap_push(struct check *c, const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE]) {
        struct snap *s;

        if (c->n_snaps == c->cap_snaps) {
                size_t cap = c->cap_snaps ? c->cap_snaps * 2 : 64;
                s = reallocarray(c->snaps, cap, sizeof *s);
                if (!s)
                        return NULL;
                c->snaps = s;
                c->cap_snaps = cap;
        }
        s = &c->snaps[c->n_snaps];
        *s = (struct snap) { .start_ns = start_ns, .job = strdup(job) };
        if (!s->job)
                return NULL;
        memcpy(s->id, id, CAIRN_ID_SIZE);
        snap_label(s);
        c->n_snaps++;
        return s;
}

struct snap_rows {
        struct check *c;
        uint8_t (*files)[CAIRN_ID_SIZE];        /* sorted */
        bool *file_seen;
        size_t n_files;
};

/* One row of the snapshots table against its record and its file. */
static int check_snapshot_row(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                              size_t json_len, void *userdata) {
        struct snap_rows *sr = userdata;
        struct check *c = sr->c;
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *rec = NULL, *frec = NULL;
        _cleanup_free_ char *fjson = NULL;
        uint8_t (*file)[CAIRN_ID_SIZE];
        uint8_t json_id[CAIRN_ID_SIZE];
        char hex[HEX_ID_SIZE];
        struct snap *s;
        size_t flen;
        int k;

        s = snap_push(c, job, start_ns, id);
        if (!s)
                return -ENOMEM;
        c->st.snapshots++;
        hex_encode(id, CAIRN_ID_SIZE, hex);

        cairn_codec_id(cairn_repo_codec(c->r), json, json_len, json_id);
        k = cairn_snapshot_from_json(json, json_len, &rec);
        if (k == -ENOMEM)
                return k;
        if (memcmp(json_id, id, CAIRN_ID_SIZE) != 0) {
                problem(c, -EBADMSG, NULL, NULL, id, "snapshot %s: the record in its index row is not the one its id "
                        "names (run `cairn index rebuild`)", s->label);
                damage(c, s, true);
        } else if (k < 0) {
                problem(c, -EBADMSG, NULL, NULL, id, "snapshot %s: the record in its index row does not parse "
                        "(run `cairn index rebuild`)", s->label);
                damage(c, s, true);
        } else if (!streq(rec->job, job) || rec->start_ns != start_ns) {
                problem(c, -EBADMSG, NULL, NULL, id, "snapshot %s: its index row is keyed by another job or time "
                        "than its record says (run `cairn index rebuild`)", s->label);
                damage(c, s, true);
        }
        if (k >= 0) {
                memcpy(s->root, rec->root, CAIRN_ID_SIZE);
                s->walk = true;
        }

        file = sr->n_files ? bsearch(id, sr->files, sr->n_files, CAIRN_ID_SIZE, cmp_id) : NULL;
        if (!file) {
                problem(c, -ENOENT, NULL, NULL, id, "snapshot %s: its file snapshots/%s is missing", s->label, hex);
                damage(c, s, true);
                return 0;
        }
        sr->file_seen[file - sr->files] = true;
        k = cairn_snapshot_read_json(c->r, id, &fjson, &flen);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                problem(c, k == -ENOENT ? k : -EBADMSG, NULL, NULL, id, "snapshot %s: its file snapshots/%s %s",
                        s->label, hex, k == -ENOENT ? "is missing" : "is damaged");
                damage(c, s, true);
                return 0;
        }
        if (flen != json_len || memcmp(fjson, json, flen) != 0) {
                problem(c, -EBADMSG, NULL, NULL, id, "snapshot %s: its index row and its file snapshots/%s hold "
                        "different records (run `cairn index rebuild`)", s->label, hex);
                damage(c, s, true);
        }
        if (!s->walk && cairn_snapshot_from_json(fjson, flen, &frec) >= 0) {
                /* The row is broken, the file is not: walk what the file names. */
                memcpy(s->root, frec->root, CAIRN_ID_SIZE);
                s->walk = true;
        }
        return 0;
}

struct find_row {
        const uint8_t *id;
        bool found;
};

static int find_row_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                       size_t json_len, void *userdata) {
        struct find_row *f = userdata;
        if (memcmp(id, f->id, CAIRN_ID_SIZE) != 0)
                return 0;
        f->found = true;
        return 1;
}

/* Has a backup committed the row of this snapshot since the check began? */
static bool row_committed_since(struct check *c, const char *job, const uint8_t id[CAIRN_ID_SIZE]) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct find_row f = { .id = id };

        if (cairn_index_txn_begin(cairn_repo_index(c->r), false, &t) < 0)
                return false;
        if (cairn_index_snapshot_foreach(t, job, find_row_cb, &f) < 0)
                return false;
        return f.found;
}

/* A snapshot file that has no row in the index. */
static int check_snapshot_file(struct check *c, const uint8_t id[CAIRN_ID_SIZE]) {
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *rec = NULL;
        _cleanup_free_ char *json = NULL;
        char hex[HEX_ID_SIZE], when[32];
        size_t len;
        int k;

        c->st.snapshots++;
        hex_encode(id, CAIRN_ID_SIZE, hex);
        k = cairn_snapshot_read_json(c->r, id, &json, &len);
        if (k == -ENOMEM)
                return k;
        if (k == -ENOENT) {
                c->st.snapshots--;      /* forgotten since it was listed */
                return 0;
        }
        if (k < 0) {
                problem(c, -EBADMSG, NULL, NULL, id, "snapshot file snapshots/%s (not in the index) is damaged", hex);
                return 0;
        }
        k = cairn_snapshot_from_json(json, len, &rec);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                problem(c, -EBADMSG, NULL, NULL, id, "snapshot file snapshots/%s (not in the index) holds a record "
                        "that does not parse", hex);
                return 0;
        }
        if (row_committed_since(c, rec->job, id))
                return 0;
        log_warning("Snapshot %s/%s (%.8s) has a file but no row in the index: a backup is committing it right now, "
                    "or the index is out of date (`cairn index rebuild`); its tree was not checked",
                    rec->job, cairn_time_format(rec->start_ns, when, sizeof when), hex);
        return 0;
}

static int check_snapshots(struct check *c) {
        _cleanup_free_ uint8_t (*files)[CAIRN_ID_SIZE] = NULL;
        _cleanup_free_ bool *seen = NULL;
        struct snap_rows sr = { .c = c };
        size_t n;
        int k;

        /* Listed before the index is read (the caller began the
         * transaction after this): a file of a backup committing now then
         * usually has its row in the transaction too. */
        k = cairn_snapshot_list_files(c->r, &files, &n);
        if (k < 0)
                return k;
        if (n > 0)
                qsort(files, n, CAIRN_ID_SIZE, cmp_id);
        seen = calloc(MAX(n, (size_t) 1), sizeof *seen);
        if (!seen)
                return -ENOMEM;
        sr.files = files;
        sr.file_seen = seen;
        sr.n_files = n;

        k = cairn_index_txn_begin(cairn_repo_index(c->r), false, &c->t);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(c->r));
        k = cairn_index_snapshot_foreach(c->t, NULL, check_snapshot_row, &sr);
        if (k < 0)
                return log_error_errno(k, "Cannot walk the snapshots table: %m");
        for (size_t i = 0; i < n; i++) {
                if (seen[i])
                        continue;
                k = check_snapshot_file(c, files[i]);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* --- packs ----------------------------------------------------------------- */

static struct pack_info *pack_push(struct check *c, const uint8_t id[CAIRN_ID_SIZE]) {
        struct pack_info *p;

        if (c->n_packs == c->cap_packs) {
                size_t cap = c->cap_packs ? c->cap_packs * 2 : 64;
                p = reallocarray(c->packs, cap, sizeof *p);
                if (!p)
                        return NULL;
                c->packs = p;
                c->cap_packs = cap;
        }
        p = &c->packs[c->n_packs++];
        *p = (struct pack_info) { 0 };
        memcpy(p->id, id, CAIRN_ID_SIZE);
        return p;
}

static int collect_pack(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        struct check *c = userdata;
        struct pack_info *p;

        if (klen != CAIRN_ID_SIZE || vlen != PACK_VAL_SIZE) {
                problem(c, -EBADMSG, NULL, NULL, NULL, "the index has a malformed row in table packs "
                        "(run `cairn index rebuild`)");
                return 0;
        }
        p = pack_push(c, key);
        if (!p)
                return -ENOMEM;
        p->size = get_le64(val);
        p->count = get_le32((const uint8_t *) val + 8);
        p->has_row = true;
        return 0;
}

/* Index of the pack @id in c->packs, appending it (as one without a packs
 * row) when it is not there.  -ENOMEM, -EFBIG. */
static int pack_index(struct check *c, const uint8_t id[CAIRN_ID_SIZE], uint32_t *ret) {
        size_t lo = 0, hi = c->n_sorted_packs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int d = memcmp(c->packs[mid].id, id, CAIRN_ID_SIZE);
                if (d == 0) {
                        *ret = (uint32_t) mid;
                        return 0;
                }
                if (d < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        /* Packs without a packs row: only a damaged index has any. */
        for (size_t i = c->n_sorted_packs; i < c->n_packs; i++)
                if (memcmp(c->packs[i].id, id, CAIRN_ID_SIZE) == 0) {
                        *ret = (uint32_t) i;
                        return 0;
                }
        if (c->n_packs >= UINT32_MAX)
                return -EFBIG;
        if (!pack_push(c, id))
                return -ENOMEM;
        *ret = (uint32_t) (c->n_packs - 1);
        return 0;
}

static int collect_row(const void *key, size_t klen, const void *val, size_t vlen, void *userdata) {
        struct check *c = userdata;
        const uint8_t *p = val;
        struct row *row;
        uint32_t pack;
        int k;

        if (klen != CAIRN_ID_SIZE || vlen != CHUNK_VAL_SIZE) {
                problem(c, -EBADMSG, NULL, NULL, NULL, "the index has a malformed row in table chunks "
                        "(run `cairn index rebuild`)");
                return 0;
        }
        k = pack_index(c, p, &pack);
        if (k < 0)
                return k;
        if (c->n_rows == c->cap_rows) {
                size_t cap = c->cap_rows ? c->cap_rows * 2 : 1024;
                row = reallocarray(c->rows, cap, sizeof *row);
                if (!row)
                        return -ENOMEM;
                c->rows = row;
                c->cap_rows = cap;
        }
        row = &c->rows[c->n_rows++];
        memcpy(row->id, key, CAIRN_ID_SIZE);
        row->pack = pack;
        p += CAIRN_ID_SIZE;
        row->offset = get_le64(p), p += 8;
        row->stored_len = get_le32(p), p += 4;
        row->raw_len = get_le32(p), p += 4;
        row->type = *p;
        c->st.blobs++;
        return 0;
}

static int cmp_row(const void *a, const void *b) {
        const struct row *x = a, *y = b;
        if (x->pack != y->pack)
                return x->pack < y->pack ? -1 : 1;
        if (x->offset != y->offset)
                return x->offset < y->offset ? -1 : 1;
        return memcmp(x->id, y->id, CAIRN_ID_SIZE);
}

static int cmp_entry_id(const void *a, const void *b) {
        const struct cairn_pack_entry *x = a, *y = b;
        return memcmp(x->id, y->id, CAIRN_ID_SIZE);
}

/* bsearch: @key is a bare id, @elem an entry. */
static int cmp_id_entry(const void *key, const void *elem) {
        const struct cairn_pack_entry *e = elem;
        return memcmp(key, e->id, CAIRN_ID_SIZE);
}

/* Pick the packs to read: all, or read_data_pct of them (rounded up) at random. */
static int choose_packs(struct check *c) {
        unsigned pct = c->o->read_data_pct;
        _cleanup_free_ size_t *order = NULL;
        size_t want;

        if (pct == 0 || c->n_packs == 0)
                return 0;
        if (pct >= 100) {
                for (size_t i = 0; i < c->n_packs; i++)
                        c->packs[i].read = true;
                return 0;
        }
        want = (size_t) (((uint64_t) c->n_packs * pct + 99) / 100);
        order = calloc(c->n_packs, sizeof *order);
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_packs; i++)
                order[i] = i;
        /* The first @want places of a Fisher-Yates shuffle. */
        for (size_t i = 0; i < want; i++) {
                uint64_t rnd;
                size_t j, tmp;
                int k = cairn_random_bytes(&rnd, sizeof rnd);
                if (k < 0)
                        return k;
                j = i + (size_t) (rnd % (c->n_packs - i));
                tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
                c->packs[order[i]].read = true;
        }
        return 0;
}

/* Every indexed blob of @p becomes unreadable. */
static int pack_lost(struct check *c, const struct pack_info *p) {
        for (size_t i = 0; i < p->n_rows; i++) {
                int k = cairn_idset_add(&c->bad, c->rows[p->first_row + i].id);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* The chunks row of @p at @e's offset, if it names @e's blob. */
static const struct row *row_of_entry(const struct check *c, const struct pack_info *p,
                                      const struct cairn_pack_entry *e) {
        size_t lo = p->first_row, hi = p->first_row + p->n_rows;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct row *row = &c->rows[mid];
                if (row->offset == e->offset)
                        return memcmp(row->id, e->id, CAIRN_ID_SIZE) == 0 ? row : NULL;
                if (row->offset < e->offset)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Feed bytes [*pos, end) of @fd to @h.  0, or -EBADMSG when the file
 * ends early, -errno. */
static int hash_range(struct check *c, int fd, struct cairn_sha256 *h, uint64_t *pos, uint64_t end) {
        while (*pos < end) {
                size_t n = (size_t) MIN((uint64_t) IO_CHUNK, end - *pos);
                ssize_t k = pread_full(fd, c->io, n, (off_t) *pos);
                if (k < 0)
                        return (int) k;
                if ((size_t) k != n)
                        return -EBADMSG;
                cairn_sha256_update(h, c->io, n);
                *pos += n;
        }
        return 0;
}

/* The index rows of a tree or content blob just read from where the index
 * places it must say what the blob says, entry for entry and byte for
 * byte: the index is derived, and restore and the mount serve its rows as
 * they are, so a damaged row (a flipped byte in data.mdb) would otherwise
 * go unnoticed.  A difference makes the blob bad (its paths are damaged). */
static int verify_rows(struct check *c, const struct pack_info *p, const struct cairn_pack_entry *e,
                       const uint8_t *blob, size_t len, const char *hex) {
        _cleanup_free_ struct cairn_content_chunk *chunks = NULL;
        char blob_hex[HEX_ID_SIZE];
        bool differ = false;
        size_t n;
        int k;

        if (e->type == CAIRN_BLOB_TREE) {
                struct cairn_tree_iter *it = NULL;
                size_t cursor = 0;

                k = cairn_index_tree_iter_new(c->t, e->id, NULL, 0, &it);
                if (k < 0)
                        return log_error_errno(k, "Cannot read a directory from the index: %m");
                while (!differ) {
                        const char *bn, *rn;
                        const uint8_t *be, *re;
                        size_t bnl, rnl, bel, rel;
                        int kb = cairn_tree_next(blob, len, &cursor, &bn, &bnl, &be, &bel);
                        int kr = cairn_index_tree_iter_next_raw(it, &rn, &rnl, &re, &rel);

                        if (kr == -ENOMEM) {
                                cairn_index_tree_iter_free(it);
                                return kr;
                        }
                        if (kb == 0 && kr == 0)
                                break;
                        differ = kb <= 0 || kr <= 0 || bnl != rnl || memcmp(bn, rn, bnl) != 0 || bel != rel ||
                                 memcmp(be, re, bel) != 0;
                }
                cairn_index_tree_iter_free(it);
        } else if (e->type == CAIRN_BLOB_CONTENT) {
                uint64_t off = 0, start;
                struct cairn_content_chunk ch;

                k = cairn_content_decode(blob, len, &chunks, &n);
                if (k == -ENOMEM)
                        return k;
                differ = k < 0;
                for (size_t i = 0; !differ && i < n; i++) {
                        k = cairn_index_content_find(c->t, e->id, off, &ch, &start);
                        if (k == -ENOMEM)
                                return k;
                        differ = k < 0 || start != off || ch.length != chunks[i].length ||
                                 ch.flags != chunks[i].flags || memcmp(ch.id, chunks[i].id, CAIRN_ID_SIZE) != 0;
                        off += chunks[i].length;
                }
                /* and no row past its end */
                if (!differ)
                        differ = cairn_index_content_find(c->t, e->id, off, &ch, &start) != -ENOENT;
        }
        if (!differ)
                return 0;
        problem(c, -EBADMSG, p->id, e->id, NULL, "pack %s: the index rows of %s %s differ from the blob "
                "(the index is damaged: run `cairn index rebuild`)", hex, blob_type_name(e->type),
                hex_encode(e->id, CAIRN_ID_SIZE, blob_hex));
        return cairn_idset_add(&c->bad, e->id) < 0 ? -ENOMEM : 0;
}

/* Read @p start to end: decode every blob, hash the file. */
static int read_pack(struct check *c, const struct pack_info *p, int fd, uint64_t size, const char *hex,
                     const struct cairn_pack_entry *entries, size_t n) {
        const struct cairn_codec *codec = cairn_repo_codec(c->r);
        struct cairn_sha256 *h = NULL;
        _cleanup_free_ uint8_t *stored = NULL, *raw = NULL;
        size_t stored_cap = 0, raw_cap = 0;
        uint8_t sum[CAIRN_ID_SIZE];
        char blob_hex[HEX_ID_SIZE], sum_hex[HEX_ID_SIZE];
        uint64_t pos = 0;
        int k = 0;

        if (!c->io && !(c->io = malloc(IO_CHUNK)))
                return -ENOMEM;
        h = cairn_sha256_new();
        if (!h)
                return -ENOMEM;
        c->st.packs_read++;
        for (size_t i = 0; i < n; i++) {
                const struct cairn_pack_entry *e = &entries[i];
                ssize_t got;

                hex_encode(e->id, CAIRN_ID_SIZE, blob_hex);
                if (e->stored_len > stored_cap) {
                        free(stored);
                        stored_cap = e->stored_len;
                        if (!(stored = malloc(stored_cap))) {
                                k = -ENOMEM;
                                break;
                        }
                }
                if (MAX(e->raw_len, 1u) > raw_cap) {
                        free(raw);
                        raw_cap = MAX(e->raw_len, 1u);
                        if (!(raw = malloc(raw_cap))) {
                                k = -ENOMEM;
                                break;
                        }
                }
                k = hash_range(c, fd, h, &pos, e->offset);
                if (k >= 0) {
                        got = pread_full(fd, stored, e->stored_len, (off_t) e->offset);
                        k = got < 0 ? (int) got : (size_t) got != e->stored_len ? -EBADMSG : 0;
                }
                if (k == -EBADMSG) {
                        problem(c, -EBADMSG, p->id, NULL, NULL, "pack %s: the file ends before blob %s", hex, blob_hex);
                        k = pack_lost(c, p);
                        goto out;
                }
                if (k < 0) {
                        problem(c, k, p->id, NULL, NULL, "pack %s cannot be read: %m", hex);
                        k = pack_lost(c, p);
                        goto out;
                }
                cairn_sha256_update(h, stored, e->stored_len);
                pos = e->offset + e->stored_len;
                c->st.blobs_read++;

                k = cairn_codec_decode(codec, e->id, stored, e->stored_len, raw, e->raw_len);
                if (k == -ENOMEM)
                        break;
                if (k < 0) {
                        problem(c, -EBADMSG, p->id, e->id, NULL, "pack %s: blob %s fails its integrity check", hex,
                                blob_hex);
                        /* Only when the index looks for it here: the same
                         * blob may be indexed intact in another pack. */
                        k = row_of_entry(c, p, e) ? cairn_idset_add(&c->bad, e->id) : 0;
                        if (k < 0)
                                break;
                } else if (e->type != CAIRN_BLOB_DATA && row_of_entry(c, p, e)) {
                        k = verify_rows(c, p, e, raw, e->raw_len, hex);
                        if (k < 0)
                                break;
                }
                k = 0;
        }
        if (k >= 0)
                k = hash_range(c, fd, h, &pos, size);
        if (k == -EBADMSG) {
                problem(c, -EBADMSG, p->id, NULL, NULL, "pack %s: the file ends before its trailer", hex);
                k = 0;
        } else if (k >= 0) {
                cairn_sha256_final(h, sum);
                c->st.bytes_read += size;
                if (memcmp(sum, p->id, CAIRN_ID_SIZE) != 0)
                        problem(c, -EBADMSG, p->id, NULL, NULL, "pack %s: the SHA-256 of the file is %s, not its name "
                                "(the file was altered)", hex, hex_encode(sum, CAIRN_ID_SIZE, sum_hex));
        }
out:
        cairn_sha256_free(h);
        return k < 0 ? k : 0;
}

static int check_pack(struct check *c, const struct pack_info *p) {
        _cleanup_free_ struct cairn_pack_entry *entries = NULL, *by_id = NULL;
        _cleanup_close_ int fd = -1;
        char hex[HEX_ID_SIZE], blob_hex[HEX_ID_SIZE], path[100];
        struct stat st;
        size_t n;
        int k;

        c->st.packs++;
        hex_encode(p->id, CAIRN_ID_SIZE, hex);
        if (!p->has_row)
                problem(c, -EBADMSG, p->id, NULL, NULL, "pack %s: %zu rows of the chunks table name it, but the packs "
                        "table does not (run `cairn index rebuild`)", hex, p->n_rows);

        fd = openat(cairn_repo_fd(c->r), cairn_pack_path(p->id, path, sizeof path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                k = -errno;
                if (k == -ENOENT)
                        problem(c, k, p->id, NULL, NULL, "pack %s is missing: its %zu indexed blobs are lost", hex,
                                p->n_rows);
                else
                        problem(c, k, p->id, NULL, NULL, "pack %s cannot be opened: %m", hex);
                return pack_lost(c, p);
        }
        if (p->has_row && (uint64_t) st.st_size != p->size)
                problem(c, -EBADMSG, p->id, NULL, NULL, "pack %s is %" PRIu64 " bytes, the index records %" PRIu64
                        " (truncated or altered)", hex, (uint64_t) st.st_size, p->size);

        k = cairn_pack_read_trailer(cairn_repo_fd(c->r), cairn_repo_codec(c->r), p->id, &entries, &n);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                problem(c, k == -ENOENT ? k : -EBADMSG, p->id, NULL, NULL, "pack %s: its trailer cannot be read, "
                        "so none of its %zu indexed blobs can be found", hex, p->n_rows);
                return pack_lost(c, p);
        }
        if (p->has_row && n != p->count)
                problem(c, -EBADMSG, p->id, NULL, NULL, "pack %s: its trailer lists %zu blobs, the index records "
                        "%" PRIu32, hex, n, p->count);

        /* Every row naming the pack against the trailer entry of its id. */
        by_id = malloc(MAX(n, (size_t) 1) * sizeof *by_id);
        if (!by_id)
                return -ENOMEM;
        memcpy(by_id, entries, n * sizeof *by_id);
        qsort(by_id, n, sizeof *by_id, cmp_entry_id);
        for (size_t i = 0; i < p->n_rows; i++) {
                const struct row *row = &c->rows[p->first_row + i];
                const struct cairn_pack_entry *e = n ? bsearch(row->id, by_id, n, sizeof *by_id, cmp_id_entry) : NULL;

                hex_encode(row->id, CAIRN_ID_SIZE, blob_hex);
                if (!e)
                        problem(c, -EBADMSG, p->id, row->id, NULL, "pack %s: the index places blob %s in it, "
                                "but its trailer does not list it", hex, blob_hex);
                else if (e->offset != row->offset || e->stored_len != row->stored_len || e->raw_len != row->raw_len ||
                         e->type != row->type)
                        problem(c, -EBADMSG, p->id, row->id, NULL, "pack %s: blob %s is a %s at offset %" PRIu64
                                ", %" PRIu32 " bytes (%" PRIu32 " raw) by its trailer, but a %s at offset %" PRIu64
                                ", %" PRIu32 " bytes (%" PRIu32 " raw) by the index", hex, blob_hex,
                                blob_type_name(e->type), e->offset, e->stored_len, e->raw_len,
                                blob_type_name(row->type), row->offset, row->stored_len, row->raw_len);
                else
                        continue;
                k = cairn_idset_add(&c->bad, row->id);
                if (k < 0)
                        return k;
        }

        if (p->read)
                return read_pack(c, p, fd, (uint64_t) st.st_size, hex, entries, n);
        return 0;
}

static int check_packs(struct check *c) {
        int k;

        k = cairn_index_foreach_raw(c->t, CAIRN_TABLE_PACKS, collect_pack, c);
        if (k < 0)
                return log_error_errno(k, "Cannot walk the packs table: %m");
        c->n_sorted_packs = c->n_packs;
        k = cairn_index_foreach_raw(c->t, CAIRN_TABLE_CHUNKS, collect_row, c);
        if (k < 0)
                return log_error_errno(k, "Cannot walk the chunks table: %m");
        if (c->n_rows > 0)
                qsort(c->rows, c->n_rows, sizeof *c->rows, cmp_row);
        for (size_t i = 0; i < c->n_rows;) {
                struct pack_info *p = &c->packs[c->rows[i].pack];
                size_t j = i;
                while (j < c->n_rows && c->rows[j].pack == c->rows[i].pack)
                        j++;
                p->first_row = i;
                p->n_rows = j - i;
                i = j;
        }
        k = choose_packs(c);
        if (k < 0)
                return k;
        for (size_t i = 0; i < c->n_packs; i++) {
                k = check_pack(c, &c->packs[i]);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* --- trees ----------------------------------------------------------------- */

static int path_push(struct check *c, const char *name, size_t len, bool dir) {
        return path_buf_push(&c->path, &c->path_len, &c->path_cap, name, len, dir);
}

static void path_pop(struct check *c, size_t len) {
        c->path_len = len;
        c->path[len] = 0;
}

enum {
        BLOB_OK = 0,
        BLOB_MISSING = 1,               /* no chunks row */
        BLOB_BAD = 2,                   /* a row, but the blob cannot be read intact from where it says */
};

/* A blob the current path of @s needs, of @type: its row (into *ret_loc,
 * may be NULL) and whether it is intact.  Problems are reported once per
 * blob.  BLOB_*, or -errno. */
static int need_blob(struct check *c, struct snap *s, const uint8_t id[CAIRN_ID_SIZE], uint8_t type,
                     struct cairn_chunk_loc *ret_loc) {
        struct cairn_chunk_loc loc;
        char hex[HEX_ID_SIZE];
        int k;

        k = cairn_index_chunk_get(c->t, id, &loc);
        if (k == -ENOENT) {
                k = cairn_idset_add(&c->reported, id);
                if (k < 0)
                        return k;
                if (k > 0)
                        problem(c, -ENOENT, NULL, id, s->id, "snapshot %s: %s: %s %s is not in the index "
                                "(no chunks row)", s->label, c->path, blob_type_name(type),
                                hex_encode(id, CAIRN_ID_SIZE, hex));
                return BLOB_MISSING;
        }
        if (k < 0)
                return log_error_errno(k, "Cannot look up a blob in the index: %m");
        if (ret_loc)
                *ret_loc = loc;
        if (loc.type != type) {
                k = cairn_idset_add(&c->reported, id);
                if (k < 0)
                        return k;
                if (k > 0)
                        problem(c, -EBADMSG, loc.pack, id, s->id, "snapshot %s: %s: blob %s should be a %s, "
                                "the index says it is a %s", s->label, c->path, hex_encode(id, CAIRN_ID_SIZE, hex),
                                blob_type_name(type), blob_type_name(loc.type));
                return BLOB_BAD;
        }
        return cairn_idset_has(&c->bad, id) ? BLOB_BAD : BLOB_OK;
}

/* A tree or content with no rows: problem unless its blob is an empty list. */
static int no_rows(struct check *c, struct snap *s, const uint8_t id[CAIRN_ID_SIZE], const struct cairn_chunk_loc *loc,
                   const char *table) {
        char hex[HEX_ID_SIZE];
        int k;

        if (loc->raw_len <= EMPTY_LIST_BLOB_SIZE)
                return 0;
        k = cairn_idset_add(&c->reported, id);
        if (k < 0)
                return k;
        if (k > 0)
                problem(c, -EBADMSG, loc->pack, id, s->id, "snapshot %s: %s: %s %s (%" PRIu32 " bytes) has no rows "
                        "in table %s (run `cairn index rebuild`)", s->label, c->path, blob_type_name(loc->type),
                        hex_encode(id, CAIRN_ID_SIZE, hex), loc->raw_len, table);
        return 1;
}

/* 1 when the file content cannot be read in full, 0 when it can, -errno. */
static int check_content(struct check *c, struct snap *s, const uint8_t content[CAIRN_ID_SIZE]) {
        struct cairn_chunk_loc loc;
        uint64_t offset = 0, n = 0;
        bool dirty, missing;
        int k;

        if (cairn_idset_has(&c->clean_contents, content))
                return 0;
        k = need_blob(c, s, content, CAIRN_BLOB_CONTENT, &loc);
        if (k < 0)
                return k;
        missing = k == BLOB_MISSING;
        dirty = k != BLOB_OK;
        for (;;) {
                struct cairn_content_chunk chunk;
                uint64_t start;
                char hex[HEX_ID_SIZE];

                k = cairn_index_content_find(c->t, content, offset, &chunk, &start);
                if (k == -ENOENT)
                        break;
                if (k < 0)
                        return log_error_errno(k, "Cannot read a chunk list from the index: %m");
                n++;
                if (!(chunk.flags & CAIRN_CHUNK_HOLE) && !id_is_zero(chunk.id)) {
                        k = need_blob(c, s, chunk.id, CAIRN_BLOB_DATA, NULL);
                        if (k < 0)
                                return k;
                        dirty |= k != BLOB_OK;
                }
                if (chunk.length == 0 || start + chunk.length <= offset) {
                        k = cairn_idset_add(&c->reported, content);
                        if (k < 0)
                                return k;
                        if (k > 0)
                                problem(c, -EBADMSG, NULL, content, s->id, "snapshot %s: %s: the chunk list of "
                                        "content %s in the index is malformed (run `cairn index rebuild`)", s->label,
                                        c->path, hex_encode(content, CAIRN_ID_SIZE, hex));
                        dirty = true;
                        break;
                }
                offset = start + chunk.length;
        }
        if (n == 0 && !missing) {
                k = no_rows(c, s, content, &loc, "contents");
                if (k < 0)
                        return k;
                dirty |= k > 0;
        }
        if (!dirty) {
                k = cairn_idset_add(&c->clean_contents, content);
                if (k < 0)
                        return k;
        }
        return dirty;
}

/* Walk tree @tree, at c->path (ending in '/').  1 when something below
 * is damaged (each damaged path reported), 0 when all is well, -errno. */
static int walk_tree(struct check *c, struct snap *s, const uint8_t tree[CAIRN_ID_SIZE], unsigned depth) {
        struct cairn_tree_iter *it = NULL;
        struct cairn_chunk_loc loc;
        size_t base = c->path_len, entries = 0;
        bool dirty, missing;
        int k;

        if (cairn_idset_has(&c->clean_trees, tree))
                return 0;
        if (depth > CHECK_DEPTH_MAX) {
                problem(c, -ELOOP, NULL, tree, s->id, "snapshot %s: %s: directories nested deeper than %d "
                        "(a cycle in the index?)", s->label, c->path, CHECK_DEPTH_MAX);
                damage(c, s, false);
                return 1;
        }
        k = need_blob(c, s, tree, CAIRN_BLOB_TREE, &loc);
        if (k < 0)
                return k;
        missing = k == BLOB_MISSING;
        dirty = k != BLOB_OK;
        if (dirty)
                damage(c, s, false);

        k = cairn_index_tree_iter_new(c->t, tree, NULL, 0, &it);
        if (k < 0)
                return log_error_errno(k, "Cannot read a directory from the index: %m");
        for (;;) {
                struct cairn_entry e;
                const char *name;
                size_t name_len;

                k = cairn_index_tree_iter_next(it, &name, &name_len, &e);
                if (k <= 0)
                        break;
                entries++;
                if ((e.type != CAIRN_ENTRY_DIR && e.type != CAIRN_ENTRY_FILE) || id_is_zero(e.ref))
                        continue;       /* nothing stored, or an empty file */
                k = path_push(c, name, name_len, e.type == CAIRN_ENTRY_DIR);
                if (k < 0)
                        break;
                if (e.type == CAIRN_ENTRY_DIR)
                        k = walk_tree(c, s, e.ref, depth + 1);
                else {
                        k = check_content(c, s, e.ref);
                        if (k > 0)
                                damage(c, s, false);
                }
                path_pop(c, base);
                if (k < 0)
                        break;
                dirty |= k > 0;
        }
        cairn_index_tree_iter_free(it);
        if (k < 0)
                return k == -ENOMEM ? k : log_error_errno(k, "Cannot read a directory from the index: %m");
        if (entries == 0 && !missing) {
                k = no_rows(c, s, tree, &loc, "trees");
                if (k < 0)
                        return k;
                if (k > 0 && !dirty)
                        damage(c, s, false);
                dirty |= k > 0;
        }
        if (!dirty) {
                k = cairn_idset_add(&c->clean_trees, tree);
                if (k < 0)
                        return k;
        }
        return dirty;
}

static int check_trees(struct check *c) {
        int k;

        for (size_t i = 0; i < c->n_snaps; i++) {
                struct snap *s = &c->snaps[i];
                if (!s->walk)
                        continue;
                c->path_len = 0;
                k = path_push(c, "", 0, true);
                if (k < 0)
                        return k;
                k = walk_tree(c, s, s->root, 0);
                if (k < 0)
                        return k;
        }
        return 0;
}

int cairn_repo_check(struct cairn_repo *r, const struct cairn_check_options *o, struct cairn_check_stats *ret) {
        static const struct cairn_check_options defaults = { 0 };
        struct check c = { .r = r, .o = o ? o : &defaults };
        int k;

        k = check_snapshots(&c);
        if (k >= 0)
                k = check_packs(&c);
        if (k >= 0)
                k = check_trees(&c);
        if (ret)
                *ret = c.st;
        check_release(&c);
        if (k < 0)
                return k == -ENOMEM ? log_error_errno(k, "Check of %s stopped: %m", cairn_repo_path(r)) : k;
        return c.st.errors > 0 ? -EBADMSG : 0;
}
