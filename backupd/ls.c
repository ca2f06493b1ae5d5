/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "log.h"
#include "ls.h"
#include "restore.h"
#include "util.h"

struct ls_ctx {
        const struct bk_ls_options *o;
        FILE *out;
        char *path;              /* of the current entry: "/a/b" ("" at the root) */
        size_t path_len, path_cap;
};

static void tree_iter_freep(struct cairn_tree_iter **it) {
        cairn_index_tree_iter_free(*it);
}

static const char *type_name(uint8_t type) {
        switch (type) {
        case CAIRN_ENTRY_FILE: return "file";
        case CAIRN_ENTRY_DIR: return "dir";
        case CAIRN_ENTRY_SYMLINK: return "symlink";
        case CAIRN_ENTRY_FIFO: return "fifo";
        case CAIRN_ENTRY_CHR: return "chr";
        case CAIRN_ENTRY_BLK: return "blk";
        case CAIRN_ENTRY_SOCK: return "sock";
        default: return "unknown";
        }
}

static char type_char(uint8_t type) {
        switch (type) {
        case CAIRN_ENTRY_FILE: return '-';
        case CAIRN_ENTRY_DIR: return 'd';
        case CAIRN_ENTRY_SYMLINK: return 'l';
        case CAIRN_ENTRY_FIFO: return 'p';
        case CAIRN_ENTRY_CHR: return 'c';
        case CAIRN_ENTRY_BLK: return 'b';
        case CAIRN_ENTRY_SOCK: return 's';
        default: return '?';
        }
}

/* "drwsr-xr-t" into buf[11]. */
static char *mode_string(uint8_t type, uint32_t mode, char buf[11]) {
        static const char rwx[] = "rwxrwxrwx";

        buf[0] = type_char(type);
        for (int i = 0; i < 9; i++)
                buf[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
        if (mode & S_ISUID)
                buf[3] = buf[3] == 'x' ? 's' : 'S';
        if (mode & S_ISGID)
                buf[6] = buf[6] == 'x' ? 's' : 'S';
        if (mode & S_ISVTX)
                buf[9] = buf[9] == 'x' ? 't' : 'T';
        buf[10] = 0;
        return buf;
}

/* ISO 8601 UTC, second precision; floors, so times before 1970 are right. */
static char *time_string(int64_t ns, char *buf, size_t size) {
        time_t sec = (time_t) (ns / 1000000000 - (ns % 1000000000 < 0));
        struct tm tm;

        if (!gmtime_r(&sec, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "@%" PRId64, ns);
        return buf;
}

/* Bytes that would break the one-entry-per-line form (and the escape
 * character itself) as \ooo. */
static void put_escaped(FILE *out, const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char) s[i];
                if (ch < 0x20 || ch == 0x7f || ch == '\\')
                        fprintf(out, "\\%03o", ch);
                else
                        fputc(ch, out);
        }
}

/* Length of the valid UTF-8 sequence at @s (of @n bytes), 0 if invalid.
 * Overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2;
        else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                len = 3;
                if (s[0] == 0xe0)
                        lo = 0xa0;
                else if (s[0] == 0xed)
                        hi = 0x9f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                if (s[0] == 0xf0)
                        lo = 0x90;
                else if (s[0] == 0xf4)
                        hi = 0x8f;
        } else
                return 0;
        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
        return len;
}

/* Set @key to the bytes @s as a JSON string; if they are not UTF-8, with
 * U+FFFD for each invalid byte, and the exact bytes as hex in @hex_key. */
static int json_set_bytes(json_t *obj, const char *key, const char *hex_key, const char *s, size_t n) {
        _cleanup_free_ char *clean = malloc(3 * n + 1), *hex = NULL;
        const unsigned char *u = (const unsigned char *) s;
        size_t len = 0;
        bool changed = false;

        if (!clean)
                return -ENOMEM;
        for (size_t i = 0; i < n;) {
                size_t k = utf8_seq_len(u + i, n - i);
                if (k == 0) {
                        memcpy(clean + len, "\xef\xbf\xbd", 3);
                        len += 3;
                        i++;
                        changed = true;
                } else {
                        memcpy(clean + len, s + i, k);
                        len += k;
                        i += k;
                }
        }
        clean[len] = 0;
        if (json_object_set_new(obj, key, json_stringn(clean, len)) < 0)
                return -ENOMEM;
        if (!changed)
                return 0;
        hex = malloc(2 * n + 1);
        if (!hex)
                return -ENOMEM;
        if (json_object_set_new(obj, hex_key, json_string(hex_encode(u, n, hex))) < 0)
                return -ENOMEM;
        return 0;
}

