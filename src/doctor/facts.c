/* facts: what each node reports, learned over HTTP, plus two short probes and
 * the node's bench baseline. Nothing here judges; checks.c does. */
#include "doctor/doctor.h"
#include "http/http.h"
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONNECT_MS     3000
#define SMALL_REQ_MS   10000 /* one listing or status request */
#define MAX_BODY       (8u << 20)
#define PROBE_WORDS    48 /* words of the speed probe's prompt */
#define MIN_GEN_TOKENS 4  /* fewer generated tokens tell nothing about speed */

struct drv_doctor_params drv_doctor_default_params(void)
{
    return (struct drv_doctor_params){
        .node_seconds = 60,
        .probes = true,
        .model = NULL,
        .think_budget = 64,
        .speed_reps = 3,
        .speed_tokens = 32,
        .db = NULL,
        .bandwidth_seconds = 0.3,
    };
}

/* snprintf for messages: a long URL or upstream text is cut, and that is fine */
static void say(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* ---- small JSON helpers ---- */

static json_t *load_object(const char *body, size_t len, const char *what, struct drv_err *err)
{
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        drv_err_set(err, DRV_EFORMAT, "%s: not a JSON object", what);
        return NULL;
    }
    return j;
}

static void copy_str(char *dst, size_t size, json_t *v)
{
    const char *s = json_string_value(v);
    if (s)
        drv_strlcpy(dst, s, size);
}

static int64_t int_or(json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* a number a node sends may be anything: only in-range values convert */
        return d >= -9.2e18 && d <= 9.2e18 ? (int64_t)d : dflt;
    }
    return dflt;
}

/* a size or count a node sends: 0 when absent or negative */
static uint64_t size_or0(json_t *o, const char *key)
{
    int64_t v = int_or(o, key, 0);
    return v > 0 ? (uint64_t)v : 0;
}

/* ---- model_info as drv_hparams_read looks keys up ---- */

/* An integer or a bool as GGUF holds it: negatives are 0, bools 0 and 1. */
static bool json_int_value(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        *out = x < 0 ? 0 : (uint64_t)x;
        return true;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    return false;
}

static bool info_ints(const void *ud, const char *key, uint64_t *out, size_t cap, size_t *n,
                      bool *is_arr)
{
    json_t *v = json_object_get(ud, key);
    uint64_t x;
    *is_arr = json_is_array(v);
    if (!*is_arr) {
        if (!json_int_value(v, &x))
            return false;
        if (cap)
            out[0] = x;
        *n = 1;
        return true;
    }
    /* an array of anything but integers is not one GGUF would hold */
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_int_value(e, &x))
            return false;
        if (i < cap)
            out[i] = x;
    }
    *n = json_array_size(v);
    return *n > 0;
}

static bool info_real(const void *ud, const char *key, double *out)
{
    json_t *v = json_object_get(ud, key);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static bool info_str(const void *ud, const char *key, char *out, size_t size)
{
    const char *s = json_string_value(json_object_get(ud, key));
    if (s == NULL)
        return false;
    drv_strlcpy(out, s, size);
    return true;
}

/* an elided array is null (or [] from older Ollama): absent either way */
static bool info_arr_n(const void *ud, const char *key, size_t *n)
{
    json_t *v = json_object_get(ud, key);
    *n = json_array_size(v);
    return *n > 0;
}

/* ---- parsers ---- */

int drv_doctor_parse_status(struct drv_doctor_node *n, const char *body, size_t len,
                            struct drv_err *err)
{
    json_t *j = load_object(body, len, "GET /api/drover/status", err);
    if (j == NULL)
        return DRV_EFORMAT;
    struct drv_doctor_status *s = &n->status;
    memset(s, 0, sizeof(*s));
    copy_str(s->version, sizeof(s->version), json_object_get(j, "version"));
    copy_str(s->llama, sizeof(s->llama), json_object_get(j, "llama_cpp"));
    s->threads = (int)int_or(j, "threads", 0);
    const char *from = json_string_value(json_object_get(j, "threads_from"));
    s->threads_set = from && strcmp(from, "setting") == 0;
    s->physical_cores = (int)int_or(j, "physical_cores", 0);
    s->parallel = (int)int_or(j, "parallel", 0);
    s->ctx = (uint32_t)int_or(j, "ctx", 0);
    drv_strlcpy(s->kv_type, "f16", sizeof(s->kv_type));
    copy_str(s->kv_type, sizeof(s->kv_type), json_object_get(j, "kv_type"));
    s->flash_attn = json_is_true(json_object_get(j, "flash_attn"));
    s->gpu_layers = (int)int_or(j, "gpu_layers", -1);
    s->max_loaded = (int)int_or(j, "max_loaded", 0);
    s->keep_alive_ms = int_or(j, "keep_alive_ms", 0);
    json_decref(j);
    n->have_status = true;
    if (n->version[0] == '\0')
        drv_strlcpy(n->version, s->version, sizeof(n->version));
    return 0;
}

int drv_doctor_parse_ps(struct drv_doctor_node *n, const char *body, size_t len,
                        struct drv_err *err)
{
    json_t *j = load_object(body, len, "GET /api/ps", err);
    if (j == NULL)
        return DRV_EFORMAT;
    json_t *arr = json_object_get(j, "models");
    if (!json_is_array(arr)) {
        json_decref(j);
        return drv_err_set(err, DRV_EFORMAT, "GET /api/ps: no \"models\" array");
    }
    n->n_models = 0;
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (n->n_models == DRV_DOCTOR_MAX_MODELS)
            break;
        struct drv_doctor_model *d = &n->models[n->n_models];
        memset(d, 0, sizeof(*d));
        d->num_gpu = -1;
        const char *where = json_string_value(json_object_get(m, "drover_node"));
        if (n->gateway && where && strcmp(where, "local") != 0)
            continue; /* another node's model: that node is asked itself */
        copy_str(d->name, sizeof(d->name), json_object_get(m, "name"));
        if (d->name[0] == '\0')
            copy_str(d->name, sizeof(d->name), json_object_get(m, "model"));
        if (d->name[0] == '\0')
            continue;
        d->size = size_or0(m, "size");
        d->size_vram = size_or0(m, "size_vram");
        int64_t v = int_or(m, "context_length", 0);
        d->context_length = v > 0 && v < UINT32_MAX ? (uint32_t)v : 0;
        copy_str(d->quant, sizeof(d->quant),
                 json_object_get(json_object_get(m, "details"), "quantization_level"));
        n->n_models++;
    }
    json_decref(j);
    n->have_ps = true;
    return 0;
}

