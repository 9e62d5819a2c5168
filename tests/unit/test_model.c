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
#include "probe/probe.h"

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
    assert_int_equal(in.hp.n_block, 5);
    assert_int_equal(in.hp.n_embd, 64);
    assert_int_equal(in.hp.n_head, 8);
    assert_int_equal(in.hp.n_head_kv, 4);
    assert_int_equal(in.hp.head_dim_k, 8);
    assert_int_equal(in.hp.n_ff, 172);
    assert_int_equal(in.hp.n_ctx_train, 2048);
    assert_int_equal(in.hp.n_vocab, 512);
    assert_string_equal(in.tokenizer, "llama");
    assert_string_equal(in.quant, "F32");
    assert_int_equal(in.n_tensors, 48);
    assert_int_equal(in.n_params, 292800);
    assert_int_equal(in.n_types, 1);
    assert_string_equal(in.types[0].type, "f32");
    assert_int_equal(in.types[0].n_bytes, 292800 * 4);
    assert_false(in.has_chat_template);
    assert_int_equal(in.hp.n_expert, 0);
    assert_int_equal(in.file_size, 1185376);
}

static void tiny_random_has_f16_and_big_vocab(void **state)
{
    (void)state;
    struct drv_gguf_info in;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_gguf_inspect_file(TINY, &in, &err), 0);
    assert_int_equal(in.hp.n_vocab, 32000);
    assert_int_equal(in.hp.n_block, 1);
    assert_int_equal(in.hp.n_embd, 8);
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

/* GGUF bytes: the header, then key-value pairs put_kv_* append */
struct gguf_bytes {
    unsigned char b[512];
    size_t n;
};

static void put(struct gguf_bytes *g, const void *p, size_t n)
{
    assert_true(g->n + n <= sizeof(g->b));
    memcpy(g->b + g->n, p, n);
    g->n += n;
}

static void put_u32(struct gguf_bytes *g, uint32_t v)
{
    put(g, &v, 4);
}

static void put_str(struct gguf_bytes *g, const char *s)
{
    uint64_t n = strlen(s);
    put(g, &n, 8);
    put(g, s, n);
}

/* A numeric key holding an array of strings: gguf asserts when asked for such
 * an array's data, so the reader must check the type first (it did not). */
static void string_array_under_numeric_key(void **state)
{
    (void)state;
    struct gguf_bytes g = {.n = 0};
    put(&g, "GGUF", 4);
    put_u32(&g, 3);
    uint64_t n_tensors = 0, n_kv = 2, n_arr = 2;
    put(&g, &n_tensors, 8);
    put(&g, &n_kv, 8);
    put_str(&g, "general.architecture");
    put_u32(&g, 8); /* GGUF_TYPE_STRING */
    put_str(&g, "llama");
    put_str(&g, "llama.block_count");
    put_u32(&g, 9); /* GGUF_TYPE_ARRAY */
    put_u32(&g, 8); /* of strings */
    put(&g, &n_arr, 8);
    put_str(&g, "a");
    put_str(&g, "b");
    struct drv_gguf_info *in = malloc(sizeof(*in));
    assert_int_equal(drv_gguf_inspect_buffer(g.b, g.n, in, NULL), 0);
    assert_string_equal(in->arch, "llama");
    assert_int_equal(in->hp.n_block, 0);
    free(in);
}

static void ftype_names(void **state)
{
    (void)state;
    assert_string_equal(drv_ftype_name(15), "Q4_K_M");
    assert_string_equal(drv_ftype_name(0), "F32");
    assert_null(drv_ftype_name(4)); /* removed Q4_1_SOME_F16 */
}

static void catalog_lookup(void **state)
{
    (void)state;
    assert_true(drv_catalog_count() >= 20);
    const struct drv_model_shape *s = drv_catalog_find("qwen2.5:3b");
    assert_non_null(s);
    assert_string_equal(s->arch, "qwen2");
    assert_int_equal(s->n_layer, 36);
    assert_int_equal(s->n_embd, 2048);
    assert_int_equal(s->n_head, 16);
    assert_int_equal(s->n_head_kv, 2);
    assert_int_equal(s->head_dim, 128);
    assert_int_equal(s->n_ff, 11008);
    assert_int_equal(s->n_vocab, 151936);
    assert_true(s->tied);
    /* qwen3: head_dim 128 even where n_embd / n_head is 64 */
    s = drv_catalog_find("QWEN3:0.6B");
    assert_non_null(s);
    assert_int_equal(s->head_dim, 128);
    assert_int_equal(s->n_embd / s->n_head, 64);
    s = drv_catalog_find("llama3.2:1b");
    assert_non_null(s);
    assert_int_equal(s->n_vocab, 128256);
    assert_int_equal(s->n_ctx_train, 131072);
    assert_null(drv_catalog_find("qwen2.5"));
    assert_null(drv_catalog_find("qwen2.5:3b:latest"));
    /* every entry is a shape synth accepts, with a plausible parameter count */
    for (int i = 0; i < drv_catalog_count(); i++) {
        struct drv_err err;
        drv_err_init(&err);
        assert_int_equal(drv_shape_check(drv_catalog_at(i), &err), 0);
        assert_ptr_equal(drv_catalog_find(drv_catalog_at(i)->name), drv_catalog_at(i));
    }
    assert_null(drv_catalog_at(drv_catalog_count()));
    /* Qwen2.5-3B's card: 3,085,938,688 parameters */
    assert_int_equal(drv_shape_params(drv_catalog_find("qwen2.5:3b")), 3085938688ull);
}

static bool has_name(const char **list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

static void catalog_close_matches(void **state)
{
    (void)state;
    const char *near[5];
    /* a size that does not exist: the family's sizes */
    int n = drv_catalog_suggest("qwen3:9b", near, 5);
    assert_true(n >= 1);
    assert_true(has_name(near, n, "qwen3:8b"));
    for (int i = 0; i < n; i++)
        assert_int_equal(strncmp(near[i], "qwen3:", 6), 0);
    /* a typo */
    n = drv_catalog_suggest("lama3.2:1b", near, 5);
    assert_true(n >= 1);
    assert_string_equal(near[0], "llama3.2:1b");
    /* a prefix */
    n = drv_catalog_suggest("smollm", near, 5);
    assert_int_equal(n, 3);
    assert_true(has_name(near, n, "smollm2:135m"));
    /* nothing close */
    assert_int_equal(drv_catalog_suggest("zzzzzzzzzzzz", near, 5), 0);
    /* the error message carries them */
    struct drv_model_shape s;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_shape_resolve("qwen3:9b", &s, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "unknown model 'qwen3:9b'"));
    assert_non_null(strstr(err.msg, "qwen3:8b"));
    drv_err_init(&err);
    assert_int_equal(drv_shape_resolve("tinyllama:1.1b", &s, &err), 0);
    assert_int_equal(s.n_vocab, 32000);
}

