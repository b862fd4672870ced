/* queue: every Redis command and Lua script of docs/protocol.md "Keys in Redis".
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
#include "queue.h"

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
#include "retry.h"

/* Base timeout of one command; a blocking command adds its own wait. */
#define QUEUE_CMD_TIMEOUT_MS 10000
#define QUEUE_KEY_MAX 400
#define QUEUE_ARGS_MAX 48
#define QUEUE_CONTROL_MAXLEN "1000"
/* The recovery lock only saves duplicated work (every step of recovery is
 * atomic on its own), so it may expire early; it must not outlive a killed
 * holder by much, or recovery stalls. */
#define QUEUE_LOCK_MIN_MS 2000
#define QUEUE_PAGE 500

/* ------------------------------------------------------------------ */
/* Lua scripts */

/* Shared by the scripts that add an event: XADD capped with MAXLEN ~. */
#define LUA_EVENT                                                              \
    "local function event(key, maxlen, id, state, worker, err)\n"              \
    "  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'id', id,\n"       \
    "    'state', state, 'worker', worker, 'error', err)\n"                    \
    "end\n"

/* A queue name read from a job hash, accepted only when it could have been
 * written by us (no ':' tricks into another key family). */
#define LUA_QNAME                                                              \
    "local function qkey(ns, name, fallback)\n"                                \
    "  if type(name) == 'string' and #name > 0 and #name <= 64 and\n"          \
    "     name:match('^[%w._-]+$') then return ns .. 'queue:' .. name end\n"  \
    "  return fallback\n"                                                      \
    "end\n"

/* KEYS: queue, job, stats, events.  ARGV: doc, id, qname, created_at, maxlen.
 * A document without id is counted by queue_start instead (no hash here). */
static const char LUA_ENQUEUE[] =
    LUA_EVENT
    "redis.call('LPUSH', KEYS[1], ARGV[1])\n"
    "if ARGV[2] == '' then return 1 end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('HSET', KEYS[2], 'state', 'queued', 'attempts', 0, 'queue', ARGV[3],\n"
    "  'created_at', ARGV[4])\n"
    "redis.call('HINCRBY', KEYS[3], 'enqueued', 1)\n"
    "event(KEYS[4], ARGV[5], ARGV[2], 'queued', '', '')\n"
    "return 1\n";

/* KEYS: job, stats, events.  ARGV: worker, id, qname, now, created_at, maxlen.
 * No hash, or a hash in a final state, means a job that did not come through
 * queue_enqueue (a raw LPUSH, or the same id pushed again): count it as
 * enqueued and start its attempts from zero. The job already running on
 * this very worker means a retried start whose reply was lost: nothing
 * changes (a worker runs one job at a time, and any requeue in between
 * would have changed the state). */
static const char LUA_START[] =
    LUA_EVENT
    "if ARGV[2] == '' then\n"
    "  redis.call('HINCRBY', KEYS[2], 'enqueued', 1)\n"
    "  redis.call('HINCRBY', KEYS[2], 'started', 1)\n"
    "  return 1\n"
    "end\n"
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st == 'running' and redis.call('HGET', KEYS[1], 'worker') == ARGV[1] then\n"
    "  return tonumber(redis.call('HGET', KEYS[1], 'attempts'))\n"
    "end\n"
    "if st == false or st == 'done' or st == 'dead' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('HINCRBY', KEYS[2], 'enqueued', 1)\n"
    "  local created = ARGV[5]\n"
    "  if created == '0' then created = ARGV[4] end\n"
    "  redis.call('HSET', KEYS[1], 'created_at', created, 'attempts', 0)\n"
    "end\n"
    "local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'queue', ARGV[3],\n"
    "  'started_at', ARGV[4])\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('HINCRBY', KEYS[2], 'started', 1)\n"
    "event(KEYS[3], ARGV[6], ARGV[2], 'running', ARGV[1], '')\n"
    "return n\n";

/* The doc must leave the worker's processing list, or (taken back by
 * recovery and not yet taken again) the queue, in this very script; when it
 * is in neither, someone else holds it and will record it. */
#define LUA_CLAIM                                                              \
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 and\n"                   \
    "   redis.call('LREM', KEYS[5], -1, ARGV[1]) == 0 then return 0 end\n"

/* KEYS: processing, job, stats, events, queue.
 * ARGV: doc, id, worker, now, duration_ms, outputs, result_ttl, maxlen. */
static const char LUA_ACK[] =
    LUA_EVENT
    LUA_CLAIM
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[2], 'state', 'done', 'worker', ARGV[3], 'error', '',\n"
    "    'finished_at', ARGV[4], 'duration_ms', ARGV[5], 'outputs', ARGV[6])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[7])\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], 'done', 1)\n"
    "event(KEYS[4], ARGV[8], ARGV[2], 'done', ARGV[3], '')\n"
    "return 1\n";

/* KEYS: processing, job, stats, events, queue, delayed, dead.
 * ARGV: doc, id, worker, now, error, mode (retry|dead), retry_doc, due_ms,
 *       dead_doc, result_ttl, maxlen, dead_max.
 * A document refused before it ever started (no live hash: a raw LPUSH of
 * garbage) is counted `enqueued` here, as queue_start counts the others, so
 * that enqueued = done + dead + in flight. */
static const char LUA_FAIL[] =
    LUA_EVENT
    LUA_CLAIM
    "if ARGV[6] == 'retry' then\n"
    "  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[7])\n"
    "  if ARGV[2] ~= '' then\n"
    "    redis.call('HSET', KEYS[2], 'state', 'retrying', 'worker', ARGV[3], 'error', ARGV[5])\n"
    "  end\n"
    "  redis.call('HINCRBY', KEYS[3], 'retried', 1)\n"
    "  event(KEYS[4], ARGV[11], ARGV[2], 'retrying', ARGV[3], ARGV[5])\n"
    "  return 1\n"
    "end\n"
    "redis.call('LPUSH', KEYS[7], ARGV[9])\n"
    "redis.call('LTRIM', KEYS[7], 0, tonumber(ARGV[12]) - 1)\n"
    "local st = false\n"
    "if ARGV[2] ~= '' then st = redis.call('HGET', KEYS[2], 'state') end\n"
    "if st == false or st == 'done' or st == 'dead' then\n"
    "  redis.call('HINCRBY', KEYS[3], 'enqueued', 1)\n"
    "end\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[2], 'state', 'dead', 'worker', ARGV[3], 'error', ARGV[5],\n"
    "    'finished_at', ARGV[4])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[10])\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], 'failed', 1)\n"
    "redis.call('HINCRBY', KEYS[3], 'dead', 1)\n"
    "event(KEYS[4], ARGV[11], ARGV[2], 'dead', ARGV[3], ARGV[5])\n"
    "return 1\n";

/* KEYS: delayed, default queue, events.  ARGV: now, limit, ns, maxlen.
 * ZRANGEBYSCORE and ZREM in one script: a due job moves exactly once however
 * many supervisors call this at the same time. */
static const char LUA_PROMOTE[] =
    LUA_EVENT
    LUA_QNAME
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "local moved = 0\n"
    "for _, doc in ipairs(due) do\n"
    "  if redis.call('ZREM', KEYS[1], doc) == 1 then\n"
    "    local target = KEYS[2]\n"
    "    local ok, j = pcall(cjson.decode, doc)\n"
    "    if ok and type(j) == 'table' and type(j.id) == 'string' and #j.id <= 64 and\n"
    "       j.id:match('^[%w_-][%w._-]*$') then\n"
    "      local jk = ARGV[3] .. 'job:' .. j.id\n"
    "      if redis.call('EXISTS', jk) == 1 then\n"
    "        target = qkey(ARGV[3], redis.call('HGET', jk, 'queue'), target)\n"
    "        redis.call('HSET', jk, 'state', 'queued')\n"
    "        event(KEYS[3], ARGV[4], j.id, 'queued', '', '')\n"
    "      end\n"
    "    end\n"
    "    redis.call('LPUSH', target, doc)\n"
    "    moved = moved + 1\n"
    "  end\n"
    "end\n"
    "return moved\n";

/* KEYS: processing, job, default queue, dead, stats, events.
 * ARGV: doc, id, max_attempts, dead_doc, ns, worker, now, result_ttl, maxlen,
 *       dead_max, error (non-empty: ident refused the doc, dead at once).
 * Returns 0 (no longer there), 1 (requeued) or 2 (dead). */
