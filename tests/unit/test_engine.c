/* engine: real generation with the stories260K model, batching, cancel, lifecycle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

#include <ggml.h>
#include <gguf.h>
#include <jansson.h>

#define STORIES DROVER_TEST_MODELS "/stories260K.gguf"

/* collects one request's events */
struct result {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    struct drv_buf text;
    int n_tokens_ev;
    enum drv_ev_kind last;
    struct drv_gen_stats stats;
    char reason[16];
    int status;
    char message[256];
    int cancel_after; /* sink returns 1 after this many token events (0 = never) */
    int done_seq;     /* order in which DONE arrived (ordered sinks only) */
    atomic_bool cancel;
};

static void result_init(struct result *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    drv_buf_init(&r->text, 1 << 20);
}

static void result_release(struct result *r)
{
    drv_buf_release(&r->text);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
}

static int sink(void *ud, const struct drv_gen_event *ev)
{
    struct result *r = ud;
    pthread_mutex_lock(&r->mu);
    int stop = 0;
    r->last = ev->kind;
    if (ev->kind == DRV_EV_TOKEN) {
        drv_buf_append(&r->text, ev->text, ev->len);
        r->n_tokens_ev++;
        stop = r->cancel_after && r->n_tokens_ev >= r->cancel_after;
    } else if (ev->kind == DRV_EV_DONE || ev->kind == DRV_EV_ERROR) {
        r->stats = ev->stats;
        if (ev->kind == DRV_EV_DONE)
            drv_strlcpy(r->reason, ev->stats.done_reason, sizeof(r->reason));
        r->status = ev->status;
        if (ev->message)
            drv_strlcpy(r->message, ev->message, sizeof(r->message));
        r->done = true;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static void wait_done(struct result *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static struct drv_engine *engine_with_stories(int n_parallel, int max_queue)
{
    struct drv_engine_params p = drv_engine_default_params();
    p.n_parallel = n_parallel;
    p.max_queue = max_queue;
    p.n_ctx = 256;
    p.n_threads = 1;
    struct drv_err err;
    drv_err_init(&err);
    struct drv_engine *e = drv_engine_new(&p, &err);
    assert_non_null(e);
    assert_int_equal(drv_engine_add_model(e, "stories260K", STORIES, &err), 0);
    return e;
}

static void greedy_request(struct drv_gen_request *r, const char *prompt, int n)
{
    drv_gen_request_init(r);
    r->model = "stories260K";
    r->prompt = prompt;
    r->sampling.temperature = 0;
    r->num_predict = n;
}

static void generates_the_known_story(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(2, 8);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_gen_request req;
    greedy_request(&req, "Once upon a time", 24);
    struct result r;
    result_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), 0);
    wait_done(&r);
    assert_int_equal(r.last, DRV_EV_DONE);
    assert_string_equal(r.reason, "length");
    assert_int_equal(r.stats.eval_tokens, 24);
    assert_true(r.stats.prompt_tokens >= 4);
    assert_true(r.stats.eval_ns > 0);
    assert_true(r.stats.total_ns >= r.stats.eval_ns);
    assert_non_null(strstr(r.text.data, "Lily"));
    /* the same request again gives the same text: greedy is deterministic */
    struct result r2;
    result_init(&r2);
    assert_int_equal(b->ops->generate(b, &req, sink, &r2, &err), 0);
    wait_done(&r2);
    assert_string_equal(r.text.data, r2.text.data);
    assert_int_equal(r2.stats.load_ns, 0); /* already loaded */
    result_release(&r);
    result_release(&r2);
    drv_engine_free(e);
}

static void run_one(struct drv_backend *b, const char *prompt, int n, struct result *r)
{
    struct drv_gen_request req;
    greedy_request(&req, prompt, n);
    result_init(r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(b->ops->generate(b, &req, sink, r, &err), 0);
    wait_done(r);
}

/* A prompt that shares a prefix with the previous request on a slot reuses its
 * KV cache: fewer prompt tokens evaluated, the same text as without a cache. */
static void prompt_prefix_is_reused(void **state)
{
    (void)state;
    const char *p1 = "Once upon a time";
    const char *p2 = "Once upon a time, there was a little girl named Lily. She loved to";
    struct result fresh2;
    struct drv_engine *e0 = engine_with_stories(1, 8);
    run_one(drv_engine_backend(e0), p2, 12, &fresh2); /* p2 on an empty cache */
    drv_engine_free(e0);

    struct drv_engine *e = engine_with_stories(2, 8);
    struct drv_backend *b = drv_engine_backend(e);
    struct result a, again, b2;
    run_one(b, p1, 16, &a);
    run_one(b, p1, 16, &again);
    assert_string_equal(a.text.data, again.text.data);
    assert_int_equal(again.stats.prompt_tokens, 1); /* only the last token again */
    run_one(b, p2, 12, &b2);
    assert_string_equal(b2.text.data, fresh2.text.data);
    assert_true(b2.stats.prompt_tokens < fresh2.stats.prompt_tokens);
    assert_true(b2.stats.prompt_tokens > 0);
    result_release(&fresh2);
    result_release(&a);
    result_release(&again);
    result_release(&b2);
    drv_engine_free(e);
}

static void stop_string_is_cut_and_never_emitted(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(1, 8);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_gen_request req;
    greedy_request(&req, "Once upon a time", 64);
    const char *stops[] = {"Lily"};
    req.stop = stops;
    req.n_stop = 1;
    struct result r;
    result_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), 0);
    wait_done(&r);
    assert_string_equal(r.reason, "stop");
    assert_null(strstr(r.text.data, "Lily"));
    assert_non_null(strstr(r.text.data, "named"));
    result_release(&r);
    drv_engine_free(e);
}

