/* engine internals: shared by the engine's own .c files only. */
#ifndef DRV_ENGINE_INT_H
#define DRV_ENGINE_INT_H

#include "engine/engine.h"
#include "model/model.h"

#include <limits.h>
#include <llama.h>
#include <pthread.h>
#include <stdatomic.h>

/* A request as the engine keeps it: a deep copy, owned by the engine from
 * generate() until its terminal event. */
struct drv_job {
    struct drv_job *next;
    enum drv_gen_kind kind;
    char *prompt, *system, *suffix;
    bool raw;
    struct drv_chat_msg *messages; /* strings owned */
    size_t n_messages;
    struct drv_sampling sampling;
    int32_t num_predict;
    char **stop;
    size_t n_stop;
    enum drv_format format;
    char *grammar; /* GBNF compiled from the request's format schema, NULL = none */
    int think;
    bool truncate; /* too long: keep the end (generation) / cut (embeddings) */
    int64_t keep_alive_ms;
    atomic_bool *cancel;
    drv_gen_sink sink;
    void *sink_ud;
    uint64_t t_arrival;
    uint64_t load_ns;
    /* embedding jobs (embed_cb != NULL): the inputs, answered by embed_cb */
    char **inputs;
    size_t n_inputs;
    drv_embed_cb embed_cb;
    void *embed_ud;
};

enum drv_slot_state { DRV_SLOT_IDLE, DRV_SLOT_PROMPT, DRV_SLOT_GEN };

struct drv_slot {
    int seq;
    enum drv_slot_state state;
    struct drv_job *job;
    llama_token *prompt;
    int n_prompt, n_fed;
    int n_cached;      /* prompt tokens reused from the previous request's KV */
    llama_token *hist; /* tokens in this sequence's KV cache, in order */
    int n_hist, cap_hist;
    int n_past;
    int n_gen;
    llama_token last;
    int logits_idx; /* index in the current batch, -1 = none */
    struct llama_sampler *smpl;
    struct drv_buf pending; /* generated text not yet emitted */
    struct drv_think_state think;
    const char *model_name; /* for events */
    uint64_t t_start, t_prompt_done, t_last;
};

enum drv_model_state { DRV_MODEL_UNLOADED, DRV_MODEL_LOADING, DRV_MODEL_READY };

struct drv_emodel {
    char name[128];
    char path[PATH_MAX];
    struct drv_gguf_info info;
    int64_t mtime;
    /* guarded by engine->mu */
    enum drv_model_state state;
    bool thread_running;
    bool stop;
    pthread_t thread;
    pthread_cond_t cond;
    struct drv_job *q_head, *q_tail;
    struct drv_job *eq_head; /* embedding jobs taken from the queue */
    struct drv_job *cq_head; /* queued jobs whose client cancelled, to be ended */
    int n_queued;
    int n_active;
    uint64_t last_used_ns;
    int64_t keep_alive_ms; /* from the most recent request */
    int64_t expires_at_ms; /* wall clock; 0 = never */
    uint32_t n_ctx_slot;
    atomic_uint_fast64_t requests, prompt_tokens, generated_tokens; /* for /metrics */
    atomic_uint_fast64_t loads;                                     /* times the model was loaded */
    atomic_uint_fast64_t truncated; /* prompts cut to fit the context (truncate: true) */
    uint64_t size_resident;
    uint64_t size_vram;
    /* owned by the scheduler thread */
    struct llama_model *lm;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    struct drv_slot *slots;
    int n_slots;
    char *tmpl;                 /* chat template text, NULL = none */
    struct llama_context *ectx; /* embeddings context, made on first use */
    struct drv_engine *engine;
};

struct drv_engine {
    struct drv_engine_params p;
    pthread_mutex_t mu;
    struct drv_emodel **models;
    int n_models, cap_models;
    struct drv_alias {
        char name[128];
        struct drv_emodel *target;
    } * aliases;
    int n_aliases;
    struct drv_backend backend;
    bool closing;
};

void *drv_sched_main(void *arg); /* sched.c: a model's scheduler thread */
void drv_job_free(struct drv_job *j);
/* Sends a terminal error to a job and frees it. Call without engine->mu held. */
void drv_job_fail(struct drv_job *j, const char *model, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int64_t drv_wall_ms(void);
/* With e->mu held: while more models are loaded than max_loaded, asks the least
 * recently used idle one to unload. */
void drv_engine_evict_over_limit(struct drv_engine *e);
void drv_engine_model_metrics_of(const struct drv_emodel *m, struct drv_engine_model_metrics *out);
/* Initialises llama.cpp's backends and log routing once per process. */
void drv_engine_init_llama(void);
/* The last error line llama.cpp logged on this thread ("" when none). */
const char *drv_engine_last_llama_error(void);

#endif