static const char LUA_REQUEUE[] =
    LUA_EVENT
    LUA_QNAME
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "local attempts = 0\n"
    "if ARGV[2] ~= '' then\n"
    "  attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0') or 0\n"
    "end\n"
    "local err = ARGV[11]\n"
    "if err == '' and ARGV[2] ~= '' and attempts >= tonumber(ARGV[3]) then\n"
    "  err = 'worker died ' .. attempts .. ' times while running it'\n"
    "end\n"
    "if err ~= '' then\n"
    "  local st = false\n"
    "  if ARGV[2] ~= '' then st = redis.call('HGET', KEYS[2], 'state') end\n"
    "  if st == false or st == 'done' or st == 'dead' then\n"
    "    redis.call('HINCRBY', KEYS[5], 'enqueued', 1)\n"
    "  end\n"
    "  redis.call('LPUSH', KEYS[4], ARGV[4])\n"
    "  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[10]) - 1)\n"
    "  if ARGV[2] ~= '' then\n"
    "    redis.call('HSET', KEYS[2], 'state', 'dead', 'error', err, 'finished_at', ARGV[7])\n"
    "    redis.call('EXPIRE', KEYS[2], ARGV[8])\n"
    "  end\n"
    "  redis.call('HINCRBY', KEYS[5], 'dead', 1)\n"
    "  event(KEYS[6], ARGV[9], ARGV[2], 'dead', ARGV[6], err)\n"
    "  return 2\n"
    "end\n"
    "local target = KEYS[3]\n"
    "if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  target = qkey(ARGV[5], redis.call('HGET', KEYS[2], 'queue'), target)\n"
    "  redis.call('HSET', KEYS[2], 'state', 'queued')\n"
    "end\n"
    "redis.call('RPUSH', target, ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[5], 'recovered', 1)\n"
    "if ARGV[2] ~= '' then event(KEYS[6], ARGV[9], ARGV[2], 'queued', ARGV[6], '') end\n"
    "return 1\n";

/* KEYS: worker hash, processing, workers.  ARGV: worker.
 * Deregisters a worker only if it is still silent and holds nothing: a late
 * worker that beat or took a job meanwhile stays registered. */
static const char LUA_FORGET[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "if redis.call('LLEN', KEYS[2]) > 0 then return 0 end\n"
    "return redis.call('SREM', KEYS[3], ARGV[1])\n";

/* KEYS: lock.  ARGV: token.  Compare-and-delete: never free another's lock. */
static const char LUA_UNLOCK[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* KEYS: dead, job, default queue, events.
 * ARGV: dead_doc, doc, id, ns, qname, maxlen, now. */
static const char LUA_DEAD_RETRY[] =
    LUA_EVENT
    LUA_QNAME
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "local target = KEYS[3]\n"
    "if ARGV[3] ~= '' then\n"
    "  local qn = redis.call('HGET', KEYS[2], 'queue')\n"
    "  target = qkey(ARGV[4], qn, target)\n"
    "  if not qn then\n"
    "    redis.call('HSET', KEYS[2], 'queue', ARGV[5], 'created_at', ARGV[7])\n"
    "  end\n"
    "  redis.call('HSET', KEYS[2], 'state', 'queued', 'attempts', 0, 'error', '')\n"
    "  redis.call('PERSIST', KEYS[2])\n"
    "  event(KEYS[4], ARGV[6], ARGV[3], 'queued', '', '')\n"
    "end\n"
    "redis.call('LPUSH', target, ARGV[2])\n"
    "return 1\n";

enum {
    S_ENQUEUE,
    S_START,
    S_ACK,
    S_FAIL,
    S_PROMOTE,
    S_REQUEUE,
    S_FORGET,
    S_UNLOCK,
    S_DEAD_RETRY,
    S_COUNT
};

static const char *const script_body[S_COUNT] = {
    [S_ENQUEUE] = LUA_ENQUEUE, [S_START] = LUA_START,     [S_ACK] = LUA_ACK,
    [S_FAIL] = LUA_FAIL,       [S_PROMOTE] = LUA_PROMOTE, [S_REQUEUE] = LUA_REQUEUE,
    [S_FORGET] = LUA_FORGET,   [S_UNLOCK] = LUA_UNLOCK,   [S_DEAD_RETRY] = LUA_DEAD_RETRY,
};

/* ------------------------------------------------------------------ */
/* the handle */

struct queue {
    redisContext *rc;
    bool broken;
    int timeout_ms;              /* the socket timeout currently set */
    aq_config cfg;               /* a copy: the caller may reload its own */
    char where[300];             /* "host:port" or the socket path, for messages */
    char sha[S_COUNT][41];
    /* The worker whose last take lost its connection: the move may have
     * happened with the reply lost, so its processing list is looked at
     * first on the next take (else the job would sit there unseen). */
    char take_doubt[160];
};

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
    {"OOM", AQ_EAGAIN, false},        {"NOREPLICAS", AQ_EAGAIN, false},
};

static bool first_word_is(const char *s, const char *word)
{
    size_t n = strlen(word);
    return strncmp(s, word, n) == 0 && (s[n] == ' ' || s[n] == '\0');
}

/* Classifies an error reply; marks the handle broken when it should
 * reconnect. */
static int reply_error(queue *q, const redisReply *r, const char *what, aq_err *e)
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

static int transport_error(queue *q, const char *what, aq_err *e)
{
    q->broken = true;
    const char *why = q->rc && q->rc->errstr[0] ? q->rc->errstr : "connection lost";
    return err_set(e, AQ_EAGAIN, "redis %s: %s: %s", q->where, what, why);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    return tv;
}

/* Sets the socket timeout to base + extra_ms unless it already is. */
static void set_timeout(queue *q, int extra_ms)
{
    int want = QUEUE_CMD_TIMEOUT_MS + extra_ms;
    if (q->rc && q->timeout_ms != want && redisSetTimeout(q->rc, ms_tv(want)) == REDIS_OK)
        q->timeout_ms = want;
}

/* ---- argument vectors ---- */

typedef struct qargs {
    int n;
    const char *v[QUEUE_ARGS_MAX];
    size_t l[QUEUE_ARGS_MAX];
    char num[QUEUE_ARGS_MAX][24];
} qargs;

static void arg_b(qargs *a, const char *p, size_t len)
{
    if (a->n >= QUEUE_ARGS_MAX)
        abort(); /* a programming error: the vectors here are fixed */
    a->v[a->n] = p ? p : "";
    a->l[a->n] = p ? len : 0;
    a->n++;
}

static void arg_s(qargs *a, const char *s)
{
    arg_b(a, s, s ? strlen(s) : 0);
}

static void arg_i(qargs *a, int64_t v)
{
    if (a->n >= QUEUE_ARGS_MAX)
        abort();
    snprintf(a->num[a->n], sizeof a->num[a->n], "%" PRId64, v);
    arg_s(a, a->num[a->n]);
}

/* Starts an EVALSHA vector for script s with nkeys keys to follow. */
static void arg_script(qargs *a, const queue *q, int s, int nkeys)
{
    a->n = 0;
    arg_s(a, "EVALSHA");
    arg_s(a, q->sha[s]);
    arg_i(a, nkeys);
}

/* After NOSCRIPT: the same call with the body (EVAL also caches it again). */
static void arg_script_eval(qargs *a, int s)
{
    a->v[0] = "EVAL";
    a->l[0] = 4;
    a->v[1] = script_body[s];
    a->l[1] = strlen(script_body[s]);
}

static bool is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && first_word_is(r->str, "NOSCRIPT");
}

/* ---- one command ---- */

/* Sends a and returns its reply in *out (to freeReplyObject), or < 0 with
 * the failure classified. Error replies are failures. */
