/* support_worker: what the avatarq-worker tests (test_worker.c,
 * test_worker_faults.c, test_notify.c, test_chaos.c, test_hostile.c,
 * test_pg_worker.c, test_s3_worker.c) and the end-to-end benchmarks share: a
 * throwaway Redis, a temp config.ini (local storage and SQLite in the temp
 * dir, short intervals), the real bin/avatarq-worker, and a direct hiredis
 * connection for pushing raw documents (any bytes) and reading keys.
 *
 * Cleanup even when a test fails: every pid started is listed in the pid
 * file of support.h (sup_track); an atexit handler in the test child and
 * the unchecked teardown in the parent (wh_reap_strays) both kill what is
 * listed, so a failed assertion or a Check timeout leaves nothing
 * running. (It was tests/worker_harness.h, 400 lines of static functions;
 * the function names are unchanged.) */
#ifndef AQ_SUPPORT_WORKER_H
#define AQ_SUPPORT_WORKER_H

/* The includes of the old worker_harness.h, which the tests rely on. */
#include <check.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define WH_NS "aq"

typedef struct wh {
    sup_redis r;
    char dir[256];     /* temp dir: config.ini, worker.log, root/, meta.db */
    char cfg[320];
    char log[320];
    char root[320];
    char db[320];
    pid_t pid;         /* the supervisor, 0 when not running */
    const char *backend; /* [storage] backend: "local" unless a test says */
    redisContext *rc;
} wh;

/* sup_track, sup_untrack, sup_kill_listed and sup_reap_strays of
 * support.h under the names the worker tests know. */
void wh_track(pid_t pid);
void wh_untrack(pid_t pid);
void wh_kill_listed(pid_t runner);
void wh_reap_strays(void);
/* The test child's atexit handler (wh_setup installs it): kills the
 * supervisor of the running test and whatever is listed for the runner. */
void wh_atexit(void);
/* True when text has a line starting with "key =" or "key=". */
bool wh_has_key(const char *text, const char *key);
/* Writes config.ini: [worker] comes last so worker_extra (lines "key = v")
 * lands in it; other_sections is inserted before it (new sections only). */
void wh_write_config(wh *h, const char *worker_extra, const char *other_sections);
/* (Re)connects h->rc to the test Redis; fails the test when it cannot. */
void wh_connect(wh *h);
/* A temp dir, a Redis (appendonly when aof), config.ini with worker_extra
 * [worker] lines, and a connection; everything is tracked for cleanup. */
void wh_setup(wh *h, bool aof, const char *worker_extra);
/* Prints the worker log's tail (for a failing test's story). */
void wh_show_log(const wh *h, int lines);
/* Starts bin/avatarq-worker -c config.ini with extra "K=V" env entries. */
pid_t wh_start(wh *h, char *const env[]);
/* Signals the supervisor and waits; returns the raw wait status (-1: had to
 * be killed). */
int wh_stop(wh *h, int sig, int timeout_ms);
/* sup_redis_stop/restart that keep the pid list right. */
void wh_redis_stop(wh *h);
void wh_redis_restart(wh *h);
/* Stops the supervisor and Redis, kills strays of earlier failed tests and
 * removes the temp dirs (kept when AQ_TEST_KEEP is set). */
void wh_teardown(wh *h);
/* redisvCommand on h; NULL (after reconnecting) when Redis went away. */
redisReply *wh_cmdv(wh *h, const char *fmt, va_list ap);
/* A command's reply as a string (integers formatted; nil and errors ""),
 * in a static buffer valid until the next call. */
const char *wh_str(wh *h, const char *fmt, ...);
/* A command's reply as an integer (strings parsed, nil 0, errors -1). */
long long wh_int(wh *h, const char *fmt, ...);
/* LPUSH of any bytes onto the configured queue. */
void wh_push(wh *h, const char *doc, size_t len);
/* wh_push of a NUL-terminated document. */
void wh_push_str(wh *h, const char *doc);
/* Keys matching pattern (KEYS is fine on a test instance). */
long long wh_count_keys(wh *h, const char *pattern);
/* Total length of every NS:processing:* list. */
long long wh_processing(wh *h);
/* Polls NS:job:ID state until it is state, up to timeout_ms. */
bool wh_wait_state(wh *h, const char *id, const char *state, int timeout_ms);
/* A command given as one string of space-separated words (no quoting), its
 * reply as an integer (nil 0, errors -1). */
long long wh_int_words(wh *h, const char *cmd);
/* Waits until the integer reply of cmd (words, see wh_int_words) reaches at
 * least target. */
bool wh_wait_int(wh *h, long long target, int timeout_ms, const char *cmd);
/* Pids of the live worker processes from their heartbeat hashes (up to max). */
int wh_worker_pids(wh *h, pid_t *out, int max);
/* NS:worker:HOST:PID-NONCE of a worker process of this host (the nonce
 * found among the registered workers; "-0000" when it is not registered). */
void wh_worker_key(pid_t pid, char *out, size_t n);
/* "s/ID/SIZE.png" below the storage root. */
void wh_png_path(const wh *h, const char *id, int size, char *out, size_t n);
/* Polls the worker log until it holds needle (counting from byte `from`,
 * e.g. the log's size before a signal), up to timeout_ms. */
bool wh_wait_log(const wh *h, const char *needle, long from, int timeout_ms);
/* The worker log's size now (for wh_wait_log's from). */
long wh_log_size(const wh *h);
/* Polls until exactly want live worker processes beat (by their heartbeat
 * hashes), none of them one of the `old` pids; fills out. */
bool wh_wait_new_workers(wh *h, int want, const pid_t *old, int nold, pid_t *out,
                         int timeout_ms);

/* True when path exists. */
bool wh_exists(const char *path);

/* True while process pid exists. */
bool wh_alive(pid_t pid);
/* Waits up to timeout_ms for process pid to be gone; false if it stays. */
bool wh_wait_gone(pid_t pid, int timeout_ms);
/* SIGTERMs h's supervisor and asserts that it exits 0 within 30 s. */
void wh_stop_clean(wh *h);

/* ---- a worker against a Redis someone else runs (benchmarks) ----
 * bench/ links this support too, so the end-to-end benchmarks share the
 * worker set-up instead of repeating it. No Check assertions: failures are
 * returned, with a line on stderr. */
struct aq_config;
struct queue;
typedef struct wh_fleet {
    char dir[256], cfg[320], log[320];
    struct aq_config *c;  /* the config the worker reads, loaded */
    struct queue *q;      /* a queue client on it */
    pid_t pid;            /* the supervisor, 0 when not running */
} wh_fleet;
/* Makes a temp dir BASE/avatarq-bench-TAG-XXXXXX (BASE NULL: $TMPDIR or
 * /tmp) and the paths of config.ini and worker.log in it. 0 or -1. */
int wh_fleet_dir(wh_fleet *f, const char *base, const char *tag);
/* Writes config_text as config.ini, loads it, opens a queue client, starts
 * bin/avatarq-worker on it and waits up to timeout_ms for `live` live
 * workers. 0 or -1 (the log names the cause). */
int wh_fleet_start(wh_fleet *f, const char *config_text, int live, int timeout_ms);
/* done + dead counters of the fleet's namespace, or -1. */
int64_t wh_fleet_finished(wh_fleet *f);
/* SIGTERM to the supervisor (SIGKILL after 30 s), closes the client and
 * removes the temp dir unless keep (then its log stays for a look). */
void wh_fleet_stop(wh_fleet *f, bool keep);

#endif
