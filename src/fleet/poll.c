/* fleet/poll: what the gateway knows about its nodes — active health checks
 * and model listings, rates from the bench history, /metrics and the node
 * table. */
#include "api/api.h"
#include "bench/bench.h"
#include "fleet/fleet_int.h"
#include "http/http.h"
#include "store/store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double drv_fleet_buckets[N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60};

struct fstat *drv_fleet_stat(struct drv_fleet *f, int node, const char *key)
{
    for (int i = 0; i < f->n_stats; i++)
        if (f->stats[i].node == node && strcmp(f->stats[i].key, key) == 0)
            return &f->stats[i];
    if (f->n_stats == f->cap_stats) {
        int cap = f->cap_stats ? f->cap_stats * 2 : 32;
        if (cap > 65536)
            return NULL;
        struct fstat *ns = realloc(f->stats, (size_t)cap * sizeof(*ns));
        if (ns == NULL)
            return NULL;
        f->stats = ns;
        f->cap_stats = cap;
    }
    struct fstat *s = &f->stats[f->n_stats++];
    memset(s, 0, sizeof(*s));
    s->node = node;
    drv_strlcpy(s->key, key, sizeof(s->key));
    return s;
}

/* ---- polling ---------------------------------------------------------------- */

enum { Q_TAGS, Q_PS, Q_VERSION, Q_MODELS, N_Q };

static const char *const q_path[N_Q] = {"/api/tags", "/api/ps", "/api/version", "/v1/models"};

struct poll_result {
    bool ok;
    bool unanswered; /* not ok because no HTTP answer came (refused, timed out) */
    char error[256];
    char version[64];
    struct fmodel *models;
    int n_models;
    struct drv_model_desc *running;
    int n_running;
};

/* Lists into a heap array, growing until everything fits. */
typedef int (*parse_fn)(const char *, size_t, struct drv_model_desc *, int);
static int parse_list(parse_fn fn, const struct drv_buf *b, struct drv_model_desc **out)
{
    *out = NULL;
    int cap = 16;
    for (int tries = 0; tries < 4; tries++) {
        struct drv_model_desc *d = calloc((size_t)cap, sizeof(*d));
        if (d == NULL)
            return DRV_ENOMEM;
        int n = fn(b->data ? b->data : "", b->len, d, cap);
        if (n < 0 || n <= cap) {
            if (n < 0)
                free(d);
            else
                *out = d;
            return n;
        }
        free(d);
        cap = n;
    }
    return DRV_EINVAL;
}

/* Builds the available list with loaded flags. Takes ownership of avail. */
static void set_models(struct poll_result *r, struct drv_model_desc *avail, int n_avail,
                       bool all_loaded)
{
    r->models = calloc((size_t)(n_avail > 0 ? n_avail : 1), sizeof(*r->models));
    if (r->models == NULL) {
        free(avail);
        r->ok = false;
        snprintf(r->error, sizeof(r->error), "out of memory");
        return;
    }
    for (int i = 0; i < n_avail; i++) {
        struct fmodel *m = &r->models[i];
        m->d = avail[i];
        drv_fleet_model_key(avail[i].name, m->key, sizeof(m->key));
        m->loaded = all_loaded;
        for (int k = 0; k < r->n_running && !all_loaded; k++) {
            char rk[160];
            drv_fleet_model_key(r->running[k].name, rk, sizeof(rk));
            m->loaded = m->loaded || strcmp(rk, m->key) == 0;
        }
    }
    r->n_models = n_avail;
    free(avail);
}

static void poll_local(struct drv_fleet *f, struct poll_result *r)
{
    struct drv_model_desc *avail;
    int n = drv_backend_list(f->local, false, &avail);
    r->n_running = n < 0 ? n : drv_backend_list(f->local, true, &r->running);
    if (n < 0 || r->n_running < 0) {
        free(avail);
        r->n_running = 0;
        snprintf(r->error, sizeof(r->error), "out of memory");
        return;
    }
    r->ok = true;
    drv_strlcpy(r->version, "local", sizeof(r->version));
    set_models(r, avail, n, false);
}

