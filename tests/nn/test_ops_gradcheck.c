/* Every op of src/nn: forward against a plain reference loop written here, backward against
 * central finite differences of a random projection of the forward output, plus the semantics
 * the model relies on (accumulating backward, NULL gradients, BatchNorm running statistics,
 * dropout statistics, PyTorch tie-breaking in max pools, determinism of conv1d). */
#include <omp.h>

#include "nn/conv1d_impl.h"
#include "nn/ops.h"
#include "test_util.h"

static mrm_rng rng;

static float *randn(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        /* sum of 4 uniforms: roughly normal, no values far out */
        float s = 0.0f;
        for (int k = 0; k < 4; k++) s += mrm_rng_uniform(&rng) - 0.5f;
        x[i] = s * scale * 1.7f;
    }
    return x;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *copy(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}
/* Values with no two within 0.02 of each other (for max pools: no near-ties). */
static float *distinct(size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = ((float)i - (float)n / 2) * 0.05f;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)mrm_rng_below(&rng, i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    return x;
}
/* Values kept at least `gap` away from each kink in kinks[0..nk). */
static void avoid_kinks(float *x, size_t n, const float *kinks, int nk, float gap) {
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < nk; k++)
            if (fabsf(x[i] - kinks[k]) < gap) x[i] = kinks[k] + (x[i] >= kinks[k] ? gap : -gap);
}
static double dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}
static double max_abs(const float *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* ---- finite differences ---------------------------------------------------------------------
 * g_loss() runs a forward and returns a scalar (a projection of the output, or a loss). Each
 * value of x is moved by +-EPS, and the central difference is compared with the analytic
 * gradient: every element within 2e-2 of the largest gradient magnitude (and 1e-4 absolute).
 * Tensors over 192 values are checked on a random sample of them. */
#define EPS 1e-3f
static double (*g_loss)(void);

static void gradcheck(const char *what, float *x, size_t n, const float *analytic) {
    double scale = fmax(max_abs(analytic, n), 1e-2), worst = 0.0;
    size_t wi = 0;
    double num_w = 0.0;
    /* large tensors: the first and last values and a random sample of 160 others */
    size_t nchk = n <= 192 ? n : 192;
    for (size_t c = 0; c < nchk; c++) {
        size_t i = n <= 192 ? c : c == 0 ? 0 : c == 1 ? n - 1 : (size_t)mrm_rng_below(&rng, n);
        float old = x[i], up = old + EPS, down = old - EPS;
        x[i] = up;
        double lp = g_loss();
        x[i] = down;
        double lm = g_loss();
        x[i] = old;
        double num = (lp - lm) / ((double)up - (double)down);
        double err = fabs(num - analytic[i]);
        if (err > worst) {
            worst = err;
            wi = i;
            num_w = num;
        }
    }
    CHECK(worst <= 2e-2 * scale + 1e-4, "%s: gradient [%zu] analytic %.6g vs numeric %.6g (scale %.3g)",
          what, wi, n ? analytic[wi] : 0.0, num_w, scale);
}

/* ---- conv1d ---------------------------------------------------------------------------------- */
/* The implementation under test: the ops.h entry points, or one of the two behind them. */
enum { IMPL_OPS, IMPL_GEMM, IMPL_DIRECT };
static const char *impl_names[] = {"ops", "gemm", "direct"};

static struct {
    int B, Cin, Lin, Cout, K, stride, pad, groups, Lout, impl;
    float *in, *w, *out, *R;
    nn_ctx ctx;
} cv;

static size_t conv_scratch(int B) {
    if (cv.impl == IMPL_GEMM) return conv1d_gemm_scratch_floats(B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride, cv.pad, cv.groups);
    if (cv.impl == IMPL_DIRECT) return conv1d_direct_scratch_floats(B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride, cv.pad, cv.groups);
    return conv1d_scratch_floats(B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride, cv.pad, cv.groups);
}

static void conv_fwd(nn_ctx *ctx, float *out, const float *in, const float *w) {
    if (cv.impl == IMPL_GEMM)
        conv1d_forward_gemm(ctx, out, in, w, NULL, 0, cv.B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride, cv.pad, cv.groups);
    else if (cv.impl == IMPL_DIRECT)
        conv1d_forward_direct(ctx, out, in, w, NULL, 0, cv.B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride, cv.pad, cv.groups);
    else
        conv1d_forward(ctx, out, in, w, cv.B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride, cv.pad, cv.groups);
}

static void conv_bwd(nn_ctx *ctx, float *din, float *dw, const float *dout) {
    if (cv.impl == IMPL_GEMM)
        conv1d_backward_gemm(ctx, din, dw, dout, cv.in, cv.w, cv.B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride,
                             cv.pad, cv.groups);
    else if (cv.impl == IMPL_DIRECT)
        conv1d_backward_direct(ctx, din, dw, dout, cv.in, cv.w, cv.B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride,
                               cv.pad, cv.groups);
    else
        conv1d_backward(ctx, din, dw, dout, cv.in, cv.w, cv.B, cv.Cin, cv.Lin, cv.Cout, cv.K, cv.stride, cv.pad,
                        cv.groups);
}

static double conv_loss(void) {
    conv_fwd(&cv.ctx, cv.out, cv.in, cv.w);
    return dot(cv.out, cv.R, (size_t)cv.B * cv.Cout * cv.Lout);
}

/* Direct convolution in double, the definition of torch's conv1d. */
static void conv_naive(float *out, const float *in, const float *w, int B, int Cin, int Lin, int Cout,
                       int K, int stride, int pad, int groups) {
    int Lout = conv1d_out_len(Lin, K, stride, pad), Cig = Cin / groups, Cog = Cout / groups;
    for (int b = 0; b < B; b++)
        for (int co = 0; co < Cout; co++)
            for (int t = 0; t < Lout; t++) {
                double s = 0.0;
                int g = co / Cog;
                for (int ci = 0; ci < Cig; ci++)
                    for (int k = 0; k < K; k++) {
                        int x = t * stride + k - pad;
                        if (x >= 0 && x < Lin)
                            s += (double)w[((size_t)co * Cig + ci) * K + k] *
                                 in[((size_t)b * Cin + g * Cig + ci) * Lin + x];
                    }
                out[((size_t)b * Cout + co) * Lout + t] = (float)s;
            }
}

static void test_conv_impl(int impl, int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    char what[160];
    snprintf(what, sizeof what, "conv1d[%s] B%d Cin%d Lin%d Cout%d K%d s%d p%d g%d", impl_names[impl], B, Cin,
             Lin, Cout, K, stride, pad, groups);
    cv.impl = impl;
    cv.B = B, cv.Cin = Cin, cv.Lin = Lin, cv.Cout = Cout, cv.K = K, cv.stride = stride, cv.pad = pad;
    cv.groups = groups;
    cv.Lout = conv1d_out_len(Lin, K, stride, pad);
    size_t nin = (size_t)B * Cin * Lin, nw = (size_t)Cout * (Cin / groups) * K,
           nout = (size_t)B * Cout * cv.Lout;
    cv.in = randn(nin, 1.0f);
    cv.w = randn(nw, 0.5f);
    cv.out = zeros(nout);
    cv.R = randn(nout, 1.0f);
    cv.ctx.scratch_floats = conv_scratch(B);
    cv.ctx.scratch = malloc(cv.ctx.scratch_floats * sizeof(float));

    float *ref = zeros(nout);
    conv_naive(ref, cv.in, cv.w, B, Cin, Lin, Cout, K, stride, pad, groups);
    conv_loss();
    CHECK(max_abs_diff(cv.out, ref, nout) <= 1e-5 * fmax(1.0, max_abs(ref, nout)), "%s: forward off by %g",
          what, max_abs_diff(cv.out, ref, nout));

    /* the fused epilogue: bias, bias + ReLU */
    float *bias = randn(Cout, 1.0f), *fused = zeros(nout);
    for (int relu = 0; relu < 2; relu++) {
        if (impl == IMPL_GEMM)
            conv1d_forward_gemm(&cv.ctx, fused, cv.in, cv.w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
        else if (impl == IMPL_DIRECT)
            conv1d_forward_direct(&cv.ctx, fused, cv.in, cv.w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
        else
            conv1d_bias_act_forward(&cv.ctx, fused, cv.in, cv.w, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
        double worst = 0.0;
        for (size_t i = 0; i < nout; i++) {
            double e = ref[i] + bias[(i / cv.Lout) % Cout];
            if (relu && e < 0) e = 0;
            worst = fmax(worst, fabs(fused[i] - e));
        }
        CHECK(worst <= 1e-5 * fmax(1.0, max_abs(ref, nout)), "%s: bias%s epilogue off by %g", what,
              relu ? "+relu" : "", worst);
    }
    free(bias), free(fused);

    float *din = zeros(nin), *dw = zeros(nw);
    conv_bwd(&cv.ctx, din, dw, cv.R);
    g_loss = conv_loss;
    snprintf(what + strlen(what), sizeof what - strlen(what), " din");
    gradcheck(what, cv.in, nin, din);
    what[strlen(what) - 3] = 0;
    strcat(what, "dw");
    gradcheck(what, cv.w, nw, dw);
    what[strlen(what) - 3] = 0;

    /* accumulation: a second call adds the same again; NULL gradients are skipped */
    float *din2 = copy(din, nin), *dw2 = copy(dw, nw);
    conv_bwd(&cv.ctx, din2, NULL, cv.R);
    conv_bwd(&cv.ctx, NULL, dw2, cv.R);
    int ok = 1;
    for (size_t i = 0; i < nin; i++) ok &= fabsf(din2[i] - 2 * din[i]) <= 1e-5f * (1 + fabsf(din[i]));
    for (size_t i = 0; i < nw; i++) ok &= fabsf(dw2[i] - 2 * dw[i]) <= 1e-5f * (1 + fabsf(dw[i]));
    CHECK(ok, "%s: backward does not accumulate", what);

    /* determinism, and the same result with one thread's worth of scratch */
    float *dwa = zeros(nw), *dwb = zeros(nw), *dia = zeros(nin), *dib = zeros(nin);
    conv_bwd(&cv.ctx, dia, dwa, cv.R);
    conv_bwd(&cv.ctx, dib, dwb, cv.R);
    CHECK(!memcmp(dwa, dwb, nw * sizeof(float)) && !memcmp(dia, dib, nin * sizeof(float)),
          "%s: backward not deterministic", what);
    nn_ctx one = {cv.ctx.scratch, conv_scratch(1), NULL};
    float *out1 = zeros(nout), *dw1 = zeros(nw);
    conv_loss(); /* cv.out as of the unperturbed inputs */
    conv_fwd(&one, out1, cv.in, cv.w);
    conv_bwd(&one, NULL, dw1, cv.R);
    CHECK(max_abs_diff(out1, cv.out, nout) <= 1e-5 * fmax(1.0, max_abs(ref, nout)) &&
              max_abs_diff(dw1, dwa, nw) <= 1e-4 * fmax(1.0, max_abs(dwa, nw)),
          "%s: one-thread scratch gives another result", what);

    free(out1), free(dw1), free(dwa), free(dwb), free(dia), free(dib), free(din2), free(dw2);
    free(din), free(dw), free(ref), free(cv.in), free(cv.w), free(cv.out), free(cv.R), free(cv.ctx.scratch);
}

/* Every shape through the ops.h entry point and through each implementation. */
static void test_conv(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    test_conv_impl(IMPL_OPS, B, Cin, Lin, Cout, K, stride, pad, groups);
    test_conv_impl(IMPL_GEMM, B, Cin, Lin, Cout, K, stride, pad, groups);
#if defined(__AVX512F__)
    test_conv_impl(IMPL_DIRECT, B, Cin, Lin, Cout, K, stride, pad, groups);
#endif
}

/* Too little scratch: NaN in the outputs, not a write out of bounds. */
static void test_conv_small_scratch(void) {
    int B = 2, Cin = 16, Lin = 40, Cout = 8, K = 33, s = 1, p = 16;
    float *in = randn((size_t)B * Cin * Lin, 1), *w = randn((size_t)Cout * Cin * K, 1);
    float *out = zeros((size_t)B * Cout * Lin), *dw = zeros((size_t)Cout * Cin * K);
    nn_ctx ctx = {malloc(100 * sizeof(float)), 100, NULL};
    conv1d_forward(&ctx, out, in, w, B, Cin, Lin, Cout, K, s, p, 1);
    conv1d_backward(&ctx, NULL, dw, out, in, w, B, Cin, Lin, Cout, K, s, p, 1);
    CHECK(isnan(out[0]) && isnan(out[B * Cout * Lin - 1]) && isnan(dw[0]), "conv1d with too little scratch gives NaN");
    free(in), free(w), free(out), free(dw), free(ctx.scratch);
}

/* ---- batchnorm ------------------------------------------------------------------------------- */
static struct {
    int B, C, L;
    float *in, *gamma, *beta, *out, *mean, *rstd, *R;
} bn;

static double bn_loss(void) {
    batchnorm_forward_train(bn.out, bn.mean, bn.rstd, NULL, NULL, bn.in, bn.gamma, bn.beta, bn.B, bn.C,
                            bn.L, 1e-5f, 0.1f);
    return dot(bn.out, bn.R, (size_t)bn.B * bn.C * bn.L);
}

static void test_batchnorm(int B, int C, int L) {
    bn.B = B, bn.C = C, bn.L = L;
    size_t n = (size_t)B * C * L;
    bn.in = randn(n, 2.0f);
    for (size_t i = 0; i < n; i++) bn.in[i] += 0.5f * (float)((i / L) % C); /* per-channel offsets */
    bn.gamma = randn(C, 1.0f), bn.beta = randn(C, 1.0f);
    bn.out = zeros(n), bn.mean = zeros(C), bn.rstd = zeros(C), bn.R = randn(n, 1.0f);
    float *rm = randn(C, 1.0f), *rv = randn(C, 0.2f);
    for (int c = 0; c < C; c++) rv[c] = 1.0f + fabsf(rv[c]);
    float *rm0 = copy(rm, C), *rv0 = copy(rv, C);

    batchnorm_forward_train(bn.out, bn.mean, bn.rstd, rm, rv, bn.in, bn.gamma, bn.beta, B, C, L, 1e-5f, 0.1f);
    /* reference statistics in double */
    int ok_out = 1, ok_run = 1;
    for (int c = 0; c < C; c++) {
        double s = 0.0, ss = 0.0, cnt = (double)B * L;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) s += bn.in[((size_t)b * C + c) * L + t];
        double mu = s / cnt;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                double d = bn.in[((size_t)b * C + c) * L + t] - mu;
                ss += d * d;
            }
        double var = ss / cnt;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * C + c) * L + t;
                double y = (bn.in[i] - mu) / sqrt(var + 1e-5) * bn.gamma[c] + bn.beta[c];
                ok_out &= fabs(bn.out[i] - y) <= 1e-5 * fmax(1.0, fabs(y));
            }
        double erm = 0.9 * rm0[c] + 0.1 * mu, erv = 0.9 * rv0[c] + 0.1 * ss / (cnt - 1);
        ok_run &= fabs(rm[c] - erm) <= 1e-6 * fmax(1.0, fabs(erm)) && fabs(rv[c] - erv) <= 1e-6 * fmax(1.0, erv);
        ok_run &= fabs(bn.mean[c] - mu) <= 1e-6 * fmax(1, fabs(mu)) && fabs(bn.rstd[c] - 1 / sqrt(var + 1e-5)) <= 1e-6 / sqrt(var + 1e-5);
    }
    CHECK(ok_out, "batchnorm train B%d C%d L%d: forward", B, C, L);
    CHECK(ok_run, "batchnorm train B%d C%d L%d: saved or running statistics (unbiased var, momentum 0.1)", B, C, L);

    /* eval: running statistics */
    float *oe = zeros(n);
    batchnorm_forward_eval(oe, bn.in, bn.gamma, bn.beta, rm, rv, B, C, L, 1e-5f);
    int ok_eval = 1;
    for (size_t i = 0; i < n; i++) {
        int c = (int)((i / L) % C);
        double y = (bn.in[i] - rm[c]) / sqrt((double)rv[c] + 1e-5) * bn.gamma[c] + bn.beta[c];
        ok_eval &= fabs(oe[i] - y) <= 1e-5 * fmax(1.0, fabs(y));
    }
    CHECK(ok_eval, "batchnorm eval forward");
    /* in place */
    float *inplace = copy(bn.in, n);
    batchnorm_forward_eval(inplace, inplace, bn.gamma, bn.beta, rm, rv, B, C, L, 1e-5f);
    CHECK(!memcmp(inplace, oe, n * sizeof(float)), "batchnorm eval in place");

    float *din = zeros(n), *dg = zeros(C), *db = zeros(C);
    bn_loss();
    batchnorm_backward(din, dg, db, bn.R, bn.in, bn.mean, bn.rstd, bn.gamma, B, C, L);
    g_loss = bn_loss;
    gradcheck("batchnorm din", bn.in, n, din);
    gradcheck("batchnorm dgamma", bn.gamma, C, dg);
    gradcheck("batchnorm dbeta", bn.beta, C, db);
    float *din2 = copy(din, n);
    bn_loss();
    batchnorm_backward(din2, NULL, NULL, bn.R, bn.in, bn.mean, bn.rstd, bn.gamma, B, C, L);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= fabsf(din2[i] - 2 * din[i]) <= 1e-5f * (1 + fabsf(din[i]));
    CHECK(ok, "batchnorm backward accumulates");
    free(din2), free(din), free(dg), free(db), free(oe), free(inplace), free(rm), free(rv), free(rm0), free(rv0);
    free(bn.in), free(bn.gamma), free(bn.beta), free(bn.out), free(bn.mean), free(bn.rstd), free(bn.R);
}

