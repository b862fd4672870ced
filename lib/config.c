/* config: every key of docs/protocol.md "Configuration" is one row of KEYS below:
 * where it lives in aq_config, its default, and the setter that parses and
 * range-checks a value. The file (through inih), the AVATARQ_* environment
 * and the defaults all go through the same setters, so a value is checked
 * the same way wherever it came from, and a bad one is reported with the
 * file and line, or the variable, it came from. */
#include "config.h"
#include "callback.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "meta.h"
#include "render.h"
#include "storage.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define WHY 320 /* room for the reason part of a message */

typedef struct key_spec key_spec;

/* A setter parses v into c for key k, or returns -1 with the reason in why
 * ("'x' is not an integer"); it never half-writes a value. */
typedef int (*setter)(aq_config *c, const key_spec *k, const char *v, char *why);

struct key_spec {
    const char *section, *key;
    const char *def;        /* NULL: computed (processes) */
    setter set;
    size_t off, size;       /* the field in aq_config; size for strings */
    long long min, max;     /* integer range, or string length range */
    int secret;             /* never echo the value in a message */
};

static int set_int(aq_config *, const key_spec *, const char *, char *);
static int set_bool(aq_config *, const key_spec *, const char *, char *);
static int set_str(aq_config *, const key_spec *, const char *, char *);
static int set_name(aq_config *, const key_spec *, const char *, char *);
static int set_url(aq_config *, const key_spec *, const char *, char *);
static int set_sizes(aq_config *, const key_spec *, const char *, char *);
static int set_style(aq_config *, const key_spec *, const char *, char *);
static int set_level(aq_config *, const key_spec *, const char *, char *);
static int set_format(aq_config *, const key_spec *, const char *, char *);
static int set_prefix(aq_config *, const key_spec *, const char *, char *);
static int set_endpoint(aq_config *, const key_spec *, const char *, char *);
static int set_bucket(aq_config *, const key_spec *, const char *, char *);
static int set_hostports(aq_config *, const key_spec *, const char *, char *);
static int set_queue(aq_config *, const key_spec *, const char *, char *);
static int set_mode(aq_config *, const key_spec *, const char *, char *);
static int set_listen(aq_config *, const key_spec *, const char *, char *);
static int set_token(aq_config *, const key_spec *, const char *, char *);
static int set_queues(aq_config *, const key_spec *, const char *, char *);
static int set_cb_url(aq_config *, const key_spec *, const char *, char *);

static int set_storage_backend(aq_config *, const key_spec *, const char *, char *);
static int set_database_backend(aq_config *, const key_spec *, const char *, char *);

#define F(field) offsetof(aq_config, field), sizeof(((aq_config *)0)->field)
#define DAY_S 86400LL
#define DAY_MS (86400LL * 1000)

