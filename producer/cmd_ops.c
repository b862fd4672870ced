/* Operator commands: stats, dead, workers, quiet|resume|stop, health. They
 * talk to Redis through lib/queue (the one home of every Redis command). */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "meta.h"
#include "queue.h"
#include "retry.h"
#include "storage.h"

/* Parses options that are only flags: each long option's val is its index
 * in flags[] (NULL when the command takes no option). Returns 0, or 2 after
 * printing the error. */
static int parse_flags(int argc, char **argv, const struct option *longopts, bool *flags)
{
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == '?' || c == ':')
            return cli_getopt_fail(argv[0], c, argv);
        if (flags)
            flags[c] = true;
    }
    return 0;
}

static queue *open_queue(const cli_ctx *ctx, const char *cmd)
{
    aq_err e;
    err_clear(&e);
    queue *q = queue_open(&ctx->cfg, &e);
    if (!q)
        cli_fail(cmd, 1, "%s", e.msg);
    return q;
}

/* "server=HOST:PORT role=master tls=on via=sentinel": the master in use. */
static void describe_server(const queue *q, char *out, size_t n)
{
    queue_server s;
    queue_server_get(q, &s);
    snprintf(out, n, "server=%s role=%s tls=%s via=%s", s.where, s.role, s.tls ? "on" : "off", s.via);
}

static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(v);
}

/* ---- workers (used by stats and workers) ---- */

typedef struct worker_list {
    queue_worker_info *w;
    size_t n, cap;
} worker_list;

static int collect_worker(const queue_worker_info *w, void *ud)
{
    worker_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        queue_worker_info *nw = realloc(l->w, cap * sizeof *nw);
        if (!nw)
            return -1;
        l->w = nw;
        l->cap = cap;
    }
    l->w[l->n++] = *w;
    return 0;
}

static int by_worker_id(const void *a, const void *b)
{
    const queue_worker_info *x = a, *y = b;
    if (x->alive != y->alive)
        return x->alive ? -1 : 1; /* live ones first */
    return strcmp(x->id, y->id);
}

static int load_workers(queue *q, const char *cmd, worker_list *l)
{
    aq_err e;
    err_clear(&e);
    memset(l, 0, sizeof *l);
    if (queue_workers(q, collect_worker, l, &e) != 0)
        return cli_fail(cmd, 1, "%s", e.msg[0] ? e.msg : "out of memory");
    if (l->n)
        qsort(l->w, l->n, sizeof l->w[0], by_worker_id);
    return 0;
}

static json_t *worker_json(const queue_worker_info *w, int64_t now)
{
    return json_pack("{s:s, s:s, s:I, s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "id", w->id, "host", w->host, "pid", (json_int_t)w->pid, "alive", w->alive,
                     "state", w->alive ? w->state : "dead", "job", w->job, "queue", w->queue,
                     "done", (json_int_t)w->done, "failed", (json_int_t)w->failed,
                     "rss_kb", (json_int_t)w->rss_kb, "started_at", (json_int_t)w->started_at,
                     "beat_at", (json_int_t)w->beat_at,
                     "beat_age_ms", (json_int_t)(w->beat_at ? now - w->beat_at : -1));
}

/* "3s", "2m05s", "1h10m": how long ago the last heartbeat was. */
static const char *age(int64_t ms, char out[24])
{
    if (ms < 0) {
        snprintf(out, 24, "-");
        return out;
    }
    long s = (long)(ms / 1000);
    if (s < 60)
        snprintf(out, 24, "%lds", s);
    else if (s < 3600)
        snprintf(out, 24, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(out, 24, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    return out;
}

static void workers_print(const worker_list *l, int64_t now)
{
    printf("%-24s %7s %-8s %-24s %8s %7s %9s %s\n", "HOST", "PID", "STATE", "JOB", "DONE",
           "FAILED", "RSS", "BEAT");
    for (size_t i = 0; i < l->n; i++) {
        const queue_worker_info *w = &l->w[i];
        char a[24], rss[24];
        if (w->rss_kb > 0)
            snprintf(rss, sizeof rss, "%.1fMB", (double)w->rss_kb / 1024.0);
        else
            snprintf(rss, sizeof rss, "-");
        printf("%-24s %7ld %-8s %-24s %8lld %7lld %9s %s\n", w->host[0] ? cli_safe(w->host) : "-",
               w->pid, w->alive ? (w->state[0] ? cli_safe(w->state) : "-") : "dead",
               w->job[0] ? cli_safe(w->job) : "-", (long long)w->done, (long long)w->failed, rss,
               age(w->beat_at ? now - w->beat_at : -1, a));
    }
}

int cmd_workers(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 0}, {NULL, 0, NULL, 0}};
    bool flags[1] = {false};
    int rc = parse_flags(argc, argv, longopts, flags);
    if (rc || (rc = cli_positional(argv[0], argc, argv, 0, "")))
        return rc;
    queue *q = open_queue(ctx, argv[0]);
    if (!q)
        return 1;
    worker_list l;
    char server[400];
    describe_server(q, server, sizeof server);
    rc = load_workers(q, argv[0], &l);
    queue_close(q);
    if (rc)
        return rc;
    int64_t now = now_ms();
    if (!flags[0])
        printf("redis %s\n", server);
    if (flags[0]) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l.n; i++)
            json_array_append_new(arr, worker_json(&l.w[i], now));
        print_json(arr);
    } else if (l.n == 0) {
        printf("no workers registered\n");
    } else {
        workers_print(&l, now);
    }
    free(l.w);
    return 0;
}

