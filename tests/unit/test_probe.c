/* probe: AMD GPUs from a fake sysfs tree, the hardware profile's JSON round trip
 * and its errors, and the bandwidth measurement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe/probe.h"

static char root[256];

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    /* mkdir -p of the parent */
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    if (text == NULL) {
        mkdir(path, 0755);
        return;
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* An AMD APU (Radeon 780M: gfx1103, 8 GiB VRAM carve-out, 27 GiB GTT) and a
 * ROCm 7.2.1 whose rocBLAS has kernels for gfx1100 and gfx1102 only. */
static int make_tree(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/drv_probe_XXXXXX");
    assert_non_null(mkdtemp(root));
    put("sys/class/drm/card0/device/vendor", "0x1002\n");
    put("sys/class/drm/card0/device/mem_info_vram_total", "8589934592\n");
    put("sys/class/drm/card0/device/mem_info_gtt_total", "28991029248\n");
    put("sys/class/drm/card0/device/drm/renderD128", NULL);
    put("sys/class/drm/card0-eDP-1/status", "connected\n");
    put("sys/class/drm/card1/device/vendor", "0x8086\n"); /* not AMD */
    put("sys/class/kfd/kfd/topology/nodes/0/properties",
        "cpu_cores_count 16\nsimd_count 0\ngfx_target_version 0\ndrm_render_minor 0\n");
    put("sys/class/kfd/kfd/topology/nodes/1/properties",
        "cpu_cores_count 0\nsimd_count 24\ngfx_target_version 110003\ndrm_render_minor 128\n");
    put("opt/rocm-7.2.1/.info/version", "7.2.1-81\n");
    put("opt/rocm-7.2.1/lib/rocblas/library/TensileLibrary_lazy_gfx1100.dat", "");
    put("opt/rocm-7.2.1/lib/rocblas/library/TensileLibrary_lazy_gfx1102.dat", "");
    put("opt/rocm-7.2.1/lib/rocblas/library/Kernels.so-000-gfx11020.hsaco", "");
    return 0;
}

static int remove_tree(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static bool has_problem(const struct drv_hw *hw, const char *text)
{
    for (int i = 0; i < hw->n_problems; i++)
        if (strstr(hw->problems[i], text))
            return true;
    return false;
}

static void gfx_names(void **state)
{
    (void)state;
    char s[16];
    drv_probe_gfx_name(110003, s, sizeof(s));
    assert_string_equal(s, "gfx1103");
    drv_probe_gfx_name(90010, s, sizeof(s));
    assert_string_equal(s, "gfx90a");
    drv_probe_gfx_name(100300, s, sizeof(s));
    assert_string_equal(s, "gfx1030");
    drv_probe_gfx_name(0, s, sizeof(s));
    assert_string_equal(s, "");
}

static void amd_apu_without_rocblas_kernels(void **state)
{
    (void)state;
    static struct drv_hw hw;
    memset(&hw, 0, sizeof(hw));
    drv_probe_amd(root, NULL, &hw);
    assert_int_equal(hw.n_amd, 1);
    const struct drv_hw_amd *a = &hw.amd[0];
    assert_string_equal(a->card, "card0");
    assert_string_equal(a->gfx_target, "gfx1103");
    assert_true(a->vram_total_bytes == (uint64_t)8 << 30);
    assert_true(a->gtt_total_bytes == (uint64_t)27 << 30);
    assert_true(a->apu);
    assert_string_equal(a->rocm_version, "7.2.1");
    assert_int_equal(a->rocblas_kernels, 0);

    drv_probe_problems(&hw, NULL);
    assert_int_equal(hw.n_problems, 1);
    assert_string_equal(hw.problems[0],
                        "ROCm 7.2.1 has no rocBLAS kernels for gfx1103: use the Vulkan backend");

    drv_probe_problems(&hw, "11.0.2");
    assert_int_equal(hw.n_problems, 2);
    assert_true(has_problem(&hw, "HSA_OVERRIDE_GFX_VERSION=11.0.2 makes ROCm run gfx1102 "
                                 "kernels on gfx1103"));
    drv_probe_problems(&hw, "11.0.3"); /* pointing at its own ISA is no problem */
    assert_int_equal(hw.n_problems, 1);
}

static void amd_with_kernels(void **state)
{
    (void)state;
    put("opt/rocm-7.2.1/lib/rocblas/library/TensileLibrary_lazy_gfx1103.dat", "");
    static struct drv_hw hw;
    memset(&hw, 0, sizeof(hw));
    drv_probe_amd(root, NULL, &hw);
    char path[512];
    snprintf(path, sizeof(path),
             "%s/opt/rocm-7.2.1/lib/rocblas/library/"
             "TensileLibrary_lazy_gfx1103.dat",
             root);
    unlink(path);
    assert_int_equal(hw.amd[0].rocblas_kernels, 1);
    drv_probe_problems(&hw, NULL);
    assert_int_equal(hw.n_problems, 0);
}

static int fake_smi(const char *cmd, char *out, size_t cap, void *ud)
{
    (void)ud;
    assert_non_null(strstr(cmd, "nvidia-smi --query-gpu=name,memory.total,memory.free,"
                                "driver_version,compute_cap"));
    snprintf(out, cap, "NVIDIA GeForce RTX 3070 Laptop GPU, 8192, 7800, 550.54.14, 8.6\n");
    return 0;
}

static void run_on_fake_tree(void **state)
{
    (void)state;
    struct drv_probe_params p = drv_probe_default_params();
    p.root = root;
    p.bandwidth_seconds = 0;
    p.devices = false;
    p.cpu = false;
    p.hsa_override = "";
    p.run = fake_smi;
    static struct drv_hw hw;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_probe_run(&p, &hw, &err), 0);
    assert_int_equal(hw.n_amd, 1);
    assert_int_equal(hw.n_nvidia, 1);
    assert_string_equal(hw.nvidia[0].name, "NVIDIA GeForce RTX 3070 Laptop GPU");
    assert_true(hw.nvidia[0].memory_total_bytes == (uint64_t)8192 << 20);
    assert_true(hw.nvidia[0].memory_free_bytes == (uint64_t)7800 << 20);
    assert_string_equal(hw.nvidia[0].driver, "550.54.14");
    assert_string_equal(hw.nvidia[0].compute_cap, "8.6");
    assert_true(hw.memory.bandwidth_gbps < 0);
    assert_true(has_problem(&hw, "ROCm 7.2.1 has no rocBLAS kernels for gfx1103"));
}

static void fill_sample(struct drv_hw *hw)
{
    memset(hw, 0, sizeof(*hw));
    drv_strlcpy(hw->cpu.model, "AMD Ryzen 7 7840U w/ Radeon 780M \"Graphics\"", 128);
    hw->cpu.sockets = 1;
    hw->cpu.cores = 8;
    hw->cpu.threads = 16;
    drv_strlcpy(hw->cpu.features[hw->cpu.n_features++], "avx2", 16);
    drv_strlcpy(hw->cpu.features[hw->cpu.n_features++], "avx512_vnni", 16);
    hw->cpu.l2_bytes = 8u << 20;
    hw->cpu.l3_bytes = 16u << 20;
    hw->memory.total_bytes = (uint64_t)54 << 30;
    hw->memory.available_bytes = (uint64_t)40 << 30;
    hw->memory.swap_total_bytes = (uint64_t)8 << 30;
    hw->memory.swap_free_bytes = (uint64_t)7 << 30;
    hw->memory.bandwidth_gbps = 61.337;
    hw->n_devices = 2;
    drv_strlcpy(hw->devices[0].name, "Vulkan0", 64);
    drv_strlcpy(hw->devices[0].description, "AMD Radeon 780M (RADV PHOENIX)", 128);
    drv_strlcpy(hw->devices[0].type, "igpu", 8);
    hw->devices[0].memory_total_bytes = (uint64_t)35 << 30;
    hw->devices[0].memory_free_bytes = (uint64_t)33 << 30;
    drv_strlcpy(hw->devices[1].name, "CPU", 64);
    drv_strlcpy(hw->devices[1].type, "cpu", 8);
    hw->n_amd = 1;
    drv_strlcpy(hw->amd[0].card, "card0", 16);
    drv_strlcpy(hw->amd[0].gfx_target, "gfx1103", 16);
    hw->amd[0].vram_total_bytes = (uint64_t)8 << 30;
    hw->amd[0].gtt_total_bytes = (uint64_t)27 << 30;
    hw->amd[0].apu = true;
    drv_strlcpy(hw->amd[0].rocm_version, "7.2.1", 32);
    hw->amd[0].rocblas_kernels = 0;
    hw->n_nvidia = 1;
    drv_strlcpy(hw->nvidia[0].name, "NVIDIA GeForce RTX 3070", 96);
    hw->nvidia[0].memory_total_bytes = (uint64_t)8 << 30;
    drv_strlcpy(hw->nvidia[0].driver, "550.54", 32);
    drv_strlcpy(hw->nvidia[0].compute_cap, "8.6", 16);
    hw->n_problems = 1;
    drv_strlcpy(hw->problems[0], "ROCm 7.2.1 has no rocBLAS kernels for gfx1103: use Vulkan", 256);
}

static void profile_round_trip(void **state)
{
    (void)state;
    static struct drv_hw a, b;
    fill_sample(&a);
    struct drv_err err;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            a.memory.bandwidth_gbps = -1;        /* not measured: null and back */
            a.devices[0].bandwidth_gbps = 90;    /* given by hand */
            a.devices[1].bandwidth_gbps = 52.25; /* measured: says so after the trip */
            a.devices[1].bandwidth_measured = true;
        }
        char *s = drv_probe_profile_dump(&a);
        assert_non_null(s);
        drv_err_init(&err);
        int rc = drv_probe_profile_parse(s, strlen(s), &b, &err);
        if (rc)
            fail_msg("%s: %s", err.msg, s);
        free(s);
        assert_memory_equal(&a, &b, sizeof(a));
    }
}

