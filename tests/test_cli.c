/* bin/avatarq, run as a real program: bad invocations (stderr line + exit
 * code), help and version, and every command against a real redis-server,
 * a SQLite file and a local storage root in a temp dir. */
#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "avatar.h"
#include "config.h"
#include "job.h"
#include "meta.h"
#include "pngenc.h"
#include "storage.h"
#include "support.h"
#include "support_pg.h"
#include "support_s3.h"

static char g_dir[300];      /* temp dir of the current test */
static char g_conf[1024];     /* its config.ini */
static sup_redis g_redis;    /* pid 0 when not started */
static buf g_out, g_err;     /* stdout / stderr of the last run */

/* Writes the config of this test: Redis at url, SQLite and local storage
 * below g_dir, namespace "t". */
static void write_config(const char *url)
{
    char text[2048];
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = t\n"
             "[storage]\nbackend = local\n"
             "[storage.local]\nroot = %s/avatars\nfsync = false\n"
             "[database]\nbackend = sqlite\n"
             "[database.sqlite]\npath = %s/avatarq.db\n"
             "[log]\nlevel = warn\n",
             url, g_dir, g_dir);
    snprintf(g_conf, sizeof g_conf, "%s/config.ini", g_dir);
    sup_write_file(g_conf, text);
}

static void read_file(const char *path, buf *b)
{
    buf_reset(b);
    FILE *f = fopen(path, "rb");
    if (f) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            buf_append(b, chunk, n);
        fclose(f);
    }
    buf_append(b, "", 1);
    b->len--;
}

/* Runs "avatarq ARGS" (the caller adds -c when it wants it), stdout into
 * g_out and stderr into g_err; returns the exit status. */