/* The message of a failed answer: the body's "error" (string or .message). */
static void answer_error(const struct drv_http_response *resp, char *out, size_t size)
{
    json_error_t je;
    json_t *j = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, &je) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *m =
        json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    snprintf(out, size, "HTTP %ld%s%s", resp->status, m ? ": " : "", m ? m : "");
    json_decref(j);
}

/* A node's kind, from what it answers to `drover bench`'s detection, asked
 * with the node's key; DRV_NODE_AUTO and the reason in err when none. */
static enum drv_node_kind detect(const struct drv_fleet_node_cfg *c, char *err, size_t err_size)
{
    struct drv_bench_target t;
    struct drv_err e;
    drv_err_init(&e);
    if (drv_bench_detect(c->url, c->api_key, DRV_BENCH_KIND_AUTO, &t, &e) != 0) {
        struct drv_buf b; /* the message may be long: cut to err_size */
        drv_buf_init(&b, 4096);
        drv_buf_appendf(&b, "%s (or set kind = in [node %s])", e.msg, c->name);
        drv_strlcpy(err, b.data ? b.data : e.msg, err_size);
        drv_buf_release(&b);
        return DRV_NODE_AUTO;
    }
    return t.kind == DRV_BENCH_KIND_DROVER   ? DRV_NODE_DROVER
           : t.kind == DRV_BENCH_KIND_OLLAMA ? DRV_NODE_OLLAMA
                                             : DRV_NODE_OPENAI;
}

