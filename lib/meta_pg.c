/* meta_pg: avatar metadata in PostgreSQL through libpq, for fleets whose
 * workers on many machines share one database.
 *
 * Connection: [database.postgresql] conninfo (key=value string or URL; empty
 * means the usual PG* environment) with our defaults underneath (connect and
 * TCP timeouts, keepalives, application_name) that the conninfo may override.
 * Open retries `retries` times with backoff; afterwards a lost connection
 * (server restarted, network cut) fails the call in hand with AQ_EAGAIN
 * after one immediate reconnect-and-retry, and later calls reconnect with
 * backoff. Every statement we run is idempotent (an upsert, a delete, reads),
 * so running one again after an unknown outcome never records anything
 * twice. statement_timeout (10 s unless the operator configured another)
 * bounds every statement on the server.
 *
 * Statements are prepared once per connection, on first use. Each upsert is
 * one INSERT ... ON CONFLICT (id) DO UPDATE statement in autocommit, i.e. one
 * transaction. Failures are classified by SQLSTATE (table below).
 *
 * The conninfo is never echoed, and every message we build passes through
 * pg_scrub(), which blanks the password wherever libpq or the server might
 * have repeated it. */
#include "meta.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"

#define PG_STATEMENT_TIMEOUT_MS 10000
#define PG_MIGRATION_TIMEOUT "'10min'"
#define PG_LIST_PAGE 500
#define PG_BACKOFF_BASE_MS 200
#define PG_BACKOFF_MAX_MS 5000
/* Any fixed number, the same in every avatarq: "avatarq\0" as an integer. */
#define PG_MIGRATION_LOCK "7021785216386183424"

enum { PG_UPSERT, PG_GET, PG_DEL, PG_LIST, PG_COUNT, PG_CHECK, PG_NSTMT };

static const char *const pg_stmt_names[PG_NSTMT] = {
    "aq_upsert", "aq_get", "aq_del", "aq_list", "aq_count", "aq_check",
};

typedef struct pg_st {
    PGconn *conn;                 /* NULL while disconnected */
    char conninfo[1024];
    char password[3][256];        /* from conninfo, PGPASSWORD, the connection */
    char target[320];             /* user@host:port/db, for messages */
    char last_error[512];         /* why the last connect failed */
    int retries;
    int failures;                 /* consecutive failed reconnects */
    int64_t next_connect_ms;      /* monotonic: no reconnect before this */
    bool prepared[PG_NSTMT];      /* on the current connection */
    char sql[PG_NSTMT][2048];
    int nparams[PG_NSTMT];
} pg_st;

/* ---- messages ---- */

/* Replaces every occurrence of each known password in msg with "***". */
static void pg_scrub(const pg_st *s, char *msg, size_t size)
{
    for (int k = 0; k < 3; k++) {
        const char *pw = s->password[k];
        size_t pl = strlen(pw);
        if (!pl)
            continue;
        char out[1024];
        size_t o = 0;
        for (const char *p = msg; *p && o + 4 < sizeof out;) {
            if (strncmp(p, pw, pl) == 0) {
                memcpy(out + o, "***", 3), o += 3, p += pl;
            } else {
                out[o++] = *p++;
            }
        }
        out[o] = '\0';
        if (o >= size)
            o = size - 1;
        memcpy(msg, out, o);
        msg[o] = '\0';
    }
}

/* libpq messages end in newlines and may span lines: one line for logs. */
static void one_line(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}

__attribute__((format(printf, 4, 5)))
static int pg_err(const pg_st *s, aq_err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    one_line(detail);
    err_set(e, code, "postgresql %s: %s", s->target[0] ? s->target : "(from environment)", detail);
    pg_scrub(s, e->msg, sizeof e->msg);
    return code;
}

/* ---- classification ---- */

/* SQLSTATE (or its two-character class) -> transient or permanent; the
 * first matching prefix wins, so specific codes come before their class. */
