/* bench_producer: what issue 14's producer features cost Redis. Starts the
 * real avatarq-worker (processes = 2, local storage without fsync + SQLite
 * in a temp dir) against the Redis at AQ_BENCH_REDIS_URL and drains N small
 * jobs (one 16 px pixel avatar each, enqueued pipelined before the worker
 * starts) in four runs, printing for each the Redis server CPU per job
 * (INFO cpu, before/after) and the top-level calls per job:
 *   plain       one queue, as before issue 14
 *   weighted    [worker] queues = signup:10,bulk:1, the jobs split 1:10
 *   callbacks   every job with a callback_url to a local receiver (python3,
 *               answers 204), counted until every callback is sent
 *   publish     callbacks plus [callbacks] publish = true (PUBLISH NS:done)
 * AQ_BENCH_PRODUCER_JOBS overrides N (default 10000); AQ_BENCH_PRODUCER_ONLY
 * runs one variant. Prints figures only. */
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "queue.h"
#include "retry.h"

#define CHUNK 500

static const char RECEIVER_PY[] =
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def do_POST(self):\n"
    "        self.rfile.read(int(self.headers['Content-Length']))\n"
    "        self.send_response(204)\n"
    "        self.end_headers()\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";

typedef struct variant {
    const char *name;
    const char *worker_extra;    /* [worker] lines */
    bool callbacks, publish, weighted;
} variant;

static const variant VARIANTS[] = {
    {"plain", "", false, false, false},
    {"weighted", "queues = signup:10,bulk:1\n", false, false, true},
    {"callbacks", "", true, false, false},
    {"publish", "", true, true, false},
};

typedef struct run {
    char dir[256], cfg[300], log[300], ns[64];
    aq_config c;
    queue *q;
    redisContext *raw;
    pid_t worker, receiver;
    int port;
} run;

static double redis_cpu(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "INFO cpu");
    double u = 0, s = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "used_cpu_sys:");
        const char *q = strstr(r->str, "used_cpu_user:");
        s = p ? atof(p + 13) : 0;
        u = q ? atof(q + 14) : 0;
    }
    if (r)
        freeReplyObject(r);
    return u + s;
}

/* Calls of the commands a client sends itself (scripts count as one). */
static long long top_calls(redisContext *rc)
{
    static const char *const names[] = {"evalsha", "eval", "blmove", NULL};
    redisReply *r = redisCommand(rc, "INFO commandstats");
    long long total = 0;
    for (char *l = r && r->type == REDIS_REPLY_STRING ? r->str : NULL; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char name[64];
        long long n;
        if (strncmp(l, "cmdstat_", 8) != 0 || sscanf(l + 8, "%63[^:]:calls=%lld", name, &n) != 2)
            continue;
        for (size_t i = 0; names[i]; i++)
            if (strcmp(name, names[i]) == 0)
                total += n;
    }
    if (r)
        freeReplyObject(r);
    return total;
}

static long long hget_int(run *r, const char *field)
{
    char key[128];
    queue_keyf(r->q, key, sizeof key, "stats");
    redisReply *rep = redisCommand(r->raw, "HGET %s %s", key, field);
    long long v = rep && rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
    if (rep)
        freeReplyObject(rep);
    return v;
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int free_port(void)
{
    return 20000 + (int)(getpid() % 20000);
}

/* Waits up to 10 s until 127.0.0.1:port accepts. */
static void wait_port(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return;
        usleep(50000);
    }
}

static int setup(run *r, const char *url, const variant *v)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/avatarq-bench-producer-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    snprintf(r->cfg, sizeof r->cfg, "%s/config.ini", r->dir);
    snprintf(r->log, sizeof r->log, "%s/worker.log", r->dir);
    snprintf(r->ns, sizeof r->ns, "bench-producer-%d-%s", (int)getpid(), v->name);
    r->port = free_port();
    char cb[300] = "";
    if (v->callbacks)
        snprintf(cb, sizeof cb, "[callbacks]\nsecret = bench\npublish = %s\n",
                 v->publish ? "true" : "false");
    char text[3000];
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = %s\n"
             "[worker]\nprocesses = 2\n%s"
             "[storage]\nbackend = local\n[storage.local]\nroot = %s/root\nfsync = false\n"
             "[database]\nbackend = sqlite\n[database.sqlite]\npath = %s/meta.db\n"
             "%s[log]\nlevel = warn\n",
             url, r->ns, v->worker_extra, r->dir, r->dir, cb);
    FILE *f = fopen(r->cfg, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    aq_err e = {0};
    if (config_load(&r->c, r->cfg, &e) != 0 || !(r->q = queue_open(&r->c, &e))) {
        fprintf(stderr, "bench_producer: %s\n", e.msg);
        return -1;
    }
    struct timeval tv = {10, 0};
    r->raw = r->c.redis.unix_path[0] ? redisConnectUnixWithTimeout(r->c.redis.unix_path, tv)
                                     : redisConnectWithTimeout(r->c.redis.host, r->c.redis.port, tv);
    return r->raw && !r->raw->err ? 0 : -1;
}

