/* api: JSON field helpers, keep_alive durations, UTF-8 repair, the encoder's
 * wire-independent half, error bodies. */
#include "api/api_int.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- decoding helpers ---------------------------------------------------- */

void api_req_begin(struct drv_api_req *r)
{
    memset(r, 0, sizeof(*r));
    drv_gen_request_init(&r->gen);
}

void drv_api_req_release(struct drv_api_req *r)
{
    json_decref(r->owned);
    json_decref(r->root);
    free(r->msgs);
    free(r->stops);
    api_req_begin(r);
}

int api_load(const char *body, size_t len, json_t **root, struct drv_err *err)
{
    json_error_t jerr;
    *root = json_loadb(body ? body : "", body ? len : 0, 0, &jerr);
    if (*root == NULL)
        return drv_err_set(err, DRV_EINVAL, "invalid JSON at line %d, column %d: %s", jerr.line,
                           jerr.column, jerr.text);
    if (!json_is_object(*root))
        return drv_err_set(err, DRV_EINVAL, "request body must be a JSON object");
    return 0;
}

int api_model(json_t *root, const char **out, struct drv_err *err)
{
    json_t *v = json_object_get(root, "model");
    if (v == NULL || json_is_null(v))
        return drv_err_set(err, DRV_EINVAL, "model is required");
    if (!json_is_string(v) || json_string_length(v) == 0)
        return drv_err_set(err, DRV_EINVAL, "model must be a non-empty string");
    *out = json_string_value(v);
    return 0;
}

const char *api_keep(struct drv_api_req *r, const char *s, size_t n)
{
    if (r->owned == NULL && (r->owned = json_array()) == NULL)
        return NULL;
    json_t *j = json_stringn_nocheck(s, n);
    if (j == NULL || json_array_append_new(r->owned, j))
        return NULL;
    return json_string_value(j);
}

static json_t *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

int api_get_str(json_t *o, const char *prefix, const char *key, const char **out,
                struct drv_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return drv_err_set(err, DRV_EINVAL, "%s%s must be a string", prefix, key);
    *out = json_string_value(v);
    return 0;
}

int api_get_bool(json_t *o, const char *prefix, const char *key, bool *out, struct drv_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return drv_err_set(err, DRV_EINVAL, "%s%s must be true or false", prefix, key);
    *out = json_is_true(v);
    return 0;
}

int api_get_float(json_t *o, const char *prefix, const char *key, float *out, struct drv_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return drv_err_set(err, DRV_EINVAL, "%s%s must be a number", prefix, key);
    double d = json_number_value(v);
    if (!(fabs(d) <= FLT_MAX))
        return drv_err_set(err, DRV_EINVAL, "%s%s is out of range", prefix, key);
    *out = (float)d;
    return 0;
}

static int get_int(json_t *o, const char *prefix, const char *key, int64_t lo, int64_t hi,
                   int64_t *out, struct drv_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return 1; /* absent */
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e18) {
        x = (int64_t)json_real_value(v); /* 2.0 from clients that only have doubles */
    } else {
        return drv_err_set(err, DRV_EINVAL, "%s%s must be an integer", prefix, key);
    }
    if (x < lo || x > hi)
        return drv_err_set(err, DRV_EINVAL, "%s%s is out of range", prefix, key);
    *out = x;
    return 0;
}

int api_get_i32(json_t *o, const char *prefix, const char *key, int32_t *out, struct drv_err *err)
{
    int64_t x;
    int rc = get_int(o, prefix, key, INT32_MIN, INT32_MAX, &x, err);
    if (rc == 0)
        *out = (int32_t)x;
    return rc < 0 ? rc : 0;
}

int api_get_i64(json_t *o, const char *prefix, const char *key, int64_t *out, struct drv_err *err)
{
    int rc = get_int(o, prefix, key, INT64_MIN, INT64_MAX, out, err);
    return rc < 0 ? rc : 0;
}

int api_stop(struct drv_api_req *r, json_t *v, const char *name, struct drv_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return drv_err_set(err, DRV_EINVAL, "%s must be a string or an array of strings", name);
    if (n > DRV_API_MAX_STOP)
        return drv_err_set(err, DRV_ETOOBIG, "%s has %zu strings; at most %d are allowed", name, n,
                           DRV_API_MAX_STOP);
    const char **stops = calloc(n ? n : 1, sizeof(*stops));
    if (stops == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s)) {
            free(stops);
            return drv_err_set(err, DRV_EINVAL, "%s must be a string or an array of strings", name);
        }
        if (json_string_length(s) > 0) /* an empty stop would end every answer at once */
            stops[k++] = json_string_value(s);
    }
    free(r->stops);
    r->stops = stops;
    r->gen.stop = stops;
    r->gen.n_stop = k;
    return 0;
}

