/* metrics: GET /metrics in the Prometheus text format (0.0.4) and GET
 * /health (the checks of `avatarq health`, as JSON). Everything is read at
 * scrape time: queue depths and the oldest job's age from the queue lists,
 * counters from NS:stats, workers from their heartbeats, the job duration
 * histogram from NS:metrics (the workers' non-cumulative integer counts,
 * made cumulative and converted to seconds here), HTTP requests from this
 * process's counters. Redis down: avatarq_redis_up 0 and the rest that
 * needs no Redis. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void head(buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static const char *label(const char *s, char *o, size_t n)
{
    size_t j = 0;
    for (; *s && j + 3 < n; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            o[j++] = '\\';
            o[j++] = *s == '\n' ? 'n' : *s;
        } else
            o[j++] = *s;
    }
    o[j] = '\0';
    return o;
}

/* ---- queues ---- */

typedef struct qview {
    char cand[HTTP_QUEUES_MAX][80]; /* names to look at */
    char name[HTTP_QUEUES_MAX][80];
    int64_t len[HTTP_QUEUES_MAX], oldest_ms[HTTP_QUEUES_MAX];
    char oldest_id[HTTP_QUEUES_MAX][JOB_ID_MAX + 1];
    size_t n;
} qview;

static int on_queue(const char *name, int64_t len, const char *oldest, size_t olen, void *ud)
{
    qview *v = ud;
    if (v->n >= HTTP_QUEUES_MAX)
        return 1;
    size_t i = v->n++;
    snprintf(v->name[i], sizeof v->name[i], "%s", name);
    v->len[i] = len;
    v->oldest_ms[i] = 0;
    v->oldest_id[i][0] = '\0';
    json_t *doc = oldest ? json_loadb(oldest, olen, 0, NULL) : NULL;
    json_t *ca = json_object_get(doc, "created_at");
    if (json_is_integer(ca))
        v->oldest_ms[i] = json_integer_value(ca);
    const char *id = json_string_value(json_object_get(doc, "id"));
    if (id && strlen(id) <= JOB_ID_MAX)
        snprintf(v->oldest_id[i], sizeof v->oldest_id[i], "%s", id);
    json_decref(doc);
    return 0;
}

static int queue_metrics(buf *b, queue *q, aq_err *e)
{
    qview *v = calloc(1, sizeof *v);
    if (!v)
        return err_set(e, AQ_EAGAIN, "out of memory");
    /* the configured queue (an empty list is no key in Redis: it shows
     * anyway), then the others the sampler's last SCAN found */
    snprintf(v->cand[0], sizeof v->cand[0], "%s", G.cfg->redis.queue);
    size_t n = 1 + http_sampler_queues(v->cand + 1, HTTP_QUEUES_MAX - 1);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (i == 0 || strcmp(v->cand[i], v->cand[0]) != 0)
            rc = queue_view_queue(q, v->cand[i], on_queue, v, e);
    /* a document without created_at: the job hash knows when it was queued */
    for (size_t i = 0; rc == 0 && i < v->n; i++) {
        queue_job j;
        if (v->oldest_ms[i] == 0 && v->oldest_id[i][0] && queue_job_get(q, v->oldest_id[i], &j, e) == 0) {
            v->oldest_ms[i] = j.created_at;
            queue_job_free(&j);
        }
    }
    int64_t now = http_now_ms();
    char l[200];
    head(b, "avatarq_queue_jobs", "gauge", "Jobs waiting in each queue.");
    for (size_t i = 0; rc == 0 && i < v->n; i++)
        buf_printf(b, "avatarq_queue_jobs{queue=\"%s\"} %lld\n", label(v->name[i], l, sizeof l),
            (long long)v->len[i]);
    head(b, "avatarq_queue_oldest_job_age_seconds", "gauge",
         "Age of the oldest waiting job in each queue (0 when empty or unknown).");
    for (size_t i = 0; rc == 0 && i < v->n; i++) {
        double age = v->len[i] && v->oldest_ms[i] > 0 && now > v->oldest_ms[i]
                         ? (double)(now - v->oldest_ms[i]) / 1000.0 : 0.0;
        buf_printf(b, "avatarq_queue_oldest_job_age_seconds{queue=\"%s\"} %.3f\n",
            label(v->name[i], l, sizeof l), age);
    }
    free(v);
    return rc;
}

