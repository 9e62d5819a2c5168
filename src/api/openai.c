/* api: the OpenAI wire format as llama-server speaks it (/v1/completions,
 * /v1/chat/completions, /v1/embeddings, /v1/models). */
#include "api/api_int.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

/* ---- decoding ---------------------------------------------------------------- */

/* Fields /v1/completions and /v1/chat/completions share. */
static int decode_common(struct drv_api_req *r, struct drv_err *err)
{
    json_t *root = r->root;
    struct drv_gen_request *g = &r->gen;
    struct drv_sampling *s = &g->sampling;
    int64_t n = 1;
    int rc;
    r->stream = false;
    if ((rc = api_model(root, &g->model, err)) ||
        (rc = api_get_bool(root, "", "stream", &r->stream, err)) ||
        (rc = api_get_float(root, "", "temperature", &s->temperature, err)) ||
        (rc = api_get_float(root, "", "top_p", &s->top_p, err)) ||
        (rc = api_get_i64(root, "", "seed", &s->seed, err)) ||
        (rc = api_get_float(root, "", "presence_penalty", &s->presence_penalty, err)) ||
        (rc = api_get_float(root, "", "frequency_penalty", &s->frequency_penalty, err)) ||
        /* non-standard knobs llama-server takes */
        (rc = api_get_i32(root, "", "top_k", &s->top_k, err)) ||
        (rc = api_get_float(root, "", "min_p", &s->min_p, err)) ||
        (rc = api_get_float(root, "", "repeat_penalty", &s->repeat_penalty, err)) ||
        (rc = api_get_i32(root, "", "repeat_last_n", &s->repeat_last_n, err)) ||
        (rc = api_get_i32(root, "", "n_predict", &g->num_predict, err)) ||
        (rc = api_get_i32(root, "", "max_tokens", &g->num_predict, err)) ||
        (rc = api_get_i32(root, "", "max_completion_tokens", &g->num_predict, err)) ||
        (rc = api_stop(r, json_object_get(root, "stop"), "stop", err)) ||
        (rc = api_get_i64(root, "", "n", &n, err)))
        return rc;
    if (n != 1)
        return drv_err_set(err, DRV_EINVAL, "n must be 1 (one choice per request)");

    json_t *so = json_object_get(root, "stream_options");
    if (so != NULL && !json_is_null(so) && !json_is_object(so))
        return drv_err_set(err, DRV_EINVAL, "stream_options must be an object");
    if (so && (rc = api_get_bool(so, "stream_options.", "include_usage", &r->include_usage, err)))
        return rc;

    /* thinking: reasoning_effort (OpenAI), think (Ollama-style), or llama-server's
     * chat_template_kwargs.enable_thinking; the later one wins */
    json_t *kw = json_object_get(root, "chat_template_kwargs");
    json_t *et = json_is_object(kw) ? json_object_get(kw, "enable_thinking") : NULL;
    if ((rc = api_think(et, "chat_template_kwargs.enable_thinking", false, &g->think, err)) ||
        (rc = api_think(json_object_get(root, "reasoning_effort"), "reasoning_effort", true,
                        &g->think, err)) ||
        (rc = api_think(json_object_get(root, "think"), "think", false, &g->think, err)))
        return rc;
    return 0;
}

int drv_api_openai_decode_completion(const char *body, size_t len, struct drv_api_req *out,
                                     struct drv_err *err)
{
    api_req_begin(out);
    int rc = api_load(body, len, &out->root, err);
    if (rc)
        goto fail;
    struct drv_gen_request *g = &out->gen;
    g->kind = DRV_GEN_COMPLETE;
    if ((rc = decode_common(out, err)) ||
        (rc = api_get_str(out->root, "", "suffix", &g->suffix, err)))
        goto fail;
    if (g->suffix && !*g->suffix)
        g->suffix = NULL;

