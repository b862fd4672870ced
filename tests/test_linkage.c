/* The library `make install` ships links cleanly into a program whose own
 * names clash with avatarq's internals: only avatarq_* is global in
 * dist/libavatarq.a and exported by dist/libavatarq.so.0 (soname
 * libavatarq.so.0). A real compiler links a real program against each and
 * runs it.
 *
 * The dist directory is $AQ_DIST_DIR (tests/run.sh sets it), else derived
 * from AQ_BIN_DIR: bin/ -> build/dist, build-asan/bin -> build-asan/dist,
 * DIR/bin -> DIR/dist. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "support.h"

#if defined(__SANITIZE_ADDRESS__)
#define SAN_FLAGS "-fsanitize=address,undefined"
#else
#define SAN_FLAGS ""
#endif

#define FMT(arr, ...)                                                          \
    ck_assert_msg(snprintf(arr, sizeof arr, __VA_ARGS__) < (int)sizeof arr,  \
                  "too long for " #arr)

static char g_dir[256];

static void setup(void)
{
    sup_tmpdir(g_dir, sizeof g_dir);
}

static void teardown(void)
{
    sup_rmtree(g_dir);
}

/* The dist directory of the build under test, absolute. */
static void dist_dir(char *out, size_t n)
{
    const char *env = getenv("AQ_DIST_DIR");
    char bin[PATH_MAX];
    if (env && *env) {
        ck_assert_ptr_nonnull(realpath(env, out));
        return;
    }
    ck_assert_ptr_nonnull(realpath(sup_bin("avatarq"), bin));
    char *slash = strrchr(bin, '/');      /* .../bin/avatarq -> .../bin */
    *slash = '\0';
    slash = strrchr(bin, '/');            /* .../bin -> ... */
    *slash = '\0';
    char probe[PATH_MAX + 32];
    FMT(probe, "%s/systemd/install.sh", bin);   /* the source tree's own bin/ */
    int len = snprintf(out, n, access(probe, F_OK) == 0 ? "%s/build/dist" : "%s/dist", bin);
    ck_assert(len > 0 && (size_t)len < n);
}

/* A program with its own log_write, buf_append, now_ms, config_load and
 * queue_open (other signatures, too), calling the public API. The
 * library must neither clash with them at link time nor call them. */
static const char PROGRAM[] =
    "#include <avatarq.h>\n"
    "#include <stdio.h>\n"
    "static int mine;\n"
    "int log_write(const char *s) { mine++; return s ? 1 : 0; }\n"
    "void buf_append(void) { mine++; }\n"
    "double now_ms = 1.5;\n"
    "int config_load(int x) { mine++; return x; }\n"
    "int queue_open(void) { mine++; return 0; }\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    char err[256];\n"
    "    avatarq *a = avatarq_open(argc > 1 ? argv[1] : NULL, err, sizeof err);\n"
    "    printf(\"version %s open %s mine %d now %.1f\\n\", avatarq_version(),\n"
    "           a ? \"ok\" : err, mine, now_ms);\n"
    "    avatarq_close(a);\n"
    "    return 0;\n"
    "}\n";

/* Builds PROGRAM with link_args and runs it on a config that names a bad
 * key, so avatarq_open goes through config_load, its errors and logging. */
static void build_and_run(const char *name, const char *link_args)
{
    char src[512], prog[512], conf[512], cmd[4 * PATH_MAX];
    FMT(src, "%s/%s.c", g_dir, name);
    FMT(prog, "%s/%s", g_dir, name);
    FMT(conf, "%s/config.ini", g_dir);
    sup_write_file(src, PROGRAM);
    sup_write_file(conf, "[worker]\nprocesses = many\n");
    char inc[PATH_MAX];
    ck_assert_ptr_nonnull(realpath("include", inc));
    FMT(cmd, "cc -std=c11 -Wall -Wextra -Werror " SAN_FLAGS " -I'%s' -o '%s' '%s' %s", inc, prog,
        src, link_args);
    buf out = BUF_INIT;
    int rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "%s: linking failed (%d):\n%s\n%s", name, rc, cmd, (char *)out.data);
    FMT(cmd, "'%s' '%s'", prog, conf);
    rc = sup_run(cmd, &out, true);
    ck_assert_msg(rc == 0, "%s: exit %d:\n%s", name, rc, (char *)out.data);
    const char *o = (const char *)out.data;
    ck_assert_msg(strstr(o, "version " AQ_VERSION " open ") != NULL, "%s: %s", name, o);
    ck_assert_msg(strstr(o, "[worker] processes: 'many' is not an integer") != NULL, "%s: %s", name, o);
    ck_assert_msg(strstr(o, "mine 0 now 1.5") != NULL, "%s: the library called the program's own "
                  "functions:\n%s", name, o);
    buf_free(&out);
}

START_TEST(static_archive_links_with_clashing_names)
{
    char dist[PATH_MAX], args[2 * PATH_MAX];
    dist_dir(dist, sizeof dist);
    FMT(args, "'%s/libavatarq.a' $(pkg-config --libs hiredis jansson inih libpq sqlite3 libcurl "
              "libssl libcrypto libpng libsystemd libwebp cairo gobject-2.0 harfbuzz freetype2 libdeflate) -lm",
              dist);
    build_and_run("static", args);
}
END_TEST

START_TEST(shared_library_links_with_clashing_names)
{
    char dist[PATH_MAX], args[2 * PATH_MAX], cmd[2 * PATH_MAX];
    dist_dir(dist, sizeof dist);
    FMT(args, "-L'%s' -lavatarq -Wl,-rpath,'%s'", dist, dist);
    build_and_run("shared", args);
    /* soname, and nothing but avatarq_* exported */
    buf out = BUF_INIT;
    FMT(cmd, "readelf -d '%s/libavatarq.so.0' | grep SONAME", dist);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_msg(strstr((char *)out.data, "[libavatarq.so.0]") != NULL, "%s", (char *)out.data);
    FMT(cmd, "nm -D --defined-only '%s/libavatarq.so.0' | awk '$2 ~ /[TDBRV]/ && $3 !~ /^avatarq_/'",
        dist);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_msg(out.len == 0, "exported beyond avatarq_*:\n%s", (char *)out.data);
    FMT(cmd, "nm -g --defined-only '%s/libavatarq.a' | awk 'NF == 3 && $3 !~ /^avatarq_/'", dist);
    ck_assert_int_eq(sup_run(cmd, &out, true), 0);
    ck_assert_msg(out.len == 0, "global beyond avatarq_* in the archive:\n%s", (char *)out.data);
    buf_free(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("linkage");
    TCase *tc = tcase_create("dist");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, static_archive_links_with_clashing_names);
    tcase_add_test(tc, shared_library_links_with_clashing_names);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
