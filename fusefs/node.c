/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The inode table: one mutex over a chained hash table that doubles when
 * it fills.  Held only for pointer work, never across index reads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "util.h"

struct fs_nodes {
        pthread_mutex_t lock;
        struct fs_node **buckets;        /* protected by lock */
        size_t n_buckets, count;         /* protected by lock */
        struct fs_node root;             /* static: never in the table */
};

static uint64_t key_hash(uint64_t parent, const char *name, size_t len) {
        uint64_t h = 0xcbf29ce484222325ULL ^ (parent * 0x9e3779b97f4a7c15ULL);
        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t) name[i];
                h *= 0x100000001b3ULL;
        }
        return h ^ (h >> 29);
}

static bool key_eq(const struct fs_node *n, uint64_t parent, const char *name, size_t len) {
        return n->key_parent == parent && n->key_len == len && memcmp(n->key_name, name, len) == 0;
}

int fs_nodes_new(struct fs_nodes **ret) {
        struct fs_nodes *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->n_buckets = 1024;
        t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
        if (!t->buckets) {
                free(t);
                return -ENOMEM;
        }
        pthread_mutex_init(&t->lock, NULL);
        t->root.kind = FS_NODE_ROOT;
        t->root.type = CAIRN_ENTRY_DIR;
        t->root.ino = 1;
        t->root.nlookup = 1;
        *ret = t;
        return 0;
}

static void node_free(struct fs_node *n) {
        fs_snap_unref(n->snap);
        free(n->key_name);
        free(n->job);
        free(n->target);
        free(n->xattrs);
        free(n);
}

struct fs_nodes *fs_nodes_free(struct fs_nodes *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_buckets; i++)
                for (struct fs_node *n = t->buckets[i], *next; n; n = next) {
                        next = n->hnext;
                        node_free(n);
                }
        free(t->buckets);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

struct fs_node *fs_nodes_root(struct fs_nodes *t) {
        return &t->root;
}

static struct fs_node *find_locked(struct fs_nodes *t, uint64_t parent, const char *name, size_t len) {
        for (struct fs_node *n = t->buckets[key_hash(parent, name, len) & (t->n_buckets - 1)]; n; n = n->hnext)
                if (key_eq(n, parent, name, len))
                        return n;
        return NULL;
}

struct fs_node *fs_nodes_find_ref(struct fs_nodes *t, uint64_t key_parent, const char *name, size_t len) {
        struct fs_node *n;

        pthread_mutex_lock(&t->lock);
        n = find_locked(t, key_parent, name, len);
        if (n)
                n->nlookup++;
        pthread_mutex_unlock(&t->lock);
        return n;
}

struct fs_node *fs_nodes_peek(struct fs_nodes *t, uint64_t key_parent, const char *name, size_t len) {
        struct fs_node *n;

        pthread_mutex_lock(&t->lock);
        n = find_locked(t, key_parent, name, len);
        pthread_mutex_unlock(&t->lock);
        return n;
}

struct fs_node *fs_node_new(enum fs_node_kind kind, uint64_t key_parent, const char *name, size_t len) {
        struct fs_node *n = calloc(1, sizeof *n);
        if (!n)
                return NULL;
        n->key_name = malloc(len ? len : 1);
        if (!n->key_name) {
                free(n);
                return NULL;
        }
        memcpy(n->key_name, name, len);
        n->key_len = len;
        n->key_parent = key_parent;
        n->kind = kind;
        return n;
}

void fs_node_discard(struct fs_node *n) {
        if (n)
                node_free(n);
}

static void grow_locked(struct fs_nodes *t) {
        size_t nb = t->n_buckets * 2;
        struct fs_node **b = calloc(nb, sizeof *b);

        if (!b)
                return;   /* longer chains, still correct */
        for (size_t i = 0; i < t->n_buckets; i++)
                for (struct fs_node *n = t->buckets[i], *next; n; n = next) {
                        size_t j = key_hash(n->key_parent, n->key_name, n->key_len) & (nb - 1);
                        next = n->hnext;
                        n->hnext = b[j];
                        b[j] = n;
                }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = nb;
}

struct fs_node *fs_nodes_intern(struct fs_nodes *t, struct fs_node *n) {
        struct fs_node *old;
        size_t i;

        pthread_mutex_lock(&t->lock);
        old = find_locked(t, n->key_parent, n->key_name, n->key_len);
        if (old) {
                old->nlookup++;
                pthread_mutex_unlock(&t->lock);
                node_free(n);
                return old;
        }
        if (t->count + 1 > t->n_buckets)
                grow_locked(t);
        i = key_hash(n->key_parent, n->key_name, n->key_len) & (t->n_buckets - 1);
        n->nlookup = 1;
        n->hnext = t->buckets[i];
        t->buckets[i] = n;
        t->count++;
        pthread_mutex_unlock(&t->lock);
        return n;
}

void fs_nodes_forget(struct fs_nodes *t, struct fs_node *node, uint64_t n) {
        if (node == &t->root)
                return;
        pthread_mutex_lock(&t->lock);
        if (node->nlookup > n) {
                node->nlookup -= n;
                pthread_mutex_unlock(&t->lock);
                return;
        }
        struct fs_node **p = &t->buckets[key_hash(node->key_parent, node->key_name, node->key_len) & (t->n_buckets - 1)];
        while (*p && *p != node)
                p = &(*p)->hnext;
        if (*p) {
                *p = node->hnext;
                t->count--;
        }
        pthread_mutex_unlock(&t->lock);
        node_free(node);
}

size_t fs_nodes_count(struct fs_nodes *t) {
        size_t n;
        pthread_mutex_lock(&t->lock);
        n = t->count;
        pthread_mutex_unlock(&t->lock);
        return n;
}
