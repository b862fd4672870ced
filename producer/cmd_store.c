/* Commands on what the workers produced: list, show (metadata store), get
 * (storage backend), delete, migrate. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "avatar.h"
#include "cli.h"
#include "meta.h"
#include "storage.h"

#define ERRLEN 512

/* Opens the metadata store without touching its schema: reading commands
 * must not migrate a database behind the operator's back. */
static int open_meta(const cli_ctx *ctx, const char *cmd, meta *m)
{
    aq_err e;
    err_clear(&e);
    memset(m, 0, sizeof *m);
    if (meta_open(m, &ctx->cfg, true, &e) != 0)
        return cli_fail(cmd, 1, "database: %s", e.msg);
    return 0;
}

static int open_storage(const cli_ctx *ctx, const char *cmd, storage *s)
{
    aq_err e;
    err_clear(&e);
    memset(s, 0, sizeof *s);
    if (storage_open(s, &ctx->cfg, &e) != 0)
        return cli_fail(cmd, 1, "storage: %s", e.msg);
    return 0;
}

static int check_id(const char *cmd, const char *id)
{
    if (!job_id_valid(id))
        return cli_fail(cmd, 2, "'%s' is not a valid id ([A-Za-z0-9._-]{1,64}, not starting "
                                "with '.')", id);
    return 0;
}

/* A JSON text stored in a row as a JSON value (null when unreadable). */
static json_t *embedded(const char *text)
{
    json_t *v = text && *text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *nullable(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *row_json(const meta_row *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "seed", json_string(r->seed));
    json_object_set_new(o, "style", json_string(r->style));
    json_object_set_new(o, "primary_color", nullable(r->primary_color));
    json_object_set_new(o, "foreign_color", nullable(r->foreign_color));
    json_object_set_new(o, "scheme", nullable(r->scheme));
    json_object_set_new(o, "angle", r->angle < 0 ? json_null() : json_real(r->angle));
    json_object_set_new(o, "filter", json_string(r->filter));
    json_object_set_new(o, "format", json_string(r->format[0] ? r->format : "png"));
    json_object_set_new(o, "sizes", embedded(r->sizes));
    json_object_set_new(o, "storage", json_string(r->storage));
    json_object_set_new(o, "location", json_string(r->location));
    json_object_set_new(o, "keys", embedded(r->keys));
    json_object_set_new(o, "bytes", json_integer(r->bytes));
    json_object_set_new(o, "sha256", embedded(r->sha256));
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_object_set_new(o, "worker", json_string(r->worker));
    json_object_set_new(o, "created_at", json_integer(r->created_at));
    json_object_set_new(o, "generated_at", json_integer(r->generated_at));
    return o;
}

static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(v);
}

/* Parses "--json" (and nothing else) plus exactly npos positionals. */
static int parse_json_flag(int argc, char **argv, int npos, const char *what, bool *json)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    *json = false;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c != 'j')
            return cli_getopt_fail(argv[0], c, argv);
        *json = true;
    }
    return cli_positional(argv[0], argc, argv, npos, what);
}

/* ---- list ---- */

typedef struct list_out {
    json_t *arr;      /* NULL: print a table */
    long n;
    char last[65];
} list_out;

static int list_row(const meta_row *r, void *ud)
{
    list_out *lo = ud;
    lo->n++;
    snprintf(lo->last, sizeof lo->last, "%s", r->id);
    if (lo->arr) {
        json_array_append_new(lo->arr, row_json(r));
        return 0;
    }
    char t[32];
    printf("%-32s %-9s %-24s %9lld %s\n", cli_safe(r->id), cli_safe(r->style), cli_safe(r->sizes),
           (long long)r->bytes,
           cli_time(r->generated_at, t));
    return 0;
}

int cmd_list(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"limit", required_argument, NULL, 'l'},
        {"after", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    long limit = 100;
    const char *after = "";
    bool json = false;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        rc = 0;
        if (c == 'l')
            rc = cli_int(argv[0], "--limit", optarg, 1, 1000000, &limit);
        else if (c == 'a')
            after = optarg;
        else if (c == 'j')
            json = true;
        else
            rc = cli_getopt_fail(argv[0], c, argv);
        if (rc)
            return rc;
    }
    if ((rc = cli_positional(argv[0], argc, argv, 0, "")))
        return rc;
    if (*after && (rc = check_id(argv[0], after)))
        return rc;
    meta m;
    if (open_meta(ctx, argv[0], &m))
        return 1;
    list_out lo = {0};
    if (json)
        lo.arr = json_array();
    else
        printf("%-32s %-9s %-24s %9s %s\n", "ID", "STYLE", "SIZES", "BYTES", "GENERATED");
    aq_err e;
    err_clear(&e);
    rc = meta_list(&m, after, (int)limit, list_row, &lo, &e);
    meta_close(&m);
    if (rc != 0) {
        json_decref(lo.arr);
        return cli_fail(argv[0], 1, "%s", e.msg);
    }
    if (json)
        print_json(lo.arr);
    else if (lo.n == limit)
        fprintf(stderr, "(more may follow: avatarq list --after %s)\n", cli_safe(lo.last));
    return 0;
}

