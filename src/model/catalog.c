/* catalog — shapes of popular models, and explicit SHAPE specs.
 * Numbers are from /work/shared/MODELS.md (config.json of each model). rope theta
 * and the RMS epsilon only change numerics, not speed; where MODELS.md gives none
 * they are the family's usual config values. */
#include "model/model.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QWEN2(nm, l, e, h, kv, ff, voc, ctx, theta, tie)                                           \
    {                                                                                              \
        .name = nm, .arch = "qwen2", .n_layer = l, .n_embd = e, .n_head = h, .n_head_kv = kv,      \
        .head_dim = (e) / (h), .n_ff = ff, .n_vocab = voc, .n_ctx_train = ctx,                     \
        .rope_theta = theta, .rms_eps = 1e-6f, .tied = tie                                         \
    }
#define QWEN3(nm, l, e, h, kv, ff, tie)                                                            \
    {                                                                                              \
        .name = nm, .arch = "qwen3", .n_layer = l, .n_embd = e, .n_head = h, .n_head_kv = kv,      \
        .head_dim = 128, .n_ff = ff, .n_vocab = 151936, .n_ctx_train = 40960, .rope_theta = 1e6f,  \
        .rms_eps = 1e-6f, .tied = tie                                                              \
    }
#define LLAMA(nm, l, e, h, kv, hd, ff, voc, ctx, theta, tie)                                       \
    {                                                                                              \
        .name = nm, .arch = "llama", .n_layer = l, .n_embd = e, .n_head = h, .n_head_kv = kv,      \
        .head_dim = hd, .n_ff = ff, .n_vocab = voc, .n_ctx_train = ctx, .rope_theta = theta,       \
        .rms_eps = 1e-5f, .tied = tie                                                              \
    }

#define QWEN3MOE(nm, l, e, h, kv, ff, exp_ff, n_exp, used)                                         \
    {                                                                                              \
        .name = nm, .arch = "qwen3moe", .n_layer = l, .n_embd = e, .n_head = h, .n_head_kv = kv,   \
        .head_dim = 128, .n_ff = ff, .n_vocab = 151936, .n_ctx_train = 40960, .rope_theta = 1e6f,  \
        .rms_eps = 1e-6f, .tied = false, .n_expert = n_exp, .n_expert_used = used,                 \
        .n_ff_exp = exp_ff                                                                         \
    }

#define GEMMA3(nm, l, e, h, kv, hd, ff, voc, ctx, swa)                                             \
    {                                                                                              \
        .name = nm, .arch = "gemma3", .n_layer = l, .n_embd = e, .n_head = h, .n_head_kv = kv,     \
        .head_dim = hd, .n_ff = ff, .n_vocab = voc, .n_ctx_train = ctx, .rope_theta = 1e6f,        \
        .rms_eps = 1e-6f, .tied = true, .n_swa = swa                                               \
    }

/* Gemma 4 with experts: sliding layers kv x hd, global layers gkv x ghd using K
 * as V; every layer runs a dense FFN of ff beside used of n_exp experts of
 * exp_ff. rope_theta is the global layers' (synth writes the sliding ones'
 * 10000 as rope.freq_base_swa). */
#define GEMMA4(nm, l, e, h, kv, hd, gkv, ghd, ff, exp_ff, n_exp, used, voc, ctx, swa)              \
    {                                                                                              \
        .name = nm, .arch = "gemma4", .n_layer = l, .n_embd = e, .n_head = h, .n_head_kv = kv,     \
        .head_dim = hd, .n_ff = ff, .n_vocab = voc, .n_ctx_train = ctx, .rope_theta = 1e6f,        \
        .rms_eps = 1e-6f, .tied = true, .n_expert = n_exp, .n_expert_used = used,                  \
        .n_ff_exp = exp_ff, .n_swa = swa, .n_head_kv_global = gkv, .head_dim_global = ghd          \
    }

