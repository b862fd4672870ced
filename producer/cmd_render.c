/* render, sheet, schemes: the offline commands. They build job requests
 * exactly as a worker does (job_init, job_finish) and render through
 * lib/avatar, so a file made here is byte for byte what the fleet stores.
 * They need no Redis and no configuration file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "avatar.h"
#include "cli.h"
#include "color.h"
#include "job.h"
#include "pngenc.h"
#include "render.h"
#include "retry.h"
#include "storage.h"

#define RENDER_DEFAULT_SIZE 256   /* -o FILE without --size */

/* ---- building requests ---- */

/* Copies an optional colour/scheme name, lower-cased as job_parse stores it. */
static void copy_lower(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < n; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
    dst[i] = '\0';
}

/* Fills r from the validated command-line options o, with seed and id (id
 * may be NULL: derived), then lets job_finish apply the worker's rules and
 * derive the id. Returns 0 or AQ_EPERM with the field named in e. */
static int build_request(const cli_jobopts *o, const job_limits *l, const char *seed,
                         const char *id, job_request *r, aq_err *e)
{
    const avatarq_request *q = &o->req;
    job_init(r, l);
    size_t len = strlen(seed);
    if (len == 0 || len > JOB_SEED_MAX)
        return err_set(e, AQ_EPERM, "seed: %zu bytes, must be 1 to %d", len, JOB_SEED_MAX);
    memcpy(r->seed, seed, len + 1);
    r->seed_len = len;
    if (id) {
        if (!job_id_valid(id))
            return err_set(e, AQ_EPERM, "id: '%.80s' is not [A-Za-z0-9._-]{1,64} "
                                        "(not starting with '.')", id);
        snprintf(r->id, sizeof r->id, "%s", id);
        r->id_given = true;
    }
    if (q->style)
        r->style = render_style_find(q->style);
    if (q->nsizes) {
        memcpy(r->sizes, q->sizes, q->nsizes * sizeof *q->sizes);
        r->nsizes = q->nsizes;
    }
    copy_lower(r->primary, sizeof r->primary, q->primary);
    copy_lower(r->foreign, sizeof r->foreign, q->foreign);
    copy_lower(r->scheme, sizeof r->scheme, q->scheme);
    if (q->filter)
        r->filter = (aq_filter)color_filter_find(q->filter);
    r->angle = q->angle;
    /* the look options go through the job's rules (their messages too) */
    char radius[16];
    snprintf(radius, sizeof radius, "%d", q->radius);
    const struct { const char *field, *text; } opts[] = {
        {"emoji", q->emoji}, {"background", q->background}, {"emoji_size", q->emoji_size},
        {"radius", q->radius ? radius : NULL}, {"format", q->format}, {"name", q->name},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (opts[i].text && job_set_field(r, opts[i].field, opts[i].text, l, e) != 0)
            return AQ_EPERM;
    return job_finish(r, l, e);
}

/* ---- writing files ---- */

/* Writes data to path whole or not at all through a unique temp file
 * (cli_write_file); "-" writes to standard output. */
static int write_atomic(const char *path, const void *data, size_t len, aq_err *e)
{
    return cli_write_file(path, data, len, e);
}

/* ---- render ---- */

enum { OPT_OUT = 'o', OPT_DIR = 'd', OPT_JOBS = 'j', OPT_SEEDS = 2000 };

typedef struct render_opts {
    cli_jobopts job;
    const char *out, *dir, *seeds;
    long jobs;            /* processes for --seeds; 0 = the number of CPUs */
} render_opts;

static int render_parse(cli_ctx *ctx, int argc, char **argv, render_opts *o)
{
    struct option longopts[CLI_JOB_NLONGOPTS + 5];
    memcpy(longopts, cli_job_longopts, CLI_JOB_NLONGOPTS * sizeof longopts[0]);
    longopts[CLI_JOB_NLONGOPTS + 0] = (struct option){"output", required_argument, NULL, OPT_OUT};
    longopts[CLI_JOB_NLONGOPTS + 1] = (struct option){"dir", required_argument, NULL, OPT_DIR};
    longopts[CLI_JOB_NLONGOPTS + 2] = (struct option){"seeds", required_argument, NULL, OPT_SEEDS};
    longopts[CLI_JOB_NLONGOPTS + 3] = (struct option){"jobs", required_argument, NULL, OPT_JOBS};
    longopts[CLI_JOB_NLONGOPTS + 4] = (struct option){NULL, 0, NULL, 0};

    memset(o, 0, sizeof *o);
    cli_jobopts_init(&o->job, &ctx->cfg);
    const char *cmd = argv[0];
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:d:j:", longopts, NULL)) != -1) {
        int rc = 0;
        if (c == OPT_JOBS)
            rc = cli_int(cmd, "--jobs", optarg, 1, 256, &o->jobs);
        else if (c == OPT_OUT)
            o->out = optarg;
        else if (c == OPT_DIR)
            o->dir = optarg;
        else if (c == OPT_SEEDS)
            o->seeds = optarg;
        else if (c == CLI_OPT_QUEUE || c == CLI_OPT_MAX_ATTEMPTS)
            return cli_fail(cmd, 2, "%s: only for queued jobs, not for render",
                            c == CLI_OPT_QUEUE ? "--queue" : "--max-attempts");
        else if (c == '?' || c == ':')
            return cli_getopt_fail(cmd, c, argv);
        else
            rc = cli_jobopts_apply(&o->job, cmd, c, optarg);
        if (rc)
            return rc > 0 ? rc : 2;
    }
    int rc = cli_positional(cmd, argc, argv, 0, "");
    if (rc)
        return rc;
    const avatarq_request *q = &o->job.req;
    if (o->out && o->dir)
        return cli_fail(cmd, 2, "-o FILE and -d DIR exclude each other");
    if (!o->out && !o->dir)
        return cli_fail(cmd, 2, "missing -o FILE (one PNG) or -d DIR (every size)");
    if (o->seeds && q->seed)
        return cli_fail(cmd, 2, "--seed and --seeds exclude each other");
    if (!o->seeds && !q->seed)
        return cli_fail(cmd, 2, "missing --seed S (or --seeds FILE with -d DIR)");
    if (o->seeds && !o->dir)
        return cli_fail(cmd, 2, "--seeds needs -d DIR");
    if (o->jobs && !o->seeds)
        return cli_fail(cmd, 2, "--jobs: only with --seeds FILE");
    if (o->seeds && q->id)
        return cli_fail(cmd, 2, "--id: give ids in the --seeds file as ID<TAB>SEED");
    if (o->out && q->nsizes > 1)
        return cli_fail(cmd, 2, "-o FILE takes one size; use -d DIR for %zu sizes", q->nsizes);
    return 0;
}

