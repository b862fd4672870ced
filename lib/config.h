/* config: config.ini (through inih) plus AVATARQ_<SECTION>_<KEY> environment
 * overrides, validated. Every key of docs/protocol.md "Configuration", with its
 * default, lives in one table in config.c. */
#ifndef AQ_CONFIG_H
#define AQ_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define CONFIG_MAX_SIZES 16
#define CONFIG_KEYS_MAX 96 /* room for every key of the table in config.c */

/* [worker] queues: "signup:10,bulk:1" (weighted) or "strict:signup,bulk". */
#define CONFIG_QUEUES_MAX 16
typedef struct config_queues {
    int n;
    bool strict;
    char name[CONFIG_QUEUES_MAX][72];
    int weight[CONFIG_QUEUES_MAX];
} config_queues;

typedef struct aq_config {
    char path[PATH_MAX]; /* the file that was read; "" when none */

    struct {
        char url[512];            /* as configured (may hold a password) */
        char host[256];           /* parsed from url */
        int port;
        char user[128], password[256];
        int db;
        char unix_path[PATH_MAX]; /* redis+unix:// or unix:// URLs; "" for TCP */
        char ns[64];              /* [redis] namespace */
        char queue[65];           /* [A-Za-z0-9._-]{1,64} (job_queue_valid) */
        int connect_timeout_ms;
        /* Where the master is (docs/protocol.md "Redis deployments"). */
        bool tls;                 /* rediss:// URL */
        char tls_ca_file[PATH_MAX], tls_cert_file[PATH_MAX], tls_key_file[PATH_MAX];
        char tls_server_name[256];/* "" = the host being connected to */
        bool tls_verify;          /* [true] chain and host name */
        char sentinels[1024];     /* "host:port,host:port"; "" = no Sentinel */
        char sentinel_master[128];
        char sentinel_password[256];
        bool cluster;
        int min_replicas_ack;     /* WAIT N after enqueue and outcomes; 0 = off */
        int min_replicas_timeout_ms;
        int max_queue_length;     /* enqueue refused at this many; 0 = unlimited */
    } redis;

    struct {
        int processes;            /* default: number of online CPUs */
        int concurrency;          /* jobs in flight per process [16] */
        int job_timeout_s, shutdown_timeout_s;
        int heartbeat_interval_s, heartbeat_ttl_s;
        int max_attempts;
        int backoff_base_ms, backoff_max_ms;
        int result_ttl_s;
        int dead_max;             /* NS:dead trimmed to this many [10000] */
        int events_max;           /* NS:events MAXLEN ~ [10000] */
        config_queues queues;     /* [worker] queues; n 0 = [redis] queue only */
    } worker;

    struct {
        char default_style[16];
        int default_sizes[CONFIG_MAX_SIZES];
        size_t n_default_sizes;
        int max_size;
    } render;

    struct {
        char backend[16];         /* local | s3 */
        char prefix[128];
        struct {
            char root[PATH_MAX];
            bool fsync;
            int file_mode, dir_mode;  /* [0644] [0755], minus the umask */
        } local;
        struct {
            char endpoint[512], region[64], bucket[128];
            char access_key[256], secret_key[256];
            char ca_file[PATH_MAX];   /* "" = the system's CA bundle */
            bool path_style;
            int timeout_ms, retries;
        } s3;
    } storage;

    struct {
        char backend[16];         /* sqlite | postgresql */
        struct { char path[PATH_MAX]; } sqlite;
        struct { char conninfo[1024]; int retries; } pg;
    } database;

    struct {                      /* avatarq-http (docs/protocol.md "HTTP server") */
        char listen[128];         /* HOST:PORT or [V6]:PORT [127.0.0.1:8080] */
        int threads;              /* server threads [4] */
        int max_connections;      /* concurrent connections [1024] */
        int timeout_s;            /* idle/slow connection timeout [30] */
        char auth_token[256];     /* bearer token for writes and operator endpoints */
        char cors_origins[1024];  /* comma-separated origins or "*"; "" = no CORS */
        bool public_metrics;      /* /metrics without the token [false] */
    } http;

    struct {
        int level;                /* LOG_* from log.h */
        int format;               /* LOG_FMT_* from log.h */
    } log;

    struct {                      /* [callbacks]: completion callbacks */
        char url[520];            /* default callback URL; "" = none */
        char secret[256];         /* HMAC-SHA256 key; "" = unsigned */
        int timeout_ms;           /* one POST [5000] */
        int max_attempts;         /* POSTs before giving up [8] */
        int backoff_base_ms, backoff_max_ms; /* between POSTs [1000, 60000] */
        bool publish;             /* PUBLISH NS:done per finished job [false] */
    } callbacks;

    /* Where each key's value came from, by its index in config.c's table:
     * > 0 that line of path, 0 the default, -1 the environment. Only for
     * error messages that involve two keys. */
    int origin[CONFIG_KEYS_MAX];
} aq_config;

/* Fills c with every default of docs/protocol.md. */
void config_defaults(aq_config *c);

/* The online CPUs, 1 to 256: the default of [worker] processes, of
 * `render -j`, and how many job threads of a worker render at once. */
int config_cpus(void);

/* Loads defaults, then the file (path, or when NULL ./config.ini if it exists,
 * else /etc/avatarq/config.ini if it exists, else no file), then the
 * environment overrides, then validates. An explicit path that cannot be read
 * is an error, and so is a file owned by someone other than the caller or
 * root, or a regular file that is group- or world-writable (the message says
 * which). A file holding secrets that others can read gets a log warning. Errors name file, line and key ("config.ini:12: [worker]
 * processes: 'x' is not an integer"). Returns 0 or AQ_EPERM. */
int config_load(aq_config *c, const char *path, aq_err *e);

/* Loads from an in-memory INI text (for tests and fuzzing), name is used in
 * messages; no environment overrides. Returns 0 or AQ_EPERM. */
int config_load_string(aq_config *c, const char *text, const char *name, aq_err *e);

/* Applies AVATARQ_* environment overrides and validates. */
int config_apply_env(aq_config *c, aq_err *e);

/* Overwrites n bytes at p with zeros in a way the compiler keeps
 * (explicit_bzero): for secrets that are no longer needed. */
void config_wipe(void *p, size_t n);

/* Wipes every secret of c (Redis URL and password, S3 keys, PostgreSQL
 * conninfo) once they have been handed to the client libraries. */
void config_wipe_secrets(aq_config *c);

/* Writes url with any password replaced by "***" into out. */
void config_redact_url(const char *url, char *out, size_t outlen);

/* Key namespaced: out = "NS:suffix" (e.g. config_key(c, buf, n, "queue:%s", q)). */
void config_key(const aq_config *c, char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
