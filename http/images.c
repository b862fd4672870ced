/* images: GET|HEAD /avatars/{id}/{size}.png, /avatars/{id}/{size}.webp and
 * /avatars/{id}/avatar.svg (stored avatars, at the key the format they were
 * made in implies) and GET|HEAD /render/{style}/{seed}.png (rendered on the
 * fly by the worker's own path: job_parse validates, avatar_png renders and
 * encodes).
 *
 * Stored avatars on local storage go out as file-descriptor responses, which
 * libmicrohttpd sends with sendfile(2). Their ETag is the SHA-256 the worker
 * recorded in the metadata row; a row older than the file (the file was
 * rewritten and the row not yet) is not trusted, and the file's own bytes are
 * hashed instead (the same digest when they agree). Each thread keeps the
 * images it served lately open with their responses ready (http_file), and
 * checks them with one fstatat per request: a cached GET costs no open and
 * no database query, and a file rewritten or deleted is seen at once.
 * On S3 the object is fetched and streamed through (no redirect: the URL
 * stays stable and cacheable, and S3 credentials never reach clients). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "http.h"
#include "log.h"

#define CACHE_IMMUTABLE "public, max-age=31536000, immutable"
#define HASH_FILE_MAX (64 * 1024 * 1024)

/* ---- shared checks ---- */

static bool valid_id(hreq *r, int i, enum MHD_Result *res)
{
    if (r->cap_len[i] <= JOB_ID_MAX && job_id_valid(r->capbuf[i]))
        return true;
    char p[100];
    *res = http_error(r, 400, "id: '%s' is not an avatar id ([A-Za-z0-9._-]{1,64}, not starting with '.')",
                      log_printable(r->cap[i], r->cap_len[i], p, sizeof p));
    return false;
}

static bool valid_size(hreq *r, const char *s, size_t len, long *size, enum MHD_Result *res)
{
    char *end = NULL;
    long n = len && len < 8 && s[0] != '0' ? strtol(s, &end, 10) : 0;
    if (end == s + len && n >= RENDER_MIN_SIZE && n <= G.limits.max_size) {
        *size = n;
        return true;
    }
    char p[100];
    *res = http_error(r, 400, "size: '%s' is not an integer from %d to %d",
                      log_printable(s, len, p, sizeof p), RENDER_MIN_SIZE, G.limits.max_size);
    return false;
}

/* The stored format a URL asks for: its last segment ends in .webp or is
 * avatar.svg (the routes allow nothing else), else PNG. */
static job_format url_format(const hreq *r)
{
    size_t n = strlen(r->url);
    if (n >= 5 && strcmp(r->url + n - 5, ".webp") == 0)
        return JOB_FORMAT_WEBP;
    if (n >= 11 && strcmp(r->url + n - 11, "/avatar.svg") == 0)
        return JOB_FORMAT_SVG;
    return JOB_FORMAT_PNG;
}

/* True when If-None-Match lists etag (or "*"). */
static bool etag_listed(const char *inm, const char *etag)
{
    size_t el = strlen(etag);
    for (const char *p = inm; *p;) {
        p += strspn(p, " ,");
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if ((n == 1 && *p == '*') || (n == el && strncmp(p, etag, n) == 0))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* 304 rules of RFC 9110: If-None-Match decides when present, else
 * If-Modified-Since against mtime (mtime < 0: no date known). */
static bool not_modified(hreq *r, const char *etag, time_t mtime)
{
    const char *inm = http_header(r, "If-None-Match");
    if (inm)
        return etag_listed(inm, etag);
    const char *ims = mtime >= 0 ? http_header(r, "If-Modified-Since") : NULL;
    if (!ims)
        return false;
    time_t t = curl_getdate(ims, NULL);
    return t >= 0 && mtime <= t;
}

static void http_date(time_t t, char out[40])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* The caching headers every image reply (200 and 304) carries; date is
 * Last-Modified as an HTTP date, or NULL. */
static void image_headers(struct MHD_Response *resp, const char *etag, const char *date)
{
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "Cache-Control", CACHE_IMMUTABLE);
    if (date)
        MHD_add_response_header(resp, "Last-Modified", date);
}

/* What a 200 carries about its body: the type, and no sniffing. An SVG is
 * active content (scripts, external loads) when opened as a page: its CSP
 * lets it draw with inline styles and nothing else. */
static void body_headers(struct MHD_Response *resp, job_format f)
{
    MHD_add_response_header(resp, "Content-Type", job_format_mime(f));
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (f == JOB_FORMAT_SVG)
        MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
}

static enum MHD_Result send_304(hreq *r, const char *etag, const char *date)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    image_headers(resp, etag, date);
    return http_send(r, 304, resp);
}

