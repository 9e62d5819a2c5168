/* bench: statistics, prompts, parsing of the servers' numbers, kind detection and
 * whole runs against canned servers (an in-process drv_http_server that answers
 * like drover, Ollama, llama-server or a plain OpenAI-compatible server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "http/http.h"

/* ---- statistics --------------------------------------------------------------- */

static void stat_median_min_max_spread(void **state)
{
    (void)state;
    struct drv_bench_stat s;
    double odd[] = {30, 10, 20};
    drv_bench_stat_compute(odd, 3, &s);
    assert_int_equal(s.n, 3);
    assert_true(s.median == 20 && s.min == 10 && s.max == 30);
    assert_true(fabs(s.spread - 1.0) < 1e-12);

    double even[] = {4, 1, 3, 2};
    drv_bench_stat_compute(even, 4, &s);
    assert_true(s.median == 2.5 && s.min == 1 && s.max == 4);
    assert_true(fabs(s.spread - 3 / 2.5) < 1e-12);

    /* "not measured" (< 0) values are left out */
    double gaps[] = {-1, 100, -1, 110, 90};
    drv_bench_stat_compute(gaps, 5, &s);
    assert_int_equal(s.n, 3);
    assert_true(s.median == 100 && s.min == 90 && s.max == 110);
    assert_true(fabs(s.spread - 0.2) < 1e-12);

    double one[] = {7};
    drv_bench_stat_compute(one, 1, &s);
    assert_true(s.n == 1 && s.median == 7 && s.spread == 0);

    double none[] = {-1, -1};
    drv_bench_stat_compute(none, 2, &s);
    assert_int_equal(s.n, 0);
    assert_true(s.median < 0);
    drv_bench_stat_compute(NULL, 0, &s);
    assert_int_equal(s.n, 0);

    /* more values than the small on-stack buffer */
    double many[200];
    for (int i = 0; i < 200; i++)
        many[i] = 199 - i;
    drv_bench_stat_compute(many, 200, &s);
    assert_true(s.n == 200 && s.min == 0 && s.max == 199 && s.median == 99.5);
}

/* ---- prompts ------------------------------------------------------------------- */

static int count_words(const char *s)
{
    int n = 0;
    bool in = false;
    for (; *s; s++) {
        bool sp = *s == ' ' || *s == '\n';
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

static char *prompt(int words, uint64_t seed)
{
    struct drv_buf b;
    drv_buf_init(&b, 1 << 20);
    assert_int_equal(drv_bench_prompt(&b, words, seed), 0);
    return drv_buf_steal(&b);
}

static void prompt_has_the_words_and_differs_per_rep(void **state)
{
    (void)state;
    for (int words = 1; words <= 600; words += 73) {
        char *p = prompt(words, 42);
        assert_int_equal(count_words(p), words);
        free(p);
    }
    /* same seed, same prompt; other seeds differ from the first words on, so no
     * repetition can reuse another's cached prefix */
    char *a = prompt(512, 1), *a2 = prompt(512, 1);
    assert_string_equal(a, a2);
    char *seen[16];
    for (int i = 0; i < 16; i++) {
        seen[i] = prompt(512, 1000 + (uint64_t)i);
        for (int j = 0; j < i; j++)
            assert_true(strncmp(seen[j], seen[i], 16) != 0);
    }
    for (int i = 0; i < 16; i++)
        free(seen[i]);
    /* varied words, not one repeated */
    assert_non_null(a);
    int distinct = 0;
    const char *probe[] = {"river", "stone", "garden", "window", "castle", "zebra", "ocean"};
    char *big = prompt(2000, 7);
    for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++)
        distinct += strstr(big, probe[i]) != NULL;
    assert_true(distinct >= 5);
    free(big);
    free(a);
    free(a2);
}

/* ---- parsing ------------------------------------------------------------------ */

static void parse_ollama_final_object(void **state)
{
    (void)state;
    struct drv_bench_event ev;
    struct drv_err err;
    drv_err_init(&err);
    const char *tok = "{\"model\":\"m\",\"response\":\" the\",\"done\":false}";
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_OLLAMA, tok, strlen(tok), &ev, &err), 0);
    assert_int_equal(ev.content_len, 4);
    assert_false(ev.done);
    assert_int_equal(ev.gen_tokens, -1);

    const char *fin = "{\"model\":\"m\",\"response\":\"\",\"done\":true,\"done_reason\":\"length\","
                      "\"total_duration\":90000000,\"load_duration\":1000000,"
                      "\"prompt_eval_count\":512,\"prompt_eval_duration\":256000000,"
                      "\"eval_count\":128,\"eval_duration\":1024000000}";
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_DROVER, fin, strlen(fin), &ev, &err), 0);
    assert_true(ev.done);
    assert_int_equal(ev.content_len, 0);
    assert_int_equal(ev.prompt_tokens, 512);
    assert_int_equal(ev.pp_tokens, 512);
    assert_int_equal(ev.gen_tokens, 128);
    assert_true(fabs(ev.prompt_ms - 256.0) < 1e-9); /* ns -> ms */
    assert_true(fabs(ev.gen_ms - 1024.0) < 1e-9);   /* 125 tok/s */

    /* chat shape, and an error object mid-stream */
    const char *chat = "{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}";
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_OLLAMA, chat, strlen(chat), &ev, &err),
                     0);
    assert_int_equal(ev.content_len, 2);
    const char *bad = "{\"error\":\"model ran out of memory\"}";
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_OLLAMA, bad, strlen(bad), &ev, &err), 0);
    assert_string_equal(ev.error, "model ran out of memory");
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_OLLAMA, "nope", 4, &ev, &err),
                     DRV_EFORMAT);
}

