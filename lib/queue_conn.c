/* queue_conn: the queue handle, its connection and the helpers every queue
 * module uses to send commands and scripts (see queue_int.h).
 *
 * Scripts are loaded once per connection (SCRIPT LOAD, one pipeline) and run
 * with EVALSHA; a NOSCRIPT reply (Redis restarted or SCRIPT FLUSH) is answered
 * by resending the same call as EVAL, which also caches the script again.
 * Every key a script touches is passed in KEYS except where the key is only
 * known inside Redis (a job's queue read from its hash; promote's per-job
 * hashes): those are built from the namespace, so with a {hash tag}
 * namespace they still land in the one slot.
 *
 * Documents are re-encoded only on the C side with jansson (dead letters),
 * never with Lua's cjson, whose %.14g numbers would change a document (and
 * with it a derived id). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "hash.h"
#include "job.h"
#include "rconn.h"
#include "queue_int.h"
#include "retry.h"

/* Error replies that mean "this server cannot serve us right now": the
 * handle reconnects (after a failover the name may lead to a new master). */
static const struct {
    const char *word;
    int code;
    bool reconnect;
} reply_errors[] = {
    {"LOADING", AQ_EAGAIN, true},     {"READONLY", AQ_EAGAIN, true},
    {"MASTERDOWN", AQ_EAGAIN, true},  {"BUSY", AQ_EAGAIN, true},
    {"TRYAGAIN", AQ_EAGAIN, true},    {"CLUSTERDOWN", AQ_EAGAIN, true},
    {"MOVED", AQ_EAGAIN, true},       {"ASK", AQ_EAGAIN, true},
    {"OOM", AQ_EAGAIN, false},        {"NOREPLICAS", AQ_EAGAIN, false},
};

bool first_word_is(const char *s, const char *word)
{
    size_t n = strlen(word);
    return strncmp(s, word, n) == 0 && (s[n] == ' ' || s[n] == '\0');
}

/* Classifies an error reply; marks the handle broken when it should
 * reconnect. */
int reply_error(queue *q, const redisReply *r, const char *what, aq_err *e)
{
    for (size_t i = 0; i < sizeof reply_errors / sizeof reply_errors[0]; i++) {
        if (first_word_is(r->str, reply_errors[i].word)) {
            if (reply_errors[i].reconnect)
                q->broken = true;
            return err_set(e, reply_errors[i].code, "redis %s: %s: %s", q->where, what, r->str);
        }
    }
    return err_set(e, AQ_EPERM, "redis %s: %s: %s", q->where, what, r->str);
}

/* rconn put "redis HOST:PORT: why" into e; this adds which call it was. */
int transport_error(queue *q, const char *what, aq_err *e)
{
    q->broken = true;
    if (!e)
        return AQ_EAGAIN;
    char why[sizeof e->msg];
    snprintf(why, sizeof why, "%s", e->msg[0] ? e->msg : "redis: connection lost");
    return err_set(e, AQ_EAGAIN, "%.400s (%s)", why, what);
}


/* Sets the socket timeout to base + extra_ms unless it already is. */
void set_timeout(queue *q, int extra_ms)
{
    int want = QUEUE_CMD_TIMEOUT_MS + extra_ms;
    if (q->rc && q->timeout_ms != want) {
        rconn_set_timeout(q->rc, want);
        q->timeout_ms = want;
    }
}

/* ---- argument vectors ---- */

void arg_b(qargs *a, const char *p, size_t len)
{
    if (a->n >= QUEUE_ARGS_MAX)
        abort(); /* a programming error: the vectors here are fixed */
    a->v[a->n] = p ? p : "";
    a->l[a->n] = p ? len : 0;
    a->n++;
}

void arg_s(qargs *a, const char *s)
{
    arg_b(a, s, s ? strlen(s) : 0);
}

void arg_i(qargs *a, int64_t v)
{
    if (a->n >= QUEUE_ARGS_MAX)
        abort();
    snprintf(a->num[a->n], sizeof a->num[a->n], "%" PRId64, v);
    arg_s(a, a->num[a->n]);
}

/* "NS:" + fmt into out (queue_keyf, arg_key). */
static void key_vf(const queue *q, char *out, size_t n, const char *fmt, va_list ap)
{
    int k = snprintf(out, n, "%s:", q->cfg.redis.ns);
    if (k >= 0 && (size_t)k < n)
        vsnprintf(out + k, n - (size_t)k, fmt, ap);
}

