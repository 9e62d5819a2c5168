/* bench: what a target is, which model to measure, and the measurement itself. */
#include "bench/bench.h"
#include "probe/probe.h"
#include "http/http.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBE_CONNECT_MS 3000L
#define PROBE_TIMEOUT_MS 10000L
#define MAX_LINE         (1u << 20)

static const char *const kind_names[] = {"auto", "drover", "ollama", "llama-server", "openai"};

const char *drv_bench_kind_name(enum drv_bench_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

bool drv_bench_parse_kind(const char *s, enum drv_bench_kind *out)
{
    for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (enum drv_bench_kind)i;
            return true;
        }
    }
    return false;
}

struct drv_bench_params drv_bench_default_params(void)
{
    struct drv_bench_params p = {
        .prompt_tokens = 512,
        .gen_tokens = 128,
        .reps = 5,
        .levels = {1},
        .n_levels = 1,
        .kind = DRV_BENCH_KIND_AUTO,
        .model = NULL,
        .timeout_ms = 600000,
        .seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid(),
    };
    return p;
}

void drv_bench_result_release(struct drv_bench_result *r)
{
    for (int i = 0; i < DRV_BENCH_MAX_LEVELS; i++) {
        free(r->levels[i].reps);
        r->levels[i].reps = NULL;
        r->levels[i].n_reps = 0;
    }
    r->n_levels = 0;
}

/* ---- probing ------------------------------------------------------------------ */

/* GET the target's url+path (with its key); resp gets the status and body.
 * Returns drv_http_fetch's code. */
static int probe_get(const struct drv_bench_target *t, const char *path, long timeout_ms,
                     struct drv_http_response *resp, struct drv_err *err)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", t->url, path);
    struct drv_http_request rq = {
        .url = url,
        .connect_timeout_ms = PROBE_CONNECT_MS,
        .timeout_ms =
            timeout_ms > 0 && timeout_ms < PROBE_TIMEOUT_MS ? timeout_ms : PROBE_TIMEOUT_MS,
        .max_body_bytes = 4u << 20,
        .bearer = t->bearer,
    };
    return drv_http_fetch(&rq, resp, err);
}

/* GET base+path as JSON: the parsed body of a 200 answer, else NULL (*rc says
 * whether the server could be reached at all). */
