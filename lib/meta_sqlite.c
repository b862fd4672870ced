/* meta_sqlite: avatar metadata in one SQLite file ([database.sqlite] path).
 *
 * WAL, so readers (the CLI) never block the workers' writes; a 5 s busy
 * timeout, so processes sharing the file queue for the write lock instead of
 * failing. Durability follows the choice the operator made for the files
 * ([storage.local] fsync, default true): with it, synchronous=FULL, so a
 * commit is on disk before the job is acknowledged, as docs/protocol.md promises
 * for "done"; without it, synchronous=NORMAL, which in WAL mode still keeps
 * every commit across a process crash (kill -9, OOM) but can lose the last
 * ones to an OS crash or power loss, in exchange for no fsync per job, the
 * same trade the files make. Statements are prepared on first use and kept
 * for the handle's life. Each upsert is one statement, hence one
 * transaction. */
#include "meta.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "retry.h"

#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_MIGRATE_BUSY_TIMEOUT_MS 600000

enum { SQ_UPSERT, SQ_GET, SQ_DEL, SQ_LIST, SQ_COUNT, SQ_CHECK, SQ_NSTMT };

typedef struct sqlite_st {
    sqlite3 *db;
    char path[PATH_MAX];
    char sql[SQ_NSTMT][2048];
    sqlite3_stmt *stmt[SQ_NSTMT];
    int busy_limit_ms;        /* how long a statement waits for the write lock */
    int64_t busy_since;       /* mono ms of this wait's first retry */
} sqlite_st;

/* Our busy handler. SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5, 10,
 * ... 100 ms between tries: with several worker processes committing groups
 * of rows back to back, a writer that just missed the lock then waits tens
 * of milliseconds for a lock held for a few hundred microseconds. Tries come
 * every 100-500 us instead, until busy_limit_ms. */
static int sq_busy(void *arg, int count)
{
    sqlite_st *s = arg;
    if (count == 0)
        s->busy_since = mono_ms();
    if (mono_ms() - s->busy_since >= s->busy_limit_ms)
        return 0;
    struct timespec ts = {0, (count < 20 ? 100 : 500) * 1000L};
    nanosleep(&ts, NULL);
    return 1;
}

static void sq_busy_limit(sqlite_st *s, int ms)
{
    s->busy_limit_ms = ms;
    sqlite3_busy_handler(s->db, sq_busy, s);
}

/* Primary result codes that may pass; everything else (constraint, SQL or
 * schema error, read-only, corrupt, not a database, ...) is permanent. */
static const int sq_transient[] = {
    SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_NOMEM,
    SQLITE_PROTOCOL, SQLITE_INTERRUPT,
};

static int sq_code(int rc)
{
    for (size_t i = 0; i < sizeof sq_transient / sizeof *sq_transient; i++)
        if ((rc & 0xff) == sq_transient[i])
            return AQ_EAGAIN;
    return AQ_EPERM;
}

static int sq_fail(const sqlite_st *s, aq_err *e, int rc, const char *what)
{
    return err_set(e, sq_code(rc), "sqlite %s: %s: %s (%s)", s->path, what,
                   s->db ? sqlite3_errmsg(s->db) : "", sqlite3_errstr(rc));
}

/* Runs SQL text without results (may hold several statements). */
static int sq_exec(sqlite_st *s, const char *sql, const char *what, aq_err *e)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(s, e, rc, what);
}

/* The statement for slot i, prepared on first use (not at open: with
 * no_migrate the tables may not exist yet). */
static sqlite3_stmt *sq_stmt(sqlite_st *s, int i, aq_err *e)
{
    if (!s->stmt[i]) {
        int rc = sqlite3_prepare_v3(s->db, s->sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            sq_fail(s, e, rc, "prepare");
            s->stmt[i] = NULL;
        }
    }
    return s->stmt[i];
}

/* Steps st once; resets it unless a row came back. Returns the sqlite code. */
static int sq_step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        sqlite3_reset(st);
    return rc;
}

