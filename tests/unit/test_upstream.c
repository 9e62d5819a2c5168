/* api/upstream: request bodies for a node's own API (parsed back with jansson
 * and with drover's own decoders), and the decoder of a node's answer, fed
 * recorded Ollama and llama-server streams in every possible split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

/* ---- helpers -------------------------------------------------------------------- */

static json_t *parse(const char *s, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, 0, &e);
    if (j == NULL)
        fail_msg("not JSON (%s): %.*s", e.text, (int)n, s);
    return j;
}

static const char *sget(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

static long long iget(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static double rget(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_real(v))
        fail_msg("\"%s\" is not a real", key);
    return json_real_value(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* o has exactly the keys of the comma-separated list (in any order). */
static void assert_keys(json_t *o, const char *want)
{
    const char *got[64], *exp[64];
    size_t ng = 0, ne = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        assert_true(ng < 64);
        got[ng++] = k;
    }
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", want);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        exp[ne++] = t;
    qsort(got, ng, sizeof(*got), cmp_str);
    qsort(exp, ne, sizeof(*exp), cmp_str);
    char gs[1024] = "", es[1024] = "";
    for (size_t i = 0; i < ng; i++)
        snprintf(gs + strlen(gs), sizeof(gs) - strlen(gs), "%s%s", i ? "," : "", got[i]);
    for (size_t i = 0; i < ne; i++)
        snprintf(es + strlen(es), sizeof(es) - strlen(es), "%s%s", i ? "," : "", exp[i]);
    if (strcmp(gs, es) != 0)
        fail_msg("keys: got {%s}, want {%s}", gs, es);
}

/* The body for r on wire, parsed. */
static json_t *body_of(const struct drv_gen_request *r, enum drv_api_wire wire, bool stream,
                       const char *override)
{
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    int rc = drv_api_upstream_body(r, wire, stream, override, &out);
    if (rc != 0)
        fail_msg("drv_api_upstream_body: %d", rc);
    json_t *j = parse(out.data, out.len);
    drv_buf_release(&out);
    return j;
}

static const char *const STOPS[] = {"\n\n", "User:"};
static const char SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},\"required\":[\"n\"]}";

/* Every knob set to something that is not its default. */
static void full_request(struct drv_gen_request *r)
{
    drv_gen_request_init(r);
    r->model = "qwen3:4b";
    r->prompt = "Why is the sky blue?";
    r->system = "Be brief.";
    r->suffix = "END";
    r->raw = true;
    r->sampling.temperature = 0.7f;
    r->sampling.top_k = 20;
    r->sampling.top_p = 0.95f;
    r->sampling.min_p = 0.05f;
    r->sampling.seed = 42;
    r->sampling.repeat_penalty = 1.1f;
    r->sampling.repeat_last_n = -1;
    r->sampling.presence_penalty = -0.5f;
    r->sampling.frequency_penalty = 0.25f;
    r->num_predict = 128;
    r->num_ctx = 4096;
    r->stop = STOPS;
    r->n_stop = 2;
    r->format = DRV_FORMAT_SCHEMA;
    r->format_schema = SCHEMA;
    r->think = 1;
    r->truncate = true;
    r->keep_alive_ms = 300000;
}

static const struct drv_chat_msg MSGS[] = {
    {"user", "Hi"}, {"assistant", "Hello! \xe2\x98\x83"}, {"user", "Count to 3."}};

static void full_chat(struct drv_gen_request *r)
{
    full_request(r);
    r->kind = DRV_GEN_CHAT;
    r->messages = MSGS;
    r->n_messages = 3;
}

static void assert_stop(json_t *o)
{
    json_t *s = json_object_get(o, "stop");
    assert_int_equal(json_array_size(s), 2);
    assert_string_equal(json_string_value(json_array_get(s, 0)), "\n\n");
    assert_string_equal(json_string_value(json_array_get(s, 1)), "User:");
}

static void assert_schema(json_t *schema)
{
    assert_true(json_is_object(schema));
    char *t = json_dumps(schema, JSON_COMPACT);
    assert_string_equal(t, SCHEMA);
    free(t);
}

static void assert_messages(json_t *m, bool with_system)
{
    size_t off = with_system ? 1 : 0;
    assert_int_equal(json_array_size(m), 3 + off);
    if (with_system) {
        assert_keys(json_array_get(m, 0), "role,content");
        assert_string_equal(sget(json_array_get(m, 0), "role"), "system");
        assert_string_equal(sget(json_array_get(m, 0), "content"), "Be brief.");
    }
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(m, i + off);
        assert_keys(x, "role,content");
        assert_string_equal(sget(x, "role"), MSGS[i].role);
        assert_string_equal(sget(x, "content"), MSGS[i].content);
    }
}

/* ---- request bodies ------------------------------------------------------------------ */

static void body_ollama_generate_every_field(void **state)
{
    (void)state;
    struct drv_gen_request r;
    full_request(&r);
    json_t *j = body_of(&r, DRV_WIRE_OLLAMA_GENERATE, true, NULL);
    assert_keys(j, "model,prompt,system,suffix,raw,stream,options,format,think,keep_alive,"
                   "truncate");
    assert_string_equal(sget(j, "model"), "qwen3:4b");
    assert_string_equal(sget(j, "prompt"), "Why is the sky blue?");
    assert_string_equal(sget(j, "system"), "Be brief.");
    assert_string_equal(sget(j, "suffix"), "END");
    assert_true(json_is_true(json_object_get(j, "raw")));
    assert_true(json_is_true(json_object_get(j, "stream")));
    assert_true(json_is_true(json_object_get(j, "think")));
    assert_true(json_is_true(json_object_get(j, "truncate")));
    assert_string_equal(sget(j, "keep_alive"), "300000ms");
    assert_schema(json_object_get(j, "format"));
    json_t *o = json_object_get(j, "options");
    assert_keys(o, "temperature,top_k,top_p,min_p,seed,repeat_penalty,repeat_last_n,"
                   "presence_penalty,frequency_penalty,num_predict,num_ctx,stop");
    /* floats go out as the shortest decimal that reads back as the same float */
    assert_true(rget(o, "temperature") == 0.7);
    assert_true(rget(o, "top_p") == 0.95);
    assert_true(rget(o, "min_p") == 0.05);
    assert_true(rget(o, "repeat_penalty") == 1.1);
    assert_true(rget(o, "presence_penalty") == -0.5);
    assert_true(rget(o, "frequency_penalty") == 0.25);
    assert_int_equal(iget(o, "top_k"), 20);
    assert_int_equal(iget(o, "seed"), 42);
    assert_int_equal(iget(o, "repeat_last_n"), -1);
    assert_int_equal(iget(o, "num_predict"), 128);
    assert_int_equal(iget(o, "num_ctx"), 4096);
    assert_stop(o);
    json_decref(j);

    /* format json, think off, model override, not streaming */
    r.format = DRV_FORMAT_JSON;
    r.think = 0;
    j = body_of(&r, DRV_WIRE_OLLAMA_GENERATE, false, "node-name:q4");
    assert_string_equal(sget(j, "model"), "node-name:q4");
    assert_string_equal(sget(j, "format"), "json");
    assert_true(json_is_false(json_object_get(j, "think")));
    assert_true(json_is_false(json_object_get(j, "stream")));
    json_decref(j);
}

static void body_ollama_keep_alive(void **state)
{
    (void)state;
    struct drv_gen_request r;
    drv_gen_request_init(&r);
    r.model = "m";
    const struct {
        int64_t ms;
        const char *str; /* NULL: a number */
        long long num;
    } cases[] = {
        {0, NULL, 0},
        {-1, NULL, -1},
        {-300000, NULL, -1},
        {1, "1ms", 0},
        {90061001, "90061001ms", 0},
        {INT64_MAX, NULL, -1}, /* past Go's longest duration: forever */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r.keep_alive_ms = cases[i].ms;
        json_t *j = body_of(&r, DRV_WIRE_OLLAMA_GENERATE, true, NULL);
        json_t *ka = json_object_get(j, "keep_alive");
        if (cases[i].str) {
            assert_string_equal(json_string_value(ka), cases[i].str);
            /* and drover reads it back as the same duration */
            int64_t back;
            struct drv_err e;
            drv_err_init(&e);
            assert_int_equal(drv_api_parse_keep_alive(json_string_value(ka), &back, &e), 0);
            assert_int_equal(back, cases[i].ms);
        } else {
            assert_true(json_is_integer(ka));
            assert_int_equal(json_integer_value(ka), cases[i].num);
        }
        json_decref(j);
    }
}

