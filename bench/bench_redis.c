/* bench_redis: the cost of TLS and of durable acknowledgement (WAIT) on the
 * queue path, through lib/queue (and so lib/rconn), against servers this
 * program starts itself in a temp dir: a plain master with one replica, and
 * a TLS-only server (certificates made with openssl). For each setup it
 * prints jobs/s and per-call latency (mean, p50, p99) of single enqueues and
 * of the worker's take + start + ack (no rendering), one job per batch of
 * the worker engine's calls: queue_cycle records the previous job done and
 * takes the next, queue_start_many (a cycle of one start) marks it running:
 * two round trips per job, as an idle worker's lone job costs, both durable
 * writes that WAIT follows. TLS is compared
 * with plain TCP to the same server (it listens on both), WAIT 1 with no
 * WAIT to the same master (it has the replica). Best of three runs each,
 * as other work shares the machine. Prints figures; never passes or fails. */

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "job.h"
#include "queue.h"

#define N_JOBS 4000

static char dir[] = "/tmp/avatarq-bench-redis-XXXXXX";
static pid_t pids[4];
static int npids;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void stop_all(void)
{
    for (int i = 0; i < npids; i++) {
        kill(pids[i], SIGTERM);
        waitpid(pids[i], NULL, 0);
    }
    npids = 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_redis: could not remove %s\n", dir);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* redis-server with args (one string of words), waiting for PONG. */
static int start_server(int port, const char *args, const char *cli_tls)
{
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[1500];
        snprintf(cmd, sizeof cmd, "exec redis-server --bind 127.0.0.1 --save '' --appendonly no "
                 "--repl-diskless-sync-delay 0 --dir %s %s >>%s/redis-%d.log 2>&1", dir, args, dir, port);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    pids[npids++] = pid;
    for (int i = 0; i < 200; i++) {
        if (sh("redis-cli %s -p %d ping 2>/dev/null | grep -q PONG", cli_tls, port) == 0)
            return 0;
        usleep(50000);
    }
    return -1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    double per_s, mean, p50, p99;
} result;

static result summarise(double *lat, int n, double total_us)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += lat[i];
    result r = {n * 1e6 / total_us, sum / n, lat[n / 2], lat[(int)(n * 0.99)]};
    return r;
}

static void print(const char *setup, const char *what, result r, const result *base)
{
    printf("%-22s %-18s %8.0f jobs/s  mean %7.1f us  p50 %7.1f us  p99 %8.1f us", setup, what, r.per_s,
           r.mean, r.p50, r.p99);
    if (base)
        printf("  x%.2f", r.per_s / base->per_s);
    printf("\n");
}

/* One job's take + start, with the ack of the previous one (*prev, done)
 * riding on the take: queue_cycle, then queue_start_many. *prev becomes
 * the job taken (its document in *held, its id in id). Returns 1 when a
 * job was taken, 0 when the queue was empty, < 0 on failure. */
static int step(queue *q, queue_taken *held, queue_outcome *prev, size_t nprev, char id[32],
                aq_err *e)
{
    queue_taken next;
    if (queue_cycle(q, "bench:1", prev, nprev, NULL, NULL, 0, 1, JOB_MAX_DOC, &next, e) < 0)
        return -1;
    queue_taken_free(held);
    *held = next;
    if (held->n == 0)
        return 0;
    const char *p = strstr(held->doc[0], "\"id\":\"");
    snprintf(id, 32, "%.*s", p ? (int)strcspn(p + 6, "\"") : 0, p ? p + 6 : "");
    queue_start_item it = {.id = id};
    if (queue_start_many(q, "bench:1", &it, 1, e) < 0)
        return -1;
    *prev = (queue_outcome){.doc = held->doc[0], .len = held->len[0], .id = id,
                            .kind = QUEUE_DONE, .outputs = "{\"32\":\"k\"}", .duration_ms = 1};
    return 1;
}

