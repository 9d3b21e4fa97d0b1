/* The fast convolution paths against the definition of conv1d computed in double: the FFT
 * path (src/nn/conv1d_fft.c) and, further down, Winograd's F(4,3) (conv1d_winograd.c). FFT: forward with its bias + ReLU epilogue, the data and the weight gradient (which
 * accumulate), at the model's multi-scale shapes and at odd ones (strides 1 to 3, every
 * transform size, short inputs, blocks that end past the output), with the error of the
 * im2col + GEMM path on the same data as the yardstick. Also: the prepared (inference)
 * spectra give the same bits as the unprepared path, runs repeat bit for bit, and a scratch
 * that is too small makes the path decline (the dispatcher then takes another). */
#include <omp.h>
#include <stdint.h>

#include "../test_util.h"
#include "common/rng.h"
#include "nn/conv1d_impl.h"
#include "nn/ops.h"

typedef struct {
    int B, Cin, Lin, Cout, K, stride, pad, force_n;
} shape;

static float *rnd(size_t n, mrm_rng *r) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = mrm_rng_uniform_range(r, -1.0f, 1.0f);
    return x;
}

/* out[b,o,t] = sum w[o,i,k] in[b,i,t*s+k-pad], in double. */
static void ref_forward(double *out, const float *in, const float *w, const shape *s, int Lout) {
    for (int b = 0; b < s->B; b++)
        for (int o = 0; o < s->Cout; o++)
            for (int t = 0; t < Lout; t++) {
                double acc = 0.0;
                for (int i = 0; i < s->Cin; i++)
                    for (int k = 0; k < s->K; k++) {
                        int p = t * s->stride + k - s->pad;
                        if (p >= 0 && p < s->Lin)
                            acc += (double)w[((size_t)o * s->Cin + i) * s->K + k] * in[((size_t)b * s->Cin + i) * s->Lin + p];
                    }
                out[((size_t)b * s->Cout + o) * Lout + t] = acc;
            }
}

static void ref_backward(double *din, double *dw, const float *dout, const float *in, const float *w, const shape *s,
                         int Lout) {
    for (int b = 0; b < s->B; b++)
        for (int o = 0; o < s->Cout; o++)
            for (int t = 0; t < Lout; t++) {
                double g = dout[((size_t)b * s->Cout + o) * Lout + t];
                for (int i = 0; i < s->Cin; i++)
                    for (int k = 0; k < s->K; k++) {
                        int p = t * s->stride + k - s->pad;
                        if (p < 0 || p >= s->Lin) continue;
                        din[((size_t)b * s->Cin + i) * s->Lin + p] += g * w[((size_t)o * s->Cin + i) * s->K + k];
                        dw[((size_t)o * s->Cin + i) * s->K + k] += g * in[((size_t)b * s->Cin + i) * s->Lin + p];
                    }
            }
}

/* max |got - ref| / max |ref| */
static double rel_err(const float *got, const double *ref, size_t n) {
    double e = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(got[i] - ref[i]));
        m = fmax(m, fabs(ref[i]));
    }
    return m > 0 ? e / m : e;
}

