/* synth — a GGUF with a model's exact shapes and random weights, quantized by ggml's
 * own quantizers, with a synthetic SentencePiece ("llama") tokenizer. Speed of a
 * model depends on its shapes and tensor types, not on what its weights learned,
 * so this file runs as fast as the real model would.
 *
 * Tensor names and shapes follow llama.cpp's loaders (src/models/llama.cpp,
 * qwen2.cpp, qwen3.cpp, qwen3moe.cpp, gemma3.cpp, gemma4.cpp, phi3.cpp); the
 * per-tensor type mix follows llama-quant.cpp's choices for the file type,
 * without an importance matrix.
 *
 * Every row of every tensor is drawn from its own PRNG stream seeded by (seed,
 * tensor, row), so the bytes do not depend on how many threads quantize. */
#include "model/model.h"
#include "model/model_int.h"

#include <errno.h>
#include <ggml.h>
#include <gguf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEIGHT_STD 0.02f
/* floats of scratch per thread per chunk (4 MiB) */
#define CHUNK_FLOATS (1u << 20)
#define MAX_THREADS  64
#define TOK_SPECIAL  3   /* <unk> <s> </s> */
#define TOK_FIRST    259 /* first ordinary piece, after the 256 byte tokens */
#define TOK_EOS      2

/* llama.h's llama_token_type: a file format, so the values are fixed */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

static const struct {
    const char *name;
    int ftype;
    enum ggml_type base;
} quants[] = {
    [DRV_SYNTH_Q4_0] = {"q4_0", 2, GGML_TYPE_Q4_0},
    [DRV_SYNTH_Q4_K_M] = {"q4_k_m", 15, GGML_TYPE_Q4_K},
    [DRV_SYNTH_Q5_K_M] = {"q5_k_m", 17, GGML_TYPE_Q5_K},
    [DRV_SYNTH_Q8_0] = {"q8_0", 7, GGML_TYPE_Q8_0},
    [DRV_SYNTH_F16] = {"f16", 1, GGML_TYPE_F16},
};
#define N_QUANTS ((int)(sizeof(quants) / sizeof(quants[0])))

bool drv_synth_quant_parse(const char *s, enum drv_synth_quant *out)
{
    for (int i = 0; i < N_QUANTS; i++)
        if (strcasecmp(s, quants[i].name) == 0) {
            *out = (enum drv_synth_quant)i;
            return true;
        }
    return false;
}

const char *drv_synth_quant_name(enum drv_synth_quant q)
{
    return (int)q >= 0 && (int)q < N_QUANTS ? quants[q].name : "?";
}

int drv_synth_quant_ftype(enum drv_synth_quant q)
{
    return (int)q >= 0 && (int)q < N_QUANTS ? quants[q].ftype : -1;
}

struct drv_synth_params drv_synth_default_params(void)
{
    struct drv_synth_params p;
    memset(&p, 0, sizeof(p));
    p.quant = DRV_SYNTH_Q4_K_M;
    p.seed = 1;
    return p;
}

/* ---- the tensor plan ---- */

enum role {
    R_TOKEN_EMBD,
    R_OUTPUT,
    R_NORM, /* 1-D, all ones */
    R_BIAS, /* 1-D, small random */
    R_ATTN_Q,
    R_ATTN_K,
    R_ATTN_V,
    R_ATTN_OUT,
    R_FFN_GATE,
    R_FFN_UP,
    R_FFN_DOWN,
    R_ROUTER,   /* ffn_gate_inp: stays f32, as llama.cpp's quantizer leaves it */
    R_ATTN_QKV, /* phi3's fused q, k, v */
};

struct tensor_plan {
    char name[48];
    enum role role;
    int layer; /* -1 outside blocks */
    int64_t ne0, ne1;
    int64_t ne2; /* experts of a 3-D expert tensor; 1 otherwise */
    enum ggml_type type;
    bool zero_eos_row; /* the row of </s> in the output projection is zero */
};

struct plan {
    struct tensor_plan *t;
    int n;
};

/* llama-quant.cpp: more bits for the first and last eighth of the layers and for
 * every third layer between */