static json_t *probe_json(const struct drv_bench_target *t, const char *path, long timeout_ms,
                          int *rc, struct drv_err *err)
{
    struct drv_http_response resp;
    drv_http_response_init(&resp);
    json_t *j = NULL;
    *rc = probe_get(t, path, timeout_ms, &resp, err);
    if (*rc == 0 && resp.status == 200 && resp.body.len)
        j = json_loadb(resp.body.data, resp.body.len, JSON_ALLOW_NUL, NULL);
    drv_http_response_release(&resp);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static void copy_json_str(char *dst, size_t size, json_t *v)
{
    const char *s = json_string_value(v);
    if (s)
        drv_strlcpy(dst, s, size);
}

static void llama_server_version(json_t *props, struct drv_bench_target *t)
{
    json_t *b = json_object_get(props, "build_info");
    if (json_is_string(b))
        copy_json_str(t->version, sizeof(t->version), b);
}

/* A drover node tells its machine at /api/drover/hw; keep it in one line. */
static void node_hw(struct drv_bench_target *t)
{
    int rc;
    struct drv_err e;
    drv_err_init(&e);
    json_t *j = probe_json(t, "/api/drover/hw", 0, &rc, &e);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    struct drv_hw *hw = calloc(1, sizeof(*hw));
    drv_err_init(&e);
    if (text && hw && drv_probe_profile_parse(text, strlen(text), hw, &e) == 0)
        drv_probe_summary(hw, t->hw, sizeof(t->hw));
    free(hw);
    free(text);
    json_decref(j);
}

int drv_bench_detect(const char *url, const char *bearer, enum drv_bench_kind forced,
                     struct drv_bench_target *t, struct drv_err *err)
{
    memset(t, 0, sizeof(*t));
    if (bearer && drv_strlcpy(t->bearer, bearer, sizeof(t->bearer)) >= sizeof(t->bearer))
        return drv_err_set(err, DRV_EINVAL, "API key too long");
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return drv_err_set(err, DRV_EINVAL, "%s: not an http:// URL", url);
    drv_strlcpy(t->url, url, sizeof(t->url));
    size_t n = strlen(t->url);
    while (n > 8 && t->url[n - 1] == '/')
        t->url[--n] = '\0';

    struct drv_err e;
    drv_err_init(&e);
    int rc;
    json_t *v = probe_json(t, "/api/version", 0, &rc, &e);
    if (rc) {
        json_decref(v);
        if (rc == DRV_EUPSTREAM) {
            const char *why = strstr(e.msg, ": "); /* after the URL */
            return drv_err_set(err, rc, "unreachable: %s", why ? why + 2 : e.msg);
        }
        return drv_err_set(err, rc, "%s", e.msg);
    }
    if (v)
        copy_json_str(t->version, sizeof(t->version), json_object_get(v, "version"));
    if (forced != DRV_BENCH_KIND_AUTO) {
        t->kind = forced;
        if (forced == DRV_BENCH_KIND_LLAMA_SERVER) {
            json_t *p = probe_json(t, "/props", 0, &rc, &e);
            llama_server_version(p, t);
            json_decref(p);
        }
        json_decref(v);
        return 0;
    }
    if (v && json_is_string(json_object_get(v, "version"))) {
        json_decref(v);
        /* drover answers /api/version like Ollama; its /metrics tells them apart */
        struct drv_http_response m;
        drv_http_response_init(&m);
        drv_err_init(&e);
        rc = probe_get(t, "/metrics", 0, &m, &e);
        bool drover =
            rc == 0 && m.status == 200 && m.body.data && strstr(m.body.data, "drover_") != NULL;
        drv_http_response_release(&m);
        t->kind = drover ? DRV_BENCH_KIND_DROVER : DRV_BENCH_KIND_OLLAMA;
        if (drover)
            node_hw(t);
        return 0;
    }
    json_decref(v);
    json_t *p = probe_json(t, "/props", 0, &rc, &e);
    if (p &&
        (json_object_get(p, "default_generation_settings") || json_object_get(p, "build_info"))) {
        t->kind = DRV_BENCH_KIND_LLAMA_SERVER;
        llama_server_version(p, t);
        json_decref(p);
        return 0;
    }
    json_decref(p);
    json_t *m = probe_json(t, "/v1/models", 0, &rc, &e);
    bool openai = m && json_is_array(json_object_get(m, "data"));
    json_decref(m);
    if (openai) {
        t->kind = DRV_BENCH_KIND_OPENAI;
        return 0;
    }
    return drv_err_set(err, DRV_ENOENT,
                       "%s answers none of /api/version, /props, /v1/models like drover, Ollama, "
                       "llama-server or an OpenAI-compatible server (try --kind)",
                       t->url);
}

/* ---- model choice ---------------------------------------------------------------- */

/* The name to show for a model id: a file path becomes its stem. */
static void display_name(const char *id, char *out, size_t size)
{
    const char *base = strrchr(id, '/');
    drv_strlcpy(out, base ? base + 1 : id, size);
    if (drv_str_has_suffix(out, ".gguf"))
        out[strlen(out) - 5] = '\0';
}

/* Does model id `cand` answer to the name `want`? Equal, or equal but for a
 * ":latest" tag, or (for a path) its file stem. */
static bool name_matches(const char *cand, const char *want)
{
    char a[256], b[256];
    display_name(cand, a, sizeof(a));
    drv_strlcpy(b, want, sizeof(b));
    if (strcmp(cand, want) == 0)
        return true;
    if (drv_str_has_suffix(a, ":latest"))
        a[strlen(a) - 7] = '\0';
    if (drv_str_has_suffix(b, ":latest"))
        b[strlen(b) - 7] = '\0';
    return strcmp(a, b) == 0;
}

struct candidate {
    const char *id;
    json_t *obj;
};

/* Lists the model ids of a target into c (at most max); the JSON stays owned
 * by *hold. */
static int list_models(struct drv_bench_target *t, long timeout_ms, json_t **hold,
                       struct candidate *c, int max, struct drv_err *err)
{
    bool ollama = t->kind == DRV_BENCH_KIND_DROVER || t->kind == DRV_BENCH_KIND_OLLAMA;
    const char *path = ollama ? "/api/tags" : "/v1/models";
    int rc;
    struct drv_err e;
    drv_err_init(&e);
    *hold = probe_json(t, path, timeout_ms, &rc, &e);
    if (rc)
        return drv_err_set(err, rc, "%s", e.msg);
    if (*hold == NULL)
        return drv_err_set(err, DRV_EUPSTREAM, "%s%s did not answer with a model list", t->url,
                           path);
    json_t *arr = json_object_get(*hold, ollama ? "models" : "data");
    int n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *id = json_string_value(json_object_get(m, ollama ? "name" : "id"));
        if (id && n < max)
            c[n++] = (struct candidate){id, m};
    }
    return n;
}

