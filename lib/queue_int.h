/* queue_int: what the queue modules share and nobody else sees.
 *
 *   queue_conn.c     the handle: connect, AUTH/SELECT, scripts loaded per
 *                    connection, argument vectors, one command, pipelines
 *   queue_scripts.c  every Lua script, in one table indexed by S_*
 *   queue_jobs.c     a job's life: enqueue, cancel, the job hash, promote,
 *                    requeue
 *   queue_batch.c    the worker engine's calls: the cycle (outcomes plus
 *                    the next take), the batch start, the bounded take,
 *                    what a worker holds, several take queues
 *   queue_fleet.c    heartbeats, registration, recovery, workers, control
 *   queue_views.c    what operators read: stats, dead letters, events
 *   queue_dead.c     dead-letter documents (pure JSON, no Redis)
 *   queue_batches.c  tracked batches of jobs (NS:batch:ID): open, seal, read
 *   queue_callbacks.c  completion callbacks: the sender's take, its
 *                    outcome, retries, and return after a sender died
 *
 * Scripts are loaded once per connection (SCRIPT LOAD, one pipeline) and run
 * with EVALSHA; a NOSCRIPT reply (Redis restarted or SCRIPT FLUSH) is answered
 * by resending the same call as EVAL, which also caches the script again.
 * Every key a script touches is passed in KEYS except where the key is only
 * known inside Redis (a job's queue read from its hash; per-job hashes of a
 * batch): those are built from the namespace, so with a {hash tag} namespace
 * they still land in the one slot. */
#ifndef AQ_QUEUE_INT_H
#define AQ_QUEUE_INT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"
#include "rconn.h"

/* Base timeout of one command; a blocking command adds its own wait. */
#define QUEUE_CMD_TIMEOUT_MS 10000
#define QUEUE_KEY_MAX 400
#define QUEUE_ARGS_MAX 48
#define QUEUE_CONTROL_MAXLEN "1000"
/* The recovery lock only saves duplicated work (every step of recovery is
 * atomic on its own), so it may expire early; it must not outlive a killed
 * holder by much, or recovery stalls. */
#define QUEUE_LOCK_MIN_MS 2000
#define QUEUE_PAGE 500

enum {
    S_ENQUEUE,
    S_PROMOTE,
    S_REQUEUE,
    S_FORGET,
    S_UNLOCK,
    S_DEAD_RETRY,
    S_CYCLE,
    S_BURY_BIG,
    S_HELD,
    S_CANCEL,
    S_CB_FINISH,
    S_CB_TAKE,
    S_CB_RETURN,
    S_BATCH_OPEN,
    S_BATCH_SEAL,
    S_COUNT
};

/* The body of each script, by S_* (queue_scripts.c). */
extern const char *const script_body[S_COUNT];

/* ------------------------------------------------------------------ */
/* the handle (change procedure: a new member is set in queue_open or
 * connect_now; nothing here may survive a fork) */

struct queue {
    rconn *rc;                   /* found, TLS, Sentinel, Cluster: lib/rconn.h */
    bool broken;
    int timeout_ms;              /* the socket timeout currently set */
    aq_config cfg;               /* a copy: the caller may reload its own */
    char where[300];             /* "host:port" or the socket path, for messages */
    char sha[S_COUNT][41];
    /* [worker] queues (queue_set_takes): names, weights, and the smooth
     * weighted round robin's running credits */
    int ntake;
    bool take_strict;
    char take_name[QUEUE_TAKE_MAX][72];
    int take_weight[QUEUE_TAKE_MAX];
    int64_t take_credit[QUEUE_TAKE_MAX];
};

/* ---- argument vectors ---- */

#define QUEUE_ARG_KEYS 8

typedef struct qargs {
    int n;
    const char *v[QUEUE_ARGS_MAX];
    size_t l[QUEUE_ARGS_MAX];
    char num[QUEUE_ARGS_MAX][24];
    /* key names made by arg_key: they live exactly as long as the vector
     * that points at them (a name on a shorter-lived stack frame was a
     * real bug once) */
    int nkey;
    char key[QUEUE_ARG_KEYS][QUEUE_KEY_MAX];
} qargs;

/* Appends one argument (bytes, a C string, an integer). A full vector aborts:
 * the vectors are fixed and overflowing one is a programming error. */
void arg_b(qargs *a, const char *p, size_t len);
void arg_s(qargs *a, const char *s);
void arg_i(qargs *a, int64_t v);
/* Appends the key name "NS:" + fmt (queue_keyf), kept in the vector itself
 * (at most QUEUE_ARG_KEYS per vector). */