static int limits(cli_ctx *ctx, const char *cmd, job_limits *l)
{
    aq_err e;
    err_clear(&e);
    if (job_limits_from_config(l, &ctx->cfg, &e) != 0)
        return cli_fail(cmd, 2, "%s", e.msg);
    return 0;
}

/* avatarq render --seed S ... -o FILE */
static int render_one_file(const render_opts *o, const job_limits *l, const char *cmd)
{
    static job_request r; /* large: off the stack */
    aq_err e;
    err_clear(&e);
    cli_jobopts one = o->job;
    one.req.sizes = one.sizes; /* the copy must point at its own array */
    if (one.req.nsizes == 0) {
        one.sizes[0] = RENDER_DEFAULT_SIZE < l->max_size ? RENDER_DEFAULT_SIZE : l->max_size;
        one.req.nsizes = 1;
    }
    if (build_request(&one, l, one.req.seed, one.req.id, &r, &e) != 0)
        return cli_fail(cmd, 2, "%s", e.msg);
    avatar_ctx av;
    avatar_init(&av, NULL, NULL, "", "cli");
    int rc = avatar_png(&av, &r, r.sizes[0], &e);
    if (rc == 0)
        rc = write_atomic(o->out, av.png.data, av.png.len, &e);
    avatar_free(&av);
    pngenc_release();
    if (rc != 0)
        return cli_fail(cmd, 1, "%s", e.msg);
    return 0;
}

/* Counts of a -d run. */
typedef struct render_tally {
    long line, done, failed, files;
} render_tally;

/* Renders every size of one request into DIR/ID/SIZE.png; reports a
 * failure (with the input line when there is one) and counts it. */