/* The model the target has loaded now, or "" (copied to out). */
static void loaded_model(struct drv_bench_target *t, long timeout_ms, char *out, size_t size)
{
    int rc;
    struct drv_err e;
    drv_err_init(&e);
    out[0] = '\0';
    if (t->kind == DRV_BENCH_KIND_DROVER || t->kind == DRV_BENCH_KIND_OLLAMA) {
        json_t *ps = probe_json(t, "/api/ps", timeout_ms, &rc, &e);
        json_t *first = json_array_get(json_object_get(ps, "models"), 0);
        copy_json_str(out, size, json_object_get(first, "name"));
        json_decref(ps);
    } else if (t->kind == DRV_BENCH_KIND_LLAMA_SERVER) {
        json_t *p = probe_json(t, "/props", timeout_ms, &rc, &e);
        copy_json_str(out, size, json_object_get(p, "model_path"));
        json_decref(p);
    }
}

static void fill_model(struct drv_bench_target *t, const struct candidate *c)
{
    drv_strlcpy(t->model, c->id, sizeof(t->model));
    display_name(c->id, t->model_display, sizeof(t->model_display));
    json_t *o = c->obj;
    if (t->kind == DRV_BENCH_KIND_DROVER || t->kind == DRV_BENCH_KIND_OLLAMA) {
        json_int_t sz = json_integer_value(json_object_get(o, "size"));
        t->model_size = sz > 0 ? (uint64_t)sz : 0;
        copy_json_str(t->digest, sizeof(t->digest), json_object_get(o, "digest"));
        copy_json_str(t->quant, sizeof(t->quant),
                      json_object_get(json_object_get(o, "details"), "quantization_level"));
    } else {
        json_int_t sz = json_integer_value(json_object_get(json_object_get(o, "meta"), "size"));
        t->model_size = sz > 0 ? (uint64_t)sz : 0;
    }
}

int drv_bench_pick_model(struct drv_bench_target *t, const char *want, long timeout_ms,
                         struct drv_err *err)
{
    json_t *hold = NULL;
    struct candidate c[256];
    int n = list_models(t, timeout_ms, &hold, c, 256, err);
    if (n < 0)
        return n;
    int rc = 0;
    const struct candidate *pick = NULL;
    char loaded[256];
    if (want && want[0]) {
        for (int i = 0; i < n && !pick; i++)
            if (name_matches(c[i].id, want))
                pick = &c[i];
    } else if (n == 1) {
        pick = &c[0];
    } else if (n > 1) {
        loaded_model(t, timeout_ms, loaded, sizeof(loaded));
        for (int i = 0; i < n && !pick && loaded[0]; i++)
            if (strcmp(c[i].id, loaded) == 0 || name_matches(c[i].id, loaded))
                pick = &c[i];
    }
    if (pick) {
        fill_model(t, pick);
        goto out;
    }
    char names[320] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof(names) - 1; i++) {
        int w = snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", c[i].id);
        len += w > 0 ? (size_t)w : 0;
    }
    if (len >= sizeof(names) - 1)
        strcpy(names + sizeof(names) - 5, "...");
    if (want && want[0])
        rc = drv_err_set(err, DRV_ENOENT, "does not have model %s (it has: %s)", want,
                         n ? names : "no models");
    else if (n == 0)
        rc = drv_err_set(err, DRV_ENOENT, "has no models");
    else
        rc = drv_err_set(err, DRV_ENOENT,
                         "has %d models and none loaded; choose one with --model (%s)", n, names);
out:
    json_decref(hold);
    return rc;
}

/* ---- events ---------------------------------------------------------------------- */

static int json_int_or(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (int)json_number_value(v) : dflt;
}

