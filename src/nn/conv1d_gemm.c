/* 1-D convolution by im2col and GEMM: the portable path, and on AVX-512 the one for short
 * reductions (K = 1..7 at up to 128 channels), where it measured faster than the direct kernels.
 *
 * Per sample, im2col lays the input out as columns col (Cin*K, Lout),
 *   col[ci*K + k, t] = in[ci, t*stride + k - pad]   (0 outside the input),
 * so each group's output is one GEMM: out_g (Cout/G, Lout) = w_g (Cout/G, Cin/G*K) . col_g.
 * Backward: dw_g += dout_g . col_g^T and dcol_g = w_g^T . dout_g, then col2im adds dcol back
 * into din. A 1x1 convolution with stride 1 and no padding needs no col: it is the input.
 *
 * Batches run one sample per thread (each thread its own slice of the scratch, dw summed
 * from per-thread partial sums in thread order: same inputs and thread count give the same
 * bits); a single sample runs the GEMMs multi-threaded instead. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nn/conv1d_impl.h"

/* Floats of scratch one thread needs: col and dcol (Cin*K, Lout), and a dw partial sum. */
static size_t per_thread_floats(int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    size_t Lout = (size_t)conv1d_out_len(Lin, K, stride, pad);
    return 2 * (size_t)Cin * K * Lout + (size_t)Cout * (Cin / groups) * K;
}

size_t conv1d_gemm_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    int nt = omp_get_max_threads();
    if (nt > B) nt = B;
    if (nt < 1) nt = 1;
    return (size_t)nt * per_thread_floats(Cin, Lin, Cout, K, stride, pad, groups);
}

/* Threads that the batch loop may use: one for every GEMM_MIN_MACS_PER_THREAD multiply-adds,
 * bounded by the batch and by the scratch given. A sample costs its im2col and a GEMM call, a
 * few microseconds however small (the attention's 2-to-1-channel convolution, 0.3 M multiply-adds
 * at batch 96, took about 0.3 ms on one thread), so even small convolutions are worth sharing. */
#define GEMM_MIN_MACS_PER_THREAD 2e4
static int batch_threads(const nn_ctx *ctx, int B, size_t per_thread, double macs) {
    int nt = omp_get_max_threads();
    if (macs < GEMM_MIN_MACS_PER_THREAD * nt)
        nt = macs < GEMM_MIN_MACS_PER_THREAD ? 1 : (int)(macs / GEMM_MIN_MACS_PER_THREAD);
    if (nt > B) nt = B;
    size_t fit = ctx && ctx->scratch ? ctx->scratch_floats / (per_thread ? per_thread : 1) : 0;
    if ((size_t)nt > fit) nt = (int)fit;
    return nt;
}

void conv1d_fill_nan(float *x, size_t n) {
    if (x)
        for (size_t i = 0; i < n; i++) x[i] = NAN;
}

/* col (Cin*K, Lout) from one sample's in (Cin, Lin). */
static void im2col(float *col, const float *in, int Cin, int Lin, int K, int stride, int pad, int Lout) {
    for (int ci = 0; ci < Cin; ci++) {
        const float *x = in + (size_t)ci * Lin;
        for (int k = 0; k < K; k++) {
            float *c = col + ((size_t)ci * K + k) * Lout;
            int shift = k - pad;
            /* valid t: 0 <= t*stride + shift < Lin */
            int t0 = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
            int t1 = Lin - shift <= 0 ? 0 : (Lin - shift + stride - 1) / stride;
            if (t1 > Lout) t1 = Lout;
            if (t0 > t1) t0 = t1;
            for (int t = 0; t < t0; t++) c[t] = 0.0f;
            if (stride == 1)
                memcpy(c + t0, x + t0 + shift, (size_t)(t1 - t0) * sizeof(float));
            else
                for (int t = t0; t < t1; t++) c[t] = x[t * stride + shift];
            for (int t = t1; t < Lout; t++) c[t] = 0.0f;
        }
    }
}

/* din (Cin, Lin) += col2im(dcol (Cin*K, Lout)). */
static void col2im_add(float *din, const float *dcol, int Cin, int Lin, int K, int stride, int pad, int Lout) {
    for (int ci = 0; ci < Cin; ci++) {
        float *d = din + (size_t)ci * Lin;
        for (int k = 0; k < K; k++) {
            const float *c = dcol + ((size_t)ci * K + k) * Lout;
            int shift = k - pad;
            int t0 = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
            int t1 = Lin - shift <= 0 ? 0 : (Lin - shift + stride - 1) / stride;
            if (t1 > Lout) t1 = Lout;
            if (stride == 1) {
                float *dd = d + shift;
                for (int t = t0; t < t1; t++) dd[t] += c[t];
            } else {
                for (int t = t0; t < t1; t++) d[t * stride + shift] += c[t];
            }
        }
    }
}