static const struct {
    const char *state;
    int code;
} pg_states[] = {
    {"55P03", AQ_EAGAIN}, /* lock_not_available */
    {"08", AQ_EAGAIN},    /* connection exception */
    {"40", AQ_EAGAIN},    /* serialization failure, deadlock */
    {"53", AQ_EAGAIN},    /* insufficient resources: disk full, too many connections */
    {"57", AQ_EAGAIN},    /* operator intervention: shutdown, statement timeout */
    {"58", AQ_EAGAIN},    /* system error: I/O */
    {"23", AQ_EPERM},     /* integrity constraint violation */
    {"42", AQ_EPERM},     /* syntax error or schema (undefined table/column) */
    {"22", AQ_EPERM},     /* data exception */
    {"28", AQ_EPERM},     /* invalid authorization */
    {"3D", AQ_EPERM},     /* invalid catalog name: no such database */
};

static int pg_state_code(const char *state)
{
    for (size_t i = 0; state && i < sizeof pg_states / sizeof *pg_states; i++)
        if (strncmp(state, pg_states[i].state, strlen(pg_states[i].state)) == 0)
            return pg_states[i].code;
    return AQ_EPERM;   /* an error we cannot name will not pass by retrying */
}

/* A failed connection attempt has no SQLSTATE in libpq; these phrases mark
 * the ones that no retry can fix (the rest: refused, timeout, starting up,
 * too many clients, shutting down, DNS hiccups, are transient). They are the
 * server's English texts: with another lc_messages such a failure counts as
 * transient, which costs only the retries before the same clear message. */
static const char *const pg_connect_permanent[] = {
    "password authentication failed", "no password supplied", "does not exist",
    "no pg_hba.conf entry", "invalid connection option", "invalid integer value",
    "invalid sslmode", "invalid port number", "SCRAM authentication requires",
};

static int pg_connect_code(const char *msg)
{
    for (size_t i = 0; i < sizeof pg_connect_permanent / sizeof *pg_connect_permanent; i++)
        if (strstr(msg, pg_connect_permanent[i]))
            return AQ_EPERM;
    return AQ_EAGAIN;
}

/* ---- connection ---- */

static void pg_quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;   /* "relation already exists, skipping" is not news */
}

static void pg_drop(pg_st *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    memset(s->prepared, 0, sizeof s->prepared);
}

static void pg_set_target(pg_st *s, PGconn *c)
{
    const char *host = PQhost(c), *port = PQport(c), *db = PQdb(c), *user = PQuser(c);
    snprintf(s->target, sizeof s->target, "%s@%s:%s/%s", user ? user : "", host ? host : "",
             port ? port : "", db ? db : "");
    const char *pw = PQpass(c);
    snprintf(s->password[2], sizeof s->password[2], "%s", pw ? pw : "");
}

static bool pg_lost(const pg_st *s)
{
    return !s->conn || PQstatus(s->conn) != CONNECTION_OK;
}

/* The error of a failed result r (may be NULL), classified: a lost
 * connection or no result at all is transient, else by SQLSTATE. */
static int pg_result_error(const pg_st *s, const PGresult *r, const char *what, aq_err *e)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : "";
    if (!*msg)
        msg = s->conn ? PQerrorMessage(s->conn) : "not connected";
    int code = pg_lost(s) || !r ? AQ_EAGAIN : pg_state_code(state);
    return pg_err(s, e, code, "%s: %s%s%s%s", what, msg, state ? " (SQLSTATE " : "",
                  state ? state : "", state ? ")" : "");
}

/* Runs SQL text (one or more statements); 0 or the classified error. */
static int pg_simple(pg_st *s, const char *sql, const char *what, aq_err *e)
{
    if (!s->conn)
        return pg_err(s, e, AQ_EAGAIN, "%s: not connected", what);
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_result_error(s, r, what, e);
        if (pg_lost(s))
            pg_drop(s);
    }
    PQclear(r);
    return rc;
}

