/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "crypto.h"
#include "fault.h"
#include "util.h"

char *hex_encode(const uint8_t *in, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * n] = 0;
        return out;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t n) {
        if (strlen(in) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int hi = unhex(in[2 * i]), lo = unhex(in[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

ssize_t read_full(int fd, void *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                ssize_t k = read(fd, (char *) buf + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

ssize_t pread_full(int fd, void *buf, size_t n, off_t off) {
        size_t done = 0;
        while (done < n) {
                ssize_t k = pread(fd, (char *) buf + done, n - done, off + (off_t) done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

int write_full(int fd, const void *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                ssize_t k = write(fd, (const char *) buf + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) k;
        }
        return 0;
}

int read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ssize_t n;

        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        n = read_full(fd, buf, (size_t) st.st_size);
        if (n < 0)
                return (int) n;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = (size_t) n;
        return 0;
}

int fsync_dir_at(int dirfd, const char *path) {
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int mkdir_at_p(int dirfd, const char *path, mode_t mode) {
        if (mkdirat(dirfd, path, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int write_file_atomic_at(int dirfd, const char *dir, const char *name, const void *data, size_t n, mode_t mode) {
        char tmp[4096], final[4096];
        uint8_t rnd[8];
        char rhex[17];
        _cleanup_close_ int fd = -1;
        int r;

        r = cairn_random_bytes(rnd, sizeof rnd);
        if (r < 0)
                return r;
        if ((size_t) snprintf(tmp, sizeof tmp, "%s/.tmp-%s", dir, hex_encode(rnd, sizeof rnd, rhex)) >= sizeof tmp ||
            (size_t) snprintf(final, sizeof final, "%s/%s", dir, name) >= sizeof final)
                return -ENAMETOOLONG;

        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        r = write_full(fd, data, n);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0)
                cairn_fault_point("atomic-write.tmp-written");
        if (r >= 0 && renameat(dirfd, tmp, dirfd, final) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        cairn_fault_point("atomic-write.renamed");
        return fsync_dir_at(dirfd, dir);
}

int64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int path_buf_push(char **buf, size_t *len, size_t *cap, const char *name, size_t name_len, bool dir) {
        size_t need = *len + name_len + 2;

        if (need > *cap) {
                size_t ncap = MAX(need, *cap * 2);
                char *p = realloc(*buf, ncap);
                if (!p)
                        return -ENOMEM;
                *buf = p;
                *cap = ncap;
        }
        memcpy(*buf + *len, name, name_len);
        *len += name_len;
        if (dir)
                (*buf)[(*len)++] = '/';
        (*buf)[*len] = 0;
        return 0;
}
