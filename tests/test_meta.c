/* The metadata store: one set of test cases run against both backends (a
 * SQLite file in a temp dir and a PostgreSQL cluster of our own), through
 * the meta_* interface the worker and CLI use; then what only PostgreSQL
 * has: a server restarted under a run of 500 upserts, a wrong password, a
 * bad conninfo, the PG* environment. */
#include <check.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "meta.h"
#include "support.h"
#include "support_pg.h"

static sup_pg pg;               /* one cluster for the whole binary */
static char tmp[256];           /* SQLite files live below this */

/* ---- the backends under test ---- */

typedef struct backend {
    const char *name;
    /* Points c at a brand-new empty database. */
    void (*fresh)(aq_config *c);
    /* Runs one SQL statement out of band; its first value as an integer. */
    long long (*sql)(const aq_config *c, const char *sql);
    /* Counts the tables avatars and schema_migrations. */
    const char *tables_sql;
    /* Makes every new row with bytes over 1000 violate a constraint. */
    const char *constraint_sql;
} backend;

static int fresh_seq;

static void sqlite_fresh(aq_config *c)
{
    config_defaults(c);
    snprintf(c->database.backend, sizeof c->database.backend, "sqlite");
    snprintf(c->database.sqlite.path, sizeof c->database.sqlite.path, "%s/t%d-%d/sub/avatarq.db",
             tmp, (int)getpid(), ++fresh_seq);
}

