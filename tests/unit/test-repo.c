/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Repository create/open, key files, passphrase sources, config checks, locks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "keyring.h"
#include "log.h"
#include "repo.h"
#include "tap.h"
#include "test-util.h"
#include "util.h"

static struct cairn_repo_params fast_params(bool encrypted) {
        struct cairn_repo_params p;
        cairn_repo_params_default(&p);
        p.encrypted = encrypted;
        p.scrypt_n = 1024;        /* keep the test quick; production default is 2^15 */
        return p;
}

static char *path_in(const char *dir, const char *name) {
        char *p;
        if (asprintf(&p, "%s/%s", dir, name) < 0)
                exit(1);
        return p;
}

static void write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
}

static mode_t mode_of(const char *path) {
        struct stat st;
        return stat(path, &st) < 0 ? 0 : st.st_mode & 07777;
}

static void test_encrypted(const char *tmp) {
        _cleanup_free_ char *repo = path_in(tmp, "enc"), *pwfile = path_in(tmp, "pw"), *keys = NULL;
        struct cairn_repo_params p = fast_params(true);
        struct cairn_pass_source right = { CAIRN_PASS_STRING, "correct horse" };
        struct cairn_pass_source wrong = { CAIRN_PASS_STRING, "battery staple" };
        struct cairn_repo *r = NULL;
        int k;

        is(cairn_repo_create(repo, &p, &right), 0, "create an encrypted repository");
        ok(mode_of(repo) == 0700, "repository directory is 0700");
        {
                _cleanup_free_ char *cfg = path_in(repo, "config");
                ok(mode_of(cfg) == 0600, "config is 0600");
        }
        is(cairn_repo_create(repo, &p, &right), -EEXIST, "create over an existing repository is -EEXIST");

        k = cairn_repo_open(repo, &wrong, &r);
        is(k, -EACCES, "a wrong passphrase is -EACCES");
        ok(strstr(test_last_log, "Wrong passphrase") && strstr(test_last_log, repo),
           "the message says wrong passphrase and names the repository: \"%s\"", test_last_log);
        ok(r == NULL, "no repository object on failure");

        is(cairn_repo_open(repo, NULL, &r), -ENOKEY, "no passphrase source for an encrypted repository is -ENOKEY");
        ok(strstr(test_last_log, "encrypted") != NULL, "and says it is encrypted: \"%s\"", test_last_log);

        is(cairn_repo_open(repo, &right, &r), 0, "the right passphrase opens");
        ok(r && cairn_repo_params(r)->encrypted, "it is encrypted");
        ok(r && cairn_codec_encrypted(cairn_repo_codec(r)), "its codec encrypts");
        if (r) {
                /* The id key must come from the master key, not the passphrase:
                 * reopen and check that ids are stable. */
                uint8_t a[32], b[32], sha[32];
                cairn_codec_id(cairn_repo_codec(r), "hello", 5, a);
                cairn_sha256("hello", 5, sha);
                r = cairn_repo_free(r);
                is(cairn_repo_open(repo, &right, &r), 0, "reopen");
                cairn_codec_id(cairn_repo_codec(r), "hello", 5, b);
                ok(memcmp(a, b, 32) == 0, "blob ids are stable across opens");
                ok(memcmp(a, sha, 32) != 0, "encrypted ids are not plain SHA-256");
                r = cairn_repo_free(r);
        }

        /* Passphrase from a file (trailing newline dropped), an environment variable, a command. */
        write_text(pwfile, "correct horse\n");
        chmod(pwfile, 0600);
        struct cairn_pass_source file = { CAIRN_PASS_FILE, pwfile };
        is(cairn_repo_open(repo, &file, &r), 0, "passphrase from a file opens");
        r = cairn_repo_free(r);

        setenv("TEST_CAIRN_PW", "correct horse", 1);
        struct cairn_pass_source env = { CAIRN_PASS_ENV, "TEST_CAIRN_PW" };
        is(cairn_repo_open(repo, &env, &r), 0, "passphrase from an environment variable opens");
        r = cairn_repo_free(r);

        struct cairn_pass_source unset = { CAIRN_PASS_ENV, "TEST_CAIRN_PW_UNSET" };
        unsetenv("TEST_CAIRN_PW_UNSET");
        is(cairn_repo_open(repo, &unset, &r), -ENOKEY, "an unset variable is -ENOKEY");
        ok(strstr(test_last_log, "TEST_CAIRN_PW_UNSET") != NULL, "naming the variable: \"%s\"", test_last_log);

        struct cairn_pass_source cmd = { CAIRN_PASS_COMMAND, "printf 'correct horse\\n'" };
        is(cairn_repo_open(repo, &cmd, &r), 0, "passphrase from a command opens");
        r = cairn_repo_free(r);

        struct cairn_pass_source badcmd = { CAIRN_PASS_COMMAND, "echo 'correct horse'; exit 3" };
        is(cairn_repo_open(repo, &badcmd, &r), -ECHILD, "a failing passphrase command is an error even with output");
        ok(strstr(test_last_log, "exit status 3") != NULL, "naming its status: \"%s\"", test_last_log);

        struct cairn_pass_source missing = { CAIRN_PASS_FILE, "/nonexistent/cairn-pw" };
        is(cairn_repo_open(repo, &missing, &r), -ENOENT, "a missing passphrase file is -ENOENT");
        ok(strstr(test_last_log, "/nonexistent/cairn-pw") != NULL, "naming the file: \"%s\"", test_last_log);

        write_text(pwfile, "\n");
        is(cairn_repo_open(repo, &file, &r), -ENOKEY, "an empty passphrase is refused");

        /* The key file is the only place the master key lives: damage to it
         * is a clear error, not a crash or a silent different key. */
        keys = path_in(repo, "keys");
        {
                DIR *d = opendir(keys);
                struct dirent *de;
                char kf[4200] = "";
                while (d && (de = readdir(d)))
                        if (de->d_name[0] != '.')
                                snprintf(kf, sizeof kf, "%s/%s", keys, de->d_name);
                if (d)
                        closedir(d);
                ok(kf[0] && mode_of(kf) == 0600, "key file exists, mode 0600");
                _cleanup_free_ char *text = NULL;
                read_file_at(AT_FDCWD, kf, 65536, &text, NULL);
                char *key = text ? strstr(text, "key = ") : NULL;
                if (key) {
                        key[10] = key[10] == '0' ? '1' : '0';   /* flip a nibble of the sealed key */
                        write_text(kf, text);
                }
                is(cairn_repo_open(repo, &right, &r), -EACCES, "a damaged sealed key does not open");
        }
}

