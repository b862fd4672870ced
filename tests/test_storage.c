/* Local storage: round trips, atomic replacement seen by a concurrent
 * reader, keys that would leave the root, symlinks planted inside the root,
 * health check and open errors. Everything happens below one temp dir. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <semaphore.h>

#include "avatar.h"
#include "config.h"
#include "job.h"
#include "storage.h"
#include "support.h"

static char tmp[256];    /* this test's temp dir */
static char root[400];   /* the storage root below it */
static char mounted[300]; /* a tmpfs this test mounted (private namespace), or "" */

static void setup(void)
{
    sup_tmpdir(tmp, sizeof tmp);
    snprintf(root, sizeof root, "%s/store/root", tmp);   /* parents do not exist yet */
}

static void teardown(void)
{
    if (mounted[0])
        umount2(mounted, MNT_DETACH);
    mounted[0] = '\0';
    sup_rmtree(tmp);
}

/* 1 when key is stored, 0 when absent, else the error code: through get,
 * the one read path the backends offer. */
static int storage_exists(storage *s, const char *key, aq_err *e)
{
    buf b = BUF_INIT;
    int rc = storage_get(s, key, &b, e);
    buf_free(&b);
    return rc == 0 ? 1 : rc == AQ_ENOTFOUND ? 0 : rc;
}

static void open_store(storage *s, bool fsync)
{
    aq_err e = {0};
    int rc = storage_open_local(s, root, fsync, &e);
    ck_assert_msg(rc == 0, "open: %s", e.msg);
}

static void put_ok(storage *s, const char *key, const void *data, size_t len)
{
    aq_err e = {0};
    int rc = storage_put(s, key, data, len, "image/png", &e);
    ck_assert_msg(rc == 0, "put %s: %s", key, e.msg);
}

static mode_t mode_of(const char *path)
{
    struct stat sb;
    ck_assert_msg(lstat(path, &sb) == 0, "stat %s: %s", path, strerror(errno));
    return sb.st_mode & 07777;
}

/* Names in dir other than . and .. (comma-separated into out); count. */
static int list_dir(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
    int count = 0;
    size_t o = 0;
    out[0] = '\0';
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        count++;
        if (o < n)
            o += (size_t)snprintf(out + o, n - o, "%s%s", count > 1 ? "," : "", de->d_name);
    }
    closedir(d);
    return count;
}

static void read_file(const char *path, buf *b)
{
    buf_reset(b);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(b, chunk, n);
    fclose(f);
}

START_TEST(round_trip)
{
    for (int fsync = 0; fsync < 2; fsync++) {
        storage s;
        open_store(&s, fsync);
        ck_assert_str_eq(storage_name(&s), "local");
        ck_assert_str_eq(storage_location(&s), root);   /* tmp is absolute already */
        ck_assert_int_eq(mode_of(root), 0755);
        const char png[] = "\x89PNG\r\n\x1a\n not really, but bytes with a \0 inside";
        put_ok(&s, "avatars/user-1/64.png", png, sizeof png);
        aq_err e = {0};
        buf b = BUF_INIT;
        ck_assert_int_eq(storage_get(&s, "avatars/user-1/64.png", &b, &e), 0);
        ck_assert_uint_eq(b.len, sizeof png);
        ck_assert(memcmp(b.data, png, sizeof png) == 0);
        ck_assert_int_eq(storage_exists(&s, "avatars/user-1/64.png", &e), 1);
        ck_assert_int_eq(storage_exists(&s, "avatars/user-1/32.png", &e), 0);
        ck_assert_int_eq(storage_exists(&s, "avatars/nobody/32.png", &e), 0);

        char path[600], names[256];
        snprintf(path, sizeof path, "%s/avatars/user-1/64.png", root);
        ck_assert_int_eq(mode_of(path), 0644);
        snprintf(path, sizeof path, "%s/avatars/user-1", root);
        ck_assert_int_eq(mode_of(path), 0755);
        ck_assert_int_eq(list_dir(path, names, sizeof names), 1);   /* no temp file left */
        ck_assert_str_eq(names, "64.png");

        buf_reset(&b);
        ck_assert_int_eq(storage_del(&s, "avatars/user-1/64.png", &e), 0);
        ck_assert_int_eq(storage_exists(&s, "avatars/user-1/64.png", &e), 0);
        ck_assert_int_eq(storage_get(&s, "avatars/user-1/64.png", &b, &e), AQ_ENOTFOUND);
        ck_assert_int_eq(e.code, AQ_ENOTFOUND);
        ck_assert_uint_eq(b.len, 0);
        ck_assert_int_eq(storage_del(&s, "avatars/user-1/64.png", &e), 0);   /* absent: fine */
        ck_assert_int_eq(storage_del(&s, "avatars/nobody/64.png", &e), 0);
        ck_assert_int_ne(access(path, F_OK), 0);   /* the emptied id directory went too */
        ck_assert_int_eq(storage_check(&s, &e), 0);
        buf_free(&b);
        storage_close(&s);
    }
}
END_TEST

