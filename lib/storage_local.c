/* storage_local: objects are files below [storage.local] root.
 *
 * Every path is walked from an open descriptor of root one segment at a time
 * with openat(O_NOFOLLOW | O_DIRECTORY), so no symlink inside root is ever
 * followed (not only the last one) and a key cannot name anything outside
 * root even if someone plants a link. A put writes a unique temporary file in
 * the target's directory, optionally fsyncs it, renames it over the target
 * and optionally fsyncs the directory: readers see the old file or the new
 * one, never a part.
 *
 * A writer killed between create and rename (SIGKILL, OOM, power) leaves
 * its temporary file behind. Temporary names are ".LEAF.tmp-HOST-PID-NONCE-
 * SEQ" (HOST: FNV-1a of the host name, all hex but PID), so the next put
 * into that directory from a process that did not just create it removes
 * the ones whose writer is gone: same host and no such PID, or another host
 * and untouched for an hour. Nothing else is ever removed.
 *
 * Failures are classified by errno (table below): running out of space or
 * descriptors, I/O errors and races with a concurrent delete may pass and are
 * transient; permissions, a read-only filesystem, a symlink or a file where a
 * directory should be, and anything we do not recognise are permanent, since
 * retrying what we do not understand only delays the dead letter. */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Largest object get() reads: far above any avatar, bounds memory per job. */
#define LOCAL_GET_MAX (64u * 1024 * 1024)
/* How often put() starts again when a concurrent delete removed its directory. */
#define LOCAL_PUT_TRIES 3
/* A temporary file of another host's writer is abandoned after this long. */
#define LOCAL_STALE_S 3600

typedef struct local_st {
    char root[PATH_MAX]; /* absolute, as reported by location() */
    int root_fd;
    bool fsync;
    mode_t file_mode;    /* new files: [storage.local] file_mode minus umask */
    mode_t dir_mode;     /* new directories: dir_mode minus umask */
    uint32_t host;       /* FNV-1a of the host name, in temp names */
    uint32_t nonce;      /* random per open: temp names unique across hosts */
    unsigned long seq;   /* and per put within this process */
    pid_t pid;           /* ours, in temp names (a handle is opened after fork) */
    char fresh[PATH_MAX]; /* the directory (key prefix) this handle created
                             last: nothing stale can be in it */
} local_st;

/* errno values that may pass on their own; everything else is permanent. */
static const int local_transient_errnos[] = {
    ENOSPC, EDQUOT, EIO, EAGAIN, EINTR, ENOMEM, EMFILE, ENFILE,
    EBUSY, ETIMEDOUT, ESTALE, ENOENT,
};

static int local_errno_code(int err)
{
    for (size_t i = 0; i < sizeof local_transient_errnos / sizeof *local_transient_errnos; i++)
        if (local_transient_errnos[i] == err)
            return AQ_EAGAIN;
    return AQ_EPERM;
}

static int local_fail(const local_st *s, aq_err *e, int err, const char *op,
                      const char *key, const char *what)
{
    if (err == ELOOP || err == ENOTDIR)
        return err_set(e, AQ_EPERM, "local storage %s: %s %s: %s: a symlink or non-directory "
                       "is in the way (symlinks are never followed)", s->root, op, key, what);
    return err_set(e, local_errno_code(err), "local storage %s: %s %s: %s: %s", s->root, op,
                   key, what, strerror(err));
}

static void local_close_dir(const local_st *s, int fd)
{
    if (fd >= 0 && fd != s->root_fd)
        close(fd);
}

/* Opens directory name below dfd without following a symlink; with create,
 * makes it first when missing (s->dir_mode, entry made durable when fsync). */
static int local_open_dir(const local_st *s, int dfd, const char *name, bool create,
                          bool *created)
{
    *created = false;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT || !create)
        return fd;
    if (mkdirat(dfd, name, s->dir_mode) == 0)
        *created = true;
    else if (errno != EEXIST)   /* EEXIST: another process made it meanwhile */
        return -1;
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (*created)
        fchmod(fd, s->dir_mode);   /* the configured mode minus the umask, nothing wider */
    if (*created && s->fsync && fsync(dfd) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Walks to the directory that holds key's last segment. Returns its fd (close
 * with local_close_dir) and points *leaf at the last segment; with parent,
 * also keeps the fd of the directory above it (or -1) and its name in dirname;
 * with fresh, tells whether that directory was made by this walk.
 * On failure returns -1 with errno set. key must have passed the key check. */