static double json_num_or(json_t *o, const char *key, double dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static void event_error(json_t *root, struct drv_bench_event *ev)
{
    json_t *e = json_object_get(root, "error");
    if (json_is_string(e))
        copy_json_str(ev->error, sizeof(ev->error), e);
    else if (json_is_object(e))
        copy_json_str(ev->error, sizeof(ev->error), json_object_get(e, "message"));
    if (e && !ev->error[0])
        drv_strlcpy(ev->error, "the server reported an error", sizeof(ev->error));
}

int drv_bench_parse_event(enum drv_bench_kind kind, const char *json, size_t len,
                          struct drv_bench_event *ev, struct drv_err *err)
{
    memset(ev, 0, sizeof(*ev));
    ev->prompt_tokens = ev->pp_tokens = ev->gen_tokens = -1;
    ev->prompt_ms = ev->gen_ms = -1;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, NULL); /* a byte token can be NUL */
    if (!json_is_object(root)) {
        json_decref(root);
        return drv_err_set(err, DRV_EFORMAT, "not a JSON object: %.60s", json);
    }
    event_error(root, ev);
    if (kind == DRV_BENCH_KIND_DROVER || kind == DRV_BENCH_KIND_OLLAMA) {
        const char *text = json_string_value(json_object_get(root, "response"));
        if (text == NULL) /* /api/chat */
            text = json_string_value(json_object_get(json_object_get(root, "message"), "content"));
        ev->content_len = text ? strlen(text) : 0;
        if (json_is_true(json_object_get(root, "done"))) {
            ev->done = true;
            ev->prompt_tokens = json_int_or(root, "prompt_eval_count", -1);
            ev->pp_tokens = ev->prompt_tokens;
            ev->gen_tokens = json_int_or(root, "eval_count", -1);
            double pd = json_num_or(root, "prompt_eval_duration", -1);
            double ed = json_num_or(root, "eval_duration", -1);
            ev->prompt_ms = pd > 0 ? pd / 1e6 : -1;
            ev->gen_ms = ed > 0 ? ed / 1e6 : -1;
        }
    } else {
        json_t *ch = json_array_get(json_object_get(root, "choices"), 0);
        const char *text = json_string_value(json_object_get(ch, "text"));
        if (text == NULL)
            text = json_string_value(json_object_get(json_object_get(ch, "delta"), "content"));
        ev->content_len = text ? strlen(text) : 0;
        if (json_is_string(json_object_get(ch, "finish_reason")))
            ev->done = true;
        json_t *usage = json_object_get(root, "usage");
        if (json_is_object(usage)) {
            ev->prompt_tokens = json_int_or(usage, "prompt_tokens", -1);
            ev->gen_tokens = json_int_or(usage, "completion_tokens", -1);
        }
        json_t *tm = json_object_get(root, "timings");
        if (json_is_object(tm)) {
            /* prompt_n leaves out cached tokens: exactly what prompt_ms covers */
            int pn = json_int_or(tm, "prompt_n", -1), cn = json_int_or(tm, "cache_n", 0);
            int gn = json_int_or(tm, "predicted_n", -1);
            double pms = json_num_or(tm, "prompt_ms", -1),
                   gms = json_num_or(tm, "predicted_ms", -1);
            if (pn > 0 && pms > 0) {
                ev->pp_tokens = pn;
                ev->prompt_ms = pms;
            }
            if (ev->prompt_tokens < 0 && pn >= 0)
                ev->prompt_tokens = pn + (cn > 0 ? cn : 0);
            if (gn >= 0 && gms > 0) {
                ev->gen_ms = gms;
                ev->gen_tokens = gn;
            }
        }
    }
    json_decref(root);
    return 0;
}

/* ---- one stream ----------------------------------------------------------------- */

struct stream {
    enum drv_bench_kind kind;
    struct drv_buf line;
    uint64_t t_first, t_last;
    int chunks;
    int prompt_tokens, pp_tokens, gen_tokens;
    double prompt_ms, gen_ms;
    bool done;
    char error[256];
};

static void stream_event(struct stream *s, const char *json, size_t len)
{
    struct drv_bench_event ev;
    struct drv_err e;
    drv_err_init(&e);
    if (drv_bench_parse_event(s->kind, json, len, &ev, &e) != 0) {
        if (!s->error[0])
            snprintf(s->error, sizeof(s->error), "bad event in the stream: %.200s", e.msg);
        return;
    }
    if (ev.error[0] && !s->error[0])
        drv_strlcpy(s->error, ev.error, sizeof(s->error));
    if (ev.content_len > 0) {
        uint64_t now = drv_now_ns();
        if (s->chunks == 0)
            s->t_first = now;
        s->t_last = now;
        s->chunks++;
    }
    if (ev.done)
        s->done = true;
    if (ev.prompt_tokens >= 0)
        s->prompt_tokens = ev.prompt_tokens;
    if (ev.gen_tokens >= 0)
        s->gen_tokens = ev.gen_tokens;
    if (ev.pp_tokens >= 0)
        s->pp_tokens = ev.pp_tokens;
    if (ev.prompt_ms > 0)
        s->prompt_ms = ev.prompt_ms;
    if (ev.gen_ms > 0)
        s->gen_ms = ev.gen_ms;
}

