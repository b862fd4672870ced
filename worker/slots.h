/* slots: the shared-memory table through which the supervisor watches its
 * worker processes. Mapped MAP_SHARED|MAP_ANONYMOUS before any fork, so every
 * worker process sees the same pages; fields are C11 atomics (one writer per
 * field: the worker for state/jobs/counters, the supervisor for pid/flags).
 * A worker process holds up to [worker] concurrency jobs, one slot_job each.
 * The supervisor reads the slots to beat for its workers, to build STATUS=,
 * and to find a job that ran past job_timeout_s.
 *
 * Change procedure: a field written by the worker is reset in slots_reset
 * (before a fork refills the slot); a job's id is written only between
 * seq_begin/seq_end of its slot_job, and read with slots_read_job. */
#ifndef AQ_SLOTS_H
#define AQ_SLOTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

#define SLOTS_MAX 256
#define SLOT_JOBS_MAX 256 /* [worker] concurrency at most */

typedef enum { SLOT_IDLE = 0, SLOT_BUSY = 1, SLOT_STOPPING = 2 } slot_state;

typedef struct slot_job {
    atomic_uint seq;             /* seqlock over id: odd while writing */
    atomic_llong start;          /* monotonic ms the process took it; 0 = free */
    atomic_llong run;            /* monotonic ms its work began; 0 = waiting for
                                  * a thread (prefetched) */
    atomic_int attempts;         /* its attempt number (a floor until known) */
    atomic_int finishing;        /* 1: the work is done, only recording it
                                  * remains (no job timeout then: killing
                                  * cannot help a Redis outage) */
    char id[JOB_ID_MAX + 1];
} slot_job;

typedef struct slot {
    /* written by the supervisor */
    atomic_int pid;              /* worker process, 0 when none */
    atomic_int quiet;            /* 1: take no new jobs */
    atomic_int stop;             /* 1: finish the jobs in hand and exit */
    atomic_uint nonce;           /* random per process start: part of its id */
    /* written by the worker process */
    atomic_int ready;            /* 1: past start-up (stores and Redis open):
                                  * only then does the supervisor beat for it */
    atomic_int state;            /* slot_state: busy while any job is held */
    atomic_int inflight;         /* jobs held */
    atomic_llong started_at;     /* epoch ms the process came up */
    atomic_llong done, failed;
    slot_job jobs[SLOT_JOBS_MAX];
} slot;

/* Maps n zeroed slots shared with future children; NULL on failure. */
slot *slots_map(size_t n);
void slots_unmap(slot *s, size_t n);

/* Worker side: job k of s is id at attempt `attempts`, started now. */
void slots_job_begin(slot *s, int k, const char *id, int attempts, int64_t mono_now);
/* Worker side: the work of job k begins now. */
void slots_job_run(slot *s, int k, int64_t mono_now);
/* Worker side: job k is finished and forgotten. */
void slots_job_end(slot *s, int k);

/* Supervisor side: a consistent copy of job k's id into out (JOB_ID_MAX + 1
 * bytes); returns when the process took it (monotonic ms), 0 when the entry
 * is free. */
int64_t slots_read_job(slot *s, int k, char *out);
/* Supervisor side: the id of the first job held into out ("" when none). */
void slots_first_job(slot *s, char *out);

/* Resets every worker-written field (before forking a new process into s). */
void slots_reset(slot *s);

#endif
