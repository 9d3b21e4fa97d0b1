/* The FFT convolution kernels (engine/fft.h) against the convolution computed here in double
 * precision from the same float weights and inputs: every kernel this CPU runs (portable, AVX2,
 * AVX-512) on the shapes the engine gives them (the model's 33-tap convolutions at strides 1 and
 * 2) and others (taps per phase 1 to 129, strides 1 to 4, channel counts not a multiple of the
 * tiles, outputs of one block and of many, inputs shorter than a stride), with and without
 * residual and ReLU. Bound: 1e-5 of the largest output (measured: at most 5e-7 of it). Also: the
 * weights unpacked from the spectra give the taps back to 1e-6, and the kernels of each
 * instruction set agree with the portable one to 1e-5. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_image.h"
#include "engine/kernels.h"
#include "engine/fft.h"
#include "mrmnet/engine.h"
#include "test_util.h"

static uint64_t rs = 88172645463325252ULL;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}
static float urand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

typedef struct shape {
    int cin, cout, K, s, pad, lin;
} shape;

int main(void) {
    const shape sh[] = {{64, 64, 33, 1, 16, 1004}, {64, 128, 33, 2, 16, 1004}, {32, 20, 17, 1, 8, 99},
                        {40, 36, 31, 2, 15, 77},    {33, 7, 21, 3, 10, 130},     {16, 9, 9, 1, 4, 9},
                        {8, 5, 129, 1, 64, 300},    {12, 13, 33, 1, 0, 40},      {5, 3, 33, 2, 16, 2100},
                        {4, 3, 1, 2, 0, 1},         {6, 5, 3, 3, 0, 2},          {7, 4, 5, 4, 1, 3}};
    const int n_sh = (int)(sizeof sh / sizeof sh[0]);
    eng_convw_fn fns[3] = {mrm_eng_convf_portable, NULL, NULL};
    const char *names[3] = {"portable", "avx2", "avx512"};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) fns[1] = mrm_eng_convf_avx2;
    if (__builtin_cpu_supports("avx512f")) fns[2] = mrm_eng_convf_avx512;
#endif
    for (int z = 0; z < n_sh; z++) {
        const shape h = sh[z];
        const int lout = (h.lin + 2 * h.pad - h.K) / h.s + 1;
        const size_t nw = (size_t)h.cout * h.cin * h.K, nx = (size_t)h.cin * h.lin, ny = (size_t)h.cout * lout;
        const size_t nu = mrm_eng_fft_weight_floats(h.cin, h.cout, h.K, h.s);
        float *w = malloc(sizeof(float) * nw), *U = malloc(sizeof(float) * nu), *wd = malloc(sizeof(float) * nw);
        float *x = malloc(sizeof(float) * nx), *res = malloc(sizeof(float) * ny), *bias = malloc(sizeof(float) * h.cout);
        float *y = malloc(sizeof(float) * ny), *y0 = malloc(sizeof(float) * ny);
        double *ref = malloc(sizeof(double) * ny);
        size_t scr = mrm_eng_conv_scratch_floats2(ENG_CONV_FFT, h.cin, h.cout, lout, h.K, h.s);
        float *scratch = aligned_alloc(64, (scr * sizeof(float) + 63) / 64 * 64);
        const float ws = 1.0f / sqrtf((float)(h.cin * h.K));
        for (size_t i = 0; i < nw; i++) w[i] = ws * urand();
        for (size_t i = 0; i < nx; i++) x[i] = urand();
        for (size_t i = 0; i < ny; i++) res[i] = urand();
        for (int o = 0; o < h.cout; o++) bias[o] = 0.1f * urand();
        mrm_eng_fft_pack(U, w, h.cin, h.cout, h.K, h.s);
        /* unpacked: the taps back, in the direct kernel's packing (i, k, o) */
        mrm_eng_fft_unpack(wd, U, h.cin, h.cout, h.K, h.s);
        double du = 0.0;
        for (int o = 0; o < h.cout; o++)
            for (int i = 0; i < h.cin; i++)
                for (int k = 0; k < h.K; k++) {
                    double d = fabs((double)wd[((size_t)i * h.K + k) * h.cout + o] - w[((size_t)o * h.cin + i) * h.K + k]);
                    du = d > du ? d : du;
                }
        CHECK(du <= 1e-6, "cin %d cout %d k %d s %d: unpacked taps off by %.3g", h.cin, h.cout, h.K, h.s, du);
        for (int o = 0; o < h.cout; o++)
            for (int t = 0; t < lout; t++) {
                double acc = 0.0;
                for (int i = 0; i < h.cin; i++)
                    for (int k = 0; k < h.K; k++) {
                        int j = t * h.s + k - h.pad;
                        if (j >= 0 && j < h.lin) acc += (double)w[((size_t)o * h.cin + i) * h.K + k] * x[(size_t)i * h.lin + j];
                    }
                ref[(size_t)o * lout + t] = acc + bias[o];
            }
        for (int f = 0; f < 3; f++) {
            if (!fns[f]) continue;
            for (int mode = 0; mode < 4; mode++) {
                const int relu = mode & 1, use_res = mode >> 1;
                for (size_t i = 0; i < ny; i++) y[i] = NAN;
                fns[f](y, x, use_res ? res : NULL, U, bias, relu, h.cin, h.lin, h.cout, h.K, h.s, h.pad, lout, scratch);
                double worst = 0.0, big = 1e-30, dp = 0.0;
                for (size_t i = 0; i < ny; i++) {
                    double r = ref[i] + (use_res ? res[i] : 0.0);
                    if (relu && r < 0.0) r = 0.0;
                    double d = fabs((double)y[i] - r);
                    if (!(d <= worst)) worst = d; /* NaN too */
                    big = fabs(r) > big ? fabs(r) : big;
                }
                if (f == 0 && mode == 3) memcpy(y0, y, sizeof(float) * ny);
                if (f > 0 && mode == 3)
                    for (size_t i = 0; i < ny; i++) {
                        double d = fabs((double)y[i] - y0[i]);
                        dp = d > dp ? d : dp;
                    }
                CHECK(worst <= 1e-5 * big, "%s: cin %d cout %d k %d s %d relu %d res %d: %.3g from the reference (largest %.3g)",
                      names[f], h.cin, h.cout, h.K, h.s, relu, use_res, worst, big);
                CHECK(dp <= 1e-5 * big, "%s: cin %d cout %d k %d s %d: %.3g from the portable kernel", names[f], h.cin,
                      h.cout, h.K, h.s, dp);
                if (mode == 3)
                    printf("%-8s cin %3d cout %3d k %2d s %d lout %4d: max error %.2e of %.2e\n", names[f], h.cin, h.cout,
                           h.K, h.s, lout, worst, big);
            }
        }
        free(w), free(U), free(wd), free(x), free(res), free(bias), free(y), free(y0), free(ref), free(scratch);
    }
    TEST_END();
}