static int q_run(queue *q, qargs *a, const char *what, redisReply **out, aq_err *e)
{
    *out = NULL;
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    redisReply *r = redisCommandArgv(q->rc, a->n, a->v, a->l);
    if (!r)
        return transport_error(q, what, e);
    if (r->type == REDIS_REPLY_ERROR) {
        rc = reply_error(q, r, what, e);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Runs a script vector built with arg_script(), falling back to EVAL. */
static int q_script(queue *q, int s, qargs *a, const char *what, redisReply **out, aq_err *e)
{
    *out = NULL;
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    a->v[1] = q->sha[s]; /* the handle may have reconnected since arg_script */
    redisReply *r = redisCommandArgv(q->rc, a->n, a->v, a->l);
    if (is_noscript(r)) {
        freeReplyObject(r);
        arg_script_eval(a, s);
        r = redisCommandArgv(q->rc, a->n, a->v, a->l);
    }
    if (!r)
        return transport_error(q, what, e);
    if (r->type == REDIS_REPLY_ERROR) {
        rc = reply_error(q, r, what, e);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* A script whose integer result is all we need. */
static int q_script_int(queue *q, int s, qargs *a, const char *what, long long *res, aq_err *e)
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

static int q_append(queue *q, qargs *a, const char *what, aq_err *e)
{
    if (redisAppendCommandArgv(q->rc, a->n, a->v, a->l) != REDIS_OK)
        return transport_error(q, what, e);
    return 0;
}

/* Reads one pipelined reply; error replies are returned as replies. */
static int q_read(queue *q, const char *what, redisReply **out, aq_err *e)
{
    void *r = NULL;
    if (redisGetReply(q->rc, &r) != REDIS_OK || !r) {
        *out = NULL;
        return transport_error(q, what, e);
    }
    *out = r;
    return 0;
}

/* Reads n replies, discarding them; the first error reply wins. */
static int q_read_all(queue *q, size_t n, const char *what, aq_err *e)
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
        if (redisAppendCommandArgv(q->rc, 3, argv, NULL) != REDIS_OK)
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

/* AUTH (ACL user + password, or password only) and SELECT, as configured. */
static int handshake(queue *q, aq_err *e)
{
    qargs a = {0};
    redisReply *r = NULL;
    if (q->cfg.redis.password[0]) {
        arg_s(&a, "AUTH");
        if (q->cfg.redis.user[0])
            arg_s(&a, q->cfg.redis.user);
        arg_s(&a, q->cfg.redis.password);
        r = redisCommandArgv(q->rc, a.n, a.v, a.l);
        if (!r)
            return transport_error(q, "AUTH", e);
        int rc = r->type == REDIS_REPLY_ERROR ? reply_error(q, r, "AUTH", e) : 0;
        freeReplyObject(r);
        if (rc < 0)
            return rc;
    }
    if (q->cfg.redis.db != 0) {
        a.n = 0;
        arg_s(&a, "SELECT");
        arg_i(&a, q->cfg.redis.db);
        r = redisCommandArgv(q->rc, a.n, a.v, a.l);
        if (!r)
            return transport_error(q, "SELECT", e);
        int rc = r->type == REDIS_REPLY_ERROR ? reply_error(q, r, "SELECT", e) : 0;
        freeReplyObject(r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int connect_now(queue *q, aq_err *e)
{
    if (q->rc)
        redisFree(q->rc);
    q->rc = NULL;
    q->broken = true;
    q->timeout_ms = 0;
    struct timeval tv = ms_tv(q->cfg.redis.connect_timeout_ms > 0 ? q->cfg.redis.connect_timeout_ms
                                                                  : 2000);
    q->rc = q->cfg.redis.unix_path[0]
                ? redisConnectUnixWithTimeout(q->cfg.redis.unix_path, tv)
                : redisConnectWithTimeout(q->cfg.redis.host, q->cfg.redis.port, tv);
    if (!q->rc)
        return err_set(e, AQ_EAGAIN, "redis %s: connect: out of memory", q->where);
    if (q->rc->err)
        return err_set(e, AQ_EAGAIN, "redis %s: connect: %s", q->where, q->rc->errstr);
    if (!q->cfg.redis.unix_path[0])
        redisEnableKeepAlive(q->rc);
    set_timeout(q, 0);
    int rc = handshake(q, e);
    if (rc == 0)
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
    if (q->rc)
        redisFree(q->rc);
    free(q);
}

int queue_ensure(queue *q, aq_err *e)
{
    if (!q->broken && q->rc)
        return 0;
    return connect_now(q, e);
}

void queue_keyf(const queue *q, char *out, size_t n, const char *fmt, ...)
{
    int k = snprintf(out, n, "%s:", q->cfg.redis.ns);
    if (k < 0 || (size_t)k >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + k, n - (size_t)k, fmt, ap);
    va_end(ap);
}

/* ---- small shared helpers ---- */

static int events_max(const queue *q)
{
    return q->cfg.worker.events_max > 0 ? q->cfg.worker.events_max : 10000;
}

static int dead_max(const queue *q)
{
    return q->cfg.worker.dead_max > 0 ? q->cfg.worker.dead_max : 10000;
}

static int result_ttl(const queue *q)
{
    return q->cfg.worker.result_ttl_s > 0 ? q->cfg.worker.result_ttl_s : 604800;
}

static const char *qname_or_default(const queue *q, const char *qname)
{
    return qname && *qname ? qname : q->cfg.redis.queue;
}

static void ns_prefix(const queue *q, char *out, size_t n)
{
    snprintf(out, n, "%s:", q->cfg.redis.ns);
}

/* Job ids travel into key names: refuse anything a job document could not
 * carry as an id (the worker validates ids the same way). */
static int check_id(const char *id, bool allow_empty, aq_err *e)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0)
        return allow_empty ? 0 : err_set(e, AQ_EPERM, "job id is empty");
    if (n > 64 || id[0] == '.' || strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                             "0123456789._-") != n)
        return err_set(e, AQ_EPERM, "job id '%.80s' is not [A-Za-z0-9._-]{1,64}", id);
    return 0;
}

/* ------------------------------------------------------------------ */
/* producers */

static void enqueue_args(queue *q, qargs *a, char keys[4][QUEUE_KEY_MAX], const char *qname,
                         const char *id, const char *doc, size_t len, int64_t created_at)
{
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "queue:%s", qname);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "job:%s", id);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "events");
    arg_script(a, q, S_ENQUEUE, 4);
    for (int i = 0; i < 4; i++)
        arg_s(a, keys[i]);
    arg_b(a, doc, len);
    arg_s(a, id);
    arg_s(a, qname);
    arg_i(a, created_at > 0 ? created_at : now_ms());
    arg_i(a, events_max(q));
}

int queue_enqueue(queue *q, const char *qname, const char *id, const char *doc, size_t len,
                  int64_t created_at, aq_err *e)
{
    const char *qn = qname_or_default(q, qname);
    int rc = check_id(id, true, e);
    if (rc < 0)
        return rc;
    qargs a;
    char keys[4][QUEUE_KEY_MAX];
    enqueue_args(q, &a, keys, qn, id ? id : "", doc, len, created_at);
    return q_script_int(q, S_ENQUEUE, &a, "enqueue", NULL, e);
}

int queue_enqueue_many(queue *q, const char *qname, const queue_item *items, size_t n,
                       aq_err *e)
{
    const char *qn = qname_or_default(q, qname);
    for (size_t i = 0; i < n; i++) {
        int rc = check_id(items[i].id, true, e);
        if (rc < 0)
            return err_prefix(e, "item %zu: ", i);
    }
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    qargs a;
    char keys[4][QUEUE_KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        const queue_item *it = &items[i];
        enqueue_args(q, &a, keys, qn, it->id ? it->id : "", it->doc, it->len, it->created_at);
        if ((rc = q_append(q, &a, "enqueue", e)) < 0)
            return rc;
    }
    /* Read every reply; items refused with NOSCRIPT (scripts flushed under
     * us) are sent again one by one with EVAL. */
    bool *again = calloc(n ? n : 1, sizeof *again);
    if (!again)
        return err_set(e, AQ_EAGAIN, "enqueue: out of memory");
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r;
        if ((rc = q_read(q, "enqueue", &r, e)) < 0) {
            free(again);
            return rc;
        }
        if (is_noscript(r))
            again[i] = true;
        else if (r->type == REDIS_REPLY_ERROR && first == 0)
            first = reply_error(q, r, "enqueue", e);
        freeReplyObject(r);
    }
    for (size_t i = 0; i < n && first == 0; i++) {
        if (!again[i])
            continue;
        const queue_item *it = &items[i];
        enqueue_args(q, &a, keys, qn, it->id ? it->id : "", it->doc, it->len, it->created_at);
        first = q_script_int(q, S_ENQUEUE, &a, "enqueue", NULL, e);
    }
    free(again);
    return first;
}

/* ---- the job hash ---- */

enum { F_STR, F_INT, F_LONG, F_I64, F_DUP };
/* One hash field and where it goes in a struct (size for F_STR arrays). */
typedef struct field_spec {
    const char *name;
    int type;
    size_t off, size;
} field_spec;

static const field_spec job_fields[] = {
    {"state", F_STR, offsetof(queue_job, state), sizeof ((queue_job *)0)->state},
    {"queue", F_STR, offsetof(queue_job, queue), sizeof ((queue_job *)0)->queue},
    {"worker", F_STR, offsetof(queue_job, worker), sizeof ((queue_job *)0)->worker},
    {"error", F_STR, offsetof(queue_job, error), sizeof ((queue_job *)0)->error},
    {"attempts", F_INT, offsetof(queue_job, attempts), 0},
    {"created_at", F_I64, offsetof(queue_job, created_at), 0},
    {"started_at", F_I64, offsetof(queue_job, started_at), 0},
    {"finished_at", F_I64, offsetof(queue_job, finished_at), 0},
    {"duration_ms", F_I64, offsetof(queue_job, duration_ms), 0},
    {"outputs", F_DUP, offsetof(queue_job, outputs), 0},
};

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
static void store_fields(void *base, const field_spec *t, size_t n, const redisReply *hash)
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

int queue_job_get(queue *q, const char *id, queue_job *j, aq_err *e)
{
    memset(j, 0, sizeof *j);
    int rc = check_id(id, false, e);
    if (rc < 0)
        return rc;
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "job:%s", id);
    qargs a = {0};
    arg_s(&a, "HGETALL");
    arg_s(&a, key);
    redisReply *r;
    if ((rc = q_run(q, &a, "HGETALL job", &r, e)) < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        return err_set(e, AQ_ENOTFOUND, "job %s: not found", id);
    }
    store_fields(j, job_fields, sizeof job_fields / sizeof job_fields[0], r);
    freeReplyObject(r);
    return 0;
}

