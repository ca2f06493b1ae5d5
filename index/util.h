/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers shared by libcairn and the programs: cleanup attributes
 * (after casync's src/util.h), byte order, hex, full reads/writes and
 * durable file publication.
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _unused_ __attribute__((unused))
#define streq(a, b) (strcmp((a), (b)) == 0)
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand ownership on: returns the pointer and leaves NULL behind. */
#define TAKE_PTR(p) ({ __typeof__(p) _p_ = (p); (p) = NULL; _p_; })
#define TAKE_FD(fd) ({ int _fd_ = (fd); (fd) = -1; _fd_; })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                 \
        static inline void func##p(type *p) {                   \
                if (*p)                                         \
                        func(*p);                               \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}

/* Little-endian (on-disk format) and big-endian (sortable LMDB keys). */
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static inline void put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static inline void put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static inline void put_be64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (56 - 8 * i); }
static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t) (p[0] | p[1] << 8); }
static inline uint32_t get_le32(const uint8_t *p) {
        uint32_t v = 0;
        for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
        return v;
}
static inline uint64_t get_le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
        return v;
}
static inline uint64_t get_be64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = v << 8 | p[i];
        return v;
}

/* Lower-case hex of @n bytes into @out (2n+1 bytes, NUL-terminated). Returns @out. */
char *hex_encode(const uint8_t *in, size_t n, char *out);
/* Parse exactly 2n hex digits. Returns 0 or -EINVAL. */
int hex_decode(const char *in, uint8_t *out, size_t n);

/* Loop over short reads/writes and EINTR. read_full returns bytes read
 * (short only at EOF) or -errno; write_full returns 0 or -errno. */
ssize_t read_full(int fd, void *buf, size_t n);
ssize_t pread_full(int fd, void *buf, size_t n, off_t off);
int write_full(int fd, const void *buf, size_t n);

/* Read a whole (small) file below @dirfd. *ret is malloc'd and NUL-terminated
 * (not counted in *ret_len). -EFBIG beyond @max bytes. */
int read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len);

/* Durably publish @data as @dir/@name (relative to @dirfd): write to a
 * temporary name in the same directory, fsync, rename, fsync the directory.
 * An existing file of that name is replaced atomically. */
int write_file_atomic_at(int dirfd, const char *dir, const char *name, const void *data, size_t n, mode_t mode);

/* fsync a directory by path relative to @dirfd. */
int fsync_dir_at(int dirfd, const char *path);

/* mkdir that treats EEXIST as success. */
int mkdir_at_p(int dirfd, const char *path, mode_t mode);

/* Append @name (@len bytes) and, when @dir, a '/' to the NUL-terminated
 * path *buf of *len bytes in a buffer of *cap bytes (grown as needed).
 * Walks of a tree use it for the path they report. 0 or -ENOMEM. */
int path_buf_push(char **buf, size_t *len, size_t *cap, const char *name, size_t name_len, bool dir);

/* Nanoseconds since the epoch (CLOCK_REALTIME). */
int64_t now_ns(void);
