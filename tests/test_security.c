/* The security review's findings (issue 13), one test each, against the real
 * code paths: a hostile metadata row, a planted config file or symlink,
 * control characters in stored data, secrets in URLs, hostile S3 input. Each
 * test failed before its fix. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis.h>

#include "avatar.h"
#include "avatarq.h"
#include "config.h"
#include "job.h"
#include "meta.h"
#include "s3.h"
#include "storage.h"
#include "support.h"
#include "support_s3.h"

/* The base temp dir is an unchecked fixture (the parent process makes and
 * removes it), so it goes away even when a test fails; each test works in
 * its own subdirectory. */
static char g_base[256];
static char g_dir[320];

static void base_setup(void)
{
    sup_tmpdir(g_base, sizeof g_base);
}

static void base_teardown(void)
{
    sup_rmtree(g_base);
}

static void new_test_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/t-XXXXXX", g_base);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static const char *path_in(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *path_in(char *out, size_t n, const char *fmt, ...)
{
    char rel[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    int len = snprintf(out, n, "%s/%s", g_dir, rel);
    ck_assert(len > 0 && (size_t)len < n);
    return out;
}

#define assert_has(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in:\n%s", (needle), (hay))
#define assert_lacks(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) == NULL, "did not expect '%s' in:\n%s", (needle), (hay))

/* ---- 2: deletes derive their keys from the id ---- */

/* A metadata row whose keys name a file outside the avatar's folder must
 * not make a delete remove that file; the avatar's own files still go. */
START_TEST(delete_ignores_keys_stored_in_the_row)
{
    new_test_dir();
    char root[400], db[400], victim[400], own[400];
    aq_config c;
    config_defaults(&c);
    snprintf(c.database.backend, sizeof c.database.backend, "sqlite");
    snprintf(c.database.sqlite.path, sizeof c.database.sqlite.path, "%s",
             path_in(db, sizeof db, "avatarq.db"));
    path_in(root, sizeof root, "root");
    aq_err e = {0};
    storage s;
    meta m;
    ck_assert_msg(storage_open_local(&s, root, false, &e) == 0, "%s", e.msg);
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(storage_put(&s, "important.txt", "keep", 4, NULL, &e), 0);
    ck_assert_int_eq(storage_put(&s, "avatars/u1/32.png", "png", 3, NULL, &e), 0);
    ck_assert_int_eq(storage_put(&s, "avatars/u1/64.png", "png", 3, NULL, &e), 0);

    meta_row *row = calloc(1, sizeof *row);
    snprintf(row->id, sizeof row->id, "u1");
    snprintf(row->seed, sizeof row->seed, "s");
    snprintf(row->style, sizeof row->style, "pixel");
    snprintf(row->sizes, sizeof row->sizes, "[64]");
    snprintf(row->storage, sizeof row->storage, "local");
    snprintf(row->location, sizeof row->location, "%s", root);
    snprintf(row->keys, sizeof row->keys, "{\"32\":\"important.txt\",\"1\":\"important.txt\"}");
    snprintf(row->sha256, sizeof row->sha256, "{}");
    row->created_at = row->generated_at = 1;
    ck_assert_msg(meta_upsert(&m, row, &e) == 0, "%s", e.msg);
    free(row);

    job_limits lim;
    ck_assert_int_eq(job_limits_from_config(&lim, &c, &e), 0);
    job_request *r = calloc(1, sizeof *r);
    job_init(r, &lim);
    r->type = JOB_DELETE;
    r->nsizes = 0;
    snprintf(r->id, sizeof r->id, "u1");
    avatar_ctx ctx;
    avatar_init(&ctx, &s, &m, "avatars", "test");
    ck_assert_msg(avatar_delete(&ctx, r, &e) == 0, "%s", e.msg);
    avatar_free(&ctx);
    free(r);

    ck_assert_msg(access(path_in(victim, sizeof victim, "root/important.txt"), F_OK) == 0,
                  "a delete removed a file its row named outside the avatar");
    ck_assert_int_ne(access(path_in(own, sizeof own, "root/avatars/u1/32.png"), F_OK), 0);
    ck_assert_int_ne(access(path_in(own, sizeof own, "root/avatars/u1/64.png"), F_OK), 0);
    meta_row got;
    ck_assert_int_eq(meta_get(&m, "u1", &got, &e), AQ_ENOTFOUND);
    meta_close(&m);
    storage_close(&s);
}
END_TEST

/* ---- 3: a config file someone else controls is refused ---- */

static void write_mode(const char *path, const char *text, mode_t mode)
{
    sup_write_file(path, text);
    ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(config_file_owned_or_writable_by_others_is_refused)
{
    new_test_dir();
    char path[400];
    aq_config c;
    aq_err e = {0};
    path_in(path, sizeof path, "config.ini");
    write_mode(path, "[redis]\nurl = redis://evil.example:6379/0\n", 0664);
    ck_assert_int_eq(config_load(&c, path, &e), AQ_EPERM);
    assert_has(e.msg, "refused: group-writable (mode 0664)");
    ck_assert_int_eq(chmod(path, 0602), 0);
    ck_assert_int_eq(config_load(&c, path, &e), AQ_EPERM);
    assert_has(e.msg, "refused: world-writable (mode 0602)");
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_msg(config_load(&c, path, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(c.redis.host, "evil.example");

    /* ./config.ini planted by another user in the current directory */
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(path, 4242, 4242), 0);
        char cwd[512];
        ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
        ck_assert_int_eq(chdir(g_dir), 0);
        int rc = config_load(&c, NULL, &e);
        ck_assert_int_eq(chdir(cwd), 0);
        ck_assert_int_eq(rc, AQ_EPERM);
        assert_has(e.msg, "./config.ini: refused: owned by uid 4242, not by you (uid 0) or root");
    }
    /* /dev/null (root's, mode 0666, not a regular file) is still an empty config */
    ck_assert_msg(config_load(&c, "/dev/null", &e) == 0, "%s", e.msg);
}
END_TEST

/* ---- 6: a config holding secrets that others can read gets a warning ---- */

/* Runs config_load(path) with stderr captured into out. */
static int load_capturing_stderr(const char *path, aq_config *c, aq_err *e, char *out, size_t n)
{
    char log[400];
    path_in(log, sizeof log, "stderr.log");
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(log, "w+");
    ck_assert_ptr_nonnull(f);
    dup2(fileno(f), 2);
    int rc = config_load(c, path, e);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
    return rc;
}

START_TEST(config_with_secrets_readable_by_others_warns)
{
    new_test_dir();
    char path[400], err[4096];
    aq_config c;
    aq_err e = {0};
    path_in(path, sizeof path, "config.ini");
    write_mode(path, "[storage.s3]\nsecret_key = hunter2\n", 0644);
    ck_assert_int_eq(load_capturing_stderr(path, &c, &e, err, sizeof err), 0);
    assert_has(err, "config file holds secrets and is readable by others");
    assert_has(err, "readable_by=everyone");
    assert_lacks(err, "hunter2");
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(load_capturing_stderr(path, &c, &e, err, sizeof err), 0);
    assert_lacks(err, "readable by others");
    /* no secret, no warning, whatever the mode */
    write_mode(path, "[worker]\nprocesses = 2\n", 0644);
    ck_assert_int_eq(load_capturing_stderr(path, &c, &e, err, sizeof err), 0);
    assert_lacks(err, "readable by others");
}
END_TEST

/* ---- 4: render -o never opens a planted file ---- */

/* Runs "avatarq ARGS" (words split at spaces) as a child whose pid is known
 * before it starts: the child plants a symlink at OUT.tmp-PID (the name the
 * old code opened) pointing at victim, then execs avatarq in place. Returns
 * the exit status. */
static int run_with_planted_tmp(const char *out, const char *victim, const char *args)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char tmp[600], words[1200], *argv[16];
        int argc = 0;
        snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
        if (symlink(victim, tmp) != 0)
            _exit(99);
        snprintf(words, sizeof words, "%s", args);
        argv[argc++] = (char *)sup_bin("avatarq");
        for (char *w = strtok(words, " "); w && argc < 15; w = strtok(NULL, " "))
            argv[argc++] = w;
        argv[argc] = NULL;
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(98);
    }
    int st = sup_wait(pid, 60000);
    ck_assert_msg(st >= 0, "avatarq did not finish");
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(render_output_never_follows_a_planted_symlink)
{
    new_test_dir();
    char out[400], victim[400], args[1200];
    path_in(victim, sizeof victim, "victim.txt");
    sup_write_file(victim, "precious");
    static const char *const cmds[] = {"render --seed alice --size 32 -o %s", "sheet -o %s"};
    for (size_t i = 0; i < 2; i++) {
        path_in(out, sizeof out, "out%zu.png", i);
        snprintf(args, sizeof args, cmds[i], out);
        ck_assert_int_eq(run_with_planted_tmp(out, victim, args), 0);
        FILE *f = fopen(victim, "r");
        char text[32] = "";
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(text, sizeof text, f));
        fclose(f);
        ck_assert_msg(strcmp(text, "precious") == 0, "%s: the planted symlink was followed", cmds[i]);
        struct stat st;
        ck_assert_int_eq(lstat(out, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_gt(st.st_size, 8);
    }
}
END_TEST

/* ---- 5: stored data reaches the terminal escaped ---- */

/* The S3 test server, likewise (it also dies with the parent). */
static sup_s3 *g_s3;

static void s3_setup(void)
{
    base_setup();
    g_s3 = sup_s3_new();
    sup_s3_start(g_s3, "sec");
}

static void s3_teardown(void)
{
    sup_s3_free(g_s3);
    base_teardown();
}

/* Redis is an unchecked fixture of its own test case: started and stopped
 * by the parent process, so it is stopped even when a test fails. */
static sup_redis g_redis;

static void redis_setup(void)
{
    base_setup();
    memset(&g_redis, 0, sizeof g_redis);
    sup_redis_start(&g_redis, false);
}

static void redis_teardown(void)
{
    sup_redis_stop(&g_redis);
    base_teardown();
}

static void redis_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "%s: %s", fmt, r ? r->str : c->errstr);
    freeReplyObject(r);
}

