#include "base/base.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum drv_log_level g_level = DRV_LOG_WARN;

static const char *const level_names[] = {"debug", "info", "warn", "error", "none"};

void drv_log_set_level(enum drv_log_level level)
{
    g_level = level;
}

enum drv_log_level drv_log_get_level(void)
{
    return g_level;
}

bool drv_log_parse_level(const char *s, enum drv_log_level *out)
{
    for (int i = DRV_LOG_DEBUG; i <= DRV_LOG_NONE; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum drv_log_level)i;
            return true;
        }
    }
    return false;
}

void drv_logv(enum drv_log_level level, const char *fmt, va_list ap)
{
    if (level < g_level || level >= DRV_LOG_NONE)
        return;
    char line[2048];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    /* one fprintf per line so lines from different threads do not interleave */
    fprintf(stderr, "%02d:%02d:%02d.%03ld %-5s %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level_names[level], line);
}

void drv_log(enum drv_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    drv_logv(level, fmt, ap);
    va_end(ap);
}
