/* doctor — finds what is misconfigured on this machine and on drover, Ollama and
 * llama-server nodes, shows the evidence and gives the fix.
 *
 * Two halves, so that every check can be tested without a network:
 *   facts.c   asks each node what it reports (GET /api/version, /api/ps,
 *             /api/tags, POST /api/show, GET /api/drover/hw, /api/drover/status,
 *             /props, /v1/models), runs two short probes (a speed probe and a
 *             thinking-budget probe), reads the node's bench baseline from the
 *             history and fills a struct drv_doctor_node. The parsers of each
 *             answer are public so that tests feed them recorded answers.
 *   checks.c  the table of checks: pure functions from the facts of the fleet
 *             to findings (id, severity, title, evidence with its source, fix),
 *             or to "not checked: why" where a node kind does not report a
 *             fact.
 * report.c sorts and prints (text or JSON).
 *
 * Every struct here is a plain value (no heap pointers). */
#ifndef DRV_DOCTOR_H
#define DRV_DOCTOR_H

#include "base/base.h"
#include "bench/bench.h"
#include "model/model.h"
#include "probe/probe.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- facts ------------------------------------------------------------------ */

#define DRV_DOCTOR_MAX_MODELS    16
#define DRV_DOCTOR_MAX_REPS      8
#define DRV_DOCTOR_MAX_BASE_REPS 64

/* One loaded model: GET /api/ps, completed by /api/tags and POST /api/show. */
struct drv_doctor_model {
    char name[128];
    uint64_t size;           /* bytes resident (/api/ps size) */
    uint64_t size_vram;      /* of which on GPUs (/api/ps size_vram) */
    uint32_t context_length; /* tokens per sequence (/api/ps); 0 unknown */
    uint64_t file_size;      /* weights on disk (/api/tags size); 0 unknown */
    char quant[24];          /* details.quantization_level; "" unknown */
    /* POST /api/show */
    bool have_show;
    char arch[32];     /* model_info general.architecture */
    uint64_t n_params; /* general.parameter_count */
    /* model_info's <arch>.* keys read as the GGUF reader reads a file's
     * (drv_hparams_read): per-layer kv heads, sliding window, experts. Ollama
     * sends arrays as null unless asked to be verbose: then every layer has
     * the scalar (or n_head) kv heads and the architecture's sliding pattern.
     * From llama-server's GET /v1/models meta only n_embd, n_ctx_train and
     * n_vocab. */
    struct drv_hparams hp;
    int num_thread; /* Modelfile PARAMETER num_thread; 0 = not set */
    int num_gpu;    /* Modelfile PARAMETER num_gpu; -1 = not set */
    bool thinking;  /* capabilities has "thinking" */
};

/* GET /api/drover/status (cmd/serve.c documents it). */
struct drv_doctor_status {
    char version[32];
    char llama[96];     /* llama.cpp release */
    int threads;        /* compute threads */
    bool threads_set;   /* by --threads or drover.conf (else: physical cores) */
    int physical_cores; /* as the node counted them */
    int parallel;       /* slots per model; 0 = as many as fit */
    uint32_t ctx;       /* tokens per slot; 0 = the model's, at most 4096 */
    char kv_type[8];    /* "f16", "q8_0", "q4_0" */
    bool flash_attn;
    int gpu_layers; /* -1 = as many as fit */
    int max_loaded;
    int64_t keep_alive_ms; /* -1 = forever */
};

/* GET /props of llama-server. */
struct drv_doctor_props {
    uint32_t n_ctx; /* default_generation_settings.n_ctx (per slot) */
    int total_slots;
    char build_info[64]; /* "b6123-abcdef0" */
    char model_path[256];
};

/* The speed probe: one warm-up, then short raw generations of one model. */
struct drv_doctor_speed {
    int state;     /* 0 not run, 1 measured, -1 failed */
    char why[256]; /* not run / failed: why */
    char model[128];
    double tg[DRV_DOCTOR_MAX_REPS]; /* tokens/s of each repetition */
    int n;
    int gen_tokens; /* asked per repetition */
    char source[8]; /* "server" (its own timings) or "client" (our clock) */
};

/* The bench baseline of this node and model (store). */
struct drv_doctor_baseline {
    int state;        /* 0 none / not looked up, 1 found */
    char why[256];    /* none: why */
    char db[256];     /* the history file */
    char target[256]; /* as the history names the node */
    char model[128];
    int64_t ts;                          /* unix seconds */
    double tg[DRV_DOCTOR_MAX_BASE_REPS]; /* tg of each repetition at 1 stream */
    int n;
};

/* The thinking-budget probe: a short chat with a small token budget, and when
 * its answer is empty, the same with thinking turned off. */
struct drv_doctor_think {
    int state; /* 0 not run, 1 answered, -1 failed */
    char why[256];
    char model[128];
    char route[32];       /* "POST /api/chat" or "POST /v1/chat/completions" */
    int budget;           /* num_predict / max_tokens asked */
    int content_len;      /* bytes of answer */
    int thinking_len;     /* bytes of reasoning */
    int eval_count;       /* tokens generated; -1 unknown */
    char done_reason[16]; /* done_reason / finish_reason */
    int off_state;        /* the retry with thinking off: 0 not run, 1 answered, -1 failed */
    int off_content_len;
    char off_done_reason[16];
};