static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama-quant.cpp's fallback when a row is not a whole number of blocks */
static enum ggml_type fit_row(enum ggml_type t, int64_t ne0)
{
    if (ne0 % ggml_blck_size(t) == 0)
        return t;
    switch (t) {
    case GGML_TYPE_Q4_K:
        t = GGML_TYPE_Q5_0;
        break;
    case GGML_TYPE_Q5_K:
        t = GGML_TYPE_Q5_1;
        break;
    case GGML_TYPE_Q6_K:
        t = GGML_TYPE_Q8_0;
        break;
    default:
        break;
    }
    return ne0 % ggml_blck_size(t) == 0 ? t : GGML_TYPE_F16;
}

/* i_layer of n_layer: the position use_more_bits judges (the block, or for
 * attn_v the tensor's rank among the attn_v tensors: llama-quant.cpp counts
 * those, and gemma4's global blocks have none). llama-quant.cpp files a fused
 * attn_qkv with attn_v (category_is_attn_v), before its own attn_qkv rule, so
 * that rule (Q5_K at Q4_K_M) never applies: a fused qkv gets Q6_K on the
 * more-bits layers and the base type elsewhere, counted among the attn_v. */
static enum ggml_type pick_type(enum drv_synth_quant q, const struct tensor_plan *t, int i_layer,
                                int n_layer, bool tied)
{
    if (t->ne1 == 1 || t->role == R_ROUTER) /* norms, biases and the router stay f32 */
        return GGML_TYPE_F32;
    enum ggml_type base = quants[q].base;
    if (base == GGML_TYPE_F16)
        return GGML_TYPE_F16;
    bool k_mix = q == DRV_SYNTH_Q4_K_M || q == DRV_SYNTH_Q5_K_M;
    enum ggml_type type = base;
    if (t->role == R_OUTPUT || (tied && t->role == R_TOKEN_EMBD)) {
        if (t->ne0 % ggml_blck_size(base) != 0 || base == GGML_TYPE_Q8_0)
            type = GGML_TYPE_Q8_0;
        else
            type = GGML_TYPE_Q6_K;
    } else if (k_mix && (t->role == R_ATTN_V || t->role == R_ATTN_QKV || t->role == R_FFN_DOWN) &&
               use_more_bits(i_layer, n_layer)) {
        type = GGML_TYPE_Q6_K;
    }
    return fit_row(type, t->ne0);
}

static void plan_add(struct plan *pl, enum role role, int layer, const char *suffix, int64_t ne0,
                     int64_t ne1)
{
    struct tensor_plan *t = &pl->t[pl->n++];
    memset(t, 0, sizeof(*t));
    if (layer >= 0)
        snprintf(t->name, sizeof(t->name), "blk.%d.%s", layer, suffix);
    else
        snprintf(t->name, sizeof(t->name), "%s", suffix);
    t->role = role;
    t->layer = layer;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->ne2 = 1;
}

/* block i's experts: gate, up and down as 3-D tensors of nx matrices each */
static void plan_add_experts(struct plan *pl, int i, int64_t e, int64_t xf, int64_t nx)
{
    plan_add(pl, R_FFN_GATE, i, "ffn_gate_exps.weight", e, xf);
    pl->t[pl->n - 1].ne2 = nx;
    plan_add(pl, R_FFN_UP, i, "ffn_up_exps.weight", e, xf);
    pl->t[pl->n - 1].ne2 = nx;
    plan_add(pl, R_FFN_DOWN, i, "ffn_down_exps.weight", xf, e);
    pl->t[pl->n - 1].ne2 = nx;
}

/* rows of a tensor: ne1 of each of its ne2 matrices */
static int64_t n_rows(const struct tensor_plan *t)
{
    return t->ne1 * t->ne2;
}

/* Gemma 4's block i (llama.cpp's src/models/gemma4.cpp): q/k norms of the
 * layer's head size; a global layer uses K as V (no attn_v); a dense FFN beside
 * the experts, each path with its own norms; the router scales its input
 * (ffn_gate_inp.scale), the experts' outputs are scaled per expert
 * (ffn_down_exps.scale) and the block's output by layer_output_scale, which
 * llama.cpp's converter writes for the 26B-A4B (all ones here). */
