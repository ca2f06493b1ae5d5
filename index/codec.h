/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The blob codec: how a plaintext blob becomes the bytes stored in a pack.
 *
 *   id     = SHA-256(plaintext)                  unencrypted repository
 *          = HMAC-SHA256(id key, plaintext)       encrypted repository
 *   body   = 0x00 || plaintext                   when zstd saves < 3 %
 *          = 0x01 || zstd(plaintext, level)       otherwise
 *   stored = body                                 unencrypted
 *          = nonce || AES-256-GCM(body, aad = id) || tag    encrypted
 *
 * Segmented blobs: with a segment size S (the repository's
 * `segment-size`, 0 = never), a blob of more than S bytes is cut into
 * n = ceil(len / S) segments of S bytes (the last one shorter), each
 * compressed and authenticated on its own, so that a reader can fetch and
 * check one segment instead of the whole blob:
 *
 *   stored = C5 'S' 'G' 01 | nonce(12) | len(le32)[n] | seg[0] .. seg[n-1]       encrypted
 *            seg[i] = AES-256-GCM(body[i], nonce + i, aad = id | le32 i | le32 n) | tag
 *   stored = C5 'S' 'G' 01 | { len(le32) | check(16) }[n] | body[0] .. body[n-1] unencrypted
 *            check[i] = SHA-256(id | le32 i | le32 n | plaintext[i])[0..16)
 *
 * where body[i] is the body above of segment i's plaintext, len[i] the
 * size of seg[i] (body[i]) and "nonce + i" adds i to the nonce's last four
 * bytes as a little-endian counter.  Blobs of at most S bytes keep the
 * plain form, byte for byte; so do larger ones whose segments compress
 * below 1/8 (there whole frames are much smaller, and cheap to read).  The
 * four magic bytes tell the forms apart: a whole blob never starts with
 * them (its body marker, or a nonce the writer redraws).
 *
 * Decoding checks integrity every time: the GCM tag (whose aad binds the
 * blob to its id) when encrypted, the SHA-256 of the result otherwise
 * (and each segment's check).  A mismatch is -EBADMSG, never wrong bytes.
 *
 * A codec is immutable after creation and may be used from many threads at
 * once (zstd contexts are kept per thread).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

enum cairn_blob_type {
        CAIRN_BLOB_DATA = 1,     /* a chunk of file content */
        CAIRN_BLOB_TREE = 2,     /* one directory (tree.h) */
        CAIRN_BLOB_CONTENT = 3,  /* a file's chunk list (tree.h) */
};

/* Compression falls back to raw when it saves less than this (per mille). */
#define CAIRN_CODEC_MIN_SAVING_PERMILLE 30

/* Largest blob the codec accepts (raw bytes): bounds every allocation a
 * corrupt length could ask for. */
#define CAIRN_BLOB_MAX (256u * 1024 * 1024)

struct cairn_codec;

/* The segment size new repositories get, and the range a config may ask
 * for (a power of two; 0 = blobs are never segmented). */
#define CAIRN_SEGMENT_DEFAULT (64u * 1024)
#define CAIRN_SEGMENT_MIN (16u * 1024)
#define CAIRN_SEGMENT_MAX (8u * 1024 * 1024)
bool cairn_codec_segment_size_valid(uint32_t size);

/* @enc_key and @id_key: NULL for an unencrypted repository (both or
 * neither).  @zstd_level: 1..19, @segment_size: 0 or valid (above);
 * -EINVAL otherwise.  The keys are copied. */
int cairn_codec_new(const uint8_t *enc_key, const uint8_t *id_key, int zstd_level, uint32_t segment_size,
                    struct cairn_codec **ret);
struct cairn_codec *cairn_codec_free(struct cairn_codec *c);   /* accepts NULL */
static inline void cairn_codec_freep(struct cairn_codec **c) {
        cairn_codec_free(*c);
}

bool cairn_codec_encrypted(const struct cairn_codec *c);

/* The id of @data (see above). */
void cairn_codec_id(const struct cairn_codec *c, const void *data, size_t len, uint8_t ret_id[CAIRN_ID_SIZE]);

/* Upper bound of the stored size of a blob of @raw_len bytes. */
size_t cairn_codec_bound(const struct cairn_codec *c, size_t raw_len);

/* Encode @raw (whose id is @id) into @out, which has room for
 * cairn_codec_bound(raw_len) bytes; *ret_stored_len receives the size used.
 * 0, -EFBIG (raw_len > CAIRN_BLOB_MAX), -ENOMEM, -EIO. */
int cairn_codec_encode(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE],
                       const void *raw, size_t raw_len, void *out, size_t *ret_stored_len);

/* Decode @stored into @out, which must have exactly @raw_len bytes.
 * -EBADMSG when the blob is damaged, was encoded under another key, does
 * not decompress to exactly @raw_len bytes or does not hash to @id;
 * -EFBIG when raw_len > CAIRN_BLOB_MAX; -ENOMEM. */
int cairn_codec_decode(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE],
                       const void *stored, size_t stored_len, void *out, size_t raw_len);

/* ---- reading one segment ----
 * A blob of @raw_len bytes has cairn_codec_segments() segments (0: it is
 * not segmented, read it whole).  Its first cairn_codec_header_size()
 * stored bytes say whether it is segmented after all
 * (cairn_codec_is_segmented) and where each segment is; with them, locate segment @i
 * (its offset within the stored blob and its stored length) and decode
 * it into exactly cairn_codec_segment_len() bytes.  Locating checks the
 * whole header against @stored_len: -EBADMSG when it does not add up. */
uint32_t cairn_codec_segment_size(const struct cairn_codec *c);
unsigned cairn_codec_segments(const struct cairn_codec *c, size_t raw_len);
size_t cairn_codec_header_size(const struct cairn_codec *c, size_t raw_len);
/* Whether a blob of @raw_len bytes whose first @len stored bytes are
 * @stored (at least the header size, or all of a shorter blob) is stored
 * in segments; if not, read it whole. */
bool cairn_codec_is_segmented(const struct cairn_codec *c, size_t raw_len, const void *stored, size_t len);
size_t cairn_codec_segment_len(const struct cairn_codec *c, size_t raw_len, unsigned i);
int cairn_codec_segment_locate(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE], size_t raw_len,
                               size_t stored_len, const void *header, unsigned i,
                               size_t *ret_offset, size_t *ret_len);
/* @seg: the @seg_len stored bytes located above; @out: room for
 * cairn_codec_segment_len(raw_len, i) bytes.  -EBADMSG when damaged
 * (then @out is zeroed), -ENOMEM. */
int cairn_codec_decode_segment(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE], size_t raw_len,
                               const void *header, unsigned i, const void *seg, size_t seg_len, void *out);