static void parse_llama_server_timings(void **state)
{
    (void)state;
    struct drv_bench_event ev;
    struct drv_err err;
    drv_err_init(&err);
    const char *tok = "{\"choices\":[{\"text\":\" was\",\"index\":0,\"finish_reason\":null}]}";
    assert_int_equal(
        drv_bench_parse_event(DRV_BENCH_KIND_LLAMA_SERVER, tok, strlen(tok), &ev, &err), 0);
    assert_int_equal(ev.content_len, 4);
    assert_false(ev.done);

    const char *fin =
        "{\"choices\":[{\"text\":\"\",\"index\":0,\"finish_reason\":\"length\"}],"
        "\"usage\":{\"completion_tokens\":128,\"prompt_tokens\":520,\"total_tokens\":648},"
        "\"timings\":{\"cache_n\":8,\"prompt_n\":512,\"prompt_ms\":128.0,"
        "\"prompt_per_second\":4000.0,\"predicted_n\":128,\"predicted_ms\":640.0,"
        "\"predicted_per_second\":200.0}}";
    assert_int_equal(
        drv_bench_parse_event(DRV_BENCH_KIND_LLAMA_SERVER, fin, strlen(fin), &ev, &err), 0);
    assert_true(ev.done);
    assert_int_equal(ev.prompt_tokens, 520); /* what the server counted, cache included */
    assert_int_equal(ev.pp_tokens, 512);     /* what prompt_ms covers */
    assert_int_equal(ev.gen_tokens, 128);
    assert_true(ev.prompt_ms == 128.0 && ev.gen_ms == 640.0);

    /* a plain OpenAI server: usage only, chat deltas */
    const char *oa = "{\"choices\":[{\"delta\":{\"content\":\"abc\"},\"finish_reason\":null}]}";
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_OPENAI, oa, strlen(oa), &ev, &err), 0);
    assert_int_equal(ev.content_len, 3);
    const char *us = "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}";
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_OPENAI, us, strlen(us), &ev, &err), 0);
    assert_true(ev.prompt_tokens == 9 && ev.gen_tokens == 3 && ev.prompt_ms < 0 && ev.gen_ms < 0);
    const char *er = "{\"error\":{\"message\":\"context full\",\"type\":\"x\",\"code\":400}}";
    assert_int_equal(drv_bench_parse_event(DRV_BENCH_KIND_OPENAI, er, strlen(er), &ev, &err), 0);
    assert_string_equal(ev.error, "context full");
}

/* ---- canned servers ------------------------------------------------------------- */

enum fake_mode { FAKE_DROVER, FAKE_OLLAMA, FAKE_LLAMA, FAKE_OPENAI, FAKE_NONE };

struct fake {
    enum fake_mode mode;
    atomic_int gen_calls;
    int fail_after; /* generation requests answered before they fail with 500; 0 = never */
};

static void respond_json(struct drv_http_req *req, unsigned status, const char *body)
{
    drv_http_respond(req, status, "application/json", body, strlen(body));
}

