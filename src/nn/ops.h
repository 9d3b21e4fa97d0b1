/* The neural-network ops of MRM-Net: each op a forward/backward pair with the shapes in the
 * signature, in the manner of llm.c.
 *
 * Conventions:
 *  - Tensors are float32, C order. Feature maps are (B, C, L): batch, channels, time.
 *  - Backward functions ACCUMULATE (+=) into every gradient they are given (din, dw, ...);
 *    a separate step zeroes gradients. A gradient pointer that is NULL is not computed
 *    (e.g. din of the first layer).
 *  - Forward functions overwrite their output. Unless stated, out must not alias in.
 *  - Ops that need scratch memory take an nn_ctx; its buffer is sized once by the caller
 *    (the model) from the *_scratch_floats() queries, so no op allocates.
 *  - OpenMP parallelism inside ops over the batch or channels; the number of threads is the
 *    OpenMP setting of the caller.
 */
#ifndef MRM_NN_OPS_H
#define MRM_NN_OPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"

/* FFT plans (FFTW, single precision) for the FFT convolution of long kernels: made once by
 * nn_fft_create, then only read, by any number of threads. */
typedef struct nn_fft nn_fft;
nn_fft *nn_fft_create(void); /* NULL when out of memory */
void nn_fft_free(nn_fft *fft);
/* Tests and benchmarks: use transforms of size n (64, 128 or 256) instead of the cheapest. */
void nn_fft_force_size(nn_fft *fft, int n);

/* Scratch memory for the ops: one buffer, reused by every op call (not re-entrant:
 * one nn_ctx per concurrent caller). fft (may be NULL) enables the FFT convolution. */
typedef struct nn_ctx {
    float *scratch;
    size_t scratch_floats;
    const nn_fft *fft;
} nn_ctx;

/* ---- matrix product ---------------------------------------------------------------------
 * Row-major C(M,N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T ('N' / 'T').
 * Backed by oneDNN's sgemm. */