static int run_raw(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_raw(const char *fmt, ...)
{
    char args[4096], cmd[6400], errpath[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(errpath, sizeof errpath, "%s/stderr", g_dir);
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", sup_bin("avatarq"), args, errpath);
    int rc = sup_run(cmd, &g_out, false);
    read_file(errpath, &g_err);
    return rc;
}

/* Runs "avatarq -c CONF ARGS". */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return run_raw("-c %s %s", g_conf, args);
}

static const char *out_s(void) { return g_out.data ? (const char *)g_out.data : ""; }
static const char *err_s(void) { return g_err.data ? (const char *)g_err.data : ""; }

#define assert_has(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in:\n%s", (needle), (hay))
#define assert_lacks(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) == NULL, "did not expect '%s' in:\n%s", (needle), (hay))

/* The first line of stdout, trimmed. */
static const char *first_line(void)
{
    static char line[256];
    snprintf(line, sizeof line, "%s", out_s());
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- fixtures ----
 * Servers and the base temp dir are unchecked fixtures (run in the parent
 * process), so they are stopped and removed even when a test fails; each
 * test gets its own subdirectory (config, SQLite file, storage root) and an
 * empty Redis. */

static char g_base[256];

static void new_test_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/t-XXXXXX", g_base);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void base_setup(void)
{
    sup_tmpdir(g_base, sizeof g_base);
    memset(&g_redis, 0, sizeof g_redis);
}

static void base_teardown(void)
{
    sup_rmtree(g_base);
}

static void redis_setup(void)
{
    base_setup();
    sup_redis_start(&g_redis, false);
}

static void redis_teardown(void)
{
    sup_redis_stop(&g_redis);
    sup_rmtree(g_redis.dir);
    base_teardown();
}

/* Per test, no Redis: a port nobody listens on, so usage errors that got
 * that far would show as exit 1, not 2. */
static void test_setup_offline(void)
{
    new_test_dir();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", sup_free_port());
    write_config(url);
}

static void test_setup_redis(void)
{
    new_test_dir();
    ck_assert_str_eq(sup_redis_str(&g_redis, "FLUSHALL"), "OK");
    write_config(g_redis.url);
}

static void test_teardown(void)
{
    buf_free(&g_out);
    buf_free(&g_err);
}

/* ---- bad invocations ---- */

typedef struct bad_case {
    bool global;        /* args are complete (no -c CONF added) */
    const char *args;
    const char *stderr_has;
    int status;
} bad_case;

static const bad_case bad_cases[] = {
    {true, "", "missing command", 2},
    {true, "--bogus", "unknown option --bogus", 2},
    {true, "-c", "option -c needs an argument", 2},
    {true, "-c /nonexistent/avatarq.ini stats", "/nonexistent/avatarq.ini", 2},
    {false, "frobnicate", "unknown command 'frobnicate'", 2},
    {false, "enqueue", "missing --seed", 2},
    {false, "enqueue --seed", "option --seed needs an argument", 2},
    {false, "enqueue --seed a --size 9", "--size: 9 is below 16", 2},
    {false, "enqueue --seed a --size 100000", "--size: 100000 is above 1024", 2},
    {false, "enqueue --seed a --size x", "--size: 'x' is not an integer", 2},
    {false, "enqueue --seed a --sizes 32,8", "--sizes: 8 is below 16", 2},
    {false, "enqueue --seed a --primary notacolour", "--primary: 'notacolour' is not a colour", 2},
    {false, "enqueue --seed a --foreign '#12'", "--foreign: '#12' is not a colour", 2},
    {false, "enqueue --seed a --scheme nosuch", "--scheme: 'nosuch' is not a colour scheme", 2},
    {false, "enqueue --seed a --filter blur", "--filter: 'blur' is not a filter", 2},
    {false, "enqueue --seed a --style cubist", "--style: 'cubist' is not a style", 2},
    {false, "enqueue --seed a --angle 400", "--angle: 400 is outside 0..360", 2},
    {false, "enqueue --seed a --angle north", "--angle: 'north' is not a number", 2},
    {false, "enqueue --seed a --id ../x", "--id: '../x' is not a valid id", 2},
    {false, "enqueue --seed a --id .hidden", "--id: '.hidden' is not a valid id", 2},
    {false, "enqueue --seed a --max-attempts 26", "--max-attempts: 26 is above 25", 2},
    {false, "enqueue --seed a --bogus", "unknown option --bogus", 2},
    {false, "enqueue --seed a --timeout 5", "--timeout needs --wait", 2},
    {false, "enqueue --seed a --wait --timeout -1", "--timeout: '-1'", 2},
    {false, "enqueue --delete", "--delete needs --id", 2},
    {false, "enqueue --delete --id x --seed y", "--delete takes only", 2},
    {false, "enqueue --seed a extra", "unexpected argument 'extra'", 2},
    {false, "batch --seed x", "--seed makes no sense", 2},
    {false, "batch --size 9 -", "--size: 9 is below 16", 2},
    {false, "status", "missing job ID", 2},
    {false, "status a b", "unexpected argument 'b'", 2},
    {false, "status ../x", "'../x' is not a valid id", 2},
    {false, "stats --bogus", "unknown option --bogus", 2},
    {false, "dead", "missing subcommand", 2},
    {false, "dead frob", "unknown subcommand 'frob'", 2},
    {false, "workers extra", "unexpected argument 'extra'", 2},
    {false, "quiet", "give exactly one of", 2},
    {false, "stop --all --host h1", "give exactly one of", 2},
    {false, "resume --worker", "option --worker needs an argument", 2},
    {false, "list --limit 0", "--limit: 0 is below 1", 2},
    {false, "list --after a/b", "'a/b' is not a valid id", 2},
    {false, "show", "missing avatar ID", 2},
    {false, "get abc --size 64", "missing -o FILE", 2},
    {false, "get abc -o out.png", "missing --size", 2},
    {false, "get ../x --size 64 -o out.png", "'../x' is not a valid id", 2},
    {false, "get abc --size 8 -o out.png", "--size: 8 is below 16", 2},
    {false, "delete", "missing avatar ID", 2},
    {false, "delete .x --now", "'.x' is not a valid id", 2},
    {false, "migrate --force", "unknown option --force", 2},
};

START_TEST(test_bad_invocation)
{
    const bad_case *c = &bad_cases[_i];
    int rc = c->global ? run_raw("%s", c->args) : run("%s", c->args);
    ck_assert_msg(rc == c->status, "avatarq %s: exit %d, want %d (stderr: %s)", c->args, rc,
                  c->status, err_s());
    assert_has(err_s(), c->stderr_has);
    assert_has(err_s(), "avatarq");
    /* One line: the error, nothing else (no usage dump). */
    ck_assert_msg(count_lines(err_s()) == 1, "avatarq %s: stderr is not one line:\n%s",
                  c->args, err_s());
}
END_TEST

START_TEST(test_bad_config_file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.ini", g_dir);
    sup_write_file(path, "[redis]\nnamespace = t\n\n[worker]\nprocesses = many\n");
    int rc = run_raw("-c %s stats", path);
    ck_assert_int_eq(rc, 2);
    assert_has(err_s(), "bad.ini:5");
    assert_has(err_s(), "processes");
    ck_assert_int_eq(count_lines(err_s()), 1);
}
END_TEST

START_TEST(test_help_and_version)
{
    ck_assert_int_eq(run_raw("--help"), 0);
    static const char *names[] = {"render", "sheet", "schemes", "enqueue", "batch", "status",
                                  "stats", "dead", "workers", "quiet", "resume", "stop",
                                  "health", "list", "show", "get", "delete", "migrate"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "\n  %s ", names[i]);
        assert_has(out_s(), want);
    }
    assert_has(out_s(), "AVATARQ_<SECTION>_<KEY>");
    assert_has(out_s(), "/etc/avatarq/config.ini");
    assert_has(out_s(), "Exit status");

    ck_assert_int_eq(run_raw("--version"), 0);
    ck_assert_str_eq(first_line(), "avatarq " AQ_VERSION);

    ck_assert_int_eq(run_raw("enqueue --help"), 0);
    assert_has(out_s(), "usage: avatarq enqueue");
    assert_has(out_s(), "--seed S");
    assert_has(out_s(), "--timeout S");
    /* --help needs no working config: it is answered before loading one. */
    ck_assert_int_eq(run_raw("-c /nonexistent.ini dead --help"), 0);
    assert_has(out_s(), "retry --all");
}
END_TEST

START_TEST(test_health_redacts_secrets)
{
    /* Nothing listens anywhere: every server check fails, and neither the
     * Redis password nor the PostgreSQL one (key=value or URL form) shows. */
    static const char *const conninfos[] = {
        "host=127.0.0.1 port=%d user=x password='pg sec1' dbname=y",
        "postgresql://u:pgsec2@127.0.0.1:%d/db",
    };
    for (size_t i = 0; i < 2; i++) {
        char conninfo[256], text[1024];
        snprintf(conninfo, sizeof conninfo, conninfos[i], sup_free_port());
        snprintf(text, sizeof text,
                 "[redis]\nurl = redis://:redsec@127.0.0.1:%d/0\n"
                 "[storage.local]\nroot = %s/avatars\n"
                 "[database]\nbackend = postgresql\n"
                 "[database.postgresql]\nconninfo = %s\nretries = 1\n",
                 sup_free_port(), g_dir, conninfo);
        sup_write_file(g_conf, text);
        ck_assert_int_eq(run("health"), 1);
        assert_has(out_s(), "fail redis redis://:***@127.0.0.1:");
        assert_has(out_s(), "fail database postgresql");
        assert_has(out_s(), "ok storage local");
        assert_has(out_s(), "***");
        static const char *const secrets[] = {"redsec", "pg sec1", "pgsec2"};
        for (size_t k = 0; k < 3; k++) {
            assert_lacks(out_s(), secrets[k]);
            assert_lacks(err_s(), secrets[k]);
        }
    }
}
END_TEST

START_TEST(test_offline_needs_no_config)
{
    /* A directory without config.ini, no AVATARQ_* overrides, no Redis:
     * render and schemes still work (unless /etc/avatarq/config.ini is
     * there, which a test machine does not have). */
    if (access("/etc/avatarq/config.ini", F_OK) == 0)
        return;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && env -u AVATARQ_REDIS_URL %s render --seed offline --size 32 -o a.png",
             g_dir, sup_bin("avatarq"));
    buf out = BUF_INIT;
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/a.png", g_dir);
    ck_assert_int_eq(access(path, F_OK), 0);
    snprintf(cmd, sizeof cmd, "cd %s && %s schemes", g_dir, sup_bin("avatarq"));
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    buf_append(&out, "", 1);
    assert_has((const char *)out.data, "ocean");
    buf_free(&out);
}
END_TEST

