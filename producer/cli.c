/* Helpers shared by the avatarq commands: one-line errors, integer and
 * getopt error handling, the job options of enqueue/batch, times and the
 * progress bar. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "color.h"
#include "render.h"
#include "retry.h"

int cli_fail(const char *cmd, int status, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    fflush(stdout);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message may quote stored data (an error a worker recorded): it
     * reaches the terminal escaped like everything else. */
    fprintf(stderr, "avatarq%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", cli_safe(msg));
    return status;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s does not
 * start one (a stray continuation byte, an overlong form, a surrogate). */
static size_t utf8_len(const unsigned char *s, unsigned *cp)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (n == 0)
        return 0;
    unsigned c = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/* Appends the escaped form of s to b: see cli_safe. */
static void safe_append(buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char esc[8];
        unsigned cp = 0;
        size_t n = *p < 0x80 ? 1 : utf8_len(p, &cp);
        if (*p == '\\') {
            buf_append(b, "\\\\", 2);
        } else if (*p < 0x20 || *p == 0x7f || n == 0 || (cp >= 0x80 && cp < 0xa0)) {
            /* C0, DEL, C1 (terminal controls in UTF-8) and invalid bytes */
            unsigned v = n > 1 ? cp : *p;
            snprintf(esc, sizeof esc, n > 1 ? "\\u%04x" : "\\x%02x", v);
            buf_append(b, esc, strlen(esc));
            n = n ? n : 1;
        } else {
            buf_append(b, p, n);
        }
        p += n;
    }
    buf_append(b, "", 1);
}

const char *cli_safe(const char *s)
{
    /* A ring of buffers, so one printf can take several escaped fields;
     * they stay reachable (not leaks) and are reused for the process. */
    static buf ring[16];
    static size_t next;
    if (!s)
        return "";
    buf *b = &ring[next++ % 16];
    buf_reset(b);
    safe_append(b, s);
    return b->data ? (const char *)b->data : "";
}

int cli_write_file(const char *path, const void *data, size_t len, aq_err *e)
{
    if (strcmp(path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
            return err_set(e, AQ_EPERM, "writing to standard output: %s", strerror(errno));
        return 0;
    }
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp)
        return err_set(e, AQ_EPERM, "%s: path too long", path);
    /* mkstemp: a new name, O_EXCL, never a planted file or symlink. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return err_set(e, AQ_EPERM, "%s: %s", path, strerror(errno));
    mode_t um = umask(0);
    umask(um);
    const unsigned char *p = data;
    size_t left = len;
    int err = 0;
    while (left > 0 && !err) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            err = n < 0 ? errno : EIO;
        else
            p += n, left -= (size_t)n;
    }
    /* mkstemp makes 0600; an image is an ordinary file, as umask says. */
    if (!err && (fchmod(fd, 0666 & ~um) != 0 || fsync(fd) != 0))
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return err_set(e, AQ_EPERM, "%s: %s", path, strerror(err));
    }
    return 0;
}

bool cli_tty(void)
{
    return isatty(STDOUT_FILENO) == 1;
}

bool cli_isatty_fd(int fd)
{
    return isatty(fd) == 1;
}

int cli_int(const char *cmd, const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno == ERANGE)
        return cli_fail(cmd, 2, "%s: '%s' is not an integer", opt, s);
    if (v < min)
        return cli_fail(cmd, 2, "%s: %ld is below %ld", opt, v, min);
    if (v > max)
        return cli_fail(cmd, 2, "%s: %ld is above %ld", opt, v, max);
    *out = v;
    return 0;
}

int cli_getopt_fail(const char *cmd, int c, char **argv)
{
    /* optind already points past the offending word; for a long option the
     * word itself names it, for a short one optopt does. */
    const char *word = optind > 0 ? argv[optind - 1] : "";
    char name[128];
    if (strncmp(word, "--", 2) == 0) {
        snprintf(name, sizeof name, "%s", word);
        char *eq = strchr(name, '=');
        if (eq)
            *eq = '\0';
    } else if (optopt > 0 && optopt < 256) {
        snprintf(name, sizeof name, "-%c", optopt);
    } else {
        snprintf(name, sizeof name, "%s", word);
    }
    if (c == ':')
        return cli_fail(cmd, 2, "option %s needs an argument", name);
    return cli_fail(cmd, 2, "unknown option %s (see avatarq %s%s--help)", name,
                    cmd ? cmd : "", cmd ? " " : "");
}

