/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tree.h"
#include "util.h"

static uint64_t rng_state = 0x5eed;

static uint64_t rng(void) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void fill_random(void *buf, size_t n) {
        uint8_t *p = buf;
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) rng();
}

/* A copy of exactly @n bytes on the heap, so that the sanitizer build
 * catches any read past the end. */
static uint8_t *dup_exact(const uint8_t *p, size_t n) {
        uint8_t *q = malloc(n ? n : 1);
        if (!q)
                BAIL_OUT("out of memory");
        if (n)
                memcpy(q, p, n);
        return q;
}

static const uint8_t xa_val0[] = { 0x00, 0x01, 0xff, 0x00, 0x7f };
static uint8_t xa_val2[300];

static struct cairn_xattr test_xattrs[3] = {
        { .name = "user.binary", .name_len = 11, .value = xa_val0, .value_len = sizeof xa_val0 },
        { .name = "security.empty", .name_len = 14, .value = "", .value_len = 0 },
        { .name = "trusted.big", .name_len = 11, .value = xa_val2, .value_len = sizeof xa_val2 },
};

static void full_entry(struct cairn_entry *e) {
        static const char target[] = "../../blobs/0123456789abcdef";

        *e = (struct cairn_entry) {
                .type = CAIRN_ENTRY_SYMLINK,
                .mode = 0120000 | 04000 | 01000 | 0777,
                .uid = 4000000001u,
                .gid = 65534,
                .size = (uint64_t) 1 << 40 | 7,
                .mtime_ns = -1234567890123456789LL,
                .ctime_ns = 1763600400123456789LL,
                .atime_ns = INT64_MIN + 1,
                .rdev = 0x0000000800000001ULL,
                .ino = 0xfedcba9876543210ULL,
                .nlink = 3,
                .hardlink_group = 0x1122334455667788ULL,
                .target = target,
                .target_len = sizeof target - 1,
        };
        fill_random(e->ref, sizeof e->ref);
}