static void plan_gemma4_block(struct plan *pl, const struct drv_model_shape *s, int i)
{
    bool swa = drv_shape_layer_is_swa(s, (uint32_t)i);
    int64_t e = s->n_embd, ff = s->n_ff, xf = s->n_ff_exp, nx = s->n_expert;
    int64_t hd = swa ? s->head_dim : s->head_dim_global;
    int64_t q_out = hd * s->n_head, kv_out = hd * (swa ? s->n_head_kv : s->n_head_kv_global);
    plan_add(pl, R_NORM, i, "attn_norm.weight", e, 1);
    plan_add(pl, R_ATTN_Q, i, "attn_q.weight", e, q_out);
    plan_add(pl, R_ATTN_K, i, "attn_k.weight", e, kv_out);
    if (swa)
        plan_add(pl, R_ATTN_V, i, "attn_v.weight", e, kv_out);
    plan_add(pl, R_NORM, i, "attn_q_norm.weight", hd, 1);
    plan_add(pl, R_NORM, i, "attn_k_norm.weight", hd, 1);
    plan_add(pl, R_ATTN_OUT, i, "attn_output.weight", q_out, e);
    plan_add(pl, R_NORM, i, "post_attention_norm.weight", e, 1);
    plan_add(pl, R_NORM, i, "layer_output_scale.weight", 1, 1);
    plan_add(pl, R_NORM, i, "ffn_norm.weight", e, 1);
    plan_add(pl, R_FFN_GATE, i, "ffn_gate.weight", e, ff);
    plan_add(pl, R_FFN_UP, i, "ffn_up.weight", e, ff);
    plan_add(pl, R_FFN_DOWN, i, "ffn_down.weight", ff, e);
    plan_add(pl, R_NORM, i, "post_ffw_norm.weight", e, 1);
    plan_add(pl, R_ROUTER, i, "ffn_gate_inp.weight", e, nx);
    plan_add(pl, R_NORM, i, "ffn_gate_inp.scale", e, 1);
    plan_add(pl, R_NORM, i, "pre_ffw_norm_2.weight", e, 1);
    plan_add(pl, R_NORM, i, "post_ffw_norm_1.weight", e, 1);
    plan_add(pl, R_NORM, i, "post_ffw_norm_2.weight", e, 1);
    plan_add_experts(pl, i, e, xf, nx);
    plan_add(pl, R_NORM, i, "ffn_down_exps.scale", nx, 1);
}

