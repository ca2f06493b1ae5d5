/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Serialized forms of directories and file contents.
 *
 * An entry is one name in a directory with all its metadata.  Its encoding
 * is the value of a `trees` row in the index and, prefixed by its name,
 * a record of a tree blob.  Encodings (all integers little-endian):
 *
 * entry:   version (u8 = 1) | type (u8) | mode (le32) | uid (le32) | gid (le32)
 *          | size (le64) | mtime_ns (le64) | ctime_ns (le64) | atime_ns (le64)
 *          | rdev (le64) | ino (le64, source inode) | nlink (le32)
 *          | hardlink group (le64, 0 = none) | ref (32 bytes)
 *          | target length (le32) | target bytes
 *          | xattr count (le32) | per xattr: name len (le16) | name | value len (le32) | value
 *
 * tree blob:   "CTRE" | count (le32) | per entry, sorted by name (memcmp,
 *              no duplicates): name len (le16) | name | entry len (le32) | entry
 *
 * content blob: "CCNT" | count (le32) | per chunk:
 *              id (32) | length (le64) | flags (u8: 1 = hole, id all zero)
 *
 * For a regular file `ref` is its content id (all zero for an empty file),
 * for a directory its tree id, otherwise zero.  Names are 1..255 bytes,
 * without '/' or NUL, never "." or "..".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

enum cairn_entry_type {
        CAIRN_ENTRY_FILE = 1,
        CAIRN_ENTRY_DIR = 2,
        CAIRN_ENTRY_SYMLINK = 3,
        CAIRN_ENTRY_FIFO = 4,
        CAIRN_ENTRY_CHR = 5,
        CAIRN_ENTRY_BLK = 6,
        CAIRN_ENTRY_SOCK = 7,
};

#define CAIRN_NAME_MAX 255

struct cairn_xattr {
        const char *name;        /* borrowed */
        size_t name_len;
        const void *value;       /* borrowed */
        size_t value_len;
};

struct cairn_entry {
        uint8_t type;            /* enum cairn_entry_type */
        uint32_t mode;           /* full st_mode bits incl. S_IFMT, setuid, sticky */
        uint32_t uid, gid;
        uint64_t size;
        int64_t mtime_ns, ctime_ns, atime_ns;
        uint64_t rdev;
        uint64_t ino;            /* source inode: incremental change detection */
        uint32_t nlink;
        uint64_t hardlink_group; /* entries sharing a non-zero group are one inode */
        uint8_t ref[CAIRN_ID_SIZE];
        const char *target;      /* symlink target, borrowed, not NUL-terminated */
        size_t target_len;
        uint32_t n_xattrs;
        const uint8_t *xattrs;   /* borrowed encoded xattr list; walk with cairn_entry_xattr_next() */
        size_t xattrs_len;
};

/* Encode @e with the xattrs @xa[0..n_xa) (e->xattrs is ignored).
 * *ret is malloc'd (caller frees). -EINVAL for oversized fields. */
int cairn_entry_encode(const struct cairn_entry *e, const struct cairn_xattr *xa, size_t n_xa,
                       uint8_t **ret, size_t *ret_len);

/* Decode into *ret, whose pointers borrow from @buf.  -EBADMSG when
 * malformed (never reads outside @buf). */
int cairn_entry_decode(const void *buf, size_t len, struct cairn_entry *ret);

/* Iterate the xattrs of a decoded entry: *cursor starts at 0.  Returns 1
 * and fills *ret (borrowed), 0 at the end, -EBADMSG if malformed. */
int cairn_entry_xattr_next(const struct cairn_entry *e, size_t *cursor, struct cairn_xattr *ret);

bool cairn_name_valid(const char *name, size_t len);

/* Building a tree blob: add entries in any order; finish sorts them and
 * refuses duplicate or invalid names (-EINVAL). */
struct cairn_tree_builder;
struct cairn_tree_builder *cairn_tree_builder_new(void);                    /* NULL on OOM */
struct cairn_tree_builder *cairn_tree_builder_free(struct cairn_tree_builder *b);
int cairn_tree_builder_add(struct cairn_tree_builder *b, const char *name, size_t name_len,
                           const struct cairn_entry *e, const struct cairn_xattr *xa, size_t n_xa);
size_t cairn_tree_builder_count(const struct cairn_tree_builder *b);
/* *ret is malloc'd (caller frees). */
int cairn_tree_builder_finish(struct cairn_tree_builder *b, uint8_t **ret, size_t *ret_len);

/* Walk a tree blob: *cursor starts at 0.  Returns 1 with *ret_name /
 * *ret_entry / *ret_entry_len borrowed from @blob (the entry still
 * encoded, as stored in the index), 0 at the end, -EBADMSG if malformed
 * (including names out of order). */
int cairn_tree_next(const uint8_t *blob, size_t len, size_t *cursor,
                    const char **ret_name, size_t *ret_name_len,
                    const uint8_t **ret_entry, size_t *ret_entry_len);

struct cairn_content_chunk {
        uint8_t id[CAIRN_ID_SIZE];   /* all zero for a hole */
        uint64_t length;
        uint8_t flags;               /* CAIRN_CHUNK_HOLE */
};
#define CAIRN_CHUNK_HOLE 1

/* Content blob of @chunks[0..n). *ret malloc'd (caller frees). */
int cairn_content_encode(const struct cairn_content_chunk *chunks, size_t n, uint8_t **ret, size_t *ret_len);

/* Parse a content blob; *ret malloc'd array (caller frees). -EBADMSG. */
int cairn_content_decode(const uint8_t *blob, size_t len, struct cairn_content_chunk **ret, size_t *ret_n);
