#include "support_rtopo.h"

#include <check.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "meta.h"
#include "support.h"

static char dir[256];

void rt_begin(void)
{
    sup_kill_listed_at_exit();
    sup_kill_listed(getppid()); /* whatever an earlier failed test left */
    srand((unsigned)getpid());
    sup_tmpdir(dir, sizeof dir);
}

void rt_end(void)
{
    sup_kill_listed(getppid());
    if (dir[0] && !getenv("AQ_TEST_KEEP"))
        sup_rmtree(dir);
    dir[0] = '\0';
}

void rt_reap_strays(void)
{
    sup_reap_strays();
}

const char *rt_dir(void)
{
    return dir;
}

const char *rt_path(const char *name)
{
    static char p[16][512];
    static int slot;
    char *out = p[slot++ % 16];
    snprintf(out, sizeof p[0], "%s/%s", dir, name);
    return out;
}

pid_t rt_spawn(char *const argv[], const char *log)
{
    pid_t pid = sup_spawn(argv, NULL, log);
    ck_assert_msg(pid > 0, "cannot start %s", argv[0]);
    sup_track(pid);
    return pid;
}

void rt_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    if (waitpid(pid, NULL, WNOHANG) != 0) { /* gone already (or reaped by sup_wait) */
        sup_untrack(pid);
        return;
    }
    kill(pid, sig);
    /* longer than rt_config's shutdown_timeout_s: a worker stop is graceful */
    if (sup_wait(pid, 30000) == -1) { /* a laggard: it and its children */
        sup_kill_tree(pid);
        waitpid(pid, NULL, 0);
    }
    sup_untrack(pid);
}

/* ---- servers ---- */

static void write_conf(rt_srv *s, bool sentinel, const char *lines)
{
    char text[8192];
    const char *tls = strstr(lines, "TLSPORT");
    /* TLSPORT in the lines marks a TLS-only server: the port goes there */
    char body[6000];
    snprintf(body, sizeof body, "%s", lines);
    if (tls) {
        char *p = strstr(body, "TLSPORT");
        char rest[6000];
        snprintf(rest, sizeof rest, "%s", p + 7);
        snprintf(p, sizeof body - (size_t)(p - body), "%d%s", s->port, rest);
    }
    snprintf(text, sizeof text, "bind 127.0.0.1\nport %d\ndir %s\ndaemonize no\nlogfile \"\"\n%s%s\n",
             tls ? 0 : s->port, s->dir,
             sentinel ? "" : "save \"\"\nappendonly no\nrepl-diskless-sync-delay 0\n", body);
    sup_write_file(s->conf, text);
}

/* Whether the server listening on s->port is the process we spawned, not
 * one that took the port between our pick and its bind (ours then exits
 * with "Address already in use"). A TLS-only server is only checked to be
 * alive (redis-cli would need its certificates). */
static bool server_is_ours(const rt_srv *s)
{
    if (waitpid(s->pid, NULL, WNOHANG) != 0)
        return false;
    if (s->tls)
        return true;
    return sup_redis_info_is(rt_cli("-p %d info server", s->port), s->pid);
}

/* Starts the server of s->conf; false when the port turned out not to be
 * ours (the process is stopped then). */
static bool spawn_server(rt_srv *s, bool sentinel)
{
    char log[340];
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    char *argv[] = {sentinel ? "/usr/bin/redis-sentinel" : "/usr/bin/redis-server", s->conf, NULL};
    s->pid = rt_spawn(argv, log);
    ck_assert_msg(sup_wait_port(s->port, 15000), "%s did not listen on %d (see %s)", argv[0], s->port,
                  log);
    if (server_is_ours(s))
        return true;
    rt_kill(s->pid, SIGKILL);
    s->pid = 0;
    return false;
}

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A cluster node also listens on port + 10000 (its bus): both must be free
 * and below 65536. */
static int cluster_port(void)
{
    for (int i = 0; i < 1000; i++) {
        int p = 20000 + rand() % 30000;
        if (port_free(p) && port_free(p + 10000))
            return p;
    }
    ck_abort_msg("no free port pair for a cluster node");
    return 0;
}

void rt_server(rt_srv *s, const char *name, bool sentinel, const char *lines)
{
    memset(s, 0, sizeof *s);
    lines = lines ? lines : "";
    snprintf(s->dir, sizeof s->dir, "%s/%s", dir, name);
    ck_assert_int_eq(mkdir(s->dir, 0700), 0);
    snprintf(s->conf, sizeof s->conf, "%s/%s.conf", s->dir, name);
    s->tls = strstr(lines, "TLSPORT") != NULL;
    for (int tries = 0; tries < 5; tries++) { /* a new port when one was taken */
        s->port = strstr(lines, "cluster-enabled yes") ? cluster_port() : sup_free_port();
        write_conf(s, sentinel, lines);
        if (spawn_server(s, sentinel))
            return;
    }
    ck_abort_msg("%s: no port of its own in 5 tries (see %s)", name, s->dir);
}

void rt_server_restart(rt_srv *s, bool sentinel)
{
    ck_assert_msg(spawn_server(s, sentinel), "port %d taken meanwhile (see %s)", s->port,
                  s->dir);
}

static const char *trimmed(buf *b)
{
    if (!b->data)
        return "";
    while (b->len && strchr("\r\n ", b->data[b->len - 1]))
        b->data[--b->len] = '\0';
    return (const char *)b->data;
}

