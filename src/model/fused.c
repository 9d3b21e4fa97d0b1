/* Fused BatchNorm + ReLU for the conv -> BN -> ReLU units of the model. Training: one pass for
 * the statistics and one to normalise (and clip) forward; one pass for the two reductions and
 * one writing the input gradient backward, with the ReLU mask applied on the fly. Evaluation:
 * one pass with the running statistics. Same function as batchnorm_* + relu_* of src/nn
 * (PyTorch's): batch mean and biased variance over (B, L), running statistics toward the
 * unbiased variance. Row sums in float (vectorised), combined across rows in double. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "model/model_internal.h"

/* Asks for the n floats at p (a row the next iteration reads) ahead of use, a cache line at a
 * time: the rows of one channel lie C * L floats apart, each a stream the hardware prefetcher
 * would start only after its first misses. */
static inline void prefetch_row(const float *p, int n) {
    for (int t = 0; t < n; t += 16) __builtin_prefetch(p + t, 0, 3);
}

/* One pass over channel c: the sums of (x - x0) and of its square, row sums in float
 * (vectorised), rows combined in double. x0 is a sample of the same distribution (the channel's
 * first value in the batch: within a few standard deviations of the mean, so the final
 * subtraction loses little). */
static inline void bn_shifted_sums(double *sum_out, double *ss0_out, const float *z, float x0, int B, int C, int L,
                                   int c) {
    double sum = 0.0, ss0 = 0.0;
    for (int b = 0; b < B; b++) {
        const float *x = z + ((size_t)b * C + c) * L;
        if (b + 1 < B) prefetch_row(x + (size_t)C * L, L);
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
    *sum_out = sum, *ss0_out = ss0;
}

/* From the shifted sums over n values: the statistics and the channel's scale and shift
 * (bn_chan_stats). */
static inline void bn_shifted_stats(double x0, double sum, double ss0, double n, float eps, float momentum, float gamma,
                                    float beta, float *mean, float *rstd, float *running_mean, float *running_var,
                                    float *scale, float *shift) {
    double md = sum / n, mu = x0 + md, ss = ss0 - sum * md; /* sum of (x - mu)^2 */
    if (ss < 0.0) ss = 0.0;
    bn_chan_stats(mu, ss, n, eps, momentum, gamma, beta, mean, rstd, running_mean, running_var, scale, shift);
}

/* The same, then y = act(z * scale + shift). */
static inline void bn_relu_finish(float *y, const float *z, double x0, double sum, double ss0, double n, float eps,
                                  float momentum, float gamma, float beta, float *mean, float *rstd,
                                  float *running_mean, float *running_var, int B, int C, int L, int c, int relu,
                                  float *scale_out, float *shift_out) {
    float scale, shift;
    bn_shifted_stats(x0, sum, ss0, n, eps, momentum, gamma, beta, mean, rstd, running_mean, running_var, &scale, &shift);
    if (scale_out) *scale_out = scale, *shift_out = shift;
    for (int b = 0; b < B; b++) {
        size_t off = ((size_t)b * C + c) * L;
        scale_shift_act_row(y + off, z + off, (size_t)L, scale, shift, relu);
    }
}

void bn_relu_forward_train(float *y, float *mean, float *rstd, float *scale, float *shift, float *running_mean,
                           float *running_var, const float *z, const float *gamma, const float *beta, int B, int C, int L,
                           float eps, float momentum, int relu) {
    const double n = (double)B * L;
    const int keep = scale && shift;
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        const float x0 = z[(size_t)c * L];
        double sum, ss0;
        bn_shifted_sums(&sum, &ss0, z, x0, B, C, L, c);
        bn_relu_finish(y, z, x0, sum, ss0, n, eps, momentum, gamma[c], beta[c], &mean[c], &rstd[c], &running_mean[c],
                       &running_var[c], B, C, L, c, relu, keep ? &scale[c] : NULL, keep ? &shift[c] : NULL);
    }
}

/* Channel c of a training-mode BN: its statistics pass; mean/rstd saved, the running statistics
 * updated, its affine map (y = z * scale + shift) out. */
static inline void bn_train_channel(float *scale, float *shift, float *mean, float *rstd, float *running_mean,
                                    float *running_var, const float *z, const float *gamma, const float *beta, int B,
                                    int C, int L, float eps, float momentum, int c) {
    const float x0 = z[(size_t)c * L];
    double sum, ss0;
    bn_shifted_sums(&sum, &ss0, z, x0, B, C, L, c);
    bn_shifted_stats(x0, sum, ss0, (double)B * L, eps, momentum, gamma[c], beta[c], &mean[c], &rstd[c],
                     &running_mean[c], &running_var[c], &scale[c], &shift[c]);
}

