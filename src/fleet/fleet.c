/* fleet: the gateway backend — routing, failover, the queue, relaying.
 *
 * A request becomes a job holding the request in a canonical form (its Ollama
 * JSON body, which carries every knob) so that it can be sent again to another
 * node after a failure. A job runs on one node at a time as an attempt: on the
 * local engine through its backend, on a remote node on a thread of its own
 * that makes the upstream request and feeds the answer through the upstream
 * parser. Every event the client gets passes job_sink, which marks the node,
 * keeps the statistics and decides failover: an error before the first token
 * puts the job back at the head of the queue (it is not forwarded); the
 * dispatcher thread then starts it on the next candidate. */
#include "api/api.h"
#include "fleet/fleet_int.h"
#include "http/http.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_LOAD_MS 500.0 /* fixed part of a cold load when none was measured */
/* Where a node's rates were never measured, the wait for its first token is
 * sized for a slow CPU node: */
#define SLOW_PP_TPS 20.0 /* prompt tokens/s */
#define SLOW_TG_TPS 2.0  /* generated tokens/s */
/* A whole answer of at most this many tokens is asked of the node whole (one
 * JSON object, the cheapest); a longer or unbounded one is streamed from the node
 * and put together here, so that a node that stopped is told from a long answer. */
#define WHOLE_MAX_TOKENS 64
#define MAX_FAILS        3  /* consecutive passive failures that take a node down */
#define PUMP_WAIT_MS     50 /* a lent thread waits this long for the node, then looks again */

struct attempt;

struct job {
    struct drv_fleet *f;
    bool embed;
    enum drv_gen_kind kind;
    char *body; /* canonical request: Ollama /api/generate, /api/chat or /api/embed JSON */
    size_t body_len;
    char model[160]; /* as the client named it */
    char key[160];
    enum drv_route route;
    char pinned[64];
    int prompt_est, gen_est; /* tokens, for the predicted finish time */
    bool whole;              /* the client takes the answer whole */
    bool up_stream;          /* ...and the node is asked to stream (see fleet_generate) */
    long first_byte_ms;      /* how long the chosen node may take to its first token */
    atomic_bool *cancel;     /* the client's */
    drv_gen_lend_fn lend;    /* the client's thread, lent for remote attempts (or NULL) */
    void *lend_ud;
    pthread_t lend_thread; /* ...which only that thread may take */
    drv_gen_sink sink;
    void *ud;
    drv_embed_cb ecb;
    bool tried[DRV_FLEET_MAX_NODES + 1];
    int node; /* of the current attempt, -1 before */
    char node_model[256];
    uint64_t t0, t_first;
    bool started; /* text reached the client: no failover from here */
    /* a whole answer's text so far ([0] answer, [1] thinking), passed on at its
     * end: a node that fails part-way is replaced and its part dropped */
    struct drv_buf whole_text[2];
    bool answer_text, thinking_text;
    int last_status;
    char last_error[256];
    struct job *next;
};

/* ---- small helpers ------------------------------------------------------------ */

static bool is_cancelled(const struct job *j)
{
    return j->cancel && atomic_load(j->cancel);
}

static void job_free(struct job *j)
{
    if (j) {
        free(j->body);
        drv_buf_release(&j->whole_text[0]);
        drv_buf_release(&j->whole_text[1]);
        free(j);
    }
}

static const char *node_name(const struct drv_fleet *f, int i)
{
    return i >= 0 ? f->nodes[i].cfg.name : NULL;
}

/* Does name (a key) belong to the model the job asks for? */
static bool same_model(const struct drv_fleet *f, const char *want, const struct fmodel *m,
                       const struct drv_model_desc *meta)
{
    if (strcmp(want, m->key) == 0)
        return true;
    for (int a = 0; a < f->p.n_aliases; a++) {
        const char *x = f->p.aliases[a][0], *y = f->p.aliases[a][1];
        if ((strcmp(want, x) == 0 && strcmp(m->key, y) == 0) ||
            (strcmp(want, y) == 0 && strcmp(m->key, x) == 0))
            return true;
    }
    /* the same GGUF under another name: architecture, size and quantization agree */
    return meta && meta->family[0] && meta->parameter_size[0] && meta->quantization[0] &&
           strcmp(meta->family, m->d.family) == 0 &&
           strcmp(meta->parameter_size, m->d.parameter_size) == 0 &&
           strcasecmp(meta->quantization, m->d.quantization) == 0;
}

/* Under mu: the metadata of the wanted model as some node lists it by name. */
static const struct drv_model_desc *model_meta(const struct drv_fleet *f, const char *key)
{
    for (int i = 0; i < f->n; i++)
        for (int m = 0; m < f->nodes[i].n_models; m++)
            if (strcmp(f->nodes[i].models[m].key, key) == 0)
                return &f->nodes[i].models[m].d;
    return NULL;
}

/* Under mu: the node's model that serves key, or NULL. */
static const struct fmodel *node_model(const struct drv_fleet *f, int i, const char *key,
                                       const struct drv_model_desc *meta)
{
    const struct fnode *nd = &f->nodes[i];
    for (int m = 0; m < nd->n_models; m++) /* exact names first */
        if (strcmp(nd->models[m].key, key) == 0)
            return &nd->models[m];
    for (int m = 0; m < nd->n_models; m++)
        if (same_model(f, key, &nd->models[m], meta))
            return &nd->models[m];
    return NULL;
}

/* ---- routing ------------------------------------------------------------------ */

/* A stats entry for the job's model: under the node's name for it (m) or the
 * name the client asked for. */
static bool stat_is_for(const struct fstat *st, const struct job *j, const struct fmodel *m)
{
    return strcmp(st->key, m->key) == 0 || strcmp(st->key, j->key) == 0;
}

/* Prompt tokens/s of measured rates: as measured, else about 10x generation;
 * 0 when nothing was. */
static double prompt_tps(const struct fstat *st)
{
    return st->pp_tps > 0 ? st->pp_tps : st->tg_tps * 10;
}

/* Predicted ms of loading m on a node with these rates (NULL: none): 0 when it
 * is loaded; as measured there, else about a fixed cost plus reading the file
 * at 1 GB/s. */
static double load_ms(const struct fmodel *m, const struct fstat *st)
{
    return m->loaded               ? 0
           : st && st->load_ms > 0 ? st->load_ms
                                   : DEFAULT_LOAD_MS + (double)m->d.size / 1e6;
}

/* Predicted milliseconds until the job would finish on node i (fastest). */
static double predict_ms(struct drv_fleet *f, const struct job *j, int i, const struct fmodel *m)
{
    const struct fnode *nd = &f->nodes[i];
    const struct fstat *mine = NULL;
    double best = 0; /* the best measured service time anywhere */
    for (int s = 0; s < f->n_stats; s++) {
        const struct fstat *st = &f->stats[s];
        if (st->tg_tps <= 0 || !stat_is_for(st, j, m))
            continue;
        double service = (j->prompt_est / prompt_tps(st) + j->gen_est / st->tg_tps) * 1000.0;
        if (st->node == i)
            mine = st;
        if (best <= 0 || service < best)
            best = service;
    }
    if (mine == NULL) {
        /* not measured here yet: assumed as fast as the best node, and slightly
         * preferred, so that every node gets measured once; from then on its
         * measurement decides */
        if (best <= 0)
            return nd->in_flight * 1000.0;
        return best * (1 + nd->in_flight) - 0.001;
    }
    double service = (j->prompt_est / prompt_tps(mine) + j->gen_est / mine->tg_tps) * 1000.0;
    /* requests in flight share the node: each one ahead costs about a service time */
    return service * (1 + nd->in_flight) + load_ms(m, mine);
}

