/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"
#include "util.h"

#define ENTRY_VERSION 1

/* Everything of an entry up to and including the target length. */
#define ENTRY_FIXED_SIZE (1 + 1 + 4 + 4 + 4 + 8 * 6 + 4 + 8 + CAIRN_ID_SIZE + 4)

#define TREE_MAGIC "CTRE"
#define CONTENT_MAGIC "CCNT"
#define BLOB_HEADER_SIZE 8
#define CONTENT_RECORD_SIZE (CAIRN_ID_SIZE + 8 + 1)

/* Linux limits (XATTR_NAME_MAX): a name longer than this or holding a NUL
 * could never be set on restore, and NUL would break listxattr's list. */
#define XATTR_NAME_LIMIT 255

/* A bounds-checked reader: every access goes through rd_take(), which is
 * the only place that compares against the end of the buffer. */
struct reader {
        const uint8_t *p;
        size_t len, off;
};

static const uint8_t *rd_take(struct reader *r, size_t n) {
        if (r->off > r->len || n > r->len - r->off)
                return NULL;
        const uint8_t *q = r->p + r->off;
        r->off += n;
        return q;
}

static bool rd_u8(struct reader *r, uint8_t *v) {
        const uint8_t *q = rd_take(r, 1);
        if (!q)
                return false;
        *v = q[0];
        return true;
}

static bool rd_le16(struct reader *r, uint16_t *v) {
        const uint8_t *q = rd_take(r, 2);
        if (!q)
                return false;
        *v = get_le16(q);
        return true;
}

static bool rd_le32(struct reader *r, uint32_t *v) {
        const uint8_t *q = rd_take(r, 4);
        if (!q)
                return false;
        *v = get_le32(q);
        return true;
}

static bool rd_le64(struct reader *r, uint64_t *v) {
        const uint8_t *q = rd_take(r, 8);
        if (!q)
                return false;
        *v = get_le64(q);
        return true;
}

/* Sizes are summed in size_t: refuse instead of wrapping (32-bit hosts). */
static bool size_add(size_t *acc, size_t n) {
        if (n > SIZE_MAX - *acc)
                return false;
        *acc += n;
        return true;
}

static bool type_valid(uint8_t type) {
        return type >= CAIRN_ENTRY_FILE && type <= CAIRN_ENTRY_SOCK;
}

static bool xattr_name_valid(const char *name, size_t len) {
        return len > 0 && len <= XATTR_NAME_LIMIT && name && !memchr(name, 0, len);
}

bool cairn_name_valid(const char *name, size_t len) {
        if (!name || len == 0 || len > CAIRN_NAME_MAX)
                return false;
        if (memchr(name, '/', len) || memchr(name, 0, len))
                return false;
        if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
                return false;
        return true;
}

int cairn_entry_encode(const struct cairn_entry *e, const struct cairn_xattr *xa, size_t n_xa,
                       uint8_t **ret, size_t *ret_len) {
        size_t total = ENTRY_FIXED_SIZE + 4;

        if (!type_valid(e->type))
                return -EINVAL;
        if (e->target_len > UINT32_MAX || (e->target_len > 0 && !e->target))
                return -EINVAL;
        if (n_xa > UINT32_MAX || (n_xa > 0 && !xa))
                return -EINVAL;
        if (!size_add(&total, e->target_len))
                return -EINVAL;
        for (size_t i = 0; i < n_xa; i++) {
                if (!xattr_name_valid(xa[i].name, xa[i].name_len))
                        return -EINVAL;
                if (xa[i].value_len > UINT32_MAX || (xa[i].value_len > 0 && !xa[i].value))
                        return -EINVAL;
                if (!size_add(&total, 2 + xa[i].name_len) || !size_add(&total, 4) ||
                    !size_add(&total, xa[i].value_len))
                        return -EINVAL;
        }

        uint8_t *buf = malloc(total);
        if (!buf)
                return -ENOMEM;

        uint8_t *p = buf;
        *p++ = ENTRY_VERSION;
        *p++ = e->type;
        put_le32(p, e->mode), p += 4;
        put_le32(p, e->uid), p += 4;
        put_le32(p, e->gid), p += 4;
        put_le64(p, e->size), p += 8;
        put_le64(p, (uint64_t) e->mtime_ns), p += 8;
        put_le64(p, (uint64_t) e->ctime_ns), p += 8;
        put_le64(p, (uint64_t) e->atime_ns), p += 8;
        put_le64(p, e->rdev), p += 8;
        put_le64(p, e->ino), p += 8;
        put_le32(p, e->nlink), p += 4;
        put_le64(p, e->hardlink_group), p += 8;
        memcpy(p, e->ref, CAIRN_ID_SIZE), p += CAIRN_ID_SIZE;
        put_le32(p, (uint32_t) e->target_len), p += 4;
        if (e->target_len > 0)
                memcpy(p, e->target, e->target_len), p += e->target_len;
        put_le32(p, (uint32_t) n_xa), p += 4;
        for (size_t i = 0; i < n_xa; i++) {
                put_le16(p, (uint16_t) xa[i].name_len), p += 2;
                memcpy(p, xa[i].name, xa[i].name_len), p += xa[i].name_len;
                put_le32(p, (uint32_t) xa[i].value_len), p += 4;
                if (xa[i].value_len > 0)
                        memcpy(p, xa[i].value, xa[i].value_len), p += xa[i].value_len;
        }

        *ret = buf;
        *ret_len = total;
        return 0;
}