static void test_entry_roundtrip(void) {
        struct cairn_entry e, d;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        fill_random(xa_val2, sizeof xa_val2);
        full_entry(&e);

        r = cairn_entry_encode(&e, test_xattrs, 3, &buf, &len);
        is(r, 0, "entry with every field set encodes");
        if (r < 0)
                return;

        r = cairn_entry_decode(buf, len, &d);
        is(r, 0, "and decodes");
        ok(d.type == e.type && d.mode == e.mode && d.uid == e.uid && d.gid == e.gid, "type, mode, uid, gid survive");
        ok(d.size == e.size && d.rdev == e.rdev && d.ino == e.ino && d.nlink == e.nlink, "size, rdev, ino, nlink survive");
        is(d.mtime_ns, e.mtime_ns, "negative mtime survives");
        is(d.ctime_ns, e.ctime_ns, "ctime survives");
        is(d.atime_ns, e.atime_ns, "atime near INT64_MIN survives");
        ok(d.hardlink_group == e.hardlink_group, "hardlink group survives");
        ok(memcmp(d.ref, e.ref, CAIRN_ID_SIZE) == 0, "ref survives");
        ok(d.target_len == e.target_len && d.target && memcmp(d.target, e.target, e.target_len) == 0,
           "symlink target survives");
        ok(d.target >= (const char *) buf && d.target + d.target_len <= (const char *) buf + len,
           "target borrows from the buffer");
        is(d.n_xattrs, 3, "xattr count survives");

        size_t cursor = 0;
        bool xa_ok = true;
        for (size_t i = 0; i < 3; i++) {
                struct cairn_xattr x;
                r = cairn_entry_xattr_next(&d, &cursor, &x);
                if (r != 1 || x.name_len != test_xattrs[i].name_len ||
                    memcmp(x.name, test_xattrs[i].name, x.name_len) != 0 ||
                    x.value_len != test_xattrs[i].value_len ||
                    (x.value_len && memcmp(x.value, test_xattrs[i].value, x.value_len) != 0)) {
                        diag("xattr %zu differs (r=%d)", i, r);
                        xa_ok = false;
                }
        }
        ok(xa_ok, "three xattrs with binary and empty values come back in order");
        struct cairn_xattr x;
        is(cairn_entry_xattr_next(&d, &cursor, &x), 0, "then the xattr walk ends");
        is(cairn_entry_xattr_next(&d, &cursor, &x), 0, "and stays ended");
        cursor = d.xattrs_len + 1;
        is(cairn_entry_xattr_next(&d, &cursor, &x), -EBADMSG, "a cursor past the list is -EBADMSG");

        /* Every truncation of a valid encoding must be refused. */
        size_t bad = 0;
        for (size_t n = 0; n < len; n++) {
                uint8_t *t = dup_exact(buf, n);
                r = cairn_entry_decode(t, n, &d);
                if (r != -EBADMSG) {
                        if (bad++ < 5)
                                diag("truncation to %zu of %zu bytes: r=%d", n, len, r);
                }
                free(t);
        }
        is(bad, 0, "all %zu truncations of the entry are -EBADMSG", len);

        uint8_t *longer = malloc(len + 1);
        memcpy(longer, buf, len);
        longer[len] = 0;
        is(cairn_entry_decode(longer, len + 1, &d), -EBADMSG, "a trailing byte is -EBADMSG");
        free(longer);

        uint8_t *m = dup_exact(buf, len);
        m[0] = 2;
        is(cairn_entry_decode(m, len, &d), -EBADMSG, "unknown version is -EBADMSG");
        m[0] = 1;
        m[1] = 0;
        is(cairn_entry_decode(m, len, &d), -EBADMSG, "type 0 is -EBADMSG");
        m[1] = 8;
        is(cairn_entry_decode(m, len, &d), -EBADMSG, "type 8 is -EBADMSG");
        m[1] = CAIRN_ENTRY_SYMLINK;
        is(cairn_entry_decode(m, len, &d), 0, "restored copy decodes again");

        /* xattr count sits after the fixed part and the target. */
        size_t count_off = 110 + e.target_len;
        is(get_le32(m + count_off), 3, "xattr count is where the format says");
        put_le32(m + count_off, 4);
        is(cairn_entry_decode(m, len, &d), -EBADMSG, "an xattr count larger than the list is -EBADMSG");
        put_le32(m + count_off, 2);
        is(cairn_entry_decode(m, len, &d), -EBADMSG, "an xattr count smaller than the list is -EBADMSG");
        put_le32(m + count_off, 0xffffffffu);
        is(cairn_entry_decode(m, len, &d), -EBADMSG, "a huge xattr count is -EBADMSG");
        put_le32(m + count_off, 3);
        m[count_off + 4 + 2 + 4] = 0;   /* "user\0binary" */
        is(cairn_entry_decode(m, len, &d), -EBADMSG, "an xattr name with a NUL is -EBADMSG");
        free(m);
}

