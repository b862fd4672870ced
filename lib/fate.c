#include "fate.h"

#include "retry.h"

int fate_max_attempts(const aq_config *c, int job_max)
{
    return job_max > 0 ? job_max : c->worker.max_attempts;
}

fate fate_decide(const aq_config *c, int job_max, int attempts, fate_cause cause, int64_t now)
{
    fate f = {.retry = false, .due_ms = now, .max = fate_max_attempts(c, job_max)};
    if (cause == FATE_PERMANENT || attempts >= f.max)
        return f;
    f.retry = true;
    if (cause == FATE_TRANSIENT)
        f.due_ms = now + retry_backoff_ms(attempts > 0 ? attempts - 1 : 0,
                                          c->worker.backoff_base_ms, c->worker.backoff_max_ms);
    return f;
}
