/* rconn_link: one socket to one Redis server (TCP, unix socket or TLS), with
 * hiredis' formatter and reply reader on top. The socket is blocking with
 * SO_RCVTIMEO/SO_SNDTIMEO as its timeout, so plain and TLS reads time out
 * the same way (OpenSSL on a blocking socket just sees EAGAIN). */
#include "rconn_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define RLINK_CHUNK 16384

static void set_sock_timeout(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Non-blocking connect bounded by timeout_ms; the socket is left blocking.
 * Returns 0 or an errno value. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int err = 0;
    if (connect(fd, sa, len) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n;
            while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
                ;
            socklen_t el = sizeof err;
            if (n == 0)
                err = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                err = errno;
        }
    }
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return err;
}

static int open_unix(const char *path, int timeout_ms, int *fd_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = connect_within(fd, (struct sockaddr *)&sa, sizeof sa, timeout_ms);
    if (err) {
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

/* Tries every address of host in turn. Returns 0, an errno value, or -1
 * with the resolver's message in why. */
static int open_tcp(const char *host, int port, int timeout_ms, int *fd_out, char *why, size_t wl)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    char sport[16];
    snprintf(sport, sizeof sport, "%d", port);
    int g = getaddrinfo(host, sport, &hints, &res);
    if (g != 0) {
        snprintf(why, wl, "%s", gai_strerror(g));
        return -1;
    }
    int err = ECONNREFUSED;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = connect_within(fd, a->ai_addr, a->ai_addrlen, timeout_ms);
        if (err == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            *fd_out = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return err;
}

int rlink_open(rlink *l, const char *host, int port, int timeout_ms, const rlink_tls *tls, aq_err *e)
{
    rlink_close(l);
    bool is_unix = host[0] == '/';
    if (is_unix)
        snprintf(l->where, sizeof l->where, "%.290s", host);
    else
        snprintf(l->where, sizeof l->where, strchr(host, ':') ? "[%.256s]:%d" : "%.256s:%d", host,
                 port);
    char why[256] = "";
    int fd = -1;
    int err = is_unix ? open_unix(host, timeout_ms, &fd)
                      : open_tcp(host, port, timeout_ms, &fd, why, sizeof why);
    if (err)
        return err_set(e, AQ_EAGAIN, "redis %s: connect: %s", l->where, err > 0 ? strerror(err) : why);
    l->fd = fd;
    l->cert_asked = false;
    set_sock_timeout(fd, timeout_ms);
    l->timeout_ms = timeout_ms;
    l->rd = redisReaderCreate();
    if (!l->rd) {
        rlink_close(l);
        return err_set(e, AQ_EAGAIN, "redis %s: out of memory", l->where);
    }
    if (tls && !is_unix && rtls_handshake(l, host, tls, e) < 0) {
        int code = e->code;
        rlink_close(l);
        return code;
    }
    return 0;
}

void rlink_close(rlink *l)
{
    if (l->ssl) {
        /* No close_notify: on a dead peer its write could raise SIGPIPE,
         * and Redis needs none to drop the client. */
        SSL_free(l->ssl);
        l->ssl = NULL;
    }
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->rd)
        redisReaderFree(l->rd);
    l->rd = NULL;
    buf_free(&l->out);
}

void rlink_set_timeout(rlink *l, int ms)
{
    if (ms <= 0 || ms == l->timeout_ms)
        return;
    if (l->fd >= 0)
        set_sock_timeout(l->fd, ms);
    l->timeout_ms = ms;
}

static int link_fail(rlink *l, const char *why, aq_err *e)
{
    int code = AQ_EAGAIN;
    if (l->cert_asked) /* a certificate will not appear by retrying */
        code = err_set(e, AQ_EPERM, "redis %s: %s: the server requires a client certificate (set "
                       "[redis] tls_cert_file and tls_key_file)", l->where, why);
    else
        err_set(e, code, "redis %s: %s", l->where, why);
    rlink_close(l);
    return code;
}

int rlink_append(rlink *l, int argc, const char **argv, const size_t *lens, aq_err *e)
{
    if (l->fd < 0)
        return err_set(e, AQ_EAGAIN, "redis %s: not connected", l->where);
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return link_fail(l, "out of memory", e);
    int rc = buf_append(&l->out, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc == 0 ? 0 : link_fail(l, "out of memory", e);
}

static const char *errno_why(int err, char *why, size_t wl)
{
    if (err == EAGAIN || err == EWOULDBLOCK)
        snprintf(why, wl, "timed out");
    else
        snprintf(why, wl, "%s", err ? strerror(err) : "connection closed by the server");
    return why;
}

static long io_write(rlink *l, const void *p, size_t n, char *why, size_t wl)
{
    if (l->ssl)
        return rtls_write(l, p, n, why, wl);
    long k;
    while ((k = send(l->fd, p, n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (k < 0)
        errno_why(errno, why, wl);
    return k;
}

static long io_read(rlink *l, void *p, size_t n, char *why, size_t wl)
{
    if (l->ssl)
        return rtls_read(l, p, n, why, wl);
    long k;
    while ((k = read(l->fd, p, n)) < 0 && errno == EINTR)
        ;
    if (k <= 0)
        errno_why(k < 0 ? errno : 0, why, wl);
    return k;
}

static int flush_out(rlink *l, aq_err *e)
{
    size_t off = 0;
    char why[256];
    while (off < l->out.len) {
        long k = io_write(l, l->out.data + off, l->out.len - off, why, sizeof why);
        if (k <= 0)
            return link_fail(l, why, e);
        off += (size_t)k;
    }
    buf_reset(&l->out);
    return 0;
}

int rlink_reply(rlink *l, redisReply **out, aq_err *e)
{
    *out = NULL;
    if (l->fd < 0)
        return err_set(e, AQ_EAGAIN, "redis %s: not connected", l->where);
    int rc = l->out.len ? flush_out(l, e) : 0;
    if (rc < 0)
        return rc;
    char chunk[RLINK_CHUNK], why[256];
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(l->rd, &r) != REDIS_OK) {
            snprintf(why, sizeof why, "protocol error: %s", l->rd->errstr);
            return link_fail(l, why, e);
        }
        if (r) {
            *out = r;
            return 0;
        }
        long k = io_read(l, chunk, sizeof chunk, why, sizeof why);
        if (k <= 0)
            return link_fail(l, why, e);
        if (redisReaderFeed(l->rd, chunk, (size_t)k) != REDIS_OK)
            return link_fail(l, "out of memory", e);
    }
}

/* Streams the n payload bytes of a bulk reply (have of them already in
 * buf) and its CRLF to sink, RLINK_CHUNK bytes at a time. */
static int stream_bulk(rlink *l, const char *buf, size_t have, size_t n, rlink_sink sink, void *ud,
                       aq_err *e)
{
    size_t total = n + 2, got = 0;
    char chunk[RLINK_CHUNK], why[256];
    const char *p = buf;
    for (;;) {
        size_t k = have < total - got ? have : total - got;
        size_t data = got < n ? (k < n - got ? k : n - got) : 0;
        if (data)
            sink(ud, p, data);
        got += k;
        if (got == total)
            return have == k ? 0 : link_fail(l, "stray bytes after a reply", e);
        long r = io_read(l, chunk, sizeof chunk, why, sizeof why);
        if (r <= 0)
            return link_fail(l, why, e);
        p = chunk;
        have = (size_t)r;
    }
}

int rlink_reply_bounded(rlink *l, size_t limit, rlink_sink sink, void *ud, redisReply **out,
                        size_t *big, aq_err *e)
{
    *out = NULL;
    *big = 0;
    if (l->fd < 0)
        return err_set(e, AQ_EAGAIN, "redis %s: not connected", l->where);
    if (l->rd->len > l->rd->pos) /* replies already buffered: not a lone bulk */
        return rlink_reply(l, out, e);
    int rc = l->out.len ? flush_out(l, e) : 0;
    if (rc < 0)
        return rc;
    char head[RLINK_CHUNK], why[256];
    size_t have = 0;
    char *crlf = NULL;
    while (!(crlf = memchr(head, '\n', have))) {
        if (have == sizeof head)
            return link_fail(l, "reply header too long", e);
        long k = io_read(l, head + have, sizeof head - have, why, sizeof why);
        if (k <= 0)
            return link_fail(l, why, e);
        have += (size_t)k;
    }
    long long n = head[0] == '$' ? strtoll(head + 1, NULL, 10) : -1;
    if (n >= 0 && (size_t)n > limit) {
        size_t hl = (size_t)(crlf - head) + 1;
        *big = (size_t)n;
        return stream_bulk(l, head + hl, have - hl, (size_t)n, sink, ud, e);
    }
    if (redisReaderFeed(l->rd, head, have) != REDIS_OK)
        return link_fail(l, "out of memory", e);
    return rlink_reply(l, out, e);
}

int rlink_command(rlink *l, int argc, const char **argv, redisReply **out, aq_err *e)
{
    int rc = rlink_append(l, argc, argv, NULL, e);
    return rc < 0 ? rc : rlink_reply(l, out, e);
}
