/* Text that leaves the engine: whole UTF-8 characters only, stop strings cut. */
#include "engine/engine.h"

#include <string.h>

size_t drv_utf8_complete_len(const char *s, size_t len)
{
    /* walk back over at most 3 continuation bytes to the last lead byte */
    size_t i = len;
    int back = 0;
    while (i > 0 && back < 4) {
        unsigned char c = (unsigned char)s[i - 1];
        if ((c & 0xC0) != 0x80) {
            size_t need = c < 0x80             ? 1
                          : (c & 0xE0) == 0xC0 ? 2
                          : (c & 0xF0) == 0xE0 ? 3
                          : (c & 0xF8) == 0xF0 ? 4
                                               : 1; /* invalid lead: let it through */
            size_t have = len - (i - 1);
            return have >= need ? len : i - 1;
        }
        i--;
        back++;
    }
    return len; /* only continuation bytes: invalid, do not hold forever */
}

size_t drv_stop_scan(const char *text, size_t len, const char *const *stops, size_t n_stops,
                     bool *stopped)
{
    *stopped = false;
    size_t best = len;
    for (size_t k = 0; k < n_stops; k++) {
        size_t m = strlen(stops[k]);
        if (m == 0 || m > len)
            continue;
        const char *p = memmem(text, len, stops[k], m);
        if (p && (size_t)(p - text) < best) {
            best = (size_t)(p - text);
            *stopped = true;
        }
    }
    if (*stopped)
        return best;
    /* hold back the longest tail that is a proper prefix of a stop string */
    size_t emit = len;
    for (size_t k = 0; k < n_stops; k++) {
        size_t m = strlen(stops[k]);
        if (m == 0)
            continue;
        for (size_t t = m > len + 1 ? len : m - 1; t > 0; t--) {
            if (memcmp(text + len - t, stops[k], t) == 0) {
                if (len - t < emit)
                    emit = len - t;
                break;
            }
        }
    }
    return emit;
}

static int emit_some(int (*emit)(void *, enum drv_ev_kind, const char *, size_t), void *ud,
                     enum drv_ev_kind kind, const char *p, size_t n)
{
    return n ? emit(ud, kind, p, n) : 0;
}

size_t drv_text_flush(struct drv_think_state *st, const char *text, size_t len, bool final,
                      const char *const *stops, size_t n_stops, bool *stopped,
                      int (*emit)(void *ud, enum drv_ev_kind kind, const char *p, size_t n),
                      void *ud, int *cancel)
{
    static const char open_tag[] = "<think>", close_tag[] = "</think>";
    const size_t open_n = sizeof(open_tag) - 1, close_n = sizeof(close_tag) - 1;
    *stopped = false;
    *cancel = 0;
    size_t used = 0;
    while (used < len && !*cancel) {
        const char *cur = text + used;
        size_t left = len - used;
        if (st->in_think) {
            const char *end = memmem(cur, left, close_tag, close_n);
            if (end) {
                size_t n = (size_t)(end - cur);
                *cancel = emit_some(emit, ud, DRV_EV_THINKING, cur, n);
                used += n + close_n;
                st->in_think = false;
                /* the answer usually starts after blank lines */
                while (used < len && (text[used] == '\n' || text[used] == ' '))
                    used++;
                continue;
            }
            const char *const tag[] = {close_tag};
            bool dummy;
            size_t n = left;
            if (!final)
                n = drv_utf8_complete_len(cur, drv_stop_scan(cur, left, tag, 1, &dummy));
            *cancel = emit_some(emit, ud, DRV_EV_THINKING, cur, n);
            used += n;
            break;
        }
        if (st->enabled && !st->saw_answer) {
            /* a thinking model opens with <think>, maybe after whitespace */
            size_t ws = 0;
            while (ws < left && (cur[ws] == '\n' || cur[ws] == ' '))
                ws++;
            size_t rest = left - ws, cmp = rest < open_n ? rest : open_n;
            if (memcmp(cur + ws, open_tag, cmp) == 0) {
                if (cmp < open_n && !final)
                    break; /* wait for the rest of the tag */
                if (cmp == open_n) {
                    used += ws + open_n;
                    st->in_think = true;
                    continue;
                }
            }
            st->saw_answer = true;
        }
        size_t n = drv_stop_scan(cur, left, stops, n_stops, stopped);
        if (!*stopped && !final)
            n = drv_utf8_complete_len(cur, n);
        *cancel = emit_some(emit, ud, DRV_EV_TOKEN, cur, n);
        used += *stopped ? left : n;
        break;
    }
    return used;
}

bool drv_think_opened(const char *text, size_t len)
{
    static const char open_tag[] = "<think>";
    const size_t n = sizeof(open_tag) - 1;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    return len >= n && memcmp(text + len - n, open_tag, n) == 0;
}