void bn_forward_train_stats(float *scale, float *shift, float *mean, float *rstd, float *running_mean, float *running_var,
                            const float *z, const float *gamma, const float *beta, int B, int C, int L, float eps,
                            float momentum) {
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++)
        bn_train_channel(scale, shift, mean, rstd, running_mean, running_var, z, gamma, beta, B, C, L, eps, momentum, c);
}

/* Channel c's sums for the BatchNorm (+ ReLU) backward: sg = sum of the gradient reaching z (through
 * the ReLU mask when y is given), sgx = sum of that gradient times the normalised input. */
static inline void bn_grad_sums(double *sg_out, double *sgx_out, const float *dy, const float *y, const float *z, float mu,
                                float rs, int B, int C, int L, int c) {
    double sg = 0.0, sgx = 0.0;
    for (int b = 0; b < B; b++) {
        size_t off = ((size_t)b * C + c) * L;
        const float *g = dy + off, *x = z + off, *o = y ? y + off : NULL;
        if (b + 1 < B) {
            prefetch_row(g + (size_t)C * L, L), prefetch_row(x + (size_t)C * L, L);
            if (o) prefetch_row(o + (size_t)C * L, L);
        }
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
    *sg_out = sg, *sgx_out = sgx;
}

/* bn_grad_sums with the ReLU mask recomputed from z: z * sc + sh > 0 (as the forward's y > 0). */
static inline void bn_grad_sums_zmask(double *sg_out, double *sgx_out, const float *dy, const float *z, float mu, float rs,
                                      float sc, float sh, int B, int C, int L, int c) {
    double sg = 0.0, sgx = 0.0;
    for (int b = 0; b < B; b++) {
        size_t off = ((size_t)b * C + c) * L;
        const float *g = dy + off, *x = z + off;
        if (b + 1 < B) prefetch_row(g + (size_t)C * L, L), prefetch_row(x + (size_t)C * L, L);
        float a = 0.0f, ax = 0.0f;
#pragma omp simd reduction(+ : a, ax)
        for (int t = 0; t < L; t++) {
            float v = x[t] * sc + sh;
            float gm = v > 0.0f ? g[t] : 0.0f;
            a += gm;
            ax += gm * (x[t] - mu);
        }
        sg += a;
        sgx += (double)ax * rs;
    }
    *sg_out = sg, *sgx_out = sgx;
}

/* bn_relu_din with the ReLU mask recomputed from z (as bn_grad_sums_zmask). */
static inline void bn_relu_din_zmask(float *dz, const float *dy, const float *z, float mu, float rs, float gamma,
                                     float sc, float sh, double sg, double sgx, double n, int B, int C, int L, int c) {
    float k = gamma * rs, mg = (float)(sg / n), mgx = (float)(sgx / n) * rs;
    for (int b = 0; b < B; b++) {
        size_t off = ((size_t)b * C + c) * L;
        const float *g = dy + off, *x = z + off;
        float *d = dz + off;
#pragma omp simd
        for (int t = 0; t < L; t++) {
            float v = x[t] * sc + sh;
            d[t] = k * ((v > 0.0f ? g[t] : 0.0f) - mg - (x[t] - mu) * mgx);
        }
    }
}

/* dz = gamma * rs * (g - sg / n - (z - mu) * rs * sgx / n) over channel c, g = dy through the
 * ReLU mask of y (when y is given) */
static inline void bn_relu_din(float *dz, const float *dy, const float *y, const float *z, float mu, float rs,
                               float gamma, double sg, double sgx, double n, int B, int C, int L, int c) {
    float k = gamma * rs, mg = (float)(sg / n), mgx = (float)(sgx / n) * rs;
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

void bn_relu_backward(float *dz, float *dgamma, float *dbeta, const float *dy, const float *y, const float *z,
                      const float *mean, const float *rstd, const float *scale, const float *shift, const float *gamma,
                      int B, int C, int L) {
    const double n = (double)B * L;
    const int zmask = y && scale && shift; /* the mask from z: two streams read rather than three */
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        double sg, sgx;
        float mu = mean[c], rs = rstd[c];
        if (zmask)
            bn_grad_sums_zmask(&sg, &sgx, dy, z, mu, rs, scale[c], shift[c], B, C, L, c);
        else
            bn_grad_sums(&sg, &sgx, dy, y, z, mu, rs, B, C, L, c);
        dbeta[c] += (float)sg;
        dgamma[c] += (float)sgx;
        if (zmask)
            bn_relu_din_zmask(dz, dy, z, mu, rs, gamma[c], scale[c], shift[c], sg, sgx, n, B, C, L, c);
        else
            bn_relu_din(dz, dy, y, z, mu, rs, gamma[c], sg, sgx, n, B, C, L, c);
    }
}

/* ---- BN + ReLU + max pooling (window 2) of a training unit, fused ------------------------------
 * The BN output y = relu(z * scale + shift) is never stored: the forward pools it straight from
 * z while the channel's rows are in cache after its statistics, and the backward routes each
 * window's gradient to its maximum (recomputed from z, the same bits as y) inside the BN
 * backward's two passes. The same float operations as bn_relu_forward_train, maxpool2(s1)_forward,
 * maxpool2(s1)_backward_set and bn_relu_backward (mask from z) one after the other: same bits. */

static inline float bn_relu_value(float z, float sc, float sh) {
    float v = z * sc + sh;
    return v > 0.0f ? v : 0.0f;
}
/* maxpool_second(a, b) for values of bn_relu_value, which are never NaN (NaN > 0 is false): then
 * it is b > a, which the loops below vectorise with (the NaN terms stop GCC's if-conversion). */
static inline int second_of(float a, float b) { return b > a; }

/* One pooled row o from the z row x (L values): pool 1 = window 2, stride 1, padding 1 (L + 1
 * outputs); pool 2 = window 2, stride 2 (L / 2). */
static inline void pool_row(float *o, const float *x, int L, float sc, float sh, int pool) {
    if (pool == 1) {
        if (L == 0) {
            o[0] = -INFINITY;
            return;
        }
        o[0] = bn_relu_value(x[0], sc, sh);
#pragma omp simd
        for (int t = 1; t < L; t++) {
            float p = bn_relu_value(x[t - 1], sc, sh), q = bn_relu_value(x[t], sc, sh);
            o[t] = second_of(p, q) ? q : p;
        }
        o[L] = bn_relu_value(x[L - 1], sc, sh);
    } else {
        int Lo = L / 2;
#pragma omp simd
        for (int t = 0; t < Lo; t++) {
            float p = bn_relu_value(x[2 * t], sc, sh), q = bn_relu_value(x[2 * t + 1], sc, sh);
            o[t] = second_of(p, q) ? q : p;
        }
    }
}

/* d[t] = the gradient of y at position t of a row (maxpool2(s1)_backward_set's values), from the
 * pooled gradient row g and the row's BN + ReLU output y (L values). */
static inline void pool_grad_row(float *d, const float *y, const float *g, int L, int pool) {
    if (pool == 1) {
        if (L == 1) {
            d[0] = g[0] + g[1];
            return;
        }
        d[0] = g[0] + (second_of(y[0], y[1]) ? 0.0f : g[1]);
#pragma omp simd
        for (int t = 1; t < L - 1; t++) {
            float from_t = second_of(y[t - 1], y[t]) ? g[t] : 0.0f, from_next = second_of(y[t], y[t + 1]) ? 0.0f : g[t + 1];
            d[t] = from_t + from_next;
        }
        d[L - 1] = (second_of(y[L - 2], y[L - 1]) ? g[L - 1] : 0.0f) + g[L];
    } else {
        int Lo = L / 2;
#pragma omp simd
        for (int w = 0; w < Lo; w++) {
            int second = second_of(y[2 * w], y[2 * w + 1]);
            d[2 * w] = second ? 0.0f : g[w];
            d[2 * w + 1] = second ? g[w] : 0.0f;
        }
        if (L % 2) d[L - 1] = 0.0f; /* in no window */
    }
}

static inline int pooled_len(int L, int pool) { return pool == 1 ? L + 1 : L / 2; }

void bn_relu_pool_forward_train(float *out, float *mean, float *rstd, float *scale, float *shift, float *running_mean,
                                float *running_var, const float *z, const float *gamma, const float *beta, int B, int C,
                                int L, float eps, float momentum, int pool) {
    const int Lo = pooled_len(L, pool);
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        bn_train_channel(scale, shift, mean, rstd, running_mean, running_var, z, gamma, beta, B, C, L, eps, momentum, c);
        for (int b = 0; b < B; b++)
            pool_row(out + ((size_t)b * C + c) * Lo, z + ((size_t)b * C + c) * L, L, scale[c], shift[c], pool);
    }
}

