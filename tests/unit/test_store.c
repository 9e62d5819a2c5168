/* store: open/create, runs and reps, filters, baselines, migrations, and files
 * that are not what they should be. Every test gets its own folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_int.h"

struct fixture {
    char dir[64];
    char db[128];
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/drover-store-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->db, sizeof(fx->db), "%s/drover.db", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static int raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static struct drv_store *open_ok(const char *path)
{
    struct drv_store *s = NULL;
    struct drv_err err;
    drv_err_init(&err);
    int rc = drv_store_open(path, &s, &err);
    if (rc != 0)
        fail_msg("open %s: %s", path, err.msg);
    return s;
}

static void fill_run(struct drv_bench_run *r, const char *target, const char *model, int64_t ts)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->target, sizeof(r->target), "%s", target);
    snprintf(r->kind, sizeof(r->kind), "drover");
    snprintf(r->model, sizeof(r->model), "%s", model);
    r->ts = ts;
}

static int64_t add(struct drv_store *s, const char *target, const char *model, int64_t ts,
                   bool baseline)
{
    struct drv_bench_run r;
    fill_run(&r, target, model, ts);
    r.baseline = baseline;
    struct drv_bench_rep rep = {.concurrency = 1,
                                .pp_tps = 100,
                                .tg_tps = 10,
                                .ttft_ms = 5,
                                .e2e_ms = 50,
                                .prompt_tokens = 8,
                                .gen_tokens = 4,
                                .source = "server"};
    r.reps = &rep;
    r.n_reps = 1;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_store_add_run(s, &r, &err) != 0)
        fail_msg("add_run: %s", err.msg);
    return r.id;
}

static int list(struct drv_store *s, const char *target, const char *model, int64_t since,
                int limit, struct drv_bench_run **runs)
{
    struct drv_store_filter f = {.target = target, .model = model, .since = since, .limit = limit};
    int n = -1;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_store_list_runs(s, &f, runs, &n, &err) != 0)
        fail_msg("list_runs: %s", err.msg);
    return n;
}

/* The version-1 schema exactly as drover 0.1 wrote it; it never changes. */
static const char v1_schema[] =
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, target TEXT NOT NULL,"
    " kind TEXT NOT NULL, engine_version TEXT NOT NULL DEFAULT '', model TEXT NOT NULL,"
    " model_digest TEXT NOT NULL DEFAULT '', model_size INTEGER NOT NULL DEFAULT 0,"
    " quant TEXT NOT NULL DEFAULT '', hw TEXT NOT NULL DEFAULT '',"
    " params TEXT NOT NULL DEFAULT '{}', baseline INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE reps (run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL, concurrency INTEGER NOT NULL DEFAULT 1, pp_tps REAL, tg_tps REAL,"
    " ttft_ms REAL, e2e_ms REAL, prompt_tokens INTEGER, gen_tokens INTEGER,"
    " source TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, idx));"
    "CREATE INDEX runs_target_model_ts ON runs (target, model, ts);"
    "CREATE INDEX runs_ts ON runs (ts);"
    "PRAGMA user_version = 1;";

/* ---- tests -------------------------------------------------------------------- */

static void open_creates_file_and_folders(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    snprintf(path, sizeof(path), "%s/a/b/c/drover.db", fx->dir);
    struct drv_store *s = open_ok(path);
    assert_non_null(s);
    drv_store_close(s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), drv_store_schema_version());
    assert_true(drv_store_schema_version() >= 2);
    /* WAL sticks to the file */
    sqlite3 *db;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
    /* opening again keeps everything and migrates nothing */
    s = open_ok(path);
    assert_int_equal(add(s, "t", "m", 1000, false), 1);
    drv_store_close(s);
    s = open_ok(path);
    struct drv_bench_run *runs;
    assert_int_equal(list(s, NULL, NULL, 0, 0, &runs), 1);
    drv_bench_runs_free(runs, 1);
    drv_store_close(s);
}

static void default_path_follows_xdg(void **state)
{
    (void)state;
    char p[512];
    char *old_state = getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL;
    setenv("XDG_STATE_HOME", "/x/state", 1);
    assert_string_equal(drv_store_default_path(p, sizeof(p)), "/x/state/drover/drover.db");
    setenv("XDG_STATE_HOME", "relative/is/ignored", 1);
    setenv("HOME", "/home/u", 1);
    assert_string_equal(drv_store_default_path(p, sizeof(p)),
                        "/home/u/.local/state/drover/drover.db");
    if (old_state) {
        setenv("XDG_STATE_HOME", old_state, 1);
        free(old_state);
    } else {
        unsetenv("XDG_STATE_HOME");
    }
}

