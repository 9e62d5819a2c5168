/* backend — the one seam: anything that answers generation requests.
 *
 * The embedded llama.cpp engine, each upstream node, the fleet router and the
 * brain are backends. The HTTP API layer decodes a wire request into a
 * struct drv_gen_request, calls ops->generate, and encodes the events it gets
 * back; it never knows which backend it talks to.
 *
 * generate() is asynchronous: it queues the request and returns at once. Events
 * are delivered to the sink on a backend thread, in order, and exactly one
 * terminal event (DRV_EV_DONE or DRV_EV_ERROR) ends every accepted request; after
 * it the backend never touches the request or the sink's user data again. A sink
 * that returns nonzero cancels the request: the backend frees its slot and sends
 * the terminal event (DONE with done_reason "cancel") without more tokens.
 * Setting *req->cancel from any thread has the same effect, also for a request
 * that is still queued. generate() copies what it needs from req: the caller
 * may free req and everything it points to (but not *req->cancel) as soon as
 * generate() returns. */
#ifndef DRV_BACKEND_H
#define DRV_BACKEND_H

#include "base/base.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum drv_gen_kind {
    DRV_GEN_COMPLETE, /* prompt -> continuation (Ollama /api/generate, OpenAI /v1/completions) */
    DRV_GEN_CHAT      /* messages -> assistant message (through the chat template) */
};

enum drv_format {
    DRV_FORMAT_TEXT,  /* unconstrained */
    DRV_FORMAT_JSON,  /* any JSON value (object) */
    DRV_FORMAT_SCHEMA /* JSON constrained by format_schema */
};

struct drv_chat_msg {
    const char *role;    /* "system" | "user" | "assistant" | "tool" */
    const char *content; /* never NULL ("" when absent) */
};

/* Sampling and length knobs. Values < 0 (or NaN for floats) mean "the model's /
 * drover's default". Units are the Ollama option's. */
struct drv_sampling {
    float temperature;       /* 0 = greedy; default 0.8 */
    int32_t top_k;           /* default 40; 0 = off */
    float top_p;             /* default 0.9; 1 = off */
    float min_p;             /* default 0.0 */
    int64_t seed;            /* < 0 = random */
    float repeat_penalty;    /* default 1.1; 1 = off */
    int32_t repeat_last_n;   /* default 64; -1 = context size; < -1 = default */
    float presence_penalty;  /* default 0 */
    float frequency_penalty; /* default 0 */
};

/* A caller that waits for a request's events on a thread of its own (an HTTP
 * connection's) may lend it: a backend whose work for the request can run in
 * steps (relaying another server's answer) calls lend(lend_ud, fn, ud), from
 * inside generate() on the caller's thread or from fn itself, and the caller's
 * thread then calls fn(ud) repeatedly while it waits, instead of the backend
 * handing the work to a thread of its own. fn does a bounded step (waiting at
 * most tens of milliseconds), returns nonzero while there is more, 0 when done;
 * it is run to its end even when the client leaves (with the cancel flag set).
 * The semantics are drv_http_stream_set_pump's. */
typedef void (*drv_gen_lend_fn)(void *lend_ud, int (*fn)(void *ud), void *ud);

struct drv_gen_request {
    enum drv_gen_kind kind;
    const char *model; /* as the client named it ("stories260K", "qwen2.5:3b") */

    /* DRV_GEN_COMPLETE */
    const char *prompt; /* never NULL */
    const char *system; /* NULL = none */
    const char *suffix; /* NULL = none (fill-in-the-middle) */
    bool raw;           /* true: prompt is sent as is, no template */

    /* DRV_GEN_CHAT */
    const struct drv_chat_msg *messages;
    size_t n_messages;

    struct drv_sampling sampling;
    int32_t num_predict;     /* max tokens to generate; < 0 = until stop or context end */
    int32_t num_ctx;         /* requested context; <= 0 = the model's default */
    const char *const *stop; /* stop strings, never emitted */
    size_t n_stop;
    enum drv_format format;
    const char *format_schema; /* JSON text of the schema when format == SCHEMA */
    int think;                 /* -1 = model default, 0 = off, 1 = on */
    bool truncate;             /* a prompt longer than the context keeps its end instead
                                  of failing with 400; default false */
    int64_t keep_alive_ms;     /* how long the model stays loaded after this request;
                                  INT64_MIN = server default, 0 = unload now, < 0 = forever */
    atomic_bool *cancel;       /* optional; set true to cancel from any thread */
    bool whole;                /* the client takes the answer in one piece (not streamed): a
                                  backend may fetch it that way; events are the same */
    const char *route;         /* fleet routing for this request (header X-Drover-Route):
                                  "fastest" | "least-busy" | "round-robin" | "priority" |
                                  "pinned=NODE"; NULL = the gateway's policy. Backends
                                  that do not route ignore it. */
    drv_gen_lend_fn lend;      /* optional: the caller's thread, lent (see drv_gen_lend_fn) */
    void *lend_ud;
};

/* Fills *r with "default" for every knob (see the field comments). */
void drv_gen_request_init(struct drv_gen_request *r);

enum drv_ev_kind {
    DRV_EV_TOKEN,    /* answer text */
    DRV_EV_THINKING, /* reasoning text of a thinking model */
    DRV_EV_DONE,     /* terminal: stats */
    DRV_EV_ERROR     /* terminal: status + message */
};

