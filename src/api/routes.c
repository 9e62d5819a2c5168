/* routes: the HTTP face of a backend — Ollama and OpenAI routes on one server.
 *
 * A generation or embedding request is decoded on the HTTP thread; the handler
 * then defers the response (drv_http_stream_defer) and hands the request to the
 * backend, which answers asynchronously on its own thread. The response's status
 * is decided there: a failure before the first token (prompt too long, model
 * failed to load) is a plain HTTP error with its own status, anything else a
 * 200 whose body is each event, encoded. The deferred stream's cancel flag goes
 * with the request, so a client that leaves while its request is still queued
 * cancels it. */
#include "api/api.h"
#include "http/http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct drv_api_server {
    struct drv_backend *backend;
    struct drv_http_server *http;
    drv_api_metrics_fn metrics;
    void *metrics_ud;
    char *hw_json;     /* GET /api/drover/hw; NULL until set */
    char *status_json; /* GET /api/drover/status; NULL until set */
    char version[32];
    drv_api_metrics_fn nodes; /* GET /api/drover/nodes (a gateway's node table) */
    void *nodes_ud;
    char **keys; /* API keys a client must present (Authorization: Bearer); none = open */
    size_t n_keys;
};

/* One generation request in flight. The handler defers the response before it
 * calls generate(); from then on only the backend's sink touches the call (its
 * events come in order on one thread), and the terminal event frees it. */
struct gen_call {
    struct drv_api_enc enc;
    struct drv_buf out; /* one event's encoded bytes (all of them when not streaming) */
    struct drv_http_stream *stream;
    bool begun;     /* the response was committed (start or respond) */
    bool dead;      /* the client is gone or encoding failed: stop generating */
    bool node_sent; /* X-Drover-Node was added */
};

static void call_free(struct gen_call *c)
{
    drv_api_enc_release(&c->enc);
    drv_buf_release(&c->out);
    free(c);
}

static unsigned status_of(int rc)
{
    switch (rc) {
    case DRV_ENOENT:
        return 404;
    case DRV_EINVAL:
        return 400;
    case DRV_ETOOBIG:
        return 503;
    default:
        return 500;
    }
}

/* A complete JSON error response on a deferred stream (503 asks to retry). */
static void stream_respond_error(struct drv_http_stream *stream, enum drv_api_wire wire,
                                 unsigned status, const char *msg)
{
    struct drv_buf b;
    drv_buf_init(&b, 1 << 16);
    if (status == 503)
        drv_http_stream_add_header(stream, "Retry-After", "1");
    if (drv_api_error_body(wire, (int)status, msg, &b) != 0) {
        drv_buf_reset(&b);
        drv_buf_appendf(&b, "{\"error\":\"%s\"}", status >= 500 ? "internal error" : "error");
    }
    drv_http_stream_respond(stream, status, "application/json", b.data, b.len);
    drv_buf_release(&b);
}

/* The encoder's bytes so far become the whole response, with its status. */
static void call_respond(struct gen_call *c)
{
    int status = drv_api_enc_status(&c->enc);
    if (c->out.len == 0) { /* the terminal event could not be encoded */
        stream_respond_error(c->stream, c->enc.wire, 500, "cannot encode the response");
        return;
    }
    if (status == 503)
        drv_http_stream_add_header(c->stream, "Retry-After", "1");
    drv_http_stream_respond(c->stream, (unsigned)status, drv_api_enc_content_type(&c->enc),
                            c->out.data, c->out.len);
}

