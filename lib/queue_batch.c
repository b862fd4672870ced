/* queue_batch: the worker engine's calls. A worker process holds many jobs;
 * its dispatcher records the outcomes of all finished ones and takes new ones
 * in one script (queue_cycle), and marks the new ones running in one more
 * (queue_start_many). queue_take_bounded is the blocking take of an idle
 * worker, which reads its reply in pieces so that a document over the
 * protocol's limit is never held whole. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "queue_int.h"
#include "retry.h"

const int queue_hist_bounds_ms[QUEUE_HIST_N - 1] = {1,   2,    5,    10,   25,    50,    100,  250,
                                                     500, 1000, 2500, 5000, 10000, 30000, 60000};

void queue_hist_add(queue_hist *h, int64_t ms)
{
    int b = 0;
    while (b < QUEUE_HIST_N - 1 && ms > queue_hist_bounds_ms[b])
        b++;
    h->bucket[b]++;
    h->sum_ms += ms;
    h->count++;
}

void queue_taken_free(queue_taken *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->doc[i]);
    free(t->doc);
    free(t->len);
    free(t->from);
    memset(t, 0, sizeof *t);
}

/* ---- a growable argument vector (a batch has no fixed size) ---- */

typedef struct qvec {
    int n, cap;
    const char **v;
    size_t *l;
    char (*num)[24];
} qvec;

static int qvec_grow(qvec *a, int need)
{
    if (a->n + need <= a->cap)
        return 0;
    int cap = a->cap ? a->cap : 64;
    while (cap < a->n + need)
        cap *= 2;
    const char **v = realloc(a->v, (size_t)cap * sizeof *v);
    if (v)
        a->v = v;
    size_t *l = realloc(a->l, (size_t)cap * sizeof *l);
    if (l)
        a->l = l;
    char(*num)[24] = realloc(a->num, (size_t)cap * sizeof *num);
    if (num)
        a->num = num;
    if (!v || !l || !num)
        return -1;
    a->cap = cap;
    return 0;
}

/* Numbers live in a->num, which may move when the vector grows: they are
 * pointed at only once the vector is complete (qvec_fix). */
#define QVEC_NUM ((const char *)1)

static void qvec_b(qvec *a, const char *p, size_t len)
{
    a->v[a->n] = p ? p : "";
    a->l[a->n] = p ? len : 0;
    a->n++;
}

static void qvec_s(qvec *a, const char *s)
{
    qvec_b(a, s, s ? strlen(s) : 0);
}

static void qvec_i(qvec *a, int64_t x)
{
    snprintf(a->num[a->n], sizeof a->num[a->n], "%" PRId64, x);
    a->l[a->n] = strlen(a->num[a->n]);
    a->v[a->n] = QVEC_NUM;
    a->n++;
}

static void qvec_fix(qvec *a)
{
    for (int i = 0; i < a->n; i++)
        if (a->v[i] == QVEC_NUM)
            a->v[i] = a->num[i];
}

static void qvec_free(qvec *a)
{
    free(a->v);
    free(a->l);
    free(a->num);
}

/* The EVALSHA head (filled by q_script_argv), nkeys and the keys. */
static void qvec_head(qvec *a, char keys[][QUEUE_KEY_MAX], int nkeys)
{
    qvec_s(a, "EVALSHA");
    qvec_s(a, "");
    qvec_i(a, nkeys);
    for (int i = 0; i < nkeys; i++)
        qvec_s(a, keys[i]);
}

/* ---- queue_cycle ---- */

static const char *const KIND_CODE[] = {[QUEUE_DONE] = "d", [QUEUE_RETRY] = "r",
                                        [QUEUE_DEAD] = "x", [QUEUE_DROP] = "c"};

static void cycle_outcome(qvec *a, const queue_outcome *o)
{
    qvec_s(a, KIND_CODE[o->kind]);
    qvec_b(a, o->doc, o->len);
    qvec_s(a, o->id ? o->id : "");
    switch (o->kind) {
    case QUEUE_DONE:
        qvec_i(a, o->duration_ms);
        qvec_s(a, o->outputs ? o->outputs : "");
        qvec_s(a, "");
        break;
    case QUEUE_RETRY:
        qvec_s(a, o->error);
        qvec_s(a, o->retry_doc);
        qvec_i(a, o->due_ms);
        break;
    case QUEUE_DEAD:
        qvec_s(a, o->error);
        qvec_s(a, o->dead_doc);
        qvec_s(a, "");
        break;
    case QUEUE_DROP:
        qvec_s(a, "");
        qvec_s(a, "");
        qvec_s(a, "");
        break;
    }
    qvec_s(a, o->callback ? o->callback : "");
    qvec_s(a, o->batch ? o->batch : "");
}

