/* engine — the embedded llama.cpp node. The only module that includes llama.h.
 *
 * A registry of named GGUF models; each loaded model has one scheduler thread
 * that owns its llama_context and runs continuous batching over N slots.
 * Exposed to the rest of drover as a struct drv_backend (backend/backend.h). */
#ifndef DRV_ENGINE_H
#define DRV_ENGINE_H

#include "backend/backend.h"
#include "base/base.h"
#include "model/model.h"

#include <stdint.h>

struct drv_engine_params {
    int n_parallel;        /* slots per loaded model; default 4 */
    uint32_t n_ctx;        /* context tokens per slot; 0 = min(model's, 4096) */
    int n_threads;         /* generation threads; 0 = physical cores */
    int n_threads_batch;   /* prompt threads; 0 = n_threads */
    uint32_t n_batch;      /* tokens per decode step (prompt chunk budget); default 512 */
    int max_loaded;        /* models loaded at once, least recently used evicted; default 2 */
    int max_queue;         /* queued requests per model beyond the slots; default 64 */
    int64_t keep_alive_ms; /* default keep_alive; default 5 minutes; < 0 = forever */
    int n_gpu_layers;      /* layers offloaded to GPUs; -1 (default) = as many as fit the
                              first GPU's free memory (drover's estimate); 0 = CPU only */
    int kv_type;           /* enum ggml_type of the KV cache: GGML_TYPE_F16 (default),
                              GGML_TYPE_Q8_0 or GGML_TYPE_Q4_0 (these turn flash attention on) */
};

struct drv_engine_params drv_engine_default_params(void);
/* Parses "f16", "q8_0", "q4_0" into an engine kv_type; false for anything else. */
bool drv_engine_parse_kv_type(const char *s, int *out);
/* Physical CPU cores of this machine (hwloc). */
int drv_physical_cores(void);

/* One compute device as llama.cpp's ggml sees it (a ggml backend device). */
struct drv_engine_device {
    char name[64];         /* ggml's device name: "CPU", "Vulkan0", "CUDA0", ... */
    char description[128]; /* the device's own words, e.g. the GPU's marketing name */
    char type[8];          /* "cpu", "gpu", "igpu" (integrated GPU) or "accel" */
    uint64_t memory_total; /* bytes; for the CPU device, system RAM */
    uint64_t memory_free;  /* bytes */
};
/* Fills out (at most cap entries) with every ggml backend device, after
 * initialising llama.cpp's backends. Returns how many devices there are (which
 * can be more than cap). */
int drv_engine_devices(struct drv_engine_device *out, int cap);

/* Measures the memory bandwidth of the ggml device called name ("CUDA0",
 * "Vulkan0", "ROCm0", also "CPU") through llama.cpp's backend API, no vendor
 * API: two f32 tensors in the device's own buffer are copied back and forth by
 * a graph computed on the device's backend, one warm-up pass, then passes for
 * about `seconds`; the best pass counts. bytes: both tensors together; 0 =
 * min(512 MiB, an eighth of the device's free memory).
 *
 * *gbps (1e9 bytes/s) counts the bytes read plus the bytes written, as spec
 * sheets and CUDA's bandwidthTest do: it stands for the device memory's read
 * bandwidth, which a copy shares with its writes on the same bus.
 *
 * DRV_ENOENT: no such device; DRV_EINVAL: seconds <= 0, bytes below 64 MiB
 * (it would measure a cache), or not enough free memory (the message says how
 * much there is); DRV_ENOMEM: the device refused the buffer; DRV_EIO: the
 * backend does not start or cannot run the copy. *gbps is -1 on error. */
int drv_engine_device_bandwidth(const char *name, double seconds, uint64_t bytes, double *gbps,
                                struct drv_err *err);

struct drv_engine;

/* Creates an engine with no models. Initialises llama.cpp's backends once per
 * process and routes its log into drover's. Caller frees with drv_engine_free. */
struct drv_engine *drv_engine_new(const struct drv_engine_params *params, struct drv_err *err);
/* Unloads every model (cancelling running requests, which get their terminal
 * event) and frees the engine. */
void drv_engine_free(struct drv_engine *e);

/* Registers the GGUF file at path under name (":latest" is implied when name
 * has no tag). The file is inspected (not loaded) now: a missing or corrupt file
 * fails here with a clear message. Names are unique: DRV_EINVAL on a duplicate. */
int drv_engine_add_model(struct drv_engine *e, const char *name, const char *path,
                         struct drv_err *err);
/* Registers every *.gguf in dir (not recursive) under its file stem. Files
 * that fail inspection are skipped with a warning. Returns the count added. */
int drv_engine_add_dir(struct drv_engine *e, const char *dir, struct drv_err *err);
/* Registers the models of an Ollama store (dir = ~/.ollama/models or
 * $OLLAMA_MODELS) under their Ollama names, read-only. Returns the count added. */
