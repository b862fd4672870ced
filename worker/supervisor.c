#include "supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "meta.h"
#include "notify.h"
#include "outage.h"
#include "queue.h"
#include "retry.h"
#include "slots.h"
#include "storage.h"
#include "worker.h"

#define TICK_MS 200
/* A worker that dies sooner than this after its start counts towards a crash
 * loop; restart delays double from 250 ms up to 30 s. */
#define CRASH_WINDOW_MS 10000
#define RESTART_BASE_MS 250
#define RESTART_MAX_MS 30000
/* Beat early on a change of worker state, at most this often. */
#define STATE_BEAT_MIN_MS 500
/* Start-up: how long Redis may stay unreachable before we give up. */
#define STARTUP_MIN_MS 10000
#define PROMOTE_LIMIT 1000
/* Scheduled jobs and due retries are promoted within this much of their
 * time: the loop looks at NS:delayed at least this often (one cheap script
 * call that also returns the earliest score still waiting, so a job due
 * sooner is promoted on time). */
#define PROMOTE_POLL_MS 50
#define CONTROL_BATCH 16
/* Timed-out jobs of one process sent down the retry path (any more are
 * requeued like the other jobs of the process). */
#define SLOT_TIMED_MAX 16

/* What the supervisor alone knows about one slot. */
typedef struct slot_ctl {
    pid_t pid;             /* 0: no process */
    char id[160];          /* HOST:PID-NONCE */
    int64_t spawned_mono, spawned_epoch;
    int64_t restart_at;    /* mono ms when an empty slot may be refilled */
    int crashes;           /* consecutive quick crashes */
    unsigned gen;          /* config generation the process was forked with */
    bool retired;          /* remote "stop": leave the slot empty */
    bool replacing;        /* SIGTERMed for a reload: refill at once */
    bool timed_out;        /* SIGKILLed for job_timeout_s */
    char timed[SLOT_TIMED_MAX][JOB_ID_MAX + 1]; /* the jobs that ran too long */
    int ntimed;
} slot_ctl;

/* A dead worker whose jobs must still be put back (Redis may be down). */
typedef struct cleanup {
    char worker[160];
    char timed[SLOT_TIMED_MAX][JOB_ID_MAX + 1]; /* jobs that ran past their time: */
    int ntimed;                                 /* the retry path, the rest requeued */
} cleanup;

typedef enum { PHASE_RUN, PHASE_STOPPING } phase;

typedef struct sup {
    aq_config cfg;
    supervisor_opts opts;
    unsigned gen;
    int nwant;                     /* processes the pool should have */
    slot *slots;
    slot_ctl ctl[SLOTS_MAX];
    int sfd;
    int parent;
    queue *q;
    outage redis;                  /* Redis reachability and backoff (outage.h) */
    phase phase;
    int terms;
    int64_t stop_deadline;
    bool quiet_all;
    bool reloading;
    int64_t next_beat, next_wd, wd_interval;
    int64_t next_promote;  /* mono ms of the next look at NS:delayed */
    int64_t next_tick;     /* mono ms of the next tick without a signal */
    int64_t last_beat;             /* mono ms of the last heartbeat sent */
    int beat_state[SLOTS_MAX];     /* each slot's state as last beaten */
    int64_t beat_jobs[SLOTS_MAX];  /* and its done + failed count */
    char control_last[48];
    cleanup *pend;
    size_t npend, cappend;
    int64_t done_base;
    job_limits lim;
} sup;

/* static: alive for the whole process, and reachable from a forked child so
 * leak checkers do not report the supervisor's handles there */
static sup g_sup;

/* ---- Redis with backoff ---- */

static void redis_result(sup *s, int rc, const aq_err *e)
{
    outage_note(&s->redis, rc, e->msg);
}

/* True when a Redis call may be made now (handle open, not backing off). */
static bool redis_ok(sup *s)
{
    if (outage_waiting(&s->redis, mono_ms()))
        return false;
    aq_err e = {0};
    if (!s->q) {
        s->q = queue_open(&s->cfg, &e);
        redis_result(s, s->q ? 0 : AQ_EAGAIN, &e);
        return s->q != NULL;
    }
    int rc = queue_ensure(s->q, &e);
    redis_result(s, rc, &e);
    return rc == 0;
}