/* Integers that may not fit json_int_t (a hard-link group is an opaque
 * 64-bit value) fall back to a decimal string rather than wrap. */
static json_t *json_u64(uint64_t v) {
        char buf[24];

        if (v <= (uint64_t) INT64_MAX)
                return json_integer((json_int_t) v);
        snprintf(buf, sizeof buf, "%" PRIu64, v);
        return json_string(buf);
}

static int print_json(struct ls_ctx *c, const char *name, size_t name_len, const struct cairn_entry *e) {
        json_auto_t *obj = json_object();
        char mode[8];
        int k;

        if (!obj)
                return -ENOMEM;
        snprintf(mode, sizeof mode, "%04o", (unsigned) (e->mode & 07777));
        k = json_set_bytes(obj, "name", "name_hex", name, name_len);
        if (k >= 0)
                k = json_set_bytes(obj, "path", "path_hex", c->path_len ? c->path : "/", c->path_len ? c->path_len : 1);
        if (k < 0)
                return k;
        if (json_object_set_new(obj, "type", json_string(type_name(e->type))) < 0 ||
            json_object_set_new(obj, "mode", json_string(mode)) < 0 ||
            json_object_set_new(obj, "uid", json_integer(e->uid)) < 0 ||
            json_object_set_new(obj, "gid", json_integer(e->gid)) < 0 ||
            json_object_set_new(obj, "size", json_u64(e->size)) < 0 ||
            json_object_set_new(obj, "mtime_ns", json_integer(e->mtime_ns)) < 0 ||
            json_object_set_new(obj, "nlink", json_integer(e->nlink)) < 0 ||
            json_object_set_new(obj, "hardlink_group", json_u64(e->hardlink_group)) < 0)
                return -ENOMEM;
        if (e->type == CAIRN_ENTRY_SYMLINK) {
                k = json_set_bytes(obj, "target", "target_hex", e->target, e->target_len);
                if (k < 0)
                        return k;
        }
        if (e->type == CAIRN_ENTRY_CHR || e->type == CAIRN_ENTRY_BLK) {
                if (json_object_set_new(obj, "rdev_major", json_integer(major((dev_t) e->rdev))) < 0 ||
                    json_object_set_new(obj, "rdev_minor", json_integer(minor((dev_t) e->rdev))) < 0)
                        return -ENOMEM;
        }
        if (json_dumpf(obj, c->out, JSON_COMPACT) < 0)
                return -EPIPE;
        fputc('\n', c->out);
        return 0;
}

static int print_entry(struct ls_ctx *c, const char *name, size_t name_len, const struct cairn_entry *e) {
        bool dir = e->type == CAIRN_ENTRY_DIR;

        if (c->o->json) {
                int k = print_json(c, name, name_len, e);
                return k < 0 ? k : ferror(c->out) ? -EPIPE : 0;
        }

        if (c->o->long_format) {
                char mode[11], size[48], when[64];

                if (e->type == CAIRN_ENTRY_CHR || e->type == CAIRN_ENTRY_BLK)
                        snprintf(size, sizeof size, "%u, %u", major((dev_t) e->rdev), minor((dev_t) e->rdev));
                else
                        snprintf(size, sizeof size, "%" PRIu64, e->size);
                fprintf(c->out, "%s %3" PRIu32 " %5" PRIu32 " %5" PRIu32 " %12s %s ",
                        mode_string(e->type, e->mode, mode), e->nlink, e->uid, e->gid, size,
                        time_string(e->mtime_ns, when, sizeof when));
        }

        put_escaped(c->out, c->path_len ? c->path : "/", c->path_len ? c->path_len : 1);
        if (dir && c->path_len)
                fputc('/', c->out);
        if (c->o->long_format && e->type == CAIRN_ENTRY_SYMLINK) {
                fputs(" -> ", c->out);
                put_escaped(c->out, e->target, e->target_len);
        }
        fputc('\n', c->out);
        /* -EPIPE here only means "output failed": stop walking. */
        return ferror(c->out) ? -EPIPE : 0;
}

