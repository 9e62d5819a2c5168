/* api: the Ollama wire format (/api/generate, /api/chat, /api/embed,
 * /api/embeddings, /api/tags, /api/ps). */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- decoding ---------------------------------------------------------------- */

static int decode_format(struct drv_api_req *r, json_t *v, struct drv_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v) && !strcmp(json_string_value(v), "json")) {
        r->gen.format = DRV_FORMAT_JSON;
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) == 0)
        return 0;
    if (!json_is_object(v))
        return drv_err_set(err, DRV_EINVAL, "format must be \"json\" or a JSON schema object");
    char *schema = json_dumps(v, JSON_COMPACT);
    const char *kept = schema ? api_keep(r, schema, strlen(schema)) : NULL;
    free(schema);
    if (kept == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    r->gen.format = DRV_FORMAT_SCHEMA;
    r->gen.format_schema = kept;
    return 0;
}

/* options{}: unknown options (num_thread, num_gpu, num_batch, ...) are ignored. */
static int decode_options(struct drv_api_req *r, json_t *o, struct drv_err *err)
{
    if (o == NULL || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return drv_err_set(err, DRV_EINVAL, "options must be an object");
    struct drv_gen_request *g = &r->gen;
    struct drv_sampling *s = &g->sampling;
    const char *p = "options.";
    int rc;
    if ((rc = api_get_i32(o, p, "num_ctx", &g->num_ctx, err)) ||
        (rc = api_get_i32(o, p, "num_predict", &g->num_predict, err)) ||
        (rc = api_get_float(o, p, "temperature", &s->temperature, err)) ||
        (rc = api_get_i32(o, p, "top_k", &s->top_k, err)) ||
        (rc = api_get_float(o, p, "top_p", &s->top_p, err)) ||
        (rc = api_get_float(o, p, "min_p", &s->min_p, err)) ||
        (rc = api_get_i64(o, p, "seed", &s->seed, err)) ||
        (rc = api_get_float(o, p, "repeat_penalty", &s->repeat_penalty, err)) ||
        (rc = api_get_i32(o, p, "repeat_last_n", &s->repeat_last_n, err)) ||
        (rc = api_get_float(o, p, "presence_penalty", &s->presence_penalty, err)) ||
        (rc = api_get_float(o, p, "frequency_penalty", &s->frequency_penalty, err)) ||
        (rc = api_stop(r, json_object_get(o, "stop"), "options.stop", err)))
        return rc;
    return 0;
}

/* Fields /api/generate and /api/chat share. */
static int decode_common(struct drv_api_req *r, struct drv_err *err)
{
    json_t *root = r->root;
    int rc;
    r->stream = true;
    if ((rc = api_model(root, &r->gen.model, err)) ||
        (rc = decode_format(r, json_object_get(root, "format"), err)) ||
        (rc = decode_options(r, json_object_get(root, "options"), err)) ||
        (rc = api_get_bool(root, "", "stream", &r->stream, err)) ||
        (rc = api_keep_alive(json_object_get(root, "keep_alive"), &r->gen.keep_alive_ms, err)) ||
        (rc = api_think(json_object_get(root, "think"), "think", false, &r->gen.think, err)) ||
        (rc = api_get_bool(root, "", "truncate", &r->gen.truncate, err)))
        return rc;
    return 0;
}

static const char *empty_to_null(const char *s)
{
    return (s && *s) ? s : NULL;
}

int drv_api_ollama_decode_generate(const char *body, size_t len, struct drv_api_req *out,
                                   struct drv_err *err)
{
    api_req_begin(out);
    int rc = api_load(body, len, &out->root, err);
    if (rc)
        goto fail;
    struct drv_gen_request *g = &out->gen;
    g->kind = DRV_GEN_COMPLETE;
    /* images[] is accepted and ignored: no vision support yet */
    if ((rc = decode_common(out, err)) ||
        (rc = api_get_str(out->root, "", "prompt", &g->prompt, err)) ||
        (rc = api_get_str(out->root, "", "suffix", &g->suffix, err)) ||
        (rc = api_get_str(out->root, "", "system", &g->system, err)) ||
        (rc = api_get_bool(out->root, "", "raw", &g->raw, err)))
        goto fail;
    /* Ollama: an empty system means the model's own, an empty suffix none */
    g->system = empty_to_null(g->system);
    g->suffix = empty_to_null(g->suffix);
    return 0;
fail:
    drv_api_req_release(out);
    return rc;
}

static const char *ollama_role(const char *s)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (!strcmp(s, roles[i]))
            return roles[i];
    return NULL;
}

