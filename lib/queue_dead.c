/* queue_dead: dead-letter documents (pure JSON, no Redis).
 *
 * Two forms, told apart by one rule: a dead letter with a "raw" key is a
 * wrapper, and every other one is the job object itself with "error",
 * "failed_at" and "attempts" added. The rule holds because a document that
 * would break it (an object with its own "raw" key) is always wrapped, so
 * an invalid document shaped like a wrapper can never come back from
 * `dead retry` as another document. */
#include "queue_dead.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "job.h"

/* A string jansson accepts: the bytes themselves when they are UTF-8, else a
 * copy with every non-ASCII byte replaced by '?' (a dead letter must stay
 * readable JSON even for a document of garbage). */
static json_t *json_string_lossy(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

/* Adds error, failed_at and attempts to o and serialises it (o is freed). */
static char *finish(json_t *o, const char *error, int64_t failed_at, int attempts)
{
    json_object_set_new(o, "error", json_string_lossy(error ? error : "", error ? strlen(error) : 0));
    json_object_set_new(o, "failed_at", json_integer(failed_at));
    json_object_set_new(o, "attempts", json_integer(attempts));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

/* The wrapper: the first bytes seen (at most QUEUE_DEAD_RAW_MAX), the size,
 * and the SHA-256 when only a head is kept. */
static json_t *wrapper(const char *head, size_t head_len, size_t size, const char *sha256)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    size_t keep = head_len < QUEUE_DEAD_RAW_MAX ? head_len : QUEUE_DEAD_RAW_MAX;
    json_object_set_new(o, "raw", json_string_lossy(head, keep));
    json_object_set_new(o, "raw_bytes", json_integer((json_int_t)size));
    if (keep < size && sha256 && *sha256)
        json_object_set_new(o, "raw_sha256", json_string(sha256));
    return o;
}

static char *dead_doc(const char *doc, size_t len, bool refused, const char *error,
                      int64_t failed_at, int attempts)
{
    json_t *o = len <= QUEUE_DEAD_DOC_MAX ? json_loadb(doc, len, JSON_ALLOW_NUL, NULL) : NULL;
    bool whole = json_is_object(o) && !json_object_get(o, "raw") &&
                 !(refused && len > QUEUE_DEAD_RAW_MAX);
    if (!whole) {
        json_decref(o);
        char sum[65];
        if (len > QUEUE_DEAD_RAW_MAX)
            hash_sha256_hex(doc, len, sum);
        o = wrapper(doc, len, len, sum);
        if (!o)
            return NULL;
    }
    return finish(o, error, failed_at, attempts);
}

char *queue_dead_doc(const char *doc, size_t len, const char *error, int64_t failed_at,
                     int attempts)
{
    return dead_doc(doc, len, false, error, failed_at, attempts);
}

char *queue_dead_doc_refused(const char *doc, size_t len, const char *error,
                             int64_t failed_at)
{
    return dead_doc(doc, len, true, error, failed_at, 1);
}

char *queue_dead_doc_big(const char *head, size_t head_len, size_t size, const char *sha256,
                         const char *error, int64_t failed_at, int attempts)
{
    json_t *o = wrapper(head, head_len, size, sha256);
    return o ? finish(o, error, failed_at, attempts) : NULL;
}

/* A malloc'd copy of n bytes (plus a NUL), its length in *outlen. */
static char *copy_bytes(const char *p, size_t n, size_t *outlen)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    *outlen = n;
    return s;
}

static int unwrap_raw(json_t *o, json_t *raw, char **out, size_t *outlen, aq_err *e)
{
    if (!json_is_string(raw))
        return err_set(e, AQ_EPERM, "dead letter: \"raw\" is not a string");
    size_t kept = json_string_length(raw);
    json_t *bytes = json_object_get(o, "raw_bytes");
    if (json_is_integer(bytes) && (size_t)json_integer_value(bytes) != kept)
        return err_set(e, AQ_EPERM, "dead letter keeps only the first %zu of %lld bytes; "
                       "it cannot be retried", kept, (long long)json_integer_value(bytes));
    *out = copy_bytes(json_string_value(raw), kept, outlen);
    return *out ? 0 : err_set(e, AQ_EAGAIN, "dead letter: out of memory");
}

int queue_dead_unwrap(const char *dead, size_t len, char **out, size_t *outlen, char id[65],
                      aq_err *e)
{
    *out = NULL;
    id[0] = '\0';
    json_t *o = json_loadb(dead, len, JSON_ALLOW_NUL, NULL);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        *out = copy_bytes(dead, len, outlen); /* not one of ours: as it is */
        return *out ? 0 : err_set(e, AQ_EAGAIN, "dead letter: out of memory");
    }
    json_t *raw = json_object_get(o, "raw");
    json_t *vid = json_object_get(o, "id");
    int rc = 0;
    if (raw) {
        rc = unwrap_raw(o, raw, out, outlen, e);
    } else {
        if (json_is_string(vid) && job_id_valid(json_string_value(vid)))
            snprintf(id, 65, "%s", json_string_value(vid));
        json_object_del(o, "error");
        json_object_del(o, "failed_at");
        json_object_del(o, "attempts");
        *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (*out)
            *outlen = strlen(*out); /* jansson escapes any NUL as \u0000 */
        else
            rc = err_set(e, AQ_EAGAIN, "dead letter: out of memory");
    }
    json_decref(o);
    return rc;
}
