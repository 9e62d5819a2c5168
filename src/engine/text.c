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
