/* worker: one worker process. Forked by the supervisor; opens its own Redis,
 * storage and metadata handles (nothing crosses fork), then holds up to
 * [worker] concurrency jobs at once until told to stop.
 *
 * Threads: the dispatcher (the process's main thread) alone talks to Redis
 * and to the metadata database; `concurrency` job threads, each with its own
 * storage handle and render buffers, render and store. The dispatcher sends
 * the outcomes of every job finished since its last call, the start of the
 * jobs it took in its last call and its next take in one script
 * (queue_cycle), after writing the finished jobs' metadata rows in one
 * transaction. A taken job waits for that next call to be marked running
 * (it is the prefetch: the threads have work meanwhile); when the threads
 * are about to run out, the call is made at once. A process holding nothing
 * blocks in queue_take_bounded, which never holds a document over the size
 * limit.
 *
 * A job's fate after a failure is fate.c's. Delete jobs run on the
 * dispatcher: they need the database, and they are rare. */
#include "worker.h"

#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "avatar.h"
#include "callbacks.h"
#include "fate.h"
#include "log.h"
#include "meta.h"
#include "outage.h"
#include "pngenc.h"
#include "queue.h"
#include "retry.h"
#include "storage.h"

/* While jobs are in flight and the queue looked empty, look again this
 * often (a process holding nothing blocks in its take instead). */
#define POLL_MS 5
/* After a blocking take, the first look for more (2: at least 1 ms). */
#define PROBE_MS 2
/* A finished job waits at most this long for others to share its call,
 * while the job threads still have work queued (otherwise it goes at once). */
#define LINGER_MS 2
/* An idle process with several queues blocks on one of them this long
 * between looks at all of them. */
#define TAKE_WAIT_MULTI_MS 100
#define JOB_STACK (512 * 1024)

/* SIGTERM count: 1 = finish the jobs in hand and exit; 2 = give up even on
 * outcomes that Redis keeps refusing (the jobs stay in the processing list
 * and the supervisor or recovery puts them back). */
static volatile sig_atomic_t g_terms;

static void on_term(int sig)
{
    (void)sig;
    if (g_terms < 2)
        g_terms++;
}

/* One job in hand, from its take to its recorded outcome. */
typedef struct job {
    struct job *next;
    int k;                 /* its entry in the slot */
    char *doc;             /* exactly as taken */
    size_t len;
    job_request r;
    int attempts;
    const char *queue;     /* the queue it came from (queue_take_name) */
    bool refused;          /* its document did not parse */
    int64_t t0;            /* mono ms when its work began */
    /* set by the job thread */
    int rc;
    aq_err err;
    char *outputs;
    meta_row *row;         /* generate: the metadata row to record */
    int64_t duration;
    /* set by the dispatcher */
    queue_outcome out;
    char *made;            /* the retry or dead document it built */
} job;

/* The job threads' two lists. Change procedure: both lists and quit only
 * under mu; a job is on at most one list; only the dispatcher allocates and
 * frees jobs. */
typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    job *work, *work_tail;     /* FIFO: waiting for a thread */
    job *done;                 /* finished, for the dispatcher */
    atomic_int nwork;          /* jobs on the work list (read without mu) */
    bool quit;
    int nthreads;
    pthread_t th[SLOT_JOBS_MAX];
} pool;

typedef struct wk {
    const aq_config *c;
    slot *s;
    int parent;
    char id[160];
    queue *q;
    storage store;         /* the dispatcher's (deletes) */
    meta db;
    avatar_ctx ctx;
    job_limits lim;
    outage redis;          /* Redis reachability and backoff (outage.h) */
    bool registered;       /* in NS:workers with a live heartbeat key */
    bool doubt;            /* a call lost its reply: reconcile first */
    bool more;             /* the queue may hold more: take without waiting */
    int64_t next_poll;     /* mono ms: with jobs in flight, look at the
                              queue again from then on */
    int conc;              /* job threads */
    int hold;              /* jobs a process may hold: the threads' work plus
                            * as much again prefetched, so that they never
                            * wait for the dispatcher's round trip */
    int inflight;          /* jobs taken and not yet recorded */
    int64_t pending_since; /* mono ms of the oldest pending outcome */
    job *held[SLOT_JOBS_MAX]; /* by slot entry */
    job *pending, *pending_tail; /* decided outcomes not yet recorded (FIFO) */
    size_t npending;
    job *unstarted, *unstarted_tail; /* parsed, not yet marked running (FIFO) */
    int nunstarted;
    queue_hist hist;       /* durations not yet added to NS:metrics */
    int freek[SLOT_JOBS_MAX];
    int nfree;
    pool p;
    sem_t render_gate;     /* the job threads' avatar_ctx.gate: as many
                              render at once as the process may use cores */
    const char *hang_seed;
    cb_sender *cb;         /* completion callbacks: its own thread */
} wk;

