/* api: the JSON API under /v1 (docs/protocol.md "HTTP server"). Jobs are
 * validated by job_parse (the worker's own rules and messages) and enqueued
 * with queue_enqueue_many like any producer's; everything else is a read
 * through queue.h or meta.h, or one operator call (dead retry, control).
 * Redis unreachable: 503 with the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"

#define JOBS_PER_POST 1000
#define LIST_MAX 1000

/* What a handler needs before it can answer, as api_need found it. Zeroed
 * ({0}) it holds a cleared error and MHD_NO. */
typedef struct api_call {
    enum MHD_Result res;     /* the answer already queued when api_need said no */
    const char *id;          /* API_ID: the path's {id}, valid */
    queue *q;                /* API_QUEUE: the thread's Redis handle */
    meta *m;                 /* API_META: the thread's metadata handle */
    aq_err e;                /* for the handler's own library calls */
} api_call;

enum { API_ID = 1, API_QUEUE = 2, API_META = 4 };

static bool path_id(hreq *r, enum MHD_Result *res)
{
    if (r->cap_len[0] <= JOB_ID_MAX && job_id_valid(r->capbuf[0]))
        return true;
    char p[100];
    *res = http_error(r, 400, "id: '%s' is not a valid id ([A-Za-z0-9._-]{1,64}, not starting with '.')",
                      log_printable(r->cap[0], r->cap_len[0], p, sizeof p));
    return false;
}

/* 503 naming the store that cannot be reached (and why); false. */
static bool api_unavailable(hreq *r, api_call *a, const char *what, const hctx *c)
{
    a->res = http_error(r, 503, "%s unavailable: %s", what, c ? a->e.msg : "out of memory");
    return false;
}

/* Checks and opens what needs (API_* bits) asks for, in this order: the
 * path's {id} (400 when it is not a valid id), the Redis handle, the
 * metadata handle (503 with the reason when one cannot be opened). True
 * when everything is there; false after answering, a->res the answer. */
static bool api_need(hreq *r, int needs, api_call *a)
{
    if ((needs & API_ID) && !path_id(r, &a->res))
        return false;
    if (needs & API_ID)
        a->id = r->capbuf[0];
    hctx *c = hctx_get();
    if ((needs & API_QUEUE) && !(a->q = c ? hctx_queue(c, &a->e) : NULL))
        return api_unavailable(r, a, "redis", c);
    if ((needs & API_META) && !(a->m = c ? hctx_meta(c, &a->e) : NULL))
        return api_unavailable(r, a, "database", c);
    return true;
}

/* ---- POST /v1/jobs ---- */

typedef struct posted {
    size_t n;
    char (*ids)[JOB_ID_MAX + 1];
    char **docs;
} posted;

static void posted_free(posted *p)
{
    for (size_t i = 0; p->docs && i < p->n; i++)
        free(p->docs[i]);
    free(p->docs);
    free(p->ids);
}

/* Validates element i (the whole body when one) into p; on a bad document
 * fills why with the message naming the field ("[2] sizes[0]: ..."). */
static int post_one(posted *p, size_t i, const json_t *doc, bool array, job_request *jr,
                    char *why, size_t whylen)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    aq_err e;
    err_clear(&e);
    int rc = text ? job_parse(text, strlen(text), &G.limits, jr, &e)
                  : err_set(&e, AQ_EAGAIN, "out of memory");
    free(text);
    if (rc == 0) {
        if (jr->created_at == 0)
            jr->created_at = http_now_ms();
        p->docs[i] = job_to_json(jr);
        snprintf(p->ids[i], sizeof p->ids[i], "%s", jr->id);
        if (!p->docs[i])
            rc = err_set(&e, AQ_EAGAIN, "out of memory");
    }
    if (rc != 0 && array)
        snprintf(why, whylen, "[%zu] %s", i, e.msg);
    else if (rc != 0)
        snprintf(why, whylen, "%s", e.msg);
    return rc;
}

/* Parses the body into p; on failure answers and returns false. */
static bool post_parse(hreq *r, posted *p, enum MHD_Result *res)
{
    json_error_t je;
    json_t *body = json_loadb((const char *)r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!body) {
        *res = http_error(r, 400, "body: not JSON (line %d column %d: %s)", je.line, je.column, je.text);
        return false;
    }
    bool array = json_is_array(body);
    size_t n = array ? json_array_size(body) : 1;
    if ((!array && !json_is_object(body)) || n == 0 || n > JOBS_PER_POST) {
        json_decref(body);
        *res = http_error(r, 400, "body: expected a job document (object) or an array of 1 to %d of them",
                          JOBS_PER_POST);
        return false;
    }
    p->n = n;
    p->ids = calloc(n, sizeof *p->ids);
    p->docs = calloc(n, sizeof *p->docs);
    job_request *jr = malloc(sizeof *jr);
    char why[700] = "";
    int rc = p->ids && p->docs && jr ? 0 : AQ_EAGAIN;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = post_one(p, i, array ? json_array_get(body, i) : body, array, jr, why, sizeof why);
    free(jr);
    json_decref(body);
    if (rc != 0)
        *res = http_error(r, rc == AQ_EPERM ? 400 : 503, "%s", why[0] ? why : "out of memory");
    return rc == 0;
}

