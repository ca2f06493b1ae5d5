/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Restore drills ("cairn verify", "cairn run --drills"): the latest
 * complete snapshot of a job, as the mount shows it (MNT/JOB/latest),
 * bound read-only into a sandbox or container that runs the operator's
 * script; exit status 0 is a pass.
 *
 * The command lines (MNT: the mountpoint, SCRIPT: the script's absolute
 * path; [..] only when given):
 *
 *   docker run --rm [--user USER] -e BACKUP=/backup -v MNT/JOB/latest:/backup:ro
 *       -v SCRIPT:/drill.sh:ro IMAGE /bin/sh /drill.sh
 *   podman --runtime runc --cgroup-manager cgroupfs run --rm
 *       --ulimit nofile=16384:16384 --ulimit nproc=16384:16384 [--user USER]
 *       -e BACKUP=/backup -v MNT/JOB/latest:/backup:ro -v SCRIPT:/drill.sh:ro
 *       IMAGE | --rootfs /:O   /bin/sh /drill.sh
 *   bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /dev/shm
 *       --ro-bind SNAP /tmp/backup --ro-bind SCRIPT /tmp/drill.sh
 *       --clearenv --setenv PATH /usr/local/sbin:…:/bin --setenv HOME /tmp
 *       --setenv BACKUP /tmp/backup --unshare-all [--uid UID --gid GID]
 *       --die-with-parent /bin/sh /tmp/drill.sh
 *
 * In docker and podman the snapshot is /backup; bwrap cannot create
 * /backup on the read-only root, so there it is /tmp/backup (SNAP: the
 * snapshot directory MNT/JOB/<time> that latest points to).  $BACKUP
 * names it in every runtime.  The drill never sees cairn's environment
 * (which may hold $CAIRN_PASSWORD).  podman without an image runs on the host's
 * root through an overlay (CONTAINERS.md); the runc/cgroupfs options and
 * explicit ulimits are what podman needs on hosts without systemd.
 */

#include <stdbool.h>
#include <stdint.h>

enum bk_drill_runtime {
        BK_DRILL_BWRAP,
        BK_DRILL_DOCKER,
        BK_DRILL_PODMAN,
};

/* "bwrap", "docker", "podman" → runtime; -EINVAL. */
int bk_drill_runtime_parse(const char *s, enum bk_drill_runtime *ret);
const char *bk_drill_runtime_name(enum bk_drill_runtime r);

struct bk_drill_spec {
        const char *job;
        const char *script;             /* absolute path on the host */
        enum bk_drill_runtime runtime;
        const char *image;              /* docker: required; podman: NULL = the host's root */
        const char *user;               /* name or uid; NULL: root */
        const char *mountpoint;         /* where cairnfs shows the repository */
        uint64_t timeout_s;             /* the drill is stopped (and fails) after this; 0: never */
};

#define BK_DRILL_TIMEOUT_DEFAULT 3600   /* seconds */

/* The drill's command line as a NULL-terminated argv (*ret and each
 * string malloc'd; bk_strv_free).  For bwrap the snapshot directory is
 * resolved (MNT/JOB/latest must exist) unless @for_print, which keeps
 * MNT/JOB/latest.  -EINVAL (logged: docker without an image, unknown
 * user), -ENOENT (logged: no latest snapshot in the mount). */
int bk_drill_argv(const struct bk_drill_spec *s, bool for_print, char ***ret);
char **bk_strv_free(char **v);

/* @argv as one shell-quoted line (what --print shows). malloc'd, NULL on -ENOMEM. */
char *bk_drill_argv_format(char *const *argv);

struct bk_drill_result {
        bool passed;
        int64_t start_ns, end_ns;
        char *snapshot;                 /* the snapshot's directory name (its time), NULL: unknown */
        char *message;                  /* "passed" or what failed: the output's last line, the exit status */
};
void bk_drill_result_release(struct bk_drill_result *r);

/* Run the drill of @s.  Its stdout and stderr are collected; with
 * @show_output they are copied to stdout, and on a failure their last
 * lines go to stderr.  SIGINT/SIGTERM/SIGHUP stop the drill (a fail).
 * Returns 0 when the drill ran (passed or failed: see *ret), or -errno
 * when it could not be started (logged; *ret is then a fail too). */
int bk_drill_run(const struct bk_drill_spec *s, bool show_output, struct bk_drill_result *ret);

/* A cairnfs started for drills: "CAIRNFS -f -o allow_other[,OPTIONS]
 * REPO MNT" on a new temporary directory (below $TMPDIR, else /tmp),
 * its stderr in a log beside it; returns once MNT is a mountpoint (at
 * most 60 s), or fails with the log's tail when cairnfs exits first. */
struct bk_drill_mount;
int bk_drill_mount_start(const char *cairnfs, const char *repo, const char *options, struct bk_drill_mount **ret);
const char *bk_drill_mount_path(const struct bk_drill_mount *m);
/* SIGTERM (cairnfs unmounts and exits), wait, remove the directory.
 * Frees @m; accepts NULL.  -EIO (logged) when cairnfs did not exit 0
 * or the mount stayed. */
int bk_drill_mount_stop(struct bk_drill_mount *m);
