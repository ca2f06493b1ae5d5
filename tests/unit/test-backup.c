/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tar-command source, end to end: real streams of GNU tar (gnu and pax
 * formats, xattrs, ACLs, sparse files, gzip) go through
 * bk_backup_tar_command and bk_backup_commit and are read back through the
 * index, entry by entry, against lstat() of the source tree.  Hostile
 * streams made with Python's tarfile are refused entry by entry and store
 * nothing outside their place; a failed command and a damaged stream fail
 * the job with no snapshot written. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>

#include "backup.h"
#include "log.h"
#include "repo.h"
#include "snapshot.h"
#include "tap.h"
#include "test-util.h"
#include "tree.h"
#include "util.h"

#define SEC 1000000000LL
#define T0 (1700000000LL * SEC)   /* 2023-11-14T22:13:20Z */

#define SP_DATA 65536
#define SP_HOLE (4u << 20)
#define SP_TAIL (1u << 20)        /* the sparse file ends in a hole too */
#define SP_SIZE (SP_DATA + SP_HOLE + SP_DATA + SP_TAIL)
#define BIG_SIZE (3u << 20)
#define HL_SIZE 5000

static struct cairn_repo *repo;
static char *src, *tmp;
static bool is_root, have_xattrs, have_acls;

/* Every log message of the library, to check what an error names. */
static char log_all[65536];
static size_t log_all_len;

static void log_collect(int level, const char *msg, void *userdata) {
        int n = snprintf(log_all + log_all_len, sizeof log_all - log_all_len, "%s\n", msg);
        if (n > 0 && (size_t) n < sizeof log_all - log_all_len)
                log_all_len += (size_t) n;
}

static void log_clear(void) {
        log_all_len = 0;
        log_all[0] = 0;
}

static const char *P(const char *dir, const char *rel) {
        static char buf[8][4200];
        static int i;
        i = (i + 1) % 8;
        if (rel[0])
                snprintf(buf[i], sizeof buf[i], "%s/%s", dir, rel);
        else
                snprintf(buf[i], sizeof buf[i], "%s", dir);
        return buf[i];
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0 || write_full(fd, data, len) < 0 || close(fd) < 0)
                BAIL_OUT("cannot write %s: %m", path);
        if (chmod(path, mode) < 0)
                BAIL_OUT("cannot chmod %s: %m", path);
}

static uint8_t *slurp(const char *path, size_t *ret_len) {
        struct stat st;
        uint8_t *buf;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                BAIL_OUT("cannot read %s: %m", path);
        buf = malloc((size_t) st.st_size + 1);
        if (!buf || read_full(fd, buf, (size_t) st.st_size) != st.st_size)
                BAIL_OUT("cannot read %s", path);
        close(fd);
        *ret_len = (size_t) st.st_size;
        return buf;
}

/* The kernel's form of a POSIX ACL, as in system.posix_acl_*. */
static size_t make_acl(uint8_t *out, const uint16_t (*ents)[2], const uint32_t *ids, size_t n) {
        put_le32(out, 2);
        for (size_t i = 0; i < n; i++) {
                put_le16(out + 4 + 8 * i, ents[i][0]);
                put_le16(out + 6 + 8 * i, ents[i][1]);
                put_le32(out + 8 + 8 * i, ids[i]);
        }
        return 4 + 8 * n;
}

static void set_time(const char *path, int64_t ns) {
        struct timespec ts[2] = { { ns / SEC, ns % SEC }, { ns / SEC, ns % SEC } };
        if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0)
                BAIL_OUT("cannot set the times of %s: %m", path);
}

/* Paths of the source tree, deepest first so that setting a directory's
 * time comes after its children were made. */
static const char *const src_paths[] = {
        "hello.txt", "dir/sub/deep.txt", "dir/sub", "dir", "empty", "sticky", "link", "abs", "hl1", "hl2",
        "fifo", "sparse", "suid", "xattr.txt", "acl.txt", "acldir", "big.bin", "caf\xc3\xa9", "owned", "null",
        "loop", "",
};

