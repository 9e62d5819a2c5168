/* bench — measures a serving node over HTTP the way a user experiences it:
 * prompt processing and generation speed, time to first token, end-to-end
 * latency, over repetitions after a warm-up, at one or more concurrency levels.
 *
 * The target may be a drover node, Ollama, llama-server or any OpenAI-compatible
 * server; the kind is detected from what it answers. Requests run in the calling
 * thread (curl multi); nothing here keeps global state. */
#ifndef DRV_BENCH_H
#define DRV_BENCH_H

#include "base/base.h"
#include "store/store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum drv_bench_kind {
    DRV_BENCH_KIND_AUTO = 0, /* detect */
    DRV_BENCH_KIND_DROVER,
    DRV_BENCH_KIND_OLLAMA,
    DRV_BENCH_KIND_LLAMA_SERVER,
    DRV_BENCH_KIND_OPENAI,
};

/* "drover", "ollama", "llama-server", "openai" ("auto" for AUTO). */
const char *drv_bench_kind_name(enum drv_bench_kind k);
/* Parses the names above; false on anything else. */
bool drv_bench_parse_kind(const char *s, enum drv_bench_kind *out);

#define DRV_BENCH_MAX_LEVELS  16
#define DRV_BENCH_MAX_STREAMS 256
#define DRV_BENCH_MAX_REPS    1000

struct drv_bench_params {
    int prompt_tokens; /* prompt length to aim for, tokens; default 512 */
    int gen_tokens;    /* tokens to generate per request; default 128 */
    int reps;          /* measured repetitions per level after one warm-up; default 5 */
    int levels[DRV_BENCH_MAX_LEVELS]; /* concurrent streams per level; default {1} */
    int n_levels;                     /* default 1 */
    enum drv_bench_kind kind;         /* DRV_BENCH_KIND_AUTO = detect; default AUTO */
    const char *model; /* model to measure; NULL = the target's loaded or only model */
    long timeout_ms;   /* limit of one request, ms; default 600000 */
    uint64_t seed;     /* varies the prompts between runs; default: from time and pid */
};

struct drv_bench_params drv_bench_default_params(void);

/* What a target is and which model is measured on it. */
struct drv_bench_target {
    char url[256]; /* base URL without trailing slash */
    enum drv_bench_kind kind;
    char version[64];        /* engine version it reports, "" when unknown */
    char model[256];         /* the name sent in requests */
    char model_display[128]; /* the name shown (file stem for a path) */
    char digest[72];         /* "" when unknown */
    uint64_t model_size;     /* bytes; 0 when unknown */
    char quant[24];          /* "" when unknown */
    char hw[256];            /* the node's machine in one line (drover nodes), "" unknown */
    char bearer[512];        /* API key sent with every request ("" = none) */
};

/* Detects the kind of the server at url (unless forced != AUTO) and its
 * version, asking with the API key bearer (NULL = none, kept in t for every
 * later request); fills t->url, t->kind, t->version. Returns 0, DRV_EUPSTREAM when it
 * cannot be reached (err: "unreachable: ..."), DRV_ENOENT when it answers like
 * none of the known kinds, DRV_EINVAL for a bad URL. */
int drv_bench_detect(const char *url, const char *bearer, enum drv_bench_kind forced,
                     struct drv_bench_target *t, struct drv_err *err);

/* Chooses the model on a detected target: `want`, else its loaded model, else
 * its only model. Fills t->model, model_display and what is known of digest,
 * size and quantization. DRV_ENOENT when it does not have `want` ("... does not
 * have model X (it has: ...)") or has none / several to choose from. */
int drv_bench_pick_model(struct drv_bench_target *t, const char *want, long timeout_ms,
                         struct drv_err *err);

/* ---- numbers ---------------------------------------------------------------- */

/* Median, min, max and spread ((max - min) / median) of the values >= 0 in v;
 * n == 0 when there are none (then the others are -1). */
struct drv_bench_stat {
    double median, min, max, spread;
    int n;
};
void drv_bench_stat_compute(const double *v, int n, struct drv_bench_stat *out);

/* One stream of one repetition. Rates in tokens/s, times in ms; < 0 = unknown. */
struct drv_bench_sample {
    bool ok;
    double ttft_ms;              /* request start to the first non-empty content chunk */
    double e2e_ms;               /* request start to the end of the response */
    int prompt_tokens;           /* as the server counted them; -1 unknown */
    int gen_tokens;              /* server's count, else content chunks seen */
    double pp_server, tg_server; /* from the server's own timings */
    double pp_client, tg_client; /* from the client's clock */
    char error[256];             /* when !ok */
};

/* One repetition at one concurrency level (means or medians over its streams). */
struct drv_bench_rep_result {
    int concurrency;
    double pp_tps;               /* per stream: server timings when given, else client */
    double tg_tps;               /* per stream, likewise */
    double pp_client, tg_client; /* per stream, client clock */
    double pp_server, tg_server; /* per stream, server timings; -1 when none */
    double ttft_ms, e2e_ms;      /* median over streams */
    double wall_ms;              /* the whole repetition */
    int prompt_tokens;           /* median over streams */
    int gen_tokens;              /* median over streams */
    bool server_timings;
};

