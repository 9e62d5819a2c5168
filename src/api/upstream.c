/* api: talking to another server — the request body in a node's own API, an
 * incremental decoder of its (streamed) answer into events, its listings and
 * its embeddings. Everything here reads bytes from the network: no input may
 * crash it, and every buffer has a cap. */
#include "api/api_int.h"
#include "model/model.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_chat(enum drv_api_wire w)
{
    return w == DRV_WIRE_OLLAMA_CHAT || w == DRV_WIRE_OPENAI_CHAT;
}

/* ---- request bodies ------------------------------------------------------- */

/* o[key] = v, taking v; a NULL v (failed allocation) is an error. */
static int put(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v) ? DRV_ENOMEM : 0;
}

/* The shortest decimal that reads back as the same float, so that 0.7f goes
 * out as 0.7 and not 0.699999988. */
static json_t *jfloat(float f)
{
    char s[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(s, sizeof(s), "%.*g", prec, (double)f);
        if (strtof(s, NULL) == f)
            break;
    }
    return json_real(strtod(s, NULL));
}

/* NaN is "the default" (drv_gen_request_init); infinities cannot be sent. */
static int put_float(json_t *o, const char *key, float f)
{
    return isfinite(f) ? put(o, key, jfloat(f)) : 0;
}

static int put_int(json_t *o, const char *key, int64_t v, bool send)
{
    return send ? put(o, key, json_integer((json_int_t)v)) : 0;
}

static int put_stop(json_t *o, const struct drv_gen_request *r)
{
    if (r->n_stop == 0 || r->stop == NULL)
        return 0;
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->n_stop; i++) {
        if (r->stop[i] == NULL || r->stop[i][0] == '\0')
            continue;
        if (json_array_append_new(a, api_jstr(r->stop[i])))
            json_decref(a), a = NULL;
    }
    if (a && json_array_size(a) == 0) {
        json_decref(a);
        return 0;
    }
    return put(o, "stop", a);
}

/* Sampling and length knobs that are not at their defaults. Ollama puts them in
 * options{}, OpenAI at the top level (top_k, min_p, repeat_penalty and
 * repeat_last_n are llama-server's extensions). */
static int put_knobs(json_t *o, const struct drv_gen_request *r, bool ollama)
{
    const struct drv_sampling *s = &r->sampling;
    int rc;
    if ((rc = put_float(o, "temperature", s->temperature)) ||
        (rc = put_int(o, "top_k", s->top_k, s->top_k >= 0)) ||
        (rc = put_float(o, "top_p", s->top_p)) || (rc = put_float(o, "min_p", s->min_p)) ||
        (rc = put_int(o, "seed", s->seed, s->seed >= 0)) ||
        (rc = put_float(o, "repeat_penalty", s->repeat_penalty)) ||
        (rc = put_int(o, "repeat_last_n", s->repeat_last_n, s->repeat_last_n >= -1)) ||
        (rc = put_float(o, "presence_penalty", s->presence_penalty)) ||
        (rc = put_float(o, "frequency_penalty", s->frequency_penalty)) ||
        (rc = put_int(o, ollama ? "num_predict" : "max_tokens", r->num_predict,
                      r->num_predict >= 0)) ||
        (rc = put_int(o, "num_ctx", r->num_ctx, ollama && r->num_ctx > 0)) || (rc = put_stop(o, r)))
        return rc;
    return 0;
}

/* Ollama's keep_alive: a Go duration string, which tops out at about 292
 * years; anything longer is "forever". */
static json_t *keep_alive_json(int64_t ms)
{
    const int64_t go_max_ms = INT64_MAX / 1000000;
    if (ms == 0)
        return json_integer(0);
    if (ms < 0 || ms > go_max_ms)
        return json_integer(-1);
    char s[32];
    snprintf(s, sizeof(s), "%lldms", (long long)ms);
    return json_string(s);
}