START_TEST(overwrite_replaces_whole)
{
    storage s;
    open_store(&s, true);
    put_ok(&s, "k/1.png", "first version, longer than the second", 37);
    put_ok(&s, "k/1.png", "second", 6);
    aq_err e = {0};
    buf b = BUF_INIT;
    ck_assert_int_eq(storage_get(&s, "k/1.png", &b, &e), 0);
    ck_assert_uint_eq(b.len, 6);
    ck_assert(memcmp(b.data, "second", 6) == 0);
    char dir[600], names[256];
    snprintf(dir, sizeof dir, "%s/k", root);
    ck_assert_int_eq(list_dir(dir, names, sizeof names), 1);
    buf_free(&b);
    storage_close(&s);
}
END_TEST

/* A writer process replaces one file over and over with two different
 * contents of different sizes; a reader opening it by path all the while
 * only ever sees one of them whole. */
START_TEST(reader_never_sees_a_partial_file)
{
    enum { A_LEN = 256 * 1024, B_LEN = 300 * 1024, ROUNDS = 300 };
    storage s;
    open_store(&s, false);
    uint8_t *a = malloc(A_LEN), *bb = malloc(B_LEN);
    memset(a, 'A', A_LEN);
    memset(bb, 'B', B_LEN);
    put_ok(&s, "race/256.png", a, A_LEN);
    pid_t writer = fork();
    ck_assert_int_ge(writer, 0);
    if (writer == 0) {
        aq_err e = {0};
        for (int i = 0; i < ROUNDS; i++)
            if (storage_put(&s, "race/256.png", i % 2 ? a : bb, i % 2 ? A_LEN : B_LEN, NULL, &e))
                _exit(1);
        _exit(0);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/race/256.png", root);
    buf got = BUF_INIT;
    int reads = 0, status = -1;
    for (;;) {
        read_file(path, &got);
        reads++;
        bool whole_a = got.len == A_LEN && memcmp(got.data, a, A_LEN) == 0;
        bool whole_b = got.len == B_LEN && memcmp(got.data, bb, B_LEN) == 0;
        ck_assert_msg(whole_a || whole_b, "read %d saw %zu bytes, not one whole version", reads, got.len);
        if (waitpid(writer, &status, WNOHANG) == writer)
            break;
    }
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char dir[600], names[256];
    snprintf(dir, sizeof dir, "%s/race", root);
    ck_assert_int_eq(list_dir(dir, names, sizeof names), 1);   /* no temp files left */
    buf_free(&got);
    free(a);
    free(bb);
    storage_close(&s);
}
END_TEST

static const char *const bad_keys[] = {
    "../x", "a/../../x", "/etc/passwd", "a//b", "", "a/", "/", "..", ".", "./a", "a/./b",
    "a/..", "a\\b", "..\\x", "a\nb", "a\x7f" "b",
};

START_TEST(unsafe_keys_are_refused_before_touching_disk)
{
    storage s;
    open_store(&s, true);
    char names[256];
    int before = list_dir(tmp, names, sizeof names);
    for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
        const char *k = bad_keys[i];
        aq_err e = {0};
        buf b = BUF_INIT;
        ck_assert_msg(storage_put(&s, k, "x", 1, NULL, &e) == AQ_EPERM, "put '%s' accepted", k);
        ck_assert_msg(strstr(e.msg, "storage key"), "message for '%s': %s", k, e.msg);
        ck_assert_int_eq(storage_get(&s, k, &b, &e), AQ_EPERM);
        ck_assert_int_eq(storage_exists(&s, k, &e), AQ_EPERM);
        ck_assert_int_eq(storage_del(&s, k, &e), AQ_EPERM);
        ck_assert_int_eq(storage_key_check(k, &e), AQ_EPERM);
        /* The backend refuses on its own too, for callers that skip the wrapper. */
        ck_assert_int_eq(s.ops->put(s.st, k, "x", 1, NULL, &e), AQ_EPERM);
        buf_free(&b);
    }
    aq_err e = {0};
    ck_assert_int_eq(storage_key_check_len("a\0b", 3, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "NUL"));
    ck_assert_ptr_nonnull(strstr(e.msg, "a\\x00b"));   /* shown escaped */
    char longkey[1100];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    ck_assert_int_eq(storage_key_check(longkey, &e), AQ_EPERM);
    longkey[256] = '\0';   /* one segment of 256 bytes */
    ck_assert_int_eq(storage_key_check(longkey, &e), AQ_EPERM);
    longkey[255] = '\0';
    ck_assert_int_eq(storage_key_check(longkey, &e), 0);
    ck_assert_int_eq(storage_key_check("avatars/u/64.png", &e), 0);
    ck_assert_int_eq(storage_key_check("a..b/.x/..y", &e), 0);   /* dots inside names are fine */
    /* Nothing new appeared anywhere: not in tmp, not in the root. */
    ck_assert_int_eq(list_dir(tmp, names, sizeof names), before);
    ck_assert_int_eq(list_dir(root, names, sizeof names), 0);
    storage_close(&s);
}
END_TEST