/* One connection attempt. */
static int pg_connect_once(pg_st *s, aq_err *e)
{
    static const char *const kw[] = {
        "connect_timeout", "application_name", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname", NULL,
    };
    /* Later entries win, so the conninfo (expanded from "dbname") overrides
     * our defaults; an empty conninfo leaves everything to PG* variables. */
    const char *val[] = {"10", "avatarq", "30", "10", "3", "30000", s->conninfo, NULL};
    pg_drop(s);
    PGconn *c = PQconnectdbParams(kw, val, 1);
    if (!c)
        return pg_err(s, e, AQ_EAGAIN, "connect: out of memory");
    pg_set_target(s, c);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQfinish(c);
        one_line(msg);
        pg_scrub(s, msg, sizeof msg);
        snprintf(s->last_error, sizeof s->last_error, "%s", msg);
        return pg_err(s, e, pg_connect_code(msg), "connect: %s", msg);
    }
    PQsetNoticeProcessor(c, pg_quiet_notice, NULL);
    s->conn = c;
    /* Our statement timeout, unless the operator set one (options in the
     * conninfo, ALTER ROLE/DATABASE ... SET): one round trip for both. */
    char set[256];
    snprintf(set, sizeof set, "SELECT set_config('client_min_messages', 'warning', false), "
             "CASE WHEN current_setting('statement_timeout') = '0' "
             "THEN set_config('statement_timeout', '%d', false) END", PG_STATEMENT_TIMEOUT_MS);
    int rc = pg_simple(s, set, "connect: set statement_timeout", e);
    if (rc < 0)
        pg_drop(s);
    return rc;
}

/* Connected, or one attempt to be when the backoff allows it. */
static int pg_ensure(pg_st *s, aq_err *e)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    pg_drop(s);
    int64_t wait = s->next_connect_ms - mono_ms();
    if (wait > 0)
        return pg_err(s, e, AQ_EAGAIN, "not connected, next attempt in %lld ms (last: %s)",
                      (long long)wait, s->last_error);
    int rc = pg_connect_once(s, e);
    if (rc < 0) {
        s->next_connect_ms = mono_ms() + retry_backoff_ms(s->failures++, PG_BACKOFF_BASE_MS,
                                                          PG_BACKOFF_MAX_MS);
        return rc;
    }
    s->failures = 0;
    return 0;
}

/* ---- statements ---- */

static int pg_prepare(pg_st *s, int i, aq_err *e)
{
    if (s->prepared[i])
        return 0;
    PGresult *r = PQprepare(s->conn, pg_stmt_names[i], s->sql[i], s->nparams[i], NULL);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK) {
        char what[64];
        snprintf(what, sizeof what, "prepare %s", pg_stmt_names[i]);
        rc = pg_result_error(s, r, what, e);
    } else {
        s->prepared[i] = true;
    }
    PQclear(r);
    return rc;
}

/* Runs prepared statement i and hands back its result (PQclear it). A lost
 * connection is re-made at once and the statement run again one time; all
 * our statements are idempotent, so that is safe even if the first run
 * committed before the connection dropped. */
static int pg_call(pg_st *s, int i, const char *const *vals, ExecStatusType want,
                   PGresult **out, aq_err *e)
{
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        int rc = pg_ensure(s, e);
        if (rc == 0)
            rc = pg_prepare(s, i, e);
        PGresult *r = NULL;
        if (rc == 0) {
            r = PQexecPrepared(s->conn, pg_stmt_names[i], s->nparams[i], vals, NULL, NULL, 0);
            if (r && PQresultStatus(r) == want) {
                *out = r;
                return 0;
            }
            rc = pg_result_error(s, r, pg_stmt_names[i] + 3, e);
            PQclear(r);
        }
        if (s->conn && pg_lost(s)) {
            pg_drop(s);
            if (attempt == 0 && s->failures == 0)
                continue;   /* one immediate reconnect: a restart between jobs is invisible */
        }
        return rc;
    }
}

static void pg_bind_row(const meta_row *r, const char **vals, char num[][32])
{
    int nc;
    const meta_column *c = meta_columns(&nc);
    for (int i = 0; i < nc; i++) {
        const void *f = (const char *)r + c[i].off;
        vals[i] = num[i];
        switch (c[i].kind) {
        case META_TEXT:
            vals[i] = f;
            break;
        case META_TEXT_NULL:
            vals[i] = *(const char *)f ? f : NULL;
            break;
        case META_REAL_NULL:
            if (*(const double *)f < 0)
                vals[i] = NULL;
            else
                snprintf(num[i], 32, "%.17g", *(const double *)f);
            break;
        case META_INT64:
            snprintf(num[i], 32, "%lld", (long long)*(const int64_t *)f);
            break;
        case META_INT:
            snprintf(num[i], 32, "%d", *(const int *)f);
            break;
        }
    }
}