int cairn_entry_xattr_next(const struct cairn_entry *e, size_t *cursor, struct cairn_xattr *ret) {
        struct reader r = { .p = e->xattrs, .len = e->xattrs_len, .off = *cursor };
        const uint8_t *name, *value;
        uint16_t name_len;
        uint32_t value_len;

        if (r.off == r.len)
                return 0;
        if (!r.p || !rd_le16(&r, &name_len) || !(name = rd_take(&r, name_len)) ||
            !rd_le32(&r, &value_len) || !(value = rd_take(&r, value_len)))
                return -EBADMSG;
        if (!xattr_name_valid((const char *) name, name_len))
                return -EBADMSG;

        *ret = (struct cairn_xattr) {
                .name = (const char *) name,
                .name_len = name_len,
                .value = value,
                .value_len = value_len,
        };
        *cursor = r.off;
        return 1;
}

int cairn_entry_decode(const void *buf, size_t len, struct cairn_entry *ret) {
        struct reader r = { .p = buf, .len = len };
        struct cairn_entry e = {};
        uint8_t version;
        uint32_t target_len;
        uint64_t u;
        const uint8_t *q;

        if (!buf)
                return -EBADMSG;
        if (!rd_u8(&r, &version) || version != ENTRY_VERSION)
                return -EBADMSG;
        if (!rd_u8(&r, &e.type) || !type_valid(e.type))
                return -EBADMSG;
        if (!rd_le32(&r, &e.mode) || !rd_le32(&r, &e.uid) || !rd_le32(&r, &e.gid) || !rd_le64(&r, &e.size))
                return -EBADMSG;
        if (!rd_le64(&r, &u))
                return -EBADMSG;
        e.mtime_ns = (int64_t) u;
        if (!rd_le64(&r, &u))
                return -EBADMSG;
        e.ctime_ns = (int64_t) u;
        if (!rd_le64(&r, &u))
                return -EBADMSG;
        e.atime_ns = (int64_t) u;
        if (!rd_le64(&r, &e.rdev) || !rd_le64(&r, &e.ino) || !rd_le32(&r, &e.nlink) ||
            !rd_le64(&r, &e.hardlink_group))
                return -EBADMSG;
        if (!(q = rd_take(&r, CAIRN_ID_SIZE)))
                return -EBADMSG;
        memcpy(e.ref, q, CAIRN_ID_SIZE);
        if (!rd_le32(&r, &target_len) || !(q = rd_take(&r, target_len)))
                return -EBADMSG;
        if (target_len > 0) {
                e.target = (const char *) q;
                e.target_len = target_len;
        }
        if (!rd_le32(&r, &e.n_xattrs))
                return -EBADMSG;

        /* Walk the list now so that the count, the bytes and the end of the
         * buffer agree: readers of a decoded entry can then trust it. */
        e.xattrs = r.p + r.off;
        e.xattrs_len = r.len - r.off;
        size_t cursor = 0;
        for (uint32_t i = 0; i < e.n_xattrs; i++) {
                struct cairn_xattr x;
                if (cairn_entry_xattr_next(&e, &cursor, &x) <= 0)
                        return -EBADMSG;
        }
        if (cursor != e.xattrs_len)
                return -EBADMSG;
        if (e.xattrs_len == 0)
                e.xattrs = NULL;

        *ret = e;
        return 0;
}

/* Tree builder */

struct builder_item {
        char *name;
        size_t name_len;
        uint8_t *entry;
        size_t entry_len;
};

struct cairn_tree_builder {
        struct builder_item *items;
        size_t n, allocated;
};

struct cairn_tree_builder *cairn_tree_builder_new(void) {
        return calloc(1, sizeof(struct cairn_tree_builder));
}

struct cairn_tree_builder *cairn_tree_builder_free(struct cairn_tree_builder *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n; i++) {
                free(b->items[i].name);
                free(b->items[i].entry);
        }
        free(b->items);
        free(b);
        return NULL;
}

