/* avatar: one job's effects, shared by the worker and the offline CLI:
 * render every size, encode, store under PREFIX/ID/SIZE.png, record metadata.
 * Idempotent: doing it twice leaves the same bytes and one row. */
#ifndef AQ_AVATAR_H
#define AQ_AVATAR_H

#include <semaphore.h>

#include "buf.h"
#include "error.h"
#include "job.h"
#include "meta.h"
#include "render.h"
#include "storage.h"

typedef struct avatar_ctx {
    storage *store;        /* where PNGs go */
    meta *db;              /* NULL: no metadata (offline render) */
    const char *prefix;    /* [storage] prefix; "" for none */
    const char *worker;    /* recorded in metadata */
    render_image img;      /* reused across jobs */
    buf png;               /* reused across jobs */
    buf out[JOB_SIZES_MAX]; /* avatar_store: each size's file, all held
                               until they are uploaded together */
    sem_t *gate;           /* NULL, or taken around avatar_store's rendering
                              (a process with many job threads renders on
                              as many at once as it has cores, and img is
                              freed after each job, so memory follows the
                              cores, not the threads) */
} avatar_ctx;

/* Sets up ctx (no allocation yet). */
void avatar_init(avatar_ctx *ctx, storage *store, meta *db, const char *prefix,
                 const char *worker);
void avatar_free(avatar_ctx *ctx);

/* Renders one size of r into ctx->png, encoded in r->format (PNG, WebP,
 * or SVG, which is the same document for every size). Returns 0 or
 * AQ_EPERM with render_error()'s reason. */
int avatar_png(avatar_ctx *ctx, const job_request *r, int size, aq_err *e);

/* Writes "PREFIX/ID/SIZE.png" (or "ID/SIZE.png" with no prefix) to out. */
void avatar_key(const char *prefix, const char *id, int size, char *out, size_t n);
/* The same for format f: "PREFIX/ID/SIZE.webp", and "PREFIX/ID/avatar.svg"
 * (one file for every size) for SVG. */
void avatar_key_fmt(const char *prefix, const char *id, int size, job_format f, char *out, size_t n);

/* Renders and stores every size of r; fills *row (when not NULL) with the
 * metadata row to record (attempts in it) without writing it, and *outputs
 * (may be NULL) as avatar_generate does. For callers that group the
 * metadata writes of many jobs (the worker engine). */
int avatar_store(avatar_ctx *ctx, const job_request *r, int attempts, meta_row *row,
                 char **outputs, aq_err *e);

/* Generates every size of r, stores them, then upserts the metadata row
 * (attempts recorded). *outputs receives a malloc'd JSON object
 * {"32":"avatars/ID/32.png",...} for the job hash (outputs may be NULL).
 * Errors carry the storage/database classification. */
int avatar_generate(avatar_ctx *ctx, const job_request *r, int attempts,
                    char **outputs, aq_err *e);

/* Removes the files of id and its metadata row. Only keys derived from the
 * id, PREFIX/ID/SIZE.png, are ever deleted: for the sizes the row lists and
 * for r->sizes; the key strings stored in the row are never trusted. */
int avatar_delete(avatar_ctx *ctx, const job_request *r, aq_err *e);

#endif