static int stats_metrics(buf *b, queue *q, aq_err *e)
{
    queue_stats s;
    int rc = queue_stats_get(q, &s, e);
    if (rc != 0)
        return rc;
    const struct {
        const char *name, *help;
        int64_t v;
    } gauges[] = {
        {"avatarq_processing_jobs", "Jobs taken by workers and not yet finished.", s.processing},
        {"avatarq_delayed_jobs", "Jobs waiting for a retry.", s.delayed},
        {"avatarq_dead_jobs", "Dead letters kept in the dead list.", s.dead},
    };
    for (size_t i = 0; i < NELEM(gauges); i++) {
        head(b, gauges[i].name, "gauge", gauges[i].help);
        buf_printf(b, "%s %lld\n", gauges[i].name, (long long)gauges[i].v);
    }
    const struct {
        const char *event;
        int64_t v;
    } events[] = {{"enqueued", s.enqueued}, {"started", s.started}, {"done", s.done},
                  {"failed", s.failed},     {"retried", s.retried}, {"dead", s.dead_total},
                  {"recovered", s.recovered}};
    head(b, "avatarq_jobs_total", "counter", "Job events since the namespace was created.");
    for (size_t i = 0; i < NELEM(events); i++)
        buf_printf(b, "avatarq_jobs_total{event=\"%s\"} %lld\n", events[i].event, (long long)events[i].v);
    return 0;
}

/* ---- workers ---- */

static const char *const WORKER_STATES[] = {"idle", "busy", "stopping"};

typedef struct wview {
    int64_t by_state[3];
    buf rss;
} wview;

static int on_worker(const queue_worker_info *w, void *ud)
{
    wview *v = ud;
    if (!w->alive)
        return 0;
    for (size_t i = 0; i < NELEM(WORKER_STATES); i++)
        if (strcmp(w->state, WORKER_STATES[i]) == 0)
            v->by_state[i]++;
    char l[200];
    buf_printf(&v->rss, "avatarq_worker_resident_memory_bytes{worker=\"%s\"} %lld\n",
        label(w->id, l, sizeof l), (long long)w->rss_kb * 1024);
    return 0;
}

static int worker_metrics(buf *b, queue *q, aq_err *e)
{
    wview v = {{0}, BUF_INIT};
    int rc = queue_workers(q, on_worker, &v, e);
    if (rc == 0) {
        head(b, "avatarq_workers", "gauge", "Live worker processes by state.");
        for (size_t i = 0; i < NELEM(WORKER_STATES); i++)
            buf_printf(b, "avatarq_workers{state=\"%s\"} %lld\n", WORKER_STATES[i], (long long)v.by_state[i]);
        head(b, "avatarq_worker_resident_memory_bytes", "gauge",
             "Resident memory of each live worker process.");
        buf_append(b, v.rss.data, v.rss.len);
    }
    buf_free(&v.rss);
    return rc;
}

/* ---- the job duration histogram ---- */

/* The workers' bucket fields (upper bounds in ms, non-cumulative counts). */
static const struct {
    const char *field, *le;
} BUCKETS[] = {
    {"job_duration_ms_le_1", "0.001"},     {"job_duration_ms_le_2", "0.002"},
    {"job_duration_ms_le_5", "0.005"},     {"job_duration_ms_le_10", "0.01"},
    {"job_duration_ms_le_25", "0.025"},    {"job_duration_ms_le_50", "0.05"},
    {"job_duration_ms_le_100", "0.1"},     {"job_duration_ms_le_250", "0.25"},
    {"job_duration_ms_le_500", "0.5"},     {"job_duration_ms_le_1000", "1"},
    {"job_duration_ms_le_2500", "2.5"},    {"job_duration_ms_le_5000", "5"},
    {"job_duration_ms_le_10000", "10"},    {"job_duration_ms_le_30000", "30"},
    {"job_duration_ms_le_60000", "60"},    {"job_duration_ms_le_inf", "+Inf"},
};
#define NBUCKETS NELEM(BUCKETS)

typedef struct hview {
    long long bucket[NBUCKETS];
    long long sum_ms, count;
} hview;

static int on_metric(const char *field, const char *value, void *ud)
{
    hview *h = ud;
    long long v = strtoll(value, NULL, 10);
    for (size_t i = 0; i < NBUCKETS; i++)
        if (strcmp(field, BUCKETS[i].field) == 0)
            h->bucket[i] = v;
    if (strcmp(field, "job_duration_ms_sum") == 0)
        h->sum_ms = v;
    else if (strcmp(field, "job_duration_ms_count") == 0)
        h->count = v;
    return 0;
}

