/* The two implementations behind conv1d_forward/backward (ops.h), with the same arguments:
 *  - direct: AVX-512 register-tiled kernels working on the (B, C, L) tensors themselves,
 *    used where the build has AVX-512 and the reduction per output is long;
 *  - gemm: im2col + oneDNN sgemm, everywhere else.
 * Both handle every shape (the tests run both); the direct functions return 0 without
 * touching anything when the build has no AVX-512. */
#ifndef MRM_NN_CONV1D_IMPL_H
#define MRM_NN_CONV1D_IMPL_H

#include "nn/ops.h"

size_t conv1d_gemm_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
/* The forwards take the epilogue of conv1d_bias_act_forward: bias (or NULL) and ReLU (if relu). */
void conv1d_forward_gemm(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu,
                         int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
void conv1d_backward_gemm(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                          const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                          int groups);

/* 1 where the direct kernels are used: AVX-512 and a long reduction (Cin/groups * K >= 512,
 * e.g. the merged K=33 multi-scale convolutions). For short reductions (K = 3, 5, 7 at up to
 * 128 channels) im2col + GEMM measured faster, and a 1x1 convolution is a GEMM as it is. */
int conv1d_direct_applies(int Cin, int K, int groups);
size_t conv1d_direct_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
int conv1d_forward_direct(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu,
                          int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
int conv1d_backward_direct(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                           const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                           int groups);
/* The forward's packed weights, made once (inference): floats (0 without AVX-512), packing,
 * and the forward from them. */
size_t conv1d_direct_pack_floats(int Cin, int Cout, int K, int groups);
void conv1d_direct_pack(float *wp, const float *w, int Cin, int Cout, int K, int stride, int groups);
int conv1d_forward_direct_packed(nn_ctx *ctx, float *out, const float *in, const float *wp, const float *bias,
                                 int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);

/* FFT (overlap-save) path for long kernels (conv1d_fft.c): where ctx has FFT plans, groups
 * is 1 and K >= 15. The functions return 0 (touching nothing) where it does not apply or the
 * scratch is too small. */
int conv1d_fft_applies(const nn_ctx *ctx, int Cin, int K, int stride, int groups);
/* The weights' spectra made once: floats (0 where the path does not apply), and making them
 * (returns the floats written, 0 where it does not apply or wspec_floats is too small). */
size_t conv1d_fft_weight_floats(const nn_ctx *ctx, int Cin, int Lin, int Cout, int K, int stride, int pad,
                                int groups);
size_t conv1d_fft_prepare(const nn_ctx *ctx, float *wspec, size_t wspec_floats, const float *w, int Cin, int Lin,
                          int Cout, int K, int stride, int pad);
/* 0 where the shape is not one the path takes */
size_t conv1d_fft_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
int conv1d_forward_fft(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu, int B,
                       int Cin, int Lin, int Cout, int K, int stride, int pad);
/* From spectra of conv1d_fft_prepare; where they were made for another geometry, from w
 * (declines when w is NULL). */
int conv1d_forward_fft_prepared(nn_ctx *ctx, float *out, const float *in, const float *w, const float *wspec,
                                const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K, int stride,
                                int pad);
int conv1d_backward_fft(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w, int B,
                        int Cin, int Lin, int Cout, int K, int stride, int pad);
/* A training forward that leaves the input's spectra in keep, and a backward whose weight
 * gradient reads them there instead of transforming the input again (the same bits as without).
 * keep_floats: conv1d_fft_keep_floats (0 where the path would not be taken); the functions
 * return 0, touching nothing, where the path does not apply or keep_floats differs. */
size_t conv1d_fft_keep_floats(const nn_ctx *ctx, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                              int groups);
int conv1d_forward_fft_keep(nn_ctx *ctx, float *out, const float *in, const float *w, int B, int Cin, int Lin,
                            int Cout, int K, int stride, int pad, float *keep, size_t keep_floats);
int conv1d_backward_fft_kept(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int K, int stride, int pad, const float *kept,
                             size_t kept_floats);

/* Winograd F(4,3) path for 3-tap, stride-1 convolutions without groups (conv1d_winograd.c).
 * Returns 0 (touching nothing) where the scratch is too small. */
int conv1d_winograd_applies(int Cin, int Cout, int K, int stride, int groups);
size_t conv1d_winograd_scratch_floats(int B, int Cin, int Lin, int Cout, int pad);
int conv1d_forward_winograd(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu,
                            int B, int Cin, int Lin, int Cout, int pad);
int conv1d_backward_winograd(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int pad);
/* The same with din set rather than accumulated (every value of din is written). */
int conv1d_backward_winograd_set(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                                 const float *w, int B, int Cin, int Lin, int Cout, int pad);
/* The same, then din += add where mask > 0 (relu_backward(din, add, mask)), each row as soon as it
 * is written; with add NULL, conv1d_backward_winograd_set. */
int conv1d_backward_winograd_set_plus(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                                      const float *w, int B, int Cin, int Lin, int Cout, int pad, const float *add,
                                      const float *mask);
/* The threads the forward (backward = 0) or backward would use with max_threads available. */
int conv1d_winograd_threads(int B, int Cin, int Lin, int Cout, int pad, int max_threads, int backward);

/* The weight gradient of grouped convolutions with 16 output channels per group, stride 1 and
 * 3, 5 or 7 taps, on AVX-512 (conv1d_grouped.c): dw += the batch's gradient. Returns 0
 * (touching nothing) where the shape is not one it takes, without AVX-512, or where the scratch
 * is too small. */
int conv1d_wgrad_grouped_applies(int Cin, int Cout, int K, int stride, int groups);
size_t conv1d_wgrad_grouped_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups);
int conv1d_wgrad_grouped(nn_ctx *ctx, float *dw, const float *dout, const float *in, int B, int Cin, int Lin,
                         int Cout, int K, int stride, int pad, int groups);

/* X (C, Lp): X[c, u] = in[c, u - pad] inside the input, else 0 (rows of the padded input that
 * the direct and grouped kernels read). */
void conv1d_pad_rows(float *X, int Lp, const float *in, int C, int Lin, int pad);

/* Below this many multiply-adds a convolution runs on the calling thread alone: starting
 * threads would cost more than it saves. */
#define NN_PARALLEL_MIN_MACS 1e6

/* Fills x[0..n) with NaN (x may be NULL): how an op shows that its scratch was too small. */
void conv1d_fill_nan(float *x, size_t n);

#endif
