#include "support_pg.h"

#include <check.h>
#include <errno.h>
#include <glob.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "support.h"

/* PostgreSQL refuses to run as root: as root, run its programs as postgres. */
static const char *run_as(void)
{
    return geteuid() == 0 ? "runuser -u postgres -- " : "";
}

static bool file_exists(const char *path)
{
    return access(path, X_OK) == 0;
}

/* The directory holding initdb/pg_ctl/postgres: pg_config's answer, else the
 * newest /usr/lib/postgresql/N/bin. */
static bool find_bindir(char *out, size_t n)
{
    buf b = BUF_INIT;
    char probe[512];
    if (sup_run("pg_config --bindir 2>/dev/null", &b, false) == 0 && b.len) {
        snprintf(out, n, "%.*s", (int)strcspn((char *)b.data, "\n"), (char *)b.data);
        snprintf(probe, sizeof probe, "%s/postgres", out);
        if (file_exists(probe)) {
            buf_free(&b);
            return true;
        }
    }
    buf_free(&b);
    glob_t g;
    bool found = false;
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        const char *last = g.gl_pathv[g.gl_pathc - 1];
        snprintf(out, n, "%.*s", (int)(strlen(last) - strlen("/postgres")), last);
        found = true;
    }
    globfree(&g);
    return found;
}

bool sup_pg_available(void)
{
    char dir[256];
    return find_bindir(dir, sizeof dir);
}

/* Prints the end of a log file to stderr, to explain a failure. */
static void show_log(const char *path)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", path);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log at %s)\n", path);
}

static void pg_spawn(sup_pg *p)
{
    char cmd[2048], log[300];
    snprintf(log, sizeof log, "%s/server.log", p->dir);
    snprintf(cmd, sizeof cmd,
             "%s'%s/pg_ctl' -D '%s/data' -l '%s' -w -t 60 -o '-p %d -k %s "
             "-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60' start >/dev/null",
             run_as(), p->bindir, p->dir, log, p->port, p->dir);
    int rc = sup_run(cmd, NULL, true);
    if (rc != 0)
        show_log(log);
    ck_assert_msg(rc == 0, "pg_ctl start on port %d failed (exit %d)", p->port, rc);
}

void sup_pg_start(sup_pg *p)
{
    memset(p, 0, sizeof *p);
    ck_assert_msg(find_bindir(p->bindir, sizeof p->bindir), "no PostgreSQL server installed");
    sup_tmpdir(p->dir, sizeof p->dir);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        ck_assert_msg(pw != NULL, "no postgres user to run PostgreSQL as");
        ck_assert_int_eq(chown(p->dir, pw->pw_uid, pw->pw_gid), 0);
    }
    uint8_t rnd[8];
    ck_assert_int_eq(getrandom(rnd, sizeof rnd, 0), (ssize_t)sizeof rnd);
    snprintf(p->password, sizeof p->password, "pw%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(p->user, sizeof p->user, "aq_test");
    snprintf(p->dbname, sizeof p->dbname, "avatarq");

    char cmd[2048], log[300];
    snprintf(log, sizeof log, "%s/initdb.log", p->dir);
    snprintf(cmd, sizeof cmd,
             "%s'%s/initdb' -D '%s/data' -U postgres --auth-local=trust "
             "--auth-host=scram-sha-256 --no-sync --locale=C -E UTF8 --no-instructions >'%s' 2>&1",
             run_as(), p->bindir, p->dir, log);
    int rc = sup_run(cmd, NULL, true);
    if (rc != 0)
        show_log(log);
    ck_assert_msg(rc == 0, "initdb failed (exit %d)", rc);

    p->port = sup_free_port();
    pg_spawn(p);
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN PASSWORD '%s';\nCREATE DATABASE %s OWNER %s;",
             p->user, p->password, p->dbname, p->user);
    ck_assert_msg(sup_pg_sql(p, "postgres", NULL, sql) == 0, "creating the test role failed");
    snprintf(p->conninfo, sizeof p->conninfo, "host=127.0.0.1 port=%d dbname=%s user=%s password=%s",
             p->port, p->dbname, p->user, p->password);
}

static pid_t read_pid(const sup_pg *p)
{
    char path[300];
    snprintf(path, sizeof path, "%s/data/postmaster.pid", p->dir);
    return sup_read_pid(path);
}

/* Gone, or a zombie nobody reaps (pg_ctl detaches the server, and PID 1 in
 * a container may not reap orphans). */
static bool pid_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    bool zombie = false;
    if (fgets(line, sizeof line, f)) {
        char *rp = strrchr(line, ')');
        zombie = rp && rp[1] == ' ' && rp[2] == 'Z';
    }
    fclose(f);
    return zombie;
}

void sup_pg_stop(sup_pg *p)
{
    pid_t pid = p->dir[0] ? read_pid(p) : 0;
    if (pid <= 0)
        return;
    kill(pid, SIGINT);   /* fast shutdown: roll back, disconnect, exit */
    for (int waited = 0; waited < 30000; waited += 20) {
        if (pid_gone(pid))
            break;
        sup_sleep_ms(20);
    }
    if (!pid_gone(pid)) {
        kill(-pid, SIGKILL);   /* pg_ctl makes it a session and group leader */
        kill(pid, SIGKILL);
        for (int waited = 0; waited < 5000 && !pid_gone(pid); waited += 20)
            sup_sleep_ms(20);
    }
    /* Its backends leave right after it; wait until the file lock is free. */
    char path[300];
    snprintf(path, sizeof path, "%s/data/postmaster.pid", p->dir);
    for (int waited = 0; waited < 5000 && access(path, F_OK) == 0; waited += 20)
        sup_sleep_ms(20);
}

void sup_pg_restart(sup_pg *p)
{
    pg_spawn(p);
}

void sup_pg_destroy(sup_pg *p)
{
    if (!p->dir[0])
        return;
    sup_pg_stop(p);
    sup_rmtree(p->dir);
    p->dir[0] = '\0';
}

void sup_pg_createdb(const sup_pg *p, const char *name, char *out, size_t n)
{
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER %s;", name, p->user);
    ck_assert_msg(sup_pg_sql(p, "postgres", NULL, sql) == 0, "CREATE DATABASE %s failed", name);
    snprintf(out, n, "host=127.0.0.1 port=%d dbname=%s user=%s password=%s", p->port, name,
             p->user, p->password);
}

int sup_pg_sql(const sup_pg *p, const char *db, buf *out, const char *sql)
{
    char cmd[8192];
    /* SQL on stdin through a quoted here-document: no shell quoting to get wrong. */
    snprintf(cmd, sizeof cmd,
             "'%s/psql' -X -q -A -t -v ON_ERROR_STOP=1 -h '%s' -p %d -U postgres -d '%s' "
             "<<'AQ_SQL_END'\n%s\nAQ_SQL_END\n",
             p->bindir, p->dir, p->port, db && *db ? db : p->dbname, sql);
    return sup_run(cmd, out, out == NULL);
}

long long sup_pg_int(const sup_pg *p, const char *db, const char *sql)
{
    buf b = BUF_INIT;
    long long v = -1;
    if (sup_pg_sql(p, db, &b, sql) == 0 && b.len) {
        char *end;
        v = strtoll((char *)b.data, &end, 10);
        if (end == (char *)b.data)
            v = -1;
    }
    buf_free(&b);
    return v;
}
