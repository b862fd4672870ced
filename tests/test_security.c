/* The security review's findings (issue 13), one test each, against the real
 * code paths: a hostile metadata row, a planted config file or symlink,
 * control characters in stored data, secrets in URLs, hostile S3 input. Each
 * test failed before its fix. */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "avatar.h"
#include "config.h"
#include "job.h"
#include "meta.h"
#include "storage.h"
#include "support.h"

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

int main(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("findings");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, delete_ignores_keys_stored_in_the_row);
    tcase_add_test(tc, config_file_owned_or_writable_by_others_is_refused);
    tcase_add_test(tc, config_with_secrets_readable_by_others_warns);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
