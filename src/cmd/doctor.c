#include "base/config.h"
#include "cmd/cmd.h"
#include "doctor/doctor.h"
#include "fleet/fleet.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_NODES 64

static struct drv_doctor_node *node_named(struct drv_doctor_node *nodes, int n, const char *name)
{
    for (int i = 1; i < n; i++)
        if (strcmp(nodes[i].name, name) == 0)
            return &nodes[i];
    return NULL;
}

/* The [node NAME] sections, read the way the gateway reads them, into
 * nodes[1..] (nodes[0] is this machine); [node] hw = FILE names the machine's
 * hardware profile. The gateway's bench history goes to history. Returns the
 * count, or -1 with a message printed. */
static int config_nodes(const struct drv_config *cfg, const char *path,
                        struct drv_doctor_node *nodes, char *history, size_t history_size,
                        bool *local_engine)
{
    struct drv_fleet_params fp;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_fleet_params_from_config(cfg, &fp, &err) != 0) {
        fprintf(stderr, "drover doctor: %s: %s\n", path, err.msg);
        drv_fleet_params_release(&fp);
        return -1;
    }
    int n = 1;
    for (int i = 0; i < fp.n_nodes && n < MAX_NODES; i++) {
        const struct drv_fleet_node_cfg *c = &fp.nodes[i];
        struct drv_doctor_node *nd = &nodes[n++];
        drv_strlcpy(nd->name, c->name, sizeof(nd->name));
        drv_strlcpy(nd->url, c->url, sizeof(nd->url));
        drv_strlcpy(nd->api_key, c->api_key, sizeof(nd->api_key));
        nd->config_kind = c->kind == DRV_NODE_DROVER   ? DRV_BENCH_KIND_DROVER
                          : c->kind == DRV_NODE_OLLAMA ? DRV_BENCH_KIND_OLLAMA
                          : c->kind == DRV_NODE_OPENAI ? DRV_BENCH_KIND_OPENAI
                                                       : DRV_BENCH_KIND_AUTO;
        const char *hw = drv_config_get(cfg, "node", c->name, "hw");
        if (hw)
            drv_strlcpy(nd->hw_file, hw, sizeof(nd->hw_file));
    }
    drv_strlcpy(history, fp.history, history_size);
    *local_engine = fp.local;
    drv_fleet_params_release(&fp);
    return n;
}

int drv_cmd_doctor(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("doctor");
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"node", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"db", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'},
        {"no-probe", no_argument, NULL, 'P'},
        {"model", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct drv_doctor_params p = drv_doctor_default_params();
    const char *config = NULL, *want[MAX_NODES];
    int n_want = 0;
    bool json = false;
    int c;
    long v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            if (n_want == MAX_NODES - 1)
                return drv_cmd_bad_usage(self, "at most %d --node", MAX_NODES - 1);
            want[n_want++] = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'd':
            p.db = optarg;
            break;
        case 't':
            if (!drv_cmd_parse_long(optarg, 1, 3600, &v))
                return drv_cmd_bad_usage(self, "--timeout wants 1..3600 seconds, not '%s'", optarg);
            p.node_seconds = (double)v;
            break;
        case 'P':
            p.probes = false;
            break;
        case 'm':
            p.model = optarg;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_option(self, opts, "+m:h", argv);
        }
    }
    if (optind != argc)
        return drv_cmd_bad_usage(self, "unexpected argument '%s'", argv[optind]);

    struct drv_config *cfg = NULL;
    char path[512];
    struct drv_err err;
    drv_err_init(&err);
    if (drv_config_load_for_command(config, &cfg, path, sizeof(path), &err) != 0) {
        fprintf(stderr, "drover doctor: %s\n", err.msg);
        return 2;
    }
    struct drv_doctor_node *all = calloc(MAX_NODES, sizeof(*all));
    struct drv_doctor_node *nodes = calloc(MAX_NODES, sizeof(*nodes));
    struct drv_doctor_result *results = NULL;
    int status = 2;
    if (all == NULL || nodes == NULL) {
        fprintf(stderr, "drover doctor: out of memory\n");
        goto out;
    }
    char history[512];
    bool local_engine = false;
    int n_all = config_nodes(cfg, path, all, history, sizeof(history), &local_engine);
    if (n_all < 0)
        goto out;
    if (p.db == NULL && history[0]) /* the gateway's history, unless --db says */
        p.db = history;
    /* this machine, then the nodes asked for (names or URLs), else all of them */
    drv_strlcpy(nodes[0].name, "this machine", sizeof(nodes[0].name));
    int n = 1;
    for (int i = 0; i < n_want; i++) {
        const struct drv_doctor_node *nd = node_named(all, n_all, want[i]);
        if (nd) {
            nodes[n++] = *nd;
        } else if (strncmp(want[i], "http://", 7) == 0 || strncmp(want[i], "https://", 8) == 0) {
            drv_strlcpy(nodes[n].name, want[i], sizeof(nodes[n].name));
            drv_strlcpy(nodes[n].url, want[i], sizeof(nodes[n].url));
            n++;
        } else {
            status = drv_cmd_bad_usage(self, "no [node %s] in %s (give a configured name or a URL)",
                                       want[i], cfg ? path : "the config (there is none)");
            goto out;
        }
    }
    if (n_want == 0) {
        for (int i = 1; i < n_all; i++)
            nodes[n++] = all[i];
    }
    if (n_want == 0 && (n == 1 || local_engine) && n < MAX_NODES) {
        /* the drover this machine runs (if one runs): alone, or a gateway whose
         * own engine is the fleet's node "local" */
        const char *port = cfg ? drv_config_get(cfg, "serve", "", "port") : NULL;
        snprintf(nodes[n].url, sizeof(nodes[n].url), "http://127.0.0.1:%s",
                 port && strcmp(port, "0") != 0 ? port : "11435");
        drv_strlcpy(nodes[n].name, "local", sizeof(nodes[n].name));
        nodes[n].optional = true;
        nodes[n].gateway = n > 1;
        n++;
    }
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "drover doctor: asking %d node%s (at most %.0f s each)...\n", n - 1,
                n == 2 ? "" : "s", p.node_seconds);
    drv_doctor_collect(nodes, n, &p);
    results = calloc((size_t)n, sizeof(*results));
    if (results == NULL) {
        fprintf(stderr, "drover doctor: out of memory\n");
        goto out;
    }
    struct drv_doctor_fleet fleet = {.nodes = nodes, .n = n};
    for (int i = 0; i < n; i++)
        drv_doctor_run_checks(&fleet, i, &results[i]);
    if (json) {
        char *s = drv_doctor_json(nodes, results, n);
        if (s == NULL) {
            fprintf(stderr, "drover doctor: out of memory\n");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        drv_doctor_write_text(stdout, nodes, results, n);
    }
    status = drv_doctor_count(results, n, DRV_DOCTOR_PROBLEM) > 0 ? 1 : 0;
out:
    free(results);
    free(nodes);
    free(all);
    drv_config_free(cfg);
    return status;
}
