/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tar-command source: the archive a command writes on its stdout,
 * read with libarchive and stored as a browsable tree below a directory
 * of the snapshot.  `cairn import` (import.c) stores archive files the
 * same way (bk_backup_archive), in any of the formats listed there.
 *
 * The stream is untrusted (it often comes out of a container), so every
 * entry path is normalized and kept below its directory: ".." components,
 * names the format cannot hold, paths nested deeper than 1024 directories
 * and paths that would go through a symlink or a file are refused with a
 * warning.  Symlink targets are data, stored verbatim and never followed.
 * Hard links of the archive become hard-link groups.  A tar stream
 * carries no inode numbers to compare with the previous snapshot, so every
 * file is read; deduplication is what makes unchanged data cheap.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup.h"
#include "log.h"
#include "util.h"

#define TAR_READ_BLOCK (64u * 1024)     /* what libarchive asks of the pipe at a time */
#define TAR_WARN_MAX 1000               /* warnings listed one by one; the rest are counted */
#define TAR_WARN_PATH_HALF 400          /* a longer path is shown as its first and last 400 bytes */
#define TAR_NO_INODE SIZE_MAX
/* Names in one path, at most.  Restore and the other walks of a tree go
 * down one call (and one open directory) per level, and `cairn check`
 * takes a tree nested deeper than 4096 directories for a cycle in the
 * index: a hostile archive nested 20000 deep made a snapshot that check
 * called damaged and that crashed restore (stack overflow).  A 4096-byte
 * path holds at most 2048 names; real trees stay far below this. */
#define TAR_DEPTH_MAX 1024

/* The kernel's form of a POSIX ACL (the value of system.posix_acl_*). */
#define ACL_XATTR_VERSION 2
#define ACL_TAG_USER_OBJ 0x01
#define ACL_TAG_USER 0x02
#define ACL_TAG_GROUP_OBJ 0x04
#define ACL_TAG_GROUP 0x08
#define ACL_TAG_MASK 0x10
#define ACL_TAG_OTHER 0x20

/* What a non-directory entry stored: hard links of the archive name an
 * earlier path and must get the very same inode. */
struct tar_inode {
        uint8_t *enc;                   /* the encoded entry (tree.h), with content, target and xattrs */
        size_t enc_len;
        uint64_t group;                 /* 0 until a hard link names it */
        uint32_t nlink;                 /* names bound to it now */
};

struct tar_name {
        char *path;                     /* in the snapshot; NULL: a free slot */
        size_t inode;                   /* TAR_NO_INODE once something else took the name */
};

/* An archive file: libarchive's own fd reader cannot seek, and the zip
 * and 7-Zip readers need to (their directory is at the end of the file). */
struct tar_file {
        int fd;
        bool seekable;
        int spool;                      /* the temporary copy of a pipe, or -1 */
        size_t pending;                 /* bytes at the start of buf read ahead, not yet handed out */
        uint8_t buf[TAR_READ_BLOCK];
};

struct tar_source {
        struct bk_backup *b;
        const char *command;            /* NULL for an archive file */
        char *what;                     /* for messages: the tar stream of "CMD", archive "PATH" */
        int fd;                         /* the stream */
        char *dir;                      /* normalized, "" for the root */
        struct bk_child child;
        char *entry;                    /* path of the last header read, for damage messages */
        bool in_data;                   /* reading that entry's data */
        struct archive *a;
        struct tar_file *file;          /* the reader callbacks' state for an archive file; outlives @a */
        struct tar_name *slots;         /* open addressing on path */
        size_t n_slots, n_names;
        struct tar_inode *inodes;
        size_t n_inodes, cap_inodes;
        size_t n_groups;
        char *damage;                   /* why the stream cannot be used, once it is known */
        bool logged;                    /* an internal error was already logged */
        size_t n_warned, n_unlisted;
};

struct tar_xattrs {
        struct cairn_xattr *xa;         /* names and values borrowed from the entry or acl[] */
        size_t n, cap;
        uint8_t *acl[2];                /* access and default ACL in the kernel's form */
};

static void tar_xattrs_release(struct tar_xattrs *x) {
        free(x->xa);
        free(x->acl[0]);
        free(x->acl[1]);
        *x = (struct tar_xattrs) { 0 };
}

static void tar_source_release(struct tar_source *t) {
        if (t->a)
                archive_read_free(t->a);
        if (t->file && t->file->spool >= 0)
                close(t->file->spool);
        free(t->file);
        for (size_t i = 0; i < t->n_slots; i++)
                free(t->slots[i].path);
        free(t->slots);
        for (size_t i = 0; i < t->n_inodes; i++)
                free(t->inodes[i].enc);
        free(t->inodes);
        free(t->damage);
        free(t->dir);
        free(t->what);
        free(t->entry);
        bk_child_release(&t->child);
}

/* A warning about one entry: the snapshot becomes partial.  A hostile
 * stream can hold millions of bad entries, so only the first ones are
 * listed; the rest are counted into one last warning. */
__attribute__((format(printf, 3, 4)))
static void tar_warn(struct tar_source *t, const char *path, const char *fmt, ...) {
        char reason[1024], shown[2 * TAR_WARN_PATH_HALF + 8];
        size_t len = strlen(path);
        va_list ap;

        if (t->n_warned >= TAR_WARN_MAX) {
                t->n_unlisted++;
                return;
        }
        t->n_warned++;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof reason, fmt, ap);
        va_end(ap);
        /* A hostile path can be any length; cut in full, the log line
         * would end inside it and lose the name and the reason. */
        if (len > 2 * TAR_WARN_PATH_HALF) {
                snprintf(shown, sizeof shown, "%.*s...%s", TAR_WARN_PATH_HALF, path,
                         path + len - TAR_WARN_PATH_HALF);
                path = shown;
        }
        bk_backup_warn(t->b, path, "%s", reason);
}

