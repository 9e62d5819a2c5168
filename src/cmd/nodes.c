/* drover nodes: the fleet's node table — from a running gateway (--url) or by
 * polling the nodes drover.conf lists. */
#include "base/config.h"
#include "cmd/cmd.h"
#include "fleet/fleet.h"
#include "http/http.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void print_table(json_t *root)
{
    printf("route: %s%s%s\n", json_string_value(json_object_get(root, "route")),
           json_string_value(json_object_get(root, "pinned"))[0] ? " " : "",
           json_string_value(json_object_get(root, "pinned")));
    printf("%-16s %-7s %-10s %-5s %-6s %s\n", "NODE", "KIND", "VERSION", "STATE", "LOAD", "URL");
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(root, "nodes"), i, n)
    {
        char load[32];
        snprintf(load, sizeof(load), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(n, "in_flight")),
                 (long long)json_integer_value(json_object_get(n, "max_concurrent")));
        const char *ver = json_string_value(json_object_get(n, "version"));
        printf("%-16s %-7s %-10s %-5s %-6s %s\n", json_string_value(json_object_get(n, "name")),
               json_string_value(json_object_get(n, "kind")), ver && ver[0] ? ver : "-",
               json_is_true(json_object_get(n, "up")) ? "up" : "DOWN", load,
               json_string_value(json_object_get(n, "url")));
        const char *err = json_string_value(json_object_get(n, "error"));
        if (err && err[0])
            printf("  error: %s\n", err);
        size_t k;
        json_t *m;
        json_array_foreach(json_object_get(n, "models"), k, m)
        {
            printf("  %-30s %-8s", json_string_value(json_object_get(m, "name")),
                   json_is_true(json_object_get(m, "loaded")) ? "loaded" : "");
            double tg = json_number_value(json_object_get(m, "tg_tps"));
            double pp = json_number_value(json_object_get(m, "pp_tps"));
            if (tg > 0)
                printf(" tg %.1f tok/s", tg);
            if (pp > 0)
                printf(", pp %.1f tok/s", pp);
            const char *from = json_string_value(json_object_get(m, "rates_from"));
            if (tg > 0 && from)
                printf(" (%s)", from);
            printf("\n");
        }
        if (json_array_size(json_object_get(n, "models")) == 0)
            printf("  (no models)\n");
    }
}

int drv_cmd_nodes(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("nodes");
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"url", required_argument, NULL, 'u'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *url = NULL;
    bool json = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_option(self, opts, "+h", argv);
        }
    }
    if (optind != argc)
        return drv_cmd_bad_usage(self, "unexpected argument '%s'", argv[optind]);
    struct drv_buf out;
    drv_buf_init(&out, 64u << 20);
    struct drv_err err;
    drv_err_init(&err);
    int status = 1;
    if (url) {
        char full[600];
        snprintf(full, sizeof(full), "%s/api/drover/nodes", url);
        struct drv_http_request rq = {
            .url = full, .timeout_ms = 10000, .bearer = getenv("DROVER_API_KEY")};
        struct drv_http_response resp;
        drv_http_response_init(&resp);
        if (drv_http_fetch(&rq, &resp, &err) != 0) {
            fprintf(stderr, "drover nodes: %s\n", err.msg);
        } else if (resp.status != 200) {
            fprintf(stderr, "drover nodes: %s answered %ld%s%s\n", full, resp.status,
                    resp.status == 401 ? " (set DROVER_API_KEY)" : "",
                    resp.status == 404 ? " (not a drover gateway)" : "");
        } else {
            drv_buf_append(&out, resp.body.data ? resp.body.data : "", resp.body.len);
            status = 0;
        }
        drv_http_response_release(&resp);
    } else {
        char path[512];
        struct drv_config *cfg = NULL;
        struct drv_fleet_params fp;
        drv_fleet_params_init(&fp);
        if (drv_config_load_for_command(config, &cfg, path, sizeof(path), &err) != 0 ||
            drv_fleet_params_from_config(cfg, &fp, &err) != 0) {
            fprintf(stderr, "drover nodes: %s\n", err.msg);
        } else if (fp.n_nodes == 0) {
            fprintf(stderr, "drover nodes: %s lists no [node NAME] sections\n",
                    cfg ? path : "no config file:");
        } else {
            fp.local = false; /* this process runs no engine */
            struct drv_fleet *f = drv_fleet_new(&fp, NULL, &err);
            if (f == NULL) {
                fprintf(stderr, "drover nodes: %s\n", err.msg);
            } else {
                status = drv_fleet_nodes_json(f, &out) == 0 ? 0 : 1;
                drv_fleet_free(f);
            }
        }
        drv_fleet_params_release(&fp);
        drv_config_free(cfg);
    }
    if (status == 0) {
        json_error_t je;
        json_t *root = json_loadb(out.data ? out.data : "", out.len, 0, &je);
        if (root == NULL) {
            fprintf(stderr, "drover nodes: the node table is not JSON\n");
            status = 1;
        } else if (json) {
            printf("%s\n", out.data);
        } else {
            print_table(root);
        }
        json_decref(root);
    }
    drv_buf_release(&out);
    return status;
}
