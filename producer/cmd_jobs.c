/* Producer commands: enqueue, batch, status. They go through the public API
 * (include/avatarq.h), the same one other C programs use. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "retry.h"

#define ERRLEN 512

/* Exit status for enqueue --wait when the deadline passes first. */
#define EXIT_TIMEOUT 3

/* Opens the API handle on the loaded configuration, or prints why not. */
static avatarq *open_api(const cli_ctx *ctx, const char *cmd)
{
    char err[ERRLEN];
    avatarq *a = avatarq_open_config(&ctx->cfg, err, sizeof err);
    if (!a)
        cli_fail(cmd, 1, "%s", err);
    return a;
}

/* Bad input is the caller's (2); anything else is ours or Redis's (1). */
static int api_status(int rc)
{
    return rc == AVATARQ_EPERM ? 2 : 1;
}

/* ---- stored keys ---- */

typedef struct size_key {
    long size;
    const char *key;
} size_key;

static int by_size(const void *a, const void *b)
{
    long x = ((const size_key *)a)->size, y = ((const size_key *)b)->size;
    return (x > y) - (x < y);
}

/* Prints "SIZE KEY" per stored size, smallest first, with an optional
 * left label; outputs is the job hash's JSON object {"32":"key",...}. */
static void print_outputs(const char *outputs, const char *label)
{
    if (!outputs || !*outputs)
        return;
    json_t *o = json_loads(outputs, 0, NULL);
    if (!json_is_object(o)) {
        printf("%s%s\n", label, cli_safe(outputs));
        json_decref(o);
        return;
    }
    size_key items[64];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (n < sizeof items / sizeof items[0] && json_is_string(v))
            items[n++] = (size_key){strtol(k, NULL, 10), json_string_value(v)};
    }
    qsort(items, n, sizeof items[0], by_size);
    for (size_t i = 0; i < n; i++)
        printf("%s%ld %s\n", label, items[i].size, cli_safe(items[i].key));
    json_decref(o);
}

/* ---- enqueue ---- */

typedef struct enqueue_opts {
    cli_jobopts job;
    bool wait, del;
    double timeout_s; /* < 0: no limit */
} enqueue_opts;

enum { OPT_WAIT = 2000, OPT_TIMEOUT, OPT_DELETE, OPT_RUN_AT, OPT_DELAY, OPT_CALLBACK };

/* --run-at MS / --delay MS: a whole number of milliseconds in range. */
static int parse_ms(const char *cmd, const char *opt, const char *arg, long long max,
                    int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || errno == ERANGE || v < 0 || v > max)
        return cli_fail(cmd, 2, "--%s: '%s' is not a number of milliseconds 0..%lld", opt, arg,
                        max);
    *out = v;
    return 0;
}

static int parse_timeout(const char *cmd, const char *arg, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (*arg == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v) || v <= 0 ||
        v > 1e7)
        return cli_fail(cmd, 2, "--timeout: '%s' is not a positive number of seconds", arg);
    *out = v;
    return 0;
}

/* The combinations getopt cannot judge: what --delete, --timeout and a
 * missing --seed mean together. */
static int enqueue_check(enqueue_opts *o, const char *cmd, bool timeout_given)
{
    if (timeout_given && !o->wait)
        return cli_fail(cmd, 2, "--timeout needs --wait");
    const avatarq_request *r = &o->job.req;
    if (!o->del)
        return r->seed ? 0 : cli_fail(cmd, 2, "missing --seed (or --delete --id ID)");
    if (!r->id)
        return cli_fail(cmd, 2, "--delete needs --id ID");
    if (r->seed || r->style || r->nsizes || r->primary || r->foreign || r->scheme ||
        r->angle >= 0 || r->filter)
        return cli_fail(cmd, 2, "--delete takes only --id, --queue, --max-attempts, --run-at, "
                                "--delay and --wait");
    o->job.req.type = "delete";
    return 0;
}

