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
    const char *queue;       /* queue name; NULL = the configured [redis] queue */
    /* The look options (docs/protocol.md "Emoji, initials, transparency,
     * rounding, formats"); NULL / 0 = absent. */
    const char *emoji;       /* emoji style: exactly one emoji */
    const char *background;  /* solid | linear | radial | transparent */
    const char *emoji_size;  /* small | medium | large */
    int radius;              /* corner rounding, percent 0..50 */
    const char *format;      /* png | webp | svg */
    const char *name;        /* initials style: the name to take initials from */
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
/* Number of jobs held and not yet sent. */
size_t avatarq_batch_pending(const avatarq_batch *b);
/* Frees b, dropping anything not flushed. */
void avatarq_batch_free(avatarq_batch *b);

/* ---- following jobs ---- */

/* The job hash NS:job:ID (strings are "" and times 0 when absent). */
typedef struct avatarq_status {
    char state[16];          /* queued | running | retrying | done | dead */
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

/* Waits until job id is done or dead, up to timeout_ms (negative = no
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