    json_t *p = json_object_get(out->root, "prompt");
    if (json_is_array(p)) {
        if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0))) {
            rc = drv_err_set(err, DRV_EINVAL,
                             "prompt must be a string or an array of one string (batch and "
                             "token prompts are not supported)");
            goto fail;
        }
        p = json_array_get(p, 0);
    }
    if (p != NULL && !json_is_null(p) && !json_is_string(p)) {
        rc = drv_err_set(err, DRV_EINVAL, "prompt must be a string");
        goto fail;
    }
    if (json_is_string(p))
        g->prompt = json_string_value(p);
    return 0;
fail:
    drv_api_req_release(out);
    return rc;
}

static const char *openai_role(const char *s)
{
    if (!strcmp(s, "system") || !strcmp(s, "developer"))
        return "system";
    if (!strcmp(s, "user"))
        return "user";
    if (!strcmp(s, "assistant"))
        return "assistant";
    if (!strcmp(s, "tool") || !strcmp(s, "function"))
        return "tool";
    return NULL;
}

/* content: a string, null, or an array of parts of which only text is supported. */
static int decode_content(struct drv_api_req *r, json_t *c, size_t i, const char **out,
                          struct drv_err *err)
{
    if (c == NULL || json_is_null(c)) {
        *out = ""; /* e.g. an assistant message that only has tool_calls */
        return 0;
    }
    if (json_is_string(c)) {
        *out = json_string_value(c);
        return 0;
    }
    if (!json_is_array(c))
        return drv_err_set(err, DRV_EINVAL,
                           "messages[%zu].content must be a string or an array of text parts", i);
    size_t n = json_array_size(c), total = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *part = json_array_get(c, k);
        json_t *type = json_object_get(part, "type");
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type))
            return drv_err_set(err, DRV_EINVAL,
                               "messages[%zu].content[%zu] must be an object with a type", i, k);
        if (strcmp(json_string_value(type), "text") != 0)
            return drv_err_set(err, DRV_EINVAL,
                               "messages[%zu].content[%zu]: content type \"%.32s\" is not "
                               "supported (only text)",
                               i, k, json_string_value(type));
        if (!json_is_string(text))
            return drv_err_set(err, DRV_EINVAL, "messages[%zu].content[%zu].text must be a string",
                               i, k);
        total += json_string_length(text);
    }
    if (n == 1) {
        *out = json_string_value(json_object_get(json_array_get(c, 0), "text"));
        return 0;
    }
    char *joined = malloc(total + 1);
    if (joined == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *text = json_object_get(json_array_get(c, k), "text");
        memcpy(joined + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    *out = api_keep(r, joined, at);
    free(joined);
    return *out ? 0 : drv_err_set(err, DRV_ENOMEM, "out of memory");
}

static int decode_messages(struct drv_api_req *r, json_t *v, struct drv_err *err)
{
    const char *shape = "messages must be a non-empty array of objects with role and content";
    if (!json_is_array(v) || json_array_size(v) == 0)
        return drv_err_set(err, DRV_EINVAL, "%s", shape);
    size_t n = json_array_size(v);
    if (n > DRV_API_MAX_MESSAGES)
        return drv_err_set(err, DRV_ETOOBIG, "messages has %zu entries; at most %d are allowed", n,
                           DRV_API_MAX_MESSAGES);
    r->msgs = calloc(n, sizeof(*r->msgs));
    if (r->msgs == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(v, i);
        json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role))
            return drv_err_set(err, DRV_EINVAL, "%s (messages[%zu] is not)", shape, i);
        r->msgs[i].role = openai_role(json_string_value(role));
        if (r->msgs[i].role == NULL)
            return drv_err_set(err, DRV_EINVAL,
                               "messages[%zu].role \"%.32s\" is unknown (want system, developer, "
                               "user, assistant or tool)",
                               i, json_string_value(role));
        int rc = decode_content(r, json_object_get(m, "content"), i, &r->msgs[i].content, err);
        if (rc)
            return rc;
    }
    r->gen.messages = r->msgs;
    r->gen.n_messages = n;
    return 0;
}

