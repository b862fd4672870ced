/* avatarq.c: the public API of include/avatarq.h on top of config, job and
 * queue. Requests are validated here with the worker's own rules (job.h), so
 * a producer learns about a bad request at once instead of from NS:dead. */
#include "avatarq.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callback.h"
#include "config.h"
#include "hash.h"
#include "error.h"
#include "job.h"
#include "queue.h"
#include "render.h"
#include "retry.h"

/* Keep the public codes in step with the internal ones. */
_Static_assert((int)AVATARQ_EPERM == (int)AQ_EPERM && (int)AVATARQ_EAGAIN == (int)AQ_EAGAIN &&
                   (int)AVATARQ_ENOTFOUND == (int)AQ_ENOTFOUND,
               "avatarq.h codes must equal error.h codes");

/* How long one XREAD BLOCK of avatarq_wait lasts before the job hash is
 * read again anyway (events can be trimmed away or missed in a reconnect). */
#define WAIT_SLICE_MS 1000
#define WAIT_RETRY_MS 200

struct avatarq {
    aq_config cfg;
    job_limits limits;
    queue *q;
};

typedef struct held {
    char *doc;
    char id[65];
    int64_t created_at, run_at;
    bool always;
    char batch[65];
} held;

struct avatarq_batch {
    avatarq *a;
    char queue[JOB_QUEUE_MAX + 1];
    char id[65];             /* tracked (avatarq_batch_track): "" when not */
    size_t existing;         /* jobs flushed that were already queued */
    held items[AVATARQ_BATCH_MAX];
    size_t n;
};

static const struct {
    int code;
    const char *name;
} code_names[] = {
    {AVATARQ_OK, "ok"},
    {AVATARQ_EPERM, "permanent"},
    {AVATARQ_EAGAIN, "transient"},
    {AVATARQ_ENOTFOUND, "not found"},
    {AVATARQ_ETIMEDOUT, "timed out"},
    {AVATARQ_EFULL, "queue full"},
};

const char *avatarq_version(void)
{
    return AQ_VERSION;
}

const char *avatarq_code_name(int code)
{
    for (size_t i = 0; i < sizeof code_names / sizeof code_names[0]; i++)
        if (code_names[i].code == code)
            return code_names[i].name;
    return "unknown";
}

/* Copies e's message into the caller's buffer; returns e's code. */
static int fail(const aq_err *e, char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", e->msg);
    return e->code ? e->code : AVATARQ_EPERM;
}

