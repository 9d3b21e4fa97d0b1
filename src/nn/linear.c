/* Fully connected layer: out (B, Cout) = in (B, Cin) . w^T + bias. */
#include "nn/ops.h"

void linear_forward(float *out, const float *in, const float *w, const float *bias, int B, int Cin,
                    int Cout) {
    nn_sgemm('N', 'T', B, Cout, Cin, 1.0f, in, Cin, w, Cin, 0.0f, out, Cout);
    if (bias)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < Cout; o++) out[(size_t)b * Cout + o] += bias[o];
}

/* din (B, Cin) += dout . w; dw (Cout, Cin) += dout^T . in; dbias += sum over b of dout. */
void linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                     const float *w, int B, int Cin, int Cout) {
    if (din) nn_sgemm('N', 'N', B, Cin, Cout, 1.0f, dout, Cout, w, Cin, 1.0f, din, Cin);
    if (dw) nn_sgemm('T', 'N', Cout, Cin, B, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin);
    if (dbias)
        for (int o = 0; o < Cout; o++) {
            double s = 0.0;
            for (int b = 0; b < B; b++) s += dout[(size_t)b * Cout + o];
            dbias[o] += (float)s;
        }
}
