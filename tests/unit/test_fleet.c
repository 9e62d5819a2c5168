/* fleet: config, names, and the gateway's routing over a scripted local backend
 * and nodes that cannot be reached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/fleet.h"
#include "store/store.h"

/* ---- a scripted backend: one model, answers "ok" on a thread of its own ---- */

struct fake {
    struct drv_backend b;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool hold;       /* requests wait until released */
    int fail_status; /* != 0: answer with this error before any token */
    int started;     /* generate() calls accepted */
    int last_think;  /* what the last request asked */
    char last_model[128];
};

struct fake_call {
    struct fake *f;
    drv_gen_sink sink;
    void *ud;
};

static void *fake_run(void *arg)
{
    struct fake_call *c = arg;
    struct fake *f = c->f;
    pthread_mutex_lock(&f->mu);
    while (f->hold)
        pthread_cond_wait(&f->cond, &f->mu);
    int fail = f->fail_status;
    pthread_mutex_unlock(&f->mu);
    struct drv_gen_event ev = {.kind = DRV_EV_TOKEN, .text = "ok", .len = 2, .model = "m"};
    if (fail) {
        ev = (struct drv_gen_event){.kind = DRV_EV_ERROR, .status = fail, .message = "scripted"};
        c->sink(c->ud, &ev);
    } else {
        c->sink(c->ud, &ev);
        ev = (struct drv_gen_event){.kind = DRV_EV_DONE, .model = "m"};
        ev.stats.done_reason = "stop";
        ev.stats.eval_tokens = 4;
        ev.stats.eval_ns = 4000000;
        c->sink(c->ud, &ev);
    }
    free(c);
    return NULL;
}

static int fake_generate(struct drv_backend *b, const struct drv_gen_request *req,
                         drv_gen_sink sink, void *ud, struct drv_err *err)
{
    struct fake *f = b->impl;
    if (strcmp(req->model, "m:latest") != 0 && strcmp(req->model, "m") != 0)
        return drv_err_set(err, DRV_ENOENT, "no model %s", req->model);
    struct fake_call *c = calloc(1, sizeof(*c));
    c->f = f;
    c->sink = sink;
    c->ud = ud;
    pthread_mutex_lock(&f->mu);
    f->started++;
    f->last_think = req->think;
    drv_strlcpy(f->last_model, req->model, sizeof(f->last_model));
    pthread_mutex_unlock(&f->mu);
    pthread_t t;
    pthread_create(&t, NULL, fake_run, c);
    pthread_detach(t);
    return 0;
}

static int fake_list(struct drv_backend *b, struct drv_model_desc *out, int cap)
{
    (void)b;
    if (cap > 0) {
        memset(out, 0, sizeof(*out));
        strcpy(out->name, "m:latest");
        strcpy(out->model, "m:latest");
        strcpy(out->family, "qwen3");
    }
    return 1;
}

static int fake_running(struct drv_backend *b, struct drv_model_desc *out, int cap)
{
    (void)b;
    (void)out;
    (void)cap;
    return 0;
}

static const struct drv_backend_ops fake_ops = {
    .generate = fake_generate, .list_models = fake_list, .list_running = fake_running};

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->b.ops = &fake_ops;
    f->b.impl = f;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
}