static void render_to_dir(avatar_ctx *av, const render_opts *o, const job_limits *l,
                          const char *cmd, const char *seed, const char *id, render_tally *t)
{
    static job_request r;
    aq_err e;
    err_clear(&e);
    int rc = build_request(&o->job, l, seed, id, &r, &e);
    if (rc == 0)
        rc = avatar_generate(av, &r, 1, NULL, &e);
    if (rc != 0) {
        t->failed++;
        if (t->line > 0)
            cli_fail(cmd, 1, "line %ld: %s", t->line, e.msg);
        else
            cli_fail(cmd, 1, "%s", e.msg);
        return;
    }
    t->done++;
    t->files += (long)r.nsizes;
    if (t->line == 0)
        for (size_t i = 0; i < r.nsizes; i++) {
            char key[512];
            avatar_key_fmt("", r.id, r.sizes[i], r.format, key, sizeof key);
            printf("%s/%s\n", o->dir, key);
            if (r.format == JOB_FORMAT_SVG)
                break; /* one file for every size */
        }
}

/* Splits "ID<TAB>SEED" (or a bare seed) in place; strips the line end.
 * Returns false for a blank line. */
static bool split_line(char *line, char **id, char **seed)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len == 0)
        return false;
    char *tab = strchr(line, '\t');
    if (tab) {
        *tab = '\0';
        *id = line;
        *seed = tab + 1;
    } else {
        *id = NULL;
        *seed = line;
    }
    return true;
}

static int64_t file_size(FILE *f)
{
    struct stat st;
    return fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : 0;
}

/* avatarq render --seeds FILE -d DIR: one request per line. */
static void render_batch(avatar_ctx *av, FILE *in, const render_opts *o, const job_limits *l,
                         const char *cmd, render_tally *t)
{
    cli_progress pg;
    cli_progress_start(&pg, file_size(in));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t pos = 0;
    while ((n = getline(&line, &cap, in)) != -1) {
        t->line++;
        pos += n;
        char *id, *seed;
        if ((size_t)n != strlen(line)) {
            t->failed++;
            cli_fail(cmd, 1, "line %ld: holds a NUL byte", t->line);
        } else if (split_line(line, &id, &seed)) {
            render_to_dir(av, o, l, cmd, seed, id, t);
        }
        cli_progress_update(&pg, pos, t->done);
    }
    free(line);
    cli_progress_end(&pg);
}

/* The lines of in, each without its line end (NULs kept out: a line that
 * holds one becomes NULL and is reported when its turn comes). */
typedef struct lines {
    char **v;
    size_t n, cap;
} lines;

static int read_lines(FILE *in, lines *ls)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    memset(ls, 0, sizeof *ls);
    while ((n = getline(&line, &cap, in)) != -1) {
        if (ls->n == ls->cap) {
            size_t nc = ls->cap ? 2 * ls->cap : 1024;
            char **v = realloc(ls->v, nc * sizeof *v);
            if (!v)
                break;
            ls->v = v, ls->cap = nc;
        }
        ls->v[ls->n++] = (size_t)n == strlen(line) ? strdup(line) : NULL;
    }
    free(line);
    return ferror(in) ? -1 : 0;
}

static void free_lines(lines *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        free(ls->v[i]);
    free(ls->v);
}

/* One worker process of render -j: lines k, k+n, k+2n... into DIR, then its
 * tally through fd. Each process has its own storage handle and caches. */
static void render_share(const lines *ls, size_t k, size_t n, const render_opts *o, const job_limits *l,
                         const char *cmd, int fd)
{
    aq_err e;
    err_clear(&e);
    render_tally t = {0, 0, 0, 0};
    storage store;
    if (storage_open_local(&store, o->dir, false, &e) != 0) {
        cli_fail(cmd, 1, "%s", e.msg);
        t.failed = (long)((ls->n - k + n - 1) / n);
    } else {
        avatar_ctx av;
        avatar_init(&av, &store, NULL, "", "cli");
        for (size_t i = k; i < ls->n; i += n) {
            t.line = (long)i + 1;
            char *id, *seed;
            if (!ls->v[i]) {
                t.failed++;
                cli_fail(cmd, 1, "line %ld: holds a NUL byte", t.line);
            } else if (split_line(ls->v[i], &id, &seed)) {
                render_to_dir(&av, o, l, cmd, seed, id, &t);
            }
        }
        avatar_free(&av);
        storage_close(&store);
    }
    fflush(NULL);
    if (write(fd, &t, sizeof t) != (ssize_t)sizeof t)
        _exit(1);
}

/* render --seeds FILE -d DIR -j N: N processes share the lines (file
 * creation and encoding are per process, so they scale with the cores). */