void arg_key(qargs *a, const queue *q, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends a blocking command's timeout: ms as seconds ("1.500"). */
void arg_secs(qargs *a, int ms);
/* Appends "NS:", from which a script builds the keys it only learns inside
 * Redis (kept in the vector like arg_key's names). */
void arg_ns(qargs *a, const queue *q);
/* Starts an EVALSHA vector for script s with nkeys keys to follow. */
void arg_script(qargs *a, const queue *q, int s, int nkeys);
/* Starts a plain command's vector (a may be reused: nothing of it is kept). */
void arg_cmd(qargs *a, const char *cmd);

/* A growable vector for the batch scripts (queue_cycle, which
 * queue_start_many goes through, and queue_callback_finish). qvec_grow makes room for need more arguments
 * (-1: out of memory); the appenders do not grow it, so size it first.
 * Numbers (qvec_i) live in an array that moves as it grows: qvec_fix points
 * at them once the vector is complete, before it is sent. qvec_head starts
 * an EVALSHA vector (the SHA is filled by q_script_argv) with nkeys keys;
 * the vector points into keys, which must outlive it. */
typedef struct qvec {
    int n, cap;
    const char **v;
    size_t *l;
    char (*num)[24];
} qvec;
int qvec_grow(qvec *a, int need);
void qvec_b(qvec *a, const char *p, size_t len);
void qvec_s(qvec *a, const char *s);
void qvec_i(qvec *a, int64_t x);
void qvec_fix(qvec *a);
void qvec_free(qvec *a);
void qvec_head(qvec *a, char keys[][QUEUE_KEY_MAX], int nkeys);

/* ---- sending ---- */

/* True when s starts with the word `word`. */
bool first_word_is(const char *s, const char *word);
/* Classifies an error reply; marks the handle broken when it should
 * reconnect. Returns the negative code. */
int reply_error(queue *q, const redisReply *r, const char *what, aq_err *e);
/* A lost connection: marks the handle broken, AQ_EAGAIN. */
int transport_error(queue *q, const char *what, aq_err *e);
/* Sets the socket timeout to the base plus extra_ms unless it already is. */
void set_timeout(queue *q, int extra_ms);
bool is_noscript(const redisReply *r);
/* One command; its reply in *out (freeReplyObject), error replies are
 * failures. */
int q_run(queue *q, qargs *a, const char *what, redisReply **out, aq_err *e);
/* A script vector built with arg_script(), falling back to EVAL. */
int q_script(queue *q, int s, qargs *a, const char *what, redisReply **out, aq_err *e);
/* The same over a vector of any length (v[0] and v[1] are filled here). */
int q_script_argv(queue *q, int s, int n, const char **v, size_t *l, const char *what,
                  redisReply **out, aq_err *e);
/* After a pipeline of durable writes: one WAIT covers them all (0 when
 * [redis] min_replicas_ack is 0). */
int q_wait(queue *q, const char *what, aq_err *e);
/* A script whose integer result is all we need. */
int q_script_int(queue *q, int s, qargs *a, const char *what, long long *res, aq_err *e);
/* Pipelines: append, then read each reply (error replies come back as
 * replies); q_read_all discards n replies, the first error wins. */
int q_append(queue *q, qargs *a, const char *what, aq_err *e);
int q_read(queue *q, const char *what, redisReply **out, aq_err *e);
int q_read_all(queue *q, size_t n, const char *what, aq_err *e);

/* ---- small shared helpers ---- */

int events_max(const queue *q);
int dead_max(const queue *q);
int result_ttl(const queue *q);
const char *qname_or_default(const queue *q, const char *qname);
/* "NS:" into out. */
void ns_prefix(const queue *q, char *out, size_t n);
/* Job ids travel into key names: refuse anything a job document could not
 * carry as an id. e may be NULL. */
int check_id(const char *id, bool allow_empty, aq_err *e);
/* An integer or numeric string reply as int64 (0 otherwise). */
int64_t reply_int(const redisReply *r);

/* ---- hashes into structs ---- */

enum { F_STR, F_INT, F_LONG, F_I64, F_DUP };
/* One hash field and where it goes in a struct (size for F_STR arrays). */
typedef struct field_spec {
    const char *name;
    int type;
    size_t off, size;
} field_spec;
/* A table row for member m of struct T, stored from the hash field of the
 * same name: FIELD for numbers and F_DUP, FIELD_STR for char arrays. */
#define FIELD(T, m, type) {#m, type, offsetof(T, m), 0}
#define FIELD_STR(T, m) {#m, F_STR, offsetof(T, m), sizeof ((T *)0)->m}
#define FIELDS_N(t) (sizeof (t) / sizeof (t)[0])
/* Stores every field of a flat HGETALL reply that the table t names into
 * the struct at base. */
void store_fields(void *base, const field_spec *t, size_t n, const redisReply *hash);
/* HGETALL of NS:FAMILY:ID (family "job", "batch") into the struct at base
 * through the table t (n fields): 0, AQ_EPERM for an id that could not be
 * a job's, or AQ_ENOTFOUND "FAMILY ID: not found". */
int q_hash_get(queue *q, const char *family, const char *id, const field_spec *t, size_t n,
               void *base, aq_err *e);

#endif
