/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fault.h"
#include "log.h"
#include "pack.h"
#include "repo.h"
#include "store.h"
#include "util.h"

/* A tree or content blob of the open pack, kept in plaintext until the
 * pack is published: its index rows are made from it. */
struct pending_meta {
        uint8_t type;
        uint8_t id[CAIRN_ID_SIZE];
        uint8_t *raw;
        size_t len;
};

struct cairn_store {
        struct cairn_repo *repo;
        const struct cairn_codec *codec;
        struct cairn_pack_writer *pack;          /* NULL when nothing is pending */
        struct cairn_txn *rtxn;                  /* read txn for dedup lookups, renewed after each flush */
        /* ids in the open pack: open addressing, power-of-two size */
        uint8_t (*set)[CAIRN_ID_SIZE];
        uint8_t *set_used;
        size_t set_size, set_count;
        struct pending_meta *meta;
        size_t n_meta, cap_meta;
        uint8_t *scratch;                        /* encode buffer */
        size_t scratch_size;
        struct cairn_store_stats stats;
};

int cairn_store_new(struct cairn_repo *r, struct cairn_store **ret) {
        struct cairn_store *s;
        int k;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->repo = r;
        s->codec = cairn_repo_codec(r);
        k = cairn_index_txn_begin(cairn_repo_index(r), false, &s->rtxn);
        if (k < 0) {
                free(s);
                return k;
        }
        *ret = s;
        return 0;
}

static void pending_clear(struct cairn_store *s) {
        for (size_t i = 0; i < s->n_meta; i++)
                free(s->meta[i].raw);
        s->n_meta = 0;
        if (s->set_used)
                memset(s->set_used, 0, s->set_size);
        s->set_count = 0;
        s->pack = cairn_pack_writer_free(s->pack);
}

struct cairn_store *cairn_store_free(struct cairn_store *s) {
        if (!s)
                return NULL;
        pending_clear(s);
        cairn_index_txn_abort(s->rtxn);
        free(s->set);
        free(s->set_used);
        free(s->meta);
        free(s->scratch);
        free(s);
        return NULL;
}

static size_t set_slot(const uint8_t id[CAIRN_ID_SIZE], size_t size) {
        uint64_t h;
        memcpy(&h, id, sizeof h);       /* ids are uniformly distributed */
        return (size_t) h & (size - 1);
}

static bool set_contains(const struct cairn_store *s, const uint8_t id[CAIRN_ID_SIZE]) {
        if (s->set_count == 0)
                return false;
        for (size_t i = set_slot(id, s->set_size);; i = (i + 1) & (s->set_size - 1)) {
                if (!s->set_used[i])
                        return false;
                if (memcmp(s->set[i], id, CAIRN_ID_SIZE) == 0)
                        return true;
        }
}

static void set_insert_nogrow(struct cairn_store *s, const uint8_t id[CAIRN_ID_SIZE]) {
        size_t i = set_slot(id, s->set_size);
        while (s->set_used[i])
                i = (i + 1) & (s->set_size - 1);
        s->set_used[i] = 1;
        memcpy(s->set[i], id, CAIRN_ID_SIZE);
        s->set_count++;
}

static int set_insert(struct cairn_store *s, const uint8_t id[CAIRN_ID_SIZE]) {
        if ((s->set_count + 1) * 2 > s->set_size) {
                size_t old_size = s->set_size, new_size = old_size ? old_size * 2 : 1024;
                uint8_t (*old)[CAIRN_ID_SIZE] = s->set, *old_used = s->set_used;

                s->set = malloc(new_size * CAIRN_ID_SIZE);
                s->set_used = calloc(new_size, 1);
                if (!s->set || !s->set_used) {
                        free(s->set);
                        free(s->set_used);
                        s->set = old;
                        s->set_used = old_used;
                        return -ENOMEM;
                }
                s->set_size = new_size;
                s->set_count = 0;
                for (size_t i = 0; i < old_size; i++)
                        if (old_used[i])
                                set_insert_nogrow(s, old[i]);
                free(old);
                free(old_used);
        }
        set_insert_nogrow(s, id);
        return 0;
}

int cairn_store_contains(struct cairn_store *s, const uint8_t id[CAIRN_ID_SIZE]) {
        struct cairn_chunk_loc loc;
        int k;

        if (set_contains(s, id))
                return 1;
        k = cairn_index_chunk_get(s->rtxn, id, &loc);
        if (k == -ENOENT)
                return 0;
        return k < 0 ? k : 1;
}