/* Under mu: how long node i may take to its first token. A node says nothing
 * while it loads the model and reads the prompt (nor, asked for a whole answer,
 * while it generates): stall_timeout, plus three times what that is predicted to
 * take there, is a stall; less is a long prompt on a slow node, not a failure. */
static long first_byte_ms(const struct drv_fleet *f, const struct job *j, int i,
                          const struct fmodel *m)
{
    long stall = f->p.stall_timeout_ms;
    if (stall <= 0)
        return 0;
    const struct fstat *st = NULL;
    for (int s = 0; s < f->n_stats && st == NULL; s++)
        if (f->stats[s].node == i && stat_is_for(&f->stats[s], j, m))
            st = &f->stats[s];
    double pp = st && prompt_tps(st) > 0 ? prompt_tps(st) : SLOW_PP_TPS;
    double tg = st && st->tg_tps > 0 ? st->tg_tps : SLOW_TG_TPS;
    double ms = j->prompt_est / pp * 1000.0 + load_ms(m, st);
    if (!j->up_stream)
        ms += j->gen_est / tg * 1000.0;
    ms = 3 * ms + stall;
    return ms < 86400e3 ? (long)ms : 86400000L;
}

/* Under mu: picks the node for the job, or -1. *alive: some node that is up has
 * the model (busy, or tried already). Reserves a slot (in_flight++) on success. */
static int choose(struct drv_fleet *f, struct job *j, bool *alive, bool *exists)
{
    *alive = *exists = false;
    const struct drv_model_desc *meta = model_meta(f, j->key);
    int best = -1;
    double best_score = 0;
    unsigned start = f->rr++;
    for (int k = 0; k < f->n; k++) {
        int i = (int)((start + (unsigned)k) % (unsigned)f->n);
        struct fnode *nd = &f->nodes[i];
        if (j->route == DRV_ROUTE_PINNED && strcmp(nd->cfg.name, j->pinned) != 0)
            continue;
        const struct fmodel *m = node_model(f, i, j->key, meta);
        if (m == NULL)
            continue;
        *exists = true;
        if (!nd->up || j->tried[i])
            continue;
        *alive = true;
        if (nd->in_flight >= nd->cfg.max_concurrent)
            continue;
        double score;
        switch (j->route) {
        case DRV_ROUTE_FASTEST:
            score = predict_ms(f, j, i, m);
            break;
        case DRV_ROUTE_LEAST_BUSY:
            score = nd->in_flight;
            break;
        case DRV_ROUTE_PRIORITY:
            score = nd->cfg.priority * 1e6 + i; /* config order breaks ties */
            break;
        default: /* round-robin, pinned: the first in turn */
            score = k;
            break;
        }
        if (best < 0 || score < best_score) {
            best = i;
            best_score = score;
            drv_strlcpy(j->node_model, m->d.name, sizeof(j->node_model));
        }
    }
    if (best >= 0) {
        f->nodes[best].in_flight++;
        j->first_byte_ms = first_byte_ms(f, j, best, node_model(f, best, j->key, meta));
        j->node = best;
        j->tried[best] = true;
    }
    return best;
}

static void enqueue(struct drv_fleet *f, struct job *j, bool front)
{
    j->next = NULL;
    if (front) {
        j->next = f->qhead;
        f->qhead = j;
        if (f->qtail == NULL)
            f->qtail = j;
    } else {
        if (f->qtail)
            f->qtail->next = j;
        else
            f->qhead = j;
        f->qtail = j;
    }
    f->qlen++;
    pthread_cond_signal(&f->wake);
}

/* ---- ending a job --------------------------------------------------------------- */

static void hist_add(uint64_t *b, uint64_t *n, double *sum, double secs)
{
    int k = 0;
    while (k < N_BUCKETS && secs > drv_fleet_buckets[k])
        k++;
    b[k]++;
    (*n)++;
    *sum += secs;
}

/* Under mu: the node answered with this model, so it has it loaded now; /api/ps
 * says so at once instead of after the next poll (which then has the truth:
 * the expiry here is Ollama's default keep-alive, a guess). */
static void mark_loaded(struct fnode *nd, const char *node_model)
{
    struct fmodel *fm = NULL;
    for (int m = 0; m < nd->n_models && fm == NULL; m++)
        if (strcmp(nd->models[m].d.name, node_model) == 0)
            fm = &nd->models[m];
    if (fm == NULL || fm->loaded)
        return;
    fm->loaded = true;
    struct drv_model_desc *r = realloc(nd->running, (size_t)(nd->n_running + 1) * sizeof(*r));
    if (r == NULL)
        return;
    nd->running = r;
    struct drv_model_desc *d = &nd->running[nd->n_running++];
    *d = fm->d;
    if (d->size_resident == 0)
        d->size_resident = d->size;
    d->expires_at = (int64_t)time(NULL) + 300;
    drv_strlcpy(d->node, nd->cfg.name, sizeof(d->node));
}

/* Under mu: counts the end of a request that ran on node (>= 0). */
static void account(struct drv_fleet *f, struct job *j, const struct drv_gen_event *ev)
{
    struct fnode *nd = &f->nodes[j->node];
    struct fstat *s = drv_fleet_stat(f, j->node, j->key);
    if (s == NULL)
        return;
    s->requests++;
    double now_s = (double)(drv_now_ns() - j->t0) / 1e9;
    hist_add(s->lat_b, &s->lat_n, &s->lat_sum, now_s);
    if (j->t_first)
        hist_add(s->ttft_b, &s->ttft_n, &s->ttft_sum, (double)(j->t_first - j->t0) / 1e9);
    if (ev->kind == DRV_EV_ERROR) {
        s->errors++;
        return;
    }
    nd->fails = 0;
    if (nd->kind != DRV_NODE_LOCAL) /* the local list is read fresh */
        mark_loaded(nd, j->node_model);
    const struct drv_gen_stats *st = &ev->stats;
    s->prompt_tokens += st->prompt_tokens > 0 ? (uint64_t)st->prompt_tokens : 0;
    s->gen_tokens += st->eval_tokens > 0 ? (uint64_t)st->eval_tokens : 0;
    if (st->warning)
        s->exhausted++;
    /* live rates: an exponentially weighted mean over requests */
    const double a = 0.3;
    if (st->eval_tokens >= 2 && st->eval_ns > 0) {
        double tg = st->eval_tokens * 1e9 / (double)st->eval_ns;
        s->tg_tps = s->samples ? s->tg_tps + a * (tg - s->tg_tps) : tg;
        s->samples++;
    }
    if (st->prompt_tokens >= 8 && st->prompt_ns > 0) {
        double pp = st->prompt_tokens * 1e9 / (double)st->prompt_ns;
        s->pp_tps = s->pp_tps > 0 ? s->pp_tps + a * (pp - s->pp_tps) : pp;
    }
    if (st->load_ns > 100000000ull) {
        double l = (double)st->load_ns / 1e6;
        s->load_ms = s->load_ms > 0 ? s->load_ms + a * (l - s->load_ms) : l;
    }
}

/* Delivers the terminal event to the client and frees the job. node_done: the
 * job held a slot on j->node. */
static void job_end(struct job *j, struct drv_gen_event *ev, bool node_done)
{
    struct drv_fleet *f = j->f;
    pthread_mutex_lock(&f->mu);
    if (node_done && j->node >= 0) {
        account(f, j, ev);
        f->nodes[j->node].in_flight--;
        if (f->qhead) /* room for a queued job (nobody to wake otherwise) */
            pthread_cond_signal(&f->wake);
    }
    pthread_mutex_unlock(&f->mu);
    if (j->embed) {
        struct drv_embed_result r = {.model = j->model,
                                     .status = ev->status ? ev->status : 499,
                                     .message = ev->message ? ev->message : "cancelled"};
        j->ecb(j->ud, &r);
    } else {
        j->sink(j->ud, ev);
    }
    job_free(j);
}