static const char *cli_v(const char *fmt, va_list ap)
{
    static buf out;
    char args[4096], cmd[4200];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "redis-cli %s", args);
    sup_run(cmd, &out, true);
    return trimmed(&out);
}

const char *rt_cli(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *s = cli_v(fmt, ap);
    va_end(ap);
    return s;
}

bool rt_cli_wait(int timeout_ms, const char *want, const char *fmt, ...)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        va_list ap;
        va_start(ap, fmt);
        const char *s = cli_v(fmt, ap);
        va_end(ap);
        if (strstr(s, want))
            return true;
        sup_sleep_ms(100);
    }
    return false;
}

/* ---- certificates ---- */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    buf out = BUF_INIT;
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "%s\n%s", cmd, out.data ? (char *)out.data : "");
    buf_free(&out);
}

/* A key and a certificate signed by the test CA (EC keys: quick to make). */
static void signed_cert(const char *name, const char *cn, const char *ext)
{
    sh("cd '%s' && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
       "-keyout %s.key -out %s.csr -subj /CN=%s", dir, name, name, cn);
    sh("cd '%s' && printf '%%s\\n' '%s' > %s.ext && openssl x509 -req -in %s.csr -CA ca.crt "
       "-CAkey ca.key -CAcreateserial -out %s.crt -days 2 -extfile %s.ext",
       dir, ext, name, name, name, name);
}

void rt_certs(void)
{
    const char *ca = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                     "-days 2";
    sh("cd '%s' && %s -keyout ca.key -out ca.crt -subj /CN=avatarq-test-ca", dir, ca);
    sh("cd '%s' && %s -keyout other-ca.key -out other-ca.crt -subj /CN=unrelated-ca", dir, ca);
    signed_cert("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    signed_cert("client", "avatarq-client", "extendedKeyUsage=clientAuth");
}

/* ---- the job flow ---- */

void rt_config(const char *path, const char *ns, const char *redis_lines, const char *worker_lines)
{
    char text[8192];
    snprintf(text, sizeof text,
             "[redis]\nnamespace = %s\nqueue = default\n%s\n"
             "[storage]\nbackend = local\nprefix = avatars\n"
             "[storage.local]\nroot = %s/root\nfsync = false\n"
             "[database]\nbackend = sqlite\n[database.sqlite]\npath = %s/meta.db\n"
             "[log]\nlevel = info\n"
             "[worker]\nprocesses = 2\nheartbeat_interval_s = 1\nheartbeat_ttl_s = 5\n"
             "job_timeout_s = 30\nshutdown_timeout_s = 10\nmax_attempts = 25\n"
             "backoff_base_ms = 50\nbackoff_max_ms = 500\n%s\n",
             ns, redis_lines ? redis_lines : "", dir, dir, worker_lines ? worker_lines : "");
    sup_write_file(path, text);
}

int rt_avatarq(buf *out, const char *cfg, const char *fmt, ...)
{
    char args[2048], cmd[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' %s", sup_bin("avatarq"), cfg, args);
    return sup_run(cmd, out, true);
}

int rt_batch(const char *cfg, const char *prefix, int n, buf *out)
{
    char seeds[512];
    snprintf(seeds, sizeof seeds, "%s/seeds-%s.txt", dir, prefix);
    FILE *f = fopen(seeds, "w");
    ck_assert_msg(f != NULL, "cannot write %s", seeds);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s-%d\n", prefix, i);
    fclose(f);
    return rt_avatarq(out, cfg, "batch --sizes 32 '%s'", seeds);
}

pid_t rt_worker(const char *cfg, const char *log)
{
    char *argv[] = {(char *)sup_bin("avatarq-worker"), "-c", (char *)cfg, NULL};
    return rt_spawn(argv, log);
}

long long rt_stat(const char *cfg, const char *field)
{
    buf out = BUF_INIT;
    long long v = -1;
    if (rt_avatarq(&out, cfg, "stats --json") == 0 && out.data) {
        json_t *j = json_loads((const char *)out.data, 0, NULL);
        const char *dot = strchr(field, '.');
        json_t *o = j;
        if (j && dot) {
            char head[64];
            snprintf(head, sizeof head, "%.*s", (int)(dot - field), field);
            o = json_object_get(j, head);
        }
        json_t *x = o ? json_object_get(o, dot ? dot + 1 : field) : NULL;
        if (json_is_integer(x))
            v = json_integer_value(x);
        json_decref(j);
    }
    buf_free(&out);
    return v;
}

bool rt_wait_stat(const char *cfg, const char *field, long long target, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        if (rt_stat(cfg, field) >= target)
            return true;
        sup_sleep_ms(200);
    }
    return false;
}

long long rt_meta_rows(const char *cfg)
{
    static aq_config c;
    aq_err e = {0};
    ck_assert_msg(config_load(&c, cfg, &e) == 0, "%s", e.msg);
    meta m;
    ck_assert_msg(meta_open(&m, &c, true, &e) == 0, "%s", e.msg);
    int64_t n = -1;
    ck_assert_msg(meta_count(&m, &n, &e) == 0, "%s", e.msg);
    meta_close(&m);
    return n;
}

void rt_show(const char *log, int lines)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2", lines, log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log %s)\n", log);
}