/* The few-channel and one-value-a-row paths sum in an order that does not depend on the thread
 * count: the same bits on 1 and 3 threads. */
static void test_batchnorm_threads(int B, int C, int L) {
    size_t n = (size_t)B * C * L;
    float *in = randn(n, 2.0f), *gamma = randn(C, 1.0f), *beta = randn(C, 1.0f), *dout = randn(n, 1.0f);
    float *out[2], *mean[2], *rstd[2], *rm[2], *rv[2], *din[2], *dg[2], *db[2];
    const int nt0 = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        out[k] = zeros(n), mean[k] = zeros(C), rstd[k] = zeros(C), rm[k] = zeros(C), rv[k] = zeros(C);
        din[k] = zeros(n), dg[k] = zeros(C), db[k] = zeros(C);
        for (int c = 0; c < C; c++) rv[k][c] = 1.0f;
        omp_set_num_threads(k ? 3 : 1);
        batchnorm_forward_train(out[k], mean[k], rstd[k], rm[k], rv[k], in, gamma, beta, B, C, L, 1e-5f, 0.1f);
        batchnorm_backward(din[k], dg[k], db[k], dout, in, mean[k], rstd[k], gamma, B, C, L);
    }
    omp_set_num_threads(nt0);
    int same = !memcmp(out[0], out[1], n * sizeof(float)) && !memcmp(din[0], din[1], n * sizeof(float));
    same &= !memcmp(mean[0], mean[1], C * sizeof(float)) && !memcmp(rstd[0], rstd[1], C * sizeof(float));
    same &= !memcmp(rm[0], rm[1], C * sizeof(float)) && !memcmp(rv[0], rv[1], C * sizeof(float));
    same &= !memcmp(dg[0], dg[1], C * sizeof(float)) && !memcmp(db[0], db[1], C * sizeof(float));
    CHECK(same, "batchnorm B%d C%d L%d: the same bits on 1 and 3 threads", B, C, L);
    for (int k = 0; k < 2; k++) free(out[k]), free(mean[k]), free(rstd[k]), free(rm[k]), free(rv[k]), free(din[k]), free(dg[k]), free(db[k]);
    free(in), free(gamma), free(beta), free(dout);
}

