/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "log.h"
#include "util.h"

#include "tap.h"

#define KiB 1024u
#define MiB (1024u * 1024)

static unsigned errors_logged;

/* Damage is expected by the thousand here: count the messages, print none. */
static void log_count(int level, const char *msg, void *userdata) {
        if (level <= CAIRN_LOG_ERR)
                errors_logged++;
}

/* splitmix64: reproducible data without the cost of the CSPRNG. */
static uint64_t prng_next(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
        for (size_t i = 0; i < n; i++) {
                if (i % 8 == 0)
                        seed = prng_next(&seed) ^ i;
                p[i] = (uint8_t) (seed >> (8 * (i % 8)));
        }
}

/* Text-like data: words from a small vocabulary, compresses well. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed) {
        static const char *words[] = { "backup ", "snapshot ", "pack ", "chunk ", "tree ", "restore ",
                                       "the ", "of ", "and ", "postgres ", "volume ", "\n" };
        size_t i = 0;
        while (i < n) {
                const char *w = words[prng_next(&seed) % ELEMENTSOF(words)];
                for (; *w && i < n; w++)
                        p[i++] = (uint8_t) *w;
        }
}

/* Uniform over @alphabet byte values: about log2(alphabet) bits a byte. */
static void fill_alphabet(uint8_t *p, size_t n, unsigned alphabet, uint64_t seed) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (prng_next(&seed) % alphabet);
}

static uint8_t enc_key[CAIRN_KEY_SIZE], id_key[CAIRN_KEY_SIZE];

struct encoded {
        uint8_t id[CAIRN_ID_SIZE];
        uint8_t *stored;
        size_t stored_len;
};

static int encode(const struct cairn_codec *c, const void *raw, size_t len, struct encoded *e) {
        cairn_codec_id(c, raw, len, e->id);
        e->stored = malloc(cairn_codec_bound(c, len));
        if (!e->stored)
                BAIL_OUT("out of memory");
        return cairn_codec_encode(c, e->id, raw, len, e->stored, &e->stored_len);
}

/* Decode @stored as @raw_len bytes; 1 when the result equals @expect. */
static int decode_equals(const struct cairn_codec *c, const uint8_t id[CAIRN_ID_SIZE], const void *stored,
                         size_t stored_len, const void *expect, size_t raw_len, int *ret_r) {
        uint8_t *out = malloc(MAX(raw_len, (size_t) 1));
        int r, same;

        if (!out)
                BAIL_OUT("out of memory");
        r = cairn_codec_decode(c, id, stored, stored_len, out, raw_len);
        same = r == 0 && (raw_len == 0 || memcmp(out, expect, raw_len) == 0);
        free(out);
        if (ret_r)
                *ret_r = r;
        return same;
}

static void test_new(void) {
        struct cairn_codec *c = NULL;

        is(cairn_codec_new(NULL, NULL, 0, 0, &c), -EINVAL, "level 0 is refused");
        is(cairn_codec_new(NULL, NULL, 20, 0, &c), -EINVAL, "level 20 is refused");
        is(cairn_codec_new(enc_key, NULL, 3, 0, &c), -EINVAL, "an encryption key without an id key is refused");
        is(cairn_codec_new(NULL, id_key, 3, 0, &c), -EINVAL, "an id key without an encryption key is refused");
        ok(!c, "nothing returned on failure");
        ok(!cairn_codec_free(NULL), "free(NULL) returns NULL");

        is(cairn_codec_new(NULL, NULL, 1, 0, &c), 0, "level 1 accepted");
        ok(!cairn_codec_encrypted(c), "unencrypted codec says so");
        is(cairn_codec_bound(c, 0), 1, "bound(0) unencrypted");
        c = cairn_codec_free(c);
        is(cairn_codec_new(enc_key, id_key, 19, 0, &c), 0, "level 19 accepted");
        ok(cairn_codec_encrypted(c), "encrypted codec says so");
        is(cairn_codec_bound(c, 0), 1 + CAIRN_AEAD_OVERHEAD, "bound(0) encrypted");
        c = cairn_codec_free(c);
}