static int local_walk(const local_st *s, const char *key, bool create, const char **leaf,
                      int *parent, char dirname[NAME_MAX + 1], bool *fresh)
{
    int dfd = s->root_fd;
    bool created = false;
    if (parent)
        *parent = -1;
    const char *seg = key;
    for (const char *slash; (slash = strchr(seg, '/')) != NULL; seg = slash + 1) {
        char name[NAME_MAX + 1];
        size_t n = (size_t)(slash - seg);
        memcpy(name, seg, n);
        name[n] = '\0';
        int fd = local_open_dir(s, dfd, name, create, &created);
        if (fd < 0) {
            int err = errno;
            local_close_dir(s, dfd);
            if (parent)
                local_close_dir(s, *parent), *parent = -1;
            errno = err;
            return -1;
        }
        if (parent) {
            local_close_dir(s, *parent);
            *parent = dfd;
            memcpy(dirname, name, n + 1);
        } else {
            local_close_dir(s, dfd);
        }
        dfd = fd;
    }
    *leaf = seg;
    if (fresh)
        *fresh = created;
    return dfd;
}

static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Creates a fresh temporary file beside leaf in dfd; name receives its name. */
static int local_temp_open(local_st *s, int dfd, const char *leaf, char *name, size_t n)
{
    for (int tries = 0; tries < 8; tries++) {
        snprintf(name, n, ".%.100s.tmp-%08x-%ld-%08x-%lu", leaf, s->host, (long)s->pid, s->nonce,
                 ++s->seq);
        /* file_mode has the umask taken off already, so the kernel taking
         * it off again gives exactly file_mode: no fchmod needed */
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        s->file_mode);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Whether name in dfd is a temporary file whose writer is gone. */
static bool local_temp_stale(const local_st *s, int dfd, const char *name)
{
    const char *t = NULL;
    if (name[0] != '.')
        return false;
    for (const char *p = name; (p = strstr(p, ".tmp-")) != NULL; p++)
        t = p;   /* the last ".tmp-": a leaf may contain one too */
    unsigned host, nonce;
    long pid;
    unsigned long seq;
    int end = 0;
    if (!t || sscanf(t, ".tmp-%8x-%ld-%8x-%lu%n", &host, &pid, &nonce, &seq, &end) != 4 || t[end])
        return false;
    if (host == s->host)
        return pid > 0 && pid != s->pid && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
    struct stat sb;   /* another host's writer: we cannot ask, so wait long */
    return fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
           time(NULL) - sb.st_mtime > LOCAL_STALE_S;
}

/* Removes abandoned temporary files from directory dfd (key's directory,
 * dir_len bytes of it), unless this handle made it (fresh, or the last one
 * it made): then there can be none. Told apart by name, with no system
 * call: a directory removed and made again by another process meanwhile
 * keeps its strays until another writer sweeps it. */
static void local_sweep(local_st *s, int dfd, const char *key, size_t dir_len, bool fresh)
{
    if (dir_len >= sizeof s->fresh)
        fresh = false;
    if (fresh) {
        memcpy(s->fresh, key, dir_len);
        s->fresh[dir_len] = '\0';
        return;
    }
    if (strlen(s->fresh) == dir_len && memcmp(s->fresh, key, dir_len) == 0)
        return;
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (de->d_type != DT_DIR && local_temp_stale(s, dfd, de->d_name))
            unlinkat(dfd, de->d_name, 0);
    closedir(d);
}

/* One attempt at put; *raced is set when a directory vanished under us (a
 * delete of the same id removed it), which is worth starting over for. */
static int local_put_once(local_st *s, const char *key, const void *data, size_t len,
                          bool *raced, aq_err *e)
{
    const char *leaf;
    bool fresh = false;
    *raced = false;
    int dfd = local_walk(s, key, true, &leaf, NULL, NULL, &fresh);
    if (dfd < 0) {
        *raced = errno == ENOENT;
        return local_fail(s, e, errno, "put", key, "mkdir");
    }
    local_sweep(s, dfd, key, (size_t)(leaf - key), fresh);
    char tmp[NAME_MAX + 1];
    int fd = local_temp_open(s, dfd, leaf, tmp, sizeof tmp);
    if (fd < 0) {
        int err = errno;
        local_close_dir(s, dfd);
        *raced = err == ENOENT;
        return local_fail(s, e, err, "put", key, "create temporary file");
    }
    const char *step = NULL;
    if (write_all(fd, data, len) < 0)
        step = "write";
    else if (s->fsync && fdatasync(fd) < 0)
        step = "fsync";
    int err = errno;
    if (close(fd) < 0 && !step)     /* NFS reports write errors at close */
        step = "close", err = errno;
    if (!step && renameat(dfd, tmp, dfd, leaf) < 0)
        step = "rename", err = errno;
    if (step) {
        unlinkat(dfd, tmp, 0);
        local_close_dir(s, dfd);
        *raced = err == ENOENT;
        return local_fail(s, e, err, "put", key, step);
    }
    if (s->fsync && fsync(dfd) < 0) {
        err = errno;
        local_close_dir(s, dfd);
        return local_fail(s, e, err, "put", key, "fsync directory");
    }
    local_close_dir(s, dfd);
    return 0;
}

static int local_put(void *st, const char *key, const void *data, size_t len,
                     const char *content_type, aq_err *e)
{
    (void)content_type;
    int rc = storage_key_check(key, e);
    bool raced = true;
    for (int i = 0; rc == 0 && raced && i < LOCAL_PUT_TRIES; i++)
        rc = local_put_once(st, key, data, len, &raced, e);
    return rc;
}

static int local_read_fd(const local_st *s, int fd, const char *key, buf *out, aq_err *e)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return local_fail(s, e, errno, "get", key, "stat");
    if (!S_ISREG(sb.st_mode))
        return err_set(e, AQ_EPERM, "local storage %s: get %s: not a regular file", s->root, key);
    if ((uint64_t)sb.st_size > LOCAL_GET_MAX)
        return err_set(e, AQ_EPERM, "local storage %s: get %s: %lld bytes is over the %u limit",
                       s->root, key, (long long)sb.st_size, LOCAL_GET_MAX);
    if (buf_reserve(out, (size_t)sb.st_size + 1) < 0)
        return err_set(e, AQ_EAGAIN, "local storage %s: get %s: out of memory", s->root, key);
    for (;;) {
        if (out->cap - out->len < 4096 && buf_reserve(out, 4096) < 0)
            return err_set(e, AQ_EAGAIN, "local storage %s: get %s: out of memory", s->root, key);
        if (out->len > LOCAL_GET_MAX)
            return err_set(e, AQ_EPERM, "local storage %s: get %s: grew over the %u limit",
                           s->root, key, LOCAL_GET_MAX);
        ssize_t r = read(fd, out->data + out->len, out->cap - out->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return local_fail(s, e, errno, "get", key, "read");
        if (r == 0)
            return 0;
        out->len += (size_t)r;
    }
}

static int local_get(void *st, const char *key, buf *out, aq_err *e)
{
    local_st *s = st;
    int rc = storage_key_check(key, e);
    if (rc < 0)
        return rc;
    const char *leaf;
    int dfd = local_walk(s, key, false, &leaf, NULL, NULL, NULL);
    int fd = dfd < 0 ? -1 : openat(dfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int err = errno;
    local_close_dir(s, dfd);
    if (fd < 0 && err == ENOENT)
        return err_set(e, AQ_ENOTFOUND, "local storage %s: get %s: not found", s->root, key);
    if (fd < 0)
        return local_fail(s, e, err, "get", key, "open");
    size_t before = out->len;
    rc = local_read_fd(s, fd, key, out, e);
    close(fd);
    if (rc < 0)
        out->len = before;
    return rc;
}

static int local_del(void *st, const char *key, aq_err *e)
{
    local_st *s = st;
    int rc = storage_key_check(key, e);
    if (rc < 0)
        return rc;
    const char *leaf;
    int parent;
    char dirname[NAME_MAX + 1];
    int dfd = local_walk(s, key, false, &leaf, &parent, dirname, NULL);
    if (dfd < 0)
        return errno == ENOENT ? 0 : local_fail(s, e, errno, "delete", key, "open directory");
    if (unlinkat(dfd, leaf, 0) < 0 && errno != ENOENT)
        rc = local_fail(s, e, errno, "delete", key, "unlink");
    else if (s->fsync && fsync(dfd) < 0)
        rc = local_fail(s, e, errno, "delete", key, "fsync directory");
    /* Drop the object's directory (PREFIX/ID) once it is empty; a put racing
     * with us notices and starts over. Failure (not empty) is fine. */
    if (rc == 0 && parent >= 0)
        unlinkat(parent, dirname, AT_REMOVEDIR);
    local_close_dir(s, dfd);
    local_close_dir(s, parent);
    return rc;
}

/* Healthy when root still names the directory we opened and we can create
 * and remove a file in it. */
static int local_check(void *st, aq_err *e)
{
    local_st *s = st;
    struct stat now, opened;
    if (stat(s->root, &now) < 0)
        return local_fail(s, e, errno, "check", "root", "stat");
    if (fstat(s->root_fd, &opened) < 0 || now.st_dev != opened.st_dev || now.st_ino != opened.st_ino)
        return err_set(e, AQ_EPERM, "local storage %s: check: root was replaced since start-up",
                       s->root);
    char probe[64];
    snprintf(probe, sizeof probe, ".check-%ld-%08x-%lu", (long)getpid(), s->nonce, ++s->seq);
    int fd = openat(s->root_fd, probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return local_fail(s, e, errno, "check", "root", "create a file");
    close(fd);
    if (unlinkat(s->root_fd, probe, 0) < 0)
        return local_fail(s, e, errno, "check", "root", "remove a file");
    return 0;
}

static const char *local_location(void *st)
{
    return ((local_st *)st)->root;
}

static void local_close(void *st)
{
    local_st *s = st;
    if (!s)
        return;
    if (s->root_fd >= 0)
        close(s->root_fd);
    free(s);
}

/* mkdir -p with mode 0755 for each missing directory. */
static int mkdir_parents(const char *path)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof p) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -1;
        p[i] = saved;
    }
    return 0;
}