/* ---- identity ---- */

const char *worker_host(void)
{
    static char host[128];
    if (!host[0] && (gethostname(host, sizeof host - 1) != 0 || !host[0]))
        snprintf(host, sizeof host, "localhost");
    return host;
}

void worker_id(char *out, size_t n, long pid, unsigned nonce)
{
    snprintf(out, n, "%s:%ld-%04x", worker_host(), pid, nonce & 0xffffu);
}

/* ---- recovery identification ---- */

int worker_ident(void *limits, const char *doc, size_t len, char id[65], int *max_attempts,
                 char *why, size_t whylen)
{
    job_request r;
    aq_err e = {0};
    memset(&r, 0, sizeof r);
    int rc = job_parse(doc, len, limits, &r, &e);
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
    outage_note(&w->redis, rc, e->msg);
}

static int64_t redis_delay(const wk *w)
{
    return outage_delay_ms(&w->redis);
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

/* Calls op until it lands, through transport failures, or a second SIGTERM
 * arrives. */
typedef int (*redis_op)(wk *w, void *arg, aq_err *e);

static int redis_until_done(wk *w, redis_op op, void *arg, aq_err *e)
{
    for (;;) {
        int rc = op(w, arg, e);
        redis_state(w, rc, e);
        if (rc != AQ_EAGAIN)
            return rc;
        w->doubt = true;
        nap(w, redis_delay(w), 2, false);
        if (g_terms >= 2)
            return rc;
    }
}

/* ---- the job threads ---- */

#ifdef AQ_TEST_HOOKS
/* Test hook, only in the worker the tests build (build/testbin; never in
 * bin/avatarq-worker): with AVATARQ_TEST_HANG_SEED=<seed> in the environment
 * a job of that seed hangs on its first attempt, so tests can hold a job
 * deterministically (job timeout, shutdown timeout, kills) and still see a
 * later attempt succeed. It gives up only when orphaned, so a test that
 * loses its supervisor leaves no process behind. */
static void maybe_hang(const wk *w, const job *j)
{
    if (!w->hang_seed || j->r.type != JOB_GENERATE || j->attempts != 1 ||
        strcmp(j->r.seed, w->hang_seed) != 0)
        return;
    log_warn("test hook: hanging on this job", "worker", w->id, "id", j->r.id);
    while (getppid() == w->parent)
        sleep(1);
    _exit(3);
}
#else
static void maybe_hang(const wk *w, const job *j)
{
    (void)w;
    (void)j;
}
#endif

typedef struct thread_arg {
    wk *w;
    storage store;
    avatar_ctx ctx;
} thread_arg;

static job *pool_next(pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (!p->work && !p->quit)
        pthread_cond_wait(&p->work_cv, &p->mu);
    job *j = p->work;
    if (j) {
        p->work = j->next;
        if (!p->work)
            p->work_tail = NULL;
        atomic_fetch_sub(&p->nwork, 1);
    }
    pthread_mutex_unlock(&p->mu);
    return j;
}

static void pool_finished(pool *p, job *j)
{
    pthread_mutex_lock(&p->mu);
    j->next = p->done;
    p->done = j;
    pthread_cond_signal(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
}

/* Renders and stores one generate job; the metadata row is the
 * dispatcher's to write. */
/* Renders and stores one generate job; the metadata row is the
 * dispatcher's to write (with the attempt number). */
static void run_one(thread_arg *t, job *j)
{
    wk *w = t->w;
    j->t0 = mono_ms();
    slots_job_run(w->s, j->k, j->t0);
    maybe_hang(w, j);
    j->row = malloc(sizeof *j->row);
    if (!j->row)
        j->rc = err_set(&j->err, AQ_EAGAIN, "metadata: out of memory");
    else
        j->rc = avatar_store(&t->ctx, &j->r, 0, j->row, &j->outputs, &j->err);
    j->duration = mono_ms() - j->t0;
    atomic_store(&w->s->jobs[j->k].finishing, 1);
}

static void *job_thread(void *arg)
{
    thread_arg *t = arg;
    job *j;
    while ((j = pool_next(&t->w->p)) != NULL) {
        run_one(t, j);
        pool_finished(&t->w->p, j);
    }
    avatar_free(&t->ctx);
    storage_close(&t->store);
    free(t);
    return NULL;
}

static void pool_start(wk *w)
{
    pool *p = &w->p;
    /* Rendering is all CPU: more threads at it than cores only adds
     * memory (each holds an image and an encoder) and switches. */
    sem_init(&w->render_gate, 0, (unsigned)config_cpus());
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, JOB_STACK);
    /* job threads take no signals: SIGTERM is the dispatcher's */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < w->conc; i++) {
        aq_err e = {0};
        thread_arg *t = calloc(1, sizeof *t);
        if (!t || storage_open_more(&t->store, w->c, &e) != 0) {
            log_error("worker cannot start a job thread", "worker", w->id,
                      "error", t ? e.msg : "out of memory");
            exit(1);
        }
        t->w = w;
        avatar_init(&t->ctx, &t->store, NULL, w->c->storage.prefix, w->id);
        t->ctx.gate = &w->render_gate;
        if (pthread_create(&p->th[i], &at, job_thread, t) != 0) {
            log_error("worker cannot start a job thread", "worker", w->id);
            exit(1);
        }
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
}

static void pool_stop(wk *w)
{
    pool *p = &w->p;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->th[i], NULL);
    sem_destroy(&w->render_gate);
    pngenc_release(); /* the encoder's cached blocks */
}

