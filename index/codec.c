/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "codec.h"
#include "log.h"
#include "util.h"

#define BODY_RAW 0x00
#define BODY_ZSTD 0x01

/* Scratch a thread keeps between calls: blobs up to the chunker's maximum
 * (8 MiB) reuse it, a rare huge one does not pin its size per thread. */
#define SCRATCH_KEEP_MAX (16u * 1024 * 1024)

#define SEG_CHECK_SIZE 16   /* unencrypted: truncated SHA-256 per segment */
#define SEG_MAGIC_SIZE 4    /* the first bytes of a segmented blob (below) */
#define SEG_OVERHEAD 21     /* per segment: len(4) + body marker(1) + tag or check(16) */

/* The first bytes of a segmented blob.  A whole blob never starts so: its
 * body marker is 0x00 or 0x01, and the writer draws another nonce in the
 * 1 in 2^32 case that an encrypted one would. */
static const uint8_t seg_magic[SEG_MAGIC_SIZE] = { 0xc5, 'S', 'G', 0x01 };

/* Stored as one piece instead when the segments compress to less than
 * 1/SEG_WHOLE_RATIO of the plaintext: there the tables each segment's zstd
 * frame repeats cost most (a pgbench dump: 16 % larger), and a chunk that
 * small to read is cheap to read whole. */
#define SEG_WHOLE_RATIO 8

struct cairn_codec {
        bool encrypted;
        int zstd_level;
        uint32_t segment;           /* 0: never segmented */
        uint8_t enc_key[CAIRN_KEY_SIZE];
        uint8_t id_key[CAIRN_KEY_SIZE];
};

/* Per-thread state, reached only by its own thread (pthread key below). */
struct codec_thread {
        ZSTD_CCtx *cctx;
        ZSTD_DCtx *dctx;
        uint8_t *scratch;       /* the plaintext body around encryption */
        size_t scratch_size;
};

/* One key for every codec: contexts do not depend on the codec's settings
 * (the level is passed per call), and a key per codec would leak the
 * other threads' contexts at pthread_key_delete(). */
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static int thread_key_error;   /* written once under thread_key_once */

static void codec_thread_free(void *p) {
        struct codec_thread *t = p;

        if (!t)
                return;
        ZSTD_freeCCtx(t->cctx);
        ZSTD_freeDCtx(t->dctx);
        free(t->scratch);
        free(t);
}

static void thread_key_init(void) {
        int r = pthread_key_create(&thread_key, codec_thread_free);
        if (r != 0)
                thread_key_error = -r;
}

static int codec_thread_get(struct codec_thread **ret) {
        struct codec_thread *t;
        int r;

        pthread_once(&thread_key_once, thread_key_init);
        if (thread_key_error < 0)
                return log_error_errno(thread_key_error, "Failed to create the codec's thread key: %m");

        t = pthread_getspecific(thread_key);
        if (!t) {
                t = calloc(1, sizeof *t);
                if (!t)
                        return -ENOMEM;
                r = pthread_setspecific(thread_key, t);
                if (r != 0) {
                        free(t);
                        return -r;
                }
        }
        *ret = t;
        return 0;
}

static uint8_t *scratch_get(struct codec_thread *t, size_t size) {
        if (t->scratch_size < size) {
                /* No realloc: the old contents are not needed, only room. */
                free(t->scratch);
                t->scratch = malloc(size);
                t->scratch_size = t->scratch ? size : 0;
        }
        return t->scratch;
}

static void scratch_trim(struct codec_thread *t) {
        if (t->scratch_size > SCRATCH_KEEP_MAX) {
                free(t->scratch);
                t->scratch = NULL;
                t->scratch_size = 0;
        }
}

static int zstd_error(size_t code, const char *what, int r) {
        if (ZSTD_getErrorCode(code) == ZSTD_error_memory_allocation)
                r = -ENOMEM;
        return log_error_errno(r, "%s: %s", what, ZSTD_getErrorName(code));
}

bool cairn_codec_segment_size_valid(uint32_t size) {
        return size == 0 || (size >= CAIRN_SEGMENT_MIN && size <= CAIRN_SEGMENT_MAX && (size & (size - 1)) == 0);
}