static void make_source(void) {
        static const uint16_t acl_ents[][2] = { { 0x01, 6 }, { 0x02, 5 }, { 0x04, 4 }, { 0x10, 5 }, { 0x20, 0 } };
        static const uint32_t acl_ids[] = { UINT32_MAX, 1234, UINT32_MAX, UINT32_MAX, UINT32_MAX };
        static const uint16_t def_ents[][2] = { { 0x01, 7 }, { 0x02, 5 }, { 0x04, 5 },
                                                { 0x08, 1 }, { 0x10, 5 }, { 0x20, 5 } };
        static const uint32_t def_ids[] = { UINT32_MAX, 1234, UINT32_MAX, 4321, UINT32_MAX, UINT32_MAX };
        uint8_t acl[64];
        size_t acl_len;
        uint8_t *buf;
        int fd;

        if (mkdir(P(src, "dir"), 0750) < 0 || mkdir(P(src, "dir/sub"), 0755) < 0 ||
            mkdir(P(src, "empty"), 0700) < 0 || mkdir(P(src, "sticky"), 0755) < 0 ||
            chmod(P(src, "sticky"), 01777) < 0 || mkdir(P(src, "acldir"), 0755) < 0)
                BAIL_OUT("cannot make directories: %m");
        write_file(P(src, "hello.txt"), "hello, tar\n", 11, 0644);
        write_file(P(src, "dir/sub/deep.txt"), "deep inside\n", 12, 0600);
        write_file(P(src, "suid"), "#!/bin/sh\necho hi\n", 18, 04755);
        write_file(P(src, "xattr.txt"), "with xattrs\n", 12, 0644);
        write_file(P(src, "acl.txt"), "with an acl\n", 12, 0640);
        write_file(P(src, "caf\xc3\xa9"), "utf-8 name\n", 11, 0644);
        if (symlink("hello.txt", P(src, "link")) < 0 || symlink("/etc/passwd", P(src, "abs")) < 0 ||
            mkfifo(P(src, "fifo"), 0640) < 0)
                BAIL_OUT("cannot make links: %m");

        buf = malloc(BIG_SIZE);
        if (!buf)
                BAIL_OUT("out of memory");
        test_fill_random(buf, HL_SIZE, 7);
        write_file(P(src, "hl1"), buf, HL_SIZE, 0644);
        if (link(P(src, "hl1"), P(src, "hl2")) < 0)
                BAIL_OUT("cannot link: %m");
        test_fill_random(buf, BIG_SIZE, 42);
        write_file(P(src, "big.bin"), buf, BIG_SIZE, 0644);

        /* data | 4 MiB hole | data | 1 MiB hole */
        fd = open(P(src, "sparse"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || pwrite(fd, buf, SP_DATA, 0) != SP_DATA ||
            pwrite(fd, buf + SP_DATA, SP_DATA, SP_DATA + SP_HOLE) != SP_DATA || ftruncate(fd, SP_SIZE) < 0 ||
            close(fd) < 0)
                BAIL_OUT("cannot write the sparse file: %m");
        free(buf);

        have_xattrs = setxattr(P(src, "xattr.txt"), "user.test", "value", 5, 0) == 0;
        acl_len = make_acl(acl, acl_ents, acl_ids, 5);
        have_acls = setxattr(P(src, "acl.txt"), "system.posix_acl_access", acl, acl_len, 0) == 0;
        acl_len = make_acl(acl, def_ents, def_ids, 6);
        have_acls = have_acls && setxattr(P(src, "acldir"), "system.posix_acl_default", acl, acl_len, 0) == 0;

        if (is_root) {
                write_file(P(src, "owned"), "owned by someone\n", 17, 0600);
                if (chown(P(src, "owned"), 1234, 5678) < 0)
                        BAIL_OUT("cannot chown: %m");
                /* A container may forbid device nodes even to root. */
                if (mknod(P(src, "null"), S_IFCHR | 0666, makedev(1, 3)) < 0 ||
                    mknod(P(src, "loop"), S_IFBLK | 0660, makedev(7, 200)) < 0)
                        diag("no device nodes in the source tree: %m");
        }

        for (size_t i = 0; i < ELEMENTSOF(src_paths); i++) {
                struct stat st;
                if (lstat(P(src, src_paths[i]), &st) == 0)
                        set_time(P(src, src_paths[i]), T0 + (int64_t) i * 3600 * SEC + 123456789 + (int64_t) i * 1000);
        }
}

static size_t count_snapshots(void) {
        uint8_t (*ids)[CAIRN_ID_SIZE] = NULL;
        size_t n = 0;
        if (cairn_snapshot_list_files(repo, &ids, &n) < 0)
                BAIL_OUT("cannot list snapshots");
        free(ids);
        return n;
}

/* One backup run of the tar source: 0 and the snapshot's id, or the error. */
static int run_tar(const char *job, const char *command, const char *dir, uint8_t id[CAIRN_ID_SIZE]) {
        struct bk_backup_options o = { .job = job };
        struct bk_backup *b = NULL;
        int k;

        log_clear();
        k = bk_backup_new(repo, &o, &b);
        if (k >= 0)
                k = bk_backup_tar_command(b, command, dir);
        if (k >= 0)
                k = bk_backup_commit(b, id);
        bk_backup_free(b);
        return k;
}

/* A snapshot opened for reading: its record and a read transaction. */
struct view {
        struct cairn_txn *t;
        struct cairn_snapshot *s;
};

static bool view_open(const uint8_t id[CAIRN_ID_SIZE], struct view *v) {
        char hex[2 * CAIRN_ID_SIZE + 1];
        *v = (struct view) { 0 };
        if (cairn_index_txn_begin(cairn_repo_index(repo), false, &v->t) < 0)
                BAIL_OUT("cannot begin a read transaction");
        return cairn_snapshot_resolve(v->t, hex_encode(id, CAIRN_ID_SIZE, hex), &v->s, NULL) >= 0;
}

static void view_close(struct view *v) {
        cairn_index_txn_abort(v->t);
        cairn_snapshot_free(v->s);
        *v = (struct view) { 0 };
}

/* The entry at @path ("a/b/c") below the snapshot's root; borrowed. */
static int lookup(struct view *v, const char *path, struct cairn_entry *ret) {
        uint8_t tree[CAIRN_ID_SIZE];
        const char *p = path;
        int k;

        memcpy(tree, v->s->root, CAIRN_ID_SIZE);
        for (;;) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);
                k = cairn_index_tree_lookup(v->t, tree, p, len, ret);
                if (k < 0 || !slash)
                        return k;
                if (ret->type != CAIRN_ENTRY_DIR)
                        return -ENOTDIR;
                memcpy(tree, ret->ref, CAIRN_ID_SIZE);
                p = slash + 1;
        }
}