static int pg_read_row(const pg_st *s, const PGresult *res, int row, meta_row *r, aq_err *e)
{
    int nc;
    const meta_column *c = meta_columns(&nc);
    memset(r, 0, sizeof *r);
    for (int i = 0; i < nc; i++) {
        void *f = (char *)r + c[i].off;
        bool null = PQgetisnull(res, row, i);
        const char *v = PQgetvalue(res, row, i);
        if (c[i].kind == META_TEXT || c[i].kind == META_TEXT_NULL) {
            size_t n = (size_t)PQgetlength(res, row, i);
            if (n >= c[i].size)
                return pg_err(s, e, AQ_EPERM, "avatars.%s of '%s' is %zu bytes, over %zu",
                              c[i].name, r->id, n, c[i].size - 1);
            memcpy(f, v, n);
        } else if (c[i].kind == META_REAL_NULL) {
            *(double *)f = null ? -1 : strtod(v, NULL);
        } else if (c[i].kind == META_INT64) {
            *(int64_t *)f = strtoll(v, NULL, 10);
        } else {
            *(int *)f = (int)strtol(v, NULL, 10);
        }
    }
    return 0;
}

static int pg_upsert(void *sv, const meta_row *r, aq_err *e)
{
    pg_st *s = sv;
    int nc;
    meta_columns(&nc);
    const char *vals[32];
    char num[32][32];
    pg_bind_row(r, vals, num);
    PGresult *res;
    int rc = pg_call(s, PG_UPSERT, vals, PGRES_COMMAND_OK, &res, e);
    PQclear(res);
    return rc < 0 ? err_prefix(e, "avatar '%s': ", r->id) : 0;
}

static int pg_get(void *sv, const char *id, meta_row *r, aq_err *e)
{
    pg_st *s = sv;
    const char *vals[1] = {id};
    PGresult *res;
    int rc = pg_call(s, PG_GET, vals, PGRES_TUPLES_OK, &res, e);
    if (rc == 0 && PQntuples(res) == 0)
        rc = err_set(e, AQ_ENOTFOUND, "metadata: no avatar '%s'", id);
    else if (rc == 0)
        rc = pg_read_row(s, res, 0, r, e);
    PQclear(res);
    return rc;
}

static int pg_del(void *sv, const char *id, aq_err *e)
{
    const char *vals[1] = {id};
    PGresult *res;
    int rc = pg_call(sv, PG_DEL, vals, PGRES_COMMAND_OK, &res, e);
    PQclear(res);
    return rc;
}

/* One page of at most n rows after `after`: *got rows were read (the last
 * one left in r), *stop is set when fn asked to stop. */
static int pg_list_page(pg_st *s, const char *after, int n, int (*fn)(const meta_row *, void *),
                        void *ud, meta_row *r, int *got, bool *stop, aq_err *e)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", n);
    const char *vals[2] = {after, lim};
    PGresult *res;
    int rc = pg_call(s, PG_LIST, vals, PGRES_TUPLES_OK, &res, e);
    *got = 0;
    for (int i = 0, rows = rc == 0 ? PQntuples(res) : 0; i < rows && !*stop; i++) {
        if ((rc = pg_read_row(s, res, i, r, e)) < 0)
            break;
        (*got)++;
        *stop = fn(r, ud) != 0;
    }
    PQclear(res);
    return rc;
}

/* Pages through the rows PG_LIST_PAGE at a time, so a listing of a big
 * table never holds more than one page in memory. */
static int pg_list(void *sv, const char *after, int limit,
                   int (*fn)(const meta_row *r, void *ud), void *ud, aq_err *e)
{
    pg_st *s = sv;
    meta_row *r = malloc(sizeof *r);
    if (!r)
        return pg_err(s, e, AQ_EAGAIN, "list: out of memory");
    char cursor[sizeof r->id];
    snprintf(cursor, sizeof cursor, "%s", after);
    int rc = 0, left = limit > 0 ? limit : -1;
    bool stop = false;
    while (rc == 0 && !stop && left != 0) {
        int want = left > 0 && left < PG_LIST_PAGE ? left : PG_LIST_PAGE, got;
        rc = pg_list_page(s, cursor, want, fn, ud, r, &got, &stop, e);
        if (rc < 0 || got < want)
            break;
        snprintf(cursor, sizeof cursor, "%s", r->id);
        if (left > 0)
            left -= got;
    }
    free(r);
    return rc;
}

