#include "model/model.h"
#include "model/model_int.h"

#include <errno.h>
#include <ggml.h>
#include <gguf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ggml reports why a file is rejected only through its log. Keep the last error
 * line of this thread so the user sees the reason in drover's one-line message. */
static _Thread_local char last_ggml_error[256];

static void ggml_log_to_drover(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (level == GGML_LOG_LEVEL_ERROR) {
        drv_strlcpy(last_ggml_error, text, sizeof(last_ggml_error));
        size_t n = strlen(last_ggml_error);
        while (n > 0 && (last_ggml_error[n - 1] == '\n' || last_ggml_error[n - 1] == ' '))
            last_ggml_error[--n] = '\0';
    }
    if (level == GGML_LOG_LEVEL_CONT)
        return;
    drv_log(level == GGML_LOG_LEVEL_ERROR  ? DRV_LOG_DEBUG /* surfaced by the caller */
            : level == GGML_LOG_LEVEL_WARN ? DRV_LOG_WARN
                                           : DRV_LOG_DEBUG,
            "ggml: %s", text);
}

void drv_model_route_ggml_log(void)
{
    ggml_log_set(ggml_log_to_drover, NULL);
}

/* ---- type-checked readers: gguf's getters assert on a type mismatch ---- */

static bool is_int_type(enum gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_BOOL:
        return true;
    default:
        return false;
    }
}

/* Element i of the values at p, of integer (or bool) type t; negatives are 0. */
static uint64_t int_at(enum gguf_type t, const void *p, size_t i)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
        return ((const uint8_t *)p)[i];
    case GGUF_TYPE_INT8:
        return ((const int8_t *)p)[i] < 0 ? 0 : (uint64_t)((const int8_t *)p)[i];
    case GGUF_TYPE_UINT16:
        return ((const uint16_t *)p)[i];
    case GGUF_TYPE_INT16:
        return ((const int16_t *)p)[i] < 0 ? 0 : (uint64_t)((const int16_t *)p)[i];
    case GGUF_TYPE_UINT32:
        return ((const uint32_t *)p)[i];
    case GGUF_TYPE_INT32:
        return ((const int32_t *)p)[i] < 0 ? 0 : (uint64_t)((const int32_t *)p)[i];
    case GGUF_TYPE_UINT64:
        return ((const uint64_t *)p)[i];
    case GGUF_TYPE_INT64:
        return ((const int64_t *)p)[i] < 0 ? 0 : (uint64_t)((const int64_t *)p)[i];
    case GGUF_TYPE_BOOL:
        return ((const int8_t *)p)[i] != 0;
    default:
        return 0;
    }
}

/* The integer values of key: *n of them at *data, of type *t (a scalar is one).
 * False when absent, empty or not integers, before gguf is asked for the data
 * (its getters assert on strings). */
static bool kv_ints(const struct gguf_context *g, const char *key, enum gguf_type *t,
                    const void **data, size_t *n, bool *is_arr)
{
    int64_t id = gguf_find_key(g, key);
    if (id < 0)
        return false;
    *t = gguf_get_kv_type(g, id);
    *is_arr = *t == GGUF_TYPE_ARRAY;
    if (*is_arr)
        *t = gguf_get_arr_type(g, id);
    if (!is_int_type(*t))
        return false;
    *n = *is_arr ? gguf_get_arr_n(g, id) : 1;
    if (*n == 0)
        return false;
    *data = *is_arr ? gguf_get_arr_data(g, id) : gguf_get_val_data(g, id);
    return true;
}

/* key as one number: a scalar, or an array's largest element */
static bool kv_uint(const struct gguf_context *g, const char *key, uint64_t *out)
{
    enum gguf_type t;
    const void *p;
    size_t n;
    bool is_arr;
    if (!kv_ints(g, key, &t, &p, &n, &is_arr))
        return false;
    uint64_t best = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = int_at(t, p, i);
        if (v > best)
            best = v;
    }
    *out = best;
    return true;
}

static bool kv_float(const struct gguf_context *g, const char *key, double *out)
{
    int64_t id = gguf_find_key(g, key);
    if (id < 0)
        return false;
    switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_FLOAT32:
        *out = gguf_get_val_f32(g, id);
        return true;
    case GGUF_TYPE_FLOAT64:
        *out = gguf_get_val_f64(g, id);
        return true;
    default: {
        uint64_t u;
        if (!kv_uint(g, key, &u))
            return false;
        *out = (double)u;
        return true;
    }
    }
}

