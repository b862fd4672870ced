/* include/avatarq.h against a real redis-server: opening from a file and
 * from the environment, enqueueing (derived ids are stable, bad requests get
 * a clear message), batches, status, waiting, and the example program
 * examples/enqueue.c compiled and run against the built library. */
#include <check.h>
#include <hiredis/hiredis.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "avatarq.h"
#include "config.h"
#include "job.h"
#include "queue.h"
#include "support.h"
#include "support_queue.h"

static sup_redis R;
static char NS[32], DIR_[256], CONF[300];
static redisContext *RAW;
static avatarq *A;

static void redis_up(void)
{
    sup_redis_start(&R, false);
}

static void redis_down(void)
{
    sup_redis_stop(&R);
    sup_rmtree(R.dir);
}

/* Each test (its own process) gets a namespace, a temp dir and a config
 * file pointing at R. */
static void api_setup(void)
{
    static int seq; /* unique also with CK_FORK=no (e.g. under valgrind) */
    snprintf(NS, sizeof NS, "api%d.%d", (int)getpid(), seq++);
    sup_tmpdir(DIR_, sizeof DIR_);
    snprintf(CONF, sizeof CONF, "%s/config.ini", DIR_);
    char text[600];
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = %s\n[render]\ndefault_sizes = 32,64\n", R.url, NS);
    sup_write_file(CONF, text);
    RAW = redisConnect("127.0.0.1", R.port);
    ck_assert(RAW && !RAW->err);
    char err[512];
    A = avatarq_open(CONF, err, sizeof err);
    ck_assert_msg(A != NULL, "avatarq_open: %s", err);
}

static void api_teardown(void)
{
    avatarq_close(A);
    A = NULL;
    if (RAW)
        redisFree(RAW);
    RAW = NULL;
    sup_rmtree(DIR_);
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

static bool is_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

START_TEST(open_from_file_and_env)
{
    char err[512] = "";
    /* the file names an unreachable server: a transient error, no crash */
    char bad[300], text[200];
    snprintf(bad, sizeof bad, "%s/bad.ini", DIR_);
    snprintf(text, sizeof text, "[redis]\nurl = redis://:pw@127.0.0.1:1/0\nconnect_timeout_ms = 500\n");
    sup_write_file(bad, text);
    avatarq *a = avatarq_open(bad, err, sizeof err);
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(err, "127.0.0.1:1") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "pw@"));

    /* a bad file is named with its line */
    sup_write_file(bad, "[redis]\nconnect_timeout_ms = soon\n");
    ck_assert_ptr_null(avatarq_open(bad, err, sizeof err));
    ck_assert_msg(strstr(err, "bad.ini:2") != NULL, "%s", err);

    /* AVATARQ_REDIS_URL overrides the file; NULL path searches ./config.ini */
    setenv("AVATARQ_REDIS_URL", R.url, 1);
    setenv("AVATARQ_REDIS_NAMESPACE", NS, 1);
    snprintf(text, sizeof text, "[redis]\nurl = redis://127.0.0.1:1/0\n");
    sup_write_file(bad, text);
    a = avatarq_open(bad, err, sizeof err);
    ck_assert_msg(a != NULL, "env override: %s", err);
    avatarq_close(a);
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(DIR_), 0); /* holds config.ini */
    a = avatarq_open(NULL, err, sizeof err);
    ck_assert_msg(a != NULL, "default search: %s", err);
    avatarq_request r;
    avatarq_request_init(&r);
    r.seed = "env";
    char id[65];
    ck_assert_int_eq(avatarq_enqueue(a, &r, id, err, sizeof err), 0);
    avatarq_close(a);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_int_eq(raw_int("LLEN %s:queue:default", NS), 1);
    unsetenv("AVATARQ_REDIS_URL");
    unsetenv("AVATARQ_REDIS_NAMESPACE");
}
END_TEST

