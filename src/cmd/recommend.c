#include "cmd/cmd.h"
#include "engine/engine.h"
#include "model/model.h"
#include "probe/probe.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --measure: short runs, so that a 2-core machine answers in minutes */
#define MEASURE_PROMPT     64
#define MEASURE_GEN        32
#define MEASURE_REPS       2
#define MEASURE_MAX_MODELS 4             /* measurements per run */
#define MEASURE_MAX_PARAMS 2000000000ull /* default --measure-max */

/* "2b", "1.5B", "500m", "2000000000" -> parameters */
static bool parse_params(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0))
        return false;
    if (*end == 'b' || *end == 'B')
        v *= 1e9, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1e6, end++;
    if (*end || v > 1e13)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* ---- --measure ---- */

/* $XDG_CACHE_HOME/drover/recommend (default ~/.cache/...), created. */
static int cache_dir(char *out, size_t size, struct drv_err *err)
{
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[512];
    if (x && x[0] == '/')
        snprintf(base, sizeof(base), "%s", x);
    else if (home && home[0])
        snprintf(base, sizeof(base), "%s/.cache", home);
    else
        return drv_err_set(err, DRV_ENOENT, "neither XDG_CACHE_HOME nor HOME is set");
    const char *parts[] = {"", "/drover", "/drover/recommend"};
    for (int i = 0; i < 3; i++) {
        snprintf(out, size, "%s%s", base, parts[i]);
        if (mkdir(out, 0755) != 0 && errno != EEXIST)
            return drv_err_set(err, DRV_EIO, "cannot create %s: %s", out, strerror(errno));
    }
    return 0;
}

/* The candidate's synthesized GGUF in the cache, written once (through a
 * temporary name, so an interrupted write never looks finished). */
static int synth_cached(const struct drv_rec_candidate *c, char *path, size_t size,
                        struct drv_err *err)
{
    char dir[600];
    int rc = cache_dir(dir, sizeof(dir), err);
    if (rc)
        return rc;
    char stem[96];
    drv_strlcpy(stem, c->model, sizeof(stem));
    for (char *s = stem; *s; s++)
        if (*s == ':')
            *s = '-';
    snprintf(path, size, "%s/%s-%s.gguf", dir, stem, drv_synth_quant_name(c->quant));
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    struct drv_synth_params sp = drv_synth_default_params();
    sp.shape = *drv_catalog_find(c->model);
    sp.quant = c->quant;
    char tmp[800], b[32];
    snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
    fprintf(stderr, "drover recommend: writing %s (%s, once) ...\n", path,
            drv_fmt_bytes(c->weights_bytes, b, sizeof(b)));
    rc = drv_synth_write(&sp, tmp, err);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = drv_err_set(err, DRV_EIO, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
    }
    return rc;
}

static int measure_one(struct drv_rec_candidate *c, struct drv_err *err)
{
    char path[768];
    int rc = synth_cached(c, path, sizeof(path), err);
    if (rc)
        return rc;
    fprintf(stderr, "drover recommend: measuring %s %s (pp%d, tg%d, %d reps) ...\n", c->model,
            drv_synth_quant_name(c->quant), MEASURE_PROMPT, MEASURE_GEN, MEASURE_REPS);
    struct drv_local_bench_params lp = drv_local_bench_default_params();
    lp.n_prompt = MEASURE_PROMPT;
    lp.n_gen = MEASURE_GEN;
    lp.reps = MEASURE_REPS;
    struct drv_local_bench_result *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    rc = drv_engine_bench_local(path, &lp, r, err);
    if (rc == 0) {
        double tg = 0, pp = 0;
        for (int i = 0; i < r->reps; i++) {
            tg += r->tg_tps[i];
            pp += r->pp_tps[i];
        }
        c->tg_measured = tg / r->reps;
        c->pp_measured = pp / r->reps;
    }
    free(r);
    return rc;
}

/* Measures picks until every pick within the size limit is measured: a
 * measurement can move a role to another candidate, which is measured next.
 * Returns how many it tried. */