static bool kv_str(const struct gguf_context *g, const char *key, char *out, size_t out_size)
{
    int64_t id = gguf_find_key(g, key);
    if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_STRING)
        return false;
    drv_strlcpy(out, gguf_get_val_str(g, id), out_size);
    return true;
}

/* ---- llama_ftype names (llama.h's enum llama_ftype; values are a file format):
 * Ollama's label, and llama.cpp's own name (llama_ftype_name, which llama-server
 * sends as a model's "ftype") */

static const struct {
    int v;
    const char *name, *llama;
} ftypes[] = {
    {0, "F32", "all F32"},
    {1, "F16", "F16"},
    {2, "Q4_0", "Q4_0"},
    {3, "Q4_1", "Q4_1"},
    {7, "Q8_0", "Q8_0"},
    {8, "Q5_0", "Q5_0"},
    {9, "Q5_1", "Q5_1"},
    {10, "Q2_K", "Q2_K - Medium"},
    {11, "Q3_K_S", "Q3_K - Small"},
    {12, "Q3_K_M", "Q3_K - Medium"},
    {13, "Q3_K_L", "Q3_K - Large"},
    {14, "Q4_K_S", "Q4_K - Small"},
    {15, "Q4_K_M", "Q4_K - Medium"},
    {16, "Q5_K_S", "Q5_K - Small"},
    {17, "Q5_K_M", "Q5_K - Medium"},
    {18, "Q6_K", "Q6_K"},
    {19, "IQ2_XXS", "IQ2_XXS - 2.0625 bpw"},
    {20, "IQ2_XS", "IQ2_XS - 2.3125 bpw"},
    {21, "Q2_K_S", "Q2_K - Small"},
    {22, "IQ3_XS", "IQ3_XS - 3.3 bpw"},
    {23, "IQ3_XXS", "IQ3_XXS - 3.0625 bpw"},
    {24, "IQ1_S", "IQ1_S - 1.5625 bpw"},
    {25, "IQ4_NL", "IQ4_NL - 4.5 bpw"},
    {26, "IQ3_S", "IQ3_S - 3.4375 bpw"},
    {27, "IQ3_M", "IQ3_S mix - 3.66 bpw"},
    {28, "IQ2_S", "IQ2_S - 2.5 bpw"},
    {29, "IQ2_M", "IQ2_M - 2.7 bpw"},
    {30, "IQ4_XS", "IQ4_XS - 4.25 bpw"},
    {31, "IQ1_M", "IQ1_M - 1.75 bpw"},
    {32, "BF16", "BF16"},
    {36, "TQ1_0", "TQ1_0 - 1.69 bpw ternary"},
    {37, "TQ2_0", "TQ2_0 - 2.06 bpw ternary"},
    {38, "MXFP4_MOE", "MXFP4 MoE"},
};

const char *drv_ftype_name(int file_type)
{
    for (size_t i = 0; i < sizeof(ftypes) / sizeof(ftypes[0]); i++)
        if (ftypes[i].v == file_type)
            return ftypes[i].name;
    return NULL;
}

const char *drv_ftype_name_of_llama(const char *llama_name)
{
    static const char guessed[] = "(guessed) ";
    if (strncmp(llama_name, guessed, sizeof(guessed) - 1) == 0)
        llama_name += sizeof(guessed) - 1;
    for (size_t i = 0; i < sizeof(ftypes) / sizeof(ftypes[0]); i++)
        if (strcmp(ftypes[i].llama, llama_name) == 0)
            return ftypes[i].name;
    return NULL;
}

const char *drv_ftype_llama_name(const char *name)
{
    for (size_t i = 0; i < sizeof(ftypes) / sizeof(ftypes[0]); i++)
        if (strcmp(ftypes[i].name, name) == 0)
            return ftypes[i].llama;
    return NULL;
}

/* ---- inspection ---- */

