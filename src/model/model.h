/* model — what a GGUF file holds, read through ggml's gguf API without loading
 * weights. Nothing from a file is trusted: every key is type-checked before it is
 * read, and tensor extents are checked against the file size. */
#ifndef DRV_MODEL_H
#define DRV_MODEL_H

#include "base/base.h"

#include <stdbool.h>
#include <stdint.h>

/* Bytes and counts of the tensors of one ggml type. */
struct drv_gguf_type_stat {
    char type[16]; /* ggml type name: "f32", "q4_K", ... */
    uint32_t n_tensors;
    uint64_t n_elements;
    uint64_t n_bytes;
};

#define DRV_GGUF_MAX_TYPES  48
#define DRV_GGUF_MAX_LAYERS 1024 /* blocks whose per-layer values are kept */

/* ---- hparams: what a model's metadata keys mean (hparams.c) ------------------
 * The one place that knows which GGUF metadata key holds which hyperparameter,
 * what stands in for an absent one, and which layers of an architecture slide.
 * The keys are read through struct drv_meta_src, so the same reading serves a
 * GGUF file (gguf.c) and the "model_info" object of Ollama's POST /api/show
 * (doctor), which carries the file's keys as JSON values. */

/* A model's hyperparameters; 0 when absent. Per-layer arrays give their max. */
struct drv_hparams {
    uint32_t n_block;
    uint32_t n_embd;
    uint32_t n_head;
    uint32_t n_head_kv;  /* attention.head_count_kv, else n_head */
    uint32_t head_dim_k; /* attention.key_length, else n_embd / n_head */
    uint32_t head_dim_v; /* attention.value_length, else head_dim_k */
    /* sliding-window layers' head sizes (attention.key_length_swa and
     * value_length_swa, gemma4); 0 when absent: head_dim_k and head_dim_v */
    uint32_t head_dim_k_swa, head_dim_v_swa;
    uint32_t n_ff; /* feed_forward_length (a MoE model may not use it: qwen3moe) */
    uint32_t n_ctx_train;
    uint32_t n_swa; /* attention.sliding_window */
    /* Per block, when n_block <= DRV_GGUF_MAX_LAYERS (else all 0 and false):
     * kv heads (attention.head_count_kv, an array in gemma4, else the scalar for
     * every block), and which blocks attend through the sliding window
     * (attention.sliding_window_pattern as an array; has_swa_layers is false
     * when the metadata gives none, and the architecture decides:
     * drv_hparams_arch_layer_is_swa). */
    uint32_t layer_n_head_kv[DRV_GGUF_MAX_LAYERS];
    bool has_swa_layers;
    bool layer_swa[DRV_GGUF_MAX_LAYERS];
    uint32_t n_expert;      /* expert_count (MoE) */
    uint32_t n_expert_used; /* expert_used_count: experts a token runs through */
    uint32_t n_ff_exp;      /* expert_feed_forward_length: one expert's FFN */
    uint32_t rope_dim;      /* rope.dimension_count */
    double rope_freq_base;
    char rope_scaling[24]; /* rope.scaling.type ("" = none) */
    double rope_scaling_factor;
    uint32_t rope_orig_ctx;
    uint32_t n_vocab; /* tokenizer.ggml.tokens length, else <arch>.vocab_size */
};

/* Where metadata keys are looked up. Each function gets ud and a whole key
 * ("llama.block_count") and returns false when the key is absent or of
 * another type; a source may report an array it elided (Ollama sends null in
 * place of arrays unless asked to be verbose) as absent. */
struct drv_meta_src {
    const void *ud;
    /* The key's integer values (bools are 0 and 1, negatives 0): a scalar is
     * one value, an array (*is_arr) its elements. Stores the first min(*n, cap)
     * of them in out and their number in *n. False for an empty array too. */
    bool (*ints)(const void *ud, const char *key, uint64_t *out, size_t cap, size_t *n,
                 bool *is_arr);
    /* A number, floating point or integer. */
    bool (*real)(const void *ud, const char *key, double *out);
    /* A string, cut to size bytes. */
    bool (*str)(const void *ud, const char *key, char *out, size_t size);
    /* An array of any element type: its length in *n. */
    bool (*arr_n)(const void *ud, const char *key, size_t *n);
};

