/* sampler: a background thread that reads the queue counters every
 * SAMPLE_MS into a ring of the last five minutes, so the dashboard's chart
 * of queue depth and throughput is full the moment the page opens (GET
 * /v1/stats?history=1) instead of starting empty in every browser. Once a
 * minute it also lists the queues in Redis (SCAN walks the whole keyspace,
 * too much for every /metrics scrape). It has its own Redis handle; while
 * Redis is down it records nothing. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"

#define SAMPLE_MS 2000
#define SAMPLES 150 /* five minutes */
#define SCAN_EVERY 30 /* samples between two SCANs for queue names: a minute */

typedef struct sample {
    int64_t t_ms, queued, processing, done;
} sample;

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool running, stop;
    sample ring[SAMPLES];
    size_t next, n;
    char names[HTTP_QUEUES_MAX][80]; /* queue names seen by the last SCAN */
    size_t nnames;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

typedef struct names {
    char v[HTTP_QUEUES_MAX][80];
    size_t n;
} names;

static int on_name(const char *name, int64_t len, const char *oldest, size_t olen, void *ud)
{
    (void)len;
    (void)oldest;
    (void)olen;
    names *n = ud;
    if (n->n < HTTP_QUEUES_MAX)
        snprintf(n->v[n->n++], sizeof n->v[0], "%s", name);
    return n->n >= HTTP_QUEUES_MAX;
}

/* Every queue list in Redis (SCAN: the whole keyspace, hence rarely). */
static void scan_names(queue *q)
{
    static names found;
    aq_err e;
    err_clear(&e);
    found.n = 0;
    if (queue_view_queues(q, on_name, &found, &e) != 0)
        return;
    pthread_mutex_lock(&S.lock);
    memcpy(S.names, found.v, sizeof S.names);
    S.nnames = found.n;
    pthread_mutex_unlock(&S.lock);
}

size_t http_sampler_queues(char (*out)[80], size_t max)
{
    pthread_mutex_lock(&S.lock);
    size_t n = S.nnames < max ? S.nnames : max;
    memcpy(out, S.names, n * sizeof S.names[0]);
    pthread_mutex_unlock(&S.lock);
    return n;
}

static void record(const queue_stats *st)
{
    pthread_mutex_lock(&S.lock);
    S.ring[S.next] = (sample){http_now_ms(), st->queued, st->processing, st->done};
    S.next = (S.next + 1) % SAMPLES;
    if (S.n < SAMPLES)
        S.n++;
    pthread_mutex_unlock(&S.lock);
}

static void *run(void *arg)
{
    (void)arg;
    queue *q = NULL;
    unsigned long round = 0;
    pthread_mutex_lock(&S.lock);
    while (!S.stop) {
        pthread_mutex_unlock(&S.lock);
        aq_err e;
        err_clear(&e);
        if (!q)
            q = queue_open(G.cfg, &e);
        queue_stats st;
        if (q && queue_stats_get(q, &st, &e) == 0)
            record(&st);
        if (q && round++ % SCAN_EVERY == 0)
            scan_names(q);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += SAMPLE_MS / 1000;
        pthread_mutex_lock(&S.lock);
        while (!S.stop && pthread_cond_timedwait(&S.wake, &S.lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&S.lock);
    queue_close(q);
    return NULL;
}

int http_sampler_start(void)
{
    S.stop = false;
    S.running = pthread_create(&S.thread, NULL, run, NULL) == 0;
    return S.running ? 0 : -1;
}

void http_sampler_stop(void)
{
    if (!S.running)
        return;
    pthread_mutex_lock(&S.lock);
    S.stop = true;
    pthread_cond_signal(&S.wake);
    pthread_mutex_unlock(&S.lock);
    pthread_join(S.thread, NULL);
    S.running = false;
}

json_t *http_sampler_json(void)
{
    json_t *a = json_array();
    pthread_mutex_lock(&S.lock);
    for (size_t i = 0; i < S.n; i++) {
        const sample *s = &S.ring[(S.next + SAMPLES - S.n + i) % SAMPLES];
        json_array_append_new(a, json_pack("{s:I, s:I, s:I, s:I}", "t_ms", (json_int_t)s->t_ms,
                                           "queued", (json_int_t)s->queued, "processing",
                                           (json_int_t)s->processing, "done", (json_int_t)s->done));
    }
    pthread_mutex_unlock(&S.lock);
    return a;
}