START_TEST(enqueue_derives_stable_ids)
{
    char err[512], id1[65], id2[65], id3[65];
    avatarq_request r;
    avatarq_request_init(&r);
    r.seed = "user-42";
    r.style = "gradient";
    r.angle = 45;
    ck_assert_int_eq(avatarq_enqueue(A, &r, id1, err, sizeof err), 0);
    ck_assert(is_hex64(id1));
    ck_assert_int_eq(avatarq_enqueue(A, &r, id2, err, sizeof err), 0);
    ck_assert_str_eq(id1, id2);
    r.seed = "user-43";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id3, err, sizeof err), 0);
    ck_assert_str_ne(id1, id3);
    /* the same request twice is one job: the second enqueue was a no-op */
    ck_assert_int_eq(raw_int("LLEN %s:queue:default", NS), 2);

    /* what was pushed is a document the worker reads back to the same id */
    redisReply *q = redisCommand(RAW, "LINDEX %s:queue:default -1", NS);
    ck_assert_int_eq(q->type, REDIS_REPLY_STRING);
    aq_config cfg;
    aq_err e = {0};
    ck_assert_int_eq(config_load(&cfg, CONF, &e), 0);
    job_limits lim;
    ck_assert_int_eq(job_limits_from_config(&lim, &cfg, &e), 0);
    job_request jr;
    ck_assert_msg(job_parse(q->str, q->len, &lim, &jr, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(jr.id, id1);
    ck_assert_int_gt(jr.created_at, 0);
    freeReplyObject(q);

    /* the same request as raw JSON without id gets the same derived id */
    char id4[65];
    ck_assert_int_eq(avatarq_enqueue_json(A, NULL,
                                          "{\"seed\":\"user-42\",\"style\":\"gradient\",\"angle\":45}",
                                          id4, err, sizeof err), 0);
    ck_assert_str_eq(id4, id1);

    /* an explicit id, a queue, a delete */
    r.id = "custom-1";
    r.queue = "low";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id3, err, sizeof err), 0);
    ck_assert_str_eq(id3, "custom-1");
    ck_assert_int_eq(raw_int("LLEN %s:queue:low", NS), 1);
    avatarq_request d;
    avatarq_request_init(&d);
    d.type = "delete";
    d.id = "custom-1";
    ck_assert_msg(avatarq_enqueue(A, &d, id3, err, sizeof err) == 0, "%s", err);

    avatarq_status st;
    ck_assert_int_eq(avatarq_status_get(A, id1, &st, err, sizeof err), 0);
    ck_assert_str_eq(st.state, "queued");
    ck_assert_str_eq(st.queue, "default");
    ck_assert_int_eq(st.attempts, 0);
    ck_assert_int_gt(st.created_at, 0);
    avatarq_status_free(&st);
}
END_TEST

START_TEST(bad_requests_are_named)
{
    char err[512] = "", id[65];
    avatarq_request r;
    avatarq_request_init(&r);
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "seed") != NULL, "%s", err);

    r.seed = "s";
    static const int small[] = {64, 9};
    r.sizes = small;
    r.nsizes = 2;
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "sizes[1]") && strstr(err, "9"), "%s", err);
    r.nsizes = 0;
    r.style = "cubist";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "style") && strstr(err, "cubist"), "%s", err);
    r.style = NULL;
    r.primary = "#12345";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "primary") != NULL, "%s", err);
    r.primary = NULL;
    r.filter = "blur";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "filter") && strstr(err, "blur"), "%s", err);
    r.filter = NULL;
    r.id = "../etc";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "id") && strstr(err, "../etc"), "%s", err);

    ck_assert_int_eq(avatarq_enqueue_json(A, NULL, "{\"seed\":", id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "invalid JSON") != NULL, "%s", err);
    ck_assert_int_eq(avatarq_enqueue_json(A, NULL, "{\"seed\":\"x\",\"sizes\":[64,0]}", id, err,
                                          sizeof err), AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "sizes[1]") != NULL, "%s", err);
    ck_assert_int_eq(avatarq_enqueue_json(A, NULL, "{\"v\":2,\"seed\":\"x\"}", id, err, sizeof err),
                     AVATARQ_EPERM);
    ck_assert_msg(strstr(err, "v") != NULL, "%s", err);
    ck_assert_int_eq(avatarq_enqueue_json(A, NULL, NULL, id, err, sizeof err), AVATARQ_EPERM);
    /* nothing reached Redis */
    ck_assert_int_eq(raw_int("EXISTS %s:queue:default", NS), 0);
    ck_assert_int_eq(raw_int("EXISTS %s:stats", NS), 0);

    avatarq_status st;
    ck_assert_int_eq(avatarq_status_get(A, "no-such-job", &st, err, sizeof err), AVATARQ_ENOTFOUND);
    ck_assert_msg(strstr(err, "no-such-job") != NULL, "%s", err);
    ck_assert_int_eq(avatarq_status_get(A, "a/b", &st, err, sizeof err), AVATARQ_EPERM);
    ck_assert_int_eq(avatarq_wait(A, "no-such-job", 100, &st, err, sizeof err), AVATARQ_ENOTFOUND);
    ck_assert_str_eq(avatarq_code_name(AVATARQ_ETIMEDOUT), "timed out");
    ck_assert_str_eq(avatarq_version(), AQ_VERSION);
}
END_TEST