static void add_and_list_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct drv_store *s = open_ok(fx->db);
    struct drv_bench_run r;
    fill_run(&r, "http://127.0.0.1:11435", "stories260K", 0);
    snprintf(r.kind, sizeof(r.kind), "llama-server");
    snprintf(r.engine_version, sizeof(r.engine_version), "b4567");
    snprintf(r.model_digest, sizeof(r.model_digest), "sha256:%064d", 7);
    r.model_size = 1185376;
    snprintf(r.quant, sizeof(r.quant), "Q4_K_M");
    snprintf(r.hw, sizeof(r.hw), "NVIDIA H100 80GB, 16 cores");
    snprintf(r.params, sizeof(r.params), "{\"p\":512,\"n\":128,\"reps\":3}");
    struct drv_bench_rep reps[3] = {
        {1, 1500.5, 120.25, 12.5, 1100, 512, 128, "server"},
        {4, 1400, 100, -1, 1300, 512, 128, "client"}, /* ttft not measured */
        {1, -1, -1, -1, -1, -1, -1, "client"},        /* nothing measured */
    };
    r.reps = reps;
    r.n_reps = 3;
    struct drv_err err;
    drv_err_init(&err);
    int64_t before = (int64_t)time(NULL);
    assert_int_equal(drv_store_add_run(s, &r, &err), 0);
    assert_true(r.id > 0);
    assert_true(r.ts >= before && r.ts <= (int64_t)time(NULL)); /* 0 became now */

    struct drv_bench_run *runs;
    assert_int_equal(list(s, NULL, NULL, 0, 0, &runs), 1);
    const struct drv_bench_run *g = &runs[0];
    assert_int_equal(g->id, r.id);
    assert_int_equal(g->ts, r.ts);
    assert_string_equal(g->target, "http://127.0.0.1:11435");
    assert_string_equal(g->kind, "llama-server");
    assert_string_equal(g->engine_version, "b4567");
    assert_string_equal(g->model, "stories260K");
    assert_string_equal(g->model_digest, r.model_digest);
    assert_int_equal(g->model_size, 1185376);
    assert_string_equal(g->quant, "Q4_K_M");
    assert_string_equal(g->hw, "NVIDIA H100 80GB, 16 cores");
    assert_string_equal(g->params, "{\"p\":512,\"n\":128,\"reps\":3}");
    assert_false(g->baseline);
    assert_int_equal(g->n_reps, 3);
    assert_int_equal(g->reps[0].concurrency, 1);
    assert_true(g->reps[0].pp_tps == 1500.5);
    assert_true(g->reps[0].tg_tps == 120.25);
    assert_true(g->reps[0].ttft_ms == 12.5);
    assert_true(g->reps[0].e2e_ms == 1100);
    assert_int_equal(g->reps[0].prompt_tokens, 512);
    assert_int_equal(g->reps[0].gen_tokens, 128);
    assert_string_equal(g->reps[0].source, "server");
    assert_int_equal(g->reps[1].concurrency, 4);
    assert_true(g->reps[1].ttft_ms == -1);
    assert_string_equal(g->reps[1].source, "client");
    assert_true(g->reps[2].pp_tps == -1 && g->reps[2].tg_tps == -1 && g->reps[2].e2e_ms == -1);
    assert_int_equal(g->reps[2].prompt_tokens, -1);
    assert_int_equal(g->reps[2].gen_tokens, -1);
    drv_bench_runs_free(runs, 1);
    /* not measured is NULL in the file, not a magic number */
    drv_store_close(s);
    assert_int_equal(raw_int(fx->db, "SELECT count(*) FROM reps WHERE ttft_ms IS NULL"), 2);
}

