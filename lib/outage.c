#include "outage.h"

#include "error.h"
#include "log.h"
#include "retry.h"

#define OUTAGE_BASE_MS 100
#define OUTAGE_MAX_MS 5000
#define OUTAGE_MAX_STEP 10 /* 100 ms * 2^10 is already past the cap */

int64_t outage_delay_ms(const outage *o)
{
    int n = o->fails < OUTAGE_MAX_STEP ? o->fails : OUTAGE_MAX_STEP;
    return retry_cap_ms(n, OUTAGE_BASE_MS, OUTAGE_MAX_MS) / 2 +
           retry_backoff_ms(n, OUTAGE_BASE_MS, OUTAGE_MAX_MS) / 2;
}

void outage_count(outage *o)
{
    o->fails++;
    o->retry_at = mono_ms() + outage_delay_ms(o);
}

/* One log line with the worker's id when there is one. */
static void say(const outage *o, int level, const char *msg, const char *error)
{
    if (o->worker && error)
        log_write(level, msg, "worker", o->worker, "error", error, (char *)NULL);
    else if (o->worker)
        log_write(level, msg, "worker", o->worker, (char *)NULL);
    else if (error)
        log_write(level, msg, "error", error, (char *)NULL);
    else
        log_write(level, msg, (char *)NULL);
}

void outage_note(outage *o, int rc, const char *error)
{
    if (rc == AQ_EAGAIN) {
        if (!o->down)
            say(o, LOG_WARN, "redis unavailable, retrying", error ? error : "");
        o->down = true;
        outage_count(o);
    } else if (rc == 0) {
        if (o->down)
            say(o, LOG_INFO, "redis back", NULL);
        o->down = false;
        o->fails = 0;
    }
}

bool outage_waiting(const outage *o, int64_t mono_now)
{
    return o->down && mono_now < o->retry_at;
}
