/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tree and content blobs (index/tree.c) on hostile bytes: the input is
 * walked as a tree blob (cairn_tree_next, every entry decoded and its
 * xattrs walked), decoded as one entry, and decoded as a content blob.
 * Whatever decodes must encode back to exactly the input: the index and
 * the mount serve decoded entries, so a decoder that accepts something
 * the encoder would write differently lets two stored forms mean one
 * thing (or one form two things).
 */
#include <stdbool.h>

#include "fuzz.h"
#include "tree.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

/* The xattrs of a decoded entry as an array (borrowing from it). */
static int entry_xattrs(const struct cairn_entry *e, struct cairn_xattr **ret, size_t *ret_n) {
        struct cairn_xattr *xa = NULL, x;
        size_t cursor = 0, n = 0;
        int k;

        if (e->n_xattrs > 0) {
                xa = calloc(e->n_xattrs, sizeof *xa);
                if (!xa)
                        return -ENOMEM;
        }
        while ((k = cairn_entry_xattr_next(e, &cursor, &x)) > 0) {
                /* decode() counted them: the walk must find exactly n_xattrs. */
                FUZZ_CHECK(n < e->n_xattrs);
                FUZZ_CHECK(x.name_len > 0 && x.name_len <= 255);
                xa[n++] = x;
        }
        FUZZ_CHECK(k == 0);
        FUZZ_CHECK(n == e->n_xattrs);
        *ret = xa;
        *ret_n = n;
        return 0;
}

static void check_entry_roundtrip(const uint8_t *buf, size_t len, const struct cairn_entry *e) {
        _cleanup_free_ struct cairn_xattr *xa = NULL;
        _cleanup_free_ uint8_t *enc = NULL;
        size_t n_xa = 0, enc_len = 0;
        int k;

        if (entry_xattrs(e, &xa, &n_xa) < 0)
                return;
        k = cairn_entry_encode(e, xa, n_xa, &enc, &enc_len);
        if (k == -ENOMEM)
                return;
        FUZZ_CHECK(k == 0);
        FUZZ_CHECK(enc_len == len && memcmp(enc, buf, len) == 0);
}

static void fuzz_tree(const uint8_t *data, size_t size) {
        struct cairn_tree_builder *b = cairn_tree_builder_new();
        const char *name;
        const uint8_t *entry;
        size_t cursor = 0, name_len, entry_len, count = 0;
        bool ok = true;
        int k;

        if (!b)
                return;
        while ((k = cairn_tree_next(data, size, &cursor, &name, &name_len, &entry, &entry_len)) > 0) {
                _cleanup_free_ struct cairn_xattr *xa = NULL;
                struct cairn_entry e;
                size_t n_xa = 0;

                FUZZ_CHECK(cairn_name_valid(name, name_len));
                FUZZ_CHECK((const uint8_t *) name >= data && (const uint8_t *) name + name_len <= data + size);
                FUZZ_CHECK(entry >= data && entry + entry_len <= data + size);
                /* The first call validated the whole blob, entries included. */
                FUZZ_CHECK(cairn_entry_decode(entry, entry_len, &e) == 0);
                check_entry_roundtrip(entry, entry_len, &e);
                if (entry_xattrs(&e, &xa, &n_xa) < 0 ||
                    cairn_tree_builder_add(b, name, name_len, &e, xa, n_xa) < 0)
                        ok = false;
                count++;
        }
        FUZZ_CHECK(k == 0 || k == -EBADMSG);
        if (k == 0 && ok) {
                _cleanup_free_ uint8_t *blob = NULL;
                size_t blob_len = 0;

                FUZZ_CHECK(size >= 8 && get_le32(data + 4) == count);
                k = cairn_tree_builder_finish(b, &blob, &blob_len);
                if (k != -ENOMEM) {
                        FUZZ_CHECK(k == 0);
                        FUZZ_CHECK(blob_len == size && memcmp(blob, data, size) == 0);
                }
        }
        cairn_tree_builder_free(b);
}

static void fuzz_entry(const uint8_t *data, size_t size) {
        struct cairn_entry e;

        if (cairn_entry_decode(data, size, &e) < 0)
                return;
        FUZZ_CHECK(e.type >= CAIRN_ENTRY_FILE && e.type <= CAIRN_ENTRY_SOCK);
        if (e.target_len > 0)
                FUZZ_CHECK((const uint8_t *) e.target >= data && (const uint8_t *) e.target + e.target_len <= data + size);
        check_entry_roundtrip(data, size, &e);
}

static void fuzz_content(const uint8_t *data, size_t size) {
        _cleanup_free_ struct cairn_content_chunk *chunks = NULL;
        _cleanup_free_ uint8_t *enc = NULL;
        size_t n = 0, enc_len = 0;
        int k;

        k = cairn_content_decode(data, size, &chunks, &n);
        FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        if (k < 0)
                return;
        k = cairn_content_encode(chunks, n, &enc, &enc_len);
        if (k == -ENOMEM)
                return;
        FUZZ_CHECK(k == 0);
        FUZZ_CHECK(enc_len == size && memcmp(enc, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_tree(data, size);
        fuzz_entry(data, size);
        fuzz_content(data, size);
        return 0;
}
