/* avatarq.h: the public C API for programs that enqueue avatar jobs and
 * follow them. Link with libavatarq.a (pkg-config --cflags --libs avatarq).
 *
 *     char err[256], id[65];
 *     avatarq *a = avatarq_open(NULL, err, sizeof err);   // ./config.ini, env
 *     avatarq_request r;
 *     avatarq_request_init(&r);
 *     r.seed = "user-42";
 *     if (avatarq_enqueue(a, &r, id, err, sizeof err) == 0) ...
 *     avatarq_status st;
 *     avatarq_wait(a, id, 30000, &st, err, sizeof err);  // st.state "done"
 *     avatarq_status_free(&st);
 *     avatarq_close(a);
 *
 * Every function that can fail returns 0 (or a documented positive value)
 * on success and a negative AVATARQ_E* code on failure, with one human line
 * in err (err may be NULL; errlen its size). A handle is not thread-safe and
 * must not cross fork(): open one per process or thread. */
#ifndef AVATARQ_H
#define AVATARQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes (the same values as the library's internal AQ_E* codes). */
enum {
    AVATARQ_OK = 0,
    AVATARQ_EPERM = -1,      /* permanent: bad input or config; retrying cannot help */
    AVATARQ_EAGAIN = -2,     /* transient: Redis unreachable/loading; retry later */
    AVATARQ_ENOTFOUND = -3,  /* no such job */
    AVATARQ_ETIMEDOUT = -4,  /* avatarq_wait: deadline passed before a final state */
    AVATARQ_EFULL = -5,      /* the queue holds [redis] max_queue_length jobs: try later */
};

typedef struct avatarq avatarq;

/* The library version, e.g. "0.1.0". */
const char *avatarq_version(void);

/* "ok", "permanent", "transient", "not found", "timed out" for a code. */
const char *avatarq_code_name(int code);

/* Loads the configuration (config_path, or NULL for ./config.ini if it
 * exists, else /etc/avatarq/config.ini, else defaults; then the
 * AVATARQ_<SECTION>_<KEY> environment overrides) and connects to Redis.
 * Returns NULL with err set on failure (a password is never in err). */
avatarq *avatarq_open(const char *config_path, char *err, size_t errlen);

/* The same with an already loaded configuration (struct aq_config from the
 * library's lib/config.h; for programs built inside the avatarq tree). The
 * configuration is copied. */
struct aq_config;
avatarq *avatarq_open_config(const struct aq_config *cfg, char *err, size_t errlen);

/* Closes the connection and frees the handle (NULL is fine). */
void avatarq_close(avatarq *a);

/* ---- enqueueing ---- */

/* A request built in code. Pointers are borrowed for the duration of the
 * call only. Start from avatarq_request_init(): NULL / 0 / negative mean
 * "absent", and absent fields take the defaults of docs/protocol.md. */
typedef struct avatarq_request {
    const char *id;          /* [A-Za-z0-9._-]{1,64}; NULL = derived from the request */
    const char *type;        /* "generate" (NULL) or "delete" */
    const char *seed;        /* required for generate: 1..256 bytes */
    const char *style;       /* pixel | classic | wave | gradient | emoji | initials; NULL = default */
    const int *sizes;        /* nsizes sizes, each 16..max_size; nsizes 0 = default */
    size_t nsizes;
    const char *primary;     /* "#rgb", "#rrggbb" or a CSS colour name; NULL = absent */
    const char *foreign;
    const char *scheme;      /* a named colour scheme; NULL = absent */
    double angle;            /* gradient degrees 0..360; negative = absent */
    const char *filter;      /* none | grayscale | sepia | negative; NULL = none */
    int max_attempts;        /* 1..25; 0 = the worker's [worker] max_attempts */
    const char *queue;       /* queue name [A-Za-z0-9._-]{1,64}; NULL = the configured
                              * [redis] queue */
    /* Added later, at the end so older initialisers stay valid: */
    /* The look options (docs/protocol.md "Emoji, initials, transparency,
     * rounding, formats"); NULL / 0 = absent. */
    const char *emoji;       /* emoji style: exactly one emoji */
    const char *background;  /* solid | linear | radial | transparent */
    const char *emoji_size;  /* small | medium | large */
    int radius;              /* corner rounding, percent 0..50 */
    const char *format;      /* png | webp | svg */
    const char *name;        /* initials style: the name to take initials from */
    /* The producer options (docs/protocol.md "Queues, schedules, callbacks,
     * cancellation, deduplication, batches"): */
    int64_t run_at;          /* run at this time (ms since the epoch); 0 = now */
    int64_t delay_ms;        /* run this long after enqueueing; 0 = now (not with run_at) */
    const char *callback_url; /* POST the result here when done or dead; NULL =
                              * [callbacks] url of the worker */
} avatarq_request;