static void stream_line(struct stream *s, char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        line[--len] = '\0';
    if (len == 0)
        return;
    if (s->kind == DRV_BENCH_KIND_DROVER || s->kind == DRV_BENCH_KIND_OLLAMA) {
        stream_event(s, line, len);
        return;
    }
    if (strncmp(line, "data:", 5) != 0)
        return; /* SSE comments, event names, ids */
    const char *p = line + 5;
    while (*p == ' ')
        p++;
    if (strcmp(p, "[DONE]") == 0)
        return;
    stream_event(s, p, len - (size_t)(p - line));
}

static int on_chunk(void *ud, const char *data, size_t len)
{
    struct stream *s = ud;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            if (drv_buf_append(&s->line, &data[i], 1) != 0) {
                snprintf(s->error, sizeof(s->error), "a streamed line longer than %u bytes",
                         MAX_LINE);
                return 1;
            }
            continue;
        }
        if (s->line.len)
            stream_line(s, s->line.data, s->line.len);
        drv_buf_reset(&s->line);
    }
    return 0;
}

/* The request body for one stream in the target's wire format. */
static char *request_body(const struct drv_bench_target *t, const char *prompt, int gen_tokens)
{
    json_t *o;
    if (t->kind == DRV_BENCH_KIND_DROVER || t->kind == DRV_BENCH_KIND_OLLAMA) {
        /* raw: no template around the prompt; an empty stop list and num_predict
         * ask for all gen_tokens (a model may still end at its end-of-text token) */
        o = json_pack("{s:s, s:s, s:b, s:b, s:{s:i, s:[]}}", "model", t->model, "prompt", prompt,
                      "raw", 1, "stream", 1, "options", "num_predict", gen_tokens, "stop");
    } else {
        o = json_pack("{s:s, s:s, s:i, s:b, s:{s:b}}", "model", t->model, "prompt", prompt,
                      "max_tokens", gen_tokens, "stream", 1, "stream_options", "include_usage", 1);
        if (o && t->kind == DRV_BENCH_KIND_LLAMA_SERVER)
            json_object_set_new(o, "ignore_eos", json_true());
    }
    if (o == NULL)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static double ms_between(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e6 : 0;
}

/* Turns what one stream saw into a sample. */
static void make_sample(const struct stream *s, const struct drv_http_response *resp, int rc,
                        const struct drv_err *e, int prompt_estimate, struct drv_bench_sample *out)
{
    memset(out, 0, sizeof(*out));
    out->ttft_ms = out->e2e_ms = -1;
    out->pp_server = out->tg_server = out->pp_client = out->tg_client = -1;
    out->prompt_tokens = s->prompt_tokens;
    out->gen_tokens = s->gen_tokens >= 0 ? s->gen_tokens : s->chunks;
    if (rc) {
        drv_strlcpy(out->error, e->msg, sizeof(out->error));
        return;
    }
    if (resp->status != 200) {
        char msg[200] = "";
        struct drv_bench_event ev;
        struct drv_err pe;
        drv_err_init(&pe);
        if (resp->body.len && drv_bench_parse_event(DRV_BENCH_KIND_OPENAI, resp->body.data,
                                                    resp->body.len, &ev, &pe) == 0)
            drv_strlcpy(msg, ev.error, sizeof(msg));
        else if (resp->body.len)
            snprintf(msg, sizeof(msg), "%.160s", resp->body.data);
        snprintf(out->error, sizeof(out->error), "HTTP %ld%s%s", resp->status, msg[0] ? ": " : "",
                 msg);
        return;
    }
    if (s->error[0]) {
        drv_strlcpy(out->error, s->error, sizeof(out->error));
        return;
    }
    if (s->chunks == 0) {
        drv_strlcpy(out->error, "no tokens came back", sizeof(out->error));
        return;
    }
    out->ok = true;
    out->ttft_ms = ms_between(resp->t_start_ns, s->t_first);
    out->e2e_ms = ms_between(resp->t_start_ns, resp->t_done_ns);
    if (s->pp_tokens > 0 && s->prompt_ms > 0)
        out->pp_server = s->pp_tokens / s->prompt_ms * 1000.0;
    if (s->gen_tokens > 0 && s->gen_ms > 0)
        out->tg_server = s->gen_tokens / s->gen_ms * 1000.0;
    int pt = s->prompt_tokens > 0 ? s->prompt_tokens : prompt_estimate;
    if (out->ttft_ms > 0)
        out->pp_client = pt / out->ttft_ms * 1000.0;
    /* tokens after the first, over the time they took to arrive */
    double gen_ms = ms_between(s->t_first, s->t_last);
    if (out->gen_tokens > 1 && gen_ms > 0)
        out->tg_client = (out->gen_tokens - 1) / gen_ms * 1000.0;
}

/* Runs n streams at once; samples[i] gets each one's numbers. Returns the
 * repetition's wall time in ms. */
static double run_streams(const struct drv_bench_target *t, const struct drv_bench_params *p,
                          int n_words, int gen_tokens, const uint64_t *seeds, int n,
                          const atomic_bool *cancel, struct drv_bench_sample *samples)
{
    struct drv_http_request *rqs = calloc((size_t)n, sizeof(*rqs));
    struct drv_http_response *resps = calloc((size_t)n, sizeof(*resps));
    struct stream *ss = calloc((size_t)n, sizeof(*ss));
    struct drv_err *errs = calloc((size_t)n, sizeof(*errs));
    char **bodies = calloc((size_t)n, sizeof(*bodies));
    int *rcs = calloc((size_t)n, sizeof(*rcs));
    double wall = -1;
    char url[320];
    bool ollama = t->kind == DRV_BENCH_KIND_DROVER || t->kind == DRV_BENCH_KIND_OLLAMA;
    snprintf(url, sizeof(url), "%s%s", t->url, ollama ? "/api/generate" : "/v1/completions");
    if (!rqs || !resps || !ss || !errs || !bodies || !rcs) {
        for (int i = 0; i < n; i++) {
            memset(&samples[i], 0, sizeof(samples[i]));
            drv_strlcpy(samples[i].error, "out of memory", sizeof(samples[i].error));
        }
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct drv_buf prompt;
        drv_buf_init(&prompt, 64u << 20);
        drv_bench_prompt(&prompt, n_words, seeds[i]);
        bodies[i] = request_body(t, prompt.data ? prompt.data : "", gen_tokens);
        drv_buf_release(&prompt);
        ss[i] = (struct stream){.kind = t->kind,
                                .prompt_tokens = -1,
                                .pp_tokens = -1,
                                .gen_tokens = -1,
                                .prompt_ms = -1,
                                .gen_ms = -1};
        drv_buf_init(&ss[i].line, MAX_LINE);
        drv_http_response_init(&resps[i]);
        drv_err_init(&errs[i]);
        rqs[i] = (struct drv_http_request){
            .url = url,
            .body = bodies[i] ? bodies[i] : "{}",
            .body_len = bodies[i] ? strlen(bodies[i]) : 2,
            .timeout_ms = p->timeout_ms,
            .max_body_bytes = 1u << 20,
            .on_chunk = on_chunk,
            .ud = &ss[i],
            .cancel = cancel,
            .bearer = t->bearer,
        };
    }
    uint64_t t0 = drv_now_ns();
    drv_http_fetch_many(rqs, resps, rcs, errs, n);
    wall = ms_between(t0, drv_now_ns());
    for (int i = 0; i < n; i++) {
        if (rcs[i] == 0 && ss[i].line.len) /* a last line without newline */
            stream_line(&ss[i], ss[i].line.data, ss[i].line.len);
        make_sample(&ss[i], &resps[i], rcs[i], &errs[i], n_words, &samples[i]);
        drv_buf_release(&ss[i].line);
        drv_http_response_release(&resps[i]);
        free(bodies[i]);
    }
out:
    free(rqs);
    free(resps);
    free(ss);
    free(errs);
    free(bodies);
    free(rcs);
    return wall;
}

static double mean_of(const struct drv_bench_sample *s, int n, size_t off)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&s[i] + off);
        if (v < 0)
            return -1;
        sum += v;
    }
    return n ? sum / n : -1;
}