/* A file's bytes, holes as zeros; *ret_holes counts hole chunks. */
static uint8_t *read_content(struct view *v, const struct cairn_entry *e, size_t *ret_holes) {
        static const uint8_t zero[CAIRN_ID_SIZE];
        uint8_t *out = calloc(1, e->size + 1);
        uint64_t off = 0;

        *ret_holes = 0;
        if (!out)
                BAIL_OUT("out of memory");
        if (memcmp(e->ref, zero, CAIRN_ID_SIZE) == 0)
                return out;
        while (off < e->size) {
                struct cairn_content_chunk ch;
                uint64_t start;
                if (cairn_index_content_find(v->t, e->ref, off, &ch, &start) < 0 || start + ch.length > e->size) {
                        free(out);
                        return NULL;
                }
                if (ch.flags & CAIRN_CHUNK_HOLE)
                        (*ret_holes)++;
                else {
                        uint8_t *blob;
                        size_t len;
                        if (cairn_repo_blob_read(repo, v->t, ch.id, &blob, &len) < 0 || len != ch.length) {
                                free(out);
                                return NULL;
                        }
                        memcpy(out + start, blob, len);
                        free(blob);
                }
                off = start + ch.length;
        }
        return out;
}

static bool xattr_get(const struct cairn_entry *e, const char *name, const void **ret, size_t *ret_len) {
        struct cairn_xattr x;
        size_t cursor = 0;
        while (cairn_entry_xattr_next(e, &cursor, &x) > 0)
                if (x.name_len == strlen(name) && memcmp(x.name, name, x.name_len) == 0) {
                        *ret = x.value;
                        *ret_len = x.value_len;
                        return true;
                }
        return false;
}

static uint8_t type_of(mode_t m) {
        switch (m & S_IFMT) {
        case S_IFREG: return CAIRN_ENTRY_FILE;
        case S_IFDIR: return CAIRN_ENTRY_DIR;
        case S_IFLNK: return CAIRN_ENTRY_SYMLINK;
        case S_IFIFO: return CAIRN_ENTRY_FIFO;
        case S_IFCHR: return CAIRN_ENTRY_CHR;
        case S_IFBLK: return CAIRN_ENTRY_BLK;
        default: return 0;
        }
}

static bool has_error(const struct cairn_snapshot *s, const char *path, const char *reason) {
        for (size_t i = 0; i < s->n_errors; i++)
                if (streq(s->errors[i].path, path) && (!reason || strstr(s->errors[i].reason, reason)))
                        return true;
        return false;
}

enum { NS = 1, XATTRS = 2, SPARSE = 4 };

/* The snapshot entry at @prefix/@rel against lstat() of the source. */
static void check_entry(struct view *v, const char *what, const char *prefix, const char *rel, unsigned flags) {
        char path[4200];
        struct cairn_entry e;
        struct stat st;
        int64_t mtime;

        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] && rel[0] ? "/" : "", rel);
        if (lstat(P(src, rel), &st) < 0)
                return;
        if (!ok(lookup(v, path, &e) == 0, "%s: %s is in the snapshot", what, path))
                return;
        mtime = (int64_t) st.st_mtim.tv_sec * SEC + ((flags & NS) ? st.st_mtim.tv_nsec : 0);
        ok(e.type == type_of(st.st_mode) && e.mode == st.st_mode && e.uid == st.st_uid && e.gid == st.st_gid,
           "%s: %s type %u mode %o owner %u:%u", what, path, e.type, e.mode, e.uid, e.gid);
        is(e.mtime_ns, mtime, "%s: %s mtime%s", what, path, flags & NS ? " with ns" : " in seconds");
        if (!(flags & NS))
                is(e.ctime_ns, e.mtime_ns, "%s: %s ctime is the mtime (plain tar has no ctime)", what, path);
        is(e.ino, 0, "%s: %s has no source inode", what, path);
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
                is(e.rdev, st.st_rdev, "%s: %s device number", what, path);
        if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t n = readlink(P(src, rel), target, sizeof target);
                ok(n >= 0 && e.target_len == (size_t) n && memcmp(e.target, target, (size_t) n) == 0 &&
                   e.size == (uint64_t) n, "%s: %s link target %.*s", what, path, (int) e.target_len, e.target);
        }
        if (S_ISREG(st.st_mode)) {
                size_t len, holes;
                _cleanup_free_ uint8_t *want = slurp(P(src, rel), &len);
                _cleanup_free_ uint8_t *got = NULL;
                is(e.size, len, "%s: %s size", what, path);
                got = e.size == len ? read_content(v, &e, &holes) : NULL;
                ok(got && memcmp(got, want, len) == 0, "%s: %s data", what, path);
        }
}