/* Sets every field of r to "absent" (angle -1, pointers NULL, counts 0). */
void avatarq_request_init(avatarq_request *r);

/* Validates r with the same rules and messages as a worker ("sizes[1]: 9 is
 * below 16" -> AVATARQ_EPERM), then pushes the job document onto its queue
 * and marks NS:job:ID queued, in one round trip. id_out (may be NULL)
 * receives the job id (given or derived: the same request always gets the
 * same id). Returns 0, AVATARQ_EPERM or AVATARQ_EAGAIN. With [redis]
 * min_replicas_ack = N, AVATARQ_EAGAIN also when fewer than N replicas
 * confirmed the write in time (it happened on the master: retrying with
 * the same id gives one job). */
int avatarq_enqueue(avatarq *a, const avatarq_request *r, char id_out[65],
                    char *err, size_t errlen);

/* What an enqueue did (avatarq_enqueue_ex). Enqueueing an id that is
 * already queued, scheduled, running or retrying is a no-op (status
 * "exists", state its state): the job is not enqueued twice and its
 * attempts are kept. Derived ids make identical requests the same job, so
 * a double-posted form enqueues once. */
typedef struct avatarq_enqueued {
    char id[65];
    char status[16];         /* enqueued | exists | revived (a cancellation taken back) */
    char state[16];          /* the job's state now: queued | scheduled | running | ... */
} avatarq_enqueued;

/* avatarq_enqueue telling what happened: returns 0 (see out->status),
 * AVATARQ_EPERM, AVATARQ_EAGAIN or AVATARQ_EFULL (the queue is at [redis]
 * max_queue_length; nothing was written). avatarq_enqueue is this with
 * "exists" and "revived" reported as 0 too. */
int avatarq_enqueue_ex(avatarq *a, const avatarq_request *r, avatarq_enqueued *out,
                       char *err, size_t errlen);
/* The same for a JSON document (see avatarq_enqueue_json). */
int avatarq_enqueue_json_ex(avatarq *a, const char *queue, const char *doc,
                            avatarq_enqueued *out, char *err, size_t errlen);

/* Cancels job id. A queued, scheduled or retrying job becomes "cancelled"
 * at once and never runs (its document is dropped where it next surfaces);
 * a running one becomes "cancelled" at once, its result is discarded when
 * it finishes and the files and metadata row it wrote are deleted by its
 * worker (the render itself is not interrupted). before (16 bytes, may be
 * NULL) receives the state it had. Returns 0, 1 when the job was already
 * done, dead or cancelled (nothing changed), AVATARQ_ENOTFOUND,
 * AVATARQ_EPERM (bad id) or AVATARQ_EAGAIN. Enqueueing the id again before
 * its document was dropped takes the cancellation back. */
int avatarq_cancel(avatarq *a, const char *id, char before[16], char *err, size_t errlen);

/* Validates a JSON job document (docs/protocol.md "Job document") like a worker
 * would and enqueues it on queue (NULL = configured). A document without
 * "id" is enqueued as given and id_out receives the derived id the worker
 * will use. Returns 0, AVATARQ_EPERM (message names the field) or
 * AVATARQ_EAGAIN. */
int avatarq_enqueue_json(avatarq *a, const char *queue, const char *doc,
                         char id_out[65], char *err, size_t errlen);

/* Batches: many jobs in one pipeline (for bulk producers such as
 * `avatarq batch`). Each add validates at once (its error is that job's
 * only); valid jobs are held until avatarq_batch_flush() sends them all in
 * one round trip. When AVATARQ_BATCH_MAX jobs are held, add flushes them
 * first, so add may also return AVATARQ_EAGAIN from Redis; whenever add
 * returns an error the job was not added (and those held stay held).
 * avatarq_batch_new returns NULL when out of memory or when queue is not a
 * valid queue name ([A-Za-z0-9._-]{1,64}, the rule of [redis] queue and
 * --queue); queue NULL = the configured queue (the name is copied). */
#define AVATARQ_BATCH_MAX 1000
typedef struct avatarq_batch avatarq_batch;
avatarq_batch *avatarq_batch_new(avatarq *a, const char *queue);
int avatarq_batch_add(avatarq_batch *b, const avatarq_request *r, char id_out[65],
                      char *err, size_t errlen);