static void pool_give(pool *p, job *j)
{
    pthread_mutex_lock(&p->mu);
    j->next = NULL;
    if (p->work_tail)
        p->work_tail->next = j;
    else
        p->work = j;
    p->work_tail = j;
    atomic_fetch_add(&p->nwork, 1);
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits up to ms for finished jobs and takes them all (NULL when none). */
static job *pool_collect(pool *p, int ms)
{
    pthread_mutex_lock(&p->mu);
    if (!p->done && ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&p->done_cv, &p->mu, &ts);
    }
    job *d = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    return d;
}

/* ---- jobs in hand ---- */

static job *job_new(wk *w, char *doc, size_t len)
{
    job *j = calloc(1, sizeof *j);
    if (!j) {
        free(doc);
        return NULL;
    }
    j->doc = doc;
    j->len = len;
    j->k = w->freek[--w->nfree];
    w->held[j->k] = j;
    w->inflight++;
    return j;
}

static void job_free(wk *w, job *j)
{
    slots_job_end(w->s, j->k);
    w->held[j->k] = NULL;
    w->freek[w->nfree++] = j->k;
    w->inflight--;
    free(j->doc);
    free(j->outputs);
    free(j->row);
    free(j->made);
    free(j);
}

/* Appends j to the list (*head, *tail). */
static void list_add(job **head, job **tail, job *j)
{
    j->next = NULL;
    if (!*head)
        *head = j;
    else
        (*tail)->next = j;
    *tail = j;
}

/* Puts the list l (last element lt) back in front of (*head, *tail): a
 * call that failed returns what it had taken off. */
static void list_put_back(job **head, job **tail, job *l, job *lt)
{
    if (!l)
        return;
    lt->next = *head;
    if (!*head)
        *tail = lt;
    *head = l;
}

/* Appends j to the pending outcomes: recorded in the order decided, so the
 * dead letters of documents taken together land in NS:dead in queue order. */
static void pend(wk *w, job *j)
{
    if (!w->pending)
        w->pending_since = mono_ms();
    list_add(&w->pending, &w->pending_tail, j);
    w->npending++;
}

