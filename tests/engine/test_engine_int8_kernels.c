/* The int8 convolution kernels against a reference computed here: the input rounded to int8
 * steps, the products of the int8 weights summed exactly in 64 bits, scaled back to float
 * (out = sum * scale + bias [+ res], ReLU) without contraction. The portable kernel (on x86-64,
 * where it has no FMA), the AVX512-VNNI kernel and the aarch64 dot-product kernel (where the CPU
 * has them) must give exactly the reference's floats: their int32 sums are exact and their
 * epilogues round the same way. The AVX2 and AVX-512F kernels (whose epilogues may use FMA) must
 * agree to 1e-5 (of max(1, |value|)). Shapes: every kind the model has (k 3, 5, 7, 15, 33;
 * strides 1 and 2; grouped; input channels not a multiple of 4), outputs not a multiple of the
 * tiles. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

#include "engine/kernels.h"
#include "test_util.h"
#include "mrmnet/engine.h"

static uint64_t rs = 88172645463325252ULL;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}
static float urand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

static int q8(float x, float inv) { /* the kernels' rounding: to nearest, halves away from 0 */
    float v = x * inv;
    v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
    return v >= 0.0f ? (int)(v + 0.5f) : -(int)(0.5f - v);
}

typedef struct shape {
    int cin, cout, K, s, pad, groups, lin;
} shape;

int main(void) {
    const shape sh[] = {{16, 32, 7, 2, 3, 1, 500}, {32, 64, 5, 2, 2, 1, 250}, {64, 64, 3, 1, 1, 1, 125},
                        {64, 64, 33, 1, 16, 1, 125}, {64, 128, 3, 2, 1, 1, 125}, {128, 128, 3, 1, 1, 8, 62},
                        {64, 64, 7, 1, 3, 4, 125}, {12, 20, 15, 1, 7, 1, 97}, {6, 10, 3, 1, 1, 2, 70},
                        {128, 64, 1, 1, 0, 1, 31}};
    const int n_sh = (int)(sizeof sh / sizeof sh[0]);
    eng_conv8_fn fns[5] = {mrm_eng_conv8_portable, NULL, NULL, NULL, NULL};
    const char *names[5] = {"portable", "avx2", "avx512", "avx512vnni", "neondot"};
    int has_dot = 0; /* the CPU reports the dot-product instructions (aarch64 Linux) */
    (void)has_dot;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) fns[1] = mrm_eng_conv8_avx2;
    if (__builtin_cpu_supports("avx512f")) fns[2] = mrm_eng_conv8_avx512;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni")) fns[3] = mrm_eng_conv8_avx512vnni;
#elif defined(__aarch64__) && defined(__linux__)
    has_dot = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    if (has_dot) fns[4] = mrm_eng_conv8_neondot;
