/* The _set variants of the ReLU, dropout, max-pool and channel-LayerNorm backward
 * passes (ops.h) against their accumulating forms run into a zeroed buffer: the same values (a set
 * pass writes +0 where the accumulating one adds to +0), written over whatever the buffer held,
 * with ties (PyTorch's rule: the first maximal element wins), odd lengths and length 1; the
 * LayerNorm's weight and bias gradients accumulate alike in both forms. The Fusion attention's
 * one-pass input gradient (attention_input_backward, set and accumulating, its dl1 and dl2 the
 * halves of one concatenated gradient) against scale_time, channel_maxmean, scale_channels,
 * max_time and mean_time's backward passes in turn, and the broadcast products with a sample
 * stride (_ld) against the plain ones; the Gate and SE blocks' one-pass input gradients
 * (gate_input_backward) and output (scale_channels_add_forward) against the passes they replace: the same bits, NaN inputs included.
 * The max over time (vectorised) against a scalar first-maximum scan. */
#include <math.h>
#include <string.h>

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
            /* the Fusion attention's input gradient; x with a NaN in the last sample */
            {
                const size_t ld = 2 * (size_t)C * L, nbl = (size_t)B * L, nbc = (size_t)B * C;
                float *gc = malloc((size_t)B * ld * sizeof(float)), *dl1 = malloc(n * sizeof(float));
                float *dl2 = malloc(n * sizeof(float)), *ca = malloc(nbc * sizeof(float)), *sa = malloc(nbl * sizeof(float));
                float *dmm = malloc(2 * nbl * sizeof(float)), *dmax = malloc(nbc * sizeof(float));
                float *davg = malloc(nbc * sizeof(float)), *vmax = malloc(nbl * sizeof(float));
                int *amax = malloc(nbl * sizeof(int));
                fill(gc, (size_t)B * ld, &r, 0), fill(ca, nbc, &r, 0), fill(sa, nbl, &r, 0);
                fill(dmm, 2 * nbl, &r, 0), fill(dmax, nbc, &r, 0), fill(davg, nbc, &r, 0);
                float *xn = malloc(n * sizeof(float));
                memcpy(xn, x, n * sizeof(float));
                xn[n - 1 - (size_t)(L / 2)] = NAN;
                for (int b = 0; b < B; b++) {
                    memcpy(dl1 + (size_t)b * C * L, gc + (size_t)b * ld, (size_t)C * L * sizeof(float));
                    memcpy(dl2 + (size_t)b * C * L, gc + (size_t)b * ld + (size_t)C * L, (size_t)C * L * sizeof(float));
                }
                for (int accum = 0; accum < 2; accum++)
                    for (int nan = 0; nan < 2; nan++) {
                        const float *xx = nan ? xn : x;
                        for (size_t i = 0; i < n; i++) acc[i] = accum ? g1[i] : 0.0f, set[i] = accum ? g1[i] : 1e30f;
                        scale_time_backward(acc, NULL, dl2, xx, sa, B, C, L);
                        channel_maxmean_backward(acc, dmm, xx, B, C, L);
                        scale_channels_backward(acc, NULL, dl1, xx, ca, B, C, L);
                        max_time_backward(acc, dmax, xx, B, C, L);
                        mean_time_backward(acc, davg, B, C, L);
                        attention_input_backward(set, !accum, gc, gc + (size_t)C * L, ld, xx, ca, sa, dmm, dmax, davg,
                                                 amax, vmax, B, C, L);
                        int ok = 1;
                        for (size_t i = 0; i < n; i++) ok &= memcmp(&acc[i], &set[i], sizeof(float)) == 0 || (isnan(acc[i]) && isnan(set[i]));
                        CHECK(ok, "attention_input_backward L=%d ties=%d accumulate=%d nan=%d", L, ties, accum, nan);
                    }
                /* the products with a sample stride: forward into a concatenation's halves,
                 * backward from them (ds too) */
                {
                    float *o1 = malloc(n * sizeof(float)), *o2 = malloc((size_t)B * ld * sizeof(float));
                    float *s1 = calloc(nbl, sizeof(float)), *s2 = calloc(nbl, sizeof(float));
                    float *c1 = calloc(nbc, sizeof(float)), *c2 = calloc(nbc, sizeof(float));
                    float *e1 = malloc(n * sizeof(float)), *e2 = malloc(n * sizeof(float));
                    int ok = 1;
                    scale_channels_forward(o1, x, ca, B, C, L);
                    scale_channels_forward_ld(o2, ld, x, ca, B, C, L);
                    for (int b = 0; b < B; b++) ok &= memcmp(o1 + (size_t)b * C * L, o2 + (size_t)b * ld, (size_t)C * L * sizeof(float)) == 0;
                    scale_time_forward(o1, x, sa, B, C, L);
                    scale_time_forward_ld(o2 + (size_t)C * L, ld, x, sa, B, C, L);
                    for (int b = 0; b < B; b++)
                        ok &= memcmp(o1 + (size_t)b * C * L, o2 + (size_t)b * ld + (size_t)C * L, (size_t)C * L * sizeof(float)) == 0;
                    memcpy(e1, g1, n * sizeof(float)), memcpy(e2, g1, n * sizeof(float));
                    scale_channels_backward(e1, c1, dl1, x, ca, B, C, L);
                    scale_channels_backward_ld(e2, c2, gc, ld, x, ca, B, C, L);
                    ok &= memcmp(e1, e2, n * sizeof(float)) == 0 && memcmp(c1, c2, nbc * sizeof(float)) == 0;
                    scale_time_backward(e1, s1, dl2, x, sa, B, C, L);
                    scale_time_backward_ld(e2, s2, gc + (size_t)C * L, ld, x, sa, B, C, L);
                    ok &= memcmp(e1, e2, n * sizeof(float)) == 0 && memcmp(s1, s2, nbl * sizeof(float)) == 0;
                    CHECK(ok, "scale_*_ld L=%d ties=%d", L, ties);
                    free(o1), free(o2), free(s1), free(s2), free(c1), free(c2), free(e1), free(e2);
                }
                free(gc), free(dl1), free(dl2), free(ca), free(sa), free(dmm), free(dmax), free(davg), free(vmax);
                free(amax), free(xn);
            }
            /* the Gate / SE blocks' input gradients in one pass, dx set and accumulating, against
             * zeroing dh, scale_channels_backward (dx NULL), mean_time_backward and a copy (add) */
            for (int dx_set = 0; dx_set < 2; dx_set++) {
                size_t nbc = (size_t)B * C;
                float *sc = malloc(nbc * sizeof(float)), *gm = malloc(nbc * sizeof(float));
                float *dh1 = calloc(n, sizeof(float)), *dh2 = malloc(n * sizeof(float));
                float *dx1 = malloc(n * sizeof(float)), *dx2 = malloc(n * sizeof(float));
                fill(sc, nbc, &r, ties), fill(gm, nbc, &r, 0), fill(dx1, n, &r, 0);
                if (L == 7) g1[3] = NAN, sc[1] = -0.0f; /* NaN and -0 pass through alike */
                memcpy(dx2, dx1, n * sizeof(float));
                for (size_t i = 0; i < n; i++) dh2[i] = 1e30f;
                scale_channels_backward(dh1, NULL, g1, x, sc, B, C, L);
                mean_time_backward(dh1, gm, B, C, L);
                for (size_t i = 0; i < n; i++) dx1[i] = dx_set ? g1[i] : dx1[i] + g1[i];
                gate_input_backward(dh2, dx2, dx_set, g1, sc, gm, B, C, L);
                CHECK(!memcmp(dh1, dh2, n * sizeof(float)) && !memcmp(dx1, dx2, n * sizeof(float)),
                      "gate_input_backward L=%d ties=%d set=%d", L, ties, dx_set);
                /* and their forward, x + h * s, against scale_channels_forward then add_forward */
                scale_channels_forward(dh1, g1, sc, B, C, L);
                add_forward(dh1, dh1, x, n);
                scale_channels_add_forward(dh2, g1, sc, x, B, C, L);
                CHECK(!memcmp(dh1, dh2, n * sizeof(float)), "scale_channels_add_forward L=%d ties=%d", L, ties);
                free(sc), free(gm), free(dh1), free(dh2), free(dx1), free(dx2);
            }
            free(x), free(g1), free(g2), free(acc), free(set);
        }
    /* max over time (vectorised) against the first maximal element by a scalar scan, NaN
     * winning: the same bits, with ties, NaN, +0 and -0 as a row's maximum, length 1 */
    const int lens[] = {1, 2, 7, 64, 251};
    for (int li = 0; li < 5; li++)
        for (int ties = 0; ties < 2; ties++) {
            int B = 3, C = 5, L = lens[li];
            size_t n = (size_t)B * C * L, nbc = (size_t)B * C;
            float *x = malloc(n * sizeof(float)), *o = malloc(nbc * sizeof(float)), *ref = malloc(nbc * sizeof(float));
            fill(x, n, &r, ties);
            if (L >= 7) {
                x[3] = NAN; /* row 0 */
                for (int t = 0; t < L; t++) x[(size_t)1 * L + t] = -1.0f - (float)t; /* row 1: all negative... */
                x[(size_t)1 * L + 2] = -0.0f, x[(size_t)1 * L + 5] = 0.0f;       /* ...but -0 first, then +0 */
                for (int t = 0; t < L; t++) x[(size_t)2 * L + t] = -INFINITY;     /* row 2: all -inf */
                x[(size_t)3 * L + L - 1] = NAN;                                   /* row 3: NaN last */
                /* rows 4-9: zeros of both signs as the maximum at various positions (lanes) */
                for (int k = 0; k < 6; k++) {
                    float *xr = x + (size_t)(4 + k) * L;
                    for (int t = 0; t < L; t++) xr[t] = -2.0f;
                    int a = (k * 5) % L, b = (k * 11 + 3) % L;
                    xr[a] = k % 2 ? -0.0f : 0.0f, xr[b] = k % 2 ? 0.0f : -0.0f;
                }
            }
            for (size_t bc = 0; bc < nbc; bc++) {
                const float *xr = x + bc * L;
                int best = 0;
                for (int t = 1; t < L && xr[best] == xr[best]; t++)
                    if (xr[t] > xr[best] || xr[t] != xr[t]) best = t;
                ref[bc] = xr[best];
            }
            max_time_forward(o, x, B, C, L);
            CHECK(!memcmp(o, ref, nbc * sizeof(float)), "max_time_forward L=%d ties=%d", L, ties);
            free(x), free(o), free(ref);
        }
    TEST_END();
}
