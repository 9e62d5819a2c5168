/* api — Ollama and OpenAI wire formats <-> drover's internal request/event model.
 *
 * Pure functions: no HTTP, no threads, no globals beyond an id counter. The HTTP
 * layer hands a request body to a decoder, passes the decoded struct
 * drv_gen_request to a backend, and feeds every event the backend sends through
 * an encoder (struct drv_api_enc) that appends the wire bytes to a drv_buf.
 *
 * What is accepted and deliberately ignored (documented, not an error):
 * - Ollama: "images" (generate and chat messages), "tools", messages[].tool_calls
 *   and messages[].thinking (history reasoning is not fed back), "context",
 *   "template", and options drover does not take per request (num_thread,
 *   num_gpu, num_batch, ... : any unknown option).
 * - OpenAI: "tools", "tool_choice", "logit_bias", "logprobs", "user", "echo",
 *   embeddings "dimensions".
 * What is refused: OpenAI "n" other than 1, batch or token prompts, non-text
 * message content parts ("image_url", ...), OpenAI token-array embedding input.
 *
 * A JSON null for an optional field means the field is absent. */
#ifndef DRV_API_H
#define DRV_API_H

#include "backend/backend.h"
#include "base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t; /* jansson */

/* Caps on one request; past one a decoder fails with DRV_ETOOBIG. */
#define DRV_API_MAX_MESSAGES     1024
#define DRV_API_MAX_STOP         64
#define DRV_API_MAX_EMBED_INPUTS 2048
/* Cap on the text a non-streaming encoder accumulates (answer and thinking each). */
#define DRV_API_MAX_TEXT (64u << 20)

enum drv_api_wire {
    DRV_WIRE_OLLAMA_GENERATE,   /* POST /api/generate */
    DRV_WIRE_OLLAMA_CHAT,       /* POST /api/chat */
    DRV_WIRE_OPENAI_COMPLETION, /* POST /v1/completions */
    DRV_WIRE_OPENAI_CHAT        /* POST /v1/chat/completions */
};

/* ---- decoding generation requests ---------------------------------------- */

/* A decoded request. Every pointer in gen (model, prompt, messages, stop, ...)
 * points into memory this struct owns; it stays valid until
 * drv_api_req_release(). */
struct drv_api_req {
    struct drv_gen_request gen;
    bool stream;        /* Ollama default true, OpenAI default false */
    bool include_usage; /* OpenAI stream_options.include_usage (false for Ollama) */
    /* private */
    struct json_t *root;       /* the parsed body */
    struct json_t *owned;      /* strings derived from the body (json array) */
    struct drv_chat_msg *msgs; /* gen.messages */
    const char **stops;        /* gen.stop */
};

/* Each decoder parses body[0..len) (need not be NUL-terminated) into *out.
 * Returns 0, or DRV_EINVAL (malformed JSON, missing/empty "model", a field of
 * the wrong type or value, unknown role), DRV_ETOOBIG (past a cap) or
 * DRV_ENOMEM, with a one-line message in err. *out is always initialised; on
 * failure it holds nothing, and drv_api_req_release() is harmless either way. */
int drv_api_ollama_decode_generate(const char *body, size_t len, struct drv_api_req *out,
                                   struct drv_err *err);
int drv_api_ollama_decode_chat(const char *body, size_t len, struct drv_api_req *out,
                               struct drv_err *err);
int drv_api_openai_decode_completion(const char *body, size_t len, struct drv_api_req *out,
                                     struct drv_err *err);
int drv_api_openai_decode_chat(const char *body, size_t len, struct drv_api_req *out,
                               struct drv_err *err);
/* Frees what *r owns and leaves it empty; safe to call twice. */
void drv_api_req_release(struct drv_api_req *r);

/* Parses an Ollama keep_alive string: a Go duration ("5m", "1h30m", "10s",
 * "300ms", "1.5h", "-1m") or a plain number of seconds ("300", "-1", "0").
 * *out_ms: milliseconds, 0 = unload now, -1 = forever (any negative input);
 * huge values saturate at INT64_MAX. Returns 0 or DRV_EINVAL. */
