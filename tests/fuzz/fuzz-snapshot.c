/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot files (index/snapshot.c): the file header, the codec and the
 * JSON record, in an unencrypted repository made once per process.
 *
 * The first byte picks the mode (low bit):
 *   0  the rest is a snapshot file.  It is stored under the id that its
 *      body would verify against (SHA-256 of the raw body, or of what the
 *      zstd body decompresses to), so that a mutated file still reaches
 *      the JSON parser instead of failing the hash every time.
 *   1  the rest is a JSON record: parsed directly, and also written as a
 *      snapshot file by the real codec and read back.
 * A record that parses must survive to_json → from_json → to_json with
 * the same text.
 */
#include <stdbool.h>
#include <zstd.h>

#include "fuzz.h"
#include "repo.h"
#include "snapshot.h"
#include "util.h"

#define HEADER_SIZE 12                  /* "CAIRNSN\x01" | raw length (le32) */
#define ZSTD_GUESS_MAX (1u << 20)

static struct cairn_repo *repo;
static char snapdir[4300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        struct cairn_repo_params p;
        char path[4200];

        fuzz_quiet();
        snprintf(path, sizeof path, "%s/repo", fuzz_tmpdir("fuzz-snapshot"));
        cairn_repo_params_default(&p);
        p.encrypted = false;
        if (cairn_repo_create(path, &p, NULL) < 0 || cairn_repo_open(path, NULL, &repo) < 0) {
                fprintf(stderr, "fuzz-snapshot: cannot make a repository at %s\n", path);
                abort();
        }
        snprintf(snapdir, sizeof snapdir, "%s/snapshots", path);
        return 0;
}

static void check_roundtrip(const struct cairn_snapshot *s) {
        _cleanup_free_ char *j1 = NULL, *j2 = NULL;
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *again = NULL;
        size_t l1 = 0, l2 = 0;
        int k;

        k = cairn_snapshot_to_json(s, &j1, &l1);
        if (k == -ENOMEM)
                return;
        FUZZ_CHECK(k == 0);
        k = cairn_snapshot_from_json(j1, l1, &again);
        if (k == -ENOMEM)
                return;
        FUZZ_CHECK(k == 0);
        k = cairn_snapshot_to_json(again, &j2, &l2);
        if (k == -ENOMEM)
                return;
        FUZZ_CHECK(k == 0);
        FUZZ_CHECK(l1 == l2 && memcmp(j1, j2, l1) == 0);
}

/* Store @file under @id and read it back through the library. */
static void read_back(const uint8_t id[CAIRN_ID_SIZE], const void *file, size_t len) {
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        char hex[2 * CAIRN_ID_SIZE + 1], path[4400];
        int k;

        hex_encode(id, CAIRN_ID_SIZE, hex);
        if (fuzz_write_file(snapdir, hex, file, len) < 0)
                return;
        k = cairn_snapshot_read_file(repo, id, &s);
        snprintf(path, sizeof path, "%s/%s", snapdir, hex);
        (void) unlink(path);
        FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        if (k == 0)
                check_roundtrip(s);
}

static void fuzz_file(const uint8_t *data, size_t size) {
        const struct cairn_codec *codec = cairn_repo_codec(repo);
        _cleanup_free_ uint8_t *guess = NULL;
        const uint8_t *plain = data;
        size_t plain_len = size;
        uint8_t id[CAIRN_ID_SIZE];

        if (size > HEADER_SIZE) {
                uint32_t raw = get_le32(data + 8);
                const uint8_t *body = data + HEADER_SIZE;
                size_t body_len = size - HEADER_SIZE;

                plain = body + 1;
                plain_len = body_len - 1;
                if (body[0] == 0x01 && raw <= ZSTD_GUESS_MAX && (guess = malloc(raw ? raw : 1))) {
                        size_t n = ZSTD_decompress(guess, raw, body + 1, body_len - 1);
                        if (!ZSTD_isError(n) && n == raw) {
                                plain = guess;
                                plain_len = raw;
                        }
                }
        }
        cairn_codec_id(codec, plain, plain_len, id);
        read_back(id, data, size);
}

static void fuzz_json(const uint8_t *data, size_t size) {
        const struct cairn_codec *codec = cairn_repo_codec(repo);
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
        _cleanup_free_ uint8_t *file = NULL;
        uint8_t id[CAIRN_ID_SIZE];
        size_t stored = 0;
        int k;

        k = cairn_snapshot_from_json((const char *) data, size, &s);
        FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        if (k == 0)
                check_roundtrip(s);

        if (size > CAIRN_BLOB_MAX)
                return;
        file = malloc(HEADER_SIZE + cairn_codec_bound(codec, size));
        if (!file)
                return;
        memcpy(file, "CAIRNSN\x01", 8);
        put_le32(file + 8, (uint32_t) size);
        cairn_codec_id(codec, data, size, id);
        if (cairn_codec_encode(codec, id, data, size, file + HEADER_SIZE, &stored) < 0)
                return;
        read_back(id, file, HEADER_SIZE + stored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 1)
                fuzz_json(data + 1, size - 1);
        else
                fuzz_file(data + 1, size - 1);
        return 0;
}
