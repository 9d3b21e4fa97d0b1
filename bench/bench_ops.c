/* Speed of the convolutions that dominate MRM-Net: GFLOP/s of the forward, the data gradient
 * (din) and the weight gradient (dw) at 1 and 2 threads, the best of a few repetitions.
 *   bench_ops [filter]   runs the shapes whose name contains filter */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/rng.h"
#include "nn/conv1d_impl.h"
#include "nn/ops.h"

typedef struct {
    const char *name;
    int B, Cin, Lin, Cout, K, stride, pad, groups;
    int train; /* also time the backward */
} shape;

static const shape shapes[] = {
    {"ms1  train  B96 64->64  K33 s1 L1004", 96, 64, 1004, 64, 33, 1, 16, 1, 1},
    {"ms2  train  B96 64->128 K33 s2 L1004", 96, 64, 1004, 128, 33, 2, 16, 1, 1},
    {"k3   train  B96 64->64  K3  s1 L502 ", 96, 64, 502, 64, 3, 1, 1, 1, 1},
    {"k3   train  B96 128->128 K3 s1 L251 ", 96, 128, 251, 128, 3, 1, 1, 1, 1},
    {"gk7  train  B96 128 g8  K7  s1 L251 ", 96, 128, 251, 128, 7, 1, 3, 8, 1},
    {"gk7  train  B96 64 g4   K7  s1 L502 ", 96, 64, 502, 64, 7, 1, 3, 4, 1},
    {"gk3  train  B96 64 g4   K3  s1 L502 ", 96, 64, 502, 64, 3, 1, 1, 4, 1},
    {"gk3  train  B96 128 g8  K3  s1 L251 ", 96, 128, 251, 128, 3, 1, 1, 8, 1},
    {"stem train  B96 12->16  K11 s1 L1000", 96, 12, 1000, 16, 11, 1, 5, 1, 1},
    {"stem train  B96 16->32  K7  s1 L1001", 96, 16, 1001, 32, 7, 1, 3, 1, 1},
    {"stem train  B96 32->64  K5  s1 L1002", 96, 32, 1002, 64, 5, 1, 2, 1, 1},
    {"stem train  B96 64->64  K3  s1 L1003", 96, 64, 1003, 64, 3, 1, 1, 1, 1},
    {"sc2  train  B96 64->128 K3  s2 L1004", 96, 64, 1004, 128, 3, 2, 1, 1, 1},
    {"att  train  B96 2->1    K7  s1 L502 ", 96, 2, 502, 1, 7, 1, 3, 1, 1},
    {"att  train  B96 128->16 K1  s1 L1   ", 96, 128, 1, 16, 1, 1, 0, 1, 1},
    {"att  train  B96 16->128 K1  s1 L1   ", 96, 16, 1, 128, 1, 1, 0, 1, 1},
    {"ms1  infer  B1  64->64  K33 s1 L1004", 1, 64, 1004, 64, 33, 1, 16, 1, 0},
    {"ms2  infer  B1  64->128 K33 s2 L1004", 1, 64, 1004, 128, 33, 2, 16, 1, 0},
    {"ms1  infer  B32 64->64  K33 s1 L1004", 32, 64, 1004, 64, 33, 1, 16, 1, 0},
    {"ms2  infer  B32 64->128 K33 s2 L1004", 32, 64, 1004, 128, 33, 2, 16, 1, 0},
    {"k3   infer  B1  64->64  K3  s1 L502 ", 1, 64, 502, 64, 3, 1, 1, 1, 0},
    {"k3   infer  B32 128->128 K3 s1 L251 ", 32, 128, 251, 128, 3, 1, 1, 1, 0},
};

/* Wall time, or with BENCH_CPU=1 the process CPU time divided by the threads: on a machine
 * shared with other work this is what the op would take with the cores to itself. */
static int cpu_clock;
static int use_gemm;   /* BENCH_IMPL=gemm: time the im2col + GEMM path alone */
static int use_direct; /* BENCH_IMPL=direct: time the direct kernels alone */
/* otherwise the model's choice, FFT included (BENCH_FFT_N=64/128/256 forces its size) */
static double now(void) {
    struct timespec ts;
    clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (ts.tv_sec + 1e-9 * ts.tv_nsec) / (cpu_clock ? omp_get_max_threads() : 1);
}

static float *rand_buf(size_t n, mrm_rng *r) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = mrm_rng_uniform_range(r, -1.0f, 1.0f);
    return x;
}