static void sq_bind_row(sqlite3_stmt *st, const meta_row *r)
{
    int nc;
    const meta_column *c = meta_columns(&nc);
    for (int i = 0; i < nc; i++) {
        const void *f = (const char *)r + c[i].off;
        switch (c[i].kind) {
        case META_TEXT_NULL:
            if (!*(const char *)f) {
                sqlite3_bind_null(st, i + 1);
                break;
            }
            /* fall through */
        case META_TEXT:
            sqlite3_bind_text(st, i + 1, f, -1, SQLITE_STATIC);
            break;
        case META_REAL_NULL:
            if (*(const double *)f < 0)
                sqlite3_bind_null(st, i + 1);
            else
                sqlite3_bind_double(st, i + 1, *(const double *)f);
            break;
        case META_INT64:
            sqlite3_bind_int64(st, i + 1, *(const int64_t *)f);
            break;
        case META_INT:
            sqlite3_bind_int(st, i + 1, *(const int *)f);
            break;
        }
    }
}

/* Reads the current row of st (columns in meta_columns order) into r. */
static int sq_read_row(const sqlite_st *s, sqlite3_stmt *st, meta_row *r, aq_err *e)
{
    int nc;
    const meta_column *c = meta_columns(&nc);
    memset(r, 0, sizeof *r);
    for (int i = 0; i < nc; i++) {
        void *f = (char *)r + c[i].off;
        bool null = sqlite3_column_type(st, i) == SQLITE_NULL;
        if (c[i].kind == META_TEXT || c[i].kind == META_TEXT_NULL) {
            const unsigned char *t = sqlite3_column_text(st, i);
            size_t n = (size_t)sqlite3_column_bytes(st, i);
            if (n >= c[i].size)
                return err_set(e, AQ_EPERM, "sqlite %s: avatars.%s of '%s' is %zu bytes, over %zu",
                               s->path, c[i].name, r->id, n, c[i].size - 1);
            if (t)
                memcpy(f, t, n);
        } else if (c[i].kind == META_REAL_NULL) {
            *(double *)f = null ? -1 : sqlite3_column_double(st, i);
        } else if (c[i].kind == META_INT64) {
            *(int64_t *)f = sqlite3_column_int64(st, i);
        } else {
            *(int *)f = sqlite3_column_int(st, i);
        }
    }
    return 0;
}

static int sq_upsert(void *sv, const meta_row *r, aq_err *e)
{
    sqlite_st *s = sv;
    sqlite3_stmt *st = sq_stmt(s, SQ_UPSERT, e);
    if (!st)
        return e ? e->code : AQ_EPERM;
    sq_bind_row(st, r);
    int rc = sq_step(st);
    if (rc != SQLITE_DONE) {
        sq_fail(s, e, rc, "upsert");
        return err_prefix(e, "avatar '%s': ", r->id);
    }
    return 0;
}

/* BEGIN IMMEDIATE takes the write lock at once, so the group never fails
 * half-way on a lock upgrade. */
static int sq_batch(void *sv, int op, aq_err *e)
{
    static const char *const sql[] = {[META_BEGIN] = "BEGIN IMMEDIATE",
                                      [META_COMMIT] = "COMMIT", [META_ROLLBACK] = "ROLLBACK"};
    return sq_exec(sv, sql[op], sql[op], e);
}

static int sq_get(void *sv, const char *id, meta_row *r, aq_err *e)
{
    sqlite_st *s = sv;
    sqlite3_stmt *st = sq_stmt(s, SQ_GET, e);
    if (!st)
        return e ? e->code : AQ_EPERM;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sq_step(st);
    if (rc == SQLITE_DONE)
        return err_set(e, AQ_ENOTFOUND, "metadata: no avatar '%s'", id);
    if (rc != SQLITE_ROW)
        return sq_fail(s, e, rc, "get");
    rc = sq_read_row(s, st, r, e);
    sqlite3_reset(st);
    return rc;
}

static int sq_del(void *sv, const char *id, aq_err *e)
{
    sqlite_st *s = sv;
    sqlite3_stmt *st = sq_stmt(s, SQ_DEL, e);
    if (!st)
        return e ? e->code : AQ_EPERM;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sq_step(st);
    return rc == SQLITE_DONE ? 0 : sq_fail(s, e, rc, "delete");
}

static int sq_list(void *sv, const char *after, int limit,
                   int (*fn)(const meta_row *r, void *ud), void *ud, aq_err *e)
{
    sqlite_st *s = sv;
    sqlite3_stmt *st = sq_stmt(s, SQ_LIST, e);
    if (!st)
        return e ? e->code : AQ_EPERM;
    sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);   /* LIMIT -1: no limit */
    meta_row *r = malloc(sizeof *r);
    if (!r) {
        sqlite3_reset(st);
        return err_set(e, AQ_EAGAIN, "sqlite %s: list: out of memory", s->path);
    }
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = sq_read_row(s, st, r, e)) < 0 || fn(r, ud) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sq_fail(s, e, rc, "list");
    sqlite3_reset(st);
    free(r);
    return ret;
}