/* ---- stats ---- */

static json_t *stats_json(const aq_config *cfg, const queue_stats *s, const worker_list *l,
                          int64_t now)
{
    json_t *workers = json_array();
    for (size_t i = 0; i < l->n; i++)
        if (l->w[i].alive)
            json_array_append_new(workers, worker_json(&l->w[i], now));
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                     "s:I, s:I, s:I, s:I}}",
                     "queue", cfg->redis.queue, "queued", (json_int_t)s->queued,
                     "processing", (json_int_t)s->processing, "delayed", (json_int_t)s->delayed,
                     "dead", (json_int_t)s->dead, "workers", workers, "counters",
                     "enqueued", (json_int_t)s->enqueued, "started", (json_int_t)s->started,
                     "done", (json_int_t)s->done, "failed", (json_int_t)s->failed,
                     "retried", (json_int_t)s->retried, "dead", (json_int_t)s->dead_total,
                     "recovered", (json_int_t)s->recovered, "cancelled", (json_int_t)s->cancelled,
                     "callbacks_sent", (json_int_t)s->callbacks_sent,
                     "callbacks_retried", (json_int_t)s->callbacks_retried,
                     "callbacks_failed", (json_int_t)s->callbacks_failed);
}

static void stats_print(const aq_config *cfg, const queue_stats *s, const worker_list *l)
{
    size_t live = 0;
    for (size_t i = 0; i < l->n; i++)
        live += l->w[i].alive;
    printf("queued       %lld  (queue %s)\n", (long long)s->queued, cli_safe(cfg->redis.queue));
    printf("processing   %lld\n", (long long)s->processing);
    printf("delayed      %lld\n", (long long)s->delayed);
    printf("dead         %lld\n", (long long)s->dead);
    printf("workers      %zu live, %zu dead\n", live, l->n - live);
    for (size_t i = 0; i < l->n; i++) {
        const queue_worker_info *w = &l->w[i];
        if (w->alive)
            printf("  %-28s %-8s %s\n", cli_safe(w->id), w->state[0] ? cli_safe(w->state) : "-",
                   w->job[0] ? cli_safe(w->job) : "-");
    }
    printf("counters     enqueued %lld, started %lld, done %lld, failed %lld, retried %lld, "
           "dead %lld, recovered %lld\n",
           (long long)s->enqueued, (long long)s->started, (long long)s->done,
           (long long)s->failed, (long long)s->retried, (long long)s->dead_total,
           (long long)s->recovered);
    printf("             cancelled %lld; callbacks sent %lld, retried %lld, failed %lld\n",
           (long long)s->cancelled, (long long)s->callbacks_sent,
           (long long)s->callbacks_retried, (long long)s->callbacks_failed);
}

int cmd_stats(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 0}, {NULL, 0, NULL, 0}};
    bool flags[1] = {false};
    int rc = parse_flags(argc, argv, longopts, flags);
    if (rc || (rc = cli_positional(argv[0], argc, argv, 0, "")))
        return rc;
    queue *q = open_queue(ctx, argv[0]);
    if (!q)
        return 1;
    aq_err e;
    err_clear(&e);
    queue_stats s;
    memset(&s, 0, sizeof s);
    worker_list l = {0};
    if (queue_stats_get(q, &s, &e) != 0)
        rc = cli_fail(argv[0], 1, "%s", e.msg);
    else
        rc = load_workers(q, argv[0], &l);
    queue_close(q);
    if (rc == 0) {
        if (flags[0])
            print_json(stats_json(&ctx->cfg, &s, &l, now_ms()));
        else
            stats_print(&ctx->cfg, &s, &l);
    }
    free(l.w);
    return rc;
}

/* ---- dead letters ---- */

typedef struct dead_print {
    bool json;
    json_t *arr;
    long n;
} dead_print;

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : "-";
}

