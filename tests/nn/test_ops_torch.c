/* The ops against PyTorch 1.13: inputs, outputs and gradients computed by
 * tools/make_op_references.py into tests/fixtures/nn/op_references.bin (format described
 * there). Every value must agree within 1e-5 of the largest magnitude of its tensor. */
#include <stdint.h>

#include "nn/conv1d_impl.h"
#include "nn/ops.h"
#include "test_util.h"

typedef struct {
    char name[64];
    int ndim, dims[4];
    size_t n;
    float *data;
} ref_tensor;

static ref_tensor refs[512];
static int nrefs;

static int read_u32(FILE *f, uint32_t *v) {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

/* Loads the reference file; returns 0 with a message on any inconsistency. */
static int load_refs(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 0;
    }
    char magic[8];
    uint32_t count;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "MRMREF1\n", 8) || !read_u32(f, &count) ||
        count > sizeof refs / sizeof refs[0]) {
        fprintf(stderr, "%s: bad header\n", path);
        fclose(f);
        return 0;
    }
    for (uint32_t i = 0; i < count; i++) {
        ref_tensor *r = &refs[nrefs];
        uint32_t len, ndim, d;
        if (!read_u32(f, &len) || len == 0 || len >= sizeof r->name || fread(r->name, 1, len, f) != len ||
            !read_u32(f, &ndim) || ndim > 4) {
            fprintf(stderr, "%s: record %u: bad name or rank\n", path, i);
            fclose(f);
            return 0;
        }
        r->name[len] = 0;
        r->ndim = (int)ndim;
        r->n = 1;
        for (uint32_t k = 0; k < ndim; k++) {
            if (!read_u32(f, &d) || d > 1000000) {
                fprintf(stderr, "%s: %s: bad dimension\n", path, r->name);
                fclose(f);
                return 0;
            }
            r->dims[k] = (int)d;
            r->n *= d;
        }
        r->data = malloc((r->n ? r->n : 1) * sizeof(float));
        if (fread(r->data, sizeof(float), r->n, f) != r->n) {
            fprintf(stderr, "%s: %s: truncated\n", path, r->name);
            fclose(f);
            return 0;
        }
        nrefs++;
    }
    fclose(f);
    return 1;
}

/* The tensor "<c>.<t>"; aborts the test if absent (the fixture and this test go together). */
static ref_tensor *get(const char *c, const char *t) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", c, t);
    for (int i = 0; i < nrefs; i++)
        if (!strcmp(refs[i].name, name)) return &refs[i];
    fprintf(stderr, "reference tensor %s missing\n", name);
    exit(1);
}
static float *D(const char *c, const char *t) { return get(c, t)->data; }
static int cfg(const char *c, int i) { return (int)D(c, "cfg")[i]; }

/* every |got - ref| <= tol * max(max |ref|, 1e-3) */
static void compare(const char *c, const char *t, const float *got, double tol) {
    ref_tensor *r = get(c, t);
    double scale = 1e-3, worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < r->n; i++) scale = fmax(scale, fabs(r->data[i]));
    for (size_t i = 0; i < r->n; i++) {
        double e = fabs((double)got[i] - r->data[i]);
        if (e > worst) worst = e, wi = i;
    }
    CHECK(worst <= tol * scale, "%s.%s: [%zu] %.8g vs torch %.8g (worst error %.3g of scale %.3g)", c, t, wi,
          r->n ? got[wi] : 0.0, r->n ? r->data[wi] : 0.0, worst, scale);
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* impl 0: the ops.h entry points with FFT plans (as the model calls them: FFT, Winograd, direct,
 * GEMM, whichever the shape takes), 1: im2col + GEMM, 2: the direct kernels */
static nn_fft *fft_plans;

