/* queue_callbacks: the Redis side of completion callbacks (see queue.h). The
 * sender's take mirrors a worker's: the entry sits in a per-sender list
 * while it is POSTed, so a sender that dies loses nothing (its list is given
 * back by recovery) and a callback is delivered at least once. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_int.h"

int queue_callback_take(queue *q, const char *worker, int timeout_ms, char **entry,
                        size_t *len, aq_err *e)
{
    *entry = NULL;
    *len = 0;
    char src[QUEUE_KEY_MAX], dst[QUEUE_KEY_MAX], secs[32];
    queue_keyf(q, src, sizeof src, "callbacks");
    queue_keyf(q, dst, sizeof dst, "callbacks:sending:%s", worker);
    if (timeout_ms < 1)
        timeout_ms = 1;
    snprintf(secs, sizeof secs, "%d.%03d", timeout_ms / 1000, timeout_ms % 1000);
    qargs a = {0};
    arg_s(&a, "BLMOVE");
    arg_s(&a, src);
    arg_s(&a, dst);
    arg_s(&a, "RIGHT");
    arg_s(&a, "LEFT");
    arg_s(&a, secs);
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

int queue_callback_finish(queue *q, const char *worker, const char *entry, size_t len,
                          queue_cb_result how, const char *retry_entry, int64_t due_ms,
                          aq_err *e)
{
    char keys[4][QUEUE_KEY_MAX];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "callbacks:sending:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "callbacks:delayed");
    queue_keyf(q, keys[2], QUEUE_KEY_MAX, "callbacks:dead");
    queue_keyf(q, keys[3], QUEUE_KEY_MAX, "stats");
    qargs a;
    arg_script(&a, q, S_CB_FINISH, 4);
    for (int i = 0; i < 4; i++)
        arg_s(&a, keys[i]);
    arg_b(&a, entry, len);
    arg_s(&a, CB_MODE[how]);
    arg_s(&a, retry_entry ? retry_entry : "");
    arg_i(&a, due_ms);
    arg_i(&a, dead_max(q));
    return q_script_int(q, S_CB_FINISH, &a, "callback finish", NULL, e);
}

int queue_callback_promote(queue *q, int64_t now, int limit, int *moved, aq_err *e)
{
    char keys[2][QUEUE_KEY_MAX];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "callbacks:delayed");
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "callbacks");
    qargs a;
    arg_script(&a, q, S_CB_PROMOTE, 2);
    arg_s(&a, keys[0]);
    arg_s(&a, keys[1]);
    arg_i(&a, now);
    arg_i(&a, limit > 0 ? limit : 100);
    long long n = 0;
    int rc = q_script_int(q, S_CB_PROMOTE, &a, "callback promote", &n, e);
    if (moved)
        *moved = rc == 0 ? (int)n : 0;
    return rc;
}

int queue_callback_return(queue *q, const char *worker, int *moved, aq_err *e)
{
    char keys[2][QUEUE_KEY_MAX];
    queue_keyf(q, keys[0], QUEUE_KEY_MAX, "callbacks:sending:%s", worker);
    queue_keyf(q, keys[1], QUEUE_KEY_MAX, "callbacks");
    qargs a;
    arg_script(&a, q, S_CB_RETURN, 2);
    arg_s(&a, keys[0]);
    arg_s(&a, keys[1]);
    long long n = 0;
    int rc = q_script_int(q, S_CB_RETURN, &a, "callback return", &n, e);
    if (moved)
        *moved = rc == 0 ? (int)n : 0;
    return rc;
}