static int duration_metrics(buf *b, queue *q, aq_err *e)
{
    hview h = {{0}, 0, 0};
    int rc = queue_view_hash(q, "metrics", on_metric, &h, e);
    if (rc != 0)
        return rc;
    head(b, "avatarq_job_duration_seconds", "histogram", "Time workers spent on each job.");
    long long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += h.bucket[i];
        buf_printf(b, "avatarq_job_duration_seconds_bucket{le=\"%s\"} %lld\n", BUCKETS[i].le, cum);
    }
    /* the +Inf bucket and _count must agree; a reader racing a writer's
     * HINCRBYs may see them apart by a job: trust the buckets */
    buf_printf(b, "avatarq_job_duration_seconds_sum %.3f\n", (double)h.sum_ms / 1000.0);
    buf_printf(b, "avatarq_job_duration_seconds_count %lld\n", cum);
    return 0;
}

/* ---- HTTP ---- */

static void on_counter(const char *route, int status, uint64_t n, void *ud)
{
    char l[200], code[8];
    if (status)
        snprintf(code, sizeof code, "%d", status);
    else
        snprintf(code, sizeof code, "other");
    buf_printf(ud, "avatarq_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
        label(route, l, sizeof l), code, (unsigned long long)n);
}

enum MHD_Result http_metrics(hreq *r)
{
    buf b = BUF_INIT;
    aq_err e;
    err_clear(&e);
    hctx *c = hctx_get();
    queue *q = c ? hctx_queue(c, &e) : NULL;
    static int (*const parts[])(buf *, queue *, aq_err *) = {queue_metrics, stats_metrics,
                                                             worker_metrics, duration_metrics};
    int rc = q ? 0 : -1;
    for (size_t i = 0; i < NELEM(parts) && rc == 0; i++) {
        size_t mark = b.len;
        if ((rc = parts[i](&b, q, &e)) != 0)
            b.len = mark; /* no half family */
    }
    if (rc != 0)
        log_warn("metrics without redis", "error", e.msg);
    head(&b, "avatarq_redis_up", "gauge", "1 when this scrape could read Redis.");
    buf_printf(&b, "avatarq_redis_up %d\n", rc == 0);
    head(&b, "avatarq_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    http_counters(on_counter, &b);
    head(&b, "avatarq_http_start_time_seconds", "gauge", "When this avatarq-http started.");
    buf_printf(&b, "avatarq_http_start_time_seconds %.3f\n", (double)G.started_ms / 1000.0);
    struct MHD_Response *resp = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        buf_free(&b);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    return http_send(r, 200, resp);
}

/* ---- /health ---- */

static int check_redis(hctx *c, char *detail, size_t n, aq_err *e)
{
    queue *q = hctx_queue(c, e);
    char policy[64] = "";
    if (!q || queue_maxmemory_policy(q, policy, sizeof policy, e) != 0)
        return -1;
    snprintf(detail, n, "maxmemory-policy=%s%s", policy,
             strcmp(policy, "noeviction") ? " (warning: Redis may evict jobs)" : "");
    return 0;
}

static int check_database(hctx *c, char *detail, size_t n, aq_err *e)
{
    meta *m = hctx_meta(c, e);
    int64_t rows = 0;
    if (!m || meta_check(m, e) != 0 || meta_count(m, &rows, e) != 0)
        return -1;
    snprintf(detail, n, "%s rows=%lld", G.cfg->database.backend, (long long)rows);
    return 0;
}

static int check_storage(hctx *c, char *detail, size_t n, aq_err *e)
{
    storage *s = hctx_storage(c, e);
    if (!s || storage_check(s, e) != 0)
        return -1;
    snprintf(detail, n, "%s %s", storage_name(s), storage_location(s));
    return 0;
}

enum MHD_Result http_health(hreq *r)
{
    static const struct {
        const char *name;
        int (*fn)(hctx *, char *, size_t, aq_err *);
    } checks[] = {{"redis", check_redis}, {"database", check_database}, {"storage", check_storage}};
    hctx *c = hctx_get();
    if (!c)
        return http_error(r, 503, "out of memory");
    json_t *o = json_object();
    bool ok = true;
    for (size_t i = 0; i < NELEM(checks); i++) {
        char detail[PATH_MAX + 64] = "";
        aq_err e;
        err_clear(&e);
        bool pass = checks[i].fn(c, detail, sizeof detail, &e) == 0;
        ok &= pass;
        json_object_set_new(o, checks[i].name,
                            json_pack("{s:b, s:s}", "ok", pass, "detail", pass ? detail : e.msg));
    }
    return http_json(r, ok ? 200 : 503,
                     json_pack("{s:s, s:o}", "status", ok ? "ok" : "fail", "checks", o));
}