size_t bn_relu_pool_backward_work(int B, int L) { return (size_t)omp_get_max_threads() * ((size_t)B + 2) * L; }

void bn_relu_pool_backward(float *dz, float *dgamma, float *dbeta, const float *dout, const float *z, const float *mean,
                           const float *rstd, const float *scale, const float *shift, const float *gamma, int B, int C,
                           int L, int pool, float *work) {
    const double n = (double)B * L;
    const int Lo = pooled_len(L, pool);
#pragma omp parallel for schedule(static) if ((size_t)B * C * L > 65536)
    for (int c = 0; c < C; c++) {
        /* this thread's rows: y and dy of one row, then the masked gradient of the channel's B rows */
        float *yr = work + (size_t)omp_get_thread_num() * ((size_t)B + 2) * L, *dy = yr + L, *gm = dy + L;
        const float mu = mean[c], rs = rstd[c], sc = scale[c], sh = shift[c];
        double sg = 0.0, sgx = 0.0;
        for (int b = 0; b < B; b++) { /* bn_grad_sums_zmask over dy; the masked gradient kept */
            const float *g = dout + ((size_t)b * C + c) * Lo, *x = z + ((size_t)b * C + c) * L;
            float *gb = gm + (size_t)b * L;
            if (b + 1 < B) prefetch_row(g + (size_t)C * Lo, Lo), prefetch_row(x + (size_t)C * L, L);
#pragma omp simd
            for (int t = 0; t < L; t++) yr[t] = bn_relu_value(x[t], sc, sh);
            pool_grad_row(dy, yr, g, L, pool);
            float a = 0.0f, ax = 0.0f;
#pragma omp simd reduction(+ : a, ax)
            for (int t = 0; t < L; t++) {
                float gt = yr[t] > 0.0f ? dy[t] : 0.0f; /* y > 0 exactly where z * sc + sh > 0 */
                gb[t] = gt;
                a += gt;
                ax += gt * (x[t] - mu);
            }
            sg += a;
            sgx += (double)ax * rs;
        }
        dbeta[c] += (float)sg;
        dgamma[c] += (float)sgx;
        float k = gamma[c] * rs, mg = (float)(sg / n), mgx = (float)(sgx / n) * rs;
        for (int b = 0; b < B; b++) { /* bn_relu_din_zmask with the kept masked gradient */
            const float *x = z + ((size_t)b * C + c) * L, *gb = gm + (size_t)b * L;
            float *d = dz + ((size_t)b * C + c) * L;
#pragma omp simd
            for (int t = 0; t < L; t++) d[t] = k * (gb[t] - mg - (x[t] - mu) * mgx);
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

/* ---- synchronised BatchNorm (data-parallel training) ----------------------------------------
 * The statistics of the global batch, with the arithmetic of one process: each process sums its
 * records as one process sums them (a row's sums in float, rows combined in double), and the
 * partial sums are added over the processes (m->sync_fn); only the order in which rows are
 * combined in double differs. */

static double *sync_scratch(mrm_model *m, size_t n) {
    if (n > m->sync_cap) {
        double *b = realloc(m->sync_buf, n * sizeof *b);
        if (!b) return NULL;
        m->sync_buf = b, m->sync_cap = n;
    }
    return m->sync_buf;
}

int bn_relu_forward_train_sync(mrm_model *m, float *y, float *mean, float *rstd, float *running_mean, float *running_var,
                               const float *z, const float *gamma, const float *beta, int B, int C, int L, float eps,
                               float momentum, int relu) {
    /* bn_relu_forward_train's one pass, with the shift x0 of the global batch's first record (the
     * leader's: the others add zero) so that every row's float sums are those one process takes */
    double *buf = sync_scratch(m, 2 * (size_t)C);
    if (!buf) return -1;
    const double n = m->sync_B * (double)L;
    const int par = (size_t)B * C * L > 65536;
    for (int c = 0; c < C; c++) buf[c] = m->sync_leader ? z[(size_t)c * L] : 0.0;
    if (m->sync_fn(m->sync_ctx, buf, (size_t)C)) return -1;
    for (int c = 0; c < C; c++) mean[c] = (float)buf[c]; /* x0, exact */
#pragma omp parallel for schedule(static) if (par)
    for (int c = 0; c < C; c++) bn_shifted_sums(&buf[2 * (size_t)c], &buf[2 * (size_t)c + 1], z, mean[c], B, C, L, c);
    if (m->sync_fn(m->sync_ctx, buf, 2 * (size_t)C)) return -1;
#pragma omp parallel for schedule(static) if (par)
    for (int c = 0; c < C; c++)
        bn_relu_finish(y, z, mean[c], buf[2 * (size_t)c], buf[2 * (size_t)c + 1], n, eps, momentum, gamma[c], beta[c],
                       &mean[c], &rstd[c], &running_mean[c], &running_var[c], B, C, L, c, relu, NULL, NULL);
    return 0;
}

/* batchnorm_forward_train / batchnorm_backward of src/nn (two passes in double) over the global
 * batch: the BN of the channel attention. */
int batchnorm_forward_train_sync(mrm_model *m, float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                 const float *in, const float *gamma, const float *beta, int B, int C, int L, float eps,
                                 float momentum) {
    double *buf = sync_scratch(m, 2 * (size_t)C);
    if (!buf) return -1;
    const double n = m->sync_B * (double)L;
    double *mus = buf + C;
    for (int c = 0; c < C; c++) buf[c] = bn_chan_sum(in, B, C, L, c);
    if (m->sync_fn(m->sync_ctx, buf, (size_t)C)) return -1;
    for (int c = 0; c < C; c++) {
        mus[c] = buf[c] / n;
        buf[c] = bn_chan_css(in, mus[c], B, C, L, c);
    }
    if (m->sync_fn(m->sync_ctx, buf, (size_t)C)) return -1;
    for (int c = 0; c < C; c++) {
        float scale, shift;
        bn_chan_stats(mus[c], buf[c], n, eps, momentum, gamma[c], beta[c], &mean[c], &rstd[c], &running_mean[c],
                      &running_var[c], &scale, &shift);
        for (int b = 0; b < B; b++) {
            size_t off = ((size_t)b * C + c) * L;
            for (int t = 0; t < L; t++) out[off + t] = in[off + t] * scale + shift;
        }
    }
    return 0;
}

int batchnorm_backward_sync(mrm_model *m, float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *mean, const float *rstd, const float *gamma, int B, int C, int L) {
    double *buf = sync_scratch(m, 2 * (size_t)C);
    if (!buf) return -1;
    const double n = m->sync_B * (double)L;
    for (int c = 0; c < C; c++) {
        double sg, sgx;
        bn_chan_grad_sums(&sg, &sgx, dout, in, mean[c], rstd[c], B, C, L, c);
        dbeta[c] += (float)sg; /* this process's part (the gradient buffer is summed afterwards) */
        dgamma[c] += (float)sgx;
        buf[2 * (size_t)c] = sg, buf[2 * (size_t)c + 1] = sgx;
    }
    if (m->sync_fn(m->sync_ctx, buf, 2 * (size_t)C)) return -1;
    for (int c = 0; c < C; c++)
        bn_chan_din(din, dout, in, mean[c], rstd[c], gamma[c], buf[2 * (size_t)c], buf[2 * (size_t)c + 1], n, B, C, L, c);
    return 0;
}

int bn_relu_backward_sync(mrm_model *m, float *dz, float *dgamma, float *dbeta, const float *dy, const float *y,
                          const float *z, const float *mean, const float *rstd, const float *gamma, int B, int C, int L) {
    double *buf = sync_scratch(m, 2 * (size_t)C);
    if (!buf) return -1;
    const double n = m->sync_B * (double)L;
    const int par = (size_t)B * C * L > 65536;
#pragma omp parallel for schedule(static) if (par)
    for (int c = 0; c < C; c++) {
        double sg, sgx;
        float mu = mean[c], rs = rstd[c];
        bn_grad_sums(&sg, &sgx, dy, y, z, mu, rs, B, C, L, c);
        /* the parameters' gradients: this process's part (summed with the gradient buffer) */
        dbeta[c] += (float)sg;
        dgamma[c] += (float)sgx;
        buf[2 * (size_t)c] = sg, buf[2 * (size_t)c + 1] = sgx;
    }
    if (m->sync_fn(m->sync_ctx, buf, 2 * (size_t)C)) return -1;
#pragma omp parallel for schedule(static) if (par)
    for (int c = 0; c < C; c++) {
        float rs = rstd[c], mu = mean[c];
        double sg = buf[2 * (size_t)c], sgx = buf[2 * (size_t)c + 1];
        bn_relu_din(dz, dy, y, z, mu, rs, gamma[c], sg, sgx, n, B, C, L, c);
    }
    return 0;
}