int api_think(json_t *v, const char *name, bool allow_none, int *out, struct drv_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1 : 0;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "low") || !strcmp(s, "medium") || !strcmp(s, "high") ||
            (allow_none && !strcmp(s, "minimal"))) {
            *out = 1;
            return 0;
        }
        if (allow_none && !strcmp(s, "none")) {
            *out = 0;
            return 0;
        }
    }
    return drv_err_set(err, DRV_EINVAL, "%s must be true, false, \"low\", \"medium\" or \"high\"",
                       name);
}

/* ---- keep_alive ----------------------------------------------------------- */

static int64_t ms_from_double(double ms, bool neg)
{
    if (neg && ms > 0)
        return -1;
    if (ms >= 9.2e18)
        return INT64_MAX;
    int64_t r = (int64_t)ms;
    return (r == 0 && ms > 0) ? 1 : r; /* a positive duration never means "unload now" */
}

static double unit_ms(const char **pp)
{
    static const struct {
        const char *name;
        double ms;
    } units[] = {
        {"ns", 1e-6}, {"us", 1e-3},  {"\xc2\xb5s", 1e-3}, {"\xce\xbcs", 1e-3},
        {"ms", 1.0},  {"s", 1000.0}, {"m", 60000.0},      {"h", 3600000.0},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t n = strlen(units[i].name);
        if (strncmp(*pp, units[i].name, n) == 0) {
            /* "m" must not match the start of "ms" */
            char next = (*pp)[n];
            if (next != '\0' && (next < '0' || next > '9') && next != '.')
                continue;
            *pp += n;
            return units[i].ms;
        }
    }
    return -1;
}

int drv_api_parse_keep_alive(const char *s, int64_t *out_ms, struct drv_err *err)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (*p == '\0')
        goto bad;
    double total = 0;
    bool first = true;
    while (*p) {
        double v = 0, scale = 1;
        int digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++)
            v = v * 10 + (*p - '0');
        if (*p == '.') {
            for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                v += (*p - '0') * (scale /= 10);
        }
        if (digits == 0)
            goto bad;
        if (*p == '\0' && first) { /* a plain number is seconds */
            total = v * 1000.0;
            break;
        }
        double u = unit_ms(&p);
        if (u < 0)
            goto bad;
        total += v * u;
        first = false;
    }
    *out_ms = ms_from_double(total, neg);
    return 0;
bad:
    return drv_err_set(err, DRV_EINVAL,
                       "keep_alive: invalid duration \"%.64s\" (want e.g. \"5m\", \"1h30m\", "
                       "\"-1\" or a number of seconds)",
                       s);
}

int api_keep_alive(json_t *v, int64_t *out, struct drv_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        double sec = json_number_value(v);
        *out = ms_from_double(fabs(sec) * 1000.0, sec < 0);
        return 0;
    }
    if (json_is_string(v))
        return drv_api_parse_keep_alive(json_string_value(v), out, err);
    return drv_err_set(err, DRV_EINVAL,
                       "keep_alive must be a duration string (\"5m\") or a number of seconds");
}

/* ---- embeddings requests --------------------------------------------------- */

void drv_api_embed_req_release(struct drv_api_embed_req *r)
{
    json_decref(r->root);
    free(r->inputs);
    memset(r, 0, sizeof(*r));
    r->truncate = true;
    r->keep_alive_ms = INT64_MIN;
}

int api_embed_inputs(struct drv_api_embed_req *r, json_t *v, const char *name, struct drv_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) && !json_is_array(v))
        return drv_err_set(err, DRV_EINVAL, "%s must be a string or an array of strings", name);
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (n > DRV_API_MAX_EMBED_INPUTS)
        return drv_err_set(err, DRV_ETOOBIG, "%s has %zu entries; at most %d are allowed", name, n,
                           DRV_API_MAX_EMBED_INPUTS);
    r->inputs = calloc(n ? n : 1, sizeof(*r->inputs));
    if (r->inputs == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s))
            return drv_err_set(err, DRV_EINVAL,
                               "%s must be a string or an array of strings (token arrays are "
                               "not supported)",
                               name);
        r->inputs[i] = json_string_value(s);
    }
    r->n_inputs = n;
    return 0;
}