/* The tensors of p's model, after checking its shape. */
static int plan_build(const struct drv_synth_params *p, struct plan *pl, struct drv_err *err)
{
    int rc = drv_shape_check(&p->shape, err);
    if (rc)
        return rc;
    const struct drv_model_shape *s = &p->shape;
    bool qwen2 = strcmp(s->arch, "qwen2") == 0, moe = strcmp(s->arch, "qwen3moe") == 0;
    bool gemma3 = strcmp(s->arch, "gemma3") == 0, phi3 = strcmp(s->arch, "phi3") == 0;
    bool gemma4 = strcmp(s->arch, "gemma4") == 0;
    bool qwen3 = strcmp(s->arch, "qwen3") == 0 || moe || gemma3; /* q/k norms */
    int64_t e = s->n_embd, ff = s->n_ff, voc = s->n_vocab;
    int64_t q_out = (int64_t)s->head_dim * s->n_head;
    int64_t kv_out = (int64_t)s->head_dim * s->n_head_kv;
    pl->n = 0;
    pl->t = calloc((size_t)s->n_layer * 24 + 5, sizeof(*pl->t));
    if (pl->t == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");

    plan_add(pl, R_TOKEN_EMBD, -1, "token_embd.weight", e, voc);
    bool global = false;
    for (uint32_t i = 0; gemma4 && i < s->n_layer; i++)
        global = global || !drv_shape_layer_is_swa(s, i);
    /* gemma4's global layers rotate a quarter of each head ("proportional"
     * RoPE): one table of frequency factors, which llama.cpp requires once a
     * global layer exists; all ones here (numerics, not speed) */
    if (global)
        plan_add(pl, R_NORM, -1, "rope_freqs.weight", s->head_dim_global / 2, 1);
    for (int i = 0; i < (int)s->n_layer; i++) {
        if (gemma4) {
            plan_gemma4_block(pl, s, i);
            continue;
        }
        plan_add(pl, R_NORM, i, "attn_norm.weight", e, 1);
        if (phi3) { /* fused q, k, v; gate and up fused in ffn_up */
            plan_add(pl, R_ATTN_QKV, i, "attn_qkv.weight", e, q_out + 2 * kv_out);
            plan_add(pl, R_ATTN_OUT, i, "attn_output.weight", q_out, e);
            plan_add(pl, R_NORM, i, "ffn_norm.weight", e, 1);
            plan_add(pl, R_FFN_UP, i, "ffn_up.weight", e, 2 * ff);
            plan_add(pl, R_FFN_DOWN, i, "ffn_down.weight", ff, e);
            continue;
        }
        plan_add(pl, R_ATTN_Q, i, "attn_q.weight", e, q_out);
        plan_add(pl, R_ATTN_K, i, "attn_k.weight", e, kv_out);
        plan_add(pl, R_ATTN_V, i, "attn_v.weight", e, kv_out);
        if (qwen2) {
            plan_add(pl, R_BIAS, i, "attn_q.bias", q_out, 1);
            plan_add(pl, R_BIAS, i, "attn_k.bias", kv_out, 1);
            plan_add(pl, R_BIAS, i, "attn_v.bias", kv_out, 1);
        }
        if (qwen3) {
            plan_add(pl, R_NORM, i, "attn_q_norm.weight", s->head_dim, 1);
            plan_add(pl, R_NORM, i, "attn_k_norm.weight", s->head_dim, 1);
        }
        plan_add(pl, R_ATTN_OUT, i, "attn_output.weight", q_out, e);
        if (gemma3)
            plan_add(pl, R_NORM, i, "post_attention_norm.weight", e, 1);
        plan_add(pl, R_NORM, i, "ffn_norm.weight", e, 1);
        if (moe) {
            int64_t xf = s->n_ff_exp, nx = s->n_expert;
            plan_add(pl, R_ROUTER, i, "ffn_gate_inp.weight", e, nx);
            plan_add_experts(pl, i, e, xf, nx);
            continue;
        }
        plan_add(pl, R_FFN_GATE, i, "ffn_gate.weight", e, ff);
        plan_add(pl, R_FFN_UP, i, "ffn_up.weight", e, ff);
        plan_add(pl, R_FFN_DOWN, i, "ffn_down.weight", ff, e);
        if (gemma3)
            plan_add(pl, R_NORM, i, "post_ffw_norm.weight", e, 1);
    }
    plan_add(pl, R_NORM, -1, "output_norm.weight", e, 1);
    if (!s->tied)
        plan_add(pl, R_OUTPUT, -1, "output.weight", e, voc);

    int n_v = 0, i_v = 0;
    for (int i = 0; i < pl->n; i++)
        n_v += pl->t[i].role == R_ATTN_V || pl->t[i].role == R_ATTN_QKV;
    for (int i = 0; i < pl->n; i++) {
        struct tensor_plan *t = &pl->t[i];
        bool v = t->role == R_ATTN_V || t->role == R_ATTN_QKV;
        t->type = pick_type(p->quant, t, v ? i_v++ : t->layer, v ? n_v : (int)s->n_layer, s->tied);
        t->zero_eos_row = t->role == R_OUTPUT || (s->tied && t->role == R_TOKEN_EMBD);
    }
    return 0;
}

static uint64_t tensor_bytes(const struct tensor_plan *t)
{
    return (uint64_t)ggml_row_size(t->type, t->ne0) * (uint64_t)n_rows(t);
}

uint64_t drv_synth_tensor_bytes(const struct drv_synth_params *p)
{
    struct plan pl;
    if (plan_build(p, &pl, NULL) != 0)
        return 0;
    uint64_t sum = 0;
    for (int i = 0; i < pl.n; i++)
        sum += tensor_bytes(&pl.t[i]);
    free(pl.t);
    return sum;
}

int drv_synth_tensor_list(const struct drv_synth_params *p, struct drv_tensor_size **out, int *n,
                          struct drv_err *err)
{
    *out = NULL;
    *n = 0;
    struct plan pl;
    int rc = plan_build(p, &pl, err);
    if (rc)
        return rc;
    struct drv_tensor_size *t = calloc((size_t)pl.n, sizeof(*t));
    if (t == NULL) {
        free(pl.t);
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    for (int i = 0; i < pl.n; i++) {
        drv_strlcpy(t[i].name, pl.t[i].name, sizeof(t[i].name));
        drv_strlcpy(t[i].type, ggml_type_name(pl.t[i].type), sizeof(t[i].type));
        t[i].layer = pl.t[i].layer;
        t[i].bytes = tensor_bytes(&pl.t[i]);
    }
    *out = t;
    *n = pl.n;
    free(pl.t);
    return 0;
}

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One row of normal-ish values (Irwin-Hall sum of four 16-bit uniforms: integer
 * arithmetic only, so the same on every machine). */
static void fill_row(float *dst, int64_t n, uint64_t seed, int tensor, int64_t row, float std)
{
    uint64_t st = seed ^ ((uint64_t)(tensor + 1) * 0xD1B54A32D192ED03ull) ^
                  ((uint64_t)(row + 1) * 0x8CB92BA72F3D8DD7ull);
    splitmix64(&st);
    /* the sum has mean 2 * 65535 and standard deviation 65536 / sqrt(3) */
    const float scale = std / 37837.23f;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = splitmix64(&st);
        int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) +
                      (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48);
        dst[i] = (float)(sum - 131070) * scale;
    }
}