/* One sample's forward: out_b (Cout, Lout) from in_b (Cin, Lin); col is scratch. */
static void forward_one(float *out_b, const float *in_b, const float *w, const float *bias, int relu, float *col,
                        int Cin, int Lin, int Cout, int K, int stride, int pad, int groups, int Lout) {
    int Cig = Cin / groups, Cog = Cout / groups, CKg = Cig * K;
    const float *cols = in_b;
    if (!(K == 1 && stride == 1 && pad == 0)) {
        im2col(col, in_b, Cin, Lin, K, stride, pad, Lout);
        cols = col;
    }
    for (int g = 0; g < groups; g++)
        nn_sgemm('N', 'N', Cog, Lout, CKg, 1.0f, w + (size_t)g * Cog * CKg, CKg,
                 cols + (size_t)g * CKg * Lout, Lout, 0.0f, out_b + (size_t)g * Cog * Lout, Lout);
    if (bias || relu) /* the epilogue while the sample's output is in cache */
        for (int o = 0; o < Cout; o++) {
            float *y = out_b + (size_t)o * Lout, v = bias ? bias[o] : 0.0f;
            if (relu)
                for (int t = 0; t < Lout; t++) y[t] = fmaxf(y[t] + v, 0.0f);
            else
                for (int t = 0; t < Lout; t++) y[t] += v;
        }
}

void conv1d_forward_gemm(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu,
                         int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    int Lout = conv1d_out_len(Lin, K, stride, pad);
    size_t pt = per_thread_floats(Cin, Lin, Cout, K, stride, pad, groups);
    int nt = batch_threads(ctx, B, pt, (double)B * Cout * Lout * (Cin / groups) * K);
    if (nt < 1) { /* the caller gave too little scratch: make it visible */
        conv1d_fill_nan(out, (size_t)B * Cout * Lout);
        return;
    }
    if (nt == 1) {
        for (int b = 0; b < B; b++)
            forward_one(out + (size_t)b * Cout * Lout, in + (size_t)b * Cin * Lin, w, bias, relu, ctx->scratch, Cin,
                        Lin, Cout, K, stride, pad, groups, Lout);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++)
        forward_one(out + (size_t)b * Cout * Lout, in + (size_t)b * Cin * Lin, w, bias, relu,
                    ctx->scratch + (size_t)omp_get_thread_num() * pt, Cin, Lin, Cout, K, stride, pad,
                    groups, Lout);
}

/* One sample's backward: dw_acc += dout_b . col^T (if dw_acc), din_b += col2im(w^T . dout_b). */
static void backward_one(float *din_b, float *dw_acc, const float *dout_b, const float *in_b,
                         const float *w, float *col, float *dcol, int Cin, int Lin, int Cout, int K,
                         int stride, int pad, int groups, int Lout) {
    int Cig = Cin / groups, Cog = Cout / groups, CKg = Cig * K;
    int direct = K == 1 && stride == 1 && pad == 0;
    if (dw_acc) {
        const float *cols = in_b;
        if (!direct) {
            im2col(col, in_b, Cin, Lin, K, stride, pad, Lout);
            cols = col;
        }
        for (int g = 0; g < groups; g++)
            nn_sgemm('N', 'T', Cog, CKg, Lout, 1.0f, dout_b + (size_t)g * Cog * Lout, Lout,
                     cols + (size_t)g * CKg * Lout, Lout, 1.0f, dw_acc + (size_t)g * Cog * CKg, CKg);
    }
    if (din_b) {
        float *dc = direct ? din_b : dcol;
        for (int g = 0; g < groups; g++)
            nn_sgemm('T', 'N', CKg, Lout, Cog, 1.0f, w + (size_t)g * Cog * CKg, CKg,
                     dout_b + (size_t)g * Cog * Lout, Lout, direct ? 1.0f : 0.0f,
                     dc + (size_t)g * CKg * Lout, Lout);
        if (!direct) col2im_add(din_b, dcol, Cin, Lin, K, stride, pad, Lout);
    }
}

void conv1d_backward_gemm(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                     const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                     int groups) {
    if (!din && !dw) return;
    int Lout = conv1d_out_len(Lin, K, stride, pad);
    size_t colf = (size_t)Cin * K * Lout, nw = (size_t)Cout * (Cin / groups) * K;
    size_t pt = per_thread_floats(Cin, Lin, Cout, K, stride, pad, groups);
    int nt = batch_threads(ctx, B, pt, (double)B * Cout * Lout * (Cin / groups) * K);
    if (nt < 1) {
        conv1d_fill_nan(din, (size_t)B * Cin * Lin);
        conv1d_fill_nan(dw, nw);
        return;
    }
    if (nt == 1) { /* dw accumulates straight into dw */
        for (int b = 0; b < B; b++)
            backward_one(din ? din + (size_t)b * Cin * Lin : NULL, dw, dout + (size_t)b * Cout * Lout,
                         in + (size_t)b * Cin * Lin, w, ctx->scratch, ctx->scratch + colf, Cin, Lin,
                         Cout, K, stride, pad, groups, Lout);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num();
        float *col = ctx->scratch + (size_t)tid * pt, *dcol = col + colf, *dwp = dcol + colf;
        if (dw) memset(dwp, 0, nw * sizeof(float));
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++)
            backward_one(din ? din + (size_t)b * Cin * Lin : NULL, dw ? dwp : NULL,
                         dout + (size_t)b * Cout * Lout, in + (size_t)b * Cin * Lin, w, col, dcol, Cin,
                         Lin, Cout, K, stride, pad, groups, Lout);
        /* implicit barrier: every partial is complete; sum them in thread order */
        if (dw) {
#pragma omp for schedule(static)
            for (size_t i = 0; i < nw; i++) {
                float s = 0.0f;
                for (int j = 0; j < nt; j++) s += ctx->scratch[(size_t)j * pt + 2 * colf + i];
                dw[i] += s;
            }
        }
    }
}
