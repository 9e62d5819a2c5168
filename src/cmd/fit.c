#include "cmd/cmd.h"
#include "model/model.h"
#include "probe/probe.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *bw_json(double v)
{
    return v > 0 ? json_real(v) : json_null();
}

static json_t *to_json(const struct drv_fit_model *m, const struct drv_fit_result *r)
{
    json_t *o = json_object();
    json_t *mo = json_object();
    json_object_set_new(mo, "name", json_string(m->name));
    json_object_set_new(mo, "source", json_string(m->from_catalog ? "catalog" : "file"));
    json_object_set_new(mo, "architecture", json_string(m->arch));
    json_object_set_new(mo, "quantization", json_string(m->quant));
    json_object_set_new(mo, "block_count", json_integer(m->n_layer));
    json_object_set_new(mo, "weights_bytes", json_integer((json_int_t)m->total_bytes));
    json_object_set_new(mo, "token_embd_bytes", json_integer((json_int_t)m->embd_bytes));
    json_object_set_new(mo, "output_bytes", json_integer((json_int_t)m->output_bytes));
    json_object_set_new(mo, "tied_output", json_boolean(m->tied));
    json_t *layers = json_array();
    for (uint32_t i = 0; i < m->n_layer; i++)
        json_array_append_new(layers, json_integer((json_int_t)m->layer_bytes[i]));
    json_object_set_new(mo, "layer_bytes", layers);
    json_object_set_new(o, "model", mo);

    json_object_set_new(o, "context", json_integer(r->params.n_ctx));
    json_object_set_new(o, "parallel", json_integer(r->params.n_parallel));
    json_object_set_new(o, "kv_type", json_string(drv_fit_kv_name(r->params.kv)));
    json_object_set_new(o, "kv_bytes_per_token", json_integer((json_int_t)r->kv_per_token));
    json_object_set_new(o, "kv_bytes", json_integer((json_int_t)r->kv_bytes));
    json_object_set_new(o, "fit", json_string(drv_fit_verdict_name(r->verdict)));
    json_object_set_new(o, "gpu_layers", json_integer(r->n_gpu_layers));
    json_object_set_new(o, "gpu_layers_all", json_integer(m->n_layer + 1));
    json_object_set_new(o, "total_bytes", json_integer((json_int_t)r->total_bytes));
    json_t *devs = json_array();
    for (int i = 0; i < r->n_dev; i++) {
        const struct drv_fit_device *d = &r->dev[i];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(d->name));
        json_object_set_new(j, "description", json_string(d->description));
        json_object_set_new(j, "type",
                            json_string(!d->gpu         ? "cpu"
                                        : d->shares_ram ? "igpu"
                                                        : "gpu"));
        json_object_set_new(j, "free_bytes", json_integer((json_int_t)d->free_bytes));
        json_object_set_new(j, "layers", json_integer(d->n_layers));
        json_object_set_new(j, "output", json_boolean(d->has_output));
        json_object_set_new(j, "weights_bytes", json_integer((json_int_t)d->weights));
        json_object_set_new(j, "kv_bytes", json_integer((json_int_t)d->kv));
        json_object_set_new(j, "compute_bytes", json_integer((json_int_t)d->compute));
        json_object_set_new(j, "overhead_bytes", json_integer((json_int_t)d->overhead));
        uint64_t total = d->weights + d->kv + d->compute + d->overhead;
        json_object_set_new(j, "total_bytes", json_integer((json_int_t)total));
        json_object_set_new(j, "fits", json_boolean(total <= d->free_bytes));
        json_object_set_new(j, "bandwidth_gbps", bw_json(d->bw_gbps));
        json_object_set_new(j, "bandwidth_measured", json_boolean(d->bw_measured));
        json_array_append_new(devs, j);
    }
    json_object_set_new(o, "devices", devs);
    json_t *tg = json_object();
    json_object_set_new(tg, "bytes_per_token", json_integer((json_int_t)r->read_per_token));
    json_object_set_new(tg, "tok_s_low",
                        r->tg_lo > 0 && !r->tg_upper_only ? json_real(r->tg_lo) : json_null());
    json_object_set_new(tg, "tok_s_high", r->tg_hi > 0 ? json_real(r->tg_hi) : json_null());
    json_object_set_new(tg, "upper_bound_only", json_boolean(r->tg_upper_only));
    json_object_set_new(o, "generation", tg);
    json_t *alt = json_object();
    json_object_set_new(alt, "context", r->alt_ctx ? json_integer(r->alt_ctx) : json_null());
    json_object_set_new(alt, "kv_q8_0", json_boolean(r->alt_q8_fits));
    json_object_set_new(alt, "context_ram",
                        r->alt_ctx_ram ? json_integer(r->alt_ctx_ram) : json_null());
    json_object_set_new(o, "alternatives", alt);
    return o;
}