/* ---- slots ---- */

static bool live(const sup *s, int i)
{
    return s->ctl[i].pid > 0;
}

static int live_count(const sup *s)
{
    int n = 0;
    for (int i = 0; i < SLOTS_MAX; i++)
        n += live(s, i);
    return n;
}

static void spawn(sup *s, int i)
{
    slot *sl = &s->slots[i];
    slot_ctl *c = &s->ctl[i];
    slots_reset(sl);
    atomic_store(&sl->quiet, s->quiet_all);
    unsigned nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = (unsigned)mono_ms() ^ (unsigned)getpid();
    atomic_store(&sl->nonce, nonce);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed", "error", strerror(errno));
        c->restart_at = mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        /* nothing crosses fork: drop the supervisor's Redis socket, signalfd
         * and anything else before the worker opens its own handles */
        close_range(3, ~0U, 0);
        worker_run(&s->cfg, sl, s->parent);
    }
    setpgid(pid, pid); /* also done by the child: whichever runs first wins */
    c->pid = pid;
    worker_id(c->id, sizeof c->id, (long)pid, nonce);
    c->spawned_mono = mono_ms();
    c->spawned_epoch = now_ms();
    c->gen = s->gen;
    c->replacing = false;
    c->timed_out = false;
    atomic_store(&sl->pid, pid);
    char nb[24];
    log_info("worker started", "worker", c->id, "slot", log_int(nb, i));
}

static void signal_worker(sup *s, int i, int sig)
{
    if (!live(s, i))
        return;
    if (sig == SIGTERM)
        atomic_store(&s->slots[i].stop, 1);
    /* SIGKILL goes to the whole process group: anything the worker started
     * dies with it */
    kill(sig == SIGKILL ? -s->ctl[i].pid : s->ctl[i].pid, sig);
    if (sig == SIGKILL)
        kill(s->ctl[i].pid, SIGKILL);
}

static void pend_add(sup *s, const slot_ctl *c)
{
    if (s->npend == s->cappend) {
        size_t cap = s->cappend ? s->cappend * 2 : 16;
        cleanup *p = realloc(s->pend, cap * sizeof *p);
        if (!p) {
            log_error("out of memory; recovery will return the jobs", "worker", c->id);
            return;
        }
        s->pend = p;
        s->cappend = cap;
    }
    cleanup *p = &s->pend[s->npend++];
    snprintf(p->worker, sizeof p->worker, "%s", c->id);
    p->ntimed = c->timed_out ? c->ntimed : 0;
    memcpy(p->timed, c->timed, sizeof p->timed);
}

static void log_exit(const slot_ctl *c, int st, bool expected)
{
    char nb[24];
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        log_write(expected ? LOG_INFO : LOG_ERROR, "worker killed by signal",
                  "worker", c->id, "signal", strsignal(sig), "signo", log_int(nb, sig),
                  (char *)NULL);
    } else if (WEXITSTATUS(st) != 0) {
        log_error("worker crashed", "worker", c->id,
                  "status", log_int(nb, WEXITSTATUS(st)));
    } else {
        log_info("worker exited", "worker", c->id);
    }
}

static void after_exit(sup *s, int i, int st)
{
    slot_ctl *c = &s->ctl[i];
    slot *sl = &s->slots[i];
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    log_exit(c, st, c->timed_out || s->phase == PHASE_STOPPING);
    s->done_base += atomic_load(&sl->done);
    pend_add(s, c);
    int64_t now = mono_ms();
    if (!clean && !c->timed_out) {
        /* A crash loop is a process that dies young without finishing any
         * job; one that got work done and was then killed from outside (OOM
         * killer, an operator, a chaos test) is restarted at once. */
        bool worked = atomic_load(&sl->done) + atomic_load(&sl->failed) > 0;
        bool young = now - c->spawned_mono < CRASH_WINDOW_MS;
        c->crashes = young && !worked ? c->crashes + 1 : 1;
        int64_t delay = retry_cap_ms(c->crashes - 1, RESTART_BASE_MS, RESTART_MAX_MS);
        c->restart_at = now + delay;
        if (c->crashes > 1 && s->phase == PHASE_RUN) {
            char a[24], b[24];
            log_warn("worker keeps dying; restarting it later", "slot", log_int(a, i),
                     "delay_ms", log_int(b, delay));
        }
    } else {
        c->crashes = 0;
        c->restart_at = now;
    }
    c->pid = 0;
    c->replacing = false;
    atomic_store(&sl->pid, 0);
}

