/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"

static const uint8_t zero_id[CAIRN_ID_SIZE];

static bool id_is_zero(const uint8_t id[CAIRN_ID_SIZE]) {
        return memcmp(id, zero_id, CAIRN_ID_SIZE) == 0;
}

static size_t home(const uint8_t id[CAIRN_ID_SIZE], size_t size) {
        uint64_t h;
        memcpy(&h, id, sizeof h);
        return (size_t) h & (size - 1);
}

bool cairn_idset_has(const struct cairn_idset *s, const uint8_t id[CAIRN_ID_SIZE]) {
        if (id_is_zero(id))
                return s->has_zero;
        if (s->count == 0)
                return false;
        for (size_t i = home(id, s->size);; i = (i + 1) & (s->size - 1)) {
                if (id_is_zero(s->slot[i]))
                        return false;
                if (memcmp(s->slot[i], id, CAIRN_ID_SIZE) == 0)
                        return true;
        }
}

static void put_new(struct cairn_idset *s, const uint8_t id[CAIRN_ID_SIZE]) {
        size_t i = home(id, s->size);
        while (!id_is_zero(s->slot[i]))
                i = (i + 1) & (s->size - 1);
        memcpy(s->slot[i], id, CAIRN_ID_SIZE);
        s->count++;
}

int cairn_idset_add(struct cairn_idset *s, const uint8_t id[CAIRN_ID_SIZE]) {
        if (id_is_zero(id)) {
                bool had = s->has_zero;
                s->has_zero = true;
                return !had;
        }
        if (cairn_idset_has(s, id))
                return 0;
        if ((s->count + 1) * 2 > s->size) {
                size_t old_size = s->size, new_size = old_size ? old_size * 2 : 1024;
                uint8_t (*old)[CAIRN_ID_SIZE] = s->slot;

                s->slot = calloc(new_size, CAIRN_ID_SIZE);
                if (!s->slot) {
                        s->slot = old;
                        return -ENOMEM;
                }
                s->size = new_size;
                s->count = 0;
                for (size_t i = 0; i < old_size; i++)
                        if (!id_is_zero(old[i]))
                                put_new(s, old[i]);
                free(old);
        }
        put_new(s, id);
        return 1;
}

size_t cairn_idset_count(const struct cairn_idset *s) {
        return s->count + s->has_zero;
}

void cairn_idset_release(struct cairn_idset *s) {
        free(s->slot);
        *s = (struct cairn_idset) { 0 };
}