int cli_positional(const char *cmd, int argc, char **argv, int want, const char *what)
{
    int have = argc - optind;
    if (have < want)
        return cli_fail(cmd, 2, "missing %s", what);
    if (have > want)
        return cli_fail(cmd, 2, "unexpected argument '%s'", argv[optind + want]);
    return 0;
}

int cli_no_options(const char *cmd, int argc, char **argv, int want, const char *what)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    opterr = 0;
    int c = getopt_long(argc, argv, ":", none, NULL);
    if (c != -1)
        return cli_getopt_fail(argv[0], c, argv);
    return cli_positional(cmd, argc, argv, want, what);
}

/* ---- job options ---- */

const struct option cli_job_longopts[CLI_JOB_NLONGOPTS + 1] = {
    {"seed", required_argument, NULL, CLI_OPT_SEED},
    {"style", required_argument, NULL, CLI_OPT_STYLE},
    {"size", required_argument, NULL, CLI_OPT_SIZE},
    {"sizes", required_argument, NULL, CLI_OPT_SIZES},
    {"primary", required_argument, NULL, CLI_OPT_PRIMARY},
    {"foreign", required_argument, NULL, CLI_OPT_FOREIGN},
    {"scheme", required_argument, NULL, CLI_OPT_SCHEME},
    {"angle", required_argument, NULL, CLI_OPT_ANGLE},
    {"filter", required_argument, NULL, CLI_OPT_FILTER},
    {"max-attempts", required_argument, NULL, CLI_OPT_MAX_ATTEMPTS},
    {"id", required_argument, NULL, CLI_OPT_ID},
    {"queue", required_argument, NULL, CLI_OPT_QUEUE},
    {"emoji", required_argument, NULL, CLI_OPT_EMOJI},
    {"background", required_argument, NULL, CLI_OPT_BACKGROUND},
    {"emoji-size", required_argument, NULL, CLI_OPT_EMOJI_SIZE},
    {"name", required_argument, NULL, CLI_OPT_NAME},
    {"radius", required_argument, NULL, CLI_OPT_RADIUS},
    {"format", required_argument, NULL, CLI_OPT_FORMAT},
    {NULL, 0, NULL, 0},
};

void cli_jobopts_init(cli_jobopts *o, const aq_config *cfg)
{
    memset(o, 0, sizeof *o);
    avatarq_request_init(&o->req);
    o->req.sizes = o->sizes;
    o->max_size = cfg->render.max_size > 0 ? cfg->render.max_size : RENDER_MAX_SIZE;
}

static int opt_seed(cli_jobopts *o, const char *cmd, const char *arg)
{
    size_t n = strlen(arg);
    if (n == 0)
        return cli_fail(cmd, 2, "--seed: empty (1 to %d bytes)", JOB_SEED_MAX);
    if (n > JOB_SEED_MAX)
        return cli_fail(cmd, 2, "--seed: %zu bytes is longer than %d", n, JOB_SEED_MAX);
    o->req.seed = arg;
    return 0;
}

static int opt_style(cli_jobopts *o, const char *cmd, const char *arg)
{
    if (render_style_find(arg) >= 0) {
        o->req.style = arg;
        return 0;
    }
    char names[256] = "";
    for (int i = 0; i < render_style_count(); i++) {
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", render_style_name(i));
    }
    return cli_fail(cmd, 2, "--style: '%s' is not a style (%s)", arg, names);
}

