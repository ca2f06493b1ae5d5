/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Restore writes back exactly what a snapshot's entries say (data, holes,
 * hard links, symlinks, special files, owners, modes, xattrs and ACLs, ns
 * times), never writes through a symlink, refuses or replaces what is in
 * the way, and turns a damaged chunk into an error for that one file.
 * Also path resolution, content reads and the listing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "log.h"
#include "ls.h"
#include "pack.h"
#include "repo.h"
#include "restore.h"
#include "store.h"
#include "tap.h"
#include "test-util.h"
#include "tree.h"
#include "util.h"

#define SEC 1000000000LL
#define T0 (1700000000LL * SEC)   /* 2023-11-14T22:13:20Z */

#define THREE_A 100000
#define THREE_B 70000
#define THREE_C 50001
#define THREE_SIZE (THREE_A + THREE_B + THREE_C)

#define SP_DATA 65536
#define SP_HOLE (4u << 20)
#define SP_TAIL (1u << 20)
#define SP_SIZE (SP_DATA + SP_HOLE + SP_DATA + SP_TAIL)

#define HL_SIZE 5000

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

/* The expected bytes of the files, as the restore must write them. */
static uint8_t *three, *sparse, *hl;
static const char deep[] = "deep inside\n", suid[] = "#!/bin/sh\necho hi\n", xfile[] = "with xattrs\n",
                  inner[] = "inner\n", stickyf[] = "in a sticky dir\n";
static uint8_t three_chunks[3][32];      /* data chunk ids of three.bin */
static const uint8_t xbin[] = { 0, 1, 2, 0xff, 0xfe, 0, 'x' };
static uint8_t acl[4 + 5 * 8];

static const char *P(const char *dir, const char *rel) {
        static char buf[8][4200];
        static int i;
        i = (i + 1) % 8;
        snprintf(buf[i], sizeof buf[i], "%s/%s", dir, rel);
        return buf[i];
}

/* A POSIX ACL in the kernel's xattr form: user::rw- user:1234:r--
 * group::r-- mask::r-- other::---, matching mode 0640.  Ids of the
 * entries that have none are -1, as the kernel reports them. */
static void make_acl(void) {
        static const struct { uint16_t tag, perm; uint32_t id; } ents[] = {
                { 0x01, 6, UINT32_MAX }, { 0x02, 4, 1234 }, { 0x04, 4, UINT32_MAX },
                { 0x10, 4, UINT32_MAX }, { 0x20, 0, UINT32_MAX },
        };
        put_le32(acl, 2);
        for (size_t i = 0; i < ELEMENTSOF(ents); i++) {
                put_le16(acl + 4 + 8 * i, ents[i].tag);
                put_le16(acl + 4 + 8 * i + 2, ents[i].perm);
                put_le32(acl + 4 + 8 * i + 4, ents[i].id);
        }
}

/* Store @buf (a whole file, zeros in holes) as the parts lens[i], holes
 * where hole[i]; data chunk ids into ids[i] (may be NULL). */
static void store_content(struct cairn_store *s, const uint8_t *buf, const size_t *lens, const bool *hole, size_t n,
                          uint8_t ids[][32], uint8_t ret[32]) {
        struct cairn_content_chunk ch[8] = {};
        uint8_t *blob;
        size_t len, off = 0;

        for (size_t i = 0; i < n; i++) {
                ch[i].length = lens[i];
                if (hole[i])
                        ch[i].flags = CAIRN_CHUNK_HOLE;
                else if (cairn_store_add(s, CAIRN_BLOB_DATA, buf + off, lens[i], ch[i].id, NULL) < 0)
                        BAIL_OUT("cannot store a data chunk");
                if (ids)
                        memcpy(ids[i], ch[i].id, 32);
                off += lens[i];
        }
        if (cairn_content_encode(ch, n, &blob, &len) < 0 || cairn_store_add(s, CAIRN_BLOB_CONTENT, blob, len, ret, NULL) < 0)
                BAIL_OUT("cannot store a content");
        free(blob);
}

static void store_small(struct cairn_store *s, const void *buf, size_t n, uint8_t ret[32]) {
        bool no_hole = false;
        store_content(s, buf, &n, &no_hole, 1, NULL, ret);
}

static struct cairn_entry ent(uint8_t type, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size, int64_t mtime) {
        static const uint32_t fmt[] = { 0, S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK };
        return (struct cairn_entry) {
                .type = type, .mode = fmt[type] | mode, .uid = uid, .gid = gid, .size = size,
                .mtime_ns = mtime, .ctime_ns = mtime, .atime_ns = mtime - 3 * SEC + 17, .nlink = 1,
        };
}

static void add(struct cairn_tree_builder *b, const char *name, const struct cairn_entry *e,
                const struct cairn_xattr *xa, size_t n_xa) {
        if (cairn_tree_builder_add(b, name, strlen(name), e, xa, n_xa) < 0)
                BAIL_OUT("cannot add %s to a tree", name);
}

static void finish(struct cairn_store *s, struct cairn_tree_builder *b, uint8_t ret[32]) {
        uint8_t *blob;
        size_t len;
        if (cairn_tree_builder_finish(b, &blob, &len) < 0 || cairn_store_add(s, CAIRN_BLOB_TREE, blob, len, ret, NULL) < 0)
                BAIL_OUT("cannot store a tree");
        free(blob);
        cairn_tree_builder_free(b);
}

static struct cairn_entry dir_ent(uint32_t mode, const uint8_t tree[32], int64_t mtime) {
        struct cairn_entry e = ent(CAIRN_ENTRY_DIR, mode, 0, 0, 0, mtime);
        e.nlink = 2;
        memcpy(e.ref, tree, 32);
        return e;
}

static struct cairn_entry file_ent(uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size, const uint8_t cid[32],
                                   int64_t mtime) {
        struct cairn_entry e = ent(CAIRN_ENTRY_FILE, mode, uid, gid, size, mtime);
        memcpy(e.ref, cid, 32);
        return e;
}

