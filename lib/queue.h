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
#include "queue_dead.h"

typedef struct queue queue;

/* Connects to c->redis (timeout connect_timeout_ms; AUTH and SELECT from the
 * URL). On failure returns NULL with e set (the password never in e). */
queue *queue_open(const aq_config *c, aq_err *e);
void queue_close(queue *q);

/* The Redis server in use (lib/rconn.h): "host:port" or socket path, what
 * ROLE said ("master"; "?" when ROLE is not allowed), TLS on, and how it
 * was found ("direct", "sentinel", "cluster"). Valid until the next call on
 * q. */
typedef struct queue_server {
    const char *where, *role, *via;
    bool tls;
} queue_server;
void queue_server_get(const queue *q, queue_server *s);

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

/* queue_enqueue with everything a producer may ask (docs/protocol.md
 * "Producers: dedup, limits, scheduling, cancellation"): one script that
 *  - leaves a job whose id is queued, scheduled, running or retrying alone
 *    (status QUEUE_ENQ_EXISTS, state = its state): its hash, attempts and
 *    document are never touched;
 *  - takes back the cancellation of a job whose document has not been
 *    dropped yet (QUEUE_ENQ_REVIVED);
 *  - refuses when the target queue holds max_queue_length documents
 *    (QUEUE_ENQ_FULL; nothing written);
 *  - else pushes doc (or, with run_at in the future, adds it to NS:delayed
 *    at run_at, state scheduled) and writes the hash (QUEUE_ENQ_DONE).
 * Returns 0 whatever the status, or < 0 on failure. */
typedef enum {
    QUEUE_ENQ_DONE = 0,
    QUEUE_ENQ_EXISTS = 1,
    QUEUE_ENQ_REVIVED = 2,
    QUEUE_ENQ_FULL = 3,
} queue_enq_status;
typedef struct queue_enq {
    const char *qname;        /* NULL = the configured queue */
    const char *id;           /* "" or NULL: a document without id */
    const char *doc;
    size_t len;
    int64_t created_at;       /* 0 = now */
    int64_t run_at;           /* ms since the epoch; 0 or past = run now */
    const char *batch;        /* MAY: batch id (docs/protocol.md "Batches"):
                               * counted in NS:batch:ID when enqueued */
    bool always;              /* never deduplicated (delete jobs: a delete is
                               * never lost); a running or retrying job's
                               * hash is still left alone */
    /* out */
    queue_enq_status status;
    char state[16];           /* the job's state after the call */
} queue_enq;
int queue_enqueue_ex(queue *q, queue_enq *j, aq_err *e);
/* The same for n jobs in one pipeline; each gets its own status. */
int queue_enqueue_many_ex(queue *q, queue_enq *jobs, size_t n, aq_err *e);
/* The name of a status ("enqueued", "exists", "revived", "full"). */
const char *queue_enq_status_name(queue_enq_status s);

/* Cancels job id in one script: a queued, scheduled, retrying or running job
 * becomes `cancelled` at once (finished_at now, error "cancelled"); its
 * document is dropped, never run, where it next surfaces (a worker's start,
 * the promotion of NS:delayed, recovery), and a running one's result is
 * discarded and its files deleted by the worker when it finishes. *before
 * (16 bytes, may be NULL) receives the state it had. Returns 0 when
 * cancelled, 1 when the job was already final (done, dead, cancelled:
 * nothing done), AQ_ENOTFOUND, or < 0. */
int queue_cancel(queue *q, const char *id, char *before, aq_err *e);

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