static int render_parallel(FILE *in, const render_opts *o, const job_limits *l, const char *cmd,
                           long nproc, render_tally *total)
{
    lines ls;
    if (read_lines(in, &ls) != 0) {
        free_lines(&ls);
        return cli_fail(cmd, 1, "%s: %s", o->seeds, strerror(errno));
    }
    /* fill the artwork caches once, before the fork, for every process */
    static job_request warm;
    aq_err e;
    err_clear(&e);
    if (build_request(&o->job, l, "warm", NULL, &warm, &e) == 0)
        render_warm(&warm.render, warm.sizes, warm.nsizes);
    int fds[2];
    if (pipe(fds) != 0) {
        free_lines(&ls);
        return cli_fail(cmd, 1, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pids[256];
    long started = 0;
    for (long k = 0; k < nproc; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            render_share(&ls, (size_t)k, (size_t)nproc, o, l, cmd, fds[1]);
            _exit(0);
        }
        if (pid < 0)
            break;
        pids[started++] = pid;
    }
    close(fds[1]);
    render_tally t;
    long reported = 0;
    while (read(fds[0], &t, sizeof t) == (ssize_t)sizeof t) {
        total->done += t.done, total->failed += t.failed, total->files += t.files;
        reported++;
    }
    close(fds[0]);
    for (long k = 0; k < started; k++)
        waitpid(pids[k], NULL, 0);
    free_lines(&ls);
    if (started < nproc || reported < started)
        return cli_fail(cmd, 1, "%ld of %ld render processes failed to start or report",
                        nproc - reported, nproc);
    return 0;
}

static int render_dir(const render_opts *o, const job_limits *l, const char *cmd)
{
    aq_err e;
    err_clear(&e);
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST)
        return cli_fail(cmd, 1, "%s: %s", o->dir, strerror(errno));
    storage store;
    if (storage_open_local(&store, o->dir, false, &e) != 0)
        return cli_fail(cmd, 1, "%s", e.msg);
    FILE *in = NULL;
    if (o->seeds) {
        in = strcmp(o->seeds, "-") == 0 ? stdin : fopen(o->seeds, "r");
        if (!in) {
            storage_close(&store);
            return cli_fail(cmd, 1, "%s: %s", o->seeds, strerror(errno));
        }
    }
    avatar_ctx av;
    avatar_init(&av, &store, NULL, "", "cli");
    render_tally t = {0, 0, 0, 0};
    int64_t t0 = mono_ms();
    long nproc = o->jobs ? o->jobs : config_cpus();
    int prc = 0;
    if (in && nproc > 1)
        prc = render_parallel(in, o, l, cmd, nproc, &t);
    else if (in)
        render_batch(&av, in, o, l, cmd, &t);
    else
        render_to_dir(&av, o, l, cmd, o->job.req.seed, o->job.req.id, &t);
    if (in && in != stdin)
        fclose(in);
    avatar_free(&av);
    pngenc_release();
    storage_close(&store);
    if (in) {
        double secs = (double)(mono_ms() - t0) / 1000.0;
        printf("rendered %ld avatar%s (%ld files) in %.2f s (%.0f/s), %ld failed\n", t.done,
               t.done == 1 ? "" : "s", t.files, secs, secs > 0 ? (double)t.done / secs : 0.0,
               t.failed);
    }
    return t.failed || prc ? 1 : 0;
}

int cmd_render(cli_ctx *ctx, int argc, char **argv)
{
    render_opts o;
    int rc = render_parse(ctx, argc, argv, &o);
    if (rc)
        return rc;
    job_limits l;
    if ((rc = limits(ctx, argv[0], &l)) != 0)
        return rc;
    return o.out ? render_one_file(&o, &l, argv[0]) : render_dir(&o, &l, argv[0]);
}

/* ---- sheet ---- */

/* A 3x5 pixel font for the sheet's labels: five rows of three bits per
 * glyph, top row in the high bits. Upper case letters, digits, '-', '+'. */