/* ---- producer commands against Redis ---- */

START_TEST(test_enqueue_same_request_same_id)
{
    ck_assert_int_eq(run("enqueue --seed alice --size 64 --style pixel"), 0);
    char id[256];
    snprintf(id, sizeof id, "%s", first_line());
    ck_assert_int_eq(strlen(id), strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"));
    ck_assert_int_ge(strlen(id), 1);
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 1);
    char want[300];
    snprintf(want, sizeof want, "\"id\":\"%s\"", id);
    assert_has(sup_redis_str(&g_redis, "LINDEX t:queue:default 0"), want);
    assert_has(sup_redis_str(&g_redis, "LINDEX t:queue:default 0"), "alice");
    ck_assert_str_eq(sup_redis_str(&g_redis, "HGET t:job:%s state", id), "queued");

    /* The same request again: the same id, and (the job still queued) no
     * second document: a no-op that says so. */
    ck_assert_int_eq(run("enqueue --style pixel --size 64 --seed alice"), 0);
    ck_assert_str_eq(first_line(), id);
    assert_has(err_s(), "already queued: not enqueued again");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 1);
    assert_has(sup_redis_str(&g_redis, "LINDEX t:queue:default 0"), want);

    /* Another seed, another id; an explicit id and queue are used as given. */
    ck_assert_int_eq(run("enqueue --seed bob --size 64"), 0);
    ck_assert_str_ne(first_line(), id);
    ck_assert_int_eq(run("enqueue --seed carol --id user-42 --queue vip --max-attempts 3"), 0);
    ck_assert_str_eq(first_line(), "user-42");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:vip"), 1);
    assert_has(sup_redis_str(&g_redis, "LINDEX t:queue:vip 0"), "\"id\":\"user-42\"");

    /* A delete job. */
    ck_assert_int_eq(run("enqueue --delete --id user-42"), 0);
    ck_assert_str_eq(first_line(), "user-42");
    assert_has(sup_redis_str(&g_redis, "LINDEX t:queue:default 0"), "\"delete\"");

    /* --wait with nobody working: the deadline passes, exit 3. */
    ck_assert_int_eq(run("enqueue --seed dave --wait --timeout 0.5"), 3);
    assert_has(err_s(), "still queued");
}
END_TEST

START_TEST(test_enqueue_redis_down)
{
    ck_assert_int_eq(run("enqueue --seed alice"), 1);
    assert_has(err_s(), "avatarq enqueue:");
    ck_assert_int_eq(count_lines(err_s()), 1);
}
END_TEST

START_TEST(test_batch_file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/jobs.txt", g_dir);
    sup_write_file(path, "alice\n"
                         "{\"seed\":\"bob\",\"sizes\":[32]}\n"
                         "{\"seed\":\"x\",\"sizes\":[9]}\n"
                         "\n"
                         "{not json\n"
                         "carol\r\n"
                         "{\"seed\":\"eve\",\"id\":\"../etc\"}\n");
    int rc = run("batch --size 48 %s", path);
    ck_assert_int_eq(rc, 1); /* some lines were rejected */
    assert_has(out_s(), "enqueued 3 jobs in");
    assert_has(out_s(), "3 rejected");
    assert_has(err_s(), "line 3:");
    assert_has(err_s(), "sizes[0]");
    assert_has(err_s(), "line 5:");
    assert_has(err_s(), "line 7:");
    assert_lacks(err_s(), "line 1:");
    assert_lacks(err_s(), "line 6:");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 3);
    /* Options apply to plain seeds; a JSON line keeps its own sizes. */
    const char *alice = sup_redis_str(&g_redis, "LINDEX t:queue:default -1");
    assert_has(alice, "alice");
    assert_has(alice, "48");
    const char *bob = sup_redis_str(&g_redis, "LINDEX t:queue:default -2");
    assert_has(bob, "bob");
    assert_has(bob, "\"sizes\":[32]");
    assert_lacks(bob, "[48]");
    /* carol: the trailing CR is not part of the seed. */
    const char *carol = sup_redis_str(&g_redis, "LINDEX t:queue:default 0");
    assert_has(carol, "\"carol\"");
    ck_assert_int_eq(sup_redis_int(&g_redis, "HGET t:stats enqueued"), 3);
}
END_TEST