/* The stream is unusable: keep libarchive's reason, and where in the
 * archive it was found, for the job's error. */
static int tar_damaged(struct tar_source *t, const char *why) {
        if (!t->damage) {
                const char *s = why ? why : archive_error_string(t->a);
                int n;

                if (!s)
                        s = "it is damaged or cut short";       /* libarchive does not always say */
                if (t->entry)
                        n = asprintf(&t->damage, "%s (%s entry \"%s\")", s, t->in_data ? "in" : "after", t->entry);
                else
                        n = asprintf(&t->damage, "%s", s);
                if (n < 0) {
                        t->damage = NULL;
                        return -ENOMEM;
                }
        }
        return -EBADMSG;
}

/* @base (already normalized) joined with the archive path @p: empty and
 * "." components dropped, so "./a//b/" and "/a/b" are both "a/b" below
 * @base.  *ret_why (and *ret NULL) when @p must be refused: a ".."
 * anywhere, or a name longer than a tree can hold.  An archive path that
 * names its own top ("./") gives @base itself. */
static int tar_path(const char *base, const char *p, char **ret, const char **ret_why) {
        size_t blen = strlen(base), depth = blen > 0;
        char *out, *w;

        *ret = NULL;
        *ret_why = NULL;
        out = malloc(blen + strlen(p) + 2);
        if (!out)
                return -ENOMEM;
        memcpy(out, base, blen);
        w = out + blen;
        for (size_t i = 0; i < blen; i++)
                depth += base[i] == '/';
        while (*p) {
                const char *end = strchrnul(p, '/');
                size_t n = (size_t) (end - p);
                bool name = n > 0 && !(n == 1 && p[0] == '.');

                if (n == 2 && p[0] == '.' && p[1] == '.')
                        *ret_why = "the path contains \"..\"";
                else if (n > CAIRN_NAME_MAX)
                        *ret_why = "a name in the path is longer than 255 bytes";
                else if (name && ++depth > TAR_DEPTH_MAX)
                        *ret_why = "the path is nested deeper than 1024 directories";
                if (*ret_why) {
                        free(out);
                        return 0;
                }
                if (name) {
                        if (w > out)
                                *w++ = '/';
                        memcpy(w, p, n);
                        w += n;
                }
                p = *end ? end + 1 : end;
        }
        *w = 0;
        *ret = out;
        return 0;
}

/* Names of the archive → inodes, for hard links. */
static uint64_t tar_hash(const char *p) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (; *p; p++)
                h = (h ^ (uint8_t) *p) * 0x100000001b3ULL;
        h ^= h >> 31;
        h *= 0xbf58476d1ce4e5b9ULL;
        return h ^ (h >> 29);
}

static struct tar_name *tar_slot(struct tar_name *slots, size_t n_slots, const char *path) {
        for (size_t i = tar_hash(path) & (n_slots - 1);; i = (i + 1) & (n_slots - 1))
                if (!slots[i].path || streq(slots[i].path, path))
                        return &slots[i];
}

static struct tar_name *tar_name_find(struct tar_source *t, const char *path) {
        struct tar_name *s;

        if (t->n_slots == 0)
                return NULL;
        s = tar_slot(t->slots, t->n_slots, path);
        return s->path && s->inode != TAR_NO_INODE ? s : NULL;
}

/* Bind @path to inode @ino; the inode it named before loses a link. */
static int tar_name_bind(struct tar_source *t, const char *path, size_t ino) {
        struct tar_name *s;

        if ((t->n_names + 1) * 2 > t->n_slots) {
                size_t n = t->n_slots ? t->n_slots * 2 : 1024;
                struct tar_name *slots = calloc(n, sizeof *slots);
                if (!slots)
                        return -ENOMEM;
                for (size_t i = 0; i < t->n_slots; i++)
                        if (t->slots[i].path)
                                *tar_slot(slots, n, t->slots[i].path) = t->slots[i];
                free(t->slots);
                t->slots = slots;
                t->n_slots = n;
        }
        s = tar_slot(t->slots, t->n_slots, path);
        if (!s->path) {
                s->path = strdup(path);
                if (!s->path)
                        return -ENOMEM;
                s->inode = TAR_NO_INODE;
                t->n_names++;
        }
        if (s->inode != TAR_NO_INODE)
                t->inodes[s->inode].nlink--;
        s->inode = ino;
        t->inodes[ino].nlink++;
        return 0;
}

/* A directory took the name: a later hard link to it is refused. */
static void tar_name_unbind(struct tar_source *t, const char *path) {
        struct tar_name *s = tar_name_find(t, path);

        if (s) {
                t->inodes[s->inode].nlink--;
                s->inode = TAR_NO_INODE;
        }
}

/* Takes @enc. */
static int tar_inode_new(struct tar_source *t, uint8_t *enc, size_t len, size_t *ret) {
        if (t->n_inodes == t->cap_inodes) {
                size_t cap = t->cap_inodes ? t->cap_inodes * 2 : 256;
                struct tar_inode *n = realloc(t->inodes, cap * sizeof *n);
                if (!n) {
                        free(enc);
                        return -ENOMEM;
                }
                t->inodes = n;
                t->cap_inodes = cap;
        }
        t->inodes[t->n_inodes] = (struct tar_inode) { .enc = enc, .enc_len = len };
        *ret = t->n_inodes++;
        return 0;
}

/* A group id that stays the same while the archive does (so unchanged
 * trees deduplicate) and is unique in the snapshot: a hash of the first
 * name's path and of the inode's place in the archive (a name can be
 * written again and linked again), odd like the path source's so it is
 * never 0. */