static void job_fail(struct job *j, int status, const char *msg, bool node_done)
{
    struct drv_gen_event ev = {.kind = DRV_EV_ERROR,
                               .status = status,
                               .message = msg,
                               .model = j->model,
                               .node = node_name(j->f, node_done ? j->node : -1)};
    job_end(j, &ev, node_done);
}

static void job_cancelled(struct job *j, bool node_done)
{
    struct drv_gen_event ev = {.kind = DRV_EV_DONE, .model = j->model};
    ev.stats.done_reason = "cancel";
    ev.stats.total_ns = drv_now_ns() - j->t0;
    job_end(j, &ev, node_done);
}

/* The attempt on j->node failed before the first token: count it against the
 * node and put the job back at the head of the queue for the next candidate. */
static void job_failover(struct job *j, int status, const char *msg, bool node_fault)
{
    struct drv_fleet *f = j->f;
    pthread_mutex_lock(&f->mu);
    struct fnode *nd = &f->nodes[j->node];
    nd->in_flight--;
    struct fstat *s = drv_fleet_stat(f, j->node, j->key);
    if (s) {
        s->failovers++;
        s->errors++;
    }
    if (node_fault && ++nd->fails >= MAX_FAILS && nd->up) {
        nd->up = false;
        drv_strlcpy(nd->error, msg, sizeof(nd->error));
        drv_log(DRV_LOG_WARN, "fleet: node %s is down after %d failures: %s", nd->cfg.name,
                nd->fails, msg);
    }
    drv_log(DRV_LOG_INFO,
            "fleet: %s on node %s failed before its first token (%s); trying "
            "the next node",
            j->model, nd->cfg.name, msg);
    j->last_status = status;
    drv_strlcpy(j->last_error, msg, sizeof(j->last_error));
    j->node = -1;
    /* a whole answer starts again on the next node */
    drv_buf_reset(&j->whole_text[0]);
    drv_buf_reset(&j->whole_text[1]);
    j->answer_text = j->thinking_text = false;
    j->t_first = 0;
    enqueue(f, j, true);
    pthread_mutex_unlock(&f->mu);
}

/* Failover for errors that another node may not have: the node's fault or a
 * missing model; the client's own mistakes (400, 413) are passed on. */
static bool retryable(int status)
{
    return status == 404 || status == 401 || status == 403 || status == 408 || status == 429 ||
           status >= 500 || status == 0;
}

/* ---- the events of an attempt -------------------------------------------------- */

struct attempt {
    struct job *job;
    struct attempt *next; /* waiting for a worker */
    bool remote;
    bool over;       /* the job ended or moved on: the transfer must stop */
    bool ended;      /* ...because the terminal event went out: the rest of the body is
                        read and dropped, so that the connection can be reused */
    bool parse_fail; /* the node's answer could not be decoded */
    bool parser_ready;
    enum drv_api_wire wire;
    struct drv_api_upstream_parser parser;
    char error[256];

    /* a remote attempt's transfer, from remote_begin to remote_finish */
    struct drv_fleet *job_f; /* the job's fleet, still known once the job is gone */
    struct drv_http_session *sess;
    bool pooled;                    /* sess came from the fleet's pool (a lent thread runs it) */
    bool begun;                     /* the transfer was begun on sess: end it */
    bool finished;                  /* remote_finish ran; only the clean-up is left */
    struct drv_fleet_node_cfg *cfg; /* the node's; these fields never change */
    struct drv_buf body;
    char url[512];
    struct drv_http_request rq;
    struct drv_http_response resp;
};

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

static int job_sink(void *ud, const struct drv_gen_event *ev0)
{
    struct attempt *a = ud;
    struct job *j = a->job;
    if (a->over)
        return 1;
    struct drv_gen_event ev = *ev0;
    ev.node = node_name(j->f, j->node);
    ev.model = j->model;
    switch (ev.kind) {
    case DRV_EV_TOKEN:
    case DRV_EV_THINKING:
        if (ev.len && !j->t_first)
            j->t_first = drv_now_ns();
        if (ev.kind == DRV_EV_TOKEN)
            j->answer_text = j->answer_text || !blank(ev.text, ev.len);
        else
            j->thinking_text = j->thinking_text || ev.len > 0;
        if (j->whole) {
            if (drv_buf_append(&j->whole_text[ev.kind == DRV_EV_THINKING], ev.text, ev.len) == 0)
                return is_cancelled(j);
            ev = (struct drv_gen_event){.kind = DRV_EV_ERROR,
                                        .status = 502,
                                        .message = "the answer is larger than the gateway holds",
                                        .node = ev.node,
                                        .model = ev.model};
            j->started = true; /* not for another node either */
            break;
        }
        j->started = j->started || ev.len > 0;
        return j->sink(j->ud, &ev) || is_cancelled(j);
    case DRV_EV_ERROR:
        if (!j->started && retryable(ev.status) && !is_cancelled(j)) {
            a->over = true;
            bool remote = a->remote;
            job_failover(j, ev.status, ev.message ? ev.message : "error", ev.status != 404);
            if (!remote)
                free(a);
            return 1;
        }
        break;
    case DRV_EV_DONE:
        if (ev.stats.total_ns == 0)
            ev.stats.total_ns = drv_now_ns() - j->t0;
        for (int ch = 1; j->whole && ch >= 0; ch--) /* the whole answer, now it is whole */
            if (j->whole_text[ch].len) {
                struct drv_gen_event t = {.kind = ch ? DRV_EV_THINKING : DRV_EV_TOKEN,
                                          .text = j->whole_text[ch].data,
                                          .len = j->whole_text[ch].len,
                                          .node = ev.node,
                                          .model = ev.model};
                j->sink(j->ud, &t);
            }
        if (ev.stats.done_reason && strcmp(ev.stats.done_reason, "length") == 0 &&
            !j->answer_text && j->thinking_text) {
            ev.stats.warning = "thinking-exhausted";
            drv_log(DRV_LOG_WARN,
                    "fleet: %s on node %s used its whole token budget (%d) on reasoning and "
                    "answered nothing; send \"think\": false or a larger num_predict",
                    j->model, ev.node, ev.stats.eval_tokens);
        }
        break;
    }
    a->over = a->ended = true;
    bool remote = a->remote;
    job_end(j, &ev, true);
    if (!remote)
        free(a);
    return 1;
}

/* ---- starting an attempt -------------------------------------------------------- */

static void *worker_main(void *arg);
static void start_local(struct job *j, const struct drv_gen_request *orig);
static struct drv_http_session *sess_get(struct drv_fleet *f);
static int job_canonical(struct job *j, const struct drv_gen_request *orig);
static int remote_begin(struct attempt *a, const struct drv_gen_request *orig);
static int remote_pump(void *ud);

/* Starts the job on j->node (chosen and reserved by choose()). */
/* orig: the client's request itself while generate() still holds it (NULL
 * later, from the queue or a failover: then the canonical body is decoded). */
