/* profile: struct drv_hw <-> the JSON hardware profile documented in probe.h.
 * The parser takes files from other machines: every field is checked and a bad
 * one is named. */
#include "probe/probe_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_MAX_BYTES (1u << 20)

static json_t *u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

char *drv_probe_profile_dump(const struct drv_hw *hw)
{
    json_t *o = json_object();
    json_object_set_new(o, "version", json_integer(1));

    const struct drv_hw_cpu *c = &hw->cpu;
    json_t *feat = json_array();
    for (int i = 0; i < c->n_features; i++)
        json_array_append_new(feat, json_string(c->features[i]));
    json_object_set_new(o, "cpu",
                        json_pack("{s:s, s:i, s:i, s:i, s:o, s:o, s:o}", "model", c->model,
                                  "sockets", c->sockets, "cores", c->cores, "threads", c->threads,
                                  "features", feat, "l2_bytes", u64(c->l2_bytes), "l3_bytes",
                                  u64(c->l3_bytes)));

    const struct drv_hw_memory *m = &hw->memory;
    json_object_set_new(
        o, "memory",
        json_pack("{s:o, s:o, s:o, s:o, s:o}", "total_bytes", u64(m->total_bytes),
                  "available_bytes", u64(m->available_bytes), "swap_total_bytes",
                  u64(m->swap_total_bytes), "swap_free_bytes", u64(m->swap_free_bytes),
                  "bandwidth_gbps",
                  m->bandwidth_gbps >= 0 ? json_real(m->bandwidth_gbps) : json_null()));

    json_t *devs = json_array();
    for (int i = 0; i < hw->n_devices; i++) {
        const struct drv_hw_device *d = &hw->devices[i];
        json_array_append_new(
            devs, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:b}", "name", d->name, "description",
                            d->description, "type", d->type, "memory_total_bytes",
                            u64(d->memory_total_bytes), "memory_free_bytes",
                            u64(d->memory_free_bytes), "bandwidth_gbps",
                            d->bandwidth_gbps > 0 ? json_real(d->bandwidth_gbps) : json_null(),
                            "bandwidth_measured", d->bandwidth_gbps > 0 && d->bandwidth_measured));
    }
    json_object_set_new(o, "devices", devs);

    json_t *amd = json_array();
    for (int i = 0; i < hw->n_amd; i++) {
        const struct drv_hw_amd *a = &hw->amd[i];
        json_array_append_new(
            amd,
            json_pack("{s:s, s:s, s:o, s:o, s:b, s:s, s:o}", "card", a->card, "gfx_target",
                      a->gfx_target, "vram_total_bytes", u64(a->vram_total_bytes),
                      "gtt_total_bytes", u64(a->gtt_total_bytes), "apu", a->apu, "rocm_version",
                      a->rocm_version, "rocblas_kernels",
                      a->rocblas_kernels < 0 ? json_null() : json_boolean(a->rocblas_kernels)));
    }
    json_object_set_new(o, "amd", amd);

    json_t *nv = json_array();
    for (int i = 0; i < hw->n_nvidia; i++) {
        const struct drv_hw_nvidia *g = &hw->nvidia[i];
        json_array_append_new(nv, json_pack("{s:s, s:o, s:o, s:s, s:s}", "name", g->name,
                                            "memory_total_bytes", u64(g->memory_total_bytes),
                                            "memory_free_bytes", u64(g->memory_free_bytes),
                                            "driver", g->driver, "compute_cap", g->compute_cap));
    }
    json_object_set_new(o, "nvidia", nv);

    json_t *pr = json_array();
    for (int i = 0; i < hw->n_problems; i++)
        json_array_append_new(pr, json_string(hw->problems[i]));
    json_object_set_new(o, "problems", pr);

    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}

/* ---- parsing: each getter names the field it rejects ---- */

static json_t *field(json_t *obj, const char *path, const char *key, struct drv_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        drv_err_set(err, DRV_EINVAL, "%s%s: missing", path, key);
    return v;
}

static int get_str(json_t *obj, const char *path, const char *key, char *out, size_t size,
                   struct drv_err *err)
{
    json_t *v = field(obj, path, key, err);
    if (v == NULL)
        return DRV_EINVAL;
    if (!json_is_string(v))
        return drv_err_set(err, DRV_EINVAL, "%s%s: must be a string", path, key);
    if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
        return drv_err_set(err, DRV_EINVAL, "%s%s: longer than %zu bytes or has NUL", path, key,
                           size - 1);
    drv_strlcpy(out, json_string_value(v), size);
    return 0;
}

