/* rconn internals shared by rconn.c (handle, handshake), rconn_link.c (one
 * socket: TCP, unix, TLS) and rconn_find.c (Sentinel and Cluster discovery).
 * Not for use outside lib/rconn*.c. */
#ifndef AQ_RCONN_INT_H
#define AQ_RCONN_INT_H

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "buf.h"
#include "config.h"
#include "error.h"

/* One connection to one server: the socket, its TLS session if any, the
 * commands buffered and not yet sent, and hiredis' reply parser. */
typedef struct rlink {
    int fd;              /* -1 when closed */
    SSL *ssl;            /* NULL for plain TCP and unix sockets */
    redisReader *rd;
    buf out;
    int timeout_ms;
    bool cert_asked;     /* TLS: the server asked for a client certificate we lack */
    char where[300];     /* "host:port" or the socket path */
} rlink;

#define RLINK_INIT {.fd = -1}

/* Connects to host:port (or the unix socket path when host starts with '/'),
 * within timeout_ms; with tls (not NULL) runs the TLS handshake, verifying
 * the peer against server_name (or host when NULL/"" ) when verify. */
typedef struct rlink_tls {
    SSL_CTX *ctx;
    const char *server_name;
    bool verify;
} rlink_tls;
int rlink_open(rlink *l, const char *host, int port, int timeout_ms, const rlink_tls *tls, aq_err *e);
void rlink_close(rlink *l);
void rlink_set_timeout(rlink *l, int ms);
int rlink_append(rlink *l, int argc, const char **argv, const size_t *lens, aq_err *e);
/* rconn_reply_bounded on one link. */
typedef void (*rlink_sink)(void *ud, const char *p, size_t n);
int rlink_reply_bounded(rlink *l, size_t limit, rlink_sink sink, void *ud, redisReply **out,
                        size_t *big, aq_err *e);
/* Flushes and reads one reply (error replies are replies). AQ_EAGAIN on a
 * transport failure, with the link closed. */
int rlink_reply(rlink *l, redisReply **out, aq_err *e);
int rlink_command(rlink *l, int argc, const char **argv, redisReply **out, aq_err *e);

/* A TLS client context from the [redis] tls_* keys, or NULL with e set
 * (AQ_EPERM: a file that cannot be used). */
SSL_CTX *rtls_context(const aq_config *c, aq_err *e);
/* The handshake on l->fd (connected): sets l->ssl or fails with a message
 * that says why (certificate, host name, not a TLS port). */
int rtls_handshake(rlink *l, const char *host, const rlink_tls *t, aq_err *e);
/* Read/write through the session: bytes, 0 at EOF, -1 with why set. */
long rtls_read(rlink *l, void *p, size_t n, char *why, size_t whylen);
long rtls_write(rlink *l, const void *p, size_t n, char *why, size_t whylen);

/* Discovery: host and port of the master to use. AQ_EAGAIN when it may be
 * found later, AQ_EPERM when it will not. */
typedef struct rnode {
    char host[256];
    int port;
} rnode;
#define RCONN_NODES_MAX 64
typedef struct rfind {
    const aq_config *cfg;
    const rlink_tls *tls;      /* NULL: plain */
    rnode known[RCONN_NODES_MAX]; /* cluster nodes seen so far (seed first) */
    int n_known;
    int slot;                  /* the namespace's slot, -1 until known */
} rfind;
int rfind_sentinel(rfind *f, rnode *master, aq_err *e);
int rfind_cluster(rfind *f, rnode *master, aq_err *e);
/* Sends AUTH from the URL when it has a password: 0 or < 0. */
int rfind_auth(rlink *l, const aq_config *c, aq_err *e);

#endif