/* Reads the hyperparameters of a model of architecture arch (general.architecture)
 * from src into *out (cleared first). Never fails: what src lacks is 0 or its
 * stand-in. */
void drv_hparams_read(const struct drv_meta_src *src, const char *arch, struct drv_hparams *out);

/* Whether block il of an architecture slides when its metadata does not list
 * the sliding blocks: llama.cpp's pattern for the architecture (set_swa_pattern:
 * of every n blocks the last is global), and for one it does not name, every
 * block (Mistral v0.1 style). Only meaningful for a model with a window. */
bool drv_hparams_arch_layer_is_swa(const char *arch, uint32_t il);

struct drv_gguf_info {
    uint64_t file_size; /* bytes */
    uint32_t version;   /* GGUF format version */
    char arch[64];      /* general.architecture ("" when absent) */
    char name[256];     /* general.name ("" when absent) */
    int file_type;      /* general.file_type (llama_ftype), -1 when absent */
    char quant[24];     /* "F32", "Q4_K_M", ...: from file_type, else the dominant type */
    int64_t n_tensors;
    int64_t n_kv;
    uint64_t n_params; /* elements in all tensors */
    uint64_t tensor_bytes;
    struct drv_gguf_type_stat types[DRV_GGUF_MAX_TYPES];
    int n_types;
    struct drv_hparams hp; /* hyperparameters (drv_hparams_read) */
    char tokenizer[32];    /* tokenizer.ggml.model */
    bool has_chat_template;
};

/* Reads the metadata of the GGUF file at path into *out. Fails with DRV_ENOENT
 * (missing), DRV_EINVAL (not a regular file), DRV_EFORMAT (not GGUF, corrupt or
 * truncated) and a one-line message in err. */
int drv_gguf_inspect_file(const char *path, struct drv_gguf_info *out, struct drv_err *err);
/* Same, from bytes in memory (size is the whole "file"). */
int drv_gguf_inspect_buffer(const void *data, size_t size, struct drv_gguf_info *out,
                            struct drv_err *err);

/* One tensor of a model: name, ggml type, block index and bytes. */
struct drv_tensor_size {
    char name[64];
    char type[16]; /* ggml type name */
    int layer;     /* N of blk.N.*; -1 outside blocks (token_embd, output, output_norm) */
    uint64_t bytes;
};

/* Lists the tensors of the GGUF file at path (validated as drv_gguf_inspect_file
 * does). *out is an array of *n entries; caller frees it with free(). */
int drv_gguf_tensor_list(const char *path, struct drv_tensor_size **out, int *n,
                         struct drv_err *err);

/* Name of a llama_ftype value ("Q4_K_M"), or NULL when unknown. */
const char *drv_ftype_name(int file_type);
/* The same name from llama.cpp's ("Q4_K - Medium", "(guessed) Q8_0": what
 * llama-server reports), and llama.cpp's from it; NULL when unknown. */
const char *drv_ftype_name_of_llama(const char *llama_name);
const char *drv_ftype_llama_name(const char *name);

/* The ggml library drover runs on, e.g. "0.9.4 (commit 80fb11a)"; static storage. */
const char *drv_ggml_version(void);

/* ---- catalog: shapes of known models (catalog.c) ----------------------------
 * Facts from /work/shared/MODELS.md (the models' config.json files). Only the
 * architectures synth can write are listed: llama, qwen2, qwen3, qwen3moe,
 * gemma3, gemma4 and phi3. */

