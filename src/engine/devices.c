/* devices: the compute devices llama.cpp would use, as ggml's backend registry
 * lists them once llama.cpp's backends are initialised. */
#include "engine/engine_int.h"

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>
#include <string.h>

static const char *type_name(enum ggml_backend_dev_type t)
{
    switch (t) {
    case GGML_BACKEND_DEVICE_TYPE_CPU:
        return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU:
        return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU:
        return "igpu";
    default:
        return "accel";
    }
}

int drv_engine_devices(struct drv_engine_device *out, int cap)
{
    drv_engine_init_llama();
    size_t n = ggml_backend_dev_count();
    for (size_t i = 0; i < n && (int)i < cap; i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        struct drv_engine_device *o = &out[i];
        memset(o, 0, sizeof(*o));
        const char *name = ggml_backend_dev_name(d);
        const char *desc = ggml_backend_dev_description(d);
        drv_strlcpy(o->name, name ? name : "", sizeof(o->name));
        drv_strlcpy(o->description, desc ? desc : "", sizeof(o->description));
        drv_strlcpy(o->type, type_name(ggml_backend_dev_type(d)), sizeof(o->type));
        size_t free_b = 0, total = 0;
        ggml_backend_dev_memory(d, &free_b, &total);
        o->memory_total = total;
        o->memory_free = free_b;
    }
    return (int)n;
}

/* ---- a device's memory bandwidth ----
 * A graph of GGML_OP_CPY between two f32 tensors in the device's own buffer,
 * computed on the device's backend. Not ggml_backend_tensor_copy: for two
 * device buffers it asks the buffer's cpy_tensor and, when that declines (a
 * backend without one, CUDA built with GGML_CUDA_NO_PEER_COPY, ...), silently
 * copies through a malloc'ed host buffer, which would time PCIe; whether it did
 * is not visible through the public API. A graph computed on the backend runs on
 * the device or fails, and a kernel streaming a tensor is how inference reads
 * weights too. */

#define BW_MAX_BYTES ((uint64_t)512 << 20)
/* Smaller buffers sit in the last-level cache of big GPUs (96 MiB Infinity
 * Cache, 50 MiB L2): the number would be the cache's. */
#define BW_MIN_BYTES  ((uint64_t)64 << 20)
#define BW_ROW_FLOATS 4096 /* 16 KiB rows: backends that dispatch per row get many */
#define BW_COPIES     8    /* per graph: amortises the launch and the synchronisation */

static int device_bytes(ggml_backend_dev_t dev, const char *name, uint64_t *bytes,
                        struct drv_err *err)
{
    char a[32], b[32];
    size_t free_b = 0, total = 0;
    ggml_backend_dev_memory(dev, &free_b, &total);
    if (*bytes == 0) {
        *bytes = (uint64_t)free_b / 8 < BW_MAX_BYTES ? (uint64_t)free_b / 8 : BW_MAX_BYTES;
        if (*bytes < BW_MIN_BYTES)
            return drv_err_set(err, DRV_EINVAL,
                               "%s has %s free: too little to measure its bandwidth (needs %s)",
                               name, drv_fmt_bytes(free_b, a, sizeof(a)),
                               drv_fmt_bytes(BW_MIN_BYTES * 8, b, sizeof(b)));
        return 0;
    }
    if (*bytes < BW_MIN_BYTES)
        return drv_err_set(err, DRV_EINVAL,
                           "a %s buffer is too small to measure bandwidth (at least %s: a "
                           "smaller one is read from the device's cache)",
                           drv_fmt_bytes(*bytes, a, sizeof(a)),
                           drv_fmt_bytes(BW_MIN_BYTES, b, sizeof(b)));
    if (*bytes > (uint64_t)free_b / 2)
        return drv_err_set(err, DRV_EINVAL, "%s has %s free: too little for a %s buffer", name,
                           drv_fmt_bytes(free_b, a, sizeof(a)),
                           drv_fmt_bytes(*bytes, b, sizeof(b)));
    return 0;
}

