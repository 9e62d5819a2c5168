/* api: Ollama/OpenAI wire formats <-> internal request/event, asserted on the
 * exact bytes a client would read (parsed back with jansson). */
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
#include <time.h>

#include "api/api_int.h"

#include "api/api.h"

/* ---- helpers ------------------------------------------------------------------ */

static json_t *parse(const char *s, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &e);
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

#define DECODE_OK(fn, body, req)                                                                   \
    do {                                                                                           \
        struct drv_err e_;                                                                         \
        drv_err_init(&e_);                                                                         \
        int rc_ = fn(body, strlen(body), req, &e_);                                                \
        if (rc_ != 0)                                                                              \
            fail_msg("%s failed: %s", #fn, e_.msg);                                                \
    } while (0)

/* Decodes body with fn, expects code, and that the message contains want. */
typedef int (*decode_fn)(const char *, size_t, struct drv_api_req *, struct drv_err *);
static void expect_fail(decode_fn fn, const char *body, int code, const char *want)
{
    struct drv_api_req r;
    struct drv_err e;
    drv_err_init(&e);
    int rc = fn(body, strlen(body), &r, &e);
    if (rc != code || strstr(e.msg, want) == NULL)
        fail_msg("body %.80s: got %d \"%s\", want %d \"%s\"", body, rc, e.msg, code, want);
    assert_null(r.root);
    assert_null(r.msgs);
    drv_api_req_release(&r);
}

typedef int (*embed_fn)(const char *, size_t, struct drv_api_embed_req *, struct drv_err *);
static void expect_embed_fail(embed_fn fn, const char *body, int code, const char *want)
{
    struct drv_api_embed_req r;
    struct drv_err e;
    drv_err_init(&e);
    int rc = fn(body, strlen(body), &r, &e);
    if (rc != code || strstr(e.msg, want) == NULL)
        fail_msg("body %.80s: got %d \"%s\", want %d \"%s\"", body, rc, e.msg, code, want);
    drv_api_embed_req_release(&r);
}

static struct drv_gen_event tok(enum drv_ev_kind kind, const char *s)
{
    struct drv_gen_event ev = {.kind = kind, .text = s, .len = strlen(s), .model = "resolved"};
    return ev;
}

static struct drv_gen_event done(const char *reason)
{
    struct drv_gen_event ev = {.kind = DRV_EV_DONE, .model = "resolved"};
    ev.stats.total_ns = 5000000000ull; /* 5 s */
    ev.stats.load_ns = 0;
    ev.stats.prompt_ns = 2000000; /* 2 ms */
    ev.stats.eval_ns = 500000000; /* 0.5 s */
    ev.stats.prompt_tokens = 10;
    ev.stats.eval_tokens = 20;
    ev.stats.done_reason = reason;
    return ev;
}

static void enc_all(struct drv_api_enc *enc, const struct drv_gen_event *evs, size_t n,
                    struct drv_buf *out)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(drv_api_enc_event(enc, &evs[i], out), 0);
}

/* Splits NDJSON into parsed lines; every line must end with \n. */
static size_t ndjson(const struct drv_buf *b, json_t **lines, size_t cap)
{
    size_t n = 0;
    const char *p = b->data, *end = b->data + b->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        assert_true(n < cap);
        lines[n++] = parse(p, (size_t)(nl - p));
        p = nl + 1;
    }
    return n;
}

/* Splits SSE into frames; every frame is "data: X\n\n". "[DONE]" comes back as
 * the JSON string "[DONE]". */
static size_t sse(const struct drv_buf *b, json_t **frames, size_t cap)
{
    size_t n = 0;
    const char *p = b->data, *end = b->data + b->len;
    while (p < end) {
        assert_true(end - p > 6);
        assert_memory_equal(p, "data: ", 6);
        p += 6;
        const char *stop = strstr(p, "\n\n");
        assert_non_null(stop);
        assert_true(n < cap);
        if (stop - p == 6 && !memcmp(p, "[DONE]", 6))
            frames[n++] = json_string("[DONE]");
        else
            frames[n++] = parse(p, (size_t)(stop - p));
        p = stop + 2;
    }
    return n;
}

static void free_all(json_t **j, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(j[i]);
}

static void assert_rfc3339_nanos(const char *s)
{
    /* 2024-01-01T12:00:00.123456789Z */
    assert_int_equal(strlen(s), 30);
    assert_int_equal(s[4], '-');
    assert_int_equal(s[10], 'T');
    assert_int_equal(s[19], '.');
    assert_int_equal(s[29], 'Z');
}

/* ---- Ollama decoding ------------------------------------------------------------ */

static void ollama_generate_maps_every_field(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"qwen3:4b\",\"prompt\":\"Why?\",\"suffix\":\"END\",\"system\":\"Be brief\","
        "\"raw\":true,\"format\":\"json\",\"stream\":false,\"keep_alive\":\"5m\",\"think\":false,"
        "\"images\":[\"aGk=\"],\"options\":{\"num_ctx\":4096,\"num_predict\":128,"
        "\"temperature\":0.2,\"top_k\":20,\"top_p\":0.95,\"min_p\":0.05,\"seed\":42,"
        "\"stop\":[\"\\n\\n\",\"User:\"],\"repeat_penalty\":1.2,\"repeat_last_n\":32,"
        "\"presence_penalty\":0.5,\"frequency_penalty\":0.25,\"num_thread\":6,\"num_gpu\":99,"
        "\"num_batch\":512}}";
    struct drv_api_req r;
    DECODE_OK(drv_api_ollama_decode_generate, body, &r);
    const struct drv_gen_request *g = &r.gen;
    assert_int_equal(g->kind, DRV_GEN_COMPLETE);
    assert_string_equal(g->model, "qwen3:4b");
    assert_string_equal(g->prompt, "Why?");
    assert_string_equal(g->suffix, "END");
    assert_string_equal(g->system, "Be brief");
    assert_true(g->raw);
    assert_int_equal(g->format, DRV_FORMAT_JSON);
    assert_false(r.stream);
    assert_int_equal(g->keep_alive_ms, 300000);
    assert_int_equal(g->think, 0);
    assert_int_equal(g->num_ctx, 4096);
    assert_int_equal(g->num_predict, 128);
    assert_float_equal(g->sampling.temperature, 0.2, 1e-6);
    assert_int_equal(g->sampling.top_k, 20);
    assert_float_equal(g->sampling.top_p, 0.95, 1e-6);
    assert_float_equal(g->sampling.min_p, 0.05, 1e-6);
    assert_int_equal(g->sampling.seed, 42);
    assert_float_equal(g->sampling.repeat_penalty, 1.2, 1e-6);
    assert_int_equal(g->sampling.repeat_last_n, 32);
    assert_float_equal(g->sampling.presence_penalty, 0.5, 1e-6);
    assert_float_equal(g->sampling.frequency_penalty, 0.25, 1e-6);
    assert_int_equal(g->n_stop, 2);
    assert_string_equal(g->stop[0], "\n\n");
    assert_string_equal(g->stop[1], "User:");
    drv_api_req_release(&r);
    drv_api_req_release(&r); /* twice is harmless */
}

static void ollama_generate_defaults(void **state)
{
    (void)state;
    struct drv_api_req r;
    DECODE_OK(drv_api_ollama_decode_generate, "{\"model\":\"m\",\"system\":\"\",\"stop\":null}",
              &r);
    const struct drv_gen_request *g = &r.gen;
    assert_true(r.stream); /* Ollama streams unless told not to */
    assert_false(r.include_usage);
    assert_string_equal(g->prompt, "");
    assert_null(g->system); /* "" = the model's own */
    assert_null(g->suffix);
    assert_false(g->raw);
    assert_int_equal(g->format, DRV_FORMAT_TEXT);
    assert_int_equal(g->think, -1);
    assert_true(g->keep_alive_ms == INT64_MIN);
    assert_int_equal(g->num_predict, -1);
    assert_int_equal(g->num_ctx, 0);
    assert_true(isnan(g->sampling.temperature));
    assert_int_equal(g->sampling.top_k, -1);
    assert_int_equal(g->sampling.seed, -1);
    assert_int_equal(g->n_stop, 0);
    drv_api_req_release(&r);
}