void drv_fleet_poll(struct drv_fleet *f)
{
    int n;
    struct drv_fleet_node_cfg cfg[DRV_FLEET_MAX_NODES + 1];
    enum drv_node_kind kind[DRV_FLEET_MAX_NODES + 1];
    pthread_mutex_lock(&f->mu);
    n = f->n;
    for (int i = 0; i < n; i++) {
        cfg[i] = f->nodes[i].cfg;
        kind[i] = f->nodes[i].kind;
    }
    pthread_mutex_unlock(&f->mu);

    /* kinds not known yet: detect them as `drover bench` does */
    char detect_err[DRV_FLEET_MAX_NODES + 1][256];
    for (int i = 0; i < n; i++) {
        detect_err[i][0] = '\0';
        if (kind[i] != DRV_NODE_AUTO)
            continue;
        kind[i] = detect(&cfg[i], detect_err[i], sizeof(detect_err[i]));
    }

    struct drv_http_request rq[(DRV_FLEET_MAX_NODES + 1) * 3];
    struct drv_http_response resp[(DRV_FLEET_MAX_NODES + 1) * 3];
    int rcs[(DRV_FLEET_MAX_NODES + 1) * 3], owner[(DRV_FLEET_MAX_NODES + 1) * 3],
        what[(DRV_FLEET_MAX_NODES + 1) * 3];
    struct drv_err errs[(DRV_FLEET_MAX_NODES + 1) * 3];
    char urls[(DRV_FLEET_MAX_NODES + 1) * 3][320];
    int nq = 0;
    for (int i = 0; i < n; i++) {
        if (kind[i] == DRV_NODE_LOCAL || kind[i] == DRV_NODE_AUTO)
            continue;
        int qs[3], k = 0;
        if (kind[i] == DRV_NODE_OPENAI) {
            qs[k++] = Q_MODELS;
        } else {
            qs[k++] = Q_TAGS;
            qs[k++] = Q_PS;
            qs[k++] = Q_VERSION;
        }
        for (int j = 0; j < k; j++, nq++) {
            snprintf(urls[nq], sizeof(urls[nq]), "%s%s", cfg[i].url, q_path[qs[j]]);
            rq[nq] = (struct drv_http_request){.url = urls[nq],
                                               .connect_timeout_ms = f->p.health_timeout_ms,
                                               .timeout_ms = f->p.health_timeout_ms,
                                               .max_body_bytes = 32u << 20,
                                               .bearer = cfg[i].api_key};
            drv_http_response_init(&resp[nq]);
            drv_err_init(&errs[nq]);
            owner[nq] = i;
            what[nq] = qs[j];
        }
    }
    if (nq)
        drv_http_session_fetch_many(f->poll_sess, rq, resp, rcs, errs, nq);

    struct poll_result res[DRV_FLEET_MAX_NODES + 1];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < n; i++) {
        struct poll_result *r = &res[i];
        if (kind[i] == DRV_NODE_LOCAL) {
            poll_local(f, r);
            continue;
        }
        if (kind[i] == DRV_NODE_AUTO) {
            drv_strlcpy(r->error, detect_err[i], sizeof(r->error));
            continue;
        }
        struct drv_model_desc *avail = NULL;
        int n_avail = 0;
        bool all_loaded = kind[i] == DRV_NODE_OPENAI;
        r->ok = true;
        for (int q = 0; q < nq && r->ok; q++) {
            if (owner[q] != i)
                continue;
            if (rcs[q] != 0) {
                r->ok = false;
                r->unanswered = resp[q].status == 0;
                drv_strlcpy(r->error, errs[q].msg, sizeof(r->error));
                break;
            }
            if (resp[q].status < 200 || resp[q].status >= 300) {
                r->ok = false;
                char m[200];
                answer_error(&resp[q], m, sizeof(m));
                snprintf(r->error, sizeof(r->error), "%s: %s", q_path[what[q]], m);
                break;
            }
            int got = 0;
            if (what[q] == Q_TAGS)
                got = n_avail = parse_list(drv_api_parse_ollama_tags, &resp[q].body, &avail);
            else if (what[q] == Q_MODELS)
                got = n_avail = parse_list(drv_api_parse_openai_models, &resp[q].body, &avail);
            else if (what[q] == Q_PS)
                got = r->n_running =
                    parse_list(drv_api_parse_ollama_ps, &resp[q].body, &r->running);
            else if (what[q] == Q_VERSION) {
                json_error_t je;
                json_t *j = json_loadb(resp[q].body.data ? resp[q].body.data : "", resp[q].body.len,
                                       0, &je);
                const char *v = json_string_value(json_object_get(j, "version"));
                drv_strlcpy(r->version, v ? v : "", sizeof(r->version));
                json_decref(j);
            }
            if (got < 0) {
                r->ok = false;
                snprintf(r->error, sizeof(r->error), "%s: not the expected JSON", q_path[what[q]]);
            }
        }
        if (r->n_running < 0)
            r->n_running = 0;
        if (r->ok)
            set_models(r, avail, n_avail, all_loaded);
        else
            free(avail);
        if (r->ok && all_loaded && r->models) {
            /* an OpenAI server (llama-server) holds what it serves loaded */
            free(r->running);
            r->running = calloc((size_t)(r->n_models > 0 ? r->n_models : 1), sizeof(*r->running));
            r->n_running = 0;
            for (int m = 0; r->running && m < r->n_models; m++)
                r->running[r->n_running++] = r->models[m].d;
        }
        for (int m = 0; m < r->n_running; m++)
            drv_strlcpy(r->running[m].node, cfg[i].name, sizeof(r->running[m].node));
    }
    for (int q = 0; q < nq; q++)
        drv_http_response_release(&resp[q]);

    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < n; i++) {
        struct fnode *nd = &f->nodes[i];
        struct poll_result *r = &res[i];
        nd->kind = kind[i];
        if (r->ok) {
            if (!nd->up)
                drv_log(DRV_LOG_INFO, "fleet: node %s (%s, %s) is up with %d model%s", nd->cfg.name,
                        drv_node_kind_name(nd->kind), nd->cfg.url, r->n_models,
                        r->n_models == 1 ? "" : "s");
            nd->up = true;
            nd->unanswered = 0;
            atomic_store(&nd->gone, false);
            nd->fails = 0;
            nd->error[0] = '\0';
            if (r->version[0])
                drv_strlcpy(nd->version, r->version, sizeof(nd->version));
            free(nd->models);
            free(nd->running);
            nd->models = r->models;
            nd->n_models = r->n_models;
            nd->running = r->running;
            nd->n_running = r->n_running;
        } else {
            if (nd->up || nd->error[0] == '\0')
                drv_log(DRV_LOG_WARN, "fleet: node %s (%s) is down: %s", nd->cfg.name, nd->cfg.url,
                        r->error);
            nd->up = false;
            /* no answer at all, twice running: a switched-off or hung machine,
             * whose transfers in flight would otherwise wait out stall_timeout */
            nd->unanswered = r->unanswered ? nd->unanswered + 1 : 0;
            atomic_store(&nd->gone, nd->unanswered >= 2);
            nd->fails++;
            drv_strlcpy(nd->error, r->error, sizeof(nd->error));
            free(r->models);
            free(r->running);
        }
    }
    pthread_mutex_unlock(&f->mu);
}