int cairn_codec_new(const uint8_t *enc_key, const uint8_t *id_key, int zstd_level, uint32_t segment_size,
                    struct cairn_codec **ret) {
        struct cairn_codec *c;

        if (!ret || !enc_key != !id_key || zstd_level < 1 || zstd_level > 19 ||
            !cairn_codec_segment_size_valid(segment_size))
                return -EINVAL;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->zstd_level = zstd_level;
        c->segment = segment_size;
        if (enc_key) {
                c->encrypted = true;
                memcpy(c->enc_key, enc_key, CAIRN_KEY_SIZE);
                memcpy(c->id_key, id_key, CAIRN_KEY_SIZE);
        }
        *ret = c;
        return 0;
}

struct cairn_codec *cairn_codec_free(struct cairn_codec *c) {
        if (c) {
                explicit_bzero(c, sizeof *c);
                free(c);
        }
        return NULL;
}

bool cairn_codec_encrypted(const struct cairn_codec *c) {
        return c->encrypted;
}

void cairn_codec_id(const struct cairn_codec *c, const void *data, size_t len, uint8_t ret_id[CAIRN_ID_SIZE]) {
        if (c->encrypted)
                cairn_hmac_sha256(c->id_key, data, len, ret_id);
        else
                cairn_sha256(data, len, ret_id);
}

/* zstd is only kept when its output is at most raw_len minus the minimum
 * saving, so a body never exceeds 1 + raw_len: the bound needs no
 * ZSTD_compressBound() slack. */
static size_t whole_bound(const struct cairn_codec *c, size_t raw_len) {
        return 1 + raw_len + (c->encrypted ? CAIRN_AEAD_OVERHEAD : 0);
}

size_t cairn_codec_bound(const struct cairn_codec *c, size_t raw_len) {
        unsigned n = cairn_codec_segments(c, raw_len);

        /* Either form; the segmented one is the larger from two segments on. */
        if (n > 0)
                return SEG_MAGIC_SIZE + raw_len + (size_t) n * SEG_OVERHEAD + (c->encrypted ? CAIRN_NONCE_SIZE : 0);
        return whole_bound(c, raw_len);
}

uint32_t cairn_codec_segment_size(const struct cairn_codec *c) {
        return c->segment;
}

unsigned cairn_codec_segments(const struct cairn_codec *c, size_t raw_len) {
        if (c->segment == 0 || raw_len <= c->segment)
                return 0;
        return (unsigned) ((raw_len + c->segment - 1) / c->segment);
}

size_t cairn_codec_header_size(const struct cairn_codec *c, size_t raw_len) {
        size_t n = cairn_codec_segments(c, raw_len);

        if (n == 0)
                return 0;
        return SEG_MAGIC_SIZE + (c->encrypted ? CAIRN_NONCE_SIZE + 4 * n : (4 + SEG_CHECK_SIZE) * n);
}

bool cairn_codec_is_segmented(const struct cairn_codec *c, size_t raw_len, const void *stored, size_t len) {
        return cairn_codec_segments(c, raw_len) > 0 && len >= cairn_codec_header_size(c, raw_len) &&
               memcmp(stored, seg_magic, SEG_MAGIC_SIZE) == 0;
}

size_t cairn_codec_segment_len(const struct cairn_codec *c, size_t raw_len, unsigned i) {
        unsigned n = cairn_codec_segments(c, raw_len);

        if (n == 0)
                return i == 0 ? raw_len : 0;
        if (i + 1 < n)
                return c->segment;
        return i + 1 == n ? raw_len - (size_t) (n - 1) * c->segment : 0;
}

/* Largest zstd output worth keeping for @raw_len bytes of input. */
static size_t max_compressed(size_t raw_len) {
        size_t min_saving = (raw_len * CAIRN_CODEC_MIN_SAVING_PERMILLE + 999) / 1000;
        return raw_len - min_saving;
}

