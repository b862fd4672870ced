/* rconn: the handle (see rconn.h). Finding the master is a table of
 * strategies (direct, sentinel, cluster); after it come the same steps for
 * all: connect (TLS when the URL is rediss://), AUTH, SELECT, ROLE. */
#include "rconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rconn_int.h"

struct rconn {
    aq_config cfg;        /* a copy: the caller may reload its own */
    SSL_CTX *ctx;         /* NULL unless rediss:// */
    rlink_tls tls;
    rfind find;           /* discovery state (cluster nodes seen, slot) */
    rlink link;           /* the master */
    int mode;             /* index into modes[] */
    char role[16];
    char describe[400];
};

/* How the master is found: direct takes the URL's address as it is. */
static int find_direct(rfind *f, rnode *m, aq_err *e)
{
    (void)e;
    const aq_config *c = f->cfg;
    /* a socket path longer than sockaddr_un allows (108) fails at connect anyway */
    snprintf(m->host, sizeof m->host, "%.255s", c->redis.unix_path[0] ? c->redis.unix_path : c->redis.host);
    m->port = c->redis.port;
    return 0;
}

static const struct {
    const char *name;
    int (*find)(rfind *f, rnode *m, aq_err *e);
    bool must_be_master; /* ROLE must say master, else find again later */
} modes[] = {
    {"direct", find_direct, false},
    {"sentinel", rfind_sentinel, true},
    {"cluster", rfind_cluster, true},
};

static int mode_of(const aq_config *c)
{
    return c->redis.cluster ? 2 : c->redis.sentinels[0] ? 1 : 0;
}

/* A command whose error reply fails the step "what". */
static int step(rconn *r, int argc, const char **argv, const char *what, redisReply **out, aq_err *e)
{
    redisReply *rep;
    int rc = rlink_command(&r->link, argc, argv, &rep, e);
    if (rc < 0)
        return rc;
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = err_set(e, rconn_reply_moves(rep) ? AQ_EAGAIN : AQ_EPERM, "redis %s: %s: %s",
                     r->link.where, what, rep->str);
        freeReplyObject(rep);
        return rc;
    }
    if (out)
        *out = rep;
    else
        freeReplyObject(rep);
    return 0;
}

/* ROLE's first element into r->role; a server that refuses ROLE (ACL) is
 * "?" unless the mode needs to know. */
static int check_role(rconn *r, aq_err *e)
{
    const char *argv[] = {"ROLE"};
    redisReply *rep = NULL;
    aq_err why = {0};
    int rc = step(r, 1, argv, "ROLE", &rep, &why);
    snprintf(r->role, sizeof r->role, "?");
    if (rc == 0 && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
        rep->element[0]->type == REDIS_REPLY_STRING)
        snprintf(r->role, sizeof r->role, "%.15s", rep->element[0]->str);
    if (rep)
        freeReplyObject(rep);
    if (rc < 0 && r->link.fd < 0) /* the connection itself failed */
        return err_set(e, rc, "%s", why.msg);
    if (modes[r->mode].must_be_master && strcmp(r->role, "master") != 0)
        return err_set(e, AQ_EAGAIN, "redis %s: found through %s but its ROLE is %s, not master "
                       "(failover in progress?)", r->link.where, modes[r->mode].name, r->role);
    return 0;
}

static int handshake(rconn *r, aq_err *e)
{
    int rc = rfind_auth(&r->link, &r->cfg, e);
    if (rc == 0 && r->cfg.redis.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->cfg.redis.db);
        const char *argv[] = {"SELECT", db};
        rc = step(r, 2, argv, "SELECT", NULL, e);
    }
    if (rc == 0)
        rc = check_role(r, e);
    return rc;
}

static void set_describe(rconn *r)
{
    snprintf(r->describe, sizeof r->describe, "%.300s %s %s%s%s", r->link.where, r->role,
             r->ctx ? "tls" : "plain", r->mode ? " via " : "", r->mode ? modes[r->mode].name : "");
}

int rconn_reconnect(rconn *r, aq_err *e)
{
    rlink_close(&r->link);
    snprintf(r->role, sizeof r->role, "?");
    rnode m;
    int rc = modes[r->mode].find(&r->find, &m, e);
    int to = r->cfg.redis.connect_timeout_ms > 0 ? r->cfg.redis.connect_timeout_ms : 2000;
    if (rc == 0)
        rc = rlink_open(&r->link, m.host, m.port, to, r->ctx ? &r->tls : NULL, e);
    if (rc == 0)
        rc = handshake(r, e);
    if (rc < 0) {
        rlink_close(&r->link);
        return rc;
    }
    set_describe(r);
    return 0;
}