/* ---- rates from the bench history ------------------------------------------ */

static void seed_from_runs(struct drv_fleet *f, int node, const struct drv_bench_run *runs,
                           int n_runs)
{
    for (int r = 0; r < n_runs; r++) {
        char key[160];
        drv_fleet_model_key(runs[r].model, key, sizeof(key));
        double pp = 0, tg = 0;
        int npp = 0, ntg = 0;
        for (int k = 0; k < runs[r].n_reps; k++) {
            const struct drv_bench_rep *rep = &runs[r].reps[k];
            if (rep->concurrency != 1)
                continue;
            if (rep->pp_tps > 0)
                pp += rep->pp_tps, npp++;
            if (rep->tg_tps > 0)
                tg += rep->tg_tps, ntg++;
        }
        if (ntg == 0)
            continue;
        pthread_mutex_lock(&f->mu);
        struct fstat *s = drv_fleet_stat(f, node, key);
        if (s && s->samples == 0 && !s->seeded) { /* newest run first: keep it */
            s->tg_tps = tg / ntg;
            s->pp_tps = npp ? pp / npp : 0;
            s->seeded = true;
        }
        pthread_mutex_unlock(&f->mu);
    }
}

void drv_fleet_seed_rates(struct drv_fleet *f)
{
    char path[512];
    if (f->p.history[0])
        drv_strlcpy(path, f->p.history, sizeof(path));
    else
        drv_store_default_path(path, sizeof(path));
    FILE *fp = fopen(path, "r"); /* no history: nothing to seed, and no empty db made */
    if (fp == NULL)
        return;
    fclose(fp);
    struct drv_store *st;
    struct drv_err e;
    drv_err_init(&e);
    if (drv_store_open(path, &st, &e) != 0) {
        drv_log(DRV_LOG_WARN, "fleet: bench history %s: %s", path, e.msg);
        return;
    }
    for (int i = 0; i < f->n; i++) {
        const char *targets[2] = {f->nodes[i].cfg.name, f->nodes[i].cfg.url};
        for (int t = 0; t < 2; t++) {
            if (targets[t][0] == '\0')
                continue;
            struct drv_store_filter flt = {.target = targets[t], .limit = 50};
            struct drv_bench_run *runs = NULL;
            int nr = 0;
            if (drv_store_list_runs(st, &flt, &runs, &nr, &e) == 0) {
                seed_from_runs(f, i, runs, nr);
                drv_bench_runs_free(runs, nr);
            }
        }
    }
    drv_store_close(st);
}

/* ---- /metrics and the node table -------------------------------------------- */

static int labels(struct drv_buf *out, const char *node, const char *model)
{
    return drv_buf_append(out, "{node=\"", 7) || drv_buf_append_label(out, node) ||
           (model && (drv_buf_append(out, "\",model=\"", 9) || drv_buf_append_label(out, model))) ||
           drv_buf_append(out, "\"}", 2);
}

