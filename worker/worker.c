#include "worker.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "avatar.h"
#include "log.h"
#include "meta.h"
#include "queue.h"
#include "retry.h"
#include "storage.h"

/* How much of a document that is not a JSON object a dead letter keeps:
 * NS:dead holds up to dead_max entries, so a 1 MB garbage document must not
 * cost 1 MB of Redis memory each. */
/* Redis reconnect backoff: 100 ms doubling up to 5 s. */
#define REDIS_BACKOFF_BASE 100
#define REDIS_BACKOFF_MAX 5000

/* SIGTERM count: 1 = finish the job in hand and exit; 2 = give up even on an
 * acknowledgement that Redis keeps refusing (the job stays in the processing
 * list and the supervisor or recovery puts it back). */
static volatile sig_atomic_t g_terms;

static void on_term(int sig)
{
    (void)sig;
    if (g_terms < 2)
        g_terms++;
}

typedef struct wk {
    const aq_config *c;
    slot *s;
    int parent;
    char id[160];
    queue *q;
    storage store;
    meta db;
    avatar_ctx ctx;
    job_limits lim;
    bool redis_down;     /* for logging once per change of state */
    int redis_fails;
    bool holding;        /* a taken job not yet acknowledged or failed */
    bool registered;     /* in NS:workers with a live heartbeat key */
    const char *hang_seed;
} wk;

/* ---- identity ---- */

const char *worker_host(void)
{
    static char host[128];
    if (!host[0] && (gethostname(host, sizeof host - 1) != 0 || !host[0]))
        snprintf(host, sizeof host, "localhost");
    return host;
}

void worker_id(char *out, size_t n, long pid)
{
    snprintf(out, n, "%s:%ld", worker_host(), pid);
}

/* ---- dead letters ---- */

/* ---- recovery identification ---- */

static job_limits g_ident_limits;

void worker_ident_setup(const job_limits *l)
{
    g_ident_limits = *l;
}

int worker_ident(const char *doc, size_t len, char id[65], int *max_attempts,
                 char *why, size_t whylen)
{
    job_request r;
    aq_err e = {0};
    memset(&r, 0, sizeof r);
    int rc = job_parse(doc, len, &g_ident_limits, &r, &e);
    snprintf(id, 65, "%s", r.id);
    *max_attempts = rc == 0 ? r.max_attempts : 0;
    if (rc != 0)
        snprintf(why, whylen, "%s", e.msg);
    return rc;
}

/* ---- stop conditions and naps ---- */

static bool must_stop(const wk *w)
{
    return g_terms > 0 || atomic_load(&w->s->stop) || getppid() != w->parent;
}

/* Sleeps ms in short steps; returns early once g_terms reaches min_terms
 * (or, when stop_flags, once the slot or the parent says stop). */