void arg_key(qargs *a, const queue *q, const char *fmt, ...)
{
    if (a->nkey >= QUEUE_ARG_KEYS)
        abort(); /* as arg_b: a fixed vector overflowing is a programming error */
    char *out = a->key[a->nkey++];
    va_list ap;
    va_start(ap, fmt);
    key_vf(q, out, QUEUE_KEY_MAX, fmt, ap);
    va_end(ap);
    arg_s(a, out);
}

void arg_secs(qargs *a, int ms)
{
    if (a->n >= QUEUE_ARGS_MAX)
        abort();
    snprintf(a->num[a->n], sizeof a->num[a->n], "%d.%03d", ms / 1000, ms % 1000);
    arg_s(a, a->num[a->n]);
}

void arg_ns(qargs *a, const queue *q)
{
    arg_key(a, q, "%s", "");
}

void arg_cmd(qargs *a, const char *cmd)
{
    a->n = 0;
    a->nkey = 0;
    arg_s(a, cmd);
}

void arg_script(qargs *a, const queue *q, int s, int nkeys)
{
    arg_cmd(a, "EVALSHA");
    arg_s(a, q->sha[s]);
    arg_i(a, nkeys);
}

bool is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && first_word_is(r->str, "NOSCRIPT");
}

/* ---- growable argument vectors (a batch has no fixed size) ---- */

int qvec_grow(qvec *a, int need)
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

void qvec_b(qvec *a, const char *p, size_t len)
{
    a->v[a->n] = p ? p : "";
    a->l[a->n] = p ? len : 0;
    a->n++;
}

void qvec_s(qvec *a, const char *s)
{
    qvec_b(a, s, s ? strlen(s) : 0);
}

void qvec_i(qvec *a, int64_t x)
{
    snprintf(a->num[a->n], sizeof a->num[a->n], "%" PRId64, x);
    a->l[a->n] = strlen(a->num[a->n]);
    a->v[a->n] = QVEC_NUM;
    a->n++;
}

void qvec_fix(qvec *a)
{
    for (int i = 0; i < a->n; i++)
        if (a->v[i] == QVEC_NUM)
            a->v[i] = a->num[i];
}

void qvec_free(qvec *a)
{
    free(a->v);
    free(a->l);
    free(a->num);
}

void qvec_head(qvec *a, char keys[][QUEUE_KEY_MAX], int nkeys)
{
    qvec_s(a, "EVALSHA");
    qvec_s(a, "");
    qvec_i(a, nkeys);
    for (int i = 0; i < nkeys; i++)
        qvec_s(a, keys[i]);
}


/* ---- one command ---- */

/* Sends a and returns its reply in *out (to freeReplyObject), or < 0 with
 * the failure classified. Error replies are failures. */
