/* fleet/config: the gateway's settings from drover.conf. */
#include "api/api.h"
#include "fleet/fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[] = {"auto", "local", "drover", "ollama", "openai"};

const char *drv_node_kind_name(enum drv_node_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

bool drv_route_parse(const char *s, enum drv_route *out, char *pinned, size_t pinned_size)
{
    static const struct {
        const char *name;
        enum drv_route r;
    } t[] = {{"fastest", DRV_ROUTE_FASTEST},
             {"least-busy", DRV_ROUTE_LEAST_BUSY},
             {"round-robin", DRV_ROUTE_ROUND_ROBIN},
             {"priority", DRV_ROUTE_PRIORITY}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (strcasecmp(s, t[i].name) == 0) {
            *out = t[i].r;
            return true;
        }
    }
    if (strncasecmp(s, "pinned", 6) == 0 && (s[6] == '=' || s[6] == ':') && s[7]) {
        *out = DRV_ROUTE_PINNED;
        if (pinned)
            drv_strlcpy(pinned, s + 7, pinned_size);
        return true;
    }
    return false;
}

void drv_fleet_model_key(const char *name, char *out, size_t out_size)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    char tmp[256];
    drv_strlcpy(tmp, base, sizeof(tmp));
    size_t n = strlen(tmp);
    if (n > 5 && strcasecmp(tmp + n - 5, ".gguf") == 0)
        tmp[n - 5] = '\0';
    snprintf(out, out_size, strchr(tmp, ':') ? "%s" : "%s:latest", tmp);
}

void drv_fleet_params_init(struct drv_fleet_params *p)
{
    memset(p, 0, sizeof(*p));
    p->route = DRV_ROUTE_FASTEST;
    p->health_interval_ms = 5000;
    p->health_timeout_ms = 2000;
    p->stall_timeout_ms = 120000;
    p->max_queue = 64;
    p->local = true;
    p->local_max_concurrent = 16;
}

void drv_fleet_params_release(struct drv_fleet_params *p)
{
    for (int i = 0; i < p->n_keys; i++)
        free(p->keys[i]);
    free(p->keys);
    free(p->aliases);
    free(p->think);
    p->keys = NULL;
    p->aliases = NULL;
    p->think = NULL;
    p->n_keys = p->n_aliases = p->n_think = 0;
}

static int add_key(struct drv_fleet_params *p, const char *k)
{
    if (k[0] == '\0')
        return 0;
    char **nk = realloc(p->keys, (size_t)(p->n_keys + 1) * sizeof(*nk));
    if (nk == NULL)
        return DRV_ENOMEM;
    p->keys = nk;
    if ((p->keys[p->n_keys] = strdup(k)) == NULL)
        return DRV_ENOMEM;
    p->n_keys++;
    return 0;
}

/* Reads a secret file: the first line, blanks trimmed. */
static int read_secret(const char *path, char *out, size_t out_size, struct drv_err *err)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return drv_err_set(err, DRV_EINVAL, "cannot read %s: %s", path, strerror(errno));
    char line[1024] = "";
    if (fgets(line, sizeof(line), fp) == NULL)
        line[0] = '\0';
    fclose(fp);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n == 0 || n >= out_size)
        return drv_err_set(err, DRV_EINVAL, "%s: %s", path, n ? "key too long" : "empty");
    memcpy(out, line, n + 1);
    return 0;
}

static int read_keys_file(struct drv_fleet_params *p, const char *path, struct drv_err *err)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return drv_err_set(err, DRV_EINVAL, "cannot read %s: %s", path, strerror(errno));
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), fp)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        if (line[0] != '#')
            rc = add_key(p, line);
    }
    fclose(fp);
    return rc ? drv_err_set(err, rc, "out of memory") : 0;
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcmp(v, "1"))
        *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
             !strcmp(v, "0"))
        *out = false;
    else
        return false;
    return true;
}

static bool parse_int(const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return false;
    *out = (int)x;
    return true;
}

