#include "bench/bench.h"
#include "cmd/cmd.h"
#include "engine/engine.h"
#include "base/config.h"
#include "probe/probe.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 32

/* What `drover bench` was asked to do. */
struct bench_opts {
    struct drv_bench_params p;
    const char *targets[MAX_TARGETS];
    int n_targets;
    char urls[MAX_TARGETS][256]; /* targets as URLs */
    bool json, csv;
    const char *db;          /* --db FILE: the history store; NULL = the default path */
    bool baseline;           /* --baseline: mark this run as its target+model's baseline */
    const char *local;       /* --local FILE.gguf: in-process, no HTTP */
    const char *config;      /* --config FILE: where node names are looked up */
    int threads;             /* --threads for --local; 0 = physical cores */
    struct drv_store *store; /* opened on first use */
    bool store_failed;       /* said why once; the bench goes on without it */
    struct drv_buf verdicts; /* baseline comparisons, printed after the results */
};

static atomic_bool g_stop;

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store(&g_stop, true);
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    long v;
    if (!drv_cmd_parse_long(s, lo, hi, &v))
        return false;
    *out = (int)v;
    return true;
}

/* "1,4,8" -> levels. */
static bool parse_levels(const char *s, struct drv_bench_params *p)
{
    char buf[256];
    drv_strlcpy(buf, s, sizeof(buf));
    p->n_levels = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (p->n_levels == DRV_BENCH_MAX_LEVELS ||
            !parse_int(tok, 1, DRV_BENCH_MAX_STREAMS, &p->levels[p->n_levels]))
            return false;
        p->n_levels++;
    }
    return p->n_levels > 0;
}

/* The progress line on a terminal: rewritten in place, erased before output. */
struct progress {
    bool on;
};

static void progress_cb(void *ud, const char *url, const char *what)
{
    struct progress *pr = ud;
    if (!pr->on)
        return;
    fprintf(stderr, "\r\033[Kbench %s: %s", url, what);
    fflush(stderr);
}

static void progress_clear(struct progress *pr)
{
    if (!pr->on)
        return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

static struct drv_store *store_of(struct bench_opts *o)
{
    if (o->store || o->store_failed)
        return o->store;
    char path[512];
    const char *db = o->db ? o->db : drv_store_default_path(path, sizeof(path));
    struct drv_err err;
    drv_err_init(&err);
    if (drv_store_open(db, &o->store, &err) != 0) {
        /* the results are still printed: a broken history must not lose them */
        fprintf(stderr, "drover bench: results not kept in the history: %s\n", err.msg);
        o->store_failed = true;
        o->store = NULL;
    }
    return o->store;
}

/* Keeps a run in the history and compares it with its target+model's baseline
 * (the one before it, when this run becomes the new baseline). */
static void keep_run(struct bench_opts *o, struct drv_bench_run *run)
{
    struct drv_store *st = store_of(o);
    if (st == NULL)
        return;
    struct drv_err err;
    drv_err_init(&err);
    struct drv_bench_run base;
    if (drv_store_get_baseline(st, run->target, run->model, &base, &err) == 0) {
        struct drv_buf lines;
        drv_buf_init(&lines, 1 << 16);
        if (drv_bench_compare(run, &base, &lines) > 0) {
            char when[32];
            time_t t = (time_t)base.ts;
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime(&t));
            drv_buf_appendf(&o->verdicts, "%s %s is slower than its baseline (%s):\n", run->target,
                            run->model, when);
            for (char *l = lines.data; l && *l;) {
                char *nl = strchr(l, '\n');
                drv_buf_appendf(&o->verdicts, "  %.*s\n", (int)(nl ? nl - l : (long)strlen(l)), l);
                l = nl ? nl + 1 : l + strlen(l);
            }
        }
        drv_buf_release(&lines);
        drv_bench_run_release(&base);
    }
    drv_err_init(&err);
    if (drv_store_add_run(st, run, &err) != 0)
        fprintf(stderr, "drover bench: %s: not kept in the history: %s\n", run->target, err.msg);
    else if (run->baseline)
        drv_buf_appendf(&o->verdicts, "%s %s: this run is now the baseline\n", run->target,
                        run->model);
}

