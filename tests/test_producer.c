/* What producers expect from the queue (issue 14), against a real
 * redis-server and the real bin/avatarq-worker: deduplication at enqueue
 * (a running job's hash is never reset), max_queue_length, cancellation of
 * queued / scheduled / running jobs, scheduled jobs promoted once, weighted
 * and strict queues without starvation.
 *
 * The queue-level cases drive lib/queue as a worker would (queue_cycle,
 * queue_start_many); the end-to-end cases run the supervisor through
 * worker_harness.h, which stops everything it started even when a check
 * fails. */
#include <check.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avatarq.h"
#include "config.h"
#include "queue.h"
#include "retry.h"
#include "support.h"
#include "support_queue.h"
#include "support_worker.h"

static wh H;

static void setup(void)
{
    wh_setup(&H, false, NULL);
}

static void teardown(void)
{
    wh_teardown(&H);
}

/* ---- helpers ---- */

/* A queue handle on H's Redis with extra INI text (sections and keys). */
static queue *open_q(const char *extra, aq_config *c)
{
    char text[2048];
    snprintf(text, sizeof text, "[redis]\nurl = %s\nnamespace = " WH_NS "\n%s", H.r.url,
             extra ? extra : "");
    aq_err e = {0};
    ck_assert_msg(config_load_string(c, text, "test.ini", &e) == 0, "config: %s", e.msg);
    queue *q = queue_open(c, &e);
    ck_assert_msg(q != NULL, "queue_open: %s", e.msg);
    return q;
}

static char *doc_of(const char *id)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 256, "{\"v\":1,\"id\":\"%s\",\"seed\":\"%s\",\"sizes\":[32]}", id, id);
    return b;
}

/* queue_enqueue_ex of id's document; returns the status. */
static queue_enq_status enq(queue *q, const char *qname, const char *id, int64_t run_at,
                            char state[16])
{
    aq_err e = {0};
    const char *d = doc_of(id);
    queue_enq j = {.qname = qname, .id = id, .doc = d, .len = strlen(d), .run_at = run_at};
    ck_assert_msg(queue_enqueue_ex(q, &j, &e) == 0, "enqueue: %s", e.msg);
    if (state)
        snprintf(state, 16, "%s", j.state);
    return j.status;
}

static const char *state_of(const char *id)
{
    static char out[64];
    snprintf(out, sizeof out, "%s", wh_str(&H, "HGET " WH_NS ":job:%s state", id));
    return out;
}

/* What a finished job stored, as the worker records it. */
#define OUTPUTS "{\"32\":\"avatars/x/32.png\"}"

/* What a worker does with its take (sq_take_start), which must succeed. */
static void take_start(queue *q, const char *w, int want, queue_taken *t, int *attempts)
{
    aq_err e = {0};
    ck_assert_msg(sq_take_start(q, w, want, t, attempts, &e) == 0, "take+start: %s", e.msg);
}

/* ---- deduplication ---- */

/* An id queued, running or retrying is left alone by a second enqueue: no
 * second document, the hash (attempts, worker) untouched; once done, the
 * same id is a new job again. */
START_TEST(t_dedup_never_resets_a_job_in_flight)
{
    aq_config c;
    queue *q = open_q(NULL, &c);
    char st[16];
    ck_assert_int_eq(enq(q, NULL, "j1", 0, st), QUEUE_ENQ_DONE);
    ck_assert_str_eq(st, "queued");
    ck_assert_int_eq(enq(q, NULL, "j1", 0, st), QUEUE_ENQ_EXISTS);
    ck_assert_str_eq(st, "queued");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 1);

    queue_taken t;
    int att[64];
    take_start(q, "h:1", 4, &t, att);
    ck_assert_uint_eq(t.n, 1);
    ck_assert_int_eq(att[0], 1);
    ck_assert_int_eq(enq(q, NULL, "j1", 0, st), QUEUE_ENQ_EXISTS);
    ck_assert_str_eq(st, "running");
    ck_assert_str_eq(state_of("j1"), "running");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:j1 attempts"), 1);
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:j1 worker"), "h:1");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats enqueued"), 1);

    /* retrying: still the same job */
    queue_outcome o = {.doc = t.doc[0], .len = t.len[0], .id = "j1", .kind = QUEUE_RETRY,
                       .error = "boom", .retry_doc = doc_of("j1"), .due_ms = now_ms() + 60000};
    aq_err e = {0};
    ck_assert_msg(sq_finish(q, "h:1", &o, &e) == 0, "retry: %s", e.msg);
    ck_assert_int_eq(enq(q, NULL, "j1", 0, st), QUEUE_ENQ_EXISTS);
    ck_assert_str_eq(st, "retrying");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":job:j1 attempts"), 1);
    queue_taken_free(&t);

    /* a done job's id is a new job */
    ck_assert_int_eq(enq(q, NULL, "j2", 0, st), QUEUE_ENQ_DONE);
    take_start(q, "h:1", 4, &t, att);
    ck_assert_msg(sq_done(q, "h:1", t.doc[0], t.len[0], "j2", OUTPUTS, 3, NULL, &e) == 0,
                  "done: %s", e.msg);
    ck_assert_str_eq(state_of("j2"), "done");
    ck_assert_int_eq(enq(q, NULL, "j2", 0, st), QUEUE_ENQ_DONE);
    ck_assert_str_eq(state_of("j2"), "queued");
    queue_taken_free(&t);
    queue_close(q);
}
END_TEST