static void reap(sup *s)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < SLOTS_MAX; i++)
            if (s->ctl[i].pid == pid) {
                after_exit(s, i, st);
                break;
            }
    }
}

/* Refills empty slots of the pool whose restart delay has passed. */
static void refill(sup *s)
{
    if (s->phase != PHASE_RUN)
        return;
    int64_t now = mono_ms();
    for (int i = 0; i < s->nwant; i++)
        if (!live(s, i) && !s->ctl[i].retired && now >= s->ctl[i].restart_at)
            spawn(s, i);
}

/* The jobs of slot i overdue into its ctl; returns how many. A job is
 * overdue when its work has run longer than limit ms (and it is not just
 * recording its outcome), or when it has waited for a thread longer than
 * twice that (the process is wedged: no thread ever frees up). */
static int overdue_jobs(sup *s, int i, int64_t limit, int64_t now)
{
    slot *sl = &s->slots[i];
    slot_ctl *c = &s->ctl[i];
    c->ntimed = 0;
    for (int k = 0; k < SLOT_JOBS_MAX && atomic_load(&sl->inflight) > 0; k++) {
        char id[JOB_ID_MAX + 1];
        int64_t took = slots_read_job(sl, k, id);
        int64_t run = atomic_load(&sl->jobs[k].run);
        if (took <= 0 || atomic_load(&sl->jobs[k].finishing))
            continue;
        bool late = run > 0 ? now - run > limit : now - took > 2 * limit;
        if (late && c->ntimed < SLOT_TIMED_MAX)
            snprintf(c->timed[c->ntimed++], JOB_ID_MAX + 1, "%s", id);
    }
    return c->ntimed;
}

/* Kills a worker process holding a job longer than job_timeout_s: a thread
 * cannot be stopped alone. Once it is reaped, the jobs that ran too long
 * take the retry path and the others of that process go back to the head of
 * the queue (clean_one). */
static void enforce_timeouts(sup *s)
{
    int64_t limit = (int64_t)s->cfg.worker.job_timeout_s * 1000, now = mono_ms();
    for (int i = 0; i < SLOTS_MAX; i++) {
        slot *sl = &s->slots[i];
        if (!live(s, i) || s->ctl[i].timed_out || atomic_load(&sl->state) != SLOT_BUSY)
            continue;
        if (overdue_jobs(s, i, limit, now) == 0)
            continue;
        char nb[24], nt[24];
        log_warn("job timed out; killing its worker", "worker", s->ctl[i].id,
                 "id", s->ctl[i].timed[0], "timed_out", log_int(nt, s->ctl[i].ntimed),
                 "timeout_s", log_int(nb, s->cfg.worker.job_timeout_s));
        s->ctl[i].timed_out = true;
        signal_worker(s, i, SIGKILL);
    }
}

/* ---- putting jobs back ---- */

static int clean_one(sup *s, cleanup *c, aq_err *e)
{
    const char *timed[SLOT_TIMED_MAX];
    for (int i = 0; i < c->ntimed; i++)
        timed[i] = c->timed[i];
    char why[96];
    snprintf(why, sizeof why, "timed out after %d s", s->cfg.worker.job_timeout_s);
    queue_requeue how = {.ident = worker_ident, .ud = &s->lim, .timed_out = timed,
                         .n_timed_out = (size_t)c->ntimed, .timeout_error = why};
    int rec = 0, dead = 0;
    int rc = queue_requeue_worker(s->q, c->worker, &how, &rec, &dead, e);
    if (rc != 0)
        return rc;
    if (rec || dead) {
        char a[24], b[24];
        log_info("jobs of a dead worker put back", "worker", c->worker,
                 "recovered", log_int(a, rec), "dead", log_int(b, dead));
    }
    return queue_worker_gone(s->q, c->worker, e);
}

