/* store internals: what the store's unit test needs beyond store.h. */
#ifndef DRV_STORE_INT_H
#define DRV_STORE_INT_H

#include "store/store.h"

/* How long drv_store_open waits for another process's lock. */
#define DRV_STORE_BUSY_MS 5000

/* drv_store_open with the lock wait in milliseconds (tests use a short one). The
 * handle keeps busy_ms for every later statement. */
int drv_store_open_busy(const char *path, int busy_ms, struct drv_store **out, struct drv_err *err);

#endif