static uint64_t tar_group_id(const char *path, size_t inode) {
        uint64_t h = tar_hash(path) + (inode + 1) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 32;
        h *= 0xd6e8feb86659fd93ULL;
        return (h ^ (h >> 32)) | 1;
}

/* A bk_tree_add failure: a problem of this entry (a warning), or of the
 * run (returned). */
static int tar_refused(struct tar_source *t, const char *raw, int k) {
        switch (k) {
        case -ENOTDIR:
                tar_warn(t, raw, "refused: the path goes through a non-directory");
                return 0;
        case -EEXIST:
                tar_warn(t, raw, "refused: a directory with entries, or another source, is already there");
                return 0;
        case -EINVAL:
                tar_warn(t, raw, "refused: the name cannot be stored");
                return 0;
        default:
                return k;
        }
}

static uint8_t tar_type(mode_t ft) {
        switch (ft) {
        case AE_IFREG: return CAIRN_ENTRY_FILE;
        case AE_IFDIR: return CAIRN_ENTRY_DIR;
        case AE_IFLNK: return CAIRN_ENTRY_SYMLINK;
        case AE_IFIFO: return CAIRN_ENTRY_FIFO;
        case AE_IFCHR: return CAIRN_ENTRY_CHR;
        case AE_IFBLK: return CAIRN_ENTRY_BLK;
        case AE_IFSOCK: return CAIRN_ENTRY_SOCK;
        default: return 0;
        }
}

/* Seconds far outside of any real clock would overflow the ns field. */
static int64_t tar_time(int64_t sec, long nsec) {
        const int64_t lim = INT64_MAX / 1000000000 - 1;

        sec = MAX(MIN(sec, lim), -lim);
        if (nsec < 0 || nsec > 999999999)
                nsec = 0;
        return sec * 1000000000 + nsec;
}

static uint32_t tar_owner(struct tar_source *t, const char *raw, int64_t id, const char *what) {
        if (id >= 0 && id < UINT32_MAX)
                return (uint32_t) id;
        tar_warn(t, raw, "%s %" PRId64 " cannot be stored; stored as 65534", what, id);
        return 65534;
}

/* The entry's metadata; e->type is 0 for a type we cannot store. */
static void tar_meta(struct tar_source *t, struct archive_entry *ae, const char *raw, struct cairn_entry *e) {
        mode_t ft = archive_entry_filetype(ae);
        int64_t m_ns = 0, c_ns, a_ns;

        if (archive_entry_mtime_is_set(ae))
                m_ns = tar_time(archive_entry_mtime(ae), archive_entry_mtime_nsec(ae));
        /* Plain tar has the mtime only: use it for the others, as
         * extracting the archive would. */
        c_ns = m_ns;
        if (archive_entry_ctime_is_set(ae))
                c_ns = tar_time(archive_entry_ctime(ae), archive_entry_ctime_nsec(ae));
        a_ns = m_ns;
        if (archive_entry_atime_is_set(ae))
                a_ns = tar_time(archive_entry_atime(ae), archive_entry_atime_nsec(ae));
        *e = (struct cairn_entry) {
                .type = tar_type(ft),
                .mode = (uint32_t) (ft | (archive_entry_mode(ae) & 07777)),
                .uid = tar_owner(t, raw, archive_entry_uid(ae), "owner"),
                .gid = tar_owner(t, raw, archive_entry_gid(ae), "group"),
                .mtime_ns = m_ns,
                .ctime_ns = c_ns,
                .atime_ns = a_ns,
                .rdev = ft == AE_IFCHR || ft == AE_IFBLK ? (uint64_t) archive_entry_rdev(ae) : 0,
                .nlink = ft == AE_IFDIR ? 2 : 1,
        };
}

struct tar_acl_entry {
        uint16_t tag, perm;
        uint32_t id;
};

static int tar_acl_cmp(const void *x, const void *y) {
        const struct tar_acl_entry *a = x, *b = y;
        if (a->tag != b->tag)
                return a->tag < b->tag ? -1 : 1;
        return a->id < b->id ? -1 : a->id > b->id;
}

/* One POSIX.1e ACL that libarchive parsed from the archive (GNU tar's
 * --acls, bsdtar's pax headers) in the kernel's xattr form, so the mount
 * serves it and restore sets it like an ACL read from disk: version, then
 * (tag, perm, id) sorted by tag and id.  *ret NULL when the entry has none
 * or it is unusable (warned); *ret_mask the mask's permissions or -1. */