/* Large buffers on 2 MiB pages where the kernel allows (BENCH_HUGE=0: plain malloc). */
static void *big_alloc(size_t bytes) {
    if (getenv("BENCH_HUGE") && !strcmp(getenv("BENCH_HUGE"), "0")) return malloc(bytes);
    void *p = NULL;
    size_t align = (size_t)2 << 20, n = (bytes + align - 1) / align * align;
    if (posix_memalign(&p, align, n)) return NULL;
    madvise(p, n, MADV_HUGEPAGE);
    return p;
}

/* Inference shapes: the FFT path's weight spectra made once, as the inference engine does
 * (NULL: none) */
static float *prepared;

/* Best time of reps runs of one op (0 forward, 1 din, 2 dw). */
static double time_op(int op, nn_ctx *ctx, const shape *s, float *out, float *in, float *w, float *din,
                      float *dw, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first run warms up */
        double t0 = now();
        if (op == 0 && use_direct)
            conv1d_forward_direct(ctx, out, in, w, NULL, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad,
                                  s->groups);
        else if (use_direct)
            conv1d_backward_direct(ctx, op == 1 ? din : NULL, op == 2 ? dw : NULL, out, in, w, s->B, s->Cin, s->Lin,
                                   s->Cout, s->K, s->stride, s->pad, s->groups);
        else if (op == 0 && use_gemm)
            conv1d_forward_gemm(ctx, out, in, w, NULL, 0, s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad, s->groups);
        else if (use_gemm)
            conv1d_backward_gemm(ctx, op == 1 ? din : NULL, op == 2 ? dw : NULL, out, in, w, s->B, s->Cin, s->Lin,
                                 s->Cout, s->K, s->stride, s->pad, s->groups);
        else if (op == 0)
            conv1d_bias_act_forward_prepared(ctx, out, in, w, prepared, NULL, 0, s->B, s->Cin, s->Lin, s->Cout, s->K,
                                             s->stride, s->pad, s->groups);
        else
            conv1d_backward(ctx, op == 1 ? din : NULL, op == 2 ? dw : NULL, out, in, w, s->B, s->Cin, s->Lin,
                            s->Cout, s->K, s->stride, s->pad, s->groups);
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
    }
    return best;
}