static void start(struct job *j, const struct drv_gen_request *orig)
{
    struct drv_fleet *f = j->f;
    pthread_mutex_lock(&f->mu);
    enum drv_node_kind kind = f->nodes[j->node].kind;
    pthread_mutex_unlock(&f->mu);
    bool lent = !j->embed && kind != DRV_NODE_LOCAL && j->lend &&
                pthread_equal(pthread_self(), j->lend_thread);
    bool keeps_body = lent && (kind == DRV_NODE_DROVER || kind == DRV_NODE_OLLAMA);
    if (orig && j->body == NULL && !keeps_body && job_canonical(j, orig) != 0) {
        job_fail(j, 400, "cannot forward this request", true);
        return;
    }
    if (kind == DRV_NODE_LOCAL) {
        start_local(j, orig);
        return;
    }
    struct attempt *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        job_failover(j, 500, "out of memory", false);
        return;
    }
    a->job = j;
    a->remote = true;
    if (lent) {
        /* on the client's own thread: it runs the transfer itself, no hand-off */
        a->sess = sess_get(f);
        a->pooled = true;
        if (a->sess == NULL) {
            free(a);
            job_failover(j, 503, "out of memory", false);
            return;
        }
        if (remote_begin(a, orig) == 0)
            j->lend(j->lend_ud, remote_pump, a);
        return;
    }
    /* an idle worker takes it; without one, a new worker starts */
    pthread_mutex_lock(&f->mu);
    a->next = NULL;
    if (f->ready_tail)
        f->ready_tail->next = a;
    else
        f->ready = a;
    f->ready_tail = a;
    bool spawn = f->idle_workers == 0;
    if (!spawn)
        pthread_cond_signal(&f->work);
    else
        f->threads++;
    pthread_mutex_unlock(&f->mu);
    if (spawn) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256u << 10);
        if (pthread_create(&t, &attr, worker_main, f) != 0) {
            pthread_mutex_lock(&f->mu);
            if (--f->threads == 0)
                pthread_cond_broadcast(&f->idle);
            /* with no worker at all, nobody would ever take it */
            bool alone = f->threads == 0 && f->ready == a && a->next == NULL;
            if (alone)
                f->ready = f->ready_tail = NULL;
            pthread_mutex_unlock(&f->mu);
            if (alone) {
                free(a);
                drv_log(DRV_LOG_ERROR, "fleet: cannot start a worker thread");
                job_fail(j, 503, "the gateway cannot start a worker thread", true);
            }
        }
        pthread_attr_destroy(&attr);
    }
}

static int decode_canonical(const struct job *j, struct drv_api_req *ar, struct drv_err *err)
{
    if (j->body == NULL) { /* could not be made (out of memory) */
        memset(ar, 0, sizeof(*ar));
        drv_gen_request_init(&ar->gen);
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    return j->kind == DRV_GEN_CHAT ? drv_api_ollama_decode_chat(j->body, j->body_len, ar, err)
                                   : drv_api_ollama_decode_generate(j->body, j->body_len, ar, err);
}

static void embed_local_cb(void *ud, const struct drv_embed_result *r);

/* The embedding request for the job's node, from its canonical body. */
static struct drv_embed_request embed_request(const struct job *j,
                                              const struct drv_api_embed_req *er)
{
    return (struct drv_embed_request){.model = j->node_model,
                                      .inputs = er->inputs,
                                      .n_inputs = er->n_inputs,
                                      .truncate = er->truncate,
                                      .keep_alive_ms = er->keep_alive_ms};
}

static void start_local(struct job *j, const struct drv_gen_request *orig)
{
    struct drv_fleet *f = j->f;
    struct drv_err err;
    drv_err_init(&err);
    int rc;
    if (j->embed) {
        struct drv_api_embed_req er;
        rc = drv_api_ollama_decode_embed(j->body, j->body_len, &er, &err);
        if (rc == 0) {
            struct drv_embed_request r = embed_request(j, &er);
            rc = f->local->ops->embed(f->local, &r, embed_local_cb, j, &err);
        }
        drv_api_embed_req_release(&er);
    } else {
        struct attempt *a = calloc(1, sizeof(*a));
        struct drv_api_req ar;
        drv_gen_request_init(&ar.gen);
        bool decoded = a && orig == NULL;
        rc = a == NULL ? drv_err_set(&err, DRV_ENOMEM, "out of memory")
             : decoded ? decode_canonical(j, &ar, &err)
                       : 0;
        if (rc == 0) {
            struct drv_gen_request g = orig ? *orig : ar.gen;
            a->job = j;
            g.model = j->node_model;
            g.cancel = j->cancel;
            rc = f->local->ops->generate(f->local, &g, job_sink, a, &err);
        }
        if (decoded)
            drv_api_req_release(&ar);
        if (rc)
            free(a);
    }
    if (rc) /* no event was sent */
        job_failover(j,
                     rc == DRV_ENOENT   ? 404
                     : rc == DRV_EINVAL ? 400
                                        : 503,
                     err.msg, rc != DRV_ENOENT && rc != DRV_EINVAL && rc != DRV_ETOOBIG);
}

/* ---- remote attempts ------------------------------------------------------------- */

/* The parser, once the answer's type is known: a node may stream although it
 * was asked for a whole answer (or the reverse); its Content-Type says which. */
static int parser_ready(struct attempt *a)
{
    if (a->parser_ready)
        return 0;
    char ct[128] = "";
    bool stream = a->job->up_stream;
    if (drv_http_response_header(&a->resp, "Content-Type", ct, sizeof(ct)))
        stream = strstr(ct, "ndjson") || strstr(ct, "event-stream");
    if (drv_api_upstream_parser_init(&a->parser, a->wire, stream, a->job->model) != 0)
        return DRV_ENOMEM;
    a->parser_ready = true;
    return 0;
}

static int on_chunk(void *ud, const char *data, size_t len)
{
    struct attempt *a = ud;
    if (a->ended)
        return 0;
    if (parser_ready(a) != 0) {
        a->parse_fail = true;
        drv_strlcpy(a->error, "out of memory", sizeof(a->error));
        return 1;
    }
    struct drv_err err;
    drv_err_init(&err);
    int rc = drv_api_upstream_feed(&a->parser, data, len, job_sink, a, &err);
    if (rc < 0) {
        a->parse_fail = true;
        drv_strlcpy(a->error, err.msg, sizeof(a->error));
    }
    return !a->ended && (rc != 0 || a->over);
}

static void remote_embed(struct attempt *a, const struct fnode *nd, struct drv_http_request *rq,
                         struct drv_buf *body, struct drv_http_session *sess, struct drv_err *err);

/* ---- idle upstream sessions, for attempts that run on a lent thread ---------------- */

static struct drv_http_session *sess_get(struct drv_fleet *f)
{
    pthread_mutex_lock(&f->mu);
    struct drv_http_session *s = f->n_sess > 0 ? f->sess[--f->n_sess] : NULL;
    pthread_mutex_unlock(&f->mu);
    return s ? s : drv_http_session_new();
}

static void sess_put(struct drv_fleet *f, struct drv_http_session *s)
{
    pthread_mutex_lock(&f->mu);
    bool kept = f->n_sess < MAX_SESSIONS;
    if (kept)
        f->sess[f->n_sess++] = s;
    pthread_mutex_unlock(&f->mu);
    if (!kept)
        drv_http_session_free(s);
}

static void attempt_free(struct attempt *a)
{
    if (a->begun) {
        struct drv_err e;
        drv_http_session_end(a->sess, &e);
    }
    if (a->parser_ready)
        drv_api_upstream_parser_release(&a->parser);
    drv_http_response_release(&a->resp);
    drv_buf_release(&a->body);
    if (a->pooled && a->sess)
        sess_put(a->job_f, a->sess);
    free(a);
}

/* Starts a remote generation attempt's transfer on a->sess: the node's request
 * from the client's (orig, while generate() still holds it) or from the
 * canonical body. 0: the transfer runs (step it, then remote_finish); else the
 * attempt is over (failed over) and freed. */
static int remote_begin(struct attempt *a, const struct drv_gen_request *orig)
{
    struct job *j = a->job;
    struct drv_fleet *f = j->f;
    a->job_f = f;
    pthread_mutex_lock(&f->mu);
    struct fnode *nd = &f->nodes[j->node];
    enum drv_node_kind kind = nd->kind;
    a->cfg = &nd->cfg;
    pthread_mutex_unlock(&f->mu);
    drv_buf_init(&a->body, 64u << 20);
    drv_http_response_init(&a->resp);
    struct drv_err err;
    drv_err_init(&err);
    bool openai = kind == DRV_NODE_OPENAI, chat = j->kind == DRV_GEN_CHAT;
    a->wire = openai ? (chat ? DRV_WIRE_OPENAI_CHAT : DRV_WIRE_OPENAI_COMPLETION)
                     : (chat ? DRV_WIRE_OLLAMA_CHAT : DRV_WIRE_OLLAMA_GENERATE);
    snprintf(a->url, sizeof(a->url), "%s%s", a->cfg->url,
             openai ? (chat ? "/v1/chat/completions" : "/v1/completions")
                    : (chat ? "/api/chat" : "/api/generate"));
    int rc;
    if (orig) {
        rc = drv_api_upstream_body(orig, a->wire, j->up_stream, j->node_model, &a->body);
        if (rc == 0 && j->body == NULL) { /* an Ollama body: the canonical form too */
            j->body = malloc(a->body.len + 1);
            if (j->body == NULL)
                rc = DRV_ENOMEM;
            else
                memcpy(j->body, a->body.data, a->body.len + 1);
            j->body_len = a->body.len;
        }
    } else {
        struct drv_api_req ar;
        rc = decode_canonical(j, &ar, &err);
        if (rc == 0)
            rc = drv_api_upstream_body(&ar.gen, a->wire, j->up_stream, j->node_model, &a->body);
        drv_api_req_release(&ar);
    }
    if (rc) {
        job_failover(j, 400, err.msg[0] ? err.msg : "cannot translate the request for this node",
                     false);
        attempt_free(a);
        return -1;
    }
    a->rq = (struct drv_http_request){.url = a->url,
                                      .connect_timeout_ms = f->p.health_timeout_ms,
                                      .cancel = j->cancel,
                                      .bearer = a->cfg->api_key,
                                      .body = a->body.data,
                                      .body_len = a->body.len,
                                      .on_chunk = on_chunk,
                                      .ud = a,
                                      .stall_timeout_ms = f->p.stall_timeout_ms,
                                      .first_byte_timeout_ms = j->first_byte_ms,
                                      .gone = &f->nodes[j->node].gone,
                                      .gone_grace_ms = f->p.health_timeout_ms};
    rc = drv_http_session_begin(a->sess, &a->rq, &a->resp, &err);
    if (rc) {
        job_failover(j, 503, err.msg, false);
        attempt_free(a);
        return -1;
    }
    a->begun = true;
    return 0;
}

/* The transfer has finished: how the attempt ends (the client's answer, an
 * error, or a failover). The caller frees a. */
static void remote_finish(struct attempt *a)
{
    struct job *j = a->job; /* freed once a->over */
    struct drv_fleet *f = a->job_f;
    struct drv_err err;
    drv_err_init(&err);
    int rc = drv_http_session_result(a->sess, &err);
    struct drv_http_response *resp = &a->resp;
    if (!a->over && rc == 0 && resp->status >= 200 && resp->status < 300 && !a->parse_fail &&
        parser_ready(a) == 0 && drv_api_upstream_finish(&a->parser, job_sink, a, &err) < 0) {
        a->parse_fail = true; /* a whole answer that is not the JSON it should be */
        drv_strlcpy(a->error, err.msg, sizeof(a->error));
    }
    if (!a->over) {
        char msg[1200];
        int status = 502;
        bool node_fault = true;
        const char *name = a->cfg->name;
        if (is_cancelled(j)) {
            a->over = true;
            job_cancelled(j, true);
        } else if (a->parse_fail) {
            snprintf(msg, sizeof(msg), "node %s sent an answer drover cannot read: %s", name,
                     a->error);
        } else if (rc != 0) {
            snprintf(msg, sizeof(msg), "node %s failed: %s", name, err.msg);
            if (resp->status == 0 && !j->started) {
                /* nothing answered at all (refused, unreachable): down until a
                 * health check sees it again, not after MAX_FAILS more tries */
                pthread_mutex_lock(&f->mu);
                f->nodes[j->node].fails = MAX_FAILS - 1;
                pthread_mutex_unlock(&f->mu);
            }
        } else {
            char m[256];
            json_error_t je;
            json_t *e = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &je);
            json_t *ej = json_object_get(e, "error");
            const char *em = json_is_string(ej) ? json_string_value(ej)
                                                : json_string_value(json_object_get(ej, "message"));
            snprintf(m, sizeof(m), "%s", em ? em : "no message");
            json_decref(e);
            status = (int)resp->status;
            node_fault = status >= 500 && status != 503;
            snprintf(msg, sizeof(msg), "node %s answered %d: %s", name, status, m);
        }
        if (!a->over) {
            if (!j->started && retryable(status)) {
                a->over = true;
                job_failover(j, status, msg, node_fault && status != 404);
            } else if (!j->started) {
                a->over = true;
                job_fail(j, status, msg, true); /* the client's mistake: passed on */
            } else {
                /* mid-stream: the client gets an error event, never a silent end */
                drv_log(DRV_LOG_WARN, "fleet: %s", msg);
                pthread_mutex_lock(&f->mu);
                f->nodes[j->node].fails++;
                pthread_mutex_unlock(&f->mu);
                drv_api_upstream_parser_fail(&a->parser, 502, msg, job_sink, a);
            }
        }
    }
}

