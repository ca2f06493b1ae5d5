/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto.h"
#include "fault.h"
#include "log.h"
#include "pack.h"
#include "util.h"

#define PACK_MAGIC "CAIRNPK\x01"
#define TRAILER_MAGIC "CAIRNTR\x01"
#define MAGIC_SIZE 8

/* Footer layout: trailer id | stored length | raw length | magic. */
#define FOOTER_STORED_LEN_AT CAIRN_ID_SIZE
#define FOOTER_RAW_LEN_AT (CAIRN_ID_SIZE + 4)
#define FOOTER_MAGIC_AT (CAIRN_ID_SIZE + 8)

/* Entry layout: type | id | offset | stored length | raw length. */
#define ENTRY_ID_AT 1
#define ENTRY_OFFSET_AT (1 + CAIRN_ID_SIZE)
#define ENTRY_STORED_LEN_AT (1 + CAIRN_ID_SIZE + 8)
#define ENTRY_RAW_LEN_AT (1 + CAIRN_ID_SIZE + 12)

/* Over a million entries: far beyond any real pack, and it bounds what a
 * corrupt footer can make the reader allocate.  The writer keeps to it too,
 * so that everything it writes can be read back. */
#define TRAILER_RAW_MAX (64u * 1024 * 1024)
#define TRAILER_MAX_ENTRIES ((TRAILER_RAW_MAX - 4) / CAIRN_PACK_ENTRY_SIZE)

/* Offsets in the trailer are 64-bit, lengths 32-bit; the header promises
 * -EFBIG beyond 4 GiB, which also keeps every offset fitting an off_t. */
#define PACK_SIZE_MAX (UINT64_C(4) * 1024 * 1024 * 1024)

/* Small blobs (trees, content lists) are gathered into one write(). */
#define WRITE_BUFFER_SIZE (1u * 1024 * 1024)

#define HEX_ID_SIZE (2 * CAIRN_ID_SIZE + 1)
#define PACK_PATH_SIZE (sizeof("packs/xx/") + 2 * CAIRN_ID_SIZE)

struct cairn_pack_writer {
        int repo_fd;                        /* borrowed */
        const struct cairn_codec *codec;    /* borrowed */
        int fd;                             /* the temporary file */
        char tmp_path[sizeof("packs/.tmp-") + 32];
        bool tmp_exists;                    /* free() must unlink tmp_path */
        bool done;                          /* finish() was called */
        int error;                          /* sticky: a write failed, the file is unusable */

        struct cairn_sha256 *hash;          /* of every byte handed to the file, in order */
        uint8_t *buf;
        size_t buf_used;
        uint64_t size;                      /* bytes of the file so far, buffered or not */

        struct cairn_pack_entry *entries;
        size_t n_entries, n_allocated;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct cairn_pack_writer *, cairn_pack_writer_free);

char *cairn_pack_path(const uint8_t id[CAIRN_ID_SIZE], char *buf, size_t size) {
        char hex[HEX_ID_SIZE];

        if (size < PACK_PATH_SIZE)
                return NULL;
        hex_encode(id, CAIRN_ID_SIZE, hex);
        snprintf(buf, size, "packs/%.2s/%s", hex, hex);
        return buf;
}