/* Through the API: derived ids make a double-posted request one job, and
 * avatarq_enqueue_ex says so. */
START_TEST(t_dedup_api_derived_id)
{
    aq_config c;
    queue *q = open_q(NULL, &c);
    queue_close(q);
    char err[256];
    avatarq *a = avatarq_open_config(&c, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    avatarq_request r;
    avatarq_request_init(&r);
    r.seed = "signup-form";
    avatarq_enqueued o1, o2;
    ck_assert_int_eq(avatarq_enqueue_ex(a, &r, &o1, err, sizeof err), 0);
    ck_assert_str_eq(o1.status, "enqueued");
    ck_assert_int_eq(avatarq_enqueue_ex(a, &r, &o2, err, sizeof err), 0);
    ck_assert_str_eq(o2.status, "exists");
    ck_assert_str_eq(o2.state, "queued");
    ck_assert_str_eq(o1.id, o2.id);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 1);
    avatarq_close(a);
}
END_TEST

/* ---- max_queue_length ---- */

START_TEST(t_max_queue_length_refuses)
{
    aq_config c;
    queue *q = open_q("max_queue_length = 3\n", &c);
    char st[16];
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        ck_assert_int_eq(enq(q, NULL, id, 0, st), QUEUE_ENQ_DONE);
    }
    ck_assert_int_eq(enq(q, NULL, "m3", 0, st), QUEUE_ENQ_FULL);
    ck_assert_str_eq(state_of("m3"), "");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 3);
    /* another queue has its own room */
    ck_assert_int_eq(enq(q, "other", "m4", 0, st), QUEUE_ENQ_DONE);
    /* the old entry point fails with a clear message */
    aq_err e = {0};
    const char *d = doc_of("m5");
    ck_assert_int_eq(queue_enqueue(q, NULL, "m5", d, strlen(d), 0, &e), AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "max_queue_length 3"), "%s", e.msg);
    queue_close(q);

    char err[256];
    avatarq *a = avatarq_open_config(&c, err, sizeof err);
    ck_assert(a);
    avatarq_request r;
    avatarq_request_init(&r);
    r.seed = "full";
    char id[65];
    ck_assert_int_eq(avatarq_enqueue(a, &r, id, err, sizeof err), AVATARQ_EFULL);
    ck_assert_msg(strstr(err, "is full"), "%s", err);
    /* a batch keeps what was refused */
    avatarq_batch *b = avatarq_batch_new(a, "other");
    for (int i = 0; i < 4; i++) {
        char seed[16];
        snprintf(seed, sizeof seed, "b%d", i);
        r.seed = seed;
        ck_assert_int_eq(avatarq_batch_add(b, &r, id, err, sizeof err), 0);
    }
    ck_assert_int_eq(avatarq_batch_flush(b, err, sizeof err), AVATARQ_EFULL);
    ck_assert_uint_eq(avatarq_batch_pending(b), 2); /* other held 1, room for 2 */
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:other"), 3);
    avatarq_batch_free(b);
    avatarq_close(a);
}
END_TEST

/* ---- cancellation ---- */

/* A queued job: cancelled at once, its document dropped by the worker's
 * start without running (attempts 0, no `started`), the hash then expires
 * like any final one. */
START_TEST(t_cancel_queued)
{
    aq_config c;
    queue *q = open_q(NULL, &c);
    enq(q, NULL, "c1", 0, NULL);
    enq(q, NULL, "c2", 0, NULL);
    aq_err e = {0};
    char before[16];
    ck_assert_int_eq(queue_cancel(q, "c1", before, &e), 0);
    ck_assert_str_eq(before, "queued");
    ck_assert_str_eq(state_of("c1"), "cancelled");
    ck_assert_int_eq(queue_cancel(q, "c1", before, &e), 1); /* already final */
    ck_assert_str_eq(before, "cancelled");
    ck_assert_int_eq(queue_cancel(q, "nope", before, &e), AQ_ENOTFOUND);

    queue_taken t;
    int att[64];
    take_start(q, "h:1", 4, &t, att);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_int_eq(att[0], 0); /* c1: cancelled, drop it */
    ck_assert_int_eq(att[1], 1);
    ck_assert_msg(sq_drop(q, "h:1", t.doc[0], "c1", &e) == 0, "drop: %s", e.msg);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":processing:h:1"), 1);
    ck_assert_str_eq(state_of("c1"), "cancelled");
    ck_assert_int_gt(wh_int(&H, "TTL " WH_NS ":job:c1"), 0);
    ck_assert_int_eq(wh_int(&H, "HEXISTS " WH_NS ":job:c1 parked"), 0);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats started"), 1);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats cancelled"), 1);
    queue_taken_free(&t);
    queue_close(q);
}
END_TEST

