/* job: the job document of docs/protocol.md.
 *
 * job_parse() is a gate in front of everything else a worker does, so it
 * assumes the worst of its input: the size is checked before any parsing,
 * nesting before jansson recurses, and jansson itself rejects invalid UTF-8,
 * NaN/Infinity, numbers that overflow and duplicate keys. Each field then
 * has one row in FIELDS (its JSON type check and how it lands in the
 * request), and the rules on values live in check_* functions that
 * job_finish() shares with requests built in code, so a bad --size on the
 * command line and a bad "sizes" in a document read the same.
 *
 * Decisions where docs/protocol.md is silent:
 * - "v" absent means version 1; an integer field given as a JSON real (64.0)
 *   is rejected, since it usually betrays a float where an integer was meant.
 * - "type" is case-sensitive; style, scheme, filter and colour names are not
 *   (they go through the colour and style tables) and are normalised in the
 *   canonical form: style/scheme/filter names in lower case, colours as
 *   #rrggbb, sizes in ascending order, angle in hundredths of a degree
 *   (what decides the pixels), so equal requests share one id. */
#include "job.h"
#include "callback.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emoji.h"
#include "hash.h"
#include "initials.h"
#include "log.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Deeper nesting than any valid document has (it needs 2), checked before
 * jansson's recursive descent sees a depth bomb. */
#define JOB_DEPTH_MAX 16
#define SHOW 48 /* bytes of a bad value shown in a message */

/* ---- describing values in messages ---- */

static const char *show_str(const char *s, size_t len, char *out, size_t n)
{
    char p[SHOW];
    log_printable(s, len, p, sizeof p);
    snprintf(out, n, "'%s'", p);
    return out;
}

/* "string 'abc'", "integer 5", "real 64.0", "an array", "null"... */
static const char *describe(const json_t *v, char *out, size_t n)
{
    char val[SHOW + 8];
    switch (json_typeof(v)) {
    case JSON_STRING:
        snprintf(out, n, "string %s", show_str(json_string_value(v), json_string_length(v), val, sizeof val));
        break;
    case JSON_INTEGER:
        snprintf(out, n, "integer %lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        snprintf(val, sizeof val, "%.17g", json_real_value(v));
        bool plain = strspn(val, "-0123456789") == strlen(val);
        snprintf(out, n, "real %s%s", val, plain ? ".0" : "");
        break;
    }
    case JSON_OBJECT: snprintf(out, n, "an object"); break;
    case JSON_ARRAY: snprintf(out, n, "an array"); break;
    case JSON_TRUE: snprintf(out, n, "true"); break;
    case JSON_FALSE: snprintf(out, n, "false"); break;
    default: snprintf(out, n, "null"); break;
    }
    return out;
}

static int wrong_type(const char *field, const char *want, const json_t *v, aq_err *e)
{
    char got[SHOW + 32];
    return err_set(e, AQ_EPERM, "%s: expected %s, got %s", field, want, describe(v, got, sizeof got));
}

/* ---- rules on values, shared by job_parse() and job_finish() ---- */

bool job_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= JOB_ID_MAX && s[0] != '.' &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

bool job_queue_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= JOB_QUEUE_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int job_queue_check(const char *s, const char *what, aq_err *e)
{
    if (job_queue_valid(s))
        return 0;
    char v[SHOW + 8];
    return err_set(e, AQ_EPERM, "%s: %s is not a valid queue name ([A-Za-z0-9._-]{1,64})", what,
                   show_str(s ? s : "", s ? strlen(s) : 0, v, sizeof v));
}

static int check_id(const char *s, size_t len, aq_err *e)
{
    char v[SHOW + 8];
    if (len != strlen(s) || !job_id_valid(s))
        return err_set(e, AQ_EPERM, "id: %s is not a valid id ([A-Za-z0-9._-]{1,64}, not starting with '.')",
                       show_str(s, len, v, sizeof v));
    return 0;
}

static int check_seed(const char *s, size_t len, aq_err *e)
{
    if (len == 0)
        return err_set(e, AQ_EPERM, "seed: must not be empty (1 to %d bytes)", JOB_SEED_MAX);
    if (len > JOB_SEED_MAX)
        return err_set(e, AQ_EPERM, "seed: %zu bytes, more than %d", len, JOB_SEED_MAX);
    const char *nul = memchr(s, '\0', len);
    if (nul)
        return err_set(e, AQ_EPERM, "seed: contains a NUL character (\\u0000) at byte %zu", (size_t)(nul - s));
    /* A document is UTF-8 JSON: a seed it cannot carry cannot be enqueued. */
    json_t *t = json_stringn(s, len);
    if (!t) {
        char v[SHOW + 8];
        return err_set(e, AQ_EPERM, "seed: %s is not valid UTF-8", show_str(s, len, v, sizeof v));
    }
    json_decref(t);
    return 0;
}