static void test_round_trips(const struct cairn_codec *c, const char *name) {
        static const size_t sizes[] = { 0, 1, 1 * MiB, 8 * MiB };
        size_t overhead = cairn_codec_encrypted(c) ? CAIRN_AEAD_OVERHEAD : 0;
        uint8_t *raw = malloc(8 * MiB);

        if (!raw)
                BAIL_OUT("out of memory");

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                for (int compressible = 0; compressible <= 1; compressible++) {
                        size_t len = sizes[i];
                        struct encoded e;
                        int r, same;

                        if (compressible)
                                fill_text(raw, len, 100 + i);
                        else
                                fill_random(raw, len, 200 + i);

                        is(encode(c, raw, len, &e), 0, "%s: encode %zu %s bytes", name, len,
                           compressible ? "text" : "random");
                        ok(e.stored_len <= cairn_codec_bound(c, len), "%s: stored %zu within bound", name, e.stored_len);
                        if (len >= 1 * MiB && compressible)
                                ok(e.stored_len < len, "%s: text stored compressed (%zu < %zu)", name, e.stored_len, len);
                        else
                                is(e.stored_len, len + 1 + overhead, "%s: stored raw (size %zu)", name, len);
                        if (!overhead)
                                is(e.stored[0], len >= 1 * MiB && compressible ? 1 : 0, "%s: body byte", name);

                        same = decode_equals(c, e.id, e.stored, e.stored_len, raw, len, &r);
                        ok(same, "%s: %zu %s bytes round trip (r=%d)", name, len, compressible ? "text" : "random", r);
                        free(e.stored);
                }
        free(raw);
}

/* The 3 % rule on both sides: ~7 bits a byte saves ~12 % and is kept
 * compressed, ~7.97 bits a byte saves < 1 % and falls back to raw. */
static void test_threshold(const struct cairn_codec *c, const char *name) {
        size_t len = 256 * KiB, overhead = cairn_codec_encrypted(c) ? CAIRN_AEAD_OVERHEAD : 0;
        uint8_t *raw = malloc(len);
        struct encoded e;

        if (!raw)
                BAIL_OUT("out of memory");

        fill_alphabet(raw, len, 128, 7);
        is(encode(c, raw, len, &e), 0, "%s: encode 7-bit data", name);
        ok(e.stored_len < len, "%s: 7-bit data is compressed (%zu < %zu)", name, e.stored_len, len);
        ok(decode_equals(c, e.id, e.stored, e.stored_len, raw, len, NULL), "%s: 7-bit data round trips", name);
        free(e.stored);

        fill_alphabet(raw, len, 251, 8);
        is(encode(c, raw, len, &e), 0, "%s: encode 7.97-bit data", name);
        is(e.stored_len, len + 1 + overhead, "%s: nearly random data is stored raw", name);
        ok(decode_equals(c, e.id, e.stored, e.stored_len, raw, len, NULL), "%s: 7.97-bit data round trips", name);
        free(e.stored);

        /* Random data with a run of zeros: zstd saves about the run's size,
         * which lands on either side of 3 %. */
        fill_random(raw, len, 9);
        memset(raw, 0, len * 15 / 1000);
        is(encode(c, raw, len, &e), 0, "%s: encode data zstd shrinks by ~1.5 %%", name);
        is(e.stored_len, len + 1 + overhead, "%s: a saving under 3 %% is stored raw", name);
        free(e.stored);

        memset(raw, 0, len * 45 / 1000);
        is(encode(c, raw, len, &e), 0, "%s: encode data zstd shrinks by ~4.5 %%", name);
        ok(e.stored_len + len * 30 / 1000 <= len + overhead, "%s: a saving over 3 %% is stored compressed (%zu)",
           name, e.stored_len);
        ok(decode_equals(c, e.id, e.stored, e.stored_len, raw, len, NULL), "%s: it round trips", name);
        free(e.stored);
        free(raw);
}