/*
 * /a/                 0755
 * /a/b/               0700
 * /a/b/c/             0755
 * /a/b/c/deep.txt
 * /a/hl2              hard-link group 42 (first in walk order)
 * /dangling -> does/not/exist
 * /empty              0600, no content
 * /emptydir/          0750
 * /fifo               0640
 * /hl1                hard-link group 42
 * /link -> a/b/c/deep.txt
 * /null               char 1,3
 * /sock               socket
 * /sparse.bin         data | 4 MiB hole | data | 1 MiB hole
 * /sticky/            01777, with f
 * /sub/               with inner.txt
 * /suid               04755 1234:5678
 * /three.bin          three data chunks
 * /xattr.txt          0640, user.bin (binary) and an access ACL
 */
static void build_tree(struct cairn_store *s, uint8_t root[32]) {
        uint8_t c_three[32], c_sparse[32], c_deep[32], c_hl[32], c_suid[32], c_x[32], c_inner[32], c_sf[32];
        uint8_t t_c[32], t_b[32], t_a[32], t_empty[32], t_sticky[32], t_sub[32];
        struct cairn_tree_builder *b;
        struct cairn_entry e;

        three = malloc(THREE_SIZE);
        sparse = calloc(1, SP_SIZE);
        hl = malloc(HL_SIZE);
        test_fill_random(three, THREE_SIZE, 1);
        test_fill_random(sparse, SP_DATA, 2);
        test_fill_random(sparse + SP_DATA + SP_HOLE, SP_DATA, 3);
        test_fill_random(hl, HL_SIZE, 4);
        make_acl();

        {
                size_t lens[] = { THREE_A, THREE_B, THREE_C };
                bool holes[] = { false, false, false };
                store_content(s, three, lens, holes, 3, three_chunks, c_three);
        }
        {
                size_t lens[] = { SP_DATA, SP_HOLE, SP_DATA, SP_TAIL };
                bool holes[] = { false, true, false, true };
                store_content(s, sparse, lens, holes, 4, NULL, c_sparse);
        }
        store_small(s, deep, strlen(deep), c_deep);
        store_small(s, hl, HL_SIZE, c_hl);
        store_small(s, suid, strlen(suid), c_suid);
        store_small(s, xfile, strlen(xfile), c_x);
        store_small(s, inner, strlen(inner), c_inner);
        store_small(s, stickyf, strlen(stickyf), c_sf);

        b = cairn_tree_builder_new();
        e = file_ent(0644, 0, 0, strlen(deep), c_deep, T0 + 1);
        add(b, "deep.txt", &e, NULL, 0);
        finish(s, b, t_c);

        b = cairn_tree_builder_new();
        e = dir_ent(0755, t_c, T0 + 2);
        add(b, "c", &e, NULL, 0);
        finish(s, b, t_b);

        b = cairn_tree_builder_new();
        e = dir_ent(0700, t_b, T0 + 3);
        add(b, "b", &e, NULL, 0);
        e = file_ent(0640, 1000, 1000, HL_SIZE, c_hl, T0 + 4);
        e.nlink = 2;
        e.hardlink_group = 42;
        add(b, "hl2", &e, NULL, 0);
        finish(s, b, t_a);

        b = cairn_tree_builder_new();
        finish(s, b, t_empty);

        b = cairn_tree_builder_new();
        e = file_ent(0666, 1000, 1000, strlen(stickyf), c_sf, T0 + 5);
        add(b, "f", &e, NULL, 0);
        finish(s, b, t_sticky);

        b = cairn_tree_builder_new();
        e = file_ent(0644, 0, 0, strlen(inner), c_inner, T0 + 6);
        add(b, "inner.txt", &e, NULL, 0);
        finish(s, b, t_sub);

        b = cairn_tree_builder_new();
        e = dir_ent(0755, t_a, T0 + 7 * SEC + 123456789);
        add(b, "a", &e, NULL, 0);
        e = ent(CAIRN_ENTRY_SYMLINK, 0777, 0, 0, 14, T0 + 8);
        e.target = "does/not/exist";
        e.target_len = 14;
        add(b, "dangling", &e, NULL, 0);
        e = ent(CAIRN_ENTRY_FILE, 0600, 0, 0, 0, T0 + 9);
        add(b, "empty", &e, NULL, 0);
        e = dir_ent(0750, t_empty, T0 + 10);
        add(b, "emptydir", &e, NULL, 0);
        e = ent(CAIRN_ENTRY_FIFO, 0640, 0, 0, 0, T0 + 11);
        add(b, "fifo", &e, NULL, 0);
        e = file_ent(0640, 1000, 1000, HL_SIZE, c_hl, T0 + 4);
        e.nlink = 2;
        e.hardlink_group = 42;
        add(b, "hl1", &e, NULL, 0);
        e = ent(CAIRN_ENTRY_SYMLINK, 0777, 1000, 1000, 14, T0 + 12);
        e.target = "a/b/c/deep.txt";
        e.target_len = 14;
        add(b, "link", &e, NULL, 0);
        e = ent(CAIRN_ENTRY_CHR, 0666, 0, 0, 0, T0 + 13);
        e.rdev = makedev(1, 3);
        add(b, "null", &e, NULL, 0);
        e = ent(CAIRN_ENTRY_SOCK, 0755, 0, 0, 0, T0 + 14);
        add(b, "sock", &e, NULL, 0);
        e = file_ent(0644, 0, 0, SP_SIZE, c_sparse, T0 + 15 * SEC + 999999999);
        add(b, "sparse.bin", &e, NULL, 0);
        e = dir_ent(01777, t_sticky, T0 + 16);
        add(b, "sticky", &e, NULL, 0);
        e = dir_ent(0755, t_sub, T0 + 17);
        add(b, "sub", &e, NULL, 0);
        e = file_ent(04755, 1234, 5678, strlen(suid), c_suid, T0 + 18);
        add(b, "suid", &e, NULL, 0);
        e = file_ent(0644, 1000, 1000, THREE_SIZE, c_three, T0 + 19 * SEC + 1);
        add(b, "three.bin", &e, NULL, 0);
        {
                struct cairn_xattr xa[] = {
                        { "system.posix_acl_access", 23, acl, sizeof acl },
                        { "user.bin", 8, xbin, sizeof xbin },
                };
                e = file_ent(0640, 0, 0, strlen(xfile), c_x, T0 + 20);
                add(b, "xattr.txt", &e, xa, 2);
        }
        finish(s, b, root);
}