int drv_doctor_parse_tags(struct drv_doctor_node *n, const char *body, size_t len,
                          struct drv_err *err)
{
    json_t *j = load_object(body, len, "GET /api/tags", err);
    if (j == NULL)
        return DRV_EFORMAT;
    json_t *arr = json_object_get(j, "models");
    if (!json_is_array(arr)) {
        json_decref(j);
        return drv_err_set(err, DRV_EFORMAT, "GET /api/tags: no \"models\" array");
    }
    n->n_available = (int)json_array_size(arr);
    copy_str(n->first_model, sizeof(n->first_model),
             json_object_get(json_array_get(arr, 0), "name"));
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        for (int k = 0; name && k < n->n_models; k++) {
            struct drv_doctor_model *d = &n->models[k];
            if (strcmp(d->name, name) != 0)
                continue;
            d->file_size = size_or0(m, "size");
            if (d->quant[0] == '\0')
                copy_str(d->quant, sizeof(d->quant),
                         json_object_get(json_object_get(m, "details"), "quantization_level"));
        }
    }
    json_decref(j);
    return 0;
}

/* An Ollama Modelfile parameter ("num_thread                     12") from the
 * "parameters" text; dflt when it is not there. */
static int modelfile_param(const char *params, const char *name, int dflt)
{
    size_t nl = strlen(name);
    for (const char *p = params; p && *p;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '\t'))
            return atoi(p + nl);
        p = strchr(p, '\n');
    }
    return dflt;
}

int drv_doctor_parse_show(struct drv_doctor_model *m, const char *body, size_t len,
                          struct drv_err *err)
{
    json_t *j = load_object(body, len, "POST /api/show", err);
    if (j == NULL)
        return DRV_EFORMAT;
    json_t *info = json_object_get(j, "model_info");
    copy_str(m->arch, sizeof(m->arch), json_object_get(info, "general.architecture"));
    m->n_params = size_or0(info, "general.parameter_count");
    struct drv_meta_src src = {
        .ud = info, .ints = info_ints, .real = info_real, .str = info_str, .arr_n = info_arr_n};
    drv_hparams_read(&src, m->arch, &m->hp);
    const char *params = json_string_value(json_object_get(j, "parameters"));
    m->num_thread = modelfile_param(params, "num_thread", 0);
    m->num_gpu = modelfile_param(params, "num_gpu", -1);
    json_t *caps = json_object_get(j, "capabilities");
    size_t i;
    json_t *c;
    json_array_foreach(caps, i, c)
    {
        if (json_is_string(c) && strcmp(json_string_value(c), "thinking") == 0)
            m->thinking = true;
    }
    if (m->quant[0] == '\0')
        copy_str(m->quant, sizeof(m->quant),
                 json_object_get(json_object_get(j, "details"), "quantization_level"));
    m->have_show = true;
    json_decref(j);
    return 0;
}

int drv_doctor_parse_props(struct drv_doctor_node *n, const char *body, size_t len,
                           struct drv_err *err)
{
    json_t *j = load_object(body, len, "GET /props", err);
    if (j == NULL)
        return DRV_EFORMAT;
    struct drv_doctor_props *p = &n->props;
    memset(p, 0, sizeof(*p));
    p->n_ctx = (uint32_t)int_or(json_object_get(j, "default_generation_settings"), "n_ctx", 0);
    p->total_slots = (int)int_or(j, "total_slots", 0);
    copy_str(p->build_info, sizeof(p->build_info), json_object_get(j, "build_info"));
    copy_str(p->model_path, sizeof(p->model_path), json_object_get(j, "model_path"));
    json_decref(j);
    n->have_props = true;
    if (p->build_info[0])
        drv_strlcpy(n->version, p->build_info, sizeof(n->version));
    return 0;
}