static int tar_acl(struct tar_source *t, struct archive_entry *ae, const char *raw, int type, uint8_t **ret,
                   size_t *ret_len, int *ret_mask) {
        _cleanup_free_ struct tar_acl_entry *ents = NULL;
        const char *what = type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? "access" : "default";
        int count, ae_type, perm, tag, id, mask = -1;
        unsigned group_class = 0, base = 0;
        bool named = false;
        const char *name;
        size_t n = 0, m = 0;
        uint8_t *buf;

        *ret = NULL;
        *ret_len = 0;
        *ret_mask = -1;
        count = archive_entry_acl_reset(ae, type);
        if (count <= 0)
                return 0;
        ents = calloc((size_t) count + 1, sizeof *ents);
        if (!ents)
                return -ENOMEM;
        while (n < (size_t) count &&
               archive_entry_acl_next(ae, type, &ae_type, &perm, &tag, &id, &name) == ARCHIVE_OK) {
                struct tar_acl_entry en = { .perm = (uint16_t) (perm & 7), .id = UINT32_MAX };

                switch (tag) {
                case ARCHIVE_ENTRY_ACL_USER_OBJ: en.tag = ACL_TAG_USER_OBJ; break;
                case ARCHIVE_ENTRY_ACL_USER: en.tag = ACL_TAG_USER; break;
                case ARCHIVE_ENTRY_ACL_GROUP_OBJ: en.tag = ACL_TAG_GROUP_OBJ; break;
                case ARCHIVE_ENTRY_ACL_GROUP: en.tag = ACL_TAG_GROUP; break;
                case ARCHIVE_ENTRY_ACL_MASK: en.tag = ACL_TAG_MASK; break;
                case ARCHIVE_ENTRY_ACL_OTHER: en.tag = ACL_TAG_OTHER; break;
                default: continue;
                }
                if (en.tag == ACL_TAG_USER || en.tag == ACL_TAG_GROUP) {
                        /* Names are not mapped: the stored ids are what the
                         * restored files will carry, as with owners. */
                        if (id < 0) {
                                tar_warn(t, raw, "%s ACL entry of \"%s\" has no numeric id; not kept", what,
                                         name ? name : "?");
                                continue;
                        }
                        en.id = (uint32_t) id;
                }
                ents[n++] = en;
        }
        if (n == 0)
                return 0;
        qsort(ents, n, sizeof *ents, tar_acl_cmp);
        /* The kernel refuses duplicates; keep the first of each. */
        for (size_t i = 0; i < n; i++)
                if (m == 0 || tar_acl_cmp(&ents[m - 1], &ents[i]) != 0)
                        ents[m++] = ents[i];
        n = m;
        for (size_t i = 0; i < n; i++) {
                switch (ents[i].tag) {
                case ACL_TAG_USER_OBJ:
                case ACL_TAG_OTHER:
                        base++;
                        break;
                case ACL_TAG_GROUP_OBJ:
                        base++;
                        group_class |= ents[i].perm;
                        break;
                case ACL_TAG_USER:
                case ACL_TAG_GROUP:
                        named = true;
                        group_class |= ents[i].perm;
                        break;
                case ACL_TAG_MASK:
                        mask = ents[i].perm;
                        break;
                }
        }
        if (base != 3) {
                tar_warn(t, raw, "incomplete %s ACL; not kept", what);
                return 0;
        }
        if (named && mask < 0) {
                /* Required with named entries; what setfacl would compute. */
                mask = (int) group_class;
                ents[n++] = (struct tar_acl_entry) { ACL_TAG_MASK, (uint16_t) mask, UINT32_MAX };
                qsort(ents, n, sizeof *ents, tar_acl_cmp);
        }
        buf = malloc(4 + 8 * n);
        if (!buf)
                return -ENOMEM;
        put_le32(buf, ACL_XATTR_VERSION);
        for (size_t i = 0; i < n; i++) {
                put_le16(buf + 4 + 8 * i, ents[i].tag);
                put_le16(buf + 6 + 8 * i, ents[i].perm);
                put_le32(buf + 8 + 8 * i, ents[i].id);
        }
        *ret = buf;
        *ret_len = 4 + 8 * n;
        *ret_mask = mask;
        return 0;
}

static int tar_xattr_push(struct tar_xattrs *x, const char *name, const void *value, size_t len) {
        if (x->n == x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 8;
                struct cairn_xattr *n = realloc(x->xa, cap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                x->xa = n;
                x->cap = cap;
        }
        x->xa[x->n++] = (struct cairn_xattr) { name, strlen(name), value, len };
        return 0;
}

static bool tar_xattr_has(const struct tar_xattrs *x, const char *name) {
        for (size_t i = 0; i < x->n; i++)
                if (streq(x->xa[i].name, name))
                        return true;
        return false;
}

/* Extended attributes as the archive carries them (pax SCHILY.xattr.*,
 * LIBARCHIVE.xattr.*), plus the POSIX ACLs libarchive parsed from their own
 * pax records turned into system.posix_acl_* unless those came as xattrs
 * already.  Borrowed from @ae until the next header. */
static int tar_xattrs(struct tar_source *t, struct archive_entry *ae, const char *raw, struct cairn_entry *e,
                      struct tar_xattrs *x) {
        static const int acl_types[2] = { ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT };
        static const char *const acl_names[2] = { "system.posix_acl_access", "system.posix_acl_default" };
        const char *name;
        const void *value;
        size_t size;
        int k;

        if (archive_entry_xattr_reset(ae) > 0)
                while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
                        size_t len = name ? strlen(name) : 0;
                        if (len == 0 || len > 255) {
                                tar_warn(t, raw, "extended attribute \"%.64s\" has no valid name; not kept",
                                         name ? name : "");
                                continue;
                        }
                        if (tar_xattr_has(x, name))
                                continue;
                        k = tar_xattr_push(x, name, value, size);
                        if (k < 0)
                                return k;
                }

        for (size_t i = 0; i < 2; i++) {
                size_t len;
                int mask;

                k = tar_acl(t, ae, raw, acl_types[i], &x->acl[i], &len, &mask);
                if (k < 0)
                        return k;
                /* libarchive folds the ACL's group entry into the mode it
                 * reports; with a mask the file's group bits are the mask's. */
                if (acl_types[i] == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && mask >= 0)
                        e->mode = (e->mode & ~070u) | (uint32_t) mask << 3;
                if (x->acl[i] && !tar_xattr_has(x, acl_names[i])) {
                        k = tar_xattr_push(x, acl_names[i], x->acl[i], len);
                        if (k < 0)
                                return k;
                }
        }
        if ((archive_entry_acl_types(ae) & ARCHIVE_ENTRY_ACL_TYPE_NFS4) && !tar_xattr_has(x, "system.nfs4_acl"))
                tar_warn(t, raw, "its NFSv4 ACL cannot be stored; not kept");
        return 0;
}