static void ollama_format_schema_and_think_levels(void **state)
{
    (void)state;
    struct drv_api_req r;
    DECODE_OK(drv_api_ollama_decode_generate,
              "{\"model\":\"m\",\"think\":\"high\",\"keep_alive\":-1,\"format\":{\"type\": "
              "\"object\", \"properties\": {\"age\": {\"type\": \"integer\"}}}}",
              &r);
    assert_int_equal(r.gen.format, DRV_FORMAT_SCHEMA);
    assert_string_equal(r.gen.format_schema,
                        "{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\"}}}");
    assert_int_equal(r.gen.think, 1);
    assert_int_equal(r.gen.keep_alive_ms, -1);
    drv_api_req_release(&r);

    DECODE_OK(drv_api_ollama_decode_generate,
              "{\"model\":\"m\",\"think\":\"low\",\"keep_alive\":0}", &r);
    assert_int_equal(r.gen.think, 1);
    assert_int_equal(r.gen.keep_alive_ms, 0);
    drv_api_req_release(&r);

    DECODE_OK(drv_api_ollama_decode_generate, "{\"model\":\"m\",\"think\":true,\"keep_alive\":90}",
              &r);
    assert_int_equal(r.gen.think, 1);
    assert_int_equal(r.gen.keep_alive_ms, 90000);
    drv_api_req_release(&r);
}

static void ollama_chat_maps_messages(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"qwen3\",\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"
        "{\"role\":\"user\",\"content\":\"hi\",\"images\":[\"aGk=\"]},"
        "{\"role\":\"assistant\",\"content\":\"hello\",\"thinking\":\"hm\"},"
        "{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\"}}]},"
        "{\"role\":\"tool\",\"content\":\"42\"}],"
        "\"tools\":[{\"type\":\"function\"}],\"think\":false,\"options\":{\"num_ctx\":2048.0}}";
    struct drv_api_req r;
    DECODE_OK(drv_api_ollama_decode_chat, body, &r);
    assert_int_equal(r.gen.kind, DRV_GEN_CHAT);
    assert_true(r.stream);
    assert_int_equal(r.gen.n_messages, 5);
    const char *roles[] = {"system", "user", "assistant", "assistant", "tool"};
    const char *contents[] = {"sys", "hi", "hello", "", "42"};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(r.gen.messages[i].role, roles[i]);
        assert_string_equal(r.gen.messages[i].content, contents[i]);
    }
    assert_int_equal(r.gen.think, 0);
    assert_int_equal(r.gen.num_ctx, 2048); /* 2048.0 from a client with only doubles */
    drv_api_req_release(&r);

    /* no messages: Ollama's "load the model" request */
    DECODE_OK(drv_api_ollama_decode_chat, "{\"model\":\"m\"}", &r);
    assert_int_equal(r.gen.n_messages, 0);
    drv_api_req_release(&r);
}

static void ollama_decode_errors(void **state)
{
    (void)state;
    decode_fn gen = drv_api_ollama_decode_generate, chat = drv_api_ollama_decode_chat;
    expect_fail(gen, "{\"model\":\"m\",\n \"prompt\": }", DRV_EINVAL, "line 2, column");
    expect_fail(gen, "", DRV_EINVAL, "invalid JSON");
    expect_fail(gen, "[1,2]", DRV_EINVAL, "must be a JSON object");
    expect_fail(gen, "{\"prompt\":\"x\"}", DRV_EINVAL, "model is required");
    expect_fail(gen, "{\"model\":\"\"}", DRV_EINVAL, "model must be a non-empty string");
    expect_fail(gen, "{\"model\":7}", DRV_EINVAL, "model must be a non-empty string");
    expect_fail(gen, "{\"model\":\"m\",\"prompt\":3}", DRV_EINVAL, "prompt must be a string");
    expect_fail(gen, "{\"model\":\"m\",\"options\":{\"temperature\":\"hot\"}}", DRV_EINVAL,
                "options.temperature must be a number");
    expect_fail(gen, "{\"model\":\"m\",\"options\":{\"temperature\":1e300}}", DRV_EINVAL,
                "options.temperature is out of range");
    expect_fail(gen, "{\"model\":\"m\",\"options\":{\"num_ctx\":1.5}}", DRV_EINVAL,
                "options.num_ctx must be an integer");
    expect_fail(gen, "{\"model\":\"m\",\"options\":{\"num_predict\":9999999999}}", DRV_EINVAL,
                "options.num_predict is out of range");
    expect_fail(gen, "{\"model\":\"m\",\"options\":[]}", DRV_EINVAL, "options must be an object");
    expect_fail(gen, "{\"model\":\"m\",\"options\":{\"stop\":[1]}}", DRV_EINVAL,
                "options.stop must be a string or an array of strings");
    expect_fail(gen, "{\"model\":\"m\",\"stream\":\"yes\"}", DRV_EINVAL,
                "stream must be true or false");
    expect_fail(gen, "{\"model\":\"m\",\"think\":\"max\"}", DRV_EINVAL, "think must be");
    expect_fail(gen, "{\"model\":\"m\",\"keep_alive\":\"bogus\"}", DRV_EINVAL,
                "keep_alive: invalid duration \"bogus\"");
    expect_fail(gen, "{\"model\":\"m\",\"keep_alive\":[]}", DRV_EINVAL, "keep_alive must be");
    expect_fail(gen, "{\"model\":\"m\",\"format\":\"xml\"}", DRV_EINVAL,
                "format must be \"json\" or a JSON schema object");
    expect_fail(chat, "{\"model\":\"m\",\"messages\":{}}", DRV_EINVAL,
                "messages must be an array of objects with role and content");
    expect_fail(chat, "{\"model\":\"m\",\"messages\":[\"hi\"]}", DRV_EINVAL,
                "messages must be an array of objects with role and content (messages[0]");
    expect_fail(chat, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", DRV_EINVAL,
                "with role and content");
    expect_fail(chat, "{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
                DRV_EINVAL, "messages[0].role \"wizard\" is unknown");
    expect_fail(chat,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                "{\"role\":\"user\",\"content\":[1]}]}",
                DRV_EINVAL, "messages[1].content must be a string");
}

/* A body with n messages or n stop strings. */
static char *big_body(const char *head, const char *item, size_t n, const char *tail)
{
    size_t len = strlen(head) + n * (strlen(item) + 1) + strlen(tail) + 1;
    char *s = malloc(len), *p = s;
    p += sprintf(p, "%s", head);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", item);
    sprintf(p, "%s", tail);
    return s;
}

static void caps_are_enforced(void **state)
{
    (void)state;
    const char *msg = "{\"role\":\"user\",\"content\":\"x\"}";
    char *b = big_body("{\"model\":\"m\",\"messages\":[", msg, DRV_API_MAX_MESSAGES, "]}");
    struct drv_api_req r;
    DECODE_OK(drv_api_ollama_decode_chat, b, &r);
    assert_int_equal(r.gen.n_messages, DRV_API_MAX_MESSAGES);
    drv_api_req_release(&r);
    free(b);
    b = big_body("{\"model\":\"m\",\"messages\":[", msg, DRV_API_MAX_MESSAGES + 1, "]}");
    expect_fail(drv_api_ollama_decode_chat, b, DRV_ETOOBIG, "at most 1024");
    expect_fail(drv_api_openai_decode_chat, b, DRV_ETOOBIG, "at most 1024");
    free(b);

    b = big_body("{\"model\":\"m\",\"options\":{\"stop\":[", "\"s\"", DRV_API_MAX_STOP, "]}}");
    DECODE_OK(drv_api_ollama_decode_generate, b, &r);
    assert_int_equal(r.gen.n_stop, DRV_API_MAX_STOP);
    drv_api_req_release(&r);
    free(b);
    b = big_body("{\"model\":\"m\",\"options\":{\"stop\":[", "\"s\"", DRV_API_MAX_STOP + 1, "]}}");
    expect_fail(drv_api_ollama_decode_generate, b, DRV_ETOOBIG, "at most 64");
    free(b);
    b = big_body("{\"model\":\"m\",\"stop\":[", "\"s\"", DRV_API_MAX_STOP + 1, "]}");
    expect_fail(drv_api_openai_decode_completion, b, DRV_ETOOBIG, "stop has 65 strings");
    free(b);

    b = big_body("{\"model\":\"m\",\"input\":[", "\"a\"", DRV_API_MAX_EMBED_INPUTS + 1, "]}");
    expect_embed_fail(drv_api_ollama_decode_embed, b, DRV_ETOOBIG, "at most 2048");
    expect_embed_fail(drv_api_openai_decode_embeddings, b, DRV_ETOOBIG, "at most 2048");
    free(b);
}