static void h_version(struct drv_http_req *req, void *ud)
{
    struct fake *f = ud;
    if (f->mode == FAKE_DROVER || f->mode == FAKE_OLLAMA)
        respond_json(req, 200, "{\"version\":\"0.9.1\"}");
    else
        respond_json(req, 404, "{\"error\":\"not found\"}");
}

static void h_metrics(struct drv_http_req *req, void *ud)
{
    struct fake *f = ud;
    static const char m[] = "# TYPE drover_requests_total counter\ndrover_requests_total 3\n";
    if (f->mode == FAKE_DROVER)
        drv_http_respond(req, 200, "text/plain", m, sizeof(m) - 1);
    else
        respond_json(req, 404, "{\"error\":\"not found\"}");
}

static void h_props(struct drv_http_req *req, void *ud)
{
    struct fake *f = ud;
    if (f->mode == FAKE_LLAMA)
        respond_json(req, 200,
                     "{\"default_generation_settings\":{\"n_ctx\":4096},\"total_slots\":4,"
                     "\"model_path\":\"/models/tiny-q4.gguf\",\"build_info\":\"b6000-abc\"}");
    else
        respond_json(req, 404, "{\"error\":\"not found\"}");
}

static void h_models(struct drv_http_req *req, void *ud)
{
    struct fake *f = ud;
    if (f->mode == FAKE_LLAMA)
        respond_json(req, 200,
                     "{\"object\":\"list\",\"data\":[{\"id\":\"/models/tiny-q4.gguf\","
                     "\"meta\":{\"size\":123456}}]}");
    else if (f->mode == FAKE_NONE)
        respond_json(req, 404, "{\"error\":\"not found\"}");
    else
        respond_json(req, 200,
                     "{\"object\":\"list\",\"data\":[{\"id\":\"alpha\"},{\"id\":\"beta:7b\"}]}");
}

static void h_tags(struct drv_http_req *req, void *ud)
{
    struct fake *f = ud;
    if (f->mode != FAKE_DROVER && f->mode != FAKE_OLLAMA) {
        respond_json(req, 404, "{\"error\":\"not found\"}");
        return;
    }
    respond_json(req, 200,
                 "{\"models\":[{\"name\":\"alpha:latest\",\"size\":1000,\"digest\":\"d1\","
                 "\"details\":{\"quantization_level\":\"Q4_0\"}},"
                 "{\"name\":\"beta:7b\",\"size\":2000,\"digest\":\"d2\","
                 "\"details\":{\"quantization_level\":\"Q8_0\"}}]}");
}

static void h_ps(struct drv_http_req *req, void *ud)
{
    respond_json(req, 200, "{\"models\":[{\"name\":\"beta:7b\"}]}");
}

/* Words in the request's prompt: the fake tokenizer is one token per word. */
static int prompt_words(json_t *j)
{
    const char *p = json_string_value(json_object_get(j, "prompt"));
    int n = 0;
    bool in = false;
    for (; p && *p; p++) {
        bool sp = *p == ' ';
        n += !sp && !in;
        in = !sp;
    }
    return n;
}

/* Answers the whole stream at once: pp 10000 tok/s, tg 1000 tok/s. */
static void h_generate(struct drv_http_req *req, void *ud)
{
    struct fake *f = ud;
    int call = atomic_fetch_add(&f->gen_calls, 1) + 1;
    if (f->fail_after && call > f->fail_after) {
        respond_json(req, 500, "{\"error\":\"the GPU fell off the bus\"}");
        return;
    }
    size_t len;
    const char *body = drv_http_req_body(req, &len);
    json_t *j = json_loadb(body, len, 0, NULL);
    int words = prompt_words(j);
    bool ollama = strcmp(drv_http_req_path(req), "/api/generate") == 0;
    int n =
        ollama
            ? (int)json_integer_value(json_object_get(json_object_get(j, "options"), "num_predict"))
            : (int)json_integer_value(json_object_get(j, "max_tokens"));
    json_decref(j);
    struct drv_buf b;
    drv_buf_init(&b, 1 << 20);
    for (int i = 0; i < n; i++) {
        if (ollama)
            drv_buf_appendf(&b, "{\"response\":\" w%d\",\"done\":false}\n", i);
        else
            drv_buf_appendf(
                &b, "data: {\"choices\":[{\"text\":\" w%d\",\"finish_reason\":null}]}\n\n", i);
    }
    if (ollama)
        drv_buf_appendf(&b,
                        "{\"response\":\"\",\"done\":true,\"prompt_eval_count\":%d,"
                        "\"prompt_eval_duration\":%d,\"eval_count\":%d,\"eval_duration\":%d}\n",
                        words, words * 100000, n, n * 1000000);
    else if (f->mode == FAKE_LLAMA)
        drv_buf_appendf(&b,
                        "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}],"
                        "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d},"
                        "\"timings\":{\"cache_n\":0,\"prompt_n\":%d,\"prompt_ms\":%g,"
                        "\"predicted_n\":%d,\"predicted_ms\":%d}}\n\ndata: [DONE]\n\n",
                        words, n, words, words * 0.1, n, n);
    else
        drv_buf_appendf(&b,
                        "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n"
                        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
                        "\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n",
                        words, n);
    drv_http_respond(req, 200, ollama ? "application/x-ndjson" : "text/event-stream", b.data,
                     b.len);
    drv_buf_release(&b);
}

