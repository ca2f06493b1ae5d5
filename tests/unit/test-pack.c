/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "log.h"
#include "pack.h"
#include "util.h"

#include "tap.h"

#define KiB 1024u
#define MiB (1024u * 1024)
#define N_BLOBS 200

static unsigned errors_logged;
static char last_error[2048];

static void log_capture(int level, const char *msg, void *userdata) {
        if (level <= CAIRN_LOG_ERR) {
                errors_logged++;
                snprintf(last_error, sizeof last_error, "%s", msg);
        }
}

static uint64_t prng_next(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static void fill(uint8_t *p, size_t n, uint64_t seed, bool compressible) {
        for (size_t i = 0; i < n; i++)
                p[i] = compressible ? (uint8_t) ("abcabd\n"[prng_next(&seed) % 7]) : (uint8_t) prng_next(&seed);
}

static void *xmalloc(size_t n) {
        void *p = malloc(MAX(n, (size_t) 1));
        if (!p)
                BAIL_OUT("out of memory");
        return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int count_tmp_files(int repo_fd) {
        int fd = openat(repo_fd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct dirent *de;
        DIR *d;
        int n = 0;

        if (fd < 0 || !(d = fdopendir(fd)))
                BAIL_OUT("cannot list packs/");
        while ((de = readdir(d)))
                if (strncmp(de->d_name, ".tmp-", 5) == 0)
                        n++;
        closedir(d);
        return n;
}

static int read_whole(int dir_fd, const char *path, uint8_t **ret, size_t *ret_len) {
        _cleanup_close_ int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint8_t *buf;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        buf = xmalloc((size_t) st.st_size);
        if (pread_full(fd, buf, (size_t) st.st_size, 0) != st.st_size) {
                free(buf);
                return -EIO;
        }
        *ret = buf;
        *ret_len = (size_t) st.st_size;
        return 0;
}

struct blob {
        uint8_t type;
        uint8_t id[CAIRN_ID_SIZE];
        uint8_t *raw, *stored;
        size_t raw_len, stored_len;
};

static void blob_make(const struct cairn_codec *c, struct blob *b, uint8_t type, size_t len, uint64_t seed,
                      bool compressible) {
        b->type = type;
        b->raw_len = len;
        b->raw = xmalloc(len);
        fill(b->raw, len, seed, compressible);
        cairn_codec_id(c, b->raw, len, b->id);
        b->stored = xmalloc(cairn_codec_bound(c, len));
        if (cairn_codec_encode(c, b->id, b->raw, len, b->stored, &b->stored_len) < 0)
                BAIL_OUT("encode");
}

static void blob_release(struct blob *b) {
        free(b->raw);
        free(b->stored);
}

/* Mixed types and sizes: empty, small (buffered), medium, and a few
 * beyond the write buffer (written directly). */
static size_t blob_size(unsigned i, uint64_t *s) {
        if (i == 0)
                return 0;
        if (i % 50 == 1)
                return 1 * MiB + 512 * KiB + prng_next(s) % 4096;
        if (i % 7 == 0)
                return 256 * KiB + prng_next(s) % (256 * KiB);
        if (i % 5 == 0)
                return 64 * KiB;
        return 1 + prng_next(s) % 4096;
}

static bool entry_matches(const struct cairn_pack_entry *e, const struct blob *b, uint64_t offset) {
        return e->type == b->type && memcmp(e->id, b->id, CAIRN_ID_SIZE) == 0 && e->offset == offset &&
               e->stored_len == b->stored_len && e->raw_len == b->raw_len;
}

static bool entries_equal(const struct cairn_pack_entry *a, const struct cairn_pack_entry *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (a[i].type != b[i].type || memcmp(a[i].id, b[i].id, CAIRN_ID_SIZE) != 0 ||
                    a[i].offset != b[i].offset || a[i].stored_len != b[i].stored_len || a[i].raw_len != b[i].raw_len)
                        return false;
        return true;
}

/* read_trailer_fd on @fd; frees what it returns. */
static int trailer_r(int fd, const struct cairn_codec *c, size_t *ret_n) {
        struct cairn_pack_entry *entries = NULL;
        size_t n = 0;
        int r = cairn_pack_read_trailer_fd(fd, c, &entries, &n);
        free(entries);
        if (ret_n)
                *ret_n = n;
        return r;
}

static int write_victim(int dir_fd, const uint8_t *data, size_t len) {
        int fd = openat(dir_fd, "victim", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write_full(fd, data, len) < 0)
                BAIL_OUT("cannot write the victim file");
        return fd;
}

/* Damage a copy of a good pack in every way the trailer check must catch. */
static void test_damaged_trailers(int dir_fd, const struct cairn_codec *c, const char *name,
                                  const uint8_t *pack, size_t size, const struct cairn_pack_entry *expect,
                                  size_t n_expect) {
        const struct cairn_pack_entry *last = &expect[n_expect - 1];
        size_t trailer_start = last->offset + last->stored_len, bad, tried, harmless;
        unsigned logged_before;
        _cleanup_close_ int fd = -1;
        uint8_t orig;
        int r;

        fd = write_victim(dir_fd, pack, size);
        is(trailer_r(fd, c, NULL), 0, "%s: an undamaged copy reads", name);

        /* Damage to blob bytes is the blob's business, not the trailer's. */
        orig = pack[trailer_start - 1];
        if (pwrite(fd, (uint8_t[]) { orig ^ 0xff }, 1, (off_t) trailer_start - 1) != 1)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), 0, "%s: a damaged blob byte leaves the trailer readable", name);
        if (pwrite(fd, &orig, 1, (off_t) trailer_start - 1) != 1)
                BAIL_OUT("pwrite");

        /* Every byte of header, trailer and footer.  The trailer is
         * authenticated as a whole when encrypted; unencrypted, its SHA-256
         * covers the plaintext only, so a bit zstd ignores may go unseen,
         * but then the entries must come out exactly right. */
        bad = tried = harmless = 0;
        logged_before = errors_logged;
        for (size_t pos = 0; pos < size; pos++) {
                bool header = pos < CAIRN_PACK_HEADER_SIZE, trailer_or_footer = pos >= trailer_start;
                struct cairn_pack_entry *got = NULL;
                size_t n_got = 0;

                if (!header && !trailer_or_footer)
                        continue;
                orig = pack[pos];
                if (pwrite(fd, (uint8_t[]) { orig ^ (uint8_t) (1u << (pos % 8)) }, 1, (off_t) pos) != 1)
                        BAIL_OUT("pwrite");
                tried++;
                r = cairn_pack_read_trailer_fd(fd, c, &got, &n_got);
                if (r == 0 && !cairn_codec_encrypted(c) && pos < size - CAIRN_PACK_FOOTER_SIZE &&
                    n_got == n_expect && entries_equal(got, expect, n_got))
                        harmless++;
                else if (r != -EBADMSG && bad++ == 0)
                        diag("flipped byte %zu of %zu: r=%d", pos, size, r);
                free(got);
                if (pwrite(fd, &orig, 1, (off_t) pos) != 1)
                        BAIL_OUT("pwrite");
        }
        ok(bad == 0, "%s: a flipped bit in any of %zu header/trailer/footer bytes is -EBADMSG (or, unencrypted, "
           "leaves the entries intact: %zu)", name, tried, harmless);
        ok(harmless * 100 <= tried, "%s: at most 1%% of the flips are harmless", name);
        ok(errors_logged - logged_before >= tried - harmless, "%s: each rejection logged a reason (last: %s)",
           name, last_error);

        /* Truncation to every length in the last 200 bytes, and a stride of
         * lengths before that, down to 0. */
        bad = tried = 0;
        for (size_t len = size; len-- > 0;) {
                if (size - len > 200 && len % 997 != 0 && len > 64)
                        continue;
                if (ftruncate(fd, (off_t) len) < 0)
                        BAIL_OUT("ftruncate");
                tried++;
                r = trailer_r(fd, c, NULL);
                if (r != -EBADMSG && bad++ == 0)
                        diag("truncated to %zu of %zu: r=%d", len, size, r);
        }
        ok(bad == 0, "%s: %zu truncations (0 .. size-1) are -EBADMSG", name, tried);

        /* Zero-length file: the last step above; once more by itself. */
        if (ftruncate(fd, 0) < 0)
                BAIL_OUT("ftruncate");
        is(trailer_r(fd, c, NULL), -EBADMSG, "%s: a zero-length file is -EBADMSG", name);

        /* A pack grown by a byte: the footer is no longer at the end. */
        if (pwrite(fd, pack, size, 0) != (ssize_t) size || pwrite(fd, "", 1, (off_t) size) != 1)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), -EBADMSG, "%s: a trailing byte is -EBADMSG", name);

        /* Bad magics, whole. */
        if (ftruncate(fd, (off_t) size) < 0 || pwrite(fd, "CAIRNPK\x02", 8, 0) != 8)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), -EBADMSG, "%s: bad header magic", name);
        if (pwrite(fd, pack, 8, 0) != 8 || pwrite(fd, "XXXXXXXX", 8, (off_t) size - 8) != 8)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), -EBADMSG, "%s: bad footer magic", name);
        if (pwrite(fd, pack + size - 8, 8, (off_t) size - 8) != 8)
                BAIL_OUT("pwrite");

        /* Extreme footer lengths. */
        if (pwrite(fd, "\xff\xff\xff\xff", 4, (off_t) size - 16) != 4)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), -EBADMSG, "%s: trailer stored length 2^32-1", name);
        if (pwrite(fd, pack + size - 16, 4, (off_t) size - 16) != 4 ||
            pwrite(fd, "\xff\xff\xff\xff", 4, (off_t) size - 12) != 4)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), -EBADMSG, "%s: trailer raw length 2^32-1", name);
        if (pwrite(fd, "\0\0\0\0", 4, (off_t) size - 12) != 4)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), -EBADMSG, "%s: trailer raw length 0", name);
        if (pwrite(fd, pack + size - 12, 4, (off_t) size - 12) != 4)
                BAIL_OUT("pwrite");
        is(trailer_r(fd, c, NULL), 0, "%s: restored copy reads again", name);

        (void) unlinkat(dir_fd, "victim", 0);
}