static void unknown_model_is_refused_at_once(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(1, 8);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_gen_request req;
    greedy_request(&req, "x", 4);
    req.model = "nope";
    struct result r;
    result_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), DRV_ENOENT);
    assert_string_equal(err.msg, "model \"nope\" not found");
    assert_false(r.done);
    result_release(&r);
    drv_engine_free(e);
}

/* More requests than slots: all finish, and batching does not change greedy text. */
static void batched_requests_match_single_ones(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(3, 16);
    struct drv_backend *b = drv_engine_backend(e);
    const char *prompts[] = {"Once upon a time", "The cat", "One day, a little boy", "Tim and Sue",
                             "The sun was"};
    enum { N = 5 };
    struct result solo[N], many[N];
    struct drv_gen_request req;
    struct drv_err err;
    drv_err_init(&err);
    for (int i = 0; i < N; i++) {
        result_init(&solo[i]);
        greedy_request(&req, prompts[i], 16);
        assert_int_equal(b->ops->generate(b, &req, sink, &solo[i], &err), 0);
        wait_done(&solo[i]);
    }
    for (int i = 0; i < N; i++) {
        result_init(&many[i]);
        greedy_request(&req, prompts[i], 16);
        assert_int_equal(b->ops->generate(b, &req, sink, &many[i], &err), 0);
    }
    for (int i = 0; i < N; i++) {
        wait_done(&many[i]);
        assert_string_equal(many[i].reason, "length");
        assert_string_equal(solo[i].text.data, many[i].text.data);
        result_release(&solo[i]);
        result_release(&many[i]);
    }
    drv_engine_free(e);
}

static void cancel_frees_the_slot(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(1, 8);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_gen_request req;
    greedy_request(&req, "Once upon a time", 200);
    struct result r;
    result_init(&r);
    r.cancel_after = 3; /* the sink says stop, as a client that hung up */
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), 0);
    wait_done(&r);
    assert_string_equal(r.reason, "cancel");
    assert_int_equal(r.n_tokens_ev, 3);
    /* cancel flag set before the request ever runs */
    struct result r2;
    result_init(&r2);
    atomic_store(&r2.cancel, true);
    req.cancel = &r2.cancel;
    assert_int_equal(b->ops->generate(b, &req, sink, &r2, &err), 0);
    wait_done(&r2);
    assert_string_equal(r2.reason, "cancel");
    /* the only slot is free again */
    struct result r3;
    result_init(&r3);
    greedy_request(&req, "Once upon a time", 5);
    assert_int_equal(b->ops->generate(b, &req, sink, &r3, &err), 0);
    wait_done(&r3);
    assert_string_equal(r3.reason, "length");
    struct drv_engine_metrics mt;
    drv_engine_metrics(e, &mt);
    assert_int_equal(mt.busy_slots, 0);
    assert_int_equal(mt.queued, 0);
    result_release(&r);
    result_release(&r2);
    result_release(&r3);
    drv_engine_free(e);
}