static int enqueue_parse(cli_ctx *ctx, int argc, char **argv, enqueue_opts *o)
{
    enum { N = CLI_JOB_NLONGOPTS };
    struct option longopts[N + 7];
    memcpy(longopts, cli_job_longopts, sizeof cli_job_longopts[0] * N);
    longopts[N + 0] = (struct option){"wait", no_argument, NULL, OPT_WAIT};
    longopts[N + 1] = (struct option){"timeout", required_argument, NULL, OPT_TIMEOUT};
    longopts[N + 2] = (struct option){"delete", no_argument, NULL, OPT_DELETE};
    longopts[N + 3] = (struct option){"run-at", required_argument, NULL, OPT_RUN_AT};
    longopts[N + 4] = (struct option){"delay", required_argument, NULL, OPT_DELAY};
    longopts[N + 5] = (struct option){"callback-url", required_argument, NULL, OPT_CALLBACK};
    longopts[N + 6] = (struct option){NULL, 0, NULL, 0};

    memset(o, 0, sizeof *o);
    cli_jobopts_init(&o->job, &ctx->cfg);
    o->timeout_s = -1;
    bool timeout_given = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        int rc = 0;
        if (c == OPT_WAIT)
            o->wait = true;
        else if (c == OPT_DELETE)
            o->del = true;
        else if (c == OPT_CALLBACK)
            o->job.req.callback_url = optarg;
        else if (c == OPT_RUN_AT)
            rc = parse_ms(argv[0], "run-at", optarg, JOB_RUN_AT_MAX, &o->job.req.run_at);
        else if (c == OPT_DELAY)
            rc = parse_ms(argv[0], "delay", optarg, JOB_DELAY_MAX, &o->job.req.delay_ms);
        else if (c == OPT_TIMEOUT) {
            rc = parse_timeout(argv[0], optarg, &o->timeout_s);
            timeout_given = true;
        } else if (c == '?' || c == ':')
            return cli_getopt_fail(argv[0], c, argv);
        else
            rc = cli_jobopts_apply(&o->job, argv[0], c, optarg);
        if (rc)
            return rc > 0 ? rc : 2;
    }
    int rc = cli_positional(argv[0], argc, argv, 0, "");
    return rc ? rc : enqueue_check(o, argv[0], timeout_given);
}

/* Waits for id to reach a final state and reports it: keys on stdout when
 * done, the error on stderr when dead. */
static int enqueue_wait(avatarq *a, const char *cmd, const char *id, double timeout_s)
{
    char err[ERRLEN];
    avatarq_status st;
    memset(&st, 0, sizeof st);
    long ms = timeout_s < 0 ? -1 : (long)(timeout_s * 1000.0);
    int rc = avatarq_wait(a, id, ms, &st, err, sizeof err);
    int status;
    if (rc == AVATARQ_ETIMEDOUT) {
        status = cli_fail(cmd, EXIT_TIMEOUT, "%s: still %s after %g s", id,
                          st.state[0] ? st.state : "queued", timeout_s);
    } else if (rc != 0) {
        avatarq_status_free(&st);
        return cli_fail(cmd, 1, "%s", err);
    } else if (strcmp(st.state, "done") == 0) {
        print_outputs(st.outputs, "");
        status = 0;
    } else {
        const char *why = st.error[0] ? st.error : "no error recorded";
        status = cli_fail(cmd, 1, "%s: %s after %d attempt%s: %s", id, st.state, st.attempts,
                          st.attempts == 1 ? "" : "s", why);
    }
    avatarq_status_free(&st);
    return status;
}

