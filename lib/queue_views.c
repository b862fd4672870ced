/* queue_views: what operators read: stats, dead letters, events, server
 * facts. */
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
#include "queue_int.h"
#include "retry.h"

/* ------------------------------------------------------------------ */
/* operators */

int64_t reply_int(const redisReply *r)
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
    {"cancelled", offsetof(queue_stats, cancelled)},
    {"callbacks_sent", offsetof(queue_stats, callbacks_sent)},
    {"callbacks_retried", offsetof(queue_stats, callbacks_retried)},
    {"callbacks_failed", offsetof(queue_stats, callbacks_failed)},
};

int queue_stats_get(queue *q, queue_stats *s, aq_err *e)
{
    memset(s, 0, sizeof *s);
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    char queued[QUEUE_KEY_MAX];
    snprintf(queued, sizeof queued, "queue:%s", q->cfg.redis.queue);
    static const char *const cmds[5] = {"LLEN", "ZCARD", "LLEN", "HGETALL", "SMEMBERS"};
    const char *const keys[5] = {queued, "delayed", "dead", "stats", "workers"};
    qargs a;
    for (int i = 0; i < 5; i++) {
        arg_cmd(&a, cmds[i]);
        arg_key(&a, q, "%s", keys[i]);
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
            arg_cmd(&a, "LLEN");
            arg_key(&a, q, "processing:%s", r[4]->element[i]->str);
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

int queue_dead_list(queue *q, long start, long stop, int (*fn)(const char *doc, void *ud),
                    void *ud, aq_err *e)
{
    qargs a;
    arg_cmd(&a, "LRANGE");
    arg_key(&a, q, "dead");
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
    qargs a;
    arg_script(&a, q, S_DEAD_RETRY, 4);
    arg_key(&a, q, "dead");
    arg_key(&a, q, "job:%s", id);
    arg_key(&a, q, "queue:%s", q->cfg.redis.queue);
    arg_key(&a, q, "events");
    arg_b(&a, dead->str, dead->len);
    arg_b(&a, doc, doclen);
    arg_s(&a, id);
    arg_ns(&a, q);
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
    /* Page through the list; every document moved shifts the rest left.
     * Bounded by the length it had: retried jobs that die again meanwhile
     * land at the head and are not met a second time. */
    qargs la;
    arg_cmd(&la, "LLEN");
    arg_key(&la, q, "dead");
    redisReply *lr;
    int rc = q_run(q, &la, "dead retry", &lr, e);
    if (rc < 0)
        return rc;
    long left = (long)reply_int(lr);
    freeReplyObject(lr);
    long start = 0;
    while (left > 0) {
        qargs a;
        arg_cmd(&a, "LRANGE");
        arg_key(&a, q, "dead");
        arg_i(&a, start);
        arg_i(&a, start + QUEUE_PAGE - 1);
        redisReply *r;
        if ((rc = q_run(q, &a, "dead retry", &r, e)) < 0)
            return rc;
        size_t got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        if ((long)got > left)
            got = (size_t)left;
        left -= (long)got;
        long moved_here = 0;
        for (size_t i = 0; i < got && rc == 0; i++) {
            char doc_id[65], *doc;
            size_t doclen = 0;
            aq_err ue = {0};
            int u = queue_dead_unwrap(r->element[i]->str, r->element[i]->len, &doc, &doclen,
                                      doc_id, &ue);
            if (u == AQ_EPERM)
                continue; /* only its head was kept: it stays a dead letter */
            if (u != 0) {
                rc = err_set(e, u, "dead retry: %s", ue.msg);
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
    return rc;
}

int queue_dead_purge(queue *q, int *n, aq_err *e)
{
    if (n)
        *n = 0;
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    /* MULTI/EXEC: the count is of exactly what was deleted. */
    static const char *const cmds[] = {"MULTI", "LLEN", "DEL", "EXEC"};
    qargs a;
    for (size_t i = 0; i < 4; i++) {
        arg_cmd(&a, cmds[i]);
        if (i == 1 || i == 2)
            arg_key(&a, q, "dead");
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

/* ---- events (for avatarq_wait) ---- */

/* The newest count entries of NS:events (XREVRANGE), into *r. */
static int events_newest(queue *q, int count, redisReply **r, aq_err *e)
{
    qargs a;
    arg_cmd(&a, "XREVRANGE");
    arg_key(&a, q, "events");
    arg_s(&a, "+");
    arg_s(&a, "-");
    arg_s(&a, "COUNT");
    arg_i(&a, count);
    return q_run(q, &a, "XREVRANGE events", r, e);
}

int queue_events_last(queue *q, char last_id[48], aq_err *e)
{
    redisReply *r;
    int rc = events_newest(q, 1, &r, e);
    if (rc < 0)
        return rc;
    snprintf(last_id, 48, "0-0");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1)
        snprintf(last_id, 48, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    return 0;
}

/* True when an event field names job id: `id` holds one id, `ids` (a batch
 * of the worker engine) several separated by spaces. */
static bool event_names(const char *field, const char *value, const char *id)
{
    if (strcmp(field, "id") == 0)
        return strcmp(value, id) == 0;
    if (strcmp(field, "ids") != 0)
        return false;
    size_t n = strlen(id);
    for (const char *p = value; (p = strstr(p, id)) != NULL; p += n)
        if ((p == value || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

int queue_events_wait(queue *q, char last_id[48], int block_ms, const char *id, bool *seen,
                      aq_err *e)
{
    *seen = false;
    qargs a;
    arg_cmd(&a, "XREAD");
    arg_s(&a, "COUNT");
    arg_s(&a, "1000");
    arg_s(&a, "BLOCK");
    arg_i(&a, block_ms > 0 ? block_ms : 1);
    arg_s(&a, "STREAMS");
    arg_key(&a, q, "events");
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
                if (event_names(f->element[j]->str, f->element[j + 1]->str, id))
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
    qargs a;
    arg_cmd(&a, "INFO");
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
    qargs a;
    arg_cmd(&a, "CONFIG");
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

/* ---- views for the HTTP service (avatarq-http) ---- */

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
        arg_cmd(&a, cmds[i][0]);
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
        qargs a;
        arg_cmd(&a, "SCAN");
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
    qargs a;
    arg_cmd(&a, "HGETALL");
    arg_key(&a, q, "%s", suffix);
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

/* Calls fn for each id of a batch entry's `ids` (space-separated), as if
 * each had its own entry; returns fn's first non-zero answer. */
static int each_id(const char *ids, const char *state, const char *worker, const char *error,
                   int (*fn)(const char *, const char *, const char *, const char *, void *),
                   void *ud)
{
    char id[JOB_ID_MAX + 1];
    for (const char *p = ids; *p;) {
        size_t n = strcspn(p, " ");
        if (n > 0 && n <= JOB_ID_MAX) {
            memcpy(id, p, n);
            id[n] = '\0';
            int stop = fn(id, state, worker, error, ud);
            if (stop)
                return stop;
        }
        p += n;
        p += *p == ' ';
    }
    return 0;
}

int queue_view_events(queue *q, int count,
                      int (*fn)(const char *id, const char *state, const char *worker,
                                const char *error, void *ud),
                      void *ud, aq_err *e)
{
    redisReply *r;
    int rc = events_newest(q, count, &r, e);
    if (rc < 0)
        return rc;
    static const char *const names[5] = {"id", "state", "worker", "error", "ids"};
    int stop = 0;
    for (size_t i = 0; !stop && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *ent = r->element[i];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2 || ent->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const char *v[5] = {"", "", "", "", NULL};
        const redisReply *f = ent->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            for (int k = 0; k < 5; k++)
                if (f->element[j]->type == REDIS_REPLY_STRING && strcmp(f->element[j]->str, names[k]) == 0 &&
                    f->element[j + 1]->type == REDIS_REPLY_STRING)
                    v[k] = f->element[j + 1]->str;
        stop = v[4] ? each_id(v[4], v[1], v[2], v[3], fn, ud) : fn(v[0], v[1], v[2], v[3], ud);
    }
    freeReplyObject(r);
    return 0;
}