/* A second tree for the listing of hostile names: "bad\xff\nname". */
static void build_bad_names(struct cairn_store *s, uint8_t root[32]) {
        struct cairn_tree_builder *b = cairn_tree_builder_new();
        struct cairn_entry e = ent(CAIRN_ENTRY_FILE, 0644, 0, 0, 0, T0);
        add(b, "bad\xff\nname", &e, NULL, 0);
        finish(s, b, root);
}

/* A third: a directory whose tree the index does not know, next to a file. */
static void build_ghost(struct cairn_store *s, uint8_t root[32]) {
        struct cairn_tree_builder *b = cairn_tree_builder_new();
        uint8_t ghost[32], c[32];
        struct cairn_entry e;
        memset(ghost, 0x77, 32);
        store_small(s, inner, strlen(inner), c);
        e = dir_ent(0755, ghost, T0);
        add(b, "ghost", &e, NULL, 0);
        e = file_ent(0644, 0, 0, strlen(inner), c, T0);
        add(b, "z", &e, NULL, 0);
        finish(s, b, root);
}

static uint8_t *slurp(const char *path, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        uint8_t *buf;
        if (fd < 0 || fstat(fd, &st) < 0)
                return NULL;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf || read_full(fd, buf, (size_t) st.st_size) != st.st_size) {
                free(buf);
                return NULL;
        }
        *ret_len = (size_t) st.st_size;
        return buf;
}

static bool same_bytes(const char *path, const void *want, size_t n) {
        size_t len = 0;
        _cleanup_free_ uint8_t *got = slurp(path, &len);
        return got && len == n && memcmp(got, want, n) == 0;
}

static bool same_xattr(const char *path, const char *name, const void *want, size_t n) {
        uint8_t buf[256];
        ssize_t k = lgetxattr(path, name, buf, sizeof buf);
        return k == (ssize_t) n && memcmp(buf, want, n) == 0;
}

static bool is_empty_dir(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        int n = 0;
        if (!d)
                return false;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n == 0;
}

static bool mtime_is(const struct stat *st, int64_t ns) {
        return (int64_t) st->st_mtim.tv_sec * SEC + st->st_mtim.tv_nsec == ns;
}

static bool atime_is(const struct stat *st, int64_t ns) {
        return (int64_t) st->st_atim.tv_sec * SEC + st->st_atim.tv_nsec == ns;
}

