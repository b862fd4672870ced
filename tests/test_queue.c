/* lib/queue against a real redis-server: every function, the stale-ack and
 * exactly-once guarantees, recovery of silent workers, reconnects after a
 * Redis restart and EVALSHA after SCRIPT FLUSH. The worker's side goes
 * through the worker engine's batched calls (queue_cycle, queue_start_many,
 * queue_take_bounded), mostly one job at a time (support_queue.h), so each
 * per-job rule of their scripts is pinned on its own.
 *
 * One redis-server per test case (started in the parent by an unchecked
 * fixture, stopped by PID even when a test fails); each test runs in its own
 * forked process and namespace "{tPID}" (a hash tag, as for Redis Cluster). */
#include <check.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "hash.h"
#include "queue.h"
#include "retry.h"
#include "support.h"
#include "support_queue.h"

static sup_redis R;
static char NS[32];
static aq_config CFG;
static queue *Q;
static redisContext *RAW; /* our own connection, to look at and set up keys */

/* ---- fixtures ---- */

static void redis_up(void)
{
    sup_redis_start(&R, true);
}

static void redis_down(void)
{
    sup_redis_stop(&R);
    sup_rmtree(R.dir);
}

/* A config for R with the test's namespace plus extra INI lines. */
static void make_cfg(aq_config *c, const char *extra)
{
    char text[2048];

    snprintf(text, sizeof text, "[redis]\nurl = %s\nnamespace = %s\n%s", R.url, NS,
             extra ? extra : "");
    aq_err e = {0};
    ck_assert_msg(config_load_string(c, text, "test.ini", &e) == 0, "config: %s", e.msg);
}

static queue *open_q(const aq_config *c)
{
    aq_err e = {0};
    queue *q = queue_open(c, &e);
    ck_assert_msg(q != NULL, "queue_open: %s", e.msg);
    return q;
}

static void q_setup(void)
{
    static int seq; /* unique also with CK_FORK=no (e.g. under valgrind) */
    snprintf(NS, sizeof NS, "{t%d.%d}", (int)getpid(), seq++);
    make_cfg(&CFG, "[worker]\nresult_ttl_s = 3600\ndead_max = 3\nmax_attempts = 2\n");
    Q = open_q(&CFG);
    RAW = redisConnect("127.0.0.1", R.port);
    ck_assert(RAW && !RAW->err);
}

static void q_teardown(void)
{
    queue_close(Q);
    Q = NULL;
    if (RAW)
        redisFree(RAW);
    RAW = NULL;
}

/* ---- helpers ---- */

/* "NS:suffix" in one of a few rotating buffers. */
static const char *K(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *K(const char *fmt, ...)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];
    int n = snprintf(b, 256, "%s:", NS);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + n, 256 - (size_t)n, fmt, ap);
    va_end(ap);
    return b;
}

/* A command on our own connection; the reply is freed at the next call. */
static redisReply *raw(const char *fmt, ...)
{
    static redisReply *last;
    if (last)
        freeReplyObject(last);
    va_list ap;
    va_start(ap, fmt);
    last = redisvCommand(RAW, fmt, ap);
    va_end(ap);
    ck_assert_msg(last != NULL, "raw command failed: %s", RAW->errstr);
    return last;
}

static long long raw_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(RAW, fmt, ap);
    va_end(ap);
    ck_assert(r != NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : 0;
    freeReplyObject(r);
    return v;
}

/* HGET as a string ("" when absent), in rotating buffers. */
static const char *hget(const char *key, const char *field)
{
    static char bufs[8][600];
    static int i;
    char *b = bufs[i++ % 8];
    redisReply *r = redisCommand(RAW, "HGET %s %s", key, field);
    ck_assert(r != NULL);
    snprintf(b, 600, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return b;
}

static char *doc_of(const char *id)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 256, "{\"v\":1,\"id\":\"%s\",\"seed\":\"%s\"}", id, id);
    return b;
}

static void enqueue(const char *id)
{
    aq_err e = {0};
    const char *d = doc_of(id);
    ck_assert_msg(queue_enqueue(Q, NULL, id, d, strlen(d), 0, &e) == 0, "enqueue: %s", e.msg);
}

/* Takes one job for worker w (queue_cycle wanting one, as the worker engine
 * takes), which must be the doc of id. */
static void take_expect(const char *w, const char *id)
{
    aq_err e = {0};
    char *doc;
    size_t len;
    int rc = sq_take(Q, w, 0, &doc, &len, &e);
    ck_assert_msg(rc == 1, "take: %d %s", rc, e.msg);
    ck_assert_str_eq(doc, doc_of(id));
    ck_assert_uint_eq(len, strlen(doc));
    free(doc);
}

/* Marks id running on w (queue_start_many, a batch of one); its attempt. */
static int start(const char *w, const char *id)
{
    aq_err e = {0};
    int attempts = -1;
    ck_assert_msg(sq_start(Q, w, id, 0, &attempts, &e) == 0, "start: %s", e.msg);
    return attempts;
}

/* Records o for w (queue_cycle taking nothing); true when it was stale. */
static bool finish(const char *w, queue_outcome *o)
{
    aq_err e = {0};
    ck_assert_msg(sq_finish(Q, w, o, &e) == 0, "cycle: %s", e.msg);
    return o->stale;
}

/* Acknowledges id's doc as done; true when the ack was stale. */
static bool ack(const char *w, const char *id)
{
    const char *d = doc_of(id);
    queue_outcome o = {.doc = d, .len = strlen(d), .id = id, .kind = QUEUE_DONE,
                       .outputs = "{\"64\":\"k\"}", .duration_ms = 12};
    return finish(w, &o);
}

/* A failed attempt of id's doc, retried at due; true when stale. */
static bool retry_at(const char *w, const char *id, const char *error, int64_t due)
{
    const char *d = doc_of(id);
    queue_outcome o = {.doc = d, .len = strlen(d), .id = id, .kind = QUEUE_RETRY,
                       .error = error, .retry_doc = d, .due_ms = due};
    return finish(w, &o);
}

/* A final failure of doc (as taken): dead_doc goes to NS:dead; kind is
 * QUEUE_DEAD or QUEUE_REFUSED. True when stale. */
static bool bury(const char *w, const char *doc, size_t len, const char *id,
                 queue_outcome_kind kind, const char *error, const char *dead_doc)
{
    queue_outcome o = {.doc = doc, .len = len, .id = id, .kind = kind, .error = error,
                       .dead_doc = dead_doc};
    return finish(w, &o);
}

/* A stand-in for the worker's ident: id and max_attempts from the JSON. */
static int ident(void *ud, const char *doc, size_t len, char id[65], int *max, char *why,
                 size_t whylen)
{
    (void)ud;
    json_t *o = json_loadb(doc, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(why, whylen, "not a JSON object");
        return -1;
    }
    const char *s = json_string_value(json_object_get(o, "id"));
    snprintf(id, 65, "%s", s ? s : "");
    *max = (int)json_integer_value(json_object_get(o, "max_attempts"));
    json_decref(o);
    return 0;
}

static const queue_requeue IDENT = {.ident = ident};

/* The fields of the newest NS:events entry, flat "k=v k=v". */
static const char *last_event(void)
{
    static char out[512];
    out[0] = '\0';
    redisReply *r = raw("XREVRANGE %s + - COUNT 1", K("events"));
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 1);
    redisReply *f = r->element[0]->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s=%s", i ? " " : "",
                 f->element[i]->str, f->element[i + 1]->str);
    return out;
}

/* ---- producers ---- */

