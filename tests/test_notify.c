/* avatarq-worker under a stand-in systemd (issue 7): the test binds the
 * NOTIFY_SOCKET datagram socket itself and reads what the supervisor says
 * (READY, STATUS, WATCHDOG, RELOADING, STOPPING), wedges the supervisor with
 * SIGSTOP to see the watchdog pings stop, and drives quiet/resume/stop
 * through the NS:control stream. */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "support.h"
#include "support_worker.h"

static wh H;
static int SOCK = -1;
static char SOCK_PATH[300];
static char ENV_SOCKET[400];
static char *ENV[] = {ENV_SOCKET, "WATCHDOG_USEC=1000000", NULL};

static void setup(void)
{
    wh_setup(&H, false, NULL);
    snprintf(SOCK_PATH, sizeof SOCK_PATH, "%s/notify.sock", H.dir);
    snprintf(ENV_SOCKET, sizeof ENV_SOCKET, "NOTIFY_SOCKET=%s", SOCK_PATH);
    SOCK = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(SOCK, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    ck_assert_msg(strlen(SOCK_PATH) < sizeof a.sun_path, "socket path too long: %s", SOCK_PATH);
    memcpy(a.sun_path, SOCK_PATH, strlen(SOCK_PATH) + 1);
    ck_assert_int_eq(bind(SOCK, (struct sockaddr *)&a, sizeof a), 0);
}

static void teardown(void)
{
    if (SOCK >= 0)
        close(SOCK);
    SOCK = -1;
    wh_teardown(&H);
}

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Receives one notification into out within timeout_ms; false on timeout. */
static bool recv_msg(char *out, size_t n, int timeout_ms)
{
    struct pollfd p = {.fd = SOCK, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    ssize_t len = recv(SOCK, out, n - 1, 0);
    if (len < 0)
        return false;
    out[len] = '\0';
    return true;
}

/* Waits for a message containing want; counts WATCHDOG=1 pings seen on the
 * way in *pings (may be NULL). Returns true when it came. */
static bool wait_msg(const char *want, int timeout_ms, int *pings, char *got, size_t gotn)
{
    int64_t end = mono() + timeout_ms;
    char m[1024];
    while (mono() < end) {
        if (!recv_msg(m, sizeof m, (int)(end - mono())))
            continue;
        if (pings && strstr(m, "WATCHDOG=1"))
            (*pings)++;
        if (strstr(m, want)) {
            if (got)
                snprintf(got, gotn, "%s", m);
            return true;
        }
    }
    return false;
}

/* Counts WATCHDOG=1 pings received during ms. */
static int count_pings(int ms)
{
    int n = 0;
    int64_t end = mono() + ms;
    char m[1024];
    while (mono() < end)
        if (recv_msg(m, sizeof m, (int)(end - mono())) && strstr(m, "WATCHDOG=1"))
            n++;
    return n;
}

static void drain(void)
{
    char m[1024];
    while (recv_msg(m, sizeof m, 0))
        ;
}

START_TEST(t_ready_status_watchdog_stopping_in_order)
{
    wh_start(&H, ENV);
    char got[1024];
    int early_pings = 0;
    ck_assert_msg(wait_msg("READY=1", 20000, &early_pings, NULL, 0), "no READY=1");
    ck_assert_int_eq(early_pings, 0); /* nothing before READY */
    /* READY only once Redis answered and the pool is up */
    ck_assert(wh_wait_int(&H, 2, 10000, "SCARD " WH_NS ":workers"));
    ck_assert_msg(wait_msg("STATUS=", 10000, NULL, got, sizeof got), "no STATUS=");
    ck_assert_msg(strstr(got, "/2 processes") && strstr(got, "queue") && strstr(got, "done"),
                  "STATUS lacks busy/total, queue, done: %s", got);
    /* WATCHDOG_USEC = 1 s: a ping about every 500 ms; count over 4 s with a
     * generous band (2 shared cores) */
    int pings = count_pings(4000);
    ck_assert_msg(pings >= 4 && pings <= 16, "%d watchdog pings in 4 s", pings);
    /* SIGHUP: RELOADING=1, then READY=1 again */
    kill(H.pid, SIGHUP);
    ck_assert_msg(wait_msg("RELOADING=1", 10000, NULL, NULL, 0), "no RELOADING=1");
    ck_assert_msg(wait_msg("READY=1", 30000, NULL, NULL, 0), "no READY=1 after reload");
    /* SIGTERM: STOPPING=1, then the process exits 0 */
    kill(H.pid, SIGTERM);
    ck_assert_msg(wait_msg("STOPPING=1", 10000, NULL, NULL, 0), "no STOPPING=1");
    int st = wh_stop(&H, SIGTERM, 30000);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

START_TEST(t_watchdog_silent_while_wedged)
{
    wh_start(&H, ENV);
    ck_assert(wait_msg("READY=1", 20000, NULL, NULL, 0));
    ck_assert_int_ge(count_pings(2000), 2);
    kill(H.pid, SIGSTOP);
    sup_sleep_ms(300);
    drain(); /* what was in flight before the stop */
    int wedged = count_pings(3000);
    kill(H.pid, SIGCONT);
    ck_assert_msg(wedged == 0, "%d pings while the supervisor was stopped", wedged);
    ck_assert_msg(count_pings(3000) >= 1, "pings did not resume");
    int st = wh_stop(&H, SIGTERM, 30000);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* Posts a control command the way `avatarq quiet ...` does. */
static void control(const char *target, const char *cmd)
{
    char reply[128];
    snprintf(reply, sizeof reply, "%s",
             wh_str(&H, "XADD " WH_NS ":control * target %s cmd %s", target, cmd));
    ck_assert_msg(strchr(reply, '-'), "XADD failed: %s", reply);
}

/* Waits until the worker log has n lines containing text. */
static bool log_has(const char *text, int n, int timeout_ms)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "grep -c -- '%s' '%s'", text, H.log);
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        buf b = BUF_INIT;
        sup_run(cmd, &b, false);
        int c = b.data ? atoi((char *)b.data) : 0;
        buf_free(&b);
        if (c >= n)
            return true;
        sup_sleep_ms(100);
    }
    return false;
}

START_TEST(t_quiet_resume_stop)
{
    wh_write_config(&H, "processes = 1\n", NULL);
    wh_start(&H, NULL);
    ck_assert(wh_wait_int(&H, 1, 20000, "SCARD " WH_NS ":workers"));
    char id[200], target[220], key[260];
    snprintf(id, sizeof id, "%s", wh_str(&H, "SRANDMEMBER " WH_NS ":workers"));
    snprintf(target, sizeof target, "worker:%s", id);
    snprintf(key, sizeof key, WH_NS ":worker:%s", id);
    pid_t pid = (pid_t)atol(strrchr(id, ':') + 1);

    control(target, "quiet");
    ck_assert(log_has("remote command", 1, 10000));
    sup_sleep_ms(1500); /* a take already waiting (1 s) may still end */
    wh_push_str(&H, "{\"id\":\"later\",\"seed\":\"later\",\"sizes\":[32]}");
    sup_sleep_ms(4000); /* longer than heartbeat_ttl_s = 3 */
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 1);
    ck_assert_int_eq(wh_int(&H, "EXISTS %s", key), 1);   /* heartbeat continues */
    ck_assert_str_eq(wh_str(&H, "HGET %s state", key), "idle");

    control(target, "resume");
    ck_assert_msg(wh_wait_state(&H, "later", "done", 20000), "not resumed");

    control(target, "stop");
    for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
        sup_sleep_ms(100);
    ck_assert_msg(kill(pid, 0) != 0, "worker did not stop");
    ck_assert(log_has("worker exited", 1, 5000)); /* clean, not a crash */
    sup_sleep_ms(2000);
    ck_assert_int_eq(wh_int(&H, "SCARD " WH_NS ":workers"), 0); /* not restarted */
    ck_assert_int_eq(wh_int(&H, "EXISTS %s", key), 0);
    ck_assert(kill(H.pid, 0) == 0);

    control("all", "stop"); /* the whole supervisor stops, exit 0 */
    int st = -1;
    for (int i = 0; i < 300 && st == -1; i++) {
        st = sup_wait(H.pid, 100);
    }
    H.pid = 0;
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("notify");
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_ready_status_watchdog_stopping_in_order);
    tcase_add_test(tc, t_watchdog_silent_while_wedged);
    tcase_add_test(tc, t_quiet_resume_stop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
