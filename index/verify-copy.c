/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "idset.h"
#include "log.h"
#include "pack.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"
#include "util.h"
#include "verify-copy.h"

#define HEX_ID_SIZE (2 * CAIRN_ID_SIZE + 1)

/* Snapshot files (FORMAT.md): "CAIRNSN\x01" | raw length (le32) | encoded
 * JSON.  snapshot.c reads them below the repository only; a copy is read
 * here, with the same limits. */
#define SNAPSHOT_MAGIC "CAIRNSN\x01"
#define SNAPSHOT_MAGIC_SIZE 8
#define SNAPSHOT_JSON_MAX (64u * 1024 * 1024)

#define CONFIG_MAX (64u * 1024)
#define KEYFILE_MAX (64u * 1024)

/* Deeper than any path a filesystem can hold: only a cycle of trees (which
 * content addressing makes impossible short of a hash collision) or a bug
 * gets there. */
#define WALK_DEPTH_MAX 4096

static const uint8_t zero_id[CAIRN_ID_SIZE];

static bool id_is_zero(const uint8_t id[CAIRN_ID_SIZE]) {
        return memcmp(id, zero_id, CAIRN_ID_SIZE) == 0;
}

static int cmp_id(const void *a, const void *b) {
        return memcmp(a, b, CAIRN_ID_SIZE);
}

/* qsort and bsearch of arrays of structs that start with an id; an empty
 * array may be NULL, which qsort and bsearch must not be given. */
static void sort_ids(void *base, size_t n, size_t size) {
        if (n > 1)
                qsort(base, n, size, cmp_id);
}

static void *find_id(const uint8_t id[CAIRN_ID_SIZE], const void *base, size_t n, size_t size) {
        return n > 0 ? bsearch(id, base, n, size, cmp_id) : NULL;
}

/* --- the state of one verification ---------------------------------------- */

/* A pack file at the copy. */
struct copy_pack {
        uint8_t id[CAIRN_ID_SIZE];
        uint64_t size;
        bool damaged;                   /* reported: unreadable trailer or wrong size */
};

/* A blob listed by a trailer at the copy (local copies). */
struct copy_blob {
        uint8_t id[CAIRN_ID_SIZE];
        uint64_t offset;
        uint32_t pack;                  /* index into verify.packs */
        uint32_t stored_len, raw_len;
        uint8_t type;
};

/* A snapshot file at the copy. */
struct snap {
        uint8_t id[CAIRN_ID_SIZE];
        uint8_t root[CAIRN_ID_SIZE];
        uint64_t size;                  /* of the file, as listed */
        bool walk;                      /* its record was read: walk its tree */
        char label[128];                /* "job/2026-11-21T01:00:00Z (3fa4b2c1)" */
};

struct verify {
        struct cairn_repo *r;
        const struct cairn_copy_verify_options *o;
        struct cairn_copy_verify_stats st;
        struct cairn_txn *t;            /* the source's index */
        const char *dest;               /* for messages */
        int dest_fd;                    /* the copy's directory; -1 for a listing */

        struct copy_pack *packs;        /* sorted by id once listed */
        size_t n_packs, cap_packs;
        struct copy_blob *blobs;        /* local copies: sorted by id once listed */
        size_t n_blobs, cap_blobs;
        struct snap *snaps;             /* sorted by id once listed */
        size_t n_snaps, cap_snaps;

        struct cairn_idset complete, incomplete;      /* trees and contents walked */
        struct cairn_idset reported;                  /* packs and blobs a problem was reported for */

        const struct snap *cur;         /* the snapshot being walked */
        char *path;                     /* the path being walked, "/" based */
        size_t path_len, path_cap;
};

static void verify_release(struct verify *v) {
        cairn_index_txn_abort(v->t);
        free(v->packs);
        free(v->blobs);
        free(v->snaps);
        cairn_idset_release(&v->complete);
        cairn_idset_release(&v->incomplete);
        cairn_idset_release(&v->reported);
        free(v->path);
}

static const char *blob_type_name(uint8_t type) {
        switch (type) {
        case CAIRN_BLOB_DATA: return "data blob";
        case CAIRN_BLOB_TREE: return "tree";
        case CAIRN_BLOB_CONTENT: return "content";
        default: return "blob of unknown type";
        }
}

