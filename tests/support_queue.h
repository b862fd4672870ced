/* support_queue: jobs through the worker engine's batched calls
 * (lib/queue.h: queue_cycle, queue_start_many, queue_take_bounded), for the
 * tests that pin a per-job rule of the queue: take one (or a worker's
 * batch), start it, record its outcome. The rules themselves live only in the batch scripts;
 * these are thin wrappers that build a batch of one. They make no Check
 * assertion (callers check the return codes), so a benchmark may use them
 * too. */
#ifndef AQ_SUPPORT_QUEUE_H
#define AQ_SUPPORT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"

/* Moves one document of the configured queue to NS:processing:worker:
 * timeout_ms 0 without waiting (queue_cycle wanting one document, nothing
 * recorded), else waiting up to timeout_ms (queue_take_bounded, the idle
 * worker's BLMOVE). Returns 1 with *doc (malloc'd, NUL-terminated, *len
 * bytes), 0 when there was none, < 0 on failure (a document over the
 * protocol's limit is a failure here: the tests never push one this way). */
int sq_take(queue *q, const char *worker, int timeout_ms, char **doc, size_t *len, aq_err *e);

/* queue_start_many for one job of the configured queue: *attempts receives
 * its attempt number (0: cancelled before it started). */
int sq_start(queue *q, const char *worker, const char *id, int64_t created_at, int *attempts,
             aq_err *e);

/* Records one outcome with queue_cycle, taking nothing: o->stale and
 * o->cancelled are set as the script found it. */
int sq_finish(queue *q, const char *worker, queue_outcome *o, aq_err *e);

/* sq_finish of QUEUE_DONE for doc (duration_ms, outputs JSON); *stale is
 * true when the document was neither in the worker's processing list nor
 * back in the queue (someone else holds it: nothing was recorded). */
int sq_done(queue *q, const char *worker, const char *doc, size_t len, const char *id,
            const char *outputs, int64_t duration_ms, bool *stale, aq_err *e);

/* What a worker does with its take: one queue_cycle wanting up to want
 * documents (none recorded), then one queue_start_many for all of them,
 * each named by its document's "id" ("" when it has none) and the queue it
 * came from. Returns 0 with t filled (free with queue_taken_free) and
 * attempts[i] the attempt number of t->doc[i] (0: cancelled before it
 * started, drop it with sq_drop); attempts has room for want. On failure t
 * holds nothing. */
int sq_take_start(queue *q, const char *worker, int want, queue_taken *t, int *attempts,
                  aq_err *e);

/* sq_finish of QUEUE_DROP for doc (NUL-terminated, as taken): a job
 * cancelled before it started only leaves the processing list. */
int sq_drop(queue *q, const char *worker, const char *doc, const char *id, aq_err *e);

#endif