/* FNV-1a (32 bit) of the host name and the PID namespace: which "host"
 * wrote a temporary file. Containers often share a host name while each has
 * its own PID numbers; with the namespace in the hash, a writer in another
 * container counts as another host (never asked about by PID). */
uint32_t storage_local_host_tag(void)
{
    char host[256] = "", ns[64] = "";
    gethostname(host, sizeof host - 1);
    ssize_t k = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[k > 0 ? k : 0] = '\0';
    uint32_t h = 2166136261u;
    for (const char *p = host; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (const char *p = ns; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

int storage_local_open_root(const char *root, bool fsync, void **st, aq_err *e)
{
    return storage_local_open_modes(root, fsync, 0644, 0755, st, e);
}

/* The process umask. Read by setting and restoring it: storage opens at
 * start-up, before any thread exists. */
static mode_t current_umask(void)
{
    mode_t m = umask(022);
    umask(m);
    return m;
}

int storage_local_open_modes(const char *root, bool fsync, int file_mode, int dir_mode,
                             void **st, aq_err *e)
{
    *st = NULL;
    if (!root || !*root)
        return err_set(e, AQ_EPERM, "[storage.local] root: empty");
    if (mkdir_parents(root) < 0)
        return err_set(e, local_errno_code(errno), "[storage.local] root: cannot create '%s': %s",
                       root, strerror(errno));
    local_st *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, AQ_EAGAIN, "[storage.local] root: out of memory");
    s->fsync = fsync;
    mode_t um = current_umask();
    s->file_mode = (mode_t)file_mode & 0666 & ~um;
    s->dir_mode = (mode_t)dir_mode & 0777 & ~um;
    s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0 || !realpath(root, s->root)) {
        int err = errno;
        local_close(s);
        return err_set(e, local_errno_code(err), "[storage.local] root: cannot open '%s': %s",
                       root, strerror(err));
    }
    s->host = storage_local_host_tag();
    s->pid = getpid();
    if (getrandom(&s->nonce, sizeof s->nonce, GRND_NONBLOCK) != sizeof s->nonce)
        s->nonce = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)s;
    *st = s;
    return 0;
}

static int local_open(const aq_config *c, void **st, aq_err *e)
{
    return storage_local_open_modes(c->storage.local.root, c->storage.local.fsync,
                                    c->storage.local.file_mode, c->storage.local.dir_mode, st, e);
}

static void local_describe(const aq_config *c, char *where, size_t wn, char *caution, size_t cn)
{
    snprintf(where, wn, "%s", c->storage.local.root);
    if (cn)
        caution[0] = '\0';
}

const storage_ops storage_local_ops = {
    .name = "local",
    .open = local_open,
    .put = local_put,
    .get = local_get,
    .del = local_del,
    .check = local_check,
    .location = local_location,
    .close = local_close,
    .describe = local_describe,
    .required = NULL,
};
