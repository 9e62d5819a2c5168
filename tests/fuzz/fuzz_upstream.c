/* libFuzzer target: a node's answer (NDJSON, SSE or one JSON object) fed in
 * random pieces to the upstream parser for all four wires; the listing and
 * embedding parsers on the same bytes; and request bodies rebuilt from any
 * request drover's own decoders accept. */
#include "api/api.h"
#include "base/base.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct watch {
    int events;
    int terminal;
    int stop_at;      /* the sink returns 1 on this event; -1 never */
    bool from_parser; /* events the parser made (not the caller's parser_fail) */
};

static int sink(void *ud, const struct drv_gen_event *ev)
{
    struct watch *w = ud;
    if (w->terminal) /* nothing after the terminal event */
        __builtin_trap();
    if (ev->model == NULL || strcmp(ev->model, "m") != 0)
        __builtin_trap();
    switch (ev->kind) {
    case DRV_EV_TOKEN:
    case DRV_EV_THINKING:
        if (ev->text == NULL || ev->len == 0)
            __builtin_trap();
        break;
    case DRV_EV_DONE:
        if (ev->stats.done_reason == NULL || ev->stats.prompt_tokens < 0 ||
            ev->stats.eval_tokens < 0)
            __builtin_trap();
        w->terminal = 1;
        break;
    case DRV_EV_ERROR:
        if (ev->message == NULL || ev->status < 400 || ev->status > 599)
            __builtin_trap();
        if (w->from_parser && (ev->status != 502 || strchr(ev->message, '\n')))
            __builtin_trap();
        w->terminal = 1;
        break;
    default:
        __builtin_trap();
    }
    return w->events++ == w->stop_at;
}

static void parse_answer(unsigned sel, const uint8_t *data, size_t size)
{
    enum drv_api_wire wire = (enum drv_api_wire)(sel & 3);
    bool stream = (sel & 4) == 0;
    struct watch w = {.stop_at = (sel & 8) ? (int)((sel >> 4) & 7) : -1, .from_parser = true};
    struct drv_api_upstream_parser p;
    if (drv_api_upstream_parser_init(&p, wire, stream, "m"))
        return;
    struct drv_err err;
    drv_err_init(&err);
    uint32_t x = sel * 2654435761u + (uint32_t)size;
    size_t at = 0;
    int rc = 0;
    while (rc == 0 && at < size) {
        x = x * 1103515245u + 12345u;
        size_t n = 1 + (x >> 16) % 64;
        if (n > size - at)
            n = size - at;
        rc = drv_api_upstream_feed(&p, (const char *)data + at, n, sink, &w, &err);
        at += n;
    }
    if (rc == 0)
        rc = drv_api_upstream_finish(&p, sink, &w, &err);
    if (rc < 0 && err.msg[0] == '\0') /* a failure always says why */
        __builtin_trap();
    if (rc == 0 && !w.terminal) /* finish always ends the request */
        __builtin_trap();
    if (rc == 1 && (w.stop_at < 0 || w.terminal))
        __builtin_trap();
    if (drv_api_upstream_finished(&p) != (w.terminal != 0))
        __builtin_trap();
    w.from_parser = false;
    drv_api_upstream_parser_fail(&p, 502, err.msg[0] ? err.msg : "failed", sink, &w);
    if (!w.terminal || !drv_api_upstream_finished(&p))
        __builtin_trap();
    drv_api_upstream_parser_release(&p);
}

static void parse_listings(const char *body, size_t len)
{
    struct drv_model_desc d[4];
    int n = drv_api_parse_ollama_tags(body, len, d, 4);
    for (int i = 0; i < n && i < 4; i++)
        if (memchr(d[i].name, '\0', sizeof(d[i].name)) == NULL)
            __builtin_trap();
    drv_api_parse_ollama_ps(body, len, d, 4);
    drv_api_parse_openai_models(body, len, d, 2);

    for (int openai = 0; openai < 2; openai++) {
        float *rows;
        size_t rn, dim;
        int32_t pt;
        struct drv_err err;
        drv_err_init(&err);
        int rc = drv_api_upstream_embed_parse(body, len, openai, &rows, &rn, &dim, &pt, &err);
        if (rc != 0 && (err.msg[0] == '\0' || rows != NULL))
            __builtin_trap();
        if (rc == 0 && rn > 0 && (dim == 0 || rows == NULL))
            __builtin_trap();
        if (rc == 0 && rn > 0)
            rows[rn * dim - 1] += 0; /* the whole allocation is there */
        free(rows);
    }
}

/* Any request drover accepts can be forwarded on a wire of its kind, and the
 * body is JSON. */
static void rebuild_request(unsigned sel, const char *body, size_t len)
{
    typedef int (*decoder)(const char *, size_t, struct drv_api_req *, struct drv_err *);
    static const decoder dec[] = {drv_api_ollama_decode_generate, drv_api_ollama_decode_chat,
                                  drv_api_openai_decode_completion, drv_api_openai_decode_chat};
    struct drv_api_req r;
    struct drv_err err;
    drv_err_init(&err);
    if (dec[sel & 3](body, len, &r, &err) == 0) {
        for (int wire = 0; wire < 4; wire++) {
            struct drv_buf out;
            drv_buf_init(&out, 1 << 22);
            int rc = drv_api_upstream_body(&r.gen, (enum drv_api_wire)wire, sel & 4, NULL, &out);
            bool chat = wire == DRV_WIRE_OLLAMA_CHAT || wire == DRV_WIRE_OPENAI_CHAT;
            bool fits = (r.gen.kind == DRV_GEN_CHAT) == chat;
            if (rc != (fits ? 0 : DRV_EINVAL))
                __builtin_trap();
            if (rc == 0) {
                json_error_t e;
                json_t *j = json_loadb(out.data, out.len, 0, &e);
                if (!json_is_object(j))
                    __builtin_trap();
                json_decref(j);
            }
            drv_buf_release(&out);
        }
    }
    drv_api_req_release(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        drv_log_set_level(DRV_LOG_NONE);
        quiet = 1;
    }
    if (size == 0)
        return 0;
    unsigned sel = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    parse_answer(sel, data + 1, len);
    if ((sel & 0xf0) == 0xf0)
        parse_listings(body, len);
    if ((sel & 0xf0) == 0xe0)
        rebuild_request(sel, body, len);
    return 0;
}