static int put_format(json_t *o, const struct drv_gen_request *r, enum drv_api_wire wire)
{
    if (r->format != DRV_FORMAT_JSON && r->format != DRV_FORMAT_SCHEMA)
        return 0;
    json_t *schema = NULL;
    if (r->format == DRV_FORMAT_SCHEMA) {
        json_error_t e;
        schema = json_loads(r->format_schema ? r->format_schema : "", 0, &e);
        if (!json_is_object(schema)) {
            json_decref(schema);
            return DRV_EINVAL;
        }
    }
    if (api_wire_is_ollama(wire))
        return put(o, "format", schema ? schema : json_string("json"));
    if (wire == DRV_WIRE_OPENAI_COMPLETION) /* llama-server reads json_schema there */
        return put(o, "json_schema", schema ? schema : json_pack("{s:s}", "type", "object"));
    if (schema == NULL)
        return put(o, "response_format", json_pack("{s:s}", "type", "json_object"));
    return put(o, "response_format",
               json_pack("{s:s,s:{s:s,s:o}}", "type", "json_schema", "json_schema", "name",
                         "schema", "schema", schema));
}

static int put_messages(json_t *o, const struct drv_gen_request *r)
{
    json_t *a = json_array();
    if (a && r->system && r->system[0] &&
        json_array_append_new(
            a, json_pack("{s:s,s:o}", "role", "system", "content", api_jstr(r->system))))
        json_decref(a), a = NULL;
    for (size_t i = 0; a && i < r->n_messages; i++) {
        const struct drv_chat_msg *m = &r->messages[i];
        json_t *msg = json_pack("{s:o,s:o}", "role", api_jstr(m->role ? m->role : "user"),
                                "content", api_jstr(m->content));
        if (json_array_append_new(a, msg))
            json_decref(a), a = NULL;
    }
    return put(o, "messages", a);
}

/* The prompt side of the request: messages, or prompt (+ system, suffix, raw
 * where the wire has them). */
static int put_input(json_t *o, const struct drv_gen_request *r, enum drv_api_wire wire)
{
    if (is_chat(wire))
        return put_messages(o, r);
    int rc = put(o, "prompt", api_jstr(r->prompt));
    if (rc == 0 && r->suffix && r->suffix[0])
        rc = put(o, "suffix", api_jstr(r->suffix));
    if (wire != DRV_WIRE_OLLAMA_GENERATE) /* /v1/completions is always raw, has no system */
        return rc;
    if (rc == 0 && r->system && r->system[0])
        rc = put(o, "system", api_jstr(r->system));
    if (rc == 0 && r->raw)
        rc = put(o, "raw", json_true());
    return rc;
}

static int build_body(json_t *o, const struct drv_gen_request *r, enum drv_api_wire wire,
                      bool stream, const char *model)
{
    bool ollama = api_wire_is_ollama(wire);
    int rc;
    if ((rc = put(o, "model", api_jstr(model))) || (rc = put_input(o, r, wire)) ||
        (rc = put(o, "stream", json_boolean(stream))))
        return rc;
    if (ollama) {
        json_t *opts = json_object();
        if (opts == NULL)
            return DRV_ENOMEM;
        if ((rc = put_knobs(opts, r, true))) {
            json_decref(opts);
            return rc;
        }
        if (json_object_size(opts))
            rc = put(o, "options", opts);
        else
            json_decref(opts);
        if (rc == 0 && r->think >= 0)
            rc = put(o, "think", json_boolean(r->think > 0));
        if (rc == 0 && r->keep_alive_ms != INT64_MIN)
            rc = put(o, "keep_alive", keep_alive_json(r->keep_alive_ms));
        if (rc == 0 && r->truncate)
            rc = put(o, "truncate", json_true());
    } else {
        rc = put_knobs(o, r, false);
        if (rc == 0 && stream)
            rc = put(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
        if (rc == 0 && r->think >= 0 && wire == DRV_WIRE_OPENAI_CHAT)
            rc =
                put(o, "chat_template_kwargs", json_pack("{s:b}", "enable_thinking", r->think > 0));
    }
    if (rc == 0)
        rc = put_format(o, r, wire);
    return rc;
}

int drv_api_upstream_body(const struct drv_gen_request *r, enum drv_api_wire wire, bool stream,
                          const char *model_override, struct drv_buf *out)
{
    if (wire > DRV_WIRE_OPENAI_CHAT || (r->kind == DRV_GEN_CHAT) != is_chat(wire))
        return DRV_EINVAL;
    json_t *o = json_object();
    if (o == NULL)
        return DRV_ENOMEM;
    int rc = build_body(o, r, wire, stream, model_override ? model_override : r->model);
    if (rc) {
        json_decref(o);
        return rc;
    }
    return api_dump(o, out);
}

/* ---- the answer: events ----------------------------------------------------- */

int drv_api_upstream_parser_init(struct drv_api_upstream_parser *p, enum drv_api_wire wire,
                                 bool stream, const char *model)
{
    memset(p, 0, sizeof(*p));
    p->wire = wire;
    p->stream = stream;
    drv_buf_init(&p->line, DRV_API_MAX_TEXT);
    drv_buf_init(&p->data, DRV_API_MAX_TEXT);
    if (model && (p->model = strdup(model)) == NULL)
        return DRV_ENOMEM;
    return 0;
}

void drv_api_upstream_parser_release(struct drv_api_upstream_parser *p)
{
    free(p->model);
    p->model = NULL;
    drv_buf_release(&p->line);
    drv_buf_release(&p->data);
}

bool drv_api_upstream_finished(const struct drv_api_upstream_parser *p)
{
    return p->finished;
}

bool drv_api_upstream_started(const struct drv_api_upstream_parser *p)
{
    return p->started;
}

/* A TOKEN or THINKING event for a JSON string; anything else, or "", sends
 * nothing. Returns 1 when the sink asks to stop. */
static int emit_text(struct drv_api_upstream_parser *p, enum drv_ev_kind kind, json_t *v,
                     drv_gen_sink sink, void *ud)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return 0;
    struct drv_gen_event ev = {.kind = kind,
                               .text = json_string_value(v),
                               .len = json_string_length(v),
                               .model = p->model};
    p->started = true;
    if (sink(ud, &ev) != 0) {
        p->sink_stopped = true;
        return 1;
    }
    return 0;
}

