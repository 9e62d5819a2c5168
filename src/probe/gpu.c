/* gpu: AMD GPUs from sysfs and the KFD topology, ROCm's rocBLAS kernels for
 * them, and NVIDIA GPUs from nvidia-smi. */
#include "probe/probe_int.h"

#include <ctype.h>
#include <dirent.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void drv_probe_gfx_name(unsigned version, char *out, size_t size)
{
    if (version == 0) {
        drv_strlcpy(out, "", size);
        return;
    }
    /* KFD writes major*10000 + minor*100 + stepping; the ISA name spells minor
     * and stepping as one hex digit each (9.0.10 is gfx90a) */
    snprintf(out, size, "gfx%u%x%x", version / 10000, (version / 100) % 100, version % 100);
}

/* "11.0.2" -> "gfx1102"; "" when s is not M.m.s */
static void override_gfx(const char *s, char *out, size_t size)
{
    unsigned a, b, c;
    out[0] = '\0';
    if (s && sscanf(s, "%u.%u.%u", &a, &b, &c) == 3 && a < 100 && b < 100 && c < 100)
        drv_probe_gfx_name(a * 10000 + b * 100 + c, out, size);
}

static uint64_t read_u64(const char *root, const char *path, bool *ok)
{
    char buf[64];
    *ok = drv_probe_read_file(root, path, buf, sizeof(buf)) > 0;
    return *ok ? strtoull(buf, NULL, 0) : 0;
}

/* The value of "key N" in a KFD properties file; 0 when absent. */
static unsigned long long kfd_prop(const char *props, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = props; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, n) == 0 && p[n] == ' ')
            return strtoull(p + n + 1, NULL, 10);
    }
    return 0;
}

static bool is_card_name(const char *s)
{
    if (strncmp(s, "card", 4) != 0 || s[4] == '\0')
        return false;
    for (const char *p = s + 4; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Cards (sorted by name) whose PCI vendor is AMD. */
static void find_amd_cards(const char *root, struct drv_hw *hw)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/sys/class/drm", root);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64)
        if (is_card_name(e->d_name))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    for (int i = 0; i < n; i++) {
        char path[256], buf[32];
        snprintf(path, sizeof(path), "/sys/class/drm/%s/device/vendor", names[i] ? names[i] : "");
        if (names[i] && hw->n_amd < DRV_HW_MAX_GPUS &&
            drv_probe_read_file(root, path, buf, sizeof(buf)) > 0 &&
            strtoul(buf, NULL, 16) == 0x1002) {
            struct drv_hw_amd *a = &hw->amd[hw->n_amd++];
            memset(a, 0, sizeof(*a));
            drv_strlcpy(a->card, names[i], sizeof(a->card));
            a->rocblas_kernels = -1;
            bool ok;
            snprintf(path, sizeof(path), "/sys/class/drm/%s/device/mem_info_vram_total", names[i]);
            a->vram_total_bytes = read_u64(root, path, &ok);
            snprintf(path, sizeof(path), "/sys/class/drm/%s/device/mem_info_gtt_total", names[i]);
            a->gtt_total_bytes = read_u64(root, path, &ok);
            a->apu = a->vram_total_bytes > 0 && a->vram_total_bytes <= ((uint64_t)16 << 30) &&
                     a->vram_total_bytes * 2 < a->gtt_total_bytes;
        }
        free(names[i]);
    }
}

/* gfx targets from the KFD topology: a node with a render minor goes to the card
 * that has that render node; the rest go to cards without a target, in order. */
static void read_kfd(const char *root, struct drv_hw *hw)
{
    char pattern[1024];
    snprintf(pattern, sizeof(pattern), "%s/sys/class/kfd/kfd/topology/nodes/*/properties", root);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    char loose[DRV_HW_MAX_GPUS][16];
    int n_loose = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char props[4096];
        if (drv_probe_read_file("", g.gl_pathv[i], props, sizeof(props)) <= 0)
            continue;
        unsigned long long v = kfd_prop(props, "gfx_target_version");
        if (v == 0 || v > 999999)
            continue; /* a CPU node */
        char gfx[16];
        drv_probe_gfx_name((unsigned)v, gfx, sizeof(gfx));
        unsigned long long minor = kfd_prop(props, "drm_render_minor");
        bool placed = false;
        for (int c = 0; minor && c < hw->n_amd && !placed; c++) {
            char path[1024];
            struct stat st;
            snprintf(path, sizeof(path), "%s/sys/class/drm/%s/device/drm/renderD%llu", root,
                     hw->amd[c].card, minor);
            if (stat(path, &st) == 0) {
                drv_strlcpy(hw->amd[c].gfx_target, gfx, sizeof(hw->amd[c].gfx_target));
                placed = true;
            }
        }
        if (!placed && n_loose < DRV_HW_MAX_GPUS)
            drv_strlcpy(loose[n_loose++], gfx, sizeof(loose[0]));
    }
    globfree(&g);
    for (int c = 0, l = 0; c < hw->n_amd && l < n_loose; c++)
        if (hw->amd[c].gfx_target[0] == '\0')
            drv_strlcpy(hw->amd[c].gfx_target, loose[l++], sizeof(hw->amd[c].gfx_target));
}