START_TEST(test_batch_stdin_many)
{
    /* 2,500 seeds crosses the 1,000-job chunk twice. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "seq 1 2500 | sed 's/^/user-/' > %s/seeds.txt", g_dir);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
    ck_assert_int_eq(run("batch --sizes 32,64 - < %s/seeds.txt", g_dir), 0);
    assert_has(out_s(), "enqueued 2500 jobs in");
    assert_has(out_s(), "0 rejected");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 2500);
    /* Same seeds again: the same ids (derived), still queued: no-ops. */
    ck_assert_int_eq(run("batch --sizes 32,64 %s/seeds.txt", g_dir), 0);
    assert_has(out_s(), "enqueued 0 jobs in");
    assert_has(out_s(), "2500 already queued");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 2500);
    ck_assert_int_eq(sup_redis_int(&g_redis, "EVAL \"return #redis.call('keys','t:job:*')\" 0"),
                     2500);
}
END_TEST

START_TEST(test_batch_progress_only_on_a_terminal)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "seq 1 50 > %s/seeds.txt", g_dir);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
    /* Piped: no bar, no carriage returns, just the summary. */
    ck_assert_int_eq(run("batch %s/seeds.txt", g_dir), 0);
    assert_lacks(err_s(), "\r");
    assert_lacks(err_s(), "jobs");
    /* On a terminal (script(1) gives it a pty): a bar with count and rate. */
    buf tty = BUF_INIT;
    /* other seeds: the first 50 are still queued (no-ops) */
    snprintf(cmd, sizeof cmd, "seq 51 100 > %s/seeds2.txt", g_dir);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
    snprintf(cmd, sizeof cmd, "script -qec '%s -c %s batch %s/seeds2.txt' /dev/null",
             sup_bin("avatarq"), g_conf, g_dir);
    ck_assert_int_eq(sup_run(cmd, &tty, true), 0);
    buf_append(&tty, "", 1);
    const char *t = (const char *)tty.data;
    assert_has(t, "\r[");
    assert_has(t, "%  ");
    assert_has(t, " jobs  ");
    assert_has(t, "/s");
    assert_has(t, "enqueued 50 jobs");
    buf_free(&tty);
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 100);
}
END_TEST

START_TEST(test_status)
{
    sup_redis_cli(&g_redis, NULL,
                  "HSET t:job:hand state done attempts 2 queue default worker host1:77 error '' "
                  "created_at 1700000000000 started_at 1700000001000 finished_at 1700000001250 "
                  "duration_ms 250 outputs '{\"64\":\"avatars/hand/64.png\",\"32\":\"avatars/hand/32.png\"}'");
    ck_assert_int_eq(run("status hand"), 0);
    assert_has(out_s(), "state        done");
    assert_has(out_s(), "attempts     2");
    assert_has(out_s(), "worker       host1:77");
    assert_has(out_s(), "2023-11-14T22:13:20.000Z");
    assert_has(out_s(), "250 ms");
    /* Stored keys smallest first. */
    const char *k32 = strstr(out_s(), "32 avatars/hand/32.png");
    const char *k64 = strstr(out_s(), "64 avatars/hand/64.png");
    ck_assert_ptr_nonnull(k32);
    ck_assert_ptr_nonnull(k64);
    ck_assert(k32 < k64);

    ck_assert_int_eq(run("status hand --json"), 0);
    json_t *o = json_loads(out_s(), 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "done");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "attempts")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "duration_ms")), 250);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "outputs"), "64")),
                     "avatars/hand/64.png");
    json_decref(o);

    ck_assert_int_eq(run("status nosuchjob"), 1);
    assert_has(err_s(), "no job 'nosuchjob'");
}
END_TEST

/* ---- operator commands ---- */

static void fake_worker(const char *id, const char *host, const char *pid, const char *state,
                        const char *job)
{
    sup_redis_cli(&g_redis, NULL,
                  "HSET t:worker:%s host %s pid %s queue default started_at 1700000000000 "
                  "beat_at %lld state %s job '%s' done 7 failed 1 rss_kb 20480",
                  id, host, pid, (long long)time(NULL) * 1000, state, job);
    sup_redis_cli(&g_redis, NULL, "EXPIRE t:worker:%s 60", id);
    sup_redis_cli(&g_redis, NULL, "SADD t:workers %s", id);
}

START_TEST(test_stats_and_workers)
{
    ck_assert_int_eq(run("enqueue --seed a"), 0);
    ck_assert_int_eq(run("enqueue --seed b"), 0);
    sup_redis_cli(&g_redis, NULL, "LPUSH t:dead '{\"id\":\"d1\",\"error\":\"boom\"}'");
    sup_redis_cli(&g_redis, NULL, "ZADD t:delayed 1 '{\"id\":\"r1\"}'");
    fake_worker("hostA:100", "hostA", "100", "busy", "job-77");
    /* Registered, heartbeat key gone: a dead worker. */
    sup_redis_cli(&g_redis, NULL, "SADD t:workers hostB:200");

    ck_assert_int_eq(run("stats"), 0);
    assert_has(out_s(), "queued       2");
    assert_has(out_s(), "delayed      1");
    assert_has(out_s(), "dead         1");
    assert_has(out_s(), "processing");
    assert_has(out_s(), "1 live, 1 dead");
    assert_has(out_s(), "hostA:100");
    assert_has(out_s(), "job-77");
    assert_has(out_s(), "enqueued 2");

    ck_assert_int_eq(run("stats --json"), 0);
    json_t *o = json_loads(out_s(), 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "queued")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "dead")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "counters"), "enqueued")), 2);
    json_t *ws = json_object_get(o, "workers");
    ck_assert_int_eq(json_array_size(ws), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ws, 0), "state")), "busy");
    json_decref(o);

    ck_assert_int_eq(run("workers"), 0);
    assert_has(out_s(), "hostA");
    assert_has(out_s(), "job-77");
    assert_has(out_s(), "20.0MB");
    assert_has(out_s(), "dead");
    ck_assert_int_eq(run("workers --json"), 0);
    o = json_loads(out_s(), 0, NULL);
    ck_assert_int_eq(json_array_size(o), 2);
    ck_assert(json_is_true(json_object_get(json_array_get(o, 0), "alive")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(o, 0), "pid")), 100);
    ck_assert(json_is_false(json_object_get(json_array_get(o, 1), "alive")));
    json_decref(o);
}
END_TEST

