/* devices: the compute devices llama.cpp would use, as ggml's backend registry
 * lists them once llama.cpp's backends are initialised. */
#include "engine/engine_int.h"

#include <ggml-backend.h>
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
