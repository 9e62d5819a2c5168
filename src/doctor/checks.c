/* checks: the table of checks. Each is a pure function from the facts of the
 * fleet to findings: what is wrong, the measured values and where they came
 * from, and the exact fix; or "not checked: why" when the node's kind does not
 * report what the check needs. */
#include "doctor/doctor.h"
#include "model/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * 1024.0 * 1024.0)

const char *drv_doctor_severity_name(enum drv_doctor_severity s)
{
    return s == DRV_DOCTOR_PROBLEM ? "problem" : s == DRV_DOCTOR_WARNING ? "warning" : "hint";
}

/* ---- building findings ---- */

static struct drv_doctor_finding *add(struct drv_doctor_result *out, const char *id,
                                      enum drv_doctor_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static struct drv_doctor_finding *add(struct drv_doctor_result *out, const char *id,
                                      enum drv_doctor_severity sev, const char *fmt, ...)
{
    static _Thread_local struct drv_doctor_finding overflow; /* past the cap: dropped */
    struct drv_doctor_finding *f =
        out->n_findings < DRV_DOCTOR_MAX_FINDINGS ? &out->findings[out->n_findings++] : &overflow;
    memset(f, 0, sizeof(*f));
    drv_strlcpy(f->id, id, sizeof(f->id));
    f->severity = sev;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->title, sizeof(f->title), fmt, ap);
    va_end(ap);
    return f;
}

static void append_line(char *buf, size_t size, const char *fmt, va_list ap)
{
    size_t l = strlen(buf);
    if (l && l + 1 < size)
        buf[l++] = '\n', buf[l] = '\0';
    if (l < size)
        vsnprintf(buf + l, size - l, fmt, ap);
}

