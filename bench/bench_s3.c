/* bench_s3: uploads/s of 1 KB and 100 KB objects through one lib/s3 client
 * (one keep-alive connection, SigV4 by curl, SHA-256 + MD5 of every body),
 * plus downloads/s and, for comparison, 1 KB uploads with a fresh client
 * (new connection) per object. Server from AQ_BENCH_S3_ENDPOINT, bucket
 * AQ_BENCH_S3_BUCKET (default "bench"), keys S3RVER/S3RVER, us-east-1, path
 * style. AQ_BENCH_SECONDS (default 2) per figure. Prints figures only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "s3.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static s3_opts opts(void)
{
    const char *bucket = getenv("AQ_BENCH_S3_BUCKET");
    return (s3_opts){
        .endpoint = getenv("AQ_BENCH_S3_ENDPOINT"),
        .region = "us-east-1",
        .bucket = bucket && *bucket ? bucket : "bench",
        .access_key = "S3RVER",
        .secret_key = "S3RVER",
        .path_style = true,
        .timeout_ms = 10000,
        .retries = 2,
    };
}

static s3 *open_client(void)
{
    s3_opts o = opts();
    aq_err e = {0};
    s3 *c = s3_open(&o, &e);
    if (!c) {
        fprintf(stderr, "bench_s3: %s\n", e.msg);
        exit(1);
    }
    return c;
}

/* CPU seconds this process has used (user + system). */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

typedef struct result {
    double rate;        /* operations/s */
    double cpu_us;      /* client CPU per operation (hashing, signing, HTTP) */
    long n;
    unsigned long connections;
} result;

static void fail(const aq_err *e)
{
    fprintf(stderr, "bench_s3: %s\n", e->msg);
    exit(1);
}

/* Uploads distinct keys of size bytes for about seconds. fresh: a new
 * client (and so a new connection) per upload. */
static result uploads(size_t size, double seconds, int fresh)
{
    unsigned char *data = malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)(i * 131 + 7);
    s3 *c = fresh ? NULL : open_client();
    result r = {0};
    aq_err e = {0};
    double t0 = now_s(), t = t0, c0 = cpu_s();
    while (t - t0 < seconds) {
        char key[96];
        snprintf(key, sizeof key, "bench/%s%zu/%ld.png", fresh ? "fresh" : "ka", size, r.n);
        data[0] = (unsigned char)r.n; /* every body differs */
        s3 *k = fresh ? open_client() : c;
        if (s3_put(k, key, data, size, "image/png", &e) != 0)
            fail(&e);
        if (fresh) {
            r.connections += s3_connections(k);
            s3_close(k);
        }
        r.n++;
        t = now_s();
    }
    if (!fresh) {
        r.connections = s3_connections(c);
        s3_close(c);
    }
    free(data);
    r.rate = (double)r.n / (t - t0);
    r.cpu_us = (cpu_s() - c0) * 1e6 / (double)r.n;
    return r;
}

/* GETs of the keys uploads() wrote for size, for about seconds. */
static result downloads(size_t size, long keys, double seconds)
{
    s3 *c = open_client();
    buf out = BUF_INIT;
    result r = {0};
    aq_err e = {0};
    double t0 = now_s(), t = t0, c0 = cpu_s();
    while (t - t0 < seconds && keys > 0) {
        char key[96];
        snprintf(key, sizeof key, "bench/ka%zu/%ld.png", size, r.n % keys);
        buf_reset(&out);
        if (s3_get(c, key, &out, NULL, 0, &e) != 0)
            fail(&e);
        r.n++;
        t = now_s();
    }
    r.connections = s3_connections(c);
    buf_free(&out);
    s3_close(c);
    r.rate = (double)r.n / (t - t0);
    r.cpu_us = r.n ? (cpu_s() - c0) * 1e6 / (double)r.n : 0;
    return r;
}

int main(void)
{
    const char *endpoint = getenv("AQ_BENCH_S3_ENDPOINT");
    if (!endpoint || !*endpoint) {
        printf("skipped: no S3 (set AQ_BENCH_S3_ENDPOINT)\n");
        return 0;
    }
    const char *env = getenv("AQ_BENCH_SECONDS");
    double seconds = env && atof(env) > 0 ? atof(env) : 2.0;
    s3 *c = open_client();
    aq_err e = {0};
    if (s3_check(c, &e) != 0) {
        printf("skipped: S3 at %s not usable: %s\n", endpoint, e.msg);
        s3_close(c);
        return 0;
    }
    s3_close(c);

    printf("S3 at %s, bucket %s, one client, %.0f s per figure\n", endpoint, opts().bucket,
           seconds);
    uploads(1024, seconds / 2, 0); /* warm-up: the server's JIT, caches and dirs */
    static const size_t sizes[] = {1024, 100 * 1024};
    long written[2] = {0, 0};
    for (size_t i = 0; i < 2; i++) {
        result r = uploads(sizes[i], seconds, 0);
        written[i] = r.n;
        printf("  PUT %6zu B keep-alive:     %6.0f/s %6.1f MB/s  client CPU %4.0f us/op  (%ld ops, %lu connections)\n",
               sizes[i], r.rate, r.rate * (double)sizes[i] / 1e6, r.cpu_us, r.n, r.connections);
    }
    result f = uploads(1024, seconds, 1);
    printf("  PUT   1024 B new connection: %6.0f/s %6.1f MB/s  client CPU %4.0f us/op  (%ld ops, %lu connections)\n",
           f.rate, f.rate * 1024 / 1e6, f.cpu_us, f.n, f.connections);
    for (size_t i = 0; i < 2; i++) {
        result r = downloads(sizes[i], written[i], seconds);
        printf("  GET %6zu B keep-alive:     %6.0f/s %6.1f MB/s  client CPU %4.0f us/op  (%ld ops, %lu connections)\n",
               sizes[i], r.rate, r.rate * (double)sizes[i] / 1e6, r.cpu_us, r.n, r.connections);
    }
    return 0;
}
