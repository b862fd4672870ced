/* queue_callbacks: the Redis side of completion callbacks (see queue.h). The
 * sender's take mirrors a worker's: the entry sits in a per-sender list
 * while it is POSTed, so a sender that dies loses nothing (its list is given
 * back by recovery) and a callback is delivered at least once. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_int.h"
#include "retry.h"

int queue_callback_take(queue *q, const char *worker, int timeout_ms, char **entry,
                        size_t *len, aq_err *e)
{
    *entry = NULL;
    *len = 0;
    if (timeout_ms < 1)
        timeout_ms = 1;
    qargs a;
    arg_cmd(&a, "BLMOVE");
    arg_key(&a, q, "callbacks");
    arg_key(&a, q, "callbacks:sending:%s", worker);
    arg_s(&a, "RIGHT");
    arg_s(&a, "LEFT");
    arg_secs(&a, timeout_ms);
    int rc = queue_ensure(q, e);
    if (rc < 0)
        return rc;
    set_timeout(q, timeout_ms);
    redisReply *r;
    rc = q_run(q, &a, "callback take", &r, e);
    set_timeout(q, 0);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return 0;
    }
    *entry = malloc(r->len + 1);
    if (*entry) {
        memcpy(*entry, r->str, r->len);
        (*entry)[r->len] = '\0';
        *len = r->len;
    }
    freeReplyObject(r);
    return *entry ? 1 : err_set(e, AQ_EAGAIN, "callback take: out of memory");
}

static const char *const CB_MODE[] = {
    [QUEUE_CB_SENT] = "sent", [QUEUE_CB_RETRY] = "retry", [QUEUE_CB_GAVE_UP] = "gave_up"};

int queue_callback_finish(queue *q, const char *worker, const queue_cb_done *done, size_t n,
                          aq_err *e)
{
    if (n == 0)
        return 0;
    char keys[4][QUEUE_KEY_MAX];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "callbacks:sending:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "callbacks:delayed");
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "callbacks:dead");
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "stats");
    qvec a = {0};
    if (qvec_grow(&a, 9 + 4 * (int)n) < 0) {
        qvec_free(&a);
        return err_set(e, AQ_EAGAIN, "callback finish: out of memory");
    }
    qvec_head(&a, keys, 4);
    qvec_i(&a, (int64_t)n);
    qvec_i(&a, dead_max(q));
    for (size_t i = 0; i < n; i++) {
        qvec_b(&a, done[i].entry, done[i].len);
        qvec_s(&a, CB_MODE[done[i].how]);
        qvec_s(&a, done[i].retry_entry ? done[i].retry_entry : "");
        qvec_i(&a, done[i].due_ms);
    }
    qvec_fix(&a);
    redisReply *r;
    int rc = q_script_argv(q, S_CB_FINISH, a.n, a.v, a.l, "callback finish", &r, e);
    if (rc == 0)
        freeReplyObject(r);
    qvec_free(&a);
    return rc;
}

int queue_callback_take_many(queue *q, const char *worker, int max, queue_taken *out,
                             aq_err *e)
{
    memset(out, 0, sizeof *out);
    qargs a;
    arg_script(&a, q, S_CB_TAKE, 3);
    arg_key(&a, q, "callbacks:delayed");
    arg_key(&a, q, "callbacks");
    arg_key(&a, q, "callbacks:sending:%s", worker);
    arg_i(&a, now_ms());
    arg_i(&a, max > 0 ? max : 1);
    redisReply *r;
    int rc = q_script(q, S_CB_TAKE, &a, "callback take", &r, e);
    if (rc < 0)
        return rc;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    out->doc = calloc(n ? n : 1, sizeof *out->doc);
    out->len = calloc(n ? n : 1, sizeof *out->len);
    for (size_t i = 0; out->doc && out->len && i < n; i++) {
        const redisReply *d = r->element[i];
        if (d->type != REDIS_REPLY_STRING || !(out->doc[i] = malloc(d->len + 1)))
            break;
        memcpy(out->doc[i], d->str, d->len);
        out->doc[i][d->len] = '\0';
        out->len[i] = d->len;
        out->n++;
    }
    freeReplyObject(r);
    if (out->n != n) {
        queue_taken_free(out);
        return err_set(e, AQ_EAGAIN, "callback take: out of memory or bad reply");
    }
    return 0;
}

int queue_callback_return(queue *q, const char *worker, int *moved, aq_err *e)
{
    qargs a;
    arg_script(&a, q, S_CB_RETURN, 2);
    arg_key(&a, q, "callbacks:sending:%s", worker);
    arg_key(&a, q, "callbacks");
    long long n = 0;
    int rc = q_script_int(q, S_CB_RETURN, &a, "callback return", &n, e);
    if (moved)
        *moved = rc == 0 ? (int)n : 0;
    return rc;
}