START_TEST(symlinks_inside_root_are_not_followed)
{
    storage s;
    open_store(&s, true);
    char outside[600], secret[700], link[600], leak[700], dir[600];
    snprintf(outside, sizeof outside, "%s/outside", tmp);
    ck_assert_int_eq(mkdir(outside, 0755), 0);
    snprintf(secret, sizeof secret, "%s/secret", outside);
    sup_write_file(secret, "top secret");
    snprintf(link, sizeof link, "%s/link", root);                 /* root/link -> outside */
    ck_assert_int_eq(symlink(outside, link), 0);
    snprintf(dir, sizeof dir, "%s/avatars", root);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(leak, sizeof leak, "%s/avatars/leak.png", root);    /* a file link -> secret */
    ck_assert_int_eq(symlink(secret, leak), 0);

    aq_err e = {0};
    buf b = BUF_INIT;
    ck_assert_int_eq(storage_get(&s, "link/secret", &b, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "symlink"));
    ck_assert_int_eq(storage_exists(&s, "link/secret", &e), AQ_EPERM);
    ck_assert_int_eq(storage_del(&s, "link/secret", &e), AQ_EPERM);
    ck_assert_int_eq(storage_put(&s, "link/new.png", "x", 1, NULL, &e), AQ_EPERM);
    ck_assert_int_eq(storage_put(&s, "link/deeper/new.png", "x", 1, NULL, &e), AQ_EPERM);
    ck_assert_int_eq(storage_get(&s, "avatars/leak.png", &b, &e), AQ_EPERM);
    ck_assert_int_eq(storage_exists(&s, "avatars/leak.png", &e), AQ_EPERM);
    ck_assert_uint_eq(b.len, 0);
    char names[256];
    ck_assert_int_eq(list_dir(outside, names, sizeof names), 1);   /* only the secret */

    /* Writing over the file link replaces the link itself, not its target. */
    put_ok(&s, "avatars/leak.png", "new", 3);
    struct stat sb;
    ck_assert_int_eq(lstat(leak, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    read_file(secret, &b);
    ck_assert_uint_eq(b.len, 10);
    ck_assert(memcmp(b.data, "top secret", 10) == 0);
    /* Deleting through the directory link never reaches the target. */
    ck_assert_int_eq(access(secret, F_OK), 0);
    buf_free(&b);
    storage_close(&s);
}
END_TEST

START_TEST(check_and_open_errors)
{
    storage s;
    aq_err e = {0};
    open_store(&s, false);
    ck_assert_int_eq(storage_check(&s, &e), 0);
    char moved[600];
    snprintf(moved, sizeof moved, "%s-moved", root);
    ck_assert_int_eq(rename(root, moved), 0);   /* root gone from under us */
    ck_assert_int_ne(storage_check(&s, &e), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, root));
    ck_assert_int_eq(mkdir(root, 0755), 0);      /* replaced by another directory */
    ck_assert_int_eq(storage_check(&s, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "replaced"));
    storage_close(&s);

    char file[600];
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    sup_write_file(file, "x");
    ck_assert_int_eq(storage_open_local(&s, file, false, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "plainfile"));
    ck_assert_ptr_null(s.ops);
    ck_assert_int_eq(storage_open_local(&s, "", false, &e), AQ_EPERM);

    aq_config c;
    config_defaults(&c);
    snprintf(c.storage.backend, sizeof c.storage.backend, "ftp");
    ck_assert_int_eq(storage_open(&s, &c, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "ftp"));
    ck_assert_ptr_null(storage_find("ftp"));
    ck_assert_ptr_nonnull(storage_find("local"));

    snprintf(c.storage.backend, sizeof c.storage.backend, "local");
    snprintf(c.storage.local.root, sizeof c.storage.local.root, "%s/from-config/a/b", tmp);
    ck_assert_msg(storage_open(&s, &c, &e) == 0, "open from config: %s", e.msg);
    ck_assert_str_eq(storage_location(&s), c.storage.local.root);
    put_ok(&s, "x/1.png", "1", 1);
    storage_close(&s);
}
END_TEST

static void touch(const char *dir, const char *name, time_t age_s)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sup_write_file(path, "partial");
    struct timespec t[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

static bool present(const char *dir, const char *name)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Temporary files of writers that died are removed by the next put into
 * their directory; those of live writers, of other hosts' recent writers,
 * and anything not named like ours stay. */
START_TEST(abandoned_temp_files_are_swept)
{
    storage s;
    open_store(&s, false);
    put_ok(&s, "avatars/u/64.png", "png", 3);
    storage_close(&s);
    pid_t dead = fork();
    ck_assert_int_ge(dead, 0);
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);   /* its pid names nobody now */
    unsigned me = storage_local_host_tag();
    char dir[600], gone1[128], gone2[128], live[128], recent[128];
    snprintf(dir, sizeof dir, "%s/avatars/u", root);
    snprintf(gone1, sizeof gone1, ".64.png.tmp-%08x-%d-deadbeef-7", me, (int)dead);
    snprintf(gone2, sizeof gone2, ".32.png.tmp-%08x-%d-deadbeef-8", me ^ 1u, 4242);
    snprintf(live, sizeof live, ".16.png.tmp-%08x-%d-deadbeef-9", me, (int)getppid());
    snprintf(recent, sizeof recent, ".32.png.tmp-%08x-%d-deadbeef-10", me ^ 1u, 4243);
    touch(dir, gone1, 0);
    touch(dir, gone2, 2 * 3600);   /* another host's, untouched for two hours */
    touch(dir, live, 2 * 3600);
    touch(dir, recent, 60);
    touch(dir, ".64.png.tmp-not-ours", 2 * 3600);
    touch(dir, "notes.txt", 2 * 3600);

    open_store(&s, false);
    put_ok(&s, "avatars/u/128.png", "png", 3);
    ck_assert_msg(!present(dir, gone1), "a dead writer's temp file stayed");
    ck_assert_msg(!present(dir, gone2), "an old temp file of another host stayed");
    ck_assert(present(dir, live));
    ck_assert(present(dir, recent));
    ck_assert(present(dir, ".64.png.tmp-not-ours"));
    ck_assert(present(dir, "notes.txt"));
    ck_assert(present(dir, "64.png"));
    ck_assert(present(dir, "128.png"));
    storage_close(&s);
}
END_TEST

/* Mounts a 64 KiB tmpfs at dir in a mount namespace of this test process
 * alone (it vanishes with the process, whatever happens). False when this
 * machine does not let us (not root, no namespaces). */
static bool small_fs(const char *dir)
{
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return false;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return false;
    if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") < 0)
        return false;
    snprintf(mounted, sizeof mounted, "%s", dir);
    return true;
}

/* A full disk may pass (transient) and leaves no temporary file behind; a
 * read-only filesystem will not (permanent). */
START_TEST(full_disk_is_transient_read_only_is_permanent)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/small", tmp);
    if (!small_fs(dir)) {
        fprintf(stderr, "full/read-only filesystem checks skipped: cannot mount a tmpfs here\n");
        return;
    }
    snprintf(root, sizeof root, "%s/root", dir);
    storage s;
    open_store(&s, true);
    size_t big = 256 * 1024;
    char *data = calloc(1, big);
    aq_err e = {0};
    ck_assert_int_eq(storage_put(&s, "avatars/u/512.png", data, big, NULL, &e), AQ_EAGAIN);
    ck_assert_msg(strstr(e.msg, "No space left"), "message: %s", e.msg);
    ck_assert_ptr_nonnull(strstr(e.msg, "avatars/u/512.png"));
    char names[256], udir[500];
    snprintf(udir, sizeof udir, "%s/avatars/u", root);
    ck_assert_int_eq(list_dir(udir, names, sizeof names), 0);   /* the temp file is gone */
    put_ok(&s, "avatars/u/32.png", data, 1000);                 /* and its space came back */

    ck_assert_int_eq(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    ck_assert_int_eq(storage_put(&s, "avatars/u/64.png", data, 10, NULL, &e), AQ_EPERM);
    ck_assert_msg(strstr(e.msg, "Read-only"), "message: %s", e.msg);
    ck_assert_int_eq(storage_check(&s, &e), AQ_EPERM);
    buf b = BUF_INIT;
    ck_assert_int_eq(storage_get(&s, "avatars/u/32.png", &b, &e), 0);   /* reads still work */
    ck_assert_uint_eq(b.len, 1000);
    buf_free(&b);
    free(data);
    storage_close(&s);
}
END_TEST

/* storage_put_many without a backend put_many (local): every key is
 * checked before anything is written, the bad one named by index; good
 * batches land whole. */
START_TEST(put_many_checks_every_key_first)
{
    storage s = {0};
    aq_err e = {0};
    ck_assert_int_eq(storage_open_local(&s, root, false, &e), 0);
    storage_item items[3] = {{"avatars/m/32.png", "a", 1, "image/png"},
                             {"avatars/m/64.png", "bb", 2, "image/png"},
                             {"avatars/../m.png", "c", 1, "image/png"}};
    size_t failed = 99;
    ck_assert_int_eq(storage_put_many(&s, items, 3, &failed, &e), AQ_EPERM);
    ck_assert_uint_eq(failed, 2);
    buf b = BUF_INIT;
    ck_assert_int_eq(storage_get(&s, "avatars/m/32.png", &b, &e), AQ_ENOTFOUND);
    ck_assert_msg(storage_put_many(&s, items, 2, &failed, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(storage_get(&s, "avatars/m/64.png", &b, &e), 0);
    ck_assert_uint_eq(b.len, 2);
    ck_assert(memcmp(b.data, "bb", 2) == 0);
    buf_free(&b);
    storage_close(&s);
}
END_TEST

/* avatar_store through a render gate: the gate is given back, the render
 * buffer is freed with it, and the stored files are the bytes a gate-less
 * render makes. */
START_TEST(avatar_store_through_a_gate)
{
    storage s = {0};
    aq_err e = {0};
    ck_assert_int_eq(storage_open_local(&s, root, false, &e), 0);
    aq_config *cfg = calloc(1, sizeof *cfg);
    config_defaults(cfg);
    job_limits lim;
    ck_assert_int_eq(job_limits_from_config(&lim, cfg, &e), 0);
    static const char doc[] = "{\"v\":1,\"id\":\"gated\",\"seed\":\"g\",\"sizes\":[32,512,64]}";
    job_request r;
    ck_assert_msg(job_parse(doc, sizeof doc - 1, &lim, &r, &e) == 0, "%s", e.msg);
    sem_t gate;
    sem_init(&gate, 0, 1);
    avatar_ctx ctx;
    avatar_init(&ctx, &s, NULL, "avatars", "test");
    ctx.gate = &gate;
    char *outputs = NULL;
    ck_assert_msg(avatar_store(&ctx, &r, 1, NULL, &outputs, &e) == 0, "%s", e.msg);
    int v = -1;
    sem_getvalue(&gate, &v);
    ck_assert_int_eq(v, 1);
    ck_assert_ptr_null(ctx.img.pixels);
    ck_assert_msg(strstr(outputs, "\"512\":\"avatars/gated/512.png\""), "%s", outputs);
    avatar_ctx plain;
    avatar_init(&plain, &s, NULL, "avatars", "test");
    for (size_t i = 0; i < r.nsizes; i++) {
        char key[128];
        avatar_key("avatars", "gated", r.sizes[i], key, sizeof key);
        buf b = BUF_INIT;
        ck_assert_int_eq(storage_get(&s, key, &b, &e), 0);
        ck_assert_int_eq(avatar_png(&plain, &r, r.sizes[i], &e), 0);
        ck_assert_uint_eq(b.len, plain.png.len);
        ck_assert(memcmp(b.data, plain.png.data, b.len) == 0);
        buf_free(&b);
    }
    free(outputs);
    avatar_free(&plain);
    avatar_free(&ctx);
    sem_destroy(&gate);
    free(cfg);
    storage_close(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("local");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, overwrite_replaces_whole);
    tcase_add_test(tc, reader_never_sees_a_partial_file);
    tcase_add_test(tc, unsafe_keys_are_refused_before_touching_disk);
    tcase_add_test(tc, symlinks_inside_root_are_not_followed);
    tcase_add_test(tc, check_and_open_errors);
    tcase_add_test(tc, abandoned_temp_files_are_swept);
    tcase_add_test(tc, full_disk_is_transient_read_only_is_permanent);
    tcase_add_test(tc, put_many_checks_every_key_first);
    tcase_add_test(tc, avatar_store_through_a_gate);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