void queue_job_free(queue_job *j)
{
    if (!j)
        return;
    free(j->outputs);
    j->outputs = NULL;
}

/* ------------------------------------------------------------------ */
/* workers */

/* Copies a string reply into a malloc'd NUL-terminated doc; returns 1. */
static int take_reply(queue *q, redisReply *r, char **doc, size_t *len, aq_err *e)
{
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return err_set(e, AQ_EPERM, "redis %s: take: unexpected reply", q->where);
    }
    *doc = malloc(r->len + 1);
    if (!*doc) {
        freeReplyObject(r);
        return err_set(e, AQ_EAGAIN, "take: out of memory");
    }
    memcpy(*doc, r->str, r->len);
    (*doc)[r->len] = '\0';
    *len = r->len;
    freeReplyObject(r);
    return 1;
}

/* After a take whose reply was lost: the newest doc of the worker's
 * processing list, if any, is the one that take moved (a worker takes
 * while it holds nothing). Returns 1 with it, 0 when there is none. */
static int take_in_doubt(queue *q, const char *dst, char **doc, size_t *len, aq_err *e)
{
    qargs a = {0};
    arg_s(&a, "LINDEX");
    arg_s(&a, dst);
    arg_s(&a, "0");
    redisReply *r;
    int rc = q_run(q, &a, "take", &r, e);
    if (rc < 0)
        return rc;
    q->take_doubt[0] = '\0';
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return 0;
    }
    return take_reply(q, r, doc, len, e);
}

int queue_take(queue *q, const char *worker, int timeout_ms, char **doc, size_t *len, aq_err *e)
{
    *doc = NULL;
    *len = 0;
    char src[QUEUE_KEY_MAX], dst[QUEUE_KEY_MAX], secs[32];
    queue_keyf(q, src, sizeof src, "queue:%s", q->cfg.redis.queue);
    queue_keyf(q, dst, sizeof dst, "processing:%s", worker);
    qargs a = {0};
    /* BLMOVE with timeout 0 would block for ever: 0 means "do not wait". */
    if (timeout_ms > 0) {
        snprintf(secs, sizeof secs, "%d.%03d", timeout_ms / 1000, timeout_ms % 1000);
        arg_s(&a, "BLMOVE");
    } else {
        arg_s(&a, "LMOVE");
    }
    arg_s(&a, src);
    arg_s(&a, dst);
    arg_s(&a, "RIGHT");
    arg_s(&a, "LEFT");
    if (timeout_ms > 0)
        arg_s(&a, secs);
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    if (strcmp(q->take_doubt, worker) == 0 && (rc = take_in_doubt(q, dst, doc, len, e)) != 0)
        return rc;
    set_timeout(q, timeout_ms > 0 ? timeout_ms : 0);
    redisReply *r;
    rc = q_run(q, &a, "take", &r, e);
    set_timeout(q, 0);
    if (rc < 0) {
        if (q->broken) /* sent, perhaps done, reply lost */
            snprintf(q->take_doubt, sizeof q->take_doubt, "%s", worker);
        return rc;
    }
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return 0;
    }
    return take_reply(q, r, doc, len, e);
}

int queue_start(queue *q, const char *worker, const char *id, int64_t created_at, int *attempts,
                aq_err *e)
{
    int rc = check_id(id, true, e);
    if (rc < 0)
        return rc;
    char keys[3][QUEUE_KEY_MAX];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "job:%s", id ? id : "");
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "events");
    qargs a;
    arg_script(&a, q, S_START, 3);
    for (int i = 0; i < 3; i++)
        arg_s(&a, keys[i]);
    arg_s(&a, worker);
    arg_s(&a, id ? id : "");
    arg_s(&a, q->cfg.redis.queue);
    arg_i(&a, now_ms());
    arg_i(&a, created_at);
    arg_i(&a, events_max(q));
    long long n = 0;
    rc = q_script_int(q, S_START, &a, "start", &n, e);
    if (rc == 0 && attempts)
        *attempts = (int)n;
    return rc;
}

/* KEYS shared by ack and fail: processing, job, stats, events, queue. */
static void claim_keys(queue *q, char keys[][QUEUE_KEY_MAX], const char *worker, const char *id)
{
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "processing:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "job:%s", id);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "events");
    queue_keyf(q, keys[4], QUEUE_KEY_MAX, "queue:%s", q->cfg.redis.queue);
}

int queue_ack(queue *q, const char *worker, const char *doc, size_t len, const char *id,
              const char *outputs_json, int64_t duration_ms, bool *stale, aq_err *e)
{
    if (stale)
        *stale = false;
    int rc = check_id(id, true, e);
    if (rc < 0)
        return rc;
    char keys[5][QUEUE_KEY_MAX];
    claim_keys(q, keys, worker, id ? id : "");
    qargs a;
    arg_script(&a, q, S_ACK, 5);
    for (int i = 0; i < 5; i++)
        arg_s(&a, keys[i]);
    arg_b(&a, doc, len);
    arg_s(&a, id ? id : "");
    arg_s(&a, worker);
    arg_i(&a, now_ms());
    arg_i(&a, duration_ms);
    arg_s(&a, outputs_json ? outputs_json : "");
    arg_i(&a, result_ttl(q));
    arg_i(&a, events_max(q));
    long long done = 0;
    rc = q_script_int(q, S_ACK, &a, "ack", &done, e);
    if (rc == 0 && stale)
        *stale = done == 0;
    return rc;
}

int queue_fail(queue *q, const char *worker, const char *doc, size_t len, const char *id,
               const char *error, const char *retry_doc, int64_t due_ms, const char *dead_doc,
               bool *stale, aq_err *e)
{
    if (stale)
        *stale = false;
    int rc = check_id(id, true, e);
    if (rc < 0)
        return rc;
    if (!retry_doc && !dead_doc)
        return err_set(e, AQ_EPERM, "fail: neither retry_doc nor dead_doc given");
    char keys[7][QUEUE_KEY_MAX];
    claim_keys(q, keys, worker, id ? id : "");
    queue_keyf(q, keys[5], QUEUE_KEY_MAX, "delayed");
    queue_keyf(q, keys[6], QUEUE_KEY_MAX, "dead");
    qargs a;
    arg_script(&a, q, S_FAIL, 7);
    for (int i = 0; i < 7; i++)
        arg_s(&a, keys[i]);
    arg_b(&a, doc, len);
    arg_s(&a, id ? id : "");
    arg_s(&a, worker);
    arg_i(&a, now_ms());
    arg_s(&a, error ? error : "");
    arg_s(&a, retry_doc ? "retry" : "dead");
    arg_s(&a, retry_doc);
    arg_i(&a, due_ms);
    arg_s(&a, dead_doc);
    arg_i(&a, result_ttl(q));
    arg_i(&a, events_max(q));
    arg_i(&a, dead_max(q));
    long long done = 0;
    rc = q_script_int(q, S_FAIL, &a, "fail", &done, e);
    if (rc == 0 && stale)
        *stale = done == 0;
    return rc;
}

/* ------------------------------------------------------------------ */
/* heartbeats */

int queue_heartbeat(queue *q, const queue_beat *beats, size_t n, aq_err *e)
{
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    char key[QUEUE_KEY_MAX], set[QUEUE_KEY_MAX];
    queue_keyf(q, set, sizeof set, "workers");
    int64_t now = now_ms();
    qargs a;
    for (size_t i = 0; i < n; i++) {
        const queue_beat *b = &beats[i];
        queue_keyf(q, key, sizeof key, "worker:%s", b->worker);
        a.n = 0;
        arg_s(&a, "HSET");
        arg_s(&a, key);
        arg_s(&a, "host");
        arg_s(&a, b->host);
        arg_s(&a, "pid");
        arg_i(&a, b->pid);
        arg_s(&a, "queue");
        arg_s(&a, q->cfg.redis.queue);
        arg_s(&a, "started_at");
        arg_i(&a, b->started_at);
        arg_s(&a, "beat_at");
        arg_i(&a, now);
        arg_s(&a, "state");
        arg_s(&a, b->state ? b->state : "idle");
        arg_s(&a, "job");
        arg_s(&a, b->job);
        arg_s(&a, "done");
        arg_i(&a, b->done);
        arg_s(&a, "failed");
        arg_i(&a, b->failed);
        arg_s(&a, "rss_kb");
        arg_i(&a, b->rss_kb);
        if ((rc = q_append(q, &a, "heartbeat", e)) < 0)
            return rc;
        a.n = 0;
        arg_s(&a, "EXPIRE");
        arg_s(&a, key);
        arg_i(&a, q->cfg.worker.heartbeat_ttl_s > 0 ? q->cfg.worker.heartbeat_ttl_s : 10);
        if ((rc = q_append(q, &a, "heartbeat", e)) < 0)
            return rc;
        a.n = 0;
        arg_s(&a, "SADD");
        arg_s(&a, set);
        arg_s(&a, b->worker);
        if ((rc = q_append(q, &a, "heartbeat", e)) < 0)
            return rc;
    }
    return q_read_all(q, 3 * n, "heartbeat", e);
}

