/* store — bench history in SQLite. Every statement is a constant string with bound
 * parameters; the schema moves forward through the migrations below, all pending
 * steps in one transaction, so a database is at one version or the next, never
 * between. */
#include "store/store_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct drv_store {
    sqlite3 *db;
    int busy_ms;
    char path[PATH_MAX];
};

/* migrations[v] takes a database from schema v to v + 1 and sets user_version
 * itself, so no SQL is ever put together at run time. Released steps never
 * change: a new schema is a new step at the end. */
static const char *const migrations[] = {
    /* 0 -> 1: runs and their repetitions */
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  target TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  engine_version TEXT NOT NULL DEFAULT '',"
    "  model TEXT NOT NULL,"
    "  model_digest TEXT NOT NULL DEFAULT '',"
    "  model_size INTEGER NOT NULL DEFAULT 0,"
    "  quant TEXT NOT NULL DEFAULT '',"
    "  hw TEXT NOT NULL DEFAULT '',"
    "  params TEXT NOT NULL DEFAULT '{}',"
    "  baseline INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE reps ("
    "  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  concurrency INTEGER NOT NULL DEFAULT 1,"
    "  pp_tps REAL," /* NULL = not measured */
    "  tg_tps REAL,"
    "  ttft_ms REAL,"
    "  e2e_ms REAL,"
    "  prompt_tokens INTEGER,"
    "  gen_tokens INTEGER,"
    "  source TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (run_id, idx)"
    ");"
    "CREATE INDEX runs_target_model_ts ON runs (target, model, ts);"
    "CREATE INDEX runs_ts ON runs (ts);"
    "PRAGMA user_version = 1;",

    /* 1 -> 2: at most one baseline per target+model, held by the database rather
     * than by every writer. Where a version-1 file has several, the newest stays. */
    "UPDATE runs SET baseline = 0 WHERE baseline <> 0 AND EXISTS ("
    "  SELECT 1 FROM runs AS r WHERE r.baseline <> 0 AND r.target = runs.target"
    "  AND r.model = runs.model AND (r.ts > runs.ts OR (r.ts = runs.ts AND r.id > runs.id)));"
    "CREATE UNIQUE INDEX runs_one_baseline ON runs (target, model) WHERE baseline <> 0;"
    "PRAGMA user_version = 2;",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define RUN_COLUMNS                                                                                \
    "id, ts, target, kind, engine_version, model, model_digest, model_size, quant, hw, params, "   \
    "baseline"

int drv_store_schema_version(void)
{
    return N_MIGRATIONS;
}

char *drv_store_default_path(char *out, size_t out_size)
{
    /* XDG: a relative $XDG_STATE_HOME is invalid and ignored */
    const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (x && x[0] == '/')
        snprintf(out, out_size, "%s/drover/drover.db", x);
    else
        snprintf(out, out_size, "%s/.local/state/drover/drover.db", home ? home : "");
    return out;
}

/* ---- errors ---------------------------------------------------------------- */

/* Turns an SQLite result into one of ours, with the file's name and what we were
 * doing. */
static int db_fail(struct drv_store *s, int rc, const char *doing, struct drv_err *err)
{
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        return drv_err_set(err, DRV_EFORMAT, "%s: not a drover database (the file is not SQLite)",
                           s->path);
    case SQLITE_CORRUPT:
        return drv_err_set(err, DRV_EFORMAT, "%s: the database is corrupt (%s)", s->path, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return drv_err_set(err, DRV_EIO, "%s: locked by another process (waited %g s)", s->path,
                           s->busy_ms / 1000.0);
    case SQLITE_NOMEM:
        return drv_err_set(err, DRV_ENOMEM, "%s: out of memory while %s", s->path, doing);
    default:
        return drv_err_set(err, DRV_EIO, "%s: %s: %s", s->path, doing, msg);
    }
}

/* ---- small statement helpers ------------------------------------------------ */

static int prepare(struct drv_store *s, const char *sql, sqlite3_stmt **st, struct drv_err *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return db_fail(s, rc, "preparing a statement", err);
    }
    return 0;
}

