/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pack files: packs/xx/ID, immutable, holding encoded blobs.
 *
 *   "CAIRNPK\x01"                             8-byte header
 *   blob 0 .. blob n-1                        as cairn_codec_encode() made them
 *   trailer                                   itself an encoded blob (below)
 *   footer: trailer id (32) | trailer stored length (le32)
 *           | trailer raw length (le32) | "CAIRNTR\x01"   (48 bytes)
 *
 * The trailer's plaintext is: count (le32), then per blob
 *   type (u8) | id (32) | offset (le64) | stored length (le32) | raw length (le32)
 * encoded with the repository codec under id = cairn_codec_id(plaintext),
 * so it is authenticated (encrypted) or hash-checked (unencrypted) like any
 * blob.  ID (the pack id) is the SHA-256 of the whole file.
 *
 * A pack is written under packs/.tmp-XXXX, fsynced, renamed to
 * packs/xx/ID and the directory fsynced before cairn_pack_writer_finish()
 * returns: only then may an index row name it.
 */

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define CAIRN_PACK_HEADER_SIZE 8
#define CAIRN_PACK_FOOTER_SIZE 48
#define CAIRN_PACK_ENTRY_SIZE 49
#define CAIRN_PACK_TARGET_SIZE (32u * 1024 * 1024)

struct cairn_pack_entry {
        uint8_t type;                     /* enum cairn_blob_type */
        uint8_t id[CAIRN_ID_SIZE];
        uint64_t offset;                  /* of the stored blob in the pack file */
        uint32_t stored_len;
        uint32_t raw_len;
};

struct cairn_pack_writer;

/* Start a pack below @repo_fd (the repository directory, which has
 * packs/).  @codec encodes the trailer and must outlive the writer. */
int cairn_pack_writer_new(int repo_fd, const struct cairn_codec *codec, struct cairn_pack_writer **ret);

/* Append one already-encoded blob. -EFBIG beyond 4 GiB per pack. */
int cairn_pack_writer_add(struct cairn_pack_writer *w, uint8_t type, const uint8_t id[CAIRN_ID_SIZE],
                          const void *stored, size_t stored_len, uint32_t raw_len);

/* Bytes written so far and number of blobs (to decide when to finish). */
uint64_t cairn_pack_writer_size(const struct cairn_pack_writer *w);
size_t cairn_pack_writer_count(const struct cairn_pack_writer *w);

/* Write the trailer and publish the pack durably (see above).  On success
 * *ret_entries (malloc'd, caller frees) lists the blobs in file order.
 * After finish (success or failure) only cairn_pack_writer_free() may be
 * called. */
int cairn_pack_writer_finish(struct cairn_pack_writer *w, uint8_t ret_pack_id[CAIRN_ID_SIZE],
                             struct cairn_pack_entry **ret_entries, size_t *ret_n);

/* Free; an unfinished pack's temporary file is removed.  Accepts NULL. */
struct cairn_pack_writer *cairn_pack_writer_free(struct cairn_pack_writer *w);

/* "packs/xx/<hex id>" into @buf (at least 64 + 10 bytes). */
char *cairn_pack_path(const uint8_t id[CAIRN_ID_SIZE], char *buf, size_t size);

/* Read and validate the trailer of an open pack file.  Every entry is
 * checked to lie inside the blob area, in order and without overlap.
 * -EBADMSG for anything malformed (truncated file, bad magic, trailer that
 * does not authenticate, out-of-range entries); never crashes on any input.
 * *ret_entries is malloc'd (caller frees). */
int cairn_pack_read_trailer_fd(int fd, const struct cairn_codec *codec,
                               struct cairn_pack_entry **ret_entries, size_t *ret_n);

/* The same by id below @repo_fd; -ENOENT when the pack does not exist. */
int cairn_pack_read_trailer(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                            struct cairn_pack_entry **ret_entries, size_t *ret_n);

/* Read and decode one blob of a pack into @out (raw_len bytes).
 * -ENOENT (no such pack), -EBADMSG (damaged), -EIO. Thread-safe. */
int cairn_pack_read_blob(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                         const uint8_t blob_id[CAIRN_ID_SIZE], uint64_t offset, uint32_t stored_len,
                         void *out, uint32_t raw_len);

/* Segmented blobs (codec.h), for a reader that wants one segment: read
 * the blob's segment header (cairn_codec_header_size(raw_len) bytes, or
 * the whole blob when shorter; *ret_len says which) into @out, which
 * tells whether it is segmented (cairn_codec_is_segmented); then read and
 * decode segment @i with that header into @out
 * (cairn_codec_segment_len(raw_len, i) bytes).  The location is checked as
 * by cairn_pack_read_blob; -ENOENT (no such pack), -EBADMSG (damaged,
 * logged with the pack id), -EIO.  Thread-safe. */
int cairn_pack_read_header(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                           const uint8_t blob_id[CAIRN_ID_SIZE], uint64_t offset, uint32_t stored_len,
                           uint32_t raw_len, void *out, size_t *ret_len);
int cairn_pack_read_segment(int repo_fd, const struct cairn_codec *codec, const uint8_t pack_id[CAIRN_ID_SIZE],
                            const uint8_t blob_id[CAIRN_ID_SIZE], uint64_t offset, uint32_t stored_len,
                            uint32_t raw_len, const void *header, unsigned i, void *out);