/* ---- elementwise activations ----------------------------------------------------------------- */
static struct {
    size_t n;
    float *in, *out, *R;
    void (*fwd)(float *, const float *, size_t);
} act;

static double act_loss(void) {
    act.fwd(act.out, act.in, act.n);
    return dot(act.out, act.R, act.n);
}

static void test_activations(void) {
    size_t n = 200;
    act.n = n, act.in = randn(n, 4.0f), act.out = zeros(n), act.R = randn(n, 1.0f);
    float kinks[] = {-3.0f, 0.0f, 3.0f};
    avoid_kinks(act.in, n, kinks, 3, 0.01f);
    float *d = zeros(n);
    g_loss = act_loss;
    int ok;

    act.fwd = relu_forward;
    act_loss();
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= act.out[i] == (act.in[i] > 0 ? act.in[i] : 0.0f);
    CHECK(ok, "relu forward");
    memset(d, 0, n * sizeof(float));
    relu_backward(d, act.R, act.out, n);
    gradcheck("relu", act.in, n, d);

    act.fwd = hardsigmoid_forward;
    act_loss();
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= fabsf(act.out[i] - fminf(fmaxf(act.in[i] + 3, 0), 6) / 6) <= 1e-7f;
    CHECK(ok, "hardsigmoid forward");
    memset(d, 0, n * sizeof(float));
    hardsigmoid_backward(d, act.R, act.in, n);
    gradcheck("hardsigmoid", act.in, n, d);
    float edge[2] = {-3.0f, 3.0f}, ge[2] = {0, 0}, one[2] = {1, 1};
    hardsigmoid_backward(ge, one, edge, 2);
    CHECK(ge[0] == 0 && ge[1] == 0, "hardsigmoid gradient is 0 at -3 and 3 (PyTorch)");

    act.fwd = sigmoid_forward;
    act_loss();
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= fabs(act.out[i] - 1 / (1 + exp(-(double)act.in[i]))) <= 1e-6;
    CHECK(ok, "sigmoid forward");
    memset(d, 0, n * sizeof(float));
    sigmoid_backward(d, act.R, act.out, n);
    gradcheck("sigmoid", act.in, n, d);
    float big[2] = {-200.0f, 200.0f}, sb[2];
    sigmoid_forward(sb, big, 2);
    CHECK(sb[0] == 0.0f && sb[1] == 1.0f, "sigmoid saturates cleanly: %g %g", sb[0], sb[1]);
    free(d), free(act.in), free(act.out), free(act.R);
}