static long long sqlite_sql(const aq_config *c, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long long v = -1;
    ck_assert_int_eq(sqlite3_open(c->database.sqlite.path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static char pg_db[64];   /* the database fresh() made in this test process */

static void pg_fresh(aq_config *c)
{
    config_defaults(c);
    snprintf(c->database.backend, sizeof c->database.backend, "postgresql");
    snprintf(pg_db, sizeof pg_db, "t%d_%d", (int)getpid(), ++fresh_seq);
    sup_pg_createdb(&pg, pg_db, c->database.pg.conninfo, sizeof c->database.pg.conninfo);
    c->database.pg.retries = 2;
}

static long long pg_sql(const aq_config *c, const char *sql)
{
    (void)c;
    return sup_pg_int(&pg, pg_db, sql);
}

static const backend backends[] = {
    {"sqlite", sqlite_fresh, sqlite_sql,
     "SELECT count(*) FROM sqlite_master WHERE name IN ('avatars', 'schema_migrations')",
     "CREATE TRIGGER small_only BEFORE INSERT ON avatars WHEN NEW.bytes > 1000 "
     "BEGIN SELECT RAISE(ABORT, 'bytes over 1000'); END"},
    {"postgresql", pg_fresh, pg_sql,
     "SELECT count(*) FROM pg_tables WHERE tablename IN ('avatars', 'schema_migrations')",
     "ALTER TABLE avatars ADD CONSTRAINT small_only CHECK (bytes <= 1000)"},
};
#define NBACKENDS ((int)(sizeof backends / sizeof *backends))

/* ---- helpers ---- */

/* A row with every column set; variant changes every value. */
static void sample_row(meta_row *r, const char *id, int variant)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    memset(r->seed, 'a' + variant, sizeof r->seed - 1);   /* the longest seed: 256 bytes */
    snprintf(r->style, sizeof r->style, variant % 2 ? "gradient" : "pixel");
    snprintf(r->primary_color, sizeof r->primary_color, "#%06x", 0x102030 * (variant + 1));
    snprintf(r->foreign_color, sizeof r->foreign_color, "rebeccapurple");
    snprintf(r->scheme, sizeof r->scheme, variant % 2 ? "ocean" : "sunset");
    r->angle = 12.345678901234567 * (variant + 1);
    snprintf(r->filter, sizeof r->filter, variant % 2 ? "sepia" : "none");
    snprintf(r->sizes, sizeof r->sizes, "[32,%d]", 64 * (variant + 1));
    snprintf(r->storage, sizeof r->storage, variant % 2 ? "s3" : "local");
    snprintf(r->location, sizeof r->location, "/srv/avatars-%d", variant);
    size_t o = (size_t)snprintf(r->keys, sizeof r->keys, "{\"32\":\"avatars/%s/32.png\"", id);
    while (o < 8000)   /* a long JSON text, near the field's capacity */
        o += (size_t)snprintf(r->keys + o, sizeof r->keys - o, ",\"x%zu\":\"k\"", o);
    snprintf(r->keys + o, sizeof r->keys - o, "}");
    r->bytes = (int64_t)1 << 40 | variant;
    snprintf(r->sha256, sizeof r->sha256, "{\"32\":\"%064d\"}", variant);
    r->attempts = 1 + variant;
    snprintf(r->worker, sizeof r->worker, "host-%d:%d", variant, 4242 + variant);
    r->created_at = 1700000000000LL + variant;
    r->generated_at = 1700000000500LL + variant;
}

static void open_fresh(const backend *b, aq_config *c, meta *m)
{
    aq_err e = {0};
    b->fresh(c);
    int rc = meta_open(m, c, false, &e);
    ck_assert_msg(rc == 0, "%s open: %s", b->name, e.msg);
}

static void upsert_ok(meta *m, const meta_row *r)
{
    aq_err e = {0};
    int rc = meta_upsert(m, r, &e);
    ck_assert_msg(rc == 0, "upsert %s: %s", r->id, e.msg);
}

static int64_t count_rows(meta *m)
{
    aq_err e = {0};
    int64_t n = -1;
    int rc = meta_count(m, &n, &e);
    ck_assert_msg(rc == 0, "count: %s", e.msg);
    return n;
}

/* ---- the shared suite (loop index _i = backend) ---- */

START_TEST(upsert_twice_leaves_one_row_with_second_values)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    meta_row first, second, got;
    sample_row(&first, "user-42", 1);
    sample_row(&second, "user-42", 2);
    upsert_ok(&m, &first);
    upsert_ok(&m, &second);
    ck_assert_int_eq(count_rows(&m), 1);
    aq_err e = {0};
    ck_assert_int_eq(meta_get(&m, "user-42", &got, &e), 0);
    ck_assert_msg(memcmp(&got, &second, sizeof got) == 0, "%s: row differs from the second upsert",
                  b->name);
    ck_assert_int_eq(b->sql(&c, "SELECT count(*) FROM avatars WHERE id = 'user-42'"), 1);
    meta_close(&m);
}
END_TEST

START_TEST(get_absent_is_not_found)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    meta_row r;
    aq_err e = {0};
    ck_assert_int_eq(meta_get(&m, "nobody-here", &r, &e), AQ_ENOTFOUND);
    ck_assert_int_eq(e.code, AQ_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "nobody-here"));
    meta_close(&m);
}
END_TEST

START_TEST(delete_removes_and_absent_is_success)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    meta_row r, keep;
    sample_row(&r, "gone", 0);
    sample_row(&keep, "kept", 0);
    upsert_ok(&m, &r);
    upsert_ok(&m, &keep);
    aq_err e = {0};
    ck_assert_int_eq(meta_del(&m, "gone", &e), 0);
    ck_assert_int_eq(meta_get(&m, "gone", &r, &e), AQ_ENOTFOUND);
    ck_assert_int_eq(meta_del(&m, "gone", &e), 0);
    ck_assert_int_eq(count_rows(&m), 1);
    ck_assert_int_eq(meta_get(&m, "kept", &r, &e), 0);
    meta_close(&m);
}
END_TEST

typedef struct collect {
    char ids[64][65];
    int n, stop_after;
} collect;

static int collect_row(const meta_row *r, void *ud)
{
    collect *c = ud;
    ck_assert_int_lt(c->n, 64);
    snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", r->id);
    return c->stop_after && c->n >= c->stop_after;
}