/* Build 0x00||raw or 0x01||zstd(raw) in @body (room for 1 + raw_len). */
static int body_encode(const struct cairn_codec *c, struct codec_thread *t,
                       const void *raw, size_t raw_len, uint8_t *body, size_t *ret_len) {
        size_t limit = max_compressed(raw_len);

        if (limit > 0) {
                size_t n;

                if (!t->cctx) {
                        t->cctx = ZSTD_createCCtx();
                        if (!t->cctx)
                                return -ENOMEM;
                }
                /* Capped at the useful size: zstd writes straight into the
                 * caller's buffer and stops with dstSize_tooSmall as soon
                 * as its output outgrows what we would keep. */
                n = ZSTD_compressCCtx(t->cctx, body + 1, limit, raw, raw_len, c->zstd_level);
                if (!ZSTD_isError(n)) {
                        body[0] = BODY_ZSTD;
                        *ret_len = 1 + n;
                        return 0;
                }
                if (ZSTD_getErrorCode(n) != ZSTD_error_dstSize_tooSmall)
                        return zstd_error(n, "zstd compression failed", -EIO);
        }

        body[0] = BODY_RAW;
        if (raw_len > 0)
                memcpy(body + 1, raw, raw_len);
        *ret_len = 1 + raw_len;
        return 0;
}


/* The stored length of segment @i, as its header says. */
/* Where things are in a segmented blob's header. */
static const uint8_t *seg_nonce_base(const uint8_t *header) {
        return header + SEG_MAGIC_SIZE;
}

static size_t seg_entry(const struct cairn_codec *c, unsigned i) {
        return SEG_MAGIC_SIZE + (c->encrypted ? CAIRN_NONCE_SIZE + 4 * (size_t) i : (4 + SEG_CHECK_SIZE) * (size_t) i);
}

static uint32_t header_len_of(const struct cairn_codec *c, const uint8_t *header, unsigned i) {
        return get_le32(header + seg_entry(c, i));
}

/* id | le32 i | le32 n: the aad of an encrypted segment, the prefix of an
 * unencrypted segment's check. */
static void segment_aad(const uint8_t id[CAIRN_ID_SIZE], unsigned i, unsigned n,
                        uint8_t ret[CAIRN_ID_SIZE + 8]) {
        memcpy(ret, id, CAIRN_ID_SIZE);
        put_le32(ret + CAIRN_ID_SIZE, i);
        put_le32(ret + CAIRN_ID_SIZE + 4, n);
}

static void segment_nonce(const uint8_t *base, unsigned i, uint8_t ret[CAIRN_NONCE_SIZE]) {
        memcpy(ret, base, CAIRN_NONCE_SIZE);
        put_le32(ret + CAIRN_NONCE_SIZE - 4, get_le32(base + CAIRN_NONCE_SIZE - 4) + (uint32_t) i);
}

static int segment_check(const uint8_t id[CAIRN_ID_SIZE], unsigned i, unsigned n, const void *raw, size_t len,
                         uint8_t ret[SEG_CHECK_SIZE]) {
        uint8_t aad[CAIRN_ID_SIZE + 8], hash[CAIRN_ID_SIZE];
        struct cairn_sha256 *h = cairn_sha256_new();

        if (!h)
                return -ENOMEM;
        segment_aad(id, i, n, aad);
        cairn_sha256_update(h, aad, sizeof aad);
        cairn_sha256_update(h, raw, len);
        cairn_sha256_final(h, hash);
        cairn_sha256_free(h);
        memcpy(ret, hash, SEG_CHECK_SIZE);
        return 0;
}

static int encode_segmented(const struct cairn_codec *c, struct codec_thread *t, const uint8_t id[CAIRN_ID_SIZE],
                            const uint8_t *raw, size_t raw_len, uint8_t *out, size_t *ret_stored_len) {
        unsigned n = cairn_codec_segments(c, raw_len);
        size_t pos = cairn_codec_header_size(c, raw_len);
        uint8_t *body = NULL;
        int r;

        memcpy(out, seg_magic, SEG_MAGIC_SIZE);
        if (c->encrypted) {
                body = scratch_get(t, 1 + (size_t) c->segment);
                if (!body)
                        return -ENOMEM;
                r = cairn_random_bytes(out + SEG_MAGIC_SIZE, CAIRN_NONCE_SIZE);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < n; i++) {
                const uint8_t *piece = raw + (size_t) i * c->segment;
                size_t piece_len = cairn_codec_segment_len(c, raw_len, i), body_len;

                if (c->encrypted) {
                        uint8_t nonce[CAIRN_NONCE_SIZE], aad[CAIRN_ID_SIZE + 8];

                        r = body_encode(c, t, piece, piece_len, body, &body_len);
                        if (r < 0)
                                return r;
                        segment_nonce(seg_nonce_base(out), i, nonce);
                        segment_aad(id, i, n, aad);
                        r = cairn_aead_seal_nonce(c->enc_key, nonce, aad, sizeof aad, body, body_len, out + pos);
                        if (r < 0)
                                return r;
                        body_len += CAIRN_TAG_SIZE;
                        put_le32(out + seg_entry(c, i), (uint32_t) body_len);
                } else {
                        uint8_t *entry = out + seg_entry(c, i);

                        r = body_encode(c, t, piece, piece_len, out + pos, &body_len);
                        if (r < 0)
                                return r;
                        r = segment_check(id, i, n, piece, piece_len, entry + 4);
                        if (r < 0)
                                return r;
                        put_le32(entry, (uint32_t) body_len);
                }
                pos += body_len;
                /* A first segment that compresses this well predicts a
                 * chunk stored whole: skip compressing the others twice. */
                if (i == 0 && n > 1 && body_len * SEG_WHOLE_RATIO < piece_len) {
                        *ret_stored_len = 0;
                        return 1;
                }
        }
        *ret_stored_len = pos;
        return 0;
}

