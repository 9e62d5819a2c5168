#include "backend/backend.h"

#include <math.h>
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
