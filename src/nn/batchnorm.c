/* BatchNorm1d over (B, C, L), as PyTorch: statistics per channel over batch and time. */
#include <math.h>

#include "nn/ops.h"

/* Few channels (the attention's one-channel spatial map): a split by channel leaves every thread
 * but C idle, so the sums are taken a (sample, channel) row at a time, rows shared out, and
 * added per channel in sample order. Used whatever the thread count, so the bits do not depend
 * on it. The rows' partial sums live on the stack (B * C of them, bounded). */
#define BN_FEW_CHANNELS 8
#define BN_FEW_MAX_ROWS 4096
static int bn_few(int B, int C, int L) {
    return C < BN_FEW_CHANNELS && B > 1 && B * C <= BN_FEW_MAX_ROWS && (size_t)B * C * L > 8192;
}

static void forward_train_few(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                              const float *in, const float *gamma, const float *beta, int B, int C, int L, float eps,
                              float momentum) {
    const double n = (double)B * L;
    const int rows = B * C;
    double part[rows], mu[C];
    float scale[C], shift[C];
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int bc = 0; bc < rows; bc++) {
            const float *r = in + (size_t)bc * L;
            double sum = 0.0;
#pragma omp simd reduction(+ : sum)
            for (int t = 0; t < L; t++) sum += r[t];
            part[bc] = sum;
        }
#pragma omp single
        for (int c = 0; c < C; c++) {
            double sum = 0.0;
            for (int b = 0; b < B; b++) sum += part[b * C + c];
            mu[c] = sum / n;
        }
#pragma omp for schedule(static)
        for (int bc = 0; bc < rows; bc++) {
            const float *r = in + (size_t)bc * L;
            const double m = mu[bc % C];
            double ss = 0.0;
#pragma omp simd reduction(+ : ss)
            for (int t = 0; t < L; t++) {
                double d = r[t] - m;
                ss += d * d;
            }
            part[bc] = ss;
        }
#pragma omp single
        for (int c = 0; c < C; c++) {
            double ss = 0.0;
            for (int b = 0; b < B; b++) ss += part[b * C + c];
            bn_chan_stats(mu[c], ss, n, eps, momentum, gamma[c], beta[c], &mean[c], &rstd[c],
                          running_mean ? &running_mean[c] : NULL, running_var ? &running_var[c] : NULL, &scale[c],
                          &shift[c]);
        }
#pragma omp for schedule(static)
        for (int bc = 0; bc < rows; bc++) {
            const float *x = in + (size_t)bc * L;
            float *o = out + (size_t)bc * L;
            const float sc = scale[bc % C], sh = shift[bc % C];
            for (int t = 0; t < L; t++) o[t] = x[t] * sc + sh;
        }
    }
}

/* One value a (sample, channel) (L == 1: the channel attention's BN over (B, C)): the channels
 * side by side, the samples in order, so each channel's sums are the same float operations in
 * the same order as the general loop's, without its per-(sample, channel) loop set-up and
 * strided reads (serially about 0.2 ms at 96 x 128; this takes a few microseconds). */
#define BN_ROW_MAX_C 4096
static void forward_train_rows(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                               const float *in, const float *gamma, const float *beta, int B, int C, float eps,
                               float momentum) {
    const double n = (double)B;
    double sum[C], ss[C];
    float scale[C], shift[C];
    for (int c = 0; c < C; c++) sum[c] = 0.0, ss[c] = 0.0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) sum[c] += in[(size_t)b * C + c];
    for (int c = 0; c < C; c++) sum[c] /= n; /* the mean */
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double d = in[(size_t)b * C + c] - sum[c];
            ss[c] += d * d;
        }
    for (int c = 0; c < C; c++)
        bn_chan_stats(sum[c], ss[c], n, eps, momentum, gamma[c], beta[c], &mean[c], &rstd[c],
                      running_mean ? &running_mean[c] : NULL, running_var ? &running_var[c] : NULL, &scale[c],
                      &shift[c]);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) out[(size_t)b * C + c] = in[(size_t)b * C + c] * scale[c] + shift[c];
}

