/* retry: capped exponential backoff with full jitter ("Exponential Backoff
 * And Jitter", AWS Architecture Blog): a delay drawn uniformly from
 * [0, cap] spreads the retries of many workers that failed together. */
#include "retry.h"

#include "prng.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* The jitter PRNG (prng.h), seeded per process from getrandom(); a forked
 * child notices the new pid and reseeds, so a pool of workers never draws
 * the same delays. */
static struct {
    prng p;
    pid_t pid; /* 0 = not seeded yet */
} R;

static void jitter_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        /* No entropy yet (early boot): time and pid still differ per process. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    prng_seed(&R.p, seed); /* splitmix64 draws: never all zero */
    R.pid = getpid();
}

static uint64_t jitter_next(void)
{
    if (R.pid != getpid())
        jitter_seed();
    return prng_next(&R.p);
}

/* Uniform in [0, bound] without modulo bias (rejection sampling). */
static uint64_t jitter_upto(uint64_t bound)
{
    if (bound == UINT64_MAX)
        return jitter_next();
    uint64_t range = bound + 1, limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t x;
    do
        x = jitter_next();
    while (x >= limit);
    return x % range;
}

int64_t retry_cap_ms(int attempt, int64_t base_ms, int64_t max_ms)
{
    if (attempt < 0)
        attempt = 0;
    if (base_ms < 0)
        base_ms = 0;
    if (max_ms < 0)
        max_ms = 0;
    /* base * 2^attempt would overflow past this point: it is above any max. */
    if (attempt >= 62 || base_ms > (INT64_MAX >> attempt))
        return max_ms;
    int64_t v = base_ms << attempt;
    return v < max_ms ? v : max_ms;
}

int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms)
{
    return (int64_t)jitter_upto((uint64_t)retry_cap_ms(attempt, base_ms, max_ms));
}

/* Longest single sleep, so a stop flag set by a signal that arrived just
 * before nanosleep() is still seen soon. */
#define SLICE_MS 100

int retry_sleep_ms(int64_t ms, volatile int *stop)
{
    int64_t start = mono_ms();
    if (ms < 0)
        ms = 0;
    int64_t end = ms > INT64_MAX - start ? INT64_MAX : start + ms;
    for (;;) {
        if (stop && *stop)
            return 1;
        int64_t left = end - mono_ms();
        if (left <= 0)
            return 0;
        if (left > SLICE_MS)
            left = SLICE_MS;
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* EINTR: loop, check stop, sleep what is left */
    }
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}
