/* server: the libmicrohttpd daemon, the route table, request bodies, auth,
 * CORS, the reply helpers and the per-route request counters. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "log.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

enum { ACCESS_PUBLIC, ACCESS_TOKEN, ACCESS_METRICS };

/* One route: a path pattern, a method and its handler. Pattern segments are
 * literals or captures "{name}" (one segment), optionally followed by a
 * literal suffix ("{size}.png"); "{name*}" takes the rest of the path,
 * slashes included (seeds may hold them). HEAD is served by GET routes. */
typedef struct route {
    const char *pattern;
    const char *method;
    http_handler fn;
    int access;
} route;

static const route ROUTES[] = {
    {"/avatars/{id}/{size}.png", "GET", http_avatar_image, ACCESS_PUBLIC},
    {"/avatars/{id}/{size}.webp", "GET", http_avatar_image, ACCESS_PUBLIC},
    {"/avatars/{id}/avatar.svg", "GET", http_avatar_image, ACCESS_PUBLIC},
    {"/render/{style}/{seed*}.png", "GET", http_render, ACCESS_PUBLIC},
    {"/v1/jobs", "POST", http_jobs_post, ACCESS_TOKEN},
    {"/v1/jobs/{id}", "GET", http_job_get, ACCESS_TOKEN},
    {"/v1/avatars", "GET", http_avatars_list, ACCESS_TOKEN},
    {"/v1/avatars/{id}", "GET", http_avatar_get, ACCESS_TOKEN},
    {"/v1/avatars/{id}", "DELETE", http_avatar_delete, ACCESS_TOKEN},
    {"/v1/stats", "GET", http_stats, ACCESS_TOKEN},
    {"/v1/workers", "GET", http_workers, ACCESS_TOKEN},
    {"/v1/dead", "GET", http_dead_list, ACCESS_TOKEN},
    {"/v1/dead/{id}/retry", "POST", http_dead_retry, ACCESS_TOKEN},
    {"/v1/control", "POST", http_control, ACCESS_TOKEN},
    {"/metrics", "GET", http_metrics, ACCESS_METRICS},
    {"/health", "GET", http_health, ACCESS_PUBLIC},
    {"/", "GET", http_dashboard, ACCESS_PUBLIC},
};
#define NROUTES NELEM(ROUTES)
#define ROUTE_NONE ((int)NROUTES) /* counters of requests no route matched */

/* Status codes counted one by one; anything else lands in the last slot. */
static const int CODES[] = {200, 202, 204, 304, 400, 401, 404, 405, 413, 500, 503, 0};
#define NCODES NELEM(CODES)
static _Atomic uint64_t counts[NROUTES + 1][NCODES];

http_global G = {.root_fd = -1};

int64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(int route, int status)
{
    size_t i = 0;
    while (CODES[i] && CODES[i] != status)
        i++;
    atomic_fetch_add_explicit(&counts[route][i], 1, memory_order_relaxed);
}

void http_counters(void (*fn)(const char *route, int status, uint64_t n, void *ud), void *ud)
{
    for (size_t r = 0; r <= NROUTES; r++)
        for (size_t i = 0; i < NCODES; i++) {
            uint64_t n = atomic_load_explicit(&counts[r][i], memory_order_relaxed);
            if (n)
                fn(r < NROUTES ? ROUTES[r].pattern : "unmatched", CODES[i], n, ud);
        }
}

/* ---- matching ---- */

/* Matches one pattern against path, filling the captures; true on a match. */
static bool match(const char *pat, const char *path, hreq *r)
{
    int nc = 0;
    while (*pat && *path) {
        if (*pat != '{') {
            if (*pat++ != *path++)
                return false;
            continue;
        }
        const char *close = strchr(pat, '}');
        bool rest = close[-1] == '*';
        pat = close + 1;
        /* the literal after the capture up to the next '/' or the end */
        size_t sl = strcspn(pat, "/");
        size_t seg = rest ? strlen(path) : strcspn(path, "/");
        if (seg <= sl || strncmp(path + seg - sl, pat, sl) != 0 || nc >= 2)
            return false;
        size_t len = seg - sl;
        r->cap[nc] = path;
        r->cap_len[nc] = len;
        snprintf(r->capbuf[nc], sizeof r->capbuf[nc], "%.*s", (int)len, path);
        nc++;
        path += seg;
        pat += sl;
    }
    return *pat == '\0' && *path == '\0';
}