int drv_api_parse_keep_alive(const char *s, int64_t *out_ms, struct drv_err *err);

/* ---- decoding embedding requests ----------------------------------------- */

struct drv_api_embed_req {
    const char *model;
    const char **inputs;   /* n_inputs strings, owned by this struct */
    size_t n_inputs;       /* may be 0 for Ollama (loads the model) */
    bool truncate;         /* Ollama /api/embed "truncate" (default true) */
    bool base64;           /* OpenAI encoding_format "base64" (the openai npm default) */
    int64_t keep_alive_ms; /* INT64_MIN = server default, as in drv_gen_request */
    /* private */
    struct json_t *root;
};

/* Same contract as the generation decoders.
 * Ollama /api/embed {model, input: string|[string], truncate?, keep_alive?};
 * legacy /api/embeddings {model, prompt, keep_alive?} (one input);
 * OpenAI /v1/embeddings {model, input: string|[string], encoding_format?}. */
int drv_api_ollama_decode_embed(const char *body, size_t len, struct drv_api_embed_req *out,
                                struct drv_err *err);
int drv_api_ollama_decode_embeddings(const char *body, size_t len, struct drv_api_embed_req *out,
                                     struct drv_err *err);
int drv_api_openai_decode_embeddings(const char *body, size_t len, struct drv_api_embed_req *out,
                                     struct drv_err *err);
void drv_api_embed_req_release(struct drv_api_embed_req *r);

/* ---- encoding the event stream -------------------------------------------
 * One encoder per response. Streaming: every TOKEN/THINKING event produces a
 * line (Ollama NDJSON) or SSE chunk (OpenAI); DONE produces the final line /
 * chunks (+ usage chunk when include_usage, + "data: [DONE]"). Non-streaming:
 * text is accumulated and DONE produces one JSON object.
 *
 * ERROR: when the response has not started (non-streaming, or streaming with
 * nothing produced yet and headers not sent), the encoder writes the plain
 * error body of drv_api_error_body() and drv_api_enc_status() becomes the
 * event's status; otherwise an in-stream error: Ollama {"error":"..."}\n,
 * OpenAI data: {"error":{...}}\n\n.
 *
 * How the HTTP layer uses it: send headers when the first event's bytes are
 * ready, with drv_api_enc_status() and drv_api_enc_content_type(); if it must
 * send headers earlier, call drv_api_enc_headers_sent() first.
 *
 * Text that is not valid UTF-8 is repaired: a multi-byte character split
 * across events is joined, and invalid bytes become U+FFFD.
 * A done_reason "cancel" (or NULL, or anything but "length") is "stop" on the
 * wire. Thinking text never lands in response/content: Ollama "thinking" /
 * message.thinking, OpenAI chat reasoning_content; OpenAI completions drop it. */
struct drv_api_enc {
    enum drv_api_wire wire;
    bool stream;
    bool include_usage;
    /* private */
    bool started;             /* bytes of a streaming response were produced */
    bool headers_sent;        /* the caller committed to a streaming 200 */
    bool role_sent;           /* OpenAI chat: the first delta carried the role */
    bool finished;            /* a terminal event was encoded */
    bool error_body;          /* the response is a plain error body */
    int status;               /* HTTP status of the response */
    char *model;              /* owned copy */
    char id[48];              /* OpenAI "chatcmpl-<hex>" / "cmpl-<hex>" */
    int64_t created;          /* unix seconds */
    struct drv_buf text[2];   /* non-streaming accumulation: [0] answer, [1] thinking */
    struct drv_buf scratch;   /* one event's repaired text */
    unsigned char pend[2][4]; /* incomplete UTF-8 tail per channel */
    size_t n_pend[2];
};

/* model: echoed on the wire (the name the client asked for); NULL = use each
 * event's model. Returns 0 or DRV_ENOMEM. Release with drv_api_enc_release(). */
int drv_api_enc_init(struct drv_api_enc *enc, enum drv_api_wire wire, bool stream,
                     bool include_usage, const char *model);
void drv_api_enc_release(struct drv_api_enc *enc);

