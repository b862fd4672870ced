/* rconn: the one connection to the Redis master that serves this namespace.
 *
 * Every Redis user goes through it. It owns the socket (TCP, unix socket, or
 * TLS through OpenSSL's libssl) and keeps hiredis only for the protocol
 * (redisFormatCommandArgv to write, redisReader to read), because Debian 12's
 * hiredis 0.14 has no TLS. The master is found (docs/protocol.md "Redis
 * deployments"):
 *   - directly from [redis] url;
 *   - through Sentinel ([redis] sentinels, sentinel_master, sentinel_password):
 *     SENTINEL get-master-addr-by-name, then ROLE must say master;
 *   - through Redis Cluster ([redis] cluster = true): the slot of the
 *     namespace's hash tag, CLUSTER SLOTS for its master, ROLE = master.
 * A handle is found again (rconn_reconnect) after a lost connection or a reply
 * that says the server is no longer the master (READONLY, MOVED, ASK,
 * CLUSTERDOWN, ...): callers mark it with rconn_reply's result and reconnect.
 * Nodes learnt from CLUSTER SLOTS are remembered, so a cluster is found again
 * even when the node named in the URL is the one that died. Not thread-safe;
 * never shared across fork(). */
#ifndef AQ_RCONN_H
#define AQ_RCONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"

typedef struct rconn rconn;

/* Finds the master and connects (connect_timeout_ms per step), then AUTH
 * (user/password of the URL), SELECT db, ROLE. NULL with e set on failure:
 * AQ_EAGAIN when it may work later (refused, timed out, a replica, no
 * master yet), AQ_EPERM when it will not (bad certificate or key file,
 * unknown sentinel master name, a node not in cluster mode, AUTH refused).
 * Messages name the server and never hold a password. */
rconn *rconn_open(const aq_config *c, aq_err *e);

/* Drops the connection and finds the master again, as rconn_open. On
 * failure the handle stays usable for another rconn_reconnect. */
int rconn_reconnect(rconn *r, aq_err *e);

void rconn_close(rconn *r);

/* Read and write timeout for the calls that follow (ms > 0). */
void rconn_set_timeout(rconn *r, int ms);

/* Buffers one command (lens NULL: argv are C strings). Nothing is sent
 * until rconn_reply. 0 or AQ_EAGAIN (out of memory counts as transport). */
int rconn_append(rconn *r, int argc, const char **argv, const size_t *lens, aq_err *e);

/* Sends what is buffered and reads one reply into *out (to freeReplyObject).
 * Error replies are returned as replies (0). AQ_EAGAIN with e set on a
 * transport failure (reset, timeout, TLS error): the connection is then
 * unusable until rconn_reconnect. */
int rconn_reply(rconn *r, redisReply **out, aq_err *e);

/* rconn_reply for a reply that may be one large bulk string: a bulk string
 * over limit bytes is never held whole; its bytes go to sink in pieces
 * (head first), *out is NULL and *big receives its length. Any other reply
 * comes back in *out as rconn_reply gives it (*big 0). */
typedef void (*rconn_sink)(void *ud, const char *p, size_t n);
int rconn_reply_bounded(rconn *r, size_t limit, rconn_sink sink, void *ud, redisReply **out,
                        size_t *big, aq_err *e);

/* rconn_append + rconn_reply. */
int rconn_command(rconn *r, int argc, const char **argv, const size_t *lens, redisReply **out,
                  aq_err *e);

/* True when an error reply means "ask where the master is again" (READONLY,
 * MOVED, ASK, CLUSTERDOWN, MASTERDOWN, LOADING, TRYAGAIN): the caller
 * reconnects before its next command. */
bool rconn_reply_moves(const redisReply *r);

/* ---- durable acknowledgement ([redis] min_replicas_ack) ---- */

/* True when writes that must be durable are to be followed by WAIT. */
bool rconn_wait_wanted(const rconn *r);
/* Buffers WAIT min_replicas_ack min_replicas_timeout_ms. */
int rconn_append_wait(rconn *r, aq_err *e);
/* Checks WAIT's reply: 0, or AQ_EAGAIN "only k of N replicas confirmed". */
int rconn_wait_check(const rconn *r, const redisReply *reply, aq_err *e);

/* ---- what operators see ---- */

/* The socket of the current connection (-1 when none). */
int rconn_fd(const rconn *r);
/* "host:port" or the socket path of the master in use. */
const char *rconn_where(const rconn *r);
/* "host:port master tls" / "... plain", with "via sentinel"/"via cluster". */
const char *rconn_describe(const rconn *r);
/* Parts of rconn_describe: role as ROLE said ("master", "?" when unknown),
 * TLS on, and how the master was found ("direct", "sentinel", "cluster"). */
const char *rconn_role(const rconn *r);
bool rconn_tls(const rconn *r);
const char *rconn_mode(const rconn *r);

#endif
