/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <openssl/crypto.h>

#include "fault.h"
#include "keyring.h"
#include "log.h"
#include "pack.h"
#include "repo-private.h"
#include "util.h"

#define CONFIG_MAX (64 * 1024)
#define KEYFILE_MAX (64 * 1024)
#define PASSPHRASE_MAX (64 * 1024)

void cairn_repo_params_default(struct cairn_repo_params *p) {
        *p = (struct cairn_repo_params) {
                .chunker = { CAIRN_CHUNK_MIN_DEFAULT, CAIRN_CHUNK_AVG_DEFAULT, CAIRN_CHUNK_MAX_DEFAULT },
                .zstd_level = 3,
                .segment_size = CAIRN_SEGMENT_DEFAULT,
                .encrypted = true,
                .scrypt_n = 1u << 15,
                .scrypt_r = 8,
                .scrypt_p = 1,
        };
}

static void secret_freep(char **p) {
        if (*p) {
                OPENSSL_cleanse(*p, strlen(*p));
                free(*p);
        }
}

static void strip_newline(char *s) {
        size_t n = strlen(s);
        if (n > 0 && s[n - 1] == '\n')
                s[--n] = 0;
        if (n > 0 && s[n - 1] == '\r')
                s[--n] = 0;
}

int cairn_passphrase_read(const struct cairn_pass_source *src, char **ret) {
        _cleanup_(secret_freep) char *pw = NULL;
        int r;

        switch (src ? src->kind : CAIRN_PASS_NONE) {
        case CAIRN_PASS_NONE:
                return log_error_errno(-ENOKEY, "The repository is encrypted but no passphrase source is configured");
        case CAIRN_PASS_FILE:
                r = read_file_at(AT_FDCWD, src->value, PASSPHRASE_MAX, &pw, NULL);
                /* read_file_at's -EBADF ("Bad file descriptor") would send
                 * the operator looking for a descriptor; it means this. */
                if (r == -EBADF)
                        return log_error_errno(-EINVAL, "Cannot read passphrase file %s: not a regular file "
                                               "(a directory?)", src->value);
                if (r < 0)
                        return log_error_errno(r, "Cannot read passphrase file %s: %m", src->value);
                break;
        case CAIRN_PASS_ENV: {
                const char *v = getenv(src->value);
                if (!v)
                        return log_error_errno(-ENOKEY, "Passphrase variable $%s is not set", src->value);
                pw = strdup(v);
                if (!pw)
                        return -ENOMEM;
                break;
        }
        case CAIRN_PASS_COMMAND: {
                FILE *f = popen(src->value, "re");
                size_t n = 0, cap = 256;
                int status;

                if (!f)
                        return log_error_errno(-errno, "Cannot run passphrase command \"%s\": %m", src->value);
                pw = malloc(cap);
                while (pw) {
                        size_t k = fread(pw + n, 1, cap - n - 1, f);
                        n += k;
                        if (k == 0)
                                break;
                        if (n + 1 == cap) {
                                char *bigger;
                                if (cap >= PASSPHRASE_MAX)
                                        break;
                                bigger = realloc(pw, cap * 2);
                                if (!bigger) {
                                        OPENSSL_cleanse(pw, n);
                                        free(pw);
                                }
                                pw = bigger;
                                cap *= 2;
                        }
                }
                status = pclose(f);
                if (!pw)
                        return -ENOMEM;
                pw[n] = 0;
                if (status != 0)
                        return log_error_errno(-ECHILD, "Passphrase command \"%s\" failed (%s %d)", src->value,
                                               WIFEXITED(status) ? "exit status" : "signal",
                                               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                break;
        }
        case CAIRN_PASS_STRING:
                pw = strdup(src->value);
                if (!pw)
                        return -ENOMEM;
                break;
        }

        strip_newline(pw);
        if (pw[0] == 0)
                return log_error_errno(-ENOKEY, "The passphrase is empty");
        *ret = TAKE_PTR(pw);
        return 0;
}

/* "key = value" files (config, key files): calls @cb for each line; a
 * malformed line is -EBADMSG naming the file and line. */
typedef int (*kv_cb)(const char *key, const char *value, void *userdata);

static char *trim(char *s) {
        char *e;
        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

/* @file: for messages; NULL: errors are returned, not logged. */
static int parse_kv(const char *file, char *text, kv_cb cb, void *userdata) {
        unsigned line = 0;
        char *next;

        /* Line by line, empty ones included (strtok_r would skip them and
         * the line numbers in messages would be off). */
        for (char *l = text; l; l = next) {
                char *eq, *key, *value;
                int r;

                next = strchr(l, '\n');
                if (next)
                        *next++ = 0;
                line++;
                l = trim(l);
                if (l[0] == 0 || l[0] == '#')
                        continue;
                eq = strchr(l, '=');
                if (!eq)
                        return !file ? -EBADMSG : log_error_errno(-EBADMSG, "%s: line %u: expected \"key = value\"", file, line);
                *eq = 0;
                key = trim(l);
                value = trim(eq + 1);
                r = cb(key, value, userdata);
                if (r == -EINVAL)
                        return !file ? -EBADMSG : log_error_errno(-EBADMSG, "%s: line %u: bad value for \"%s\": \"%s\"", file, line, key, value);
                if (r == -ENOENT)
                        return !file ? -EBADMSG : log_error_errno(-EBADMSG, "%s: line %u: unknown key \"%s\"", file, line, key);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;
        if (!*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_u32(const char *s, uint32_t *ret) {
        uint64_t v;
        if (parse_u64(s, &v) < 0 || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

struct config_state {
        struct cairn_repo *repo;
        uint64_t version;
        bool have_id, have_seed, have_encryption;
};

static int config_cb(const char *key, const char *value, void *userdata) {
        struct config_state *st = userdata;
        struct cairn_repo *r = st->repo;

        if (streq(key, "version"))
                return parse_u64(value, &st->version);
        if (streq(key, "id")) {
                st->have_id = true;
                return hex_decode(value, r->id, sizeof r->id);
        }
        if (streq(key, "chunker-min"))
                return parse_u32(value, &r->params.chunker.min_size);
        if (streq(key, "chunker-avg"))
                return parse_u32(value, &r->params.chunker.avg_size);
        if (streq(key, "chunker-max"))
                return parse_u32(value, &r->params.chunker.max_size);
        if (streq(key, "chunker-seed")) {
                st->have_seed = true;
                return hex_decode(value, r->chunker_seed, sizeof r->chunker_seed);
        }
        if (streq(key, "compression")) {
                uint32_t level;
                if (strncmp(value, "zstd:", 5) != 0 || parse_u32(value + 5, &level) < 0 || level < 1 || level > 19)
                        return -EINVAL;
                r->params.zstd_level = (int) level;
                return 0;
        }
        if (streq(key, "segment-size")) {
                /* Absent in repositories made before segments: 0, whole blobs. */
                if (parse_u32(value, &r->params.segment_size) < 0 || r->params.segment_size == 0 ||
                    !cairn_codec_segment_size_valid(r->params.segment_size))
                        return -EINVAL;
                return 0;
        }
        if (streq(key, "encryption")) {
                st->have_encryption = true;
                if (streq(value, "aes-256-gcm"))
                        r->params.encrypted = true;
                else if (streq(value, "none"))
                        r->params.encrypted = false;
                else
                        return -EINVAL;
                return 0;
        }
        return -ENOENT;
}

/* The version line is read first on its own, so that a newer format's
 * unknown keys give "newer version", not "unknown key". */
static int config_version(const char *text, uint64_t *ret) {
        const char *p = text;
        while (p && *p) {
                const char *nl = strchr(p, '\n');
                char line[128];
                size_t n = nl ? (size_t) (nl - p) : strlen(p);
                if (n < sizeof line) {
                        char *eq, *k;
                        memcpy(line, p, n);
                        line[n] = 0;
                        eq = strchr(line, '=');
                        if (eq) {
                                *eq = 0;
                                k = trim(line);
                                if (streq(k, "version"))
                                        return parse_u64(trim(eq + 1), ret);
                        }
                }
                p = nl ? nl + 1 : NULL;
        }
        return -ENOENT;
}

static int config_read(struct cairn_repo *r) {
        _cleanup_free_ char *text = NULL;
        struct config_state st = { .repo = r };
        char file[4200];
        uint64_t version;
        int k;

        snprintf(file, sizeof file, "%s/config", r->path);
        k = read_file_at(r->fd, "config", CONFIG_MAX, &text, NULL);
        if (k == -ENOENT)
                return log_error_errno(k, "%s is not a cairn repository (no config file); create one with \"cairn init\"", r->path);
        if (k < 0)
                return log_error_errno(k, "Cannot read %s: %m", file);
        k = config_version(text, &version);
        if (k < 0)
                return log_error_errno(-EBADMSG, "%s: no valid \"version\" line", file);
        if (version > CAIRN_FORMAT_VERSION)
                return log_error_errno(-EPROTONOSUPPORT,
                                       "%s: repository format version %" PRIu64 " is newer than this cairn supports (%d); upgrade cairn",
                                       file, version, CAIRN_FORMAT_VERSION);
        if (version < 1)
                return log_error_errno(-EBADMSG, "%s: bad format version %" PRIu64, file, version);
        k = parse_kv(file, text, config_cb, &st);
        if (k < 0)
                return k;
        if (!st.have_id || !st.have_encryption)
                return log_error_errno(-EBADMSG, "%s: missing \"%s\"", file, st.have_id ? "encryption" : "id");
        if (!r->params.encrypted && !st.have_seed)
                return log_error_errno(-EBADMSG, "%s: missing \"chunker-seed\"", file);
        return 0;
}

static int config_write(int fd, const uint8_t id[CAIRN_REPO_ID_SIZE], const struct cairn_repo_params *p,
                        const uint8_t seed[CAIRN_KEY_SIZE]) {
        char idhex[2 * CAIRN_REPO_ID_SIZE + 1], seedhex[2 * CAIRN_KEY_SIZE + 1], segment[16];
        _cleanup_free_ char *text = NULL;
        int n;

        snprintf(segment, sizeof segment, "%" PRIu32, p->segment_size);
        n = asprintf(&text,
                     "# cairn repository: do not edit\n"
                     "version = %d\n"
                     "id = %s\n"
                     "chunker-min = %" PRIu32 "\n"
                     "chunker-avg = %" PRIu32 "\n"
                     "chunker-max = %" PRIu32 "\n"
                     "%s%s%s"
                     "compression = zstd:%d\n"
                     "%s%s%s"
                     "encryption = %s\n",
                     CAIRN_FORMAT_VERSION, hex_encode(id, CAIRN_REPO_ID_SIZE, idhex),
                     p->chunker.min_size, p->chunker.avg_size, p->chunker.max_size,
                     p->encrypted ? "" : "chunker-seed = ",
                     p->encrypted ? "" : hex_encode(seed, CAIRN_KEY_SIZE, seedhex),
                     p->encrypted ? "" : "\n",
                     p->zstd_level,
                     p->segment_size ? "segment-size = " : "", p->segment_size ? segment : "", p->segment_size ? "\n" : "",
                     p->encrypted ? "aes-256-gcm" : "none");
        if (n < 0)
                return -ENOMEM;
        return write_file_atomic_at(fd, ".", "config", text, (size_t) n, 0600);
}

struct keyfile {
        uint64_t n;
        uint32_t r, p;
        uint8_t salt[32];
        uint8_t sealed[CAIRN_KEY_SIZE + CAIRN_AEAD_OVERHEAD];
        bool have_salt, have_key, have_kdf;
};

static int keyfile_cb(const char *key, const char *value, void *userdata) {
        struct keyfile *k = userdata;
        if (streq(key, "kdf")) {
                k->have_kdf = true;
                return streq(value, "scrypt") ? 0 : -EINVAL;
        }
        if (streq(key, "scrypt-n"))
                return parse_u64(value, &k->n);
        if (streq(key, "scrypt-r"))
                return parse_u32(value, &k->r);
        if (streq(key, "scrypt-p"))
                return parse_u32(value, &k->p);
        if (streq(key, "salt")) {
                k->have_salt = true;
                return hex_decode(value, k->salt, sizeof k->salt);
        }
        if (streq(key, "key")) {
                k->have_key = true;
                return hex_decode(value, k->sealed, sizeof k->sealed);
        }
        return -ENOENT;
}

static int derive_subkeys(struct cairn_repo *r, const uint8_t master[CAIRN_KEY_SIZE]) {
        int k;
        k = cairn_hkdf(master, CAIRN_KEY_SIZE, "cairn v1 blob encryption", r->enc_key, CAIRN_KEY_SIZE);
        if (k >= 0)
                k = cairn_hkdf(master, CAIRN_KEY_SIZE, "cairn v1 blob id", r->id_key, CAIRN_KEY_SIZE);
        if (k >= 0)
                k = cairn_hkdf(master, CAIRN_KEY_SIZE, "cairn v1 chunker seed", r->chunker_seed, CAIRN_KEY_SIZE);
        return k;
}

int cairn_key_cache_parse(const char *s, int *ret_seconds) {
        unsigned long long n;
        unsigned mult = 1;
        char *end;

        if (streq(s, "off") || streq(s, "no") || streq(s, "0")) {
                *ret_seconds = -1;
                return 0;
        }
        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        n = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (*end) {
                switch (*end) {
                case 's': mult = 1; break;
                case 'm': mult = 60; break;
                case 'h': mult = 3600; break;
                case 'd': mult = 86400; break;
                default: return -EINVAL;
                }
                if (end[1])
                        return -EINVAL;
        }
        if (n == 0 || n > 30ull * 86400 / mult)
                return -EINVAL;
        *ret_seconds = (int) (n * mult);
        return 0;
}

/* The key that seals the cached master key: HKDF over the passphrase, the
 * repository id and the key file (salt and sealed key), so an entry opens
 * only with the passphrase and only while that key file is unchanged. */
static int cache_wrap_key(const struct cairn_repo *r, const char *pass, const struct keyfile *kf,
                          uint8_t ret[CAIRN_KEY_SIZE]) {
        size_t pl = strlen(pass), n = pl + sizeof r->id + sizeof kf->salt + sizeof kf->sealed;
        uint8_t *ikm = malloc(n);
        int k;

        if (!ikm)
                return -ENOMEM;
        memcpy(ikm, pass, pl);
        memcpy(ikm + pl, r->id, sizeof r->id);
        memcpy(ikm + pl + sizeof r->id, kf->salt, sizeof kf->salt);
        memcpy(ikm + pl + sizeof r->id + sizeof kf->salt, kf->sealed, sizeof kf->sealed);
        k = cairn_hkdf(ikm, n, "cairn v1 key cache", ret, CAIRN_KEY_SIZE);
        OPENSSL_cleanse(ikm, n);
        free(ikm);
        return k;
}

#define CACHE_NAME_SIZE (sizeof "cairn:" + 2 * CAIRN_REPO_ID_SIZE)

static void cache_name(const struct cairn_repo *r, char ret[CACHE_NAME_SIZE]) {
        char hex[2 * CAIRN_REPO_ID_SIZE + 1];
        snprintf(ret, CACHE_NAME_SIZE, "cairn:%s", hex_encode(r->id, sizeof r->id, hex));
}

#define CACHE_ENTRY_SIZE (CAIRN_KEY_SIZE + CAIRN_AEAD_OVERHEAD)

/* Read and parse key file @name of @dfd; @file: its path for messages,
 * NULL: quietly. */
static int keyfile_load(int dfd, const char *name, const char *file, struct keyfile *kf) {
        _cleanup_free_ char *text = NULL;
        int q;

        q = read_file_at(dfd, name, KEYFILE_MAX, &text, NULL);
        if (q < 0)
                return file ? log_warning_errno(q, "Cannot read key file %s: %m", file) : q;
        q = parse_kv(file, text, keyfile_cb, kf);
        if (q >= 0 && !(kf->have_kdf && kf->have_key && kf->have_salt && kf->n && kf->r && kf->p))
                q = file ? log_error_errno(-EBADMSG, "%s: incomplete key file", file) : -EBADMSG;
        return q;
}

/* Open the master key sealed in @sealed under @wrap; on success derive the
 * subkeys, and when @cache_s, keep it in the keyring as @name. */
static int master_open(struct cairn_repo *r, const char *pass, const struct keyfile *kf, const uint8_t *sealed,
                       size_t sealed_len, uint8_t wrap[CAIRN_KEY_SIZE], const char *name, unsigned cache_s) {
        uint8_t master[CAIRN_KEY_SIZE];
        int k;

        k = cairn_aead_open(wrap, r->id, sizeof r->id, sealed, sealed_len, master);
        OPENSSL_cleanse(wrap, CAIRN_KEY_SIZE);
        if (k < 0)
                return -EACCES;
        k = derive_subkeys(r, master);
        if (k >= 0 && cache_s > 0 && cache_wrap_key(r, pass, kf, wrap) >= 0) {
                uint8_t entry[CACHE_ENTRY_SIZE];
                if (cairn_aead_seal(wrap, r->id, sizeof r->id, master, CAIRN_KEY_SIZE, entry) >= 0)
                        (void) cairn_keyring_put(name, entry, sizeof entry, cache_s);
                OPENSSL_cleanse(wrap, CAIRN_KEY_SIZE);
                OPENSSL_cleanse(entry, sizeof entry);
        }
        OPENSSL_cleanse(master, sizeof master);
        return k;
}

/* Try every key file under keys/ with @pass: first all of them against the
 * keyring's entry (an HKDF each), then each with scrypt. */
static int keys_unlock(struct cairn_repo *r, const char *pass, int key_cache) {
        _cleanup_close_ int kfd = -1;
        uint8_t cached[CACHE_ENTRY_SIZE];
        char name[CACHE_NAME_SIZE];
        ssize_t cached_len = -ENOKEY;
        unsigned cache_s = key_cache == 0 ? CAIRN_KEY_CACHE_DEFAULT : key_cache > 0 ? (unsigned) key_cache : 0;
        DIR *d;
        struct dirent *de;
        int k = -EACCES;
        unsigned tried = 0;

        cache_name(r, name);
        if (cache_s > 0)
                cached_len = cairn_keyring_get(name, cached, sizeof cached);
        else
                (void) cairn_keyring_forget(name);

        kfd = openat(r->fd, "keys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (kfd < 0)
                return log_error_errno(-errno, "Cannot open %s/keys: %m", r->path);
        d = fdopendir(TAKE_FD(kfd));
        if (!d)
                return -errno;
        for (int pass_no = cached_len == CACHE_ENTRY_SIZE ? 0 : 1; pass_no < 2 && k == -EACCES; pass_no++) {
                rewinddir(d);
                while ((de = readdir(d))) {
                        struct keyfile kf = { 0 };
                        uint8_t wrap[CAIRN_KEY_SIZE];
                        char file[4400];
                        int q;

                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(file, sizeof file, "%s/keys/%s", r->path, de->d_name);
                        if (pass_no == 0) {
                                /* Quietly: the scrypt pass reports bad files. */
                                if (keyfile_load(dirfd(d), de->d_name, NULL, &kf) < 0 ||
                                    cache_wrap_key(r, pass, &kf, wrap) < 0)
                                        continue;
                                /* A hit needs no new entry: it expires as set. */
                                k = master_open(r, pass, &kf, cached, sizeof cached, wrap, name, 0);
                                if (k != -EACCES)
                                        break;
                                continue;
                        }
                        if (keyfile_load(dirfd(d), de->d_name, file, &kf) < 0)
                                continue;
                        tried++;
                        q = cairn_scrypt(pass, strlen(pass), kf.salt, sizeof kf.salt, kf.n, kf.r, kf.p, wrap);
                        if (q == -E2BIG) {
                                log_error("%s: scrypt N=%" PRIu64 " r=%u needs %" PRIu64 " MiB of memory, more than "
                                          "the 2048 MiB allowed (a damaged key file?)", file, kf.n, kf.r,
                                          128 * kf.n * kf.r >> 20);
                                continue;
                        }
                        if (q < 0) {
                                log_error_errno(q, "%s: bad scrypt parameters", file);
                                continue;
                        }
                        k = master_open(r, pass, &kf, kf.sealed, sizeof kf.sealed, wrap, name, cache_s);
                        if (k != -EACCES)
                                break;
                }
        }
        OPENSSL_cleanse(cached, sizeof cached);
        closedir(d);
        if (k == -EACCES)
                return log_error_errno(k, tried ? "Wrong passphrase for repository %s (no key file in keys/ opens "
                                                  "with it; if the passphrase is right, the config's id or the key "
                                                  "files are damaged)" :
                                                  "Repository %s has no usable key file in keys/", r->path);
        return k;
}

static int keys_create(int fd, const uint8_t repo_id[CAIRN_REPO_ID_SIZE], const struct cairn_repo_params *p,
                       const char *pass, uint8_t master[CAIRN_KEY_SIZE]) {
        struct keyfile kf = { .n = p->scrypt_n, .r = p->scrypt_r, .p = p->scrypt_p };
        uint8_t wrap[CAIRN_KEY_SIZE], name[16];
        char salthex[65], keyhex[2 * sizeof kf.sealed + 1], namehex[33];
        _cleanup_free_ char *text = NULL;
        int k, n;

        k = cairn_random_bytes(master, CAIRN_KEY_SIZE);
        if (k >= 0)
                k = cairn_random_bytes(kf.salt, sizeof kf.salt);
        if (k >= 0)
                k = cairn_random_bytes(name, sizeof name);
        if (k < 0)
                return k;
        k = cairn_scrypt(pass, strlen(pass), kf.salt, sizeof kf.salt, kf.n, kf.r, kf.p, wrap);
        if (k < 0)
                return log_error_errno(k, "Bad scrypt parameters N=%" PRIu64 " r=%u p=%u", kf.n, kf.r, kf.p);
        k = cairn_aead_seal(wrap, repo_id, CAIRN_REPO_ID_SIZE, master, CAIRN_KEY_SIZE, kf.sealed);
        OPENSSL_cleanse(wrap, sizeof wrap);
        if (k < 0)
                return k;
        n = asprintf(&text,
                     "# cairn key file: the master key, sealed with AES-256-GCM under scrypt(passphrase)\n"
                     "kdf = scrypt\nscrypt-n = %" PRIu64 "\nscrypt-r = %u\nscrypt-p = %u\nsalt = %s\nkey = %s\n",
                     kf.n, kf.r, kf.p, hex_encode(kf.salt, sizeof kf.salt, salthex),
                     hex_encode(kf.sealed, sizeof kf.sealed, keyhex));
        if (n < 0)
                return -ENOMEM;
        return write_file_atomic_at(fd, "keys", hex_encode(name, sizeof name, namehex), text, (size_t) n, 0600);
}

static int dir_is_empty_at(int fd) {
        _cleanup_close_ int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        int empty = 1;

        if (dfd < 0)
                return -errno;
        d = fdopendir(TAKE_FD(dfd));
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                        empty = 0;
                        break;
                }
        closedir(d);
        return empty;
}

int cairn_repo_create(const char *path, const struct cairn_repo_params *params, const struct cairn_pass_source *pass) {
        static const char *const dirs[] = { "keys", "packs", "snapshots", "index", "locks" };
        _cleanup_(secret_freep) char *pw = NULL;
        _cleanup_close_ int fd = -1;
        _cleanup_(cairn_chunker_freep) struct cairn_chunker *probe = NULL;
        uint8_t id[CAIRN_REPO_ID_SIZE], seed[CAIRN_KEY_SIZE] = { 0 }, master[CAIRN_KEY_SIZE];
        int k;

        if (params->zstd_level < 1 || params->zstd_level > 19)
                return log_error_errno(-EINVAL, "Compression level %d is out of range (1..19)", params->zstd_level);
        if (!cairn_codec_segment_size_valid(params->segment_size))
                return log_error_errno(-EINVAL, "Segment size %" PRIu32 " is not 0 or a power of two from %u to %u",
                                       params->segment_size, CAIRN_SEGMENT_MIN, CAIRN_SEGMENT_MAX);
        k = cairn_chunker_new(&params->chunker, seed, &probe);
        if (k < 0)
                return log_error_errno(k, "Bad chunker sizes %u/%u/%u", params->chunker.min_size,
                                       params->chunker.avg_size, params->chunker.max_size);
        if (params->encrypted) {
                k = cairn_passphrase_read(pass, &pw);
                if (k < 0)
                        return k;
        }

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Cannot create repository directory %s: %m", path);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open %s: %m", path);
        if (faccessat(fd, "config", F_OK, 0) == 0)
                return log_error_errno(-EEXIST, "%s already holds a cairn repository", path);
        k = dir_is_empty_at(fd);
        if (k < 0)
                return log_error_errno(k, "Cannot read %s: %m", path);
        if (k == 0)
                return log_error_errno(-EEXIST, "%s is not empty; a new repository needs an empty or new directory", path);

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (mkdirat(fd, dirs[i], 0700) < 0)
                        return log_error_errno(-errno, "Cannot create %s/%s: %m", path, dirs[i]);

        k = cairn_random_bytes(id, sizeof id);
        if (k >= 0 && !params->encrypted)
                k = cairn_random_bytes(seed, sizeof seed);
        if (k < 0)
                return k;
        if (params->encrypted) {
                k = keys_create(fd, id, params, pw, master);
                OPENSSL_cleanse(master, sizeof master);
                if (k < 0)
                        return log_error_errno(k, "Cannot write key file in %s/keys: %m", path);
        }
        /* The config goes last: a repository exists once it has one. */
        k = config_write(fd, id, params, seed);
        if (k < 0)
                return log_error_errno(k, "Cannot write %s/config: %m", path);
        return fsync_dir_at(fd, ".");
}

int cairn_repo_swap_index(struct cairn_repo *r, const char *new_dir) {
        char old[64], rnd_hex[17], idx_path[4200];
        uint8_t rnd[8];
        int k;

        k = cairn_random_bytes(rnd, sizeof rnd);
        if (k < 0)
                return k;
        snprintf(old, sizeof old, "index.old-%s", hex_encode(rnd, sizeof rnd, rnd_hex));
        r->index = cairn_index_free(r->index);
        /* One atomic exchange: a crash at any point leaves an index/, the
         * old one or the new one.  (Two renames left none in between, and
         * an empty index was then created at the next open.)  The old one
         * is then at @new_dir, which the next rebuild clears first anyway. */
        if (renameat2(r->fd, new_dir, r->fd, "index", RENAME_EXCHANGE) >= 0) {
                k = fsync_dir_at(r->fd, ".");
                if (k < 0)
                        return log_error_errno(k, "Cannot sync %s: %m", r->path);
                cairn_fault_point("index-rebuild.swapped");
                (void) cairn_rm_dir_at(r->fd, new_dir);
        } else {
                /* No index/ (ENOENT), or no RENAME_EXCHANGE here. */
                if (errno != ENOENT && renameat(r->fd, "index", r->fd, old) < 0 && errno != ENOENT)
                        return log_error_errno(-errno, "Cannot move %s/index aside: %m", r->path);
                if (renameat(r->fd, new_dir, r->fd, "index") < 0)
                        return log_error_errno(-errno, "Cannot move %s/%s to index: %m", r->path, new_dir);
                k = fsync_dir_at(r->fd, ".");
                if (k < 0)
                        return k;
                (void) cairn_rm_dir_at(r->fd, old);
        }
        snprintf(idx_path, sizeof idx_path, "%s/index", r->path);
        return cairn_index_open(idx_path, &r->index);
}

int cairn_rm_dir_at(int fd, const char *path) {
        _cleanup_close_ int dfd = openat(fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        DIR *d;
        struct dirent *de;

        if (dfd < 0)
                return errno == ENOENT ? 0 : -errno;
        d = fdopendir(TAKE_FD(dfd));
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        if (unlinkat(fd, path, AT_REMOVEDIR) < 0)
                return -errno;
        return 0;
}

static int repo_open(const char *path, const struct cairn_pass_source *pass, bool index_optional,
                     struct cairn_repo **ret) {
        _cleanup_(cairn_repo_freep) struct cairn_repo *r = NULL;
        char idx_path[4200];
        struct stat st;
        int k;

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->fd = -1;
        r->path = strdup(path);
        if (!r->path)
                return -ENOMEM;
        r->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->fd < 0)
                return log_error_errno(errno == ENOTDIR ? -ENOENT : -errno, "Cannot open repository %s: %m", path);
        k = config_read(r);
        if (k < 0)
                return k;

        if (r->params.encrypted) {
                _cleanup_(secret_freep) char *pw = NULL;
                if (!pass || pass->kind == CAIRN_PASS_NONE)
                        return log_error_errno(-ENOKEY, "Repository %s is encrypted: give a passphrase "
                                               "(--password-file, --password-command or $CAIRN_PASSWORD)", path);
                k = cairn_passphrase_read(pass, &pw);
                if (k < 0)
                        return k;
                k = keys_unlock(r, pw, pass->key_cache);
                if (k < 0)
                        return k;
        }

        k = cairn_chunker_new(&r->params.chunker, r->chunker_seed, &r->chunker);
        if (k < 0)
                return log_error_errno(-EBADMSG, "%s/config: bad chunker sizes", path);
        k = cairn_codec_new(r->params.encrypted ? r->enc_key : NULL, r->params.encrypted ? r->id_key : NULL,
                            r->params.zstd_level, r->params.segment_size, &r->codec);
        if (k < 0)
                return log_error_errno(k, "Cannot set up the codec: %m");

        /* The index is derived: a missing directory is recreated (empty;
         * `cairn index rebuild` fills it). */
        if (fstatat(r->fd, "index", &st, 0) < 0 && errno == ENOENT)
                (void) mkdirat(r->fd, "index", 0700);
        snprintf(idx_path, sizeof idx_path, "%s/index", path);
        k = cairn_index_open(idx_path, &r->index);
        if (k < 0 && index_optional)
                log_warning_errno(k, "The index %s cannot be opened (%m); it is rebuilt from the packs and "
                                  "snapshot files", idx_path);
        else if (k < 0)
                return log_error_errno(k, "Cannot open the index %s: %m (if it is damaged, `cairn index rebuild` "
                                       "makes a new one from the packs and snapshot files)", idx_path);

        *ret = TAKE_PTR(r);
        return 0;
}

int cairn_repo_open(const char *path, const struct cairn_pass_source *pass, struct cairn_repo **ret) {
        return repo_open(path, pass, false, ret);
}

int cairn_repo_open_for_rebuild(const char *path, const struct cairn_pass_source *pass, struct cairn_repo **ret) {
        return repo_open(path, pass, true, ret);
}

struct cairn_repo *cairn_repo_free(struct cairn_repo *r) {
        if (!r)
                return NULL;
        cairn_index_free(r->index);
        cairn_codec_free(r->codec);
        cairn_chunker_free(r->chunker);
        if (r->fd >= 0)
                close(r->fd);
        OPENSSL_cleanse(r->enc_key, sizeof r->enc_key);
        OPENSSL_cleanse(r->id_key, sizeof r->id_key);
        free(r->path);
        free(r);
        return NULL;
}

const char *cairn_repo_path(const struct cairn_repo *r) { return r->path; }
int cairn_repo_fd(const struct cairn_repo *r) { return r->fd; }
const uint8_t *cairn_repo_id(const struct cairn_repo *r) { return r->id; }
const struct cairn_repo_params *cairn_repo_params(const struct cairn_repo *r) { return &r->params; }
const struct cairn_codec *cairn_repo_codec(const struct cairn_repo *r) { return r->codec; }
const struct cairn_chunker *cairn_repo_chunker(const struct cairn_repo *r) { return r->chunker; }
struct cairn_index *cairn_repo_index(struct cairn_repo *r) { return r->index; }

static int blob_read_once(struct cairn_repo *r, struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE],
                          struct cairn_chunk_loc *loc, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ uint8_t *buf = NULL;
        int k;

        k = cairn_index_chunk_get(t, id, loc);
        if (k < 0)
                return k;
        buf = malloc(loc->raw_len ? loc->raw_len : 1);
        if (!buf)
                return -ENOMEM;
        k = cairn_pack_read_blob(r->fd, r->codec, loc->pack, id, loc->offset, loc->stored_len, buf, loc->raw_len);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(buf);
        *ret_len = loc->raw_len;
        return 0;
}

int cairn_repo_blob_read(struct cairn_repo *r, struct cairn_txn *t, const uint8_t id[CAIRN_ID_SIZE],
                         uint8_t **ret, size_t *ret_len) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *own = NULL;
        struct cairn_chunk_loc loc, again;
        char hex[2 * CAIRN_ID_SIZE + 1];
        int k;

        if (!t) {
                k = cairn_index_txn_begin(r->index, false, &own);
                if (k < 0)
                        return k;
                t = own;
        }
        k = blob_read_once(r, t, id, &loc, ret, ret_len);
        if (k != -ENOENT || cairn_index_chunk_get(t, id, &loc) < 0)
                return k;

        /* The pack went away under us: a prune repacked the blob and
         * committed its new location after our transaction began.  Look
         * again in a fresh transaction. */
        {
                _cleanup_(cairn_index_txn_abortp) struct cairn_txn *fresh = NULL;
                k = cairn_index_txn_begin(r->index, false, &fresh);
                if (k < 0)
                        return k;
                k = blob_read_once(r, fresh, id, &again, ret, ret_len);
        }
        if (k == -ENOENT)
                log_error("Blob %s is missing: its pack is gone", hex_encode(id, CAIRN_ID_SIZE, hex));
        return k;
}

struct cairn_lock {
        int fd;
        bool exclusive;
};

static pid_t lock_holder(int fd) {
        char buf[256];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        return (pid_t) strtol(buf, NULL, 10);
}

int cairn_repo_lock(struct cairn_repo *r, const char *name, bool exclusive, bool wait, const char *what,
                    struct cairn_lock **ret, pid_t *ret_holder_pid) {
        _cleanup_close_ int fd = -1;
        char file[300], host[256] = "", *text = NULL;
        struct cairn_lock *l;
        pid_t holder;
        int n;

        if (!cairn_name_valid(name, strlen(name)) || strlen(name) > 200)
                return -EINVAL;
        (void) mkdirat(r->fd, "locks", 0700);
        snprintf(file, sizeof file, "locks/%s.lock", name);
        fd = openat(r->fd, file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open lock %s/%s: %m", r->path, file);
        if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
                if (errno != EWOULDBLOCK)
                        return log_error_errno(-errno, "Cannot lock %s/%s: %m", r->path, file);
                if (ret_holder_pid)
                        *ret_holder_pid = lock_holder(fd);
                return -EBUSY;
        }
        if (exclusive) {
                holder = lock_holder(fd);
                if (holder > 0 && holder != getpid() && kill(holder, 0) < 0 && errno == ESRCH)
                        log_warning("Lock %s/%s was left by process %d, which is no longer running; taking it over",
                                    r->path, file, (int) holder);
                (void) gethostname(host, sizeof host - 1);
                n = asprintf(&text, "%d %s %s\n", (int) getpid(), host, what ? what : "");
                if (n < 0)
                        return -ENOMEM;
                if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t) n, 0) != n) {
                        free(text);
                        return log_error_errno(-errno, "Cannot write lock %s/%s: %m", r->path, file);
                }
                free(text);
        }
        l = malloc(sizeof *l);
        if (!l)
                return -ENOMEM;
        l->fd = TAKE_FD(fd);
        l->exclusive = exclusive;
        *ret = l;
        return 0;
}

struct cairn_lock *cairn_lock_release(struct cairn_lock *l) {
        if (!l)
                return NULL;
        /* Clear the holder before unlocking: a file left naming us would
         * make the next owner warn about a dead process. */
        if (l->exclusive)
                (void) ftruncate(l->fd, 0);
        close(l->fd);
        free(l);
        return NULL;
}
