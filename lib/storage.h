/* storage: where PNGs go. A backend is a table of operations plus opaque
 * state, picked by name ([storage] backend) from the table in storage.c.
 * Keys are relative ("avatars/ID/64.png"); a key with "..", a leading "/",
 * a NUL, or an empty segment is refused (AQ_EPERM) by every backend, and so
 * are "." segments, backslashes, control characters, keys over 1024 bytes
 * and segments over 255 (storage_key_check). */
#ifndef AQ_STORAGE_H
#define AQ_STORAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "error.h"

/* One object for storage_put_many. */
typedef struct storage_item {
    const char *key;
    const void *data;
    size_t len;
    const char *content_type;
} storage_item;

typedef struct storage_ops {
    const char *name;                              /* "local", "s3" */
    int (*open)(const aq_config *c, void **st, aq_err *e);
    /* MAY be NULL (then open is used): one more handle on the store an open
     * handle already reaches, for another thread, without open's start-up
     * checks (a worker opens one per job thread). */
    int (*open_more)(const aq_config *c, void **st, aq_err *e);
    /* Stores data whole or not at all (temp + rename / checksummed upload). */
    int (*put)(void *st, const char *key, const void *data, size_t len,
               const char *content_type, aq_err *e);
    /* MAY be NULL (then put is called for each item in turn): stores the n
     * items as put does each, possibly at the same time (S3 uploads them in
     * parallel: one wait for the round trip instead of n). On failure sets
     * *failed to the item e describes; others may have been stored. */
    int (*put_many)(void *st, const storage_item *items, size_t n, size_t *failed, aq_err *e);
    /* Appends the object's bytes to out; AQ_ENOTFOUND when absent. */
    int (*get)(void *st, const char *key, buf *out, aq_err *e);
    /* Removes the object; absent is success. */
    int (*del)(void *st, const char *key, aq_err *e);
    /* Health: the root/bucket is reachable and writable with our credentials. */
    int (*check)(void *st, aq_err *e);
    /* Where objects live: the local root or the bucket name. */
    const char *(*location)(void *st);
    void (*close)(void *st);
    /* Where c points this backend, secrets left out, into where ("ROOT",
     * "ENDPOINT bucket=NAME"), and a caution for `health` into caution (""
     * when none). Needs no open backend. */
    void (*describe)(const aq_config *c, char *where, size_t wn, char *caution, size_t cn);
    /* Keys of [storage.NAME] that must not be empty for this backend (NULL-
     * terminated; NULL for none): config validation names them. */
    const char *const *required;
} storage_ops;

typedef struct storage {
    const storage_ops *ops;
    void *st;
} storage;

/* Opens the backend named by c->storage.backend. Returns 0 or an AQ_E* code. */
int storage_open(storage *s, const aq_config *c, aq_err *e);
/* One more handle on the store that storage_open already reached (a handle
 * per thread), without the start-up checks it made. */
int storage_open_more(storage *s, const aq_config *c, aq_err *e);

/* Opens local storage at root directly (for `avatarq render -d DIR`). */
int storage_open_local(storage *s, const char *root, bool fsync, aq_err *e);

void storage_close(storage *s);

/* Thin wrappers over s->ops. */
int storage_put(storage *s, const char *key, const void *data, size_t len,
                const char *content_type, aq_err *e);
/* Stores the n items, each whole or not at all, through the backend's
 * put_many when it has one (in parallel), else one put after another.
 * Every key is checked before anything is sent. Returns 0, or an AQ_E*
 * code with *failed the index of the item e describes (others may have
 * been stored). */
int storage_put_many(storage *s, const storage_item *items, size_t n, size_t *failed, aq_err *e);
int storage_get(storage *s, const char *key, buf *out, aq_err *e);
int storage_del(storage *s, const char *key, aq_err *e);
int storage_check(storage *s, aq_err *e);
const char *storage_location(storage *s);
const char *storage_name(storage *s);

/* Returns 0 when key is a safe relative key, else AQ_EPERM naming it. */
int storage_key_check(const char *key, aq_err *e);

/* storage_key_check for a key of len bytes that may hold NUL bytes (a key
 * taken from JSON or the network): an embedded NUL is refused too. */
int storage_key_check_len(const char *key, size_t len, aq_err *e);

/* The local backend's open, without a config (storage_local.c); *st is for
 * storage_local_ops. Creates root (and parents) with mode 0755 minus the
 * umask; files get 0644 and directories 0755, minus the umask. */
int storage_local_open_root(const char *root, bool fsync, void **st, aq_err *e);

/* storage_local_open_root with the modes of new files and directories
 * ([storage.local] file_mode, dir_mode); the process umask is taken off. */
int storage_local_open_modes(const char *root, bool fsync, int file_mode, int dir_mode,
                             void **st, aq_err *e);

/* The "host" part of local storage's temporary names: FNV-1a of the host
 * name and the PID namespace (a writer with another tag is never judged by
 * its PID). */
uint32_t storage_local_host_tag(void);

/* Looks a backend up by name; NULL when unknown. */
const storage_ops *storage_find(const char *name);

/* The backends' names, ", "-separated ("local, s3"), into out. */
void storage_names(char *out, size_t n);

#endif