/* One concurrency level: its repetitions and their statistics. */
struct drv_bench_level {
    int concurrency;
    struct drv_bench_rep_result *reps; /* n_reps entries, owned */
    int n_reps;
    struct drv_bench_stat pp, tg, tg_client, tg_server, ttft, e2e, prompt_tokens, gen_tokens;
    bool tg_disagree; /* server and client tg medians differ by more than 10 % */
};

enum drv_bench_status {
    DRV_BENCH_OK = 0,      /* every level measured */
    DRV_BENCH_PARTIAL,     /* an error or interrupt after some repetitions */
    DRV_BENCH_FAILED,      /* nothing measured (error says why) */
    DRV_BENCH_UNREACHABLE, /* could not be reached */
    DRV_BENCH_NO_MODEL,    /* does not have the model */
};

/* Everything measured on one target. Release with drv_bench_result_release. */
struct drv_bench_result {
    struct drv_bench_target target;
    enum drv_bench_status status;
    bool interrupted; /* stopped by the cancel flag */
    char error[512];  /* why not OK ("" when OK) */
    struct drv_bench_level levels[DRV_BENCH_MAX_LEVELS];
    int n_levels;    /* levels with at least one repetition */
    int64_t started; /* unix seconds */
};

void drv_bench_result_release(struct drv_bench_result *r);

/* Progress for a status line: what is being done right now. */
typedef void (*drv_bench_progress_fn)(void *ud, const char *url, const char *what);

/* Measures one target: detect, pick the model, warm up, then the repetitions of
 * every level. Always fills r (release it); its status says how far it got.
 * cancel (may be NULL) stops between and inside requests; what was finished is
 * kept. Returns 0 when at least one repetition was measured, else the error. */
int drv_bench_run_target(const char *url, const struct drv_bench_params *p,
                         const atomic_bool *cancel, drv_bench_progress_fn progress,
                         void *progress_ud, struct drv_bench_result *r, struct drv_err *err);

/* ---- pieces, exposed for tests ------------------------------------------------ */

/* Appends a prompt of n_words words to out: a prefix that depends on seed, then
 * words drawn from a varied list by a generator seeded with seed, so different
 * seeds give different prompts (and different first tokens). */
int drv_bench_prompt(struct drv_buf *out, int n_words, uint64_t seed);

/* What one streamed event (an NDJSON line or an SSE data payload) says. */
struct drv_bench_event {
    size_t content_len;            /* bytes of generated text in it */
    bool done;                     /* the final object / finish_reason seen */
    int prompt_tokens, gen_tokens; /* as counted by the server; -1 unknown */
    int pp_tokens;                 /* prompt tokens prompt_ms covers (cached ones left out); -1 */
    double prompt_ms, gen_ms;      /* server's timings; -1 unknown */
    char error[256];               /* an error object ("" when none) */
};

/* Parses one event in the wire format of kind: Ollama NDJSON for drover and
 * Ollama (final object: prompt_eval_count, prompt_eval_duration, eval_count,
 * eval_duration in ns), OpenAI SSE data for the others (usage, and
 * llama-server's timings {prompt_n, prompt_ms, predicted_n, predicted_ms}).
 * Returns 0, DRV_EFORMAT when it is not a JSON object. */
int drv_bench_parse_event(enum drv_bench_kind kind, const char *json, size_t len,
                          struct drv_bench_event *ev, struct drv_err *err);

/* ---- output ----------------------------------------------------------------- */

/* The default table, one row per target and level, a ratio column against the
 * first target when there are several, and notes for targets that failed. */
void drv_bench_write_table(FILE *f, const struct drv_bench_result *rs, int n);
/* One JSON document with every number, including each repetition. Caller frees. */
char *drv_bench_json(const struct drv_bench_result *rs, int n, const struct drv_bench_params *p);
/* CSV: a header line, then one line per target and level. */
void drv_bench_write_csv(FILE *f, const struct drv_bench_result *rs, int n);

/* Fills run (for drv_store_add_run) from one result: target, kind, version,
 * model, parameters (JSON) and every repetition of every level. run->reps is
 * allocated: free it with free(). Returns 0, DRV_ENOENT when r has nothing
 * measured, DRV_ENOMEM. */
int drv_bench_fill_run(const struct drv_bench_result *r, const struct drv_bench_params *p,
                       bool baseline, struct drv_bench_run *run, struct drv_err *err);

/* Compares a run with its baseline (same target+model). Appends one line per
 * metric and concurrency where this run is slower beyond the run-to-run spread
 * (every repetition worse than every baseline repetition, medians >= 20 %
 * apart), e.g. "tg 38.1 tok/s vs baseline 121.0 (-69 %)". Returns how many. */
int drv_bench_compare(const struct drv_bench_run *cur, const struct drv_bench_run *base,
                      struct drv_buf *out);

#endif
