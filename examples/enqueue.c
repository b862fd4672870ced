/* enqueue: the smallest avatarq producer. Enqueues one avatar and prints its
 * id; with --wait, waits for the workers and prints where it was stored.
 *
 *   cc -o enqueue examples/enqueue.c $(pkg-config --cflags --libs avatarq)
 *   AVATARQ_REDIS_URL=redis://127.0.0.1:6379/0 ./enqueue user-42 gradient --wait
 *
 * The configuration is found as the avatarq programs find it (./config.ini,
 * /etc/avatarq/config.ini, AVATARQ_* environment variables). */
#include <avatarq.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s SEED [STYLE] [--wait]\n", argv[0]);
        return 2;
    }
    int wait = argc > 2 && strcmp(argv[argc - 1], "--wait") == 0;
    char err[512], id[65];
    avatarq *a = avatarq_open(NULL, err, sizeof err);
    if (!a) {
        fprintf(stderr, "enqueue: %s\n", err);
        return 1;
    }

    static const int sizes[] = {64, 256};
    avatarq_request r;
    avatarq_request_init(&r);            /* everything absent: the defaults */
    r.seed = argv[1];
    r.style = argc > 2 + wait ? argv[2] : NULL;
    r.sizes = sizes;
    r.nsizes = sizeof sizes / sizeof sizes[0];
    r.scheme = "ocean";
    int rc = avatarq_enqueue(a, &r, id, err, sizeof err);
    if (rc != AVATARQ_OK) {
        fprintf(stderr, "enqueue: %s (%s)\n", err, avatarq_code_name(rc));
        avatarq_close(a);
        return 1;
    }
    printf("%s\n", id);                  /* the same request always gets this id */

    if (wait) {
        avatarq_status st;
        rc = avatarq_wait(a, id, 60000, &st, err, sizeof err);
        if (rc == AVATARQ_OK)
            printf("%s after %d attempt(s): %s\n", st.state, st.attempts,
                   strcmp(st.state, "done") == 0 && st.outputs ? st.outputs : st.error);
        else
            fprintf(stderr, "enqueue: %s\n", err);
        if (rc == AVATARQ_OK || rc == AVATARQ_ETIMEDOUT)
            avatarq_status_free(&st);
    }
    avatarq_close(a);
    return rc == AVATARQ_OK ? 0 : 1;
}