static void shape_parse_ok(void **state)
{
    (void)state;
    struct drv_model_shape s;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(
        drv_shape_parse("llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000", &s, &err),
        0);
    assert_string_equal(s.arch, "llama");
    assert_string_equal(s.name, "");
    assert_int_equal(s.n_layer, 2);
    assert_int_equal(s.n_embd, 256);
    assert_int_equal(s.n_head, 4);
    assert_int_equal(s.n_head_kv, 2);
    assert_int_equal(s.head_dim, 64);
    assert_int_equal(s.n_ff, 512);
    assert_int_equal(s.n_vocab, 1000);
    assert_int_equal(s.n_ctx_train, 4096);
    assert_false(s.tied);
    drv_err_init(&err);
    assert_int_equal(drv_shape_resolve("qwen3:vocab=300,ff=64,kv_heads=1,heads=2,embd=32,"
                                       "layers=1,head_dim=128,ctx=512,tied=1,rope_theta=5e5",
                                       &s, &err),
                     0);
    assert_string_equal(s.arch, "qwen3");
    assert_int_equal(s.head_dim, 128);
    assert_int_equal(s.n_ctx_train, 512);
    assert_true(s.tied);
    assert_true(s.rope_theta == 5e5f);
}

static void shape_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        const char *msg;
    } bad[] = {
        {"layers=2,embd=256", "SHAPE must look like"},
        {"gemma2:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000", "unknown architecture"},
        {"gemma4:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000", "gemma4 needs experts"},
        {"gemma4:layers=1,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,experts=4,experts_used=2,"
         "expert_ff=64",
         "at least 2 layers"},
        {"gemma4:layers=6,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,experts=4,experts_used=2,"
         "expert_ff=64,global_kv_heads=3",
         "global_kv_heads must divide"},
        {"gemma4:layers=6,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,experts=4,experts_used=2,"
         "expert_ff=64,global_head_dim=1025",
         "global_head_dim must be"},
        {"gemma3:layers=6,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,global_head_dim=128",
         "gemma4 architecture only"},
        {"phi3:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,rot=65", "rot must be"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,swa=64",
         "gemma3 and gemma4 architectures only"},
        {"gemma3:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,swa=0", "gemma3 needs"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512", "lacks 'vocab='"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=3,ff=512,vocab=1000", "kv_heads must divide"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=100", "vocab must be"},
        {"llama:layers=x,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000", "not a whole number"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,", "ends with ','"},
        {"llama:layers=2,layers=3,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000", "given twice"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,depth=3", "unknown key"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff,vocab=1000", "not key=value"},
        {"llama:layers=2,embd=250,heads=4,kv_heads=2,ff=512,vocab=1000", "not a multiple"},
        {"qwen2:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,head_dim=128", "qwen2"},
        {"llama:layers=99999999999,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000", "too large"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,tied=2", "0 or 1"},
        {"llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,experts=8",
         "qwen3moe and gemma4 architectures only"},
        {"qwen3moe:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000", "qwen3moe needs"},
        {"qwen3moe:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,experts=4,"
         "experts_used=8,expert_ff=64",
         "qwen3moe needs"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct drv_model_shape s;
        struct drv_err err;
        drv_err_init(&err);
        int rc = drv_shape_resolve(bad[i].spec, &s, &err);
        if (rc != DRV_EINVAL || strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("%s: rc %d, '%s', want '%s'", bad[i].spec, rc, err.msg, bad[i].msg);
    }
}

static void synth_quant_names(void **state)
{
    (void)state;
    enum drv_synth_quant q;
    assert_true(drv_synth_quant_parse("Q4_K_M", &q));
    assert_int_equal(q, DRV_SYNTH_Q4_K_M);
    assert_int_equal(drv_synth_quant_ftype(q), 15);
    assert_true(drv_synth_quant_parse("q4_0", &q));
    assert_int_equal(drv_synth_quant_ftype(q), 2);
    assert_true(drv_synth_quant_parse("q5_k_m", &q));
    assert_int_equal(drv_synth_quant_ftype(q), 17);
    assert_true(drv_synth_quant_parse("q8_0", &q));
    assert_int_equal(drv_synth_quant_ftype(q), 7);
    assert_true(drv_synth_quant_parse("f16", &q));
    assert_int_equal(drv_synth_quant_ftype(q), 1);
    assert_string_equal(drv_synth_quant_name(q), "f16");
    assert_false(drv_synth_quant_parse("q4_k", &q));
    assert_false(drv_synth_quant_parse("", &q));
}

static uint32_t type_count(const struct drv_gguf_info *in, const char *type)
{
    for (int i = 0; i < in->n_types; i++)
        if (strcmp(in->types[i].type, type) == 0)
            return in->types[i].n_tensors;
    return 0;
}

/* Synthesizes shape (Q4_K_M, the default) into a new temporary file named
 * from the template path; *p: the parameters it was written with. */
static void synth_temp(const char *shape, char *path, struct drv_synth_params *p)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    *p = drv_synth_default_params();
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_shape_parse(shape, &p->shape, &err), 0);
    assert_int_equal(p->quant, DRV_SYNTH_Q4_K_M);
    p->n_threads = 2;
    assert_int_equal(drv_synth_write(p, path, &err), 0);
}

/* A tiny qwen3 (q/k norms, head_dim != embd/heads) in Q4_K_M reads back exactly. */
static void synth_writes_what_inspect_reads(void **state)
{
    (void)state;
    char path[] = "/tmp/drover-test-synth-XXXXXX";
    struct drv_synth_params p;
    synth_temp("qwen3:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=600,head_dim=128", path,
               &p);
    struct drv_err err;
    drv_err_init(&err);
    struct drv_gguf_info in;
    assert_int_equal(drv_gguf_inspect_file(path, &in, &err), 0);
    unlink(path);
    assert_string_equal(in.arch, "qwen3");
    assert_string_equal(in.quant, "Q4_K_M");
    assert_int_equal(in.hp.n_block, 2);
    assert_int_equal(in.hp.n_embd, 256);
    assert_int_equal(in.hp.n_head, 4);
    assert_int_equal(in.hp.n_head_kv, 2);
    assert_int_equal(in.hp.head_dim_k, 128);
    assert_int_equal(in.hp.n_ff, 512);
    assert_int_equal(in.hp.n_vocab, 600);
    assert_string_equal(in.tokenizer, "llama");
    /* token_embd + 2 x (4 norms + q k v o + gate up down) + output_norm + output */
    assert_int_equal(in.n_tensors, 1 + 2 * 11 + 2);
    assert_int_equal(in.n_params, drv_shape_params(&p.shape));
    assert_int_equal(in.tensor_bytes, drv_synth_tensor_bytes(&p));
    /* llama.cpp's Q4_K_M mix: output q6_K, attn_v and ffn_down of the last layer q6_K */
    assert_int_equal(type_count(&in, "q6_K"), 3);
    assert_int_equal(type_count(&in, "f32"), 2 * 4 + 1);
    assert_int_equal(type_count(&in, "q4_K"), 1 + 7 + 5);
}

static void synth_fails_cleanly(void **state)
{
    (void)state;
    struct drv_synth_params p = drv_synth_default_params();
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_synth_write(&p, "/tmp/never-written.gguf", &err), DRV_EINVAL);
    assert_int_equal(access("/tmp/never-written.gguf", F_OK), -1);
    drv_err_init(&err);
    p.shape = *drv_catalog_find("smollm2:135m");
    assert_int_equal(drv_synth_write(&p, "/nonexistent/dir/x.gguf", &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/x.gguf"));
}

/* ---- fit ---- */

static struct drv_fit_model *fit_load(const char *name)
{
    struct drv_fit_model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    struct drv_err err;
    drv_err_init(&err);
    int rc = drv_fit_model_load(name, m, &err);
    if (rc)
        fail_msg("%s: %s", name, err.msg);
    return m;
}

/* a machine with 32 GiB of RAM, 50 GB/s measured, and a GPU with gpu_free bytes */
static void fake_hw(struct drv_hw *hw, uint64_t gpu_free, const char *gpu_type)
{
    memset(hw, 0, sizeof(*hw));
    strcpy(hw->cpu.model, "test cpu");
    hw->memory.total_bytes = hw->memory.available_bytes = 32ull << 30;
    hw->memory.bandwidth_gbps = 50;
    strcpy(hw->devices[0].name, "CPU");
    strcpy(hw->devices[0].type, "cpu");
    hw->n_devices = 1;
    if (gpu_free) {
        strcpy(hw->devices[1].name, "CUDA0");
        strcpy(hw->devices[1].type, gpu_type);
        hw->devices[1].memory_total_bytes = hw->devices[1].memory_free_bytes = gpu_free;
        hw->n_devices = 2;
    }
}

static void fit_kv_known_shapes(void **state)
{
    (void)state;
    struct drv_fit_model *m = fit_load("llama3.1:8b");
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_F16), 128 * 1024);
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_Q8_0), 68 * 1024);
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_Q4_0), 36 * 1024);
    assert_string_equal(m->quant, "Q4_K_M");
    free(m);

    /* 5 layers x 4 kv heads x 8 dims x 2 (K, V) x 2 bytes */
    m = fit_load(STORIES);
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_F16), 640);
    struct drv_gguf_info in;
    assert_int_equal(drv_gguf_inspect_file(STORIES, &in, NULL), 0);
    assert_int_equal(m->total_bytes, in.tensor_bytes);
    uint64_t sum = m->embd_bytes + m->output_bytes;
    for (uint32_t i = 0; i < m->n_layer; i++)
        sum += m->layer_bytes[i];
    assert_int_equal(sum, in.tensor_bytes);
    assert_false(m->tied);
    free(m);
}