static void fill_rows(const struct tensor_plan *t, int tensor, uint64_t seed, int64_t row0,
                      int64_t nrows, float *dst)
{
    for (int64_t r = 0; r < nrows; r++) {
        float *d = dst + r * t->ne0;
        int64_t row = row0 + r;
        if (t->role == R_NORM) {
            for (int64_t i = 0; i < t->ne0; i++)
                d[i] = 1.0f;
        } else if (t->zero_eos_row && row == TOK_EOS) {
            /* logit 0 for </s>: random logits put it near the median, so greedy
             * decoding never stops early and sampling rarely does */
            memset(d, 0, (size_t)t->ne0 * sizeof(float));
        } else {
            fill_row(d, t->ne0, seed, tensor, row, WEIGHT_STD);
        }
    }
}

/* ---- chunked, threaded generation ---- */

struct job {
    const struct tensor_plan *t;
    int tensor;
    uint64_t seed;
    int64_t row0, nrows; /* rows of this job */
    float *scratch;      /* nrows * ne0 floats */
    char *dst;           /* nrows * row_size bytes */
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    if (j->nrows <= 0)
        return NULL;
    fill_rows(j->t, j->tensor, j->seed, j->row0, j->nrows, j->scratch);
    if (j->t->type == GGML_TYPE_F32)
        memcpy(j->dst, j->scratch, (size_t)(j->nrows * j->t->ne0) * sizeof(float));
    else
        ggml_quantize_chunk(j->t->type, j->scratch, j->dst, 0, j->nrows, j->t->ne0, NULL);
    return NULL;
}

struct writer {
    FILE *f;
    const char *path;
    int n_threads;
    float *scratch[MAX_THREADS];
    char *dst;
    size_t dst_size;
    uint64_t done, total;
    const struct drv_synth_params *p;
};

