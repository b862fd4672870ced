/* rconn_find: where the master is, through Sentinel or Redis Cluster.
 *
 * Sentinel: each sentinel of [redis] sentinels in turn is asked SENTINEL
 * get-master-addr-by-name; the first answer wins (rconn then confirms it
 * with ROLE, since a sentinel may not have noticed a failover yet).
 * Cluster: any known node is asked CLUSTER KEYSLOT for the namespace's hash
 * tag (once) and CLUSTER SLOTS; every node listed there is remembered, so the
 * cluster is found again after the node of the URL dies. */
#include "rconn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int rfind_auth(rlink *l, const aq_config *c, aq_err *e)
{
    if (!c->redis.password[0])
        return 0;
    const char *argv[3] = {"AUTH"};
    int n = 1;
    if (c->redis.user[0])
        argv[n++] = c->redis.user;
    argv[n++] = c->redis.password;
    redisReply *r;
    int rc = rlink_command(l, n, argv, &r, e);
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_ERROR)
        rc = err_set(e, AQ_EPERM, "redis %s: AUTH: %s", l->where, r->str);
    freeReplyObject(r);
    return rc;
}

/* Splits "host:port" / "[v6]:port" (already checked by config.c). */
static int parse_hostport(const char *item, rnode *n)
{
    const char *colon = strrchr(item, ':');
    if (!colon)
        return -1;
    const char *h = item;
    size_t hl = (size_t)(colon - item);
    if (*h == '[' && hl >= 2 && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= sizeof n->host)
        return -1;
    memcpy(n->host, h, hl);
    n->host[hl] = '\0';
    n->port = atoi(colon + 1);
    return n->port > 0 && n->port < 65536 ? 0 : -1;
}

/* One sentinel's answer: 1 found (into *m), 0 it does not know the name,
 * < 0 it could not be asked (e set). */
static int ask_sentinel(const rfind *f, const rnode *s, rnode *m, aq_err *e)
{
    rlink l = RLINK_INIT;
    const aq_config *c = f->cfg;
    int rc = rlink_open(&l, s->host, s->port, c->redis.connect_timeout_ms, f->tls, e);
    if (rc == 0 && c->redis.sentinel_password[0]) {
        const char *auth[] = {"AUTH", c->redis.sentinel_password};
        redisReply *r;
        if ((rc = rlink_command(&l, 2, auth, &r, e)) == 0) {
            if (r->type == REDIS_REPLY_ERROR)
                rc = err_set(e, AQ_EPERM, "sentinel %s: AUTH (sentinel_password): %s", l.where, r->str);
            freeReplyObject(r);
        }
    }
    redisReply *r = NULL;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", c->redis.sentinel_master};
    if (rc == 0)
        rc = rlink_command(&l, 3, argv, &r, e);
    if (rc == 0) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
            snprintf(m->host, sizeof m->host, "%s", r->element[0]->str);
            m->port = atoi(r->element[1]->str);
            rc = 1;
        } else if (r->type == REDIS_REPLY_ERROR) {
            rc = err_set(e, AQ_EAGAIN, "sentinel %s: %s", l.where, r->str);
        } /* nil: this sentinel has no master of that name */
        freeReplyObject(r);
    }
    rlink_close(&l);
    return rc;
}

int rfind_sentinel(rfind *f, rnode *master, aq_err *e)
{
    char list[1024], errs[700] = "";
    snprintf(list, sizeof list, "%s", f->cfg->redis.sentinels);
    int asked = 0, unknown = 0;
    for (char *save = NULL, *t = strtok_r(list, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        rnode s;
        if (parse_hostport(t, &s) != 0)
            continue;
        asked++;
        aq_err one = {0};
        int rc = ask_sentinel(f, &s, master, &one);
        if (rc == 1)
            return 0;
        if (rc == 0)
            unknown++;
        else if (strlen(errs) < sizeof errs - 200)
            snprintf(errs + strlen(errs), sizeof errs - strlen(errs), "%s%.180s", errs[0] ? "; " : "",
                     one.msg);
    }
    if (asked > 0 && unknown == asked)
        return err_set(e, AQ_EPERM, "sentinel: no sentinel of [redis] sentinels knows a master named "
                       "'%s' ([redis] sentinel_master)", f->cfg->redis.sentinel_master);
    if (unknown > 0)
        return err_set(e, AQ_EAGAIN, "sentinel: master '%s' unknown to %d sentinel(s), others "
                       "unreachable: %s", f->cfg->redis.sentinel_master, unknown, errs);
    return err_set(e, AQ_EAGAIN, "sentinel: no sentinel reachable: %s", errs[0] ? errs : "none listed");
}

/* ---- cluster ---- */

static void remember(rfind *f, const char *host, int port)
{
    for (int i = 0; i < f->n_known; i++)
        if (f->known[i].port == port && strcmp(f->known[i].host, host) == 0)
            return;
    if (f->n_known >= RCONN_NODES_MAX || !host[0] || strlen(host) >= sizeof f->known[0].host)
        return;
    snprintf(f->known[f->n_known].host, sizeof f->known[0].host, "%s", host);
    f->known[f->n_known++].port = port;
}

/* [host, port, id...] of CLUSTER SLOTS; an empty host means "the node you
 * asked" (cluster-announce not set, or unknown endpoint). */
static bool slot_node(const redisReply *n, const rnode *asked_node, rnode *out)
{
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 || n->element[0]->type != REDIS_REPLY_STRING ||
        n->element[1]->type != REDIS_REPLY_INTEGER)
        return false;
    const char *h = n->element[0]->str;
    snprintf(out->host, sizeof out->host, "%s", h[0] && strcmp(h, "?") != 0 ? h : asked_node->host);
    out->port = (int)n->element[1]->integer;
    return true;
}

