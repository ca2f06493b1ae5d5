/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the binary seed inputs of the fuzz targets with the real code,
 * so they are exactly what cairn writes (regenerate when the format
 * changes; the files are committed):
 *
 *   fuzz-make-corpus tests/fuzz/corpus
 *
 * pack-trailer/  packs from cairn_pack_writer (unencrypted and with the
 *                fuzz target's fixed keys), whole (modes 0, 2) and as
 *                blob area + trailer plaintext (modes 1, 3)
 * tree/          tree blobs, single entries, content blobs
 * snapshot/      snapshot files (raw and zstd body) and JSON records
 * config/        repository `config` files (mode 1); the INI seeds come
 *                from make-corpus.py, as do tar/
 *
 * Every seed is written as <dir>/<name>; existing files are replaced.
 * Repository ids, chunker seeds and nonces are random, so the config and
 * encrypted seeds differ byte for byte each time they are made.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "pack.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"
#include "util.h"

static const char *out;

__attribute__((noreturn)) static void die(const char *what) {
        fprintf(stderr, "fuzz-make-corpus: %s\n", what);
        exit(1);
}

static void put(const char *dir, const char *name, uint8_t mode, const void *data, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", out, dir);
        (void) mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/%s/%s", out, dir, name);
        f = fopen(path, "wbe");
        if (!f || fwrite(&mode, 1, 1, f) != 1 || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
                die(path);
}

/* Raw bytes, no mode byte (the tree target has none). */
static void put_raw(const char *dir, const char *name, const void *data, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", out, dir);
        (void) mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/%s/%s", out, dir, name);
        f = fopen(path, "wbe");
        if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
                die(path);
}

static uint8_t *slurp(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "rbe");
        uint8_t *buf;
        long n;

        if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
                die(path);
        buf = malloc((size_t) n + 1);
        if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n)
                die(path);
        fclose(f);
        *ret_len = (size_t) n;
        return buf;
}

/* ---- packs ---- */