static void check_tree(struct view *v, const char *what, const char *prefix, unsigned flags) {
        struct cairn_entry a, b;
        uint8_t ref[CAIRN_ID_SIZE];
        char p1[256], p2[256];

        for (size_t i = 0; i < ELEMENTSOF(src_paths); i++)
                if (src_paths[i][0])
                        check_entry(v, what, prefix, src_paths[i], flags);

        /* Hard links: one inode in the mount. */
        snprintf(p1, sizeof p1, "%s%shl1", prefix, prefix[0] ? "/" : "");
        snprintf(p2, sizeof p2, "%s%shl2", prefix, prefix[0] ? "/" : "");
        if (lookup(v, p1, &a) == 0) {
                uint64_t group = a.hardlink_group;
                uint32_t nlink = a.nlink;
                memcpy(ref, a.ref, CAIRN_ID_SIZE);
                ok(lookup(v, p2, &b) == 0 && group != 0 && b.hardlink_group == group &&
                   memcmp(b.ref, ref, CAIRN_ID_SIZE) == 0 && b.size == HL_SIZE,
                   "%s: hl1 and hl2 share a hard-link group and content", what);
                ok(nlink == 2 && b.nlink == 2, "%s: both have two links (%u, %u)", what, nlink, b.nlink);
        } else
                ok(false, "%s: hl1 found", what);
        snprintf(p1, sizeof p1, "%s%shello.txt", prefix, prefix[0] ? "/" : "");
        ok(lookup(v, p1, &a) == 0 && a.hardlink_group == 0 && a.nlink == 1, "%s: a plain file is in no group", what);

        /* The sparse file: holes stay holes when tar was told to find them. */
        snprintf(p1, sizeof p1, "%s%ssparse", prefix, prefix[0] ? "/" : "");
        if (lookup(v, p1, &a) == 0) {
                struct cairn_content_chunk ch;
                uint64_t start;
                size_t holes;
                _cleanup_free_ uint8_t *got = read_content(v, &a, &holes);
                if (flags & SPARSE) {
                        ok(cairn_index_content_find(v->t, a.ref, SP_DATA + 12345, &ch, &start) == 0 &&
                           (ch.flags & CAIRN_CHUNK_HOLE) && start == SP_DATA && ch.length == SP_HOLE,
                           "%s: the 4 MiB gap is one hole chunk", what);
                        ok(cairn_index_content_find(v->t, a.ref, SP_SIZE - 1, &ch, &start) == 0 &&
                           (ch.flags & CAIRN_CHUNK_HOLE) && start + ch.length == SP_SIZE,
                           "%s: the trailing gap is a hole up to the size", what);
                        ok(got && holes == 2, "%s: two holes in the sparse file (%zu)", what, holes);
                } else
                        ok(got && holes == 0, "%s: without -S the zeros are data", what);
        }
}

static void test_gnu(const char *what, const char *extra, unsigned flags) {
        _cleanup_free_ char *cmd = NULL;
        uint8_t id[CAIRN_ID_SIZE];
        struct view v;
        size_t before = count_snapshots();

        if (asprintf(&cmd, "tar -C %s %s -cf - .", src, extra) < 0)
                BAIL_OUT("out of memory");
        if (!ok(run_tar(what, cmd, NULL, id) == 0, "%s: tar stream backed up", what)) {
                diag("%s", log_all);
                return;
        }
        is(count_snapshots(), before + 1, "%s: one snapshot written", what);
        if (!ok(view_open(id, &v), "%s: snapshot resolves", what))
                return;
        ok(v.s->status == CAIRN_SNAPSHOT_COMPLETE, "%s: complete (%zu errors%s%s)", what, v.s->n_errors,
           v.s->n_errors ? ": " : "", v.s->n_errors ? v.s->errors[0].reason : "");
        ok(v.s->files >= 12 && v.s->bytes >= BIG_SIZE + SP_SIZE && v.s->dirs >= 5,
           "%s: totals counted (%" PRIu64 " files, %" PRIu64 " dirs, %" PRIu64 " bytes)", what, v.s->files, v.s->dirs,
           v.s->bytes);
        check_tree(&v, what, "", flags);

        if (flags & XATTRS) {
                struct cairn_entry e;
                const void *val;
                size_t len;
                uint8_t want[128];
                ssize_t n;

                if (!have_xattrs)
                        skip("user xattrs not supported here");
                else
                        ok(lookup(&v, "xattr.txt", &e) == 0 && xattr_get(&e, "user.test", &val, &len) && len == 5 &&
                           memcmp(val, "value", 5) == 0, "%s: xattr user.test=value kept", what);
                if (!have_acls)
                        skip("POSIX ACLs not supported here");
                else {
                        n = getxattr(P(src, "acl.txt"), "system.posix_acl_access", want, sizeof want);
                        ok(n > 0 && lookup(&v, "acl.txt", &e) == 0 &&
                           xattr_get(&e, "system.posix_acl_access", &val, &len) && len == (size_t) n &&
                           memcmp(val, want, len) == 0, "%s: access ACL kept in the kernel's form", what);
                        n = getxattr(P(src, "acldir"), "system.posix_acl_default", want, sizeof want);
                        ok(n > 0 && lookup(&v, "acldir", &e) == 0 &&
                           xattr_get(&e, "system.posix_acl_default", &val, &len) && len == (size_t) n &&
                           memcmp(val, want, len) == 0, "%s: default ACL kept in the kernel's form", what);
                }
        }
        view_close(&v);
}

/* Only --acls, no --xattrs: the ACLs come as pax ACL text, which
 * libarchive parses and the source turns into system.posix_acl_*. */
static void test_acl_text(void) {
        _cleanup_free_ char *cmd = NULL;
        uint8_t id[CAIRN_ID_SIZE], want[128];
        struct cairn_entry e;
        struct stat st;
        const void *val;
        size_t len;
        ssize_t n;
        struct view v;

        if (!have_acls) {
                skip("POSIX ACLs not supported here");
                return;
        }
        if (asprintf(&cmd, "tar -C %s --acls --format=pax -cf - ./acl.txt ./acldir ./hello.txt", src) < 0)
                BAIL_OUT("out of memory");
        if (!ok(run_tar("acl", cmd, "", id) == 0 && view_open(id, &v), "acl: backed up")) {
                diag("%s", log_all);
                return;
        }
        ok(v.s->status == CAIRN_SNAPSHOT_COMPLETE, "acl: complete");
        n = getxattr(P(src, "acl.txt"), "system.posix_acl_access", want, sizeof want);
        ok(n > 0 && lookup(&v, "acl.txt", &e) == 0 && xattr_get(&e, "system.posix_acl_access", &val, &len) &&
           len == (size_t) n && memcmp(val, want, len) == 0, "acl: access ACL rebuilt from the pax ACL text");
        lstat(P(src, "acl.txt"), &st);
        is(e.mode, st.st_mode, "acl: the group bits of the mode are the ACL mask's (%o)", (unsigned) st.st_mode);
        n = getxattr(P(src, "acldir"), "system.posix_acl_default", want, sizeof want);
        ok(n > 0 && lookup(&v, "acldir", &e) == 0 && xattr_get(&e, "system.posix_acl_default", &val, &len) &&
           len == (size_t) n && memcmp(val, want, len) == 0, "acl: default ACL rebuilt from the pax ACL text");
        ok(lookup(&v, "hello.txt", &e) == 0 && e.n_xattrs == 0, "acl: a file without ACL gets no xattr");
        view_close(&v);
}

