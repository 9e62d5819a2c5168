/* base: capped buffers, errors, formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/config.h"

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

static void config_sections_names_and_repeats(void **state)
{
    (void)state;
    struct drv_config *c;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_config_parse("; comment\n[serve]\nport = 11435\nmodel = a.gguf\n"
                                      "model = b.gguf\n[Node  gpu-laptop ]\nurl = http://x\n"
                                      "[alias qwen2.5:3b]\nmodel = q\n",
                                      &c, &err),
                     0);
    assert_int_equal(c->n, 5);
    assert_string_equal(drv_config_get(c, "serve", "", "port"), "11435");
    assert_string_equal(drv_config_get(c, "serve", "", "model"), "b.gguf"); /* the last */
    assert_string_equal(c->entries[1].value, "a.gguf");                     /* both kept */
    assert_string_equal(drv_config_get(c, "node", "gpu-laptop", "url"), "http://x");
    assert_string_equal(drv_config_get(c, "alias", "qwen2.5:3b", "model"), "q");
    assert_null(drv_config_get(c, "serve", "", "nope"));
    drv_config_free(c);
}

static void config_errors(void **state)
{
    (void)state;
    struct drv_config *c;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_config_parse("[serve]\nport = 1\n[broken\n", &c, &err), DRV_EINVAL);
    assert_null(c);
    assert_string_equal(err.msg, "syntax error on line 3");
    drv_err_init(&err);
    assert_int_equal(drv_config_load("/nonexistent/drover.conf", &c, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/drover.conf"));
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
        cmocka_unit_test(config_sections_names_and_repeats),
        cmocka_unit_test(config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
