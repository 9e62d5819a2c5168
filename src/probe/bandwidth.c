/* bandwidth: how fast this machine's cores together read RAM — the number
 * generation speed is bound by (REFERENCE §5). */
#include "probe/probe_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/engine.h"

struct reader {
    pthread_t tid;
    const uint64_t *p;
    size_t n; /* words */
    uint64_t sum;
    bool fill; /* write the slice instead of reading it */
};

static void *read_slice(void *arg)
{
    struct reader *r = arg;
    if (r->fill) {
        /* first touch by the thread that reads it: pages land on its NUMA node */
        uint64_t *w = (uint64_t *)r->p;
        for (size_t i = 0; i < r->n; i++)
            w[i] = i;
        return NULL;
    }
    /* four independent sums keep several loads in flight per core */
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= r->n; i += 4) {
        s0 += r->p[i];
        s1 += r->p[i + 1];
        s2 += r->p[i + 2];
        s3 += r->p[i + 3];
    }
    for (; i < r->n; i++)
        s0 += r->p[i];
    r->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Read by the passes so the compiler keeps the sums. */
static volatile uint64_t bandwidth_sink;

int drv_probe_bandwidth(double seconds, int threads, uint64_t bytes, double *gbps,
                        struct drv_err *err)
{
    *gbps = -1;
    if (threads <= 0)
        threads = drv_physical_cores();
    if (threads < 1)
        threads = 1;
    if (threads > 256)
        threads = 256;
    if (bytes == 0) {
        struct drv_hw_cpu cpu;
        struct drv_hw_memory mem;
        drv_probe_cpu("", true, &cpu);
        drv_probe_memory("", &mem);
        bytes = (uint64_t)512 << 20;
        if (cpu.l3_bytes * 4 > bytes)
            bytes = cpu.l3_bytes * 4;
        if (mem.available_bytes > 0 && bytes > mem.available_bytes / 4)
            bytes = mem.available_bytes / 4;
    }
    size_t words = (size_t)(bytes / sizeof(uint64_t));
    words -= words % (size_t)threads;
    if (words < (size_t)threads * 64)
        return drv_err_set(err, DRV_EINVAL, "bandwidth buffer too small: %llu bytes",
                           (unsigned long long)bytes);
    size_t size = words * sizeof(uint64_t);
    uint64_t *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        buf = NULL;
    else
        madvise(buf, size, MADV_HUGEPAGE); /* fewer page faults and TLB misses */
    struct reader *rd = calloc((size_t)threads, sizeof(*rd));
    if (buf == NULL || rd == NULL) {
        if (buf)
            munmap(buf, size);
        free(rd);
        return drv_err_set(err, DRV_ENOMEM, "no memory for a %llu-byte bandwidth buffer",
                           (unsigned long long)bytes);
    }
    size_t per = words / (size_t)threads;
    uint64_t start = drv_now_ns();
    uint64_t budget = (uint64_t)(seconds * 1e9);
    uint64_t best = UINT64_MAX;
    int rc = 0;
    /* pass 0 touches every page so the others read RAM, not the zero page */
    for (int pass = 0;; pass++) {
        uint64_t t0 = drv_now_ns();
        int started = 0;
        for (int t = 0; t < threads; t++) {
            rd[t].p = buf + (size_t)t * per;
            rd[t].n = per;
            rd[t].fill = pass == 0;
            if (pthread_create(&rd[t].tid, NULL, read_slice, &rd[t]) != 0)
                break;
            started++;
        }
        uint64_t sum = 0;
        for (int t = 0; t < started; t++) {
            pthread_join(rd[t].tid, NULL);
            sum += rd[t].sum;
        }
        bandwidth_sink += sum;
        if (started < threads) {
            rc = drv_err_set(err, DRV_EIO, "cannot start %d bandwidth threads", threads);
            break;
        }
        uint64_t dt = drv_now_ns() - t0;
        if (pass > 0 && dt < best)
            best = dt;
        if (pass > 0 && drv_now_ns() - start >= budget)
            break;
    }
    if (rc == 0)
        *gbps = (double)(words * sizeof(uint64_t)) / (double)(best ? best : 1);
    munmap(buf, size);
    free(rd);
    return rc;
}
