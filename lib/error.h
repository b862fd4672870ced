/* error: how failures travel. Every fallible function returns 0 on success
 * or a negative AQ_E* code, and fills an aq_err with one human line. The code
 * classifies the failure where it happens: permanent (never retry: bad input,
 * 403) or transient (retry with backoff: network, 5xx, timeouts, busy db). */
#ifndef AQ_ERROR_H
#define AQ_ERROR_H

enum {
    AQ_OK = 0,
    AQ_EPERM = -1,     /* permanent: retrying cannot help */
    AQ_EAGAIN = -2,    /* transient: may pass, retry later */
    AQ_ENOTFOUND = -3, /* the thing asked for does not exist */
};

typedef struct aq_err {
    int code;
    char msg[512];
} aq_err;

/* Records code and a printf-formatted message in e (e may be NULL);
 * returns code so callers can `return err_set(e, AQ_EPERM, "...")`. */
int err_set(aq_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets e to "no error". */
void err_clear(aq_err *e);

/* Prefixes e->msg with a printf-formatted context ("storing 64.png: ");
 * keeps the code; returns it. */
int err_prefix(aq_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
