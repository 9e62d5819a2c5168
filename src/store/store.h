/* store — drover's history: bench runs, node baselines (SQLite, WAL).
 *
 * One file, $XDG_STATE_HOME/drover/drover.db (default
 * ~/.local/state/drover/drover.db). The schema is versioned (PRAGMA
 * user_version) and migrates forward on open; a database from an older drover
 * keeps its data, one from a newer drover is refused with a clear message.
 * A handle is used by one thread at a time. */
#ifndef DRV_STORE_H
#define DRV_STORE_H

#include "base/base.h"

#include <stdbool.h>
#include <stdint.h>

struct drv_store;

/* The default path (see above); returns out. */
char *drv_store_default_path(char *out, size_t out_size);

/* Opens (creating the file and its folder when missing) and migrates. Fails with
 * a one-line message that names the file: DRV_EFORMAT (not SQLite, SQLite but not
 * drover's, corrupt, or from a newer drover), DRV_EIO (cannot create/open, locked
 * by another process for longer than 5 s). Every later call waits up to 5 s for
 * a lock too, then fails with DRV_EIO. Caller frees with drv_store_close. */
int drv_store_open(const char *path, struct drv_store **out, struct drv_err *err);
void drv_store_close(struct drv_store *s);
/* The schema version this drover writes. */
int drv_store_schema_version(void);

/* One repetition of a measurement. Values < 0 mean "not measured". */
struct drv_bench_rep {
    int concurrency; /* streams at once */
    double pp_tps;   /* prompt tokens/s */
    double tg_tps;   /* generated tokens/s (per stream; aggregate = x concurrency) */
    double ttft_ms;  /* time to first token */
    double e2e_ms;   /* request latency */
    int prompt_tokens;
    int gen_tokens;
    char source[8]; /* "server" (server-reported timings) or "client" */
};

/* One bench run of one target and model. */
struct drv_bench_run {
    int64_t id;       /* set by drv_store_add_run */
    int64_t ts;       /* unix seconds; 0 = now */
    char target[256]; /* URL or node name */
    char kind[16];    /* drover | ollama | llama-server | openai | local */
    char engine_version[64];
    char model[128];
    char model_digest[72]; /* digest, or "" */
    uint64_t model_size;   /* bytes, 0 = unknown */
    char quant[24];
    char hw[256];     /* hardware summary of the target, "" when unknown */
    char params[512]; /* JSON of the parameters (-p, -n, reps, concurrency, ...) */
    bool baseline;
    struct drv_bench_rep *reps; /* n_reps entries (owned by the caller on add; by the
                                   store result on list: freed by drv_bench_runs_free) */
    int n_reps;
};

/* Stores a run and its repetitions in one transaction; sets run->id (and ts when
 * 0). With run->baseline, it becomes the baseline of its target+model (an older
 * baseline stops being one). target, kind and model must not be empty
 * (DRV_EINVAL); measurements < 0 (or NaN) are stored as "not measured" and read
 * back as -1. */
int drv_store_add_run(struct drv_store *s, struct drv_bench_run *run, struct drv_err *err);

/* Filters for listing; NULL / "" / 0 = any. */
struct drv_store_filter {
    const char *target;
    const char *model;
    int64_t since; /* unix seconds */
    int limit;     /* newest first; 0 = 100, < 0 is DRV_EINVAL */
};

/* Runs matching f (NULL = all), newest first (by ts, then id), with their
 * repetitions in the order they were added. *out is an array of *n runs (NULL
 * when 0); free with drv_bench_runs_free. */
int drv_store_list_runs(struct drv_store *s, const struct drv_store_filter *f,
                        struct drv_bench_run **out, int *n, struct drv_err *err);
void drv_bench_runs_free(struct drv_bench_run *runs, int n);

/* The baseline run of target+model into *out, with its repetitions; the caller
 * frees them with drv_bench_run_release. Returns 0, or DRV_ENOENT when there is
 * none (*out is then zeroed and needs no release). The database holds at most one
 * baseline per target+model (schema 2). */
int drv_store_get_baseline(struct drv_store *s, const char *target, const char *model,
                           struct drv_bench_run *out, struct drv_err *err);
/* Marks run id as the baseline of its target+model (the older one stops being
 * one). DRV_ENOENT for no such run. */
int drv_store_set_baseline(struct drv_store *s, int64_t id, struct drv_err *err);
/* Frees run->reps and zeroes reps/n_reps; the struct itself is the caller's. */
void drv_bench_run_release(struct drv_bench_run *run);

#endif