static const struct glyph {
    char c;
    uint16_t rows;
} glyphs[] = {
#define G(ch, a, b, c, d, e) {ch, (uint16_t)((a) << 12 | (b) << 9 | (c) << 6 | (d) << 3 | (e))}
    G('A', 2, 5, 7, 5, 5), G('B', 6, 5, 6, 5, 6), G('C', 3, 4, 4, 4, 3), G('D', 6, 5, 5, 5, 6),
    G('E', 7, 4, 6, 4, 7), G('F', 7, 4, 6, 4, 4), G('G', 3, 4, 5, 5, 3), G('H', 5, 5, 7, 5, 5),
    G('I', 7, 2, 2, 2, 7), G('J', 1, 1, 1, 5, 2), G('K', 5, 5, 6, 5, 5), G('L', 4, 4, 4, 4, 7),
    G('M', 5, 7, 7, 5, 5), G('N', 6, 5, 5, 5, 5), G('O', 2, 5, 5, 5, 2), G('P', 6, 5, 6, 4, 4),
    G('Q', 2, 5, 5, 6, 3), G('R', 6, 5, 6, 5, 5), G('S', 3, 4, 2, 1, 6), G('T', 7, 2, 2, 2, 2),
    G('U', 5, 5, 5, 5, 7), G('V', 5, 5, 5, 5, 2), G('W', 5, 5, 7, 7, 5), G('X', 5, 5, 2, 5, 5),
    G('Y', 5, 5, 2, 2, 2), G('Z', 7, 1, 2, 4, 7), G('0', 7, 5, 5, 5, 7), G('1', 2, 6, 2, 2, 7),
    G('2', 6, 1, 2, 4, 7), G('3', 6, 1, 2, 1, 6), G('4', 5, 5, 7, 1, 1), G('5', 7, 4, 6, 1, 6),
    G('6', 3, 4, 7, 5, 7), G('7', 7, 1, 2, 2, 2), G('8', 7, 5, 7, 5, 7), G('9', 7, 5, 7, 1, 6),
    G('-', 0, 0, 7, 0, 0), G('+', 0, 2, 7, 2, 0),
#undef G
};

#define FONT_SCALE 2
#define FONT_ADVANCE (4 * FONT_SCALE)
#define FONT_HEIGHT (5 * FONT_SCALE)

typedef struct canvas {
    int w, h;
    uint8_t *rgb;
} canvas;

static void fill_rect(canvas *cv, int x0, int y0, int w, int h, aq_rgb c)
{
    for (int y = y0; y < y0 + h && y < cv->h; y++)
        for (int x = x0; x < x0 + w && x < cv->w; x++) {
            uint8_t *p = cv->rgb + ((size_t)y * cv->w + x) * 3;
            p[0] = c.r, p[1] = c.g, p[2] = c.b;
        }
}

/* Draws text (lower case shown as upper case; unknown characters as gaps)
 * with its top-left corner at (x, y). */
static void draw_text(canvas *cv, int x, int y, const char *text, aq_rgb ink)
{
    for (; *text; text++, x += FONT_ADVANCE) {
        char ch = *text >= 'a' && *text <= 'z' ? (char)(*text - 32) : *text;
        for (size_t g = 0; g < sizeof glyphs / sizeof glyphs[0]; g++) {
            if (glyphs[g].c != ch)
                continue;
            for (int row = 0; row < 5; row++)
                for (int col = 0; col < 3; col++)
                    if (glyphs[g].rows >> ((4 - row) * 3 + (2 - col)) & 1)
                        fill_rect(cv, x + col * FONT_SCALE, y + row * FONT_SCALE, FONT_SCALE,
                                  FONT_SCALE, ink);
            break;
        }
    }
}

/* Copies an avatar into the canvas at (x, y), over the canvas's white
 * where it is transparent. */
static int blit(canvas *cv, int x0, int y0, const render_image *img)
{
    uint8_t *rgba = malloc((size_t)img->size * img->size * 4);
    if (!rgba)
        return -1;
    render_image_rgba(img, rgba);
    for (int y = 0; y < img->size; y++) {
        const uint8_t *src = rgba + (size_t)y * img->size * 4;
        uint8_t *dst = cv->rgb + ((size_t)(y0 + y) * cv->w + x0) * 3;
        for (int x = 0; x < img->size; x++, dst += 3, src += 4)
            for (int c = 0; c < 3; c++)
                dst[c] = (uint8_t)((src[c] * src[3] + dst[c] * (255 - src[3]) + 127) / 255);
    }
    free(rgba);
    return 0;
}

/* The sheet's columns: a seed (different per column, so each shows another
 * picture), a scheme (NULL: colours from the seed), a filter, and the
 * options every style takes (radius, a transparent background: shown on the
 * sheet's white). */