static int check_nsizes(size_t n, aq_err *e)
{
    if (n == 0)
        return err_set(e, AQ_EPERM, "sizes: must not be empty");
    if (n > JOB_SIZES_MAX)
        return err_set(e, AQ_EPERM, "sizes: %zu sizes, at most %d", n, JOB_SIZES_MAX);
    return 0;
}

/* sizes[i] = v, given the i sizes before it. */
static int check_size(long long v, size_t i, const int *before, const job_limits *l, aq_err *e)
{
    if (v < RENDER_MIN_SIZE)
        return err_set(e, AQ_EPERM, "sizes[%zu]: %lld is below %d", i, v, RENDER_MIN_SIZE);
    if (v > l->max_size)
        return err_set(e, AQ_EPERM, "sizes[%zu]: %lld is above max_size %d", i, v, l->max_size);
    for (size_t j = 0; j < i; j++)
        if (before[j] == v)
            return err_set(e, AQ_EPERM, "sizes[%zu]: %lld appears twice", i, v);
    return 0;
}

static int check_style(int style, aq_err *e)
{
    if (style < 0 || style >= render_style_count())
        return err_set(e, AQ_EPERM, "style: %d is not a style index (0..%d)", style, render_style_count() - 1);
    return 0;
}

static int bad_style_name(const char *s, size_t len, aq_err *e)
{
    char list[128] = "", v[SHOW + 8];
    for (int i = 0; i < render_style_count(); i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", render_style_name(i));
    return err_set(e, AQ_EPERM, "style: %s is not a style (%s)", show_str(s, len, v, sizeof v), list);
}

static int check_color(const char *field, const char *s, size_t len, aq_rgb *out, aq_err *e)
{
    char v[SHOW + 8];
    if (len >= 32 || len != strlen(s) || color_parse(s, out) != 0)
        return err_set(e, AQ_EPERM, "%s: %s is not a colour (#rgb, #rrggbb or a CSS colour name)", field,
                       show_str(s, len, v, sizeof v));
    return 0;
}

static int check_scheme(const char *s, size_t len, const color_scheme **out, aq_err *e)
{
    char v[SHOW + 8];
    const color_scheme *sc = len < 32 && len == strlen(s) ? color_scheme_find(s) : NULL;
    if (!sc)
        return err_set(e, AQ_EPERM, "scheme: %s is not a colour scheme (`avatarq schemes` lists them)",
                       show_str(s, len, v, sizeof v));
    if (out)
        *out = sc;
    return 0;
}

static int check_filter_name(const char *s, size_t len, int *out, aq_err *e)
{
    char v[SHOW + 8];
    int f = len == strlen(s) ? color_filter_find(s) : -1;
    if (f < 0)
        return err_set(e, AQ_EPERM, "filter: %s is not a filter (none, grayscale, sepia, negative)",
                       show_str(s, len, v, sizeof v));
    *out = f;
    return 0;
}

static int check_angle(double a, aq_err *e)
{
    if (!isfinite(a))
        return err_set(e, AQ_EPERM, "angle: not a finite number");
    if (a < 0 || a > 360)
        return err_set(e, AQ_EPERM, "angle: %g is outside 0..360", a);
    return 0;
}

/* ---- the look options of issue 15 ---- */

static const char *const format_names[JOB_FORMAT_COUNT] = {"png", "webp", "svg"};
static const char *const format_mimes[JOB_FORMAT_COUNT] = {"image/png", "image/webp", "image/svg+xml"};

const char *job_format_name(job_format f)
{
    return (unsigned)f < JOB_FORMAT_COUNT ? format_names[f] : NULL;
}

const char *job_format_ext(job_format f) { return job_format_name(f); }

const char *job_format_mime(job_format f)
{
    return (unsigned)f < JOB_FORMAT_COUNT ? format_mimes[f] : NULL;
}

int job_format_find(const char *name)
{
    for (int i = 0; name && i < JOB_FORMAT_COUNT; i++)
        if (strcasecmp(name, format_names[i]) == 0)
            return i;
    return -1;
}

/* The emoji text as given -> its artwork name (out, RENDER_EMOJI_MAX). */
static int check_emoji(const char *s, size_t len, char *out, aq_err *e)
{
    char v[SHOW + 8], why[160];
    if (len >= JOB_EMOJI_MAX)
        return err_set(e, AQ_EPERM, "emoji: %zu bytes, more than one emoji (at most %d)", len,
                       JOB_EMOJI_MAX - 1);
    if (len != strlen(s) || emoji_name_of(s, len, out, RENDER_EMOJI_MAX, why, sizeof why) != 0)
        return err_set(e, AQ_EPERM, "emoji: %s is %s", show_str(s, len, v, sizeof v),
                       len != strlen(s) ? "not text" : why);
    return 0;
}

static int check_background_name(const char *s, size_t len, int *out, aq_err *e)
{
    char v[SHOW + 8];
    int b = len == strlen(s) ? render_bg_find(s) : -1;
    if (b < 0)
        return err_set(e, AQ_EPERM, "background: %s is not a background (solid, linear, radial, transparent)",
                       show_str(s, len, v, sizeof v));
    *out = b;
    return 0;
}

static int check_emoji_size_name(const char *s, size_t len, int *out, aq_err *e)
{
    char v[SHOW + 8];
    int z = len == strlen(s) ? render_emoji_size_find(s) : -1;
    if (z < 0)
        return err_set(e, AQ_EPERM, "emoji_size: %s is not an emoji size (small, medium, large)",
                       show_str(s, len, v, sizeof v));
    *out = z;
    return 0;
}

static int check_radius(long long v, aq_err *e)
{
    if (v < 0 || v > 50)
        return err_set(e, AQ_EPERM, "radius: %lld is outside 0..50 (percent of the size; 50 is a circle)", v);
    return 0;
}

static int check_format_name(const char *s, size_t len, int *out, aq_err *e)
{
    char v[SHOW + 8];
    int f = len == strlen(s) ? job_format_find(s) : -1;
    if (f < 0)
        return err_set(e, AQ_EPERM, "format: %s is not a format (png, webp, svg)", show_str(s, len, v, sizeof v));
    *out = f;
    return 0;
}

static int check_name(const char *s, size_t len, aq_err *e)
{
    char v[SHOW + 8], letters[64];
    if (len > JOB_NAME_MAX)
        return err_set(e, AQ_EPERM, "name: %zu bytes, more than %d", len, JOB_NAME_MAX);
    if (len != strlen(s) || initials_of(s, len, letters, sizeof letters) == 0)
        return err_set(e, AQ_EPERM, "name: %s has no visible letter to make initials of",
                       show_str(s, len, v, sizeof v));
    return 0;
}

/* Options that only some styles draw, and formats only some styles have. */
static int check_look(const job_request *r, aq_err *e)
{
    const char *style = render_style_name(r->style);
    if (r->emoji[0] && strcmp(style, "emoji") != 0)
        return err_set(e, AQ_EPERM, "emoji: only the emoji style draws an emoji (style is %s)", style);
    if (r->emoji_size != RENDER_EMOJI_AUTO && strcmp(style, "emoji") != 0)
        return err_set(e, AQ_EPERM, "emoji_size: only the emoji style has it (style is %s)", style);
    if (r->name[0] && strcmp(style, "initials") != 0)
        return err_set(e, AQ_EPERM, "name: only the initials style draws a name (style is %s)", style);
    if ((unsigned)r->background >= RENDER_BG_COUNT)
        return err_set(e, AQ_EPERM, "background: %d is not a background", (int)r->background);
    if (!render_style_takes_background(r->style, r->background))
        return err_set(e, AQ_EPERM, "background: style %s cannot draw a %s background", style,
                       render_bg_name(r->background));
    if ((unsigned)r->format >= JOB_FORMAT_COUNT)
        return err_set(e, AQ_EPERM, "format: %d is not a format", (int)r->format);
    if (r->format == JOB_FORMAT_SVG && !render_style_has_svg(r->style))
        return err_set(e, AQ_EPERM, "format: style %s cannot be written as svg (png or webp)", style);
    if (r->emoji_size < RENDER_EMOJI_AUTO || r->emoji_size > RENDER_EMOJI_LARGE)
        return err_set(e, AQ_EPERM, "emoji_size: %d is not an emoji size", (int)r->emoji_size);
    return check_radius(r->radius, e);
}

static int check_max_attempts(long long v, aq_err *e)
{
    if (v < 1 || v > 25)
        return err_set(e, AQ_EPERM, "max_attempts: %lld is outside 1..25", v);
    return 0;
}

static int check_created_at(long long v, aq_err *e)
{
    if (v < 0)
        return err_set(e, AQ_EPERM, "created_at: %lld is negative (ms since the epoch)", v);
    return 0;
}

/* Lower-cased copy of a name that passed its check (so it fits). */
static void copy_lower(char *dst, size_t n, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        dst[i] = (char)tolower((unsigned char)s[i]);
    dst[i] = '\0';
}

/* ---- the fields of a document ---- */

typedef struct field_spec {
    const char *name;
    /* Checks v's JSON type and value and stores it in r. */
    int (*take)(job_request *r, const json_t *v, const job_limits *l, aq_err *e);
} field_spec;

static int want_string(const char *field, const json_t *v, aq_err *e)
{
    return json_is_string(v) ? 0 : wrong_type(field, "a string", v, e);
}

/* Integer fields take JSON integers only: 64.0 is refused (see the top). */
static int want_integer(const char *field, const json_t *v, aq_err *e)
{
    return json_is_integer(v) ? 0 : wrong_type(field, "an integer", v, e);
}

static int take_id(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_string("id", v, e) || check_id(json_string_value(v), json_string_length(v), e))
        return AQ_EPERM;
    snprintf(r->id, sizeof r->id, "%s", json_string_value(v));
    r->id_given = true;
    return 0;
}

