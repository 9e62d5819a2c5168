#include "backend/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void drv_gen_request_init(struct drv_gen_request *r)
{
    memset(r, 0, sizeof(*r));
    r->kind = DRV_GEN_COMPLETE;
    r->prompt = "";
    r->sampling.temperature = NAN;
    r->sampling.top_k = -1;
    r->sampling.top_p = NAN;
    r->sampling.min_p = NAN;
    r->sampling.seed = -1;
    r->sampling.repeat_penalty = NAN;
    r->sampling.repeat_last_n = -2;
    r->sampling.presence_penalty = NAN;
    r->sampling.frequency_penalty = NAN;
    r->num_predict = -1;
    r->num_ctx = 0;
    r->format = DRV_FORMAT_TEXT;
    r->think = -1;
    r->keep_alive_ms = INT64_MIN;
}

int drv_backend_list(struct drv_backend *b, bool running, struct drv_model_desc **out)
{
    *out = NULL;
    int cap = 64;
    for (;;) {
        struct drv_model_desc *d = calloc((size_t)cap, sizeof(*d));
        if (d == NULL)
            return DRV_ENOMEM;
        int n = running ? b->ops->list_running(b, d, cap) : b->ops->list_models(b, d, cap);
        if (n <= cap) {
            *out = d;
            return n;
        }
        free(d); /* more came than fit: again, with room for all of them */
        cap = n;
    }
}