static void list_filters(void **state)
{
    struct fixture *fx = *state;
    struct drv_store *s = open_ok(fx->db);
    int64_t a1 = add(s, "nodeA", "llama", 1000, false);
    int64_t a2 = add(s, "nodeA", "qwen", 2000, false);
    int64_t b1 = add(s, "nodeB", "llama", 3000, false);
    int64_t a3 = add(s, "nodeA", "llama", 4000, false);
    int64_t b2 = add(s, "nodeB", "llama", 4000, false); /* same second: later id first */
    struct drv_bench_run *runs;

    assert_int_equal(list(s, NULL, NULL, 0, 0, &runs), 5);
    assert_int_equal(runs[0].id, b2);
    assert_int_equal(runs[1].id, a3);
    assert_int_equal(runs[2].id, b1);
    assert_int_equal(runs[3].id, a2);
    assert_int_equal(runs[4].id, a1);
    assert_int_equal(runs[4].n_reps, 1);
    drv_bench_runs_free(runs, 5);

    assert_int_equal(list(s, "nodeA", NULL, 0, 0, &runs), 3);
    assert_int_equal(runs[0].id, a3);
    assert_int_equal(runs[2].id, a1);
    drv_bench_runs_free(runs, 3);

    assert_int_equal(list(s, NULL, "llama", 0, 0, &runs), 4);
    drv_bench_runs_free(runs, 4);

    assert_int_equal(list(s, "nodeA", "llama", 0, 0, &runs), 2);
    assert_int_equal(runs[0].id, a3);
    assert_int_equal(runs[1].id, a1);
    drv_bench_runs_free(runs, 2);

    assert_int_equal(list(s, NULL, NULL, 3000, 0, &runs), 3); /* since is inclusive */
    assert_int_equal(runs[2].id, b1);
    drv_bench_runs_free(runs, 3);

    assert_int_equal(list(s, "nodeB", "llama", 3001, 0, &runs), 1);
    assert_int_equal(runs[0].id, b2);
    drv_bench_runs_free(runs, 1);

    assert_int_equal(list(s, NULL, NULL, 0, 2, &runs), 2);
    assert_int_equal(runs[0].id, b2);
    assert_int_equal(runs[1].id, a3);
    drv_bench_runs_free(runs, 2);

    runs = (struct drv_bench_run *)&runs; /* must be reset to NULL on no match */
    assert_int_equal(list(s, "nodeC", NULL, 0, 0, &runs), 0);
    assert_null(runs);
    assert_int_equal(list(s, NULL, NULL, 5000, 0, &runs), 0);

    /* "" is "any", like NULL; a NULL filter is everything */
    assert_int_equal(list(s, "", "", 0, 0, &runs), 5);
    drv_bench_runs_free(runs, 5);
    int n;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_store_list_runs(s, NULL, &runs, &n, &err), 0);
    assert_int_equal(n, 5);
    drv_bench_runs_free(runs, n);

    struct drv_store_filter bad = {.limit = -1};
    assert_int_equal(drv_store_list_runs(s, &bad, &runs, &n, &err), DRV_EINVAL);
    drv_store_close(s);
}

static void baseline_set_get_replace(void **state)
{
    struct fixture *fx = *state;
    struct drv_store *s = open_ok(fx->db);
    struct drv_bench_run b;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_store_get_baseline(s, "nodeA", "llama", &b, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "no baseline"));

    int64_t first = add(s, "nodeA", "llama", 1000, true);
    int64_t other = add(s, "nodeA", "qwen", 1500, true);
    drv_err_init(&err);
    assert_int_equal(drv_store_get_baseline(s, "nodeA", "llama", &b, &err), 0);
    assert_int_equal(b.id, first);
    assert_true(b.baseline);
    assert_int_equal(b.n_reps, 1);
    assert_true(b.reps[0].tg_tps == 10);
    drv_bench_run_release(&b);
    assert_null(b.reps);

    /* a new baseline replaces the old one of the same target+model only */
    int64_t second = add(s, "nodeA", "llama", 2000, true);
    assert_int_equal(drv_store_get_baseline(s, "nodeA", "llama", &b, &err), 0);
    assert_int_equal(b.id, second);
    drv_bench_run_release(&b);
    assert_int_equal(drv_store_get_baseline(s, "nodeA", "qwen", &b, &err), 0);
    assert_int_equal(b.id, other);
    drv_bench_run_release(&b);
    struct drv_bench_run *runs;
    int n = list(s, "nodeA", "llama", 0, 0, &runs);
    assert_int_equal(n, 2);
    assert_true(runs[0].baseline);  /* second */
    assert_false(runs[1].baseline); /* first */
    drv_bench_runs_free(runs, n);

    /* a plain run leaves the baseline alone */
    add(s, "nodeA", "llama", 3000, false);
    assert_int_equal(drv_store_get_baseline(s, "nodeA", "llama", &b, &err), 0);
    assert_int_equal(b.id, second);
    drv_bench_run_release(&b);

    /* back to the first one */
    assert_int_equal(drv_store_set_baseline(s, first, &err), 0);
    assert_int_equal(drv_store_get_baseline(s, "nodeA", "llama", &b, &err), 0);
    assert_int_equal(b.id, first);
    drv_bench_run_release(&b);
    assert_int_equal(drv_store_set_baseline(s, first, &err), 0); /* twice is fine */
    drv_store_close(s);
    assert_int_equal(raw_int(fx->db, "SELECT count(*) FROM runs WHERE baseline <> 0"), 2);

    s = open_ok(fx->db);
    drv_err_init(&err);
    assert_int_equal(drv_store_set_baseline(s, 9999, &err), DRV_ENOENT);
    assert_non_null(strstr(err.msg, "no run 9999"));
    assert_int_equal(drv_store_get_baseline(s, "nodeB", "llama", &b, &err), DRV_ENOENT);
    assert_null(b.reps);
    drv_store_close(s);
}