static void emit_terminal(struct drv_api_upstream_parser *p, struct drv_gen_event *ev,
                          drv_gen_sink sink, void *ud)
{
    ev->model = p->model;
    p->finished = true;
    sink(ud, ev); /* nothing is left to cancel */
}

static void send_done(struct drv_api_upstream_parser *p, drv_gen_sink sink, void *ud)
{
    struct drv_gen_event ev = {.kind = DRV_EV_DONE};
    ev.stats.total_ns = p->total_ns;
    ev.stats.load_ns = p->load_ns;
    ev.stats.prompt_ns = p->prompt_ns;
    ev.stats.eval_ns = p->eval_ns;
    ev.stats.prompt_tokens = p->prompt_tokens;
    ev.stats.eval_tokens = p->eval_tokens;
    ev.stats.done_reason = p->done_reason[0] ? p->done_reason : "stop";
    emit_terminal(p, &ev, sink, ud);
}

static void send_error(struct drv_api_upstream_parser *p, int status, const char *message,
                       drv_gen_sink sink, void *ud)
{
    struct drv_gen_event ev = {.kind = DRV_EV_ERROR, .status = status, .message = message};
    emit_terminal(p, &ev, sink, ud);
}

void drv_api_upstream_parser_fail(struct drv_api_upstream_parser *p, int status,
                                  const char *message, drv_gen_sink sink, void *ud)
{
    if (p->finished)
        return;
    send_error(p, status, message ? message : "node failed", sink, ud);
}

/* A node's error, as one printable line of bounded length. */
static void node_error(struct drv_api_upstream_parser *p, json_t *e, drv_gen_sink sink, void *ud)
{
    json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
    const char *s = json_is_string(m) ? json_string_value(m) : "";
    char msg[512];
    size_t n = 0;
    for (; s[n] && n < sizeof(msg) - 1; n++)
        msg[n] = (unsigned char)s[n] < 0x20 ? ' ' : s[n];
    msg[n] = '\0';
    send_error(p, 502, n ? msg : "node reported an error", sink, ud);
}

static uint64_t get_u64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    double d = json_is_real(v) ? json_real_value(v) : 0;
    return d > 0 ? (d < 1.8e19 ? (uint64_t)d : UINT64_MAX) : 0;
}

static int32_t get_count(json_t *o, const char *key)
{
    uint64_t v = get_u64(o, key);
    return v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

/* milliseconds (a JSON number) -> nanoseconds */
static uint64_t get_ms_ns(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    double ms = json_is_number(v) ? json_number_value(v) : 0;
    return ms > 0 ? (ms < 1.8e13 ? (uint64_t)(ms * 1e6) : UINT64_MAX) : 0;
}

/* done_reason / finish_reason: kept when it is a short printable word. */
static void set_reason(struct drv_api_upstream_parser *p, json_t *v)
{
    if (!json_is_string(v))
        return;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n >= sizeof(p->done_reason))
        return;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return;
    memcpy(p->done_reason, s, n + 1);
}