static int decode_response_format(struct drv_api_req *r, json_t *v, struct drv_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    json_t *type = json_object_get(v, "type");
    if (!json_is_object(v) || !json_is_string(type))
        return drv_err_set(err, DRV_EINVAL, "response_format must be an object with a type");
    const char *t = json_string_value(type);
    json_t *schema = NULL;
    if (!strcmp(t, "text"))
        return 0;
    if (!strcmp(t, "json_object")) {
        schema = json_object_get(v, "schema"); /* llama-server extension */
        if (!json_is_object(schema)) {
            r->gen.format = DRV_FORMAT_JSON;
            return 0;
        }
    } else if (!strcmp(t, "json_schema")) {
        json_t *js = json_object_get(v, "json_schema");
        schema = json_object_get(js, "schema");
        if (!json_is_object(schema))
            return drv_err_set(err, DRV_EINVAL,
                               "response_format.json_schema.schema must be a JSON schema object");
    } else {
        return drv_err_set(err, DRV_EINVAL,
                           "response_format.type must be \"text\", \"json_object\" or "
                           "\"json_schema\"");
    }
    char *text = json_dumps(schema, JSON_COMPACT);
    const char *kept = text ? api_keep(r, text, strlen(text)) : NULL;
    free(text);
    if (kept == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    r->gen.format = DRV_FORMAT_SCHEMA;
    r->gen.format_schema = kept;
    return 0;
}

int drv_api_openai_decode_chat(const char *body, size_t len, struct drv_api_req *out,
                               struct drv_err *err)
{
    api_req_begin(out);
    int rc = api_load(body, len, &out->root, err);
    if (rc)
        goto fail;
    out->gen.kind = DRV_GEN_CHAT;
    /* tools / tool_choice are accepted and ignored: no tool calling yet */
    if ((rc = decode_common(out, err)) ||
        (rc = decode_messages(out, json_object_get(out->root, "messages"), err)) ||
        (rc = decode_response_format(out, json_object_get(out->root, "response_format"), err)))
        goto fail;
    return 0;
fail:
    drv_api_req_release(out);
    return rc;
}

int drv_api_openai_decode_embeddings(const char *body, size_t len, struct drv_api_embed_req *out,
                                     struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    drv_api_embed_req_release(out); /* the defaults */
    const char *enc = "float";
    int rc;
    if ((rc = api_load(body, len, &out->root, err)) ||
        (rc = api_model(out->root, &out->model, err)) ||
        (rc = api_get_str(out->root, "", "encoding_format", &enc, err)))
        goto fail;
    json_t *input = json_object_get(out->root, "input");
    if (input == NULL || json_is_null(input)) {
        rc = drv_err_set(err, DRV_EINVAL, "input is required");
        goto fail;
    }
    if ((rc = api_embed_inputs(out, input, "input", err)))
        goto fail;
    if (strcmp(enc, "float") && strcmp(enc, "base64")) {
        rc = drv_err_set(err, DRV_EINVAL, "encoding_format must be \"float\" or \"base64\"");
        goto fail;
    }
    out->base64 = !strcmp(enc, "base64");
    return 0;
fail:
    drv_api_embed_req_release(out);
    return rc;
}

/* ---- encoding -------------------------------------------------------------------- */

static bool is_chat(const struct drv_api_enc *enc)
{
    return enc->wire == DRV_WIRE_OPENAI_CHAT;
}

/* {id, object, created, model} */
static json_t *envelope(const struct drv_api_enc *enc, const struct drv_gen_event *ev,
                        const char *object)
{
    return json_pack("{s:s,s:s,s:I,s:o}", "id", enc->id, "object", object, "created",
                     (json_int_t)enc->created, "model", api_jstr(api_enc_model(enc, ev)));
}

static int32_t nonneg(int32_t v)
{
    return v > 0 ? v : 0;
}

static json_t *usage(const struct drv_gen_stats *st)
{
    int32_t p = nonneg(st->prompt_tokens), c = nonneg(st->eval_tokens);
    return json_pack("{s:i,s:i,s:I}", "prompt_tokens", (int)p, "completion_tokens", (int)c,
                     "total_tokens", (json_int_t)p + c);
}

/* llama-server's timings object */
static json_t *timings(const struct drv_gen_stats *st)
{
    double pms = (double)st->prompt_ns / 1e6, ems = (double)st->eval_ns / 1e6;
    int32_t pn = nonneg(st->prompt_tokens), en = nonneg(st->eval_tokens);
    return json_pack("{s:i,s:f,s:f,s:i,s:f,s:f}", "prompt_n", (int)pn, "prompt_ms", pms,
                     "prompt_per_second", pms > 0 ? pn * 1e3 / pms : 0.0, "predicted_n", (int)en,
                     "predicted_ms", ems, "predicted_per_second", ems > 0 ? en * 1e3 / ems : 0.0);
}

/* One streamed chunk with a single choice; takes ownership of delta_or_text. */
static int emit_chunk(struct drv_api_enc *enc, const struct drv_gen_event *ev, json_t *payload,
                      const char *finish, json_t *extra_timings, struct drv_buf *out)
{
    json_t *j = envelope(enc, ev, is_chat(enc) ? "chat.completion.chunk" : "text_completion");
    json_t *fr = finish ? json_string(finish) : json_null();
    json_t *choice = is_chat(enc) ? json_pack("{s:i,s:o,s:n,s:o}", "index", 0, "delta", payload,
                                              "logprobs", "finish_reason", fr)
                                  : json_pack("{s:o,s:i,s:n,s:o}", "text", payload, "index", 0,
                                              "logprobs", "finish_reason", fr);
    if (j == NULL)
        json_decref(choice);
    int bad = j == NULL || json_object_set_new(j, "choices", json_pack("[o]", choice));
    if (!bad && enc->include_usage)
        bad = json_object_set_new(j, "usage", json_null()); /* as OpenAI: null until the last */
    if (!bad && extra_timings)
        bad = json_object_set_new(j, "timings", extra_timings);
    else
        json_decref(extra_timings);
    if (!bad && finish && ev->kind == DRV_EV_DONE && ev->stats.warning)
        bad = json_object_set_new(j, "drover_warning", json_string(ev->stats.warning));
    if (bad) {
        json_decref(j);
        return DRV_ENOMEM;
    }
    return api_dump_framed(j, "data: ", "\n\n", out);
}

/* A streamed token's chunk written directly: the bytes emit_chunk writes for it
 * (test_api checks), without building objects. Nonzero (out unchanged) sends it
 * the jansson way, which says why or repairs a model name that is not UTF-8. */
static int put_piece(const struct drv_api_enc *enc, const struct drv_gen_event *ev,
                     const char *text, size_t len, struct drv_buf *out)
{
    if (enc->created < 0)
        return DRV_EINVAL;
    bool chat = is_chat(enc);
    size_t mark = out->len;
    const char *m = api_enc_model(enc, ev);
    int rc = api_put(out, "data: {\"id\":");
    if (rc == 0)
        rc = api_put_jstr(out, enc->id, strlen(enc->id));
    if (rc == 0)
        rc = api_put(out, chat ? ",\"object\":\"chat.completion.chunk\",\"created\":"
                               : ",\"object\":\"text_completion\",\"created\":");
    if (rc == 0)
        rc = api_put_u64(out, (uint64_t)enc->created);
    if (rc == 0)
        rc = api_put(out, ",\"model\":");
    if (rc == 0)
        rc = api_put_jstr(out, m, strlen(m));
    if (rc == 0 && chat) {
        rc = api_put(out, enc->role_sent
                              ? ",\"choices\":[{\"index\":0,\"delta\":{"
                              : ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",");
        if (rc == 0)
            rc = api_put(out,
                         ev->kind == DRV_EV_THINKING ? "\"reasoning_content\":" : "\"content\":");
        if (rc == 0)
            rc = api_put_jstr(out, text, len);
        if (rc == 0)
            rc = api_put(out, "},\"logprobs\":null,\"finish_reason\":null}]");
    } else if (rc == 0) {
        rc = api_put(out, ",\"choices\":[{\"text\":");
        if (rc == 0)
            rc = api_put_jstr(out, text, len);
        if (rc == 0)
            rc = api_put(out, ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]");
    }
    if (rc == 0 && enc->include_usage)
        rc = api_put(out, ",\"usage\":null");
    if (rc == 0)
        rc = api_put(out, "}\n\n");
    if (rc)
        api_truncate(out, mark);
    return rc;
}

static int stream_piece(struct drv_api_enc *enc, const struct drv_gen_event *ev, const char *text,
                        size_t len, struct drv_buf *out)
{
    bool thinking = ev->kind == DRV_EV_THINKING;
    if (!(thinking && !is_chat(enc)) && put_piece(enc, ev, text, len, out) == 0) {
        enc->role_sent = enc->role_sent || is_chat(enc);
        return 0;
    }
    if (!is_chat(enc)) /* completions have no place for reasoning */
        return thinking ? 0 : emit_chunk(enc, ev, json_stringn_nocheck(text, len), NULL, NULL, out);
    json_t *delta = json_object();
    if (delta && !enc->role_sent && json_object_set_new(delta, "role", json_string("assistant")))
        json_decref(delta), delta = NULL;
    if (delta && json_object_set_new(delta, thinking ? "reasoning_content" : "content",
                                     json_stringn_nocheck(text, len)))
        json_decref(delta), delta = NULL;
    int rc = emit_chunk(enc, ev, delta, NULL, NULL, out);
    if (rc == 0)
        enc->role_sent = true;
    return rc;
}

static int stream_done(struct drv_api_enc *enc, const struct drv_gen_event *ev, struct drv_buf *out)
{
    const char *finish = api_done_reason(ev->stats.done_reason);
    int rc = 0;
    if (is_chat(enc) && !enc->role_sent) { /* a client always sees the role */
        struct drv_gen_event tok = *ev;
        tok.kind = DRV_EV_TOKEN;
        rc = stream_piece(enc, &tok, "", 0, out);
    }
    if (rc == 0)
        rc = emit_chunk(enc, ev, is_chat(enc) ? json_object() : json_string(""), finish,
                        timings(&ev->stats), out);
    if (rc == 0 && enc->include_usage) {
        json_t *j = envelope(enc, ev, is_chat(enc) ? "chat.completion.chunk" : "text_completion");
        if (j && (json_object_set_new(j, "choices", json_array()) ||
                  json_object_set_new(j, "usage", usage(&ev->stats))))
            json_decref(j), j = NULL;
        rc = api_dump_framed(j, "data: ", "\n\n", out);
    }
    if (rc == 0)
        rc = drv_buf_append(out, "data: [DONE]\n\n", 14);
    return rc;
}

static json_t *text_of(const struct drv_buf *b)
{
    return json_stringn_nocheck(b->data ? b->data : "", b->len);
}

static int full_done(struct drv_api_enc *enc, const struct drv_gen_event *ev, struct drv_buf *out)
{
    json_t *fr = json_string(api_done_reason(ev->stats.done_reason));
    json_t *choice;
    if (is_chat(enc)) {
        json_t *msg =
            json_pack("{s:s,s:o}", "role", "assistant", "content", text_of(&enc->text[0]));
        if (msg && enc->text[1].len &&
            json_object_set_new(msg, "reasoning_content", text_of(&enc->text[1])))
            json_decref(msg), msg = NULL;
        choice = json_pack("{s:i,s:o,s:n,s:o}", "index", 0, "message", msg, "logprobs",
                           "finish_reason", fr);
    } else {
        choice = json_pack("{s:o,s:i,s:n,s:o}", "text", text_of(&enc->text[0]), "index", 0,
                           "logprobs", "finish_reason", fr);
    }
    json_t *j = envelope(enc, ev, is_chat(enc) ? "chat.completion" : "text_completion");
    if (j && (json_object_set_new(j, "choices", json_pack("[o]", choice)) ||
              json_object_set_new(j, "usage", usage(&ev->stats)) ||
              json_object_set_new(j, "timings", timings(&ev->stats)) ||
              (ev->stats.warning &&
               json_object_set_new(j, "drover_warning", json_string(ev->stats.warning)))))
        json_decref(j), j = NULL;
    else if (j == NULL)
        json_decref(choice);
    return api_dump(j, out);
}

int api_openai_enc_event(struct drv_api_enc *enc, const struct drv_gen_event *ev, const char *text,
                         size_t len, struct drv_buf *out)
{
    switch (ev->kind) {
    case DRV_EV_TOKEN:
    case DRV_EV_THINKING:
        return stream_piece(enc, ev, text, len, out);
    case DRV_EV_DONE:
        return enc->stream ? stream_done(enc, ev, out) : full_done(enc, ev, out);
    case DRV_EV_ERROR:
        return api_dump_framed(api_error_object(enc->wire, ev->status, ev->message),
                               "data: ", "\n\n", out);
    }
    return DRV_EINVAL;
}

/* ---- listings and embeddings ---------------------------------------------------------- */

/* llama-server's "meta" of a model, for clients that read the shape there */
static json_t *openai_meta(const struct drv_model_desc *m)
{
    const char *ft = drv_ftype_llama_name(m->quantization);
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "n_vocab", (json_int_t)m->vocab_size, "n_ctx",
                     (json_int_t)(m->context_length ? m->context_length : m->n_ctx_train),
                     "n_ctx_train", (json_int_t)m->n_ctx_train, "n_embd",
                     (json_int_t)m->embedding_length, "n_params", (json_int_t)m->n_params, "size",
                     (json_int_t)m->size, "ftype", ft ? ft : m->quantization);
}