static int pg_scalar(pg_st *s, int i, int64_t *n, aq_err *e)
{
    PGresult *res;
    int rc = pg_call(s, i, NULL, PGRES_TUPLES_OK, &res, e);
    if (rc == 0)
        *n = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return rc;
}

static int pg_count(void *sv, int64_t *n, aq_err *e)
{
    return pg_scalar(sv, PG_COUNT, n, e);
}

static int pg_check(void *sv, aq_err *e)
{
    pg_st *s = sv;
    int n;
    int64_t have = 0;
    meta_migrations(&n);
    int rc = pg_scalar(s, PG_CHECK, &have, e);
    if (rc < 0)
        return rc;
    if (have < n)
        return pg_err(s, e, AQ_EPERM, "schema has %lld of %d migrations; run avatarq migrate",
                      (long long)have, n);
    return 0;
}

/* ---- migrations ---- */

/* Sets applied[k] for every recorded migration k; a missing table is fine
 * when may_be_missing (the dry run must not create it). */
static int pg_applied(pg_st *s, bool *applied, bool may_be_missing, aq_err *e)
{
    const char *sql[2] = {"SELECT to_regclass('schema_migrations') IS NOT NULL",
                          "SELECT version FROM schema_migrations"};
    int n;
    const meta_migration *m = meta_migrations(&n);
    for (int q = may_be_missing ? 0 : 1; q < 2; q++) {
        PGresult *r = PQexec(s->conn, sql[q]);
        if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
            int rc = pg_result_error(s, r, "read schema_migrations", e);
            PQclear(r);
            if (pg_lost(s))
                pg_drop(s);
            return rc;
        }
        bool missing = q == 0 && strcmp(PQgetvalue(r, 0, 0), "t") != 0;
        for (int i = 0; q == 1 && i < PQntuples(r); i++) {
            int v = atoi(PQgetvalue(r, i, 0));
            for (int k = 0; k < n; k++)
                applied[k] = applied[k] || m[k].version == v;
        }
        PQclear(r);
        if (missing)
            return 0;
    }
    return 0;
}

static int pg_record(pg_st *s, const meta_migration *m, aq_err *e)
{
    char ver[16], at[32];
    snprintf(ver, sizeof ver, "%d", m->version);
    snprintf(at, sizeof at, "%lld", (long long)now_ms());
    const char *vals[3] = {ver, m->name, at};
    PGresult *r = PQexecParams(s->conn, "INSERT INTO schema_migrations (version, name, applied_at) "
                               "VALUES ($1, $2, $3)", 3, NULL, vals, NULL, NULL, 0);
    int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? 0
             : pg_result_error(s, r, "record migration", e);
    PQclear(r);
    if (pg_lost(s))
        pg_drop(s);
    return rc;
}

/* Applies the pending migrations in one transaction holding a transaction-
 * scoped advisory lock: of several workers starting together one migrates
 * and the rest wait, then find nothing left to do. */
