/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A few lines of TAP (Test Anything Protocol) for the unit tests: meson
 * parses it natively (protocol: 'tap') and counts every check, and the
 * shell integration tests speak the same protocol.  Checks stay on under
 * NDEBUG: they are functions, not assert().
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count, tap_failures;

__attribute__((format(printf, 4, 5)))
static inline bool tap_check(bool cond, const char *file, int line, const char *fmt, ...) {
        va_list ap;
        printf("%s %d - ", cond ? "ok" : "not ok", ++tap_count);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        if (!cond) {
                tap_failures++;
                printf("#   failed at %s:%d\n", file, line);
        }
        fflush(stdout);
        return cond;
}

/* ok(condition, "description %d", ...) */
#define ok(cond, ...) tap_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* is(actual, expected, "description") for integers */
#define is(a, b, ...) ({ long long is_a_ = (long long) (a), is_b_ = (long long) (b); \
        tap_is(is_a_, is_b_, ok(is_a_ == is_b_, __VA_ARGS__)); })

static inline bool tap_is(long long got, long long expected, bool passed) {
        if (!passed)
                printf("#   got %lld, expected %lld\n", got, expected);
        return passed;
}

__attribute__((format(printf, 1, 2)))
static inline void diag(const char *fmt, ...) {
        va_list ap;
        printf("# ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
}

/* A check that could not run; says why. */
static inline void skip(const char *why) {
        printf("ok %d # SKIP %s\n", ++tap_count, why);
}

/* Abort the whole test file (e.g. set-up failed). */
#define BAIL_OUT(...) do { printf("Bail out! "); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)

static inline int tap_done(void) {
        printf("1..%d\n", tap_count);
        return tap_failures ? 1 : 0;
}