/* @dir puts the tree below it; "./" gives @dir the source root's metadata. */
static void test_dir(void) {
        _cleanup_free_ char *cmd = NULL;
        uint8_t id[CAIRN_ID_SIZE];
        struct cairn_tree_iter *it = NULL;
        struct cairn_entry e;
        const char *name;
        size_t name_len, n = 0;
        struct stat st;
        struct view v;

        if (asprintf(&cmd, "tar -C %s -cf - .", src) < 0)
                BAIL_OUT("out of memory");
        if (!ok(run_tar("vol", cmd, "/volumes//grafana/", id) == 0 && view_open(id, &v), "dir: backed up")) {
                diag("%s", log_all);
                return;
        }
        check_entry(&v, "dir", "volumes/grafana", "hello.txt", 0);
        check_entry(&v, "dir", "volumes/grafana", "dir/sub/deep.txt", 0);
        check_entry(&v, "dir", "volumes/grafana", "link", 0);
        lstat(src, &st);
        ok(lookup(&v, "volumes/grafana", &e) == 0 && e.type == CAIRN_ENTRY_DIR && e.mode == st.st_mode &&
           e.mtime_ns == (int64_t) st.st_mtim.tv_sec * SEC,
           "dir: volumes/grafana has the metadata of the archive's ./");
        ok(lookup(&v, "volumes", &e) == 0 && e.type == CAIRN_ENTRY_DIR, "dir: volumes is a directory");
        if (cairn_index_tree_iter_new(v.t, v.s->root, NULL, 0, &it) == 0) {
                while (cairn_index_tree_iter_next(it, &name, &name_len, &e) > 0)
                        n++;
                cairn_index_tree_iter_free(it);
        }
        is(n, 1, "dir: nothing but volumes at the root");
        ok(lookup(&v, "hello.txt", &e) == -ENOENT, "dir: nothing of the stream at the root");
        view_close(&v);

        ok(run_tar("vol", cmd, "volumes/../../etc", id) == -EINVAL && strstr(log_all, "\"..\""),
           "dir: a directory with \"..\" is refused");
}

/* Every path below @tree, one per line, in name order. */
static void walk(struct view *v, const uint8_t tree[CAIRN_ID_SIZE], const char *prefix, char *out, size_t cap) {
        struct cairn_tree_iter *it;
        struct cairn_entry e;
        const char *name;
        size_t name_len;
        uint8_t sub[CAIRN_ID_SIZE];

        if (cairn_index_tree_iter_new(v->t, tree, NULL, 0, &it) < 0)
                return;
        while (cairn_index_tree_iter_next(it, &name, &name_len, &e) > 0) {
                char path[1024];
                snprintf(path, sizeof path, "%s%s%.*s", prefix, prefix[0] ? "/" : "", (int) name_len, name);
                snprintf(out + strlen(out), cap - strlen(out), "%s\n", path);
                if (e.type == CAIRN_ENTRY_DIR) {
                        memcpy(sub, e.ref, CAIRN_ID_SIZE);
                        walk(v, sub, path, out, cap);
                }
        }
        cairn_index_tree_iter_free(it);
}

static const char hostile_py[] =
        "import io, sys, tarfile\n"
        "t = tarfile.open(fileobj=sys.stdout.buffer, mode='w|', format=tarfile.PAX_FORMAT)\n"
        "def f(name, data=b'x'):\n"
        "    i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1700000000; t.addfile(i, io.BytesIO(data))\n"
        "def l(name, target, kind=tarfile.SYMTYPE):\n"
        "    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)\n"
        "f('ok.txt', b'fine\\n')\n"
        "f('../evil', b'evil\\n')\n"
        "f('/abs/path', b'abs\\n')\n"
        "f('a/../../b', b'b\\n')\n"
        "l('link', '/etc')\n"
        "f('link/passwd', b'root::0:0::/:/bin/sh\\n')\n"
        "f('x' * 300, b'long\\n')\n"
        "f('d/' + 'y' * 300, b'long\\n')\n"
        "f('file', b'f\\n')\n"
        "f('file/inner', b'i\\n')\n"
        "l('esc', '../../../../etc/shadow')\n"
        "l('hl-evil', '../evil', tarfile.LNKTYPE)\n"
        "l('hl-none', 'nowhere', tarfile.LNKTYPE)\n"
        "l('hl-ok', 'ok.txt', tarfile.LNKTYPE)\n"
        "f('dd/..', b'z\\n')\n"
        "t.close()\n";