static int measure_picks(struct drv_rec_result *r, uint64_t max_params)
{
    int n;
    for (n = 0; n < MEASURE_MAX_MODELS; n++) {
        struct drv_rec_candidate *next = NULL;
        for (int k = 0; k < DRV_REC_N_ROLES && next == NULL; k++) {
            struct drv_rec_candidate *c = r->pick[k] >= 0 ? &r->cand[r->pick[k]] : NULL;
            if (c && c->tg_measured <= 0 && !c->measure_failed && c->params <= max_params)
                next = c;
        }
        if (next == NULL)
            break;
        struct drv_err err;
        drv_err_init(&err);
        if (measure_one(next, &err) != 0) {
            fprintf(stderr, "drover recommend: %s %s not measured: %s\n", next->model,
                    drv_synth_quant_name(next->quant), err.msg);
            next->measure_failed = true;
        }
        drv_recommend_pick(r);
    }
    return n;
}

/* ---- output ---- */

static void fmt_tps(const struct drv_rec_candidate *c, char *out, size_t size)
{
    if (c->tg_measured > 0)
        snprintf(out, size, "%.1f tok/s MEASURED (predicted ~%.1f-%.1f)", c->tg_measured, c->tg_lo,
                 c->tg_hi);
    else if (c->tg_upper_only && c->tg_hi > 0)
        snprintf(out, size, "at most ~%.1f tok/s predicted", c->tg_hi);
    else if (c->tg_lo > 0)
        snprintf(out, size, "~%.1f-%.1f tok/s predicted", c->tg_lo, c->tg_hi);
    else
        snprintf(out, size, "tok/s unknown");
}

static void print_table(const struct drv_hw *hw, const struct drv_rec_result *r, bool measure,
                        uint64_t max_params, int n_measured)
{
    char a[32], b[256];
    drv_probe_summary(hw, b, sizeof(b));
    printf("%-15s %s\n", "machine", b);
    printf("%-15s %s%s; planned with %u tokens of context, %s KV, one sequence\n", "fast memory",
           r->fast_name, r->gpu ? "" : " (no GPU)", r->params.n_ctx, drv_fit_kv_name(r->params.kv));
    printf("%-15s roofline at %.0f-%.0f %% of the CPU's ", "speed", DRV_FIT_EFF_CPU_LO * 100,
           DRV_FIT_EFF_CPU_HI * 100);
    if (r->host_bw_gbps > 0)
        printf("%.1f GB/s", r->host_bw_gbps);
    else
        printf("bandwidth (not measured)");
    for (int i = 0; i < hw->n_devices; i++) {
        const struct drv_hw_device *d = &hw->devices[i];
        if (strcmp(d->type, "gpu") == 0 && d->bandwidth_gbps > 0)
            printf(", %.0f-%.0f %% of %s's %.0f GB/s%s", DRV_FIT_EFF_GPU_LO * 100,
                   DRV_FIT_EFF_GPU_HI * 100, d->name, d->bandwidth_gbps,
                   d->bandwidth_measured ? " measured" : "");
        else if (strcmp(d->type, "gpu") == 0)
            printf(", %s's bandwidth unknown", d->name);
        else if (strcmp(d->type, "igpu") == 0)
            printf(", %.0f-%.0f %% of it for %s (shares RAM)", DRV_FIT_EFF_GPU_LO * 100,
                   DRV_FIT_EFF_GPU_HI * 100, d->name);
    }
    printf("; roles compare the middle of a range\n");
    printf("%-15s useful >= %.1fB parameters; best quality >= %.0f tok/s; daily driver %s, "
           ">= %.0f tok/s, %u ctx\n\n",
           "thresholds", DRV_REC_USEFUL_PARAMS / 1e9, DRV_REC_QUALITY_TPS,
           drv_synth_quant_name(DRV_REC_DAILY_QUANT), DRV_REC_DAILY_TPS, DRV_REC_DAILY_CTX);
    for (int k = 0; k < DRV_REC_N_ROLES; k++) {
        const char *role = drv_recommend_role_name((enum drv_rec_role)k, false);
        if (r->pick[k] < 0) {
            printf("%-15s none: %s\n\n", role, r->why[k]);
            continue;
        }
        const struct drv_rec_candidate *c = &r->cand[r->pick[k]];
        printf("%-15s %s %s (%s parameters)\n", role, c->model, drv_synth_quant_name(c->quant),
               drv_fmt_count(c->params, a, sizeof(a)));
        char w[32], t[32], sp[96], place[64];
        if (c->verdict == DRV_FIT_GPU)
            snprintf(place, sizeof(place), "all %d layers on the GPU", c->n_units);
        else
            snprintf(place, sizeof(place), "in RAM");
        fmt_tps(c, sp, sizeof(sp));
        printf("%-15s %s weights; %s of the %s with %u ctx, %s; ctx up to %u; %s\n", "",
               drv_fmt_bytes(c->weights_bytes, w, sizeof(w)),
               drv_fmt_bytes(c->fast_used, t, sizeof(t)), r->fast_name, c->n_ctx, place, c->max_ctx,
               sp);
        printf("%-15s why: %s\n", "", r->why[k]);
        if (measure && c->tg_measured <= 0) {
            if (c->params > max_params)
                printf("%-15s not measured: over --measure-max %s parameters\n", "",
                       drv_fmt_count(max_params, a, sizeof(a)));
            else if (c->measure_failed)
                printf("%-15s not measured: the measurement failed (see above)\n", "");
            else if (n_measured >= MEASURE_MAX_MODELS)
                printf("%-15s not measured: a run measures at most %d models\n", "",
                       MEASURE_MAX_MODELS);
        }
        printf("\n");
    }
    printf("avoid\n");
    for (int i = 0; i < r->n_avoid; i++) {
        const struct drv_rec_candidate *c = &r->cand[r->avoid[i].cand];
        printf("  %s %s: %s\n", c->model, drv_synth_quant_name(c->quant), r->avoid[i].reason);
    }
    if (r->n_avoid == 0)
        printf("  nothing in the catalog is too big or too slow here\n");
    if (r->n_notes)
        printf("notes\n");
    for (int i = 0; i < r->n_notes; i++)
        printf("  %s\n", r->notes[i]);
}

