/* retry: the backoff cap (overflow-safe for any attempt), full jitter
 * bounds and spread, a PRNG that differs between forked processes, and
 * sleeping that a stop flag set from a signal handler cuts short. */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "retry.h"
#include "support.h"

START_TEST(cap_table)
{
    static const struct { int attempt; int64_t base, max, want; } t[] = {
        {0, 1000, 300000, 1000},
        {1, 1000, 300000, 2000},
        {2, 1000, 300000, 4000},
        {8, 1000, 300000, 256000},
        {9, 1000, 300000, 300000},
        {30, 1000, 300000, 300000},
        {61, 1000, 300000, 300000},
        {62, 1000, 300000, 300000},
        {63, 1000, 300000, 300000},
        {64, 1000, 300000, 300000},
        {1000, 1000, 300000, 300000},
        {2147483647, 1000, 300000, 300000},
        {-1, 1000, 300000, 1000},      /* a negative attempt counts as the first */
        {-2147483647 - 1, 1000, 300000, 1000},
        {5, 0, 300000, 0},
        {5, -10, 300000, 0},
        {0, 5000, 1000, 1000},         /* base above max: max */
        {3, 1000, -1, 0},
        {1, INT64_MAX / 2, INT64_MAX, INT64_MAX - 1},
        {2, INT64_MAX / 2, INT64_MAX, INT64_MAX},
        {40, 1, INT64_MAX, (int64_t)1 << 40},
        {62, 1, INT64_MAX, INT64_MAX},
        {61, 1, INT64_MAX, (int64_t)1 << 61},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t got = retry_cap_ms(t[i].attempt, t[i].base, t[i].max);
        ck_assert_msg(got == t[i].want, "cap(%d, %lld, %lld) = %lld, want %lld", t[i].attempt,
                      (long long)t[i].base, (long long)t[i].max, (long long)got, (long long)t[i].want);
    }
}
END_TEST

START_TEST(jitter_bounds_and_spread)
{
    for (int attempt = 0; attempt < 70; attempt += 3) {
        int64_t cap = retry_cap_ms(attempt, 1000, 300000);
        int64_t lo = INT64_MAX, hi = -1;
        double sum = 0;
        const int n = 4000;
        for (int i = 0; i < n; i++) {
            int64_t d = retry_backoff_ms(attempt, 1000, 300000);
            ck_assert_msg(d >= 0 && d <= cap, "attempt %d: %lld outside 0..%lld", attempt, (long long)d,
                          (long long)cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += (double)d;
        }
        /* full jitter: the whole range is used, centred on cap/2 */
        ck_assert_msg(lo < cap / 10 && hi > cap - cap / 10, "attempt %d: range %lld..%lld of %lld", attempt,
                      (long long)lo, (long long)hi, (long long)cap);
        double mean = sum / n;
        ck_assert_msg(mean > 0.4 * (double)cap && mean < 0.6 * (double)cap, "attempt %d: mean %.0f of %lld",
                      attempt, mean, (long long)cap);
    }
    ck_assert_int_eq(retry_backoff_ms(3, 0, 1000), 0);
    ck_assert_int_eq(retry_backoff_ms(3, 1000, 0), 0);
    for (int i = 0; i < 1000; i++) {
        int64_t d = retry_backoff_ms(100, 1, INT64_MAX);
        ck_assert(d >= 0);
    }
    int64_t ones[2] = {0, 0};
    for (int i = 0; i < 1000; i++)
        ones[retry_backoff_ms(0, 1, 1)]++;
    ck_assert(ones[0] > 350 && ones[1] > 350); /* [0, 1] inclusive, both ends */
}
END_TEST

/* A forked worker pool must not draw one shared sequence. */
START_TEST(fork_reseeds)
{
    (void)retry_backoff_ms(10, 1000, INT64_MAX); /* seed the parent first */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    int64_t mine[8], theirs[8];
    if (pid == 0) {
        for (int i = 0; i < 8; i++)
            mine[i] = retry_backoff_ms(40, 1, INT64_MAX);
        ssize_t w = write(p[1], mine, sizeof mine);
        _exit(w == (ssize_t)sizeof mine ? 0 : 1);
    }
    for (int i = 0; i < 8; i++)
        mine[i] = retry_backoff_ms(40, 1, INT64_MAX);
    ck_assert_int_eq(read(p[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
    int st;
    waitpid(pid, &st, 0);
    close(p[0]);
    close(p[1]);
    ck_assert_msg(memcmp(mine, theirs, sizeof mine) != 0, "parent and child drew the same delays");
}
END_TEST

static volatile int stop_flag;

static void on_alarm(int sig)
{
    (void)sig;
    stop_flag = 1;
}

START_TEST(sleep_and_stop)
{
    int64_t t0 = mono_ms();
    ck_assert_int_eq(retry_sleep_ms(120, NULL), 0);
    ck_assert_int_ge(mono_ms() - t0, 120); /* never shorter than asked */
    ck_assert_int_eq(retry_sleep_ms(0, NULL), 0);
    ck_assert_int_eq(retry_sleep_ms(-5, NULL), 0);

    /* a signal handler sets the flag 50 ms into a 10-minute sleep */
    stop_flag = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = {{0, 0}, {0, 50000}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    t0 = mono_ms();
    ck_assert_int_eq(retry_sleep_ms(600000, &stop_flag), 1);
    ck_assert_int_lt(mono_ms() - t0, 60000); /* returned early, well before the end */

    /* already stopped: returns at once; a huge delay does not overflow */
    ck_assert_int_eq(retry_sleep_ms(INT64_MAX, &stop_flag), 1);
}
END_TEST

START_TEST(clocks)
{
    int64_t now = now_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ref = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ck_assert(now <= ref && ref - now < 60000);
    ck_assert(now > 1700000000000LL); /* milliseconds, not seconds */
    int64_t a = mono_ms(), b = mono_ms();
    ck_assert(b >= a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cap_table);
    tcase_add_test(tc, jitter_bounds_and_spread);
    tcase_add_test(tc, fork_reseeds);
    tcase_add_test(tc, sleep_and_stop);
    tcase_add_test(tc, clocks);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
