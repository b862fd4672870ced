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
    char head[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s%s", head, old);
    return e->code;
}

const char *err_kind(int code)
{
    switch (code) {
    case AQ_OK: return "ok";
    case AQ_EAGAIN: return "transient";
    case AQ_ENOTFOUND: return "not found";
    default: return "permanent";
    }
}