/* Appends what ev produces to out (possibly nothing). On failure (DRV_ETOOBIG
 * past out's cap or DRV_API_MAX_TEXT, DRV_ENOMEM, DRV_EINVAL for an event after
 * the terminal one) out is left as it was. */
int drv_api_enc_event(struct drv_api_enc *enc, const struct drv_gen_event *ev, struct drv_buf *out);

/* "application/x-ndjson" (Ollama stream), "text/event-stream" (OpenAI stream)
 * or "application/json" (non-streaming, or an error body). Static string. */
const char *drv_api_enc_content_type(const struct drv_api_enc *enc);
/* 200, or the status of an ERROR event that became the whole response. */
int drv_api_enc_status(const struct drv_api_enc *enc);
/* From now on errors are encoded in-stream. */
void drv_api_enc_headers_sent(struct drv_api_enc *enc);
/* True once a terminal event was encoded. */
bool drv_api_enc_finished(const struct drv_api_enc *enc);

/* Appends a complete error body for an HTTP error response:
 * Ollama {"error":"message"}; OpenAI {"error":{"message","type","code":status}}
 * with type invalid_request_error (4xx), authentication_error (401),
 * permission_error (403), not_found_error (404), rate_limit_error (429),
 * server_error (5xx), unavailable_error (503). */
int drv_api_error_body(enum drv_api_wire wire, int status, const char *message,
                       struct drv_buf *out);

/* ---- listings -------------------------------------------------------------
 * Each appends one complete JSON document to out; 0 or a negative drv_errcode
 * (out left as it was). */

/* GET /api/tags */
int drv_api_ollama_tags(const struct drv_model_desc *models, size_t n, struct drv_buf *out);
/* GET /api/ps (size = size_resident, or size when that is 0; expires_at 0 =
 * never, written as 2318-01-01T00:00:00Z like Ollama's "forever"). */
int drv_api_ollama_ps(const struct drv_model_desc *models, size_t n, struct drv_buf *out);
/* GET /v1/models */
int drv_api_openai_models(const struct drv_model_desc *models, size_t n, struct drv_buf *out);

/* ---- embedding responses -------------------------------------------------- */

struct drv_api_embed_result {
    const char *model;
    const float *data;     /* n rows of dim floats, row-major; not normalised here */
    size_t n;              /* rows (inputs) */
    size_t dim;            /* floats per row */
    uint64_t total_ns;     /* Ollama total_duration */
    uint64_t load_ns;      /* Ollama load_duration */
    int64_t prompt_tokens; /* tokens embedded over all inputs */
};

/* POST /api/embed: {model, embeddings:[[...]], total_duration, load_duration,
 * prompt_eval_count} (zero metrics omitted). */
int drv_api_ollama_embed_response(const struct drv_api_embed_result *r, struct drv_buf *out);
/* POST /api/embeddings (legacy): {embedding:[...]} — the first row, [] when n = 0. */
int drv_api_ollama_embeddings_response(const struct drv_api_embed_result *r, struct drv_buf *out);
/* POST /v1/embeddings: {object:"list", data:[{object:"embedding", index,
 * embedding}], model, usage{prompt_tokens, total_tokens}}; base64: each
 * embedding is the base64 of its little-endian float32 bytes. */
int drv_api_openai_embeddings_response(const struct drv_api_embed_result *r, bool base64,
                                       struct drv_buf *out);

/* ---- upstream: talking to another server (api/upstream.c) -----------------
 * The fleet gateway forwards a decoded request to a node in the node's own API
 * (Ollama or OpenAI) and turns the node's streamed answer back into events, so
 * that any client API works with any node kind. */

/* Appends the JSON body of a request for `wire` carrying everything r says
 * (model, prompt/system/suffix/raw or messages, sampling options, num_predict,
 * num_ctx (Ollama only), stop, format/schema, think (Ollama "think"; OpenAI:
 * chat_template_kwargs.enable_thinking, which llama-server reads), keep_alive
 * (Ollama only), truncate (Ollama only)). Knobs left at their defaults are not
 * sent. `stream` sets "stream"; an OpenAI stream also asks
 * stream_options.include_usage. model_override, when not NULL, replaces
 * r->model (the node's own name of the model). /v1/completions has no system
 * prompt and is always raw: r->system and r->raw are not sent there; its
 * format goes as llama-server's "json_schema" field. Returns 0, DRV_EINVAL (a
 * request kind the wire cannot carry: chat on a completion wire or the
 * reverse; or a format_schema that is not a JSON object), DRV_ENOMEM or
 * DRV_ETOOBIG (out's cap). */
