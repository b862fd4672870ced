/* queue: every Redis command and Lua script of docs/protocol.md "Keys in Redis".
 * One queue handle = one hiredis connection (never shared across fork()).
 * Every state change is one round trip (a Lua script or a pipeline), and a
 * job leaves NS:processing:W only in the same script that records its
 * outcome. Transport failures (refused, reset, timeout, LOADING, READONLY,
 * MASTERDOWN, BUSY) return AQ_EAGAIN and mark the handle for reconnection;
 * the next call reconnects first. */
#ifndef AQ_QUEUE_H
#define AQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

typedef struct queue queue;

/* Connects to c->redis (timeout connect_timeout_ms; AUTH and SELECT from the
 * URL). On failure returns NULL with e set (the password never in e). */
queue *queue_open(const aq_config *c, aq_err *e);
void queue_close(queue *q);

/* Reconnects if the handle is marked broken; returns 0 or AQ_EAGAIN. */
int queue_ensure(queue *q, aq_err *e);

/* "NS:suffix" for this handle's namespace. */
void queue_keyf(const queue *q, char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- producers ---- */

/* Pushes doc onto NS:queue:qname and, in the same script, sets NS:job:id to
 * state=queued (attempts 0, queue, created_at, no expiry), counts `enqueued`
 * and adds an event. qname NULL = the configured queue. */
int queue_enqueue(queue *q, const char *qname, const char *id, const char *doc,
                  size_t len, int64_t created_at, aq_err *e);

/* The same for n jobs in one pipeline (for `avatarq batch`). */
typedef struct queue_item {
    const char *id, *doc;
    size_t len;
    int64_t created_at;
} queue_item;
int queue_enqueue_many(queue *q, const char *qname, const queue_item *items,
                       size_t n, aq_err *e);

/* The job hash, as strings ("" for absent fields). */
typedef struct queue_job {
    char state[16], queue[64], worker[160], error[512];
    int attempts;
    int64_t created_at, started_at, finished_at, duration_ms;
    char *outputs;   /* malloc'd JSON or NULL; free with queue_job_free */
} queue_job;
/* AQ_ENOTFOUND when NS:job:id does not exist. */
int queue_job_get(queue *q, const char *id, queue_job *j, aq_err *e);
void queue_job_free(queue_job *j);

/* ---- workers ---- */

/* BLMOVE NS:queue:Q -> NS:processing:worker (RIGHT LEFT), waiting up to
 * timeout_ms. Returns 1 with *doc (malloc'd, NUL-terminated, *len bytes),
 * 0 on timeout, or < 0. After a take that lost its connection (the move may
 * have happened, its reply lost), the next take of the same worker first
 * returns the newest doc of its processing list, if any: a worker calls
 * take only while it holds no job. */
int queue_take(queue *q, const char *worker, int timeout_ms, char **doc,
               size_t *len, aq_err *e);

/* Marks id running on worker: attempts+1, started_at, worker, queue; counts
 * `started` (and `enqueued` when the job had no live hash: a raw LPUSH);
 * adds an event. *attempts receives the new attempt number. Idempotent:
 * called again while the job is still running on the same worker (a retry
 * after a lost reply) it changes nothing and returns the same number. */
int queue_start(queue *q, const char *worker, const char *id, int64_t created_at,
                int *attempts, aq_err *e);

/* One script: LREM the doc from NS:processing:worker; state=done,
 * finished_at, duration_ms, outputs; EXPIRE result_ttl_s; counts `done`; adds
 * an event. If the doc is no longer in the processing list (taken back by
 * recovery meanwhile) it is removed from the queue instead if still there;
 * if neither, nothing is recorded and *stale is set (the current holder will
 * record it). */
int queue_ack(queue *q, const char *worker, const char *doc, size_t len,
              const char *id, const char *outputs_json, int64_t duration_ms,
              bool *stale, aq_err *e);

/* One script: LREM from processing; when retry_doc is non-NULL, ZADD it to
 * NS:delayed at due_ms, state=retrying, counts `retried`; otherwise LPUSH
 * dead_doc (the job JSON with error, failed_at, attempts) to NS:dead, LTRIM
 * it to dead_max, state=dead with error, EXPIRE result_ttl_s, counts `failed`
 * and `dead` (and `enqueued` for a document that never started: no live job
 * hash). id may be "" (document without a usable id: no job hash).
 * Adds an event. */
int queue_fail(queue *q, const char *worker, const char *doc, size_t len,
               const char *id, const char *error, const char *retry_doc,
               int64_t due_ms, const char *dead_doc, bool *stale, aq_err *e);

/* ---- heartbeats (the supervisor beats for its worker processes) ---- */
typedef struct queue_beat {
    const char *worker;       /* HOST:PID */
    const char *host;
    long pid;
    int64_t started_at;
    const char *state;        /* idle | busy | stopping */
    const char *job;          /* "" when idle */
    int64_t done, failed;
    int64_t rss_kb;
} queue_beat;
/* One pipeline: HSET NS:worker:W fields, EXPIRE heartbeat_ttl_s, SADD
 * NS:workers W, for each of n beats. */
int queue_heartbeat(queue *q, const queue_beat *beats, size_t n, aq_err *e);
/* A clean stop: DEL NS:worker:W, SREM NS:workers W (processing list must be
 * empty: its jobs were acknowledged or put back). */
int queue_worker_gone(queue *q, const char *worker, aq_err *e);

/* ---- supervisor duties ---- */

/* Moves up to limit due jobs (score <= now_ms) from NS:delayed back to their
 * queue (the job hash's queue, else the configured one), state=queued,
 * atomically in one script; exactly once even with many supervisors.
 * *moved receives the count. */
int queue_promote_due(queue *q, int64_t now_ms, int limit, int *moved, aq_err *e);

/* Puts every job of NS:processing:worker back at the head of its queue
 * (RPUSH, so it is taken next), state=queued; a job already started
 * max_attempts times goes to NS:dead instead ("worker died while running it").
 * ident(doc) gives the job's id and max_attempts (0 = default); when it fails
 * the document goes to dead with ident's message. Counts `recovered`.
 * Used for workers whose heartbeat expired and by a worker's clean stop. */
typedef int (*queue_ident_fn)(const char *doc, size_t len, char id[65],
                              int *max_attempts, char *why, size_t whylen);
int queue_requeue_worker(queue *q, const char *worker, queue_ident_fn ident,
                         int *recovered, int *dead, aq_err *e);

/* Under the lock NS:lock:recovery (SET NX PX), finds members of NS:workers
 * whose NS:worker:W key has expired, requeues their jobs and removes them
 * from NS:workers. *recovered / *dead receive totals. */
int queue_recover_dead(queue *q, queue_ident_fn ident, int *recovered, int *dead,
                       aq_err *e);

/* ---- operators ---- */
typedef struct queue_stats {
    int64_t queued, processing, delayed, dead;
    int64_t enqueued, started, done, failed, retried, dead_total, recovered;
} queue_stats;
int queue_stats_get(queue *q, queue_stats *s, aq_err *e);

/* Calls fn for each registered worker with its heartbeat hash fields
 * (alive = key still present). */
typedef struct queue_worker_info {
    char id[160], host[128], state[16], job[80], queue[64];
    long pid;
    int64_t started_at, beat_at, done, failed, rss_kb;
    bool alive;
} queue_worker_info;
int queue_workers(queue *q, int (*fn)(const queue_worker_info *w, void *ud),
                  void *ud, aq_err *e);

/* Dead letters: list (LRANGE start..stop, fn gets each doc), retry one id or
 * all (back to their queue with attempts reset), purge (DEL). *n = count. */
int queue_dead_list(queue *q, long start, long stop,
                    int (*fn)(const char *doc, void *ud), void *ud, aq_err *e);
int queue_dead_retry(queue *q, const char *id, bool all, int *n, aq_err *e);
int queue_dead_purge(queue *q, int *n, aq_err *e);

/* ---- remote control (fleet) ----
 * Commands live in the stream NS:control (MAXLEN ~ 1000): fields target
 * ("all", "host:H" or "worker:HOST:PID") and cmd ("quiet", "resume", "stop").
 * Each supervisor reads entries newer than the last it saw (starting from its
 * own start time) at every heartbeat and applies those that match it. */
int queue_control_post(queue *q, const char *target, const char *cmd, aq_err *e);
typedef struct queue_control {
    char id[48];          /* stream entry id */
    char target[200];
    char cmd[16];
} queue_control;
/* Reads up to max entries after last_id ("0" or "<ms>-0" for "from then"),
 * updating last_id to the newest read; *n receives the count. */
int queue_control_read(queue *q, char last_id[48], queue_control *out, size_t max,
                       size_t *n, aq_err *e);

/* Redis INFO field maxmemory-policy into out (for the start-up warning). */
int queue_maxmemory_policy(queue *q, char *out, size_t n, aq_err *e);

/* ---- additions (queue engineer) ---- */

/* The dead letter for doc: the job JSON object with "error", "failed_at"
 * and "attempts" added (same key order otherwise), or, for a document that
 * is not a JSON object or is over QUEUE_DEAD_DOC_MAX, {"raw": "<doc>", "error":..., "failed_at":...,
 * "attempts":...} (bytes that are not UTF-8 become '?'; at most
 * QUEUE_DEAD_RAW_MAX bytes kept, with "raw_bytes" the whole size). malloc'd, NULL
 * only when out of memory. */
#define QUEUE_DEAD_RAW_MAX 1024       /* bytes of a non-object document kept as "raw" */
#define QUEUE_DEAD_DOC_MAX (64 * 1024) /* larger documents are wrapped as "raw" too */
char *queue_dead_doc(const char *doc, size_t len, const char *error, int64_t failed_at,
                     int attempts);

/* The inverse for `dead retry`: the original document (error, failed_at
 * and attempts removed; "raw" unwrapped, NUL bytes and all), malloc'd and
 * NUL-terminated, its length in *outlen; id receives its "id" field when
 * that is a valid id, else "". NULL only when out of memory. */
char *queue_dead_unwrap(const char *dead, size_t len, size_t *outlen, char id[65]);

/* NS:events: the id of the newest entry ("0-0" when empty) into last_id. */
int queue_events_last(queue *q, char last_id[48], aq_err *e);
/* Blocks up to block_ms (XREAD BLOCK) for entries after last_id, moving
 * last_id past what was read; *seen is true when one of them is about job
 * id. Returns 0 (also on a quiet timeout) or < 0. */
int queue_events_wait(queue *q, char last_id[48], int block_ms, const char *id, bool *seen,
                      aq_err *e);


/* ---- http views ---- */

/* For each waiting queue NS:queue:NAME (found with SCAN): fn(NAME, its
 * length, its oldest document or NULL when empty, that document's length).
 * fn returning non-zero stops. Returns 0 or < 0. */
typedef int (*queue_view_fn)(const char *name, int64_t len, const char *oldest,
                             size_t oldest_len, void *ud);
int queue_view_queues(queue *q, queue_view_fn fn, void *ud, aq_err *e);
/* The same for one queue by name (fn is called even when it is empty).
 * SCAN walks the whole keyspace: callers that look often keep the names
 * from an occasional queue_view_queues and use this. */
int queue_view_queue(queue *q, const char *name, queue_view_fn fn, void *ud, aq_err *e);

/* HGETALL NS:suffix (e.g. "metrics"): fn per field and value (an absent key
 * calls it never); fn returning non-zero stops. Returns 0 or < 0. */
int queue_view_hash(queue *q, const char *suffix,
                    int (*fn)(const char *field, const char *value, void *ud), void *ud,
                    aq_err *e);


/* The newest count entries of NS:events, newest first: fn(job id, state,
 * worker, error) for each; fn returning non-zero stops. */
int queue_view_events(queue *q, int count,
                      int (*fn)(const char *id, const char *state, const char *worker,
                                const char *error, void *ud),
                      void *ud, aq_err *e);

#endif

