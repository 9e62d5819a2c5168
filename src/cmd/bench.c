#include "bench/bench.h"
#include "cmd/cmd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TARGETS 32

/* What `drover bench` was asked to do. */
struct bench_opts {
    struct drv_bench_params p;
    const char *targets[MAX_TARGETS];
    int n_targets;
    char urls[MAX_TARGETS][256]; /* targets as URLs */
    bool json, csv;
    const char *db; /* --db FILE: the history store; NULL = the default path */
    bool baseline;  /* --baseline: mark this run as its target+model's baseline */
};

static atomic_bool g_stop;

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store(&g_stop, true);
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
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

/* Keeps one target's result in the history (drv_store_add_run). Not wired yet:
 * the store lands separately; then this opens o->db (or the default path),
 * adds the run and closes. A store that fails must not lose the printed
 * results: it says why on stderr and the bench goes on. */
static void bench_store(const struct bench_opts *o, const struct drv_bench_result *r)
{
    struct drv_bench_run run;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_bench_fill_run(r, &o->p, o->baseline, &run, &err) != 0)
        return; /* nothing measured: nothing to keep */
    /* TODO(store): open o->db or drv_store_default_path(), then
     *   if (drv_store_add_run(store, &run, &err) != 0)
     *       fprintf(stderr, "drover bench: not stored: %s\n", err.msg);
     */
    free(run.reps);
}

/* Turns a TARGET argument into a URL: "host:port" gets "http://". NULL when it
 * is neither (configured node names come later). */
static const char *target_url(const char *arg, char *out, size_t size)
{
    if (strncmp(arg, "http://", 7) == 0 || strncmp(arg, "https://", 8) == 0)
        drv_strlcpy(out, arg, size);
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct bench_opts *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        fprintf(stderr, "drover bench: out of memory\n");
        return 1;
    }
    o->p = drv_bench_default_params();
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
        case 'h':
            drv_cmd_usage(self, stdout);
            status = 0;
            goto out;
        default:
            status = drv_cmd_bad_usage(self, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (o->json && o->csv) {
        status = drv_cmd_bad_usage(self, "--json and --csv exclude each other");
        goto out;
    }
    if (optind == argc) {
        status = drv_cmd_bad_usage(self, "missing TARGET");
        goto out;
    }
    for (int i = optind; i < argc; i++) {
        if (o->n_targets == MAX_TARGETS) {
            status = drv_cmd_bad_usage(self, "at most %d targets", MAX_TARGETS);
            goto out;
        }
        if (target_url(argv[i], o->urls[o->n_targets], sizeof(o->urls[0])) == NULL) {
            status = drv_cmd_bad_usage(self, "'%s' is not a URL (http://host:port)", argv[i]);
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
    if (atomic_load(&g_stop))
        fprintf(stderr, "drover bench: interrupted; %d of %d target%s measured\n", measured,
                o->n_targets, o->n_targets == 1 ? "" : "s");
    for (int i = 0; i < n_done; i++)
        drv_bench_result_release(&rs[i]);
    free(rs);
    status = measured > 0 ? 0 : 1;
out:
    free(o);
    return status;
}