#define PHI3(nm, l, e, h, kv, ff, voc, ctx, theta, rot, tie)                                       \
    {                                                                                              \
        .name = nm, .arch = "phi3", .n_layer = l, .n_embd = e, .n_head = h, .n_head_kv = kv,       \
        .head_dim = (e) / (h), .n_ff = ff, .n_vocab = voc, .n_ctx_train = ctx,                     \
        .rope_theta = theta, .rms_eps = 1e-5f, .tied = tie, .n_rot = rot                           \
    }

static const struct drv_model_shape catalog[] = {
    QWEN2("qwen2.5:0.5b", 24, 896, 14, 2, 4864, 151936, 32768, 1e6f, true),
    QWEN2("qwen2.5:1.5b", 28, 1536, 12, 2, 8960, 151936, 32768, 1e6f, true),
    QWEN2("qwen2.5:3b", 36, 2048, 16, 2, 11008, 151936, 32768, 1e6f, true),
    QWEN2("qwen2.5:7b", 28, 3584, 28, 4, 18944, 152064, 32768, 1e6f, false),
    QWEN2("qwen2.5:14b", 48, 5120, 40, 8, 13824, 152064, 32768, 1e6f, false),
    QWEN2("qwen2.5:32b", 64, 5120, 40, 8, 27648, 152064, 32768, 1e6f, false),
    QWEN2("deepseek-r1:7b", 28, 3584, 28, 4, 18944, 152064, 131072, 1e4f, false),
    QWEN3("qwen3:0.6b", 28, 1024, 16, 8, 3072, true),
    QWEN3("qwen3:1.7b", 28, 2048, 16, 8, 6144, true),
    QWEN3("qwen3:4b", 36, 2560, 32, 8, 9728, true),
    QWEN3("qwen3:8b", 36, 4096, 32, 8, 12288, false),
    QWEN3("qwen3:14b", 40, 5120, 40, 8, 17408, false),
    QWEN3("qwen3:32b", 64, 5120, 64, 8, 25600, false),
    QWEN3MOE("qwen3:30b", 48, 2048, 32, 4, 6144, 768, 128, 8), /* Qwen3-30B-A3B */
    LLAMA("llama3.2:1b", 16, 2048, 32, 8, 64, 8192, 128256, 131072, 5e5f, true),
    LLAMA("llama3.2:3b", 28, 3072, 24, 8, 128, 8192, 128256, 131072, 5e5f, true),
    LLAMA("llama3.1:8b", 32, 4096, 32, 8, 128, 14336, 128256, 131072, 5e5f, false),
    LLAMA("llama3.1:70b", 80, 8192, 64, 8, 128, 28672, 128256, 131072, 5e5f, false),
    LLAMA("deepseek-r1:8b-llama-distill", 32, 4096, 32, 8, 128, 14336, 128256, 131072, 5e5f, false),
    PHI3("phi4-mini:3.8b", 32, 3072, 24, 8, 8192, 200064, 131072, 1e4f, 96, true),
    PHI3("phi4:14b", 40, 5120, 40, 10, 17920, 100352, 16384, 2.5e5f, 128, false),
    LLAMA("mistral:7b", 32, 4096, 32, 8, 128, 14336, 32768, 32768, 1e6f, false),
    LLAMA("mistral-nemo:12b", 40, 5120, 32, 8, 128, 14336, 131072, 1024000, 1e6f, false),
    /* text weights only: Ollama's 4b/12b/27b files also hold a 417M vision tower */
    GEMMA3("gemma3:1b", 26, 1152, 4, 1, 256, 6912, 262144, 32768, 512),
    GEMMA3("gemma3:4b", 34, 2560, 8, 4, 256, 10240, 262208, 131072, 1024),
    GEMMA3("gemma3:12b", 48, 3840, 16, 8, 256, 15360, 262208, 131072, 1024),
    GEMMA3("gemma3:27b", 62, 5376, 32, 16, 128, 21504, 262208, 131072, 1024),
    /* gemma-4-26B-A4B: 25.2B, 3.8B active; text weights only (Ollama's 18 GB
     * file also holds a ~550M vision encoder) */
    GEMMA4("gemma4:26b", 30, 2816, 16, 8, 256, 2, 512, 2112, 704, 128, 8, 262144, 262144, 1024),
    LLAMA("smollm2:135m", 30, 576, 9, 3, 64, 1536, 49152, 8192, 1e5f, true),
    LLAMA("smollm2:360m", 32, 960, 15, 5, 64, 2560, 49152, 8192, 1e5f, true),
    LLAMA("smollm2:1.7b", 24, 2048, 32, 32, 64, 8192, 49152, 8192, 1.3e5f, true),
    LLAMA("tinyllama:1.1b", 22, 2048, 32, 4, 64, 5632, 32000, 2048, 1e4f, false),
};