void nn_sgemm(char transa, char transb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* ---- 1-D convolution, no bias -------------------------------------------------------------
 * in (B, Cin, Lin), w (Cout, Cin/groups, K) -> out (B, Cout, Lout),
 * Lout = (Lin + 2*pad - K) / stride + 1, zero padding, as torch.nn.functional.conv1d. */
int conv1d_out_len(int Lin, int K, int stride, int pad);
size_t conv1d_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
void conv1d_forward(nn_ctx *ctx, float *out, const float *in, const float *w, int B, int Cin, int Lin,
                    int Cout, int K, int stride, int pad, int groups);
/* Inference: the convolution with a fused epilogue, out = act(conv(in, w) + bias[co]) with
 * bias (Cout) or NULL and act = ReLU if relu, else identity: for a convolution whose BatchNorm
 * has been folded into w and bias. Saves a pass over out; same scratch as conv1d_forward. */
void conv1d_bias_act_forward(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias,
                             int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                             int groups);
/* Inference with fixed weights: conv1d_prepare writes, once, what the forward would otherwise
 * recompute from w on every call (the FFT path's weight spectra, the direct kernels' packed
 * weights) into prep (conv1d_prepare_floats floats; it uses ctx's scratch, whose FFT plans
 * decide whether spectra are made) and returns the floats written, 0 when prep_floats is too
 * small. conv1d_bias_act_forward_prepared is conv1d_bias_act_forward with prep (or NULL);
 * the result is the same function, the rounding that of the path taken. */
size_t conv1d_prepare_floats(const nn_ctx *ctx, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
size_t conv1d_prepare(const nn_ctx *ctx, float *prep, size_t prep_floats, const float *w, int Cin, int Lin, int Cout,
                      int K, int stride, int pad, int groups);
void conv1d_bias_act_forward_prepared(nn_ctx *ctx, float *out, const float *in, const float *w, const float *prep,
                                      const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K,
                                      int stride, int pad, int groups);
/* din (B, Cin, Lin) and dw (Cout, Cin/groups, K) accumulate; either may be NULL. */
void conv1d_backward(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                     const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                     int groups);
/* The same with din SET (written whole, its old contents ignored; dw still accumulates) where
 * the path taken can do that without a pass of its own (Winograd): returns 1 then, else 0
 * having touched nothing (the caller zeroes din and calls conv1d_backward). With add (else
 * NULL), din += add where mask > 0 afterwards (relu_backward(din, add, mask): a residual path
 * through a ReLU), row by row as din is written: the same bits as the two in turn. */
int conv1d_backward_set_plus(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups,
                             const float *add, const float *mask);
/* A training forward that keeps what its path computed from in for the backward's weight
 * gradient (the FFT path's input spectra), so that the backward does not compute it again:
 * conv1d_keep_floats floats (0: the path keeps nothing). conv1d_forward_keep is conv1d_forward
 * and returns 1 when keep was filled; conv1d_backward_kept is conv1d_backward reading keep, which
 * must hold what conv1d_forward_keep left there for the same in and shapes. Same bits as the
 * plain forms. */
size_t conv1d_keep_floats(const nn_ctx *ctx, int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
int conv1d_forward_keep(nn_ctx *ctx, float *out, const float *in, const float *w, int B, int Cin, int Lin, int Cout,
                        int K, int stride, int pad, int groups, float *keep, size_t keep_floats);
void conv1d_backward_kept(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w, int B,
                          int Cin, int Lin, int Cout, int K, int stride, int pad, int groups, const float *keep,
                          size_t keep_floats);

/* ---- BatchNorm1d over (B, C, L): statistics per channel over batch and time --------------
 * Training: normalise with the batch mean and BIASED variance; save mean and rstd (C) for the
 * backward; move running_mean/var by `momentum` toward the batch mean and the UNBIASED
 * variance (n/(n-1), n = B*L). Evaluation: use the running statistics. The caller counts
 * num_batches_tracked. out may alias in. */
void batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                             float *running_var, const float *in, const float *gamma,
                             const float *beta, int B, int C, int L, float eps, float momentum);
void batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, int B, int C, int L,
                            float eps);
/* Backward of the training-mode forward. din, dgamma, dbeta (C) accumulate. */
void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *mean, const float *rstd, const float *gamma, int B, int C, int L);

/* BatchNorm's per-channel pieces, one definition each for the plain form above, the fused
 * BN + ReLU and the synchronised (data-parallel) forms of src/model/fused.c, so that every
 * form takes the same sums in the same order. Channel c of x (B, C, L). */
static inline double bn_chan_sum(const float *x, int B, int C, int L, int c) {
    double sum = 0.0;
    for (int b = 0; b < B; b++) {
        const float *r = x + ((size_t)b * C + c) * L;
#pragma omp simd reduction(+ : sum)
        for (int t = 0; t < L; t++) sum += r[t];
    }
    return sum;
}
/* the sum of (x - mu)^2 over the channel */
static inline double bn_chan_css(const float *x, double mu, int B, int C, int L, int c) {
    double ss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *r = x + ((size_t)b * C + c) * L;
#pragma omp simd reduction(+ : ss)
        for (int t = 0; t < L; t++) {
            double d = r[t] - mu;
            ss += d * d;
        }
    }
    return ss;
}
/* From the channel's mean mu and centred sum of squares ss over n values: the saved mean and
 * rstd, the running statistics moved (when running_mean is not NULL; pointers to the channel's
 * entries) and the affine map y = x * scale + shift. */