int queue_worker_gone(queue *q, const char *worker, aq_err *e)
{
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    char key[QUEUE_KEY_MAX], set[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "worker:%s", worker);
    queue_keyf(q, set, sizeof set, "workers");
    qargs a = {0};
    arg_s(&a, "DEL");
    arg_s(&a, key);
    if ((rc = q_append(q, &a, "worker gone", e)) < 0)
        return rc;
    a.n = 0;
    arg_s(&a, "SREM");
    arg_s(&a, set);
    arg_s(&a, worker);
    if ((rc = q_append(q, &a, "worker gone", e)) < 0)
        return rc;
    return q_read_all(q, 2, "worker gone", e);
}

/* ------------------------------------------------------------------ */
/* supervisor duties */

int queue_promote_due(queue *q, int64_t now, int limit, int *moved, aq_err *e)
{
    if (moved)
        *moved = 0;
    char keys[3][QUEUE_KEY_MAX], ns[80];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "delayed");
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "queue:%s", q->cfg.redis.queue);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "events");
    ns_prefix(q, ns, sizeof ns);
    qargs a;
    arg_script(&a, q, S_PROMOTE, 3);
    for (int i = 0; i < 3; i++)
        arg_s(&a, keys[i]);
    arg_i(&a, now);
    arg_i(&a, limit > 0 ? limit : 100);
    arg_s(&a, ns);
    arg_i(&a, events_max(q));
    long long n = 0;
    int rc = q_script_int(q, S_PROMOTE, &a, "promote", &n, e);
    if (rc == 0 && moved)
        *moved = (int)n;
    return rc;
}

/* ---- dead documents ---- */

/* A string jansson accepts: the bytes themselves when they are UTF-8, else a
 * copy with every non-ASCII byte replaced by '?' (a dead letter must stay
 * readable JSON even for a document of garbage). */
static json_t *json_string_lossy(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

char *queue_dead_doc(const char *doc, size_t len, const char *error, int64_t failed_at,
                     int attempts)
{
    /* A document over the protocol's 64 KiB is never kept whole, object or not. */
    json_t *o = len <= QUEUE_DEAD_DOC_MAX ? json_loadb(doc, len, JSON_ALLOW_NUL, NULL) : NULL;
    if (!o || !json_is_object(o)) {
        json_decref(o);
        o = json_object();
        if (!o)
            return NULL;
        /* Only the head of a huge non-object document is kept, so a flood
         * of garbage cannot grow NS:dead without bound; raw_bytes tells the
         * whole size. */
        size_t keep = len < QUEUE_DEAD_RAW_MAX ? len : QUEUE_DEAD_RAW_MAX;
        json_object_set_new(o, "raw", json_string_lossy(doc, keep));
        if (len > keep)
            json_object_set_new(o, "raw_bytes", json_integer((json_int_t)len));
    }
    json_object_set_new(o, "error", json_string_lossy(error ? error : "", error ? strlen(error) : 0));
    json_object_set_new(o, "failed_at", json_integer(failed_at));
    json_object_set_new(o, "attempts", json_integer(attempts));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(o);
    return s;
}

/* A malloc'd copy of n bytes (plus a NUL), its length in *outlen. */
static char *copy_bytes(const char *p, size_t n, size_t *outlen)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    *outlen = n;
    return s;
}

/* The keys a wrapper of a non-object document may have ("raw_bytes": the
 * worker's note that it kept only the head of a huge document). */
static const char *const wrapper_keys[] = {"raw", "error", "failed_at", "attempts", "raw_bytes"};

static bool is_wrapper(json_t *o, const json_t *raw)
{
    if (!json_is_string(raw))
        return false;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof wrapper_keys / sizeof wrapper_keys[0]; i++)
            known |= strcmp(key, wrapper_keys[i]) == 0;
        if (!known)
            return false;
    }
    return true;
}

char *queue_dead_unwrap(const char *dead, size_t len, size_t *outlen, char id[65])
{
    id[0] = '\0';
    json_t *o = json_loadb(dead, len, JSON_ALLOW_NUL, NULL);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return copy_bytes(dead, len, outlen); /* not one of ours: as it is */
    }
    json_t *raw = json_object_get(o, "raw");
    json_t *vid = json_object_get(o, "id");
    if (json_is_string(vid) && check_id(json_string_value(vid), false, NULL) == 0)
        snprintf(id, 65, "%s", json_string_value(vid));
    char *s;
    if (is_wrapper(o, raw)) {
        s = copy_bytes(json_string_value(raw), json_string_length(raw), outlen);
    } else {
        json_object_del(o, "error");
        json_object_del(o, "failed_at");
        json_object_del(o, "attempts");
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            *outlen = strlen(s); /* jansson escapes any NUL as \u0000 */
    }
    json_decref(o);
    return s;
}

/* Reads the attempts of each job in one pipeline, for the dead documents
 * requeue may have to build. */
static int read_attempts(queue *q, char (*ids)[65], size_t n, int *attempts, aq_err *e)
{
    char key[QUEUE_KEY_MAX];
    qargs a;
    int rc;
    for (size_t i = 0; i < n; i++) {
        queue_keyf(q, key, sizeof key, "job:%s", ids[i]);
        a.n = 0;
        arg_s(&a, "HGET");
        arg_s(&a, key);
        arg_s(&a, "attempts");
        if ((rc = q_append(q, &a, "requeue", e)) < 0)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *r;
        if ((rc = q_read(q, "requeue", &r, e)) < 0)
            return rc;
        attempts[i] = r->type == REDIS_REPLY_STRING ? atoi(r->str) : 0;
        freeReplyObject(r);
    }
    return 0;
}

typedef struct requeue_doc {
    const char *doc;
    size_t len;
    char id[65];
    int max_attempts;
    char why[256];   /* ident's refusal, "" when it accepted the doc */
    int attempts;
} requeue_doc;

/* One script for one document: LREM, then back to its queue or dead. */
static int requeue_one(queue *q, const char *worker, requeue_doc *d, int *recovered, int *dead,
                       aq_err *e)
{
    int max = d->max_attempts > 0 ? d->max_attempts
                                  : (q->cfg.worker.max_attempts > 0 ? q->cfg.worker.max_attempts : 5);
    char err[300];
    if (d->why[0])
        snprintf(err, sizeof err, "%s", d->why);
    else
        snprintf(err, sizeof err, "worker died %d times while running it", d->attempts);
    char *dead_doc = queue_dead_doc(d->doc, d->len, err, now_ms(), d->attempts);
    if (!dead_doc)
        return err_set(e, AQ_EAGAIN, "requeue: out of memory");
    char keys[6][QUEUE_KEY_MAX], ns[80];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "processing:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "job:%s", d->id);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "queue:%s", q->cfg.redis.queue);
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "dead");
    queue_keyf(q, keys[4], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, keys[5], QUEUE_KEY_MAX, "events");
    ns_prefix(q, ns, sizeof ns);
    qargs a;
    arg_script(&a, q, S_REQUEUE, 6);
    for (int i = 0; i < 6; i++)
        arg_s(&a, keys[i]);
    arg_b(&a, d->doc, d->len);
    arg_s(&a, d->id);
    arg_i(&a, max);
    arg_s(&a, dead_doc);
    arg_s(&a, ns);
    arg_s(&a, worker);
    arg_i(&a, now_ms());
    arg_i(&a, result_ttl(q));
    arg_i(&a, events_max(q));
    arg_i(&a, dead_max(q));
    arg_s(&a, d->why);
    long long res = 0;
    int rc = q_script_int(q, S_REQUEUE, &a, "requeue", &res, e);
    free(dead_doc);
    if (rc == 0 && res == 1)
        (*recovered)++;
    if (rc == 0 && res == 2)
        (*dead)++;
    return rc;
}