struct drv_model_shape {
    char name[64];        /* Ollama-style name ("qwen2.5:3b"); "" for explicit dims */
    char arch[16];        /* GGUF general.architecture: "llama", "qwen2", "qwen3", ... */
    uint32_t n_layer;     /* blocks */
    uint32_t n_embd;      /* hidden size */
    uint32_t n_head;      /* attention heads */
    uint32_t n_head_kv;   /* key/value heads (GQA) */
    uint32_t head_dim;    /* per head; may differ from n_embd / n_head (qwen3) */
    uint32_t n_ff;        /* feed-forward length */
    uint32_t n_vocab;     /* tokens */
    uint32_t n_ctx_train; /* trained context (tokens) */
    float rope_theta;     /* rope.freq_base */
    float rms_eps;        /* attention.layer_norm_rms_epsilon */
    bool tied;            /* output projection shares token_embd */
    /* mixture of experts (archs qwen3moe, gemma4): every block's FFN is n_expert
     * experts of n_ff_exp, n_expert_used of them per token, picked by a router.
     * qwen3moe has no dense FFN (n_ff is only written to the file, llama.cpp
     * requires the key); gemma4 runs a dense FFN of n_ff beside the experts */
    uint32_t n_expert, n_expert_used, n_ff_exp;
    /* sliding-window attention (archs gemma3 and gemma4: 5 local layers to 1
     * global, drv_shape_layer_is_swa): the window in tokens; 0 = none */
    uint32_t n_swa;
    /* gemma4's global (full-attention) layers have their own kv heads and head
     * size (config.json's num_global_key_value_heads and global_head_dim) and
     * use K as V (no attn_v); n_head_kv and head_dim are the sliding layers'.
     * 0 for every other architecture. */
    uint32_t n_head_kv_global, head_dim_global;
    /* rotary dimensions per head (phi3's partial rotary); 0 = head_dim */
    uint32_t n_rot;
};

/* Number of catalog entries; entry i (0 <= i < count), static storage. */
int drv_catalog_count(void);
const struct drv_model_shape *drv_catalog_at(int i);
/* The entry named name (case-insensitive; a trailing ":latest" is not a size and
 * is not accepted), or NULL. */
const struct drv_model_shape *drv_catalog_find(const char *name);
/* Up to max catalog names close to name (same family prefix, or a small edit
 * distance), best first, into out (static strings). Returns how many. */
int drv_catalog_suggest(const char *name, const char **out, int max);

/* Parses explicit dims: ARCH:key=value[,key=value]... with keys layers, embd,
 * heads, kv_heads, ff, vocab (required) and head_dim, ctx, rope_theta, eps, tied
 * (0|1), experts, experts_used, expert_ff, swa, rot, global_kv_heads,
 * global_head_dim (optional). Missing optional keys take the arch's usual values
 * (gemma4's global_* those of the sliding layers). Fails with DRV_EINVAL and a
 * one-line message naming the bad part. */
int drv_shape_parse(const char *spec, struct drv_model_shape *out, struct drv_err *err);
/* A catalog name or a SHAPE spec (it has a '='). An unknown name fails with
 * DRV_ENOENT and a message that lists close matches. */
int drv_shape_resolve(const char *name_or_spec, struct drv_model_shape *out, struct drv_err *err);
/* Checks that synth can write the shape and llama.cpp can load it (supported
 * arch, heads divide, sizes within limits). DRV_EINVAL with the reason. */
int drv_shape_check(const struct drv_model_shape *s, struct drv_err *err);

/* Parameters (weight elements) of a model of shape s, norms and biases included. */
uint64_t drv_shape_params(const struct drv_model_shape *s);
/* Whether block il of shape s attends through the sliding window only: for
 * gemma3 and gemma4, 5 of every 6 (il % 6 < 5, drv_hparams_arch_layer_is_swa),
 * as llama.cpp sets gemma3's pattern and Gemma 3 and 4's config.json
 * layer_types list them. */
bool drv_shape_layer_is_swa(const struct drv_model_shape *s, uint32_t il);

/* ---- synth: a random-weight GGUF with a model's exact shapes (synth.c) ------- */