static void body_defaults_are_not_sent(void **state)
{
    (void)state;
    struct drv_gen_request r;
    drv_gen_request_init(&r);
    r.model = "m";
    r.prompt = "p";
    json_t *j = body_of(&r, DRV_WIRE_OLLAMA_GENERATE, true, NULL);
    assert_keys(j, "model,prompt,stream");
    json_decref(j);
    j = body_of(&r, DRV_WIRE_OPENAI_COMPLETION, false, NULL);
    assert_keys(j, "model,prompt,stream");
    assert_true(json_is_false(json_object_get(j, "stream")));
    json_decref(j);

    r.kind = DRV_GEN_CHAT;
    r.messages = MSGS;
    r.n_messages = 3;
    j = body_of(&r, DRV_WIRE_OLLAMA_CHAT, false, NULL);
    assert_keys(j, "model,messages,stream");
    assert_messages(json_object_get(j, "messages"), false);
    json_decref(j);
    j = body_of(&r, DRV_WIRE_OPENAI_CHAT, true, NULL);
    assert_keys(j, "model,messages,stream,stream_options");
    assert_messages(json_object_get(j, "messages"), false);
    json_decref(j);

    /* empty stop strings and an empty system are nothing */
    static const char *const empty[] = {""};
    r.stop = empty;
    r.n_stop = 1;
    r.system = "";
    j = body_of(&r, DRV_WIRE_OPENAI_CHAT, false, NULL);
    assert_keys(j, "model,messages,stream");
    json_decref(j);
}

static void body_ollama_chat(void **state)
{
    (void)state;
    struct drv_gen_request r;
    full_chat(&r);
    json_t *j = body_of(&r, DRV_WIRE_OLLAMA_CHAT, true, NULL);
    assert_keys(j, "model,messages,stream,options,format,think,keep_alive,truncate");
    assert_messages(json_object_get(j, "messages"), true);
    assert_schema(json_object_get(j, "format"));
    assert_int_equal(json_object_size(json_object_get(j, "options")), 12);
    json_decref(j);
}

static void body_openai_completion(void **state)
{
    (void)state;
    struct drv_gen_request r;
    full_request(&r);
    json_t *j = body_of(&r, DRV_WIRE_OPENAI_COMPLETION, true, NULL);
    /* no system, raw, num_ctx, think, keep_alive or truncate on this wire */
    assert_keys(j, "model,prompt,suffix,stream,stream_options,max_tokens,temperature,top_p,seed,"
                   "presence_penalty,frequency_penalty,stop,top_k,min_p,repeat_penalty,"
                   "repeat_last_n,json_schema");
    assert_string_equal(sget(j, "prompt"), "Why is the sky blue?");
    assert_string_equal(sget(j, "suffix"), "END");
    assert_true(json_is_true(json_object_get(j, "stream")));
    assert_true(
        json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")));
    assert_int_equal(iget(j, "max_tokens"), 128);
    assert_true(rget(j, "temperature") == 0.7);
    assert_true(rget(j, "top_p") == 0.95);
    assert_true(rget(j, "min_p") == 0.05);
    assert_true(rget(j, "repeat_penalty") == 1.1);
    assert_true(rget(j, "presence_penalty") == -0.5);
    assert_true(rget(j, "frequency_penalty") == 0.25);
    assert_int_equal(iget(j, "seed"), 42);
    assert_int_equal(iget(j, "top_k"), 20);
    assert_int_equal(iget(j, "repeat_last_n"), -1);
    assert_stop(j);
    assert_schema(json_object_get(j, "json_schema"));
    json_decref(j);

    r.format = DRV_FORMAT_JSON;
    j = body_of(&r, DRV_WIRE_OPENAI_COMPLETION, false, "alias");
    assert_string_equal(sget(j, "model"), "alias");
    assert_null(json_object_get(j, "stream_options"));
    assert_string_equal(sget(json_object_get(j, "json_schema"), "type"), "object");
    json_decref(j);
}

static void body_openai_chat(void **state)
{
    (void)state;
    struct drv_gen_request r;
    full_chat(&r);
    json_t *j = body_of(&r, DRV_WIRE_OPENAI_CHAT, true, NULL);
    assert_keys(j, "model,messages,stream,stream_options,max_tokens,temperature,top_p,seed,"
                   "presence_penalty,frequency_penalty,stop,top_k,min_p,repeat_penalty,"
                   "repeat_last_n,response_format,chat_template_kwargs");
    assert_messages(json_object_get(j, "messages"), true);
    json_t *rf = json_object_get(j, "response_format");
    assert_keys(rf, "type,json_schema");
    assert_string_equal(sget(rf, "type"), "json_schema");
    json_t *js = json_object_get(rf, "json_schema");
    assert_keys(js, "name,schema");
    assert_string_equal(sget(js, "name"), "schema");
    assert_schema(json_object_get(js, "schema"));
    json_t *kw = json_object_get(j, "chat_template_kwargs");
    assert_keys(kw, "enable_thinking");
    assert_true(json_is_true(json_object_get(kw, "enable_thinking")));
    json_decref(j);

    r.format = DRV_FORMAT_JSON;
    r.think = 0;
    r.system = NULL;
    j = body_of(&r, DRV_WIRE_OPENAI_CHAT, false, NULL);
    assert_messages(json_object_get(j, "messages"), false);
    rf = json_object_get(j, "response_format");
    assert_keys(rf, "type");
    assert_string_equal(sget(rf, "type"), "json_object");
    assert_true(json_is_false(
        json_object_get(json_object_get(j, "chat_template_kwargs"), "enable_thinking")));
    json_decref(j);
}

static void body_refusals_leave_out_unchanged(void **state)
{
    (void)state;
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    drv_buf_append(&out, "x", 1);
    struct drv_gen_request r;
    full_request(&r);
    assert_int_equal(drv_api_upstream_body(&r, DRV_WIRE_OLLAMA_CHAT, true, NULL, &out), DRV_EINVAL);
    assert_int_equal(drv_api_upstream_body(&r, DRV_WIRE_OPENAI_CHAT, true, NULL, &out), DRV_EINVAL);
    full_chat(&r);
    assert_int_equal(drv_api_upstream_body(&r, DRV_WIRE_OLLAMA_GENERATE, true, NULL, &out),
                     DRV_EINVAL);
    assert_int_equal(drv_api_upstream_body(&r, DRV_WIRE_OPENAI_COMPLETION, true, NULL, &out),
                     DRV_EINVAL);
    r.format_schema = "{not json";
    assert_int_equal(drv_api_upstream_body(&r, DRV_WIRE_OLLAMA_CHAT, true, NULL, &out), DRV_EINVAL);
    assert_int_equal(out.len, 1);
    drv_buf_release(&out);

    /* past out's cap */
    drv_buf_init(&out, 64);
    full_chat(&r);
    assert_int_equal(drv_api_upstream_body(&r, DRV_WIRE_OLLAMA_CHAT, true, NULL, &out),
                     DRV_ETOOBIG);
    assert_int_equal(out.len, 0);
    drv_buf_release(&out);
}

/* What drover itself decodes from the body is what was sent. */
typedef int (*decode_fn)(const char *, size_t, struct drv_api_req *, struct drv_err *);

static void decode_body(const struct drv_gen_request *r, enum drv_api_wire wire,
                        struct drv_api_req *out)
{
    static const decode_fn dec[] = {drv_api_ollama_decode_generate, drv_api_ollama_decode_chat,
                                    drv_api_openai_decode_completion, drv_api_openai_decode_chat};
    struct drv_buf b;
    drv_buf_init(&b, 1 << 20);
    assert_int_equal(drv_api_upstream_body(r, wire, true, NULL, &b), 0);
    struct drv_err e;
    drv_err_init(&e);
    if (dec[wire](b.data, b.len, out, &e) != 0)
        fail_msg("decoding %s: %s", b.data, e.msg);
    drv_buf_release(&b);
}

static void assert_same_knobs(const struct drv_gen_request *a, const struct drv_gen_request *b,
                              bool ollama)
{
    assert_true(a->sampling.temperature == b->sampling.temperature);
    assert_int_equal(a->sampling.top_k, b->sampling.top_k);
    assert_true(a->sampling.top_p == b->sampling.top_p);
    assert_true(a->sampling.min_p == b->sampling.min_p);
    assert_int_equal(a->sampling.seed, b->sampling.seed);
    assert_true(a->sampling.repeat_penalty == b->sampling.repeat_penalty);
    assert_int_equal(a->sampling.repeat_last_n, b->sampling.repeat_last_n);
    assert_true(a->sampling.presence_penalty == b->sampling.presence_penalty);
    assert_true(a->sampling.frequency_penalty == b->sampling.frequency_penalty);
    assert_int_equal(a->num_predict, b->num_predict);
    assert_int_equal(a->n_stop, b->n_stop);
    for (size_t i = 0; i < a->n_stop; i++)
        assert_string_equal(a->stop[i], b->stop[i]);
    if (ollama) {
        assert_int_equal(a->num_ctx, b->num_ctx);
        assert_int_equal(a->keep_alive_ms, b->keep_alive_ms);
        assert_int_equal(a->truncate, b->truncate);
    }
}

static void body_round_trips_through_drover_decoders(void **state)
{
    (void)state;
    struct drv_gen_request r;
    struct drv_api_req d;
    full_request(&r);
    decode_body(&r, DRV_WIRE_OLLAMA_GENERATE, &d);
    assert_same_knobs(&r, &d.gen, true);
    assert_string_equal(d.gen.prompt, r.prompt);
    assert_string_equal(d.gen.system, r.system);
    assert_string_equal(d.gen.suffix, r.suffix);
    assert_true(d.gen.raw);
    assert_int_equal(d.gen.think, 1);
    assert_int_equal(d.gen.format, DRV_FORMAT_SCHEMA);
    assert_string_equal(d.gen.format_schema, SCHEMA);
    drv_api_req_release(&d);

    decode_body(&r, DRV_WIRE_OPENAI_COMPLETION, &d);
    assert_same_knobs(&r, &d.gen, false);
    assert_string_equal(d.gen.prompt, r.prompt);
    assert_string_equal(d.gen.suffix, r.suffix);
    assert_true(d.stream && d.include_usage);
    drv_api_req_release(&d);

    full_chat(&r);
    decode_body(&r, DRV_WIRE_OLLAMA_CHAT, &d);
    assert_same_knobs(&r, &d.gen, true);
    assert_int_equal(d.gen.n_messages, 4);
    assert_string_equal(d.gen.messages[0].role, "system");
    assert_string_equal(d.gen.messages[0].content, "Be brief.");
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(d.gen.messages[i + 1].role, MSGS[i].role);
        assert_string_equal(d.gen.messages[i + 1].content, MSGS[i].content);
    }
    assert_string_equal(d.gen.format_schema, SCHEMA);
    drv_api_req_release(&d);

    r.think = 0;
    decode_body(&r, DRV_WIRE_OPENAI_CHAT, &d);
    assert_same_knobs(&r, &d.gen, false);
    assert_int_equal(d.gen.n_messages, 4);
    assert_string_equal(d.gen.messages[3].content, "Count to 3.");
    assert_int_equal(d.gen.think, 0);
    assert_int_equal(d.gen.format, DRV_FORMAT_SCHEMA);
    assert_string_equal(d.gen.format_schema, SCHEMA);
    drv_api_req_release(&d);
}