int drv_doctor_parse_models(struct drv_doctor_node *n, const char *body, size_t len,
                            struct drv_err *err)
{
    json_t *j = load_object(body, len, "GET /v1/models", err);
    if (j == NULL)
        return DRV_EFORMAT;
    json_t *arr = json_object_get(j, "data");
    if (!json_is_array(arr)) {
        json_decref(j);
        return drv_err_set(err, DRV_EFORMAT, "GET /v1/models: no \"data\" array");
    }
    n->n_available = (int)json_array_size(arr);
    json_t *first = json_array_get(arr, 0);
    copy_str(n->first_model, sizeof(n->first_model), json_object_get(first, "id"));
    json_t *meta = json_object_get(first, "meta");
    if (json_is_object(meta) && n->first_model[0] && n->n_models == 0) {
        /* llama-server: the model it loaded at start */
        struct drv_doctor_model *d = &n->models[n->n_models++];
        memset(d, 0, sizeof(*d));
        d->num_gpu = -1;
        drv_strlcpy(d->name, n->first_model, sizeof(d->name));
        d->file_size = size_or0(meta, "size");
        d->n_params = size_or0(meta, "n_params");
        d->hp.n_embd = (uint32_t)int_or(meta, "n_embd", 0);
        d->hp.n_ctx_train = (uint32_t)int_or(meta, "n_ctx_train", 0);
        d->context_length = (uint32_t)int_or(meta, "n_ctx", 0);
        d->hp.n_vocab = (uint32_t)int_or(meta, "n_vocab", 0);
    }
    json_decref(j);
    return 0;
}

int drv_doctor_parse_chat(struct drv_doctor_think *t, bool openai, bool off, const char *body,
                          size_t len, struct drv_err *err)
{
    json_t *j =
        load_object(body, len, openai ? "POST /v1/chat/completions" : "POST /api/chat", err);
    if (j == NULL)
        return DRV_EFORMAT;
    json_t *msg, *reason;
    int eval = -1;
    if (openai) {
        json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
        msg = json_object_get(ch, "message");
        reason = json_object_get(ch, "finish_reason");
        eval = (int)int_or(json_object_get(j, "usage"), "completion_tokens", -1);
    } else {
        msg = json_object_get(j, "message");
        reason = json_object_get(j, "done_reason");
        eval = (int)int_or(j, "eval_count", -1);
    }
    if (!json_is_object(msg)) {
        json_decref(j);
        return drv_err_set(err, DRV_EFORMAT, "%s: no message in the answer",
                           openai ? "POST /v1/chat/completions" : "POST /api/chat");
    }
    const char *content = json_string_value(json_object_get(msg, "content"));
    const char *thinking =
        json_string_value(json_object_get(msg, openai ? "reasoning_content" : "thinking"));
    /* blanks alone are no answer */
    int clen = 0;
    for (const char *p = content; p && *p; p++)
        clen += *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r';
    clen = clen ? (int)strlen(content) : 0;
    if (off) {
        t->off_state = 1;
        t->off_content_len = clen;
        copy_str(t->off_done_reason, sizeof(t->off_done_reason), reason);
    } else {
        t->state = 1;
        t->content_len = clen;
        t->thinking_len = thinking ? (int)strlen(thinking) : 0;
        t->eval_count = eval;
        copy_str(t->done_reason, sizeof(t->done_reason), reason);
    }
    json_decref(j);
    return 0;
}

/* ---- where a URL points ---- */

/* The host of url, without port or brackets. */
static void url_host(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *at = strchr(p, '@'), *slash = strchr(p, '/');
    if (at && (!slash || at < slash))
        p = at + 1;
    size_t n = 0;
    if (*p == '[') {
        p++;
        while (p[n] && p[n] != ']')
            n++;
    } else {
        while (p[n] && p[n] != ':' && p[n] != '/')
            n++;
    }
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

bool drv_doctor_url_is_local(const char *url)
{
    char host[256], me[256];
    url_host(url, host, sizeof(host));
    if (strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
        strcmp(host, "::1") == 0 || strcmp(host, "0.0.0.0") == 0)
        return true;
    return gethostname(me, sizeof(me)) == 0 && strcasecmp(host, me) == 0;
}

/* ---- asking one node ---- */

struct conn {
    struct drv_doctor_node *n;
    const struct drv_doctor_params *p;
    uint64_t deadline_ns;
};

/* method path on the node; resp gets the answer. A request past the node's
 * time limit is not made (DRV_EIO, timed_out set). */
static int ask(struct conn *c, const char *method, const char *path, const char *body, long cap_ms,
               struct drv_http_response *resp, struct drv_err *err)
{
    uint64_t now = drv_now_ns();
    if (now >= c->deadline_ns) {
        c->n->timed_out = true;
        return drv_err_set(err, DRV_EIO, "the node's time limit (%.0f s) ran out",
                           c->p->node_seconds);
    }
    long left = (long)((c->deadline_ns - now) / 1000000);
    char url[512];
    snprintf(url, sizeof(url), "%s%s", c->n->url, path);
    struct drv_http_request rq = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .connect_timeout_ms = CONNECT_MS,
        .timeout_ms = left < cap_ms ? (left > 0 ? left : 1) : cap_ms,
        .max_body_bytes = MAX_BODY,
        .bearer = c->n->api_key[0] ? c->n->api_key : NULL,
    };
    int rc = drv_http_fetch(&rq, resp, err);
    if (rc == DRV_EUPSTREAM && drv_now_ns() >= c->deadline_ns)
        c->n->timed_out = true;
    return rc;
}

typedef int (*parse_fn)(struct drv_doctor_node *, const char *, size_t, struct drv_err *);

/* GET path and hand a 200 answer to parse. Returns the HTTP status (0 when no
 * answer came). */
