/* support_queue: batches of one through the worker engine's calls. See
 * support_queue.h. */
#include "support_queue.h"

#include <stdlib.h>
#include <string.h>

#include "job.h"

/* Without waiting: one queue_cycle that records nothing and wants one. */
static int take_now(queue *q, const char *worker, char **doc, size_t *len, aq_err *e)
{
    queue_taken t;
    int rc = queue_cycle(q, worker, NULL, 0, NULL, 1, JOB_MAX_DOC, &t, e);
    if (rc < 0)
        return rc;
    if (t.oversized) {
        queue_taken_free(&t);
        return err_set(e, AQ_EPERM, "take: the next document is over %d bytes", JOB_MAX_DOC);
    }
    if (t.n == 0) {
        queue_taken_free(&t);
        return 0;
    }
    /* hand the one document over; the rest of t is freed */
    *doc = t.doc[0];
    *len = t.len[0];
    t.n = 0;
    queue_taken_free(&t);
    return 1;
}

int sq_take(queue *q, const char *worker, int timeout_ms, char **doc, size_t *len, aq_err *e)
{
    *doc = NULL;
    *len = 0;
    if (timeout_ms <= 0)
        return take_now(q, worker, doc, len, e);
    queue_big big;
    int rc = queue_take_bounded(q, worker, timeout_ms, JOB_MAX_DOC, doc, len, &big, e);
    if (rc == 1 && !*doc)
        return err_set(e, AQ_EPERM, "take: a document of %zu bytes, over %d", big.size,
                       JOB_MAX_DOC);
    return rc;
}

int sq_start(queue *q, const char *worker, const char *id, int64_t created_at, int *attempts,
             aq_err *e)
{
    queue_start_item it = {.id = id, .created_at = created_at};
    int rc = queue_start_many(q, worker, &it, 1, e);
    if (rc == 0 && attempts)
        *attempts = it.attempts;
    return rc;
}

int sq_finish(queue *q, const char *worker, queue_outcome *o, aq_err *e)
{
    queue_taken t;
    int rc = queue_cycle(q, worker, o, 1, NULL, 0, JOB_MAX_DOC, &t, e);
    if (rc == 0)
        queue_taken_free(&t);
    return rc;
}

int sq_done(queue *q, const char *worker, const char *doc, size_t len, const char *id,
            const char *outputs, int64_t duration_ms, bool *stale, aq_err *e)
{
    queue_outcome o = {.doc = doc, .len = len, .id = id, .kind = QUEUE_DONE,
                       .outputs = outputs, .duration_ms = duration_ms};
    int rc = sq_finish(q, worker, &o, e);
    if (stale)
        *stale = rc == 0 && o.stale;
    return rc;
}