/* A stand-in worker in a child process: takes the job, starts it, waits a
 * little and acknowledges it, through the worker engine's batched calls (a
 * batch of one: their `running` and `done` events name it in field `ids`,
 * which avatarq_wait must follow). */
static void fake_worker(int delay_ms)
{
    aq_config cfg;
    aq_err e = {0};
    if (config_load(&cfg, CONF, &e) < 0)
        _exit(2);
    queue *q = queue_open(&cfg, &e);
    char *doc;
    size_t len;
    if (!q || sq_take(q, "fake:1", 10000, &doc, &len, &e) != 1)
        _exit(3);
    job_limits lim;
    job_request jr;
    if (job_limits_from_config(&lim, &cfg, &e) < 0 || job_parse(doc, len, &lim, &jr, &e) < 0)
        _exit(4);
    int attempts;
    bool stale;
    if (sq_start(q, "fake:1", jr.id, jr.created_at, &attempts, &e) < 0 || attempts != 1)
        _exit(5);
    sup_sleep_ms(delay_ms);
    if (sq_done(q, "fake:1", doc, len, jr.id, "{\"64\":\"avatars/x/64.png\"}", delay_ms, &stale,
                &e) < 0 || stale)
        _exit(6);
    free(doc);
    queue_close(q);
    _exit(0);
}

START_TEST(wait_follows_events)
{
    char err[512], id[65];
    avatarq_request r;
    avatarq_request_init(&r);
    r.seed = "waiter";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), 0);
    avatarq_status st;
    /* nobody works: the deadline passes with the job still queued */
    ck_assert_int_eq(avatarq_wait(A, id, 300, &st, err, sizeof err), AVATARQ_ETIMEDOUT);
    ck_assert_str_eq(st.state, "queued");
    ck_assert_msg(strstr(err, "queued") != NULL, "%s", err);
    avatarq_status_free(&st);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        fake_worker(400);
    int rc = avatarq_wait(A, id, 20000, &st, err, sizeof err);
    ck_assert_msg(rc == 0, "wait: %d %s", rc, err);
    ck_assert_str_eq(st.state, "done");
    ck_assert_int_eq(st.attempts, 1);
    ck_assert_str_eq(st.worker, "fake:1");
    ck_assert_str_eq(st.outputs, "{\"64\":\"avatars/x/64.png\"}");
    avatarq_status_free(&st);
    int ws = sup_wait(pid, 10000);
    ck_assert(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);

    /* already final: returns at once */
    ck_assert_int_eq(avatarq_wait(A, id, 0, &st, err, sizeof err), 0);
    ck_assert_str_eq(st.state, "done");
    avatarq_status_free(&st);
}
END_TEST