static void print_table(const struct drv_fit_model *m, const struct drv_fit_result *r)
{
    char a[32], b[32], c[32], d_[32], e[32], f[32];
    const struct drv_fit_params *p = &r->params;
    printf("%-12s %s (%s, %s, %u blocks)\n", "model", m->name, m->arch, m->quant, m->n_layer);
    printf("%-12s %s: blocks %s, output %s%s, token_embd %s (host)\n", "weights",
           drv_fmt_bytes(m->total_bytes, a, sizeof(a)),
           drv_fmt_bytes(m->total_bytes - m->embd_bytes - m->output_bytes, b, sizeof(b)),
           drv_fmt_bytes(m->output_bytes + m->tied_bytes, c, sizeof(c)),
           m->tied ? " (tied: a copy of token_embd)" : "",
           drv_fmt_bytes(m->embd_bytes, d_, sizeof(d_)));
    printf("%-12s %s per token (%s), %u ctx x %u seq = %s\n", "kv cache",
           drv_fmt_bytes(r->kv_per_token, a, sizeof(a)), drv_fit_kv_name(p->kv), p->n_ctx,
           p->n_parallel, drv_fmt_bytes(r->kv_bytes, b, sizeof(b)));
    if (m->n_swa) {
        uint32_t n_swa_layers = 0;
        for (uint32_t il = 0; il < m->n_layer; il++)
            n_swa_layers += drv_fit_layer_is_swa(m, il);
        printf("%-12s sliding window %u: %u of %u layers keep only the window (+ one "
               "ubatch) per sequence\n",
               "", m->n_swa, n_swa_layers, m->n_layer);
    }
    printf("%-10s %7s %5s %10s %10s %10s %10s %10s %10s\n", "device", "layers", "out", "weights",
           "kv", "compute", "overhead", "total", "free");
    for (int i = 0; i < r->n_dev; i++) {
        const struct drv_fit_device *d = &r->dev[i];
        uint64_t total = d->weights + d->kv + d->compute + d->overhead;
        printf("%-10s %7d %5s %10s %10s %10s %10s %10s %10s%s\n", d->name, d->n_layers,
               d->has_output ? "yes" : "-", drv_fmt_bytes(d->weights, a, sizeof(a)),
               drv_fmt_bytes(d->kv, b, sizeof(b)), drv_fmt_bytes(d->compute, c, sizeof(c)),
               drv_fmt_bytes(d->overhead, d_, sizeof(d_)), drv_fmt_bytes(total, e, sizeof(e)),
               drv_fmt_bytes(d->free_bytes, f, sizeof(f)),
               total > d->free_bytes ? "  TOO BIG" : "");
    }
    unsigned all = m->n_layer + 1;
    switch (r->verdict) {
    case DRV_FIT_GPU:
        printf("%-12s yes: all %u/%u layers on GPU\n", "fits", r->n_gpu_layers, all);
        break;
    case DRV_FIT_PARTIAL:
        printf("%-12s partly: %d/%u layers on GPU (n_gpu_layers = %d), the rest on the CPU\n",
               "fits", r->n_gpu_layers, all, r->n_gpu_layers);
        break;
    case DRV_FIT_CPU:
        printf("%-12s yes, on the CPU (%s)\n", "fits",
               r->n_dev > 1 ? "no layer fits the GPUs" : "no GPU");
        break;
    default:
        printf("%-12s no\n", "fits");
        break;
    }
    if (r->verdict != DRV_FIT_GPU && r->n_dev > 1) {
        if (r->alt_ctx)
            printf("%-12s all on GPU with --ctx %u\n", "would fit", r->alt_ctx);
        if (r->alt_q8_fits)
            printf("%-12s all on GPU with --kv q8_0\n", "would fit");
    }
    if (r->verdict == DRV_FIT_NONE) {
        if (r->alt_ctx_ram)
            printf("%-12s with --ctx %u\n", "would fit", r->alt_ctx_ram);
        else
            printf("%-12s not on this machine at any context of 256 or more\n", "would fit");
    }
    printf("%-12s %s read per token (active weights + KV at %u ctx)\n", "generation",
           drv_fmt_bytes(r->read_per_token, a, sizeof(a)), p->n_ctx);
    const struct drv_fit_device *h = &r->dev[0];
    if (r->tg_lo > 0 && !r->tg_upper_only) {
        bool on_cpu = h->n_layers > 0 || h->has_output, on_gpu = r->n_gpu_layers > 0;
        char eff_cpu[32], eff_gpu[32];
        snprintf(eff_cpu, sizeof(eff_cpu), "%.0f-%.0f %%", DRV_FIT_EFF_CPU_LO * 100,
                 DRV_FIT_EFF_CPU_HI * 100);
        snprintf(eff_gpu, sizeof(eff_gpu), "%.0f-%.0f %%", DRV_FIT_EFF_GPU_LO * 100,
                 DRV_FIT_EFF_GPU_HI * 100);
        printf("%-12s ~%.1f-%.1f tok/s (roofline, ", "", r->tg_lo, r->tg_hi);
        if (on_cpu && on_gpu)
            printf("CPU %s, GPUs %s of ", eff_cpu, eff_gpu);
        else
            printf("%s of ", on_cpu ? eff_cpu : eff_gpu);
        const char *sep = "";
        for (int i = 0; i < r->n_dev; i++) {
            const struct drv_fit_device *d = &r->dev[i];
            if (d->bw_gbps <= 0 || (i > 0 && d->n_layers == 0 && !d->has_output) ||
                (i == 0 && !on_cpu))
                continue;
            printf("%s%s%s%.1f GB/s %s", sep, on_gpu ? d->name : "", on_gpu ? " " : "", d->bw_gbps,
                   d->bw_measured ? "measured" : "given");
            sep = ", ";
        }
        printf(")\n");
    } else if (r->tg_upper_only) {
        printf("%-12s at most ~%.1f tok/s (CPU part alone at %.1f GB/s measured; GPU "
               "bandwidth unknown)\n",
               "", r->tg_hi, h->bw_gbps);
    } else {
        printf("%-12s unknown (bandwidth %s)\n", "",
               h->bw_gbps > 0 ? "of the GPU unknown" : "not measured");
    }
}