START_TEST(list_pages_in_id_order)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    for (int i = 0; i < 25; i++) {   /* inserted out of order */
        meta_row r;
        char id[32];
        snprintf(id, sizeof id, "id-%02d", (i * 7) % 25);
        sample_row(&r, id, i % 3);
        upsert_ok(&m, &r);
    }
    ck_assert_int_eq(count_rows(&m), 25);
    collect all = {0};
    char after[65] = "";
    int pages[5], npages = 0;
    aq_err e = {0};
    for (;;) {
        int before = all.n;
        ck_assert_int_eq(meta_list(&m, after, 10, collect_row, &all, &e), 0);
        pages[npages++] = all.n - before;
        if (all.n == before)
            break;
        snprintf(after, sizeof after, "%s", all.ids[all.n - 1]);
        ck_assert_int_lt(npages, 5);
    }
    ck_assert_int_eq(npages, 4);
    ck_assert_int_eq(pages[0], 10);
    ck_assert_int_eq(pages[1], 10);
    ck_assert_int_eq(pages[2], 5);
    ck_assert_int_eq(pages[3], 0);
    for (int i = 0; i < 25; i++) {
        char want[16];
        snprintf(want, sizeof want, "id-%02d", i);
        ck_assert_str_eq(all.ids[i], want);
    }
    collect some = {.stop_after = 3};   /* fn returning non-zero stops */
    ck_assert_int_eq(meta_list(&m, "", 0, collect_row, &some, &e), 0);
    ck_assert_int_eq(some.n, 3);
    collect unlimited = {0};            /* limit 0: everything */
    ck_assert_int_eq(meta_list(&m, "id-20", 0, collect_row, &unlimited, &e), 0);
    ck_assert_int_eq(unlimited.n, 4);
    ck_assert_str_eq(unlimited.ids[0], "id-21");
    meta_close(&m);
}
END_TEST

START_TEST(every_column_round_trips_and_absent_values_are_null)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    meta_row full, bare, got;
    sample_row(&full, "full", 3);
    sample_row(&bare, "bare", 4);
    memset(bare.primary_color, 0, sizeof bare.primary_color);
    memset(bare.foreign_color, 0, sizeof bare.foreign_color);
    memset(bare.scheme, 0, sizeof bare.scheme);
    bare.angle = -1;
    upsert_ok(&m, &full);
    upsert_ok(&m, &bare);
    aq_err e = {0};
    ck_assert_int_eq(meta_get(&m, "full", &got, &e), 0);
    ck_assert_msg(memcmp(&got, &full, sizeof got) == 0, "%s: full row changed on the way", b->name);
    ck_assert(got.angle == full.angle);
    ck_assert_int_eq(got.bytes, full.bytes);
    ck_assert_int_eq(strlen(got.seed), 256);
    ck_assert_int_eq(meta_get(&m, "bare", &got, &e), 0);
    ck_assert_msg(memcmp(&got, &bare, sizeof got) == 0, "%s: bare row changed on the way", b->name);
    ck_assert(got.angle < 0);
    ck_assert_int_eq(b->sql(&c, "SELECT count(*) FROM avatars WHERE primary_color IS NULL AND "
                               "foreign_color IS NULL AND scheme IS NULL AND angle IS NULL"), 1);
    ck_assert_int_eq(b->sql(&c, "SELECT count(*) FROM avatars WHERE id = 'full' AND "
                               "primary_color IS NOT NULL AND angle IS NOT NULL"), 1);
    meta_close(&m);
}
END_TEST

START_TEST(migrations_are_recorded_once)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    meta_close(&m);
    aq_err e = {0};
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "reopen: %s", e.msg);   /* migrates again */
    ck_assert_msg(meta_check(&m, &e) == 0, "check: %s", e.msg);
    meta_close(&m);
    int n;
    const meta_migration *list = meta_migrations(&n);
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(b->sql(&c, "SELECT count(*) FROM schema_migrations"), n);
    ck_assert_int_eq(b->sql(&c, "SELECT count(DISTINCT version) FROM schema_migrations"), n);
    ck_assert_int_eq(b->sql(&c, "SELECT max(version) FROM schema_migrations"), list[n - 1].version);
    ck_assert_int_gt(b->sql(&c, "SELECT min(applied_at) FROM schema_migrations"), 1600000000000LL);
}
END_TEST