/* ---- the other ops at the model's sizes: ms per call ---------------------------------------- */
static void bench_other(const char *filter, int reps) {
    mrm_rng rng;
    mrm_rng_seed(&rng, 2);
    int B = 96, C = 64, L = 1004;
    size_t n = (size_t)B * C * L;
    float *x = rand_buf(n, &rng), *y = rand_buf(n, &rng), *g = rand_buf(n, &rng), *d = calloc(n, sizeof(float));
    float *p1 = rand_buf(256, &rng), *p2 = rand_buf(256, &rng), *m = calloc(n, sizeof(float)),
          *r = calloc(n, sizeof(float));
    float *rm = calloc(256, sizeof(float)), *rv = calloc(256, sizeof(float));
    for (int i = 0; i < 256; i++) rv[i] = 1.0f;
    const char *names[] = {"batchnorm train fwd (96,64,1004)", "batchnorm bwd       (96,64,1004)",
                           "batchnorm eval      (96,64,1004)", "relu fwd+bwd        (96,64,1004)",
                           "maxpool2 fwd+bwd    (96,64,1004)", "layernorm_ch fwd    (96,256,251)",
                           "layernorm_ch bwd    (96,256,251)", "kl softmax f+b      (96,32128)",
                           "channel_maxmean f+b (96,128,251)", "kl sym pair f+b     (96,32128)",
                           "maxpool2s1 fwd+bwd  (96,64,1003)"};
    for (int op = 0; op < 11; op++) {
        if (!strstr(names[op], filter)) continue;
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            double best = 1e30;
            for (int rep = 0; rep < reps + 1; rep++) {
                double t0 = now();
                switch (op) {
                case 0: batchnorm_forward_train(y, m, r, rm, rv, x, p1, p2, B, C, L, 1e-5f, 0.1f); break;
                case 1: batchnorm_backward(d, p1, p2, g, x, m, r, p1, B, C, L); break;
                case 2: batchnorm_forward_eval(y, x, p1, p2, rm, rv, B, C, L, 1e-5f); break;
                case 3: relu_forward(y, x, n), relu_backward(d, g, y, n); break;
                case 4: maxpool2_forward(y, x, B, C, L), maxpool2_backward(d, g, x, B, C, L); break;
                case 5: layernorm_ch_forward(y, m, r, x, p1, p2, B, 256, 251, 1e-6f); break;
                case 6: layernorm_ch_backward(d, p1, p2, g, x, m, r, p1, B, 256, 251); break;
                case 7: kl_softmax_forward_backward(d, g, x, y, B, 32128, 4.0f, 1.0f); break;
                case 8: channel_maxmean_forward(y, x, B, 128, 251), channel_maxmean_backward(d, g, x, B, 128, 251); break;
                case 9: kl_sym_softmax_forward_backward(d, g, x, y, B, 32128, 4.0f, 1.0f); break;
                case 10: maxpool2s1_forward(y, x, B, C, 1003), maxpool2s1_backward(d, g, x, B, C, 1003); break;
                }
                double t = now() - t0;
                if (rep > 0 && t < best) best = t;
            }
            printf("%-38s %3d %9.2f ms\n", names[op], threads, best * 1e3);
            fflush(stdout);
        }
    }
    free(x), free(y), free(g), free(d), free(p1), free(p2), free(m), free(r), free(rm), free(rv);
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : "";
    int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 3;
    cpu_clock = getenv("BENCH_CPU") && atoi(getenv("BENCH_CPU"));
    use_gemm = getenv("BENCH_IMPL") && !strcmp(getenv("BENCH_IMPL"), "gemm");
    use_direct = getenv("BENCH_IMPL") && !strcmp(getenv("BENCH_IMPL"), "direct");
    nn_fft *fft = use_gemm || use_direct ? NULL : nn_fft_create();
    if (fft && getenv("BENCH_FFT_N")) nn_fft_force_size(fft, atoi(getenv("BENCH_FFT_N")));
    mrm_rng rng;
    mrm_rng_seed(&rng, 1);
    printf("%-38s %3s %9s %9s %9s   (GFLOP/s; ms)\n", "shape", "thr", "forward", "din", "dw");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        if (!strstr(s->name, filter)) continue;
        int Lout = conv1d_out_len(s->Lin, s->K, s->stride, s->pad);
        size_t nin = (size_t)s->B * s->Cin * s->Lin, nout = (size_t)s->B * s->Cout * Lout,
               nw = (size_t)s->Cout * (s->Cin / s->groups) * s->K;
        double flop = 2.0 * s->B * s->Cout * (s->Cin / s->groups) * s->K * Lout;
        float *in = rand_buf(nin, &rng), *w = rand_buf(nw, &rng), *out = rand_buf(nout, &rng);
        float *din = calloc(nin, sizeof(float)), *dw = calloc(nw, sizeof(float));
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            nn_ctx ctx;
            ctx.scratch_floats = (use_gemm     ? conv1d_gemm_scratch_floats
                                  : use_direct ? conv1d_direct_scratch_floats
                                               : conv1d_scratch_floats)(s->B, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad,
                                                       s->groups);
            ctx.scratch = big_alloc(ctx.scratch_floats * sizeof(float));
            ctx.fft = fft;
            size_t nspec = s->train ? 0 : conv1d_fft_weight_floats(&ctx, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad,
                                                                   s->groups);
            prepared = nspec ? malloc(nspec * sizeof(float)) : NULL;
            if (prepared &&
                !conv1d_fft_prepare(&ctx, prepared, nspec, w, s->Cin, s->Lin, s->Cout, s->K, s->stride, s->pad)) {
                free(prepared);
                prepared = NULL;
            }
            double t[3] = {0, 0, 0};
            for (int op = 0; op < (s->train ? 3 : 1); op++)
                t[op] = time_op(op, &ctx, s, out, in, w, din, dw, reps);
            printf("%-38s %3d %9.1f", s->name, threads, flop / t[0] * 1e-9);
            if (s->train)
                printf(" %9.1f %9.1f   (%.1f %.1f %.1f ms)\n", flop / t[1] * 1e-9, flop / t[2] * 1e-9, t[0] * 1e3,
                       t[1] * 1e3, t[2] * 1e3);
            else
                printf(" %9s %9s   (%.2f ms)\n", "", "", t[0] * 1e3);
            fflush(stdout);
            free(ctx.scratch);
            free(prepared);
            prepared = NULL;
        }
        free(in), free(w), free(out), free(din), free(dw);
    }
    nn_fft_free(fft);
    bench_other(filter, reps);
    return 0;
}
