/* job: the job document of docs/protocol.md. Parse and validate with jansson,
 * apply defaults, produce the canonical form and the derived id. */
#ifndef AQ_JOB_H
#define AQ_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "color.h"
#include "config.h"
#include "error.h"
#include "render.h"

#define JOB_MAX_DOC (64 * 1024)
#define JOB_ID_MAX 64
#define JOB_SEED_MAX 256
#define JOB_SIZES_MAX 16
#define JOB_VERSION 1
#define JOB_CALLBACK_URL_MAX 512

typedef enum { JOB_GENERATE = 0, JOB_DELETE = 1 } job_type;

/* The file format of a job's avatars. */
typedef enum { JOB_FORMAT_PNG = 0, JOB_FORMAT_WEBP, JOB_FORMAT_SVG, JOB_FORMAT_COUNT } job_format;

#define JOB_EMOJI_MAX 64   /* bytes of the emoji text as given */
#define JOB_NAME_MAX 128   /* bytes of "name" (initials) */

/* Limits and defaults that come from [render]. */
typedef struct job_limits {
    int default_style;                    /* render style index */
    int default_sizes[JOB_SIZES_MAX];
    size_t n_default_sizes;
    int max_size;
} job_limits;

typedef struct job_request {
    job_type type;
    char id[JOB_ID_MAX + 1];   /* given or derived; always set after a successful parse */
    bool id_given;
    char seed[JOB_SEED_MAX + 1]; /* NUL-free, 1..256 bytes */
    size_t seed_len;
    int style;                 /* render style index */
    int sizes[JOB_SIZES_MAX];  /* distinct, in the order given */
    size_t nsizes;
    char primary[32], foreign[32], scheme[32]; /* as given (lowercased), "" when absent */
    double angle;              /* < 0 when absent */
    aq_filter filter;
    char emoji[JOB_EMOJI_MAX]; /* as given, "" when absent (render.emoji: its artwork) */
    render_bg background;      /* RENDER_BG_AUTO when absent */
    render_emoji_size emoji_size; /* RENDER_EMOJI_AUTO when absent */
    int radius;                /* 0..50, 0 when absent */
    job_format format;         /* JOB_FORMAT_PNG when absent */
    char name[JOB_NAME_MAX + 1]; /* initials source, "" when absent */
    int max_attempts;          /* 0 when absent */
    int64_t created_at;        /* 0 when absent */
    render_params render;      /* resolved for render_make() */
    /* scheduling (docs/protocol.md "Producers: ..."): at most one of the two */
    int64_t run_at;            /* ms since the epoch; 0 when absent */
    int64_t delay_ms;          /* from enqueue time; 0 when absent */
    /* completion callback (docs/protocol.md "Completion callbacks") */
    char callback_url[JOB_CALLBACK_URL_MAX + 1]; /* "" when absent */
    /* the batch this job belongs to (docs/protocol.md "Batches") */
    char batch[JOB_ID_MAX + 1];  /* "" when absent */
} job_request;

/* Limits of the scheduling fields: run_at before the year 10000, delay_ms
 * at most a year. */
#define JOB_RUN_AT_MAX 253402300799999LL
#define JOB_DELAY_MAX (366LL * 86400 * 1000)

/* When a request should first run: run_at, or now_ms + delay_ms, or 0
 * (now). */
int64_t job_due_ms(const job_request *r, int64_t now_ms);

/* Fills limits from the [render] section of c. Returns 0 or AQ_EPERM
 * (unknown default_style). */
int job_limits_from_config(job_limits *l, const aq_config *c, aq_err *e);

/* Parses and validates a document of len bytes (need not be NUL-terminated).
 * On success returns 0 and fills r completely (defaults applied, id derived
 * when absent, render params resolved). On failure returns AQ_EPERM with a
 * message naming the field and the bad value ("sizes[1]: 9 is below 16");
 * if the document carried a valid id, r->id holds it, else r->id is "".
 * Rules where docs/protocol.md is silent: an absent "v" means 1; integer fields
 * refuse JSON reals (64.0); unknown fields, duplicate keys, NaN/Infinity,
 * invalid UTF-8, \u0000 in a seed and nesting deeper than 16 are refused.
 * Never crashes on any input. */
int job_parse(const char *doc, size_t len, const job_limits *l, job_request *r, aq_err *e);

/* Initialises r as an empty generate request with defaults from l (for
 * building requests in code, e.g. from CLI flags); call job_finish() after
 * setting fields. */
void job_init(job_request *r, const job_limits *l);

/* Validates a request built in code, resolves render params and derives the
 * id when absent (id_given false), with the same rules and messages as
 * job_parse(); colour and scheme names are lower-cased. A seed_len of 0 with
 * a non-empty seed means "measure it" (strcpy'd seeds). Out of memory is
 * AQ_EAGAIN, as it is for job_parse(). */
int job_finish(job_request *r, const job_limits *l, aq_err *e);

/* Sets one of the look options of a request built in code from its text
 * (CLI flags): field is "emoji", "background", "emoji_size", "radius",
 * "format" or "name"; the value is checked with the rules and messages of
 * job_parse() ("radius: 60 is outside 0..50"). Returns 0 or AQ_EPERM.
 * job_finish() still checks how the options fit the style. */
int job_set_field(job_request *r, const char *field, const char *text, const job_limits *l, aq_err *e);

/* The canonical form of the request (sorted keys, defaults applied; no id,
 * v, created_at or max_attempts) as a malloc'd JSON string. */
char *job_canonical(const job_request *r);

/* The job document to enqueue (with "v":1 and "id"), malloc'd. */
char *job_to_json(const job_request *r);

/* "png", "webp", "svg"; NULL when out of range. */
const char *job_format_name(job_format f);
/* The file extension ("png", ...) and the MIME type of format f. */
const char *job_format_ext(job_format f);
const char *job_format_mime(job_format f);
/* JOB_FORMAT_* of a name (any case), -1 when unknown. */
int job_format_find(const char *name);

/* True when s is a valid id: [A-Za-z0-9._-]{1,64}, not starting with '.'. */
bool job_id_valid(const char *s);

/* The size rule of a job document: AQ_EPERM naming the size when len is over
 * JOB_MAX_DOC (the message job_parse gives), else 0. */
int job_check_len(size_t len, aq_err *e);

/* The longest queue name; names become part of Redis keys (NS:queue:NAME). */
#define JOB_QUEUE_MAX 64

/* The one queue-name rule, for [redis] queue, --queue and the library:
 * [A-Za-z0-9._-]{1,64} (the Lua scripts of queue.c apply the same). */
bool job_queue_valid(const char *s);

/* Returns 0 when s is a valid queue name, else AQ_EPERM with "WHAT: 'S' is
 * not a valid queue name ([A-Za-z0-9._-]{1,64})" (S shown printable). */
int job_queue_check(const char *s, const char *what, aq_err *e);

#endif