static void keep_alive_durations(void **state)
{
    (void)state;
    const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"5m", 300000},
        {"1h30m", 5400000},
        {"10s", 10000},
        {"300ms", 300},
        {"-1", -1},
        {"0", 0},
        {"0s", 0},
        {"1.5h", 5400000},
        {"-1m", -1},
        {"300", 300000},
        {"2h45m30.5s", 9930500},
        {"500us", 1},
        {"+5s", 5000},
        {".5s", 500},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = 12345;
        struct drv_err e;
        drv_err_init(&e);
        if (drv_api_parse_keep_alive(ok[i].s, &ms, &e) != 0 || ms != ok[i].ms)
            fail_msg("\"%s\": got %lld (%s), want %lld", ok[i].s, (long long)ms, e.msg,
                     (long long)ok[i].ms);
    }
    const char *bad[] = {"bogus", "", "m", "5x", "1h-3m", "-", "5 m", ".s", "1e3s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 0;
        struct drv_err e;
        drv_err_init(&e);
        if (drv_api_parse_keep_alive(bad[i], &ms, &e) != DRV_EINVAL)
            fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)ms);
        assert_non_null(strstr(e.msg, "keep_alive"));
    }
    int64_t ms;
    assert_int_equal(drv_api_parse_keep_alive("99999999999999h", &ms, NULL), 0);
    assert_true(ms == INT64_MAX);

    struct drv_api_req r;
    DECODE_OK(drv_api_ollama_decode_chat, "{\"model\":\"m\",\"keep_alive\":0.5}", &r);
    assert_int_equal(r.gen.keep_alive_ms, 500);
    drv_api_req_release(&r);
}

/* ---- OpenAI decoding ------------------------------------------------------------- */

static void openai_completion_maps_fields(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"gpt\",\"prompt\":[\"Once upon\"],\"max_tokens\":16,"
                       "\"temperature\":0,\"top_p\":0.5,\"seed\":7,\"stop\":\"\\n\","
                       "\"presence_penalty\":0.1,\"frequency_penalty\":0.2,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"suffix\":\"END\","
                       "\"n\":1,\"logprobs\":null,\"user\":\"u\"}";
    struct drv_api_req r;
    DECODE_OK(drv_api_openai_decode_completion, body, &r);
    const struct drv_gen_request *g = &r.gen;
    assert_int_equal(g->kind, DRV_GEN_COMPLETE);
    assert_string_equal(g->model, "gpt");
    assert_string_equal(g->prompt, "Once upon");
    assert_int_equal(g->num_predict, 16);
    assert_float_equal(g->sampling.temperature, 0.0, 0);
    assert_float_equal(g->sampling.top_p, 0.5, 1e-6);
    assert_int_equal(g->sampling.seed, 7);
    assert_int_equal(g->n_stop, 1);
    assert_string_equal(g->stop[0], "\n");
    assert_float_equal(g->sampling.presence_penalty, 0.1, 1e-6);
    assert_float_equal(g->sampling.frequency_penalty, 0.2, 1e-6);
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_string_equal(g->suffix, "END");
    drv_api_req_release(&r);

    DECODE_OK(drv_api_openai_decode_completion, "{\"model\":\"m\",\"prompt\":\"p\"}", &r);
    assert_false(r.stream); /* OpenAI does not stream unless asked */
    assert_false(r.include_usage);
    assert_int_equal(r.gen.num_predict, -1);
    assert_string_equal(r.gen.prompt, "p");
    drv_api_req_release(&r);

    decode_fn c = drv_api_openai_decode_completion;
    expect_fail(c, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", DRV_EINVAL,
                "batch and token prompts are not supported");
    expect_fail(c, "{\"model\":\"m\",\"prompt\":[1,2]}", DRV_EINVAL, "token prompts");
    expect_fail(c, "{\"model\":\"m\",\"prompt\":5}", DRV_EINVAL, "prompt must be a string");
    expect_fail(c, "{\"model\":\"m\",\"n\":2}", DRV_EINVAL, "n must be 1");
    expect_fail(c, "{\"model\":\"m\",\"max_tokens\":\"9\"}", DRV_EINVAL,
                "max_tokens must be an integer");
    expect_fail(c, "{\"model\":\"m\",\"stop\":{}}", DRV_EINVAL,
                "stop must be a string or an array of strings");
    expect_fail(c, "{\"model\":\"m\",\"stream_options\":true}", DRV_EINVAL,
                "stream_options must be an object");
    expect_fail(c, "{\"prompt\":\"x\"}", DRV_EINVAL, "model is required");
}

static void openai_chat_maps_fields(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"rules\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello, \"},"
        "{\"type\":\"text\",\"text\":\"world\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
        "{\"role\":\"tool\",\"content\":\"ok\",\"tool_call_id\":\"1\"}],"
        "\"max_tokens\":5,\"max_completion_tokens\":9,\"top_k\":3,\"min_p\":0.1,"
        "\"repeat_penalty\":1.3,\"reasoning_effort\":\"low\","
        "\"response_format\":{\"type\":\"json_object\"},\"tools\":[]}";
    struct drv_api_req r;
    DECODE_OK(drv_api_openai_decode_chat, body, &r);
    const struct drv_gen_request *g = &r.gen;
    assert_int_equal(g->kind, DRV_GEN_CHAT);
    assert_int_equal(g->n_messages, 4);
    assert_string_equal(g->messages[0].role, "system");
    assert_string_equal(g->messages[0].content, "rules");
    assert_string_equal(g->messages[1].role, "user");
    assert_string_equal(g->messages[1].content, "Hello, world");
    assert_string_equal(g->messages[2].role, "assistant");
    assert_string_equal(g->messages[2].content, "");
    assert_string_equal(g->messages[3].role, "tool");
    assert_int_equal(g->num_predict, 9); /* max_completion_tokens wins */
    assert_int_equal(g->sampling.top_k, 3);
    assert_float_equal(g->sampling.min_p, 0.1, 1e-6);
    assert_float_equal(g->sampling.repeat_penalty, 1.3, 1e-6);
    assert_int_equal(g->think, 1);
    assert_int_equal(g->format, DRV_FORMAT_JSON);
    assert_false(r.stream);
    drv_api_req_release(&r);

    DECODE_OK(drv_api_openai_decode_chat,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
              "\"reasoning_effort\":\"none\",\"response_format\":{\"type\":\"json_schema\","
              "\"json_schema\":{\"name\":\"n\",\"schema\":{\"type\":\"array\"}}}}",
              &r);
    assert_int_equal(r.gen.think, 0);
    assert_int_equal(r.gen.format, DRV_FORMAT_SCHEMA);
    assert_string_equal(r.gen.format_schema, "{\"type\":\"array\"}");
    drv_api_req_release(&r);

    DECODE_OK(drv_api_openai_decode_chat,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
              "\"think\":false,\"response_format\":{\"type\":\"text\"}}",
              &r);
    assert_int_equal(r.gen.think, 0);
    assert_int_equal(r.gen.format, DRV_FORMAT_TEXT);
    drv_api_req_release(&r);

    decode_fn c = drv_api_openai_decode_chat;
    const char *um = "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]";
    char b[256];
    expect_fail(c, "{\"model\":\"m\",\"messages\":[]}", DRV_EINVAL,
                "messages must be a non-empty array");
    expect_fail(c, "{\"model\":\"m\"}", DRV_EINVAL, "messages must be a non-empty array");
    expect_fail(c,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                "\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}",
                DRV_EINVAL, "content type \"image_url\" is not supported");
    expect_fail(c, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":{}}]}",
                DRV_EINVAL, "messages[0].content must be a string or an array of text parts");
    expect_fail(c, "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
                DRV_EINVAL, "messages[0].role \"robot\" is unknown");
    snprintf(b, sizeof(b), "{\"model\":\"m\",%s,\"response_format\":{\"type\":\"yaml\"}}", um);
    expect_fail(c, b, DRV_EINVAL, "response_format.type must be");
    snprintf(b, sizeof(b), "{\"model\":\"m\",%s,\"response_format\":{\"type\":\"json_schema\"}}",
             um);
    expect_fail(c, b, DRV_EINVAL, "response_format.json_schema.schema must be");
    snprintf(b, sizeof(b), "{\"model\":\"m\",%s,\"temperature\":\"warm\"}", um);
    expect_fail(c, b, DRV_EINVAL, "temperature must be a number");
    snprintf(b, sizeof(b), "{\"model\":\"m\",%s,\"reasoning_effort\":\"extreme\"}", um);
    expect_fail(c, b, DRV_EINVAL, "reasoning_effort must be");
}

