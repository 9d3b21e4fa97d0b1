/* The fused BN + ReLU + max pooling of the training units (bn_relu_pool_forward_train,
 * bn_relu_pool_backward) against the passes they replace, bit for bit: bn_relu_forward_train then
 * maxpool2(s1)_forward, and maxpool2(s1)_backward_set then bn_relu_backward with the ReLU mask
 * from z. Both poolings (stride 1 with padding, stride 2), rows of 1, 2, an odd length and a
 * long one, ties, zeros, -0, NaN and values the ReLU clips; 1 and 2 threads. */
#include <omp.h>
#include <stdint.h>

#include "common/rng.h"
#include "model/model_internal.h"
#include "nn/ops.h"
#include "test_util.h"

static float *alloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static int same_bits(const float *a, const float *b, size_t n) { return n == 0 || memcmp(a, b, n * sizeof(float)) == 0; }

/* z with ties (values on a coarse grid), exact zeros, -0, NaN and both signs */
static void fill(float *z, size_t n, mrm_rng *r, int specials) {
    for (size_t i = 0; i < n; i++) z[i] = (float)((int)mrm_rng_below(r, 9) - 4) * 0.5f + 0.25f * mrm_rng_uniform(r);
    if (!specials) return;
    for (size_t i = 0; i < n; i += 7) z[i] = z[i ? i - 1 : 0]; /* a tie with the neighbour */
    for (size_t i = 3; i < n; i += 11) z[i] = 0.0f;
    for (size_t i = 5; i < n; i += 13) z[i] = -0.0f;
    if (n > 9) z[9] = NAN;
}

static void check_case(int B, int C, int L, int pool, int threads, int specials, mrm_rng *r) {
    omp_set_num_threads(threads);
    const int Lo = pool == 1 ? L + 1 : L / 2;
    size_t n = (size_t)B * C * L, no = (size_t)B * C * Lo;
    float *z = alloc(n), *gamma = alloc(C), *beta = alloc(C), *dout = alloc(no);
    fill(z, n, r, specials);
    fill(dout, no, r, 0);
    for (int c = 0; c < C; c++) gamma[c] = 0.5f + 0.1f * c, beta[c] = c % 2 ? -0.3f : 0.2f;
    /* the passes as the model ran them before */
    float *y = alloc(n), *out1 = alloc(no), *st1 = alloc(6 * (size_t)C), *dy = alloc(n), *dz1 = alloc(n), *dg1 = alloc(2 * (size_t)C);
    float *mean1 = st1, *rstd1 = st1 + C, *sc1 = st1 + 2 * C, *sh1 = st1 + 3 * C, *rm1 = st1 + 4 * C, *rv1 = st1 + 5 * C;
    for (int c = 0; c < C; c++) rv1[c] = 1.0f;
    bn_relu_forward_train(y, mean1, rstd1, sc1, sh1, rm1, rv1, z, gamma, beta, B, C, L, 1e-5f, 0.1f, 1);
    if (pool == 1)
        maxpool2s1_forward(out1, y, B, C, L);
    else
        maxpool2_forward(out1, y, B, C, L);
    if (pool == 1)
        maxpool2s1_backward_set(dy, dout, y, B, C, L);
    else
        maxpool2_backward_set(dy, dout, y, B, C, L);
    bn_relu_backward(dz1, dg1, dg1 + C, dy, y, z, mean1, rstd1, sc1, sh1, gamma, B, C, L);
    /* fused */
    float *out2 = alloc(no), *st2 = alloc(6 * (size_t)C), *dz2 = alloc(n), *dg2 = alloc(2 * (size_t)C);
    float *mean2 = st2, *rstd2 = st2 + C, *sc2 = st2 + 2 * C, *sh2 = st2 + 3 * C, *rm2 = st2 + 4 * C, *rv2 = st2 + 5 * C;
    for (int c = 0; c < C; c++) rv2[c] = 1.0f;
    float *work = alloc(bn_relu_pool_backward_work(B, L));
    bn_relu_pool_forward_train(out2, mean2, rstd2, sc2, sh2, rm2, rv2, z, gamma, beta, B, C, L, 1e-5f, 0.1f, pool);
    bn_relu_pool_backward(dz2, dg2, dg2 + C, dout, z, mean2, rstd2, sc2, sh2, gamma, B, C, L, pool, work);
    char what[96];
    snprintf(what, sizeof what, "B %d C %d L %d pool %d, %d thread(s)%s", B, C, L, pool, threads,
             specials ? ", ties/0/-0/NaN" : "");
    CHECK(same_bits(out1, out2, no), "pooled output: %s", what);
    CHECK(same_bits(st1, st2, 6 * (size_t)C), "statistics, affine maps, running statistics: %s", what);
    CHECK(same_bits(dz1, dz2, n), "dz: %s", what);
    CHECK(same_bits(dg1, dg2, 2 * (size_t)C), "dgamma, dbeta: %s", what);
    /* a mutation check of the comparison itself: a changed gradient must show */
    if (no) {
        dout[0] += 1.0f;
        bn_relu_pool_backward(dz2, dg2, dg2 + C, dout, z, mean2, rstd2, sc2, sh2, gamma, B, C, L, pool, work);
        CHECK(!same_bits(dz1, dz2, n) || !same_bits(dg1, dg2, 2 * (size_t)C), "a changed dout changes the result: %s",
              what);
    }
    free(z), free(gamma), free(beta), free(dout), free(y), free(out1), free(st1), free(dy), free(dz1), free(dg1);
    free(out2), free(st2), free(dz2), free(dg2), free(work);
}

int main(void) {
    mrm_rng r;
    mrm_rng_seed(&r, 20261205);
    const int lens[] = {1, 2, 7, 64, 1037};
    for (int pool = 1; pool <= 2; pool++)
        for (int li = 0; li < 5; li++)
            for (int threads = 1; threads <= 2; threads++)
                for (int specials = 0; specials <= 1; specials++) {
                    int L = lens[li];
                    if (pool == 2 && L < 2) continue; /* no window */
                    /* large enough for the parallel paths (B C L > 65536) where L allows */
                    int B = L >= 64 ? 24 : 5, C = L >= 64 ? 48 : 3;
                    check_case(B, C, L, pool, threads, specials, &r);
                }
    TEST_END();
}