/* Runs meta_migrate into a string; returns it (free it). */
static char *migrate_text(meta *m, bool dry_run, int *rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    aq_err e = {0};
    *rc = meta_migrate(m, dry_run, f, &e);
    fclose(f);
    ck_assert_msg(*rc == 0, "migrate: %s", e.msg);
    return text;
}

START_TEST(dry_run_prints_pending_and_applies_nothing)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    aq_err e = {0};
    b->fresh(&c);
    ck_assert_msg(meta_open(&m, &c, true, &e) == 0, "open: %s", e.msg);
    ck_assert_int_ne(meta_check(&m, &e), 0);   /* not migrated yet */
    int rc;
    char *text = migrate_text(&m, true, &rc);
    ck_assert_ptr_nonnull(strstr(text, "-- migration 1: create avatars"));
    ck_assert_ptr_nonnull(strstr(text, "CREATE TABLE avatars"));
    ck_assert_ptr_nonnull(strstr(text, "-- migration 2: "));
    free(text);
    ck_assert_int_eq(b->sql(&c, b->tables_sql), 0);

    text = migrate_text(&m, false, &rc);
    ck_assert_ptr_nonnull(strstr(text, "applied migration 1: create avatars"));
    free(text);
    ck_assert_int_eq(b->sql(&c, b->tables_sql), 2);
    ck_assert_msg(meta_check(&m, &e) == 0, "check: %s", e.msg);
    text = migrate_text(&m, true, &rc);
    ck_assert_str_eq(text, "");   /* nothing pending */
    free(text);
    meta_close(&m);
}
END_TEST

/* Eight processes open one empty database at the same moment: each migrates
 * (or finds it done) without an error, and every version is recorded once. */
START_TEST(eight_processes_migrate_once)
{
    const backend *b = &backends[_i];
    aq_config c;
    b->fresh(&c);
    int gate[2];
    ck_assert_int_eq(pipe(gate), 0);
    pid_t kids[8];
    for (int k = 0; k < 8; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            char ch;
            close(gate[1]);
            if (read(gate[0], &ch, 1) < 0)   /* returns 0 when the parent opens the gate */
                _exit(3);
            meta m;
            aq_err e = {0};
            int rc = meta_open(&m, &c, false, &e);
            if (rc == 0) {
                meta_row r;
                char id[32];
                snprintf(id, sizeof id, "proc-%d", k);
                sample_row(&r, id, k);
                rc = meta_upsert(&m, &r, &e);
                meta_close(&m);
            }
            if (rc != 0)
                fprintf(stderr, "process %d: %s\n", k, e.msg);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    close(gate[0]);
    close(gate[1]);   /* all eight start now */
    for (int k = 0; k < 8; k++) {
        int st = sup_wait(kids[k], 60000);
        ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "%s: process %d failed (status %d)", b->name, k, st);
    }
    int n;
    meta_migrations(&n);
    ck_assert_int_eq(b->sql(&c, "SELECT count(*) FROM schema_migrations"), n);
    ck_assert_int_eq(b->sql(&c, "SELECT count(DISTINCT version) FROM schema_migrations"), n);
    ck_assert_int_eq(b->sql(&c, "SELECT count(*) FROM avatars"), 8);
}
END_TEST

/* A schema problem cannot pass by retrying: permanent. */
START_TEST(schema_error_is_permanent)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    meta_row r;
    sample_row(&r, "x", 0);
    upsert_ok(&m, &r);   /* the statement is prepared now */
    b->sql(&c, "DROP TABLE avatars");
    aq_err e = {0};
    ck_assert_int_eq(meta_upsert(&m, &r, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "avatars") != NULL, "message: %s", e.msg);
    ck_assert_ptr_nonnull(strstr(e.msg, "'x'"));
    ck_assert_int_ne(meta_check(&m, &e), 0);
    meta_close(&m);
}
END_TEST