/* ---- heartbeats (the supervisor beats for its worker processes) ---- */
typedef struct queue_beat {
    const char *worker;       /* HOST:PID-NONCE */
    const char *host;
    long pid;
    int64_t started_at;
    const char *state;        /* idle | busy | stopping */
    const char *job;          /* "" when idle */
    int64_t done, failed;
    int64_t rss_kb;
    int inflight;             /* jobs held by the process */
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
/* The same, also giving the score (ms since the epoch) of the earliest job
 * still waiting in NS:delayed, or -1 when none (next_due may be NULL). */
int queue_promote_due_next(queue *q, int64_t now_ms, int limit, int *moved, int64_t *next_due,
                           aq_err *e);

/* Puts every job of NS:processing:worker back at the head of its queue
 * (RPUSH, so it is taken next), state=queued. What fate.c decides otherwise
 * wins: a job already started max_attempts times goes to NS:dead ("worker
 * died N times while running it"); a job named in timed_out goes down the
 * retry path (NS:delayed with backoff, or dead) with timeout_error. A
 * document ident refuses goes to dead with ident's message. Counts
 * `recovered` (or `retried` / `dead`). Used for workers whose heartbeat
 * expired, for a worker's clean stop and after a job timeout. */
typedef int (*queue_ident_fn)(void *ud, const char *doc, size_t len, char id[65],
                              int *max_attempts, char *why, size_t whylen);
typedef struct queue_requeue {
    queue_ident_fn ident;          /* MUST: id and max_attempts of a document */
    void *ud;                      /* MAY: handed to ident */
    const char *const *timed_out;  /* MAY: ids whose attempt ran past its time */
    size_t n_timed_out;
    const char *timeout_error;     /* MAY: the error recorded for those */
} queue_requeue;
int queue_requeue_worker(queue *q, const char *worker, const queue_requeue *how,
                         int *recovered, int *dead, aq_err *e);

/* Under the lock NS:lock:recovery (SET NX PX), finds members of NS:workers
 * whose NS:worker:W key has expired, requeues their jobs and removes them
 * from NS:workers. *recovered / *dead receive totals. */
int queue_recover_dead(queue *q, const queue_requeue *how, int *recovered, int *dead,
                       aq_err *e);

/* ---- the worker engine: batched calls ----
 * A worker process holds up to twice `concurrency` jobs. Its dispatcher
 * sends the outcomes of finished jobs, marks the jobs it took in its last
 * call running and asks for more in ONE script (queue_cycle), so Redis sees
 * one call per batch instead of three per job. */

/* QUEUE_REFUSED: a document that never became a job (it breaks the
 * protocol): dead like QUEUE_DEAD, but the hash of the id it carries turns
 * dead only while it is `queued` (the hash an enqueue made for this very
 * document); a hash of any other state belongs to another job and is left
 * alone. */
/* QUEUE_DROP: a document whose job was cancelled before it started
 * (queue_start_many gave it attempts 0): it only leaves the processing list. */
typedef enum {
    QUEUE_DONE = 0,
    QUEUE_RETRY = 1,
    QUEUE_DEAD = 2,
    QUEUE_REFUSED = 3,
    QUEUE_DROP = 4,
} queue_outcome_kind;

typedef struct queue_outcome {
    const char *doc;          /* exactly as taken */
    size_t len;
    const char *id;           /* "" for a document without a usable id */
    queue_outcome_kind kind;
    const char *outputs;      /* DONE: JSON for the job hash */
    int64_t duration_ms;      /* DONE */
    const char *error;        /* RETRY, DEAD */
    const char *retry_doc;    /* RETRY: pushed to NS:delayed at due_ms */
    int64_t due_ms;
    const char *dead_doc;     /* DEAD: pushed to NS:dead */
    const char *callback;     /* DONE, DEAD: MAY: callback URL of the job (or
                               * [callbacks] url): the result goes to
                               * NS:callbacks for the callback sender */
    const char *batch;        /* MAY: the job's batch id (counted when final) */
    bool stale;               /* out: neither in processing nor queued any more
                               * (taken back by recovery; its holder records it) */
    bool cancelled;           /* out: cancelled while it ran: nothing recorded,
                               * the caller deletes what it stored */
} queue_outcome;

/* Job duration histogram, NS:metrics fields job_duration_ms_le_<B>
 * (non-cumulative counts), job_duration_ms_sum and job_duration_ms_count. */
#define QUEUE_HIST_N 16
extern const int queue_hist_bounds_ms[QUEUE_HIST_N - 1]; /* the last bucket is +Inf */
typedef struct queue_hist {
    int64_t bucket[QUEUE_HIST_N];
    int64_t sum_ms, count;
} queue_hist;
/* Adds one job duration to h. */
void queue_hist_add(queue_hist *h, int64_t ms);

/* Docs moved from the queue by queue_cycle, each malloc'd and NUL-terminated;
 * free with queue_taken_free. */
typedef struct queue_taken {
    char **doc;
    size_t *len;
    int *from;                /* the queue each came from (queue_take_name) */
    size_t n;
    bool oversized;           /* the queue's next document is over the limit:
                               * take it with queue_take_bounded_from */
    int oversized_from;       /* ... from this queue (queue_take_name) */
    struct queue_big *big;    /* queue_processing: documents over the limit */
    size_t nbig;              /* (size and head only; sha256 "") */
} queue_taken;
void queue_taken_free(queue_taken *t);

typedef struct queue_start_item {
    const char *id;           /* "" for a document without a usable id */
    int64_t created_at;
    int attempts;             /* out; 0: cancelled before it started, drop it
                               * (outcome QUEUE_DROP) */
    const char *queue;        /* MAY: the queue it came from (NULL = default) */
} queue_start_item;

/* One script: records every outcome of outs, then adds hist (may be NULL)
 * to NS:metrics, then marks the nstarts jobs of starts running as
 * queue_start_many does (starts[i].attempts receives each one's attempt
 * number), then moves up to want documents of at most limit bytes
 * from the queue to NS:processing:worker (stopping before a larger one,
 * which it flags). Each outcome first claims its doc: it must leave
 * NS:processing:worker or (taken back by recovery, not taken again) the
 * queue in this very script; found in neither, it is stale: someone else
 * holds it and records it, and nothing is recorded here. A job cancelled
 * while it ran is only unparked (o->cancelled). Then, by kind:
 *  - DONE: hash state=done, worker, finished_at, duration_ms, outputs,
 *    EXPIRE result_ttl_s; counts `done`;
 *  - RETRY: retry_doc ZADDed to NS:delayed at due_ms, hash state=retrying
 *    with error (no TTL); counts `retried`; one `retrying` event;
 *  - DEAD, REFUSED: dead_doc LPUSHed to NS:dead (LTRIM to dead_max), hash
 *    state=dead with error and finished_at, EXPIRE result_ttl_s; counts
 *    `failed` and `dead`, and `enqueued` for a document with no live hash
 *    (it never started: a raw LPUSH); one `dead` event;
 *  - DROP: nothing more.
 * id "" (a document without a usable id) touches no hash. Counters are
 * added once per call; all done ids share one `done` event (field ids).
 * Transport failures: AQ_EAGAIN, and whether the script ran is unknown:
 * outcomes may be sent again (a second record of one is stale), and
 * documents it may have moved are found with queue_processing. */
int queue_cycle(queue *q, const char *worker, queue_outcome *outs, size_t n,
                const queue_hist *hist, queue_start_item *starts, size_t nstarts, int want,
                size_t limit, queue_taken *taken, aq_err *e);

/* Marks n jobs running on worker in one script (a queue_cycle that
 * records and takes nothing): per job attempts+1,
 * started_at, worker, queue; counts `started` (and `enqueued` for a job
 * with no live hash: a raw LPUSH, or an id pushed again after it was done
 * or dead, which starts a new run at attempt 1, created_at from the item or
 * now); one `running` event (field ids) for them all. items[i].attempts
 * receives the new attempt number. Idempotent per job: a job still running
 * on this very worker (a retry after a lost reply) changes nothing and gets
 * the same number. A job cancelled before it started gets 0: drop its
 * document (QUEUE_DROP). id "" counts started and enqueued, touches no hash. */
int queue_start_many(queue *q, const char *worker, queue_start_item *items, size_t n,
                     aq_err *e);

/* BLMOVE from the queue into NS:processing:worker, waiting up to timeout_ms,
 * reading the reply from the socket in pieces: a document of at most limit
 * bytes comes back in *doc (malloc'd, NUL-terminated); a larger one is never
 * held whole: *doc is NULL and big receives its size, its first bytes and
 * its SHA-256 (then bury it with queue_bury_oversized). Returns 1 when a
 * document was moved, 0 on timeout, < 0 on failure. */
typedef struct queue_big queue_big;
struct queue_big {
    size_t size;
    char head[QUEUE_DEAD_RAW_MAX + 1];
    size_t head_len;
    char sha256[65];
};
int queue_take_bounded(queue *q, const char *worker, int timeout_ms, size_t limit,
                       char **doc, size_t *len, queue_big *big, aq_err *e);
/* The same from take queue `from` (queue_take_name; 0 = the default). */
int queue_take_bounded_from(queue *q, int from, const char *worker, int timeout_ms,
                            size_t limit, char **doc, size_t *len, queue_big *big, aq_err *e);

/* ---- several queues per worker ([worker] queues) ----
 * With take queues set, queue_cycle takes from them: weighted (smooth
 * weighted round robin over the documents of each call: in any run of
 * sum(weights) documents taken while every queue has work, queue i gives
 * weight i of them, so no queue starves) or strict (always the first
 * non-empty queue in the listed order). A preferred queue that is empty
 * falls through to the others in listed order. Indexes: 1..n the take
 * queues, 0 the configured [redis] queue. */
#define QUEUE_TAKE_MAX 16
int queue_set_takes(queue *q, const char *const *names, const int *weights, int n,
                    bool strict, aq_err *e);
/* The name of take queue idx (0 or out of range: the configured queue). */
const char *queue_take_name(const queue *q, int idx);
/* The take queue an idle worker blocks on: the heaviest (weighted) or the
 * first (strict); 0 without take queues. */
int queue_take_first(const queue *q);
/* Number of take queues (0 = the configured queue only). */
int queue_take_count(const queue *q);

/* Removes from NS:processing:worker the first document of exactly big->size
 * bytes (over limit) and records it dead: NS:dead gets {"raw": head,
 * "raw_bytes", "raw_sha256", "error", "failed_at", "attempts"}; counts
 * `enqueued`, `failed` and `dead` (it never started) and adds a `dead`
 * event. */
int queue_bury_oversized(queue *q, const char *worker, const queue_big *big, size_t limit,
                         const char *error, aq_err *e);

/* Every document of NS:processing:worker of at most limit bytes (after a
 * call whose reply was lost); the larger ones as out->big (size and head
 * only: they never travel whole). Same ownership as queue_taken. */
int queue_processing(queue *q, const char *worker, size_t limit, queue_taken *out, aq_err *e);

/* ---- tracked batches (docs/protocol.md "Batches") ----
 * NS:batch:ID counts the jobs enqueued with that batch id (total, pending,
 * done, dead, cancelled); the outcome scripts count each job once when it
 * ends; a sealed batch whose pending count reaches 0 completes: state
 * complete, an NS:events entry (id = the batch id, state batch_done), and
 * its callback_url (if any) gets {batch, state, total, done, dead,
 * cancelled, finished_at}. */

/* Creates NS:batch:id (state open). AQ_EPERM when it exists already. */
int queue_batch_open(queue *q, const char *id, const char *qname, const char *callback_url,
                     aq_err *e);
/* No more jobs: completes it now when every job is final. AQ_ENOTFOUND
 * when there is no such batch. */
int queue_batch_seal(queue *q, const char *id, aq_err *e);
typedef struct queue_batch_info {
    char state[16];           /* open | complete */
    char queue[72];
    int64_t total, pending, done, dead, cancelled;
    int64_t created_at, finished_at;
    int sealed;
} queue_batch_info;
/* NS:batch:id into out; AQ_ENOTFOUND when there is none (or it expired:
 * result_ttl_s after it completed). */
int queue_batch_get(queue *q, const char *id, queue_batch_info *out, aq_err *e);

/* ---- completion callbacks (docs/protocol.md "Completion callbacks") ----
 * The outcome scripts LPUSH an entry {url, body, attempts} to NS:callbacks
 * for each done or dead job with a callback URL (and each completed batch
 * with one). A sender (a thread of every worker process, with its own
 * connection) moves one entry at a time to NS:callbacks:sending:W, POSTs it
 * and records what became of it; entries to retry wait in
 * NS:callbacks:delayed. */

/* BLMOVE NS:callbacks -> NS:callbacks:sending:worker, waiting up to
 * timeout_ms. 1 with *entry (malloc'd, NUL-terminated), 0 on timeout, < 0. */
int queue_callback_take(queue *q, const char *worker, int timeout_ms, char **entry,
                        size_t *len, aq_err *e);
/* One script, without waiting: moves due entries of NS:callbacks:delayed
 * back to NS:callbacks (each once, whoever calls), then up to max entries
 * to the sender's list, into out (same ownership as queue_taken). */
int queue_callback_take_many(queue *q, const char *worker, int max, queue_taken *out,
                             aq_err *e);
typedef enum { QUEUE_CB_SENT, QUEUE_CB_RETRY, QUEUE_CB_GAVE_UP } queue_cb_result;
typedef struct queue_cb_done {
    const char *entry;        /* exactly as taken */
    size_t len;
    queue_cb_result how;
    const char *retry_entry;  /* RETRY: ZADDed to NS:callbacks:delayed at due_ms */
    int64_t due_ms;
} queue_cb_done;
/* One script for n entries: each leaves the sending list and is counted
 * callbacks_sent; or waits in NS:callbacks:delayed (callbacks_retried); or
 * is kept in NS:callbacks:dead (trimmed to dead_max; callbacks_failed). */
int queue_callback_finish(queue *q, const char *worker, const queue_cb_done *done, size_t n,
                          aq_err *e);
/* Moves every entry of NS:callbacks:sending:worker back to NS:callbacks (a
 * sender that died or stopped); queue_requeue_worker calls it too. */
int queue_callback_return(queue *q, const char *worker, int *moved, aq_err *e);

/* ---- operators ---- */
typedef struct queue_stats {
    int64_t queued, processing, delayed, dead;
    int64_t enqueued, started, done, failed, retried, dead_total, recovered;
    int64_t cancelled, callbacks_sent, callbacks_retried, callbacks_failed;
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
 * ("all", "host:H" or "worker:ID") and cmd ("quiet", "resume", "stop").
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

/* ---- events (for avatarq_wait) ---- */

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
 * worker, error) for each (a batch entry, field ids, once per id it names);
 * fn returning non-zero stops. */
int queue_view_events(queue *q, int count,
                      int (*fn)(const char *id, const char *state, const char *worker,
                                const char *error, void *ud),
                      void *ud, aq_err *e);

#endif

