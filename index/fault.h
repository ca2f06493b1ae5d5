/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Crash injection for the crash tests (tests/integration/crash.sh).
 *
 * With CAIRN_FAULT=POINT[:N] in the environment, the N-th time (default:
 * the first) the process reaches cairn_fault_point("POINT") it writes
 * "cairn: fault injected at POINT (hit N)" to stderr and ends at once with
 * _exit(99): no atexit handlers, no buffered output, no cleanup, as if the
 * power went off between two system calls (the page cache survives, which
 * is what a kill -9 leaves too).  CAIRN_FAULT=POINT[:N]:kill raises SIGKILL
 * instead.  Other points and other hits go on as usual.
 *
 * The variable is read once, on the first call.  Unset (every real run),
 * a point costs a pthread_once() check and a branch.  Thread-safe: hits are counted
 * atomically, so with N the point fires exactly once.
 *
 * Points are named MODULE.EVENT ("pack.fsynced", "prune.mid-repack"); the
 * list is in crash.sh, which reaches each one.
 */

void cairn_fault_point(const char *name);
