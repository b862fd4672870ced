/* The `avatarq` CLI: main.c parses the global options (-c/--config, --help,
 * --version), then runs one command from the table in main.c. Each command
 * lives in a cmd_*.c file, parses its own options with getopt_long (argv[0]
 * is the command name), prints results on stdout and one-line errors on
 * stderr ("avatarq render: --size: 9 is below 16"), and returns the exit
 * status: 0 ok, 1 failure (job dead, not found, check failed), 2 bad usage. */
#ifndef AQ_CLI_H
#define AQ_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "avatarq.h"
#include "buf.h"
#include "config.h"
#include "job.h"

typedef struct cli_ctx {
    const char *config_path;   /* -c FILE, or NULL for the default search */
    aq_config cfg;             /* loaded once before the command runs */
} cli_ctx;

typedef struct cli_cmd {
    const char *name;
    int (*run)(cli_ctx *ctx, int argc, char **argv);
    const char *usage;         /* one line: "render --seed S [options] -o FILE" */
    const char *summary;       /* what it does, a few words */
} cli_cmd;

/* Prints "avatarq CMD: message" on stderr; returns status. */
int cli_fail(const char *cmd, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s made safe for a terminal: C0 control characters, DEL, C1 controls and
 * bytes that are not valid UTF-8 become \xNN (or \u00NN), a backslash
 * becomes \\; printable ASCII and valid UTF-8 pass unchanged. Every field
 * of stored data (ids, seeds, errors, documents, worker names) goes through
 * it before human-readable output (JSON output is escaped by jansson). The
 * result lives in one of 16 rotating buffers: valid for the next 15 calls. */
const char *cli_safe(const char *s);

/* Writes data to path whole or not at all: a new temp file beside it
 * (mkostemp, so a planted file or symlink is never opened), mode 0666 minus
 * the umask, fsync'd, renamed over path. "-" writes to standard output.
 * Returns 0 or AQ_EPERM with the path in the message. */
int cli_write_file(const char *path, const void *data, size_t len, aq_err *e);

/* True when stdout is a terminal (progress bars only then). */
bool cli_tty(void);

/* Commands (one file each, or a few per file when they share code). */
int cmd_render(cli_ctx *ctx, int argc, char **argv);   /* cmd_render.c */
int cmd_sheet(cli_ctx *ctx, int argc, char **argv);    /* cmd_render.c */
int cmd_schemes(cli_ctx *ctx, int argc, char **argv);  /* cmd_render.c */
int cmd_styles(cli_ctx *ctx, int argc, char **argv);   /* cmd_render.c */
int cmd_enqueue(cli_ctx *ctx, int argc, char **argv);  /* cmd_jobs.c */
int cmd_batch(cli_ctx *ctx, int argc, char **argv);    /* cmd_jobs.c */
int cmd_status(cli_ctx *ctx, int argc, char **argv);   /* cmd_jobs.c */
int cmd_cancel(cli_ctx *ctx, int argc, char **argv);   /* cmd_jobs.c */
int cmd_stats(cli_ctx *ctx, int argc, char **argv);    /* cmd_ops.c */
int cmd_dead(cli_ctx *ctx, int argc, char **argv);     /* cmd_ops.c */
int cmd_workers(cli_ctx *ctx, int argc, char **argv);  /* cmd_ops.c */
int cmd_control(cli_ctx *ctx, int argc, char **argv);  /* cmd_ops.c: quiet|resume|stop */
int cmd_health(cli_ctx *ctx, int argc, char **argv);   /* cmd_ops.c */
int cmd_list(cli_ctx *ctx, int argc, char **argv);     /* cmd_store.c */
int cmd_show(cli_ctx *ctx, int argc, char **argv);     /* cmd_store.c */
int cmd_get(cli_ctx *ctx, int argc, char **argv);      /* cmd_store.c */
int cmd_delete(cli_ctx *ctx, int argc, char **argv);   /* cmd_store.c */
int cmd_migrate(cli_ctx *ctx, int argc, char **argv);  /* cmd_store.c */

/* ---- shared helpers (cli.c) ---- */

/* True when fd is a terminal (the batch progress bar goes to stderr). */
bool cli_isatty_fd(int fd);

/* Parses s as a whole decimal integer in [min, max] into *out; on failure
 * prints "avatarq CMD: OPT: 's' is not an integer" (or out of range) and
 * returns 2, else 0. */
int cli_int(const char *cmd, const char *opt, const char *s, long min, long max,
            long *out);

/* Turns a getopt_long error (return '?' or ':', optstring starting with
 * ':') into one line naming the option; returns 2. */
int cli_getopt_fail(const char *cmd, int c, char **argv);

/* Fails with status 2 unless exactly want positional arguments remain
 * (what names them in the message). */
int cli_positional(const char *cmd, int argc, char **argv, int want, const char *what);

/* For a command that takes no options: any option fails with status 2 (as
 * cli_getopt_fail, named after argv[0]), then as cli_positional. */
int cli_no_options(const char *cmd, int argc, char **argv, int want, const char *what);

/* Job options shared by enqueue and batch: getopt_long values CLI_OPT_*,
 * their option table, and the request they build for the public API. */
enum {
    CLI_OPT_SEED = 1000, CLI_OPT_STYLE, CLI_OPT_SIZE, CLI_OPT_SIZES, CLI_OPT_PRIMARY,
    CLI_OPT_FOREIGN, CLI_OPT_SCHEME, CLI_OPT_ANGLE, CLI_OPT_FILTER,
    CLI_OPT_MAX_ATTEMPTS, CLI_OPT_ID, CLI_OPT_QUEUE,
    CLI_OPT_EMOJI, CLI_OPT_BACKGROUND, CLI_OPT_EMOJI_SIZE, CLI_OPT_NAME, CLI_OPT_RADIUS,
    CLI_OPT_FORMAT,
};
typedef struct cli_jobopts {
    avatarq_request req;       /* strings borrowed from argv */
    int sizes[JOB_SIZES_MAX];  /* req.sizes points here */
    int max_size;              /* [render] max_size */
} cli_jobopts;
/* The option entries for CLI_OPT_* (CLI_JOB_NLONGOPTS of them, then a zero
 * entry); commands copy them into their own getopt_long table. */
#define CLI_JOB_NLONGOPTS 18
extern const struct option cli_job_longopts[CLI_JOB_NLONGOPTS + 1];

/* An empty request (every field absent: the worker's defaults apply). */
void cli_jobopts_init(cli_jobopts *o, const aq_config *cfg);
/* Applies one CLI_OPT_* flag with its argument, validating it with an error
 * that names the flag ("avatarq enqueue: --size: 9 is below 16"). Returns 0,
 * 2 (bad value), or -1 when opt is not a job option. */
int cli_jobopts_apply(cli_jobopts *o, const char *cmd, int opt, const char *arg);

/* ISO-8601 UTC form of ms since the epoch ("2026-11-24T16:35:03.123Z"),
 * or "-" for 0. */
const char *cli_time(int64_t ms, char out[32]);

/* Progress on stderr while a long command runs, drawn only when stderr is a
 * terminal, at most ~10 times a second:
 * "[#########...........]  45%  5000 jobs  8300/s". total is the input size
 * in bytes when known (a regular file), else 0 (no bar, count and rate). */
typedef struct cli_progress {
    bool on;
    int64_t total, pos, jobs, start_ms, drawn_ms;
} cli_progress;
void cli_progress_start(cli_progress *p, int64_t total);
/* Records the input position and job count so far, redrawing if due. */
void cli_progress_update(cli_progress *p, int64_t pos, int64_t jobs);
/* Erases the bar (the caller prints its summary after). */
void cli_progress_end(cli_progress *p);

#endif