static json_t *load_json(const char *s, size_t n, struct drv_err *err)
{
    json_error_t e;
    json_t *j = json_loadb(s ? s : "", s ? n : 0, JSON_ALLOW_NUL, &e);
    if (j == NULL)
        drv_err_set(err, DRV_EINVAL, "node sent invalid JSON at line %d, column %d: %s", e.line,
                    e.column, e.text);
    else if (!json_is_object(j)) {
        json_decref(j);
        j = NULL;
        drv_err_set(err, DRV_EINVAL, "node sent JSON that is not an object");
    }
    return j;
}

/* One Ollama object: a stream line, or (whole) the entire non-streaming answer. */
static int ollama_object(struct drv_api_upstream_parser *p, json_t *o, bool whole,
                         drv_gen_sink sink, void *ud)
{
    bool chat = p->wire == DRV_WIRE_OLLAMA_CHAT;
    json_t *src = chat ? json_object_get(o, "message") : o;
    if (emit_text(p, DRV_EV_THINKING, json_object_get(src, "thinking"), sink, ud) ||
        emit_text(p, DRV_EV_TOKEN, json_object_get(src, chat ? "content" : "response"), sink, ud))
        return 1;
    if (!whole && !json_is_true(json_object_get(o, "done")))
        return 0;
    p->total_ns = get_u64(o, "total_duration");
    p->load_ns = get_u64(o, "load_duration");
    p->prompt_tokens = get_count(o, "prompt_eval_count");
    p->prompt_ns = get_u64(o, "prompt_eval_duration");
    p->eval_tokens = get_count(o, "eval_count");
    p->eval_ns = get_u64(o, "eval_duration");
    set_reason(p, json_object_get(o, "done_reason"));
    send_done(p, sink, ud);
    return 0;
}

/* One OpenAI object: a stream chunk, or (whole) the non-streaming answer. The
 * statistics of all chunks are collected; DONE waits for [DONE] or the end of
 * the body, because llama-server sends usage in a chunk after finish_reason. */
static int openai_object(struct drv_api_upstream_parser *p, json_t *o, bool whole,
                         drv_gen_sink sink, void *ud)
{
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    if (p->wire == DRV_WIRE_OPENAI_CHAT) {
        json_t *d = json_object_get(c, "delta");
        if (!json_is_object(d))
            d = json_object_get(c, "message");
        json_t *th = json_object_get(d, "reasoning_content");
        if (!json_is_string(th)) /* Ollama's and vLLM's name for it */
            th = json_object_get(d, "reasoning");
        if (emit_text(p, DRV_EV_THINKING, th, sink, ud) ||
            emit_text(p, DRV_EV_TOKEN, json_object_get(d, "content"), sink, ud))
            return 1;
    } else if (emit_text(p, DRV_EV_TOKEN, json_object_get(c, "text"), sink, ud)) {
        return 1;
    }
    json_t *fr = json_object_get(c, "finish_reason");
    if (json_is_string(fr)) {
        set_reason(p, fr);
        p->seen_finish = true;
    }
    json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        p->prompt_tokens = get_count(u, "prompt_tokens");
        p->eval_tokens = get_count(u, "completion_tokens");
        p->usage_tokens = true;
    }
    json_t *t = json_object_get(o, "timings");
    if (json_is_object(t)) {
        p->prompt_ns = get_ms_ns(t, "prompt_ms");
        p->eval_ns = get_ms_ns(t, "predicted_ms");
        if (!p->usage_tokens) {
            p->prompt_tokens = get_count(t, "prompt_n");
            p->eval_tokens = get_count(t, "predicted_n");
        }
    }
    if (whole)
        send_done(p, sink, ud);
    return 0;
}

