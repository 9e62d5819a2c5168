#include "cmd/cmd.h"
#include "model/model.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Kv heads of the sliding and of the other blocks when each kind has one
 * value (gemma4: 8 and 2); false when the file lists no sliding blocks or the
 * heads vary otherwise. */
static bool kv_heads_by_kind(const struct drv_gguf_info *in, uint32_t *swa, uint32_t *full)
{
    if (!in->hp.has_swa_layers || in->hp.n_block == 0 || in->hp.n_block > DRV_GGUF_MAX_LAYERS)
        return false;
    uint32_t v[2] = {0, 0};
    bool seen[2] = {false, false};
    for (uint32_t il = 0; il < in->hp.n_block; il++) {
        int k = in->hp.layer_swa[il];
        if (seen[k] && v[k] != in->hp.layer_n_head_kv[il])
            return false;
        seen[k] = true;
        v[k] = in->hp.layer_n_head_kv[il];
    }
    if (!seen[0] || !seen[1] || v[0] == v[1])
        return false;
    *swa = v[1];
    *full = v[0];
    return true;
}

static json_t *info_to_json(const char *path, const struct drv_gguf_info *in)
{
    json_t *types = json_array();
    for (int i = 0; i < in->n_types; i++) {
        const struct drv_gguf_type_stat *t = &in->types[i];
        json_array_append_new(types, json_pack("{s:s, s:I, s:I, s:I}", "type", t->type, "tensors",
                                               (json_int_t)t->n_tensors, "elements",
                                               (json_int_t)t->n_elements, "bytes",
                                               (json_int_t)t->n_bytes));
    }
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "file_size", json_integer((json_int_t)in->file_size));
    json_object_set_new(o, "gguf_version", json_integer(in->version));
    json_object_set_new(o, "architecture", json_string(in->arch));
    json_object_set_new(o, "name", json_string(in->name));
    json_object_set_new(o, "parameters", json_integer((json_int_t)in->n_params));
    json_object_set_new(o, "file_type",
                        in->file_type >= 0 ? json_integer(in->file_type) : json_null());
    json_object_set_new(o, "quantization", json_string(in->quant));
    json_object_set_new(o, "tensor_count", json_integer(in->n_tensors));
    json_object_set_new(o, "tensor_bytes", json_integer((json_int_t)in->tensor_bytes));
    json_object_set_new(o, "tensor_types", types);
    json_object_set_new(o, "block_count", json_integer(in->hp.n_block));
    json_object_set_new(o, "embedding_length", json_integer(in->hp.n_embd));
    json_object_set_new(o, "head_count", json_integer(in->hp.n_head));
    json_object_set_new(o, "head_count_kv", json_integer(in->hp.n_head_kv));
    json_object_set_new(o, "head_dim_k", json_integer(in->hp.head_dim_k));
    json_object_set_new(o, "head_dim_v", json_integer(in->hp.head_dim_v));
    json_object_set_new(o, "feed_forward_length", json_integer(in->hp.n_ff));
    json_object_set_new(o, "context_length", json_integer(in->hp.n_ctx_train));
    json_object_set_new(o, "sliding_window", json_integer(in->hp.n_swa));
    /* what differs by layer (gemma4): kv heads, head sizes of the sliding layers,
     * which layers slide (null when the file does not list them) */
    json_object_set_new(o, "head_dim_k_swa", json_integer(in->hp.head_dim_k_swa));
    json_object_set_new(o, "head_dim_v_swa", json_integer(in->hp.head_dim_v_swa));
    json_t *kv = json_array(), *swa = in->hp.has_swa_layers ? json_array() : json_null();
    for (uint32_t il = 0; il < in->hp.n_block && il < DRV_GGUF_MAX_LAYERS; il++) {
        json_array_append_new(kv, json_integer(in->hp.layer_n_head_kv[il]));
        if (in->hp.has_swa_layers)
            json_array_append_new(swa, json_boolean(in->hp.layer_swa[il]));
    }
    json_object_set_new(o, "head_count_kv_per_layer", kv);
    json_object_set_new(o, "sliding_window_layers", swa);
    json_t *rope = json_object();
    json_object_set_new(rope, "dimension_count", json_integer(in->hp.rope_dim));
    json_object_set_new(rope, "freq_base",
                        in->hp.rope_freq_base > 0 ? json_real(in->hp.rope_freq_base) : json_null());
    json_object_set_new(rope, "scaling_type",
                        in->hp.rope_scaling[0] ? json_string(in->hp.rope_scaling) : json_null());
    json_object_set_new(rope, "scaling_factor",
                        in->hp.rope_scaling_factor > 0 ? json_real(in->hp.rope_scaling_factor)
                                                       : json_null());
    json_object_set_new(rope, "original_context_length", json_integer(in->hp.rope_orig_ctx));
    json_object_set_new(o, "rope", rope);
    json_object_set_new(o, "vocab_size", json_integer(in->hp.n_vocab));
    json_object_set_new(o, "tokenizer", json_string(in->tokenizer));
    json_object_set_new(o, "chat_template", json_boolean(in->has_chat_template));
    json_object_set_new(o, "expert_count", json_integer(in->hp.n_expert));
    json_object_set_new(o, "expert_used_count", json_integer(in->hp.n_expert_used));
    return o;
}