int drv_api_upstream_body(const struct drv_gen_request *r, enum drv_api_wire wire, bool stream,
                          const char *model_override, struct drv_buf *out);

/* Incremental decoder of a node's answer: NDJSON lines of /api/generate or
 * /api/chat, or SSE events of /v1/completions or /v1/chat/completions, or, when
 * not streaming, one JSON object. Fed the 2xx body in arbitrary pieces, it
 * calls sink with TOKEN / THINKING events for answer and reasoning text (Ollama
 * "response"/message.content and "thinking"/message.thinking; OpenAI
 * choices[0].text / delta.content and delta.reasoning_content) and exactly one
 * terminal event: DONE with the node's statistics (Ollama durations and counts;
 * OpenAI usage.prompt_tokens / completion_tokens and, when present,
 * llama-server's "timings" {prompt_n, prompt_ms, predicted_n, predicted_ms};
 * done_reason from done_reason / finish_reason, "stop" when absent) or ERROR
 * for an in-stream error object (Ollama {"error":"..."}, OpenAI
 * {"error":{"message":...}}) with status 502. ev->model is the model name set
 * at init. Lines longer than DRV_API_MAX_TEXT fail. A non-streaming answer
 * gives at most one THINKING and one TOKEN event, then DONE. OpenAI streams end
 * with DONE at "data: [DONE]", or at the end of the body once a finish_reason
 * was seen, so that it carries the usage chunk llama-server sends after the
 * finish_reason chunk. Token counts come from usage, else from timings. */
struct drv_api_upstream_parser {
    enum drv_api_wire wire;
    bool stream;
    /* private */
    bool finished;     /* the terminal event was sent */
    bool sink_stopped; /* the sink returned nonzero */
    bool started;      /* a TOKEN or THINKING event was sent */
    bool seen_finish;  /* OpenAI: a chunk carried finish_reason */
    bool seen_data;    /* SSE: the event being read has a data field */
    bool after_first;  /* past the first line (where a BOM is skipped) */
    bool usage_tokens; /* OpenAI: token counts came from usage (timings do not override) */
    char *model;
    struct drv_buf line; /* the incomplete line so far (non-streaming: the whole body) */
    struct drv_buf data; /* SSE: the data lines of the event being read */
    int32_t prompt_tokens, eval_tokens;
    uint64_t total_ns, load_ns, prompt_ns, eval_ns;
    char done_reason[16];
};

int drv_api_upstream_parser_init(struct drv_api_upstream_parser *p, enum drv_api_wire wire,
                                 bool stream, const char *model);
void drv_api_upstream_parser_release(struct drv_api_upstream_parser *p);
/* Feeds data[0..len). Returns 0 to go on, 1 when the sink asked to stop (the
 * caller should abort the transfer; no terminal event has been sent unless one
 * was decoded), or a negative drv_errcode (malformed JSON, a line past the cap)
 * with err set — the caller then ends the request with an ERROR event itself
 * (drv_api_upstream_parser_fail). */
int drv_api_upstream_feed(struct drv_api_upstream_parser *p, const char *data, size_t len,
                          drv_gen_sink sink, void *ud, struct drv_err *err);
/* The body ended. Decodes a last unterminated line; a stream that ended
 * without its final object (Ollama "done":true, OpenAI finish_reason / [DONE])
 * is truncated: an ERROR event (502, "node ended the stream early") is sent;
 * so is a last line cut short. An empty non-streaming body is an ERROR (502).
 * Sends nothing when the terminal event was already sent. Returns 0, or what
 * feed would. */
int drv_api_upstream_finish(struct drv_api_upstream_parser *p, drv_gen_sink sink, void *ud,
                            struct drv_err *err);
