/* fit — what llama.cpp will allocate for a model on a machine, and how fast it
 * can generate there, without loading anything. The formulas are in model.h
 * next to drv_fit_plan; the facts behind them in /work/shared/REFERENCE.md §4-5.
 *
 * Weights come from the tensor table (a GGUF's, or synth's plan for a catalog
 * shape, which is the type mix llama.cpp's quantizer gives), so the weight bytes
 * are exact; KV is exact up to llama.cpp's padding; the compute buffer is an
 * estimate (llama.cpp sizes it by reserving a worst-case graph). */
#include "model/model.h"
#include "probe/probe.h"

#include <ggml.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The efficiency ranges are DRV_FIT_EFF_* in model.h. */
#define EFF_LO     DRV_FIT_EFF_GPU_LO
#define EFF_HI     DRV_FIT_EFF_GPU_HI
#define EFF_CPU_LO DRV_FIT_EFF_CPU_LO
#define EFF_CPU_HI DRV_FIT_EFF_CPU_HI

static const struct {
    const char *name;
    enum ggml_type type;
} kv_types[] = {
    [DRV_FIT_KV_F16] = {"f16", GGML_TYPE_F16},
    [DRV_FIT_KV_Q8_0] = {"q8_0", GGML_TYPE_Q8_0},
    [DRV_FIT_KV_Q4_0] = {"q4_0", GGML_TYPE_Q4_0},
};
#define N_KV_TYPES ((int)(sizeof(kv_types) / sizeof(kv_types[0])))

bool drv_fit_kv_parse(const char *s, enum drv_fit_kv *out)
{
    for (int i = 0; i < N_KV_TYPES; i++)
        if (strcasecmp(s, kv_types[i].name) == 0) {
            *out = (enum drv_fit_kv)i;
            return true;
        }
    return false;
}

const char *drv_fit_verdict_name(enum drv_fit_verdict v)
{
    switch (v) {
    case DRV_FIT_GPU:
        return "gpu";
    case DRV_FIT_PARTIAL:
        return "partial";
    case DRV_FIT_CPU:
        return "cpu";
    default:
        return "none";
    }
}

const char *drv_fit_kv_name(enum drv_fit_kv kv)
{
    return (int)kv >= 0 && (int)kv < N_KV_TYPES ? kv_types[kv].name : "?";
}

struct drv_fit_params drv_fit_default_params(void)
{
    struct drv_fit_params p;
    memset(&p, 0, sizeof(p));
    p.n_ctx = 4096;
    p.n_parallel = 1;
    p.n_ubatch = 512;
    p.kv = DRV_FIT_KV_F16;
    p.n_gpu_layers = -1;
    return p;
}

/* ---- the model ---- */

int drv_fit_model_from_tensors(const struct drv_tensor_size *t, int n, struct drv_fit_model *m,
                               struct drv_err *err)
{
    if (m->n_layer == 0 || m->n_layer > DRV_FIT_MAX_LAYERS)
        return drv_err_set(err, DRV_EINVAL, "block count %u is not in 1..%d", m->n_layer,
                           DRV_FIT_MAX_LAYERS);
    m->total_bytes = m->embd_bytes = m->output_bytes = m->expert_bytes = m->tied_bytes = 0;
    memset(m->layer_bytes, 0, sizeof(m->layer_bytes));
    bool has_output = false;
    for (int i = 0; i < n; i++) {
        m->total_bytes += t[i].bytes;
        if (strstr(t[i].name, "_exps"))
            m->expert_bytes += t[i].bytes;
        if (t[i].layer >= 0) {
            if ((uint32_t)t[i].layer >= m->n_layer)
                return drv_err_set(err, DRV_EINVAL, "tensor '%s' is past the last block (%u)",
                                   t[i].name, m->n_layer - 1);
            m->layer_bytes[t[i].layer] += t[i].bytes;
        } else if (strcmp(t[i].name, "token_embd.weight") == 0) {
            m->embd_bytes += t[i].bytes;
        } else {
            if (strcmp(t[i].name, "output.weight") == 0)
                has_output = true;
            m->output_bytes += t[i].bytes;
        }
    }
    m->tied = !has_output;
    m->tied_bytes = m->tied ? m->embd_bytes : 0;
    return 0;
}