int drv_cmd_fit(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("fit");
    static const struct option opts[] = {
        {"ctx", required_argument, NULL, 'c'},      {"kv", required_argument, NULL, 'k'},
        {"parallel", required_argument, NULL, 'p'}, {"gpu-layers", required_argument, NULL, 'g'},
        {"hw", required_argument, NULL, 'w'},       {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    struct drv_fit_params p = drv_fit_default_params();
    const char *hw_file = NULL;
    bool json = false;
    long v;
    int c;
    opterr = 0;
    optind = 1;
    /* options may follow MODEL (drover fit qwen3:8b --ctx 8192): let getopt permute */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!drv_cmd_parse_long(optarg, 1, 1 << 24, &v))
                return drv_cmd_bad_usage(self, "--ctx must be a number of tokens, 1..16777216");
            p.n_ctx = (uint32_t)v;
            break;
        case 'p':
            if (!drv_cmd_parse_long(optarg, 1, 256, &v))
                return drv_cmd_bad_usage(self, "--parallel must be 1..256");
            p.n_parallel = (uint32_t)v;
            break;
        case 'g':
            if (!drv_cmd_parse_long(optarg, -1, DRV_FIT_MAX_LAYERS + 1, &v))
                return drv_cmd_bad_usage(self, "--gpu-layers must be -1..%d",
                                         DRV_FIT_MAX_LAYERS + 1);
            p.n_gpu_layers = (int)v;
            break;
        case 'k':
            if (!drv_fit_kv_parse(optarg, &p.kv))
                return drv_cmd_bad_usage(self, "--kv must be f16, q8_0 or q4_0");
            break;
        case 'w':
            hw_file = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_option(self, opts, "h", argv);
        }
    }
    if (optind != argc - 1)
        return drv_cmd_bad_usage(self, optind == argc ? "missing MODEL" : "too many arguments");
    const char *name = argv[optind];

    int rc = 1;
    struct drv_err err;
    drv_err_init(&err);
    struct drv_fit_model *m = calloc(1, sizeof(*m));
    struct drv_hw *hw = calloc(1, sizeof(*hw));
    struct drv_fit_result *r = calloc(1, sizeof(*r));
    if (!m || !hw || !r) {
        fprintf(stderr, "drover fit: out of memory\n");
        goto out;
    }
    if (drv_fit_model_load(name, m, &err) != 0) {
        fprintf(stderr, "drover fit: %s: %s\n", name, err.msg);
        goto out;
    }
    if (hw_file) {
        if (drv_probe_profile_load(hw_file, hw, &err) != 0) {
            fprintf(stderr, "drover fit: %s: %s\n", hw_file, err.msg);
            goto out;
        }
    } else {
        struct drv_probe_params pp = drv_probe_default_params();
        pp.bandwidth_seconds = 0.3; /* a short measurement: enough for a roofline */
        pp.gpu_bandwidth_seconds = 0.3;
        if (drv_probe_run(&pp, hw, &err) != 0) {
            fprintf(stderr, "drover fit: %s\n", err.msg);
            goto out;
        }
    }
    drv_fit_plan(m, hw, &p, r);
    if (json) {
        json_t *o = to_json(m, r);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (s == NULL) {
            fprintf(stderr, "drover fit: out of memory\n");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_table(m, r);
    }
    rc = 0;
out:
    free(m);
    free(hw);
    free(r);
    return rc;
}
