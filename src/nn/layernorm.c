/* LayerNorm over channels at each time step ("channels_first"). */
#include <math.h>
#include <stdlib.h>

#include "nn/ops.h"

/* Time steps handled together: the per-step sums live on the stack and the loops over
 * channels run along contiguous time. */
enum { TCHUNK = 256 };

/* For each (b, t): y = (x[b,:,t] - mean) * rstd, out = y * w[c] + bias[c]; mean, rstd (B, L).
 * Sums in double, two passes (mean, then centred squares). */
void layernorm_ch_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                          const float *bias, int B, int C, int L, float eps) {
    int nchunks = (L + TCHUNK - 1) / TCHUNK;
#pragma omp parallel for collapse(2) if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < nchunks; ch++) {
            int t0 = ch * TCHUNK, n = L - t0 < TCHUNK ? L - t0 : TCHUNK;
            const float *x = in + (size_t)b * C * L + t0;
            float *o = out + (size_t)b * C * L + t0, *mu = mean + (size_t)b * L + t0, *rs = rstd + (size_t)b * L + t0;
            double s[TCHUNK], m[TCHUNK];
            for (int t = 0; t < n; t++) s[t] = 0.0;
            for (int c = 0; c < C; c++) {
                const float *xc = x + (size_t)c * L;
                for (int t = 0; t < n; t++) s[t] += xc[t];
            }
            for (int t = 0; t < n; t++) {
                m[t] = s[t] / C;
                s[t] = 0.0;
            }
            for (int c = 0; c < C; c++) {
                const float *xc = x + (size_t)c * L;
                for (int t = 0; t < n; t++) {
                    double d = xc[t] - m[t];
                    s[t] += d * d;
                }
            }
            for (int t = 0; t < n; t++) {
                mu[t] = (float)m[t];
                rs[t] = (float)(1.0 / sqrt(s[t] / C + eps));
            }
            for (int c = 0; c < C; c++) {
                const float *xc = x + (size_t)c * L;
                float *oc = o + (size_t)c * L, wc = w[c], bc = bias[c];
                for (int t = 0; t < n; t++) oc[t] = (xc[t] - mu[t]) * rs[t] * wc + bc;
            }
        }
}

/* With y = (x - mean) * rstd and g = dout * w (per channel):
 *   dbias[c] += sum dout, dw[c] += sum dout * y (over b, t),
 *   din += rstd * (g - mean_c(g) - y * mean_c(g * y)).
 * din is computed per (sample, chunk of time steps), a chunk's rows read twice while they are
 * in cache; the pass writing din also sums each channel's dout and dout * y over the chunk (in
 * double) into a slot of its own, and the slots are added per channel in (sample, chunk) order
 * afterwards: one pass over dout and in instead of two, and the same bits for any number of
 * threads. Without din, or when the slots cannot be had, the weight sums are a pass of their
 * own over the channels. */
static void ln_weight_sums(float *dw, float *dbias, const float *dout, const float *in, const float *mean,
                           const float *rstd, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536) schedule(static)
    for (int c = 0; c < C; c++) {
        double sw = 0.0, sb = 0.0;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * C + c) * L, *x = in + ((size_t)b * C + c) * L;
            const float *mu = mean + (size_t)b * L, *rs = rstd + (size_t)b * L;
#pragma omp simd reduction(+ : sw, sb)
            for (int t = 0; t < L; t++) {
                sb += g[t];
                sw += (double)g[t] * ((x[t] - mu[t]) * rs[t]);
            }
        }
        if (dw) dw[c] += (float)sw;
        if (dbias) dbias[c] += (float)sb;
    }
}

static void ln_backward(float *din, float *dw, float *dbias, const float *dout, const float *in, const float *mean,
                        const float *rstd, const float *w, int B, int C, int L, int set) {
    const int nchunks = (L + TCHUNK - 1) / TCHUNK;
    const size_t nslots = (size_t)B * nchunks;
    /* slot k = b * nchunks + ch: C sums of dout, then C of dout * y */
    double *slots = din && (dw || dbias) && nslots ? malloc(nslots * 2 * (size_t)C * sizeof(double)) : NULL;
    if ((dw || dbias) && !slots) ln_weight_sums(dw, dbias, dout, in, mean, rstd, B, C, L);
    if (!din) return;
#pragma omp parallel for collapse(2) if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < nchunks; ch++) {
            int t0 = ch * TCHUNK, n = L - t0 < TCHUNK ? L - t0 : TCHUNK;
            size_t base = (size_t)b * C * L + t0;
            const float *mu = mean + (size_t)b * L + t0, *rs = rstd + (size_t)b * L + t0;
            double *sl = slots ? slots + ((size_t)b * nchunks + ch) * 2 * C : NULL;
            double sg[TCHUNK], sgy[TCHUNK];
            for (int t = 0; t < n; t++) sg[t] = sgy[t] = 0.0;
            for (int c = 0; c < C; c++) {
                const float *g = dout + base + (size_t)c * L, *x = in + base + (size_t)c * L;
                double wc = w[c];
                for (int t = 0; t < n; t++) {
                    double gc = g[t] * wc;
                    sg[t] += gc;
                    sgy[t] += gc * ((x[t] - mu[t]) * rs[t]);
                }
            }
            float mg[TCHUNK], mgy[TCHUNK];
            for (int t = 0; t < n; t++) {
                mg[t] = (float)(sg[t] / C);
                mgy[t] = (float)(sgy[t] / C);
            }
            for (int c = 0; c < C; c++) {
                const float *g = dout + base + (size_t)c * L, *x = in + base + (size_t)c * L;
                float *d = din + base + (size_t)c * L, wc = w[c];
                double sb = 0.0, sw = 0.0;
                if (set)
#pragma omp simd reduction(+ : sw, sb)
                    for (int t = 0; t < n; t++) {
                        float y = (x[t] - mu[t]) * rs[t];
                        d[t] = rs[t] * (g[t] * wc - mg[t] - y * mgy[t]);
                        sb += g[t];
                        sw += (double)g[t] * y;
                    }
                else
#pragma omp simd reduction(+ : sw, sb)
                    for (int t = 0; t < n; t++) {
                        float y = (x[t] - mu[t]) * rs[t];
                        d[t] += rs[t] * (g[t] * wc - mg[t] - y * mgy[t]);
                        sb += g[t];
                        sw += (double)g[t] * y;
                    }
                if (sl) sl[c] = sb, sl[C + c] = sw;
            }
        }
    if (!slots) return;
#pragma omp parallel for if ((size_t)C * nslots > 8192) schedule(static) /* a strided read: cheap to split */
    for (int c = 0; c < C; c++) {
        double sb = 0.0, sw = 0.0;
        for (size_t k = 0; k < nslots; k++) {
            sb += slots[k * 2 * C + c];
            sw += slots[k * 2 * C + C + c];
        }
        if (dw) dw[c] += (float)sw;
        if (dbias) dbias[c] += (float)sb;
    }
    free(slots);
}

void layernorm_ch_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *w, int B, int C, int L) {
    ln_backward(din, dw, dbias, dout, in, mean, rstd, w, B, C, L, 0);
}

void layernorm_ch_backward_set(float *din, float *dw, float *dbias, const float *dout, const float *in,
                               const float *mean, const float *rstd, const float *w, int B, int C, int L) {
    ln_backward(din, dw, dbias, dout, in, mean, rstd, w, B, C, L, 1);
}