static void fake_release_hold(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->hold = false;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

/* ---- one request's events ---- */

struct res {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    enum drv_ev_kind last;
    int status;
    char node[64];
    char text[64];
    char message[256]; /* of the error */
};

static int sink(void *ud, const struct drv_gen_event *ev)
{
    struct res *r = ud;
    pthread_mutex_lock(&r->mu);
    if (ev->node)
        drv_strlcpy(r->node, ev->node, sizeof(r->node));
    if (ev->kind == DRV_EV_TOKEN)
        strncat(r->text, ev->text, ev->len < 8 ? ev->len : 8);
    if (ev->kind == DRV_EV_DONE || ev->kind == DRV_EV_ERROR) {
        r->done = true;
        r->last = ev->kind;
        r->status = ev->status;
        if (ev->message)
            drv_strlcpy(r->message, ev->message, sizeof(r->message));
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void res_init(struct res *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void res_wait(struct res *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static int gen(struct drv_fleet *f, const char *model, const char *route, struct res *r,
               struct drv_err *err)
{
    struct drv_gen_request q;
    drv_gen_request_init(&q);
    q.kind = DRV_GEN_COMPLETE;
    q.model = model;
    q.prompt = "hello";
    q.route = route;
    res_init(r);
    drv_err_init(err);
    return drv_fleet_backend(f)->ops->generate(drv_fleet_backend(f), &q, sink, r, err);
}

static struct drv_fleet *fleet_of(const char *conf, struct fake *fk)
{
    struct drv_config *cfg;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_config_parse(conf, &cfg, &err), 0);
    struct drv_fleet_params p;
    assert_int_equal(drv_fleet_params_from_config(cfg, &p, &err), 0);
    struct drv_fleet *f = drv_fleet_new(&p, &fk->b, &err);
    assert_non_null(f);
    drv_fleet_params_release(&p);
    drv_config_free(cfg);
    return f;
}

/* ---- tests ---- */

static void names(void **state)
{
    (void)state;
    char k[160];
    drv_fleet_model_key("stories260K", k, sizeof(k));
    assert_string_equal(k, "stories260K:latest");
    drv_fleet_model_key("/models/stories260K.gguf", k, sizeof(k));
    assert_string_equal(k, "stories260K:latest");
    drv_fleet_model_key("qwen2.5:3b", k, sizeof(k));
    assert_string_equal(k, "qwen2.5:3b");
    enum drv_route r;
    char pinned[64] = "";
    assert_true(drv_route_parse("least-busy", &r, pinned, sizeof(pinned)));
    assert_int_equal(r, DRV_ROUTE_LEAST_BUSY);
    assert_true(drv_route_parse("pinned=gpu", &r, pinned, sizeof(pinned)));
    assert_int_equal(r, DRV_ROUTE_PINNED);
    assert_string_equal(pinned, "gpu");
    assert_false(drv_route_parse("pinned=", &r, pinned, sizeof(pinned)));
    assert_false(drv_route_parse("fastest-ish", &r, pinned, sizeof(pinned)));
}

static void config_ok(void **state)
{
    (void)state;
    struct drv_config *cfg;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(
        drv_config_parse("[fleet]\nroute = priority\nhealth_interval = 1500ms\n"
                         "max_queue = 3\napi_key = k1\napi_key = k2\nlocal = no\n"
                         "[node gpu]\nurl = http://10.0.0.2:11434/\nkind = ollama\n"
                         "max_concurrent = 2\npriority = 1\nhw = gpu.json\n"
                         "[node cpu]\nurl = http://10.0.0.3:8080\nkind = openai\n"
                         "[alias qwen2.5:3b]\nmodel = qwen2.5-3b-instruct-q4_k_m.gguf\n"
                         "[think]\nqwen3 = false\n",
                         &cfg, &err),
        0);
    struct drv_fleet_params p;
    assert_int_equal(drv_fleet_params_from_config(cfg, &p, &err), 0);
    assert_int_equal(p.route, DRV_ROUTE_PRIORITY);
    assert_int_equal(p.health_interval_ms, 1500);
    assert_int_equal(p.max_queue, 3);
    assert_false(p.local);
    assert_int_equal(p.n_keys, 2);
    assert_string_equal(p.keys[1], "k2");
    assert_int_equal(p.n_nodes, 2);
    assert_string_equal(p.nodes[0].url, "http://10.0.0.2:11434");
    assert_int_equal(p.nodes[0].kind, DRV_NODE_OLLAMA);
    assert_int_equal(p.nodes[0].max_concurrent, 2);
    assert_int_equal(p.nodes[1].kind, DRV_NODE_OPENAI);
    assert_int_equal(p.nodes[1].max_concurrent, 4); /* default */
    assert_int_equal(p.n_aliases, 1);
    assert_string_equal(p.aliases[0][1], "qwen2.5-3b-instruct-q4_k_m:latest");
    assert_int_equal(p.n_think, 1);
    assert_int_equal(p.think[0].think, 0);
    drv_fleet_params_release(&p);
    drv_config_free(cfg);
}

static void config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *conf, *says;
    } cases[] = {
        {"[node a]\nkind = ollama\n", "[node a] has no url"},
        {"[node a]\nurl = ftp://x\n", "not an http:// URL"},
        {"[node a]\nurl = http://x\nkind = vllm\n", "kind = vllm"},
        {"[node a]\nurl = http://x\nmax_concurrent = 0\n", "max_concurrent"},
        {"[node a]\nurl = http://x\ncolour = red\n", "unknown setting \"colour\""},
        {"[node local]\nurl = http://x\n", "\"local\" is this process"},
        {"[node a]\nurl = http://x\napi_key_file = /nonexistent/key\n", "cannot read"},
        {"[fleet]\nroute = fastest-ish\n", "route = fastest-ish"},
        {"[fleet]\nroute = pinned=b\n[node a]\nurl = http://x\n", "no such node"},
        {"[fleet]\nhealth_interval = soon\n", "health_interval"},
        {"[think]\nqwen3 = maybe\n", "use true or false"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct drv_config *cfg;
        struct drv_err err;
        drv_err_init(&err);
        assert_int_equal(drv_config_parse(cases[i].conf, &cfg, &err), 0);
        struct drv_fleet_params p;
        assert_int_equal(drv_fleet_params_from_config(cfg, &p, &err), DRV_EINVAL);
        if (strstr(err.msg, cases[i].says) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].says);
        drv_fleet_params_release(&p);
        drv_config_free(cfg);
    }
}

/* A dead node is down after the first poll; requests go to the live one, with
 * the config's think default; a request pinned to the dead node is refused;
 * an unknown model is 404. */
static void routes_around_a_dead_node(void **state)
{
    (void)state;
    struct fake fk;
    fake_init(&fk);
    struct drv_fleet *f = fleet_of("[fleet]\nhealth_timeout = 300ms\nroute = round-robin\n"
                                   "[node dead]\nurl = http://127.0.0.1:1\nkind = drover\n"
                                   "[think]\nqwen3 = false\n",
                                   &fk);
    struct drv_buf b;
    drv_buf_init(&b, 1 << 20);
    assert_int_equal(drv_fleet_nodes_json(f, &b), 0);
    assert_non_null(strstr(b.data, "\"name\":\"dead\""));
    assert_non_null(strstr(b.data, "\"up\":false"));
    drv_buf_release(&b);

    struct res r;
    struct drv_err err;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gen(f, "m", NULL, &r, &err), 0);
        res_wait(&r);
        assert_int_equal(r.last, DRV_EV_DONE);
        assert_string_equal(r.node, "local");
        assert_string_equal(r.text, "ok");
    }
    assert_int_equal(fk.last_think, 0); /* [think] qwen3 = false: the family matched */
    assert_string_equal(fk.last_model, "m:latest");

    assert_int_equal(gen(f, "m", "pinned=dead", &r, &err), DRV_ENOENT); /* dead has no model */
    assert_int_equal(gen(f, "m", "pinned=ghost", &r, &err), DRV_EINVAL);
    assert_int_equal(gen(f, "nope", NULL, &r, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "nope"));

    struct drv_model_desc d[4];
    assert_int_equal(drv_fleet_backend(f)->ops->list_models(drv_fleet_backend(f), d, 4), 1);
    assert_string_equal(d[0].node, "local");
    drv_fleet_free(f);
}