/* The hex digest of size in a metadata row's sha256 JSON, or "". size 0:
 * the first size's (an SVG is one file for every size: one digest). */
static void row_sha(const meta_row *row, long size, char hex[65])
{
    hex[0] = '\0';
    json_t *o = json_loads(row->sha256, 0, NULL);
    char name[16];
    snprintf(name, sizeof name, "%ld", size);
    const char *v = json_string_value(size ? json_object_get(o, name) : json_object_iter_value(json_object_iter(o)));
    if (v && strlen(v) == 64)
        memcpy(hex, v, 65);
    json_decref(o);
}

/* SHA-256 of an open file's bytes (pread: the offset is left alone). */
static int hash_fd(int fd, off_t size, char hex[65])
{
    if (size > HASH_FILE_MAX)
        return -1;
    char *data = malloc(size ? (size_t)size : 1);
    ssize_t got = 0;
    while (data && got < size) {
        ssize_t n = pread(fd, data + got, (size_t)(size - got), got);
        if (n <= 0)
            break;
        got += n;
    }
    if (data && got == size)
        hash_sha256_hex(data, (size_t)size, hex);
    free(data);
    return data && got == size ? 0 : -1;
}

/* The digest of the open file id/size: the metadata row's when the row is
 * not older than the file, else the file's own bytes hashed. */
static int local_digest(hctx *c, int fd, const struct stat *st, const char *id, long size,
                        char hex[65])
{
    int64_t mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    aq_err e;
    err_clear(&e);
    meta *m = hctx_meta(c, &e);
    hex[0] = '\0';
    if (m && meta_get(m, id, &c->row, &e) == 0 && c->row.generated_at * 1000000 >= mtime_ns)
        row_sha(&c->row, size, hex);
    return hex[0] ? 0 : hash_fd(fd, st->st_size, hex);
}

static bool same_file(const http_file *f, const char *key, const struct stat *st)
{
    int64_t mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    return f->ok && f->ino == st->st_ino && f->dev == st->st_dev && f->mtime_ns == mtime_ns &&
           f->size == st->st_size && strcmp(f->key, key) == 0;
}

/* A 200 response for the open file fd (taken: MHD closes it). */
static struct MHD_Response *file_response(int fd, off_t size, job_format fmt, const char *etag,
                                          const char *date)
{
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)size, fd);
    if (!resp) {
        close(fd);
        return NULL;
    }
    body_headers(resp, fmt);
    image_headers(resp, etag, date);
    return resp;
}

/* Opens key into slot f: identity, validators and the 200 response.
 * Returns 0, AQ_ENOTFOUND, or -1 with errno. */
static int file_load(hctx *c, http_file *f, const char *key, const char *id, long size, job_format fmt)
{
    int fd = openat(G.root_fd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? AQ_ENOTFOUND : -1;
    char hex[65];
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || local_digest(c, fd, &st, id, size, hex) != 0) {
        close(fd);
        return S_ISREG(st.st_mode) ? -1 : AQ_ENOTFOUND;
    }
    hctx_file_drop(f);
    snprintf(f->key, sizeof f->key, "%s", key);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    f->size = st.st_size;
    snprintf(f->etag, sizeof f->etag, "\"%s\"", hex);
    http_date(st.st_mtime, f->last_modified);
    f->ok = file_response(fd, st.st_size, fmt, f->etag, f->last_modified);
    return f->ok ? 0 : -1;
}

