/* The real avatarq-worker with [database] backend = postgresql, against a
 * PostgreSQL cluster of our own: 500 jobs with the server restarted in the
 * middle all end done with exactly 500 rows and nothing dead; a wrong
 * password is a clear start-up error that never shows the password; a
 * delete job removes the row. The database settings come in through the
 * AVATARQ_* environment, as an operator would override them. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "meta.h"
#include "support.h"
#include "support_pg.h"
#include "support_worker.h"

static sup_pg pg;   /* one cluster for the binary, started by the parent */
static wh H;

static void suite_setup(void)
{
    sup_pg_start(&pg);
}

static void suite_teardown(void)
{
    wh_reap_strays();
    sup_pg_destroy(&pg);
}

/* Retries have room to outlast a server restart: 25 attempts, backoff up
 * to a second. */
static void setup(void)
{
    wh_setup(&H, false, "max_attempts = 25\nbackoff_base_ms = 100\nbackoff_max_ms = 1000\n");
}

static void teardown(void)
{
    wh_teardown(&H);
}

/* Environment for the worker: PostgreSQL with this conninfo. */
static char env_backend[] = "AVATARQ_DATABASE_BACKEND=postgresql";
static char env_conninfo[700];
static char *pg_env[] = {env_backend, env_conninfo, NULL};

static void use_conninfo(const char *conninfo)
{
    snprintf(env_conninfo, sizeof env_conninfo, "AVATARQ_DATABASE_POSTGRESQL_CONNINFO=%s", conninfo);
}

/* The worker log as a string (static, until the next call). */
static const char *worker_log(void)
{
    static buf b = BUF_INIT;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cat '%s'", H.log);
    sup_run(cmd, &b, false);
    return b.data ? (const char *)b.data : "";
}

START_TEST(t_restart_during_500_jobs)
{
    char ci[512];
    sup_pg_createdb(&pg, "run500", ci, sizeof ci);
    use_conninfo(ci);
    wh_start(&H, pg_env);
    for (int i = 0; i < 500; i++) {
        char doc[160];
        snprintf(doc, sizeof doc, "{\"v\":1,\"id\":\"job-%03d\",\"seed\":\"seed %d\",\"sizes\":[32]}",
                 i, i);
        wh_push_str(&H, doc);
    }
    ck_assert_msg(wh_wait_int(&H, 100, 60000, "HGET " WH_NS ":stats done"), "no progress");
    sup_pg_stop(&pg);     /* mid-run: jobs now fail as transient and wait */
    sup_sleep_ms(500);
    sup_pg_restart(&pg);
    bool all = wh_wait_int(&H, 500, 120000, "HGET " WH_NS ":stats done");
    if (!all)
        wh_show_log(&H, 40);
    ck_assert_msg(all, "only %lld of 500 done", wh_int(&H, "HGET " WH_NS ":stats done"));
    for (int i = 0; i < 500; i++) {
        char id[32];
        snprintf(id, sizeof id, "job-%03d", i);
        ck_assert_msg(wh_wait_state(&H, id, "done", 10000), "%s is %s", id,
                      wh_str(&H, "HGET " WH_NS ":job:%s state", id));
    }
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 0);
    ck_assert_int_eq(sup_pg_int(&pg, "run500", "SELECT count(*) FROM avatars"), 500);
    ck_assert_int_eq(sup_pg_int(&pg, "run500", "SELECT count(DISTINCT id) FROM avatars"), 500);
    ck_assert_int_eq(sup_pg_int(&pg, "run500", "SELECT count(*) FROM avatars WHERE storage = 'local' "
                                               "AND sizes = '[32]' AND bytes > 0"), 500);
    fprintf(stderr, "restart run: %lld retries while the database was away\n",
            wh_int(&H, "HGET " WH_NS ":stats retried"));
    int st = wh_stop(&H, SIGTERM, 30000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker stop status %d", st);
    ck_assert_ptr_null(strstr(worker_log(), pg.password));
}
END_TEST

START_TEST(t_wrong_password_is_a_clear_startup_error)
{
    char ci[512];
    const char *wrong = "NotThePassword-31337";
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=%s user=%s password=%s", pg.port,
             pg.dbname, pg.user, wrong);
    use_conninfo(ci);
    wh_start(&H, pg_env);
    int st = sup_wait(H.pid, 60000);
    if (st != -1)
        H.pid = 0;
    ck_assert_msg(st != -1, "the worker kept running with a wrong password");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "exit status %d", st);
    const char *log = worker_log();
    ck_assert_msg(strstr(log, "password authentication failed"), "log: %s", log);
    ck_assert_msg(!strstr(log, wrong), "the log shows the password: %s", log);
    ck_assert_msg(!strstr(log, "password="), "the log echoes the conninfo: %s", log);
}
END_TEST

START_TEST(t_delete_job_removes_the_row)
{
    char ci[512];
    sup_pg_createdb(&pg, "deletes", ci, sizeof ci);
    use_conninfo(ci);
    wh_start(&H, pg_env);
    wh_push_str(&H, "{\"v\":1,\"id\":\"short-lived\",\"seed\":\"x\",\"sizes\":[32,64]}");
    ck_assert(wh_wait_state(&H, "short-lived", "done", 30000));
    ck_assert_int_eq(sup_pg_int(&pg, "deletes", "SELECT count(*) FROM avatars WHERE id = 'short-lived' "
                                                "AND sizes = '[32,64]'"), 1);
    wh_push_str(&H, "{\"v\":1,\"id\":\"short-lived\",\"type\":\"delete\"}");
    ck_assert(wh_wait_int(&H, 2, 30000, "HGET " WH_NS ":stats done"));
    ck_assert_int_eq(sup_pg_int(&pg, "deletes", "SELECT count(*) FROM avatars"), 0);
    char png[600];
    wh_png_path(&H, "short-lived", 32, png, sizeof png);
    ck_assert(!wh_exists(png));
    int n;
    meta_migrations(&n);
    ck_assert_int_eq(sup_pg_int(&pg, "deletes", "SELECT count(*) FROM schema_migrations"), n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pg_worker");
    TCase *tc = tcase_create("worker on postgresql");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, t_wrong_password_is_a_clear_startup_error);
    tcase_add_test(tc, t_delete_job_removes_the_row);
    tcase_add_test(tc, t_restart_during_500_jobs);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