/* Runs "avatarq -c CONF ARGS", stdout and stderr together into out. */
static int run_cli(const char *conf, buf *out, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s -c %s %s", sup_bin("avatarq"), conf, args);
    return sup_run(cmd, out, true);
}

/* No byte below 0x20 but newline, no DEL, in the output. */
static void assert_no_controls(const buf *b, const char *what)
{
    for (size_t i = 0; i < b->len; i++) {
        unsigned char ch = ((const unsigned char *)b->data)[i];
        ck_assert_msg(ch == '\n' || (ch >= 0x20 && ch != 0x7f), "%s: raw byte 0x%02x in:\n%s", what, ch,
                      (const char *)b->data);
    }
}

START_TEST(stored_control_characters_are_escaped)
{
    new_test_dir();
    char conf[400], db[400], root[400], text[2048];
    path_in(db, sizeof db, "avatarq.db");
    path_in(root, sizeof root, "avatars");
    snprintf(text, sizeof text,
             "[redis]\nurl = %s\nnamespace = t\n[storage.local]\nroot = %s\nfsync = false\n"
             "[database.sqlite]\npath = %s\n[log]\nlevel = error\n", g_redis.url, root, db);
    path_in(conf, sizeof conf, "config.ini");
    sup_write_file(conf, text);

    redisContext *rc = redisConnect("127.0.0.1", g_redis.port);
    ck_assert(rc && !rc->err);
    const char *esc = "\x1b]0;owned\x07\x1b[2J";
    redis_cmd(rc, "LPUSH t:dead {\"id\":\"x\\u001b[31m\",\"error\":\"%s\",\"failed_at\":1,\"attempts\":1}",
              "\\u0007bell\\u009b");
    redis_cmd(rc, "LPUSH t:dead %s", "not json \x1b[5m blink");
    redis_cmd(rc, "HSET t:job:j1 state dead attempts 1 error %s worker w%s", esc, esc);
    redis_cmd(rc, "HSET t:worker:w1 host %s pid 1 state idle job %s beat_at 1", esc, esc);
    redis_cmd(rc, "SADD t:workers w1");
    redisFree(rc);

    /* a metadata row with a hostile seed and keys */
    aq_config c;
    aq_err e = {0};
    ck_assert_msg(config_load(&c, conf, &e) == 0, "%s", e.msg);
    meta m;
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "%s", e.msg);
    meta_row *row = calloc(1, sizeof *row);
    snprintf(row->id, sizeof row->id, "u1");
    snprintf(row->seed, sizeof row->seed, "seed%s", esc);
    snprintf(row->style, sizeof row->style, "pixel");
    snprintf(row->sizes, sizeof row->sizes, "[32]");
    snprintf(row->storage, sizeof row->storage, "local");
    snprintf(row->location, sizeof row->location, "%s", root);
    snprintf(row->keys, sizeof row->keys, "{\"32\":\"a\x1b[8m\"}");
    snprintf(row->sha256, sizeof row->sha256, "{}");
    snprintf(row->worker, sizeof row->worker, "w\x9b");
    ck_assert_msg(meta_upsert(&m, row, &e) == 0, "%s", e.msg);
    free(row);
    meta_close(&m);

    static const struct { const char *args, *want; } t[] = {
        {"dead list", "\\x1b[31m"}, {"dead list", "\\x07bell\\u009b"}, {"dead list", "not json \\x1b[5m"},
        {"status j1", "\\x1b]0;owned\\x07\\x1b[2J"}, {"workers", "\\x1b]0;owned"},
        {"stats", "w1"}, {"show u1", "seed\\x1b]0;owned"}, {"show u1", "w\\x9b"}, {"list", "u1"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        buf out = BUF_INIT;
        run_cli(conf, &out, t[i].args);
        assert_no_controls(&out, t[i].args);
        assert_has((const char *)out.data, t[i].want);
        buf_free(&out);
    }
}
END_TEST

