/* LayerNorm over channels at each time step ("channels_first"). */
#include <math.h>

#include "nn/ops.h"

/* For each (b, t): y = (x[b,:,t] - mean) * rstd, out = y * w[c] + bias[c]; mean, rstd (B, L).
 * The channel loops run outermost so the inner loops go along contiguous time; sums in double. */
void layernorm_ch_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                          const float *bias, int B, int C, int L, float eps) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * C * L;
        float *o = out + (size_t)b * C * L, *mu = mean + (size_t)b * L, *rs = rstd + (size_t)b * L;
        for (int t = 0; t < L; t++) {
            double s = 0.0;
            for (int c = 0; c < C; c++) s += x[(size_t)c * L + t];
            double m = s / C, ss = 0.0;
            for (int c = 0; c < C; c++) {
                double d = x[(size_t)c * L + t] - m;
                ss += d * d;
            }
            mu[t] = (float)m;
            rs[t] = (float)(1.0 / sqrt(ss / C + eps));
        }
        for (int c = 0; c < C; c++) {
            const float *xc = x + (size_t)c * L;
            float *oc = o + (size_t)c * L, wc = w[c], bc = bias[c];
            for (int t = 0; t < L; t++) oc[t] = (xc[t] - mu[t]) * rs[t] * wc + bc;
        }
    }
}

/* With y = (x - mean) * rstd and g = dout * w (per channel):
 *   dbias[c] += sum dout, dw[c] += sum dout * y (over b, t),
 *   din += rstd * (g - mean_c(g) - y * mean_c(g * y)). */
void layernorm_ch_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *w, int B, int C, int L) {
    if (dw || dbias) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
        for (int c = 0; c < C; c++) {
            double sw = 0.0, sb = 0.0;
            for (int b = 0; b < B; b++) {
                const float *g = dout + ((size_t)b * C + c) * L, *x = in + ((size_t)b * C + c) * L;
                const float *mu = mean + (size_t)b * L, *rs = rstd + (size_t)b * L;
                for (int t = 0; t < L; t++) {
                    sb += g[t];
                    sw += (double)g[t] * ((x[t] - mu[t]) * rs[t]);
                }
            }
            if (dw) dw[c] += (float)sw;
            if (dbias) dbias[c] += (float)sb;
        }
    }
    if (!din) return;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * C * L, *g = dout + (size_t)b * C * L;
        const float *mu = mean + (size_t)b * L, *rs = rstd + (size_t)b * L;
        float *d = din + (size_t)b * C * L;
        for (int t = 0; t < L; t++) {
            double sg = 0.0, sgy = 0.0;
            for (int c = 0; c < C; c++) {
                double gc = (double)g[(size_t)c * L + t] * w[c];
                sg += gc;
                sgy += gc * ((x[(size_t)c * L + t] - mu[t]) * rs[t]);
            }
            float mg = (float)(sg / C), mgy = (float)(sgy / C);
            for (int c = 0; c < C; c++) {
                size_t i = (size_t)c * L + t;
                float y = (x[i] - mu[t]) * rs[t];
                d[i] += rs[t] * (g[i] * w[c] - mg - y * mgy);
            }
        }
    }
}