/* ---- the answer: an event recorder ------------------------------------------------------ */

struct rec {
    struct drv_buf log; /* one line per event */
    int n;              /* events so far */
    int stop_at;        /* the sink returns 1 on this event (0-based); -1 never */
    int terminal;
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    drv_buf_init(&r->log, 1 << 24);
    r->stop_at = -1;
}

static const char *rec_log(const struct rec *r)
{
    return r->log.data ? r->log.data : "";
}

static int rec_sink(void *ud, const struct drv_gen_event *ev)
{
    struct rec *r = ud;
    if (r->terminal)
        fail_msg("event %d after the terminal one", ev->kind);
    if (ev->model == NULL || strcmp(ev->model, "node-model") != 0)
        fail_msg("event without the model set at init");
    switch (ev->kind) {
    case DRV_EV_TOKEN:
    case DRV_EV_THINKING:
        if (ev->len == 0)
            fail_msg("empty text event");
        drv_buf_append(&r->log, ev->kind == DRV_EV_TOKEN ? "T[" : "K[", 2);
        drv_buf_append(&r->log, ev->text, ev->len); /* raw bytes, NULs included */
        drv_buf_append(&r->log, "]\n", 2);
        break;
    case DRV_EV_DONE:
        drv_buf_appendf(&r->log, "D[%s p=%d/%llu e=%d/%llu t=%llu l=%llu]\n",
                        ev->stats.done_reason ? ev->stats.done_reason : "(null)",
                        ev->stats.prompt_tokens, (unsigned long long)ev->stats.prompt_ns,
                        ev->stats.eval_tokens, (unsigned long long)ev->stats.eval_ns,
                        (unsigned long long)ev->stats.total_ns,
                        (unsigned long long)ev->stats.load_ns);
        r->terminal = 1;
        break;
    case DRV_EV_ERROR:
        drv_buf_appendf(&r->log, "E[%d %s]\n", ev->status, ev->message ? ev->message : "(null)");
        r->terminal = 1;
        break;
    }
    return r->n++ == r->stop_at;
}

/* Feeds body cut at cuts[0..ncuts) (ascending offsets), then finishes. Returns
 * the first nonzero status, or 0. */
static int run_cuts(enum drv_api_wire wire, bool stream, const char *body, size_t len,
                    const size_t *cuts, size_t ncuts, struct rec *r,
                    struct drv_api_upstream_parser *keep)
{
    struct drv_api_upstream_parser p;
    assert_int_equal(drv_api_upstream_parser_init(&p, wire, stream, "node-model"), 0);
    struct drv_err e;
    drv_err_init(&e);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = drv_api_upstream_feed(&p, body + at, end - at, rec_sink, r, &e);
        at = end;
    }
    if (rc == 0)
        rc = drv_api_upstream_finish(&p, rec_sink, r, &e);
    if (rc < 0 && e.msg[0] == '\0')
        fail_msg("a failure without a message");
    if (keep)
        *keep = p;
    else
        drv_api_upstream_parser_release(&p);
    return rc;
}

static int run_body(enum drv_api_wire wire, bool stream, const char *body, struct rec *r)
{
    return run_cuts(wire, stream, body, strlen(body), NULL, 0, r, NULL);
}

/* body, fed in one piece, decodes without failing into the events want. */
static void assert_decodes(enum drv_api_wire wire, bool stream, const char *body, const char *want)
{
    struct rec r;
    rec_init(&r);
    assert_int_equal(run_body(wire, stream, body, &r), 0);
    assert_string_equal(rec_log(&r), want);
    drv_buf_release(&r.log);
}

/* The log of body fed in one piece; then the same for every split point, one
 * byte at a time, and in pseudo-random pieces: all must be identical. */
static void assert_split_invariant(enum drv_api_wire wire, bool stream, const char *body,
                                   const char *want)
{
    size_t len = strlen(body);
    struct rec r;
    rec_init(&r);
    assert_int_equal(run_cuts(wire, stream, body, len, NULL, 0, &r, NULL), 0);
    assert_string_equal(rec_log(&r), want);
    drv_buf_release(&r.log);

    for (size_t k = 0; k <= len; k++) {
        rec_init(&r);
        assert_int_equal(run_cuts(wire, stream, body, len, &k, 1, &r, NULL), 0);
        if (strcmp(rec_log(&r), want) != 0)
            fail_msg("split at %zu of %zu:\n%s\nwant:\n%s", k, len, rec_log(&r), want);
        drv_buf_release(&r.log);
    }

    size_t *cuts = malloc(len * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    rec_init(&r);
    assert_int_equal(run_cuts(wire, stream, body, len, cuts, len ? len - 1 : 0, &r, NULL), 0);
    assert_string_equal(rec_log(&r), want);
    drv_buf_release(&r.log);

    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 0, at = 0;
        while (1) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            at += 1 + (size_t)((x >> 33) % 23);
            if (at >= len)
                break;
            cuts[n++] = at;
        }
        rec_init(&r);
        assert_int_equal(run_cuts(wire, stream, body, len, cuts, n, &r, NULL), 0);
        if (strcmp(rec_log(&r), want) != 0)
            fail_msg("trial %d:\n%s\nwant:\n%s", trial, rec_log(&r), want);
        drv_buf_release(&r.log);
    }
    free(cuts);
}

/* ---- recorded streams (shapes as Ollama and llama-server send them) ---------------------- */