#define N_CATALOG ((int)(sizeof(catalog) / sizeof(catalog[0])))

int drv_catalog_count(void)
{
    return N_CATALOG;
}

const struct drv_model_shape *drv_catalog_at(int i)
{
    return i >= 0 && i < N_CATALOG ? &catalog[i] : NULL;
}

const struct drv_model_shape *drv_catalog_find(const char *name)
{
    for (int i = 0; i < N_CATALOG; i++)
        if (strcasecmp(catalog[i].name, name) == 0)
            return &catalog[i];
    return NULL;
}

/* Levenshtein distance, case-insensitive, of strings cut at 63 bytes. */
static int edit_distance(const char *a, const char *b)
{
    int row[64];
    int n = (int)strnlen(a, 63), m = (int)strnlen(b, 63);
    for (int j = 0; j <= m; j++)
        row[j] = j;
    for (int i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= m; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

/* Length of the family part ("qwen2.5" of "qwen2.5:3b"). */
static size_t family_len(const char *s)
{
    const char *c = strchr(s, ':');
    return c ? (size_t)(c - s) : strlen(s);
}

int drv_catalog_suggest(const char *name, const char **out, int max)
{
    int score[N_CATALOG];
    size_t fl = family_len(name);
    for (int i = 0; i < N_CATALOG; i++) {
        const char *c = catalog[i].name;
        int d = edit_distance(name, c);
        /* same family ("qwen3:9b" -> every qwen3), or the name is a prefix */
        bool family = fl > 0 && fl == family_len(c) && strncasecmp(name, c, fl) == 0;
        bool prefix = name[0] && strncasecmp(name, c, strlen(name)) == 0;
        if (family || prefix)
            score[i] = d;
        else if (d <= 3 || ((int)strlen(name) > 4 && d <= (int)strlen(name) / 3))
            score[i] = 100 + d;
        else
            score[i] = -1;
    }
    int n = 0;
    while (n < max) {
        int best = -1;
        for (int i = 0; i < N_CATALOG; i++)
            if (score[i] >= 0 && (best < 0 || score[i] < score[best]))
                best = i;
        if (best < 0)
            break;
        out[n++] = catalog[best].name;
        score[best] = -1;
    }
    return n;
}

/* ---- explicit dims ---- */

#define ARCH_LIST "llama, qwen2, qwen3, qwen3moe, gemma3, gemma4 or phi3"

static bool arch_supported(const char *arch)
{
    return strcmp(arch, "llama") == 0 || strcmp(arch, "qwen2") == 0 || strcmp(arch, "qwen3") == 0 ||
           strcmp(arch, "qwen3moe") == 0 || strcmp(arch, "gemma3") == 0 ||
           strcmp(arch, "gemma4") == 0 || strcmp(arch, "phi3") == 0;
}

/* architectures whose FFN is a mixture of experts, and those with a window */
static bool arch_moe(const char *arch)
{
    return strcmp(arch, "qwen3moe") == 0 || strcmp(arch, "gemma4") == 0;
}

static bool arch_swa(const char *arch)
{
    return strcmp(arch, "gemma3") == 0 || strcmp(arch, "gemma4") == 0;
}

bool drv_shape_layer_is_swa(const struct drv_model_shape *s, uint32_t il)
{
    return arch_swa(s->arch) && s->n_swa > 0 && drv_hparams_arch_layer_is_swa(s->arch, il);
}

static int parse_u32(const char *key, const char *v, size_t vlen, uint32_t *out,
                     struct drv_err *err)
{
    char buf[32];
    if (vlen == 0 || vlen >= sizeof(buf))
        return drv_err_set(err, DRV_EINVAL, "bad value for '%s' in SHAPE", key);
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    for (size_t i = 0; i < vlen; i++)
        if (!isdigit((unsigned char)buf[i]))
            return drv_err_set(err, DRV_EINVAL, "'%s=%s' in SHAPE: not a whole number", key, buf);
    errno = 0;
    unsigned long long x = strtoull(buf, NULL, 10);
    if (errno || x > UINT32_MAX)
        return drv_err_set(err, DRV_EINVAL, "'%s=%s' in SHAPE: too large", key, buf);
    *out = (uint32_t)x;
    return 0;
}

static int parse_float(const char *key, const char *v, size_t vlen, float *out, struct drv_err *err)
{
    char buf[32];
    if (vlen == 0 || vlen >= sizeof(buf))
        return drv_err_set(err, DRV_EINVAL, "bad value for '%s' in SHAPE", key);
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    char *end;
    errno = 0;
    double x = strtod(buf, &end);
    if (errno || *end || !(x > 0) || x > 1e12)
        return drv_err_set(err, DRV_EINVAL, "'%s=%s' in SHAPE: not a positive number", key, buf);
    *out = (float)x;
    return 0;
}

int drv_shape_parse(const char *spec, struct drv_model_shape *out, struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *colon = strchr(spec, ':');
    if (colon == NULL || colon == spec)
        return drv_err_set(err, DRV_EINVAL,
                           "SHAPE must look like ARCH:layers=N,embd=N,heads=N,kv_heads=N,ff=N,"
                           "vocab=N");
    size_t alen = (size_t)(colon - spec);
    if (alen >= sizeof(out->arch))
        return drv_err_set(err, DRV_EINVAL, "unknown architecture in SHAPE (want " ARCH_LIST ")");
    memcpy(out->arch, spec, alen);
    out->arch[alen] = '\0';
    if (!arch_supported(out->arch))
        return drv_err_set(err, DRV_EINVAL,
                           "unknown architecture '%s' in SHAPE (want " ARCH_LIST ")", out->arch);
    bool is_llama = strcmp(out->arch, "llama") == 0;
    if (arch_swa(out->arch))
        out->n_swa = 1024; /* gemma3's from 4B up, gemma4's */
    out->rope_theta = is_llama ? 10000.0f : 1e6f;
    out->rms_eps = is_llama ? 1e-5f : 1e-6f;
    out->n_ctx_train = 4096;
    int tied = -1;

    const char *p = colon + 1;
    unsigned seen = 0;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq == NULL)
            return drv_err_set(err, DRV_EINVAL, "'%.*s' in SHAPE is not key=value", (int)len, p);
        size_t klen = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vlen = len - klen - 1;
        static const char *const keys[] = {"layers",
                                           "embd",
                                           "heads",
                                           "kv_heads",
                                           "ff",
                                           "vocab",
                                           "head_dim",
                                           "ctx",
                                           "tied",
                                           "rope_theta",
                                           "eps",
                                           "experts",
                                           "experts_used",
                                           "expert_ff",
                                           "swa",
                                           "rot",
                                           "global_kv_heads",
                                           "global_head_dim"};
        int k = -1;
        for (int i = 0; i < (int)(sizeof(keys) / sizeof(keys[0])); i++)
            if (strlen(keys[i]) == klen && strncmp(keys[i], p, klen) == 0)
                k = i;
        if (k < 0)
            return drv_err_set(err, DRV_EINVAL,
                               "unknown key '%.*s' in SHAPE (keys: layers, embd, heads, "
                               "kv_heads, ff, vocab, head_dim, ctx, tied, rope_theta, eps, "
                               "experts, experts_used, expert_ff, swa, rot, global_kv_heads, "
                               "global_head_dim)",
                               (int)klen, p);
        if (seen & (1u << k))
            return drv_err_set(err, DRV_EINVAL, "'%s' given twice in SHAPE", keys[k]);
        seen |= 1u << k;
        uint32_t u = 0;
        int rc = 0;
        switch (k) {
        case 0:
            rc = parse_u32(keys[k], v, vlen, &out->n_layer, err);
            break;
        case 1:
            rc = parse_u32(keys[k], v, vlen, &out->n_embd, err);
            break;
        case 2:
            rc = parse_u32(keys[k], v, vlen, &out->n_head, err);
            break;
        case 3:
            rc = parse_u32(keys[k], v, vlen, &out->n_head_kv, err);
            break;
        case 4:
            rc = parse_u32(keys[k], v, vlen, &out->n_ff, err);
            break;
        case 5:
            rc = parse_u32(keys[k], v, vlen, &out->n_vocab, err);
            break;
        case 6:
            rc = parse_u32(keys[k], v, vlen, &out->head_dim, err);
            break;
        case 7:
            rc = parse_u32(keys[k], v, vlen, &out->n_ctx_train, err);
            break;
        case 8:
            rc = parse_u32(keys[k], v, vlen, &u, err);
            if (rc == 0 && u > 1)
                rc = drv_err_set(err, DRV_EINVAL, "'tied' in SHAPE must be 0 or 1");
            tied = (int)u;
            break;
        case 9:
            rc = parse_float(keys[k], v, vlen, &out->rope_theta, err);
            break;
        case 10:
            rc = parse_float(keys[k], v, vlen, &out->rms_eps, err);
            break;
        case 11:
            rc = parse_u32(keys[k], v, vlen, &out->n_expert, err);
            break;
        case 12:
            rc = parse_u32(keys[k], v, vlen, &out->n_expert_used, err);
            break;
        case 13:
            rc = parse_u32(keys[k], v, vlen, &out->n_ff_exp, err);
            break;
        case 14:
            rc = parse_u32(keys[k], v, vlen, &out->n_swa, err);
            break;
        case 15:
            rc = parse_u32(keys[k], v, vlen, &out->n_rot, err);
            break;
        case 16:
            rc = parse_u32(keys[k], v, vlen, &out->n_head_kv_global, err);
            break;
        default:
            rc = parse_u32(keys[k], v, vlen, &out->head_dim_global, err);
            break;
        }
        if (rc)
            return rc;
        p = end ? end + 1 : p + len;
        if (end && *p == '\0')
            return drv_err_set(err, DRV_EINVAL, "SHAPE ends with ','");
    }
    static const char *const required[] = {"layers", "embd", "heads", "kv_heads", "ff", "vocab"};
    for (int i = 0; i < 6; i++)
        if (!(seen & (1u << i)))
            return drv_err_set(err, DRV_EINVAL, "SHAPE lacks '%s='", required[i]);
    if (!(seen & (1u << 6)) && out->n_head) {
        if (out->n_embd % out->n_head != 0)
            return drv_err_set(err, DRV_EINVAL,
                               "embd (%u) is not a multiple of heads (%u); give head_dim=",
                               out->n_embd, out->n_head);
        out->head_dim = out->n_embd / out->n_head;
    }
    if (strcmp(out->arch, "gemma4") == 0) {
        /* unless given, the global layers are shaped like the sliding ones */
        if (out->n_head_kv_global == 0)
            out->n_head_kv_global = out->n_head_kv;
        if (out->head_dim_global == 0)
            out->head_dim_global = out->head_dim;
    }
    out->tied = tied < 0 ? strcmp(out->arch, "gemma4") == 0 : tied == 1;
    return drv_shape_check(out, err);
}