/* Decides the outcome of a finished (or refused) job with fate.c. */
static void decide(wk *w, job *j)
{
    queue_outcome *o = &j->out;
    memset(o, 0, sizeof *o);
    o->doc = j->doc;
    o->len = j->len;
    o->id = j->r.id;
    /* callbacks and batches: only for a document that parsed */
    if (!j->refused) {
        o->callback = j->r.callback_url[0] ? j->r.callback_url : w->c->callbacks.url;
        o->batch = j->r.batch;
    }
    if (j->rc == 0) {
        o->kind = QUEUE_DONE;
        o->outputs = j->outputs ? j->outputs : "{}";
        o->duration_ms = j->duration;
        queue_hist_add(&w->hist, j->duration);
        return;
    }
    o->error = j->err.msg;
    fate f = fate_decide(w->c, j->r.max_attempts, j->attempts,
                         j->rc == AQ_EAGAIN ? FATE_TRANSIENT : FATE_PERMANENT, now_ms());
    if (f.retry) {
        o->kind = QUEUE_RETRY;
        o->due_ms = f.due_ms;
        o->retry_doc = j->made = job_to_json(&j->r);
    } else {
        o->kind = QUEUE_DEAD;
        o->dead_doc = j->made = j->refused
                                    ? queue_dead_doc_refused(j->doc, j->len, j->err.msg, now_ms())
                                    : queue_dead_doc(j->doc, j->len, j->err.msg, now_ms(),
                                                     j->attempts);
    }
    if (!j->made) { /* out of memory: leave it in the processing list */
        o->kind = QUEUE_DEAD;
        o->dead_doc = "{}";
    }
}

/* Records the metadata rows of the finished generate jobs in one group,
 * then decides every finished job. */
static void finish_batch(wk *w, job *fin)
{
    size_t n = 0;
    for (job *j = fin; j; j = j->next)
        n += j->rc == 0 && j->row;
    const meta_row **rows = n ? calloc(n, sizeof *rows) : NULL;
    int *rcs = n ? calloc(n, sizeof *rcs) : NULL;
    aq_err *errs = n ? calloc(n, sizeof *errs) : NULL;
    size_t i = 0;
    for (job *j = fin; rows && rcs && errs && j; j = j->next)
        if (j->rc == 0 && j->row) {
            j->row->attempts = j->attempts;
            rows[i++] = j->row;
        }
    if (n && rows && rcs && errs)
        meta_upsert_many(&w->db, rows, n, rcs, errs);
    i = 0;
    for (job *j = fin, *next; j; j = next) {
        next = j->next;
        if (j->rc == 0 && j->row) {
            if (!rows || !rcs || !errs)
                j->rc = err_set(&j->err, AQ_EAGAIN, "metadata: out of memory");
            else if ((j->rc = rcs[i]) != 0) {
                j->err = errs[i];
                err_prefix(&j->err, "metadata %s: ", j->r.id);
            }
            i++;
        }
        decide(w, j);
        pend(w, j);
    }
    free(rows);
    free(rcs);
    free(errs);
}

/* ---- taking and starting ---- */

/* A refused document: dead at once, with the parser's message. The id it
 * carries may be another, valid job's: its hash turns dead only while it is
 * the queued hash of this very document (QUEUE_REFUSED). */
static void refuse(wk *w, job *j)
{
    j->refused = true;
    j->attempts = 1;
    j->refused = true;
    slots_job_begin(w->s, j->k, j->r.id, 1, mono_ms());
    atomic_store(&w->s->jobs[j->k].finishing, 1);
    j->rc = AQ_EPERM;
    j->r.max_attempts = 1;
    decide(w, j);
    if (j->out.kind == QUEUE_DEAD)
        j->out.kind = QUEUE_REFUSED;
    pend(w, j);
}

/* Runs a delete job on the dispatcher (it needs the database). */
static void run_delete(wk *w, job *j)
{
    j->t0 = mono_ms();
    slots_job_run(w->s, j->k, j->t0);
    j->rc = avatar_delete(&w->ctx, &j->r, &j->err);
    j->duration = mono_ms() - j->t0;
    decide(w, j);
    pend(w, j);
}

/* A document whose job was cancelled before it started: it only leaves
 * the processing list (never run, nothing recorded). */
static void drop(wk *w, job *j)
{
    memset(&j->out, 0, sizeof j->out);
    j->out.doc = j->doc;
    j->out.len = j->len;
    j->out.id = j->r.id;
    j->out.kind = QUEUE_DROP;
    atomic_store(&w->s->jobs[j->k].finishing, 1);
    pend(w, j);
}

/* Takes over n documents just moved into our processing list (from[i]: the
 * take queue each came from, NULL: all from `src`): parses them; the valid
 * ones wait on the unstarted list for the next call to mark them running
 * (started), a refused one is recorded dead by it. */
static void admit(wk *w, char **docs, size_t *lens, const int *from, int src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        job *j = job_new(w, docs[i], lens[i]);
        docs[i] = NULL;
        if (!j)
            continue; /* out of memory: the doc stays in processing for recovery */
        if (job_parse(j->doc, j->len, &w->lim, &j->r, &j->err) != 0) {
            refuse(w, j);
            continue;
        }
        /* in the slot before anyone can see it running: the job timeout
         * covers it even if this process wedges before its start lands */
        slots_job_begin(w->s, j->k, j->r.id, 1, mono_ms());
        j->queue = queue_take_name(w->q, from ? from[i] : src);
        list_add(&w->unstarted, &w->unstarted_tail, j);
        w->nunstarted++;
    }
}