static int call_sink(void *ud, const struct drv_gen_event *ev)
{
    struct gen_call *c = ud;
    bool terminal = ev->kind == DRV_EV_DONE || ev->kind == DRV_EV_ERROR;
    if (!c->begun) {
        /* headers still open: say which fleet node answers, and warn (non-streaming
         * responses only learn the warning before they are committed) */
        if (ev->node && !c->node_sent) {
            c->node_sent = true;
            drv_http_stream_add_header(c->stream, "X-Drover-Node", ev->node);
        }
        if (ev->kind == DRV_EV_DONE && ev->stats.warning)
            drv_http_stream_add_header(c->stream, "X-Drover-Warning", ev->stats.warning);
    }
    /* the terminal event is always encoded: it ends what was produced so far */
    if ((!c->dead || terminal) && drv_api_enc_event(&c->enc, ev, &c->out) != 0)
        c->dead = true; /* too much text or out of memory */
    if (!c->begun && c->enc.stream && !c->dead) {
        /* the first event decides: an error before anything was sent is a plain
         * HTTP error; anything else starts a streaming 200 */
        c->begun = true;
        if (drv_api_enc_status(&c->enc) != 200) {
            call_respond(c);
            drv_buf_reset(&c->out);
        } else {
            drv_api_enc_headers_sent(&c->enc); /* later errors go in-stream */
            if (drv_http_stream_start(c->stream, 200, drv_api_enc_content_type(&c->enc)) != 0)
                c->dead = true;
        }
    }
    if (c->begun && c->out.len) {
        if (!c->dead && drv_http_stream_write(c->stream, c->out.data, c->out.len) != 0)
            c->dead = true;
        drv_buf_reset(&c->out);
    }
    if (terminal) {
        if (!c->begun) /* non-streaming (or failed before the first event was sent) */
            call_respond(c);
        drv_http_stream_close(c->stream);
        call_free(c);
        return 1;
    }
    return c->dead || atomic_load(drv_http_stream_cancel_flag(c->stream));
}

static void respond_error(struct drv_http_req *req, enum drv_api_wire wire, unsigned status,
                          const char *msg)
{
    struct drv_buf b;
    drv_buf_init(&b, 1 << 16);
    if (status == 503)
        drv_http_req_add_header(req, "Retry-After", "1");
    if (drv_api_error_body(wire, (int)status, msg, &b) == 0)
        drv_http_respond(req, status, "application/json", b.data, b.len);
    else
        drv_http_respond_json_error(req, status, msg);
    drv_buf_release(&b);
}

typedef int (*decode_fn)(const char *, size_t, struct drv_api_req *, struct drv_err *);

/* drv_gen_lend_fn: the connection's thread runs the backend's steps */
static void lend_thread(void *lend_ud, int (*fn)(void *ud), void *ud)
{
    drv_http_stream_set_pump(lend_ud, fn, ud);
}

static void handle_generation(struct drv_http_req *req, struct drv_api_server *s,
                              enum drv_api_wire wire, decode_fn decode)
{
    size_t len;
    const char *body = drv_http_req_body(req, &len);
    struct drv_api_req ar;
    struct drv_err err;
    drv_err_init(&err);
    int rc = decode(body, len, &ar, &err);
    if (rc) {
        respond_error(req, wire, rc == DRV_ETOOBIG ? 413 : 400, err.msg);
        drv_api_req_release(&ar);
        return;
    }
    struct gen_call *c = calloc(1, sizeof(*c));
    if (c == NULL ||
        drv_api_enc_init(&c->enc, wire, ar.stream, ar.include_usage, ar.gen.model) != 0) {
        free(c);
        drv_api_req_release(&ar);
        respond_error(req, wire, 500, "out of memory");
        return;
    }
    drv_buf_init(&c->out, DRV_API_MAX_TEXT * 2);
    /* defer first, so that the request carries the stream's cancel flag: a client
     * that leaves while the request is still queued cancels it */
    c->stream = drv_http_stream_defer(req);
    if (c->stream == NULL) {
        call_free(c);
        drv_api_req_release(&ar);
        respond_error(req, wire, 500, "out of memory");
        return;
    }
    struct drv_http_stream *stream = c->stream;
    ar.gen.cancel = drv_http_stream_cancel_flag(stream);
    ar.gen.route = drv_http_req_header(req, "X-Drover-Route");
    ar.gen.whole = !ar.stream;
    ar.gen.lend = lend_thread;
    ar.gen.lend_ud = stream;
    rc = s->backend->ops->generate(s->backend, &ar.gen, call_sink, c, &err);
    drv_api_req_release(&ar); /* the backend copied what it needs */
    if (rc) {                 /* no event was or will be sent: c is still ours */
        stream_respond_error(stream, wire, status_of(rc), err.msg);
        drv_http_stream_close(stream);
        call_free(c);
    }
    /* else c belongs to the sink, which may already have freed it */
}
static struct drv_api_server *srv_of(void *ud)
{
    return ud;
}

static void h_ollama_generate(struct drv_http_req *req, void *ud)
{
    handle_generation(req, srv_of(ud), DRV_WIRE_OLLAMA_GENERATE, drv_api_ollama_decode_generate);
}

static void h_ollama_chat(struct drv_http_req *req, void *ud)
{
    handle_generation(req, srv_of(ud), DRV_WIRE_OLLAMA_CHAT, drv_api_ollama_decode_chat);
}