static void bench_store(struct bench_opts *o, const struct drv_bench_result *r)
{
    struct drv_bench_run run;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_bench_fill_run(r, &o->p, o->baseline, &run, &err) != 0)
        return; /* nothing measured: nothing to keep */
    keep_run(o, &run);
    free(run.reps);
}

/* This machine in one line (no bandwidth measurement: it would cost a second). */
static void local_hw(char *out, size_t size)
{
    struct drv_probe_params pp = drv_probe_default_params();
    pp.bandwidth_seconds = 0;
    struct drv_hw *hw = calloc(1, sizeof(*hw));
    struct drv_err err;
    drv_err_init(&err);
    out[0] = '\0';
    if (hw && drv_probe_run(&pp, hw, &err) == 0)
        drv_probe_summary(hw, out, size);
    free(hw);
}

/* --local FILE.gguf: llama.cpp in-process, pp and tg like llama-bench. */
static int bench_local(struct bench_opts *o)
{
    struct drv_local_bench_params lp = drv_local_bench_default_params();
    lp.n_prompt = o->p.prompt_tokens;
    lp.n_gen = o->p.gen_tokens;
    lp.reps = o->p.reps;
    lp.n_threads = o->threads;
    struct drv_local_bench_result *r = calloc(1, sizeof(*r));
    struct drv_err err;
    drv_err_init(&err);
    if (r == NULL || drv_engine_bench_local(o->local, &lp, r, &err) != 0) {
        fprintf(stderr, "drover bench: %s: %s\n", o->local, r ? err.msg : "out of memory");
        free(r);
        return 1;
    }
    struct drv_bench_stat pp, tg;
    drv_bench_stat_compute(r->pp_tps, r->reps, &pp);
    drv_bench_stat_compute(r->tg_tps, r->reps, &tg);
    const char *base = strrchr(o->local, '/');
    char model[128];
    drv_strlcpy(model, base ? base + 1 : o->local, sizeof(model));
    if (drv_str_has_suffix(model, ".gguf"))
        model[strlen(model) - 5] = '\0';
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:{s:f, s:f, s:f}, "
                              "s:{s:f, s:f, s:f}, s:i}",
                              "target", "local", "file", o->local, "model", model, "quantization",
                              r->info.quant, "threads", r->n_threads, "prompt_tokens", lp.n_prompt,
                              "gen_tokens", lp.n_gen, "load_ms", r->load_ms, "pp_tps", "median",
                              pp.median, "min", pp.min, "max", pp.max, "tg_tps", "median",
                              tg.median, "min", tg.min, "max", tg.max, "reps", r->reps);
        char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (t)
            printf("%s\n", t);
        free(t);
        json_decref(j);
    } else {
        printf("%-28s %-8s %7s %10s %10s %9s %9s\n", "model", "quant", "threads", "pp tok/s",
               "tg tok/s", "pp spread", "tg spread");
        printf("%-28s %-8s %7d %10.1f %10.1f %8.1f%% %8.1f%%\n", model, r->info.quant, r->n_threads,
               pp.median, tg.median, pp.spread * 100, tg.spread * 100);
        printf("in-process through llama.cpp: pp%d / tg%d, random tokens, medians of %d runs "
               "after a warm-up; loaded in %.0f ms\n",
               lp.n_prompt, lp.n_gen, r->reps, r->load_ms);
    }
    struct drv_bench_run run = {.baseline = o->baseline, .model_size = r->info.file_size};
    drv_strlcpy(run.target, "local", sizeof(run.target));
    drv_strlcpy(run.kind, "local", sizeof(run.kind));
    snprintf(run.engine_version, sizeof(run.engine_version), "llama.cpp in-process");
    drv_strlcpy(run.model, model, sizeof(run.model));
    drv_strlcpy(run.quant, r->info.quant, sizeof(run.quant));
    local_hw(run.hw, sizeof(run.hw));
    snprintf(run.params, sizeof(run.params),
             "{\"prompt_tokens\":%d,\"gen_tokens\":%d,\"reps\":%d,\"threads\":%d}", lp.n_prompt,
             lp.n_gen, r->reps, r->n_threads);
    run.reps = calloc((size_t)r->reps, sizeof(*run.reps));
    run.n_reps = run.reps ? r->reps : 0;
    for (int i = 0; i < run.n_reps; i++) {
        run.reps[i] = (struct drv_bench_rep){.concurrency = 1,
                                             .pp_tps = r->pp_tps[i],
                                             .tg_tps = r->tg_tps[i],
                                             .ttft_ms = -1,
                                             .e2e_ms = -1,
                                             .prompt_tokens = lp.n_prompt,
                                             .gen_tokens = lp.n_gen};
        drv_strlcpy(run.reps[i].source, "local", sizeof(run.reps[i].source));
    }
    keep_run(o, &run);
    free(run.reps);
    free(r);
    return 0;
}

