/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Cryptographic primitives on OpenSSL 3: SHA-256, HMAC-SHA256, HKDF,
 * scrypt, AES-256-GCM and the random source.  Every function is
 * thread-safe.  Errors from OpenSSL are logged with ERR_error_string and
 * returned as -EIO; a failed authentication tag is -EBADMSG.
 */

#include <stddef.h>
#include <stdint.h>

#define CAIRN_ID_SIZE 32      /* blob, pack, tree, content and snapshot ids */
#define CAIRN_KEY_SIZE 32     /* AES-256 and HMAC keys */
#define CAIRN_NONCE_SIZE 12   /* GCM nonce, random per message */
#define CAIRN_TAG_SIZE 16     /* GCM tag */
#define CAIRN_AEAD_OVERHEAD (CAIRN_NONCE_SIZE + CAIRN_TAG_SIZE)

/* Fill @buf with @n bytes from the OS CSPRNG. 0 or -EIO. */
int cairn_random_bytes(void *buf, size_t n);

/* One-shot digests. Never fail for valid arguments. */
void cairn_sha256(const void *data, size_t n, uint8_t out[CAIRN_ID_SIZE]);
void cairn_hmac_sha256(const uint8_t key[CAIRN_KEY_SIZE], const void *data, size_t n, uint8_t out[CAIRN_ID_SIZE]);

/* Incremental SHA-256 (pack ids are the hash of the whole pack file). */
struct cairn_sha256;
struct cairn_sha256 *cairn_sha256_new(void);                 /* NULL on OOM */
void cairn_sha256_update(struct cairn_sha256 *h, const void *data, size_t n);
void cairn_sha256_final(struct cairn_sha256 *h, uint8_t out[CAIRN_ID_SIZE]);
struct cairn_sha256 *cairn_sha256_free(struct cairn_sha256 *h); /* accepts NULL, returns NULL */

/* HKDF-SHA256(salt = none, ikm, info) → @out_len bytes. 0 or -EIO. */
int cairn_hkdf(const uint8_t *ikm, size_t ikm_len, const char *info, uint8_t *out, size_t out_len);

/* scrypt(pass, salt, N, r, p) → 32-byte key. N a power of two.
 * 0, -EINVAL (bad parameters), -ENOMEM or -EIO. */
int cairn_scrypt(const char *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                 uint64_t N, uint32_t r, uint32_t p, uint8_t out[CAIRN_KEY_SIZE]);

/* AES-256-GCM with a fresh random nonce.  @out receives
 * nonce || ciphertext || tag, i.e. @len + CAIRN_AEAD_OVERHEAD bytes.
 * @aad (may be NULL when @aad_len is 0) is authenticated, not stored.
 * @pt and @out may not overlap. 0 or -EIO. */
int cairn_aead_seal(const uint8_t key[CAIRN_KEY_SIZE], const void *aad, size_t aad_len,
                    const void *pt, size_t len, uint8_t *out);

/* Inverse of cairn_aead_seal: @in_len >= CAIRN_AEAD_OVERHEAD; writes
 * @in_len - CAIRN_AEAD_OVERHEAD bytes to @pt_out.  -EBADMSG when the tag does
 * not verify (wrong key, altered bytes or aad): @pt_out then holds nothing
 * usable. */
int cairn_aead_open(const uint8_t key[CAIRN_KEY_SIZE], const void *aad, size_t aad_len,
                    const uint8_t *in, size_t in_len, uint8_t *pt_out);

/* The same with a nonce the caller chose (it must never repeat under one
 * key): @out / @in are ciphertext || tag only (@len + CAIRN_TAG_SIZE
 * bytes); the nonce is not stored.  Segmented blobs (codec.h) derive one
 * nonce per segment from a random base. */
int cairn_aead_seal_nonce(const uint8_t key[CAIRN_KEY_SIZE], const uint8_t nonce[CAIRN_NONCE_SIZE],
                          const void *aad, size_t aad_len, const void *pt, size_t len, uint8_t *out);
int cairn_aead_open_nonce(const uint8_t key[CAIRN_KEY_SIZE], const uint8_t nonce[CAIRN_NONCE_SIZE],
                          const void *aad, size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *pt_out);