static void print_table(const char *path, const struct drv_gguf_info *in)
{
    char a[32], b[32];
    printf("%-16s %s\n", "file", path);
    printf("%-16s %s (GGUF v%u)\n", "size", drv_fmt_bytes(in->file_size, a, sizeof(a)),
           in->version);
    printf("%-16s %s\n", "architecture", in->arch[0] ? in->arch : "(none)");
    if (in->name[0])
        printf("%-16s %s\n", "name", in->name);
    printf("%-16s %s (%llu)\n", "parameters", drv_fmt_count(in->n_params, a, sizeof(a)),
           (unsigned long long)in->n_params);
    printf("%-16s %s%s\n", "quantization", in->quant,
           in->file_type < 0 ? " (no general.file_type; dominant tensor type)" : "");
    printf("%-16s %lld tensors, %s\n", "tensors", (long long)in->n_tensors,
           drv_fmt_bytes(in->tensor_bytes, a, sizeof(a)));
    for (int i = 0; i < in->n_types; i++) {
        const struct drv_gguf_type_stat *t = &in->types[i];
        double pct = in->tensor_bytes ? 100.0 * (double)t->n_bytes / (double)in->tensor_bytes : 0;
        printf("  %-14s %4u tensors %12s %5.1f %%  %s elements\n", t->type, t->n_tensors,
               drv_fmt_bytes(t->n_bytes, a, sizeof(a)), pct,
               drv_fmt_count(t->n_elements, b, sizeof(b)));
    }
    printf("%-16s %u\n", "blocks", in->hp.n_block);
    printf("%-16s %u\n", "embedding", in->hp.n_embd);
    printf("%-16s %u\n", "heads", in->hp.n_head);
    uint32_t kv_swa, kv_full;
    if (kv_heads_by_kind(in, &kv_swa, &kv_full))
        printf("%-16s %u sliding, %u global\n", "kv heads", kv_swa, kv_full);
    else
        printf("%-16s %u\n", "kv heads", in->hp.n_head_kv);
    bool swa_dims = (in->hp.head_dim_k_swa && in->hp.head_dim_k_swa != in->hp.head_dim_k) ||
                    (in->hp.head_dim_v_swa && in->hp.head_dim_v_swa != in->hp.head_dim_v);
    uint32_t k_swa = in->hp.head_dim_k_swa ? in->hp.head_dim_k_swa : in->hp.head_dim_k;
    uint32_t v_swa = in->hp.head_dim_v_swa ? in->hp.head_dim_v_swa : in->hp.head_dim_v;
    if (swa_dims && k_swa == v_swa && in->hp.head_dim_k == in->hp.head_dim_v)
        printf("%-16s %u sliding, %u global\n", "head dim", k_swa, in->hp.head_dim_k);
    else if (swa_dims)
        printf("%-16s k %u, v %u sliding; k %u, v %u global\n", "head dim", k_swa, v_swa,
               in->hp.head_dim_k, in->hp.head_dim_v);
    else if (in->hp.head_dim_k == in->hp.head_dim_v)
        printf("%-16s %u\n", "head dim", in->hp.head_dim_k);
    else
        printf("%-16s k %u, v %u\n", "head dim", in->hp.head_dim_k, in->hp.head_dim_v);
    printf("%-16s %u\n", "ffn length", in->hp.n_ff);
    printf("%-16s %u\n", "context", in->hp.n_ctx_train);
    if (in->hp.n_swa)
        printf("%-16s %u\n", "sliding window", in->hp.n_swa);
    if (in->hp.has_swa_layers) {
        uint32_t n = 0;
        for (uint32_t il = 0; il < in->hp.n_block && il < DRV_GGUF_MAX_LAYERS; il++)
            n += in->hp.layer_swa[il];
        printf("%-16s %u sliding, %u global\n", "layers", n, in->hp.n_block - n);
    }
    printf("%-16s dim %u", "rope", in->hp.rope_dim);
    if (in->hp.rope_freq_base > 0)
        printf(", freq base %g", in->hp.rope_freq_base);
    if (in->hp.rope_scaling[0]) {
        printf(", scaling %s", in->hp.rope_scaling);
        if (in->hp.rope_scaling_factor > 0)
            printf(" x%g", in->hp.rope_scaling_factor);
        if (in->hp.rope_orig_ctx)
            printf(" (original context %u)", in->hp.rope_orig_ctx);
    }
    printf("\n");
    printf("%-16s %u tokens, %s tokenizer\n", "vocabulary", in->hp.n_vocab,
           in->tokenizer[0] ? in->tokenizer : "no");
    printf("%-16s %s\n", "chat template", in->has_chat_template ? "yes" : "no");
    if (in->hp.n_expert)
        printf("%-16s %u, %u used per token\n", "experts", in->hp.n_expert, in->hp.n_expert_used);
}

int drv_cmd_inspect(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("inspect");
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_option(self, opts, "+h", argv);
        }
    }
    if (optind != argc - 1)
        return drv_cmd_bad_usage(self, optind == argc ? "missing FILE" : "too many arguments");

    const char *path = argv[optind];
    struct drv_gguf_info info;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_gguf_inspect_file(path, &info, &err) != 0) {
        fprintf(stderr, "drover inspect: %s: %s\n", path, err.msg);
        return 1;
    }
    if (json) {
        json_t *o = info_to_json(path, &info);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        json_decref(o);
        if (s == NULL) {
            fprintf(stderr, "drover inspect: out of memory\n");
            return 1;
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_table(path, &info);
    }
    return 0;
}
