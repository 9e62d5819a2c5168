/* sched: one thread per loaded model. Loads it, then runs continuous batching:
 * every decode step carries one token for each generating slot plus prompt
 * chunks of slots that are starting, so running streams keep flowing while a
 * long prompt is processed. Unloads the model when its keep_alive expires. */
#include "engine/engine_int.h"

#include <ggml-backend.h>
#include <hwloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Any JSON object; used for format "json" and, until schemas are compiled to
 * grammars, for format schemas too. */
static const char json_grammar[] =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" "
    "[0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9]{1,3})? ws\n"
    "ws     ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

/* Physical cores (hwloc): llama.cpp is fastest with one thread per core, not
 * per logical CPU. Falls back to the online CPUs when hwloc cannot tell. */
int drv_physical_cores(void)
{
    static int cached;
    if (cached)
        return cached;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = 0;
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) == 0) {
        if (hwloc_topology_load(topo) == 0)
            n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        hwloc_topology_destroy(topo);
    }
    cached = n > 0 ? n : online > 0 ? (int)online : 1;
    return cached;
}

/* ---- loading ---- */

/* The first GPU (discrete or integrated) llama.cpp sees, or NULL; its free
 * memory into *free_b. */
static ggml_backend_dev_t first_gpu(size_t *free_b)
{
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        enum ggml_backend_dev_type t = ggml_backend_dev_type(d);
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            size_t total;
            ggml_backend_dev_memory(d, free_b, &total);
            return d;
        }
    }
    return NULL;
}

/* Bytes free where the KV cache will live: the first GPU's free memory when
 * layers are offloaded to one, else the system's available RAM. */
static uint64_t kv_memory_free(const struct drv_engine_params *p)
{
    size_t free_b;
    if (p->n_gpu_layers != 0 && first_gpu(&free_b))
        return free_b;
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long kb = 0;
    char line[128];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kb * 1024;
}

/* fit's name for a KV cache type (the engine offers f16, q8_0 and q4_0) */
static enum drv_fit_kv fit_kv(enum ggml_type t)
{
    return t == GGML_TYPE_Q8_0   ? DRV_FIT_KV_Q8_0
           : t == GGML_TYPE_Q4_0 ? DRV_FIT_KV_Q4_0
                                 : DRV_FIT_KV_F16;
}

/* --parallel 0: as many slots (up to 4) as the memory left after loading the
 * weights holds KV caches for, keeping 1 GiB for everything else. */
static int auto_parallel(const struct drv_emodel *m, uint32_t n_ctx)
{
    uint64_t per_slot = drv_fit_kv_bytes_gguf(&m->info, fit_kv(m->engine->p.kv_type), n_ctx, 1);
    uint64_t avail = kv_memory_free(&m->engine->p);
    uint64_t reserve = 1ull << 30;
    int n = per_slot && avail > reserve ? (int)((avail - reserve) / per_slot) : 1;
    return n < 1 ? 1 : n > 4 ? 4 : n;
}

static const char *kv_type_name(enum ggml_type t)
{
    return t == GGML_TYPE_Q8_0 ? "q8_0" : t == GGML_TYPE_Q4_0 ? "q4_0" : "f16";
}

/* --gpu-layers -1: as many layers (of n_block + 1 with the output) as fit the
 * first GPU's free memory next to the KV cache and 512 MiB of compute buffers
 * and overhead. drover's estimate from the file's tensor bytes, not a dry-run
 * load. Writes why into why. */
static int auto_gpu_layers(const struct drv_emodel *m, uint64_t kv_bytes, char *why,
                           size_t why_size)
{
    const struct drv_gguf_info *in = &m->info;
    size_t free_b;
    ggml_backend_dev_t d = first_gpu(&free_b);
    if (d) {
        uint64_t per_layer = in->tensor_bytes / (in->hp.n_block + 1);
        uint64_t need_fixed = kv_bytes + (512ull << 20);
        int n = 0;
        if (free_b > need_fixed && per_layer)
            n = (int)((free_b - need_fixed) / per_layer);
        if (n > (int)in->hp.n_block + 1)
            n = (int)in->hp.n_block + 1;
        snprintf(why, why_size,
                 "%d of %u layers on %s: %.1f GiB free, %.1f MiB per layer, KV %.1f MiB "
                 "(drover's estimate)",
                 n, in->hp.n_block + 1, ggml_backend_dev_name(d), (double)free_b / (1 << 30),
                 (double)per_layer / (1 << 20), (double)kv_bytes / (1 << 20));
        return n;
    }
    snprintf(why, why_size, "no GPU: every layer on the CPU");
    return 0;
}