/* Training forward. mean, rstd (C) are saved for the backward; running statistics move by
 * momentum toward the batch mean and the unbiased batch variance. Statistics in double,
 * two passes (mean, then centred squares), vectorised (omp simd: a fixed summation order for
 * a given build). out may alias in. */
void batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                             float *running_var, const float *in, const float *gamma,
                             const float *beta, int B, int C, int L, float eps, float momentum) {
    if (L == 1 && C <= BN_ROW_MAX_C) {
        forward_train_rows(out, mean, rstd, running_mean, running_var, in, gamma, beta, B, C, eps, momentum);
        return;
    }
    if (bn_few(B, C, L)) {
        forward_train_few(out, mean, rstd, running_mean, running_var, in, gamma, beta, B, C, L, eps, momentum);
        return;
    }
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
static void backward_few(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                         const float *mean, const float *rstd, const float *gamma, int B, int C, int L) {
    const double n = (double)B * L;
    const int rows = B * C;
    double psg[rows], psgx[rows], sg[C], sgx[C];
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int bc = 0; bc < rows; bc++) {
            const int c = bc % C;
            const float *g = dout + (size_t)bc * L, *x = in + (size_t)bc * L;
            const float mu = mean[c], rs = rstd[c];
            double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
            for (int t = 0; t < L; t++) {
                a += g[t];
                b += (double)g[t] * ((x[t] - mu) * rs);
            }
            psg[bc] = a, psgx[bc] = b;
        }
#pragma omp single
        for (int c = 0; c < C; c++) {
            double a = 0.0, b = 0.0;
            for (int r = 0; r < B; r++) a += psg[r * C + c], b += psgx[r * C + c];
            sg[c] = a, sgx[c] = b;
            if (dbeta) dbeta[c] += (float)a;
            if (dgamma) dgamma[c] += (float)b;
        }
        if (din) {
#pragma omp for schedule(static)
            for (int bc = 0; bc < rows; bc++) {
                const int c = bc % C;
                const float mu = mean[c], rs = rstd[c], k = gamma[c] * rs, mg = (float)(sg[c] / n),
                            mgx = (float)(sgx[c] / n);
                const float *g = dout + (size_t)bc * L, *x = in + (size_t)bc * L;
                float *d = din + (size_t)bc * L;
                for (int t = 0; t < L; t++) d[t] += k * (g[t] - mg - (x[t] - mu) * rs * mgx);
            }
        }
    }
}

static void backward_rows(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                          const float *mean, const float *rstd, const float *gamma, int B, int C) {
    const double n = (double)B;
    double sg[C], sgx[C];
    for (int c = 0; c < C; c++) sg[c] = 0.0, sgx[c] = 0.0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float g = dout[(size_t)b * C + c], x = in[(size_t)b * C + c];
            sg[c] += g;
            sgx[c] += (double)g * ((x - mean[c]) * rstd[c]);
        }
    for (int c = 0; c < C; c++) {
        if (dbeta) dbeta[c] += (float)sg[c];
        if (dgamma) dgamma[c] += (float)sgx[c];
    }
    if (!din) return;
    float k[C], mg[C], mgx[C];
    for (int c = 0; c < C; c++) k[c] = gamma[c] * rstd[c], mg[c] = (float)(sg[c] / n), mgx[c] = (float)(sgx[c] / n);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const size_t o = (size_t)b * C + c;
            din[o] += k[c] * (dout[o] - mg[c] - (in[o] - mean[c]) * rstd[c] * mgx[c]);
        }
}

void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *mean, const float *rstd, const float *gamma, int B, int C, int L) {
    if (L == 1 && C <= BN_ROW_MAX_C) {
        backward_rows(din, dgamma, dbeta, dout, in, mean, rstd, gamma, B, C);
        return;
    }
    if (bn_few(B, C, L)) {
        backward_few(din, dgamma, dbeta, dout, in, mean, rstd, gamma, B, C, L);
        return;
    }
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