/* A constraint violation cannot pass by retrying: permanent. */
START_TEST(constraint_violation_is_permanent)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    b->sql(&c, b->constraint_sql);
    meta_row r;
    sample_row(&r, "too-big", 0);   /* bytes is 2^40 */
    aq_err e = {0};
    ck_assert_int_eq(meta_upsert(&m, &r, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "too-big"), "message: %s", e.msg);
    r.bytes = 10;
    upsert_ok(&m, &r);
    ck_assert_int_eq(count_rows(&m), 1);
    meta_close(&m);
}
END_TEST

/* A row that breaks the struct's own rules never reaches the database. */
START_TEST(unterminated_field_is_refused)
{
    const backend *b = &backends[_i];
    aq_config c;
    meta m;
    open_fresh(b, &c, &m);
    meta_row r;
    sample_row(&r, "y", 0);
    memset(r.style, 'z', sizeof r.style);
    aq_err e = {0};
    ck_assert_int_eq(meta_upsert(&m, &r, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "style"));
    ck_assert_int_eq(count_rows(&m), 0);
    meta_close(&m);
}
END_TEST

/* ---- one backend only ---- */

START_TEST(unknown_backend_is_named)
{
    aq_config c;
    config_defaults(&c);
    snprintf(c.database.backend, sizeof c.database.backend, "mysql");
    meta m;
    aq_err e = {0};
    ck_assert_int_eq(meta_open(&m, &c, false, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "mysql"));
}
END_TEST

/* Only the configured backend is touched: SQLite never parses or dials the
 * PostgreSQL conninfo, PostgreSQL never creates the SQLite file. */
START_TEST(only_the_configured_backend_is_used)
{
    aq_config c;
    meta m;
    aq_err e = {0};
    sqlite_fresh(&c);
    snprintf(c.database.pg.conninfo, sizeof c.database.pg.conninfo, "this is = not a conninfo");
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "sqlite: %s", e.msg);
    meta_close(&m);
    pg_fresh(&c);
    snprintf(c.database.sqlite.path, sizeof c.database.sqlite.path, "%s/never/avatarq.db", tmp);
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "postgresql: %s", e.msg);
    meta_close(&m);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/never", tmp);
    ck_assert_int_ne(access(dir, F_OK), 0);
}
END_TEST

/* Another connection holds the write lock beyond the busy timeout: the
 * upsert gives up as transient, and works once the lock is gone. */
