/* base — errors, logging, capped buffers, small string helpers.
 * Everything in drover uses these; nothing here knows about llama.cpp or HTTP. */
#ifndef DRV_BASE_H
#define DRV_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors -------------------------------------------------------------
 * Functions that act return int: 0 = ok, negative = one of these. The first,
 * most specific message goes into a caller-provided struct drv_err. */
enum drv_errcode {
    DRV_OK = 0,
    DRV_EINVAL = -1,   /* bad input from a user, a client or a file */
    DRV_ENOENT = -2,   /* no such file, model or node */
    DRV_EIO = -3,      /* the OS said no */
    DRV_ENOMEM = -4,   /* allocation failed */
    DRV_ETOOBIG = -5,  /* past a cap */
    DRV_EFORMAT = -6,  /* corrupt or unsupported file format */
    DRV_EUPSTREAM = -7 /* a peer failed */
};

struct drv_err {
    int code;      /* enum drv_errcode, 0 when no error was set */
    char msg[512]; /* one line, no trailing newline */
};

/* Clears err. */
void drv_err_init(struct drv_err *err);
/* Sets err (when err is non-NULL and holds no error yet: the first message wins)
 * and returns code, so callers can `return drv_err_set(err, DRV_EINVAL, "...")`. */
int drv_err_set(struct drv_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *drv_errcode_name(int code);

/* ---- logging ------------------------------------------------------------
 * One logger for drover and, through a callback, for llama.cpp/ggml. Messages
 * below the level are dropped. Default level: DRV_LOG_WARN, to stderr. */
enum drv_log_level { DRV_LOG_DEBUG, DRV_LOG_INFO, DRV_LOG_WARN, DRV_LOG_ERROR, DRV_LOG_NONE };

void drv_log_set_level(enum drv_log_level level);
enum drv_log_level drv_log_get_level(void);
/* Parses "debug|info|warn|error|none"; returns false on anything else. */
bool drv_log_parse_level(const char *s, enum drv_log_level *out);
void drv_log(enum drv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void drv_logv(enum drv_log_level level, const char *fmt, va_list ap);

/* ---- capped growable buffer (curl's dynbuf) -------------------------------
 * Always NUL-terminated when len > 0. Appending past `cap` fails with
 * DRV_ETOOBIG and leaves the buffer as it was. */
struct drv_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t alloc;
    size_t cap; /* max len in bytes */
};

void drv_buf_init(struct drv_buf *b, size_t cap);
void drv_buf_release(struct drv_buf *b);
void drv_buf_reset(struct drv_buf *b); /* len = 0, keeps memory */
int drv_buf_append(struct drv_buf *b, const void *data, size_t n);
int drv_buf_appendf(struct drv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v as a Prometheus label value: backslash, quote and newline escaped. */
int drv_buf_append_label(struct drv_buf *b, const char *v);
/* Hands the data to the caller (free() it); the buffer is empty afterwards. */
char *drv_buf_steal(struct drv_buf *b);

/* ---- strings ------------------------------------------------------------- */
/* Copies at most dst_size-1 bytes and always terminates; returns strlen(src). */
size_t drv_strlcpy(char *dst, const char *src, size_t dst_size);
bool drv_str_has_suffix(const char *s, const char *suffix);
/* Human-readable byte count ("1.13 MiB"); returns out. */
char *drv_fmt_bytes(uint64_t bytes, char *out, size_t out_size);
/* Human-readable count with SI suffix ("292.8K", "7.62B"); returns out. */
char *drv_fmt_count(uint64_t n, char *out, size_t out_size);

/* ---- time ---------------------------------------------------------------- */
uint64_t drv_now_ns(void); /* monotonic */

#endif