int cairn_codec_encode(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE],
                       const void *raw, size_t raw_len, void *out, size_t *ret_stored_len) {
        struct codec_thread *t;
        uint8_t *body;
        size_t body_len;
        int r;

        if (raw_len > CAIRN_BLOB_MAX)
                return -EFBIG;

        r = codec_thread_get(&t);
        if (r < 0)
                return r;

        if (cairn_codec_segments(c, raw_len) > 0) {
                r = encode_segmented(c, t, id, raw, raw_len, out, ret_stored_len);
                if (r < 0 || (r == 0 && *ret_stored_len * SEG_WHOLE_RATIO >= raw_len)) {
                        scratch_trim(t);
                        return r;
                }
                /* Very compressible: one piece (it fits: the whole bound
                 * is below the segmented one). */
        }

        if (!c->encrypted) {
                r = body_encode(c, t, raw, raw_len, out, &body_len);
                if (r < 0)
                        return r;
                *ret_stored_len = body_len;
                return 0;
        }

        /* The AEAD cannot work in place, so the body goes through scratch. */
        body = scratch_get(t, 1 + raw_len);
        if (!body)
                return -ENOMEM;
        r = body_encode(c, t, raw, raw_len, body, &body_len);
        if (r >= 0 && c->segment > 0) {
                /* Never let a whole blob look like a segmented one. */
                uint8_t *nonce = out;
                do
                        r = cairn_random_bytes(nonce, CAIRN_NONCE_SIZE);
                while (r >= 0 && memcmp(nonce, seg_magic, SEG_MAGIC_SIZE) == 0);
                if (r >= 0)
                        r = cairn_aead_seal_nonce(c->enc_key, nonce, id, CAIRN_ID_SIZE, body, body_len,
                                                  out + CAIRN_NONCE_SIZE);
        } else if (r >= 0)
                r = cairn_aead_seal(c->enc_key, id, CAIRN_ID_SIZE, body, body_len, out);
        scratch_trim(t);
        if (r < 0)
                return r;
        *ret_stored_len = body_len + CAIRN_AEAD_OVERHEAD;
        return 0;
}

static int blob_damaged(const uint8_t id[CAIRN_ID_SIZE], const char *why) {
        char hex[2 * CAIRN_ID_SIZE + 1];
        return log_error_errno(-EBADMSG, "Blob %s is damaged: %s", hex_encode(id, CAIRN_ID_SIZE, hex), why);
}

static int blob_damaged_zstd(const uint8_t id[CAIRN_ID_SIZE], size_t code) {
        char hex[2 * CAIRN_ID_SIZE + 1];
        if (ZSTD_getErrorCode(code) == ZSTD_error_memory_allocation)
                return zstd_error(code, "zstd decompression failed", -ENOMEM);
        return log_error_errno(-EBADMSG, "Blob %s is damaged: zstd: %s",
                               hex_encode(id, CAIRN_ID_SIZE, hex), ZSTD_getErrorName(code));
}