/* ---- pools and reductions --------------------------------------------------------------------
 * One harness: a forward (B, C, L) -> out of n_out values, with its backward. */
static struct {
    int B, C, L;
    size_t nout;
    float *in, *out, *R;
    void (*fwd)(float *, const float *, int, int, int);
} pl;

static double pool_loss(void) {
    pl.fwd(pl.out, pl.in, pl.B, pl.C, pl.L);
    return dot(pl.out, pl.R, pl.nout);
}

typedef void (*pool_fwd)(float *, const float *, int, int, int);
typedef void (*pool_bwd)(float *, const float *, const float *, int, int, int);

/* runs forward, compares with ref (nout values), then gradchecks the backward */
static void check_pool(const char *what, pool_fwd fwd, pool_bwd bwd, int B, int C, int L, size_t nout,
                       void (*naive)(float *, const float *, int, int, int)) {
    size_t n = (size_t)B * C * L;
    pl.B = B, pl.C = C, pl.L = L, pl.nout = nout, pl.fwd = fwd;
    pl.in = distinct(n), pl.out = zeros(nout), pl.R = randn(nout, 1.0f);
    float *ref = zeros(nout), *din = zeros(n);
    naive(ref, pl.in, B, C, L);
    pool_loss();
    CHECK(max_abs_diff(ref, pl.out, nout) <= 1e-6, "%s: forward off by %g", what, max_abs_diff(ref, pl.out, nout));
    bwd(din, pl.R, pl.in, B, C, L);
    g_loss = pool_loss;
    gradcheck(what, pl.in, n, din);
    free(ref), free(din), free(pl.in), free(pl.out), free(pl.R);
}

static void naive_maxpool2(float *o, const float *x, int B, int C, int L) {
    for (int r = 0; r < B * C; r++)
        for (int t = 0; t < L / 2; t++) o[r * (L / 2) + t] = fmaxf(x[r * L + 2 * t], x[r * L + 2 * t + 1]);
}
static void naive_maxpool2s1(float *o, const float *x, int B, int C, int L) {
    for (int r = 0; r < B * C; r++)
        for (int t = 0; t <= L; t++) {
            float m = -INFINITY;
            if (t - 1 >= 0) m = fmaxf(m, x[r * L + t - 1]);
            if (t < L) m = fmaxf(m, x[r * L + t]);
            o[r * (L + 1) + t] = m;
        }
}
static void naive_mean_time(float *o, const float *x, int B, int C, int L) {
    for (int r = 0; r < B * C; r++) {
        double s = 0;
        for (int t = 0; t < L; t++) s += x[r * L + t];
        o[r] = (float)(s / L);
    }
}
static void naive_max_time(float *o, const float *x, int B, int C, int L) {
    for (int r = 0; r < B * C; r++) {
        float m = -INFINITY;
        for (int t = 0; t < L; t++) m = fmaxf(m, x[r * L + t]);
        o[r] = m;
    }
}
static void naive_channel_maxmean(float *o, const float *x, int B, int C, int L) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            float m = -INFINITY;
            double s = 0;
            for (int c = 0; c < C; c++) {
                m = fmaxf(m, x[(b * C + c) * L + t]);
                s += x[(b * C + c) * L + t];
            }
            o[(b * 2) * L + t] = m;
            o[(b * 2 + 1) * L + t] = (float)(s / C);
        }
}
static void mean_time_bwd(float *din, const float *dout, const float *in, int B, int C, int L) {
    (void)in;
    mean_time_backward(din, dout, B, C, L);
}

static void test_pools(void) {
    check_pool("maxpool2 odd L", maxpool2_forward, maxpool2_backward, 2, 3, 11, 2 * 3 * 5, naive_maxpool2);
    check_pool("maxpool2 even L", maxpool2_forward, maxpool2_backward, 3, 2, 8, 3 * 2 * 4, naive_maxpool2);
    check_pool("maxpool2s1", maxpool2s1_forward, maxpool2s1_backward, 2, 3, 9, 2 * 3 * 10, naive_maxpool2s1);
    check_pool("mean_time", mean_time_forward, mean_time_bwd, 2, 4, 13, 8, naive_mean_time);
    check_pool("max_time", max_time_forward, max_time_backward, 3, 4, 10, 12, naive_max_time);
    check_pool("channel_maxmean", channel_maxmean_forward, channel_maxmean_backward, 2, 5, 7, 2 * 2 * 7,
               naive_channel_maxmean);

    /* ties go to the first element of the window, as PyTorch */
    float x[4] = {1, 1, 2, 2}, o[5], g[5] = {1, 10, 100, 1000, 10000}, d[4] = {0};
    maxpool2_forward(o, x, 1, 1, 4);
    maxpool2_backward(d, g, x, 1, 1, 4);
    CHECK(o[0] == 1 && o[1] == 2 && d[0] == 1 && d[1] == 0 && d[2] == 10 && d[3] == 0,
          "maxpool2 ties: d = %g %g %g %g", d[0], d[1], d[2], d[3]);
    memset(d, 0, sizeof d);
    maxpool2s1_forward(o, x, 1, 1, 4);
    maxpool2s1_backward(d, g, x, 1, 1, 4);
    /* windows: [-inf,1] [1,1] [1,2] [2,2] [2,-inf] -> inputs 0, 0, 2, 2, 3 */
    CHECK(o[0] == 1 && o[4] == 2 && d[0] == 11 && d[1] == 0 && d[2] == 1100 && d[3] == 10000,
          "maxpool2s1 ties: d = %g %g %g %g", d[0], d[1], d[2], d[3]);
    /* a single step: both windows hold it */
    float x1 = 5, o1[2], g1[2] = {1, 2}, d1 = 0.5f;
    maxpool2s1_forward(o1, &x1, 1, 1, 1);
    maxpool2s1_backward(&d1, g1, &x1, 1, 1, 1);
    CHECK(o1[0] == 5 && o1[1] == 5 && d1 == 3.5f, "maxpool2s1 of length 1: %g %g, d %g", o1[0], o1[1], d1);
    /* NaN wins its window, as in PyTorch */
    float xn[4] = {NAN, 1, 1, NAN}, on[2], dn[4] = {0}, gn[2] = {1, 2};
    maxpool2_forward(on, xn, 1, 1, 4);
    maxpool2_backward(dn, gn, xn, 1, 1, 4);
    CHECK(isnan(on[0]) && isnan(on[1]) && dn[0] == 1 && dn[1] == 0 && dn[2] == 0 && dn[3] == 2, "maxpool2 NaN");
    float xs[3] = {1, NAN, 2}, os[4];
    maxpool2s1_forward(os, xs, 1, 1, 3);
    CHECK(os[0] == 1 && isnan(os[1]) && isnan(os[2]) && os[3] == 2, "maxpool2s1 NaN");
    float y[6] = {3, 1, 3, 0, 0, 0}, ym, dy[6] = {0}, one = 1;
    max_time_forward(&ym, y, 1, 1, 6);
    max_time_backward(dy, &one, y, 1, 1, 6);
    CHECK(ym == 3 && dy[0] == 1 && dy[2] == 0, "max_time ties go to the first");
    /* channel max: x (1, 3, 1) = {2, 2, 1} -> gradient to channel 0 */
    float z[3] = {2, 2, 1}, zo[2], gz[2] = {1, 0}, dz[3] = {0};
    channel_maxmean_forward(zo, z, 1, 3, 1);
    channel_maxmean_backward(dz, gz, z, 1, 3, 1);
    CHECK(zo[0] == 2 && fabsf(zo[1] - 5.0f / 3) < 1e-6f && dz[0] == 1 && dz[1] == 0, "channel max ties");
}