int drv_engine_add_ollama_store(struct drv_engine *e, const char *dir, struct drv_err *err);

/* Makes alias (":latest" implied) another name of the registered model target.
 * DRV_ENOENT when target is not registered, DRV_EINVAL when alias is taken. */
int drv_engine_add_alias(struct drv_engine *e, const char *alias, const char *target,
                         struct drv_err *err);

/* The engine as a backend; valid until drv_engine_free. */
struct drv_backend *drv_engine_backend(struct drv_engine *e);

/* Live counters for /metrics. */
struct drv_engine_metrics {
    uint64_t requests_total;
    uint64_t prompt_tokens_total;
    uint64_t generated_tokens_total;
    int busy_slots;
    int queued;
    int loaded_models;
};
void drv_engine_metrics(struct drv_engine *e, struct drv_engine_metrics *out);

/* The same, per registered model. */
struct drv_engine_model_metrics {
    char name[128];
    uint64_t requests, prompt_tokens, generated_tokens;
    uint64_t loads;     /* times loaded (more than once: unloaded and loaded again) */
    uint64_t truncated; /* prompts cut to fit the context */
    int busy_slots, queued;
    bool loaded;
};
/* Fills up to cap entries; returns how many models there are. */
int drv_engine_model_metrics(struct drv_engine *e, struct drv_engine_model_metrics *out, int cap);

/* ---- in-process speed (engine/localbench.c): `drover bench --local` ---- */

#define DRV_LOCAL_BENCH_MAX_REPS 100

struct drv_local_bench_params {
    int n_prompt;     /* prompt tokens per pp run (random tokens); default 512 */
    int n_gen;        /* generated tokens per tg run; default 128 */
    int reps;         /* timed repetitions after one warm-up; default 5 */
    int n_threads;    /* 0 = physical cores */
    int n_gpu_layers; /* -1 = all */
    int n_batch;      /* default 512 */
};

struct drv_local_bench_result {
    struct drv_gguf_info info; /* the file */
    double load_ms;
    int n_threads;
    int reps; /* repetitions measured */
    double pp_tps[DRV_LOCAL_BENCH_MAX_REPS];
    double tg_tps[DRV_LOCAL_BENCH_MAX_REPS];
};

struct drv_local_bench_params drv_local_bench_default_params(void);
/* Loads the GGUF at path and measures pp and tg like llama-bench. */
int drv_engine_bench_local(const char *path, const struct drv_local_bench_params *p,
                           struct drv_local_bench_result *out, struct drv_err *err);

/* ---- text helpers (engine/text.c), exposed for tests ---- */

/* Bytes of s[0..len) that form complete UTF-8 sequences (an incomplete trailing
 * sequence is held back until the next token completes it). */
size_t drv_utf8_complete_len(const char *s, size_t len);

/* Looks for stop strings in text[0..len). Returns the number of bytes that can be
 * emitted now. *stopped is set when a stop string was found (the returned length
 * then ends right before it). Without a match, a tail that could be the start of
 * a stop string is held back. */
size_t drv_stop_scan(const char *text, size_t len, const char *const *stops, size_t n_stops,
                     bool *stopped);

/* Compiles a JSON Schema (JSON text) to a llama.cpp GBNF grammar whose start
 * rule is "root", appended to out (engine/grammar.c has the supported subset;
 * unsupported keywords accept any JSON value there). DRV_EINVAL with a message
 * for a schema that is not JSON or has an unresolvable $ref. */
int drv_json_schema_to_gbnf(const char *schema, struct drv_buf *out, struct drv_err *err);

/* Splitting a thinking model's output: text between <think> and </think> at the
 * start of the answer is reasoning, the rest is the answer. */
struct drv_think_state {
    bool enabled;    /* the model thinks and the request did not turn it off */
    bool in_think;   /* inside <think>...</think> */
    bool saw_answer; /* answer text has started: no more <think> expected */
};

/* Emits the text of text[0..len) that can be emitted now: reasoning as
 * DRV_EV_THINKING, answer as DRV_EV_TOKEN (through emit), holding back partial
 * tags, partial stop strings and incomplete UTF-8 unless final. Stops at a stop
 * string in the answer (*stopped, the rest is dropped). Returns the bytes
 * consumed; *cancel is set when emit returned nonzero. */
size_t drv_text_flush(struct drv_think_state *st, const char *text, size_t len, bool final,
                      const char *const *stops, size_t n_stops, bool *stopped,
                      int (*emit)(void *ud, enum drv_ev_kind kind, const char *p, size_t n),
                      void *ud, int *cancel);

/* True when text (a templated prompt) ends with an open <think> tag, blanks
 * after it allowed: the chat template opened the reasoning block itself (as
 * the templates of Ring, DeepSeek-R1 distills and Qwen3 thinking models do),
 * so the model's first words are reasoning. */
bool drv_think_opened(const char *text, size_t len);

#endif
