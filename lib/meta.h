/* meta: avatar metadata, one row per avatar in table `avatars` (same schema
 * on every backend). A backend is a table of operations plus opaque state,
 * picked by name ([database] backend) from the table in meta.c. Schema
 * migrations are one versioned list (migrations.c) that every backend applies
 * and records in `schema_migrations`. One handle per process, opened after
 * fork. */
#ifndef AQ_META_H
#define AQ_META_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "error.h"

typedef struct meta_row {
    char id[65];
    char seed[257];
    char style[16];
    char primary_color[32];   /* "" stored as NULL */
    char foreign_color[32];
    char scheme[32];
    double angle;             /* < 0 stored as NULL */
    char filter[16];
    char format[8];           /* png | webp | svg (migration 3) */
    char sizes[256];          /* JSON array, e.g. [32,64] */
    char storage[8];          /* local | s3 */
    char location[PATH_MAX];  /* root or bucket */
    char keys[8192];          /* JSON object size -> key */
    int64_t bytes;            /* total over all sizes */
    char sha256[2048];        /* JSON object size -> hex digest */
    int attempts;
    char worker[128];
    int64_t created_at, generated_at;
} meta_row;

typedef struct meta_ops {
    const char *name;                                  /* "sqlite", "postgresql" */
    int (*open)(const aq_config *c, void **st, aq_err *e);
    /* Applies pending migrations (safe when many processes start at once).
     * With dry_run, prints what it would apply to out and changes nothing. */
    int (*migrate)(void *st, bool dry_run, FILE *out, aq_err *e);
    /* Insert or replace by id, in one transaction. */
    int (*upsert)(void *st, const meta_row *r, aq_err *e);
    /* AQ_ENOTFOUND when absent. */
    int (*get)(void *st, const char *id, meta_row *r, aq_err *e);
    /* Absent is success. */
    int (*del)(void *st, const char *id, aq_err *e);
    /* Calls fn for rows ordered by id, after `after` ("" = from the start),
     * at most limit (<= 0: no limit); fn returning non-zero stops. The order
     * is the database's collation of id (byte order on SQLite and on a
     * PostgreSQL database with the C collation). Returns 0 or AQ_E*. */
    int (*list)(void *st, const char *after, int limit,
                int (*fn)(const meta_row *r, void *ud), void *ud, aq_err *e);
    /* MAY be NULL. Groups the upserts that follow into one transaction:
     * META_BEGIN, then META_COMMIT (durable as one upsert would be) or
     * META_ROLLBACK. A backend that cannot keep a transaction across its own
     * reconnects leaves this NULL and upserts one by one. */
    int (*batch)(void *st, int op, aq_err *e);
    /* Number of rows. */
    int (*count)(void *st, int64_t *n, aq_err *e);
    /* Health: connected, schema current. */
    int (*check)(void *st, aq_err *e);
    void (*close)(void *st);
    /* Where c points this backend, secrets left out, into where (the file,
     * or USER@HOST:PORT/DB), and a caution for `health` into caution (""
     * when none). Needs no open backend. */
    void (*describe)(const aq_config *c, char *where, size_t wn, char *caution, size_t cn);
} meta_ops;

typedef struct meta {
    const meta_ops *ops;
    void *st;
} meta;

/* Opens the backend named by c->database.backend (only that one is
 * initialised) and, unless no_migrate, applies migrations. */
int meta_open(meta *m, const aq_config *c, bool no_migrate, aq_err *e);
void meta_close(meta *m);

int meta_migrate(meta *m, bool dry_run, FILE *out, aq_err *e);
int meta_upsert(meta *m, const meta_row *r, aq_err *e);

enum { META_BEGIN, META_COMMIT, META_ROLLBACK };
/* Upserts n rows, in one transaction where the backend can (one commit, one
 * fsync for the group), else one by one. rc[i] receives each row's result
 * (0 or AQ_E*, with its message in errs[i] when errs is not NULL); the
 * return value is 0 when every row landed. A failed group is retried row by
 * row, so one bad row never fails the others. */
int meta_upsert_many(meta *m, const meta_row *const *rows, size_t n, int *rc, aq_err *errs);
int meta_get(meta *m, const char *id, meta_row *r, aq_err *e);
int meta_del(meta *m, const char *id, aq_err *e);
int meta_list(meta *m, const char *after, int limit,
              int (*fn)(const meta_row *r, void *ud), void *ud, aq_err *e);
int meta_count(meta *m, int64_t *n, aq_err *e);
int meta_check(meta *m, aq_err *e);

const meta_ops *meta_find(const char *name);

/* The backends' names, ", "-separated ("sqlite, postgresql"), into out. */
void meta_names(char *out, size_t n);

/* The versioned migration list shared by every backend. */
typedef struct meta_migration {
    int version;
    const char *name;
    const char *sql;   /* portable SQL: runs on SQLite and PostgreSQL */
} meta_migration;
const meta_migration *meta_migrations(int *n);
/* The list never grows beyond this (backends size arrays with it). */
#define META_MIGRATIONS_MAX 64

/* ---- For backends (meta_sqlite.c, meta_pg.c): the one description of the
 * avatars columns, so both bind and read rows from the same table. ---- */
typedef enum meta_kind {
    META_TEXT,       /* char[], NOT NULL */
    META_TEXT_NULL,  /* char[], "" <-> NULL */
    META_REAL_NULL,  /* double, < 0 <-> NULL */
    META_INT64,      /* int64_t */
    META_INT,        /* int */
} meta_kind;

typedef struct meta_column {
    const char *name;
    meta_kind kind;
    size_t off;      /* offsetof(meta_row, field) */
    size_t size;     /* sizeof the field (text capacity, NUL included) */
} meta_column;

/* The avatars columns in table order; column 0 is id. */
const meta_column *meta_columns(int *n);

/* "INSERT INTO avatars (...) VALUES (...) ON CONFLICT (id) DO UPDATE SET ..."
 * with placeholders made by ph ("?%d" for SQLite, "$%d" for PostgreSQL),
 * numbered from 1 in column order. */
void meta_sql_upsert(char *out, size_t n, const char *ph);

/* "SELECT <every column> FROM avatars " followed by tail. */
void meta_sql_select(char *out, size_t n, const char *tail);

/* A query whose one value is the number of known migrations recorded, and
 * which fails when the avatars table cannot be read: the health check. */
void meta_sql_check(char *out, size_t n);

/* 0 when every text field of r is NUL-terminated within its size and id is
 * not empty; else AQ_EPERM naming the field. */
int meta_row_check(const meta_row *r, aq_err *e);

/* Prints one migration to out as runnable SQL: a "-- migration N: name"
 * comment line, the SQL and a ';'. */
void meta_migration_print(FILE *out, const meta_migration *m);

/* Prints "applied migration N: name" to out (may be NULL) for every
 * migration k with done[k]. */
void meta_report_applied(FILE *out, const bool *done);

/* The highest version in the migration list. */
int meta_latest_version(void);

#endif
