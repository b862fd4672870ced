/* worker: one worker process. Forked by the supervisor; opens its own Redis,
 * storage and metadata handles (nothing crosses fork), then holds up to
 * [worker] concurrency jobs until told to stop: take -> parse -> start ->
 * generate/delete -> metadata -> ack, or fail into a retry (NS:delayed) or a
 * dead letter (NS:dead); see worker.c. */
#ifndef AQ_WORKER_H
#define AQ_WORKER_H

#include <stddef.h>

#include "config.h"
#include "job.h"
#include "slots.h"

/* Runs the worker process for slot s with config c and never returns: exits 0
 * after a clean stop (SIGTERM, the slot's stop flag, or the parent's death),
 * 1 when it cannot set up. parent is the supervisor's pid (to notice an
 * orphaning that happened before PR_SET_PDEATHSIG took effect). */
_Noreturn void worker_run(const aq_config *c, slot *s, int parent);

/* "HOST:PID-NONCE" of process pid on this host into out: nonce (4 hex
 * digits, random per process start) keeps ids apart across containers that
 * share a host name but not PID numbers. */
void worker_id(char *out, size_t n, long pid, unsigned nonce);
/* This host's name (gethostname, "localhost" when it fails). */
const char *worker_host(void);

/* queue_ident_fn for recovery: id and max_attempts of a document through
 * job_parse, with the job_limits that limits points to. */
int worker_ident(void *limits, const char *doc, size_t len, char id[65], int *max_attempts,
                 char *why, size_t whylen);

#endif