static json_t *num_or_null(double v)
{
    return v > 0 ? json_real(v) : json_null();
}

static json_t *cand_json(const struct drv_rec_candidate *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(c->model));
    json_object_set_new(o, "quantization", json_string(drv_synth_quant_name(c->quant)));
    json_object_set_new(o, "params", json_integer((json_int_t)c->params));
    json_object_set_new(o, "weights_bytes", json_integer((json_int_t)c->weights_bytes));
    json_object_set_new(o, "total_bytes", json_integer((json_int_t)c->total_bytes));
    json_object_set_new(o, "fast_memory_bytes", json_integer((json_int_t)c->fast_used));
    json_object_set_new(o, "context", json_integer(c->n_ctx));
    json_object_set_new(o, "max_context", c->max_ctx ? json_integer(c->max_ctx) : json_null());
    json_object_set_new(o, "fit", json_string(drv_fit_verdict_name(c->verdict)));
    json_object_set_new(o, "fits", json_boolean(c->fits));
    json_object_set_new(o, "gpu_layers", json_integer(c->n_gpu_layers));
    json_object_set_new(o, "gpu_layers_all", json_integer(c->n_units));
    json_object_set_new(o, "bytes_per_token", json_integer((json_int_t)c->read_per_token));
    json_t *tg = json_object();
    json_object_set_new(tg, "low", c->tg_upper_only ? json_null() : num_or_null(c->tg_lo));
    json_object_set_new(tg, "high", num_or_null(c->tg_hi));
    json_object_set_new(tg, "upper_bound_only", json_boolean(c->tg_upper_only));
    json_object_set_new(tg, "measured", num_or_null(c->tg_measured));
    json_object_set_new(tg, "pp_measured", num_or_null(c->pp_measured));
    double s = drv_recommend_tps(c);
    json_object_set_new(tg, "judged", num_or_null(s));
    json_object_set_new(tg, "source",
                        json_string(c->tg_measured > 0 ? "measured"
                                    : s > 0            ? "predicted"
                                                       : "unknown"));
    json_object_set_new(o, "tok_s", tg);
    return o;
}