START_TEST(test_dead_letters)
{
    sup_redis_cli(&g_redis, NULL, "LPUSH t:dead '{\"v\":1,\"id\":\"d1\",\"seed\":\"s1\","
                                  "\"error\":\"storage: 503\",\"failed_at\":1700000000000,\"attempts\":5}'");
    sup_redis_cli(&g_redis, NULL, "LPUSH t:dead '{\"v\":1,\"id\":\"d2\",\"seed\":\"s2\","
                                  "\"error\":\"sizes[0]: 9 is below 16\",\"failed_at\":1700000000000,\"attempts\":1}'");
    ck_assert_int_eq(run("dead list"), 0);
    assert_has(out_s(), "d1");
    assert_has(out_s(), "storage: 503");
    assert_has(out_s(), "d2");
    ck_assert_int_eq(run("dead list --limit 1 --json"), 0);
    json_t *o = json_loads(out_s(), 0, NULL);
    ck_assert_int_eq(json_array_size(o), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(o, 0), "id")), "d2");
    json_decref(o);
    ck_assert_int_eq(run("dead list --limit 1"), 0);
    assert_has(out_s(), "d2");
    assert_lacks(out_s(), "d1");
    assert_has(err_s(), "1 of 2 dead jobs shown");

    ck_assert_int_eq(run("dead retry d1"), 0);
    assert_has(out_s(), "retried 1 dead job");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:dead"), 1);
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 1);
    assert_has(sup_redis_str(&g_redis, "LINDEX t:queue:default 0"), "\"d1\"");

    ck_assert_int_eq(run("dead retry nosuch"), 1);
    assert_has(err_s(), "no dead job 'nosuch'");
    ck_assert_int_eq(run("dead retry d2 --all"), 2);

    ck_assert_int_eq(run("dead retry --all"), 0);
    assert_has(out_s(), "retried 1 dead job");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:dead"), 0);
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:queue:default"), 2);

    sup_redis_cli(&g_redis, NULL, "LPUSH t:dead '{\"id\":\"x1\"}' '{\"id\":\"x2\"}' 'not json'");
    ck_assert_int_eq(run("dead list"), 0);
    assert_has(out_s(), "not json");
    ck_assert_int_eq(run("dead purge"), 0);
    assert_has(out_s(), "purged 3 dead jobs");
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN t:dead"), 0);
    ck_assert_int_eq(run("dead list"), 0);
    assert_has(out_s(), "no dead jobs");
}
END_TEST

START_TEST(test_control)
{
    ck_assert_int_eq(run("quiet --all"), 0);
    assert_has(out_s(), "posted quiet to all");
    ck_assert_int_eq(run("stop --host web1"), 0);
    assert_has(out_s(), "posted stop to host:web1");
    ck_assert_int_eq(run("resume --worker web1:42"), 0);
    ck_assert_int_eq(sup_redis_int(&g_redis, "XLEN t:control"), 3);
    buf b = BUF_INIT;
    sup_redis_cli(&g_redis, &b, "XRANGE t:control - +");
    buf_append(&b, "", 1);
    const char *s = (const char *)b.data;
    const char *q = strstr(s, "quiet"), *st = strstr(s, "stop"), *r = strstr(s, "resume");
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_nonnull(r);
    ck_assert(q < st && st < r); /* in the order posted */
    assert_has(s, "host:web1");
    assert_has(s, "worker:web1:42");
    buf_free(&b);
}
END_TEST

START_TEST(test_health)
{
    ck_assert_int_eq(run("migrate"), 0);
    int rc = run("health");
    ck_assert_msg(rc == 0, "health: exit %d\n%s%s", rc, out_s(), err_s());
    assert_has(out_s(), "ok redis redis://127.0.0.1:");
    assert_has(out_s(), "maxmemory-policy=");
    assert_has(out_s(), "ok database sqlite");
    assert_has(out_s(), "ok storage local");
    ck_assert_int_eq(count_lines(out_s()), 3);

    /* Redis down, with a password in the URL: it fails and never shows it. */
    char url[128];
    snprintf(url, sizeof url, "redis://:hunter2secret@127.0.0.1:%d/0", sup_free_port());
    write_config(url);
    ck_assert_int_eq(run("health"), 1);
    assert_has(out_s(), "fail redis");
    assert_has(out_s(), "ok database");
    assert_lacks(out_s(), "hunter2secret");
    assert_lacks(err_s(), "hunter2secret");
}
END_TEST