/* Log a problem, pass it to on_problem, count it. */
static void problem(struct verify *v, int error, const char *file, const uint8_t *snapshot, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static void problem(struct verify *v, int error, const char *file, const uint8_t *snapshot, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        log_error("%s", msg ? msg : fmt);
        v->st.errors++;
        if (v->o->on_problem) {
                struct cairn_copy_problem p = {
                        .error = error, .message = msg ? msg : fmt, .file = file, .snapshot = snapshot,
                };
                v->o->on_problem(&p, v->o->userdata);
        }
}

static char *pack_file(const uint8_t id[CAIRN_ID_SIZE], char *buf, size_t size) {
        return cairn_pack_path(id, buf, size);
}

static char *snapshot_file(const uint8_t id[CAIRN_ID_SIZE], char *buf, size_t size) {
        char hex[HEX_ID_SIZE];
        snprintf(buf, size, "snapshots/%s", hex_encode(id, CAIRN_ID_SIZE, hex));
        return buf;
}

static int path_push(struct verify *v, const char *name, size_t len, bool dir) {
        return path_buf_push(&v->path, &v->path_len, &v->path_cap, name, len, dir);
}

static void path_pop(struct verify *v, size_t len) {
        v->path_len = len;
        v->path[len] = 0;
}

static struct copy_pack *pack_push(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], uint64_t size) {
        if (v->n_packs == v->cap_packs) {
                size_t cap = v->cap_packs ? v->cap_packs * 2 : 256;
                struct copy_pack *p = reallocarray(v->packs, cap, sizeof *p);
                if (!p)
                        return NULL;
                v->packs = p;
                v->cap_packs = cap;
        }
        v->packs[v->n_packs] = (struct copy_pack) { .size = size };
        memcpy(v->packs[v->n_packs].id, id, CAIRN_ID_SIZE);
        return &v->packs[v->n_packs++];
}

static struct copy_pack *pack_find(struct verify *v, const uint8_t id[CAIRN_ID_SIZE]) {
        return find_id(id, v->packs, v->n_packs, sizeof *v->packs);
}

static struct snap *snap_push(struct verify *v, const uint8_t id[CAIRN_ID_SIZE]) {
        char hex[HEX_ID_SIZE];

        if (v->n_snaps == v->cap_snaps) {
                size_t cap = v->cap_snaps ? v->cap_snaps * 2 : 64;
                struct snap *s = reallocarray(v->snaps, cap, sizeof *s);
                if (!s)
                        return NULL;
                v->snaps = s;
                v->cap_snaps = cap;
        }
        v->snaps[v->n_snaps] = (struct snap) { .walk = false };
        memcpy(v->snaps[v->n_snaps].id, id, CAIRN_ID_SIZE);
        snprintf(v->snaps[v->n_snaps].label, sizeof v->snaps[v->n_snaps].label, "%.8s",
                 hex_encode(id, CAIRN_ID_SIZE, hex));
        return &v->snaps[v->n_snaps++];
}

/* The record is known: label "job/time (id)" and the root to walk. */
static void snap_set_record(struct snap *s, const struct cairn_snapshot *rec) {
        char when[32], hex[HEX_ID_SIZE];

        snprintf(s->label, sizeof s->label, "%s/%s (%.8s)", rec->job, cairn_time_format(rec->start_ns, when, sizeof when),
                 hex_encode(s->id, CAIRN_ID_SIZE, hex));
        memcpy(s->root, rec->root, CAIRN_ID_SIZE);
        s->walk = true;
}

/* --- config and keys -------------------------------------------------------- */

/* Local copy: config byte for byte, and every key file of the source.
 * -EXDEV when the config differs: the copy is of another repository and
 * nothing else is worth looking at. */