static const key_spec KEYS[] = {
    {"redis", "url", "redis://127.0.0.1:6379/0", set_url, F(redis.url), 1, 511, 1},
    {"redis", "namespace", "avatarq", set_name, F(redis.ns), 1, 63, 0},
    {"redis", "queue", "default", set_queue, F(redis.queue), 1, 64, 0},
    {"redis", "connect_timeout_ms", "2000", set_int, F(redis.connect_timeout_ms), 1, 600000, 0},
    {"redis", "tls_ca_file", "", set_str, F(redis.tls_ca_file), 0, PATH_MAX - 1, 0},
    {"redis", "tls_cert_file", "", set_str, F(redis.tls_cert_file), 0, PATH_MAX - 1, 0},
    {"redis", "tls_key_file", "", set_str, F(redis.tls_key_file), 0, PATH_MAX - 1, 0},
    {"redis", "tls_server_name", "", set_name, F(redis.tls_server_name), 0, 255, 0},
    {"redis", "tls_verify", "true", set_bool, F(redis.tls_verify), 0, 0, 0},
    {"redis", "sentinels", "", set_hostports, F(redis.sentinels), 0, 1023, 0},
    {"redis", "sentinel_master", "mymaster", set_name, F(redis.sentinel_master), 1, 127, 0},
    {"redis", "sentinel_password", "", set_str, F(redis.sentinel_password), 0, 255, 1},
    {"redis", "cluster", "false", set_bool, F(redis.cluster), 0, 0, 0},
    {"redis", "min_replicas_ack", "0", set_int, F(redis.min_replicas_ack), 0, 100, 0},
    {"redis", "min_replicas_timeout_ms", "100", set_int, F(redis.min_replicas_timeout_ms), 1, 600000,
     0},
    {"redis", "max_queue_length", "0", set_int, F(redis.max_queue_length), 0, 2000000000, 0},

    {"worker", "processes", NULL, set_int, F(worker.processes), 1, 256, 0},
    {"worker", "concurrency", "16", set_int, F(worker.concurrency), 1, 256, 0},
    {"worker", "job_timeout_s", "60", set_int, F(worker.job_timeout_s), 1, DAY_S, 0},
    {"worker", "shutdown_timeout_s", "30", set_int, F(worker.shutdown_timeout_s), 0, DAY_S, 0},
    {"worker", "heartbeat_interval_s", "2", set_int, F(worker.heartbeat_interval_s), 1, 3600, 0},
    {"worker", "heartbeat_ttl_s", "10", set_int, F(worker.heartbeat_ttl_s), 2, DAY_S, 0},
    {"worker", "max_attempts", "5", set_int, F(worker.max_attempts), 1, 25, 0},
    {"worker", "backoff_base_ms", "1000", set_int, F(worker.backoff_base_ms), 1, DAY_MS, 0},
    {"worker", "backoff_max_ms", "300000", set_int, F(worker.backoff_max_ms), 1, 7 * DAY_MS, 0},
    {"worker", "result_ttl_s", "604800", set_int, F(worker.result_ttl_s), 1, 3650 * DAY_S, 0},
    {"worker", "dead_max", "10000", set_int, F(worker.dead_max), 1, 100000000, 0},
    {"worker", "events_max", "10000", set_int, F(worker.events_max), 1, 100000000, 0},
    {"worker", "queues", "", set_queues, F(worker.queues), 0, 1023, 0},

    {"render", "default_style", "pixel", set_style, F(render.default_style), 1, 15, 0},
    {"render", "default_sizes", "32,64,128,256,512", set_sizes, F(render.default_sizes), 1,
     CONFIG_MAX_SIZES, 0},
    {"render", "max_size", "1024", set_int, F(render.max_size), RENDER_MIN_SIZE, RENDER_MAX_SIZE, 0},

    {"storage", "backend", "local", set_storage_backend, F(storage.backend), 1, 15, 0},
    {"storage", "prefix", "avatars", set_prefix, F(storage.prefix), 0, 127, 0},

    {"storage.local", "root", "./var/avatars", set_str, F(storage.local.root), 1, PATH_MAX - 1, 0},
    {"storage.local", "fsync", "true", set_bool, F(storage.local.fsync), 0, 0, 0},
    {"storage.local", "file_mode", "0644", set_mode, F(storage.local.file_mode), 0, 0666, 0},
    {"storage.local", "dir_mode", "0755", set_mode, F(storage.local.dir_mode), 0, 0777, 0},

    {"storage.s3", "endpoint", "", set_endpoint, F(storage.s3.endpoint), 0, 511, 0},
    {"storage.s3", "region", "us-east-1", set_name, F(storage.s3.region), 1, 63, 0},
    {"storage.s3", "bucket", "", set_bucket, F(storage.s3.bucket), 0, 63, 0},
    /* Visible ASCII only: curl sends the access key in a header, and a CR/LF
     * there would inject one (set_name). */
    {"storage.s3", "access_key", "", set_name, F(storage.s3.access_key), 0, 255, 1},
    {"storage.s3", "secret_key", "", set_name, F(storage.s3.secret_key), 0, 255, 1},
    {"storage.s3", "ca_file", "", set_str, F(storage.s3.ca_file), 0, PATH_MAX - 1, 0},
    {"storage.s3", "path_style", "true", set_bool, F(storage.s3.path_style), 0, 0, 0},
    {"storage.s3", "timeout_ms", "10000", set_int, F(storage.s3.timeout_ms), 1, 600000, 0},
    {"storage.s3", "retries", "5", set_int, F(storage.s3.retries), 0, 100, 0},

    {"database", "backend", "sqlite", set_database_backend, F(database.backend), 1, 15, 0},
    {"database.sqlite", "path", "./var/avatarq.db", set_str, F(database.sqlite.path), 1, PATH_MAX - 1, 0},
    {"database.postgresql", "conninfo", "", set_str, F(database.pg.conninfo), 0, 1023, 1},
    {"database.postgresql", "retries", "5", set_int, F(database.pg.retries), 0, 100, 0},

    {"http", "listen", "127.0.0.1:8080", set_listen, F(http.listen), 3, 127, 0},
    {"http", "threads", "4", set_int, F(http.threads), 1, 256, 0},
    {"http", "max_connections", "1024", set_int, F(http.max_connections), 1, 1000000, 0},
    {"http", "timeout_s", "30", set_int, F(http.timeout_s), 1, 3600, 0},
    {"http", "auth_token", "", set_token, F(http.auth_token), 0, 255, 1},
    {"http", "cors_origins", "", set_str, F(http.cors_origins), 0, 1023, 0},
    {"http", "public_metrics", "false", set_bool, F(http.public_metrics), 0, 0, 0},

    {"log", "level", "info", set_level, F(log.level), 0, 0, 0},
    {"log", "format", "logfmt", set_format, F(log.format), 0, 0, 0},

    {"callbacks", "url", "", set_cb_url, F(callbacks.url), 0, CALLBACK_URL_MAX, 0},
    {"callbacks", "secret", "", set_str, F(callbacks.secret), 0, 255, 1},
    {"callbacks", "timeout_ms", "5000", set_int, F(callbacks.timeout_ms), 1, 600000, 0},
    {"callbacks", "max_attempts", "8", set_int, F(callbacks.max_attempts), 1, 100, 0},
    {"callbacks", "backoff_base_ms", "1000", set_int, F(callbacks.backoff_base_ms), 1, DAY_MS,
     0},
    {"callbacks", "backoff_max_ms", "60000", set_int, F(callbacks.backoff_max_ms), 1, DAY_MS,
     0},
    {"callbacks", "publish", "false", set_bool, F(callbacks.publish), 0, 0, 0},
};

_Static_assert(NELEM(KEYS) <= CONFIG_KEYS_MAX, "raise CONFIG_KEYS_MAX in config.h");

static void *field(aq_config *c, const key_spec *k)
{
    return (char *)c + k->off;
}

/* 'value' for a message: printable, truncated; secrets never shown. */
static const char *shown(const key_spec *k, const char *v, char *out, size_t n)
{
    if (k && k->secret) {
        snprintf(out, n, "(hidden)");
        return out;
    }
    char p[72];
    log_printable(v, strlen(v), p, sizeof p);
    snprintf(out, n, "'%s'", p);
    return out;
}

