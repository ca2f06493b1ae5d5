/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A repository: create, open, lock; its `config` and key files.
 *
 *   REPO/config      text, "key = value" lines: version, id, chunker
 *                    sizes, compression, encryption (and the chunker seed
 *                    when unencrypted).  Written once.
 *   REPO/keys/ID     one per passphrase: scrypt parameters and salt, and
 *                    the 256-bit master key sealed with AES-256-GCM under
 *                    scrypt(passphrase) (aad: the repository id).
 *
 * From the master key HKDF-SHA256 derives the blob encryption key, the
 * id (HMAC) key and the chunker seed, so one secret unlocks everything
 * and the passphrase can change without re-encrypting data.
 *
 * A repository object owns its LMDB index, codec and chunker; it is
 * thread-safe for reading (cairn_repo_blob_read) once open.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunker.h"
#include "codec.h"
#include "lmdb-index.h"

#define CAIRN_FORMAT_VERSION 1

struct cairn_repo;

struct cairn_repo_params {
        struct cairn_chunker_params chunker;
        int zstd_level;                 /* 1..19, default 3 */
        uint32_t segment_size;          /* codec.h; default CAIRN_SEGMENT_DEFAULT, 0 = whole blobs */
        bool encrypted;
        uint64_t scrypt_n;              /* default 2^15 */
        uint32_t scrypt_r, scrypt_p;    /* default 8, 1 */
};

void cairn_repo_params_default(struct cairn_repo_params *p);

enum cairn_pass_kind {
        CAIRN_PASS_NONE,      /* unencrypted repository */
        CAIRN_PASS_FILE,      /* value: path; one trailing newline is dropped */
        CAIRN_PASS_ENV,       /* value: name of an environment variable */
        CAIRN_PASS_COMMAND,   /* value: shell command; its stdout, one trailing newline dropped */
        CAIRN_PASS_STRING,    /* value: the passphrase itself (tests, prompts) */
};

/* An encrypted repository opened with the right passphrase keeps its
 * master key in the kernel's user keyring (keyring.h) for key_cache
 * seconds, sealed under a key derived from the passphrase, the repository
 * id and the key file that opened it: opening it again with the same
 * passphrase skips scrypt (~150 ms); a wrong passphrase still fails, and a
 * changed or removed key file no longer matches. */
#define CAIRN_KEY_CACHE_DEFAULT (24 * 3600)

struct cairn_pass_source {
        enum cairn_pass_kind kind;
        const char *value;
        int key_cache;        /* seconds; 0: CAIRN_KEY_CACHE_DEFAULT; < 0: not cached (and forgotten) */
};

/* Parse a key_cache setting: "off", "no" or "0" (-1: not cached), or a
 * duration N with an optional unit s, m, h, d (at most 30 days).
 * -EINVAL otherwise. */
int cairn_key_cache_parse(const char *s, int *ret_seconds);

/* Obtain the passphrase; *ret malloc'd (caller wipes and frees).
 * Errors are logged naming the file / variable / command:
 * -ENOENT/-EACCES (file), -ENOKEY (variable unset, empty passphrase),
 * -ECHILD (command failed). */
int cairn_passphrase_read(const struct cairn_pass_source *src, char **ret);

/* Create a repository at @path (created if missing; must be empty).
 * @pass is required (kind != NONE) when params->encrypted.
 * -EEXIST when @path already holds a repository or other files. */
int cairn_repo_create(const char *path, const struct cairn_repo_params *params, const struct cairn_pass_source *pass);

/* Open.  Errors, each logged with the path:
 *   -ENOENT           not a repository (no config)
 *   -EPROTONOSUPPORT  format version newer than this build
 *   -EBADMSG          config or key file malformed
 *   -EACCES           wrong passphrase (no key file opens)
 *   -ENOKEY           encrypted but no passphrase source given */
int cairn_repo_open(const char *path, const struct cairn_pass_source *pass, struct cairn_repo **ret);
/* The same, but an index that cannot be opened (damaged: LMDB refuses it,
 * or it is shorter than its pages) is only a warning: the repository opens
 * without one (cairn_repo_index() is NULL), for cairn_repo_lock() and
 * cairn_repo_rebuild_index() only.  An index that opens is opened. */
int cairn_repo_open_for_rebuild(const char *path, const struct cairn_pass_source *pass, struct cairn_repo **ret);
struct cairn_repo *cairn_repo_free(struct cairn_repo *r);   /* accepts NULL */
static inline void cairn_repo_freep(struct cairn_repo **r) {
        cairn_repo_free(*r);
}

const char *cairn_repo_path(const struct cairn_repo *r);
int cairn_repo_fd(const struct cairn_repo *r);                    /* the directory, O_PATH-free fd */
const uint8_t *cairn_repo_id(const struct cairn_repo *r);          /* 16 bytes */
const struct cairn_repo_params *cairn_repo_params(const struct cairn_repo *r);
const struct cairn_codec *cairn_repo_codec(const struct cairn_repo *r);
const struct cairn_chunker *cairn_repo_chunker(const struct cairn_repo *r);
struct cairn_index *cairn_repo_index(struct cairn_repo *r);

/* Read a blob through the index: look up its location in @t (a read
 * transaction of the caller's; NULL: a private one), read it from its pack
 * and decode it.  *ret malloc'd with *ret_len bytes.  -ENOENT (not in the
 * index or pack gone), -EBADMSG (damaged: logged with the pack id).
 * Thread-safe. */
int cairn_repo_blob_read(struct cairn_repo *r, struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE],
                         uint8_t **ret, size_t *ret_len);

/* Advisory locks in REPO/locks/NAME.lock (flock, released by the kernel
 * when the holder dies).  Exclusive locks record "pid host what" so that a
 * second contender can say who holds it.  With @wait false a held lock is
 * -EBUSY and *ret_holder_pid (if not NULL) names the holder (0 unknown).
 * A lock whose recorded holder is dead is taken over with a warning. */
struct cairn_lock;
int cairn_repo_lock(struct cairn_repo *r, const char *name, bool exclusive, bool wait, const char *what,
                    struct cairn_lock **ret, pid_t *ret_holder_pid);
struct cairn_lock *cairn_lock_release(struct cairn_lock *l);      /* accepts NULL */

/* Rebuild REPO/index from packs and snapshot files (`cairn index
 * rebuild`): built in index.new/, then swapped in atomically.  Damaged
 * packs or snapshot files are reported and skipped; the return value is
 * then -EBADMSG after the rebuild completes with what was readable. */
int cairn_repo_rebuild_index(struct cairn_repo *r);
