/* The `avatarq` CLI: main.c parses the global options (-c/--config, --help,
 * --version), then runs one command from the table in main.c. Each command
 * lives in a cmd_*.c file, parses its own options with getopt_long (argv[0]
 * is the command name), prints results on stdout and one-line errors on
 * stderr ("avatarq render: --size: 9 is below 16"), and returns the exit
 * status: 0 ok, 1 failure (job dead, not found, check failed), 2 bad usage. */
#ifndef AQ_CLI_H
#define AQ_CLI_H

#include <stdbool.h>

#include "config.h"

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

/* True when stdout is a terminal (progress bars only then). */
bool cli_tty(void);

/* Commands (one file each, or a few per file when they share code). */
int cmd_render(cli_ctx *ctx, int argc, char **argv);   /* cmd_render.c */
int cmd_sheet(cli_ctx *ctx, int argc, char **argv);    /* cmd_render.c */
int cmd_schemes(cli_ctx *ctx, int argc, char **argv);  /* cmd_render.c */
int cmd_enqueue(cli_ctx *ctx, int argc, char **argv);  /* cmd_jobs.c */
int cmd_batch(cli_ctx *ctx, int argc, char **argv);    /* cmd_jobs.c */
int cmd_status(cli_ctx *ctx, int argc, char **argv);   /* cmd_jobs.c */
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

#endif