static int take_v(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)r, (void)l;
    if (want_integer("v", v, e))
        return AQ_EPERM;
    if (json_integer_value(v) != JOB_VERSION)
        return err_set(e, AQ_EPERM, "v: unsupported protocol version %lld (this version reads %d)",
                       (long long)json_integer_value(v), JOB_VERSION);
    return 0;
}

static int take_type(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    static const char *const names[] = {[JOB_GENERATE] = "generate", [JOB_DELETE] = "delete"};
    (void)l;
    if (want_string("type", v, e))
        return AQ_EPERM;
    for (size_t i = 0; i < NELEM(names); i++) {
        if (json_string_length(v) == strlen(names[i]) && strcmp(json_string_value(v), names[i]) == 0) {
            r->type = (job_type)i;
            return 0;
        }
    }
    char s[SHOW + 8];
    return err_set(e, AQ_EPERM, "type: %s is not a job type (generate, delete)",
                   show_str(json_string_value(v), json_string_length(v), s, sizeof s));
}

static int take_seed(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_string("seed", v, e) || check_seed(json_string_value(v), json_string_length(v), e))
        return AQ_EPERM;
    r->seed_len = json_string_length(v);
    memcpy(r->seed, json_string_value(v), r->seed_len);
    r->seed[r->seed_len] = '\0';
    return 0;
}

