/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A set of blob ids (prune's mark set, check's and verify-copy's "seen"
 * sets): open addressing with linear probing, at most half full, the
 * all-zero id marking a free slot (the zero id itself has a flag of its
 * own).  Ids are hashes, so any 8 of their bytes pick a uniform slot.
 *
 * Zero-initialize a struct cairn_idset to get an empty set; release it
 * with cairn_idset_release().  Not thread-safe.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

struct cairn_idset {
        uint8_t (*slot)[CAIRN_ID_SIZE];
        size_t size, count;          /* count: non-zero ids */
        bool has_zero;
};

bool cairn_idset_has(const struct cairn_idset *s, const uint8_t id[CAIRN_ID_SIZE]);
/* Add @id: 1 when it was new, 0 when it was there already, -ENOMEM. */
int cairn_idset_add(struct cairn_idset *s, const uint8_t id[CAIRN_ID_SIZE]);
/* Ids in the set, the zero id included. */
size_t cairn_idset_count(const struct cairn_idset *s);
/* Free the slots; the set is empty again. */
void cairn_idset_release(struct cairn_idset *s);
