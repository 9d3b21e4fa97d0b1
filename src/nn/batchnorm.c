/* BatchNorm1d over (B, C, L), as PyTorch: statistics per channel over batch and time. */
#include <math.h>

#include "nn/ops.h"

/* Training forward. mean, rstd (C) are saved for the backward; running statistics move by
 * momentum toward the batch mean and the unbiased batch variance. Statistics in double,
 * two passes (mean, then centred squares), vectorised (omp simd: a fixed summation order for
 * a given build). out may alias in. */
void batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                             float *running_var, const float *in, const float *gamma,
                             const float *beta, int B, int C, int L, float eps, float momentum) {
    size_t n = (size_t)B * L;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * L;
#pragma omp simd reduction(+ : sum)
            for (int t = 0; t < L; t++) sum += x[t];
        }
        double mu = sum / (double)n, ss = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * L;
#pragma omp simd reduction(+ : ss)
            for (int t = 0; t < L; t++) {
                double d = x[t] - mu;
                ss += d * d;
            }
        }
        double var = ss / (double)n;
        double rs = 1.0 / sqrt(var + eps);
        mean[c] = (float)mu;
        rstd[c] = (float)rs;
        if (running_mean && running_var) {
            double unbiased = n > 1 ? ss / (double)(n - 1) : var;
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        }
        /* out = x * scale + shift with scale = gamma * rstd, shift = beta - mean * scale */
        float scale = (float)(gamma[c] * rs), shift = (float)(beta[c] - mu * gamma[c] * rs);
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            for (int t = 0; t < L; t++) out[off + t] = in[off + t] * scale + shift;
        }
    }
}

/* Evaluation forward with the running statistics. out may alias in. */
void batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, int B, int C, int L,
                            float eps) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        int c = bc % C;
        double rs = 1.0 / sqrt((double)running_var[c] + eps);
        float scale = (float)(gamma[c] * rs), shift = (float)(beta[c] - running_mean[c] * gamma[c] * rs);
        const float *x = in + (size_t)bc * L;
        float *o = out + (size_t)bc * L;
        for (int t = 0; t < L; t++) o[t] = x[t] * scale + shift;
    }
}

/* With xhat = (x - mean) * rstd and g = dout:
 *   dbeta += sum g,  dgamma += sum g * xhat,
 *   din += gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)), means over (B, L). */
void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *mean, const float *rstd, const float *gamma, int B, int C, int L) {
    size_t n = (size_t)B * L;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        double sg = 0.0, sgx = 0.0;
        float mu = mean[c], rs = rstd[c];
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            const float *g = dout + off, *x = in + off;
#pragma omp simd reduction(+ : sg, sgx)
            for (int t = 0; t < L; t++) {
                sg += g[t];
                sgx += (double)g[t] * ((x[t] - mu) * rs);
            }
        }
        if (dbeta) dbeta[c] += (float)sg;
        if (dgamma) dgamma[c] += (float)sgx;
        if (!din) continue;
        float k = gamma[c] * rs, mg = (float)(sg / (double)n), mgx = (float)(sgx / (double)n);
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            const float *g = dout + off, *x = in + off;
            float *d = din + off;
            for (int t = 0; t < L; t++) d[t] += k * (g[t] - mg - (x[t] - mu) * rs * mgx);
        }
    }
}