/* One line of evidence: a measured value and where it came from. */
static void ev(struct drv_doctor_finding *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ev(struct drv_doctor_finding *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_line(f->evidence, sizeof(f->evidence), fmt, ap);
    va_end(ap);
}

/* One line of the fix. */
static void fix(struct drv_doctor_finding *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fix(struct drv_doctor_finding *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_line(f->fix, sizeof(f->fix), fmt, ap);
    va_end(ap);
}

static void skip(struct drv_doctor_result *out, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void skip(struct drv_doctor_result *out, const char *id, const char *fmt, ...)
{
    if (out->n_skipped == DRV_DOCTOR_MAX_FINDINGS)
        return;
    struct drv_doctor_skip *s = &out->skipped[out->n_skipped++];
    drv_strlcpy(s->id, id, sizeof(s->id));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
}

/* ---- facts, read the same way by several checks ---- */

/* A node that answered like a known server (not this machine). */
static bool usable(const struct drv_doctor_node *n)
{
    return n->url[0] && n->reachable && n->error[0] == '\0' && n->kind != DRV_BENCH_KIND_AUTO;
}

static const char *kind_word(enum drv_bench_kind k)
{
    switch (k) {
    case DRV_BENCH_KIND_DROVER:
        return "drover";
    case DRV_BENCH_KIND_OLLAMA:
        return "Ollama";
    case DRV_BENCH_KIND_LLAMA_SERVER:
        return "llama-server";
    case DRV_BENCH_KIND_OPENAI:
        return "the OpenAI-compatible server";
    default:
        return "the node";
    }
}

static char *bytes(uint64_t b, char *out, size_t size)
{
    return drv_fmt_bytes(b, out, size);
}

/* The first GPU llama.cpp sees on the node (ggml device of type gpu/igpu). */
static const struct drv_hw_device *first_gpu(const struct drv_hw *hw)
{
    for (int i = 0; i < hw->n_devices; i++)
        if (strcmp(hw->devices[i].type, "gpu") == 0 || strcmp(hw->devices[i].type, "igpu") == 0)
            return &hw->devices[i];
    return NULL;
}

static double median(const double *v, int n)
{
    double *c = malloc((size_t)(n > 0 ? n : 1) * sizeof(*c));
    if (c == NULL || n == 0) {
        free(c);
        return -1;
    }
    memcpy(c, v, (size_t)n * sizeof(*c));
    for (int i = 1; i < n; i++) /* n is small */
        for (int k = i; k > 0 && c[k - 1] > c[k]; k--) {
            double t = c[k];
            c[k] = c[k - 1];
            c[k - 1] = t;
        }
    double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    free(c);
    return m;
}

static void range_of(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = n ? v[0] : -1;
    for (int i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

static void date_of(int64_t ts, char *out, size_t size)
{
    time_t t = (time_t)ts;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || strftime(out, size, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(out, size, "%lld", (long long)ts);
}

/* ---- reachable: a node that does not answer is itself a finding ---- */

static bool check_reachable(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                            struct drv_doctor_result *out)
{
    (void)fleet;
    if (n->url[0] == '\0')
        return false;
    if (!n->reachable) {
        if (n->optional) {
            skip(out, "reachable", "no node is configured and none answers at %s", n->url);
            return true;
        }
        struct drv_doctor_finding *f =
            add(out, "reachable", DRV_DOCTOR_PROBLEM, "does not answer at %s", n->url);
        ev(f, "%s", n->error);
        switch (n->kind) {
        case DRV_BENCH_KIND_OLLAMA:
            fix(f, "start Ollama there (systemctl start ollama, or ollama serve with "
                   "OLLAMA_HOST=0.0.0.0 to listen beyond loopback)");
            break;
        case DRV_BENCH_KIND_LLAMA_SERVER:
        case DRV_BENCH_KIND_OPENAI:
            fix(f, "start the server there (llama-server -m MODEL.gguf --host 0.0.0.0 --port "
                   "PORT)");
            break;
        default:
            fix(f, "start the node there (drover serve --host 0.0.0.0 --port PORT)");
        }
        fix(f, "or correct url = in [node %s] of the config", n->name);
        return true;
    }
    if (n->error[0]) {
        bool auth = strstr(n->error, "HTTP 401") || strstr(n->error, "HTTP 403");
        struct drv_doctor_finding *f =
            add(out, "reachable", DRV_DOCTOR_PROBLEM, "%s",
                auth ? "answers, but refuses requests without a valid API key"
                     : "answers, but not like drover, Ollama or llama-server");
        ev(f, "%s", n->error);
        if (auth)
            fix(f, "api_key_file = FILE (one line, the key) in [node %s] of the config", n->name);
        else
            fix(f, "correct url = in [node %s] (the server's base URL, without /v1)", n->name);
        return true;
    }
    if (n->config_kind != DRV_BENCH_KIND_AUTO && n->config_kind != n->kind &&
        !(n->config_kind == DRV_BENCH_KIND_OPENAI && n->kind == DRV_BENCH_KIND_LLAMA_SERVER)) {
        struct drv_doctor_finding *f =
            add(out, "reachable", DRV_DOCTOR_WARNING, "configured as %s, but answers like %s",
                drv_bench_kind_name(n->config_kind), kind_word(n->kind));
        ev(f,
           "kind = %s in [node %s]; its answers to /api/version, /api/drover/status, /props "
           "and /v1/models are %s's",
           drv_bench_kind_name(n->config_kind), n->name, kind_word(n->kind));
        fix(f, "kind = %s in [node %s] (or leave kind out: it is detected)",
            n->kind == DRV_BENCH_KIND_LLAMA_SERVER ? "openai" : drv_bench_kind_name(n->kind),
            n->name);
    }
    if (n->timed_out) {
        struct drv_doctor_finding *f = add(out, "reachable", DRV_DOCTOR_WARNING,
                                           "did not finish the doctor's requests in time");
        ev(f, "%.1f s for a few listings and two short probes (the time limit)", n->elapsed_s);
        fix(f, "look at what keeps it busy (a long queue, a model loading from a slow disk); "
               "drover doctor --timeout S gives it longer");
    }
    return true;
}

/* ---- threads ---- */

static bool check_threads(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                          struct drv_doctor_result *out)
{
    (void)fleet;
    if (!usable(n))
        return false;
    int cores = n->have_hw ? n->hw.cpu.cores : 0;
    const char *cores_from = n->hw_from;
    char cpu[200] = "";
    if (n->have_hw)
        snprintf(cpu, sizeof(cpu), ", %d logical CPUs: %s", n->hw.cpu.threads, n->hw.cpu.model);
    switch (n->kind) {
    case DRV_BENCH_KIND_DROVER: {
        if (!n->have_status) {
            skip(out, "threads",
                 "this drover does not report its settings (GET /api/drover/status): update it");
            return true;
        }
        const struct drv_doctor_status *s = &n->status;
        if (cores <= 0 && s->physical_cores > 0) {
            cores = s->physical_cores;
            cores_from = "GET /api/drover/status";
        }
        if (cores <= 0) {
            skip(out, "threads", "the node's physical cores are unknown");
            return true;
        }
        if (s->threads <= cores)
            return true;
        struct drv_doctor_finding *f =
            add(out, "threads", DRV_DOCTOR_PROBLEM, "%d compute threads on %d physical cores",
                s->threads, cores);
        ev(f, "threads %d, %s (GET /api/drover/status)", s->threads,
           s->threads_set ? "set by --threads or threads = in drover.conf"
                          : "drover's default (physical cores)");
        ev(f, "%d physical cores%s (%s)", cores, cpu, cores_from);
        if (n->speed.state == 1)
            ev(f, "generation now: %.1f tok/s on %s (speed probe, median of %d)",
               median(n->speed.tg, n->speed.n), n->speed.model, n->speed.n);
        ev(f, "threads beyond the physical cores share cores and wait on each other: "
              "generation gets slower, not faster");
        fix(f, "drover serve --threads %d   (or threads = %d under [serve] in drover.conf;", cores,
            cores);
        fix(f, "left unset, drover uses the physical cores)");
        return true;
    }
    case DRV_BENCH_KIND_OLLAMA: {
        if (n->n_models == 0) {
            skip(out, "threads",
                 "no model loaded: Ollama's threads are set per model (num_thread)");
            return true;
        }
        for (int i = 0; i < n->n_models; i++) {
            const struct drv_doctor_model *m = &n->models[i];
            if (!m->have_show || m->num_thread <= 0)
                continue; /* Ollama's default: the physical cores */
            if (cores <= 0) {
                skip(out, "threads",
                     "%s sets num_thread %d in its Modelfile, but the machine's physical cores "
                     "are unknown (Ollama does not report them: hw = FILE from `drover hw "
                     "--json` there, in [node %s])",
                     m->name, m->num_thread, n->name);
                continue;
            }
            if (m->num_thread <= cores)
                continue;
            struct drv_doctor_finding *f =
                add(out, "threads", DRV_DOCTOR_PROBLEM, "%s runs %d threads on %d physical cores",
                    m->name, m->num_thread, cores);
            ev(f, "PARAMETER num_thread %d in %s's Modelfile (POST /api/show)", m->num_thread,
               m->name);
            ev(f, "%d physical cores%s (%s)", cores, cpu, cores_from);
            fix(f,
                "ollama show %s --modelfile > Modelfile; set PARAMETER num_thread %d (or "
                "delete the line);",
                m->name, cores);
            fix(f, "ollama create %s -f Modelfile", m->name);
        }
        return true;
    }
    case DRV_BENCH_KIND_LLAMA_SERVER:
        skip(out, "threads",
             "llama-server does not report its thread count: -t on its command line should be "
             "at most the physical cores%s",
             cores > 0 ? "" : " (unknown here)");
        return true;
    default:
        skip(out, "threads", "an OpenAI-compatible server does not report its threads");
        return true;
    }
}

/* ---- GPU present but unused ---- */

static bool check_gpu_unused(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                             struct drv_doctor_result *out)
{
    (void)fleet;
    if (!usable(n))
        return false;
    if (n->kind == DRV_BENCH_KIND_LLAMA_SERVER || n->kind == DRV_BENCH_KIND_OPENAI) {
        if (!n->have_hw || first_gpu(&n->hw))
            skip(out, "gpu-unused",
                 "%s does not report where the weights are (check -ngl on its command line)",
                 kind_word(n->kind));
        return true;
    }
    char a[32], b[32];
    if (!n->have_hw) {
        for (int i = 0; i < n->n_models; i++) {
            const struct drv_doctor_model *m = &n->models[i];
            if (m->size == 0 || m->size_vram != 0)
                continue;
            struct drv_doctor_finding *f =
                add(out, "gpu-unused", DRV_DOCTOR_HINT,
                    "%s runs 100%% on the CPU: if the machine has a GPU, %s does not use it",
                    m->name, kind_word(n->kind));
            ev(f, "%s: size %s, size_vram 0 (GET /api/ps)", m->name, bytes(m->size, a, sizeof(a)));
            ev(f, "the node's GPUs are unknown (%s does not report them)", kind_word(n->kind));
            fix(f, "on that machine: `drover hw` shows its GPUs; journalctl -u ollama shows "
                   "Ollama's GPU discovery; systemctl edit ollama shows overrides such as "
                   "CUDA_VISIBLE_DEVICES=-1");
            fix(f,
                "then hw = FILE (from `drover hw --json` there) in [node %s] lets the doctor "
                "judge it",
                n->name);
        }
        if (n->n_models == 0)
            skip(out, "gpu-unused", "no model loaded, and the node's GPUs are unknown");
        return true;
    }
    const struct drv_hw_device *gpu = first_gpu(&n->hw);
    if (gpu == NULL)
        return true; /* no GPU llama.cpp can use: gpu-backend speaks of vendor GPUs */
    if (n->n_models == 0) {
        skip(out, "gpu-unused", "no model loaded");
        return true;
    }
    for (int i = 0; i < n->n_models; i++) {
        const struct drv_doctor_model *m = &n->models[i];
        if (m->size == 0 || m->size_vram != 0)
            continue;
        struct drv_doctor_finding *f =
            add(out, "gpu-unused", DRV_DOCTOR_PROBLEM,
                "%s runs on the CPU although the node has a GPU (%s)", m->name,
                gpu->description[0] ? gpu->description : gpu->name);
        ev(f, "%s: size %s, size_vram 0: no layer on the GPU (GET /api/ps)", m->name,
           bytes(m->size, a, sizeof(a)));
        ev(f, "%s %s: %s, %s free (%s)", gpu->name, gpu->type,
           bytes(gpu->memory_total_bytes, a, sizeof(a)),
           bytes(gpu->memory_free_bytes, b, sizeof(b)), n->hw_from);
        if (n->speed.state == 1 && strcmp(n->speed.model, m->name) == 0)
            ev(f, "generation now: %.1f tok/s (speed probe, median of %d)",
               median(n->speed.tg, n->speed.n), n->speed.n);
        if (n->kind == DRV_BENCH_KIND_DROVER && n->have_status && n->status.gpu_layers == 0) {
            ev(f, "gpu_layers 0 (GET /api/drover/status)");
            fix(f, "drover serve without --gpu-layers 0 (or gpu_layers = -1 under [serve] in "
                   "drover.conf): drover then puts as many layers on the GPU as fit");
        } else if (n->kind == DRV_BENCH_KIND_DROVER) {
            ev(f,
               "gpu_layers %d (GET /api/drover/status): the GPU had too little free memory "
               "when the model loaded",
               n->have_status ? n->status.gpu_layers : -1);
            fix(f,
                "free the GPU (nvidia-smi shows who holds it), or make the model smaller on "
                "it: drover serve --ctx 2048 --kv-type q8_0; `drover fit %s` shows what fits",
                m->name);
        } else if (m->num_gpu == 0) {
            ev(f, "PARAMETER num_gpu 0 in %s's Modelfile (POST /api/show)", m->name);
            fix(f,
                "ollama show %s --modelfile > Modelfile; delete PARAMETER num_gpu 0; ollama "
                "create %s -f Modelfile",
                m->name, m->name);
        } else {
            fix(f, "systemctl edit ollama: remove CUDA_VISIBLE_DEVICES=-1 / HIP_VISIBLE_DEVICES "
                   "/ OLLAMA_LLM_LIBRARY=cpu overrides; journalctl -u ollama shows why no GPU "
                   "was used; then systemctl restart ollama");
        }
    }
    return true;
}

/* A GPU in the machine that this llama.cpp build cannot use. Only where the
 * device list is the node's own engine's view: this machine, drover nodes. */
static bool check_gpu_backend(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                              struct drv_doctor_result *out)
{
    (void)fleet;
    bool own_view = n->url[0] == '\0' || (usable(n) && n->kind == DRV_BENCH_KIND_DROVER &&
                                          strcmp(n->hw_from, "GET /api/drover/hw") == 0);
    if (!n->have_hw || !own_view || n->hw.n_devices == 0)
        return false;
    if (first_gpu(&n->hw) || n->hw.n_nvidia + n->hw.n_amd == 0)
        return true;
    char a[32];
    bool nv = n->hw.n_nvidia > 0;
    struct drv_doctor_finding *f =
        add(out, "gpu-backend", DRV_DOCTOR_PROBLEM,
            "%s GPU is in the machine, but %s llama.cpp has no backend for it",
            nv ? "an NVIDIA" : "an AMD", n->url[0] ? "the node's" : "drover's");
    if (nv)
        ev(f, "%s, %s (nvidia-smi, %s)", n->hw.nvidia[0].name,
           bytes(n->hw.nvidia[0].memory_total_bytes, a, sizeof(a)), n->hw_from);
    else
        ev(f, "%s %s, VRAM %s (sysfs, %s)", n->hw.amd[0].card, n->hw.amd[0].gfx_target,
           bytes(n->hw.amd[0].vram_total_bytes, a, sizeof(a)), n->hw_from);
    ev(f, "llama.cpp's devices: only the CPU (%s)", n->hw_from);
    if (nv)
        fix(f, "install the CUDA toolkit (nvcc) there and rebuild: DROVER_CUDA=1 make build");
    else
        fix(f, "use a llama.cpp built with -DGGML_VULKAN=ON: DROVER_LLAMA_PREFIX=/its/prefix "
               "make build");
    return true;
}

/* ---- partial offload and KV cache type, from drover's fit ---- */

/* Bounds on what a node says of a shape: beyond them it is no model llama.cpp
 * loads, and fit's products of heads, sizes and tokens must not overflow. */
#define SHAPE_MAX_DIM   (1u << 20) /* n_embd, n_ff, n_ff_exp */
#define SHAPE_MAX_HEADS (1u << 16) /* heads, kv heads, head sizes, experts */
#define SHAPE_MAX_VOCAB (1u << 24)

static bool shape_sane(const struct drv_hparams *hp)
{
    uint32_t dims[] = {hp->n_embd, hp->n_ff, hp->n_ff_exp};
    uint32_t heads[] = {hp->n_head,         hp->n_head_kv,      hp->head_dim_k, hp->head_dim_v,
                        hp->head_dim_k_swa, hp->head_dim_v_swa, hp->n_expert,   hp->n_expert_used};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (dims[i] > SHAPE_MAX_DIM)
            return false;
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
        if (heads[i] > SHAPE_MAX_HEADS)
            return false;
    return hp->n_vocab <= SHAPE_MAX_VOCAB;
}

/* Weights of block il's attention and expert router (elements), from the
 * shape: Q and O of n_head heads, K and V of the layer's own kv heads, each
 * with the layer's (sliding or full) head sizes. */
static double attn_params(const struct drv_fit_model *fm, uint32_t il)
{
    bool swa = drv_fit_layer_is_swa(fm, il);
    double dk = swa && fm->head_dim_k_swa ? fm->head_dim_k_swa : fm->head_dim_k;
    double dv = swa && fm->head_dim_v_swa ? fm->head_dim_v_swa : fm->head_dim_v;
    double kv = fm->per_layer_kv ? fm->layer_n_head_kv[il] : fm->n_head_kv;
    double e = fm->n_embd;
    return e * fm->n_head * dk + e * kv * (dk + dv) + fm->n_head * dv * e + e * fm->n_expert;
}

/* A MoE model's expert bytes (fit's roofline reads n_expert_used / n_expert
 * of them per token). /api/show gives no tensor sizes, so each block's share
 * is estimated from the shape: with the experts' FFN length, n_expert x 3
 * (gate, up, down) x n_embd x n_ff_exp against that plus the attention and
 * router; without it, everything of the block but its attention and router
 * (at the file's bytes per weight) counts as experts. A dense FFN beside the
 * experts (gemma4's, a few % of the block) is counted as experts either way. */
static uint64_t expert_bytes_of(const struct drv_fit_model *fm, uint32_t n_ff_exp, double bpw)
{
    if (fm->n_expert == 0)
        return 0;
    double exp = (double)fm->n_expert * 3 * fm->n_embd * n_ff_exp, sum = 0;
    for (uint32_t il = 0; il < fm->n_layer; il++) {
        double layer = (double)fm->layer_bytes[il], attn = attn_params(fm, il);
        double b = n_ff_exp ? layer * exp / (exp + attn) : layer - attn * bpw;
        sum += b > 0 ? b : 0;
    }
    return (uint64_t)sum;
}

uint64_t drv_doctor_model_weights(const struct drv_doctor_model *m)
{
    return m->file_size ? m->file_size : m->size;
}

int drv_doctor_fit_model(const struct drv_doctor_model *m, struct drv_fit_model *fm)
{
    const struct drv_hparams *hp = &m->hp;
    uint64_t weights = drv_doctor_model_weights(m);
    if (!m->have_show || hp->n_block == 0 || hp->n_block > DRV_FIT_MAX_LAYERS || hp->n_embd == 0 ||
        hp->n_head == 0 || weights == 0 || !shape_sane(hp))
        return DRV_EINVAL;
    memset(fm, 0, sizeof(*fm));
    drv_strlcpy(fm->name, m->name, sizeof(fm->name));
    drv_fit_model_set_hparams(fm, m->arch, hp);
    drv_strlcpy(fm->quant, m->quant, sizeof(fm->quant));
    /* what /api/show may not tell */
    if (fm->n_ff == 0)
        fm->n_ff = hp->n_embd * 7 / 2; /* llama 3 / qwen 2.5 are near 3.5x */
    if (fm->n_vocab == 0)
        fm->n_vocab = 32000;
    /* the bytes: embeddings by the vocabulary when known, the rest evenly */
    double bpw = m->n_params ? (double)weights / (double)m->n_params : 0.6;
    uint64_t embd = hp->n_vocab ? (uint64_t)(hp->n_vocab * (double)hp->n_embd * bpw)
                                : weights / (hp->n_block + 2);
    if (embd * 2 >= weights)
        embd = weights / (hp->n_block + 2);
    fm->total_bytes = weights;
    fm->embd_bytes = embd;
    fm->output_bytes = embd;
    uint64_t per = (weights - 2 * embd) / hp->n_block;
    for (uint32_t i = 0; i < hp->n_block; i++)
        fm->layer_bytes[i] = per;
    fm->expert_bytes = expert_bytes_of(fm, hp->n_ff_exp, bpw);
    return 0;
}

/* The machine as fit sees it, the GPU's free memory as it was before the
 * node's models loaded. */
static void fit_hw(const struct drv_doctor_node *n, struct drv_hw *hw)
{
    *hw = n->hw;
    if (!n->hw_after_load)
        return;
    for (int d = 0; d < hw->n_devices; d++) {
        if (strcmp(hw->devices[d].type, "cpu") == 0)
            continue;
        for (int i = 0; i < n->n_models; i++)
            hw->devices[d].memory_free_bytes += n->models[i].size_vram;
        if (hw->devices[d].memory_free_bytes > hw->devices[d].memory_total_bytes)
            hw->devices[d].memory_free_bytes = hw->devices[d].memory_total_bytes;
        break; /* fit fills the first GPU first; so does the usage we add back */
    }
}

static enum drv_fit_kv kv_of(const struct drv_doctor_node *n)
{
    enum drv_fit_kv kv = DRV_FIT_KV_F16;
    if (n->kind == DRV_BENCH_KIND_DROVER && n->have_status)
        drv_fit_kv_parse(n->status.kv_type, &kv);
    return kv;
}

/* Slots of a loaded drover model: what its resident size leaves for KV. */
static uint32_t slots_of(const struct drv_doctor_node *n, const struct drv_doctor_model *m,
                         const struct drv_fit_model *fm)
{
    if (n->kind != DRV_BENCH_KIND_DROVER)
        return 1; /* Ollama: OLLAMA_NUM_PARALLEL, 1 by default, not reported */
    if (n->have_status && n->status.parallel > 0)
        return (uint32_t)n->status.parallel;
    uint64_t per_seq = drv_fit_kv_bytes_per_token(fm, kv_of(n)) * m->context_length;
    uint64_t weights = m->file_size ? m->file_size : fm->total_bytes;
    if (per_seq == 0 || m->size <= weights)
        return 1;
    uint64_t s = (m->size - weights + per_seq / 2) / per_seq;
    return s < 1 ? 1 : s > 64 ? 64 : (uint32_t)s;
}

static bool check_offload(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                          struct drv_doctor_result *out)
{
    (void)fleet;
    if (!usable(n) || !n->have_ps || !n->have_hw || first_gpu(&n->hw) == NULL)
        return false;
    struct drv_fit_model *fm = calloc(1, sizeof(*fm));
    struct drv_hw *hw = calloc(1, sizeof(*hw));
    struct drv_fit_result *res = calloc(1, sizeof(*res)), *alt = calloc(1, sizeof(*alt));
    if (!fm || !hw || !res || !alt)
        goto out_free;
    for (int i = 0; i < n->n_models; i++) {
        const struct drv_doctor_model *m = &n->models[i];
        if (m->size == 0 || m->size_vram == 0 || m->size_vram >= m->size * 95 / 100)
            continue; /* all on the CPU (gpu-unused) or all on the GPU */
        if (drv_doctor_fit_model(m, fm) != 0) {
            skip(out, "partial-offload",
                 "%s is split between GPU and CPU, but its shape is "
                 "unknown (POST /api/show)",
                 m->name);
            continue;
        }
        fit_hw(n, hw);
        struct drv_fit_params fp = drv_fit_default_params();
        fp.n_ctx = m->context_length ? m->context_length : 4096;
        fp.n_parallel = slots_of(n, m, fm);
        fp.kv = kv_of(n);
        drv_fit_plan(fm, hw, &fp, res);
        char a[32], b[32], c[32];
        const struct drv_hw_device *gpu = first_gpu(&n->hw);
        double share = (double)m->size_vram / (double)m->size * 100;
        bool drover = n->kind == DRV_BENCH_KIND_DROVER;
        if (res->verdict == DRV_FIT_GPU) {
            /* it fits as it is: the GPU was fuller when the model loaded */
            struct drv_doctor_finding *f =
                add(out, "partial-offload", DRV_DOCTOR_WARNING,
                    "%s: only %.0f%% on the GPU, but all of it fits the GPU's free memory now",
                    m->name, share);
            ev(f, "%s: size %s, size_vram %s (GET /api/ps)", m->name, bytes(m->size, a, 32),
               bytes(m->size_vram, b, 32));
            ev(f, "%s: %s total, %s free without the model (%s)", gpu->name,
               bytes(gpu->memory_total_bytes, a, 32),
               bytes(hw->devices[gpu - n->hw.devices].memory_free_bytes, b, 32), n->hw_from);
            ev(f,
               "needs %s on the GPU with KV %s for %u x %u tokens (drover fit, shape from POST "
               "/api/show)",
               bytes(res->total_bytes - res->dev[0].weights - res->dev[0].kv - res->dev[0].compute -
                         res->dev[0].overhead,
                     c, 32),
               drv_fit_kv_name(fp.kv), fp.n_parallel, fp.n_ctx);
            fix(f, "%s",
                drover ? "load it again: restart drover serve (or send it a request with "
                         "\"keep_alive\": 0, then use it)"
                       : "load it again: ollama stop MODEL, then use it");
            continue;
        }
        /* fewer sequences, then a smaller context, then q8_0: each alone */
        uint32_t fit_slots = 0;
        if (fp.n_parallel > 1) {
            struct drv_fit_params p1 = fp;
            p1.n_parallel = 1;
            drv_fit_plan(fm, hw, &p1, alt);
            if (alt->verdict == DRV_FIT_GPU)
                fit_slots = 1;
        }
        uint32_t fit_ctx = res->alt_ctx >= 1024 ? res->alt_ctx : 0;
        bool q8 = fp.kv == DRV_FIT_KV_F16 && res->alt_q8_fits;
        if (!fit_slots && !fit_ctx && !q8) {
            struct drv_doctor_finding *f =
                add(out, "partial-offload", DRV_DOCTOR_HINT,
                    "%s: %.0f%% on the GPU; it does not fit whole at any smaller setting", m->name,
                    share);
            ev(f, "%s: size %s, size_vram %s (GET /api/ps)", m->name, bytes(m->size, a, 32),
               bytes(m->size_vram, b, 32));
            fix(f, "a smaller quantization or model: `drover fit MODEL` shows which fit %s",
                gpu->name);
            continue;
        }
        struct drv_doctor_finding *f =
            add(out, fit_slots || fit_ctx ? "partial-offload" : "kv-cache", DRV_DOCTOR_WARNING,
                "%s: only %.0f%% on the GPU; all of it fits with %s", m->name, share,
                fit_slots ? "one sequence"
                : fit_ctx ? "a smaller context"
                          : "a q8_0 KV cache");
        ev(f, "%s: size %s, size_vram %s (GET /api/ps)", m->name, bytes(m->size, a, 32),
           bytes(m->size_vram, b, 32));
        ev(f, "%s: %s total, %s free before the model (%s)", gpu->name,
           bytes(gpu->memory_total_bytes, a, 32),
           bytes(hw->devices[gpu - n->hw.devices].memory_free_bytes, b, 32), n->hw_from);
        ev(f, "KV cache %s for %u x %u tokens: %s (drover fit, shape from POST /api/show)",
           drv_fit_kv_name(fp.kv), fp.n_parallel, fp.n_ctx, bytes(res->kv_bytes, c, 32));
        if (fit_slots)
            fix(f, "%s",
                drover ? "drover serve --parallel 1 (or parallel = 1 under [serve])"
                       : "OLLAMA_NUM_PARALLEL=1 in the service (systemctl edit ollama)");
        if (fit_ctx)
            fix(f,
                drover ? "drover serve --ctx %u (or ctx = %u under [serve])"
                       : "OLLAMA_CONTEXT_LENGTH=%u in the service, or options.num_ctx %u per "
                         "request",
                fit_ctx, fit_ctx);
        if (q8) {
            struct drv_doctor_finding *g =
                fit_slots || fit_ctx
                    ? add(out, "kv-cache", DRV_DOCTOR_WARNING,
                          "%s: a q8_0 KV cache would put all of it on the GPU at the same context",
                          m->name)
                    : f;
            if (g != f)
                ev(g, "KV cache f16 for %u x %u tokens: %s; q8_0 about half (drover fit)",
                   fp.n_parallel, fp.n_ctx, bytes(res->kv_bytes, c, 32));
            fix(g, "%s",
                drover ? "drover serve --kv-type q8_0 (flash attention comes with it)"
                       : "OLLAMA_KV_CACHE_TYPE=q8_0 and OLLAMA_FLASH_ATTENTION=1 in the service");
        }
    }
out_free:
    free(fm);
    free(hw);
    free(res);
    free(alt);
    return true;
}

/* ---- slow against the hardware: the roofline ---- */

static bool check_slow(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                       struct drv_doctor_result *out)
{
    (void)fleet;
    if (!usable(n))
        return false;
    const struct drv_doctor_speed *s = &n->speed;
    if (s->state != 1) {
        skip(out, "slow", "speed not measured: %s", s->why[0] ? s->why : "no probe ran");
        return true;
    }
    const struct drv_doctor_model *m = NULL;
    for (int i = 0; i < n->n_models; i++)
        if (strcmp(n->models[i].name, s->model) == 0)
            m = &n->models[i];
    uint64_t weights = m ? drv_doctor_model_weights(m) : 0;
    if (weights == 0) {
        skip(out, "slow", "the size of %s is unknown", s->model);
        return true;
    }
    char a[32], b[32];
    if (weights < DRV_DOCTOR_ROOFLINE_MIN_BYTES) {
        skip(out, "slow",
             "%s is %s: below 100 MiB, per-token overhead and not memory bandwidth sets its speed",
             s->model, bytes(weights, a, sizeof(a)));
        return true;
    }
    if (!n->have_hw) {
        skip(out, "slow", "the node's machine is unknown (hw = FILE in [node %s])", n->name);
        return true;
    }
    const struct drv_hw_device *gpu = first_gpu(&n->hw);
    bool on_gpu = gpu && m->size && m->size_vram * 10 >= m->size * 9;
    bool on_cpu = !gpu || m->size_vram * 10 <= m->size;
    if (n->kind == DRV_BENCH_KIND_LLAMA_SERVER || n->kind == DRV_BENCH_KIND_OPENAI)
        on_gpu = false, on_cpu = gpu == NULL;
    double bw;
    const char *where;
    double eff_lo, eff_hi;
    if (on_gpu && strcmp(gpu->type, "igpu") == 0 && n->hw.memory.bandwidth_gbps > 0) {
        bw = n->hw.memory.bandwidth_gbps, where = gpu->name, eff_lo = 0.4, eff_hi = 0.8;
    } else if (on_gpu) {
        skip(out, "slow", "%s's memory bandwidth is unknown to drover", gpu->name);
        return true;
    } else if (on_cpu) {
        if (n->hw.memory.bandwidth_gbps <= 0) {
            skip(out, "slow",
                 "the memory bandwidth of the node's machine was not measured (drover serve does "
                 "not; `drover hw --json` there, then hw = FILE in [node %s])",
                 n->name);
            return true;
        }
        bw = n->hw.memory.bandwidth_gbps, where = "the CPU", eff_lo = 0.3, eff_hi = 0.6;
    } else {
        skip(out, "slow", "%s is split between GPU and CPU", s->model);
        return true;
    }
    double roof = bw * 1e9 / (double)weights;
    double lo = roof * eff_lo, hi = roof * eff_hi, now = median(s->tg, s->n);
    if (now >= lo / 2)
        return true;
    struct drv_doctor_finding *f =
        add(out, "slow", DRV_DOCTOR_WARNING,
            "%s generates %.1f tok/s, under half of what %s allows (%.0f-%.0f tok/s)", s->model,
            now, where, lo, hi);
    ev(f, "generation: %.1f tok/s, median of %d probes of %d tokens (%s timings)", now, s->n,
       s->gen_tokens, s->source);
    ev(f,
       "roofline: %.1f GB/s / %s read per token = %.0f tok/s; llama.cpp reaches %.0f-%.0f %% "
       "of it (bandwidth: %s; size: GET /api/tags)",
       bw, bytes(weights, a, sizeof(a)), roof, eff_lo * 100, eff_hi * 100,
       n->bw_from[0] ? n->bw_from : n->hw_from);
    (void)b;
    if (on_cpu)
        fix(f,
            "threads = physical cores (see the threads check), nothing else busy on the CPU "
            "(top), no swap (free -h); confirm with drover bench %s",
            n->url);
    else
        fix(f, "nothing else on the GPU, its power and clock limits; confirm with drover bench %s",
            n->url);
    return true;
}

/* ---- regression: slower than the node's own baseline ---- */

static bool check_regression(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                             struct drv_doctor_result *out)
{
    (void)fleet;
    if (!usable(n))
        return false;
    const struct drv_doctor_speed *s = &n->speed;
    const struct drv_doctor_baseline *b = &n->baseline;
    if (s->state != 1) {
        skip(out, "regression", "speed not measured: %s", s->why[0] ? s->why : "no probe ran");
        return true;
    }
    if (b->state != 1 || b->n == 0) {
        skip(out, "regression", "%s: record one with drover bench %s --model %s --baseline",
             b->why[0] ? b->why : "no baseline", n->url, s->model);
        return true;
    }
    struct drv_bench_rep cur_reps[DRV_DOCTOR_MAX_REPS], base_reps[DRV_DOCTOR_MAX_BASE_REPS];
    for (int i = 0; i < s->n; i++)
        cur_reps[i] = (struct drv_bench_rep){
            .concurrency = 1, .pp_tps = -1, .tg_tps = s->tg[i], .ttft_ms = -1, .e2e_ms = -1};
    for (int i = 0; i < b->n; i++)
        base_reps[i] = (struct drv_bench_rep){
            .concurrency = 1, .pp_tps = -1, .tg_tps = b->tg[i], .ttft_ms = -1, .e2e_ms = -1};
    struct drv_bench_run cur = {.reps = cur_reps, .n_reps = s->n};
    struct drv_bench_run base = {.reps = base_reps, .n_reps = b->n};
    struct drv_buf verdict;
    drv_buf_init(&verdict, 4096);
    int worse = drv_bench_compare(&cur, &base, &verdict);
    drv_buf_release(&verdict);
    if (worse == 0)
        return true;
    double now = median(s->tg, s->n), then = median(b->tg, b->n), lo, hi, blo, bhi;
    range_of(s->tg, s->n, &lo, &hi);
    range_of(b->tg, b->n, &blo, &bhi);
    char date[32];
    date_of(b->ts, date, sizeof(date));
    struct drv_doctor_finding *f =
        add(out, "regression", DRV_DOCTOR_PROBLEM,
            "%s generates %.0f %% slower than its baseline (%.1f vs %.1f tok/s)", s->model,
            (then - now) / then * 100, now, then);
    ev(f,
       "now: tg %.1f tok/s, median of %d probes of %d tokens, range %.1f-%.1f (speed probe, "
       "%s timings)",
       now, s->n, s->gen_tokens, lo, hi, s->source);
    ev(f,
       "baseline: tg %.1f tok/s, median of %d repetitions, range %.1f-%.1f (drover bench of "
       "%s, %s in %s)",
       then, b->n, blo, bhi, date, b->target, b->db);
    ev(f, "every probe is slower than every baseline repetition and the medians differ by "
          "more than 20 %%: beyond the run-to-run spread");
    fix(f,
        "find what changed on %s since %s: engine version, threads, GPU use, other load "
        "(see the other findings);",
        n->name, date);
    fix(f,
        "when the change is meant, record a new baseline: drover bench %s --model %s "
        "--baseline",
        n->url, s->model);
    return true;
}

/* ---- engine versions across the fleet ---- */

/* Up to 3 numbers of a version: "0.12.3" -> 0,12,3; "b6123-abc" -> 6123. */
static int version_parts(const char *v, long *out)
{
    int n = 0;
    const char *p = v;
    while (*p && n < 3) {
        if (*p >= '0' && *p <= '9') {
            char *end;
            out[n++] = strtol(p, &end, 10);
            p = end;
            if (*p != '.')
                break;
            p++;
        } else {
            if (n > 0)
                break;
            p++;
        }
    }
    return n;
}

/* <0, 0, >0 like strcmp; *major: a is behind b by a major version (semver's
 * first number, or the second for 0.x). */
static int version_cmp(const char *a, const char *b, bool *major)
{
    long x[3] = {0}, y[3] = {0};
    int nx = version_parts(a, x), ny = version_parts(b, y);
    *major = false;
    if (nx == 0 || ny == 0)
        return 0;
    for (int i = 0; i < 3; i++) {
        if (x[i] != y[i]) {
            if (nx >= 2 && ny >= 2)
                *major = x[i] < y[i] && (i == 0 || (i == 1 && x[0] == 0));
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}

/* The version the check compares for a node; "" when unknown. */
static const char *engine_version(const struct drv_doctor_node *n, bool llama)
{
    if (llama)
        return n->kind == DRV_BENCH_KIND_DROVER && n->have_status ? n->status.llama : "";
    return n->version;
}

static bool check_versions(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                           struct drv_doctor_result *out)
{
    if (!usable(n) || n->kind == DRV_BENCH_KIND_OPENAI)
        return false;
    for (int pass = 0; pass < 2; pass++) {
        bool llama = pass == 1; /* drover: its own version, then its llama.cpp's */
        if (llama && n->kind != DRV_BENCH_KIND_DROVER)
            break;
        const char *mine = engine_version(n, llama);
        if (mine[0] == '\0')
            continue;
        const struct drv_doctor_node *newest = NULL;
        for (int i = 0; i < fleet->n; i++) {
            const struct drv_doctor_node *o = &fleet->nodes[i];
            bool major;
            if (o == n || !usable(o) || o->kind != n->kind)
                continue;
            const char *theirs = engine_version(o, llama);
            if (theirs[0] && version_cmp(mine, theirs, &major) < 0 &&
                (newest == NULL || version_cmp(engine_version(newest, llama), theirs, &major) < 0))
                newest = o;
        }
        if (newest == NULL)
            continue;
        const char *theirs = engine_version(newest, llama);
        bool major;
        version_cmp(mine, theirs, &major);
        const char *engine = llama ? "llama.cpp" : kind_word(n->kind);
        struct drv_doctor_finding *f =
            add(out, "engine-version", major ? DRV_DOCTOR_PROBLEM : DRV_DOCTOR_WARNING,
                "%s %s is %s behind %s on %s", engine, mine,
                major ? "a major version" : "a version", theirs, newest->name);
        for (int i = 0; i < fleet->n; i++) {
            const struct drv_doctor_node *o = &fleet->nodes[i];
            if (usable(o) && o->kind == n->kind && engine_version(o, llama)[0])
                ev(f, "%s: %s %s (%s)", o->name, engine, engine_version(o, llama),
                   llama                                    ? "GET /api/drover/status"
                   : n->kind == DRV_BENCH_KIND_LLAMA_SERVER ? "GET /props build_info"
                                                            : "GET /api/version");
        }
        if (major)
            ev(f, "an engine a major version behind misses the fixes and speed-ups of its "
                  "newer peers; nothing errors, it is just slower or wrong");
        switch (n->kind) {
        case DRV_BENCH_KIND_OLLAMA:
            fix(f,
                "on %s: curl -fsSL https://ollama.com/install.sh | sh (then ollama -v shows "
                "%s or newer)",
                n->name, theirs);
            break;
        case DRV_BENCH_KIND_LLAMA_SERVER:
            fix(f, "on %s: build llama.cpp %s or newer and restart llama-server", n->name, theirs);
            break;
        default:
            fix(f, "on %s: update drover (git pull && make build) and restart drover serve",
                n->name);
        }
    }
    return true;
}

/* ---- thinking budget ---- */

static bool check_thinking(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                           struct drv_doctor_result *out)
{
    (void)fleet;
    if (!usable(n))
        return false;
    const struct drv_doctor_think *t = &n->think;
    if (t->state != 1) {
        skip(out, "thinking-budget", "not probed: %s", t->why[0] ? t->why : "no probe ran");
        return true;
    }
    if (t->content_len > 0 || strcmp(t->done_reason, "length") != 0)
        return true;
    bool openai = strstr(t->route, "/v1/") != NULL;
    struct drv_doctor_finding *f =
        add(out, "thinking-budget", DRV_DOCTOR_PROBLEM,
            "%s spends a %d-token budget thinking and answers nothing", t->model, t->budget);
    ev(f,
       "%s {\"model\":\"%s\", a one-line question, \"%s\":%d, no thinking setting}: answer "
       "0 chars, reasoning %d chars, %s \"length\"%s",
       t->route, t->model, openai ? "max_tokens" : "options.num_predict", t->budget,
       t->thinking_len, openai ? "finish_reason" : "done_reason",
       t->eval_count >= 0 ? "" : ", tokens not reported");
    if (t->eval_count >= 0)
        ev(f, "%d tokens generated: the whole budget, all of it reasoning", t->eval_count);
    if (t->off_state == 1)
        ev(f, "the same with %s: answer %d chars, %s \"%s\"",
           openai ? "\"chat_template_kwargs\":{\"enable_thinking\":false}" : "\"think\":false",
           t->off_content_len, openai ? "finish_reason" : "done_reason", t->off_done_reason);
    ev(f, "clients that set a small budget pay for every token and get an empty answer");
    if (openai) {
        fix(f, "send \"chat_template_kwargs\": {\"enable_thinking\": false} in each request, or "
               "start llama-server with --reasoning-budget 0;");
    } else {
        fix(f, "send \"think\": false at the top level of each request, not inside \"options\":");
        fix(f, "{\"model\":\"%s\",\"think\":false,\"messages\":[...]}", t->model);
    }
    /* an INI key ends at ':', and the gateway matches the name before it too */
    fix(f, "or, for every client of a drover gateway: [think] %.*s = false in its drover.conf;",
        (int)strcspn(t->model, ":"), t->model);
    fix(f, "or give it room to think: a budget of 1024 tokens or more");
    return true;
}

/* ---- ROCm on AMD ---- */

static bool check_rocm(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                       struct drv_doctor_result *out)
{
    (void)fleet;
    if (!n->have_hw || n->hw.n_amd == 0 || (n->url[0] && !usable(n)))
        return false;
    char a[32], b[32];
    for (int i = 0; i < n->hw.n_amd; i++) {
        const struct drv_hw_amd *g = &n->hw.amd[i];
        if (g->rocblas_kernels != 0)
            continue;
        struct drv_doctor_finding *f =
            add(out, "rocm", DRV_DOCTOR_PROBLEM, "ROCm %s has no rocBLAS kernels for %s (%s)",
                g->rocm_version, g->gfx_target, g->apu ? "an APU" : "a discrete GPU");
        ev(f, "%s: %s, VRAM %s, GTT %s (%s)", g->card, g->gfx_target,
           bytes(g->vram_total_bytes, a, sizeof(a)), bytes(g->gtt_total_bytes, b, sizeof(b)),
           n->hw_from);
        ev(f,
           "rocBLAS of ROCm %s ships no TensileLibrary for %s: ROCm fails with \"Cannot read "
           "TensileLibrary.dat\" or falls back to the CPU",
           g->rocm_version, g->gfx_target);
        fix(f, "use the Vulkan backend: llama-server or drover on a llama.cpp built with "
               "-DGGML_VULKAN=ON (measured on a 780M: 6.89 tok/s with Vulkan vs 2.59 with a "
               "source-built rocBLAS)");
        fix(f, "do not set HSA_OVERRIDE_GFX_VERSION to borrow another target's kernels");
    }
    /* the probe's own sentence says what the override does; it knows the env */
    for (int i = 0; i < n->hw.n_problems; i++) {
        const char *p = n->hw.problems[i];
        if (strncmp(p, "HSA_OVERRIDE_GFX_VERSION=", 25) != 0)
            continue;
        char val[32] = "";
        sscanf(p + 25, "%31[^ ]", val);
        struct drv_doctor_finding *f =
            add(out, "rocm", DRV_DOCTOR_PROBLEM,
                "HSA_OVERRIDE_GFX_VERSION=%s runs another GPU's kernels on %s", val,
                n->hw.amd[0].gfx_target);
        ev(f, "%s (%s)", p, n->hw_from);
        fix(f, "unset HSA_OVERRIDE_GFX_VERSION in the service's environment (systemctl edit "
               "ollama, or the unit that starts the node) and use the Vulkan backend");
    }
    return true;
}

/* ---- memory ---- */

#define CHURN_MIN_LOADS 3 /* loads of one model before churn is called churn */

static bool check_memory(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                         struct drv_doctor_result *out)
{
    (void)fleet;
    if (n->url[0] && !usable(n))
        return false;
    char a[32], b[32], c[32];
    if (n->have_hw) {
        const struct drv_hw_memory *mem = &n->hw.memory;
        uint64_t swap_used = mem->swap_total_bytes > mem->swap_free_bytes
                                 ? mem->swap_total_bytes - mem->swap_free_bytes
                                 : 0;
        if (swap_used > (64ull << 20) && mem->available_bytes < mem->total_bytes / 10) {
            struct drv_doctor_finding *f =
                add(out, "memory", DRV_DOCTOR_PROBLEM, "swap in use with %s of %s RAM available",
                    bytes(mem->available_bytes, a, 32), bytes(mem->total_bytes, b, 32));
            ev(f, "swap used %s, RAM available %s of %s (%s)", bytes(swap_used, c, 32),
               bytes(mem->available_bytes, a, 32), bytes(mem->total_bytes, b, 32), n->hw_from);
            ev(f, "a model read from swap generates at disk speed");
            fix(f, "fewer or smaller models loaded at once (drover serve --max-loaded 1, "
                   "OLLAMA_MAX_LOADED_MODELS=1), or close what else uses the RAM");
        }
        uint64_t cpu_bytes = 0;
        for (int i = 0; i < n->n_models; i++)
            if (n->models[i].size > n->models[i].size_vram)
                cpu_bytes += n->models[i].size - n->models[i].size_vram;
        if (mem->total_bytes && cpu_bytes > mem->total_bytes / 10 * 9) {
            struct drv_doctor_finding *f =
                add(out, "memory", DRV_DOCTOR_PROBLEM,
                    "the loaded models need %s of system memory; the machine has %s",
                    bytes(cpu_bytes, a, 32), bytes(mem->total_bytes, b, 32));
            for (int i = 0; i < n->n_models; i++)
                ev(f, "%s: %s resident, %s of it on GPUs (GET /api/ps)", n->models[i].name,
                   bytes(n->models[i].size, a, 32), bytes(n->models[i].size_vram, b, 32));
            ev(f, "RAM %s (%s)", bytes(mem->total_bytes, a, 32), n->hw_from);
            fix(f, "a smaller context or quantization, or one model at a time (--max-loaded 1, "
                   "OLLAMA_MAX_LOADED_MODELS=1)");
        }
        const struct drv_hw_device *gpu = first_gpu(&n->hw);
        uint64_t vram = 0;
        for (int i = 0; i < n->n_models; i++)
            vram += n->models[i].size_vram;
        if (gpu && n->n_models > 1 && gpu->memory_total_bytes &&
            vram > gpu->memory_total_bytes / 10 * 9) {
            struct drv_doctor_finding *f =
                add(out, "memory", DRV_DOCTOR_WARNING, "%d models share %s's %s", n->n_models,
                    gpu->name, bytes(gpu->memory_total_bytes, a, 32));
            ev(f, "on the GPU: %s of %s (GET /api/ps, %s)", bytes(vram, b, 32),
               bytes(gpu->memory_total_bytes, a, 32), n->hw_from);
            fix(f, "one model on the GPU at a time: %s",
                n->kind == DRV_BENCH_KIND_DROVER ? "drover serve --max-loaded 1"
                                                 : "OLLAMA_MAX_LOADED_MODELS=1");
        }
    }
    if (n->url[0] == '\0')
        return true;
    /* keep_alive churn: a model unloaded after every request is loaded again by the next */
    if (n->kind == DRV_BENCH_KIND_DROVER && n->have_status && n->status.keep_alive_ms == 0) {
        struct drv_doctor_finding *f = add(out, "memory", DRV_DOCTOR_WARNING,
                                           "keep-alive 0: every request loads its model again");
        ev(f, "keep_alive_ms 0 (GET /api/drover/status)");
        fix(f, "drover serve --keep-alive 5m (or keep_alive = 5m under [serve]); clients that "
               "send keep_alive 0 do the same per request");
    } else if (n->kind == DRV_BENCH_KIND_OLLAMA) {
        skip(out, "memory",
             "keep-alive churn: Ollama reports neither its loads nor "
             "OLLAMA_KEEP_ALIVE");
    }
    /* a model loaded again and again: evicted between requests (keep_alive
     * too short, or more models than --max-loaded taking turns) */
    for (int i = 0; n->have_metrics && i < n->n_counts; i++) {
        const struct drv_doctor_counts *mc = &n->counts[i];
        if (mc->loads < CHURN_MIN_LOADS || mc->loads * 2 <= mc->requests)
            continue;
        struct drv_doctor_finding *f =
            add(out, "memory", DRV_DOCTOR_WARNING,
                "%s was loaded %llu times for %llu requests: it is unloaded between them",
                mc->model, (unsigned long long)mc->loads, (unsigned long long)mc->requests);
        ev(f, "drover_model_loads_total %llu, drover_requests_total %llu (GET /metrics)",
           (unsigned long long)mc->loads, (unsigned long long)mc->requests);
        fix(f,
            "keep it loaded longer: drover serve --keep-alive 30m (clients that send "
            "keep_alive 0 or a short one unload it themselves); if other models evict it, "
            "drover serve --max-loaded %d",
            n->have_status && n->status.max_loaded > 0 ? n->status.max_loaded + 1 : 3);
    }
    return true;
}

/* ---- context: prompts cut without an error ---- */

static bool check_context(const struct drv_doctor_fleet *fleet, const struct drv_doctor_node *n,
                          struct drv_doctor_result *out)
{
    (void)fleet;
    /* drover and llama-server refuse a prompt longer than the context (400)
     * unless the client asks to truncate; drover counts what it cut then */
    if (usable(n) && n->kind == DRV_BENCH_KIND_DROVER && n->have_metrics) {
        for (int i = 0; i < n->n_counts; i++) {
            const struct drv_doctor_counts *c = &n->counts[i];
            if (c->truncated == 0)
                continue;
            struct drv_doctor_finding *f = add(
                out, "context", DRV_DOCTOR_WARNING, "%llu prompt%s to %s %s cut to fit its context",
                (unsigned long long)c->truncated, c->truncated == 1 ? "" : "s", c->model,
                c->truncated == 1 ? "was" : "were");
            ev(f, "drover_prompts_truncated_total %llu of %llu requests (GET /metrics)",
               (unsigned long long)c->truncated, (unsigned long long)c->requests);
            if (n->have_status)
                ev(f,
                   "ctx %u tokens per slot (GET /api/drover/status; 0 = the model's, at "
                   "most 4096)",
                   n->status.ctx);
            fix(f, "a larger context: drover serve --ctx 8192 (or ctx = 8192 under [serve]), or "
                   "\"options\": {\"num_ctx\": 8192} in the requests");
        }
        return true;
    }
    if (!usable(n) || n->kind != DRV_BENCH_KIND_OLLAMA)
        return false;
    for (int i = 0; i < n->n_models; i++) {
        const struct drv_doctor_model *m = &n->models[i];
        if (m->context_length == 0 || m->context_length >= 8192)
            continue;
        struct drv_doctor_finding *f =
            add(out, "context", DRV_DOCTOR_HINT,
                "%s runs with a %u-token context: Ollama cuts longer prompts without an error",
                m->name, m->context_length);
        ev(f, "%s: context_length %u (GET /api/ps)%s", m->name, m->context_length,
           m->hp.n_ctx_train ? "" : "");
        if (m->hp.n_ctx_train)
            ev(f, "trained for %u tokens (POST /api/show)", m->hp.n_ctx_train);
        fix(f, "OLLAMA_CONTEXT_LENGTH=8192 (or more) in the service (systemctl edit ollama), or "
               "options.num_ctx per request");
    }
    return true;
}

/* ---- the table ---- */

const struct drv_doctor_check drv_doctor_checks[] = {
    {"reachable", "the node answers, like the kind it is configured as", check_reachable},
    {"gpu-unused", "a GPU is there but the loaded model sits in system memory", check_gpu_unused},
    {"gpu-backend", "a GPU is in the machine but llama.cpp has no backend for it",
     check_gpu_backend},
    {"threads", "more compute threads than physical cores", check_threads},
    {"thinking-budget", "a thinking model spends a short budget thinking and answers nothing",
     check_thinking},
    {"regression", "slower than the node's bench baseline beyond the run-to-run spread",
     check_regression},
    {"engine-version", "nodes of one engine at different versions", check_versions},
    {"partial-offload", "layers on the CPU although a smaller setting fits them all on the GPU",
     check_offload},
    {"slow", "generation under half of the roofline of the device that holds the weights",
     check_slow},
    {"rocm", "ROCm without kernels for the GPU, or HSA_OVERRIDE_GFX_VERSION at another ISA",
     check_rocm},
    {"memory", "models larger than RAM (swap), more than the GPU holds, keep-alive churn",
     check_memory},
    {"context", "prompts cut silently by a small context", check_context},
    {NULL, NULL, NULL},
};

const struct drv_doctor_check *drv_doctor_check_find(const char *id)
{
    for (const struct drv_doctor_check *c = drv_doctor_checks; c->id; c++)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

void drv_doctor_run_checks(const struct drv_doctor_fleet *fleet, int i,
                           struct drv_doctor_result *out)
{
    memset(out, 0, sizeof(*out));
    const struct drv_doctor_node *n = &fleet->nodes[i];
    for (const struct drv_doctor_check *c = drv_doctor_checks; c->id; c++) {
        /* a node that is not there or not understood: only that is said */
        if (n->url[0] && !usable(n) && strcmp(c->id, "reachable") != 0)
            continue;
        if (c->run(fleet, n, out))
            out->n_checked++;
    }
    /* most severe first; a stable insertion sort keeps the table's order within */
    for (int a = 1; a < out->n_findings; a++) {
        struct drv_doctor_finding t = out->findings[a];
        int b = a;
        for (; b > 0 && out->findings[b - 1].severity > t.severity; b--)
            out->findings[b] = out->findings[b - 1];
        out->findings[b] = t;
    }
}