/* Metadata of one restored entry. */
static void check_meta(const char *dir, const char *rel, mode_t type, mode_t mode, uid_t uid, gid_t gid, int64_t mtime) {
        struct stat st;
        if (!ok(lstat(P(dir, rel), &st) == 0, "%s exists", rel))
                return;
        ok((st.st_mode & S_IFMT) == type, "%s has the right type (%o)", rel, (unsigned) (st.st_mode & S_IFMT));
        if (type != S_IFLNK)
                is(st.st_mode & 07777, mode, "%s mode %04o", rel, (unsigned) mode);
        ok(st.st_uid == uid && st.st_gid == gid, "%s owner %u:%u (got %u:%u)", rel, (unsigned) uid, (unsigned) gid,
           (unsigned) st.st_uid, (unsigned) st.st_gid);
        ok(mtime_is(&st, mtime), "%s mtime to the ns (%lld.%09ld)", rel, (long long) st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        ok(atime_is(&st, mtime - 3 * SEC + 17), "%s atime to the ns", rel);
}

static void check_full_tree(const char *dir) {
        struct stat st, st2;
        char buf[256];
        ssize_t n;

        /* Metadata first: reading the files would move their atimes. */
        check_meta(dir, "a", S_IFDIR, 0755, 0, 0, T0 + 7 * SEC + 123456789);
        check_meta(dir, "a/b", S_IFDIR, 0700, 0, 0, T0 + 3);
        check_meta(dir, "a/b/c", S_IFDIR, 0755, 0, 0, T0 + 2);
        check_meta(dir, "a/b/c/deep.txt", S_IFREG, 0644, 0, 0, T0 + 1);
        check_meta(dir, "a/hl2", S_IFREG, 0640, 1000, 1000, T0 + 4);
        check_meta(dir, "dangling", S_IFLNK, 0777, 0, 0, T0 + 8);
        check_meta(dir, "empty", S_IFREG, 0600, 0, 0, T0 + 9);
        check_meta(dir, "emptydir", S_IFDIR, 0750, 0, 0, T0 + 10);
        check_meta(dir, "fifo", S_IFIFO, 0640, 0, 0, T0 + 11);
        check_meta(dir, "link", S_IFLNK, 0777, 1000, 1000, T0 + 12);
        check_meta(dir, "null", S_IFCHR, 0666, 0, 0, T0 + 13);
        check_meta(dir, "sock", S_IFSOCK, 0755, 0, 0, T0 + 14);
        check_meta(dir, "sparse.bin", S_IFREG, 0644, 0, 0, T0 + 15 * SEC + 999999999);
        check_meta(dir, "sticky", S_IFDIR, 01777, 0, 0, T0 + 16);
        check_meta(dir, "sticky/f", S_IFREG, 0666, 1000, 1000, T0 + 5);
        check_meta(dir, "sub", S_IFDIR, 0755, 0, 0, T0 + 17);
        check_meta(dir, "suid", S_IFREG, 04755, 1234, 5678, T0 + 18);
        check_meta(dir, "three.bin", S_IFREG, 0644, 1000, 1000, T0 + 19 * SEC + 1);
        check_meta(dir, "xattr.txt", S_IFREG, 0640, 0, 0, T0 + 20);

        /* Hard links: one inode, two names in different directories. */
        if (lstat(P(dir, "hl1"), &st) == 0 && lstat(P(dir, "a/hl2"), &st2) == 0) {
                ok(st.st_ino == st2.st_ino && st.st_dev == st2.st_dev, "hl1 and a/hl2 are one inode");
                is(st.st_nlink, 2, "hl1 has two links");
        } else
                ok(false, "hl1 and a/hl2 exist");

        /* Special files. */
        ok(lstat(P(dir, "null"), &st) == 0 && st.st_rdev == makedev(1, 3), "null is device 1,3");
        n = readlink(P(dir, "link"), buf, sizeof buf);
        ok(n == 14 && memcmp(buf, "a/b/c/deep.txt", 14) == 0, "link points to a/b/c/deep.txt, verbatim");
        n = readlink(P(dir, "dangling"), buf, sizeof buf);
        ok(n == 14 && memcmp(buf, "does/not/exist", 14) == 0, "dangling symlink restored as is");

        /* xattrs and the ACL. */
        ok(same_xattr(P(dir, "xattr.txt"), "user.bin", xbin, sizeof xbin), "user.bin xattr holds its binary value");
        ok(same_xattr(P(dir, "xattr.txt"), "system.posix_acl_access", acl, sizeof acl),
           "system.posix_acl_access is the stored ACL, byte for byte");
        ok(lgetxattr(P(dir, "three.bin"), "system.posix_acl_access", buf, sizeof buf) < 0 && errno == ENODATA,
           "files without an ACL get none");

        /* The sparse file: size, allocation, holes where they were. */
        if (lstat(P(dir, "sparse.bin"), &st) == 0) {
                is(st.st_size, SP_SIZE, "sparse.bin has its full size");
                ok((uint64_t) st.st_blocks * 512 <= 4 * SP_DATA, "sparse.bin allocates only its data (%lld bytes of %u)",
                   (long long) st.st_blocks * 512, SP_SIZE);
        }
        {
                _cleanup_close_ int fd = open(P(dir, "sparse.bin"), O_RDONLY | O_CLOEXEC);
                is(lseek(fd, 0, SEEK_DATA), 0, "SEEK_DATA from 0");
                is(lseek(fd, 0, SEEK_HOLE), SP_DATA, "the first hole starts after the first chunk");
                is(lseek(fd, SP_DATA, SEEK_DATA), SP_DATA + SP_HOLE, "data resumes after the 4 MiB hole");
                is(lseek(fd, SP_DATA + SP_HOLE, SEEK_HOLE), 2 * SP_DATA + SP_HOLE, "the trailing hole starts after it");
                errno = 0;
                ok(lseek(fd, 2 * SP_DATA + SP_HOLE, SEEK_DATA) < 0 && errno == ENXIO, "no data in the trailing hole");
        }

        /* Bytes. */
        ok(same_bytes(P(dir, "three.bin"), three, THREE_SIZE), "three.bin: all three chunks, in order");
        ok(same_bytes(P(dir, "sparse.bin"), sparse, SP_SIZE), "sparse.bin: data and zeros");
        ok(same_bytes(P(dir, "empty"), "", 0), "empty is empty");
        ok(same_bytes(P(dir, "a/b/c/deep.txt"), deep, strlen(deep)), "deep.txt bytes");
        ok(same_bytes(P(dir, "hl1"), hl, HL_SIZE), "hard-linked file bytes");
        ok(same_bytes(P(dir, "suid"), suid, strlen(suid)), "suid bytes");
        ok(same_bytes(P(dir, "xattr.txt"), xfile, strlen(xfile)), "xattr.txt bytes");
        ok(same_bytes(P(dir, "sticky/f"), stickyf, strlen(stickyf)), "sticky/f bytes");
        ok(lstat(P(dir, "emptydir"), &st) == 0 && st.st_nlink == 2, "emptydir has no subdirectories");
}

/* The output of a failed check, as TAP comments. */
static void show(const char *out) {
        for (const char *p = out ? out : "(null)"; *p;) {
                const char *end = strchrnul(p, '\n');
                diag("| %.*s", (int) (end - p), p);
                p = *end ? end + 1 : end;
        }
}

static char *ls_to_string(struct cairn_repo *r, struct cairn_txn *t, const uint8_t root[32], const char *path,
                          struct bk_ls_options o, int *ret) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        *ret = bk_ls(r, t, root, path, &o, f);
        fclose(f);
        return buf;
}

