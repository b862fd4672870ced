/* queue_dead: dead-letter documents (pure JSON, no Redis). */
#include "queue_dead.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

/* ---- dead documents ---- */

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

char *queue_dead_doc(const char *doc, size_t len, const char *error, int64_t failed_at,
                     int attempts)
{
    /* A document over the protocol's 64 KiB is never kept whole, object or not. */
    json_t *o = len <= QUEUE_DEAD_DOC_MAX ? json_loadb(doc, len, JSON_ALLOW_NUL, NULL) : NULL;
    if (!o || !json_is_object(o)) {
        json_decref(o);
        o = json_object();
        if (!o)
            return NULL;
        /* Only the head of a huge non-object document is kept, so a flood
         * of garbage cannot grow NS:dead without bound; raw_bytes tells the
         * whole size. */
        size_t keep = len < QUEUE_DEAD_RAW_MAX ? len : QUEUE_DEAD_RAW_MAX;
        json_object_set_new(o, "raw", json_string_lossy(doc, keep));
        if (len > keep)
            json_object_set_new(o, "raw_bytes", json_integer((json_int_t)len));
    }
    json_object_set_new(o, "error", json_string_lossy(error ? error : "", error ? strlen(error) : 0));
    json_object_set_new(o, "failed_at", json_integer(failed_at));
    json_object_set_new(o, "attempts", json_integer(attempts));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(o);
    return s;
}

char *queue_dead_doc_big(const char *head, size_t head_len, size_t size, const char *sha256,
                         const char *error, int64_t failed_at, int attempts)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    size_t keep = head_len < QUEUE_DEAD_RAW_MAX ? head_len : QUEUE_DEAD_RAW_MAX;
    json_object_set_new(o, "raw", json_string_lossy(head, keep));
    json_object_set_new(o, "raw_bytes", json_integer((json_int_t)size));
    json_object_set_new(o, "raw_sha256", json_string(sha256));
    json_object_set_new(o, "error", json_string_lossy(error ? error : "", error ? strlen(error) : 0));
    json_object_set_new(o, "failed_at", json_integer(failed_at));
    json_object_set_new(o, "attempts", json_integer(attempts));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
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

/* The keys a wrapper of a non-object document may have ("raw_bytes": the
 * worker's note that it kept only the head of a huge document). */
static const char *const wrapper_keys[] = {"raw", "error", "failed_at", "attempts", "raw_bytes",
                                           "raw_sha256"};

static bool is_wrapper(json_t *o, const json_t *raw)
{
    if (!json_is_string(raw))
        return false;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof wrapper_keys / sizeof wrapper_keys[0]; i++)
            known |= strcmp(key, wrapper_keys[i]) == 0;
        if (!known)
            return false;
    }
    return true;
}

char *queue_dead_unwrap(const char *dead, size_t len, size_t *outlen, char id[65])
{
    id[0] = '\0';
    json_t *o = json_loadb(dead, len, JSON_ALLOW_NUL, NULL);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return copy_bytes(dead, len, outlen); /* not one of ours: as it is */
    }
    json_t *raw = json_object_get(o, "raw");
    json_t *vid = json_object_get(o, "id");
    if (json_is_string(vid) && job_id_valid(json_string_value(vid)))
        snprintf(id, 65, "%s", json_string_value(vid));
    char *s;
    if (is_wrapper(o, raw)) {
        s = copy_bytes(json_string_value(raw), json_string_length(raw), outlen);
    } else {
        json_object_del(o, "error");
        json_object_del(o, "failed_at");
        json_object_del(o, "attempts");
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            *outlen = strlen(s); /* jansson escapes any NUL as \u0000 */
    }
    json_decref(o);
    return s;
}

