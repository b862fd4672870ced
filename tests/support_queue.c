/* support_queue: batches of one through the worker engine's calls. See
 * support_queue.h. */
#include "support_queue.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

/* Without waiting: one queue_cycle that records nothing and wants one. */
static int take_now(queue *q, const char *worker, char **doc, size_t *len, aq_err *e)
{
    queue_taken t;
    int rc = queue_cycle(q, worker, NULL, 0, NULL, NULL, 0, 1, JOB_MAX_DOC, &t, e);
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
    int rc = queue_cycle(q, worker, o, 1, NULL, NULL, 0, 0, JOB_MAX_DOC, &t, e);
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

/* Starts the n documents of t in one call; ids are read from the documents
 * (kept parsed until the call returns: items point into them). */
static int start_taken(queue *q, const char *worker, const queue_taken *t, int *attempts,
                       aq_err *e)
{
    if (t->n == 0)
        return 0;
    queue_start_item *items = calloc(t->n, sizeof *items);
    json_t **docs = calloc(t->n, sizeof *docs);
    if (!items || !docs) {
        free(items);
        free(docs);
        return err_set(e, AQ_EAGAIN, "start: out of memory");
    }
    for (size_t i = 0; i < t->n; i++) {
        docs[i] = json_loadb(t->doc[i], t->len[i], 0, NULL);
        const char *id = json_string_value(json_object_get(docs[i], "id"));
        items[i] = (queue_start_item){.id = id ? id : "", .queue = queue_take_name(q, t->from[i])};
    }
    int rc = queue_start_many(q, worker, items, t->n, e);
    for (size_t i = 0; i < t->n; i++) {
        attempts[i] = items[i].attempts;
        json_decref(docs[i]);
    }
    free(items);
    free(docs);
    return rc;
}

int sq_take_start(queue *q, const char *worker, int want, queue_taken *t, int *attempts,
                  aq_err *e)
{
    int rc = queue_cycle(q, worker, NULL, 0, NULL, NULL, 0, want, JOB_MAX_DOC, t, e);
    if (rc < 0)
        return rc;
    if ((rc = start_taken(q, worker, t, attempts, e)) < 0)
        queue_taken_free(t);
    return rc;
}

int sq_drop(queue *q, const char *worker, const char *doc, const char *id, aq_err *e)
{
    queue_outcome o = {.doc = doc, .len = strlen(doc), .id = id, .kind = QUEUE_DROP};
    return sq_finish(q, worker, &o, e);
}
