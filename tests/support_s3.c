#include "support_s3.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define SERVER_JS "tests/s3/server.js"

sup_s3 *sup_s3_new(void)
{
    void *p = mmap(NULL, sizeof(sup_s3), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
    memset(p, 0, sizeof(sup_s3));
    return p;
}

void sup_s3_free(sup_s3 *s)
{
    if (!s)
        return;
    sup_s3_stop(s);
    if (s->dir[0])
        sup_rmtree(s->dir);
    munmap(s, sizeof *s);
}

/* In the child: dies with the parent, own process group, output to the
 * log, then (after delay_ms) execs node. Never returns. */
static void become_server(const sup_s3 *s, pid_t parent, int delay_ms)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl took effect */
        _exit(1);
    setpgid(0, 0);
    char log[300], data[300], port[16];
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(port, sizeof port, "%d", s->port);
    sup_child_stdio(log);
    if (s->secret[0])
        setenv("AQ_S3_TEST_SECRET", s->secret, 1);
    else
        unsetenv("AQ_S3_TEST_SECRET");
    if (s->tls_dir[0])
        setenv("AQ_S3_TEST_TLS_DIR", s->tls_dir, 1);
    else
        unsetenv("AQ_S3_TEST_TLS_DIR");
    if (delay_ms > 0)
        sup_sleep_ms(delay_ms);
    char *argv[] = {"/usr/bin/env", "node", SERVER_JS, port, data, (char *)s->bucket, NULL};
    execv(argv[0], argv);
    fprintf(stderr, "exec node: %s\n", strerror(errno));
    _exit(127);
}

static void spawn(sup_s3 *s, int delay_ms)
{
    ck_assert_msg(access(SERVER_JS, R_OK) == 0,
                  "%s not found: run the tests from the repository root", SERVER_JS);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        become_server(s, parent, delay_ms);
    s->pid = pid;
}

bool sup_s3_wait_ready(const sup_s3 *s, int timeout_ms)
{
    return sup_wait_port(s->port, timeout_ms);
}

static void spawn_and_wait(sup_s3 *s)
{
    spawn(s, 0);
    if (!sup_s3_wait_ready(s, 30000)) {
        sup_s3_stop(s);
        ck_abort_msg("S3 test server did not start on port %d (see %s/server.log)", s->port,
                     s->dir);
    }
}

void sup_s3_start(sup_s3 *s, const char *bucket)
{
    char secret[sizeof s->secret], tls_dir[sizeof s->tls_dir];
    memcpy(secret, s->secret, sizeof secret); /* set before start: kept */
    memcpy(tls_dir, s->tls_dir, sizeof tls_dir);
    memset(s, 0, sizeof *s);
    memcpy(s->secret, secret, sizeof secret);
    memcpy(s->tls_dir, tls_dir, sizeof tls_dir);
    sup_tmpdir(s->dir, sizeof s->dir);
    snprintf(s->bucket, sizeof s->bucket, "%s", bucket);
    s->port = sup_free_port();
    snprintf(s->endpoint, sizeof s->endpoint, "%s://127.0.0.1:%d",
             s->tls_dir[0] ? "https" : "http", s->port);
    spawn_and_wait(s);
}

void sup_s3_restart(sup_s3 *s)
{
    spawn_and_wait(s);
}

void sup_s3_restart_after(sup_s3 *s, int delay_ms)
{
    spawn(s, delay_ms);
}

/* True once pid is gone: reaped by us, or (started by another process of
 * the test) no longer there or a zombie its new parent has not reaped. */
static bool gone(pid_t pid)
{
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid)
        return true;
    if (r == 0)
        return false;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    char path[64], stat[256] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static bool wait_gone(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (gone(pid))
            return true;
        sup_sleep_ms(10);
    }
    return false;
}

void sup_s3_stop(sup_s3 *s)
{
    if (!s || s->pid <= 0)
        return;
    pid_t pid = s->pid;
    kill(pid, SIGTERM);
    kill(pid, SIGCONT); /* a frozen server only sees SIGTERM once thawed */
    if (!wait_gone(pid, 5000)) {
        kill(pid, SIGKILL);
        wait_gone(pid, 5000);
    }
    s->pid = 0;
}

void sup_s3_make_cert(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout '%s/key.pem' -out '%s/cert.pem'",
             dir, dir);
    ck_assert_msg(sup_run(cmd, NULL, true) == 0, "openssl could not make a certificate");
}

void sup_s3_freeze(sup_s3 *s)
{
    ck_assert_int_gt(s->pid, 0);
    kill(s->pid, SIGSTOP);
}

void sup_s3_thaw(sup_s3 *s)
{
    ck_assert_int_gt(s->pid, 0);
    kill(s->pid, SIGCONT);
}