static bool parse_duration(const char *v, int64_t *out)
{
    struct drv_err e;
    drv_err_init(&e);
    return drv_api_parse_keep_alive(v, out, &e) == 0 && *out > 0;
}

static struct drv_fleet_node_cfg *node_of(struct drv_fleet_params *p, const char *name,
                                          struct drv_err *err)
{
    for (int i = 0; i < p->n_nodes; i++)
        if (strcmp(p->nodes[i].name, name) == 0)
            return &p->nodes[i];
    if (name[0] == '\0' || strlen(name) >= sizeof(p->nodes[0].name)) {
        drv_err_set(err, DRV_EINVAL, "[node] needs a name of 1 to 63 characters: [node NAME]");
        return NULL;
    }
    if (strcmp(name, "local") == 0) {
        drv_err_set(err, DRV_EINVAL, "[node local]: \"local\" is this process's own engine");
        return NULL;
    }
    if (p->n_nodes >= DRV_FLEET_MAX_NODES) {
        drv_err_set(err, DRV_EINVAL, "more than %d nodes", DRV_FLEET_MAX_NODES);
        return NULL;
    }
    struct drv_fleet_node_cfg *n = &p->nodes[p->n_nodes++];
    memset(n, 0, sizeof(*n));
    drv_strlcpy(n->name, name, sizeof(n->name));
    n->max_concurrent = 4;
    n->priority = 100;
    return n;
}

static int node_key(struct drv_fleet_params *p, const struct drv_config_entry *e,
                    struct drv_err *err)
{
    struct drv_fleet_node_cfg *n = node_of(p, e->name, err);
    if (n == NULL)
        return DRV_EINVAL;
    const char *k = e->key, *v = e->value;
    if (strcmp(k, "url") == 0) {
        if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
            strlen(v) >= sizeof(n->url))
            return drv_err_set(err, DRV_EINVAL, "[node %s] url = %s: not an http:// URL", n->name,
                               v);
        drv_strlcpy(n->url, v, sizeof(n->url));
        size_t len = strlen(n->url);
        while (len > 8 && n->url[len - 1] == '/')
            n->url[--len] = '\0';
    } else if (strcmp(k, "kind") == 0) {
        if (!strcasecmp(v, "drover"))
            n->kind = DRV_NODE_DROVER;
        else if (!strcasecmp(v, "ollama"))
            n->kind = DRV_NODE_OLLAMA;
        else if (!strcasecmp(v, "openai") || !strcasecmp(v, "llama-server"))
            n->kind = DRV_NODE_OPENAI;
        else if (!strcasecmp(v, "auto"))
            n->kind = DRV_NODE_AUTO;
        else
            return drv_err_set(err, DRV_EINVAL, "[node %s] kind = %s: use drover, ollama or openai",
                               n->name, v);
    } else if (strcmp(k, "api_key_file") == 0) {
        struct drv_err e2;
        drv_err_init(&e2);
        if (read_secret(v, n->api_key, sizeof(n->api_key), &e2) != 0)
            return drv_err_set(err, DRV_EINVAL, "[node %s] api_key_file: %s", n->name, e2.msg);
    } else if (strcmp(k, "max_concurrent") == 0) {
        if (!parse_int(v, 1, 4096, &n->max_concurrent))
            return drv_err_set(err, DRV_EINVAL, "[node %s] max_concurrent = %s: not 1..4096",
                               n->name, v);
    } else if (strcmp(k, "priority") == 0) {
        if (!parse_int(v, -1000000, 1000000, &n->priority))
            return drv_err_set(err, DRV_EINVAL, "[node %s] priority = %s: not a number", n->name,
                               v);
    } else {
        return drv_err_set(err, DRV_EINVAL,
                           "[node %s] unknown setting \"%s\" (url, kind, api_key_file, "
                           "max_concurrent, priority)",
                           n->name, k);
    }
    return 0;
}

