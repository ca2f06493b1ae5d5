/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The two text parsers of configuration (first byte, low bit):
 *   0  the operator's INI file: bk_config_load() (backupd/conf.c, inih
 *      under our own line reader), the rest of the input being the file
 *   1  a repository's `config` (index/repo.c, reached through
 *      cairn_repo_open() on a directory holding it; key files are not
 *      read: no passphrase is given, so an encrypted config stops at
 *      -ENOKEY before any scrypt)
 * A config that loads must hold what conf.h promises: valid, distinct
 * job names, each findable by bk_config_job(), and a repository path.
 */
#include <ctype.h>
#include <stdbool.h>

#include "conf.h"
#include "fuzz.h"
#include "repo.h"
#include "util.h"

static char repo_dir[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        snprintf(repo_dir, sizeof repo_dir, "%s", fuzz_tmpdir("fuzz-config"));
        return 0;
}

static bool job_name_ok(const char *s) {
        size_t n = strlen(s);

        if (n < 1 || n > 64 || s[0] == '.')
                return false;
        for (; *s; s++)
                if (!isascii((unsigned char) *s) || !(isalnum((unsigned char) *s) || strchr("._-", *s)))
                        return false;
        return true;
}

static void fuzz_ini(const uint8_t *data, size_t size) {
        struct bk_config *c = NULL;
        char path[64];
        int fd, k;

        fd = fuzz_memfd("cairn.conf", data, size);
        if (fd < 0)
                return;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        k = bk_config_load(path, &c);
        close(fd);
        FUZZ_CHECK(k == 0 || k == -EINVAL || k == -ENOMEM);
        if (k < 0)
                return;
        FUZZ_CHECK(c && c->repo_path && c->repo_path[0] == '/');
        for (size_t i = 0; i < c->n_jobs; i++) {
                const struct bk_job *j = &c->jobs[i];

                FUZZ_CHECK(job_name_ok(j->name));
                FUZZ_CHECK(bk_config_job(c, j->name) == j);
                FUZZ_CHECK(j->n_paths > 0 || j->command || j->tar_command);
                FUZZ_CHECK(!j->command || j->filename);
                for (size_t p = 0; p < j->n_paths; p++)
                        FUZZ_CHECK(j->paths[p][0] == '/' && !strstr(j->paths[p], "//") &&
                                   !strstr(j->paths[p], "/../") && !strstr(j->paths[p], "/./"));
        }
        bk_config_free(c);
}

static void fuzz_repo_config(const uint8_t *data, size_t size) {
        struct cairn_repo *r = NULL;
        int k;

        if (fuzz_write_file(repo_dir, "config", data, size) < 0)
                return;
        k = cairn_repo_open(repo_dir, NULL, &r);
        FUZZ_CHECK((k == 0) == (r != NULL));
        if (k == 0) {
                /* Only an unencrypted config opens without a passphrase. */
                FUZZ_CHECK(!cairn_repo_params(r)->encrypted);
                FUZZ_CHECK(cairn_repo_codec(r) && cairn_repo_chunker(r) && cairn_repo_index(r));
        }
        cairn_repo_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 1)
                fuzz_repo_config(data + 1, size - 1);
        else
                fuzz_ini(data + 1, size - 1);
        return 0;
}