static void test_entry_minimal(void) {
        struct cairn_entry e = { .type = CAIRN_ENTRY_FILE, .mode = 0100644 }, d;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;

        is(cairn_entry_encode(&e, NULL, 0, &buf, &len), 0, "entry without target or xattrs encodes");
        is(len, 114, "to the fixed size plus the two counts");
        is(cairn_entry_decode(buf, len, &d), 0, "and decodes");
        ok(d.target_len == 0 && d.n_xattrs == 0 && d.xattrs_len == 0, "with no target and no xattrs");
        size_t cursor = 0;
        struct cairn_xattr x;
        is(cairn_entry_xattr_next(&d, &cursor, &x), 0, "xattr walk of an entry without xattrs ends at once");

        uint8_t *tmp;
        size_t tmp_len;
        e.type = 0;
        is(cairn_entry_encode(&e, NULL, 0, &tmp, &tmp_len), -EINVAL, "encode refuses type 0");
        e.type = 8;
        is(cairn_entry_encode(&e, NULL, 0, &tmp, &tmp_len), -EINVAL, "encode refuses type 8");
        e.type = CAIRN_ENTRY_FILE;
        struct cairn_xattr empty_name = { .name = "", .name_len = 0, .value = "v", .value_len = 1 };
        is(cairn_entry_encode(&e, &empty_name, 1, &tmp, &tmp_len), -EINVAL, "encode refuses an empty xattr name");
        char long_name[300];
        memset(long_name, 'x', sizeof long_name);
        struct cairn_xattr too_long = { .name = long_name, .name_len = 256, .value = "v", .value_len = 1 };
        is(cairn_entry_encode(&e, &too_long, 1, &tmp, &tmp_len), -EINVAL, "encode refuses a 256-byte xattr name");
        is(cairn_entry_decode(NULL, 0, &d), -EBADMSG, "decode of nothing is -EBADMSG");
}

static void test_names(void) {
        char n255[255], n256[256];
        memset(n255, 'a', sizeof n255);
        memset(n256, 'a', sizeof n256);

        ok(cairn_name_valid("a", 1), "\"a\" is a valid name");
        ok(cairn_name_valid("...", 3), "\"...\" is a valid name");
        ok(cairn_name_valid(".a", 2), "\".a\" is a valid name");
        ok(cairn_name_valid("\xff\x01", 2), "binary bytes are valid in names");
        ok(cairn_name_valid(n255, 255), "a 255-byte name is valid");
        ok(!cairn_name_valid("", 0), "\"\" is invalid");
        ok(!cairn_name_valid(".", 1), "\".\" is invalid");
        ok(!cairn_name_valid("..", 2), "\"..\" is invalid");
        ok(!cairn_name_valid("a/b", 3), "\"a/b\" is invalid");
        ok(!cairn_name_valid("a\0b", 3), "a name with NUL is invalid");
        ok(!cairn_name_valid(n256, 256), "a 256-byte name is invalid");
        ok(!cairn_name_valid(NULL, 1), "NULL is invalid");
}

static int walk_names(const uint8_t *blob, size_t len, const char *const *expect, size_t n, const char *what) {
        size_t cursor = 0, i = 0;
        const char *name;
        const uint8_t *entry;
        size_t name_len, entry_len;
        bool good = true;
        int r;

        while ((r = cairn_tree_next(blob, len, &cursor, &name, &name_len, &entry, &entry_len)) > 0) {
                struct cairn_entry e;
                if (i >= n || name_len != strlen(expect[i]) || memcmp(name, expect[i], name_len) != 0) {
                        char hex[2 * CAIRN_NAME_MAX + 1];
                        diag("%s: entry %zu is %s (hex)", what, i,
                             hex_encode((const uint8_t *) name, MIN(name_len, (size_t) CAIRN_NAME_MAX), hex));
                        good = false;
                } else if (cairn_entry_decode(entry, entry_len, &e) < 0 || e.size != strlen(expect[i]) * 1000 ||
                           e.uid != (uint32_t) (uint8_t) expect[i][0]) {
                        diag("%s: entry %zu has the wrong metadata", what, i);
                        good = false;
                }
                i++;
        }
        ok(r == 0 && good && i == n, "%s: walks back %zu entries in sorted order (r=%d, got %zu)", what, n, r, i);
        return r;
}

