/* avatarq: the producer and operator CLI. Parses the global options, loads
 * the configuration once, and runs one command from the table below. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

#ifndef AQ_VERSION
#define AQ_VERSION "0.0.0"
#endif

/* One command: how to run it, its usage line, summary, and the options
 * block `avatarq COMMAND --help` prints. */
typedef struct cmd_entry {
    cli_cmd cmd;
    const char *help;
} cmd_entry;

/* The options that decide the pixels, shared by enqueue, batch and render. */
#define JOB_LOOK_HELP \
    "  --seed S            the seed (1 to 256 bytes); same seed + options = same pixels\n" \
    "  --style NAME        pixel | classic | wave | gradient | emoji | initials\n" \
    "                      [render] default_style (avatarq styles lists them)\n" \
    "  --size N            a size in pixels, 16 to [render] max_size; repeatable\n" \
    "  --sizes N,N,...     several sizes at once [render] default_sizes\n" \
    "  --primary COLOUR    #rgb, #rrggbb or a CSS colour name\n" \
    "  --foreign COLOUR    the second colour (background)\n" \
    "  --scheme NAME       a named colour scheme (avatarq schemes); colours override it\n" \
    "  --angle DEG         gradient angle, 0 to 360\n" \
    "  --filter NAME       none | grayscale | sepia | negative\n" \
    "  --emoji E           emoji style: exactly one emoji (default: the seed picks)\n" \
    "  --emoji-size SIZE   emoji style: small | medium | large (40, 60, 80 percent)\n" \
    "  --background BG     solid | linear | radial (emoji) | transparent\n" \
    "  --name NAME         initials style: the name (default: the seed before '@')\n" \
    "  --radius PCT        round the corners, 0 to 50 percent (50: a circle)\n" \
    "  --format FMT        png | webp (lossless) | svg (pixel, emoji)\n"

#define JOB_OPTIONS_HELP JOB_LOOK_HELP \
    "  --max-attempts N    1 to 25 tries before the job goes dead [worker] max_attempts\n" \
    "  --queue Q           the queue to push to [redis] queue\n"

