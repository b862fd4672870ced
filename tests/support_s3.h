/* Test support for S3: the signature-checking test server (tests/s3/server.js,
 * @20minutes/s3rver, keys S3RVER/S3RVER) on a free loopback port in a temp
 * dir, started with node from PATH; tests run from the repository root.
 *
 * Servers are killed by the kernel when the process that started them dies
 * (PR_SET_PDEATHSIG), so a test that fails inside Check's forked child never
 * leaves one behind; sup_s3 lives in shared memory, so a restart done in the
 * child is visible to a fixture in the parent (sup_s3_free). */
#ifndef AQ_TEST_SUPPORT_S3_H
#define AQ_TEST_SUPPORT_S3_H

#include <stdbool.h>
#include <sys/types.h>

#define SUP_S3_KEY "S3RVER"
#define SUP_S3_SECRET "S3RVER"
#define SUP_S3_REGION "us-east-1"

typedef struct sup_s3 {
    pid_t pid;           /* 0 when stopped */
    int port;
    char dir[256];       /* temp dir: data/ (objects) and server.log */
    char endpoint[64];   /* http://127.0.0.1:PORT */
    char bucket[64];
    char secret[64];     /* "" = SUP_S3_SECRET; else the secret the server
                            accepts for SUP_S3_KEY from its next (re)start */
    char tls_dir[256];   /* "" = http; else https with key.pem and cert.pem
                            from this dir (endpoint https://127.0.0.1:PORT) */
} sup_s3;

/* A zeroed sup_s3 in shared anonymous memory. */
sup_s3 *sup_s3_new(void);
/* Stops the server if running, removes its temp dir, unmaps s. */
void sup_s3_free(sup_s3 *s);

/* Starts the server with one bucket on a free port in a new temp dir and
 * waits until it accepts connections (s->secret and s->tls_dir, if set,
 * are kept). Aborts the test on failure. */
void sup_s3_start(sup_s3 *s, const char *bucket);
/* Starts it again on the same port and dir (after sup_s3_stop); waits. */
void sup_s3_restart(sup_s3 *s);
/* Returns at once; a helper process sleeps delay_ms, then becomes the
 * server on the same port and dir (s->pid is that helper). */
void sup_s3_restart_after(sup_s3 *s, int delay_ms);
/* Waits up to timeout_ms until the port accepts connections. */
bool sup_s3_wait_ready(const sup_s3 *s, int timeout_ms);
/* Stops the server by PID (SIGTERM, then SIGKILL), even when frozen. */
void sup_s3_stop(sup_s3 *s);
/* Writes a self-signed key.pem + cert.pem for 127.0.0.1 into dir (openssl). */
void sup_s3_make_cert(const char *dir);
/* SIGSTOP / SIGCONT: the port still accepts, nothing answers. */
void sup_s3_freeze(sup_s3 *s);
void sup_s3_thaw(sup_s3 *s);

#endif