/* The slot's 304 response, built on first use; NULL when out of memory. */
static struct MHD_Response *kept_304(http_file *f)
{
    if (!f->not_modified &&
        (f->not_modified = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT)))
        image_headers(f->not_modified, f->etag, f->last_modified);
    return f->not_modified;
}

static size_t key_slot(const char *key)
{
    size_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = h * 33 + *p;
    return h % HTTP_FILE_SLOTS;
}

/* 404 for an avatar that is not stored at this URL. When the metadata row
 * says it was made in another format or at other sizes, the reply says so
 * and names a URL that serves it, so a client that guessed the format
 * (png by default) learns the right path. */
static enum MHD_Result not_stored(hreq *r, hctx *c, const char *id, long size, job_format fmt)
{
    aq_err e;
    err_clear(&e);
    meta *m = hctx_meta(c, &e);
    char at[32] = "";
    if (fmt != JOB_FORMAT_SVG)
        snprintf(at, sizeof at, " at size %ld", size);
    if (!m || meta_get(m, id, &c->row, &e) != 0)
        return http_error(r, 404, "no avatar %s%s", id, at);
    int found = job_format_find(c->row.format[0] ? c->row.format : "png");
    job_format stored = found < 0 ? JOB_FORMAT_PNG : (job_format)found;
    /* the size asked for when it was made, else the first that was */
    json_t *sizes = json_loads(c->row.sizes, 0, NULL), *v;
    long pick = (long)json_integer_value(json_array_get(sizes, 0));
    size_t i;
    json_array_foreach(sizes, i, v)
        pick = json_integer_value(v) == size ? size : pick;
    json_decref(sizes);
    char url[128];
    if (stored == JOB_FORMAT_SVG)
        snprintf(url, sizeof url, "/avatars/%s/avatar.svg", id);
    else
        snprintf(url, sizeof url, "/avatars/%s/%ld.%s", id, pick, job_format_ext(stored));
    if (stored != fmt)
        return http_error(r, 404, "avatar %s is stored as %s, not %s: GET %s", id, job_format_name(stored),
                          job_format_name(fmt), url);
    return http_error(r, 404, "no avatar %s%s (sizes stored: %s, e.g. GET %s)", id, at, c->row.sizes, url);
}

/* Local storage: one fstatat per request when the file is in the thread's
 * cache and unchanged; the cached response goes out as is (CORS replies,
 * which differ per origin, get a fresh one). */
