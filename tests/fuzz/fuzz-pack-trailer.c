/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pack files (index/pack.c): cairn_pack_read_trailer_fd() on hostile
 * bytes, then every blob the trailer lists decoded (codec.c), as rebuild
 * and check do.
 *
 * The first byte picks the mode (low two bits):
 *   0  the rest is a whole pack file, unencrypted repository
 *   1  the rest is le16 N | N bytes of blob area | a trailer's plaintext:
 *      the target writes header, blob area, the trailer encoded with the
 *      real codec and a footer naming it, so the trailer authenticates and
 *      the fuzzer reaches the entry checks (which a mutated file of mode 0
 *      almost never does: the trailer's SHA-256 would not match)
 *   2, 3  as 0 and 1 with an encrypted codec (fixed keys)
 */
#include <stdbool.h>

#include "codec.h"
#include "fuzz.h"
#include "pack.h"
#include "util.h"

#define BLOB_DECODE_MAX (1u << 20)      /* larger blobs are not decoded: memory, not coverage */

static struct cairn_codec *plain_codec, *enc_codec;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        static const uint8_t enc_key[CAIRN_KEY_SIZE] = { 1, 2, 3, 4 }, id_key[CAIRN_KEY_SIZE] = { 5, 6, 7, 8 };

        fuzz_quiet();
        if (cairn_codec_new(NULL, NULL, 3, 0, &plain_codec) < 0 || cairn_codec_new(enc_key, id_key, 3, 0, &enc_codec) < 0)
                abort();
        return 0;
}

/* Mode 1/3: a pack whose trailer is @plain, encoded as the writer would. */
static uint8_t *build_pack(const struct cairn_codec *codec, const uint8_t *area, size_t area_len,
                           const uint8_t *plain, size_t plain_len, size_t *ret_len) {
        size_t bound = cairn_codec_bound(codec, plain_len), stored_len = 0, n;
        uint8_t tid[CAIRN_ID_SIZE], *file, *p;

        if (plain_len > CAIRN_BLOB_MAX)
                return NULL;
        file = malloc(CAIRN_PACK_HEADER_SIZE + area_len + bound + CAIRN_PACK_FOOTER_SIZE);
        if (!file)
                return NULL;
        memcpy(file, "CAIRNPK\x01", CAIRN_PACK_HEADER_SIZE);
        memcpy(file + CAIRN_PACK_HEADER_SIZE, area, area_len);
        p = file + CAIRN_PACK_HEADER_SIZE + area_len;
        cairn_codec_id(codec, plain, plain_len, tid);
        if (cairn_codec_encode(codec, tid, plain, plain_len, p, &stored_len) < 0) {
                free(file);
                return NULL;
        }
        p += stored_len;
        memcpy(p, tid, CAIRN_ID_SIZE);
        put_le32(p + CAIRN_ID_SIZE, (uint32_t) stored_len);
        put_le32(p + CAIRN_ID_SIZE + 4, (uint32_t) plain_len);
        memcpy(p + CAIRN_ID_SIZE + 8, "CAIRNTR\x01", 8);
        n = (size_t) (p + CAIRN_PACK_FOOTER_SIZE - file);
        *ret_len = n;
        return file;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *built = NULL;
        _cleanup_free_ struct cairn_pack_entry *entries = NULL;
        _cleanup_close_ int fd = -1;
        const struct cairn_codec *codec;
        const uint8_t *file;
        size_t file_len, n = 0;
        unsigned mode;
        int k;

        if (size < 1)
                return 0;
        mode = data[0] & 3;
        codec = mode & 2 ? enc_codec : plain_codec;
        data++, size--;

        if (mode & 1) {
                size_t area_len;

                if (size < 2)
                        return 0;
                area_len = MIN((size_t) get_le16(data), size - 2);
                built = build_pack(codec, data + 2, area_len, data + 2 + area_len, size - 2 - area_len, &file_len);
                if (!built)
                        return 0;
                file = built;
        } else {
                file = data;
                file_len = size;
        }

        fd = fuzz_memfd("pack", file, file_len);
        if (fd < 0)
                return 0;
        k = cairn_pack_read_trailer_fd(fd, codec, &entries, &n);
        if (k < 0) {
                FUZZ_CHECK(k == -EBADMSG || k == -ENOMEM);
                return 0;
        }

        /* What read_trailer promises: in order, inside the blob area, no overlap. */
        uint64_t prev_end = CAIRN_PACK_HEADER_SIZE;
        for (size_t i = 0; i < n; i++) {
                const struct cairn_pack_entry *e = &entries[i];
                _cleanup_free_ uint8_t *out = NULL;

                FUZZ_CHECK(e->type >= CAIRN_BLOB_DATA && e->type <= CAIRN_BLOB_CONTENT);
                FUZZ_CHECK(e->offset >= prev_end);
                FUZZ_CHECK(e->offset + e->stored_len <= file_len - CAIRN_PACK_FOOTER_SIZE);
                FUZZ_CHECK(e->stored_len >= cairn_codec_bound(codec, 0));
                FUZZ_CHECK(e->stored_len <= cairn_codec_bound(codec, e->raw_len));
                prev_end = e->offset + e->stored_len;

                if (e->raw_len > BLOB_DECODE_MAX)
                        continue;
                out = malloc(e->raw_len ? e->raw_len : 1);
                if (!out)
                        return 0;
                k = cairn_codec_decode(codec, e->id, file + e->offset, e->stored_len, out, e->raw_len);
                FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
                if (k == 0) {
                        /* Decoding verified it: the id must be the plaintext's. */
                        uint8_t id[CAIRN_ID_SIZE];
                        cairn_codec_id(codec, out, e->raw_len, id);
                        FUZZ_CHECK(memcmp(id, e->id, CAIRN_ID_SIZE) == 0);
                }
        }
        return 0;
}