static int verify_config_dir(struct verify *v) {
        _cleanup_free_ char *mine = NULL, *theirs = NULL;
        _cleanup_close_ int kfd = -1;
        size_t mine_len, theirs_len;
        struct dirent *de;
        DIR *d;
        int k;

        k = read_file_at(cairn_repo_fd(v->r), "config", CONFIG_MAX, &mine, &mine_len);
        if (k < 0)
                return log_error_errno(k, "Cannot read %s/config: %m", cairn_repo_path(v->r));
        k = read_file_at(v->dest_fd, "config", CONFIG_MAX, &theirs, &theirs_len);
        if (k == -ENOENT)
                problem(v, -ENOENT, "config", NULL, "copy %s: config is missing", v->dest);
        else if (k < 0 && k != -EFBIG)
                return log_error_errno(k, "Cannot read %s/config: %m", v->dest);
        else if (k == -EFBIG || theirs_len != mine_len || memcmp(mine, theirs, mine_len) != 0) {
                problem(v, -EBADMSG, "config", NULL, "copy %s: config differs from the source's: a copy of "
                        "another repository?", v->dest);
                return -EXDEV;
        }

        kfd = openat(cairn_repo_fd(v->r), "keys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (kfd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Cannot open %s/keys: %m", cairn_repo_path(v->r));
        d = fdopendir(TAKE_FD(kfd));
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *a = NULL, *b = NULL;
                size_t a_len, b_len;
                char file[300];

                if (de->d_name[0] == '.')
                        continue;
                snprintf(file, sizeof file, "keys/%s", de->d_name);
                k = read_file_at(dirfd(d), de->d_name, KEYFILE_MAX, &a, &a_len);
                if (k < 0) {
                        log_warning_errno(k, "Cannot read key file %s/%s: %m", cairn_repo_path(v->r), file);
                        continue;
                }
                k = read_file_at(v->dest_fd, file, KEYFILE_MAX, &b, &b_len);
                if (k == -ENOENT)
                        problem(v, -ENOENT, file, NULL, "copy %s: key file %s is missing", v->dest, file);
                else if (k < 0 && k != -EFBIG) {
                        closedir(d);
                        return log_error_errno(k, "Cannot read %s/%s: %m", v->dest, file);
                } else if (k == -EFBIG || a_len != b_len || memcmp(a, b, a_len) != 0)
                        problem(v, -EBADMSG, file, NULL, "copy %s: key file %s differs from the source's", v->dest, file);
        }
        closedir(d);
        return 0;
}

static const struct cairn_copy_file *listing_find(const struct cairn_copy_file *files, size_t n, const char *path) {
        for (size_t i = 0; i < n; i++)
                if (streq(files[i].path, path))
                        return &files[i];
        return NULL;
}

/* Listed copy: config and the source's key files, by size. */
static int verify_config_listing(struct verify *v, const struct cairn_copy_file *files, size_t n) {
        _cleanup_close_ int kfd = -1;
        const struct cairn_copy_file *f;
        struct dirent *de;
        struct stat st;
        DIR *d;

        if (fstatat(cairn_repo_fd(v->r), "config", &st, 0) < 0)
                return log_error_errno(-errno, "Cannot stat %s/config: %m", cairn_repo_path(v->r));
        f = listing_find(files, n, "config");
        if (!f)
                problem(v, -ENOENT, "config", NULL, "copy %s: config is missing", v->dest);
        else if (f->size != (uint64_t) st.st_size) {
                problem(v, -EBADMSG, "config", NULL, "copy %s: config has %" PRIu64 " bytes, the source's %" PRIu64
                        ": a copy of another repository?", v->dest, f->size, (uint64_t) st.st_size);
                return -EXDEV;
        }

        kfd = openat(cairn_repo_fd(v->r), "keys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (kfd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Cannot open %s/keys: %m", cairn_repo_path(v->r));
        d = fdopendir(TAKE_FD(kfd));
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char file[300];

                if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue;
                snprintf(file, sizeof file, "keys/%s", de->d_name);
                f = listing_find(files, n, file);
                if (!f)
                        problem(v, -ENOENT, file, NULL, "copy %s: key file %s is missing", v->dest, file);
                else if (f->size != (uint64_t) st.st_size)
                        problem(v, -EBADMSG, file, NULL, "copy %s: key file %s has %" PRIu64 " bytes, the source's %"
                                PRIu64, v->dest, file, f->size, (uint64_t) st.st_size);
        }
        closedir(d);
        return 0;
}

/* --- what the copy holds ------------------------------------------------------ */

/* "packs/ab/ab12…" → id; -EINVAL for any other name. */
static int parse_pack_path(const char *path, uint8_t id[CAIRN_ID_SIZE]) {
        if (strncmp(path, "packs/", 6) != 0 || strlen(path) != 6 + 3 + 2 * CAIRN_ID_SIZE || path[8] != '/' ||
            memcmp(path + 6, path + 9, 2) != 0)
                return -EINVAL;
        return hex_decode(path + 9, id, CAIRN_ID_SIZE);
}

static int parse_snapshot_path(const char *path, uint8_t id[CAIRN_ID_SIZE]) {
        if (strncmp(path, "snapshots/", 10) != 0 || strlen(path) != 10 + 2 * CAIRN_ID_SIZE)
                return -EINVAL;
        return hex_decode(path + 10, id, CAIRN_ID_SIZE);
}