static int take_style(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_string("style", v, e))
        return AQ_EPERM;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    int style = len == strlen(s) ? render_style_find(s) : -1;
    if (style < 0)
        return bad_style_name(s, len, e);
    r->style = style;
    return 0;
}

static int take_sizes(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    if (!json_is_array(v))
        return wrong_type("sizes", "an array of integers", v, e);
    size_t n = json_array_size(v);
    if (check_nsizes(n, e))
        return AQ_EPERM;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(v, i);
        char field[32];
        snprintf(field, sizeof field, "sizes[%zu]", i);
        if (want_integer(field, s, e) || check_size(json_integer_value(s), i, r->sizes, l, e))
            return AQ_EPERM;
        r->sizes[i] = (int)json_integer_value(s);
    }
    r->nsizes = n;
    return 0;
}

static int take_color(const char *field, char *dst, const json_t *v, aq_err *e)
{
    aq_rgb c;
    if (want_string(field, v, e) || check_color(field, json_string_value(v), json_string_length(v), &c, e))
        return AQ_EPERM;
    copy_lower(dst, 32, json_string_value(v));
    return 0;
}

static int take_primary(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    return take_color("primary", r->primary, v, e);
}

static int take_foreign(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    return take_color("foreign", r->foreign, v, e);
}

static int take_scheme(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    const color_scheme *sc;
    if (want_string("scheme", v, e) || check_scheme(json_string_value(v), json_string_length(v), &sc, e))
        return AQ_EPERM;
    copy_lower(r->scheme, sizeof r->scheme, sc->name);
    return 0;
}

static int take_angle(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (!json_is_number(v))
        return wrong_type("angle", "a number", v, e);
    if (check_angle(json_number_value(v), e))
        return AQ_EPERM;
    r->angle = json_number_value(v);
    return 0;
}

static int take_filter(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    int f = 0;
    if (want_string("filter", v, e) || check_filter_name(json_string_value(v), json_string_length(v), &f, e))
        return AQ_EPERM;
    r->filter = (aq_filter)f;
    return 0;
}

static int take_emoji(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    char name[RENDER_EMOJI_MAX];
    if (want_string("emoji", v, e) || check_emoji(json_string_value(v), json_string_length(v), name, e))
        return AQ_EPERM;
    snprintf(r->emoji, sizeof r->emoji, "%s", json_string_value(v));
    return 0;
}

static int take_background(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    int b = 0;
    if (want_string("background", v, e) ||
        check_background_name(json_string_value(v), json_string_length(v), &b, e))
        return AQ_EPERM;
    r->background = (render_bg)b;
    return 0;
}

static int take_emoji_size(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    int z = 0;
    if (want_string("emoji_size", v, e) ||
        check_emoji_size_name(json_string_value(v), json_string_length(v), &z, e))
        return AQ_EPERM;
    r->emoji_size = (render_emoji_size)z;
    return 0;
}

static int take_radius(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_integer("radius", v, e) || check_radius(json_integer_value(v), e))
        return AQ_EPERM;
    r->radius = (int)json_integer_value(v);
    return 0;
}

static int take_format(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    int f = 0;
    if (want_string("format", v, e) || check_format_name(json_string_value(v), json_string_length(v), &f, e))
        return AQ_EPERM;
    r->format = (job_format)f;
    return 0;
}

static int take_name(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_string("name", v, e) || check_name(json_string_value(v), json_string_length(v), e))
        return AQ_EPERM;
    snprintf(r->name, sizeof r->name, "%s", json_string_value(v));
    return 0;
}

static int take_max_attempts(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_integer("max_attempts", v, e) || check_max_attempts(json_integer_value(v), e))
        return AQ_EPERM;
    r->max_attempts = (int)json_integer_value(v);
    return 0;
}

static int take_created_at(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_integer("created_at", v, e) || check_created_at(json_integer_value(v), e))
        return AQ_EPERM;
    r->created_at = json_integer_value(v);
    return 0;
}