int drv_shape_check(const struct drv_model_shape *s, struct drv_err *err)
{
    if (!arch_supported(s->arch))
        return drv_err_set(err, DRV_EINVAL,
                           "architecture '%s' is not supported (want " ARCH_LIST ")", s->arch);
    if (s->n_layer < 1 || s->n_layer > 512)
        return drv_err_set(err, DRV_EINVAL, "layers must be 1..512");
    if (s->n_embd < 1 || s->n_embd > 65536)
        return drv_err_set(err, DRV_EINVAL, "embd must be 1..65536");
    if (s->n_head < 1 || s->n_head > 1024)
        return drv_err_set(err, DRV_EINVAL, "heads must be 1..1024");
    if (s->n_head_kv < 1 || s->n_head % s->n_head_kv != 0)
        return drv_err_set(err, DRV_EINVAL, "kv_heads must divide heads (%u)", s->n_head);
    if (s->head_dim < 2 || s->head_dim % 2 != 0 || s->head_dim > 1024)
        return drv_err_set(err, DRV_EINVAL, "head_dim must be even and 2..1024 (got %u)",
                           s->head_dim);
    if (strcmp(s->arch, "qwen2") == 0 && s->head_dim * s->n_head != s->n_embd)
        return drv_err_set(err, DRV_EINVAL, "qwen2 needs head_dim x heads = embd (%u x %u != %u)",
                           s->head_dim, s->n_head, s->n_embd);
    if (s->n_ff < 1 || s->n_ff > 262144)
        return drv_err_set(err, DRV_EINVAL, "ff must be 1..262144");
    /* the synthetic tokenizer needs <unk> <s> </s>, 256 bytes and one piece */
    if (s->n_vocab < 260 || s->n_vocab > 1048576)
        return drv_err_set(err, DRV_EINVAL, "vocab must be 260..1048576 (got %u)", s->n_vocab);
    if (s->n_ctx_train < 1)
        return drv_err_set(err, DRV_EINVAL, "ctx must be at least 1");
    if (!(s->rope_theta > 0) || !(s->rms_eps > 0))
        return drv_err_set(err, DRV_EINVAL, "rope_theta and eps must be positive");
    bool moe = arch_moe(s->arch);
    if (moe && (s->n_expert < 1 || s->n_expert > 1024 || s->n_expert_used < 1 ||
                s->n_expert_used > s->n_expert || s->n_ff_exp < 1 || s->n_ff_exp > 262144))
        return drv_err_set(err, DRV_EINVAL,
                           "%s needs experts=1..1024, experts_used=1..experts and "
                           "expert_ff=1..262144",
                           s->arch);
    if (!moe && (s->n_expert || s->n_expert_used || s->n_ff_exp))
        return drv_err_set(err, DRV_EINVAL,
                           "experts are for the qwen3moe and gemma4 architectures only");
    bool swa = arch_swa(s->arch);
    if (swa && (s->n_swa < 1 || s->n_swa > (1u << 24)))
        return drv_err_set(err, DRV_EINVAL, "%s needs a sliding window: swa=1..16777216", s->arch);
    if (!swa && s->n_swa)
        return drv_err_set(err, DRV_EINVAL, "swa is for the gemma3 and gemma4 architectures only");
    if (s->n_rot % 2 != 0 || s->n_rot > s->head_dim)
        return drv_err_set(err, DRV_EINVAL, "rot must be even and at most head_dim (%u)",
                           s->head_dim);
    bool gemma4 = strcmp(s->arch, "gemma4") == 0;
    if (!gemma4 && (s->n_head_kv_global || s->head_dim_global))
        return drv_err_set(err, DRV_EINVAL,
                           "global_kv_heads and global_head_dim are for the gemma4 architecture "
                           "only");
    if (gemma4) {
        /* llama.cpp's gemma4 KV cache asserts at least 2 layers with a cache */
        if (s->n_layer < 2)
            return drv_err_set(err, DRV_EINVAL, "gemma4 needs at least 2 layers");
        if (s->n_head_kv_global < 1 || s->n_head % s->n_head_kv_global != 0)
            return drv_err_set(err, DRV_EINVAL, "global_kv_heads must divide heads (%u)",
                               s->n_head);
        if (s->head_dim_global < 2 || s->head_dim_global % 2 != 0 || s->head_dim_global > 1024)
            return drv_err_set(err, DRV_EINVAL, "global_head_dim must be even and 2..1024 (got %u)",
                               s->head_dim_global);
    }
    return 0;
}

