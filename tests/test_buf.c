/* lib/buf: growth, appends and printf-style appends. */
#include <check.h>
#include <string.h>

#include "buf.h"
#include "support.h"

/* Formatted appends follow each other, of any length (no fixed scratch
 * line to cut them), and the text stays NUL-terminated past len. */
START_TEST(printf_appends_whole)
{
    buf b = BUF_INIT;
    ck_assert_int_eq(buf_printf(&b, "%s=%d;", "a", 1), 0);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(buf_printf(&b, "[%s]", big), 0);
    ck_assert_int_eq(buf_printf(&b, "%.1f", 2.5), 0);
    ck_assert_uint_eq(b.len, 4 + 1 + 2999 + 1 + 3);
    ck_assert(memcmp(b.data, "a=1;[x", 6) == 0);
    ck_assert(memcmp(b.data + b.len - 5, "x]2.5", 5) == 0);
    ck_assert_int_eq(b.data[b.len], '\0');
    buf_free(&b);
}
END_TEST

START_TEST(append_and_reset)
{
    buf b = BUF_INIT;
    ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
    ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
    ck_assert_uint_eq(b.len, 3);
    size_t cap = b.cap;
    buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_int_eq(buf_reserve(&b, (size_t)-1), -1);
    buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, printf_appends_whole);
    tcase_add_test(tc, append_and_reset);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