static int histogram(struct drv_buf *out, const char *name, const char *node, const char *model,
                     const uint64_t *b, uint64_t n, double sum)
{
    int rc = 0;
    uint64_t cum = 0;
    for (int k = 0; rc == 0 && k <= N_BUCKETS; k++) {
        cum += b[k];
        rc = drv_buf_appendf(out, "%s_bucket{node=\"", name) || drv_buf_append_label(out, node) ||
             drv_buf_append(out, "\",model=\"", 9) || drv_buf_append_label(out, model);
        if (rc == 0 && k < N_BUCKETS)
            rc = drv_buf_appendf(out, "\",le=\"%g\"} %llu\n", drv_fleet_buckets[k],
                                 (unsigned long long)cum);
        else if (rc == 0)
            rc = drv_buf_appendf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    rc = rc || drv_buf_appendf(out, "%s_sum", name) || labels(out, node, model) ||
         drv_buf_appendf(out, " %.6f\n", sum) || drv_buf_appendf(out, "%s_count", name) ||
         labels(out, node, model) || drv_buf_appendf(out, " %llu\n", (unsigned long long)n);
    return rc;
}

int drv_fleet_metrics(void *ud, struct drv_buf *out)
{
    struct drv_fleet *f = ud;
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } counters[] = {
        {"drover_fleet_requests_total", "counter", "Requests a node answered (or failed).",
         offsetof(struct fstat, requests)},
        {"drover_fleet_errors_total", "counter", "Requests that ended in an error on a node.",
         offsetof(struct fstat, errors)},
        {"drover_fleet_failovers_total", "counter",
         "Requests moved to another node after this one failed before the first token.",
         offsetof(struct fstat, failovers)},
        {"drover_fleet_prompt_tokens_total", "counter", "Prompt tokens evaluated.",
         offsetof(struct fstat, prompt_tokens)},
        {"drover_fleet_tokens_predicted_total", "counter", "Tokens generated.",
         offsetof(struct fstat, gen_tokens)},
        {"drover_fleet_thinking_exhausted_total", "counter",
         "Answers that ended at the token limit inside the reasoning, with no content.",
         offsetof(struct fstat, exhausted)},
    };
    pthread_mutex_lock(&f->mu);
    int rc = drv_buf_appendf(out, "# HELP drover_fleet_node_up 1 when the node answers its health "
                                  "checks.\n# TYPE drover_fleet_node_up gauge\n");
    for (int i = 0; rc == 0 && i < f->n; i++)
        rc = drv_buf_append(out, "drover_fleet_node_up", 20) ||
             labels(out, f->nodes[i].cfg.name, NULL) ||
             drv_buf_appendf(out, " %d\n", f->nodes[i].up ? 1 : 0);
    rc = rc || drv_buf_appendf(out, "# HELP drover_fleet_node_in_flight Requests running on the "
                                    "node.\n# TYPE drover_fleet_node_in_flight gauge\n");
    for (int i = 0; rc == 0 && i < f->n; i++)
        rc = drv_buf_append(out, "drover_fleet_node_in_flight", 27) ||
             labels(out, f->nodes[i].cfg.name, NULL) ||
             drv_buf_appendf(out, " %d\n", f->nodes[i].in_flight);
    rc = rc || drv_buf_appendf(out,
                               "# HELP drover_fleet_queue_depth Requests waiting for a node with "
                               "room.\n# TYPE drover_fleet_queue_depth gauge\n"
                               "drover_fleet_queue_depth %d\n"
                               "# HELP drover_fleet_rejected_total Requests refused with 503: the "
                               "queue was full.\n# TYPE drover_fleet_rejected_total counter\n"
                               "drover_fleet_rejected_total %llu\n",
                               f->qlen, (unsigned long long)f->rejected);
    for (size_t c = 0; rc == 0 && c < sizeof(counters) / sizeof(counters[0]); c++) {
        rc = drv_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", counters[c].name,
                             counters[c].help, counters[c].name, counters[c].type);
        for (int i = 0; rc == 0 && i < f->n_stats; i++) {
            const struct fstat *s = &f->stats[i];
            uint64_t v = *(const uint64_t *)((const char *)s + counters[c].off);
            rc = drv_buf_appendf(out, "%s", counters[c].name) ||
                 labels(out, f->nodes[s->node].cfg.name, s->key) ||
                 drv_buf_appendf(out, " %llu\n", (unsigned long long)v);
        }
    }
    rc = rc || drv_buf_appendf(out, "# HELP drover_fleet_tg_tokens_per_second Measured generation "
                                    "rate routing uses.\n# TYPE "
                                    "drover_fleet_tg_tokens_per_second gauge\n");
    for (int i = 0; rc == 0 && i < f->n_stats; i++)
        rc = drv_buf_append(out, "drover_fleet_tg_tokens_per_second", 33) ||
             labels(out, f->nodes[f->stats[i].node].cfg.name, f->stats[i].key) ||
             drv_buf_appendf(out, " %.3f\n", f->stats[i].tg_tps);
    rc = rc ||
         drv_buf_appendf(out, "# HELP drover_fleet_request_seconds Request latency, accepted "
                              "to last byte.\n# TYPE drover_fleet_request_seconds histogram\n");
    for (int i = 0; rc == 0 && i < f->n_stats; i++) {
        const struct fstat *s = &f->stats[i];
        rc = histogram(out, "drover_fleet_request_seconds", f->nodes[s->node].cfg.name, s->key,
                       s->lat_b, s->lat_n, s->lat_sum);
    }
    rc = rc || drv_buf_appendf(out, "# HELP drover_fleet_ttft_seconds Time to first token.\n"
                                    "# TYPE drover_fleet_ttft_seconds histogram\n");
    for (int i = 0; rc == 0 && i < f->n_stats; i++) {
        const struct fstat *s = &f->stats[i];
        rc = histogram(out, "drover_fleet_ttft_seconds", f->nodes[s->node].cfg.name, s->key,
                       s->ttft_b, s->ttft_n, s->ttft_sum);
    }
    pthread_mutex_unlock(&f->mu);
    return rc ? DRV_ETOOBIG : 0;
}