static void h_openai_completion(struct drv_http_req *req, void *ud)
{
    handle_generation(req, srv_of(ud), DRV_WIRE_OPENAI_COMPLETION,
                      drv_api_openai_decode_completion);
}

static void h_openai_chat(struct drv_http_req *req, void *ud)
{
    handle_generation(req, srv_of(ud), DRV_WIRE_OPENAI_CHAT, drv_api_openai_decode_chat);
}

static void respond_buf(struct drv_http_req *req, int rc, struct drv_buf *b, const char *ctype)
{
    if (rc == 0)
        drv_http_respond(req, 200, ctype, b->data, b->len);
    else
        drv_http_respond_json_error(req, 500, "cannot encode the response");
    drv_buf_release(b);
}

typedef int (*list_enc_fn)(const struct drv_model_desc *, size_t, struct drv_buf *);

static void handle_list(struct drv_http_req *req, void *ud, bool running, list_enc_fn enc)
{
    struct drv_model_desc *d;
    int n = drv_backend_list(srv_of(ud)->backend, running, &d);
    if (n < 0) {
        drv_http_respond_json_error(req, 500, "out of memory");
        return;
    }
    struct drv_buf b;
    drv_buf_init(&b, 64u << 20);
    int rc = enc(d, (size_t)n, &b);
    free(d);
    respond_buf(req, rc, &b, "application/json");
}

static void h_tags(struct drv_http_req *req, void *ud)
{
    handle_list(req, ud, false, drv_api_ollama_tags);
}

static void h_ps(struct drv_http_req *req, void *ud)
{
    handle_list(req, ud, true, drv_api_ollama_ps);
}

static void h_models(struct drv_http_req *req, void *ud)
{
    handle_list(req, ud, false, drv_api_openai_models);
}

static void h_show(struct drv_http_req *req, void *ud)
{
    struct drv_api_server *s = srv_of(ud);
    size_t len;
    const char *body = drv_http_req_body(req, &len);
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    const char *name = json_string_value(json_object_get(j, "model"));
    if (name == NULL)
        name = json_string_value(json_object_get(j, "name")); /* older clients */
    if (name == NULL || name[0] == '\0') {
        json_decref(j);
        drv_http_respond_json_error(req, 400,
                                    j ? "model is required" : "request body is not valid JSON");
        return;
    }
    struct drv_model_desc *d;
    int n = drv_backend_list(s->backend, false, &d);
    char want[160];
    snprintf(want, sizeof(want), strchr(name, ':') ? "%s" : "%s:latest", name);
    const struct drv_model_desc *m = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(d[i].name, want) == 0)
            m = &d[i];
    if (m == NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), "model \"%s\" not found", name);
        drv_http_respond_json_error(req, 404, msg);
        free(d);
        json_decref(j);
        return;
    }
    /* a gateway asks the node that has the model, which knows more than its listing */
    if (s->backend->ops->show) {
        struct drv_buf shown;
        drv_buf_init(&shown, 64u << 20);
        struct drv_err err;
        drv_err_init(&err);
        if (s->backend->ops->show(s->backend, name, json_is_true(json_object_get(j, "verbose")),
                                  &shown, &err) == 0) {
            drv_http_respond(req, 200, "application/json", shown.data, shown.len);
            drv_buf_release(&shown);
            free(d);
            json_decref(j);
            return;
        }
        drv_buf_release(&shown);
    }
    char key[96];
    json_t *info = json_object();
    json_object_set_new(info, "general.architecture", json_string(m->family));
    if (m->n_params) /* unknown (a node's listing without it): not sent, rather than 0 */
        json_object_set_new(info, "general.parameter_count", json_integer((json_int_t)m->n_params));
    /* the shape, and the rest of it that sizing needs (drover doctor reads these
     * as it reads a GGUF), under Ollama's keys, when known */
    const struct {
        const char *suffix;
        uint64_t v;
    } more[] = {
        {"context_length", m->n_ctx_train},
        {"embedding_length", m->embedding_length},
        {"block_count", m->block_count},
        {"attention.head_count", m->head_count},
        {"attention.head_count_kv", m->head_count_kv},
        {"attention.key_length", m->key_length},
        {"attention.value_length", m->value_length},
        {"attention.key_length_swa", m->key_length_swa},
        {"attention.value_length_swa", m->value_length_swa},
        {"attention.sliding_window", m->sliding_window},
        {"feed_forward_length", m->feed_forward_length},
        {"expert_count", m->expert_count},
        {"expert_used_count", m->expert_used_count},
        {"expert_feed_forward_length", m->expert_feed_forward_length},
        {"vocab_size", m->vocab_size},
    };
    /* keys are named by the architecture: none known (a llama-server listing),
     * none sent */
    for (size_t i = 0; m->family[0] && i < sizeof(more) / sizeof(more[0]); i++) {
        if (more[i].v == 0)
            continue;
        snprintf(key, sizeof(key), "%s.%s", m->family, more[i].suffix);
        json_object_set_new(info, key, json_integer(more[i].v));
    }
    json_t *caps = json_array();
    json_array_append_new(caps, json_string("completion"));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:o, s:s, s:s}, s:o, s:o, s:s}", "modelfile", "",
        "parameters", "", "template", "", "details", "parent_model", "", "format", "gguf", "family",
        m->family, "families", m->family[0] ? json_pack("[s]", m->family) : json_array(),
        "parameter_size", m->parameter_size, "quantization_level", m->quantization, "model_info",
        info, "capabilities", caps, "modified_at", "");
    char *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (out)
        drv_http_respond(req, 200, "application/json", out, strlen(out));
    else
        drv_http_respond_json_error(req, 500, "cannot encode the response");
    free(out);
    json_decref(o);
    free(d);
    json_decref(j);
}

