/* callbacks: see callbacks.h. The loop: promote due retries (at most every
 * PROMOTE_MS), take one entry (waiting up to TAKE_MS, so a stop request is
 * seen soon), POST it, record what became of it. A failed POST is retried
 * with backoff up to [callbacks] max_attempts times, then kept in
 * NS:callbacks:dead. An entry in hand when the process dies stays in
 * NS:callbacks:sending:W and recovery gives it back: at least once. */
#include "callbacks.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callback.h"
#include "log.h"
#include "queue.h"
#include "retry.h"

/* Idle, a sender makes about 2 calls per TAKE_MS; retries are promoted
 * within PROMOTE_MS of their time. */
#define TAKE_MS 250
#define PROMOTE_MS 250
#define REDIS_BACKOFF_MS 500

struct cb_sender {
    const aq_config *c;
    char id[160];
    pthread_t th;
    atomic_bool stop;
    queue *q;
    callback_client *http;
};

/* Retry, give up, or done: what to record after a POST of c. */
static void record(cb_sender *s, const char *entry, size_t len, callback_entry *c, int rc,
                   const aq_err *why)
{
    aq_err e = {0};
    queue_cb_result how = QUEUE_CB_SENT;
    char *again = NULL;
    int64_t due = 0;
    if (rc != 0) {
        c->attempts++;
        how = c->attempts < s->c->callbacks.max_attempts ? QUEUE_CB_RETRY : QUEUE_CB_GAVE_UP;
        if (how == QUEUE_CB_RETRY) {
            again = callback_entry_json(c);
            due = now_ms() + retry_backoff_ms(c->attempts - 1, s->c->callbacks.backoff_base_ms,
                                              s->c->callbacks.backoff_max_ms);
        }
        char nb[24];
        log_info(how == QUEUE_CB_RETRY ? "callback failed; will retry" : "callback given up",
                 "worker", s->id, "url", c->url, "attempts", log_int(nb, c->attempts),
                 "error", why->msg);
    }
    if (queue_callback_finish(s->q, s->id, entry, len, how, again, due, &e) != 0)
        log_warn("could not record a callback; recovery returns it", "worker", s->id,
                 "error", e.msg);
    free(again);
}

/* POSTs one entry taken from NS:callbacks. */
static void send_one(cb_sender *s, const char *entry, size_t len)
{
    callback_entry c;
    aq_err e = {0};
    if (callback_entry_parse(entry, len, &c, &e) != 0) {
        c.attempts = s->c->callbacks.max_attempts; /* cannot be sent: keep it as dead */
        record(s, entry, len, &c, AQ_EPERM, &e);
        return;
    }
    long status = 0;
    int rc = callback_post(s->http, c.url, c.body, strlen(c.body), s->c->callbacks.secret,
                           c.attempts + 1, &status, &e);
    record(s, entry, len, &c, rc, &e);
    callback_entry_free(&c);
}

static void nap_ms(const cb_sender *s, int ms)
{
    for (int left = ms; left > 0 && !atomic_load(&s->stop); left -= 50)
        retry_sleep_ms(left < 50 ? left : 50, NULL);
}

static void *sender(void *arg)
{
    cb_sender *s = arg;
    int64_t next_promote = 0;
    while (!atomic_load(&s->stop)) {
        aq_err e = {0};
        if (mono_ms() >= next_promote) {
            if (queue_callback_promote(s->q, now_ms(), 100, NULL, &e) != 0) {
                nap_ms(s, REDIS_BACKOFF_MS);
                continue;
            }
            next_promote = mono_ms() + PROMOTE_MS;
        }
        char *entry = NULL;
        size_t len = 0;
        int rc = queue_callback_take(s->q, s->id, TAKE_MS, &entry, &len, &e);
        if (rc < 0)
            nap_ms(s, REDIS_BACKOFF_MS);
        else if (rc == 1)
            send_one(s, entry, len);
        free(entry);
    }
    return NULL;
}

cb_sender *cb_start(const aq_config *c, const char *worker_id)
{
    cb_sender *s = calloc(1, sizeof *s);
    aq_err e = {0};
    if (!s)
        return NULL;
    s->c = c;
    snprintf(s->id, sizeof s->id, "%s", worker_id);
    s->q = queue_open(c, &e);
    s->http = s->q ? callback_client_new(c->callbacks.timeout_ms, &e) : NULL;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are the dispatcher's */
    int rc = s->http ? pthread_create(&s->th, NULL, sender, s) : -1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("cannot start the callback sender", "worker", worker_id, "error",
                  e.msg[0] ? e.msg : "pthread_create failed");
        callback_client_free(s->http);
        queue_close(s->q);
        free(s);
        return NULL;
    }
    return s;
}

void cb_stop(cb_sender *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    aq_err e = {0};
    /* an entry in hand when told to stop was finished or is still listed */
    queue_callback_return(s->q, s->id, NULL, &e);
    callback_client_free(s->http);
    queue_close(s->q);
    free(s);
}
