/* migrations: the one versioned schema list every metadata backend applies,
 * in order, recording each in schema_migrations(version, name, applied_at).
 *
 * Rules for adding one: append with the next version, never edit an applied
 * one; portable SQL only (TEXT, BIGINT, DOUBLE PRECISION, INTEGER; no
 * backend-specific types or functions) so SQLite and PostgreSQL run the same
 * text; one or more statements separated by ';'. The avatars columns must
 * match the table in meta.c (and docs/protocol.md "Results"). */
#include "meta.h"

#include <stdio.h>

static const meta_migration meta_migration_list[] = {
    {1, "create avatars",
     "CREATE TABLE avatars (\n"
     "    id TEXT PRIMARY KEY,\n"
     "    seed TEXT NOT NULL,\n"
     "    style TEXT NOT NULL,\n"
     "    primary_color TEXT,\n"
     "    foreign_color TEXT,\n"
     "    scheme TEXT,\n"
     "    angle DOUBLE PRECISION,\n"
     "    filter TEXT NOT NULL,\n"
     "    sizes TEXT NOT NULL,\n"
     "    storage TEXT NOT NULL,\n"
     "    location TEXT NOT NULL,\n"
     "    keys TEXT NOT NULL,\n"
     "    bytes BIGINT NOT NULL,\n"
     "    sha256 TEXT NOT NULL,\n"
     "    attempts INTEGER NOT NULL,\n"
     "    worker TEXT NOT NULL,\n"
     "    created_at BIGINT NOT NULL,\n"
     "    generated_at BIGINT NOT NULL\n"
     ")"},
    /* Operators ask "what was made lately" and "which avatars has this seed". */
    {2, "index avatars by generated_at and seed",
     "CREATE INDEX avatars_generated_at ON avatars (generated_at);\n"
     "CREATE INDEX avatars_seed ON avatars (seed)"},
    /* Issue 15: avatars may be PNG, WebP or SVG; rows from before are PNG. */
    {3, "record the format of avatars",
     "ALTER TABLE avatars ADD COLUMN format TEXT NOT NULL DEFAULT 'png'"},
};

const meta_migration *meta_migrations(int *n)
{
    *n = (int)(sizeof meta_migration_list / sizeof *meta_migration_list);
    return meta_migration_list;
}

int meta_latest_version(void)
{
    int n;
    const meta_migration *m = meta_migrations(&n);
    return n ? m[n - 1].version : 0;
}

void meta_migration_print(FILE *out, const meta_migration *m)
{
    fprintf(out, "-- migration %d: %s\n%s;\n\n", m->version, m->name, m->sql);
}

void meta_report_applied(FILE *out, const bool *done)
{
    int n;
    const meta_migration *m = meta_migrations(&n);
    for (int k = 0; out && k < n; k++)
        if (done[k])
            fprintf(out, "applied migration %d: %s\n", m[k].version, m[k].name);
}