/* A scheduled job: cancelled at once, dropped by the promotion. */
START_TEST(t_cancel_scheduled)
{
    aq_config c;
    queue *q = open_q(NULL, &c);
    int64_t at = now_ms() + 200;
    char st[16];
    ck_assert_int_eq(enq(q, NULL, "s1", at, st), QUEUE_ENQ_DONE);
    ck_assert_str_eq(st, "scheduled");
    aq_err e = {0};
    ck_assert_int_eq(queue_cancel(q, "s1", NULL, &e), 0);
    int moved = -1;
    ck_assert(queue_promote_due(q, at + 1, 100, &moved, &e) == 0);
    ck_assert_int_eq(moved, 0);
    ck_assert_int_eq(wh_int(&H, "ZCARD " WH_NS ":delayed"), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_str_eq(state_of("s1"), "cancelled");
    queue_close(q);
}
END_TEST

/* A running job: cancelled at once; its outcome is discarded (the cycle
 * says `cancelled`), whatever it was. Enqueueing a cancelled id whose
 * document still waits takes the cancellation back. */
START_TEST(t_cancel_running_and_revive)
{
    aq_config c;
    queue *q = open_q(NULL, &c);
    enq(q, NULL, "r1", 0, NULL);
    queue_taken t;
    int att[64];
    take_start(q, "h:1", 4, &t, att);
    aq_err e = {0};
    char before[16];
    ck_assert_int_eq(queue_cancel(q, "r1", before, &e), 0);
    ck_assert_str_eq(before, "running");
    queue_outcome o = {.doc = t.doc[0], .len = t.len[0], .id = "r1", .kind = QUEUE_DONE,
                       .outputs = OUTPUTS, .duration_ms = 3};
    ck_assert_msg(sq_finish(q, "h:1", &o, &e) == 0, "done: %s", e.msg);
    ck_assert(o.cancelled);
    ck_assert(!o.stale);
    ck_assert_str_eq(state_of("r1"), "cancelled");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 0);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":cancelled"), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":processing:h:1"), 0);
    queue_taken_free(&t);

    /* cancelled and re-enqueued before a worker saw it: revived, one doc */
    char st[16];
    enq(q, NULL, "r2", 0, NULL);
    ck_assert_int_eq(queue_cancel(q, "r2", NULL, &e), 0);
    ck_assert_int_eq(enq(q, NULL, "r2", 0, st), QUEUE_ENQ_REVIVED);
    ck_assert_str_eq(st, "queued");
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 1);
    take_start(q, "h:1", 4, &t, att);
    ck_assert_uint_eq(t.n, 1);
    ck_assert_int_eq(att[0], 1);
    queue_taken_free(&t);
    /* after the drop, the id is a fresh job */
    ck_assert_int_eq(enq(q, NULL, "r1", 0, st), QUEUE_ENQ_DONE);
    ck_assert_str_eq(st, "queued");
    queue_close(q);
}
END_TEST

/* ---- scheduled jobs ---- */

/* run_at in the future: NS:delayed, state scheduled; promoted exactly once
 * by many concurrent promoters, not before its time. */
START_TEST(t_scheduled_promoted_once)
{
    aq_config c;
    queue *q = open_q(NULL, &c);
    int64_t at = now_ms() + 60000;
    char st[16];
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        ck_assert_int_eq(enq(q, NULL, id, at, st), QUEUE_ENQ_DONE);
    }
    ck_assert_str_eq(st, "scheduled");
    ck_assert_int_eq(wh_int(&H, "ZCARD " WH_NS ":delayed"), 50);
    ck_assert_int_eq(enq(q, NULL, "p0", at, st), QUEUE_ENQ_EXISTS);
    aq_err e = {0};
    int moved = -1;
    int64_t next = 0;
    ck_assert(queue_promote_due_next(q, at - 1, 1000, &moved, &next, &e) == 0);
    ck_assert_int_eq(moved, 0);
    ck_assert_int_eq(next, at);
    /* four processes promote at once */
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            queue *qq = queue_open(&c, &e);
            int total = 0;
            for (int i = 0; qq && i < 20; i++) {
                int m = 0;
                queue_promote_due(qq, at, 3, &m, &e);
                total += m;
            }
            queue_close(qq);
            _exit(total);
        }
    }
    int sum = 0;
    for (int k = 0; k < 4; k++) {
        int ws;
        waitpid(kids[k], &ws, 0);
        sum += WEXITSTATUS(ws);
    }
    ck_assert_int_eq(sum, 50);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 50);
    ck_assert_str_eq(state_of("p7"), "queued");
    queue_close(q);
}
END_TEST

/* End to end: a job with delay_ms runs after its time, not before, and a
 * job with run_at in the past runs at once. The supervisor looks at
 * NS:delayed every 50 ms (the lateness is printed, never asserted). */