static inline void bn_chan_stats(double mu, double ss, double n, float eps, float momentum, float gamma, float beta,
                                 float *mean, float *rstd, float *running_mean, float *running_var, float *scale,
                                 float *shift) {
    double var = ss / n, rs = 1.0 / sqrt(var + eps);
    *mean = (float)mu;
    *rstd = (float)rs;
    if (running_mean && running_var) {
        double unbiased = n > 1 ? ss / (n - 1) : var;
        *running_mean = (float)((1.0 - momentum) * *running_mean + momentum * mu);
        *running_var = (float)((1.0 - momentum) * *running_var + momentum * unbiased);
    }
    *scale = (float)(gamma * rs), *shift = (float)(beta - mu * gamma * rs);
}
/* the backward's sums: sg = sum of dout, sgx = sum of dout * (x - mu) * rs */
static inline void bn_chan_grad_sums(double *sg_out, double *sgx_out, const float *dout, const float *in, float mu,
                                     float rs, int B, int C, int L, int c) {
    double sg = 0.0, sgx = 0.0;
    for (int b = 0; b < B; b++) {
        size_t off = ((size_t)b * C + c) * L;
        const float *g = dout + off, *x = in + off;
#pragma omp simd reduction(+ : sg, sgx)
        for (int t = 0; t < L; t++) {
            sg += g[t];
            sgx += (double)g[t] * ((x[t] - mu) * rs);
        }
    }
    *sg_out = sg, *sgx_out = sgx;
}
/* din += gamma * rs * (dout - sg / n - (x - mu) * rs * sgx / n) over the channel */
static inline void bn_chan_din(float *din, const float *dout, const float *in, float mu, float rs, float gamma,
                               double sg, double sgx, double n, int B, int C, int L, int c) {
    float k = gamma * rs, mg = (float)(sg / n), mgx = (float)(sgx / n);
    for (int b = 0; b < B; b++) {
        size_t off = ((size_t)b * C + c) * L;
        const float *g = dout + off, *x = in + off;
        float *d = din + off;
        for (int t = 0; t < L; t++) d[t] += k * (g[t] - mg - (x[t] - mu) * rs * mgx);
    }
}

/* ---- elementwise activations over n values (out may alias in) ---------------------------- */
/* One row, on the calling thread: out[i] = act(in[i] * scale + shift), act = ReLU if relu, else
 * identity (the epilogue of a folded or fused BatchNorm and of the FFT convolution). */
void scale_shift_act_row(float *out, const float *in, size_t n, float scale, float shift, int relu);
void relu_forward(float *out, const float *in, size_t n);
/* din += dout * (out > 0); uses the forward OUTPUT. din may alias dout only if din is zero. */
void relu_backward(float *din, const float *dout, const float *out, size_t n);
/* The _set variants of relu, dropout and max-pool backward WRITE din (same arithmetic, din not
 * read): for a fresh gradient buffer, which then needs no zeroing. */
void relu_backward_set(float *din, const float *dout, const float *out, size_t n);
/* hardsigmoid(x) = min(max(x + 3, 0), 6) / 6; gradient 1/6 on -3 < x < 3, else 0 (as PyTorch). */
void hardsigmoid_forward(float *out, const float *in, size_t n);
void hardsigmoid_backward(float *din, const float *dout, const float *in, size_t n);
void sigmoid_forward(float *out, const float *in, size_t n);
/* din += dout * out * (1 - out); uses the forward OUTPUT. */
void sigmoid_backward(float *din, const float *dout, const float *out, size_t n);

/* ---- max pooling over time --------------------------------------------------------------
 * maxpool2: window 2, stride 2, floor: (B, C, L) -> (B, C, L/2).
 * maxpool2s1: window 2, stride 1, padding 1 with -inf: (B, C, L) -> (B, C, L+1),
 *   out[t] = max(in[t-1], in[t]) with in[-1] = in[L] = -inf.
 * Backward routes each gradient to the first maximal input of its window (as PyTorch). */
/* Which of a window's two values is its maximum: 1 when b wins (only if strictly greater, or NaN
 * while a is not), else 0: PyTorch's choice (the first maximal element, NaN propagates). Written
 * without branches (a != a is isnan(a)) so that loops over it vectorise. */
static inline int maxpool_second(float a, float b) { return (b > a) | ((b != b) & (a == a)); }
void maxpool2_forward(float *out, const float *in, int B, int C, int L);
void maxpool2_backward(float *din, const float *dout, const float *in, int B, int C, int L);
void maxpool2_backward_set(float *din, const float *dout, const float *in, int B, int C, int L);
void maxpool2s1_forward(float *out, const float *in, int B, int C, int L);
void maxpool2s1_backward(float *din, const float *dout, const float *in, int B, int C, int L);
void maxpool2s1_backward_set(float *din, const float *dout, const float *in, int B, int C, int L);

