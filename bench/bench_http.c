/* bench_http: avatarq-http beside its peers, same machine, same run, same
 * load client (an epoll client in this file: N keep-alive connections, one
 * request in flight on each, HTTP/1.1, for AQ_BENCH_SECONDS each).
 *
 *  1. Cached GET of a stored 128 px avatar: avatarq-http ([http] threads = 2)
 *     vs nginx (Debian package; 2 worker processes, sendfile, keep-alive
 *     without a request limit) serving the same file from the same disk;
 *     then the same with If-None-Match (304s).
 *  2. GET /render/pixel/{seed}.png?size=256 with a distinct seed per request
 *     vs a self-hosted DiceBear identicon service (bench/peers/http:
 *     @dicebear/core + collection + converter behind node's http, toPng with
 *     `fonts` and `size`), GET /identicon/{seed}.png?size=256.
 *
 * The avatar is made by the library itself (job_parse + avatar_generate:
 * file and metadata row, as a worker would). Needs bin/avatarq-http (from
 * AQ_BIN_DIR), nginx, node and `npm ci` in bench/peers/http (run here when
 * node_modules is missing). A peer that cannot start is reported and
 * skipped. Prints figures and ratios, never pass/fail.
 * Each pair runs AQ_BENCH_ROUNDS times in alternating order and the means
 * are compared (other load on the machine drifts; alternating shares it).
 * Beside req/s, each server's own CPU time per request (all processes of
 * its group, from /proc) is printed: a figure the machine's other load
 * disturbs much less than throughput.
 * Environment: AQ_BENCH_SECONDS [5], AQ_BENCH_CONNS [50], AQ_BENCH_ROUNDS [3]. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "avatar.h"
#include "config.h"
#include "job.h"
#include "meta.h"
#include "storage.h"
#include "support.h"

#define MAX_CONNS 1024
#define RBUF 65536
#define FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the load client ---- */

typedef struct conn {
    int fd;
    char buf[RBUF];
    size_t have;
    long body_left;          /* -1: still reading the header */
    int status;
} conn;

typedef struct load {
    int port;
    const char *path_fmt;    /* printf format; %llu receives a fresh number when distinct */
    bool distinct;
    const char *header;      /* one extra header line, or NULL */
    int nconns;
    double seconds;
    unsigned long long seq, ok, other, reconnects;
    bool counting;
} load;

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends the next request (small: one write on a connected socket). */
static int send_req(load *l, conn *c)
{
    char path[512], req[1024];
    if (l->distinct)
        snprintf(path, sizeof path, l->path_fmt, ++l->seq);
    else
        snprintf(path, sizeof path, "%s", l->path_fmt);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s\r\n", path,
                     l->header ? l->header : "", l->header ? "\r\n" : "");
    c->have = 0;
    c->body_left = -1;
    for (int off = 0; off < n;) {
        ssize_t w = write(c->fd, req + off, (size_t)(n - off));
        if (w < 0 && errno == EAGAIN) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL); /* connect still in progress */
            continue;
        }
        if (w <= 0)
            return -1;
        off += (int)w;
    }
    return 0;
}