/* One step of an attempt on the client's lent thread (drv_http_stream_set_pump).
 * The clean-up is a step of its own: the client's answer goes out first. */
static int remote_pump(void *ud)
{
    struct attempt *a = ud;
    if (a->finished) {
        attempt_free(a);
        return 0;
    }
    if (drv_http_session_step(a->sess, PUMP_WAIT_MS))
        return 1;
    remote_finish(a);
    a->finished = true;
    return 1;
}

/* On a worker thread: the whole attempt. */
static void remote_run(struct attempt *a, struct drv_http_session *sess)
{
    struct job *j = a->job;
    a->job_f = j->f;
    if (sess == NULL) {
        job_failover(j, 503, "out of memory", false);
        free(a);
        return;
    }
    if (j->embed) {
        struct drv_fleet *f = j->f;
        struct fnode nd;
        pthread_mutex_lock(&f->mu);
        nd = f->nodes[j->node]; /* the fields used here do not change */
        pthread_mutex_unlock(&f->mu);
        struct drv_buf body;
        drv_buf_init(&body, 64u << 20);
        struct drv_err err;
        drv_err_init(&err);
        char url[512];
        struct drv_http_request rq = {.url = url,
                                      .connect_timeout_ms = f->p.health_timeout_ms,
                                      .cancel = j->cancel,
                                      .bearer = nd.cfg.api_key};
        remote_embed(a, &nd, &rq, &body, sess, &err);
        drv_buf_release(&body);
        free(a);
        return;
    }
    a->sess = sess;
    if (remote_begin(a, NULL) != 0)
        return;
    while (drv_http_session_step(sess, PUMP_WAIT_MS))
        ;
    remote_finish(a);
    attempt_free(a);
}

/* A worker runs remote attempts one after another with one HTTP session, so
 * that its connections to the nodes stay open between requests. Workers wait
 * for work; they end when the fleet stops. */
