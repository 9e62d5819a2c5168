/* recommend — which catalog models to run on a machine, and which to avoid,
 * from drv_fit_plan's numbers. The roles and thresholds are in model.h; every
 * pick and every warning carries the numbers that justify it. */
#include "model/model.h"
#include "probe/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const enum drv_synth_quant quants[] = {DRV_SYNTH_Q4_0, DRV_SYNTH_Q4_K_M, DRV_SYNTH_Q5_K_M,
                                              DRV_SYNTH_Q8_0, DRV_SYNTH_F16};
#define N_QUANTS ((int)(sizeof(quants) / sizeof(quants[0])))

/* Quality of a quantization: q8_0 is within noise of f16, so they rank the same
 * (and the smaller file wins the tie). */
static int quant_rank(enum drv_synth_quant q)
{
    switch (q) {
    case DRV_SYNTH_Q4_0:
        return 1;
    case DRV_SYNTH_Q4_K_M:
        return 2;
    case DRV_SYNTH_Q5_K_M:
        return 3;
    default:
        return 4;
    }
}

const char *drv_recommend_role_name(enum drv_rec_role role, bool json)
{
    switch (role) {
    case DRV_REC_FASTEST:
        return json ? "fastest_useful" : "fastest useful";
    case DRV_REC_QUALITY:
        return json ? "best_quality" : "best quality";
    case DRV_REC_DAILY:
        return json ? "daily_driver" : "daily driver";
    default:
        return "?";
    }
}

struct drv_rec_params drv_recommend_default_params(void)
{
    struct drv_rec_params p = {.n_ctx = DRV_REC_MIN_CTX, .kv = DRV_FIT_KV_F16};
    return p;
}

double drv_recommend_tps(const struct drv_rec_candidate *c)
{
    if (c->tg_measured > 0)
        return c->tg_measured;
    if (c->tg_lo > 0 && c->tg_hi > 0 && !c->tg_upper_only)
        return (c->tg_lo + c->tg_hi) / 2;
    return -1;
}

static void add_note(struct drv_rec_result *r, const char *text)
{
    if (r->n_notes < DRV_REC_MAX_NOTES)
        drv_strlcpy(r->notes[r->n_notes++], text, sizeof(r->notes[0]));
}

/* ---- planning ---- */

static bool fits_fast(const struct drv_fit_result *f)
{
    return f->n_dev > 1 ? f->verdict == DRV_FIT_GPU : f->verdict == DRV_FIT_CPU;
}

/* Plans one candidate at p's context, then finds the largest context it still
 * fits with: doublings up to the model's trained context, and that context. */
static void plan_one(const struct drv_fit_model *m, const struct drv_hw *hw,
                     const struct drv_rec_params *p, struct drv_fit_result *f,
                     struct drv_rec_candidate *c)
{
    struct drv_fit_params fp = drv_fit_default_params();
    fp.kv = p->kv;
    fp.n_ctx = p->n_ctx < m->n_ctx_train || m->n_ctx_train == 0 ? p->n_ctx : m->n_ctx_train;
    drv_fit_plan(m, hw, &fp, f);
    c->n_ctx = fp.n_ctx;
    c->n_ctx_train = m->n_ctx_train;
    c->verdict = f->verdict;
    c->fits = fits_fast(f);
    c->total_bytes = f->total_bytes;
    c->fast_used = 0;
    for (int i = f->n_dev > 1 ? 1 : 0; i < f->n_dev; i++)
        c->fast_used += f->dev[i].weights + f->dev[i].kv + f->dev[i].compute + f->dev[i].overhead;
    c->read_per_token = f->read_per_token;
    c->n_gpu_layers = f->n_gpu_layers;
    c->n_units = (int)m->n_layer + 1;
    c->tg_lo = f->tg_lo;
    c->tg_hi = f->tg_hi;
    c->tg_upper_only = f->tg_upper_only;
    c->max_ctx = c->fits ? fp.n_ctx : 0;
    uint32_t limit = m->n_ctx_train ? m->n_ctx_train : fp.n_ctx;
    for (uint32_t ctx = fp.n_ctx; c->fits && ctx < limit;) {
        ctx = ctx > limit / 2 ? limit : ctx * 2;
        fp.n_ctx = ctx;
        drv_fit_plan(m, hw, &fp, f);
        if (!fits_fast(f))
            break;
        c->max_ctx = ctx;
    }
}

