/* hparams — which metadata key holds which hyperparameter, what stands in for
 * one that is absent, and which layers of an architecture slide. Read through
 * struct drv_meta_src, so that a GGUF file (gguf.c) and Ollama's POST /api/show
 * (doctor/facts.c), which carries the same keys as JSON, mean the same model. */
#include "model/model.h"

#include <stdio.h>
#include <string.h>

struct reader {
    const struct drv_meta_src *src;
    const char *arch;
    char key[160];
    uint64_t vals[DRV_GGUF_MAX_LAYERS]; /* scratch for one key's values */
};

static const char *arch_key(struct reader *r, const char *suffix)
{
    snprintf(r->key, sizeof(r->key), "%s.%s", r->arch, suffix);
    return r->key;
}

/* a count: a scalar, or an array's largest element (of the first
 * DRV_GGUF_MAX_LAYERS: a longer per-layer array is no model llama.cpp loads);
 * cut to UINT32_MAX; 0 when absent */
static uint32_t get_u32(struct reader *r, const char *suffix)
{
    size_t n;
    bool is_arr;
    if (!r->src->ints(r->src->ud, arch_key(r, suffix), r->vals, DRV_GGUF_MAX_LAYERS, &n, &is_arr))
        return 0;
    uint64_t best = 0;
    for (size_t i = 0; i < n && i < DRV_GGUF_MAX_LAYERS; i++)
        if (r->vals[i] > best)
            best = r->vals[i];
    return best > UINT32_MAX ? UINT32_MAX : (uint32_t)best;
}

/* suffix per block: an array of exactly n_block values, or (unless
 * arrays_only) a scalar for every block; values past UINT32_MAX are cut to it */
static bool get_per_block(struct reader *r, const char *suffix, uint32_t n_block, bool arrays_only,
                          uint32_t *out)
{
    size_t n;
    bool is_arr;
    if (!r->src->ints(r->src->ud, arch_key(r, suffix), r->vals, DRV_GGUF_MAX_LAYERS, &n, &is_arr) ||
        (is_arr && n != n_block) || (!is_arr && arrays_only))
        return false;
    for (uint32_t i = 0; i < n_block; i++) {
        uint64_t v = r->vals[is_arr ? i : 0];
        out[i] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    }
    return true;
}

static double get_real(struct reader *r, const char *suffix)
{
    double v;
    return r->src->real(r->src->ud, arch_key(r, suffix), &v) ? v : 0;
}

/* What differs by block: kv heads (gemma4 gives them per layer, as llama.cpp's
 * head_count_kv array) and which blocks slide (a sliding_window_pattern array;
 * a scalar there is a period the architecture interprets, left to
 * drv_hparams_arch_layer_is_swa). */
static void read_layers(struct reader *r, struct drv_hparams *hp)
{
    uint32_t n = hp->n_block;
    if (n == 0 || n > DRV_GGUF_MAX_LAYERS)
        return;
    if (!get_per_block(r, "attention.head_count_kv", n, false, hp->layer_n_head_kv))
        for (uint32_t i = 0; i < n; i++)
            hp->layer_n_head_kv[i] = hp->n_head_kv;
    uint32_t swa[DRV_GGUF_MAX_LAYERS];
    hp->has_swa_layers = get_per_block(r, "attention.sliding_window_pattern", n, true, swa);
    for (uint32_t i = 0; hp->has_swa_layers && i < n; i++)
        hp->layer_swa[i] = swa[i] != 0;
}

void drv_hparams_read(const struct drv_meta_src *src, const char *arch, struct drv_hparams *hp)
{
    memset(hp, 0, sizeof(*hp));
    struct reader r = {.src = src, .arch = arch};
    hp->n_block = get_u32(&r, "block_count");
    hp->n_embd = get_u32(&r, "embedding_length");
    hp->n_head = get_u32(&r, "attention.head_count");
    hp->n_head_kv = get_u32(&r, "attention.head_count_kv");
    if (hp->n_head_kv == 0)
        hp->n_head_kv = hp->n_head;
    hp->head_dim_k = get_u32(&r, "attention.key_length");
    if (hp->head_dim_k == 0 && hp->n_head)
        hp->head_dim_k = hp->n_embd / hp->n_head;
    hp->head_dim_v = get_u32(&r, "attention.value_length");
    if (hp->head_dim_v == 0)
        hp->head_dim_v = hp->head_dim_k;
    hp->head_dim_k_swa = get_u32(&r, "attention.key_length_swa");
    hp->head_dim_v_swa = get_u32(&r, "attention.value_length_swa");
    hp->n_ff = get_u32(&r, "feed_forward_length");
    hp->n_ctx_train = get_u32(&r, "context_length");
    hp->n_swa = get_u32(&r, "attention.sliding_window");
    hp->n_expert = get_u32(&r, "expert_count");
    hp->n_expert_used = get_u32(&r, "expert_used_count");
    hp->n_ff_exp = get_u32(&r, "expert_feed_forward_length");
    hp->rope_dim = get_u32(&r, "rope.dimension_count");
    hp->rope_freq_base = get_real(&r, "rope.freq_base");
    src->str(src->ud, arch_key(&r, "rope.scaling.type"), hp->rope_scaling,
             sizeof(hp->rope_scaling));
    hp->rope_scaling_factor = get_real(&r, "rope.scaling.factor");
    hp->rope_orig_ctx = get_u32(&r, "rope.scaling.original_context_length");
    read_layers(&r, hp);

    size_t n_tok;
    if (src->arr_n(src->ud, "tokenizer.ggml.tokens", &n_tok))
        hp->n_vocab = n_tok > UINT32_MAX ? UINT32_MAX : (uint32_t)n_tok;
    else
        hp->n_vocab = get_u32(&r, "vocab_size");
}

/* llama.cpp sets the sliding pattern per architecture (set_swa_pattern(n):
 * layer il is local when il % n < n - 1). gemma4's loader requires the list
 * in the file instead; when it is missing (Ollama's /api/show elides arrays)
 * Gemma 4's 5 sliding to 1 global stands in (MODELS.md: 25 + 5 in
 * gemma-4-26B-A4B). */
static uint32_t swa_period(const char *arch)
{
    static const struct {
        const char *arch;
        uint32_t n;
    } t[] = {{"gemma2", 2},  {"gemma3", 6},  {"gemma3n", 5}, {"gemma4", 6},
             {"cohere2", 4}, {"gpt-oss", 2}, {"llama4", 4},  {"exaone4", 4}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(arch, t[i].arch) == 0)
            return t[i].n;
    return 0; /* every layer */
}

bool drv_hparams_arch_layer_is_swa(const char *arch, uint32_t il)
{
    uint32_t n = swa_period(arch);
    return n == 0 || il % n < n - 1;
}