static const char OLLAMA_CHAT_STREAM[] =
    "{\"model\":\"qwen3:0.6b\",\"created_at\":\"2025-06-01T10:00:00.100000001Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"Okay, the user\"},\"done\":false}\n"
    "{\"model\":\"qwen3:0.6b\",\"created_at\":\"2025-06-01T10:00:00.110000001Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\" says hi.\"},\"done\":false}\n"
    "{\"model\":\"qwen3:0.6b\",\"created_at\":\"2025-06-01T10:00:00.120000001Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\"\"},\"done\":false}\n"
    "{\"model\":\"qwen3:0.6b\",\"created_at\":\"2025-06-01T10:00:00.130000001Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\"Hello\"},\"done\":false}\n"
    "{\"model\":\"qwen3:0.6b\",\"created_at\":\"2025-06-01T10:00:00.140000001Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\" w\xc3\xb6rld \xe2\x98\x83\"},\"done\":false}\n"
    "{\"model\":\"qwen3:0.6b\",\"created_at\":\"2025-06-01T10:00:00.150000001Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\" \\ud83e\\udd99\xf0\x9f\xa6\x99!\"},\"done\":false}\n"
    "{\"model\":\"qwen3:0.6b\",\"created_at\":\"2025-06-01T10:00:00.160000001Z\",\"message\":"
    "{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,"
    "\"total_duration\":1234567890,\"load_duration\":2345678,\"prompt_eval_count\":26,"
    "\"prompt_eval_duration\":34567890,\"eval_count\":5,\"eval_duration\":45678901}\n";

static const char OLLAMA_CHAT_WANT[] =
    "K[Okay, the user]\n"
    "K[ says hi.]\n"
    "T[Hello]\n"
    "T[ w\xc3\xb6rld \xe2\x98\x83]\n"
    "T[ \xf0\x9f\xa6\x99\xf0\x9f\xa6\x99!]\n"
    "D[stop p=26/34567890 e=5/45678901 t=1234567890 l=2345678]\n";

#define LS_HEAD "\"created\":1748772000,\"id\":\"chatcmpl-Xb2kq\",\"model\":\"qwen3-0.6b\","
#define LS_TAIL "\"system_fingerprint\":\"b5600-c52f3fb7\",\"object\":\"chat.completion.chunk\"}"
static const char LLAMA_CHAT_STREAM[] =
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":null}}]," LS_HEAD LS_TAIL "\n\n"
    ": keep-alive comment\n\n"
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"reasoning_content\":"
    "\"Hmm\"}}]," LS_HEAD LS_TAIL "\n\n"
    "data: "
    "{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Hi\"}}]," LS_HEAD
        LS_TAIL "\n\n"
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":"
    "\" th\xc3\xa9re \xe2\x98\x83\"}}]," LS_HEAD LS_TAIL "\n\n"
    "data: {\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}]," LS_HEAD
    "\"timings\":{\"cache_n\":2,\"prompt_n\":12,\"prompt_ms\":30.5,\"prompt_per_second\":393.4,"
    "\"predicted_n\":3,\"predicted_ms\":40.25,\"predicted_per_second\":74.5}," LS_TAIL "\n\n"
    "data: {\"choices\":[]," LS_HEAD "\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":14,"
    "\"total_tokens\":17},\"timings\":{\"cache_n\":2,\"prompt_n\":12,\"prompt_ms\":30.5,"
    "\"prompt_per_second\":393.4,\"predicted_n\":3,\"predicted_ms\":40.25,"
    "\"predicted_per_second\":74.5}," LS_TAIL "\n\n"
    "data: [DONE]\n\n";

/* usage's token counts, timings' durations */
static const char LLAMA_CHAT_WANT[] = "K[Hmm]\n"
                                      "T[Hi]\n"
                                      "T[ th\xc3\xa9re \xe2\x98\x83]\n"
                                      "D[length p=14/30500000 e=3/40250000 t=0 l=0]\n";

/* s with every "\n" made "\r\n" (caller frees) */
static char *crlf(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *o = malloc(2 * n + 1);
    assert_non_null(o);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            o[k++] = '\r';
        o[k++] = s[i];
    }
    o[k] = '\0';
    return o;
}

/* ---- streams ---------------------------------------------------------------------------- */

static void ollama_chat_stream_events(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct drv_api_upstream_parser p;
    assert_int_equal(run_cuts(DRV_WIRE_OLLAMA_CHAT, true, OLLAMA_CHAT_STREAM,
                              strlen(OLLAMA_CHAT_STREAM), NULL, 0, &r, &p),
                     0);
    assert_string_equal(rec_log(&r), OLLAMA_CHAT_WANT);
    assert_true(drv_api_upstream_finished(&p));
    assert_true(drv_api_upstream_started(&p));
    drv_api_upstream_parser_release(&p);
    drv_api_upstream_parser_release(&p); /* twice is harmless */
    drv_buf_release(&r.log);
}

static void ollama_chat_stream_any_split(void **state)
{
    (void)state;
    assert_split_invariant(DRV_WIRE_OLLAMA_CHAT, true, OLLAMA_CHAT_STREAM, OLLAMA_CHAT_WANT);
    char *c = crlf(OLLAMA_CHAT_STREAM);
    assert_split_invariant(DRV_WIRE_OLLAMA_CHAT, true, c, OLLAMA_CHAT_WANT);
    free(c);
}

static void llama_server_chat_stream_any_split(void **state)
{
    (void)state;
    assert_split_invariant(DRV_WIRE_OPENAI_CHAT, true, LLAMA_CHAT_STREAM, LLAMA_CHAT_WANT);
    char *c = crlf(LLAMA_CHAT_STREAM);
    assert_split_invariant(DRV_WIRE_OPENAI_CHAT, true, c, LLAMA_CHAT_WANT);
    free(c);
}

/* DONE waits for [DONE]: the usage chunk comes after the finish_reason chunk. */
static void llama_server_done_waits_for_usage(void **state)
{
    (void)state;
    const char *usage = strstr(LLAMA_CHAT_STREAM, "data: {\"choices\":[],");
    assert_non_null(usage);
    struct drv_api_upstream_parser p;
    assert_int_equal(drv_api_upstream_parser_init(&p, DRV_WIRE_OPENAI_CHAT, true, "node-model"), 0);
    struct rec r;
    rec_init(&r);
    struct drv_err e;
    drv_err_init(&e);
    assert_int_equal(drv_api_upstream_feed(&p, LLAMA_CHAT_STREAM,
                                           (size_t)(usage - LLAMA_CHAT_STREAM), rec_sink, &r, &e),
                     0);
    assert_false(drv_api_upstream_finished(&p));
    assert_int_equal(r.n, 3);
    assert_int_equal(drv_api_upstream_feed(&p, usage, strlen(usage), rec_sink, &r, &e), 0);
    assert_true(drv_api_upstream_finished(&p));
    assert_string_equal(rec_log(&r), LLAMA_CHAT_WANT);
    /* bytes after the end are ignored */
    const char *late = "data: {\"error\":\"x\"}\n\n";
    assert_int_equal(drv_api_upstream_feed(&p, late, strlen(late), rec_sink, &r, &e), 0);
    assert_int_equal(drv_api_upstream_finish(&p, rec_sink, &r, &e), 0);
    assert_int_equal(r.n, 4);
    drv_api_upstream_parser_release(&p);
    drv_buf_release(&r.log);

    /* without [DONE]: DONE at the end of the body, with the usage */
    char *cut = strdup(LLAMA_CHAT_STREAM);
    *strstr(cut, "data: [DONE]") = '\0';
    assert_decodes(DRV_WIRE_OPENAI_CHAT, true, cut, LLAMA_CHAT_WANT);
    /* and without the usage chunk: timings' counts */
    *strstr(cut, "data: {\"choices\":[],") = '\0';
    assert_decodes(DRV_WIRE_OPENAI_CHAT, true, cut,
                   "K[Hmm]\nT[Hi]\nT[ th\xc3\xa9re \xe2\x98\x83]\n"
                   "D[length p=12/30500000 e=3/40250000 t=0 l=0]\n");
    free(cut);
}