static void test_resolve_and_read(struct cairn_repo *r, const uint8_t root[32]) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct cairn_entry e, sp;
        bool is_root = false;
        uint8_t buf[200000];

        if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0)
                BAIL_OUT("cannot begin a transaction");

        ok(bk_tree_resolve(t, root, "", &e, &is_root) == 0 && is_root && e.type == CAIRN_ENTRY_DIR &&
           memcmp(e.ref, root, 32) == 0, "\"\" is the root");
        is_root = false;
        ok(bk_tree_resolve(t, root, "/", &e, &is_root) == 0 && is_root, "\"/\" is the root");
        ok(bk_tree_resolve(t, root, "a/b/c/deep.txt", &e, &is_root) == 0 && !is_root && e.type == CAIRN_ENTRY_FILE &&
           e.size == strlen(deep), "a/b/c/deep.txt resolves to the file");
        ok(bk_tree_resolve(t, root, "//a//b/", &e, &is_root) == 0 && e.type == CAIRN_ENTRY_DIR && e.mtime_ns == T0 + 3,
           "//a//b/ resolves to a/b");
        is(bk_tree_resolve(t, root, "/nope", &e, NULL), -ENOENT, "a missing name is -ENOENT");
        is(bk_tree_resolve(t, root, "/a/nope/x", &e, NULL), -ENOENT, "a missing directory is -ENOENT");
        is(bk_tree_resolve(t, root, "/three.bin/x", &e, NULL), -ENOTDIR, "a file in the middle is -ENOTDIR");
        is(bk_tree_resolve(t, root, "/three.bin/", &e, NULL), -ENOTDIR, "a file with a trailing slash is -ENOTDIR");
        is(bk_tree_resolve(t, root, "/link/x", &e, NULL), -ENOTDIR, "symlinks are not followed");
        is(bk_tree_resolve(t, root, "/a/../three.bin", &e, NULL), -ENOENT, "\"..\" is no name");

        /* Content reads across chunk boundaries and holes. */
        if (bk_tree_resolve(t, root, "three.bin", &e, NULL) < 0)
                BAIL_OUT("cannot resolve three.bin");
        is(bk_content_pread(r, t, e.ref, buf, 20, THREE_A - 10), 20, "pread across the first chunk boundary");
        ok(memcmp(buf, three + THREE_A - 10, 20) == 0, "  returns the bytes of both chunks");
        is(bk_content_pread(r, t, e.ref, buf, 180000, 10000), 180000, "pread spanning three chunks");
        ok(memcmp(buf, three + 10000, 180000) == 0, "  returns the right bytes");
        is(bk_content_pread(r, t, e.ref, buf, 100, THREE_SIZE - 1), 1, "pread at the last byte is short");
        ok(buf[0] == three[THREE_SIZE - 1], "  and returns that byte");
        is(bk_content_pread(r, t, e.ref, buf, 100, THREE_SIZE), 0, "pread at the end returns 0");
        is(bk_content_pread(r, t, e.ref, buf, 100, UINT64_MAX), 0, "pread far past the end returns 0");

        if (bk_tree_resolve(t, root, "sparse.bin", &sp, NULL) < 0)
                BAIL_OUT("cannot resolve sparse.bin");
        memset(buf, 0xaa, sizeof buf);
        is(bk_content_pread(r, t, sp.ref, buf, 100, SP_DATA - 50), 100, "pread from data into a hole");
        ok(memcmp(buf, sparse + SP_DATA - 50, 100) == 0, "  data then zeros");
        memset(buf, 0xaa, sizeof buf);
        is(bk_content_pread(r, t, sp.ref, buf, 200, SP_DATA + SP_HOLE - 100), 200, "pread from a hole into data");
        ok(memcmp(buf, sparse + SP_DATA + SP_HOLE - 100, 200) == 0, "  zeros then data");
        memset(buf, 0xaa, sizeof buf);
        is(bk_content_pread(r, t, sp.ref, buf, 5000, SP_SIZE - 1000), 1000, "pread in the trailing hole is short at EOF");
        ok(buf[0] == 0 && buf[999] == 0 && buf[1000] == 0xaa, "  zeros, nothing written past the end");

        {
                uint8_t zero[32] = {}, unknown[32];
                memset(unknown, 0x5a, 32);
                is(bk_content_pread(r, t, zero, buf, 10, 0), 0, "the empty content reads nothing");
                is(bk_content_pread(r, t, unknown, buf, 10, 0), -ENOENT, "an unknown content is -ENOENT");
        }
}