static void migrates_from_v1(void **state)
{
    struct fixture *fx = *state;
    raw_exec(fx->db, v1_schema);
    raw_exec(fx->db,
             "INSERT INTO runs (id, ts, target, kind, engine_version, model, quant, params,"
             " baseline) VALUES (1, 1000, 'nodeA', 'ollama', '0.5.1', 'llama', 'Q4_0', '{}', 1);"
             "INSERT INTO runs (id, ts, target, kind, model, baseline)"
             " VALUES (2, 2000, 'nodeA', 'ollama', 'llama', 1);"
             "INSERT INTO runs (id, ts, target, kind, model, baseline)"
             " VALUES (3, 1500, 'nodeB', 'ollama', 'llama', 1);"
             "INSERT INTO reps (run_id, idx, concurrency, pp_tps, tg_tps, source)"
             " VALUES (1, 0, 1, 321.5, 45.25, 'server'), (1, 1, 1, 320, NULL, 'server');");
    assert_int_equal(raw_int(fx->db, "PRAGMA user_version"), 1);

    struct drv_store *s = open_ok(fx->db);
    struct drv_bench_run *runs;
    int n = list(s, NULL, NULL, 0, 0, &runs);
    assert_int_equal(n, 3);
    const struct drv_bench_run *r1 = &runs[2];
    assert_int_equal(r1->id, 1);
    assert_string_equal(r1->kind, "ollama");
    assert_string_equal(r1->engine_version, "0.5.1");
    assert_string_equal(r1->quant, "Q4_0");
    assert_int_equal(r1->n_reps, 2);
    assert_true(r1->reps[0].pp_tps == 321.5);
    assert_true(r1->reps[1].tg_tps == -1);
    /* v1 allowed two baselines of nodeA/llama; the newer one stays */
    assert_false(r1->baseline);
    assert_true(runs[0].baseline); /* id 2 */
    assert_true(runs[1].baseline); /* id 3, nodeB */
    drv_bench_runs_free(runs, n);
    drv_store_close(s);

    assert_int_equal(raw_int(fx->db, "PRAGMA user_version"), drv_store_schema_version());
    /* and the database itself now refuses a second baseline */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE runs SET baseline = 1 WHERE id = 1", NULL, NULL, NULL),
        SQLITE_CONSTRAINT);
    sqlite3_close(db);
}

static void refuses_newer_schema(void **state)
{
    struct fixture *fx = *state;
    char sql[64];
    int newer = drv_store_schema_version() + 5;
    snprintf(sql, sizeof(sql), "CREATE TABLE future (x); PRAGMA user_version = %d;", newer);
    raw_exec(fx->db, sql);
    struct drv_store *s = (struct drv_store *)fx; /* must become NULL */
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_store_open(fx->db, &s, &err), DRV_EFORMAT);
    assert_null(s);
    char want[160];
    snprintf(want, sizeof(want), "was written by a newer drover (schema %d, this drover knows %d)",
             newer, drv_store_schema_version());
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, fx->db));
    assert_int_equal(raw_int(fx->db, "PRAGMA user_version"), newer); /* untouched */
}