START_TEST(t_scheduled_end_to_end)
{
    wh_write_config(&H, "processes = 1\nconcurrency = 2\n", NULL);
    wh_start(&H, NULL);
    aq_config c;
    queue *q = open_q(NULL, &c);
    queue_close(q);
    char err[256];
    avatarq *a = avatarq_open_config(&c, err, sizeof err);
    ck_assert(a);
    avatarq_request r;
    avatarq_request_init(&r);
    int sizes[] = {32};
    r.sizes = sizes;
    r.nsizes = 1;
    r.seed = "later";
    r.delay_ms = 700;
    avatarq_enqueued o;
    int64_t t0 = now_ms();
    ck_assert_msg(avatarq_enqueue_ex(a, &r, &o, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(o.state, "scheduled");
    r.seed = "past";
    r.delay_ms = 0;
    r.run_at = t0 - 1000;
    avatarq_enqueued p;
    ck_assert(avatarq_enqueue_ex(a, &r, &p, err, sizeof err) == 0);
    ck_assert_str_eq(p.state, "queued");
    avatarq_status st;
    ck_assert_int_eq(avatarq_wait(a, o.id, 30000, &st, err, sizeof err), 0);
    ck_assert_str_eq(st.state, "done");
    ck_assert_int_ge(st.started_at, t0 + 700);
    fprintf(stderr, "scheduled job started %lld ms after its time\n",
            (long long)(st.started_at - (t0 + 700)));
    avatarq_status_free(&st);
    ck_assert_int_eq(avatarq_wait(a, p.id, 30000, &st, err, sizeof err), 0);
    ck_assert_str_eq(st.state, "done");
    avatarq_status_free(&st);
    avatarq_close(a);
    ck_assert_int_eq(wh_stop(&H, SIGTERM, 30000) != -1, 1);
}
END_TEST

/* ---- several queues ---- */

/* Weighted 3:1 with both queues full: every call's take follows the weights
 * (6 + 2 of 8); strict: always the first queue while it has work; an empty
 * preferred queue falls through. */
START_TEST(t_weighted_and_strict_take)
{
    aq_config c;
    queue *q = open_q(NULL, &c);
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        enq(q, "signup", id, 0, NULL);
        snprintf(id, sizeof id, "b%d", i);
        enq(q, "bulk", id, 0, NULL);
    }
    const char *names[] = {"signup", "bulk"};
    int w[] = {3, 1};
    aq_err e = {0};
    ck_assert(queue_set_takes(q, names, w, 2, false, &e) == 0);
    queue_taken t;
    int att[64];
    take_start(q, "h:1", 8, &t, att);
    ck_assert_uint_eq(t.n, 8);
    int from_signup = 0;
    for (size_t i = 0; i < t.n; i++)
        from_signup += strcmp(queue_take_name(q, t.from[i]), "signup") == 0;
    ck_assert_int_eq(from_signup, 6);
    /* the job hash names the queue it came from */
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:b0 queue"), "bulk");
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:s0 queue"), "signup");
    queue_taken_free(&t);

    ck_assert(queue_set_takes(q, names, NULL, 2, true, &e) == 0);
    take_start(q, "h:2", 8, &t, att);
    for (size_t i = 0; i < t.n; i++)
        ck_assert_str_eq(queue_take_name(q, t.from[i]), "signup");
    queue_taken_free(&t);
    /* signup has 40 - 6 - 8 = 26 left; take them all and fall through */
    take_start(q, "h:3", 30, &t, att);
    ck_assert_uint_eq(t.n, 30);
    ck_assert_str_eq(queue_take_name(q, t.from[29]), "bulk");
    queue_taken_free(&t);
    ck_assert_int_eq(queue_set_takes(q, (const char *[]){"bad:name"}, w, 1, false, &e), AQ_EPERM);
    queue_close(q);
}
END_TEST

/* No starvation, end to end: 1500 bulk jobs queued, then 20 signup jobs;
 * with `queues = signup:10,bulk:1` every signup job is done while at most a
 * bounded number of bulk jobs finish meanwhile (FIFO on one queue would
 * finish all 1500 first). */
START_TEST(t_weighted_no_starvation)
{
    wh_write_config(&H, "processes = 1\nconcurrency = 2\nqueues = signup:10,bulk:1\n", NULL);
    aq_config c;
    queue *q = open_q(NULL, &c);
    queue_enq *jobs = calloc(1500, sizeof *jobs);
    char (*ids)[16] = calloc(1500, sizeof *ids);
    char (*docs)[96] = calloc(1500, sizeof *docs);
    for (int i = 0; i < 1500; i++) {
        snprintf(ids[i], sizeof ids[i], "bulk%d", i);
        snprintf(docs[i], sizeof docs[i], "{\"id\":\"%s\",\"seed\":\"%s\",\"sizes\":[16]}",
                 ids[i], ids[i]);
        jobs[i] = (queue_enq){.qname = "bulk", .id = ids[i], .doc = docs[i],
                              .len = strlen(docs[i])};
    }
    aq_err e = {0};
    ck_assert(queue_enqueue_many_ex(q, jobs, 1500, &e) == 0);
    free(jobs);
    free(ids);
    free(docs);
    wh_start(&H, NULL);
    ck_assert(wh_wait_int(&H, 20, 30000, "HGET " WH_NS ":stats done"));
    /* the 20 go in one pipeline, so that no bulk job finishes between them */
    queue_enq sj[20];
    char sid[20][16], sdoc[20][96];
    for (int i = 0; i < 20; i++) {
        snprintf(sid[i], sizeof sid[i], "sign%d", i);
        snprintf(sdoc[i], sizeof sdoc[i], "{\"id\":\"%s\",\"seed\":\"%s\",\"sizes\":[16]}",
                 sid[i], sid[i]);
        sj[i] = (queue_enq){.qname = "signup", .id = sid[i], .doc = sdoc[i],
                            .len = strlen(sdoc[i])};
    }
    int64_t t_enq = now_ms();
    ck_assert(queue_enqueue_many_ex(q, sj, 20, &e) == 0);
    long long last = 0;
    for (int i = 0; i < 20; i++) {
        ck_assert_msg(wh_wait_state(&H, sid[i], "done", 60000), "%s not done", sid[i]);
        long long f = wh_int(&H, "HGET " WH_NS ":job:%s finished_at", sid[i]);
        last = f > last ? f : last;
    }
    /* bulk still has most of its jobs: the sign-ups did not wait for it */
    ck_assert_int_gt(wh_int(&H, "LLEN " WH_NS ":queue:bulk"), 500);
    /* bulk jobs that finished after the sign-ups were enqueued and no later
     * than the last of them (times from the job hashes, not from polling) */
    long long bulk_meanwhile = 0;
    for (int i = 0; i < 1500; i++) {
        long long f = wh_int(&H, "HGET " WH_NS ":job:bulk%d finished_at", i);
        bulk_meanwhile += f > t_enq && f <= last;
    }
    fprintf(stderr, "bulk jobs done while 20 signup jobs ran: %lld\n", bulk_meanwhile);
    /* 20 signup at 10:1 take about 2 bulk, plus what the process held
     * (2 x concurrency) and one call's worth of slack */
    ck_assert_int_le(bulk_meanwhile, 20);
    queue_close(q);
    ck_assert_int_eq(wh_stop(&H, SIGTERM, 30000) != -1, 1);
}
END_TEST

/* Cancelling a running job end to end: the job hangs (test hook) until its
 * job timeout kills the process; recovery then drops it instead of running
 * it again, and it stays cancelled with no file. (A cancelled job that
 * finishes has its outcome discarded: t_cancel_running_and_revive.) */
START_TEST(t_cancel_running_end_to_end)
{
    static char *env[] = {"AVATARQ_TEST_HANG_SEED=hang-here", NULL};
    wh_write_config(&H, "processes = 1\nconcurrency = 2\njob_timeout_s = 3\n", NULL);
    wh_start(&H, env);
    aq_config c;
    queue *q = open_q(NULL, &c);
    wh_push_str(&H, "{\"id\":\"cx\",\"seed\":\"hang-here\",\"sizes\":[32]}");
    ck_assert(wh_wait_state(&H, "cx", "running", 20000));
    aq_err e = {0};
    char before[16];
    ck_assert_int_eq(queue_cancel(q, "cx", before, &e), 0);
    ck_assert_str_eq(before, "running");
    /* the hang ends with a job timeout: the process is killed and the job
     * recovered; recovery drops it (cancelled) instead of running it again */
    for (int waited = 0; waited < 30000 && wh_int(&H, "SCARD " WH_NS ":cancelled") != 0;
         waited += 50)
        sup_sleep_ms(50);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":cancelled"), 0);
    ck_assert_str_eq(state_of("cx"), "cancelled");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 0);
    char path[1024];
    wh_png_path(&H, "cx", 32, path, sizeof path);
    ck_assert(!wh_exists(path));

    queue_close(q);
    ck_assert_int_eq(wh_stop(&H, SIGTERM, 30000) != -1, 1);
}
END_TEST

