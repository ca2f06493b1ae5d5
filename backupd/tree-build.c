/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "tree-build.h"
#include "util.h"

struct node {
        char *path;                     /* full relative path: the hash key ("" for the root) */
        const char *name;               /* last component, inside path */
        struct cairn_entry e;           /* e.target points at target */
        char *target;
        struct cairn_xattr *xa;         /* owned names and values */
        size_t n_xa;
        struct node **children;
        size_t n_children, cap_children;
};

/* Paths are looked up in a hash table, not by walking child lists: a tar
 * stream may put a million entries in one directory. */
struct bk_tree {
        struct node *root;
        struct node **slots;            /* open addressing on path */
        size_t n_slots, n_nodes;
};

static uint64_t hash_path(const char *p, size_t n) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (uint8_t) p[i]) * 0x100000001b3ULL;
        return h;
}

static void node_clear_meta(struct node *n) {
        free(n->target);
        n->target = NULL;
        for (size_t i = 0; i < n->n_xa; i++) {
                free((void *) n->xa[i].name);
                free((void *) n->xa[i].value);
        }
        free(n->xa);
        n->xa = NULL;
        n->n_xa = 0;
}

static void node_free(struct node *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n_children; i++)
                node_free(n->children[i]);
        free(n->children);
        node_clear_meta(n);
        free(n->path);
        free(n);
}

static void implicit_dir(struct cairn_entry *e) {
        *e = (struct cairn_entry) { .type = CAIRN_ENTRY_DIR, .mode = 040755, .nlink = 2 };
}

struct bk_tree *bk_tree_new(void) {
        struct bk_tree *t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        t->root = calloc(1, sizeof *t->root);
        t->n_slots = 1024;
        t->slots = calloc(t->n_slots, sizeof *t->slots);
        if (!t->root || !t->slots || !(t->root->path = strdup(""))) {
                free(t->slots);
                node_free(t->root);
                free(t);
                return NULL;
        }
        t->root->name = t->root->path;
        implicit_dir(&t->root->e);
        return t;
}

struct bk_tree *bk_tree_free(struct bk_tree *t) {
        if (!t)
                return NULL;
        node_free(t->root);
        free(t->slots);
        free(t);
        return NULL;
}

static struct node **slot_for(struct bk_tree *t, const char *path, size_t len) {
        size_t i = hash_path(path, len) & (t->n_slots - 1);
        while (t->slots[i] && !(strlen(t->slots[i]->path) == len && memcmp(t->slots[i]->path, path, len) == 0))
                i = (i + 1) & (t->n_slots - 1);
        return &t->slots[i];
}

static int grow(struct bk_tree *t) {
        size_t old_n = t->n_slots;
        struct node **old = t->slots;

        t->slots = calloc(old_n * 2, sizeof *t->slots);
        if (!t->slots) {
                t->slots = old;
                return -ENOMEM;
        }
        t->n_slots = old_n * 2;
        for (size_t i = 0; i < old_n; i++)
                if (old[i])
                        *slot_for(t, old[i]->path, strlen(old[i]->path)) = old[i];
        free(old);
        return 0;
}

static int set_meta(struct node *n, const struct cairn_entry *e, const struct cairn_xattr *xa, size_t n_xa) {
        node_clear_meta(n);
        n->e = *e;
        n->e.xattrs = NULL;
        n->e.xattrs_len = 0;
        n->e.n_xattrs = 0;
        n->e.target = NULL;
        if (e->target_len > 0) {
                n->target = malloc(e->target_len);
                if (!n->target)
                        return -ENOMEM;
                memcpy(n->target, e->target, e->target_len);
                n->e.target = n->target;
        }
        if (n_xa > 0) {
                n->xa = calloc(n_xa, sizeof *n->xa);
                if (!n->xa)
                        return -ENOMEM;
                for (size_t i = 0; i < n_xa; i++) {
                        char *name = malloc(xa[i].name_len + 1);
                        void *value = malloc(xa[i].value_len ? xa[i].value_len : 1);
                        if (!name || !value) {
                                free(name);
                                free(value);
                                return -ENOMEM;
                        }
                        memcpy(name, xa[i].name, xa[i].name_len);
                        name[xa[i].name_len] = 0;
                        memcpy(value, xa[i].value, xa[i].value_len);
                        n->xa[i] = (struct cairn_xattr) { name, xa[i].name_len, value, xa[i].value_len };
                        n->n_xa = i + 1;
                }
        }
        return 0;
}

static bool ref_zero(const uint8_t ref[CAIRN_ID_SIZE]) {
        static const uint8_t zero[CAIRN_ID_SIZE];
        return memcmp(ref, zero, CAIRN_ID_SIZE) == 0;
}

