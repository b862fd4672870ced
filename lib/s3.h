/* s3: a small S3 client over libcurl, not tied to avatars: put, get, delete,
 * exists (HEAD) and a bucket health check, against AWS S3 or any compatible
 * store (MinIO, Ceph, R2, ...).
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3");
 * every request carries x-amz-content-sha256 (the body's real SHA-256 for
 * uploads, the empty-body hash otherwise) and uploads carry Content-MD5, so a
 * body damaged on the way is refused by the server. One client owns a curl
 * multi handle with its connection cache (keep-alive) and up to 8 transfer
 * handles, made on first use: create it after fork() and never share it
 * between threads (one per thread).
 *
 * Failures are classified where they happen: connection errors, timeouts,
 * 5xx, 429, throttling codes (SlowDown, RequestTimeout, ...) and codes for a
 * body damaged on the way (BadDigest, ...) are retried inside the call with
 * exponential backoff and full jitter; when the retries (or the time budget)
 * run out the call returns AQ_EAGAIN. Other 4xx answers (403 SignatureDoesNotMatch, 404
 * NoSuchBucket, ...) return AQ_EPERM at once. Messages name the method, the
 * key and the server's error code ("S3 PUT avatars/x/64.png: 403
 * SignatureDoesNotMatch: ..."); they never contain the secret key. A
 * SIGPIPE from a peer that closes a connection is blocked and discarded
 * around each transfer, so callers need not ignore it; curl never raises
 * SIGALRM (CURLOPT_NOSIGNAL). */
#ifndef AQ_S3_H
#define AQ_S3_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "error.h"

/* The largest object s3_get reads by default: a 4096 px RGBA image,
 * uncompressed, is 64 MiB; no PNG of ours comes near it. */
#define S3_OBJECT_MAX ((size_t)64 << 20)

/* Defaults for the backoff between attempts (retry_backoff_ms). */
#define S3_BACKOFF_BASE_MS 100
#define S3_BACKOFF_MAX_MS 5000

typedef struct s3_opts {
    const char *endpoint;     /* "http(s)://host[:port][/path]" */
    const char *region;       /* "us-east-1" */
    const char *bucket;
    const char *access_key;
    const char *secret_key;   /* never copied into messages */
    bool path_style;          /* ENDPOINT/BUCKET/KEY; else BUCKET.HOST/KEY */
    int timeout_ms;           /* connect and total timeout of each attempt */
    int retries;              /* further attempts after the first (0 = none) */
    int backoff_base_ms;      /* 0: S3_BACKOFF_BASE_MS */
    int backoff_max_ms;       /* 0: S3_BACKOFF_MAX_MS */
    int budget_ms;            /* 0, or the most one call may take, attempts and
                                 backoff included: no attempt starts that could
                                 end after it (AQ_EAGAIN instead) */
    volatile int *stop;       /* optional: when it becomes non-zero, backoff
                                 sleeps end and the call returns AQ_EAGAIN */
    const char *ca_file;      /* optional CA bundle for https (a private CA,
                                 e.g. an in-house MinIO); NULL: the system's */
    size_t max_object;        /* 0: S3_OBJECT_MAX; a GET body larger than this
                                 is refused (AQ_EPERM) before it is all read */
    const char *connect_to;   /* optional curl CONNECT_TO entry
                                 ("HOST:PORT:CONNECT-HOST:CONNECT-PORT"), e.g.
                                 to reach a virtual-hosted name without DNS */
} s3_opts;

typedef struct s3 s3;

/* Validates o (endpoint scheme http/https with a host and no userinfo,
 * region, bucket name, credentials of visible ASCII only, so no CR/LF can
 * reach a header, timeout) and creates a client with its CURL handle.
 * An http:// endpoint on a host other than loopback gets a log warning
 * (keys are signed, but objects travel in the clear). No network traffic. Returns NULL with e set (AQ_EPERM) on bad options,
 * naming the option and its value (never the secret). The strings of o are
 * copied. */
s3 *s3_open(const s3_opts *o, aq_err *e);
void s3_close(s3 *c);

/* Uploads len bytes as key with content_type (NULL: none), whole or not at
 * all. Returns 0 or AQ_EPERM / AQ_EAGAIN. */
int s3_put(s3 *c, const char *key, const void *data, size_t len,
           const char *content_type, aq_err *e);

/* One object to upload with s3_put_many. */
typedef struct s3_object {
    const char *key;
    const void *data;
    size_t len;
    const char *content_type;  /* NULL: none */
} s3_object;

/* Uploads the n objects as s3_put does each, up to 8 at once over
 * parallel keep-alive connections, each with its own retries (one backoff
 * wait shared by those that failed). Returns 0 when all are stored, else
 * AQ_EPERM / AQ_EAGAIN with the index of the object e names in *failed;
 * others may have been stored meanwhile. Not all-or-nothing across objects:
 * each object is whole or absent. */
int s3_put_many(s3 *c, const s3_object *objs, size_t n, size_t *failed, aq_err *e);

/* Appends the object's bytes to out and, when ctype is non-NULL, copies its
 * Content-Type into ctype (ctlen bytes; "" when the server sent none).
 * Returns 0, AQ_ENOTFOUND (NoSuchKey), AQ_EPERM or AQ_EAGAIN. */
int s3_get(s3 *c, const char *key, buf *out, char *ctype, size_t ctlen, aq_err *e);

/* Deletes key; an absent key is success (S3 semantics). */
int s3_delete(s3 *c, const char *key, aq_err *e);

/* HEAD key: 1 when present, 0 when absent, < 0 on error. Test-only API:
 * nothing in avatarq's programs needs it; the S3 tests check objects with
 * it. */
int s3_exists(s3 *c, const char *key, aq_err *e);

/* Lists no keys of the bucket (GET ?list-type=2&max-keys=0): proves
 * that the endpoint answers, the bucket exists and the credentials are
 * accepted. Returns 0, AQ_EPERM (NoSuchBucket, AccessDenied,
 * SignatureDoesNotMatch, ...) or AQ_EAGAIN (unreachable). */
int s3_check(s3 *c, aq_err *e);

/* The bucket name. */
const char *s3_bucket(const s3 *c);

/* Writes the URL of key (NULL or "": the bucket itself) with an optional
 * query (already sorted and encoded, without '?') into out. Returns 0, or
 * AQ_EPERM when it does not fit. Exposed for tests. */
int s3_url(const s3 *c, const char *key, const char *query, char *out, size_t n,
           aq_err *e);

/* Percent-encodes key as S3 wants it in a path: every byte except
 * A-Z a-z 0-9 - _ . ~ and '/' becomes %XX (upper-case hex). Returns 0, or -1
 * when it does not fit in n bytes. */
int s3_encode_key(const char *key, char *out, size_t n);

/* Requests sent over the network so far (attempts included), for tests and
 * benchmarks. */
unsigned long s3_requests(const s3 *c);

/* New connections opened so far (keep-alive keeps this near 1). */
unsigned long s3_connections(const s3 *c);

#endif