int queue_requeue_worker(queue *q, const char *worker, queue_ident_fn ident, int *recovered,
                         int *dead, aq_err *e)
{
    int rec = 0, dd = 0;
    if (recovered)
        *recovered = 0;
    if (dead)
        *dead = 0;
    if (!ident)
        return err_set(e, AQ_EPERM, "requeue: no ident function given");
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "processing:%s", worker);
    qargs a = {0};
    arg_s(&a, "LRANGE");
    arg_s(&a, key);
    arg_s(&a, "0");
    arg_s(&a, "-1");
    redisReply *r;
    int rc = q_run(q, &a, "requeue", &r, e);
    if (rc < 0)
        return rc;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    requeue_doc *docs = calloc(n ? n : 1, sizeof *docs);
    char(*ids)[65] = calloc(n ? n : 1, sizeof *ids);
    int *attempts = calloc(n ? n : 1, sizeof *attempts);
    if (!docs || !ids || !attempts) {
        rc = err_set(e, AQ_EAGAIN, "requeue: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        requeue_doc *d = &docs[i];
        d->doc = r->element[i]->str;
        d->len = r->element[i]->len;
        if (ident(d->doc, d->len, d->id, &d->max_attempts, d->why, sizeof d->why) != 0) {
            if (!d->why[0])
                snprintf(d->why, sizeof d->why, "unreadable job document");
            d->id[0] = '\0';
        } else {
            d->why[0] = '\0';
            if (check_id(d->id, true, NULL) < 0)
                d->id[0] = '\0';
        }
        memcpy(ids[i], d->id, 65);
    }
    if (n && (rc = read_attempts(q, ids, n, attempts, e)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        docs[i].attempts = attempts[i];
        if ((rc = requeue_one(q, worker, &docs[i], &rec, &dd, e)) < 0)
            goto out;
    }
out:
    free(docs);
    free(ids);
    free(attempts);
    freeReplyObject(r);
    if (recovered)
        *recovered = rec;
    if (dead)
        *dead = dd;
    return rc;
}

/* ---- the recovery lock ---- */

static int lock_take(queue *q, char token[65], bool *got, aq_err *e)
{
    *got = false;
    uint8_t rnd[32];
    int64_t seedv[3] = {now_ms(), mono_ms(), (int64_t)getpid()};
    hash_sha256(seedv, sizeof seedv, rnd);
    hash_hex(rnd, 16, token);
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "lock:recovery");
    qargs a = {0};
    arg_s(&a, "SET");
    arg_s(&a, key);
    arg_s(&a, token);
    arg_s(&a, "NX");
    arg_s(&a, "PX");
    int64_t ttl = (int64_t)q->cfg.worker.heartbeat_ttl_s * 1000;
    arg_i(&a, ttl > QUEUE_LOCK_MIN_MS ? ttl : QUEUE_LOCK_MIN_MS);
    redisReply *r;
    int rc = q_run(q, &a, "recovery lock", &r, e);
    if (rc < 0)
        return rc;
    *got = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return 0;
}

static void lock_release(queue *q, const char *token)
{
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "lock:recovery");
    qargs a;
    arg_script(&a, q, S_UNLOCK, 1);
    arg_s(&a, key);
    arg_s(&a, token);
    /* Failing to release only delays the next recovery by the lock's TTL. */
    queue_ensure(q, NULL);
    q_script_int(q, S_UNLOCK, &a, "recovery unlock", NULL, NULL);
}

/* SMEMBERS NS:workers, then `cmd NS:worker:<id>` pipelined for each member.
 * *members receives the SMEMBERS reply (free it) and *n its size; the caller
 * then reads exactly *n replies with q_read, in member order. */
static int worker_keys_pipeline(queue *q, const char *cmd, const char *what,
                                redisReply **members, size_t *n, aq_err *e)
{
    char set[QUEUE_KEY_MAX], key[QUEUE_KEY_MAX];
    queue_keyf(q, set, sizeof set, "workers");
    qargs a = {0};
    arg_s(&a, "SMEMBERS");
    arg_s(&a, set);
    int rc = q_run(q, &a, what, members, e);
    if (rc < 0)
        return rc;
    redisReply *m = *members;
    *n = m->type == REDIS_REPLY_ARRAY ? m->elements : 0;
    for (size_t i = 0; i < *n && rc == 0; i++) {
        queue_keyf(q, key, sizeof key, "worker:%s", m->element[i]->str);
        a.n = 0;
        arg_s(&a, cmd);
        arg_s(&a, key);
        rc = q_append(q, &a, what, e);
    }
    return rc;
}

/* Members of NS:workers whose heartbeat key is gone, as one malloc'd array
 * of malloc'd strings. */
static int silent_workers(queue *q, char ***out, size_t *n, aq_err *e)
{
    *out = NULL;
    *n = 0;
    redisReply *m;
    size_t count = 0;
    int rc = worker_keys_pipeline(q, "EXISTS", "recovery", &m, &count, e);
    if (rc < 0 && !m)
        return rc;
    char **list = calloc(count ? count : 1, sizeof *list);
    if (!list && rc == 0)
        rc = err_set(e, AQ_EAGAIN, "recovery: out of memory");
    for (size_t i = 0; i < count && rc == 0; i++) {
        redisReply *r;
        if ((rc = q_read(q, "recovery", &r, e)) < 0)
            break;
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
            list[(*n)++] = strdup(m->element[i]->str);
        freeReplyObject(r);
    }
    freeReplyObject(m);
    if (rc < 0) {
        for (size_t i = 0; list && i < *n; i++)
            free(list[i]);
        free(list);
        *n = 0;
        return rc;
    }
    *out = list;
    return 0;
}

static int forget_worker(queue *q, const char *worker, aq_err *e)
{
    char keys[3][QUEUE_KEY_MAX];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "worker:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "processing:%s", worker);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "workers");
    qargs a;
    arg_script(&a, q, S_FORGET, 3);
    for (int i = 0; i < 3; i++)
        arg_s(&a, keys[i]);
    arg_s(&a, worker);
    return q_script_int(q, S_FORGET, &a, "forget worker", NULL, e);
}

int queue_recover_dead(queue *q, queue_ident_fn ident, int *recovered, int *dead, aq_err *e)
{
    if (recovered)
        *recovered = 0;
    if (dead)
        *dead = 0;
    char token[65];
    bool got;
    int rc = lock_take(q, token, &got, e);
    if (rc < 0 || !got)
        return rc;
    char **silent;
    size_t n;
    rc = silent_workers(q, &silent, &n, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int r1 = 0, d1 = 0;
        rc = queue_requeue_worker(q, silent[i], ident, &r1, &d1, e);
        if (recovered)
            *recovered += r1;
        if (dead)
            *dead += d1;
        if (rc == 0)
            rc = forget_worker(q, silent[i], e);
    }
    if (rc == 0 || !q->broken)
        lock_release(q, token);
    for (size_t i = 0; i < n; i++)
        free(silent[i]);
    free(silent);
    return rc;
}

/* ------------------------------------------------------------------ */
/* operators */

