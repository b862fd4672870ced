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
#define CONFIG_KEYS_MAX 64 /* room for every key of the table in config.c */

/* [worker] queues: "signup:10,bulk:1" (weighted) or "strict:signup,bulk". */
#define CONFIG_QUEUES_MAX 16
typedef struct config_queues {
    int n;
    bool strict;
    char name[CONFIG_QUEUES_MAX][72];
    int weight[CONFIG_QUEUES_MAX];
} config_queues;

/* The one rule for queue names everywhere a name is taken from a person or
 * a program (config, CLI, API): [A-Za-z0-9._-]{1,64}. */
bool config_queue_name_valid(const char *s);

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
        char queue[64];
        int connect_timeout_ms;
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
        } local;
        struct {
            char endpoint[512], region[64], bucket[128];
            char access_key[256], secret_key[256];
            bool path_style;
            int timeout_ms, retries;
        } s3;
    } storage;

    struct {
        char backend[16];         /* sqlite | postgresql */
        struct { char path[PATH_MAX]; } sqlite;
        struct { char conninfo[1024]; int retries; } pg;
    } database;

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

/* Loads defaults, then the file (path, or when NULL ./config.ini if it exists,
 * else /etc/avatarq/config.ini if it exists, else no file), then the
 * environment overrides, then validates. An explicit path that cannot be read
 * is an error. Errors name file, line and key ("config.ini:12: [worker]
 * processes: 'x' is not an integer"). Returns 0 or AQ_EPERM. */
int config_load(aq_config *c, const char *path, aq_err *e);

/* Loads from an in-memory INI text (for tests and fuzzing), name is used in
 * messages; no environment overrides. Returns 0 or AQ_EPERM. */
int config_load_string(aq_config *c, const char *text, const char *name, aq_err *e);

/* Applies AVATARQ_* environment overrides and validates. */
int config_apply_env(aq_config *c, aq_err *e);

/* Writes url with any password replaced by "***" into out. */
void config_redact_url(const char *url, char *out, size_t outlen);

/* Key namespaced: out = "NS:suffix" (e.g. config_key(c, buf, n, "queue:%s", q)). */
void config_key(const aq_config *c, char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