/* A sink that holds the scheduler on its first token until released, so a slot
 * stays busy for as long as the test needs. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open, gate_reached;
static atomic_int done_order;

static int gated_sink(void *ud, const struct drv_gen_event *ev)
{
    if (ev->kind == DRV_EV_TOKEN) {
        pthread_mutex_lock(&gate_mu);
        gate_reached = true;
        pthread_cond_broadcast(&gate_cond);
        while (!gate_open)
            pthread_cond_wait(&gate_cond, &gate_mu);
        pthread_mutex_unlock(&gate_mu);
    }
    if (ev->kind == DRV_EV_DONE)
        ((struct result *)ud)->done_seq = atomic_fetch_add(&done_order, 1) + 1;
    return sink(ud, ev);
}

static int ordered_sink(void *ud, const struct drv_gen_event *ev)
{
    if (ev->kind == DRV_EV_DONE)
        ((struct result *)ud)->done_seq = atomic_fetch_add(&done_order, 1) + 1;
    return sink(ud, ev);
}

static void queued_cancel_ends_before_a_slot_frees(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(1, 8);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_err err;
    drv_err_init(&err);
    struct drv_gen_request req;
    struct result busy, waiting;
    result_init(&busy);
    result_init(&waiting);
    gate_open = gate_reached = false;
    atomic_store(&done_order, 0);
    greedy_request(&req, "Once upon a time", 20);
    assert_int_equal(b->ops->generate(b, &req, gated_sink, &busy, &err), 0);
    pthread_mutex_lock(&gate_mu);
    while (!gate_reached)
        pthread_cond_wait(&gate_cond, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    /* the only slot is busy: this one queues, then its client goes away */
    greedy_request(&req, "The cat", 20);
    req.cancel = &waiting.cancel;
    assert_int_equal(b->ops->generate(b, &req, ordered_sink, &waiting, &err), 0);
    atomic_store(&waiting.cancel, true);
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_mu);
    wait_done(&waiting);
    wait_done(&busy);
    assert_string_equal(waiting.reason, "cancel");
    assert_int_equal(waiting.stats.eval_tokens, 0);
    assert_int_equal(waiting.n_tokens_ev, 0);
    assert_int_equal(waiting.done_seq, 1); /* ended before the busy one finished */
    assert_int_equal(busy.done_seq, 2);
    assert_string_equal(busy.reason, "length");
    struct drv_engine_metrics mt;
    drv_engine_metrics(e, &mt);
    assert_int_equal(mt.queued, 0);
    result_release(&busy);
    result_release(&waiting);
    drv_engine_free(e);
}

static void keep_alive_zero_unloads(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(1, 8);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_gen_request req;
    greedy_request(&req, "Once", 2);
    req.keep_alive_ms = 0;
    struct result r;
    result_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), 0);
    wait_done(&r);
    struct drv_model_desc d[4];
    int n = 1;
    for (int i = 0; i < 200 && n != 0; i++) {
        n = b->ops->list_running(b, d, 4);
        usleep(10000);
    }
    assert_int_equal(n, 0);
    assert_int_equal(b->ops->list_models(b, d, 4), 1);
    assert_string_equal(d[0].name, "stories260K:latest");
    assert_string_equal(d[0].family, "llama");
    result_release(&r);
    drv_engine_free(e);
}

static void full_queue_is_refused(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(1, 1);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_gen_request req;
    greedy_request(&req, "Once upon a time", 100);
    struct result r[6];
    int refused = 0;
    bool accepted[6];
    struct drv_err err;
    for (int i = 0; i < 6; i++) {
        result_init(&r[i]);
        drv_err_init(&err);
        int rc = b->ops->generate(b, &req, sink, &r[i], &err);
        accepted[i] = rc == 0;
        if (rc == DRV_ETOOBIG)
            refused++;
        else
            assert_int_equal(rc, 0);
    }
    assert_true(refused >= 3); /* 1 slot + 1 queued (+1 not yet taken) */
    drv_engine_free(e);        /* cancels what runs; every accepted request gets its end */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].done, accepted[i]); /* refused ones never get an event */
        result_release(&r[i]);
    }
}

