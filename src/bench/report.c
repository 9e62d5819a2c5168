/* bench: the table, JSON and CSV, and the run record for the history store. */
#include "bench/bench.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *status_name(enum drv_bench_status s)
{
    switch (s) {
    case DRV_BENCH_OK:
        return "ok";
    case DRV_BENCH_PARTIAL:
        return "partial";
    case DRV_BENCH_UNREACHABLE:
        return "unreachable";
    case DRV_BENCH_NO_MODEL:
        return "no_model";
    default:
        return "failed";
    }
}

/* The first target's level with the same concurrency, or NULL. */
static const struct drv_bench_level *ref_level(const struct drv_bench_result *rs, int n,
                                               int concurrency)
{
    if (n < 2 || rs[0].n_levels == 0)
        return NULL;
    for (int i = 0; i < rs[0].n_levels; i++)
        if (rs[0].levels[i].concurrency == concurrency)
            return &rs[0].levels[i];
    return NULL;
}

/* Aggregate generation rate of a level: per-stream rate x streams. */
static double tg_aggregate(const struct drv_bench_level *lv)
{
    return lv->tg.n ? lv->tg.median * lv->concurrency : -1;
}

static double ratio(double a, double b)
{
    return a > 0 && b > 0 ? a / b : -1;
}

/* ---- table -------------------------------------------------------------------- */

enum {
    COL_TARGET,
    COL_KIND,
    COL_MODEL,
    COL_STREAMS,
    COL_TOKENS,
    COL_PP,
    COL_TG,
    COL_TGS,
    COL_TTFT,
    COL_E2E,
    COL_SPREAD,
    COL_RATIO,
    N_COLS
};

static const char *const col_head[N_COLS] = {
    "target",   "kind",      "model",   "streams", "tokens in/out", "pp tok/s",
    "tg tok/s", "tg/stream", "ttft ms", "e2e ms",  "tg spread",     "tg vs first"};

#define CELL 64

static void fmt_num(char *out, double v, const char *fmt)
{
    if (v < 0)
        snprintf(out, CELL, "-");
    else
        snprintf(out, CELL, fmt, v);
}