static long get_parse(struct conn *c, const char *path, parse_fn parse)
{
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err e;
    drv_err_init(&e);
    long status = 0;
    if (ask(c, "GET", path, NULL, SMALL_REQ_MS, &r, &e) == 0) {
        status = r.status;
        if (status == 200 && parse) {
            drv_err_init(&e);
            if (parse(c->n, r.body.data, r.body.len, &e) != 0)
                status = -1;
        }
    }
    drv_http_response_release(&r);
    return status;
}

static int parse_version(struct drv_doctor_node *n, const char *body, size_t len,
                         struct drv_err *err)
{
    json_t *j = load_object(body, len, "GET /api/version", err);
    if (j == NULL)
        return DRV_EFORMAT;
    const char *v = json_string_value(json_object_get(j, "version"));
    if (v)
        drv_strlcpy(n->version, v, sizeof(n->version));
    json_decref(j);
    return v ? 0 : drv_err_set(err, DRV_EFORMAT, "GET /api/version: no version");
}

static int parse_hw(struct drv_doctor_node *n, const char *body, size_t len, struct drv_err *err)
{
    if (drv_probe_profile_parse(body, len, &n->hw, err) != 0)
        return DRV_EFORMAT;
    n->have_hw = true;
    drv_strlcpy(n->hw_from, "GET /api/drover/hw", sizeof(n->hw_from));
    n->hw_after_load = false; /* drover serve probes its machine before any load */
    return 0;
}

static struct drv_doctor_counts *counts_of(struct drv_doctor_node *n, const char *model)
{
    for (int i = 0; i < n->n_counts; i++)
        if (strcmp(n->counts[i].model, model) == 0)
            return &n->counts[i];
    if (n->n_counts == DRV_DOCTOR_MAX_MODELS)
        return NULL;
    struct drv_doctor_counts *c = &n->counts[n->n_counts++];
    memset(c, 0, sizeof(*c));
    drv_strlcpy(c->model, model, sizeof(c->model));
    return c;
}

int drv_doctor_parse_metrics(struct drv_doctor_node *n, const char *body, size_t len,
                             struct drv_err *err)
{
    if (body == NULL || memmem(body, len, "drover_", 7) == NULL)
        return drv_err_set(err, DRV_EFORMAT, "not drover's /metrics");
    static const char *const names[] = {"drover_requests_total{model=\"",
                                        "drover_model_loads_total{model=\"",
                                        "drover_prompts_truncated_total{model=\""};
    n->n_counts = 0;
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
        for (int k = 0; k < 3; k++) {
            size_t nl = strlen(names[k]);
            if (ll <= nl || memcmp(p, names[k], nl) != 0)
                continue;
            const char *m = p + nl, *q = memchr(m, '"', ll - nl);
            if (q == NULL || (size_t)(q - m) >= 128 || q + 2 >= p + ll || q[1] != '}')
                break;
            char model[128], num[32];
            memcpy(model, m, (size_t)(q - m));
            model[q - m] = '\0';
            size_t vl = (size_t)(p + ll - (q + 2));
            if (vl >= sizeof(num))
                break;
            memcpy(num, q + 2, vl);
            num[vl] = '\0';
            struct drv_doctor_counts *c = counts_of(n, model);
            if (c == NULL)
                break;
            uint64_t v = strtoull(num, NULL, 10);
            if (k == 0)
                c->requests = v;
            else if (k == 1)
                c->loads = v;
            else
                c->truncated = v;
            break;
        }
        p = eol ? eol + 1 : end;
    }
    n->have_metrics = true;
    return 0;
}

static int parse_drover_metrics(struct drv_doctor_node *n, const char *body, size_t len,
                                struct drv_err *err)
{
    return drv_doctor_parse_metrics(n, body, len, err);
}

/* Is the node there at all, and which kind is it? Leaves reachable, kind,
 * version and error. */
static void detect(struct conn *c)
{
    struct drv_doctor_node *n = c->n;
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err e;
    drv_err_init(&e);
    const char *first = n->kind == DRV_BENCH_KIND_LLAMA_SERVER || n->kind == DRV_BENCH_KIND_OPENAI
                            ? "/v1/models"
                            : "/api/version";
    int rc = ask(c, "GET", first, NULL, SMALL_REQ_MS, &r, &e);
    long status = r.status;
    bool version_ok = false;
    if (rc == 0 && status == 200 && strcmp(first, "/api/version") == 0) {
        struct drv_err pe;
        drv_err_init(&pe);
        version_ok = parse_version(n, r.body.data, r.body.len, &pe) == 0;
    }
    drv_http_response_release(&r);
    if (rc != 0) {
        /* the client's message starts with the URL; say it once */
        const char *why = strstr(e.msg, "://") ? strstr(strstr(e.msg, "://"), ": ") : NULL;
        say(n->error, sizeof(n->error), "GET %s%s: %s", n->url, first, why ? why + 2 : e.msg);
        return;
    }
    n->reachable = true;
    if (status == 401 || status == 403) {
        say(n->error, sizeof(n->error), "GET %s%s: HTTP %ld (%s)", n->url, first, status,
            n->api_key[0] ? "the API key was refused" : "it wants an API key");
        n->kind = DRV_BENCH_KIND_AUTO;
        return;
    }
    if (version_ok) {
        if (n->kind == DRV_BENCH_KIND_OLLAMA)
            return;
        /* drover answers /api/version like Ollama; its own routes tell them apart */
        if (get_parse(c, "/api/drover/status", drv_doctor_parse_status) == 200 ||
            get_parse(c, "/api/drover/hw", parse_hw) == 200 ||
            get_parse(c, "/metrics", parse_drover_metrics) == 200)
            n->kind = DRV_BENCH_KIND_DROVER;
        else /* whatever the config says: the reachable check tells the difference */
            n->kind = DRV_BENCH_KIND_OLLAMA;
        return;
    }
    if (get_parse(c, "/props", drv_doctor_parse_props) == 200 && n->have_props) {
        n->kind = DRV_BENCH_KIND_LLAMA_SERVER;
        return;
    }
    if (get_parse(c, "/v1/models", drv_doctor_parse_models) == 200 && n->n_available >= 0) {
        n->kind = DRV_BENCH_KIND_OPENAI;
        return;
    }
    say(n->error, sizeof(n->error),
        "%s answers HTTP but none of /api/version, /props, /v1/models like drover, Ollama, "
        "llama-server or an OpenAI-compatible server",
        n->url);
    n->kind = DRV_BENCH_KIND_AUTO;
}