/* ---- scheduling fields (kept apart from the render fields) ---- */

static int check_run_at(long long v, aq_err *e)
{
    if (v < 0 || v > JOB_RUN_AT_MAX)
        return err_set(e, AQ_EPERM, "run_at: %lld is outside 0..%lld (ms since the epoch)", v,
                       JOB_RUN_AT_MAX);
    return 0;
}

static int check_delay_ms(long long v, aq_err *e)
{
    if (v < 0 || v > JOB_DELAY_MAX)
        return err_set(e, AQ_EPERM, "delay_ms: %lld is outside 0..%lld (a year)", v, JOB_DELAY_MAX);
    return 0;
}

static int take_run_at(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_integer("run_at", v, e) || check_run_at(json_integer_value(v), e))
        return AQ_EPERM;
    r->run_at = json_integer_value(v);
    return 0;
}

static int take_delay_ms(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_integer("delay_ms", v, e) || check_delay_ms(json_integer_value(v), e))
        return AQ_EPERM;
    r->delay_ms = json_integer_value(v);
    return 0;
}

static int check_callback_url(const char *s, size_t len, aq_err *e)
{
    char shown[80];
    if (len > JOB_CALLBACK_URL_MAX || strlen(s) != len || !callback_url_valid(s))
        return err_set(e, AQ_EPERM, "callback_url: '%s' is not an http:// or https:// URL "
                                    "(visible ASCII, at most %d bytes)",
                       log_printable(s, len, shown, sizeof shown), JOB_CALLBACK_URL_MAX);
    return 0;
}

static int take_callback_url(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_string("callback_url", v, e) ||
        check_callback_url(json_string_value(v), json_string_length(v), e))
        return AQ_EPERM;
    snprintf(r->callback_url, sizeof r->callback_url, "%s", json_string_value(v));
    return 0;
}

static int take_batch(job_request *r, const json_t *v, const job_limits *l, aq_err *e)
{
    (void)l;
    if (want_string("batch", v, e))
        return AQ_EPERM;
    if (!job_id_valid(json_string_value(v)) ||
        json_string_length(v) != strlen(json_string_value(v))) {
        char shown[80];
        return err_set(e, AQ_EPERM, "batch: '%s' is not a batch id ([A-Za-z0-9._-]{1,64})",
                       log_printable(json_string_value(v), json_string_length(v), shown,
                                     sizeof shown));
    }
    snprintf(r->batch, sizeof r->batch, "%s", json_string_value(v));
    return 0;
}

/* Both rules of the scheduling fields, for documents and requests alike. */
static int check_schedule(const job_request *r, aq_err *e)
{
    if (check_run_at(r->run_at, e) || check_delay_ms(r->delay_ms, e))
        return AQ_EPERM;
    if (r->run_at > 0 && r->delay_ms > 0)
        return err_set(e, AQ_EPERM, "delay_ms: give run_at or delay_ms, not both");
    return 0;
}

int64_t job_due_ms(const job_request *r, int64_t now)
{
    if (r->run_at > 0)
        return r->run_at;
    return r->delay_ms > 0 ? now + r->delay_ms : 0;
}

/* In the order they are checked (see take_fields). */
static const field_spec FIELDS[] = {
    {"id", take_id},           {"v", take_v},           {"type", take_type},
    {"seed", take_seed},       {"style", take_style},   {"sizes", take_sizes},
    {"primary", take_primary}, {"foreign", take_foreign}, {"scheme", take_scheme},
    {"angle", take_angle},     {"filter", take_filter}, {"max_attempts", take_max_attempts},
    {"created_at", take_created_at},
    {"emoji", take_emoji},     {"background", take_background}, {"emoji_size", take_emoji_size},
    {"radius", take_radius},   {"format", take_format}, {"name", take_name},
    {"run_at", take_run_at},   {"delay_ms", take_delay_ms},
    {"callback_url", take_callback_url}, {"batch", take_batch},
};

int job_set_field(job_request *r, const char *field, const char *text, const job_limits *l, aq_err *e)
{
    static const char *const settable[] = {"emoji", "background", "emoji_size", "radius", "format", "name"};
    size_t k = 0;
    while (k < NELEM(settable) && strcmp(field, settable[k]) != 0)
        k++;
    if (k == NELEM(settable))
        return err_set(e, AQ_EPERM, "%s: not a field job_set_field sets", field);
    json_t *v = NULL;
    if (strcmp(field, "radius") == 0) {
        /* a whole decimal number is an integer; anything else is refused
         * as the document would refuse a string */
        char *end;
        long long n = strtoll(text, &end, 10);
        v = *text && *end == '\0' ? json_integer(n) : json_string(text);
    } else {
        v = json_stringn(text, strlen(text));
    }
    if (!v)
        return err_set(e, AQ_EPERM, "%s: %s", field, json_string(text) ? "out of memory" : "not UTF-8 text");
    int rc = AQ_EPERM;
    for (size_t i = 0; i < NELEM(FIELDS); i++)
        if (strcmp(FIELDS[i].name, field) == 0)
            rc = FIELDS[i].take(r, v, l, e);
    json_decref(v);
    return rc;
}

