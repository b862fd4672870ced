/* log: the logfmt and JSON line formats (read back through a pipe put in
 * place of stderr), quoting and escaping of awkward values, levels, the
 * journal's priority prefix, the line limit, and whole lines from many
 * processes writing at once. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "support.h"

/* stderr goes into a pipe while capturing. */
static int saved_fd = -1, pipe_rd = -1;

static void capture_start(void)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(stderr);
    saved_fd = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(p[1], STDERR_FILENO), 0);
    close(p[1]);
    pipe_rd = p[0];
}

/* Restores stderr and returns everything written (malloc'd). */
static char *capture_end(void)
{
    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    buf b = BUF_INIT;
    char chunk[4096];
    for (ssize_t n; (n = read(pipe_rd, chunk, sizeof chunk)) > 0;)
        ck_assert_int_eq(buf_append(&b, chunk, (size_t)n), 0);
    close(pipe_rd);
    buf_append(&b, "", 1);
    return (char *)b.data;
}

static void assert_matches(const char *s, const char *re)
{
    regex_t rx;
    ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&rx, s, 0, NULL, 0);
    regfree(&rx);
    ck_assert_msg(rc == 0, "'%s' does not match %s", s, re);
}

START_TEST(logfmt_line)
{
    unsetenv("JOURNAL_STREAM");
    log_setup(LOG_INFO, LOG_FMT_LOGFMT, "worker");
    char n[24];
    capture_start();
    log_info("job done", "id", "abc", "ms", log_int(n, 12));
    char *out = capture_end();
    char want[128];
    snprintf(want, sizeof want, " level=info proc=worker pid=%d msg=\"job done\" id=abc ms=12\n", (int)getpid());
    assert_matches(out, "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z ");
    ck_assert_str_eq(strchr(out, ' '), want);
    free(out);
}
END_TEST

START_TEST(logfmt_quoting)
{
    unsetenv("JOURNAL_STREAM");
    log_setup(LOG_DEBUG, LOG_FMT_LOGFMT, NULL);
    capture_start();
    log_warn("x", "space", "a b", "quote", "say \"hi\"", "nl", "l1\nl2", "eq", "k=v", "empty", "",
           "null", (const char *)NULL, "bs", "c:\\dir", "ctl", "\x01\x7f", "bad", "\xff", "utf8", "Zo\xc3\xab",
           "tab", "a\tb", "bad key!", "v");
    char *out = capture_end();
    const char *rest = strstr(out, " level=warn pid=");
    ck_assert_ptr_nonnull(rest);
    rest = strstr(rest, " msg=");
    ck_assert_str_eq(rest, " msg=x space=\"a b\" quote=\"say \\\"hi\\\"\" nl=\"l1\\nl2\" eq=\"k=v\" empty=\"\" "
                           "null=\"\" bs=\"c:\\\\dir\" ctl=\"\\x01\\x7f\" bad=\"\\xff\" utf8=\"Zo\xc3\xab\" "
                           "tab=\"a\\tb\" bad_key_=v\n");
    ck_assert_ptr_null(strstr(out, "proc=")); /* no proc given, none printed */
    free(out);
}
END_TEST

START_TEST(json_lines)
{
    unsetenv("JOURNAL_STREAM");
    log_setup(LOG_DEBUG, LOG_FMT_JSON, "supervisor");
    capture_start();
    log_error("boom \"x\"", "err", "line1\nline2\t\x01", "bad", "a\xff\xfe" "b", "utf8", "\xe2\x82\xac", "null",
              (const char *)NULL);
    log_debug("second");
    char *out = capture_end();
    char *nl = strchr(out, '\n');
    ck_assert_ptr_nonnull(nl);
    *nl = '\0';
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    ck_assert_msg(o != NULL, "not JSON: %s (%s)", out, je.text);
    ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(o, "proc")), "supervisor");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "pid")), getpid());
    ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "boom \"x\"");
    ck_assert_str_eq(json_string_value(json_object_get(o, "err")), "line1\nline2\t\x01");
    ck_assert_str_eq(json_string_value(json_object_get(o, "bad")), "a\xef\xbf\xbd\xef\xbf\xbd" "b"); /* U+FFFD */
    ck_assert_str_eq(json_string_value(json_object_get(o, "utf8")), "\xe2\x82\xac");
    ck_assert_str_eq(json_string_value(json_object_get(o, "null")), "");
    const char *ts = json_string_value(json_object_get(o, "ts"));
    ck_assert_ptr_nonnull(ts);
    assert_matches(ts, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$");
    json_decref(o);
    o = json_loads(nl + 1, 0, &je);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "second");
    json_decref(o);
    free(out);
}
END_TEST