START_TEST(batches_pipeline)
{
    char err[512], id[65];
    avatarq_batch *b = avatarq_batch_new(A, NULL);
    ck_assert_ptr_nonnull(b);
    avatarq_request r;
    avatarq_request_init(&r);
    char seed[32];
    for (int i = 0; i < AVATARQ_BATCH_MAX + 5; i++) {
        snprintf(seed, sizeof seed, "b%d", i);
        r.seed = seed;
        ck_assert_int_eq(avatarq_batch_add(b, &r, id, err, sizeof err), 0);
        ck_assert(is_hex64(id));
    }
    /* a full batch went out by itself; the rest waits for flush */
    ck_assert_uint_eq(avatarq_batch_pending(b), 5);
    ck_assert_int_eq(raw_int("LLEN %s:queue:default", NS), AVATARQ_BATCH_MAX);
    ck_assert_int_eq(avatarq_batch_add_json(b, "{\"seed\":\"j\",\"id\":\"bj\"}", id, err, sizeof err), 0);
    ck_assert_str_eq(id, "bj");
    ck_assert_int_eq(avatarq_batch_add_json(b, "[1]", id, err, sizeof err), AVATARQ_EPERM);
    ck_assert_uint_eq(avatarq_batch_pending(b), 6);
    ck_assert_int_eq(avatarq_batch_flush(b, err, sizeof err), 6);
    ck_assert_uint_eq(avatarq_batch_pending(b), 0);
    ck_assert_int_eq(avatarq_batch_flush(b, err, sizeof err), 0);
    ck_assert_int_eq(raw_int("LLEN %s:queue:default", NS), AVATARQ_BATCH_MAX + 6);
    ck_assert_int_eq(raw_int("HGET %s:stats enqueued", NS), AVATARQ_BATCH_MAX + 6);
    avatarq_status st;
    ck_assert_int_eq(avatarq_status_get(A, "bj", &st, err, sizeof err), 0);
    ck_assert_str_eq(st.state, "queued");
    avatarq_status_free(&st);

    /* a flush that loses its connection keeps the jobs; the next one sends them */
    ck_assert_int_eq(avatarq_batch_add_json(b, "{\"seed\":\"k\",\"id\":\"kept\"}", id, err,
                                            sizeof err), 0);
    redisReply *k = redisCommand(RAW, "CLIENT KILL TYPE normal SKIPME yes");
    ck_assert(k && k->type == REDIS_REPLY_INTEGER && k->integer >= 1);
    freeReplyObject(k);
    ck_assert_int_eq(avatarq_batch_flush(b, err, sizeof err), AVATARQ_EAGAIN);
    ck_assert_uint_eq(avatarq_batch_pending(b), 1);
    ck_assert_int_eq(avatarq_batch_flush(b, err, sizeof err), 1);
    ck_assert_int_eq(raw_int("LLEN %s:queue:default", NS), AVATARQ_BATCH_MAX + 7);
    avatarq_batch_free(b);
}
END_TEST

/* The libavatarq.a this test binary was linked with: BUILD/libavatarq.a
 * for O=DIR and SAN=1 builds, lib/libavatarq.a beside build/ for the
 * default one (see the Makefile's LIBA). */
static void library_path(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_int_gt(len, 0);
    exe[len] = '\0';
    char *build = dirname(dirname(exe)); /* …/BUILD/tests/test_api -> …/BUILD */
    snprintf(out, n, "%s/libavatarq.a", build);
    if (access(out, R_OK) == 0)
        return;
    snprintf(out, n, "%s/lib/libavatarq.a", dirname(build));
    ck_assert_msg(access(out, R_OK) == 0, "cannot find libavatarq.a for %s", exe);
}

START_TEST(example_program_enqueues)
{
    char lib[PATH_MAX + 32], cmd[8192], bin[400];
    library_path(lib, sizeof lib);
    ck_assert_msg(access("examples/enqueue.c", R_OK) == 0,
                  "run from the source tree: examples/enqueue.c not found");
    snprintf(bin, sizeof bin, "%s/enqueue", DIR_);
#if defined(__SANITIZE_ADDRESS__)
    const char *san = "-fsanitize=address,undefined";
#else
    const char *san = "";
#endif
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Werror %s -Iinclude -o %s examples/enqueue.c "
             "%s $(pkg-config --libs hiredis jansson inih libpq sqlite3 libcurl "
             "libssl libcrypto libpng libsystemd libwebp cairo gobject-2.0 harfbuzz freetype2 libdeflate) -lm",
             san, bin, lib);
    buf out = BUF_INIT;
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "compiling the example failed:\n%s\n%s", cmd,
                  out.data ? (char *)out.data : "");
    snprintf(cmd, sizeof cmd, "cd %s && AVATARQ_REDIS_URL=%s AVATARQ_REDIS_NAMESPACE=%s %s user-42 wave",
             DIR_, R.url, NS, bin);
    rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "example failed: %s", out.data ? (char *)out.data : "");
    char id[80] = "";
    sscanf((char *)out.data, "%79s", id);
    ck_assert_msg(is_hex64(id), "example printed '%s'", (char *)out.data);
    ck_assert_int_eq(raw_int("LLEN %s:queue:default", NS), 1);
    avatarq_status st;
    char err[512];
    ck_assert_int_eq(avatarq_status_get(A, id, &st, err, sizeof err), 0);
    ck_assert_str_eq(st.state, "queued");
    avatarq_status_free(&st);
    /* a bad style is refused with the field named, exit 1 */
    snprintf(cmd, sizeof cmd, "cd %s && AVATARQ_REDIS_URL=%s %s user-42 cubist", DIR_, R.url, bin);
    rc = sup_run(cmd, &out, true);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr((char *)out.data, "style") != NULL, "%s", (char *)out.data);
    buf_free(&out);
}
END_TEST

