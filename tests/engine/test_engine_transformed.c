/* The engine's transformed convolutions against the convolution computed here in double
 * precision from the same float weights and inputs: every kernel this CPU runs (portable, AVX2,
 * AVX-512), with and without residual and ReLU, outputs not a multiple of the tiles. Also: the
 * weights unpacked from the transformed ones give the taps back to 1e-6, and the kernels of each
 * instruction set agree with the portable one to 1e-5. Bound: 1e-5 of the largest output.
 *  - Winograd (engine/wino.h): 3 taps stride 1 by F(4,3); 33 taps at strides 1 and 2, and a few
 *    others, by F(4,4) in chunks (measured: at most 3e-6 of the largest output, on the 33-tap ones).
 *  - FFT (engine/fft.h): the model's 33-tap convolutions at strides 1 and 2, and taps per phase 1
 *    to 129, strides 1 to 4, channel counts not a multiple of the tiles, outputs of one block and
 *    of many, inputs shorter than a stride (measured: at most 5e-7 of it).
 *  - FFT with three real products a bin (kind ENG_CONV_FFT3, the compiler's choice): the same
 *    shapes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_image.h"
#include "engine/fft.h"
#include "engine/kernels.h"
#include "engine/wino.h"
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

/* One transformed algorithm: its step kind, its weights' transform and its kernels. */
typedef struct algo {
    const char *name;
    int kind;
    size_t (*weight_floats)(int cin, int cout, int K, int stride);
    void (*pack)(float *U, const float *w, int cin, int cout, int K, int stride);
    void (*unpack)(float *wp, const float *U, int cin, int cout, int K, int stride);
    eng_convw_fn fns[3];
    const shape *sh;
    int n_sh;
} algo;

static void check_algo(const algo *a) {
    const char *names[3] = {"portable", "avx2", "avx512"};
    for (int z = 0; z < a->n_sh; z++) {
        const shape h = a->sh[z];
        const int lout = (h.lin + 2 * h.pad - h.K) / h.s + 1;
        const size_t nw = (size_t)h.cout * h.cin * h.K, nx = (size_t)h.cin * h.lin, ny = (size_t)h.cout * lout;
        const size_t nu = a->weight_floats(h.cin, h.cout, h.K, h.s);
        float *w = malloc(sizeof(float) * nw), *U = malloc(sizeof(float) * nu), *wd = malloc(sizeof(float) * nw);
        float *x = malloc(sizeof(float) * nx), *res = malloc(sizeof(float) * ny), *bias = malloc(sizeof(float) * h.cout);
        float *y = malloc(sizeof(float) * ny), *y0 = malloc(sizeof(float) * ny);
        double *ref = malloc(sizeof(double) * ny);
        size_t scr = mrm_eng_conv_scratch_floats2(a->kind, h.cin, h.cout, lout, h.K, h.s);
        float *scratch = aligned_alloc(64, (scr * sizeof(float) + 63) / 64 * 64);
        const float ws = 1.0f / sqrtf((float)(h.cin * h.K));
        for (size_t i = 0; i < nw; i++) w[i] = ws * urand();
        for (size_t i = 0; i < nx; i++) x[i] = urand();
        for (size_t i = 0; i < ny; i++) res[i] = urand();
        for (int o = 0; o < h.cout; o++) bias[o] = 0.1f * urand();
        a->pack(U, w, h.cin, h.cout, h.K, h.s);
        /* unpacked: the taps back, in the direct kernel's packing (i, k, o) */
        a->unpack(wd, U, h.cin, h.cout, h.K, h.s);
        double du = 0.0;
        for (int o = 0; o < h.cout; o++)
            for (int i = 0; i < h.cin; i++)
                for (int k = 0; k < h.K; k++) {
                    double d = fabs((double)wd[((size_t)i * h.K + k) * h.cout + o] - w[((size_t)o * h.cin + i) * h.K + k]);
                    du = d > du ? d : du;
                }
        CHECK(du <= 1e-6, "%s: cin %d cout %d k %d s %d: unpacked taps off by %.3g", a->name, h.cin, h.cout, h.K, h.s, du);
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
            if (!a->fns[f]) continue;
            for (int mode = 0; mode < 4; mode++) {
                const int relu = mode & 1, use_res = mode >> 1;
                for (size_t i = 0; i < ny; i++) y[i] = NAN;
                a->fns[f](y, x, use_res ? res : NULL, U, bias, relu, h.cin, h.lin, h.cout, h.K, h.s, h.pad, lout, scratch);
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
                CHECK(worst <= 1e-5 * big, "%s %s: cin %d cout %d k %d s %d relu %d res %d: %.3g from the reference (largest %.3g)",
                      a->name, names[f], h.cin, h.cout, h.K, h.s, relu, use_res, worst, big);
                CHECK(dp <= 1e-5 * big, "%s %s: cin %d cout %d k %d s %d: %.3g from the portable kernel", a->name, names[f], h.cin,
                      h.cout, h.K, h.s, dp);
                if (mode == 3)
                    printf("%-8s %-8s cin %3d cout %3d k %2d s %d lout %4d: max error %.2e of %.2e\n", a->name, names[f], h.cin, h.cout,
                           h.K, h.s, lout, worst, big);
            }
        }
        free(w), free(U), free(wd), free(x), free(res), free(bias), free(y), free(y0), free(ref), free(scratch);
    }
}