/* The trailer of one pack at a local copy: its blobs join v->blobs. */
static int load_pack_dir(struct verify *v, struct copy_pack *p) {
        _cleanup_free_ struct cairn_pack_entry *entries = NULL;
        uint64_t src_size;
        uint32_t src_count;
        char file[100];
        size_t n;
        int k;

        pack_file(p->id, file, sizeof file);
        k = cairn_index_pack_get(v->t, p->id, &src_size, &src_count);
        if (k >= 0 && src_size != p->size) {
                problem(v, -EBADMSG, file, NULL, "copy %s: %s has %" PRIu64 " bytes, the source's %" PRIu64,
                        v->dest, file, p->size, src_size);
                p->damaged = true;
                return 0;
        }
        if (k < 0 && k != -ENOENT)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(v->r));
        k = cairn_pack_read_trailer(v->dest_fd, cairn_repo_codec(v->r), p->id, &entries, &n);
        if (k == -EBADMSG || k == -ENOENT) {
                problem(v, -EBADMSG, file, NULL, "copy %s: %s cannot be read: its trailer is %s", v->dest, file,
                        k == -ENOENT ? "gone" : "damaged");
                p->damaged = true;
                return 0;
        }
        if (k < 0)
                return log_error_errno(k, "Cannot read %s/%s: %m", v->dest, file);
        for (size_t i = 0; i < n; i++) {
                struct copy_blob *b;
                if (v->n_blobs == v->cap_blobs) {
                        size_t cap = v->cap_blobs ? v->cap_blobs * 2 : 4096;
                        b = reallocarray(v->blobs, cap, sizeof *b);
                        if (!b)
                                return -ENOMEM;
                        v->blobs = b;
                        v->cap_blobs = cap;
                }
                b = &v->blobs[v->n_blobs++];
                memcpy(b->id, entries[i].id, CAIRN_ID_SIZE);
                b->offset = entries[i].offset;
                b->pack = (uint32_t) (p - v->packs);
                b->stored_len = entries[i].stored_len;
                b->raw_len = entries[i].raw_len;
                b->type = entries[i].type;
        }
        return 0;
}

/* Every packs/xx/ID of a local copy: listed, sorted, trailers read. */
static int load_packs_dir(struct verify *v) {
        _cleanup_close_ int fd = -1;
        struct dirent *de;
        DIR *d;
        int k = 0;

        fd = openat(v->dest_fd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Cannot open %s/packs: %m", v->dest);
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        while (k >= 0 && (de = readdir(d))) {
                _cleanup_close_ int sub = -1;
                uint8_t byte;
                DIR *sd;
                struct dirent *se;

                if (strlen(de->d_name) != 2 || hex_decode(de->d_name, &byte, 1) < 0)
                        continue;
                sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (sub < 0)
                        continue;
                sd = fdopendir(TAKE_FD(sub));
                if (!sd) {
                        k = -errno;
                        break;
                }
                while ((se = readdir(sd))) {
                        char path[300];
                        uint8_t id[CAIRN_ID_SIZE];
                        struct stat st;

                        snprintf(path, sizeof path, "packs/%s/%s", de->d_name, se->d_name);
                        if (parse_pack_path(path, id) < 0 || fstatat(dirfd(sd), se->d_name, &st, 0) < 0 ||
                            !S_ISREG(st.st_mode))
                                continue;
                        if (!pack_push(v, id, (uint64_t) st.st_size)) {
                                k = -ENOMEM;
                                break;
                        }
                }
                closedir(sd);
        }
        closedir(d);
        if (k < 0)
                return k;
        sort_ids(v->packs, v->n_packs, sizeof *v->packs);
        v->st.packs = v->n_packs;
        for (size_t i = 0; i < v->n_packs; i++) {
                k = load_pack_dir(v, &v->packs[i]);
                if (k < 0)
                        return k;
        }
        sort_ids(v->blobs, v->n_blobs, sizeof *v->blobs);
        return 0;
}

/* Read and verify snapshots/ID of a local copy. */
static int read_snapshot_dir(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], struct cairn_snapshot **ret) {
        const struct cairn_codec *codec = cairn_repo_codec(v->r);
        _cleanup_free_ char *file = NULL, *json = NULL;
        char path[100];
        size_t len, raw;
        int k;

        snapshot_file(id, path, sizeof path);
        k = read_file_at(v->dest_fd, path, SNAPSHOT_MAGIC_SIZE + 4 + cairn_codec_bound(codec, SNAPSHOT_JSON_MAX),
                         &file, &len);
        if (k == -EFBIG)
                return -EBADMSG;
        if (k < 0)
                return log_error_errno(k, "Cannot read %s/%s: %m", v->dest, path);
        if (len < SNAPSHOT_MAGIC_SIZE + 4 || memcmp(file, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_SIZE) != 0)
                return -EBADMSG;
        raw = get_le32((uint8_t *) file + SNAPSHOT_MAGIC_SIZE);
        if (raw > SNAPSHOT_JSON_MAX)
                return -EBADMSG;
        json = malloc(raw + 1);
        if (!json)
                return -ENOMEM;
        k = cairn_codec_decode(codec, id, file + SNAPSHOT_MAGIC_SIZE + 4, len - SNAPSHOT_MAGIC_SIZE - 4, json, raw);
        if (k < 0)
                return k == -ENOMEM ? k : -EBADMSG;
        json[raw] = 0;
        return cairn_snapshot_from_json(json, raw, ret);
}