START_TEST(levels)
{
    unsetenv("JOURNAL_STREAM");
    log_setup(LOG_WARN, LOG_FMT_LOGFMT, "t");
    capture_start();
    log_debug("d");
    log_info("i");
    log_warn("w");
    log_error("e");
    char *out = capture_end();
    ck_assert_ptr_null(strstr(out, "msg=d"));
    ck_assert_ptr_null(strstr(out, "msg=i"));
    ck_assert_ptr_nonnull(strstr(out, "level=warn proc=t"));
    ck_assert_ptr_nonnull(strstr(out, "level=error proc=t"));
    free(out);

    static const struct { const char *s; int v; } lv[] = {
        {"error", LOG_ERROR}, {"warn", LOG_WARN}, {"warning", LOG_WARN}, {"info", LOG_INFO},
        {"debug", LOG_DEBUG}, {"DEBUG", LOG_DEBUG}, {"trace", -1}, {"", -1}, {NULL, -1},
    };
    for (size_t i = 0; i < sizeof lv / sizeof lv[0]; i++)
        ck_assert_int_eq(log_level_parse(lv[i].s), lv[i].v);
    ck_assert_int_eq(log_format_parse("logfmt"), LOG_FMT_LOGFMT);
    ck_assert_int_eq(log_format_parse("JSON"), LOG_FMT_JSON);
    ck_assert_int_eq(log_format_parse("xml"), -1);
    char b[24];
    ck_assert_str_eq(log_int(b, INT64_MIN), "-9223372036854775808");
}
END_TEST

/* JOURNAL_STREAM names the stream systemd connected; only when it is still
 * our stderr do lines carry a priority. */