/* ---- 10: S3 input ---- */

/* Runs fn(arg) with stderr captured into out. */
static void capture_stderr(void (*fn)(void *), void *arg, char *out, size_t n)
{
    char log[400];
    path_in(log, sizeof log, "stderr-%d.log", (int)getpid());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(log, "w+");
    ck_assert_ptr_nonnull(f);
    dup2(fileno(f), 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
}

static s3_opts base_opts(const char *endpoint)
{
    s3_opts o = {.endpoint = endpoint, .region = SUP_S3_REGION, .bucket = "bucket",
                 .access_key = SUP_S3_KEY, .secret_key = SUP_S3_SECRET, .path_style = true,
                 .timeout_ms = 5000, .retries = 0};
    return o;
}

static void open_and_close(void *arg)
{
    aq_err e = {0};
    s3 *c = s3_open(arg, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    s3_close(c);
}

START_TEST(s3_refuses_control_characters_in_keys_and_warns_on_plain_http)
{
    new_test_dir();
    aq_err e = {0};
    s3_opts o = base_opts("http://127.0.0.1:9");
    o.access_key = "AKIA\r\nX-Injected: 1";
    ck_assert_ptr_null(s3_open(&o, &e));
    assert_has(e.msg, "access key holds a control character");
    assert_lacks(e.msg, "Injected");
    o.access_key = SUP_S3_KEY;
    o.secret_key = "sec\nret";
    ck_assert_ptr_null(s3_open(&o, &e));
    assert_has(e.msg, "secret key holds a control character");
    /* the config refuses them before s3 ever sees them, and hides them */
    aq_config c;
    ck_assert_int_eq(config_load_string(&c, "[storage.s3]\naccess_key = AK\rX-Injected: 1\n", "c.ini", &e),
                     AQ_EPERM);
    assert_has(e.msg, "[storage.s3] access_key: (hidden) may hold only visible ASCII");

    char err[2048];
    s3_opts far = base_opts("http://s3.example.com:9000");
    capture_stderr(open_and_close, &far, err, sizeof err);
    assert_has(err, "plain http:// on a host that is not loopback");
    assert_has(err, "s3.example.com");
    s3_opts near = base_opts("http://127.0.0.1:9000");
    capture_stderr(open_and_close, &near, err, sizeof err);
    assert_lacks(err, "plain http://");
    s3_opts tls = base_opts("https://s3.example.com");
    capture_stderr(open_and_close, &tls, err, sizeof err);
    assert_lacks(err, "plain http://");

    /* [storage.s3] ca_file reaches the backend, which checks it is readable */
    ck_assert_int_eq(config_load_string(&c, "[storage]\nbackend = s3\n[storage.s3]\n"
                                            "endpoint = https://127.0.0.1:9\nbucket = bkt\n"
                                            "access_key = a\nsecret_key = b\n"
                                            "ca_file = /nonexistent/ca.pem\n", "c.ini", &e), 0);
    ck_assert_str_eq(c.storage.s3.ca_file, "/nonexistent/ca.pem");
    storage s;
    ck_assert_int_eq(storage_open(&s, &c, &e), AQ_EPERM);
    assert_has(e.msg, "[storage.s3] ca_file: cannot read /nonexistent/ca.pem");
}
END_TEST

/* GET bodies are capped: a huge object is refused, not read into memory. */
START_TEST(s3_get_bodies_are_capped)
{
    sup_s3 *srv = g_s3;
    aq_err e = {0};
    s3_opts o = base_opts(srv->endpoint);
    o.bucket = srv->bucket;
    s3 *c = s3_open(&o, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    static char big[4096];
    memset(big, 'x', sizeof big);
    ck_assert_msg(s3_put(c, "big.bin", big, sizeof big, NULL, &e) == 0, "%s", e.msg);
    buf b = BUF_INIT;
    ck_assert_msg(s3_get(c, "big.bin", &b, NULL, 0, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(b.len, sizeof big);
    s3_close(c);

    o.max_object = 1000;
    c = s3_open(&o, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    buf_reset(&b);
    ck_assert_int_eq(s3_get(c, "big.bin", &b, NULL, 0, &e), AQ_EPERM);
    assert_has(e.msg, "object larger than 1000 bytes");
    ck_assert_uint_le(b.len, 1000);
    ck_assert_msg(s3_get(c, "small.bin", &b, NULL, 0, &e) == AQ_ENOTFOUND, "%s", e.msg);
    buf_free(&b);
    s3_close(c);
}
END_TEST

/* ---- 13: one queue-name rule for config, CLI and library ---- */

START_TEST(queue_names_follow_one_rule_everywhere)
{
    new_test_dir();
    static const char *const bad[] = {"a:b", "a b", "", "q\x1b", "q*"};
    char long_ok[65], too_long[66], text[512];
    memset(long_ok, 'q', 64), long_ok[64] = '\0';
    memset(too_long, 'q', 65), too_long[65] = '\0';
    aq_config c;
    aq_err e = {0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert(!job_queue_valid(bad[i]));
        snprintf(text, sizeof text, "[redis]\nqueue = %s\n", bad[i]);
        ck_assert_int_eq(config_load_string(&c, text, "c.ini", &e), AQ_EPERM);
    }
    snprintf(text, sizeof text, "[redis]\nqueue = a:b\n");
    ck_assert_int_eq(config_load_string(&c, text, "c.ini", &e), AQ_EPERM);
    assert_has(e.msg, "[redis] queue: 'a:b' is not a valid queue name ([A-Za-z0-9._-]{1,64})");
    snprintf(text, sizeof text, "[redis]\nqueue = %s\n", long_ok);
    ck_assert_msg(config_load_string(&c, text, "c.ini", &e) == 0, "%s", e.msg);
    ck_assert_str_eq(c.redis.queue, long_ok);
    snprintf(text, sizeof text, "[redis]\nqueue = %s\n", too_long);
    ck_assert_int_eq(config_load_string(&c, text, "c.ini", &e), AQ_EPERM);

    /* the CLI: the same message, exit 2, nothing enqueued */
    char conf[400], cfgtext[1024];
    path_in(conf, sizeof conf, "config.ini");
    snprintf(cfgtext, sizeof cfgtext, "[redis]\nurl = %s\nnamespace = qn\n", g_redis.url);
    sup_write_file(conf, cfgtext);
    buf out = BUF_INIT;
    ck_assert_int_eq(run_cli(conf, &out, "enqueue --seed s --queue 'a:b'"), 2);
    assert_has((const char *)out.data, "--queue: 'a:b' is not a valid queue name ([A-Za-z0-9._-]{1,64})");
    char args[200];
    snprintf(args, sizeof args, "enqueue --seed s --queue %s", long_ok);
    ck_assert_int_eq(run_cli(conf, &out, args), 0);
    ck_assert_int_eq(sup_redis_int(&g_redis, "LLEN qn:queue:%s", long_ok), 1);
    ck_assert_int_eq(sup_redis_int(&g_redis, "EXISTS qn:queue:a:b"), 0);
    buf_free(&out);

    /* the library */
    char err[256], id[65];
    avatarq *a = avatarq_open(conf, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    avatarq_request r;
    avatarq_request_init(&r);
    r.seed = "s";
    r.queue = "a:b";
    ck_assert_int_ne(avatarq_enqueue(a, &r, id, err, sizeof err), 0);
    assert_has(err, "queue: 'a:b' is not a valid queue name");
    ck_assert_int_ne(avatarq_enqueue_json(a, "x y", "{\"seed\":\"s\"}", id, err, sizeof err), 0);
    ck_assert_ptr_null(avatarq_batch_new(a, "a:b"));
    avatarq_batch *b = avatarq_batch_new(a, long_ok);
    ck_assert_ptr_nonnull(b);
    avatarq_batch_free(b);
    avatarq_close(a);
}
END_TEST

/* ---- 12: PostgreSQL without verify-full to a remote server ---- */

/* The caution meta_pg's describe gives for conninfo, into out. */
static const char *pg_caution(const char *conninfo, char *out, size_t n)
{
    aq_config c;
    config_defaults(&c);
    snprintf(c.database.pg.conninfo, sizeof c.database.pg.conninfo, "%s", conninfo);
    char where[512];
    meta_find("postgresql")->describe(&c, where, sizeof where, out, n);
    ck_assert_msg(strstr(where, "hunter2") == NULL, "password in %s", where);
    return out;
}

START_TEST(pg_remote_without_verify_full_gets_a_caution)
{
    char out[400];
    unsetenv("PGSSLMODE");
    unsetenv("PGHOST");
    assert_has(pg_caution("host=db.example.com dbname=a password=hunter2", out, sizeof out),
               "sslmode=prefer to a server that is not on loopback");
    assert_has(pg_caution("postgresql://u:hunter2@10.1.2.3/a?sslmode=require", out, sizeof out),
               "sslmode=require");
    ck_assert_str_eq(pg_caution("host=db.example.com sslmode=verify-full", out, sizeof out), "");
    ck_assert_str_eq(pg_caution("host=127.0.0.1 dbname=a", out, sizeof out), "");
    ck_assert_str_eq(pg_caution("host=localhost,::1 dbname=a", out, sizeof out), "");
    ck_assert_str_eq(pg_caution("host=/var/run/postgresql dbname=a", out, sizeof out), "");
    ck_assert_str_eq(pg_caution("dbname=a", out, sizeof out), "");   /* the local socket */
    assert_has(pg_caution("host=localhost,db.example.com", out, sizeof out), "not on loopback");
    setenv("PGSSLMODE", "verify-full", 1);
    ck_assert_str_eq(pg_caution("host=db.example.com", out, sizeof out), "");
    unsetenv("PGSSLMODE");
    /* S3 describes itself the same way */
    aq_config c;
    char where[512];
    ck_assert_int_eq(config_load_string(&c, "[storage.s3]\nendpoint = http://s3.example.com\n", "c", NULL), 0);
    storage_find("s3")->describe(&c, where, sizeof where, out, sizeof out);
    assert_has(out, "plain http://");
    ck_assert_int_eq(config_load_string(&c, "[storage.s3]\nendpoint = http://127.0.0.1:9000\n", "c", NULL), 0);
    storage_find("s3")->describe(&c, where, sizeof where, out, sizeof out);
    ck_assert_str_eq(out, "");
}
END_TEST

/* ---- 14: install paths, secrets wiped ---- */

START_TEST(install_refuses_paths_that_could_inject)
{
    new_test_dir();
    char dest[400], marker[400], cmd[2048];
    path_in(dest, sizeof dest, "dest");
    path_in(marker, sizeof marker, "pwned");
    const char *bad[] = {"/usr/x#e touch MARKER#", "/usr/x&y", "usr/relative", "/usr/a b",
                         "/usr/$(touch MARKER)", "/usr/../etc"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char prefix[600] = "";
        const char *m = strstr(bad[i], "MARKER");
        if (m)
            snprintf(prefix, sizeof prefix, "%.*s%s%s", (int)(m - bad[i]), bad[i], marker, m + 6);
        else
            snprintf(prefix, sizeof prefix, "%s", bad[i]);
        snprintf(cmd, sizeof cmd, "bash systemd/install.sh install '%s' '%s' 0.1.0 2>&1", dest, prefix);
        buf out = BUF_INIT;
        ck_assert_int_eq(sup_run(cmd, &out, true), 2);
        assert_has((const char *)out.data, "PREFIX must be an absolute path");
        buf_free(&out);
        ck_assert_msg(access(marker, F_OK) != 0, "PREFIX '%s' ran a command", bad[i]);
        ck_assert_msg(access(dest, F_OK) != 0, "PREFIX '%s' installed something", bad[i]);
    }
    snprintf(cmd, sizeof cmd, "SYSCONFDIR='/etc/x#y' bash systemd/install.sh install '%s' /usr/local 0.1.0", dest);
    buf out = BUF_INIT;
    ck_assert_int_eq(sup_run(cmd, &out, true), 2);
    assert_has((const char *)out.data, "SYSCONFDIR must be an absolute path");
    ck_assert_int_eq(sup_run("bash systemd/install.sh install relative/dest /usr/local 0.1.0", &out, true), 2);
    assert_has((const char *)out.data, "DESTDIR must be an absolute path");
    buf_free(&out);
}
END_TEST

START_TEST(config_secrets_can_be_wiped)
{
    aq_config c;
    aq_err e = {0};
    ck_assert_int_eq(config_load_string(&c, "[redis]\nurl = redis://u:hunter2@h/0\n"
                                            "[storage.s3]\naccess_key = AK\nsecret_key = SK\n"
                                            "[database.postgresql]\nconninfo = password=pw\n", "c", &e), 0);
    ck_assert_str_eq(c.redis.password, "hunter2");
    config_wipe_secrets(&c);
    static const char zero[sizeof c.redis.url];
    ck_assert(memcmp(c.redis.url, zero, sizeof c.redis.url) == 0);
    ck_assert(memcmp(c.redis.password, zero, sizeof c.redis.password) == 0);
    ck_assert(memcmp(c.storage.s3.access_key, zero, sizeof c.storage.s3.access_key) == 0);
    ck_assert(memcmp(c.storage.s3.secret_key, zero, sizeof c.storage.s3.secret_key) == 0);
    ck_assert(memcmp(c.database.pg.conninfo, zero, sizeof zero) == 0);
    ck_assert_str_eq(c.redis.host, "h");   /* the rest stays */
}
END_TEST

/* ---- 6: storage modes are configurable and honour the umask ---- */

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_mode & 07777;
}

START_TEST(storage_modes_are_configured_and_honour_umask)
{
    new_test_dir();
    char root[400], p[500];
    aq_config c;
    aq_err e = {0};
    /* defaults, under the unit's UMask=0027: nothing readable by others */
    umask(027);
    path_in(root, sizeof root, "a");
    ck_assert_int_eq(config_load_string(&c, "", "c", &e), 0);
    snprintf(c.storage.local.root, sizeof c.storage.local.root, "%s", root);
    storage s;
    ck_assert_msg(storage_open(&s, &c, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(storage_put(&s, "avatars/u/32.png", "x", 1, NULL, &e), 0);
    storage_close(&s);
    snprintf(p, sizeof p, "%s/avatars/u/32.png", root);
    ck_assert_uint_eq(mode_of(p), 0640);
    snprintf(p, sizeof p, "%s/avatars/u", root);
    ck_assert_uint_eq(mode_of(p), 0750);

    /* configured modes, umask 022 */
    umask(022);
    path_in(root, sizeof root, "b");
    ck_assert_msg(config_load_string(&c, "[storage.local]\nfile_mode = 0600\ndir_mode = 0711\n", "c", &e) == 0,
                  "%s", e.msg);
    snprintf(c.storage.local.root, sizeof c.storage.local.root, "%s", root);
    ck_assert_msg(storage_open(&s, &c, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(storage_put(&s, "avatars/v/32.png", "x", 1, NULL, &e), 0);
    storage_close(&s);
    snprintf(p, sizeof p, "%s/avatars/v/32.png", root);
    ck_assert_uint_eq(mode_of(p), 0600);
    snprintf(p, sizeof p, "%s/avatars/v", root);
    ck_assert_uint_eq(mode_of(p), 0711);

    ck_assert_int_eq(config_load_string(&c, "[storage.local]\nfile_mode = 4755\n", "c", &e), AQ_EPERM);
    assert_has(e.msg, "[storage.local] file_mode: '4755' has bits outside 0666");
    ck_assert_int_eq(config_load_string(&c, "[storage.local]\ndir_mode = rwx\n", "c", &e), AQ_EPERM);
    assert_has(e.msg, "is not an octal mode");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("findings");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, delete_ignores_keys_stored_in_the_row);
    tcase_add_test(tc, config_file_owned_or_writable_by_others_is_refused);
    tcase_add_test(tc, config_with_secrets_readable_by_others_warns);
    tcase_add_test(tc, render_output_never_follows_a_planted_symlink);
    tcase_add_test(tc, pg_remote_without_verify_full_gets_a_caution);
    tcase_add_test(tc, install_refuses_paths_that_could_inject);
    tcase_add_test(tc, config_secrets_can_be_wiped);
    tcase_add_test(tc, storage_modes_are_configured_and_honour_umask);
    tcase_add_test(tc, s3_refuses_control_characters_in_keys_and_warns_on_plain_http);
    suite_add_tcase(s, tc);
    tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, redis_setup, redis_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stored_control_characters_are_escaped);
    tcase_add_test(tc, queue_names_follow_one_rule_everywhere);
    suite_add_tcase(s, tc);
    tc = tcase_create("s3");
    tcase_add_unchecked_fixture(tc, s3_setup, s3_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, s3_get_bodies_are_capped);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