/* Runs a one-row, one-integer query of slot i. */
static int sq_scalar(sqlite_st *s, int i, int64_t *n, const char *what, aq_err *e)
{
    sqlite3_stmt *st = sq_stmt(s, i, e);
    if (!st)
        return e ? e->code : AQ_EPERM;
    int rc = sq_step(st);
    if (rc != SQLITE_ROW)
        return sq_fail(s, e, rc, what);
    *n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

static int sq_count(void *sv, int64_t *n, aq_err *e)
{
    return sq_scalar(sv, SQ_COUNT, n, "count", e);
}

static int sq_check(void *sv, aq_err *e)
{
    sqlite_st *s = sv;
    int64_t have;
    int n;
    meta_migrations(&n);
    int rc = sq_scalar(s, SQ_CHECK, &have, "check schema", e);
    if (rc < 0)
        return rc;
    if (have < n)
        return err_set(e, AQ_EPERM, "sqlite %s: schema has %lld of %d migrations; run avatarq migrate",
                       s->path, (long long)have, n);
    return 0;
}

/* ---- migrations ---- */

/* Whether table name exists (the dry run must not create anything). */
static int sq_table_exists(sqlite_st *s, const char *name, bool *yes, aq_err *e)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(s, e, rc, "read schema");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(s, e, rc, "read schema");
    *yes = rc == SQLITE_ROW;
    return 0;
}

/* Sets applied[k] for every migration k already recorded. */
static int sq_applied(sqlite_st *s, bool *applied, aq_err *e)
{
    int n;
    const meta_migration *m = meta_migrations(&n);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT version FROM schema_migrations", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(s, e, rc, "read schema_migrations");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int v = sqlite3_column_int(st, 0);
        for (int k = 0; k < n; k++)
            applied[k] = applied[k] || m[k].version == v;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sq_fail(s, e, rc, "read schema_migrations");
}

static int sq_record(sqlite_st *s, const meta_migration *m, aq_err *e)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "INSERT INTO schema_migrations (version, name, applied_at) "
                                "VALUES (?1, ?2, ?3)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, m->version);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_ms());
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    return rc == SQLITE_DONE ? 0 : sq_fail(s, e, rc, "record migration");
}

static int sq_dry_run(sqlite_st *s, FILE *out, aq_err *e)
{
    int n;
    const meta_migration *m = meta_migrations(&n);
    bool applied[META_MIGRATIONS_MAX] = {false};
    bool have_table = false;
    int rc = sq_table_exists(s, "schema_migrations", &have_table, e);
    if (rc == 0 && have_table)
        rc = sq_applied(s, applied, e);
    for (int k = 0; rc == 0 && k < n; k++)
        if (!applied[k] && out)
            meta_migration_print(out, &m[k]);
    return rc;
}

/* Applies what is pending inside one BEGIN IMMEDIATE transaction: the write
 * lock is taken before reading schema_migrations, so of several processes
 * starting at once one migrates and the others then find nothing to do. */
static int sq_migrate(void *sv, bool dry_run, FILE *out, aq_err *e)
{
    sqlite_st *s = sv;
    if (dry_run)
        return sq_dry_run(s, out, e);
    int n;
    const meta_migration *m = meta_migrations(&n);
    bool applied[META_MIGRATIONS_MAX] = {false}, done[META_MIGRATIONS_MAX] = {false};
    /* Waiting for another process's migration may take longer than a job's
     * write may wait: allow minutes while migrating. */
    sq_busy_limit(s, SQ_MIGRATE_BUSY_TIMEOUT_MS);
    int rc = sq_exec(s, "BEGIN IMMEDIATE", "migrate: begin", e);
    if (rc < 0) {
        sq_busy_limit(s, SQ_BUSY_TIMEOUT_MS);
        return rc;
    }
    rc = sq_exec(s, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at BIGINT NOT NULL)", "migrate: schema_migrations", e);
    if (rc == 0)
        rc = sq_applied(s, applied, e);
    for (int k = 0; rc == 0 && k < n; k++) {
        if (applied[k])
            continue;
        rc = sq_exec(s, m[k].sql, m[k].name, e);
        if (rc == 0)
            rc = sq_record(s, &m[k], e);
        done[k] = rc == 0;
    }
    if (rc == 0 && (rc = sq_exec(s, "COMMIT", "migrate: commit", e)) == 0)
        meta_report_applied(out, done);   /* only what is committed */
    sq_busy_limit(s, SQ_BUSY_TIMEOUT_MS);
    if (rc < 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return err_prefix(e, "migrating: ");
    }
    return 0;
}