START_TEST(enqueue_sets_hash_counters_event)
{
    int64_t t0 = now_ms();
    enqueue("a1");
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 1);
    ck_assert_str_eq(hget(K("job:a1"), "state"), "queued");
    ck_assert_str_eq(hget(K("job:a1"), "attempts"), "0");
    ck_assert_str_eq(hget(K("job:a1"), "queue"), "default");
    ck_assert_int_ge(atoll(hget(K("job:a1"), "created_at")), t0);
    ck_assert_int_eq(raw_int("TTL %s", K("job:a1")), -1);
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "1");
    ck_assert_str_eq(last_event(), "id=a1 state=queued worker= error=");

    /* another queue, explicit created_at */
    aq_err e = {0};
    ck_assert_int_eq(queue_enqueue(Q, "other", "a2", "{}", 2, 1234, &e), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:other")), 1);
    ck_assert_str_eq(hget(K("job:a2"), "created_at"), "1234");
    ck_assert_str_eq(hget(K("job:a2"), "queue"), "other");

    /* a bad id never reaches a key name */
    ck_assert_int_eq(queue_enqueue(Q, NULL, "../x", "{}", 2, 0, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "../x"));

    /* many in one pipeline */
    queue_item items[3] = {{"m1", "{\"id\":\"m1\"}", 11, 0},
                           {"m2", "{\"id\":\"m2\"}", 11, 0},
                           {"m3", "{\"id\":\"m3\"}", 11, 0}};
    ck_assert_int_eq(queue_enqueue_many(Q, NULL, items, 3, &e), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 4);
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "5");
    ck_assert_str_eq(hget(K("job:m3"), "state"), "queued");

    queue_job j;
    ck_assert_int_eq(queue_job_get(Q, "a1", &j, &e), 0);
    ck_assert_str_eq(j.state, "queued");
    ck_assert_str_eq(j.queue, "default");
    ck_assert_int_eq(j.attempts, 0);
    ck_assert_ptr_null(j.outputs);
    queue_job_free(&j);
    ck_assert_int_eq(queue_job_get(Q, "nope", &j, &e), AQ_ENOTFOUND);
}
END_TEST

/* ---- workers ---- */

START_TEST(take_is_fifo_and_waits)
{
    enqueue("f1");
    enqueue("f2");
    enqueue("f3");
    take_expect("h:1", "f1");
    take_expect("h:1", "f2");
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:h:1")), 2);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 1);
    take_expect("h:1", "f3");

    aq_err e = {0};
    char *doc = (char *)1;
    size_t len = 1;
    queue_big big;
    /* the idle worker's blocking take waits, then times out */
    ck_assert_int_eq(queue_take_bounded(Q, "h:1", 200, 64 * 1024, &doc, &len, &big, &e), 0);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(sq_take(Q, "h:1", 0, &doc, &len, &e), 0); /* the cycle never waits */
    ck_assert_ptr_null(doc);

    /* one cycle takes several in order, and only as many as it wants */
    enqueue("f4");
    enqueue("f5");
    enqueue("f6");
    queue_taken t;
    ck_assert_int_eq(queue_cycle(Q, "h:2", NULL, 0, NULL, NULL, 0, 2, 64 * 1024, &t, &e), 0);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_str_eq(t.doc[0], doc_of("f4"));
    ck_assert_str_eq(t.doc[1], doc_of("f5"));
    ck_assert_uint_eq(t.len[1], strlen(doc_of("f5")));
    ck_assert(!t.oversized);
    queue_taken_free(&t);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:h:2")), 2);
    take_expect("h:2", "f6");

    /* a job pushed while we block is taken */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sup_sleep_ms(300);
        redisContext *c = redisConnect("127.0.0.1", R.port);
        redisReply *r = redisCommand(c, "LPUSH %s late", K("queue:default"));
        freeReplyObject(r);
        redisFree(c);
        _exit(0);
    }
    ck_assert_int_eq(queue_take_bounded(Q, "h:1", 10000, 64 * 1024, &doc, &len, &big, &e), 1);
    ck_assert_str_eq(doc, "late");
    ck_assert_uint_eq(len, 4);
    ck_assert_int_eq(raw_int("LPOS %s late", K("processing:h:1")), 0);
    free(doc);
    waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(start_counts_attempts_and_raw_pushes)
{
    enqueue("s1");
    take_expect("h:1", "s1");
    ck_assert_int_eq(start("h:1", "s1"), 1);
    ck_assert_str_eq(hget(K("job:s1"), "state"), "running");
    ck_assert_str_eq(hget(K("job:s1"), "worker"), "h:1");
    ck_assert_int_gt(atoll(hget(K("job:s1"), "started_at")), 0);
    /* the batch's one `running` entry names its ids in field `ids` */
    ck_assert_str_eq(last_event(), "ids=s1 state=running worker=h:1 error=");
    long long events = raw_int("XLEN %s", K("events"));
    /* a retried start (its reply lost) on the same worker changes nothing */
    ck_assert_int_eq(start("h:1", "s1"), 1);
    ck_assert_str_eq(hget(K("stats"), "started"), "1");
    ck_assert_int_eq(raw_int("XLEN %s", K("events")), events);
    /* the next run, after the job was put back, is attempt 2 */
    aq_err e = {0};
    int rec = 0, dead = 0;
    ck_assert_int_eq(queue_requeue_worker(Q, "h:1", &IDENT, &rec, &dead, &e), 0);
    take_expect("h:2", "s1");
    ck_assert_int_eq(start("h:2", "s1"), 2);
    ck_assert_str_eq(hget(K("stats"), "started"), "2");
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "1");

    /* a raw LPUSH has no hash: start counts it enqueued once */
    raw("LPUSH %s %s", K("queue:default"), doc_of("raw1"));
    take_expect("h:1", "raw1");
    int attempts = 0;
    ck_assert_int_eq(sq_start(Q, "h:1", "raw1", 777, &attempts, &e), 0);
    ck_assert_int_eq(attempts, 1);
    ck_assert_str_eq(hget(K("job:raw1"), "created_at"), "777");
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "2");

    /* the same id pushed raw again after it finished: a new run */
    ck_assert(!ack("h:1", "raw1"));
    raw("LPUSH %s %s", K("queue:default"), doc_of("raw1"));
    take_expect("h:1", "raw1");
    ck_assert_int_eq(start("h:1", "raw1"), 1);
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "3");
    ck_assert_int_eq(raw_int("TTL %s", K("job:raw1")), -1);

    /* ... and after it went dead */
    const char *d = doc_of("raw1");
    ck_assert(!bury("h:1", d, strlen(d), "raw1", QUEUE_DEAD, "bad", d));
    ck_assert_str_eq(hget(K("job:raw1"), "state"), "dead");
    raw("LPUSH %s %s", K("queue:default"), doc_of("raw1"));
    take_expect("h:1", "raw1");
    ck_assert_int_eq(start("h:1", "raw1"), 1);
    ck_assert_str_eq(hget(K("job:raw1"), "state"), "running");
    ck_assert_str_eq(hget(K("job:raw1"), "error"), "");
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "4");
    ck_assert_int_eq(raw_int("TTL %s", K("job:raw1")), -1);

    /* a batch: each job its own attempt, one `running` entry for all, a
     * document without an id counted enqueued and started */
    enqueue("s2");
    raw("HSET %s attempts 4", K("job:s2"));
    queue_start_item it[3] = {{.id = "s2"}, {.id = "s3", .created_at = 5}, {.id = ""}};
    ck_assert_int_eq(queue_start_many(Q, "h:3", it, 3, &e), 0);
    ck_assert_int_eq(it[0].attempts, 5);
    ck_assert_int_eq(it[1].attempts, 1);
    ck_assert_int_eq(it[2].attempts, 1);
    ck_assert_str_eq(last_event(), "ids=s2 s3 state=running worker=h:3 error=");
    ck_assert_str_eq(hget(K("job:s3"), "created_at"), "5");
    ck_assert_str_eq(hget(K("stats"), "started"), "8");
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "7");
}
END_TEST

START_TEST(ack_records_done_once)
{
    enqueue("k1");
    take_expect("h:1", "k1");
    start("h:1", "k1");
    ck_assert(!ack("h:1", "k1"));
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:h:1")), 0);
    ck_assert_str_eq(hget(K("job:k1"), "state"), "done");
    ck_assert_str_eq(hget(K("job:k1"), "duration_ms"), "12");
    ck_assert_str_eq(hget(K("job:k1"), "outputs"), "{\"64\":\"k\"}");
    ck_assert_int_gt(atoll(hget(K("job:k1"), "finished_at")), 0);
    long long ttl = raw_int("TTL %s", K("job:k1"));
    ck_assert_int_gt(ttl, 3500);
    ck_assert_int_le(ttl, 3600);
    ck_assert_str_eq(hget(K("stats"), "done"), "1");
    ck_assert_str_eq(last_event(), "ids=k1 state=done worker=h:1 error=");
    /* a second ack of the same doc finds it nowhere: stale, nothing counted */
    long long events = raw_int("XLEN %s", K("events"));
    ck_assert(ack("h:1", "k1"));
    ck_assert_str_eq(hget(K("stats"), "done"), "1");
    ck_assert_int_eq(raw_int("XLEN %s", K("events")), events);

    /* two acks in one call: counted twice, one `done` entry naming both */
    enqueue("k2");
    enqueue("k3");
    take_expect("h:1", "k2");
    take_expect("h:1", "k3");
    queue_outcome o[2];
    for (int i = 0; i < 2; i++) {
        const char *d = doc_of(i ? "k3" : "k2");
        o[i] = (queue_outcome){.doc = d, .len = strlen(d), .id = i ? "k3" : "k2",
                               .kind = QUEUE_DONE, .outputs = "{}", .duration_ms = 1};
    }
    aq_err e = {0};
    queue_taken t;
    ck_assert_int_eq(queue_cycle(Q, "h:1", o, 2, NULL, NULL, 0, 0, 64 * 1024, &t, &e), 0);
    queue_taken_free(&t);
    ck_assert(!o[0].stale && !o[1].stale);
    ck_assert_str_eq(hget(K("stats"), "done"), "3");
    ck_assert_int_eq(raw_int("XLEN %s", K("events")), events + 3); /* 2 queued + 1 done */
    ck_assert_str_eq(last_event(), "ids=k2 k3 state=done worker=h:1 error=");
    ck_assert_str_eq(hget(K("job:k3"), "state"), "done");

    queue_job j;
    ck_assert_int_eq(queue_job_get(Q, "k1", &j, &e), 0);
    ck_assert_str_eq(j.state, "done");
    ck_assert_int_eq(j.attempts, 1);
    ck_assert_int_eq(j.duration_ms, 12);
    ck_assert_str_eq(j.outputs, "{\"64\":\"k\"}");
    queue_job_free(&j);
}
END_TEST