/* ---- replies ---- */

const char *http_header(hreq *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_arg(hreq *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* True when origin is in [http] cors_origins (comma-separated, or "*"). */
static bool cors_allowed(const char *origin)
{
    const char *list = G.cfg->http.cors_origins;
    size_t ol = strlen(origin);
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if ((n == 1 && *p == '*') || (n == ol && n && strncmp(p, origin, n) == 0))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

bool http_wants_cors(hreq *r)
{
    const char *origin = G.cfg->http.cors_origins[0] ? http_header(r, "Origin") : NULL;
    return origin && cors_allowed(origin);
}

void http_cors(hreq *r, struct MHD_Response *resp)
{
    if (!http_wants_cors(r))
        return;
    const char *origin = http_header(r, "Origin");
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Vary", "Origin");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "ETag, Last-Modified");
}

enum MHD_Result http_send(hreq *r, int status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    http_cors(r, resp);
    /* counted when queued, so a client that reads /metrics right after its
     * reply already sees it */
    r->status = status;
    count(r->route, status);
    enum MHD_Result res = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return res;
}

enum MHD_Result http_send_kept(hreq *r, int status, struct MHD_Response *resp)
{
    r->status = status;
    count(r->route, status);
    return MHD_queue_response(r->conn, (unsigned)status, resp);
}

/* A response owning the JSON text s (freed with it, or here when none can
 * be made), typed and never cached; NULL when out of memory. */
static struct MHD_Response *json_response(char *s)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    return resp;
}

enum MHD_Result http_json(hreq *r, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return http_error(r, 500, "out of memory");
    struct MHD_Response *resp = json_response(s);
    return resp ? http_send(r, status, resp) : MHD_NO;
}

enum MHD_Result http_error(hreq *r, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* messages may quote request bytes: keep the JSON valid UTF-8 */
    json_t *m = json_string(msg);
    if (!m) {
        char safe[600];
        log_printable(msg, strlen(msg), safe, sizeof safe);
        m = json_string(safe);
    }
    json_t *j = json_pack("{s:o, s:i}", "error", m, "status", status);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct MHD_Response *resp = s ? json_response(s) : NULL;
    if (!resp)
        return MHD_NO;
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"avatarq\"");
    if (status == 503)
        MHD_add_response_header(resp, "Retry-After", "1");
    return http_send(r, status, resp);
}

enum MHD_Result http_fail(hreq *r, const aq_err *e, int perm_status)
{
    static const struct {
        int code, status;
    } map[] = {{AQ_EAGAIN, 503}, {AQ_ENOTFOUND, 404}};
    for (size_t i = 0; i < NELEM(map); i++)
        if (e->code == map[i].code)
            return http_error(r, map[i].status, "%s", e->msg);
    return http_error(r, perm_status, "%s", e->msg);
}

bool http_arg_int(hreq *r, const char *name, long min, long max, long def, long *out,
                  enum MHD_Result *res)
{
    const char *v = http_arg(r, name);
    *out = def;
    if (!v)
        return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < min || n > max) {
        char p[80];
        *res = http_error(r, 400, "%s: '%s' is not an integer from %ld to %ld", name,
                          log_printable(v, strlen(v), p, sizeof p), min, max);
        return false;
    }
    *out = n;
    return true;
}

/* ---- auth ---- */

/* Compares without an early exit, so timing does not leak the token. */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static bool authorized(hreq *r, int access)
{
    const char *token = G.cfg->http.auth_token;
    if (access == ACCESS_PUBLIC || !token[0])
        return true;
    if (access == ACCESS_METRICS && G.cfg->http.public_metrics)
        return true;
    const char *h = http_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    return same_secret(h + 7, token);
}

