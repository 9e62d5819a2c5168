/* config — drover.conf, an INI file read with inih.
 *
 *   [serve]                 section "serve", name ""
 *   port = 11435
 *   [node gpu-laptop]       section "node", name "gpu-laptop"
 *   url = http://10.0.0.20:11434
 *   [alias qwen2.5:3b]      section "alias", name "qwen2.5:3b"
 *   model = qwen2.5-3b-instruct-q4_k_m
 *
 * Keys may repeat (e.g. several `model =` lines); every occurrence is kept in
 * file order. Comments start with ';' or '#'. */
#ifndef DRV_CONFIG_H
#define DRV_CONFIG_H

#include "base/base.h"

#include <stddef.h>

struct drv_config_entry {
    char *section; /* "serve", "node", "alias", ... (lowercased) */
    char *name;    /* the rest of the section header, trimmed; "" when none */
    char *key;
    char *value;
};

struct drv_config {
    struct drv_config_entry *entries;
    size_t n;
    char path[512]; /* where it was read from ("" for a string) */
};

#define DRV_CONFIG_MAX_ENTRIES 10000

/* Reads the INI file at path. A syntax error fails with DRV_EINVAL and the
 * line number; a missing file with DRV_ENOENT. Caller frees with
 * drv_config_free. */
int drv_config_load(const char *path, struct drv_config **out, struct drv_err *err);
/* What a command reads: the file named by --config (explicit, may be NULL), else
 * the default path. A missing *default* file is no error: *out = NULL and 0.
 * The path used goes to path_out. */
int drv_config_load_for_command(const char *explicit_path, struct drv_config **out, char *path_out,
                                size_t path_size, struct drv_err *err);
/* Same, from text in memory (NUL-terminated). */
int drv_config_parse(const char *text, struct drv_config **out, struct drv_err *err);
void drv_config_free(struct drv_config *c);

/* The last value of key in [section name] (name "" for a bare [section]);
 * NULL when absent. Valid until drv_config_free. */
const char *drv_config_get(const struct drv_config *c, const char *section, const char *name,
                           const char *key);
/* The default path: $XDG_CONFIG_HOME/drover/drover.conf or
 * ~/.config/drover/drover.conf. Returns out. */
char *drv_config_default_path(char *out, size_t out_size);

#endif
