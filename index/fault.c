/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"

#define NAME_MAX_ 128

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool armed;              /* written once, under `once` */
static char point[NAME_MAX_];
static unsigned long want = 1;
static bool use_kill;
static atomic_ulong hits;

static void arm(void) {
        const char *v = getenv("CAIRN_FAULT");
        const char *colon;
        size_t n;

        if (!v || !*v)
                return;
        colon = strchr(v, ':');
        n = colon ? (size_t) (colon - v) : strlen(v);
        if (n >= sizeof point)
                n = sizeof point - 1;
        memcpy(point, v, n);
        point[n] = 0;
        for (const char *opt = colon; opt; opt = strchr(opt + 1, ':')) {
                if (strncmp(opt + 1, "kill", 4) == 0 && (opt[5] == 0 || opt[5] == ':'))
                        use_kill = true;
                else if (opt[1] >= '1' && opt[1] <= '9')
                        want = strtoul(opt + 1, NULL, 10);
        }
        armed = true;
}

void cairn_fault_point(const char *name) {
        char msg[256];
        unsigned long n;
        int len;

        (void) pthread_once(&once, arm);
        if (!armed || strcmp(name, point) != 0)
                return;
        n = atomic_fetch_add(&hits, 1) + 1;
        if (n != want)
                return;
        len = snprintf(msg, sizeof msg, "cairn: fault injected at %s (hit %lu)\n", name, n);
        if (len > 0)
                (void) !write(STDERR_FILENO, msg, (size_t) len < sizeof msg ? (size_t) len : sizeof msg - 1);
        if (use_kill)
                raise(SIGKILL);
        _exit(99);
}