static int why_value(char *why, const key_spec *k, const char *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* why = "'value' " + the formatted rest. */
static int why_value(char *why, const key_spec *k, const char *v, const char *fmt, ...)
{
    char val[96], rest[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    snprintf(why, WHY, "%s %s", shown(k, v, val, sizeof val), rest);
    return -1;
}

/* ---- setters ---- */

static int parse_ll(const char *v, long long *out)
{
    if (!*v || isspace((unsigned char)*v))
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

static int set_int(aq_config *c, const key_spec *k, const char *v, char *why)
{
    long long x;
    if (parse_ll(v, &x) != 0)
        return why_value(why, k, v, "is not an integer");
    if (x < k->min || x > k->max)
        return why_value(why, k, v, "is out of range %lld..%lld", k->min, k->max);
    *(int *)field(c, k) = (int)x;
    return 0;
}

static int set_bool(aq_config *c, const key_spec *k, const char *v, char *why)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < NELEM(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *(bool *)field(c, k) = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return why_value(why, k, v, "is not a boolean (true/false, yes/no, on/off, 1/0)");
}

static int check_len(const key_spec *k, const char *v, char *why)
{
    size_t n = strlen(v);
    if (n < (size_t)k->min)
        return n == 0 ? (snprintf(why, WHY, "must not be empty"), -1)
                      : why_value(why, k, v, "is shorter than %lld bytes", k->min);
    if (n > (size_t)k->max || n >= k->size)
        return why_value(why, k, v, "is longer than %lld bytes", k->max);
    return 0;
}

static int set_str(aq_config *c, const key_spec *k, const char *v, char *why)
{
    if (check_len(k, v, why) != 0)
        return -1;
    memcpy(field(c, k), v, strlen(v) + 1);
    return 0;
}

/* Names that become part of Redis keys or HTTP headers: visible ASCII only. */
static int set_name(aq_config *c, const key_spec *k, const char *v, char *why)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return why_value(why, k, v, "may hold only visible ASCII characters");
    return set_str(c, k, v, why);
}

/* One "name" or "name:weight" of [worker] queues into q's entry i. */
static int queue_entry(config_queues *q, int i, char *item, const key_spec *k, const char *v,
                       char *why)
{
    char *colon = strchr(item, ':');
    long long w = 1;
    if (colon) {
        *colon = '\0';
        if (q->strict)
            return why_value(why, k, v, "'%s': strict queues take no weights", item);
        if (parse_ll(colon + 1, &w) != 0 || w < 1 || w > 1000)
            return why_value(why, k, v, "'%s': weight '%s' is not an integer 1..1000", item,
                             colon + 1);
    }
    if (!job_queue_valid(item))
        return why_value(why, k, v, "'%.70s' is not a queue name ([A-Za-z0-9._-]{1,64})", item);
    for (int j = 0; j < i; j++)
        if (strcmp(q->name[j], item) == 0)
            return why_value(why, k, v, "queue '%s' is listed twice", item);
    snprintf(q->name[i], sizeof q->name[i], "%s", item);
    q->weight[i] = (int)w;
    return 0;
}

/* A default callback URL: "" or an http(s) URL (callback_url_valid). */
static int set_cb_url(aq_config *c, const key_spec *k, const char *v, char *why)
{
    if (*v && !callback_url_valid(v))
        return why_value(why, k, v, "is not an http:// or https:// URL (visible ASCII, at "
                                    "most %d bytes)", CALLBACK_URL_MAX);
    return set_str(c, k, v, why);
}

/* "signup:10,bulk:1", "strict:signup,bulk", or "" (the [redis] queue only). */
static int set_queues(aq_config *c, const key_spec *k, const char *v, char *why)
{
    config_queues q = {0};
    char buf[1024];
    if (strlen(v) >= sizeof buf)
        return why_value(why, k, v, "is too long");
    snprintf(buf, sizeof buf, "%s", v);
    char *p = buf;
    if (strncmp(p, "strict:", 7) == 0) {
        q.strict = true;
        p += 7;
    }
    char *save = NULL;
    for (char *item = strtok_r(p, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        for (char *end = item + strlen(item); end > item && end[-1] == ' ';)
            *--end = '\0';
        if (q.n == CONFIG_QUEUES_MAX)
            return why_value(why, k, v, "more than %d queues", CONFIG_QUEUES_MAX);
        if (queue_entry(&q, q.n, item, k, v, why) != 0)
            return -1;
        q.n++;
    }
    if (q.strict && q.n == 0)
        return why_value(why, k, v, "'strict:' names no queue");
    *(config_queues *)field(c, k) = q;
    return 0;
}

static int set_storage_backend(aq_config *c, const key_spec *k, const char *v, char *why)
{
    char names[128];
    if (storage_find(v))
        return set_str(c, k, v, why);
    storage_names(names, sizeof names);
    return why_value(why, k, v, "is not one of %s", names);
}

static int set_database_backend(aq_config *c, const key_spec *k, const char *v, char *why)
{
    char names[128];
    if (meta_find(v))
        return set_str(c, k, v, why);
    meta_names(names, sizeof names);
    return why_value(why, k, v, "is not one of %s", names);
}

static int set_level(aq_config *c, const key_spec *k, const char *v, char *why)
{
    int x = log_level_parse(v);
    if (x < 0)
        return why_value(why, k, v, "is not a log level (error, warn, info, debug)");
    *(int *)field(c, k) = x;
    return 0;
}

static int set_format(aq_config *c, const key_spec *k, const char *v, char *why)
{
    int x = log_format_parse(v);
    if (x < 0)
        return why_value(why, k, v, "is not a log format (logfmt, json)");
    *(int *)field(c, k) = x;
    return 0;
}

static int set_style(aq_config *c, const key_spec *k, const char *v, char *why)
{
    if (render_style_find(v) < 0) {
        char list[128] = "";
        for (int i = 0; i < render_style_count(); i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     render_style_name(i));
        return why_value(why, k, v, "is not a style (%s)", list);
    }
    return set_str(c, k, v, why);
}

/* "32,64, 128": 1..CONFIG_MAX_SIZES distinct sizes, each a valid render
 * size; the check against max_size waits until every key is known. */
static int set_sizes(aq_config *c, const key_spec *k, const char *v, char *why)
{
    int sizes[CONFIG_MAX_SIZES];
    size_t n = 0;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char item[32];
        size_t len = strcspn(p, ",");
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0)
            return why_value(why, k, v, "has an empty item (want sizes like 32,64,128)");
        snprintf(item, sizeof item, "%.*s", (int)(len < 31 ? len : 31), p);
        long long x;
        if (len > 31 || parse_ll(item, &x) != 0)
            return why_value(why, k, v, "has '%s', which is not an integer", item);
        if (x < RENDER_MIN_SIZE || x > RENDER_MAX_SIZE)
            return why_value(why, k, v, "has %lld, outside %d..%d", x, RENDER_MIN_SIZE, RENDER_MAX_SIZE);
        for (size_t i = 0; i < n; i++)
            if (sizes[i] == x)
                return why_value(why, k, v, "lists %lld twice", x);
        if (n == CONFIG_MAX_SIZES)
            return why_value(why, k, v, "has more than %d sizes", CONFIG_MAX_SIZES);
        sizes[n++] = (int)x;
        p += strcspn(p, ",");
        if (!*p)
            break;
        p++;
    }
    memcpy(c->render.default_sizes, sizes, n * sizeof sizes[0]);
    c->render.n_default_sizes = n;
    return 0;
}

/* A key prefix below the storage root or bucket: relative, segments of
 * [A-Za-z0-9._-] that are not "." or "..", so it can never climb out. */
static int set_prefix(aq_config *c, const key_spec *k, const char *v, char *why)
{
    const char *seg = v;
    for (const char *p = v;; p++) {
        if (*p == '/' || !*p) {
            size_t len = (size_t)(p - seg);
            if (*v && len == 0)
                return why_value(why, k, v, "has an empty path segment (leading, trailing or double '/')");
            if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return why_value(why, k, v, "may not contain '.' or '..' segments");
            if (!*p)
                break;
            seg = p + 1;
        } else if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            return why_value(why, k, v, "may hold only A-Z a-z 0-9 . _ - and '/'");
        }
    }
    return set_str(c, k, v, why);
}

