/* retry: exponential backoff with full jitter, shared by S3, PostgreSQL,
 * Redis reconnects and the job retry path. */
#ifndef AQ_RETRY_H
#define AQ_RETRY_H

#include <stdint.h>

/* A random delay in [0, min(max_ms, base_ms * 2^attempt)] (full jitter).
 * attempt counts from 0. Uses a per-process PRNG seeded from getrandom. */
int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* The cap itself, without jitter: min(max_ms, base_ms * 2^attempt). */
int64_t retry_cap_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* Sleeps ms milliseconds, resuming after signals; returns early (non-zero)
 * when *stop becomes non-zero (stop may be NULL). */
int retry_sleep_ms(int64_t ms, volatile int *stop);

/* Milliseconds since the epoch / on the monotonic clock. */
int64_t now_ms(void);
int64_t mono_ms(void);

#endif