static void teardown(run *r)
{
    pid_t pids[] = {r->worker, r->receiver};
    for (int i = 0; i < 2; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    if (r->q)
        queue_close(r->q);
    if (r->raw)
        redisFree(r->raw);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (strstr(r->dir, "/avatarq-bench-producer-") && system(cmd) != 0)
        fprintf(stderr, "bench_producer: could not remove %s\n", r->dir);
}

/* n documents; weighted runs put 1 in 11 on signup, the rest on bulk. */
static void enqueue_all(run *r, const variant *v, int n)
{
    queue_enq *jobs = calloc(CHUNK, sizeof *jobs);
    char (*ids)[32] = calloc(CHUNK, sizeof *ids);
    char (*docs)[300] = calloc(CHUNK, sizeof *docs);
    for (int i = 0; i < n; i += CHUNK) {
        int m = n - i < CHUNK ? n - i : CHUNK;
        for (int k = 0; k < m; k++) {
            int j = i + k;
            char cb[120] = "";
            if (v->callbacks)
                snprintf(cb, sizeof cb, ",\"callback_url\":\"http://127.0.0.1:%d/done\"", r->port);
            snprintf(ids[k], sizeof ids[k], "p-%d", j);
            int len = snprintf(docs[k], sizeof docs[k],
                               "{\"v\":1,\"id\":\"%s\",\"seed\":\"u%d\",\"sizes\":[16]%s}", ids[k],
                               j, cb);
            jobs[k] = (queue_enq){.qname = v->weighted ? (j % 11 == 0 ? "signup" : "bulk") : NULL,
                                  .id = ids[k], .doc = docs[k], .len = (size_t)len,
                                  .created_at = now_ms()};
        }
        aq_err e = {0};
        if (queue_enqueue_many_ex(r->q, jobs, (size_t)m, &e) != 0) {
            printf("enqueue failed: %s\n", e.msg);
            break;
        }
    }
    free(jobs);
    free(ids);
    free(docs);
}

static void bench(const char *url, const variant *v, int n)
{
    run r;
    memset(&r, 0, sizeof r);
    printf("-- %s: %d jobs of one 16 px avatar, processes 2\n", v->name, n);
    fflush(stdout);
    if (setup(&r, url, v) != 0) {
        printf("skipped: could not set up (redis at AQ_BENCH_REDIS_URL?)\n");
        teardown(&r);
        return;
    }
    if (v->callbacks) {
        char py[300], port[16];
        snprintf(py, sizeof py, "%s/receiver.py", r.dir);
        FILE *f = fopen(py, "w");
        if (f) {
            fputs(RECEIVER_PY, f);
            fclose(f);
        }
        snprintf(port, sizeof port, "%d", r.port);
        char *argv[] = {"/usr/bin/python3", py, port, NULL};
        r.receiver = spawn(argv, r.log);
        wait_port(r.port);
    }
    enqueue_all(&r, v, n);
    const char *dir = getenv("AQ_BIN_DIR");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/avatarq-worker", dir && *dir ? dir : "bin");
    double cpu0 = redis_cpu(r.raw);
    long long calls0 = top_calls(r.raw);
    int64_t t0 = now_ms();
    char *argv[] = {bin, "-c", r.cfg, NULL};
    r.worker = spawn(argv, r.log);
    while (now_ms() - t0 < 600000) {
        long long done = hget_int(&r, "done");
        long long sent = hget_int(&r, "callbacks_sent");
        if (done >= n && (!v->callbacks || sent >= n))
            break;
        usleep(20000);
    }
    double secs = (double)(now_ms() - t0) / 1000.0;
    double cpu = redis_cpu(r.raw) - cpu0;
    long long calls = top_calls(r.raw) - calls0;
    long long done = hget_int(&r, "done"), sent = hget_int(&r, "callbacks_sent");
    printf("done %lld, callbacks sent %lld (retried %lld) in %.2f s: %.0f jobs/s\n", done, sent,
           hget_int(&r, "callbacks_retried"), secs, secs > 0 ? done / secs : 0.0);
    printf("redis CPU per job: %.1f us; top-level calls per job (EVALSHA/BLMOVE: "
           "worker, callback senders, supervisors): %.2f\n", done > 0 ? cpu * 1e6 / done : 0.0,
           done > 0 ? (double)calls / done : 0.0);
    teardown(&r);
}

int main(void)
{
    const char *url = getenv("AQ_BENCH_REDIS_URL");
    if (!url || !*url) {
        printf("skipped: no redis (AQ_BENCH_REDIS_URL)\n");
        return 0;
    }
    const char *nenv = getenv("AQ_BENCH_PRODUCER_JOBS");
    int n = nenv && atoi(nenv) > 0 ? atoi(nenv) : 10000;
    const char *only = getenv("AQ_BENCH_PRODUCER_ONLY"); /* one variant by name */
    for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++)
        if (!only || !*only || strcmp(only, VARIANTS[i].name) == 0)
            bench(url, &VARIANTS[i], n);
    return 0;
}
