/* support_rtopo: Redis deployments for the rconn tests (test_redis_*.c): a
 * TLS server with certificates made by openssl, a master + replica + three
 * sentinels, a 3 x 2 cluster; plus a job flow through the real programs
 * (bin/avatarq batch, bin/avatarq-worker) and the checks on its outcome.
 *
 * Every process started is listed in the pid file of support.h
 * (sup_track); rt_end (the test's teardown), an atexit handler in the test
 * child and rt_reap_strays (the runner's unchecked teardown) kill what is
 * listed, so a failed assertion leaves nothing running. */
#ifndef AQ_TEST_RTOPO_H
#define AQ_TEST_RTOPO_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"

typedef struct rt_srv {
    pid_t pid;
    int port;
    char dir[300];
    char conf[340];
    bool tls;          /* TLS only (redis-cli cannot ask it who it is) */
} rt_srv;

/* A temp dir for this test (rt_dir()) and the cleanup handler. */
void rt_begin(void);
/* Stops everything started, removes the temp dir (kept with AQ_TEST_KEEP). */
void rt_end(void);
/* For the runner's unchecked teardown: kills what a failed test left. */
void rt_reap_strays(void);
const char *rt_dir(void);

/* Spawns argv (tracked), output appended to log. */
pid_t rt_spawn(char *const argv[], const char *log);
/* Sends sig, waits (then SIGKILLs it and its children after 30 s), forgets
 * the pid. A pid already reaped is only forgotten. */
void rt_kill(pid_t pid, int sig);

/* redis-server (sentinel: redis-sentinel) with a config file NAME.conf in
 * its own dir below rt_dir(): "port P" (or "port 0" + "tls-port P" when the
 * lines ask for TLS with the word TLSPORT) and the given extra lines.
 * Waits until the port accepts. */
void rt_server(rt_srv *s, const char *name, bool sentinel, const char *lines);
void rt_server_restart(rt_srv *s, bool sentinel);

/* redis-cli ARGS (printf format); output trimmed, in a static buffer. */
const char *rt_cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Polls rt_cli until its output contains want; true when it did in time. */
bool rt_cli_wait(int timeout_ms, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Certificates in rt_dir(): ca.crt/ca.key (the test CA), server.crt/.key
 * (CN localhost, SAN DNS:localhost IP:127.0.0.1), client.crt/.key (signed by
 * the CA), other-ca.crt (an unrelated CA). */
void rt_certs(void);
/* Path of a file in rt_dir() (static buffers, sixteen in rotation). */
const char *rt_path(const char *name);

/* config.ini at path: [redis] namespace ns plus redis_lines, storage and
 * SQLite below rt_dir(), quick [worker] timings plus worker_lines. */
void rt_config(const char *path, const char *ns, const char *redis_lines, const char *worker_lines);
/* bin/avatarq -c cfg ARGS 2>&1; output into out (may be NULL). Exit status. */
int rt_avatarq(buf *out, const char *cfg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* avatarq batch of n seeds "PREFIX-i" (i from 0), --sizes 32; exit status. */
int rt_batch(const char *cfg, const char *prefix, int n, buf *out);
/* bin/avatarq-worker -c cfg, output to log. */
pid_t rt_worker(const char *cfg, const char *log);
/* A counter of avatarq stats --json ("done", "dead", "queued", ...); -1
 * when stats fails. */
long long rt_stat(const char *cfg, const char *field);
bool rt_wait_stat(const char *cfg, const char *field, long long target, int timeout_ms);
/* Rows in the SQLite metadata of cfg. */
long long rt_meta_rows(const char *cfg);
/* Prints the tail of a log file to stderr (the story of a failure). */
void rt_show(const char *log, int lines);

#endif