static int decode_object(struct drv_api_upstream_parser *p, const char *s, size_t n, bool whole,
                         drv_gen_sink sink, void *ud, struct drv_err *err)
{
    json_t *o = load_json(s, n, err);
    if (o == NULL)
        return DRV_EINVAL;
    int rc = 0;
    json_t *e = json_object_get(o, "error");
    if (e && !json_is_null(e))
        node_error(p, e, sink, ud);
    else
        rc = api_wire_is_ollama(p->wire) ? ollama_object(p, o, whole, sink, ud)
                                         : openai_object(p, o, whole, sink, ud);
    json_decref(o);
    return rc;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The payload of one SSE event: a chunk or [DONE]. */
static int sse_payload(struct drv_api_upstream_parser *p, const char *s, size_t n,
                       drv_gen_sink sink, void *ud, struct drv_err *err)
{
    while (n && is_space(*s))
        s++, n--;
    while (n && is_space(s[n - 1]))
        n--;
    if (n == 6 && !memcmp(s, "[DONE]", 6)) {
        send_done(p, sink, ud);
        return 0;
    }
    if (n == 0)
        return 0;
    return decode_object(p, s, n, false, sink, ud, err);
}

/* Some llama-server versions report a failure as an "error:" field. */
static int sse_error_field(struct drv_api_upstream_parser *p, const char *s, size_t n,
                           drv_gen_sink sink, void *ud)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, 0, &e);
    json_t *inner = json_object_get(j, "error");
    if (j == NULL) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%.*s", (int)(n < 400 ? n : 400), s);
        json_t *str = json_string_nocheck(msg);
        node_error(p, str, sink, ud);
        json_decref(str);
        return 0;
    }
    node_error(p, inner ? inner : j, sink, ud);
    json_decref(j);
    return 0;
}

static int sse_dispatch(struct drv_api_upstream_parser *p, drv_gen_sink sink, void *ud,
                        struct drv_err *err)
{
    if (!p->seen_data)
        return 0;
    p->seen_data = false;
    int rc = sse_payload(p, p->data.data, p->data.len, sink, ud, err);
    drv_buf_reset(&p->data);
    return rc;
}

static int sse_line(struct drv_api_upstream_parser *p, const char *s, size_t n, drv_gen_sink sink,
                    void *ud, struct drv_err *err)
{
    if (n == 0)
        return sse_dispatch(p, sink, ud, err);
    if (s[0] == ':') /* comment (keep-alive) */
        return 0;
    if (s[0] == '{') /* a bare JSON object: not SSE, but say what the node said */
        return sse_payload(p, s, n, sink, ud, err);
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = n - flen - (colon ? 1 : 0);
    if (vlen && *v == ' ')
        v++, vlen--;
    if (flen == 5 && !memcmp(s, "error", 5))
        return sse_error_field(p, v, vlen, sink, ud);
    if (flen != 4 || memcmp(s, "data", 4) != 0)
        return 0; /* event:, id:, retry: and unknown fields */
    int rc = 0;
    if (p->seen_data)
        rc = drv_buf_append(&p->data, "\n", 1);
    if (rc == 0)
        rc = drv_buf_append(&p->data, v, vlen);
    if (rc)
        return drv_err_set(err, rc, "node sent an event longer than %u bytes", DRV_API_MAX_TEXT);
    p->seen_data = true;
    return 0;
}

/* One complete line, without its "\n". */
static int decode_line(struct drv_api_upstream_parser *p, const char *s, size_t n,
                       drv_gen_sink sink, void *ud, struct drv_err *err)
{
    if (n && s[n - 1] == '\r')
        n--;
    if (!p->after_first) {
        p->after_first = true;
        if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) /* a byte order mark */
            s += 3, n -= 3;
    }
    if (!api_wire_is_ollama(p->wire))
        return sse_line(p, s, n, sink, ud, err);
    size_t k = 0;
    while (k < n && is_space(s[k]))
        k++;
    return k == n ? 0 : decode_object(p, s, n, false, sink, ud, err);
}

static int append_capped(struct drv_buf *b, const char *s, size_t n, struct drv_err *err)
{
    int rc = drv_buf_append(b, s, n);
    if (rc == DRV_ETOOBIG)
        return drv_err_set(err, rc, "node sent a line longer than %u bytes", DRV_API_MAX_TEXT);
    return rc ? drv_err_set(err, rc, "out of memory") : 0;
}

int drv_api_upstream_feed(struct drv_api_upstream_parser *p, const char *data, size_t len,
                          drv_gen_sink sink, void *ud, struct drv_err *err)
{
    if (p->finished)
        return 0;
    if (p->sink_stopped)
        return 1;
    if (len == 0 || data == NULL)
        return 0;
    if (!p->stream)
        return append_capped(&p->line, data, len, err); /* decoded at the end */
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        if (nl == NULL)
            return append_capped(&p->line, data, len, err);
        size_t n = (size_t)(nl - data);
        int rc;
        if (p->line.len) {
            if ((rc = append_capped(&p->line, data, n, err))) {
                drv_buf_reset(&p->line);
                return rc;
            }
            rc = decode_line(p, p->line.data, p->line.len, sink, ud, err);
        } else {
            rc = decode_line(p, data, n, sink, ud, err);
        }
        drv_buf_reset(&p->line);
        data = nl + 1;
        len -= n + 1;
        if (rc || p->finished)
            return rc;
    }
    return 0;
}

