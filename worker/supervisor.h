/* supervisor: the avatarq-worker main process. Forks and watches the pool of
 * worker processes (worker.h) through shared-memory slots (slots.h), beats
 * for them, restarts the dead, times out hung jobs, moves due retries back,
 * recovers jobs of workers of any host whose heartbeat expired, obeys remote
 * control commands, handles SIGTERM/SIGINT/SIGHUP and talks to systemd. */
#ifndef AQ_SUPERVISOR_H
#define AQ_SUPERVISOR_H

#include "config.h"

typedef struct supervisor_opts {
    const char *config_path;  /* -c FILE, or NULL for the default search (used on SIGHUP too) */
    int processes;            /* --processes N overriding the config; 0 = none */
} supervisor_opts;

/* Runs the daemon with the already loaded and validated config c until it is
 * stopped. Returns the process exit status: 0 after a stop (signal or remote
 * command), 1 when it cannot start (Redis unreachable, storage or database
 * cannot be opened); the message is logged. */
int supervisor_run(const aq_config *c, const supervisor_opts *o);

#endif
