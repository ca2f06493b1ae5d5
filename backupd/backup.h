/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One backup run of one job: sources in, one snapshot out.
 *
 *   bk_backup_new()            opens a store and finds the job's previous
 *                              snapshot (for incremental reuse)
 *   bk_backup_path()           a directory tree (or file) with all metadata
 *   bk_backup_command()        a command's stdout as one file
 *   bk_backup_tar_command()    a tar stream as a tree (source-tar.c)
 *   bk_backup_commit()         root tree, last pack, snapshot file
 *
 * Problems with single files (vanished, unreadable, changed while read)
 * are warnings recorded in the snapshot, which becomes partial; problems
 * that make the snapshot worthless (a failed command, a missing source,
 * a repository error) are returned as errors and nothing is committed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "repo.h"
#include "snapshot.h"
#include "store.h"
#include "tree-build.h"

struct bk_backup_options {
        const char *job;
        char **excludes;            /* fnmatch(3) globs: against the full path, and the base name */
        size_t n_excludes;
        bool one_file_system;
        bool no_incremental;        /* read every file even if unchanged */
        bool progress;              /* a progress line on stderr */
        char **tags;
        size_t n_tags;
        int64_t start_ns;           /* the snapshot's time (cairn import: the archive's); 0: now.
                                     * The end time is then this plus the run's duration. */
};

struct bk_backup {
        struct cairn_repo *repo;
        struct cairn_store *store;
        const struct bk_backup_options *opts;
        struct cairn_snapshot *snap;          /* being filled: stats, errors, log */
        struct cairn_snapshot *parent;        /* previous snapshot of the job, or NULL */
        struct cairn_txn *rtxn;               /* for parent tree lookups */
        struct bk_tree *root;
        struct bk_hardlinks *links;
        struct bk_pool *pool;                 /* hashing/compression workers (content.c) */
        struct bk_content *content;           /* the one content being written */
        uint64_t bytes_read;                  /* file and stream data read this run */
        uint64_t read_at_file_start;          /* bytes_read when the current file began (progress) */
        uint64_t files_unchanged;             /* reused from the parent without reading */
        int64_t last_progress_ns;
        uint64_t expected_bytes;              /* for the ETA, when known */
        int64_t run_start_ns;                 /* the clock when this run began */
};

int bk_backup_new(struct cairn_repo *r, const struct bk_backup_options *opts, struct bk_backup **ret);
struct bk_backup *bk_backup_free(struct bk_backup *b);

/* Back up @path (absolute) at the same path inside the snapshot.
 * -ENOENT (logged) when it does not exist. */
int bk_backup_path(struct bk_backup *b, const char *path);

/* Run @command (sh -c) and store its stdout as @filename at the root.
 * Its stderr goes into the snapshot's log.  A non-zero exit or a signal
 * is -ECHILD (logged with the status). */
int bk_backup_command(struct bk_backup *b, const char *command, const char *filename);

/* Run @command and store the tar stream on its stdout as a tree under
 * @dir ("" or NULL: the root).  Implemented in source-tar.c. */
int bk_backup_tar_command(struct bk_backup *b, const char *command, const char *dir);

/* Store the archive read from @fd as a tree under @dir, exactly as
 * bk_backup_tar_command stores a tar stream: the same normalization,
 * refusals and warnings.  Formats: tar in any compression, zip, 7-Zip,
 * cpio, ISO 9660, RAR, xar, LHA, CAB; read seekably when @fd is a regular
 * file, and a zip or 7-Zip archive on a pipe is first copied to an
 * unlinked file in $TMPDIR (else /var/tmp).  Messages name it as
 * "archive @name" (the caller quotes a path).  -EBADMSG (logged with the
 * archive and the entry where it went wrong) for a damaged, cut or
 * unrecognized archive.  Does not close @fd.  In source-tar.c. */
int bk_backup_archive(struct bk_backup *b, int fd, const char *name, const char *dir);

/* Record a warning: the snapshot becomes partial. */
void bk_backup_warn(struct bk_backup *b, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Streaming content: feed bytes and holes, get a content id. Used by
 * every source.  One content at a time per backup. */
struct bk_content;
int bk_content_begin(struct bk_backup *b, struct bk_content **ret);
int bk_content_write(struct bk_content *c, const void *data, size_t len);
int bk_content_hole(struct bk_content *c, uint64_t len);
/* Finish: *ret_id is the content id (all zero for an empty content),
 * *ret_size the total length including holes.  Frees @c. */
int bk_content_end(struct bk_content *c, uint8_t ret_id[CAIRN_ID_SIZE], uint64_t *ret_size);
void bk_content_abort(struct bk_content *c);

/* A running command of a source (command.c): stdout on @out, stderr
 * collected in @err. */
struct bk_child {
        pid_t pid;
        int out;
        int err;
};
#define BK_CHILD_INIT { .pid = -1, .out = -1, .err = -1 }
int bk_child_start(struct bk_backup *b, const char *command, struct bk_child *c);
/* Close stdout, wait, keep the tail of stderr in the snapshot's log;
 * *ret_last: its last non-empty line (malloc'd, "" when none). */
int bk_child_finish(struct bk_backup *b, const char *command, struct bk_child *c, int *ret_status, char **ret_last);
void bk_child_release(struct bk_child *c);
/* Log "job …: command … exited with status N: <last>" (or the signal); -ECHILD. */
int bk_child_failed(struct bk_backup *b, const char *command, int status, const char *last);

/* The progress line on stderr (rate-limited; no-op unless opts->progress). */
void bk_backup_progress(struct bk_backup *b);

/* Worker pool of content.c: created by bk_backup_new. */
int bk_pool_new(unsigned threads, struct bk_pool **ret);
struct bk_pool *bk_pool_free(struct bk_pool *p);
/* Free the content buffers kept between files. */
void bk_content_cache_free(struct bk_backup *b);

/* Store the root tree, flush, write the snapshot file. */
int bk_backup_commit(struct bk_backup *b, uint8_t ret_id[CAIRN_ID_SIZE]);