static int get_int(json_t *obj, const char *path, const char *key, long long min, long long max,
                   long long *out, struct drv_err *err)
{
    json_t *v = field(obj, path, key, err);
    if (v == NULL)
        return DRV_EINVAL;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return drv_err_set(err, DRV_EINVAL, "%s%s: must be an integer from %lld to %lld", path, key,
                           min, max);
    *out = json_integer_value(v);
    return 0;
}

static int get_bytes(json_t *obj, const char *path, const char *key, uint64_t *out,
                     struct drv_err *err)
{
    long long v;
    int rc = get_int(obj, path, key, 0, INT64_MAX, &v, err);
    if (rc == 0)
        *out = (uint64_t)v;
    return rc;
}

static int get_count(json_t *obj, const char *path, const char *key, int min, int *out,
                     struct drv_err *err)
{
    long long v;
    int rc = get_int(obj, path, key, min, 1 << 20, &v, err);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static json_t *get_typed(json_t *obj, const char *path, const char *key, bool array, bool optional,
                         struct drv_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (!optional)
            drv_err_set(err, DRV_EINVAL, "%s%s: missing", path, key);
        return NULL;
    }
    if (array ? !json_is_array(v) : !json_is_object(v)) {
        drv_err_set(err, DRV_EINVAL, "%s%s: must be an %s", path, key, array ? "array" : "object");
        return NULL;
    }
    return v;
}

static int parse_cpu(json_t *o, struct drv_hw_cpu *c, struct drv_err *err)
{
    const char *p = "cpu.";
    if (get_str(o, p, "model", c->model, sizeof(c->model), err) ||
        get_count(o, p, "sockets", 1, &c->sockets, err) ||
        get_count(o, p, "cores", 1, &c->cores, err) ||
        get_count(o, p, "threads", 1, &c->threads, err) ||
        get_bytes(o, p, "l2_bytes", &c->l2_bytes, err) ||
        get_bytes(o, p, "l3_bytes", &c->l3_bytes, err))
        return DRV_EINVAL;
    if (c->threads < c->cores)
        return drv_err_set(err, DRV_EINVAL, "cpu.threads: fewer than cpu.cores");
    json_t *f = get_typed(o, p, "features", true, false, err);
    if (f == NULL)
        return DRV_EINVAL;
    if (json_array_size(f) > DRV_HW_MAX_FEATURES)
        return drv_err_set(err, DRV_EINVAL, "cpu.features: more than %d entries",
                           DRV_HW_MAX_FEATURES);
    for (size_t i = 0; i < json_array_size(f); i++) {
        json_t *s = json_array_get(f, i);
        if (!json_is_string(s) || json_string_length(s) >= sizeof(c->features[0]) ||
            json_string_length(s) == 0)
            return drv_err_set(err, DRV_EINVAL, "cpu.features[%zu]: must be a short string", i);
        drv_strlcpy(c->features[c->n_features++], json_string_value(s), sizeof(c->features[0]));
    }
    return 0;
}

static int parse_memory(json_t *o, struct drv_hw_memory *m, struct drv_err *err)
{
    const char *p = "memory.";
    if (get_bytes(o, p, "total_bytes", &m->total_bytes, err) ||
        get_bytes(o, p, "available_bytes", &m->available_bytes, err) ||
        get_bytes(o, p, "swap_total_bytes", &m->swap_total_bytes, err) ||
        get_bytes(o, p, "swap_free_bytes", &m->swap_free_bytes, err))
        return DRV_EINVAL;
    json_t *bw = field(o, p, "bandwidth_gbps", err);
    if (bw == NULL)
        return DRV_EINVAL;
    if (json_is_null(bw))
        m->bandwidth_gbps = -1;
    else if (json_is_number(bw) && json_number_value(bw) >= 0 && json_number_value(bw) < 1e6)
        m->bandwidth_gbps = json_number_value(bw);
    else
        return drv_err_set(err, DRV_EINVAL, "memory.bandwidth_gbps: must be a number >= 0 or null");
    return 0;
}

