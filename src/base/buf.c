#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void drv_buf_init(struct drv_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void drv_buf_release(struct drv_buf *b)
{
    free(b->data);
    drv_buf_init(b, b->cap);
}

void drv_buf_reset(struct drv_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int buf_reserve(struct drv_buf *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra)
        return DRV_ETOOBIG;
    size_t need = b->len + extra + 1; /* + NUL */
    if (need <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > b->cap + 1)
        n = b->cap + 1;
    char *p = realloc(b->data, n);
    if (p == NULL)
        return DRV_ENOMEM;
    b->data = p;
    b->alloc = n;
    return 0;
}

int drv_buf_append(struct drv_buf *b, const void *data, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int drv_buf_appendf(struct drv_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return DRV_EINVAL;
    if ((size_t)n < sizeof(small))
        return drv_buf_append(b, small, (size_t)n);
    int rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *drv_buf_steal(struct drv_buf *b)
{
    char *p = b->data;
    if (p == NULL)
        p = calloc(1, 1);
    drv_buf_init(b, b->cap);
    return p;
}

int drv_buf_append_label(struct drv_buf *b, const char *v)
{
    int rc = 0;
    for (const char *p = v; rc == 0 && *p; p++)
        rc = *p == '\\'   ? drv_buf_append(b, "\\\\", 2)
             : *p == '"'  ? drv_buf_append(b, "\\\"", 2)
             : *p == '\n' ? drv_buf_append(b, "\\n", 2)
                          : drv_buf_append(b, p, 1);
    return rc;
}