START_TEST(test_health_fresh_database)
{
    /* Schema never migrated: the database check fails and says why. */
    ck_assert_int_eq(run("health"), 1);
    assert_has(out_s(), "ok redis");
    assert_has(out_s(), "fail database");
    assert_has(out_s(), "migrate");
}
END_TEST

/* ---- store commands ---- */

/* Generates avatars through the library (render, store, upsert), as a worker
 * would; returns their ids in ids[]. */
static void populate(const char *const *seeds, size_t n, char ids[][65])
{
    aq_config *cfg = calloc(1, sizeof *cfg);
    aq_err e;
    ck_assert_ptr_nonnull(cfg);
    ck_assert_msg(config_load(cfg, g_conf, &e) == 0, "%s", e.msg);
    storage s;
    meta m;
    ck_assert_msg(storage_open(&s, cfg, &e) == 0, "%s", e.msg);
    ck_assert_msg(meta_open(&m, cfg, false, &e) == 0, "%s", e.msg);
    job_limits lim;
    ck_assert_int_eq(job_limits_from_config(&lim, cfg, &e), 0);
    avatar_ctx ctx;
    avatar_init(&ctx, &s, &m, cfg->storage.prefix, "test:1");
    for (size_t i = 0; i < n; i++) {
        job_request *r = calloc(1, sizeof *r);
        job_init(r, &lim);
        snprintf(r->seed, sizeof r->seed, "%s", seeds[i]);
        r->seed_len = strlen(seeds[i]);
        r->sizes[0] = 32;
        r->sizes[1] = 64;
        r->nsizes = 2;
        ck_assert_msg(job_finish(r, &lim, &e) == 0, "%s", e.msg);
        char *outputs = NULL;
        ck_assert_msg(avatar_generate(&ctx, r, 1, &outputs, &e) == 0, "%s", e.msg);
        free(outputs);
        snprintf(ids[i], 65, "%s", r->id);
        free(r);
    }
    avatar_free(&ctx);
    meta_close(&m);
    storage_close(&s);
    free(cfg);
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(test_store_commands)
{
    static const char *const seeds[] = {"alpha", "beta", "gamma"};
    char ids[3][65];
    populate(seeds, 3, ids);
    qsort(ids, 3, sizeof ids[0], cmp_ids);

    ck_assert_int_eq(run("list"), 0);
    for (int i = 0; i < 3; i++)
        assert_has(out_s(), ids[i]);
    ck_assert_int_eq(count_lines(out_s()), 4); /* header + 3 */

    ck_assert_int_eq(run("list --limit 2"), 0);
    assert_has(out_s(), ids[0]);
    assert_has(out_s(), ids[1]);
    assert_lacks(out_s(), ids[2]);
    assert_has(err_s(), "--after");
    ck_assert_int_eq(run("list --after %s --json", ids[1]), 0);
    json_t *arr = json_loads(out_s(), 0, NULL);
    ck_assert_int_eq(json_array_size(arr), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), ids[2]);
    json_decref(arr);

    ck_assert_int_eq(run("show %s --json", ids[0]), 0);
    json_t *o = json_loads(out_s(), 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "storage")), "local");
    ck_assert_int_eq(json_array_size(json_object_get(o, "sizes")), 2);
    const char *seed = json_string_value(json_object_get(o, "seed"));
    ck_assert(strcmp(seed, "alpha") == 0 || strcmp(seed, "beta") == 0 ||
              strcmp(seed, "gamma") == 0);
    json_decref(o);
    ck_assert_int_eq(run("show %s", ids[0]), 0);
    assert_has(out_s(), "worker         test:1");
    ck_assert_int_eq(run("show nosuch"), 1);
    assert_has(err_s(), "no avatar 'nosuch'");

    /* get: the stored bytes, a PNG of the asked size. */
    ck_assert_int_eq(run("get %s --size 64 -o %s/got.png", ids[0], g_dir), 0);
    assert_has(out_s(), "wrote");
    char path[1024];
    snprintf(path, sizeof path, "%s/got.png", g_dir);
    buf png = BUF_INIT;
    read_file(path, &png);
    uint8_t *rgba = NULL;
    int w = 0, h = 0;
    aq_err e;
    ck_assert_msg(pngenc_decode(png.data, png.len, &rgba, &w, &h, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(w, 64);
    ck_assert_int_eq(h, 64);
    free(rgba);
    buf stored = BUF_INIT;
    snprintf(path, sizeof path, "%s/avatars/avatars/%s/64.png", g_dir, ids[0]);
    read_file(path, &stored);
    ck_assert_uint_eq(stored.len, png.len);
    ck_assert(memcmp(stored.data, png.data, png.len) == 0);
    /* -o - writes the bytes to stdout. */
    ck_assert_int_eq(run("get %s --size 64 -o -", ids[0]), 0);
    ck_assert_uint_eq(g_out.len, png.len);
    buf_free(&png);
    buf_free(&stored);
    ck_assert_int_eq(run("get %s --size 48 -o %s/no.png", ids[0], g_dir), 1);
    assert_has(err_s(), "is not stored");
    snprintf(path, sizeof path, "%s/no.png", g_dir);
    ck_assert_int_ne(access(path, F_OK), 0);

    /* delete --now: files and row gone at once. */
    ck_assert_int_eq(run("delete %s --now", ids[0]), 0);
    ck_assert_int_eq(run("show %s", ids[0]), 1);
    snprintf(path, sizeof path, "%s/avatars/avatars/%s/64.png", g_dir, ids[0]);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(run("list --json"), 0);
    arr = json_loads(out_s(), 0, NULL);
    ck_assert_int_eq(json_array_size(arr), 2);
    json_decref(arr);

    /* delete (default): a delete job for the workers. */
    ck_assert_int_eq(run("delete %s", ids[1]), 0);
    ck_assert_str_eq(first_line(), ids[1]);
    const char *doc = sup_redis_str(&g_redis, "LINDEX t:queue:default 0");
    assert_has(doc, "\"delete\"");
    assert_has(doc, ids[1]);
    ck_assert_int_eq(run("show %s", ids[1]), 0); /* still there until a worker runs it */
}
END_TEST

START_TEST(test_migrate)
{
    ck_assert_int_eq(run("migrate --dry-run"), 0);
    assert_has(out_s(), "would apply");
    ck_assert_int_gt(count_lines(out_s()), 1);
    /* A dry run changes nothing: the schema is still missing. */
    ck_assert_int_eq(run("health"), 1);
    assert_has(out_s(), "fail database");
    ck_assert_int_eq(run("migrate"), 0);
    assert_has(out_s(), "applied migration 1");
    ck_assert_int_eq(run("migrate"), 0);
    assert_has(out_s(), "nothing to apply");
    ck_assert_int_eq(run("migrate --dry-run"), 0);
    assert_has(out_s(), "nothing to apply");
    ck_assert_int_eq(run("list"), 0);
}
END_TEST

/* ---- S3 storage ---- */

static sup_s3 *g_s3;

static void s3_setup(void)
{
    base_setup();
    g_s3 = sup_s3_new();
    sup_s3_start(g_s3, "cli");
}

static void s3_teardown(void)
{
    sup_s3_free(g_s3);
    base_teardown();
}

static void test_setup_s3(void)
{
    new_test_dir();
    char text[2048];
    snprintf(text, sizeof text,
             "[redis]\nurl = redis://127.0.0.1:%d/0\nnamespace = t\n"
             "[storage]\nbackend = s3\n"
             "[storage.s3]\nendpoint = %s\nbucket = %s\nregion = %s\n"
             "access_key = %s\nsecret_key = %s\nretries = 1\n"
             "[database.sqlite]\npath = %s/avatarq.db\n",
             sup_free_port(), g_s3->endpoint, g_s3->bucket, SUP_S3_REGION, SUP_S3_KEY,
             SUP_S3_SECRET, g_dir);
    snprintf(g_conf, sizeof g_conf, "%s/config.ini", g_dir);
    sup_write_file(g_conf, text);
}

START_TEST(test_s3_get_delete)
{
    static const char *const seeds[] = {"alpha"};
    char ids[1][65];
    populate(seeds, 1, ids);

    ck_assert_int_eq(run("health"), 1); /* no Redis here */
    assert_has(out_s(), "ok storage s3");
    assert_has(out_s(), g_s3->bucket);

    /* The object read back from the bucket is the PNG render makes offline
     * for the same request, byte for byte. */
    ck_assert_int_eq(run("get %s --size 64 -o %s/s3.png", ids[0], g_dir), 0);
    ck_assert_int_eq(run_raw("render --seed alpha --size 64 -o %s/local.png", g_dir), 0);
    char path[1024];
    buf a = BUF_INIT, b = BUF_INIT;
    snprintf(path, sizeof path, "%s/s3.png", g_dir);
    read_file(path, &a);
    snprintf(path, sizeof path, "%s/local.png", g_dir);
    read_file(path, &b);
    ck_assert_uint_gt(a.len, 8);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert(memcmp(a.data, b.data, a.len) == 0);
    buf_free(&a);
    buf_free(&b);

    ck_assert_int_eq(run("delete %s --now", ids[0]), 0);
    ck_assert_int_eq(run("get %s --size 64 -o -", ids[0]), 1);
    assert_has(err_s(), "is not stored");
    ck_assert_int_eq(run("show %s", ids[0]), 1);
}
END_TEST

/* ---- PostgreSQL metadata ---- */

static sup_pg g_pg;

static void pg_setup(void)
{
    base_setup();
    memset(&g_pg, 0, sizeof g_pg);
    sup_pg_start(&g_pg);
}

static void pg_teardown(void)
{
    sup_pg_destroy(&g_pg);
    base_teardown();
}

static void test_setup_pg(void)
{
    new_test_dir();
    char conninfo[600], text[2048];
    /* A database per test, named after its dir (unquoted SQL: lower case). */
    char name[32] = "cli_";
    for (const char *p = strrchr(g_dir, '-') + 1; *p && strlen(name) + 1 < sizeof name; p++)
        name[strlen(name)] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    sup_pg_createdb(&g_pg, name, conninfo, sizeof conninfo);
    snprintf(text, sizeof text,
             "[redis]\nurl = redis://127.0.0.1:%d/0\nnamespace = t\n"
             "[storage.local]\nroot = %s/avatars\nfsync = false\n"
             "[database]\nbackend = postgresql\n"
             "[database.postgresql]\nconninfo = %s\nretries = 1\n",
             sup_free_port(), g_dir, conninfo);
    snprintf(g_conf, sizeof g_conf, "%s/config.ini", g_dir);
    sup_write_file(g_conf, text);
}

START_TEST(test_pg_migrate_health_list)
{
    int rc = run("migrate --dry-run");
    ck_assert_msg(rc == 0, "migrate --dry-run: exit %d: %s", rc, err_s());
    assert_has(out_s(), "database postgresql: would apply");
    ck_assert_int_eq(run("health"), 1); /* no Redis, and no schema yet */
    assert_has(out_s(), "fail database postgresql");
    ck_assert_int_eq(run("migrate"), 0);
    assert_has(out_s(), "applied migration 1");
    ck_assert_int_eq(run("migrate"), 0);
    assert_has(out_s(), "nothing to apply");

    ck_assert_int_eq(run("health"), 1); /* still no Redis */
    char want[200];
    snprintf(want, sizeof want, "ok database postgresql %s@127.0.0.1:%d/", g_pg.user, g_pg.port);
    assert_has(out_s(), want);
    assert_has(out_s(), "rows=0");
    assert_lacks(out_s(), g_pg.password);
    assert_lacks(err_s(), g_pg.password);

    static const char *const seeds[] = {"pg-one", "pg-two"};
    char ids[2][65];
    populate(seeds, 2, ids);
    ck_assert_int_eq(run("list --json"), 0);
    json_t *arr = json_loads(out_s(), 0, NULL);
    ck_assert_int_eq(json_array_size(arr), 2);
    json_decref(arr);
    ck_assert_int_eq(run("show %s --json", ids[1]), 0);
    json_t *o = json_loads(out_s(), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), ids[1]);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "attempts")), 1);
    json_decref(o);
    ck_assert_int_eq(run("delete %s --now", ids[1]), 0);
    ck_assert_int_eq(run("show %s", ids[1]), 1);
}
END_TEST

