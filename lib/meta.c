/* meta: the backend table, the wrappers, and the column description both
 * backends bind and read rows with. */
#include "meta.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

extern const meta_ops meta_sqlite_ops;   /* meta_sqlite.c */
extern const meta_ops meta_pg_ops;       /* meta_pg.c */

/* Picked by name ([database] backend). Only the chosen backend's open() ever
 * runs, so a SQLite deployment never touches libpq and vice versa. */
static const meta_ops *const meta_backends[] = {
    &meta_sqlite_ops,
    &meta_pg_ops,
    NULL,
};

#define COL(field, kind) {#field, kind, offsetof(meta_row, field), sizeof ((meta_row *)0)->field}

static const meta_column meta_cols[] = {
    COL(id, META_TEXT),
    COL(seed, META_TEXT),
    COL(style, META_TEXT),
    COL(primary_color, META_TEXT_NULL),
    COL(foreign_color, META_TEXT_NULL),
    COL(scheme, META_TEXT_NULL),
    COL(angle, META_REAL_NULL),
    COL(filter, META_TEXT),
    COL(sizes, META_TEXT),
    COL(storage, META_TEXT),
    COL(location, META_TEXT),
    COL(keys, META_TEXT),
    COL(bytes, META_INT64),
    COL(sha256, META_TEXT),
    COL(attempts, META_INT),
    COL(worker, META_TEXT),
    COL(created_at, META_INT64),
    COL(generated_at, META_INT64),
    COL(format, META_TEXT),
};

const meta_column *meta_columns(int *n)
{
    *n = (int)(sizeof meta_cols / sizeof *meta_cols);
    return meta_cols;
}

/* Appends printf output at *o without ever overrunning n. */
__attribute__((format(printf, 4, 5)))
static void sql_add(char *out, size_t n, size_t *o, const char *fmt, ...)
{
    if (*o >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out + *o, n - *o, fmt, ap);
    va_end(ap);
    if (w > 0)
        *o += (size_t)w;
}

void meta_sql_upsert(char *out, size_t n, const char *ph)
{
    int nc;
    const meta_column *c = meta_columns(&nc);
    size_t o = 0;
    out[0] = '\0';
    sql_add(out, n, &o, "INSERT INTO avatars (");
    for (int i = 0; i < nc; i++)
        sql_add(out, n, &o, "%s%s", i ? ", " : "", c[i].name);
    sql_add(out, n, &o, ") VALUES (");
    for (int i = 0; i < nc; i++) {
        char p[16];
        snprintf(p, sizeof p, ph, i + 1);   /* ph is one of ours: "?%d" or "$%d" */
        sql_add(out, n, &o, "%s%s", i ? ", " : "", p);
    }
    sql_add(out, n, &o, ") ON CONFLICT (id) DO UPDATE SET ");
    for (int i = 1; i < nc; i++)
        sql_add(out, n, &o, "%s%s = excluded.%s", i > 1 ? ", " : "", c[i].name, c[i].name);
}

void meta_sql_select(char *out, size_t n, const char *tail)
{
    int nc;
    const meta_column *c = meta_columns(&nc);
    size_t o = 0;
    out[0] = '\0';
    sql_add(out, n, &o, "SELECT ");
    for (int i = 0; i < nc; i++)
        sql_add(out, n, &o, "%s%s", i ? ", " : "", c[i].name);
    sql_add(out, n, &o, " FROM avatars %s", tail);
}

void meta_sql_check(char *out, size_t n)
{
    snprintf(out, n, "SELECT (SELECT count(*) FROM schema_migrations WHERE version <= %d)"
             " + 0 * (SELECT count(*) FROM (SELECT 1 FROM avatars LIMIT 1) AS probe)",
             meta_latest_version());
}

int meta_row_check(const meta_row *r, aq_err *e)
{
    int nc;
    const meta_column *c = meta_columns(&nc);
    for (int i = 0; i < nc; i++) {
        if (c[i].kind != META_TEXT && c[i].kind != META_TEXT_NULL)
            continue;
        const char *s = (const char *)r + c[i].off;
        if (strnlen(s, c[i].size) == c[i].size)
            return err_set(e, AQ_EPERM, "metadata %s: not terminated within %zu bytes",
                           c[i].name, c[i].size);
    }
    if (!r->id[0])
        return err_set(e, AQ_EPERM, "metadata id: empty");
    return 0;
}