int drv_api_openai_models(const struct drv_model_desc *models, size_t n, struct drv_buf *out)
{
    json_t *data = json_array();
    for (size_t i = 0; data && i < n; i++) {
        json_t *m = json_pack("{s:o,s:s,s:I,s:s,s:o}", "id", api_jstr(models[i].name), "object",
                              "model", "created", (json_int_t)models[i].modified_at, "owned_by",
                              "drover", "meta", openai_meta(&models[i]));
        if (json_array_append_new(data, m))
            json_decref(data), data = NULL;
    }
    return api_dump(data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL, out);
}

static int append_base64(const unsigned char *p, size_t n, struct drv_buf *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tbl[(v >> 18) & 63];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tbl[v & 63] : '=';
        rc = drv_buf_append(out, q, 4);
    }
    return rc;
}

static int append_base64_floats(const float *v, size_t n, struct drv_buf *out)
{
    int rc = drv_buf_append(out, "\"", 1);
    unsigned char chunk[3 * 256]; /* a multiple of 3 bytes: no padding mid-stream */
    size_t fill = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; b++) { /* little-endian, as numpy's float32 */
            chunk[fill++] = (unsigned char)(u >> (8 * b));
            if (fill == sizeof(chunk)) {
                rc = append_base64(chunk, fill, out);
                fill = 0;
            }
        }
    }
    if (rc == 0)
        rc = append_base64(chunk, fill, out);
    if (rc == 0)
        rc = drv_buf_append(out, "\"", 1);
    return rc;
}

int drv_api_openai_embeddings_response(const struct drv_api_embed_result *r, bool base64,
                                       struct drv_buf *out)
{
    size_t mark = out->len;
    int rc = drv_buf_append(out, "{\"object\":\"list\",\"data\":[", 25);
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        rc = drv_buf_appendf(
            out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (rc == 0)
            rc = base64 ? append_base64_floats(r->data + i * r->dim, r->dim, out)
                        : api_float_array(r->data + i * r->dim, r->dim, out);
        if (rc == 0)
            rc = drv_buf_append(out, "}", 1);
    }
    if (rc == 0)
        rc = drv_buf_append(out, "],\"model\":", 10);
    if (rc == 0)
        rc = api_dump(api_jstr(r->model), out);
    long long pt = r->prompt_tokens > 0 ? (long long)r->prompt_tokens : 0;
    if (rc == 0)
        rc = drv_buf_appendf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", pt,
                             pt);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}