/* Does a file name in dir carry the target ("..._gfx1103.dat", "gfx1103.co")? */
static bool dir_has_target(const char *dir, const char *gfx)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    size_t n = strlen(gfx);
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        for (const char *p = e->d_name; !found && (p = strstr(p, gfx)) != NULL; p += n)
            found = !isalnum((unsigned char)p[n]);
    }
    closedir(d);
    return found;
}

/* The first ROCm under root/opt with a rocBLAS library: its version and folder. */
static bool find_rocblas(const char *root, char *version, size_t vsize, char *lib, size_t lsize)
{
    char pattern[1024];
    snprintf(pattern, sizeof(pattern), "%s/opt/rocm*", root);
    glob_t g;
    if (glob(pattern, GLOB_ONLYDIR, NULL, &g) != 0)
        return false;
    bool found = false;
    for (size_t i = 0; i < g.gl_pathc && !found; i++) {
        struct stat st;
        snprintf(lib, lsize, "%s/lib/rocblas/library", g.gl_pathv[i]);
        if (stat(lib, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        found = true;
        char vpath[1100], buf[64];
        snprintf(vpath, sizeof(vpath), "%s/.info/version", g.gl_pathv[i]);
        version[0] = '\0';
        if (drv_probe_read_file("", vpath, buf, sizeof(buf)) > 0) {
            buf[strcspn(buf, "-\n ")] = '\0';
            drv_strlcpy(version, buf, vsize);
        } else {
            const char *dash = strrchr(g.gl_pathv[i], '-');
            const char *base = strrchr(g.gl_pathv[i], '/');
            if (dash && base && dash > base)
                drv_strlcpy(version, dash + 1, vsize);
        }
    }
    globfree(&g);
    return found;
}

void drv_probe_amd(const char *root, const char *hsa_override, struct drv_hw *hw)
{
    if (root == NULL)
        root = "";
    hw->n_amd = 0;
    find_amd_cards(root, hw);
    if (hw->n_amd == 0)
        return;
    read_kfd(root, hw);
    char version[32], lib[1100];
    if (!find_rocblas(root, version, sizeof(version), lib, sizeof(lib)))
        return;
    for (int i = 0; i < hw->n_amd; i++) {
        struct drv_hw_amd *a = &hw->amd[i];
        drv_strlcpy(a->rocm_version, version, sizeof(a->rocm_version));
        if (a->gfx_target[0])
            a->rocblas_kernels = dir_has_target(lib, a->gfx_target) ? 1 : 0;
    }
}

static int popen_runner(const char *cmd, char *out, size_t cap, void *ud)
{
    (void)ud;
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p) == 0 ? 0 : -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

void drv_probe_nvidia(drv_probe_runner_fn run, void *ud, struct drv_hw *hw)
{
    hw->n_nvidia = 0;
    if (run == NULL)
        run = popen_runner;
    char out[4096];
    if (run("nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version,compute_cap "
            "--format=csv,noheader,nounits 2>/dev/null",
            out, sizeof(out), ud) != 0)
        return;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line && hw->n_nvidia < DRV_HW_MAX_GPUS;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[5];
        int nf = 0;
        char *s2 = NULL;
        for (char *t = strtok_r(line, ",", &s2); t && nf < 5; t = strtok_r(NULL, ",", &s2))
            f[nf++] = trim(t);
        if (nf != 5)
            continue;
        struct drv_hw_nvidia *g = &hw->nvidia[hw->n_nvidia++];
        memset(g, 0, sizeof(*g));
        drv_strlcpy(g->name, f[0], sizeof(g->name));
        g->memory_total_bytes = strtoull(f[1], NULL, 10) << 20; /* MiB */
        g->memory_free_bytes = strtoull(f[2], NULL, 10) << 20;
        drv_strlcpy(g->driver, f[3], sizeof(g->driver));
        drv_strlcpy(g->compute_cap, f[4], sizeof(g->compute_cap));
    }
}

static void add_problem(struct drv_hw *hw, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_problem(struct drv_hw *hw, const char *fmt, ...)
{
    if (hw->n_problems >= DRV_HW_MAX_PROBLEMS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hw->problems[hw->n_problems++], sizeof(hw->problems[0]), fmt, ap);
    va_end(ap);
}

void drv_probe_problems(struct drv_hw *hw, const char *hsa_override)
{
    hw->n_problems = 0;
    char over[16];
    override_gfx(hsa_override, over, sizeof(over));
    for (int i = 0; i < hw->n_amd; i++) {
        const struct drv_hw_amd *a = &hw->amd[i];
        if (a->rocblas_kernels == 0)
            add_problem(hw, "ROCm%s%s has no rocBLAS kernels for %s: use the Vulkan backend",
                        a->rocm_version[0] ? " " : "", a->rocm_version, a->gfx_target);
        if (over[0] && a->gfx_target[0] && strcmp(over, a->gfx_target) != 0)
            add_problem(hw,
                        "HSA_OVERRIDE_GFX_VERSION=%s makes ROCm run %s kernels on %s: kernels "
                        "of another ISA can crash or compute garbage; unset it and use the "
                        "Vulkan backend",
                        hsa_override, over, a->gfx_target);
    }
    if (hw->n_devices > 0 && hw->n_amd + hw->n_nvidia > 0) {
        bool gpu = false;
        for (int i = 0; i < hw->n_devices; i++)
            gpu |= strcmp(hw->devices[i].type, "cpu") != 0;
        if (!gpu)
            add_problem(hw,
                        "%s GPU is present but llama.cpp sees no GPU device: this llama.cpp "
                        "build has no GPU backend (Vulkan, ROCm, CUDA), so models run on the CPU",
                        hw->n_nvidia ? "an NVIDIA" : "an AMD");
    }
    const struct drv_hw_memory *m = &hw->memory;
    uint64_t swap_used =
        m->swap_total_bytes > m->swap_free_bytes ? m->swap_total_bytes - m->swap_free_bytes : 0;
    if (swap_used > ((uint64_t)64 << 20) && m->available_bytes < m->total_bytes / 10) {
        char u[32], av[32], t[32];
        add_problem(hw,
                    "swap is in use (%s) and only %s of %s RAM is available: a model that "
                    "does not fit in RAM is read from disk and generates very slowly",
                    drv_fmt_bytes(swap_used, u, sizeof(u)),
                    drv_fmt_bytes(m->available_bytes, av, sizeof(av)),
                    drv_fmt_bytes(m->total_bytes, t, sizeof(t)));
    }
}