/* An S3 endpoint: http(s)://host[:port][/path], no userinfo. Credentials
 * belong in access_key/secret_key, where they are never printed; a URL is
 * printed (health, logs), so one holding "user:pass@" is refused unshown. */
static int set_endpoint(aq_config *c, const key_spec *k, const char *v, char *why)
{
    if (*v && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return snprintf(why, WHY, "(hidden) is not an http:// or https:// URL"), -1;
    const char *host = v + (strncmp(v, "http://", 7) == 0 ? 7 : 8);
    if (*v && memchr(host, '@', strcspn(host, "/?#")))
        return snprintf(why, WHY, "(hidden) holds a user name or password: put credentials in "
                        "[storage.s3] access_key and secret_key"), -1;
    if (*v && !*host)
        return why_value(why, k, v, "has no host");
    return set_name(c, k, v, why);
}

/* A permission mode in octal ("0640"), at most k->max (no setuid, setgid
 * or sticky bits; files get no execute bits). */
static int set_mode(aq_config *c, const key_spec *k, const char *v, char *why)
{
    size_t n = strlen(v);
    if (n == 0 || n > 4 || strspn(v, "01234567") != n)
        return why_value(why, k, v, "is not an octal mode (e.g. 0640)");
    long x = strtol(v, NULL, 8);
    if ((x & ~k->max) != 0)
        return why_value(why, k, v, "has bits outside %04llo", k->max);
    *(int *)field(c, k) = (int)x;
    return 0;
}

/* Queue names: the rule every entry point shares (job_queue_valid). */
static int set_queue(aq_config *c, const key_spec *k, const char *v, char *why)
{
    if (!job_queue_valid(v))
        return why_value(why, k, v, "is not a valid queue name ([A-Za-z0-9._-]{1,64})");
    return set_str(c, k, v, why);
}

/* S3 bucket names: 3..63 of a-z 0-9 . - (empty = not configured). */
static int set_bucket(aq_config *c, const key_spec *k, const char *v, char *why)
{
    size_t n = strlen(v);
    if (n && (n < 3 || n > 63 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n))
        return why_value(why, k, v, "is not a bucket name (3 to 63 of a-z 0-9 . -)");
    return set_str(c, k, v, why);
}

/* [http] listen: HOST:PORT or [IPV6]:PORT with a port 1..65535 (the host
 * is resolved when the server starts). */
static int set_listen(aq_config *c, const key_spec *k, const char *v, char *why)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (v[0] == '[' && colon[-1] != ']'))
        return why_value(why, k, v, "is not HOST:PORT");
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end || errno || port < 1 || port > 65535)
        return why_value(why, k, v, "has no port 1..65535");
    return set_name(c, k, v, why);
}

/* [http] auth_token: sent in an Authorization header, so visible ASCII
 * only; at least 16 characters when set (a guessable token is no token). */
static int set_token(aq_config *c, const key_spec *k, const char *v, char *why)
{
    size_t n = strlen(v);
    if (n && n < 16)
        return why_value(why, k, v, "is shorter than 16 characters");
    return set_name(c, k, v, why);
}

/* ---- Redis URLs ---- */

static int hexval(int ch)
{
    return isdigit(ch) ? ch - '0' : isxdigit(ch) ? (tolower(ch) - 'a' + 10) : -1;
}

/* Percent-decodes n bytes of s into out; -1 on a bad escape, %00, or no room. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return -1;
            ch = h * 16 + l;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

static int parse_uint(const char *s, size_t n, long long max, long long *out)
{
    if (n == 0 || n > 12)
        return -1;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    if (x > max)
        return -1;
    *out = x;
    return 0;
}

typedef struct redis_target {
    char host[256];
    int port;
    char user[128], password[256];
    int db;
    char unix_path[PATH_MAX];
} redis_target;

/* Splits "user:password" (or, as redis-cli reads it, a bare "password"). */
static int parse_userinfo(const char *s, size_t n, redis_target *t, char *why)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : 0;
    const char *pw = colon ? colon + 1 : s;
    size_t pwlen = n - (size_t)(pw - s);
    if (pct_decode(s, ulen, t->user, sizeof t->user) != 0)
        return snprintf(why, WHY, "has a bad user name (percent-escapes, length)"), -1;
    if (pct_decode(pw, pwlen, t->password, sizeof t->password) != 0)
        return snprintf(why, WHY, "has a bad password (percent-escapes, length)"), -1;
    return 0;
}

/* host[:port] or [v6]:port; then "" or "/" or "/db". */
static int parse_tcp(const char *rest, redis_target *t, char *why)
{
    const char *at = strrchr(rest, '@');
    if (at && parse_userinfo(rest, (size_t)(at - rest), t, why) != 0)
        return -1;
    const char *h = at ? at + 1 : rest, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend)
            return snprintf(why, WHY, "has an unclosed '[' in the host"), -1;
        h++;
        p = hend + 1;
    } else {
        hend = h + strcspn(h, ":/?#");
        p = hend;
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0)
        return snprintf(why, WHY, "has no host"), -1;
    if (hlen >= sizeof t->host || strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                            "0123456789.-_:%") < hlen)
        return snprintf(why, WHY, "has a bad host name"), -1;
    memcpy(t->host, h, hlen);
    t->host[hlen] = '\0';
    t->port = 6379;
    if (*p == ':') {
        long long port;
        size_t n = strcspn(p + 1, "/?#");
        if (parse_uint(p + 1, n, 65535, &port) != 0 || port == 0)
            return snprintf(why, WHY, "has a bad port (want 1..65535)"), -1;
        t->port = (int)port;
        p += 1 + n;
    }
    if (*p == '/' && p[1]) {
        long long db;
        if (parse_uint(p + 1, strlen(p + 1), 65535, &db) != 0)
            return snprintf(why, WHY, "has a bad database number after '/' (want 0..65535)"), -1;
        t->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return snprintf(why, WHY, "has unexpected text after the host"), -1;
    }
    return 0;
}