/* Single enqueues, then take + start + ack of each, one process. */
static int run(const aq_config *c, result *enq, result *cycle)
{
    aq_err e = {0};
    queue *q = queue_open(c, &e);
    if (!q) {
        fprintf(stderr, "bench_redis: %s\n", e.msg);
        return -1;
    }
    double *lat = malloc(sizeof *lat * N_JOBS);
    char doc[160], id[32];
    double t0 = now_us();
    for (int i = 0; i < N_JOBS; i++) {
        snprintf(id, sizeof id, "b%d", i);
        snprintf(doc, sizeof doc, "{\"v\":1,\"id\":\"%s\",\"seed\":\"%s\",\"sizes\":[32]}", id, id);
        double a = now_us();
        if (queue_enqueue(q, NULL, id, doc, strlen(doc), 0, &e) < 0) {
            fprintf(stderr, "bench_redis: enqueue: %s\n", e.msg);
            break;
        }
        lat[i] = now_us() - a;
    }
    *enq = summarise(lat, N_JOBS, now_us() - t0);
    t0 = now_us();
    int n = 0;
    queue_taken held = {0};
    queue_outcome prev;
    size_t nprev = 0;
    for (;;) {
        double a = now_us();
        int rc = step(q, &held, &prev, nprev, id, &e);
        if (rc < 0)
            fprintf(stderr, "bench_redis: cycle: %s\n", e.msg);
        if (rc <= 0 || n == N_JOBS)
            break;
        nprev = 1;
        lat[n++] = now_us() - a;
    }
    queue_taken_free(&held);
    *cycle = summarise(lat, n > 0 ? n : 1, now_us() - t0);
    free(lat);
    queue_close(q);
    return 0;
}

static void config_for(aq_config *c, const char *url, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text, "[redis]\nurl = %s\nnamespace = bench\n%s", url, extra);
    aq_err e = {0};
    if (config_load_string(c, text, "bench", &e) != 0) {
        fprintf(stderr, "bench_redis: %s\n", e.msg);
        exit(1);
    }
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    atexit(stop_all);
    int pm = 36000 + getpid() % 2000, pr = pm + 1, pt = pm + 2, pp = pm + 3;
    sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
       "-keyout ca.key -out ca.crt -subj /CN=bench-ca 2>/dev/null && "
       "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout s.key "
       "-out s.csr -subj /CN=localhost 2>/dev/null && printf 'subjectAltName=IP:127.0.0.1\\n' > s.ext && "
       "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out s.crt -days 1 "
       "-extfile s.ext 2>/dev/null", dir);
    char args[1024], tlscli[600];
    snprintf(args, sizeof args, "--port %d", pm);
    if (start_server(pm, args, "") < 0)
        return 1;
    snprintf(args, sizeof args, "--port %d --replicaof 127.0.0.1 %d", pr, pm);
    if (start_server(pr, args, "") < 0)
        return 1;
    snprintf(args, sizeof args, "--port %d --tls-port %d --tls-cert-file %s/s.crt --tls-key-file %s/s.key "
             "--tls-ca-cert-file %s/ca.crt --tls-auth-clients no", pp, pt, dir, dir, dir);
    snprintf(tlscli, sizeof tlscli, "--tls --cacert %s/ca.crt", dir);
    if (start_server(pt, args, tlscli) < 0)
        return 1;
    for (int i = 0; i < 100 && sh("printf 'SET p 1\\nWAIT 1 100\\n' | redis-cli -p %d | grep -qx 1", pm); i++)
        usleep(100000); /* the replica acknowledges writes (see test_redis_wait) */

    printf("%d single enqueues, then %d take+start+ack cycles, one process, loopback, best of 3\n",
           N_JOBS, N_JOBS);
    char url[128], extra[600];
    const struct {
        const char *name;
        int port;
        bool tls;
        const char *extra;
        int base; /* row to compare with, -1 none */
    } rows[] = {
        {"plain", pp, false, "", -1},
        {"tls (same server)", pt, true, "", 0},
        {"plain, with replica", pm, false, "", -1},
        {"WAIT 1 (same master)", pm, false, "min_replicas_ack = 1\nmin_replicas_timeout_ms = 1000\n", 2},
    };
    result e[4], cy[4];
    for (int i = 0; i < 4; i++) {
        snprintf(url, sizeof url, "%s://127.0.0.1:%d/0", rows[i].tls ? "rediss" : "redis", rows[i].port);
        snprintf(extra, sizeof extra, "%s%s%s%s", rows[i].extra, rows[i].tls ? "tls_ca_file = " : "",
                 rows[i].tls ? dir : "", rows[i].tls ? "/ca.crt\n" : "");
        aq_config c;
        config_for(&c, url, extra);
        e[i].per_s = cy[i].per_s = 0;
        for (int k = 0; k < 3; k++) {
            result re, rc;
            if (run(&c, &re, &rc) < 0)
                return 1;
            if (re.per_s > e[i].per_s)
                e[i] = re;
            if (rc.per_s > cy[i].per_s)
                cy[i] = rc;
        }
        print(rows[i].name, "enqueue", e[i], rows[i].base >= 0 ? &e[rows[i].base] : NULL);
        print(rows[i].name, "take+start+ack", cy[i], rows[i].base >= 0 ? &cy[rows[i].base] : NULL);
    }
    return 0;
}