/* The jobs of the list l, just marked running by a call (items[i] is the
 * i-th job's start), go to the threads; one cancelled before it started
 * (attempts 0) never runs: it only leaves the processing list. */
static void started(wk *w, job *l, const queue_start_item *items)
{
    size_t i = 0;
    for (job *j = l, *next; j; j = next, i++) {
        next = j->next;
        if (items[i].attempts == 0) {
            drop(w, j);
            continue;
        }
        j->attempts = items[i].attempts;
        atomic_store(&w->s->jobs[j->k].attempts, j->attempts);
        if (j->r.type == JOB_DELETE)
            run_delete(w, j);
        else
            pool_give(&w->p, j);
    }
}

/* Records a document too large to hold as dead (its head, size and, when
 * it was streamed, SHA-256 are all that was seen). */
static void bury_big(wk *w, const queue_big *big)
{
    aq_err why = {0}, e = {0};
    job_check_len(big->size, &why);
    if (queue_bury_oversized(w->q, w->id, big, JOB_MAX_DOC, why.msg, &e) != 0)
        log_error("could not bury an oversized document; recovery will", "worker", w->id,
                  "error", e.msg);
    else
        log_info("job dead", "worker", w->id, "error", why.msg);
}

/* The blocking take of a process holding nothing, from take queue src.
 * BLMOVE waits on one list only: with several queues the process first
 * looks at all of them in one cycle (see engine) and then blocks on src
 * (the heaviest, or the first strict one) for TAKE_WAIT_MULTI_MS only, so
 * that work arriving on another queue waits at most that long. */
static void take_blocking(wk *w, int src)
{
    char *doc = NULL;
    size_t len = 0;
    queue_big big;
    aq_err e = {0};
    int wait = queue_take_count(w->q) > 1 ? TAKE_WAIT_MULTI_MS : 1000;
    int rc = queue_take_bounded_from(w->q, src, w->id, wait, JOB_MAX_DOC, &doc, &len, &big, &e);
    if (rc < 0) {
        if (rc == AQ_EAGAIN) {
            redis_state(w, rc, &e);
            w->doubt = true;
        } else { /* e.g. WRONGTYPE on the queue key: back off the same way */
            log_error("taking a job failed", "worker", w->id, "error", e.msg);
            outage_count(&w->redis);
        }
        nap(w, redis_delay(w), 1, true);
        return;
    }
    redis_state(w, 0, &e);
    if (rc == 0)
        return;
    /* The queue may hold more, but a process that was idle usually meets
     * an empty one: look again soon rather than at once, so a lone job's
     * outcome does not wait behind (and share the cores with) a take that
     * finds nothing; its own call takes next anyway. A burst waits at most
     * PROBE_MS for the process to take the rest. */
    w->next_poll = mono_ms() + PROBE_MS;
    if (doc)
        admit(w, &doc, &len, NULL, src, 1);
    else
        bury_big(w, &big);
}

/* After a lost reply: documents in our processing list that we do not hold
 * were moved by a call whose reply never came; take them over. Matching is
 * by bytes, each held job matching one copy. A call takes as many as the
 * outcomes it records free places for, and while it is being retried those
 * places are still taken: what does not fit now is looked for again at the
 * next call (doubt stays), never left in the list unseen. */
static void reconcile(wk *w)
{
    queue_taken t;
    aq_err e = {0};
    if (queue_processing(w->q, w->id, JOB_MAX_DOC, &t, &e) != 0)
        return;
    w->doubt = false;
    for (size_t i = 0; i < t.nbig; i++)
        bury_big(w, &t.big[i]);
    bool matched[SLOT_JOBS_MAX] = {false};
    size_t keep = 0;
    for (size_t i = 0; i < t.n; i++) {
        bool ours = false;
        for (int k = 0; k < SLOT_JOBS_MAX && !ours; k++) {
            const job *j = w->held[k];
            if (j && !matched[k] && j->len == t.len[i] && memcmp(j->doc, t.doc[i], j->len) == 0)
                ours = matched[k] = true;
        }
        if (!ours && w->inflight + (int)keep >= w->hold)
            w->doubt = true; /* no place yet */
        if (ours || w->doubt) {
            free(t.doc[i]);
            continue;
        }
        t.doc[keep] = t.doc[i];
        t.len[keep++] = t.len[i];
    }
    t.n = keep;
    if (keep) {
        char nb[24];
        log_warn("taking over jobs a lost reply moved to us", "worker", w->id,
                 "jobs", log_int(nb, (int64_t)keep));
        admit(w, t.doc, t.len, NULL, 0, keep); /* its queue unknown: the default */
    }
    queue_taken_free(&t);
}