struct drv_doctor_node {
    /* what the config says (or the command line) */
    char name[64];
    char url[256];                   /* "" for this machine */
    enum drv_bench_kind config_kind; /* kind = in the config; AUTO = detect */
    enum drv_bench_kind kind;        /* what it answers like (AUTO: unknown) */
    bool local;                      /* its URL names this machine (loopback) */
    bool optional;                   /* not configured, only tried: silence when it is not there */
    bool gateway;                    /* a drover gateway whose own engine is node "local": of its
                                        listings only what is marked "local" counts, and it is not
                                        probed (the gateway may route a probe to any node) */
    char hw_file[256];               /* [node] hw = FILE: its machine's `drover hw --json` */
    char api_key[512];               /* from [node] api_key_file */
    /* what was found */
    bool reachable;
    char error[256]; /* !reachable: the first failure, with its URL */
    bool timed_out;  /* the time limit ended the collection early */
    double elapsed_s;
    char version[64]; /* the engine's version: drover's, Ollama's, llama-server's build */
    bool have_hw;
    struct drv_hw hw;
    char hw_from[96];   /* where hw came from ("GET /api/drover/hw", ...) */
    bool hw_after_load; /* hw's free memory was read with the models loaded */
    char bw_from[96];   /* where hw.memory.bandwidth_gbps came from ("" = hw_from) */
    bool have_status;
    struct drv_doctor_status status;
    bool have_props;
    struct drv_doctor_props props;
    bool have_ps; /* it reports loaded models (drover, Ollama) */
    struct drv_doctor_model models[DRV_DOCTOR_MAX_MODELS];
    int n_models;          /* loaded (at most DRV_DOCTOR_MAX_MODELS kept) */
    int n_available;       /* models it can serve (/api/tags, /v1/models); -1 unknown */
    char first_model[128]; /* the first of them ("" none) */
    char hsa_override[32]; /* this machine only: HSA_OVERRIDE_GFX_VERSION */
    struct drv_doctor_speed speed;
    struct drv_doctor_baseline baseline;
    struct drv_doctor_think think;
    /* drover's GET /metrics, per model: requests, loads, truncated prompts */
    bool have_metrics;
    struct drv_doctor_counts {
        char model[128];
        uint64_t requests, loads, truncated;
    } counts[DRV_DOCTOR_MAX_MODELS];
    int n_counts;
};

/* ---- parsers of what nodes answer (each returns 0 or DRV_EFORMAT with err) ---- */

/* drover's GET /metrics: per-model requests, loads and truncated prompts into
 * n->counts (have_metrics). */
int drv_doctor_parse_metrics(struct drv_doctor_node *n, const char *body, size_t len,
                             struct drv_err *err);
/* GET /api/drover/status into n->status (have_status). */
int drv_doctor_parse_status(struct drv_doctor_node *n, const char *body, size_t len,
                            struct drv_err *err);
/* GET /api/ps (drover, Ollama) into n->models (have_ps); of a gateway's, only
 * the models whose "drover_node" is "local". */
int drv_doctor_parse_ps(struct drv_doctor_node *n, const char *body, size_t len,
                        struct drv_err *err);
/* GET /api/tags: file sizes of the loaded models, n_available. */
int drv_doctor_parse_tags(struct drv_doctor_node *n, const char *body, size_t len,
                          struct drv_err *err);
/* POST /api/show of model m. */
int drv_doctor_parse_show(struct drv_doctor_model *m, const char *body, size_t len,
                          struct drv_err *err);
/* GET /props of llama-server into n->props (have_props) and n->version. */
int drv_doctor_parse_props(struct drv_doctor_node *n, const char *body, size_t len,
                           struct drv_err *err);
/* GET /v1/models: n_available; llama-server's "meta" (size, n_ctx) of the first
 * model becomes a loaded model (llama-server serves the one it loaded). */
int drv_doctor_parse_models(struct drv_doctor_node *n, const char *body, size_t len,
                            struct drv_err *err);
/* The answer of the thinking probe (non-streaming): Ollama /api/chat
 * {message{content, thinking}, done_reason, eval_count} or OpenAI chat
 * {choices[0]{message{content, reasoning_content}, finish_reason}, usage}.
 * off: the retry with thinking off (fills off_*). */
int drv_doctor_parse_chat(struct drv_doctor_think *t, bool openai, bool off, const char *body,
                          size_t len, struct drv_err *err);

/* ---- collecting ------------------------------------------------------------- */

/* Below this size, per-token overhead and not memory bandwidth sets generation
 * speed: the roofline does not apply (and this machine's bandwidth is not
 * measured for it). */
#define DRV_DOCTOR_ROOFLINE_MIN_BYTES (100ull << 20)