/* Sends the terminal ERROR event (status, message) unless a terminal event was
 * sent; also after the sink asked to stop (every request ends with one). */
void drv_api_upstream_parser_fail(struct drv_api_upstream_parser *p, int status,
                                  const char *message, drv_gen_sink sink, void *ud);
/* True once the terminal event was sent. */
bool drv_api_upstream_finished(const struct drv_api_upstream_parser *p);
/* True once any TOKEN or THINKING event was sent (a failure after it cannot be
 * retried on another node). */
bool drv_api_upstream_started(const struct drv_api_upstream_parser *p);

/* Listings of a node, into out[0..cap); each returns how many the listing has
 * (may be > cap) or a negative drv_errcode for a body that is not the expected
 * JSON. Fields the listing lacks stay zero/empty.
 *   GET /api/tags  -> name, model, digest, size, modified_at, details.family /
 *                     parameter_size / quantization_level
 *   GET /api/ps    -> the same plus size_resident (size), size_vram,
 *                     context_length, expires_at
 *   GET /v1/models -> name = model = data[].id (also llama-server's
 *                     "models"[] when "data" is absent) */
int drv_api_parse_ollama_tags(const char *body, size_t len, struct drv_model_desc *out, int cap);
int drv_api_parse_ollama_ps(const char *body, size_t len, struct drv_model_desc *out, int cap);
int drv_api_parse_openai_models(const char *body, size_t len, struct drv_model_desc *out, int cap);

/* Upstream embeddings: the body of an Ollama /api/embed or OpenAI
 * /v1/embeddings request for the given inputs (model_override as above), and
 * the rows of its answer: *rows (malloc'd, n*dim floats, caller frees), *n,
 * *dim, *prompt_tokens (0 when not given). Returns 0 or a negative drv_errcode
 * with err set. */
int drv_api_upstream_embed_body(const struct drv_embed_request *r, bool openai,
                                const char *model_override, struct drv_buf *out);
int drv_api_upstream_embed_parse(const char *body, size_t len, bool openai, float **rows, size_t *n,
                                 size_t *dim, int32_t *prompt_tokens, struct drv_err *err);

/* ---- the server: every route of both APIs over one backend (api/routes.c) ---- */

struct drv_http_params;
struct drv_api_server;

/* Appends Prometheus text for GET /metrics; returns 0 or a drv_errcode. */
typedef int (*drv_api_metrics_fn)(void *ud, struct drv_buf *out);

/* Starts an HTTP server answering the Ollama routes (/, /api/version, /api/tags,
 * /api/ps, /api/show, /api/generate, /api/chat, /api/embed, /api/embeddings), the
 * OpenAI routes (/v1/models, /v1/completions, /v1/chat/completions,
 * /v1/embeddings), /health and /metrics, all answered by backend (which must
 * outlive the server). Returns NULL with err set when the address cannot be
 * bound. Caller frees with drv_api_server_free. */
struct drv_api_server *drv_api_server_new(struct drv_backend *backend,
                                          const struct drv_http_params *http,
                                          drv_api_metrics_fn metrics, void *metrics_ud,
                                          struct drv_err *err);
uint16_t drv_api_server_port(const struct drv_api_server *s);
/* The hardware profile JSON (drover hw --json) that GET /api/drover/hw answers,
 * so a gateway, bench or doctor elsewhere knows this node's machine. Copied.
 * Call before requests arrive. Until set, the route answers 404. */
int drv_api_server_set_hw(struct drv_api_server *s, const char *json);
/* API keys: from now on every route but / and /health answers 401 unless the
 * request carries "Authorization: Bearer <one of keys>" (compared in constant
 * time). n = 0 opens the server again. Copied. Call before requests arrive. */
int drv_api_server_set_keys(struct drv_api_server *s, const char *const *keys, size_t n);
/* GET /api/drover/nodes answers what fn appends (a gateway's node table, JSON);
 * until set, 404. */
void drv_api_server_set_nodes(struct drv_api_server *s, drv_api_metrics_fn fn, void *ud);
/* Stops the server; requests in flight are cancelled (their streams end). */
void drv_api_server_free(struct drv_api_server *s);

#endif