static int decode_messages(struct drv_api_req *r, json_t *v, struct drv_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0; /* no messages: Ollama loads the model and answers empty */
    if (!json_is_array(v))
        return drv_err_set(err, DRV_EINVAL,
                           "messages must be an array of objects with role and content");
    size_t n = json_array_size(v);
    if (n > DRV_API_MAX_MESSAGES)
        return drv_err_set(err, DRV_ETOOBIG, "messages has %zu entries; at most %d are allowed", n,
                           DRV_API_MAX_MESSAGES);
    r->msgs = calloc(n ? n : 1, sizeof(*r->msgs));
    if (r->msgs == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(v, i);
        json_t *role = json_object_get(m, "role");
        json_t *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role))
            return drv_err_set(err, DRV_EINVAL,
                               "messages must be an array of objects with role and content "
                               "(messages[%zu] is not)",
                               i);
        r->msgs[i].role = ollama_role(json_string_value(role));
        if (r->msgs[i].role == NULL)
            return drv_err_set(err, DRV_EINVAL,
                               "messages[%zu].role \"%.32s\" is unknown (want system, user, "
                               "assistant or tool)",
                               i, json_string_value(role));
        if (content != NULL && !json_is_null(content) && !json_is_string(content))
            return drv_err_set(err, DRV_EINVAL, "messages[%zu].content must be a string", i);
        /* thinking, images and tool_calls of a message are accepted and ignored */
        r->msgs[i].content = json_is_string(content) ? json_string_value(content) : "";
    }
    r->gen.messages = r->msgs;
    r->gen.n_messages = n;
    return 0;
}

int drv_api_ollama_decode_chat(const char *body, size_t len, struct drv_api_req *out,
                               struct drv_err *err)
{
    api_req_begin(out);
    int rc = api_load(body, len, &out->root, err);
    if (rc)
        goto fail;
    out->gen.kind = DRV_GEN_CHAT;
    /* tools[] is accepted and ignored: no tool calling yet */
    if ((rc = decode_common(out, err)) ||
        (rc = decode_messages(out, json_object_get(out->root, "messages"), err)))
        goto fail;
    return 0;
fail:
    drv_api_req_release(out);
    return rc;
}

static int embed_begin(const char *body, size_t len, struct drv_api_embed_req *out,
                       struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    drv_api_embed_req_release(out); /* the defaults */
    int rc;
    if ((rc = api_load(body, len, &out->root, err)) ||
        (rc = api_model(out->root, &out->model, err)) ||
        (rc = api_keep_alive(json_object_get(out->root, "keep_alive"), &out->keep_alive_ms, err)))
        return rc;
    return 0;
}

int drv_api_ollama_decode_embed(const char *body, size_t len, struct drv_api_embed_req *out,
                                struct drv_err *err)
{
    int rc;
    if ((rc = embed_begin(body, len, out, err)) ||
        (rc = api_get_bool(out->root, "", "truncate", &out->truncate, err)) ||
        (rc = api_embed_inputs(out, json_object_get(out->root, "input"), "input", err))) {
        drv_api_embed_req_release(out);
        return rc;
    }
    return 0;
}

int drv_api_ollama_decode_embeddings(const char *body, size_t len, struct drv_api_embed_req *out,
                                     struct drv_err *err)
{
    int rc;
    json_t *prompt = NULL;
    if ((rc = embed_begin(body, len, out, err)))
        goto fail;
    prompt = json_object_get(out->root, "prompt");
    if (prompt != NULL && !json_is_null(prompt) && !json_is_string(prompt)) {
        rc = drv_err_set(err, DRV_EINVAL, "prompt must be a string");
        goto fail;
    }
    if (json_is_string(prompt) && (rc = api_embed_inputs(out, prompt, "prompt", err)))
        goto fail;
    return 0;
fail:
    drv_api_embed_req_release(out);
    return rc;
}

/* ---- encoding ------------------------------------------------------------------ */

static json_int_t ns_int(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
}

/* Ollama's statistics in its order; a zero one is omitted on the wire. */
#define N_STATS 6
struct stat_field {
    const char *key;
    uint64_t v;
};