enum drv_synth_quant {
    DRV_SYNTH_Q4_0,   /* llama_ftype 2 */
    DRV_SYNTH_Q4_K_M, /* 15 */
    DRV_SYNTH_Q5_K_M, /* 17 */
    DRV_SYNTH_Q8_0,   /* 7 */
    DRV_SYNTH_F16,    /* 1 */
};

/* "q4_0", "q4_k_m", "q5_k_m", "q8_0", "f16" (case-insensitive); false otherwise. */
bool drv_synth_quant_parse(const char *s, enum drv_synth_quant *out);
/* The lowercase name of q, as drv_synth_quant_parse takes it. */
const char *drv_synth_quant_name(enum drv_synth_quant q);
/* The llama_ftype value written as general.file_type. */
int drv_synth_quant_ftype(enum drv_synth_quant q);

/* Called from the writing thread after each chunk; done <= total, in bytes of
 * tensor data. */
typedef void (*drv_synth_progress_fn)(void *ud, uint64_t done, uint64_t total);

struct drv_synth_params {
    struct drv_model_shape shape;   /* required: from the catalog or drv_shape_parse */
    enum drv_synth_quant quant;     /* default DRV_SYNTH_Q4_K_M */
    uint64_t seed;                  /* default 1; same seed, same bytes */
    uint32_t n_ctx;                 /* context_length written; 0 (default) = shape's */
    int n_threads;                  /* quantization threads; 0 (default) = online CPUs */
    drv_synth_progress_fn progress; /* NULL (default) = none */
    void *progress_ud;
};

struct drv_synth_params drv_synth_default_params(void);
/* Writes the GGUF to path (created or truncated; a regular file is removed again on
 * failure). Memory use is bounded by a few chunks per thread, not by the model's
 * size. Fails with
 * DRV_EINVAL (shape), DRV_EIO (path or disk) or DRV_ENOMEM, and a message. */
int drv_synth_write(const struct drv_synth_params *p, const char *path, struct drv_err *err);
/* Bytes of tensor data drv_synth_write would write for p (0 when the shape is bad). */
uint64_t drv_synth_tensor_bytes(const struct drv_synth_params *p);

/* The tensors drv_synth_write would write for p, with llama.cpp's quantizer type
 * mix; *out has *n entries, caller frees it with free(). DRV_EINVAL for a bad
 * shape. */
int drv_synth_tensor_list(const struct drv_synth_params *p, struct drv_tensor_size **out, int *n,
                          struct drv_err *err);

/* ---- fit: memory per device and expected speed (fit.c) ----------------------
 * Static estimate of what llama.cpp allocates when it loads a model, from the
 * tensor table and the hyperparameters; see drv_fit_plan for the formulas. */

struct drv_hw; /* probe/probe.h */

#define DRV_FIT_MAX_LAYERS    DRV_GGUF_MAX_LAYERS
#define DRV_FIT_MAX_DEVICES   17 /* the host plus DRV_HW_MAX_DEVICES */
#define DRV_FIT_MIB           (1024ull * 1024ull)
#define DRV_FIT_RAM_OVERHEAD  (150 * DRV_FIT_MIB) /* fixed host overhead (gguf-parser's) */
#define DRV_FIT_VRAM_OVERHEAD (250 * DRV_FIT_MIB) /* fixed per GPU used (gguf-parser's) */
/* Share of the read bandwidth llama.cpp's generation reaches. GPUs: REFERENCE.md
 * §5 measures 38-80 % of theoretical. CPUs: ~30 % of theoretical on EPYC; of the
 * bandwidth drover measures, bench/fit-accuracy.mjs saw 32-40 % (f32 tiny model,
 * llama3.2:1b q4_0), 54-60 % (qwen2.5:3b q4_k_m) and 61-67 % (llama3.2:1b q8_0)
 * on a 2-core VM: with few cores, dequantizing is part of the cost and differs by
 * type, which bytes alone do not see. */
