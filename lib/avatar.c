#include "avatar.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "pngenc.h"
#include "retry.h"
#include "webpenc.h"

void avatar_init(avatar_ctx *ctx, storage *store, meta *db, const char *prefix,
                 const char *worker)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->store = store;
    ctx->db = db;
    ctx->prefix = prefix ? prefix : "";
    ctx->worker = worker ? worker : "";
}

void avatar_free(avatar_ctx *ctx)
{
    render_image_free(&ctx->img);
    buf_free(&ctx->png);
    for (size_t i = 0; i < JOB_SIZES_MAX; i++)
        buf_free(&ctx->out[i]);
}

int avatar_png(avatar_ctx *ctx, const job_request *r, int size, aq_err *e)
{
    buf_reset(&ctx->png);
    if (r->format == JOB_FORMAT_SVG) {
        if (render_svg(&r->render, size, &ctx->png) < 0)
            return err_set(e, AQ_EPERM, "rendering svg: %s", render_error());
        return 0;
    }
    if (render_make(&r->render, size, &ctx->img) < 0)
        return err_set(e, AQ_EPERM, "rendering %d px: %s", size,
                       *render_error() ? render_error() : "size out of range or out of memory");
    return r->format == JOB_FORMAT_WEBP ? webpenc_encode(&ctx->img, &ctx->png, e)
                                        : pngenc_encode(&ctx->img, &ctx->png, e);
}

void avatar_key(const char *prefix, const char *id, int size, char *out, size_t n)
{
    avatar_key_fmt(prefix, id, size, JOB_FORMAT_PNG, out, n);
}

void avatar_key_fmt(const char *prefix, const char *id, int size, job_format f, char *out, size_t n)
{
    char file[32];
    if (f == JOB_FORMAT_SVG)
        snprintf(file, sizeof file, "avatar.svg");
    else
        snprintf(file, sizeof file, "%d.%s", size, job_format_ext(f));
    if (prefix && *prefix)
        snprintf(out, n, "%s/%s/%s", prefix, id, file);
    else
        snprintf(out, n, "%s/%s", id, file);
}

/* Copies s into a fixed metadata field, "" for NULL. */
static void field(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

/* Serialises a JSON value into a fixed metadata field; fails rather than
 * truncating, since a cut JSON text would be corrupt. */
static int json_field(char *dst, size_t n, json_t *v, aq_err *e, const char *what)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        return err_set(e, AQ_EPERM, "%s: out of memory", what);
    size_t len = strlen(s);
    if (len >= n) {
        free(s);
        return err_set(e, AQ_EPERM, "%s: %zu bytes do not fit the metadata row", what, len);
    }
    memcpy(dst, s, len + 1);
    free(s);
    return 0;
}

/* Fills the metadata row of a generated avatar from the request and the
 * per-size results gathered while storing. */
static int fill_row(avatar_ctx *ctx, const job_request *r, int attempts, json_t *keys,
                    json_t *sums, int64_t bytes, meta_row *row, aq_err *e)
{
    memset(row, 0, sizeof *row);
    field(row->id, sizeof row->id, r->id);
    field(row->seed, sizeof row->seed, r->seed);
    field(row->style, sizeof row->style, render_style_name(r->style));
    char hex[8];
    color_hex(r->render.primary, hex);
    field(row->primary_color, sizeof row->primary_color, hex);
    color_hex(r->render.foreign, hex);
    field(row->foreign_color, sizeof row->foreign_color, hex);
    field(row->scheme, sizeof row->scheme, r->scheme);
    row->angle = r->angle;
    field(row->filter, sizeof row->filter, color_filter_name(r->filter));
    field(row->format, sizeof row->format, job_format_name(r->format));
    field(row->storage, sizeof row->storage, storage_name(ctx->store));
    field(row->location, sizeof row->location, storage_location(ctx->store));
    field(row->worker, sizeof row->worker, ctx->worker);
    row->bytes = bytes;
    row->attempts = attempts;
    row->generated_at = now_ms();
    row->created_at = r->created_at > 0 ? r->created_at : row->generated_at;

    json_t *sizes = json_array();
    for (size_t i = 0; i < r->nsizes; i++)
        json_array_append_new(sizes, json_integer(r->sizes[i]));
    int rc = json_field(row->sizes, sizeof row->sizes, sizes, e, "sizes");
    json_decref(sizes);
    if (rc == 0)
        rc = json_field(row->keys, sizeof row->keys, keys, e, "keys");
    if (rc == 0)
        rc = json_field(row->sha256, sizeof row->sha256, sums, e, "sha256");
    return rc;
}