static const struct drv_http_route fake_routes[] = {
    {"GET", "/api/version", h_version},
    {"GET", "/metrics", h_metrics},
    {"GET", "/props", h_props},
    {"GET", "/v1/models", h_models},
    {"GET", "/api/tags", h_tags},
    {"GET", "/api/ps", h_ps},
    {"POST", "/api/generate", h_generate},
    {"POST", "/v1/completions", h_generate},
};

static struct drv_http_server *fake_start(struct fake *f, char *url, size_t size)
{
    struct drv_http_params p = drv_http_default_params();
    struct drv_err err;
    drv_err_init(&err);
    struct drv_http_server *srv =
        drv_http_server_new(&p, fake_routes, sizeof(fake_routes) / sizeof(fake_routes[0]), f, &err);
    if (srv == NULL)
        fail_msg("server_new: %s", err.msg);
    snprintf(url, size, "http://127.0.0.1:%u/", drv_http_server_port(srv));
    return srv;
}

static void detect_kinds_from_canned_answers(void **state)
{
    (void)state;
    struct {
        enum fake_mode mode;
        int rc;
        enum drv_bench_kind kind;
        const char *version;
    } cases[] = {
        {FAKE_DROVER, 0, DRV_BENCH_KIND_DROVER, "0.9.1"},
        {FAKE_OLLAMA, 0, DRV_BENCH_KIND_OLLAMA, "0.9.1"},
        {FAKE_LLAMA, 0, DRV_BENCH_KIND_LLAMA_SERVER, "b6000-abc"},
        {FAKE_OPENAI, 0, DRV_BENCH_KIND_OPENAI, ""},
        {FAKE_NONE, DRV_ENOENT, DRV_BENCH_KIND_AUTO, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fake f = {.mode = cases[i].mode};
        char url[64];
        struct drv_http_server *srv = fake_start(&f, url, sizeof(url));
        struct drv_bench_target t;
        struct drv_err err;
        drv_err_init(&err);
        int rc = drv_bench_detect(url, NULL, DRV_BENCH_KIND_AUTO, &t, &err);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(t.kind, cases[i].kind);
            assert_string_equal(t.version, cases[i].version);
            assert_true(t.url[strlen(t.url) - 1] != '/'); /* trailing slash dropped */
        } else {
            assert_non_null(strstr(err.msg, "--kind"));
        }
        /* --kind wins over what it answers */
        drv_err_init(&err);
        assert_int_equal(drv_bench_detect(url, NULL, DRV_BENCH_KIND_OPENAI, &t, &err), 0);
        assert_int_equal(t.kind, DRV_BENCH_KIND_OPENAI);
        drv_http_server_free(srv);
    }
    struct drv_bench_target t;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_bench_detect("http://127.0.0.1:1", NULL, DRV_BENCH_KIND_AUTO, &t, &err),
                     DRV_EUPSTREAM);
    assert_non_null(strstr(err.msg, "unreachable: "));
    drv_err_init(&err);
    assert_int_equal(drv_bench_detect("ftp://x", NULL, DRV_BENCH_KIND_AUTO, &t, &err), DRV_EINVAL);
}

