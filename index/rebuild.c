/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fault.h"
#include "log.h"
#include "pack.h"
#include "repo-private.h"
#include "snapshot.h"
#include "util.h"

#define REBUILD_DIR "index.new"

typedef uint8_t id_t32[CAIRN_ID_SIZE];

static int cmp_id(const void *a, const void *b) {
        return memcmp(a, b, CAIRN_ID_SIZE);
}

/* Every packs/xx/ID, sorted so that a blob stored in two packs (after a
 * crash between pack and index, or a repack) resolves the same way each
 * time. */
static int list_packs(struct cairn_repo *r, id_t32 **ret, size_t *ret_n) {
        _cleanup_close_ int fd = -1;
        id_t32 *ids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;

        fd = openat(r->fd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Cannot open %s/packs: %m", r->path);
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                uint8_t byte;
                struct dirent *pe;
                DIR *sub;
                int sfd;

                if (hex_decode(de->d_name, &byte, 1) < 0)
                        continue;
                sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (sfd < 0 || !(sub = fdopendir(sfd))) {
                        if (sfd >= 0)
                                close(sfd);
                        log_warning_errno(-errno, "Cannot read %s/packs/%s: %m", r->path, de->d_name);
                        continue;
                }
                while ((pe = readdir(sub))) {
                        uint8_t id[CAIRN_ID_SIZE];
                        if (hex_decode(pe->d_name, id, CAIRN_ID_SIZE) < 0 || id[0] != byte)
                                continue;
                        if (n == cap) {
                                id_t32 *bigger = realloc(ids, (cap = cap ? cap * 2 : 256) * sizeof *ids);
                                if (!bigger) {
                                        closedir(sub);
                                        closedir(d);
                                        free(ids);
                                        return -ENOMEM;
                                }
                                ids = bigger;
                        }
                        memcpy(ids[n++], id, CAIRN_ID_SIZE);
                }
                closedir(sub);
        }
        closedir(d);
        if (n > 0)
                qsort(ids, n, sizeof *ids, cmp_id);
        *ret = ids;
        *ret_n = n;
        return 0;
}

static int rebuild_pack(struct cairn_repo *r, struct cairn_index *idx, const uint8_t pack_id[CAIRN_ID_SIZE]) {
        _cleanup_free_ struct cairn_pack_entry *entries = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_close_ int fd = -1;
        char path[100], hex[2 * CAIRN_ID_SIZE + 1];
        struct stat st;
        size_t n;
        int k;

        cairn_pack_path(pack_id, path, sizeof path);
        fd = openat(r->fd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return log_error_errno(-errno, "Cannot open %s/%s: %m", r->path, path);
        k = cairn_pack_read_trailer_fd(fd, r->codec, &entries, &n);
        if (k < 0)
                return log_error_errno(k, "Pack %s/%s is damaged; its blobs are left out of the index", r->path, path);

        k = cairn_index_txn_begin(idx, true, &t);
        if (k < 0)
                return k;
        k = cairn_index_pack_put(t, pack_id, (uint64_t) st.st_size, (uint32_t) n);
        for (size_t i = 0; k >= 0 && i < n; i++) {
                struct cairn_chunk_loc loc = {
                        .offset = entries[i].offset,
                        .stored_len = entries[i].stored_len,
                        .raw_len = entries[i].raw_len,
                        .type = entries[i].type,
                };
                _cleanup_free_ uint8_t *raw = NULL;

                memcpy(loc.pack, pack_id, CAIRN_ID_SIZE);
                k = cairn_index_chunk_put(t, entries[i].id, &loc);
                if (k < 0 || entries[i].type == CAIRN_BLOB_DATA)
                        continue;

                raw = malloc(entries[i].raw_len ? entries[i].raw_len : 1);
                if (!raw)
                        return -ENOMEM;
                k = cairn_pack_read_blob(r->fd, r->codec, pack_id, entries[i].id, entries[i].offset,
                                         entries[i].stored_len, raw, entries[i].raw_len);
                if (k >= 0 && entries[i].type == CAIRN_BLOB_TREE)
                        k = cairn_index_tree_put_blob(t, entries[i].id, raw, entries[i].raw_len);
                else if (k >= 0) {
                        _cleanup_free_ struct cairn_content_chunk *chunks = NULL;
                        size_t nc;
                        k = cairn_content_decode(raw, entries[i].raw_len, &chunks, &nc);
                        if (k >= 0)
                                k = cairn_index_content_put(t, entries[i].id, chunks, nc);
                }
                if (k == -EBADMSG)
                        return log_error_errno(k, "Pack %s/%s: blob %s is damaged", r->path, path,
                                               hex_encode(entries[i].id, CAIRN_ID_SIZE, hex));
        }
        if (k < 0)
                return k;
        return cairn_index_txn_commit(TAKE_PTR(t));
}

static int rebuild_snapshots(struct cairn_repo *r, struct cairn_index *idx, unsigned *damaged) {
        _cleanup_free_ id_t32 *ids = NULL;
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        size_t n;
        int k;

        k = cairn_snapshot_list_files(r, &ids, &n);
        if (k < 0)
                return k;
        k = cairn_index_txn_begin(idx, true, &t);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *json = NULL;
                _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
                size_t len;

                /* The exact bytes of the file go in the row, as the writer put them. */
                k = cairn_snapshot_read_json(r, ids[i], &json, &len);
                if (k >= 0)
                        k = cairn_snapshot_from_json(json, len, &s);
                if (k < 0) {
                        (*damaged)++;
                        continue;
                }
                k = cairn_index_snapshot_put(t, s->job, s->start_ns, ids[i], json, len);
                if (k < 0)
                        return k;
        }
        return cairn_index_txn_commit(TAKE_PTR(t));
}

int cairn_repo_rebuild_index(struct cairn_repo *r) {
        _cleanup_free_ id_t32 *packs = NULL;
        struct cairn_index *idx = NULL;
        char path[4200];
        unsigned damaged = 0;
        size_t n = 0;
        int k;

        (void) cairn_rm_dir_at(r->fd, REBUILD_DIR);
        if (mkdirat(r->fd, REBUILD_DIR, 0700) < 0)
                return log_error_errno(-errno, "Cannot create %s/%s: %m", r->path, REBUILD_DIR);
        snprintf(path, sizeof path, "%s/%s", r->path, REBUILD_DIR);
        k = cairn_index_open(path, &idx);
        if (k < 0)
                return log_error_errno(k, "Cannot create a new index in %s: %m", path);

        k = list_packs(r, &packs, &n);
        for (size_t i = 0; k >= 0 && i < n; i++) {
                k = rebuild_pack(r, idx, packs[i]);
                if (k == -EBADMSG || k == -ENOENT || k == -EIO) {
                        damaged++;
                        k = 0;
                }
                cairn_fault_point("index-rebuild.mid");
        }
        if (k >= 0)
                k = rebuild_snapshots(r, idx, &damaged);
        cairn_index_free(idx);
        if (k < 0) {
                (void) cairn_rm_dir_at(r->fd, REBUILD_DIR);
                return log_error_errno(k, "Index rebuild of %s failed: %m", r->path);
        }
        cairn_fault_point("index-rebuild.before-swap");
        k = cairn_repo_swap_index(r, REBUILD_DIR);
        if (k < 0)
                return log_error_errno(k, "Cannot put the rebuilt index in place in %s: %m", r->path);
        if (damaged > 0)
                return log_error_errno(-EBADMSG, "Index of %s rebuilt, but %u damaged pack(s) or snapshot file(s) were left out",
                                       r->path, damaged);
        return 0;
}