/* ---- dropout ---------------------------------------------------------------------------------- */
static void test_dropout(void) {
    size_t n = 100000;
    float *in = randn(n, 1.0f), *out = zeros(n), *mask = zeros(n), *d = zeros(n), *g = randn(n, 1.0f);
    mrm_rng r;
    mrm_rng_seed(&r, 7);
    dropout_forward(out, mask, in, n, 0.2f, &r);
    size_t kept = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        ok &= mask[i] == 0.0f || mask[i] == 1.25f;
        ok &= out[i] == in[i] * mask[i];
        kept += mask[i] != 0.0f;
    }
    double rate = (double)kept / n;
    CHECK(ok, "dropout: mask values 0 or 1.25 and out = in * mask");
    /* binomial: sd = sqrt(0.8*0.2/n) = 0.00126; allow 5 sd */
    CHECK(fabs(rate - 0.8) < 0.0064, "dropout keep rate %.4f (expected 0.8)", rate);
    dropout_backward(d, g, mask, n);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= d[i] == g[i] * mask[i];
    dropout_backward(d, g, mask, n);
    for (size_t i = 0; i < n; i++) ok &= d[i] == 2 * (g[i] * mask[i]);
    CHECK(ok, "dropout backward = dout * mask, accumulating");
    /* same seed, same mask; in place */
    float *mask2 = zeros(n), *inplace = copy(in, n);
    mrm_rng_seed(&r, 7);
    dropout_forward(inplace, mask2, inplace, n, 0.2f, &r);
    CHECK(!memcmp(mask, mask2, n * sizeof(float)) && !memcmp(inplace, out, n * sizeof(float)),
          "dropout: same seed, same mask; in place works");
    /* the mask does not depend on the number of threads */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    mrm_rng_seed(&r, 7);
    dropout_forward(out, mask2, in, n, 0.2f, &r);
    omp_set_num_threads(threads);
    CHECK(!memcmp(mask, mask2, n * sizeof(float)), "dropout: same mask with one thread");
    /* consecutive calls draw new masks */
    dropout_forward(out, mask2, in, n, 0.2f, &r);
    CHECK(memcmp(mask, mask2, n * sizeof(float)), "dropout: a second call draws a new mask");
    dropout_forward(out, mask, in, n, 0.0f, &r);
    CHECK(!memcmp(out, in, n * sizeof(float)) && mask[0] == 1.0f && mask[n - 1] == 1.0f, "dropout p=0 copies");
    /* the draws themselves, from the generators as documented: block j of 16384 values (the last
     * one short) from a generator seeded by the j-th draw of rng, row b of the keyed form from one
     * seeded by keys[b] ^ (salt * 0x9e3779b97f4a7c15); a value kept when its uniform draw >= p;
     * 12 blocks and 11 rows (more than and not a multiple of the 8 streams drawn side by side) */
    {
        const size_t nb = 16384 * 11 + 123, rows = 11, row_len = 1001;
        const float ps[3] = {0.2f, 0.5f, 1.0f};
        float *xin = randn(nb, 1.0f), *o = zeros(nb), *mk = zeros(nb);
        uint64_t keys[11];
        for (int b = 0; b < 11; b++) keys[b] = 1000003ULL * (uint64_t)b + 17;
        for (int pi = 0; pi < 3; pi++) {
            const float p = ps[pi], keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
            mrm_rng_seed(&r, 21 + pi);
            dropout_forward(o, mk, xin, nb, p, &r);
            mrm_rng ref;
            mrm_rng_seed(&ref, 21 + pi);
            ok = 1;
            for (size_t b0 = 0; b0 < nb; b0 += 16384) {
                mrm_rng gen;
                mrm_rng_seed(&gen, mrm_rng_next(&ref));
                for (size_t i = b0; i < nb && i < b0 + 16384; i++) {
                    float m = mrm_rng_uniform(&gen) >= p ? keep : 0.0f;
                    ok &= mk[i] == m && o[i] == xin[i] * m;
                }
            }
            CHECK(ok, "dropout p=%g: the documented draws, block by block", p);
            dropout_forward_keyed(o, mk, xin, (int)rows, row_len, p, keys, 5);
            ok = 1;
            for (size_t b = 0; b < rows; b++) {
                mrm_rng gen;
                mrm_rng_seed(&gen, keys[b] ^ (5 * 0x9e3779b97f4a7c15ULL));
                for (size_t i = b * row_len; i < (b + 1) * row_len; i++) {
                    float m = mrm_rng_uniform(&gen) >= p ? keep : 0.0f;
                    ok &= mk[i] == m && o[i] == xin[i] * m;
                }
            }
            CHECK(ok, "dropout keyed p=%g: the documented draws, row by row", p);
        }
        free(xin), free(o), free(mk);
    }
    /* with the dropped values added to another array: the mask and the bits of a separate add,
     * the plain and the keyed draws */
    {
        float *add = randn(n, 1.0f), *sum = zeros(n), *mask3 = zeros(n);
        uint64_t keys[4] = {11, 12, 13, 14};
        for (int keyed = 0; keyed < 2; keyed++) {
            mrm_rng_seed(&r, 9);
            if (keyed)
                dropout_forward_keyed(out, mask2, in, 4, n / 4, 0.2f, keys, 3);
            else
                dropout_forward(out, mask2, in, n, 0.2f, &r);
            mrm_rng_seed(&r, 9);
            if (keyed)
                dropout_add_forward_keyed(sum, mask3, in, add, 4, n / 4, 0.2f, keys, 3);
            else
                dropout_add_forward(sum, mask3, in, add, n, 0.2f, &r);
            ok = !memcmp(mask2, mask3, n * sizeof(float));
            for (size_t i = 0; i < n; i++) ok &= sum[i] == add[i] + out[i];
            CHECK(ok, "dropout + add (keyed %d): the same mask, out = add + dropout(in)", keyed);
        }
        free(add), free(sum), free(mask3);
    }
    free(in), free(out), free(mask), free(d), free(g), free(mask2), free(inplace);
}

/* ---- layernorm over channels ------------------------------------------------------------------ */
static struct {
    int B, C, L;
    float *in, *w, *bias, *out, *mean, *rstd, *R;
} ln;

