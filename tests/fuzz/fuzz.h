/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared by the fuzz targets (tests/fuzz/fuzz-*.c).  Each target defines
 * LLVMFuzzerTestOneInput() and, if it needs set-up once per process,
 * LLVMFuzzerInitialize().  With clang they link libFuzzer
 * (-fsanitize=fuzzer); otherwise fuzz-main.c drives them over the corpus
 * files (and a few thousand cheap mutations of them), so a gcc build
 * still replays every seed and regression input.
 *
 * A target must never exit() on bad input and must free everything it
 * allocated: a leak is a finding too (LeakSanitizer).  Anything the code
 * under test returns is fine; only a crash, a sanitizer report or a
 * failed FUZZ_CHECK() (a broken invariant, e.g. a decode/encode round
 * trip that does not give back the input) is a bug.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test: abort (a crash the fuzzer keeps). */
#define FUZZ_CHECK(cond) do {                                                   \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n",       \
                                __FILE__, __LINE__, #cond);                     \
                        abort();                                                \
                }                                                               \
        } while (0)

static inline void fuzz_log_drop(int level, const char *msg, void *userdata) {
        (void) level;
        (void) msg;
        (void) userdata;
}

/* libcairn's messages would drown the fuzzer's own; $FUZZ_VERBOSE keeps
 * them (to see why an input is refused). */
static inline void fuzz_quiet(void) {
        if (!getenv("FUZZ_VERBOSE"))
                cairn_log_set_handler(fuzz_log_drop, NULL);
        else
                cairn_log_set_level(CAIRN_LOG_DEBUG);
}

/* An anonymous file holding @data, positioned at 0; -1 on failure. */
static inline int fuzz_memfd(const char *name, const void *data, size_t size) {
        int fd = memfd_create(name, MFD_CLOEXEC);
        const uint8_t *p = data;
        size_t done = 0;

        if (fd < 0)
                return -1;
        while (done < size) {
                ssize_t n = write(fd, p + done, size - done);
                if (n <= 0) {
                        close(fd);
                        return -1;
                }
                done += (size_t) n;
        }
        if (lseek(fd, 0, SEEK_SET) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* A private directory for the whole process (removed by nobody: the
 * fuzzer may die at any point; it lives under $TMPDIR or /tmp).  Aborts
 * when none can be made, which is no finding of the code under test but
 * makes the run useless. */
static inline const char *fuzz_tmpdir(const char *name) {
        static char path[4096];
        const char *base = getenv("TMPDIR");

        if (path[0])
                return path;
        snprintf(path, sizeof path, "%s/%s.XXXXXX", base && *base ? base : "/tmp", name);
        if (!mkdtemp(path)) {
                perror("fuzz: mkdtemp");
                abort();
        }
        return path;
}

/* Replace the file @dir/@name with @data (not atomically: one process). */
static inline int fuzz_write_file(const char *dir, const char *name, const void *data, size_t size) {
        char path[8192];
        const uint8_t *p = data;
        size_t done = 0;
        int fd;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        while (done < size) {
                ssize_t n = write(fd, p + done, size - done);
                if (n <= 0) {
                        close(fd);
                        return -EIO;
                }
                done += (size_t) n;
        }
        close(fd);
        return 0;
}
