#include "cmd/cmd.h"

#include <errno.h>
#include <getopt.h>
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

/* Whether the option getopt_long stopped at exists and takes a value: a long
 * one, by name, when the argument starts with "--", else the short optopt. */
static bool wants_value(const struct option *opts, const char *shortopts, const char *arg)
{
    if (strncmp(arg, "--", 2) == 0) {
        size_t n = strcspn(arg + 2, "=");
        for (const struct option *o = opts; o && o->name; o++)
            if (strlen(o->name) == n && strncmp(o->name, arg + 2, n) == 0)
                return o->has_arg == required_argument && arg[2 + n] == '\0';
        return false;
    }
    const char *p = optopt && optopt != ':' ? strchr(shortopts, optopt) : NULL;
    return p && p[1] == ':';
}

int drv_cmd_bad_option(const struct drv_cmd *cmd, const struct option *opts, const char *shortopts,
                       char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    return drv_cmd_bad_usage(cmd,
                             wants_value(opts, shortopts, arg) ? "option '%s' needs a value"
                                                               : "unknown option '%s'",
                             arg);
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