static bool is_final(const char *state)
{
    return strcmp(state, "done") == 0 || strcmp(state, "dead") == 0;
}

/* {"id", "state", "attempts", "error", "outputs"} of one job hash. */
static json_t *job_json(const char *id, const queue_job *j)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:I, s:I, s:I, s:I}", "id", id, "state",
                          j->state, "queue", j->queue, "attempts", j->attempts, "worker", j->worker,
                          "created_at", (json_int_t)j->created_at, "started_at",
                          (json_int_t)j->started_at, "finished_at", (json_int_t)j->finished_at,
                          "duration_ms", (json_int_t)j->duration_ms);
    if (o && j->error[0])
        json_object_set_new(o, "error", json_string(j->error));
    json_t *out = j->outputs ? json_loads(j->outputs, 0, NULL) : NULL;
    if (o && out)
        json_object_set_new(o, "outputs", out);
    return o;
}

/* The states of every posted job; *all_final when each is done or dead. */
static json_t *post_states(queue *q, const posted *p, bool *all_final, const char **pending,
                           aq_err *e)
{
    json_t *arr = json_array();
    *all_final = true;
    *pending = NULL;
    for (size_t i = 0; i < p->n; i++) {
        queue_job j;
        int rc = queue_job_get(q, p->ids[i], &j, e);
        if (rc == AQ_ENOTFOUND) {
            json_array_append_new(arr, json_pack("{s:s, s:s}", "id", p->ids[i], "state", "unknown"));
            continue;
        }
        if (rc != 0) {
            json_decref(arr);
            return NULL;
        }
        if (!is_final(j.state)) {
            *all_final = false;
            *pending = p->ids[i];
        }
        json_array_append_new(arr, job_json(p->ids[i], &j));
        queue_job_free(&j);
    }
    return arr;
}

/* ?wait=1: follows NS:events until every job is final or the deadline. */
static enum MHD_Result post_wait(hreq *r, queue *q, posted *p, char last[48], long timeout_s)
{
    int64_t deadline = http_now_ms() + timeout_s * 1000;
    aq_err e;
    err_clear(&e);
    for (;;) {
        bool done;
        const char *pending;
        json_t *jobs = post_states(q, p, &done, &pending, &e);
        if (!jobs)
            return http_fail(r, &e, 500);
        int64_t left = deadline - http_now_ms();
        if (done || left <= 0) {
            json_t *ids = json_array();
            for (size_t i = 0; i < p->n; i++)
                json_array_append_new(ids, json_string(p->ids[i]));
            return http_json(r, done ? 200 : 202,
                             json_pack("{s:o, s:o, s:b}", "ids", ids, "jobs", jobs, "timed_out", !done));
        }
        json_decref(jobs);
        bool seen;
        if (queue_events_wait(q, last, left < 1000 ? (int)left : 1000, pending, &seen, &e) != 0)
            return http_fail(r, &e, 500);
    }
}

enum MHD_Result http_jobs_post(hreq *r)
{
    enum MHD_Result res = MHD_NO;
    long wait, timeout_s;
    if (!http_arg_int(r, "wait", 0, 1, 0, &wait, &res) ||
        !http_arg_int(r, "timeout", 1, HTTP_WAIT_MAX_S, 30, &timeout_s, &res))
        return res;
    const char *qname = http_arg(r, "queue");
    if (qname && (strlen(qname) > 64 || !job_id_valid(qname)))
        return http_error(r, 400, "queue: not a queue name ([A-Za-z0-9._-]{1,64})");
    posted p = {0};
    api_call a = {0};
    if (!post_parse(r, &p, &a.res) || !api_need(r, API_QUEUE, &a)) {
        posted_free(&p);
        return a.res;
    }
    char last[48] = "0-0";
    queue_item *items = calloc(p.n, sizeof *items);
    int rc = items ? 0 : err_set(&a.e, AQ_EAGAIN, "out of memory");
    /* the stream position before the push: no event of ours is missed */
    if (rc == 0 && wait)
        rc = queue_events_last(a.q, last, &a.e);
    for (size_t i = 0; rc == 0 && i < p.n; i++)
        items[i] = (queue_item){p.ids[i], p.docs[i], strlen(p.docs[i]), http_now_ms()};
    if (rc == 0)
        rc = queue_enqueue_many(a.q, qname, items, p.n, &a.e);
    free(items);
    if (rc != 0)
        res = http_fail(r, &a.e, 500);
    else if (wait)
        res = post_wait(r, a.q, &p, last, timeout_s);
    else {
        json_t *ids = json_array();
        for (size_t i = 0; i < p.n; i++)
            json_array_append_new(ids, json_string(p.ids[i]));
        res = http_json(r, 202, json_pack("{s:o}", "ids", ids));
    }
    posted_free(&p);
    return res;
}