static void test_ids(const struct cairn_codec *plain, const struct cairn_codec *enc) {
        uint8_t data[1000], sha[CAIRN_ID_SIZE], a[CAIRN_ID_SIZE], b[CAIRN_ID_SIZE], other_key[CAIRN_KEY_SIZE];
        struct cairn_codec *enc2 = NULL, *enc3 = NULL;

        fill_random(data, sizeof data, 1);
        cairn_sha256(data, sizeof data, sha);

        cairn_codec_id(plain, data, sizeof data, a);
        ok(memcmp(a, sha, sizeof a) == 0, "unencrypted id is the SHA-256 of the data");
        cairn_codec_id(enc, data, sizeof data, a);
        ok(memcmp(a, sha, sizeof a) != 0, "encrypted id is not the SHA-256 of the data");
        cairn_hmac_sha256(id_key, data, sizeof data, b);
        ok(memcmp(a, b, sizeof a) == 0, "encrypted id is the HMAC under the id key");

        memcpy(other_key, id_key, sizeof other_key);
        other_key[0] ^= 1;
        if (cairn_codec_new(enc_key, other_key, 3, 0, &enc2) < 0)
                BAIL_OUT("cairn_codec_new");
        cairn_codec_id(enc2, data, sizeof data, b);
        ok(memcmp(a, b, sizeof a) != 0, "encrypted id depends on the id key");

        other_key[0] ^= 1;
        other_key[5] ^= 0x80;
        if (cairn_codec_new(other_key, id_key, 3, 0, &enc3) < 0)
                BAIL_OUT("cairn_codec_new");
        cairn_codec_id(enc3, data, sizeof data, b);
        ok(memcmp(a, b, sizeof a) == 0, "encrypted id does not depend on the encryption key");

        cairn_codec_id(plain, data, 0, a);
        cairn_sha256("", 0, b);
        ok(memcmp(a, b, sizeof a) == 0, "id of the empty blob");

        cairn_codec_free(enc2);
        cairn_codec_free(enc3);
}

enum flip_result { FLIP_DETECTED, FLIP_HARMLESS, FLIP_WRONG };

static enum flip_result flip_one(const struct cairn_codec *c, const struct encoded *e, const uint8_t *raw,
                                 size_t len, size_t pos, uint8_t *copy) {
        int r, same;

        memcpy(copy, e->stored, e->stored_len);
        copy[pos] ^= (uint8_t) (1u << (pos % 8));
        same = decode_equals(c, e->id, copy, e->stored_len, raw, len, &r);
        if (r == -EBADMSG)
                return FLIP_DETECTED;
        return same ? FLIP_HARMLESS : FLIP_WRONG;
}

/* Every byte position for a small blob, a sample for a large one.
 *
 * The tag covers every stored byte of an encrypted blob, and every byte of
 * a raw body is plaintext, so each flip must be caught.  In an unencrypted
 * zstd body some bits do not change the output (e.g. the window size, which
 * one-shot decoding ignores): the SHA-256 check cannot see them and need
 * not, as long as what comes out is exactly the original. */
static void test_bit_flips(const struct cairn_codec *c, const char *name, size_t len, bool compressible) {
        uint8_t *raw = malloc(MAX(len, (size_t) 1)), *copy;
        size_t tried = 0, count[3] = {}, first_missed = SIZE_MAX;
        unsigned logged_before = errors_logged;
        bool may_be_harmless;
        struct encoded e;

        if (!raw)
                BAIL_OUT("out of memory");
        if (compressible)
                fill_text(raw, len, len);
        else
                fill_random(raw, len, len);
        if (encode(c, raw, len, &e) < 0)
                BAIL_OUT("encode");
        copy = malloc(e.stored_len);
        if (!copy)
                BAIL_OUT("out of memory");
        may_be_harmless = !cairn_codec_encrypted(c) && (cairn_codec_segments(c, len) > 0 || e.stored[0] == 1);

        for (size_t pos = 0; pos < e.stored_len; pos++) {
                bool sample = len <= 64 * KiB || pos % 4099 == 0 || pos < 64 || pos >= e.stored_len - 64;
                enum flip_result f;

                if (!sample)
                        continue;
                tried++;
                f = flip_one(c, &e, raw, len, pos, copy);
                count[f]++;
                if (f != FLIP_DETECTED && first_missed == SIZE_MAX)
                        first_missed = pos;
        }
        if (may_be_harmless) {
                ok(count[FLIP_WRONG] == 0 && count[FLIP_DETECTED] > 0,
                   "%s: %zu-byte %s blob (zstd, stored %zu): none of %zu flipped bits yields wrong bytes",
                   name, len, compressible ? "text" : "random", e.stored_len, tried);
                diag("%zu detected, %zu left the output intact", count[FLIP_DETECTED], count[FLIP_HARMLESS]);
        } else
                ok(count[FLIP_DETECTED] == tried && tried > 0,
                   "%s: %zu-byte %s blob (stored %zu): all %zu flipped bits detected",
                   name, len, compressible ? "text" : "random", e.stored_len, tried);
        if (count[FLIP_WRONG] || (!may_be_harmless && count[FLIP_HARMLESS]))
                diag("%zu flips wrong, %zu undetected, the first at byte %zu", count[FLIP_WRONG],
                     count[FLIP_HARMLESS], first_missed);
        ok(errors_logged - logged_before >= count[FLIP_DETECTED], "%s: every detected flip was logged", name);

        ok(decode_equals(c, e.id, e.stored, e.stored_len, raw, len, NULL), "%s: the undamaged blob still decodes",
           name);
        free(copy);
        free(e.stored);
        free(raw);
}

