/* fleet internals shared by fleet.c (routing, requests) and poll.c (health,
 * listings, metrics). Only src/fleet/ includes this. */
#ifndef DRV_FLEET_INT_H
#define DRV_FLEET_INT_H

#include "fleet/fleet.h"

#include <pthread.h>
#include <stdatomic.h>

#define N_BUCKETS    13  /* histogram upper bounds in seconds, then +Inf */
#define MAX_SESSIONS 128 /* idle upstream HTTP sessions kept (their connections stay open) */
extern const double drv_fleet_buckets[N_BUCKETS];

/* What the fleet knows of one model on one node: counters for /metrics and the
 * measured rates routing uses (EWMA over live traffic, seeded from bench
 * history). */
struct fstat {
    int node;
    char key[160]; /* drv_fleet_model_key of the model */
    uint64_t requests, errors, failovers, prompt_tokens, gen_tokens, exhausted;
    uint64_t lat_b[N_BUCKETS + 1], ttft_b[N_BUCKETS + 1], lat_n, ttft_n;
    double lat_sum, ttft_sum;
    double pp_tps, tg_tps, load_ms; /* 0 = not measured */
    int samples;                    /* requests that fed the rates */
    bool seeded;                    /* the rates came from bench history */
};

struct fmodel {
    char key[160];
    struct drv_model_desc d; /* d.name: the node's own name for it */
    bool loaded;
};

struct fnode {
    struct drv_fleet_node_cfg cfg;
    enum drv_node_kind kind; /* detected when cfg.kind is AUTO */
    bool up;
    int fails;        /* consecutive failures (passive and active) */
    int unanswered;   /* consecutive health checks that got no answer at all */
    atomic_bool gone; /* two of them: silent transfers stop (one may be a slow moment) */
    char error[256];
    char version[64];
    struct fmodel *models; /* available, loaded flag from the running list */
    int n_models;
    struct drv_model_desc *running;
    int n_running;
    int in_flight;
};

struct job;
struct attempt;

struct drv_fleet {
    struct drv_backend backend;
    struct drv_fleet_params p;
    struct drv_backend *local;
    struct fnode nodes[DRV_FLEET_MAX_NODES + 1];
    int n;
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* dispatcher: room freed, job queued, stopping */
    pthread_cond_t health; /* health thread: stopping, poll now */
    pthread_cond_t idle;   /* threads == 0 */
    pthread_cond_t work;   /* workers: an attempt is ready, stopping */
    bool stopping;
    bool health_started, dispatch_started;
    pthread_t health_thr, dispatch_thr;
    struct job *qhead, *qtail;
    int qlen;
    int threads; /* worker threads alive */
    unsigned rr;
    struct fstat *stats;
    int n_stats, cap_stats;
    uint64_t rejected;                  /* 503: queue full */
    struct attempt *ready, *ready_tail; /* remote attempts waiting for a worker */
    int idle_workers;
    struct drv_http_session *sess[MAX_SESSIONS]; /* idle, for attempts on lent threads */
    int n_sess;
    /* the health polls' connections, kept from one poll to the next (used by
     * drv_fleet_poll alone: at start, then on the health thread) */
    struct drv_http_session *poll_sess;
};

/* Under f->mu: the stats entry of node/key, created when missing (NULL when out
 * of memory). */
struct fstat *drv_fleet_stat(struct drv_fleet *f, int node, const char *key);
/* Polls every node once (blocking, without f->mu held). */
void drv_fleet_poll(struct drv_fleet *f);
/* Seeds measured rates from the bench history (after the first poll). */
void drv_fleet_seed_rates(struct drv_fleet *f);

#endif