int cmd_enqueue(cli_ctx *ctx, int argc, char **argv)
{
    enqueue_opts o;
    int rc = enqueue_parse(ctx, argc, argv, &o);
    if (rc)
        return rc;
    avatarq *a = open_api(ctx, argv[0]);
    if (!a)
        return 1;
    char err[ERRLEN];
    avatarq_enqueued out;
    rc = avatarq_enqueue_ex(a, &o.job.req, &out, err, sizeof err);
    if (rc != 0) {
        avatarq_close(a);
        return cli_fail(argv[0], api_status(rc), "%s", err);
    }
    printf("%s\n", out.id);
    fflush(stdout);
    if (strcmp(out.status, "exists") == 0)
        fprintf(stderr, "%s: job %s is already %s: not enqueued again\n", argv[0], out.id,
                out.state);
    else if (strcmp(out.status, "revived") == 0)
        fprintf(stderr, "%s: job %s was cancelled but not yet dropped: cancellation taken "
                        "back, %s again\n", argv[0], out.id, out.state);
    int status = o.wait ? enqueue_wait(a, argv[0], out.id, o.timeout_s) : 0;
    avatarq_close(a);
    return status;
}

/* ---- batch ---- */

typedef struct batch_run {
    const char *cmd;
    avatarq_batch *b;
    cli_jobopts job;
    long line, accepted, rejected;
    bool wait;                 /* --wait: a progress bar until it completes */
    const char *callback_url;  /* --callback-url: the batch's completion */
    char id[65];
} batch_run;

/* Validates one input line and holds it in the batch. Returns 0 (also for
 * a rejected line, which is reported), or 1 when Redis failed. */
static int batch_line(batch_run *br, char *line, size_t len)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len == 0)
        return 0;
    char err[ERRLEN], id[65];
    int rc;
    if (len > JOB_MAX_DOC) {
        rc = AVATARQ_EPERM;
        snprintf(err, sizeof err, "%zu bytes is longer than %d", len, JOB_MAX_DOC);
    } else if (strlen(line) != len) {
        rc = AVATARQ_EPERM;
        snprintf(err, sizeof err, "holds a NUL byte");
    } else if (line[0] == '{') {
        rc = avatarq_batch_add_json(br->b, line, id, err, sizeof err);
    } else {
        avatarq_request r = br->job.req;
        r.seed = line;
        rc = avatarq_batch_add(br->b, &r, id, err, sizeof err);
    }
    if (rc == AVATARQ_EPERM) {
        br->rejected++;
        cli_fail(br->cmd, 0, "line %ld: %s", br->line, err);
        return 0;
    }
    if (rc != 0) {
        cli_fail(br->cmd, 1, "line %ld: %s", br->line, err);
        return 1;
    }
    br->accepted++;
    return 0;
}

static int batch_parse(cli_ctx *ctx, int argc, char **argv, batch_run *br)
{
    enum { N = CLI_JOB_NLONGOPTS };
    struct option longopts[N + 3];
    memcpy(longopts, cli_job_longopts, sizeof cli_job_longopts[0] * N);
    longopts[N + 0] = (struct option){"wait", no_argument, NULL, OPT_WAIT};
    longopts[N + 1] = (struct option){"callback-url", required_argument, NULL, OPT_CALLBACK};
    longopts[N + 2] = (struct option){NULL, 0, NULL, 0};
    int c;
    opterr = 0;
    cli_jobopts_init(&br->job, &ctx->cfg);
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == '?' || c == ':')
            return cli_getopt_fail(argv[0], c, argv);
        if (c == OPT_WAIT) {
            br->wait = true;
            continue;
        }
        if (c == OPT_CALLBACK) {
            br->callback_url = optarg;
            continue;
        }
        if (c == CLI_OPT_SEED || c == CLI_OPT_ID)
            return cli_fail(argv[0], 2, "--%s makes no sense for a batch: each line "
                                        "brings its own", c == CLI_OPT_SEED ? "seed" : "id");
        int rc = cli_jobopts_apply(&br->job, argv[0], c, optarg);
        if (rc)
            return rc > 0 ? rc : 2;
    }
    if (argc - optind > 1)
        return cli_fail(argv[0], 2, "unexpected argument '%s'", argv[optind + 1]);
    return 0;
}

/* Opens FILE, or standard input for "-" or no argument; *size is the byte
 * count of a regular file (for the progress bar), else 0. */