struct drv_doctor_params {
    double node_seconds;      /* time limit per node (its own requests, probes included);
                                 default 60 */
    bool probes;              /* run the speed and thinking probes; default true */
    const char *model;        /* model to probe; NULL = the loaded one, else the only one */
    int think_budget;         /* num_predict of the thinking probe; default 64 */
    int speed_reps;           /* repetitions of the speed probe; default 3 */
    int speed_tokens;         /* tokens per repetition; default 32 */
    const char *db;           /* bench history; NULL = the default path */
    double bandwidth_seconds; /* this machine's bandwidth measurement; default 0.3, 0 = skip */
};
struct drv_doctor_params drv_doctor_default_params(void);

/* Is the host of url this machine (localhost, 127.x, ::1, or its hostname)? */
bool drv_doctor_url_is_local(const char *url);

/* Fills nodes[0] with this machine (its hardware and the
 * HSA_OVERRIDE_GFX_VERSION of this environment) and asks every other node in
 * parallel (each must have name, url and what the config says filled in;
 * nodes on the same host are asked one after another so that their speed
 * probes do not disturb each other). This machine's memory bandwidth is
 * measured at the end, when all probes are done, and only when a loopback
 * node's measured speed needs it (a model of DRV_DOCTOR_ROOFLINE_MIN_BYTES or
 * more). Never fails: what could not be learned is recorded in each node. */
void drv_doctor_collect(struct drv_doctor_node *nodes, int n, const struct drv_doctor_params *p);

/* ---- checks ----------------------------------------------------------------- */

enum drv_doctor_severity { DRV_DOCTOR_PROBLEM, DRV_DOCTOR_WARNING, DRV_DOCTOR_HINT };
/* "problem", "warning", "hint" */
const char *drv_doctor_severity_name(enum drv_doctor_severity s);

struct drv_doctor_finding {
    char id[24]; /* the check's id */
    enum drv_doctor_severity severity;
    char title[200];     /* one line */
    char evidence[1536]; /* lines, each "what was measured (where it came from)" */
    char fix[640];       /* the exact command, config line or setting; may span lines */
};

struct drv_doctor_skip {
    char id[24];
    char why[256];
};

#define DRV_DOCTOR_MAX_FINDINGS 32

/* What the checks found on one node. */
struct drv_doctor_result {
    struct drv_doctor_finding findings[DRV_DOCTOR_MAX_FINDINGS];
    int n_findings;
    struct drv_doctor_skip skipped[DRV_DOCTOR_MAX_FINDINGS]; /* "not checked: why" */
    int n_skipped;
    int n_checked; /* checks that ran on this node's facts (with or without findings) */
};

/* The facts of every node, for checks that compare nodes (engine versions). */
struct drv_doctor_fleet {
    const struct drv_doctor_node *nodes;
    int n;
};

struct drv_doctor_check {
    const char *id;
    const char *summary; /* what it looks for, one line */
    /* Adds findings or "not checked" reasons to out; adds nothing when the
     * node is healthy or the check does not apply to it. Returns true when it
     * looked at the node (counts in n_checked). */
    bool (*run)(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                struct drv_doctor_result *out);
};

/* The fit model (drover fit's) of a model a node has loaded, from what the
 * node reports: the shape from POST /api/show (m->hp, read as drover fit reads
 * a GGUF file, so sliding windows, per-layer kv heads and experts count the
 * same), the bytes estimated from the file size (/api/tags, else /api/ps):
 * the embeddings by the vocabulary, the rest evenly over the blocks, a MoE
 * model's experts by their share of a block's shape. KV bytes are fit's
 * exactly; weights are an estimate. DRV_EINVAL when the shape is unknown or
 * out of range. */
int drv_doctor_fit_model(const struct drv_doctor_model *m, struct drv_fit_model *out);

/* The model's weights in bytes: its file size (/api/tags), else its loaded
 * size (/api/ps); 0 when neither is known. */
uint64_t drv_doctor_model_weights(const struct drv_doctor_model *m);

/* The table, terminated by an entry with id == NULL. */
extern const struct drv_doctor_check drv_doctor_checks[];
const struct drv_doctor_check *drv_doctor_check_find(const char *id);

/* Runs every check on fleet->nodes[i] into out (cleared first) and sorts the
 * findings, most severe first. */
void drv_doctor_run_checks(const struct drv_doctor_fleet *fleet, int i,
                           struct drv_doctor_result *out);

/* ---- report ----------------------------------------------------------------- */

/* Text for people: a summary line, then every node with findings (most severe
 * node first), each finding with its evidence and fix, then healthy nodes in
 * one line each with what could not be checked. */
void drv_doctor_write_text(FILE *f, const struct drv_doctor_node *nodes,
                           const struct drv_doctor_result *results, int n);
/* One JSON document: {"problems", "warnings", "hints", "nodes":[{"name", "url",
 * "kind", "version", "reachable", "findings":[{"id", "severity", "title",
 * "evidence":[lines], "fix"}], "not_checked":[{"check", "why"}]}]}, nodes in
 * the order of the text. Caller frees; NULL when out of memory. */
char *drv_doctor_json(const struct drv_doctor_node *nodes, const struct drv_doctor_result *results,
                      int n);
/* Findings of severity s over all nodes. */
int drv_doctor_count(const struct drv_doctor_result *results, int n, enum drv_doctor_severity s);

#endif
