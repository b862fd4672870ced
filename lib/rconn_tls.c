/* rconn_tls: TLS for rconn with OpenSSL's libssl (Debian 12: OpenSSL 3.0).
 * The chain is verified against tls_ca_file (else the system store) and the
 * certificate must name the server (tls_server_name, else the host we
 * connect to; an IP literal is matched against IP SANs) unless tls_verify is
 * false. A client certificate is sent when tls_cert_file/tls_key_file are
 * set. Messages say which of these failed, so a wrong CA, a wrong name, a
 * plain port and a missing client certificate read differently. */
#include "rconn_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* OpenSSL writes with write(2), in SSL_write and also in SSL_read and
 * SSL_connect (alerts): a peer that went away would raise SIGPIPE in a
 * program that does not ignore it (the CLI, a C API user). SIGPIPE is
 * blocked around those calls and one they raised is consumed. */
typedef struct pipe_guard {
    sigset_t set, old;
    bool was_pending;
} pipe_guard;

static void guard_on(pipe_guard *g)
{
    sigset_t pending;
    sigemptyset(&g->set);
    sigaddset(&g->set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &g->set, &g->old);
}

static void guard_off(pipe_guard *g)
{
    sigset_t pending;
    struct timespec zero = {0, 0};
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE))
        sigtimedwait(&g->set, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* The oldest OpenSSL error on the queue, or fallback. */
static const char *ssl_reason(char *out, size_t n, const char *fallback)
{
    unsigned long code = ERR_get_error();
    if (!code) {
        snprintf(out, n, "%s", fallback);
        return out;
    }
    const char *r = ERR_reason_error_string(code);
    snprintf(out, n, "%s", r ? r : fallback);
    ERR_clear_error();
    return out;
}

/* Called by OpenSSL only when the server asks for a client certificate
 * and none is configured: remembered, so that a refusal that follows (with
 * TLS 1.3 an alert after the handshake, which may race with our first
 * command and arrive as a reset) is reported clearly. A server that only
 * asks (tls-auth-clients optional) goes on working. */
static int no_client_cert(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)x509;
    (void)pkey;
    rlink *l = SSL_get_app_data(ssl);
    if (l)
        l->cert_asked = true;
    return 0; /* send none */
}

