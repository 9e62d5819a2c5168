/* libFuzzer target: drover.conf parsing (inih + drover's section/name split). */
#include "base/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct drv_config *c = NULL;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_config_parse(text, &c, &err) == 0) {
        for (size_t i = 0; i < c->n; i++)
            if (drv_config_get(c, c->entries[i].section, c->entries[i].name, c->entries[i].key) ==
                NULL)
                __builtin_trap(); /* every entry can be found again */
        drv_config_free(c);
    } else if (err.msg[0] == '\0') {
        __builtin_trap();
    }
    free(text);
    return 0;
}