static void model_choice(void **state)
{
    (void)state;
    struct fake f = {.mode = FAKE_OLLAMA};
    char url[64];
    struct drv_http_server *srv = fake_start(&f, url, sizeof(url));
    struct drv_bench_target t;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_bench_detect(url, NULL, DRV_BENCH_KIND_AUTO, &t, &err), 0);
    /* no --model and two models: the loaded one */
    assert_int_equal(drv_bench_pick_model(&t, NULL, 5000, &err), 0);
    assert_string_equal(t.model, "beta:7b");
    assert_string_equal(t.quant, "Q8_0");
    assert_int_equal(t.model_size, 2000);
    /* a name without its :latest tag */
    assert_int_equal(drv_bench_pick_model(&t, "alpha", 5000, &err), 0);
    assert_string_equal(t.model, "alpha:latest");
    assert_string_equal(t.digest, "d1");
    /* a model it does not have: says so, and what it has */
    assert_int_equal(drv_bench_pick_model(&t, "gamma", 5000, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "does not have model gamma"));
    assert_non_null(strstr(err.msg, "alpha:latest, beta:7b"));
    drv_http_server_free(srv);

    /* llama-server: the file stem of its model path answers too */
    f.mode = FAKE_LLAMA;
    srv = fake_start(&f, url, sizeof(url));
    drv_err_init(&err);
    assert_int_equal(drv_bench_detect(url, NULL, DRV_BENCH_KIND_AUTO, &t, &err), 0);
    assert_int_equal(drv_bench_pick_model(&t, "tiny-q4", 5000, &err), 0);
    assert_string_equal(t.model, "/models/tiny-q4.gguf");
    assert_string_equal(t.model_display, "tiny-q4");
    assert_int_equal(t.model_size, 123456);
    drv_http_server_free(srv);

    /* OpenAI with two models and nothing loaded: ask for --model */
    f.mode = FAKE_OPENAI;
    srv = fake_start(&f, url, sizeof(url));
    drv_err_init(&err);
    assert_int_equal(drv_bench_detect(url, NULL, DRV_BENCH_KIND_AUTO, &t, &err), 0);
    assert_int_equal(drv_bench_pick_model(&t, NULL, 5000, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "--model"));
    drv_http_server_free(srv);
}

static void run_against(enum fake_mode mode, int fail_after, struct drv_bench_params *p,
                        struct drv_bench_result *r, int *rc)
{
    struct fake f = {.mode = mode, .fail_after = fail_after};
    char url[64];
    struct drv_http_server *srv = fake_start(&f, url, sizeof(url));
    struct drv_err err;
    drv_err_init(&err);
    *rc = drv_bench_run_target(url, p, NULL, NULL, NULL, r, &err);
    drv_http_server_free(srv);
}