static int load_snapshots_dir(struct verify *v) {
        _cleanup_close_ int fd = -1;
        struct dirent *de;
        DIR *d;

        fd = openat(v->dest_fd, "snapshots", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Cannot open %s/snapshots: %m", v->dest);
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char path[300];
                uint8_t id[CAIRN_ID_SIZE];

                snprintf(path, sizeof path, "snapshots/%s", de->d_name);
                if (parse_snapshot_path(path, id) < 0)
                        continue;
                if (!snap_push(v, id)) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        sort_ids(v->snaps, v->n_snaps, sizeof *v->snaps);
        for (size_t i = 0; i < v->n_snaps; i++) {
                _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *rec = NULL;
                struct snap *s = &v->snaps[i];
                char path[100];
                int k;

                k = read_snapshot_dir(v, s->id, &rec);
                if (k == -EBADMSG) {
                        problem(v, -EBADMSG, snapshot_file(s->id, path, sizeof path), s->id, "copy %s: %s is damaged "
                                "(does not verify)", v->dest, path);
                        v->st.incomplete_snapshots++;
                        continue;
                }
                if (k < 0)
                        return k;
                snap_set_record(s, rec);
        }
        return 0;
}

/* Listed copy: packs and snapshots from the listing; a snapshot's record
 * comes from the source (the copy's file has the same name, so the same
 * bytes, when its size matches). */
static int load_listing(struct verify *v, const struct cairn_copy_file *files, size_t n) {
        struct stat st;
        int k;

        for (size_t i = 0; i < n; i++) {
                uint8_t id[CAIRN_ID_SIZE];
                if (parse_pack_path(files[i].path, id) >= 0) {
                        if (!pack_push(v, id, files[i].size))
                                return -ENOMEM;
                } else if (parse_snapshot_path(files[i].path, id) >= 0) {
                        struct snap *s = snap_push(v, id);
                        if (!s)
                                return -ENOMEM;
                        s->size = files[i].size;
                }
        }
        sort_ids(v->packs, v->n_packs, sizeof *v->packs);
        sort_ids(v->snaps, v->n_snaps, sizeof *v->snaps);
        v->st.packs = v->n_packs;

        for (size_t i = 0; i < v->n_packs; i++) {
                struct copy_pack *p = &v->packs[i];
                uint64_t src_size;
                uint32_t src_count;
                char file[100];

                k = cairn_index_pack_get(v->t, p->id, &src_size, &src_count);
                if (k == -ENOENT)
                        continue;       /* gone from the source: judged if some snapshot needs it */
                if (k < 0)
                        return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(v->r));
                if (src_size != p->size) {
                        problem(v, -EBADMSG, pack_file(p->id, file, sizeof file), NULL, "copy %s: %s has %" PRIu64
                                " bytes, the source's %" PRIu64, v->dest, file, p->size, src_size);
                        p->damaged = true;
                }
        }
        for (size_t i = 0; i < v->n_snaps; i++) {
                _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *rec = NULL;
                struct snap *s = &v->snaps[i];
                char path[100];

                snapshot_file(s->id, path, sizeof path);
                if (fstatat(cairn_repo_fd(v->r), path, &st, 0) < 0) {
                        if (errno != ENOENT)
                                return log_error_errno(-errno, "Cannot stat %s/%s: %m", cairn_repo_path(v->r), path);
                        problem(v, -EBADMSG, path, s->id, "copy %s: %s is no snapshot of the source repository, so it "
                                "cannot be checked from here (forgotten? \"cairn sync --delete\" removes it)",
                                v->dest, path);
                        v->st.incomplete_snapshots++;
                        continue;
                }
                if ((uint64_t) st.st_size != s->size) {
                        problem(v, -EBADMSG, path, s->id, "copy %s: %s has %" PRIu64 " bytes, the source's %" PRIu64,
                                v->dest, path, s->size, (uint64_t) st.st_size);
                        v->st.incomplete_snapshots++;
                        continue;
                }
                k = cairn_snapshot_read_file(v->r, s->id, &rec);
                if (k < 0)
                        return log_error_errno(k, "Cannot read %s/%s: %m", cairn_repo_path(v->r), path);
                snap_set_record(s, rec);
        }
        return 0;
}