/* The processing list of worker w, left to right, ids joined by ' '. */
static const char *processing_ids(const char *w)
{
    static char out[512];
    out[0] = '\0';
    redisReply *r = raw("LRANGE %s 0 -1", K("processing:%s", w));
    for (size_t i = 0; i < r->elements; i++) {
        json_t *d = json_loads(r->element[i]->str, 0, NULL);
        const char *id = d ? json_string_value(json_object_get(d, "id")) : NULL;
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? " " : "",
                 id ? id : r->element[i]->str);
        json_decref(d);
    }
    return out;
}

/* A done outcome of id (its document as doc_of gives it). */
static queue_outcome done_of(const char *id)
{
    const char *d = doc_of(id);
    return (queue_outcome){.doc = d, .len = strlen(d), .id = id, .kind = QUEUE_DONE,
                           .outputs = "{}", .duration_ms = 1};
}

/* The worker's one call per batch: the outcomes it records leave the
 * processing list whether they are its oldest end (cut at once) or not
 * (removed one by one), the jobs it took last time start, and it takes
 * more, in queue order. */
START_TEST(cycle_records_starts_and_takes_in_one_call)
{
    const char *ids[] = {"a1", "a2", "a3", "a4", "a5", "a6"};
    for (int i = 0; i < 6; i++)
        enqueue(ids[i]);
    aq_err e = {0};
    queue_taken t;
    ck_assert_int_eq(queue_cycle(Q, "h:1", NULL, 0, NULL, NULL, 0, 4, 64 * 1024, &t, &e), 0);
    ck_assert_uint_eq(t.n, 4);
    ck_assert_str_eq(t.doc[0], doc_of("a1"));
    ck_assert_str_eq(t.doc[3], doc_of("a4"));
    queue_taken_free(&t);
    ck_assert_str_eq(processing_ids("h:1"), "a4 a3 a2 a1");
    /* taken, not yet started: still queued */
    ck_assert_str_eq(hget(K("job:a1"), "state"), "queued");

    queue_start_item st[4] = {{.id = "a1"}, {.id = "a2"}, {.id = "a3"}, {.id = "a4"}};
    ck_assert_int_eq(queue_cycle(Q, "h:1", NULL, 0, NULL, st, 4, 0, 64 * 1024, &t, &e), 0);
    queue_taken_free(&t);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(st[i].attempts, 1);
        ck_assert_str_eq(hget(K("job:%s", ids[i]), "state"), "running");
    }

    /* a3 finished before a2: a1 is cut from the end, a3 removed alone */
    queue_outcome o[2] = {done_of("a3"), done_of("a1")};
    ck_assert_int_eq(queue_cycle(Q, "h:1", o, 2, NULL, NULL, 0, 2, 64 * 1024, &t, &e), 0);
    ck_assert(!o[0].stale && !o[1].stale);
    ck_assert_uint_eq(t.n, 2);
    queue_taken_free(&t);
    ck_assert_str_eq(processing_ids("h:1"), "a6 a5 a4 a2");
    ck_assert_str_eq(hget(K("job:a3"), "state"), "done");
    ck_assert_str_eq(hget(K("job:a1"), "state"), "done");

    /* the rest done, a5 and a6 started and nothing left to take, all in
     * one call: one `done` and one `running` event */
    long long events = raw_int("XLEN %s", K("events"));
    queue_outcome o2[2] = {done_of("a2"), done_of("a4")};
    queue_start_item st2[2] = {{.id = "a5"}, {.id = "a6"}};
    ck_assert_int_eq(queue_cycle(Q, "h:1", o2, 2, NULL, st2, 2, 3, 64 * 1024, &t, &e), 0);
    ck_assert_uint_eq(t.n, 0);
    queue_taken_free(&t);
    ck_assert(!o2[0].stale && !o2[1].stale);
    ck_assert_int_eq(st2[0].attempts, 1);
    ck_assert_int_eq(st2[1].attempts, 1);
    ck_assert_str_eq(processing_ids("h:1"), "a6 a5");
    ck_assert_str_eq(hget(K("job:a5"), "state"), "running");
    ck_assert_int_eq(raw_int("XLEN %s", K("events")), events + 2);
    ck_assert_str_eq(last_event(), "ids=a5 a6 state=running worker=h:1 error=");
    ck_assert_str_eq(hget(K("stats"), "done"), "4");
    ck_assert_str_eq(hget(K("stats"), "started"), "6");

    /* two copies of one document: recording one leaves the other */
    const char *d = doc_of("twin");
    raw("LPUSH %s %s %s", K("queue:default"), d, d);
    ck_assert_int_eq(queue_cycle(Q, "h:2", NULL, 0, NULL, NULL, 0, 2, 64 * 1024, &t, &e), 0);
    ck_assert_uint_eq(t.n, 2);
    queue_taken_free(&t);
    queue_outcome tw = done_of("twin");
    ck_assert_int_eq(queue_cycle(Q, "h:2", &tw, 1, NULL, NULL, 0, 0, 64 * 1024, &t, &e), 0);
    queue_taken_free(&t);
    ck_assert(!tw.stale);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:h:2")), 1);
}
END_TEST

/* A take of several stops before a document over the limit: the ones
 * before it are taken, it and every one after it stay in the queue in
 * their order, and it is flagged so the worker reads it in pieces. */
START_TEST(cycle_take_stops_before_oversized)
{
    size_t n = 70 * 1024;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, 'b', n);
    raw("LPUSH %s %s %s %b %s", K("queue:default"), doc_of("o1"), doc_of("o2"), big, n,
        doc_of("o3"));
    free(big);
    aq_err e = {0};
    queue_taken t;
    ck_assert_int_eq(queue_cycle(Q, "h:1", NULL, 0, NULL, NULL, 0, 4, 64 * 1024, &t, &e), 0);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_str_eq(t.doc[0], doc_of("o1"));
    ck_assert_str_eq(t.doc[1], doc_of("o2"));
    ck_assert(t.oversized);
    ck_assert_int_eq(t.oversized_from, 0);
    queue_taken_free(&t);
    ck_assert_str_eq(processing_ids("h:1"), "o2 o1");
    redisReply *r = raw("LRANGE %s 0 -1", K("queue:default"));
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_str_eq(r->element[0]->str, doc_of("o3"));
    ck_assert_uint_eq(r->element[1]->len, n);
}
END_TEST