static int add_size(cli_jobopts *o, const char *cmd, const char *opt, const char *s)
{
    long v = 0;
    int rc = cli_int(cmd, opt, s, RENDER_MIN_SIZE, o->max_size, &v);
    if (rc)
        return rc;
    for (size_t i = 0; i < o->req.nsizes; i++)
        if (o->sizes[i] == v)
            return 0; /* sizes are a set: a repeat changes nothing */
    if (o->req.nsizes >= JOB_SIZES_MAX)
        return cli_fail(cmd, 2, "%s: more than %d sizes", opt, JOB_SIZES_MAX);
    o->sizes[o->req.nsizes++] = (int)v;
    return 0;
}

static int opt_size(cli_jobopts *o, const char *cmd, const char *arg)
{
    return add_size(o, cmd, "--size", arg);
}

static int opt_sizes(cli_jobopts *o, const char *cmd, const char *arg)
{
    char list[512];
    if (strlen(arg) >= sizeof list)
        return cli_fail(cmd, 2, "--sizes: list too long");
    snprintf(list, sizeof list, "%s", arg);
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++) {
        int rc = add_size(o, cmd, "--sizes", tok);
        if (rc)
            return rc;
    }
    if (n == 0)
        return cli_fail(cmd, 2, "--sizes: '%s' holds no size (e.g. 32,64)", arg);
    return 0;
}

static int colour(const char *cmd, const char *opt, const char *arg, const char **slot)
{
    aq_rgb c;
    if (color_parse(arg, &c) != 0)
        return cli_fail(cmd, 2, "%s: '%s' is not a colour (#rgb, #rrggbb or a CSS name)",
                        opt, arg);
    *slot = arg;
    return 0;
}

static int opt_primary(cli_jobopts *o, const char *cmd, const char *arg)
{
    return colour(cmd, "--primary", arg, &o->req.primary);
}

static int opt_foreign(cli_jobopts *o, const char *cmd, const char *arg)
{
    return colour(cmd, "--foreign", arg, &o->req.foreign);
}

static int opt_scheme(cli_jobopts *o, const char *cmd, const char *arg)
{
    if (!color_scheme_find(arg))
        return cli_fail(cmd, 2, "--scheme: '%s' is not a colour scheme (see avatarq schemes)",
                        arg);
    o->req.scheme = arg;
    return 0;
}

static int opt_angle(cli_jobopts *o, const char *cmd, const char *arg)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (*arg == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v))
        return cli_fail(cmd, 2, "--angle: '%s' is not a number", arg);
    if (v < 0 || v > 360)
        return cli_fail(cmd, 2, "--angle: %s is outside 0..360", arg);
    o->req.angle = v;
    return 0;
}

static int opt_filter(cli_jobopts *o, const char *cmd, const char *arg)
{
    if (color_filter_find(arg) < 0) {
        char names[128] = "";
        for (int f = 0; f < FILTER_COUNT; f++) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", f ? ", " : "",
                     color_filter_name((aq_filter)f));
        }
        return cli_fail(cmd, 2, "--filter: '%s' is not a filter (%s)", arg, names);
    }
    o->req.filter = arg;
    return 0;
}

static int opt_max_attempts(cli_jobopts *o, const char *cmd, const char *arg)
{
    long v = 0;
    int rc = cli_int(cmd, "--max-attempts", arg, 1, 25, &v);
    if (rc == 0)
        o->req.max_attempts = (int)v;
    return rc;
}

static int opt_id(cli_jobopts *o, const char *cmd, const char *arg)
{
    if (!job_id_valid(arg))
        return cli_fail(cmd, 2, "--id: '%s' is not a valid id ([A-Za-z0-9._-]{1,64}, "
                                "not starting with '.')", arg);
    o->req.id = arg;
    return 0;
}

static int opt_queue(cli_jobopts *o, const char *cmd, const char *arg)
{
    aq_err e;
    if (job_queue_check(arg, "--queue", &e) != 0)
        return cli_fail(cmd, 2, "%s", e.msg);
    o->req.queue = arg;
    return 0;
}

/* The look options: each value is checked by the job's own rule, so the
 * message is the one a dead job would carry ("radius: 60 is outside 0..50");
 * how the options fit the style is checked when the request is built. */