/* Keys are compared with their length: a key may hold a \u0000. */
static bool field_known(const char *name, size_t len)
{
    for (size_t i = 0; i < NELEM(FIELDS); i++)
        if (strlen(FIELDS[i].name) == len && memcmp(FIELDS[i].name, name, len) == 0)
            return true;
    return false;
}

/* ---- limits, init, finish ---- */

int job_limits_from_config(job_limits *l, const aq_config *c, aq_err *e)
{
    memset(l, 0, sizeof *l);
    l->default_style = render_style_find(c->render.default_style);
    if (l->default_style < 0)
        return err_set(e, AQ_EPERM, "[render] default_style: '%s' is not a style", c->render.default_style);
    size_t n = c->render.n_default_sizes;
    if (n > JOB_SIZES_MAX)
        n = JOB_SIZES_MAX;
    memcpy(l->default_sizes, c->render.default_sizes, n * sizeof l->default_sizes[0]);
    l->n_default_sizes = n;
    l->max_size = c->render.max_size;
    return 0;
}

void job_init(job_request *r, const job_limits *l)
{
    memset(r, 0, sizeof *r);
    r->type = JOB_GENERATE;
    r->style = l->default_style;
    size_t n = l->n_default_sizes <= JOB_SIZES_MAX ? l->n_default_sizes : JOB_SIZES_MAX;
    memcpy(r->sizes, l->default_sizes, n * sizeof r->sizes[0]);
    r->nsizes = n;
    r->angle = -1;
    r->filter = FILTER_NONE;
}

/* Every rule on a request's values; the names of colours, scheme and filter
 * are normalised (lower case) on the way. */
static int check_request(job_request *r, const job_limits *l, aq_err *e)
{
    if (r->id_given && check_id(r->id, strnlen(r->id, sizeof r->id), e))
        return AQ_EPERM;
    if (r->type != JOB_GENERATE && r->type != JOB_DELETE)
        return err_set(e, AQ_EPERM, "type: %d is not a job type", (int)r->type);
    if (r->seed_len == 0)
        r->seed_len = strnlen(r->seed, sizeof r->seed); /* set with strcpy in code */
    if (r->seed_len > 0 || r->type == JOB_GENERATE) {
        if (r->seed_len == 0)
            return err_set(e, AQ_EPERM, "seed: required for a generate job (1 to %d bytes)", JOB_SEED_MAX);
        if (check_seed(r->seed, r->seed_len, e))
            return AQ_EPERM;
        r->seed[r->seed_len] = '\0';
    } else if (!r->id_given) {
        return err_set(e, AQ_EPERM, "id: a delete job needs an id or a seed");
    }
    if (check_style(r->style, e) || check_nsizes(r->nsizes, e))
        return AQ_EPERM;
    for (size_t i = 0; i < r->nsizes; i++)
        if (check_size(r->sizes[i], i, r->sizes, l, e))
            return AQ_EPERM;
    aq_rgb c;
    struct { const char *name; char *v; } colors[] = {{"primary", r->primary}, {"foreign", r->foreign}};
    for (size_t i = 0; i < NELEM(colors); i++) {
        size_t len = strnlen(colors[i].v, 32);
        if (len && check_color(colors[i].name, colors[i].v, len, &c, e))
            return AQ_EPERM;
        copy_lower(colors[i].v, 32, colors[i].v);
    }
    const color_scheme *sc;
    if (r->scheme[0]) {
        if (check_scheme(r->scheme, strnlen(r->scheme, sizeof r->scheme), &sc, e))
            return AQ_EPERM;
        copy_lower(r->scheme, sizeof r->scheme, sc->name);
    }
    if (!(r->angle < 0) && check_angle(r->angle, e)) /* negative = absent; NaN is checked */
        return AQ_EPERM;
    if ((unsigned)r->filter >= FILTER_COUNT)
        return err_set(e, AQ_EPERM, "filter: %d is not a filter", (int)r->filter);
    if (r->max_attempts != 0 && check_max_attempts(r->max_attempts, e))
        return AQ_EPERM;
    char art[RENDER_EMOJI_MAX];
    if (r->emoji[0] && check_emoji(r->emoji, strnlen(r->emoji, sizeof r->emoji), art, e))
        return AQ_EPERM;
    if (r->name[0] && check_name(r->name, strnlen(r->name, sizeof r->name), e))
        return AQ_EPERM;
    if (r->type == JOB_GENERATE && check_look(r, e))
        return AQ_EPERM;
    if (check_schedule(r, e))
        return AQ_EPERM;
    if (r->callback_url[0] &&
        check_callback_url(r->callback_url, strnlen(r->callback_url, sizeof r->callback_url), e))
        return AQ_EPERM;
    if (r->batch[0] && !job_id_valid(r->batch))
        return err_set(e, AQ_EPERM, "batch: '%.64s' is not a batch id", r->batch);
    return check_created_at(r->created_at, e);
}