/* ---- recording outcomes ---- */

typedef struct cycle_arg {
    job *fin, *fin_tail;   /* the outcomes it records (off w->pending) */
    int64_t fin_since;     /* their w->pending_since */
    queue_outcome *outs;
    size_t n;
    job *st, *st_tail;     /* the jobs it starts (off w->unstarted) */
    queue_start_item *starts;
    size_t nst;
    int want;
    queue_taken taken;
} cycle_arg;

static int op_cycle(wk *w, void *arg, aq_err *e)
{
    cycle_arg *a = arg;
    if (w->doubt && queue_ensure(w->q, e) == 0)
        reconcile(w); /* what it admits waits for the next call */
    return queue_cycle(w->q, w->id, a->outs, a->n, &w->hist, a->starts, a->nst, a->want,
                       JOB_MAX_DOC, &a->taken, e);
}

static void log_outcome(const wk *w, const job *j)
{
    char nb[24];
    if (j->out.kind == QUEUE_DROP)
        log_info("job was cancelled before it started; dropped", "worker", w->id, "id", j->r.id);
    else if (j->out.stale)
        log_info("job was taken back meanwhile; its holder records it", "worker", w->id,
                 "id", j->r.id);
    else if (j->out.kind == QUEUE_RETRY)
        log_info("job will be retried", "worker", w->id, "id", j->r.id,
                 "attempts", log_int(nb, j->attempts), "error", j->err.msg);
    else if (j->out.kind == QUEUE_DEAD || j->out.kind == QUEUE_REFUSED)
        log_info("job dead", "worker", w->id, "id", j->r.id,
                 "attempts", log_int(nb, j->attempts), "error", j->err.msg);
    else
        log_debug("job done", "worker", w->id, "id", j->r.id, "ms", log_int(nb, j->duration));
}

/* A job cancelled while it ran: its outcome was not recorded; what it
 * stored (files and metadata row, also those of an attempt that failed
 * midway) is deleted, as a delete job would. */
static void discard(wk *w, job *j)
{
    if (j->r.type != JOB_GENERATE || j->out.kind == QUEUE_DROP)
        return;
    aq_err e = {0};
    if (avatar_delete(&w->ctx, &j->r, &e) != 0)
        log_warn("job cancelled while it ran; could not delete its files", "worker", w->id,
                 "id", j->r.id, "error", e.msg);
    else
        log_info("job cancelled while it ran; result discarded, files deleted", "worker", w->id,
                 "id", j->r.id);
}

/* Takes the pending outcomes and the unstarted jobs off their lists into
 * a (the call's own: what reconcile or a refusal adds meanwhile waits for
 * the next call). Returns -1, lists untouched, when out of memory. */
static int cycle_load(wk *w, cycle_arg *a)
{
    a->outs = w->npending ? calloc(w->npending, sizeof *a->outs) : NULL;
    a->starts = w->nunstarted ? calloc((size_t)w->nunstarted, sizeof *a->starts) : NULL;
    if ((w->npending && !a->outs) || (w->nunstarted && !a->starts)) {
        free(a->outs);
        free(a->starts);
        return -1;
    }
    for (job *j = w->pending; j; j = j->next)
        a->outs[a->n++] = j->out;
    for (job *j = w->unstarted; j; j = j->next)
        a->starts[a->nst++] = (queue_start_item){.id = j->r.id, .created_at = j->r.created_at,
                                                 .queue = j->queue};
    a->fin = w->pending;
    a->fin_tail = w->pending_tail;
    a->fin_since = w->pending_since;
    a->st = w->unstarted;
    a->st_tail = w->unstarted_tail;
    w->pending = w->pending_tail = w->unstarted = w->unstarted_tail = NULL;
    w->npending = 0;
    w->nunstarted = 0;
    return 0;
}