static void test_hostile(void) {
        _cleanup_free_ char *script = NULL, *cmd = NULL;
        char paths[4096] = "";
        char long_x[301], long_d[303];
        uint8_t id[CAIRN_ID_SIZE];
        struct cairn_entry e;
        uint64_t group;
        uint8_t ref[CAIRN_ID_SIZE];
        struct view v;

        if (asprintf(&script, "%s/hostile.py", tmp) < 0 || asprintf(&cmd, "python3 %s", script) < 0)
                BAIL_OUT("out of memory");
        write_file(script, hostile_py, strlen(hostile_py), 0644);
        if (!ok(run_tar("hostile", cmd, NULL, id) == 0 && view_open(id, &v), "hostile: the stream is read")) {
                diag("%s", log_all);
                return;
        }
        ok(v.s->status == CAIRN_SNAPSHOT_PARTIAL, "hostile: the snapshot is partial");
        memset(long_x, 'x', 300);
        long_x[300] = 0;
        memcpy(long_d, "d/", 2);
        memset(long_d + 2, 'y', 300);
        long_d[302] = 0;
        ok(has_error(v.s, "../evil", "refused: the path contains \"..\""), "hostile: ../evil refused");
        ok(has_error(v.s, "a/../../b", "refused"), "hostile: a/../../b refused");
        ok(has_error(v.s, "dd/..", "refused"), "hostile: dd/.. refused");
        ok(has_error(v.s, "link/passwd", "refused: the path goes through a non-directory"),
           "hostile: link/passwd (through the symlink) refused");
        ok(has_error(v.s, "file/inner", "refused: the path goes through a non-directory"),
           "hostile: file/inner (through a file) refused");
        ok(has_error(v.s, long_x, "longer than 255"), "hostile: a 300-byte name refused");
        ok(has_error(v.s, long_d, "longer than 255"), "hostile: a 300-byte name in a path refused");
        ok(has_error(v.s, "hl-evil", "refused: hard link"), "hostile: hard link to ../evil refused");
        ok(has_error(v.s, "hl-none", "not an earlier file"), "hostile: hard link to an unknown path refused");
        is(v.s->n_errors, 9, "hostile: nine warnings, nothing else");

        /* What is stored: only these, all inside. */
        walk(&v, v.s->root, "", paths, sizeof paths);
        ok(streq(paths, "abs\nabs/path\nesc\nfile\nhl-ok\nlink\nok.txt\n"), "hostile: exactly the safe entries stored");
        if (!streq(paths, "abs\nabs/path\nesc\nfile\nhl-ok\nlink\nok.txt\n"))
                diag("stored:\n%s", paths);
        ok(lookup(&v, "link", &e) == 0 && e.type == CAIRN_ENTRY_SYMLINK && e.target_len == 4 &&
           memcmp(e.target, "/etc", 4) == 0, "hostile: the symlink is kept as a link to /etc");
        ok(lookup(&v, "esc", &e) == 0 && e.type == CAIRN_ENTRY_SYMLINK && e.target_len == 22 &&
           memcmp(e.target, "../../../../etc/shadow", 22) == 0, "hostile: a link out of the tree is data, verbatim");
        ok(lookup(&v, "abs/path", &e) == 0 && e.type == CAIRN_ENTRY_FILE && e.size == 4,
           "hostile: /abs/path is stored inside, as abs/path");
        if (lookup(&v, "ok.txt", &e) == 0) {
                group = e.hardlink_group;
                memcpy(ref, e.ref, CAIRN_ID_SIZE);
                ok(group != 0 && e.nlink == 2 && lookup(&v, "hl-ok", &e) == 0 && e.hardlink_group == group &&
                   e.nlink == 2 && memcmp(e.ref, ref, CAIRN_ID_SIZE) == 0 && e.size == 5,
                   "hostile: hl-ok is a hard link of ok.txt");
        } else
                ok(false, "hostile: ok.txt stored");
        view_close(&v);
}