static double median_of(const struct drv_bench_sample *s, int n, size_t off)
{
    double v[DRV_BENCH_MAX_STREAMS];
    for (int i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&s[i] + off);
    struct drv_bench_stat st;
    drv_bench_stat_compute(v, n, &st);
    return st.median;
}

static int median_int(const struct drv_bench_sample *s, int n, bool prompt)
{
    double v[DRV_BENCH_MAX_STREAMS];
    for (int i = 0; i < n; i++)
        v[i] = prompt ? s[i].prompt_tokens : s[i].gen_tokens;
    struct drv_bench_stat st;
    drv_bench_stat_compute(v, n, &st);
    return st.n ? (int)lround(st.median) : -1;
}

#define OFF(f) offsetof(struct drv_bench_sample, f)

static void make_rep(const struct drv_bench_sample *s, int n, double wall,
                     struct drv_bench_rep_result *r)
{
    r->concurrency = n;
    r->pp_server = mean_of(s, n, OFF(pp_server));
    r->tg_server = mean_of(s, n, OFF(tg_server));
    r->pp_client = mean_of(s, n, OFF(pp_client));
    r->tg_client = mean_of(s, n, OFF(tg_client));
    r->server_timings = r->tg_server >= 0;
    r->pp_tps = r->pp_server >= 0 ? r->pp_server : r->pp_client;
    r->tg_tps = r->tg_server >= 0 ? r->tg_server : r->tg_client;
    r->ttft_ms = median_of(s, n, OFF(ttft_ms));
    r->e2e_ms = median_of(s, n, OFF(e2e_ms));
    r->wall_ms = wall;
    r->prompt_tokens = median_int(s, n, true);
    r->gen_tokens = median_int(s, n, false);
}