/* The node at path[0..len), created as an implicit directory if missing. */
static int get_node(struct bk_tree *t, const char *path, size_t len, bool create, struct node **ret) {
        struct node **slot, *parent, *n;
        const char *slash;
        int k;

        if (len == 0) {
                *ret = t->root;
                return 0;
        }
        slot = slot_for(t, path, len);
        if (*slot) {
                *ret = *slot;
                return 0;
        }
        if (!create)
                return -ENOENT;
        slash = memrchr(path, '/', len);
        if (!cairn_name_valid(slash ? slash + 1 : path, slash ? (size_t) (path + len - slash - 1) : len))
                return -EINVAL;
        k = get_node(t, path, slash ? (size_t) (slash - path) : 0, true, &parent);
        if (k < 0)
                return k;
        if (parent->e.type != CAIRN_ENTRY_DIR)
                return -ENOTDIR;
        if (!ref_zero(parent->e.ref))
                return -EEXIST;     /* below a subtree that is already stored */

        if ((t->n_nodes + 1) * 2 > t->n_slots) {
                k = grow(t);
                if (k < 0)
                        return k;
        }
        n = calloc(1, sizeof *n);
        if (!n || !(n->path = strndup(path, len))) {
                free(n);
                return -ENOMEM;
        }
        n->name = slash ? n->path + (slash - path) + 1 : n->path;
        implicit_dir(&n->e);
        if (parent->n_children == parent->cap_children) {
                size_t cap = parent->cap_children ? parent->cap_children * 2 : 8;
                struct node **c = realloc(parent->children, cap * sizeof *c);
                if (!c) {
                        node_free(n);
                        return -ENOMEM;
                }
                parent->children = c;
                parent->cap_children = cap;
        }
        parent->children[parent->n_children++] = n;
        *slot_for(t, path, len) = n;
        t->n_nodes++;
        *ret = n;
        return 0;
}

int bk_tree_add(struct bk_tree *t, const char *path, const struct cairn_entry *e,
                const struct cairn_xattr *xa, size_t n_xa) {
        struct node *n;
        size_t len = strlen(path);
        int k;

        if (len == 0 || path[0] == '/' || path[len - 1] == '/' || strstr(path, "//"))
                return -EINVAL;
        k = get_node(t, path, len, true, &n);
        if (k < 0)
                return k;
        if (n->n_children > 0 && (e->type != CAIRN_ENTRY_DIR || !ref_zero(e->ref)))
                return -EEXIST;
        return set_meta(n, e, xa, n_xa);
}

int bk_tree_set_root(struct bk_tree *t, const struct cairn_entry *e, const struct cairn_xattr *xa, size_t n_xa) {
        if (e->type != CAIRN_ENTRY_DIR)
                return -EINVAL;
        return set_meta(t->root, e, xa, n_xa);
}

static int store_node(struct node *n, struct cairn_store *s) {
        struct cairn_tree_builder *b;
        _cleanup_free_ uint8_t *blob = NULL;
        size_t len;
        int k = 0;

        if (n->e.type != CAIRN_ENTRY_DIR || !ref_zero(n->e.ref))
                return 0;
        b = cairn_tree_builder_new();
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; k >= 0 && i < n->n_children; i++) {
                struct node *c = n->children[i];
                k = store_node(c, s);
                if (k >= 0)
                        k = cairn_tree_builder_add(b, c->name, strlen(c->name), &c->e, c->xa, c->n_xa);
        }
        if (k >= 0)
                k = cairn_tree_builder_finish(b, &blob, &len);
        cairn_tree_builder_free(b);
        if (k >= 0)
                k = cairn_store_add(s, CAIRN_BLOB_TREE, blob, len, n->e.ref, NULL);
        return k;
}

int bk_tree_store(struct bk_tree *t, struct cairn_store *s, uint8_t ret_root[CAIRN_ID_SIZE]) {
        int k;
        memset(t->root->e.ref, 0, CAIRN_ID_SIZE);
        k = store_node(t->root, s);
        if (k < 0)
                return k;
        memcpy(ret_root, t->root->e.ref, CAIRN_ID_SIZE);
        return 0;
}

int bk_entry_xattrs(const struct cairn_entry *e, struct cairn_xattr **ret, size_t *ret_n) {
        struct cairn_xattr *xa = NULL;
        size_t cursor = 0, n = 0;
        int k;

        if (e->n_xattrs > 0) {
                xa = calloc(e->n_xattrs, sizeof *xa);
                if (!xa)
                        return -ENOMEM;
        }
        while (n < e->n_xattrs && (k = cairn_entry_xattr_next(e, &cursor, &xa[n])) > 0)
                n++;
        if (n < e->n_xattrs) {
                free(xa);
                return -EBADMSG;
        }
        *ret = xa;
        *ret_n = n;
        return 0;
}
