/* Inverted dropout. */
#include "nn/ops.h"

/* Values per block of the mask: each block draws from its own generator, seeded by one draw
 * of rng, so blocks can be filled in parallel and the mask depends on the seed only (not on
 * the number of threads). */
enum { DROP_BLOCK = 16384 };

/* Keeps each value with probability 1-p (uniform draw >= p), scaled by 1/(1-p); mask holds
 * the factor applied. rng advances by one draw per block of DROP_BLOCK values. */
void dropout_forward(float *out, float *mask, const float *in, size_t n, float p, mrm_rng *rng) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) {
            mask[i] = 1.0f;
            out[i] = in[i];
        }
        return;
    }
    float keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    size_t nblocks = (n + DROP_BLOCK - 1) / DROP_BLOCK;
    enum { SEEDS = 256 };
    uint64_t seeds[SEEDS];
    for (size_t b0 = 0; b0 < nblocks; b0 += SEEDS) {
        size_t nb = nblocks - b0 < SEEDS ? nblocks - b0 : SEEDS;
        for (size_t j = 0; j < nb; j++) seeds[j] = mrm_rng_next(rng);
#pragma omp parallel for if (nb > 1) schedule(static)
        for (size_t j = 0; j < nb; j++) {
            mrm_rng r;
            mrm_rng_seed(&r, seeds[j]);
            size_t i0 = (b0 + j) * DROP_BLOCK, i1 = i0 + DROP_BLOCK < n ? i0 + DROP_BLOCK : n;
            for (size_t i = i0; i < i1; i++) {
                mask[i] = mrm_rng_uniform_inline(&r) >= p ? keep : 0.0f;
                out[i] = in[i] * mask[i];
            }
        }
    }
}

/* din += dout * mask (set: din = dout * mask). */
void dropout_backward(float *din, const float *dout, const float *mask, size_t n) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}
void dropout_backward_set(float *din, const float *dout, const float *mask, size_t n) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * mask[i];
}

void dropout_forward_keyed(float *out, float *mask, const float *in, int rows, size_t row_len, float p,
                           const uint64_t *keys, uint64_t salt) {
    if (p <= 0.0f) {
        dropout_forward(out, mask, in, (size_t)rows * row_len, p, NULL);
        return;
    }
    float keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
#pragma omp parallel for if ((size_t)rows * row_len > 65536) schedule(static)
    for (int b = 0; b < rows; b++) {
        mrm_rng r;
        mrm_rng_seed(&r, keys[b] ^ (salt * 0x9e3779b97f4a7c15ULL));
        for (size_t i = (size_t)b * row_len, e = i + row_len; i < e; i++) {
            mask[i] = mrm_rng_uniform_inline(&r) >= p ? keep : 0.0f;
            out[i] = in[i] * mask[i];
        }
    }
}