static enum MHD_Result serve_local(hreq *r, hctx *c, const char *id, long size, job_format fmt,
                                   const char *key)
{
    struct stat st;
    http_file *f = &c->files[key_slot(key)];
    int rc = fstatat(G.root_fd, key, &st, AT_SYMLINK_NOFOLLOW);
    if (rc != 0 || !S_ISREG(st.st_mode)) {
        int err = rc != 0 ? errno : ENOENT; /* not a regular file: as absent */
        if (strcmp(f->key, key) == 0)
            hctx_file_drop(f);
        if (err == ENOENT || err == ENOTDIR)
            return not_stored(r, c, id, size, fmt);
        return http_error(r, 500, "%s: %s", key, strerror(err));
    }
    if (!same_file(f, key, &st)) {
        rc = file_load(c, f, key, id, size, fmt);
        if (rc == AQ_ENOTFOUND)
            return not_stored(r, c, id, size, fmt);
        if (rc != 0)
            return http_error(r, 500, "%s: cannot read", key);
    }
    if (not_modified(r, f->etag, (time_t)(f->mtime_ns / 1000000000))) {
        if (http_wants_cors(r) || !kept_304(f))
            return send_304(r, f->etag, f->last_modified);
        return http_send_kept(r, 304, f->not_modified);
    }
    if (!http_wants_cors(r))
        return http_send_kept(r, 200, f->ok);
    int fd = openat(G.root_fd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct MHD_Response *resp = fd >= 0 ? file_response(fd, f->size, fmt, f->etag, f->last_modified) : NULL;
    return resp ? http_send(r, 200, resp) : http_error(r, 500, "%s: cannot read", key);
}

/* S3: the object through this server. The ETag is the metadata row's digest
 * when there is one, else the digest of the bytes fetched. */
static enum MHD_Result serve_s3(hreq *r, hctx *c, const char *id, long size, job_format fmt,
                                const char *key)
{
    aq_err e;
    err_clear(&e);
    storage *s = hctx_storage(c, &e);
    if (!s)
        return http_error(r, 503, "storage: %s", e.msg);
    char etag[68], hex[65] = "";
    meta *m = hctx_meta(c, &e);
    time_t mtime = -1;
    char date[40] = "";
    if (m && meta_get(m, id, &c->row, &e) == 0) {
        row_sha(&c->row, size, hex);
        mtime = (time_t)(c->row.generated_at / 1000);
        http_date(mtime, date);
    }
    const char *lm = date[0] ? date : NULL;
    if (hex[0] && http_header(r, "If-None-Match")) {
        snprintf(etag, sizeof etag, "\"%s\"", hex);
        if (not_modified(r, etag, mtime))
            return send_304(r, etag, lm);
    }
    buf b = BUF_INIT;
    int rc = storage_get(s, key, &b, &e);
    if (rc != 0) {
        buf_free(&b);
        if (rc == AQ_ENOTFOUND)
            return not_stored(r, c, id, size, fmt);
        return http_error(r, 503, "storage: %s", e.msg);
    }
    if (!hex[0])
        hash_sha256_hex(b.data, b.len, hex);
    snprintf(etag, sizeof etag, "\"%s\"", hex);
    if (not_modified(r, etag, mtime)) {
        buf_free(&b);
        return send_304(r, etag, lm);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        buf_free(&b);
        return MHD_NO;
    }
    body_headers(resp, fmt);
    image_headers(resp, etag, lm);
    return http_send(r, 200, resp);
}

enum MHD_Result http_avatar_image(hreq *r)
{
    enum MHD_Result res = MHD_NO;
    job_format fmt = url_format(r);
    long size = 0; /* SVG: one file for every size, no size in its URL */
    if (!valid_id(r, 0, &res) ||
        (fmt != JOB_FORMAT_SVG && !valid_size(r, r->cap[1], r->cap_len[1], &size, &res)))
        return res;
    hctx *c = hctx_get();
    if (!c)
        return http_error(r, 503, "out of memory");
    char key[600];
    avatar_key_fmt(G.cfg->storage.prefix, r->capbuf[0], (int)size, fmt, key, sizeof key);
    return G.local ? serve_local(r, c, r->capbuf[0], size, fmt, key)
                   : serve_s3(r, c, r->capbuf[0], size, fmt, key);
}

/* ---- /render ---- */

/* The query arguments /render takes, each a job document field (size is
 * "sizes": [size]; angle is a number). */
static const char *const RENDER_ARGS[] = {"size", "scheme", "primary", "foreign", "angle", "filter"};
#define NRENDER_ARGS (sizeof RENDER_ARGS / sizeof *RENDER_ARGS)
#define RENDER_DEFAULT_SIZE 128

typedef struct render_q {
    hreq *r;
    json_t *doc;
    char bad[300];           /* the first problem, naming the argument */
} render_q;

static int render_arg(render_q *q, const char *key, const char *value)
{
    char p[80];
    size_t i = 0;
    while (i < NRENDER_ARGS && strcmp(key, RENDER_ARGS[i]) != 0)
        i++;
    if (i == NRENDER_ARGS) {
        snprintf(q->bad, sizeof q->bad, "%s: unknown query parameter (known: size, scheme, primary, foreign, angle, filter)",
                 log_printable(key, strlen(key), p, sizeof p));
        return 1;
    }
    const char *v = value ? value : "";
    if (strcmp(key, "size") == 0)
        return 0; /* checked by the handler */
    if (strcmp(key, "angle") == 0) {
        char *end;
        double a = strtod(v, &end);
        if (!*v || *end) {
            snprintf(q->bad, sizeof q->bad, "angle: '%s' is not a number",
                     log_printable(v, strlen(v), p, sizeof p));
            return 1;
        }
        json_object_set_new(q->doc, key, json_real(a));
        return 0;
    }
    json_t *s = json_string(v);
    if (!s) {
        snprintf(q->bad, sizeof q->bad, "%s: not UTF-8", key);
        return 1;
    }
    json_object_set_new(q->doc, key, s);
    return 0;
}

static enum MHD_Result render_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    render_q *q = cls;
    return q->bad[0] || render_arg(q, key, value) == 0 ? MHD_YES : MHD_NO;
}

