/* Reductions over time and over channels. */
#include <math.h>

#include "nn/ops.h"

/* (B, C, L) -> (B, C): mean over time, summed in double. */
void mean_time_forward(float *out, const float *in, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L;
        double acc = 0.0;
#pragma omp simd reduction(+ : acc)
        for (int t = 0; t < L; t++) acc += x[t];
        out[bc] = (float)(acc / L);
    }
}

/* din[b,c,t] += dout[b,c] / L. */
void mean_time_backward(float *din, const float *dout, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        float *d = din + (size_t)bc * L, g = dout[bc] / (float)L;
        for (int t = 0; t < L; t++) d[t] += g;
    }
}

/* First index of the maximum of x[0..n) with stride s (NaN wins, as PyTorch). */
static inline int argmax_strided(const float *x, int n, size_t s) {
    int best = 0;
    float m = x[0];
    if (isnan(m)) return 0;
    for (int i = 1; i < n; i++) {
        float v = x[(size_t)i * s];
        if (v > m || isnan(v)) {
            best = i;
            m = v;
            if (isnan(v)) break;
        }
    }
    return best;
}

/* (B, C, L) -> (B, C): max over time. */
void max_time_forward(float *out, const float *in, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L;
        out[bc] = x[argmax_strided(x, L, 1)];
    }
}

/* din[b,c,argmax] += dout[b,c]. */
void max_time_backward(float *din, const float *dout, const float *in, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L;
        din[(size_t)bc * L + argmax_strided(x, L, 1)] += dout[bc];
    }
}

/* in (B, C, L) -> out (B, 2, L): out[:,0,:] = max over C, out[:,1,:] = mean over C. */
void channel_maxmean_forward(float *out, const float *in, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * C * L;
        float *omax = out + (size_t)b * 2 * L, *omean = omax + L;
        for (int t = 0; t < L; t++) {
            omax[t] = x[t];
            omean[t] = x[t];
        }
        /* channel by channel, so the inner loop runs along contiguous time */
        for (int c = 1; c < C; c++) {
            const float *xc = x + (size_t)c * L;
            for (int t = 0; t < L; t++) {
                float v = xc[t];
                if ((v > omax[t] || isnan(v)) && !isnan(omax[t])) omax[t] = v;
                omean[t] += v;
            }
        }
        for (int t = 0; t < L; t++) omean[t] /= (float)C;
    }
}

/* din[b,argmax_c,t] += dout[b,0,t]; din[b,c,t] += dout[b,1,t] / C. */
void channel_maxmean_backward(float *din, const float *dout, const float *in, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * C * L, *gmax = dout + (size_t)b * 2 * L, *gmean = gmax + L;
        float *d = din + (size_t)b * C * L;
        float invC = 1.0f / (float)C;
        for (int c = 0; c < C; c++)
            for (int t = 0; t < L; t++) d[(size_t)c * L + t] += gmean[t] * invC;
        for (int t = 0; t < L; t++) d[(size_t)argmax_strided(x + t, C, (size_t)L) * L + t] += gmax[t];
    }
}
