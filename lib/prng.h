/* prng: xoshiro256** (Blackman and Vigna) and the splitmix64 that seeds it,
 * the one PRNG of the project. The renderer seeds it from a seed's SHA-256
 * (the same pictures on every machine, so its output must never change);
 * retry.c seeds it per process from getrandom() for backoff jitter. */
#ifndef AQ_PRNG_H
#define AQ_PRNG_H

#include <stdint.h>

typedef struct prng {
    uint64_t s[4];   /* never all zero once seeded through prng_splitmix64 */
} prng;

/* Advances *x and returns the next splitmix64 output (for seeding). */
uint64_t prng_splitmix64(uint64_t *x);

/* Seeds p with four splitmix64 draws from seed. */
void prng_seed(prng *p, uint64_t seed);

/* The next 64 random bits of p (xoshiro256**). */
uint64_t prng_next(prng *p);

#endif
