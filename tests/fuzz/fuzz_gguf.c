/* libFuzzer target: GGUF metadata parsing as `drover inspect` does it. */
#include "base/base.h"
#include "model/model.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        drv_log_set_level(DRV_LOG_NONE);
        quiet = 1;
    }
    struct drv_gguf_info info;
    struct drv_err err;
    drv_err_init(&err);
    int rc = drv_gguf_inspect_buffer(data, size, &info, &err);
    /* a failure always carries a message; a success a consistent table */
    if (rc != 0 && err.msg[0] == '\0')
        __builtin_trap();
    if (rc == 0) {
        uint64_t sum = 0;
        for (int i = 0; i < info.n_types; i++)
            sum += info.types[i].n_bytes;
        if (sum > info.tensor_bytes)
            __builtin_trap();
    }
    return 0;
}