int q_run(queue *q, qargs *a, const char *what, redisReply **out, aq_err *e)
{
    *out = NULL;
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    redisReply *r = NULL;
    if (rconn_command(q->rc, a->n, a->v, a->l, &r, e) < 0)
        return transport_error(q, what, e);
    if (r->type == REDIS_REPLY_ERROR) {
        rc = reply_error(q, r, what, e);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Sends one vector, followed in the same write by WAIT when durable (see
 * [redis] min_replicas_ack), and reads its reply (*r) and WAIT's (*w). */
static int q_send(queue *q, int n, const char **v, const size_t *l, bool durable, redisReply **r,
                  redisReply **w, aq_err *e)
{
    *r = *w = NULL;
    int rc = rconn_append(q->rc, n, v, l, e);
    if (rc == 0 && durable)
        rc = rconn_append_wait(q->rc, e);
    if (rc == 0)
        rc = rconn_reply(q->rc, r, e);
    if (rc == 0 && durable)
        rc = rconn_reply(q->rc, w, e);
    if (rc < 0 && *r) {
        freeReplyObject(*r);
        *r = NULL;
    }
    return rc;
}

/* The scripts whose writes must reach min_replicas_ack replicas (WAIT): the
 * ones that record a job or its outcome. */
static const bool script_durable[S_COUNT] = {
    [S_ENQUEUE] = true, [S_CYCLE] = true,
    [S_REQUEUE] = true, [S_BURY_BIG] = true,
};

int q_script_argv(queue *q, int s, int n, const char **v, size_t *l, const char *what,
                  redisReply **out, aq_err *e)
{
    *out = NULL;
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    bool durable = script_durable[s] && rconn_wait_wanted(q->rc);
    v[0] = "EVALSHA";
    l[0] = 7;
    v[1] = q->sha[s]; /* the handle may have reconnected since the vector was built */
    l[1] = 40;
    redisReply *r, *w;
    rc = q_send(q, n, v, l, durable, &r, &w, e);
    if (rc == 0 && is_noscript(r)) {
        freeReplyObject(r);
        if (w)
            freeReplyObject(w);
        v[0] = "EVAL";
        l[0] = 4;
        v[1] = script_body[s];
        l[1] = strlen(script_body[s]);
        rc = q_send(q, n, v, l, durable, &r, &w, e);
    }
    if (rc < 0)
        return transport_error(q, what, e);
    if (r->type == REDIS_REPLY_ERROR)
        rc = reply_error(q, r, what, e);
    else if (w)
        rc = rconn_wait_check(q->rc, w, e);
    if (w)
        freeReplyObject(w);
    if (rc < 0) {
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

int q_wait(queue *q, const char *what, aq_err *e)
{
    if (!rconn_wait_wanted(q->rc))
        return 0;
    redisReply *w = NULL;
    if (rconn_append_wait(q->rc, e) < 0 || rconn_reply(q->rc, &w, e) < 0)
        return transport_error(q, what, e);
    int rc = rconn_wait_check(q->rc, w, e);
    freeReplyObject(w);
    return rc;
}

int q_script(queue *q, int s, qargs *a, const char *what, redisReply **out, aq_err *e)
{
    return q_script_argv(q, s, a->n, a->v, a->l, what, out, e);
}

/* A script whose integer result is all we need. */
int q_script_int(queue *q, int s, qargs *a, const char *what, long long *res, aq_err *e)
{
    redisReply *r;
    int rc = q_script(q, s, a, what, &r, e);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER) {
        int type = r->type;
        freeReplyObject(r);
        return err_set(e, AQ_EPERM, "redis %s: %s: unexpected reply type %d", q->where, what, type);
    }
    if (res)
        *res = r->integer;
    freeReplyObject(r);
    return 0;
}

/* ---- pipelines ---- */

int q_append(queue *q, qargs *a, const char *what, aq_err *e)
{
    if (rconn_append(q->rc, a->n, a->v, a->l, e) < 0)
        return transport_error(q, what, e);
    return 0;
}

/* Reads one pipelined reply; error replies are returned as replies. */
int q_read(queue *q, const char *what, redisReply **out, aq_err *e)
{
    if (rconn_reply(q->rc, out, e) < 0)
        return transport_error(q, what, e);
    return 0;
}

/* Reads n replies, discarding them; the first error reply wins. */
int q_read_all(queue *q, size_t n, const char *what, aq_err *e)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r;
        int x = q_read(q, what, &r, e);
        if (x < 0)
            return x; /* the connection is gone; nothing more to read */
        if (r->type == REDIS_REPLY_ERROR && rc == 0)
            rc = reply_error(q, r, what, e);
        freeReplyObject(r);
    }
    return rc;
}

/* ---- connecting ---- */

static int load_scripts(queue *q, aq_err *e)
{
    for (int s = 0; s < S_COUNT; s++) {
        const char *argv[] = {"SCRIPT", "LOAD", script_body[s]};
        if (rconn_append(q->rc, 3, argv, NULL, e) < 0)
            return transport_error(q, "SCRIPT LOAD", e);
    }
    int rc = 0;
    for (int s = 0; s < S_COUNT; s++) {
        redisReply *r;
        int x = q_read(q, "SCRIPT LOAD", &r, e);
        if (x < 0)
            return x;
        if (r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(q->sha[s], r->str, 41);
        else if (rc == 0)
            rc = r->type == REDIS_REPLY_ERROR
                     ? reply_error(q, r, "SCRIPT LOAD", e)
                     : err_set(e, AQ_EPERM, "redis %s: SCRIPT LOAD: unexpected reply", q->where);
        freeReplyObject(r);
    }
    return rc;
}


/* Finds the master (rconn: URL, Sentinel or Cluster; AUTH, SELECT, ROLE)
 * the first time, finds it again after that, and loads the scripts. */
static int connect_now(queue *q, aq_err *e)
{
    aq_err mine = {0};
    if (!e)
        e = &mine; /* rconn_open's failure code is read from it */
    q->broken = true;
    q->timeout_ms = 0;
    int rc;
    if (!q->rc)
        rc = (q->rc = rconn_open(&q->cfg, e)) ? 0 : e->code;
    else
        rc = rconn_reconnect(q->rc, e);
    if (rc < 0)
        return rc;
    snprintf(q->where, sizeof q->where, "%s", rconn_where(q->rc));
    set_timeout(q, 0);
    rc = load_scripts(q, e);
    if (rc < 0) {
        q->broken = true;
        return rc;
    }
    q->broken = false;
    return 0;
}

queue *queue_open(const aq_config *c, aq_err *e)
{
    queue *q = calloc(1, sizeof *q);
    if (!q) {
        err_set(e, AQ_EAGAIN, "queue: out of memory");
        return NULL;
    }
    q->cfg = *c;
    if (q->cfg.redis.unix_path[0])
        snprintf(q->where, sizeof q->where, "%.290s", q->cfg.redis.unix_path);
    else
        snprintf(q->where, sizeof q->where, "%.256s:%d", q->cfg.redis.host, q->cfg.redis.port);
    if (connect_now(q, e) < 0) {
        queue_close(q);
        return NULL;
    }
    return q;
}

void queue_close(queue *q)
{
    if (!q)
        return;
    rconn_close(q->rc);
    free(q);
}

void queue_server_get(const queue *q, queue_server *s)
{
    s->where = rconn_where(q->rc);
    s->role = rconn_role(q->rc);
    s->via = rconn_mode(q->rc);
    s->tls = rconn_tls(q->rc);
}

int queue_ensure(queue *q, aq_err *e)
{
    if (!q->broken && q->rc)
        return 0;
    return connect_now(q, e);
}

void queue_keyf(const queue *q, char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    key_vf(q, out, n, fmt, ap);
    va_end(ap);
}

/* ---- small shared helpers ---- */

int events_max(const queue *q)
{
    return q->cfg.worker.events_max > 0 ? q->cfg.worker.events_max : 10000;
}

int dead_max(const queue *q)
{
    return q->cfg.worker.dead_max > 0 ? q->cfg.worker.dead_max : 10000;
}

int result_ttl(const queue *q)
{
    return q->cfg.worker.result_ttl_s > 0 ? q->cfg.worker.result_ttl_s : 604800;
}

const char *qname_or_default(const queue *q, const char *qname)
{
    return qname && *qname ? qname : q->cfg.redis.queue;
}

void ns_prefix(const queue *q, char *out, size_t n)
{
    snprintf(out, n, "%s:", q->cfg.redis.ns);
}

/* Job ids travel into key names: refuse anything a job document could not
 * carry as an id (the worker validates ids the same way). */
int check_id(const char *id, bool allow_empty, aq_err *e)
{
    if (!id || !*id)
        return allow_empty ? 0 : err_set(e, AQ_EPERM, "job id is empty");
    if (!job_id_valid(id))
        return err_set(e, AQ_EPERM, "job id '%.80s' is not [A-Za-z0-9._-]{1,64}", id);
    return 0;
}

/* ---- hashes into structs (job, batch, worker) ---- */

/* Stores one field of a flat HGETALL reply into the struct at base, by a
 * table of {name, type, offset}. */
static void store_field(void *base, int type, size_t off, size_t size, const redisReply *v)
{
    char *p = (char *)base + off;
    switch (type) {
    case F_STR:
        snprintf(p, size, "%.*s", (int)v->len, v->str);
        break;
    case F_INT:
        *(int *)p = (int)strtol(v->str, NULL, 10);
        break;
    case F_LONG:
        *(long *)p = strtol(v->str, NULL, 10);
        break;
    case F_I64:
        *(int64_t *)p = strtoll(v->str, NULL, 10);
        break;
    case F_DUP:
        free(*(char **)p);
        *(char **)p = v->len ? strndup(v->str, v->len) : NULL;
        break;
    }
}

/* Stores every field of a flat HGETALL reply that the table names. */
void store_fields(void *base, const field_spec *t, size_t n, const redisReply *hash)
{
    for (size_t i = 0; i + 1 < hash->elements; i += 2) {
        const redisReply *k = hash->element[i], *v = hash->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        for (size_t f = 0; f < n; f++)
            if (strcmp(k->str, t[f].name) == 0)
                store_field(base, t[f].type, t[f].off, t[f].size, v);
    }
}


int q_hash_get(queue *q, const char *family, const char *id, const field_spec *t, size_t n,
               void *base, aq_err *e)
{
    int rc = check_id(id, false, e);
    if (rc < 0)
        return rc;
    char what[80];
    snprintf(what, sizeof what, "%s %s", family, id);
    qargs a;
    arg_cmd(&a, "HGETALL");
    arg_key(&a, q, "%s:%s", family, id);
    redisReply *r;
    if ((rc = q_run(q, &a, what, &r, e)) < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        rc = err_set(e, AQ_ENOTFOUND, "%s: not found", what);
    else
        store_fields(base, t, n, r);
    freeReplyObject(r);
    return rc;
}
