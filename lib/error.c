#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(aq_err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void err_clear(aq_err *e)
{
    if (e) {
        e->code = AQ_OK;
        e->msg[0] = '\0';
    }
}

int err_prefix(aq_err *e, const char *fmt, ...)
{
    if (!e)
        return AQ_EPERM;
    char head[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    size_t hl = n < 0 ? 0 : (size_t)n < sizeof head ? (size_t)n : sizeof head - 1;
    size_t cap = sizeof e->msg - 1;
    if (hl > cap)
        hl = cap;
    size_t ml = strnlen(e->msg, cap);
    if (hl + ml > cap)
        ml = cap - hl; /* keep the head; cut the tail of the old message */
    memmove(e->msg + hl, e->msg, ml);
    memcpy(e->msg, head, hl);
    e->msg[hl + ml] = '\0';
    return e->code;
}

