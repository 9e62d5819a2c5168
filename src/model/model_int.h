/* model — details shared by the module's .c files only. */
#ifndef DRV_MODEL_INT_H
#define DRV_MODEL_INT_H

/* Routes ggml's log (gguf reader and writer messages) into drover's log; error
 * lines are kept for the caller's one-line message instead of going to stderr. */
void drv_model_route_ggml_log(void);

#endif