static double ln_loss(void) {
    layernorm_ch_forward(ln.out, ln.mean, ln.rstd, ln.in, ln.w, ln.bias, ln.B, ln.C, ln.L, 1e-6f);
    return dot(ln.out, ln.R, (size_t)ln.B * ln.C * ln.L);
}

static void test_layernorm(int B, int C, int L) {
    size_t n = (size_t)B * C * L;
    ln.B = B, ln.C = C, ln.L = L;
    ln.in = randn(n, 2.0f), ln.w = randn(C, 1.0f), ln.bias = randn(C, 1.0f), ln.out = zeros(n);
    ln.mean = zeros((size_t)B * L), ln.rstd = zeros((size_t)B * L), ln.R = randn(n, 1.0f);
    ln_loss();
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            double s = 0, ss = 0;
            for (int c = 0; c < C; c++) s += ln.in[(b * C + c) * L + t];
            double mu = s / C;
            for (int c = 0; c < C; c++) ss += pow(ln.in[(b * C + c) * L + t] - mu, 2);
            double rs = 1 / sqrt(ss / C + 1e-6);
            for (int c = 0; c < C; c++) {
                double y = (ln.in[(b * C + c) * L + t] - mu) * rs * ln.w[c] + ln.bias[c];
                ok &= fabs(ln.out[(b * C + c) * L + t] - y) <= 1e-5 * fmax(1, fabs(y));
            }
        }
    CHECK(ok, "layernorm B%d C%d L%d forward", B, C, L);
    float *din = zeros(n), *dw = zeros(C), *db = zeros(C);
    layernorm_ch_backward(din, dw, db, ln.R, ln.in, ln.mean, ln.rstd, ln.w, B, C, L);
    g_loss = ln_loss;
    gradcheck("layernorm din", ln.in, n, din);
    gradcheck("layernorm dw", ln.w, C, dw);
    gradcheck("layernorm dbias", ln.bias, C, db);
    float *din2 = copy(din, n);
    layernorm_ch_backward(din2, NULL, NULL, ln.R, ln.in, ln.mean, ln.rstd, ln.w, B, C, L);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= fabsf(din2[i] - 2 * din[i]) <= 1e-5f * (1 + fabsf(din[i]));
    CHECK(ok, "layernorm backward accumulates");
    free(din2), free(din), free(dw), free(db);
    free(ln.in), free(ln.w), free(ln.bias), free(ln.out), free(ln.mean), free(ln.rstd), free(ln.R);
}

/* LayerNorm's weight gradients over several chunks of time steps (each sums its part in the
 * pass that writes din; the parts are added per channel afterwards): against float64 sums of
 * dout and dout * y, the same bits at 1 and 2 threads, and the same as without din (a pass of
 * their own). The input has a large offset per time step, which the normalisation removes. */
static void test_layernorm_weight_sums(int B, int C, int L) {
    size_t n = (size_t)B * C * L;
    float *in = randn(n, 3.0f), *w = randn(C, 1.0f), *bias = randn(C, 1.0f), *out = zeros(n), *R = randn(n, 1.0f);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < L; t++) in[((size_t)b * C + c) * L + t] += 50.0f * (float)((t % 7) - 3);
    float *mean = zeros((size_t)B * L), *rstd = zeros((size_t)B * L);
    layernorm_ch_forward(out, mean, rstd, in, w, bias, B, C, L, 1e-6f);
    float *dw[3], *db[3], *din[3];
    int threads[3] = {1, 2, 2};
    const int nt0 = omp_get_max_threads();
    for (int k = 0; k < 3; k++) {
        dw[k] = zeros(C), db[k] = zeros(C), din[k] = zeros(n);
        omp_set_num_threads(threads[k]);
        layernorm_ch_backward(k < 2 ? din[k] : NULL, dw[k], db[k], R, in, mean, rstd, w, B, C, L);
    }
    omp_set_num_threads(nt0);
    int ok = 1, same = 1, alone = 1;
    for (int c = 0; c < C; c++) {
        double sw = 0.0, sb = 0.0, aw = 0.0, ab = 0.0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * C + c) * L + t;
                double y = ((double)in[i] - mean[(size_t)b * L + t]) * rstd[(size_t)b * L + t];
                sw += R[i] * y, sb += R[i];
                aw += fabs(R[i] * y), ab += fabs(R[i]);
            }
        ok &= fabs(dw[0][c] - sw) <= 1e-5 * aw && fabs(db[0][c] - sb) <= 1e-6 * ab;
        same &= !memcmp(&dw[0][c], &dw[1][c], sizeof(float)) && !memcmp(&db[0][c], &db[1][c], sizeof(float));
        alone &= fabs(dw[2][c] - dw[0][c]) <= 1e-5 * aw && fabs(db[2][c] - db[0][c]) <= 1e-6 * ab;
    }
    CHECK(ok, "layernorm B%d C%d L%d weight gradients against float64", B, C, L);
    CHECK(same && !memcmp(din[0], din[1], n * sizeof(float)), "layernorm B%d C%d L%d same bits at 1 and 2 threads", B,
          C, L);
    CHECK(alone, "layernorm B%d C%d L%d weight gradients without din", B, C, L);
    for (int k = 0; k < 3; k++) free(dw[k]), free(db[k]), free(din[k]);
    free(in), free(w), free(bias), free(out), free(R), free(mean), free(rstd);
}

/* ---- linear ----------------------------------------------------------------------------------- */
static struct {
    int B, Cin, Cout;
    float *in, *w, *bias, *out, *R;
} li;

static double lin_loss(void) {
    linear_forward(li.out, li.in, li.w, li.bias, li.B, li.Cin, li.Cout);
    return dot(li.out, li.R, (size_t)li.B * li.Cout);
}

static void test_linear(int B, int Cin, int Cout) {
    li.B = B, li.Cin = Cin, li.Cout = Cout;
    li.in = randn((size_t)B * Cin, 1), li.w = randn((size_t)Cout * Cin, 1), li.bias = randn(Cout, 1);
    li.out = zeros((size_t)B * Cout), li.R = randn((size_t)B * Cout, 1);
    lin_loss();
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < Cout; o++) {
            double s = li.bias[o];
            for (int i = 0; i < Cin; i++) s += (double)li.in[b * Cin + i] * li.w[o * Cin + i];
            ok &= fabs(li.out[b * Cout + o] - s) <= 1e-5 * fmax(1, fabs(s));
        }
    CHECK(ok, "linear forward");
    float *din = zeros((size_t)B * Cin), *dw = zeros((size_t)Cout * Cin), *db = zeros(Cout);
    linear_backward(din, dw, db, li.R, li.in, li.w, B, Cin, Cout);
    g_loss = lin_loss;
    gradcheck("linear din", li.in, (size_t)B * Cin, din);
    gradcheck("linear dw", li.w, (size_t)Cout * Cin, dw);
    gradcheck("linear dbias", li.bias, Cout, db);
    float *dw2 = copy(dw, (size_t)Cout * Cin);
    linear_backward(NULL, dw2, NULL, li.R, li.in, li.w, B, Cin, Cout);
    ok = 1;
    for (int i = 0; i < Cout * Cin; i++) ok &= fabsf(dw2[i] - 2 * dw[i]) <= 1e-5f * (1 + fabsf(dw[i]));
    CHECK(ok, "linear backward accumulates");
    free(dw2), free(din), free(dw), free(db), free(li.in), free(li.w), free(li.bias), free(li.out), free(li.R);
}