/* --- the walk ------------------------------------------------------------------- */

/* Where the source's index puts @id, for a message about a missing blob:
 * 1 and *ret_pack, 0 when the source does not know it, -errno. */
static int source_pack(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], uint8_t ret_pack[CAIRN_ID_SIZE]) {
        struct cairn_chunk_loc loc;
        int k = cairn_index_chunk_get(v->t, id, &loc);
        if (k == -ENOENT)
                return 0;
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(v->r));
        memcpy(ret_pack, loc.pack, CAIRN_ID_SIZE);
        return 1;
}

/* The copy lacks pack @pack (or holds it damaged), which the current path
 * needs: reported once per pack. */
static int report_pack(struct verify *v, const uint8_t pack[CAIRN_ID_SIZE]) {
        struct copy_pack *p = pack_find(v, pack);
        char file[100];
        int k;

        if (p && p->damaged)
                return 0;       /* reported as damaged when listed */
        k = cairn_idset_add(&v->reported, pack);
        if (k <= 0)
                return k;
        v->st.missing_packs++;
        pack_file(pack, file, sizeof file);
        problem(v, -ENOENT, file, v->cur->id, "copy %s: %s is missing (snapshot %s needs it for %s)", v->dest, file,
                v->cur->label, v->path);
        return 0;
}

/* Is @id of @type at the copy?  0 yes (*ret_blob: its trailer entry at a
 * local copy, else NULL), 1 no (reported, once per blob or pack), -errno. */
static int find_blob(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], uint8_t type, const struct copy_blob **ret_blob) {
        const struct copy_blob *b = NULL;
        const struct copy_pack *p;
        uint8_t pack[CAIRN_ID_SIZE];
        char hex[HEX_ID_SIZE];
        int k;

        *ret_blob = NULL;
        hex_encode(id, CAIRN_ID_SIZE, hex);
        if (v->dest_fd >= 0) {
                b = find_id(id, v->blobs, v->n_blobs, sizeof *v->blobs);
                if (b && b->type == type) {
                        *ret_blob = b;
                        return 0;
                }
        }
        k = source_pack(v, id, pack);
        if (k < 0)
                return k;
        p = k > 0 ? pack_find(v, pack) : NULL;
        if (k > 0 && !b && (!p || p->damaged)) {
                k = report_pack(v, pack);
                return k < 0 ? k : 1;
        }
        if (v->dest_fd < 0 && p)
                return 0;               /* listed with the right size: a listing says no more */

        k = cairn_idset_add(&v->reported, id);
        if (k <= 0)
                return k < 0 ? k : 1;
        if (b)
                problem(v, -EBADMSG, NULL, v->cur->id, "copy %s: blob %s should be a %s, a pack trailer at the copy "
                        "says it is a %s (snapshot %s: %s)", v->dest, hex, blob_type_name(type),
                        blob_type_name(b->type), v->cur->label, v->path);
        else if (p)
                problem(v, -EBADMSG, NULL, v->cur->id, "copy %s: %s %s is not in the pack at the copy where the "
                        "source's index puts it (snapshot %s: %s; run \"cairn check\")", v->dest,
                        blob_type_name(type), hex, v->cur->label, v->path);
        else if (v->dest_fd >= 0)
                problem(v, -ENOENT, NULL, v->cur->id, "copy %s: %s %s is missing, and the source's index does not "
                        "know it either (snapshot %s needs it for %s)", v->dest, blob_type_name(type), hex,
                        v->cur->label, v->path);
        else
                problem(v, -EBADMSG, NULL, v->cur->id, "copy %s: the source's index does not know %s %s, so the copy "
                        "cannot be checked against it (snapshot %s: %s; run \"cairn check\")", v->dest,
                        blob_type_name(type), hex, v->cur->label, v->path);
        return 1;
}

/* The plaintext of a tree or content blob: from the copy's pack (local),
 * else from the source.  -EBADMSG when damaged (reported). */