static void test_wrong_inputs(const struct cairn_codec *c, const struct cairn_codec *other, const char *name,
                              const char *other_name) {
        size_t len = 64 * KiB;
        uint8_t *raw = malloc(len), *out = malloc(len + 1), *big;
        uint8_t wrong_id[CAIRN_ID_SIZE];
        struct encoded e;
        int r;

        if (!raw || !out)
                BAIL_OUT("out of memory");
        fill_text(raw, len, 42);
        if (encode(c, raw, len, &e) < 0)
                BAIL_OUT("encode");

        (void) decode_equals(other, e.id, e.stored, e.stored_len, raw, len, &r);
        is(r, -EBADMSG, "%s blob decoded by %s codec fails", name, other_name);

        memcpy(wrong_id, e.id, sizeof wrong_id);
        wrong_id[31] ^= 1;
        (void) decode_equals(c, wrong_id, e.stored, e.stored_len, raw, len, &r);
        is(r, -EBADMSG, "%s: decoding under another id fails", name);

        for (size_t cut = 1; cut <= e.stored_len; cut = cut < 64 ? cut + 1 : cut * 2) {
                (void) decode_equals(c, e.id, e.stored, e.stored_len - cut, raw, len, &r);
                if (r != -EBADMSG) {
                        ok(false, "%s: truncated by %zu bytes fails (r=%d)", name, cut, r);
                        goto truncation_done;
                }
        }
        ok(true, "%s: every truncation fails with -EBADMSG", name);
truncation_done:
        (void) decode_equals(c, e.id, e.stored, 0, raw, len, &r);
        is(r, -EBADMSG, "%s: empty stored data fails", name);

        /* One extra byte: the bound check or the tag/hash must notice. */
        big = malloc(e.stored_len + 1);
        if (!big)
                BAIL_OUT("out of memory");
        memcpy(big, e.stored, e.stored_len);
        big[e.stored_len] = 0;
        (void) decode_equals(c, e.id, big, e.stored_len + 1, raw, len, &r);
        is(r, -EBADMSG, "%s: a trailing byte fails", name);
        free(big);

        is(cairn_codec_decode(c, e.id, e.stored, e.stored_len, out, len - 1), -EBADMSG, "%s: raw_len - 1 fails", name);
        is(cairn_codec_decode(c, e.id, e.stored, e.stored_len, out, len + 1), -EBADMSG, "%s: raw_len + 1 fails", name);
        is(cairn_codec_decode(c, e.id, e.stored, e.stored_len, out, 0), -EBADMSG, "%s: raw_len 0 fails", name);
        is(cairn_codec_decode(c, e.id, e.stored, e.stored_len, out, (size_t) CAIRN_BLOB_MAX + 1), -EFBIG,
           "%s: raw_len beyond CAIRN_BLOB_MAX is -EFBIG", name);
        is(cairn_codec_encode(c, e.id, raw, (size_t) CAIRN_BLOB_MAX + 1, out, &e.stored_len), -EFBIG,
           "%s: encoding beyond CAIRN_BLOB_MAX is -EFBIG", name);

        free(e.stored);
        free(out);
        free(raw);
}

/* An attacker without the key cannot make these, but a buggy writer could:
 * the body is parsed only after the tag verified, and must still be
 * checked. */