/* Runs constant SQL that returns no rows (transactions, migrations). */
static int exec(struct drv_store *s, const char *sql, const char *doing, struct drv_err *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : db_fail(s, rc, doing, err);
}

static void rollback(struct drv_store *s)
{
    /* fails harmlessly when SQLite already rolled back */
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* A fixed-size field may lack its terminator; never read past it. */
static int bind_field(sqlite3_stmt *st, int i, const char *field, size_t size)
{
    return sqlite3_bind_text(st, i, field, (int)strnlen(field, size), SQLITE_TRANSIENT);
}

/* Negative, NaN and infinite mean "not measured": NULL in the database. */
static int bind_measure(sqlite3_stmt *st, int i, double v)
{
    return isfinite(v) && v >= 0 ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
}

static int bind_count(sqlite3_stmt *st, int i, int v)
{
    return v >= 0 ? sqlite3_bind_int(st, i, v) : sqlite3_bind_null(st, i);
}

/* Text columns may be NULL in a file written by hand or by another tool. */
static void column_field(sqlite3_stmt *st, int i, char *field, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    drv_strlcpy(field, t ? (const char *)t : "", size);
}

static double column_measure(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_double(st, i);
}

static int column_count(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int(st, i);
}

/* ---- open and migrate -------------------------------------------------------- */

/* mkdir -p of the folder that holds path. */
static int make_parent(const char *path, struct drv_err *err)
{
    char dir[PATH_MAX];
    drv_strlcpy(dir, path, sizeof(dir));
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return drv_err_set(err, DRV_EIO, "%s: cannot create folder %s: %s", path, dir,
                               strerror(errno));
        if (c == '\0')
            return 0;
        *p = c;
    }
}

static int read_int(struct drv_store *s, const char *sql, int *out, struct drv_err *err)
{
    sqlite3_stmt *st;
    int rc = prepare(s, sql, &st, err);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = 0;
    } else {
        rc = db_fail(s, rc, "reading the schema", err);
    }
    sqlite3_finalize(st);
    return rc;
}

static int check_version(struct drv_store *s, int version, struct drv_err *err)
{
    if (version > N_MIGRATIONS)
        return drv_err_set(err, DRV_EFORMAT,
                           "%s was written by a newer drover (schema %d, this drover knows %d)",
                           s->path, version, N_MIGRATIONS);
    if (version < 0)
        return drv_err_set(err, DRV_EFORMAT, "%s: not a drover database (schema %d)", s->path,
                           version);
    return 0;
}

static int migrate(struct drv_store *s, struct drv_err *err)
{
    /* IMMEDIATE: two drovers opening a new file at once must not both migrate it */
    int rc = exec(s, "BEGIN IMMEDIATE", "starting the schema upgrade", err);
    if (rc)
        return rc;
    int version = 0;
    rc = read_int(s, "PRAGMA user_version", &version, err);
    if (rc == 0)
        rc = check_version(s, version, err);
    for (int v = version; rc == 0 && v < N_MIGRATIONS; v++) {
        char doing[64];
        snprintf(doing, sizeof(doing), "upgrading the schema from %d to %d", v, v + 1);
        rc = exec(s, migrations[v], doing, err);
    }
    if (rc == 0) {
        rc = read_int(s, "PRAGMA user_version", &version, err);
        assert(rc != 0 || version == N_MIGRATIONS); /* each step sets its version */
    }
    if (rc == 0)
        rc = exec(s, "COMMIT", "finishing the schema upgrade", err);
    if (rc)
        rollback(s);
    return rc;
}

