/* localbench: a model's prompt and generation speed in-process, without HTTP,
 * the way llama-bench measures it (random tokens, a warm-up, then timed runs),
 * so the cost of the server around the engine can be seen. */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

struct drv_local_bench_params drv_local_bench_default_params(void)
{
    struct drv_local_bench_params p = {.n_prompt = 512,
                                       .n_gen = 128,
                                       .reps = 5,
                                       .n_threads = 0,
                                       .n_gpu_layers = -1,
                                       .n_batch = 512};
    return p;
}

/* Decodes n random tokens from position 0 of a cleared cache, in n_batch
 * chunks (prompt processing) or one by one (generation). Returns seconds, < 0
 * when llama_decode failed. */
static double timed_decode(struct llama_context *ctx, int n_vocab, int n, bool one_by_one,
                           int n_batch, unsigned *seed)
{
    llama_memory_clear(llama_get_memory(ctx), true);
    int chunk = one_by_one ? 1 : n_batch;
    struct llama_batch b = llama_batch_init(chunk, 0, 1);
    uint64_t t0 = drv_now_ns();
    int pos = 0;
    while (pos < n) {
        int k = n - pos < chunk ? n - pos : chunk;
        for (int i = 0; i < k; i++) {
            *seed = *seed * 1103515245u + 12345u;
            b.token[i] = (llama_token)((*seed >> 8) % (unsigned)n_vocab);
            b.pos[i] = pos + i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = i == k - 1;
        }
        b.n_tokens = k;
        if (llama_decode(ctx, b) != 0) {
            llama_batch_free(b);
            return -1;
        }
        pos += k;
    }
    llama_synchronize(ctx);
    double secs = (double)(drv_now_ns() - t0) / 1e9;
    llama_batch_free(b);
    return secs;
}

int drv_engine_bench_local(const char *path, const struct drv_local_bench_params *p,
                           struct drv_local_bench_result *out, struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    if (p->reps < 1 || p->reps > DRV_LOCAL_BENCH_MAX_REPS || p->n_prompt < 1 || p->n_gen < 1)
        return drv_err_set(err, DRV_EINVAL, "reps must be 1..%d and token counts positive",
                           DRV_LOCAL_BENCH_MAX_REPS);
    int rc = drv_gguf_inspect_file(path, &out->info, err);
    if (rc)
        return rc;
    drv_engine_init_llama();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = p->n_gpu_layers;
    uint64_t t0 = drv_now_ns();
    struct llama_model *lm = llama_model_load_from_file(path, mp);
    if (lm == NULL) {
        const char *why = drv_engine_last_llama_error();
        return drv_err_set(err, DRV_EFORMAT, "llama.cpp could not load %s: %s", path,
                           why[0] ? why : "no reason given");
    }
    out->load_ms = (double)(drv_now_ns() - t0) / 1e6;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(p->n_prompt > p->n_gen + 1 ? p->n_prompt : p->n_gen + 1) + 16;
    cp.n_batch = (uint32_t)p->n_batch;
    cp.n_ubatch = (uint32_t)p->n_batch;
    cp.n_seq_max = 1;
    out->n_threads = p->n_threads > 0 ? p->n_threads : drv_physical_cores();
    cp.n_threads = cp.n_threads_batch = out->n_threads;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(lm, cp);
    if (ctx == NULL) {
        llama_model_free(lm);
        return drv_err_set(err, DRV_ENOMEM, "llama.cpp could not create a context for %s", path);
    }
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(lm));
    unsigned seed = 42;
    /* warm-up: caches, thread pools, repacked weights */
    double w1 =
        timed_decode(ctx, n_vocab, p->n_prompt < 32 ? p->n_prompt : 32, false, p->n_batch, &seed);
    double w2 = timed_decode(ctx, n_vocab, 4, true, p->n_batch, &seed);
    rc = w1 < 0 || w2 < 0 ? DRV_EUPSTREAM : 0;
    for (int r = 0; rc == 0 && r < p->reps; r++) {
        double pp = timed_decode(ctx, n_vocab, p->n_prompt, false, p->n_batch, &seed);
        double tg = timed_decode(ctx, n_vocab, p->n_gen, true, p->n_batch, &seed);
        if (pp <= 0 || tg <= 0) {
            rc = DRV_EUPSTREAM;
            break;
        }
        out->pp_tps[r] = p->n_prompt / pp;
        out->tg_tps[r] = p->n_gen / tg;
        out->reps = r + 1;
    }
    if (rc)
        drv_err_set(err, rc, "llama_decode failed while measuring %s", path);
    llama_free(ctx);
    llama_model_free(lm);
    return rc;
}
