/* api internals shared by common.c, ollama.c and openai.c. */
#ifndef DRV_API_INT_H
#define DRV_API_INT_H

#include "api/api.h"

#include <jansson.h>

/* Parses the body; the root must be an object. */
int api_load(const char *body, size_t len, json_t **root, struct drv_err *err);
/* root.model: a non-empty string. */
int api_model(json_t *root, const char **out, struct drv_err *err);
/* A copy of s[0..n) that lives as long as r (NULL on ENOMEM). */
const char *api_keep(struct drv_api_req *r, const char *s, size_t n);
/* Starts a decode: *r empty, gen at its defaults. */
void api_req_begin(struct drv_api_req *r);

/* Optional typed fields of object o: absent or null leaves *out unchanged.
 * prefix + key name the field in messages ("options." "temperature"). */
int api_get_str(json_t *o, const char *prefix, const char *key, const char **out,
                struct drv_err *err);
int api_get_bool(json_t *o, const char *prefix, const char *key, bool *out, struct drv_err *err);
int api_get_float(json_t *o, const char *prefix, const char *key, float *out, struct drv_err *err);
int api_get_i32(json_t *o, const char *prefix, const char *key, int32_t *out, struct drv_err *err);
int api_get_i64(json_t *o, const char *prefix, const char *key, int64_t *out, struct drv_err *err);
/* stop: a string or an array of strings ("" entries are skipped). */
int api_stop(struct drv_api_req *r, json_t *v, const char *name, struct drv_err *err);
/* think: bool, or "low"|"medium"|"high" (on); "none" (off) when allow_none. */
int api_think(json_t *v, const char *name, bool allow_none, int *out, struct drv_err *err);
/* keep_alive: number of seconds or duration string. */
int api_keep_alive(json_t *v, int64_t *out, struct drv_err *err);
/* Inputs of an embedding request: a string or an array of strings. */
int api_embed_inputs(struct drv_api_embed_req *r, json_t *v, const char *name, struct drv_err *err);

/* Appends the compact JSON of j to out; out unchanged on failure. Takes
 * ownership of j (decrefs it), so callers can pass json_pack results. */
int api_dump(json_t *j, struct drv_buf *out);
/* Same, framed: prefix + json + suffix ("data: ", "\n\n"). */
int api_dump_framed(json_t *j, const char *prefix, const char *suffix, struct drv_buf *out);
/* RFC 3339 UTC: with nanoseconds "2024-01-01T12:00:00.123456789Z" when frac. */
void api_rfc3339(char *out, size_t n, int64_t sec, long nsec, bool frac);
/* "2024-...Z" for now, with nanoseconds. */
void api_now_rfc3339(char *out, size_t n);
/* Direct JSON writing, for lines sent once per token: the bytes jansson's
 * compact dump would write, without building objects. api_put appends a literal;
 * api_put_jstr a JSON string of s[0..n) (DRV_EINVAL, out unchanged, when s is not
 * valid UTF-8: the caller then takes the jansson path, which repairs it);
 * api_put_u64 a number. */
int api_put(struct drv_buf *out, const char *lit);
int api_put_jstr(struct drv_buf *out, const char *s, size_t n);
int api_put_u64(struct drv_buf *out, uint64_t v);
/* Back to len bytes (a mark taken before a failed append). */
void api_truncate(struct drv_buf *b, size_t len);
/* Appends floats as a JSON array ("[0.1,-2]"). */
int api_float_array(const float *v, size_t n, struct drv_buf *out);
/* A JSON string of s (NULL = ""), repairing invalid UTF-8 rather than failing. */
json_t *api_jstr(const char *s);
/* Model family details object of /api/tags and /api/ps. */
json_t *api_details(const struct drv_model_desc *m);

/* Ollama's wire (generate, chat), else OpenAI's. */
static inline bool api_wire_is_ollama(enum drv_api_wire w)
{
    return w == DRV_WIRE_OLLAMA_GENERATE || w == DRV_WIRE_OLLAMA_CHAT;
}

/* Encoder back ends, per wire family. */
int api_ollama_enc_event(struct drv_api_enc *enc, const struct drv_gen_event *ev, const char *text,
                         size_t len, struct drv_buf *out);
int api_openai_enc_event(struct drv_api_enc *enc, const struct drv_gen_event *ev, const char *text,
                         size_t len, struct drv_buf *out);
/* {"error":"..."} (Ollama) or {"error":{message,type,code}} (OpenAI). */
json_t *api_error_object(enum drv_api_wire wire, int status, const char *message);
const char *api_done_reason(const char *r);
const char *api_enc_model(const struct drv_api_enc *enc, const struct drv_gen_event *ev);

#endif