/* ---- a Redis restart while waiting ---- */

static void redis_up_aof(void)
{
    sup_redis_start(&R, true);
}

/* The test restarts Redis in its own (forked) process; it leaves the new
 * pid in a file so that this teardown stops that server too. */
static void redis_down_aof(void)
{
    sup_redis_stop_noted(&R);
    redis_down();
}

START_TEST(wait_rides_out_a_restart)
{
    char err[512], id[65];
    avatarq_request r;
    avatarq_request_init(&r);
    r.seed = "patient";
    ck_assert_int_eq(avatarq_enqueue(A, &r, id, err, sizeof err), 0);
    pid_t waiter = fork();
    ck_assert_int_ge(waiter, 0);
    if (waiter == 0) {
        /* a handle of its own, opened after the fork */
        avatarq *a = avatarq_open(CONF, err, sizeof err);
        avatarq_status st;
        int rc = a ? avatarq_wait(a, id, 60000, &st, err, sizeof err) : -99;
        bool done = rc == 0 && strcmp(st.state, "done") == 0;
        if (rc == 0)
            avatarq_status_free(&st);
        avatarq_close(a);
        _exit(done ? 0 : 1);
    }
    /* stop the server once the waiter is blocked on the events stream */
    bool blocked = false;
    for (int i = 0; i < 300 && !blocked; i++) {
        redisReply *cl = redisCommand(RAW, "CLIENT LIST");
        blocked = cl && cl->type == REDIS_REPLY_STRING && strstr(cl->str, "cmd=xread");
        freeReplyObject(cl);
        if (!blocked)
            sup_sleep_ms(50);
    }
    ck_assert_msg(blocked, "the waiter never blocked in XREAD");
    sup_redis_stop(&R);
    sup_redis_restart(&R);
    sup_redis_note_pid(&R);
    redisFree(RAW);
    RAW = redisConnect("127.0.0.1", R.port);
    ck_assert_int_eq(raw_int("LLEN %s:queue:default", NS), 1); /* kept by the AOF */
    pid_t worker = fork();
    ck_assert_int_ge(worker, 0);
    if (worker == 0)
        fake_worker(100);
    int ws = sup_wait(worker, 20000);
    ck_assert(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    ws = sup_wait(waiter, 60000);
    ck_assert_msg(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "the waiter did not see done");
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_unchecked_fixture(tc, redis_up, redis_down);
    tcase_add_checked_fixture(tc, api_setup, api_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, open_from_file_and_env);
    tcase_add_test(tc, enqueue_derives_stable_ids);
    tcase_add_test(tc, bad_requests_are_named);
    tcase_add_test(tc, wait_follows_events);
    tcase_add_test(tc, batches_pipeline);
    tcase_add_test(tc, example_program_enqueues);
    suite_add_tcase(s, tc);

    TCase *out = tcase_create("outage");
    tcase_add_unchecked_fixture(out, redis_up_aof, redis_down_aof);
    tcase_add_checked_fixture(out, api_setup, api_teardown);
    tcase_set_timeout(out, 120);
    tcase_add_test(out, wait_rides_out_a_restart);
    suite_add_tcase(s, out);
    return s;
}

int main(void)
{
    return sup_run_suite(api_suite());
}