/* [userinfo@]/path[?db=N[&password=P]] */
static int parse_unix(const char *rest, redis_target *t, char *why)
{
    const char *slash = strchr(rest, '/'), *at = strchr(rest, '@');
    if (at && slash && at < slash) {
        if (parse_userinfo(rest, (size_t)(at - rest), t, why) != 0)
            return -1;
        rest = at + 1;
    }
    if (*rest != '/')
        return snprintf(why, WHY, "needs an absolute socket path (unix:///path/redis.sock)"), -1;
    size_t plen = strcspn(rest, "?");
    if (plen >= sizeof t->unix_path)
        return snprintf(why, WHY, "has a socket path that is too long"), -1;
    memcpy(t->unix_path, rest, plen);
    t->unix_path[plen] = '\0';
    for (const char *q = rest + plen; *q;) {
        q++; /* '?' or '&' */
        size_t n = strcspn(q, "&");
        long long db;
        if (strncmp(q, "db=", 3) == 0 && parse_uint(q + 3, n - 3, 65535, &db) == 0)
            t->db = (int)db;
        else if (strncmp(q, "password=", 9) == 0 &&
                 pct_decode(q + 9, n - 9, t->password, sizeof t->password) == 0)
            ;
        else
            return snprintf(why, WHY, "has a bad query parameter (want db=N or password=P)"), -1;
        q += n;
    }
    return 0;
}

/* A URL that failed to parse is never echoed, not even redacted: where its
 * userinfo ends is exactly what the parser could not tell, so a redaction
 * could leave a password in sight ("unix://:pa/ss@/sock"). */
static int set_url(aq_config *c, const key_spec *k, const char *v, char *why)
{
    static const struct {
        const char *scheme;
        int (*parse)(const char *rest, redis_target *t, char *why);
    } schemes[] = {{"redis://", parse_tcp}, {"rediss://", parse_tcp}, {"unix://", parse_unix},
                   {"redis+unix://", parse_unix}};
    if (check_len(k, v, why) != 0)
        return -1;
    bool tls = strncmp(v, "rediss://", 9) == 0;
    for (size_t i = 0; i < NELEM(schemes); i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncmp(v, schemes[i].scheme, n) != 0)
            continue;
        redis_target t;
        memset(&t, 0, sizeof t);
        char reason[WHY];
        int rc = schemes[i].parse(v + n, &t, reason);
        if (rc == 0) {
            memcpy(c->redis.url, v, strlen(v) + 1);
            memcpy(c->redis.host, t.host, sizeof t.host);
            c->redis.port = t.port;
            memcpy(c->redis.user, t.user, sizeof t.user);
            memcpy(c->redis.password, t.password, sizeof t.password);
            c->redis.db = t.db;
            memcpy(c->redis.unix_path, t.unix_path, sizeof t.unix_path);
            c->redis.tls = tls;
        } else {
            snprintf(why, WHY, "(hidden) %s URL %.200s", schemes[i].scheme, reason);
        }
        config_wipe(&t, sizeof t);
        return rc;
    }
    return snprintf(why, WHY, "(hidden) is not a redis://, rediss:// or unix:// URL"), -1;
}


/* "host:port,host:port" (blanks around items allowed; [v6]:port too):
 * every item needs a host and a port 1..65535. "" = none. */
static int set_hostports(aq_config *c, const key_spec *k, const char *v, char *why)
{
    if (check_len(k, v, why) != 0)
        return -1;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", v);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save), n++) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t len = strcspn(t, " \t");
        t[len] = '\0';
        char reason[WHY];
        redis_target r;
        memset(&r, 0, sizeof r);
        if (!strrchr(t, ':') || (strchr(t, ']') && strrchr(t, ':') < strchr(t, ']')))
            return why_value(why, k, v, "item %d ('%.60s') has no :port", n + 1, t), -1;
        if (parse_tcp(t, &r, reason) != 0 || strchr(t, '@') || strchr(t, '/'))
            return why_value(why, k, v, "item %d ('%.60s') is not host:port", n + 1, t), -1;
    }
    if (*v && n == 0)
        return why_value(why, k, v, "names no host:port");
    return set_str(c, k, v, why);
}

/* Copies up to n bytes of s into out at *o, always NUL-terminating. */
static void out_put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
    if (outlen == 0)
        return;
    for (size_t i = 0; i < n && *o + 1 < outlen; i++)
        out[(*o)++] = s[i];
    out[*o] = '\0';
}

void config_redact_url(const char *url, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen)
        out[0] = '\0';
    if (!url)
        return;
    /* The same split as the parser: userinfo ends at the last '@' (for
     * unix:// only an '@' before the path); even a URL that does not parse
     * gets its secret hidden. */
    const char *sep = strstr(url, "://");
    const char *auth = sep ? sep + 3 : url;
    bool is_unix = sep && (size_t)(sep - url) >= 4 && strncmp(sep - 4, "unix", 4) == 0;
    const char *at = strrchr(auth, '@');
    if (is_unix) {
        const char *slash = strchr(auth, '/');
        at = strchr(auth, '@');
        if (at && slash && slash < at)
            at = NULL;
    }
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        const char *pw = colon ? colon + 1 : auth;
        out_put(out, outlen, &o, url, (size_t)(pw - url));
        if (pw < at)
            out_put(out, outlen, &o, "***", 3);
    }
    /* Then hide password=... query values (unix:// URLs may carry one). */
    const char *p = at ? at : url, *q;
    while ((q = strstr(p, "password=")) != NULL) {
        bool param = q > url && (q[-1] == '?' || q[-1] == '&');
        out_put(out, outlen, &o, p, (size_t)(q + 9 - p));
        p = q + 9;
        if (param) {
            size_t n = strcspn(p, "&#");
            if (n)
                out_put(out, outlen, &o, "***", 3);
            p += n;
        }
    }
    out_put(out, outlen, &o, p, strlen(p));
}