/* ---- jobs and avatars ---- */

enum MHD_Result http_job_get(hreq *r)
{
    api_call a = {0};
    if (!api_need(r, API_ID | API_QUEUE, &a))
        return a.res;
    queue_job j;
    if (queue_job_get(a.q, a.id, &j, &a.e) != 0)
        return http_fail(r, &a.e, 500);
    json_t *o = job_json(a.id, &j);
    queue_job_free(&j);
    return http_json(r, 200, o);
}

/* A metadata row as JSON: JSON columns parsed, plus the image URLs. */
static json_t *row_json(const meta_row *w)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:s, s:I, s:I}", "id",
                          w->id, "seed", w->seed, "style", w->style, "filter", w->filter,
                          "storage", w->storage, "location", w->location, "worker", w->worker,
                          "bytes", (json_int_t)w->bytes, "attempts", w->attempts, "scheme",
                          w->scheme, "created_at", (json_int_t)w->created_at, "generated_at",
                          (json_int_t)w->generated_at);
    if (!o)
        return NULL;
    static const char *const optional[] = {"primary", "foreign"};
    const char *vals[] = {w->primary_color, w->foreign_color};
    for (size_t i = 0; i < 2; i++)
        json_object_set_new(o, optional[i], vals[i][0] ? json_string(vals[i]) : json_null());
    json_object_set_new(o, "angle", w->angle >= 0 ? json_real(w->angle) : json_null());
    static const char *const json_cols[] = {"sizes", "keys", "sha256"};
    const char *texts[] = {w->sizes, w->keys, w->sha256};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_loads(texts[i], 0, NULL);
        json_object_set_new(o, json_cols[i], v ? v : json_null());
    }
    json_t *urls = json_object(), *sizes = json_object_get(o, "sizes");
    size_t i;
    json_t *s;
    json_array_foreach(sizes, i, s)
    {
        char name[16], url[128];
        snprintf(name, sizeof name, "%lld", (long long)json_integer_value(s));
        /* the path the stored format implies (images.c serves it) */
        if (strcmp(w->format, "svg") == 0)
            snprintf(url, sizeof url, "/avatars/%s/avatar.svg", w->id);
        else
            snprintf(url, sizeof url, "/avatars/%s/%s.%s", w->id, name, strcmp(w->format, "webp") == 0 ? "webp" : "png");
        json_object_set_new(urls, name, json_string(url));
    }
    json_object_set_new(o, "urls", urls);
    return o;
}

static int list_row(const meta_row *w, void *ud)
{
    json_array_append_new(ud, row_json(w));
    return 0;
}

#define LATEST_MAX 100
#define LATEST_SCAN 600 /* events looked at for ?latest= (a done event may name many jobs) */

typedef struct latest {
    char ids[LATEST_MAX][JOB_ID_MAX + 1];
    size_t n, want;
} latest;

static int on_event(const char *id, const char *state, const char *worker, const char *error,
                    void *ud)
{
    (void)worker;
    (void)error;
    latest *l = ud;
    if (strcmp(state, "done") != 0 || !job_id_valid(id) || strlen(id) > JOB_ID_MAX)
        return 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->ids[i], id) == 0)
            return 0;
    snprintf(l->ids[l->n++], sizeof l->ids[0], "%s", id);
    return l->n >= l->want;
}

/* ?latest=N: the avatars of the N jobs that finished last (NS:events),
 * newest first; ids whose row is gone (deleted since) are skipped. */