static void schema_compiles_and_refuses(void **state)
{
    (void)state;
    struct drv_buf b;
    struct drv_err err;
    drv_buf_init(&b, 1 << 20);
    drv_err_init(&err);
    assert_int_equal(drv_json_schema_to_gbnf("{\"type\":\"object\",\"properties\":{\"a\":"
                                             "{\"type\":\"string\"}},\"required\":[\"a\"]}",
                                             &b, &err),
                     0);
    assert_non_null(strstr(b.data, "root ::= "));
    assert_non_null(strstr(b.data, "\"\\\"a\\\"\" ws \":\" ws")); /* the key literal */
    drv_buf_reset(&b);
    assert_int_equal(drv_json_schema_to_gbnf("{not json", &b, &err), DRV_EINVAL);
    assert_non_null(strstr(err.msg, "not valid JSON"));
    drv_err_init(&err);
    assert_int_equal(drv_json_schema_to_gbnf("{\"$ref\":\"#/$defs/x\"}", &b, &err), DRV_EINVAL);
    assert_non_null(strstr(err.msg, "$ref"));
    /* self-reference through $defs must not recurse forever */
    drv_err_init(&err);
    drv_buf_reset(&b);
    assert_int_not_equal(
        drv_json_schema_to_gbnf("{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"type\":\"array\","
                                "\"items\":{\"$ref\":\"#/$defs/a\"}}}}",
                                &b, &err),
        0);
    drv_buf_release(&b);
}

/* Generation under a schema: the output is JSON of that shape. */
static void schema_constrains_generation(void **state)
{
    (void)state;
    struct drv_engine *e = engine_with_stories(2, 8);
    struct drv_backend *b = drv_engine_backend(e);
    const char *schemas[] = {
        "{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\"]},\"minItems\":2,"
        "\"maxItems\":3}",
        "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"blue\"]},"
        "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"color\",\"ok\"]}",
    };
    for (int k = 0; k < 2; k++) {
        for (int seed = 1; seed <= 3; seed++) {
            struct drv_gen_request req;
            greedy_request(&req, "Once upon a time", 200);
            req.sampling.temperature = 1.0f;
            req.sampling.seed = seed;
            req.format = DRV_FORMAT_SCHEMA;
            req.format_schema = schemas[k];
            struct result r;
            result_init(&r);
            struct drv_err err;
            drv_err_init(&err);
            assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), 0);
            wait_done(&r);
            assert_string_equal(r.reason, "stop");
            json_error_t jerr;
            json_t *j = json_loads(r.text.data, 0, &jerr);
            assert_non_null(j);
            if (k == 0) {
                assert_true(json_is_array(j));
                assert_in_range(json_array_size(j), 2, 3);
                const char *c = json_string_value(json_array_get(j, 0));
                assert_true(strcmp(c, "red") == 0 || strcmp(c, "green") == 0);
            } else {
                const char *c = json_string_value(json_object_get(j, "color"));
                assert_non_null(c);
                assert_true(strcmp(c, "red") == 0 || strcmp(c, "blue") == 0);
                assert_true(json_is_boolean(json_object_get(j, "ok")));
                assert_int_equal(json_object_size(j), 2);
            }
            json_decref(j);
            result_release(&r);
        }
    }
    /* a bad schema is refused before anything is queued */
    struct drv_gen_request req;
    greedy_request(&req, "x", 4);
    req.format = DRV_FORMAT_SCHEMA;
    req.format_schema = "{\"$ref\":\"#/nowhere\"}";
    struct result r;
    result_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), DRV_EINVAL);
    result_release(&r);
    drv_engine_free(e);
}

/* collects text events of drv_text_flush */
struct split {
    char think[256], answer[256];
    int cancel_at; /* answer events before cancel (0 = never) */
    int n_answer;
};

static int split_emit(void *ud, enum drv_ev_kind kind, const char *p, size_t n)
{
    struct split *sp = ud;
    char *dst = kind == DRV_EV_THINKING ? sp->think : sp->answer;
    strncat(dst, p, n);
    if (kind == DRV_EV_TOKEN && ++sp->n_answer == sp->cancel_at)
        return 1;
    return 0;
}

