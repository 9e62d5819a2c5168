/* model: GGUF inspection of real files and of damaged copies of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

#define STORIES DROVER_TEST_MODELS "/stories260K.gguf"
#define TINY    DROVER_TEST_MODELS "/llama-2-tiny-random.gguf"

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *p = malloc((size_t)n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return p;
}

static void stories_shape(void **state)
{
    (void)state;
    struct drv_gguf_info in;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_gguf_inspect_file(STORIES, &in, &err), 0);
    assert_string_equal(in.arch, "llama");
    assert_int_equal(in.n_block, 5);
    assert_int_equal(in.n_embd, 64);
    assert_int_equal(in.n_head, 8);
    assert_int_equal(in.n_head_kv, 4);
    assert_int_equal(in.head_dim_k, 8);
    assert_int_equal(in.n_ff, 172);
    assert_int_equal(in.n_ctx_train, 2048);
    assert_int_equal(in.n_vocab, 512);
    assert_string_equal(in.tokenizer, "llama");
    assert_string_equal(in.quant, "F32");
    assert_int_equal(in.n_tensors, 48);
    assert_int_equal(in.n_params, 292800);
    assert_int_equal(in.n_types, 1);
    assert_string_equal(in.types[0].type, "f32");
    assert_int_equal(in.types[0].n_bytes, 292800 * 4);
    assert_false(in.has_chat_template);
    assert_int_equal(in.n_expert, 0);
    assert_int_equal(in.file_size, 1185376);
}

static void tiny_random_has_f16_and_big_vocab(void **state)
{
    (void)state;
    struct drv_gguf_info in;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_gguf_inspect_file(TINY, &in, &err), 0);
    assert_int_equal(in.n_vocab, 32000);
    assert_int_equal(in.n_block, 1);
    assert_int_equal(in.n_embd, 8);
    bool has_f16 = false;
    uint64_t sum = 0;
    for (int i = 0; i < in.n_types; i++) {
        has_f16 |= strcmp(in.types[i].type, "f16") == 0;
        sum += in.types[i].n_bytes;
    }
    assert_true(has_f16);
    assert_int_equal(sum, in.tensor_bytes);
}

static void every_truncation_is_an_error(void **state)
{
    (void)state;
    size_t size;
    unsigned char *p = read_all(STORIES, &size);
    struct drv_gguf_info in;
    /* cut at many points, including inside the tensor data */
    size_t cuts[] = {0, 3, 4, 8, 23, 24, 100, 1000, 4096, 20000, size / 2, size - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct drv_err err;
        drv_err_init(&err);
        assert_int_not_equal(drv_gguf_inspect_buffer(p, cuts[i], &in, &err), 0);
        assert_int_equal(err.code, DRV_EFORMAT);
        assert_non_null(strstr(err.msg, "GGUF") ? err.msg : strstr(err.msg, "truncated"));
    }
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_gguf_inspect_buffer(p, size, &in, &err), 0);
    free(p);
}

static void flipped_bytes_never_crash(void **state)
{
    (void)state;
    size_t size;
    unsigned char *p = read_all(STORIES, &size);
    unsigned char *q = malloc(size);
    srand(1234);
    for (int round = 0; round < 300; round++) {
        memcpy(q, p, size);
        /* damage the header and metadata, where the parser lives */
        for (int k = 0; k < 4; k++)
            q[4 + (size_t)rand() % 20000] = (unsigned char)rand();
        struct drv_gguf_info in;
        struct drv_err err;
        drv_err_init(&err);
        int rc = drv_gguf_inspect_buffer(q, size, &in, &err);
        if (rc != 0)
            assert_true(err.msg[0] != '\0');
    }
    free(q);
    free(p);
}

static void missing_dir_and_text_files(void **state)
{
    (void)state;
    struct drv_gguf_info in;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_gguf_inspect_file("/nonexistent/x.gguf", &in, &err), DRV_ENOENT);
    drv_err_init(&err);
    assert_int_equal(drv_gguf_inspect_file("/tmp", &in, &err), DRV_EINVAL);
    assert_non_null(strstr(err.msg, "directory"));
    drv_err_init(&err);
    assert_int_equal(drv_gguf_inspect_file("/etc/passwd", &in, &err), DRV_EFORMAT);
    assert_non_null(strstr(err.msg, "not a GGUF file"));
}

static void ftype_names(void **state)
{
    (void)state;
    assert_string_equal(drv_ftype_name(15), "Q4_K_M");
    assert_string_equal(drv_ftype_name(0), "F32");
    assert_null(drv_ftype_name(4)); /* removed Q4_1_SOME_F16 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stories_shape),
        cmocka_unit_test(tiny_random_has_f16_and_big_vocab),
        cmocka_unit_test(every_truncation_is_an_error),
        cmocka_unit_test(flipped_bytes_never_crash),
        cmocka_unit_test(missing_dir_and_text_files),
        cmocka_unit_test(ftype_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