static void fit_catalog_names(void **state)
{
    (void)state;
    struct drv_fit_model *m = fit_load("llama3.2:1b-q4_0");
    assert_string_equal(m->name, "llama3.2:1b");
    assert_string_equal(m->quant, "Q4_0");
    assert_true(m->tied);
    struct drv_synth_params p = drv_synth_default_params();
    p.shape = *drv_catalog_find("llama3.2:1b");
    p.quant = DRV_SYNTH_Q4_0;
    assert_int_equal(m->total_bytes, drv_synth_tensor_bytes(&p));
    free(m);
    m = fit_load("deepseek-r1:8b-llama-distill-q8_0");
    assert_string_equal(m->quant, "Q8_0");
    free(m);

    struct drv_fit_model *u = calloc(1, sizeof(*u));
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_fit_model_load("qwen3:9b-q8_0", u, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "did you mean"));
    assert_non_null(strstr(err.msg, "qwen3:8b"));
    drv_err_init(&err);
    assert_int_equal(drv_fit_model_load("/nonexistent/x.gguf", u, &err), DRV_ENOENT);
    free(u);

    enum drv_fit_kv kv;
    assert_true(drv_fit_kv_parse("Q8_0", &kv));
    assert_int_equal(kv, DRV_FIT_KV_Q8_0);
    assert_false(drv_fit_kv_parse("q5_0", &kv));
}

/* A discrete GPU's bandwidth, measured by the probe or written by hand, gives
 * the GPU tok/s range (40-80 % of it); an integrated GPU keeps reading RAM. */
static void fit_gpu_bandwidth(void **state)
{
    (void)state;
    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *r = malloc(sizeof(*r));
    assert_non_null(hw);
    assert_non_null(r);
    fake_hw(hw, 8ull << 30, "gpu");
    hw->devices[1].bandwidth_gbps = 400;
    hw->devices[1].bandwidth_measured = true;
    struct drv_fit_params p = drv_fit_default_params();
    struct drv_fit_model *m = fit_load("qwen2.5:7b");

    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_GPU);
    assert_true(r->dev[1].bw_gbps == 400);
    assert_true(r->dev[1].bw_measured);
    assert_false(r->tg_upper_only);
    /* everything read per token is on the GPU */
    double rpt = (double)r->read_per_token;
    assert_float_equal(r->tg_lo, 400e9 * DRV_FIT_EFF_GPU_LO / rpt, 1e-6);
    assert_float_equal(r->tg_hi, 400e9 * DRV_FIT_EFF_GPU_HI / rpt, 1e-6);
    assert_true(r->tg_lo > 20 && r->tg_hi < 100); /* ~5 GB a token */

    /* the same number from a spec sheet: same range, not called measured */
    hw->devices[1].bandwidth_measured = false;
    drv_fit_plan(m, hw, &p, r);
    assert_false(r->dev[1].bw_measured);
    assert_float_equal(r->tg_lo, 400e9 * DRV_FIT_EFF_GPU_LO / rpt, 1e-6);

    /* an integrated GPU reads the RAM (50 GB/s), whatever its device says */
    hw->devices[1].bandwidth_measured = true;
    strcpy(hw->devices[1].type, "igpu");
    drv_fit_plan(m, hw, &p, r);
    assert_true(r->dev[1].bw_gbps == 50);
    assert_true(r->dev[1].bw_measured);
    free(m);
    free(hw);
    free(r);
}

