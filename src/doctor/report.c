/* report: the findings for people (text) and for scripts (JSON). Nodes with
 * the most severe findings come first, so the problems fit the first screen. */
#include "doctor/doctor.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int drv_doctor_count(const struct drv_doctor_result *results, int n, enum drv_doctor_severity s)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < results[i].n_findings; k++)
            c += results[i].findings[k].severity == s;
    return c;
}

/* Severity counts as a sort key: problems, then warnings, then hints. */
static long weight(const struct drv_doctor_result *r)
{
    long p = drv_doctor_count(r, 1, DRV_DOCTOR_PROBLEM),
         w = drv_doctor_count(r, 1, DRV_DOCTOR_WARNING),
         h = drv_doctor_count(r, 1, DRV_DOCTOR_HINT);
    return p * 10000 + w * 100 + h;
}

/* Node indexes, most severe first; equal ones keep the config's order. */
static int *order_of(const struct drv_doctor_result *results, int n)
{
    int *o = malloc((size_t)(n > 0 ? n : 1) * sizeof(*o));
    if (o == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        int k = i;
        for (; k > 0 && weight(&results[o[k - 1]]) < weight(&results[i]); k--)
            o[k] = o[k - 1];
        o[k] = i;
    }
    return o;
}

static const char *kind_label(const struct drv_doctor_node *n)
{
    if (n->url[0] == '\0')
        return "";
    return n->kind == DRV_BENCH_KIND_AUTO ? "?" : drv_bench_kind_name(n->kind);
}

/* Prints text with every line after the first indented by `indent`. */
static void put_lines(FILE *f, const char *text, int indent)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (p != text)
            fprintf(f, "%*s", indent, "");
        fprintf(f, "%.*s\n", (int)len, p);
        p += len + (nl ? 1 : 0);
    }
}

static void node_header(FILE *f, const struct drv_doctor_node *n)
{
    if (n->url[0] == '\0') {
        char sum[256];
        drv_probe_summary(&n->hw, sum, sizeof(sum));
        fprintf(f, "== %s: %s", n->name, sum);
    } else {
        fprintf(f, "== %s", n->name);
        if (strcmp(n->name, n->url) != 0)
            fprintf(f, "  %s", n->url);
        if (n->kind != DRV_BENCH_KIND_AUTO)
            fprintf(f, "  %s%s%s", kind_label(n), n->version[0] ? " " : "", n->version);
        if (n->kind == DRV_BENCH_KIND_DROVER && n->have_status && n->status.llama[0])
            fprintf(f, ", llama.cpp %s", n->status.llama);
        if (n->gateway && n->reachable)
            fprintf(f, " (the gateway's own engine)");
    }
}

void drv_doctor_write_text(FILE *f, const struct drv_doctor_node *nodes,
                           const struct drv_doctor_result *results, int n)
{
    int p = drv_doctor_count(results, n, DRV_DOCTOR_PROBLEM);
    int w = drv_doctor_count(results, n, DRV_DOCTOR_WARNING);
    int h = drv_doctor_count(results, n, DRV_DOCTOR_HINT);
    int n_nodes = 0;
    for (int i = 0; i < n; i++)
        n_nodes += nodes[i].url[0] != '\0';
    fprintf(f,
            "drover doctor: %d problem%s, %d warning%s, %d hint%s on %d node%s and this machine\n",
            p, p == 1 ? "" : "s", w, w == 1 ? "" : "s", h, h == 1 ? "" : "s", n_nodes,
            n_nodes == 1 ? "" : "s");
    int *order = order_of(results, n);
    for (int oi = 0; oi < n; oi++) {
        int i = order ? order[oi] : oi;
        const struct drv_doctor_node *nd = &nodes[i];
        const struct drv_doctor_result *r = &results[i];
        fprintf(f, "\n");
        node_header(f, nd);
        if (nd->optional && !nd->reachable)
            fprintf(f, "  (not running)");
        else if (r->n_findings == 0)
            fprintf(f, "  ok (%d check%s)", r->n_checked, r->n_checked == 1 ? "" : "s");
        fprintf(f, "\n");
        for (int k = 0; k < r->n_findings; k++) {
            const struct drv_doctor_finding *x = &r->findings[k];
            const char *sev = x->severity == DRV_DOCTOR_PROBLEM   ? "PROBLEM"
                              : x->severity == DRV_DOCTOR_WARNING ? "WARNING"
                                                                  : "HINT";
            fprintf(f, "%-7s  %s: %s\n", sev, x->id, x->title);
            if (x->evidence[0]) {
                fprintf(f, "  evidence  ");
                put_lines(f, x->evidence, 12);
            }
            if (x->fix[0]) {
                fprintf(f, "  fix       ");
                put_lines(f, x->fix, 12);
            }
        }
        for (int k = 0; k < r->n_skipped; k++)
            fprintf(f, "  not checked: %s: %s\n", r->skipped[k].id, r->skipped[k].why);
    }
    free(order);
}

/* Evidence lines as a JSON array. */
static json_t *lines_json(const char *text)
{
    json_t *a = json_array();
    for (const char *p = text; a && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_array_append_new(a, json_stringn(p, len));
        p += len + (nl ? 1 : 0);
    }
    return a;
}

char *drv_doctor_json(const struct drv_doctor_node *nodes, const struct drv_doctor_result *results,
                      int n)
{
    json_t *root = json_object(), *arr = json_array();
    if (root == NULL || arr == NULL) {
        json_decref(root);
        json_decref(arr);
        return NULL;
    }
    json_object_set_new(root, "problems",
                        json_integer(drv_doctor_count(results, n, DRV_DOCTOR_PROBLEM)));
    json_object_set_new(root, "warnings",
                        json_integer(drv_doctor_count(results, n, DRV_DOCTOR_WARNING)));
    json_object_set_new(root, "hints", json_integer(drv_doctor_count(results, n, DRV_DOCTOR_HINT)));
    int *order = order_of(results, n);
    for (int oi = 0; oi < n; oi++) {
        int i = order ? order[oi] : oi;
        const struct drv_doctor_node *nd = &nodes[i];
        const struct drv_doctor_result *r = &results[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(nd->name));
        json_object_set_new(o, "url", nd->url[0] ? json_string(nd->url) : json_null());
        json_object_set_new(o, "kind",
                            nd->url[0] && nd->kind != DRV_BENCH_KIND_AUTO
                                ? json_string(drv_bench_kind_name(nd->kind))
                                : json_null());
        json_object_set_new(o, "version", nd->version[0] ? json_string(nd->version) : json_null());
        json_object_set_new(o, "reachable", json_boolean(nd->reachable));
        json_object_set_new(o, "elapsed_s", json_real(nd->elapsed_s));
        json_t *fs = json_array();
        for (int k = 0; k < r->n_findings; k++) {
            const struct drv_doctor_finding *x = &r->findings[k];
            json_array_append_new(fs, json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", x->id,
                                                "severity", drv_doctor_severity_name(x->severity),
                                                "title", x->title, "evidence",
                                                lines_json(x->evidence), "fix", x->fix));
        }
        json_object_set_new(o, "findings", fs);
        json_t *sk = json_array();
        for (int k = 0; k < r->n_skipped; k++)
            json_array_append_new(
                sk, json_pack("{s:s, s:s}", "check", r->skipped[k].id, "why", r->skipped[k].why));
        json_object_set_new(o, "not_checked", sk);
        json_object_set_new(o, "checks_run", json_integer(r->n_checked));
        json_array_append_new(arr, o);
    }
    free(order);
    json_object_set_new(root, "nodes", arr);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}