/* A pack whose trailer authenticates but says something impossible: a
 * buggy writer could make it, and in an unencrypted repository anyone can
 * (the trailer id is a plain SHA-256). */
struct crafted_entry {
        uint8_t type;
        uint64_t offset;
        uint32_t stored_len, raw_len;
};

static int crafted_pack(int dir_fd, const struct cairn_codec *c, size_t area, const struct crafted_entry *ce,
                        size_t n, int count_delta, size_t extra_plain) {
        size_t plain_len = 4 + n * CAIRN_PACK_ENTRY_SIZE + extra_plain, stored_len, size;
        uint8_t *plain = xmalloc(plain_len), *file, tid[CAIRN_ID_SIZE], *p;
        _cleanup_close_ int fd = -1;
        int r;

        memset(plain, 0, plain_len);
        put_le32(plain, (uint32_t) ((int) n + count_delta));
        p = plain + 4;
        for (size_t i = 0; i < n; i++, p += CAIRN_PACK_ENTRY_SIZE) {
                p[0] = ce[i].type;
                memset(p + 1, (int) i, CAIRN_ID_SIZE);
                put_le64(p + 33, ce[i].offset);
                put_le32(p + 41, ce[i].stored_len);
                put_le32(p + 45, ce[i].raw_len);
        }

        file = xmalloc(8 + area + cairn_codec_bound(c, plain_len) + CAIRN_PACK_FOOTER_SIZE);
        memcpy(file, "CAIRNPK\x01", 8);
        fill(file + 8, area, area, false);
        cairn_codec_id(c, plain, plain_len, tid);
        if (cairn_codec_encode(c, tid, plain, plain_len, file + 8 + area, &stored_len) < 0)
                BAIL_OUT("encode");
        p = file + 8 + area + stored_len;
        memcpy(p, tid, CAIRN_ID_SIZE);
        put_le32(p + 32, (uint32_t) stored_len);
        put_le32(p + 36, (uint32_t) plain_len);
        memcpy(p + 40, "CAIRNTR\x01", 8);
        size = 8 + area + stored_len + CAIRN_PACK_FOOTER_SIZE;

        fd = write_victim(dir_fd, file, size);
        r = trailer_r(fd, c, NULL);
        free(file);
        free(plain);
        (void) unlinkat(dir_fd, "victim", 0);
        return r;
}