static const cmd_entry commands[] = {
    {{"render", cmd_render,
      "render --seed S [options] -o FILE | -d DIR | render --seeds FILE -d DIR [options]",
      "render avatars offline, without Redis"},
     JOB_LOOK_HELP
     "  --id ID             the id for -d DIR (default: derived, as a worker would)\n"
     "  -o, --output FILE   write one PNG of one size (default 256) ('-': stdout)\n"
     "  -d, --dir DIR       write every size as DIR/ID/SIZE.EXT (DIR/ID/avatar.svg)\n"
     "                      and print the paths\n"
     "  -j, --jobs N        with --seeds: N processes (default: the number of CPUs)\n"
     "  --seeds FILE        with -d: one seed per line, or ID<TAB>SEED ('-': stdin);\n"
     "                      progress bar on a terminal, summary at the end\n"
     "  Renders with the same code as the workers, so the bytes are the ones the\n"
     "  fleet would store. Needs no config file and no Redis.\n"},
    {{"sheet", cmd_sheet, "sheet [--size N] -o FILE",
      "render a contact sheet of every style and scheme"},
     "  -o, --output FILE   the PNG to write ('-': stdout)\n"
     "  --size N            cell size in pixels, 16 to 256 (default 96)\n"
     "  Rows are the styles; columns are seed colours, then schemes, then\n"
     "  filters, then the options: round, radius 20, transparent. Offline,\n"
     "  like render.\n"},
    {{"styles", cmd_styles, "styles", "list the styles and the fields each takes"},
     "  One line per style: name, what it draws, the backgrounds and formats it\n"
     "  takes and its own fields. Offline.\n"},
    {{"schemes", cmd_schemes, "schemes", "list the named colour schemes"},
     "  One line per scheme: name, primary and foreign colour, description\n"
     "  (with colour swatches on a terminal). Offline.\n"},
    {{"enqueue", cmd_enqueue,
      "enqueue --seed S [job options] [--id ID] [--wait [--timeout S]] | --delete --id ID",
      "push one job and print its id"},
     JOB_OPTIONS_HELP
     "  --id ID             job id [A-Za-z0-9._-]{1,64}; default: derived from the\n"
     "                      request, so the same request always gets the same id\n"
     "  --delete            enqueue a delete job for --id (removes files and row)\n"
     "  --wait              block until the job is done or dead; print the stored\n"
     "                      keys (\"SIZE KEY\" per line) or the error\n"
     "  --timeout S         with --wait: give up after S seconds (default: no limit)\n"
     "  --run-at MS         run at this time (ms since the epoch): the job waits in\n"
     "                      NS:delayed, state scheduled, until then\n"
     "  --delay MS          run MS milliseconds from now (not with --run-at)\n"
     "  --callback-url URL  POST the result here when the job is done or dead\n"
     "                      (default: [callbacks] url of the workers)\n"
     "  Prints the job id. An id already queued, scheduled, running or retrying\n"
     "  is not enqueued again (a note on stderr says so; exit 0). Exit 0\n"
     "  done/queued, 1 dead, queue full ([redis] max_queue_length) or Redis\n"
     "  error, 2 bad input, 3 --wait timed out (the job stays queued).\n"},
    {{"batch", cmd_batch, "batch [job options] [--wait] [--callback-url URL] [FILE|-]",
      "enqueue many jobs from JSON lines or plain seeds, as one tracked batch"},
     JOB_OPTIONS_HELP
     "  Reads FILE (or standard input) line by line: a line starting with '{'\n"
     "  is a JSON job document (docs/protocol.md), any other non-empty line is a seed\n"
     "  to which the job options apply (--queue applies to every line; --seed\n"
     "  and --id are not taken). Every line is validated here; bad\n"
     "  lines are reported with their line number and skipped, good ones are\n"
     "  pushed pipelined in chunks of 1000. Shows a progress bar on a terminal\n"
     "  and ends with \"batch ID\" and \"enqueued N jobs in T s (R/s), K rejected\".\n"
     "  The jobs form one tracked batch (NS:batch:ID counts total, pending, done,\n"
     "  dead, cancelled); jobs already queued or running are not enqueued again\n"
     "  (and not counted in it).\n"
     "  --wait              then show a progress bar until every job of the batch\n"
     "                      is done, dead or cancelled, and print its counts\n"
     "  --callback-url URL  POST {batch, state, total, done, dead, cancelled} there\n"
     "                      when the batch completes\n"
     "  Exit 0 all enqueued (and, with --wait, none dead), 1 some lines rejected,\n"
     "  a job dead or Redis failed.\n"},
    {{"cancel", cmd_cancel, "cancel ID", "cancel a queued, scheduled or running job"},
     "  A queued, scheduled or retrying job is marked cancelled and never runs\n"
     "  (its document is dropped where it next surfaces). A running job is\n"
     "  marked cancelled at once; its result is discarded and the files and\n"
     "  row it wrote are deleted when it finishes (the render is not\n"
     "  interrupted). Enqueueing the id again before then takes it back.\n"
     "  Exit 0 cancelled or already final, 1 no such job or Redis error.\n"},
    {{"status", cmd_status, "status ID [--json]", "show a job's state"},
     "  --json              print the job hash as one JSON object\n"
     "  Shows state, attempts, queue, worker, error, times and stored keys.\n"
     "  Exit 1 when there is no such job (or its result expired).\n"},
    {{"stats", cmd_stats, "stats [--json]",
      "queue depth, processing, delayed, dead, workers, counters"},
     "  --json              one JSON object\n"},
    {{"dead", cmd_dead, "dead list [--limit N] [--json] | dead retry ID|--all | dead purge",
      "inspect, retry or purge dead letters"},
     "  list                the newest dead jobs with their error (--limit, default 20)\n"
     "  retry ID            put dead job ID back on its queue, attempts reset\n"
     "  retry --all         the same for every dead job\n"
     "  purge               delete every dead letter\n"
     "  Exit 1 when retry ID finds no such dead job.\n"},
    {{"workers", cmd_workers, "workers [--json]", "list live and dead workers"},
     "  --json              one JSON array\n"
     "  First the Redis master in use (server, role, tls on/off, found via\n"
     "  direct|sentinel|cluster), then one line per registered worker: host,\n"
     "  pid, state, current job, jobs done and failed, RSS and the age of its\n"
     "  last heartbeat.\n"},
    {{"quiet", cmd_control, "quiet --worker ID|--host H|--all",
      "stop taking new jobs (fleet remote control)"},
     "  --worker ID         one worker process (HOST:PID-NONCE)\n"
     "  --host H            every worker on host H\n"
     "  --all               every worker\n"
     "  Each supervisor applies it at its next heartbeat; heartbeats go on.\n"},
    {{"resume", cmd_control, "resume --worker ID|--host H|--all",
      "take jobs again after quiet"},
     "  --worker ID | --host H | --all, as for quiet\n"},
    {{"stop", cmd_control, "stop --worker ID|--host H|--all",
      "finish jobs in hand and exit cleanly"},
     "  --worker ID | --host H | --all, as for quiet\n"},
    {{"health", cmd_health, "health", "check Redis, database and storage"},
     "  One line per check (\"ok redis URL ...\" or \"fail ...\"), passwords\n"
     "  redacted; the redis line names the master in use (server=HOST:PORT\n"
     "  role=ROLE tls=on|off via=direct|sentinel|cluster).\n"
     "  Exit 0 when all pass, 1 otherwise (monitoring, ExecStartPre).\n"},
    {{"list", cmd_list, "list [--limit N] [--after ID] [--json]",
      "list avatars in the metadata store"},
     "  --limit N           at most N rows (default 100)\n"
     "  --after ID          start after this id (ids are ordered)\n"
     "  --json              one JSON array\n"},
    {{"show", cmd_show, "show ID [--json]", "show an avatar's metadata row"},
     "  --json              one JSON object\n"
     "  Exit 1 when there is no such avatar.\n"},
    {{"get", cmd_get, "get ID --size N [--format F] -o FILE", "fetch a stored avatar (local or S3)"},
     "  --size N            which size\n"
     "  --format FMT        png | webp | svg (default: whichever is stored, in\n"
     "                      that order)\n"
     "  -o, --output FILE   where to write it ('-' for standard output)\n"
     "  Reads PREFIX/ID/N.png (N.webp, avatar.svg) through the configured\n"
     "  storage backend.\n"
     "  Exit 1 when it is not stored.\n"},
    {{"delete", cmd_delete, "delete ID [--now] [--queue Q]",
      "delete an avatar (through a worker, or --now)"},
     "  --queue Q           the queue for the delete job [redis] queue\n"
     "  --now               remove the files and the row here and now, without\n"
     "                      Redis (default: enqueue a delete job, print its id)\n"},
    {{"migrate", cmd_migrate, "migrate [--dry-run]", "apply database schema migrations"},
     "  --dry-run           print the migrations that would run, change nothing\n"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cmd_entry *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].cmd.name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: avatarq [-c FILE] COMMAND [options]\n"
            "       avatarq COMMAND --help | avatarq --help | avatarq --version\n"
            "\n"
            "The avatarq producer and operator CLI: enqueue avatar jobs for the\n"
            "avatarq-worker fleet, follow them, operate the queue, and render offline.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-9s %s\n            %s\n", commands[i].cmd.name,
                commands[i].cmd.summary, commands[i].cmd.usage);
    fprintf(out,
            "\n"
            "Global options:\n"
            "  -c, --config FILE   read this configuration file\n"
            "  -h, --help          this help; `avatarq COMMAND --help` for one command\n"
            "  -V, --version       print the version\n"
            "\n"
            "Configuration: -c FILE if given, else ./config.ini if it exists, else\n"
            "/etc/avatarq/config.ini if it exists, else the built-in defaults. Every key\n"
            "can be overridden by the environment variable AVATARQ_<SECTION>_<KEY> in\n"
            "upper case, dots in the section name as '_' (AVATARQ_REDIS_URL,\n"
            "AVATARQ_STORAGE_S3_BUCKET, ...). A bad file or value is an error naming\n"
            "file, line and key. A config file owned by another user, or writable by\n"
            "group or others, is refused. render, sheet and schemes need no file and\n"
            "no Redis.\n"
            "\n"
            "Exit status: 0 ok; 1 failure (job dead, not found, check failed, server\n"
            "unreachable, rejected batch lines); 2 bad usage or configuration;\n"
            "3 enqueue --wait timed out.\n"
            "\n"
            "Documentation: avatarq(1), avatarq-worker(8); the contract (config keys,\n"
            "Redis keys, job documents, hardening rules) in docs/protocol.md and the\n"
            "design in docs/design.md of the source tree.\n");
}

