/* Test support: throwaway servers on free loopback ports in temp dirs, stopped
 * by PID, and helpers to run our own programs. Used by tests/test_*.c. */
#ifndef AQ_TEST_SUPPORT_H
#define AQ_TEST_SUPPORT_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/* A fresh temp directory (mkdtemp under $TMPDIR); out gets its path. Each
 * binary that links this support points $TMPDIR at a base dir of its own
 * when it starts and removes that base when its main process exits, so
 * folders of a failed test go too. */
void sup_tmpdir(char *out, size_t n);
/* rm -rf path (only paths below /tmp or $TMPDIR). */
void sup_rmtree(const char *path);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int sup_free_port(void);
/* Waits up to timeout_ms until 127.0.0.1:port accepts; true when it does. */
bool sup_wait_port(int port, int timeout_ms);
/* Sleeps ms milliseconds. */
void sup_sleep_ms(int ms);

/* Spawns argv (argv[0] a path) with extra environment entries "K=V" (NULL-
 * terminated, may be NULL), stdout/stderr appended to log_path (NULL: inherit).
 * Returns the pid. The child gets its own process group. (A server may
 * outlive the test child that started it: test_queue's outage tests restart
 * Redis in one test for the next; tests track what they start with
 * sup_track below, so that it is killed even when a test fails.) */
pid_t sup_spawn(char *const argv[], char *const env[], const char *log_path);
/* sup_spawn in the directory cwd (NULL: this one); argv[0] without a slash
 * is looked up in $PATH. Like sup_free_port, sup_wait_port, sup_stop and
 * sup_write_file it makes no Check assertion unless it fails, so the
 * benchmarks (not Check tests: a passing assertion would end them) use it
 * too. */
pid_t sup_spawn_in(const char *cwd, char *const argv[], char *const env[], const char *log_path);
/* In a forked child about to exec a server: stdin from /dev/null, stdout
 * and stderr appended to log_path (NULL: inherited). */
void sup_child_stdio(const char *log_path);
/* Sends sig and waits up to timeout_ms; returns the raw wait status or -1 if
 * still running (then SIGKILLs it and reaps). */
int sup_stop(pid_t pid, int sig, int timeout_ms);
/* Waits up to timeout_ms for pid to exit; raw status, or -1 on timeout. */
int sup_wait(pid_t pid, int timeout_ms);

/* ---- processes that must not outlive their test ----
 * A failing check ends the test process at once (Check's _exit): neither
 * its teardown nor its atexit handlers run. So every process a test starts
 * is listed in one pid file named after the Check runner (the test's
 * parent), and forgotten once it was stopped and reaped cleanly; whatever
 * stays listed is killed by the next teardown or by the runner's unchecked
 * teardown (sup_reap_strays). */

/* The pid file of the Check runner with pid runner. */
void sup_pidfile(char *out, size_t n, pid_t runner);
/* Lists pid (a process group leader, as sup_spawn makes it) for cleanup. */
void sup_track(pid_t pid);
/* Forgets pid (stopped and reaped cleanly): only strays stay listed. */
void sup_untrack(pid_t pid);
/* SIGKILLs pid's children by their ids (found in /proc), then pid's group
 * and pid: avatarq-worker puts each worker process in a group of its own,
 * and a worker waiting for a Redis that is gone would outlive its
 * supervisor. */
void sup_kill_tree(pid_t pid);
/* sup_kill_tree on every pid listed in runner's pid file (reaping what is
 * our child and gone), then removes the file. */
void sup_kill_listed(pid_t runner);
/* For the runner's unchecked teardown: kills whatever a test child left. */
void sup_reap_strays(void);
/* Makes the calling test process kill what is listed for its runner when it
 * exits (an atexit handler, installed once per process). */
void sup_kill_listed_at_exit(void);
/* sup_stop, then sup_untrack: for a tracked process. */
int sup_stop_tracked(pid_t pid, int sig, int timeout_ms);

/* Runs a command line through /bin/sh, capturing stdout (+stderr when
 * merge_stderr) into out (NUL-terminated); returns its exit status (0-255),
 * or -1. */
int sup_run(const char *cmdline, buf *out, bool merge_stderr);

/* Path of one of our programs: $AQ_BIN_DIR/name (AQ_BIN_DIR set by
 * tests/run.sh; defaults to ./bin). */
const char *sup_bin(const char *name);
/* The same for a program built with test hooks ($AQ_TEST_BIN_DIR, else as
 * sup_bin): only avatarq-worker has one (AVATARQ_TEST_HANG_SEED). */
const char *sup_test_bin(const char *name);

/* ---- Redis ---- */
typedef struct sup_redis {
    pid_t pid;
    int port;
    char dir[256];
    char url[128];    /* redis://127.0.0.1:PORT/0 */
    bool aof;
} sup_redis;
/* Starts redis-server on a free port in a temp dir (appendonly when aof).
 * Aborts the test on failure. */
void sup_redis_start(sup_redis *r, bool aof);
/* Starts it again on the same port and dir (after sup_redis_stop). */
void sup_redis_restart(sup_redis *r);
/* For a test that restarts Redis in its own (forked) child, where the
 * parent's sup_redis keeps the first pid: notes the running server's pid in
 * r->dir, and from the parent's teardown stops that noted server when it is
 * still a redis-server (the parent then stops r as usual). */
void sup_redis_note_pid(const sup_redis *r);
void sup_redis_stop_noted(const sup_redis *r);
/* Whether the text of a Redis or Sentinel INFO server reply says it is
 * process pid (a port can be taken by another server between our pick and
 * its bind). */
bool sup_redis_info_is(const char *info, pid_t pid);
/* Stops the server r names (SIGTERM, then SIGKILL after 10 s). */
void sup_redis_stop(sup_redis *r);
/* Runs redis-cli against r with args (shell words), output into out. Returns
 * exit status. */
int sup_redis_cli(const sup_redis *r, buf *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* redis-cli output as one trimmed string (static buffer, valid until next call). */
const char *sup_redis_str(const sup_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* redis-cli output parsed as an integer (e.g. LLEN). */
long long sup_redis_int(const sup_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes text to path (creating it). */
void sup_write_file(const char *path, const char *text);
/* Reads the whole file at path into out (replacing what it held; not
 * NUL-terminated); false when it cannot be opened. */
bool sup_read_file(const char *path, buf *out);

/* Runs every test of s with Check's defaults (each test in a child of its
 * own unless CK_FORK=no) and returns the exit status for main: 0 when all
 * passed, 1 otherwise. */
int sup_run_suite(Suite *s);

/* The number a pid file starts with (postmaster.pid, a noted pid); 0 when
 * the file is missing or starts with something else. */
pid_t sup_read_pid(const char *path);

#endif