static int read_blob(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], const struct copy_blob *b, uint8_t **ret,
                     size_t *ret_len) {
        char hex[HEX_ID_SIZE], file[100];
        uint8_t *buf;
        int k;

        if (!b) {
                k = cairn_repo_blob_read(v->r, v->t, id, ret, ret_len);
                if (k >= 0 || k == -ENOMEM)
                        return k;
                problem(v, -EBADMSG, NULL, v->cur->id, "copy %s: blob %s cannot be read from the source (%s), so "
                        "the copy cannot be checked against it (snapshot %s: %s; run \"cairn check\")", v->dest,
                        hex_encode(id, CAIRN_ID_SIZE, hex), strerror(-k), v->cur->label, v->path);
                return -EBADMSG;
        }
        buf = malloc(MAX(b->raw_len, 1u));
        if (!buf)
                return -ENOMEM;
        k = cairn_pack_read_blob(v->dest_fd, cairn_repo_codec(v->r), v->packs[b->pack].id, id, b->offset,
                                 b->stored_len, buf, b->raw_len);
        if (k < 0) {
                free(buf);
                if (k == -ENOMEM)
                        return k;
                pack_file(v->packs[b->pack].id, file, sizeof file);
                problem(v, -EBADMSG, file, v->cur->id, "copy %s: %s: blob %s is damaged (snapshot %s: %s)", v->dest,
                        file, hex_encode(id, CAIRN_ID_SIZE, hex), v->cur->label, v->path);
                return -EBADMSG;
        }
        *ret = buf;
        *ret_len = b->raw_len;
        return 0;
}

static int walk(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], uint8_t type, unsigned depth);

static int walk_tree_blob(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], const uint8_t *blob, size_t len,
                          unsigned depth) {
        size_t cursor = 0, base = v->path_len;
        bool dirty = false;
        int k;

        for (;;) {
                const char *name;
                const uint8_t *enc;
                size_t name_len, enc_len;
                struct cairn_entry e;

                k = cairn_tree_next(blob, len, &cursor, &name, &name_len, &enc, &enc_len);
                if (k == 0)
                        break;
                if (k > 0)
                        k = cairn_entry_decode(enc, enc_len, &e);
                if (k < 0) {
                        char hex[HEX_ID_SIZE];
                        problem(v, -EBADMSG, NULL, v->cur->id, "copy %s: tree %s is malformed (snapshot %s: %s)",
                                v->dest, hex_encode(id, CAIRN_ID_SIZE, hex), v->cur->label, v->path);
                        return 1;
                }
                if ((e.type != CAIRN_ENTRY_DIR && e.type != CAIRN_ENTRY_FILE) || id_is_zero(e.ref))
                        continue;       /* nothing stored, or an empty file */
                k = path_push(v, name, name_len, e.type == CAIRN_ENTRY_DIR);
                if (k < 0)
                        return k;
                k = walk(v, e.ref, e.type == CAIRN_ENTRY_DIR ? CAIRN_BLOB_TREE : CAIRN_BLOB_CONTENT, depth + 1);
                path_pop(v, base);
                if (k < 0)
                        return k;
                dirty |= k > 0;
        }
        return dirty;
}

static int walk_content_blob(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], const uint8_t *blob, size_t len,
                             unsigned depth) {
        _cleanup_free_ struct cairn_content_chunk *chunks = NULL;
        bool dirty = false;
        size_t n;
        int k;

        k = cairn_content_decode(blob, len, &chunks, &n);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                char hex[HEX_ID_SIZE];
                problem(v, -EBADMSG, NULL, v->cur->id, "copy %s: content %s is malformed (snapshot %s: %s)", v->dest,
                        hex_encode(id, CAIRN_ID_SIZE, hex), v->cur->label, v->path);
                return 1;
        }
        for (size_t i = 0; i < n; i++) {
                if ((chunks[i].flags & CAIRN_CHUNK_HOLE) || id_is_zero(chunks[i].id))
                        continue;
                k = walk(v, chunks[i].id, CAIRN_BLOB_DATA, depth + 1);
                if (k < 0)
                        return k;
                dirty |= k > 0;
        }
        return dirty;
}

/* Everything below blob @id (of @type) at the current path: 1 when
 * something is missing or damaged (reported), 0 when the copy has it all,
 * -errno. */
