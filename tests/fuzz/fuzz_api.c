/* libFuzzer target: the Ollama/OpenAI request decoders on arbitrary bodies, and
 * the event encoders on arbitrary token bytes (every frame must stay valid JSON). */
#define _GNU_SOURCE /* memmem */
#include "api/api.h"
#include "base/base.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*gen_decoder)(const char *, size_t, struct drv_api_req *, struct drv_err *);
typedef int (*embed_decoder)(const char *, size_t, struct drv_api_embed_req *, struct drv_err *);

static void check_request(const struct drv_api_req *r)
{
    const struct drv_gen_request *g = &r->gen;
    /* a decoded request is complete: every pointer the backend reads is set */
    if (g->model == NULL || g->model[0] == '\0' || g->prompt == NULL)
        __builtin_trap();
    if (g->n_messages > DRV_API_MAX_MESSAGES || g->n_stop > DRV_API_MAX_STOP)
        __builtin_trap();
    for (size_t i = 0; i < g->n_messages; i++)
        if (g->messages[i].role == NULL || strlen(g->messages[i].content) > (1u << 30))
            __builtin_trap();
    for (size_t i = 0; i < g->n_stop; i++)
        if (g->stop[i][0] == '\0')
            __builtin_trap();
    if (g->format == DRV_FORMAT_SCHEMA && g->format_schema == NULL)
        __builtin_trap();
}

static void decode(unsigned which, const char *body, size_t len)
{
    static const gen_decoder gens[] = {drv_api_ollama_decode_generate, drv_api_ollama_decode_chat,
                                       drv_api_openai_decode_completion,
                                       drv_api_openai_decode_chat};
    static const embed_decoder embeds[] = {drv_api_ollama_decode_embed,
                                           drv_api_ollama_decode_embeddings,
                                           drv_api_openai_decode_embeddings};
    struct drv_err err;
    drv_err_init(&err);
    if (which < 4) {
        struct drv_api_req r;
        int rc = gens[which](body, len, &r, &err);
        if (rc != 0 && err.msg[0] == '\0') /* a failure always says why */
            __builtin_trap();
        if (rc == 0)
            check_request(&r);
        drv_api_req_release(&r);
        return;
    }
    struct drv_api_embed_req r;
    int rc = embeds[which - 4](body, len, &r, &err);
    if (rc != 0 && err.msg[0] == '\0')
        __builtin_trap();
    if (rc == 0) {
        if (r.n_inputs > DRV_API_MAX_EMBED_INPUTS)
            __builtin_trap();
        for (size_t i = 0; i < r.n_inputs; i++)
            if (r.inputs[i] == NULL)
                __builtin_trap();
    }
    drv_api_embed_req_release(&r);
}

/* Every frame the encoder wrote must parse as JSON (or be the [DONE] marker). */
static void check_frames(const struct drv_buf *b, bool sse)
{
    const char *p = b->data, *end = b->data + b->len;
    const char *sep = sse ? "\n\n" : "\n";
    size_t seplen = strlen(sep);
    while (p && p < end) {
        if (sse) {
            if (strncmp(p, "data: ", 6) != 0)
                __builtin_trap();
            p += 6;
        }
        const char *stop = memmem(p, (size_t)(end - p), sep, seplen);
        if (stop == NULL)
            __builtin_trap();
        if (!(sse && stop - p == 6 && !memcmp(p, "[DONE]", 6))) {
            json_error_t e;
            json_t *j = json_loadb(p, (size_t)(stop - p), JSON_ALLOW_NUL, &e);
            if (j == NULL)
                __builtin_trap();
            json_decref(j);
        }
        p = stop + seplen;
    }
}

/* data: a wire selector byte, then pieces separated by 0xfe; a piece starting
 * with 0x01 is thinking, with 0x02 an error message. */
static void encode(unsigned sel, const uint8_t *data, size_t size)
{
    enum drv_api_wire wire = (enum drv_api_wire)(sel & 3);
    bool stream = sel & 4, usage = sel & 8;
    struct drv_api_enc enc;
    if (drv_api_enc_init(&enc, wire, stream, usage, (sel & 16) ? NULL : "m"))
        return;
    struct drv_buf out;
    drv_buf_init(&out, 1 << 20);
    bool terminal = false;
    size_t i = 0;
    while (i <= size && !terminal) {
        const uint8_t *piece = data + i;
        const uint8_t *next = memchr(piece, 0xfe, size - i);
        size_t n = next ? (size_t)(next - piece) : size - i;
        struct drv_gen_event ev = {
            .kind = DRV_EV_TOKEN, .text = (const char *)piece, .len = n, .model = "fz\xff"};
        char msg[64];
        if (n && piece[0] == 1) {
            ev.kind = DRV_EV_THINKING;
        } else if (n && piece[0] == 2) {
            size_t m = n - 1 < sizeof(msg) - 1 ? n - 1 : sizeof(msg) - 1;
            memcpy(msg, piece + 1, m);
            msg[m] = '\0';
            ev.kind = DRV_EV_ERROR;
            ev.status = n > 1 ? piece[1] * 3 : 0;
            ev.message = msg;
            terminal = true;
        }
        if (drv_api_enc_event(&enc, &ev, &out) != 0)
            __builtin_trap();
        i += n + 1;
    }
    if (!terminal) {
        struct drv_gen_event done = {.kind = DRV_EV_DONE, .model = "fz"};
        done.stats.done_reason = (sel & 32) ? "length" : "cancel";
        done.stats.eval_tokens = (int32_t)size;
        if (drv_api_enc_event(&enc, &done, &out) != 0)
            __builtin_trap();
    }
    bool body = !stream || drv_api_enc_status(&enc) != 200;
    bool sse = !body && (wire == DRV_WIRE_OPENAI_CHAT || wire == DRV_WIRE_OPENAI_COMPLETION);
    if (body) {
        json_error_t e;
        json_t *j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &e);
        if (j == NULL)
            __builtin_trap();
        json_decref(j);
    } else {
        check_frames(&out, sse);
    }
    drv_api_enc_release(&enc);
    drv_buf_release(&out);
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
    if (sel < 0xc0)
        decode(sel % 7, (const char *)data + 1, size - 1);
    else
        encode(sel, data + 1, size - 1);

    /* keep_alive strings straight from the bytes */
    char ka[32];
    size_t n = size - 1 < sizeof(ka) - 1 ? size - 1 : sizeof(ka) - 1;
    memcpy(ka, data + 1, n);
    ka[n] = '\0';
    int64_t ms;
    struct drv_err err;
    drv_err_init(&err);
    if (drv_api_parse_keep_alive(ka, &ms, &err) != 0 && err.msg[0] == '\0')
        __builtin_trap();
    return 0;
}