int drv_shape_resolve(const char *name_or_spec, struct drv_model_shape *out, struct drv_err *err)
{
    if (strchr(name_or_spec, '='))
        return drv_shape_parse(name_or_spec, out, err);
    const struct drv_model_shape *s = drv_catalog_find(name_or_spec);
    if (s) {
        *out = *s;
        return 0;
    }
    const char *near[5];
    int n = drv_catalog_suggest(name_or_spec, near, 5);
    char list[320] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", near[i]);
    if (n)
        return drv_err_set(err, DRV_ENOENT, "unknown model '%s'; did you mean: %s?", name_or_spec,
                           list);
    return drv_err_set(err, DRV_ENOENT, "unknown model '%s' (see 'drover synth --list')",
                       name_or_spec);
}

/* gemma4's block il: attention shaped by the layer's kind (a global layer has
 * no attn_v), 8 norms and scales of n_embd, the dense FFN, the router and the
 * experts with their output scales, and the layer's output scale */
static uint64_t gemma4_layer_params(const struct drv_model_shape *s, uint32_t il)
{
    bool swa = drv_shape_layer_is_swa(s, il);
    uint64_t e = s->n_embd, hd = swa ? s->head_dim : s->head_dim_global;
    uint64_t q = hd * s->n_head, kv = hd * (swa ? s->n_head_kv : s->n_head_kv_global);
    uint64_t nx = s->n_expert;
    uint64_t attn = e * q + e * kv * (swa ? 2 : 1) + q * e + 2 * hd;
    uint64_t ffn = 3 * e * s->n_ff + e * nx + nx * 3 * e * s->n_ff_exp + nx;
    return attn + 8 * e + ffn + 1;
}