/* A pax hard link may carry data: the inode's new content, for all names. */
static void test_link_data(void) {
        static const char py[] =
                "import io, sys, tarfile\n"
                "t = tarfile.open(fileobj=sys.stdout.buffer, mode='w|', format=tarfile.PAX_FORMAT)\n"
                "i = tarfile.TarInfo('f'); i.size = 3; t.addfile(i, io.BytesIO(b'abc'))\n"
                "i = tarfile.TarInfo('g'); i.type = tarfile.LNKTYPE; i.linkname = 'f'; i.size = 5\n"
                "i.pax_headers = {'comment': 'pax'}; t.addfile(i, io.BytesIO(b'xyzzy'))\n"
                "i = tarfile.TarInfo('h'); i.type = tarfile.LNKTYPE; i.linkname = 'g'; t.addfile(i)\n"
                "i = tarfile.TarInfo('f'); i.size = 4; t.addfile(i, io.BytesIO(b'new!'))\n"
                "i = tarfile.TarInfo('p'); i.size = 1; t.addfile(i, io.BytesIO(b'p'))\n"
                "i = tarfile.TarInfo('q'); i.type = tarfile.LNKTYPE; i.linkname = 'p'; t.addfile(i)\n"
                "i = tarfile.TarInfo('p'); i.size = 2; t.addfile(i, io.BytesIO(b'pp'))\n"
                "i = tarfile.TarInfo('r'); i.type = tarfile.LNKTYPE; i.linkname = 'p'; t.addfile(i)\n"
                "t.close()\n";
        _cleanup_free_ char *script = NULL, *cmd = NULL;
        uint8_t id[CAIRN_ID_SIZE], ref[CAIRN_ID_SIZE];
        struct cairn_entry e;
        uint64_t group;
        size_t holes;
        struct view v;

        if (asprintf(&script, "%s/linkdata.py", tmp) < 0 || asprintf(&cmd, "python3 %s", script) < 0)
                BAIL_OUT("out of memory");
        write_file(script, py, strlen(py), 0644);
        if (!ok(run_tar("linkdata", cmd, NULL, id) == 0 && view_open(id, &v), "linkdata: backed up")) {
                diag("%s", log_all);
                return;
        }
        ok(v.s->status == CAIRN_SNAPSHOT_COMPLETE, "linkdata: complete");
        if (lookup(&v, "g", &e) == 0) {
                _cleanup_free_ uint8_t *got = read_content(&v, &e, &holes);
                group = e.hardlink_group;
                memcpy(ref, e.ref, CAIRN_ID_SIZE);
                ok(got && e.size == 5 && memcmp(got, "xyzzy", 5) == 0 && e.nlink == 2,
                   "linkdata: g holds the link's data, two names");
                ok(lookup(&v, "h", &e) == 0 && e.hardlink_group == group && memcmp(e.ref, ref, CAIRN_ID_SIZE) == 0 &&
                   e.nlink == 2, "linkdata: h (a link to the link) is the same inode");
        } else
                ok(false, "linkdata: g stored");
        if (lookup(&v, "f", &e) == 0) {
                _cleanup_free_ uint8_t *got = read_content(&v, &e, &holes);
                ok(got && e.size == 4 && memcmp(got, "new!", 4) == 0 && e.hardlink_group == 0 && e.nlink == 1,
                   "linkdata: f, written again later, is a file of its own");
        } else
                ok(false, "linkdata: f stored");
        /* p written twice, linked after each: two inodes, two groups. */
        if (lookup(&v, "q", &e) == 0) {
                group = e.hardlink_group;
                ok(group != 0 && e.size == 1 && e.nlink == 1, "linkdata: q keeps the first p (one name left)");
                ok(lookup(&v, "p", &e) == 0 && e.size == 2 && e.nlink == 2 && e.hardlink_group != 0 &&
                   e.hardlink_group != group, "linkdata: the second p is another inode, in another group");
                group = e.hardlink_group;
                ok(lookup(&v, "r", &e) == 0 && e.size == 2 && e.nlink == 2 && e.hardlink_group == group,
                   "linkdata: r is a link of the second p");
        } else
                ok(false, "linkdata: q stored");
        view_close(&v);
}

/* A flood of bad entries is listed up to a limit, then counted. */
static void test_many_warnings(void) {
        static const char py[] =
                "import io, sys, tarfile\n"
                "t = tarfile.open(fileobj=sys.stdout.buffer, mode='w|', format=tarfile.PAX_FORMAT)\n"
                "for n in range(1500):\n"
                "    i = tarfile.TarInfo('../e%d' % n); i.size = 1; t.addfile(i, io.BytesIO(b'e'))\n"
                "i = tarfile.TarInfo('good'); i.size = 1; t.addfile(i, io.BytesIO(b'g'))\n"
                "t.close()\n";
        _cleanup_free_ char *script = NULL, *cmd = NULL;
        uint8_t id[CAIRN_ID_SIZE];
        struct cairn_entry e;
        struct view v;

        if (asprintf(&script, "%s/many.py", tmp) < 0 || asprintf(&cmd, "python3 %s", script) < 0)
                BAIL_OUT("out of memory");
        write_file(script, py, strlen(py), 0644);
        cairn_log_set_level(CAIRN_LOG_ERR);
        if (!ok(run_tar("many", cmd, NULL, id) == 0 && view_open(id, &v), "many: backed up")) {
                cairn_log_set_level(CAIRN_LOG_INFO);
                return;
        }
        cairn_log_set_level(CAIRN_LOG_INFO);
        is(v.s->n_errors, 1001, "many: 1000 warnings listed and one that counts the rest");
        ok(v.s->n_errors == 1001 && strstr(v.s->errors[1000].reason, "500 more"), "many: the last one says 500 more");
        ok(lookup(&v, "good", &e) == 0, "many: the good entry is stored");
        view_close(&v);
}

/* Failures of the job: nothing committed. */
static void test_failures(void) {
        _cleanup_free_ char *full = NULL, *cmd = NULL;
        uint8_t id[CAIRN_ID_SIZE];
        struct stat st;
        size_t before = count_snapshots();
        int k;

        k = run_tar("fail", "echo 'Error: no such volume grafana_data' >&2; exit 3", NULL, id);
        is(k, -ECHILD, "exit 3 is -ECHILD");
        ok(strstr(log_all, "exited with status 3") && strstr(log_all, "no such volume grafana_data"),
           "the error names the status and the last line of stderr");
        k = run_tar("fail", "kill -9 $$", NULL, id);
        ok(k == -ECHILD && strstr(log_all, "signal 9"), "a command killed by a signal is -ECHILD");
        k = run_tar("fail", "true", NULL, id);
        ok(k == -EBADMSG && strstr(log_all, "wrote nothing"), "no output at all is an error");
        k = run_tar("fail", "echo this is not a tar stream", NULL, id);
        ok(k == -EBADMSG && strstr(log_all, "damaged"), "garbage is an error: %s", log_all);

        if (asprintf(&full, "%s/full.tar", tmp) < 0 || asprintf(&cmd, "tar -C %s -cf %s .", src, full) < 0)
                BAIL_OUT("out of memory");
        if (system(cmd) != 0 || stat(full, &st) < 0)
                BAIL_OUT("cannot make %s", full);
        free(cmd);
        if (asprintf(&cmd, "head -c 1000 %s", full) < 0)
                BAIL_OUT("out of memory");
        k = run_tar("fail", cmd, NULL, id);
        ok(k == -EBADMSG && strstr(log_all, "damaged"), "a stream cut in a header is -EBADMSG: %s", log_all);
        free(cmd);
        if (asprintf(&cmd, "head -c %lld %s", (long long) st.st_size / 2, full) < 0)
                BAIL_OUT("out of memory");
        k = run_tar("fail", cmd, NULL, id);
        ok(k == -EBADMSG && strstr(log_all, "damaged"), "a stream cut in a file's data is -EBADMSG: %s", log_all);
        free(cmd);
        if (asprintf(&cmd, "gzip -c %s | head -c 100000", full) < 0)
                BAIL_OUT("out of memory");
        k = run_tar("fail", cmd, NULL, id);
        ok(k == -EBADMSG, "a cut gzip stream is -EBADMSG: %s", log_all);
        is(count_snapshots(), before, "no snapshot written by any of them");

        /* More than padding after the end of the archive: kept, but said. */
        free(cmd);
        if (asprintf(&cmd, "cat %s; head -c 300000 /dev/zero; echo junk", full) < 0)
                BAIL_OUT("out of memory");
        k = run_tar("trail", cmd, NULL, id);
        if (ok(k == 0, "data after the archive: backed up")) {
                struct view v;
                if (view_open(id, &v)) {
                        ok(has_error(v.s, "/", "after the end"), "data after the archive: a warning says so");
                        view_close(&v);
                }
        }
}