void drv_bench_write_table(FILE *f, const struct drv_bench_result *rs, int n)
{
    int rows = 0;
    bool any_multi = false, any_disagree = false;
    for (int t = 0; t < n; t++) {
        rows += rs[t].n_levels;
        for (int l = 0; l < rs[t].n_levels; l++) {
            any_multi |= rs[t].levels[l].concurrency > 1;
            any_disagree |= rs[t].levels[l].tg_disagree;
        }
    }
    bool show[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        show[c] = true;
    show[COL_TGS] = any_multi;
    show[COL_RATIO] = n > 1;

    char(*cells)[N_COLS][CELL] = calloc((size_t)(rows ? rows : 1), sizeof(*cells));
    if (cells == NULL)
        return;
    int r = 0;
    for (int t = 0; t < n; t++) {
        const struct drv_bench_result *res = &rs[t];
        for (int l = 0; l < res->n_levels; l++, r++) {
            const struct drv_bench_level *lv = &res->levels[l];
            char(*c)[CELL] = cells[r];
            snprintf(c[COL_TARGET], CELL, "%.63s", res->target.url);
            snprintf(c[COL_KIND], CELL, "%s", drv_bench_kind_name(res->target.kind));
            snprintf(c[COL_MODEL], CELL, "%.63s", res->target.model_display);
            snprintf(c[COL_STREAMS], CELL, "%d", lv->concurrency);
            char a[24], b[24];
            fmt_num(a, lv->prompt_tokens.median, "%.0f");
            fmt_num(b, lv->gen_tokens.median, "%.0f");
            snprintf(c[COL_TOKENS], CELL, "%s/%s", a, b);
            fmt_num(c[COL_PP], lv->pp.median, "%.1f");
            fmt_num(c[COL_TG], tg_aggregate(lv), "%.1f");
            if (lv->tg_disagree) {
                double cl = lv->tg_client.median * lv->concurrency;
                size_t len = strlen(c[COL_TG]);
                snprintf(c[COL_TG] + len, CELL - len, " (client %.1f)", cl);
            }
            fmt_num(c[COL_TGS], lv->tg.median, "%.1f");
            fmt_num(c[COL_TTFT], lv->ttft.median, "%.1f");
            fmt_num(c[COL_E2E], lv->e2e.median, "%.1f");
            if (lv->tg.n)
                snprintf(c[COL_SPREAD], CELL, "%.1f %%", lv->tg.spread * 100);
            else
                snprintf(c[COL_SPREAD], CELL, "-");
            const struct drv_bench_level *ref = ref_level(rs, n, lv->concurrency);
            double q = ref ? ratio(tg_aggregate(lv), tg_aggregate(ref)) : -1;
            fmt_num(c[COL_RATIO], q, "%.2fx");
        }
    }
    int width[N_COLS];
    for (int c = 0; c < N_COLS; c++) {
        width[c] = (int)strlen(col_head[c]);
        for (int i = 0; i < rows; i++) {
            int w = (int)strlen(cells[i][c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    /* text columns align left, numbers right */
    if (rows > 0) {
        for (int i = -1; i < rows; i++) {
            bool first = true;
            for (int c = 0; c < N_COLS; c++) {
                if (!show[c])
                    continue;
                const char *s = i < 0 ? col_head[c] : cells[i][c];
                bool left = c <= COL_MODEL;
                bool last = c == N_COLS - 1 || (c == COL_SPREAD && !show[COL_RATIO]);
                fprintf(f, "%s", first ? "" : "  ");
                if (left && last)
                    fprintf(f, "%s", s);
                else if (left)
                    fprintf(f, "%-*s", width[c], s);
                else
                    fprintf(f, "%*s", width[c], s);
                first = false;
            }
            fprintf(f, "\n");
        }
    }
    free(cells);

    /* what is not in the table, in words */
    for (int t = 0; t < n; t++) {
        const struct drv_bench_result *res = &rs[t];
        if (res->status == DRV_BENCH_OK)
            continue;
        if (res->status == DRV_BENCH_PARTIAL)
            fprintf(f, "%s: %s; the repetitions before that are kept\n", res->target.url,
                    res->error);
        else if (res->status == DRV_BENCH_UNREACHABLE || res->status == DRV_BENCH_NO_MODEL)
            fprintf(f, "%s: %s\n", res->target.url, res->error);
        else
            fprintf(f, "%s: not measured: %s\n", res->target.url, res->error);
    }
    if (rows > 0) {
        fprintf(f, "tok/s from the server's own timings where it reports them, else from the "
                   "client's clock; medians over repetitions");
        if (any_multi)
            fprintf(f, "; tg tok/s is all streams together");
        fprintf(f, ".\n");
        if (any_disagree)
            fprintf(f, "(client X): the client's clock differs from the server's timings by more "
                       "than 10 %%.\n");
    }
}

/* ---- JSON ------------------------------------------------------------------- */

static json_t *num_or_null(double v)
{
    return v >= 0 ? json_real(v) : json_null();
}

static json_t *stat_json(const struct drv_bench_stat *s)
{
    if (s->n == 0)
        return json_null();
    return json_pack("{s:f, s:f, s:f, s:f, s:i}", "median", s->median, "min", s->min, "max", s->max,
                     "spread", s->spread, "n", s->n);
}

static json_t *rep_json(const struct drv_bench_rep_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "pp_tps", num_or_null(r->pp_tps));
    json_object_set_new(o, "tg_tps", num_or_null(r->tg_tps));
    json_object_set_new(o, "pp_server_tps", num_or_null(r->pp_server));
    json_object_set_new(o, "tg_server_tps", num_or_null(r->tg_server));
    json_object_set_new(o, "pp_client_tps", num_or_null(r->pp_client));
    json_object_set_new(o, "tg_client_tps", num_or_null(r->tg_client));
    json_object_set_new(o, "ttft_ms", num_or_null(r->ttft_ms));
    json_object_set_new(o, "e2e_ms", num_or_null(r->e2e_ms));
    json_object_set_new(o, "wall_ms", num_or_null(r->wall_ms));
    json_object_set_new(o, "prompt_tokens",
                        r->prompt_tokens >= 0 ? json_integer(r->prompt_tokens) : json_null());
    json_object_set_new(o, "gen_tokens",
                        r->gen_tokens >= 0 ? json_integer(r->gen_tokens) : json_null());
    json_object_set_new(o, "source", json_string(r->server_timings ? "server" : "client"));
    return o;
}

static json_t *level_json(const struct drv_bench_level *lv, const struct drv_bench_level *ref)
{
    json_t *o = json_object();
    json_object_set_new(o, "concurrency", json_integer(lv->concurrency));
    json_object_set_new(o, "pp_tps", stat_json(&lv->pp));
    json_object_set_new(o, "tg_tps", stat_json(&lv->tg));
    json_object_set_new(o, "tg_aggregate_tps", num_or_null(tg_aggregate(lv)));
    json_object_set_new(o, "tg_server_tps", stat_json(&lv->tg_server));
    json_object_set_new(o, "tg_client_tps", stat_json(&lv->tg_client));
    json_object_set_new(o, "tg_disagree", json_boolean(lv->tg_disagree));
    json_object_set_new(o, "ttft_ms", stat_json(&lv->ttft));
    json_object_set_new(o, "e2e_ms", stat_json(&lv->e2e));
    json_object_set_new(o, "prompt_tokens", stat_json(&lv->prompt_tokens));
    json_object_set_new(o, "gen_tokens", stat_json(&lv->gen_tokens));
    if (ref) {
        json_object_set_new(o, "ratio",
                            json_pack("{s:o, s:o, s:o, s:o}", "pp",
                                      num_or_null(ratio(lv->pp.median, ref->pp.median)), "tg",
                                      num_or_null(ratio(tg_aggregate(lv), tg_aggregate(ref))),
                                      "ttft", num_or_null(ratio(lv->ttft.median, ref->ttft.median)),
                                      "e2e", num_or_null(ratio(lv->e2e.median, ref->e2e.median))));
    }
    json_t *reps = json_array();
    for (int i = 0; i < lv->n_reps; i++)
        json_array_append_new(reps, rep_json(&lv->reps[i]));
    json_object_set_new(o, "reps", reps);
    return o;
}

static json_t *params_json(const struct drv_bench_params *p)
{
    json_t *levels = json_array();
    for (int i = 0; i < p->n_levels; i++)
        json_array_append_new(levels, json_integer(p->levels[i]));
    json_t *o = json_pack("{s:i, s:i, s:i, s:o}", "prompt_tokens", p->prompt_tokens, "gen_tokens",
                          p->gen_tokens, "reps", p->reps, "concurrency", levels);
    if (o && p->kind != DRV_BENCH_KIND_AUTO)
        json_object_set_new(o, "kind", json_string(drv_bench_kind_name(p->kind)));
    if (o && p->model)
        json_object_set_new(o, "model", json_string(p->model));
    return o;
}

char *drv_bench_json(const struct drv_bench_result *rs, int n, const struct drv_bench_params *p)
{
    json_t *targets = json_array();
    for (int t = 0; t < n; t++) {
        const struct drv_bench_result *r = &rs[t];
        json_t *o = json_object();
        json_object_set_new(o, "target", json_string(r->target.url));
        json_object_set_new(o, "status", json_string(status_name(r->status)));
        json_object_set_new(o, "error", r->error[0] ? json_string(r->error) : json_null());
        json_object_set_new(o, "interrupted", json_boolean(r->interrupted));
        json_object_set_new(o, "started", json_integer(r->started));
        if (r->target.kind != DRV_BENCH_KIND_AUTO)
            json_object_set_new(o, "kind", json_string(drv_bench_kind_name(r->target.kind)));
        if (r->target.version[0])
            json_object_set_new(o, "version", json_string(r->target.version));
        if (r->target.model[0]) {
            json_t *m = json_object();
            json_object_set_new(m, "id", json_string(r->target.model));
            json_object_set_new(m, "name", json_string(r->target.model_display));
            json_object_set_new(m, "digest",
                                r->target.digest[0] ? json_string(r->target.digest) : json_null());
            json_object_set_new(m, "size",
                                r->target.model_size
                                    ? json_integer((json_int_t)r->target.model_size)
                                    : json_null());
            json_object_set_new(m, "quantization",
                                r->target.quant[0] ? json_string(r->target.quant) : json_null());
            json_object_set_new(o, "model", m);
        }
        json_t *levels = json_array();
        for (int l = 0; l < r->n_levels; l++)
            json_array_append_new(
                levels, level_json(&r->levels[l], ref_level(rs, n, r->levels[l].concurrency)));
        json_object_set_new(o, "levels", levels);
        json_array_append_new(targets, o);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "params", params_json(p));
    json_object_set_new(doc, "targets", targets);
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    json_decref(doc);
    return s;
}

/* ---- CSV ---------------------------------------------------------------------- */

/* A field, quoted when it needs to be. */
static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    if (v >= 0)
        fprintf(f, ",%.3f", v);
    else
        fputs(",", f);
}

static void csv_int(FILE *f, double v)
{
    if (v >= 0)
        fprintf(f, ",%.0f", v);
    else
        fputs(",", f);
}

void drv_bench_write_csv(FILE *f, const struct drv_bench_result *rs, int n)
{
    fprintf(f, "target,kind,model,status,streams,reps,prompt_tokens,gen_tokens,pp_tps,tg_tps,"
               "tg_stream_tps,tg_server_tps,tg_client_tps,ttft_ms,e2e_ms,tg_spread,tg_ratio,"
               "error\n");
    for (int t = 0; t < n; t++) {
        const struct drv_bench_result *r = &rs[t];
        for (int l = 0; l < (r->n_levels ? r->n_levels : 1); l++) {
            csv_field(f, r->target.url);
            fprintf(f, ",%s,", r->target.kind ? drv_bench_kind_name(r->target.kind) : "");
            csv_field(f, r->target.model_display);
            fprintf(f, ",%s", status_name(r->status));
            if (r->n_levels == 0) {
                fprintf(f, ",,,,,,,,,,,,,,");
            } else {
                const struct drv_bench_level *lv = &r->levels[l];
                const struct drv_bench_level *ref = ref_level(rs, n, lv->concurrency);
                fprintf(f, ",%d,%d", lv->concurrency, lv->n_reps);
                csv_int(f, lv->prompt_tokens.median);
                csv_int(f, lv->gen_tokens.median);
                csv_num(f, lv->pp.median);
                csv_num(f, tg_aggregate(lv));
                csv_num(f, lv->tg.median);
                csv_num(f, lv->tg_server.median);
                csv_num(f, lv->tg_client.median);
                csv_num(f, lv->ttft.median);
                csv_num(f, lv->e2e.median);
                csv_num(f, lv->tg.n ? lv->tg.spread : -1);
                csv_num(f, ref ? ratio(tg_aggregate(lv), tg_aggregate(ref)) : -1);
            }
            fputc(',', f);
            csv_field(f, r->error);
            fputc('\n', f);
        }
    }
}

/* ---- the record for the history ------------------------------------------------- */

int drv_bench_fill_run(const struct drv_bench_result *r, const struct drv_bench_params *p,
                       bool baseline, struct drv_bench_run *run, struct drv_err *err)
{
    memset(run, 0, sizeof(*run));
    int n = 0;
    for (int l = 0; l < r->n_levels; l++)
        n += r->levels[l].n_reps;
    if (n == 0)
        return drv_err_set(err, DRV_ENOENT, "%s: nothing measured", r->target.url);
    run->reps = calloc((size_t)n, sizeof(*run->reps));
    if (run->reps == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    run->ts = r->started;
    drv_strlcpy(run->target, r->target.url, sizeof(run->target));
    drv_strlcpy(run->kind, drv_bench_kind_name(r->target.kind), sizeof(run->kind));
    drv_strlcpy(run->engine_version, r->target.version, sizeof(run->engine_version));
    drv_strlcpy(run->hw, r->target.hw, sizeof(run->hw));
    drv_strlcpy(run->model, r->target.model_display, sizeof(run->model));
    drv_strlcpy(run->model_digest, r->target.digest, sizeof(run->model_digest));
    run->model_size = r->target.model_size;
    drv_strlcpy(run->quant, r->target.quant, sizeof(run->quant));
    json_t *pj = params_json(p);
    if (pj && r->status != DRV_BENCH_OK)
        json_object_set_new(pj, "partial", json_string(r->error));
    char *ps = pj ? json_dumps(pj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(pj);
    if (ps)
        drv_strlcpy(run->params, ps, sizeof(run->params));
    free(ps);
    run->baseline = baseline;
    for (int l = 0; l < r->n_levels; l++) {
        for (int i = 0; i < r->levels[l].n_reps; i++) {
            const struct drv_bench_rep_result *x = &r->levels[l].reps[i];
            struct drv_bench_rep *y = &run->reps[run->n_reps++];
            y->concurrency = x->concurrency;
            y->pp_tps = x->pp_tps;
            y->tg_tps = x->tg_tps;
            y->ttft_ms = x->ttft_ms;
            y->e2e_ms = x->e2e_ms;
            y->prompt_tokens = x->prompt_tokens;
            y->gen_tokens = x->gen_tokens;
            drv_strlcpy(y->source, x->server_timings ? "server" : "client", sizeof(y->source));
        }
    }
    return 0;
}