static void test_bad_authenticated_bodies(const struct cairn_codec *c) {
        uint8_t raw[100], body[200], stored[200 + CAIRN_AEAD_OVERHEAD], out[100], id[CAIRN_ID_SIZE];

        fill_text(raw, sizeof raw, 3);
        cairn_codec_id(c, raw, sizeof raw, id);

        body[0] = 2;
        memcpy(body + 1, raw, sizeof raw);
        if (cairn_aead_seal(enc_key, id, sizeof id, body, 1 + sizeof raw, stored) < 0)
                BAIL_OUT("seal");
        is(cairn_codec_decode(c, id, stored, 1 + sizeof raw + CAIRN_AEAD_OVERHEAD, out, sizeof raw), -EBADMSG,
           "encrypted: unknown body byte 2 fails");

        body[0] = 0;
        if (cairn_aead_seal(enc_key, id, sizeof id, body, sizeof raw, stored) < 0)
                BAIL_OUT("seal");
        is(cairn_codec_decode(c, id, stored, sizeof raw + CAIRN_AEAD_OVERHEAD, out, sizeof raw), -EBADMSG,
           "encrypted: raw body one byte short fails");

        body[0] = 1;
        fill_random(body + 1, 50, 4);
        if (cairn_aead_seal(enc_key, id, sizeof id, body, 51, stored) < 0)
                BAIL_OUT("seal");
        is(cairn_codec_decode(c, id, stored, 51 + CAIRN_AEAD_OVERHEAD, out, sizeof raw), -EBADMSG,
           "encrypted: garbage zstd body fails");

        if (cairn_aead_seal(enc_key, id, sizeof id, body, 0, stored) < 0)
                BAIL_OUT("seal");
        is(cairn_codec_decode(c, id, stored, CAIRN_AEAD_OVERHEAD, out, sizeof raw), -EBADMSG,
           "encrypted: empty body fails");
}

static void test_bad_plain_bodies(const struct cairn_codec *c) {
        uint8_t raw[4096], out[4096];
        struct encoded e;

        fill_text(raw, sizeof raw, 9);
        if (encode(c, raw, sizeof raw, &e) < 0)
                BAIL_OUT("encode");
        is(e.stored[0], 1, "unencrypted: 4 KiB of text is compressed");

        e.stored[0] = 2;
        is(cairn_codec_decode(c, e.id, e.stored, e.stored_len, out, sizeof raw), -EBADMSG,
           "unencrypted: unknown body byte 2 fails");
        e.stored[0] = 0;
        is(cairn_codec_decode(c, e.id, e.stored, e.stored_len, out, sizeof raw), -EBADMSG,
           "unencrypted: a zstd body marked raw fails");
        free(e.stored);
}

struct thread_arg {
        const struct cairn_codec *codec;
        unsigned seed;
        unsigned failures;
};


/* Segment @i of @e, decoded on its own; 1 when it equals the plaintext's
 * piece.  *ret_r: the first error. */
static int segment_equals(const struct cairn_codec *c, const struct encoded *e, const uint8_t *raw, size_t len,
                          unsigned i, int *ret_r) {
        size_t seg_len = cairn_codec_segment_len(c, len, i), off, stored;
        uint8_t *out = malloc(MAX(seg_len, (size_t) 1));
        int r, same;

        if (!out)
                BAIL_OUT("out of memory");
        r = cairn_codec_segment_locate(c, e->id, len, e->stored_len, e->stored, i, &off, &stored);
        if (r >= 0)
                r = cairn_codec_decode_segment(c, e->id, len, e->stored, i, e->stored + off, stored, out);
        same = r == 0 && memcmp(out, raw + (size_t) i * cairn_codec_segment_size(c), seg_len) == 0;
        if (r < 0) {
                bool zeroed = true;
                for (size_t k = 0; k < seg_len; k++)
                        zeroed = zeroed && out[k] == 0;
                if (!zeroed)
                        r = -EUCLEAN;    /* a failed segment must not leave bytes behind */
        }
        free(out);
        *ret_r = r;
        return same;
}

/* Half random, half text, in 64 KiB pieces: some segments compress, some not. */
static void fill_mixed(uint8_t *p, size_t n, uint64_t seed) {
        for (size_t off = 0; off < n; off += 64 * KiB) {
                size_t l = MIN((size_t) 64 * KiB, n - off);
                if ((off / (64 * KiB)) % 2)
                        fill_text(p + off, l, seed + off);
                else
                        fill_random(p + off, l, seed + off);
        }
}

