/* Max pooling over time with window 2: stride 2 (downsampling) and stride 1 with -inf padding.
 * Ties and NaN follow PyTorch: the first maximal element of a window wins, NaN propagates. */
#include <math.h>

#include "nn/ops.h"

/* (B, C, L) -> (B, C, L/2): out[t] = max(in[2t], in[2t+1]). */
void maxpool2_forward(float *out, const float *in, int B, int C, int L) {
    int Lo = L / 2;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L;
        float *o = out + (size_t)bc * Lo;
        for (int t = 0; t < Lo; t++) {
            float a = x[2 * t], b = x[2 * t + 1];
            o[t] = maxpool_second(a, b) ? b : a;
        }
    }
}

/* din[argmax of window t] += dout[t] (set: din = that, an odd last element 0). */
static void maxpool2_backward_impl(float *din, const float *dout, const float *in, int B, int C, int L, int set) {
    int Lo = L / 2;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L, *g = dout + (size_t)bc * Lo;
        float *d = din + (size_t)bc * L;
        for (int t = 0; t < Lo; t++) {
            int second = maxpool_second(x[2 * t], x[2 * t + 1]);
            float a = second ? 0.0f : g[t], b = second ? g[t] : 0.0f;
            d[2 * t] = set ? a : d[2 * t] + a;
            d[2 * t + 1] = set ? b : d[2 * t + 1] + b;
        }
        if (set)
            for (int t = 2 * Lo; t < L; t++) d[t] = 0.0f; /* in no window */
    }
}

void maxpool2_backward(float *din, const float *dout, const float *in, int B, int C, int L) {
    maxpool2_backward_impl(din, dout, in, B, C, L, 0);
}
void maxpool2_backward_set(float *din, const float *dout, const float *in, int B, int C, int L) {
    maxpool2_backward_impl(din, dout, in, B, C, L, 1);
}

/* (B, C, L) -> (B, C, L+1): out[t] = max(in[t-1], in[t]), in[-1] = in[L] = -inf. */
void maxpool2s1_forward(float *out, const float *in, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L;
        float *o = out + (size_t)bc * (L + 1);
        if (L == 0) { o[0] = -INFINITY; continue; }
        o[0] = x[0];
        for (int t = 1; t < L; t++) o[t] = maxpool_second(x[t - 1], x[t]) ? x[t] : x[t - 1];
        o[L] = x[L - 1];
    }
}

/* din[argmax of window t] += dout[t]; the padding never wins over a real value. Input t is in
 * windows t (as its second element) and t+1 (as its first); each t is computed on its own so
 * that the loop vectorises, adding window t's share before window t+1's. */
static void maxpool2s1_backward_impl(float *din, const float *dout, const float *in, int B, int C, int L, int set) {
    if (L == 0) return;
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = in + (size_t)bc * L, *g = dout + (size_t)bc * (L + 1);
        float *d = din + (size_t)bc * L;
        if (L == 1) {
            d[0] = (set ? g[0] : d[0] + g[0]) + g[1];
            continue;
        }
        d[0] = (set ? g[0] : d[0] + g[0]) + (maxpool_second(x[0], x[1]) ? 0.0f : g[1]);
        for (int t = 1; t < L - 1; t++) {
            float from_t = maxpool_second(x[t - 1], x[t]) ? g[t] : 0.0f;
            float from_next = maxpool_second(x[t], x[t + 1]) ? 0.0f : g[t + 1];
            d[t] = (set ? from_t : d[t] + from_t) + from_next;
        }
        float last = maxpool_second(x[L - 2], x[L - 1]) ? g[L - 1] : 0.0f;
        d[L - 1] = (set ? last : d[L - 1] + last) + g[L];
    }
}

void maxpool2s1_backward(float *din, const float *dout, const float *in, int B, int C, int L) {
    maxpool2s1_backward_impl(din, dout, in, B, C, L, 0);
}
void maxpool2s1_backward_set(float *din, const float *dout, const float *in, int B, int C, int L) {
    maxpool2s1_backward_impl(din, dout, in, B, C, L, 1);
}
