/* Fused BatchNorm + ReLU for the conv -> BN -> ReLU units of the model. Training: one pass for
 * the statistics and one to normalise (and clip) forward; one pass for the two reductions and
 * one writing the input gradient backward, with the ReLU mask applied on the fly. Evaluation:
 * one pass with the running statistics. Same function as batchnorm_* + relu_* of src/nn
 * (PyTorch's): batch mean and biased variance over (B, L), running statistics toward the
 * unbiased variance. Row sums in float (vectorised), combined across rows in double. */
#include <math.h>

#include "model/model_internal.h"

void bn_relu_forward_train(float *y, float *mean, float *rstd, float *running_mean, float *running_var, const float *z,
                           const float *gamma, const float *beta, int B, int C, int L, float eps, float momentum, int relu) {
    size_t n = (size_t)B * L;
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        /* one pass: sums of (x - x0) and its square, x0 = the channel's first value, a sample of
         * the same distribution (within a few standard deviations of the mean: the final
         * subtraction loses little) */
        const float x0 = z[(size_t)c * L];
        double sum = 0.0, ss0 = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = z + ((size_t)b * C + c) * L;
            float s = 0.0f, q = 0.0f;
#pragma omp simd reduction(+ : s, q)
            for (int t = 0; t < L; t++) {
                float d = x[t] - x0;
                s += d;
                q += d * d;
            }
            sum += s;
            ss0 += q;
        }
        double md = sum / (double)n, mu = x0 + md, ss = ss0 - sum * md; /* sum of (x - mu)^2 */
        if (ss < 0.0) ss = 0.0;
        float muf = (float)mu;
        double var = ss / (double)n, rs = 1.0 / sqrt(var + eps);
        mean[c] = muf;
        rstd[c] = (float)rs;
        double unbiased = n > 1 ? ss / (double)(n - 1) : var;
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        float scale = (float)(gamma[c] * rs), shift = (float)(beta[c] - mu * gamma[c] * rs);
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            scale_shift_act_row(y + off, z + off, (size_t)L, scale, shift, relu);
        }
    }
}

void bn_relu_backward(float *dz, float *dgamma, float *dbeta, const float *dy, const float *y, const float *z,
                      const float *mean, const float *rstd, const float *gamma, int B, int C, int L) {
    size_t n = (size_t)B * L;
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        double sg = 0.0, sgx = 0.0;
        float mu = mean[c], rs = rstd[c];
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            const float *g = dy + off, *x = z + off, *o = y ? y + off : NULL;
            float a = 0.0f, ax = 0.0f;
            if (o) {
#pragma omp simd reduction(+ : a, ax)
                for (int t = 0; t < L; t++) {
                    float gm = o[t] > 0.0f ? g[t] : 0.0f;
                    a += gm;
                    ax += gm * (x[t] - mu);
                }
            } else {
#pragma omp simd reduction(+ : a, ax)
                for (int t = 0; t < L; t++) {
                    a += g[t];
                    ax += g[t] * (x[t] - mu);
                }
            }
            sg += a;
            sgx += (double)ax * rs;
        }
        dbeta[c] += (float)sg;
        dgamma[c] += (float)sgx;
        float k = gamma[c] * rs, mg = (float)(sg / (double)n), mgx = (float)(sgx / (double)n) * rs;
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            const float *g = dy + off, *x = z + off, *o = y ? y + off : NULL;
            float *d = dz + off;
            if (o)
#pragma omp simd
                for (int t = 0; t < L; t++) d[t] = k * ((o[t] > 0.0f ? g[t] : 0.0f) - mg - (x[t] - mu) * mgx);
            else
#pragma omp simd
                for (int t = 0; t < L; t++) d[t] = k * (g[t] - mg - (x[t] - mu) * mgx);
        }
    }
}

void bn_relu_forward_eval(float *y, const float *z, const float *gamma, const float *beta, const float *running_mean,
                          const float *running_var, int B, int C, int L, float eps, int relu) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * L > 65536)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double rs = 1.0 / sqrt((double)running_var[c] + eps);
            float scale = (float)(gamma[c] * rs), shift = (float)(beta[c] - running_mean[c] * gamma[c] * rs);
            size_t off = ((size_t)b * C + c) * L;
            scale_shift_act_row(y + off, z + off, (size_t)L, scale, shift, relu);
        }
}

void bn_relu_backward_eval(float *dz, float *dgamma, float *dbeta, const float *dy, const float *y, const float *z,
                           const float *gamma, const float *running_mean, const float *running_var, int B, int C, int L,
                           float eps) {
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        /* the forward's scale, as bn_relu_forward_eval rounds it */
        double rs = 1.0 / sqrt((double)running_var[c] + eps);
        float k = (float)(gamma[c] * rs), mu = running_mean[c], rsf = (float)rs;
        double sg = 0.0, sgx = 0.0;
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            const float *g = dy + off, *x = z + off, *o = y ? y + off : NULL;
            float *d = dz + off;
            float a = 0.0f, ax = 0.0f;
            for (int t = 0; t < L; t++) {
                float gm = !o || o[t] > 0.0f ? g[t] : 0.0f;
                a += gm;
                ax += gm * (x[t] - mu);
                d[t] = k * gm;
            }
            sg += a;
            sgx += (double)ax * rsf;
        }
        if (dbeta) dbeta[c] += (float)sg;
        if (dgamma) dgamma[c] += (float)sgx;
    }
}