/* Field names of the histogram, built once. */
static const char *hist_field(int b)
{
    static char names[QUEUE_HIST_N][40];
    if (!names[b][0]) {
        if (b < QUEUE_HIST_N - 1)
            snprintf(names[b], sizeof names[b], "job_duration_ms_le_%d", queue_hist_bounds_ms[b]);
        else
            snprintf(names[b], sizeof names[b], "job_duration_ms_le_inf");
    }
    return names[b];
}

static int cycle_metrics(qvec *a, const queue_hist *h)
{
    int n = 0;
    for (int b = 0; h && b < QUEUE_HIST_N; b++)
        if (h->bucket[b]) {
            qvec_s(a, hist_field(b));
            qvec_i(a, h->bucket[b]);
            n++;
        }
    if (h && h->count) {
        qvec_s(a, "job_duration_ms_sum");
        qvec_i(a, h->sum_ms);
        qvec_s(a, "job_duration_ms_count");
        qvec_i(a, h->count);
        n += 2;
    }
    return n;
}

/* Copies the docs of an array reply into t. */
static int taken_from(queue *q, const redisReply *arr, queue_taken *t, aq_err *e)
{
    size_t n = arr && arr->type == REDIS_REPLY_ARRAY ? arr->elements : 0;
    if (n == 0)
        return 0;
    t->doc = calloc(n, sizeof *t->doc);
    t->len = calloc(n, sizeof *t->len);
    t->from = calloc(n, sizeof *t->from);
    if (!t->doc || !t->len || !t->from)
        return err_set(e, AQ_EAGAIN, "take: out of memory");
    for (size_t i = 0; i < n; i++) {
        const redisReply *d = arr->element[i];
        if (d->type != REDIS_REPLY_STRING)
            return err_set(e, AQ_EPERM, "redis %s: take: unexpected reply", q->where);
        if (!(t->doc[i] = malloc(d->len + 1)))
            return err_set(e, AQ_EAGAIN, "take: out of memory");
        memcpy(t->doc[i], d->str, d->len);
        t->doc[i][d->len] = '\0';
        t->len[i] = d->len;
        t->n++;
    }
    return 0;
}

static int cycle_reply(queue *q, redisReply *r, queue_outcome *outs, size_t n, queue_taken *t,
                       aq_err *e)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != n)
        return err_set(e, AQ_EPERM, "redis %s: cycle: unexpected reply", q->where);
    for (size_t i = 0; i < n; i++) {
        int64_t c = reply_int(r->element[0]->element[i]);
        outs[i].stale = c == 0;
        outs[i].cancelled = c == 2;
    }
    int64_t over = reply_int(r->element[2]);
    t->oversized = over > 0;
    t->oversized_from = over > 0 ? (int)over - 1 : 0;
    int rc = taken_from(q, r->element[1], t, e);
    const redisReply *from = r->element[3];
    for (size_t i = 0; rc == 0 && i < t->n; i++)
        t->from[i] = from->type == REDIS_REPLY_ARRAY && i < from->elements
                         ? (int)reply_int(from->element[i])
                         : 0;
    if (rc < 0)
        queue_taken_free(t);
    return rc;
}

/* ---- several queues ---- */

int queue_set_takes(queue *q, const char *const *names, const int *weights, int n, bool strict,
                    aq_err *e)
{
    if (n < 0 || n > QUEUE_TAKE_MAX)
        return err_set(e, AQ_EPERM, "queues: %d queues, at most %d", n, QUEUE_TAKE_MAX);
    for (int i = 0; i < n; i++) {
        if (!config_queue_name_valid(names[i]))
            return err_set(e, AQ_EPERM, "queues: '%.70s' is not a queue name", names[i]);
        if (!strict && (!weights || weights[i] < 1))
            return err_set(e, AQ_EPERM, "queues: %s: weight must be at least 1", names[i]);
    }
    q->ntake = n;
    q->take_strict = strict;
    for (int i = 0; i < n; i++) {
        snprintf(q->take_name[i], sizeof q->take_name[i], "%s", names[i]);
        q->take_weight[i] = strict || !weights ? 1 : weights[i];
        q->take_credit[i] = 0;
    }
    return 0;
}

const char *queue_take_name(const queue *q, int idx)
{
    return idx >= 1 && idx <= q->ntake ? q->take_name[idx - 1] : q->cfg.redis.queue;
}