static enum MHD_Result avatars_latest(hreq *r)
{
    api_call a = {0};
    long want;
    if (!http_arg_int(r, "latest", 1, LATEST_MAX, 12, &want, &a.res) ||
        !api_need(r, API_QUEUE | API_META, &a))
        return a.res;
    latest *l = calloc(1, sizeof *l);
    if (!l)
        return http_error(r, 503, "out of memory");
    l->want = (size_t)want;
    if (queue_view_events(a.q, LATEST_SCAN, on_event, l, &a.e) != 0) {
        free(l);
        return http_fail(r, &a.e, 500);
    }
    hctx *c = hctx_get();
    json_t *rows = json_array();
    for (size_t i = 0; i < l->n; i++)
        if (meta_get(a.m, l->ids[i], &c->row, &a.e) == 0)
            json_array_append_new(rows, row_json(&c->row));
    free(l);
    return http_json(r, 200, json_pack("{s:o, s:n}", "avatars", rows, "next"));
}

enum MHD_Result http_avatars_list(hreq *r)
{
    api_call a = {0};
    long limit;
    if (http_arg(r, "latest"))
        return avatars_latest(r);
    if (!http_arg_int(r, "limit", 1, LIST_MAX, 50, &limit, &a.res))
        return a.res;
    const char *after = http_arg(r, "after");
    if (after && after[0] && (strlen(after) > JOB_ID_MAX || !job_id_valid(after)))
        return http_error(r, 400, "after: not an avatar id");
    if (!api_need(r, API_META, &a))
        return a.res;
    json_t *rows = json_array();
    if (meta_list(a.m, after ? after : "", (int)limit, list_row, rows, &a.e) != 0) {
        json_decref(rows);
        return http_fail(r, &a.e, 500);
    }
    size_t n = json_array_size(rows);
    json_t *last = n ? json_object_get(json_array_get(rows, n - 1), "id") : NULL;
    json_t *next = n == (size_t)limit && last ? json_incref(last) : json_null();
    return http_json(r, 200, json_pack("{s:o, s:o}", "avatars", rows, "next", next));
}

/* The metadata row of the path's {id} (in the thread's scratch row); NULL
 * after answering (a bad id, the database unavailable, no such avatar). */
static const meta_row *api_row(hreq *r, api_call *a)
{
    if (!api_need(r, API_ID | API_META, a))
        return NULL;
    hctx *c = hctx_get(); /* there: api_need opened its database */
    if (meta_get(a->m, a->id, &c->row, &a->e) == 0)
        return &c->row;
    a->res = http_fail(r, &a->e, 500);
    return NULL;
}

enum MHD_Result http_avatar_get(hreq *r)
{
    api_call a = {0};
    const meta_row *w = api_row(r, &a);
    return w ? http_json(r, 200, row_json(w)) : a.res;
}

/* Deleting is a job like any other (the worker removes files and row). */
enum MHD_Result http_avatar_delete(hreq *r)
{
    api_call a = {0};
    /* Redis only after the row: an unknown id is a 404 even while Redis is down */
    if (!api_row(r, &a) || !api_need(r, API_QUEUE, &a))
        return a.res;
    job_request *jr = malloc(sizeof *jr);
    if (!jr)
        return http_error(r, 503, "out of memory");
    job_init(jr, &G.limits);
    jr->type = JOB_DELETE;
    snprintf(jr->id, sizeof jr->id, "%.*s", JOB_ID_MAX, a.id);
    jr->id_given = true;
    jr->created_at = http_now_ms();
    char *doc = job_finish(jr, &G.limits, &a.e) == 0 ? job_to_json(jr) : NULL;
    int64_t created = jr->created_at;
    free(jr);
    if (!doc)
        return http_error(r, 500, "delete job: %s", a.e.msg[0] ? a.e.msg : "out of memory");
    int rc = queue_enqueue(a.q, NULL, a.id, doc, strlen(doc), created, &a.e);
    free(doc);
    if (rc != 0)
        return http_fail(r, &a.e, 500);
    return http_json(r, 202, json_pack("{s:s, s:s}", "id", a.id, "state", "queued"));
}

/* ---- operators ---- */

enum MHD_Result http_stats(hreq *r)
{
    api_call a = {0};
    if (!api_need(r, API_QUEUE, &a))
        return a.res;
    queue_stats s;
    if (queue_stats_get(a.q, &s, &a.e) != 0)
        return http_fail(r, &a.e, 500);
    json_t *o = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:I}", "queue",
        G.cfg->redis.queue, "queued", (json_int_t)s.queued, "processing",
        (json_int_t)s.processing, "delayed", (json_int_t)s.delayed, "dead", (json_int_t)s.dead,
        "counters", "enqueued", (json_int_t)s.enqueued, "started", (json_int_t)s.started, "done",
        (json_int_t)s.done, "failed", (json_int_t)s.failed, "retried", (json_int_t)s.retried,
        "dead", (json_int_t)s.dead_total, "recovered", (json_int_t)s.recovered, "time_ms",
        (json_int_t)http_now_ms());
    if (o && http_arg(r, "history"))
        json_object_set_new(o, "history", http_sampler_json());
    return http_json(r, 200, o);
}