static int dead_one(const char *doc, void *ud)
{
    dead_print *dp = ud;
    dp->n++;
    json_t *o = json_loads(doc, JSON_DECODE_ANY, NULL);
    if (dp->json) {
        json_array_append_new(dp->arr, o ? o : json_string(doc));
        return 0;
    }
    if (!json_is_object(o)) {
        /* Not even JSON: show it raw, short. */
        char head[61];
        snprintf(head, sizeof head, "%s", doc);
        printf("-  %s\n", cli_safe(head));
    } else {
        char t[32];
        json_int_t at = json_integer_value(json_object_get(o, "failed_at"));
        printf("%-24s %s  attempts %lld  %s\n", cli_safe(jstr(o, "id")), cli_time(at, t),
               (long long)json_integer_value(json_object_get(o, "attempts")),
               cli_safe(jstr(o, "error")));
    }
    json_decref(o);
    return 0;
}

static int dead_list(queue *q, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"limit", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    long limit = 20;
    dead_print dp = {0};
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        int rc = 0;
        if (c == 'j')
            dp.json = true;
        else if (c == 'l')
            rc = cli_int("dead", "--limit", optarg, 1, 1000000, &limit);
        else
            rc = cli_getopt_fail("dead", c, argv);
        if (rc)
            return rc;
    }
    int rc = cli_positional("dead", argc, argv, 0, "");
    if (rc)
        return rc;
    aq_err e;
    err_clear(&e);
    if (dp.json)
        dp.arr = json_array();
    if (queue_dead_list(q, 0, limit - 1, dead_one, &dp, &e) != 0) {
        json_decref(dp.arr);
        return cli_fail("dead", 1, "%s", e.msg);
    }
    if (dp.json) {
        print_json(dp.arr);
        return 0;
    }
    if (dp.n == 0) {
        printf("no dead jobs\n");
        return 0;
    }
    /* A full page: say how many more there are (on stderr, so a pipe gets
     * only the list). */
    queue_stats s;
    if (dp.n == limit && queue_stats_get(q, &s, &e) == 0 && s.dead > dp.n)
        fprintf(stderr, "(%ld of %lld dead jobs shown; --limit N for more)\n", dp.n,
                (long long)s.dead);
    return 0;
}

static int dead_retry(queue *q, int argc, char **argv)
{
    static const struct option longopts[] = {{"all", no_argument, NULL, 0}, {NULL, 0, NULL, 0}};
    bool all = false;
    int rc = parse_flags(argc, argv, longopts, &all);
    if (rc)
        return rc;
    if (all && argc - optind > 0)
        return cli_fail("dead", 2, "retry: give an ID or --all, not both");
    if (!all && (rc = cli_positional("dead", argc, argv, 1, "ID (or --all) for retry")))
        return rc;
    const char *id = all ? NULL : argv[optind];
    if (id && !job_id_valid(id))
        return cli_fail("dead", 2, "retry: '%s' is not a valid id", id);
    aq_err e;
    err_clear(&e);
    int n = 0;
    if (queue_dead_retry(q, id, all, &n, &e) != 0)
        return cli_fail("dead", 1, "%s", e.msg);
    if (id && n == 0)
        return cli_fail("dead", 1, "retry: no dead job '%s'", id);
    printf("retried %d dead job%s\n", n, n == 1 ? "" : "s");
    return 0;
}

static int dead_purge(queue *q, int argc, char **argv)
{
    int rc = cli_no_options("dead", argc, argv, 0, "");
    if (rc)
        return rc;
    aq_err e;
    err_clear(&e);
    int n = 0;
    if (queue_dead_purge(q, &n, &e) != 0)
        return cli_fail("dead", 1, "%s", e.msg);
    printf("purged %d dead job%s\n", n, n == 1 ? "" : "s");
    return 0;
}

static const struct {
    const char *name;
    int (*run)(queue *q, int argc, char **argv);
} dead_subs[] = {
    {"list", dead_list},
    {"retry", dead_retry},
    {"purge", dead_purge},
};

int cmd_dead(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(argv[0], 2, "missing subcommand (list, retry or purge)");
    for (size_t i = 0; i < sizeof dead_subs / sizeof dead_subs[0]; i++) {
        if (strcmp(argv[1], dead_subs[i].name) != 0)
            continue;
        queue *q = open_queue(ctx, argv[0]);
        if (!q)
            return 1;
        optind = 0;
        opterr = 0;
        int rc = dead_subs[i].run(q, argc - 1, argv + 1);
        queue_close(q);
        return rc;
    }
    return cli_fail(argv[0], 2, "unknown subcommand '%s' (list, retry or purge)", argv[1]);
}

/* ---- remote control ---- */