void config_key(const aq_config *c, char *out, size_t outlen, const char *fmt, ...)
{
    int n = snprintf(out, outlen, "%s:", c->redis.ns);
    if (n < 0 || (size_t)n >= outlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, outlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- loading ---- */

static const key_spec *key_find(const char *section, const char *key)
{
    for (size_t i = 0; i < NELEM(KEYS); i++)
        if (strcasecmp(KEYS[i].section, section) == 0 && strcasecmp(KEYS[i].key, key) == 0)
            return &KEYS[i];
    return NULL;
}

static bool section_known(const char *section)
{
    for (size_t i = 0; i < NELEM(KEYS); i++)
        if (strcasecmp(KEYS[i].section, section) == 0)
            return true;
    return false;
}

int config_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

void config_defaults(aq_config *c)
{
    memset(c, 0, sizeof *c);
    char why[WHY];
    for (size_t i = 0; i < NELEM(KEYS); i++) {
        if (KEYS[i].def)
            KEYS[i].set(c, &KEYS[i], KEYS[i].def, why); /* defaults always parse (tested) */
    }
    c->worker.processes = config_cpus();
}

/* The environment name of a key: AVATARQ_STORAGE_S3_BUCKET. */
static void env_name(const key_spec *k, char *out, size_t n)
{
    snprintf(out, n, "AVATARQ_%s_%s", k->section, k->key);
    for (char *p = out; *p; p++)
        *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
}

/* Reports a bad value of k at its origin: "FILE:LINE: [s] k: why",
 * "AVATARQ_X ([s] k): why", or "[s] k: why" for a default. */
static int fail_key(const char *name, const key_spec *k, int origin,
                    const char *why, aq_err *e)
{
    if (origin > 0)
        return err_set(e, AQ_EPERM, "%s:%d: [%s] %s: %s", name, origin, k->section, k->key, why);
    if (origin < 0) {
        char env[96];
        env_name(k, env, sizeof env);
        return err_set(e, AQ_EPERM, "%s ([%s] %s): %s", env, k->section, k->key, why);
    }
    return err_set(e, AQ_EPERM, "[%s] %s: %s", k->section, k->key, why);
}

/* State of one parse through inih. inih hands us lines through reader(),
 * which counts them, so the handler knows the line of the key it sees. */
typedef struct parse_ctx {
    aq_config *c;
    const char *name;   /* for messages */
    const char *p;      /* the text still to read */
    int line;
    aq_err *e;
    bool failed;
    int fail_line;      /* the line of the first error */
} parse_ctx;

/* The longest line we accept (inih's runtime limit is set to this). */
#define LINE_MAX_BYTES 4000

static int ctx_fail(parse_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ctx_fail(parse_ctx *x, const char *fmt, ...)
{
    if (x->failed)
        return 1; /* keep the first error; inih goes on to the end */
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_set(x->e, AQ_EPERM, "%s:%d: %s", x->name, x->line, msg);
    x->failed = true;
    x->fail_line = x->line;
    return 1;
}

/* "[ Worker ]" names the section "Worker". */
static const char *trim_section(const char *s, char *out, size_t n)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    snprintf(out, n, "%.*s", (int)(len < n - 1 ? len : n - 1), s);
    return out;
}

/* Checks a "[section]" line ourselves: inih only reports sections through
 * the keys inside them, and an empty unknown section is still a typo. */
static void check_section_line(parse_ctx *x, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    if (!n || *s != '[')
        return;
    const char *end = memchr(s, ']', n);
    if (!end)
        return; /* inih reports it as a syntax error */
    char raw[80], sec[80], shown_sec[96];
    size_t len = (size_t)(end - s - 1);
    snprintf(raw, sizeof raw, "%.*s", (int)(len < 79 ? len : 79), s + 1);
    trim_section(raw, sec, sizeof sec);
    if (len >= 79 || !section_known(sec))
        ctx_fail(x, "unknown section [%s]", log_printable(sec, strlen(sec), shown_sec, sizeof shown_sec));
}

static char *reader(char *str, int num, void *stream)
{
    parse_ctx *x = stream;
    if (!*x->p)
        return NULL;
    size_t n = strcspn(x->p, "\n");
    size_t take = n + (x->p[n] == '\n');
    x->line++;
    const char *s = x->p;
    x->p += take;
    if (n > LINE_MAX_BYTES || take + 1 > (size_t)num) {
        ctx_fail(x, "line longer than %d bytes", LINE_MAX_BYTES);
        snprintf(str, (size_t)num, ";\n"); /* a comment in its place */
        return str;
    }
    check_section_line(x, s, n);
    /* Leading blanks would make inih read a continuation of the previous
     * value (Python-style multi-line); an indented key is just a key. */
    while (take && (*s == ' ' || *s == '\t'))
        s++, take--;
    memcpy(str, s, take);
    str[take] = '\0';
    return str;
}

static int handler(void *user, const char *raw_section, const char *name, const char *value)
{
    parse_ctx *x = user;
    char a[96], b[96], section[80];
    trim_section(raw_section, section, sizeof section);
    if (!*section)
        return ctx_fail(x, "key '%s' outside any section (add [section] above it)",
                        log_printable(name, strlen(name), a, sizeof a));
    if (!section_known(section))
        return ctx_fail(x, "unknown section [%s]", log_printable(section, strlen(section), b, sizeof b));
    const key_spec *k = key_find(section, name);
    if (!k)
        return ctx_fail(x, "[%s] unknown key '%s'", log_printable(section, strlen(section), b, sizeof b),
                        log_printable(name, strlen(name), a, sizeof a));
    int *origin = &x->c->origin[k - KEYS];
    if (*origin > 0)
        return ctx_fail(x, "[%s] %s: set twice (first on line %d)", k->section, k->key, *origin);
    char why[WHY];
    if (k->set(x->c, k, value, why) != 0)
        return ctx_fail(x, "[%s] %s: %s", k->section, k->key, why);
    *origin = x->line;
    return 1;
}

static int parse_text(aq_config *c, const char *text, const char *name, aq_err *e)
{
    parse_ctx x = {c, name, text, 0, e, false, 0};
    /* Debian's inih makes these limits run-time settings. */
    ini_max_line = LINE_MAX_BYTES + 3;
    ini_allow_multiline = false;
    int rc = ini_parse_stream(reader, &x, handler, &x);
    if (rc > 0 && (!x.failed || rc < x.fail_line)) {
        /* A syntax error before our first error: report that line instead. */
        x.failed = false;
        x.line = rc;
        ctx_fail(&x, "syntax error (want [section], key = value, or a ; comment)");
    }
    if (rc < 0 && !x.failed)
        return err_set(e, AQ_EPERM, "%s: out of memory while parsing", name);
    return x.failed ? AQ_EPERM : 0;
}

/* The key that was set last (env beats any line), for a two-key message. */
static size_t later_key(const aq_config *c, size_t a, size_t b)
{
    int oa = c->origin[a], ob = c->origin[b];
    if (oa < 0)
        return a;
    if (ob < 0)
        return b;
    return oa >= ob ? a : b;
}

static size_t key_index(const char *section, const char *key)
{
    return (size_t)(key_find(section, key) - KEYS);
}

static int fail_pair(const aq_config *c, size_t a, size_t b, const char *why, aq_err *e)
{
    size_t k = later_key(c, a, b);
    return fail_key(c->path[0] ? c->path : "config", &KEYS[k], c->origin[k], why, e);
}

/* Redis deployment rules: the two [redis] keys involved go to key[0..1]
 * (the message then names the one set last). A cluster keeps every key of
 * a namespace in one slot only when the namespace is a hash tag (Redis
 * hashes just the text between the first '{' and the next '}'). */
static int validate_redis(const aq_config *c, const char *key[2], char *why)
{
    const char *ns = c->redis.ns, *open = strchr(ns, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    static const struct {
        const char *a, *b;
        const char *msg;
    } rule[] = {
        {"namespace", "cluster", "with cluster = true the namespace must be a hash tag such as "
                                 "{avatarq} (every key of a namespace must share one hash slot)"},
        {"cluster", "sentinels", "cluster = true and sentinels exclude each other"},
        {"url", "cluster", "Redis Cluster has only database 0 (drop /N from the URL)"},
        {"tls_key_file", "tls_cert_file", "tls_cert_file and tls_key_file go together"},
        {"sentinels", "url", "Sentinel needs a redis:// or rediss:// URL (not a unix socket)"},
        {"cluster", "url", "Redis Cluster needs a redis:// or rediss:// URL (not a unix socket)"},
    };
    bool broken[] = {
        c->redis.cluster && (!open || !close || close == open + 1),
        c->redis.cluster && c->redis.sentinels[0],
        c->redis.cluster && c->redis.db != 0,
        !c->redis.tls_cert_file[0] != !c->redis.tls_key_file[0],
        c->redis.sentinels[0] && c->redis.unix_path[0],
        c->redis.cluster && c->redis.unix_path[0],
    };
    for (size_t i = 0; i < NELEM(rule); i++) {
        if (broken[i]) {
            key[0] = rule[i].a;
            key[1] = rule[i].b;
            return snprintf(why, WHY, "%s", rule[i].msg), -1;
        }
    }
    return 0;
}

/* Rules that involve more than one key. */
static int validate(const aq_config *c, aq_err *e)
{
    char why[WHY];
    if (c->worker.heartbeat_ttl_s <= c->worker.heartbeat_interval_s) {
        snprintf(why, sizeof why, "heartbeat_ttl_s (%d) must be greater than heartbeat_interval_s (%d)",
                 c->worker.heartbeat_ttl_s, c->worker.heartbeat_interval_s);
        return fail_pair(c, key_index("worker", "heartbeat_ttl_s"),
                         key_index("worker", "heartbeat_interval_s"), why, e);
    }
    if (c->worker.backoff_max_ms < c->worker.backoff_base_ms) {
        snprintf(why, sizeof why, "backoff_max_ms (%d) must be at least backoff_base_ms (%d)",
                 c->worker.backoff_max_ms, c->worker.backoff_base_ms);
        return fail_pair(c, key_index("worker", "backoff_max_ms"),
                         key_index("worker", "backoff_base_ms"), why, e);
    }
    for (size_t i = 0; i < c->render.n_default_sizes; i++) {
        if (c->render.default_sizes[i] > c->render.max_size) {
            snprintf(why, sizeof why, "default size %d is above max_size (%d)",
                     c->render.default_sizes[i], c->render.max_size);
            return fail_pair(c, key_index("render", "default_sizes"), key_index("render", "max_size"),
                             why, e);
        }
    }
    const char *pair[2];
    if (validate_redis(c, pair, why) != 0)
        return fail_pair(c, key_index("redis", pair[0]), key_index("redis", pair[1]), why, e);
    /* the keys the chosen storage backend says it needs */
    const storage_ops *ops = storage_find(c->storage.backend);
    char section[64];
    snprintf(section, sizeof section, "storage.%s", c->storage.backend);
    for (const char *const *need = ops ? ops->required : NULL; need && *need; need++) {
        const key_spec *k = key_find(section, *need);
        if (k && !*(const char *)((const char *)c + k->off)) {
            snprintf(why, sizeof why, "%s needs [%s] %s", c->storage.backend, section, *need);
            return fail_pair(c, (size_t)(k - KEYS), key_index("storage", "backend"), why, e);
        }
    }
    return 0;
}

/* AVATARQ_* variables that look like ours but name no key are typos. */
static int check_unknown_env(aq_err *e)
{
    extern char **environ;
    for (char **ev = environ; ev && *ev; ev++) {
        if (strncmp(*ev, "AVATARQ_", 8) != 0)
            continue;
        size_t n = strcspn(*ev, "=");
        bool known = false, ours = false;
        for (size_t i = 0; i < NELEM(KEYS) && !known; i++) {
            char name[96];
            env_name(&KEYS[i], name, sizeof name);
            known = strlen(name) == n && strncmp(name, *ev, n) == 0;
            size_t sl = strlen(name) - strlen(KEYS[i].key); /* "AVATARQ_SECTION_" */
            ours = ours || (n > sl && strncmp(name, *ev, sl) == 0);
        }
        if (!known && ours) {
            char shown_name[96];
            return err_set(e, AQ_EPERM, "%s: unknown configuration variable (see docs/protocol.md "
                           "Configuration for the keys)", log_printable(*ev, n, shown_name, sizeof shown_name));
        }
    }
    return 0;
}

int config_apply_env(aq_config *c, aq_err *e)
{
    char name[96], why[WHY];
    if (check_unknown_env(e) != 0)
        return AQ_EPERM;
    for (size_t i = 0; i < NELEM(KEYS); i++) {
        env_name(&KEYS[i], name, sizeof name);
        const char *v = getenv(name);
        if (!v)
            continue;
        if (KEYS[i].set(c, &KEYS[i], v, why) != 0)
            return fail_key("", &KEYS[i], -1, why, e);
        c->origin[i] = -1;
    }
    /* The standard AWS variables, when the keys are not configured. */
    static const struct { const char *var, *key; } aws[] = {
        {"AWS_ACCESS_KEY_ID", "access_key"}, {"AWS_SECRET_ACCESS_KEY", "secret_key"}};
    for (size_t i = 0; i < NELEM(aws); i++) {
        const key_spec *k = key_find("storage.s3", aws[i].key);
        const char *v = getenv(aws[i].var);
        if (!v || *(const char *)((const char *)c + k->off))
            continue;
        if (k->set(c, k, v, why) != 0)
            return err_set(e, AQ_EPERM, "%s: %s", aws[i].var, why);
    }
    return validate(c, e);
}

int config_load_string(aq_config *c, const char *text, const char *name, aq_err *e)
{
    config_defaults(c);
    snprintf(c->path, sizeof c->path, "%s", name ? name : "config");
    if (parse_text(c, text ? text : "", c->path, e) != 0)
        return AQ_EPERM;
    return validate(c, e);
}

#define FILE_MAX (1024 * 1024)

/* Why a config file may not be trusted, into why; NULL when it may. The file
 * picks the Redis server, the storage root and the database: one that
 * someone else owns or can write (./config.ini in a shared directory) would
 * hand them all of those. Non-regular files (/dev/null) only need a trusted
 * owner. */
static const char *file_distrust(const struct stat *st, char *why, size_t n)
{
    if (st->st_uid != geteuid() && st->st_uid != 0) {
        snprintf(why, n, "refused: owned by uid %u, not by you (uid %u) or root",
                 (unsigned)st->st_uid, (unsigned)geteuid());
        return why;
    }
    if (S_ISREG(st->st_mode) && (st->st_mode & (S_IWGRP | S_IWOTH))) {
        snprintf(why, n, "refused: %s-writable (mode %04o); run chmod go-w on it",
                 st->st_mode & S_IWOTH ? "world" : "group", (unsigned)(st->st_mode & 07777));
        return why;
    }
    return NULL;
}

/* Reads a whole config file; it is small, and inih then parses memory.
 * *st gets the file's status (for the secrets warning). */
static char *read_file(const char *path, struct stat *st, aq_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(e, AQ_EPERM, "%s: cannot read: %s", path, strerror(errno)), NULL;
    char distrust[160];
    if (fstat(fileno(f), st) != 0) {
        int err = errno;
        fclose(f);
        return err_set(e, AQ_EPERM, "%s: cannot read: %s", path, strerror(err)), NULL;
    }
    if (file_distrust(st, distrust, sizeof distrust)) {
        fclose(f);
        return err_set(e, AQ_EPERM, "%s: %s", path, distrust), NULL;
    }
    char *text = malloc(FILE_MAX + 1);
    if (!text) {
        fclose(f);
        return err_set(e, AQ_EAGAIN, "%s: cannot read: out of memory", path), NULL;
    }
    errno = 0;
    size_t n = fread(text, 1, FILE_MAX + 1, f);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    const char *why = err ? strerror(err) : NULL;
    char size[64];
    if (!why && n > FILE_MAX)
        why = (snprintf(size, sizeof size, "larger than %d bytes", FILE_MAX), size);
    else if (!why && memchr(text, '\0', n))
        why = "contains a NUL byte (not a text file?)";
    if (why) {
        config_wipe(text, n < FILE_MAX ? n : FILE_MAX);
        free(text);
        return err_set(e, AQ_EPERM, "%s: %s%s", path, err ? "cannot read: " : "", why), NULL;
    }
    text[n] = '\0';
    return text;
}

/* True when c holds a secret (a password or key) that the file gave it. */
static bool holds_secret(const aq_config *c)
{
    return c->redis.password[0] || c->storage.s3.access_key[0] || c->storage.s3.secret_key[0] ||
           strstr(c->database.pg.conninfo, "password") != NULL;
}

/* Warns when a config file holding secrets can be read by others: by
 * everyone, or by a group that is not the reader's own (root reads the
 * service's root:avatarq 0640 file to administer it). */
static void warn_readable(const aq_config *c, const char *path, const struct stat *st)
{
    if (!S_ISREG(st->st_mode) || !holds_secret(c))
        return;
    bool world = st->st_mode & S_IROTH;
    bool group = (st->st_mode & S_IRGRP) && st->st_gid != getegid() && geteuid() != 0;
    if (world || group) {
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", (unsigned)(st->st_mode & 07777));
        log_warn("config file holds secrets and is readable by others; chmod 0640 or 0600 it "
                 "(docs/protocol.md, Hardening)", "path", path, "mode", mode,
                 "readable_by", world ? "everyone" : "its group");
    }
}

void config_wipe(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

void config_wipe_secrets(aq_config *c)
{
    config_wipe(c->redis.url, sizeof c->redis.url);
    config_wipe(c->redis.password, sizeof c->redis.password);
    config_wipe(c->storage.s3.access_key, sizeof c->storage.s3.access_key);
    config_wipe(c->storage.s3.secret_key, sizeof c->storage.s3.secret_key);
    config_wipe(c->database.pg.conninfo, sizeof c->database.pg.conninfo);
}

int config_load(aq_config *c, const char *path, aq_err *e)
{
    static const char *const search[] = {"./config.ini", "/etc/avatarq/config.ini"};
    config_defaults(c);
    if (!path) {
        for (size_t i = 0; i < NELEM(search) && !path; i++)
            if (access(search[i], F_OK) == 0)
                path = search[i];
    }
    if (path) {
        if (strlen(path) >= sizeof c->path)
            return err_set(e, AQ_EPERM, "config file name longer than %d bytes", PATH_MAX - 1);
        snprintf(c->path, sizeof c->path, "%s", path);
        struct stat st;
        memset(&st, 0, sizeof st);
        char *text = read_file(path, &st, e);
        if (!text)
            return AQ_EPERM;
        int rc = parse_text(c, text, path, e);
        config_wipe(text, strlen(text));   /* it holds the secrets too */
        free(text);
        if (rc != 0)
            return rc;
        warn_readable(c, path, &st);
    }
    return config_apply_env(c, e);
}