static void h_root(struct drv_http_req *req, void *ud)
{
    (void)ud;
    static const char msg[] = "Ollama is running";
    drv_http_respond(req, 200, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
}

static void h_version(struct drv_http_req *req, void *ud)
{
    char b[96];
    int n = snprintf(b, sizeof(b), "{\"version\":\"%s\"}", srv_of(ud)->version);
    drv_http_respond(req, 200, "application/json", b, (size_t)n);
}

static void h_health(struct drv_http_req *req, void *ud)
{
    (void)ud;
    static const char ok[] = "{\"status\":\"ok\"}";
    drv_http_respond(req, 200, "application/json", ok, sizeof(ok) - 1);
}

static void h_metrics(struct drv_http_req *req, void *ud)
{
    struct drv_api_server *s = srv_of(ud);
    struct drv_buf b;
    drv_buf_init(&b, 1 << 20);
    int rc = s->metrics ? s->metrics(s->metrics_ud, &b) : 0;
    respond_buf(req, rc, &b, "text/plain; version=0.0.4; charset=utf-8");
}

/* ---- embeddings ---- */

enum embed_wire { EMBED_OLLAMA, EMBED_OLLAMA_LEGACY, EMBED_OPENAI };

/* One embedding request in flight; the callback (called exactly once) answers
 * the deferred stream and frees it. */
struct embed_call {
    enum embed_wire wire;
    bool base64;
    struct drv_http_stream *stream;
};

static void embed_cb(void *ud, const struct drv_embed_result *r)
{
    struct embed_call *c = ud;
    enum drv_api_wire ew = c->wire == EMBED_OPENAI ? DRV_WIRE_OPENAI_CHAT : DRV_WIRE_OLLAMA_CHAT;
    if (r->status != 200) {
        stream_respond_error(c->stream, ew, (unsigned)r->status, r->message);
    } else {
        struct drv_api_embed_result er = {.model = r->model,
                                          .data = r->data,
                                          .n = r->n,
                                          .dim = r->dim,
                                          .total_ns = r->total_ns,
                                          .load_ns = r->load_ns,
                                          .prompt_tokens = r->prompt_tokens};
        struct drv_buf body;
        drv_buf_init(&body, 1u << 30);
        int rc = c->wire == EMBED_OLLAMA ? drv_api_ollama_embed_response(&er, &body)
                 : c->wire == EMBED_OLLAMA_LEGACY
                     ? drv_api_ollama_embeddings_response(&er, &body)
                     : drv_api_openai_embeddings_response(&er, c->base64, &body);
        if (rc == 0)
            drv_http_stream_respond(c->stream, 200, "application/json", body.data, body.len);
        else
            stream_respond_error(c->stream, ew, 500, "cannot encode the embeddings");
        drv_buf_release(&body);
    }
    drv_http_stream_close(c->stream);
    free(c);
}

typedef int (*embed_decode_fn)(const char *, size_t, struct drv_api_embed_req *, struct drv_err *);

static void handle_embed(struct drv_http_req *req, struct drv_api_server *s, enum embed_wire wire,
                         embed_decode_fn decode)
{
    enum drv_api_wire ew = wire == EMBED_OPENAI ? DRV_WIRE_OPENAI_CHAT : DRV_WIRE_OLLAMA_CHAT;
    size_t len;
    const char *body = drv_http_req_body(req, &len);
    struct drv_api_embed_req ar;
    struct drv_err err;
    drv_err_init(&err);
    int rc = decode(body, len, &ar, &err);
    if (rc) {
        respond_error(req, ew, rc == DRV_ETOOBIG ? 413 : 400, err.msg);
        drv_api_embed_req_release(&ar);
        return;
    }
    if (s->backend->ops->embed == NULL) {
        drv_api_embed_req_release(&ar);
        respond_error(req, ew, 501, "this backend does not compute embeddings");
        return;
    }
    struct embed_call *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->stream = drv_http_stream_defer(req)) == NULL) {
        free(c);
        drv_api_embed_req_release(&ar);
        respond_error(req, ew, 500, "out of memory");
        return;
    }
    c->wire = wire;
    c->base64 = ar.base64;
    struct drv_http_stream *stream = c->stream;
    struct drv_embed_request er = {.model = ar.model,
                                   .inputs = ar.inputs,
                                   .n_inputs = ar.n_inputs,
                                   .truncate = ar.truncate,
                                   .keep_alive_ms = ar.keep_alive_ms};
    rc = s->backend->ops->embed(s->backend, &er, embed_cb, c, &err);
    drv_api_embed_req_release(&ar);
    if (rc) { /* the callback will not run: c is still ours */
        stream_respond_error(stream, ew, status_of(rc), err.msg);
        drv_http_stream_close(stream);
        free(c);
    }
}