SSL_CTX *rtls_context(const aq_config *c, aq_err *e)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256];
    if (!ctx) {
        err_set(e, AQ_EAGAIN, "redis TLS: %s", ssl_reason(why, sizeof why, "cannot create a context"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    const struct {
        const char *key, *path;
        int (*load)(SSL_CTX *, const char *);
    } files[] = {
        {"tls_cert_file", c->redis.tls_cert_file, SSL_CTX_use_certificate_chain_file},
        {"tls_key_file", c->redis.tls_key_file, NULL},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!files[i].path[0])
            continue;
        int ok = files[i].load ? files[i].load(ctx, files[i].path)
                               : SSL_CTX_use_PrivateKey_file(ctx, files[i].path, SSL_FILETYPE_PEM);
        if (ok != 1) {
            err_set(e, AQ_EPERM, "[redis] %s: '%s': %s", files[i].key, files[i].path,
                    ssl_reason(why, sizeof why, "cannot be read"));
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (c->redis.tls_cert_file[0] && SSL_CTX_check_private_key(ctx) != 1) {
        err_set(e, AQ_EPERM, "[redis] tls_key_file: '%s' does not match tls_cert_file '%s'",
                c->redis.tls_key_file, c->redis.tls_cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    int ok = c->redis.tls_ca_file[0] ? SSL_CTX_load_verify_locations(ctx, c->redis.tls_ca_file, NULL)
                                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        err_set(e, AQ_EPERM, "[redis] tls_ca_file: '%s': %s", c->redis.tls_ca_file,
                ssl_reason(why, sizeof why, "cannot be read"));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, c->redis.tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_client_cert_cb(ctx, no_client_cert);
    return ctx;
}

/* Host name or IP address check on the peer certificate. */
static int expect_name(SSL *ssl, const char *name)
{
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    if (is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    SSL_set_tlsext_host_name(ssl, name); /* SNI: only for names, never addresses */
    return SSL_set1_host(ssl, name) == 1 ? 0 : -1;
}

/* Why a failed handshake failed, in words an operator can act on. */
static void handshake_why(SSL *ssl, int ret, const char *name, char *why, size_t n)
{
    long v = SSL_get_verify_result(ssl);
    int err = SSL_get_error(ssl, ret);
    char reason[200];
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        snprintf(why, n, "TLS: the server certificate does not match the name '%s' "
                 "(set [redis] tls_server_name?)", name);
    else if (v != X509_V_OK)
        snprintf(why, n, "TLS: server certificate not trusted: %s (check [redis] tls_ca_file)",
                 X509_verify_cert_error_string(v));
    else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(why, n, "TLS handshake: %s (is this a TLS port?)",
                 errno == EAGAIN ? "timed out" : errno ? strerror(errno) : "connection closed");
    else
        snprintf(why, n, "TLS handshake failed: %s (is this a TLS port?)",
                 ssl_reason(reason, sizeof reason, "protocol error"));
    ERR_clear_error();
}

int rtls_handshake(rlink *l, const char *host, const rlink_tls *t, aq_err *e)
{
    const char *name = t->server_name && t->server_name[0] ? t->server_name : host;
    ERR_clear_error();
    l->ssl = SSL_new(t->ctx);
    if (!l->ssl || SSL_set_fd(l->ssl, l->fd) != 1)
        return err_set(e, AQ_EAGAIN, "redis %s: TLS: out of memory", l->where);
    l->cert_asked = false;
    SSL_set_app_data(l->ssl, l);
    if (t->verify && expect_name(l->ssl, name) < 0)
        return err_set(e, AQ_EPERM, "redis %s: TLS: bad server name '%s'", l->where, name);
    errno = 0;
    pipe_guard g;
    guard_on(&g);
    int ret = SSL_connect(l->ssl);
    guard_off(&g);
    if (ret == 1)
        return 0;
    char why[400];
    handshake_why(l->ssl, ret, name, why, sizeof why);
    /* A certificate problem will not fix itself; a dropped connection may. */
    long v = SSL_get_verify_result(l->ssl);
    return err_set(e, v != X509_V_OK ? AQ_EPERM : AQ_EAGAIN, "redis %s: %s", l->where, why);
}

/* After a failed read or write: the message, including a TLS alert the
 * server sent (e.g. "certificate required" when it wants a client cert). */
static long io_fail(rlink *l, int ret, char *why, size_t wl)
{
    int err = SSL_get_error(l->ssl, ret);
    char reason[200];
    if (err == SSL_ERROR_ZERO_RETURN)
        snprintf(why, wl, "connection closed by the server (TLS)");
    else if ((err == SSL_ERROR_SYSCALL || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) &&
             ERR_peek_error() == 0)
        snprintf(why, wl, "%s", errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                : errno ? strerror(errno) : "connection closed by the server");
    else
        snprintf(why, wl, "TLS: %s", ssl_reason(reason, sizeof reason, "error"));
    ERR_clear_error();
    return -1;
}

static long guarded(rlink *l, bool writing, void *p, size_t n, char *why, size_t wl)
{
    pipe_guard g;
    guard_on(&g);
    ERR_clear_error();
    errno = 0;
    int len = n > 1 << 30 ? 1 << 30 : (int)n;
    int k = writing ? SSL_write(l->ssl, p, len) : SSL_read(l->ssl, p, len);
    long rc = k > 0 ? k : io_fail(l, k, why, wl);
    guard_off(&g);
    return rc;
}

long rtls_read(rlink *l, void *p, size_t n, char *why, size_t wl)
{
    return guarded(l, false, p, n, why, wl);
}

long rtls_write(rlink *l, const void *p, size_t n, char *why, size_t wl)
{
    return guarded(l, true, (void *)p, n, why, wl);
}