static void fit_8gb_gpu(void **state)
{
    (void)state;
    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *r = malloc(sizeof(*r));
    assert_non_null(hw);
    assert_non_null(r);
    fake_hw(hw, 8ull << 30, "gpu");
    struct drv_fit_params p = drv_fit_default_params();

    struct drv_fit_model *m = fit_load("qwen2.5:7b");
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_GPU);
    assert_int_equal(r->n_gpu_layers, 29);
    assert_int_equal(r->dev[1].n_layers, 28);
    assert_true(r->dev[1].has_output);
    assert_int_equal(r->dev[0].n_layers, 0);
    assert_int_equal(r->dev[0].weights, m->embd_bytes);
    /* a discrete GPU's bandwidth is not in the profile: no number is invented */
    assert_true(r->tg_lo < 0 && r->tg_hi < 0);

    /* too much context for the card: a power of two fits, so does q8_0 */
    p.n_ctx = 65536;
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_PARTIAL);
    assert_true(r->alt_ctx >= 256 && r->alt_ctx < 65536);
    assert_int_equal(r->alt_ctx & (r->alt_ctx - 1), 0);
    struct drv_fit_result *r2 = malloc(sizeof(*r2));
    struct drv_fit_params p2 = p;
    p2.n_ctx = r->alt_ctx;
    drv_fit_plan(m, hw, &p2, r2);
    assert_int_equal(r2->verdict, DRV_FIT_GPU);
    p2.n_ctx = r->alt_ctx * 2;
    drv_fit_plan(m, hw, &p2, r2);
    assert_int_not_equal(r2->verdict, DRV_FIT_GPU);
    free(r2);
    free(m);

    /* 70B at q4_k_m (~40 GiB) does not fit 8 GiB: some layers do */
    m = fit_load("llama3.1:70b");
    p = drv_fit_default_params();
    hw->memory.available_bytes = 64ull << 30;
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_PARTIAL);
    assert_true(r->n_gpu_layers > 5 && r->n_gpu_layers < 20);
    assert_true(r->dev[1].has_output);
    assert_int_equal(r->dev[1].n_layers + 1, r->n_gpu_layers);
    assert_int_equal(r->dev[0].n_layers + r->dev[1].n_layers, 80);
    uint64_t gpu = r->dev[1].weights + r->dev[1].kv + r->dev[1].compute + r->dev[1].overhead;
    assert_true(gpu <= 8ull << 30);
    /* one more block would not have fitted */
    assert_true(gpu + m->layer_bytes[0] + r->kv_per_token / 80 * 4096 > 8ull << 30);
    /* the CPU part bounds the speed; the GPU's bandwidth is unknown */
    assert_true(r->tg_upper_only);
    assert_true(r->tg_hi > 0 && r->tg_hi < 50e9 * DRV_FIT_EFF_CPU_HI / (30.0 * 1e9));
    free(m);
    free(hw);
    free(r);
}

/* Sliding-window layers hold the window (plus one ubatch), not the context:
 * gemma3's pattern has every 6th layer global. */
static void fit_sliding_window(void **state)
{
    (void)state;
    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *r = malloc(sizeof(*r));
    fake_hw(hw, 0, NULL);
    struct drv_fit_params p = drv_fit_default_params();
    p.n_ctx = 8192;
    struct drv_fit_model *m = fit_load("llama3.1:8b"); /* 32 layers, 4 KiB per layer-cell */
    drv_strlcpy(m->arch, "gemma3", sizeof(m->arch));
    m->n_swa = 1024;
    assert_false(drv_fit_layer_is_swa(m, 5));
    assert_true(drv_fit_layer_is_swa(m, 4));
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_F16), 5 * 4096); /* 5 global */
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->kv_bytes, 4096ull * (5 * 8192 + 27 * 1536));
    assert_int_equal(r->dev[0].kv, r->kv_bytes);
    /* an architecture without a known pattern: every layer has the window */
    drv_strlcpy(m->arch, "mistral", sizeof(m->arch));
    m->n_swa = 4096;
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->kv_bytes, 4096ull * 32 * 4608);
    p.n_ctx = 2048; /* a context smaller than the window: the whole context */
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->kv_bytes, 4096ull * 32 * 2048);
    /* no window: as before */
    m->n_swa = 0;
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_F16), 128 * 1024);
    free(m);
    free(hw);
    free(r);
}

/* Qwen3-30B-A3B from the catalog: all 128 experts are held, 8 are read a token. */
static void fit_mixture_of_experts(void **state)
{
    (void)state;
    struct drv_fit_model *m = fit_load("qwen3:30b");
    assert_string_equal(m->arch, "qwen3moe");
    assert_int_equal(m->n_expert, 128);
    assert_int_equal(m->n_expert_used, 8);
    /* Ollama's qwen3:30b (Q4_K_M) is 18.6 GB: 17.3 GiB */
    double gib = (double)m->total_bytes / (1ull << 30);
    assert_true(gib > 17.0 && gib < 17.6);
    assert_true(m->expert_bytes > m->total_bytes * 9 / 10);
    struct drv_model_shape s;
    assert_int_equal(drv_shape_resolve("qwen3:30b", &s, NULL), 0);
    double params = (double)drv_shape_params(&s);
    assert_true(params > 30.0e9 && params < 31.0e9); /* 30.5B per the model card */

    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *r = malloc(sizeof(*r));
    fake_hw(hw, 0, NULL);
    struct drv_fit_params p = drv_fit_default_params();
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_CPU);
    /* a token reads the attention, the router and 8 of 128 experts: ~2 GiB, not 17 */
    double read = (double)r->read_per_token / (1ull << 30);
    assert_true(read > 1.5 && read < 2.6);
    free(m);
    free(hw);
    free(r);
}

/* gemma3 from the catalog: 5 of every 6 layers keep a 1024-token window */
static void fit_gemma3_catalog(void **state)
{
    (void)state;
    struct drv_fit_model *m = fit_load("gemma3:27b");
    assert_int_equal(m->n_swa, 1024);
    /* 62 layers: 10 global (5, 11, ..., 59); 16 kv heads x 128 x 2 x 2 bytes each */
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_F16), 10 * 16 * 128 * 2 * 2);
    struct drv_model_shape s;
    assert_int_equal(drv_shape_resolve("gemma3:27b", &s, NULL), 0);
    double params = (double)drv_shape_params(&s);
    assert_true(params > 26.5e9 && params < 27.5e9); /* 27.0B of text weights */
    free(m);
}

/* gemma-4-26B-A4B (MODELS.md): 30 layers, 25 sliding (8 kv heads of 256) and 5
 * global (2 kv heads of 512, K as V), 128 experts of 704, 8 used, beside a dense
 * FFN of 2112. */