static void test_crafted_trailers(int dir_fd, const struct cairn_codec *c, const char *name) {
        uint32_t min = (uint32_t) cairn_codec_bound(c, 0), s = min + 100;
        size_t area = 10000;
        uint64_t end = 8 + area;

        struct crafted_entry good[] = {
                { CAIRN_BLOB_DATA, 8, s, 100 },
                { CAIRN_BLOB_TREE, 8 + s, s, 100 },
                { CAIRN_BLOB_CONTENT, end - s, s, 100 },
        };
        is(crafted_pack(dir_fd, c, area, good, 3, 0, 0), 0, "%s: crafted valid trailer reads (control)", name);
        is(crafted_pack(dir_fd, c, area, NULL, 0, 0, 0), 0, "%s: crafted empty trailer reads (control)", name);

        is(crafted_pack(dir_fd, c, area, good, 3, 1, 0), -EBADMSG, "%s: count one too high", name);
        is(crafted_pack(dir_fd, c, area, good, 3, -1, 0), -EBADMSG, "%s: count one too low", name);
        is(crafted_pack(dir_fd, c, area, good, 3, 0, 1), -EBADMSG, "%s: trailer plaintext not 4 + 49n bytes", name);

        struct { const char *what; struct crafted_entry e; } bad[] = {
                { "type 0", { 0, 8, s, 100 } },
                { "type 4", { 4, 8, s, 100 } },
                { "type 255", { 255, 8, s, 100 } },
                { "offset inside the header", { 1, 7, s, 100 } },
                { "offset 0", { 1, 0, s, 100 } },
                { "blob running into the trailer", { 1, end - s + 1, s, 100 } },
                { "offset beyond the file", { 1, end + 1000, s, 100 } },
                { "offset near 2^64", { 1, UINT64_MAX - 10, s, 100 } },
                { "stored length 0", { 1, 8, 0, 0 } },
                { "stored length below the codec minimum", { 1, 8, min - 1, 0 } },
                { "stored length beyond the codec bound", { 1, 8, min + 101, 100 } },
                { "raw length beyond CAIRN_BLOB_MAX", { 1, 8, s, CAIRN_BLOB_MAX + 1 } },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                is(crafted_pack(dir_fd, c, area, &bad[i].e, 1, 0, 0), -EBADMSG, "%s: %s", name, bad[i].what);

        struct crafted_entry overlap[] = { { 1, 8, s, 100 }, { 1, 8 + s - 1, s, 100 } };
        is(crafted_pack(dir_fd, c, area, overlap, 2, 0, 0), -EBADMSG, "%s: overlapping entries", name);
        struct crafted_entry same[] = { { 1, 8, s, 100 }, { 1, 8, s, 100 } };
        is(crafted_pack(dir_fd, c, area, same, 2, 0, 0), -EBADMSG, "%s: two entries at one offset", name);
        struct crafted_entry order[] = { { 1, 8 + s, s, 100 }, { 1, 8, s, 100 } };
        is(crafted_pack(dir_fd, c, area, order, 2, 0, 0), -EBADMSG, "%s: entries out of order", name);
        struct crafted_entry gap[] = { { 1, 8, s, 100 }, { 1, 8 + 2 * s, s, 100 } };
        is(crafted_pack(dir_fd, c, area, gap, 2, 0, 0), 0, "%s: a gap between entries is allowed", name);

        /* More entries than the blob area could hold, each of them valid
         * on its own but together impossible. */
        struct crafted_entry *many = xmalloc(200 * sizeof *many);
        for (size_t i = 0; i < 200; i++)
                many[i] = (struct crafted_entry) { 1, 8 + i * min, min, 0 };
        is(crafted_pack(dir_fd, c, 100, many, 200, 0, 0), -EBADMSG, "%s: more entries than the file can hold", name);
        free(many);
}

struct reader_arg {
        int repo_fd;
        const struct cairn_codec *codec;
        const uint8_t *pack_id;
        const struct cairn_pack_entry *entries;
        const struct blob *blobs;
        unsigned first, failures;
};

/* Readers share nothing but the codec and the directory fd. */
static void *reader_main(void *p) {
        struct reader_arg *a = p;

        for (unsigned k = 0; k < N_BLOBS; k++) {
                unsigned i = (a->first + k * 7) % N_BLOBS;
                const struct cairn_pack_entry *e = &a->entries[i];
                uint8_t *out = malloc(MAX((size_t) e->raw_len, (size_t) 1));

                if (!out || cairn_pack_read_blob(a->repo_fd, a->codec, a->pack_id, e->id, e->offset, e->stored_len,
                                                 out, e->raw_len) < 0 ||
                    memcmp(out, a->blobs[i].raw, e->raw_len) != 0)
                        a->failures++;
                free(out);
        }
        return NULL;
}

static void test_parallel_reads(int repo_fd, const struct cairn_codec *c, const char *name, const uint8_t *pack_id,
                                const struct cairn_pack_entry *entries, const struct blob *blobs) {
        struct reader_arg args[4];
        pthread_t threads[4];
        unsigned failures = 0;
        int started = 0;

        for (unsigned i = 0; i < ELEMENTSOF(threads); i++) {
                args[i] = (struct reader_arg) { repo_fd, c, pack_id, entries, blobs, i * 50, 0 };
                if (pthread_create(&threads[i], NULL, reader_main, &args[i]) != 0)
                        break;
                started++;
        }
        for (int i = 0; i < started; i++) {
                pthread_join(threads[i], NULL);
                failures += args[i].failures;
        }
        ok(started == 4 && failures == 0, "%s: 4 threads read all blobs at once (%u failures)", name, failures);
}

static void test_pack(int repo_fd, int dir_fd, const struct cairn_codec *c, const struct cairn_codec *wrong,
                      const char *name) {
        struct cairn_pack_writer *w = NULL;
        struct cairn_pack_entry *entries = NULL, *read_entries = NULL;
        struct blob *blobs = xmalloc(N_BLOBS * sizeof *blobs);
        uint8_t pack_id[CAIRN_ID_SIZE], hash[CAIRN_ID_SIZE], missing[CAIRN_ID_SIZE], *file = NULL, *out;
        char path[CAIRN_ID_SIZE * 2 + 16], dir[16];
        size_t n = 0, n_read = 0, file_len = 0, bad;
        uint64_t expect_size = CAIRN_PACK_HEADER_SIZE, offset;
        uint64_t seed = 77;
        struct stat st;
        int r;

        for (unsigned i = 0; i < N_BLOBS; i++) {
                size_t len = blob_size(i, &seed);
                blob_make(c, &blobs[i], (uint8_t) (1 + i % 3), len, seed + i, i % 3 != 1);
        }

        is(cairn_pack_writer_new(repo_fd, c, &w), 0, "%s: writer created", name);
        if (!w)
                BAIL_OUT("no writer");
        is(count_tmp_files(repo_fd), 1, "%s: one temporary file while writing", name);
        is(cairn_pack_writer_size(w), CAIRN_PACK_HEADER_SIZE, "%s: a new pack holds the header", name);

        bad = 0;
        for (unsigned i = 0; i < N_BLOBS; i++) {
                r = cairn_pack_writer_add(w, blobs[i].type, blobs[i].id, blobs[i].stored, blobs[i].stored_len,
                                          (uint32_t) blobs[i].raw_len);
                expect_size += blobs[i].stored_len;
                if (r < 0 || cairn_pack_writer_size(w) != expect_size || cairn_pack_writer_count(w) != i + 1)
                        bad++;
        }
        ok(bad == 0, "%s: %d blobs added, size and count track them", name, N_BLOBS);

        is(cairn_pack_writer_add(w, 0, blobs[1].id, blobs[1].stored, blobs[1].stored_len, (uint32_t) blobs[1].raw_len),
           -EINVAL, "%s: type 0 refused", name);
        is(cairn_pack_writer_add(w, 4, blobs[1].id, blobs[1].stored, blobs[1].stored_len, (uint32_t) blobs[1].raw_len),
           -EINVAL, "%s: type 4 refused", name);
        is(cairn_pack_writer_add(w, 1, blobs[1].id, blobs[1].stored, 0, 0), -EINVAL,
           "%s: stored length 0 refused", name);
        ok(cairn_pack_writer_count(w) == N_BLOBS && cairn_pack_writer_size(w) == expect_size,
           "%s: refused adds changed nothing", name);

        is(cairn_pack_writer_finish(w, pack_id, &entries, &n), 0, "%s: finish", name);
        is(n, N_BLOBS, "%s: finish lists every blob", name);
        bad = 0;
        offset = CAIRN_PACK_HEADER_SIZE;
        for (size_t i = 0; i < n && i < N_BLOBS; i++) {
                if (!entry_matches(&entries[i], &blobs[i], offset))
                        bad++;
                offset += blobs[i].stored_len;
        }
        ok(bad == 0, "%s: entries returned by finish describe the blobs in file order", name);
        is(cairn_pack_writer_add(w, 1, blobs[1].id, blobs[1].stored, blobs[1].stored_len, (uint32_t) blobs[1].raw_len),
           -EINVAL, "%s: add after finish refused", name);
        is(cairn_pack_writer_finish(w, hash, NULL, NULL), -EINVAL, "%s: second finish refused", name);
        w = cairn_pack_writer_free(w);

        /* The published file. */
        ok(cairn_pack_path(pack_id, path, sizeof path) != NULL, "%s: pack path", name);
        ok(cairn_pack_path(pack_id, path, 73) == NULL, "%s: pack path refuses a short buffer", name);
        ok(strlen(path) == 6 + 3 + 64 && strncmp(path, "packs/", 6) == 0 && strncmp(path + 6, path + 9, 2) == 0,
           "%s: path is packs/xx/<hex id>: %s", name, path);
        ok(fstatat(repo_fd, path, &st, 0) == 0 && S_ISREG(st.st_mode), "%s: pack file exists", name);
        is(st.st_mode & 07777, 0600, "%s: pack file mode 0600", name);
        snprintf(dir, sizeof dir, "%.8s", path);
        ok(fstatat(repo_fd, dir, &st, 0) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700,
           "%s: %s is a directory of mode 0700", name, dir);
        is(count_tmp_files(repo_fd), 0, "%s: no temporary file remains", name);
        is(read_whole(repo_fd, path, &file, &file_len), 0, "%s: pack readable", name);
        cairn_sha256(file, file_len, hash);
        ok(memcmp(hash, pack_id, CAIRN_ID_SIZE) == 0, "%s: SHA-256 of the file is its id", name);
        ok(file_len > expect_size + CAIRN_PACK_FOOTER_SIZE && memcmp(file, "CAIRNPK\x01", 8) == 0 &&
           memcmp(file + file_len - 8, "CAIRNTR\x01", 8) == 0, "%s: header and footer magics in place", name);

        /* Reading it back. */
        is(cairn_pack_read_trailer(repo_fd, c, pack_id, &read_entries, &n_read), 0, "%s: trailer reads", name);
        ok(n_read == n && entries_equal(read_entries, entries, n), "%s: trailer equals what finish returned", name);
        free(read_entries);

        bad = 0;
        for (size_t i = 0; i < N_BLOBS; i++) {
                out = xmalloc(blobs[i].raw_len);
                r = cairn_pack_read_blob(repo_fd, c, pack_id, entries[i].id, entries[i].offset, entries[i].stored_len,
                                         out, entries[i].raw_len);
                if (r < 0 || memcmp(out, blobs[i].raw, blobs[i].raw_len) != 0) {
                        if (bad++ == 0)
                                diag("blob %zu: r=%d", i, r);
                }
                free(out);
        }
        ok(bad == 0, "%s: all %d blobs read back to their original bytes", name, N_BLOBS);
        test_parallel_reads(repo_fd, c, name, pack_id, entries, blobs);

        out = xmalloc(blobs[3].raw_len + 1);
        is(cairn_pack_read_blob(repo_fd, c, pack_id, blobs[4].id, entries[3].offset, entries[3].stored_len, out,
                                entries[3].raw_len), -EBADMSG, "%s: blob under another id is -EBADMSG", name);
        is(cairn_pack_read_blob(repo_fd, c, pack_id, blobs[3].id, entries[3].offset + 1, entries[3].stored_len, out,
                                entries[3].raw_len), -EBADMSG, "%s: blob at a wrong offset is -EBADMSG", name);
        is(cairn_pack_read_blob(repo_fd, c, pack_id, blobs[3].id, entries[3].offset, entries[3].stored_len - 1, out,
                                entries[3].raw_len), -EBADMSG, "%s: blob with a wrong stored length is -EBADMSG", name);
        is(cairn_pack_read_blob(repo_fd, c, pack_id, blobs[3].id, file_len - 10, entries[3].stored_len, out,
                                entries[3].raw_len), -EBADMSG, "%s: blob beyond the end of the file is -EBADMSG", name);
        is(cairn_pack_read_blob(repo_fd, c, pack_id, blobs[3].id, 0, entries[3].stored_len, out,
                                entries[3].raw_len), -EBADMSG, "%s: blob at offset 0 is -EBADMSG", name);
        memcpy(missing, pack_id, sizeof missing);
        missing[0] ^= 0xff;
        is(cairn_pack_read_blob(repo_fd, c, missing, blobs[3].id, entries[3].offset, entries[3].stored_len, out,
                                entries[3].raw_len), -ENOENT, "%s: blob of a missing pack is -ENOENT", name);
        is(cairn_pack_read_trailer(repo_fd, c, missing, &read_entries, &n_read), -ENOENT,
           "%s: trailer of a missing pack is -ENOENT", name);
        is(cairn_pack_read_trailer(repo_fd, wrong, pack_id, &read_entries, &n_read), -EBADMSG,
           "%s: trailer read with the wrong codec is -EBADMSG", name);
        free(out);

        test_damaged_trailers(dir_fd, c, name, file, file_len, entries, n);

        /* Damage the published pack itself: the damaged blob fails, its
         * neighbours still read, and the log names pack and blob. */
        {
                _cleanup_close_ int fd = openat(repo_fd, path, O_RDWR | O_CLOEXEC);
                size_t k = 10, at = entries[k].offset + entries[k].stored_len / 2;
                char pack_hex[65], blob_hex[65];
                uint8_t b = file[at] ^ 0x10;

                if (fd < 0 || pwrite(fd, &b, 1, (off_t) at) != 1)
                        BAIL_OUT("cannot damage the pack");
                out = xmalloc(blobs[k].raw_len);
                is(cairn_pack_read_blob(repo_fd, c, pack_id, entries[k].id, entries[k].offset, entries[k].stored_len,
                                        out, entries[k].raw_len), -EBADMSG, "%s: damaged blob is -EBADMSG", name);
                ok(strstr(last_error, hex_encode(pack_id, CAIRN_ID_SIZE, pack_hex)) &&
                   strstr(last_error, hex_encode(entries[k].id, CAIRN_ID_SIZE, blob_hex)),
                   "%s: the error names pack and blob: %s", name, last_error);
                free(out);
                out = xmalloc(blobs[k + 1].raw_len);
                ok(cairn_pack_read_blob(repo_fd, c, pack_id, entries[k + 1].id, entries[k + 1].offset,
                                        entries[k + 1].stored_len, out, entries[k + 1].raw_len) == 0 &&
                   memcmp(out, blobs[k + 1].raw, blobs[k + 1].raw_len) == 0, "%s: its neighbour still reads", name);
                free(out);
        }

        free(file);
        free(entries);
        for (unsigned i = 0; i < N_BLOBS; i++)
                blob_release(&blobs[i]);
        free(blobs);
}

static void test_abandoned(int repo_fd, const struct cairn_codec *c, const char *name) {
        struct cairn_pack_writer *w = NULL;
        struct blob small, big;

        blob_make(c, &small, CAIRN_BLOB_TREE, 1000, 5, true);
        blob_make(c, &big, CAIRN_BLOB_DATA, 2 * MiB, 6, false);

        is(cairn_pack_writer_new(repo_fd, c, &w), 0, "%s: writer for an abandoned pack", name);
        if (!w)
                BAIL_OUT("no writer");
        ok(cairn_pack_writer_add(w, small.type, small.id, small.stored, small.stored_len, (uint32_t) small.raw_len) == 0 &&
           cairn_pack_writer_add(w, big.type, big.id, big.stored, big.stored_len, (uint32_t) big.raw_len) == 0,
           "%s: blobs added (one beyond the write buffer)", name);
        is(count_tmp_files(repo_fd), 1, "%s: the temporary file exists", name);
        ok(!cairn_pack_writer_free(w), "%s: free returns NULL", name);
        is(count_tmp_files(repo_fd), 0, "%s: freeing an unfinished writer removes its temporary file", name);
        ok(!cairn_pack_writer_free(NULL), "free(NULL) returns NULL");

        blob_release(&small);
        blob_release(&big);
}

static void test_empty_and_repeat(int repo_fd, const struct cairn_codec *c, const char *name) {
        struct cairn_pack_writer *w = NULL;
        struct cairn_pack_entry *entries = NULL;
        uint8_t id1[CAIRN_ID_SIZE], id2[CAIRN_ID_SIZE];
        size_t n = 99;
        struct blob b;

        is(cairn_pack_writer_new(repo_fd, c, &w), 0, "%s: writer for an empty pack", name);
        is(cairn_pack_writer_finish(w, id1, &entries, &n), 0, "%s: an empty pack finishes", name);
        is(n, 0, "%s: ... with no entries", name);
        w = cairn_pack_writer_free(w);
        free(entries);
        entries = NULL;
        n = 99;
        is(cairn_pack_read_trailer(repo_fd, c, id1, &entries, &n), 0, "%s: an empty pack's trailer reads", name);
        is(n, 0, "%s: ... with no entries", name);
        free(entries);

        /* Writing the same blobs twice: unencrypted packs are reproducible
         * (the second rename replaces an identical file), encrypted ones
         * differ by their nonces. */
        blob_make(c, &b, CAIRN_BLOB_DATA, 5000, 8, true);
        for (int round = 0; round < 2; round++) {
                if (cairn_pack_writer_new(repo_fd, c, &w) < 0 ||
                    cairn_pack_writer_add(w, b.type, b.id, b.stored, b.stored_len, (uint32_t) b.raw_len) < 0 ||
                    cairn_pack_writer_finish(w, round ? id2 : id1, NULL, NULL) < 0)
                        BAIL_OUT("cannot write a small pack");
                w = cairn_pack_writer_free(w);
        }
        if (cairn_codec_encrypted(c))
                ok(memcmp(id1, id2, sizeof id1) != 0, "%s: the same blob packed twice gives two packs", name);
        else
                ok(memcmp(id1, id2, sizeof id1) == 0, "%s: the same blob packed twice gives the same pack", name);
        entries = NULL;
        is(cairn_pack_read_trailer(repo_fd, c, id2, &entries, &n), 0, "%s: ... which reads", name);
        free(entries);
        blob_release(&b);
}

int main(void) {
        const char *base = getenv("CAIRN_TEST_TMPDIR");
        struct cairn_codec *plain = NULL, *enc = NULL;
        uint8_t enc_key[CAIRN_KEY_SIZE], id_key[CAIRN_KEY_SIZE];
        char tmpl[4096];
        int dir_fd, repo_fd;

        cairn_log_set_handler(log_capture, NULL);
        memset(enc_key, 0x5a, sizeof enc_key);
        memset(id_key, 0xa5, sizeof id_key);
        if (cairn_codec_new(NULL, NULL, 3, 0, &plain) < 0 || cairn_codec_new(enc_key, id_key, 3, 0, &enc) < 0)
                BAIL_OUT("cairn_codec_new");

        snprintf(tmpl, sizeof tmpl, "%s/test-pack.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpl))
                BAIL_OUT("cannot create a temporary directory");
        dir_fd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0 || mkdirat(dir_fd, "repo", 0700) < 0 || mkdirat(dir_fd, "repo/packs", 0700) < 0)
                BAIL_OUT("cannot set up %s", tmpl);
        repo_fd = openat(dir_fd, "repo", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (repo_fd < 0)
                BAIL_OUT("cannot open %s/repo", tmpl);

        test_pack(repo_fd, dir_fd, plain, enc, "plain");
        test_pack(repo_fd, dir_fd, enc, plain, "enc");
        test_crafted_trailers(dir_fd, plain, "plain");
        test_crafted_trailers(dir_fd, enc, "enc");
        test_abandoned(repo_fd, plain, "plain");
        test_abandoned(repo_fd, enc, "enc");
        test_empty_and_repeat(repo_fd, plain, "plain");
        test_empty_and_repeat(repo_fd, enc, "enc");

        close(repo_fd);
        close(dir_fd);
        nftw(tmpl, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        cairn_codec_free(plain);
        cairn_codec_free(enc);
        return tap_done();
}