/* A job cancelled while it runs and then finishes: its result is not
 * recorded and the file and row it wrote are deleted. The job is held
 * between its store and its record by an exclusive lock on the SQLite file
 * (the dispatcher waits up to 5 s for it): the PNG exists, the job is
 * running; the test cancels, then lets the lock go. */
START_TEST(t_cancel_running_deletes_its_files)
{
    wh_write_config(&H, "processes = 1\nconcurrency = 2\n", NULL);
    wh_start(&H, NULL);
    ck_assert(wh_wait_int(&H, 1, 20000, "SCARD " WH_NS ":workers"));
    char flag[400], py[1200];
    snprintf(flag, sizeof flag, "%s/locked", H.dir);
    snprintf(py, sizeof py,
             "import sqlite3, time\n"
             "c = sqlite3.connect('%s', isolation_level=None)\n"
             "c.execute('BEGIN EXCLUSIVE')\n"
             "open('%s', 'w').close()\n"
             "time.sleep(600)\n", H.db, flag);
    char *argv[] = {"/usr/bin/python3", "-c", py, NULL};
    pid_t holder = sup_spawn(argv, NULL, NULL);
    wh_track(holder);
    for (int waited = 0; waited < 20000 && !wh_exists(flag); waited += 20)
        sup_sleep_ms(20);
    ck_assert_msg(wh_exists(flag), "lock holder did not start");
    wh_push_str(&H, "{\"id\":\"cz\",\"seed\":\"cz\",\"sizes\":[32]}");
    char path[1024];
    wh_png_path(&H, "cz", 32, path, sizeof path);
    for (int waited = 0; waited < 20000 && !wh_exists(path); waited += 5)
        sup_sleep_ms(5);
    ck_assert_msg(wh_exists(path), "the job did not store its file");
    aq_config c;
    queue *q = open_q(NULL, &c);
    aq_err e = {0};
    char before[16];
    ck_assert_int_eq(queue_cancel(q, "cz", before, &e), 0);
    ck_assert_str_eq(before, "running");
    sup_stop(holder, SIGTERM, 5000);
    wh_untrack(holder);
    for (int waited = 0; waited < 30000 && wh_exists(path); waited += 50)
        sup_sleep_ms(50);
    ck_assert_msg(!wh_exists(path), "the cancelled job's file was kept");
    /* the row goes right after the files */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"select count(*) from avatars where id = 'cz'\"",
             H.db);
    int rows = -1;
    for (int waited = 0; waited < 10000 && rows != 0; waited += 50) {
        buf out = BUF_INIT;
        if (sup_run(cmd, &out, false) == 0) {
            buf_append(&out, "", 1);
            rows = atoi((char *)out.data);
        }
        buf_free(&out);
        if (rows != 0)
            sup_sleep_ms(50);
    }
    ck_assert_msg(rows == 0, "the cancelled job's row was kept");
    ck_assert(wh_wait_int(&H, 0, 100, "SCARD " WH_NS ":cancelled"));
    for (int waited = 0; waited < 10000 && wh_int(&H, "SCARD " WH_NS ":cancelled") != 0;
         waited += 50)
        sup_sleep_ms(50);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":cancelled"), 0);
    ck_assert_str_eq(state_of("cz"), "cancelled");
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":processing:%s",
                            wh_str(&H, "SRANDMEMBER " WH_NS ":workers")), 0);
    queue_close(q);
    ck_assert_int_eq(wh_stop(&H, SIGTERM, 30000) != -1, 1);
}
END_TEST