static void catalog_gemma4(void **state)
{
    (void)state;
    const struct drv_model_shape *s = drv_catalog_find("gemma4:26b");
    assert_non_null(s);
    assert_string_equal(s->arch, "gemma4");
    assert_int_equal(s->n_layer, 30);
    assert_int_equal(s->n_embd, 2816);
    assert_int_equal(s->n_head, 16);
    assert_int_equal(s->n_head_kv, 8);
    assert_int_equal(s->head_dim, 256);
    assert_int_equal(s->n_head_kv_global, 2);
    assert_int_equal(s->head_dim_global, 512);
    assert_int_equal(s->n_ff, 2112);
    assert_int_equal(s->n_expert, 128);
    assert_int_equal(s->n_expert_used, 8);
    assert_int_equal(s->n_ff_exp, 704);
    assert_int_equal(s->n_vocab, 262144);
    assert_int_equal(s->n_ctx_train, 262144);
    assert_int_equal(s->n_swa, 1024);
    assert_true(s->tied);
    uint32_t global = 0;
    for (uint32_t il = 0; il < s->n_layer; il++)
        global += !drv_shape_layer_is_swa(s, il);
    assert_int_equal(global, 5);
    assert_false(drv_shape_layer_is_swa(s, 5));
    assert_false(drv_shape_layer_is_swa(s, 29));
    assert_true(drv_shape_layer_is_swa(s, 0));
    /* 25.2B in all; a token uses all but 120 of the 128 experts: 3.8B */
    double params = (double)drv_shape_params(s);
    assert_true(params > 25.0e9 && params < 25.4e9);
    double unused =
        (double)s->n_layer * (s->n_expert - s->n_expert_used) * 3.0 * s->n_embd * s->n_ff_exp;
    assert_true(params - unused > 3.7e9 && params - unused < 3.9e9);
    /* Ollama's gemma4:26b (Q4_K_M) is 18 GB with a ~550M-parameter vision
     * encoder (~1.1 GB at 16 bits) that the text weights here leave out */
    struct drv_synth_params p = drv_synth_default_params();
    p.shape = *s;
    double bytes = (double)drv_synth_tensor_bytes(&p);
    assert_true(bytes > 16.3e9 && bytes < 18.0e9);
}

/* The KV cache of gemma4:26b, by hand from the per-layer shapes: a sliding
 * layer caches 8 kv heads x 256 for K and for V, a global one 2 x 512 for K and
 * for V (llama.cpp allocates V although the layer uses K as V). */
static void fit_gemma4_kv(void **state)
{
    (void)state;
    struct drv_fit_model *m = fit_load("gemma4:26b");
    assert_string_equal(m->arch, "gemma4");
    const uint64_t swa_cell = 8 * 256 * 2 * 2, global_cell = 2 * 512 * 2 * 2; /* f16 */
    /* only the 5 global layers grow with the context */
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_F16), 5 * global_cell);
    /* q8_0: 34 bytes per 32 values */
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_Q8_0), 5 * 2 * (1024 / 32 * 34));
    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *r = malloc(sizeof(*r));
    fake_hw(hw, 0, NULL);
    struct drv_fit_params p = drv_fit_default_params();
    p.n_ctx = 8192;
    drv_fit_plan(m, hw, &p, r);
    /* sliding layers: the 1024 window + one 512 ubatch, padded to 256 */
    assert_int_equal(r->kv_bytes, 5 * global_cell * 8192 + 25 * swa_cell * 1536);
    p.n_parallel = 2;
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->kv_bytes, 2 * (5 * global_cell * 8192 + 25 * swa_cell * 1536));
    /* a 16 GB GPU holds the weights but not these caches too: the output and
     * the top blocks go there, each block with its own cache */
    fake_hw(hw, 16ull << 30, "gpu");
    p.n_parallel = 1;
    p.n_ctx = 131072;
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_PARTIAL);
    uint64_t kv = 0;
    for (uint32_t il = 30 - r->dev[1].n_layers; il < 30; il++)
        kv += drv_fit_layer_is_swa(m, il) ? swa_cell * 1536 : global_cell * 131072;
    assert_int_equal(r->dev[1].kv, kv);
    assert_int_equal(r->dev[0].kv + r->dev[1].kv, r->kv_bytes);
    free(m);
    free(hw);
    free(r);
}

/* A small gemma4 written by synth: inspect reads its per-layer attention back,
 * llama-quant's Q4_K_M mix counts attn_v tensors (the global layers have none),
 * and fit plans the file as it plans the shape. */
static void synth_gemma4_reads_back(void **state)
{
    (void)state;
    char path[] = "/tmp/drover-test-gemma4-XXXXXX";
    struct drv_synth_params p;
    synth_temp("gemma4:layers=8,embd=256,heads=4,kv_heads=2,head_dim=64,global_kv_heads=1,"
               "global_head_dim=128,ff=384,vocab=700,experts=8,experts_used=2,expert_ff=96,swa=64",
               path, &p);
    assert_true(p.shape.tied);
    struct drv_err err;
    drv_err_init(&err);
    struct drv_gguf_info *in = malloc(sizeof(*in));
    assert_int_equal(drv_gguf_inspect_file(path, in, &err), 0);
    assert_string_equal(in->arch, "gemma4");
    assert_int_equal(in->n_params, drv_shape_params(&p.shape));
    assert_int_equal(in->tensor_bytes, drv_synth_tensor_bytes(&p));
    /* token_embd, rope_freqs, output_norm; 23 tensors a block, 22 in the global one */
    assert_int_equal(in->n_tensors, 3 + 7 * 23 + 22);
    assert_int_equal(in->hp.n_head_kv, 2);
    assert_int_equal(in->hp.head_dim_k, 128);
    assert_int_equal(in->hp.head_dim_k_swa, 64);
    assert_int_equal(in->hp.head_dim_v_swa, 64);
    assert_int_equal(in->hp.n_swa, 64);
    assert_true(in->hp.has_swa_layers);
    for (uint32_t il = 0; il < 8; il++) {
        assert_int_equal(in->hp.layer_swa[il], il != 5);
        assert_int_equal(in->hp.layer_n_head_kv[il], il != 5 ? 2 : 1);
    }
    /* 7 attn_v (blocks 0-4, 6, 7): ranks 2, 5 and 6 of 7 get q6_K, as does the
     * tied token_embd; judged by block index of 8 it would be 4 (0, 3, 6, 7) */
    assert_int_equal(type_count(in, "q6_K"), 3 + 1);

    struct drv_fit_model *f = fit_load(path), *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    unlink(path);
    assert_int_equal(drv_fit_model_from_shape(&p.shape, p.quant, s, &err), 0);
    assert_int_equal(f->total_bytes, s->total_bytes);
    for (uint32_t il = 0; il < 8; il++) {
        assert_int_equal(f->layer_bytes[il], s->layer_bytes[il]);
        assert_int_equal(drv_fit_layer_is_swa(f, il), drv_fit_layer_is_swa(s, il));
    }
    /* the global layer: 1 kv head of 128 for K and for V, f16 */
    assert_int_equal(drv_fit_kv_bytes_per_token(f, DRV_FIT_KV_F16), 1 * 128 * 2 * 2);
    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *rf = malloc(sizeof(*rf)), *rs = malloc(sizeof(*rs));
    fake_hw(hw, 0, NULL);
    struct drv_fit_params fp = drv_fit_default_params();
    fp.n_ctx = 2048;
    drv_fit_plan(f, hw, &fp, rf);
    drv_fit_plan(s, hw, &fp, rs);
    /* 7 sliding layers of 2 x 64 hold 64 + 512 cells, padded: 768 */
    assert_int_equal(rf->kv_bytes, 128 * 2 * 2 * 2048 + 7 * (2 * 64 * 2 * 2) * 768);
    assert_int_equal(rf->kv_bytes, rs->kv_bytes);
    assert_int_equal(rf->total_bytes, rs->total_bytes);
    /* what the engine reserves before loading the file: the same cache */
    assert_int_equal(drv_fit_kv_bytes_gguf(in, DRV_FIT_KV_F16, 2048, 1), rf->kv_bytes);
    assert_int_equal(drv_fit_kv_bytes(f, DRV_FIT_KV_F16, 2048, 3), 3 * rf->kv_bytes);
    free(in);
    free(f);
    free(s);
    free(hw);
    free(rf);
    free(rs);
}