static int walk(struct verify *v, const uint8_t id[CAIRN_ID_SIZE], uint8_t type, unsigned depth) {
        _cleanup_free_ uint8_t *blob = NULL;
        const struct copy_blob *b = NULL;
        size_t len;
        int k, dirty;

        if (type != CAIRN_BLOB_DATA) {
                if (cairn_idset_has(&v->complete, id))
                        return 0;
                if (cairn_idset_has(&v->incomplete, id))
                        return 1;
        }
        if (depth > WALK_DEPTH_MAX) {
                problem(v, -ELOOP, NULL, v->cur->id, "copy %s: snapshot %s: %s: directories nested deeper than %d",
                        v->dest, v->cur->label, v->path, WALK_DEPTH_MAX);
                return 1;
        }
        v->st.blobs++;
        k = find_blob(v, id, type, &b);
        if (k < 0)
                return k;
        dirty = k;
        if (type == CAIRN_BLOB_DATA)
                return dirty;
        if (!dirty) {
                k = read_blob(v, id, b, &blob, &len);
                if (k == -EBADMSG)
                        dirty = 1;
                else if (k < 0)
                        return k;
                else
                        dirty = type == CAIRN_BLOB_TREE ? walk_tree_blob(v, id, blob, len, depth)
                                                        : walk_content_blob(v, id, blob, len, depth);
                if (dirty < 0)
                        return dirty;
        }
        k = cairn_idset_add(dirty ? &v->incomplete : &v->complete, id);
        if (k < 0)
                return k;
        return dirty;
}

static int walk_snapshots(struct verify *v) {
        int k;

        for (size_t i = 0; i < v->n_snaps; i++) {
                struct snap *s = &v->snaps[i];
                char path[100];

                if (!s->walk)
                        continue;
                v->cur = s;
                v->path_len = 0;
                k = path_push(v, "", 0, true);
                if (k < 0)
                        return k;
                k = walk(v, s->root, CAIRN_BLOB_TREE, 0);
                if (k < 0)
                        return k;
                if (k > 0) {
                        v->st.incomplete_snapshots++;
                        problem(v, -ENOENT, snapshot_file(s->id, path, sizeof path), s->id,
                                "copy %s: snapshot %s is incomplete: it cannot be restored from the copy in full",
                                v->dest, s->label);
                }
        }
        v->cur = NULL;
        return 0;
}

/* How many of the source's snapshots the copy lacks. */
static int count_behind_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                           size_t len, void *userdata) {
        struct verify *v = userdata;
        v->st.source_snapshots++;
        if (!find_id(id, v->snaps, v->n_snaps, sizeof *v->snaps))
                v->st.behind++;
        return 0;
}

static int verify_run(struct verify *v, const struct cairn_copy_file *files, size_t n) {
        int k;

        k = cairn_index_txn_begin(cairn_repo_index(v->r), false, &v->t);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(v->r));
        k = v->dest_fd >= 0 ? verify_config_dir(v) : verify_config_listing(v, files, n);
        if (k == -EXDEV)
                return 0;       /* reported: nothing else of it is ours to judge */
        if (k < 0)
                return k;
        if (v->dest_fd >= 0) {
                k = load_packs_dir(v);
                if (k >= 0)
                        k = load_snapshots_dir(v);
        } else
                k = load_listing(v, files, n);
        if (k < 0)
                return k;
        v->st.snapshots = v->n_snaps;
        k = walk_snapshots(v);
        if (k < 0)
                return k;
        k = cairn_index_snapshot_foreach(v->t, NULL, count_behind_cb, v);
        if (k < 0)
                return log_error_errno(k, "Cannot read the index of %s: %m", cairn_repo_path(v->r));
        return 0;
}

static int verify_finish(struct verify *v, int k, struct cairn_copy_verify_stats *ret) {
        if (ret)
                *ret = v->st;
        verify_release(v);
        if (k < 0)
                return k == -ENOMEM ? log_error_errno(k, "Verification of %s stopped: %m", v->dest) : k;
        return v->st.errors > 0 ? -EBADMSG : 0;
}

int cairn_copy_verify_dir(struct cairn_repo *r, int dest_fd, const char *dest_name,
                          const struct cairn_copy_verify_options *o, struct cairn_copy_verify_stats *ret) {
        static const struct cairn_copy_verify_options defaults = { 0 };
        struct verify v = { .r = r, .o = o ? o : &defaults, .dest = dest_name, .dest_fd = dest_fd };

        return verify_finish(&v, verify_run(&v, NULL, 0), ret);
}

int cairn_copy_verify_listing(struct cairn_repo *r, const struct cairn_copy_file *files, size_t n, const char *dest_name,
                              const struct cairn_copy_verify_options *o, struct cairn_copy_verify_stats *ret) {
        static const struct cairn_copy_verify_options defaults = { 0 };
        struct verify v = { .r = r, .o = o ? o : &defaults, .dest = dest_name, .dest_fd = -1 };

        return verify_finish(&v, verify_run(&v, files, n), ret);
}