START_TEST(sqlite_busy_is_transient)
{
    aq_config c;
    meta m;
    open_fresh(&backends[0], &c, &m);
    sqlite3 *other;
    ck_assert_int_eq(sqlite3_open(c.database.sqlite.path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    meta_row r;
    sample_row(&r, "busy", 0);
    aq_err e = {0};
    ck_assert_int_eq(meta_upsert(&m, &r, &e), AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "locked") || strstr(e.msg, "busy"), "message: %s", e.msg);
    ck_assert_int_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    upsert_ok(&m, &r);
    meta_close(&m);
}
END_TEST

typedef struct ordered {
    int n;
    bool in_order;
    char last[65];
} ordered;

static int count_ordered(const meta_row *r, void *ud)
{
    ordered *o = ud;
    o->in_order = (o->n == 0 || strcmp(o->last, r->id) < 0) && (o->n == 0 || o->in_order);
    snprintf(o->last, sizeof o->last, "%s", r->id);
    o->n++;
    return 0;
}

/* 500 upserts with the server stopped and started twice: while it is down
 * calls fail as transient, after a restart while idle the next call just
 * works (it reconnects), and at the end there are exactly 500 rows. */
START_TEST(pg_restart_during_a_run)
{
    aq_config c;
    meta m;
    open_fresh(&backends[1], &c, &m);
    int eagain = 0;
    for (int i = 0; i < 500; i++) {
        if (i == 200) {
            sup_pg_stop(&pg);
            meta_row r;
            sample_row(&r, "while-down", 0);
            aq_err e = {0};
            ck_assert_int_eq(meta_upsert(&m, &r, &e), AQ_EAGAIN);
            ck_assert_ptr_null(strstr(e.msg, pg.password));
            sup_pg_restart(&pg);
        }
        if (i == 350) {   /* restart while idle: the next call reconnects by itself */
            sup_pg_stop(&pg);
            sup_pg_restart(&pg);
        }
        meta_row r;
        char id[32];
        snprintf(id, sizeof id, "job-%03d", i);
        sample_row(&r, id, i % 5);
        aq_err e = {0};
        int rc;
        for (int tries = 0; (rc = meta_upsert(&m, &r, &e)) == AQ_EAGAIN && tries < 300; tries++) {
            eagain++;
            sup_sleep_ms(100);
        }
        ck_assert_msg(rc == 0, "upsert %s: %s", id, e.msg);
    }
    fprintf(stderr, "pg restart run: %d transient answers while the server was away\n", eagain);
    ck_assert_int_eq(count_rows(&m), 500);
    ck_assert_int_eq(pg_sql(&c, "SELECT count(DISTINCT id) FROM avatars WHERE id LIKE 'job-%'"), 500);
    ck_assert_int_eq(pg_sql(&c, "SELECT count(*) FROM avatars WHERE id = 'while-down'"), 0);
    ordered o = {0};   /* an unlimited list pages internally: 500 rows, in order, once each */
    aq_err e = {0};
    ck_assert_int_eq(meta_list(&m, "", 0, count_ordered, &o, &e), 0);
    ck_assert_int_eq(o.n, 500);
    ck_assert(o.in_order);
    o = (ordered){0};
    ck_assert_int_eq(meta_list(&m, "job-100", 450, count_ordered, &o, &e), 0);
    ck_assert_int_eq(o.n, 399);
    ck_assert_str_eq(o.last, "job-499");
    meta_close(&m);
}
END_TEST

/* A statement that waits past statement_timeout (here the operator's own,
 * 300 ms, from the conninfo) fails as transient without losing the
 * connection, and works once the lock is gone. */
START_TEST(pg_statement_timeout_is_transient)
{
    aq_config c;
    meta m;
    pg_fresh(&c);
    size_t n = strlen(c.database.pg.conninfo);
    snprintf(c.database.pg.conninfo + n, sizeof c.database.pg.conninfo - n,
             " options='-c statement_timeout=300'");
    aq_err e = {0};
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "open: %s", e.msg);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s/psql' -X -q -h '%s' -p %d -U postgres -d %s -c "
             "'BEGIN; LOCK TABLE avatars; SELECT pg_sleep(4); COMMIT;' >/dev/null 2>&1 &",
             pg.bindir, pg.dir, pg.port, pg_db);
    ck_assert_int_eq(sup_run(cmd, NULL, false), 0);
    bool locked = false;
    for (int i = 0; i < 200 && !locked; i++) {
        locked = pg_sql(&c, "SELECT count(*) FROM pg_locks WHERE granted AND "
                            "relation = 'avatars'::regclass AND mode = 'AccessExclusiveLock'") == 1;
        if (!locked)
            sup_sleep_ms(20);
    }
    ck_assert_msg(locked, "the test lock was never taken");
    meta_row r;
    sample_row(&r, "waits", 0);
    ck_assert_int_eq(meta_upsert(&m, &r, &e), AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "57014"), "message: %s", e.msg);
    int rc;
    for (int tries = 0; (rc = meta_upsert(&m, &r, &e)) == AQ_EAGAIN && tries < 100; tries++)
        sup_sleep_ms(100);
    ck_assert_msg(rc == 0, "after the lock: %s", e.msg);
    ck_assert_int_eq(count_rows(&m), 1);
    meta_close(&m);
}
END_TEST

