/* notify: the supervisor's conversation with systemd through libsystemd's
 * sd_notify. Every call is a no-op without NOTIFY_SOCKET, so the daemon runs
 * unchanged outside systemd. */
#ifndef AQ_NOTIFY_H
#define AQ_NOTIFY_H

#include <stdint.h>

/* Reads WATCHDOG_USEC (sd_watchdog_enabled) once; returns the ping interval
 * in ms (half the watchdog timeout), or 0 when no watchdog is wanted. */
int64_t notify_watchdog_interval_ms(void);

/* READY=1 (also after a reload), RELOADING=1, STOPPING=1, WATCHDOG=1. */
void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_watchdog(void);

/* STATUS=<printf text>. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