static void ollama_generate_stream(void **state)
{
    (void)state;
    const char *body =
        "\xef\xbb\xbf{\"model\":\"m\",\"created_at\":\"x\",\"response\":\"\",\"thinking\":\"hm\","
        "\"done\":false}\r\n"
        "\r\n"
        "   \n"
        "{\"model\":\"m\",\"created_at\":\"x\",\"response\":\"Once\",\"done\":false}\n"
        "{\"model\":\"m\",\"created_at\":\"x\",\"response\":\" upon\\u0000\",\"done\":false}\n"
        "{\"model\":\"m\",\"created_at\":\"x\",\"response\":\"\",\"done\":true,"
        "\"done_reason\":\"length\",\"eval_count\":2}"; /* no final newline */
    struct rec r;
    rec_init(&r);
    assert_int_equal(run_body(DRV_WIRE_OLLAMA_GENERATE, true, body, &r), 0);
    assert_int_equal(r.log.len,
                     strlen("K[hm]\nT[Once]\nT[ upon?]\nD[length p=0/0 e=2/0 t=0 l=0]\n"));
    assert_memory_equal(r.log.data, "K[hm]\nT[Once]\nT[ upon\0]\nD[length p=0/0 e=2/0 t=0 l=0]\n",
                        r.log.len);
    drv_buf_release(&r.log);

    /* no done_reason: "stop"; an unreadable one too */
    assert_decodes(DRV_WIRE_OLLAMA_GENERATE, true,
                   "{\"response\":\"a\",\"done\":true,\"done_reason\":\"a b\","
                   "\"prompt_eval_count\":-3,\"eval_count\":1e40}\n",
                   "T[a]\nD[stop p=0/0 e=2147483647/0 t=0 l=0]\n");
}

static void openai_completion_stream(void **state)
{
    (void)state;
    const char *body =
        "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\","
        "\"choices\":[{\"text\":\"Once\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n"
        "\n"
        "event: message\n"
        "id: 7\n"
        "retry: 100\n"
        "data:{\"choices\":[{\"text\":\" upon\",\"index\":0,\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"text\":\"\",\"index\":0,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n";
    assert_decodes(DRV_WIRE_OPENAI_COMPLETION, true, body,
                   "T[Once]\nT[ upon]\nD[stop p=4/0 e=2/0 t=0 l=0]\n");

    /* a data field over two lines is one event; [DONE] with no finish_reason is "stop" */
    assert_decodes(DRV_WIRE_OPENAI_COMPLETION, true,
                   "data: {\"choices\":[{\"text\":\"a\",\ndata: \"index\":0}]}\n\n"
                   "data: [DONE]",
                   "T[a]\nD[stop p=0/0 e=0/0 t=0 l=0]\n");
}

