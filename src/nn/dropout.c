/* Inverted dropout. */
#include "nn/ops.h"

/* Values per block of the mask: each block draws from its own generator, seeded by one draw
 * of rng, so blocks can be filled in parallel and the mask depends on the seed only (not on
 * the number of threads). */
enum { DROP_BLOCK = 16384 };

/* Keeps each value with probability 1-p (uniform draw >= p), scaled by 1/(1-p); mask holds
 * the factor applied. rng advances by one draw per block of DROP_BLOCK values. */
/* out = in * mask, or with add: out = add + in * mask (the product rounded first, as a separate
 * add of the dropped values would). */
static inline void drop_value(float *out, float *mask, const float *in, const float *add, size_t i, float m) {
    mask[i] = m;
    float d = in[i] * m;
    out[i] = add ? add[i] + d : d;
}

static void dropout_impl(float *out, float *mask, const float *in, const float *add, size_t n, float p, mrm_rng *rng) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) drop_value(out, mask, in, add, i, 1.0f);
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
            for (size_t i = i0; i < i1; i++) drop_value(out, mask, in, add, i, mrm_rng_uniform_inline(&r) >= p ? keep : 0.0f);
        }
    }
}

void dropout_forward(float *out, float *mask, const float *in, size_t n, float p, mrm_rng *rng) {
    dropout_impl(out, mask, in, NULL, n, p, rng);
}
void dropout_add_forward(float *out, float *mask, const float *in, const float *add, size_t n, float p, mrm_rng *rng) {
    dropout_impl(out, mask, in, add, n, p, rng);
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

static void dropout_keyed_impl(float *out, float *mask, const float *in, const float *add, int rows, size_t row_len,
                               float p, const uint64_t *keys, uint64_t salt) {
    if (p <= 0.0f) {
        dropout_impl(out, mask, in, add, (size_t)rows * row_len, p, NULL);
        return;
    }
    float keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
#pragma omp parallel for if ((size_t)rows * row_len > 65536) schedule(static)
    for (int b = 0; b < rows; b++) {
        mrm_rng r;
        mrm_rng_seed(&r, keys[b] ^ (salt * 0x9e3779b97f4a7c15ULL));
        for (size_t i = (size_t)b * row_len, e = i + row_len; i < e; i++)
            drop_value(out, mask, in, add, i, mrm_rng_uniform_inline(&r) >= p ? keep : 0.0f);
    }
}

void dropout_forward_keyed(float *out, float *mask, const float *in, int rows, size_t row_len, float p,
                           const uint64_t *keys, uint64_t salt) {
    dropout_keyed_impl(out, mask, in, NULL, rows, row_len, p, keys, salt);
}
void dropout_add_forward_keyed(float *out, float *mask, const float *in, const float *add, int rows, size_t row_len,
                               float p, const uint64_t *keys, uint64_t salt) {
    dropout_keyed_impl(out, mask, in, add, rows, row_len, p, keys, salt);
}