int avatarq_batch_add_json(avatarq_batch *b, const char *doc, char id_out[65],
                           char *err, size_t errlen);
/* Sends the held jobs; returns how many were enqueued (>= 0) or < 0. On
 * failure the held jobs stay held, so flush can be called again; a flush
 * cut off midway may already have enqueued some of them, which the next
 * flush enqueues again (at-least-once: same ids, same avatars). */
long avatarq_batch_flush(avatarq_batch *b, char *err, size_t errlen);
/* When the queue reaches [redis] max_queue_length midway, flush returns
 * AVATARQ_EFULL: the jobs sent are gone from the batch, the refused ones
 * stay held (pending) for a later flush. Ids already queued, scheduled,
 * running or retrying are not enqueued twice (see avatarq_enqueue_ex). */
/* Number of jobs held and not yet sent. */
size_t avatarq_batch_pending(const avatarq_batch *b);
/* Frees b, dropping anything not flushed. */
void avatarq_batch_free(avatarq_batch *b);
/* Jobs flushed so far that were no-ops (already queued, scheduled, running
 * or retrying: see avatarq_enqueue_ex). */
size_t avatarq_batch_existing(const avatarq_batch *b);

/* Tracked batches (docs/protocol.md "Batches"): call avatarq_batch_track
 * on a new batch before adding jobs. It creates NS:batch:ID and id_out
 * receives the batch id; every job added afterwards carries "batch": ID and
 * is counted there when it is enqueued (a no-op enqueue of a job already in
 * flight is not part of the batch) and when it ends. callback_url (may be
 * NULL) receives {"batch","state":"complete","total","done","dead",
 * "cancelled","finished_at"} when the batch completes; an NS:events entry
 * (id = the batch id, state batch_done) marks it too. */
int avatarq_batch_track(avatarq_batch *b, const char *callback_url, char id_out[65],
                        char *err, size_t errlen);
/* Flushes, then says no more jobs will come: the batch completes as soon as
 * every job counted in it is done, dead or cancelled (at once if they
 * already are). */
int avatarq_batch_seal(avatarq_batch *b, char *err, size_t errlen);
typedef struct avatarq_batch_info {
    char state[16];          /* open | complete */
    int64_t total, pending, done, dead, cancelled;
    int64_t created_at, finished_at;
    int sealed;
} avatarq_batch_info;
/* NS:batch:ID. AVATARQ_ENOTFOUND when unknown (or expired, result_ttl_s
 * after it completed). */
int avatarq_batch_status(avatarq *a, const char *batch_id, avatarq_batch_info *out,
                         char *err, size_t errlen);

/* ---- following jobs ---- */

/* The job hash NS:job:ID (strings are "" and times 0 when absent). */
typedef struct avatarq_status {
    char state[16];          /* queued | scheduled | running | retrying | done | dead |
                              * cancelled */
    int attempts;
    char queue[65];
    char worker[160];        /* HOST:PID-NONCE of the last worker that ran it */
    char error[512];         /* last error (retrying, dead) */
    int64_t created_at, started_at, finished_at, duration_ms; /* ms since epoch / ms */
    char *outputs;           /* malloc'd JSON of the stored keys, or NULL */
} avatarq_status;

/* Fills st from NS:job:ID. Returns 0, AVATARQ_ENOTFOUND (never enqueued, or
 * its result expired), AVATARQ_EPERM (bad id) or AVATARQ_EAGAIN. On success
 * free st with avatarq_status_free(). */
int avatarq_status_get(avatarq *a, const char *id, avatarq_status *st,
                       char *err, size_t errlen);

/* Frees st->outputs (safe on a zeroed or already freed status). */
void avatarq_status_free(avatarq_status *st);

/* Waits until job id is done, dead or cancelled, up to timeout_ms (negative = no
 * limit), following the NS:events stream (XREAD BLOCK) rather than
 * polling. Returns 0 with st filled when a final state is reached (check
 * st->state: "done" or "dead"), AVATARQ_ETIMEDOUT with st holding the last
 * state seen, AVATARQ_ENOTFOUND when the job does not exist, or another
 * error. st must be freed with avatarq_status_free() after 0 or
 * AVATARQ_ETIMEDOUT. */
int avatarq_wait(avatarq *a, const char *id, long timeout_ms, avatarq_status *st,
                 char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