static void print_command_help(const cmd_entry *c)
{
    printf("usage: avatarq %s\n\n%s.\n\n%s", c->cmd.usage, c->cmd.summary, c->help);
}

/* True when the command's own arguments ask for help (before any "--"). */
static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}

/* The CLI logs only what matters to a person at a terminal: warnings and
 * errors, unless the configuration asks for debug. */
static void setup_log(const aq_config *cfg)
{
    int level = cfg->log.level >= LOG_DEBUG ? LOG_DEBUG : LOG_WARN;
    log_setup(level, cfg->log.format, "cli");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static cli_ctx ctx; /* aq_config is large: keep it off the stack */
    int c;
    opterr = 0;
    /* "+" stops at the first non-option: the command name. */
    while ((c = getopt_long(argc, argv, "+:c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': ctx.config_path = optarg; break;
        case 'h': print_help(stdout); return 0;
        case 'V': printf("avatarq %s\n", AQ_VERSION); return 0;
        default: return cli_getopt_fail(NULL, c, argv);
        }
    }
    if (optind >= argc)
        return cli_fail(NULL, 2, "missing command (see avatarq --help)");
    const cmd_entry *cmd = find_command(argv[optind]);
    if (!cmd)
        return cli_fail(NULL, 2, "unknown command '%s' (see avatarq --help)", argv[optind]);
    int cargc = argc - optind;
    char **cargv = argv + optind;
    if (wants_help(cargc, cargv)) {
        print_command_help(cmd);
        return 0;
    }
    aq_err e;
    err_clear(&e);
    if (config_load(&ctx.cfg, ctx.config_path, &e) != 0)
        return cli_fail(NULL, 2, "%s", e.msg);
    setup_log(&ctx.cfg);
    optind = 0; /* glibc: 0 fully re-initialises getopt for the command */
    int rc = cmd->cmd.run(&ctx, cargc, cargv);
    config_wipe_secrets(&ctx.cfg);
    return rc;
}
