#include "cmd/cmd.h"
#include "probe/probe.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void print_table(const struct drv_hw *hw)
{
    char a[32], b[32], c[32];
    const struct drv_hw_cpu *cpu = &hw->cpu;
    printf("%-12s %s\n", "cpu", cpu->model[0] ? cpu->model : "(unknown)");
    printf("%-12s %d socket%s, %d physical cores, %d logical CPUs\n", "cores", cpu->sockets,
           cpu->sockets == 1 ? "" : "s", cpu->cores, cpu->threads);
    printf("%-12s L2 %s, L3 %s\n", "cache", drv_fmt_bytes(cpu->l2_bytes, a, sizeof(a)),
           drv_fmt_bytes(cpu->l3_bytes, b, sizeof(b)));
    printf("%-12s", "simd");
    for (int i = 0; i < cpu->n_features; i++)
        printf(" %s", cpu->features[i]);
    printf("%s\n", cpu->n_features ? "" : " (none that llama.cpp uses)");

    const struct drv_hw_memory *m = &hw->memory;
    printf("%-12s %s total, %s available\n", "ram", drv_fmt_bytes(m->total_bytes, a, sizeof(a)),
           drv_fmt_bytes(m->available_bytes, b, sizeof(b)));
    printf("%-12s %s total, %s free\n", "swap", drv_fmt_bytes(m->swap_total_bytes, a, sizeof(a)),
           drv_fmt_bytes(m->swap_free_bytes, b, sizeof(b)));
    if (m->bandwidth_gbps >= 0)
        printf("%-12s %.1f GB/s read (measured, %d threads)\n", "bandwidth", m->bandwidth_gbps,
               cpu->cores);
    else
        printf("%-12s not measured (--quick)\n", "bandwidth");

    printf("devices (as llama.cpp sees them):\n");
    for (int i = 0; i < hw->n_devices; i++) {
        const struct drv_hw_device *d = &hw->devices[i];
        printf("  %-10s %-5s %s free of %s  %s", d->name, d->type,
               drv_fmt_bytes(d->memory_free_bytes, a, sizeof(a)),
               drv_fmt_bytes(d->memory_total_bytes, b, sizeof(b)), d->description);
        if (d->bandwidth_gbps > 0)
            printf(" (%.0f GB/s %s)", d->bandwidth_gbps,
                   d->bandwidth_measured ? "measured" : "from the profile");
        printf("\n");
    }
    if (hw->n_devices == 0)
        printf("  (none)\n");
    for (int i = 0; i < hw->n_amd; i++) {
        const struct drv_hw_amd *g = &hw->amd[i];
        printf("%-12s %s %s, %s, VRAM %s + GTT %s", "amd gpu", g->card,
               g->gfx_target[0] ? g->gfx_target : "(gfx target unknown)",
               g->apu ? "APU" : "discrete", drv_fmt_bytes(g->vram_total_bytes, a, sizeof(a)),
               drv_fmt_bytes(g->gtt_total_bytes, b, sizeof(b)));
        if (g->rocblas_kernels >= 0)
            printf(", ROCm %s rocBLAS kernels: %s", g->rocm_version[0] ? g->rocm_version : "?",
                   g->rocblas_kernels ? "yes" : "no");
        printf("\n");
    }
    for (int i = 0; i < hw->n_nvidia; i++) {
        const struct drv_hw_nvidia *g = &hw->nvidia[i];
        printf("%-12s %s, %s free of %s, driver %s, compute %s\n", "nvidia gpu", g->name,
               drv_fmt_bytes(g->memory_free_bytes, a, sizeof(a)),
               drv_fmt_bytes(g->memory_total_bytes, c, sizeof(c)), g->driver, g->compute_cap);
    }
    if (hw->n_problems == 0)
        printf("problems     none seen\n");
    else
        printf("problems:\n");
    for (int i = 0; i < hw->n_problems; i++)
        printf("  - %s\n", hw->problems[i]);
}

int drv_cmd_hw(int argc, char **argv)
{
    const struct drv_cmd *self = drv_cmd_find("hw");
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},        {"quick", no_argument, NULL, 'q'},
        {"check", required_argument, NULL, 'c'}, {"hw", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    bool json = false, quick = false;
    const char *check = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'q':
            quick = true;
            break;
        case 'c':
            check = optarg;
            break;
        case 'h':
            drv_cmd_usage(self, stdout);
            return 0;
        default:
            return drv_cmd_bad_option(self, opts, "+h", argv);
        }
    }
    if (optind != argc)
        return drv_cmd_bad_usage(self, "unexpected argument '%s'", argv[optind]);

    struct drv_hw *hw = calloc(1, sizeof(*hw));
    if (hw == NULL) {
        fprintf(stderr, "drover hw: out of memory\n");
        return 1;
    }
    struct drv_err err;
    drv_err_init(&err);
    int rc;
    if (check) {
        rc = drv_probe_profile_load(check, hw, &err);
        if (rc)
            fprintf(stderr, "drover hw: %s: %s\n", check, err.msg);
    } else {
        struct drv_probe_params p = drv_probe_default_params();
        p.gpu_bandwidth_seconds = quick ? 0 : 0.4;
        if (quick)
            p.bandwidth_seconds = 0;
        rc = drv_probe_run(&p, hw, &err);
        if (rc)
            fprintf(stderr, "drover hw: %s\n", err.msg);
    }
    if (rc == 0) {
        if (json) {
            char *s = drv_probe_profile_dump(hw);
            if (s == NULL) {
                fprintf(stderr, "drover hw: out of memory\n");
                rc = -1;
            } else {
                printf("%s\n", s);
                free(s);
            }
        } else {
            print_table(hw);
        }
    }
    free(hw);
    return rc ? 1 : 0;
}
