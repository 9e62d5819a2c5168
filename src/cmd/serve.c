#include "api/api.h"
#include "cmd/cmd.h"
#include "engine/engine.h"
#include "http/http.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Prometheus text for /metrics. */
static int engine_metrics(void *ud, struct drv_buf *out)
{
    struct drv_engine_metrics m;
    drv_engine_metrics(ud, &m);
    return drv_buf_appendf(
        out,
        "# HELP drover_requests_total Generation requests accepted.\n"
        "# TYPE drover_requests_total counter\n"
        "drover_requests_total %llu\n"
        "# HELP drover_prompt_tokens_total Prompt tokens processed.\n"
        "# TYPE drover_prompt_tokens_total counter\n"
        "drover_prompt_tokens_total %llu\n"
        "# HELP drover_tokens_predicted_total Tokens generated.\n"
        "# TYPE drover_tokens_predicted_total counter\n"
        "drover_tokens_predicted_total %llu\n"
        "# HELP drover_busy_slots Slots generating or processing a prompt.\n"
        "# TYPE drover_busy_slots gauge\n"
        "drover_busy_slots %d\n"
        "# HELP drover_queue_depth Requests waiting for a slot.\n"
        "# TYPE drover_queue_depth gauge\n"
        "drover_queue_depth %d\n"
        "# HELP drover_loaded_models Models loaded.\n"
        "# TYPE drover_loaded_models gauge\n"
        "drover_loaded_models %d\n",
        (unsigned long long)m.requests_total, (unsigned long long)m.prompt_tokens_total,
        (unsigned long long)m.generated_tokens_total, m.busy_slots, m.queued, m.loaded_models);
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int drv_cmd_serve(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("serve");
    enum {
        O_HOST = 256,
        O_PORT,
        O_PARALLEL,
        O_CTX,
        O_THREADS,
        O_MAXLOADED,
        O_MAXQUEUE,
        O_KEEPALIVE,
        O_LOG,
        O_MODELS,
        O_NO_OLLAMA
    };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"models", required_argument, NULL, O_MODELS},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"parallel", required_argument, NULL, O_PARALLEL},
        {"ctx", required_argument, NULL, O_CTX},
        {"threads", required_argument, NULL, O_THREADS},
        {"max-loaded", required_argument, NULL, O_MAXLOADED},
        {"max-queue", required_argument, NULL, O_MAXQUEUE},
        {"keep-alive", required_argument, NULL, O_KEEPALIVE},
        {"log-level", required_argument, NULL, O_LOG},
        {"no-ollama-store", no_argument, NULL, O_NO_OLLAMA},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct drv_engine_params ep = drv_engine_default_params();
    struct drv_http_params hp = drv_http_default_params();
    hp.host = "127.0.0.1";
    hp.port = 11435;
    const char *models[64];
    int n_models = 0;
    const char *dirs[16];
    int n_dirs = 0;
    bool ollama_store = true;
    enum drv_log_level lvl = DRV_LOG_INFO;
    long v;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (n_models == 64)
                return drv_cmd_bad_usage(self, "at most 64 --model options");
            models[n_models++] = optarg;
            break;
        case O_MODELS:
            if (n_dirs == 16)
                return drv_cmd_bad_usage(self, "at most 16 --models options");
            dirs[n_dirs++] = optarg;
            break;
        case O_HOST:
            hp.host = optarg;
            break;
        case O_PORT:
            if (!parse_int(optarg, 0, 65535, &v))
                return drv_cmd_bad_usage(self, "--port wants 0..65535, not '%s'", optarg);
            hp.port = (uint16_t)v;
            break;
        case O_PARALLEL:
            if (!parse_int(optarg, 1, 256, &v))
                return drv_cmd_bad_usage(self, "--parallel wants 1..256, not '%s'", optarg);
            ep.n_parallel = (int)v;
            break;
        case O_CTX:
            if (!parse_int(optarg, 0, 1 << 24, &v))
                return drv_cmd_bad_usage(self, "--ctx wants a token count, not '%s'", optarg);
            ep.n_ctx = (uint32_t)v;
            break;
        case O_THREADS:
            if (!parse_int(optarg, 0, 1024, &v))
                return drv_cmd_bad_usage(self, "--threads wants 0..1024, not '%s'", optarg);
            ep.n_threads = (int)v;
            break;
        case O_MAXLOADED:
            if (!parse_int(optarg, 1, 64, &v))
                return drv_cmd_bad_usage(self, "--max-loaded wants 1..64, not '%s'", optarg);
            ep.max_loaded = (int)v;
            break;
        case O_MAXQUEUE:
            if (!parse_int(optarg, 0, 100000, &v))
                return drv_cmd_bad_usage(self, "--max-queue wants 0..100000, not '%s'", optarg);
            ep.max_queue = (int)v;
            break;
        case O_KEEPALIVE: {
            struct drv_err kerr;
            drv_err_init(&kerr);
            int64_t ms;
            if (drv_api_parse_keep_alive(optarg, &ms, &kerr) != 0)
                return drv_cmd_bad_usage(self, "--keep-alive: %s", kerr.msg);
            ep.keep_alive_ms = ms;
            break;
        }
        case O_LOG:
            if (!drv_log_parse_level(optarg, &lvl))
                return drv_cmd_bad_usage(self, "--log-level wants debug|info|warn|error");
            break;
        case O_NO_OLLAMA:
            ollama_store = false;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_usage(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return drv_cmd_bad_usage(self, "unexpected argument '%s'", argv[optind]);
    drv_log_set_level(lvl);

    struct drv_err err;
    drv_err_init(&err);
    struct drv_engine *e = drv_engine_new(&ep, &err);
    if (e == NULL) {
        fprintf(stderr, "drover serve: %s\n", err.msg);
        return 1;
    }
    int status = 1;
    for (int i = 0; i < n_models; i++) {
        const char *base = strrchr(models[i], '/');
        char stem[256];
        drv_strlcpy(stem, base ? base + 1 : models[i], sizeof(stem));
        if (drv_str_has_suffix(stem, ".gguf"))
            stem[strlen(stem) - 5] = '\0';
        if (drv_engine_add_model(e, stem, models[i], &err) != 0) {
            fprintf(stderr, "drover serve: %s\n", err.msg);
            goto out;
        }
    }
    for (int i = 0; i < n_dirs; i++) {
        if (drv_engine_add_dir(e, dirs[i], &err) < 0) {
            fprintf(stderr, "drover serve: --models %s\n", err.msg);
            goto out;
        }
    }
    /* models already on this machine: drover's own folder and an Ollama store */
    char path[PATH_MAX];
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0])
        snprintf(path, sizeof(path), "%s/drover/models", xdg);
    else
        snprintf(path, sizeof(path), "%s/.local/share/drover/models", home ? home : "");
    if (is_dir(path)) {
        struct drv_err e2;
        drv_err_init(&e2);
        drv_engine_add_dir(e, path, &e2);
    }
    if (ollama_store) {
        const char *om = getenv("OLLAMA_MODELS");
        if (om && om[0])
            drv_strlcpy(path, om, sizeof(path));
        else
            snprintf(path, sizeof(path), "%s/.ollama/models", home ? home : "");
        if (is_dir(path)) {
            struct drv_err e2;
            drv_err_init(&e2);
            int n = drv_engine_add_ollama_store(e, path, &e2);
            if (n > 0)
                drv_log(DRV_LOG_INFO, "serving %d models from the Ollama store %s", n, path);
        }
    }

    /* signals are taken by sigwait below, never by a handler thread */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct drv_api_server *s =
        drv_api_server_new(drv_engine_backend(e), &hp, engine_metrics, e, &err);
    if (s == NULL) {
        fprintf(stderr, "drover serve: %s\n", err.msg);
        goto out;
    }
    struct drv_model_desc d[8];
    int n = drv_engine_backend(e)->ops->list_models(drv_engine_backend(e), d, 8);
    fprintf(stderr, "drover serve: listening on http://%s:%u with %d model%s%s%s%s\n", hp.host,
            drv_api_server_port(s), n, n == 1 ? "" : "s", n ? " (" : "", n ? d[0].name : "",
            n > 1 ? ", ...)"
            : n   ? ")"
                  : "");
    int sig;
    sigwait(&set, &sig);
    fprintf(stderr, "drover serve: stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    drv_api_server_free(s);
    status = 0;
out:
    drv_engine_free(e);
    return status;
}
