/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunker.h"
#include "crypto.h"
#include "util.h"

/*
 * Format v1 chunker: part of the repository format, since a different cut
 * for the same bytes would store everything again.  Changing the gear
 * derivation, the hash update, the mask layout or the skip rule needs a new
 * format version.
 *
 * Gear table: entry 4j+k (j = 0..63, k = 0..3) is little-endian u64 number k
 * of SHA-256(GEAR_INFO || seed || le32(j)).
 *
 * Hash: h = (h << 1) + gear[byte].  After 64 bytes every older byte has been
 * shifted out, so h at a position is a function of the 64 bytes ending
 * there and of nothing else.
 *
 * Cut test: the top N bits of h are zero (the top bits are the ones that
 * mix the whole 64-byte window; the low bits only see the last few bytes).
 * Normalized chunking, level 2, with b = log2(avg): N = b + 2 before avg
 * bytes, N = b - 2 from avg on, which squeezes chunk sizes towards avg.
 * A chunk of length L ends after byte L-1 where the test first holds with
 * L-1 >= min, or at max.
 */

#define GEAR_INFO "cairn v1 chunker gear"
#define WINDOW 64                /* bits in h: how far back a byte counts */
#define NORMALIZATION 2
#define SIZE_LIMIT (64u * 1024 * 1024)

struct cairn_chunker {
        uint64_t gear[256];
        uint64_t mask_small;     /* before avg: harder to match */
        uint64_t mask_large;     /* from avg on: easier to match */
        struct cairn_chunker_params params;
};

static bool power_of_two(uint32_t v) {
        return v && !(v & (v - 1));
}

static unsigned log2_u32(uint32_t v) {
        return 31u - (unsigned) __builtin_clz(v);
}

/* The top @bits bits of a u64. */
static uint64_t top_mask(unsigned bits) {
        return ~UINT64_C(0) << (64 - bits);
}

static void derive_gear(const uint8_t seed[32], uint64_t gear[256]) {
        uint8_t in[sizeof GEAR_INFO - 1 + 32 + 4], out[CAIRN_ID_SIZE];

        memcpy(in, GEAR_INFO, sizeof GEAR_INFO - 1);
        memcpy(in + sizeof GEAR_INFO - 1, seed, 32);
        for (uint32_t j = 0; j < 256 / 4; j++) {
                put_le32(in + sizeof in - 4, j);
                cairn_sha256(in, sizeof in, out);
                for (unsigned k = 0; k < 4; k++)
                        gear[4 * j + k] = get_le64(out + 8 * k);
        }
        /* The seed is derived from the master key in an encrypted
         * repository: leave no copy of it on the stack. */
        explicit_bzero(in, sizeof in);
        explicit_bzero(out, sizeof out);
}

int cairn_chunker_new(const struct cairn_chunker_params *params, const uint8_t seed[32],
                      struct cairn_chunker **ret) {
        struct cairn_chunker *c;
        unsigned bits;

        if (!params || !seed || !ret)
                return -EINVAL;
        if (params->min_size < WINDOW || params->min_size >= params->avg_size ||
            params->avg_size >= params->max_size || params->max_size > SIZE_LIMIT ||
            !power_of_two(params->avg_size))
                return -EINVAL;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;

        c->params = *params;
        derive_gear(seed, c->gear);
        /* min >= 64 and avg > min make avg >= 128 and bits >= 7, so both
         * masks have between 5 and 27 bits. */
        bits = log2_u32(params->avg_size);
        c->mask_small = top_mask(bits + NORMALIZATION);
        c->mask_large = top_mask(bits - NORMALIZATION);

        *ret = c;
        return 0;
}

struct cairn_chunker *cairn_chunker_free(struct cairn_chunker *c) {
        if (!c)
                return NULL;
        explicit_bzero(c->gear, sizeof c->gear);
        free(c);
        return NULL;
}

const struct cairn_chunker_params *cairn_chunker_params(const struct cairn_chunker *c) {
        return &c->params;
}

size_t cairn_chunker_cut(const struct cairn_chunker *c, const uint8_t *buf, size_t len) {
        const uint64_t *gear = c->gear;
        const uint64_t mask_small = c->mask_small, mask_large = c->mask_large;
        size_t i, normal, end;
        uint64_t h = 0;

        if (len <= c->params.min_size)
                return len;

        end = MIN(len, (size_t) c->params.max_size);
        normal = MIN(end, (size_t) c->params.avg_size);

        /* Warm the hash over the 64 bytes before min so that the first
         * position tested already sees a full window: the cut then depends
         * only on those 64 bytes, not on where the chunk started. */
        for (i = c->params.min_size - WINDOW; i < c->params.min_size; i++)
                h = (h << 1) + gear[buf[i]];

        /* Byte i ends the chunk when the test holds after hashing it. */
        for (; i < normal; i++) {
                h = (h << 1) + gear[buf[i]];
                if (!(h & mask_small))
                        return i + 1;
        }
        for (; i < end; i++) {
                h = (h << 1) + gear[buf[i]];
                if (!(h & mask_large))
                        return i + 1;
        }
        return end;
}
