/* slots: the shared-memory table through which the supervisor watches its
 * worker processes. Mapped MAP_SHARED|MAP_ANONYMOUS before any fork, so every
 * worker process sees the same pages; fields are C11 atomics (one writer per
 * field: the worker for state/job/counters, the supervisor for pid/flags).
 * The supervisor reads the slots to beat for its workers, to build STATUS=,
 * and to find a job that ran past job_timeout_s. */
#ifndef AQ_SLOTS_H
#define AQ_SLOTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

#define SLOTS_MAX 256

typedef enum { SLOT_IDLE = 0, SLOT_BUSY = 1, SLOT_STOPPING = 2 } slot_state;

typedef struct slot {
    /* written by the supervisor */
    atomic_int pid;              /* worker process, 0 when none */
    atomic_int quiet;            /* 1: take no new jobs */
    atomic_int stop;             /* 1: finish the job in hand and exit */
    /* written by the worker process */
    atomic_int state;            /* slot_state */
    atomic_llong started_at;     /* epoch ms the process came up */
    atomic_llong job_start;      /* monotonic ms the current job started */
    atomic_int attempts;         /* attempt number of the current job */
    atomic_int finishing;        /* 1: the work is done, only recording it in
                                  * Redis remains (no job timeout then: killing
                                  * cannot help a Redis outage) */
    atomic_llong done, failed;
    atomic_uint seq;             /* seqlock over job and doc: odd while writing */
    char job[JOB_ID_MAX + 1];    /* current job id, "" when idle */
    size_t doc_len;              /* current job document as taken (for the */
    char doc[JOB_MAX_DOC + 1];   /* supervisor's timeout path); 0 = too big */
} slot;

/* Maps n zeroed slots shared with future children; NULL on failure. */
slot *slots_map(size_t n);
void slots_unmap(slot *s, size_t n);

/* Worker side: records that the process holds job id (taken as doc) at
 * attempt `attempts`, then marks the slot busy. */
void slots_set_busy(slot *s, const char *id, const char *doc, size_t len,
                    int attempts, int64_t mono_now);
/* Worker side: marks the slot idle and forgets the job. */
void slots_set_idle(slot *s);

/* Supervisor side: a consistent copy of the current job id into out
 * (JOB_ID_MAX + 1 bytes); returns the state seen with it. */
int slots_read_job(slot *s, char *out);

/* Resets every worker-written field (before forking a new process into s). */
void slots_reset(slot *s);

#endif
