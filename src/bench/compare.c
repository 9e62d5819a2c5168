/* compare: is this run slower than the target+model's baseline?
 *
 * "Slower beyond the run-to-run spread" is read literally: for one metric at
 * one concurrency, every repetition of this run is worse than every repetition
 * of the baseline (the ranges do not overlap) and the medians differ by 20 % or
 * more. A rerun of the same setup overlaps its baseline; a real slowdown does
 * not. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct range {
    double min, max, median;
    int n;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Range of one metric (offset of a double in drv_bench_rep) at concurrency c. */
static struct range metric_range(const struct drv_bench_run *r, int c, size_t off)
{
    struct range g = {0};
    double *v = malloc((size_t)(r->n_reps ? r->n_reps : 1) * sizeof(*v));
    if (v == NULL)
        return g;
    for (int i = 0; i < r->n_reps; i++) {
        if (r->reps[i].concurrency != c)
            continue;
        double x = *(const double *)((const char *)&r->reps[i] + off);
        if (x >= 0 && isfinite(x))
            v[g.n++] = x;
    }
    if (g.n > 0) {
        qsort(v, (size_t)g.n, sizeof(*v), cmp_double);
        g.min = v[0];
        g.max = v[g.n - 1];
        g.median = g.n % 2 ? v[g.n / 2] : (v[g.n / 2 - 1] + v[g.n / 2]) / 2;
    }
    free(v);
    return g;
}

int drv_bench_compare(const struct drv_bench_run *cur, const struct drv_bench_run *base,
                      struct drv_buf *out)
{
    static const struct {
        const char *name;
        size_t off;
        bool lower_is_better;
        const char *unit;
    } metrics[] = {
        {"tg", offsetof(struct drv_bench_rep, tg_tps), false, "tok/s"},
        {"pp", offsetof(struct drv_bench_rep, pp_tps), false, "tok/s"},
        {"ttft", offsetof(struct drv_bench_rep, ttft_ms), true, "ms"},
    };
    int found = 0;
    int levels[DRV_BENCH_MAX_LEVELS], n_levels = 0;
    for (int i = 0; i < cur->n_reps && n_levels < DRV_BENCH_MAX_LEVELS; i++) {
        bool seen = false;
        for (int k = 0; k < n_levels; k++)
            seen |= levels[k] == cur->reps[i].concurrency;
        if (!seen)
            levels[n_levels++] = cur->reps[i].concurrency;
    }
    for (int l = 0; l < n_levels; l++) {
        for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
            struct range c = metric_range(cur, levels[l], metrics[m].off);
            struct range b = metric_range(base, levels[l], metrics[m].off);
            if (c.n == 0 || b.n == 0 || b.median <= 0)
                continue;
            bool worse = metrics[m].lower_is_better ? c.min > b.max && c.median >= b.median * 1.25
                                                    : c.max < b.min && c.median <= b.median * 0.80;
            if (!worse)
                continue;
            double pct = (c.median - b.median) / b.median * 100;
            char streams[32] = "";
            if (levels[l] > 1)
                snprintf(streams, sizeof(streams), " at %d streams", levels[l]);
            drv_buf_appendf(out, "%s %.1f %s vs baseline %.1f (%+.0f %%)%s\n", metrics[m].name,
                            c.median, metrics[m].unit, b.median, pct, streams);
            found++;
        }
    }
    return found;
}
