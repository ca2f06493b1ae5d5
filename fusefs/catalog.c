/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The catalog of jobs and snapshots, loaded from the index's snapshots
 * table.  Rows come sorted by (job, start time), so one pass builds the
 * jobs in order, and a merge walk along the previous catalog's job finds
 * the snapshot objects to reuse without parsing their records again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "log.h"
#include "snapshot.h"
#include "util.h"

static uint64_t mix64(uint64_t x) {
        /* splitmix64's finalizer */
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return x;
}

static uint64_t ino_fix(uint64_t x) {
        return x < 2 ? x + 2 : x;
}

uint64_t fs_ino_child(uint64_t parent_ino, const char *name, size_t len) {
        uint64_t h = 0xcbf29ce484222325ULL ^ mix64(parent_ino);
        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t) name[i];
                h *= 0x100000001b3ULL;
        }
        return ino_fix(mix64(h ^ len));
}

uint64_t fs_ino_hardlink(const uint8_t snap_id[CAIRN_ID_SIZE], uint64_t group) {
        uint64_t a, b;
        memcpy(&a, snap_id, sizeof a);
        memcpy(&b, snap_id + 8, sizeof b);
        return ino_fix(mix64(mix64(a ^ 0x686c6e6b) ^ b ^ mix64(group)));
}

static uint64_t ino_snap(const uint8_t id[CAIRN_ID_SIZE]) {
        uint64_t a, b;
        memcpy(&a, id, sizeof a);
        memcpy(&b, id + 16, sizeof b);
        return ino_fix(mix64(a) ^ b);
}

struct fs_snap *fs_snap_ref(struct fs_snap *s) {
        if (s)
                __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
        return s;
}

struct fs_snap *fs_snap_unref(struct fs_snap *s) {
        if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        free(s->job);
        free(s);
        return NULL;
}

struct fs_catalog *fs_catalog_ref(struct fs_catalog *c) {
        if (c)
                __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
        return c;
}

static void job_release(struct fs_job *j) {
        for (size_t i = 0; i < j->n_snaps; i++)
                fs_snap_unref(j->snaps[i].snap);
        free(j->snaps);
        free(j->name);
}

struct fs_catalog *fs_catalog_unref(struct fs_catalog *c) {
        if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        for (size_t i = 0; i < c->n_jobs; i++)
                job_release(&c->jobs[i]);
        free(c->jobs);
        free(c);
        return NULL;
}

static void catalog_unrefp(struct fs_catalog **c) {
        fs_catalog_unref(*c);
}

