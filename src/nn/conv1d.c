/* 1-D convolution (no bias), as torch.nn.functional.conv1d with zero padding and groups:
 * the entry points of ops.h, choosing between the direct AVX-512 kernels and im2col + GEMM
 * (conv1d_impl.h). */
#include "nn/conv1d_impl.h"

int conv1d_out_len(int Lin, int K, int stride, int pad) { return (Lin + 2 * pad - K) / stride + 1; }

size_t conv1d_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    if (conv1d_direct_applies(Cin, K, groups))
        return conv1d_direct_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups);
    return conv1d_gemm_scratch_floats(B, Cin, Lin, Cout, K, stride, pad, groups);
}

void conv1d_forward(nn_ctx *ctx, float *out, const float *in, const float *w, int B, int Cin, int Lin,
                    int Cout, int K, int stride, int pad, int groups) {
    conv1d_bias_act_forward(ctx, out, in, w, NULL, 0, B, Cin, Lin, Cout, K, stride, pad, groups);
}

void conv1d_bias_act_forward(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias,
                             int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                             int groups) {
    if (B <= 0 || conv1d_out_len(Lin, K, stride, pad) <= 0) return;
    if (!conv1d_direct_applies(Cin, K, groups) ||
        !conv1d_forward_direct(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups))
        conv1d_forward_gemm(ctx, out, in, w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
}

void conv1d_backward(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                     const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                     int groups) {
    if (B <= 0 || conv1d_out_len(Lin, K, stride, pad) <= 0) return;
    if (!conv1d_direct_applies(Cin, K, groups) ||
        !conv1d_backward_direct(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups))
        conv1d_backward_gemm(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, groups);
}
