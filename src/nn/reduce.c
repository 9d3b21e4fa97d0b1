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

/* x[argmax_strided(x, n, 1)], vectorised: the maximum's value when the row has no NaN and its
 * maximum is not zero (equal nonzero floats have the same bits); otherwise (a NaN wins, or +0
 * and -0 compare equal and the first wins) from the scalar scan. */
static inline float row_max_value(const float *x, int n) {
    float m = -INFINITY;
    int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (int i = 0; i < n; i++) {
        nan |= x[i] != x[i];
        m = x[i] > m ? x[i] : m;
    }
    return nan || m == 0.0f ? x[argmax_strided(x, n, 1)] : m;
}

/* (B, C, L) -> (B, C): max over time. */
void max_time_forward(float *out, const float *in, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L;
        out[bc] = row_max_value(x, L);
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

void attention_input_backward(float *dx, int set, const float *dl1, const float *dl2, size_t ld, const float *x,
                              const float *ca, const float *sa, const float *dmm, const float *dmax,
                              const float *davg, int *amax, float *vmax, int B, int C, int L) {
    const float invC = 1.0f / (float)C;
#pragma omp parallel for if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * L, *gmax = dmm + (size_t)b * 2 * L, *gmean = gmax + L;
        const float *sr = sa + (size_t)b * L;
        /* the channel argmax at each step (argmax_strided's rule: the first maximum; a NaN wins
         * and stays), channel by channel so that the reads run along time */
        int *am = amax + (size_t)b * L;
        float *vm = vmax + (size_t)b * L;
        for (int t = 0; t < L; t++) am[t] = 0, vm[t] = xb[t];
        for (int c = 1; c < C; c++) {
            const float *xc = xb + (size_t)c * L;
            for (int t = 0; t < L; t++) {
                const float m = vm[t], v = xc[t];
                if (!isnan(m) && (v > m || isnan(v))) am[t] = c, vm[t] = v;
            }
        }
        for (int c = 0; c < C; c++) {
            const size_t off = (size_t)c * L;
            const float *xr = xb + off, *g1 = dl1 + (size_t)b * ld + off, *g2 = dl2 + (size_t)b * ld + off;
            float *d = dx + (size_t)b * C * L + off;
            const float cv = ca[(size_t)b * C + c], gm = dmax[(size_t)b * C + c];
            const float ga = davg[(size_t)b * C + c] / (float)L;
            const int ta = argmax_strided(xr, L, 1);
            for (int t = 0; t < L; t++) {
                float v = set ? 0.0f : d[t];
                v += g2[t] * sr[t];
                v += gmean[t] * invC;
                v = am[t] == c ? v + gmax[t] : v;
                v += g1[t] * cv;
                v = t == ta ? v + gm : v;
                d[t] = v + ga;
            }
        }
    }
}