/* ---- show ---- */

static void show_print(const meta_row *r)
{
    char t[32];
    printf("id             %s\n", cli_safe(r->id));
    printf("seed           %s\n", cli_safe(r->seed));
    printf("style          %s\n", cli_safe(r->style));
    printf("primary_color  %s\n", r->primary_color[0] ? cli_safe(r->primary_color) : "-");
    printf("foreign_color  %s\n", r->foreign_color[0] ? cli_safe(r->foreign_color) : "-");
    printf("scheme         %s\n", r->scheme[0] ? cli_safe(r->scheme) : "-");
    if (r->angle >= 0)
        printf("angle          %g\n", r->angle);
    else
        printf("angle          -\n");
    printf("filter         %s\n", cli_safe(r->filter));
    printf("format         %s\n", r->format[0] ? cli_safe(r->format) : "png");
    printf("sizes          %s\n", cli_safe(r->sizes));
    printf("storage        %s %s\n", cli_safe(r->storage), cli_safe(r->location));
    printf("keys           %s\n", cli_safe(r->keys));
    printf("bytes          %lld\n", (long long)r->bytes);
    printf("sha256         %s\n", cli_safe(r->sha256));
    printf("attempts       %d\n", r->attempts);
    printf("worker         %s\n", r->worker[0] ? cli_safe(r->worker) : "-");
    printf("created_at     %s\n", cli_time(r->created_at, t));
    printf("generated_at   %s\n", cli_time(r->generated_at, t));
}

int cmd_show(cli_ctx *ctx, int argc, char **argv)
{
    bool json;
    int rc = parse_json_flag(argc, argv, 1, "avatar ID", &json);
    if (rc)
        return rc;
    const char *id = argv[optind];
    if ((rc = check_id(argv[0], id)))
        return rc;
    meta m;
    if (open_meta(ctx, argv[0], &m))
        return 1;
    meta_row *row = malloc(sizeof *row);
    if (!row) {
        meta_close(&m);
        return cli_fail(argv[0], 1, "out of memory");
    }
    aq_err e;
    err_clear(&e);
    rc = meta_get(&m, id, row, &e);
    meta_close(&m);
    if (rc == AQ_ENOTFOUND)
        rc = cli_fail(argv[0], 1, "no avatar '%s' in the %s database", id,
                      ctx->cfg.database.backend);
    else if (rc != 0)
        rc = cli_fail(argv[0], 1, "%s", e.msg);
    else if (json)
        print_json(row_json(row));
    else
        show_print(row);
    free(row);
    return rc;
}

/* ---- get ---- */

/* Writes data to path whole or not at all (cli_write_file), or to
 * standard output for "-". */
static int write_output(const char *cmd, const char *path, const buf *data)
{
    aq_err e;
    err_clear(&e);
    if (cli_write_file(path, data->data, data->len, &e) != 0)
        return cli_fail(cmd, 1, "%s", e.msg);
    return 0;
}

int cmd_get(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    long size = 0;
    const char *out = NULL;
    int c, rc, format = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:", longopts, NULL)) != -1) {
        rc = 0;
        if (c == 's')
            rc = cli_int(argv[0], "--size", optarg, RENDER_MIN_SIZE, RENDER_MAX_SIZE, &size);
        else if (c == 'f') {
            if ((format = job_format_find(optarg)) < 0)
                rc = cli_fail(argv[0], 2, "--format: '%s' is not a format (png, webp, svg)", optarg);
        } else if (c == 'o')
            out = optarg;
        else
            rc = cli_getopt_fail(argv[0], c, argv);
        if (rc)
            return rc;
    }
    if ((rc = cli_positional(argv[0], argc, argv, 1, "avatar ID")))
        return rc;
    const char *id = argv[optind];
    if ((rc = check_id(argv[0], id)))
        return rc;
    if (!size)
        return cli_fail(argv[0], 2, "missing --size N");
    if (!out || !*out)
        return cli_fail(argv[0], 2, "missing -o FILE (or -o - for standard output)");
    storage s;
    if (open_storage(ctx, argv[0], &s))
        return 1;
    /* the format asked for, else whichever the avatar was made in: PNG,
     * WebP, then the one SVG of every size */
    char key[512];
    buf data = BUF_INIT;
    aq_err e;
    err_clear(&e);
    rc = AQ_ENOTFOUND;
    for (int f = format < 0 ? 0 : format; rc == AQ_ENOTFOUND && f < JOB_FORMAT_COUNT; f++) {
        avatar_key_fmt(ctx->cfg.storage.prefix, id, (int)size, (job_format)f, key, sizeof key);
        rc = storage_get(&s, key, &data, &e);
        if (format >= 0)
            break;
    }
    if (rc == AQ_ENOTFOUND && format < 0)
        avatar_key(ctx->cfg.storage.prefix, id, (int)size, key, sizeof key);
    storage_close(&s);
    if (rc == AQ_ENOTFOUND)
    {
        char where[PATH_MAX + 800], caution[400];
        storage_find(ctx->cfg.storage.backend)->describe(&ctx->cfg, where, sizeof where, caution,
                                                         sizeof caution);
        rc = cli_fail(argv[0], 1, "%s is not stored (%s %s)", key, ctx->cfg.storage.backend, where);
    }
    else if (rc != 0)
        rc = cli_fail(argv[0], 1, "%s", e.msg);
    else if ((rc = write_output(argv[0], out, &data)) == 0 && strcmp(out, "-") != 0)
        printf("wrote %s (%zu bytes) from %s\n", cli_safe(out), data.len, cli_safe(key));
    buf_free(&data);
    return rc;
}

