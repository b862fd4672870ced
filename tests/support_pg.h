/* Test support for PostgreSQL: a throwaway cluster of our own (initdb into a
 * temp dir, pg_ctl start on a free port on 127.0.0.1, socket in that dir),
 * with a database and a password-authenticated role for the code under test
 * (host connections use scram-sha-256, so a wrong password really fails),
 * stopped by the PID in postmaster.pid. PostgreSQL refuses to run as root:
 * as root everything runs as the `postgres` user. Nothing is cached between
 * test binaries. The server is detached (pg_ctl), so any process, such as a
 * forked Check test, may restart or stop it. */
#ifndef AQ_TEST_SUPPORT_PG_H
#define AQ_TEST_SUPPORT_PG_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"

typedef struct sup_pg {
    int port;
    char dir[256];       /* temp dir: socket, log; data in dir/data */
    char bindir[256];    /* initdb, pg_ctl, psql */
    char user[32];       /* the role for the code under test */
    char password[64];   /* its password (random per cluster) */
    char dbname[64];     /* its database */
    char conninfo[512];  /* host=127.0.0.1 port=P dbname=D user=U password=W */
} sup_pg;

/* True when a PostgreSQL server binary can be found. */
bool sup_pg_available(void);

/* initdb + start + role + database "avatarq". Aborts the test on failure. */
void sup_pg_start(sup_pg *p);
/* Fast shutdown of the running server (by PID), waiting until it is gone;
 * SIGKILL after 30 s. Keeps the data. */
void sup_pg_stop(sup_pg *p);
/* Starts it again on the same port and data (after sup_pg_stop). */
void sup_pg_restart(sup_pg *p);
/* Stops it and removes its directory. */
void sup_pg_destroy(sup_pg *p);

/* Creates a fresh empty database owned by the role and writes a conninfo for
 * it into out. */
void sup_pg_createdb(const sup_pg *p, const char *name, char *out, size_t n);

/* Runs SQL as the superuser on database db ("" = the default one) with psql
 * (unaligned, tuples only); output into out (may be NULL). Returns the exit
 * status. */
int sup_pg_sql(const sup_pg *p, const char *db, buf *out, const char *sql);
/* The first value of a query's output as an integer (-1 on failure). */
long long sup_pg_int(const sup_pg *p, const char *db, const char *sql);

#endif