static int parse_device(json_t *o, const char *p, struct drv_hw_device *d, struct drv_err *err)
{
    if (get_str(o, p, "name", d->name, sizeof(d->name), err) ||
        get_str(o, p, "description", d->description, sizeof(d->description), err) ||
        get_str(o, p, "type", d->type, sizeof(d->type), err) ||
        get_bytes(o, p, "memory_total_bytes", &d->memory_total_bytes, err) ||
        get_bytes(o, p, "memory_free_bytes", &d->memory_free_bytes, err))
        return DRV_EINVAL;
    if (strcmp(d->type, "cpu") && strcmp(d->type, "gpu") && strcmp(d->type, "igpu") &&
        strcmp(d->type, "accel"))
        return drv_err_set(err, DRV_EINVAL, "%stype: must be cpu, gpu, igpu or accel", p);
    /* optional: older profiles and the probe itself do not know it */
    json_t *bw = json_object_get(o, "bandwidth_gbps");
    d->bandwidth_gbps = 0;
    if (bw && !json_is_null(bw)) {
        if (!json_is_number(bw) || !(json_number_value(bw) > 0) || json_number_value(bw) >= 1e6)
            return drv_err_set(err, DRV_EINVAL, "%sbandwidth_gbps: must be a number > 0 or null",
                               p);
        d->bandwidth_gbps = json_number_value(bw);
    }
    json_t *measured = json_object_get(o, "bandwidth_measured");
    d->bandwidth_measured = false;
    if (measured && !json_is_boolean(measured))
        return drv_err_set(err, DRV_EINVAL, "%sbandwidth_measured: must be true or false", p);
    /* a measurement of nothing is no measurement */
    d->bandwidth_measured = json_is_true(measured) && d->bandwidth_gbps > 0;
    return 0;
}

static int parse_amd(json_t *o, const char *p, struct drv_hw_amd *a, struct drv_err *err)
{
    if (get_str(o, p, "card", a->card, sizeof(a->card), err) ||
        get_str(o, p, "gfx_target", a->gfx_target, sizeof(a->gfx_target), err) ||
        get_bytes(o, p, "vram_total_bytes", &a->vram_total_bytes, err) ||
        get_bytes(o, p, "gtt_total_bytes", &a->gtt_total_bytes, err) ||
        get_str(o, p, "rocm_version", a->rocm_version, sizeof(a->rocm_version), err))
        return DRV_EINVAL;
    json_t *apu = field(o, p, "apu", err);
    if (apu == NULL)
        return DRV_EINVAL;
    if (!json_is_boolean(apu))
        return drv_err_set(err, DRV_EINVAL, "%sapu: must be true or false", p);
    a->apu = json_is_true(apu);
    json_t *rk = field(o, p, "rocblas_kernels", err);
    if (rk == NULL)
        return DRV_EINVAL;
    if (json_is_null(rk))
        a->rocblas_kernels = -1;
    else if (json_is_boolean(rk))
        a->rocblas_kernels = json_is_true(rk);
    else
        return drv_err_set(err, DRV_EINVAL, "%srocblas_kernels: must be true, false or null", p);
    return 0;
}

static int parse_nvidia(json_t *o, const char *p, struct drv_hw_nvidia *g, struct drv_err *err)
{
    if (get_str(o, p, "name", g->name, sizeof(g->name), err) ||
        get_bytes(o, p, "memory_total_bytes", &g->memory_total_bytes, err) ||
        get_bytes(o, p, "memory_free_bytes", &g->memory_free_bytes, err) ||
        get_str(o, p, "driver", g->driver, sizeof(g->driver), err) ||
        get_str(o, p, "compute_cap", g->compute_cap, sizeof(g->compute_cap), err))
        return DRV_EINVAL;
    return 0;
}

