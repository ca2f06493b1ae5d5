/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The repository object's innards, shared by repo.c and rebuild.c only. */

#include "repo.h"

#define CAIRN_REPO_ID_SIZE 16

struct cairn_repo {
        char *path;
        int fd;                                 /* the repository directory */
        uint8_t id[CAIRN_REPO_ID_SIZE];
        struct cairn_repo_params params;
        uint8_t chunker_seed[CAIRN_KEY_SIZE];
        uint8_t enc_key[CAIRN_KEY_SIZE];        /* valid when params.encrypted */
        uint8_t id_key[CAIRN_KEY_SIZE];
        struct cairn_codec *codec;
        struct cairn_chunker *chunker;
        struct cairn_index *index;              /* replaced only by rebuild, single-threaded */
};

/* Close the open index, swap directory @new_dir (relative to the
 * repository) in as index/, reopen it. */
int cairn_repo_swap_index(struct cairn_repo *r, const char *new_dir);

/* rm -rf of a directory below @dirfd (only regular files and empty dirs
 * expected: an LMDB environment). */
int cairn_rm_dir_at(int dirfd, const char *path);