static int setup(struct drv_store *s, struct drv_err *err)
{
    /* the first read tells a database from garbage (SQLITE_NOTADB) */
    int version, n_objects;
    int rc = read_int(s, "PRAGMA user_version", &version, err);
    if (rc)
        return rc;
    rc = check_version(s, version, err);
    if (rc)
        return rc;
    if (version == 0) {
        rc = read_int(s, "SELECT count(*) FROM sqlite_master", &n_objects, err);
        if (rc)
            return rc;
        if (n_objects > 0)
            return drv_err_set(err, DRV_EFORMAT,
                               "%s: not a drover database (a SQLite file of something else)",
                               s->path);
    }
    /* NORMAL is durable with WAL except for the last commits on power loss, which
     * bench history can afford; FULL would fsync every run */
    rc = exec(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
              "setting up the connection", err);
    if (rc)
        return rc;
    /* answers with the mode it ended up in; a file system without WAL support
     * keeps the rollback journal, which works too */
    sqlite3_stmt *st;
    rc = prepare(s, "PRAGMA journal_mode = WAL", &st, err);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(s, rc, "switching to WAL", err);
    return version < N_MIGRATIONS ? migrate(s, err) : 0;
}

int drv_store_open_busy(const char *path, int busy_ms, struct drv_store **out, struct drv_err *err)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return drv_err_set(err, DRV_EINVAL, "no database path");
    struct drv_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    if (drv_strlcpy(s->path, path, sizeof(s->path)) >= sizeof(s->path)) {
        free(s);
        return drv_err_set(err, DRV_EINVAL, "database path too long");
    }
    s->busy_ms = busy_ms;
    int rc = make_parent(path, err);
    if (rc)
        goto out_free;
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int e = s->db ? sqlite3_system_errno(s->db) : 0;
        rc = drv_err_set(err, rc == SQLITE_NOMEM ? DRV_ENOMEM : DRV_EIO, "%s: cannot open: %s",
                         path, e ? strerror(e) : sqlite3_errstr(rc));
        goto out_free;
    }
    sqlite3_busy_timeout(s->db, busy_ms);
    rc = setup(s, err);
    if (rc)
        goto out_free;
    *out = s;
    return 0;

out_free:
    sqlite3_close_v2(s->db); /* harmless on NULL */
    free(s);
    return rc;
}

int drv_store_open(const char *path, struct drv_store **out, struct drv_err *err)
{
    return drv_store_open_busy(path, DRV_STORE_BUSY_MS, out, err);
}

void drv_store_close(struct drv_store *s)
{
    if (s == NULL)
        return;
    sqlite3_close_v2(s->db);
    free(s);
}

/* ---- writing ---------------------------------------------------------------- */

static bool field_empty(const char *field)
{
    return field[0] == '\0';
}

static int clear_baseline(struct drv_store *s, const char *target, size_t target_size,
                          const char *model, size_t model_size, struct drv_err *err)
{
    sqlite3_stmt *st;
    int rc = prepare(s,
                     "UPDATE runs SET baseline = 0 WHERE target = ?1 AND model = ?2 "
                     "AND baseline <> 0",
                     &st, err);
    if (rc)
        return rc;
    bind_field(st, 1, target, target_size);
    bind_field(st, 2, model, model_size);
    rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? 0 : db_fail(s, rc, "clearing the old baseline", err);
    sqlite3_finalize(st);
    return rc;
}