static int body_decode(struct codec_thread *t, const uint8_t id[CAIRN_ID_SIZE],
                       const uint8_t *body, size_t body_len, void *out, size_t raw_len) {
        uint8_t empty;
        size_t n;

        if (body_len < 1)
                return blob_damaged(id, "empty body");

        switch (body[0]) {
        case BODY_RAW:
                if (body_len - 1 != raw_len)
                        return blob_damaged(id, "stored length does not match the raw length");
                if (raw_len > 0)
                        memcpy(out, body + 1, raw_len);
                return 0;

        case BODY_ZSTD:
                /* zstd reads an empty input as zero frames, zero bytes:
                 * that would let a flipped raw marker pass for an empty blob. */
                if (body_len < 2)
                        return blob_damaged(id, "empty zstd frame");
                if (!t->dctx) {
                        t->dctx = ZSTD_createDCtx();
                        if (!t->dctx)
                                return -ENOMEM;
                }
                /* Decoding into a flat buffer of exactly raw_len bytes: zstd
                 * needs no window of its own, and a frame that claims more
                 * fails with dstSize_tooSmall instead of growing anything. */
                n = ZSTD_decompressDCtx(t->dctx, raw_len > 0 ? out : &empty, raw_len, body + 1, body_len - 1);
                if (ZSTD_isError(n))
                        return blob_damaged_zstd(id, n);
                if (n != raw_len)
                        return blob_damaged(id, "decompressed size does not match the raw length");
                return 0;

        default:
                return blob_damaged(id, "unknown body encoding");
        }
}


int cairn_codec_segment_locate(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE], size_t raw_len,
                               size_t stored_len, const void *header, unsigned i,
                               size_t *ret_offset, size_t *ret_len) {
        unsigned n = cairn_codec_segments(c, raw_len);
        size_t pos = cairn_codec_header_size(c, raw_len), tag = c->encrypted ? CAIRN_TAG_SIZE : 0;
        size_t offset = 0, len = 0;

        if (n == 0 || i >= n)
                return -EINVAL;
        if (stored_len < pos)
                return blob_damaged(id, "shorter than its segment table");
        if (memcmp(header, seg_magic, SEG_MAGIC_SIZE) != 0)
                return -EINVAL;        /* a whole blob: the caller reads it whole */
        /* The whole table, every time: a damaged length anywhere is caught
         * here, not as a misplaced read of another segment. */
        for (unsigned j = 0; j < n; j++) {
                size_t l = header_len_of(c, header, j);

                if (l < 1 + tag || l > 1 + cairn_codec_segment_len(c, raw_len, j) + tag || l > stored_len - pos)
                        return blob_damaged(id, "a segment length is out of range");
                if (j == i) {
                        offset = pos;
                        len = l;
                }
                pos += l;
        }
        if (pos != stored_len)
                return blob_damaged(id, "segment lengths do not add up to the stored length");
        *ret_offset = offset;
        *ret_len = len;
        return 0;
}

static int decode_segment(const struct cairn_codec *c, struct codec_thread *t, const uint8_t id[CAIRN_ID_SIZE],
                          size_t raw_len, const uint8_t *header, unsigned i, const uint8_t *seg, size_t seg_len,
                          uint8_t *out) {
        unsigned n = cairn_codec_segments(c, raw_len);
        size_t len = cairn_codec_segment_len(c, raw_len, i);
        uint8_t aad[CAIRN_ID_SIZE + 8];
        int r;

        if (c->encrypted) {
                uint8_t nonce[CAIRN_NONCE_SIZE], *body;

                if (seg_len < 1 + CAIRN_TAG_SIZE || seg_len > 1 + len + CAIRN_TAG_SIZE)
                        return blob_damaged(id, "a segment length is out of range");
                body = scratch_get(t, seg_len - CAIRN_TAG_SIZE);
                if (!body)
                        return -ENOMEM;
                segment_nonce(seg_nonce_base(header), i, nonce);
                segment_aad(id, i, n, aad);
                r = cairn_aead_open_nonce(c->enc_key, nonce, aad, sizeof aad, seg, seg_len, body);
                if (r == -EBADMSG)
                        return blob_damaged(id, "a segment failed authentication (altered, or written under another key)");
                if (r < 0)
                        return r;
                return body_decode(t, id, body, seg_len - CAIRN_TAG_SIZE, out, len);
        }

        uint8_t check[SEG_CHECK_SIZE];
        if (seg_len < 1 || seg_len > 1 + len)
                return blob_damaged(id, "a segment length is out of range");
        r = body_decode(t, id, seg, seg_len, out, len);
        if (r < 0)
                return r;
        r = segment_check(id, i, n, out, len, check);
        if (r < 0)
                return r;
        if (memcmp(check, header + seg_entry(c, i) + 4, SEG_CHECK_SIZE) != 0)
                return blob_damaged(id, "a segment does not match its check");
        return 0;
}