/* The files of r: one per size (SVG: one for every size). */
static size_t file_count(const job_request *r)
{
    return r->format == JOB_FORMAT_SVG && r->nsizes > 0 ? 1 : r->nsizes;
}

/* Renders each file of r into ctx->out[i], names it keys[i] and
 * describes it in items[i]. e names the key that failed. */
static int render_files(avatar_ctx *ctx, const job_request *r, char (*keys)[512],
                        storage_item *items, aq_err *e)
{
    for (size_t i = 0; i < file_count(r); i++) {
        avatar_key_fmt(ctx->prefix, r->id, r->sizes[i], r->format, keys[i], sizeof keys[i]);
        int rc = avatar_png(ctx, r, r->sizes[i], e);
        if (rc) {
            err_prefix(e, "%s: ", keys[i]);
            return rc;
        }
        buf t = ctx->out[i]; /* keep this file, reuse the last one's memory */
        ctx->out[i] = ctx->png;
        ctx->png = t;
        items[i] = (storage_item){keys[i], ctx->out[i].data, ctx->out[i].len,
                                  job_format_mime(r->format)};
    }
    return 0;
}

/* Takes ctx->gate when there is one (a signal cannot make it fail). */
static void gate_enter(avatar_ctx *ctx)
{
    while (ctx->gate && sem_wait(ctx->gate) != 0 && errno == EINTR)
        ;
}

/* Leaves the gate, and with it the render buffer (the next job through
 * the gate may be another thread's). */
static void gate_leave(avatar_ctx *ctx)
{
    if (!ctx->gate)
        return;
    render_image_free(&ctx->img);
    sem_post(ctx->gate);
}

/* Renders each file of r into ctx->out[i] and names it keys[i], then
 * stores them all with one storage_put_many (S3 uploads them in parallel).
 * e names the key that failed. */
static int render_and_put(avatar_ctx *ctx, const job_request *r, char (*keys)[512], aq_err *e)
{
    size_t n = file_count(r), failed = 0;
    storage_item items[JOB_SIZES_MAX];
    gate_enter(ctx);
    int rc = render_files(ctx, r, keys, items, e);
    gate_leave(ctx);
    if (rc)
        return rc;
    rc = storage_put_many(ctx->store, items, n, &failed, e);
    if (rc)
        err_prefix(e, "%s: ", keys[failed]);
    return rc;
}

int avatar_store(avatar_ctx *ctx, const job_request *r, int attempts, meta_row *row,
                 char **outputs, aq_err *e)
{
    if (outputs)
        *outputs = NULL;
    char keys[JOB_SIZES_MAX][512];
    int rc = render_and_put(ctx, r, keys, e);
    if (rc)
        return rc;
    json_t *keyobj = json_object(), *sums = json_object();
    int64_t bytes = 0;
    for (size_t i = 0; i < r->nsizes; i++) {
        size_t f = i < file_count(r) ? i : 0; /* SVG: every size is file 0 */
        bytes += f == i ? (int64_t)ctx->out[f].len : 0;
        if (!row && !outputs)
            continue; /* nobody reads the keys and digests (render -d) */
        char name[16], sum[65];
        snprintf(name, sizeof name, "%d", r->sizes[i]);
        hash_sha256_hex(ctx->out[f].data, ctx->out[f].len, sum);
        json_object_set_new(keyobj, name, json_string(keys[f]));
        json_object_set_new(sums, name, json_string(sum));
    }
    if (row)
        rc = fill_row(ctx, r, attempts, keyobj, sums, bytes, row, e);
    if (rc == 0 && outputs) {
        *outputs = json_dumps(keyobj, JSON_COMPACT | JSON_SORT_KEYS);
        if (!*outputs)
            rc = err_set(e, AQ_EAGAIN, "outputs: out of memory");
    }
    json_decref(keyobj);
    json_decref(sums);
    return rc;
}