static void embed_decoders(void **state)
{
    (void)state;
    struct drv_api_embed_req r;
    struct drv_err e;
    drv_err_init(&e);
    const char *b1 = "{\"model\":\"nomic\",\"input\":[\"a\",\"b\"],\"truncate\":false,"
                     "\"keep_alive\":\"10s\",\"options\":{\"num_ctx\":8}}";
    assert_int_equal(drv_api_ollama_decode_embed(b1, strlen(b1), &r, &e), 0);
    assert_string_equal(r.model, "nomic");
    assert_int_equal(r.n_inputs, 2);
    assert_string_equal(r.inputs[0], "a");
    assert_string_equal(r.inputs[1], "b");
    assert_false(r.truncate);
    assert_int_equal(r.keep_alive_ms, 10000);
    drv_api_embed_req_release(&r);

    const char *b2 = "{\"model\":\"nomic\",\"input\":\"one\"}";
    assert_int_equal(drv_api_ollama_decode_embed(b2, strlen(b2), &r, &e), 0);
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.inputs[0], "one");
    assert_true(r.truncate);
    assert_true(r.keep_alive_ms == INT64_MIN);
    drv_api_embed_req_release(&r);

    const char *b3 = "{\"model\":\"nomic\",\"prompt\":\"legacy\"}";
    assert_int_equal(drv_api_ollama_decode_embeddings(b3, strlen(b3), &r, &e), 0);
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.inputs[0], "legacy");
    drv_api_embed_req_release(&r);

    const char *b4 = "{\"model\":\"e\",\"input\":[\"x\",\"y\",\"z\"],\"encoding_format\":"
                     "\"base64\"}";
    assert_int_equal(drv_api_openai_decode_embeddings(b4, strlen(b4), &r, &e), 0);
    assert_int_equal(r.n_inputs, 3);
    assert_true(r.base64);
    drv_api_embed_req_release(&r);

    expect_embed_fail(drv_api_ollama_decode_embed, "{\"model\":\"m\",\"input\":[1]}", DRV_EINVAL,
                      "input must be a string or an array of strings");
    expect_embed_fail(drv_api_ollama_decode_embed, "{\"input\":\"a\"}", DRV_EINVAL,
                      "model is required");
    expect_embed_fail(drv_api_ollama_decode_embeddings, "{\"model\":\"m\",\"prompt\":[\"a\"]}",
                      DRV_EINVAL, "prompt must be a string");
    expect_embed_fail(drv_api_openai_decode_embeddings, "{\"model\":\"m\"}", DRV_EINVAL,
                      "input is required");
    expect_embed_fail(drv_api_openai_decode_embeddings, "{\"model\":\"m\",\"input\":[[1,2]]}",
                      DRV_EINVAL, "token arrays are not supported");
    expect_embed_fail(drv_api_openai_decode_embeddings,
                      "{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"hex\"}", DRV_EINVAL,
                      "encoding_format must be");
    expect_embed_fail(drv_api_openai_decode_embeddings, "{\"model\":\"m\",", DRV_EINVAL,
                      "invalid JSON at line 1");
}

/* api_put_jstr writes what jansson's dump writes for the same string, and
 * refuses exactly the strings jansson refuses (not UTF-8). */
static void assert_jstr_as_jansson(const char *s, size_t n)
{
    struct drv_buf out;
    drv_buf_init(&out, 1 << 16);
    drv_buf_append(&out, "x", 1); /* a mark to come back to */
    int rc = api_put_jstr(&out, s, n);
    json_t *j = json_stringn(s, n);
    if (j == NULL) {
        assert_int_equal(rc, DRV_EINVAL);
        assert_int_equal(out.len, 1);
    } else {
        assert_int_equal(rc, 0);
        char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_non_null(want);
        assert_string_equal(out.data + 1, want);
        free(want);
        json_decref(j);
    }
    drv_buf_release(&out);
}

static void direct_json_strings(void **state)
{
    (void)state;
    for (int c = 0; c < 0x80; c++) {
        char s[3] = {'a', (char)c, 'b'};
        assert_jstr_as_jansson(s, 3);
    }
    const char *fixed[] = {
        "",     "plain",        "q\"uote\\back/slash", "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80",
        "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80",    "\xc0\xaf",
        "\xff", "tab\there\r\n"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        assert_jstr_as_jansson(fixed[i], strlen(fixed[i]));
    assert_jstr_as_jansson("nul\0in", 6);
    /* random bytes, weighted to ASCII, control characters and UTF-8 lead bytes */
    static const unsigned char pick[] = {'a',  ' ',  '"',  '\\', 0x01, 0x1f, 0x7f, 0xc3, 0xa9,
                                         0xe4, 0xb8, 0xad, 0xf0, 0x9f, 0x98, 0x80, 0xed, 0xff};
    uint32_t seed = 12345;
    for (int k = 0; k < 5000; k++) {
        char s[16];
        size_t n = (size_t)(k % 16);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = (char)pick[(seed >> 16) % sizeof(pick)];
        }
        assert_jstr_as_jansson(s, n);
    }
    /* a cap reached part-way leaves the buffer as it was */
    struct drv_buf small;
    drv_buf_init(&small, 8);
    assert_int_equal(api_put_jstr(&small, "0123456789", 10), DRV_ETOOBIG);
    assert_int_equal(small.len, 0);
    drv_buf_release(&small);
}

/* Each line (Ollama: JSON "\n") or event (OpenAI: "data: " JSON "\n\n") an
 * encoder writes directly is byte for byte what jansson writes for the same
 * object (loaded back, which keeps the key order). */
static void assert_framed_canonical(const struct drv_buf *b, const char *prefix, const char *sep)
{
    const char *p = b->data;
    size_t np = strlen(prefix), ns = strlen(sep);
    while (p && *p) {
        assert_memory_equal(p, prefix, np);
        p += np;
        const char *end = strstr(p, sep);
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (!(n == 6 && memcmp(p, "[DONE]", 6) == 0)) {
            json_error_t e;
            json_t *j = json_loadb(p, n, 0, &e);
            assert_non_null(j);
            char *again = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
            assert_int_equal(strlen(again), n);
            assert_memory_equal(again, p, n);
            free(again);
            json_decref(j);
        }
        p += n + (end ? ns : 0);
    }
}