static const char *route_name(enum drv_route r)
{
    static const char *const names[] = {"fastest", "least-busy", "round-robin", "priority",
                                        "pinned"};
    return names[r];
}

int drv_fleet_nodes_json(void *ud, struct drv_buf *out)
{
    struct drv_fleet *f = ud;
    json_t *arr = json_array();
    pthread_mutex_lock(&f->mu);
    for (int i = 0; arr && i < f->n; i++) {
        const struct fnode *nd = &f->nodes[i];
        json_t *models = json_array();
        for (int m = 0; models && m < nd->n_models; m++) {
            const struct fmodel *fm = &nd->models[m];
            json_t *o = json_pack("{s:s,s:b}", "name", fm->d.name, "loaded", fm->loaded);
            for (int s = 0; o && s < f->n_stats; s++) {
                const struct fstat *st = &f->stats[s];
                if (st->node != i || strcmp(st->key, fm->key) != 0)
                    continue;
                json_object_set_new(o, "pp_tps", json_real(st->pp_tps));
                json_object_set_new(o, "tg_tps", json_real(st->tg_tps));
                json_object_set_new(o, "samples", json_integer(st->samples));
                json_object_set_new(o, "rates_from",
                                    json_string(st->samples ? "traffic" : "bench history"));
                json_object_set_new(o, "requests", json_integer((json_int_t)st->requests));
            }
            if (o == NULL || json_array_append_new(models, o))
                json_decref(models), models = NULL;
        }
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:i,s:i,s:i,s:o}", "name", nd->cfg.name,
                              "url", nd->cfg.url, "kind", drv_node_kind_name(nd->kind), "version",
                              nd->version, "up", nd->up, "error", nd->error, "in_flight",
                              nd->in_flight, "max_concurrent", nd->cfg.max_concurrent, "priority",
                              nd->cfg.priority, "models", models ? models : json_array());
        if (o == NULL || json_array_append_new(arr, o))
            json_decref(arr), arr = NULL;
    }
    json_t *root = arr ? json_pack("{s:s,s:s,s:i,s:o}", "route", route_name(f->p.route), "pinned",
                                   f->p.pinned, "queued", f->qlen, "nodes", arr)
                       : NULL;
    pthread_mutex_unlock(&f->mu);
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    int rc = s ? drv_buf_append(out, s, strlen(s)) : DRV_ENOMEM;
    free(s);
    return rc;
}