#define DRV_FIT_EFF_CPU_LO 0.30
#define DRV_FIT_EFF_CPU_HI 0.75
#define DRV_FIT_EFF_GPU_LO 0.40
#define DRV_FIT_EFF_GPU_HI 0.80
/* Seconds per block and generated token that the CPU spends whatever the bytes
 * (op dispatch, thread barriers): tiny synthesized models of 2..32 blocks
 * generated at 200 + ~42 us per block on the busy 2-core VM, stories260K (5
 * blocks, 1 MB) at 135 us in all when it was quiet. Negligible from ~1B up. */
#define DRV_FIT_CPU_BLOCK_S_LO 10e-6
#define DRV_FIT_CPU_BLOCK_S_HI 40e-6

enum drv_fit_kv {
    DRV_FIT_KV_F16,
    DRV_FIT_KV_Q8_0,
    DRV_FIT_KV_Q4_0,
};
/* "f16", "q8_0", "q4_0" (case-insensitive); false otherwise. */
bool drv_fit_kv_parse(const char *s, enum drv_fit_kv *out);
const char *drv_fit_kv_name(enum drv_fit_kv kv);

/* What fit needs to know about a model: a plain value. */
struct drv_fit_model {
    char name[256]; /* catalog name or file path */
    char arch[64];
    char quant[24]; /* "Q4_K_M", ... */
    bool from_catalog;
    uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim_k, head_dim_v, n_ff, n_vocab;
    uint32_t n_ctx_train, n_swa, n_expert, n_expert_used;
    uint64_t total_bytes;  /* all tensors (the GGUF's tensor bytes) */
    uint64_t embd_bytes;   /* token_embd: stays in host memory */
    uint64_t output_bytes; /* output_norm + output: the last offloadable unit */
    bool tied;             /* no output.weight: llama.cpp copies token_embd for it */
    uint64_t tied_bytes;   /* bytes of that copy (token_embd) when tied */
    uint64_t expert_bytes; /* *_exps tensors (MoE); a token reads n_expert_used of them */
    uint64_t layer_bytes[DRV_FIT_MAX_LAYERS];
    /* Attention that differs between layers, as llama.cpp's hparams hold it
     * (gemma4: sliding layers 8 kv heads of 256, global layers 2 of 512). A
     * sliding layer's head sizes are head_dim_k_swa / _v_swa (0: head_dim_k /
     * _v). With per_layer_kv, layer_n_head_kv[il] is layer il's kv heads (0: it
     * has no KV cache), else every layer has n_head_kv. With has_swa_layers,
     * swa_layer[il] says which layers slide, else the architecture's pattern. */
    uint32_t head_dim_k_swa, head_dim_v_swa;
    bool per_layer_kv;
    uint32_t layer_n_head_kv[DRV_FIT_MAX_LAYERS];
    bool has_swa_layers;
    bool swa_layer[DRV_FIT_MAX_LAYERS];
};

/* Sums tensors into m's byte fields (hyperparameters are the caller's). DRV_EINVAL
 * when a block index is >= m->n_layer or DRV_FIT_MAX_LAYERS. */
int drv_fit_model_from_tensors(const struct drv_tensor_size *t, int n, struct drv_fit_model *m,
                               struct drv_err *err);
/* Sets m's arch and hyperparameters (every field but the name, quant and
 * bytes) from hp, as a GGUF file's or Ollama's POST /api/show gives them. */
void drv_fit_model_set_hparams(struct drv_fit_model *m, const char *arch,
                               const struct drv_hparams *hp);
/* MODEL: a GGUF path (has a '/' or ends in .gguf) or a catalog name with an
 * optional "-QUANT" suffix (qwen3:8b = q4_k_m, qwen3:8b-q8_0). An unknown name
 * fails with DRV_ENOENT and close matches in the message. */
int drv_fit_model_load(const char *model, struct drv_fit_model *out, struct drv_err *err);
/* The model synth would write for shape s at quantization q (the catalog's
 * path of drv_fit_model_load; name, arch and quant from s and q). DRV_EINVAL for
 * a shape synth cannot write. */