/* ---- open / close ---- */

static void sq_close(void *sv)
{
    sqlite_st *s = sv;
    if (!s)
        return;
    for (int i = 0; i < SQ_NSTMT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s);
}

/* Creates the directories above path (mode 0755). */
static int sq_mkdir_parents(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -1;
        *slash = '/';
    }
    return 0;
}

static void sq_build_sql(sqlite_st *s)
{
    meta_sql_upsert(s->sql[SQ_UPSERT], sizeof s->sql[SQ_UPSERT], "?%d");
    meta_sql_select(s->sql[SQ_GET], sizeof s->sql[SQ_GET], "WHERE id = ?1");
    meta_sql_select(s->sql[SQ_LIST], sizeof s->sql[SQ_LIST], "WHERE id > ?1 ORDER BY id LIMIT ?2");
    snprintf(s->sql[SQ_DEL], sizeof s->sql[SQ_DEL], "DELETE FROM avatars WHERE id = ?1");
    snprintf(s->sql[SQ_COUNT], sizeof s->sql[SQ_COUNT], "SELECT count(*) FROM avatars");
    meta_sql_check(s->sql[SQ_CHECK], sizeof s->sql[SQ_CHECK]);
}

static int sq_capture_mode(void *out, int ncols, char **vals, char **names)
{
    (void)names;
    if (ncols > 0 && vals[0])
        snprintf(out, 16, "%s", vals[0]);
    return 0;
}

/* Journal mode WAL. Switching needs a moment of exclusive access, which
 * processes opening a fresh file together contend for; the busy timeout
 * covers most of it, this loop the rest. A filesystem without shared memory
 * support keeps another mode: that works, only slower, so it is a warning. */
static int sq_wal(sqlite_st *s, aq_err *e)
{
    int rc = SQLITE_OK;
    char mode[16] = "";
    for (int tries = 0; tries < 50; tries++) {
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", sq_capture_mode, mode, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        retry_sleep_ms(20 + 10 * tries, NULL);
    }
    if (rc != SQLITE_OK)
        return sq_fail(s, e, rc, "set WAL mode");
    if (strcmp(mode, "wal") != 0)
        log_warn("sqlite: WAL journal not available here; writers will block readers",
                 "path", s->path, "journal_mode", mode);
    return 0;
}

static int sq_open_path(const char *path, bool durable, void **st, aq_err *e)
{
    *st = NULL;
    if (!path || !*path)
        return err_set(e, AQ_EPERM, "[database.sqlite] path: empty");
    if (sq_mkdir_parents(path) < 0)
        return err_set(e, AQ_EPERM, "[database.sqlite] path: cannot create the directory of '%s': %s",
                       path, strerror(errno));
    sqlite_st *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, AQ_EAGAIN, "sqlite %s: out of memory", path);
    snprintf(s->path, sizeof s->path, "%s", path);
    sq_build_sql(s);
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(s, e, rc, "open");
        sq_close(s);
        return rc;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sq_busy_limit(s, SQ_BUSY_TIMEOUT_MS);
    if ((rc = sq_wal(s, e)) < 0 ||
        (rc = sq_exec(s, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                      "set synchronous", e)) < 0) {
        sq_close(s);
        return rc;
    }
    *st = s;
    return 0;
}

static int sq_open(const aq_config *c, void **st, aq_err *e)
{
    return sq_open_path(c->database.sqlite.path, c->storage.local.fsync, st, e);
}

static void sq_describe(const aq_config *c, char *where, size_t wn, char *caution, size_t cn)
{
    snprintf(where, wn, "%s", c->database.sqlite.path);
    if (cn)
        caution[0] = '\0';
}

const meta_ops meta_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .migrate = sq_migrate,
    .upsert = sq_upsert,
    .batch = sq_batch,
    .get = sq_get,
    .del = sq_del,
    .list = sq_list,
    .count = sq_count,
    .check = sq_check,
    .close = sq_close,
    .describe = sq_describe,
};
