/* cmd — one function per subcommand. Thin: parse arguments, call modules, print.
 * Each returns the process exit status: 0 ok, 1 the command failed, 2 bad usage. */
#ifndef DRV_CMD_H
#define DRV_CMD_H

#include <stdbool.h>
#include <stdio.h>

struct drv_cmd {
    const char *name;
    int (*fn)(int argc, char **argv); /* argv[0] is the command's name */
    const char *summary;              /* one line for `drover help` */
    const char *usage;                /* full text for `drover CMD --help` */
};

/* The command table (main.c), terminated by an entry with name == NULL. */
extern const struct drv_cmd drv_commands[];

const struct drv_cmd *drv_cmd_find(const char *name);
/* Prints drover's usage and the command list to f. */
void drv_cmd_overview(FILE *f);
/* Prints the command's usage to f. */
void drv_cmd_usage(const struct drv_cmd *cmd, FILE *f);
/* For commands' option parsing: prints "drover CMD: MSG" and the usage to stderr;
 * returns 2 (the exit status for bad usage). */
int drv_cmd_bad_usage(const struct drv_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The catch-all of a command's getopt_long loop (run with opterr = 0; '?' and
 * ':' land here): names what was wrong — "option '--ctx' needs a value" or
 * "unknown option '-x'" — with the usage. opts and shortopts are the ones given
 * to getopt_long. Returns 2. */
struct option;
int drv_cmd_bad_option(const struct drv_cmd *cmd, const struct option *opts, const char *shortopts,
                       char **argv);

/* Parses a whole decimal number in lo..hi; false for anything else. */
bool drv_cmd_parse_long(const char *s, long lo, long hi, long *out);

int drv_cmd_help(int argc, char **argv);
int drv_cmd_version(int argc, char **argv);
int drv_cmd_inspect(int argc, char **argv);
int drv_cmd_serve(int argc, char **argv);
int drv_cmd_synth(int argc, char **argv);
int drv_cmd_history(int argc, char **argv);
int drv_cmd_bench(int argc, char **argv);
int drv_cmd_hw(int argc, char **argv);
int drv_cmd_fit(int argc, char **argv);
int drv_cmd_nodes(int argc, char **argv);
int drv_cmd_doctor(int argc, char **argv);
int drv_cmd_recommend(int argc, char **argv);

#endif