/* CPU-like backends run graphs on threads: as many as generation uses. */
static void set_threads(ggml_backend_dev_t dev, ggml_backend_t be)
{
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    ggml_backend_set_n_threads_t fn =
        reg ? (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(
                  reg, "ggml_backend_set_n_threads")
            : NULL;
    int n = drv_physical_cores();
    if (fn && n > 0)
        fn(be, n);
}

int drv_engine_device_bandwidth(const char *name, double seconds, uint64_t bytes, double *gbps,
                                struct drv_err *err)
{
    *gbps = -1;
    if (!(seconds > 0))
        return drv_err_set(err, DRV_EINVAL, "bandwidth measurement needs a time > 0");
    drv_engine_init_llama();
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(name);
    if (dev == NULL)
        return drv_err_set(err, DRV_ENOENT, "no ggml device named '%s'", name);
    int rc = device_bytes(dev, name, &bytes, err);
    if (rc)
        return rc;
    int64_t rows = (int64_t)(bytes / 2 / (BW_ROW_FLOATS * sizeof(float)));
    ggml_backend_buffer_t buf = NULL;

    struct ggml_init_params ip = {
        .mem_size = ggml_tensor_overhead() * (2 + BW_COPIES) +
                    ggml_graph_overhead_custom(2 * (2 + BW_COPIES), false),
        .no_alloc = true,
    };
    struct ggml_context *ctx = ggml_init(ip);
    if (ctx == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    if (be == NULL) {
        rc = drv_err_set(err, DRV_EIO, "%s: llama.cpp cannot start its backend", name);
        goto out_ctx;
    }
    set_threads(dev, be);
    /* back and forth: each copy waits for the one before, as a stream does */
    struct ggml_tensor *t[2] = {ggml_new_tensor_2d(ctx, GGML_TYPE_F32, BW_ROW_FLOATS, rows),
                                ggml_new_tensor_2d(ctx, GGML_TYPE_F32, BW_ROW_FLOATS, rows)};
    struct ggml_cgraph *gf = ggml_new_graph_custom(ctx, 2 * (2 + BW_COPIES), false);
    struct ggml_tensor *last = t[0];
    for (int i = 0; i < BW_COPIES; i++) {
        last = ggml_cpy(ctx, last, t[(i + 1) % 2]);
        if (!ggml_backend_supports_op(be, last)) {
            rc = drv_err_set(err, DRV_EIO, "%s cannot copy an f32 tensor on the device", name);
            goto out_backend;
        }
    }
    ggml_build_forward_expand(gf, last);
    buf = ggml_backend_alloc_ctx_tensors(ctx, be); /* the backend's own (device) buffer type */
    if (buf == NULL) {
        char b[32];
        rc = drv_err_set(err, DRV_ENOMEM, "%s: cannot allocate %s for a bandwidth measurement",
                         name, drv_fmt_bytes(bytes, b, sizeof(b)));
        goto out_backend;
    }
    ggml_backend_buffer_clear(buf, 0); /* pages and caches in place before the timing */

    uint64_t budget = (uint64_t)(seconds * 1e9), start = 0, best = UINT64_MAX;
    /* pass 0 is the warm-up: pipelines compiled, memory mapped */
    for (int pass = 0;; pass++) {
        uint64_t t0 = drv_now_ns();
        if (ggml_backend_graph_compute(be, gf) != GGML_STATUS_SUCCESS) {
            rc = drv_err_set(err, DRV_EIO, "%s: llama.cpp failed to run the copy", name);
            break;
        }
        ggml_backend_synchronize(be);
        uint64_t now = drv_now_ns();
        if (pass == 0) {
            start = now;
            continue;
        }
        if (now - t0 < best)
            best = now - t0;
        if (now - start >= budget)
            break;
    }
    if (rc == 0) {
        /* a copy reads its bytes and writes as many: both cross the memory bus,
         * which is what a spec sheet's and CUDA's bandwidthTest's GB/s count */
        double moved = 2.0 * BW_COPIES * (double)ggml_nbytes(t[0]);
        *gbps = moved / (double)(best ? best : 1);
    }
    ggml_backend_buffer_free(buf);
out_backend:
    ggml_backend_free(be);
out_ctx:
    ggml_free(ctx);
    return rc;
}