/* Stream the current entry's data into a content, block by block: the
 * blocks carry their offsets, and the gaps between them (a sparse file in
 * the archive) become holes, as does the end of a file declared longer
 * than its last block.  *ret_any: whether the entry had any data; with
 * @only_data and none, no content is made (a hard link without data). */
static int tar_read_data(struct tar_source *t, const char *raw, uint64_t size, bool only_data,
                         uint8_t ret_id[CAIRN_ID_SIZE], uint64_t *ret_size, bool *ret_any) {
        struct bk_backup *b = t->b;
        struct bk_content *c = NULL;
        bool warned = false;
        uint64_t pos = 0;
        int k;

        *ret_any = false;
        k = bk_content_begin(b, &c);
        if (k < 0)
                return k;
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                int r = archive_read_data_block(t->a, &buf, &len, &off);

                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        k = tar_damaged(t, NULL);
                        break;
                }
                if (r == ARCHIVE_WARN && !warned) {
                        tar_warn(t, raw, "%s", archive_error_string(t->a));
                        warned = true;
                }
                *ret_any = true;
                if (off < 0 || (uint64_t) off < pos) {
                        k = tar_damaged(t, "the blocks of a sparse file overlap");
                        break;
                }
                if ((uint64_t) off > pos) {
                        k = bk_content_hole(c, (uint64_t) off - pos);
                        if (k < 0)
                                break;
                        pos = (uint64_t) off;
                }
                if (len > 0) {
                        k = bk_content_write(c, buf, len);
                        if (k < 0)
                                break;
                        pos += len;
                        b->bytes_read += len;
                        bk_backup_progress(b);
                }
        }
        if (k >= 0 && size > pos && (*ret_any || !only_data))
                k = bk_content_hole(c, size - pos);
        if (k < 0 || (only_data && !*ret_any)) {
                bk_content_abort(c);
                return k;
        }
        return bk_content_end(c, ret_id, ret_size);
}

/* A hard link: @path becomes one more name of the inode stored at the
 * archive path @hl, which must be an earlier non-directory entry. */
static int tar_hardlink(struct tar_source *t, struct archive_entry *ae, const char *raw, const char *path,
                        const char *hl) {
        _cleanup_free_ char *target = NULL;
        _cleanup_free_ struct cairn_xattr *xa = NULL;
        struct tar_name *s;
        struct tar_inode *ino;
        struct cairn_entry e;
        const char *why;
        size_t n_xa = 0, idx;
        int k;

        k = tar_path(t->dir, hl, &target, &why);
        if (k < 0)
                return k;
        if (why) {
                tar_warn(t, raw, "refused: hard link to \"%s\": %s", hl, why);
                return 0;
        }
        s = tar_name_find(t, target);
        if (!s) {
                tar_warn(t, raw, "refused: hard link to \"%s\", which is not an earlier file of the archive", hl);
                return 0;
        }
        if (streq(target, path))
                return 0;       /* a link to itself: already that inode */
        idx = s->inode;
        ino = &t->inodes[idx];

        k = cairn_entry_decode(ino->enc, ino->enc_len, &e);
        if (k >= 0)
                k = bk_entry_xattrs(&e, &xa, &n_xa);
        if (k < 0)
                return k;
        if (ino->group == 0) {
                ino->group = tar_group_id(target, idx);
                t->n_groups++;
        }
        /* The link count is known at the end of the archive: provisional. */
        e.hardlink_group = ino->group;
        e.nlink = ino->nlink + 1;
        k = bk_tree_add(t->b->root, path, &e, xa, n_xa);
        if (k < 0)
                return tar_refused(t, raw, k);
        k = tar_name_bind(t, path, idx);
        if (k < 0 || e.type != CAIRN_ENTRY_FILE)
                return k;

        {
                /* pax lets a hard link carry data: the inode's new content. */
                uint8_t id[CAIRN_ID_SIZE];
                uint64_t size;
                uint8_t *enc;
                size_t len;
                bool any;

                k = tar_read_data(t, raw, (uint64_t) MAX(archive_entry_size(ae), 0), true, id, &size, &any);
                if (k < 0 || !any)
                        return k;
                memcpy(e.ref, id, CAIRN_ID_SIZE);
                e.size = size;
                e.nlink = 1;
                e.hardlink_group = 0;
                k = cairn_entry_encode(&e, xa, n_xa, &enc, &len);
                if (k < 0)
                        return k;
                ino = &t->inodes[idx];
                free(ino->enc);
                ino->enc = enc;
                ino->enc_len = len;
                t->b->snap->bytes += size;
        }
        return 0;
}