static void *worker_main(void *arg)
{
    struct drv_fleet *f = arg;
    struct drv_http_session *sess = drv_http_session_new(); /* NULL: out of memory */
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (f->ready == NULL && !f->stopping) {
            f->idle_workers++;
            pthread_cond_wait(&f->work, &f->mu);
            f->idle_workers--;
        }
        struct attempt *a = f->ready;
        if (a == NULL)
            break; /* stopping, nothing left */
        f->ready = a->next;
        if (f->ready == NULL)
            f->ready_tail = NULL;
        pthread_mutex_unlock(&f->mu);
        remote_run(a, sess);
        pthread_mutex_lock(&f->mu);
    }
    if (--f->threads == 0)
        pthread_cond_broadcast(&f->idle);
    pthread_mutex_unlock(&f->mu);
    drv_http_session_free(sess);
    return NULL;
}

/* ---- embeddings ------------------------------------------------------------------ */

static void embed_done(struct job *j, const struct drv_embed_result *r)
{
    struct drv_fleet *f = j->f;
    pthread_mutex_lock(&f->mu);
    struct fstat *s = drv_fleet_stat(f, j->node, j->key);
    if (s) {
        s->requests++;
        s->errors += r->status != 200;
        s->prompt_tokens += r->prompt_tokens > 0 ? (uint64_t)r->prompt_tokens : 0;
        double secs = (double)(drv_now_ns() - j->t0) / 1e9;
        hist_add(s->lat_b, &s->lat_n, &s->lat_sum, secs);
    }
    f->nodes[j->node].in_flight--;
    if (f->qhead)
        pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    j->ecb(j->ud, r);
    job_free(j);
}

static void embed_local_cb(void *ud, const struct drv_embed_result *r)
{
    struct job *j = ud;
    if (r->status != 200 && retryable(r->status) && !is_cancelled(j)) {
        job_failover(j, r->status, r->message ? r->message : "error", r->status != 404);
        return;
    }
    struct drv_embed_result copy = *r;
    copy.model = j->model;
    embed_done(j, &copy);
}

static void remote_embed(struct attempt *a, const struct fnode *nd, struct drv_http_request *rq,
                         struct drv_buf *body, struct drv_http_session *sess, struct drv_err *err)
{
    struct job *j = a->job;
    bool openai = nd->kind == DRV_NODE_OPENAI;
    char *url = (char *)rq->url;
    snprintf(url, 512, "%s%s", nd->cfg.url, openai ? "/v1/embeddings" : "/api/embed");
    struct drv_api_embed_req er;
    int rc = drv_api_ollama_decode_embed(j->body, j->body_len, &er, err);
    if (rc == 0) {
        struct drv_embed_request r = embed_request(j, &er);
        rc = drv_api_upstream_embed_body(&r, openai, j->node_model, body);
    }
    drv_api_embed_req_release(&er);
    if (rc) {
        job_failover(j, 400, "cannot translate the request for this node", false);
        return;
    }
    rq->body = body->data;
    rq->body_len = body->len;
    rq->max_body_bytes = 1u << 30;
    struct drv_http_response resp;
    drv_http_response_init(&resp);
    resp.body.cap = 1u << 30;
    rc = drv_http_session_fetch(sess, rq, &resp, err);
    float *rows = NULL;
    size_t n = 0, dim = 0;
    int32_t ptok = 0;
    char msg[1200];
    if (rc == 0 && resp.status == 200 &&
        drv_api_upstream_embed_parse(resp.body.data ? resp.body.data : "", resp.body.len, openai,
                                     &rows, &n, &dim, &ptok, err) == 0) {
        struct drv_embed_result r = {.model = j->model,
                                     .status = 200,
                                     .data = rows,
                                     .n = n,
                                     .dim = dim,
                                     .prompt_tokens = ptok,
                                     .total_ns = drv_now_ns() - j->t0};
        embed_done(j, &r);
        free(rows);
    } else if (is_cancelled(j)) {
        struct drv_embed_result r = {.model = j->model, .status = 499, .message = "cancelled"};
        embed_done(j, &r);
    } else {
        int status = rc == 0 && resp.status != 200 ? (int)resp.status : 502;
        snprintf(msg, sizeof(msg), "node %s: %s", nd->cfg.name,
                 rc == 0 && resp.status != 200 ? "embedding failed" : err->msg);
        if (retryable(status)) {
            job_failover(j, status, msg, status >= 500 || rc != 0);
        } else {
            struct drv_embed_result r = {.model = j->model, .status = status, .message = msg};
            embed_done(j, &r);
        }
    }
    drv_http_response_release(&resp);
}

/* ---- the dispatcher: queued jobs and failovers ------------------------------------ */

static void *dispatch_main(void *arg)
{
    struct drv_fleet *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        struct job *prev = NULL, *j = f->qhead, *go = NULL;
        int why = 0; /* 1 cancelled, 2 no node left */
        bool alive = false, exists = false;
        while (j) {
            if (is_cancelled(j))
                why = 1;
            else if (choose(f, j, &alive, &exists) >= 0)
                why = 0;
            else if (!alive)
                why = 2;
            else {
                prev = j;
                j = j->next;
                continue;
            }
            /* take j off the queue */
            if (prev)
                prev->next = j->next;
            else
                f->qhead = j->next;
            if (f->qtail == j)
                f->qtail = prev;
            f->qlen--;
            go = j;
            break;
        }
        if (go == NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L; /* cancelled waiters are noticed within 100 ms */
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&f->wake, &f->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&f->mu);
        if (why == 1) {
            go->node = -1;
            if (go->embed)
                job_fail(go, 499, "cancelled", false);
            else
                job_cancelled(go, false);
        } else if (why == 2) {
            char msg[1200];
            if (go->last_error[0])
                snprintf(msg, sizeof(msg), "no node could answer for model \"%s\": %s", go->model,
                         go->last_error);
            else
                snprintf(msg, sizeof(msg), "no node that has model \"%s\" is up", go->model);
            int status = go->last_status && go->last_status != 404 ? 502 : 503;
            if (!exists)
                status = 404;
            go->node = -1;
            job_fail(go, status, msg, false);
        } else {
            start(go, NULL);
        }
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void *health_main(void *arg)
{
    struct drv_fleet *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ms = f->p.health_interval_ms;
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f->health, &f->mu, &ts);
        if (f->stopping)
            break;
        pthread_mutex_unlock(&f->mu);
        drv_fleet_poll(f);
        pthread_mutex_lock(&f->mu);
        pthread_cond_signal(&f->wake); /* a node that came back may take queued work */
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ---- the backend --------------------------------------------------------------------- */

/* Under mu: the config's default think for a model (by name, name before ':' or
 * family), -1 when none. */
static int think_default(const struct drv_fleet *f, const char *key)
{
    const struct drv_model_desc *meta = model_meta(f, key);
    char base[160];
    drv_strlcpy(base, key, sizeof(base));
    char *colon = strchr(base, ':');
    if (colon)
        *colon = '\0';
    for (int i = 0; i < f->p.n_think; i++) {
        char k[160];
        drv_fleet_model_key(f->p.think[i].name, k, sizeof(k));
        const char *n = f->p.think[i].name;
        if (strcmp(k, key) == 0 || strcmp(n, key) == 0 || strcmp(n, base) == 0 ||
            (meta && strcmp(n, meta->family) == 0))
            return f->p.think[i].think;
    }
    return -1;
}

static struct job *job_new(struct drv_fleet *f, const char *model, const char *route,
                           atomic_bool *cancel, struct drv_err *err)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        drv_err_set(err, DRV_ENOMEM, "out of memory");
        return NULL;
    }
    j->f = f;
    j->node = -1;
    j->t0 = drv_now_ns();
    drv_buf_init(&j->whole_text[0], DRV_API_MAX_TEXT);
    drv_buf_init(&j->whole_text[1], DRV_API_MAX_TEXT);
    j->cancel = cancel;
    drv_strlcpy(j->model, model, sizeof(j->model));
    drv_fleet_model_key(model, j->key, sizeof(j->key));
    j->route = f->p.route;
    drv_strlcpy(j->pinned, f->p.pinned, sizeof(j->pinned));
    if (route && route[0] && !drv_route_parse(route, &j->route, j->pinned, sizeof(j->pinned))) {
        drv_err_set(err, DRV_EINVAL,
                    "X-Drover-Route: \"%s\" is not fastest, least-busy, round-robin, priority "
                    "or pinned=NODE",
                    route);
        job_free(j);
        return NULL;
    }
    if (j->route == DRV_ROUTE_PINNED) {
        bool found = false;
        for (int i = 0; i < f->n; i++)
            found = found || strcmp(f->nodes[i].cfg.name, j->pinned) == 0;
        if (!found) {
            drv_err_set(err, DRV_EINVAL, "X-Drover-Route: no node named \"%s\"", j->pinned);
            job_free(j);
            return NULL;
        }
    }
    return j;
}