static void whole_run_uses_server_timings(void **state)
{
    (void)state;
    enum fake_mode modes[] = {FAKE_DROVER, FAKE_LLAMA, FAKE_OPENAI};
    for (size_t m = 0; m < 3; m++) {
        struct drv_bench_params p = drv_bench_default_params();
        p.prompt_tokens = 40;
        p.gen_tokens = 8;
        p.reps = 3;
        p.model = modes[m] == FAKE_OPENAI ? "alpha" : NULL;
        p.levels[0] = 1;
        p.levels[1] = 3;
        p.n_levels = 2;
        struct drv_bench_result r;
        int rc;
        run_against(modes[m], 0, &p, &r, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(r.status, DRV_BENCH_OK);
        assert_int_equal(r.n_levels, 2);
        for (int l = 0; l < 2; l++) {
            const struct drv_bench_level *lv = &r.levels[l];
            assert_int_equal(lv->concurrency, p.levels[l]);
            assert_int_equal(lv->n_reps, 3);
            assert_true(lv->ttft.median > 0 && lv->e2e.median >= lv->ttft.median);
            assert_true(lv->prompt_tokens.median == 40 && lv->gen_tokens.median == 8);
            if (modes[m] == FAKE_OPENAI) { /* no server timings: the client's clock */
                assert_false(lv->reps[0].server_timings);
                assert_true(lv->pp.median > 0);
            } else {
                assert_true(lv->reps[0].server_timings);
                assert_true(fabs(lv->pp.median - 10000) < 1e-6);
                assert_true(fabs(lv->tg.median - 1000) < 1e-6);
                assert_true(lv->tg.spread == 0);
            }
        }
        struct drv_bench_run run;
        struct drv_err err;
        drv_err_init(&err);
        assert_int_equal(drv_bench_fill_run(&r, &p, true, &run, &err), 0);
        assert_int_equal(run.n_reps, 6);
        assert_true(run.baseline);
        assert_string_equal(run.kind, drv_bench_kind_name(r.target.kind));
        assert_int_equal(run.reps[3].concurrency, 3);
        assert_string_equal(run.reps[0].source, modes[m] == FAKE_OPENAI ? "client" : "server");
        assert_non_null(strstr(run.params, "\"prompt_tokens\":40"));
        free(run.reps);
        drv_bench_result_release(&r);
    }
}

static void failure_midway_keeps_finished_reps(void **state)
{
    (void)state;
    struct drv_bench_params p = drv_bench_default_params();
    p.prompt_tokens = 10;
    p.gen_tokens = 4;
    p.reps = 5;
    struct drv_bench_result r;
    int rc;
    /* two warm-up requests, then two repetitions, then 500s */
    run_against(FAKE_OLLAMA, 4, &p, &r, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, DRV_BENCH_PARTIAL);
    assert_int_equal(r.n_levels, 1);
    assert_int_equal(r.levels[0].n_reps, 2);
    assert_non_null(strstr(r.error, "repetition 3 of 5"));
    assert_non_null(strstr(r.error, "the GPU fell off the bus"));

    /* the table shows the kept numbers and says what happened */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    drv_bench_write_table(f, &r, 1);
    fclose(f);
    assert_non_null(strstr(text, "tg tok/s"));
    assert_non_null(strstr(text, "1000.0"));
    assert_non_null(strstr(text, "repetitions before that are kept"));
    free(text);
    drv_bench_result_release(&r);

    /* failing from the start: nothing measured */
    run_against(FAKE_OLLAMA, 1, &p, &r, &rc);
    assert_int_not_equal(rc, 0);
    assert_int_equal(r.status, DRV_BENCH_FAILED);
    assert_int_equal(r.n_levels, 0);
    drv_bench_result_release(&r);
}

static void table_and_json_compare_targets(void **state)
{
    (void)state;
    struct drv_bench_params p = drv_bench_default_params();
    p.prompt_tokens = 20;
    p.gen_tokens = 4;
    p.reps = 2;
    struct drv_bench_result rs[3];
    int rc;
    run_against(FAKE_DROVER, 0, &p, &rs[0], &rc);
    run_against(FAKE_LLAMA, 0, &p, &rs[1], &rc);
    struct drv_err err;
    drv_err_init(&err);
    drv_bench_run_target("http://127.0.0.1:1", &p, NULL, NULL, NULL, &rs[2], &err);
    assert_int_equal(rs[2].status, DRV_BENCH_UNREACHABLE);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    drv_bench_write_table(f, rs, 3);
    fclose(f);
    assert_non_null(strstr(text, "tg vs first"));
    assert_non_null(strstr(text, "1.00x"));
    assert_non_null(strstr(text, "http://127.0.0.1:1: unreachable: "));
    free(text);

    char *js = drv_bench_json(rs, 3, &p);
    json_t *doc = json_loads(js, 0, NULL);
    assert_non_null(doc);
    json_t *targets = json_object_get(doc, "targets");
    assert_int_equal(json_array_size(targets), 3);
    json_t *lv = json_array_get(json_object_get(json_array_get(targets, 1), "levels"), 0);
    assert_int_equal(json_array_size(json_object_get(lv, "reps")), 2);
    assert_true(fabs(json_real_value(json_object_get(json_object_get(lv, "ratio"), "tg")) - 1.0) <
                1e-9);
    assert_string_equal(json_string_value(json_object_get(json_array_get(targets, 2), "status")),
                        "unreachable");
    json_decref(doc);
    free(js);
    for (int i = 0; i < 3; i++)
        drv_bench_result_release(&rs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stat_median_min_max_spread),
        cmocka_unit_test(prompt_has_the_words_and_differs_per_rep),
        cmocka_unit_test(parse_ollama_final_object),
        cmocka_unit_test(parse_llama_server_timings),
        cmocka_unit_test(detect_kinds_from_canned_answers),
        cmocka_unit_test(model_choice),
        cmocka_unit_test(whole_run_uses_server_timings),
        cmocka_unit_test(failure_midway_keeps_finished_reps),
        cmocka_unit_test(table_and_json_compare_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
