/* fleet — the gateway: nodes (this process's engine, other drovers, Ollama,
 * llama-server and other OpenAI servers) behind one backend.
 *
 * The fleet is a struct drv_backend: the API layer (api/routes.c) decodes a
 * client's request in whichever API it speaks and hands it here; the fleet
 * picks a node by the routing policy, forwards the request in the node's own
 * API (api/upstream.c translates both ways) and relays the node's events as
 * they arrive, marked with the node's name (X-Drover-Node).
 *
 * Nodes and their models are learnt by a health thread that polls every node
 * each health interval (/api/tags + /api/ps, or /v1/models); a node that does
 * not answer is down until it answers again. A request whose node fails before
 * the first token goes to the next candidate; one that fails after it ends
 * with an error event. Requests that find every candidate at its
 * max_concurrent wait in a bounded queue.
 *
 * Configuration (drover.conf):
 *   [fleet]
 *   route = fastest          ; fastest | least-busy | round-robin | priority | pinned=NODE
 *   health_interval = 5s     ; active checks; durations as Ollama's keep_alive
 *   health_timeout = 2s
 *   stall_timeout = 120s     ; a node that sends nothing this long has failed (before
 *                            ; its first token: plus 3x the predicted load and prompt time)
 *   max_queue = 64           ; requests waiting for a free node before 503
 *   local = yes              ; this process's engine is node "local"
 *   local_max_concurrent = 16
 *   api_key = KEY            ; keys clients must present (repeatable); or
 *   api_keys_file = FILE     ; one key per line
 *   history = FILE           ; bench history that seeds measured rates (default store)
 *   [node NAME]
 *   url = http://10.0.0.20:11434
 *   kind = ollama            ; drover | ollama | openai; detected when omitted
 *   api_key_file = FILE      ; sent upstream as a bearer key, never logged
 *   max_concurrent = 4
 *   priority = 1             ; lower first (policy "priority")
 *   hw = FILE                ; its machine (`drover hw --json` there), for drover doctor
 *   [alias NAME]
 *   model = OTHER            ; NAME and OTHER are one model on every node
 *   [think]
 *   qwen3 = false            ; default think per model name or family */
#ifndef DRV_FLEET_H
#define DRV_FLEET_H

#include "backend/backend.h"
#include "base/base.h"
#include "base/config.h"

#include <stdbool.h>
#include <stdint.h>

#define DRV_FLEET_MAX_NODES 32

enum drv_node_kind {
    DRV_NODE_AUTO,   /* detect */
    DRV_NODE_LOCAL,  /* this process's engine */
    DRV_NODE_DROVER, /* another drover (Ollama API) */
    DRV_NODE_OLLAMA,
    DRV_NODE_OPENAI /* llama-server and other OpenAI-compatible servers */
};

enum drv_route {
    DRV_ROUTE_FASTEST,     /* predicted finish time: measured rates, queue, cold load */
    DRV_ROUTE_LEAST_BUSY,  /* fewest requests in flight */
    DRV_ROUTE_ROUND_ROBIN, /* in turn */
    DRV_ROUTE_PRIORITY,    /* lowest priority value that is up and has room */
    DRV_ROUTE_PINNED       /* one named node */
};

const char *drv_node_kind_name(enum drv_node_kind k);
/* "fastest", "least-busy", "round-robin", "priority", "pinned=NODE" (also
 * "pinned:NODE"); the node name goes to pinned (pinned_size bytes). */
bool drv_route_parse(const char *s, enum drv_route *out, char *pinned, size_t pinned_size);

struct drv_fleet_node_cfg {
    char name[64];
    char url[256]; /* base URL, no trailing slash */
    enum drv_node_kind kind;
    char api_key[512]; /* "" = none */
    int max_concurrent;
    int priority;
};

struct drv_fleet_think {
    char name[128]; /* model name or family */
    int think;      /* 0 / 1 */
};

struct drv_fleet_params {
    enum drv_route route;
    char pinned[64];
    int64_t health_interval_ms; /* default 5000 */
    int64_t health_timeout_ms;  /* default 2000 */
    int64_t stall_timeout_ms;   /* default 120000 */
    int max_queue;              /* default 64 */
    bool local;                 /* default true */
    int local_max_concurrent;   /* default 16 */
    char history[512];          /* bench history db; "" = the default store */
    struct drv_fleet_node_cfg nodes[DRV_FLEET_MAX_NODES];
    int n_nodes;
    char **keys; /* client API keys (owned; drv_fleet_params_release) */
    int n_keys;
    char (*aliases)[2][128]; /* pairs of names that are one model (owned) */
    int n_aliases;
    struct drv_fleet_think *think; /* owned */
    int n_think;
};

void drv_fleet_params_init(struct drv_fleet_params *p);
void drv_fleet_params_release(struct drv_fleet_params *p);
/* Reads [fleet], [node *], [alias *] and [think] from cfg (NULL = none) into
 * *p (initialised here). A node without url, an unknown kind or route, a bad
 * number or an unreadable key file fail with DRV_EINVAL and say where. */
int drv_fleet_params_from_config(const struct drv_config *cfg, struct drv_fleet_params *p,
                                 struct drv_err *err);

struct drv_fleet;

/* Starts a fleet over p's nodes plus `local` (this process's engine, NULL =
 * none) as node "local" when p->local. Detects node kinds and polls every node
 * once before returning (at most about health_timeout), then keeps polling on
 * a health thread. p is copied. */
struct drv_fleet *drv_fleet_new(const struct drv_fleet_params *p, struct drv_backend *local,
                                struct drv_err *err);
/* Stops polling; requests in flight end (cancelled) before it returns. */
void drv_fleet_free(struct drv_fleet *f);
struct drv_backend *drv_fleet_backend(struct drv_fleet *f);
/* Prometheus text: per node and model requests, errors, failovers, tokens,
 * latency and TTFT histograms; node up / in flight; queue depth. */
int drv_fleet_metrics(void *f, struct drv_buf *out);
/* The node table as JSON: {"route":..., "nodes":[{name, url, kind, version, up,
 * error, in_flight, max_concurrent, priority, models:[{name, loaded, pp_tps,
 * tg_tps, samples}]}]}. */
int drv_fleet_nodes_json(void *f, struct drv_buf *out);

/* "x" and "x:latest" are one name; a path or file name counts by its stem
 * ("/m/stories260K.gguf" -> "stories260K:latest"). out gets the key. */
void drv_fleet_model_key(const char *name, char *out, size_t out_size);

#endif