static void pack_seed(const struct cairn_codec *codec, bool encrypted, const char *name, size_t n_blobs) {
        char tmpl[] = "/tmp/fuzz-corpus.XXXXXX", path[4200], hex[65];
        struct cairn_pack_writer *w = NULL;
        struct cairn_pack_entry *entries = NULL;
        uint8_t pack_id[CAIRN_ID_SIZE], *file, *seed, *p;
        size_t n = 0, file_len, area_len, plain_len;
        int fd;

        if (!mkdtemp(tmpl))
                die("mkdtemp");
        snprintf(path, sizeof path, "%s/packs", tmpl);
        if (mkdir(path, 0700) < 0 || (fd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                die(path);
        if (cairn_pack_writer_new(fd, codec, &w) < 0)
                die("pack writer");
        for (size_t i = 0; i < n_blobs; i++) {
                /* Mixed: compressible text, incompressible bytes, a tree-ish blob, an empty one. */
                uint8_t raw[600], id[CAIRN_ID_SIZE], stored[700];
                size_t raw_len = i % 4 == 3 ? 0 : 40 + 150 * (i % 4), stored_len;
                uint8_t type = (uint8_t) (CAIRN_BLOB_DATA + i % 3);

                for (size_t j = 0; j < raw_len; j++)
                        raw[j] = i % 4 == 1 ? (uint8_t) (j * 2654435761u >> 13) : (uint8_t) ('a' + j % 7);
                cairn_codec_id(codec, raw, raw_len, id);
                if (cairn_codec_encode(codec, id, raw, raw_len, stored, &stored_len) < 0 ||
                    cairn_pack_writer_add(w, type, id, stored, stored_len, (uint32_t) raw_len) < 0)
                        die("pack add");
        }
        if (cairn_pack_writer_finish(w, pack_id, &entries, &n) < 0)
                die("pack finish");
        cairn_pack_writer_free(w);
        hex_encode(pack_id, CAIRN_ID_SIZE, hex);
        snprintf(path, sizeof path, "%s/packs/%.2s/%s", tmpl, hex, hex);
        file = slurp(path, &file_len);
        put("pack-trailer", name, encrypted ? 2 : 0, file, file_len);

        /* Mode 1/3: le16 area length | area | trailer plaintext. */
        area_len = n ? entries[n - 1].offset + entries[n - 1].stored_len - CAIRN_PACK_HEADER_SIZE : 0;
        plain_len = 4 + n * CAIRN_PACK_ENTRY_SIZE;
        seed = malloc(2 + area_len + plain_len);
        if (!seed || area_len > 0xffff)
                die("pack seed");
        put_le16(seed, (uint16_t) area_len);
        memcpy(seed + 2, file + CAIRN_PACK_HEADER_SIZE, area_len);
        p = seed + 2 + area_len;
        put_le32(p, (uint32_t) n);
        p += 4;
        for (size_t i = 0; i < n; i++, p += CAIRN_PACK_ENTRY_SIZE) {
                p[0] = entries[i].type;
                memcpy(p + 1, entries[i].id, CAIRN_ID_SIZE);
                put_le64(p + 1 + CAIRN_ID_SIZE, entries[i].offset);
                put_le32(p + 1 + CAIRN_ID_SIZE + 8, entries[i].stored_len);
                put_le32(p + 1 + CAIRN_ID_SIZE + 12, entries[i].raw_len);
        }
        {
                char name2[256];
                snprintf(name2, sizeof name2, "%s-parts", name);
                put("pack-trailer", name2, encrypted ? 3 : 1, seed, 2 + area_len + plain_len);
        }
        free(seed);
        free(file);
        free(entries);
        unlink(path);
        snprintf(path, sizeof path, "%s/packs/%.2s", tmpl, hex);
        rmdir(path);
        snprintf(path, sizeof path, "%s/packs", tmpl);
        rmdir(path);
        rmdir(tmpl);
        close(fd);
}

/* ---- trees ---- */

static void tree_seeds(void) {
        static const uint8_t acl[] = { 2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0,
                                       0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff };
        struct cairn_xattr xa[2] = {
                { "user.origin", 11, "from-the-test", 13 },
                { "system.posix_acl_access", 23, acl, sizeof acl },
        };
        struct cairn_entry file = { .type = CAIRN_ENTRY_FILE, .mode = 0100644, .uid = 1000, .gid = 1000,
                                    .size = 1234, .mtime_ns = 1700000000123456789, .ctime_ns = 1700000000,
                                    .ino = 42, .nlink = 1, .ref = { 0xab, 0xcd } };
        struct cairn_entry dir = { .type = CAIRN_ENTRY_DIR, .mode = 040755, .nlink = 2, .ref = { 1, 2, 3 } };
        struct cairn_entry link = { .type = CAIRN_ENTRY_SYMLINK, .mode = 0120777, .target = "../../blobs/abc",
                                    .target_len = 15, .size = 15 };
        struct cairn_entry hard = file;
        struct cairn_entry fifo = { .type = CAIRN_ENTRY_FIFO, .mode = 010644, .nlink = 1 };
        struct cairn_entry dev = { .type = CAIRN_ENTRY_CHR, .mode = 020666, .rdev = 0x0103, .nlink = 1 };
        struct cairn_content_chunk chunks[3] = {
                { .id = { 9, 9, 9 }, .length = 524288 },
                { .length = 1 << 20, .flags = CAIRN_CHUNK_HOLE },
                { .id = { 7 }, .length = 17 },
        };
        struct cairn_tree_builder *b;
        uint8_t *buf;
        size_t len;

        hard.hardlink_group = 0x1234567 | 1;
        hard.nlink = 2;

        if (cairn_entry_encode(&file, xa, 2, &buf, &len) < 0)
                die("entry");
        put_raw("tree", "entry-file-xattrs", buf, len);
        free(buf);
        if (cairn_entry_encode(&link, NULL, 0, &buf, &len) < 0)
                die("entry");
        put_raw("tree", "entry-symlink", buf, len);
        free(buf);

        b = cairn_tree_builder_new();
        if (!b || cairn_tree_builder_add(b, "hello.txt", 9, &file, xa, 2) < 0 ||
            cairn_tree_builder_add(b, "dir", 3, &dir, NULL, 0) < 0 ||
            cairn_tree_builder_add(b, "link", 4, &link, NULL, 0) < 0 ||
            cairn_tree_builder_add(b, "hl-a", 4, &hard, NULL, 0) < 0 ||
            cairn_tree_builder_add(b, "hl-b", 4, &hard, NULL, 0) < 0 ||
            cairn_tree_builder_add(b, "fifo", 4, &fifo, NULL, 0) < 0 ||
            cairn_tree_builder_add(b, "null", 4, &dev, NULL, 0) < 0 ||
            cairn_tree_builder_add(b, "\xc3\xa9t\xc3\xa9", 5, &file, NULL, 0) < 0 ||
            cairn_tree_builder_finish(b, &buf, &len) < 0)
                die("tree");
        put_raw("tree", "tree-mixed", buf, len);
        free(buf);
        cairn_tree_builder_free(b);

        b = cairn_tree_builder_new();
        if (!b || cairn_tree_builder_finish(b, &buf, &len) < 0)
                die("tree");
        put_raw("tree", "tree-empty", buf, len);
        free(buf);
        cairn_tree_builder_free(b);

        if (cairn_content_encode(chunks, 3, &buf, &len) < 0)
                die("content");
        put_raw("tree", "content-with-hole", buf, len);
        free(buf);
        if (cairn_content_encode(chunks, 0, &buf, &len) < 0)
                die("content");
        put_raw("tree", "content-empty", buf, len);
        free(buf);
}

/* ---- snapshots ---- */

static void snapshot_seeds(const struct cairn_codec *codec) {
        struct cairn_snapshot s = { .job = "pgdb", .host = "ml-server", .start_ns = 1763600400000000000,
                                    .end_ns = 1763600460500000000, .root = { 0x11, 0x22 }, .has_parent = true,
                                    .parent = { 0x33 }, .files = 3, .dirs = 1, .bytes = 1 << 30,
                                    .bytes_read = 12345, .added_bytes = 999, .stored_bytes = 500 };
        char *tags[] = { "import", "nightly" };
        char *json;
        size_t len, stored;
        uint8_t id[CAIRN_ID_SIZE], *file;

        s.tags = tags;
        s.n_tags = 2;
        s.log = "pg_dump: warning: something\n";
        if (cairn_snapshot_add_error(&s, "/srv/app/locked.db", "Permission denied") < 0)
                die("snapshot");
        if (cairn_snapshot_to_json(&s, &json, &len) < 0)
                die("snapshot json");
        put("snapshot", "json-partial", 1, json, len);

        /* The file as cairn_snapshot_write makes it (zstd body when it pays). */
        file = malloc(12 + cairn_codec_bound(codec, len));
        memcpy(file, "CAIRNSN\x01", 8);
        put_le32(file + 8, (uint32_t) len);
        cairn_codec_id(codec, json, len, id);
        if (cairn_codec_encode(codec, id, json, len, file + 12, &stored) < 0)
                die("snapshot encode");
        put("snapshot", "file-codec", 0, file, 12 + stored);
        /* And with a raw body. */
        file[12] = 0x00;
        memcpy(file + 13, json, len);
        put("snapshot", "file-raw", 0, file, 13 + len);
        free(file);
        free(json);

        for (size_t i = 0; i < s.n_errors; i++) {
                free(s.errors[i].path);
                free(s.errors[i].reason);
        }
        free(s.errors);

        struct cairn_snapshot m = { .job = "a", .host = "h", .start_ns = 1 };
        if (cairn_snapshot_to_json(&m, &json, &len) < 0)
                die("snapshot json");
        put("snapshot", "json-minimal", 1, json, len);
        free(json);
}

/* ---- repository configs ---- */

static void repo_config_seed(bool encrypted, const char *name) {
        char tmpl[] = "/tmp/fuzz-corpus.XXXXXX", path[4200], cmd[4300];
        struct cairn_repo_params p;
        struct cairn_pass_source pass = { CAIRN_PASS_STRING, "fuzz" };
        uint8_t *text;
        size_t len;

        if (!mkdtemp(tmpl))
                die("mkdtemp");
        snprintf(path, sizeof path, "%s/repo", tmpl);
        cairn_repo_params_default(&p);
        p.encrypted = encrypted;
        p.scrypt_n = 1024;
        if (cairn_repo_create(path, &p, &pass) < 0)
                die("repo create");
        snprintf(path, sizeof path, "%s/repo/config", tmpl);
        text = slurp(path, &len);
        put("config", name, 1, text, len);
        free(text);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
        if (system(cmd) != 0)
                die(cmd);
}

/* fuzz-segment: mode 0/1 (a stored segmented blob) and 2/3 (plaintext). */
static void segment_seeds(void) {
        static const uint8_t enc_key[CAIRN_KEY_SIZE] = { 1, 2, 3, 4 }, id_key[CAIRN_KEY_SIZE] = { 5, 6, 7, 8 };
        static const size_t sizes[] = { 16384, 16385, 40000 };
        struct cairn_codec *codecs[2];
        uint8_t raw[40000];

        if (cairn_codec_new(NULL, NULL, 3, 16384, &codecs[0]) < 0 ||
            cairn_codec_new(enc_key, id_key, 3, 16384, &codecs[1]) < 0)
                die("segment codec");
        /* Half text, half pseudo-random: segments of both bodies. */
        uint64_t x = 88172645463325252u;
        for (size_t i = 0; i < sizeof raw; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;   /* xorshift64 */
                raw[i] = (i / 8192) % 2 ? (uint8_t) "segment text "[i % 13] : (uint8_t) x;
        }
        for (unsigned e = 0; e < 2; e++)
                for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                        size_t len = sizes[k], stored_len = 0;
                        uint8_t *file = malloc(CAIRN_ID_SIZE + 4 + cairn_codec_bound(codecs[e], len));
                        char name[64];

                        if (!file)
                                die("oom");
                        cairn_codec_id(codecs[e], raw, len, file);
                        put_le32(file + CAIRN_ID_SIZE, (uint32_t) len);
                        if (cairn_codec_encode(codecs[e], file, raw, len, file + CAIRN_ID_SIZE + 4, &stored_len) < 0)
                                die("segment encode");
                        snprintf(name, sizeof name, "stored-%s-%zu", e ? "enc" : "plain", len);
                        put("segment", name, (uint8_t) e, file, CAIRN_ID_SIZE + 4 + stored_len);
                        snprintf(name, sizeof name, "plain-%s-%zu", e ? "enc" : "plain", len);
                        put("segment", name, (uint8_t) (2 + e), raw, len);
                        free(file);
                }
        cairn_codec_free(codecs[0]);
        cairn_codec_free(codecs[1]);
}

int main(int argc, char **argv) {
        static const uint8_t enc_key[CAIRN_KEY_SIZE] = { 1, 2, 3, 4 }, id_key[CAIRN_KEY_SIZE] = { 5, 6, 7, 8 };
        struct cairn_codec *plain, *enc;

        if (argc != 2)
                die("usage: fuzz-make-corpus OUTDIR");
        out = argv[1];
        (void) mkdir(out, 0755);
        /* The same codecs as the targets: fuzz-pack-trailer.c's fixed keys. */
        if (cairn_codec_new(NULL, NULL, 3, 0, &plain) < 0 || cairn_codec_new(enc_key, id_key, 3, 0, &enc) < 0)
                die("codec");

        pack_seed(plain, false, "pack-empty", 0);
        pack_seed(plain, false, "pack-1", 1);
        pack_seed(plain, false, "pack-5", 5);
        pack_seed(enc, true, "pack-enc-1", 1);
        pack_seed(enc, true, "pack-enc-5", 5);
        tree_seeds();
        snapshot_seeds(plain);
        repo_config_seed(false, "repo-config-plain");
        repo_config_seed(true, "repo-config-encrypted");
        segment_seeds();

        cairn_codec_free(plain);
        cairn_codec_free(enc);
        return 0;
}