static FILE *batch_input(const char *cmd, const char *path, int64_t *size)
{
    *size = 0;
    FILE *in = (!path || strcmp(path, "-") == 0) ? stdin : fopen(path, "r");
    if (!in) {
        cli_fail(cmd, 1, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode))
        *size = (int64_t)sb.st_size;
    return in;
}

static int batch_read(batch_run *br, FILE *in, int64_t size)
{
    cli_progress prog;
    cli_progress_start(&prog, size);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t pos = 0;
    int failed = 0;
    while (!failed && (n = getline(&line, &cap, in)) >= 0) {
        br->line++;
        pos += n;
        failed = batch_line(br, line, (size_t)n);
        cli_progress_update(&prog, pos, br->accepted);
    }
    if (!failed && ferror(in))
        failed = cli_fail(br->cmd, 1, "reading input: %s", strerror(errno));
    free(line);
    cli_progress_end(&prog);
    return failed;
}

/* --wait: a progress bar (on a terminal) of the batch's finished jobs until
 * it completes; then its counts. 1 when a job of it died. */
static int batch_wait(avatarq *a, const char *cmd, const char *id)
{
    cli_progress prog;
    avatarq_batch_info bi;
    char err[ERRLEN];
    bool started = false;
    for (;;) {
        int rc = avatarq_batch_status(a, id, &bi, err, sizeof err);
        if (rc == AVATARQ_EAGAIN) {
            retry_sleep_ms(200, NULL);
            continue;
        }
        if (rc != 0)
            return cli_fail(cmd, 1, "%s", err);
        if (!started) {
            cli_progress_start(&prog, bi.total);
            started = true;
        }
        int64_t fin = bi.done + bi.dead + bi.cancelled;
        cli_progress_update(&prog, fin, fin);
        if (strcmp(bi.state, "complete") == 0)
            break;
        retry_sleep_ms(200, NULL);
    }
    cli_progress_end(&prog);
    printf("batch %s complete: %lld done, %lld dead, %lld cancelled of %lld\n", id,
           (long long)bi.done, (long long)bi.dead, (long long)bi.cancelled,
           (long long)bi.total);
    return bi.dead ? 1 : 0;
}

int cmd_batch(cli_ctx *ctx, int argc, char **argv)
{
    batch_run br;
    memset(&br, 0, sizeof br);
    br.cmd = argv[0];
    int rc = batch_parse(ctx, argc, argv, &br);
    if (rc)
        return rc;
    int64_t size;
    FILE *in = batch_input(argv[0], optind < argc ? argv[optind] : NULL, &size);
    if (!in)
        return 1;
    avatarq *a = open_api(ctx, argv[0]);
    if (!a) {
        if (in != stdin)
            fclose(in);
        return 1;
    }
    int64_t t0 = mono_ms();
    char err[ERRLEN];
    br.b = avatarq_batch_new(a, br.job.req.queue);
    int failed = br.b ? 0 : cli_fail(argv[0], 1, "out of memory");
    if (!failed && avatarq_batch_track(br.b, br.callback_url, br.id, err, sizeof err) != 0)
        failed = cli_fail(argv[0], api_status(AVATARQ_EPERM), "%s", err);
    if (!failed)
        failed = batch_read(&br, in, size);
    if (in != stdin)
        fclose(in);
    if (!failed && br.b && avatarq_batch_seal(br.b, err, sizeof err) < 0)
        failed = cli_fail(argv[0], 1, "%s", err);
    long pending = br.b ? (long)avatarq_batch_pending(br.b) : 0;
    long existing = br.b ? (long)avatarq_batch_existing(br.b) : 0;
    long enqueued = br.accepted - pending - existing;
    double secs = (double)(mono_ms() - t0) / 1000.0;
    if (br.id[0])
        printf("batch %s\n", br.id);
    printf("enqueued %ld job%s in %.1f s (%.0f/s), %ld rejected%s\n", enqueued,
           enqueued == 1 ? "" : "s", secs, secs > 0 ? (double)enqueued / secs : 0.0,
           br.rejected, failed ? ", stopped by an error" : "");
    if (existing)
        printf("%ld already queued, scheduled or running: not enqueued again\n", existing);
    fflush(stdout);
    int status = failed || br.rejected ? 1 : 0;
    if (!failed && br.wait)
        status |= batch_wait(a, argv[0], br.id);
    avatarq_batch_free(br.b);
    avatarq_close(a);
    return status;
}