static json_t *to_json(const struct drv_hw *hw, const struct drv_rec_result *r)
{
    json_t *o = json_object();
    char b[256];
    drv_probe_summary(hw, b, sizeof(b));
    json_object_set_new(o, "machine", json_string(b));
    json_object_set_new(o, "fast_memory",
                        json_pack("{s:s, s:I, s:s}", "kind", r->gpu ? "gpu" : "ram", "bytes",
                                  (json_int_t)r->fast_bytes, "name", r->fast_name));
    json_object_set_new(o, "context", json_integer(r->params.n_ctx));
    json_object_set_new(o, "kv_type", json_string(drv_fit_kv_name(r->params.kv)));
    json_object_set_new(o, "thresholds",
                        json_pack("{s:I, s:f, s:f, s:s, s:i}", "useful_params",
                                  (json_int_t)DRV_REC_USEFUL_PARAMS, "best_quality_tok_s",
                                  DRV_REC_QUALITY_TPS, "daily_driver_tok_s", DRV_REC_DAILY_TPS,
                                  "daily_driver_quantization",
                                  drv_synth_quant_name(DRV_REC_DAILY_QUANT), "daily_driver_context",
                                  DRV_REC_DAILY_CTX));
    json_t *picks = json_object();
    for (int k = 0; k < DRV_REC_N_ROLES; k++) {
        json_t *p = r->pick[k] >= 0 ? cand_json(&r->cand[r->pick[k]]) : json_object();
        json_object_set_new(p, "why", json_string(r->why[k]));
        json_object_set_new(picks, drv_recommend_role_name((enum drv_rec_role)k, true), p);
    }
    json_object_set_new(o, "picks", picks);
    json_t *avoid = json_array();
    for (int i = 0; i < r->n_avoid; i++) {
        const struct drv_rec_candidate *c = &r->cand[r->avoid[i].cand];
        json_array_append_new(avoid, json_pack("{s:s, s:s, s:s}", "model", c->model, "quantization",
                                               drv_synth_quant_name(c->quant), "reason",
                                               r->avoid[i].reason));
    }
    json_object_set_new(o, "avoid", avoid);
    json_t *notes = json_array();
    for (int i = 0; i < r->n_notes; i++)
        json_array_append_new(notes, json_string(r->notes[i]));
    json_object_set_new(o, "notes", notes);
    json_t *all = json_array();
    for (int i = 0; i < r->n_cand; i++)
        json_array_append_new(all, cand_json(&r->cand[i]));
    json_object_set_new(o, "candidates", all);
    return o;
}

int drv_cmd_recommend(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("recommend");
    static const struct option opts[] = {{"hw", required_argument, NULL, 'w'},
                                         {"ctx", required_argument, NULL, 'c'},
                                         {"kv", required_argument, NULL, 'k'},
                                         {"measure", no_argument, NULL, 'm'},
                                         {"measure-max", required_argument, NULL, 'M'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct drv_rec_params p = drv_recommend_default_params();
    const char *hw_file = NULL;
    bool json = false, measure = false;
    uint64_t max_params = MEASURE_MAX_PARAMS;
    long v;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            hw_file = optarg;
            break;
        case 'c':
            if (!drv_cmd_parse_long(optarg, 1, 1 << 24, &v))
                return drv_cmd_bad_usage(self, "--ctx must be a number of tokens, 1..16777216");
            p.n_ctx = (uint32_t)v;
            break;
        case 'k':
            if (!drv_fit_kv_parse(optarg, &p.kv))
                return drv_cmd_bad_usage(self, "--kv must be f16, q8_0 or q4_0");
            break;
        case 'm':
            measure = true;
            break;
        case 'M':
            if (!parse_params(optarg, &max_params))
                return drv_cmd_bad_usage(self, "--measure-max must be a size like 2b or 500m");
            break;
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
    if (optind != argc)
        return drv_cmd_bad_usage(self, "unexpected argument '%s'", argv[optind]);
    if (measure && hw_file)
        return drv_cmd_bad_usage(self, "--measure runs models here: it cannot go with --hw");

    int rc = 1;
    struct drv_err err;
    drv_err_init(&err);
    struct drv_hw *hw = calloc(1, sizeof(*hw));
    struct drv_rec_result *r = calloc(1, sizeof(*r));
    if (!hw || !r) {
        fprintf(stderr, "drover recommend: out of memory\n");
        goto out;
    }
    if (hw_file) {
        if (drv_probe_profile_load(hw_file, hw, &err) != 0) {
            fprintf(stderr, "drover recommend: %s: %s\n", hw_file, err.msg);
            goto out;
        }
    } else {
        struct drv_probe_params pp = drv_probe_default_params();
        pp.bandwidth_seconds = 0.5; /* the roofline's one input: worth half a second */
        pp.gpu_bandwidth_seconds = 0.3;
        if (drv_probe_run(&pp, hw, &err) != 0) {
            fprintf(stderr, "drover recommend: %s\n", err.msg);
            goto out;
        }
    }
    if (drv_recommend_run(hw, &p, r, &err) != 0) {
        fprintf(stderr, "drover recommend: %s\n", err.msg);
        goto out;
    }
    int n_measured = measure ? measure_picks(r, max_params) : 0;
    if (json) {
        json_t *o = to_json(hw, r);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (s == NULL) {
            fprintf(stderr, "drover recommend: out of memory\n");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_table(hw, r, measure, max_params, n_measured);
    }
    rc = 0;
out:
    free(hw);
    free(r);
    return rc;
}