/* ---- completion callbacks ---- */

/* A real HTTP receiver (python3 from Debian): checks X-Avatarq-Signature
 * over the raw body with the secret, logs "OK <attempt> <body>" per
 * accepted POST (or "BADSIG"), answers 500 to the first two POSTs of each
 * job on /fail2. */
static const char RECEIVER_PY[] =
    "import hashlib, hmac, http.server, json, sys\n"
    "port, log, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()\n"
    "seen = {}\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def do_POST(self):\n"
    "        body = self.rfile.read(int(self.headers['Content-Length']))\n"
    "        want = 'sha256=' + hmac.new(secret, body, hashlib.sha256).hexdigest()\n"
    "        ok = hmac.compare_digest(want, self.headers.get('X-Avatarq-Signature', ''))\n"
    "        key = self.path + json.loads(body).get('id', '')\n"
    "        seen[key] = seen.get(key, 0) + 1\n"
    "        code = 500 if self.path == '/fail2' and seen[key] <= 2 else (200 if ok else 401)\n"
    "        if code != 500:\n"
    "            with open(log, 'a') as f:\n"
    "                f.write('%s %s %s %s\\n' % ('OK' if ok else 'BADSIG', self.path,\n"
    "                        self.headers.get('X-Avatarq-Attempt'), body.decode()))\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Length', '0')\n"
    "        self.end_headers()\n"
    "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n";

typedef struct receiver {
    pid_t pid;
    int port;
    char log[400];
} receiver;

static void receiver_start(receiver *rv, const char *secret)
{
    char py[400], port[16];
    snprintf(py, sizeof py, "%s/receiver.py", H.dir);
    snprintf(rv->log, sizeof rv->log, "%s/received.log", H.dir);
    sup_write_file(py, RECEIVER_PY);
    sup_write_file(rv->log, "");
    rv->port = sup_free_port();
    snprintf(port, sizeof port, "%d", rv->port);
    char *argv[] = {"/usr/bin/python3", py, port, rv->log, (char *)secret, NULL};
    rv->pid = sup_spawn(argv, NULL, NULL);
    wh_track(rv->pid);
    ck_assert_msg(sup_wait_port(rv->port, 20000), "receiver did not start");
}

static void receiver_stop(receiver *rv)
{
    sup_stop(rv->pid, SIGTERM, 5000);
    wh_untrack(rv->pid);
}

/* The line of the receiver's log about job id on path, or NULL. */
static char *received(const receiver *rv, const char *path, const char *id)
{
    static char line[4096];
    FILE *f = fopen(rv->log, "r");
    char want[200];
    snprintf(want, sizeof want, "\"id\":\"%s\"", id);
    char *found = NULL;
    while (f && !found && fgets(line, sizeof line, f))
        if (strstr(line, want) && strncmp(line + 3, path, strlen(path)) == 0)
            found = line;
    if (f)
        fclose(f);
    return found;
}

static char *wait_received(const receiver *rv, const char *path, const char *id, int ms)
{
    for (int waited = 0; waited <= ms; waited += 50) {
        char *l = received(rv, path, id);
        if (l)
            return l;
        sup_sleep_ms(50);
    }
    return NULL;
}

/* A done job POSTs {id, state, outputs, error} signed with the secret to
 * [callbacks] url, or to its own callback_url; a receiver that fails twice
 * gets the third attempt; NS:done carries the same body when publish is on. */