/* The job's canonical form, from the client's request: what an Ollama node would
 * be sent (the model field aside: every attempt names the node's own). Made only
 * when the request may have to be sent again from it — queued, failed over, or
 * handed to another thread; a first attempt relayed to an Ollama-API node on the
 * client's own thread keeps the body it sent instead. */
static int job_canonical(struct job *j, const struct drv_gen_request *orig)
{
    struct drv_buf body;
    drv_buf_init(&body, 64u << 20);
    int rc = drv_api_upstream_body(
        orig, orig->kind == DRV_GEN_CHAT ? DRV_WIRE_OLLAMA_CHAT : DRV_WIRE_OLLAMA_GENERATE, true,
        NULL, &body);
    if (rc) {
        drv_buf_release(&body);
        return rc;
    }
    j->body_len = body.len;
    j->body = drv_buf_steal(&body);
    return 0;
}

/* Places a new job: on a node now, in the queue, or refuses. */
static int submit(struct drv_fleet *f, struct job *j, const struct drv_gen_request *orig,
                  struct drv_err *err)
{
    bool alive, exists;
    pthread_mutex_lock(&f->mu);
    int node = choose(f, j, &alive, &exists);
    if (node < 0) {
        int rc = 0;
        if (!exists)
            rc = drv_err_set(err, DRV_ENOENT, "model \"%s\" not found on any node%s%s", j->model,
                             j->route == DRV_ROUTE_PINNED ? " named " : "",
                             j->route == DRV_ROUTE_PINNED ? j->pinned : "");
        else if (!alive)
            rc = drv_err_set(err, DRV_ETOOBIG, "no node that has model \"%s\" is up", j->model);
        else if (f->qlen >= f->p.max_queue) {
            f->rejected++;
            rc = drv_err_set(err, DRV_ETOOBIG,
                             "every node with model \"%s\" is busy and %d requests are waiting",
                             j->model, f->qlen);
        } else if (job_canonical(j, orig) != 0) {
            rc = drv_err_set(err, DRV_EINVAL, "cannot forward this request");
        }
        if (rc == 0)
            enqueue(f, j, false);
        pthread_mutex_unlock(&f->mu);
        if (rc)
            job_free(j);
        return rc;
    }
    pthread_mutex_unlock(&f->mu);
    start(j, orig);
    return 0;
}

static int fleet_generate(struct drv_backend *b, const struct drv_gen_request *req,
                          drv_gen_sink sink, void *sink_ud, struct drv_err *err)
{
    struct drv_fleet *f = b->impl;
    if (req->model == NULL || req->model[0] == '\0')
        return drv_err_set(err, DRV_EINVAL, "model is required");
    struct job *j = job_new(f, req->model, req->route, req->cancel, err);
    if (j == NULL)
        return err->code;
    j->kind = req->kind;
    j->whole = req->whole;
    j->lend = req->lend;
    j->lend_ud = req->lend_ud;
    j->lend_thread = pthread_self();
    j->sink = sink;
    j->ud = sink_ud;
    struct drv_gen_request r = *req;
    if (r.think < 0) {
        pthread_mutex_lock(&f->mu);
        r.think = think_default(f, j->key);
        pthread_mutex_unlock(&f->mu);
    }
    size_t chars = r.kind == DRV_GEN_CHAT ? 0 : strlen(r.prompt ? r.prompt : "");
    for (size_t i = 0; i < r.n_messages; i++)
        chars += strlen(r.messages[i].content);
    j->prompt_est = (int)(chars / 4) + 8;
    j->gen_est = r.num_predict > 0 && r.num_predict < 512 ? r.num_predict : 256;
    j->up_stream = !j->whole || r.num_predict <= 0 || r.num_predict > WHOLE_MAX_TOKENS;
    return submit(f, j, &r, err);
}

