/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "log.h"
#include "util.h"

static EVP_CIPHER *gcm;
static EVP_MD *sha256_md;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

/* Explicit fetches once: the implicit fetch in every EVP_*Init costs more
 * than hashing a small tree blob. */
static void fetch_algorithms(void) {
        gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int log_openssl(const char *what) {
        char buf[256];
        unsigned long e = ERR_get_error();
        ERR_error_string_n(e, buf, sizeof buf);
        ERR_clear_error();
        return log_error_errno(-EIO, "%s failed: %s", what, buf);
}

int cairn_random_bytes(void *buf, size_t n) {
        if (RAND_bytes(buf, (int) n) != 1)
                return log_openssl("RAND_bytes");
        return 0;
}

void cairn_sha256(const void *data, size_t n, uint8_t out[CAIRN_ID_SIZE]) {
        pthread_once(&fetch_once, fetch_algorithms);
        EVP_Digest(data, n, out, NULL, sha256_md, NULL);
}

void cairn_hmac_sha256(const uint8_t key[CAIRN_KEY_SIZE], const void *data, size_t n, uint8_t out[CAIRN_ID_SIZE]) {
        unsigned len = CAIRN_ID_SIZE;
        pthread_once(&fetch_once, fetch_algorithms);
        HMAC(sha256_md, key, CAIRN_KEY_SIZE, data, n, out, &len);
}

struct cairn_sha256 {
        EVP_MD_CTX *ctx;
};

struct cairn_sha256 *cairn_sha256_new(void) {
        struct cairn_sha256 *h;
        pthread_once(&fetch_once, fetch_algorithms);
        h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, sha256_md, NULL) != 1) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
                return NULL;
        }
        return h;
}

void cairn_sha256_update(struct cairn_sha256 *h, const void *data, size_t n) {
        EVP_DigestUpdate(h->ctx, data, n);
}

void cairn_sha256_final(struct cairn_sha256 *h, uint8_t out[CAIRN_ID_SIZE]) {
        unsigned len = CAIRN_ID_SIZE;
        EVP_DigestFinal_ex(h->ctx, out, &len);
}

struct cairn_sha256 *cairn_sha256_free(struct cairn_sha256 *h) {
        if (h) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
        }
        return NULL;
}

int cairn_hkdf(const uint8_t *ikm, size_t ikm_len, const char *info, uint8_t *out, size_t out_len) {
        EVP_KDF *kdf;
        EVP_KDF_CTX *kctx;
        OSSL_PARAM params[4];
        int ok;

        kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        if (!kdf)
                return log_openssl("EVP_KDF_fetch(HKDF)");
        kctx = EVP_KDF_CTX_new(kdf);
        EVP_KDF_free(kdf);
        if (!kctx)
                return log_openssl("EVP_KDF_CTX_new");
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) ikm, ikm_len);
        params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *) info, strlen(info));
        params[3] = OSSL_PARAM_construct_end();
        ok = EVP_KDF_derive(kctx, out, out_len, params);
        EVP_KDF_CTX_free(kctx);
        return ok == 1 ? 0 : log_openssl("HKDF");
}

int cairn_scrypt(const char *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                 uint64_t N, uint32_t r, uint32_t p, uint8_t out[CAIRN_KEY_SIZE]) {
        if (N < 2 || (N & (N - 1)) || r == 0 || p == 0 || N > (UINT64_C(1) << 24) || r > 64 || p > 16)
                return -EINVAL;
        /* A key file is input like any other (an offsite copy may be
         * tampered with): parameters asking for more than 2 GiB of work
         * memory are refused, not tried. */
        if (128 * N * r > (UINT64_C(2) << 30))
                return -E2BIG;
        /* 128·N·r bytes of work memory, plus slack. */
        uint64_t maxmem = 128 * N * r * 2 + (UINT64_C(1) << 20);
        if (EVP_PBE_scrypt(pass, pass_len, salt, salt_len, N, r, p, maxmem, out, CAIRN_KEY_SIZE) != 1)
                return log_openssl("scrypt");
        return 0;
}

int cairn_aead_seal_nonce(const uint8_t key[CAIRN_KEY_SIZE], const uint8_t nonce[CAIRN_NONCE_SIZE],
                          const void *aad, size_t aad_len, const void *pt, size_t len, uint8_t *out) {
        EVP_CIPHER_CTX *ctx;
        int n, r = -EIO;

        pthread_once(&fetch_once, fetch_algorithms);
        if (len > INT32_MAX)
                return -EFBIG;
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_EncryptInit_ex2(ctx, gcm, key, nonce, NULL) != 1)
                goto fail;
        if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int) aad_len) != 1)
                goto fail;
        if (EVP_EncryptUpdate(ctx, out, &n, pt, (int) len) != 1)
                goto fail;
        if (EVP_EncryptFinal_ex(ctx, out + n, &n) != 1)
                goto fail;
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CAIRN_TAG_SIZE, out + len) != 1)
                goto fail;
        r = 0;
fail:
        if (r < 0)
                r = log_openssl("AES-256-GCM encrypt");
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

int cairn_aead_seal(const uint8_t key[CAIRN_KEY_SIZE], const void *aad, size_t aad_len,
                    const void *pt, size_t len, uint8_t *out) {
        if (len > INT32_MAX)
                return -EFBIG;
        if (cairn_random_bytes(out, CAIRN_NONCE_SIZE) < 0)
                return -EIO;
        return cairn_aead_seal_nonce(key, out, aad, aad_len, pt, len, out + CAIRN_NONCE_SIZE);
}

int cairn_aead_open_nonce(const uint8_t key[CAIRN_KEY_SIZE], const uint8_t nonce[CAIRN_NONCE_SIZE],
                          const void *aad, size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *pt_out) {
        EVP_CIPHER_CTX *ctx;
        size_t len;
        int n, r = -EIO;

        pthread_once(&fetch_once, fetch_algorithms);
        if (in_len < CAIRN_TAG_SIZE)
                return -EBADMSG;
        len = in_len - CAIRN_TAG_SIZE;
        if (len > INT32_MAX)
                return -EFBIG;
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DecryptInit_ex2(ctx, gcm, key, nonce, NULL) != 1)
                goto fail;
        if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int) aad_len) != 1)
                goto fail;
        if (EVP_DecryptUpdate(ctx, pt_out, &n, in, (int) len) != 1)
                goto fail;
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CAIRN_TAG_SIZE, (void *) (in + len)) != 1)
                goto fail;
        if (EVP_DecryptFinal_ex(ctx, pt_out + n, &n) != 1) {
                ERR_clear_error();
                r = -EBADMSG;
                goto out;
        }
        r = 0;
fail:
        if (r < 0)
                r = log_openssl("AES-256-GCM decrypt");
out:
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

int cairn_aead_open(const uint8_t key[CAIRN_KEY_SIZE], const void *aad, size_t aad_len,
                    const uint8_t *in, size_t in_len, uint8_t *pt_out) {
        if (in_len < CAIRN_AEAD_OVERHEAD)
                return -EBADMSG;
        return cairn_aead_open_nonce(key, in, aad, aad_len, in + CAIRN_NONCE_SIZE, in_len - CAIRN_NONCE_SIZE, pt_out);
}