static const struct sheet_col {
    const char *label, *seed, *scheme, *filter;
    int radius;
    const char *background;
} sheet_cols[] = {
    {"seed", "ada", NULL, NULL, 0, NULL},          {"seed", "grace", NULL, NULL, 0, NULL},
    {"seed", "linus", NULL, NULL, 0, NULL},        {"default", "alan", "default", NULL, 0, NULL},
    {"blue", "edsger", "blue", NULL, 0, NULL},     {"green", "barbara", "green", NULL, 0, NULL},
    {"sunset", "ken", "sunset", NULL, 0, NULL},    {"royal", "margaret", "royal", NULL, 0, NULL},
    {"ocean", "dennis", "ocean", NULL, 0, NULL},   {"pastel", "donald", "pastel", NULL, 0, NULL},
    {"night", "frances", "night", NULL, 0, NULL},  {"grayscale", "ada", "vibrant", "grayscale", 0, NULL},
    {"sepia", "grace", "vibrant", "sepia", 0, NULL}, {"negative", "linus", "vibrant", "negative", 0, NULL},
    {"round", "ada", NULL, NULL, 50, NULL},        {"radius", "grace", "ocean", NULL, 20, NULL},
    {"clear", "linus", "vibrant", NULL, 0, "transparent"},
};

#define SHEET_NCOLS ((int)(sizeof sheet_cols / sizeof sheet_cols[0]))
#define SHEET_GAP 12
#define SHEET_LEFT (9 * FONT_ADVANCE + SHEET_GAP)
#define SHEET_TOP (FONT_HEIGHT + 2 * SHEET_GAP)

/* Renders every style (rows) in every column's variant into cv. */
static int sheet_draw(canvas *cv, int cell, const job_limits *l, aq_err *e)
{
    static job_request r;
    render_image img = RENDER_IMAGE_INIT;
    const aq_rgb ink = {0x44, 0x44, 0x44};
    int step = cell + SHEET_GAP;
    for (int c = 0; c < SHEET_NCOLS; c++)
        draw_text(cv, SHEET_LEFT + c * step, SHEET_GAP, sheet_cols[c].label, ink);
    int rc = 0;
    for (int s = 0; s < render_style_count() && rc == 0; s++) {
        int y = SHEET_TOP + s * step;
        draw_text(cv, SHEET_GAP, y + (cell - FONT_HEIGHT) / 2, render_style_name(s), ink);
        for (int c = 0; c < SHEET_NCOLS && rc == 0; c++) {
            cli_jobopts o;
            memset(&o, 0, sizeof o);
            avatarq_request_init(&o.req);
            o.req.style = render_style_name(s);
            o.req.scheme = sheet_cols[c].scheme;
            o.req.filter = sheet_cols[c].filter;
            o.req.radius = sheet_cols[c].radius;
            /* a style without a transparent background shows its own */
            if (sheet_cols[c].background &&
                render_style_takes_background(s, (render_bg)render_bg_find(sheet_cols[c].background)))
                o.req.background = sheet_cols[c].background;
            o.sizes[0] = cell;
            o.req.sizes = o.sizes;
            o.req.nsizes = 1;
            rc = build_request(&o, l, sheet_cols[c].seed, NULL, &r, e);
            if (rc == 0 && render_make(&r.render, cell, &img) != 0)
                rc = err_set(e, AQ_EPERM, "rendering %s at %d px failed: %s", render_style_name(s), cell,
                             render_error());
            if (rc == 0 && blit(cv, SHEET_LEFT + c * step, y, &img) != 0)
                rc = err_set(e, AQ_EPERM, "out of memory");
        }
    }
    render_image_free(&img);
    return rc;
}

