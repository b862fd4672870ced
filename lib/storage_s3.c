/* storage_s3: the storage backend for S3 and compatible stores, on top of
 * lib/s3 (which signs, checksums, classifies and retries). Objects live at
 * the key the caller gives (PREFIX/ID/SIZE.png) in [storage.s3] bucket. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3.h"
#include "storage.h"

typedef struct s3_store {
    s3 *client;
    char bucket[128];
    char prefix[128];            /* [storage] prefix, for the health probe */
} s3_store;

/* The settings that must be present before we try the network; messages
 * name the key (never a secret's value). */
static int require_settings(const aq_config *c, aq_err *e)
{
    static const struct {
        size_t off;
        const char *what;
    } required[] = {
        {offsetof(aq_config, storage.s3.endpoint), "[storage.s3] endpoint is not set"},
        {offsetof(aq_config, storage.s3.bucket), "[storage.s3] bucket is not set"},
        {offsetof(aq_config, storage.s3.access_key),
         "[storage.s3] access_key is not set (nor AWS_ACCESS_KEY_ID)"},
        {offsetof(aq_config, storage.s3.secret_key),
         "[storage.s3] secret_key is not set (nor AWS_SECRET_ACCESS_KEY)"},
    };
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (((const char *)c + required[i].off)[0] == '\0')
            return err_set(e, AQ_EPERM, "%s", required[i].what);
    return 0;
}

/* A client for c; checked (bucket reachable, credentials accepted) when
 * check. */
static int s3s_connect(const aq_config *c, bool check, void **st, aq_err *e)
{
    int rc = require_settings(c, e);
    if (rc)
        return rc;
    const char *ca = c->storage.s3.ca_file;
    if (*ca && access(ca, R_OK) != 0)
        return err_set(e, AQ_EPERM, "[storage.s3] ca_file: cannot read %s: %s", ca, strerror(errno));
    s3_store *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, AQ_EAGAIN, "storage s3: out of memory");
    snprintf(s->bucket, sizeof s->bucket, "%s", c->storage.s3.bucket);
    snprintf(s->prefix, sizeof s->prefix, "%s", c->storage.prefix);
    s3_opts o = {
        .endpoint = c->storage.s3.endpoint,
        .region = c->storage.s3.region,
        .bucket = c->storage.s3.bucket,
        .access_key = c->storage.s3.access_key,
        .secret_key = c->storage.s3.secret_key,
        .path_style = c->storage.s3.path_style,
        .timeout_ms = c->storage.s3.timeout_ms,
        .retries = c->storage.s3.retries,
        .ca_file = *ca ? ca : NULL,
        /* (retries + 1) x timeout_ms can outlast [worker] job_timeout_s (the
         * defaults do: 6 x 10 s > 60 s), and then the supervisor kills the
         * worker and the job is recovered instead of retried. One call gets
         * at most half the job's time, leaving room for the other sizes;
         * past that it returns AQ_EAGAIN and the job takes the retry path.
         * (job_timeout_s is at most a day: no overflow.) */
        .budget_ms = c->worker.job_timeout_s > 0 ? c->worker.job_timeout_s * 500 : 0,
    };
    s->client = s3_open(&o, e);
    if (!s->client) {
        free(s);
        return err_prefix(e, "[storage.s3] ");
    }
    /* Start-up fails here, clearly, when the endpoint is unreachable, the
     * bucket is missing or the credentials are refused: better than every
     * job going dead later. */
    rc = check ? s3_check(s->client, e) : 0;
    if (rc) {
        err_prefix(e, "storage s3: cannot use bucket '%s' at %s: ", s->bucket,
                   c->storage.s3.endpoint);
        s3_close(s->client);
        free(s);
        return rc;
    }
    *st = s;
    return 0;
}

static int s3s_open(const aq_config *c, void **st, aq_err *e)
{
    return s3s_connect(c, true, st, e);
}

static int s3s_open_more(const aq_config *c, void **st, aq_err *e)
{
    return s3s_connect(c, false, st, e);
}