int cairn_pack_writer_new(int repo_fd, const struct cairn_codec *codec, struct cairn_pack_writer **ret) {
        _cleanup_(cairn_pack_writer_freep) struct cairn_pack_writer *w = NULL;
        uint8_t rnd[16];
        char rhex[2 * sizeof rnd + 1];
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->repo_fd = repo_fd;
        w->codec = codec;
        w->fd = -1;

        w->hash = cairn_sha256_new();
        w->buf = malloc(WRITE_BUFFER_SIZE);
        if (!w->hash || !w->buf)
                return -ENOMEM;

        r = cairn_random_bytes(rnd, sizeof rnd);
        if (r < 0)
                return r;
        snprintf(w->tmp_path, sizeof w->tmp_path, "packs/.tmp-%s", hex_encode(rnd, sizeof rnd, rhex));

        w->fd = openat(repo_fd, w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
        if (w->fd < 0)
                return log_error_errno(-errno, "Failed to create pack file %s: %m", w->tmp_path);
        w->tmp_exists = true;

        memcpy(w->buf, PACK_MAGIC, MAGIC_SIZE);
        cairn_sha256_update(w->hash, PACK_MAGIC, MAGIC_SIZE);
        w->buf_used = w->size = MAGIC_SIZE;

        *ret = TAKE_PTR(w);
        return 0;
}

static int writer_flush(struct cairn_pack_writer *w) {
        int r;

        if (w->buf_used == 0)
                return 0;
        r = write_full(w->fd, w->buf, w->buf_used);
        if (r < 0)
                return w->error = log_error_errno(r, "Failed to write pack file %s: %m", w->tmp_path);
        w->buf_used = 0;
        return 0;
}

/* Every byte of the file goes through here, so the hash follows the file. */
static int writer_append(struct cairn_pack_writer *w, const void *data, size_t len) {
        int r;

        cairn_sha256_update(w->hash, data, len);
        w->size += len;

        if (w->buf_used + len <= WRITE_BUFFER_SIZE) {
                if (len > 0)
                        memcpy(w->buf + w->buf_used, data, len);
                w->buf_used += len;
                return 0;
        }

        r = writer_flush(w);
        if (r < 0)
                return r;
        if (len >= WRITE_BUFFER_SIZE) {
                /* A chunk-sized blob is written as it is: copying it
                 * through the buffer would only add a memcpy. */
                r = write_full(w->fd, data, len);
                if (r < 0)
                        return w->error = log_error_errno(r, "Failed to write pack file %s: %m", w->tmp_path);
                return 0;
        }
        memcpy(w->buf, data, len);
        w->buf_used = len;
        return 0;
}

int cairn_pack_writer_add(struct cairn_pack_writer *w, uint8_t type, const uint8_t id[CAIRN_ID_SIZE],
                          const void *stored, size_t stored_len, uint32_t raw_len) {
        struct cairn_pack_entry *e;
        int r;

        if (w->done)
                return -EINVAL;
        if (w->error < 0)
                return w->error;
        /* Refuse here what a reader would reject, rather than write a pack
         * that cannot be read back. */
        if (type < CAIRN_BLOB_DATA || type > CAIRN_BLOB_CONTENT || raw_len > CAIRN_BLOB_MAX ||
            stored_len < cairn_codec_bound(w->codec, 0) || stored_len > cairn_codec_bound(w->codec, raw_len))
                return -EINVAL;
        if (w->size + stored_len > PACK_SIZE_MAX || w->n_entries >= TRAILER_MAX_ENTRIES)
                return -EFBIG;

        if (w->n_entries == w->n_allocated) {
                size_t n = MAX(w->n_allocated * 2, (size_t) 64);
                struct cairn_pack_entry *p = reallocarray(w->entries, n, sizeof *p);
                if (!p)
                        return -ENOMEM;
                w->entries = p;
                w->n_allocated = n;
        }

        e = &w->entries[w->n_entries];
        *e = (struct cairn_pack_entry) {
                .type = type,
                .offset = w->size,
                .stored_len = (uint32_t) stored_len,
                .raw_len = raw_len,
        };
        memcpy(e->id, id, CAIRN_ID_SIZE);

        r = writer_append(w, stored, stored_len);
        if (r < 0)
                return r;
        w->n_entries++;
        return 0;
}

uint64_t cairn_pack_writer_size(const struct cairn_pack_writer *w) {
        return w->size;
}

size_t cairn_pack_writer_count(const struct cairn_pack_writer *w) {
        return w->n_entries;
}

static int writer_append_trailer(struct cairn_pack_writer *w) {
        _cleanup_free_ uint8_t *plain = NULL, *stored = NULL;
        uint8_t footer[CAIRN_PACK_FOOTER_SIZE], tid[CAIRN_ID_SIZE];
        size_t plain_len, stored_len;
        uint8_t *p;
        int r;

        plain_len = 4 + w->n_entries * CAIRN_PACK_ENTRY_SIZE;
        plain = malloc(plain_len);
        stored = malloc(cairn_codec_bound(w->codec, plain_len));
        if (!plain || !stored)
                return -ENOMEM;

        put_le32(plain, (uint32_t) w->n_entries);
        p = plain + 4;
        for (size_t i = 0; i < w->n_entries; i++, p += CAIRN_PACK_ENTRY_SIZE) {
                const struct cairn_pack_entry *e = &w->entries[i];
                p[0] = e->type;
                memcpy(p + ENTRY_ID_AT, e->id, CAIRN_ID_SIZE);
                put_le64(p + ENTRY_OFFSET_AT, e->offset);
                put_le32(p + ENTRY_STORED_LEN_AT, e->stored_len);
                put_le32(p + ENTRY_RAW_LEN_AT, e->raw_len);
        }

        cairn_codec_id(w->codec, plain, plain_len, tid);
        r = cairn_codec_encode(w->codec, tid, plain, plain_len, stored, &stored_len);
        if (r < 0)
                return log_error_errno(r, "Failed to encode the trailer of pack file %s: %m", w->tmp_path);
        if (w->size + stored_len + CAIRN_PACK_FOOTER_SIZE > PACK_SIZE_MAX)
                return -EFBIG;

        memcpy(footer, tid, CAIRN_ID_SIZE);
        put_le32(footer + FOOTER_STORED_LEN_AT, (uint32_t) stored_len);
        put_le32(footer + FOOTER_RAW_LEN_AT, (uint32_t) plain_len);
        memcpy(footer + FOOTER_MAGIC_AT, TRAILER_MAGIC, MAGIC_SIZE);

        r = writer_append(w, stored, stored_len);
        if (r < 0)
                return r;
        r = writer_append(w, footer, sizeof footer);
        if (r < 0)
                return r;
        return writer_flush(w);
}

int cairn_pack_writer_finish(struct cairn_pack_writer *w, uint8_t ret_pack_id[CAIRN_ID_SIZE],
                             struct cairn_pack_entry **ret_entries, size_t *ret_n) {
        char path[PACK_PATH_SIZE], dir[sizeof("packs/xx")];
        uint8_t id[CAIRN_ID_SIZE];
        int r;

        if (w->done)
                return -EINVAL;
        w->done = true;
        if (w->error < 0)
                return w->error;

        r = writer_append_trailer(w);
        if (r < 0)
                return r;
        cairn_fault_point("pack.written");

        if (fsync(w->fd) < 0)
                return log_error_errno(-errno, "Failed to fsync pack file %s: %m", w->tmp_path);
        cairn_fault_point("pack.fsynced");
        r = close(TAKE_FD(w->fd));
        if (r < 0 && errno != EINTR)
                return log_error_errno(-errno, "Failed to close pack file %s: %m", w->tmp_path);

        cairn_sha256_final(w->hash, id);
        cairn_pack_path(id, path, sizeof path);
        memcpy(dir, path, sizeof dir - 1);
        dir[sizeof dir - 1] = 0;

        if (mkdirat(w->repo_fd, dir, 0700) >= 0) {
                /* The new directory's own entry must be durable too. */
                r = fsync_dir_at(w->repo_fd, "packs");
                if (r < 0)
                        return log_error_errno(r, "Failed to fsync packs/: %m");
        } else if (errno != EEXIST)
                return log_error_errno(-errno, "Failed to create %s: %m", dir);

        if (renameat(w->repo_fd, w->tmp_path, w->repo_fd, path) < 0)
                return log_error_errno(-errno, "Failed to rename %s to %s: %m", w->tmp_path, path);
        w->tmp_exists = false;
        cairn_fault_point("pack.renamed");

        r = fsync_dir_at(w->repo_fd, dir);
        if (r < 0)
                return log_error_errno(r, "Failed to fsync %s: %m", dir);

        memcpy(ret_pack_id, id, CAIRN_ID_SIZE);
        if (ret_entries)
                *ret_entries = TAKE_PTR(w->entries);
        if (ret_n)
                *ret_n = w->n_entries;
        return 0;
}

struct cairn_pack_writer *cairn_pack_writer_free(struct cairn_pack_writer *w) {
        if (!w)
                return NULL;
        if (w->fd >= 0)
                close(w->fd);
        if (w->tmp_exists)
                (void) unlinkat(w->repo_fd, w->tmp_path, 0);
        cairn_sha256_free(w->hash);
        free(w->buf);
        free(w->entries);
        free(w);
        return NULL;
}

#define pack_damaged(name, fmt, ...) \
        log_error_errno(-EBADMSG, "Pack %s is damaged: " fmt, (name), ##__VA_ARGS__)

/* Reads exactly @n bytes at @off; a short read means the file is shorter
 * than its footer or trailer claims. */
static int pread_exact(int fd, const char *name, void *buf, size_t n, uint64_t off) {
        ssize_t k = pread_full(fd, buf, n, (off_t) off);
        if (k < 0)
                return log_error_errno((int) k, "Failed to read pack %s: %m", name);
        if ((size_t) k != n)
                return pack_damaged(name, "file ends early (truncated while read?)");
        return 0;
}

static int read_trailer(int fd, const struct cairn_codec *codec, const char *name,
                        struct cairn_pack_entry **ret_entries, size_t *ret_n) {
        _cleanup_free_ uint8_t *stored = NULL, *plain = NULL;
        _cleanup_free_ struct cairn_pack_entry *entries = NULL;
        uint8_t header[CAIRN_PACK_HEADER_SIZE], footer[CAIRN_PACK_FOOTER_SIZE];
        uint64_t size, blob_end, trailer_start, prev_end, min_stored;
        uint32_t stored_len, raw_len, count;
        struct stat st;
        const uint8_t *p;
        int r;

        if (fstat(fd, &st) < 0)
                return log_error_errno(-errno, "Failed to stat pack %s: %m", name);
        if (!S_ISREG(st.st_mode))
                return pack_damaged(name, "not a regular file");
        size = (uint64_t) st.st_size;
        if (size < CAIRN_PACK_HEADER_SIZE + CAIRN_PACK_FOOTER_SIZE)
                return pack_damaged(name, "file too short (%" PRIu64 " bytes)", size);

        r = pread_exact(fd, name, header, sizeof header, 0);
        if (r < 0)
                return r;
        if (memcmp(header, PACK_MAGIC, MAGIC_SIZE) != 0)
                return pack_damaged(name, "bad header magic");

        blob_end = size - CAIRN_PACK_FOOTER_SIZE;
        r = pread_exact(fd, name, footer, sizeof footer, blob_end);
        if (r < 0)
                return r;
        if (memcmp(footer + FOOTER_MAGIC_AT, TRAILER_MAGIC, MAGIC_SIZE) != 0)
                return pack_damaged(name, "bad footer magic");

        stored_len = get_le32(footer + FOOTER_STORED_LEN_AT);
        raw_len = get_le32(footer + FOOTER_RAW_LEN_AT);
        min_stored = cairn_codec_bound(codec, 0);

        if (stored_len > blob_end - CAIRN_PACK_HEADER_SIZE)
                return pack_damaged(name, "trailer length %" PRIu32 " exceeds the file", stored_len);
        trailer_start = blob_end - stored_len;

        if (raw_len < 4 || (raw_len - 4) % CAIRN_PACK_ENTRY_SIZE != 0 || raw_len > TRAILER_RAW_MAX)
                return pack_damaged(name, "impossible trailer size %" PRIu32, raw_len);
        /* Every blob takes at least min_stored bytes before the trailer. */
        if ((raw_len - 4) / CAIRN_PACK_ENTRY_SIZE > (trailer_start - CAIRN_PACK_HEADER_SIZE) / min_stored)
                return pack_damaged(name, "trailer lists more blobs than the file can hold");
        if (stored_len < min_stored || stored_len > cairn_codec_bound(codec, raw_len))
                return pack_damaged(name, "trailer stored length %" PRIu32 " does not fit its raw length %" PRIu32,
                                    stored_len, raw_len);

        stored = malloc(stored_len);
        plain = malloc(raw_len);
        if (!stored || !plain)
                return -ENOMEM;
        r = pread_exact(fd, name, stored, stored_len, trailer_start);
        if (r < 0)
                return r;
        r = cairn_codec_decode(codec, footer, stored, stored_len, plain, raw_len);
        if (r == -EBADMSG)
                return pack_damaged(name, "trailer does not verify");
        if (r < 0)
                return log_error_errno(r, "Failed to decode the trailer of pack %s: %m", name);

        count = get_le32(plain);
        if (4 + (uint64_t) count * CAIRN_PACK_ENTRY_SIZE != raw_len)
                return pack_damaged(name, "trailer count %" PRIu32 " does not match its size", count);

        entries = calloc(MAX(count, 1u), sizeof *entries);
        if (!entries)
                return -ENOMEM;

        prev_end = CAIRN_PACK_HEADER_SIZE;
        p = plain + 4;
        for (uint32_t i = 0; i < count; i++, p += CAIRN_PACK_ENTRY_SIZE) {
                struct cairn_pack_entry *e = &entries[i];

                e->type = p[0];
                memcpy(e->id, p + ENTRY_ID_AT, CAIRN_ID_SIZE);
                e->offset = get_le64(p + ENTRY_OFFSET_AT);
                e->stored_len = get_le32(p + ENTRY_STORED_LEN_AT);
                e->raw_len = get_le32(p + ENTRY_RAW_LEN_AT);

                if (e->type < CAIRN_BLOB_DATA || e->type > CAIRN_BLOB_CONTENT)
                        return pack_damaged(name, "entry %" PRIu32 " has unknown type %u", i, e->type);
                if (e->raw_len > CAIRN_BLOB_MAX)
                        return pack_damaged(name, "entry %" PRIu32 " is too large (%" PRIu32 " bytes)", i, e->raw_len);
                if (e->stored_len < min_stored || e->stored_len > cairn_codec_bound(codec, e->raw_len))
                        return pack_damaged(name, "entry %" PRIu32 " has stored length %" PRIu32
                                            " impossible for raw length %" PRIu32, i, e->stored_len, e->raw_len);
                /* prev_end >= header size, so this also keeps blobs off the header. */
                if (e->offset < prev_end)
                        return pack_damaged(name, "entry %" PRIu32 " at offset %" PRIu64 " overlaps what precedes it",
                                            i, e->offset);
                if (e->offset > trailer_start || e->stored_len > trailer_start - e->offset)
                        return pack_damaged(name, "entry %" PRIu32 " at offset %" PRIu64 " runs into the trailer",
                                            i, e->offset);
                prev_end = e->offset + e->stored_len;
        }

        *ret_entries = TAKE_PTR(entries);
        *ret_n = count;
        return 0;
}

int cairn_pack_read_trailer_fd(int fd, const struct cairn_codec *codec,
                               struct cairn_pack_entry **ret_entries, size_t *ret_n) {
        char name[32];

        snprintf(name, sizeof name, "(fd %d)", fd);
        return read_trailer(fd, codec, name, ret_entries, ret_n);
}

static int pack_open(int repo_fd, const uint8_t pack_id[CAIRN_ID_SIZE], const char *hex, int *ret_fd) {
        char path[PACK_PATH_SIZE];
        int fd;

        fd = openat(repo_fd, cairn_pack_path(pack_id, path, sizeof path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                /* Expected when prune replaced the pack: the caller looks
                 * the blob up again, so this is no error yet. */
                if (errno == ENOENT)
                        return cairn_log_errno(CAIRN_LOG_DEBUG, -ENOENT, "Pack %s: %m", hex);
                return log_error_errno(-errno, "Failed to open pack %s: %m", hex);
        }
        *ret_fd = fd;
        return 0;
}

int cairn_pack_read_trailer(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                            struct cairn_pack_entry **ret_entries, size_t *ret_n) {
        _cleanup_close_ int fd = -1;
        char hex[HEX_ID_SIZE];
        int r;

        hex_encode(pack_id, CAIRN_ID_SIZE, hex);
        r = pack_open(repo_fd, pack_id, hex, &fd);
        if (r < 0)
                return r;
        return read_trailer(fd, codec, hex, ret_entries, ret_n);
}

/* The location comes from the index, which could be stale or damaged:
 * check it before it sizes an allocation or a read. */
static int location_check(const struct cairn_codec *codec, const char *hex, const char *blob_hex, uint64_t offset,
                          uint32_t stored_len, uint32_t raw_len) {
        if (raw_len > CAIRN_BLOB_MAX)
                return log_error_errno(-EFBIG, "Blob %s in pack %s: raw length %" PRIu32 " too large",
                                       blob_hex, hex, raw_len);
        if (offset < CAIRN_PACK_HEADER_SIZE || offset > PACK_SIZE_MAX ||
            stored_len < cairn_codec_bound(codec, 0) || stored_len > cairn_codec_bound(codec, raw_len))
                return log_error_errno(-EBADMSG, "Blob %s in pack %s: impossible location "
                                       "(offset %" PRIu64 ", stored %" PRIu32 ", raw %" PRIu32 ")",
                                       blob_hex, hex, offset, stored_len, raw_len);
        return 0;
}

/* The ids as hex (for messages), the location checked, the pack open. */
static int blob_open(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                     const uint8_t blob_id[CAIRN_ID_SIZE], uint64_t offset, uint32_t stored_len, uint32_t raw_len,
                     char hex[HEX_ID_SIZE], char blob_hex[HEX_ID_SIZE], int *ret_fd) {
        int r;

        hex_encode(pack_id, CAIRN_ID_SIZE, hex);
        hex_encode(blob_id, CAIRN_ID_SIZE, blob_hex);
        r = location_check(codec, hex, blob_hex, offset, stored_len, raw_len);
        if (r < 0)
                return r;
        return pack_open(repo_fd, pack_id, hex, ret_fd);
}

int cairn_pack_read_blob(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                         const uint8_t blob_id[CAIRN_ID_SIZE], uint64_t offset, uint32_t stored_len,
                         void *out, uint32_t raw_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *stored = NULL;
        char hex[HEX_ID_SIZE], blob_hex[HEX_ID_SIZE];
        int r;

        r = blob_open(repo_fd, codec, pack_id, blob_id, offset, stored_len, raw_len, hex, blob_hex, &fd);
        if (r < 0)
                return r;
        stored = malloc(stored_len);
        if (!stored)
                return -ENOMEM;
        r = pread_exact(fd, hex, stored, stored_len, offset);
        if (r < 0)
                return r;

        r = cairn_codec_decode(codec, blob_id, stored, stored_len, out, raw_len);
        if (r == -EBADMSG)
                return log_error_errno(r, "Pack %s: blob %s at offset %" PRIu64 " is damaged",
                                       hex, blob_hex, offset);
        if (r < 0)
                return log_error_errno(r, "Failed to decode blob %s of pack %s: %m", blob_hex, hex);
        return 0;
}

int cairn_pack_read_header(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                           const uint8_t blob_id[CAIRN_ID_SIZE], uint64_t offset, uint32_t stored_len,
                           uint32_t raw_len, void *out, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        char hex[HEX_ID_SIZE], blob_hex[HEX_ID_SIZE];
        size_t size = MIN(cairn_codec_header_size(codec, raw_len), (size_t) stored_len);
        int r;

        if (size == 0)
                return -EINVAL;
        r = blob_open(repo_fd, codec, pack_id, blob_id, offset, stored_len, raw_len, hex, blob_hex, &fd);
        if (r < 0)
                return r;
        r = pread_exact(fd, hex, out, size, offset);
        if (r < 0)
                return r;
        *ret_len = size;
        return 0;
}

int cairn_pack_read_segment(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                            const uint8_t blob_id[CAIRN_ID_SIZE], uint64_t offset, uint32_t stored_len,
                            uint32_t raw_len, const void *header, unsigned i, void *out) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *stored = NULL;
        char hex[HEX_ID_SIZE], blob_hex[HEX_ID_SIZE];
        size_t at, len;
        int r;

        r = blob_open(repo_fd, codec, pack_id, blob_id, offset, stored_len, raw_len, hex, blob_hex, &fd);
        if (r < 0)
                return r;
        r = cairn_codec_segment_locate(codec, blob_id, raw_len, stored_len, header, i, &at, &len);
        if (r == -EBADMSG)
                return log_error_errno(r, "Pack %s: blob %s at offset %" PRIu64 " has a damaged segment table",
                                       hex, blob_hex, offset);
        if (r < 0)
                return r;
        /* One segment is all a random reader wants: no readahead around it. */
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
        stored = malloc(len);
        if (!stored)
                return -ENOMEM;
        r = pread_exact(fd, hex, stored, len, offset + at);
        if (r < 0)
                return r;
        r = cairn_codec_decode_segment(codec, blob_id, raw_len, header, i, stored, len, out);
        if (r == -EBADMSG)
                return log_error_errno(r, "Pack %s: blob %s at offset %" PRIu64 " is damaged (segment %u)",
                                       hex, blob_hex, offset, i);
        if (r < 0)
                return log_error_errno(r, "Failed to decode segment %u of blob %s of pack %s: %m", i, blob_hex, hex);
        return 0;
}
