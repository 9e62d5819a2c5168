#include "cmd/cmd.h"
#include "model/model.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool parse_u64(const char *s, uint64_t hi, uint64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > hi)
        return false;
    *out = v;
    return true;
}

static void print_list(void)
{
    struct drv_synth_params p = drv_synth_default_params();
    printf("%-30s %-6s %6s %6s %5s %4s %4s %6s %7s %8s %4s %8s %10s\n", "NAME", "ARCH", "LAYERS",
           "EMBD", "HEADS", "KV", "HDIM", "FF", "VOCAB", "CTX", "TIED", "PARAMS", "Q4_K_M");
    for (int i = 0; i < drv_catalog_count(); i++) {
        const struct drv_model_shape *s = drv_catalog_at(i);
        char params[32], size[32];
        p.shape = *s;
        drv_fmt_count(drv_shape_params(s), params, sizeof(params));
        drv_fmt_bytes(drv_synth_tensor_bytes(&p), size, sizeof(size));
        printf("%-30s %-6s %6u %6u %5u %4u %4u %6u %7u %8u %4s %8s %10s\n", s->name, s->arch,
               s->n_layer, s->n_embd, s->n_head, s->n_head_kv, s->head_dim, s->n_ff, s->n_vocab,
               s->n_ctx_train, s->tied ? "yes" : "no", params, size);
    }
}

struct progress {
    uint64_t t0;
    int last_pct;
};

static void show_progress(void *ud, uint64_t done, uint64_t total)
{
    struct progress *pr = ud;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct == pr->last_pct)
        return;
    pr->last_pct = pct;
    char a[32], b[32];
    double s = (double)(drv_now_ns() - pr->t0) / 1e9;
    fprintf(stderr, "\rdrover synth: %3d%%  %s of %s  %.1f s ", pct,
            drv_fmt_bytes(done, a, sizeof(a)), drv_fmt_bytes(total, b, sizeof(b)), s);
    fflush(stderr);
}

int drv_cmd_synth(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("synth");
    static const struct option opts[] = {
        {"quant", required_argument, NULL, 'q'},   {"output", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'},    {"ctx", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'}, {"list", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    struct drv_synth_params p = drv_synth_default_params();
    const char *out = NULL;
    bool list = false;
    uint64_t v;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "q:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            if (!drv_synth_quant_parse(optarg, &p.quant))
                return drv_cmd_bad_usage(
                    self, "unknown quantization '%s' (want q4_0, q4_k_m, q5_k_m, q8_0 or f16)",
                    optarg);
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            if (!parse_u64(optarg, UINT64_MAX, &p.seed))
                return drv_cmd_bad_usage(self, "--seed wants a whole number, not '%s'", optarg);
            break;
        case 'c':
            if (!parse_u64(optarg, UINT32_MAX, &v) || v == 0)
                return drv_cmd_bad_usage(self, "--ctx wants a positive number, not '%s'", optarg);
            p.n_ctx = (uint32_t)v;
            break;
        case 't':
            if (!parse_u64(optarg, 64, &v) || v == 0)
                return drv_cmd_bad_usage(self, "--threads wants 1..64, not '%s'", optarg);
            p.n_threads = (int)v;
            break;
        case 'l':
            list = true;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_option(self, opts, "q:o:h", argv);
        }
    }
    if (list) {
        if (optind != argc)
            return drv_cmd_bad_usage(self, "--list takes no MODEL");
        print_list();
        return 0;
    }
    if (optind != argc - 1)
        return drv_cmd_bad_usage(self,
                                 optind == argc ? "missing NAME or SHAPE" : "too many arguments");
    if (out == NULL)
        return drv_cmd_bad_usage(self, "missing -o FILE");

    struct drv_err err;
    drv_err_init(&err);
    if (drv_shape_resolve(argv[optind], &p.shape, &err) != 0) {
        fprintf(stderr, "drover synth: %s\n", err.msg);
        return err.code == DRV_EINVAL ? 2 : 1;
    }
    struct progress pr = {.t0 = drv_now_ns(), .last_pct = -1};
    bool tty = isatty(STDERR_FILENO);
    if (tty) {
        p.progress = show_progress;
        p.progress_ud = &pr;
    }
    int rc = drv_synth_write(&p, out, &err);
    if (tty)
        fprintf(stderr, "\r\033[K");
    if (rc != 0) {
        fprintf(stderr, "drover synth: %s\n", err.msg);
        return 1;
    }
    char params[32], size[32];
    double secs = (double)(drv_now_ns() - pr.t0) / 1e9;
    printf("wrote %s: %s %s, %s parameters, %s tensor data, seed %llu, in %.1f s\n", out,
           p.shape.name[0] ? p.shape.name : p.shape.arch, drv_synth_quant_name(p.quant),
           drv_fmt_count(drv_shape_params(&p.shape), params, sizeof(params)),
           drv_fmt_bytes(drv_synth_tensor_bytes(&p), size, sizeof(size)),
           (unsigned long long)p.seed, secs);
    return 0;
}
