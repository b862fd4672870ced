/* callback: completion callbacks of docs/protocol.md "Completion callbacks":
 * the delivery entry (as the worker's outcome script writes it to
 * NS:callbacks), the HMAC-SHA256 signature, and one POST. No Redis here:
 * the entries travel through lib/queue (queue_callback_*). */
#ifndef AQ_CALLBACK_H
#define AQ_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CALLBACK_URL_MAX 512

/* True when url may be a callback URL: http:// or https://, 1 to
 * CALLBACK_URL_MAX bytes of visible ASCII (no spaces, no control bytes). */
bool callback_url_valid(const char *url);

/* One delivery: where, what (the raw body that is signed) and how many
 * POSTs already failed. */
typedef struct callback_entry {
    char *url;
    char *body;
    int attempts;
} callback_entry;
/* Parses an entry {"url","body","attempts"}; AQ_EPERM naming what is wrong. */
int callback_entry_parse(const char *s, size_t len, callback_entry *out, aq_err *e);
/* The entry with attempts set, malloc'd JSON (NULL when out of memory). */
char *callback_entry_json(const callback_entry *c);
void callback_entry_free(callback_entry *c);

/* "sha256=<64 hex>" of HMAC-SHA256(secret, body) into out. */
void callback_sign(const char *secret, const char *body, size_t len, char out[72]);

/* A client with its own curl handle (one per thread). */
typedef struct callback_client callback_client;
callback_client *callback_client_new(int timeout_ms, aq_err *e);
void callback_client_free(callback_client *c);

/* POSTs body to url (Content-Type: application/json; X-Avatarq-Signature
 * when secret is non-empty; X-Avatarq-Attempt: attempt), waiting at most
 * the client's timeout. Returns 0 on a 2xx reply, AQ_EAGAIN otherwise
 * (connection refused, timeout, any other status: retried), with the status
 * in *status (0 when none) and the reason in e. */
int callback_post(callback_client *c, const char *url, const char *body, size_t len,
                  const char *secret, int attempt, long *status, aq_err *e);

#endif
