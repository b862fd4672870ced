#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

int64_t notify_watchdog_interval_ms(void)
{
    uint64_t usec = 0;
    /* unset_environment = 0: keep it for a re-exec; children ignore it because
     * WATCHDOG_PID names the supervisor. */
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    int64_t ms = (int64_t)(usec / 2000);
    return ms > 0 ? ms : 1;
}

void notify_ready(void)
{
    sd_notify(0, "READY=1");
}

void notify_reloading(void)
{
    sd_notify(0, "RELOADING=1");
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

void notify_watchdog(void)
{
    sd_notify(0, "WATCHDOG=1");
}

void notify_status(const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", text);
}