static int64_t reply_int(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static const struct {
    const char *name;
    size_t off;
} stat_fields[] = {
    {"enqueued", offsetof(queue_stats, enqueued)}, {"started", offsetof(queue_stats, started)},
    {"done", offsetof(queue_stats, done)},         {"failed", offsetof(queue_stats, failed)},
    {"retried", offsetof(queue_stats, retried)},   {"dead", offsetof(queue_stats, dead_total)},
    {"recovered", offsetof(queue_stats, recovered)},
};

int queue_stats_get(queue *q, queue_stats *s, aq_err *e)
{
    memset(s, 0, sizeof *s);
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    char k[5][QUEUE_KEY_MAX];
    queue_keyf(q, k[0], QUEUE_KEY_MAX, "queue:%s", q->cfg.redis.queue);
    queue_keyf(q, k[1], QUEUE_KEY_MAX, "delayed");
    queue_keyf(q, k[2], QUEUE_KEY_MAX, "dead");
    queue_keyf(q, k[3], QUEUE_KEY_MAX, "stats");
    queue_keyf(q, k[4], QUEUE_KEY_MAX, "workers");
    static const char *const cmds[5] = {"LLEN", "ZCARD", "LLEN", "HGETALL", "SMEMBERS"};
    qargs a;
    for (int i = 0; i < 5; i++) {
        a.n = 0;
        arg_s(&a, cmds[i]);
        arg_s(&a, k[i]);
        if ((rc = q_append(q, &a, "stats", e)) < 0)
            return rc;
    }
    redisReply *r[5] = {0};
    for (int i = 0; i < 5 && rc == 0; i++) {
        rc = q_read(q, "stats", &r[i], e);
        if (rc == 0 && r[i]->type == REDIS_REPLY_ERROR)
            rc = reply_error(q, r[i], "stats", e);
    }
    if (rc == 0) {
        s->queued = reply_int(r[0]);
        s->delayed = reply_int(r[1]);
        s->dead = reply_int(r[2]);
        for (size_t i = 0; i + 1 < r[3]->elements; i += 2)
            for (size_t f = 0; f < sizeof stat_fields / sizeof stat_fields[0]; f++)
                if (strcmp(r[3]->element[i]->str, stat_fields[f].name) == 0)
                    *(int64_t *)((char *)s + stat_fields[f].off) = reply_int(r[3]->element[i + 1]);
        /* processing: every registered worker's list, one more pipeline */
        size_t nw = r[4]->type == REDIS_REPLY_ARRAY ? r[4]->elements : 0;
        for (size_t i = 0; i < nw && rc == 0; i++) {
            char key[QUEUE_KEY_MAX];
            queue_keyf(q, key, sizeof key, "processing:%s", r[4]->element[i]->str);
            a.n = 0;
            arg_s(&a, "LLEN");
            arg_s(&a, key);
            rc = q_append(q, &a, "stats", e);
        }
        for (size_t i = 0; i < nw && rc == 0; i++) {
            redisReply *x;
            if ((rc = q_read(q, "stats", &x, e)) == 0) {
                s->processing += reply_int(x);
                freeReplyObject(x);
            }
        }
    }
    for (int i = 0; i < 5; i++)
        if (r[i])
            freeReplyObject(r[i]);
    return rc;
}

static const field_spec worker_fields[] = {
    {"host", F_STR, offsetof(queue_worker_info, host), sizeof ((queue_worker_info *)0)->host},
    {"pid", F_LONG, offsetof(queue_worker_info, pid), 0},
    {"state", F_STR, offsetof(queue_worker_info, state), sizeof ((queue_worker_info *)0)->state},
    {"job", F_STR, offsetof(queue_worker_info, job), sizeof ((queue_worker_info *)0)->job},
    {"queue", F_STR, offsetof(queue_worker_info, queue), sizeof ((queue_worker_info *)0)->queue},
    {"started_at", F_I64, offsetof(queue_worker_info, started_at), 0},
    {"beat_at", F_I64, offsetof(queue_worker_info, beat_at), 0},
    {"done", F_I64, offsetof(queue_worker_info, done), 0},
    {"failed", F_I64, offsetof(queue_worker_info, failed), 0},
    {"rss_kb", F_I64, offsetof(queue_worker_info, rss_kb), 0},
};

/* A dead worker has no hash left: host and pid come from its id HOST:PID. */
static void worker_from_id(queue_worker_info *w, const char *id)
{
    snprintf(w->id, sizeof w->id, "%s", id);
    const char *colon = strrchr(id, ':');
    size_t hl = colon ? (size_t)(colon - id) : strlen(id);
    snprintf(w->host, sizeof w->host, "%.*s", (int)hl, id);
    w->pid = colon ? strtol(colon + 1, NULL, 10) : 0;
}

int queue_workers(queue *q, int (*fn)(const queue_worker_info *w, void *ud), void *ud, aq_err *e)
{
    redisReply *m;
    size_t n = 0;
    int rc = worker_keys_pipeline(q, "HGETALL", "workers", &m, &n, e);
    if (rc < 0 && !m)
        return rc;
    /* Read every reply even after fn stops us, so the pipeline stays in step. */
    int stop = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        redisReply *r;
        if ((rc = q_read(q, "workers", &r, e)) < 0)
            break;
        queue_worker_info w;
        memset(&w, 0, sizeof w);
        worker_from_id(&w, m->element[i]->str);
        w.alive = r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        if (w.alive)
            store_fields(&w, worker_fields, sizeof worker_fields / sizeof worker_fields[0], r);
        freeReplyObject(r);
        if (!stop && fn)
            stop = fn(&w, ud);
    }
    freeReplyObject(m);
    return rc;
}

int queue_dead_list(queue *q, long start, long stop, int (*fn)(const char *doc, void *ud),
                    void *ud, aq_err *e)
{
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "dead");
    qargs a = {0};
    arg_s(&a, "LRANGE");
    arg_s(&a, key);
    arg_i(&a, start);
    arg_i(&a, stop);
    redisReply *r;
    int rc = q_run(q, &a, "dead list", &r, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (fn && fn(r->element[i]->str, ud) != 0)
            break;
    freeReplyObject(r);
    return 0;
}

/* Sends one dead letter back to its queue (one script: LREM from NS:dead,
 * then LPUSH the original document and reset its job hash). */
static int dead_retry_one(queue *q, const redisReply *dead, const char *doc, size_t doclen,
                          const char *id, long long *moved, aq_err *e)
{
    char keys[4][QUEUE_KEY_MAX], ns[80];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "dead");
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "job:%s", id);
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "queue:%s", q->cfg.redis.queue);
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "events");
    ns_prefix(q, ns, sizeof ns);
    qargs a;
    arg_script(&a, q, S_DEAD_RETRY, 4);
    for (int i = 0; i < 4; i++)
        arg_s(&a, keys[i]);
    arg_b(&a, dead->str, dead->len);
    arg_b(&a, doc, doclen);
    arg_s(&a, id);
    arg_s(&a, ns);
    arg_s(&a, q->cfg.redis.queue);
    arg_i(&a, events_max(q));
    arg_i(&a, now_ms());
    return q_script_int(q, S_DEAD_RETRY, &a, "dead retry", moved, e);
}

int queue_dead_retry(queue *q, const char *id, bool all, int *n, aq_err *e)
{
    if (n)
        *n = 0;
    if (!all) {
        int rc = check_id(id, false, e);
        if (rc < 0)
            return rc;
    }
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "dead");
    /* Page through the list; every document moved shifts the rest left. */
    long start = 0;
    int rc = 0;
    for (;;) {
        qargs a = {0};
        arg_s(&a, "LRANGE");
        arg_s(&a, key);
        arg_i(&a, start);
        arg_i(&a, start + QUEUE_PAGE - 1);
        redisReply *r;
        if ((rc = q_run(q, &a, "dead retry", &r, e)) < 0)
            return rc;
        size_t got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        long moved_here = 0;
        for (size_t i = 0; i < got && rc == 0; i++) {
            char doc_id[65];
            size_t doclen = 0;
            char *doc = queue_dead_unwrap(r->element[i]->str, r->element[i]->len, &doclen, doc_id);
            if (!doc) {
                rc = err_set(e, AQ_EAGAIN, "dead retry: out of memory");
                break;
            }
            if (all || strcmp(doc_id, id) == 0) {
                long long moved = 0;
                rc = dead_retry_one(q, r->element[i], doc, doclen, doc_id, &moved, e);
                moved_here += moved;
                if (n)
                    *n += (int)moved;
            }
            free(doc);
        }
        freeReplyObject(r);
        if (rc < 0 || got < QUEUE_PAGE)
            return rc;
        start += (long)got - moved_here;
    }
}

int queue_dead_purge(queue *q, int *n, aq_err *e)
{
    if (n)
        *n = 0;
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "dead");
    /* MULTI/EXEC: the count is of exactly what was deleted. */
    static const char *const cmds[] = {"MULTI", "LLEN", "DEL", "EXEC"};
    qargs a;
    for (size_t i = 0; i < 4; i++) {
        a.n = 0;
        arg_s(&a, cmds[i]);
        if (i == 1 || i == 2)
            arg_s(&a, key);
        if ((rc = q_append(q, &a, "dead purge", e)) < 0)
            return rc;
    }
    redisReply *r = NULL;
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        if (r)
            freeReplyObject(r);
        if ((rc = q_read(q, "dead purge", &r, e)) < 0)
            return rc;
        if (r->type == REDIS_REPLY_ERROR)
            rc = reply_error(q, r, "dead purge", e);
    }
    if (rc == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && n)
        *n = (int)reply_int(r->element[0]);
    freeReplyObject(r);
    return rc;
}

/* ------------------------------------------------------------------ */
/* remote control */

int queue_control_post(queue *q, const char *target, const char *cmd, aq_err *e)
{
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "control");
    qargs a = {0};
    arg_s(&a, "XADD");
    arg_s(&a, key);
    arg_s(&a, "MAXLEN");
    arg_s(&a, "~");
    arg_s(&a, QUEUE_CONTROL_MAXLEN);
    arg_s(&a, "*");
    arg_s(&a, "target");
    arg_s(&a, target);
    arg_s(&a, "cmd");
    arg_s(&a, cmd);
    redisReply *r;
    int rc = q_run(q, &a, "control post", &r, e);
    if (rc == 0)
        freeReplyObject(r);
    return rc;
}

/* One stream entry [id, [field, value, ...]] into a queue_control. */
static void control_from_entry(const redisReply *ent, queue_control *c)
{
    memset(c, 0, sizeof *c);
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2)
        return;
    snprintf(c->id, sizeof c->id, "%s", ent->element[0]->str);
    const redisReply *f = ent->element[1];
    for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
        const char *k = f->element[j]->str, *v = f->element[j + 1]->str;
        if (strcmp(k, "target") == 0)
            snprintf(c->target, sizeof c->target, "%s", v);
        else if (strcmp(k, "cmd") == 0)
            snprintf(c->cmd, sizeof c->cmd, "%s", v);
    }
}

int queue_control_read(queue *q, char last_id[48], queue_control *out, size_t max, size_t *n,
                       aq_err *e)
{
    *n = 0;
    if (max == 0)
        return 0;
    char key[QUEUE_KEY_MAX], from[64];
    queue_keyf(q, key, sizeof key, "control");
    snprintf(from, sizeof from, "(%s", last_id[0] ? last_id : "0");
    qargs a = {0};
    arg_s(&a, "XRANGE");
    arg_s(&a, key);
    arg_s(&a, from);
    arg_s(&a, "+");
    arg_s(&a, "COUNT");
    arg_i(&a, (int64_t)max);
    redisReply *r;
    int rc = q_run(q, &a, "control read", &r, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && *n < max; i++) {
        control_from_entry(r->element[i], &out[*n]);
        snprintf(last_id, 48, "%s", out[*n].id);
        (*n)++;
    }
    freeReplyObject(r);
    return 0;
}