/* Turns a TARGET argument into a URL: a URL as is, "host:port" with http://,
 * else the url of the node of that name in drover.conf ([node NAME] url = ...).
 * NULL when it is none of these. */
static const char *target_url(const char *arg, const struct drv_config *cfg, char *out, size_t size)
{
    const char *node_url = drv_config_get(cfg, "node", arg, "url");
    if (strncmp(arg, "http://", 7) == 0 || strncmp(arg, "https://", 8) == 0)
        drv_strlcpy(out, arg, size);
    else if (node_url)
        drv_strlcpy(out, node_url, size);
    else if (strchr(arg, ':') && !strchr(arg, '/'))
        snprintf(out, size, "http://%s", arg);
    else
        return NULL;
    return out;
}

int drv_cmd_bench(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("bench");
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt-tokens", required_argument, NULL, 'p'},
        {"gen-tokens", required_argument, NULL, 'n'},
        {"reps", required_argument, NULL, 'r'},
        {"concurrency", required_argument, NULL, 'c'},
        {"kind", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},
        {"csv", no_argument, NULL, 'C'},
        {"db", required_argument, NULL, 'd'},
        {"baseline", no_argument, NULL, 'b'},
        {"local", required_argument, NULL, 'L'},
        {"config", required_argument, NULL, 'F'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct bench_opts *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        fprintf(stderr, "drover bench: out of memory\n");
        return 1;
    }
    o->p = drv_bench_default_params();
    struct drv_config *cfg = NULL;
    int c, status = 2;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:r:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->p.model = optarg;
            break;
        case 'p':
            if (!parse_int(optarg, 1, 1 << 20, &o->p.prompt_tokens)) {
                status = drv_cmd_bad_usage(self, "-p wants a token count, not '%s'", optarg);
                goto out;
            }
            break;
        case 'n':
            if (!parse_int(optarg, 1, 1 << 20, &o->p.gen_tokens)) {
                status = drv_cmd_bad_usage(self, "-n wants a token count, not '%s'", optarg);
                goto out;
            }
            break;
        case 'r':
            if (!parse_int(optarg, 1, DRV_BENCH_MAX_REPS, &o->p.reps)) {
                status =
                    drv_cmd_bad_usage(self, "-r wants 1..%d, not '%s'", DRV_BENCH_MAX_REPS, optarg);
                goto out;
            }
            break;
        case 'c':
            if (!parse_levels(optarg, &o->p)) {
                status = drv_cmd_bad_usage(
                    self,
                    "--concurrency wants a list like 1,4,8 (1..%d, at most %d levels), not '%s'",
                    DRV_BENCH_MAX_STREAMS, DRV_BENCH_MAX_LEVELS, optarg);
                goto out;
            }
            break;
        case 'k':
            if (!drv_bench_parse_kind(optarg, &o->p.kind)) {
                status = drv_cmd_bad_usage(
                    self, "--kind wants auto|drover|ollama|llama-server|openai, not '%s'", optarg);
                goto out;
            }
            break;
        case 'j':
            o->json = true;
            break;
        case 'C':
            o->csv = true;
            break;
        case 'd':
            o->db = optarg;
            break;
        case 'b':
            o->baseline = true;
            break;
        case 'L':
            o->local = optarg;
            break;
        case 'F':
            o->config = optarg;
            break;
        case 't':
            if (!parse_int(optarg, 1, 1024, &o->threads)) {
                status = drv_cmd_bad_usage(self, "--threads wants 1..1024, not '%s'", optarg);
                goto out;
            }
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            status = 0;
            goto out;
        default:
            status = drv_cmd_bad_option(self, opts, "m:p:n:r:c:h", argv);
            goto out;
        }
    }
    if (o->json && o->csv) {
        status = drv_cmd_bad_usage(self, "--json and --csv exclude each other");
        goto out;
    }
    drv_buf_init(&o->verdicts, 1 << 20);
    if (o->local) {
        if (optind != argc) {
            status = drv_cmd_bad_usage(self, "--local takes a GGUF file, not targets");
            goto out;
        }
        status = bench_local(o);
        if (o->verdicts.len)
            fputs(o->verdicts.data, o->json ? stderr : stdout);
        goto out;
    }
    if (optind == argc) {
        status = drv_cmd_bad_usage(self, "missing TARGET");
        goto out;
    }
    char cfile[512];
    struct drv_err cerr;
    drv_err_init(&cerr);
    if (drv_config_load_for_command(o->config, &cfg, cfile, sizeof(cfile), &cerr) != 0) {
        fprintf(stderr, "drover bench: %s\n", cerr.msg);
        status = 1;
        goto out;
    }
    for (int i = optind; i < argc; i++) {
        if (o->n_targets == MAX_TARGETS) {
            status = drv_cmd_bad_usage(self, "at most %d targets", MAX_TARGETS);
            goto out;
        }
        if (target_url(argv[i], cfg, o->urls[o->n_targets], sizeof(o->urls[0])) == NULL) {
            status = drv_cmd_bad_usage(
                self, "'%s' is neither a URL (http://host:port) nor a node in %s", argv[i], cfile);
            goto out;
        }
        o->targets[o->n_targets] = o->urls[o->n_targets];
        o->n_targets++;
    }

    /* Ctrl-C: stop measuring, print (and keep) what was measured; a second one kills */
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct progress pr = {.on = isatty(STDERR_FILENO) == 1};
    struct drv_bench_result *rs = calloc((size_t)o->n_targets, sizeof(*rs));
    if (rs == NULL) {
        fprintf(stderr, "drover bench: out of memory\n");
        status = 1;
        goto out;
    }
    int n_done = 0, measured = 0;
    for (int i = 0; i < o->n_targets; i++) {
        if (atomic_load(&g_stop))
            break;
        struct drv_err err;
        drv_err_init(&err);
        drv_bench_run_target(o->targets[i], &o->p, &g_stop, progress_cb, &pr, &rs[i], &err);
        n_done++;
        if (rs[i].n_levels > 0) {
            measured++;
            bench_store(o, &rs[i]);
        }
    }
    progress_clear(&pr);
    if (o->json) {
        char *s = drv_bench_json(rs, n_done, &o->p);
        if (s)
            printf("%s\n", s);
        free(s);
    } else if (o->csv) {
        drv_bench_write_csv(stdout, rs, n_done);
    } else {
        drv_bench_write_table(stdout, rs, n_done);
    }
    if (o->verdicts.len)
        fputs(o->verdicts.data, o->json || o->csv ? stderr : stdout);
    if (atomic_load(&g_stop))
        fprintf(stderr, "drover bench: interrupted; %d of %d target%s measured\n", measured,
                o->n_targets, o->n_targets == 1 ? "" : "s");
    for (int i = 0; i < n_done; i++)
        drv_bench_result_release(&rs[i]);
    free(rs);
    status = measured > 0 ? 0 : 1;
out:
    drv_config_free(cfg);
    drv_buf_release(&o->verdicts);
    drv_store_close(o->store);
    free(o);
    return status;
}