static bool looks_like_path(const char *s)
{
    size_t n = strlen(s);
    struct stat st;
    return strchr(s, '/') || (n > 5 && strcasecmp(s + n - 5, ".gguf") == 0) ||
           (stat(s, &st) == 0 && S_ISREG(st.st_mode));
}

void drv_fit_model_set_hparams(struct drv_fit_model *m, const char *arch,
                               const struct drv_hparams *hp)
{
    drv_strlcpy(m->arch, arch, sizeof(m->arch));
    m->n_layer = hp->n_block;
    m->n_embd = hp->n_embd;
    m->n_head = hp->n_head;
    m->n_head_kv = hp->n_head_kv;
    m->head_dim_k = hp->head_dim_k;
    m->head_dim_v = hp->head_dim_v;
    m->n_ff = hp->n_ff;
    m->n_vocab = hp->n_vocab;
    m->n_ctx_train = hp->n_ctx_train;
    m->n_swa = hp->n_swa;
    m->n_expert = hp->n_expert;
    m->n_expert_used = hp->n_expert_used;
    m->head_dim_k_swa = hp->head_dim_k_swa;
    m->head_dim_v_swa = hp->head_dim_v_swa;
    /* the reader keeps per-layer values for up to DRV_GGUF_MAX_LAYERS blocks,
     * which drv_fit_model_from_tensors requires anyway */
    m->per_layer_kv = hp->n_block > 0 && hp->n_block <= DRV_FIT_MAX_LAYERS;
    memcpy(m->layer_n_head_kv, hp->layer_n_head_kv, sizeof(m->layer_n_head_kv));
    m->has_swa_layers = hp->has_swa_layers;
    memcpy(m->swa_layer, hp->layer_swa, sizeof(m->swa_layer));
}

/* m's name and hyperparameters from an inspected file (the bytes are the
 * tensor table's) */
static void model_from_info(const struct drv_gguf_info *in, struct drv_fit_model *m)
{
    drv_fit_model_set_hparams(m, in->arch, &in->hp);
    drv_strlcpy(m->quant, in->quant, sizeof(m->quant));
}