/* ---- broadcast products, add, concat --------------------------------------------------------- */
static struct {
    int B, C, L, time;
    float *x, *s, *out, *R;
} sc;

static double scale_loss(void) {
    (sc.time ? scale_time_forward : scale_channels_forward)(sc.out, sc.x, sc.s, sc.B, sc.C, sc.L);
    return dot(sc.out, sc.R, (size_t)sc.B * sc.C * sc.L);
}

static void test_scale(int time) {
    int B = 2, C = 3, L = 5;
    size_t n = (size_t)B * C * L, ns = time ? (size_t)B * L : (size_t)B * C;
    sc.B = B, sc.C = C, sc.L = L, sc.time = time;
    sc.x = randn(n, 1), sc.s = randn(ns, 1), sc.out = zeros(n), sc.R = randn(n, 1);
    scale_loss();
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * C + c) * L + t;
                ok &= sc.out[i] == sc.x[i] * sc.s[time ? b * L + t : b * C + c];
            }
    CHECK(ok, "scale_%s forward", time ? "time" : "channels");
    float *dx = zeros(n), *ds = zeros(ns);
    (time ? scale_time_backward : scale_channels_backward)(dx, ds, sc.R, sc.x, sc.s, B, C, L);
    g_loss = scale_loss;
    gradcheck(time ? "scale_time dx" : "scale_channels dx", sc.x, n, dx);
    gradcheck(time ? "scale_time ds" : "scale_channels ds", sc.s, ns, ds);
    free(dx), free(ds), free(sc.x), free(sc.s), free(sc.out), free(sc.R);
}

static void test_add_concat(void) {
    int B = 2, Ca = 3, Cb = 2, L = 4;
    float *a = randn(B * Ca * L, 1), *b = randn(B * Cb * L, 1), *o = zeros(B * (Ca + Cb) * L);
    concat_ch_forward(o, a, b, B, Ca, Cb, L);
    int ok = 1;
    for (int i = 0; i < B; i++)
        for (int c = 0; c < Ca + Cb; c++)
            for (int t = 0; t < L; t++)
                ok &= o[(i * (Ca + Cb) + c) * L + t] == (c < Ca ? a[(i * Ca + c) * L + t] : b[(i * Cb + c - Ca) * L + t]);
    CHECK(ok, "concat_ch forward");
    float *da = zeros(B * Ca * L), *db = zeros(B * Cb * L);
    concat_ch_backward(da, db, o, B, Ca, Cb, L);
    concat_ch_backward(da, NULL, o, B, Ca, Cb, L);
    ok = 1;
    for (int i = 0; i < B * Ca * L; i++) ok &= da[i] == 2 * a[i];
    for (int i = 0; i < B * Cb * L; i++) ok &= db[i] == b[i];
    CHECK(ok, "concat_ch backward splits and accumulates");
    float s[3], x[3] = {1, 2, 3}, y[3] = {10, 20, 30};
    add_forward(s, x, y, 3);
    accumulate(s, x, 3);
    CHECK(s[0] == 12 && s[1] == 24 && s[2] == 36, "add and accumulate");
    add_forward(x, x, y, 3);
    CHECK(x[2] == 33, "add in place");
    free(a), free(b), free(o), free(da), free(db);
}

/* ---- losses ----------------------------------------------------------------------------------- */
static struct {
    int B, N;
    float T;
    float *s, *t, *y;
} ls;

static const float *ls_pw; /* pos_weight of bce_loss (NULL: none) */
static double bce_loss(void) { return bce_logits_forward_backward(NULL, ls.s, ls.y, ls.B, ls.N, 1.0f, ls_pw); }
static double kl_loss(void) { return kl_softmax_forward_backward(NULL, NULL, ls.s, ls.t, ls.B, ls.N, ls.T, 1.0f); }

static void test_bce(void) {
    int B = 3, N = 5;
    ls.B = B, ls.N = N;
    ls.s = randn(B * N, 3), ls.y = zeros(B * N);
    for (int i = 0; i < B * N; i++) ls.y[i] = (float)(mrm_rng_below(&rng, 2));
    double ref = 0;
    for (int i = 0; i < B * N; i++) {
        double p = 1 / (1 + exp(-(double)ls.s[i]));
        ref += -(ls.y[i] * log(p) + (1 - ls.y[i]) * log(1 - p));
    }
    ref /= B * N;
    float *d = zeros(B * N);
    double l = bce_logits_forward_backward(d, ls.s, ls.y, B, N, 1.0f, NULL);
    CHECK_CLOSE(l, ref, 1e-9, "bce value");
    g_loss = bce_loss;
    gradcheck("bce dlogits", ls.s, B * N, d);
    float *d2 = copy(d, B * N);
    bce_logits_forward_backward(d2, ls.s, ls.y, B, N, 0.5f, NULL);
    int ok = 1;
    for (int i = 0; i < B * N; i++) ok &= fabsf(d2[i] - 1.5f * d[i]) <= 1e-6f;
    CHECK(ok, "bce gradient accumulates scale * gradient");
    float big[2] = {100.0f, -100.0f}, yb[2] = {0.0f, 1.0f}, db[2] = {0, 0};
    double lb = bce_logits_forward_backward(db, big, yb, 1, 2, 1.0f, NULL);
    CHECK(fabs(lb - 100.0) < 1e-9 && fabsf(db[0] - 0.5f) < 1e-6f && fabsf(db[1] + 0.5f) < 1e-6f,
          "bce stable for large logits: %g (%g %g)", lb, db[0], db[1]);
    /* pos_weight: -(w y log p + (1 - y) log(1 - p)) by the textbook formula; all ones = none */
    const float pw[5] = {1.0f, 2.5f, 0.5f, 7.0f, 1.0f}, ones[5] = {1, 1, 1, 1, 1};
    double refw = 0;
    for (int i = 0; i < B * N; i++) {
        double p = 1 / (1 + exp(-(double)ls.s[i]));
        refw += -(pw[i % N] * ls.y[i] * log(p) + (1 - ls.y[i]) * log(1 - p));
    }
    refw /= B * N;
    float *dw = zeros(B * N), *d1 = zeros(B * N);
    CHECK_CLOSE(bce_logits_forward_backward(dw, ls.s, ls.y, B, N, 1.0f, pw), refw, 1e-9, "weighted bce value");
    ls_pw = pw;
    gradcheck("weighted bce dlogits", ls.s, B * N, dw);
    ls_pw = NULL;
    CHECK_CLOSE(bce_logits_forward_backward(d1, ls.s, ls.y, B, N, 1.0f, ones), l, 1e-12, "pos_weight 1 = plain bce");
    ok = 1;
    for (int i = 0; i < B * N; i++) ok &= fabsf(d1[i] - d[i]) <= 1e-7f;
    CHECK(ok, "pos_weight 1: the plain gradient");
    free(dw), free(d1);
    free(d), free(d2), free(ls.s), free(ls.y);
}