/* Puts back the jobs of every reaped worker, oldest first, while Redis
 * answers; what is left waits for the next tick. */
static void drain_cleanups(sup *s)
{
    size_t done = 0;
    while (done < s->npend && redis_ok(s)) {
        aq_err e = {0};
        int rc = clean_one(s, &s->pend[done], &e);
        redis_result(s, rc == AQ_EAGAIN ? AQ_EAGAIN : 0, &e);
        if (rc == AQ_EAGAIN)
            break;
        if (rc != 0)
            log_error("could not put back a dead worker's jobs; recovery will",
                      "worker", s->pend[done].worker, "error", e.msg);
        done++;
    }
    if (done == 0)
        return;
    memmove(s->pend, s->pend + done, (s->npend - done) * sizeof *s->pend);
    s->npend -= done;
}

/* ---- heartbeats, status, housekeeping ---- */

static int64_t rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    long size = 0, res = 0;
    if (!f)
        return 0;
    int n = fscanf(f, "%ld %ld", &size, &res);
    fclose(f);
    return n == 2 ? res * (sysconf(_SC_PAGESIZE) / 1024) : 0;
}

static const char *const STATE_NAMES[] = {"idle", "busy", "stopping"};

static int beat(sup *s, aq_err *e)
{
    static queue_beat beats[SLOTS_MAX];
    static char jobs[SLOTS_MAX][JOB_ID_MAX + 1];
    size_t n = 0;
    for (int i = 0; i < SLOTS_MAX; i++) {
        /* a process still starting (or failing to: S3 down, a bad
         * database) is not a worker yet: NS:workers lists those that are */
        if (!live(s, i) || !atomic_load(&s->slots[i].ready))
            continue;
        slot *sl = &s->slots[i];
        int st = atomic_load(&sl->state);
        slots_first_job(sl, jobs[n]);
        s->beat_state[i] = st;
        s->beat_jobs[i] = atomic_load(&sl->done) + atomic_load(&sl->failed);
        if (s->phase == PHASE_STOPPING || atomic_load(&sl->stop) || s->ctl[i].replacing)
            st = SLOT_STOPPING;
        beats[n] = (queue_beat){
            .worker = s->ctl[i].id, .host = worker_host(), .pid = s->ctl[i].pid,
            .started_at = s->ctl[i].spawned_epoch,
            .state = STATE_NAMES[st >= 0 && st <= SLOT_STOPPING ? st : 0],
            .job = st == SLOT_BUSY ? jobs[n] : "",
            .done = atomic_load(&sl->done), .failed = atomic_load(&sl->failed),
            .inflight = atomic_load(&sl->inflight),
            .rss_kb = rss_kb(s->ctl[i].pid)};
        n++;
    }
    int rc = n ? queue_heartbeat(s->q, beats, n, e) : 0;
    if (rc != 0 && rc != AQ_EAGAIN)
        log_error("heartbeat failed", "error", e->msg);
    s->last_beat = mono_ms();
    return rc;
}

/* True when a live worker went idle or busy, or finished a job (one shorter
 * than a tick changes no state), since the last heartbeat: so an operator's
 * `avatarq workers` does not show a finished job as running, or stale
 * counters, for a whole heartbeat interval. */
static bool states_changed(const sup *s)
{
    for (int i = 0; i < SLOTS_MAX; i++) {
        if (!live(s, i))
            continue;
        const slot *sl = &s->slots[i];
        if (atomic_load(&sl->state) != s->beat_state[i] ||
            atomic_load(&sl->done) + atomic_load(&sl->failed) != s->beat_jobs[i])
            return true;
    }
    return false;
}

static void status(sup *s)
{
    int busy = 0, total = 0;
    int64_t done = s->done_base;
    for (int i = 0; i < SLOTS_MAX; i++) {
        if (!live(s, i))
            continue;
        total++;
        busy += atomic_load(&s->slots[i].state) == SLOT_BUSY;
        done += atomic_load(&s->slots[i].done);
    }
    queue_stats st;
    aq_err e = {0};
    memset(&st, 0, sizeof st);
    if (s->q && !s->redis.down && queue_stats_get(s->q, &st, &e) == 0)
        notify_status("busy %d/%d processes, queue %" PRId64 ", done %" PRId64,
                      busy, total, st.queued, done);
    else
        notify_status("busy %d/%d processes, queue unknown (redis down), done %" PRId64,
                      busy, total, done);
}

