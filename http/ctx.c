/* ctx: each server thread's own Redis, database and storage handles.
 * libmicrohttpd calls a request's handler on the thread that owns its
 * connection, so a thread-local context needs no locking; the list of
 * contexts exists only so they can be freed at shutdown. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "pngenc.h"

static _Thread_local hctx *mine;
static hctx *all;
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* libmicrohttpd's threads end without telling us: a key's destructor runs
 * as each one exits and frees what the PNG encoder cached for the thread. */
static void on_thread_exit(void *unused)
{
    (void)unused;
    pngenc_release();
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
}

hctx *hctx_get(void)
{
    if (mine)
        return mine;
    hctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_once(&exit_once, make_exit_key);
    pthread_setspecific(exit_key, c);
    avatar_init(&c->av, NULL, NULL, "", "http");
    pthread_mutex_lock(&all_lock);
    c->next = all;
    all = c;
    pthread_mutex_unlock(&all_lock);
    return mine = c;
}

void hctx_free_all(void)
{
    pthread_mutex_lock(&all_lock);
    for (hctx *c = all, *next; c; c = next) {
        next = c->next;
        queue_close(c->q);
        if (c->db_open)
            meta_close(&c->db);
        if (c->store_open)
            storage_close(&c->store);
        avatar_free(&c->av);
        for (size_t i = 0; i < HTTP_FILE_SLOTS; i++)
            hctx_file_drop(&c->files[i]);
        free(c);
    }
    all = NULL;
    pthread_mutex_unlock(&all_lock);
}

queue *hctx_queue(hctx *c, aq_err *e)
{
    if (!c->q)
        c->q = queue_open(G.cfg, e);
    else if (queue_ensure(c->q, e) != 0)
        return NULL;
    return c->q;
}

meta *hctx_meta(hctx *c, aq_err *e)
{
    /* no migrations here: the workers and `avatarq migrate` own the schema */
    if (!c->db_open && meta_open(&c->db, G.cfg, true, e) == 0)
        c->db_open = true;
    return c->db_open ? &c->db : NULL;
}

storage *hctx_storage(hctx *c, aq_err *e)
{
    if (!c->store_open && storage_open(&c->store, G.cfg, e) == 0)
        c->store_open = true;
    return c->store_open ? &c->store : NULL;
}

void hctx_file_drop(http_file *f)
{
    /* MHD keeps a response (and its fd) alive while a send still uses it */
    if (f->ok)
        MHD_destroy_response(f->ok);
    if (f->not_modified)
        MHD_destroy_response(f->not_modified);
    memset(f, 0, sizeof *f);
}