static void refuses_garbage_and_foreign_files(void **state)
{
    struct fixture *fx = *state;
    FILE *f = fopen(fx->db, "wb");
    assert_non_null(f);
    for (int i = 0; i < 300; i++)
        fputs("this is not a database, it is a text file\n", f);
    fclose(f);
    struct drv_store *s;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_store_open(fx->db, &s, &err), DRV_EFORMAT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "not a drover database"));
    assert_null(strchr(err.msg, '\n'));

    /* a SQLite file of some other program is not ours to migrate */
    char other[160];
    snprintf(other, sizeof(other), "%s/other.db", fx->dir);
    raw_exec(other, "CREATE TABLE photos (id INTEGER, path TEXT);");
    drv_err_init(&err);
    assert_int_equal(drv_store_open(other, &s, &err), DRV_EFORMAT);
    assert_non_null(strstr(err.msg, "not a drover database"));
    assert_int_equal(raw_int(other, "SELECT count(*) FROM sqlite_master WHERE name = 'runs'"), 0);

    /* a folder where the file should be */
    drv_err_init(&err);
    assert_int_equal(drv_store_open(fx->dir, &s, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, fx->dir));

    /* a file where a folder should be */
    char under[200];
    snprintf(under, sizeof(under), "%s/x/drover.db", fx->db);
    drv_err_init(&err);
    assert_int_equal(drv_store_open(under, &s, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "cannot create folder"));

    drv_err_init(&err);
    assert_int_equal(drv_store_open("", &s, &err), DRV_EINVAL);

    /* an empty file is a new, empty database */
    char empty[160];
    snprintf(empty, sizeof(empty), "%s/empty.db", fx->dir);
    fclose(fopen(empty, "wb"));
    s = open_ok(empty);
    drv_store_close(s);
}