/* POST /api/show for each loaded model. */
static void show_models(struct conn *c)
{
    struct drv_doctor_node *n = c->n;
    for (int i = 0; i < n->n_models; i++) {
        json_t *o = json_pack("{s:s}", "model", n->models[i].name);
        char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (body == NULL)
            continue;
        struct drv_http_response r;
        drv_http_response_init(&r);
        struct drv_err e;
        drv_err_init(&e);
        if (ask(c, "POST", "/api/show", body, SMALL_REQ_MS, &r, &e) == 0 && r.status == 200)
            drv_doctor_parse_show(&n->models[i], r.body.data, r.body.len, &e);
        drv_http_response_release(&r);
        free(body);
    }
}

/* The model the probes use: the one asked for, the loaded one, or the only one. */
static bool probe_model(struct drv_doctor_node *n, const char *want, char *out, size_t size,
                        char *why, size_t why_size)
{
    if (want && want[0]) {
        drv_strlcpy(out, want, size);
        return true;
    }
    if (n->n_models > 0) {
        drv_strlcpy(out, n->models[0].name, size);
        return true;
    }
    if (n->n_available == 1 && n->first_model[0]) {
        drv_strlcpy(out, n->first_model, size);
        return true;
    }
    if (n->n_available == 0)
        say(why, why_size, "the node has no model to probe");
    else
        say(why, why_size,
            "the node has %d models and none is loaded: name one with --model to probe it",
            n->n_available);
    return false;
}

static bool ollama_wire(const struct drv_doctor_node *n)
{
    return n->kind == DRV_BENCH_KIND_DROVER || n->kind == DRV_BENCH_KIND_OLLAMA;
}

/* One raw generation of `tokens` tokens; its tok/s into *tps (source: server
 * timings or our clock). Returns 0, or nonzero with why set. */
static int speed_once(struct conn *c, const char *model, int tokens, uint64_t seed, double *tps,
                      bool *server, char *why, size_t why_size)
{
    struct drv_doctor_node *n = c->n;
    struct drv_buf prompt;
    drv_buf_init(&prompt, 1 << 16);
    drv_bench_prompt(&prompt, PROBE_WORDS, seed);
    json_t *o;
    if (ollama_wire(n))
        o = json_pack("{s:s, s:s, s:b, s:b, s:{s:i, s:f, s:[]}}", "model", model, "prompt",
                      prompt.data ? prompt.data : "", "raw", 1, "stream", 0, "options",
                      "num_predict", tokens, "temperature", 0.0, "stop");
    else
        o = json_pack("{s:s, s:s, s:i, s:f, s:b}", "model", model, "prompt",
                      prompt.data ? prompt.data : "", "max_tokens", tokens, "temperature", 0.0,
                      "stream", 0);
    if (o && n->kind == DRV_BENCH_KIND_LLAMA_SERVER)
        json_object_set_new(o, "ignore_eos", json_true());
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    drv_buf_release(&prompt);
    if (body == NULL) {
        say(why, why_size, "out of memory");
        return DRV_ENOMEM;
    }
    const char *path = ollama_wire(n) ? "/api/generate" : "/v1/completions";
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err e;
    drv_err_init(&e);
    int rc = ask(c, "POST", path, body, 600000, &r, &e);
    free(body);
    if (rc == 0 && r.status != 200) {
        say(why, why_size, "POST %s: HTTP %ld %.120s", path, r.status,
            r.body.data ? r.body.data : "");
        rc = DRV_EUPSTREAM;
    } else if (rc != 0) {
        say(why, why_size, "POST %s: %s", path, e.msg);
    } else {
        struct drv_bench_event ev;
        rc = drv_bench_parse_event(n->kind, r.body.data ? r.body.data : "", r.body.len, &ev, &e);
        double client_s = (double)(r.t_done_ns - r.t_start_ns) / 1e9;
        if (rc != 0) {
            say(why, why_size, "POST %s: %s", path, e.msg);
        } else if (ev.error[0]) {
            say(why, why_size, "POST %s: %s", path, ev.error);
            rc = DRV_EUPSTREAM;
        } else if (ev.gen_tokens < MIN_GEN_TOKENS) {
            say(why, why_size, "the model ended after %d tokens", ev.gen_tokens);
            rc = DRV_EINVAL;
        } else if (ev.gen_ms > 0) {
            *tps = ev.gen_tokens / ev.gen_ms * 1000;
            *server = true;
        } else {
            *tps = client_s > 0 ? ev.gen_tokens / client_s : 0;
            *server = false;
        }
    }
    drv_http_response_release(&r);
    return rc;
}