/* phi3: fused qkv and gate+up; Ollama's phi4 (Q4_K_M) is 9.1 GB = 8.47 GiB */
static void fit_phi3_catalog(void **state)
{
    (void)state;
    struct drv_fit_model *m = fit_load("phi4:14b");
    assert_string_equal(m->arch, "phi3");
    double gib = (double)m->total_bytes / (1ull << 30);
    assert_true(gib > 8.3 && gib < 8.6);
    /* 40 layers x 10 kv heads x 128 x 2 (K, V) x 2 bytes */
    assert_int_equal(drv_fit_kv_bytes_per_token(m, DRV_FIT_KV_F16), 40 * 10 * 128 * 2 * 2);
    free(m);
    struct drv_model_shape s;
    assert_int_equal(drv_shape_resolve("phi4-mini:3.8b", &s, NULL), 0);
    assert_int_equal(s.n_rot, 96);
    double params = (double)drv_shape_params(&s);
    assert_true(params > 3.7e9 && params < 3.95e9); /* 3.84B per the model card */
}

static void fit_roofline_and_ram(void **state)
{
    (void)state;
    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *r = malloc(sizeof(*r));
    fake_hw(hw, 0, NULL);
    hw->memory.bandwidth_gbps = 100;
    struct drv_fit_params p = drv_fit_default_params();
    struct drv_fit_model *m = fit_load("llama3.1:8b");
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_CPU);
    assert_int_equal(r->dev[0].n_layers, 32);
    /* 4.6 GiB of weights less the token embeddings, plus 512 MiB of KV at 4096 */
    uint64_t want = m->total_bytes - m->embd_bytes + 512ull * 1024 * 1024;
    assert_true(r->read_per_token + 1024 >= want && r->read_per_token <= want + 1024);
    double rpt = (double)r->read_per_token;
    assert_float_equal(r->tg_lo, 1 / (rpt / (100e9 * 0.30) + 32 * 40e-6), 0.001);
    assert_float_equal(r->tg_hi, 1 / (rpt / (100e9 * 0.75) + 32 * 10e-6), 0.001);
    assert_true(r->tg_lo > 5 && r->tg_hi < 15);

    /* an integrated GPU reads the host's RAM: the roofline uses its bandwidth */
    fake_hw(hw, 8ull << 30, "igpu");
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_GPU);
    assert_true(r->tg_lo > 3 && r->tg_hi < 10);
    assert_false(r->tg_upper_only);

    /* 2 GiB of RAM: does not fit at all at 128K context, fits at a smaller one? no */
    fake_hw(hw, 0, NULL);
    hw->memory.available_bytes = 2ull << 30;
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_NONE);
    assert_int_equal(r->alt_ctx_ram, 0);
    free(m);
    m = fit_load("llama3.2:1b-q4_0");
    p.n_ctx = 131072;
    drv_fit_plan(m, hw, &p, r);
    assert_int_equal(r->verdict, DRV_FIT_NONE);
    assert_true(r->alt_ctx_ram >= 256 && r->alt_ctx_ram < 131072);
    free(m);
    free(hw);
    free(r);
}

/* A fit model of an explicit SHAPE at quant q, as synth would write it. */
static struct drv_fit_model *fit_shape(const char *spec, enum drv_synth_quant q)
{
    struct drv_fit_model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    struct drv_model_shape s;
    assert_int_equal(drv_shape_parse(spec, &s, NULL), 0);
    assert_int_equal(drv_fit_model_from_shape(&s, q, m, NULL), 0);
    return m;
}

/* The compute and KV buffers against what llama.cpp (the release drover links)
 * logged for the same shapes on this machine's CPU backend (MiB, "CPU compute
 * buffer size" + "CPU output buffer size", "CPU KV buffer size"). */
static void fit_buffers_match_llama_cpp(void **state)
{
    (void)state;
    static const struct {
        const char *shape; /* NULL: llama3.2:1b-q4_0 */
        uint32_t ctx, par;
        double kv_mib, compute_mib;
    } cases[] = {
        {NULL, 512, 1, 16.00, 258.50 + 0.49},
        {NULL, 4096, 1, 128.00, 258.50 + 0.49},
        /* small vocab: the peak is inside a block, plus the KQ mask */
        {"llama:layers=2,embd=512,heads=8,kv_heads=2,ff=1536,vocab=1024", 512, 1, 0.50, 13.51},
        {"llama:layers=2,embd=512,heads=8,kv_heads=2,ff=1536,vocab=1024", 4096, 1, 4.00, 17.01},
        {"llama:layers=2,embd=512,heads=8,kv_heads=2,ff=1536,vocab=1024", 300, 1, 0.50, 7.92},
        {"llama:layers=2,embd=512,heads=8,kv_heads=2,ff=1536,vocab=1024", 1100, 3, 3.75, 14.30},
        {"llama:layers=2,embd=512,heads=8,kv_heads=2,ff=1536,vocab=1024", 100, 2, 0.50, 5.19},
        {"llama:layers=2,embd=2048,heads=16,kv_heads=4,ff=8192,vocab=1024", 4096, 1, 16.00, 68.01},
        /* qwen3's wide Q (16 x 128 > embd 512) */
        {"qwen3:layers=2,embd=512,heads=16,kv_heads=8,head_dim=128,ff=1536,vocab=1024", 512, 1,
         4.00, 14.51},
        /* big vocab: the logits are the peak, the mask is freed by then */
        {"llama:layers=2,embd=512,heads=8,kv_heads=2,ff=1536,vocab=32000", 4096, 1, 4.00,
         64.50 + 0.12},
    };
    struct drv_hw *hw = malloc(sizeof(*hw));
    struct drv_fit_result *r = malloc(sizeof(*r));
    fake_hw(hw, 0, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct drv_fit_model *m = cases[i].shape ? fit_shape(cases[i].shape, DRV_SYNTH_F16)
                                                 : fit_load("llama3.2:1b-q4_0");
        struct drv_fit_params p = drv_fit_default_params();
        p.n_ctx = cases[i].ctx;
        p.n_parallel = cases[i].par;
        drv_fit_plan(m, hw, &p, r);
        double kv = (double)r->dev[0].kv / DRV_FIT_MIB, c = (double)r->dev[0].compute / DRV_FIT_MIB;
        if (kv != cases[i].kv_mib)
            fail_msg("case %zu: KV %.2f MiB, llama.cpp %.2f", i, kv, cases[i].kv_mib);
        if (c < cases[i].compute_mib * 0.97 || c > cases[i].compute_mib * 1.03)
            fail_msg("case %zu: compute %.2f MiB, llama.cpp %.2f", i, c, cases[i].compute_mib);
        free(m);
    }
    free(hw);
    free(r);
}

