#include "slots.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

slot *slots_map(size_t n)
{
    /* Anonymous pages are zero-filled and only cost memory once touched, so
     * the 64 KiB document buffer of an unused slot is free. */
    void *p = mmap(NULL, n * sizeof(slot), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void slots_unmap(slot *s, size_t n)
{
    if (s)
        munmap(s, n * sizeof(slot));
}

static void seq_begin(slot *s)
{
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
}

static void seq_end(slot *s)
{
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
}

void slots_set_busy(slot *s, const char *id, const char *doc, size_t len,
                    int attempts, int64_t mono_now)
{
    seq_begin(s);
    snprintf(s->job, sizeof s->job, "%s", id);
    if (len <= JOB_MAX_DOC) {
        memcpy(s->doc, doc, len);
        s->doc[len] = '\0';
        s->doc_len = len;
    } else {
        s->doc_len = 0;
    }
    seq_end(s);
    atomic_store(&s->attempts, attempts);
    atomic_store(&s->job_start, mono_now);
    atomic_store(&s->state, SLOT_BUSY);
}

void slots_set_idle(slot *s)
{
    atomic_store(&s->state, SLOT_IDLE);
    atomic_store(&s->finishing, 0);
    seq_begin(s);
    s->job[0] = '\0';
    seq_end(s);
}

int slots_read_job(slot *s, char *out)
{
    for (int tries = 0; tries < 100; tries++) {
        unsigned before = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (before & 1)
            continue;
        int state = atomic_load(&s->state);
        memcpy(out, s->job, JOB_ID_MAX + 1);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_acquire) == before) {
            out[JOB_ID_MAX] = '\0';
            return state;
        }
    }
    out[0] = '\0'; /* a writer kept us out: report no job rather than a torn one */
    return atomic_load(&s->state);
}

void slots_reset(slot *s)
{
    atomic_store(&s->state, SLOT_IDLE);
    atomic_store(&s->started_at, 0);
    atomic_store(&s->job_start, 0);
    atomic_store(&s->attempts, 0);
    atomic_store(&s->finishing, 0);
    atomic_store(&s->done, 0);
    atomic_store(&s->failed, 0);
    atomic_store(&s->stop, 0);
    s->job[0] = '\0';
    s->doc_len = 0;
}