/* Checks an array's entries are objects and fit max; returns its size or -1. */
static int array_of_objects(json_t *arr, const char *name, int max, struct drv_err *err)
{
    if (json_array_size(arr) > (size_t)max) {
        drv_err_set(err, DRV_EINVAL, "%s: more than %d entries", name, max);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (!json_is_object(json_array_get(arr, i))) {
            drv_err_set(err, DRV_EINVAL, "%s[%zu]: must be an object", name, i);
            return -1;
        }
    return (int)json_array_size(arr);
}

static int parse_root(json_t *root, struct drv_hw *out, struct drv_err *err)
{
    if (!json_is_object(root))
        return drv_err_set(err, DRV_EINVAL, "not a hardware profile: want a JSON object");
    json_t *ver = json_object_get(root, "version");
    if (ver && !(json_is_integer(ver) && json_integer_value(ver) == 1))
        return drv_err_set(err, DRV_EINVAL, "version: must be 1");
    json_t *cpu = get_typed(root, "", "cpu", false, false, err);
    if (cpu == NULL || parse_cpu(cpu, &out->cpu, err))
        return DRV_EINVAL;
    json_t *mem = get_typed(root, "", "memory", false, false, err);
    if (mem == NULL || parse_memory(mem, &out->memory, err))
        return DRV_EINVAL;
    char p[64];
    json_t *arr = get_typed(root, "", "devices", true, false, err);
    if (arr == NULL ||
        (out->n_devices = array_of_objects(arr, "devices", DRV_HW_MAX_DEVICES, err)) < 0)
        return DRV_EINVAL;
    for (int i = 0; i < out->n_devices; i++) {
        snprintf(p, sizeof(p), "devices[%d].", i);
        if (parse_device(json_array_get(arr, (size_t)i), p, &out->devices[i], err))
            return DRV_EINVAL;
    }
    out->n_amd = 0;
    if ((arr = get_typed(root, "", "amd", true, true, err)) != NULL) {
        if ((out->n_amd = array_of_objects(arr, "amd", DRV_HW_MAX_GPUS, err)) < 0)
            return DRV_EINVAL;
        for (int i = 0; i < out->n_amd; i++) {
            snprintf(p, sizeof(p), "amd[%d].", i);
            if (parse_amd(json_array_get(arr, (size_t)i), p, &out->amd[i], err))
                return DRV_EINVAL;
        }
    } else if (err && err->code)
        return DRV_EINVAL;
    out->n_nvidia = 0;
    if ((arr = get_typed(root, "", "nvidia", true, true, err)) != NULL) {
        if ((out->n_nvidia = array_of_objects(arr, "nvidia", DRV_HW_MAX_GPUS, err)) < 0)
            return DRV_EINVAL;
        for (int i = 0; i < out->n_nvidia; i++) {
            snprintf(p, sizeof(p), "nvidia[%d].", i);
            if (parse_nvidia(json_array_get(arr, (size_t)i), p, &out->nvidia[i], err))
                return DRV_EINVAL;
        }
    } else if (err && err->code)
        return DRV_EINVAL;
    out->n_problems = 0;
    if ((arr = get_typed(root, "", "problems", true, true, err)) != NULL) {
        if (json_array_size(arr) > DRV_HW_MAX_PROBLEMS)
            return drv_err_set(err, DRV_EINVAL, "problems: more than %d entries",
                               DRV_HW_MAX_PROBLEMS);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *s = json_array_get(arr, i);
            if (!json_is_string(s) || json_string_length(s) >= sizeof(out->problems[0]))
                return drv_err_set(err, DRV_EINVAL, "problems[%zu]: must be a short string", i);
            drv_strlcpy(out->problems[out->n_problems++], json_string_value(s),
                        sizeof(out->problems[0]));
        }
    } else if (err && err->code)
        return DRV_EINVAL;
    return 0;
}

int drv_probe_profile_parse(const char *text, size_t len, struct drv_hw *out, struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    if (len > PROFILE_MAX_BYTES)
        return drv_err_set(err, DRV_ETOOBIG, "hardware profile larger than %u bytes",
                           PROFILE_MAX_BYTES);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return drv_err_set(err, DRV_EINVAL, "not JSON: line %d: %s", je.line, je.text);
    int rc = parse_root(root, out, err);
    json_decref(root);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

int drv_probe_profile_load(const char *path, struct drv_hw *out, struct drv_err *err)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return drv_err_set(err, errno == ENOENT ? DRV_ENOENT : DRV_EIO, "%s", strerror(errno));
    char *buf = malloc(PROFILE_MAX_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, PROFILE_MAX_BYTES + 1, f);
    int rc;
    if (ferror(f))
        rc = drv_err_set(err, DRV_EIO, "%s", strerror(errno ? errno : EIO));
    else
        rc = drv_probe_profile_parse(buf, n, out, err);
    fclose(f);
    free(buf);
    return rc;
}

void drv_probe_summary(const struct drv_hw *hw, char *out, size_t size)
{
    struct drv_buf b;
    drv_buf_init(&b, size > 0 ? size - 1 : 0);
    drv_buf_appendf(&b, "%s, %d cores, %.0f GiB RAM", hw->cpu.model[0] ? hw->cpu.model : "CPU",
                    hw->cpu.cores, (double)hw->memory.total_bytes / (1024.0 * 1024 * 1024));
    if (hw->memory.bandwidth_gbps > 0)
        drv_buf_appendf(&b, ", %.1f GB/s", hw->memory.bandwidth_gbps);
    for (int i = 0; i < hw->n_devices; i++)
        if (strcmp(hw->devices[i].type, "cpu") != 0)
            drv_buf_appendf(&b, ", %s %.0f GiB",
                            hw->devices[i].description[0] ? hw->devices[i].description
                                                          : hw->devices[i].name,
                            (double)hw->devices[i].memory_total_bytes / (1024.0 * 1024 * 1024));
    drv_strlcpy(out, b.data ? b.data : "", size);
    drv_buf_release(&b);
}