static int fleet_embed(struct drv_backend *b, const struct drv_embed_request *req, drv_embed_cb cb,
                       void *cb_ud, struct drv_err *err)
{
    struct drv_fleet *f = b->impl;
    if (req->model == NULL || req->model[0] == '\0')
        return drv_err_set(err, DRV_EINVAL, "model is required");
    struct job *j = job_new(f, req->model, NULL, NULL, err);
    if (j == NULL)
        return err->code;
    j->embed = true;
    j->ecb = cb;
    j->ud = cb_ud;
    json_t *in = json_array();
    for (size_t i = 0; in && i < req->n_inputs; i++)
        if (json_array_append_new(in, json_string(req->inputs[i])))
            json_decref(in), in = NULL;
    json_t *o =
        in ? json_pack("{s:s,s:o,s:b}", "model", req->model, "input", in, "truncate", req->truncate)
           : NULL;
    if (o && req->keep_alive_ms != INT64_MIN)
        json_object_set_new(o, "keep_alive",
                            json_integer(req->keep_alive_ms < 0 ? -1 : req->keep_alive_ms / 1000));
    j->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (j->body == NULL) {
        job_free(j);
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    j->body_len = strlen(j->body);
    return submit(f, j, NULL, err);
}

/* The union of the nodes' lists: one entry per name (running: per node). */
static int fleet_list(struct drv_backend *b, struct drv_model_desc *out, int cap, bool running)
{
    struct drv_fleet *f = b->impl;
    int n = 0;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->n; i++) {
        const struct fnode *nd = &f->nodes[i];
        if (!nd->up)
            continue;
        if (running) {
            for (int m = 0; m < nd->n_running; m++, n++) {
                if (n < cap) {
                    out[n] = nd->running[m];
                    drv_strlcpy(out[n].node, nd->cfg.name, sizeof(out[n].node));
                }
            }
            continue;
        }
        for (int m = 0; m < nd->n_models; m++) {
            const struct fmodel *fm = &nd->models[m];
            bool dup = false;
            for (int k = 0; k < i && !dup; k++)
                for (int q = 0; f->nodes[k].up && q < f->nodes[k].n_models && !dup; q++)
                    dup = strcmp(f->nodes[k].models[q].key, fm->key) == 0;
            if (dup)
                continue;
            if (n < cap) {
                out[n] = fm->d;
                if (!strchr(out[n].name, ':') || strchr(out[n].name, '/')) {
                    /* a file name or path on an OpenAI node: listed by its key */
                    drv_strlcpy(out[n].name, fm->key, sizeof(out[n].name));
                    drv_strlcpy(out[n].model, fm->key, sizeof(out[n].model));
                }
                drv_strlcpy(out[n].node, nd->cfg.name, sizeof(out[n].node));
            }
            n++;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

static int fleet_list_models(struct drv_backend *b, struct drv_model_desc *out, int cap)
{
    return fleet_list(b, out, cap, false);
}

static int fleet_list_running(struct drv_backend *b, struct drv_model_desc *out, int cap)
{
    return fleet_list(b, out, cap, true);
}

/* /api/show from a node that speaks Ollama's API and has the model (a drover or
 * an Ollama node): its template, parameters, capabilities and full model_info,
 * which the gateway's own listing does not have. The first node that answers. */
static int fleet_show(struct drv_backend *b, const char *model, bool verbose, struct drv_buf *out,
                      struct drv_err *err)
{
    struct drv_fleet *f = b->impl;
    char key[160];
    drv_fleet_model_key(model, key, sizeof(key));
    bool tried[DRV_FLEET_MAX_NODES + 1] = {false};
    for (;;) {
        char url[320], name[256];
        const char *bearer = NULL;
        int pick = -1;
        pthread_mutex_lock(&f->mu);
        const struct drv_model_desc *meta = model_meta(f, key);
        for (int i = 0; i < f->n && pick < 0; i++) {
            struct fnode *nd = &f->nodes[i];
            if (tried[i] || !nd->up || (nd->kind != DRV_NODE_DROVER && nd->kind != DRV_NODE_OLLAMA))
                continue;
            const struct fmodel *m = node_model(f, i, key, meta);
            if (m == NULL)
                continue;
            pick = i;
            snprintf(url, sizeof(url), "%s/api/show", nd->cfg.url);
            drv_strlcpy(name, m->d.name, sizeof(name));
            bearer = nd->cfg.api_key;
        }
        pthread_mutex_unlock(&f->mu);
        if (pick < 0)
            return drv_err_set(err, DRV_ENOENT, "no node can describe model \"%s\"", model);
        tried[pick] = true;
        json_t *q = json_pack("{s:s,s:b}", "model", name, "verbose", verbose);
        char *body = q ? json_dumps(q, JSON_COMPACT) : NULL;
        json_decref(q);
        if (body == NULL)
            return drv_err_set(err, DRV_ENOMEM, "out of memory");
        struct drv_http_request rq = {.url = url,
                                      .body = body,
                                      .body_len = strlen(body),
                                      .bearer = bearer,
                                      .connect_timeout_ms = f->p.health_timeout_ms,
                                      .timeout_ms = 4 * f->p.health_timeout_ms,
                                      .max_body_bytes = 64u << 20};
        struct drv_http_response r;
        drv_http_response_init(&r);
        struct drv_err e;
        drv_err_init(&e);
        int rc = drv_http_fetch(&rq, &r, &e);
        free(body);
        /* a JSON object from a 200 is the answer; anything else: the next node */
        json_t *j =
            rc == 0 && r.status == 200 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
        bool ok = json_is_object(j) && json_object_get(j, "error") == NULL;
        json_decref(j);
        if (ok) {
            drv_buf_reset(out);
            rc = drv_buf_append(out, r.body.data, r.body.len);
        }
        drv_http_response_release(&r);
        if (ok)
            return rc ? drv_err_set(err, rc, "answer too large") : 0;
    }
}

static const struct drv_backend_ops fleet_ops = {
    .generate = fleet_generate,
    .embed = fleet_embed,
    .list_models = fleet_list_models,
    .list_running = fleet_list_running,
    .show = fleet_show,
};

struct drv_backend *drv_fleet_backend(struct drv_fleet *f)
{
    return &f->backend;
}

struct drv_fleet *drv_fleet_new(const struct drv_fleet_params *p, struct drv_backend *local,
                                struct drv_err *err)
{
    struct drv_fleet *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        drv_err_set(err, DRV_ENOMEM, "out of memory");
        return NULL;
    }
    f->backend.ops = &fleet_ops;
    f->backend.impl = f;
    f->p = *p;
    /* the owned arrays are shared with the caller's p: copy them */
    f->p.keys = NULL;
    f->p.n_keys = 0;
    f->p.aliases = NULL;
    f->p.think = NULL;
    if (p->n_aliases) {
        f->p.aliases = malloc((size_t)p->n_aliases * sizeof(*p->aliases));
        if (f->p.aliases)
            memcpy(f->p.aliases, p->aliases, (size_t)p->n_aliases * sizeof(*p->aliases));
    }
    if (p->n_think) {
        f->p.think = malloc((size_t)p->n_think * sizeof(*p->think));
        if (f->p.think)
            memcpy(f->p.think, p->think, (size_t)p->n_think * sizeof(*p->think));
    }
    if ((p->n_aliases && f->p.aliases == NULL) || (p->n_think && f->p.think == NULL)) {
        drv_fleet_params_release(&f->p);
        free(f);
        drv_err_set(err, DRV_ENOMEM, "out of memory");
        return NULL;
    }
    f->local = local;
    if (local && p->local) {
        struct fnode *nd = &f->nodes[f->n++];
        drv_strlcpy(nd->cfg.name, "local", sizeof(nd->cfg.name));
        drv_strlcpy(nd->cfg.url, "(this process)", sizeof(nd->cfg.url));
        nd->cfg.kind = nd->kind = DRV_NODE_LOCAL;
        nd->cfg.max_concurrent = p->local_max_concurrent;
        nd->cfg.priority = 0;
    }
    for (int i = 0; i < p->n_nodes; i++) {
        struct fnode *nd = &f->nodes[f->n++];
        nd->cfg = p->nodes[i];
        nd->kind = nd->cfg.kind;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->wake, NULL);
    pthread_cond_init(&f->health, NULL);
    pthread_cond_init(&f->idle, NULL);
    pthread_cond_init(&f->work, NULL);
    f->poll_sess = drv_http_session_new();
    if (f->poll_sess == NULL) {
        drv_fleet_free(f);
        drv_err_set(err, DRV_ENOMEM, "out of memory");
        return NULL;
    }
    drv_fleet_poll(f);
    drv_fleet_seed_rates(f);
    if (pthread_create(&f->dispatch_thr, NULL, dispatch_main, f) == 0)
        f->dispatch_started = true;
    if (pthread_create(&f->health_thr, NULL, health_main, f) == 0)
        f->health_started = true;
    if (!f->dispatch_started || !f->health_started) {
        drv_fleet_free(f);
        drv_err_set(err, DRV_ENOMEM, "cannot start the fleet's threads");
        return NULL;
    }
    return f;
}

void drv_fleet_free(struct drv_fleet *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_broadcast(&f->wake);
    pthread_cond_broadcast(&f->health);
    pthread_cond_broadcast(&f->work);
    pthread_mutex_unlock(&f->mu);
    if (f->dispatch_started)
        pthread_join(f->dispatch_thr, NULL);
    if (f->health_started)
        pthread_join(f->health_thr, NULL);
    /* queued jobs end; running remote ones end when their clients' cancel flags
     * (set when the HTTP server stopped) reach the transfers */
    pthread_mutex_lock(&f->mu);
    struct job *q = f->qhead;
    f->qhead = f->qtail = NULL;
    f->qlen = 0;
    pthread_mutex_unlock(&f->mu);
    while (q) {
        struct job *next = q->next;
        q->node = -1;
        if (q->embed)
            job_fail(q, 503, "the gateway is stopping", false);
        else
            job_cancelled(q, false);
        q = next;
    }
    pthread_mutex_lock(&f->mu);
    while (f->threads > 0)
        pthread_cond_wait(&f->idle, &f->mu);
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->n; i++) {
        free(f->nodes[i].models);
        free(f->nodes[i].running);
    }
    for (int i = 0; i < f->n_sess; i++)
        drv_http_session_free(f->sess[i]);
    drv_http_session_free(f->poll_sess);
    free(f->stats);
    drv_fleet_params_release(&f->p);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->wake);
    pthread_cond_destroy(&f->health);
    pthread_cond_destroy(&f->idle);
    pthread_cond_destroy(&f->work);
    free(f);
}