/* ---- events (for avatarq_wait) ---- */

int queue_events_last(queue *q, char last_id[48], aq_err *e)
{
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "events");
    qargs a = {0};
    arg_s(&a, "XREVRANGE");
    arg_s(&a, key);
    arg_s(&a, "+");
    arg_s(&a, "-");
    arg_s(&a, "COUNT");
    arg_s(&a, "1");
    redisReply *r;
    int rc = q_run(q, &a, "events", &r, e);
    if (rc < 0)
        return rc;
    snprintf(last_id, 48, "0-0");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1)
        snprintf(last_id, 48, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    return 0;
}

int queue_events_wait(queue *q, char last_id[48], int block_ms, const char *id, bool *seen,
                      aq_err *e)
{
    *seen = false;
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "events");
    qargs a = {0};
    arg_s(&a, "XREAD");
    arg_s(&a, "COUNT");
    arg_s(&a, "1000");
    arg_s(&a, "BLOCK");
    arg_i(&a, block_ms > 0 ? block_ms : 1);
    arg_s(&a, "STREAMS");
    arg_s(&a, key);
    arg_s(&a, last_id);
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    set_timeout(q, block_ms > 0 ? block_ms : 1);
    redisReply *r;
    rc = q_run(q, &a, "events", &r, e);
    set_timeout(q, 0);
    if (rc < 0)
        return rc;
    /* [[key, [[entry-id, [f, v, ...]], ...]]] or nil on timeout */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements == 2) {
        const redisReply *ents = r->element[0]->element[1];
        for (size_t i = 0; ents->type == REDIS_REPLY_ARRAY && i < ents->elements; i++) {
            const redisReply *ent = ents->element[i];
            if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2)
                continue;
            snprintf(last_id, 48, "%s", ent->element[0]->str);
            const redisReply *f = ent->element[1];
            for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
                if (strcmp(f->element[j]->str, "id") == 0 && strcmp(f->element[j + 1]->str, id) == 0)
                    *seen = true;
        }
    }
    freeReplyObject(r);
    return 0;
}

/* ---- server facts ---- */

/* "maxmemory_policy:noeviction" from INFO memory, for servers where CONFIG
 * is renamed or forbidden (managed Redis). */
static int policy_from_info(queue *q, char *out, size_t n, aq_err *e)
{
    qargs a = {0};
    arg_s(&a, "INFO");
    arg_s(&a, "memory");
    redisReply *r;
    int rc = q_run(q, &a, "INFO memory", &r, e);
    if (rc < 0)
        return rc;
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "maxmemory_policy:") : NULL;
    if (!p) {
        freeReplyObject(r);
        return err_set(e, AQ_ENOTFOUND, "redis %s: INFO memory has no maxmemory_policy", q->where);
    }
    p += strlen("maxmemory_policy:");
    size_t len = strcspn(p, "\r\n");
    snprintf(out, n, "%.*s", (int)len, p);
    freeReplyObject(r);
    return 0;
}

int queue_maxmemory_policy(queue *q, char *out, size_t n, aq_err *e)
{
    if (n)
        out[0] = '\0';
    qargs a = {0};
    arg_s(&a, "CONFIG");
    arg_s(&a, "GET");
    arg_s(&a, "maxmemory-policy");
    redisReply *r;
    int rc = q_run(q, &a, "CONFIG GET", &r, e);
    if (rc == AQ_EPERM) /* CONFIG renamed or not allowed */
        return policy_from_info(q, out, n, e);
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        snprintf(out, n, "%s", r->element[1]->str);
        freeReplyObject(r);
        return 0;
    }
    freeReplyObject(r);
    return policy_from_info(q, out, n, e);
}

/* ---- http views ---- */

/* A glob pattern matching prefix literally, then anything ("*"): SCAN MATCH
 * must not read a namespace's '[' or '*' as pattern syntax. */
static void glob_literal(const char *prefix, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = prefix; *p && o + 3 < n; p++) {
        if (strchr("*?[]\\", *p))
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o++] = '*';
    out[o] = '\0';
}

/* LLEN and LINDEX -1 of one queue key, one pipeline; fn gets the results. */
static int queue_view_one(queue *q, const char *key, size_t skip, queue_view_fn fn, void *ud,
                          aq_err *e)
{
    static const char *const cmds[2][3] = {{"LLEN", NULL, NULL}, {"LINDEX", NULL, "-1"}};
    qargs a;
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        a.n = 0;
        arg_s(&a, cmds[i][0]);
        arg_s(&a, key);
        if (cmds[i][2])
            arg_s(&a, cmds[i][2]);
        rc = q_append(q, &a, "queue view", e);
    }
    redisReply *r[2] = {NULL, NULL};
    for (int i = 0; i < 2 && rc == 0; i++)
        if ((rc = q_read(q, "queue view", &r[i], e)) == 0 && r[i]->type == REDIS_REPLY_ERROR)
            rc = reply_error(q, r[i], "queue view", e);
    int stop = 0;
    if (rc == 0) {
        bool has = r[1]->type == REDIS_REPLY_STRING;
        stop = fn(key + skip, reply_int(r[0]), has ? r[1]->str : NULL, has ? r[1]->len : 0, ud);
    }
    for (int i = 0; i < 2; i++)
        if (r[i])
            freeReplyObject(r[i]);
    return rc < 0 ? rc : stop;
}

int queue_view_queues(queue *q, queue_view_fn fn, void *ud, aq_err *e)
{
    char prefix[QUEUE_KEY_MAX], pattern[2 * QUEUE_KEY_MAX];
    queue_keyf(q, prefix, sizeof prefix, "queue:");
    glob_literal(prefix, pattern, sizeof pattern);
    char cursor[32] = "0";
    int rc = 0;
    do {
        qargs a = {0};
        arg_s(&a, "SCAN");
        arg_s(&a, cursor);
        arg_s(&a, "MATCH");
        arg_s(&a, pattern);
        arg_s(&a, "COUNT");
        arg_s(&a, "1000");
        redisReply *r;
        if ((rc = q_run(q, &a, "SCAN queues", &r, e)) < 0)
            return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            return err_set(e, AQ_EPERM, "redis %s: SCAN: unexpected reply", q->where);
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements && rc == 0; i++)
            rc = queue_view_one(q, keys->element[i]->str, strlen(prefix), fn, ud, e);
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    return rc < 0 ? rc : 0;
}

int queue_view_queue(queue *q, const char *name, queue_view_fn fn, void *ud, aq_err *e)
{
    char prefix[QUEUE_KEY_MAX], key[QUEUE_KEY_MAX];
    queue_keyf(q, prefix, sizeof prefix, "queue:");
    queue_keyf(q, key, sizeof key, "queue:%s", name);
    int rc = queue_view_one(q, key, strlen(prefix), fn, ud, e);
    return rc < 0 ? rc : 0;
}

int queue_view_hash(queue *q, const char *suffix,
                    int (*fn)(const char *field, const char *value, void *ud), void *ud, aq_err *e)
{
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "%s", suffix);
    qargs a = {0};
    arg_s(&a, "HGETALL");
    arg_s(&a, key);
    redisReply *r;
    int rc = q_run(q, &a, "HGETALL", &r, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING &&
            fn(r->element[i]->str, r->element[i + 1]->str, ud) != 0)
            break;
    freeReplyObject(r);
    return 0;
}

int queue_view_events(queue *q, int count,
                      int (*fn)(const char *id, const char *state, const char *worker,
                                const char *error, void *ud),
                      void *ud, aq_err *e)
{
    char key[QUEUE_KEY_MAX];
    queue_keyf(q, key, sizeof key, "events");
    qargs a = {0};
    arg_s(&a, "XREVRANGE");
    arg_s(&a, key);
    arg_s(&a, "+");
    arg_s(&a, "-");
    arg_s(&a, "COUNT");
    arg_i(&a, count);
    redisReply *r;
    int rc = q_run(q, &a, "XREVRANGE events", &r, e);
    if (rc < 0)
        return rc;
    static const char *const names[4] = {"id", "state", "worker", "error"};
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *ent = r->element[i];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2 || ent->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const char *v[4] = {"", "", "", ""};
        const redisReply *f = ent->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            for (int k = 0; k < 4; k++)
                if (f->element[j]->type == REDIS_REPLY_STRING && strcmp(f->element[j]->str, names[k]) == 0 &&
                    f->element[j + 1]->type == REDIS_REPLY_STRING)
                    v[k] = f->element[j + 1]->str;
        if (fn(v[0], v[1], v[2], v[3], ud) != 0)
            break;
    }
    freeReplyObject(r);
    return 0;
}
