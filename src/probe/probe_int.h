/* probe internals: shared by probe's .c files only. */
#ifndef DRV_PROBE_INT_H
#define DRV_PROBE_INT_H

#include "probe/probe.h"

#include <stdio.h>

/* Reads root+path (at most cap-1 bytes, terminated). Returns bytes read, or -1. */
long drv_probe_read_file(const char *root, const char *path, char *out, size_t cap);

#endif