/* Feeds chunks one by one as the engine does, keeping what was not consumed. */
static bool feed(struct drv_think_state *st, const char *const *chunks, int n,
                 const char *const *stops, size_t n_stops, struct split *sp)
{
    char pending[512] = "";
    bool stopped = false;
    int cancel = 0;
    for (int i = 0; i <= n && !stopped; i++) {
        bool final = i == n;
        if (!final)
            strcat(pending, chunks[i]);
        size_t used = drv_text_flush(st, pending, strlen(pending), final, stops, n_stops, &stopped,
                                     split_emit, sp, &cancel);
        memmove(pending, pending + used, strlen(pending) - used + 1);
    }
    return stopped;
}

static void thinking_is_split_from_the_answer(void **state)
{
    (void)state;
    /* tags cut across tokens, whitespace before <think>, blank lines after </think> */
    const char *chunks[] = {"\n<th", "ink>Let me ", "think.</th", "ink>\n\n", "The ans", "wer."};
    struct drv_think_state st = {.enabled = true};
    struct split sp = {0};
    assert_false(feed(&st, chunks, 6, NULL, 0, &sp));
    assert_string_equal(sp.think, "Let me think.");
    assert_string_equal(sp.answer, "The answer.");

    /* a model that does not think (or think:false): tags are plain text */
    struct drv_think_state off = {.enabled = false};
    struct split sp2 = {0};
    feed(&off, chunks, 6, NULL, 0, &sp2);
    assert_string_equal(sp2.think, "");
    assert_string_equal(sp2.answer, "\n<think>Let me think.</think>\n\nThe answer.");

    /* <think> later in the answer is answer text */
    const char *late[] = {"Hi <think>x</think>"};
    struct drv_think_state st3 = {.enabled = true};
    struct split sp3 = {0};
    feed(&st3, late, 1, NULL, 0, &sp3);
    assert_string_equal(sp3.answer, "Hi <think>x</think>");

    /* stop strings apply to the answer, not to the reasoning */
    const char *stop_chunks[] = {"<think>a STOP b</think>", "c ST", "OP d"};
    const char *stops[] = {"STOP"};
    struct drv_think_state st4 = {.enabled = true};
    struct split sp4 = {0};
    assert_true(feed(&st4, stop_chunks, 3, stops, 1, &sp4));
    assert_string_equal(sp4.think, "a STOP b");
    assert_string_equal(sp4.answer, "c ");

    /* unterminated reasoning is flushed as reasoning at the end */
    const char *open_only[] = {"<think>still going"};
    struct drv_think_state st5 = {.enabled = true};
    struct split sp5 = {0};
    feed(&st5, open_only, 1, NULL, 0, &sp5);
    assert_string_equal(sp5.think, "still going");
    assert_string_equal(sp5.answer, "");
}

static void local_bench_measures_pp_and_tg(void **state)
{
    (void)state;
    struct drv_local_bench_params p = drv_local_bench_default_params();
    p.n_prompt = 64;
    p.n_gen = 16;
    p.reps = 3;
    p.n_threads = 1;
    struct drv_local_bench_result r;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_engine_bench_local(STORIES, &p, &r, &err), 0);
    assert_int_equal(r.reps, 3);
    assert_string_equal(r.info.arch, "llama");
    for (int i = 0; i < 3; i++) {
        assert_true(r.pp_tps[i] > 0);
        assert_true(r.tg_tps[i] > 0);
    }
    assert_int_equal(r.n_threads, 1);
    drv_err_init(&err);
    assert_int_equal(drv_engine_bench_local("/etc/passwd", &p, &r, &err), DRV_EFORMAT);
    p.reps = 0;
    drv_err_init(&err);
    assert_int_equal(drv_engine_bench_local(STORIES, &p, &r, &err), DRV_EINVAL);
}

/* The bandwidth measurement takes any ggml device: on the CPU device it copies
 * in RAM, which every machine has. */