rconn *rconn_open(const aq_config *c, aq_err *e)
{
    rconn *r = calloc(1, sizeof *r);
    if (!r) {
        err_set(e, AQ_EAGAIN, "redis: out of memory");
        return NULL;
    }
    r->cfg = *c;
    r->link = (rlink)RLINK_INIT;
    snprintf(r->link.where, sizeof r->link.where, "%.290s",
             c->redis.unix_path[0] ? c->redis.unix_path : c->redis.host);
    r->mode = mode_of(c);
    r->find.cfg = &r->cfg;
    r->find.slot = -1;
    if (c->redis.tls && !c->redis.unix_path[0]) {
        if (!(r->ctx = rtls_context(&r->cfg, e))) {
            free(r);
            return NULL;
        }
        r->tls = (rlink_tls){r->ctx, r->cfg.redis.tls_server_name, r->cfg.redis.tls_verify};
        r->find.tls = &r->tls;
    }
    if (rconn_reconnect(r, e) < 0) {
        rconn_close(r);
        return NULL;
    }
    return r;
}

void rconn_close(rconn *r)
{
    if (!r)
        return;
    rlink_close(&r->link);
    SSL_CTX_free(r->ctx);
    free(r);
}

void rconn_set_timeout(rconn *r, int ms)
{
    rlink_set_timeout(&r->link, ms);
}

int rconn_append(rconn *r, int argc, const char **argv, const size_t *lens, aq_err *e)
{
    return rlink_append(&r->link, argc, argv, lens, e);
}

int rconn_reply(rconn *r, redisReply **out, aq_err *e)
{
    return rlink_reply(&r->link, out, e);
}

int rconn_reply_bounded(rconn *r, size_t limit, rconn_sink sink, void *ud, redisReply **out,
                        size_t *big, aq_err *e)
{
    return rlink_reply_bounded(&r->link, limit, sink, ud, out, big, e);
}

int rconn_command(rconn *r, int argc, const char **argv, const size_t *lens, redisReply **out,
                  aq_err *e)
{
    int rc = rlink_append(&r->link, argc, argv, lens, e);
    return rc < 0 ? rc : rlink_reply(&r->link, out, e);
}

bool rconn_reply_moves(const redisReply *r)
{
    static const char *const words[] = {"READONLY", "MOVED",   "ASK",      "CLUSTERDOWN",
                                        "MASTERDOWN", "LOADING", "TRYAGAIN"};
    if (!r || r->type != REDIS_REPLY_ERROR)
        return false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncmp(r->str, words[i], n) == 0 && (r->str[n] == ' ' || r->str[n] == '\0'))
            return true;
    }
    return false;
}

/* ---- WAIT ---- */

bool rconn_wait_wanted(const rconn *r)
{
    return r->cfg.redis.min_replicas_ack > 0;
}

int rconn_append_wait(rconn *r, aq_err *e)
{
    char n[16], ms[16];
    snprintf(n, sizeof n, "%d", r->cfg.redis.min_replicas_ack);
    snprintf(ms, sizeof ms, "%d", r->cfg.redis.min_replicas_timeout_ms);
    const char *argv[] = {"WAIT", n, ms};
    return rlink_append(&r->link, 3, argv, NULL, e);
}

int rconn_wait_check(const rconn *r, const redisReply *rep, aq_err *e)
{
    int want = r->cfg.redis.min_replicas_ack;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= want)
        return 0;
    if (rep->type == REDIS_REPLY_INTEGER)
        return err_set(e, AQ_EAGAIN, "redis %s: WAIT: only %lld of %d replicas confirmed the write "
                       "within %d ms ([redis] min_replicas_ack); it may be lost in a failover",
                       r->link.where, rep->integer, want, r->cfg.redis.min_replicas_timeout_ms);
    return err_set(e, AQ_EAGAIN, "redis %s: WAIT: %s", r->link.where,
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
}

/* ---- what operators see ---- */

int rconn_fd(const rconn *r)
{
    return r->link.fd;
}

const char *rconn_where(const rconn *r)
{
    return r->link.where;
}

const char *rconn_describe(const rconn *r)
{
    return r->describe;
}

const char *rconn_role(const rconn *r)
{
    return r->role;
}

bool rconn_tls(const rconn *r)
{
    return r->ctx != NULL;
}

const char *rconn_mode(const rconn *r)
{
    return modes[r->mode].name;
}
