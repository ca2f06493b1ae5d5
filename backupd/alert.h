/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Alerts: one JSON POST (libcurl) to the config's [status] webhook per
 * event that needs the operator, never for a plain success.  The body:
 *
 *   { "host": "backup1", "job": "pgdb" (null for check and summary),
 *     "event": "backup" | "drill" | "check" | "stale" | "summary",
 *     "status": "failed" | "partial" | "stale" | "ok" (summary only),
 *     "message": "command \"pg_dumpall\" exited with status 1: …",
 *     "timestamp": "2026-11-21T01:00:05Z", "timestamp_unix": 1795222805,
 *     "text": "cairn on backup1: job pgdb: backup failed: …",
 *     … plus event-specific fields (summary: "jobs") }
 *
 * "text" makes the body usable as is by Slack/Mattermost-style incoming
 * webhooks.  Requests time out after 10 s (5 s to connect); a webhook
 * that cannot be reached or answers an HTTP error is a warning naming
 * the URL and curl's error, and changes no result or exit status.
 */

#include <jansson.h>
#include <stdint.h>

struct bk_alert {
        const char *event;      /* "backup", "drill", "check", "stale", "summary" */
        const char *job;        /* NULL: not about one job */
        const char *status;     /* "failed", "partial", "stale", "ok" */
        const char *message;    /* what happened, one line; may be NULL */
        int64_t time_ns;        /* when; 0: now */
        json_t *extra;          /* more fields for the body (borrowed), may be NULL */
};

/* POST @a to @url (http:// or https://).  0 on a 2xx answer; otherwise
 * a warning is logged and -EIO (or -ENOMEM) returned. */
int bk_alert_send(const char *url, const struct bk_alert *a);

/* The JSON body of @a (new reference), for tests and for bk_alert_send. */
json_t *bk_alert_body(const struct bk_alert *a);