START_TEST(stale_ack_after_recovery)
{
    aq_err e = {0};
    int rec = 0, dead = 0;
    /* taken back but not yet taken again: A's ack takes it off the queue */
    enqueue("r1");
    take_expect("A:1", "r1");
    start("A:1", "r1");
    ck_assert_int_eq(queue_requeue_worker(Q, "A:1", &IDENT, &rec, &dead, &e), 0);
    ck_assert_int_eq(rec, 1);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 1);
    ck_assert(!ack("A:1", "r1"));
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 0);
    ck_assert_str_eq(hget(K("stats"), "done"), "1");

    /* taken back and taken by B: A's ack is stale, B's records it once */
    enqueue("r2");
    take_expect("A:1", "r2");
    start("A:1", "r2");
    ck_assert_int_eq(queue_requeue_worker(Q, "A:1", &IDENT, &rec, &dead, &e), 0);
    take_expect("B:2", "r2");
    start("B:2", "r2");
    ck_assert(ack("A:1", "r2"));
    ck_assert_str_eq(hget(K("job:r2"), "state"), "running");
    ck_assert_str_eq(hget(K("stats"), "done"), "1");
    ck_assert(!ack("B:2", "r2"));
    ck_assert_str_eq(hget(K("stats"), "done"), "2");
    ck_assert_str_eq(hget(K("job:r2"), "worker"), "B:2");

    /* the same holds for fail */
    enqueue("r3");
    take_expect("A:1", "r3");
    ck_assert_int_eq(queue_requeue_worker(Q, "A:1", &IDENT, &rec, &dead, &e), 0);
    take_expect("B:2", "r3");
    ck_assert(retry_at("A:1", "r3", "boom", now_ms()));
    ck_assert_int_eq(raw_int("ZCARD %s", K("delayed")), 0);
    const char *d = doc_of("r3");
    ck_assert(bury("A:1", d, strlen(d), "r3", QUEUE_DEAD, "boom", d));
    ck_assert_int_eq(raw_int("LLEN %s", K("dead")), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:B:2")), 1);
    ck_assert_str_eq(hget(K("stats"), "retried"), "");
    ck_assert_str_eq(hget(K("stats"), "dead"), "");
}
END_TEST

START_TEST(fail_retry_and_dead)
{
    aq_err e = {0};
    enqueue("x1");
    take_expect("h:1", "x1");
    start("h:1", "x1");
    const char *d = doc_of("x1");
    int64_t due = now_ms() + 5000;
    ck_assert(!retry_at("h:1", "x1", "s3: 503", due));
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:h:1")), 0);
    ck_assert_int_eq(raw_int("ZSCORE %s %s", K("delayed"), d), due);
    ck_assert_str_eq(hget(K("job:x1"), "state"), "retrying");
    ck_assert_str_eq(hget(K("job:x1"), "error"), "s3: 503");
    ck_assert_int_eq(raw_int("TTL %s", K("job:x1")), -1);
    ck_assert_str_eq(hget(K("stats"), "retried"), "1");
    ck_assert_str_eq(last_event(), "id=x1 state=retrying worker=h:1 error=s3: 503");

    /* final failure: the dead letter, state dead, TTL, counters */
    enqueue("x2");
    take_expect("h:1", "x2");
    start("h:1", "x2");
    d = doc_of("x2");
    char *dd = queue_dead_doc(d, strlen(d), "sizes[0]: 9 is below 16", 42, 1);
    ck_assert(!bury("h:1", d, strlen(d), "x2", QUEUE_DEAD, "sizes[0]: 9 is below 16", dd));
    redisReply *r = raw("LINDEX %s 0", K("dead"));
    ck_assert_str_eq(r->str, dd);
    ck_assert_str_eq(dd, "{\"v\":1,\"id\":\"x2\",\"seed\":\"x2\",\"error\":\"sizes[0]: 9 is "
                         "below 16\",\"failed_at\":42,\"attempts\":1}");
    free(dd);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:h:1")), 0);
    ck_assert_str_eq(hget(K("job:x2"), "state"), "dead");
    ck_assert_str_eq(hget(K("job:x2"), "error"), "sizes[0]: 9 is below 16");
    ck_assert_int_gt(raw_int("TTL %s", K("job:x2")), 0);
    ck_assert_str_eq(hget(K("stats"), "failed"), "1");
    ck_assert_str_eq(hget(K("stats"), "dead"), "1");
    ck_assert_str_eq(last_event(), "id=x2 state=dead worker=h:1 error=sizes[0]: 9 is below 16");

    /* a document without a usable id (the worker refuses it): dead letter,
     * no hash */
    raw("LPUSH %s %s", K("queue:default"), "not json");
    char *doc;
    size_t len;
    ck_assert_int_eq(sq_take(Q, "h:1", 0, &doc, &len, &e), 1);
    dd = queue_dead_doc(doc, len, "not JSON", 43, 0);
    ck_assert_str_eq(dd, "{\"raw\":\"not json\",\"raw_bytes\":8,\"error\":\"not JSON\","
                         "\"failed_at\":43,\"attempts\":0}");
    ck_assert(!bury("h:1", doc, len, "", QUEUE_REFUSED, "not JSON", dd));
    ck_assert_int_eq(raw_int("EXISTS %s", K("job:")), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:h:1")), 0);
    /* it never started, so it is counted enqueued here: enqueued = done + dead */
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "3");
    free(dd);
    free(doc);

    /* the dead list is trimmed to dead_max (3), newest first */
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", i);
        enqueue(id);
        take_expect("h:1", id);
        d = doc_of(id);
        ck_assert(!bury("h:1", d, strlen(d), id, QUEUE_DEAD, "bad", d));
    }
    ck_assert_int_eq(raw_int("LLEN %s", K("dead")), 3);
    r = raw("LINDEX %s 0", K("dead"));
    ck_assert_str_eq(r->str, doc_of("t3"));
    ck_assert_str_eq(hget(K("stats"), "dead"), "6");
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "7");
}
END_TEST

/* Unwraps dd, expecting success; the malloc'd document. */
static char *unwrap_ok(const char *dd, size_t *blen, char id[65])
{
    char *back = NULL;
    aq_err e = {0};
    ck_assert_msg(queue_dead_unwrap(dd, strlen(dd), &back, blen, id, &e) == 0, "unwrap %s: %s",
                  dd, e.msg);
    return back;
}

START_TEST(dead_doc_forms)
{
    const char *doc;
    size_t blen = 0;
    char id[65];
    /* invalid UTF-8 still gives valid JSON */
    char *dd = queue_dead_doc("\xff\xfe{", 3, "bad", 1, 2);
    ck_assert_str_eq(dd, "{\"raw\":\"??{\",\"raw_bytes\":3,\"error\":\"bad\",\"failed_at\":1,"
                         "\"attempts\":2}");
    char *back = unwrap_ok(dd, &blen, id);
    ck_assert_str_eq(back, "??{");
    ck_assert_str_eq(id, "");
    free(back);
    free(dd);
    /* a JSON array is not a job object: wrapped */
    dd = queue_dead_doc("[1,2]", 5, "e", 1, 0);
    back = unwrap_ok(dd, &blen, id);
    ck_assert_str_eq(back, "[1,2]");
    free(back);
    free(dd);
    /* a raw document with a NUL byte comes back whole */
    dd = queue_dead_doc("a\0b", 3, "NUL", 1, 0);
    ck_assert_ptr_nonnull(strstr(dd, "\"a\\u0000b\""));
    back = unwrap_ok(dd, &blen, id);
    ck_assert_uint_eq(blen, 3);
    ck_assert_mem_eq(back, "a\0b", 3);
    free(back);
    free(dd);
    /* a wrapper that kept only the head of a document cannot be retried */
    doc = "{\"raw\":\"head\",\"raw_bytes\":70000,\"error\":\"e\",\"failed_at\":1,\"attempts\":0}";
    aq_err e = {0};
    ck_assert_int_eq(queue_dead_unwrap(doc, strlen(doc), &back, &blen, id, &e), AQ_EPERM);
    ck_assert_ptr_null(back);
    ck_assert_ptr_nonnull(strstr(e.msg, "first 4 of 70000 bytes"));
    /* a (bad) job object with a "raw" field of its own is wrapped whole, so
     * it comes back as itself */
    doc = "{\"raw\":\"r\",\"seed\":\"s\"}";
    dd = queue_dead_doc(doc, strlen(doc), "e", 5, 3);
    back = unwrap_ok(dd, &blen, id);
    ck_assert_str_eq(back, doc);
    free(back);
    free(dd);
    /* issue 13 item 11: an invalid document shaped like our wrapper never
     * turns into another document (here a delete) on the way back */
    doc = "{\"raw\":\"{\\\"type\\\":\\\"delete\\\",\\\"id\\\":\\\"victim\\\"}\",\"error\":\"x\","
          "\"failed_at\":1,\"attempts\":1}";
    dd = queue_dead_doc_refused(doc, strlen(doc), "unknown field raw", 5);
    back = unwrap_ok(dd, &blen, id);
    ck_assert_str_eq(back, doc);
    ck_assert_str_eq(id, "");
    free(back);
    free(dd);
    /* a large invalid object keeps its head, its size and its SHA-256 */
    char big[3000];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"seed\":1", 9);
    big[sizeof big - 1] = '}';
    dd = queue_dead_doc_refused(big, sizeof big, "seed: not a string", 5);
    ck_assert_uint_lt(strlen(dd), 1400);
    ck_assert_ptr_nonnull(strstr(dd, "\"raw_bytes\":3000"));
    char sum[65], want[90];
    hash_sha256_hex(big, sizeof big, sum);
    snprintf(want, sizeof want, "\"raw_sha256\":\"%s\"", sum);
    ck_assert_ptr_nonnull(strstr(dd, want));
    free(dd);
    /* objects keep their order and numbers exactly */
    doc = "{\"v\":1,\"id\":\"z\",\"angle\":33.333333333333336,\"created_at\":1764000000123}";
    dd = queue_dead_doc(doc, strlen(doc), "e", 5, 3);
    back = unwrap_ok(dd, &blen, id);
    ck_assert_str_eq(back, doc);
    ck_assert_str_eq(id, "z");
    free(back);
    free(dd);
}
END_TEST