/* Replace the first @from in FILE by @to. */
static bool edit_file(const char *file, const char *from, const char *to) {
        _cleanup_free_ char *text = NULL, *out = NULL;
        char *at;

        if (read_file_at(AT_FDCWD, file, 65536, &text, NULL) < 0 || !(at = strstr(text, from)))
                return false;
        *at = 0;
        if (asprintf(&out, "%s%s%s", text, to, at + strlen(from)) < 0)
                return false;
        write_text(file, out);
        return true;
}

static char *only_key_file(const char *repo) {
        _cleanup_free_ char *keys = path_in(repo, "keys");
        DIR *d = opendir(keys);
        struct dirent *de;
        char *kf = NULL;

        while (d && (de = readdir(d)))
                if (de->d_name[0] != '.' && !kf)
                        kf = path_in(keys, de->d_name);
        if (d)
                closedir(d);
        return kf;
}

static void test_key_cache(const char *tmp) {
        _cleanup_free_ char *repo = path_in(tmp, "cached"), *cfg = path_in(repo, "config"), *kf = NULL;
        _cleanup_free_ char *text = NULL;
        struct cairn_repo_params p = fast_params(true);
        struct cairn_pass_source right = { CAIRN_PASS_STRING, "correct horse" };
        struct cairn_pass_source wrong = { CAIRN_PASS_STRING, "battery staple" };
        struct cairn_pass_source right_nocache = { CAIRN_PASS_STRING, "correct horse", .key_cache = -1 };
        struct cairn_repo *r = NULL;
        char name[80] = "cairn:", *id;
        uint8_t buf[256];
        static const struct {
                const char *s;
                int k, seconds;
        } parse[] = {
                { "off", 0, -1 }, { "no", 0, -1 }, { "0", 0, -1 }, { "90", 0, 90 }, { "90s", 0, 90 },
                { "12h", 0, 43200 }, { "1d", 0, 86400 }, { "5m", 0, 300 }, { "30d", 0, 30 * 86400 },
                { "31d", -EINVAL, 0 }, { "", -EINVAL, 0 }, { "x", -EINVAL, 0 }, { "5q", -EINVAL, 0 },
                { "-1", -EINVAL, 0 }, { "1dd", -EINVAL, 0 }, { "0s", -EINVAL, 0 }, { "yes", -EINVAL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(parse); i++) {
                int v = 12345, k = cairn_key_cache_parse(parse[i].s, &v);
                ok(k == parse[i].k && (k < 0 || v == parse[i].seconds), "key_cache \"%s\": %d, %d",
                   parse[i].s, k, v);
        }

        is(cairn_repo_create(repo, &p, &right), 0, "create a repository for the key cache");
        kf = only_key_file(repo);
        read_file_at(AT_FDCWD, cfg, 65536, &text, NULL);
        id = text ? strstr(text, "\nid = ") : NULL;
        ok(id != NULL, "its config has an id");
        if (!id || !kf)
                return;
        snprintf(name + 6, 33, "%s", id + 6);
        (void) cairn_keyring_forget(name);

        is(cairn_repo_open(repo, &right_nocache, &r), 0, "opens with key_cache off");
        r = cairn_repo_free(r);
        is(cairn_keyring_get(name, buf, sizeof buf), -ENOKEY, "and leaves nothing in the keyring");

        is(cairn_repo_open(repo, &right, &r), 0, "opens with the default key cache");
        r = cairn_repo_free(r);
        is(cairn_keyring_get(name, buf, sizeof buf), 32 + 28, "the keyring holds %s: the master key, sealed", name);
        ok(memmem(buf, sizeof buf, "correct horse", 13) == NULL, "not the passphrase");

        /* With other scrypt parameters the KDF gives another wrap key: the
         * key file no longer opens by scrypt, so opening now shows which
         * path was taken. */
        ok(edit_file(kf, "scrypt-n = 1024", "scrypt-n = 2048"), "change the key file's scrypt N");
        is(cairn_repo_open(repo, &right, &r), 0, "the right passphrase opens from the keyring, without scrypt");
        ok(r && cairn_codec_encrypted(cairn_repo_codec(r)), "with the keys");
        r = cairn_repo_free(r);
        is(cairn_repo_open(repo, &wrong, &r), -EACCES, "a wrong passphrase still does not open");
        ok(strstr(test_last_log, "Wrong passphrase") != NULL, "saying so: \"%s\"", test_last_log);
        is(cairn_repo_open(repo, &right_nocache, &r), -EACCES, "with key_cache off scrypt runs (and fails here)");
        is(cairn_keyring_get(name, buf, sizeof buf), -ENOKEY, "and key_cache off forgets the entry");

        ok(edit_file(kf, "scrypt-n = 2048", "scrypt-n = 1024"), "restore the key file");
        is(cairn_repo_open(repo, &right, &r), 0, "open again: cached again");
        r = cairn_repo_free(r);
        ok(edit_file(kf, "salt = ", "salt = 00") && edit_file(kf, "salt = 00", "salt = ") &&
           edit_file(kf, "scrypt-n = 1024", "scrypt-n = 2048"), "change N again");
        {
                _cleanup_free_ char *kt = NULL;
                read_file_at(AT_FDCWD, kf, 65536, &kt, NULL);
                char *salt = kt ? strstr(kt, "salt = ") : NULL;
                if (salt) {
                        salt[7] = salt[7] == '0' ? '1' : '0';   /* another salt: another key file */
                        write_text(kf, kt);
                }
                ok(salt != NULL, "and change its salt");
        }
        is(cairn_repo_open(repo, &right, &r), -EACCES, "an entry made for another key file does not open");
        (void) cairn_keyring_forget(name);
}

static void test_unencrypted_and_config(const char *tmp) {
        _cleanup_free_ char *repo = path_in(tmp, "plain"), *cfg = path_in(repo, "config");
        _cleanup_free_ char *text = NULL, *other = path_in(tmp, "notempty"), *junk = path_in(other, "x");
        struct cairn_repo_params p = fast_params(false);
        struct cairn_repo *r = NULL;
        FILE *f;

        is(cairn_repo_create(repo, &p, NULL), 0, "create an unencrypted repository");
        is(cairn_repo_open(repo, NULL, &r), 0, "open it without a passphrase");
        ok(r && !cairn_repo_params(r)->encrypted, "it is not encrypted");
        if (r) {
                uint8_t a[32], sha[32];
                cairn_codec_id(cairn_repo_codec(r), "hello", 5, a);
                cairn_sha256("hello", 5, sha);
                ok(memcmp(a, sha, 32) == 0, "unencrypted ids are SHA-256");
        }
        r = cairn_repo_free(r);

        mkdir(other, 0700);
        write_text(junk, "x");
        is(cairn_repo_create(other, &p, NULL), -EEXIST, "create in a non-empty directory is refused");

        is(cairn_repo_open(tmp, NULL, &r), -ENOENT, "a directory without config is not a repository");
        ok(strstr(test_last_log, "not a cairn repository") != NULL, "message: \"%s\"", test_last_log);

        read_file_at(AT_FDCWD, cfg, 65536, &text, NULL);
        f = fopen(cfg, "w");
        fputs("version = 2\nid = 00\nnew-thing = yes\n", f);
        fclose(f);
        is(cairn_repo_open(repo, NULL, &r), -EPROTONOSUPPORT, "a newer format version is refused");
        ok(strstr(test_last_log, "version 2 is newer") != NULL, "saying so: \"%s\"", test_last_log);

        f = fopen(cfg, "w");
        fprintf(f, "%sbogus = 1\n", text);
        fclose(f);
        is(cairn_repo_open(repo, NULL, &r), -EBADMSG, "an unknown config key is refused");
        ok(strstr(test_last_log, "unknown key \"bogus\"") && strstr(test_last_log, "line"),
           "naming key and line: \"%s\"", test_last_log);

        f = fopen(cfg, "w");
        fputs(text, f);
        fclose(f);
        is(cairn_repo_open(repo, NULL, &r), 0, "the original config opens again");
        r = cairn_repo_free(r);
}

static void test_locks(const char *tmp) {
        _cleanup_free_ char *repo = path_in(tmp, "locks");
        struct cairn_repo_params p = fast_params(false);
        struct cairn_repo *r = NULL;
        struct cairn_lock *a = NULL, *b = NULL;
        pid_t holder = 0, child;
        int status, pipefd[2];

        cairn_repo_create(repo, &p, NULL);
        if (cairn_repo_open(repo, NULL, &r) < 0)
                BAIL_OUT("cannot open lock test repository");

        is(cairn_repo_lock(r, "job-pgdb", true, false, "backup pgdb", &a, NULL), 0, "take an exclusive lock");

        /* flock is per open file description: a child process contends for real. */
        if (pipe(pipefd) < 0)
                BAIL_OUT("pipe");
        child = fork();
        if (child == 0) {
                struct cairn_repo *cr = NULL;
                struct cairn_lock *cl = NULL;
                pid_t h = 0;
                int k;
                cairn_repo_open(repo, NULL, &cr);
                k = cairn_repo_lock(cr, "job-pgdb", true, false, "backup pgdb", &cl, &h);
                if (write(pipefd[1], &h, sizeof h) < 0)
                        _exit(3);
                _exit(k == -EBUSY ? 0 : 1);
        }
        waitpid(child, &status, 0);
        if (read(pipefd[0], &holder, sizeof holder) != sizeof holder)
                holder = -1;
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a second process gets -EBUSY");
        is(holder, getpid(), "and learns the holder's pid");

        a = cairn_lock_release(a);
        is(cairn_repo_lock(r, "job-pgdb", true, false, "again", &b, NULL), 0, "released locks can be taken again");
        b = cairn_lock_release(b);

        /* A lock whose holder died: the kernel dropped the flock; the
         * recorded pid is stale and the taker warns about it. */
        child = fork();
        if (child == 0) {
                struct cairn_repo *cr = NULL;
                struct cairn_lock *cl = NULL;
                cairn_repo_open(repo, NULL, &cr);
                cairn_repo_lock(cr, "job-pgdb", true, false, "dies holding it", &cl, NULL);
                _exit(0);    /* no release: as after kill -9 */
        }
        waitpid(child, &status, 0);
        test_last_log[0] = 0;
        is(cairn_repo_lock(r, "job-pgdb", true, false, "takeover", &b, NULL), 0, "a dead holder's lock is taken over");
        ok(strstr(test_last_log, "no longer running") != NULL, "with a warning: \"%s\"", test_last_log);
        b = cairn_lock_release(b);

        is(cairn_repo_lock(r, "shared", false, false, NULL, &a, NULL), 0, "shared lock");
        is(cairn_repo_lock(r, "shared", false, false, NULL, &b, NULL), 0, "a second shared lock coexists");
        a = cairn_lock_release(a);
        b = cairn_lock_release(b);
        is(cairn_repo_lock(r, "../evil", true, false, NULL, &a, NULL), -EINVAL, "lock names cannot escape locks/");
        cairn_repo_free(r);
}

int main(void) {
        _cleanup_free_ char *tmp = test_mkdtemp("test-repo");

        cairn_log_set_handler(test_log_capture, NULL);
        test_encrypted(tmp);
        test_key_cache(tmp);
        test_unencrypted_and_config(tmp);
        test_locks(tmp);
        test_rm_rf(tmp);
        return tap_done();
}