static int open_conn(load *l, int ep, conn *c)
{
    c->fd = dial(l->port);
    if (c->fd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return send_req(l, c);
}

/* Parses what arrived; true when one whole response is in. */
static bool response_done(conn *c)
{
    if (c->body_left < 0) {
        char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
        if (!end)
            return false;
        *end = '\0';
        c->status = atoi(c->buf + 9);
        const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
        long len = cl ? atol(cl + 17) : 0;
        size_t hdr = (size_t)(end - c->buf) + 4;
        c->body_left = len - (long)(c->have - hdr);
        c->have = 0;
    }
    return c->body_left <= 0;
}

static void on_readable(load *l, int ep, conn *c)
{
    ssize_t n = read(c->fd, c->buf + c->have, c->body_left < 0 ? sizeof c->buf - c->have - 1 : sizeof c->buf);
    if (n <= 0) { /* closed by the server: a new connection */
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        l->reconnects++;
        if (open_conn(l, ep, c) != 0)
            c->fd = -1;
        return;
    }
    if (c->body_left < 0)
        c->have += (size_t)n;
    else
        c->body_left -= n;
    if (!response_done(c))
        return;
    if (l->counting && (c->status == 200 || c->status == 304))
        l->ok++;
    else if (l->counting)
        l->other++;
    send_req(l, c);
}

/* Runs the load; returns completed responses per second. */
static double run_load(load *l)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    conn *cs = calloc((size_t)l->nconns, sizeof *cs);
    for (int i = 0; i < l->nconns; i++)
        if (open_conn(l, ep, &cs[i]) != 0)
            cs[i].fd = -1;
    struct epoll_event evs[256];
    double start = now_s(), t0 = 0, warm = 0.5;
    while (now_s() - start < warm + l->seconds) {
        if (!l->counting && now_s() - start >= warm) {
            l->counting = true;
            t0 = now_s();
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++)
            on_readable(l, ep, evs[i].data.ptr);
    }
    double elapsed = now_s() - t0;
    for (int i = 0; i < l->nconns; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    free(cs);
    close(ep);
    return (double)l->ok / elapsed;
}

/* ---- processes ---- */

static pid_t kids[8];
static int nkids;

static void stop_kids(void)
{
    for (int i = 0; i < nkids; i++)
        if (kids[i] > 0) {
            kill(-kids[i], SIGTERM);
            for (int t = 0; t < 50 && waitpid(kids[i], NULL, WNOHANG) == 0; t++)
                usleep(100000);
            kill(-kids[i], SIGKILL);
            waitpid(kids[i], NULL, 0);
            kids[i] = 0;
        }
}

static void on_signal(int sig)
{
    stop_kids();
    _exit(128 + sig);
}

/* sup_spawn_in of the test support, the pid kept for stop_kids. */
static pid_t spawn(char *const argv[], const char *log, const char *cwd)
{
    pid_t pid = sup_spawn_in(cwd, argv, NULL, log);
    kids[nkids++] = pid;
    return pid;
}

/* ---- the stored avatar, made as a worker makes it ---- */

static int make_avatar(const char *dir, const aq_config *cfg)
{
    aq_err e = {0};
    job_limits lim;
    storage st;
    meta db;
    job_request *r = malloc(sizeof *r);
    const char *doc = "{\"id\":\"bench-1\",\"seed\":\"bench\",\"sizes\":[128]}";
    if (job_limits_from_config(&lim, cfg, &e) || job_parse(doc, strlen(doc), &lim, r, &e) ||
        storage_open(&st, cfg, &e) || meta_open(&db, cfg, false, &e)) {
        fprintf(stderr, "bench_http: %s (%s)\n", e.msg, dir);
        return -1;
    }
    avatar_ctx ctx;
    avatar_init(&ctx, &st, &db, cfg->storage.prefix, "bench");
    int rc = avatar_generate(&ctx, r, 1, NULL, &e);
    if (rc)
        fprintf(stderr, "bench_http: %s\n", e.msg);
    avatar_free(&ctx);
    meta_close(&db);
    storage_close(&st);
    free(r);
    return rc;
}

/* ---- the runs ---- */

/* Which process group serves which port, for the CPU figures. */
typedef struct served {
    int port;
    pid_t pgid;
} served;
static served servers[4];
static int nservers;

static void serves(int port, pid_t pgid)
{
    if (nservers < 4)
        servers[nservers++] = (served){port, pgid};
}

/* CPU seconds (user + system) used so far by every process of group pgid
 * (nginx's master and workers; a program's threads count in its process). */
static double group_cpu_s(pid_t pgid)
{
    DIR *d = opendir("/proc");
    double ticks = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], line[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = e->d_name[0] >= '0' && e->d_name[0] <= '9' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        const char *rp = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        fclose(f);
        int pgrp = 0;
        unsigned long ut = 0, st = 0;
        /* after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (rp && sscanf(rp + 2, "%*c %*d %d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &pgrp, &ut, &st) == 3 &&
            pgrp == pgid)
            ticks += (double)(ut + st);
    }
    if (d)
        closedir(d);
    return ticks / (double)sysconf(_SC_CLK_TCK);
}

static pid_t group_of(int port)
{
    for (int i = 0; i < nservers; i++)
        if (servers[i].port == port)
            return servers[i].pgid;
    return 0;
}

/* One measurement: requests per second, and the server's CPU per request
 * (its own CPU time, whatever else runs on the machine) into *cpu_us. */
static double figure_cpu(const char *what, int port, const char *path, bool distinct,
                         const char *header, int conns, double seconds, double *cpu_us)
{
    load l = {.port = port, .path_fmt = path, .distinct = distinct, .header = header,
              .nconns = conns, .seconds = seconds};
    pid_t g = group_of(port);
    double c0 = g ? group_cpu_s(g) : 0;
    double rps = run_load(&l);
    double us = g && l.ok ? (group_cpu_s(g) - c0) * 1e6 / (double)l.ok : 0;
    if (cpu_us)
        *cpu_us = us;
    printf("  %-44s %10.0f req/s  %6.1f us CPU/req  (%llu ok, %llu other, %llu reconnects)\n", what,
           rps, us, l.ok, l.other, l.reconnects);
    fflush(stdout);
    return rps;
}

static double figure(const char *what, int port, const char *path, bool distinct,
                     const char *header, int conns, double seconds)
{
    return figure_cpu(what, port, path, distinct, header, conns, seconds, NULL);
}

/* One side of a comparison. */
typedef struct side {
    const char *name, *path;
    int port;
    double sum;              /* req/s summed over the rounds */
    double cpu;              /* CPU us per request summed over the rounds */
} side;

/* Runs a and b in alternating order for rounds rounds (the machine's other
 * load drifts; alternating shares it out), prints each round and the mean,
 * returns mean(a) / mean(b). */
static double side_by_side(side *a, side *b, bool distinct, int rounds, int conns, double seconds)
{
    for (int i = 0; i < rounds; i++) {
        side *first = i % 2 ? b : a, *second = i % 2 ? a : b;
        double c1, c2;
        first->sum += figure_cpu(first->name, first->port, first->path, distinct, NULL, conns, seconds, &c1);
        first->cpu += c1;
        second->sum += figure_cpu(second->name, second->port, second->path, distinct, NULL, conns, seconds, &c2);
        second->cpu += c2;
    }
    printf("  mean of %d rounds: %s %.0f req/s (%.1f us CPU/req), %s %.0f req/s (%.1f us CPU/req)\n",
           rounds, a->name, a->sum / rounds, a->cpu / rounds, b->name, b->sum / rounds, b->cpu / rounds);
    if (a->cpu > 0)
        printf("  CPU per request, %s / %s: %.2fx\n", b->name, a->name, b->cpu / a->cpu);
    return b->sum > 0 ? a->sum / b->sum : 0;
}

static int start_nginx(const char *dir, const char *root, int port)
{
    char conf[8192], path[600];
    snprintf(conf, sizeof conf,
             "worker_processes 2;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\n"
             "events { worker_connections 4096; use epoll; }\n"
             "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n"
             "  keepalive_requests 100000000;\n  keepalive_timeout 60;\n"
             "  client_body_temp_path %s/t1;\n  proxy_temp_path %s/t2;\n  fastcgi_temp_path %s/t3;\n"
             "  uwsgi_temp_path %s/t4;\n  scgi_temp_path %s/t5;\n  types { image/png png; }\n"
             "  server {\n    listen 127.0.0.1:%d;\n    root %s;\n"
             "    location / { add_header Cache-Control \"public, max-age=31536000, immutable\"; }\n  }\n}\n",
             dir, dir, dir, dir, dir, dir, dir, port, root);
    snprintf(path, sizeof path, "%s/nginx.conf", dir);
    sup_write_file(path, conf);
    char log[600];
    snprintf(log, sizeof log, "%s/nginx.out", dir);
    char *argv[] = {"nginx", "-p", (char *)dir, "-c", path, NULL};
    serves(port, spawn(argv, log, NULL));
    return sup_wait_port(port, 10000) ? 0 : -1;
}

static int start_dicebear(const char *dir, int port)
{
    char peer[600], cmd[1400], log[600], ports[16];
    snprintf(peer, sizeof peer, "%s/bench/peers/http", getenv("AQ_BENCH_SRC") ? getenv("AQ_BENCH_SRC") : ".");
    snprintf(cmd, sizeof cmd, "%s/node_modules/@dicebear/converter", peer);
    if (access(cmd, R_OK) != 0) {
        snprintf(cmd, sizeof cmd, "cd '%s' && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1", peer);
        if (system(cmd) != 0)
            return -1;
    }
    snprintf(log, sizeof log, "%s/dicebear.log", dir);
    snprintf(ports, sizeof ports, "%d", port);
    char *argv[] = {"node", "server.mjs", ports, FONT, NULL};
    serves(port, spawn(argv, log, peer));
    return sup_wait_port(port, 20000) ? 0 : -1;
}

/* One run's settings and scratch. */
typedef struct bench {
    char dir[64], root[600], conf[600];
    int hport, nport, dport;
    int conns, rounds;
    double seconds;
    aq_config cfg;
} bench;

/* The temp dir, config.ini, the stored avatar (readable by nginx's
 * workers) and avatarq-http listening. */
static int prepare(bench *b)
{
    snprintf(b->dir, sizeof b->dir, "/tmp/avatarq-bench-http-XXXXXX");
    if (!mkdtemp(b->dir))
        return -1;
    chmod(b->dir, 0755); /* nginx's workers run as www-data */
    snprintf(b->root, sizeof b->root, "%s/root", b->dir);
    b->hport = sup_free_port();
    b->nport = sup_free_port();
    b->dport = sup_free_port();
    const char *redis = getenv("AQ_BENCH_REDIS_URL");
    char text[2048], cmd[700], bin[600], log[600];
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\n[storage.local]\nroot = %s\nfsync = false\n[database.sqlite]\n"
             "path = %s/meta.db\n[http]\nlisten = 127.0.0.1:%d\nthreads = 2\n[log]\nlevel = warn\n",
             redis && *redis ? redis : "redis://127.0.0.1:1/0", b->root, b->dir, b->hport);
    snprintf(b->conf, sizeof b->conf, "%s/config.ini", b->dir);
    sup_write_file(b->conf, text);
    aq_err e = {0};
    if (config_load(&b->cfg, b->conf, &e) != 0 || make_avatar(b->dir, &b->cfg) != 0) {
        fprintf(stderr, "bench_http: %s\n", e.msg);
        return -1;
    }
    snprintf(cmd, sizeof cmd, "chmod -R a+rX '%s'", b->root);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_http: chmod failed\n");
    snprintf(bin, sizeof bin, "%s/avatarq-http", getenv("AQ_BIN_DIR") ? getenv("AQ_BIN_DIR") : "bin");
    snprintf(log, sizeof log, "%s/http.log", b->dir);
    char *argv[] = {bin, "-c", b->conf, NULL};
    serves(b->hport, spawn(argv, log, NULL));
    if (!sup_wait_port(b->hport, 10000)) {
        fprintf(stderr, "bench_http: avatarq-http did not start (see %s)\n", log);
        return -1;
    }
    return 0;
}

/* The If-None-Match header a client has from an earlier GET. */
static bool known_etag(bench *b, char *hdr, size_t n)
{
    meta db;
    aq_err e = {0};
    meta_row *row = malloc(sizeof *row);
    bool ok = row && meta_open(&db, &b->cfg, true, &e) == 0;
    if (ok) {
        ok = meta_get(&db, "bench-1", row, &e) == 0;
        meta_close(&db);
    }
    const char *p = ok ? strstr(row->sha256, "\"128\":\"") : NULL;
    if (p)
        snprintf(hdr, n, "If-None-Match: \"%.64s\"", p + 7);
    free(row);
    return p != NULL;
}

static void static_files(bench *b)
{
    const char *img = "/avatars/bench-1/128.png";
    printf("cached GET of a stored 128 px avatar (%s):\n", img);
    if (start_nginx(b->dir, b->root, b->nport) == 0) {
        side a = {"avatarq-http", img, b->hport, 0, 0};
        side n = {"nginx 1.22 (sendfile, 2 workers)", img, b->nport, 0, 0};
        printf("  ratio avatarq-http / nginx: %.2fx\n",
               side_by_side(&a, &n, false, b->rounds, b->conns, b->seconds));
    } else {
        printf("  nginx: could not start (see %s/nginx-error.log)\n", b->dir);
        figure("avatarq-http", b->hport, img, false, NULL, b->conns, b->seconds);
    }
    char inm[200];
    if (known_etag(b, inm, sizeof inm))
        figure("avatarq-http, If-None-Match (304)", b->hport, img, false, inm, b->conns, b->seconds);
}

static void renders(bench *b)
{
    const char *path = "/render/pixel/seed-%llu.png?size=256";
    printf("GET /render/pixel/{seed}.png?size=256, a new seed every request:\n");
    if (start_dicebear(b->dir, b->dport) == 0) {
        side a = {"avatarq-http /render/pixel", path, b->hport, 0, 0};
        side d = {"DiceBear 9 identicon (node, fonts+size)", "/identicon/seed-%llu.png?size=256",
                  b->dport, 0, 0};
        printf("  ratio avatarq-http / DiceBear: %.1fx\n",
               side_by_side(&a, &d, true, b->rounds, b->conns, b->seconds));
    } else {
        printf("  DiceBear: could not start (node/npm; see %s/dicebear.log)\n", b->dir);
        figure("avatarq-http /render/pixel", b->hport, path, true, NULL, b->conns, b->seconds);
    }
}

static int env_int(const char *name, int def, int min, int max)
{
    const char *v = getenv(name);
    int n = v ? atoi(v) : def;
    return n >= min && n <= max ? n : def;
}

int main(void)
{
    static bench b;
    b.seconds = getenv("AQ_BENCH_SECONDS") ? atof(getenv("AQ_BENCH_SECONDS")) : 5;
    if (b.seconds <= 0)
        b.seconds = 5;
    b.conns = env_int("AQ_BENCH_CONNS", 50, 1, MAX_CONNS);
    b.rounds = env_int("AQ_BENCH_ROUNDS", 3, 1, 100);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    atexit(stop_kids);
    int rc = prepare(&b);
    if (rc == 0) {
        printf("load: %d keep-alive connections, one request in flight each, %.0f s per figure, "
               "%d alternating rounds, epoll client (1 thread); servers: 2 threads / 2 workers\n",
               b.conns, b.seconds, b.rounds);
        static_files(&b);
        renders(&b);
    }
    stop_kids();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b.dir);
    if (b.dir[0] && system(cmd) != 0)
        fprintf(stderr, "bench_http: could not remove %s\n", b.dir);
    return rc ? 1 : 0;
}