static void describe_fast_memory(const struct drv_hw *hw, struct drv_rec_result *r)
{
    uint64_t vram = 0, shared = 0;
    for (int i = 0; i < hw->n_devices; i++) {
        if (strcmp(hw->devices[i].type, "gpu") == 0)
            vram += hw->devices[i].memory_free_bytes;
        else if (strcmp(hw->devices[i].type, "igpu") == 0)
            shared += hw->devices[i].memory_free_bytes;
    }
    char b[32];
    r->gpu = vram + shared > 0;
    if (r->gpu) {
        r->fast_bytes = vram + shared;
        snprintf(r->fast_name, sizeof(r->fast_name), "%s %s",
                 drv_fmt_bytes(r->fast_bytes, b, sizeof(b)),
                 shared == 0 ? "VRAM"
                 : vram == 0 ? "GPU memory (shared RAM)"
                             : "GPU memory");
    } else {
        r->fast_bytes = hw->memory.available_bytes;
        snprintf(r->fast_name, sizeof(r->fast_name), "%s RAM",
                 drv_fmt_bytes(r->fast_bytes, b, sizeof(b)));
    }
    r->host_bw_gbps = hw->memory.bandwidth_gbps;
}

int drv_recommend_run(const struct drv_hw *hw, const struct drv_rec_params *p,
                      struct drv_rec_result *out, struct drv_err *err)
{
    if (p->n_ctx == 0)
        return drv_err_set(err, DRV_EINVAL, "the context must be at least 1 token");
    memset(out, 0, sizeof(*out));
    out->params = *p;
    describe_fast_memory(hw, out);
    struct drv_fit_model *m = malloc(sizeof(*m));
    struct drv_fit_result *f = malloc(sizeof(*f));
    int rc = 0;
    if (m == NULL || f == NULL) {
        rc = drv_err_set(err, DRV_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < drv_catalog_count(); i++) {
        const struct drv_model_shape *s = drv_catalog_at(i);
        for (int q = 0; q < N_QUANTS && out->n_cand < DRV_REC_MAX_CANDIDATES; q++) {
            char name[96];
            snprintf(name, sizeof(name), "%s-%s", s->name, drv_synth_quant_name(quants[q]));
            rc = drv_fit_model_load(name, m, err);
            if (rc)
                goto out; /* the catalog is ours: a shape it cannot plan is a bug */
            struct drv_rec_candidate *c = &out->cand[out->n_cand++];
            drv_strlcpy(c->model, s->name, sizeof(c->model));
            c->quant = quants[q];
            c->params = drv_shape_params(s);
            c->weights_bytes = m->total_bytes;
            plan_one(m, hw, p, f, c);
        }
    }
    bool unknown = false;
    for (int i = 0; i < out->n_cand; i++)
        unknown |= out->cand[i].fits && out->gpu && drv_recommend_tps(&out->cand[i]) < 0;
    if (unknown)
        add_note(out, "the GPU's memory bandwidth is not in the profile: models that fit on it "
                      "are taken to be fast enough and ordered by bytes read per token; add "
                      "\"bandwidth_gbps\" to its device for tok/s");
    if (!out->gpu && hw->memory.bandwidth_gbps <= 0)
        add_note(out, "the memory bandwidth was not measured: no tok/s; models are ordered by "
                      "bytes read per token and none passes a speed threshold");
    drv_recommend_pick(out);
out:
    free(m);
    free(f);
    return rc;
}

/* ---- picking ---- */

/* Known speeds compare as numbers; otherwise fewer bytes per token is faster. */
static bool faster(const struct drv_rec_candidate *a, const struct drv_rec_candidate *b)
{
    double sa = drv_recommend_tps(a), sb = drv_recommend_tps(b);
    if (sa > 0 && sb > 0 && sa != sb)
        return sa > sb;
    if (a->read_per_token != b->read_per_token)
        return a->read_per_token < b->read_per_token;
    return a->total_bytes < b->total_bytes;
}

/* At least tps; an unknown speed passes only on a GPU (see model.h). */
static bool meets(const struct drv_rec_result *r, const struct drv_rec_candidate *c, double tps)
{
    double s = drv_recommend_tps(c);
    return s > 0 ? s >= tps : r->gpu;
}

static bool eligible(const struct drv_rec_result *r, const struct drv_rec_candidate *c)
{
    return c->fits && c->n_ctx >= r->params.n_ctx && c->params >= DRV_REC_USEFUL_PARAMS;
}

/* More parameters, then a better quantization, then the smaller total. */
static bool better(const struct drv_rec_candidate *a, const struct drv_rec_candidate *b)
{
    if (a->params != b->params)
        return a->params > b->params;
    if (quant_rank(a->quant) != quant_rank(b->quant))
        return quant_rank(a->quant) > quant_rank(b->quant);
    return a->total_bytes < b->total_bytes;
}

static const char *tps_kind(const struct drv_rec_candidate *c)
{
    return c->tg_measured > 0 ? "measured" : drv_recommend_tps(c) > 0 ? "predicted" : "assumed";
}

/* the daily driver's context: DRV_REC_DAILY_CTX, or all the model has */
static uint32_t daily_ctx(const struct drv_rec_candidate *c)
{
    return c->n_ctx_train && c->n_ctx_train < DRV_REC_DAILY_CTX ? c->n_ctx_train
                                                                : DRV_REC_DAILY_CTX;
}

static void pick_roles(struct drv_rec_result *r)
{
    int fast = -1, qual = -1, daily = -1, daily_any = -1, n_ok = 0;
    for (int i = 0; i < r->n_cand; i++) {
        const struct drv_rec_candidate *c = &r->cand[i];
        if (!eligible(r, c))
            continue;
        n_ok++;
        if (fast < 0 || faster(c, &r->cand[fast]))
            fast = i;
        if (meets(r, c, DRV_REC_QUALITY_TPS) && (qual < 0 || better(c, &r->cand[qual])))
            qual = i;
        if (c->quant != DRV_REC_DAILY_QUANT)
            continue;
        if (daily_any < 0 || faster(c, &r->cand[daily_any]))
            daily_any = i;
        if (meets(r, c, DRV_REC_DAILY_TPS) && c->max_ctx >= daily_ctx(c) &&
            (daily < 0 || better(c, &r->cand[daily])))
            daily = i;
    }
    char ctx[48];
    snprintf(ctx, sizeof(ctx), "%u tokens of context", r->params.n_ctx);
    const char *quant_d = drv_synth_quant_name(DRV_REC_DAILY_QUANT);
    r->pick[DRV_REC_FASTEST] = fast;
    if (fast >= 0)
        snprintf(r->why[DRV_REC_FASTEST], sizeof(r->why[0]),
                 "the most tok/s (%s) of the %d model/quantization pairs of >= %.1fB "
                 "parameters that fit %s with %s",
                 tps_kind(&r->cand[fast]), n_ok, DRV_REC_USEFUL_PARAMS / 1e9, r->fast_name, ctx);
    else
        snprintf(r->why[DRV_REC_FASTEST], sizeof(r->why[0]),
                 "no model of >= %.1fB parameters fits %s with %s", DRV_REC_USEFUL_PARAMS / 1e9,
                 r->fast_name, ctx);
    r->pick[DRV_REC_QUALITY] = qual;
    if (qual >= 0)
        snprintf(r->why[DRV_REC_QUALITY], sizeof(r->why[0]),
                 "the most parameters, then the best quantization, that fit %s with %s and "
                 "generate >= %.0f tok/s (%s)",
                 r->fast_name, ctx, DRV_REC_QUALITY_TPS, tps_kind(&r->cand[qual]));
    else
        snprintf(r->why[DRV_REC_QUALITY], sizeof(r->why[0]),
                 "no model that fits %s with %s generates >= %.0f tok/s", r->fast_name, ctx,
                 DRV_REC_QUALITY_TPS);
    r->pick[DRV_REC_DAILY] = daily >= 0 ? daily : daily_any;
    if (daily >= 0)
        snprintf(r->why[DRV_REC_DAILY], sizeof(r->why[0]),
                 "the most parameters at %s that still generate >= %.0f tok/s (%s) and fit "
                 "%u tokens of context",
                 quant_d, DRV_REC_DAILY_TPS, tps_kind(&r->cand[daily]), DRV_REC_DAILY_CTX);
    else if (daily_any >= 0)
        snprintf(r->why[DRV_REC_DAILY], sizeof(r->why[0]),
                 "no %s model of >= %.1fB parameters reaches %.0f tok/s with %u tokens of "
                 "context here: the fastest one",
                 quant_d, DRV_REC_USEFUL_PARAMS / 1e9, DRV_REC_DAILY_TPS, DRV_REC_DAILY_CTX);
    else
        snprintf(r->why[DRV_REC_DAILY], sizeof(r->why[0]),
                 "no %s model of >= %.1fB parameters fits %s with %s", quant_d,
                 DRV_REC_USEFUL_PARAMS / 1e9, r->fast_name, ctx);
}

/* "~3.1-6.2 tok/s", "at most ~4.0 tok/s", "11.6 tok/s measured" or "" */
static void fmt_tps(const struct drv_rec_candidate *c, char *out, size_t size)
{
    if (c->tg_measured > 0)
        snprintf(out, size, "%.1f tok/s measured", c->tg_measured);
    else if (c->tg_upper_only && c->tg_hi > 0)
        snprintf(out, size, "at most ~%.1f tok/s", c->tg_hi);
    else if (c->tg_lo > 0)
        snprintf(out, size, "~%.1f-%.1f tok/s", c->tg_lo, c->tg_hi);
    else
        snprintf(out, size, "speed unknown");
}

static bool is_pick(const struct drv_rec_result *r, const struct drv_rec_candidate *c)
{
    for (int k = 0; k < DRV_REC_N_ROLES; k++)
        if (r->pick[k] >= 0 && strcmp(r->cand[r->pick[k]].model, c->model) == 0)
            return true;
    return false;
}

/* distills share their base's shape: one warning for a size is enough */
static bool same_size_listed(const struct drv_rec_result *r, const struct drv_rec_candidate *c)
{
    for (int i = 0; i < r->n_avoid; i++)
        if (r->cand[r->avoid[i].cand].params == c->params)
            return true;
    return false;
}

enum avoid_kind { TOO_SLOW, OFFLOAD, NO_FIT, N_KINDS };

/* The tempting mistakes: at the default quantization and bigger than every
 * pick, the smallest models that fit but are too slow, then those that spill
 * onto the CPU, then the smallest one that does not fit at all. */
static void pick_avoid(struct drv_rec_result *r)
{
    static const int quota[N_KINDS] = {2, 2, 1};
    int taken[N_KINDS] = {0};
    bool used[DRV_REC_MAX_CANDIDATES] = {false};
    /* a model smaller than every pick tempts nobody */
    uint64_t floor = DRV_REC_USEFUL_PARAMS;
    for (int k = 0; k < DRV_REC_N_ROLES; k++)
        if (r->pick[k] >= 0 && r->cand[r->pick[k]].params > floor)
            floor = r->cand[r->pick[k]].params;
    r->n_avoid = 0;
    for (int kind = 0; kind < N_KINDS; kind++) {
        while (taken[kind] < quota[kind] && r->n_avoid < DRV_REC_MAX_AVOID) {
            int best = -1;
            for (int i = 0; i < r->n_cand; i++) {
                const struct drv_rec_candidate *c = &r->cand[i];
                if (used[i] || c->quant != DRV_REC_DAILY_QUANT || is_pick(r, c) ||
                    c->n_ctx < r->params.n_ctx || c->params <= floor || same_size_listed(r, c))
                    continue;
                double s = drv_recommend_tps(c);
                bool k = kind == TOO_SLOW  ? c->fits && s > 0 && s < DRV_REC_QUALITY_TPS
                         : kind == OFFLOAD ? c->verdict == DRV_FIT_PARTIAL
                                           : c->verdict == DRV_FIT_NONE;
                if (k && (best < 0 || c->params < r->cand[best].params))
                    best = i;
            }
            if (best < 0)
                break;
            used[best] = true;
            taken[kind]++;
            const struct drv_rec_candidate *c = &r->cand[best];
            struct drv_rec_avoid *a = &r->avoid[r->n_avoid++];
            a->cand = best;
            char w[32], t[32], sp[48];
            drv_fmt_bytes(c->weights_bytes, w, sizeof(w));
            drv_fmt_bytes(c->total_bytes, t, sizeof(t));
            fmt_tps(c, sp, sizeof(sp));
            if (kind == TOO_SLOW)
                snprintf(a->reason, sizeof(a->reason),
                         "fits (%s with %u ctx), but %s is below %.0f tok/s", t, c->n_ctx, sp,
                         DRV_REC_QUALITY_TPS);
            else if (kind == OFFLOAD)
                snprintf(a->reason, sizeof(a->reason),
                         "%s of weights (%s with %u ctx) does not fit %s: %d of %d layers on "
                         "the GPU, the rest on the CPU -> %s",
                         w, t, c->n_ctx, r->fast_name, c->n_gpu_layers, c->n_units, sp);
            else
                snprintf(a->reason, sizeof(a->reason),
                         "%s of weights (%s with %u ctx) does not fit this machine at all (%s%s)",
                         w, t, c->n_ctx, r->fast_name, r->gpu ? " plus RAM" : "");
        }
    }
    /* smallest first: the ones a person is most likely to try */
    for (int i = 1; i < r->n_avoid; i++)
        for (int j = i;
             j > 0 && r->cand[r->avoid[j].cand].params < r->cand[r->avoid[j - 1].cand].params;
             j--) {
            struct drv_rec_avoid tmp = r->avoid[j];
            r->avoid[j] = r->avoid[j - 1];
            r->avoid[j - 1] = tmp;
        }
}

void drv_recommend_pick(struct drv_rec_result *r)
{
    pick_roles(r);
    pick_avoid(r);
}
