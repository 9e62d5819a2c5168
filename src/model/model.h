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

#define DRV_GGUF_MAX_TYPES 48

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
    /* hyperparameters (<arch>.*); 0 when absent. Per-layer arrays give their max. */
    uint32_t n_block;
    uint32_t n_embd;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim_k; /* attention.key_length, else n_embd / n_head */
    uint32_t head_dim_v; /* attention.value_length, else head_dim_k */
    uint32_t n_ff;
    uint32_t n_ctx_train;
    uint32_t n_swa; /* attention.sliding_window */
    uint32_t n_expert;
    uint32_t n_expert_used;
    uint32_t rope_dim; /* rope.dimension_count */
    double rope_freq_base;
    char rope_scaling[24]; /* rope.scaling.type ("" = none) */
    double rope_scaling_factor;
    uint32_t rope_orig_ctx;
    /* tokenizer */
    uint32_t n_vocab;   /* tokenizer.ggml.tokens length, else <arch>.vocab_size */
    char tokenizer[32]; /* tokenizer.ggml.model */
    bool has_chat_template;
};

/* Reads the metadata of the GGUF file at path into *out. Fails with DRV_ENOENT
 * (missing), DRV_EINVAL (not a regular file), DRV_EFORMAT (not GGUF, corrupt or
 * truncated) and a one-line message in err. */
int drv_gguf_inspect_file(const char *path, struct drv_gguf_info *out, struct drv_err *err);
/* Same, from bytes in memory (size is the whole "file"). */
int drv_gguf_inspect_buffer(const void *data, size_t size, struct drv_gguf_info *out,
                            struct drv_err *err);

/* Name of a llama_ftype value ("Q4_K_M"), or NULL when unknown. */
const char *drv_ftype_name(int file_type);

/* The ggml library drover runs on, e.g. "0.9.4 (commit 80fb11a)"; static storage. */
const char *drv_ggml_version(void);

#endif