/* ---- recommend ---- */

/* An 8 GB laptop: 16 GiB RAM at 40 GB/s, an RTX 3070 Laptop (448 GB/s). */
static void laptop_hw(struct drv_hw *hw, bool gpu_bw)
{
    fake_hw(hw, 8ull << 30, "gpu");
    hw->memory.total_bytes = hw->memory.available_bytes = 16ull << 30;
    hw->memory.bandwidth_gbps = 40;
    hw->devices[1].bandwidth_gbps = gpu_bw ? 448 : 0;
}

static struct drv_rec_result *recommend_on(const struct drv_hw *hw)
{
    struct drv_rec_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    struct drv_err err;
    drv_err_init(&err);
    struct drv_rec_params p = drv_recommend_default_params();
    if (drv_recommend_run(hw, &p, r, &err) != 0)
        fail_msg("recommend: %s", err.msg);
    return r;
}

static const struct drv_rec_candidate *pick(const struct drv_rec_result *r, enum drv_rec_role k)
{
    assert_true(r->pick[k] >= 0 && r->pick[k] < r->n_cand);
    return &r->cand[r->pick[k]];
}

static void expect_pick(const struct drv_rec_result *r, enum drv_rec_role k, const char *model,
                        enum drv_synth_quant q)
{
    const struct drv_rec_candidate *c = pick(r, k);
    if (strcmp(c->model, model) != 0 || c->quant != q)
        fail_msg("%s: %s %s, want %s %s", drv_recommend_role_name(k, false), c->model,
                 drv_synth_quant_name(c->quant), model, drv_synth_quant_name(q));
}

static const struct drv_rec_avoid *find_avoid(const struct drv_rec_result *r, const char *model)
{
    for (int i = 0; i < r->n_avoid; i++)
        if (strcmp(r->cand[r->avoid[i].cand].model, model) == 0)
            return &r->avoid[i];
    return NULL;
}

/* Whatever the names, the picks must be what the numbers say. */
static void check_picks_follow_numbers(const struct drv_rec_result *r)
{
    for (int k = 0; k < DRV_REC_N_ROLES; k++) {
        if (r->pick[k] < 0)
            continue;
        const struct drv_rec_candidate *p = &r->cand[r->pick[k]];
        assert_true(p->fits);
        assert_true(p->params >= DRV_REC_USEFUL_PARAMS);
        assert_true(p->max_ctx >= r->params.n_ctx);
        if (r->gpu)
            assert_true(p->fast_used <= r->fast_bytes);
    }
    const struct drv_rec_candidate *fast = pick(r, DRV_REC_FASTEST);
    const struct drv_rec_candidate *qual = pick(r, DRV_REC_QUALITY);
    const struct drv_rec_candidate *daily = pick(r, DRV_REC_DAILY);
    assert_true(drv_recommend_tps(qual) >= DRV_REC_QUALITY_TPS);
    assert_int_equal(daily->quant, DRV_REC_DAILY_QUANT);
    for (int i = 0; i < r->n_cand; i++) {
        const struct drv_rec_candidate *c = &r->cand[i];
        if (!c->fits || c->params < DRV_REC_USEFUL_PARAMS || c->n_ctx < r->params.n_ctx)
            continue;
        double s = drv_recommend_tps(c);
        if (s > drv_recommend_tps(fast))
            fail_msg("%s %s is faster than the fastest pick", c->model,
                     drv_synth_quant_name(c->quant));
        if (c->params > qual->params && s >= DRV_REC_QUALITY_TPS)
            fail_msg("%s %s is bigger than the best-quality pick and fast enough", c->model,
                     drv_synth_quant_name(c->quant));
        if (c->quant == DRV_REC_DAILY_QUANT && c->params > daily->params &&
            s >= DRV_REC_DAILY_TPS && c->max_ctx >= DRV_REC_DAILY_CTX)
            fail_msg("%s is a bigger daily driver", c->model);
    }
    for (int i = 0; i < r->n_avoid; i++) {
        const struct drv_rec_candidate *c = &r->cand[r->avoid[i].cand];
        assert_true(!c->fits || drv_recommend_tps(c) < DRV_REC_QUALITY_TPS);
        for (int k = 0; k < DRV_REC_N_ROLES; k++)
            assert_string_not_equal(c->model, r->cand[r->pick[k]].model);
    }
}

static void recommend_8gb_laptop(void **state)
{
    (void)state;
    struct drv_hw *hw = malloc(sizeof(*hw));
    laptop_hw(hw, true);
    struct drv_rec_result *r = recommend_on(hw);
    assert_true(r->gpu);
    assert_int_equal(r->fast_bytes, 8ull << 30);
    assert_string_equal(r->fast_name, "8.00 GiB VRAM");
    check_picks_follow_numbers(r);
    /* the fewest bytes per token of the >= 1B models */
    expect_pick(r, DRV_REC_FASTEST, "llama3.2:1b", DRV_SYNTH_Q4_0);
    /* 12B at q4_k_m just fits with 4096 tokens; 14B at q4_0 does not */
    expect_pick(r, DRV_REC_QUALITY, "mistral-nemo:12b", DRV_SYNTH_Q4_K_M);
    assert_int_equal(pick(r, DRV_REC_QUALITY)->max_ctx, 4096);
    /* an 8B at q4_k_m leaves room for 16K tokens and generates ~34-68 tok/s */
    expect_pick(r, DRV_REC_DAILY, "qwen3:8b", DRV_SYNTH_Q4_K_M);
    assert_true(pick(r, DRV_REC_DAILY)->max_ctx >= DRV_REC_DAILY_CTX);
    assert_true(drv_recommend_tps(pick(r, DRV_REC_DAILY)) > 30);

    /* the 14Bs spill onto the CPU; 70B does not fit at all */
    const struct drv_rec_avoid *a = find_avoid(r, "qwen3:14b");
    assert_non_null(a);
    assert_int_equal(r->cand[a->cand].verdict, DRV_FIT_PARTIAL);
    assert_non_null(strstr(a->reason, "does not fit 8.00 GiB VRAM"));
    assert_non_null(strstr(a->reason, "layers on the GPU, the rest on the CPU -> ~"));
    a = find_avoid(r, "llama3.1:70b");
    assert_non_null(a);
    assert_non_null(strstr(a->reason, "does not fit this machine at all"));
    assert_null(find_avoid(r, "qwen2.5:0.5b"));
    assert_int_equal(r->n_notes, 0);
    free(r);

    /* without the GPU's bandwidth: no invented tok/s, a note, the same sizes */
    laptop_hw(hw, false);
    r = recommend_on(hw);
    assert_int_equal(r->n_notes, 1);
    assert_non_null(strstr(r->notes[0], "bandwidth_gbps"));
    assert_true(pick(r, DRV_REC_QUALITY)->tg_lo < 0);
    expect_pick(r, DRV_REC_FASTEST, "llama3.2:1b", DRV_SYNTH_Q4_0);
    expect_pick(r, DRV_REC_QUALITY, "mistral-nemo:12b", DRV_SYNTH_Q4_K_M);
    assert_non_null(strstr(r->why[DRV_REC_QUALITY], "assumed"));
    free(r);
    free(hw);
}

