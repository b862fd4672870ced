/* callbacks: see callbacks.h. The loop: take a batch of entries (promoting
 * due retries in the same script; when there is none, wait up to TAKE_MS
 * for one, so a stop request is seen soon), POST each, record what became
 * of them all in one call. A failed POST is retried
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

/* Idle, a sender makes 2 calls per TAKE_MS, and promotes due retries at
 * least that often. Busy, it takes up to TAKE_MAX entries per call and
 * records them in one more. */
#define TAKE_MS 250
#define TAKE_MAX 32
/* After waiting for one entry, let more gather this long (the latency a
 * callback may gain, for fewer calls per callback under load). */
#define LINGER_MS 20
#define REDIS_BACKOFF_MS 500

struct cb_sender {
    const aq_config *c;
    char id[160];
    pthread_t th;
    atomic_bool stop;
    queue *q;
    callback_client *http;
};

/* What becomes of one entry after its POST (rc 0: delivered); fills d,
 * whose retry_entry the caller frees. */
static void judge(const cb_sender *s, const char *entry, size_t len, callback_entry *c, int rc,
                  const aq_err *why, queue_cb_done *d)
{
    *d = (queue_cb_done){.entry = entry, .len = len, .how = QUEUE_CB_SENT};
    if (rc == 0)
        return;
    c->attempts++;
    d->how = c->attempts < s->c->callbacks.max_attempts ? QUEUE_CB_RETRY : QUEUE_CB_GAVE_UP;
    if (d->how == QUEUE_CB_RETRY) {
        d->retry_entry = callback_entry_json(c);
        if (!d->retry_entry) /* out of memory: leave it listed for recovery */
            d->how = QUEUE_CB_GAVE_UP;
        d->due_ms = now_ms() + retry_backoff_ms(c->attempts - 1, s->c->callbacks.backoff_base_ms,
                                                s->c->callbacks.backoff_max_ms);
    }
    char nb[24];
    log_info(d->how == QUEUE_CB_RETRY ? "callback failed; will retry" : "callback given up",
             "worker", s->id, "url", c->url ? c->url : "-", "attempts", log_int(nb, c->attempts),
             "error", why->msg);
}

/* POSTs one entry and judges it. */
static void send_one(cb_sender *s, const char *entry, size_t len, queue_cb_done *d)
{
    callback_entry c;
    aq_err e = {0};
    if (callback_entry_parse(entry, len, &c, &e) != 0) {
        c.attempts = s->c->callbacks.max_attempts; /* cannot be sent: keep it as dead */
        judge(s, entry, len, &c, AQ_EPERM, &e, d);
        return;
    }
    long status = 0;
    int rc = callback_post(s->http, c.url, c.body, strlen(c.body), s->c->callbacks.secret,
                           c.attempts + 1, &status, &e);
    judge(s, entry, len, &c, rc, &e, d);
    callback_entry_free(&c);
}

/* POSTs every entry of t in turn (one connection, kept alive), then
 * records them all in one call. */
static void send_batch(cb_sender *s, queue_taken *t)
{
    queue_cb_done *d = calloc(t->n ? t->n : 1, sizeof *d);
    if (!d)
        return; /* out of memory: the entries stay listed; recovery returns them */
    for (size_t i = 0; i < t->n && !atomic_load(&s->stop); i++)
        send_one(s, t->doc[i], t->len[i], &d[i]);
    size_t n = 0;
    while (n < t->n && d[n].entry)
        n++;
    aq_err e = {0};
    if (queue_callback_finish(s->q, s->id, d, n, &e) != 0)
        log_warn("could not record callbacks; recovery returns them", "worker", s->id,
                 "error", e.msg);
    for (size_t i = 0; i < n; i++)
        free((char *)d[i].retry_entry);
    free(d);
}

static void nap_ms(const cb_sender *s, int ms)
{
    for (int left = ms; left > 0 && !atomic_load(&s->stop); left -= 50)
        retry_sleep_ms(left < 50 ? left : 50, NULL);
}

/* The loop: a batch without waiting (due retries promoted on the way); when
 * there is none, one blocking take so that an idle sender costs little. */
static void *sender(void *arg)
{
    cb_sender *s = arg;
    while (!atomic_load(&s->stop)) {
        aq_err e = {0};
        queue_taken t;
        if (queue_callback_take_many(s->q, s->id, TAKE_MAX, &t, &e) != 0) {
            nap_ms(s, REDIS_BACKOFF_MS);
            continue;
        }
        if (t.n == 0) {
            char *entry = NULL;
            size_t len = 0;
            int rc = queue_callback_take(s->q, s->id, TAKE_MS, &entry, &len, &e);
            if (rc < 0)
                nap_ms(s, REDIS_BACKOFF_MS);
            if (rc == 1) {
                /* results come one by one as jobs finish: let a few more
                 * gather, so that a busy fleet's callbacks share calls */
                nap_ms(s, LINGER_MS);
                if (queue_callback_take_many(s->q, s->id, TAKE_MAX - 1, &t, &e) != 0)
                    memset(&t, 0, sizeof t);
                char **doc = realloc(t.doc, (t.n + 1) * sizeof *doc);
                size_t *lens = doc ? realloc(t.len, (t.n + 1) * sizeof *lens) : NULL;
                if (doc)
                    t.doc = doc;
                if (lens) {
                    t.len = lens;
                    t.doc[t.n] = entry;
                    t.len[t.n++] = len;
                    entry = NULL;
                }
            }
            free(entry); /* only when out of memory: recovery returns it */
        }
        if (t.n)
            send_batch(s, &t);
        queue_taken_free(&t);
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
