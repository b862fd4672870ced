/* callbacks: the completion-callback sender of a worker process (docs/
 * protocol.md "Completion callbacks"). One thread with its own Redis
 * connection and curl handle, so a slow or dead receiver never holds up the
 * process's jobs. */
#ifndef AQ_WORKER_CALLBACKS_H
#define AQ_WORKER_CALLBACKS_H

#include "config.h"

typedef struct cb_sender cb_sender;

/* Starts the sender thread for worker id (copied). NULL when it could not
 * start (logged; callbacks then wait in NS:callbacks for other senders). */
cb_sender *cb_start(const aq_config *c, const char *worker_id);
/* Asks the thread to stop after the POST in hand (bounded by
 * [callbacks] timeout_ms) and joins it. NULL is fine. */
void cb_stop(cb_sender *s);

#endif