START_TEST(t_callbacks_signed_retried_published)
{
    receiver rv;
    receiver_start(&rv, "s3cr3t");
    char sections[600];
    snprintf(sections, sizeof sections,
             "[callbacks]\nurl = http://127.0.0.1:%d/ok\nsecret = s3cr3t\n"
             "backoff_base_ms = 50\nbackoff_max_ms = 100\npublish = true\n",
             rv.port);
    wh_write_config(&H, "processes = 1\nconcurrency = 2\n", sections);
    wh_start(&H, NULL);
    redisContext *sub = redisConnect("127.0.0.1", H.r.port);
    ck_assert(sub && !sub->err);
    redisReply *r = redisCommand(sub, "SUBSCRIBE " WH_NS ":done");
    ck_assert(r);
    freeReplyObject(r);

    char doc[300];
    wh_push_str(&H, "{\"id\":\"cb1\",\"seed\":\"cb1\",\"sizes\":[32]}");
    snprintf(doc, sizeof doc,
             "{\"id\":\"cb2\",\"seed\":\"cb2\",\"sizes\":[32],"
             "\"callback_url\":\"http://127.0.0.1:%d/fail2\"}", rv.port);
    wh_push_str(&H, doc);

    char *l = wait_received(&rv, "/ok", "cb1", 30000);
    ck_assert_msg(l != NULL, "no callback for cb1");
    ck_assert_msg(strncmp(l, "OK /ok 1 ", 9) == 0, "%s", l);
    json_t *body = json_loads(l + 9, 0, NULL);
    ck_assert(json_is_object(body));
    ck_assert_str_eq(json_string_value(json_object_get(body, "state")), "done");
    ck_assert_str_eq(json_string_value(json_object_get(body, "error")), "");
    ck_assert(json_is_string(json_object_get(json_object_get(body, "outputs"), "32")));
    json_decref(body);

    l = wait_received(&rv, "/fail2", "cb2", 30000);
    ck_assert_msg(l != NULL, "no callback for cb2");
    ck_assert_msg(strncmp(l, "OK /fail2 3 ", 12) == 0, "%s", l);
    ck_assert_msg(received(&rv, "/ok", "cb2") == NULL, "cb2 went to the default url");
    ck_assert(wh_wait_int(&H, 2, 10000, "HGET " WH_NS ":stats callbacks_sent"));
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats callbacks_retried"), 2);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":callbacks"), 0);

    /* the same result on NS:done */
    int got = 0;
    struct timeval tv = {10, 0};
    redisSetTimeout(sub, tv);
    while (got < 2 && redisGetReply(sub, (void **)&r) == REDIS_OK) {
        ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
        json_t *m = json_loads(r->element[2]->str, 0, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(m, "state")), "done");
        got += json_is_string(json_object_get(m, "id"));
        json_decref(m);
        freeReplyObject(r);
    }
    ck_assert_int_eq(got, 2);
    redisFree(sub);
    ck_assert_int_eq(wh_stop(&H, SIGTERM, 30000) != -1, 1);
    receiver_stop(&rv);
}
END_TEST

/* A receiver that is down: the callback waits (retried with backoff) and
 * is delivered once it is back, while the worker's jobs go on. A bad
 * signature secret is refused by the receiver (401: retried, then kept in
 * NS:callbacks:dead). */
START_TEST(t_callbacks_receiver_down_then_up)
{
    receiver rv;
    rv.port = sup_free_port();
    char sections[600];
    snprintf(sections, sizeof sections,
             "[callbacks]\nurl = http://127.0.0.1:%d/ok\nsecret = s3cr3t\n"
             "backoff_base_ms = 100\nbackoff_max_ms = 300\nmax_attempts = 50\n", rv.port);
    wh_write_config(&H, "processes = 1\nconcurrency = 2\n", sections);
    wh_start(&H, NULL);
    wh_push_str(&H, "{\"id\":\"d1\",\"seed\":\"d1\",\"sizes\":[32]}");
    ck_assert(wh_wait_state(&H, "d1", "done", 30000));
    ck_assert(wh_wait_int(&H, 2, 20000, "HGET " WH_NS ":stats callbacks_retried"));
    /* other jobs are not held up */
    wh_push_str(&H, "{\"id\":\"d2\",\"seed\":\"d2\",\"sizes\":[32]}");
    ck_assert(wh_wait_state(&H, "d2", "done", 30000));
    /* the receiver comes up on that port */
    char py[400], port[16];
    snprintf(py, sizeof py, "%s/receiver.py", H.dir);
    snprintf(rv.log, sizeof rv.log, "%s/received.log", H.dir);
    sup_write_file(py, RECEIVER_PY);
    sup_write_file(rv.log, "");
    snprintf(port, sizeof port, "%d", rv.port);
    char *argv[] = {"/usr/bin/python3", py, port, rv.log, "s3cr3t", NULL};
    rv.pid = sup_spawn(argv, NULL, NULL);
    wh_track(rv.pid);
    ck_assert(wait_received(&rv, "/ok", "d1", 30000) != NULL);
    ck_assert(wait_received(&rv, "/ok", "d2", 30000) != NULL);
    ck_assert_int_eq(wh_stop(&H, SIGTERM, 30000) != -1, 1);
    receiver_stop(&rv);
}
END_TEST

/* ---- batches ---- */

/* A tracked batch: counts total/pending/done/cancelled as its jobs go, a
 * job already in flight is not counted, it completes once sealed and
 * empty, with an event and a signed callback; `avatarq batch --wait`
 * reports the counts of another batch. */
