/* storage: the backend table, the thin wrappers every caller goes through,
 * and the key rule every backend shares. */
#include "storage.h"

#include <stdio.h>
#include <string.h>

/* Each backend lives in its own file and exports one ops table. */
extern const storage_ops storage_local_ops;
extern const storage_ops storage_s3_ops;   /* storage_s3.c */

/* Picked by name ([storage] backend). Add a backend with one line. */
static const storage_ops *const storage_backends[] = {
    &storage_local_ops,
    &storage_s3_ops,
    NULL,
};

/* Longest key we accept: S3's limit, and far below PATH_MAX. */
#define STORAGE_KEY_MAX 1024
/* Longest segment: NAME_MAX on every filesystem we care about. */
#define STORAGE_SEGMENT_MAX 255

const storage_ops *storage_find(const char *name)
{
    for (size_t i = 0; name && storage_backends[i]; i++)
        if (strcmp(storage_backends[i]->name, name) == 0)
            return storage_backends[i];
    return NULL;
}

void storage_names(char *out, size_t n)
{
    size_t o = 0;
    if (n)
        out[0] = '\0';
    for (size_t i = 0; storage_backends[i] && o < n; i++) {
        int w = snprintf(out + o, n - o, "%s%s", i ? ", " : "", storage_backends[i]->name);
        o += w > 0 ? (size_t)w : 0;
    }
}

/* Copies key into out for a message: printable ASCII as is, anything else as
 * \xNN, cut at a sane length, so a hostile key cannot mangle a log line. */
static const char *key_quote(const char *key, size_t len, char *out, size_t n)
{
    size_t o = 0, i = 0;
    for (; i < len && o + 8 < n; i++) {   /* room for \xNN, "..." and NUL */
        unsigned char ch = (unsigned char)key[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", ch);
    }
    if (i < len)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
    return out;
}

/* Why one segment (bytes [s, s+len) of a key) is unsafe, or NULL when fine. */
static const char *segment_problem(const char *s, size_t len)
{
    if (len == 0)
        return "has an empty segment";
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return "has a '.' or '..' segment";
    if (len > STORAGE_SEGMENT_MAX)
        return "has a segment longer than 255 bytes";
    return NULL;
}

int storage_key_check_len(const char *key, size_t len, aq_err *e)
{
    char q[160];
    if (!key)
        return err_set(e, AQ_EPERM, "storage key: missing");
    const char *why = NULL;
    if (len == 0)
        why = "is empty";
    else if (len > STORAGE_KEY_MAX)
        why = "is longer than 1024 bytes";
    else if (key[0] == '/')
        why = "is absolute";
    for (size_t i = 0; !why && i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch == '\0')
            why = "contains a NUL byte";
        else if (ch == '\\')
            why = "contains a backslash";
        else if (ch < 0x20 || ch == 0x7f)
            why = "contains a control character";
    }
    for (size_t start = 0; !why && start <= len;) {
        const char *slash = memchr(key + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - key) : len;
        why = segment_problem(key + start, end - start);
        start = end + 1;
    }
    if (why)
        return err_set(e, AQ_EPERM, "storage key \"%s\" %s", key_quote(key, len, q, sizeof q), why);
    return 0;
}

int storage_key_check(const char *key, aq_err *e)
{
    return storage_key_check_len(key, key ? strlen(key) : 0, e);
}

static int storage_attach(storage *s, const storage_ops *ops, int rc, void *st)
{
    if (rc < 0) {
        s->ops = NULL;
        s->st = NULL;
        return rc;
    }
    s->ops = ops;
    s->st = st;
    return 0;
}

int storage_open(storage *s, const aq_config *c, aq_err *e)
{
    const storage_ops *ops = storage_find(c->storage.backend);
    if (!ops) {
        char names[128];
        storage_names(names, sizeof names);
        s->ops = NULL;
        s->st = NULL;
        return err_set(e, AQ_EPERM, "[storage] backend: unknown backend '%s' (%s)",
                       c->storage.backend, names);
    }
    void *st = NULL;
    int rc = ops->open(c, &st, e);
    return storage_attach(s, ops, rc, st);
}

int storage_open_more(storage *s, const aq_config *c, aq_err *e)
{
    const storage_ops *ops = storage_find(c->storage.backend);
    if (!ops || !ops->open_more)
        return storage_open(s, c, e);
    void *st = NULL;
    int rc = ops->open_more(c, &st, e);
    return storage_attach(s, ops, rc, st);
}

int storage_open_local(storage *s, const char *root, bool fsync, aq_err *e)
{
    void *st = NULL;
    int rc = storage_local_open_root(root, fsync, &st, e);
    return storage_attach(s, &storage_local_ops, rc, st);
}

void storage_close(storage *s)
{
    if (s && s->ops && s->st)
        s->ops->close(s->st);
    if (s) {
        s->ops = NULL;
        s->st = NULL;
    }
}

int storage_put(storage *s, const char *key, const void *data, size_t len,
                const char *content_type, aq_err *e)
{
    int rc = storage_key_check(key, e);
    return rc < 0 ? rc : s->ops->put(s->st, key, data, len, content_type, e);
}

int storage_put_many(storage *s, const storage_item *items, size_t n, size_t *failed, aq_err *e)
{
    for (size_t i = 0; i < n; i++) {
        *failed = i;
        int rc = storage_key_check(items[i].key, e);
        if (rc < 0)
            return rc;
    }
    if (s->ops->put_many)
        return s->ops->put_many(s->st, items, n, failed, e);
    for (size_t i = 0; i < n; i++) {
        *failed = i;
        const storage_item *it = &items[i];
        int rc = s->ops->put(s->st, it->key, it->data, it->len, it->content_type, e);
        if (rc)
            return rc;
    }
    return 0;
}

int storage_get(storage *s, const char *key, buf *out, aq_err *e)
{
    int rc = storage_key_check(key, e);
    return rc < 0 ? rc : s->ops->get(s->st, key, out, e);
}

int storage_del(storage *s, const char *key, aq_err *e)
{
    int rc = storage_key_check(key, e);
    return rc < 0 ? rc : s->ops->del(s->st, key, e);
}

int storage_check(storage *s, aq_err *e)
{
    return s->ops->check(s->st, e);
}

const char *storage_location(storage *s)
{
    return s->ops->location(s->st);
}

const char *storage_name(storage *s)
{
    return s->ops->name;
}
