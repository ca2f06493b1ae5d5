/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Webhook alerts through libcurl's easy interface: one short-lived
 * handle per alert (a run sends a handful at most), no signals
 * (CURLOPT_NOSIGNAL: we may run beside threads), http and https only.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert.h"
#include "config.h"
#include "log.h"
#include "snapshot.h"
#include "util.h"

#define ALERT_TIMEOUT_S 10
#define ALERT_CONNECT_TIMEOUT_S 5

static bool curl_ready;

static void curl_cleanup_at_exit(void) {
        curl_global_cleanup();
}

static int curl_init_once(void) {
        CURLcode c;

        if (curl_ready)
                return 0;
        c = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (c != CURLE_OK)
                return log_warning_errno(-EIO, "Cannot initialize libcurl: %s", curl_easy_strerror(c));
        curl_ready = true;
        atexit(curl_cleanup_at_exit);
        return 0;
}

json_t *bk_alert_body(const struct bk_alert *a) {
        char host[256] = "localhost", when[32];
        _cleanup_free_ char *text = NULL;
        int64_t t = a->time_ns ? a->time_ns : now_ns();
        const char *what;
        json_t *body;

        (void) gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = 0;
        cairn_time_format(t, when, sizeof when);

        if (streq(a->event, "stale"))
                what = "stale";
        else if (streq(a->event, "summary"))
                what = "daily summary";
        else
                what = NULL;
        if (asprintf(&text, "cairn on %s: %s%s%s%s%s%s%s%s", host, a->job ? "job " : "", a->job ? a->job : "",
                     a->job ? ": " : "", what ? what : a->event, what ? "" : " ", what ? "" : a->status,
                     a->message ? ": " : "", a->message ? a->message : "") < 0)
                return NULL;

        body = json_pack("{s:s, s:o, s:s, s:s, s:s?, s:s, s:I, s:s?}", "host", host,
                         "job", a->job ? json_string(a->job) : json_null(), "event", a->event, "status", a->status,
                         "message", a->message, "timestamp", when, "timestamp_unix", (json_int_t) (t / 1000000000),
                         "text", text);
        if (body && a->extra)
                json_object_update_missing(body, a->extra);
        return body;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata) {
        return size * nmemb;
}

/* The URL as logged: scheme and host only.  A user:password@ is a
 * credential, and so is the path of many webhooks (Slack's and Discord's
 * carry their token there): both are replaced. */
static char *url_for_log(const char *url) {
        const char *scheme_end = strstr(url, "://"), *host, *at, *slash;
        char *out;

        if (!scheme_end)
                return strdup("(not a URL)");
        host = scheme_end + 3;
        slash = host + strcspn(host, "/?#");
        at = memchr(host, '@', (size_t) (slash - host));
        if (asprintf(&out, "%.*s%s%.*s%s", (int) (host - url), url, at ? "***@" : "",
                     (int) (slash - (at ? at + 1 : host)), at ? at + 1 : host,
                     *slash && !streq(slash, "/") ? "/..." : slash) < 0)
                return NULL;
        return out;
}

int bk_alert_send(const char *url, const struct bk_alert *a) {
        _cleanup_free_ char *data = NULL, *shown = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers = NULL;
        json_t *body;
        CURL *h;
        CURLcode c;
        long code = 0;
        int k;

        if (!url || !a)
                return -EINVAL;
        shown = url_for_log(url);
        body = bk_alert_body(a);
        if (body)
                data = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!data || !shown)
                return log_warning_errno(-ENOMEM, "Cannot send the alert: %m");
        k = curl_init_once();
        if (k < 0)
                return k;

        h = curl_easy_init();
        if (!h)
                return log_warning_errno(-ENOMEM, "webhook %s: cannot create a curl handle", shown);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) strlen(data));
        curl_easy_setopt(h, CURLOPT_USERAGENT, "cairn/" PACKAGE_VERSION);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long) ALERT_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long) ALERT_CONNECT_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        c = curl_easy_perform(h);
        if (c == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(h);
        curl_slist_free_all(headers);

        if (c != CURLE_OK) {
                log_warning("webhook %s: %s: the %s alert was not delivered", shown, errbuf[0] ? errbuf : curl_easy_strerror(c),
                            a->event);
                return -EIO;
        }
        if (code < 200 || code > 299) {
                log_warning("webhook %s: answered HTTP %ld: the %s alert was not delivered", shown, code, a->event);
                return -EIO;
        }
        log_debug("webhook %s: %s alert delivered (HTTP %ld)", shown, a->event, code);
        return 0;
}