/* Any entry but a hard link. */
static int tar_node(struct tar_source *t, struct archive_entry *ae, const char *raw, const char *path) {
        _cleanup_(tar_xattrs_release) struct tar_xattrs x = { 0 };
        struct bk_backup *b = t->b;
        struct cairn_entry e;
        _cleanup_free_ uint8_t *enc = NULL;
        size_t len, idx;
        int k;

        tar_meta(t, ae, raw, &e);
        if (e.type == 0) {
                tar_warn(t, raw, "refused: unknown file type %o", (unsigned) archive_entry_filetype(ae));
                return 0;
        }
        k = tar_xattrs(t, ae, raw, &e, &x);
        if (k < 0)
                return k;

        if (streq(path, t->dir)) {
                /* "./": the top of the archive, i.e. @dir itself. */
                if (e.type != CAIRN_ENTRY_DIR) {
                        tar_warn(t, raw, "refused: the top of the archive is not a directory");
                        return 0;
                }
                k = t->dir[0] ? bk_tree_add(b->root, t->dir, &e, x.xa, x.n) : bk_tree_set_root(b->root, &e, x.xa, x.n);
                return k < 0 ? tar_refused(t, raw, k) : 0;
        }

        if (e.type == CAIRN_ENTRY_DIR) {
                k = bk_tree_add(b->root, path, &e, x.xa, x.n);
                if (k < 0)
                        return tar_refused(t, raw, k);
                tar_name_unbind(t, path);
                b->snap->dirs++;
                return 0;
        }

        if (e.type == CAIRN_ENTRY_SYMLINK) {
                const char *target = archive_entry_symlink(ae);
                if (!target || !*target) {
                        tar_warn(t, raw, "refused: a symbolic link without a target");
                        return 0;
                }
                e.target = target;
                e.target_len = strlen(target);
                e.size = e.target_len;
        }

        /* Placed before its data is read, so that a refused path costs no
         * reading or storing; a file gets its content afterwards. */
        k = bk_tree_add(b->root, path, &e, x.xa, x.n);
        if (k < 0)
                return tar_refused(t, raw, k);
        if (e.type == CAIRN_ENTRY_FILE) {
                bool any;
                k = tar_read_data(t, raw, (uint64_t) MAX(archive_entry_size(ae), 0), false, e.ref, &e.size, &any);
                if (k >= 0)
                        k = bk_tree_add(b->root, path, &e, x.xa, x.n);
                if (k < 0)
                        return k;
                b->snap->bytes += e.size;
        }
        b->snap->files++;

        k = cairn_entry_encode(&e, x.xa, x.n, &enc, &len);
        if (k >= 0)
                k = tar_inode_new(t, TAKE_PTR(enc), len, &idx);
        if (k >= 0)
                k = tar_name_bind(t, path, idx);
        return k;
}

static int tar_entry(struct tar_source *t, struct archive_entry *ae, const char *warning) {
        const char *raw = archive_entry_pathname(ae), *hl, *why;
        _cleanup_free_ char *path = NULL;
        int k;

        if (!raw) {
                tar_warn(t, "?", "refused: an entry without a usable path");
                return 0;
        }
        k = tar_path(t->dir, raw, &path, &why);
        if (k < 0)
                return k;
        if (why) {
                tar_warn(t, raw, "refused: %s", why);
                return 0;
        }
        /* A name that is not valid UTF-8 in a pax header (GNU tar writes
         * the file system's bytes there) is still handed over byte for
         * byte: nothing is lost, so it is no reason for a partial snapshot. */
        if (warning && strstr(warning, "can't be converted"))
                log_debug("job \"%s\": %s: %s (kept as is)", t->b->opts->job, raw, warning);
        else if (warning)
                tar_warn(t, raw, "%s", warning);
        hl = archive_entry_hardlink(ae);
        k = hl ? tar_hardlink(t, ae, raw, path, hl) : tar_node(t, ae, raw, path);
        if (k < 0 && k != -EBADMSG && !t->logged) {
                t->logged = true;
                return log_error_errno(k, "job \"%s\": cannot store \"%s\" of %s: %m", t->b->opts->job, raw,
                                       t->what);
        }
        return k;
}

/* Every name of an inode that has hard links gets the inode's final
 * metadata, content and link count. */
static int tar_finish_links(struct tar_source *t) {
        if (t->n_groups == 0)
                return 0;
        for (size_t i = 0; i < t->n_slots; i++) {
                struct tar_name *s = &t->slots[i];
                _cleanup_free_ struct cairn_xattr *xa = NULL;
                struct tar_inode *ino;
                struct cairn_entry e;
                size_t n_xa;
                int k;

                if (!s->path || s->inode == TAR_NO_INODE || t->inodes[s->inode].group == 0)
                        continue;
                ino = &t->inodes[s->inode];
                k = cairn_entry_decode(ino->enc, ino->enc_len, &e);
                if (k >= 0)
                        k = bk_entry_xattrs(&e, &xa, &n_xa);
                if (k >= 0) {
                        e.nlink = ino->nlink;
                        e.hardlink_group = ino->group;
                        k = bk_tree_add(t->b->root, s->path, &e, xa, n_xa);
                }
                if (k < 0)
                        return log_error_errno(k, "job \"%s\": cannot link %s in the snapshot: %m", t->b->opts->job,
                                               s->path);
        }
        return 0;
}

static la_ssize_t tar_file_read(struct archive *a, void *userdata, const void **ret) {
        struct tar_file *f = userdata;

        if (f->pending > 0) {
                *ret = f->buf;
                size_t n = f->pending;

                f->pending = 0;
                return (la_ssize_t) n;
        }
        for (;;) {
                ssize_t n = read(f->fd, f->buf, TAR_READ_BLOCK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        archive_set_error(a, errno, "read error: %s", strerror(errno));
                        return -1;
                }
                *ret = f->buf;
                return n;
        }
}

/* Skips stop at the end of the file, so that a cut archive is found
 * cut where it is, not one read later. */
static la_int64_t tar_file_skip(struct archive *a, void *userdata, la_int64_t request) {
        struct tar_file *f = userdata;
        struct stat st;
        off_t cur;

        if (!f->seekable || request <= 0 || fstat(f->fd, &st) < 0 || (cur = lseek(f->fd, 0, SEEK_CUR)) < 0)
                return 0;       /* libarchive reads instead */
        request = MIN(request, (la_int64_t) MAX(st.st_size - cur, 0));
        if (lseek(f->fd, (off_t) request, SEEK_CUR) < 0)
                return 0;
        return request;
}

static la_int64_t tar_file_seek(struct archive *a, void *userdata, la_int64_t offset, int whence) {
        struct tar_file *f = userdata;
        off_t o = lseek(f->fd, (off_t) offset, whence);

        if (o < 0) {
                archive_set_error(a, errno, "seek error: %s", strerror(errno));
                return ARCHIVE_FATAL;
        }
        return o;
}

