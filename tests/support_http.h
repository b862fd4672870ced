/* support_http: what the avatarq-http tests (test_http.c, test_http_s3.c,
 * test_http_browser.c) share, on top of support_worker (a throwaway Redis,
 * config.ini in a temp dir, the real worker fleet): the real
 * bin/avatarq-http on a free port with an [http] section, and real HTTP
 * requests through libcurl. Every process started is tracked in the pid
 * file of support.h (sup_track), so a failing test leaves nothing running,
 * and its temp dirs are listed for hx_reap_strays. (It was
 * tests/http_harness.h, a header of static functions; the names are
 * unchanged.) */
#ifndef AQ_SUPPORT_HTTP_H
#define AQ_SUPPORT_HTTP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <strings.h>

#include "support_worker.h"

#define HX_TOKEN "test-token-0123456789abcdef"
#define HX_AUTH "Authorization: Bearer " HX_TOKEN

typedef struct hx {
    wh w;
    pid_t pid;             /* avatarq-http, 0 when not running */
    int port;
    char log[320];
    char base[64];         /* http://127.0.0.1:PORT */
    const char *sections;  /* more config sections after [http] (e.g. [storage.s3]) */
} hx;

typedef struct hx_resp {
    long status;
    buf body;              /* NUL-terminated */
    char headers[16384];
} hx_resp;

/* Prints the tail of the server's log to stderr (a failing test's story). */
void hx_show_log(const hx *h);
/* Writes config.ini with an [http] section (listen on a fresh port, the
 * token, short timeouts) plus http_extra lines and h->sections, creates the
 * schema (avatarq migrate), starts avatarq-http (tracked) and waits until
 * it accepts connections; fails the test with the log when it does not. */
void hx_start(hx *h, const char *http_extra);
/* SIGTERM to the server, waited for and untracked; returns the raw wait
 * status (-1: had to be killed; 0 when it was not running). */
int hx_stop(hx *h);
/* Lists dir for removal by hx_reap_strays, should the test fail before its
 * teardown removes it. */
void hx_track_dir(const char *dir);
/* For the runner's unchecked teardown: kills what a failed test left
 * (sup_reap_strays) and removes the directories it listed (kept with
 * AQ_TEST_KEEP). */
void hx_reap_strays(void);
/* Zeroes h, then a Redis and the temp dir, both tracked; nothing of
 * avatarq is started yet (then hx_start). */
void hx_prepare(hx *h);
/* hx_prepare, then hx_start. */
void hx_setup(hx *h, const char *http_extra);
/* Stops the server, the fleet and Redis and removes the temp dirs; the
 * server must exit 0 on SIGTERM (under ASan that also means: no leak), else
 * the test fails with its log. */
void hx_teardown(hx *h);
/* One request: method, path (appended to the base URL as is: no
 * normalisation of "..") and body (NULL: none), then extra header lines
 * ending with NULL. Fills out (free with hx_free); returns the status, -1
 * when no reply came. */
long hx_req(hx *h, hx_resp *out, const char *method, const char *path, const char *body, ...);
/* Repeats a request without a body (method, path, HX_AUTH) until its status
 * is want, up to timeout_ms; returns the last status. */
long hx_wait_status(hx *h, const char *method, const char *path, long want, int timeout_ms);
/* Frees what hx_req put in r. */
void hx_free(hx_resp *r);
/* The value of header name in r (static buffer, valid until the next
 * call), or NULL. */
const char *hx_header(const hx_resp *r, const char *name);
/* The body parsed as JSON (to json_decref); fails the test when it is not. */
json_t *hx_json(const hx_resp *r);
/* The "error" of a JSON error reply (static copy, "" when absent). */
const char *hx_error(const hx_resp *r);

#endif