int cairn_tree_builder_add(struct cairn_tree_builder *b, const char *name, size_t name_len,
                           const struct cairn_entry *e, const struct cairn_xattr *xa, size_t n_xa) {
        _cleanup_free_ uint8_t *entry = NULL;
        _cleanup_free_ char *copy = NULL;
        size_t entry_len;
        int r;

        if (!cairn_name_valid(name, name_len))
                return -EINVAL;
        if (b->n >= UINT32_MAX)
                return -EINVAL;

        r = cairn_entry_encode(e, xa, n_xa, &entry, &entry_len);
        if (r < 0)
                return r;

        copy = malloc(name_len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, name, name_len);

        if (b->n == b->allocated) {
                size_t a = b->allocated ? b->allocated * 2 : 64;
                struct builder_item *items = reallocarray(b->items, a, sizeof *items);
                if (!items)
                        return -ENOMEM;
                b->items = items;
                b->allocated = a;
        }

        b->items[b->n++] = (struct builder_item) {
                .name = TAKE_PTR(copy),
                .name_len = name_len,
                .entry = TAKE_PTR(entry),
                .entry_len = entry_len,
        };
        return 0;
}

size_t cairn_tree_builder_count(const struct cairn_tree_builder *b) {
        return b->n;
}

static int name_cmp(const void *a, size_t a_len, const void *b, size_t b_len) {
        int c = memcmp(a, b, MIN(a_len, b_len));
        if (c != 0)
                return c;
        return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

static int item_cmp(const void *a, const void *b) {
        const struct builder_item *x = a, *y = b;
        return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

int cairn_tree_builder_finish(struct cairn_tree_builder *b, uint8_t **ret, size_t *ret_len) {
        size_t total = BLOB_HEADER_SIZE;

        if (b->n > 0)
                qsort(b->items, b->n, sizeof *b->items, item_cmp);

        for (size_t i = 0; i < b->n; i++) {
                if (i > 0 && item_cmp(&b->items[i - 1], &b->items[i]) == 0)
                        return -EINVAL;
                if (b->items[i].entry_len > UINT32_MAX)
                        return -EINVAL;
                if (!size_add(&total, 2 + b->items[i].name_len) || !size_add(&total, 4) ||
                    !size_add(&total, b->items[i].entry_len))
                        return -EINVAL;
        }

        uint8_t *buf = malloc(total);
        if (!buf)
                return -ENOMEM;

        uint8_t *p = buf;
        memcpy(p, TREE_MAGIC, 4), p += 4;
        put_le32(p, (uint32_t) b->n), p += 4;
        for (size_t i = 0; i < b->n; i++) {
                const struct builder_item *it = &b->items[i];
                put_le16(p, (uint16_t) it->name_len), p += 2;
                memcpy(p, it->name, it->name_len), p += it->name_len;
                put_le32(p, (uint32_t) it->entry_len), p += 4;
                memcpy(p, it->entry, it->entry_len), p += it->entry_len;
        }

        *ret = buf;
        *ret_len = total;
        return 0;
}

/* Tree walking */

static int tree_record(struct reader *r, const uint8_t **ret_name, uint16_t *ret_name_len,
                       const uint8_t **ret_entry, uint32_t *ret_entry_len) {
        if (!rd_le16(r, ret_name_len) || !(*ret_name = rd_take(r, *ret_name_len)))
                return -EBADMSG;
        if (!rd_le32(r, ret_entry_len) || !(*ret_entry = rd_take(r, *ret_entry_len)))
                return -EBADMSG;
        if (!cairn_name_valid((const char *) *ret_name, *ret_name_len))
                return -EBADMSG;
        return 0;
}

/* The cursor is only an offset, so the order between neighbours cannot be
 * checked step by step: the first call checks the whole blob (records,
 * order, count, entries, no trailing bytes) before anything is returned,
 * so that no caller acts on half of a damaged directory. */
static int tree_validate(const uint8_t *blob, size_t len) {
        struct reader r = { .p = blob, .len = len };
        const uint8_t *magic, *prev = NULL;
        uint16_t prev_len = 0;
        uint32_t count;

        if (!blob || !(magic = rd_take(&r, 4)) || memcmp(magic, TREE_MAGIC, 4) != 0 || !rd_le32(&r, &count))
                return -EBADMSG;

        for (uint32_t i = 0; i < count; i++) {
                const uint8_t *name, *entry;
                uint16_t name_len;
                uint32_t entry_len;
                struct cairn_entry e;

                if (tree_record(&r, &name, &name_len, &entry, &entry_len) < 0)
                        return -EBADMSG;
                if (prev && name_cmp(prev, prev_len, name, name_len) >= 0)
                        return -EBADMSG;
                if (cairn_entry_decode(entry, entry_len, &e) < 0)
                        return -EBADMSG;
                prev = name;
                prev_len = name_len;
        }

        return r.off == len ? 0 : -EBADMSG;
}

int cairn_tree_next(const uint8_t *blob, size_t len, size_t *cursor,
                    const char **ret_name, size_t *ret_name_len,
                    const uint8_t **ret_entry, size_t *ret_entry_len) {
        struct reader r = { .p = blob, .len = len, .off = *cursor };
        const uint8_t *name, *entry;
        uint16_t name_len;
        uint32_t entry_len;
        int k;

        if (r.off == 0) {
                k = tree_validate(blob, len);
                if (k < 0)
                        return k;
                r.off = BLOB_HEADER_SIZE;
        }
        if (r.off == len)
                return 0;
        if (!blob || r.off < BLOB_HEADER_SIZE || r.off > len)
                return -EBADMSG;

        /* Bounds are checked again: the caller may hand in another buffer. */
        k = tree_record(&r, &name, &name_len, &entry, &entry_len);
        if (k < 0)
                return k;

        *ret_name = (const char *) name;
        *ret_name_len = name_len;
        *ret_entry = entry;
        *ret_entry_len = entry_len;
        *cursor = r.off;
        return 1;
}

/* Content blobs */

static bool chunk_valid(const struct cairn_content_chunk *c, uint64_t *total) {
        static const uint8_t zero[CAIRN_ID_SIZE];

        /* A zero-length chunk would share its end offset, the index key,
         * with its predecessor. */
        if (c->length == 0 || c->length > UINT64_MAX - *total)
                return false;
        if (c->flags & ~CAIRN_CHUNK_HOLE)
                return false;
        if ((c->flags & CAIRN_CHUNK_HOLE) && memcmp(c->id, zero, CAIRN_ID_SIZE) != 0)
                return false;
        *total += c->length;
        return true;
}

int cairn_content_encode(const struct cairn_content_chunk *chunks, size_t n, uint8_t **ret, size_t *ret_len) {
        uint64_t total = 0;

        if (n > UINT32_MAX || n > (SIZE_MAX - BLOB_HEADER_SIZE) / CONTENT_RECORD_SIZE || (n > 0 && !chunks))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!chunk_valid(&chunks[i], &total))
                        return -EINVAL;

        size_t len = BLOB_HEADER_SIZE + n * CONTENT_RECORD_SIZE;
        uint8_t *buf = malloc(len);
        if (!buf)
                return -ENOMEM;

        uint8_t *p = buf;
        memcpy(p, CONTENT_MAGIC, 4), p += 4;
        put_le32(p, (uint32_t) n), p += 4;
        for (size_t i = 0; i < n; i++) {
                memcpy(p, chunks[i].id, CAIRN_ID_SIZE), p += CAIRN_ID_SIZE;
                put_le64(p, chunks[i].length), p += 8;
                *p++ = chunks[i].flags;
        }

        *ret = buf;
        *ret_len = len;
        return 0;
}

int cairn_content_decode(const uint8_t *blob, size_t len, struct cairn_content_chunk **ret, size_t *ret_n) {
        _cleanup_free_ struct cairn_content_chunk *chunks = NULL;
        struct reader r = { .p = blob, .len = len };
        const uint8_t *magic;
        uint32_t count;
        uint64_t total = 0;

        if (!blob || !(magic = rd_take(&r, 4)) || memcmp(magic, CONTENT_MAGIC, 4) != 0 || !rd_le32(&r, &count))
                return -EBADMSG;
        /* Check the size before allocating what the count claims. */
        if ((len - BLOB_HEADER_SIZE) / CONTENT_RECORD_SIZE != count ||
            (len - BLOB_HEADER_SIZE) % CONTENT_RECORD_SIZE != 0)
                return -EBADMSG;

        if (count > 0) {
                chunks = calloc(count, sizeof *chunks);
                if (!chunks)
                        return -ENOMEM;
        }
        for (uint32_t i = 0; i < count; i++) {
                const uint8_t *id = rd_take(&r, CAIRN_ID_SIZE);
                if (!id || !rd_le64(&r, &chunks[i].length) || !rd_u8(&r, &chunks[i].flags))
                        return -EBADMSG;
                memcpy(chunks[i].id, id, CAIRN_ID_SIZE);
                if (!chunk_valid(&chunks[i], &total))
                        return -EBADMSG;
        }

        *ret = TAKE_PTR(chunks);
        *ret_n = count;
        return 0;
}