/* The job document for this URL, or NULL after answering 400. */
static json_t *render_doc(hreq *r, long *size, enum MHD_Result *res)
{
    const char *sz = http_arg(r, "size");
    *size = RENDER_DEFAULT_SIZE;
    if (sz && !valid_size(r, sz, strlen(sz), size, res))
        return NULL;
    render_q q = {r, json_object(), ""};
    json_t *seed = json_stringn(r->cap[1], r->cap_len[1]);
    json_object_set_new(q.doc, "seed", seed ? seed : json_string(""));
    json_object_set_new(q.doc, "style", json_stringn(r->cap[0], r->cap_len[0]));
    json_t *sizes = json_array();
    json_array_append_new(sizes, json_integer(*size));
    json_object_set_new(q.doc, "sizes", sizes);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, render_iter, &q);
    if (!seed && !q.bad[0])
        snprintf(q.bad, sizeof q.bad, "seed: not UTF-8");
    if (!json_object_get(q.doc, "style"))
        snprintf(q.bad, sizeof q.bad, "style: not UTF-8");
    if (q.bad[0]) {
        json_decref(q.doc);
        *res = http_error(r, 400, "%s", q.bad);
        return NULL;
    }
    return q.doc;
}

/* job_parse names "sizes[0]"; the URL calls it "size". */
static const char *url_field_names(char *msg)
{
    if (strncmp(msg, "sizes[0]", 8) == 0) {
        memmove(msg + 4, msg + 8, strlen(msg + 8) + 1);
        memcpy(msg, "size", 4);
    }
    return msg;
}

enum MHD_Result http_render(hreq *r)
{
    enum MHD_Result res = MHD_NO;
    long size;
    json_t *doc = render_doc(r, &size, &res);
    if (!doc)
        return res;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    hctx *c = hctx_get();
    job_request *jr = malloc(sizeof *jr);
    if (!text || !c || !jr) {
        free(text);
        free(jr);
        return http_error(r, 503, "out of memory");
    }
    aq_err e;
    err_clear(&e);
    int rc = job_parse(text, strlen(text), &G.limits, jr, &e);
    free(text);
    if (rc != 0) {
        free(jr);
        return http_error(r, rc == AQ_EPERM ? 400 : 503, "%s", url_field_names(e.msg));
    }
    /* The canonical request names the pixels: a strong validator. */
    char *canon = job_canonical(jr), etag[68], hex[65];
    hash_sha256_hex(canon ? canon : "", canon ? strlen(canon) : 0, hex);
    free(canon);
    snprintf(etag, sizeof etag, "\"%s\"", hex);
    if (not_modified(r, etag, -1)) {
        free(jr);
        return send_304(r, etag, NULL);
    }
    rc = avatar_png(&c->av, jr, (int)size, &e);
    free(jr);
    if (rc != 0)
        return http_error(r, 500, "render: %s", e.msg);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(c->av.png.len, c->av.png.data, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "image/png");
    image_headers(resp, etag, NULL);
    return http_send(r, 200, resp);
}