static void resolve_render(job_request *r)
{
    aq_rgb p, f;
    bool has_p = r->primary[0] && color_parse(r->primary, &p) == 0;
    bool has_f = r->foreign[0] && color_parse(r->foreign, &f) == 0;
    const color_scheme *sc = r->scheme[0] ? color_scheme_find(r->scheme) : NULL;
    render_params_init(&r->render, r->seed, r->seed_len, r->style, has_p ? &p : NULL,
                       has_f ? &f : NULL, sc, r->angle, r->filter);
    r->render.background = r->background;
    r->render.emoji_size = r->emoji_size;
    r->render.radius = r->radius;
    char why[160];
    if (r->emoji[0])
        emoji_name_of(r->emoji, strlen(r->emoji), r->render.emoji, sizeof r->render.emoji, why, sizeof why);
    /* a name replaces the seed's initials (render_params_init's) */
    if (r->name[0])
        initials_of(r->name, strlen(r->name), r->render.text, sizeof r->render.text);
}

int job_finish(job_request *r, const job_limits *l, aq_err *e)
{
    if (check_request(r, l, e))
        return AQ_EPERM;
    memset(&r->render, 0, sizeof r->render);
    r->render.style = r->style;
    if (r->seed_len)
        resolve_render(r);
    if (!r->id_given) {
        char *canon = job_canonical(r);
        if (!canon)
            return err_set(e, AQ_EAGAIN, "out of memory deriving the job id");
        hash_sha256_hex(canon, strlen(canon), r->id);
        free(canon);
    }
    return 0;
}

/* ---- parsing ---- */

/* How deeply doc nests arrays and objects, counting only brackets outside
 * strings; stops counting past limit. Invalid JSON is jansson's to report. */