static struct drv_gguf_type_stat *type_slot(struct drv_gguf_info *info, const char *name)
{
    for (int i = 0; i < info->n_types; i++)
        if (strcmp(info->types[i].type, name) == 0)
            return &info->types[i];
    if (info->n_types == DRV_GGUF_MAX_TYPES)
        return NULL;
    struct drv_gguf_type_stat *s = &info->types[info->n_types++];
    memset(s, 0, sizeof(*s));
    drv_strlcpy(s->type, name, sizeof(s->type));
    return s;
}

static int read_tensors(const struct gguf_context *g, struct drv_gguf_info *info,
                        struct drv_err *err)
{
    uint64_t data_off = gguf_get_data_offset(g);
    uint64_t data_end = data_off;
    for (int64_t i = 0; i < info->n_tensors; i++) {
        const int64_t *ne = gguf_get_tensor_ne(g, i);
        uint64_t n = 1;
        for (int d = 0; d < GGML_MAX_DIMS; d++) {
            if (ne[d] < 0 || (ne[d] > 0 && n > UINT64_MAX / (uint64_t)ne[d]))
                return drv_err_set(err, DRV_EFORMAT, "tensor '%s' has an invalid shape",
                                   gguf_get_tensor_name(g, i));
            n *= (uint64_t)ne[d];
        }
        uint64_t bytes = gguf_get_tensor_size(g, i);
        uint64_t end = data_off + gguf_get_tensor_offset(g, i) + bytes;
        if (end > data_end)
            data_end = end;
        const char *tname = ggml_type_name(gguf_get_tensor_type(g, i));
        struct drv_gguf_type_stat *s = type_slot(info, tname ? tname : "?");
        if (s) {
            s->n_tensors++;
            s->n_elements += n;
            s->n_bytes += bytes;
        }
        info->n_params += n;
        info->tensor_bytes += bytes;
    }
    if (data_end > info->file_size)
        return drv_err_set(err, DRV_EFORMAT,
                           "truncated: tensor data ends at byte %llu but the file has %llu",
                           (unsigned long long)data_end, (unsigned long long)info->file_size);
    return 0;
}

/* ---- the metadata as drv_hparams_read looks keys up ---- */

static bool src_ints(const void *ud, const char *key, uint64_t *out, size_t cap, size_t *n,
                     bool *is_arr)
{
    enum gguf_type t;
    const void *p;
    if (!kv_ints(ud, key, &t, &p, n, is_arr))
        return false;
    for (size_t i = 0; i < *n && i < cap; i++)
        out[i] = int_at(t, p, i);
    return true;
}

static bool src_real(const void *ud, const char *key, double *out)
{
    return kv_float(ud, key, out);
}

static bool src_str(const void *ud, const char *key, char *out, size_t size)
{
    return kv_str(ud, key, out, size);
}

static bool src_arr_n(const void *ud, const char *key, size_t *n)
{
    int64_t id = gguf_find_key(ud, key);
    if (id < 0 || gguf_get_kv_type(ud, id) != GGUF_TYPE_ARRAY)
        return false;
    *n = gguf_get_arr_n(ud, id);
    return true;
}

static void read_hparams(const struct gguf_context *g, struct drv_gguf_info *info)
{
    struct drv_meta_src src = {
        .ud = g, .ints = src_ints, .real = src_real, .str = src_str, .arr_n = src_arr_n};
    drv_hparams_read(&src, info->arch, &info->hp);
    kv_str(g, "tokenizer.ggml.model", info->tokenizer, sizeof(info->tokenizer));
    int64_t tmpl = gguf_find_key(g, "tokenizer.chat_template");
    info->has_chat_template = tmpl >= 0 && gguf_get_kv_type(g, tmpl) == GGUF_TYPE_STRING &&
                              gguf_get_val_str(g, tmpl)[0] != '\0';
}

