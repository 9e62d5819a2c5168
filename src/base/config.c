#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parse_state {
    struct drv_config *c;
    size_t cap;
    int line;
    int rc;
};

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int handler(void *ud, const char *section, const char *key, const char *value)
{
    struct parse_state *st = ud;
    if (st->c->n >= DRV_CONFIG_MAX_ENTRIES) {
        st->rc = DRV_ETOOBIG;
        return 0;
    }
    if (st->c->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        struct drv_config_entry *e = realloc(st->c->entries, cap * sizeof(*e));
        if (e == NULL) {
            st->rc = DRV_ENOMEM;
            return 0;
        }
        st->c->entries = e;
        st->cap = cap;
    }
    const char *sp = section;
    while (*sp && !isspace((unsigned char)*sp))
        sp++;
    struct drv_config_entry *e = &st->c->entries[st->c->n];
    e->section = trim_dup(section, (size_t)(sp - section));
    e->name = trim_dup(sp, strlen(sp));
    e->key = strdup(key);
    e->value = strdup(value ? value : "");
    if (!e->section || !e->name || !e->key || !e->value) {
        free(e->section);
        free(e->name);
        free(e->key);
        free(e->value);
        st->rc = DRV_ENOMEM;
        return 0;
    }
    for (char *p = e->section; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    st->c->n++;
    return 1;
}

static int finish(struct parse_state *st, int r, struct drv_config **out, struct drv_err *err)
{
    if (r != 0 || st->rc != 0) {
        int code = st->rc ? st->rc : DRV_EINVAL;
        if (r == -2 || code == DRV_ENOMEM)
            drv_err_set(err, DRV_ENOMEM, "out of memory");
        else if (code == DRV_ETOOBIG)
            drv_err_set(err, code, "more than %d settings", DRV_CONFIG_MAX_ENTRIES);
        else
            drv_err_set(err, DRV_EINVAL, "syntax error on line %d", r);
        drv_config_free(st->c);
        *out = NULL;
        return err ? err->code : code;
    }
    *out = st->c;
    return 0;
}

int drv_config_parse(const char *text, struct drv_config **out, struct drv_err *err)
{
    struct parse_state st = {.c = calloc(1, sizeof(struct drv_config))};
    if (st.c == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    return finish(&st, ini_parse_string(text, handler, &st), out, err);
}

int drv_config_load(const char *path, struct drv_config **out, struct drv_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return drv_err_set(err, errno == ENOENT ? DRV_ENOENT : DRV_EIO, "%s: %s", path,
                           strerror(errno));
    struct parse_state st = {.c = calloc(1, sizeof(struct drv_config))};
    if (st.c == NULL) {
        fclose(f);
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    drv_strlcpy(st.c->path, path, sizeof(st.c->path));
    int r = ini_parse_file(f, handler, &st);
    fclose(f);
    struct drv_err e2;
    drv_err_init(&e2);
    int rc = finish(&st, r, out, &e2);
    if (rc)
        drv_err_set(err, rc, "%s: %s", path, e2.msg);
    return rc;
}

void drv_config_free(struct drv_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].section);
        free(c->entries[i].name);
        free(c->entries[i].key);
        free(c->entries[i].value);
    }
    free(c->entries);
    free(c);
}

const char *drv_config_get(const struct drv_config *c, const char *section, const char *name,
                           const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; c && i < c->n; i++) {
        const struct drv_config_entry *e = &c->entries[i];
        if (strcmp(e->section, section) == 0 && strcmp(e->name, name) == 0 &&
            strcmp(e->key, key) == 0)
            v = e->value;
    }
    return v;
}

char *drv_config_default_path(char *out, size_t out_size)
{
    const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (x && x[0])
        snprintf(out, out_size, "%s/drover/drover.conf", x);
    else
        snprintf(out, out_size, "%s/.config/drover/drover.conf", home ? home : "");
    return out;
}

int drv_config_load_for_command(const char *explicit_path, struct drv_config **out, char *path_out,
                                size_t path_size, struct drv_err *err)
{
    if (explicit_path)
        drv_strlcpy(path_out, explicit_path, path_size);
    else
        drv_config_default_path(path_out, path_size);
    struct drv_err e2;
    drv_err_init(&e2);
    int rc = drv_config_load(path_out, out, &e2);
    if (rc == DRV_ENOENT && explicit_path == NULL)
        return 0;
    if (rc)
        drv_err_set(err, rc, "%s", e2.msg);
    return rc;
}