static void locked_database_fails_after_the_wait(void **state)
{
    struct fixture *fx = *state;
    struct drv_err err;
    struct drv_store *s;

    /* a new file, held exclusively by another connection while drover opens it */
    sqlite3 *holder;
    assert_int_equal(sqlite3_open(fx->db, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder,
                                  "CREATE TABLE IF NOT EXISTS x (y); DROP TABLE x;"
                                  "BEGIN EXCLUSIVE;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    drv_err_init(&err);
    assert_int_equal(drv_store_open_busy(fx->db, 100, &s, &err), DRV_EIO);
    assert_null(s);
    assert_non_null(strstr(err.msg, "locked by another process (waited 0.1 s)"));
    assert_int_equal(sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);

    /* a drover database: another writer holds the write lock; reads go on */
    assert_int_equal(drv_store_open_busy(fx->db, 100, &s, &err), 0);
    add(s, "nodeA", "llama", 1000, false);
    assert_int_equal(sqlite3_open(fx->db, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder,
                                  "BEGIN IMMEDIATE; INSERT INTO runs (ts, target, kind, model)"
                                  " VALUES (5, 'x', 'local', 'y');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct drv_bench_run r;
    fill_run(&r, "nodeA", "llama", 2000);
    drv_err_init(&err);
    assert_int_equal(drv_store_add_run(s, &r, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "locked"));
    assert_int_equal(r.id, 0);
    drv_err_init(&err);
    assert_int_equal(drv_store_set_baseline(s, 1, &err), DRV_EIO);
    struct drv_bench_run *runs;
    assert_int_equal(list(s, NULL, NULL, 0, 0, &runs), 1);
    drv_bench_runs_free(runs, 1);

    /* the lock goes away: writing works again, the failed run left nothing behind */
    assert_int_equal(sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);
    drv_err_init(&err);
    assert_int_equal(drv_store_add_run(s, &r, &err), 0);
    assert_int_equal(list(s, "nodeA", NULL, 0, 0, &runs), 2);
    drv_bench_runs_free(runs, 2);
    drv_store_close(s);

    /* a drover database locked exclusively (as by a drover in exclusive mode) */
    assert_int_equal(sqlite3_open(fx->db, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder,
                                  "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;"
                                  "SELECT count(*) FROM runs;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    drv_err_init(&err);
    assert_int_equal(drv_store_open_busy(fx->db, 100, &s, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "locked"));
    sqlite3_close(holder);
}

static void empty_and_full_strings_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct drv_store *s = open_ok(fx->db);
    struct drv_bench_run r;
    fill_run(&r, "t", "m", 1000);
    /* every optional field empty, no reps at all */
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_store_add_run(s, &r, &err), 0);

    /* every field full to the last byte, with no terminator */
    struct drv_bench_run full;
    memset(&full, 'x', sizeof(full));
    full.ts = 2000;
    full.model_size = UINT64_MAX;
    full.baseline = false;
    struct drv_bench_rep rep;
    memset(&rep, 'y', sizeof(rep));
    rep.concurrency = 2;
    rep.pp_tps = rep.tg_tps = rep.ttft_ms = rep.e2e_ms = INFINITY; /* not measured */
    full.reps = &rep;
    full.n_reps = 1;
    assert_int_equal(drv_store_add_run(s, &full, &err), 0);

    struct drv_bench_run *runs;
    assert_int_equal(list(s, NULL, NULL, 0, 0, &runs), 2);
    const struct drv_bench_run *f = &runs[0], *e = &runs[1];
    assert_string_equal(e->engine_version, "");
    assert_string_equal(e->model_digest, "");
    assert_string_equal(e->quant, "");
    assert_string_equal(e->hw, "");
    assert_string_equal(e->params, "");
    assert_int_equal(e->model_size, 0);
    assert_int_equal(e->n_reps, 0);
    assert_null(e->reps);
    /* read back truncated to the field, terminated */
    assert_int_equal(strlen(f->target), sizeof(f->target) - 1);
    assert_int_equal(strlen(f->params), sizeof(f->params) - 1);
    assert_int_equal(strlen(f->kind), sizeof(f->kind) - 1);
    assert_int_equal(f->model_size, INT64_MAX);
    assert_int_equal(f->n_reps, 1);
    assert_int_equal(strlen(f->reps[0].source), sizeof(f->reps[0].source) - 1);
    assert_true(f->reps[0].pp_tps == -1 && f->reps[0].e2e_ms == -1);
    assert_int_equal(f->reps[0].concurrency, 2);
    drv_bench_runs_free(runs, 2);

    /* a run needs a target, a kind and a model */
    fill_run(&r, "", "m", 0);
    drv_err_init(&err);
    assert_int_equal(drv_store_add_run(s, &r, &err), DRV_EINVAL);
    fill_run(&r, "t", "", 0);
    drv_err_init(&err);
    assert_int_equal(drv_store_add_run(s, &r, &err), DRV_EINVAL);
    fill_run(&r, "t", "m", 0);
    r.n_reps = 2; /* and no array */
    drv_err_init(&err);
    assert_int_equal(drv_store_add_run(s, &r, &err), DRV_EINVAL);
    assert_int_equal(list(s, NULL, NULL, 0, 0, &runs), 2);
    drv_bench_runs_free(runs, 2);

    /* NULL arguments are "nothing to do", not a crash */
    drv_store_close(NULL);
    drv_bench_runs_free(NULL, 0);
    drv_bench_run_release(NULL);
    drv_store_close(s);
}

static void many_runs_and_limits(void **state)
{
    struct fixture *fx = *state;
    struct drv_store *s = open_ok(fx->db);
    for (int i = 0; i < 250; i++)
        add(s, i % 2 ? "odd" : "even", "m", 10000 + i, false);
    struct drv_bench_run *runs;
    int n = list(s, NULL, NULL, 0, 0, &runs); /* 0 = 100 */
    assert_int_equal(n, 100);
    assert_int_equal(runs[0].ts, 10249);
    assert_int_equal(runs[99].ts, 10150);
    for (int i = 1; i < n; i++)
        assert_true(runs[i - 1].ts > runs[i].ts);
    drv_bench_runs_free(runs, n);
    n = list(s, NULL, NULL, 0, 7, &runs);
    assert_int_equal(n, 7);
    assert_int_equal(runs[6].ts, 10243);
    drv_bench_runs_free(runs, n);
    n = list(s, NULL, NULL, 0, 1000, &runs);
    assert_int_equal(n, 250);
    assert_int_equal(runs[249].ts, 10000);
    assert_int_equal(runs[249].n_reps, 1);
    drv_bench_runs_free(runs, n);
    n = list(s, "odd", NULL, 10200, 1000, &runs);
    assert_int_equal(n, 25);
    assert_int_equal(runs[24].ts, 10201);
    drv_bench_runs_free(runs, n);
    n = list(s, NULL, NULL, 0, 1, &runs);
    assert_int_equal(n, 1);
    drv_bench_runs_free(runs, n);
    drv_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_file_and_folders, setup, teardown),
        cmocka_unit_test(default_path_follows_xdg),
        cmocka_unit_test_setup_teardown(add_and_list_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(list_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(baseline_set_get_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(migrates_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_garbage_and_foreign_files, setup, teardown),
        cmocka_unit_test_setup_teardown(locked_database_fails_after_the_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_and_full_strings_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(many_runs_and_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
