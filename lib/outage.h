/* outage: one Redis outage and its backoff, for a process that keeps
 * calling Redis (a worker's dispatcher, the supervisor). Both used to keep
 * their own copy of this state machine with their own constants.
 *
 *   ok ──AQ_EAGAIN──▶ down (logged once: "redis unavailable, retrying")
 *   down ──AQ_EAGAIN──▶ down, next try later (100 ms doubling to 5 s,
 *                        half fixed, half jitter: never a tight loop)
 *   down ──0──▶ ok (logged: "redis back")
 * Other results (a refused command) change nothing. */
#ifndef AQ_OUTAGE_H
#define AQ_OUTAGE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct outage {
    bool down;
    int fails;          /* consecutive transport failures */
    int64_t retry_at;   /* monotonic ms of the next try while down */
    const char *worker; /* logged with each change; NULL: none */
} outage;

/* Notes the result rc of a Redis call (error: its message, for the log). */
void outage_note(outage *o, int rc, const char *error);

/* Also counts a failure that is not a transport one (a refused take), so
 * the next try backs off all the same. */
void outage_count(outage *o);

/* How long to wait before the next try after the failures so far. */
int64_t outage_delay_ms(const outage *o);

/* True while an outage is on and its next try is not due yet. */
bool outage_waiting(const outage *o, int64_t mono_now);

#endif
