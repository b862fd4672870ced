/* avatarq-http: serves stored avatars, renders on the fly, and exposes the
 * JSON API, Prometheus metrics and the dashboard (docs/protocol.md "HTTP
 * server"). Loads the configuration, starts the daemon, then waits for
 * SIGTERM/SIGINT (stop) in the main thread. */
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "http.h"
#include "log.h"

#ifndef AQ_VERSION
#define AQ_VERSION "0.0.0"
#endif

static const char USAGE[] =
    "usage: avatarq-http [-c FILE] [--check]\n"
    "Serves avatars over HTTP: stored images, on-the-fly renders, the JSON API,\n"
    "Prometheus metrics and a dashboard (see avatarq-http(8), docs/protocol.md).\n"
    "\n"
    "  -c, --config FILE   config file (default ./config.ini, else /etc/avatarq/config.ini)\n"
    "  --check             load and check the configuration, then exit\n"
    "  -h, --help          this help\n"
    "  -V, --version       print the version\n"
    "\n"
    "[http] keys (environment AVATARQ_HTTP_<KEY>):\n"
    "  listen            HOST:PORT or [V6]:PORT [127.0.0.1:8080]\n"
    "  threads           server threads [4]\n"
    "  max_connections   concurrent connections [1024]\n"
    "  timeout_s         idle or slow connections are closed after this [30]\n"
    "  auth_token        bearer token for /v1 and /metrics (16+ characters);\n"
    "                    empty: no auth, allowed only on a loopback address\n"
    "  cors_origins      origins allowed by CORS, comma-separated, or * [none]\n"
    "  public_metrics    /metrics without the token [false]\n"
    "\n"
    "Routes: GET|HEAD /avatars/ID/SIZE.png (.webp; /avatars/ID/avatar.svg: the path\n"
    "the stored format implies), /render/STYLE/SEED.png?size=&scheme=&\n"
    "primary=&foreign=&angle=&filter=, POST /v1/jobs[?wait=1&timeout=S],\n"
    "GET /v1/jobs/ID, GET /v1/avatars[?limit=&after= | ?latest=N], GET|DELETE\n"
    "/v1/avatars/ID, GET /v1/stats[?history=1], /v1/workers, /v1/dead[?offset=&limit=],\n"
    "POST /v1/dead/ID/retry, POST /v1/control,\n"
    "GET /metrics, /health, / (dashboard).\n";

/* True when [http] listen names a loopback address (127/8, ::1, localhost). */
static bool loopback(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
           strncmp(listen, "localhost:", 10) == 0;
}

/* Everything the handlers read, checked before the daemon starts. */
static int setup(const aq_config *cfg, aq_err *e)
{
    if (!cfg->http.auth_token[0] && !loopback(cfg->http.listen))
        return err_set(e, AQ_EPERM,
                       "[http] auth_token: required when listen (%s) is not a loopback address",
                       cfg->http.listen);
    G.cfg = cfg;
    G.started_ms = http_now_ms();
    if (job_limits_from_config(&G.limits, cfg, e) != 0)
        return AQ_EPERM;
    G.local = strcmp(cfg->storage.backend, "local") == 0;
    if (G.local) {
        /* the workers may not have created the root yet: do it as they would */
        storage s;
        if (storage_open_local(&s, cfg->storage.local.root, false, e) != 0)
            return err_prefix(e, "[storage.local] root: ");
        storage_close(&s);
        G.root_fd = open(cfg->storage.local.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (G.root_fd < 0)
            return err_set(e, AQ_EPERM, "[storage.local] root: %s: cannot open (%m)",
                           cfg->storage.local.root);
    }
    return 0;
}

static int parse_args(int argc, char **argv, const char **cfg_path, bool *check)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:hV", longopts, NULL)) != -1) {
        if (c == 'c')
            *cfg_path = optarg;
        else if (c == 'k')
            *check = true;
        else if (c == 'h') {
            fputs(USAGE, stdout);
            exit(0);
        } else if (c == 'V') {
            printf("avatarq-http %s\n", AQ_VERSION);
            exit(0);
        } else {
            fprintf(stderr, "avatarq-http: %s: %s\n", argv[optind - 1],
                    c == ':' ? "needs a value" : "unknown option (see --help)");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "avatarq-http: %s: unexpected argument (see --help)\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* Every connection and every cached image holds a descriptor: say so at
 * start when the limit is lower than what the configuration may need. */
static void check_fd_limit(const aq_config *cfg)
{
    struct rlimit rl;
    long need = (long)cfg->http.max_connections + (long)cfg->http.threads * HTTP_FILE_SLOTS + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need) {
        char have[24], want[24];
        log_warn("open file limit below what [http] max_connections and threads may need",
                 "limit", log_int(have, (int64_t)rl.rlim_cur), "need", log_int(want, need));
    }
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL;
    bool check = false;
    int rc = parse_args(argc, argv, &cfg_path, &check);
    if (rc)
        return rc;
    static aq_config cfg;
    aq_err e;
    err_clear(&e);
    if (config_load(&cfg, cfg_path, &e) != 0 || setup(&cfg, &e) != 0) {
        fprintf(stderr, "avatarq-http: %s\n", e.msg);
        return 2;
    }
    if (check) {
        printf("config ok\n");
        return 0;
    }
    log_setup(cfg.log.level, cfg.log.format, "http");
    check_fd_limit(&cfg);
    /* signals for the main thread only: block them before threads start */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = http_start(&cfg, &e);
    if (!d) {
        log_error("cannot start", "error", e.msg);
        fprintf(stderr, "avatarq-http: %s\n", e.msg);
        return 1;
    }
    if (http_sampler_start() != 0)
        log_warn("no stats sampler thread: the dashboard chart starts empty");
    char th[24];
    log_info("listening", "listen", cfg.http.listen, "threads", log_int(th, cfg.http.threads),
             "storage", cfg.storage.backend, "auth", cfg.http.auth_token[0] ? "token" : "none");
    sd_notifyf(0, "READY=1\nSTATUS=listening on %s", cfg.http.listen);
    int sig = 0;
    sigwait(&set, &sig);
    sd_notify(0, "STOPPING=1");
    log_info("stopping", "signal", sig == SIGTERM ? "TERM" : "INT");
    MHD_stop_daemon(d);
    http_sampler_stop();
    hctx_free_all();
    if (G.root_fd >= 0)
        close(G.root_fd);
    return 0;
}