static void ollama_direct_lines(void **state)
{
    (void)state;
    enum drv_api_wire wires[] = {DRV_WIRE_OLLAMA_GENERATE, DRV_WIRE_OLLAMA_CHAT};
    for (int w = 0; w < 2; w++)
        for (int stream = 0; stream < 2; stream++) {
            struct drv_api_enc enc;
            assert_int_equal(drv_api_enc_init(&enc, wires[w], stream, false, "m\"odel\xc3\xa9"), 0);
            struct drv_gen_event evs[] = {tok(DRV_EV_THINKING, "th\nink \x01"),
                                          tok(DRV_EV_TOKEN, "a \"b\" \\ \xe4\xb8\xad\t"),
                                          tok(DRV_EV_TOKEN, "\xf0\x9f"), /* completed below */
                                          tok(DRV_EV_TOKEN, "\x98\x80!"), done("length")};
            evs[4].stats.warning = "thinking used the whole budget";
            evs[4].stats.load_ns = 7;
            struct drv_buf out;
            drv_buf_init(&out, 1 << 20);
            enc_all(&enc, evs, 5, &out);
            assert_framed_canonical(&out, "", "\n");
            assert_non_null(strstr(out.data, "drover_warning"));
            assert_non_null(strstr(out.data, "\"load_duration\":7,"));
            drv_buf_release(&out);
            drv_api_enc_release(&enc);
        }
    /* a model name that is not UTF-8 goes the jansson way and is repaired */
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OLLAMA_GENERATE, true, false, NULL), 0);
    struct drv_gen_event t = tok(DRV_EV_TOKEN, "x");
    t.model = "bad\xff";
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    assert_int_equal(drv_api_enc_event(&enc, &t, &out), 0);
    assert_non_null(strstr(out.data, "\"model\":\"bad\xef\xbf\xbd\""));
    assert_framed_canonical(&out, "", "\n");
    drv_buf_release(&out);
    drv_api_enc_release(&enc);
}

static void openai_direct_chunks(void **state)
{
    (void)state;
    enum drv_api_wire wires[] = {DRV_WIRE_OPENAI_CHAT, DRV_WIRE_OPENAI_COMPLETION};
    for (int w = 0; w < 2; w++)
        for (int usage = 0; usage < 2; usage++) {
            struct drv_api_enc enc;
            assert_int_equal(drv_api_enc_init(&enc, wires[w], true, usage, "m\"odel\xc3\xa9"), 0);
            struct drv_gen_event evs[] = {tok(DRV_EV_THINKING, "th\nink \x01"),
                                          tok(DRV_EV_TOKEN, "a \"b\" \\ \xe4\xb8\xad\t"),
                                          tok(DRV_EV_TOKEN, "more"), done("stop")};
            struct drv_buf out;
            drv_buf_init(&out, 1 << 20);
            enc_all(&enc, evs, 4, &out);
            assert_framed_canonical(&out, "data: ", "\n\n");
            /* the role comes once, in the first chat delta */
            const char *first = strstr(out.data, "\"role\":\"assistant\"");
            assert_true(w == 1 ? first == NULL : first != NULL && !strstr(first + 1, "\"role\""));
            drv_buf_release(&out);
            drv_api_enc_release(&enc);
        }
}

static void now_rfc3339_is_now(void **state)
{
    (void)state;
    for (int tries = 0; tries < 3; tries++) {
        char a[64], b[64];
        time_t t0 = time(NULL);
        api_now_rfc3339(a, sizeof(a));
        api_rfc3339(b, sizeof(b), (int64_t)t0, 0, false);
        if (time(NULL) != t0)
            continue; /* a second boundary in between */
        assert_rfc3339_nanos(a);
        assert_memory_equal(a, b, 19); /* the same date and time of day */
        /* too small a buffer still gets a terminated (cut) string */
        char tiny[8];
        api_now_rfc3339(tiny, sizeof(tiny));
        assert_true(strlen(tiny) < sizeof(tiny));
        return;
    }
    fail_msg("the clock kept crossing seconds");
}

/* ---- Ollama encoding ---------------------------------------------------------------- */

static void ollama_generate_stream_sequence(void **state)
{
    (void)state;
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OLLAMA_GENERATE, true, false, "qwen3"), 0);
    assert_string_equal(drv_api_enc_content_type(&enc), "application/x-ndjson");
    struct drv_gen_event evs[] = {tok(DRV_EV_THINKING, "Hm."), tok(DRV_EV_TOKEN, "Hel"),
                                  tok(DRV_EV_TOKEN, "lo"), done("cancel")};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    enc_all(&enc, evs, 4, &out);
    assert_true(drv_api_enc_finished(&enc));
    assert_int_equal(drv_api_enc_status(&enc), 200);
    json_t *l[8];
    size_t n = ndjson(&out, l, 8);
    assert_int_equal(n, 4);
    assert_string_equal(sget(l[0], "model"), "qwen3");
    assert_rfc3339_nanos(sget(l[0], "created_at"));
    assert_string_equal(sget(l[0], "thinking"), "Hm.");
    assert_string_equal(sget(l[0], "response"), ""); /* thinking never in response */
    assert_true(json_is_false(json_object_get(l[0], "done")));
    assert_string_equal(sget(l[1], "response"), "Hel");
    assert_null(json_object_get(l[1], "thinking"));
    assert_string_equal(sget(l[2], "response"), "lo");
    json_t *d = l[3];
    assert_true(json_is_true(json_object_get(d, "done")));
    assert_string_equal(sget(d, "done_reason"), "stop"); /* cancel is stop on the wire */
    assert_string_equal(sget(d, "response"), "");
    assert_int_equal(iget(d, "total_duration"), 5000000000ll);
    assert_int_equal(iget(d, "prompt_eval_count"), 10);
    assert_int_equal(iget(d, "prompt_eval_duration"), 2000000);
    assert_int_equal(iget(d, "eval_count"), 20);
    assert_int_equal(iget(d, "eval_duration"), 500000000);
    assert_null(json_object_get(d, "load_duration")); /* zero metrics are omitted */
    free_all(l, n);

    /* nothing after the terminal event */
    struct drv_gen_event late = tok(DRV_EV_TOKEN, "x");
    size_t len = out.len;
    assert_int_equal(drv_api_enc_event(&enc, &late, &out), DRV_EINVAL);
    assert_int_equal(out.len, len);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

static void ollama_chat_stream_sequence(void **state)
{
    (void)state;
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OLLAMA_CHAT, true, false, NULL), 0);
    struct drv_gen_event evs[] = {tok(DRV_EV_THINKING, "plan"), tok(DRV_EV_TOKEN, "Hi"),
                                  done("length")};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    enc_all(&enc, evs, 3, &out);
    json_t *l[8];
    size_t n = ndjson(&out, l, 8);
    assert_int_equal(n, 3);
    assert_string_equal(sget(l[0], "model"), "resolved"); /* NULL model: the event's */
    json_t *m0 = json_object_get(l[0], "message");
    assert_string_equal(sget(m0, "role"), "assistant");
    assert_string_equal(sget(m0, "thinking"), "plan");
    assert_string_equal(sget(m0, "content"), "");
    json_t *m1 = json_object_get(l[1], "message");
    assert_string_equal(sget(m1, "content"), "Hi");
    assert_null(json_object_get(m1, "thinking"));
    assert_null(json_object_get(l[1], "response"));
    json_t *m2 = json_object_get(l[2], "message");
    assert_string_equal(sget(m2, "content"), "");
    assert_string_equal(sget(l[2], "done_reason"), "length");
    assert_true(json_is_true(json_object_get(l[2], "done")));
    free_all(l, n);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

static void ollama_non_stream_accumulates(void **state)
{
    (void)state;
    for (int chat = 0; chat < 2; chat++) {
        struct drv_api_enc enc;
        assert_int_equal(drv_api_enc_init(&enc,
                                          chat ? DRV_WIRE_OLLAMA_CHAT : DRV_WIRE_OLLAMA_GENERATE,
                                          false, false, "m"),
                         0);
        assert_string_equal(drv_api_enc_content_type(&enc), "application/json");
        struct drv_gen_event evs[] = {tok(DRV_EV_THINKING, "a"), tok(DRV_EV_TOKEN, "Hel"),
                                      tok(DRV_EV_THINKING, "b"), tok(DRV_EV_TOKEN, "lo"),
                                      done("stop")};
        struct drv_buf out;
        drv_buf_init(&out, 1 << 20);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(drv_api_enc_event(&enc, &evs[i], &out), 0);
            assert_int_equal(out.len, 0); /* nothing until done */
        }
        assert_int_equal(drv_api_enc_event(&enc, &evs[4], &out), 0);
        json_t *j = parse(out.data, out.len);
        assert_true(json_is_true(json_object_get(j, "done")));
        assert_int_equal(iget(j, "eval_count"), 20);
        if (chat) {
            json_t *m = json_object_get(j, "message");
            assert_string_equal(sget(m, "content"), "Hello");
            assert_string_equal(sget(m, "thinking"), "ab");
        } else {
            assert_string_equal(sget(j, "response"), "Hello");
            assert_string_equal(sget(j, "thinking"), "ab");
        }
        json_decref(j);
        drv_api_enc_release(&enc);
        drv_buf_release(&out);
    }
}