static void nap(const wk *w, int64_t ms, int min_terms, bool stop_flags)
{
    int64_t end = mono_ms() + ms;
    for (;;) {
        if (g_terms >= min_terms || (stop_flags && must_stop(w)))
            return;
        int64_t left = end - mono_ms();
        if (left <= 0)
            return;
        struct timespec ts = {0, (long)(left < 50 ? left : 50) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- Redis with reconnects ---- */

static void redis_state(wk *w, int rc, const aq_err *e)
{
    if (rc == AQ_EAGAIN) {
        w->redis_fails++;
        if (!w->redis_down)
            log_warn("redis unavailable, retrying", "worker", w->id, "error", e->msg);
        w->redis_down = true;
    } else if (w->redis_down && rc == 0) {
        log_info("redis back", "worker", w->id);
        w->redis_down = false;
        w->redis_fails = 0;
    } else if (rc == 0) {
        w->redis_fails = 0;
    }
}

static int64_t redis_delay(const wk *w)
{
    int n = w->redis_fails < 10 ? w->redis_fails : 10;
    int64_t cap = retry_cap_ms(n, REDIS_BACKOFF_BASE, REDIS_BACKOFF_MAX);
    /* half fixed, half jitter: never a tight loop, still spread out */
    return cap / 2 + retry_backoff_ms(n, REDIS_BACKOFF_BASE, REDIS_BACKOFF_MAX) / 2;
}

/* A state-changing call that must not be lost (start, ack, fail): retried
 * through transport failures until it lands or a second SIGTERM arrives. */
typedef int (*redis_op)(wk *w, void *arg, aq_err *e);

static int redis_until_done(wk *w, redis_op op, void *arg, aq_err *e)
{
    for (;;) {
        int rc = op(w, arg, e);
        redis_state(w, rc, e);
        if (rc != AQ_EAGAIN)
            return rc;
        nap(w, redis_delay(w), 2, false);
        if (g_terms >= 2)
            return rc;
    }
}

typedef struct start_arg {
    const job_request *r;
    int attempts;
} start_arg;

static int op_start(wk *w, void *arg, aq_err *e)
{
    start_arg *a = arg;
    return queue_start(w->q, w->id, a->r->id, a->r->created_at, &a->attempts, e);
}

typedef struct ack_arg {
    const char *doc, *id, *outputs, *error, *retry_doc, *dead_doc;
    size_t len;
    int64_t duration_ms, due_ms;
    bool stale;
} ack_arg;

static int op_ack(wk *w, void *arg, aq_err *e)
{
    ack_arg *a = arg;
    return queue_ack(w->q, w->id, a->doc, a->len, a->id, a->outputs, a->duration_ms,
                     &a->stale, e);
}

static int op_fail(wk *w, void *arg, aq_err *e)
{
    ack_arg *a = arg;
    return queue_fail(w->q, w->id, a->doc, a->len, a->id, a->error, a->retry_doc,
                      a->due_ms, a->dead_doc, &a->stale, e);
}

/* ---- one job ---- */

/* Sends doc to NS:dead with error (never retried); id may be "". */
static void bury(wk *w, const char *doc, size_t len, const char *id,
                 const char *error, int attempts)
{
    char *dead = queue_dead_doc(doc, len, error, now_ms(), attempts);
    ack_arg a = {.doc = doc, .len = len, .id = id, .error = error, .dead_doc = dead};
    aq_err e = {0};
    char nb[24];
    int rc = dead ? redis_until_done(w, op_fail, &a, &e) : AQ_EAGAIN;
    free(dead);
    if (rc == 0) {
        w->holding = false;
        atomic_fetch_add(&w->s->failed, 1);
        log_info("job dead", "worker", w->id, "id", id, "attempts", log_int(nb, attempts),
                 "error", error);
    } else {
        log_error("could not record a dead job; it stays in the processing list",
                  "worker", w->id, "id", id, "error", dead ? e.msg : "out of memory");
    }
}

/* The failure path of a job that was started: retry later when the error may
 * pass and attempts are left, else dead with the last error. */
static void fail_job(wk *w, const char *doc, size_t len, const job_request *r,
                     int attempts, const aq_err *why)
{
    int max = r->max_attempts > 0 ? r->max_attempts : w->c->worker.max_attempts;
    if (why->code != AQ_EAGAIN || attempts >= max) {
        bury(w, doc, len, r->id, why->msg, attempts);
        return;
    }
    char *retry = job_to_json(r);
    int64_t delay = retry_backoff_ms(attempts - 1, w->c->worker.backoff_base_ms,
                                     w->c->worker.backoff_max_ms);
    ack_arg a = {.doc = doc, .len = len, .id = r->id, .error = why->msg,
                 .retry_doc = retry, .due_ms = now_ms() + delay};
    aq_err e = {0};
    char nb[24], db[24];
    int rc = retry ? redis_until_done(w, op_fail, &a, &e) : AQ_EAGAIN;
    free(retry);
    if (rc == 0) {
        w->holding = false;
        atomic_fetch_add(&w->s->failed, 1);
        log_info("job will be retried", "worker", w->id, "id", r->id,
                 "attempts", log_int(nb, attempts), "delay_ms", log_int(db, delay),
                 "error", why->msg);
    } else {
        log_error("could not record a retry; the job stays in the processing list",
                  "worker", w->id, "id", r->id, "error", retry ? e.msg : "out of memory");
    }
}

static void ack_job(wk *w, const char *doc, size_t len, const job_request *r,
                    const char *outputs, int64_t duration)
{
    ack_arg a = {.doc = doc, .len = len, .id = r->id, .outputs = outputs,
                 .duration_ms = duration};
    aq_err e = {0};
    char nb[24];
    int rc = redis_until_done(w, op_ack, &a, &e);
    if (rc == 0) {
        w->holding = false;
        atomic_fetch_add(&w->s->done, 1);
        if (a.stale)
            log_info("job was taken back meanwhile; its holder records it",
                     "worker", w->id, "id", r->id);
        else
            log_debug("job done", "worker", w->id, "id", r->id, "ms", log_int(nb, duration));
    } else {
        log_error("could not acknowledge; the job stays in the processing list",
                  "worker", w->id, "id", r->id, "error", e.msg);
    }
}

/* Test hook (test-only, deliberately not in --help): with
 * AVATARQ_TEST_HANG_SEED=<seed> in the environment a worker that starts the
 * first attempt of a job of that seed hangs, ignoring SIGTERM, so tests can
 * hold a worker busy deterministically (job timeout, shutdown timeout, kills)
 * and still see a later attempt succeed. It gives up only when orphaned, so a
 * test that loses its supervisor leaves no process behind. */
static void maybe_hang(const wk *w, const job_request *r, int attempts)
{
    if (!w->hang_seed || r->type != JOB_GENERATE || attempts != 1 ||
        strcmp(r->seed, w->hang_seed) != 0)
        return;
    log_warn("test hook: hanging on this job", "worker", w->id, "id", r->id);
    while (getppid() == w->parent)
        sleep(1);
    _exit(3);
}

static int run_job(wk *w, const job_request *r, int attempts, char **outputs, aq_err *e)
{
    if (r->type == JOB_DELETE) {
        *outputs = NULL;
        return avatar_delete(&w->ctx, r, e);
    }
    return avatar_generate(&w->ctx, r, attempts, outputs, e);
}

static void handle(wk *w, const char *doc, size_t len)
{
    job_request r;
    aq_err e = {0};
    memset(&r, 0, sizeof r);
    w->holding = true;
    if (job_parse(doc, len, &w->lim, &r, &e) != 0) {
        bury(w, doc, len, r.id, e.msg, 1);
        return;
    }
    /* Busy in the slot before the job is marked running in Redis: from the
     * moment anyone can see it running, the supervisor's job timeout covers
     * it, even if this process wedges (or is stopped) during the start call.
     * The attempt number is a floor until the start call says. */
    slots_set_busy(w->s, r.id, doc, len, 1, mono_ms());
    start_arg sa = {.r = &r, .attempts = 1};
    int rc = redis_until_done(w, op_start, &sa, &e);
    if (rc == AQ_EAGAIN) { /* told to give up: the job stays in the processing list */
        slots_set_idle(w->s);
        return;
    }
    if (rc != 0) {
        log_error("could not mark the job running; doing it anyway", "worker", w->id,
                  "id", r.id, "error", e.msg);
        sa.attempts = 1;
    }
    atomic_store(&w->s->attempts, sa.attempts);
    maybe_hang(w, &r, sa.attempts);

    int64_t t0 = mono_ms();
    char *outputs = NULL;
    err_clear(&e);
    rc = run_job(w, &r, sa.attempts, &outputs, &e);
    int64_t duration = mono_ms() - t0;
    atomic_store(&w->s->finishing, 1);
    if (rc == 0)
        ack_job(w, doc, len, &r, outputs ? outputs : "{}", duration);
    else
        fail_job(w, doc, len, &r, sa.attempts, &e);
    free(outputs);
    slots_set_idle(w->s);
}

/* ---- the process ---- */

static void setup_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGHUP, SIG_IGN);   /* reloads are the supervisor's: it replaces us */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the supervisor blocks them for signalfd */
}

static void open_redis(wk *w)
{
    while (!w->q && !must_stop(w)) {
        aq_err e = {0};
        w->q = queue_open(w->c, &e);
        if (w->q) {
            redis_state(w, 0, &e);
            return;
        }
        redis_state(w, AQ_EAGAIN, &e);
        nap(w, redis_delay(w), 1, true);
    }
}

static void open_stores(wk *w)
{
    aq_err e = {0};
    if (job_limits_from_config(&w->lim, w->c, &e) != 0 ||
        storage_open(&w->store, w->c, &e) != 0) {
        log_error("worker cannot start", "worker", w->id, "error", e.msg);
        exit(1);
    }
    if (meta_open(&w->db, w->c, true, &e) != 0) {
        log_error("worker cannot open the database", "worker", w->id, "error", e.msg);
        storage_close(&w->store);
        exit(1);
    }
    avatar_init(&w->ctx, &w->store, &w->db, w->c->storage.prefix, w->id);
}

/* Registers this process (NS:workers + its heartbeat key) before it may hold
 * a job. The supervisor beats for it from then on; but a process forked after
 * the supervisor's last beat would otherwise be unknown to recovery, and a job
 * it took would be stranded in its processing list if both died. */
static int register_self(wk *w, aq_err *e)
{
    queue_beat b = {.worker = w->id, .host = worker_host(), .pid = (long)getpid(),
                    .started_at = atomic_load(&w->s->started_at), .state = "idle",
                    .job = ""};
    int rc = queue_heartbeat(w->q, &b, 1, e);
    w->registered = rc == 0;
    return rc;
}

static void take_loop(wk *w)
{
    while (!must_stop(w)) {
        if (atomic_load(&w->s->quiet)) {
            nap(w, 200, 1, true);
            continue;
        }
        aq_err re = {0};
        if (!w->registered && register_self(w, &re) < 0) {
            redis_state(w, AQ_EAGAIN, &re);
            nap(w, redis_delay(w), 1, true);
            continue;
        }
        char *doc = NULL;
        size_t len = 0;
        aq_err e = {0};
        int rc = queue_take(w->q, w->id, 1000, &doc, &len, &e);
        if (rc < 0) {
            if (rc == AQ_EAGAIN) {
                redis_state(w, rc, &e);
            } else { /* e.g. WRONGTYPE on the queue key: back off the same way */
                log_error("taking a job failed", "worker", w->id, "error", e.msg);
                w->redis_fails++;
            }
            nap(w, redis_delay(w), 1, true);
            continue;
        }
        redis_state(w, 0, &e);
        if (rc == 1)
            handle(w, doc, len);
        free(doc);
    }
}

_Noreturn void worker_run(const aq_config *c, slot *s, int parent)
{
    static wk w; /* static: large, and alive for the whole process */
    memset(&w, 0, sizeof w);
    w.c = c;
    w.s = s;
    w.parent = parent;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    setup_signals();
    if (getppid() != parent)
        g_terms = 1; /* orphaned before PDEATHSIG was armed */
    log_setup(c->log.level, c->log.format, "worker");
    worker_id(w.id, sizeof w.id, (long)getpid());
    w.hang_seed = getenv("AVATARQ_TEST_HANG_SEED");
    atomic_store(&s->started_at, now_ms());

    open_stores(&w);
    worker_ident_setup(&w.lim);
    open_redis(&w);
    if (w.q) {
        log_debug("worker up", "worker", w.id);
        take_loop(&w);
        atomic_store(&s->state, SLOT_STOPPING);
        aq_err e = {0};
        if (!w.holding && queue_worker_gone(w.q, w.id, &e) != 0)
            log_warn("could not deregister", "worker", w.id, "error", e.msg);
        queue_close(w.q);
    }
    avatar_free(&w.ctx);
    meta_close(&w.db);
    storage_close(&w.store);
    log_debug("worker stopped", "worker", w.id);
    exit(0);
}