START_TEST(t_batch_counts_completes_calls_back)
{
    receiver rv;
    receiver_start(&rv, "k");
    char sections[300];
    snprintf(sections, sizeof sections, "[callbacks]\nsecret = k\nbackoff_base_ms = 50\n");
    wh_write_config(&H, "processes = 1\nconcurrency = 2\n", sections);
    aq_config c;
    queue *q = open_q(sections, &c);
    /* a job already queued before the batch: its line is a no-op */
    const char *d0 = "{\"id\":\"bx0\",\"seed\":\"bx0\",\"sizes\":[32]}";
    aq_err e = {0};
    ck_assert(queue_enqueue(q, NULL, "bx0", d0, strlen(d0), 0, &e) == 0);
    char err[256], bid[65], url[100];
    avatarq *a = avatarq_open_config(&c, err, sizeof err);
    ck_assert(a);
    avatarq_batch *b = avatarq_batch_new(a, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/batch", rv.port);
    ck_assert_msg(avatarq_batch_track(b, url, bid, err, sizeof err) == 0, "%s", err);
    const char *lines[] = {"{\"id\":\"bx0\",\"seed\":\"bx0\",\"sizes\":[32]}",
                           "{\"id\":\"bx1\",\"seed\":\"bx1\",\"sizes\":[32]}",
                           "{\"id\":\"bx2\",\"seed\":\"bx2\",\"sizes\":[32]}",
                           "{\"id\":\"bx3\",\"seed\":\"bx3\",\"sizes\":[32]}"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(avatarq_batch_add_json(b, lines[i], NULL, err, sizeof err) == 0, "%s", err);
    ck_assert(avatarq_batch_flush(b, err, sizeof err) == 4);
    ck_assert_uint_eq(avatarq_batch_existing(b), 1);
    ck_assert_int_eq(avatarq_cancel(a, "bx3", NULL, err, sizeof err), 0);
    avatarq_batch_info bi;
    ck_assert(avatarq_batch_status(a, bid, &bi, err, sizeof err) == 0);
    ck_assert_str_eq(bi.state, "open");
    ck_assert_int_eq(bi.total, 3);
    ck_assert_int_eq(bi.pending, 2);
    ck_assert_int_eq(bi.cancelled, 1);
    ck_assert_str_eq(wh_str(&H, "HGET " WH_NS ":job:bx1 batch"), bid);
    wh_start(&H, NULL);
    ck_assert(wh_wait_state(&H, "bx2", "done", 30000));
    ck_assert(wh_wait_state(&H, "bx1", "done", 30000));
    /* every job final, but not sealed: not complete */
    ck_assert(avatarq_batch_status(a, bid, &bi, err, sizeof err) == 0);
    ck_assert_str_eq(bi.state, "open");
    ck_assert_int_eq(bi.done, 2);
    ck_assert_int_eq(bi.pending, 0);
    ck_assert(avatarq_batch_seal(b, err, sizeof err) == 0);
    ck_assert(avatarq_batch_status(a, bid, &bi, err, sizeof err) == 0);
    ck_assert_str_eq(bi.state, "complete");
    char *l = NULL;
    for (int waited = 0; waited < 20000 && !l; waited += 50) {
        FILE *f = fopen(rv.log, "r");
        static char line[2048];
        while (f && !l && fgets(line, sizeof line, f))
            if (strstr(line, bid))
                l = line;
        if (f)
            fclose(f);
        if (!l)
            sup_sleep_ms(50);
    }
    ck_assert_msg(l != NULL, "no batch callback");
    ck_assert_msg(strncmp(l, "OK /batch 1 ", 12) == 0, "%s", l);
    json_t *body = json_loads(l + 12, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(body, "state")), "complete");
    ck_assert_int_eq(json_integer_value(json_object_get(body, "total")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(body, "done")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(body, "cancelled")), 1);
    json_decref(body);
    avatarq_batch_free(b);

    /* the CLI: a batch of three seeds, --wait until complete */
    char path[400], cmd[1200];
    snprintf(path, sizeof path, "%s/seeds.txt", H.dir);
    sup_write_file(path, "w1\nw2\nw3\n");
    snprintf(cmd, sizeof cmd, "%s -c %s batch --size 16 --wait %s", sup_bin("avatarq"), H.cfg,
             path);
    buf out = BUF_INIT;
    ck_assert_int_eq(sup_run(cmd, &out, false), 0);
    buf_append(&out, "", 1);
    ck_assert_msg(strstr((char *)out.data, "complete: 3 done, 0 dead, 0 cancelled of 3"), "%s",
                  (char *)out.data);
    ck_assert_msg(strstr((char *)out.data, "batch b"), "%s", (char *)out.data);
    buf_free(&out);
    avatarq_close(a);
    queue_close(q);
    ck_assert_int_eq(wh_stop(&H, SIGTERM, 30000) != -1, 1);
    receiver_stop(&rv);
}
END_TEST

static Suite *producer_suite(void)
{
    Suite *s = suite_create("producer");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_dedup_never_resets_a_job_in_flight);
    tcase_add_test(tc, t_dedup_api_derived_id);
    tcase_add_test(tc, t_max_queue_length_refuses);
    tcase_add_test(tc, t_cancel_queued);
    tcase_add_test(tc, t_cancel_scheduled);
    tcase_add_test(tc, t_cancel_running_and_revive);
    tcase_add_test(tc, t_scheduled_promoted_once);
    tcase_add_test(tc, t_weighted_and_strict_take);
    suite_add_tcase(s, tc);
    TCase *e2e = tcase_create("end_to_end");
    tcase_add_checked_fixture(e2e, setup, teardown);
    tcase_add_unchecked_fixture(e2e, NULL, wh_reap_strays);
    tcase_set_timeout(e2e, 180);
    tcase_add_test(e2e, t_scheduled_end_to_end);
    tcase_add_test(e2e, t_weighted_no_starvation);
    tcase_add_test(e2e, t_cancel_running_end_to_end);
    tcase_add_test(e2e, t_cancel_running_deletes_its_files);
    tcase_add_test(e2e, t_callbacks_signed_retried_published);
    tcase_add_test(e2e, t_callbacks_receiver_down_then_up);
    tcase_add_test(e2e, t_batch_counts_completes_calls_back);
    suite_add_tcase(s, e2e);
    return s;
}

int main(void)
{
    return sup_run_suite(producer_suite());
}
