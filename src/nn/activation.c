/* Elementwise activations: ReLU, hardsigmoid, sigmoid. */
#include <math.h>

#include "nn/ops.h"

/* Large arrays are split between the threads; small ones stay on the caller's. Starting a team
 * costs a few microseconds (more with more threads); 16,384 values take about 5-10 us on one
 * thread, and a sigmoid's 4,096 (an expf each) about as long. Below those, one thread. */
#define PAR_MIN 16384
#define PAR_MIN_EXP 4096

/* out = max(in, 0) over n values. */
void relu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

/* din += dout * (out > 0). */
void relu_backward(float *din, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}
void relu_backward_set(float *din, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

/* out = min(max(x + 3, 0), 6) / 6. */
void hardsigmoid_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = x <= -3.0f ? 0.0f : x >= 3.0f ? 1.0f : x / 6.0f + 0.5f;
    }
}

/* din += dout / 6 where -3 < x < 3 (PyTorch's choice at the kinks). */
void hardsigmoid_backward(float *din, const float *dout, const float *in, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++)
        if (in[i] > -3.0f && in[i] < 3.0f) din[i] += dout[i] * (1.0f / 6.0f);
}

/* out = 1 / (1 + exp(-x)). */
void sigmoid_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for if (n > PAR_MIN_EXP) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-in[i]));
}

/* din += dout * out * (1 - out). */
void sigmoid_backward(float *din, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
}

void scale_shift_act_row(float *out, const float *in, size_t n, float scale, float shift, int relu) {
    if (relu)
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float v = in[i] * scale + shift;
            out[i] = v > 0.0f ? v : 0.0f;
        }
    else
#pragma omp simd
        for (size_t i = 0; i < n; i++) out[i] = in[i] * scale + shift;
}