struct drv_gen_stats {
    uint64_t total_ns;       /* request accepted -> done */
    uint64_t load_ns;        /* time spent loading the model for this request */
    uint64_t prompt_ns;      /* prompt processing */
    uint64_t eval_ns;        /* generation (first to last generated token) */
    int32_t prompt_tokens;   /* tokens evaluated for the prompt */
    int32_t eval_tokens;     /* tokens generated */
    const char *done_reason; /* "stop" | "length" | "cancel" */
    const char *warning;     /* NULL, or a short note the gateway attaches to the response
                                ("thinking-exhausted": the token budget ended inside the
                                reasoning and the answer is empty) */
};

struct drv_gen_event {
    enum drv_ev_kind kind;
    const char *text; /* TOKEN / THINKING: UTF-8, not NUL-terminated, len bytes */
    size_t len;
    struct drv_gen_stats stats; /* DONE */
    int status;                 /* ERROR: HTTP status (400, 404, 500, 503, ...) */
    const char *message;        /* ERROR: one line */
    const char *model;          /* resolved model name (every event) */
    const char *node;           /* the fleet node that serves it; NULL = this process */
};

/* Returns nonzero to cancel the request. Called on a backend thread. */
typedef int (*drv_gen_sink)(void *ud, const struct drv_gen_event *ev);

/* What a backend can serve. */
struct drv_model_desc {
    char name[128];          /* "stories260K:latest" */
    char model[128];         /* same as name unless aliased */
    char digest[72];         /* sha256 hex of the file, or "" when not computed */
    char family[32];         /* general.architecture */
    char parameter_size[16]; /* "292.8K", "7.6B" */
    char quantization[24];   /* "Q4_K_M" */
    uint64_t size;           /* file bytes */
    int64_t modified_at;     /* unix seconds */
    /* loaded state (list_running) */
    uint64_t size_resident; /* bytes resident (weights + kv + compute) */
    uint64_t size_vram;     /* of which on GPU devices */
    uint32_t context_length;
    int64_t expires_at; /* unix seconds; 0 = never */
    uint32_t embedding_length;
    bool has_chat_template;
    /* shape (from the GGUF metadata) */
    uint64_t n_params;
    uint32_t n_ctx_train;
    uint32_t block_count;
    uint32_t head_count;
    uint32_t head_count_kv;
    /* more of the shape, for /api/show's model_info (0 = absent: not sent) */
    uint32_t key_length, value_length;         /* attention.key_length / value_length */
    uint32_t key_length_swa, value_length_swa; /* sliding layers' (gemma4) */
    uint32_t feed_forward_length;
    uint32_t sliding_window; /* attention.sliding_window */
    uint32_t expert_count, expert_used_count, expert_feed_forward_length;
    uint32_t vocab_size;
    char node[64]; /* fleet: the node that has it ("" = this process) */
};

/* Embeddings: every input becomes one L2-normalised vector. */
struct drv_embed_request {
    const char *model;
    const char *const *inputs; /* n_inputs strings; copied by embed() */
    size_t n_inputs;
    bool truncate;         /* cut inputs longer than the context instead of failing */
    int64_t keep_alive_ms; /* as in drv_gen_request */
};

struct drv_embed_result {
    const char *model;
    int status;          /* 200, or the HTTP status of the failure */
    const char *message; /* failure: one line */
    const float *data;   /* n rows of dim floats; valid during the callback only */
    size_t n, dim;
    int32_t prompt_tokens;
    uint64_t total_ns, load_ns;
};

/* Called once per accepted embed request, on a backend thread. */
typedef void (*drv_embed_cb)(void *ud, const struct drv_embed_result *r);

struct drv_backend;

struct drv_backend_ops {
    /* Queues a request (see the top of this file). Returns 0 when accepted, or a
     * negative drv_errcode with err set and no event sent: DRV_ENOENT (unknown
     * model), DRV_EINVAL (bad request), DRV_ETOOBIG (queue full: 503). */
    int (*generate)(struct drv_backend *b, const struct drv_gen_request *req, drv_gen_sink sink,
                    void *sink_ud, struct drv_err *err);
    /* Queues an embedding request; cb is called exactly once when it is accepted
     * (return 0). Immediate failures as for generate(). */
    int (*embed)(struct drv_backend *b, const struct drv_embed_request *req, drv_embed_cb cb,
                 void *cb_ud, struct drv_err *err);
    /* Fills up to cap descriptions; returns how many there are (may be > cap). */
    int (*list_models)(struct drv_backend *b, struct drv_model_desc *out, int cap);
    /* Same, for loaded models only. */
    int (*list_running)(struct drv_backend *b, struct drv_model_desc *out, int cap);
    /* Optional (NULL: /api/show is made from list_models' description): the
     * model's /api/show answer (Ollama's JSON) from where the model lives, into
     * out. DRV_ENOENT when nothing there can say (then the description is used). */
    int (*show)(struct drv_backend *b, const char *model, bool verbose, struct drv_buf *out,
                struct drv_err *err);
};

struct drv_backend {
    const struct drv_backend_ops *ops;
    void *impl; /* the implementation's state */
};

/* Every model b lists (running: the loaded ones) into a heap array *out (the
 * caller frees it; never NULL on success). Returns how many, or DRV_ENOMEM. */
int drv_backend_list(struct drv_backend *b, bool running, struct drv_model_desc **out);

#endif