static void stat_fields(const struct drv_gen_stats *st, struct stat_field m[N_STATS])
{
    m[0] = (struct stat_field){"total_duration", st->total_ns};
    m[1] = (struct stat_field){"load_duration", st->load_ns};
    m[2] = (struct stat_field){"prompt_eval_count",
                               st->prompt_tokens > 0 ? (uint64_t)st->prompt_tokens : 0};
    m[3] = (struct stat_field){"prompt_eval_duration", st->prompt_ns};
    m[4] = (struct stat_field){"eval_count", st->eval_tokens > 0 ? (uint64_t)st->eval_tokens : 0};
    m[5] = (struct stat_field){"eval_duration", st->eval_ns};
}

static int add_stats(json_t *o, const struct drv_gen_stats *st)
{
    struct stat_field m[N_STATS];
    stat_fields(st, m);
    for (size_t i = 0; i < N_STATS; i++)
        if (m[i].v && json_object_set_new(o, m[i].key, json_integer(ns_int(m[i].v))))
            return -1;
    return 0;
}

static json_t *text_or_empty(const struct drv_buf *b)
{
    return json_stringn_nocheck(b->data ? b->data : "", b->len);
}

/* The body of one line: model, created_at, then the answer fields. */
static json_t *line(const struct drv_api_enc *enc, const struct drv_gen_event *ev)
{
    char ts[64];
    api_now_rfc3339(ts, sizeof(ts));
    return json_pack("{s:o,s:s}", "model", api_jstr(api_enc_model(enc, ev)), "created_at", ts);
}

/* Lines written directly (put_*) are what the jansson ones below write, byte for
 * byte (test_api checks): a streamed token costs no object building. Either
 * fails leaving out unchanged, and the jansson one then says why (or repairs a
 * model name that is not UTF-8). */

/* {"model":M,"created_at":"T", */
static int put_head(const struct drv_api_enc *enc, const struct drv_gen_event *ev,
                    struct drv_buf *out)
{
    char ts[64];
    api_now_rfc3339(ts, sizeof(ts));
    const char *m = api_enc_model(enc, ev);
    int rc = api_put(out, "{\"model\":");
    if (rc == 0)
        rc = api_put_jstr(out, m, strlen(m));
    if (rc == 0)
        rc = api_put(out, ",\"created_at\":\"");
    if (rc == 0)
        rc = api_put(out, ts);
    if (rc == 0)
        rc = api_put(out, "\",");
    return rc;
}

static int put_piece(const struct drv_api_enc *enc, const struct drv_gen_event *ev,
                     const char *text, size_t len, struct drv_buf *out)
{
    size_t mark = out->len;
    bool chat = enc->wire == DRV_WIRE_OLLAMA_CHAT;
    int rc = put_head(enc, ev, out);
    if (rc == 0)
        rc = api_put(out,
                     chat ? "\"message\":{\"role\":\"assistant\",\"content\":" : "\"response\":");
    if (rc == 0 && ev->kind == DRV_EV_THINKING)
        rc = api_put(out, "\"\",\"thinking\":");
    if (rc == 0)
        rc = api_put_jstr(out, text, len);
    if (rc == 0)
        rc = api_put(out, chat ? "},\"done\":false}\n" : ",\"done\":false}\n");
    if (rc)
        api_truncate(out, mark);
    return rc;
}

