#include "cmd/cmd.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_LIMIT 20
#define MAX_LIMIT     1000000

/* --since: a local date (2026-11-01, from its midnight) or an age (90s, 30m, 24h,
 * 7d, 2w). */
static bool parse_since(const char *s, int64_t now, int64_t *out)
{
    int y, mo, d, used = -1;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) == 3 && used == (int)strlen(s) &&
        used == 10) {
        struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_isdst = -1};
        time_t t = mktime(&tm);
        /* mktime normalizes 2026-02-31 into March: refuse instead */
        if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
            return false;
        *out = (int64_t)t;
        return true;
    }
    if (s[0] < '0' || s[0] > '9')
        return false;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end[0] == '\0' || end[1] != '\0')
        return false;
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (end[0] != units[i].unit)
            continue;
        if (n > now / units[i].secs)
            return false;
        *out = now - n * units[i].secs;
        return true;
    }
    return false;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of one measurement over a run's reps (offset into struct drv_bench_rep);
 * -1 when no rep measured it. */
static double median(const struct drv_bench_run *run, size_t offset)
{
    if (run->n_reps == 0)
        return -1;
    double *v = malloc((size_t)run->n_reps * sizeof(*v));
    if (v == NULL)
        return -1;
    int n = 0;
    for (int i = 0; i < run->n_reps; i++) {
        double x;
        memcpy(&x, (const char *)&run->reps[i] + offset, sizeof(x));
        if (x >= 0)
            v[n++] = x;
    }
    double m = -1;
    if (n > 0) {
        qsort(v, (size_t)n, sizeof(*v), cmp_double);
        m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }
    free(v);
    return m;
}

#define MEDIAN(run, field) median((run), offsetof(struct drv_bench_rep, field))

static json_t *measure_json(double v)
{
    return v >= 0 ? json_real(v) : json_null();
}

static json_t *run_to_json(const struct drv_bench_run *r)
{
    char when[32];
    time_t t = (time_t)r->ts;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *params = r->params[0] ? json_loads(r->params, JSON_DECODE_ANY, NULL) : json_null();
    if (params == NULL) /* not JSON after all: show it as it is */
        params = json_string(r->params);
    json_t *med = json_object();
    json_object_set_new(med, "pp_tps", measure_json(MEDIAN(r, pp_tps)));
    json_object_set_new(med, "tg_tps", measure_json(MEDIAN(r, tg_tps)));
    json_object_set_new(med, "ttft_ms", measure_json(MEDIAN(r, ttft_ms)));
    json_object_set_new(med, "e2e_ms", measure_json(MEDIAN(r, e2e_ms)));
    json_t *reps = json_array();
    for (int i = 0; i < r->n_reps; i++) {
        const struct drv_bench_rep *p = &r->reps[i];
        json_t *o = json_object();
        json_object_set_new(o, "concurrency", json_integer(p->concurrency));
        json_object_set_new(o, "pp_tps", measure_json(p->pp_tps));
        json_object_set_new(o, "tg_tps", measure_json(p->tg_tps));
        json_object_set_new(o, "ttft_ms", measure_json(p->ttft_ms));
        json_object_set_new(o, "e2e_ms", measure_json(p->e2e_ms));
        json_object_set_new(o, "prompt_tokens",
                            p->prompt_tokens >= 0 ? json_integer(p->prompt_tokens) : json_null());
        json_object_set_new(o, "gen_tokens",
                            p->gen_tokens >= 0 ? json_integer(p->gen_tokens) : json_null());
        json_object_set_new(o, "source", json_string(p->source));
        json_array_append_new(reps, o);
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)r->id));
    json_object_set_new(o, "ts", json_integer((json_int_t)r->ts));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "target", json_string(r->target));
    json_object_set_new(o, "kind", json_string(r->kind));
    json_object_set_new(o, "engine_version", json_string(r->engine_version));
    json_object_set_new(o, "model", json_string(r->model));
    json_object_set_new(o, "model_digest", json_string(r->model_digest));
    json_object_set_new(o, "model_size", json_integer((json_int_t)r->model_size));
    json_object_set_new(o, "quant", json_string(r->quant));
    json_object_set_new(o, "hw", json_string(r->hw));
    json_object_set_new(o, "params", params);
    json_object_set_new(o, "baseline", json_boolean(r->baseline));
    json_object_set_new(o, "median", med);
    json_object_set_new(o, "reps", reps);
    return o;
}