/* The sample profile with one edit by sed-like replacement of `from` by `to`. */
static void expect_error(const char *from, const char *to, const char *want)
{
    static struct drv_hw a, b;
    fill_sample(&a);
    char *s = drv_probe_profile_dump(&a);
    assert_non_null(s);
    char *at = strstr(s, from);
    if (at == NULL)
        fail_msg("'%s' not in %s", from, s);
    size_t n = strlen(s) + strlen(to) + 1;
    char *t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_probe_profile_parse(t, strlen(t), &b, &err), DRV_EINVAL);
    if (strstr(err.msg, want) == NULL)
        fail_msg("error '%s' lacks '%s'", err.msg, want);
    free(s);
    free(t);
}

static void profile_errors_name_the_field(void **state)
{
    (void)state;
    expect_error("\"cores\": 8,", "", "cpu.cores: missing");
    expect_error("\"cores\": 8", "\"cores\": \"8\"", "cpu.cores: must be an integer");
    expect_error("\"cores\": 8", "\"cores\": 0", "cpu.cores: must be an integer");
    expect_error("\"threads\": 16", "\"threads\": 4", "cpu.threads: fewer than cpu.cores");
    expect_error("\"type\": \"igpu\"", "\"type\": \"npu\"",
                 "devices[0].type: must be cpu, gpu, igpu or accel");
    expect_error("\"name\": \"CPU\",", "", "devices[1].name: missing");
    expect_error("\"bandwidth_gbps\": 61.337", "\"bandwidth_gbps\": -3", "memory.bandwidth_gbps");
    expect_error("\"total_bytes\": 57982058496,", "", "memory.total_bytes: missing");
    expect_error("\"bandwidth_gbps\": null", "\"bandwidth_gbps\": \"fast\"",
                 "devices[0].bandwidth_gbps: must be a number > 0 or null");
    expect_error("\"bandwidth_measured\": false", "\"bandwidth_measured\": 1",
                 "devices[0].bandwidth_measured: must be true or false");
    expect_error("\"apu\": true", "\"apu\": 1", "amd[0].apu: must be true or false");
    expect_error("\"compute_cap\": \"8.6\"", "\"compute_cap\": null",
                 "nvidia[0].compute_cap: must be a string");
    expect_error("\"version\": 1", "\"version\": 2", "version: must be 1");
    expect_error("\"devices\": [", "\"devices\": {\"x\": [", "not JSON");

    static struct drv_hw b;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_probe_profile_parse("[1]", 3, &b, &err), DRV_EINVAL);
    assert_non_null(strstr(err.msg, "not a hardware profile"));
    drv_err_init(&err);
    assert_int_equal(drv_probe_profile_parse("{}", 2, &b, &err), DRV_EINVAL);
    assert_string_equal(err.msg, "cpu: missing");
    drv_err_init(&err);
    assert_int_equal(drv_probe_profile_load("/nonexistent/hw.json", &b, &err), DRV_ENOENT);
}