static void check_shape(const shape *s, nn_fft *fft, mrm_rng *rng) {
    int Lout = conv1d_out_len(s->Lin, s->K, s->stride, s->pad);
    size_t nin = (size_t)s->B * s->Cin * s->Lin, nout = (size_t)s->B * s->Cout * Lout, nw = (size_t)s->Cout * s->Cin * s->K;
    float *in = rnd(nin, rng), *w = rnd(nw, rng), *dout = rnd(nout, rng), *bias = rnd((size_t)s->Cout, rng);
    float *din0 = rnd(nin, rng), *dw0 = rnd(nw, rng); /* the gradients accumulate onto these */
    float *out = malloc(nout * sizeof(float)), *out2 = malloc(nout * sizeof(float)), *gout = malloc(nout * sizeof(float));
    float *din = malloc(nin * sizeof(float)), *dw = malloc(nw * sizeof(float));
    float *gdin = malloc(nin * sizeof(float)), *gdw = malloc(nw * sizeof(float));
    double *rout = malloc(nout * sizeof(double)), *rdin = calloc(nin, sizeof(double)), *rdw = calloc(nw, sizeof(double));
    char name[160];
    snprintf(name, sizeof name, "B%d %d->%d K%d s%d p%d L%d N%d", s->B, s->Cin, s->Cout, s->K, s->stride, s->pad, s->Lin,
             s->force_n);
    nn_fft_force_size(fft, s->force_n);
    nn_ctx ctx = {NULL, conv1d_scratch_floats(s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad, 1), fft};
    ctx.scratch = malloc(ctx.scratch_floats * sizeof(float));
    nn_ctx gctx = {NULL, conv1d_gemm_scratch_floats(s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad, 1), NULL};
    gctx.scratch = malloc(gctx.scratch_floats * sizeof(float));

    ref_forward(rout, in, w, s, Lout);
    for (int i = 0; i < s->Cout; i++)
        for (int b = 0; b < s->B; b++)
            for (int t = 0; t < Lout; t++) rout[((size_t)b * s->Cout + i) * Lout + t] += bias[i];
    for (size_t i = 0; i < nin; i++) rdin[i] = din0[i];
    for (size_t i = 0; i < nw; i++) rdw[i] = dw0[i];
    ref_backward(rdin, rdw, dout, in, w, s, Lout);

    /* forward with bias, no ReLU, against the reference; the GEMM path's error beside it */
    int took = conv1d_forward_fft(&ctx, out, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad);
    CHECK(took, "%s: the FFT path declined", name);
    conv1d_forward_gemm(&gctx, gout, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad, 1);
    double ef = rel_err(out, rout, nout), eg = rel_err(gout, rout, nout);
    CHECK(ef < 2e-6, "%s: forward relative error %.3g (GEMM path %.3g)", name, ef, eg);
    /* ReLU epilogue */
    conv1d_forward_fft(&ctx, out2, in, w, bias, 1, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad);
    size_t bad = 0;
    for (size_t i = 0; i < nout; i++) bad += out2[i] != (out[i] > 0.0f ? out[i] : 0.0f);
    CHECK(bad == 0, "%s: %zu values differ from relu(forward)", name, bad);
    /* repeatable */
    conv1d_forward_fft(&ctx, out2, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad);
    CHECK(!memcmp(out, out2, nout * sizeof(float)), "%s: a second run gives other bits", name);
    /* prepared spectra: the same bits */
    size_t nspec = conv1d_fft_weight_floats(&ctx, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad, 1);
    float *spec = malloc((nspec ? nspec : 1) * sizeof(float));
    CHECK(nspec && !conv1d_fft_prepare(&ctx, spec, nspec - 1, w, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad),
          "%s: prepare into too small a buffer", name);
    CHECK(nspec && conv1d_fft_prepare(&ctx, spec, nspec, w, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad) == nspec,
          "%s: prepare", name);
    for (size_t i = 0; i < nout; i++) out2[i] = 0.0f;
    conv1d_forward_fft_prepared(&ctx, out2, in, NULL, spec, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride,
                                s->pad);
    CHECK(!memcmp(out, out2, nout * sizeof(float)), "%s: prepared spectra give other bits", name);
    /* spectra made for another transform size are not used */
    if (s->force_n) {
        nn_fft_force_size(fft, s->force_n == 256 ? 128 : 256);
        for (size_t i = 0; i < nout; i++) out2[i] = 0.0f;
        took = conv1d_forward_fft_prepared(&ctx, out2, in, NULL, spec, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->K,
                                           s->stride, s->pad);
        CHECK(!took, "%s: spectra of another size were used without w", name);
        conv1d_forward_fft_prepared(&ctx, out2, in, w, spec, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride,
                                    s->pad);
        CHECK(rel_err(out2, rout, nout) < 2e-6, "%s: spectra of another size were used", name);
        nn_fft_force_size(fft, s->force_n);
    }
    free(spec);

    /* gradients, accumulated onto din0 / dw0 */
    memcpy(din, din0, nin * sizeof(float));
    memcpy(dw, dw0, nw * sizeof(float));
    took = conv1d_backward_fft(&ctx, din, dw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad);
    CHECK(took, "%s: the FFT backward declined", name);
    memcpy(gdin, din0, nin * sizeof(float));
    memcpy(gdw, dw0, nw * sizeof(float));
    conv1d_backward_gemm(&gctx, gdin, gdw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad, 1);
    double ed = rel_err(din, rdin, nin), egd = rel_err(gdin, rdin, nin);
    double ew = rel_err(dw, rdw, nw), egw = rel_err(gdw, rdw, nw);
    CHECK(ed < 2e-6, "%s: din relative error %.3g (GEMM path %.3g)", name, ed, egd);
    CHECK(ew < 2e-6, "%s: dw relative error %.3g (GEMM path %.3g)", name, ew, egw);
    /* one gradient alone is the same as with the other */
    memcpy(gdin, din0, nin * sizeof(float));
    conv1d_backward_fft(&ctx, gdin, NULL, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad);
    CHECK(!memcmp(gdin, din, nin * sizeof(float)), "%s: din alone differs", name);
    memcpy(gdw, dw0, nw * sizeof(float));
    conv1d_backward_fft(&ctx, NULL, gdw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad);
    CHECK(!memcmp(gdw, dw, nw * sizeof(float)), "%s: dw alone differs", name);
    printf("%-40s forward %.2e (gemm %.2e)  din %.2e (%.2e)  dw %.2e (%.2e)\n", name, ef, eg, ed, egd, ew, egw);

    /* too little scratch: the path declines and leaves the output alone */
    nn_ctx small = {ctx.scratch, 1000, fft};
    for (size_t i = 0; i < nout; i++) out2[i] = 7.0f;
    took = conv1d_forward_fft(&small, out2, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad);
    CHECK(!took && out2[0] == 7.0f && out2[nout - 1] == 7.0f, "%s: small scratch not declined", name);

    nn_fft_force_size(fft, 0);
    free(ctx.scratch), free(gctx.scratch);
    free(in), free(w), free(dout), free(bias), free(din0), free(dw0), free(out), free(out2), free(gout);
    free(din), free(dw), free(gdin), free(gdw), free(rout), free(rdin), free(rdw);
}

