/* 1-D convolution (no bias), as torch.nn.functional.conv1d with zero padding and groups:
 * the entry points of ops.h, choosing among the FFT path (long kernels, when the caller's
 * nn_ctx has FFT plans), Winograd F(4,3) (3 taps, batches of 4 and more), the direct AVX-512
 * kernels and im2col + GEMM (conv1d_impl.h). */
#include <stdint.h>
#include <string.h>

#include "nn/conv1d_impl.h"

int conv1d_out_len(int Lin, int K, int stride, int pad) { return (Lin + 2 * pad - K) / stride + 1; }

/* The forward on the direct kernels: for long reductions, and for every kernel longer than 1
 * tap or a small batch. Measured (2 threads, one record): 1.3x to 3.4x faster than im2col + GEMM
 * for the model's 3-, 5-, 7- and 11-tap and grouped convolutions (oneDNN's per-call packing
 * outweighs products this small), as fast at batch 96; a 1x1 convolution of a large batch
 * stays a GEMM. */
static int forward_direct_preferred(int B, int Cin, int K, int groups) {
    return conv1d_direct_applies(Cin, K, groups) || K > 1 || B <= 8;
}

size_t conv1d_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    size_t s = conv1d_gemm_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups);
    size_t d = conv1d_direct_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups);
    if (d > s) s = d;
    size_t gw = conv1d_wgrad_grouped_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups);
    if (gw > s) s = gw;
    if (conv1d_winograd_applies(Cin, Cout, K, stride, groups)) {
        size_t f = conv1d_winograd_scratch_floats(B, Cin, Lin, Cout, pad);
        if (f > s) s = f;
    }
    size_t f = conv1d_fft_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups); /* where the caller enables it */
    if (f > s) s = f;
    return s;
}

void conv1d_forward(nn_ctx *ctx, float *out, const float *in, const float *w, int B, int Cin, int Lin,
                    int Cout, int K, int stride, int pad, int groups) {
    conv1d_bias_act_forward(ctx, out, in, w, NULL, 0, B, Cin, Lin, Cout, K, stride, pad, groups);
}