/* ---- OpenAI encoding -------------------------------------------------------------------- */

static void openai_chat_stream_sequence(void **state)
{
    (void)state;
    for (int usage = 0; usage < 2; usage++) {
        struct drv_api_enc enc;
        assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_CHAT, true, usage, "gpt-x"), 0);
        assert_string_equal(drv_api_enc_content_type(&enc), "text/event-stream");
        struct drv_gen_event evs[] = {tok(DRV_EV_THINKING, "think"), tok(DRV_EV_TOKEN, "A"),
                                      tok(DRV_EV_TOKEN, "B"), done("length")};
        struct drv_buf out;
        drv_buf_init(&out, 1 << 20);
        enc_all(&enc, evs, 4, &out);
        json_t *f[10];
        size_t n = sse(&out, f, 10);
        assert_int_equal(n, usage ? 6 : 5);
        const char *id = sget(f[0], "id");
        assert_true(strncmp(id, "chatcmpl-", 9) == 0 && strlen(id) > 20);
        for (size_t i = 0; i < n - 1; i++) {
            assert_string_equal(sget(f[i], "object"), "chat.completion.chunk");
            assert_string_equal(sget(f[i], "id"), id);
            assert_string_equal(sget(f[i], "model"), "gpt-x");
            assert_true(iget(f[i], "created") > 1600000000);
        }
        json_t *c0 = json_array_get(json_object_get(f[0], "choices"), 0);
        json_t *d0 = json_object_get(c0, "delta");
        assert_string_equal(sget(d0, "role"), "assistant");
        assert_string_equal(sget(d0, "reasoning_content"), "think");
        assert_null(json_object_get(d0, "content")); /* thinking never in content */
        assert_true(json_is_null(json_object_get(c0, "finish_reason")));
        assert_int_equal(iget(c0, "index"), 0);
        for (int i = 1; i <= 2; i++) {
            json_t *d =
                json_object_get(json_array_get(json_object_get(f[i], "choices"), 0), "delta");
            assert_null(json_object_get(d, "role")); /* role only in the first delta */
            assert_string_equal(sget(d, "content"), i == 1 ? "A" : "B");
        }
        json_t *c3 = json_array_get(json_object_get(f[3], "choices"), 0);
        assert_string_equal(sget(c3, "finish_reason"), "length");
        assert_int_equal(json_object_size(json_object_get(c3, "delta")), 0);
        assert_int_equal(iget(json_object_get(f[3], "timings"), "predicted_n"), 20);
        if (usage) {
            assert_int_equal(json_array_size(json_object_get(f[4], "choices")), 0);
            json_t *u = json_object_get(f[4], "usage");
            assert_int_equal(iget(u, "prompt_tokens"), 10);
            assert_int_equal(iget(u, "completion_tokens"), 20);
            assert_int_equal(iget(u, "total_tokens"), 30);
            assert_true(json_is_null(json_object_get(f[0], "usage")));
        } else {
            for (size_t i = 0; i < n - 1; i++)
                assert_null(json_object_get(f[i], "usage"));
        }
        assert_string_equal(json_string_value(f[n - 1]), "[DONE]");
        assert_true(drv_str_has_suffix(out.data, "data: [DONE]\n\n"));
        free_all(f, n);
        drv_api_enc_release(&enc);
        drv_buf_release(&out);
    }
}

static void openai_chat_stream_without_tokens_still_sends_role(void **state)
{
    (void)state;
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_CHAT, true, false, "m"), 0);
    struct drv_gen_event d = done("stop");
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    assert_int_equal(drv_api_enc_event(&enc, &d, &out), 0);
    json_t *f[4];
    size_t n = sse(&out, f, 4);
    assert_int_equal(n, 3);
    json_t *d0 = json_object_get(json_array_get(json_object_get(f[0], "choices"), 0), "delta");
    assert_string_equal(sget(d0, "role"), "assistant");
    assert_string_equal(sget(d0, "content"), "");
    json_t *c1 = json_array_get(json_object_get(f[1], "choices"), 0);
    assert_string_equal(sget(c1, "finish_reason"), "stop");
    free_all(f, n);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

static void openai_completion_stream_sequence(void **state)
{
    (void)state;
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_COMPLETION, true, true, "m"), 0);
    struct drv_gen_event evs[] = {tok(DRV_EV_TOKEN, "Once"), tok(DRV_EV_THINKING, "secret"),
                                  tok(DRV_EV_TOKEN, " upon"), done("stop")};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    enc_all(&enc, evs, 4, &out);
    assert_null(strstr(out.data, "secret"));
    json_t *f[8];
    size_t n = sse(&out, f, 8);
    assert_int_equal(n, 5);
    assert_true(strncmp(sget(f[0], "id"), "cmpl-", 5) == 0);
    assert_string_equal(sget(f[0], "object"), "text_completion");
    json_t *c0 = json_array_get(json_object_get(f[0], "choices"), 0);
    assert_string_equal(sget(c0, "text"), "Once");
    assert_true(json_is_null(json_object_get(c0, "logprobs")));
    assert_true(json_is_null(json_object_get(c0, "finish_reason")));
    json_t *c1 = json_array_get(json_object_get(f[1], "choices"), 0);
    assert_string_equal(sget(c1, "text"), " upon");
    json_t *c2 = json_array_get(json_object_get(f[2], "choices"), 0);
    assert_string_equal(sget(c2, "text"), "");
    assert_string_equal(sget(c2, "finish_reason"), "stop");
    assert_int_equal(iget(json_object_get(f[3], "usage"), "total_tokens"), 30);
    assert_string_equal(json_string_value(f[4]), "[DONE]");
    free_all(f, n);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

static void openai_non_stream_objects(void **state)
{
    (void)state;
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_CHAT, false, false, "m"), 0);
    assert_string_equal(drv_api_enc_content_type(&enc), "application/json");
    struct drv_gen_event evs[] = {tok(DRV_EV_THINKING, "why"), tok(DRV_EV_TOKEN, "4"),
                                  tok(DRV_EV_TOKEN, "2"), done("stop")};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    enc_all(&enc, evs, 4, &out);
    json_t *j = parse(out.data, out.len);
    assert_string_equal(sget(j, "object"), "chat.completion");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    json_t *m = json_object_get(c, "message");
    assert_string_equal(sget(m, "role"), "assistant");
    assert_string_equal(sget(m, "content"), "42");
    assert_string_equal(sget(m, "reasoning_content"), "why");
    assert_string_equal(sget(c, "finish_reason"), "stop");
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(iget(u, "prompt_tokens"), 10);
    assert_int_equal(iget(u, "completion_tokens"), 20);
    assert_int_equal(iget(u, "total_tokens"), 30);
    json_t *t = json_object_get(j, "timings");
    assert_int_equal(iget(t, "prompt_n"), 10);
    assert_float_equal(json_number_value(json_object_get(t, "prompt_ms")), 2.0, 1e-9);
    assert_float_equal(json_number_value(json_object_get(t, "prompt_per_second")), 5000.0, 1e-6);
    assert_int_equal(iget(t, "predicted_n"), 20);
    assert_float_equal(json_number_value(json_object_get(t, "predicted_ms")), 500.0, 1e-9);
    assert_float_equal(json_number_value(json_object_get(t, "predicted_per_second")), 40.0, 1e-9);
    json_decref(j);
    drv_api_enc_release(&enc);
    drv_buf_reset(&out);

    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_COMPLETION, false, false, "m"), 0);
    struct drv_gen_event none = done("length");
    none.stats.prompt_ns = 0; /* no division by zero */
    evs[3] = none;
    enc_all(&enc, evs, 4, &out);
    j = parse(out.data, out.len);
    assert_string_equal(sget(j, "object"), "text_completion");
    c = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(sget(c, "text"), "42");
    assert_string_equal(sget(c, "finish_reason"), "length");
    assert_true(json_is_null(json_object_get(c, "logprobs")));
    assert_int_equal(iget(json_object_get(j, "usage"), "total_tokens"), 30);
    assert_float_equal(
        json_number_value(json_object_get(json_object_get(j, "timings"), "prompt_per_second")), 0,
        0);
    json_decref(j);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