static void test_conv(const char *c, int impl) {
    int B = cfg(c, 0), Cin = cfg(c, 1), Lin = cfg(c, 2), Cout = cfg(c, 3), K = cfg(c, 4), s = cfg(c, 5),
        p = cfg(c, 6), g = cfg(c, 7);
    int Lout = conv1d_out_len(Lin, K, s, p);
    CHECK(get(c, "out")->n == (size_t)B * Cout * Lout, "%s: output length %d", c, Lout);
    nn_ctx ctx = {NULL, 0, impl == 0 ? fft_plans : NULL};
    ctx.scratch_floats = impl == 1   ? conv1d_gemm_scratch_floats(B, Cin, Lin, Cout, K, s, p, g)
                         : impl == 2 ? conv1d_direct_scratch_floats(B, Cin, Lin, Cout, K, s, p, g)
                                     : conv1d_scratch_floats(B, Cin, Lin, Cout, K, s, p, g);
    ctx.scratch = malloc(ctx.scratch_floats * sizeof(float));
    float *out = zeros((size_t)B * Cout * Lout), *din = zeros((size_t)B * Cin * Lin),
          *dw = zeros(get(c, "w")->n);
    const float *in = D(c, "in"), *w = D(c, "w"), *dout = D(c, "dout");
    if (impl == 1) {
        conv1d_forward_gemm(&ctx, out, in, w, NULL, 0, B, Cin, Lin, Cout, K, s, p, g);
        conv1d_backward_gemm(&ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, s, p, g);
    } else if (impl == 2) {
        conv1d_forward_direct(&ctx, out, in, w, NULL, 0, B, Cin, Lin, Cout, K, s, p, g);
        conv1d_backward_direct(&ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, s, p, g);
    } else {
        conv1d_forward(&ctx, out, in, w, B, Cin, Lin, Cout, K, s, p, g);
        conv1d_backward(&ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, s, p, g);
    }
    compare(c, "out", out, 1e-5);
    compare(c, "din", din, 1e-5);
    compare(c, "dw", dw, 1e-5);
    free(out), free(din), free(dw), free(ctx.scratch);
}

static void test_batchnorm(const char *c) {
    int B = cfg(c, 0), C = cfg(c, 1), L = cfg(c, 2);
    size_t n = (size_t)B * C * L;
    float *out = zeros(n), *mean = zeros(C), *rstd = zeros(C), *rm = zeros(C), *rv = zeros(C);
    memcpy(rm, D(c, "running_mean0"), C * sizeof(float));
    memcpy(rv, D(c, "running_var0"), C * sizeof(float));
    batchnorm_forward_train(out, mean, rstd, rm, rv, D(c, "in"), D(c, "gamma"), D(c, "beta"), B, C, L,
                            1e-5f, 0.1f);
    compare(c, "out", out, 1e-5);
    compare(c, "running_mean1", rm, 1e-6);
    compare(c, "running_var1", rv, 1e-6);
    float *din = zeros(n), *dg = zeros(C), *db = zeros(C);
    batchnorm_backward(din, dg, db, D(c, "dout"), D(c, "in"), mean, rstd, D(c, "gamma"), B, C, L);
    compare(c, "din", din, 1e-5);
    compare(c, "dgamma", dg, 1e-5);
    compare(c, "dbeta", db, 1e-5);
    batchnorm_forward_eval(out, D(c, "in"), D(c, "gamma"), D(c, "beta"), rm, rv, B, C, L, 1e-5f);
    compare(c, "out_eval", out, 1e-5);
    free(out), free(mean), free(rstd), free(rm), free(rv), free(din), free(dg), free(db);
}

typedef void (*shape_fwd)(float *, const float *, int, int, int);
typedef void (*shape_bwd)(float *, const float *, const float *, int, int, int);

static void test_shaped(const char *c, shape_fwd fwd, shape_bwd bwd) {
    ref_tensor *in = get(c, "in");
    int B = in->dims[0], C = in->dims[1], L = in->dims[2];
    float *out = zeros(get(c, "out")->n), *din = zeros(in->n);
    fwd(out, in->data, B, C, L);
    bwd(din, D(c, "dout"), in->data, B, C, L);
    compare(c, "out", out, 1e-6);
    compare(c, "din", din, 1e-6);
    free(out), free(din);
}

static void mean_time_bwd(float *din, const float *dout, const float *in, int B, int C, int L) {
    (void)in;
    mean_time_backward(din, dout, B, C, L);
}

static void test_unary(const char *c, void (*fwd)(float *, const float *, size_t),
                       void (*bwd)(float *, const float *, const float *, size_t), int bwd_uses_out) {
    ref_tensor *in = get(c, "in");
    float *out = zeros(in->n), *din = zeros(in->n);
    fwd(out, in->data, in->n);
    bwd(din, D(c, "dout"), bwd_uses_out ? out : in->data, in->n);
    compare(c, "out", out, 1e-6);
    compare(c, "din", din, 1e-6);
    free(out), free(din);
}