static int finish_whole(struct drv_api_upstream_parser *p, drv_gen_sink sink, void *ud,
                        struct drv_err *err)
{
    size_t k = 0;
    while (k < p->line.len && is_space(p->line.data[k]))
        k++;
    if (k == p->line.len) {
        send_error(p, 502, "node sent an empty answer", sink, ud);
        return 0;
    }
    int rc = decode_object(p, p->line.data, p->line.len, true, sink, ud, err);
    drv_buf_reset(&p->line);
    return rc;
}

int drv_api_upstream_finish(struct drv_api_upstream_parser *p, drv_gen_sink sink, void *ud,
                            struct drv_err *err)
{
    if (p->finished)
        return 0;
    if (p->sink_stopped)
        return 1;
    if (!p->stream)
        return finish_whole(p, sink, ud, err);
    /* A last line or event without its terminator counts when it is complete;
     * one cut short is what a dropped connection looks like, not a bad node. */
    struct drv_err lerr;
    drv_err_init(&lerr);
    int rc = 0;
    if (p->line.len) {
        rc = decode_line(p, p->line.data, p->line.len, sink, ud, &lerr);
        drv_buf_reset(&p->line);
    }
    if (rc >= 0 && !p->finished && !p->sink_stopped && !api_wire_is_ollama(p->wire))
        rc = sse_dispatch(p, sink, ud, &lerr);
    if (p->sink_stopped)
        return 1;
    if (p->finished)
        return 0;
    if (!api_wire_is_ollama(p->wire) && p->seen_finish)
        send_done(p, sink, ud);
    else
        send_error(p, 502, "node ended the stream early", sink, ud);
    return 0;
}

/* ---- listings ------------------------------------------------------------------ */

static void copy_str(char *dst, size_t size, json_t *v)
{
    if (json_is_string(v))
        drv_strlcpy(dst, json_string_value(v), size);
}

static bool take_digits(const char **pp, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*pp)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *pp += n;
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* RFC 3339 ("2024-05-01T10:11:12.123-07:00", "...Z") -> unix seconds; 0 when
 * it is not one. */
static int64_t parse_rfc3339(const char *s)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    const char *p = s;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return 0;
    p++;
    if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi) || *p++ != ':' ||
        !take_digits(&p, 2, &sec))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return 0;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (!take_digits(&p, 2, &oh) || *p++ != ':' || !take_digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return 0;
    } else {
        return 0;
    }
    if (*p != '\0')
        return 0;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return t - sign * (oh * 3600 + om * 60);
}

static int64_t get_time(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    return json_is_string(v) ? parse_rfc3339(json_string_value(v)) : 0;
}

static void tag_desc(json_t *m, struct drv_model_desc *d, bool running)
{
    memset(d, 0, sizeof(*d));
    json_t *det = json_object_get(m, "details");
    copy_str(d->name, sizeof(d->name), json_object_get(m, "name"));
    copy_str(d->model, sizeof(d->model), json_object_get(m, "model"));
    copy_str(d->digest, sizeof(d->digest), json_object_get(m, "digest"));
    copy_str(d->family, sizeof(d->family), json_object_get(det, "family"));
    copy_str(d->parameter_size, sizeof(d->parameter_size), json_object_get(det, "parameter_size"));
    copy_str(d->quantization, sizeof(d->quantization), json_object_get(det, "quantization_level"));
    d->size = get_u64(m, "size");
    d->modified_at = get_time(m, "modified_at");
    if (!running)
        return;
    d->size_resident = d->size;
    d->size_vram = get_u64(m, "size_vram");
    uint64_t ctx = get_u64(m, "context_length");
    d->context_length = ctx > UINT32_MAX ? UINT32_MAX : (uint32_t)ctx;
    d->expires_at = get_time(m, "expires_at");
    /* "forever" is now + Go's longest duration, about 292 years */
    if (d->expires_at >= 10413792000) /* 2300-01-01 */
        d->expires_at = 0;
}

static int count_of(json_t *a)
{
    size_t n = json_array_size(a);
    return n > INT_MAX ? INT_MAX : (int)n;
}