static int look_option(const char *cmd, const char *field, const char *arg, const char **slot)
{
    static job_request scratch;
    job_limits none = {0};
    aq_err e;
    err_clear(&e);
    if (job_set_field(&scratch, field, arg, &none, &e) != 0)
        return cli_fail(cmd, 2, "%s", e.msg);
    *slot = arg;
    return 0;
}

static int opt_emoji(cli_jobopts *o, const char *cmd, const char *arg)
{
    return look_option(cmd, "emoji", arg, &o->req.emoji);
}

static int opt_background(cli_jobopts *o, const char *cmd, const char *arg)
{
    return look_option(cmd, "background", arg, &o->req.background);
}

static int opt_emoji_size(cli_jobopts *o, const char *cmd, const char *arg)
{
    return look_option(cmd, "emoji_size", arg, &o->req.emoji_size);
}

static int opt_name(cli_jobopts *o, const char *cmd, const char *arg)
{
    return look_option(cmd, "name", arg, &o->req.name);
}

static int opt_radius(cli_jobopts *o, const char *cmd, const char *arg)
{
    const char *ok = NULL;
    int rc = look_option(cmd, "radius", arg, &ok);
    if (rc == 0)
        o->req.radius = atoi(ok);
    return rc;
}

static int opt_format(cli_jobopts *o, const char *cmd, const char *arg)
{
    return look_option(cmd, "format", arg, &o->req.format);
}

/* Indexed by opt - CLI_OPT_SEED. */
static int (*const job_opt_fns[CLI_JOB_NLONGOPTS])(cli_jobopts *, const char *, const char *) = {
    opt_seed, opt_style, opt_size, opt_sizes, opt_primary, opt_foreign,
    opt_scheme, opt_angle, opt_filter, opt_max_attempts, opt_id, opt_queue,
    opt_emoji, opt_background, opt_emoji_size, opt_name, opt_radius, opt_format,
};

int cli_jobopts_apply(cli_jobopts *o, const char *cmd, int opt, const char *arg)
{
    if (opt < CLI_OPT_SEED || opt >= CLI_OPT_SEED + CLI_JOB_NLONGOPTS)
        return -1;
    return job_opt_fns[opt - CLI_OPT_SEED](o, cmd, arg);
}

/* ---- times ---- */

const char *cli_time(int64_t ms, char out[32])
{
    if (ms <= 0) {
        snprintf(out, 32, "-");
        return out;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
    return out;
}

/* ---- progress ---- */

#define PROGRESS_WIDTH 30

void cli_progress_start(cli_progress *p, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->on = cli_isatty_fd(STDERR_FILENO);
    p->total = total;
    p->start_ms = mono_ms();
}

static void progress_draw(cli_progress *p, int64_t now)
{
    double secs = (double)(now - p->start_ms) / 1000.0;
    double rate = secs > 0 ? (double)p->jobs / secs : 0;
    if (p->total > 0) {
        int64_t pos = p->pos > p->total ? p->total : p->pos;
        int fill = (int)(pos * PROGRESS_WIDTH / p->total);
        char bar[PROGRESS_WIDTH + 1];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(PROGRESS_WIDTH - fill));
        bar[PROGRESS_WIDTH] = '\0';
        fprintf(stderr, "\r[%s] %3d%%  %lld jobs  %.0f/s ", bar,
                (int)(pos * 100 / p->total), (long long)p->jobs, rate);
    } else {
        fprintf(stderr, "\r%lld jobs  %.0f/s ", (long long)p->jobs, rate);
    }
    fflush(stderr);
    p->drawn_ms = now;
}

void cli_progress_update(cli_progress *p, int64_t pos, int64_t jobs)
{
    p->pos = pos;
    p->jobs = jobs;
    if (!p->on)
        return;
    int64_t now = mono_ms();
    if (now - p->drawn_ms >= 100)
        progress_draw(p, now);
}

void cli_progress_end(cli_progress *p)
{
    if (p->on && p->drawn_ms)
        fprintf(stderr, "\r\033[K");
    fflush(stderr);
    p->on = false;
}