/* ---- output helpers -------------------------------------------------------- */

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return drv_buf_append(data, buffer, size) ? -1 : 0;
}

void api_truncate(struct drv_buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

int api_dump_framed(json_t *j, const char *prefix, const char *suffix, struct drv_buf *out)
{
    if (j == NULL)
        return DRV_ENOMEM; /* json_pack failed: allocation (inputs are validated) */
    size_t mark = out->len;
    int rc = drv_buf_append(out, prefix, strlen(prefix));
    if (rc == 0 && json_dump_callback(j, dump_cb, out,
                                      JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10)))
        rc = DRV_ETOOBIG;
    if (rc == 0)
        rc = drv_buf_append(out, suffix, strlen(suffix));
    if (rc)
        api_truncate(out, mark);
    json_decref(j);
    return rc;
}

int api_dump(json_t *j, struct drv_buf *out)
{
    return api_dump_framed(j, "", "", out);
}

void api_rfc3339(char *out, size_t n, int64_t sec, long nsec, bool frac)
{
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    char day[48];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac)
        snprintf(out, n, "%s.%09ldZ", day, nsec);
    else
        snprintf(out, n, "%sZ", day);
}

void api_now_rfc3339(char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* every streamed token is stamped: the date part is formatted once a second
     * per thread, the nanoseconds by hand */
    static _Thread_local time_t day_sec = -1;
    static _Thread_local char day[32];
    static _Thread_local size_t day_len;
    if (ts.tv_sec != day_sec) {
        struct tm tm;
        if (gmtime_r(&ts.tv_sec, &tm) == NULL ||
            (day_len = strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
            api_rfc3339(out, n, ts.tv_sec, ts.tv_nsec, true);
            return;
        }
        day_sec = ts.tv_sec;
    }
    if (n < day_len + 12 || ts.tv_nsec < 0 || ts.tv_nsec > 999999999L) {
        api_rfc3339(out, n, ts.tv_sec, ts.tv_nsec, true);
        return;
    }
    memcpy(out, day, day_len);
    char *p = out + day_len;
    *p++ = '.';
    long ns = ts.tv_nsec;
    for (int i = 8; i >= 0; i--, ns /= 10)
        p[i] = (char)('0' + ns % 10);
    p[9] = 'Z';
    p[10] = '\0';
}

/* ---- direct JSON writing: the per-token hot path ------------------------------ */

int api_put(struct drv_buf *out, const char *lit)
{
    return drv_buf_append(out, lit, strlen(lit));
}

static int utf8_seq(const unsigned char *p, size_t n);

int api_put_jstr(struct drv_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t mark = out->len;
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;
    int rc = drv_buf_append(out, "\"", 1);
    while (rc == 0 && i < n) {
        unsigned c = p[i];
        if (c >= 0x80) {
            int k = utf8_seq(p + i, n - i);
            if (k <= 0) {
                rc = DRV_EINVAL;
                break;
            }
            i += (size_t)k;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        /* escaped as jansson's dump does: short forms, else \u00XX */
        char esc[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        rc = drv_buf_append(out, s + run, i - run);
        if (rc == 0)
            rc = drv_buf_append(out, esc, el);
        run = ++i;
    }
    if (rc == 0)
        rc = drv_buf_append(out, s + run, n - run);
    if (rc == 0)
        rc = drv_buf_append(out, "\"", 1);
    if (rc)
        api_truncate(out, mark);
    return rc;
}

int api_put_u64(struct drv_buf *out, uint64_t v)
{
    char d[24];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return drv_buf_append(out, d + i, sizeof(d) - i);
}

int api_float_array(const float *v, size_t n, struct drv_buf *out)
{
    int rc = drv_buf_append(out, "[", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* %.9g round-trips a float; JSON has no NaN/Inf */
        float f = isfinite(v[i]) ? v[i] : 0.0f;
        rc = drv_buf_appendf(out, i ? ",%.9g" : "%.9g", (double)f);
    }
    if (rc == 0)
        rc = drv_buf_append(out, "]", 1);
    return rc;
}

json_t *api_details(const struct drv_model_desc *m)
{
    json_t *fams = m->family[0] ? json_pack("[o]", api_jstr(m->family)) : json_array();
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o}", "parent_model", "", "format", "gguf", "family",
                     api_jstr(m->family), "families", fams, "parameter_size",
                     api_jstr(m->parameter_size), "quantization_level", api_jstr(m->quantization));
}

/* ---- UTF-8 repair ------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at p[0..n): > 0 when complete, 0 when
 * invalid, -1 when a valid but incomplete prefix (Unicode table 3-7). */
static int utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c == 0xE0)
        need = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        need = 3;
    else if (c == 0xED)
        need = 3, hi = 0x9F;
    else if (c == 0xF0)
        need = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 4;
    else if (c == 0xF4)
        need = 4, hi = 0x8F;
    else
        return 0;
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n)
            return -1;
        unsigned b = p[k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            return 0;
    }
    return need;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd";

