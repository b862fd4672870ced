/* make install / make uninstall into a DESTDIR: every listed file lands with
 * the right mode and content, a second install never overwrites a changed
 * config.ini, uninstall removes exactly what install wrote, and a program
 * built with `pkg-config --cflags --libs avatarq` against the installed tree
 * links and enqueues a job into a real Redis.
 *
 * make runs from the source tree with the build under test: AQ_BIN_DIR
 * bin/ -> the default build, build-asan/bin -> SAN=1, DIR/bin -> O=DIR, so
 * `all` is already up to date and install takes those very binaries. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "support.h"

#define PREFIX "/usr/local"

/* snprintf into an array, failing the test rather than truncating. */
#define FMT(arr, ...)                                                          \
    ck_assert_msg(snprintf(arr, sizeof arr, __VA_ARGS__) < (int)sizeof arr,  \
                  "too long for " #arr)

static char root[PATH_MAX];            /* the source tree */
static char bindir[PATH_MAX];          /* the programs under test */
static char make_build[PATH_MAX + 8];  /* "", "SAN=1" or "O=DIR" */
static char dest[PATH_MAX];            /* DESTDIR of one test */
static sup_redis redis;

/* Every file an install writes, below DESTDIR, with its mode. */
static const struct {
    const char *path;
    unsigned mode;
} installed[] = {
    {PREFIX "/bin/avatarq", 0755},
    {PREFIX "/bin/avatarq-worker", 0755},
    {PREFIX "/lib/libavatarq.a", 0644},
    {PREFIX "/lib/libavatarq.so." AQ_VERSION, 0755},
    {PREFIX "/include/avatarq.h", 0644},
    {PREFIX "/lib/pkgconfig/avatarq.pc", 0644},
    {PREFIX "/share/man/man1/avatarq.1", 0644},
    {PREFIX "/share/man/man8/avatarq-worker.8", 0644},
    {PREFIX "/lib/systemd/system/avatarq-worker.service", 0644},
    {PREFIX "/lib/systemd/system/avatarq-worker@.service", 0644},
    {PREFIX "/lib/sysusers.d/avatarq.conf", 0644},
    {PREFIX "/lib/tmpfiles.d/avatarq.conf", 0644},
    {PREFIX "/share/avatarq/install-manifest", 0644},
    {PREFIX "/share/avatarq/emoji/1f600.svg", 0644},   /* one of the artwork files */
    {PREFIX "/share/avatarq/emoji/LICENSE", 0644},
    {"/etc/avatarq/config.ini", 0640},
};
#define NINSTALLED (sizeof installed / sizeof *installed)

/* ---- helpers ---- */

static bool is_tree(const char *dir)
{
    char p[PATH_MAX + 32];
    FMT(p, "%s/systemd/install.sh", dir);
    return access(p, R_OK) == 0;
}

/* The source tree: the working directory (tests/run.sh runs from the repo
 * root) or an ancestor of it or of the programs' directory. */
static void find_root(void)
{
    char start[2][PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(start[0], sizeof start[0]));
    memcpy(start[1], bindir, sizeof start[1]);
    for (int i = 0; i < 2; i++) {
        char d[PATH_MAX];
        memcpy(d, start[i], sizeof d);
        for (;;) {
            if (is_tree(d)) {
                memcpy(root, d, sizeof root);
                return;
            }
            char *slash = strrchr(d, '/');
            if (!slash || slash == d)
                break;
            *slash = '\0';
        }
    }
    ck_abort_msg("cannot find the source tree (systemd/install.sh) from %s or %s",
                 start[0], start[1]);
}

/* The sanitizer build's library needs the sanitizer runtime at link time,
 * and make must rebuild anything stale with the same flags. */
#if defined(__SANITIZE_ADDRESS__)
#define SAN_FLAGS "-fsanitize=address,undefined"
#define SAN_MAKE "SAN=1"
#else
#define SAN_FLAGS ""
#define SAN_MAKE ""
#endif

/* The make variables that select the build whose programs are in bindir. */
static void find_build(void)
{
    char p[PATH_MAX + 32];
    FMT(p, "%s/bin", root);
    if (strcmp(bindir, p) == 0) {
        make_build[0] = '\0';
        return;
    }
    FMT(p, "%s/build-asan/bin", root);
    if (strcmp(bindir, p) == 0) {
        FMT(make_build, "SAN=1");
        return;
    }
    const char *slash = strrchr(bindir, '/');
    ck_assert_msg(slash && strcmp(slash, "/bin") == 0,
                  "AQ_BIN_DIR %s is not the bin/ of a build (make O=DIR)", bindir);
    FMT(make_build, "O=%.*s " SAN_MAKE, (int)(slash - bindir), bindir);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    buf_append(&b, "", 1);
    fclose(f);
    return (char *)b.data;
}

/* Runs `make TARGET DESTDIR=dest PREFIX=/usr/local` in the source tree with
 * the build under test; out receives stdout+stderr. Returns the exit status.
 * MAKEFLAGS of an enclosing make (jobserver descriptors) must not leak in. */
static int make(const char *target, buf *out)
{
    char cmd[3 * PATH_MAX];
    FMT(cmd,
        "{ cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "
        "make -s --no-print-directory %s %s DESTDIR='%s' PREFIX=" PREFIX "; }",
        root, make_build, target, dest);
    return sup_run(cmd, out, true);
}

static void make_ok(const char *target, buf *out)
{
    int rc = make(target, out);
    ck_assert_msg(rc == 0, "make %s: exit %d:\n%s", target, rc, out->data ? (char *)out->data : "");
}

static bool exists(const char *rel)
{
    char p[2 * PATH_MAX];
    FMT(p, "%s%s", dest, rel);
    return access(p, F_OK) == 0;
}

static char *dest_text(const char *rel)
{
    char p[2 * PATH_MAX];
    FMT(p, "%s%s", dest, rel);
    return read_text(p);
}

/* Files and directories left below DESTDIR, one per line (sorted). */
static void leftovers(buf *out)
{
    char cmd[PATH_MAX + 64];
    FMT(cmd, "cd '%s' && find . -mindepth 1 | sort", dest);
    ck_assert_int_eq(sup_run(cmd, out, true), 0);
}

/* ---- fixtures ---- */

static void setup(void)
{
    const char *dir = getenv("AQ_BIN_DIR");
    char b[PATH_MAX];
    FMT(b, "%s", dir && *dir ? dir : "bin");
    ck_assert_msg(realpath(b, bindir) != NULL, "AQ_BIN_DIR %s: %s", b, strerror(errno));
    find_root();
    find_build();
    sup_tmpdir(dest, sizeof dest);
}

static void teardown(void)
{
    sup_rmtree(dest);
}

/* Redis lives in the parent process, so it is stopped even when a test fails. */
static void redis_up(void)
{
    sup_redis_start(&redis, false);
}

static void redis_down(void)
{
    sup_redis_stop(&redis);
    sup_rmtree(redis.dir);
}

/* ---- tests ---- */

START_TEST(install_writes_every_file_and_uninstall_removes_them)
{
    buf out = BUF_INIT;
    make_ok("install", &out);
    for (size_t i = 0; i < NINSTALLED; i++) {
        char p[2 * PATH_MAX];
        FMT(p, "%s%s", dest, installed[i].path);
        struct stat st;
        ck_assert_msg(stat(p, &st) == 0 && S_ISREG(st.st_mode), "not installed: %s", installed[i].path);
        ck_assert_msg((st.st_mode & 07777) == installed[i].mode, "%s: mode %o, want %o",
                      installed[i].path, st.st_mode & 07777, installed[i].mode);
    }

    /* The programs are the build's, byte for byte. */
    char cmd[4 * PATH_MAX];
    FMT(cmd, "cmp '%s/avatarq-worker' '%s" PREFIX "/bin/avatarq-worker' && "
             "cmp '%s/avatarq' '%s" PREFIX "/bin/avatarq'",
        bindir, dest, bindir, dest);
    ck_assert_msg(sup_run(cmd, &out, true) == 0, "installed programs differ: %s", (char *)out.data);

    /* Paths in the units follow PREFIX; no placeholder is left anywhere. */
    char *unit = dest_text(PREFIX "/lib/systemd/system/avatarq-worker.service");
    ck_assert_ptr_nonnull(strstr(unit, "\nExecStart=" PREFIX "/bin/avatarq-worker -c /etc/avatarq/config.ini\n"));
    ck_assert_ptr_nonnull(strstr(unit, "\nExecStartPre=-" PREFIX "/bin/avatarq -c /etc/avatarq/config.ini health\n"));
    ck_assert_ptr_null(strstr(unit, "@BINDIR@"));
    free(unit);
    char *tpl = dest_text(PREFIX "/lib/systemd/system/avatarq-worker@.service");
    ck_assert_ptr_nonnull(strstr(tpl, "\nExecStart=" PREFIX "/bin/avatarq-worker -c /etc/avatarq/%i.ini\n"));
    free(tpl);
    char *tmpfiles = dest_text(PREFIX "/lib/tmpfiles.d/avatarq.conf");
    ck_assert_ptr_nonnull(strstr(tmpfiles, "z /etc/avatarq/*.ini"));
    free(tmpfiles);

    /* The pc names this prefix and the version the programs report. */
    char *pc = dest_text(PREFIX "/lib/pkgconfig/avatarq.pc");
    ck_assert_ptr_nonnull(strstr(pc, "\nprefix=${avatarq_destdir}" PREFIX "\n"));
    FMT(cmd, "'%s" PREFIX "/bin/avatarq' --version", dest);
    ck_assert_int_eq(sup_run(cmd, &out, false), 0);
    const char *sp = strrchr((char *)out.data, ' ');
    ck_assert_ptr_nonnull(sp);
    char version[64];
    FMT(version, "\nVersion: %.*s\n", (int)strcspn(sp + 1, "\n"), sp + 1);
    ck_assert_msg(strstr(pc, version) != NULL, "pc lacks '%s'", version + 1);
    free(pc);

    /* The installed config keeps its data in the state directory. */
    char *conf = dest_text("/etc/avatarq/config.ini");
    ck_assert_ptr_nonnull(strstr(conf, "/var/lib/avatarq/"));
    ck_assert_ptr_null(strstr(conf, "= ./var/"));
    free(conf);

    /* Installing again over an untouched tree changes nothing visible. */
    make_ok("install", &out);
    ck_assert_msg(!exists("/etc/avatarq/config.ini.new"), "config.ini.new for an unchanged config");

    make_ok("uninstall", &out);
    leftovers(&out);
    ck_assert_msg(out.len == 0, "left after uninstall:\n%s", (char *)out.data);
    buf_free(&out);
}
END_TEST

START_TEST(changed_config_is_never_overwritten_nor_removed)
{
    buf out = BUF_INIT;
    make_ok("install", &out);
    char conf[2 * PATH_MAX];
    FMT(conf, "%s/etc/avatarq/config.ini", dest);
    char *pristine = read_text(conf);
    FILE *f = fopen(conf, "a");
    ck_assert_ptr_nonnull(f);
    fputs("# tuned by the admin\n", f);
    fclose(f);

    make_ok("install", &out);
    ck_assert_msg(strstr((char *)out.data, "kept your") != NULL, "no message about the kept config:\n%s",
                  (char *)out.data);
    char *now = read_text(conf);
    ck_assert_msg(strstr(now, "# tuned by the admin\n") != NULL, "install overwrote the admin's config");
    free(now);
    /* The new default lands beside it, for the admin to compare. */
    char *fresh = dest_text("/etc/avatarq/config.ini.new");
    ck_assert_str_eq(fresh, pristine);
    free(fresh);
    free(pristine);

    make_ok("uninstall", &out);
    now = read_text(conf);
    ck_assert_msg(strstr(now, "# tuned by the admin\n") != NULL, "uninstall touched the admin's config");
    free(now);
    leftovers(&out);
    ck_assert_str_eq((char *)out.data, "./etc\n./etc/avatarq\n./etc/avatarq/config.ini\n");
    buf_free(&out);
}
END_TEST

/* A config.ini that is still exactly what the last install wrote is the
 * package's to replace: an upgrade installs the new default over it. */
START_TEST(untouched_config_is_upgraded)
{
    buf out = BUF_INIT;
    make_ok("install", &out);
    /* Pretend the previous release shipped other defaults: rewrite the file
     * and its manifest record together, as that release's install would. */
    char cmd[6 * PATH_MAX];
    FMT(cmd,
        "{ cd '%s' && printf '[log]\\nlevel = debug\\n' > etc/avatarq/config.ini && "
        "sum=$(sha256sum etc/avatarq/config.ini | cut -d' ' -f1) && "
        "sed -i \"s#^c [0-9a-f]* /etc/avatarq/config.ini\\$#c $sum /etc/avatarq/config.ini#\" "
        "'.%s/share/avatarq/install-manifest' && grep -c \"$sum\" '.%s/share/avatarq/install-manifest'; }",
        dest, PREFIX, PREFIX);
    ck_assert_msg(sup_run(cmd, &out, true) == 0, "faking an old release: %s", (char *)out.data);

    make_ok("install", &out);
    char *conf = dest_text("/etc/avatarq/config.ini");
    ck_assert_ptr_null(strstr(conf, "level = debug"));
    ck_assert_ptr_nonnull(strstr(conf, "/var/lib/avatarq/"));
    free(conf);
    ck_assert(!exists("/etc/avatarq/config.ini.new"));
    buf_free(&out);
}
END_TEST

static const char PROGRAM[] =
    "#include <avatarq.h>\n"
    "#include <stdio.h>\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    char err[256], id[65];\n"
    "    avatarq *a = avatarq_open(argc > 1 ? argv[1] : NULL, err, sizeof err);\n"
    "    if (!a) { fprintf(stderr, \"open: %s\\n\", err); return 1; }\n"
    "    avatarq_request r;\n"
    "    avatarq_request_init(&r);\n"
    "    r.seed = \"installed@example.com\";\n"
    "    int sizes[] = {64};\n"
    "    r.sizes = sizes;\n"
    "    r.nsizes = 1;\n"
    "    int rc = avatarq_enqueue(a, &r, id, err, sizeof err);\n"
    "    if (rc != 0) { fprintf(stderr, \"enqueue: %s (%s)\\n\", err, avatarq_code_name(rc)); }\n"
    "    else printf(\"%s %s\\n\", avatarq_version(), id);\n"
    "    avatarq_close(a);\n"
    "    return rc != 0;\n"
    "}\n";

START_TEST(pkg_config_program_links_and_enqueues)
{
    buf out = BUF_INIT;
    make_ok("install", &out);

    char pcenv[2 * PATH_MAX], cmd[8 * PATH_MAX];
    FMT(pcenv, "PKG_CONFIG_PATH='%s" PREFIX "/lib/pkgconfig' pkg-config "
               "--define-variable=avatarq_destdir='%s'",
        dest, dest);
    /* Plain --libs carries the static library's dependencies... */
    FMT(cmd, "%s --cflags --libs avatarq", pcenv);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_msg(strstr((char *)out.data, "-lavatarq") && strstr((char *)out.data, "-lhiredis") &&
                      strstr((char *)out.data, "-lsystemd"),
                  "pkg-config --libs: %s", (char *)out.data);
    char want[2 * PATH_MAX];
    FMT(want, "-I%s" PREFIX "/include", dest);
    ck_assert_msg(strstr((char *)out.data, want) != NULL, "no %s in %s", want, (char *)out.data);
    /* ...and --static theirs. */
    FMT(cmd, "%s --static --libs avatarq", pcenv);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_msg(strstr((char *)out.data, "-lavatarq") != NULL, "--static: %s", (char *)out.data);

    char src[PATH_MAX + 16], prog[PATH_MAX + 16];
    FMT(src, "%s/enqueue.c", dest);
    FMT(prog, "%s/enqueue", dest);
    sup_write_file(src, PROGRAM);
    FMT(cmd, "cc -std=c11 -Wall -Wextra -Werror " SAN_FLAGS " -o '%s' '%s' $(%s --cflags --libs avatarq)",
        prog, src, pcenv);
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "building against the installed tree failed (%d):\n%s", rc, (char *)out.data);

    /* It reads the installed config.ini; the environment points it at our Redis. */
    /* -lavatarq took the shared library, which a staged tree only offers
     * through LD_LIBRARY_PATH. */
    FMT(cmd,
        "LD_LIBRARY_PATH='%s" PREFIX "/lib' "
        "AVATARQ_REDIS_URL='%s' AVATARQ_REDIS_NAMESPACE=aqinst AVATARQ_REDIS_QUEUE=q1 "
        "'%s' '%s/etc/avatarq/config.ini'",
        dest, redis.url, prog, dest);
    rc = sup_run(cmd, &out, false);
    ck_assert_msg(rc == 0, "enqueue program exit %d: %s", rc, (char *)out.data);
    char version[32] = "", id[80] = "";
    ck_assert_int_eq(sscanf((char *)out.data, "%31s %79s", version, id), 2);
    ck_assert_int_eq(strlen(id), 64); /* derived: hex SHA-256 */

    ck_assert_int_eq(sup_redis_int(&redis, "LLEN aqinst:queue:q1"), 1);
    ck_assert_str_eq(sup_redis_str(&redis, "HGET aqinst:job:%s state", id), "queued");
    const char *doc = sup_redis_str(&redis, "LINDEX aqinst:queue:q1 0");
    ck_assert_msg(strstr(doc, "installed@example.com") != NULL, "queued doc: %s", doc);

    /* The shipped example builds the way its comment says, against the
     * installed tree, and enqueues too (configured by the environment alone:
     * it runs where there is no config.ini). */
    FMT(prog, "%s/example", dest);
    FMT(cmd, "cc -std=c11 -Wall -Wextra -Werror " SAN_FLAGS " -o '%s' '%s/examples/enqueue.c' $(%s --cflags --libs avatarq)",
        prog, root, pcenv);
    rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "building examples/enqueue.c failed (%d):\n%s", rc, (char *)out.data);
    FMT(cmd,
        "cd '%s' && LD_LIBRARY_PATH='%s" PREFIX "/lib' "
        "AVATARQ_REDIS_URL='%s' AVATARQ_REDIS_NAMESPACE=aqinst AVATARQ_REDIS_QUEUE=q1 "
        "'%s' example-seed wave",
        dest, dest, redis.url, prog);
    rc = sup_run(cmd, &out, false);
    ck_assert_msg(rc == 0, "examples/enqueue exit %d: %s", rc, (char *)out.data);
    ck_assert_int_eq(sup_redis_int(&redis, "LLEN aqinst:queue:q1"), 2);
    doc = sup_redis_str(&redis, "LINDEX aqinst:queue:q1 0");
    ck_assert_msg(strstr(doc, "example-seed") != NULL, "queued doc: %s", doc);
    buf_free(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, install_writes_every_file_and_uninstall_removes_them);
    tcase_add_test(tc, changed_config_is_never_overwritten_nor_removed);
    tcase_add_test(tc, untouched_config_is_upgraded);
    suite_add_tcase(s, tc);

    TCase *link = tcase_create("pkg-config");
    tcase_add_unchecked_fixture(link, redis_up, redis_down);
    tcase_add_checked_fixture(link, setup, teardown);
    tcase_set_timeout(link, 300);
    tcase_add_test(link, pkg_config_program_links_and_enqueues);
    suite_add_tcase(s, link);

    return sup_run_suite(s);
}
