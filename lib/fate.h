/* fate: the one place that decides what becomes of a job after an attempt
 * that did not succeed: retried at a due time, or dead. The worker's failure
 * path, the supervisor's job timeout and the requeue of a dead worker's jobs
 * all ask here, and here alone is the max_attempts default applied. */
#ifndef AQ_FATE_H
#define AQ_FATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

typedef enum {
    FATE_TRANSIENT, /* a failure that may pass (AQ_EAGAIN, a timeout): backoff */
    FATE_PERMANENT, /* bad input, a refusal: dead at once */
    FATE_DIED,      /* its worker died while running it: again at once */
} fate_cause;

typedef struct fate {
    bool retry;      /* false: dead */
    int64_t due_ms;  /* epoch ms when a retry is due (now for FATE_DIED) */
    int max;         /* the max_attempts that applied */
} fate;

/* max_attempts of a job: its own (1..25) when it has one, else [worker]
 * max_attempts. */
int fate_max_attempts(const aq_config *c, int job_max);

/* Decides the fate of a job whose attempt number `attempts` (1-based, as
 * counted by the start call) failed for `cause`, at now_ms. A job retries
 * while attempts < max and the cause may pass; the delay is the jittered
 * exponential backoff of [worker] backoff_base_ms/backoff_max_ms. */
fate fate_decide(const aq_config *c, int job_max, int attempts, fate_cause cause, int64_t now_ms);

#endif