START_TEST(journal_prefix)
{
    capture_start();
    struct stat st;
    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    char js[64];
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    log_setup(LOG_DEBUG, LOG_FMT_LOGFMT, "w");
    log_error("e");
    log_warn("w");
    log_info("i");
    log_debug("d");
    log_setup(LOG_DEBUG, LOG_FMT_JSON, "w");
    log_info("j");
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", js, 1);
    log_setup(LOG_DEBUG, LOG_FMT_LOGFMT, "w");
    log_info("other");
    char *out = capture_end();
    char *lines[6] = {0};
    int n = 0;
    for (char *save, *l = strtok_r(out, "\n", &save); l && n < 6; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    ck_assert_int_eq(n, 6);
    ck_assert(strncmp(lines[0], "<3>ts=", 6) == 0);
    ck_assert(strncmp(lines[1], "<4>ts=", 6) == 0);
    ck_assert(strncmp(lines[2], "<6>ts=", 6) == 0);
    ck_assert(strncmp(lines[3], "<7>ts=", 6) == 0);
    ck_assert(strncmp(lines[4], "<6>{\"ts\":", 9) == 0);
    ck_assert(strncmp(lines[5], "ts=", 3) == 0);
    free(out);
}
END_TEST

START_TEST(long_values_cut)
{
    unsetenv("JOURNAL_STREAM");
    size_t big = 3 * LOG_LINE_MAX;
    char *v = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        v[i] = (i % 7 == 0) ? '"' : (i % 5 == 0) ? '\n' : 'x';
    v[big] = '\0';
    for (int fmt = LOG_FMT_LOGFMT; fmt <= LOG_FMT_JSON; fmt++) {
        log_setup(LOG_INFO, fmt, "w");
        capture_start();
        log_info("big", "v", v, "after", "never");
        log_info("next");
        char *out = capture_end();
        char *nl = strchr(out, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_uint_le((size_t)(nl - out) + 1, LOG_LINE_MAX);
        ck_assert_ptr_nonnull(strstr(nl + 1, "next"));
        *nl = '\0';
        ck_assert_ptr_null(strstr(out, "after"));
        if (fmt == LOG_FMT_JSON) {
            json_error_t je;
            json_t *o = json_loads(out, 0, &je);
            ck_assert_msg(o != NULL, "cut JSON line does not parse: %s", je.text);
            const char *s = json_string_value(json_object_get(o, "v"));
            ck_assert(strlen(s) > 1000 && strcmp(s + strlen(s) - 3, "...") == 0);
            json_decref(o);
        } else {
            ck_assert(strcmp(out + strlen(out) - 4, "...\"") == 0);
        }
        free(out);
    }
    /* wherever the limit falls (inside a value, a key, between fields),
     * every JSON line still parses and no line is longer than the limit */
    log_setup(LOG_INFO, LOG_FMT_JSON, "w");
    for (size_t len = LOG_LINE_MAX - 200; len < LOG_LINE_MAX; len++) {
        memset(v, 'y', len);
        v[len] = '\0';
        capture_start();
        log_info("edge", "k1", v + len / 2, "a_rather_long_key_name", "v", "k3", v + len / 2 + 60);
        char *out = capture_end();
        char *nl = strchr(out, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_uint_le((size_t)(nl - out) + 1, LOG_LINE_MAX);
        json_error_t je;
        json_t *o = json_loadb(out, (size_t)(nl - out), 0, &je);
        ck_assert_msg(o != NULL, "len %zu: %s: ...%s", len, je.text, nl - 40);
        json_decref(o);
        free(out);
    }
    /* a multi-byte character is never split by the cut */
    for (size_t i = 0; i + 2 < big; i += 2)
        v[i] = '\xc3', v[i + 1] = '\xa9';
    v[big - (big % 2)] = '\0';
    log_setup(LOG_INFO, LOG_FMT_JSON, "w");
    capture_start();
    log_info("utf8", "v", v);
    char *out = capture_end();
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    ck_assert_msg(o != NULL, "%s", je.text);
    json_decref(o);
    free(out);
    free(v);
}
END_TEST

/* 4 processes x 300 lines of ~1 KB into one pipe: every line whole. */
START_TEST(whole_lines_from_many_processes)
{
    unsetenv("JOURNAL_STREAM");
    log_setup(LOG_INFO, LOG_FMT_JSON, "w");
    char pad[1000];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    capture_start();
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            char n[24];
            for (int i = 0; i < 300; i++)
                log_info("line", "i", log_int(n, i), "pad", pad);
            _exit(0);
        }
    }
    /* read while they write (the pipe holds only 64 KiB) */
    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    buf b = BUF_INIT;
    char chunk[8192];
    for (ssize_t n; (n = read(pipe_rd, chunk, sizeof chunk)) > 0;)
        buf_append(&b, chunk, (size_t)n);
    close(pipe_rd);
    for (int k = 0; k < 4; k++) {
        int st;
        ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
    }
    buf_append(&b, "", 1);
    int lines = 0;
    for (char *save, *l = strtok_r((char *)b.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(l, 0, &je);
        ck_assert_msg(o != NULL, "line %d is not whole: %.80s", lines, l);
        ck_assert_str_eq(json_string_value(json_object_get(o, "pad")), pad);
        json_decref(o);
        lines++;
    }
    ck_assert_int_eq(lines, 1200);
    buf_free(&b);
}
END_TEST

START_TEST(errno_kept)
{
    log_setup(LOG_INFO, LOG_FMT_LOGFMT, "w");
    capture_start();
    errno = ENOENT;
    log_info("x");
    int after = errno;
    free(capture_end());
    ck_assert_int_eq(after, ENOENT);
}
END_TEST

START_TEST(printable)
{
    char out[16];
    ck_assert_str_eq(log_printable("abc", 3, out, sizeof out), "abc");
    ck_assert_str_eq(log_printable("a\0b\n", 4, out, sizeof out), "a\\x00b\\x0a");
    ck_assert_str_eq(log_printable("a\\'\"", 4, out, sizeof out), "a\\\\'\"");
    ck_assert_str_eq(log_printable("0123456789abcdefghij", 20, out, sizeof out), "0123456789ab...");
    ck_assert_str_eq(log_printable("0123456789abcde", 15, out, sizeof out), "0123456789abcde");
    ck_assert_str_eq(log_printable("\xff\xff\xff\xff", 4, out, sizeof out), "\\xff\\xff\\xff...");
    ck_assert_str_eq(log_printable(NULL, 5, out, sizeof out), "");
    char tiny[3] = "zz";
    ck_assert_str_eq(log_printable("abc", 3, tiny, sizeof tiny), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, logfmt_line);
    tcase_add_test(tc, logfmt_quoting);
    tcase_add_test(tc, json_lines);
    tcase_add_test(tc, levels);
    tcase_add_test(tc, journal_prefix);
    tcase_add_test(tc, long_values_cut);
    tcase_add_test(tc, whole_lines_from_many_processes);
    tcase_add_test(tc, errno_kept);
    tcase_add_test(tc, printable);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