/* A zip or 7-Zip archive keeps modes, symlinks and sizes in the
 * directory at its end, which a reader of a pipe never sees: one on a pipe
 * is copied to an unlinked temporary file ($TMPDIR, else /var/tmp) and read
 * from there.  Anything else is streamed, its first block handed to
 * libarchive from the read-ahead. */
static int tar_file_spool(struct tar_source *t, struct tar_file *f) {
        static const uint8_t zip[4] = { 'P', 'K', 3, 4 }, sevenzip[6] = { '7', 'z', 0xbc, 0xaf, 0x27, 0x1c };
        const char *dir = getenv("TMPDIR");
        ssize_t n = read_full(f->fd, f->buf, sizeof f->buf);
        int k;

        if (n < 0) {
                t->logged = true;
                return log_error_errno((int) n, "job \"%s\": reading %s: %m", t->b->opts->job, t->what);
        }
        f->pending = (size_t) n;
        if (!(n >= 4 && memcmp(f->buf, zip, 4) == 0) && !(n >= 6 && memcmp(f->buf, sevenzip, 6) == 0))
                return 0;

        if (!dir || !*dir)
                dir = "/var/tmp";
        f->spool = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (f->spool < 0) {
                t->logged = true;
                return log_error_errno(-errno, "job \"%s\": %s is a zip or 7-Zip archive on a pipe, which must be "
                                       "copied to a temporary file first, but none can be made in %s: %m",
                                       t->b->opts->job, t->what, dir);
        }
        log_info("job \"%s\": copying %s (zip or 7-Zip, on a pipe) to a temporary file in %s", t->b->opts->job,
                 t->what, dir);
        for (;;) {
                k = write_full(f->spool, f->buf, (size_t) n);
                if (k < 0) {
                        t->logged = true;
                        return log_error_errno(k, "job \"%s\": copying %s to a temporary file in %s: %m",
                                               t->b->opts->job, t->what, dir);
                }
                n = read_full(f->fd, f->buf, sizeof f->buf);
                if (n < 0) {
                        t->logged = true;
                        return log_error_errno((int) n, "job \"%s\": reading %s: %m", t->b->opts->job, t->what);
                }
                if (n == 0)
                        break;
        }
        if (lseek(f->spool, 0, SEEK_SET) < 0)
                return -errno;
        f->fd = f->spool;
        f->pending = 0;
        f->seekable = true;
        return 0;
}

static int tar_read(struct tar_source *t) {
        struct archive_entry *ae;
        struct stat st;
        int r, k;

        t->a = archive_read_new();
        if (!t->a)
                return -ENOMEM;
        (void) archive_read_support_filter_all(t->a);
        /* A stream: only tar (ustar, pax, GNU, v7): format_all would also
         * accept formats whose parsers are no use here and only widen what
         * a hostile stream can reach; "empty" names the empty stream.  An
         * archive the operator names may be in any common format, but not
         * mtree, whose entries name files on this host to read. */
        (void) archive_read_support_format_tar(t->a);
        (void) archive_read_support_format_empty(t->a);
        if (!t->command) {
                (void) archive_read_support_format_zip(t->a);
                (void) archive_read_support_format_7zip(t->a);
                (void) archive_read_support_format_cpio(t->a);
                (void) archive_read_support_format_iso9660(t->a);
                (void) archive_read_support_format_rar(t->a);
                (void) archive_read_support_format_rar5(t->a);
                (void) archive_read_support_format_xar(t->a);
                (void) archive_read_support_format_lha(t->a);
                (void) archive_read_support_format_cab(t->a);
        }
        if (t->command)
                r = archive_read_open_fd(t->a, t->fd, TAR_READ_BLOCK);
        else {
                t->file = malloc(sizeof *t->file);
                if (!t->file)
                        return -ENOMEM;
                t->file->fd = t->fd;
                t->file->spool = -1;
                t->file->pending = 0;
                t->file->seekable = fstat(t->fd, &st) == 0 && S_ISREG(st.st_mode) && lseek(t->fd, 0, SEEK_CUR) >= 0;
                if (!t->file->seekable) {
                        k = tar_file_spool(t, t->file);
                        if (k < 0)
                                return k;
                }
                (void) archive_read_set_callback_data(t->a, t->file);
                (void) archive_read_set_read_callback(t->a, tar_file_read);
                (void) archive_read_set_skip_callback(t->a, tar_file_skip);
                if (t->file->seekable)
                        (void) archive_read_set_seek_callback(t->a, tar_file_seek);
                r = archive_read_open1(t->a);
        }
        if (r != ARCHIVE_OK)
                return tar_damaged(t, NULL);
        for (;;) {
                const char *p;

                r = archive_read_next_header(t->a, &ae);
                if (r == ARCHIVE_EOF)
                        break;
                /* RETRY (a damaged header libarchive would skip) included:
                 * what follows it cannot be trusted to be complete. */
                if (r < ARCHIVE_WARN)
                        return tar_damaged(t, NULL);
                p = archive_entry_pathname(ae);
                free(t->entry);
                t->entry = strdup(p ? p : "?");
                if (!t->entry)
                        return -ENOMEM;
                t->in_data = true;
                k = tar_entry(t, ae, r == ARCHIVE_WARN ? archive_error_string(t->a) : NULL);
                t->in_data = false;
                if (k < 0)
                        return k;
        }
        if (archive_format(t->a) == ARCHIVE_FORMAT_EMPTY)
                return tar_damaged(t, t->command ? "the command wrote nothing, where a tar stream was expected"
                                                 : "the archive is empty (0 bytes)");
        return 0;
}

/* After the archive's end: read what the command still writes (the rest
 * of a tar record) so it does not die of SIGPIPE, and say so when that was
 * more than padding. */