static void device_bandwidth_on_the_cpu_device(void **state)
{
    (void)state;
    double gbps = 0;
    struct drv_err err;
    drv_err_init(&err);
    int rc = drv_engine_device_bandwidth("CPU", 0.05, (uint64_t)64 << 20, &gbps, &err);
    if (rc)
        fail_msg("%s", err.msg);
    /* RAM moves between ~1 and a few hundred GB/s: far outside is a unit error */
    if (!(gbps > 0.1 && gbps < 10000))
        fail_msg("CPU device: %.3f GB/s", gbps);

    drv_err_init(&err);
    assert_int_equal(drv_engine_device_bandwidth("CPU", 0.05, (uint64_t)1 << 20, &gbps, &err),
                     DRV_EINVAL);
    assert_non_null(strstr(err.msg, "too small to measure bandwidth"));
    assert_true(gbps < 0);
    drv_err_init(&err);
    assert_int_equal(drv_engine_device_bandwidth("CPU", 0.05, (uint64_t)1 << 60, &gbps, &err),
                     DRV_EINVAL);
    assert_non_null(strstr(err.msg, "CPU has "));
    assert_non_null(strstr(err.msg, "free: too little for a "));
    drv_err_init(&err);
    assert_int_equal(drv_engine_device_bandwidth("NoSuchGPU0", 0.05, 0, &gbps, &err), DRV_ENOENT);
    assert_string_equal(err.msg, "no ggml device named 'NoSuchGPU0'");
    drv_err_init(&err);
    assert_int_equal(drv_engine_device_bandwidth("CPU", 0, 0, &gbps, &err), DRV_EINVAL);
}

/* stories260K with a chat template that opens a think block (Qwen3-style), so
 * the prompt side of think:false can be seen: it closes the block in the prompt. */
static void write_template_copy(const char *out, const char *tmpl)
{
    struct ggml_context *meta = NULL;
    struct gguf_init_params ip = {.no_alloc = false, .ctx = &meta};
    struct gguf_context *src = gguf_init_from_file(STORIES, ip);
    assert_non_null(src);
    struct gguf_context *g = gguf_init_empty();
    gguf_set_kv(g, src);
    gguf_set_val_str(g, "tokenizer.chat_template", tmpl);
    for (int64_t i = 0; i < gguf_get_n_tensors(src); i++)
        gguf_add_tensor(g, ggml_get_tensor(meta, gguf_get_tensor_name(src, i)));
    assert_true(gguf_write_to_file(g, out, false));
    gguf_free(g);
    gguf_free(src);
    ggml_free(meta);
}

static void think_false_closes_the_block_in_the_prompt(void **state)
{
    (void)state;
    char path[] = "/tmp/drover-think-XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    write_template_copy(
        path, "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
              "{% endfor %}<|im_start|>assistant\n<think>\n");
    struct drv_engine_params p = drv_engine_default_params();
    p.n_parallel = 1;
    p.n_ctx = 256;
    p.n_threads = 1;
    struct drv_err err;
    drv_err_init(&err);
    struct drv_engine *e = drv_engine_new(&p, &err);
    assert_int_equal(drv_engine_add_model(e, "thinker", path, &err), 0);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_chat_msg msg = {"user", "Once upon a time"};
    int prompt_tokens[2];
    for (int k = 0; k < 2; k++) {
        struct drv_gen_request req;
        drv_gen_request_init(&req);
        req.kind = DRV_GEN_CHAT;
        req.model = "thinker";
        req.messages = &msg;
        req.n_messages = 1;
        req.num_predict = 1;
        req.sampling.temperature = 0;
        req.think = k; /* 0: off, 1: on */
        struct result r;
        result_init(&r);
        assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), 0);
        wait_done(&r);
        assert_int_equal(r.last, DRV_EV_DONE);
        /* the first run fills the cache; a prefix reuse would hide the count */
        prompt_tokens[k] = r.stats.prompt_tokens;
        result_release(&r);
        drv_engine_free(e);
        e = drv_engine_new(&p, &err);
        assert_int_equal(drv_engine_add_model(e, "thinker", path, &err), 0);
        b = drv_engine_backend(e);
    }
    /* think:false adds "<think>\n\n</think>\n\n" after the assistant prefix */
    assert_true(prompt_tokens[0] > prompt_tokens[1]);
    drv_engine_free(e);
    unlink(path);
}

/* Ring's template (llama.cpp's built-in "bailing-think") ends its generation
 * prompt with <think>: the model's words are reasoning until </think>, so a
 * small budget ends with an empty answer (done_reason length); think:false
 * closes the block in the prompt and the words are the answer. */