static void recover(sup *s)
{
    aq_err e = {0};
    int moved = 0, rec = 0, dead = 0;
    int rc = 0;
    /* a backlog of due retries drains in bounded steps, not one per beat */
    for (int round = 0; round < 10 && rc == 0; round++) {
        rc = queue_promote_due(s->q, now_ms(), PROMOTE_LIMIT, &moved, &e);
        if (moved < PROMOTE_LIMIT)
            break;
    }
    queue_requeue how = {.ident = worker_ident, .ud = &s->lim};
    if (rc == 0)
        rc = queue_recover_dead(s->q, &how, &rec, &dead, &e);
    redis_result(s, rc == AQ_EAGAIN ? AQ_EAGAIN : 0, &e);
    if (rc != 0 && rc != AQ_EAGAIN)
        log_error("housekeeping failed", "error", e.msg);
    char a[24], b[24];
    if (rec || dead)
        log_info("recovered jobs of expired workers", "requeued", log_int(a, rec),
                 "dead", log_int(b, dead));
}

/* ---- remote control ---- */

static void begin_stop(sup *s, const char *why);

static void control_quiet(sup *s, int i, bool on)
{
    if (i < 0) {
        s->quiet_all = on;
        for (int k = 0; k < SLOTS_MAX; k++)
            atomic_store(&s->slots[k].quiet, on);
    } else {
        atomic_store(&s->slots[i].quiet, on);
    }
}

static void cmd_quiet(sup *s, int i) { control_quiet(s, i, true); }
static void cmd_resume(sup *s, int i) { control_quiet(s, i, false); }

static void cmd_stop(sup *s, int i)
{
    if (i < 0) {
        begin_stop(s, "remote stop");
        return;
    }
    s->ctl[i].retired = true;
    signal_worker(s, i, SIGTERM);
}

static const struct {
    const char *name;
    void (*apply)(sup *s, int slot); /* slot -1: every worker of this supervisor */
} CONTROL_CMDS[] = {
    {"quiet", cmd_quiet},
    {"resume", cmd_resume},
    {"stop", cmd_stop},
};

/* -2: not for us; -1: all our workers; >= 0: that slot. */
static int control_target(const sup *s, const char *t)
{
    if (strcmp(t, "all") == 0)
        return -1;
    if (strncmp(t, "host:", 5) == 0)
        return strcmp(t + 5, worker_host()) == 0 ? -1 : -2;
    if (strncmp(t, "worker:", 7) == 0)
        for (int i = 0; i < SLOTS_MAX; i++)
            if (live(s, i) && strcmp(s->ctl[i].id, t + 7) == 0)
                return i;
    return -2;
}

static void apply_control(sup *s, const queue_control *c)
{
    int target = control_target(s, c->target);
    if (target == -2)
        return;
    for (size_t k = 0; k < sizeof CONTROL_CMDS / sizeof *CONTROL_CMDS; k++)
        if (strcmp(CONTROL_CMDS[k].name, c->cmd) == 0) {
            log_info("remote command", "cmd", c->cmd, "target", c->target);
            CONTROL_CMDS[k].apply(s, target);
            return;
        }
    log_warn("unknown remote command ignored", "cmd", c->cmd, "target", c->target);
}

static void read_control(sup *s)
{
    queue_control cmds[CONTROL_BATCH];
    size_t n = CONTROL_BATCH;
    while (n == CONTROL_BATCH) {
        aq_err e = {0};
        int rc = queue_control_read(s->q, s->control_last, cmds, CONTROL_BATCH, &n, &e);
        if (rc != 0) {
            redis_result(s, rc == AQ_EAGAIN ? AQ_EAGAIN : 0, &e);
            if (rc != AQ_EAGAIN)
                log_error("reading remote commands failed", "error", e.msg);
            return;
        }
        for (size_t i = 0; i < n; i++)
            apply_control(s, &cmds[i]);
    }
}