int main(void) {
    static const shape wino_sh[] = {{64, 64, 3, 1, 1, 502},  {128, 128, 3, 1, 1, 251}, {64, 64, 33, 1, 16, 1004},
                        {64, 128, 33, 2, 16, 1004}, {32, 64, 5, 1, 2, 99},   {40, 36, 7, 2, 3, 77},
                        {33, 7, 3, 1, 1, 5},     {48, 20, 11, 3, 5, 130},  {16, 8, 2, 1, 0, 9},
                        {64, 64, 3, 1, 1, 1003}, {32, 9, 3, 1, 1, 67}};
    static const shape fft_sh[] = {{64, 64, 33, 1, 16, 1004}, {64, 128, 33, 2, 16, 1004}, {32, 20, 17, 1, 8, 99},
                        {40, 36, 31, 2, 15, 77},    {33, 7, 21, 3, 10, 130},     {16, 9, 9, 1, 4, 9},
                        {8, 5, 129, 1, 64, 300},    {12, 13, 33, 1, 0, 40},      {5, 3, 33, 2, 16, 2100},
                        {4, 3, 1, 2, 0, 1},         {6, 5, 3, 3, 0, 2},          {7, 4, 5, 4, 1, 3}};
    algo al[3] = {{"winograd", ENG_CONV_WINOGRAD, mrm_eng_wino_weight_floats, mrm_eng_wino_pack, mrm_eng_wino_unpack,
                   {mrm_eng_convw_portable, NULL, NULL}, wino_sh, (int)(sizeof wino_sh / sizeof wino_sh[0])},
                  {"fft", ENG_CONV_FFT, mrm_eng_fft_weight_floats, mrm_eng_fft_pack, mrm_eng_fft_unpack,
                   {mrm_eng_convf_portable, NULL, NULL}, fft_sh, (int)(sizeof fft_sh / sizeof fft_sh[0])},
                  {"fft3", ENG_CONV_FFT3, mrm_eng_fft3_weight_floats, mrm_eng_fft3_pack, mrm_eng_fft3_unpack,
                   {mrm_eng_convf3_portable, NULL, NULL}, fft_sh, (int)(sizeof fft_sh / sizeof fft_sh[0])}};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        al[0].fns[1] = mrm_eng_convw_avx2, al[1].fns[1] = mrm_eng_convf_avx2, al[2].fns[1] = mrm_eng_convf3_avx2;
    if (__builtin_cpu_supports("avx512f"))
        al[0].fns[2] = mrm_eng_convw_avx512, al[1].fns[2] = mrm_eng_convf_avx512, al[2].fns[2] = mrm_eng_convf3_avx512;
#endif
    for (int i = 0; i < 3; i++) check_algo(&al[i]);
    TEST_END();
}