static void test_layernorm(const char *c) {
    int B = cfg(c, 0), C = cfg(c, 1), L = cfg(c, 2);
    size_t n = (size_t)B * C * L;
    float *out = zeros(n), *mean = zeros((size_t)B * L), *rstd = zeros((size_t)B * L);
    float *din = zeros(n), *dw = zeros(C), *db = zeros(C);
    layernorm_ch_forward(out, mean, rstd, D(c, "in"), D(c, "w"), D(c, "bias"), B, C, L, 1e-6f);
    layernorm_ch_backward(din, dw, db, D(c, "dout"), D(c, "in"), mean, rstd, D(c, "w"), B, C, L);
    compare(c, "out", out, 1e-5);
    compare(c, "din", din, 1e-5);
    compare(c, "dw", dw, 1e-5);
    compare(c, "dbias", db, 1e-5);
    free(out), free(mean), free(rstd), free(din), free(dw), free(db);
}

static void test_linear(void) {
    const char *c = "linear";
    int B = cfg(c, 0), Cin = cfg(c, 1), Cout = cfg(c, 2);
    float *out = zeros((size_t)B * Cout), *din = zeros((size_t)B * Cin), *dw = zeros((size_t)Cout * Cin),
          *db = zeros(Cout);
    linear_forward(out, D(c, "in"), D(c, "w"), D(c, "bias"), B, Cin, Cout);
    linear_backward(din, dw, db, D(c, "dout"), D(c, "in"), D(c, "w"), B, Cin, Cout);
    compare(c, "out", out, 1e-5);
    compare(c, "din", din, 1e-5);
    compare(c, "dw", dw, 1e-5);
    compare(c, "dbias", db, 1e-5);
    free(out), free(din), free(dw), free(db);
}

static void test_losses(void) {
    int B = cfg("bce", 0), N = cfg("bce", 1);
    float *d = zeros((size_t)B * N);
    double l = bce_logits_forward_backward(d, D("bce", "logits"), D("bce", "y"), B, N, 1.0f, NULL);
    CHECK_CLOSE(l, D("bce", "loss")[0], 1e-6, "bce loss");
    compare("bce", "dlogits", d, 1e-5);
    free(d);
    const char *kls[] = {"kl", "kl_feat"};
    for (int i = 0; i < 2; i++) {
        const char *c = kls[i];
        B = cfg(c, 0), N = cfg(c, 1);
        float *ds = zeros((size_t)B * N), *dt = zeros((size_t)B * N);
        l = kl_softmax_forward_backward(ds, dt, D(c, "s"), D(c, "t"), B, N, 4.0f, 1.0f);
        CHECK_CLOSE(l, D(c, "loss")[0], 1e-5, c);
        compare(c, "ds", ds, 1e-5);
        compare(c, "dt", dt, 1e-5);
        free(ds), free(dt);
    }
}

int main(void) {
    const char *src = getenv("MRM_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/nn/op_references.bin", src ? src : ".");
    CHECK(load_refs(path), "loading %s", path);
    if (!nrefs) TEST_END();

    fft_plans = nn_fft_create();
    CHECK(fft_plans != NULL, "nn_fft_create");
    const char *convs[] = {"conv_s1",  "conv_s2",   "conv_g",       "conv_k33",
                           "conv_1x1", "conv_stem", "conv_long_s1", "conv_long_s2"};
    for (int i = 0; i < 8; i++) {
        test_conv(convs[i], 0);
        test_conv(convs[i], 1);
#if defined(__AVX512F__)
        test_conv(convs[i], 2);
#endif
    }
    nn_fft_free(fft_plans);
    test_batchnorm("bn");
    test_batchnorm("bn_l1");
    test_shaped("maxpool2", maxpool2_forward, maxpool2_backward);
    test_shaped("maxpool2s1", maxpool2s1_forward, maxpool2s1_backward);
    test_shaped("max_time", max_time_forward, max_time_backward);
    test_shaped("mean_time", mean_time_forward, mean_time_bwd);
    test_shaped("channel_maxmean", channel_maxmean_forward, channel_maxmean_backward);
    test_unary("hardsigmoid", hardsigmoid_forward, hardsigmoid_backward, 0);
    test_unary("sigmoid", sigmoid_forward, sigmoid_backward, 1);
    test_layernorm("ln");
    test_layernorm("ln_flat");
    test_linear();
    test_losses();
    for (int i = 0; i < nrefs; i++) free(refs[i].data);
    TEST_END();
}