/* ---- with the real worker ---- */

/* One worker process that renders sizes up to 64 only (the CLI's config
 * allows 1024): a 128 px job passes the CLI and dies in the worker. */
static pid_t start_worker(void)
{
    char log[1024], cfgarg[1024];
    snprintf(log, sizeof log, "%s/worker.log", g_dir);
    snprintf(cfgarg, sizeof cfgarg, "%s", g_conf);
    char *argv[] = {(char *)sup_bin("avatarq-worker"), "-c", cfgarg, NULL};
    char *env[] = {"AVATARQ_WORKER_PROCESSES=1", "AVATARQ_RENDER_MAX_SIZE=64",
                   "AVATARQ_RENDER_DEFAULT_SIZES=32,64", NULL};
    return sup_spawn(argv, env, log);
}

START_TEST(test_with_worker)
{
    if (access(sup_bin("avatarq-worker"), X_OK) != 0)
        ck_abort_msg("no %s", sup_bin("avatarq-worker"));
    pid_t w = start_worker();
    int rc = run("enqueue --seed zoe --sizes 32,64 --wait --timeout 60");
    char id[256];
    snprintf(id, sizeof id, "%s", first_line());
    if (rc != 0)
        sup_stop(w, SIGTERM, 20000);
    ck_assert_msg(rc == 0, "enqueue --wait: exit %d\n%s%s", rc, out_s(), err_s());
    char want[1024];
    snprintf(want, sizeof want, "\n32 avatars/%s/32.png\n64 avatars/%s/64.png\n", id, id);
    assert_has(out_s(), want);

    rc = run("enqueue --seed zed --size 128 --wait --timeout 60");
    int st = sup_stop(w, SIGTERM, 30000);
    ck_assert_msg(rc == 1, "dead job: exit %d\n%s%s", rc, out_s(), err_s());
    assert_has(err_s(), "dead");
    assert_has(err_s(), "128");
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* What the worker stored, read back through the CLI. */
    ck_assert_int_eq(run("show %s", id), 0);
    assert_has(out_s(), "seed           zoe");
    ck_assert_int_eq(run("get %s --size 32 -o -", id), 0);
    ck_assert_uint_gt(g_out.len, 8);
    ck_assert(memcmp(g_out.data, "\x89PNG", 4) == 0);
    ck_assert_int_eq(run("status %s --json", id), 0);
    assert_has(out_s(), "\"state\":\"done\"");
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("usage");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, test_setup_offline, test_teardown);
    tcase_add_loop_test(tc, test_bad_invocation, 0, sizeof bad_cases / sizeof bad_cases[0]);
    tcase_add_test(tc, test_bad_config_file);
    tcase_add_test(tc, test_help_and_version);
    tcase_add_test(tc, test_enqueue_redis_down);
    tcase_add_test(tc, test_health_redacts_secrets);
    tcase_add_test(tc, test_offline_needs_no_config);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, redis_setup, redis_teardown);
    tcase_add_checked_fixture(tc, test_setup_redis, test_teardown);
    tcase_add_test(tc, test_enqueue_same_request_same_id);
    tcase_add_test(tc, test_batch_file);
    tcase_add_test(tc, test_batch_stdin_many);
    tcase_add_test(tc, test_batch_progress_only_on_a_terminal);
    tcase_add_test(tc, test_status);
    tcase_add_test(tc, test_stats_and_workers);
    tcase_add_test(tc, test_dead_letters);
    tcase_add_test(tc, test_control);
    tcase_add_test(tc, test_health);
    tcase_add_test(tc, test_health_fresh_database);
    tcase_add_test(tc, test_store_commands);
    tcase_add_test(tc, test_migrate);
    tcase_add_test(tc, test_with_worker);
    tcase_set_timeout(tc, 180);
    suite_add_tcase(s, tc);

    tc = tcase_create("s3");
    tcase_add_unchecked_fixture(tc, s3_setup, s3_teardown);
    tcase_add_checked_fixture(tc, test_setup_s3, test_teardown);
    tcase_add_test(tc, test_s3_get_delete);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    if (sup_pg_available()) {
        tc = tcase_create("postgresql");
        tcase_add_unchecked_fixture(tc, pg_setup, pg_teardown);
        tcase_add_checked_fixture(tc, test_setup_pg, test_teardown);
        tcase_add_test(tc, test_pg_migrate_health_list);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return sup_run_suite(cli_suite());
}