static int put_done(const struct drv_api_enc *enc, const struct drv_gen_event *ev,
                    struct drv_buf *out)
{
    size_t mark = out->len;
    bool chat = enc->wire == DRV_WIRE_OLLAMA_CHAT;
    bool full = !enc->stream;
    bool has_thinking = full && enc->text[1].len > 0;
    const struct drv_buf *answer = &enc->text[0], *thinking = &enc->text[1];
    int rc = put_head(enc, ev, out);
    if (rc == 0)
        rc = api_put(out,
                     chat ? "\"message\":{\"role\":\"assistant\",\"content\":" : "\"response\":");
    if (rc == 0)
        rc = full && answer->len ? api_put_jstr(out, answer->data, answer->len)
                                 : api_put(out, "\"\"");
    if (rc == 0 && has_thinking) {
        rc = api_put(out, ",\"thinking\":");
        if (rc == 0)
            rc = api_put_jstr(out, thinking->data, thinking->len);
    }
    if (rc == 0 && chat)
        rc = api_put(out, "}");
    if (rc == 0)
        rc = api_put(out, ",\"done\":true,\"done_reason\":\"");
    if (rc == 0)
        rc = api_put(out, api_done_reason(ev->stats.done_reason));
    if (rc == 0)
        rc = api_put(out, "\"");
    const struct drv_gen_stats *st = &ev->stats;
    struct stat_field sf[N_STATS];
    stat_fields(st, sf);
    for (size_t i = 0; rc == 0 && i < N_STATS; i++)
        if (sf[i].v) {
            rc = api_put(out, ",\"");
            if (rc == 0)
                rc = api_put(out, sf[i].key);
            if (rc == 0)
                rc = api_put(out, "\":");
            if (rc == 0)
                rc = api_put_u64(out, (uint64_t)ns_int(sf[i].v));
        }
    if (rc == 0 && st->warning) {
        rc = api_put(out, ",\"drover_warning\":");
        if (rc == 0)
            rc = api_put_jstr(out, st->warning, strlen(st->warning));
    }
    if (rc == 0)
        rc = api_put(out, enc->stream ? "}\n" : "}");
    if (rc)
        api_truncate(out, mark);
    return rc;
}

static int enc_piece(struct drv_api_enc *enc, const struct drv_gen_event *ev, const char *text,
                     size_t len, struct drv_buf *out)
{
    if (put_piece(enc, ev, text, len, out) == 0)
        return 0;
    bool thinking = ev->kind == DRV_EV_THINKING;
    json_t *t = json_stringn_nocheck(text, len);
    json_t *j = line(enc, ev);
    int bad = j == NULL || t == NULL;
    if (enc->wire == DRV_WIRE_OLLAMA_CHAT) {
        json_t *msg =
            thinking ? json_pack("{s:s,s:s,s:O}", "role", "assistant", "content", "", "thinking", t)
                     : json_pack("{s:s,s:O}", "role", "assistant", "content", t);
        bad = bad || json_object_set_new(j, "message", msg);
    } else {
        bad =
            bad || json_object_set_new(j, "response", thinking ? json_string("") : json_incref(t));
        if (thinking)
            bad = bad || json_object_set_new(j, "thinking", json_incref(t));
    }
    bad = bad || json_object_set_new(j, "done", json_false());
    json_decref(t);
    if (bad) {
        json_decref(j);
        return DRV_ENOMEM;
    }
    return api_dump_framed(j, "", "\n", out);
}

static int enc_done(struct drv_api_enc *enc, const struct drv_gen_event *ev, struct drv_buf *out)
{
    if (put_done(enc, ev, out) == 0)
        return 0;
    json_t *j = line(enc, ev);
    bool full = !enc->stream; /* non-streaming: the whole answer in this one object */
    bool has_thinking = full && enc->text[1].len > 0;
    int bad = j == NULL;
    if (enc->wire == DRV_WIRE_OLLAMA_CHAT) {
        json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                                full ? text_or_empty(&enc->text[0]) : json_string(""));
        if (msg && has_thinking)
            bad = bad || json_object_set_new(msg, "thinking", text_or_empty(&enc->text[1]));
        bad = bad || json_object_set_new(j, "message", msg);
    } else {
        bad = bad || json_object_set_new(j, "response",
                                         full ? text_or_empty(&enc->text[0]) : json_string(""));
        if (has_thinking)
            bad = bad || json_object_set_new(j, "thinking", text_or_empty(&enc->text[1]));
    }
    bad = bad || json_object_set_new(j, "done", json_true()) ||
          json_object_set_new(j, "done_reason",
                              json_string(api_done_reason(ev->stats.done_reason))) ||
          add_stats(j, &ev->stats) ||
          (ev->stats.warning &&
           json_object_set_new(j, "drover_warning", json_string(ev->stats.warning)));
    if (bad) {
        json_decref(j);
        return DRV_ENOMEM;
    }
    return api_dump_framed(j, "", enc->stream ? "\n" : "", out);
}

int api_ollama_enc_event(struct drv_api_enc *enc, const struct drv_gen_event *ev, const char *text,
                         size_t len, struct drv_buf *out)
{
    switch (ev->kind) {
    case DRV_EV_TOKEN:
    case DRV_EV_THINKING:
        return enc_piece(enc, ev, text, len, out);
    case DRV_EV_DONE:
        return enc_done(enc, ev, out);
    case DRV_EV_ERROR:
        return api_dump_framed(api_error_object(enc->wire, ev->status, ev->message), "", "\n", out);
    }
    return DRV_EINVAL;
}