int drv_fit_model_from_shape(const struct drv_model_shape *s, enum drv_synth_quant q,
                             struct drv_fit_model *out, struct drv_err *err);

/* KV cache bytes llama.cpp allocates for n_seq sequences of n_ctx tokens
 * (drv_fit_plan's KV formula: each layer its own rows, sliding-window layers
 * their window). */
uint64_t drv_fit_kv_bytes(const struct drv_fit_model *m, enum drv_fit_kv kv, uint32_t n_ctx,
                          uint32_t n_seq);
/* The same for the model inspected as in: what the engine reserves before it
 * loads a file. */
uint64_t drv_fit_kv_bytes_gguf(const struct drv_gguf_info *in, enum drv_fit_kv kv, uint32_t n_ctx,
                               uint32_t n_seq);
/* KV cache bytes for one cell (token of one sequence) over all layers that grow
 * with the context (sliding-window layers hold a fixed window: not counted). */
uint64_t drv_fit_kv_bytes_per_token(const struct drv_fit_model *m, enum drv_fit_kv kv);
/* Whether layer il attends through a sliding window only (n_swa > 0, and
 * swa_layer[il] where the model lists its layers, else the architecture's
 * pattern); such a layer's KV holds the window, not the context. */
bool drv_fit_layer_is_swa(const struct drv_fit_model *m, uint32_t il);

struct drv_fit_params {
    uint32_t n_ctx;      /* context tokens per sequence; default 4096 */
    uint32_t n_parallel; /* sequences; default 1 */
    uint32_t n_ubatch;   /* physical batch; default 512 */
    enum drv_fit_kv kv;  /* default DRV_FIT_KV_F16 */
    int n_gpu_layers;    /* units on GPUs (n_layer + 1 = all); default -1 = as many as fit */
};
struct drv_fit_params drv_fit_default_params(void);

struct drv_fit_device {
    char name[64]; /* "CPU" for the host, else the ggml device name */
    char description[128];
    bool gpu;        /* false for the host */
    bool shares_ram; /* an integrated GPU: its memory is the host's */
    uint64_t free_bytes;
    int n_layers; /* blocks held */
    bool has_output;
    uint64_t weights, kv, compute, overhead; /* bytes */
    double bw_gbps;                          /* read bandwidth; < 0 unknown */
    bool bw_measured;
};

enum drv_fit_verdict {
    DRV_FIT_GPU,     /* everything on GPUs */
    DRV_FIT_PARTIAL, /* some layers on GPUs, the rest on the CPU */
    DRV_FIT_CPU,     /* no GPU: all in RAM */
    DRV_FIT_NONE,    /* does not fit RAM either */
};

/* "gpu", "partial", "cpu" or "none": the verdict as fit's and recommend's JSON
 * write it. Static string. */
const char *drv_fit_verdict_name(enum drv_fit_verdict v);

struct drv_fit_result {
    struct drv_fit_params params;
    enum drv_fit_verdict verdict;
    struct drv_fit_device dev[DRV_FIT_MAX_DEVICES]; /* dev[0] is the host */
    int n_dev;
    int n_gpu_layers;      /* units offloaded (n_layer + 1 = all) */
    uint64_t kv_per_token; /* drv_fit_kv_bytes_per_token */
    uint64_t kv_bytes;     /* whole cache: cells = n_ctx * n_parallel */
    uint64_t total_bytes;  /* over all devices */
    /* roofline for generation of one sequence at n_ctx */
    uint64_t read_per_token; /* active weights + KV of one sequence at n_ctx */
    double tg_lo, tg_hi;     /* tok/s; < 0 unknown */
    bool tg_upper_only;      /* a GPU's bandwidth is unknown: tg_hi bounds the CPU part only */
    /* when not everything fits on GPUs: forms that would */
    uint32_t alt_ctx;     /* largest power of two < n_ctx that fits fully (0 none) */
    bool alt_q8_fits;     /* q8_0 KV at n_ctx fits fully (only asked when kv is f16) */
    uint32_t alt_ctx_ram; /* verdict NONE: largest power of two context that fits RAM */
};

