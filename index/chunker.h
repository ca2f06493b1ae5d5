/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Content-defined chunker (FastCDC with normalized chunking).
 *
 * A 256-entry gear table is derived from a 32-byte seed (from the
 * repository key, or from `config` for an unencrypted repository), so the
 * cut points of one repository say nothing about another's.  Cut points
 * depend only on the bytes since the previous cut: the same data yields the
 * same chunks wherever it appears, which is what makes an insert at the
 * start of a dump cost one or two chunks, not the whole file.
 *
 * A chunker is immutable after creation: one instance may be used from
 * many threads at once.
 */

#include <stddef.h>
#include <stdint.h>

struct cairn_chunker_params {
        uint32_t min_size;  /* no cut before this many bytes (except at EOF) */
        uint32_t avg_size;  /* target mean; a power of two */
        uint32_t max_size;  /* always cut here */
};

/* DESIGN.md defaults: 512 KiB / 1 MiB / 8 MiB. */
#define CAIRN_CHUNK_MIN_DEFAULT (512u * 1024)
#define CAIRN_CHUNK_AVG_DEFAULT (1024u * 1024)
#define CAIRN_CHUNK_MAX_DEFAULT (8u * 1024 * 1024)

struct cairn_chunker;

/* Validate @params (64 <= min < avg < max <= 64 MiB, avg a power of two)
 * and build the gear table from @seed.  -EINVAL for bad parameters,
 * -ENOMEM.  The caller owns *ret and frees it with cairn_chunker_free(). */
int cairn_chunker_new(const struct cairn_chunker_params *params, const uint8_t seed[32],
                      struct cairn_chunker **ret);

/* Accepts NULL; returns NULL. */
struct cairn_chunker *cairn_chunker_free(struct cairn_chunker *c);
static inline void cairn_chunker_freep(struct cairn_chunker **c) {
        cairn_chunker_free(*c);
}

const struct cairn_chunker_params *cairn_chunker_params(const struct cairn_chunker *c);

/* Length of the next chunk at the start of @buf[0..len).
 *
 * The caller must pass at least max_size bytes unless the input ends
 * within @buf (then pass everything that is left): the result is only
 * meaningful under that rule.  Returns a value in [1, len] for len > 0
 * (len itself when len <= min_size) and 0 for len == 0.  Never fails. */
size_t cairn_chunker_cut(const struct cairn_chunker *c, const uint8_t *buf, size_t len);