static void template_that_opens_think_makes_reasoning(void **state)
{
    (void)state;
    const char *opened[] = {"<role>ASSISTANT</role><think>", "assistant\n<think>\n"};
    const char *closed[] = {"<think>\n\n</think>\n\n", "", "think>"};
    for (size_t i = 0; i < 2; i++)
        assert_true(drv_think_opened(opened[i], strlen(opened[i])));
    for (size_t i = 0; i < 3; i++)
        assert_false(drv_think_opened(closed[i], strlen(closed[i])));
    char path[] = "/tmp/drover-ring-XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    write_template_copy(path, "{%- for m in messages -%}{%- set role = m.role | upper -%}"
                              "{%- if role == \"USER\" -%}{%- set role = \"HUMAN\" -%}{%- endif -%}"
                              "<role>{{ role }}</role>{{ m.content }}{%- endfor -%}"
                              "{%- if add_generation_prompt -%}<role>ASSISTANT</role><think>"
                              "{%- endif -%}");
    struct drv_engine_params p = drv_engine_default_params();
    p.n_parallel = 1;
    p.n_ctx = 256;
    p.n_threads = 1;
    struct drv_err err;
    drv_err_init(&err);
    struct drv_engine *e = drv_engine_new(&p, &err);
    assert_int_equal(drv_engine_add_model(e, "ring", path, &err), 0);
    struct drv_backend *b = drv_engine_backend(e);
    struct drv_chat_msg msg = {"user", "Once upon a time"};
    for (int think = -1; think <= 0; think++) {
        struct drv_gen_request req;
        drv_gen_request_init(&req);
        req.kind = DRV_GEN_CHAT;
        req.model = "ring";
        req.messages = &msg;
        req.n_messages = 1;
        req.num_predict = 12;
        req.sampling.temperature = 0;
        req.think = think;
        struct result r;
        result_init(&r);
        assert_int_equal(b->ops->generate(b, &req, sink, &r, &err), 0);
        wait_done(&r);
        assert_int_equal(r.last, DRV_EV_DONE);
        assert_string_equal(r.reason, "length");
        if (think < 0)
            assert_int_equal(r.text.len, 0); /* every word was reasoning */
        else
            assert_true(r.text.len > 0);
        result_release(&r);
    }
    drv_engine_free(e);
    unlink(path);
}

static void text_helpers(void **state)
{
    (void)state;
    assert_int_equal(drv_utf8_complete_len("abc", 3), 3);
    assert_int_equal(drv_utf8_complete_len("a\xc3", 2), 1);     /* half of é */
    assert_int_equal(drv_utf8_complete_len("a\xc3\xa9", 3), 3); /* é */
    assert_int_equal(drv_utf8_complete_len("\xe2\x82", 2), 0);  /* 2/3 of € */
    assert_int_equal(drv_utf8_complete_len("\xf0\x9f\x98\x80", 4), 4);
    const char *stops[] = {"STOP", "\n\n"};
    bool stopped;
    assert_int_equal(drv_stop_scan("hello ST", 8, stops, 2, &stopped), 6);
    assert_false(stopped);
    assert_int_equal(drv_stop_scan("hello STOP now", 14, stops, 2, &stopped), 6);
    assert_true(stopped);
    assert_int_equal(drv_stop_scan("a\n", 2, stops, 2, &stopped), 1);
    assert_int_equal(drv_stop_scan("plain", 5, stops, 2, &stopped), 5);
    const char *empty[] = {""};
    assert_int_equal(drv_stop_scan("abc", 3, empty, 1, &stopped), 3);
}

int main(void)
{
    drv_log_set_level(DRV_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_helpers),
        cmocka_unit_test(think_false_closes_the_block_in_the_prompt),
        cmocka_unit_test(template_that_opens_think_makes_reasoning),
        cmocka_unit_test(local_bench_measures_pp_and_tg),
        cmocka_unit_test(device_bandwidth_on_the_cpu_device),
        cmocka_unit_test(thinking_is_split_from_the_answer),
        cmocka_unit_test(schema_compiles_and_refuses),
        cmocka_unit_test(schema_constrains_generation),
        cmocka_unit_test(generates_the_known_story),
        cmocka_unit_test(prompt_prefix_is_reused),
        cmocka_unit_test(stop_string_is_cut_and_never_emitted),
        cmocka_unit_test(unknown_model_is_refused_at_once),
        cmocka_unit_test(batched_requests_match_single_ones),
        cmocka_unit_test(cancel_frees_the_slot),
        cmocka_unit_test(keep_alive_zero_unloads),
        cmocka_unit_test(queued_cancel_ends_before_a_slot_frees),
        cmocka_unit_test(full_queue_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