static int print_json(const char *path, const struct drv_bench_run *runs, int n, bool more)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, run_to_json(&runs[i]));
    json_t *o = json_object();
    json_object_set_new(o, "db", json_string(path));
    json_object_set_new(o, "runs", arr);
    json_object_set_new(o, "more", json_boolean(more));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (s == NULL) {
        fprintf(stderr, "drover history: out of memory\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

/* ---- the table ------------------------------------------------------------- */

enum {
    COL_WHEN,
    COL_TARGET,
    COL_KIND,
    COL_MODEL,
    COL_QUANT,
    COL_PP,
    COL_TG,
    COL_TTFT,
    COL_REPS,
    COL_MARK,
    N_COLS
};

static const char *const col_names[N_COLS] = {"when",     "target",   "kind",    "model", "quant",
                                              "pp tok/s", "tg tok/s", "ttft ms", "reps",  ""};
static const bool col_right[N_COLS] = {
    [COL_PP] = true, [COL_TG] = true, [COL_TTFT] = true, [COL_REPS] = true};

struct row {
    char cell[N_COLS][272]; /* the widest field (target) and its terminator */
};

static void fmt_measure(char *out, size_t size, double v)
{
    if (v < 0)
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%.1f", v);
}

static void fmt_text(char *out, size_t size, const char *s)
{
    snprintf(out, size, "%s", s[0] ? s : "-");
}

static void fill_row(struct row *w, const struct drv_bench_run *r)
{
    time_t t = (time_t)r->ts;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(w->cell[COL_WHEN], sizeof(w->cell[0]), "%Y-%m-%d %H:%M", &tm);
    fmt_text(w->cell[COL_TARGET], sizeof(w->cell[0]), r->target);
    fmt_text(w->cell[COL_KIND], sizeof(w->cell[0]), r->kind);
    fmt_text(w->cell[COL_MODEL], sizeof(w->cell[0]), r->model);
    fmt_text(w->cell[COL_QUANT], sizeof(w->cell[0]), r->quant);
    fmt_measure(w->cell[COL_PP], sizeof(w->cell[0]), MEDIAN(r, pp_tps));
    fmt_measure(w->cell[COL_TG], sizeof(w->cell[0]), MEDIAN(r, tg_tps));
    fmt_measure(w->cell[COL_TTFT], sizeof(w->cell[0]), MEDIAN(r, ttft_ms));
    snprintf(w->cell[COL_REPS], sizeof(w->cell[0]), "%d", r->n_reps);
    snprintf(w->cell[COL_MARK], sizeof(w->cell[0]), "%s", r->baseline ? "baseline" : "");
}

static void print_line(const struct row *w, const int *width)
{
    char line[N_COLS * 300];
    size_t len = 0;
    for (int c = 0; c < N_COLS; c++) {
        int n = snprintf(line + len, sizeof(line) - len, col_right[c] ? "%*s  " : "%-*s  ",
                         width[c], w->cell[c]);
        if (n > 0)
            len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
    }
    while (len > 0 && line[len - 1] == ' ')
        line[--len] = '\0';
    printf("%s\n", line);
}

static int print_table(const struct drv_bench_run *runs, int n)
{
    struct row *rows = calloc((size_t)n + 1, sizeof(*rows));
    if (rows == NULL) {
        fprintf(stderr, "drover history: out of memory\n");
        return 1;
    }
    int width[N_COLS] = {0};
    for (int c = 0; c < N_COLS; c++)
        snprintf(rows[0].cell[c], sizeof(rows[0].cell[c]), "%s", col_names[c]);
    for (int i = 0; i < n; i++)
        fill_row(&rows[i + 1], &runs[i]);
    for (int i = 0; i <= n; i++)
        for (int c = 0; c < N_COLS; c++) {
            int l = (int)strlen(rows[i].cell[c]);
            if (l > width[c])
                width[c] = l;
        }
    for (int i = 0; i <= n; i++)
        print_line(&rows[i], width);
    free(rows);
    return 0;
}

int drv_cmd_history(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("history");
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'}, {"model", required_argument, NULL, 'm'},
        {"since", required_argument, NULL, 's'},  {"limit", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},         {"db", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    struct drv_store_filter f = {.limit = DEFAULT_LIMIT};
    bool json = false;
    const char *db = NULL;
    char *end;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            f.target = optarg;
            break;
        case 'm':
            f.model = optarg;
            break;
        case 's':
            if (!parse_since(optarg, (int64_t)time(NULL), &f.since))
                return drv_cmd_bad_usage(
                    self, "--since '%s': want a date (2026-11-01) or an age (7d, 24h, 30m)",
                    optarg);
            break;
        case 'n': {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > MAX_LIMIT)
                return drv_cmd_bad_usage(self, "--limit '%s': want a number from 1 to %d", optarg,
                                         MAX_LIMIT);
            f.limit = (int)v;
            break;
        }
        case 'j':
            json = true;
            break;
        case 'd':
            db = optarg;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_option(self, opts, "+:h", argv);
        }
    }
    if (optind != argc)
        return drv_cmd_bad_usage(self, "unexpected argument '%s'", argv[optind]);

    char path[PATH_MAX];
    if (db)
        drv_strlcpy(path, db, sizeof(path));
    else
        drv_store_default_path(path, sizeof(path));
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        /* reading history never creates it */
        if (json)
            return print_json(path, NULL, 0, false);
        printf("no history yet (%s)\n", path);
        return 0;
    }

    struct drv_err err;
    drv_err_init(&err);
    struct drv_store *s;
    if (drv_store_open(path, &s, &err) != 0) {
        fprintf(stderr, "drover history: %s\n", err.msg);
        return 1;
    }
    struct drv_bench_run *runs;
    int n;
    int want = f.limit;
    f.limit = want + 1; /* one more tells whether there are more */
    int rc = drv_store_list_runs(s, &f, &runs, &n, &err);
    drv_store_close(s);
    if (rc != 0) {
        fprintf(stderr, "drover history: %s\n", err.msg);
        return 1;
    }
    bool more = n > want;
    if (more)
        n = want;
    if (json) {
        rc = print_json(path, runs, n, more);
    } else if (n == 0) {
        bool filtered = f.target || f.model || f.since;
        printf(filtered ? "no runs match (%s)\n" : "no history yet (%s)\n", path);
    } else {
        rc = print_table(runs, n);
        if (rc == 0 && more)
            printf("(only the newest %d shown; --limit N shows more)\n", n);
    }
    drv_bench_runs_free(runs, more ? n + 1 : n);
    return rc;
}