const meta_ops *meta_find(const char *name)
{
    for (size_t i = 0; name && meta_backends[i]; i++)
        if (strcmp(meta_backends[i]->name, name) == 0)
            return meta_backends[i];
    return NULL;
}

void meta_names(char *out, size_t n)
{
    size_t o = 0;
    if (n)
        out[0] = '\0';
    for (size_t i = 0; meta_backends[i] && o < n; i++) {
        int w = snprintf(out + o, n - o, "%s%s", i ? ", " : "", meta_backends[i]->name);
        o += w > 0 ? (size_t)w : 0;
    }
}

int meta_open(meta *m, const aq_config *c, bool no_migrate, aq_err *e)
{
    m->ops = NULL;
    m->st = NULL;
    const meta_ops *ops = meta_find(c->database.backend);
    if (!ops) {
        char names[128];
        meta_names(names, sizeof names);
        return err_set(e, AQ_EPERM, "[database] backend: unknown backend '%s' (%s)",
                       c->database.backend, names);
    }
    void *st = NULL;
    int rc = ops->open(c, &st, e);
    if (rc < 0)
        return rc;
    if (!no_migrate && (rc = ops->migrate(st, false, NULL, e)) < 0) {
        ops->close(st);
        return rc;
    }
    m->ops = ops;
    m->st = st;
    return 0;
}

void meta_close(meta *m)
{
    if (m && m->ops && m->st)
        m->ops->close(m->st);
    if (m) {
        m->ops = NULL;
        m->st = NULL;
    }
}

int meta_migrate(meta *m, bool dry_run, FILE *out, aq_err *e)
{
    return m->ops->migrate(m->st, dry_run, out, e);
}

int meta_upsert(meta *m, const meta_row *r, aq_err *e)
{
    int rc = meta_row_check(r, e);
    return rc < 0 ? rc : m->ops->upsert(m->st, r, e);
}

int meta_get(meta *m, const char *id, meta_row *r, aq_err *e)
{
    return m->ops->get(m->st, id, r, e);
}

int meta_del(meta *m, const char *id, aq_err *e)
{
    return m->ops->del(m->st, id, e);
}

int meta_list(meta *m, const char *after, int limit,
              int (*fn)(const meta_row *r, void *ud), void *ud, aq_err *e)
{
    return m->ops->list(m->st, after ? after : "", limit, fn, ud, e);
}

int meta_count(meta *m, int64_t *n, aq_err *e)
{
    return m->ops->count(m->st, n, e);
}

int meta_check(meta *m, aq_err *e)
{
    return m->ops->check(m->st, e);
}

static int upsert_each(meta *m, const meta_row *const *rows, size_t n, int *rc, aq_err *errs)
{
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        aq_err e = {0};
        rc[i] = meta_upsert(m, rows[i], &e);
        if (errs)
            errs[i] = e;
        if (rc[i] != 0 && first == 0)
            first = rc[i];
    }
    return first;
}

int meta_upsert_many(meta *m, const meta_row *const *rows, size_t n, int *rc, aq_err *errs)
{
    if (n == 0)
        return 0;
    if (n == 1 || !m->ops->batch)
        return upsert_each(m, rows, n, rc, errs);
    aq_err e = {0};
    if (m->ops->batch(m->st, META_BEGIN, &e) != 0)
        return upsert_each(m, rows, n, rc, errs);
    size_t i = 0;
    while (i < n && meta_upsert(m, rows[i], &e) == 0)
        i++;
    if (i == n && m->ops->batch(m->st, META_COMMIT, &e) == 0) {
        for (size_t k = 0; k < n; k++) {
            rc[k] = 0;
            if (errs)
                errs[k] = (aq_err){0};
        }
        return 0;
    }
    m->ops->batch(m->st, META_ROLLBACK, NULL);
    return upsert_each(m, rows, n, rc, errs);
}
