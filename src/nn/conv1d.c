/* 1-D convolution (no bias), as torch.nn.functional.conv1d with zero padding and groups:
 * the entry points of ops.h, choosing among the FFT path (long kernels, when the caller's
 * nn_ctx has FFT plans), the direct AVX-512 kernels and im2col + GEMM (conv1d_impl.h). */
#include "nn/conv1d_impl.h"

int conv1d_out_len(int Lin, int K, int stride, int pad) { return (Lin + 2 * pad - K) / stride + 1; }

size_t conv1d_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    size_t s = conv1d_direct_applies(Cin, K, groups)
                   ? conv1d_direct_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups)
                   : conv1d_gemm_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups);
    if (conv1d_winograd_applies(Cin, Cout, K, stride, groups)) {
        size_t f = conv1d_winograd_scratch_floats(B, Cin, Lin, Cout, pad);
        if (f > s) s = f;
    }
    if (groups == 1 && K >= 15 && stride <= 4) { /* the FFT path, where the caller enables it */
        size_t f = conv1d_fft_scratch_floats(B, Cin, Lin, Cout, K, stride, pad);
        if (f > s) s = f;
    }
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

void conv1d_bias_act_forward_prepared(nn_ctx *ctx, float *out, const float *in, const float *w, const float *wspec,
                                      const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K,
                                      int stride, int pad, int groups) {
    if (B <= 0 || conv1d_out_len(Lin, K, stride, pad) <= 0) return;
    if (conv1d_fft_applies(ctx, Cin, K, stride, groups)) {
        if (wspec ? conv1d_forward_fft_prepared(ctx, out, in, w, wspec, bias, relu, B, Cin, Lin, Cout, K, stride, pad)
                  : conv1d_forward_fft(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, K, stride, pad))
            return;
    }
    if (conv1d_winograd_applies(Cin, Cout, K, stride, groups) &&
        conv1d_forward_winograd(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, pad))
        return;
    if (!conv1d_direct_applies(Cin, K, groups) ||
        !conv1d_forward_direct(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups))
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
    if (!conv1d_direct_applies(Cin, K, groups) ||
        !conv1d_backward_direct(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups))
        conv1d_backward_gemm(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups);
}