uint64_t drv_shape_params(const struct drv_model_shape *s)
{
    uint64_t e = s->n_embd, ff = s->n_ff, voc = s->n_vocab;
    if (strcmp(s->arch, "gemma4") == 0) {
        uint64_t sum = voc * e * (s->tied ? 1 : 2) + e;
        bool global = false;
        for (uint32_t il = 0; il < s->n_layer; il++) {
            sum += gemma4_layer_params(s, il);
            global = global || !drv_shape_layer_is_swa(s, il);
        }
        return sum + (global ? s->head_dim_global / 2 : 0); /* rope_freqs */
    }
    uint64_t q = (uint64_t)s->head_dim * s->n_head, kv = (uint64_t)s->head_dim * s->n_head_kv;
    uint64_t ffn = s->n_expert ? (uint64_t)s->n_expert * (3 * e * s->n_ff_exp + e) /* + router */
                               : 3 * e * ff;
    uint64_t layer = 2 * e + e * q + 2 * e * kv + q * e + ffn;
    if (strcmp(s->arch, "qwen2") == 0)
        layer += q + 2 * kv;
    if (strcmp(s->arch, "qwen3") == 0 || strcmp(s->arch, "qwen3moe") == 0 ||
        strcmp(s->arch, "gemma3") == 0)
        layer += 2 * (uint64_t)s->head_dim;
    if (strcmp(s->arch, "gemma3") == 0)
        layer += 2 * e; /* post-attention and post-FFN norms */
    return voc * e * (s->tied ? 1 : 2) + e + layer * s->n_layer;
}
