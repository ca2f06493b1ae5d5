/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "link-map.h"

static size_t link_hash(uint64_t group, size_t cap) {
        return (size_t) ((group * 0x9e3779b97f4a7c15ULL) >> 17) & (cap - 1);
}

const char *bk_link_map_get(const struct bk_link_map *m, uint64_t group) {
        if (m->cap == 0)
                return NULL;
        for (size_t i = link_hash(group, m->cap);; i = (i + 1) & (m->cap - 1)) {
                if (m->slots[i].group == 0)
                        return NULL;
                if (m->slots[i].group == group)
                        return m->slots[i].path;
        }
}

static void link_insert(struct bk_link_slot *slots, size_t cap, uint64_t group, char *path) {
        size_t i = link_hash(group, cap);
        while (slots[i].group != 0)
                i = (i + 1) & (cap - 1);
        slots[i] = (struct bk_link_slot) { group, path };
}

int bk_link_map_put(struct bk_link_map *m, uint64_t group, const char *path) {
        char *copy;

        if ((m->n + 1) * 2 > m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 64;
                struct bk_link_slot *slots = calloc(cap, sizeof *slots);
                if (!slots)
                        return -ENOMEM;
                for (size_t i = 0; i < m->cap; i++)
                        if (m->slots[i].group != 0)
                                link_insert(slots, cap, m->slots[i].group, m->slots[i].path);
                free(m->slots);
                m->slots = slots;
                m->cap = cap;
        }
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        link_insert(m->slots, m->cap, group, copy);
        m->n++;
        return 0;
}

void bk_link_map_release(struct bk_link_map *m) {
        for (size_t i = 0; i < m->cap; i++)
                free(m->slots[i].path);
        free(m->slots);
        *m = (struct bk_link_map) { 0 };
}