int queue_take_count(const queue *q)
{
    return q->ntake;
}

int queue_take_first(const queue *q)
{
    if (q->ntake == 0)
        return 0;
    int best = 0;
    for (int i = 1; !q->take_strict && i < q->ntake; i++)
        if (q->take_weight[i] > q->take_weight[best])
            best = i;
    return best + 1;
}

/* The take order of one call: for each wanted document, the queue to try
 * first ('a' + index - 1). Weighted: smooth weighted round robin (each pick
 * adds every queue's weight to its credit and takes the largest credit,
 * which then pays the total), its credits kept across calls. Strict: always
 * the first queue. */
static void take_order(queue *q, char *out, int want)
{
    int64_t total = 0;
    for (int i = 0; i < q->ntake; i++)
        total += q->take_weight[i];
    for (int k = 0; k < want; k++) {
        int best = 0;
        for (int i = 0; !q->take_strict && i < q->ntake; i++) {
            q->take_credit[i] += q->take_weight[i];
            if (q->take_credit[i] > q->take_credit[best])
                best = i;
        }
        if (!q->take_strict)
            q->take_credit[best] -= total;
        out[k] = (char)('a' + best);
    }
    out[want] = '\0';
}

int queue_cycle(queue *q, const char *worker, queue_outcome *outs, size_t n,
                const queue_hist *hist, int want, size_t limit, queue_taken *taken, aq_err *e)
{
    memset(taken, 0, sizeof *taken);
    for (size_t i = 0; i < n; i++)
        if (check_id(outs[i].id, true, e) < 0)
            return err_prefix(e, "outcome %zu: ", i);
    if (want < 0)
        want = 0;
    int nkeys = 8 + q->ntake;
    char keys[8 + QUEUE_TAKE_MAX][QUEUE_KEY_MAX], ns[80];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "processing:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "queue:%s", q->cfg.redis.queue);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "events");
    queue_keyf(q, keys[4], QUEUE_KEY_MAX, "delayed");
    queue_keyf(q, keys[5], QUEUE_KEY_MAX, "dead");
    queue_keyf(q, keys[6], QUEUE_KEY_MAX, "metrics");
    queue_keyf(q, keys[7], QUEUE_KEY_MAX, "cancelled");
    for (int i = 0; i < q->ntake; i++)
        queue_keyf(q, keys[8 + i], QUEUE_KEY_MAX, "queue:%s", q->take_name[i]);
    ns_prefix(q, ns, sizeof ns);
    char *order = malloc((size_t)want + 1);
    qvec a = {0};
    if (!order || qvec_grow(&a, 40 + 8 * (int)n + 2 * (QUEUE_HIST_N + 2)) < 0) {
        free(order);
        qvec_free(&a);
        return err_set(e, AQ_EAGAIN, "cycle: out of memory");
    }
    if (q->ntake)
        take_order(q, order, want);
    else
        order[0] = '\0';
    qvec_head(&a, keys, nkeys);
    qvec_s(&a, ns);
    qvec_s(&a, worker);
    qvec_i(&a, now_ms());
    qvec_i(&a, result_ttl(q));
    qvec_i(&a, events_max(q));
    qvec_i(&a, dead_max(q));
    qvec_i(&a, (int64_t)n);
    qvec_i(&a, want);
    qvec_i(&a, (int64_t)limit);
    int nm_at = a.n;
    qvec_i(&a, 0);
    qvec_s(&a, order);
    qvec_s(&a, q->cfg.callbacks.publish ? "1" : "0");
    for (size_t i = 0; i < n; i++)
        cycle_outcome(&a, &outs[i]);
    int nm = cycle_metrics(&a, hist);
    snprintf(a.num[nm_at], sizeof a.num[nm_at], "%d", nm);
    a.l[nm_at] = strlen(a.num[nm_at]);
    qvec_fix(&a);
    redisReply *r;
    int rc = q_script_argv(q, S_CYCLE, a.n, a.v, a.l, "cycle", &r, e);
    qvec_free(&a);
    free(order);
    if (rc < 0)
        return rc;
    rc = cycle_reply(q, r, outs, n, taken, e);
    freeReplyObject(r);
    return rc;
}

/* ---- queue_start_many ---- */