/* ---- reductions ----------------------------------------------------------------------------
 * over time: (B, C, L) -> (B, C). */
void mean_time_forward(float *out, const float *in, int B, int C, int L);
void mean_time_backward(float *din, const float *dout, int B, int C, int L);
void max_time_forward(float *out, const float *in, int B, int C, int L);
void max_time_backward(float *din, const float *dout, const float *in, int B, int C, int L);
/* over channels, both at once as the spatial attention wants them:
 * in (B, C, L) -> out (B, 2, L) with out[:,0,:] = max over C and out[:,1,:] = mean over C. */
void channel_maxmean_forward(float *out, const float *in, int B, int C, int L);
void channel_maxmean_backward(float *din, const float *dout, const float *in, int B, int C, int L);
/* The gradient of x (B, C, L) through the Fusion block's channel and spatial attention, in one
 * pass: for l1 = x * ca[b,c] and l2 = x * sa[b,t] with gradients dl1, dl2 (ld floats between
 * samples), and the gradients dmm (B, 2, L) of channel_maxmean, dmax and davg (B, C) of max_time
 * and mean_time, dx gets, added in this order (set: to +0, dx's old contents ignored; else to
 * dx), dl2 * sa, then channel_maxmean_backward's terms, dl1 * ca, then max_time_backward's and
 * mean_time_backward's: the same values as those five ops run in turn (scale_time_backward and
 * scale_channels_backward with ds NULL). amax, vmax: B * L values of scratch each. */
void attention_input_backward(float *dx, int set, const float *dl1, const float *dl2, size_t ld, const float *x,
                              const float *ca, const float *sa, const float *dmm, const float *dmax,
                              const float *davg, int *amax, float *vmax, int B, int C, int L);

/* ---- inverted dropout over n values ---------------------------------------------------------
 * Keeps each value with probability 1-p and scales it by 1/(1-p); mask[i] is the factor
 * applied (0 or 1/(1-p)), drawn from rng. p = 0 copies. out may alias in. */
void dropout_forward(float *out, float *mask, const float *in, size_t n, float p, mrm_rng *rng);
/* The same over rows records of row_len values each, row b's mask drawn from a generator seeded
 * by keys[b] and salt alone (not by the other rows nor the thread count). */
void dropout_forward_keyed(float *out, float *mask, const float *in, int rows, size_t row_len, float p,
                           const uint64_t *keys, uint64_t salt);
/* The same two with the dropped values added to add (out = add + dropout(in); out may alias add
 * or in), in one pass. */
void dropout_add_forward(float *out, float *mask, const float *in, const float *add, size_t n, float p, mrm_rng *rng);
void dropout_add_forward_keyed(float *out, float *mask, const float *in, const float *add, int rows, size_t row_len,
                               float p, const uint64_t *keys, uint64_t salt);
void dropout_backward(float *din, const float *dout, const float *mask, size_t n);
void dropout_backward_set(float *din, const float *dout, const float *mask, size_t n);

/* ---- LayerNorm over channels at each time step ("channels_first") -------------------------
 * in (B, C, L): for each (b, t) normalise the C values x[b, :, t] by their mean and biased
 * variance, then out = y * w[c] + bias[c]. Saves mean and rstd (B, L). With L = 1 this is the
 * usual LayerNorm over the features of a (B, C) matrix. */
void layernorm_ch_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                          const float *bias, int B, int C, int L, float eps);
void layernorm_ch_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                           const float *mean, const float *rstd, const float *w, int B, int C, int L);
/* the same, setting din (its old contents ignored) */
void layernorm_ch_backward_set(float *din, float *dw, float *dbias, const float *dout, const float *in,
                               const float *mean, const float *rstd, const float *w, int B, int C, int L);

/* ---- linear: in (B, Cin), w (Cout, Cin), bias (Cout) -> out (B, Cout) ------------------- */
void linear_forward(float *out, const float *in, const float *w, const float *bias, int B, int Cin,
                    int Cout);
void linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                     const float *w, int B, int Cin, int Cout);

/* ---- broadcast products ---------------------------------------------------------------------
 * channel-wise: out[b,c,t] = x[b,c,t] * s[b,c]      (s of shape (B, C))
 * time-wise:    out[b,c,t] = x[b,c,t] * s[b,t]      (s of shape (B, L)) */
void scale_channels_forward(float *out, const float *x, const float *s, int B, int C, int L);
/* out = x * s[b,c] + r, the product rounded first (scale_channels_forward, then add_forward). */
void scale_channels_add_forward(float *out, const float *x, const float *s, const float *r, int B, int C, int L);
void scale_channels_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                             int B, int C, int L);
void scale_time_forward(float *out, const float *x, const float *s, int B, int C, int L);
void scale_time_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                         int B, int C, int L);
/* The same with ld floats between the samples of out (forward) or dout (backward), e.g. the
 * halves of a channel concatenation (ld = 2 C L). */
void scale_channels_forward_ld(float *out, size_t ld, const float *x, const float *s, int B, int C, int L);
void scale_channels_backward_ld(float *dx, float *ds, const float *dout, size_t ld, const float *x, const float *s,
                                int B, int C, int L);
void scale_time_forward_ld(float *out, size_t ld, const float *x, const float *s, int B, int C, int L);
/* The input gradients of out = x + h * s[b,c] (the Gate and SE blocks), s's own gradient having
 * reached the mean over time of h as gmean (B, C): dh = dout * s + gmean / L (set), and dx = dout
 * (dx_set) or dx += dout, in one pass over dout. Bit for bit what zeroing dh, then
 * scale_channels_backward (dx NULL) and mean_time_backward into it, then copying (adding) dout
 * into dx give. */
void gate_input_backward(float *dh, float *dx, int dx_set, const float *dout, const float *s, const float *gmean,
                         int B, int C, int L);
void scale_time_backward_ld(float *dx, float *ds, const float *dout, size_t ld, const float *x, const float *s,
                            int B, int C, int L);

/* ---- sums over n values ------------------------------------------------------------------
 * add: out = a + b (out may alias a or b). Its backward is an accumulation of dout into
 * both gradients: accumulate(d, dout, n) does d += dout. */
void add_forward(float *out, const float *a, const float *b, size_t n);
void accumulate(float *d, const float *src, size_t n);

/* ---- concatenation along channels -----------------------------------------------------------
 * a (B, Ca, L) and b (B, Cb, L) -> out (B, Ca+Cb, L); backward splits (and accumulates). */
void concat_ch_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int L);
void concat_ch_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int L);

/* ---- losses ---------------------------------------------------------------------------------
 * Binary cross-entropy with logits, mean over the B*N values; returns the loss and, if dlogits
 * is not NULL, ACCUMULATES scale * dL/dlogits into it. y is multi-hot (B, N). pos_weight (N values
 * or NULL): the positive term of class k weighted as PyTorch's BCEWithLogitsLoss(pos_weight). */
double bce_logits_forward_backward(float *dlogits, const float *logits, const float *y, int B, int N,
                                   float scale, const float *pos_weight);
/* KL4(s | t) = T^2 / B * sum_b sum_j p_t[b,j] (log p_t[b,j] - log p_s[b,j]),
 * p_x = softmax(x / T) over the N values of each sample. Returns the loss and ACCUMULATES
 * scale * the gradient into ds and dt (either may be NULL). Numerically stable (log-sum-exp
 * in double). */
double kl_softmax_forward_backward(float *ds, float *dt, const float *s, const float *t, int B, int N,
                                   float T, float scale);
/* The symmetric pair as the mutual-learning loss uses it: KL4(a | b) + KL4(b | a), equal to
 * two kl_softmax_forward_backward calls (a, b) and (b, a) with the same scale, at half the cost
 * (the softmaxes are shared). Returns the sum; ACCUMULATES scale * its gradient into da, db. */
double kl_sym_softmax_forward_backward(float *da, float *db, const float *a, const float *b, int B, int N,
                                       float T, float scale);

#endif