static void probe_speed(struct conn *c, const char *model)
{
    struct drv_doctor_node *n = c->n;
    struct drv_doctor_speed *s = &n->speed;
    drv_strlcpy(s->model, model, sizeof(s->model));
    s->gen_tokens = c->p->speed_tokens;
    int reps = c->p->speed_reps;
    if (reps > DRV_DOCTOR_MAX_REPS)
        reps = DRV_DOCTOR_MAX_REPS;
    uint64_t seed = drv_now_ns() ^ (uint64_t)getpid();
    bool server = true;
    double tps;
    /* the warm-up loads the model and fills caches; it is not counted */
    if (speed_once(c, model, s->gen_tokens, seed, &tps, &server, s->why, sizeof(s->why)) != 0) {
        s->state = -1;
        return;
    }
    for (int i = 0; i < reps; i++) {
        if (speed_once(c, model, s->gen_tokens, seed + 1 + (uint64_t)i, &tps, &server, s->why,
                       sizeof(s->why)) != 0)
            break;
        s->tg[s->n++] = tps;
        drv_strlcpy(s->source, server ? "server" : "client", sizeof(s->source));
    }
    s->state = s->n > 0 ? 1 : -1;
    if (s->state == 1)
        s->why[0] = '\0';
}

static const char think_question[] = "What is 17 + 25? Answer with the number only.";

/* One chat of the thinking probe; off: with thinking turned off. */
static void think_once(struct conn *c, bool off)
{
    struct drv_doctor_node *n = c->n;
    struct drv_doctor_think *t = &n->think;
    bool openai = !ollama_wire(n);
    json_t *o;
    if (openai)
        o = json_pack("{s:s, s:[{s:s, s:s}], s:i, s:f, s:b}", "model", t->model, "messages", "role",
                      "user", "content", think_question, "max_tokens", t->budget, "temperature",
                      0.0, "stream", 0);
    else
        o = json_pack("{s:s, s:[{s:s, s:s}], s:b, s:{s:i, s:f}}", "model", t->model, "messages",
                      "role", "user", "content", think_question, "stream", 0, "options",
                      "num_predict", t->budget, "temperature", 0.0);
    if (o && off) {
        if (openai) /* llama-server passes it to the chat template */
            json_object_set_new(o, "chat_template_kwargs",
                                json_pack("{s:b}", "enable_thinking", 0));
        else /* top level, not in options */
            json_object_set_new(o, "think", json_false());
    }
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    const char *path = openai ? "/v1/chat/completions" : "/api/chat";
    snprintf(t->route, sizeof(t->route), "POST %s", path);
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err e;
    drv_err_init(&e);
    int rc = body ? ask(c, "POST", path, body, 600000, &r, &e) : DRV_ENOMEM;
    free(body);
    int *state = off ? &t->off_state : &t->state;
    if (rc != 0) {
        *state = -1;
        if (!off)
            say(t->why, sizeof(t->why), "POST %s: %s", path, e.msg);
    } else if (r.status != 200) {
        *state = -1;
        if (!off)
            say(t->why, sizeof(t->why), "POST %s: HTTP %ld %.120s", path, r.status,
                r.body.data ? r.body.data : "");
    } else if (drv_doctor_parse_chat(t, openai, off, r.body.data, r.body.len, &e) != 0) {
        *state = -1;
        if (!off)
            say(t->why, sizeof(t->why), "%s", e.msg);
    }
    drv_http_response_release(&r);
}

static void probe_think(struct conn *c, const char *model)
{
    struct drv_doctor_think *t = &c->n->think;
    drv_strlcpy(t->model, model, sizeof(t->model));
    t->budget = c->p->think_budget;
    t->eval_count = -1;
    think_once(c, false);
    /* an empty answer at the limit: does turning thinking off give one? */
    if (t->state == 1 && t->content_len == 0 && strcmp(t->done_reason, "length") == 0)
        think_once(c, true);
}