static int path_push(struct ls_ctx *c, const char *name, size_t len, size_t *ret_saved) {
        size_t need = c->path_len + 1 + len + 1;

        if (need > c->path_cap) {
                size_t cap = MAX(need, c->path_cap * 2);
                char *p = realloc(c->path, cap);
                if (!p)
                        return -ENOMEM;
                c->path = p;
                c->path_cap = cap;
        }
        *ret_saved = c->path_len;
        c->path[c->path_len++] = '/';
        memcpy(c->path + c->path_len, name, len);
        c->path_len += len;
        c->path[c->path_len] = 0;
        return 0;
}

static void path_pop(struct ls_ctx *c, size_t saved) {
        c->path_len = saved;
        c->path[saved] = 0;
}

static int list_dir(struct ls_ctx *c, struct cairn_txn *t, const uint8_t tree[CAIRN_ID_SIZE]) {
        static const uint8_t zero[CAIRN_ID_SIZE];
        _cleanup_(tree_iter_freep) struct cairn_tree_iter *it = NULL;
        struct cairn_chunk_loc loc;
        char hex[2 * CAIRN_ID_SIZE + 1];
        int k;

        /* Without rows a tree is empty only if its blob is known; else the
         * index lacks it and an empty listing would be a lie. */
        if (memcmp(tree, zero, CAIRN_ID_SIZE) != 0) {
                k = cairn_index_chunk_get(t, tree, &loc);
                if (k < 0)
                        return log_error_errno(k, "Cannot list %s/: its tree %s is not in the index: %m",
                                               c->path_len ? c->path : "", hex_encode(tree, CAIRN_ID_SIZE, hex));
        }

        k = cairn_index_tree_iter_new(t, tree, NULL, 0, &it);
        if (k < 0)
                return log_error_errno(k, "Cannot list %s/: %m", c->path_len ? c->path : "");
        for (;;) {
                struct cairn_entry e;
                const char *name;
                size_t len, saved;

                k = cairn_index_tree_iter_next(it, &name, &len, &e);
                if (k < 0)
                        return log_error_errno(k, "Cannot list %s/: %m", c->path_len ? c->path : "");
                if (k == 0)
                        return 0;
                k = path_push(c, name, len, &saved);
                if (k < 0)
                        return k;
                k = print_entry(c, name, len, &e);
                if (k >= 0 && c->o->recursive && e.type == CAIRN_ENTRY_DIR)
                        k = list_dir(c, t, e.ref);
                path_pop(c, saved);
                if (k < 0)
                        return k;
        }
}

int bk_ls(struct cairn_repo *r, struct cairn_txn *t, const uint8_t root[CAIRN_ID_SIZE], const char *path,
          const struct bk_ls_options *o, FILE *out) {
        static const struct bk_ls_options defaults = {};
        struct ls_ctx c = { .o = o ? o : &defaults, .out = out };
        struct cairn_entry e;
        const char *p = path ? path : "", *last = NULL;
        size_t last_len = 0, saved;
        bool is_root;
        int k;

        k = bk_tree_resolve(t, root, p, &e, &is_root);
        if (k == -ENOENT)
                return log_error_errno(k, "Cannot list /%s: no such file or directory in the snapshot", p + strspn(p, "/"));
        if (k == -ENOTDIR)
                return log_error_errno(k, "Cannot list /%s: a component of the path is not a directory", p + strspn(p, "/"));
        if (k < 0)
                return log_error_errno(k, "Cannot list /%s: %m", p + strspn(p, "/"));

        /* Shown as resolved: "a//b/" is "/a/b". */
        for (;;) {
                const char *end;

                p += strspn(p, "/");
                if (!*p)
                        break;
                end = strchrnul(p, '/');
                k = path_push(&c, p, (size_t) (end - p), &saved);
                if (k < 0)
                        goto finish;
                last = p;
                last_len = (size_t) (end - p);
                p = end;
        }

        if (!is_root && e.type != CAIRN_ENTRY_DIR)
                k = print_entry(&c, last, last_len, &e);
        else
                k = list_dir(&c, t, e.ref);

finish:
        free(c.path);
        if (k == -ENOMEM)
                return log_error_errno(k, "Cannot list the snapshot: %m");
        if (k < 0 && k != -EPIPE)
                return k;           /* an index error, logged where it happened */
        if (k == -EPIPE || fflush(out) != 0 || ferror(out))
                return log_error_errno(-EIO, "Cannot write the listing: %m");
        return 0;
}