static int parse_tags(const char *body, size_t len, struct drv_model_desc *out, int cap,
                      bool running)
{
    json_t *root;
    if (api_load(body, len, &root, NULL)) {
        json_decref(root);
        return DRV_EINVAL;
    }
    json_t *a = json_object_get(root, "models");
    if (!json_is_array(a)) {
        json_decref(root);
        return DRV_EINVAL;
    }
    int n = count_of(a);
    for (int i = 0; i < n && i < cap; i++)
        tag_desc(json_array_get(a, (size_t)i), &out[i], running);
    json_decref(root);
    return n;
}

int drv_api_parse_ollama_tags(const char *body, size_t len, struct drv_model_desc *out, int cap)
{
    return parse_tags(body, len, out, cap, false);
}

int drv_api_parse_ollama_ps(const char *body, size_t len, struct drv_model_desc *out, int cap)
{
    return parse_tags(body, len, out, cap, true);
}

/* llama-server's "meta" of a model: its shape and file, as /api/show and
 * /api/tags need them. */
static void openai_meta(json_t *meta, struct drv_model_desc *d)
{
    if (!json_is_object(meta))
        return;
    d->n_params = get_u64(meta, "n_params");
    if (d->n_params)
        drv_fmt_count(d->n_params, d->parameter_size, sizeof(d->parameter_size));
    d->size = d->size_resident = get_u64(meta, "size");
    uint64_t v = get_u64(meta, "n_ctx_train");
    d->n_ctx_train = v > UINT32_MAX ? 0 : (uint32_t)v;
    v = get_u64(meta, "n_ctx");
    d->context_length = v > UINT32_MAX ? 0 : (uint32_t)v;
    v = get_u64(meta, "n_embd");
    d->embedding_length = v > UINT32_MAX ? 0 : (uint32_t)v;
    v = get_u64(meta, "n_vocab");
    d->vocab_size = v > UINT32_MAX ? 0 : (uint32_t)v;
    const char *ft = json_string_value(json_object_get(meta, "ftype"));
    const char *q = ft ? drv_ftype_name_of_llama(ft) : NULL;
    if (ft) /* a name drover does not know is passed on as it came */
        drv_strlcpy(d->quantization, q ? q : ft, sizeof(d->quantization));
}

int drv_api_parse_openai_models(const char *body, size_t len, struct drv_model_desc *out, int cap)
{
    json_t *root;
    if (api_load(body, len, &root, NULL)) {
        json_decref(root);
        return DRV_EINVAL;
    }
    json_t *a = json_object_get(root, "data");
    bool llama = !json_is_array(a); /* llama-server's own "models" list */
    if (llama)
        a = json_object_get(root, "models");
    if (!json_is_array(a)) {
        json_decref(root);
        return DRV_EINVAL;
    }
    int n = count_of(a);
    for (int i = 0; i < n && i < cap; i++) {
        json_t *m = json_array_get(a, (size_t)i);
        struct drv_model_desc *d = &out[i];
        memset(d, 0, sizeof(*d));
        json_t *id = json_object_get(m, "id");
        if (llama && !json_is_string(id))
            id = json_is_string(json_object_get(m, "name")) ? json_object_get(m, "name")
                                                            : json_object_get(m, "model");
        copy_str(d->name, sizeof(d->name), id);
        copy_str(d->model, sizeof(d->model), id);
        d->modified_at = get_time(m, "created");
        openai_meta(json_object_get(m, "meta"), d);
    }
    json_decref(root);
    return n;
}

/* ---- embeddings ----------------------------------------------------------------- */

int drv_api_upstream_embed_body(const struct drv_embed_request *r, bool openai,
                                const char *model_override, struct drv_buf *out)
{
    json_t *in = json_array();
    for (size_t i = 0; in && i < r->n_inputs; i++)
        if (json_array_append_new(in, api_jstr(r->inputs[i])))
            json_decref(in), in = NULL;
    json_t *o = json_object();
    int rc = o ? 0 : DRV_ENOMEM;
    if (rc == 0)
        rc = put(o, "model", api_jstr(model_override ? model_override : r->model));
    else
        json_decref(in);
    if (rc == 0)
        rc = put(o, "input", in);
    if (rc == 0 && openai)
        rc = put(o, "encoding_format", json_string("float"));
    if (rc == 0 && !openai)
        rc = put(o, "truncate", json_boolean(r->truncate));
    if (rc == 0 && !openai && r->keep_alive_ms != INT64_MIN)
        rc = put(o, "keep_alive", keep_alive_json(r->keep_alive_ms));
    if (rc) {
        json_decref(o);
        return rc;
    }
    return api_dump(o, out);
}