static void test_builder(void) {
        /* memcmp order, shorter first on a common prefix, bytes unsigned. */
        static const char *const sorted[] = {
                "-", "A", "Z", "a", "a\x01", "a-b", "ab", "abc", "b", "z", "\x7f", "\x80", "\xff", "\xff\xff",
        };
        static const size_t order[] = { 12, 3, 8, 0, 13, 5, 1, 10, 7, 2, 11, 4, 9, 6 };
        struct cairn_tree_builder *b;
        _cleanup_free_ uint8_t *blob = NULL;
        size_t len;
        int r;

        b = cairn_tree_builder_new();
        ok(b, "builder allocates");
        if (!b)
                return;

        for (size_t k = 0; k < ELEMENTSOF(order); k++) {
                const char *nm = sorted[order[k]];
                struct cairn_entry e = {
                        .type = CAIRN_ENTRY_FILE, .mode = 0100600,
                        .size = strlen(nm) * 1000, .uid = (uint8_t) nm[0],
                };
                r = cairn_tree_builder_add(b, nm, strlen(nm), &e, k == 0 ? test_xattrs : NULL, k == 0 ? 3 : 0);
                if (r < 0)
                        diag("add \"%s\": %d", nm, r);
        }
        is(cairn_tree_builder_count(b), ELEMENTSOF(sorted), "builder counts what was added");

        struct cairn_entry f = { .type = CAIRN_ENTRY_FILE, .mode = 0100644 };
        char n256[256];
        memset(n256, 'n', sizeof n256);
        is(cairn_tree_builder_add(b, "", 0, &f, NULL, 0), -EINVAL, "builder refuses \"\"");
        is(cairn_tree_builder_add(b, ".", 1, &f, NULL, 0), -EINVAL, "builder refuses \".\"");
        is(cairn_tree_builder_add(b, "..", 2, &f, NULL, 0), -EINVAL, "builder refuses \"..\"");
        is(cairn_tree_builder_add(b, "a/b", 3, &f, NULL, 0), -EINVAL, "builder refuses \"a/b\"");
        is(cairn_tree_builder_add(b, n256, 256, &f, NULL, 0), -EINVAL, "builder refuses a 256-byte name");
        is(cairn_tree_builder_count(b), ELEMENTSOF(sorted), "refused names are not counted");

        r = cairn_tree_builder_finish(b, &blob, &len);
        is(r, 0, "builder finishes");
        if (r == 0) {
                ok(len >= 8 && memcmp(blob, "CTRE", 4) == 0 && get_le32(blob + 4) == ELEMENTSOF(sorted),
                   "blob starts with magic and count");
                walk_names(blob, len, sorted, ELEMENTSOF(sorted), "built tree");

                size_t cursor = 0, name_len, entry_len;
                const char *name;
                const uint8_t *entry;
                while (cairn_tree_next(blob, len, &cursor, &name, &name_len, &entry, &entry_len) > 0)
                        ;
                is(cairn_tree_next(blob, len, &cursor, &name, &name_len, &entry, &entry_len), 0,
                   "tree_next stays at the end");

                /* Every truncation must end the walk in -EBADMSG, not in a
                 * clean end after fewer entries. */
                size_t bad = 0;
                for (size_t n = 0; n < len; n++) {
                        uint8_t *t = dup_exact(blob, n);
                        cursor = 0;
                        while ((r = cairn_tree_next(t, n, &cursor, &name, &name_len, &entry, &entry_len)) > 0)
                                ;
                        if (r != -EBADMSG && bad++ < 5)
                                diag("truncation to %zu of %zu bytes: r=%d", n, len, r);
                        free(t);
                }
                is(bad, 0, "all %zu truncations of the tree blob are -EBADMSG", len);

                uint8_t *m = dup_exact(blob, len);
                m[0] = 'X';
                cursor = 0;
                is(cairn_tree_next(m, len, &cursor, &name, &name_len, &entry, &entry_len), -EBADMSG,
                   "bad magic is -EBADMSG");
                m[0] = 'C';
                put_le32(m + 4, ELEMENTSOF(sorted) - 1);
                cursor = 0;
                is(cairn_tree_next(m, len, &cursor, &name, &name_len, &entry, &entry_len), -EBADMSG,
                   "trailing records beyond the count are -EBADMSG");
                free(m);
        }

        /* A duplicate only shows once sorted. */
        struct cairn_entry g = { .type = CAIRN_ENTRY_DIR, .mode = 040755 };
        is(cairn_tree_builder_add(b, "ab", 2, &g, NULL, 0), 0, "adding a duplicate name is accepted at first");
        uint8_t *dup_blob = NULL;
        size_t dup_len;
        is(cairn_tree_builder_finish(b, &dup_blob, &dup_len), -EINVAL, "finish refuses the duplicate");
        free(dup_blob);
        cairn_tree_builder_free(b);

        b = cairn_tree_builder_new();
        uint8_t *empty = NULL;
        size_t empty_len;
        is(cairn_tree_builder_finish(b, &empty, &empty_len), 0, "an empty tree finishes");
        if (empty) {
                size_t cursor = 0, name_len, entry_len;
                const char *name;
                const uint8_t *entry;
                is(empty_len, 8, "to a bare header");
                is(cairn_tree_next(empty, empty_len, &cursor, &name, &name_len, &entry, &entry_len), 0,
                   "and walks to nothing");
        }
        free(empty);
        cairn_tree_builder_free(b);
}

