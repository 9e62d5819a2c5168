/* probe — the machine as inference sees it: CPU (hwloc, /proc/cpuinfo), memory
 * (/proc/meminfo, a measured read bandwidth), the devices llama.cpp's ggml sees,
 * AMD GPUs (sysfs, KFD topology, ROCm's rocBLAS library) and NVIDIA GPUs
 * (nvidia-smi), and the problems all that shows, in plain words.
 *
 * A struct drv_hw is a plain value (no heap pointers): copy it, compare it with
 * the fields, keep it on the stack.
 *
 * Hardware profile (`drover hw --json`, read back by drv_probe_profile_load and
 * by every command that takes --hw FILE.json). One JSON object:
 *
 *   {
 *     "version": 1,                    profile format version (optional on load; 1)
 *     "cpu": {
 *       "model": "AMD Ryzen 7 7840U",  string
 *       "sockets": 1,                  packages, integer >= 1
 *       "cores": 8,                    physical cores, integer >= 1
 *       "threads": 16,                 logical CPUs, integer >= cores
 *       "features": ["avx2", ...],     SIMD features that matter to llama.cpp, from
 *                                      avx avx2 avx512f avx512_vnni avx_vnni
 *                                      avx512_bf16 f16c fma amx_tile amx_int8 neon
 *                                      asimd sve dotprod
 *       "l2_bytes": 8388608,           L2 cache, all cores together, integer >= 0
 *       "l3_bytes": 16777216           L3 cache, all of it, integer >= 0 (0 = none)
 *     },
 *     "memory": {
 *       "total_bytes": ..., "available_bytes": ...,        RAM, integers >= 0
 *       "swap_total_bytes": ..., "swap_free_bytes": ...,   integers >= 0
 *       "bandwidth_gbps": 61.3         measured read bandwidth, GB/s (1e9 bytes);
 *                                      null when not measured (--quick)
 *     },
 *     "devices": [                     ggml backend devices, as llama.cpp sees them
 *       {"name": "Vulkan0", "description": "AMD Radeon 780M",
 *        "type": "cpu" | "gpu" | "igpu" | "accel",
 *        "memory_total_bytes": ..., "memory_free_bytes": ...,
 *        "bandwidth_gbps": 448.0,      optional: the device memory's bandwidth, GB/s
 *                                      (1e9 bytes), a spec sheet's or measured; null
 *                                      or absent = unknown. The probe measures it for
 *                                      "gpu" devices only (an "igpu" reads the RAM:
 *                                      memory.bandwidth_gbps), as bytes read plus
 *                                      bytes written by a device-to-device copy
 *                                      (drv_engine_device_bandwidth), unless --quick
 *        "bandwidth_measured": true}   optional (absent = false): bandwidth_gbps was
 *                                      measured by drover here, not written by hand
 *     ],
 *     "amd": [                         AMD GPUs from sysfs (optional on load)
 *       {"card": "card0", "gfx_target": "gfx1103" (or "" when KFD does not say),
 *        "vram_total_bytes": ..., "gtt_total_bytes": ..., "apu": true,
 *        "rocm_version": "7.2.1" ("" = no ROCm found),
 *        "rocblas_kernels": true | false | null (null = no ROCm rocBLAS library)}
 *     ],
 *     "nvidia": [                      NVIDIA GPUs from nvidia-smi (optional on load)
 *       {"name": "NVIDIA GeForce RTX 3070 Laptop GPU", "memory_total_bytes": ...,
 *        "memory_free_bytes": ..., "driver": "550.54", "compute_cap": "8.6"}
 *     ],
 *     "problems": ["..."]              plain sentences (optional on load)
 *   }
 *
 * APU rule: an AMD GPU is taken for an APU when its VRAM is at most 16 GiB and
 * less than half its GTT (a BIOS carve-out next to a large window on system
 * RAM). A discrete card with small VRAM in a machine with much RAM can match
 * too; the field is a hint. */
#ifndef DRV_PROBE_H
#define DRV_PROBE_H

#include "base/base.h"

#include <stdbool.h>
#include <stdint.h>

#define DRV_HW_MAX_FEATURES 16
#define DRV_HW_MAX_DEVICES  16
#define DRV_HW_MAX_GPUS     8
#define DRV_HW_MAX_PROBLEMS 16

struct drv_hw_cpu {
    char model[128];
    int sockets;
    int cores;   /* physical */
    int threads; /* logical CPUs */
    char features[DRV_HW_MAX_FEATURES][16];
    int n_features;
    uint64_t l2_bytes; /* summed over all L2 caches */
    uint64_t l3_bytes; /* summed over all L3 caches */
};

struct drv_hw_memory {
    uint64_t total_bytes;
    uint64_t available_bytes;
    uint64_t swap_total_bytes;
    uint64_t swap_free_bytes;
    double bandwidth_gbps; /* < 0 when not measured */
};

struct drv_hw_device {
    char name[64];
    char description[128];
    char type[8]; /* "cpu", "gpu", "igpu", "accel" */
    uint64_t memory_total_bytes;
    uint64_t memory_free_bytes;
    double bandwidth_gbps;   /* GB/s; 0 = unknown */
    bool bandwidth_measured; /* bandwidth_gbps was measured (probe), not given by hand */
};

