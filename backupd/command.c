/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Commands as sources (command and tar-command): run "sh -c", stdout to a
 * pipe, stderr to an anonymous file whose tail goes into the snapshot's
 * log; and the message for a command that failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup.h"
#include "log.h"
#include "util.h"

#define LOG_MAX (64u * 1024)            /* of a command's stderr kept in the record */

int bk_child_start(struct bk_backup *b, const char *command, struct bk_child *c) {
        int pipefd[2], k;

        /* stderr goes to an anonymous file, read after the command ends:
         * no second pipe to drain while stdout streams. */
        c->err = memfd_create("cairn-stderr", MFD_CLOEXEC);
        if (c->err < 0)
                return log_error_errno(-errno, "job \"%s\": cannot create a buffer for stderr: %m", b->opts->job);
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return log_error_errno(-errno, "job \"%s\": cannot create a pipe: %m", b->opts->job);
        c->pid = fork();
        if (c->pid < 0) {
                k = -errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return log_error_errno(k, "job \"%s\": cannot fork for \"%s\": %m", b->opts->job, command);
        }
        if (c->pid == 0) {
                int devnull = open("/dev/null", O_RDONLY);
                if (devnull >= 0)
                        dup2(devnull, 0);
                dup2(pipefd[1], 1);
                dup2(c->err, 2);
                signal(SIGPIPE, SIG_DFL);
                execl("/bin/sh", "sh", "-c", command, (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        c->out = pipefd[0];
        return 0;
}

/* Wait for the command (after closing our end, so one still writing gets
 * SIGPIPE) and keep the tail of its stderr in the snapshot's log: the end
 * says why it failed.  *ret_last: its last non-empty line, malloc'd. */
int bk_child_finish(struct bk_backup *b, const char *command, struct bk_child *c, int *ret_status, char **ret_last) {
        _cleanup_free_ char *text = NULL;
        off_t size;
        char *end, *nl;

        close(c->out);
        c->out = -1;
        while (waitpid(c->pid, ret_status, 0) < 0 && errno == EINTR)
                ;
        *ret_last = NULL;
        size = lseek(c->err, 0, SEEK_END);
        if (size > 0) {
                size_t want = (size_t) MIN((uint64_t) size, LOG_MAX);
                ssize_t got;

                text = malloc(want + 1);
                if (!text)
                        return -ENOMEM;
                got = pread(c->err, text, want, size - (off_t) want);
                text[got > 0 ? got : 0] = 0;
                if (got > 0) {
                        char *joined = NULL;
                        if (asprintf(&joined, "%s%s: %s", b->snap->log ? b->snap->log : "", command, text) >= 0) {
                                free(b->snap->log);
                                b->snap->log = joined;
                        }
                        if (cairn_log_get_level() >= CAIRN_LOG_DEBUG)
                                fprintf(stderr, "%s", text);
                }
        }
        if (!text)
                return (*ret_last = strdup("")) ? 0 : -ENOMEM;
        end = text + strlen(text);
        while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
                end--;
        *end = 0;
        nl = strrchr(text, '\n');
        *ret_last = strdup(nl ? nl + 1 : text);
        return *ret_last ? 0 : -ENOMEM;
}

void bk_child_release(struct bk_child *c) {
        if (c->out >= 0)
                close(c->out);
        if (c->err >= 0)
                close(c->err);
        c->out = c->err = -1;
}

int bk_child_failed(struct bk_backup *b, const char *command, int status, const char *last) {
        if (WIFEXITED(status))
                return log_error_errno(-ECHILD, "job \"%s\": command \"%s\" exited with status %d%s%s", b->opts->job,
                                       command, WEXITSTATUS(status), last && *last ? ": " : "", last ? last : "");
        return log_error_errno(-ECHILD, "job \"%s\": command \"%s\" was killed by signal %d (%s)", b->opts->job,
                               command, WTERMSIG(status), strsignal(WTERMSIG(status)));
}