/* ---- dispatch ---- */

static enum MHD_Result preflight(hreq *r, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Allow", allow);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return http_send(r, 204, resp);
}

static enum MHD_Result not_allowed(hreq *r, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "{\"error\":\"method %s not allowed here (allowed: %s)\",\"status\":405}",
             r->method, allow);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(msg), msg, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Allow", allow);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return http_send(r, 405, resp);
}

static enum MHD_Result dispatch(hreq *r)
{
    bool head = strcmp(r->method, "HEAD") == 0;
    const char *want = head ? "GET" : r->method;
    char allow[64] = "";
    for (size_t i = 0; i < NROUTES; i++) {
        if (!match(ROUTES[i].pattern, r->url, r))
            continue;
        r->route = (int)i;
        if (strcmp(ROUTES[i].method, want) == 0) {
            if (!authorized(r, ROUTES[i].access))
                return http_error(r, 401, "missing or wrong bearer token (Authorization: Bearer ...)");
            if (r->too_large)
                return http_error(r, 413, "request body over %d bytes", HTTP_BODY_MAX);
            return ROUTES[i].fn(r);
        }
        size_t n = strlen(allow);
        snprintf(allow + n, sizeof allow - n, "%s%s%s", n ? ", " : "", ROUTES[i].method,
                 strcmp(ROUTES[i].method, "GET") == 0 ? ", HEAD" : "");
    }
    if (!allow[0]) {
        r->route = ROUTE_NONE;
        char p[120];
        return http_error(r, 404, "no such resource: %s",
                          log_printable(r->url, strlen(r->url), p, sizeof p));
    }
    size_t n = strlen(allow);
    snprintf(allow + n, sizeof allow - n, ", OPTIONS");
    if (strcmp(r->method, "OPTIONS") == 0)
        return preflight(r, allow);
    return not_allowed(r, allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    hreq *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *con_cls = r;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->route = ROUTE_NONE;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > HTTP_BODY_MAX) {
            r->too_large = true; /* answered now: no point reading it */
            return dispatch(r);
        }
        /* answered on the next call, even without a body: a reply queued
         * on the first call makes libmicrohttpd close the connection */
        return MHD_YES;
    } else if (*upload_size) {
        if (r->body.len + *upload_size > HTTP_BODY_MAX)
            r->too_large = true;
        else if (buf_append(&r->body, upload_data, *upload_size) != 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (buf_append(&r->body, "", 1) != 0) /* NUL-terminated for the parsers */
        return MHD_NO;
    r->body.len--;
    return dispatch(r);
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    hreq *r = *con_cls;
    if (!r)
        return;
    (void)toe;
    if (!r->status) /* never answered (out of memory, connection lost) */
        count(r->route, 500);
    buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http server", "detail", msg);
}

/* Splits "HOST:PORT" / "[V6]:PORT" and resolves it (numeric port). */
static int resolve(const char *listen, struct sockaddr_storage *ss, aq_err *e)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    size_t hl = (size_t)(colon - listen);
    const char *h = listen;
    if (listen[0] == '[') {
        h++;
        hl -= 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)hl, h);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0)
        return err_set(e, AQ_EPERM, "[http] listen: %s: %s", listen, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

struct MHD_Daemon *http_start(const aq_config *cfg, aq_err *e)
{
    static struct sockaddr_storage ss;
    if (resolve(cfg->http.listen, &ss, e) != 0)
        return NULL;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_THREAD_POOL_SIZE, cfg->http.threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg->http.max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, cfg->http.timeout_s, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* the logger first, so even option errors reach our log */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_ARRAY, opts, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    if (!d)
        err_set(e, AQ_EPERM, "[http] listen: cannot listen on %s (in use, or not an address of this host?)",
                cfg->http.listen);
    return d;
}