/* ---- listings ---------------------------------------------------------------------- */

static json_t *tag_entry_base(const struct drv_model_desc *m, bool running)
{
    char ts[64];
    const char *model = m->model[0] ? m->model : m->name;
    if (!running) {
        api_rfc3339(ts, sizeof(ts), m->modified_at, 0, false);
        return json_pack("{s:o,s:o,s:s,s:I,s:o,s:o}", "name", api_jstr(m->name), "model",
                         api_jstr(model), "modified_at", ts, "size", ns_int(m->size), "digest",
                         api_jstr(m->digest), "details", api_details(m));
    }
    if (m->expires_at == 0)
        strcpy(ts, "2318-01-01T00:00:00Z"); /* never: where Ollama's "forever" lands */
    else
        api_rfc3339(ts, sizeof(ts), m->expires_at, 0, false);
    uint64_t size = m->size_resident ? m->size_resident : m->size;
    return json_pack("{s:o,s:o,s:I,s:o,s:o,s:s,s:I,s:I}", "name", api_jstr(m->name), "model",
                     api_jstr(model), "size", ns_int(size), "digest", api_jstr(m->digest),
                     "details", api_details(m), "expires_at", ts, "size_vram", ns_int(m->size_vram),
                     "context_length", (json_int_t)m->context_length);
}

static json_t *tag_entry(const struct drv_model_desc *m, bool running)
{
    json_t *j = tag_entry_base(m, running);
    /* a gateway says where the model is (a field Ollama clients ignore) */
    if (j && m->node[0] && json_object_set_new(j, "drover_node", json_string(m->node))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int listing(const struct drv_model_desc *models, size_t n, bool running, struct drv_buf *out)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, tag_entry(&models[i], running))) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return api_dump(arr ? json_pack("{s:o}", "models", arr) : NULL, out);
}

int drv_api_ollama_tags(const struct drv_model_desc *models, size_t n, struct drv_buf *out)
{
    return listing(models, n, false, out);
}

int drv_api_ollama_ps(const struct drv_model_desc *models, size_t n, struct drv_buf *out)
{
    return listing(models, n, true, out);
}

/* ---- embeddings ---------------------------------------------------------------------- */

static void truncate_to(struct drv_buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

int drv_api_ollama_embed_response(const struct drv_api_embed_result *r, struct drv_buf *out)
{
    /* written by hand: a jansson tree of n x dim reals would be large and slow */
    size_t mark = out->len;
    int rc = drv_buf_append(out, "{\"model\":", 9);
    if (rc == 0)
        rc = api_dump(api_jstr(r->model), out);
    if (rc == 0)
        rc = drv_buf_append(out, ",\"embeddings\":[", 15);
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        if (i)
            rc = drv_buf_append(out, ",", 1);
        if (rc == 0)
            rc = api_float_array(r->data + i * r->dim, r->dim, out);
    }
    if (rc == 0)
        rc = drv_buf_append(out, "]", 1);
    if (rc == 0 && r->total_ns)
        rc = drv_buf_appendf(out, ",\"total_duration\":%llu",
                             (unsigned long long)ns_int(r->total_ns));
    if (rc == 0 && r->load_ns)
        rc =
            drv_buf_appendf(out, ",\"load_duration\":%llu", (unsigned long long)ns_int(r->load_ns));
    if (rc == 0 && r->prompt_tokens > 0)
        rc = drv_buf_appendf(out, ",\"prompt_eval_count\":%lld", (long long)r->prompt_tokens);
    if (rc == 0)
        rc = drv_buf_append(out, "}", 1);
    if (rc)
        truncate_to(out, mark);
    return rc;
}

int drv_api_ollama_embeddings_response(const struct drv_api_embed_result *r, struct drv_buf *out)
{
    size_t mark = out->len;
    int rc = drv_buf_append(out, "{\"embedding\":", 13);
    if (rc == 0)
        rc = api_float_array(r->data, r->n ? r->dim : 0, out);
    if (rc == 0)
        rc = drv_buf_append(out, "}", 1);
    if (rc)
        truncate_to(out, mark);
    return rc;
}
