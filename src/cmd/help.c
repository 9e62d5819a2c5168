#include "cmd/cmd.h"
#include "model/model.h"

#include <string.h>

#ifndef DROVER_VERSION
#define DROVER_VERSION "0.0.0"
#endif
#ifndef DROVER_LLAMA_RELEASE
#define DROVER_LLAMA_RELEASE "unknown"
#endif

void drv_cmd_overview(FILE *f)
{
    fprintf(f, "usage: drover [--version] [--help] COMMAND [ARGS]\n\n"
               "drover turns the machines you own into one local-LLM service.\n\n"
               "commands:\n");
    for (const struct drv_cmd *c = drv_commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n'drover COMMAND --help' shows a command's options.\n");
}

int drv_cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return drv_cmd_bad_usage(drv_cmd_find("help"), "too many arguments");
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        drv_cmd_usage(drv_cmd_find("help"), stdout);
        return 0;
    }
    if (argc == 2) {
        const struct drv_cmd *c = drv_cmd_find(argv[1]);
        if (c == NULL) {
            fprintf(stderr, "drover: unknown command '%s'\n\n", argv[1]);
            drv_cmd_overview(stderr);
            return 2;
        }
        drv_cmd_usage(c, stdout);
        return 0;
    }
    drv_cmd_overview(stdout);
    return 0;
}

int drv_cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0)
        return drv_cmd_bad_usage(drv_cmd_find("version"), "unexpected argument '%s'", argv[1]);
    if (argc > 1) {
        drv_cmd_usage(drv_cmd_find("version"), stdout);
        return 0;
    }
    printf("drover %s\n", DROVER_VERSION);
    printf("llama.cpp %s, ggml %s\n", DROVER_LLAMA_RELEASE, drv_ggml_version());
    return 0;
}