static void test_segmented(const struct cairn_codec *c, const struct cairn_codec *whole, const char *name) {
        const size_t S = cairn_codec_segment_size(c);
        const size_t sizes[] = { 1, S - 1, S, S + 1, 3 * S, 1 * MiB + 12345, 8 * MiB };
        uint8_t *raw = malloc(8 * MiB);

        if (!raw)
                BAIL_OUT("out of memory");
        for (size_t si = 0; si < ELEMENTSOF(sizes); si++) {
                size_t len = sizes[si];
                unsigned n = cairn_codec_segments(c, len);
                struct encoded e, w;
                bool all = true;
                int r = 0;

                fill_mixed(raw, len, 300 + si);
                is(encode(c, raw, len, &e), 0, "%s: encode %zu mixed bytes", name, len);
                ok(e.stored_len <= cairn_codec_bound(c, len), "%s: %zu bytes: stored %zu within bound %zu", name, len,
                   e.stored_len, cairn_codec_bound(c, len));
                ok(decode_equals(c, e.id, e.stored, e.stored_len, raw, len, &r), "%s: %zu bytes round trip whole (r=%d)",
                   name, len, r);
                is(n, len > S ? (unsigned) ((len + S - 1) / S) : 0u, "%s: %zu bytes make %u segments", name, len, n);
                /* Ids do not depend on segmenting: a chunk is deduplicated
                 * against what an unsegmented writer stored. */
                is(encode(whole, raw, len, &w), 0, "%s: the whole-blob codec encodes %zu bytes", name, len);
                ok(memcmp(e.id, w.id, CAIRN_ID_SIZE) == 0, "%s: %zu bytes: same id with and without segments", name, len);
                if (n == 0) {
                        /* Up to one segment's size: the plain form, which a
                         * whole-blob codec reads (and byte for byte when
                         * the encoding is deterministic). */
                        ok(decode_equals(whole, e.id, e.stored, e.stored_len, raw, len, &r),
                           "%s: %zu bytes (not segmented) read by the whole-blob codec", name, len);
                        if (!cairn_codec_encrypted(c))
                                ok(e.stored_len == w.stored_len && memcmp(e.stored, w.stored, e.stored_len) == 0,
                                   "%s: %zu bytes stored exactly as without segments", name, len);
                        free(e.stored);
                        free(w.stored);
                        continue;
                }
                ok(!decode_equals(whole, e.id, e.stored, e.stored_len, raw, len, &r) && r == -EBADMSG,
                   "%s: %zu bytes: a whole-blob codec refuses a segmented blob", name, len);
                is(cairn_codec_header_size(c, len), (size_t) (4 + (cairn_codec_encrypted(c) ? 12 + 4 * n : 20 * n)),
                   "%s: header size for %u segments", name, n);
                ok(cairn_codec_is_segmented(c, len, e.stored, e.stored_len), "%s: %zu mixed bytes are stored in segments",
                   name, len);
                for (unsigned i = 0; i < n && all; i++)
                        all = segment_equals(c, &e, raw, len, i, &r);
                ok(all, "%s: %zu bytes: each of %u segments decodes on its own (r=%d)", name, len, n, r);

                /* Damage in one segment: that segment fails, the others read. */
                {
                        unsigned j = n / 2, good = 0;
                        size_t off, stored;
                        r = cairn_codec_segment_locate(c, e.id, len, e.stored_len, e.stored, j, &off, &stored);
                        e.stored[off + stored / 2] ^= 0x10;
                        ok(!segment_equals(c, &e, raw, len, j, &r) && r == -EBADMSG,
                           "%s: %zu bytes: a flipped byte in segment %u fails it", name, len, j);
                        for (unsigned i = 0; i < n; i++)
                                if (i != j)
                                        good += segment_equals(c, &e, raw, len, i, &r);
                        is(good, n - 1, "%s: %zu bytes: the other %u segments still read", name, len, n - 1);
                        ok(!decode_equals(c, e.id, e.stored, e.stored_len, raw, len, &r) && r == -EBADMSG,
                           "%s: %zu bytes: the whole blob fails", name, len);
                        e.stored[off + stored / 2] ^= 0x10;
                }
                /* A length in the table: every segment is refused (the
                 * table is checked whole), not read from the wrong place. */
                {
                        size_t at = cairn_codec_encrypted(c) ? 16 : 4;
                        size_t off, stored;
                        e.stored[at] ^= 1;
                        r = cairn_codec_segment_locate(c, e.id, len, e.stored_len, e.stored, n - 1, &off, &stored);
                        is(r, -EBADMSG, "%s: %zu bytes: a damaged length in the table is refused", name, len);
                        e.stored[at] ^= 1;
                        r = cairn_codec_segment_locate(c, e.id, len, e.stored_len - 1, e.stored, 0, &off, &stored);
                        is(r, -EBADMSG, "%s: %zu bytes: a truncated blob is refused", name, len);
                }
                /* Another blob's segment, or this blob's segment 0 read as
                 * segment 1, never passes. */
                {
                        size_t off0, len0, off1, len1;
                        uint8_t *out = malloc(S);
                        uint8_t other_id[CAIRN_ID_SIZE];
                        if (!out)
                                BAIL_OUT("out of memory");
                        cairn_codec_segment_locate(c, e.id, len, e.stored_len, e.stored, 0, &off0, &len0);
                        cairn_codec_segment_locate(c, e.id, len, e.stored_len, e.stored, 1, &off1, &len1);
                        r = cairn_codec_decode_segment(c, e.id, len, e.stored, 1, e.stored + off0, len0, out);
                        is(r, -EBADMSG, "%s: %zu bytes: segment 0's bytes are not accepted as segment 1", name, len);
                        memcpy(other_id, e.id, sizeof other_id);
                        other_id[5] ^= 1;
                        r = cairn_codec_decode_segment(c, other_id, len, e.stored, 1, e.stored + off1, len1, out);
                        is(r, -EBADMSG, "%s: %zu bytes: a segment is not accepted under another blob's id", name, len);
                        free(out);
                }
                free(e.stored);
                free(w.stored);
        }

        /* Very compressible (below 1/8): stored whole, as without segments. */
        {
                struct encoded e;
                size_t off, l;
                int r = 0;

                memset(raw, 'a', 1 * MiB);
                fill_text(raw, 1 * MiB, 77);
                for (size_t k = 0; k < 1 * MiB; k += 4096)
                        memcpy(raw + k, raw, 4096);         /* one page, repeated */
                is(encode(c, raw, 1 * MiB, &e), 0, "%s: encode 1 MiB of a repeated page", name);
                ok(e.stored_len * 8 < 1 * MiB && !cairn_codec_is_segmented(c, 1 * MiB, e.stored, e.stored_len),
                   "%s: stored whole (%zu bytes), not in segments", name, e.stored_len);
                ok(decode_equals(c, e.id, e.stored, e.stored_len, raw, 1 * MiB, &r), "%s: and it round trips", name);
                is(cairn_codec_segment_locate(c, e.id, 1 * MiB, e.stored_len, e.stored, 0, &off, &l), -EINVAL,
                   "%s: the segment calls refuse a whole blob", name);
                free(e.stored);
        }
        free(raw);
}