int cairn_store_put_encoded(struct cairn_store *s, enum cairn_blob_type type, const uint8_t id[CAIRN_ID_SIZE],
                            const void *stored, size_t stored_len, const void *raw, size_t raw_len) {
        int k;

        k = cairn_store_contains(s, id);
        if (k < 0)
                return k;
        if (k > 0) {
                s->stats.blobs_dedup++;
                s->stats.raw_dedup += raw_len;
                return 0;
        }
        if (type != CAIRN_BLOB_DATA) {
                struct pending_meta *m;
                if (!raw)
                        return -EINVAL;
                if (s->n_meta == s->cap_meta) {
                        size_t cap = s->cap_meta ? s->cap_meta * 2 : 64;
                        m = realloc(s->meta, cap * sizeof *m);
                        if (!m)
                                return -ENOMEM;
                        s->meta = m;
                        s->cap_meta = cap;
                }
                m = &s->meta[s->n_meta];
                m->raw = malloc(raw_len ? raw_len : 1);
                if (!m->raw)
                        return -ENOMEM;
                memcpy(m->raw, raw, raw_len);
                m->len = raw_len;
                m->type = (uint8_t) type;
                memcpy(m->id, id, CAIRN_ID_SIZE);
                s->n_meta++;
        }
        if (!s->pack) {
                k = cairn_pack_writer_new(cairn_repo_fd(s->repo), s->codec, &s->pack);
                if (k < 0)
                        return log_error_errno(k, "Cannot start a pack in %s/packs: %m", cairn_repo_path(s->repo));
        }
        k = cairn_pack_writer_add(s->pack, (uint8_t) type, id, stored, stored_len, (uint32_t) raw_len);
        if (k < 0)
                return log_error_errno(k, "Cannot write to a pack in %s/packs: %m", cairn_repo_path(s->repo));
        k = set_insert(s, id);
        if (k < 0)
                return k;
        s->stats.blobs_added++;
        s->stats.raw_added += raw_len;
        s->stats.stored_added += stored_len;
        if (cairn_pack_writer_size(s->pack) >= CAIRN_PACK_TARGET_SIZE)
                return cairn_store_flush(s);
        return 0;
}

int cairn_store_add(struct cairn_store *s, enum cairn_blob_type type, const void *data, size_t len,
                    uint8_t ret_id[CAIRN_ID_SIZE], bool *ret_added) {
        uint64_t before = s->stats.blobs_added;
        size_t bound, stored;
        int k;

        cairn_codec_id(s->codec, data, len, ret_id);
        k = cairn_store_contains(s, ret_id);
        if (k < 0)
                return k;
        if (k > 0) {
                s->stats.blobs_dedup++;
                s->stats.raw_dedup += len;
                if (ret_added)
                        *ret_added = false;
                return 0;
        }
        bound = cairn_codec_bound(s->codec, len);
        if (bound > s->scratch_size) {
                uint8_t *b = realloc(s->scratch, bound);
                if (!b)
                        return -ENOMEM;
                s->scratch = b;
                s->scratch_size = bound;
        }
        k = cairn_codec_encode(s->codec, ret_id, data, len, s->scratch, &stored);
        if (k < 0)
                return k;
        k = cairn_store_put_encoded(s, type, ret_id, s->scratch, stored, data, len);
        if (k < 0)
                return k;
        if (ret_added)
                *ret_added = s->stats.blobs_added > before;
        return 0;
}

static int index_meta(struct cairn_txn *t, const struct pending_meta *m) {
        _cleanup_free_ struct cairn_content_chunk *chunks = NULL;
        size_t n;
        int k;

        if (m->type == CAIRN_BLOB_TREE)
                return cairn_index_tree_put_blob(t, m->id, m->raw, m->len);
        k = cairn_content_decode(m->raw, m->len, &chunks, &n);
        if (k < 0)
                return k;
        return cairn_index_content_put(t, m->id, chunks, n);
}

int cairn_store_flush(struct cairn_store *s) {
        _cleanup_free_ struct cairn_pack_entry *entries = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        uint8_t pack_id[CAIRN_ID_SIZE];
        char path[100];
        struct stat st;
        size_t n;
        int k;

        if (!s->pack)
                return 0;
        k = cairn_pack_writer_finish(s->pack, pack_id, &entries, &n);
        if (k < 0) {
                pending_clear(s);
                return log_error_errno(k, "Cannot publish a pack in %s/packs: %m", cairn_repo_path(s->repo));
        }

        if (fstatat(cairn_repo_fd(s->repo), cairn_pack_path(pack_id, path, sizeof path), &st, 0) < 0) {
                pending_clear(s);
                return log_error_errno(-errno, "Cannot stat new pack %s/%s: %m", cairn_repo_path(s->repo), path);
        }

        /* The pack is durable; now, and only now, the rows that name it. */
        k = cairn_index_txn_begin(cairn_repo_index(s->repo), true, &t);
        if (k >= 0)
                k = cairn_index_pack_put(t, pack_id, (uint64_t) st.st_size, (uint32_t) n);
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
        for (size_t i = 0; k >= 0 && i < s->n_meta; i++)
                k = index_meta(t, &s->meta[i]);
        if (k >= 0) {
                cairn_fault_point("store.before-index-commit");
                k = cairn_index_txn_commit(TAKE_PTR(t));
        }
        pending_clear(s);
        if (k < 0)
                return log_error_errno(k, "Cannot record new pack %s/%s in the index %s/index: %m",
                                       cairn_repo_path(s->repo), path, cairn_repo_path(s->repo));
        cairn_fault_point("store.after-index-commit");
        s->stats.packs_written++;

        cairn_index_txn_reset(s->rtxn);
        return cairn_index_txn_renew(s->rtxn);
}

const struct cairn_store_stats *cairn_store_stats(const struct cairn_store *s) {
        return &s->stats;
}