static void test_ls(struct cairn_repo *r, const uint8_t root[32], const uint8_t bad_root[32]) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_free_ char *plain = NULL, *rec = NULL, *file = NULL, *sub = NULL, *lsuid = NULL, *llink = NULL,
                            *lnull = NULL, *json = NULL, *bad = NULL, *badj = NULL, *none = NULL;
        int k;

        if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0)
                BAIL_OUT("cannot begin a transaction");

        plain = ls_to_string(r, t, root, "/", (struct bk_ls_options) {}, &k);
        is(k, 0, "ls / succeeds");
        ok(plain && streq(plain, "/a/\n/dangling\n/empty\n/emptydir/\n/fifo\n/hl1\n/link\n/null\n/sock\n/sparse.bin\n"
                                 "/sticky/\n/sub/\n/suid\n/three.bin\n/xattr.txt\n"),
           "ls / lists the root's children, directories with a slash");

        rec = ls_to_string(r, t, root, "", (struct bk_ls_options) { .recursive = true }, &k);
        is(k, 0, "ls -R succeeds");
        ok(rec && streq(rec, "/a/\n/a/b/\n/a/b/c/\n/a/b/c/deep.txt\n/a/hl2\n/dangling\n/empty\n/emptydir/\n/fifo\n/hl1\n"
                             "/link\n/null\n/sock\n/sparse.bin\n/sticky/\n/sticky/f\n/sub/\n/sub/inner.txt\n/suid\n"
                             "/three.bin\n/xattr.txt\n"),
           "ls -R lists every entry, parents first");

        file = ls_to_string(r, t, root, "a//b/c/deep.txt", (struct bk_ls_options) {}, &k);
        if (!ok(k == 0 && file && streq(file, "/a/b/c/deep.txt\n"), "ls of a file prints that file"))
                show(file);
        sub = ls_to_string(r, t, root, "/a/", (struct bk_ls_options) {}, &k);
        ok(k == 0 && sub && streq(sub, "/a/b/\n/a/hl2\n"), "ls of a directory lists its children");

        lsuid = ls_to_string(r, t, root, "/suid", (struct bk_ls_options) { .long_format = true }, &k);
        if (!ok(k == 0 && lsuid && strncmp(lsuid, "-rwsr-xr-x ", 11) == 0 && strstr(lsuid, " 1234  5678 ") &&
                strstr(lsuid, " 18 2023-11-14T22:13:20Z /suid\n"), "ls -l of the setuid file"))
                show(lsuid);
        llink = ls_to_string(r, t, root, "/link", (struct bk_ls_options) { .long_format = true }, &k);
        if (!ok(k == 0 && llink && llink[0] == 'l' && strstr(llink, " /link -> a/b/c/deep.txt\n"), "ls -l of a symlink"))
                show(llink);
        lnull = ls_to_string(r, t, root, "/null", (struct bk_ls_options) { .long_format = true }, &k);
        if (!ok(k == 0 && lnull && strncmp(lnull, "crw-rw-rw- ", 11) == 0 && strstr(lnull, " 1, 3 "), "ls -l of a device"))
                show(lnull);
        free(lnull);
        lnull = ls_to_string(r, t, root, "/sticky", (struct bk_ls_options) { .long_format = true, .recursive = true }, &k);
        if (!ok(k == 0 && lnull && strncmp(lnull, "-rw-rw-rw- ", 11) == 0, "ls -l lists the children of a directory"))
                show(lnull);

        json = ls_to_string(r, t, root, "/", (struct bk_ls_options) { .json = true, .recursive = true }, &k);
        is(k, 0, "ls --json -R succeeds");
        {
                size_t lines = 0, parsed = 0;
                bool suid_ok = false, link_ok = false, hl_ok = false, null_ok = false, dir_ok = false;
                for (char *line = json, *end; line && *line; line = end + 1) {
                        json_error_t err;
                        json_t *o;
                        end = strchr(line, '\n');
                        if (!end)
                                break;
                        lines++;
                        o = json_loadb(line, (size_t) (end - line), 0, &err);
                        if (!o)
                                continue;
                        parsed++;
                        const char *path = json_string_value(json_object_get(o, "path"));
                        const char *type = json_string_value(json_object_get(o, "type"));
                        const char *mode = json_string_value(json_object_get(o, "mode"));
                        if (path && streq(path, "/suid"))
                                suid_ok = type && streq(type, "file") && mode && streq(mode, "4755") &&
                                          json_integer_value(json_object_get(o, "uid")) == 1234 &&
                                          json_integer_value(json_object_get(o, "gid")) == 5678 &&
                                          json_integer_value(json_object_get(o, "size")) == (json_int_t) strlen(suid) &&
                                          json_integer_value(json_object_get(o, "mtime_ns")) == T0 + 18 &&
                                          streq(json_string_value(json_object_get(o, "name")) ?: "", "suid");
                        if (path && streq(path, "/link")) {
                                const char *target = json_string_value(json_object_get(o, "target"));
                                link_ok = type && streq(type, "symlink") && target && streq(target, "a/b/c/deep.txt");
                        }
                        if (path && streq(path, "/a/hl2"))
                                hl_ok = json_integer_value(json_object_get(o, "hardlink_group")) == 42 &&
                                        json_integer_value(json_object_get(o, "nlink")) == 2;
                        if (path && streq(path, "/null"))
                                null_ok = type && streq(type, "chr") &&
                                          json_integer_value(json_object_get(o, "rdev_major")) == 1 &&
                                          json_integer_value(json_object_get(o, "rdev_minor")) == 3;
                        if (path && streq(path, "/sticky"))
                                dir_ok = type && streq(type, "dir") && mode && streq(mode, "1777");
                        json_decref(o);
                }
                is(lines, 21, "ls --json -R: one line per entry");
                is(parsed, lines, "ls --json -R: every line is a JSON object");
                ok(suid_ok, "json: the setuid file's name, type, mode, owner, size, mtime");
                ok(link_ok, "json: the symlink's target");
                ok(hl_ok, "json: hard-link group and link count");
                ok(null_ok, "json: device numbers");
                ok(dir_ok, "json: a directory's type and sticky mode");
        }

        bad = ls_to_string(r, t, bad_root, "/", (struct bk_ls_options) {}, &k);
        if (!ok(k == 0 && bad && streq(bad, "/bad\xff\\012name\n"), "plain ls escapes control bytes, keeps the others"))
                show(bad);
        badj = ls_to_string(r, t, bad_root, "/", (struct bk_ls_options) { .json = true }, &k);
        {
                json_error_t err;
                json_t *o = badj ? json_loads(badj, JSON_DISABLE_EOF_CHECK, &err) : NULL;
                const char *hex = json_string_value(json_object_get(o, "path_hex"));
                const char *name = json_string_value(json_object_get(o, "name"));
                ok(k == 0 && o && hex && streq(hex, "2f626164ff0a6e616d65") && name && streq(name, "bad\xef\xbf\xbd\nname"),
                   "json: a non-UTF-8 name is valid JSON with the exact bytes in hex");
                json_decref(o);
        }

        none = ls_to_string(r, t, root, "/nope", (struct bk_ls_options) {}, &k);
        is(k, -ENOENT, "ls of a missing path is -ENOENT");
        ok(!none || !*none, "  and prints nothing");
        free(none);
        none = ls_to_string(r, t, root, "/three.bin/x", (struct bk_ls_options) {}, &k);
        is(k, -ENOTDIR, "ls through a file is -ENOTDIR");
}