int avatar_generate(avatar_ctx *ctx, const job_request *r, int attempts,
                    char **outputs, aq_err *e)
{
    meta_row *row = ctx->db ? malloc(sizeof *row) : NULL;
    if (ctx->db && !row)
        return err_set(e, AQ_EAGAIN, "metadata: out of memory");
    int rc = avatar_store(ctx, r, attempts, row, outputs, e);
    if (rc == 0 && row && (rc = meta_upsert(ctx->db, row, e)) != 0)
        err_prefix(e, "metadata %s: ", r->id);
    free(row);
    if (rc != 0 && outputs) {
        free(*outputs);
        *outputs = NULL;
    }
    return rc;
}

/* The most sizes a metadata row can make a delete visit: a row is data
 * (anyone with database access could have written it), so it bounds the work
 * it can cause as well as the keys it can name. */
#define ROW_SIZES_MAX 64

/* Removes PREFIX/ID/SIZE.png for one size; the key is built from the id
 * and an integer, never taken from stored data. */
static int delete_size(avatar_ctx *ctx, const char *id, long long size, aq_err *e)
{
    if (size < RENDER_MIN_SIZE || size > RENDER_MAX_SIZE)
        return 0; /* no job could have made it, so there is nothing to delete */
    char key[512];
    avatar_key(ctx->prefix, id, (int)size, key, sizeof key);
    return storage_del(ctx->store, key, e);
}

/* A size from a row's "keys" object name: decimal digits only. */
static long long size_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 6 || strspn(name, "0123456789") != n)
        return -1;
    return atoll(name);
}

/* Deletes the files of the sizes a metadata row lists (the names of its
 * "keys" object and its "sizes" array). The row's key strings are ignored:
 * a row saying {"1":"important.txt"} must not delete important.txt. */
static int delete_row_sizes(avatar_ctx *ctx, const meta_row *row, aq_err *e)
{
    json_t *keys = json_loads(row->keys, 0, NULL), *sizes = json_loads(row->sizes, 0, NULL);
    const char *name;
    json_t *v;
    size_t i, seen = 0;
    int rc = 0;
    if (json_is_object(keys))
        json_object_foreach(keys, name, v) {
            if (rc != 0 || ++seen > ROW_SIZES_MAX)
                break;
            rc = delete_size(ctx, row->id, size_name(name), e);
        }
    if (json_is_array(sizes))
        json_array_foreach(sizes, i, v) {
            if (rc != 0 || ++seen > 2 * ROW_SIZES_MAX)
                break;
            if (json_is_integer(v))
                rc = delete_size(ctx, row->id, json_integer_value(v), e);
        }
    json_decref(keys);
    json_decref(sizes);
    return rc;
}

int avatar_delete(avatar_ctx *ctx, const job_request *r, aq_err *e)
{
    int rc = 0;
    if (ctx->db) {
        meta_row *row = malloc(sizeof *row);
        if (!row)
            return err_set(e, AQ_EAGAIN, "metadata: out of memory");
        rc = meta_get(ctx->db, r->id, row, e);
        if (rc == 0)
            rc = delete_row_sizes(ctx, row, e);
        else if (rc == AQ_ENOTFOUND)
            rc = 0;
        free(row);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < r->nsizes && rc == 0; i++) {
        char key[512];
        avatar_key_fmt(ctx->prefix, r->id, r->sizes[i], r->format, key, sizeof key);
        rc = storage_del(ctx->store, key, e);
    }
    if (rc == 0 && ctx->db && (rc = meta_del(ctx->db, r->id, e)) != 0)
        err_prefix(e, "metadata %s: ", r->id);
    return rc;
}