/* ---- errors --------------------------------------------------------------------------- */

static void error_bodies(void **state)
{
    (void)state;
    struct drv_buf out;
    drv_buf_init(&out, 4096);
    assert_int_equal(drv_api_error_body(DRV_WIRE_OLLAMA_CHAT, 404, "model \"x\" not found", &out),
                     0);
    json_t *j = parse(out.data, out.len);
    assert_string_equal(sget(j, "error"), "model \"x\" not found");
    assert_int_equal(json_object_size(j), 1);
    json_decref(j);

    const struct {
        int status;
        const char *type;
    } types[] = {{400, "invalid_request_error"}, {404, "not_found_error"},
                 {500, "server_error"},          {503, "unavailable_error"},
                 {401, "authentication_error"},  {429, "rate_limit_error"}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        drv_buf_reset(&out);
        assert_int_equal(drv_api_error_body(DRV_WIRE_OPENAI_CHAT, types[i].status, "bad", &out), 0);
        j = parse(out.data, out.len);
        json_t *e = json_object_get(j, "error");
        assert_string_equal(sget(e, "message"), "bad");
        assert_string_equal(sget(e, "type"), types[i].type);
        assert_int_equal(iget(e, "code"), types[i].status);
        json_decref(j);
    }
    /* invalid UTF-8 in a message does not lose the error */
    drv_buf_reset(&out);
    assert_int_equal(drv_api_error_body(DRV_WIRE_OLLAMA_GENERATE, 500, "bad \xff byte", &out), 0);
    j = parse(out.data, out.len);
    assert_string_equal(sget(j, "error"), "bad \xef\xbf\xbd byte");
    json_decref(j);
    drv_buf_release(&out);
}

static void error_events(void **state)
{
    (void)state;
    struct drv_gen_event err = {.kind = DRV_EV_ERROR, .status = 404, .message = "no such model"};
    struct drv_buf out;
    drv_buf_init(&out, 4096);

    /* before anything streamed: the whole response is an HTTP error */
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_CHAT, true, false, "m"), 0);
    assert_int_equal(drv_api_enc_event(&enc, &err, &out), 0);
    assert_int_equal(drv_api_enc_status(&enc), 404);
    assert_string_equal(drv_api_enc_content_type(&enc), "application/json");
    json_t *j = parse(out.data, out.len);
    assert_string_equal(sget(json_object_get(j, "error"), "type"), "not_found_error");
    json_decref(j);
    drv_api_enc_release(&enc);

    /* mid-stream, Ollama: an error line */
    drv_buf_reset(&out);
    err.status = 500;
    err.message = "out of memory";
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OLLAMA_GENERATE, true, false, "m"), 0);
    struct drv_gen_event t = tok(DRV_EV_TOKEN, "x");
    assert_int_equal(drv_api_enc_event(&enc, &t, &out), 0);
    assert_int_equal(drv_api_enc_event(&enc, &err, &out), 0);
    assert_int_equal(drv_api_enc_status(&enc), 200);
    json_t *l[4];
    size_t n = ndjson(&out, l, 4);
    assert_int_equal(n, 2);
    assert_string_equal(sget(l[1], "error"), "out of memory");
    free_all(l, n);
    assert_true(drv_api_enc_finished(&enc));
    drv_api_enc_release(&enc);

    /* headers already sent, OpenAI: an SSE error frame, no [DONE] */
    drv_buf_reset(&out);
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_COMPLETION, true, false, "m"), 0);
    drv_api_enc_headers_sent(&enc);
    assert_int_equal(drv_api_enc_event(&enc, &err, &out), 0);
    assert_string_equal(drv_api_enc_content_type(&enc), "text/event-stream");
    json_t *f[4];
    n = sse(&out, f, 4);
    assert_int_equal(n, 1);
    json_t *e = json_object_get(f[0], "error");
    assert_string_equal(sget(e, "message"), "out of memory");
    assert_string_equal(sget(e, "type"), "server_error");
    assert_int_equal(iget(e, "code"), 500);
    free_all(f, n);
    drv_api_enc_release(&enc);

    /* non-streaming: always a plain error body */
    drv_buf_reset(&out);
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OLLAMA_CHAT, false, false, "m"), 0);
    assert_int_equal(drv_api_enc_event(&enc, &t, &out), 0);
    err.status = 503;
    assert_int_equal(drv_api_enc_event(&enc, &err, &out), 0);
    assert_int_equal(drv_api_enc_status(&enc), 503);
    j = parse(out.data, out.len);
    assert_string_equal(sget(j, "error"), "out of memory");
    json_decref(j);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

/* ---- text repair and caps ----------------------------------------------------------------- */

static void utf8_split_and_invalid_bytes(void **state)
{
    (void)state;
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OLLAMA_GENERATE, true, false, "m"), 0);
    struct drv_buf out;
    drv_buf_init(&out, 1 << 16);
    /* "é" split over two tokens, a stray byte, then a truncated "€" at the end */
    struct drv_gen_event evs[] = {tok(DRV_EV_TOKEN, "caf\xc3"), tok(DRV_EV_TOKEN, "\xa9!"),
                                  tok(DRV_EV_TOKEN, "\xff"), tok(DRV_EV_TOKEN, "\xe2\x82"),
                                  done("stop")};
    enc_all(&enc, evs, 5, &out);
    json_t *l[8];
    size_t n = ndjson(&out, l, 8);
    assert_int_equal(n, 5);
    assert_string_equal(sget(l[0], "response"), "caf");
    assert_string_equal(sget(l[1], "response"), "\xc3\xa9!");
    assert_string_equal(sget(l[2], "response"), "\xef\xbf\xbd");
    assert_string_equal(sget(l[3], "response"), "\xef\xbf\xbd"); /* flushed at done */
    assert_true(json_is_true(json_object_get(l[4], "done")));
    free_all(l, n);
    drv_api_enc_release(&enc);

    /* non-streaming accumulates the joined character */
    drv_buf_reset(&out);
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_CHAT, false, false, "m"), 0);
    struct drv_gen_event evs2[] = {tok(DRV_EV_TOKEN, "\xf0\x9f"), tok(DRV_EV_TOKEN, "\x98"),
                                   tok(DRV_EV_TOKEN, "\x80"), done("stop")};
    enc_all(&enc, evs2, 4, &out);
    json_t *j = parse(out.data, out.len);
    json_t *m = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    assert_string_equal(sget(m, "content"), "\xf0\x9f\x98\x80");
    json_decref(j);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

static void output_cap_leaves_buffer_unchanged(void **state)
{
    (void)state;
    struct drv_api_enc enc;
    assert_int_equal(drv_api_enc_init(&enc, DRV_WIRE_OPENAI_CHAT, true, false, "m"), 0);
    struct drv_buf out;
    drv_buf_init(&out, 400);
    struct drv_gen_event t = tok(DRV_EV_TOKEN, "short");
    assert_int_equal(drv_api_enc_event(&enc, &t, &out), 0);
    size_t len = out.len;
    char big[500];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    t = tok(DRV_EV_TOKEN, big);
    assert_int_equal(drv_api_enc_event(&enc, &t, &out), DRV_ETOOBIG);
    assert_int_equal(out.len, len);
    assert_int_equal(strlen(out.data), len);
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
}