/* The server ends our session (an operator, a failover, a cut): the next
 * call reconnects by itself and works. */
START_TEST(pg_terminated_session_reconnects)
{
    aq_config c;
    meta m;
    open_fresh(&backends[1], &c, &m);
    meta_row r;
    sample_row(&r, "one", 0);
    upsert_ok(&m, &r);
    ck_assert_int_eq(pg_sql(&c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE application_name = 'avatarq'"), 1);
    sample_row(&r, "two", 0);
    aq_err e = {0};
    ck_assert_msg(meta_upsert(&m, &r, &e) == 0, "after the session ended: %s", e.msg);
    ck_assert_int_eq(count_rows(&m), 2);
    ck_assert_msg(meta_check(&m, &e) == 0, "check: %s", e.msg);
    meta_close(&m);
}
END_TEST

START_TEST(pg_idle_restart_is_invisible)
{
    aq_config c;
    meta m;
    open_fresh(&backends[1], &c, &m);
    meta_row r;
    sample_row(&r, "before", 0);
    upsert_ok(&m, &r);
    sup_pg_stop(&pg);
    sup_pg_restart(&pg);
    sample_row(&r, "after", 0);
    aq_err e = {0};
    ck_assert_msg(meta_upsert(&m, &r, &e) == 0, "first call after restart: %s", e.msg);
    ck_assert_int_eq(count_rows(&m), 2);
    meta_close(&m);
}
END_TEST

/* Open retries with backoff: a server that comes up while we wait is found;
 * with no retries and no server the failure is transient and says why. */
START_TEST(pg_open_waits_for_the_server)
{
    aq_config c;
    pg_fresh(&c);
    sup_pg_stop(&pg);
    meta m;
    aq_err e = {0};
    c.database.pg.retries = 0;
    ck_assert_int_eq(meta_open(&m, &c, false, &e), AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "connect"), "message: %s", e.msg);
    ck_assert_msg(!strstr(e.msg, pg.password), "message shows the password: %s", e.msg);
    pid_t starter = fork();
    ck_assert_int_ge(starter, 0);
    if (starter == 0) {
        sup_sleep_ms(300);
        sup_pg_restart(&pg);
        _exit(0);
    }
    c.database.pg.retries = 12;
    int rc = meta_open(&m, &c, false, &e);
    int st = sup_wait(starter, 60000);
    ck_assert_msg(rc == 0, "open while the server starts: %s", e.msg);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(count_rows(&m), 0);
    meta_close(&m);
}
END_TEST

static void expect_auth_failure(const char *conninfo, const char *secret)
{
    aq_config c;
    config_defaults(&c);
    snprintf(c.database.backend, sizeof c.database.backend, "postgresql");
    snprintf(c.database.pg.conninfo, sizeof c.database.pg.conninfo, "%s", conninfo);
    c.database.pg.retries = 3;
    meta m;
    aq_err e = {0};
    ck_assert_int_eq(meta_open(&m, &c, false, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "password authentication failed"), "message: %s", e.msg);
    ck_assert_msg(strstr(e.msg, pg.user), "message does not name the user: %s", e.msg);
    ck_assert_msg(!strstr(e.msg, secret), "message shows the password: %s", e.msg);
    ck_assert_msg(!strstr(e.msg, pg.password), "message shows a password: %s", e.msg);
    ck_assert_msg(!strstr(e.msg, "password="), "message echoes the conninfo: %s", e.msg);
}

START_TEST(pg_wrong_password_is_clear_and_secret)
{
    char ci[512];
    const char *secret = "Wr0ngSecret-4711";
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=%s user=%s password=%s", pg.port,
             pg.dbname, pg.user, secret);
    expect_auth_failure(ci, secret);
    snprintf(ci, sizeof ci, "postgresql://%s:%s@127.0.0.1:%d/%s", pg.user, secret, pg.port, pg.dbname);
    expect_auth_failure(ci, secret);
}
END_TEST