/* GNU tar writes a name's bytes into the pax header even when they are
 * not UTF-8: stored byte for byte, and no reason for a partial snapshot. */
static void test_names(void) {
        _cleanup_free_ char *dir = NULL, *cmd = NULL;
        static const char latin1[] = "caf\xe9";
        uint8_t id[CAIRN_ID_SIZE];
        struct cairn_entry e;
        struct view v;

        if (asprintf(&dir, "%s/names", tmp) < 0 || mkdir(dir, 0755) < 0)
                BAIL_OUT("cannot make %s", dir);
        write_file(P(dir, latin1), "latin-1\n", 8, 0644);
        for (int pax = 0; pax < 2; pax++) {
                const char *what = pax ? "latin1 pax" : "latin1 gnu";
                free(cmd);
                if (asprintf(&cmd, "tar -C %s %s -cf - .", dir, pax ? "--format=pax" : "") < 0)
                        BAIL_OUT("out of memory");
                if (!ok(run_tar("names", cmd, NULL, id) == 0 && view_open(id, &v), "%s: backed up", what))
                        continue;
                ok(lookup(&v, latin1, &e) == 0 && e.size == 8, "%s: a name that is not UTF-8 kept byte for byte", what);
                ok(v.s->status == CAIRN_SNAPSHOT_COMPLETE, "%s: complete", what);
                view_close(&v);
        }
}

static void test_encrypted(void) {
        _cleanup_free_ char *path = NULL, *cmd = NULL;
        struct cairn_repo_params p;
        struct cairn_pass_source pass = { CAIRN_PASS_STRING, "correct horse" };
        struct cairn_repo *plain = repo;
        uint8_t id[CAIRN_ID_SIZE];
        struct view v;

        if (asprintf(&path, "%s/repo-enc", tmp) < 0 || asprintf(&cmd, "tar -C %s -czf - .", src) < 0)
                BAIL_OUT("out of memory");
        cairn_repo_params_default(&p);
        p.encrypted = true;
        p.scrypt_n = 1024;
        if (cairn_repo_create(path, &p, &pass) < 0 || cairn_repo_open(path, &pass, &repo) < 0)
                BAIL_OUT("cannot create an encrypted repository: %s", log_all);
        if (ok(run_tar("enc", cmd, "data", id) == 0 && view_open(id, &v), "encrypted, gzip: backed up")) {
                check_entry(&v, "encrypted", "data", "big.bin", 0);
                check_entry(&v, "encrypted", "data", "dir/sub/deep.txt", 0);
                check_entry(&v, "encrypted", "data", "sparse", 0);
                view_close(&v);
        } else
                diag("%s", log_all);
        cairn_repo_free(repo);
        repo = plain;
}

int main(void) {
        _cleanup_free_ char *path = NULL;
        struct cairn_repo_params p;
        struct cairn_pass_source none = { CAIRN_PASS_NONE, NULL };

        tmp = test_mkdtemp("test-backup");
        cairn_log_set_handler(log_collect, NULL);
        is_root = geteuid() == 0;
        if (asprintf(&path, "%s/repo", tmp) < 0 || asprintf(&src, "%s/src", tmp) < 0 || mkdir(src, 0755) < 0)
                BAIL_OUT("set-up failed");
        cairn_repo_params_default(&p);
        p.encrypted = false;
        p.scrypt_n = 1024;
        if (cairn_repo_create(path, &p, &none) < 0 || cairn_repo_open(path, &none, &repo) < 0)
                BAIL_OUT("cannot create the repository: %s", log_all);
        make_source();
        if (!is_root)
                diag("not root: no foreign owners or device nodes in the source tree");

        test_gnu("gnu", "", 0);
        test_gnu("gnu sparse", "-S", SPARSE);
        test_gnu("pax", "--xattrs --acls --format=pax", NS | XATTRS);
        test_gnu("pax sparse", "-S --format=pax", NS | SPARSE);
        test_gnu("gzip", "-z", 0);
        test_acl_text();
        test_dir();
        test_hostile();
        test_link_data();
        test_many_warnings();
        test_names();
        test_failures();
        test_encrypted();

        cairn_repo_free(repo);
        free(src);
        test_rm_rf(tmp);
        free(tmp);
        return tap_done();
}