/* A call that failed: its outcomes and starts go back in front of what
 * gathered meanwhile, for the next call. */
static void cycle_unload(wk *w, cycle_arg *a)
{
    if (a->fin)
        w->pending_since = a->fin_since; /* the oldest are in front again */
    list_put_back(&w->pending, &w->pending_tail, a->fin, a->fin_tail);
    list_put_back(&w->unstarted, &w->unstarted_tail, a->st, a->st_tail);
    w->npending += a->n;
    w->nunstarted += (int)a->nst;
    free(a->outs);
    free(a->starts);
}

/* The recorded outcomes of a: each job is logged, counted and freed. */
static void recorded(wk *w, cycle_arg *a)
{
    size_t i = 0;
    for (job *j = a->fin, *next; j; j = next) {
        next = j->next;
        j->out.stale = a->outs[i].stale;
        j->out.cancelled = a->outs[i++].cancelled;
        if (j->out.cancelled)
            discard(w, j);
        log_outcome(w, j);
        if (j->out.kind != QUEUE_DROP)
            atomic_fetch_add(j->out.kind == QUEUE_DONE ? &w->s->done : &w->s->failed, 1);
        job_free(w, j);
    }
}

/* One call: every pending outcome, the start of every unstarted job, plus
 * a take of up to want documents. */
static void cycle(wk *w, int want)
{
    cycle_arg a = {.want = want};
    if (cycle_load(w, &a) < 0)
        return;
    aq_err e = {0};
    int rc = redis_until_done(w, op_cycle, &a, &e);
    if (rc != 0) {
        if (rc != AQ_EAGAIN)
            log_error("could not record outcomes; the jobs stay in the processing list",
                      "worker", w->id, "error", e.msg);
        cycle_unload(w, &a);
        if (rc != AQ_EAGAIN)
            nap(w, redis_delay(w), 1, true);
        return;
    }
    memset(&w->hist, 0, sizeof w->hist);
    recorded(w, &a);
    started(w, a.st, a.starts);
    free(a.outs);
    free(a.starts);
    w->more = want > 0 && a.taken.n == (size_t)want;
    if (a.taken.n)
        admit(w, a.taken.doc, a.taken.len, a.taken.from, 0, a.taken.n);
    /* an oversized document is buried at once only when no outcome of a
     * document taken before it is still to be recorded: otherwise the next
     * cycle records those first and meets it again, so dead letters keep
     * queue order */
    if (a.taken.oversized) {
        w->more = true;
        if (w->npending == 0)
            take_blocking(w, a.taken.oversized_from);
    }
    queue_taken_free(&a.taken);
}

/* ---- the dispatcher ---- */

/* How many documents the next call may take: the pending outcomes it
 * records free their places before it takes. */
static int capacity(const wk *w)
{
    if (must_stop(w) || atomic_load(&w->s->quiet))
        return 0;
    return w->hold - w->inflight + (int)w->npending;
}

/* Jobs marked running and not finished: the threads' work in hand. */
static int running_left(const wk *w)
{
    return w->inflight - (int)w->npending - w->nunstarted;
}

/* Whether to make a call now rather than let more outcomes gather: when the
 * threads' work in hand is about to run out (half the threads' worth) while
 * outcomes wait or jobs wait to start, when a thread's worth of outcomes
 * waits, or when the oldest has waited LINGER_MS. */
static bool call_now(const wk *w)
{
    if ((w->npending || w->nunstarted) && running_left(w) <= w->conc / 2)
        return true;
    if (w->npending >= (size_t)w->conc)
        return true;
    return w->npending && mono_ms() - w->pending_since >= LINGER_MS;
}

/* How long the dispatcher may wait for a finished job before its next look
 * at the queue is due (1 to POLL_MS ms). */
static int poll_wait(const wk *w)
{
    int64_t left = w->next_poll - mono_ms();
    return left < 1 ? 1 : left > POLL_MS ? POLL_MS : (int)left;
}