/* max_concurrent 1 and max_queue 1: one runs, one waits, the third is refused;
 * the waiting one runs when the first ends. */
static void queue_is_bounded(void **state)
{
    (void)state;
    struct fake fk;
    fake_init(&fk);
    fk.hold = true;
    struct drv_fleet *f =
        fleet_of("[fleet]\nlocal_max_concurrent = 1\nmax_queue = 1\nhealth_interval = 60s\n", &fk);
    struct res r1, r2, r3;
    struct drv_err err;
    assert_int_equal(gen(f, "m", NULL, &r1, &err), 0);
    assert_int_equal(gen(f, "m", NULL, &r2, &err), 0);
    assert_int_equal(gen(f, "m", NULL, &r3, &err), DRV_ETOOBIG);
    usleep(150000);
    assert_int_equal(fk.started, 1); /* the second waits in the gateway's queue */
    struct drv_buf b;
    drv_buf_init(&b, 1 << 20);
    assert_int_equal(drv_fleet_metrics(f, &b), 0);
    assert_non_null(strstr(b.data, "drover_fleet_queue_depth 1"));
    assert_non_null(strstr(b.data, "drover_fleet_rejected_total 1"));
    drv_buf_release(&b);
    fake_release_hold(&fk);
    res_wait(&r1);
    res_wait(&r2);
    assert_int_equal(r2.last, DRV_EV_DONE);
    assert_int_equal(fk.started, 2);
    drv_buf_init(&b, 1 << 20);
    assert_int_equal(drv_fleet_metrics(f, &b), 0);
    if (!strstr(b.data, "drover_fleet_requests_total{node=\"local\",model=\"m:latest\"} 2"))
        fail_msg("%s", b.data);
    assert_non_null(
        strstr(b.data, "drover_fleet_tokens_predicted_total{node=\"local\",model=\"m:latest\"} 8"));
    drv_buf_release(&b);
    drv_fleet_free(f);
}

