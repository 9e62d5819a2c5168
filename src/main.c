/* drover — the subcommand table and dispatch. Everything else is in libdrover. */
#include "cmd/cmd.h"

#include <string.h>

const struct drv_cmd drv_commands[] = {
    {"help", drv_cmd_help, "show the commands, or one command's options",
     "usage: drover help [COMMAND]\n\n"
     "Lists drover's commands, or prints the options of COMMAND."},
    {"version", drv_cmd_version, "print drover's version and the llama.cpp it runs on",
     "usage: drover version\n\n"
     "Prints drover's version and the llama.cpp release and ggml build it links.\n"
     "Same as 'drover --version'."},
    {"inspect", drv_cmd_inspect, "show what a GGUF file holds, without loading it",
     "usage: drover inspect [--json] FILE.gguf\n\n"
     "Reads a GGUF file's metadata and tensor table (no weights are loaded) and\n"
     "shows: architecture, name, parameter count, file type / quantization, tensor\n"
     "bytes by type, blocks, embedding length, heads, KV heads, head dimension, FFN\n"
     "length, training context, rope settings, vocabulary and tokenizer, chat\n"
     "template, and expert counts of mixture-of-experts models.\n\n"
     "options:\n"
     "  --json     print one JSON object instead of the table\n"
     "  -h, --help show this help\n\n"
     "exit status: 0 ok; 1 the file is missing, not GGUF, corrupt or truncated;\n"
     "2 bad usage."},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        drv_cmd_overview(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        name = "version";
    else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    const struct drv_cmd *cmd = drv_cmd_find(name);
    if (cmd == NULL) {
        fprintf(stderr, "drover: unknown %s '%s'\n\n", name[0] == '-' ? "option" : "command", name);
        drv_cmd_overview(stderr);
        return 2;
    }
    argv[1] = (char *)cmd->name;
    return cmd->fn(argc - 1, argv + 1);
}