/* Statistics of one field of every repetition: a double at offset off, or the
 * int token counts. */
static void rep_stat(const struct drv_bench_level *lv, size_t off, bool is_int,
                     struct drv_bench_stat *out)
{
    double *v = malloc(sizeof(double) * (size_t)(lv->n_reps ? lv->n_reps : 1));
    if (v == NULL) {
        drv_bench_stat_compute(NULL, 0, out);
        return;
    }
    for (int i = 0; i < lv->n_reps; i++) {
        const char *base = (const char *)&lv->reps[i] + off;
        v[i] = is_int ? *(const int *)base : *(const double *)base;
    }
    drv_bench_stat_compute(v, lv->n_reps, out);
    free(v);
}

#define ROFF(f) offsetof(struct drv_bench_rep_result, f)

static void level_stats(struct drv_bench_level *lv)
{
    rep_stat(lv, ROFF(pp_tps), false, &lv->pp);
    rep_stat(lv, ROFF(tg_tps), false, &lv->tg);
    rep_stat(lv, ROFF(tg_client), false, &lv->tg_client);
    rep_stat(lv, ROFF(tg_server), false, &lv->tg_server);
    rep_stat(lv, ROFF(ttft_ms), false, &lv->ttft);
    rep_stat(lv, ROFF(e2e_ms), false, &lv->e2e);
    rep_stat(lv, ROFF(prompt_tokens), true, &lv->prompt_tokens);
    rep_stat(lv, ROFF(gen_tokens), true, &lv->gen_tokens);
    lv->tg_disagree =
        lv->tg_server.n && lv->tg_client.n && lv->tg_server.median > 0 &&
        fabs(lv->tg_server.median - lv->tg_client.median) / lv->tg_server.median > 0.10;
}

static uint64_t mix(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = seed ^ 0x9e3779b97f4a7c15ULL;
    uint64_t parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        h ^= parts[i] + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h *= 0xff51afd7ed558ccdULL;
    }
    return h;
}

static bool cancelled(const atomic_bool *c)
{
    return c && atomic_load(c);
}

/* The first failed stream's message (they usually fail alike). */
static const char *first_error(const struct drv_bench_sample *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!s[i].ok)
            return s[i].error;
    return "";
}