/* Reads CLUSTER SLOTS: remembers every node, finds the slot's master. */
static int read_slots(rfind *f, const redisReply *r, const rnode *at, rnode *master)
{
    bool found = false;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3)
            continue;
        for (size_t j = 2; j < range->elements; j++) {
            rnode n;
            if (slot_node(range->element[j], at, &n))
                remember(f, n.host, n.port);
        }
        long long lo = range->element[0]->integer, hi = range->element[1]->integer;
        if (!found && f->slot >= lo && f->slot <= hi && slot_node(range->element[2], at, master))
            found = true;
    }
    return found ? 0 : -1;
}

/* Asks one node: 0 with *master, or < 0 (AQ_EPERM: not a cluster node). */
static int ask_node(rfind *f, const rnode *at, rnode *master, aq_err *e)
{
    rlink l = RLINK_INIT;
    const aq_config *c = f->cfg;
    int rc = rlink_open(&l, at->host, at->port, c->redis.connect_timeout_ms, f->tls, e);
    if (rc == 0)
        rc = rfind_auth(&l, c, e);
    redisReply *r = NULL;
    if (rc == 0 && f->slot < 0) {
        const char *ks[] = {"CLUSTER", "KEYSLOT", c->redis.ns};
        if ((rc = rlink_command(&l, 3, ks, &r, e)) == 0) {
            if (r->type == REDIS_REPLY_INTEGER)
                f->slot = (int)r->integer;
            else
                rc = err_set(e, AQ_EPERM, "redis %s: [redis] cluster = true but this node is not in "
                             "cluster mode (%s)", l.where, r->type == REDIS_REPLY_ERROR ? r->str : "?");
            freeReplyObject(r);
        }
    }
    const char *slots[] = {"CLUSTER", "SLOTS"};
    if (rc == 0 && (rc = rlink_command(&l, 2, slots, &r, e)) == 0) {
        if (r->type == REDIS_REPLY_ERROR)
            rc = err_set(e, strncasecmp(r->str, "ERR This instance has cluster support disabled", 40) == 0
                                ? AQ_EPERM : AQ_EAGAIN,
                         "redis %s: CLUSTER SLOTS: %s", l.where, r->str);
        else if (r->type != REDIS_REPLY_ARRAY || read_slots(f, r, at, master) != 0)
            rc = err_set(e, AQ_EAGAIN, "redis %s: no master serves slot %d of namespace '%s' yet",
                         l.where, f->slot, c->redis.ns);
        freeReplyObject(r);
    }
    rlink_close(&l);
    return rc;
}

int rfind_cluster(rfind *f, rnode *master, aq_err *e)
{
    if (f->n_known == 0)
        remember(f, f->cfg->redis.host, f->cfg->redis.port);
    char errs[700] = "";
    for (int i = 0; i < f->n_known; i++) {
        aq_err one = {0};
        rnode at = f->known[i]; /* remember() may grow the list meanwhile */
        int rc = ask_node(f, &at, master, &one);
        if (rc == 0)
            return 0;
        if (rc == AQ_EPERM)
            return err_set(e, rc, "%s", one.msg);
        if (strlen(errs) < sizeof errs - 200)
            snprintf(errs + strlen(errs), sizeof errs - strlen(errs), "%s%.180s", errs[0] ? "; " : "",
                     one.msg);
    }
    return err_set(e, AQ_EAGAIN, "cluster: no node gave the master of '%s': %s", f->cfg->redis.ns, errs);
}
