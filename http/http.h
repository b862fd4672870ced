/* avatarq-http: the HTTP face of avatarq (docs/protocol.md "HTTP server").
 * One libmicrohttpd daemon with a pool of [http] threads; every request is
 * matched against the route table in server.c and answered by one handler.
 * Each server thread owns its Redis, database and storage handles (hctx),
 * opened on first use, so handlers never share a connection or lock one.
 * Reads from Redis and the database are the library's own calls (queue.h,
 * meta.h); jobs go into the queue like any producer's, never around it. */
#ifndef AQ_HTTP_H
#define AQ_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "avatar.h"
#include "buf.h"
#include "config.h"
#include "job.h"
#include "meta.h"
#include "queue.h"
#include "storage.h"

#define HTTP_BODY_MAX (1024 * 1024) /* bigger request bodies get 413 */
#define HTTP_FILE_SLOTS 64          /* per-thread cache of open images (fds held) */
#define HTTP_WAIT_MAX_S 300         /* ?wait=1&timeout= ceiling */
#define HTTP_QUEUES_MAX 256         /* queues /metrics reports */

/* What every thread reads: set once before the daemon starts. */
typedef struct http_global {
    const aq_config *cfg;
    job_limits limits;
    int root_fd;             /* the local storage root (O_PATH), -1 for S3 */
    bool local;              /* [storage] backend = local */
    int64_t started_ms;
} http_global;
extern http_global G;

/* One stored image a thread served lately: its identity on disk, its
 * validators, and the ready responses (an fd response sent with sendfile,
 * and a 304), reused while the file is the same inode, mtime and size. Like
 * nginx's open_file_cache: a cached GET costs one fstatat. */
typedef struct http_file {
    char key[600];           /* storage key, "" when the slot is free */
    dev_t dev;
    ino_t ino;
    int64_t mtime_ns;
    off_t size;
    char etag[68];           /* "\"<64 hex>\"" */
    char last_modified[40];  /* the mtime as an HTTP date */
    struct MHD_Response *ok, *not_modified; /* NULL until built */
} http_file;

/* A server thread's own handles, opened lazily; a failed open is retried on
 * a later request (Redis or the database may come back). */
typedef struct hctx {
    queue *q;
    meta db;
    bool db_open;
    storage store;
    bool store_open;
    avatar_ctx av;           /* for /render: reused image and PNG buffers */
    meta_row row;            /* scratch for metadata lookups */
    http_file files[HTTP_FILE_SLOTS];
    struct hctx *next;       /* the list of every thread's context */
} hctx;

/* The calling thread's context (created on first use; NULL when out of
 * memory). */
hctx *hctx_get(void);
/* Frees every context (after the daemon stopped). */
void hctx_free_all(void);
/* Empties a file slot, releasing its responses. */
void hctx_file_drop(http_file *f);
/* The thread's Redis handle, connecting if needed; NULL with e set (AQ_EAGAIN). */
queue *hctx_queue(hctx *c, aq_err *e);
/* The thread's metadata handle; NULL with e set. */
meta *hctx_meta(hctx *c, aq_err *e);
/* The thread's storage handle; NULL with e set. */
storage *hctx_storage(hctx *c, aq_err *e);

/* One request as the handlers see it. */
typedef struct hreq {
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    const char *cap[2];      /* path captures, in order ({id}, {size}, ...) */
    size_t cap_len[2];
    buf body;                /* POST/DELETE body (at most HTTP_BODY_MAX) */
    bool too_large;
    int route;               /* index into the route table, for counters */
    int status;              /* what was answered (for counters) */
    char capbuf[2][300];
} hreq;

/* Handlers answer the request themselves (through the reply helpers below)
 * and return what MHD_queue_response returned. */
typedef enum MHD_Result (*http_handler)(hreq *r);

/* ---- replies (server.c) ---- */

/* Adds the CORS headers for this request's Origin, when allowed. */
void http_cors(hreq *r, struct MHD_Response *resp);
/* Queues resp with status (and CORS), destroys resp. */
enum MHD_Result http_send(hreq *r, int status, struct MHD_Response *resp);
/* Queues a cached response that is kept (no CORS headers added: it is
 * shared by every request). */
enum MHD_Result http_send_kept(hreq *r, int status, struct MHD_Response *resp);
/* True when this request needs CORS headers on its reply. */
bool http_wants_cors(hreq *r);
/* A JSON reply; takes the reference to j. */
enum MHD_Result http_json(hreq *r, int status, json_t *j);
/* {"error": message, "status": status}. */
enum MHD_Result http_error(hreq *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The error of a library call: AQ_EAGAIN 503, AQ_ENOTFOUND 404, else 400/500. */
enum MHD_Result http_fail(hreq *r, const aq_err *e, int perm_status);
/* A query argument or NULL. */
const char *http_arg(hreq *r, const char *name);
/* A request header or NULL. */
const char *http_header(hreq *r, const char *name);
/* Parses query argument name as an integer in [min,max] (def when absent);
 * on a bad value answers 400 naming it and returns false. */
bool http_arg_int(hreq *r, const char *name, long min, long max, long def, long *out,
                  enum MHD_Result *res);

/* ---- handlers ---- */
enum MHD_Result http_avatar_image(hreq *r);   /* images.c */
enum MHD_Result http_render(hreq *r);         /* images.c */
enum MHD_Result http_jobs_post(hreq *r);      /* api.c */
enum MHD_Result http_job_get(hreq *r);
enum MHD_Result http_avatars_list(hreq *r);
enum MHD_Result http_avatar_get(hreq *r);
enum MHD_Result http_avatar_delete(hreq *r);
enum MHD_Result http_stats(hreq *r);
enum MHD_Result http_workers(hreq *r);
enum MHD_Result http_dead_list(hreq *r);
enum MHD_Result http_dead_retry(hreq *r);
enum MHD_Result http_control(hreq *r);
enum MHD_Result http_metrics(hreq *r);        /* metrics.c */
enum MHD_Result http_health(hreq *r);
enum MHD_Result http_dashboard(hreq *r);      /* dashboard.c */

/* ---- request counters for /metrics (server.c) ---- */
/* Calls fn for every (route label, method, status) with a non-zero count. */
void http_counters(void (*fn)(const char *route, int status, uint64_t n, void *ud), void *ud);

/* ---- the daemon (server.c) ---- */
/* Starts listening on [http] listen with the route table; returns the
 * daemon or NULL with e set. */
struct MHD_Daemon *http_start(const aq_config *cfg, aq_err *e);

/* ---- the stats sampler (sampler.c) ---- */
/* Starts the thread that records the queue counters every 2 s (5 minutes
 * kept); 0 or -1. */
int http_sampler_start(void);
/* Stops and joins it (safe when it never started). */
void http_sampler_stop(void);
/* The samples, oldest first: [{"t_ms", "queued", "processing", "done"}]. */
json_t *http_sampler_json(void);
/* The queue names the sampler's last SCAN found (up to max) into out. */
size_t http_sampler_queues(char (*out)[80], size_t max);

/* Milliseconds since the epoch. */
int64_t http_now_ms(void);

#endif
