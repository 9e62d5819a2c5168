#include "cmd/cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const struct drv_cmd *drv_cmd_find(const char *name)
{
    for (const struct drv_cmd *c = drv_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

void drv_cmd_usage(const struct drv_cmd *cmd, FILE *f)
{
    fprintf(f, "%s\n", cmd->usage);
}

int drv_cmd_bad_usage(const struct drv_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "drover %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n");
    va_end(ap);
    drv_cmd_usage(cmd, stderr);
    return 2;
}

bool drv_cmd_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}
