/* libFuzzer target: the doctor's parsers of what nodes answer (their HTTP bodies
 * are outside input), then every check on whatever they made of it. */
#include "base/base.h"
#include "doctor/doctor.h"
#include "model/model.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*parse_fn)(struct drv_doctor_node *, const char *, size_t, struct drv_err *);

static void must_say_why(int rc, const struct drv_err *err)
{
    if (rc != 0 && err->msg[0] == '\0')
        __builtin_trap();
}

/* A machine with a GPU, so that the checks that plan with drover fit (partial
 * offload, KV cache type) run on the shapes the parsers made. */
static const char LAPTOP[] =
    "{\"version\":1,\"cpu\":{\"model\":\"x\",\"sockets\":1,\"cores\":8,\"threads\":16,"
    "\"features\":[],\"l2_bytes\":0,\"l3_bytes\":0},\"memory\":{\"total_bytes\":62277025792,"
    "\"available_bytes\":58000000000,\"swap_total_bytes\":0,\"swap_free_bytes\":0,"
    "\"bandwidth_gbps\":38.5},\"devices\":[{\"name\":\"CUDA0\",\"description\":\"x\","
    "\"type\":\"gpu\",\"memory_total_bytes\":8589934592,\"memory_free_bytes\":6657199308},"
    "{\"name\":\"CPU\",\"description\":\"x\",\"type\":\"cpu\",\"memory_total_bytes\":"
    "62277025792,\"memory_free_bytes\":58000000000}],\"amd\":[],\"nvidia\":[],\"problems\":[]}";

/* A node's model shape must make a fit model fit can compute with, or none. */
static void fit_the_shapes(const struct drv_doctor_node *n, const struct drv_hw *hw)
{
    static struct drv_fit_model fm;
    static struct drv_fit_result r;
    for (int i = 0; i < n->n_models; i++) {
        if (drv_doctor_fit_model(&n->models[i], &fm) != 0)
            continue;
        if (fm.n_layer == 0 || fm.n_layer > DRV_FIT_MAX_LAYERS)
            __builtin_trap();
        uint32_t ctx = n->models[i].context_length % 300000;
        (void)drv_fit_kv_bytes(&fm, DRV_FIT_KV_Q8_0, ctx, 4);
        struct drv_fit_params p = drv_fit_default_params();
        p.n_ctx = ctx ? ctx : 1;
        drv_fit_plan(&fm, hw, &p, &r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct drv_doctor_node nodes[2];
    static struct drv_doctor_result result;
    static struct drv_hw hw;
    static int have_hw;
    if (!have_hw) {
        struct drv_err e;
        drv_err_init(&e);
        if (drv_probe_profile_parse(LAPTOP, strlen(LAPTOP), &hw, &e) != 0)
            __builtin_trap();
        have_hw = 1;
    }
    static const parse_fn parsers[] = {drv_doctor_parse_status, drv_doctor_parse_ps,
                                       drv_doctor_parse_tags, drv_doctor_parse_props,
                                       drv_doctor_parse_models};
    /* the bodies are not NUL-terminated on the wire either */
    char *body = malloc(size ? size : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    struct drv_doctor_node *n = &nodes[1];
    memset(nodes, 0, sizeof(nodes));
    drv_strlcpy(n->name, "fuzz", sizeof(n->name));
    drv_strlcpy(n->url, "http://127.0.0.1:1", sizeof(n->url));
    n->reachable = true;
    struct drv_err err;
    for (size_t i = 0; i < sizeof(parsers) / sizeof(parsers[0]); i++) {
        drv_err_init(&err);
        must_say_why(parsers[i](n, body, size, &err), &err);
    }
    for (int i = 0; i < n->n_models; i++) {
        drv_err_init(&err);
        must_say_why(drv_doctor_parse_show(&n->models[i], body, size, &err), &err);
    }
    for (int k = 0; k < 4; k++) {
        drv_err_init(&err);
        must_say_why(drv_doctor_parse_chat(&n->think, k & 1, k & 2, body, size, &err), &err);
    }
    if (n->n_models > DRV_DOCTOR_MAX_MODELS)
        __builtin_trap();
    fit_the_shapes(n, &hw);
    n->have_hw = true;
    n->hw = hw;
    /* every check, as each kind of node, copes with what was parsed */
    n->speed.state = 1;
    n->speed.n = 1;
    n->speed.tg[0] = 1;
    drv_strlcpy(n->speed.model, n->n_models ? n->models[0].name : "m", sizeof(n->speed.model));
    nodes[0] = *n;
    struct drv_doctor_fleet fleet = {.nodes = nodes, .n = 2};
    for (int k = DRV_BENCH_KIND_AUTO; k <= DRV_BENCH_KIND_OPENAI; k++) {
        nodes[0].kind = nodes[1].kind = (enum drv_bench_kind)k;
        drv_doctor_run_checks(&fleet, 1, &result);
        if (result.n_findings > DRV_DOCTOR_MAX_FINDINGS)
            __builtin_trap();
    }
    free(body);
    return 0;
}