static void test_kl(int B, int N, float spread) {
    ls.B = B, ls.N = N, ls.T = 4.0f;
    ls.s = randn((size_t)B * N, spread), ls.t = randn((size_t)B * N, spread);
    double ref = 0;
    for (int b = 0; b < B; b++) {
        /* log-softmaxes by the textbook formula, shifted by the maxima */
        double zs = 0, zt = 0, ms = -INFINITY, mt = -INFINITY;
        for (int j = 0; j < N; j++) {
            ms = fmax(ms, ls.s[b * N + j] / 4.0);
            mt = fmax(mt, ls.t[b * N + j] / 4.0);
        }
        for (int j = 0; j < N; j++) {
            zs += exp(ls.s[b * N + j] / 4.0 - ms);
            zt += exp(ls.t[b * N + j] / 4.0 - mt);
        }
        for (int j = 0; j < N; j++) {
            double lp = ls.t[b * N + j] / 4.0 - mt - log(zt), lq = ls.s[b * N + j] / 4.0 - ms - log(zs);
            ref += exp(lp) * (lp - lq);
        }
    }
    ref *= 16.0 / B;
    float *ds = zeros((size_t)B * N), *dt = zeros((size_t)B * N);
    double l = kl_softmax_forward_backward(ds, dt, ls.s, ls.t, B, N, 4.0f, 1.0f);
    CHECK_CLOSE(l, ref, 1e-9, "kl value");
    g_loss = kl_loss;
    gradcheck("kl ds", ls.s, (size_t)B * N, ds);
    gradcheck("kl dt", ls.t, (size_t)B * N, dt);
    float *ds2 = copy(ds, (size_t)B * N);
    kl_softmax_forward_backward(ds2, NULL, ls.s, ls.t, B, N, 4.0f, 2.0f);
    int ok = 1;
    for (int i = 0; i < B * N; i++) ok &= fabsf(ds2[i] - 3 * ds[i]) <= 1e-6f * (1 + fabsf(ds[i]));
    CHECK(ok, "kl gradient accumulates scale * gradient");
    CHECK(fabs(kl_softmax_forward_backward(NULL, NULL, ls.s, ls.s, B, N, 4.0f, 1.0f)) < 1e-12, "kl(x|x) = 0");
    /* the symmetric pair equals the two one-way calls */
    float *da = zeros((size_t)B * N), *db = zeros((size_t)B * N), *ea = zeros((size_t)B * N), *eb = zeros((size_t)B * N);
    double two = kl_softmax_forward_backward(ea, eb, ls.s, ls.t, B, N, 4.0f, 0.5f) +
                 kl_softmax_forward_backward(eb, ea, ls.t, ls.s, B, N, 4.0f, 0.5f);
    double sym = kl_sym_softmax_forward_backward(da, db, ls.s, ls.t, B, N, 4.0f, 0.5f);
    CHECK_CLOSE(sym, two, 1e-9, "kl_sym value");
    double gs = fmax(max_abs(ea, (size_t)B * N), max_abs(eb, (size_t)B * N));
    CHECK(max_abs_diff(da, ea, (size_t)B * N) <= 1e-5 * gs && max_abs_diff(db, eb, (size_t)B * N) <= 1e-5 * gs,
          "kl_sym gradients: %g %g", max_abs_diff(da, ea, (size_t)B * N), max_abs_diff(db, eb, (size_t)B * N));
    free(da), free(db), free(ea), free(eb);
    free(ds), free(dt), free(ds2), free(ls.s), free(ls.t);
}

/* ---- gemm ------------------------------------------------------------------------------------- */
static void test_gemm(void) {
    int M = 7, N = 9, K = 5;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float *A = randn(M * K, 1), *Bm = randn(K * N, 1), *C = randn(M * N, 1), *C0 = copy(C, M * N);
            int lda = ta ? M : K, ldb = tb ? K : N;
            nn_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 0.5f, A, lda, Bm, ldb, 2.0f, C, N);
            double worst = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++)
                        s += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? Bm[j * K + k] : Bm[k * N + j]);
                    worst = fmax(worst, fabs(C[i * N + j] - (0.5 * s + 2.0 * C0[i * N + j])));
                }
            CHECK(worst < 1e-5, "sgemm %c%c off by %g", ta ? 'T' : 'N', tb ? 'T' : 'N', worst);
            free(A), free(Bm), free(C), free(C0);
        }
}

int main(void) {
    mrm_rng_seed(&rng, 12345);
    test_gemm();
    test_conv(2, 4, 11, 6, 3, 1, 1, 1);
    test_conv(3, 4, 12, 6, 5, 2, 2, 1);   /* stride 2, even length */
    test_conv(3, 4, 13, 4, 3, 2, 1, 1);   /* stride 2, odd length */
    test_conv(2, 8, 9, 8, 3, 1, 1, 4);    /* groups */
    test_conv(2, 8, 10, 4, 7, 1, 3, 2);   /* groups, K 7 */
    test_conv(3, 4, 7, 8, 1, 1, 0, 1);    /* 1x1 */
    test_conv(2, 4, 9, 3, 1, 2, 0, 1);    /* 1x1 stride 2 */
    test_conv(5, 3, 20, 4, 11, 1, 5, 1);  /* batch larger than the threads */
    test_conv(2, 3, 40, 4, 33, 2, 16, 1); /* merged multi-scale kernel, stride 2 */
    test_conv(1, 2, 5, 3, 7, 1, 3, 1);    /* kernel longer than the input */
    test_conv(4, 6, 1, 3, 1, 1, 0, 1);    /* length 1 (1x1 on pooled vectors) */
    test_conv(3, 16, 37, 40, 33, 1, 16, 1); /* long reduction: the direct kernels in ops.h */
    test_conv(2, 16, 38, 20, 33, 2, 16, 1); /* ... stride 2, 2 channel tiles with a tail */
    test_conv(2, 32, 30, 34, 17, 3, 8, 2);  /* ... stride 3, groups */
    test_conv(2, 16, 41, 40, 33, 2, 16, 1); /* ... stride 2, a last channel tile of 8 */
    test_conv(1, 2, 9, 1, 7, 1, 3, 1);      /* one output channel (spatial attention) */
    test_conv(2, 16, 64, 32, 33, 1, 16, 1);  /* over 1M multiply-adds: batch split among threads */
    test_conv(1, 16, 150, 32, 33, 2, 16, 1); /* ... one sample: tiles split among threads */
    test_conv(2, 64, 50, 64, 3, 1, 1, 1);    /* ... short reduction (GEMM in ops.h) */
    test_conv_small_scratch();
    test_batchnorm(2, 4, 10);
    test_batchnorm(6, 3, 1); /* (B, C, 1) as on pooled vectors */
    test_batchnorm(96, 40, 1); /* ... the channel attention's shape: its channels side by side */
    test_batchnorm(24, 1, 400); /* one channel (the spatial attention): the rows shared out */
    test_batchnorm(12, 3, 300); /* ... a few channels */
    test_batchnorm_threads(24, 1, 400);
    test_batchnorm_threads(12, 3, 300);
    test_batchnorm_threads(96, 40, 1);
    test_activations();
    test_pools();
    test_dropout();
    test_layernorm(2, 6, 7);
    test_layernorm(3, 8, 1);
    test_layernorm_weight_sums(3, 40, 700); /* 3 chunks of time steps, over the parallel threshold */
    test_layernorm_weight_sums(96, 4, 1);   /* the heads' shape */
    test_linear(3, 6, 4);
    test_scale(0);
    test_scale(1);
    test_add_concat();
    test_bce();
    test_kl(2, 7, 5);
    test_kl(3, 300, 5);
    test_kl(2, 1003, 800); /* softmax values down to e^-700 and below: underflow to 0 */
    TEST_END();
}