static void h_ollama_embed(struct drv_http_req *req, void *ud)
{
    handle_embed(req, srv_of(ud), EMBED_OLLAMA, drv_api_ollama_decode_embed);
}

static void h_ollama_embeddings(struct drv_http_req *req, void *ud)
{
    handle_embed(req, srv_of(ud), EMBED_OLLAMA_LEGACY, drv_api_ollama_decode_embeddings);
}

static void h_openai_embeddings(struct drv_http_req *req, void *ud)
{
    handle_embed(req, srv_of(ud), EMBED_OPENAI, drv_api_openai_decode_embeddings);
}

static void h_nodes(struct drv_http_req *req, void *ud)
{
    struct drv_api_server *s = srv_of(ud);
    if (s->nodes == NULL) {
        drv_http_respond_json_error(req, 404, "this server fronts no other nodes");
        return;
    }
    struct drv_buf b;
    drv_buf_init(&b, 16u << 20);
    respond_buf(req, s->nodes(s->nodes_ud, &b), &b, "application/json");
}

/* A JSON document set once at start-up (drv_api_server_set_hw/_status), or a
 * 404 saying what this node does not report. */
static void respond_doc(struct drv_http_req *req, const char *json, const char *missing)
{
    if (json == NULL) {
        drv_http_respond_json_error(req, 404, missing);
        return;
    }
    drv_http_respond(req, 200, "application/json", json, strlen(json));
}

static void h_hw(struct drv_http_req *req, void *ud)
{
    respond_doc(req, srv_of(ud)->hw_json, "this node does not report its hardware");
}

static void h_status(struct drv_http_req *req, void *ud)
{
    respond_doc(req, srv_of(ud)->status_json, "this node does not report its settings");
}

/* Constant time in the key's content: every configured key is compared over
 * its whole length, whatever matches. */
static bool key_ok(const struct drv_api_server *s, const char *auth)
{
    const char *given = "";
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        given = auth + 7;
    size_t glen = strlen(given);
    unsigned ok = 0;
    for (size_t k = 0; k < s->n_keys; k++) {
        const char *key = s->keys[k];
        size_t klen = strlen(key);
        unsigned diff = (unsigned)(klen ^ glen);
        for (size_t i = 0; i < klen; i++)
            diff |= (unsigned char)key[i] ^ (unsigned char)(i < glen ? given[i] : 0);
        ok |= diff == 0;
    }
    return ok != 0;
}

/* Liveness answers stay open; everything else needs a key when keys are set. */
static bool authorized(struct drv_http_req *req, struct drv_api_server *s)
{
    const char *path = drv_http_req_path(req);
    if (s->n_keys == 0 || strcmp(path, "/") == 0 || strcmp(path, "/health") == 0)
        return true;
    if (key_ok(s, drv_http_req_header(req, "Authorization")))
        return true;
    drv_http_req_add_header(req, "WWW-Authenticate", "Bearer");
    if (strncmp(path, "/v1/", 4) == 0)
        respond_error(req, DRV_WIRE_OPENAI_CHAT, 401, "invalid or missing API key");
    else
        drv_http_respond_json_error(req, 401, "invalid or missing API key");
    return false;
}