/* ---- supervisor duties ---- */

START_TEST(promote_moves_only_due)
{
    aq_err e = {0};
    int64_t now = now_ms();
    enqueue("p1");
    raw("HSET %s queue other", K("job:p1")); /* its hash names another queue */
    raw("LPOP %s", K("queue:default"));
    raw("ZADD %s %lld %s", K("delayed"), (long long)(now - 10), doc_of("p1"));
    raw("ZADD %s %lld %s", K("delayed"), (long long)(now - 5), doc_of("p2"));
    raw("ZADD %s %lld %s", K("delayed"), (long long)now, "garbage");
    raw("ZADD %s %lld %s", K("delayed"), (long long)(now + 60000), doc_of("p4"));
    int moved = -1;
    ck_assert_int_eq(queue_promote_due(Q, now, 100, &moved, &e), 0);
    ck_assert_int_eq(moved, 3);
    ck_assert_int_eq(raw_int("ZCARD %s", K("delayed")), 1);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:other")), 1);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 2); /* p2 (no hash) + garbage */
    ck_assert_str_eq(hget(K("job:p1"), "state"), "queued");
    ck_assert_int_eq(queue_promote_due(Q, now, 100, &moved, &e), 0);
    ck_assert_int_eq(moved, 0);
    /* limit */
    for (int i = 0; i < 5; i++)
        raw("ZADD %s 1 d%d", K("delayed"), i);
    ck_assert_int_eq(queue_promote_due(Q, now, 2, &moved, &e), 0);
    ck_assert_int_eq(moved, 2);
}
END_TEST

START_TEST(promote_exactly_once_concurrently)
{
    raw("EVAL %s 1 %s",
        "for i = 1, 1000 do redis.call('ZADD', KEYS[1], i, '{\"id\":\"c' .. i .. '\"}') end",
        K("delayed"));
    ck_assert_int_eq(raw_int("ZCARD %s", K("delayed")), 1000);
    int fds[2][2];
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        ck_assert_int_eq(pipe(fds[c]), 0);
        pids[c] = fork();
        ck_assert_int_ge(pids[c], 0);
        if (pids[c] == 0) {
            aq_err e = {0};
            queue *q = queue_open(&CFG, &e);
            int total = 0, moved = 0;
            do {
                if (!q || queue_promote_due(q, now_ms(), 7, &moved, &e) < 0)
                    _exit(1);
                total += moved;
            } while (moved > 0);
            queue_close(q);
            ssize_t w = write(fds[c][1], &total, sizeof total);
            _exit(w == sizeof total ? 0 : 1);
        }
        close(fds[c][1]);
    }
    int sum = 0;
    for (int c = 0; c < 2; c++) {
        int total = 0, st = 0;
        ck_assert_int_eq(read(fds[c][0], &total, sizeof total), (ssize_t)sizeof total);
        close(fds[c][0]);
        waitpid(pids[c], &st, 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        sum += total;
    }
    ck_assert_int_eq(sum, 1000);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 1000);
    ck_assert_int_eq(raw_int("ZCARD %s", K("delayed")), 0);
    /* no document twice: a set of them has 1000 members */
    raw("EVAL %s 2 %s %s",
        "for _, d in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do redis.call('SADD', KEYS[2], d) end",
        K("queue:default"), K("uniq"));
    ck_assert_int_eq(raw_int("SCARD %s", K("uniq")), 1000);
}
END_TEST

START_TEST(requeue_worker_back_or_dead)
{
    aq_err e = {0};
    enqueue("q1");
    enqueue("q2");
    enqueue("q3");
    take_expect("W:1", "q1");
    take_expect("W:1", "q2");
    start("W:1", "q1");
    start("W:1", "q2"); /* q2 started max_attempts (2) times: a poison pill */
    raw("HSET %s attempts 2", K("job:q2"));
    raw("LPUSH %s %s", K("processing:W:1"), "garbage");
    int rec = 0, dead = 0;
    ck_assert_int_eq(queue_requeue_worker(Q, "W:1", &IDENT, &rec, &dead, &e), 0);
    ck_assert_int_eq(rec, 1);
    ck_assert_int_eq(dead, 2);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:W:1")), 0);
    /* q1 is taken next, before q3 that waited in the queue */
    take_expect("W:2", "q1");
    take_expect("W:2", "q3");
    ck_assert_str_eq(hget(K("stats"), "recovered"), "1");
    ck_assert_str_eq(hget(K("stats"), "dead"), "2");
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "4"); /* q1..q3 + the garbage */
    ck_assert_str_eq(hget(K("job:q2"), "state"), "dead");
    ck_assert_str_eq(hget(K("job:q2"), "error"), "worker died 2 times while running it");
    ck_assert_int_gt(raw_int("TTL %s", K("job:q2")), 0);
    redisReply *r = raw("LRANGE %s 0 -1", K("dead"));
    ck_assert_uint_eq(r->elements, 2);
    bool saw_raw = false, saw_q2 = false;
    for (size_t i = 0; i < r->elements; i++) {
        saw_raw |= strstr(r->element[i]->str, "\"raw\":\"garbage\"") &&
                   strstr(r->element[i]->str, "not a JSON object");
        saw_q2 |= strstr(r->element[i]->str, "\"id\":\"q2\"") &&
                  strstr(r->element[i]->str, "\"attempts\":2");
    }
    ck_assert(saw_raw && saw_q2);

    /* a per-job max_attempts wins over the configured one */
    const char *d = "{\"id\":\"q9\",\"max_attempts\":5}";
    ck_assert_int_eq(queue_enqueue(Q, NULL, "q9", d, strlen(d), 0, &e), 0);
    char *doc;
    size_t len;
    ck_assert_int_eq(sq_take(Q, "W:3", 0, &doc, &len, &e), 1);
    free(doc);
    raw("HSET %s attempts 3", K("job:q9"));
    ck_assert_int_eq(queue_requeue_worker(Q, "W:3", &IDENT, &rec, &dead, &e), 0);
    ck_assert_int_eq(rec, 1);
    ck_assert_int_eq(dead, 0);
}
END_TEST

START_TEST(recover_only_silent_workers)
{
    aq_err e = {0};
    aq_config quick;
    make_cfg(&quick, "[worker]\nheartbeat_interval_s = 1\nheartbeat_ttl_s = 2\n");
    quick.worker.heartbeat_ttl_s = 1; /* below what config allows, to keep the test short */
    queue *fast = open_q(&quick);
    queue_beat dying = {"D:1", "D", 1, 1, "busy", "v1", 0, 0, 100, 1};
    queue_beat living = {"L:2", "L", 2, 1, "busy", "v2", 0, 0, 100, 1};
    /* both beat with the 10 s TTL first */
    ck_assert_int_eq(queue_heartbeat(Q, &dying, 1, &e), 0);
    ck_assert_int_eq(queue_heartbeat(Q, &living, 1, &e), 0);
    enqueue("v1");
    enqueue("v2");
    take_expect("D:1", "v1");
    take_expect("L:2", "v2");
    start("D:1", "v1");
    start("L:2", "v2");

    /* while both beat, nothing is recovered */
    int rec = -1, dead = -1;
    ck_assert_int_eq(queue_recover_dead(Q, &IDENT, &rec, &dead, &e), 0);
    ck_assert_int_eq(rec, 0);

    /* D's last beat carries a 1 s TTL, then D falls silent; L keeps beating */
    ck_assert_int_eq(queue_heartbeat(fast, &dying, 1, &e), 0);
    for (int i = 0; i < 300 && raw_int("EXISTS %s", K("worker:D:1")); i++)
        sup_sleep_ms(100);
    ck_assert_int_eq(raw_int("EXISTS %s", K("worker:D:1")), 0);
    ck_assert_int_eq(queue_heartbeat(Q, &living, 1, &e), 0);

    /* someone else holds the lock: we do nothing and leave their lock */
    raw("SET %s other PX 60000", K("lock:recovery"));
    ck_assert_int_eq(queue_recover_dead(Q, &IDENT, &rec, &dead, &e), 0);
    ck_assert_int_eq(rec, 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:D:1")), 1);
    raw("DEL %s", K("lock:recovery"));

    ck_assert_int_eq(queue_recover_dead(Q, &IDENT, &rec, &dead, &e), 0);
    ck_assert_int_eq(rec, 1);
    ck_assert_int_eq(dead, 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:D:1")), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:L:2")), 1);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 1);
    ck_assert_int_eq(raw_int("SISMEMBER %s D:1", K("workers")), 0);
    ck_assert_int_eq(raw_int("SISMEMBER %s L:2", K("workers")), 1);
    ck_assert_int_eq(raw_int("EXISTS %s", K("lock:recovery")), 0); /* ours, released */
    ck_assert_str_eq(hget(K("job:v1"), "state"), "queued");
    ck_assert_str_eq(hget(K("job:v2"), "state"), "running");
    queue_close(fast);
}
END_TEST