/* ---- status ---- */

static json_t *status_json(const char *id, const avatarq_status *st)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", id,
                          "state", st->state, "attempts", st->attempts, "queue", st->queue,
                          "worker", st->worker, "error", st->error,
                          "created_at", (json_int_t)st->created_at,
                          "started_at", (json_int_t)st->started_at,
                          "finished_at", (json_int_t)st->finished_at,
                          "duration_ms", (json_int_t)st->duration_ms);
    json_t *out = st->outputs ? json_loads(st->outputs, 0, NULL) : NULL;
    json_object_set_new(o, "outputs", out ? out : json_null());
    return o;
}

static void status_print(const char *id, const avatarq_status *st)
{
    char t[32];
    printf("id           %s\n", cli_safe(id));
    printf("state        %s\n", cli_safe(st->state));
    printf("attempts     %d\n", st->attempts);
    printf("queue        %s\n", st->queue[0] ? cli_safe(st->queue) : "-");
    printf("worker       %s\n", st->worker[0] ? cli_safe(st->worker) : "-");
    printf("error        %s\n", st->error[0] ? cli_safe(st->error) : "-");
    printf("created_at   %s\n", cli_time(st->created_at, t));
    printf("started_at   %s\n", cli_time(st->started_at, t));
    printf("finished_at  %s\n", cli_time(st->finished_at, t));
    if (st->duration_ms > 0)
        printf("duration     %lld ms\n", (long long)st->duration_ms);
    print_outputs(st->outputs, "output       ");
}

int cmd_status(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c != 'j')
            return cli_getopt_fail(argv[0], c, argv);
        json = true;
    }
    int rc = cli_positional(argv[0], argc, argv, 1, "job ID");
    if (rc)
        return rc;
    const char *id = argv[optind];
    if (!job_id_valid(id))
        return cli_fail(argv[0], 2, "'%s' is not a valid id", id);
    avatarq *a = open_api(ctx, argv[0]);
    if (!a)
        return 1;
    char err[ERRLEN];
    avatarq_status st;
    memset(&st, 0, sizeof st);
    rc = avatarq_status_get(a, id, &st, err, sizeof err);
    avatarq_close(a);
    if (rc == AVATARQ_ENOTFOUND)
        return cli_fail(argv[0], 1, "no job '%s' (never enqueued, or its result expired)", id);
    if (rc != 0)
        return cli_fail(argv[0], api_status(rc), "%s", err);
    if (json) {
        json_t *o = status_json(id, &st);
        json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(o);
    } else {
        status_print(id, &st);
    }
    avatarq_status_free(&st);
    return 0;
}

/* ---- cancel ---- */

int cmd_cancel(cli_ctx *ctx, int argc, char **argv)
{
    int rc = cli_no_options(argv[0], argc, argv, 1, "ID");
    if (rc)
        return rc;
    const char *id = argv[optind];
    avatarq *a = open_api(ctx, argv[0]);
    if (!a)
        return 1;
    char err[ERRLEN], before[16];
    rc = avatarq_cancel(a, id, before, err, sizeof err);
    avatarq_close(a);
    if (rc == AVATARQ_ENOTFOUND)
        return cli_fail(argv[0], 1, "%s", err);
    if (rc < 0)
        return cli_fail(argv[0], api_status(rc), "%s", err);
    if (rc == 1) {
        printf("%s: already %s, nothing to cancel\n", id, before);
        return 0;
    }
    printf("%s: cancelled (was %s)%s\n", id, before,
           strcmp(before, "running") == 0
               ? "; its result will be discarded and its files deleted when it finishes"
               : "");
    return 0;
}
