/* bench_s3: uploads/s of 1 KB and 100 KB objects through one lib/s3 client
 * (one keep-alive connection, SigV4 by curl, SHA-256 + MD5 of every body),
 * plus downloads/s and, for comparison, 1 KB uploads with a fresh client
 * (new connection) per object; then end to end: jobs/s through the real
 * avatarq-worker (processes = 2, [storage] backend = s3, SQLite) against the
 * Redis at AQ_BENCH_REDIS_URL. Server from AQ_BENCH_S3_ENDPOINT, bucket
 * AQ_BENCH_S3_BUCKET (default "bench"), keys S3RVER/S3RVER, us-east-1, path
 * style. AQ_BENCH_SECONDS (default 2) per figure, AQ_BENCH_S3_E2E_JOBS
 * (default 400) jobs per end-to-end figure. Prints figures only. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "queue.h"
#include "retry.h"
#include "s3.h"
#include "support_worker.h"

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

static void bench_fail(const aq_err *e)
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
            bench_fail(&e);
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
            bench_fail(&e);
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


/* ---- end to end: the real worker with the S3 backend ---- */

/* n jobs of the given sizes ("[128]") through the worker; prints jobs/s. */
static void e2e_run(const char *redis_url, const char *tag, const char *sizes, int nsizes, int n)
{
    wh_fleet r;
    char dirtag[64];
    snprintf(dirtag, sizeof dirtag, "s3-%s", tag);
    if (wh_fleet_dir(&r, NULL, dirtag) != 0) {
        printf("  end to end %s: skipped (no temp dir)\n", sizes);
        return;
    }
    s3_opts o = opts();
    char text[2048];
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = bench-s3-%d-%s\n"
             "[worker]\nprocesses = 2\n"
             "[storage]\nbackend = s3\nprefix = e2e-%s\n"
             "[storage.s3]\nendpoint = %s\nregion = %s\nbucket = %s\naccess_key = %s\n"
             "secret_key = %s\npath_style = true\n"
             "[database]\nbackend = sqlite\n[database.sqlite]\npath = %s/meta.db\n"
             "[log]\nlevel = warn\n",
             redis_url, (int)getpid(), tag, tag, o.endpoint, o.region, o.bucket, o.access_key,
             o.secret_key, r.dir);
    if (wh_fleet_start(&r, text, 2, 30000) != 0) {
        printf("  end to end %s: the worker did not come up (see %s)\n", sizes, r.log);
        wh_fleet_stop(&r, true); /* keep its log */
        return;
    }
    char (*ids)[32] = calloc((size_t)n, sizeof *ids);
    char (*docs)[160] = calloc((size_t)n, sizeof *docs);
    queue_item *items = calloc((size_t)n, sizeof *items);
    int64_t t0 = now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "s3e2e-%d", i);
        int len = snprintf(docs[i], sizeof docs[i],
                           "{\"v\":1,\"id\":\"%s\",\"seed\":\"user-%d@example.com\","
                           "\"style\":\"pixel\",\"sizes\":%s}", ids[i], i, sizes);
        items[i] = (queue_item){.id = ids[i], .doc = docs[i], .len = (size_t)len,
                                .created_at = t0};
    }
    aq_err e = {0};
    if (queue_enqueue_many(r.q, NULL, items, (size_t)n, &e) != 0)
        printf("  end to end: enqueue failed: %s\n", e.msg);
    while (wh_fleet_finished(&r) < n && now_ms() - t0 < 600000)
        usleep(20000);
    double secs = (double)(now_ms() - t0) / 1000.0;
    queue_stats st;
    memset(&st, 0, sizeof st);
    queue_stats_get(r.q, &st, &e);
    printf("  end to end, sizes %-22s %6.0f jobs/s %6.0f uploads/s  (%lld done, %lld dead of %d in %.1f s)\n",
           sizes, (double)st.done / secs, (double)st.done * nsizes / secs, (long long)st.done,
           (long long)st.dead_total, n, secs);
    free(ids);
    free(docs);
    free(items);
    wh_fleet_stop(&r, false);
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

    const char *redis_url = getenv("AQ_BENCH_REDIS_URL");
    if (!redis_url || !*redis_url) {
        printf("  end to end: skipped: no Redis (set AQ_BENCH_REDIS_URL)\n");
        return 0;
    }
    const char *jenv = getenv("AQ_BENCH_S3_E2E_JOBS");
    int n = jenv && atoi(jenv) > 0 ? atoi(jenv) : 400;
    printf("end to end: %d pixel jobs each, real avatarq-worker, processes 2, S3 + SQLite\n", n);
    e2e_run(redis_url, "one", "[128]", 1, n);
    e2e_run(redis_url, "five", "[32,64,128,256,512]", 5, n);
    return 0;
}