static int nesting_depth(const char *doc, size_t len, int limit)
{
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len && max <= limit; i++) {
        char c = doc[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

int job_check_len(size_t len, aq_err *e)
{
    if (len > JOB_MAX_DOC)
        return err_set(e, AQ_EPERM, "document: %zu bytes, more than %d (64 KiB)", len,
                       JOB_MAX_DOC);
    return 0;
}

static json_t *decode(const char *doc, size_t len, aq_err *e)
{
    if (job_check_len(len, e) != 0)
        return NULL;
    if (len == 0 || !doc) {
        err_set(e, AQ_EPERM, "document: empty (want a JSON object)");
        return NULL;
    }
    if (nesting_depth(doc, len, JOB_DEPTH_MAX) > JOB_DEPTH_MAX) {
        err_set(e, AQ_EPERM, "document: nested deeper than %d levels", JOB_DEPTH_MAX);
        return NULL;
    }
    json_error_t je;
    /* ALLOW_NUL so that a \u0000 in a seed gets its own clear message. */
    json_t *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!root) {
        char text[200];
        log_printable(je.text, strlen(je.text), text, sizeof text);
        err_set(e, AQ_EPERM, "document: invalid JSON at line %d, column %d: %s", je.line, je.column, text);
        return NULL;
    }
    if (!json_is_object(root)) {
        char got[SHOW + 32];
        err_set(e, AQ_EPERM, "document: must be a JSON object, got %s", describe(root, got, sizeof got));
        json_decref(root);
        return NULL;
    }
    return root;
}

/* How many FIELDS rows are taken before the unknown-field check: the id, so
 * every later failure can still name the job, and the version, since a
 * document of another version may well have fields this one does not know. */
#define FIELDS_FIRST 2

static int take_fields(json_t *root, job_request *r, const job_limits *l, aq_err *e)
{
    json_t *v;
    for (size_t i = 0; i < FIELDS_FIRST; i++) {
        v = json_object_get(root, FIELDS[i].name);
        if (v && FIELDS[i].take(r, v, l, e))
            return AQ_EPERM;
    }
    const char *key;
    size_t klen;
    json_object_keylen_foreach(root, key, klen, v) {
        if (!field_known(key, klen)) {
            char k[SHOW];
            return err_set(e, AQ_EPERM, "unknown field '%s'", log_printable(key, klen, k, sizeof k));
        }
    }
    for (size_t i = FIELDS_FIRST; i < NELEM(FIELDS); i++) {
        v = json_object_get(root, FIELDS[i].name);
        if (v && FIELDS[i].take(r, v, l, e))
            return AQ_EPERM;
    }
    return 0;
}

int job_parse(const char *doc, size_t len, const job_limits *l, job_request *r, aq_err *e)
{
    job_init(r, l);
    json_t *root = decode(doc, len, e);
    if (!root)
        return AQ_EPERM;
    int rc = take_fields(root, r, l, e);
    json_decref(root);
    if (rc == 0)
        rc = job_finish(r, l, e);
    if (rc != 0 && !r->id_given)
        r->id[0] = '\0';
    return rc;
}

/* ---- writing ---- */

static int set_new(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

/* The angle as it decides pixels: hundredths of a degree. Printed with 6
 * significant digits, which 0.00..360.00 never needs more of, so the text
 * is the same on every machine. */
static json_t *canonical_angle(double a)
{
    return json_real(floor(a * 100.0 + 0.5) / 100.0);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The options of issue 15, each only when set, so that requests without
 * them keep the ids they always had. The canonical form names the emoji
 * by its artwork (two spellings of one emoji share an id). */
static int put_options(json_t *o, const job_request *r, bool canonical)
{
    int rc = 0;
    if (r->emoji[0]) {
        char name[RENDER_EMOJI_MAX], why[160];
        bool art = canonical && emoji_name_of(r->emoji, strlen(r->emoji), name, sizeof name, why, sizeof why) == 0;
        rc |= set_new(o, "emoji", json_string(art ? name : r->emoji));
    }
    if (r->background != RENDER_BG_AUTO)
        rc |= set_new(o, "background", json_string(render_bg_name(r->background)));
    if (r->emoji_size != RENDER_EMOJI_AUTO)
        rc |= set_new(o, "emoji_size", json_string(render_emoji_size_name(r->emoji_size)));
    if (r->radius > 0)
        rc |= set_new(o, "radius", json_integer(r->radius));
    if (r->format != JOB_FORMAT_PNG)
        rc |= set_new(o, "format", json_string(job_format_name(r->format)));
    if (r->name[0])
        rc |= set_new(o, "name", json_string(r->name));
    return rc;
}

/* Style, sizes, colours, scheme, filter: what both forms carry. */
static int put_look(json_t *o, const job_request *r, bool canonical)
{
    int rc = 0;
    const char *style = render_style_name(r->style);
    rc |= set_new(o, "style", style ? json_string(style) : NULL);
    int sizes[JOB_SIZES_MAX];
    size_t n = r->nsizes <= JOB_SIZES_MAX ? r->nsizes : JOB_SIZES_MAX;
    memcpy(sizes, r->sizes, n * sizeof sizes[0]);
    if (canonical)
        qsort(sizes, n, sizeof sizes[0], cmp_int);
    json_t *arr = json_array();
    rc |= set_new(o, "sizes", arr);
    for (size_t i = 0; arr && i < n; i++)
        rc |= json_array_append_new(arr, json_integer(sizes[i]));
    struct { const char *k; const char *v; } colors[] = {{"primary", r->primary}, {"foreign", r->foreign}};
    for (size_t i = 0; i < NELEM(colors); i++) {
        aq_rgb c;
        char hex[8];
        if (!colors[i].v[0])
            continue;
        if (canonical && color_parse(colors[i].v, &c) == 0) {
            color_hex(c, hex);
            rc |= set_new(o, colors[i].k, json_string(hex));
        } else {
            rc |= set_new(o, colors[i].k, json_string(colors[i].v));
        }
    }
    if (r->scheme[0])
        rc |= set_new(o, "scheme", json_string(r->scheme));
    if (!(r->angle < 0)) {
        json_t *a = canonical ? canonical_angle(r->angle)
                    : r->angle == floor(r->angle) ? json_integer((json_int_t)r->angle)
                                                  : json_real(r->angle);
        rc |= set_new(o, "angle", a);
    }
    rc |= set_new(o, "filter", json_string(color_filter_name(r->filter)));
    return rc | put_options(o, r, canonical);
}

static char *dump(json_t *o, int rc, size_t flags)
{
    char *s = rc == 0 ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | flags) : NULL;
    json_decref(o);
    return s;
}

char *job_canonical(const job_request *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = set_new(o, "seed", json_stringn(r->seed, r->seed_len));
    rc |= put_look(o, r, true);
    return dump(o, rc, JSON_REAL_PRECISION(6));
}

char *job_to_json(const job_request *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = set_new(o, "v", json_integer(JOB_VERSION));
    rc |= set_new(o, "id", json_string(r->id));
    rc |= set_new(o, "type", json_string(r->type == JOB_DELETE ? "delete" : "generate"));
    if (r->seed_len)
        rc |= set_new(o, "seed", json_stringn(r->seed, r->seed_len));
    if (r->seed_len || r->type == JOB_GENERATE)
        rc |= put_look(o, r, false);
    if (r->max_attempts > 0)
        rc |= set_new(o, "max_attempts", json_integer(r->max_attempts));
    if (r->created_at > 0)
        rc |= set_new(o, "created_at", json_integer(r->created_at));
    if (r->run_at > 0)
        rc |= set_new(o, "run_at", json_integer(r->run_at));
    if (r->delay_ms > 0)
        rc |= set_new(o, "delay_ms", json_integer(r->delay_ms));
    if (r->callback_url[0])
        rc |= set_new(o, "callback_url", json_string(r->callback_url));
    if (r->batch[0])
        rc |= set_new(o, "batch", json_string(r->batch));
    /* 15 digits: 45.1 stays "45.1" and any angle a person wrote survives. */
    return dump(o, rc, JSON_REAL_PRECISION(15));
}