/* Everything one node reports, then the probes. */
static void collect_node(struct drv_doctor_node *n, const struct drv_doctor_params *p,
                         const struct drv_hw *local_hw)
{
    uint64_t t0 = drv_now_ns();
    struct conn c = {.n = n, .p = p, .deadline_ns = t0 + (uint64_t)(p->node_seconds * 1e9)};
    n->n_available = -1;
    n->kind = n->config_kind;
    detect(&c);
    if (n->reachable && n->error[0] == '\0') {
        switch (n->kind) {
        case DRV_BENCH_KIND_DROVER:
            if (!n->have_status)
                get_parse(&c, "/api/drover/status", drv_doctor_parse_status);
            if (!n->have_hw)
                get_parse(&c, "/api/drover/hw", parse_hw);
            if (!n->have_metrics) /* loads and cut prompts, before any probe of ours */
                get_parse(&c, "/metrics", parse_drover_metrics);
            __attribute__((fallthrough)); /* and the Ollama routes */
        case DRV_BENCH_KIND_OLLAMA:
            get_parse(&c, "/api/ps", drv_doctor_parse_ps);
            get_parse(&c, "/api/tags", drv_doctor_parse_tags);
            show_models(&c);
            break;
        case DRV_BENCH_KIND_LLAMA_SERVER:
            if (!n->have_props)
                get_parse(&c, "/props", drv_doctor_parse_props);
            __attribute__((fallthrough));
        case DRV_BENCH_KIND_OPENAI:
            get_parse(&c, "/v1/models", drv_doctor_parse_models);
            break;
        default:
            break;
        }
    }
    /* the machine: its own report, else the profile the config names, else this
     * machine when the URL is loopback */
    if (!n->have_hw && n->hw_file[0]) {
        struct drv_err e;
        drv_err_init(&e);
        if (drv_probe_profile_load(n->hw_file, &n->hw, &e) == 0) {
            n->have_hw = true;
            say(n->hw_from, sizeof(n->hw_from), "hw = %.80s", n->hw_file);
        }
    }
    if (n->local && local_hw) {
        if (!n->have_hw) {
            n->hw = *local_hw;
            n->have_hw = true;
            n->hw_after_load = n->n_models > 0; /* probed before the doctor asked */
            drv_strlcpy(n->hw_from, "this machine (the node's URL is loopback)",
                        sizeof(n->hw_from));
        }
    }
    bool can_probe = n->reachable && n->error[0] == '\0' && n->kind != DRV_BENCH_KIND_AUTO;
    char model[128], why[256] = "";
    if (!p->probes || n->gateway) {
        const char *off = n->gateway ? "a gateway may route a probe to any of its nodes"
                                     : "probes are off (--no-probe)";
        drv_strlcpy(n->speed.why, off, sizeof(n->speed.why));
        drv_strlcpy(n->think.why, off, sizeof(n->think.why));
    } else if (can_probe && !probe_model(n, p->model, model, sizeof(model), why, sizeof(why))) {
        drv_strlcpy(n->speed.why, why, sizeof(n->speed.why));
        drv_strlcpy(n->think.why, why, sizeof(n->think.why));
    } else if (can_probe) {
        probe_speed(&c, model);
        probe_think(&c, model);
        /* the probe may have loaded the model: list what is loaded now */
        if (n->have_ps && n->n_models == 0) {
            get_parse(&c, "/api/ps", drv_doctor_parse_ps);
            get_parse(&c, "/api/tags", drv_doctor_parse_tags);
            show_models(&c);
        }
    }
    n->elapsed_s = (double)(drv_now_ns() - t0) / 1e9;
}

/* ---- the bench baseline ---- */

/* The node's baseline for its probed model: by URL (what `drover bench URL`
 * records) or by node name, with or without the ":latest" tag. */
static void find_baseline(struct drv_store *st, struct drv_doctor_node *n)
{
    struct drv_doctor_baseline *b = &n->baseline;
    const char *model = n->speed.model;
    char bare[128];
    drv_strlcpy(bare, model, sizeof(bare));
    if (drv_str_has_suffix(bare, ":latest"))
        bare[strlen(bare) - 7] = '\0';
    char tagged[136];
    snprintf(tagged, sizeof(tagged), "%s:latest", bare);
    char url[256];
    drv_strlcpy(url, n->url, sizeof(url));
    size_t ul = strlen(url);
    while (ul > 8 && url[ul - 1] == '/')
        url[--ul] = '\0';
    const char *targets[] = {url, n->name};
    const char *models[] = {model, bare, tagged};
    for (size_t t = 0; t < 2; t++) {
        for (size_t m = 0; m < 3; m++) {
            struct drv_bench_run run;
            struct drv_err e;
            drv_err_init(&e);
            if (drv_store_get_baseline(st, targets[t], models[m], &run, &e) != 0)
                continue;
            b->state = 1;
            drv_strlcpy(b->target, run.target, sizeof(b->target));
            drv_strlcpy(b->model, run.model, sizeof(b->model));
            b->ts = run.ts;
            for (int i = 0; i < run.n_reps && b->n < DRV_DOCTOR_MAX_BASE_REPS; i++)
                if (run.reps[i].concurrency == 1 && run.reps[i].tg_tps > 0)
                    b->tg[b->n++] = run.reps[i].tg_tps;
            drv_bench_run_release(&run);
            return;
        }
    }
    say(b->why, sizeof(b->why), "no baseline for %s and %s in %s", url, bare, b->db);
}

static void baselines(struct drv_doctor_node *nodes, int n, const struct drv_doctor_params *p)
{
    char path[512];
    if (p->db)
        drv_strlcpy(path, p->db, sizeof(path));
    else
        drv_store_default_path(path, sizeof(path));
    struct stat sb;
    bool exists = stat(path, &sb) == 0;
    struct drv_store *st = NULL;
    struct drv_err e;
    drv_err_init(&e);
    if (exists && drv_store_open(path, &st, &e) != 0)
        st = NULL;
    for (int i = 0; i < n; i++) {
        struct drv_doctor_baseline *b = &nodes[i].baseline;
        drv_strlcpy(b->db, path, sizeof(b->db));
        if (nodes[i].speed.model[0] == '\0')
            continue;
        if (!exists)
            say(b->why, sizeof(b->why), "no bench history at %s", path);
        else if (st == NULL)
            say(b->why, sizeof(b->why), "%s", e.msg);
        else
            find_baseline(st, &nodes[i]);
    }
    drv_store_close(st);
}

/* ---- all nodes ---- */

