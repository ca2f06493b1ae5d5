/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Segmented blobs (codec.h): the segment table and segments on hostile
 * bytes, read whole (restore, check) and one segment at a time (random
 * reads through the mount).  16 KiB segments, so small inputs have many.
 *
 * The first byte picks the mode (low two bits; bit 0: encrypted, fixed
 * keys):
 *   0, 1  the rest is id(32) | raw length(le32) | a stored blob: decode it
 *         whole and, when it is in segments, by segments.  Invariant: when the whole blob decodes,
 *         every segment decodes alone to the same bytes (so check
 *         --read-data finds every damage a random read can meet).
 *   2, 3  the rest is a plaintext: encode it, then both ways of reading
 *         must give it back.
 */
#include <stdbool.h>

#include "codec.h"
#include "fuzz.h"
#include "util.h"

#define SEG (16u * 1024)
#define RAW_MAX (512u * 1024)

static struct cairn_codec *codecs[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        static const uint8_t enc_key[CAIRN_KEY_SIZE] = { 1, 2, 3, 4 }, id_key[CAIRN_KEY_SIZE] = { 5, 6, 7, 8 };

        fuzz_quiet();
        if (cairn_codec_new(NULL, NULL, 3, SEG, &codecs[0]) < 0 || cairn_codec_new(enc_key, id_key, 3, SEG, &codecs[1]) < 0)
                abort();
        return 0;
}

/* Decode @stored whole and by segments; 1 when the whole read worked. */
static int read_both(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE], const uint8_t *stored,
                     size_t stored_len, size_t raw_len, const uint8_t *expect) {
        unsigned n = cairn_codec_segments(c, raw_len);
        uint8_t *whole = malloc(MAX(raw_len, (size_t) 1)), *piece = malloc(SEG);
        bool whole_ok;

        FUZZ_CHECK(whole && piece);
        whole_ok = cairn_codec_decode(c, id, stored, stored_len, whole, raw_len) == 0;
        if (expect)
                FUZZ_CHECK(whole_ok && memcmp(whole, expect, raw_len) == 0);
        if (n > 0 && cairn_codec_is_segmented(c, raw_len, stored, stored_len)) {
                for (unsigned i = 0; i < n; i++) {
                        size_t off, len, seg_len = cairn_codec_segment_len(c, raw_len, i);
                        int k = cairn_codec_segment_locate(c, id, raw_len, stored_len, stored, i, &off, &len);

                        if (k == 0) {
                                FUZZ_CHECK(off >= cairn_codec_header_size(c, raw_len) && off + len <= stored_len);
                                k = cairn_codec_decode_segment(c, id, raw_len, stored, i, stored + off, len, piece);
                        }
                        if (whole_ok)
                                FUZZ_CHECK(k == 0 && memcmp(piece, whole + (size_t) i * SEG, seg_len) == 0);
                }
        }
        free(whole);
        free(piece);
        return whole_ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const struct cairn_codec *c;
        unsigned mode;

        if (size < 1)
                return 0;
        mode = data[0] & 3;
        c = codecs[mode & 1];
        data++, size--;

        if (mode < 2) {
                size_t raw_len;

                if (size < CAIRN_ID_SIZE + 4)
                        return 0;
                raw_len = get_le32(data + CAIRN_ID_SIZE);
                if (raw_len > RAW_MAX)
                        return 0;
                read_both(c, data, data + CAIRN_ID_SIZE + 4, size - CAIRN_ID_SIZE - 4, raw_len, NULL);
                return 0;
        }

        if (size > RAW_MAX)
                return 0;
        {
                uint8_t id[CAIRN_ID_SIZE], *stored = malloc(cairn_codec_bound(c, size));
                size_t stored_len = 0;

                FUZZ_CHECK(stored);
                cairn_codec_id(c, data, size, id);
                FUZZ_CHECK(cairn_codec_encode(c, id, data, size, stored, &stored_len) == 0);
                FUZZ_CHECK(stored_len <= cairn_codec_bound(c, size));
                read_both(c, id, stored, stored_len, size, data);
                free(stored);
        }
        return 0;
}