static int failf(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(int code, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- opening ---- */

avatarq *avatarq_open_config(const struct aq_config *cfg, char *err, size_t errlen)
{
    aq_err e = {0};
    avatarq *a = calloc(1, sizeof *a);
    if (!a) {
        failf(AVATARQ_EAGAIN, err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    if (job_limits_from_config(&a->limits, &a->cfg, &e) < 0 ||
        !(a->q = queue_open(&a->cfg, &e))) {
        fail(&e, err, errlen);
        free(a);
        return NULL;
    }
    return a;
}

avatarq *avatarq_open(const char *config_path, char *err, size_t errlen)
{
    aq_err e = {0};
    aq_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        failf(AVATARQ_EAGAIN, err, errlen, "out of memory");
        return NULL;
    }
    avatarq *a = NULL;
    if (config_load(cfg, config_path, &e) < 0)
        fail(&e, err, errlen);
    else
        a = avatarq_open_config(cfg, err, errlen);
    free(cfg);
    return a;
}

void avatarq_close(avatarq *a)
{
    if (!a)
        return;
    queue_close(a->q);
    config_wipe_secrets(&a->cfg);   /* the connection has what it needs */
    free(a);
}

/* ---- building a request ---- */

void avatarq_request_init(avatarq_request *r)
{
    memset(r, 0, sizeof *r);
    r->angle = -1;
}

/* A colour or scheme name, lowercased, into a fixed field. */
static int copy_name(char *dst, size_t n, const char *src, const char *field, aq_err *e)
{
    if (!src)
        return 0;
    size_t len = strlen(src);
    if (len == 0 || len >= n)
        return err_set(e, AQ_EPERM, "%s: '%.40s' is not a colour or scheme name", field, src);
    for (size_t i = 0; i <= len; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    return 0;
}

static const struct {
    const char *name;
    job_type type;
} job_types[] = {{"generate", JOB_GENERATE}, {"delete", JOB_DELETE}};

static int set_type(job_request *jr, const char *type, aq_err *e)
{
    if (!type)
        return 0;
    for (size_t i = 0; i < sizeof job_types / sizeof job_types[0]; i++)
        if (strcmp(type, job_types[i].name) == 0) {
            jr->type = job_types[i].type;
            return 0;
        }
    return err_set(e, AQ_EPERM, "type: '%.40s' is not generate or delete", type);
}

static int set_ident(job_request *jr, const avatarq_request *r, aq_err *e)
{
    if (r->id) {
        if (!job_id_valid(r->id))
            return err_set(e, AQ_EPERM, "id: '%.80s' is not [A-Za-z0-9._-]{1,64} "
                                        "(not starting with '.')", r->id);
        snprintf(jr->id, sizeof jr->id, "%s", r->id);
        jr->id_given = true;
    }
    if (r->seed) {
        size_t len = strlen(r->seed);
        if (len == 0 || len > JOB_SEED_MAX)
            return err_set(e, AQ_EPERM, "seed: %zu bytes, must be 1 to %d", len, JOB_SEED_MAX);
        memcpy(jr->seed, r->seed, len + 1);
        jr->seed_len = len;
    }
    return 0;
}

/* The look options, through the job's own rules and messages. */
static int set_options(job_request *jr, const avatarq_request *r, aq_err *e)
{
    char radius[16];
    snprintf(radius, sizeof radius, "%d", r->radius);
    const struct { const char *field, *text; } opts[] = {
        {"emoji", r->emoji}, {"background", r->background}, {"emoji_size", r->emoji_size},
        {"radius", r->radius ? radius : NULL}, {"format", r->format}, {"name", r->name},
    };
    job_limits none = {0};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (opts[i].text && job_set_field(jr, opts[i].field, opts[i].text, &none, e) != 0)
            return AQ_EPERM;
    return 0;
}

static int set_look(job_request *jr, const avatarq_request *r, aq_err *e)
{
    if (r->style) {
        int s = render_style_find(r->style);
        if (s < 0)
            return err_set(e, AQ_EPERM, "style: '%.40s' is not pixel, classic, wave, gradient, "
                           "emoji or initials", r->style);
        jr->style = s;
    }
    if (r->nsizes > JOB_SIZES_MAX)
        return err_set(e, AQ_EPERM, "sizes: %zu sizes, at most %d", r->nsizes, JOB_SIZES_MAX);
    if (r->nsizes) {
        memcpy(jr->sizes, r->sizes, r->nsizes * sizeof *r->sizes);
        jr->nsizes = r->nsizes;
    }
    int rc;
    if ((rc = copy_name(jr->primary, sizeof jr->primary, r->primary, "primary", e)) < 0 ||
        (rc = copy_name(jr->foreign, sizeof jr->foreign, r->foreign, "foreign", e)) < 0 ||
        (rc = copy_name(jr->scheme, sizeof jr->scheme, r->scheme, "scheme", e)) < 0)
        return rc;
    if (r->filter) {
        int f = color_filter_find(r->filter);
        if (f < 0)
            return err_set(e, AQ_EPERM, "filter: '%.40s' is not none, grayscale, sepia or negative",
                           r->filter);
        jr->filter = (aq_filter)f;
    }
    jr->angle = r->angle;
    jr->max_attempts = r->max_attempts;
    jr->run_at = r->run_at;
    jr->delay_ms = r->delay_ms;
    if (r->callback_url) {
        if (strlen(r->callback_url) > JOB_CALLBACK_URL_MAX)
            return err_set(e, AQ_EPERM, "callback_url: longer than %d bytes",
                           JOB_CALLBACK_URL_MAX);
        snprintf(jr->callback_url, sizeof jr->callback_url, "%s", r->callback_url);
    }
    return set_options(jr, r, e);
}

/* What an enqueue needs to know of a valid document besides its bytes. */
typedef struct doc_info {
    char id[65];
    int64_t created_at, run_at;
    bool always;             /* a delete job: never deduplicated */
    char batch[65];
} doc_info;

static void info_from(doc_info *in, const job_request *jr)
{
    snprintf(in->id, sizeof in->id, "%s", jr->id);
    in->created_at = jr->created_at;
    in->run_at = job_due_ms(jr, now_ms());
    in->always = jr->type == JOB_DELETE;
    snprintf(in->batch, sizeof in->batch, "%s", jr->batch);
}

/* Turns r into a validated job document (malloc'd) with its id. */
static int build_doc(avatarq *a, const avatarq_request *r, const char *batch, char **doc,
                     doc_info *in, aq_err *e)
{
    job_request *jr = malloc(sizeof *jr);
    if (!jr)
        return err_set(e, AQ_EAGAIN, "out of memory");
    job_init(jr, &a->limits);
    int rc;
    if ((rc = set_type(jr, r->type, e)) < 0 || (rc = set_ident(jr, r, e)) < 0 ||
        (rc = set_look(jr, r, e)) < 0 || (rc = job_finish(jr, &a->limits, e)) < 0) {
        free(jr);
        return rc;
    }
    jr->created_at = now_ms();
    if (batch && *batch)
        snprintf(jr->batch, sizeof jr->batch, "%s", batch);
    info_from(in, jr);
    *doc = job_to_json(jr);
    free(jr);
    return *doc ? 0 : err_set(e, AQ_EAGAIN, "out of memory");
}

/* Validates a JSON document; id receives its (given or derived) id. */
static int check_doc(avatarq *a, const char *doc, doc_info *in, aq_err *e)
{
    if (!doc)
        return err_set(e, AQ_EPERM, "document is NULL");
    job_request *jr = malloc(sizeof *jr);
    if (!jr)
        return err_set(e, AQ_EAGAIN, "out of memory");
    int rc = job_parse(doc, strlen(doc), &a->limits, jr, e);
    if (rc == 0)
        info_from(in, jr);
    free(jr);
    return rc < 0 ? AQ_EPERM : 0;
}

/* doc (valid) rewritten as the same request carrying "batch": id; in
 * follows. NULL when out of memory. */
static char *with_batch(avatarq *a, const char *doc, const char *id, doc_info *in)
{
    job_request *jr = malloc(sizeof *jr);
    aq_err e = {0};
    char *out = NULL;
    if (jr && job_parse(doc, strlen(doc), &a->limits, jr, &e) == 0) {
        snprintf(jr->batch, sizeof jr->batch, "%s", id);
        if (jr->created_at == 0)
            jr->created_at = now_ms();
        info_from(in, jr);
        out = job_to_json(jr);
    }
    free(jr);
    return out;
}

/* ---- enqueueing ---- */

/* Sends one valid document; fills out. */
static int send_one(avatarq *a, const char *queue, const char *doc, const doc_info *in,
                    avatarq_enqueued *out, char *err, size_t errlen)
{
    aq_err e = {0};
    if (queue && job_queue_check(queue, "queue", &e) < 0)
        return fail(&e, err, errlen);
    queue_enq j = {.qname = queue, .id = in->id, .doc = doc, .len = strlen(doc),
                   .created_at = in->created_at, .run_at = in->run_at, .always = in->always,
                   .batch = in->batch};
    int rc = queue_enqueue_ex(a->q, &j, &e);
    if (rc < 0)
        return fail(&e, err, errlen);
    if (j.status == QUEUE_ENQ_FULL)
        return failf(AVATARQ_EFULL, err, errlen,
                     "queue %s is full (max_queue_length %d): job %s not enqueued, try later",
                     queue && *queue ? queue : a->cfg.redis.queue, a->cfg.redis.max_queue_length,
                     in->id);
    if (out) {
        memcpy(out->id, in->id, 65);
        snprintf(out->status, sizeof out->status, "%s", queue_enq_status_name(j.status));
        snprintf(out->state, sizeof out->state, "%s", j.state);
    }
    return 0;
}

int avatarq_enqueue_ex(avatarq *a, const avatarq_request *r, avatarq_enqueued *out, char *err,
                       size_t errlen)
{
    aq_err e = {0};
    char *doc = NULL;
    doc_info in;
    if (out)
        memset(out, 0, sizeof *out);
    if (build_doc(a, r, NULL, &doc, &in, &e) < 0)
        return fail(&e, err, errlen);
    int rc = send_one(a, r->queue, doc, &in, out, err, errlen);
    free(doc);
    return rc;
}

int avatarq_enqueue_json_ex(avatarq *a, const char *queue, const char *doc,
                            avatarq_enqueued *out, char *err, size_t errlen)
{
    aq_err e = {0};
    doc_info in;
    if (out)
        memset(out, 0, sizeof *out);
    if (check_doc(a, doc, &in, &e) < 0)
        return fail(&e, err, errlen);
    return send_one(a, queue, doc, &in, out, err, errlen);
}

int avatarq_enqueue(avatarq *a, const avatarq_request *r, char id_out[65], char *err,
                    size_t errlen)
{
    avatarq_enqueued out;
    int rc = avatarq_enqueue_ex(a, r, &out, err, errlen);
    if (rc == 0 && id_out)
        memcpy(id_out, out.id, 65);
    return rc;
}

int avatarq_enqueue_json(avatarq *a, const char *queue, const char *doc, char id_out[65],
                         char *err, size_t errlen)
{
    avatarq_enqueued out;
    int rc = avatarq_enqueue_json_ex(a, queue, doc, &out, err, errlen);
    if (rc == 0 && id_out)
        memcpy(id_out, out.id, 65);
    return rc;
}

int avatarq_cancel(avatarq *a, const char *id, char before[16], char *err, size_t errlen)
{
    aq_err e = {0};
    if (!id)
        return failf(AVATARQ_EPERM, err, errlen, "id is NULL");
    int rc = queue_cancel(a->q, id, before, &e);
    return rc < 0 ? fail(&e, err, errlen) : rc;
}

/* ---- batches ---- */

avatarq_batch *avatarq_batch_new(avatarq *a, const char *queue)
{
    if (queue && !job_queue_valid(queue))
        return NULL;
    avatarq_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->a = a;
    snprintf(b->queue, sizeof b->queue, "%s", queue ? queue : "");
    return b;
}

size_t avatarq_batch_pending(const avatarq_batch *b)
{
    return b ? b->n : 0;
}

/* Makes room for one more job, flushing a full batch first. */
static int batch_room(avatarq_batch *b, char *err, size_t errlen)
{
    if (b->n < AVATARQ_BATCH_MAX)
        return 0;
    long rc = avatarq_batch_flush(b, err, errlen);
    return rc < 0 ? (int)rc : 0;
}

static void batch_hold(avatarq_batch *b, char *doc, const doc_info *in, char id_out[65])
{
    held *h = &b->items[b->n++];
    h->doc = doc;
    memcpy(h->id, in->id, 65);
    h->created_at = in->created_at;
    h->run_at = in->run_at;
    h->always = in->always;
    memcpy(h->batch, in->batch, sizeof h->batch);
    if (id_out)
        memcpy(id_out, in->id, 65);
}

int avatarq_batch_add(avatarq_batch *b, const avatarq_request *r, char id_out[65], char *err,
                      size_t errlen)
{
    aq_err e = {0};
    char *doc = NULL;
    doc_info in;
    int rc = build_doc(b->a, r, b->id, &doc, &in, &e);
    if (rc < 0)
        return fail(&e, err, errlen);
    if ((rc = batch_room(b, err, errlen)) < 0) {
        free(doc);
        return rc;
    }
    batch_hold(b, doc, &in, id_out);
    return 0;
}

int avatarq_batch_add_json(avatarq_batch *b, const char *doc, char id_out[65], char *err,
                           size_t errlen)
{
    aq_err e = {0};
    doc_info in;
    int rc = check_doc(b->a, doc, &in, &e);
    if (rc < 0)
        return fail(&e, err, errlen);
    char *copy = b->id[0] ? with_batch(b->a, doc, b->id, &in) : strdup(doc);
    if (!copy)
        return failf(AVATARQ_EAGAIN, err, errlen, "out of memory");
    if ((rc = batch_room(b, err, errlen)) < 0) {
        free(copy);
        return rc;
    }
    batch_hold(b, copy, &in, id_out);
    return 0;
}

long avatarq_batch_flush(avatarq_batch *b, char *err, size_t errlen)
{
    if (b->n == 0)
        return 0;
    queue_enq *jobs = calloc(b->n, sizeof *jobs);
    if (!jobs)
        return failf(AVATARQ_EAGAIN, err, errlen, "out of memory");
    const char *qn = b->queue[0] ? b->queue : NULL;
    for (size_t i = 0; i < b->n; i++) {
        const held *h = &b->items[i];
        jobs[i] = (queue_enq){.qname = qn, .id = h->id, .doc = h->doc, .len = strlen(h->doc),
                              .created_at = h->created_at, .run_at = h->run_at,
                              .always = h->always, .batch = h->batch};
    }
    aq_err e = {0};
    int rc = queue_enqueue_many_ex(b->a->q, jobs, b->n, &e);
    if (rc < 0) {
        free(jobs);
        return fail(&e, err, errlen);
    }
    /* refused ones (queue full) stay held, in order, for a later flush */
    size_t full = 0;
    for (size_t i = 0; i < b->n; i++)
        b->existing += jobs[i].status == QUEUE_ENQ_EXISTS;
    for (size_t i = 0; i < b->n; i++) {
        if (jobs[i].status == QUEUE_ENQ_FULL)
            b->items[full++] = b->items[i];
        else
            free(b->items[i].doc);
    }
    free(jobs);
    long sent = (long)(b->n - full);
    b->n = full;
    if (full)
        return failf(AVATARQ_EFULL, err, errlen,
                     "queue %s is full (max_queue_length %d): %zu of %ld jobs refused",
                     qn ? qn : b->a->cfg.redis.queue, b->a->cfg.redis.max_queue_length, full,
                     sent + (long)full);
    return sent;
}

size_t avatarq_batch_existing(const avatarq_batch *b)
{
    return b ? b->existing : 0;
}

/* A batch id nobody has used: "b" and 24 random hex digits. */
static int new_batch_id(char out[65], aq_err *e)
{
    unsigned char r[12];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(r, 1, sizeof r, f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof r)
        return err_set(e, AQ_EAGAIN, "batch id: cannot read /dev/urandom");
    out[0] = 'b';
    hash_hex(r, sizeof r, out + 1);
    return 0;
}

int avatarq_batch_track(avatarq_batch *b, const char *callback_url, char id_out[65], char *err,
                        size_t errlen)
{
    aq_err e = {0};
    if (b->n || b->id[0])
        return failf(AVATARQ_EPERM, err, errlen,
                     "batch: track before adding jobs, and only once");
    if (callback_url && !callback_url_valid(callback_url))
        return failf(AVATARQ_EPERM, err, errlen,
                     "callback_url: '%.80s' is not an http:// or https:// URL", callback_url);
    char id[65];
    int rc = new_batch_id(id, &e);
    if (rc == 0)
        rc = queue_batch_open(b->a->q, id, b->queue[0] ? b->queue : NULL, callback_url, &e);
    if (rc < 0)
        return fail(&e, err, errlen);
    memcpy(b->id, id, sizeof b->id);
    if (id_out)
        memcpy(id_out, id, 65);
    return 0;
}

int avatarq_batch_seal(avatarq_batch *b, char *err, size_t errlen)
{
    if (!b->id[0])
        return failf(AVATARQ_EPERM, err, errlen, "batch: not tracked (avatarq_batch_track)");
    long sent = avatarq_batch_flush(b, err, errlen);
    if (sent < 0)
        return (int)sent;
    aq_err e = {0};
    int rc = queue_batch_seal(b->a->q, b->id, &e);
    return rc < 0 ? fail(&e, err, errlen) : 0;
}

int avatarq_batch_status(avatarq *a, const char *id, avatarq_batch_info *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    aq_err e = {0};
    queue_batch_info bi;
    int rc = queue_batch_get(a->q, id, &bi, &e);
    if (rc < 0)
        return fail(&e, err, errlen);
    snprintf(out->state, sizeof out->state, "%s", bi.state);
    out->total = bi.total;
    out->pending = bi.pending;
    out->done = bi.done;
    out->dead = bi.dead;
    out->cancelled = bi.cancelled;
    out->created_at = bi.created_at;
    out->finished_at = bi.finished_at;
    out->sealed = bi.sealed != 0;
    return 0;
}

void avatarq_batch_free(avatarq_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        free(b->items[i].doc);
    free(b);
}

/* ---- following jobs ---- */

static void status_from_job(avatarq_status *st, queue_job *j)
{
    memset(st, 0, sizeof *st);
    snprintf(st->state, sizeof st->state, "%s", j->state);
    snprintf(st->queue, sizeof st->queue, "%s", j->queue);
    snprintf(st->worker, sizeof st->worker, "%s", j->worker);
    snprintf(st->error, sizeof st->error, "%s", j->error);
    st->attempts = j->attempts;
    st->created_at = j->created_at;
    st->started_at = j->started_at;
    st->finished_at = j->finished_at;
    st->duration_ms = j->duration_ms;
    st->outputs = j->outputs; /* ownership moves to st */
    j->outputs = NULL;
}

int avatarq_status_get(avatarq *a, const char *id, avatarq_status *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    if (!id || !job_id_valid(id))
        return failf(AVATARQ_EPERM, err, errlen, "id: '%.80s' is not a valid job id",
                     id ? id : "(null)");
    aq_err e = {0};
    queue_job j;
    int rc = queue_job_get(a->q, id, &j, &e);
    if (rc < 0)
        return fail(&e, err, errlen);
    status_from_job(st, &j);
    queue_job_free(&j);
    return 0;
}

void avatarq_status_free(avatarq_status *st)
{
    if (!st)
        return;
    free(st->outputs);
    st->outputs = NULL;
}

static bool is_final(const avatarq_status *st)
{
    return strcmp(st->state, "done") == 0 || strcmp(st->state, "dead") == 0 ||
           strcmp(st->state, "cancelled") == 0;
}

/* Milliseconds left before the deadline (-1 = none), never below 0. */
static long left_ms(int64_t deadline)
{
    if (deadline < 0)
        return WAIT_SLICE_MS;
    int64_t left = deadline - mono_ms();
    return left > 0 ? (long)left : 0;
}

int avatarq_wait(avatarq *a, const char *id, long timeout_ms, avatarq_status *st, char *err,
                 size_t errlen)
{
    memset(st, 0, sizeof *st);
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    aq_err e = {0};
    char last[48] = "0-0";
    /* The newest event id first, then the hash: an event that lands between
     * the two is still read by the XREAD that follows. */
    int rc = queue_events_last(a->q, last, &e);
    if (rc < 0 && rc != AQ_EAGAIN)
        return fail(&e, err, errlen);
    bool look = true;
    int64_t looked = 0;
    for (;;) {
        if (look) {
            looked = mono_ms();
            avatarq_status_free(st);
            rc = avatarq_status_get(a, id, st, err, errlen);
            if (rc == AVATARQ_ENOTFOUND || rc == AVATARQ_EPERM)
                return rc;
            if (rc == 0 && is_final(st))
                return 0;
        }
        long left = left_ms(deadline);
        if (left == 0)
            return failf(AVATARQ_ETIMEDOUT, err, errlen, "job %s: still %s after %ld ms", id,
                         st->state[0] ? st->state : "unknown", timeout_ms);
        long slice = left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS;
        bool seen = false;
        rc = queue_events_wait(a->q, last, (int)slice, id, &seen, &e);
        if (rc == AQ_EAGAIN) {
            /* Redis away: wait a little and reconnect on the next call. */
            retry_sleep_ms(slice < WAIT_RETRY_MS ? slice : WAIT_RETRY_MS, NULL);
            look = true;
            continue;
        }
        if (rc < 0) {
            avatarq_status_free(st);
            return fail(&e, err, errlen);
        }
        /* Read the hash again when our job moved, and at least once a
         * slice anyway (its event may have been trimmed away or missed). */
        look = seen || mono_ms() - looked >= WAIT_SLICE_MS || left_ms(deadline) == 0;
    }
}
