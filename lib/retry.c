/* retry: capped exponential backoff with full jitter ("Exponential Backoff
 * And Jitter", AWS Architecture Blog): a delay drawn uniformly from
 * [0, cap] spreads the retries of many workers that failed together. */
#include "retry.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* xoshiro256** (Blackman and Vigna): small, fast and good enough for
 * jitter. Seeded per process from getrandom(); a forked child notices the
 * new pid and reseeds, so a pool of workers never draws the same delays. */
static struct {
    uint64_t s[4];
    pid_t pid; /* 0 = not seeded yet */
} R;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void prng_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        /* No entropy yet (early boot): time and pid still differ per process. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    for (int i = 0; i < 4; i++)
        R.s[i] = splitmix64(&seed); /* never all zero */
    R.pid = getpid();
}

static uint64_t prng_next(void)
{
    if (R.pid != getpid())
        prng_seed();
    uint64_t *s = R.s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, bound] without modulo bias (rejection sampling). */
static uint64_t prng_upto(uint64_t bound)
{
    if (bound == UINT64_MAX)
        return prng_next();
    uint64_t range = bound + 1, limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t x;
    do
        x = prng_next();
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
    return (int64_t)prng_upto((uint64_t)retry_cap_ms(attempt, base_ms, max_ms));
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
