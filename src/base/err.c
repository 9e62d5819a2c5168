#include "base/base.h"

#include <stdio.h>
#include <string.h>

void drv_err_init(struct drv_err *err)
{
    err->code = 0;
    err->msg[0] = '\0';
}

int drv_err_set(struct drv_err *err, int code, const char *fmt, ...)
{
    if (err == NULL || err->code != 0)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

const char *drv_errcode_name(int code)
{
    switch (code) {
    case DRV_OK:
        return "ok";
    case DRV_EINVAL:
        return "invalid input";
    case DRV_ENOENT:
        return "not found";
    case DRV_EIO:
        return "i/o error";
    case DRV_ENOMEM:
        return "out of memory";
    case DRV_ETOOBIG:
        return "too big";
    case DRV_EFORMAT:
        return "bad format";
    case DRV_EUPSTREAM:
        return "upstream failed";
    default:
        return "unknown error";
    }
}