static void in_stream_errors(void **state)
{
    (void)state;
    const struct {
        enum drv_api_wire wire;
        const char *body;
        const char *want;
    } cases[] = {
        {DRV_WIRE_OLLAMA_GENERATE,
         "{\"response\":\"a\",\"done\":false}\n{\"error\":\"model runner crashed\"}\n"
         "{\"response\":\"b\",\"done\":false}\n",
         "T[a]\nE[502 model runner crashed]\n"},
        {DRV_WIRE_OLLAMA_CHAT, "{\"error\":{\"message\":\"line one\\nline two\"}}\n",
         "E[502 line one line two]\n"},
        {DRV_WIRE_OLLAMA_CHAT, "{\"error\":42}\n", "E[502 node reported an error]\n"},
        {DRV_WIRE_OPENAI_CHAT,
         "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"
         "data: {\"error\":{\"code\":500,\"message\":\"context shift disabled\","
         "\"type\":\"server_error\"}}\n\n",
         "T[x]\nE[502 context shift disabled]\n"},
        {DRV_WIRE_OPENAI_COMPLETION,
         "error: {\"code\":400,\"message\":\"too long\",\"type\":\"invalid_request_error\"}\n\n",
         "E[502 too long]\n"},
        {DRV_WIRE_OPENAI_CHAT, "event: error\nerror: out of slots\n\n", "E[502 out of slots]\n"},
        {DRV_WIRE_OPENAI_CHAT, "{\"error\":{\"message\":\"not SSE at all\"}}",
         "E[502 not SSE at all]\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rec r;
        rec_init(&r);
        assert_int_equal(run_body(cases[i].wire, true, cases[i].body, &r), 0);
        if (strcmp(rec_log(&r), cases[i].want) != 0)
            fail_msg("case %zu: got\n%swant\n%s", i, rec_log(&r), cases[i].want);
        drv_buf_release(&r.log);
    }
}

static void truncated_streams(void **state)
{
    (void)state;
    const char *early = "E[502 node ended the stream early]\n";
    char want[256];
    const struct {
        enum drv_api_wire wire;
        const char *body;
        const char *before;
    } cases[] = {
        {DRV_WIRE_OLLAMA_CHAT, "", ""},
        {DRV_WIRE_OLLAMA_CHAT, "{\"message\":{\"content\":\"a\"},\"done\":false}\n", "T[a]\n"},
        /* cut mid-line: the partial line is not an error of its own */
        {DRV_WIRE_OLLAMA_CHAT,
         "{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"message\":{\"co", "T[a]\n"},
        {DRV_WIRE_OLLAMA_GENERATE, "{\"response\":\"a\",\"done\":false}", "T[a]\n"},
        {DRV_WIRE_OPENAI_CHAT, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
         "T[a]\n"},
        {DRV_WIRE_OPENAI_CHAT,
         "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"ch", "T[a]\n"},
        {DRV_WIRE_OPENAI_COMPLETION, ": ping\n\n", ""},
        {DRV_WIRE_OPENAI_COMPLETION, "data: [DO", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rec r;
        rec_init(&r);
        struct drv_api_upstream_parser p;
        assert_int_equal(
            run_cuts(cases[i].wire, true, cases[i].body, strlen(cases[i].body), NULL, 0, &r, &p),
            0);
        snprintf(want, sizeof(want), "%s%s", cases[i].before, early);
        if (strcmp(rec_log(&r), want) != 0)
            fail_msg("case %zu: got\n%swant\n%s", i, rec_log(&r), want);
        assert_true(drv_api_upstream_finished(&p));
        assert_int_equal(drv_api_upstream_started(&p), cases[i].before[0] != '\0');
        drv_api_upstream_parser_release(&p);
        drv_buf_release(&r.log);
    }
}

static void malformed_lines_fail_with_a_message(void **state)
{
    (void)state;
    const struct {
        enum drv_api_wire wire;
        const char *body;
    } cases[] = {
        {DRV_WIRE_OLLAMA_CHAT, "not json\n"},
        {DRV_WIRE_OLLAMA_CHAT, "[1,2]\n"},
        {DRV_WIRE_OLLAMA_GENERATE, "{\"response\":\"\xff\"}\n"},
        {DRV_WIRE_OPENAI_CHAT, "data: {\"choices\":\n\n"},
        {DRV_WIRE_OPENAI_CHAT, "data: 42\n\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct drv_api_upstream_parser p;
        assert_int_equal(drv_api_upstream_parser_init(&p, cases[i].wire, true, "node-model"), 0);
        struct rec r;
        rec_init(&r);
        struct drv_err e;
        drv_err_init(&e);
        int rc = drv_api_upstream_feed(&p, cases[i].body, strlen(cases[i].body), rec_sink, &r, &e);
        if (rc != DRV_EINVAL || strstr(e.msg, "node sent") == NULL)
            fail_msg("case %zu: rc %d, \"%s\"", i, rc, e.msg);
        assert_int_equal(r.n, 0);
        /* the caller ends the request */
        drv_api_upstream_parser_fail(&p, 502, e.msg, rec_sink, &r);
        drv_api_upstream_parser_fail(&p, 500, "again", rec_sink, &r);
        assert_int_equal(r.n, 1);
        assert_true(strncmp(rec_log(&r), "E[502 node sent", 15) == 0);
        assert_true(drv_api_upstream_finished(&p));
        drv_api_upstream_parser_release(&p);
        drv_buf_release(&r.log);
    }
}

static void line_cap(void **state)
{
    (void)state;
    struct drv_api_upstream_parser p;
    assert_int_equal(drv_api_upstream_parser_init(&p, DRV_WIRE_OLLAMA_CHAT, true, "node-model"), 0);
    size_t chunk = 1 << 20;
    char *a = malloc(chunk);
    assert_non_null(a);
    memset(a, 'a', chunk);
    struct rec r;
    rec_init(&r);
    struct drv_err e;
    drv_err_init(&e);
    int rc = 0;
    size_t fed = 0;
    while (rc == 0 && fed <= DRV_API_MAX_TEXT) {
        rc = drv_api_upstream_feed(&p, a, chunk, rec_sink, &r, &e);
        fed += chunk;
    }
    assert_int_equal(rc, DRV_ETOOBIG);
    assert_non_null(strstr(e.msg, "longer than"));
    assert_int_equal(r.n, 0);
    free(a);
    drv_api_upstream_parser_release(&p);
    drv_buf_release(&r.log);
}

static void sink_stop(void **state)
{
    (void)state;
    /* stop at the first answer token (event 2): feed says 1, nothing more is sent */
    struct drv_api_upstream_parser p;
    assert_int_equal(drv_api_upstream_parser_init(&p, DRV_WIRE_OLLAMA_CHAT, true, "node-model"), 0);
    struct rec r;
    rec_init(&r);
    r.stop_at = 2;
    struct drv_err e;
    drv_err_init(&e);
    assert_int_equal(
        drv_api_upstream_feed(&p, OLLAMA_CHAT_STREAM, strlen(OLLAMA_CHAT_STREAM), rec_sink, &r, &e),
        1);
    assert_string_equal(rec_log(&r), "K[Okay, the user]\nK[ says hi.]\nT[Hello]\n");
    assert_int_equal(
        drv_api_upstream_feed(&p, "{\"message\":{\"content\":\"z\"}}\n", 28, rec_sink, &r, &e), 1);
    assert_int_equal(drv_api_upstream_finish(&p, rec_sink, &r, &e), 1);
    assert_int_equal(r.n, 3);
    assert_false(drv_api_upstream_finished(&p));
    assert_true(drv_api_upstream_started(&p));
    drv_api_upstream_parser_fail(&p, 499, "client went away", rec_sink, &r);
    assert_int_equal(r.n, 4);
    assert_true(drv_api_upstream_finished(&p));
    assert_string_equal(rec_log(&r), "K[Okay, the user]\nK[ says hi.]\nT[Hello]\n"
                                     "E[499 client went away]\n");
    drv_api_upstream_parser_release(&p);
    drv_buf_release(&r.log);

    /* a sink that returns nonzero on the terminal event changes nothing */
    rec_init(&r);
    r.stop_at = 5;
    assert_int_equal(run_body(DRV_WIRE_OLLAMA_CHAT, true, OLLAMA_CHAT_STREAM, &r), 0);
    assert_string_equal(rec_log(&r), OLLAMA_CHAT_WANT);
    drv_buf_release(&r.log);

    /* non-streaming: stop at the thinking */
    rec_init(&r);
    r.stop_at = 0;
    assert_int_equal(run_body(DRV_WIRE_OLLAMA_GENERATE, false,
                              "{\"response\":\"a\",\"thinking\":\"b\",\"done\":true}", &r),
                     1);
    assert_string_equal(rec_log(&r), "K[b]\n");
    drv_buf_release(&r.log);
}

static void non_streaming_answers(void **state)
{
    (void)state;
    const struct {
        enum drv_api_wire wire;
        const char *body;
        const char *want;
    } cases[] = {
        {DRV_WIRE_OLLAMA_GENERATE,
         "{\"model\":\"m\",\"created_at\":\"x\",\"response\":\"The sky\\nis blue.\","
         "\"thinking\":\"Rayleigh.\",\"done\":true,\"done_reason\":\"stop\","
         "\"total_duration\":900,\"load_duration\":100,\"prompt_eval_count\":7,"
         "\"prompt_eval_duration\":200,\"eval_count\":4,\"eval_duration\":500}",
         "K[Rayleigh.]\nT[The sky\nis blue.]\nD[stop p=7/200 e=4/500 t=900 l=100]\n"},
        {DRV_WIRE_OLLAMA_CHAT,
         "{\n  \"message\": {\"role\": \"assistant\", \"content\": \"Hi\"},\n  \"done\": true,\n"
         "  \"done_reason\": \"length\"\n}\n",
         "T[Hi]\nD[length p=0/0 e=0/0 t=0 l=0]\n"},
        {DRV_WIRE_OLLAMA_CHAT,
         "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true}",
         "D[stop p=0/0 e=0/0 t=0 l=0]\n"},
        {DRV_WIRE_OPENAI_CHAT,
         "{\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"message\":{\"role\":"
         "\"assistant\",\"content\":\"4\",\"reasoning_content\":\"2+2\"}}],\"created\":1,"
         "\"model\":\"m\",\"object\":\"chat.completion\",\"usage\":{\"completion_tokens\":9,"
         "\"prompt_tokens\":20,\"total_tokens\":29},\"timings\":{\"prompt_n\":18,"
         "\"prompt_ms\":1.5,\"predicted_n\":9,\"predicted_ms\":12}}",
         "K[2+2]\nT[4]\nD[stop p=20/1500000 e=9/12000000 t=0 l=0]\n"},
        {DRV_WIRE_OPENAI_COMPLETION,
         "{\"choices\":[{\"text\":\"upon a time\",\"index\":0,\"finish_reason\":\"length\"}],"
         "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3}}",
         "T[upon a time]\nD[length p=1/0 e=3/0 t=0 l=0]\n"},
        {DRV_WIRE_OPENAI_CHAT, "{\"error\":{\"message\":\"boom\"}}", "E[502 boom]\n"},
        {DRV_WIRE_OLLAMA_CHAT, " \r\n", "E[502 node sent an empty answer]\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].body), cut = len / 3, cuts[2] = {cut, 2 * cut};
        struct rec r;
        rec_init(&r);
        assert_int_equal(run_cuts(cases[i].wire, false, cases[i].body, len, cuts, 2, &r, NULL), 0);
        if (strcmp(rec_log(&r), cases[i].want) != 0)
            fail_msg("case %zu: got\n%swant\n%s", i, rec_log(&r), cases[i].want);
        drv_buf_release(&r.log);
    }

    /* a body that is not one JSON object: the caller ends the request */
    struct drv_api_upstream_parser p;
    assert_int_equal(drv_api_upstream_parser_init(&p, DRV_WIRE_OPENAI_CHAT, false, "node-model"),
                     0);
    struct rec r;
    rec_init(&r);
    struct drv_err e;
    drv_err_init(&e);
    assert_int_equal(drv_api_upstream_feed(&p, "{\"choices\":[", 12, rec_sink, &r, &e), 0);
    assert_int_equal(drv_api_upstream_finish(&p, rec_sink, &r, &e), DRV_EINVAL);
    assert_non_null(strstr(e.msg, "invalid JSON"));
    assert_int_equal(r.n, 0);
    assert_false(drv_api_upstream_finished(&p));
    drv_api_upstream_parser_release(&p);
    drv_buf_release(&r.log);
}

/* A drover node answers with drover's own encoders: the parser reads back what
 * they were given, on every wire, streaming or not. */
static void reads_drover_encoders(void **state)
{
    (void)state;
    struct drv_gen_event evs[4] = {
        {.kind = DRV_EV_THINKING, .text = "hmm", .len = 3, .model = "x"},
        {.kind = DRV_EV_TOKEN, .text = "Hel", .len = 3, .model = "x"},
        {.kind = DRV_EV_TOKEN, .text = "lo \xe2\x98\x83", .len = 6, .model = "x"},
        {.kind = DRV_EV_DONE, .model = "x"},
    };
    evs[3].stats = (struct drv_gen_stats){.total_ns = 9000000000ull,
                                          .load_ns = 1000000,
                                          .prompt_ns = 2000000,
                                          .eval_ns = 500000000,
                                          .prompt_tokens = 10,
                                          .eval_tokens = 20,
                                          .done_reason = "length"};
    const char *ol = "D[length p=10/2000000 e=20/500000000 t=9000000000 l=1000000]\n";
    const char *oa = "D[length p=10/2000000 e=20/500000000 t=0 l=0]\n";
    for (int wire = 0; wire < 4; wire++) {
        for (int stream = 0; stream < 2; stream++) {
            struct drv_api_enc enc;
            assert_int_equal(drv_api_enc_init(&enc, wire, stream, true, "m"), 0);
            struct drv_buf out;
            drv_buf_init(&out, 1 << 20);
            for (int i = 0; i < 4; i++)
                assert_int_equal(drv_api_enc_event(&enc, &evs[i], &out), 0);
            drv_api_enc_release(&enc);
            char want[512];
            bool ollama = wire <= DRV_WIRE_OLLAMA_CHAT;
            bool thinking = wire != DRV_WIRE_OPENAI_COMPLETION; /* completions drop it */
            snprintf(want, sizeof(want), "%s%s%s", thinking ? "K[hmm]\n" : "",
                     stream ? "T[Hel]\nT[lo \xe2\x98\x83]\n" : "T[Hello \xe2\x98\x83]\n",
                     ollama ? ol : oa);
            struct rec r;
            rec_init(&r);
            assert_int_equal(run_cuts(wire, stream, out.data, out.len, NULL, 0, &r, NULL), 0);
            if (strcmp(rec_log(&r), want) != 0)
                fail_msg("wire %d stream %d: got\n%swant\n%s\nfrom\n%s", wire, stream, rec_log(&r),
                         want, out.data);
            drv_buf_release(&r.log);
            drv_buf_release(&out);
        }
    }
}

/* ---- listings ------------------------------------------------------------------------------ */

static void listings(void **state)
{
    (void)state;
    const char *tags =
        "{\"models\":[{\"name\":\"qwen2.5:3b\",\"model\":\"qwen2.5:3b\",\"modified_at\":"
        "\"2024-05-01T10:11:12.123456789-07:00\",\"size\":1929912432,\"digest\":\"357c53fb659c\","
        "\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"qwen2\",\"families\":"
        "[\"qwen2\"],\"parameter_size\":\"3.1B\",\"quantization_level\":\"Q4_K_M\"}},"
        "{\"name\":\"tiny\",\"modified_at\":\"2024-01-01T00:00:00Z\"},42]}";
    struct drv_model_desc d[4];
    memset(d, 0x5a, sizeof(d));
    assert_int_equal(drv_api_parse_ollama_tags(tags, strlen(tags), d, 4), 3);
    assert_string_equal(d[0].name, "qwen2.5:3b");
    assert_string_equal(d[0].model, "qwen2.5:3b");
    assert_string_equal(d[0].digest, "357c53fb659c");
    assert_string_equal(d[0].family, "qwen2");
    assert_string_equal(d[0].parameter_size, "3.1B");
    assert_string_equal(d[0].quantization, "Q4_K_M");
    assert_int_equal(d[0].size, 1929912432ull);
    assert_int_equal(d[0].modified_at, 1714583472); /* 2024-05-01T17:11:12Z */
    assert_int_equal(d[0].size_resident, 0);
    assert_string_equal(d[1].name, "tiny");
    assert_string_equal(d[1].model, "");
    assert_int_equal(d[1].modified_at, 1704067200);
    assert_string_equal(d[2].name, ""); /* not an object: an empty entry */
    assert_int_equal(d[2].size, 0);
    /* more than cap: only cap filled, the count is the listing's */
    memset(d, 0x5a, sizeof(d));
    assert_int_equal(drv_api_parse_ollama_tags(tags, strlen(tags), d, 1), 3);
    assert_string_equal(d[0].name, "qwen2.5:3b");
    assert_int_equal((unsigned char)d[1].name[0], 0x5a);
    assert_int_equal(drv_api_parse_ollama_tags(tags, strlen(tags), NULL, 0), 3);

    const char *ps =
        "{\"models\":[{\"name\":\"a:1b\",\"model\":\"a:1b\",\"size\":5137025024,\"digest\":\"d\","
        "\"details\":{\"family\":\"llama\"},\"expires_at\":\"2024-06-04T14:38:31.83753-07:00\","
        "\"size_vram\":5137025024,\"context_length\":4096},"
        "{\"name\":\"b\",\"size\":10,\"expires_at\":\"2318-01-01T00:00:00Z\",\"size_vram\":0}]}";
    assert_int_equal(drv_api_parse_ollama_ps(ps, strlen(ps), d, 4), 2);
    assert_string_equal(d[0].name, "a:1b");
    assert_string_equal(d[0].family, "llama");
    assert_int_equal(d[0].size, 5137025024ull);
    assert_int_equal(d[0].size_resident, 5137025024ull);
    assert_int_equal(d[0].size_vram, 5137025024ull);
    assert_int_equal(d[0].context_length, 4096);
    assert_int_equal(d[0].expires_at, 1717537111); /* 2024-06-04T21:38:31Z */
    assert_int_equal(d[1].size_resident, 10);
    assert_int_equal(d[1].expires_at, 0); /* "forever" */

    /* drover's own listings read back */
    struct drv_model_desc mine = {.name = "stories260K:latest",
                                  .model = "stories260K:latest",
                                  .family = "llama",
                                  .quantization = "F32",
                                  .n_params = 292800,
                                  .n_ctx_train = 2048,
                                  .size = 1185376,
                                  .modified_at = 1700000000,
                                  .size_resident = 3000000,
                                  .size_vram = 0,
                                  .context_length = 512,
                                  .expires_at = 1700000300};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    assert_int_equal(drv_api_ollama_ps(&mine, 1, &out), 0);
    assert_int_equal(drv_api_parse_ollama_ps(out.data, out.len, d, 4), 1);
    assert_string_equal(d[0].name, mine.name);
    assert_string_equal(d[0].quantization, "F32");
    assert_int_equal(d[0].size_resident, 3000000);
    assert_int_equal(d[0].context_length, 512);
    assert_int_equal(d[0].expires_at, 1700000300);
    drv_buf_reset(&out);
    assert_int_equal(drv_api_ollama_tags(&mine, 1, &out), 0);
    assert_int_equal(drv_api_parse_ollama_tags(out.data, out.len, d, 4), 1);
    assert_int_equal(d[0].modified_at, 1700000000);
    assert_int_equal(d[0].size, 1185376);
    drv_buf_reset(&out);
    assert_int_equal(drv_api_openai_models(&mine, 1, &out), 0);
    assert_int_equal(drv_api_parse_openai_models(out.data, out.len, d, 4), 1);
    assert_string_equal(d[0].name, "stories260K:latest");
    assert_string_equal(d[0].model, "stories260K:latest");
    /* the shape travels in llama-server's "meta" */
    assert_int_equal(d[0].n_params, mine.n_params);
    assert_int_equal(d[0].n_ctx_train, mine.n_ctx_train);
    assert_int_equal(d[0].size, mine.size);
    assert_string_equal(d[0].quantization, mine.quantization);
    assert_string_equal(d[0].parameter_size, "293K");
    drv_buf_release(&out);

    /* llama-server's own listing: its file type names become Ollama's labels */
    const struct {
        const char *ftype, *quant;
    } ft[] = {{"Q4_K - Medium", "Q4_K_M"},
              {"Q5_K - Small", "Q5_K_S"},
              {"Q3_K - Large", "Q3_K_L"},
              {"Q2_K - Medium", "Q2_K"},
              {"(guessed) Q8_0", "Q8_0"},
              {"all F32", "F32"},
              {"BF16", "BF16"},
              {"IQ2_XXS - 2.0625 bpw", "IQ2_XXS"},
              {"IQ3_S mix - 3.66 bpw", "IQ3_M"},
              {"NVFP4", "NVFP4"}}; /* unknown to drover: passed on as it came */
    for (size_t i = 0; i < sizeof(ft) / sizeof(ft[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"object\":\"list\",\"data\":[{\"id\":\"m.gguf\",\"object\":\"model\","
                 "\"created\":1,\"owned_by\":\"llamacpp\",\"meta\":{\"vocab_type\":2,"
                 "\"n_vocab\":151936,\"n_ctx\":4096,\"n_ctx_train\":32768,\"n_embd\":2048,"
                 "\"n_params\":3085938688,\"size\":1929903104,\"ftype\":\"%s\"}}]}",
                 ft[i].ftype);
        assert_int_equal(drv_api_parse_openai_models(body, strlen(body), d, 4), 1);
        assert_string_equal(d[0].quantization, ft[i].quant);
        assert_int_equal(d[0].n_params, 3085938688ull);
        assert_string_equal(d[0].parameter_size, "3.09B"); /* as drover names sizes */
        assert_int_equal(d[0].n_ctx_train, 32768);
        assert_int_equal(d[0].context_length, 4096);
        assert_int_equal(d[0].embedding_length, 2048);
        assert_int_equal(d[0].vocab_size, 151936);
        assert_int_equal(d[0].size, 1929903104ull);
        /* and back: drover's listing names it as llama-server does */
        struct drv_buf again;
        drv_buf_init(&again, 1 << 16);
        assert_int_equal(drv_api_openai_models(d, 1, &again), 0);
        if (strncmp(ft[i].ftype, "(guessed)", 9) != 0) {
            char want[64];
            snprintf(want, sizeof(want), "\"ftype\":\"%s\"", ft[i].ftype);
            assert_non_null(strstr(again.data, want));
        }
        drv_buf_release(&again);
    }

    const char *ls = "{\"models\":[{\"name\":\"qwen.gguf\",\"model\":\"qwen.gguf\"}],\"object\":"
                     "\"list\",\"data\":[{\"id\":\"qwen-alias\",\"object\":\"model\"}]}";
    assert_int_equal(drv_api_parse_openai_models(ls, strlen(ls), d, 4), 1);
    assert_string_equal(d[0].name, "qwen-alias");
    const char *ls_old = "{\"models\":[{\"name\":\"qwen.gguf\"},{\"model\":\"m2\"}]}";
    assert_int_equal(drv_api_parse_openai_models(ls_old, strlen(ls_old), d, 4), 2);
    assert_string_equal(d[0].name, "qwen.gguf");
    assert_string_equal(d[1].model, "m2");

    const char *bad[] = {"", "[]", "{\"models\":{}}", "{\"data\":3}", "{", "{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_true(drv_api_parse_ollama_tags(bad[i], strlen(bad[i]), d, 4) < 0);
        assert_true(drv_api_parse_ollama_ps(bad[i], strlen(bad[i]), d, 4) < 0);
        assert_true(drv_api_parse_openai_models(bad[i], strlen(bad[i]), d, 4) < 0);
    }
}

/* ---- embeddings ---------------------------------------------------------------------------------
 */

static void embed_bodies(void **state)
{
    (void)state;
    static const char *const in[] = {"hello", "w\xc3\xb6rld"};
    struct drv_embed_request r = {
        .model = "nomic", .inputs = in, .n_inputs = 2, .truncate = false, .keep_alive_ms = 0};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    assert_int_equal(drv_api_upstream_embed_body(&r, false, NULL, &out), 0);
    json_t *j = parse(out.data, out.len);
    assert_keys(j, "model,input,truncate,keep_alive");
    assert_string_equal(sget(j, "model"), "nomic");
    assert_int_equal(json_array_size(json_object_get(j, "input")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "input"), 1)),
                        "w\xc3\xb6rld");
    assert_true(json_is_false(json_object_get(j, "truncate")));
    assert_int_equal(iget(j, "keep_alive"), 0);
    json_decref(j);

    drv_buf_reset(&out);
    r.keep_alive_ms = INT64_MIN;
    r.n_inputs = 1;
    assert_int_equal(drv_api_upstream_embed_body(&r, true, "alias", &out), 0);
    j = parse(out.data, out.len);
    assert_keys(j, "model,input,encoding_format");
    assert_string_equal(sget(j, "model"), "alias");
    assert_string_equal(sget(j, "encoding_format"), "float");
    assert_int_equal(json_array_size(json_object_get(j, "input")), 1);
    json_decref(j);
    drv_buf_release(&out);
}

static void embed_answers(void **state)
{
    (void)state;
    float *rows;
    size_t n, dim;
    int32_t pt;
    struct drv_err e;
    drv_err_init(&e);
    const char *ol = "{\"model\":\"nomic\",\"embeddings\":[[0.5,-1,2e-3],[1,2,3]],"
                     "\"total_duration\":14143917,\"prompt_eval_count\":8}";
    assert_int_equal(drv_api_upstream_embed_parse(ol, strlen(ol), false, &rows, &n, &dim, &pt, &e),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(dim, 3);
    assert_int_equal(pt, 8);
    const float want[] = {0.5f, -1.0f, 2e-3f, 1.0f, 2.0f, 3.0f};
    assert_memory_equal(rows, want, sizeof(want));
    free(rows);

    /* OpenAI rows come in index order, whatever order data[] has */
    const char *oa = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":1,"
                     "\"embedding\":[1,2]},{\"index\":0,\"embedding\":[3,4]}],\"model\":\"m\","
                     "\"usage\":{\"prompt_tokens\":5,\"total_tokens\":5}}";
    assert_int_equal(drv_api_upstream_embed_parse(oa, strlen(oa), true, &rows, &n, &dim, &pt, &e),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(dim, 2);
    assert_int_equal(pt, 5);
    const float want2[] = {3, 4, 1, 2};
    assert_memory_equal(rows, want2, sizeof(want2));
    free(rows);

    /* drover's own answer reads back */
    const float v[] = {0.25f, -0.125f, 1e-7f, 3.5f};
    struct drv_api_embed_result res = {
        .model = "m", .data = v, .n = 2, .dim = 2, .prompt_tokens = 6};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    assert_int_equal(drv_api_openai_embeddings_response(&res, false, &out), 0);
    assert_int_equal(
        drv_api_upstream_embed_parse(out.data, out.len, true, &rows, &n, &dim, NULL, &e), 0);
    assert_int_equal(n * dim, 4);
    assert_memory_equal(rows, v, sizeof(v));
    free(rows);
    drv_buf_reset(&out);
    assert_int_equal(drv_api_ollama_embed_response(&res, &out), 0);
    assert_int_equal(
        drv_api_upstream_embed_parse(out.data, out.len, false, &rows, &n, &dim, &pt, &e), 0);
    assert_memory_equal(rows, v, sizeof(v));
    assert_int_equal(pt, 6);
    free(rows);
    drv_buf_release(&out);

    /* no rows */
    const char *none = "{\"embeddings\":[]}";
    assert_int_equal(
        drv_api_upstream_embed_parse(none, strlen(none), false, &rows, &n, &dim, &pt, &e), 0);
    assert_null(rows);
    assert_int_equal(n, 0);
    assert_int_equal(pt, 0);

    const struct {
        bool openai;
        const char *body;
        int code;
        const char *msg;
    } bad[] = {
        {false, "{\"embeddings\":[[1,2],[3]]}", DRV_EINVAL, "different sizes"},
        {false, "{\"embeddings\":[[1,\"x\"]]}", DRV_EINVAL, "not a float"},
        {false, "{\"embeddings\":[[1e300]]}", DRV_EINVAL, "not a float"},
        {false, "{\"embeddings\":[[]]}", DRV_EINVAL, "empty"},
        {false, "{\"embeddings\":[3]}", DRV_EINVAL, "not an array"},
        {false, "{\"embedding\":[1]}", DRV_EINVAL, "no \"embeddings\""},
        {false, "{\"error\":\"model not found\"}", DRV_EUPSTREAM, "model not found"},
        {true, "{\"error\":{\"message\":\"no embeddings\"}}", DRV_EUPSTREAM, "no embeddings"},
        {true, "{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":0,\"embedding\":[2]}]}",
         DRV_EINVAL, "index 0"},
        {true, "{\"data\":[{\"index\":5,\"embedding\":[1]}]}", DRV_EINVAL, "index 5"},
        {true, "{\"data\":[{\"index\":0,\"embedding\":\"AACAPw==\"}]}", DRV_EINVAL, "not an array"},
        {true, "{\"data\":[{\"index\":0}]}", DRV_EINVAL, "without an embedding"},
        {true, "[", DRV_EINVAL, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        drv_err_init(&e);
        rows = (float *)1;
        int rc = drv_api_upstream_embed_parse(bad[i].body, strlen(bad[i].body), bad[i].openai,
                                              &rows, &n, &dim, &pt, &e);
        if (rc != bad[i].code || strstr(e.msg, bad[i].msg) == NULL)
            fail_msg("case %zu: %d \"%s\"", i, rc, e.msg);
        assert_null(rows);
        assert_int_equal(n, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(body_ollama_generate_every_field),
        cmocka_unit_test(body_ollama_keep_alive),
        cmocka_unit_test(body_defaults_are_not_sent),
        cmocka_unit_test(body_ollama_chat),
        cmocka_unit_test(body_openai_completion),
        cmocka_unit_test(body_openai_chat),
        cmocka_unit_test(body_refusals_leave_out_unchanged),
        cmocka_unit_test(body_round_trips_through_drover_decoders),
        cmocka_unit_test(ollama_chat_stream_events),
        cmocka_unit_test(ollama_chat_stream_any_split),
        cmocka_unit_test(llama_server_chat_stream_any_split),
        cmocka_unit_test(llama_server_done_waits_for_usage),
        cmocka_unit_test(ollama_generate_stream),
        cmocka_unit_test(openai_completion_stream),
        cmocka_unit_test(in_stream_errors),
        cmocka_unit_test(truncated_streams),
        cmocka_unit_test(malformed_lines_fail_with_a_message),
        cmocka_unit_test(line_cap),
        cmocka_unit_test(sink_stop),
        cmocka_unit_test(non_streaming_answers),
        cmocka_unit_test(reads_drover_encoders),
        cmocka_unit_test(listings),
        cmocka_unit_test(embed_bodies),
        cmocka_unit_test(embed_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
