/* The _set variants of the ReLU, dropout, max-pool, channel-LayerNorm and channel-concat backward
 * passes (ops.h) against their accumulating forms run into a zeroed buffer: the same values (a set
 * pass writes +0 where the accumulating one adds to +0), written over whatever the buffer held,
 * with ties (PyTorch's rule: the first maximal element wins), odd lengths and length 1; the
 * LayerNorm's weight and bias gradients accumulate alike in both forms. */
#include "../test_util.h"
#include "common/rng.h"
#include "nn/ops.h"

static void fill(float *x, size_t n, mrm_rng *r, int ties) {
    for (size_t i = 0; i < n; i++) x[i] = ties ? (float)(mrm_rng_next(r) % 3) : mrm_rng_uniform_range(r, -1.0f, 1.0f);
}

/* |a - b| == 0 everywhere (+0 and -0 compare equal) */
static int same(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

int main(void) {
    mrm_rng r;
    mrm_rng_seed(&r, 5);
    const int Ls[] = {1, 2, 7, 8, 251};
    for (int li = 0; li < 5; li++)
        for (int ties = 0; ties < 2; ties++) {
            int B = 3, C = 4, L = Ls[li];
            size_t n = (size_t)B * C * L, n1 = (size_t)B * C * (L + 1), n2 = (size_t)B * C * (L / 2);
            float *x = malloc(n * sizeof(float)), *g1 = malloc(n1 * sizeof(float)), *g2 = malloc((n2 ? n2 : 1) * sizeof(float));
            float *acc = calloc(n, sizeof(float)), *set = malloc(n * sizeof(float));
            fill(x, n, &r, ties), fill(g1, n1, &r, 0), fill(g2, n2, &r, 0);
            /* max pool k2 s1 p1: dout (B, C, L+1) */
            maxpool2s1_backward(acc, g1, x, B, C, L);
            for (size_t i = 0; i < n; i++) set[i] = 1e30f; /* garbage to be overwritten */
            maxpool2s1_backward_set(set, g1, x, B, C, L);
            CHECK(same(acc, set, n), "maxpool2s1 L=%d ties=%d", L, ties);
            /* max pool 2: dout (B, C, L/2); an odd last element gets 0 */
            for (size_t i = 0; i < n; i++) acc[i] = 0.0f, set[i] = 1e30f;
            maxpool2_backward(acc, g2, x, B, C, L);
            maxpool2_backward_set(set, g2, x, B, C, L);
            CHECK(same(acc, set, n), "maxpool2 L=%d ties=%d", L, ties);
            /* ReLU and dropout, elementwise */
            for (size_t i = 0; i < n; i++) acc[i] = 0.0f, set[i] = 1e30f;
            relu_backward(acc, g1, x, n);
            relu_backward_set(set, g1, x, n);
            CHECK(same(acc, set, n), "relu L=%d ties=%d", L, ties);
            for (size_t i = 0; i < n; i++) acc[i] = 0.0f, set[i] = 1e30f;
            dropout_backward(acc, g1, x, n);
            dropout_backward_set(set, g1, x, n);
            CHECK(same(acc, set, n), "dropout L=%d ties=%d", L, ties);
            /* LayerNorm over the C channels at each step (its statistics from the forward) */
            {
                float *y = malloc(n * sizeof(float)), *mean = malloc((size_t)B * L * sizeof(float));
                float *rstd = malloc((size_t)B * L * sizeof(float)), w[4], bia[4], dw1[4], db1[4], dw2[4], db2[4];
                for (int c = 0; c < C; c++)
                    w[c] = mrm_rng_uniform_range(&r, 0.5f, 1.5f), bia[c] = mrm_rng_uniform_range(&r, -0.5f, 0.5f),
                    dw1[c] = dw2[c] = 0.25f * c, db1[c] = db2[c] = -0.5f * c;
                layernorm_ch_forward(y, mean, rstd, x, w, bia, B, C, L, 1e-5f);
                for (size_t i = 0; i < n; i++) acc[i] = 0.0f, set[i] = 1e30f;
                layernorm_ch_backward(acc, dw1, db1, g1, x, mean, rstd, w, B, C, L);
                layernorm_ch_backward_set(set, dw2, db2, g1, x, mean, rstd, w, B, C, L);
                CHECK(same(acc, set, n) && same(dw1, dw2, 4) && same(db1, db2, 4), "layernorm L=%d ties=%d", L, ties);
                free(y), free(mean), free(rstd);
            }
            /* the channel concat's split: a (B, 1, L) and b (B, C - 1, L) from dout (B, C, L) */
            {
                const size_t na = (size_t)B * L, nb = (size_t)B * (C - 1) * L;
                float *a1 = calloc(na, sizeof(float)), *b1 = calloc(nb, sizeof(float));
                float *a2 = malloc(na * sizeof(float)), *b2 = malloc(nb * sizeof(float));
                for (size_t i = 0; i < na; i++) a2[i] = 1e30f;
                for (size_t i = 0; i < nb; i++) b2[i] = 1e30f;
                concat_ch_backward(a1, b1, g1, B, 1, C - 1, L);
                concat_ch_backward_set(a2, b2, g1, B, 1, C - 1, L);
                CHECK(same(a1, a2, na) && same(b1, b2, nb), "concat L=%d ties=%d", L, ties);
                free(a1), free(b1), free(a2), free(b2);
            }
            free(x), free(g1), free(g2), free(acc), free(set);
        }
    TEST_END();
}
