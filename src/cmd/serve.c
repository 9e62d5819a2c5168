#include "api/api.h"
#include "base/config.h"
#include "cmd/cmd.h"
#include "engine/engine.h"
#include "fleet/fleet.h"
#include "http/http.h"
#include "probe/probe.h"

#include <errno.h>
#include <jansson.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Prometheus text for /metrics: totals, then one series per model. */
static int engine_metrics(void *ud, struct drv_buf *out)
{
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"drover_requests_total", "counter", "Generation and embedding requests accepted."},
        {"drover_prompt_tokens_total", "counter", "Prompt tokens evaluated."},
        {"drover_tokens_predicted_total", "counter", "Tokens generated."},
        {"drover_busy_slots", "gauge", "Slots running a request."},
        {"drover_queue_depth", "gauge", "Requests waiting for a slot."},
        {"drover_model_loaded", "gauge", "1 when the model is loaded."},
        {"drover_model_loads_total", "counter", "Times the model was loaded."},
        {"drover_prompts_truncated_total", "counter",
         "Prompts cut to fit the context (requests with truncate)."},
    };
    struct drv_engine_metrics t;
    drv_engine_metrics(ud, &t);
    /* every registered model: count first (a model added meanwhile waits for the
     * next scrape) */
    int n = drv_engine_model_metrics(ud, NULL, 0);
    struct drv_engine_model_metrics *mm = calloc((size_t)(n > 0 ? n : 1), sizeof(*mm));
    if (mm == NULL)
        return DRV_ENOMEM;
    int got = drv_engine_model_metrics(ud, mm, n);
    n = got < n ? got : n;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < sizeof(series) / sizeof(series[0]); k++) {
        unsigned long long total[] = {t.requests_total,
                                      t.prompt_tokens_total,
                                      t.generated_tokens_total,
                                      (unsigned long long)t.busy_slots,
                                      (unsigned long long)t.queued,
                                      0,
                                      0,
                                      0};
        rc = drv_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help,
                             series[k].name, series[k].type);
        if (rc == 0 && k < 5)
            rc = drv_buf_appendf(out, "%s %llu\n", series[k].name, total[k]);
        for (int i = 0; rc == 0 && i < n; i++) {
            unsigned long long v[] = {mm[i].requests,
                                      mm[i].prompt_tokens,
                                      mm[i].generated_tokens,
                                      (unsigned long long)mm[i].busy_slots,
                                      (unsigned long long)mm[i].queued,
                                      mm[i].loaded,
                                      mm[i].loads,
                                      mm[i].truncated};
            rc = drv_buf_appendf(out, "%s{model=\"", series[k].name);
            if (rc == 0)
                rc = drv_buf_append_label(out, mm[i].name);
            if (rc == 0)
                rc = drv_buf_appendf(out, "\"} %llu\n", v[k]);
        }
    }
    if (rc == 0)
        rc = drv_buf_appendf(out,
                             "# HELP drover_loaded_models Models loaded.\n"
                             "# TYPE drover_loaded_models gauge\ndrover_loaded_models %d\n",
                             t.loaded_models);
    free(mm);
    return rc;
}

/* GET /api/drover/status: the settings the engine runs with, for `drover
 * doctor` and gateways. {"version", "llama_cpp" (release), "ggml", "threads"
 * (compute threads), "threads_from" ("setting" | "physical cores"),
 * "physical_cores", "parallel" (slots per model, 0 = as many as fit, at most
 * 4), "ctx" (tokens per slot, 0 = the model's, at most 4096), "kv_type",
 * "flash_attn", "gpu_layers" (-1 = as many as fit), "max_loaded", "max_queue",
 * "keep_alive_ms" (-1 = forever)}. Caller frees. */
static char *status_json(const struct drv_engine_params *ep, const char *kv_name)
{
    int cores = drv_physical_cores();
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:I, s:s, s:b, s:i, s:i, s:i, s:I}",
                  "version", DROVER_VERSION, "llama_cpp", DROVER_LLAMA_RELEASE, "ggml",
                  drv_ggml_version(), "threads", ep->n_threads > 0 ? ep->n_threads : cores,
                  "threads_from", ep->n_threads > 0 ? "setting" : "physical cores",
                  "physical_cores", cores, "parallel", ep->n_parallel, "ctx", (json_int_t)ep->n_ctx,
                  "kv_type", kv_name, "flash_attn", strcmp(kv_name, "f16") != 0, "gpu_layers",
                  ep->n_gpu_layers, "max_loaded", ep->max_loaded, "max_queue", ep->max_queue,
                  "keep_alive_ms", (json_int_t)(ep->keep_alive_ms < 0 ? -1 : ep->keep_alive_ms));
    char *j = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return j;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Settings of `drover serve`, from drover.conf's [serve] section and then the
 * command line (which wins). */