/* Nodes on one host, asked one after another. */
struct host_group {
    struct drv_doctor_node **nodes;
    int n;
    const struct drv_doctor_params *p;
    const struct drv_hw *local_hw;
    pthread_t thread;
    bool started;
};

static void *group_main(void *arg)
{
    struct host_group *g = arg;
    for (int i = 0; i < g->n; i++)
        collect_node(g->nodes[i], g->p, g->local_hw);
    return NULL;
}

static void this_machine(struct drv_doctor_node *me, const struct drv_doctor_params *p)
{
    struct drv_probe_params pp = drv_probe_default_params();
    pp.bandwidth_seconds = 0; /* later, and only when needed: local_bandwidth() */
    struct drv_err e;
    drv_err_init(&e);
    drv_probe_run(&pp, &me->hw, &e);
    me->have_hw = true;
    me->hw_after_load = true;
    drv_strlcpy(me->hw_from, "drover hw", sizeof(me->hw_from));
    me->reachable = true;
    me->local = true;
    me->n_available = -1;
    const char *hsa = getenv("HSA_OVERRIDE_GFX_VERSION");
    if (hsa)
        drv_strlcpy(me->hsa_override, hsa, sizeof(me->hsa_override));
#ifdef DROVER_VERSION
    drv_strlcpy(me->version, DROVER_VERSION, sizeof(me->version));
#endif
}

/* The roofline of a loopback node needs this machine's bandwidth: measured
 * now that every probe is done, so nothing competes with it. */
static void local_bandwidth(struct drv_doctor_node *nodes, int n, const struct drv_doctor_params *p)
{
    bool need = false;
    for (int i = 1; i < n; i++) {
        const struct drv_doctor_node *nd = &nodes[i];
        if (!nd->local || nd->speed.state != 1 || (nd->have_hw && nd->hw.memory.bandwidth_gbps > 0))
            continue;
        for (int k = 0; k < nd->n_models; k++) {
            const struct drv_doctor_model *m = &nd->models[k];
            need |= strcmp(m->name, nd->speed.model) == 0 &&
                    drv_doctor_model_weights(m) >= DRV_DOCTOR_ROOFLINE_MIN_BYTES;
        }
    }
    if (!need || p->bandwidth_seconds <= 0)
        return;
    double gbps;
    struct drv_err e;
    drv_err_init(&e);
    if (drv_probe_bandwidth(p->bandwidth_seconds, 0, 0, &gbps, &e) != 0)
        return;
    nodes[0].hw.memory.bandwidth_gbps = gbps;
    for (int i = 1; i < n; i++) {
        if (nodes[i].local && nodes[i].have_hw && nodes[i].hw.memory.bandwidth_gbps <= 0) {
            nodes[i].hw.memory.bandwidth_gbps = gbps;
            drv_strlcpy(nodes[i].bw_from, "measured by the doctor on this machine",
                        sizeof(nodes[i].bw_from));
        }
    }
}

void drv_doctor_collect(struct drv_doctor_node *nodes, int n, const struct drv_doctor_params *p)
{
    if (n <= 0)
        return;
    /* this machine first, alone: the bandwidth measurement must not compete
     * with a node's probe */
    this_machine(&nodes[0], p);
    const struct drv_hw *local_hw = &nodes[0].hw;
    for (int i = 1; i < n; i++)
        nodes[i].local = drv_doctor_url_is_local(nodes[i].url);

    struct host_group *groups = calloc((size_t)n, sizeof(*groups));
    struct drv_doctor_node **order = calloc((size_t)n, sizeof(*order));
    char(*hosts)[256] = calloc((size_t)n, sizeof(*hosts));
    if (groups == NULL || order == NULL || hosts == NULL) {
        for (int i = 1; i < n; i++) /* no memory for threads: one after another */
            collect_node(&nodes[i], p, local_hw);
    } else {
        int n_groups = 0, used = 0;
        for (int i = 1; i < n; i++) {
            char host[256];
            if (nodes[i].local)
                drv_strlcpy(host, "(this machine)", sizeof(host));
            else
                url_host(nodes[i].url, host, sizeof(host));
            int g = 0;
            while (g < n_groups && strcasecmp(hosts[g], host) != 0)
                g++;
            if (g == n_groups) {
                drv_strlcpy(hosts[n_groups++], host, sizeof(hosts[0]));
                groups[g].nodes = order + used;
                /* count the group's nodes once, so each group gets a contiguous slice */
                for (int k = i; k < n; k++) {
                    char h2[256];
                    if (nodes[k].local)
                        drv_strlcpy(h2, "(this machine)", sizeof(h2));
                    else
                        url_host(nodes[k].url, h2, sizeof(h2));
                    if (strcasecmp(h2, host) == 0)
                        groups[g].nodes[groups[g].n++] = &nodes[k];
                }
                used += groups[g].n;
            }
        }
        for (int g = 0; g < n_groups; g++) {
            groups[g].p = p;
            groups[g].local_hw = local_hw;
            groups[g].started =
                pthread_create(&groups[g].thread, NULL, group_main, &groups[g]) == 0;
            if (!groups[g].started)
                group_main(&groups[g]);
        }
        for (int g = 0; g < n_groups; g++)
            if (groups[g].started)
                pthread_join(groups[g].thread, NULL);
    }
    free(groups);
    free(order);
    free(hosts);
    local_bandwidth(nodes, n, p);
    baselines(nodes + 1, n - 1, p);
}