static int pg_migrate_txn(pg_st *s, FILE *out, aq_err *e)
{
    int n;
    const meta_migration *m = meta_migrations(&n);
    bool applied[META_MIGRATIONS_MAX] = {false}, done[META_MIGRATIONS_MAX] = {false};
    int rc = pg_simple(s, "BEGIN", "migrate: begin", e);
    /* Building an index on a big table, or waiting for another process that
     * does, takes longer than a job's statement may: allow minutes here. */
    if (rc == 0)
        rc = pg_simple(s, "SET LOCAL statement_timeout = " PG_MIGRATION_TIMEOUT, "migrate: timeout", e);
    if (rc == 0)
        rc = pg_simple(s, "SELECT pg_advisory_xact_lock(" PG_MIGRATION_LOCK ")", "migrate: lock", e);
    if (rc == 0)
        rc = pg_simple(s, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                       "name TEXT NOT NULL, applied_at BIGINT NOT NULL)", "migrate: schema_migrations", e);
    if (rc == 0)
        rc = pg_applied(s, applied, false, e);
    for (int k = 0; rc == 0 && k < n; k++) {
        if (applied[k])
            continue;
        rc = pg_simple(s, m[k].sql, m[k].name, e);
        if (rc == 0)
            rc = pg_record(s, &m[k], e);
        done[k] = rc == 0;
    }
    if (rc == 0 && (rc = pg_simple(s, "COMMIT", "migrate: commit", e)) == 0) {
        meta_report_applied(out, done);   /* only what is committed */
        return 0;
    }
    if (s->conn) {
        PGresult *r = PQexec(s->conn, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

static int pg_migrate(void *sv, bool dry_run, FILE *out, aq_err *e)
{
    pg_st *s = sv;
    int rc = pg_ensure(s, e);
    if (rc < 0)
        return rc;
    if (!dry_run) {
        rc = pg_migrate_txn(s, out, e);
        return rc < 0 ? err_prefix(e, "migrating: ") : 0;
    }
    int n;
    const meta_migration *m = meta_migrations(&n);
    bool applied[META_MIGRATIONS_MAX] = {false};
    rc = pg_applied(s, applied, true, e);
    for (int k = 0; rc == 0 && k < n; k++)
        if (!applied[k] && out)
            meta_migration_print(out, &m[k]);
    return rc;
}

/* ---- open / close ---- */

static void pg_close(void *sv)
{
    pg_st *s = sv;
    if (!s)
        return;
    pg_drop(s);
    explicit_bzero(s->conninfo, sizeof s->conninfo);
    explicit_bzero(s->password, sizeof s->password);
    free(s);
}

/* Validates the conninfo and remembers its password (to scrub it). A parse
 * error message may quote a fragment of the string, which could be the
 * password: quoted parts are blanked. */
static int pg_parse_conninfo(pg_st *s, aq_err *e)
{
    if (!s->conninfo[0])
        return 0;
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(s->conninfo, &errmsg);
    if (!opts) {
        char msg[256] = "out of memory";
        if (errmsg) {
            size_t o = 0;
            bool quoted = false;
            for (const char *p = errmsg; *p && o + 4 < sizeof msg; p++) {
                if (*p == '"' && (quoted = !quoted))
                    memcpy(msg + o, "\"...", 4), o += 4;
                else if (!quoted)
                    msg[o++] = *p;
            }
            msg[o] = '\0';
            one_line(msg);
            PQfreemem(errmsg);
        }
        return err_set(e, AQ_EPERM, "[database.postgresql] conninfo: not a valid connection "
                       "string or URL: %s", msg);
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            snprintf(s->password[0], sizeof s->password[0], "%s", o->val);
    PQconninfoFree(opts);
    return 0;
}

static void pg_build_sql(pg_st *s)
{
    int nc;
    meta_columns(&nc);
    meta_sql_upsert(s->sql[PG_UPSERT], sizeof s->sql[PG_UPSERT], "$%d");
    s->nparams[PG_UPSERT] = nc;
    meta_sql_select(s->sql[PG_GET], sizeof s->sql[PG_GET], "WHERE id = $1");
    s->nparams[PG_GET] = 1;
    meta_sql_select(s->sql[PG_LIST], sizeof s->sql[PG_LIST], "WHERE id > $1 ORDER BY id LIMIT $2");
    s->nparams[PG_LIST] = 2;
    snprintf(s->sql[PG_DEL], sizeof s->sql[PG_DEL], "DELETE FROM avatars WHERE id = $1");
    s->nparams[PG_DEL] = 1;
    snprintf(s->sql[PG_COUNT], sizeof s->sql[PG_COUNT], "SELECT count(*) FROM avatars");
    meta_sql_check(s->sql[PG_CHECK], sizeof s->sql[PG_CHECK]);
}

/* Opens with `retries` further attempts and backoff between them; a failure
 * that cannot pass (bad password, no such database) stops at once. */
static int pg_open(const aq_config *c, void **st, aq_err *e)
{
    *st = NULL;
    pg_st *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, AQ_EAGAIN, "postgresql: out of memory");
    snprintf(s->conninfo, sizeof s->conninfo, "%s", c->database.pg.conninfo);
    const char *envpw = getenv("PGPASSWORD");
    snprintf(s->password[1], sizeof s->password[1], "%s", envpw ? envpw : "");
    s->retries = c->database.pg.retries > 0 ? c->database.pg.retries : 0;
    pg_build_sql(s);
    int rc = pg_parse_conninfo(s, e);
    for (int attempt = 0; rc == 0; attempt++) {
        rc = pg_connect_once(s, e);
        if (rc != AQ_EAGAIN || attempt >= s->retries)
            break;
        retry_sleep_ms(retry_backoff_ms(attempt, PG_BACKOFF_BASE_MS, PG_BACKOFF_MAX_MS), NULL);
        rc = 0;
    }
    if (rc < 0) {
        pg_close(s);
        return rc;
    }
    *st = s;
    return 0;
}

/* ---- describe (health) ---- */

/* The value of keyword in parsed conninfo options, or "" */
static const char *pg_opt(const PQconninfoOption *opts, const char *keyword)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && strcmp(o->keyword, keyword) == 0)
            return o->val;
    return "";
}

/* True when every host of a (comma-separated) libpq host list stays on this
 * machine: empty (libpq's default Unix socket), a socket directory, or a
 * loopback name or address. */
static bool hosts_on_loopback(const char *hosts)
{
    static const char *const local[] = {"localhost", "127.", "::1", "/", "@"};
    for (const char *h = hosts; *h;) {
        size_t n = strcspn(h, ",");
        bool ok = n == 0;
        for (size_t i = 0; !ok && i < sizeof local / sizeof *local; i++)
            ok = strncmp(h, local[i], strlen(local[i])) == 0 &&
                 (strcmp(local[i], "localhost") != 0 || n == 9);
        if (!ok)
            return false;
        h += n + (h[n] == ',');
    }
    return true;
}

/* Where a conninfo (key=value or URL) points, as USER@HOST:PORT/DB, parsed
 * by libpq itself; the password is never part of it. A server off this
 * machine reached with an sslmode weaker than verify-full (libpq's default
 * is prefer: encryption if offered, no certificate check) gets a caution.
 * PGHOST and PGSSLMODE fill in what the conninfo leaves out, as libpq does. */
static void pg_describe(const aq_config *c, char *where, size_t wn, char *caution, size_t cn)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(c->database.pg.conninfo, &errmsg);
    if (cn)
        caution[0] = '\0';
    if (!opts) {
        /* errmsg may quote the string, password included: not shown. */
        PQfreemem(errmsg);
        snprintf(where, wn, "(conninfo libpq cannot parse)");
        return;
    }
    const char *user = pg_opt(opts, "user"), *host = pg_opt(opts, "host");
    const char *addr = pg_opt(opts, "hostaddr"), *port = pg_opt(opts, "port");
    const char *sslmode = pg_opt(opts, "sslmode");
    if (!*host && getenv("PGHOST"))
        host = getenv("PGHOST");
    if (!*sslmode)
        sslmode = getenv("PGSSLMODE") && *getenv("PGSSLMODE") ? getenv("PGSSLMODE") : "prefer";
    snprintf(where, wn, "%s%s%s%s%s/%s", user, *user ? "@" : "", *host ? host : addr,
             *port ? ":" : "", port, pg_opt(opts, "dbname"));
    bool remote = !hosts_on_loopback(host) || !hosts_on_loopback(addr);
    if (remote && strcmp(sslmode, "verify-full") != 0)
        snprintf(caution, cn, "sslmode=%s to a server that is not on loopback: the connection "
                 "may be unencrypted or the server unverified; add sslmode=verify-full "
                 "(and sslrootcert) to the conninfo", sslmode);
    PQconninfoFree(opts);
}

const meta_ops meta_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .migrate = pg_migrate,
    .upsert = pg_upsert,
    .get = pg_get,
    .del = pg_del,
    .list = pg_list,
    .count = pg_count,
    .check = pg_check,
    .close = pg_close,
    .describe = pg_describe,
};