struct serve_opts {
    struct drv_engine_params ep;
    struct drv_http_params hp;
    const char *models[64];
    int n_models;
    const char *dirs[16];
    int n_dirs;
    bool ollama_store;
    enum drv_log_level lvl;
    const char *config;
    const char *kv_name; /* as given ("f16" when not) */
};

/* A gateway's /metrics: the local engine's series, then the fleet's. */
struct gw_metrics {
    struct drv_engine *e;
    struct drv_fleet *f;
};

static int gateway_metrics(void *ud, struct drv_buf *out)
{
    struct gw_metrics *g = ud;
    int rc = engine_metrics(g->e, out);
    return rc || g->f == NULL ? rc : drv_fleet_metrics(g->f, out);
}

static bool is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0;
}

/* Applies one setting; name is the long option / config key ("max-loaded" or
 * "max_loaded"). Returns NULL or a message for bad usage (static storage). */
static const char *serve_set(struct serve_opts *o, const char *name, const char *val)
{
    static char msg[256];
    char key[32];
    drv_strlcpy(key, name, sizeof(key));
    for (char *p = key; *p; p++)
        if (*p == '_')
            *p = '-';
    long v;
    struct {
        const char *key;
        long lo, hi;
    } ints[] = {{"port", 0, 65535},   {"parallel", 1, 256},  {"ctx", 0, 1 << 24},
                {"threads", 0, 1024}, {"max-loaded", 1, 64}, {"max-queue", 0, 100000}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (strcmp(key, ints[i].key) != 0)
            continue;
        if (!drv_cmd_parse_long(val, ints[i].lo, ints[i].hi, &v)) {
            snprintf(msg, sizeof(msg), "%s wants %ld..%ld, not '%s'", key, ints[i].lo, ints[i].hi,
                     val);
            return msg;
        }
        if (i == 0)
            o->hp.port = (uint16_t)v;
        else if (i == 1)
            o->ep.n_parallel = (int)v;
        else if (i == 2)
            o->ep.n_ctx = (uint32_t)v;
        else if (i == 3)
            o->ep.n_threads = (int)v;
        else if (i == 4)
            o->ep.max_loaded = (int)v;
        else
            o->ep.max_queue = (int)v;
        return NULL;
    }
    if (strcmp(key, "host") == 0) {
        o->hp.host = val;
    } else if (strcmp(key, "model") == 0) {
        if (o->n_models == 64)
            return "at most 64 models";
        o->models[o->n_models++] = val;
    } else if (strcmp(key, "models") == 0) {
        if (o->n_dirs == 16)
            return "at most 16 model folders";
        o->dirs[o->n_dirs++] = val;
    } else if (strcmp(key, "keep-alive") == 0) {
        struct drv_err kerr;
        drv_err_init(&kerr);
        int64_t ms;
        if (drv_api_parse_keep_alive(val, &ms, &kerr) != 0) {
            return snprintf(msg, sizeof(msg), "keep-alive: %s", kerr.msg) < 0 ? "bad keep-alive"
                                                                              : msg;
        }
        o->ep.keep_alive_ms = ms;
    } else if (strcmp(key, "kv-type") == 0) {
        if (!drv_engine_parse_kv_type(val, &o->ep.kv_type))
            return "kv-type wants f16|q8_0|q4_0";
        o->kv_name = val;
    } else if (strcmp(key, "gpu-layers") == 0) {
        if (!drv_cmd_parse_long(val, -1, 100000, &v))
            return "gpu-layers wants -1 (as many as fit) or a layer count";
        o->ep.n_gpu_layers = (int)v;
    } else if (strcmp(key, "log-level") == 0) {
        if (!drv_log_parse_level(val, &o->lvl))
            return "log-level wants debug|info|warn|error";
    } else if (strcmp(key, "ollama-store") == 0) {
        o->ollama_store =
            strcmp(val, "no") != 0 && strcmp(val, "false") != 0 && strcmp(val, "0") != 0;
    } else {
        snprintf(msg, sizeof(msg), "unknown setting '%s'", name);
        return msg;
    }
    return NULL;
}