const struct fs_job *fs_catalog_job(const struct fs_catalog *c, const char *name, size_t len) {
        size_t lo = 0, hi = c->n_jobs;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const char *n = c->jobs[mid].name;
                size_t nl = strlen(n);
                int cmp = memcmp(n, name, MIN(nl, len));
                if (cmp == 0)
                        cmp = nl < len ? -1 : nl > len ? 1 : 0;
                if (cmp == 0)
                        return &c->jobs[mid];
                if (cmp < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const struct fs_job_snap *fs_job_snap(const struct fs_job *j, const char *name, size_t len) {
        /* Names sort like start times (ISO 8601, then the suffixes), but
         * only nearly: a linear scan from the end is simple and the
         * newest snapshots are the ones looked up. */
        for (size_t i = j->n_snaps; i-- > 0;)
                if (strlen(j->snaps[i].name) == len && memcmp(j->snaps[i].name, name, len) == 0)
                        return &j->snaps[i];
        return NULL;
}

const char *fs_job_latest_name(const struct fs_job *j) {
        for (size_t i = j->n_snaps; i-- > 0;)
                if (j->snaps[i].snap == j->latest)
                        return j->snaps[i].name;
        return "";
}

bool fs_job_equal(const struct fs_job *a, const struct fs_job *b) {
        if (!streq(a->name, b->name) || a->n_snaps != b->n_snaps || a->latest != b->latest)
                return false;
        for (size_t i = 0; i < a->n_snaps; i++)
                if (a->snaps[i].snap != b->snaps[i].snap || !streq(a->snaps[i].name, b->snaps[i].name))
                        return false;
        return true;
}

bool fs_catalog_equal(const struct fs_catalog *a, const struct fs_catalog *b) {
        if (!a || !b || a->n_jobs != b->n_jobs)
                return false;
        for (size_t i = 0; i < a->n_jobs; i++)
                if (!fs_job_equal(&a->jobs[i], &b->jobs[i]))
                        return false;
        return true;
}

struct load_ctx {
        struct fs_catalog *cat;
        const struct fs_catalog *prev;
        const struct fs_job *prev_job;   /* of the job being loaded, or NULL */
        size_t prev_pos;                 /* merge position in prev_job */
        size_t cap_jobs, cap_snaps;
};

static struct fs_snap *snap_from_row(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE],
                                     const char *json, size_t json_len) {
        _cleanup_(cairn_snapshot_freep) struct cairn_snapshot *rec = NULL;
        struct fs_snap *s;
        char hex[2 * CAIRN_ID_SIZE + 1];

        if (cairn_snapshot_from_json(json, json_len, &rec) < 0) {
                log_warning("Snapshot %s of job \"%s\": its index record does not parse; not shown",
                            hex_encode(id, CAIRN_ID_SIZE, hex), job);
                return NULL;
        }
        s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->refs = 1;
        s->job = strdup(job);
        if (!s->job) {
                free(s);
                return NULL;
        }
        memcpy(s->id, id, CAIRN_ID_SIZE);
        memcpy(s->root, rec->root, CAIRN_ID_SIZE);
        s->start_ns = start_ns;
        s->end_ns = rec->end_ns;
        s->partial = rec->status != CAIRN_SNAPSHOT_COMPLETE;
        s->ino = ino_snap(id);
        return s;
}

static int load_cb(const char *job, int64_t start_ns, const uint8_t id[CAIRN_ID_SIZE], const char *json,
                   size_t json_len, void *userdata) {
        struct load_ctx *x = userdata;
        struct fs_catalog *c = x->cat;
        struct fs_job *j = c->n_jobs ? &c->jobs[c->n_jobs - 1] : NULL;
        struct fs_snap *s = NULL;

        if (!j || !streq(j->name, job)) {
                if (c->n_jobs == x->cap_jobs) {
                        size_t cap = x->cap_jobs ? 2 * x->cap_jobs : 8;
                        struct fs_job *n = realloc(c->jobs, cap * sizeof *n);
                        if (!n)
                                return -ENOMEM;
                        c->jobs = n;
                        x->cap_jobs = cap;
                }
                j = &c->jobs[c->n_jobs];
                *j = (struct fs_job) { .name = strdup(job) };
                if (!j->name)
                        return -ENOMEM;
                j->ino = fs_ino_child(1, job, strlen(job));
                c->n_jobs++;
                x->cap_snaps = 0;
                x->prev_job = x->prev ? fs_catalog_job(x->prev, job, strlen(job)) : NULL;
                x->prev_pos = 0;
        }

        if (x->prev_job) {
                const struct fs_job *p = x->prev_job;
                while (x->prev_pos < p->n_snaps && p->snaps[x->prev_pos].snap->start_ns < start_ns)
                        x->prev_pos++;
                for (size_t i = x->prev_pos; i < p->n_snaps && p->snaps[i].snap->start_ns == start_ns; i++)
                        if (memcmp(p->snaps[i].snap->id, id, CAIRN_ID_SIZE) == 0) {
                                s = fs_snap_ref(p->snaps[i].snap);
                                break;
                        }
        }
        if (!s)
                s = snap_from_row(job, start_ns, id, json, json_len);
        if (!s)
                return 0;   /* logged (or out of memory: shown at the next reload) */

        if (j->n_snaps == x->cap_snaps) {
                size_t cap = x->cap_snaps ? 2 * x->cap_snaps : 16;
                struct fs_job_snap *n = realloc(j->snaps, cap * sizeof *n);
                if (!n) {
                        fs_snap_unref(s);
                        return -ENOMEM;
                }
                j->snaps = n;
                x->cap_snaps = cap;
        }
        j->snaps[j->n_snaps++] = (struct fs_job_snap) { .snap = s };
        return 0;
}

static void job_name_snaps(struct fs_job *j) {
        char prev[32] = "";
        unsigned same = 0;

        for (size_t i = 0; i < j->n_snaps; i++) {
                struct fs_job_snap *js = &j->snaps[i];
                char when[32], seq[16] = "";

                cairn_time_format(js->snap->start_ns, when, sizeof when);
                if (streq(when, prev))
                        same++;
                else {
                        same = 1;
                        memcpy(prev, when, sizeof prev);
                }
                if (same > 1)
                        snprintf(seq, sizeof seq, ".%u", same);
                snprintf(js->name, sizeof js->name, "%s%s%s", when, seq, js->snap->partial ? ".partial" : "");
                if (!js->snap->partial)
                        j->latest = js->snap;
        }
}

int fs_catalog_load(struct cairn_txn *t, const struct fs_catalog *prev, struct fs_catalog **ret) {
        _cleanup_(catalog_unrefp) struct fs_catalog *c = NULL;
        struct load_ctx x = { .prev = prev };
        int k;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->refs = 1;
        x.cat = c;
        k = cairn_index_snapshot_foreach(t, NULL, load_cb, &x);
        if (k < 0)
                return k;
        for (size_t i = 0; i < c->n_jobs; i++)
                job_name_snaps(&c->jobs[i]);
        *ret = TAKE_PTR(c);
        return 0;
}