/* Only a number can be measured: "bandwidth_measured" without one reads as not. */
static void profile_measured_needs_a_bandwidth(void **state)
{
    (void)state;
    static struct drv_hw a, b;
    fill_sample(&a);
    char *s = drv_probe_profile_dump(&a);
    assert_non_null(s);
    char *at = strstr(s, "\"bandwidth_measured\": false");
    assert_non_null(at);
    memcpy(at, "\"bandwidth_measured\": true ", strlen("\"bandwidth_measured\": true "));
    struct drv_err err;
    drv_err_init(&err);
    if (drv_probe_profile_parse(s, strlen(s), &b, &err) != 0)
        fail_msg("%s: %s", err.msg, s);
    assert_true(b.devices[0].bandwidth_gbps == 0);
    assert_false(b.devices[0].bandwidth_measured);
    free(s);
}

static void bandwidth_short(void **state)
{
    (void)state;
    double gbps = 0;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_probe_bandwidth(0.01, 2, 8u << 20, &gbps, &err), 0);
    assert_true(gbps > 0);
    drv_err_init(&err);
    assert_int_equal(drv_probe_bandwidth(0.01, 2, 16, &gbps, &err), DRV_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gfx_names),
        cmocka_unit_test(amd_apu_without_rocblas_kernels),
        cmocka_unit_test(amd_with_kernels),
        cmocka_unit_test(run_on_fake_tree),
        cmocka_unit_test(profile_round_trip),
        cmocka_unit_test(profile_errors_name_the_field),
        cmocka_unit_test(profile_measured_needs_a_bandwidth),
        cmocka_unit_test(bandwidth_short),
    };
    return cmocka_run_group_tests(tests, make_tree, remove_tree);
}
