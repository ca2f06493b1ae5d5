/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Temporary directories and small helpers for the unit tests. */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static inline void test_rm_rf(const char *path) {
        nftw(path, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under $CAIRN_TEST_TMPDIR (or /tmp); malloc'd path. */
static inline char *test_mkdtemp(const char *name) {
        const char *base = getenv("CAIRN_TEST_TMPDIR");
        char *p;
        if (asprintf(&p, "%s/%s.XXXXXX", base ? base : "/tmp", name) < 0 || !mkdtemp(p)) {
                printf("Bail out! cannot create a temporary directory\n");
                exit(1);
        }
        return p;
}

/* Deterministic pseudo-random bytes (splitmix64). */
static inline void test_fill_random(void *buf, size_t n, uint64_t seed) {
        uint8_t *p = buf;
        for (size_t i = 0; i < n; i += 8) {
                uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
                z ^= z >> 31;
                memcpy(p + i, &z, n - i < 8 ? n - i : 8);
        }
}

/* Captures libcairn's last error message (install with cairn_log_set_handler). */
static char test_last_log[2048];
static inline void test_log_capture(int level, const char *msg, void *userdata) {
        if (level <= 4)
                snprintf(test_last_log, sizeof test_last_log, "%s", msg);
}