int cmd_control(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"worker", required_argument, NULL, 'w'},
        {"host", required_argument, NULL, 'H'},
        {"all", no_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    char target[200] = "";
    int ntargets = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == 'w' || c == 'H') {
            if (!*optarg)
                return cli_fail(argv[0], 2, "--%s: empty", c == 'w' ? "worker" : "host");
            if (strlen(optarg) > 150)
                return cli_fail(argv[0], 2, "--%s: too long", c == 'w' ? "worker" : "host");
            snprintf(target, sizeof target, "%s:%s", c == 'w' ? "worker" : "host", optarg);
        } else if (c == 'a') {
            snprintf(target, sizeof target, "all");
        } else {
            return cli_getopt_fail(argv[0], c, argv);
        }
        ntargets++;
    }
    int rc = cli_positional(argv[0], argc, argv, 0, "");
    if (rc)
        return rc;
    if (ntargets != 1)
        return cli_fail(argv[0], 2, "give exactly one of --worker ID, --host H, --all");
    queue *q = open_queue(ctx, argv[0]);
    if (!q)
        return 1;
    aq_err e;
    err_clear(&e);
    rc = queue_control_post(q, target, argv[0], &e);
    queue_close(q);
    if (rc != 0)
        return cli_fail(argv[0], 1, "%s", e.msg);
    printf("posted %s to %s\n", argv[0], target);
    return 0;
}

/* ---- health ---- */

static int check_redis(const aq_config *cfg)
{
    char url[600];
    config_redact_url(cfg->redis.url, url, sizeof url);
    aq_err e;
    err_clear(&e);
    queue *q = queue_open(cfg, &e);
    char policy[64] = "", server[400] = "";
    int rc = q ? queue_maxmemory_policy(q, policy, sizeof policy, &e) : -1;
    if (q)
        describe_server(q, server, sizeof server);
    queue_close(q);
    if (rc != 0) {
        printf("fail redis %s: %s\n", cli_safe(url), cli_safe(e.msg));
        return 1;
    }
    /* Eviction would drop jobs silently: worth a word, not a failure. */
    bool safe = strcmp(policy, "noeviction") == 0;
    printf("ok redis %s %s maxmemory-policy=%s%s\n", cli_safe(url), cli_safe(server),
           cli_safe(policy),
           safe ? "" : " (warning: Redis may evict jobs; set noeviction)");
    return 0;
}

/* " (warning: CAUTION)" when the backend described one, else "". */
static const char *warning(const char *caution, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s", *caution ? " (warning: " : "", cli_safe(caution), *caution ? ")" : "");
    return out;
}

static int check_database(const aq_config *cfg)
{
    char where[PATH_MAX + 1100], caution[400], warn[480];
    const meta_ops *ops = meta_find(cfg->database.backend); /* config.c checked the name */
    ops->describe(cfg, where, sizeof where, caution, sizeof caution);
    aq_err e;
    err_clear(&e);
    meta m = {0};
    int64_t rows = 0;
    int rc = meta_open(&m, cfg, true, &e);
    if (rc == 0)
        rc = meta_check(&m, &e);
    if (rc == 0)
        rc = meta_count(&m, &rows, &e);
    if (m.ops)
        meta_close(&m);
    if (rc != 0) {
        /* The usual cause on a new machine is a schema nobody migrated yet. */
        bool hint = rc == AQ_EPERM && !strstr(e.msg, "migrate");
        printf("fail database %s %s: %s%s%s\n", cfg->database.backend, cli_safe(where), cli_safe(e.msg),
               hint ? " (schema missing? run avatarq migrate)" : "", warning(caution, warn, sizeof warn));
        return 1;
    }
    printf("ok database %s %s rows=%lld%s\n", cfg->database.backend, cli_safe(where), (long long)rows,
           warning(caution, warn, sizeof warn));
    return 0;
}

static int check_storage(const aq_config *cfg)
{
    aq_err e;
    err_clear(&e);
    storage s = {0};
    int rc = storage_open(&s, cfg, &e);
    char where[PATH_MAX + 800], caution[400], warn[480];
    storage_find(cfg->storage.backend)->describe(cfg, where, sizeof where, caution, sizeof caution);
    if (rc == 0)
        rc = storage_check(&s, &e);
    if (s.ops)
        storage_close(&s);
    if (rc != 0) {
        printf("fail storage %s %s: %s%s\n", cfg->storage.backend, cli_safe(where), cli_safe(e.msg),
               warning(caution, warn, sizeof warn));
        return 1;
    }
    printf("ok storage %s %s%s\n", cfg->storage.backend, cli_safe(where),
           warning(caution, warn, sizeof warn));
    return 0;
}

int cmd_health(cli_ctx *ctx, int argc, char **argv)
{
    int rc = cli_no_options(argv[0], argc, argv, 0, "");
    if (rc)
        return rc;
    static int (*const checks[])(const aq_config *) = {check_redis, check_database,
                                                        check_storage};
    int failed = 0;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        failed += checks[i](&ctx->cfg);
        fflush(stdout);
    }
    return failed ? 1 : 0;
}