/* Places the model on hw's devices and predicts speed. Formulas:
 *   KV      = sum over layers of cells x (row(type_k, head_dim_k x n_head_kv)
 *             + row(type_v, head_dim_v x n_head_kv)) with the layer's own kv
 *             heads and head sizes (a K=V layer still has a V cache in llama.cpp),
 *             cells = n_ctx padded to a multiple of 256 (as llama.cpp does) x
 *             n_parallel, or for a sliding-window layer the window plus one
 *             ubatch, padded, per sequence; each layer's cache on the device
 *             that holds the layer;
 *   compute = the peak of llama.cpp's worst-case graph of n_ub = min(n_ubatch,
 *             n_ctx x n_parallel) tokens (flash attention: no n_ctx x n_ub scores):
 *             block  = n_ub x 4 x max(3 n_ff + 4 n_embd, 2 n_embd + 3 n_head x
 *                      the widest head_dim) + KQ mask (padded n_ctx x n_ub x 2),
 *             output = n_ub x 4 x (n_vocab + 2 n_embd);
 *             a device with blocks reserves `block`, the one with the output
 *             max(block, output); the host adds n_parallel x 4 x n_vocab (logits);
 *   overhead= 150 MiB host, 250 MiB per GPU used;
 *   units   = block 0 .. n_layer-1, then the output; the last -n_gpu_layers go to
 *             GPUs, filling the first GPU's free memory before the next;
 *   tg      = 1 / sum over devices (bytes read per token there / (bandwidth x
 *             efficiency) + on the CPU, blocks x DRV_FIT_CPU_BLOCK_S_*),
 *             efficiency (DRV_FIT_EFF_CPU_*: 0.30-0.75 of the CPU's measured read
 *             bandwidth, DRV_FIT_EFF_GPU_*: 0.4-0.8 of a GPU's).
 * hw gives free memory (host: memory.available_bytes) and the host's measured
 * bandwidth; integrated GPUs read at the host's bandwidth, discrete ones at
 * devices[].bandwidth_gbps when there is one (measured by the probe, whose
 * device copy counts read + write bytes like a spec sheet, so the same GPU range
 * applies; or written into the profile by hand), else unknown. bw_measured
 * tells the two apart. */
void drv_fit_plan(const struct drv_fit_model *m, const struct drv_hw *hw,
                  const struct drv_fit_params *p, struct drv_fit_result *out);

/* ---- recommend: which catalog models to run on a machine (recommend.c) -------
 * Every catalog model at every quantization synth writes is planned with
 * drv_fit_plan on the machine; then three roles are filled from the numbers:
 *
 *   fastest useful   the highest tok/s among models of at least
 *                    DRV_REC_USEFUL_PARAMS that fit;
 *   best quality     the most parameters (then the best quantization) among
 *                    models that fit and generate at least DRV_REC_QUALITY_TPS;
 *   daily driver     the most parameters at DRV_REC_DAILY_QUANT among models
 *                    that fit with DRV_REC_DAILY_CTX tokens of context and
 *                    generate at least DRV_REC_DAILY_TPS (none: the fastest model
 *                    at that quantization that fits).
 *
 * "Fits" means fully in the fast memory: every layer on the GPUs when the
 * machine has one, else in RAM, with the asked context (n_ctx, at most the
 * model's trained context), one sequence. "tok/s" is the middle of the roofline
 * range (drv_fit_plan: DRV_FIT_EFF_CPU_* and _GPU_* of the bandwidth), or a
 * measurement when one was made. Where a discrete GPU's bandwidth is unknown,
 * models fully on it pass the speed thresholds and are ordered by bytes read
 * per token (a note says so). */

