/* queue_batches: tracked batches of jobs, NS:batch:ID (see queue.h). The
 * counting itself happens in the enqueue, outcome, cancel and requeue
 * scripts (LUA_FINAL in queue_scripts.c), so a batch's counts move in the
 * same script as its jobs' states. */
#include <stddef.h>
#include <string.h>

#include "queue_int.h"
#include "retry.h"

int queue_batch_open(queue *q, const char *id, const char *qname, const char *callback_url,
                     aq_err *e)
{
    int rc = check_id(id, false, e);
    if (rc < 0)
        return rc;
    qargs a;
    arg_script(&a, q, S_BATCH_OPEN, 1);
    arg_key(&a, q, "batch:%s", id);
    arg_s(&a, qname_or_default(q, qname));
    arg_s(&a, callback_url ? callback_url : "");
    arg_i(&a, now_ms());
    long long made = 0;
    if ((rc = q_script_int(q, S_BATCH_OPEN, &a, "batch open", &made, e)) < 0)
        return rc;
    return made ? 0 : err_set(e, AQ_EPERM, "batch %s exists already", id);
}

int queue_batch_seal(queue *q, const char *id, aq_err *e)
{
    int rc = check_id(id, false, e);
    if (rc < 0)
        return rc;
    qargs a;
    arg_script(&a, q, S_BATCH_SEAL, 1);
    arg_key(&a, q, "batch:%s", id);
    arg_ns(&a, q);
    arg_s(&a, id);
    arg_i(&a, now_ms());
    arg_i(&a, result_ttl(q));
    arg_i(&a, events_max(q));
    arg_s(&a, q->cfg.callbacks.publish ? "1" : "0");
    long long found = 0;
    if ((rc = q_script_int(q, S_BATCH_SEAL, &a, "batch seal", &found, e)) < 0)
        return rc;
    return found ? 0 : err_set(e, AQ_ENOTFOUND, "batch %s: not found", id);
}

static const field_spec batch_fields[] = {
    FIELD_STR(queue_batch_info, state),
    FIELD_STR(queue_batch_info, queue),
    FIELD(queue_batch_info, total, F_I64),
    FIELD(queue_batch_info, pending, F_I64),
    FIELD(queue_batch_info, done, F_I64),
    FIELD(queue_batch_info, dead, F_I64),
    FIELD(queue_batch_info, cancelled, F_I64),
    FIELD(queue_batch_info, created_at, F_I64),
    FIELD(queue_batch_info, finished_at, F_I64),
    FIELD(queue_batch_info, sealed, F_INT),
};

int queue_batch_get(queue *q, const char *id, queue_batch_info *out, aq_err *e)
{
    memset(out, 0, sizeof *out);
    return q_hash_get(q, "batch", id, batch_fields, FIELDS_N(batch_fields), out, e);
}