/* Appends s[0..n) to out as valid UTF-8. With pend, an incomplete sequence at
 * the end is kept there for the next call (and one left from the previous call
 * is completed first); without, it becomes U+FFFD. */
static int utf8_repair(const unsigned char *s, size_t n, struct drv_buf *out, unsigned char *pend,
                       size_t *n_pend)
{
    int rc = 0;
    if (pend && *n_pend) {
        unsigned char tmp[8];
        size_t t = *n_pend, take = n < 4 ? n : 4;
        memcpy(tmp, pend, t);
        memcpy(tmp + t, s, take);
        int l = utf8_seq(tmp, t + take);
        if (l < 0) { /* still incomplete: s was too short and is all pending now */
            memcpy(pend, tmp, t + take);
            *n_pend = t + take;
            return 0;
        }
        *n_pend = 0;
        if (l > 0) {
            if ((rc = drv_buf_append(out, tmp, (size_t)l)))
                return rc;
            s += (size_t)l - t;
            n -= (size_t)l - t;
        } else if ((rc = drv_buf_append(out, REPLACEMENT, 3))) {
            return rc;
        }
    }
    size_t i = 0, run = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int l = utf8_seq(s + i, n - i);
        if (l > 0) {
            i += (size_t)l;
            continue;
        }
        if ((rc = drv_buf_append(out, s + run, i - run)))
            return rc;
        if (l < 0 && pend) {
            memcpy(pend, s + i, n - i);
            *n_pend = n - i;
            return 0;
        }
        if ((rc = drv_buf_append(out, REPLACEMENT, 3)))
            return rc;
        run = ++i;
    }
    return drv_buf_append(out, s + run, i - run);
}

/* ---- encoder ------------------------------------------------------------------ */

static atomic_uint_least64_t id_counter;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int drv_api_enc_init(struct drv_api_enc *enc, enum drv_api_wire wire, bool stream,
                     bool include_usage, const char *model)
{
    memset(enc, 0, sizeof(*enc));
    enc->wire = wire;
    enc->stream = stream;
    enc->include_usage = include_usage;
    enc->status = 200;
    for (int i = 0; i < 2; i++)
        drv_buf_init(&enc->text[i], DRV_API_MAX_TEXT);
    drv_buf_init(&enc->scratch, DRV_API_MAX_TEXT);
    if (model && (enc->model = strdup(model)) == NULL)
        return DRV_ENOMEM;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    enc->created = ts.tv_sec;
    /* ids only need to be unique, not secret */
    uint64_t seed = drv_now_ns() ^ ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec;
    uint64_t a = splitmix64(seed + atomic_fetch_add(&id_counter, 1));
    uint64_t b = splitmix64(a ^ (uintptr_t)enc);
    snprintf(enc->id, sizeof(enc->id), "%s-%016llx%08llx",
             wire == DRV_WIRE_OPENAI_COMPLETION ? "cmpl" : "chatcmpl", (unsigned long long)a,
             (unsigned long long)(b & 0xffffffffu));
    return 0;
}

void drv_api_enc_release(struct drv_api_enc *enc)
{
    free(enc->model);
    enc->model = NULL;
    for (int i = 0; i < 2; i++)
        drv_buf_release(&enc->text[i]);
    drv_buf_release(&enc->scratch);
}

const char *drv_api_enc_content_type(const struct drv_api_enc *enc)
{
    if (!enc->stream || enc->error_body)
        return "application/json";
    if (enc->wire == DRV_WIRE_OLLAMA_GENERATE || enc->wire == DRV_WIRE_OLLAMA_CHAT)
        return "application/x-ndjson";
    return "text/event-stream";
}

int drv_api_enc_status(const struct drv_api_enc *enc)
{
    return enc->status;
}

void drv_api_enc_headers_sent(struct drv_api_enc *enc)
{
    enc->headers_sent = true;
}

bool drv_api_enc_finished(const struct drv_api_enc *enc)
{
    return enc->finished;
}

const char *api_done_reason(const char *r)
{
    return (r && !strcmp(r, "length")) ? "length" : "stop";
}

