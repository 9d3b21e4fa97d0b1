/* Inverted dropout. */
#include "nn/ops.h"

/* Keeps each value with probability 1-p (uniform draw >= p), scaled by 1/(1-p); mask holds
 * the factor applied. Draws one number per value in order, so a seed gives one mask. */
void dropout_forward(float *out, float *mask, const float *in, size_t n, float p, mrm_rng *rng) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) {
            mask[i] = 1.0f;
            out[i] = in[i];
        }
        return;
    }
    float keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = mrm_rng_uniform(rng) >= p ? keep : 0.0f;
        out[i] = in[i] * mask[i];
    }
}

/* din += dout * mask. */
void dropout_backward(float *din, const float *dout, const float *mask, size_t n) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}