int queue_start_many(queue *q, const char *worker, queue_start_item *items, size_t n,
                     aq_err *e)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (check_id(items[i].id, true, e) < 0)
            return err_prefix(e, "item %zu: ", i);
    char keys[2][QUEUE_KEY_MAX], ns[80];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "events");
    ns_prefix(q, ns, sizeof ns);
    qvec a = {0};
    if (qvec_grow(&a, 16 + 3 * (int)n) < 0) {
        qvec_free(&a);
        return err_set(e, AQ_EAGAIN, "start: out of memory");
    }
    qvec_head(&a, keys, 2);
    qvec_s(&a, ns);
    qvec_s(&a, worker);
    qvec_s(&a, q->cfg.redis.queue);
    qvec_i(&a, now_ms());
    qvec_i(&a, events_max(q));
    qvec_i(&a, (int64_t)n);
    qvec_i(&a, result_ttl(q));
    for (size_t i = 0; i < n; i++) {
        qvec_s(&a, items[i].id ? items[i].id : "");
        qvec_i(&a, items[i].created_at);
        qvec_s(&a, items[i].queue ? items[i].queue : "");
    }
    qvec_fix(&a);
    redisReply *r;
    int rc = q_script_argv(q, S_START_MANY, a.n, a.v, a.l, "start", &r, e);
    qvec_free(&a);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        rc = err_set(e, AQ_EPERM, "redis %s: start: unexpected reply", q->where);
    for (size_t i = 0; rc == 0 && i < n; i++)
        items[i].attempts = (int)reply_int(r->element[i]);
    freeReplyObject(r);
    return rc;
}

/* ---- queue_take_bounded: the reply read from the socket in pieces ---- */

typedef struct rd {
    queue *q;
    int fd;
    char buf[16384];
    size_t have, at;
} rd;

/* Fills r->buf when it is used up; the socket's receive timeout (set by
 * set_timeout) bounds each read. Returns bytes available or < 0. */
static int rd_fill(rd *r, aq_err *e)
{
    if (r->at < r->have)
        return (int)(r->have - r->at);
    ssize_t k;
    do
        k = read(r->fd, r->buf, sizeof r->buf);
    while (k < 0 && errno == EINTR);
    if (k <= 0)
        return transport_error(r->q, "take", e);
    r->have = (size_t)k;
    r->at = 0;
    return (int)k;
}

/* Reads the first line of a reply (type byte and text, without CRLF). */
static int rd_line(rd *r, char *out, size_t n, aq_err *e)
{
    size_t k = 0;
    for (;;) {
        int rc = rd_fill(r, e);
        if (rc < 0)
            return rc;
        char c = r->buf[r->at++];
        if (c == '\n')
            break;
        if (k + 1 < n && c != '\r')
            out[k++] = c;
    }
    out[k] = '\0';
    return 0;
}

/* Reads the n payload bytes of a bulk reply plus its CRLF: into *doc when
 * n <= limit, else through SHA-256 keeping the head in big. */
static int rd_bulk(rd *r, size_t n, size_t limit, char **doc, queue_big *big, aq_err *e)
{
    char *out = n <= limit ? malloc(n + 1) : NULL;
    if (n <= limit && !out)
        return err_set(e, AQ_EAGAIN, "take: out of memory");
    EVP_MD_CTX *md = out ? NULL : EVP_MD_CTX_new();
    if (md)
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    size_t got = 0, total = n + 2;
    int rc = 0;
    while (got < total && rc == 0) {
        if ((rc = rd_fill(r, e)) < 0)
            break;
        rc = 0;
        size_t k = r->have - r->at;
        if (k > total - got)
            k = total - got;
        size_t data = got < n ? (k < n - got ? k : n - got) : 0;
        const char *p = r->buf + r->at;
        if (out)
            memcpy(out + got, p, data);
        else {
            if (md)
                EVP_DigestUpdate(md, p, data);
            size_t room = QUEUE_DEAD_RAW_MAX - big->head_len;
            size_t keep = got < QUEUE_DEAD_RAW_MAX ? (data < room ? data : room) : 0;
            memcpy(big->head + big->head_len, p, keep);
            big->head_len += keep;
        }
        got += k;
        r->at += k;
    }
    if (rc < 0) {
        free(out);
        EVP_MD_CTX_free(md);
        return rc;
    }
    if (out) {
        out[n] = '\0';
        *doc = out;
    } else {
        unsigned char sum[32];
        unsigned len = 0;
        EVP_DigestFinal_ex(md, sum, &len);
        EVP_MD_CTX_free(md);
        hash_hex(sum, 32, big->sha256);
        big->head[big->head_len] = '\0';
        big->size = n;
    }
    return 0;
}

