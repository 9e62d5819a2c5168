/* probe: puts the pieces together into one struct drv_hw. */
#include "probe/probe_int.h"

#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

struct drv_probe_params drv_probe_default_params(void)
{
    struct drv_probe_params p = {
        .root = "",
        .bandwidth_seconds = 1.0,
        .devices = true,
        .cpu = true,
    };
    return p;
}

static void list_devices(struct drv_hw *hw)
{
    struct drv_engine_device d[DRV_HW_MAX_DEVICES];
    int n = drv_engine_devices(d, DRV_HW_MAX_DEVICES);
    if (n > DRV_HW_MAX_DEVICES)
        n = DRV_HW_MAX_DEVICES;
    hw->n_devices = n;
    for (int i = 0; i < n; i++) {
        struct drv_hw_device *o = &hw->devices[i];
        drv_strlcpy(o->name, d[i].name, sizeof(o->name));
        drv_strlcpy(o->description, d[i].description, sizeof(o->description));
        drv_strlcpy(o->type, d[i].type, sizeof(o->type));
        o->memory_total_bytes = d[i].memory_total;
        o->memory_free_bytes = d[i].memory_free;
    }
}

/* Discrete GPUs only: an integrated one's memory is the RAM measured below. */
static void measure_gpus(struct drv_hw *hw, double seconds)
{
    for (int i = 0; i < hw->n_devices; i++) {
        struct drv_hw_device *d = &hw->devices[i];
        if (strcmp(d->type, "gpu") != 0)
            continue;
        struct drv_err e;
        drv_err_init(&e);
        double gbps;
        if (drv_engine_device_bandwidth(d->name, seconds, 0, &gbps, &e) != 0) {
            drv_log(DRV_LOG_WARN, "%s: bandwidth not measured: %s", d->name, e.msg);
            continue;
        }
        d->bandwidth_gbps = gbps;
        d->bandwidth_measured = true;
    }
}

int drv_probe_run(const struct drv_probe_params *p, struct drv_hw *out, struct drv_err *err)
{
    struct drv_probe_params dp = drv_probe_default_params();
    if (p == NULL)
        p = &dp;
    const char *root = p->root ? p->root : "";
    const char *hsa = p->hsa_override ? p->hsa_override : getenv("HSA_OVERRIDE_GFX_VERSION");
    memset(out, 0, sizeof(*out));
    drv_probe_cpu(root, p->cpu, &out->cpu);
    drv_probe_memory(root, &out->memory);
    if (p->devices)
        list_devices(out);
    if (p->devices && p->gpu_bandwidth_seconds > 0)
        measure_gpus(out, p->gpu_bandwidth_seconds);
    drv_probe_amd(root, hsa, out);
    drv_probe_nvidia(p->run, p->run_ud, out);
    drv_probe_problems(out, hsa);
    if (p->bandwidth_seconds > 0) {
        uint64_t bytes = (uint64_t)512 << 20;
        if (out->cpu.l3_bytes * 4 > bytes)
            bytes = out->cpu.l3_bytes * 4;
        if (out->memory.available_bytes > 0 && bytes > out->memory.available_bytes / 4)
            bytes = out->memory.available_bytes / 4;
        int rc = drv_probe_bandwidth(p->bandwidth_seconds, out->cpu.cores, bytes,
                                     &out->memory.bandwidth_gbps, err);
        if (rc)
            return rc;
    }
    return 0;
}
