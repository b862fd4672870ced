/* avatarq-worker: parses the command line, loads the configuration and hands
 * over to the supervisor. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "slots.h"
#include "supervisor.h"

static const char USAGE[] =
    "usage: avatarq-worker [-c FILE] [--processes N] [--help] [--version]\n"
    "\n"
    "The avatarq daemon: a supervisor that forks a pool of worker processes,\n"
    "each taking avatar jobs from Redis, rendering, storing and recording them.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   configuration file (default: ./config.ini if it exists,\n"
    "                      else /etc/avatarq/config.ini)\n"
    "  -p, --processes N   worker processes, overriding [worker] processes (1..%d)\n"
    "  -h, --help          this text\n"
    "  -V, --version       the version\n"
    "\n"
    "configuration keys (config.ini sections):\n"
    "  [redis]             url, namespace, queue, connect_timeout_ms\n"
    "  [worker]            processes, concurrency, job_timeout_s, shutdown_timeout_s,\n"
    "                      heartbeat_interval_s, heartbeat_ttl_s, max_attempts,\n"
    "                      backoff_base_ms, backoff_max_ms, result_ttl_s,\n"
    "                      dead_max, events_max\n"
    "  [render]            default_style, default_sizes, max_size\n"
    "  [storage]           backend (local|s3), prefix\n"
    "  [storage.local]     root, fsync\n"
    "  [storage.s3]        endpoint, region, bucket, access_key, secret_key,\n"
    "                      path_style, timeout_ms, retries\n"
    "  [database]          backend (sqlite|postgresql)\n"
    "  [database.sqlite]   path\n"
    "  [database.postgresql] conninfo, retries\n"
    "  [log]               level (error|warn|info|debug), format (logfmt|json)\n"
    "Every key can be overridden by the environment variable\n"
    "AVATARQ_<SECTION>_<KEY> in upper case, dots in the section as '_'\n"
    "(e.g. AVATARQ_REDIS_URL, AVATARQ_STORAGE_S3_BUCKET).\n"
    "\n"
    "signals: SIGTERM/SIGINT stop gracefully (a second one stops at once, jobs\n"
    "are put back); SIGHUP reloads the configuration into new worker processes.\n";

static int fail(int status, const char *fmt, const char *arg)
{
    fprintf(stderr, "avatarq-worker: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return status;
}

/* Parses --processes: a whole number 1..SLOTS_MAX, else -1. */
static int parse_processes(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (!*s || *end || n < 1 || n > SLOTS_MAX)
        return -1;
    return (int)n;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"processes", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    supervisor_opts o = {0};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:p:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.config_path = optarg;
            break;
        case 'p':
            if ((o.processes = parse_processes(optarg)) < 0)
                return fail(2, "--processes: '%s' is not a number from 1 to 256", optarg);
            break;
        case 'h':
            printf(USAGE, SLOTS_MAX);
            return 0;
        case 'V':
            printf("avatarq-worker %s\n", AQ_VERSION);
            return 0;
        case ':':
            return fail(2, "%s needs a value (see --help)", argv[optind - 1]);
        default:
            return fail(2, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail(2, "unexpected argument '%s' (see --help)", argv[optind]);

    static aq_config cfg; /* static: large */
    aq_err e = {0};
    if (config_load(&cfg, o.config_path, &e) != 0)
        return fail(1, "%s", e.msg);
    log_setup(cfg.log.level, cfg.log.format, "supervisor");
    return supervisor_run(&cfg, &o);
}