/* ---- delete ---- */

/* Removes files and row here and now, as a worker's delete job would. */
static int delete_now(cli_ctx *ctx, const char *cmd, const char *id)
{
    aq_err e;
    err_clear(&e);
    job_limits lim;
    if (job_limits_from_config(&lim, &ctx->cfg, &e) != 0)
        return cli_fail(cmd, 2, "%s", e.msg);
    storage s;
    meta m;
    if (open_storage(ctx, cmd, &s))
        return 1;
    if (open_meta(ctx, cmd, &m)) {
        storage_close(&s);
        return 1;
    }
    job_request *r = malloc(sizeof *r);
    int rc = 1;
    if (!r) {
        cli_fail(cmd, 1, "out of memory");
    } else {
        job_init(r, &lim);
        r->type = JOB_DELETE;
        snprintf(r->id, sizeof r->id, "%s", id);
        r->id_given = true;
        avatar_ctx actx;
        avatar_init(&actx, &s, &m, ctx->cfg.storage.prefix, "cli");
        if (avatar_delete(&actx, r, &e) != 0)
            rc = cli_fail(cmd, 1, "%s", e.msg);
        else {
            printf("deleted %s\n", id);
            rc = 0;
        }
        avatar_free(&actx);
    }
    free(r);
    meta_close(&m);
    storage_close(&s);
    return rc;
}

/* Enqueues a delete job for the workers; prints its id. */
static int delete_job(cli_ctx *ctx, const char *cmd, const char *id, const char *qname)
{
    char err[ERRLEN], out[65];
    avatarq *a = avatarq_open_config(&ctx->cfg, err, sizeof err);
    if (!a)
        return cli_fail(cmd, 1, "%s", err);
    avatarq_request r;
    avatarq_request_init(&r);
    r.type = "delete";
    r.id = id;
    r.queue = qname;
    int rc = avatarq_enqueue(a, &r, out, err, sizeof err);
    avatarq_close(a);
    if (rc != 0)
        return cli_fail(cmd, rc == AVATARQ_EPERM ? 2 : 1, "%s", err);
    printf("%s\n", out);
    return 0;
}

int cmd_delete(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"now", no_argument, NULL, 'n'},
        {"queue", required_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    cli_jobopts jo;
    cli_jobopts_init(&jo, &ctx->cfg);
    bool now = false;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == 'n')
            now = true;
        else if (c == 'q') {
            if ((rc = cli_jobopts_apply(&jo, argv[0], CLI_OPT_QUEUE, optarg)))
                return rc;
        } else
            return cli_getopt_fail(argv[0], c, argv);
    }
    if ((rc = cli_positional(argv[0], argc, argv, 1, "avatar ID")))
        return rc;
    const char *id = argv[optind];
    if ((rc = check_id(argv[0], id)))
        return rc;
    if (now && jo.req.queue)
        return cli_fail(argv[0], 2, "--queue makes no sense with --now");
    return now ? delete_now(ctx, argv[0], id) : delete_job(ctx, argv[0], id, jo.req.queue);
}

/* ---- migrate ---- */

int cmd_migrate(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {{"dry-run", no_argument, NULL, 'n'},
                                             {NULL, 0, NULL, 0}};
    bool dry = false;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c != 'n')
            return cli_getopt_fail(argv[0], c, argv);
        dry = true;
    }
    if ((rc = cli_positional(argv[0], argc, argv, 0, "")))
        return rc;
    meta m;
    if (open_meta(ctx, argv[0], &m))
        return 1;
    /* The backend reports what it applies (or would apply) into a memory
     * stream, so "nothing to do" can be said plainly. */
    char *report = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&report, &len);
    aq_err e;
    err_clear(&e);
    rc = mem ? meta_migrate(&m, dry, mem, &e) : err_set(&e, AQ_EAGAIN, "out of memory");
    if (mem)
        fclose(mem);
    meta_close(&m);
    if (rc != 0) {
        free(report);
        return cli_fail(argv[0], 1, "%s", e.msg);
    }
    const char *db = ctx->cfg.database.backend;
    if (len == 0)
        printf("database %s: schema up to date, nothing to apply\n", db);
    else
        printf("database %s:%s\n%s", db, dry ? " would apply" : "", report);
    free(report);
    return 0;
}