struct drv_hw_amd {
    char card[16];       /* "card0" */
    char gfx_target[16]; /* "gfx1103"; "" when unknown */
    uint64_t vram_total_bytes;
    uint64_t gtt_total_bytes;
    bool apu;
    char rocm_version[32]; /* "" when no ROCm was found */
    int rocblas_kernels;   /* 1 yes, 0 no, -1 no rocBLAS library to look in */
};

struct drv_hw_nvidia {
    char name[96];
    uint64_t memory_total_bytes;
    uint64_t memory_free_bytes;
    char driver[32];
    char compute_cap[16];
};

struct drv_hw {
    struct drv_hw_cpu cpu;
    struct drv_hw_memory memory;
    struct drv_hw_device devices[DRV_HW_MAX_DEVICES];
    int n_devices;
    struct drv_hw_amd amd[DRV_HW_MAX_GPUS];
    int n_amd;
    struct drv_hw_nvidia nvidia[DRV_HW_MAX_GPUS];
    int n_nvidia;
    char problems[DRV_HW_MAX_PROBLEMS][256];
    int n_problems;
};

/* Runs a shell command and puts at most cap-1 bytes of its stdout into out
 * (terminated). Returns 0 when it ran and exited 0, negative otherwise. */
typedef int (*drv_probe_runner_fn)(const char *cmd, char *out, size_t cap, void *ud);

struct drv_probe_params {
    const char *root;         /* prepended to /proc, /sys and /opt paths; "" (default)
                                 = this machine. Tests point it at a fake tree. */
    double bandwidth_seconds; /* time for the RAM bandwidth measurement; default 1.0;
                                 <= 0 skips it (bandwidth_gbps = -1) */
    bool devices;             /* list ggml devices (initialises llama.cpp); default true */
    /* time to measure each discrete GPU's bandwidth (drv_engine_device_bandwidth);
     * default 0 = not measured: it starts the GPU's backend and borrows up to
     * 512 MiB of its memory, which only commands that predict speed want. A GPU
     * that cannot be measured (too little free memory, ...) keeps bandwidth_gbps
     * 0 and the reason goes to the log. Needs devices. */
    double gpu_bandwidth_seconds;
    bool cpu;                 /* read the CPU from hwloc; default true */
    const char *hsa_override; /* HSA_OVERRIDE_GFX_VERSION; default NULL = from the
                                 environment, "" = unset */
    drv_probe_runner_fn run;  /* runs nvidia-smi; default NULL = popen */
    void *run_ud;
};

struct drv_probe_params drv_probe_default_params(void);

/* Fills out with this machine (or the fake tree under p->root). Missing parts
 * (no hwloc answer, no /sys) leave zeros; only a failure to measure bandwidth
 * when asked is an error. */
int drv_probe_run(const struct drv_probe_params *p, struct drv_hw *out, struct drv_err *err);

/* Measured read bandwidth in GB/s: `threads` threads (0 = physical cores)
 * stream-read a buffer of `bytes` (0 = 512 MiB or 4x L3, whichever is larger,
 * at most a quarter of available RAM), summing 64-bit words, for about
 * `seconds`; the best pass counts. */
int drv_probe_bandwidth(double seconds, int threads, uint64_t bytes, double *gbps,
                        struct drv_err *err);

/* The pieces drv_probe_run uses, for tests and for recomputing problems. */
void drv_probe_cpu(const char *root, bool use_hwloc, struct drv_hw_cpu *out);
void drv_probe_memory(const char *root, struct drv_hw_memory *out);
void drv_probe_amd(const char *root, const char *hsa_override, struct drv_hw *hw);
void drv_probe_nvidia(drv_probe_runner_fn run, void *ud, struct drv_hw *hw);
/* Recomputes hw->problems from the rest of hw (and hsa_override, NULL = unset). */
void drv_probe_problems(struct drv_hw *hw, const char *hsa_override);
/* "gfx1103" from KFD's gfx_target_version 110003; "" for 0. */
void drv_probe_gfx_name(unsigned version, char *out, size_t size);

/* ---- the JSON profile ---- */
/* Returns a JSON text (caller frees with free()), or NULL when out of memory. */
char *drv_probe_profile_dump(const struct drv_hw *hw);
/* One line for people and for the bench history: "CPU model, N cores, X GiB RAM,
 * 42.1 GB/s, GPU names". */
void drv_probe_summary(const struct drv_hw *hw, char *out, size_t size);
/* Parses a profile. DRV_EINVAL with the field named ("cpu.cores: missing",
 * "devices[1].type: must be cpu, gpu, igpu or accel") when it is not one. */
int drv_probe_profile_parse(const char *text, size_t len, struct drv_hw *out, struct drv_err *err);
/* Reads and parses the profile at path (at most 1 MiB). */
int drv_probe_profile_load(const char *path, struct drv_hw *out, struct drv_err *err);

#endif