/* ---- heartbeats and operators ---- */

static int collect_worker(const queue_worker_info *w, void *ud)
{
    queue_worker_info *out = ud;
    int slot = strcmp(w->id, "H:10") == 0 ? 0 : 1;
    out[slot] = *w;
    return 0;
}

START_TEST(heartbeat_fields_and_gone)
{
    aq_err e = {0};
    queue_beat b[2] = {{"H:10", "H", 10, 5, "busy", "j1", 3, 1, 2048, 1},
                       {"H:11", "H", 11, 6, "idle", "", 0, 0, 1024, 0}};
    int64_t t0 = now_ms();
    ck_assert_int_eq(queue_heartbeat(Q, b, 2, &e), 0);
    const char *k = K("worker:H:10");
    ck_assert_str_eq(hget(k, "host"), "H");
    ck_assert_str_eq(hget(k, "pid"), "10");
    ck_assert_str_eq(hget(k, "queue"), "default");
    ck_assert_str_eq(hget(k, "started_at"), "5");
    ck_assert_int_ge(atoll(hget(k, "beat_at")), t0);
    ck_assert_str_eq(hget(k, "state"), "busy");
    ck_assert_str_eq(hget(k, "job"), "j1");
    ck_assert_str_eq(hget(k, "done"), "3");
    ck_assert_str_eq(hget(k, "failed"), "1");
    ck_assert_str_eq(hget(k, "rss_kb"), "2048");
    long long ttl = raw_int("TTL %s", k);
    ck_assert(ttl > 0 && ttl <= 10);
    ck_assert_int_eq(raw_int("SCARD %s", K("workers")), 2);

    /* one registered worker whose key is gone is listed as not alive */
    raw("DEL %s", K("worker:H:11"));
    queue_worker_info w[2];
    memset(w, 0, sizeof w);
    ck_assert_int_eq(queue_workers(Q, collect_worker, w, &e), 0);
    ck_assert(w[0].alive);
    ck_assert_str_eq(w[0].state, "busy");
    ck_assert_str_eq(w[0].job, "j1");
    ck_assert_int_eq(w[0].done, 3);
    ck_assert_int_eq(w[0].rss_kb, 2048);
    ck_assert_int_eq(w[0].pid, 10);
    ck_assert(!w[1].alive);
    ck_assert_str_eq(w[1].id, "H:11");
    ck_assert_str_eq(w[1].host, "H");
    ck_assert_int_eq(w[1].pid, 11);

    ck_assert_int_eq(queue_worker_gone(Q, "H:10", &e), 0);
    ck_assert_int_eq(raw_int("EXISTS %s", k), 0);
    ck_assert_int_eq(raw_int("SISMEMBER %s H:10", K("workers")), 0);
}
END_TEST

START_TEST(stats_add_up)
{
    aq_err e = {0};
    queue_beat b = {"S:1", "S", 1, 1, "busy", "", 0, 0, 0, 0};
    ck_assert_int_eq(queue_heartbeat(Q, &b, 1, &e), 0);
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "st%d", i);
        enqueue(id);
    }
    take_expect("S:1", "st0");
    start("S:1", "st0");
    ack("S:1", "st0");
    take_expect("S:1", "st1");
    start("S:1", "st1");
    ck_assert(!retry_at("S:1", "st1", "x", now_ms() + 60000));
    take_expect("S:1", "st2");
    queue_stats s;
    ck_assert_int_eq(queue_stats_get(Q, &s, &e), 0);
    ck_assert_int_eq(s.queued, 1);
    ck_assert_int_eq(s.processing, 1);
    ck_assert_int_eq(s.delayed, 1);
    ck_assert_int_eq(s.dead, 0);
    ck_assert_int_eq(s.enqueued, 4);
    ck_assert_int_eq(s.started, 2);
    ck_assert_int_eq(s.done, 1);
    ck_assert_int_eq(s.retried, 1);
    ck_assert_int_eq(s.failed, 0);
    ck_assert_int_eq(s.dead_total, 0);
    ck_assert_int_eq(s.recovered, 0);

    char pol[64];
    ck_assert_int_eq(queue_maxmemory_policy(Q, pol, sizeof pol, &e), 0);
    ck_assert_str_eq(pol, "noeviction");
}
END_TEST

static int collect_dead(const char *doc, void *ud)
{
    int *n = ud;
    (*n)++;
    return strstr(doc, "\"error\"") ? 0 : 1;
}