#define GUARDED(name)                                                                              \
    static void g_##name(struct drv_http_req *req, void *ud)                                       \
    {                                                                                              \
        if (authorized(req, srv_of(ud)))                                                           \
            name(req, ud);                                                                         \
    }
GUARDED(h_version)
GUARDED(h_tags)
GUARDED(h_ps)
GUARDED(h_show)
GUARDED(h_ollama_generate)
GUARDED(h_ollama_chat)
GUARDED(h_ollama_embed)
GUARDED(h_ollama_embeddings)
GUARDED(h_models)
GUARDED(h_openai_completion)
GUARDED(h_openai_chat)
GUARDED(h_openai_embeddings)
GUARDED(h_metrics)
GUARDED(h_hw)
GUARDED(h_status)
GUARDED(h_nodes)

static const struct drv_http_route routes[] = {
    {"GET", "/", h_root},
    {"GET", "/api/version", g_h_version},
    {"GET", "/api/tags", g_h_tags},
    {"GET", "/api/ps", g_h_ps},
    {"POST", "/api/show", g_h_show},
    {"POST", "/api/generate", g_h_ollama_generate},
    {"POST", "/api/chat", g_h_ollama_chat},
    {"POST", "/api/embed", g_h_ollama_embed},
    {"POST", "/api/embeddings", g_h_ollama_embeddings},
    {"GET", "/v1/models", g_h_models},
    {"POST", "/v1/completions", g_h_openai_completion},
    {"POST", "/v1/chat/completions", g_h_openai_chat},
    {"POST", "/v1/embeddings", g_h_openai_embeddings},
    {"GET", "/health", h_health},
    {"GET", "/metrics", g_h_metrics},
    {"GET", "/api/drover/hw", g_h_hw},
    {"GET", "/api/drover/status", g_h_status},
    {"GET", "/api/drover/nodes", g_h_nodes},
};

struct drv_api_server *drv_api_server_new(struct drv_backend *backend,
                                          const struct drv_http_params *http,
                                          drv_api_metrics_fn metrics, void *metrics_ud,
                                          struct drv_err *err)
{
    struct drv_api_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        drv_err_set(err, DRV_ENOMEM, "out of memory");
        return NULL;
    }
    s->backend = backend;
    s->metrics = metrics;
    s->metrics_ud = metrics_ud;
#ifdef DROVER_VERSION
    drv_strlcpy(s->version, DROVER_VERSION, sizeof(s->version));
#else
    drv_strlcpy(s->version, "0.0.0", sizeof(s->version));
#endif
    s->http = drv_http_server_new(http, routes, sizeof(routes) / sizeof(routes[0]), s, err);
    if (s->http == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

uint16_t drv_api_server_port(const struct drv_api_server *s)
{
    return drv_http_server_port(s->http);
}

/* *slot = a copy of json; *slot unchanged when out of memory. */
static int set_doc(char **slot, const char *json)
{
    char *copy = strdup(json);
    if (copy == NULL)
        return DRV_ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

int drv_api_server_set_hw(struct drv_api_server *s, const char *json)
{
    return set_doc(&s->hw_json, json);
}

int drv_api_server_set_status(struct drv_api_server *s, const char *json)
{
    return set_doc(&s->status_json, json);
}

int drv_api_server_set_keys(struct drv_api_server *s, const char *const *keys, size_t n)
{
    char **k = calloc(n ? n : 1, sizeof(*k));
    if (k == NULL)
        return DRV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((k[i] = strdup(keys[i])) == NULL) {
            while (i--)
                free(k[i]);
            free(k);
            return DRV_ENOMEM;
        }
    }
    for (size_t i = 0; i < s->n_keys; i++)
        free(s->keys[i]);
    free(s->keys);
    s->keys = k;
    s->n_keys = n;
    return 0;
}

void drv_api_server_set_nodes(struct drv_api_server *s, drv_api_metrics_fn fn, void *ud)
{
    s->nodes = fn;
    s->nodes_ud = ud;
}

void drv_api_server_free(struct drv_api_server *s)
{
    if (s == NULL)
        return;
    drv_http_server_free(s->http);
    for (size_t i = 0; i < s->n_keys; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->hw_json);
    free(s->status_json);
    free(s);
}