static void engine(wk *w)
{
    for (;;) {
        job *fin = pool_collect(&w->p, 0);
        if (fin)
            finish_batch(w, fin);
        int cap = capacity(w);
        bool poll_due = cap > 0 && w->inflight > 0 && mono_ms() >= w->next_poll;
        bool want_take = cap > 0 && (w->more || poll_due);
        if (call_now(w) || (!w->npending && want_take)) {
            cycle(w, cap);
            if (poll_due)
                w->next_poll = mono_ms() + POLL_MS;
            if (g_terms >= 2 && w->npending)
                return; /* told to give up: the rest stays in the processing list */
            continue;
        }
        if (w->inflight == 0) {
            if (must_stop(w))
                return;
            if (cap == 0) { /* quiet */
                nap(w, 200, 1, true);
                continue;
            }
            aq_err re = {0};
            if (!w->registered && register_self(w, &re) < 0) {
                redis_state(w, AQ_EAGAIN, &re);
                nap(w, redis_delay(w), 1, true);
                continue;
            }
            if (w->doubt && queue_ensure(w->q, &re) == 0)
                reconcile(w);
            if (w->inflight > 0)
                continue; /* reconcile took jobs over */
            if (queue_take_count(w->q) > 1) { /* every queue first, without waiting */
                cycle(w, cap);
                if (w->inflight > 0)
                    continue;
            }
            take_blocking(w, queue_take_first(w->q));
            continue;
        }
        fin = pool_collect(&w->p, w->npending ? 1 : cap > 0 ? poll_wait(w) : 50);
        if (fin)
            finish_batch(w, fin);
        if (g_terms >= 2)
            return;
    }
}

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

/* [worker] queues onto the handle (validated by the config already). */
static void set_queues(wk *w)
{
    const config_queues *cq = &w->c->worker.queues;
    const char *names[CONFIG_QUEUES_MAX];
    for (int i = 0; i < cq->n; i++)
        names[i] = cq->name[i];
    aq_err e = {0};
    if (queue_set_takes(w->q, names, cq->weight, cq->n, cq->strict, &e) != 0) {
        log_error("worker cannot start", "worker", w->id, "error", e.msg);
        exit(1);
    }
}

static void open_redis(wk *w)
{
    while (!w->q && !must_stop(w)) {
        aq_err e = {0};
        w->q = queue_open(w->c, &e);
        if (w->q) {
            redis_state(w, 0, &e);
            set_queues(w);
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

_Noreturn void worker_run(const aq_config *c, slot *s, int parent)
{
    static wk w; /* static: large, and alive for the whole process */
    memset(&w, 0, sizeof w);
    w.c = c;
    w.s = s;
    w.parent = parent;
    w.conc = c->worker.concurrency > 0 ? c->worker.concurrency : 1;
    w.hold = 2 * w.conc < SLOT_JOBS_MAX ? 2 * w.conc : SLOT_JOBS_MAX;
    if (w.conc > w.hold)
        w.conc = w.hold;
    for (int k = w.hold - 1; k >= 0; k--)
        w.freek[w.nfree++] = k;
    /* glibc gives every thread that allocates an arena of its own: with a
     * dozen job threads that is megabytes of RSS for buffers one arena
     * serves as well (the threads spend their time rendering and waiting,
     * not in malloc; bench e2e 17.9k jobs/s with one arena, 18.4k with
     * two). Blocks over 128 KiB (a 512 px render buffer, an encoder's
     * scratch) are mapped and given back on free, rather than the
     * threshold rising to them and the heap keeping their peak. */
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    setup_signals();
    if (getppid() != parent)
        g_terms = 1; /* orphaned before PDEATHSIG was armed */
    log_setup(c->log.level, c->log.format, "worker");
    worker_id(w.id, sizeof w.id, (long)getpid(), atomic_load(&s->nonce));
    w.redis.worker = w.id;
#ifdef AQ_TEST_HOOKS
    w.hang_seed = getenv("AVATARQ_TEST_HANG_SEED");
#endif
    atomic_store(&s->started_at, now_ms());

    open_stores(&w);
    pool_start(&w);
    open_redis(&w);
    if (w.q) {
        atomic_store(&s->ready, 1);
        log_debug("worker up", "worker", w.id);
        w.cb = cb_start(c, w.id);
        engine(&w);
        atomic_store(&s->state, SLOT_STOPPING);
        aq_err e = {0};
        if (w.inflight == 0 && queue_worker_gone(w.q, w.id, &e) != 0)
            log_warn("could not deregister", "worker", w.id, "error", e.msg);
        queue_close(w.q);
    }
    if (w.inflight > 0) /* given up with jobs in hand: they stay in the
                         * processing list; do not wait for their threads */
        _exit(0);
    cb_stop(w.cb);
    pool_stop(&w);
    avatar_free(&w.ctx);
    meta_close(&w.db);
    storage_close(&w.store);
    log_debug("worker stopped", "worker", w.id);
    exit(0);
}
