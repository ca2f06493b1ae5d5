/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>

#include "log.h"

static cairn_log_fn log_handler;
static void *log_userdata;
static int log_level = CAIRN_LOG_INFO;

void cairn_log_set_handler(cairn_log_fn fn, void *userdata) {
        log_handler = fn;
        log_userdata = userdata;
}

void cairn_log_set_level(int level) {
        log_level = level;
}

int cairn_log_get_level(void) {
        return log_level;
}

int cairn_log_errno(int level, int r, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        if (level > log_level)
                return r;

        errno = r < 0 ? -r : r;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        errno = saved;

        if (log_handler)
                log_handler(level, buf, log_userdata);
        else
                fprintf(stderr, "cairn: %s%s\n", level <= CAIRN_LOG_ERR ? "error: " :
                        level == CAIRN_LOG_WARNING ? "warning: " : "", buf);
        return r;
}