static int s3s_put(void *st, const char *key, const void *data, size_t len,
                   const char *content_type, aq_err *e)
{
    s3_store *s = st;
    int rc = storage_key_check(key, e);
    return rc ? rc : s3_put(s->client, key, data, len, content_type, e);
}

/* The keys were checked by storage_put_many; a batch goes to s3_put_many
 * in pieces of a fixed size, copied into its own item type. */
static int s3s_put_many(void *st, const storage_item *items, size_t n, size_t *failed, aq_err *e)
{
    s3_store *s = st;
    enum { PIECE = 16 };
    s3_object objs[PIECE];
    for (size_t base = 0; base < n; base += PIECE) {
        size_t k = n - base < PIECE ? n - base : PIECE, bad = 0;
        for (size_t i = 0; i < k; i++) {
            const storage_item *it = &items[base + i];
            objs[i] = (s3_object){it->key, it->data, it->len, it->content_type};
        }
        int rc = s3_put_many(s->client, objs, k, &bad, e);
        if (rc) {
            *failed = base + bad;
            return rc;
        }
    }
    return 0;
}

static int s3s_get(void *st, const char *key, buf *out, aq_err *e)
{
    s3_store *s = st;
    int rc = storage_key_check(key, e);
    return rc ? rc : s3_get(s->client, key, out, NULL, 0, e);
}

static int s3s_del(void *st, const char *key, aq_err *e)
{
    s3_store *s = st;
    int rc = storage_key_check(key, e);
    return rc ? rc : s3_delete(s->client, key, e);
}

/* Reachable and readable (list), then writable: a small probe object under
 * PREFIX/.health/ is written and removed again. */
static int s3s_check(void *st, aq_err *e)
{
    s3_store *s = st;
    int rc = s3_check(s->client, e);
    if (rc)
        return rc;
    char host[64] = "host", key[300];
    gethostname(host, sizeof host - 1);
    snprintf(key, sizeof key, "%s%s.health/%s-%ld", s->prefix, s->prefix[0] ? "/" : "", host,
             (long)getpid());
    static const char probe[] = "avatarq health probe\n";
    if (s3_put(s->client, key, probe, sizeof probe - 1, "text/plain", e) != 0)
        return err_prefix(e, "storage s3: bucket '%s' is not writable: ", s->bucket);
    return s3_delete(s->client, key, e);
}

static const char *s3s_location(void *st)
{
    return ((s3_store *)st)->bucket;
}

static void s3s_close(void *st)
{
    s3_store *s = st;
    if (!s)
        return;
    s3_close(s->client);
    free(s);
}

/* True for localhost, 127.0.0.0/8 and [::1] at the start of an endpoint's
 * host part. */
static bool endpoint_on_loopback(const char *endpoint)
{
    const char *h = strstr(endpoint, "://");
    h = h ? h + 3 : endpoint;
    return strncmp(h, "localhost", 9) == 0 || strncmp(h, "127.", 4) == 0 || strncmp(h, "[::1]", 5) == 0;
}

static void s3s_describe(const aq_config *c, char *where, size_t wn, char *caution, size_t cn)
{
    /* config.c refuses userinfo in the endpoint, so it can be shown */
    snprintf(where, wn, "%s bucket=%s", c->storage.s3.endpoint, c->storage.s3.bucket);
    bool plain = strncmp(c->storage.s3.endpoint, "http://", 7) == 0;
    snprintf(caution, cn, "%s", plain && !endpoint_on_loopback(c->storage.s3.endpoint)
                                    ? "plain http:// to a host that is not loopback: objects travel "
                                      "unencrypted; use https://"
                                    : "");
}

static const char *const s3s_required[] = {"endpoint", "bucket", NULL};

const storage_ops storage_s3_ops = {
    .name = "s3",
    .open = s3s_open,
    .open_more = s3s_open_more,
    .put = s3s_put,
    .put_many = s3s_put_many,
    .get = s3s_get,
    .del = s3s_del,
    .check = s3s_check,
    .location = s3s_location,
    .close = s3s_close,
    .describe = s3s_describe,
    .required = s3s_required,
};