static int worker_row(const queue_worker_info *w, void *ud)
{
    json_array_append_new(
        ud, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "id", w->id,
                      "host", w->host, "pid", (json_int_t)w->pid, "state", w->alive ? w->state : "gone",
                      "job", w->job, "queue", w->queue, "started_at", (json_int_t)w->started_at,
                      "beat_at", (json_int_t)w->beat_at, "done", (json_int_t)w->done, "failed",
                      (json_int_t)w->failed, "rss_kb", (json_int_t)w->rss_kb, "alive", w->alive));
    return 0;
}

enum MHD_Result http_workers(hreq *r)
{
    api_call a = {0};
    if (!api_need(r, API_QUEUE, &a))
        return a.res;
    json_t *arr = json_array();
    if (queue_workers(a.q, worker_row, arr, &a.e) != 0) {
        json_decref(arr);
        return http_fail(r, &a.e, 500);
    }
    return http_json(r, 200, json_pack("{s:o}", "workers", arr));
}

static int dead_row(const char *doc, void *ud)
{
    json_t *o = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
    json_array_append_new(ud, json_is_object(o) ? o : json_pack("{s:s?}", "raw", doc));
    if (o && !json_is_object(o))
        json_decref(o);
    return 0;
}

enum MHD_Result http_dead_list(hreq *r)
{
    api_call a = {0};
    long offset, limit;
    if (!http_arg_int(r, "offset", 0, 100000000, 0, &offset, &a.res) ||
        !http_arg_int(r, "limit", 1, LIST_MAX, 50, &limit, &a.res) || !api_need(r, API_QUEUE, &a))
        return a.res;
    json_t *arr = json_array();
    queue_stats s;
    if (queue_dead_list(a.q, offset, offset + limit - 1, dead_row, arr, &a.e) != 0 ||
        queue_stats_get(a.q, &s, &a.e) != 0) {
        json_decref(arr);
        return http_fail(r, &a.e, 500);
    }
    return http_json(r, 200, json_pack("{s:o, s:I}", "dead", arr, "total", (json_int_t)s.dead));
}

enum MHD_Result http_dead_retry(hreq *r)
{
    api_call a = {0};
    if (!api_need(r, API_ID | API_QUEUE, &a))
        return a.res;
    int n = 0;
    if (queue_dead_retry(a.q, a.id, false, &n, &a.e) != 0)
        return http_fail(r, &a.e, 500);
    if (n == 0)
        return http_error(r, 404, "no dead letter with id %s", a.id);
    return http_json(r, 200, json_pack("{s:s, s:i}", "id", a.id, "retried", n));
}

static const char *const CONTROL_CMDS[] = {"quiet", "resume", "stop"};

/* "all", "host:H" or "worker:HOST:PID" with visible ASCII only. */
static bool valid_target(const char *t)
{
    for (const char *p = t; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    if (strcmp(t, "all") == 0)
        return true;
    if (strncmp(t, "host:", 5) == 0)
        return t[5] != '\0' && strlen(t) < 190;
    const char *colon = strrchr(t, ':');
    return strncmp(t, "worker:", 7) == 0 && colon > t + 7 && colon[1] && strlen(t) < 190;
}

enum MHD_Result http_control(hreq *r)
{
    json_error_t je;
    json_t *body = json_loadb((const char *)r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
    const char *cmd = json_string_value(json_object_get(body, "cmd"));
    json_t *tv = json_object_get(body, "target");
    const char *target = tv ? json_string_value(tv) : "all";
    size_t i = 0;
    while (cmd && i < 3 && strcmp(cmd, CONTROL_CMDS[i]) != 0)
        i++;
    api_call a = {0};
    if (!json_is_object(body))
        a.res = http_error(r, 400, "body: expected {\"cmd\": \"quiet|resume|stop\", \"target\": ...}");
    else if (!cmd || i == 3)
        a.res = http_error(r, 400, "cmd: expected one of quiet, resume, stop");
    else if (!target || !valid_target(target))
        a.res = http_error(r, 400, "target: expected \"all\", \"host:HOST\" or \"worker:HOST:PID\"");
    else if (api_need(r, API_QUEUE, &a) && queue_control_post(a.q, target, cmd, &a.e) != 0)
        a.res = http_fail(r, &a.e, 500);
    else if (a.q)
        a.res = http_json(r, 202, json_pack("{s:s, s:s}", "cmd", cmd, "target", target));
    json_decref(body);
    return a.res;
}