static void heartbeat_duties(sup *s)
{
    if (redis_ok(s)) {
        aq_err e = {0};
        int rc = beat(s, &e);
        redis_result(s, rc == AQ_EAGAIN ? AQ_EAGAIN : 0, &e);
    }
    drain_cleanups(s);
    if (redis_ok(s))
        recover(s);
    if (redis_ok(s) && s->phase == PHASE_RUN)
        read_control(s);
    status(s);
}

/* ---- stop and reload ---- */

static void begin_stop(sup *s, const char *why)
{
    if (s->phase == PHASE_STOPPING)
        return;
    char nb[24];
    log_info("stopping: finishing the jobs in hand", "reason", why,
             "timeout_s", log_int(nb, s->cfg.worker.shutdown_timeout_s));
    notify_stopping();
    s->phase = PHASE_STOPPING;
    s->stop_deadline = mono_ms() + (int64_t)s->cfg.worker.shutdown_timeout_s * 1000;
    for (int i = 0; i < SLOTS_MAX; i++)
        signal_worker(s, i, SIGTERM);
}

static void kill_all(sup *s, const char *why)
{
    int n = live_count(s);
    if (n == 0)
        return;
    char nb[24];
    log_warn("killing the remaining workers; their jobs are put back", "reason", why,
             "workers", log_int(nb, n));
    for (int i = 0; i < SLOTS_MAX; i++)
        signal_worker(s, i, SIGKILL);
}

static int wanted_processes(const sup *s, const aq_config *c)
{
    int n = s->opts.processes > 0 ? s->opts.processes : c->worker.processes;
    if (n > SLOTS_MAX) {
        char a[24], b[24];
        log_warn("too many processes; capping", "processes", log_int(a, n),
                 "max", log_int(b, SLOTS_MAX));
        n = SLOTS_MAX;
    }
    return n < 1 ? 1 : n;
}

static void reload(sup *s)
{
    aq_config next;
    aq_err e = {0};
    notify_reloading();
    if (config_load(&next, s->opts.config_path, &e) != 0) {
        log_error("reload failed; keeping the running configuration", "error", e.msg);
        notify_ready();
        return;
    }
    job_limits lim;
    if (job_limits_from_config(&lim, &next, &e) != 0) {
        log_error("reload failed; keeping the running configuration", "error", e.msg);
        notify_ready();
        return;
    }
    /* stderr is our only log sink (journald or the caller's redirection):
     * there is no file to reopen */
    bool redis_changed = strcmp(next.redis.url, s->cfg.redis.url) != 0 ||
                         strcmp(next.redis.ns, s->cfg.redis.ns) != 0 ||
                         strcmp(next.redis.queue, s->cfg.redis.queue) != 0;
    s->cfg = next;
    s->lim = lim;
    log_setup(next.log.level, next.log.format, "supervisor");
    if (redis_changed && s->q) {
        queue_close(s->q);
        s->q = NULL;
    }
    s->gen++;
    s->nwant = wanted_processes(s, &next);
    s->reloading = true;
    char nb[24];
    log_info("configuration reloaded; replacing workers one at a time",
             "processes", log_int(nb, s->nwant));
}

/* One step of a reload: retire processes beyond the pool size, and replace
 * one old-generation process at a time (SIGTERM, then refill when reaped). */
static void roll(sup *s)
{
    if (!s->reloading || s->phase != PHASE_RUN)
        return;
    for (int i = s->nwant; i < SLOTS_MAX; i++)
        if (live(s, i) && !atomic_load(&s->slots[i].stop))
            signal_worker(s, i, SIGTERM);
    for (int i = 0; i < SLOTS_MAX; i++)
        if (s->ctl[i].replacing && live(s, i))
            return; /* one at a time: wait until it has exited */
    for (int i = 0; i < s->nwant; i++)
        if (live(s, i) && s->ctl[i].gen != s->gen) {
            s->ctl[i].replacing = true;
            signal_worker(s, i, SIGTERM);
            return;
        }
    for (int i = s->nwant; i < SLOTS_MAX; i++)
        if (live(s, i))
            return;
    s->reloading = false;
    log_info("reload done");
    notify_ready();
}