#endif
    int ran[5] = {0};
    for (int z = 0; z < n_sh; z++) {
        const shape h = sh[z];
        const int cig = h.cin / h.groups, cog = h.cout / h.groups;
        const int lout = (h.lin + 2 * h.pad - h.K) / h.s + 1;
        size_t nw = (size_t)h.cout * cig * h.K, nx = (size_t)h.cin * h.lin, ny = (size_t)h.cout * lout;
        int8_t *w = malloc(nw), *wp = malloc(mrm_eng_pack8_bytes(h.cin, h.cout, h.K, h.groups));
        int32_t *comp = malloc(sizeof(int32_t) * (size_t)h.cout);
        float *x = malloc(sizeof(float) * nx), *res = malloc(sizeof(float) * ny), *bias = malloc(sizeof(float) * h.cout);
        float *scale = malloc(sizeof(float) * h.cout), *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
        size_t scr = mrm_eng_conv_scratch_floats(h.cin, lout, h.K, h.s);
        float *scratch = aligned_alloc(64, (scr * sizeof(float) + 63) / 64 * 64);
        int *xq = malloc(sizeof(int) * nx);
        const float in_scale = 2.5f / 127.0f;
        for (size_t i = 0; i < nw; i++) w[i] = (int8_t)((int)(rnd() % 255) - 127);
        for (size_t i = 0; i < nx; i++) x[i] = 3.0f * urand(); /* some beyond the range: clamped */
        for (size_t i = 0; i < ny; i++) res[i] = urand();
        for (int o = 0; o < h.cout; o++) bias[o] = urand(), scale[o] = in_scale * (0.001f + 0.01f * (urand() + 1.0f));
        for (size_t i = 0; i < nx; i++) xq[i] = q8(x[i], 1.0f / in_scale);
        mrm_eng_pack8(wp, comp, w, h.cin, h.cout, h.K, h.groups);
        for (int relu = 0; relu < 2; relu++)
            for (int use_res = 0; use_res < 2; use_res++) {
                for (int o = 0; o < h.cout; o++) {
                    int g = o / cog;
                    for (int t = 0; t < lout; t++) {
                        long long sum = 0;
                        for (int i = 0; i < cig; i++)
                            for (int k = 0; k < h.K; k++) {
                                long long idx = (long long)t * h.s + k - h.pad;
                                if (idx < 0 || idx >= h.lin) continue;
                                sum += (long long)w[((size_t)o * cig + i) * h.K + k] *
                                       xq[((size_t)g * cig + i) * h.lin + (size_t)idx];
                            }
                        volatile float p = (float)(int32_t)sum * scale[o];
                        float v = p + bias[o];
                        if (use_res) v = v + res[(size_t)o * lout + t];
                        ref[(size_t)o * lout + t] = relu && v < 0.0f ? 0.0f : v;
                    }
                }
                for (int f = 0; f < 5; f++) {
                    if (!fns[f]) continue;
                    memset(y, 0xff, sizeof(float) * ny);
                    fns[f](y, x, use_res ? res : NULL, wp, comp, bias, scale, in_scale, relu, h.cin, h.lin, h.cout, h.K,
                           h.s, h.pad, h.groups, lout, scratch);
                    double worst = 0.0;
                    size_t diff = 0;
                    for (size_t i = 0; i < ny; i++) {
                        double d = fabs((double)y[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
                        worst = d > worst ? d : worst;
                        diff += memcmp(&y[i], &ref[i], sizeof(float)) != 0;
                    }
#if defined(__x86_64__) /* elsewhere the portable kernel's epilogue may use FMA (aarch64) */
                    const int exact = f == 0 || f == 3;
#else
                    const int exact = f >= 3;
#endif
                    ran[f]++;
                    if (exact)
                        CHECK(diff == 0, "%s: cin %d cout %d k %d s %d groups %d relu %d res %d: %zu of %zu outputs differ "
                              "from the exact reference (worst %.2e)", names[f], h.cin, h.cout, h.K, h.s, h.groups, relu,
                              use_res, diff, ny, worst);
                    else
                        CHECK(worst < 1e-5, "%s: cin %d cout %d k %d s %d groups %d: %.3g from the reference", names[f],
                              h.cin, h.cout, h.K, h.s, h.groups, worst);
                }
            }
        printf("cin %3d cout %3d k %2d stride %d groups %d lout %3d: %s%s%s%s%s agree with the exact reference\n", h.cin,
               h.cout, h.K, h.s, h.groups, lout, names[0], fns[1] ? ", avx2" : "", fns[2] ? ", avx512" : "",
               fns[3] ? ", avx512vnni (bit for bit)" : "", fns[4] ? ", neondot (bit for bit)" : "");
        free(w), free(wp), free(comp), free(x), free(res), free(bias), free(scale), free(ref), free(y), free(scratch);
        free(xq);
    }
#if defined(__x86_64__)
    if (!fns[3]) printf("this CPU has no AVX512-VNNI: its kernel not run\n");
#endif
    printf("kernels run:");
    for (int f = 0; f < 5; f++)
        if (ran[f]) printf(" %s (%d cases)", names[f], ran[f]);
    printf("\n");
#if defined(__aarch64__)
    /* the dot-product kernel is run wherever the CPU has it (test_engine_image: and chosen) */
    CHECK(!has_dot || ran[4] == 4 * n_sh, "the CPU has the dot-product instructions but neondot ran %d of %d cases",
          ran[4], 4 * n_sh);
    if (!has_dot) printf("this CPU has no dot-product instructions (HWCAP_ASIMDDP): neondot not run\n");
#endif
    TEST_END();
}