static void test_restore(struct cairn_repo *r, const uint8_t root[32], const char *tmp) {
        struct bk_restore_options ow = { .overwrite = true };
        struct bk_restore_stats st;
        struct stat sb;
        char full[4200], t2[4200], t3[4200], t4[4200], t5[4200], t6[4200], out[4200];

        /* 1. The whole snapshot. */
        snprintf(full, sizeof full, "%s/full", tmp);
        is(bk_restore(r, root, "/", full, NULL, &st), 0, "restore of the whole snapshot succeeds");
        ok(st.files == 10 && st.dirs == 6 && st.symlinks == 2 && st.others == 3 && st.errors == 0,
           "stats: %llu files, %llu dirs, %llu symlinks, %llu others, %llu errors", (unsigned long long) st.files,
           (unsigned long long) st.dirs, (unsigned long long) st.symlinks, (unsigned long long) st.others,
           (unsigned long long) st.errors);
        is(st.bytes, THREE_SIZE + 2 * SP_DATA + HL_SIZE + strlen(deep) + strlen(suid) + strlen(xfile) + strlen(inner) +
                     strlen(stickyf), "stats: data bytes written once per inode, holes excluded");
        check_full_tree(full);

        /* 2. A subdirectory: placed at target/<basename>; parents of the
         * target created. */
        snprintf(t2, sizeof t2, "%s/sub/dir/t2", tmp);
        is(bk_restore(r, root, "a/b", t2, NULL, &st), 0, "restore of a/b succeeds");
        ok(lstat(P(t2, "b"), &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 07777) == 0700 && mtime_is(&sb, T0 + 3),
           "a/b restored as target/b with its metadata");
        ok(same_bytes(P(t2, "b/c/deep.txt"), deep, strlen(deep)), "  with its contents");
        ok(lstat(P(t2, "a"), &sb) < 0 && lstat(P(t2, "c"), &sb) < 0, "  and nothing else");
        ok(st.dirs == 2 && st.files == 1, "  stats count its two dirs and one file");

        /* A single file, and one member of a hard-link group alone. */
        snprintf(t3, sizeof t3, "%s/t3", tmp);
        is(bk_restore(r, root, "/three.bin", t3, NULL, &st), 0, "restore of a single file");
        ok(same_bytes(P(t3, "three.bin"), three, THREE_SIZE), "  its bytes");
        is(bk_restore(r, root, "/a", t3, NULL, &st), 0, "restore of /a next to it");
        ok(lstat(P(t3, "a/hl2"), &sb) == 0 && sb.st_nlink == 1 && same_bytes(P(t3, "a/hl2"), hl, HL_SIZE),
           "  a hard link whose partner is outside the subtree is a plain file");
        is(bk_restore(r, root, "/nope", t3, NULL, &st), -ENOENT, "restore of a missing path is -ENOENT");
        is(bk_restore(r, root, "/three.bin/x", t3, NULL, &st), -ENOTDIR, "restore through a file is -ENOTDIR");

        /* 3. An existing file is refused, untouched, then replaced with
         * overwrite. */
        snprintf(t4, sizeof t4, "%s/t4", tmp);
        mkdir(t4, 0755);
        {
                _cleanup_close_ int fd = open(P(t4, "three.bin"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd < 0 || write_full(fd, "old", 3) < 0)
                        BAIL_OUT("cannot write t4/three.bin");
        }
        log_clear();
        is(bk_restore(r, root, "/three.bin", t4, NULL, &st), -EIO, "restore over an existing file fails");
        is(st.errors, 1, "  one error");
        ok(same_bytes(P(t4, "three.bin"), "old", 3), "  the file is untouched");
        ok(strstr(log_all, "t4/three.bin") != NULL, "  the message names the file");
        is(bk_restore(r, root, "/three.bin", t4, &ow, &st), 0, "with overwrite it succeeds");
        ok(same_bytes(P(t4, "three.bin"), three, THREE_SIZE) && lstat(P(t4, "three.bin"), &sb) == 0 &&
           (sb.st_mode & 07777) == 0644, "  and the file is replaced");
        is(bk_restore(r, root, "/a", t4, NULL, &st), 0, "restore of /a into t4");
        is(bk_restore(r, root, "/a", t4, NULL, &st), -EIO, "restoring it again without overwrite is refused");
        is(bk_restore(r, root, "/a", t4, &ow, &st), 0, "with overwrite it merges into the existing directories");
        ok(st.errors == 0 && st.files == 2 && same_bytes(P(t4, "a/b/c/deep.txt"), deep, strlen(deep)),
           "  and rewrites the files in them");

        /* 4. A symlink where the snapshot has a directory: never written
         * through; refused, then replaced with overwrite. */
        snprintf(out, sizeof out, "%s/outside", tmp);
        snprintf(t5, sizeof t5, "%s/t5", tmp);
        mkdir(out, 0755);
        mkdir(t5, 0755);
        if (symlink(out, P(t5, "sub")) < 0)
                BAIL_OUT("cannot create t5/sub");
        is(bk_restore(r, root, "/sub", t5, NULL, &st), -EIO, "a symlink in the way of a directory is refused");
        ok(lstat(P(t5, "sub"), &sb) == 0 && S_ISLNK(sb.st_mode), "  the symlink stays");
        ok(is_empty_dir(out), "  nothing written through it");
        is(bk_restore(r, root, "/sub", t5, &ow, &st), 0, "with overwrite the directory is restored");
        ok(lstat(P(t5, "sub"), &sb) == 0 && S_ISDIR(sb.st_mode) && same_bytes(P(t5, "sub/inner.txt"), inner, strlen(inner)),
           "  in place of the symlink");
        ok(is_empty_dir(out), "  and nothing was written through it");

        /* The same for a file and for the whole tree. */
        snprintf(t6, sizeof t6, "%s/t6", tmp);
        mkdir(t6, 0755);
        {
                _cleanup_close_ int fd = open(P(out, "victim"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd < 0 || write_full(fd, "victim", 6) < 0)
                        BAIL_OUT("cannot write outside/victim");
        }
        if (symlink(out, P(t6, "sub")) < 0 || symlink(P(out, "victim"), P(t6, "three.bin")) < 0 ||
            symlink(out, P(t6, "emptydir")) < 0)
                BAIL_OUT("cannot create symlinks in t6");
        is(bk_restore(r, root, "", t6, &ow, &st), 0, "restore over symlinks with overwrite succeeds");
        ok(same_bytes(P(out, "victim"), "victim", 6) && lstat(P(out, "inner.txt"), &sb) < 0,
           "  nothing outside the target changed");
        ok(lstat(P(t6, "three.bin"), &sb) == 0 && S_ISREG(sb.st_mode) && lstat(P(t6, "sub"), &sb) == 0 &&
           S_ISDIR(sb.st_mode) && lstat(P(t6, "emptydir"), &sb) == 0 && S_ISDIR(sb.st_mode),
           "  the symlinks were replaced by what the snapshot holds");
        check_full_tree(t6);
}

/* Tree ids the index does not know are errors, never empty directories. */
static void test_unknown_trees(struct cairn_repo *r, const uint8_t ghost_root[32], const char *tmp) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        _cleanup_free_ char *out = NULL, *rec = NULL;
        struct bk_restore_stats st;
        uint8_t unknown[32];
        char target[4200];
        struct stat sb;
        int k;

        memset(unknown, 0x66, 32);
        if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0)
                BAIL_OUT("cannot begin a transaction");
        is(bk_tree_resolve(t, unknown, "/", NULL, NULL), -ENOENT, "an unknown root tree is -ENOENT");
        out = ls_to_string(r, t, ghost_root, "/", (struct bk_ls_options) {}, &k);
        ok(k == 0 && out && streq(out, "/ghost/\n/z\n"), "ls lists a directory whose tree is unknown");
        rec = ls_to_string(r, t, ghost_root, "/", (struct bk_ls_options) { .recursive = true }, &k);
        is(k, -ENOENT, "but cannot descend into it");
        cairn_index_txn_abort(TAKE_PTR(t));

        snprintf(target, sizeof target, "%s/unknown", tmp);
        is(bk_restore(r, unknown, "/", target, NULL, &st), -ENOENT, "restore of an unknown root tree is -ENOENT");
        snprintf(target, sizeof target, "%s/ghost", tmp);
        log_clear();
        is(bk_restore(r, ghost_root, "/", target, NULL, &st), -EIO, "restore with an unknown directory tree is -EIO");
        ok(st.errors == 1 && st.files == 1 && same_bytes(P(target, "z"), inner, strlen(inner)),
           "  that directory fails, the rest is restored");
        ok(lstat(P(target, "ghost"), &sb) < 0 && strstr(log_all, "ghost/ghost") != NULL,
           "  the directory is not created empty, and the error names it");
}