void conv1d_bias_act_forward(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias,
                             int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                             int groups) {
    conv1d_bias_act_forward_prepared(ctx, out, in, w, NULL, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
}

/* A prepared convolution: PREP_HDR floats of header (int32: magic, the geometry, offset and
 * length of each part, 0 when absent), the FFT path's spectra, the direct kernels' packing. */
enum { PREP_HDR = 16, PREP_MAGIC = 0x4d525031 };
enum { H_MAGIC, H_CIN, H_LIN, H_COUT, H_K, H_STRIDE, H_PAD, H_GROUPS, H_FFT_OFF, H_FFT_LEN, H_DIR_OFF, H_DIR_LEN };

size_t conv1d_prepare_floats(const nn_ctx *ctx, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    size_t n = PREP_HDR;
    n += conv1d_fft_weight_floats(ctx, Cin, Lin, Cout, K, stride, pad, groups);
    return n + conv1d_direct_pack_floats(Cin, Cout, K, groups);
}

size_t conv1d_prepare(const nn_ctx *ctx, float *prep, size_t prep_floats, const float *w, int Cin, int Lin, int Cout,
                      int K, int stride, int pad, int groups) {
    if (!prep || prep_floats < conv1d_prepare_floats(ctx, Cin, Lin, Cout, K, stride, pad, groups)) return 0;
    int32_t h[PREP_HDR] = {PREP_MAGIC, Cin, Lin, Cout, K, stride, pad, groups};
    size_t at = PREP_HDR;
    size_t nf = conv1d_fft_weight_floats(ctx, Cin, Lin, Cout, K, stride, pad, groups);
    if (nf && conv1d_fft_prepare(ctx, prep + at, nf, w, Cin, Lin, Cout, K, stride, pad) == nf) {
        h[H_FFT_OFF] = (int32_t)at, h[H_FFT_LEN] = (int32_t)nf;
        at += nf;
    }
    size_t nd = conv1d_direct_pack_floats(Cin, Cout, K, groups);
    if (nd) {
        conv1d_direct_pack(prep + at, w, Cin, Cout, K, stride, groups);
        h[H_DIR_OFF] = (int32_t)at, h[H_DIR_LEN] = (int32_t)nd;
        at += nd;
    }
    memcpy(prep, h, sizeof h);
    return at;
}

void conv1d_bias_act_forward_prepared(nn_ctx *ctx, float *out, const float *in, const float *w, const float *prep,
                                      const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K,
                                      int stride, int pad, int groups) {
    if (B <= 0 || conv1d_out_len(Lin, K, stride, pad) <= 0) return;
    const float *wspec = NULL, *wpack = NULL;
    if (prep) { /* its parts, when it was made for this geometry */
        int32_t h[PREP_HDR];
        memcpy(h, prep, sizeof h);
        if (h[H_MAGIC] == PREP_MAGIC && h[H_CIN] == Cin && h[H_LIN] == Lin && h[H_COUT] == Cout && h[H_K] == K &&
            h[H_STRIDE] == stride && h[H_PAD] == pad && h[H_GROUPS] == groups) {
            if (h[H_FFT_LEN]) wspec = prep + h[H_FFT_OFF];
            if (h[H_DIR_LEN]) wpack = prep + h[H_DIR_OFF];
        }
    }
    if (conv1d_fft_applies(ctx, Cin, K, stride, groups)) {
        if (wspec ? conv1d_forward_fft_prepared(ctx, out, in, w, wspec, bias, relu, B, Cin, Lin, Cout, K, stride, pad)
                  : conv1d_forward_fft(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, K, stride, pad))
            return;
    }
    if (conv1d_winograd_applies(Cin, Cout, K, stride, groups) &&
        conv1d_forward_winograd(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, pad))
        return;
    if (forward_direct_preferred(B, Cin, K, groups) &&
        (wpack ? conv1d_forward_direct_packed(ctx, out, in, wpack, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups)
               : conv1d_forward_direct(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups)))
        return;
    conv1d_forward_gemm(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
}

void conv1d_backward(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                     const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                     int groups) {
    if (B <= 0 || conv1d_out_len(Lin, K, stride, pad) <= 0) return;
    if (conv1d_fft_applies(ctx, Cin, K, stride, groups) &&
        conv1d_backward_fft(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad))
        return;
    if (conv1d_winograd_applies(Cin, Cout, K, stride, groups) &&
        conv1d_backward_winograd(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, pad))
        return;
    /* grouped, 16 output channels per group: the weight gradient by its own kernel */
    if (groups > 1 && dw && conv1d_wgrad_grouped(ctx, dw, dout, in, B, Cin, Lin, Cout, K, stride, pad, groups)) {
        if (!din) return;
        dw = NULL;
    }
    if (groups > 1 && din) { /* grouped: the data gradient direct, the weight gradient by GEMM */
        if (conv1d_backward_direct(ctx, din, NULL, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups)) {
            if (dw) conv1d_backward_gemm(ctx, NULL, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups);
            return;
        }
    }
    if (!conv1d_direct_applies(Cin, K, groups) ||
        !conv1d_backward_direct(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups))
        conv1d_backward_gemm(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups);
}

size_t conv1d_keep_floats(const nn_ctx *ctx, int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    if (B <= 0 || conv1d_out_len(Lin, K, stride, pad) <= 0) return 0;
    return conv1d_fft_keep_floats(ctx, B, Cin, Lin, Cout, K, stride, pad, groups);
}

int conv1d_forward_keep(nn_ctx *ctx, float *out, const float *in, const float *w, int B, int Cin, int Lin, int Cout,
                        int K, int stride, int pad, int groups, float *keep, size_t keep_floats) {
    if (B > 0 && conv1d_out_len(Lin, K, stride, pad) > 0 && groups == 1 &&
        conv1d_forward_fft_keep(ctx, out, in, w, B, Cin, Lin, Cout, K, stride, pad, keep, keep_floats))
        return 1;
    conv1d_forward(ctx, out, in, w, B, Cin, Lin, Cout, K, stride, pad, groups);
    return 0;
}

void conv1d_backward_kept(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w, int B,
                          int Cin, int Lin, int Cout, int K, int stride, int pad, int groups, const float *keep,
                          size_t keep_floats) {
    if (B > 0 && conv1d_out_len(Lin, K, stride, pad) > 0 && groups == 1 &&
        conv1d_backward_fft_kept(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, keep, keep_floats))
        return;
    conv1d_backward(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups);
}

int conv1d_backward_set_plus(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups,
                             const float *add, const float *mask) {
    if (!din || B <= 0 || conv1d_out_len(Lin, K, stride, pad) <= 0) return 0;
    /* the path conv1d_backward would take: the FFT first, then Winograd */
    if (conv1d_fft_applies(ctx, Cin, K, stride, groups) || !conv1d_winograd_applies(Cin, Cout, K, stride, groups))
        return 0;
    return conv1d_backward_winograd_set_plus(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, pad, add, mask);
}
