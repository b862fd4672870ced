#include "slots.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

slot *slots_map(size_t n)
{
    /* Anonymous pages are zero-filled and only cost memory once touched, so
     * the job entries beyond a process's concurrency are free. */
    void *p = mmap(NULL, n * sizeof(slot), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void slots_unmap(slot *s, size_t n)
{
    if (s)
        munmap(s, n * sizeof(slot));
}

static void seq_begin(slot_job *j)
{
    atomic_fetch_add_explicit(&j->seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
}

static void seq_end(slot_job *j)
{
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&j->seq, 1, memory_order_release);
}

void slots_job_begin(slot *s, int k, const char *id, int attempts, int64_t mono_now)
{
    slot_job *j = &s->jobs[k];
    seq_begin(j);
    snprintf(j->id, sizeof j->id, "%s", id);
    seq_end(j);
    atomic_store(&j->attempts, attempts);
    atomic_store(&j->finishing, 0);
    atomic_store(&j->run, 0);
    atomic_store(&j->start, mono_now > 0 ? mono_now : 1);
    if (atomic_fetch_add(&s->inflight, 1) == 0)
        atomic_store(&s->state, SLOT_BUSY);
}

void slots_job_run(slot *s, int k, int64_t mono_now)
{
    atomic_store(&s->jobs[k].run, mono_now > 0 ? mono_now : 1);
}

void slots_job_end(slot *s, int k)
{
    slot_job *j = &s->jobs[k];
    atomic_store(&j->start, 0);
    atomic_store(&j->finishing, 0);
    seq_begin(j);
    j->id[0] = '\0';
    seq_end(j);
    if (atomic_fetch_sub(&s->inflight, 1) == 1)
        atomic_store(&s->state, SLOT_IDLE);
}

int64_t slots_read_job(slot *s, int k, char *out)
{
    slot_job *j = &s->jobs[k];
    for (int tries = 0; tries < 100; tries++) {
        unsigned before = atomic_load_explicit(&j->seq, memory_order_acquire);
        if (before & 1)
            continue;
        int64_t start = atomic_load(&j->start);
        memcpy(out, j->id, JOB_ID_MAX + 1);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&j->seq, memory_order_acquire) == before) {
            out[JOB_ID_MAX] = '\0';
            return start;
        }
    }
    out[0] = '\0'; /* a writer kept us out: report no job rather than a torn one */
    return atomic_load(&j->start);
}

void slots_first_job(slot *s, char *out)
{
    out[0] = '\0';
    for (int k = 0; k < SLOT_JOBS_MAX && atomic_load(&s->inflight) > 0; k++)
        if (slots_read_job(s, k, out) > 0 && out[0])
            return;
    out[0] = '\0';
}

void slots_reset(slot *s)
{
    atomic_store(&s->state, SLOT_IDLE);
    atomic_store(&s->ready, 0);
    atomic_store(&s->inflight, 0);
    atomic_store(&s->started_at, 0);
    atomic_store(&s->done, 0);
    atomic_store(&s->failed, 0);
    atomic_store(&s->stop, 0);
    for (int k = 0; k < SLOT_JOBS_MAX; k++) {
        atomic_store(&s->jobs[k].start, 0);
        atomic_store(&s->jobs[k].run, 0);
        atomic_store(&s->jobs[k].finishing, 0);
        s->jobs[k].id[0] = '\0';
    }
}