static void pick_quant(const struct gguf_context *g, struct drv_gguf_info *info)
{
    uint64_t ft;
    info->file_type = kv_uint(g, "general.file_type", &ft) && ft < 1024 ? (int)ft : -1;
    const char *name = drv_ftype_name(info->file_type);
    if (name) {
        drv_strlcpy(info->quant, name, sizeof(info->quant));
        return;
    }
    /* no (known) file type: name the type that holds most of the bytes */
    const struct drv_gguf_type_stat *best = NULL;
    for (int i = 0; i < info->n_types; i++)
        if (!best || info->types[i].n_bytes > best->n_bytes)
            best = &info->types[i];
    drv_strlcpy(info->quant, best ? best->type : "unknown", sizeof(info->quant));
    for (char *p = info->quant; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
}

static int inspect_ctx(struct gguf_context *g, struct drv_gguf_info *info, struct drv_err *err)
{
    info->version = gguf_get_version(g);
    info->n_kv = gguf_get_n_kv(g);
    info->n_tensors = gguf_get_n_tensors(g);
    kv_str(g, "general.architecture", info->arch, sizeof(info->arch));
    kv_str(g, "general.name", info->name, sizeof(info->name));
    int rc = read_tensors(g, info, err);
    if (rc)
        return rc;
    read_hparams(g, info);
    pick_quant(g, info);
    return 0;
}

static int open_failed(struct drv_err *err)
{
    if (last_ggml_error[0])
        return drv_err_set(err, DRV_EFORMAT, "not a valid GGUF file (%s)", last_ggml_error);
    return drv_err_set(err, DRV_EFORMAT, "not a valid GGUF file");
}

int drv_gguf_inspect_buffer(const void *data, size_t size, struct drv_gguf_info *out,
                            struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    out->file_size = size;
    drv_model_route_ggml_log();
    last_ggml_error[0] = '\0';
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_buffer(data, size, params);
    if (g == NULL)
        return open_failed(err);
    int rc = inspect_ctx(g, out, err);
    gguf_free(g);
    return rc;
}

int drv_gguf_inspect_file(const char *path, struct drv_gguf_info *out, struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    struct stat st;
    if (stat(path, &st) != 0)
        return drv_err_set(err, errno == ENOENT ? DRV_ENOENT : DRV_EIO, "%s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return drv_err_set(err, DRV_EINVAL, "is a directory, not a GGUF file");
    if (!S_ISREG(st.st_mode))
        return drv_err_set(err, DRV_EINVAL, "not a regular file");
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return drv_err_set(err, DRV_EIO, "%s", strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    if (got < 4 || memcmp(magic, "GGUF", 4) != 0) {
        fclose(f);
        return drv_err_set(err, DRV_EFORMAT, "not a GGUF file (no GGUF magic in the first bytes)");
    }
    rewind(f);
    drv_model_route_ggml_log();
    last_ggml_error[0] = '\0';
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file_ptr(f, params);
    fclose(f);
    out->file_size = (uint64_t)st.st_size;
    if (g == NULL)
        return open_failed(err);
    int rc = inspect_ctx(g, out, err);
    gguf_free(g);
    return rc;
}

/* blk.N.* -> N; -1 for anything else */
static int tensor_layer(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    char *end;
    long v = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && v >= 0 && v < 1000000 ? (int)v : -1;
}

int drv_gguf_tensor_list(const char *path, struct drv_tensor_size **out, int *n,
                         struct drv_err *err)
{
    *out = NULL;
    *n = 0;
    struct drv_gguf_info *info = malloc(sizeof(*info));
    if (info == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    /* validates the header and the tensor extents before anything is trusted */
    int rc = drv_gguf_inspect_file(path, info, err);
    free(info);
    if (rc)
        return rc;
    last_ggml_error[0] = '\0';
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(path, params);
    if (g == NULL)
        return open_failed(err);
    int64_t nt = gguf_get_n_tensors(g);
    struct drv_tensor_size *t = calloc(nt > 0 ? (size_t)nt : 1, sizeof(*t));
    if (t == NULL) {
        gguf_free(g);
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < nt; i++) {
        drv_strlcpy(t[i].name, gguf_get_tensor_name(g, i), sizeof(t[i].name));
        const char *tn = ggml_type_name(gguf_get_tensor_type(g, i));
        drv_strlcpy(t[i].type, tn ? tn : "?", sizeof(t[i].type));
        t[i].layer = tensor_layer(t[i].name);
        t[i].bytes = gguf_get_tensor_size(g, i);
    }
    gguf_free(g);
    *out = t;
    *n = (int)nt;
    return 0;
}

const char *drv_ggml_version(void)
{
    static char v[96];
    if (v[0] == '\0')
        snprintf(v, sizeof(v), "%s (commit %s)", ggml_version(), ggml_commit());
    return v;
}