/* The rows of the answer in order: Ollama embeddings[i], OpenAI data[] sorted
 * by index. Fills vec[0..n). */
static int embed_rows(json_t *root, bool openai, json_t **vec, size_t n, struct drv_err *err)
{
    json_t *a = json_object_get(root, openai ? "data" : "embeddings");
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(a, i);
        if (!openai) {
            vec[i] = item;
            continue;
        }
        json_t *idx = json_object_get(item, "index");
        json_int_t k = json_is_integer(idx) ? json_integer_value(idx) : (json_int_t)i;
        if (k < 0 || (size_t)k >= n || vec[k] != NULL)
            return drv_err_set(err, DRV_EINVAL,
                               "node sent embedding index %lld twice or out of "
                               "range",
                               (long long)k);
        vec[k] = json_object_get(item, "embedding");
        if (vec[k] == NULL)
            return drv_err_set(err, DRV_EINVAL, "node sent data[%zu] without an embedding", i);
    }
    for (size_t i = 0; i < n; i++)
        if (!json_is_array(vec[i]))
            return drv_err_set(err, DRV_EINVAL,
                               "node sent embedding %zu that is not an array of numbers", i);
    return 0;
}

static int embed_fill(json_t **vec, size_t n, size_t dim, float *rows, struct drv_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (json_array_size(vec[i]) != dim)
            return drv_err_set(err, DRV_EINVAL,
                               "node sent embeddings of different sizes (%zu and %zu)", dim,
                               json_array_size(vec[i]));
        for (size_t k = 0; k < dim; k++) {
            json_t *x = json_array_get(vec[i], k);
            double v = json_is_number(x) ? json_number_value(x) : NAN;
            if (!(fabs(v) <= FLT_MAX))
                return drv_err_set(err, DRV_EINVAL,
                                   "node sent embedding %zu with a value that is not a float", i);
            rows[i * dim + k] = (float)v;
        }
    }
    return 0;
}

int drv_api_upstream_embed_parse(const char *body, size_t len, bool openai, float **rows, size_t *n,
                                 size_t *dim, int32_t *prompt_tokens, struct drv_err *err)
{
    *rows = NULL;
    *n = 0;
    *dim = 0;
    if (prompt_tokens)
        *prompt_tokens = 0;
    json_t *root = load_json(body, len, err);
    if (root == NULL)
        return DRV_EINVAL;
    json_t **vec = NULL;
    float *data = NULL;
    size_t rn = 0, rd = 0;
    int rc = 0;
    json_t *e = json_object_get(root, "error");
    json_t *a = json_object_get(root, openai ? "data" : "embeddings");
    if (e && !json_is_null(e)) {
        json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
        rc = drv_err_set(err, DRV_EUPSTREAM, "node error: %.400s",
                         json_is_string(m) ? json_string_value(m) : "(no message)");
        goto out;
    }
    if (!json_is_array(a)) {
        rc = drv_err_set(err, DRV_EINVAL, "node sent no \"%s\" array",
                         openai ? "data" : "embeddings");
        goto out;
    }
    rn = json_array_size(a);
    if (rn > 0) {
        if ((vec = calloc(rn, sizeof(*vec))) == NULL) {
            rc = drv_err_set(err, DRV_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = embed_rows(root, openai, vec, rn, err)))
            goto out;
        if ((rd = json_array_size(vec[0])) == 0) {
            rc = drv_err_set(err, DRV_EINVAL, "node sent an empty embedding");
            goto out;
        }
        if (rn > SIZE_MAX / sizeof(float) / rd ||
            (data = malloc(rn * rd * sizeof(float))) == NULL) {
            rc = drv_err_set(err, DRV_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = embed_fill(vec, rn, rd, data, err)))
            goto out;
    }
    *rows = data;
    data = NULL;
    *n = rn;
    *dim = rd;
    if (prompt_tokens)
        *prompt_tokens = openai ? get_count(json_object_get(root, "usage"), "prompt_tokens")
                                : get_count(root, "prompt_eval_count");
out:
    free(data);
    free(vec);
    json_decref(root);
    return rc;
}