int cairn_codec_decode_segment(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE], size_t raw_len,
                               const void *header, unsigned i, const void *seg, size_t seg_len, void *out) {
        size_t len = cairn_codec_segment_len(c, raw_len, i);
        struct codec_thread *t;
        int r;

        if (raw_len > CAIRN_BLOB_MAX)
                return -EFBIG;
        if (i >= cairn_codec_segments(c, raw_len))
                return -EINVAL;
        r = codec_thread_get(&t);
        if (r >= 0) {
                r = decode_segment(c, t, id, raw_len, header, i, seg, seg_len, out);
                scratch_trim(t);
        }
        if (r < 0 && len > 0)
                memset(out, 0, len);
        return r;
}

static int decode_segmented(const struct cairn_codec *c, struct codec_thread *t, const uint8_t id[CAIRN_ID_SIZE],
                            const uint8_t *stored, size_t stored_len, uint8_t *out, size_t raw_len) {
        unsigned n = cairn_codec_segments(c, raw_len);
        size_t offset, len;
        int r;

        /* Locating segment 0 checks the whole table. */
        r = cairn_codec_segment_locate(c, id, raw_len, stored_len, stored, 0, &offset, &len);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++) {
                len = header_len_of(c, stored, i);
                r = decode_segment(c, t, id, raw_len, stored, i, stored + offset, len, out + (size_t) i * c->segment);
                if (r < 0)
                        return r;
                offset += len;
        }
        if (!c->encrypted) {
                uint8_t hash[CAIRN_ID_SIZE];

                cairn_sha256(out, raw_len, hash);
                if (memcmp(hash, id, CAIRN_ID_SIZE) != 0)
                        return blob_damaged(id, "content does not match its SHA-256 id");
        }
        return 0;
}

static int codec_decode(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE],
                        const void *stored, size_t stored_len, void *out, size_t raw_len) {
        struct codec_thread *t;
        const uint8_t *body;
        size_t body_len;
        int r;

        r = codec_thread_get(&t);
        if (r < 0)
                return r;

        if (cairn_codec_is_segmented(c, raw_len, stored, stored_len)) {
                if (stored_len > cairn_codec_bound(c, raw_len))
                        return blob_damaged(id, "stored length out of range for the raw length");
                r = decode_segmented(c, t, id, stored, stored_len, out, raw_len);
                scratch_trim(t);
                return r;
        }

        /* A valid body is never longer than 1 + raw_len (see
         * cairn_codec_bound()), which also bounds the scratch a corrupt
         * length can ask for. */
        if (stored_len < whole_bound(c, 0) || stored_len > whole_bound(c, raw_len))
                return blob_damaged(id, "stored length out of range for the raw length");

        if (!c->encrypted) {
                uint8_t hash[CAIRN_ID_SIZE];

                r = body_decode(t, id, stored, stored_len, out, raw_len);
                if (r < 0)
                        return r;
                cairn_sha256(out, raw_len, hash);
                if (memcmp(hash, id, CAIRN_ID_SIZE) != 0)
                        return blob_damaged(id, "content does not match its SHA-256 id");
                return 0;
        }

        body_len = stored_len - CAIRN_AEAD_OVERHEAD;
        body = scratch_get(t, body_len);
        if (!body)
                return -ENOMEM;
        r = cairn_aead_open(c->enc_key, id, CAIRN_ID_SIZE, stored, stored_len, (uint8_t *) body);
        if (r == -EBADMSG)
                r = blob_damaged(id, "authentication failed (altered, or written under another key)");
        if (r >= 0)
                r = body_decode(t, id, body, body_len, out, raw_len);
        scratch_trim(t);
        return r;
}

int cairn_codec_decode(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE],
                       const void *stored, size_t stored_len, void *out, size_t raw_len) {
        int r;

        if (raw_len > CAIRN_BLOB_MAX)
                return -EFBIG;

        r = codec_decode(c, id, stored, stored_len, out, raw_len);
        /* A caller that ignores the error still never sees partial or
         * unverified plaintext. */
        if (r < 0 && raw_len > 0)
                memset(out, 0, raw_len);
        return r;
}