/* Sends BLMOVE through hiredis (which flushes its buffer) without reading. */
static int send_blmove(queue *q, int from, const char *worker, int timeout_ms, aq_err *e)
{
    char src[QUEUE_KEY_MAX], dst[QUEUE_KEY_MAX], secs[32];
    queue_keyf(q, src, sizeof src, "queue:%s", queue_take_name(q, from));
    queue_keyf(q, dst, sizeof dst, "processing:%s", worker);
    snprintf(secs, sizeof secs, "%d.%03d", timeout_ms / 1000, timeout_ms % 1000);
    const char *v[] = {"BLMOVE", src, dst, "RIGHT", "LEFT", secs};
    if (redisAppendCommandArgv(q->rc, 6, v, NULL) != REDIS_OK)
        return transport_error(q, "take", e);
    int done = 0;
    while (!done)
        if (redisBufferWrite(q->rc, &done) != REDIS_OK)
            return transport_error(q, "take", e);
    return 0;
}

int queue_take_bounded(queue *q, const char *worker, int timeout_ms, size_t limit, char **doc,
                       size_t *len, queue_big *big, aq_err *e)
{
    return queue_take_bounded_from(q, 0, worker, timeout_ms, limit, doc, len, big, e);
}

int queue_take_bounded_from(queue *q, int from, const char *worker, int timeout_ms,
                            size_t limit, char **doc, size_t *len, queue_big *big, aq_err *e)
{
    *doc = NULL;
    *len = 0;
    memset(big, 0, sizeof *big);
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    if (timeout_ms < 1)
        timeout_ms = 1;
    set_timeout(q, timeout_ms);
    if ((rc = send_blmove(q, from, worker, timeout_ms, e)) < 0)
        return rc;
    static __thread rd r;
    r = (rd){.q = q, .fd = q->rc->fd};
    char line[512];
    rc = rd_line(&r, line, sizeof line, e);
    set_timeout(q, 0);
    if (rc < 0)
        return rc;
    if (line[0] == '-') {
        q->broken = first_word_is(line + 1, "READONLY") || first_word_is(line + 1, "LOADING");
        return err_set(e, q->broken ? AQ_EAGAIN : AQ_EPERM, "redis %s: take: %s", q->where,
                       line + 1);
    }
    long long n = line[0] == '$' || line[0] == '*' ? strtoll(line + 1, NULL, 10) : -2;
    if (n == -1)
        return 0; /* timed out */
    if (line[0] != '$' || n < 0) {
        q->broken = true;
        return err_set(e, AQ_EPERM, "redis %s: take: unexpected reply '%.40s'", q->where, line);
    }
    if ((rc = rd_bulk(&r, (size_t)n, limit, doc, big, e)) < 0)
        return rc;
    if (r.at != r.have) { /* bytes of no reply of ours: the stream is out of step */
        q->broken = true;
        free(*doc);
        *doc = NULL;
        return err_set(e, AQ_EAGAIN, "redis %s: take: stray bytes after the reply", q->where);
    }
    *len = *doc ? (size_t)n : 0;
    return 1;
}

int queue_bury_oversized(queue *q, const char *worker, const queue_big *big, size_t limit,
                         const char *error, aq_err *e)
{
    char *dead = queue_dead_doc_big(big->head, big->head_len, big->size, big->sha256, error,
                                    now_ms(), 1);
    if (!dead)
        return err_set(e, AQ_EAGAIN, "bury: out of memory");
    char keys[4][QUEUE_KEY_MAX];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "processing:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "events");
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "dead");
    qargs a;
    arg_script(&a, q, S_BURY_BIG, 4);
    for (int i = 0; i < 4; i++)
        arg_s(&a, keys[i]);
    arg_i(&a, (int64_t)big->size);
    arg_i(&a, (int64_t)limit);
    arg_s(&a, dead);
    arg_i(&a, events_max(q));
    arg_i(&a, dead_max(q));
    arg_s(&a, worker);
    arg_s(&a, error);
    int rc = q_script_int(q, S_BURY_BIG, &a, "bury", NULL, e);
    free(dead);
    return rc;
}

int queue_processing(queue *q, const char *worker, queue_taken *out, aq_err *e)
{
    memset(out, 0, sizeof *out);
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "processing:%s", worker);
    qargs a = {0};
    arg_s(&a, "LRANGE");
    arg_s(&a, key);
    arg_s(&a, "0");
    arg_s(&a, "-1");
    redisReply *r;
    int rc = q_run(q, &a, "processing", &r, e);
    if (rc < 0)
        return rc;
    rc = taken_from(q, r, out, e);
    freeReplyObject(r);
    if (rc < 0)
        queue_taken_free(out);
    return rc;
}