START_TEST(dead_list_retry_purge)
{
    aq_err e = {0};
    const char *ids[] = {"y1", "y2"};
    for (int i = 0; i < 2; i++) {
        enqueue(ids[i]);
        take_expect("h:1", ids[i]);
        start("h:1", ids[i]);
        const char *d = doc_of(ids[i]);
        char *dd = queue_dead_doc(d, strlen(d), "always fails", 1, 1);
        ck_assert(!bury("h:1", d, strlen(d), ids[i], QUEUE_DEAD, "always fails", dd));
        free(dd);
    }
    char *raw_dead = queue_dead_doc("oops", 4, "not JSON", 1, 0);
    raw("LPUSH %s %s", K("dead"), raw_dead);
    free(raw_dead);

    int n = 0;
    ck_assert_int_eq(queue_dead_list(Q, 0, -1, collect_dead, &n, &e), 0);
    ck_assert_int_eq(n, 3);

    ck_assert_int_eq(queue_dead_retry(Q, "y1", false, &n, &e), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(raw_int("LLEN %s", K("dead")), 2);
    redisReply *r = raw("LINDEX %s 0", K("queue:default"));
    ck_assert_str_eq(r->str, doc_of("y1")); /* the original document again */
    ck_assert_str_eq(hget(K("job:y1"), "state"), "queued");
    ck_assert_str_eq(hget(K("job:y1"), "attempts"), "0");
    ck_assert_int_eq(raw_int("TTL %s", K("job:y1")), -1);
    ck_assert_int_eq(queue_dead_retry(Q, "nothere", false, &n, &e), 0);
    ck_assert_int_eq(n, 0);

    ck_assert_int_eq(queue_dead_retry(Q, NULL, true, &n, &e), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(raw_int("LLEN %s", K("dead")), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 3);
    ck_assert_int_eq(raw_int("LPOS %s oops", K("queue:default")) >= 0, 1);

    raw("LPUSH %s a b c", K("dead"));
    ck_assert_int_eq(queue_dead_purge(Q, &n, &e), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(raw_int("EXISTS %s", K("dead")), 0);
}
END_TEST

START_TEST(control_post_and_read)
{
    aq_err e = {0};
    char last[48] = "0";
    queue_control c[4];
    size_t n = 9;
    ck_assert_int_eq(queue_control_read(Q, last, c, 4, &n, &e), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(queue_control_post(Q, "all", "quiet", &e), 0);
    ck_assert_int_eq(queue_control_post(Q, "host:H", "resume", &e), 0);
    ck_assert_int_eq(queue_control_post(Q, "worker:H:1", "stop", &e), 0);
    ck_assert_int_eq(queue_control_read(Q, last, c, 2, &n, &e), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(c[0].target, "all");
    ck_assert_str_eq(c[0].cmd, "quiet");
    ck_assert_str_eq(c[1].target, "host:H");
    ck_assert_str_eq(last, c[1].id);
    ck_assert_int_eq(queue_control_read(Q, last, c, 4, &n, &e), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(c[0].target, "worker:H:1");
    ck_assert_str_eq(c[0].cmd, "stop");
    ck_assert_int_eq(queue_control_read(Q, last, c, 4, &n, &e), 0);
    ck_assert_uint_eq(n, 0);
    /* "from now" skips what came before */
    snprintf(last, sizeof last, "%lld-0", (long long)now_ms() + 1000);
    ck_assert_int_eq(queue_control_read(Q, last, c, 4, &n, &e), 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(events_wait_sees_job)
{
    aq_err e = {0};
    char last[48];
    ck_assert_int_eq(queue_events_last(Q, last, &e), 0);
    ck_assert_str_eq(last, "0-0");
    enqueue("ev0");
    ck_assert_int_eq(queue_events_last(Q, last, &e), 0);
    ck_assert_str_ne(last, "0-0");
    bool seen = true;
    ck_assert_int_eq(queue_events_wait(Q, last, 100, "ev1", &seen, &e), 0); /* quiet */
    ck_assert(!seen);
    enqueue("other");
    enqueue("ev1");
    ck_assert_int_eq(queue_events_wait(Q, last, 100, "ev1", &seen, &e), 0);
    ck_assert(seen);
    ck_assert_int_eq(queue_events_wait(Q, last, 100, "ev1", &seen, &e), 0);
    ck_assert(!seen);
}
END_TEST

/* ---- outages ---- */

/* The test restarts Redis in its own (forked) process, so the parent's R
 * still names the first server: the test leaves the new pid in a file and
 * the teardown stops that one, checking it is still a redis-server. */
static void note_pid(void)
{
    sup_redis_note_pid(&R);
}

static void outage_down(void)
{
    sup_redis_stop_noted(&R);
    redis_down();
}

START_TEST(restart_then_reconnect)
{
    aq_err e = {0};
    enqueue("o1");
    sup_redis_stop(&R);
    int rc = queue_enqueue(Q, NULL, "o2", "{}", 2, 0, &e);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_ptr_nonnull(strstr(e.msg, "redis 127.0.0.1:"));
    ck_assert_int_eq(queue_ensure(Q, &e), AQ_EAGAIN); /* still down: refused */
    sup_redis_restart(&R);
    note_pid();
    ck_assert_int_eq(queue_ensure(Q, &e), 0);
    redisFree(RAW);
    RAW = redisConnect("127.0.0.1", R.port);
    ck_assert_int_eq(queue_enqueue(Q, NULL, "o2", "{}", 2, 0, &e), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 2); /* o1 kept by the AOF */

    /* a blocked take sees the server go away as AQ_EAGAIN, not a hang */
    raw("DEL %s", K("queue:default"));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char *doc;
        size_t len;
        queue_big big;
        aq_err e2 = {0};
        queue *q = queue_open(&CFG, &e2);
        int r2 = q ? queue_take_bounded(q, "h:1", 20000, 64 * 1024, &doc, &len, &big, &e2) : -99;
        queue_close(q);
        _exit(r2 == AQ_EAGAIN ? 0 : 1);
    }
    /* stop the server only once the child is blocked in BLMOVE */
    bool blocked = false;
    for (int i = 0; i < 300 && !blocked; i++) {
        blocked = strstr(raw("CLIENT LIST")->str, "cmd=blmove") != NULL;
        if (!blocked)
            sup_sleep_ms(50);
    }
    ck_assert_msg(blocked, "the child never blocked in BLMOVE");
    sup_redis_stop(&R);
    int st = sup_wait(pid, 30000);
    ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sup_redis_restart(&R);
    note_pid();
    ck_assert_int_eq(queue_ensure(Q, &e), 0);
}
END_TEST

/* A TCP proxy to R that closes the client's connection instead of passing
 * on the first reply holding "CUTME": a command done by Redis whose reply
 * is lost, as when Redis stops right after running it. */
static void relay(int cfd, int port, const char *flag)
{
    int sfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(sfd, (struct sockaddr *)&a, sizeof a) < 0)
        _exit(1);
    char b[65536];
    struct pollfd p[2] = {{cfd, POLLIN, 0}, {sfd, POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0)
            _exit(1);
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(p[i].fd, b, sizeof b);
            if (n <= 0)
                _exit(0);
            if (i == 1 && access(flag, F_OK) != 0 && memmem(b, (size_t)n, "CUTME", 5)) {
                sup_write_file(flag, "cut\n");
                _exit(0); /* closes both ends: the reply never arrives */
            }
            if (write(p[1 - i].fd, b, (size_t)n) != n)
                _exit(0);
        }
    }
}

static pid_t proxy_start(int listen_port, const char *flag)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(listen_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* dies with the test even when an assertion ends it early, and
         * keeps no pipe of the test runner open */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(0);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        signal(SIGCHLD, SIG_IGN);
        for (;;) {
            int cfd = accept(lfd, NULL, NULL);
            if (cfd < 0)
                continue;
            if (fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(lfd);
                relay(cfd, R.port, flag);
            }
            close(cfd);
        }
    }
    close(lfd);
    return pid;
}

/* A handle on R through a cutting proxy (proxy_start) whose flag file is
 * cut.PID.tag; *proxy receives the proxy's pid. */
static queue *open_cut(const char *tag, char flag[300], pid_t *proxy)
{
    snprintf(flag, 300, "%s/cut.%d.%s", R.dir, (int)getpid(), tag);
    int port = sup_free_port();
    *proxy = proxy_start(port, flag);
    aq_config via = CFG;
    via.redis.port = port;
    aq_err e = {0};
    queue *q = queue_open(&via, &e);
    if (!q) {
        kill(*proxy, SIGKILL);
        ck_abort_msg("open through the proxy: %s", e.msg);
    }
    return q;
}

static void close_cut(queue *q, pid_t proxy)
{
    queue_close(q);
    kill(proxy, SIGKILL); /* its relays follow (PDEATHSIG) */
    waitpid(proxy, NULL, 0);
}

/* A take whose reply is lost leaves the job in the worker's processing
 * list, where queue_processing (the worker's reconcile) finds it: never
 * stranded. For the cycle, the outcomes it carried are sent again and
 * counted once. */
START_TEST(take_with_lost_reply)
{
    char flag[300];
    pid_t proxy;
    queue *q = open_cut("take", flag, &proxy);
    aq_err e = {0};
    /* the idle worker's blocking take */
    raw("LPUSH %s %s", K("queue:default"), "{\"id\":\"CUTME\"}");
    char *doc = NULL;
    size_t len;
    queue_big big;
    int rc = queue_take_bounded(q, "W:9", 1000, 64 * 1024, &doc, &len, &big, &e);
    ck_assert_int_eq(access(flag, F_OK), 0); /* the proxy did cut it */
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:W:9")), 1); /* moved, reply lost */
    /* the worker's next look at what it holds hands over that job */
    queue_taken t;
    rc = queue_processing(q, "W:9", 64 * 1024, &t, &e);
    ck_assert_msg(rc == 0, "processing after the lost reply: %d %s", rc, e.msg);
    ck_assert_uint_eq(t.n, 1);
    ck_assert_str_eq(t.doc[0], "{\"id\":\"CUTME\"}");
    queue_taken_free(&t);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:W:9")), 1);
    /* and then takes normally again */
    ck_assert_int_eq(sq_take(q, "W:9", 0, &doc, &len, &e), 0);
    close_cut(q, proxy);

    /* the cycle: it records k1 done and takes the next; its reply is lost */
    q = open_cut("cycle", flag, &proxy);
    enqueue("k1");
    take_expect("W:8", "k1");
    start("W:8", "k1");
    raw("LPUSH %s %s", K("queue:default"), "{\"id\":\"CUTME2\"}");
    const char *d = doc_of("k1");
    queue_outcome o = {.doc = d, .len = strlen(d), .id = "k1", .kind = QUEUE_DONE,
                       .outputs = "{}", .duration_ms = 1};
    rc = queue_cycle(q, "W:8", &o, 1, NULL, NULL, 0, 1, 64 * 1024, &t, &e);
    ck_assert_int_eq(access(flag, F_OK), 0);
    ck_assert_int_eq(rc, AQ_EAGAIN);
    ck_assert_str_eq(hget(K("job:k1"), "state"), "done"); /* it did run */
    ck_assert_str_eq(hget(K("stats"), "done"), "1");
    /* the outcome sent again finds its document gone: stale, counted once */
    rc = queue_cycle(q, "W:8", &o, 1, NULL, NULL, 0, 0, 64 * 1024, &t, &e);
    ck_assert_msg(rc == 0, "cycle after the lost reply: %d %s", rc, e.msg);
    queue_taken_free(&t);
    ck_assert(o.stale);
    ck_assert_str_eq(hget(K("stats"), "done"), "1");
    ck_assert_int_eq(queue_processing(q, "W:8", 64 * 1024, &t, &e), 0);
    ck_assert_uint_eq(t.n, 1);
    ck_assert_str_eq(t.doc[0], "{\"id\":\"CUTME2\"}");
    queue_taken_free(&t);
    close_cut(q, proxy);
}
END_TEST

/* READONLY (a failover demoted our server) and BUSY (a script hogs it) are
 * transient: AQ_EAGAIN, then the handle reconnects and works again. */
START_TEST(transient_replies)
{
    aq_err e = {0};
    raw("REPLICAOF 127.0.0.1 1");
    int rc = queue_enqueue(Q, NULL, "ro1", "{}", 2, 0, &e);
    ck_assert_msg(rc == AQ_EAGAIN && strstr(e.msg, "READONLY"), "%d %s", rc, e.msg);
    raw("REPLICAOF NO ONE");
    ck_assert_int_eq(queue_enqueue(Q, NULL, "ro1", "{}", 2, 0, &e), 0);

    raw("CONFIG SET busy-reply-threshold 100");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        redisContext *c = redisConnect("127.0.0.1", R.port);
        redisReply *r = redisCommand(c, "EVAL %s 0", "while true do end");
        int ok = r && r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        redisFree(c);
        _exit(ok ? 0 : 1);
    }
    /* wait (generously) until the server answers BUSY to everyone */
    bool busy = false;
    for (int i = 0; i < 300 && !busy; i++) {
        redisReply *p = raw("PING");
        busy = p->type == REDIS_REPLY_ERROR && strncmp(p->str, "BUSY", 4) == 0;
        if (!busy)
            sup_sleep_ms(50);
    }
    ck_assert_msg(busy, "the busy script never made the server BUSY");
    rc = queue_enqueue(Q, NULL, "busy1", "{}", 2, 0, &e);
    ck_assert_msg(rc == AQ_EAGAIN && strstr(e.msg, "BUSY"), "%d %s", rc, e.msg);
    raw("SCRIPT KILL");
    int st = sup_wait(pid, 10000);
    ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(queue_enqueue(Q, NULL, "busy1", "{}", 2, 0, &e), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 2);
    raw("CONFIG SET busy-reply-threshold 5000");
}
END_TEST

START_TEST(evalsha_after_script_flush)
{
    aq_err e = {0};
    enqueue("sf1");
    raw("SCRIPT FLUSH");
    enqueue("sf2"); /* NOSCRIPT -> EVAL */
    ck_assert_str_eq(hget(K("job:sf2"), "state"), "queued");
    raw("SCRIPT FLUSH");
    queue_item items[2] = {{"sf3", "{}", 2, 0}, {"sf4", "{}", 2, 0}};
    ck_assert_int_eq(queue_enqueue_many(Q, NULL, items, 2, &e), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("queue:default")), 4);
    ck_assert_str_eq(hget(K("stats"), "enqueued"), "4");
}
END_TEST

START_TEST(auth_and_select)
{
    raw("CONFIG SET requirepass s3cret-pw");
    aq_err e = {0};
    aq_config c;
    char url[200];
    snprintf(url, sizeof url, "url = redis://:s3cret-pw@127.0.0.1:%d/3\n", R.port);
    char text[400];
    snprintf(text, sizeof text, "[redis]\n%snamespace = au\n", url);
    ck_assert_int_eq(config_load_string(&c, text, "t.ini", &e), 0);
    queue *q = queue_open(&c, &e);
    ck_assert_msg(q != NULL, "%s", e.msg);
    ck_assert_int_eq(queue_enqueue(q, NULL, "au1", "{}", 2, 0, &e), 0);
    queue_close(q);
    redisReply *r = redisCommand(RAW, "AUTH s3cret-pw");
    freeReplyObject(r);
    r = redisCommand(RAW, "SELECT 3");
    freeReplyObject(r);
    ck_assert_int_eq(raw_int("LLEN au:queue:default"), 1);

    snprintf(text, sizeof text, "[redis]\nurl = redis://:wrong-pw@127.0.0.1:%d/0\n", R.port);
    ck_assert_int_eq(config_load_string(&c, text, "t.ini", &e), 0);
    q = queue_open(&c, &e);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(e.code, AQ_EPERM);
    ck_assert_ptr_null(strstr(e.msg, "wrong-pw"));
    ck_assert_ptr_nonnull(strstr(e.msg, "AUTH"));
    raw("CONFIG SET requirepass %s", "");

    /* an ACL user (user + password) who may not run CONFIG: the policy
     * still comes, from INFO memory */
    raw("ACL SETUSER lim on >lim-pw ~* &* +@all -config");
    snprintf(text, sizeof text, "[redis]\nurl = redis://lim:lim-pw@127.0.0.1:%d/0\n", R.port);
    ck_assert_int_eq(config_load_string(&c, text, "t.ini", &e), 0);
    q = queue_open(&c, &e);
    ck_assert_msg(q != NULL, "%s", e.msg);
    char pol[64] = "";
    ck_assert_msg(queue_maxmemory_policy(q, pol, sizeof pol, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(pol, "noeviction");
    queue_close(q);
    raw("ACL DELUSER lim");
}
END_TEST

/* After a lost reply a worker lists what it holds: documents over the limit
 * come back as size and head only, never whole. */
START_TEST(processing_list_is_bounded)
{
    aq_err e = {0};
    size_t n = 100 * 1024;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, 'b', n);
    ck_assert_int_eq(raw("RPUSH %s small-1 %b small-2", K("processing:w:1"), big, n)->type,
                     REDIS_REPLY_INTEGER);
    free(big);
    queue_taken t;
    ck_assert_int_eq(queue_processing(Q, "w:1", 64 * 1024, &t, &e), 0);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_str_eq(t.doc[0], "small-1");
    ck_assert_str_eq(t.doc[1], "small-2");
    ck_assert_uint_eq(t.nbig, 1);
    ck_assert_uint_eq(t.big[0].size, n);
    ck_assert_uint_eq(t.big[0].head_len, QUEUE_DEAD_RAW_MAX);
    ck_assert_int_eq(t.big[0].head[0], 'b');
    queue_taken_free(&t);
    /* and it can be buried from that alone, without a SHA-256 */
    queue_big g = {.size = n, .head_len = 3};
    memcpy(g.head, "bbb", 3);
    ck_assert_int_eq(queue_bury_oversized(Q, "w:1", &g, 64 * 1024, "too big", &e), 0);
    ck_assert_int_eq(raw_int("LLEN %s", K("processing:w:1")), 2);
    ck_assert_int_eq(raw_int("LLEN %s", K("dead")), 1);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, redis_up, redis_down);
    tcase_add_checked_fixture(tc, q_setup, q_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, enqueue_sets_hash_counters_event);
    tcase_add_test(tc, processing_list_is_bounded);
    tcase_add_test(tc, take_is_fifo_and_waits);
    tcase_add_test(tc, start_counts_attempts_and_raw_pushes);
    tcase_add_test(tc, ack_records_done_once);
    tcase_add_test(tc, cycle_records_starts_and_takes_in_one_call);
    tcase_add_test(tc, cycle_take_stops_before_oversized);
    tcase_add_test(tc, stale_ack_after_recovery);
    tcase_add_test(tc, fail_retry_and_dead);
    tcase_add_test(tc, dead_doc_forms);
    tcase_add_test(tc, promote_moves_only_due);
    tcase_add_test(tc, promote_exactly_once_concurrently);
    tcase_add_test(tc, requeue_worker_back_or_dead);
    tcase_add_test(tc, recover_only_silent_workers);
    tcase_add_test(tc, heartbeat_fields_and_gone);
    tcase_add_test(tc, stats_add_up);
    tcase_add_test(tc, dead_list_retry_purge);
    tcase_add_test(tc, control_post_and_read);
    tcase_add_test(tc, events_wait_sees_job);
    tcase_add_test(tc, evalsha_after_script_flush);
    tcase_add_test(tc, auth_and_select);
    suite_add_tcase(s, tc);

    TCase *out = tcase_create("outage");
    tcase_add_unchecked_fixture(out, redis_up, outage_down);
    tcase_add_checked_fixture(out, q_setup, q_teardown);
    tcase_set_timeout(out, 120);
    tcase_add_test(out, restart_then_reconnect);
    tcase_add_test(out, transient_replies);
    tcase_add_test(out, take_with_lost_reply);
    suite_add_tcase(s, out);
    return s;
}

int main(void)
{
    return sup_run_suite(queue_suite());
}