/* Hand-made blobs: the builder never writes these, a damaged pack might. */
static size_t put_record(uint8_t *p, const char *name, const uint8_t *entry, size_t entry_len) {
        size_t n = strlen(name);
        put_le16(p, (uint16_t) n);
        memcpy(p + 2, name, n);
        put_le32(p + 2 + n, (uint32_t) entry_len);
        memcpy(p + 6 + n, entry, entry_len);
        return 6 + n + entry_len;
}

static void test_tree_order(void) {
        struct cairn_entry e = { .type = CAIRN_ENTRY_FILE, .mode = 0100644 };
        _cleanup_free_ uint8_t *entry = NULL;
        size_t entry_len, len, cursor, name_len, el;
        const char *name;
        const uint8_t *ent;
        uint8_t blob[1024];

        if (cairn_entry_encode(&e, NULL, 0, &entry, &entry_len) < 0)
                BAIL_OUT("encode failed");

        static const struct {
                const char *a, *b;
                const char *what;
        } cases[] = {
                { "b", "a", "names out of order" },
                { "ab", "a", "longer name before its prefix" },
                { "a", "a", "duplicate names" },
                { "a", ".", "name \".\"" },
                { "a", "x/y", "name with '/'" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                memcpy(blob, "CTRE", 4);
                put_le32(blob + 4, 2);
                len = 8;
                len += put_record(blob + len, cases[i].a, entry, entry_len);
                len += put_record(blob + len, cases[i].b, entry, entry_len);
                uint8_t *t = dup_exact(blob, len);
                int r;
                cursor = 0;
                while ((r = cairn_tree_next(t, len, &cursor, &name, &name_len, &ent, &el)) > 0)
                        ;
                is(r, -EBADMSG, "tree blob with %s is -EBADMSG", cases[i].what);
                free(t);
        }

        /* In order it walks: the failures above are about order only. */
        memcpy(blob, "CTRE", 4);
        put_le32(blob + 4, 2);
        len = 8;
        len += put_record(blob + len, "a", entry, entry_len);
        len += put_record(blob + len, "ab", entry, entry_len);
        static const char *const expect[] = { "a", "ab" };
        cursor = 0;
        size_t count = 0;
        int r;
        while ((r = cairn_tree_next(blob, len, &cursor, &name, &name_len, &ent, &el)) > 0)
                count++;
        ok(r == 0 && count == 2, "hand-made blob in order walks (%s, %s)", expect[0], expect[1]);

        /* A damaged entry inside a well-formed blob. */
        memcpy(blob, "CTRE", 4);
        put_le32(blob + 4, 1);
        len = 8 + put_record(blob + 8, "a", entry, entry_len);
        blob[8 + 2 + 1 + 4] = 9;   /* version */
        cursor = 0;
        is(cairn_tree_next(blob, len, &cursor, &name, &name_len, &ent, &el), -EBADMSG,
           "tree blob holding an entry of unknown version is -EBADMSG");
}

static void test_content(void) {
        struct cairn_content_chunk chunks[64], *back = NULL;
        _cleanup_free_ uint8_t *blob = NULL;
        size_t len, n_back;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(chunks); i++) {
                memset(&chunks[i], 0, sizeof chunks[i]);
                chunks[i].length = 1 + rng() % (8 << 20);
                if (i % 5 == 3)
                        chunks[i].flags = CAIRN_CHUNK_HOLE;
                else
                        fill_random(chunks[i].id, CAIRN_ID_SIZE);
        }

        r = cairn_content_encode(chunks, ELEMENTSOF(chunks), &blob, &len);
        is(r, 0, "content with holes encodes");
        if (r < 0)
                return;
        is(len, 8 + ELEMENTSOF(chunks) * 41, "to header plus 41 bytes a chunk");
        r = cairn_content_decode(blob, len, &back, &n_back);
        is(r, 0, "and decodes");
        ok(r == 0 && n_back == ELEMENTSOF(chunks) && memcmp(back, chunks, sizeof chunks) == 0,
           "chunk list survives, holes included");
        free(back);

        size_t bad = 0;
        for (size_t n = 0; n < len; n++) {
                uint8_t *t = dup_exact(blob, n);
                back = NULL;
                r = cairn_content_decode(t, n, &back, &n_back);
                if (r != -EBADMSG && bad++ < 5)
                        diag("truncation to %zu: r=%d", n, r);
                if (r >= 0)
                        free(back);
                free(t);
        }
        is(bad, 0, "all %zu truncations of the content blob are -EBADMSG", len);

        uint8_t *m = dup_exact(blob, len);
        size_t rec3 = 8 + 3 * 41;
        m[rec3] = 1;
        is(cairn_content_decode(m, len, &back, &n_back), -EBADMSG, "a hole with a non-zero id is -EBADMSG");
        m[rec3] = 0;
        m[rec3 + 40] = 3;
        is(cairn_content_decode(m, len, &back, &n_back), -EBADMSG, "unknown chunk flags are -EBADMSG");
        m[rec3 + 40] = 1;
        put_le64(m + rec3 + 32, 0);
        is(cairn_content_decode(m, len, &back, &n_back), -EBADMSG, "a zero-length chunk is -EBADMSG");
        put_le64(m + rec3 + 32, chunks[3].length);
        put_le32(m + 4, 0xffffffffu);
        is(cairn_content_decode(m, len, &back, &n_back), -EBADMSG, "a count the blob cannot hold is -EBADMSG");
        free(m);

        uint8_t *tmp;
        size_t tmp_len;
        struct cairn_content_chunk c = { .length = 0 };
        is(cairn_content_encode(&c, 1, &tmp, &tmp_len), -EINVAL, "encode refuses a zero-length chunk");
        c = (struct cairn_content_chunk) { .length = 1, .flags = CAIRN_CHUNK_HOLE, .id = { 1 } };
        is(cairn_content_encode(&c, 1, &tmp, &tmp_len), -EINVAL, "encode refuses a hole with an id");
        struct cairn_content_chunk big[2] = { { .length = UINT64_MAX }, { .length = 1 } };
        is(cairn_content_encode(big, 2, &tmp, &tmp_len), -EINVAL, "encode refuses a total past 2^64");

        r = cairn_content_encode(NULL, 0, &tmp, &tmp_len);
        is(r, 0, "an empty chunk list encodes");
        if (r == 0) {
                back = NULL;
                ok(cairn_content_decode(tmp, tmp_len, &back, &n_back) == 0 && n_back == 0,
                   "and decodes to no chunks");
                free(back);
                free(tmp);
        }
}

int main(void) {
        test_entry_roundtrip();
        test_entry_minimal();
        test_names();
        test_builder();
        test_tree_order();
        test_content();
        return tap_done();
}
