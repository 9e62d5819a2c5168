/* libFuzzer target: the hardware profile parser (`--hw FILE.json`, `hw --check`). */
#include "base/base.h"
#include "probe/probe.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct drv_hw hw, again;
    struct drv_err err;
    drv_err_init(&err);
    int rc = drv_probe_profile_parse((const char *)data, size, &hw, &err);
    /* a failure always carries a message */
    if (rc != 0 && err.msg[0] == '\0')
        __builtin_trap();
    if (rc != 0)
        return 0;
    /* a profile that parses writes out as one that parses to the same value */
    if (hw.n_devices > DRV_HW_MAX_DEVICES || hw.n_amd > DRV_HW_MAX_GPUS ||
        hw.n_nvidia > DRV_HW_MAX_GPUS || hw.n_problems > DRV_HW_MAX_PROBLEMS ||
        hw.cpu.n_features > DRV_HW_MAX_FEATURES)
        __builtin_trap();
    char *s = drv_probe_profile_dump(&hw);
    if (s == NULL)
        return 0;
    drv_err_init(&err);
    if (drv_probe_profile_parse(s, strlen(s), &again, &err) != 0)
        __builtin_trap();
    free(s);
    if (memcmp(&hw, &again, sizeof(hw)) != 0)
        __builtin_trap();
    return 0;
}