int drv_bench_run_target(const char *url, const struct drv_bench_params *p,
                         const atomic_bool *cancel, drv_bench_progress_fn progress,
                         void *progress_ud, struct drv_bench_result *r, struct drv_err *err)
{
    memset(r, 0, sizeof(*r));
    r->started = (int64_t)time(NULL);
    r->status = DRV_BENCH_FAILED;
    drv_strlcpy(r->target.url, url, sizeof(r->target.url));
    struct drv_err e;
    drv_err_init(&e);
    char what[400];
    if (progress)
        progress(progress_ud, url, "detecting the server");
    int rc = drv_bench_detect(url, NULL, p->kind, &r->target, &e);
    if (rc == 0) {
        if (progress)
            progress(progress_ud, url, "choosing the model");
        rc = drv_bench_pick_model(&r->target, p->model, p->timeout_ms, &e);
        if (rc == DRV_ENOENT)
            r->status = DRV_BENCH_NO_MODEL;
    } else if (rc == DRV_EUPSTREAM) {
        r->status = DRV_BENCH_UNREACHABLE;
    }
    if (rc) {
        drv_strlcpy(r->error, e.msg, sizeof(r->error));
        return drv_err_set(err, rc, "%s", e.msg);
    }

    struct drv_bench_sample *samples = calloc(DRV_BENCH_MAX_STREAMS, sizeof(*samples));
    if (samples == NULL) {
        drv_strlcpy(r->error, "out of memory", sizeof(r->error));
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    /* a short request first: loads the model and tells how many tokens our words
     * make in its vocabulary (a prompt of p->prompt_tokens words could overflow
     * a small context), then the warm-up proper, which refines that */
    int n_words = p->prompt_tokens;
    if (progress) {
        snprintf(what, sizeof(what), "warm-up (%.127s)", r->target.model_display);
        progress(progress_ud, url, what);
    }
    for (int step = 0; step < 2; step++) {
        int words = step == 0 ? (n_words < 32 ? n_words : 32) : n_words;
        uint64_t seed = mix(p->seed, 0xffff, (uint64_t)step, 0);
        run_streams(&r->target, p, words, step == 0 ? 2 : p->gen_tokens, &seed, 1, cancel, samples);
        if (!samples[0].ok) {
            r->interrupted = cancelled(cancel);
            snprintf(r->error, sizeof(r->error), "%s",
                     r->interrupted ? "interrupted during the warm-up" : samples[0].error);
            rc = drv_err_set(err, DRV_EUPSTREAM, "%s: warm-up: %s", r->target.url, r->error);
            goto out;
        }
        if (samples[0].prompt_tokens > 0) {
            double scaled = (double)words * p->prompt_tokens / samples[0].prompt_tokens;
            double hi = 8.0 * p->prompt_tokens;
            n_words = (int)lround(scaled < 1 ? 1 : scaled > hi ? hi : scaled);
        }
    }

    int total = 0;
    bool stop = false;
    for (int li = 0; li < p->n_levels && !stop; li++) {
        int c = p->levels[li];
        struct drv_bench_level *lv = &r->levels[r->n_levels];
        lv->concurrency = c;
        lv->reps = calloc((size_t)p->reps, sizeof(*lv->reps));
        if (lv->reps == NULL) {
            snprintf(r->error, sizeof(r->error), "out of memory");
            break;
        }
        for (int rep = 0; rep < p->reps; rep++) {
            if (cancelled(cancel)) {
                r->interrupted = true;
                stop = true;
                break;
            }
            if (progress) {
                snprintf(what, sizeof(what), "%.127s, %d stream%s, repetition %d/%d",
                         r->target.model_display, c, c == 1 ? "" : "s", rep + 1, p->reps);
                progress(progress_ud, url, what);
            }
            uint64_t seeds[DRV_BENCH_MAX_STREAMS];
            for (int s = 0; s < c; s++)
                seeds[s] = mix(p->seed, (uint64_t)li, (uint64_t)rep, (uint64_t)s);
            double wall =
                run_streams(&r->target, p, n_words, p->gen_tokens, seeds, c, cancel, samples);
            int ok = 0;
            for (int s = 0; s < c; s++)
                ok += samples[s].ok;
            if (ok < c) {
                if (cancelled(cancel)) {
                    r->interrupted = true;
                } else {
                    snprintf(r->error, sizeof(r->error),
                             "failed at %d stream%s, repetition %d of %d: %s", c, c == 1 ? "" : "s",
                             rep + 1, p->reps, first_error(samples, c));
                }
                stop = true;
                break;
            }
            make_rep(samples, c, wall, &lv->reps[lv->n_reps++]);
            total++;
        }
        if (lv->n_reps > 0) {
            level_stats(lv);
            r->n_levels++;
        } else {
            free(lv->reps);
            lv->reps = NULL;
        }
    }
    if (r->interrupted && !r->error[0])
        snprintf(r->error, sizeof(r->error), "interrupted");
    if (total == 0) {
        r->status = DRV_BENCH_FAILED;
        rc = drv_err_set(err, DRV_EUPSTREAM, "%s: %s", r->target.url,
                         r->error[0] ? r->error : "nothing measured");
    } else {
        r->status = r->error[0] ? DRV_BENCH_PARTIAL : DRV_BENCH_OK;
        rc = 0;
    }
out:
    free(samples);
    return rc;
}