/* ---- listings and embeddings ---------------------------------------------------------------- */

static struct drv_model_desc desc(void)
{
    struct drv_model_desc m;
    memset(&m, 0, sizeof(m));
    strcpy(m.name, "stories260K:latest");
    strcpy(m.digest, "abc123");
    strcpy(m.family, "llama");
    strcpy(m.parameter_size, "292.8K");
    strcpy(m.quantization, "F32");
    m.size = 1185376;
    m.modified_at = 1704110400; /* 2024-01-01T12:00:00Z */
    m.size_resident = 2000000;
    m.size_vram = 1500000;
    m.context_length = 512;
    return m;
}

static void listings(void **state)
{
    (void)state;
    struct drv_model_desc ms[2] = {desc(), desc()};
    strcpy(ms[1].name, "other");
    strcpy(ms[1].model, "other-alias");
    ms[1].expires_at = 1704110400;
    struct drv_buf out;
    drv_buf_init(&out, 1 << 16);

    assert_int_equal(drv_api_ollama_tags(ms, 2, &out), 0);
    json_t *j = parse(out.data, out.len);
    json_t *arr = json_object_get(j, "models");
    assert_int_equal(json_array_size(arr), 2);
    json_t *m0 = json_array_get(arr, 0);
    assert_string_equal(sget(m0, "name"), "stories260K:latest");
    assert_string_equal(sget(m0, "model"), "stories260K:latest");
    assert_string_equal(sget(m0, "modified_at"), "2024-01-01T12:00:00Z");
    assert_int_equal(iget(m0, "size"), 1185376);
    assert_string_equal(sget(m0, "digest"), "abc123");
    json_t *d = json_object_get(m0, "details");
    assert_string_equal(sget(d, "parent_model"), "");
    assert_string_equal(sget(d, "format"), "gguf");
    assert_string_equal(sget(d, "family"), "llama");
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "families"), 0)),
                        "llama");
    assert_string_equal(sget(d, "parameter_size"), "292.8K");
    assert_string_equal(sget(d, "quantization_level"), "F32");
    assert_string_equal(sget(json_array_get(arr, 1), "model"), "other-alias");
    json_decref(j);

    drv_buf_reset(&out);
    assert_int_equal(drv_api_ollama_ps(ms, 2, &out), 0);
    j = parse(out.data, out.len);
    arr = json_object_get(j, "models");
    m0 = json_array_get(arr, 0);
    assert_int_equal(iget(m0, "size"), 2000000);
    assert_int_equal(iget(m0, "size_vram"), 1500000);
    assert_int_equal(iget(m0, "context_length"), 512);
    assert_string_equal(sget(m0, "expires_at"), "2318-01-01T00:00:00Z");
    assert_string_equal(sget(json_array_get(arr, 1), "expires_at"), "2024-01-01T12:00:00Z");
    assert_non_null(json_object_get(m0, "details"));
    json_decref(j);

    drv_buf_reset(&out);
    assert_int_equal(drv_api_openai_models(ms, 2, &out), 0);
    j = parse(out.data, out.len);
    assert_string_equal(sget(j, "object"), "list");
    json_t *e = json_array_get(json_object_get(j, "data"), 1);
    assert_string_equal(sget(e, "id"), "other");
    assert_string_equal(sget(e, "object"), "model");
    assert_int_equal(iget(e, "created"), 1704110400);
    assert_string_equal(sget(e, "owned_by"), "drover");
    json_decref(j);

    drv_buf_reset(&out);
    assert_int_equal(drv_api_ollama_tags(NULL, 0, &out), 0);
    assert_string_equal(out.data, "{\"models\":[]}");
    drv_buf_release(&out);
}

static void embedding_responses(void **state)
{
    (void)state;
    const float v[] = {1.0f, -0.5f, 0.125f, 0.1f, 2.0f, 3.0f};
    struct drv_api_embed_result r = {.model = "nomic",
                                     .data = v,
                                     .n = 2,
                                     .dim = 3,
                                     .total_ns = 1000,
                                     .load_ns = 0,
                                     .prompt_tokens = 7};
    struct drv_buf out;
    drv_buf_init(&out, 1 << 16);
    assert_int_equal(drv_api_ollama_embed_response(&r, &out), 0);
    json_t *j = parse(out.data, out.len);
    assert_string_equal(sget(j, "model"), "nomic");
    json_t *e = json_object_get(j, "embeddings");
    assert_int_equal(json_array_size(e), 2);
    assert_int_equal(json_array_size(json_array_get(e, 1)), 3);
    assert_float_equal(json_number_value(json_array_get(json_array_get(e, 0), 1)), -0.5, 0);
    assert_float_equal((float)json_number_value(json_array_get(json_array_get(e, 1), 0)), 0.1f, 0);
    assert_int_equal(iget(j, "total_duration"), 1000);
    assert_int_equal(iget(j, "prompt_eval_count"), 7);
    assert_null(json_object_get(j, "load_duration"));
    json_decref(j);

    drv_buf_reset(&out);
    assert_int_equal(drv_api_ollama_embeddings_response(&r, &out), 0);
    j = parse(out.data, out.len);
    assert_int_equal(json_array_size(json_object_get(j, "embedding")), 3);
    json_decref(j);

    drv_buf_reset(&out);
    assert_int_equal(drv_api_openai_embeddings_response(&r, false, &out), 0);
    j = parse(out.data, out.len);
    assert_string_equal(sget(j, "object"), "list");
    assert_string_equal(sget(j, "model"), "nomic");
    json_t *d1 = json_array_get(json_object_get(j, "data"), 1);
    assert_string_equal(sget(d1, "object"), "embedding");
    assert_int_equal(iget(d1, "index"), 1);
    assert_float_equal(json_number_value(json_array_get(json_object_get(d1, "embedding"), 2)), 3.0,
                       0);
    assert_int_equal(iget(json_object_get(j, "usage"), "prompt_tokens"), 7);
    assert_int_equal(iget(json_object_get(j, "usage"), "total_tokens"), 7);
    json_decref(j);

    /* base64 of little-endian float32: 1.0f = 00 00 80 3f */
    drv_buf_reset(&out);
    struct drv_api_embed_result one = {.model = "m", .data = v, .n = 1, .dim = 1};
    assert_int_equal(drv_api_openai_embeddings_response(&one, true, &out), 0);
    j = parse(out.data, out.len);
    assert_string_equal(sget(json_array_get(json_object_get(j, "data"), 0), "embedding"),
                        "AACAPw==");
    json_decref(j);
    drv_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ollama_generate_maps_every_field),
        cmocka_unit_test(ollama_generate_defaults),
        cmocka_unit_test(ollama_format_schema_and_think_levels),
        cmocka_unit_test(ollama_chat_maps_messages),
        cmocka_unit_test(ollama_decode_errors),
        cmocka_unit_test(caps_are_enforced),
        cmocka_unit_test(keep_alive_durations),
        cmocka_unit_test(openai_completion_maps_fields),
        cmocka_unit_test(openai_chat_maps_fields),
        cmocka_unit_test(embed_decoders),
        cmocka_unit_test(ollama_generate_stream_sequence),
        cmocka_unit_test(ollama_chat_stream_sequence),
        cmocka_unit_test(ollama_non_stream_accumulates),
        cmocka_unit_test(openai_chat_stream_sequence),
        cmocka_unit_test(openai_chat_stream_without_tokens_still_sends_role),
        cmocka_unit_test(openai_completion_stream_sequence),
        cmocka_unit_test(openai_non_stream_objects),
        cmocka_unit_test(error_bodies),
        cmocka_unit_test(error_events),
        cmocka_unit_test(utf8_split_and_invalid_bytes),
        cmocka_unit_test(output_cap_leaves_buffer_unchanged),
        cmocka_unit_test(listings),
        cmocka_unit_test(embedding_responses),
        cmocka_unit_test(direct_json_strings),
        cmocka_unit_test(ollama_direct_lines),
        cmocka_unit_test(openai_direct_chunks),
        cmocka_unit_test(now_rfc3339_is_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
