/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The archive import path (backupd/source-tar.c): bk_backup_archive() on
 * hostile bytes, as `cairn import` runs it, into an unencrypted repository
 * made once per process, then the snapshot's trees built and stored
 * (bk_tree_store: every name and entry the archive produced is encoded
 * and walked again).  Nothing is committed: the pending pack is dropped
 * with the store, so the repository does not grow with the run.
 *
 * The first byte picks (bit 0) how the archive arrives: 0 a regular file
 * (seekable: every format, zip and 7-Zip from their central directory),
 * 1 a pipe (streamed; a zip or 7-Zip is spooled to a temporary file
 * first, as for stdin); and (bit 1) where it goes: the snapshot's root or
 * a directory "srv/data" below it, as a job's `directory =` does.
 */
#include <stdbool.h>

#include "backup.h"
#include "fuzz.h"
#include "repo.h"
#include "tree-build.h"
#include "util.h"

static struct cairn_repo *repo;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        struct cairn_repo_params p;
        char path[4200];

        fuzz_quiet();
        snprintf(path, sizeof path, "%s/repo", fuzz_tmpdir("fuzz-tar"));
        cairn_repo_params_default(&p);
        p.encrypted = false;
        if (cairn_repo_create(path, &p, NULL) < 0 || cairn_repo_open(path, NULL, &repo) < 0) {
                fprintf(stderr, "fuzz-tar: cannot make a repository at %s\n", path);
                abort();
        }
        /* zip/7-Zip on a pipe are spooled to $TMPDIR (else /var/tmp). */
        setenv("TMPDIR", fuzz_tmpdir("fuzz-tar"), 1);
        return 0;
}

/* A pipe holding all of @data, write end closed; -1 when it does not fit. */
static int pipe_of(const uint8_t *data, size_t size) {
        int p[2];
        size_t done = 0;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        if (size > 65536 && fcntl(p[1], F_SETPIPE_SZ, (int) size) < 0)
                goto fail;
        (void) fcntl(p[1], F_SETFL, O_NONBLOCK);
        while (done < size) {
                ssize_t n = write(p[1], data + done, size - done);
                if (n <= 0)
                        goto fail;
                done += (size_t) n;
        }
        close(p[1]);
        return p[0];
fail:
        close(p[0]);
        close(p[1]);
        return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char tag[] = "fuzz";
        static char *tags[] = { tag };
        struct bk_backup_options o = { .job = "fuzz", .no_incremental = true, .tags = tags, .n_tags = 1,
                                       .start_ns = 1700000000000000000 };
        struct bk_backup *b = NULL;
        uint8_t root[CAIRN_ID_SIZE];
        unsigned mode;
        int fd = -1, k;

        if (size < 1)
                return 0;
        mode = data[0];
        data++, size--;

        if (mode & 1)
                fd = pipe_of(data, size);
        if (fd < 0)
                fd = fuzz_memfd("archive", data, size);
        if (fd < 0)
                return 0;

        k = bk_backup_new(repo, &o, &b);
        if (k < 0) {
                close(fd);
                return 0;
        }
        k = bk_backup_archive(b, fd, "\"fuzz\"", mode & 2 ? "srv/data" : NULL);
        /* Any error is a fine answer to a hostile archive (it is logged and
         * no snapshot is made); what must not happen is a crash, a leak or
         * a tree that cannot be stored after the archive was accepted. */
        if (k == 0) {
                k = bk_tree_store(b->root, b->store, root);
                FUZZ_CHECK(k == 0 || k == -ENOMEM);
        }
        bk_backup_free(b);
        close(fd);
        return 0;
}