const char *api_enc_model(const struct drv_api_enc *enc, const struct drv_gen_event *ev)
{
    if (enc->model)
        return enc->model;
    return ev->model ? ev->model : "";
}

static int wire_event(struct drv_api_enc *enc, const struct drv_gen_event *ev, const char *text,
                      size_t len, struct drv_buf *out)
{
    if (api_wire_is_ollama(enc->wire))
        return api_ollama_enc_event(enc, ev, text, len, out);
    return api_openai_enc_event(enc, ev, text, len, out);
}

/* Text of one channel (0 answer, 1 thinking): repaired, then either accumulated
 * or encoded as one line/chunk. final turns an incomplete tail into U+FFFD. */
static int enc_text(struct drv_api_enc *enc, int ch, const char *s, size_t n, bool final,
                    const char *model, struct drv_buf *out)
{
    unsigned char *pend = enc->pend[ch];
    size_t *n_pend = &enc->n_pend[ch];
    if (final) {
        *n_pend = 0;
        s = REPLACEMENT;
        n = 3;
        pend = NULL;
        n_pend = NULL;
    }
    struct drv_buf *dst = enc->stream ? &enc->scratch : &enc->text[ch];
    if (enc->stream)
        drv_buf_reset(dst);
    int rc = utf8_repair((const unsigned char *)s, n, dst, pend, n_pend);
    if (rc || !enc->stream || dst->len == 0)
        return rc;
    struct drv_gen_event tev = {.kind = ch ? DRV_EV_THINKING : DRV_EV_TOKEN, .model = model};
    return wire_event(enc, &tev, dst->data, dst->len, out);
}

static int enc_error(struct drv_api_enc *enc, const struct drv_gen_event *ev, struct drv_buf *out)
{
    int status = ev->status >= 400 && ev->status <= 599 ? ev->status : 500;
    const char *msg = ev->message ? ev->message : "generation failed";
    if (!enc->stream || (!enc->started && !enc->headers_sent)) {
        int rc = drv_api_error_body(enc->wire, status, msg, out);
        if (rc == 0) {
            enc->error_body = true;
            enc->status = status;
        }
        return rc;
    }
    struct drv_gen_event e = *ev;
    e.status = status;
    e.message = msg;
    return wire_event(enc, &e, NULL, 0, out);
}

int drv_api_enc_event(struct drv_api_enc *enc, const struct drv_gen_event *ev, struct drv_buf *out)
{
    if (enc->finished)
        return DRV_EINVAL;
    size_t mark = out->len;
    int rc = 0;
    switch (ev->kind) {
    case DRV_EV_TOKEN:
    case DRV_EV_THINKING:
        rc = enc_text(enc, ev->kind == DRV_EV_THINKING, ev->text, ev->text ? ev->len : 0, false,
                      ev->model, out);
        break;
    case DRV_EV_DONE:
        for (int ch = 0; rc == 0 && ch < 2; ch++)
            if (enc->n_pend[ch])
                rc = enc_text(enc, ch, "", 0, true, ev->model, out);
        if (rc == 0)
            rc = wire_event(enc, ev, NULL, 0, out);
        enc->finished = rc == 0;
        break;
    case DRV_EV_ERROR:
        rc = enc_error(enc, ev, out);
        enc->finished = rc == 0;
        break;
    default:
        rc = DRV_EINVAL;
    }
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
        return rc;
    }
    if (enc->stream && out->len > mark)
        enc->started = true;
    return 0;
}

/* ---- error bodies ----------------------------------------------------------- */

static const char *openai_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    case 501:
        return "not_supported_error";
    case 503:
        return "unavailable_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

json_t *api_jstr(const char *s)
{
    if (s == NULL)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    struct drv_buf b;
    drv_buf_init(&b, DRV_API_MAX_TEXT);
    if (utf8_repair((const unsigned char *)s, strlen(s), &b, NULL, NULL) == 0)
        j = json_stringn_nocheck(b.data ? b.data : "", b.len);
    drv_buf_release(&b);
    return j;
}

json_t *api_error_object(enum drv_api_wire wire, int status, const char *message)
{
    json_t *msg = api_jstr(message);
    if (api_wire_is_ollama(wire))
        return json_pack("{s:o}", "error", msg);
    return json_pack("{s:{s:o,s:s,s:i}}", "error", "message", msg, "type",
                     openai_error_type(status), "code", status);
}

int drv_api_error_body(enum drv_api_wire wire, int status, const char *message, struct drv_buf *out)
{
    return api_dump(api_error_object(wire, status, message), out);
}
