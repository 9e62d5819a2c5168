/* base: capped buffers, errors, formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static void buf_appends_and_terminates(void **state)
{
    (void)state;
    struct drv_buf b;
    drv_buf_init(&b, 64);
    assert_int_equal(drv_buf_append(&b, "abc", 3), 0);
    assert_int_equal(drv_buf_appendf(&b, "-%d-", 42), 0);
    assert_string_equal(b.data, "abc-42-");
    assert_int_equal(b.len, 7);
    drv_buf_release(&b);
}

static void buf_refuses_past_cap_and_keeps_content(void **state)
{
    (void)state;
    struct drv_buf b;
    drv_buf_init(&b, 8);
    assert_int_equal(drv_buf_append(&b, "12345678", 8), 0);
    assert_int_equal(drv_buf_append(&b, "9", 1), DRV_ETOOBIG);
    assert_string_equal(b.data, "12345678");
    drv_buf_reset(&b);
    assert_int_equal(drv_buf_appendf(&b, "%s", "a very long string past the cap"), DRV_ETOOBIG);
    assert_int_equal(b.len, 0);
    /* a huge append must not wrap the size arithmetic */
    assert_int_equal(drv_buf_append(&b, "x", SIZE_MAX), DRV_ETOOBIG);
    drv_buf_release(&b);
}

static void buf_long_appendf_grows(void **state)
{
    (void)state;
    struct drv_buf b;
    drv_buf_init(&b, 4096);
    char big[1000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(drv_buf_appendf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[1000], '>');
    char *s = drv_buf_steal(&b);
    assert_int_equal(strlen(s), 1001);
    assert_null(b.data);
    free(s);
}

static void err_keeps_first_message(void **state)
{
    (void)state;
    struct drv_err e;
    drv_err_init(&e);
    assert_int_equal(drv_err_set(&e, DRV_EINVAL, "first %d", 1), DRV_EINVAL);
    assert_int_equal(drv_err_set(&e, DRV_EIO, "second"), DRV_EIO);
    assert_string_equal(e.msg, "first 1");
    assert_int_equal(e.code, DRV_EINVAL);
    assert_int_equal(drv_err_set(NULL, DRV_ENOENT, "nobody listens"), DRV_ENOENT);
}

static void formats_bytes_and_counts(void **state)
{
    (void)state;
    char s[32];
    assert_string_equal(drv_fmt_bytes(512, s, sizeof(s)), "512 B");
    assert_string_equal(drv_fmt_bytes(1185376, s, sizeof(s)), "1.13 MiB");
    assert_string_equal(drv_fmt_count(292800, s, sizeof(s)), "293K");
    assert_string_equal(drv_fmt_count(7615616512ull, s, sizeof(s)), "7.62B");
    assert_string_equal(drv_fmt_count(999, s, sizeof(s)), "999");
}

static void parses_log_levels(void **state)
{
    (void)state;
    enum drv_log_level l;
    assert_true(drv_log_parse_level("DEBUG", &l));
    assert_int_equal(l, DRV_LOG_DEBUG);
    assert_true(drv_log_parse_level("error", &l));
    assert_int_equal(l, DRV_LOG_ERROR);
    assert_false(drv_log_parse_level("loud", &l));
}

static void strlcpy_truncates(void **state)
{
    (void)state;
    char s[4];
    assert_int_equal(drv_strlcpy(s, "abcdef", sizeof(s)), 6);
    assert_string_equal(s, "abc");
    assert_true(drv_str_has_suffix("model.gguf", ".gguf"));
    assert_false(drv_str_has_suffix("gguf", ".gguf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_appends_and_terminates),
        cmocka_unit_test(buf_refuses_past_cap_and_keeps_content),
        cmocka_unit_test(buf_long_appendf_grows),
        cmocka_unit_test(err_keeps_first_message),
        cmocka_unit_test(formats_bytes_and_counts),
        cmocka_unit_test(parses_log_levels),
        cmocka_unit_test(strlcpy_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