static int load_file(const char *path, struct drv_fit_model *m, struct drv_err *err)
{
    struct drv_gguf_info *in = malloc(sizeof(*in));
    if (in == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    int rc = drv_gguf_inspect_file(path, in, err);
    if (rc == 0) {
        drv_strlcpy(m->name, path, sizeof(m->name));
        model_from_info(in, m);
    }
    free(in);
    if (rc)
        return rc;
    struct drv_tensor_size *t;
    int n;
    rc = drv_gguf_tensor_list(path, &t, &n, err);
    if (rc)
        return rc;
    rc = drv_fit_model_from_tensors(t, n, m, err);
    free(t);
    return rc;
}

int drv_fit_model_from_shape(const struct drv_model_shape *s, enum drv_synth_quant q,
                             struct drv_fit_model *m, struct drv_err *err)
{
    struct drv_synth_params p = drv_synth_default_params();
    p.shape = *s;
    p.quant = q;
    struct drv_tensor_size *t;
    int n;
    int rc = drv_synth_tensor_list(&p, &t, &n, err);
    if (rc)
        return rc;
    memset(m, 0, sizeof(*m));
    drv_strlcpy(m->name, s->name[0] ? s->name : s->arch, sizeof(m->name));
    drv_strlcpy(m->arch, s->arch, sizeof(m->arch));
    drv_strlcpy(m->quant, drv_synth_quant_name(q), sizeof(m->quant));
    for (char *c = m->quant; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    m->from_catalog = true;
    m->n_layer = s->n_layer;
    m->n_embd = s->n_embd;
    m->n_head = s->n_head;
    m->n_head_kv = s->n_head_kv;
    m->head_dim_k = m->head_dim_v = s->head_dim;
    m->n_ff = s->n_ff;
    m->n_vocab = s->n_vocab;
    m->n_ctx_train = s->n_ctx_train;
    m->n_expert = s->n_expert;
    m->n_expert_used = s->n_expert_used;
    m->n_swa = s->n_swa;
    if (s->head_dim_global) {
        /* as synth writes gemma4 and llama.cpp reads it: the full-attention
         * layers' heads are the model's, the sliding ones' are *_swa */
        m->head_dim_k = m->head_dim_v = s->head_dim_global;
        m->head_dim_k_swa = m->head_dim_v_swa = s->head_dim;
        m->n_head_kv = s->n_head_kv > s->n_head_kv_global ? s->n_head_kv : s->n_head_kv_global;
        m->per_layer_kv = m->has_swa_layers = true;
        for (uint32_t il = 0; il < s->n_layer; il++) {
            m->swa_layer[il] = drv_shape_layer_is_swa(s, il);
            m->layer_n_head_kv[il] = m->swa_layer[il] ? s->n_head_kv : s->n_head_kv_global;
        }
    }
    rc = drv_fit_model_from_tensors(t, n, m, err);
    free(t);
    return rc;
}

static int load_catalog(const char *model, struct drv_fit_model *m, struct drv_err *err)
{
    enum drv_synth_quant q = DRV_SYNTH_Q4_K_M;
    char base[128];
    drv_strlcpy(base, model, sizeof(base));
    const struct drv_model_shape *s = drv_catalog_find(base);
    char *dash = strrchr(base, '-');
    if (s == NULL && dash && drv_synth_quant_parse(dash + 1, &q)) {
        *dash = '\0';
        s = drv_catalog_find(base);
    }
    if (s == NULL) {
        struct drv_model_shape tmp;
        return drv_shape_resolve(base, &tmp, err); /* the message lists close matches */
    }
    return drv_fit_model_from_shape(s, q, m, err);
}

int drv_fit_model_load(const char *model, struct drv_fit_model *out, struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    return looks_like_path(model) ? load_file(model, out, err) : load_catalog(model, out, err);
}

/* ---- KV ---- */

/* bytes of one cache row of n elements; a row that is not whole blocks cannot
 * be quantized: llama.cpp refuses, count f16 */
static uint64_t kv_row(enum ggml_type t, int64_t n)
{
    return n % ggml_blck_size(t) ? ggml_row_size(GGML_TYPE_F16, n) : ggml_row_size(t, n);
}

/* K and V bytes of layer il for one cell: llama.cpp's n_embd_k_gqa(il) and
 * n_embd_v_gqa(il), the layer's kv heads times its (sliding or full) head
 * size. A layer that uses K as V (gemma4's global ones) still gets a V cache. */
static uint64_t kv_layer_cell(const struct drv_fit_model *m, enum drv_fit_kv kv, uint32_t il)
{
    enum ggml_type t = kv_types[kv].type;
    bool swa = drv_fit_layer_is_swa(m, il);
    int64_t heads =
        m->per_layer_kv && il < DRV_FIT_MAX_LAYERS ? m->layer_n_head_kv[il] : m->n_head_kv;
    int64_t dk = swa && m->head_dim_k_swa ? m->head_dim_k_swa : m->head_dim_k;
    int64_t dv = swa && m->head_dim_v_swa ? m->head_dim_v_swa : m->head_dim_v;
    return kv_row(t, heads * dk) + kv_row(t, heads * dv);
}

/* Sliding-window attention: which layers only attend to the last n_swa tokens.
 * A model may list them (sliding_window_pattern as an array, gemma4);
 * otherwise its architecture decides (drv_hparams_arch_layer_is_swa). */
bool drv_fit_layer_is_swa(const struct drv_fit_model *m, uint32_t il)
{
    if (m->n_swa == 0 || il >= DRV_FIT_MAX_LAYERS)
        return false;
    if (m->has_swa_layers)
        return m->swa_layer[il];
    return drv_hparams_arch_layer_is_swa(m->arch, il);
}

/* llama.cpp pads each sequence's context to a multiple of 256 cells */
static uint64_t pad_cells(uint32_t n_ctx)
{
    return ((uint64_t)n_ctx + 255) / 256 * 256;
}

/* Layer il's cache for n_seq sequences of n_ctx tokens. A sliding-window
 * layer keeps, per sequence, the window plus one ubatch, padded like the rest
 * (llama.cpp's iSWA cache, one stream per sequence as drover runs it), never
 * more than the sequence's full cache. */
static uint64_t kv_layer_bytes(const struct drv_fit_model *m, enum drv_fit_kv kv, uint32_t il,
                               uint32_t n_ctx, uint64_t n_seq)
{
    uint64_t cells = pad_cells(n_ctx);
    if (drv_fit_layer_is_swa(m, il)) {
        uint64_t win = pad_cells((uint32_t)(m->n_swa + 512));
        cells = win < cells ? win : cells;
    }
    return kv_layer_cell(m, kv, il) * cells * (n_seq ? n_seq : 1);
}

uint64_t drv_fit_kv_bytes(const struct drv_fit_model *m, enum drv_fit_kv kv, uint32_t n_ctx,
                          uint32_t n_seq)
{
    uint64_t sum = 0;
    for (uint32_t il = 0; il < m->n_layer && il < DRV_FIT_MAX_LAYERS; il++)
        sum += kv_layer_bytes(m, kv, il, n_ctx, n_seq);
    return sum;
}

uint64_t drv_fit_kv_bytes_gguf(const struct drv_gguf_info *in, enum drv_fit_kv kv, uint32_t n_ctx,
                               uint32_t n_seq)
{
    struct drv_fit_model *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort(); /* a fixed ~14 KiB */
    model_from_info(in, m);
    uint64_t sum = drv_fit_kv_bytes(m, kv, n_ctx, n_seq);
    free(m);
    return sum;
}

uint64_t drv_fit_kv_bytes_per_token(const struct drv_fit_model *m, enum drv_fit_kv kv)
{
    /* past the window only the global layers grow with the context */
    uint64_t sum = 0;
    for (uint32_t il = 0; il < m->n_layer; il++)
        if (!drv_fit_layer_is_swa(m, il))
            sum += kv_layer_cell(m, kv, il);
    return sum;
}

/* ---- compute buffers ----
 * llama.cpp reserves a worst-case graph of n_ub tokens and its allocator reuses
 * memory, so the buffer is the peak of what is alive at once, not a sum. Fitted
 * to the "compute buffer size" llama.cpp logs (CPU, llama/qwen2/qwen3 shapes from
 * 7M to 3B parameters, 128..4096 context, 1..4 sequences, f16 and q8_0 KV): the
 * peak is either inside a block (FFN: gate, up and their product, n_ff each, and
 * the residual stream; or attention with a wide Q, as qwen3's) plus the KQ mask
 * (f16, cells of one sequence x n_ub), or at the output (logits, n_vocab per
 * token). Within a few MiB of llama.cpp's numbers. */

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* tokens in the worst-case graph: n_ubatch, but never more than the context */
static uint64_t ubatch_tokens(const struct drv_fit_params *p)
{
    uint64_t ctx = (uint64_t)p->n_ctx * (p->n_parallel ? p->n_parallel : 1);
    return p->n_ubatch < ctx ? p->n_ubatch : ctx;
}

static uint64_t compute_layers(const struct drv_fit_model *m, const struct drv_fit_params *p,
                               uint64_t cells_seq)
{
    uint64_t n_ub = ubatch_tokens(p);
    uint32_t hd = m->head_dim_k > m->head_dim_k_swa ? m->head_dim_k : m->head_dim_k_swa;
    uint64_t q_dim = (uint64_t)hd * m->n_head;
    uint64_t ffn = 3ull * m->n_ff + 4ull * m->n_embd, attn = 2ull * m->n_embd + 3 * q_dim;
    return n_ub * 4 * max_u64(ffn, attn) + cells_seq * n_ub * 2;
}

static uint64_t compute_output(const struct drv_fit_model *m, const struct drv_fit_params *p)
{
    return ubatch_tokens(p) * 4 * ((uint64_t)m->n_vocab + 2ull * m->n_embd);
}

/* ---- placement ---- */

/* weights a token reads from block i: experts count by n_expert_used / n_expert */
static double layer_active(const struct drv_fit_model *m, uint32_t i)
{
    double b = (double)m->layer_bytes[i];
    if (m->n_expert > 0 && m->n_expert_used > 0 && m->n_expert_used < m->n_expert) {
        double exp = (double)m->expert_bytes / m->n_layer;
        b -= exp * (1.0 - (double)m->n_expert_used / m->n_expert);
    }
    return b < 0 ? 0 : b;
}

static uint64_t dev_total(const struct drv_fit_device *d)
{
    return d->weights + d->kv + d->compute + d->overhead;
}

static void init_devices(const struct drv_hw *hw, struct drv_fit_result *r)
{
    struct drv_fit_device *h = &r->dev[0];
    memset(h, 0, sizeof(*h));
    drv_strlcpy(h->name, "CPU", sizeof(h->name));
    drv_strlcpy(h->description, hw->cpu.model, sizeof(h->description));
    h->free_bytes = hw->memory.available_bytes;
    h->bw_gbps = hw->memory.bandwidth_gbps;
    h->bw_measured = hw->memory.bandwidth_gbps > 0;
    r->n_dev = 1;
    for (int i = 0; i < hw->n_devices && r->n_dev < DRV_FIT_MAX_DEVICES; i++) {
        const struct drv_hw_device *d = &hw->devices[i];
        bool igpu = strcmp(d->type, "igpu") == 0;
        if (!igpu && strcmp(d->type, "gpu") != 0)
            continue;
        struct drv_fit_device *g = &r->dev[r->n_dev++];
        memset(g, 0, sizeof(*g));
        drv_strlcpy(g->name, d->name, sizeof(g->name));
        drv_strlcpy(g->description, d->description, sizeof(g->description));
        g->gpu = true;
        g->shares_ram = igpu;
        g->free_bytes = d->memory_free_bytes;
        /* an integrated GPU reads the same RAM the CPU does; a discrete one's
         * bandwidth is the probe's measurement or the profile's number, if any */
        g->bw_gbps = igpu                    ? hw->memory.bandwidth_gbps
                     : d->bandwidth_gbps > 0 ? d->bandwidth_gbps
                                             : -1;
        g->bw_measured =
            igpu ? hw->memory.bandwidth_gbps > 0 : d->bandwidth_gbps > 0 && d->bandwidth_measured;
    }
}

/* One placement for p (n_gpu_layers < 0: as many as fit). Leaves r->verdict. */
static void place(const struct drv_fit_model *m, const struct drv_hw *hw,
                  const struct drv_fit_params *p, struct drv_fit_result *r)
{
    r->params = *p;
    init_devices(hw, r);
    uint32_t nl = m->n_layer;
    uint64_t n_seq = p->n_parallel ? p->n_parallel : 1;
    uint64_t cells_seq = pad_cells(p->n_ctx);
    uint64_t c_layers = compute_layers(m, p, cells_seq);
    uint64_t c_logits = compute_output(m, p);
    r->kv_per_token = drv_fit_kv_bytes_per_token(m, p->kv);
    /* each layer's cache: its own row size, its window or the whole context */
    uint64_t *kv_l = calloc(nl + 1, sizeof(*kv_l));
    if (kv_l == NULL)
        abort(); /* at most DRV_FIT_MAX_LAYERS values */
    r->kv_bytes = 0;
    for (uint32_t il = 0; il < nl; il++) {
        kv_l[il] = kv_layer_bytes(m, p->kv, il, p->n_ctx, n_seq);
        r->kv_bytes += kv_l[il];
    }

    int want = p->n_gpu_layers < 0 || p->n_gpu_layers > (int)nl + 1 ? (int)nl + 1 : p->n_gpu_layers;
    bool forced = p->n_gpu_layers >= 0;
    /* unit u: block u, or the output when u == nl; holder[u] is a device index */
    int *holder = calloc(nl + 1, sizeof(*holder));
    if (holder == NULL)
        abort(); /* at most DRV_FIT_MAX_LAYERS + 1 ints */
    int g = r->n_dev > 1 ? 1 : 0, placed = 0;
    uint64_t used = 0; /* on dev[g], before its overhead and compute */
    for (int u = (int)nl; u >= 0 && placed < want && g > 0; u--) {
        uint64_t bytes =
            (uint32_t)u == nl ? m->output_bytes + m->tied_bytes : m->layer_bytes[u] + kv_l[u];
        for (;;) {
            struct drv_fit_device *d = &r->dev[g];
            uint64_t fixed =
                DRV_FIT_VRAM_OVERHEAD +
                ((uint32_t)u == nl || d->has_output ? max_u64(c_layers, c_logits) : c_layers);
            if (fixed + used + bytes <= d->free_bytes || (forced && g == r->n_dev - 1))
                break;
            if (g == r->n_dev - 1) {
                g = 0; /* no GPU left */
                break;
            }
            g++;
            used = 0;
        }
        if (g == 0)
            break;
        holder[u] = g;
        used += bytes;
        placed++;
        if ((uint32_t)u == nl)
            r->dev[g].has_output = true;
    }
    r->n_gpu_layers = placed;

    for (uint32_t u = 0; u <= nl; u++) {
        struct drv_fit_device *d = &r->dev[holder[u]];
        if (u == nl) {
            d->has_output = true;
            d->weights += m->output_bytes + (d->gpu ? m->tied_bytes : 0);
        } else {
            d->n_layers++;
            d->weights += m->layer_bytes[u];
            d->kv += kv_l[u];
        }
    }
    free(holder);
    free(kv_l);
    r->dev[0].weights += m->embd_bytes;
    r->dev[0].overhead = DRV_FIT_RAM_OVERHEAD;
    /* llama.cpp's output buffer (the logits of one token per sequence) is host memory */
    r->dev[0].compute = n_seq * 4 * (uint64_t)m->n_vocab;
    bool gpu_ok = true;
    r->total_bytes = 0;
    for (int i = 0; i < r->n_dev; i++) {
        struct drv_fit_device *d = &r->dev[i];
        if (d->has_output)
            d->compute += d->n_layers ? max_u64(c_layers, c_logits) : c_logits;
        else if (d->n_layers)
            d->compute += c_layers;
        if (i > 0 && (d->n_layers || d->has_output))
            d->overhead = DRV_FIT_VRAM_OVERHEAD;
        if (i > 0 && dev_total(d) > d->free_bytes)
            gpu_ok = false;
        r->total_bytes += dev_total(d);
    }
    bool ram_ok = dev_total(&r->dev[0]) <= r->dev[0].free_bytes;
    if (!ram_ok || !gpu_ok)
        r->verdict = DRV_FIT_NONE;
    else if (placed == (int)nl + 1)
        r->verdict = DRV_FIT_GPU;
    else if (placed > 0)
        r->verdict = DRV_FIT_PARTIAL;
    else
        r->verdict = DRV_FIT_CPU;
}

static void roofline(const struct drv_fit_model *m, struct drv_fit_result *r)
{
    double t_lo = 0, t_hi = 0, host_hi = 0; /* seconds per token */
    bool unknown = false;
    r->read_per_token = 0;
    /* blocks were handed out from the top, the first GPU first: the host holds
     * blocks 0..h-1, the last GPU the ones above, the first GPU the top ones */
    uint32_t next = 0;
    double bytes_dev[DRV_FIT_MAX_DEVICES] = {0};
    for (int b = 0; b < r->dev[0].n_layers; b++)
        bytes_dev[0] += layer_active(m, next++);
    for (int i = r->n_dev - 1; i >= 1; i--)
        for (int k = 0; k < r->dev[i].n_layers; k++)
            bytes_dev[i] += layer_active(m, next++);
    for (int i = 0; i < r->n_dev; i++) {
        struct drv_fit_device *d = &r->dev[i];
        /* a full context of this sequence: its share of the cache there
         * (sliding-window layers hold only their window) */
        bytes_dev[i] += (double)d->kv / (r->params.n_parallel ? r->params.n_parallel : 1);
        if (d->has_output)
            bytes_dev[i] += (double)(m->output_bytes + (m->tied ? m->tied_bytes : 0));
        r->read_per_token += (uint64_t)bytes_dev[i];
        if (bytes_dev[i] <= 0)
            continue;
        if (d->bw_gbps <= 0) {
            unknown = true;
            continue;
        }
        double bw = d->bw_gbps * 1e9;
        double lo = i == 0 ? EFF_CPU_LO : EFF_LO, hi = i == 0 ? EFF_CPU_HI : EFF_HI;
        /* the CPU also pays a fixed cost per block: it dominates tiny models */
        double fix_lo = i == 0 ? d->n_layers * DRV_FIT_CPU_BLOCK_S_HI : 0;
        double fix_hi = i == 0 ? d->n_layers * DRV_FIT_CPU_BLOCK_S_LO : 0;
        t_lo += bytes_dev[i] / (bw * lo) + fix_lo;
        t_hi += bytes_dev[i] / (bw * hi) + fix_hi;
        if (i == 0)
            host_hi = bytes_dev[i] / (bw * hi) + fix_hi;
    }
    r->tg_lo = r->tg_hi = -1;
    r->tg_upper_only = false;
    if (!unknown && t_hi > 0) {
        r->tg_lo = 1.0 / t_lo;
        r->tg_hi = 1.0 / t_hi;
    } else if (unknown && host_hi > 0) {
        r->tg_hi = 1.0 / host_hi;
        r->tg_upper_only = true;
    }
}

void drv_fit_plan(const struct drv_fit_model *m, const struct drv_hw *hw,
                  const struct drv_fit_params *p, struct drv_fit_result *out)
{
    memset(out, 0, sizeof(*out));
    place(m, hw, p, out);
    roofline(m, out);
    if (out->verdict == DRV_FIT_GPU)
        return;
    struct drv_fit_result *alt = malloc(sizeof(*alt));
    if (alt == NULL)
        return; /* the alternatives are advice; the plan itself stands */
    struct drv_fit_params q = *p;
    q.n_gpu_layers = -1;
    bool gpus = out->n_dev > 1;
    uint32_t c = 256;
    while (c * 2 < p->n_ctx)
        c *= 2;
    for (; gpus && c >= 256 && c < p->n_ctx; c /= 2) {
        q.n_ctx = c;
        place(m, hw, &q, alt);
        if (alt->verdict == DRV_FIT_GPU) {
            out->alt_ctx = c;
            break;
        }
    }
    q.n_ctx = p->n_ctx;
    if (gpus && p->kv == DRV_FIT_KV_F16) {
        q.kv = DRV_FIT_KV_Q8_0;
        place(m, hw, &q, alt);
        out->alt_q8_fits = alt->verdict == DRV_FIT_GPU;
        q.kv = p->kv;
    }
    if (out->verdict == DRV_FIT_NONE) {
        for (c = 256; c * 2 < p->n_ctx; c *= 2)
            ;
        for (; c >= 256 && c < p->n_ctx; c /= 2) {
            q.n_ctx = c;
            place(m, hw, &q, alt);
            if (alt->verdict != DRV_FIT_NONE) {
                out->alt_ctx_ram = c;
                break;
            }
        }
    }
    free(alt);
}