static void *thread_main(void *p) {
        struct thread_arg *a = p;
        uint64_t s = a->seed;

        for (int i = 0; i < 50; i++) {
                size_t len = prng_next(&s) % (300 * KiB);
                uint8_t *raw = malloc(MAX(len, (size_t) 1));
                struct encoded e;

                if (!raw) {
                        a->failures++;
                        continue;
                }
                if (i % 2)
                        fill_text(raw, len, s);
                else
                        fill_random(raw, len, s);
                if (encode(a->codec, raw, len, &e) < 0 ||
                    !decode_equals(a->codec, e.id, e.stored, e.stored_len, raw, len, NULL))
                        a->failures++;
                free(e.stored);
                free(raw);
        }
        return NULL;
}

static void test_threads(const struct cairn_codec *c, const char *name) {
        struct thread_arg args[4];
        pthread_t threads[4];
        unsigned failures = 0;
        int started = 0;

        for (unsigned i = 0; i < ELEMENTSOF(threads); i++) {
                args[i] = (struct thread_arg) { .codec = c, .seed = 1000 + i };
                if (pthread_create(&threads[i], NULL, thread_main, &args[i]) == 0)
                        started++;
                else
                        break;
        }
        for (int i = 0; i < started; i++) {
                pthread_join(threads[i], NULL);
                failures += args[i].failures;
        }
        is(started, 4, "%s: 4 threads started", name);
        is(failures, 0, "%s: 4 threads x 50 blobs round trip through one codec", name);
}