int cmd_sheet(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"size", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0], *out = NULL;
    long cell = 96;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:", longopts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 's') {
            if ((rc = cli_int(cmd, "--size", optarg, RENDER_MIN_SIZE, 256, &cell)) != 0)
                return rc;
        } else
            return cli_getopt_fail(cmd, c, argv);
    }
    if ((rc = cli_positional(cmd, argc, argv, 0, "")) != 0)
        return rc;
    if (!out)
        return cli_fail(cmd, 2, "missing -o FILE.png");
    job_limits l;
    if ((rc = limits(ctx, cmd, &l)) != 0)
        return rc;
    if (cell > l.max_size)
        return cli_fail(cmd, 2, "--size: %ld is above [render] max_size %d", cell, l.max_size);

    int step = (int)cell + SHEET_GAP;
    canvas cv = {SHEET_LEFT + SHEET_NCOLS * step, SHEET_TOP + render_style_count() * step, NULL};
    cv.rgb = malloc((size_t)cv.w * cv.h * 3);
    if (!cv.rgb)
        return cli_fail(cmd, 1, "out of memory for a %dx%d sheet", cv.w, cv.h);
    memset(cv.rgb, 0xff, (size_t)cv.w * cv.h * 3);
    aq_err e;
    err_clear(&e);
    buf png = BUF_INIT;
    rc = sheet_draw(&cv, (int)cell, &l, &e);
    if (rc == 0)
        rc = pngenc_encode_rgb(cv.rgb, cv.w, cv.h, &png, &e);
    if (rc == 0)
        rc = write_atomic(out, png.data, png.len, &e);
    free(cv.rgb);
    buf_free(&png);
    pngenc_release();
    if (rc != 0)
        return cli_fail(cmd, 1, "%s", e.msg);
    if (strcmp(out, "-") != 0)
        printf("%s: %dx%d, rows %s", out, cv.w, cv.h, render_style_name(0));
    for (int s = 1; s < render_style_count() && strcmp(out, "-") != 0; s++)
        printf(", %s", render_style_name(s));
    if (strcmp(out, "-") != 0)
        printf("; columns: seed colours, schemes, filters, then round, radius 20 and transparent\n");
    return 0;
}

/* ---- schemes ---- */

int cmd_schemes(cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    int rc = cli_no_options(argv[0], argc, argv, 0, "");
    if (rc)
        return rc;
    bool swatch = cli_tty();
    size_t n;
    const color_scheme *s = color_schemes(&n);
    for (size_t i = 0; i < n; i++) {
        char p[8], f[8];
        color_hex(s[i].primary, p);
        color_hex(s[i].foreign, f);
        if (swatch)
            /* ANSI 24-bit background colours: the pair as two blocks */
            printf("\033[48;2;%d;%d;%dm   \033[48;2;%d;%d;%dm   \033[0m ", s[i].primary.r,
                   s[i].primary.g, s[i].primary.b, s[i].foreign.r, s[i].foreign.g,
                   s[i].foreign.b);
        printf("%-11s %s %s  %s\n", s[i].name, p, f, s[i].about);
    }
    return 0;
}

/* ---- styles ---- */

/* What each style draws and its own fields, for `avatarq styles`. */
static const struct style_about {
    const char *name, *about, *fields;
} style_about[] = {
    {"pixel", "a mirrored 5x5 grid, GitHub-like", ""},
    {"classic", "a symmetric figure of rings and edges", ""},
    {"wave", "layered smooth waves", ""},
    {"gradient", "a linear gradient with a band of light", "angle"},
    {"emoji", "one emoji (Twemoji) on a background", "emoji, emoji_size, angle (linear)"},
    {"initials", "one or two letters in any script", "name"},
};

int cmd_styles(cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    int rc = cli_no_options(argv[0], argc, argv, 0, "");
    if (rc)
        return rc;
    for (int s = 0; s < render_style_count(); s++) {
        const struct style_about *a = NULL;
        for (size_t i = 0; i < sizeof style_about / sizeof style_about[0]; i++)
            if (strcmp(style_about[i].name, render_style_name(s)) == 0)
                a = &style_about[i];
        char bgs[96] = "", fmts[32] = "png, webp";
        for (int b = RENDER_BG_SOLID; b < RENDER_BG_COUNT; b++)
            if (render_style_takes_background(s, (render_bg)b))
                snprintf(bgs + strlen(bgs), sizeof bgs - strlen(bgs), "%s%s", bgs[0] ? "|" : "",
                         render_bg_name((render_bg)b));
        if (render_style_has_svg(s))
            snprintf(fmts + strlen(fmts), sizeof fmts - strlen(fmts), ", svg");
        printf("%-9s %s\n          background: %s; format: %s; fields: %s\n", render_style_name(s),
               a ? a->about : "", bgs, fmts,
               a && a->fields[0] ? a->fields : "(none of its own)");
    }
    printf("every style: seed, sizes, primary, foreign, scheme, filter, background, radius, format\n");
    return 0;
}
