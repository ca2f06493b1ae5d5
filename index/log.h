/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging for libcairn.  The library never prints: every message goes
 * through one handler that the program installs (cairn prints to stderr,
 * cairnfs to stderr or syslog, tests capture).  The default handler writes
 * "cairn: <message>" to stderr.
 *
 * The log_*_errno() helpers log and return the (negative) error code in one
 * expression:  return log_error_errno(r, "Failed to open pack %s: %m", id);
 * "%m" prints strerror(-r).
 */

#include <stdarg.h>

enum cairn_log_level {
        CAIRN_LOG_ERR = 3,
        CAIRN_LOG_WARNING = 4,
        CAIRN_LOG_INFO = 6,
        CAIRN_LOG_DEBUG = 7,
};

typedef void (*cairn_log_fn)(int level, const char *msg, void *userdata);

/* Install @fn (NULL restores the default stderr handler). Not thread-safe:
 * call it before starting threads. */
void cairn_log_set_handler(cairn_log_fn fn, void *userdata);

/* Messages above @level are dropped. Default: CAIRN_LOG_INFO. */
void cairn_log_set_level(int level);
int cairn_log_get_level(void);

/* Format and emit a message; errno is set to -@r first so "%m" works
 * (so "%m" belongs only in the *_errno forms, which take the error).
 * Returns @r unchanged (so it can be returned directly). */
int cairn_log_errno(int level, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error_errno(r, ...)   cairn_log_errno(CAIRN_LOG_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) cairn_log_errno(CAIRN_LOG_WARNING, (r), __VA_ARGS__)
#define log_error(...)            (void) cairn_log_errno(CAIRN_LOG_ERR, 0, __VA_ARGS__)
#define log_warning(...)          (void) cairn_log_errno(CAIRN_LOG_WARNING, 0, __VA_ARGS__)
#define log_info(...)             (void) cairn_log_errno(CAIRN_LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...)            (void) cairn_log_errno(CAIRN_LOG_DEBUG, 0, __VA_ARGS__)