static int load_model(struct drv_emodel *m, struct drv_err *err)
{
    const struct drv_engine_params *p = &m->engine->p;
    const struct drv_gguf_info *in = &m->info;
    enum ggml_type kvt = p->kv_type;
    uint32_t train = in->hp.n_ctx_train;
    uint32_t n_ctx = p->n_ctx ? p->n_ctx : (train && train < 4096 ? train : 4096);
    int slots = p->n_parallel > 0 ? p->n_parallel : auto_parallel(m, n_ctx);
    /* each layer's own kv heads and head size; sliding-window layers hold
     * their window (swa_full is off below) */
    uint64_t kv_bytes = drv_fit_kv_bytes_gguf(in, fit_kv(kvt), n_ctx, (uint32_t)slots);
    char why[256];
    int ngl = p->n_gpu_layers;
    if (ngl < 0)
        ngl = auto_gpu_layers(m, kv_bytes, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%d layers on GPUs (--gpu-layers)", ngl);
    int nt = p->n_threads > 0 ? p->n_threads : drv_physical_cores();
    drv_log(DRV_LOG_INFO, "%s: threads %d (%s)", m->name, nt,
            p->n_threads > 0 ? "--threads" : "physical cores");
    drv_log(DRV_LOG_INFO, "%s: %d slots x %u tokens (%s)", m->name, slots, n_ctx,
            p->n_parallel > 0 ? "--parallel" : "KV caches that fit free memory, at most 4");
    drv_log(DRV_LOG_INFO, "%s: KV cache %s, %.1f MiB%s", m->name, kv_type_name(kvt),
            (double)kv_bytes / (1 << 20), kvt != GGML_TYPE_F16 ? ", flash attention on" : "");
    drv_log(DRV_LOG_INFO, "%s: %s", m->name, why);

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = ngl;
    m->lm = llama_model_load_from_file(m->path, mp);
    if (m->lm == NULL) {
        const char *lerr = drv_engine_last_llama_error();
        return drv_err_set(err, DRV_EFORMAT, "llama.cpp could not load %s: %s", m->path,
                           lerr[0] ? lerr : "no reason given");
    }
    m->vocab = llama_model_get_vocab(m->lm);
    m->n_slots = slots;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx * (uint32_t)m->n_slots;
    cp.n_seq_max = (uint32_t)m->n_slots;
    cp.n_batch = p->n_batch;
    cp.n_ubatch = p->n_batch;
    cp.n_threads = nt;
    cp.n_threads_batch = p->n_threads_batch > 0 ? p->n_threads_batch : nt;
    cp.kv_unified = false;
    /* sliding-window layers keep their window, not the whole context (as
     * llama-server does); a prefix they no longer hold is recomputed */
    cp.swa_full = false;
    cp.no_perf = true;
    cp.type_k = kvt;
    cp.type_v = kvt;
    if (kvt != GGML_TYPE_F16)
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED; /* a quantized V cache needs it */
    m->ctx = llama_init_from_model(m->lm, cp);
    if (m->ctx == NULL) {
        const char *lerr = drv_engine_last_llama_error();
        llama_model_free(m->lm);
        m->lm = NULL;
        return drv_err_set(err, DRV_ENOMEM,
                           "llama.cpp could not create a context of %u tokens for %s: %s", cp.n_ctx,
                           m->name, lerr[0] ? lerr : "no reason given");
    }
    m->n_ctx_slot = llama_n_ctx_seq(m->ctx);
    m->slots = calloc((size_t)m->n_slots, sizeof(*m->slots));
    for (int i = 0; m->slots && i < m->n_slots; i++) {
        m->slots[i].seq = i;
        drv_buf_init(&m->slots[i].pending, 1 << 20);
    }
    const char *t = llama_model_chat_template(m->lm, NULL);
    m->tmpl = t ? strdup(t) : NULL;
    if (m->slots == NULL || (t && m->tmpl == NULL)) {
        free(m->slots);
        llama_free(m->ctx);
        llama_model_free(m->lm);
        m->lm = NULL;
        m->ctx = NULL;
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    /* resident = weights + KV cache; on the GPU: the offloaded share of both */
    uint64_t kv = drv_fit_kv_bytes_gguf(in, fit_kv(kvt), m->n_ctx_slot, (uint32_t)m->n_slots);
    m->size_resident = llama_model_size(m->lm) + kv;
    m->size_vram = ngl <= 0 ? 0
                   : ngl >= (int)in->hp.n_block + 1
                       ? m->size_resident
                       : m->size_resident / (in->hp.n_block + 1) * (uint64_t)ngl;
    return 0;
}

static void unload_model(struct drv_emodel *m)
{
    for (int i = 0; m->slots && i < m->n_slots; i++) {
        if (m->slots[i].smpl)
            llama_sampler_free(m->slots[i].smpl);
        free(m->slots[i].prompt);
        free(m->slots[i].hist);
        drv_buf_release(&m->slots[i].pending);
    }
    free(m->slots);
    m->slots = NULL;
    free(m->tmpl);
    m->tmpl = NULL;
    if (m->ectx)
        llama_free(m->ectx);
    m->ectx = NULL;
    if (m->ctx)
        llama_free(m->ctx);
    if (m->lm)
        llama_model_free(m->lm);
    m->ctx = NULL;
    m->lm = NULL;
}

/* ---- one request into a slot ---- */

static bool think_capable(const struct drv_emodel *m)
{
    return m->tmpl && strstr(m->tmpl, "<think>") != NULL;
}

static int apply_template(const struct drv_emodel *m, const struct llama_chat_message *msgs,
                          size_t n, struct drv_buf *out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(msgs[i].content) + 64;
    int32_t cap = (int32_t)(total * 2 + 1024);
    for (int attempt = 0; attempt < 2; attempt++) {
        char *buf = malloc((size_t)cap);
        if (buf == NULL)
            return DRV_ENOMEM;
        int32_t r = llama_chat_apply_template(m->tmpl, msgs, n, true, buf, cap);
        if (r < 0) {
            free(buf);
            return DRV_EINVAL;
        }
        if (r <= cap) {
            int rc = drv_buf_append(out, buf, (size_t)r);
            free(buf);
            return rc;
        }
        free(buf);
        cap = r + 1;
    }
    return DRV_EINVAL;
}

/* Builds the text the model sees. Returns whether special tokens in it are real
 * (templated) or plain text (raw / no template). */
static int build_prompt(const struct drv_emodel *m, const struct drv_job *j, struct drv_buf *out,
                        bool *templated, char *why, size_t why_size)
{
    *templated = false;
    if (j->kind == DRV_GEN_COMPLETE && j->raw)
        return drv_buf_append(out, j->prompt, strlen(j->prompt));
    size_t n = j->kind == DRV_GEN_CHAT ? j->n_messages : 2;
    struct llama_chat_message *msgs = calloc(n ? n : 1, sizeof(*msgs));
    if (msgs == NULL)
        return DRV_ENOMEM;
    size_t k = 0;
    if (j->kind == DRV_GEN_CHAT) {
        for (size_t i = 0; i < j->n_messages; i++)
            msgs[k++] = (struct llama_chat_message){j->messages[i].role, j->messages[i].content};
    } else {
        if (j->system && j->system[0])
            msgs[k++] = (struct llama_chat_message){"system", j->system};
        msgs[k++] = (struct llama_chat_message){"user", j->prompt};
    }
    int rc = 0;
    if (m->tmpl) {
        rc = apply_template(m, msgs, k, out);
        if (rc == DRV_EINVAL)
            snprintf(why, why_size,
                     "the chat template of %s is not one llama.cpp's built-in template "
                     "support knows",
                     m->name);
        *templated = rc == 0;
        if (rc == 0 && j->think == 0 && think_capable(m)) {
            /* an empty reasoning block; a template that already opened one
             * (its generation prompt ends in <think>) only needs it closed */
            if (drv_think_opened(out->data, out->len))
                rc = drv_buf_append(out, "\n\n</think>\n\n", 12);
            else
                rc = drv_buf_append(out, "<think>\n\n</think>\n\n", 19);
        }
    } else {
        /* no chat template: the messages' text, one after the other, the way a
         * base model continues it */
        for (size_t i = 0; rc == 0 && i < k; i++) {
            if (i > 0)
                rc = drv_buf_append(out, "\n", 1);
            if (rc == 0)
                rc = drv_buf_append(out, msgs[i].content, strlen(msgs[i].content));
        }
    }
    free(msgs);
    return rc;
}

static struct llama_sampler *build_sampler(const struct drv_emodel *m, const struct drv_job *j)
{
    const struct drv_sampling *s = &j->sampling;
    float temp = isnan(s->temperature) ? 0.8f : s->temperature;
    int top_k = s->top_k < 0 ? 40 : s->top_k;
    float top_p = isnan(s->top_p) ? 0.9f : s->top_p;
    float min_p = isnan(s->min_p) ? 0.0f : s->min_p;
    float rep = isnan(s->repeat_penalty) ? 1.0f : s->repeat_penalty;
    int last_n = s->repeat_last_n < -1    ? 64
                 : s->repeat_last_n == -1 ? (int)m->n_ctx_slot
                                          : s->repeat_last_n;
    float pres = isnan(s->presence_penalty) ? 0.0f : s->presence_penalty;
    float freq = isnan(s->frequency_penalty) ? 0.0f : s->frequency_penalty;
    uint32_t seed = s->seed < 0 ? LLAMA_DEFAULT_SEED : (uint32_t)s->seed;

    struct llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = true;
    struct llama_sampler *c = llama_sampler_chain_init(cp);
    if (c == NULL)
        return NULL;
    if (rep != 1.0f || pres != 0.0f || freq != 0.0f)
        llama_sampler_chain_add(c, llama_sampler_init_penalties(llama_vocab_n_tokens(m->vocab),
                                                                last_n, rep, freq, pres));
    if (j->format != DRV_FORMAT_TEXT) {
        struct llama_sampler *g =
            llama_sampler_init_grammar(m->vocab, j->grammar ? j->grammar : json_grammar, "root");
        if (g == NULL) {
            llama_sampler_free(c);
            return NULL;
        }
        llama_sampler_chain_add(c, g);
    }
    if (temp <= 0.0f) {
        llama_sampler_chain_add(c, llama_sampler_init_greedy());
        return c;
    }
    if (top_k > 0)
        llama_sampler_chain_add(c, llama_sampler_init_top_k(top_k));
    if (top_p < 1.0f)
        llama_sampler_chain_add(c, llama_sampler_init_top_p(top_p, 1));
    if (min_p > 0.0f)
        llama_sampler_chain_add(c, llama_sampler_init_min_p(min_p, 1));
    llama_sampler_chain_add(c, llama_sampler_init_temp(temp));
    llama_sampler_chain_add(c, llama_sampler_init_dist(seed));
    return c;
}

static int common_prefix(const struct drv_slot *s, const llama_token *toks, int n)
{
    int k = 0;
    while (k < n && k < s->n_hist && s->hist[k] == toks[k])
        k++;
    return k;
}

/* Records that tok was decoded into the slot's sequence. */
static void hist_push(struct drv_slot *s, llama_token tok)
{
    if (s->n_hist == s->cap_hist) {
        int cap = s->cap_hist ? s->cap_hist * 2 : 256;
        llama_token *h = realloc(s->hist, (size_t)cap * sizeof(*h));
        if (h == NULL) {
            s->n_hist = -1; /* unknown: never reused */
            return;
        }
        s->hist = h;
        s->cap_hist = cap;
    }
    if (s->n_hist >= 0)
        s->hist[s->n_hist++] = tok;
}

/* Takes j into slot s (or into an idle slot whose cache fits the prompt better).
 * On failure the job has been failed and freed. */
static int slot_start(struct drv_emodel *m, struct drv_slot *s, struct drv_job *j)
{
    struct drv_buf text;
    drv_buf_init(&text, 64u << 20);
    bool templated;
    char why[256] = "";
    int rc = build_prompt(m, j, &text, &templated, why, sizeof(why));
    if (rc) {
        drv_buf_release(&text);
        drv_job_fail(j, m->name, rc == DRV_EINVAL ? 400 : 500, "%s",
                     why[0] ? why : "cannot build the prompt");
        return rc;
    }
    const char *t = text.data ? text.data : "";
    int32_t len = (int32_t)text.len;
    int32_t n = -llama_tokenize(m->vocab, t, len, NULL, 0, true, templated);
    if (n <= 0)
        n = 1;
    s->prompt = malloc((size_t)n * sizeof(llama_token));
    int32_t got = s->prompt ? llama_tokenize(m->vocab, t, len, s->prompt, n, true, templated) : -1;
    /* the template opened the reasoning block itself: what the model writes
     * first is reasoning, up to its </think> */
    bool opened = templated && drv_think_opened(t, (size_t)len);
    drv_buf_release(&text);
    if (got < 0) {
        free(s->prompt);
        s->prompt = NULL;
        drv_job_fail(j, m->name, 500, "cannot tokenize the prompt");
        return DRV_EINVAL;
    }
    if (got == 0) {
        /* an empty prompt without BOS: start from BOS anyway */
        s->prompt[0] = llama_vocab_bos(m->vocab);
        got = 1;
    }
    if ((uint32_t)got >= m->n_ctx_slot && j->truncate) {
        /* keep the first token (BOS) and the end of the prompt, leaving room to
         * answer: a quarter of the context, or num_predict when smaller */
        int room = (int)m->n_ctx_slot / 4;
        if (j->num_predict > 0 && j->num_predict < room)
            room = j->num_predict;
        int keep = (int)m->n_ctx_slot - (room > 0 ? room : 1);
        memmove(s->prompt + 1, s->prompt + got - (keep - 1),
                (size_t)(keep - 1) * sizeof(llama_token));
        drv_log(DRV_LOG_INFO, "%s: prompt of %d tokens truncated to its last %d", m->name, got,
                keep);
        atomic_fetch_add(&m->truncated, 1);
        got = keep;
    }
    if ((uint32_t)got >= m->n_ctx_slot) {
        free(s->prompt);
        s->prompt = NULL;
        drv_job_fail(j, m->name, 400,
                     "the prompt is %d tokens but the context of %s holds %u per request", got,
                     m->name, m->n_ctx_slot);
        return DRV_EINVAL;
    }
    /* reuse the KV cache of the idle slot whose last request shares the longest
     * prefix with this prompt (a chat's earlier turns, a shared system prompt) */
    struct drv_slot *best = s;
    int best_n = common_prefix(s, s->prompt, got);
    for (int i = 0; i < m->n_slots; i++) {
        struct drv_slot *o = &m->slots[i];
        if (o == s || o->job || o->state != DRV_SLOT_IDLE)
            continue;
        int k = common_prefix(o, s->prompt, got);
        if (k > best_n) {
            best = o;
            best_n = k;
        }
    }
    if (best != s) {
        best->prompt = s->prompt;
        s->prompt = NULL;
        s = best;
    }
    if (best_n >= got)
        best_n = got - 1; /* the last prompt token is decoded again for its logits */
    llama_memory_t mem = llama_get_memory(m->ctx);
    if (best_n <= 0 || !llama_memory_seq_rm(mem, s->seq, best_n, -1)) {
        llama_memory_seq_rm(mem, s->seq, -1, -1);
        best_n = 0;
    }
    s->n_hist = best_n;
    s->smpl = build_sampler(m, j);
    if (s->smpl == NULL) {
        free(s->prompt);
        s->prompt = NULL;
        drv_job_fail(j, m->name, 500, "cannot build the sampler");
        return DRV_ENOMEM;
    }
    s->n_prompt = got;
    s->n_cached = best_n;
    s->n_fed = best_n;
    s->n_past = best_n;
    s->n_gen = 0;
    s->logits_idx = -1;
    s->job = j;
    s->model_name = m->name;
    s->state = DRV_SLOT_PROMPT;
    bool thinks = think_capable(m) && j->think != 0;
    s->think = (struct drv_think_state){.enabled = thinks, .in_think = thinks && opened};
    drv_buf_reset(&s->pending);
    s->t_start = drv_now_ns();
    s->t_prompt_done = s->t_last = 0;
    return 0;
}

/* ---- text out ---- */

static int emit_text(void *ud, enum drv_ev_kind kind, const char *p, size_t n)
{
    struct drv_slot *s = ud;
    struct drv_gen_event ev = {.kind = kind, .text = p, .len = n, .model = s->model_name};
    return s->job->sink(s->job->sink_ud, &ev);
}

/* Emits what can be emitted of s->pending (see drv_text_flush). Returns nonzero
 * when the client cancelled. */
static int flush_pending(struct drv_emodel *m, struct drv_slot *s, bool final, bool *stopped)
{
    int cancel = 0;
    size_t used = drv_text_flush(&s->think, s->pending.data, s->pending.len, final,
                                 (const char *const *)s->job->stop, s->job->n_stop, stopped,
                                 emit_text, s, &cancel);
    char *p = s->pending.data;
    memmove(p, p + used, s->pending.len - used);
    s->pending.len -= used;
    if (p)
        p[s->pending.len] = '\0';
    return cancel;
}

/* Frees what a request held in the slot (not its KV cache). */
static void slot_release(struct drv_slot *s)
{
    llama_sampler_free(s->smpl);
    s->smpl = NULL;
    free(s->prompt);
    s->prompt = NULL;
    s->job = NULL;
    s->state = DRV_SLOT_IDLE;
}

/* Ends the slot's request with its terminal event and frees the slot. */
static void slot_finish(struct drv_emodel *m, struct drv_slot *s, const char *reason)
{
    struct drv_job *j = s->job;
    uint64_t now = drv_now_ns();
    if (strcmp(reason, "cancel") != 0) {
        bool stopped;
        flush_pending(m, s, true, &stopped);
    }
    struct drv_gen_event ev = {.kind = DRV_EV_DONE, .model = m->name};
    ev.stats.total_ns = now - j->t_arrival;
    ev.stats.load_ns = j->load_ns;
    uint64_t pdone = s->t_prompt_done ? s->t_prompt_done : now;
    ev.stats.prompt_ns = pdone - s->t_start;
    ev.stats.eval_ns = s->t_last > pdone ? s->t_last - pdone : 0;
    ev.stats.prompt_tokens = s->n_fed - s->n_cached;
    ev.stats.eval_tokens = s->n_gen;
    ev.stats.done_reason = reason;
    atomic_fetch_add(&m->prompt_tokens, (uint64_t)(s->n_fed - s->n_cached));
    atomic_fetch_add(&m->generated_tokens, (uint64_t)s->n_gen);

    slot_release(s); /* the sequence's KV cache stays: the next request may share its prefix */

    /* the slot is free before the client hears "done", so a client that reads
     * /metrics or sends its next request right away sees it free */
    struct drv_engine *e = m->engine;
    pthread_mutex_lock(&e->mu);
    m->n_active--;
    m->keep_alive_ms = j->keep_alive_ms == INT64_MIN ? e->p.keep_alive_ms : j->keep_alive_ms;
    m->last_used_ns = now;
    pthread_mutex_unlock(&e->mu);
    j->sink(j->sink_ud, &ev);
    drv_job_free(j);
}

/* ---- the loop ---- */

static bool is_cancelled(const struct drv_job *j)
{
    return j->cancel && atomic_load(j->cancel);
}

/* With e->mu held: moves queued jobs into free slots. Returns the jobs that
 * were taken (their slot is reserved: state PROMPT, job set) so that the
 * caller can finish starting them without the lock. */
static void take_queued(struct drv_emodel *m)
{
    /* embedding jobs need no slot: take them all, in order */
    struct drv_job **pp = &m->q_head, *last = NULL;
    struct drv_job **etail = &m->eq_head;
    while (*etail)
        etail = &(*etail)->next;
    while (*pp) {
        struct drv_job *j = *pp;
        if (is_cancelled(j)) {
            /* the client left while waiting: end it now, not when a slot frees */
            *pp = j->next;
            j->next = m->cq_head;
            m->cq_head = j;
            m->n_queued--;
            continue;
        }
        if (j->embed_cb == NULL) {
            last = j;
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        j->next = NULL;
        *etail = j;
        etail = &j->next;
        m->n_queued--;
        m->n_active++;
    }
    m->q_tail = last;
    for (int i = 0; i < m->n_slots && m->q_head; i++) {
        struct drv_slot *s = &m->slots[i];
        if (s->state != DRV_SLOT_IDLE || s->job)
            continue;
        struct drv_job *j = m->q_head;
        m->q_head = j->next;
        if (m->q_head == NULL)
            m->q_tail = NULL;
        j->next = NULL;
        m->n_queued--;
        m->n_active++;
        s->job = j; /* reserved; slot_start runs without the lock */
    }
}

static void set_expiry(struct drv_emodel *m)
{
    if (m->keep_alive_ms < 0)
        m->expires_at_ms = 0;
    else
        m->expires_at_ms = drv_wall_ms() + m->keep_alive_ms;
}

/* Waits (e->mu held) until there is work, or returns false when the model should
 * unload. */
static bool wait_for_work(struct drv_emodel *m)
{
    struct drv_engine *e = m->engine;
    bool waited = false;
    for (;;) {
        if (m->stop) {
            if (e->closing || m->q_head == NULL)
                return false;
            m->stop = false; /* asked to unload, but a request came: keep serving */
        }
        if (waited && m->q_head && m->n_slots > 1) {
            /* woken from idle: clients that send together (a fan-out, a bench)
             * arrive within a millisecond or two; gathering them lets their
             * prompts share the first decode step instead of each waiting for
             * the step before it */
            pthread_mutex_unlock(&e->mu);
            struct timespec gather = {.tv_sec = 0, .tv_nsec = 2 * 1000000};
            nanosleep(&gather, NULL);
            pthread_mutex_lock(&e->mu);
            waited = false;
        }
        take_queued(m);
        if (m->n_active > 0 || m->cq_head)
            return true;
        set_expiry(m);
        if (m->keep_alive_ms == 0)
            return false;
        /* more models loaded than --max-loaded (one loaded while all were busy):
         * now that this one idles, unload the least recently used idle one */
        drv_engine_evict_over_limit(e);
        if (m->stop)
            return false;
        waited = true;
        if (m->expires_at_ms == 0) {
            pthread_cond_wait(&m->cond, &e->mu);
            continue;
        }
        struct timespec ts = {.tv_sec = m->expires_at_ms / 1000,
                              .tv_nsec = (m->expires_at_ms % 1000) * 1000000};
        int64_t before = m->expires_at_ms;
        pthread_cond_timedwait(&m->cond, &e->mu, &ts);
        if (m->q_head == NULL && !m->stop && drv_wall_ms() >= before)
            return false; /* idle past keep_alive */
    }
}

static void fail_all_active(struct drv_emodel *m, int status, const char *msg)
{
    for (int i = 0; i < m->n_slots; i++) {
        struct drv_slot *s = &m->slots[i];
        if (s->job == NULL || s->state == DRV_SLOT_IDLE)
            continue;
        struct drv_job *j = s->job;
        llama_memory_seq_rm(llama_get_memory(m->ctx), s->seq, -1, -1);
        s->n_hist = 0;
        slot_release(s);
        pthread_mutex_lock(&m->engine->mu);
        m->n_active--;
        pthread_mutex_unlock(&m->engine->mu);
        drv_job_fail(j, m->name, status, "%s", msg);
    }
}

/* One decode step over all active slots. */
static void step(struct drv_emodel *m, struct llama_batch *batch)
{
    uint32_t budget = m->engine->p.n_batch;
    batch->n_tokens = 0;
    /* generating slots first: one token each, so streams never wait on prompts */
    for (int i = 0; i < m->n_slots; i++) {
        struct drv_slot *s = &m->slots[i];
        s->logits_idx = -1;
        if (s->state != DRV_SLOT_GEN)
            continue;
        int k = batch->n_tokens++;
        batch->token[k] = s->last;
        batch->pos[k] = s->n_past++;
        hist_push(s, s->last);
        batch->n_seq_id[k] = 1;
        batch->seq_id[k][0] = s->seq;
        batch->logits[k] = 1;
        s->logits_idx = k;
        budget--;
    }
    for (int i = 0; i < m->n_slots && budget > 0; i++) {
        struct drv_slot *s = &m->slots[i];
        if (s->state != DRV_SLOT_PROMPT)
            continue;
        int chunk = s->n_prompt - s->n_fed;
        if ((uint32_t)chunk > budget)
            chunk = (int)budget;
        for (int t = 0; t < chunk; t++) {
            int k = batch->n_tokens++;
            batch->token[k] = s->prompt[s->n_fed];
            hist_push(s, s->prompt[s->n_fed++]);
            batch->pos[k] = s->n_past++;
            batch->n_seq_id[k] = 1;
            batch->seq_id[k][0] = s->seq;
            batch->logits[k] = 0;
        }
        budget -= (uint32_t)chunk;
        if (s->n_fed == s->n_prompt) {
            batch->logits[batch->n_tokens - 1] = 1;
            s->logits_idx = batch->n_tokens - 1;
        }
    }
    if (batch->n_tokens == 0)
        return;
    int rc = llama_decode(m->ctx, *batch);
    if (rc != 0) {
        drv_log(DRV_LOG_ERROR, "%s: llama_decode failed (%d)", m->name, rc);
        fail_all_active(m, 500, "llama.cpp failed to decode");
        return;
    }
    uint64_t now = drv_now_ns();
    for (int i = 0; i < m->n_slots; i++) {
        struct drv_slot *s = &m->slots[i];
        if (s->logits_idx < 0 || s->job == NULL)
            continue;
        if (s->state == DRV_SLOT_PROMPT) {
            s->state = DRV_SLOT_GEN;
            s->t_prompt_done = now;
        }
        llama_token tok = llama_sampler_sample(s->smpl, m->ctx, s->logits_idx);
        s->t_last = now;
        if (llama_vocab_is_eog(m->vocab, tok)) {
            slot_finish(m, s, "stop");
            continue;
        }
        s->n_gen++;
        char piece[256];
        int n = llama_token_to_piece(m->vocab, tok, piece, sizeof(piece), 0, false);
        if (n > 0 && drv_buf_append(&s->pending, piece, (size_t)n) != 0) {
            slot_finish(m, s, "length");
            continue;
        }
        bool stopped;
        if (flush_pending(m, s, false, &stopped) != 0 || is_cancelled(s->job)) {
            slot_finish(m, s, "cancel");
            continue;
        }
        if (stopped) {
            slot_finish(m, s, "stop");
            continue;
        }
        if ((s->job->num_predict >= 0 && s->n_gen >= s->job->num_predict) ||
            (uint32_t)s->n_past + 1 >= m->n_ctx_slot) {
            slot_finish(m, s, "length");
            continue;
        }
        s->last = tok;
    }
}

/* Ends jobs cancelled while queued (taken out by take_queued). */
static void end_cancelled(struct drv_emodel *m, struct drv_job *q)
{
    while (q) {
        struct drv_job *next = q->next;
        if (q->embed_cb) {
            drv_job_fail(q, m->name, 499, "cancelled");
        } else {
            struct drv_gen_event ev = {.kind = DRV_EV_DONE, .model = m->name};
            ev.stats.total_ns = drv_now_ns() - q->t_arrival;
            ev.stats.done_reason = "cancel";
            q->sink(q->sink_ud, &ev);
            drv_job_free(q);
        }
        q = next;
    }
}

/* ---- embeddings ---- */

static int make_embed_ctx(struct drv_emodel *m)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = m->n_ctx_slot;
    cp.n_batch = m->n_ctx_slot;
    cp.n_ubatch = m->n_ctx_slot; /* non-causal models need a whole input in one ubatch */
    cp.n_seq_max = 1;
    cp.embeddings = true;
    cp.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;
    cp.no_perf = true;
    int nt = m->engine->p.n_threads > 0 ? m->engine->p.n_threads : drv_physical_cores();
    cp.n_threads = cp.n_threads_batch = nt;
    m->ectx = llama_init_from_model(m->lm, cp);
    if (m->ectx && llama_pooling_type(m->ectx) == LLAMA_POOLING_TYPE_NONE) {
        /* a generative model: mean-pool its token embeddings */
        llama_free(m->ectx);
        cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
        m->ectx = llama_init_from_model(m->lm, cp);
    }
    return m->ectx ? 0 : -1;
}

/* Embeds one text into out[dim]; returns tokens used, or -status on failure. */
static int embed_one(struct drv_emodel *m, const char *text, bool truncate, float *out, int dim,
                     char *why, size_t why_size)
{
    int32_t len = (int32_t)strlen(text);
    int32_t n = -llama_tokenize(m->vocab, text, len, NULL, 0, true, false);
    if (n <= 0)
        n = 1;
    llama_token *toks = malloc((size_t)n * sizeof(*toks));
    if (toks == NULL)
        return -500;
    int32_t got = llama_tokenize(m->vocab, text, len, toks, n, true, false);
    if (got <= 0) {
        toks[0] = llama_vocab_bos(m->vocab);
        got = 1;
    }
    if ((uint32_t)got > m->n_ctx_slot) {
        if (!truncate) {
            snprintf(why, why_size, "input is %d tokens but the context of %s holds %u", got,
                     m->name, m->n_ctx_slot);
            free(toks);
            return -400;
        }
        got = (int32_t)m->n_ctx_slot;
    }
    llama_memory_clear(llama_get_memory(m->ectx), true);
    struct llama_batch b = llama_batch_init(got, 0, 1);
    for (int i = 0; i < got; i++) {
        b.token[i] = toks[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = got;
    free(toks);
    int rc = llama_model_has_encoder(m->lm) && !llama_model_has_decoder(m->lm)
                 ? llama_encode(m->ectx, b)
                 : llama_decode(m->ectx, b);
    llama_batch_free(b);
    const float *e = rc == 0 ? llama_get_embeddings_seq(m->ectx, 0) : NULL;
    if (e == NULL) {
        snprintf(why, why_size, "llama.cpp could not embed the input");
        return -500;
    }
    double norm = 0;
    for (int i = 0; i < dim; i++)
        norm += (double)e[i] * e[i];
    norm = norm > 0 ? sqrt(norm) : 1;
    for (int i = 0; i < dim; i++)
        out[i] = (float)(e[i] / norm);
    return got;
}

static void run_embed(struct drv_emodel *m, struct drv_job *j)
{
    char why[256] = "llama.cpp could not create an embeddings context";
    int status = 200, tokens = 0;
    int dim = llama_model_n_embd_out(m->lm);
    float *data = NULL;
    if (m->ectx == NULL && make_embed_ctx(m) != 0) {
        status = 500;
    } else if (j->n_inputs) {
        data = malloc(j->n_inputs * (size_t)dim * sizeof(float));
        if (data == NULL) {
            status = 500;
            snprintf(why, sizeof(why), "out of memory");
        }
        for (size_t i = 0; data && i < j->n_inputs; i++) {
            int r = embed_one(m, j->inputs[i], j->truncate, data + i * (size_t)dim, dim, why,
                              sizeof(why));
            if (r < 0) {
                status = -r;
                break;
            }
            tokens += r;
        }
    }
    struct drv_engine *e = m->engine;
    pthread_mutex_lock(&e->mu);
    m->n_active--;
    m->keep_alive_ms = j->keep_alive_ms == INT64_MIN ? e->p.keep_alive_ms : j->keep_alive_ms;
    m->last_used_ns = drv_now_ns();
    pthread_mutex_unlock(&e->mu);
    atomic_fetch_add(&m->prompt_tokens, (uint64_t)tokens);
    struct drv_embed_result r = {.model = m->name, .status = status};
    if (status == 200) {
        r.data = data;
        r.n = j->n_inputs;
        r.dim = (size_t)dim;
        r.prompt_tokens = tokens;
        r.total_ns = drv_now_ns() - j->t_arrival;
        r.load_ns = j->load_ns;
    } else {
        r.message = why;
    }
    j->embed_cb(j->embed_ud, &r);
    free(data);
    drv_job_free(j);
}

/* Loads the model; on failure every queued request gets the reason. Returns
 * false when it failed (e->mu not held either way). */
static bool sched_load(struct drv_emodel *m)
{
    struct drv_engine *e = m->engine;
    uint64_t t0 = drv_now_ns();
    struct drv_err err;
    drv_err_init(&err);
    drv_log(DRV_LOG_INFO, "loading %s from %s", m->name, m->path);
    int rc = load_model(m, &err);
    uint64_t t1 = drv_now_ns();
    if (rc == 0)
        atomic_fetch_add(&m->loads, 1);
    pthread_mutex_lock(&e->mu);
    if (rc != 0) {
        struct drv_job *q = m->q_head;
        m->q_head = m->q_tail = NULL;
        m->n_queued = 0;
        m->state = DRV_MODEL_UNLOADED;
        m->thread_running = false;
        pthread_mutex_unlock(&e->mu);
        drv_log(DRV_LOG_ERROR, "%s", err.msg);
        while (q) {
            struct drv_job *next = q->next;
            drv_job_fail(q, m->name, 500, "failed to load model \"%s\": %s", m->name, err.msg);
            q = next;
        }
        return false;
    }
    m->state = DRV_MODEL_READY;
    for (struct drv_job *j = m->q_head; j; j = j->next)
        j->load_ns = t1 - (j->t_arrival > t0 ? j->t_arrival : t0);
    pthread_mutex_unlock(&e->mu);
    drv_log(DRV_LOG_INFO, "loaded %s in %.2f s: %d slots x %u tokens", m->name,
            (double)(t1 - t0) / 1e9, m->n_slots, m->n_ctx_slot);
    return true;
}

/* Serves until the model should unload (keep_alive, eviction, shutdown). */
static void sched_serve(struct drv_emodel *m)
{
    struct drv_engine *e = m->engine;
    struct llama_batch batch = llama_batch_init((int32_t)e->p.n_batch + m->n_slots, 0, 1);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (!wait_for_work(m))
            break;
        struct drv_job *eq = m->eq_head, *cq = m->cq_head;
        m->eq_head = m->cq_head = NULL;
        pthread_mutex_unlock(&e->mu);
        end_cancelled(m, cq);
        while (eq) {
            struct drv_job *next = eq->next;
            run_embed(m, eq);
            eq = next;
        }
        /* start reserved slots, outside the lock */
        for (int i = 0; i < m->n_slots; i++) {
            struct drv_slot *s = &m->slots[i];
            if (s->job && s->state == DRV_SLOT_IDLE) {
                struct drv_job *j = s->job;
                s->job = NULL;
                if (slot_start(m, s, j) != 0) {
                    pthread_mutex_lock(&e->mu);
                    m->n_active--;
                    pthread_mutex_unlock(&e->mu);
                }
            }
        }
        for (int i = 0; i < m->n_slots; i++) {
            struct drv_slot *s = &m->slots[i];
            if (s->job && s->state != DRV_SLOT_IDLE && is_cancelled(s->job))
                slot_finish(m, s, "cancel");
        }
        step(m, &batch);
        pthread_mutex_lock(&e->mu);
    }
    /* e->mu held. Only a shutdown stops a model with requests running or
     * queued; they end now. Requests queued otherwise stay for the reload. */
    struct drv_job *cq = m->cq_head, *q = NULL;
    m->cq_head = NULL;
    if (e->closing) {
        q = m->q_head;
        m->q_head = m->q_tail = NULL;
        m->n_queued = 0;
    }
    pthread_mutex_unlock(&e->mu);
    end_cancelled(m, cq);
    for (int i = 0; i < m->n_slots; i++)
        if (m->slots[i].job && m->slots[i].state != DRV_SLOT_IDLE)
            slot_finish(m, &m->slots[i], "cancel");
    while (q) {
        struct drv_job *next = q->next;
        drv_job_fail(q, m->name, 503, "server is shutting down");
        q = next;
    }
    llama_batch_free(batch);
}

void *drv_sched_main(void *arg)
{
    struct drv_emodel *m = arg;
    struct drv_engine *e = m->engine;
    for (;;) {
        if (!sched_load(m))
            return NULL;
        sched_serve(m);
        unload_model(m);
        drv_log(DRV_LOG_INFO, "unloaded %s", m->name);
        pthread_mutex_lock(&e->mu);
        m->size_resident = m->size_vram = 0;
        m->expires_at_ms = 0;
        if (m->q_head && !e->closing) {
            /* requests came while it was unloading: load it again for them */
            m->stop = false;
            m->state = DRV_MODEL_LOADING;
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        m->state = DRV_MODEL_UNLOADED;
        m->thread_running = false;
        pthread_mutex_unlock(&e->mu);
        return NULL;
    }
}