static int write_bytes(struct writer *w, const void *data, size_t n, struct drv_err *err)
{
    if (n && fwrite(data, 1, n, w->f) != n)
        return drv_err_set(err, DRV_EIO, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

static int write_tensor(struct writer *w, const struct tensor_plan *t, int tensor,
                        struct drv_err *err)
{
    size_t row_size = ggml_row_size(t->type, t->ne0);
    int64_t per_thread = (int64_t)(CHUNK_FLOATS / (uint64_t)t->ne0);
    if (per_thread < 1)
        per_thread = 1;
    int64_t chunk = per_thread * w->n_threads;
    for (int64_t row0 = 0; row0 < n_rows(t); row0 += chunk) {
        int64_t rows = n_rows(t) - row0 < chunk ? n_rows(t) - row0 : chunk;
        struct job jobs[MAX_THREADS];
        pthread_t tid[MAX_THREADS];
        bool started[MAX_THREADS] = {false};
        int nj = 0;
        for (int64_t r = 0; r < rows; r += per_thread, nj++) {
            struct job *j = &jobs[nj];
            j->t = t;
            j->tensor = tensor;
            j->seed = w->p->seed;
            j->row0 = row0 + r;
            j->nrows = rows - r < per_thread ? rows - r : per_thread;
            j->scratch = w->scratch[nj];
            j->dst = w->dst + (size_t)r * row_size;
        }
        /* job 0 runs on this thread; a failed thread start runs its job here too */
        for (int i = 1; i < nj; i++)
            started[i] = pthread_create(&tid[i], NULL, run_job, &jobs[i]) == 0;
        run_job(&jobs[0]);
        for (int i = 1; i < nj; i++) {
            if (started[i])
                pthread_join(tid[i], NULL);
            else
                run_job(&jobs[i]);
        }
        size_t n = (size_t)rows * row_size;
        int rc = write_bytes(w, w->dst, n, err);
        if (rc)
            return rc;
        w->done += n;
        if (w->p->progress)
            w->p->progress(w->p->progress_ud, w->done, w->total);
    }
    return 0;
}

/* ---- metadata ---- */

/* The k-th ordinary piece: "▁a", "a", "▁b", "b", ... "▁z", "z", "▁aa", "aa", ...
 * (bijective base 26, so every piece is distinct). */
static void piece_name(uint32_t k, char *out)
{
    char tmp[16];
    int n = 0;
    for (uint32_t v = k / 2 + 1; v > 0 && n < 15; v = (v - 1) / 26)
        tmp[n++] = (char)('a' + (v - 1) % 26);
    size_t o = 0;
    if (k % 2 == 0) {
        memcpy(out, "\xe2\x96\x81", 3); /* U+2581, SentencePiece's space */
        o = 3;
    }
    while (n > 0)
        out[o++] = tmp[--n];
    out[o] = '\0';
}

#define N_PHI3_SPECIAL 6
static const char *const phi3_special[N_PHI3_SPECIAL] = {
    "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>", "<|placeholder1|>"};

static int set_tokenizer(struct gguf_context *g, uint32_t n_vocab, bool phi3, struct drv_err *err)
{
    const size_t slot = 16;
    char *text = malloc((size_t)n_vocab * slot);
    const char **tokens = malloc((size_t)n_vocab * sizeof(*tokens));
    float *scores = malloc((size_t)n_vocab * sizeof(*scores));
    int32_t *types = malloc((size_t)n_vocab * sizeof(*types));
    if (!text || !tokens || !scores || !types) {
        free(text);
        free(tokens);
        free(scores);
        free(types);
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    static const char *const special[TOK_SPECIAL] = {"<unk>", "<s>", "</s>"};
    for (uint32_t i = 0; i < n_vocab; i++) {
        char *s = text + (size_t)i * slot;
        if (i < TOK_SPECIAL) {
            strcpy(s, special[i]);
            types[i] = i == 0 ? TT_UNKNOWN : TT_CONTROL;
            scores[i] = 0.0f;
        } else if (i < TOK_FIRST) {
            snprintf(s, slot, "<0x%02X>", i - TOK_SPECIAL);
            types[i] = TT_BYTE;
            scores[i] = 0.0f;
        } else if (phi3 && i >= n_vocab - N_PHI3_SPECIAL) {
            /* Phi-3's chat tokens, which llama.cpp's phi3 vocabulary looks up */
            strcpy(s, phi3_special[i - (n_vocab - N_PHI3_SPECIAL)]);
            types[i] = TT_CONTROL;
            scores[i] = 0.0f;
        } else {
            piece_name(i - TOK_FIRST, s);
            types[i] = TT_NORMAL;
            scores[i] = -(float)(i - TOK_FIRST);
        }
        tokens[i] = s;
    }
    gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", tokens, n_vocab);
    gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n_vocab);
    gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n_vocab);
    gguf_set_val_u32(g, "tokenizer.ggml.unknown_token_id", 0);
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", TOK_EOS);
    gguf_set_val_bool(g, "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(g, "tokenizer.ggml.add_eos_token", false);
    free(text);
    free(tokens);
    free(scores);
    free(types);
    return 0;
}

static void set_u32(struct gguf_context *g, const char *arch, const char *key, uint32_t v)
{
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    gguf_set_val_u32(g, k, v);
}

static void set_f32(struct gguf_context *g, const char *arch, const char *key, float v)
{
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    gguf_set_val_f32(g, k, v);
}

/* What llama.cpp's gemma4 loader reads beyond the common keys, typed as its
 * converter writes them: kv heads per layer (int32 array), which layers slide
 * (bool array), the global layers' head size as key/value_length and the
 * sliding ones' as *_swa (rope dims likewise), and 0 for the per-layer input
 * embeddings and shared KV layers that only the small Gemma 4 models have. */
static void set_gemma4(struct gguf_context *g, const struct drv_model_shape *s)
{
    const char *a = s->arch;
    int32_t kv[512];
    uint8_t swa[512]; /* drv_shape_check: at most 512 layers */
    for (uint32_t il = 0; il < s->n_layer; il++) {
        swa[il] = drv_shape_layer_is_swa(s, il);
        kv[il] = (int32_t)(swa[il] ? s->n_head_kv : s->n_head_kv_global);
    }
    char k[128];
    snprintf(k, sizeof(k), "%s.attention.head_count_kv", a);
    gguf_set_arr_data(g, k, GGUF_TYPE_INT32, kv, s->n_layer);
    snprintf(k, sizeof(k), "%s.attention.sliding_window_pattern", a);
    gguf_set_arr_data(g, k, GGUF_TYPE_BOOL, swa, s->n_layer);
    set_u32(g, a, "attention.key_length", s->head_dim_global);
    set_u32(g, a, "attention.value_length", s->head_dim_global);
    set_u32(g, a, "attention.key_length_swa", s->head_dim);
    set_u32(g, a, "attention.value_length_swa", s->head_dim);
    set_u32(g, a, "rope.dimension_count", s->head_dim_global);
    set_u32(g, a, "rope.dimension_count_swa", s->n_rot ? s->n_rot : s->head_dim);
    set_f32(g, a, "rope.freq_base_swa", 10000.0f);
    set_u32(g, a, "attention.shared_kv_layers", 0);
    set_u32(g, a, "embedding_length_per_layer_input", 0);
    set_f32(g, a, "final_logit_softcapping", 30.0f);
}

static int set_metadata(struct gguf_context *g, const struct drv_synth_params *p,
                        struct drv_err *err)
{
    const struct drv_model_shape *s = &p->shape;
    const char *a = s->arch;
    char name[128];
    snprintf(name, sizeof(name), "synthetic %s", s->name[0] ? s->name : a);
    gguf_set_val_str(g, "general.architecture", a);
    gguf_set_val_str(g, "general.name", name);
    gguf_set_val_u32(g, "general.file_type", (uint32_t)quants[p->quant].ftype);
    gguf_set_val_u32(g, "general.quantization_version", GGML_QNT_VERSION);
    set_u32(g, a, "block_count", s->n_layer);
    set_u32(g, a, "context_length", p->n_ctx ? p->n_ctx : s->n_ctx_train);
    set_u32(g, a, "embedding_length", s->n_embd);
    set_u32(g, a, "feed_forward_length", s->n_ff);
    if (s->n_swa)
        set_u32(g, a, "attention.sliding_window", s->n_swa);
    if (s->n_expert) {
        set_u32(g, a, "expert_count", s->n_expert);
        set_u32(g, a, "expert_used_count", s->n_expert_used);
        set_u32(g, a, "expert_feed_forward_length", s->n_ff_exp);
    }
    set_u32(g, a, "attention.head_count", s->n_head);
    bool gemma4 = strcmp(a, "gemma4") == 0;
    if (gemma4) {
        set_gemma4(g, s);
    } else {
        set_u32(g, a, "attention.head_count_kv", s->n_head_kv);
        if (s->head_dim * s->n_head != s->n_embd) {
            set_u32(g, a, "attention.key_length", s->head_dim);
            set_u32(g, a, "attention.value_length", s->head_dim);
        }
    }
    set_f32(g, a, "rope.freq_base", s->rope_theta);
    if (!gemma4)
        set_u32(g, a, "rope.dimension_count", s->n_rot ? s->n_rot : s->head_dim);
    set_f32(g, a, "attention.layer_norm_rms_epsilon", s->rms_eps);
    set_u32(g, a, "vocab_size", s->n_vocab);
    gguf_set_val_u64(g, "drover.synth.seed", p->seed);
    return set_tokenizer(g, s->n_vocab, strcmp(s->arch, "phi3") == 0, err);
}

/* ---- the file ---- */

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static int write_data(struct writer *w, struct gguf_context *g, const struct plan *pl,
                      struct drv_err *err)
{
    size_t max_row = 0;
    int64_t max_ne0 = 1;
    for (int i = 0; i < pl->n; i++) {
        size_t rs = ggml_row_size(pl->t[i].type, pl->t[i].ne0);
        if (rs > max_row)
            max_row = rs;
        if (pl->t[i].ne0 > max_ne0)
            max_ne0 = pl->t[i].ne0;
    }
    /* a chunk holds at most max(1, CHUNK_FLOATS / ne0) rows per thread */
    size_t floats = CHUNK_FLOATS > (uint64_t)max_ne0 ? CHUNK_FLOATS : (size_t)max_ne0;
    for (int i = 0; i < w->n_threads; i++) {
        w->scratch[i] = malloc(floats * sizeof(float));
        if (w->scratch[i] == NULL)
            return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    /* the widest chunk in bytes: rows per thread of the narrowest-row tensor */
    size_t dst_size = 0;
    for (int i = 0; i < pl->n; i++) {
        int64_t per = (int64_t)(CHUNK_FLOATS / (uint64_t)pl->t[i].ne0);
        if (per < 1)
            per = 1;
        size_t b = (size_t)per * (size_t)w->n_threads * ggml_row_size(pl->t[i].type, pl->t[i].ne0);
        if (b > dst_size)
            dst_size = b;
    }
    w->dst = malloc(dst_size);
    if (w->dst == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");

    uint64_t data_off = gguf_get_meta_size(g);
    uint64_t pos = data_off;
    static const char zeros[64];
    for (int i = 0; i < pl->n; i++) {
        uint64_t at = data_off + gguf_get_tensor_offset(g, i);
        if (at < pos || at - pos > sizeof(zeros))
            return drv_err_set(err, DRV_EIO, "internal error: tensor offsets out of order");
        int rc = write_bytes(w, zeros, (size_t)(at - pos), err);
        if (rc == 0)
            rc = write_tensor(w, &pl->t[i], i, err);
        if (rc)
            return rc;
        pos = at + tensor_bytes(&pl->t[i]);
    }
    /* pad the last tensor like gguf_write_to_file does */
    size_t align = GGUF_DEFAULT_ALIGNMENT;
    return write_bytes(w, zeros, (size_t)((align - pos % align) % align), err);
}

int drv_synth_write(const struct drv_synth_params *p, const char *path, struct drv_err *err)
{
    if ((int)p->quant < 0 || (int)p->quant >= N_QUANTS)
        return drv_err_set(err, DRV_EINVAL, "unknown quantization");
    struct plan pl;
    int rc = plan_build(p, &pl, err);
    if (rc)
        return rc;

    drv_model_route_ggml_log();
    struct gguf_context *g = gguf_init_empty();
    struct ggml_init_params ip = {
        .mem_size = (size_t)(pl.n + 1) * ggml_tensor_overhead(),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    struct ggml_context *gctx = ggml_init(ip);
    struct writer w = {.path = path, .p = p};
    if (g == NULL || gctx == NULL) {
        rc = drv_err_set(err, DRV_ENOMEM, "out of memory");
        goto out_free;
    }
    rc = set_metadata(g, p, err);
    if (rc)
        goto out_free;
    for (int i = 0; i < pl.n; i++) {
        const struct tensor_plan *t = &pl.t[i];
        struct ggml_tensor *x = t->ne2 > 1
                                    ? ggml_new_tensor_3d(gctx, t->type, t->ne0, t->ne1, t->ne2)
                                : t->ne1 == 1 ? ggml_new_tensor_1d(gctx, t->type, t->ne0)
                                              : ggml_new_tensor_2d(gctx, t->type, t->ne0, t->ne1);
        ggml_set_name(x, t->name);
        gguf_add_tensor(g, x);
        w.total += tensor_bytes(t);
    }

    w.f = fopen(path, "wb");
    if (w.f == NULL) {
        rc = drv_err_set(err, DRV_EIO, "cannot write %s: %s", path, strerror(errno));
        goto out_free;
    }
    /* on failure remove what we wrote, but never a device like /dev/null */
    struct stat st;
    bool regular = fstat(fileno(w.f), &st) == 0 && S_ISREG(st.st_mode);
    w.n_threads = p->n_threads > 0 && p->n_threads <= MAX_THREADS ? p->n_threads : online_cpus();
    if (!gguf_write_to_file_ptr(g, w.f, true))
        rc = drv_err_set(err, DRV_EIO, "%s: write failed: %s", path, strerror(errno));
    if (rc == 0)
        rc = write_data(&w, g, &pl, err);
    if (fclose(w.f) != 0 && rc == 0)
        rc = drv_err_set(err, DRV_EIO, "%s: write failed: %s", path, strerror(errno));
    if (rc && regular)
        unlink(path);

out_free:
    for (int i = 0; i < MAX_THREADS; i++)
        free(w.scratch[i]);
    free(w.dst);
    if (gctx)
        ggml_free(gctx);
    if (g)
        gguf_free(g);
    free(pl.t);
    return rc;
}
