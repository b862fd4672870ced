/* Metadata throughput through one handle, as one worker process sees it:
 * upserts of new rows, upserts over existing rows (a retried job), and gets,
 * on SQLite (a temp file, WAL, synchronous NORMAL and FULL) and on PostgreSQL
 * (AQ_BENCH_PG_CONNINFO; "skipped: no PostgreSQL" when unset). Prints
 * figures, never pass/fail. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "meta.h"
#include "retry.h"

/* A realistic row: five sizes, their keys and digests. */
static void bench_row(meta_row *r, const char *id, int i)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->seed, sizeof r->seed, "user-%d@example.com", i);
    snprintf(r->style, sizeof r->style, "pixel");
    snprintf(r->scheme, sizeof r->scheme, "ocean");
    r->angle = -1;
    snprintf(r->filter, sizeof r->filter, "none");
    snprintf(r->sizes, sizeof r->sizes, "[32,64,128,256,512]");
    snprintf(r->storage, sizeof r->storage, "local");
    snprintf(r->location, sizeof r->location, "/var/lib/avatarq/avatars");
    size_t o = 0, so = 0;
    static const int sizes[] = {32, 64, 128, 256, 512};
    o += (size_t)snprintf(r->keys + o, sizeof r->keys - o, "{");
    so += (size_t)snprintf(r->sha256 + so, sizeof r->sha256 - so, "{");
    for (int k = 0; k < 5; k++) {
        o += (size_t)snprintf(r->keys + o, sizeof r->keys - o, "%s\"%d\":\"avatars/%s/%d.png\"",
                              k ? "," : "", sizes[k], id, sizes[k]);
        so += (size_t)snprintf(r->sha256 + so, sizeof r->sha256 - so, "%s\"%d\":\"%064x\"",
                               k ? "," : "", sizes[k], i + k);
    }
    snprintf(r->keys + o, sizeof r->keys - o, "}");
    snprintf(r->sha256 + so, sizeof r->sha256 - so, "}");
    r->bytes = 4096 + i % 1000;
    r->attempts = 1;
    snprintf(r->worker, sizeof r->worker, "bench:%d", (int)getpid());
    r->created_at = now_ms();
    r->generated_at = r->created_at + 3;
}

typedef enum { OP_INSERT, OP_UPDATE, OP_GET } bench_op;

/* Runs n operations of one kind; prints the rate. Returns 0 or -1. */
static int bench_phase(meta *m, const char *backend, bench_op op, int n)
{
    static const char *const what[] = {"upserts (new rows)", "upserts (existing rows)", "gets"};
    meta_row *r = malloc(sizeof *r);
    if (!r)
        return -1;
    aq_err e = {0};
    int64_t t0 = mono_ms();
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "bench-%d-%d", (int)getpid(), i);
        int rc;
        if (op == OP_GET) {
            rc = meta_get(m, id, r, &e);
        } else {
            bench_row(r, id, i + (op == OP_UPDATE));
            rc = meta_upsert(m, r, &e);
        }
        if (rc != 0) {
            printf("%s: %s failed at %d: %s\n", backend, what[op], i, e.msg);
            free(r);
            return -1;
        }
    }
    int64_t ms = mono_ms() - t0;
    printf("%-14s %-26s %7d in %6.2f s: %9.0f/s, %7.1f us each\n", backend, what[op], n,
           ms / 1000.0, ms > 0 ? n * 1000.0 / ms : 0.0, ms * 1000.0 / n);
    free(r);
    return 0;
}

/* Removes the rows this run added (the PostgreSQL database is shared). */
static void bench_cleanup(meta *m, int n)
{
    aq_err e = {0};
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "bench-%d-%d", (int)getpid(), i);
        meta_del(m, id, &e);
    }
}

static void bench_backend(const aq_config *c, const char *backend, int n)
{
    meta m;
    aq_err e = {0};
    int64_t t0 = mono_ms();
    if (meta_open(&m, c, false, &e) != 0) {
        printf("%s: open failed: %s\n", backend, e.msg);
        return;
    }
    printf("%-14s open + migrate: %lld ms\n", backend, (long long)(mono_ms() - t0));
    if (bench_phase(&m, backend, OP_INSERT, n) == 0 && bench_phase(&m, backend, OP_UPDATE, n) == 0)
        bench_phase(&m, backend, OP_GET, n);
    bench_cleanup(&m, n);
    meta_close(&m);
}

int main(void)
{
    aq_config c;
    config_defaults(&c);

    /* SQLite's durability follows [storage.local] fsync: FULL with it,
     * NORMAL without; measure both. */
    static const struct { bool fsync; const char *label; int n; } modes[] = {
        {false, "sqlite/NORMAL", 20000},
        {true, "sqlite/FULL", 5000},
    };
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        char dir[] = "/tmp/avatarq-bench-meta-XXXXXX";
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(c.database.backend, sizeof c.database.backend, "sqlite");
        snprintf(c.database.sqlite.path, sizeof c.database.sqlite.path, "%s/avatarq.db", dir);
        c.storage.local.fsync = modes[i].fsync;
        bench_backend(&c, modes[i].label, modes[i].n);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }

    const char *ci = getenv("AQ_BENCH_PG_CONNINFO");
    if (!ci || !*ci) {
        printf("postgresql skipped: no PostgreSQL (AQ_BENCH_PG_CONNINFO unset)\n");
        return 0;
    }
    snprintf(c.database.backend, sizeof c.database.backend, "postgresql");
    snprintf(c.database.pg.conninfo, sizeof c.database.pg.conninfo, "%s", ci);
    bench_backend(&c, "postgresql", 5000);
    return 0;
}