int drv_cmd_serve(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("serve");
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"models", required_argument, NULL, 0},
        {"host", required_argument, NULL, 0},
        {"port", required_argument, NULL, 0},
        {"parallel", required_argument, NULL, 0},
        {"ctx", required_argument, NULL, 0},
        {"threads", required_argument, NULL, 0},
        {"max-loaded", required_argument, NULL, 0},
        {"max-queue", required_argument, NULL, 0},
        {"keep-alive", required_argument, NULL, 0},
        {"log-level", required_argument, NULL, 0},
        {"kv-type", required_argument, NULL, 0},
        {"gpu-layers", required_argument, NULL, 0},
        {"no-ollama-store", no_argument, NULL, 'O'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct serve_opts o = {.ep = drv_engine_default_params(),
                           .hp = drv_http_default_params(),
                           .ollama_store = true,
                           .lvl = DRV_LOG_INFO,
                           .kv_name = "f16"};
    o.hp.host = "127.0.0.1";
    o.hp.port = 11435;
    o.hp.max_body_bytes = 16u << 20; /* long chats with images fit; more is refused (413) */

    /* first pass: --help and --config, so the file's settings come first */
    int c, idx;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+m:h", opts, &idx)) != -1) {
        if (c == 'h') {
            drv_cmd_usage(self, stdout);
            return 0;
        }
        if (c == 'c')
            o.config = optarg;
        if (c == '?')
            return drv_cmd_bad_option(self, opts, "+m:h", argv);
    }
    if (optind != argc)
        return drv_cmd_bad_usage(self, "unexpected argument '%s'", argv[optind]);
    char path[512];
    struct drv_config *cfg = NULL;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_config_load_for_command(o.config, &cfg, path, sizeof(path), &err) != 0) {
        fprintf(stderr, "drover serve: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; cfg && i < cfg->n; i++) {
        const struct drv_config_entry *e = &cfg->entries[i];
        if (strcmp(e->section, "serve") != 0)
            continue;
        const char *bad = serve_set(&o, e->key, e->value);
        if (bad) {
            fprintf(stderr, "drover serve: %s: [serve] %s\n", path, bad);
            drv_config_free(cfg);
            return 1;
        }
    }
    /* second pass: the command line wins */
    optind = 1;
    while ((c = getopt_long(argc, argv, "+m:h", opts, &idx)) != -1) {
        const char *bad = NULL;
        if (c == 'm')
            bad = serve_set(&o, "model", optarg);
        else if (c == 'O')
            o.ollama_store = false;
        else if (c == 0)
            bad = serve_set(&o, opts[idx].name, optarg);
        if (bad) {
            drv_config_free(cfg);
            return drv_cmd_bad_usage(self, "--%s", bad);
        }
    }
    enum drv_log_level lvl = o.lvl;
    struct drv_engine_params ep = o.ep;
    struct drv_http_params hp = o.hp;
    const char **models = o.models;
    int n_models = o.n_models;
    const char **dirs = o.dirs;
    int n_dirs = o.n_dirs;
    bool ollama_store = o.ollama_store;
    drv_log_set_level(lvl);

    /* [node ...] sections make this a gateway */
    struct drv_fleet_params fp;
    if (drv_fleet_params_from_config(cfg, &fp, &err) != 0) {
        fprintf(stderr, "drover serve: %s: %s\n", path, err.msg);
        drv_fleet_params_release(&fp);
        drv_config_free(cfg);
        return 1;
    }
    bool gateway = fp.n_nodes > 0;
    if (gateway && fp.n_keys == 0 && !is_loopback(hp.host)) {
        drv_log(DRV_LOG_WARN,
                "no API keys configured ([fleet] api_key): the gateway listens on 127.0.0.1 "
                "only, not %s",
                hp.host);
        hp.host = "127.0.0.1";
    }

    /* SIGINT/SIGTERM are taken by sigwait at the end, never by another thread:
     * blocked before any thread (llama.cpp's included) exists, so all inherit it */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct drv_engine *e = drv_engine_new(&ep, &err);
    if (e == NULL) {
        fprintf(stderr, "drover serve: %s\n", err.msg);
        drv_fleet_params_release(&fp);
        drv_config_free(cfg);
        return 1;
    }
    int status = 1;
    struct drv_fleet *fleet = NULL;
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
    char dpath[PATH_MAX];
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0])
        snprintf(dpath, sizeof(dpath), "%s/drover/models", xdg);
    else
        snprintf(dpath, sizeof(dpath), "%s/.local/share/drover/models", home ? home : "");
    if (is_dir(dpath)) {
        struct drv_err e2;
        drv_err_init(&e2);
        drv_engine_add_dir(e, dpath, &e2);
    }
    if (ollama_store) {
        const char *om = getenv("OLLAMA_MODELS");
        if (om && om[0])
            drv_strlcpy(dpath, om, sizeof(dpath));
        else
            snprintf(dpath, sizeof(dpath), "%s/.ollama/models", home ? home : "");
        if (is_dir(dpath)) {
            struct drv_err e2;
            drv_err_init(&e2);
            int n = drv_engine_add_ollama_store(e, dpath, &e2);
            if (n > 0)
                drv_log(DRV_LOG_INFO, "serving %d models from the Ollama store %s", n, dpath);
        }
    }

    /* [alias NAME] model = TARGET: another name for a registered model */
    for (size_t i = 0; cfg && i < cfg->n; i++) {
        const struct drv_config_entry *ce = &cfg->entries[i];
        if (strcmp(ce->section, "alias") != 0 || strcmp(ce->key, "model") != 0)
            continue;
        if (drv_engine_add_alias(e, ce->name, ce->value, &err) != 0) {
            if (gateway) { /* the alias may name a model of another node */
                drv_log(DRV_LOG_DEBUG, "alias %s: not a local model (%s)", ce->name, err.msg);
                continue;
            }
            fprintf(stderr, "drover serve: %s: %s\n", path, err.msg);
            goto out;
        }
    }

    struct gw_metrics gm = {.e = e};
    if (gateway) {
        fleet = drv_fleet_new(&fp, fp.local ? drv_engine_backend(e) : NULL, &err);
        if (fleet == NULL) {
            fprintf(stderr, "drover serve: %s\n", err.msg);
            goto out;
        }
        gm.f = fleet;
    }
    struct drv_backend *backend = gateway ? drv_fleet_backend(fleet) : drv_engine_backend(e);
    struct drv_api_server *s = drv_api_server_new(backend, &hp, gateway_metrics, &gm, &err);
    if (s == NULL) {
        fprintf(stderr, "drover serve: %s\n", err.msg);
        goto out;
    }
    if (fp.n_keys) {
        drv_api_server_set_keys(s, (const char *const *)fp.keys, (size_t)fp.n_keys);
        drv_log(DRV_LOG_INFO, "clients need one of %d API key%s (Authorization: Bearer)", fp.n_keys,
                fp.n_keys == 1 ? "" : "s");
    }
    if (gateway)
        drv_api_server_set_nodes(s, drv_fleet_nodes_json, fleet);
    /* this machine, for whoever asks (bench, a gateway, doctor): no bandwidth
     * measurement at startup, it would take a second and disturb running work */
    struct drv_probe_params pp = drv_probe_default_params();
    pp.bandwidth_seconds = 0;
    struct drv_hw *hw = calloc(1, sizeof(*hw));
    struct drv_err herr;
    drv_err_init(&herr);
    if (hw && drv_probe_run(&pp, hw, &herr) == 0) {
        char *j = drv_probe_profile_dump(hw);
        if (j)
            drv_api_server_set_hw(s, j);
        free(j);
    }
    free(hw);
    char *st = status_json(&ep, o.kv_name);
    if (st)
        drv_api_server_set_status(s, st);
    free(st);
    struct drv_model_desc d[8];
    int n = backend->ops->list_models(backend, d, 8);
    fprintf(stderr, "drover serve: listening on http://%s:%u with %d model%s%s%s%s%s\n", hp.host,
            drv_api_server_port(s), n, n == 1 ? "" : "s", n ? " (" : "", n ? d[0].name : "",
            n > 1 ? ", ...)"
            : n   ? ")"
                  : "",
            gateway ? " as a gateway" : "");
    int sig;
    sigwait(&set, &sig);
    fprintf(stderr, "drover serve: stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    drv_api_server_free(s);
    status = 0;
out:
    drv_fleet_free(fleet);
    drv_engine_free(e);
    drv_fleet_params_release(&fp);
    drv_config_free(cfg);
    return status;
}