/* Winograd F(4,3): forward with bias (+ ReLU), din and dw accumulating, against the double
 * reference and beside the GEMM path's error; repeatable; declines with too little scratch. */
static void check_winograd(const shape *s, mrm_rng *rng) {
    int Lout = conv1d_out_len(s->Lin, 3, 1, s->pad);
    size_t nin = (size_t)s->B * s->Cin * s->Lin, nout = (size_t)s->B * s->Cout * Lout, nw = (size_t)s->Cout * s->Cin * 3;
    float *in = rnd(nin, rng), *w = rnd(nw, rng), *dout = rnd(nout, rng), *bias = rnd((size_t)s->Cout, rng);
    float *din0 = rnd(nin, rng), *dw0 = rnd(nw, rng);
    float *out = malloc(nout * sizeof(float)), *out2 = malloc(nout * sizeof(float)), *gout = malloc(nout * sizeof(float));
    float *din = malloc(nin * sizeof(float)), *dw = malloc(nw * sizeof(float));
    float *gdin = malloc(nin * sizeof(float)), *gdw = malloc(nw * sizeof(float));
    double *rout = malloc(nout * sizeof(double)), *rdin = calloc(nin, sizeof(double)), *rdw = calloc(nw, sizeof(double));
    char name[160];
    snprintf(name, sizeof name, "winograd B%d %d->%d p%d L%d", s->B, s->Cin, s->Cout, s->pad, s->Lin);
    shape r = *s;
    r.K = 3, r.stride = 1;
    nn_ctx ctx = {NULL, conv1d_winograd_scratch_floats(s->B, s->Cin, s->Lin, s->Cout, s->pad), NULL};
    ctx.scratch = malloc(ctx.scratch_floats * sizeof(float));
    nn_ctx gctx = {NULL, conv1d_gemm_scratch_floats(s->B, s->Cin, s->Lin, s->Cout, 3, 1, s->pad, 1), NULL};
    gctx.scratch = malloc(gctx.scratch_floats * sizeof(float));
    ref_forward(rout, in, w, &r, Lout);
    for (int b = 0; b < s->B; b++)
        for (int i = 0; i < s->Cout; i++)
            for (int t = 0; t < Lout; t++) rout[((size_t)b * s->Cout + i) * Lout + t] += bias[i];
    for (size_t i = 0; i < nin; i++) rdin[i] = din0[i];
    for (size_t i = 0; i < nw; i++) rdw[i] = dw0[i];
    ref_backward(rdin, rdw, dout, in, w, &r, Lout);

    int took = conv1d_forward_winograd(&ctx, out, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    CHECK(took, "%s: declined", name);
    conv1d_forward_gemm(&gctx, gout, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, 3, 1, s->pad, 1);
    double ef = rel_err(out, rout, nout), eg = rel_err(gout, rout, nout);
    /* F(4,3) rounds a few times more than a direct sum: its transforms scale by up to 8 */
    CHECK(ef < 5e-6, "%s: forward relative error %.3g (GEMM path %.3g)", name, ef, eg);
    conv1d_forward_winograd(&ctx, out2, in, w, bias, 1, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    size_t bad = 0;
    for (size_t i = 0; i < nout; i++) bad += out2[i] != (out[i] > 0.0f ? out[i] : 0.0f);
    CHECK(bad == 0, "%s: %zu values differ from relu(forward)", name, bad);
    conv1d_forward_winograd(&ctx, out2, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    CHECK(!memcmp(out, out2, nout * sizeof(float)), "%s: a second run gives other bits", name);

    memcpy(din, din0, nin * sizeof(float));
    memcpy(dw, dw0, nw * sizeof(float));
    took = conv1d_backward_winograd(&ctx, din, dw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    CHECK(took, "%s: backward declined", name);
    memcpy(gdin, din0, nin * sizeof(float));
    memcpy(gdw, dw0, nw * sizeof(float));
    conv1d_backward_gemm(&gctx, gdin, gdw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, 3, 1, s->pad, 1);
    double ed = rel_err(din, rdin, nin), egd = rel_err(gdin, rdin, nin);
    double ew = rel_err(dw, rdw, nw), egw = rel_err(gdw, rdw, nw);
    CHECK(ed < 5e-6, "%s: din relative error %.3g (GEMM path %.3g)", name, ed, egd);
    CHECK(ew < 5e-6, "%s: dw relative error %.3g (GEMM path %.3g)", name, ew, egw);
    memcpy(gdin, din0, nin * sizeof(float));
    conv1d_backward_winograd(&ctx, gdin, NULL, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    CHECK(!memcmp(gdin, din, nin * sizeof(float)), "%s: din alone differs", name);
    memcpy(gdw, dw0, nw * sizeof(float));
    conv1d_backward_winograd(&ctx, NULL, gdw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    CHECK(!memcmp(gdw, dw, nw * sizeof(float)), "%s: dw alone differs", name);
    /* din set (its old contents ignored, every value written): the bits of accumulating into zeros */
    memset(din, 0, nin * sizeof(float));
    conv1d_backward_winograd(&ctx, din, NULL, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    for (size_t i = 0; i < nin; i++) gdin[i] = 1e30f;
    memcpy(gdw, dw0, nw * sizeof(float));
    took = conv1d_backward_winograd_set(&ctx, gdin, gdw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    CHECK(took && !memcmp(gdin, din, nin * sizeof(float)), "%s: din set differs from din accumulated into zeros", name);
    CHECK(!memcmp(gdw, dw, nw * sizeof(float)), "%s: dw beside din set differs", name);
    /* din set, then a residual path through a ReLU added where its mask is positive, row by row:
     * the bits of conv1d_backward_winograd_set and relu_backward in turn (ties at 0, a NaN) */
    {
        float *add = rnd(nin, rng), *mask = rnd(nin, rng);
        mask[0] = 0.0f, mask[nin / 2] = -0.0f, add[nin - 1] = NAN, mask[nin - 1] = 1.0f;
        relu_backward(din, add, mask, nin); /* din: set into zeros above */
        for (size_t i = 0; i < nin; i++) gdin[i] = 1e30f;
        memcpy(gdw, dw0, nw * sizeof(float));
        took = conv1d_backward_winograd_set_plus(&ctx, gdin, gdw, dout, in, w, s->B, s->Cin, s->Lin, s->Cout, s->pad,
                                                 add, mask);
        CHECK(took && !memcmp(gdin, din, nin * sizeof(float)) && !memcmp(gdw, dw, nw * sizeof(float)),
              "%s: din set plus the masked path differs from set then relu_backward", name);
        free(add), free(mask);
    }
    printf("%-40s forward %.2e (gemm %.2e)  din %.2e (%.2e)  dw %.2e (%.2e)\n", name, ef, eg, ed, egd, ew, egw);

    nn_ctx small = {ctx.scratch, 100, NULL};
    for (size_t i = 0; i < nout; i++) out2[i] = 7.0f;
    took = conv1d_forward_winograd(&small, out2, in, w, bias, 0, s->B, s->Cin, s->Lin, s->Cout, s->pad);
    CHECK(!took && out2[0] == 7.0f && out2[nout - 1] == 7.0f, "%s: small scratch not declined", name);
    free(ctx.scratch), free(gctx.scratch);
    free(in), free(w), free(dout), free(bias), free(din0), free(dw0), free(out), free(out2), free(gout);
    free(din), free(dw), free(gdin), free(gdw), free(rout), free(rdin), free(rdw);
}

/* The public prepared forward (conv1d_prepare + conv1d_bias_act_forward_prepared): the same bits
 * as the unprepared forward at one record (direct kernels) and at 4 (FFT), for the model's 33-tap
 * convolutions and a grouped 7-tap one; a buffer too small is refused; weights prepared for
 * another geometry are not used. */
/* A training forward that keeps the input's transform (conv1d_forward_keep) and the backward
 * that reads it (conv1d_backward_kept): the same bits as conv1d_forward and conv1d_backward;
 * a keep of the wrong size is not used; shapes whose path keeps nothing ask for no floats. */
static void check_keep(nn_fft *fft, mrm_rng *rng) {
    const struct {
        int B, Cin, Lin, Cout, K, stride, pad, groups, keeps;
    } cases[] = {
        {4, 64, 1004, 64, 33, 1, 16, 1, 1}, {16, 8, 300, 12, 33, 2, 16, 1, 1}, {6, 6, 301, 10, 25, 2, 12, 1, 1},
        {1, 64, 1004, 64, 33, 1, 16, 1, 0}, /* too few columns: the direct kernels */
        {4, 64, 502, 64, 3, 1, 1, 1, 0},    {4, 128, 251, 128, 7, 1, 3, 8, 0},
    };
    nn_fft_force_size(fft, 0);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int B = cases[c].B, Cin = cases[c].Cin, Lin = cases[c].Lin, Cout = cases[c].Cout, K = cases[c].K;
        int S = cases[c].stride, P = cases[c].pad, G = cases[c].groups, Lout = conv1d_out_len(Lin, K, S, P);
        size_t nin = (size_t)B * Cin * Lin, nout = (size_t)B * Cout * Lout, nw = (size_t)Cout * (Cin / G) * K;
        nn_ctx ctx = {NULL, conv1d_scratch_floats(B, Cin, Lin, Cout, K, S, P, G), fft};
        ctx.scratch = malloc(ctx.scratch_floats * sizeof(float));
        size_t nk = conv1d_keep_floats(&ctx, B, Cin, Lin, Cout, K, S, P, G);
        CHECK((nk > 0) == cases[c].keeps, "keep: B%d %d->%d K%d s%d: %zu floats", B, Cin, Cout, K, S, nk);
        float *in = rnd(nin, rng), *w = rnd(nw, rng), *dout = rnd(nout, rng), *keep = malloc((nk + 1) * sizeof(float));
        float *o1 = malloc(nout * sizeof(float)), *o2 = malloc(nout * sizeof(float));
        float *di1 = rnd(nin, rng), *di2 = malloc(nin * sizeof(float)), *dw1 = rnd(nw, rng), *dw2 = malloc(nw * sizeof(float));
        memcpy(di2, di1, nin * sizeof(float)), memcpy(dw2, dw1, nw * sizeof(float));
        conv1d_forward(&ctx, o1, in, w, B, Cin, Lin, Cout, K, S, P, G);
        conv1d_backward(&ctx, di1, dw1, dout, in, w, B, Cin, Lin, Cout, K, S, P, G);
        int kept = conv1d_forward_keep(&ctx, o2, in, w, B, Cin, Lin, Cout, K, S, P, G, keep, nk);
        CHECK(kept == cases[c].keeps, "keep: B%d %d->%d K%d s%d: forward_keep returned %d", B, Cin, Cout, K, S, kept);
        if (nk) { /* a wrong size: declined (the plain forward runs, the same output) */
            CHECK(!conv1d_forward_fft_keep(&ctx, o2, in, w, B, Cin, Lin, Cout, K, S, P, keep, nk + 1),
                  "keep: a keep of another size was used");
            CHECK(!conv1d_backward_fft_kept(&ctx, di2, dw2, dout, in, w, B, Cin, Lin, Cout, K, S, P, keep, nk - 1),
                  "kept: a keep of another size was used");
        }
        conv1d_backward_kept(&ctx, di2, dw2, dout, in, w, B, Cin, Lin, Cout, K, S, P, G, kept ? keep : NULL, nk);
        CHECK(!memcmp(o1, o2, nout * sizeof(float)) && !memcmp(di1, di2, nin * sizeof(float)) &&
                  !memcmp(dw1, dw2, nw * sizeof(float)),
              "keep: B%d %d->%d K%d s%d: other bits than the plain forward and backward", B, Cin, Cout, K, S);
        free(ctx.scratch), free(in), free(w), free(dout), free(keep), free(o1), free(o2), free(di1), free(di2);
        free(dw1), free(dw2);
    }
}

static void check_prepared(nn_fft *fft, mrm_rng *rng) {
    const struct {
        int B, Cin, Lin, Cout, K, stride, pad, groups;
    } cases[] = {
        {1, 64, 1004, 64, 33, 1, 16, 1}, {4, 64, 1004, 64, 33, 1, 16, 1}, {1, 64, 1004, 128, 33, 2, 16, 1},
        {4, 64, 1004, 128, 33, 2, 16, 1}, {1, 128, 251, 128, 7, 1, 3, 8}, {2, 64, 502, 64, 3, 1, 1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int B = cases[c].B, Cin = cases[c].Cin, Lin = cases[c].Lin, Cout = cases[c].Cout, K = cases[c].K;
        int S = cases[c].stride, P = cases[c].pad, G = cases[c].groups, Lout = conv1d_out_len(Lin, K, S, P);
        size_t nin = (size_t)B * Cin * Lin, nout = (size_t)B * Cout * Lout, nw = (size_t)Cout * (Cin / G) * K;
        float *in = rnd(nin, rng), *w = rnd(nw, rng), *bias = rnd((size_t)Cout, rng);
        float *a = malloc(nout * sizeof(float)), *b = malloc(nout * sizeof(float));
        nn_ctx ctx = {NULL, conv1d_scratch_floats(B, Cin, Lin, Cout, K, S, P, G), fft};
        ctx.scratch = malloc(ctx.scratch_floats * sizeof(float));
        size_t np = conv1d_prepare_floats(&ctx, Cin, Lin, Cout, K, S, P, G);
        float *prep = malloc(np * sizeof(float));
        CHECK(!conv1d_prepare(&ctx, prep, np - 1, w, Cin, Lin, Cout, K, S, P, G), "case %zu: too small a buffer", c);
        CHECK(conv1d_prepare(&ctx, prep, np, w, Cin, Lin, Cout, K, S, P, G) == np, "case %zu: prepare", c);
        conv1d_bias_act_forward(&ctx, a, in, w, bias, 1, B, Cin, Lin, Cout, K, S, P, G);
        conv1d_bias_act_forward_prepared(&ctx, b, in, w, prep, bias, 1, B, Cin, Lin, Cout, K, S, P, G);
        CHECK(!memcmp(a, b, nout * sizeof(float)), "case %zu: prepared and unprepared forwards differ", c);
        /* made for another input length: ignored */
        size_t np2 = conv1d_prepare_floats(&ctx, Cin, Lin - 8, Cout, K, S, P, G);
        float *prep2 = malloc(np2 * sizeof(float));
        CHECK(conv1d_prepare(&ctx, prep2, np2, w, Cin, Lin - 8, Cout, K, S, P, G) == np2, "case %zu: prepare 2", c);
        conv1d_bias_act_forward_prepared(&ctx, b, in, w, prep2, bias, 1, B, Cin, Lin, Cout, K, S, P, G);
        CHECK(!memcmp(a, b, nout * sizeof(float)), "case %zu: weights of another geometry were used", c);
        free(prep), free(prep2), free(ctx.scratch), free(in), free(w), free(bias), free(a), free(b);
    }
}

/* The grouped weight-gradient kernel (conv1d_grouped.c): dw accumulating, against the double
 * reference with groups and beside the GEMM path's error; repeatable; at several thread counts
 * (the same bits at each count run twice); through conv1d_backward (din beside it unchanged
 * from the data gradient alone); declines where it does not apply or the scratch is too small. */
static void check_wgrad_grouped(int B, int Cin, int Lin, int Cout, int K, int pad, int groups, mrm_rng *rng) {
    int Lout = conv1d_out_len(Lin, K, 1, pad), Cig = Cin / groups, Cog = Cout / groups;
    size_t nin = (size_t)B * Cin * Lin, nout = (size_t)B * Cout * Lout, nw = (size_t)Cout * Cig * K;
    float *in = rnd(nin, rng), *w = rnd(nw, rng), *dout = rnd(nout, rng), *dw0 = rnd(nw, rng);
    float *dw = malloc(nw * sizeof(float)), *dw2 = malloc(nw * sizeof(float)), *gdw = malloc(nw * sizeof(float));
    float *din = calloc(nin, sizeof(float)), *din2 = calloc(nin, sizeof(float));
    double *rdw = malloc(nw * sizeof(double));
    char name[160];
    snprintf(name, sizeof name, "grouped dw B%d %d->%d g%d K%d p%d L%d", B, Cin, Cout, groups, K, pad, Lin);
    for (size_t i = 0; i < nw; i++) rdw[i] = dw0[i];
    for (int b = 0; b < B; b++)
        for (int o = 0; o < Cout; o++)
            for (int i = 0; i < Cig; i++)
                for (int k = 0; k < K; k++) {
                    double acc = 0.0;
                    int c = o / Cog * Cig + i;
                    for (int t = 0; t < Lout; t++) {
                        int p = t + k - pad;
                        if (p >= 0 && p < Lin)
                            acc += (double)dout[((size_t)b * Cout + o) * Lout + t] * in[((size_t)b * Cin + c) * Lin + p];
                    }
                    rdw[((size_t)o * Cig + i) * K + k] += acc;
                }
    CHECK(conv1d_wgrad_grouped_applies(Cin, Cout, K, 1, groups), "%s: does not apply", name);
    int saved = omp_get_max_threads();
    const int counts[] = {1, 2, 3, 8};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        omp_set_num_threads(counts[c]);
        nn_ctx ctx = {NULL, conv1d_scratch_floats(B, Cin, Lin, Cout, K, 1, pad, groups), NULL};
        CHECK(ctx.scratch_floats >= conv1d_wgrad_grouped_scratch_floats(B, Cin, Lin, Cout, K, 1, pad, groups),
              "%s: conv1d_scratch_floats too small", name);
        ctx.scratch = malloc(ctx.scratch_floats * sizeof(float));
        nn_ctx gctx = {NULL, conv1d_gemm_scratch_floats(B, Cin, Lin, Cout, K, 1, pad, groups), NULL};
        gctx.scratch = malloc(gctx.scratch_floats * sizeof(float));
        memcpy(dw, dw0, nw * sizeof(float));
        int took = conv1d_wgrad_grouped(&ctx, dw, dout, in, B, Cin, Lin, Cout, K, 1, pad, groups);
        CHECK(took, "%s: declined", name);
        memcpy(gdw, dw0, nw * sizeof(float));
        conv1d_backward_gemm(&gctx, NULL, gdw, dout, in, w, B, Cin, Lin, Cout, K, 1, pad, groups);
        double ew = rel_err(dw, rdw, nw), egw = rel_err(gdw, rdw, nw);
        CHECK(ew < 2e-6, "%s threads %d: dw relative error %.3g (GEMM path %.3g)", name, counts[c], ew, egw);
        memcpy(dw2, dw0, nw * sizeof(float));
        conv1d_wgrad_grouped(&ctx, dw2, dout, in, B, Cin, Lin, Cout, K, 1, pad, groups);
        CHECK(!memcmp(dw, dw2, nw * sizeof(float)), "%s threads %d: a second run gives other bits", name, counts[c]);
        /* through the dispatcher, with din: dw the kernel's bits, din those of din alone */
        memcpy(dw2, dw0, nw * sizeof(float));
        memset(din, 0, nin * sizeof(float));
        conv1d_backward(&ctx, din, dw2, dout, in, w, B, Cin, Lin, Cout, K, 1, pad, groups);
        CHECK(!memcmp(dw, dw2, nw * sizeof(float)), "%s threads %d: conv1d_backward's dw differs", name, counts[c]);
        memset(din2, 0, nin * sizeof(float));
        conv1d_backward(&ctx, din2, NULL, dout, in, w, B, Cin, Lin, Cout, K, 1, pad, groups);
        CHECK(!memcmp(din, din2, nin * sizeof(float)), "%s threads %d: din beside dw differs", name, counts[c]);
        if (c == 0) printf("%-44s dw %.2e (gemm %.2e)\n", name, ew, egw);
        /* too little scratch: declines, dw untouched */
        nn_ctx small = {ctx.scratch, 100, NULL};
        memcpy(dw2, dw0, nw * sizeof(float));
        took = conv1d_wgrad_grouped(&small, dw2, dout, in, B, Cin, Lin, Cout, K, 1, pad, groups);
        CHECK(!took && !memcmp(dw2, dw0, nw * sizeof(float)), "%s: small scratch not declined", name);
        free(ctx.scratch), free(gctx.scratch);
    }
    omp_set_num_threads(saved);
    free(in), free(w), free(dout), free(dw0), free(dw), free(dw2), free(gdw), free(din), free(din2), free(rdw);
}

int main(void) {
    nn_fft *fft = nn_fft_create();
    CHECK(fft != NULL, "nn_fft_create");
    if (!fft) TEST_END();
    mrm_rng rng;
    mrm_rng_seed(&rng, 7);
    const shape shapes[] = {
        /* the model's two multi-scale convolutions (merged 33 taps), a few samples */
        {4, 64, 1004, 64, 33, 1, 16, 0},
        {4, 64, 1004, 128, 33, 2, 16, 0},
        /* every transform size, both strides */
        {2, 8, 300, 12, 33, 1, 16, 128},
        {2, 8, 300, 12, 33, 1, 16, 256},
        {2, 8, 300, 12, 25, 1, 12, 64},
        {2, 6, 301, 10, 33, 2, 16, 64},
        {2, 6, 301, 10, 33, 2, 16, 256},
        /* odd shapes: stride 3, even K, no padding, more padding than K/2, short inputs */
        {2, 5, 157, 7, 17, 3, 8, 64},
        {1, 3, 120, 4, 16, 1, 0, 64},
        {2, 4, 90, 5, 15, 2, 20, 64},
        {10, 4, 90, 5, 15, 2, 20, 0}, /* enough columns for the automatic choice */
        {3, 7, 20, 3, 15, 1, 7, 64},
        {1, 2, 40, 2, 33, 1, 16, 256},
        /* columns (samples x blocks) a multiple of 16: the spectra go out as whole 64-byte runs
         * (8 and 4 blocks a sample) */
        {16, 8, 300, 12, 25, 1, 12, 64},
        {8, 6, 301, 10, 33, 2, 16, 64},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(&shapes[i], fft, &rng);
    {
        /* many threads and enough columns: each frequency's products cut into pieces (by
         * columns, and the weight gradient by rows) so that the threads share them evenly */
        const shape wide[] = {{24, 16, 1004, 32, 33, 1, 16, 0}, {24, 16, 1004, 40, 33, 2, 16, 0}};
        const int saved = omp_get_max_threads(), many[] = {7, 16};
        for (int k = 0; k < 2; k++) {
            omp_set_num_threads(many[k]);
            for (int i = 0; i < 2; i++) check_shape(&wide[i], fft, &rng);
        }
        omp_set_num_threads(saved);
    }
    check_prepared(fft, &rng);
    check_keep(fft, &rng);
    /* without plans, or with groups, the path does not apply */
    nn_ctx none = {NULL, 0, NULL};
    CHECK(!conv1d_fft_applies(&none, 64, 33, 1, 1), "applies without plans");
    nn_ctx with = {NULL, 0, fft};
    CHECK(conv1d_fft_applies(&with, 64, 33, 1, 1) && !conv1d_fft_applies(&with, 64, 33, 1, 4) &&
              !conv1d_fft_applies(&with, 64, 3, 1, 1),
          "applies: long kernels without groups only");
    nn_fft_free(fft);
    /* Winograd: the model's 3-tap shapes (a few samples), odd lengths and paddings, one sample,
     * more samples than one chunk holds */
    const shape wshapes[] = {
        {4, 64, 502, 64, 3, 1, 1, 0},   {4, 128, 251, 128, 3, 1, 1, 0}, {4, 256, 251, 128, 3, 1, 1, 0},
        {4, 64, 1003, 64, 3, 1, 1, 0},  {5, 8, 37, 9, 3, 1, 0, 0},      {4, 9, 6, 8, 3, 1, 2, 0},
        {13, 16, 50, 12, 3, 1, 1, 0},   {4, 8, 2, 8, 3, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof wshapes / sizeof wshapes[0]; i++) check_winograd(&wshapes[i], &rng);
    /* more threads than samples: the forward's threads get runs of columns that begin and end
     * inside samples, the backward's whole samples; the same checks at each thread count */
    {
        int saved = omp_get_max_threads();
        const int counts[] = {1, 3, 5, 12, 16, 33};
        const shape tshapes[] = {{4, 128, 251, 128, 3, 1, 1, 0}, {7, 8, 37, 9, 3, 1, 0, 0}, {5, 16, 50, 12, 3, 1, 1, 0}};
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            omp_set_num_threads(counts[c]);
            for (size_t i = 0; i < sizeof tshapes / sizeof tshapes[0]; i++) {
                const shape *t = &tshapes[i];
                int fw = conv1d_winograd_threads(t->B, t->Cin, t->Lin, t->Cout, t->pad, counts[c], 0);
                int bw = conv1d_winograd_threads(t->B, t->Cin, t->Lin, t->Cout, t->pad, counts[c], 1);
                printf("threads %d: forward on %d, backward on %d\n", counts[c], fw, bw);
                check_winograd(t, &rng);
            }
        }
        /* the model's low-resolution blocks at batch 32: every thread has columns to do */
        for (int nt = 1; nt <= 64; nt++) {
            int fw = conv1d_winograd_threads(32, 128, 251, 128, 1, nt, 0);
            CHECK(fw == nt, "batch 32, 128x251, %d threads: the forward uses %d", nt, fw);
            int bw = conv1d_winograd_threads(96, 128, 251, 128, 1, nt, 1);
            CHECK(bw == nt, "batch 96, 128x251, %d threads: the backward uses %d", nt, bw);
        }
        omp_set_num_threads(saved);
    }
    { /* the forward of batches below 4 is left to the direct kernels */
        float x[3 * 8 * 20] = {0}, wt[8 * 8 * 3] = {0}, y[3 * 8 * 20];
        nn_ctx c = {NULL, conv1d_winograd_scratch_floats(3, 8, 20, 8, 1), NULL};
        c.scratch = malloc(c.scratch_floats * sizeof(float));
        CHECK(!conv1d_forward_winograd(&c, y, x, wt, NULL, 0, 3, 8, 20, 8, 1), "winograd forward at batch 3");
        free(c.scratch);
    }
    CHECK(conv1d_winograd_applies(64, 64, 3, 1, 1) && !conv1d_winograd_applies(64, 64, 3, 2, 1) &&
              !conv1d_winograd_applies(64, 64, 3, 1, 4) && !conv1d_winograd_applies(64, 64, 5, 1, 1),
          "winograd applies: 3 taps, stride 1, no groups");
    /* the grouped weight gradient: the model's Gate (7 taps) and SE (3 taps) shapes at a few
     * samples, 5 taps, a partial tile of input channels, odd lengths and paddings */
    check_wgrad_grouped(3, 128, 251, 128, 7, 3, 8, &rng);
    check_wgrad_grouped(3, 64, 502, 64, 3, 1, 4, &rng);
    check_wgrad_grouped(2, 64, 75, 64, 5, 2, 4, &rng);
    check_wgrad_grouped(5, 20, 33, 32, 3, 0, 2, &rng);
    check_wgrad_grouped(2, 6, 17, 32, 7, 5, 2, &rng);
    check_wgrad_grouped(4, 48, 16, 48, 7, 3, 3, &rng);
    check_wgrad_grouped(1, 32, 9, 32, 5, 1, 2, &rng);
    check_wgrad_grouped(2, 16, 3, 32, 3, 2, 2, &rng);
    CHECK(!conv1d_wgrad_grouped_applies(128, 128, 3, 2, 8) && !conv1d_wgrad_grouped_applies(128, 128, 9, 1, 8) &&
              !conv1d_wgrad_grouped_applies(128, 128, 3, 1, 4) && !conv1d_wgrad_grouped_applies(16, 16, 3, 1, 1),
          "grouped dw applies: groups of 16 output channels, stride 1, 3, 5 or 7 taps");
    TEST_END();
}
