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
    const double n = (double)B * L;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        double mu = bn_chan_sum(in, B, C, L, c) / n, ss = bn_chan_css(in, mu, B, C, L, c);
        float scale, shift;
        bn_chan_stats(mu, ss, n, eps, momentum, gamma[c], beta[c], &mean[c], &rstd[c],
                      running_mean ? &running_mean[c] : NULL, running_var ? &running_var[c] : NULL, &scale,
                      &shift);
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
    const double n = (double)B * L;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        double sg, sgx;
        bn_chan_grad_sums(&sg, &sgx, dout, in, mean[c], rstd[c], B, C, L, c);
        if (dbeta) dbeta[c] += (float)sg;
        if (dgamma) dgamma[c] += (float)sgx;
        if (din) bn_chan_din(din, dout, in, mean[c], rstd[c], gamma[c], sg, sgx, n, B, C, L, c);
    }
}