START_TEST(pg_bad_conninfo_does_not_echo_it)
{
    aq_config c;
    config_defaults(&c);
    snprintf(c.database.backend, sizeof c.database.backend, "postgresql");
    snprintf(c.database.pg.conninfo, sizeof c.database.pg.conninfo,
             "host=127.0.0.1 password=Hidden-Value-99 Hidden-Value-98");
    meta m;
    aq_err e = {0};
    ck_assert_int_eq(meta_open(&m, &c, false, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "conninfo"), "message: %s", e.msg);
    ck_assert_msg(!strstr(e.msg, "Hidden-Value"), "message echoes the conninfo: %s", e.msg);
}
END_TEST

START_TEST(pg_empty_conninfo_uses_environment)
{
    aq_config c;
    pg_fresh(&c);
    c.database.pg.conninfo[0] = '\0';
    char port[16];
    snprintf(port, sizeof port, "%d", pg.port);
    setenv("PGHOST", "127.0.0.1", 1);
    setenv("PGPORT", port, 1);
    setenv("PGUSER", pg.user, 1);
    setenv("PGPASSWORD", pg.password, 1);
    setenv("PGDATABASE", pg_db, 1);
    meta m;
    aq_err e = {0};
    ck_assert_msg(meta_open(&m, &c, false, &e) == 0, "open: %s", e.msg);
    ck_assert_int_eq(count_rows(&m), 0);
    meta_close(&m);
    ck_assert_int_eq(pg_sql(&c, "SELECT count(*) FROM schema_migrations"), meta_latest_version());
}
END_TEST

/* ---- fixtures and suite ---- */

static void suite_setup(void)
{
    sup_tmpdir(tmp, sizeof tmp);
    sup_pg_start(&pg);
}

static void suite_teardown(void)
{
    sup_pg_destroy(&pg);
    sup_rmtree(tmp);
}

int main(void)
{
    Suite *s = suite_create("meta");
    TCase *tc = tcase_create("both backends");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, upsert_twice_leaves_one_row_with_second_values, 0, NBACKENDS);
    tcase_add_loop_test(tc, get_absent_is_not_found, 0, NBACKENDS);
    tcase_add_loop_test(tc, delete_removes_and_absent_is_success, 0, NBACKENDS);
    tcase_add_loop_test(tc, list_pages_in_id_order, 0, NBACKENDS);
    tcase_add_loop_test(tc, every_column_round_trips_and_absent_values_are_null, 0, NBACKENDS);
    tcase_add_loop_test(tc, migrations_are_recorded_once, 0, NBACKENDS);
    tcase_add_loop_test(tc, dry_run_prints_pending_and_applies_nothing, 0, NBACKENDS);
    tcase_add_loop_test(tc, eight_processes_migrate_once, 0, NBACKENDS);
    tcase_add_loop_test(tc, schema_error_is_permanent, 0, NBACKENDS);
    tcase_add_loop_test(tc, constraint_violation_is_permanent, 0, NBACKENDS);
    tcase_add_loop_test(tc, unterminated_field_is_refused, 0, NBACKENDS);
    tcase_add_test(tc, unknown_backend_is_named);
    tcase_add_test(tc, only_the_configured_backend_is_used);
    tcase_add_test(tc, sqlite_busy_is_transient);
    tcase_add_test(tc, pg_wrong_password_is_clear_and_secret);
    tcase_add_test(tc, pg_bad_conninfo_does_not_echo_it);
    tcase_add_test(tc, pg_empty_conninfo_uses_environment);
    tcase_add_test(tc, pg_terminated_session_reconnects);
    tcase_add_test(tc, pg_statement_timeout_is_transient);
    /* Last: they stop and start the shared server. */
    tcase_add_test(tc, pg_open_waits_for_the_server);
    tcase_add_test(tc, pg_idle_restart_is_invisible);
    tcase_add_test(tc, pg_restart_during_a_run);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