/* Flip one byte in the middle data chunk of three.bin: that file fails,
 * is not left behind, and everything else restores. */
static void test_damage(struct cairn_repo *r, const uint8_t root[32], const char *tmp, const char *repo) {
        _cleanup_(cairn_index_txn_abortp) struct cairn_txn *t = NULL;
        struct cairn_chunk_loc loc;
        struct bk_restore_stats st;
        struct cairn_entry e;
        char rel[100], path[4300], target[4200], hex[65];
        uint8_t byte, buf[64];
        struct stat sb;

        if (cairn_index_txn_begin(cairn_repo_index(r), false, &t) < 0 || cairn_index_chunk_get(t, three_chunks[1], &loc) < 0)
                BAIL_OUT("cannot find the chunk to damage");
        cairn_pack_path(loc.pack, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", repo, rel);
        {
                _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
                off_t at = (off_t) (loc.offset + loc.stored_len / 2);
                if (fd < 0 || pread(fd, &byte, 1, at) != 1)
                        BAIL_OUT("cannot read the pack");
                byte ^= 0x40;
                if (pwrite(fd, &byte, 1, at) != 1)
                        BAIL_OUT("cannot damage the pack");
        }

        if (bk_tree_resolve(t, root, "three.bin", &e, NULL) < 0)
                BAIL_OUT("cannot resolve three.bin");
        log_clear();
        is(bk_content_pread(r, t, e.ref, buf, 10, THREE_A + 5), -EBADMSG, "pread of the damaged chunk is -EBADMSG");
        ok(strstr(log_all, hex_encode(three_chunks[1], 32, hex)) != NULL, "  logged with the chunk id");
        is(bk_content_pread(r, t, e.ref, buf, 10, 5), 10, "the other chunks still read");
        ok(memcmp(buf, three + 5, 10) == 0, "  correctly");
        cairn_index_txn_abort(TAKE_PTR(t));

        snprintf(target, sizeof target, "%s/damaged", tmp);
        log_clear();
        is(bk_restore(r, root, "/", target, NULL, &st), -EIO, "restore with a damaged chunk reports -EIO");
        is(st.errors, 1, "  exactly one entry failed");
        is(st.files, 9, "  every other file was restored");
        ok(strstr(log_all, "damaged/three.bin") != NULL && strstr(log_all, hex) != NULL,
           "  the error names the file and the chunk");
        ok(lstat(P(target, "three.bin"), &sb) < 0 && errno == ENOENT, "  no partial three.bin is left behind");
        ok(same_bytes(P(target, "sparse.bin"), sparse, SP_SIZE) && same_bytes(P(target, "hl1"), hl, HL_SIZE) &&
           same_bytes(P(target, "a/b/c/deep.txt"), deep, strlen(deep)), "  the other files have their bytes");
        ok(lstat(P(target, "a"), &sb) == 0 && mtime_is(&sb, T0 + 7 * SEC + 123456789), "  and directories their times");
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-restore"), *repo = NULL;
        struct cairn_repo_params p;
        struct cairn_pass_source none = { CAIRN_PASS_NONE, NULL };
        struct cairn_repo *r = NULL;
        struct cairn_store *s = NULL;
        uint8_t root[32], bad_root[32], ghost_root[32];

        cairn_log_set_handler(log_collect, NULL);
        if (asprintf(&repo, "%s/repo", tmp) < 0)
                BAIL_OUT("out of memory");
        cairn_repo_params_default(&p);
        p.encrypted = false;    /* so that the damage below is a plain SHA-256 mismatch */
        if (cairn_repo_create(repo, &p, &none) < 0 || cairn_repo_open(repo, &none, &r) < 0 || cairn_store_new(r, &s) < 0)
                BAIL_OUT("set-up failed: %s", log_all);
        build_tree(s, root);
        build_bad_names(s, bad_root);
        build_ghost(s, ghost_root);
        if (cairn_store_flush(s) < 0)
                BAIL_OUT("cannot flush the store");
        cairn_store_free(s);

        test_resolve_and_read(r, root);
        test_ls(r, root, bad_root);
        test_unknown_trees(r, ghost_root, tmp);
        if (geteuid() == 0) {
                test_restore(r, root, tmp);
                test_damage(r, root, tmp, repo);
        } else
                skip("restoring owners and device nodes needs root");

        cairn_repo_free(r);
        free(three);
        free(sparse);
        free(hl);
        test_rm_rf(tmp);
        return tap_done();
}