int main(void) {
        struct cairn_codec *plain = NULL, *enc = NULL, *plain19 = NULL, *other = NULL, *plain_seg = NULL, *enc_seg = NULL;
        uint8_t other_key[CAIRN_KEY_SIZE];

        cairn_log_set_handler(log_count, NULL);
        fill_random(enc_key, sizeof enc_key, 11);
        fill_random(id_key, sizeof id_key, 12);

        test_new();

        if (cairn_codec_new(NULL, NULL, 3, 0, &plain) < 0 || cairn_codec_new(enc_key, id_key, 3, 0, &enc) < 0 ||
            cairn_codec_new(NULL, NULL, 19, 0, &plain19) < 0)
                BAIL_OUT("cairn_codec_new");
        memcpy(other_key, enc_key, sizeof other_key);
        other_key[17] ^= 4;
        if (cairn_codec_new(other_key, id_key, 3, 0, &other) < 0)
                BAIL_OUT("cairn_codec_new");

        test_round_trips(plain, "plain");
        test_round_trips(enc, "enc");
        test_threshold(plain, "plain");
        test_threshold(enc, "enc");
        test_threshold(plain19, "plain level 19");
        test_ids(plain, enc);

        test_bit_flips(enc, "enc", 0, false);
        test_bit_flips(enc, "enc", 300, false);
        test_bit_flips(enc, "enc", 3000, true);
        test_bit_flips(enc, "enc", 1 * MiB, true);
        test_bit_flips(enc, "enc", 1 * MiB, false);
        test_bit_flips(plain, "plain", 0, false);
        test_bit_flips(plain, "plain", 300, false);
        test_bit_flips(plain, "plain", 3000, true);
        test_bit_flips(plain, "plain", 1 * MiB, true);
        test_bit_flips(plain, "plain", 1 * MiB, false);

        test_wrong_inputs(enc, other, "enc", "another key's");
        test_wrong_inputs(enc, plain, "enc", "an unencrypted");
        test_wrong_inputs(plain, enc, "plain", "an encrypted");
        test_bad_authenticated_bodies(enc);
        test_bad_plain_bodies(plain);

        test_threads(plain, "plain");
        test_threads(enc, "enc");

        if (cairn_codec_new(NULL, NULL, 3, CAIRN_SEGMENT_DEFAULT, &plain_seg) < 0 ||
            cairn_codec_new(enc_key, id_key, 3, CAIRN_SEGMENT_DEFAULT, &enc_seg) < 0)
                BAIL_OUT("cairn_codec_new");
        test_segmented(plain_seg, plain, "plain, segments");
        test_segmented(enc_seg, enc, "enc, segments");
        test_bit_flips(enc_seg, "enc, segments", 1 * MiB, true);
        test_bit_flips(enc_seg, "enc, segments", 1 * MiB, false);
        test_bit_flips(plain_seg, "plain, segments", 1 * MiB, true);
        test_bit_flips(plain_seg, "plain, segments", 1 * MiB, false);
        test_threads(enc_seg, "enc, segments");
        {
                struct cairn_codec *bad = NULL;
                is(cairn_codec_new(NULL, NULL, 3, 100000, &bad), -EINVAL, "a segment size not a power of two is refused");
                is(cairn_codec_new(NULL, NULL, 3, 8 * KiB, &bad), -EINVAL, "a segment size below 16 KiB is refused");
                is(cairn_codec_new(NULL, NULL, 3, 16 * MiB, &bad), -EINVAL, "a segment size above 8 MiB is refused");
                ok(!bad, "no codec made for a bad segment size");
        }
        cairn_codec_free(plain_seg);
        cairn_codec_free(enc_seg);

        cairn_codec_free(plain);
        cairn_codec_free(enc);
        cairn_codec_free(plain19);
        cairn_codec_free(other);
        return tap_done();
}
