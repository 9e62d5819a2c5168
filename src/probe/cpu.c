/* cpu: the processor (hwloc) and RAM (/proc/meminfo). */
#include "probe/probe_int.h"

#include <ctype.h>
#include <hwloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long drv_probe_read_file(const char *root, const char *path, char *out, size_t cap)
{
    char full[1024];
    snprintf(full, sizeof(full), "%s%s", root ? root : "", path);
    FILE *f = fopen(full, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
    return (long)n;
}

/* The SIMD features llama.cpp's CPU backend picks kernels by. */
static const char *const wanted_features[] = {
    "avx", "avx2",     "avx512f",  "avx512_vnni", "avx_vnni", "avx512_bf16", "f16c",
    "fma", "amx_tile", "amx_int8", "neon",        "asimd",    "sve",         "asimddp",
};

static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
        bool start = p == list || isspace((unsigned char)p[-1]);
        bool end = p[n] == '\0' || isspace((unsigned char)p[n]);
        if (start && end)
            return true;
    }
    return false;
}

/* The first "flags" (x86) or "Features" (ARM) line of /proc/cpuinfo. */
static void read_features(const char *root, struct drv_hw_cpu *out)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/proc/cpuinfo", root);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[8192];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) != 0 && strncmp(line, "Features", 8) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        for (size_t i = 0; i < sizeof(wanted_features) / sizeof(wanted_features[0]); i++) {
            if (out->n_features < DRV_HW_MAX_FEATURES && has_word(colon + 1, wanted_features[i]))
                drv_strlcpy(out->features[out->n_features++],
                            strcmp(wanted_features[i], "asimddp") == 0 ? "dotprod"
                                                                       : wanted_features[i],
                            sizeof(out->features[0]));
        }
        break;
    }
    fclose(f);
}

static uint64_t cache_bytes(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    uint64_t sum = 0;
    int n = hwloc_get_nbobjs_by_type(topo, type);
    for (int i = 0; i < n; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (o && o->attr)
            sum += o->attr->cache.size;
    }
    return sum;
}

void drv_probe_cpu(const char *root, bool use_hwloc, struct drv_hw_cpu *out)
{
    memset(out, 0, sizeof(*out));
    if (root == NULL)
        root = "";
    read_features(root, out);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    out->threads = online > 0 ? (int)online : 1;
    out->cores = out->threads;
    out->sockets = 1;
    if (!use_hwloc)
        return;
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return;
    if (hwloc_topology_load(topo) == 0) {
        int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
        if (n > 0)
            out->sockets = n;
        n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        if (n > 0)
            out->cores = n;
        n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
        if (n > 0)
            out->threads = n;
        out->l2_bytes = cache_bytes(topo, HWLOC_OBJ_L2CACHE);
        out->l3_bytes = cache_bytes(topo, HWLOC_OBJ_L3CACHE);
        hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
        const char *model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        if (model == NULL)
            model = hwloc_obj_get_info_by_name(hwloc_get_root_obj(topo), "CPUModel");
        if (model)
            drv_strlcpy(out->model, model, sizeof(out->model));
    }
    hwloc_topology_destroy(topo);
}

void drv_probe_memory(const char *root, struct drv_hw_memory *out)
{
    memset(out, 0, sizeof(*out));
    out->bandwidth_gbps = -1;
    char path[1024];
    snprintf(path, sizeof(path), "%s/proc/meminfo", root ? root : "");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        char key[64];
        unsigned long long kb;
        if (sscanf(line, "%63[^:]: %llu", key, &kb) != 2)
            continue;
        uint64_t b = (uint64_t)kb * 1024;
        if (strcmp(key, "MemTotal") == 0)
            out->total_bytes = b;
        else if (strcmp(key, "MemAvailable") == 0)
            out->available_bytes = b;
        else if (strcmp(key, "SwapTotal") == 0)
            out->swap_total_bytes = b;
        else if (strcmp(key, "SwapFree") == 0)
            out->swap_free_bytes = b;
    }
    fclose(f);
}
