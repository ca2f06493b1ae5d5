/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Hard-link groups seen so far in one walk of a snapshot: group id → the
 * path of the member handled first (restore links the others to it,
 * export writes them as hard-link entries).  Group ids are unique only
 * within one snapshot, so a map lives for one walk.  Open addressing,
 * at most half full.  Zero-initialize to get an empty map.
 */

#include <stddef.h>
#include <stdint.h>

struct bk_link_map {
        struct bk_link_slot {
                uint64_t group;          /* 0: free */
                char *path;
        } *slots;
        size_t n, cap;                   /* cap: 0 or a power of two */
};

/* The path of @group's first member (borrowed), or NULL. */
const char *bk_link_map_get(const struct bk_link_map *m, uint64_t group);
/* Remember @path (copied) for @group, which must not be in the map yet.
 * 0 or -ENOMEM. */
int bk_link_map_put(struct bk_link_map *m, uint64_t group, const char *path);
void bk_link_map_release(struct bk_link_map *m);