/* ---- signals ---- */

static int signals_setup(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void on_signal(sup *s, int sig)
{
    if (sig == SIGTERM || sig == SIGINT) {
        s->terms++;
        if (s->terms == 1)
            begin_stop(s, sig == SIGTERM ? "SIGTERM" : "SIGINT");
        else
            kill_all(s, "second stop signal");
    } else if (sig == SIGHUP && s->phase == PHASE_RUN) {
        reload(s);
    }
}

/* Waits up to ms for a signal, handling what arrives. */
/* Waits up to ms for signals and handles them; true when one came. */
static bool wait_signals(sup *s, int ms)
{
    struct pollfd p = {.fd = s->sfd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return false;
    struct signalfd_siginfo si;
    while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si)
        on_signal(s, (int)si.ssi_signo);
    return true;
}

/* ---- start-up ---- */

static int connect_at_start(sup *s)
{
    int64_t limit = 5 * (int64_t)s->cfg.redis.connect_timeout_ms;
    int64_t deadline = mono_ms() + (limit > STARTUP_MIN_MS ? limit : STARTUP_MIN_MS);
    char url[600];
    config_redact_url(s->cfg.redis.url, url, sizeof url);
    for (int n = 0;; n++) {
        aq_err e = {0};
        s->q = queue_open(&s->cfg, &e);
        if (s->q)
            return 0;
        if (e.code == AQ_EPERM) { /* a certificate, a name, a password: waiting cannot help */
            log_error("cannot start: redis refused", "url", url, "error", e.msg);
            return -1;
        }
        if (n == 0)
            log_warn("redis unreachable at start, retrying", "url", url, "error", e.msg);
        if (mono_ms() >= deadline || s->terms) {
            log_error("cannot start: redis unreachable", "url", url, "error", e.msg);
            return -1;
        }
        wait_signals(s, (int)retry_cap_ms(n < 10 ? n : 10, 200, 2000));
    }
}

static void warn_eviction(sup *s)
{
    char policy[64];
    aq_err e = {0};
    if (queue_maxmemory_policy(s->q, policy, sizeof policy, &e) != 0)
        log_warn("could not read maxmemory-policy", "error", e.msg);
    else if (strcmp(policy, "noeviction") != 0)
        log_warn("redis maxmemory-policy is not noeviction: jobs can be evicted and lost",
                 "policy", policy);
}

/* Opens storage (creating its directories) and the database (applying
 * migrations) once, before any worker exists, so workers never race on them. */
static int prepare_stores(sup *s)
{
    storage st;
    meta m;
    aq_err e = {0};
    if (storage_open(&st, &s->cfg, &e) != 0) {
        log_error("cannot start: storage", "error", e.msg);
        return -1;
    }
    storage_close(&st);
    if (meta_open(&m, &s->cfg, false, &e) != 0) {
        log_error("cannot start: database", "error", e.msg);
        return -1;
    }
    meta_close(&m);
    return 0;
}

/* ---- the loop ---- */

/* Promotes due jobs of NS:delayed when it is time (see PROMOTE_POLL_MS). */
static void promote_due(sup *s)
{
    int64_t mono = mono_ms();
    if (s->phase != PHASE_RUN || mono < s->next_promote)
        return;
    if (!redis_ok(s)) {
        s->next_promote = mono + PROMOTE_POLL_MS;
        return;
    }
    aq_err e = {0};
    int moved = 0;
    int64_t next_due = -1;
    int rc = queue_promote_due_next(s->q, now_ms(), PROMOTE_LIMIT, &moved, &next_due, &e);
    int64_t wait = PROMOTE_POLL_MS;
    if (rc == 0 && moved == PROMOTE_LIMIT)
        wait = 0; /* a backlog: go on at once */
    else if (rc == 0 && next_due >= 0 && next_due - now_ms() < wait)
        wait = next_due - now_ms() > 0 ? next_due - now_ms() : 0;
    s->next_promote = mono_ms() + wait;
    if (rc == AQ_EAGAIN)
        redis_result(s, rc, &e);
}

static void tick(sup *s)
{
    reap(s);
    enforce_timeouts(s);
    roll(s);
    refill(s);
    int64_t now = mono_ms();
    if (now >= s->next_beat) {
        heartbeat_duties(s);
        s->next_beat = now + (int64_t)s->cfg.worker.heartbeat_interval_s * 1000;
    } else {
        if (s->npend)
            drain_cleanups(s); /* put a dead worker's jobs back at once */
        if (now - s->last_beat >= STATE_BEAT_MIN_MS && redis_ok(s) && states_changed(s)) {
            aq_err e = {0};
            int rc = beat(s, &e);
            redis_result(s, rc == AQ_EAGAIN ? AQ_EAGAIN : 0, &e);
        }
    }
    if (s->phase == PHASE_STOPPING && s->stop_deadline && mono_ms() >= s->stop_deadline) {
        kill_all(s, "shutdown_timeout_s passed");
        s->stop_deadline = 0; /* once: a process in D state is not worth a log line per tick */
    }
    /* the watchdog hears from us only while this loop turns */
    if (s->wd_interval && mono_ms() >= s->next_wd) {
        notify_watchdog();
        s->next_wd = mono_ms() + s->wd_interval;
    }
}

static void finish(sup *s)
{
    /* every worker has exited: put back what they held, deregister them */
    int64_t deadline = mono_ms() + 10000;
    while (s->npend && mono_ms() < deadline && s->terms < 3) {
        drain_cleanups(s);
        if (s->npend)
            wait_signals(s, 100);
    }
    if (s->npend) {
        char nb[24];
        log_error("could not put back every job; recovery on another supervisor will",
                  "workers", log_int(nb, (int64_t)s->npend));
    }
    free(s->pend);
    if (s->q)
        queue_close(s->q);
    log_info("stopped");
}

static int timeout_for_poll(const sup *s)
{
    int64_t wait = s->next_tick - mono_ms();
    if (wait < 0)
        wait = 0;
    if (s->phase == PHASE_RUN) {
        int64_t left = s->next_promote - mono_ms();
        if (left < wait)
            wait = left < 0 ? 0 : left;
    }
    if (s->wd_interval) {
        int64_t left = s->next_wd - mono_ms();
        if (left < wait)
            wait = left < 0 ? 0 : left;
    }
    return (int)wait;
}

int supervisor_run(const aq_config *c, const supervisor_opts *o)
{
    sup *s = &g_sup;
    memset(s, 0, sizeof *s);
    s->cfg = *c;
    s->opts = *o;
    s->parent = (int)getpid();
    s->gen = 1;
    s->nwant = wanted_processes(s, c);
    aq_err e = {0};
    if (job_limits_from_config(&s->lim, c, &e) != 0) {
        log_error("cannot start", "error", e.msg);
        return 1;
    }
    s->sfd = signals_setup();
    if (s->sfd < 0) {
        log_error("cannot start: signalfd", "error", strerror(errno));
        return 1;
    }
    snprintf(s->control_last, sizeof s->control_last, "%" PRId64 "-0", now_ms());
    if (connect_at_start(s) != 0 || prepare_stores(s) != 0) {
        if (s->q)
            queue_close(s->q);
        close(s->sfd);
        return s->terms ? 0 : 1;
    }
    warn_eviction(s);
    s->slots = slots_map(SLOTS_MAX);
    if (!s->slots) {
        log_error("cannot start: mmap", "error", strerror(errno));
        queue_close(s->q);
        return 1;
    }
    s->wd_interval = notify_watchdog_interval_ms();
    refill(s);
    char nb[24];
    log_info("avatarq-worker up", "processes", log_int(nb, s->nwant), "version", AQ_VERSION);
    notify_ready();
    /* the duties run on a signal or every TICK_MS; the look at NS:delayed
     * has its own, shorter period (PROMOTE_POLL_MS) */
    while (s->phase == PHASE_RUN || live_count(s) > 0) {
        bool sig = wait_signals(s, timeout_for_poll(s));
        promote_due(s);
        if (sig || mono_ms() >= s->next_tick) {
            tick(s);
            s->next_tick = mono_ms() + TICK_MS;
        }
    }
    reap(s);
    finish(s);
    slots_unmap(s->slots, SLOTS_MAX);
    close(s->sfd);
    return 0;
}