/* An error before the first token with no other node left: the client gets
 * one error, with what the node said. */
static void failure_without_alternative(void **state)
{
    (void)state;
    struct fake fk;
    fake_init(&fk);
    fk.fail_status = 500;
    struct drv_fleet *f = fleet_of("[fleet]\nhealth_interval = 60s\n", &fk);
    struct res r;
    struct drv_err err;
    assert_int_equal(gen(f, "m", NULL, &r, &err), 0);
    res_wait(&r);
    assert_int_equal(r.last, DRV_EV_ERROR);
    assert_int_equal(r.status, 502);
    assert_non_null(strstr(r.message, "scripted")); /* what the node said */
    drv_fleet_free(f);
}

/* Rates start from the bench history of the node (by name), before any traffic. */
static void rates_seeded_from_bench_history(void **state)
{
    (void)state;
    char db[] = "/tmp/drover-test-fleet-XXXXXX";
    int fd = mkstemp(db);
    assert_true(fd >= 0);
    close(fd);
    unlink(db);
    struct drv_store *st;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_store_open(db, &st, &err), 0);
    struct drv_bench_rep reps[2] = {
        {.concurrency = 1, .pp_tps = 400, .tg_tps = 40, .ttft_ms = -1, .e2e_ms = -1},
        {.concurrency = 1, .pp_tps = 600, .tg_tps = 60, .ttft_ms = -1, .e2e_ms = -1}};
    struct drv_bench_run run = {.reps = reps, .n_reps = 2};
    strcpy(run.target, "local");
    strcpy(run.kind, "drover");
    strcpy(run.model, "m");
    assert_int_equal(drv_store_add_run(st, &run, &err), 0);
    drv_store_close(st);

    struct fake fk;
    fake_init(&fk);
    char conf[256];
    snprintf(conf, sizeof(conf), "[fleet]\nhealth_interval = 60s\nhistory = %s\n", db);
    struct drv_fleet *f = fleet_of(conf, &fk);
    struct drv_buf b;
    drv_buf_init(&b, 1 << 20);
    assert_int_equal(drv_fleet_nodes_json(f, &b), 0);
    if (!strstr(b.data, "\"tg_tps\":50.0") || !strstr(b.data, "\"rates_from\":\"bench history\""))
        fail_msg("%s", b.data);
    assert_non_null(strstr(b.data, "\"pp_tps\":500.0"));
    drv_buf_release(&b);
    drv_fleet_free(f);
    char side[64];
    for (int i = 0; i < 2; i++) {
        snprintf(side, sizeof(side), "%s%s", db, i ? "-shm" : "-wal");
        unlink(side);
    }
    unlink(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(config_ok),
        cmocka_unit_test(config_errors),
        cmocka_unit_test(routes_around_a_dead_node),
        cmocka_unit_test(queue_is_bounded),
        cmocka_unit_test(failure_without_alternative),
        cmocka_unit_test(rates_seeded_from_bench_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