static int tar_drain(struct tar_source *t) {
        uint8_t buf[16384];
        bool junk = false;

        for (;;) {
                ssize_t n = read(t->child.out, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        t->logged = true;
                        return log_error_errno(-errno, "job \"%s\": reading the output of \"%s\": %m", t->b->opts->job,
                                               t->command);
                }
                if (n == 0)
                        break;
                for (ssize_t i = 0; i < n && !junk; i++)
                        junk = buf[i] != 0;
        }
        if (junk)
                tar_warn(t, t->dir[0] ? t->dir : "/", "data after the end of the tar archive was ignored");
        return 0;
}

/* Normalize @dir and put the archive's top directory there. */
static int tar_begin(struct tar_source *t, const char *dir) {
        struct bk_backup *b = t->b;
        const char *why;
        int k;

        k = tar_path("", dir ? dir : "", &t->dir, &why);
        if (k < 0)
                return k;
        if (why)
                return log_error_errno(-EINVAL, "job \"%s\": directory \"%s\" for %s: %s", b->opts->job, dir, t->what,
                                       why);
        if (t->dir[0]) {
                /* Until the archive's own "./" says otherwise. */
                struct cairn_entry e = { .type = CAIRN_ENTRY_DIR, .mode = 040755, .nlink = 2, .uid = getuid(),
                                         .gid = getgid(), .mtime_ns = b->snap->start_ns,
                                         .ctime_ns = b->snap->start_ns, .atime_ns = b->snap->start_ns };
                k = bk_tree_add(b->root, t->dir, &e, NULL, 0);
                if (k < 0)
                        return log_error_errno(k, "job \"%s\": cannot place %s at %s: %s", b->opts->job, t->what,
                                               t->dir,
                                               k == -ENOTDIR || k == -EEXIST ? "another source is there"
                                                                             : strerror(-k));
        }
        return 0;
}

/* tar_read() in a UTF-8 ctype, the archive freed after. */
static int tar_read_utf8(struct tar_source *t) {
        locale_t utf8, old = (locale_t) 0;
        int k;

        /* pax names are UTF-8.  In a UTF-8 ctype libarchive hands them
         * over byte for byte; in the "C" locale of a program that never
         * called setlocale() every non-ASCII name would come with a
         * conversion warning.  Per thread, and the archive object keeps
         * the charset it saw first, so it holds until the archive is gone. */
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
        if (utf8)
                old = uselocale(utf8);
        k = tar_read(t);
        archive_read_free(t->a);
        t->a = NULL;
        if (utf8) {
                uselocale(old);
                freelocale(utf8);
        }
        return k;
}

/* After a complete archive: hard links, and the warnings not listed. */
static int tar_end(struct tar_source *t) {
        int k;

        k = tar_finish_links(t);
        if (k < 0)
                return k;
        if (t->n_unlisted > 0)
                bk_backup_warn(t->b, t->dir[0] ? t->dir : "/", "%zu more warnings about entries of %s (not listed)",
                               t->n_unlisted, t->what);
        return 0;
}

int bk_backup_tar_command(struct bk_backup *b, const char *command, const char *dir) {
        _cleanup_(tar_source_release) struct tar_source t = { .b = b, .command = command, .fd = -1,
                                                              .child = { .pid = -1, .out = -1, .err = -1 } };
        _cleanup_free_ char *last = NULL;
        int k, kf, status = 0;

        if (asprintf(&t.what, "the tar stream of \"%s\"", command) < 0) {
                t.what = NULL;
                return -ENOMEM;
        }
        k = tar_begin(&t, dir);
        if (k < 0)
                return k;

        k = bk_child_start(b, command, &t.child);
        if (k < 0)
                return k;
        t.fd = t.child.out;
        k = tar_read_utf8(&t);
        if (k >= 0)
                k = tar_drain(&t);

        kf = bk_child_finish(b, command, &t.child, &status, &last);
        if (k >= 0)
                k = kf;
        if (k < 0 && k != -EBADMSG && t.logged)
                return k;
        if (k < 0 && k != -EBADMSG)
                return log_error_errno(k, "job \"%s\": reading the tar stream of \"%s\": %m", b->opts->job, command);

        /* A failed command explains a cut stream better than the stream
         * does — unless it died of the SIGPIPE our stopping early sent. */
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
            !(k == -EBADMSG && WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE)) {
                if (t.damage)
                        log_debug("job \"%s\": the tar stream of \"%s\" ended early: %s", b->opts->job, command,
                                  t.damage);
                return bk_child_failed(b, command, status, last);
        }
        if (k == -EBADMSG)
                return log_error_errno(-EBADMSG, "job \"%s\": the tar stream of \"%s\" is damaged: %s", b->opts->job,
                                       command, t.damage ? t.damage : "unreadable archive");
        return tar_end(&t);
}

int bk_backup_archive(struct bk_backup *b, int fd, const char *name, const char *dir) {
        _cleanup_(tar_source_release) struct tar_source t = { .b = b, .fd = fd,
                                                              .child = { .pid = -1, .out = -1, .err = -1 } };
        int k;

        if (asprintf(&t.what, "archive %s", name) < 0) {
                t.what = NULL;
                return -ENOMEM;
        }
        k = tar_begin(&t, dir);
        if (k < 0)
                return k;
        k = tar_read_utf8(&t);
        if (k == -EBADMSG)
                return log_error_errno(-EBADMSG, "job \"%s\": archive %s is damaged or not an archive: %s",
                                       b->opts->job, name, t.damage ? t.damage : "unreadable archive");
        if (k < 0 && t.logged)
                return k;
        if (k < 0)
                return log_error_errno(k, "job \"%s\": reading archive %s: %m", b->opts->job, name);
        return tar_end(&t);
}