#define DRV_REC_USEFUL_PARAMS  1000000000ull    /* below ~1B a model is a toy for chat */
#define DRV_REC_MIN_CTX        4096             /* a usable default context (tokens) */
#define DRV_REC_QUALITY_TPS    5.0              /* below about reading speed, waiting dominates */
#define DRV_REC_DAILY_TPS      15.0             /* well above reading speed: comfortable all day */
#define DRV_REC_DAILY_QUANT    DRV_SYNTH_Q4_K_M /* what Ollama ships by default */
#define DRV_REC_DAILY_CTX      16384 /* room for long chats and documents: 4 x the minimum */
#define DRV_REC_MAX_CANDIDATES 160
#define DRV_REC_MAX_AVOID      5
#define DRV_REC_MAX_NOTES      6

enum drv_rec_role {
    DRV_REC_FASTEST,
    DRV_REC_QUALITY,
    DRV_REC_DAILY,
    DRV_REC_N_ROLES,
};
/* "fastest useful", "best quality", "daily driver" (or the JSON keys
 * "fastest_useful", "best_quality", "daily_driver" when json). */
const char *drv_recommend_role_name(enum drv_rec_role role, bool json);

struct drv_rec_candidate {
    char model[64]; /* catalog name */
    enum drv_synth_quant quant;
    uint64_t params;         /* weight elements */
    uint64_t weights_bytes;  /* the GGUF's tensor bytes */
    uint64_t total_bytes;    /* every device, at the asked context */
    uint64_t fast_used;      /* of that, in the fast memory (GPUs, or RAM) */
    uint64_t read_per_token; /* bytes a generated token reads */
    enum drv_fit_verdict verdict;
    bool fits;                 /* fully in the fast memory at the asked context */
    uint32_t n_ctx;            /* the context it was planned with */
    uint32_t max_ctx;          /* largest context that still fits fully (0: none) */
    uint32_t n_ctx_train;      /* the model's own limit */
    int n_gpu_layers, n_units; /* units on GPUs, of n_layer + 1 */
    double tg_lo, tg_hi;       /* predicted tok/s; < 0 unknown */
    bool tg_upper_only;        /* tg_hi bounds the CPU part only */
    double tg_measured;        /* > 0: measured (drv_engine_bench_local) */
    double pp_measured;        /* > 0: measured prompt tok/s */
    bool measure_failed;       /* a measurement was tried and failed */
};

struct drv_rec_avoid {
    int cand; /* index into candidates */
    char reason[384];
};

struct drv_rec_params {
    uint32_t n_ctx;     /* context the picks must allow; default DRV_REC_MIN_CTX */
    enum drv_fit_kv kv; /* KV cache type; default f16 */
};
struct drv_rec_params drv_recommend_default_params(void);

struct drv_rec_result {
    struct drv_rec_params params;
    bool gpu;            /* the fast memory is a GPU's */
    uint64_t fast_bytes; /* free bytes of the fast memory (GPUs together, or RAM) */
    char fast_name[64];  /* "8.00 GiB VRAM", "23.13 GiB RAM", ... */
    double host_bw_gbps; /* < 0 not measured */
    struct drv_rec_candidate cand[DRV_REC_MAX_CANDIDATES];
    int n_cand;
    int pick[DRV_REC_N_ROLES]; /* index into cand, -1: none */
    char why[DRV_REC_N_ROLES][384];
    struct drv_rec_avoid avoid[DRV_REC_MAX_AVOID];
    int n_avoid;
    char notes[DRV_REC_MAX_NOTES][256];
    int n_notes;
};

/* Plans every candidate on hw and fills out (a large value: allocate it).
 * DRV_EINVAL for a context of 0. */
int drv_recommend_run(const struct drv_hw *hw, const struct drv_rec_params *p,
                      struct drv_rec_result *out, struct drv_err *err);
/* Fills the roles, their reasons and the avoid list from out's candidates again,
 * using tg_measured where it is set: call after adding measurements. */
void drv_recommend_pick(struct drv_rec_result *r);
/* tok/s a candidate is judged by: measured, else the middle of the predicted
 * range; < 0 unknown. */
double drv_recommend_tps(const struct drv_rec_candidate *c);

#endif