static int fleet_key(struct drv_fleet_params *p, const struct drv_config_entry *e,
                     struct drv_err *err)
{
    const char *k = e->key, *v = e->value;
    bool ok = true;
    if (strcmp(k, "route") == 0)
        ok = drv_route_parse(v, &p->route, p->pinned, sizeof(p->pinned));
    else if (strcmp(k, "health_interval") == 0)
        ok = parse_duration(v, &p->health_interval_ms);
    else if (strcmp(k, "health_timeout") == 0)
        ok = parse_duration(v, &p->health_timeout_ms);
    else if (strcmp(k, "stall_timeout") == 0)
        ok = parse_duration(v, &p->stall_timeout_ms);
    else if (strcmp(k, "max_queue") == 0)
        ok = parse_int(v, 0, 1000000, &p->max_queue);
    else if (strcmp(k, "local") == 0)
        ok = parse_bool(v, &p->local);
    else if (strcmp(k, "local_max_concurrent") == 0)
        ok = parse_int(v, 1, 4096, &p->local_max_concurrent);
    else if (strcmp(k, "history") == 0)
        ok = drv_strlcpy(p->history, v, sizeof(p->history)) < sizeof(p->history);
    else if (strcmp(k, "api_key") == 0)
        return add_key(p, v) ? drv_err_set(err, DRV_ENOMEM, "out of memory") : 0;
    else if (strcmp(k, "api_keys_file") == 0)
        return read_keys_file(p, v, err);
    else
        return drv_err_set(err, DRV_EINVAL,
                           "[fleet] unknown setting \"%s\" (route, health_interval, "
                           "health_timeout, stall_timeout, max_queue, local, "
                           "local_max_concurrent, history, api_key, api_keys_file)",
                           k);
    return ok ? 0 : drv_err_set(err, DRV_EINVAL, "[fleet] %s = %s: not a valid value", k, v);
}

int drv_fleet_params_from_config(const struct drv_config *cfg, struct drv_fleet_params *p,
                                 struct drv_err *err)
{
    drv_fleet_params_init(p);
    int rc = 0;
    for (size_t i = 0; rc == 0 && cfg && i < cfg->n; i++) {
        const struct drv_config_entry *e = &cfg->entries[i];
        if (strcmp(e->section, "node") == 0) {
            rc = node_key(p, e, err);
        } else if (strcmp(e->section, "fleet") == 0) {
            rc = fleet_key(p, e, err);
        } else if (strcmp(e->section, "alias") == 0 && strcmp(e->key, "model") == 0) {
            void *na = realloc(p->aliases, (size_t)(p->n_aliases + 1) * sizeof(*p->aliases));
            if (na == NULL)
                return drv_err_set(err, DRV_ENOMEM, "out of memory");
            p->aliases = na;
            drv_fleet_model_key(e->name, p->aliases[p->n_aliases][0], 128);
            drv_fleet_model_key(e->value, p->aliases[p->n_aliases][1], 128);
            p->n_aliases++;
        } else if (strcmp(e->section, "think") == 0) {
            bool b;
            if (!parse_bool(e->value, &b))
                return drv_err_set(err, DRV_EINVAL, "[think] %s = %s: use true or false", e->key,
                                   e->value);
            void *nt = realloc(p->think, (size_t)(p->n_think + 1) * sizeof(*p->think));
            if (nt == NULL)
                return drv_err_set(err, DRV_ENOMEM, "out of memory");
            p->think = nt;
            drv_strlcpy(p->think[p->n_think].name, e->key, sizeof(p->think[0].name));
            p->think[p->n_think].think = b;
            p->n_think++;
        }
    }
    for (int i = 0; rc == 0 && i < p->n_nodes; i++)
        if (p->nodes[i].url[0] == '\0')
            rc = drv_err_set(err, DRV_EINVAL, "[node %s] has no url", p->nodes[i].name);
    if (rc == 0 && p->route == DRV_ROUTE_PINNED && strcmp(p->pinned, "local") != 0) {
        bool found = false;
        for (int i = 0; i < p->n_nodes; i++)
            found = found || strcmp(p->nodes[i].name, p->pinned) == 0;
        if (!found)
            rc = drv_err_set(err, DRV_EINVAL, "[fleet] route = pinned=%s: no such node", p->pinned);
    }
    return rc;
}