static void recommend_cpu_only(void **state)
{
    (void)state;
    struct drv_hw *hw = malloc(sizeof(*hw));
    fake_hw(hw, 0, NULL); /* 32 GiB RAM at 50 GB/s */
    struct drv_rec_result *r = recommend_on(hw);
    assert_false(r->gpu);
    assert_string_equal(r->fast_name, "32.00 GiB RAM");
    check_picks_follow_numbers(r);
    /* 50 GB/s x 52.5 % / 15 tok/s = 1.75 GB a token: a 1.7B at q4_k_m */
    expect_pick(r, DRV_REC_DAILY, "qwen3:1.7b", DRV_SYNTH_Q4_K_M);
    /* the best quality that still makes 5 tok/s: the 30B mixture of experts, which
     * reads only its 3.3B active parameters a token, at q8_0 */
    expect_pick(r, DRV_REC_QUALITY, "qwen3:30b", DRV_SYNTH_Q8_0);
    /* the next sizes up (dense 32Bs) fit but are too slow: one warning per size,
     * smallest first */
    assert_int_equal(r->n_avoid, 3);
    assert_string_equal(r->cand[r->avoid[0].cand].model, "qwen3:32b");
    assert_non_null(strstr(r->avoid[0].reason, "is below 5 tok/s"));
    assert_string_equal(r->cand[r->avoid[1].cand].model, "qwen2.5:32b");
    assert_non_null(strstr(r->avoid[1].reason, "is below 5 tok/s"));
    assert_string_equal(r->cand[r->avoid[2].cand].model, "llama3.1:70b");
    assert_non_null(strstr(r->avoid[2].reason, "does not fit this machine at all"));

    /* a measurement replaces the prediction and can move a pick */
    int was = r->pick[DRV_REC_FASTEST];
    r->cand[was].tg_measured = 1.0;
    drv_recommend_pick(r);
    assert_int_not_equal(r->pick[DRV_REC_FASTEST], was);
    assert_non_null(strstr(r->why[DRV_REC_FASTEST], "(predicted)"));
    r->cand[r->pick[DRV_REC_FASTEST]].tg_measured = 1000;
    drv_recommend_pick(r);
    assert_non_null(strstr(r->why[DRV_REC_FASTEST], "(measured)"));
    assert_float_equal(drv_recommend_tps(pick(r, DRV_REC_FASTEST)), 1000, 1e-9);
    free(r);

    /* 1 GiB of RAM at 5 GB/s: nothing useful fits; no pick, every why says so */
    fake_hw(hw, 0, NULL);
    hw->memory.available_bytes = 1ull << 30;
    hw->memory.bandwidth_gbps = 5;
    r = recommend_on(hw);
    for (int k = 0; k < DRV_REC_N_ROLES; k++) {
        assert_int_equal(r->pick[k], -1);
        assert_non_null(strstr(r->why[k], "no "));
    }
    free(r);

    struct drv_rec_params p = drv_recommend_default_params();
    p.n_ctx = 0;
    struct drv_err err;
    drv_err_init(&err);
    r = malloc(sizeof(*r));
    assert_int_equal(drv_recommend_run(hw, &p, r, &err), DRV_EINVAL);
    free(r);
    free(hw);
}

/* A profile written by `hw --json` and read back gives the same answer. */
static void recommend_profile_round_trip(void **state)
{
    (void)state;
    struct drv_hw *hw = malloc(sizeof(*hw)), *back = malloc(sizeof(*back));
    laptop_hw(hw, true);
    hw->cpu.sockets = hw->cpu.cores = hw->cpu.threads = 8;
    char *json = drv_probe_profile_dump(hw);
    assert_non_null(json);
    struct drv_err err;
    drv_err_init(&err);
    if (drv_probe_profile_parse(json, strlen(json), back, &err) != 0)
        fail_msg("%s: %s", err.msg, json);
    free(json);
    struct drv_rec_result *a = recommend_on(hw), *b = recommend_on(back);
    assert_int_equal(a->n_cand, b->n_cand);
    for (int k = 0; k < DRV_REC_N_ROLES; k++) {
        assert_int_equal(a->pick[k], b->pick[k]);
        assert_string_equal(a->why[k], b->why[k]);
    }
    assert_int_equal(a->n_avoid, b->n_avoid);
    for (int i = 0; i < a->n_avoid; i++)
        assert_string_equal(a->avoid[i].reason, b->avoid[i].reason);
    free(a);
    free(b);
    free(hw);
    free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stories_shape),
        cmocka_unit_test(tiny_random_has_f16_and_big_vocab),
        cmocka_unit_test(every_truncation_is_an_error),
        cmocka_unit_test(flipped_bytes_never_crash),
        cmocka_unit_test(missing_dir_and_text_files),
        cmocka_unit_test(string_array_under_numeric_key),
        cmocka_unit_test(ftype_names),
        cmocka_unit_test(catalog_lookup),
        cmocka_unit_test(catalog_close_matches),
        cmocka_unit_test(shape_parse_ok),
        cmocka_unit_test(shape_parse_errors),
        cmocka_unit_test(synth_quant_names),
        cmocka_unit_test(synth_writes_what_inspect_reads),
        cmocka_unit_test(synth_fails_cleanly),
        cmocka_unit_test(fit_kv_known_shapes),
        cmocka_unit_test(fit_catalog_names),
        cmocka_unit_test(fit_8gb_gpu),
        cmocka_unit_test(fit_gpu_bandwidth),
        cmocka_unit_test(fit_roofline_and_ram),
        cmocka_unit_test(fit_sliding_window),
        cmocka_unit_test(fit_mixture_of_experts),
        cmocka_unit_test(fit_gemma3_catalog),
        cmocka_unit_test(fit_phi3_catalog),
        cmocka_unit_test(catalog_gemma4),
        cmocka_unit_test(fit_gemma4_kv),
        cmocka_unit_test(synth_gemma4_reads_back),
        cmocka_unit_test(fit_buffers_match_llama_cpp),
        cmocka_unit_test(recommend_8gb_laptop),
        cmocka_unit_test(recommend_cpu_only),
        cmocka_unit_test(recommend_profile_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