static int insert_run(struct drv_store *s, const struct drv_bench_run *run, int64_t ts, int64_t *id,
                      struct drv_err *err)
{
    sqlite3_stmt *st;
    int rc = prepare(s,
                     "INSERT INTO runs (ts, target, kind, engine_version, model, model_digest, "
                     "model_size, quant, hw, params, baseline) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                     &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, ts);
    bind_field(st, 2, run->target, sizeof(run->target));
    bind_field(st, 3, run->kind, sizeof(run->kind));
    bind_field(st, 4, run->engine_version, sizeof(run->engine_version));
    bind_field(st, 5, run->model, sizeof(run->model));
    bind_field(st, 6, run->model_digest, sizeof(run->model_digest));
    sqlite3_bind_int64(st, 7,
                       run->model_size > INT64_MAX ? INT64_MAX : (sqlite3_int64)run->model_size);
    bind_field(st, 8, run->quant, sizeof(run->quant));
    bind_field(st, 9, run->hw, sizeof(run->hw));
    bind_field(st, 10, run->params, sizeof(run->params));
    sqlite3_bind_int(st, 11, run->baseline ? 1 : 0);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        *id = sqlite3_last_insert_rowid(s->db);
        rc = 0;
    } else {
        rc = db_fail(s, rc, "storing the run", err);
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_reps(struct drv_store *s, int64_t id, const struct drv_bench_run *run,
                       struct drv_err *err)
{
    sqlite3_stmt *st;
    int rc = prepare(s,
                     "INSERT INTO reps (run_id, idx, concurrency, pp_tps, tg_tps, ttft_ms, "
                     "e2e_ms, prompt_tokens, gen_tokens, source) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                     &st, err);
    if (rc)
        return rc;
    for (int i = 0; rc == 0 && i < run->n_reps; i++) {
        const struct drv_bench_rep *r = &run->reps[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, i);
        sqlite3_bind_int(st, 3, r->concurrency);
        bind_measure(st, 4, r->pp_tps);
        bind_measure(st, 5, r->tg_tps);
        bind_measure(st, 6, r->ttft_ms);
        bind_measure(st, 7, r->e2e_ms);
        bind_count(st, 8, r->prompt_tokens);
        bind_count(st, 9, r->gen_tokens);
        bind_field(st, 10, r->source, sizeof(r->source));
        int step = sqlite3_step(st);
        if (step != SQLITE_DONE)
            rc = db_fail(s, step, "storing a repetition", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int drv_store_add_run(struct drv_store *s, struct drv_bench_run *run, struct drv_err *err)
{
    if (field_empty(run->target) || field_empty(run->model) || field_empty(run->kind))
        return drv_err_set(err, DRV_EINVAL, "a run needs a target, a kind and a model");
    if (run->n_reps < 0 || (run->n_reps > 0 && run->reps == NULL))
        return drv_err_set(err, DRV_EINVAL, "a run with %d repetitions and no array of them",
                           run->n_reps);
    int64_t ts = run->ts ? run->ts : (int64_t)time(NULL);
    int64_t id = 0;
    int rc = exec(s, "BEGIN IMMEDIATE", "starting to store a run", err);
    if (rc)
        return rc;
    if (run->baseline)
        rc = clear_baseline(s, run->target, sizeof(run->target), run->model, sizeof(run->model),
                            err);
    if (rc == 0)
        rc = insert_run(s, run, ts, &id, err);
    if (rc == 0)
        rc = insert_reps(s, id, run, err);
    if (rc == 0)
        rc = exec(s, "COMMIT", "storing the run", err);
    if (rc) {
        rollback(s);
        return rc;
    }
    run->id = id;
    run->ts = ts;
    return 0;
}

int drv_store_set_baseline(struct drv_store *s, int64_t id, struct drv_err *err)
{
    int rc = exec(s, "BEGIN IMMEDIATE", "starting to set the baseline", err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    struct drv_bench_run key; /* only target and model */
    rc = prepare(s, "SELECT target, model FROM runs WHERE id = ?1", &st, err);
    if (rc)
        goto out_rollback;
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        column_field(st, 0, key.target, sizeof(key.target));
        column_field(st, 1, key.model, sizeof(key.model));
    } else if (step == SQLITE_DONE) {
        rc = drv_err_set(err, DRV_ENOENT, "%s: no run %lld", s->path, (long long)id);
    } else {
        rc = db_fail(s, step, "finding the run", err);
    }
    sqlite3_finalize(st);
    if (rc)
        goto out_rollback;
    rc = clear_baseline(s, key.target, sizeof(key.target), key.model, sizeof(key.model), err);
    if (rc)
        goto out_rollback;
    rc = prepare(s, "UPDATE runs SET baseline = 1 WHERE id = ?1", &st, err);
    if (rc)
        goto out_rollback;
    sqlite3_bind_int64(st, 1, id);
    step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) {
        rc = db_fail(s, step, "setting the baseline", err);
        goto out_rollback;
    }
    rc = exec(s, "COMMIT", "setting the baseline", err);
    if (rc)
        goto out_rollback;
    return 0;

out_rollback:
    rollback(s);
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

void drv_bench_run_release(struct drv_bench_run *run)
{
    if (run == NULL)
        return;
    free(run->reps);
    run->reps = NULL;
    run->n_reps = 0;
}

void drv_bench_runs_free(struct drv_bench_run *runs, int n)
{
    if (runs == NULL)
        return;
    for (int i = 0; i < n; i++)
        drv_bench_run_release(&runs[i]);
    free(runs);
}

/* Fills run from a row of SELECT RUN_COLUMNS; reps are loaded separately. */
static void column_run(sqlite3_stmt *st, struct drv_bench_run *run)
{
    memset(run, 0, sizeof(*run));
    run->id = sqlite3_column_int64(st, 0);
    run->ts = sqlite3_column_int64(st, 1);
    column_field(st, 2, run->target, sizeof(run->target));
    column_field(st, 3, run->kind, sizeof(run->kind));
    column_field(st, 4, run->engine_version, sizeof(run->engine_version));
    column_field(st, 5, run->model, sizeof(run->model));
    column_field(st, 6, run->model_digest, sizeof(run->model_digest));
    sqlite3_int64 size = sqlite3_column_int64(st, 7);
    run->model_size = size > 0 ? (uint64_t)size : 0;
    column_field(st, 8, run->quant, sizeof(run->quant));
    column_field(st, 9, run->hw, sizeof(run->hw));
    column_field(st, 10, run->params, sizeof(run->params));
    run->baseline = sqlite3_column_int(st, 11) != 0;
}

/* Loads run->reps with st, a prepared SELECT of one run's repetitions. */
static int load_reps(struct drv_store *s, sqlite3_stmt *st, struct drv_bench_run *run,
                     struct drv_err *err)
{
    int cap = 0, rc;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, run->id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (run->n_reps == cap) {
            int ncap = cap ? cap * 2 : 8;
            struct drv_bench_rep *r = NULL;
            if (ncap < cap || (r = realloc(run->reps, (size_t)ncap * sizeof(*r))) == NULL)
                return drv_err_set(err, DRV_ENOMEM, "out of memory reading repetitions");
            run->reps = r;
            cap = ncap;
        }
        struct drv_bench_rep *r = &run->reps[run->n_reps++];
        memset(r, 0, sizeof(*r));
        r->concurrency = sqlite3_column_int(st, 0);
        r->pp_tps = column_measure(st, 1);
        r->tg_tps = column_measure(st, 2);
        r->ttft_ms = column_measure(st, 3);
        r->e2e_ms = column_measure(st, 4);
        r->prompt_tokens = column_count(st, 5);
        r->gen_tokens = column_count(st, 6);
        column_field(st, 7, r->source, sizeof(r->source));
    }
    return rc == SQLITE_DONE ? 0 : db_fail(s, rc, "reading repetitions", err);
}

static const char reps_sql[] = "SELECT concurrency, pp_tps, tg_tps, ttft_ms, e2e_ms, "
                               "prompt_tokens, gen_tokens, source FROM reps WHERE run_id = ?1 "
                               "ORDER BY idx";

int drv_store_list_runs(struct drv_store *s, const struct drv_store_filter *f,
                        struct drv_bench_run **out, int *n, struct drv_err *err)
{
    *out = NULL;
    *n = 0;
    int limit = f && f->limit ? f->limit : 100;
    if (limit < 0)
        return drv_err_set(err, DRV_EINVAL, "a negative limit (%d)", limit);
    const char *target = f && f->target && f->target[0] ? f->target : NULL;
    const char *model = f && f->model && f->model[0] ? f->model : NULL;
    int64_t since = f ? f->since : 0;

    sqlite3_stmt *runs_st = NULL, *reps_st = NULL;
    struct drv_bench_run *runs = NULL;
    int n_runs = 0, cap = 0;
    /* one read transaction: the runs and their reps come from one snapshot */
    int rc = exec(s, "BEGIN", "starting to read", err);
    if (rc)
        return rc;
    rc = prepare(s,
                 "SELECT " RUN_COLUMNS " FROM runs WHERE (?1 IS NULL OR target = ?1) "
                 "AND (?2 IS NULL OR model = ?2) AND ts >= ?3 ORDER BY ts DESC, id DESC LIMIT ?4",
                 &runs_st, err);
    if (rc == 0)
        rc = prepare(s, reps_sql, &reps_st, err);
    if (rc)
        goto out;
    if (target)
        sqlite3_bind_text(runs_st, 1, target, -1, SQLITE_STATIC);
    if (model)
        sqlite3_bind_text(runs_st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(runs_st, 3, since);
    sqlite3_bind_int(runs_st, 4, limit);
    int step;
    while ((step = sqlite3_step(runs_st)) == SQLITE_ROW) {
        if (n_runs == cap) {
            int ncap = cap ? cap * 2 : (limit < 16 ? limit : 16);
            struct drv_bench_run *r = NULL;
            if (ncap < cap || (r = realloc(runs, (size_t)ncap * sizeof(*r))) == NULL) {
                rc = drv_err_set(err, DRV_ENOMEM, "out of memory reading runs");
                goto out;
            }
            runs = r;
            cap = ncap;
        }
        column_run(runs_st, &runs[n_runs]);
        n_runs++; /* counted before its reps, so a failure below frees them */
        rc = load_reps(s, reps_st, &runs[n_runs - 1], err);
        if (rc)
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = db_fail(s, step, "reading runs", err);

out:
    sqlite3_finalize(runs_st);
    sqlite3_finalize(reps_st);
    if (rc == 0)
        rc = exec(s, "COMMIT", "finishing the read", err);
    if (rc) {
        rollback(s);
        drv_bench_runs_free(runs, n_runs);
        return rc;
    }
    *out = runs;
    *n = n_runs;
    return 0;
}

int drv_store_get_baseline(struct drv_store *s, const char *target, const char *model,
                           struct drv_bench_run *out, struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    if (target == NULL || model == NULL)
        return drv_err_set(err, DRV_EINVAL, "a baseline needs a target and a model");
    sqlite3_stmt *run_st = NULL, *reps_st = NULL;
    int rc = exec(s, "BEGIN", "starting to read", err);
    if (rc)
        return rc;
    rc = prepare(s,
                 "SELECT " RUN_COLUMNS " FROM runs WHERE target = ?1 AND model = ?2 "
                 "AND baseline <> 0 ORDER BY ts DESC, id DESC LIMIT 1",
                 &run_st, err);
    if (rc == 0)
        rc = prepare(s, reps_sql, &reps_st, err);
    if (rc)
        goto out;
    sqlite3_bind_text(run_st, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(run_st, 2, model, -1, SQLITE_STATIC);
    int step = sqlite3_step(run_st);
    if (step == SQLITE_ROW) {
        column_run(run_st, out);
        rc = load_reps(s, reps_st, out, err);
    } else if (step == SQLITE_DONE) {
        rc = drv_err_set(err, DRV_ENOENT, "no baseline for %s on %s", model, target);
    } else {
        rc = db_fail(s, step, "reading the baseline", err);
    }

out:
    sqlite3_finalize(run_st);
    sqlite3_finalize(reps_st);
    if (rc == 0)
        rc = exec(s, "COMMIT", "finishing the read", err);
    if (rc) {
        rollback(s);
        drv_bench_run_release(out);
    }
    return rc;
}
