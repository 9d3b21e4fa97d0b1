/* AVX512-VNNI int8 kernel (this file is compiled with -mavx512f -mavx512vnni -ffp-contract=off;
 * called only where the CPU has them): tiles of 6 output channels x 64 steps (24 of the 32
 * registers), each vpdpbusd adding 4 input channels' uint8 x int8 products into 16 int32 sums.
 * The input packing and the epilogue are the portable kernel's (conv_template.h), compiled
 * without contraction into FMA, so the outputs equal the portable kernel's bit for bit. */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define VW 16
#define NV 4
#define CO 6

static inline __attribute__((always_inline)) void tile_vnni(int32_t *tmp, const uint8_t *X, size_t xq_stride,
                                                             size_t Lq, const int8_t *W, int cog, int cig4, int K,
                                                             int s, const int32_t *cp, int nco) {
    (void)cp, (void)nco;
    __m512i acc[CO][NV];
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) acc[c][v] = _mm512_setzero_si512();
    for (int i = 0; i < cig4; i++) {
        const uint8_t *xi = X + (size_t)i * xq_stride;
        const int8_t *wi = W + (size_t)i * K * cog * 4;
        for (int k = 0; k < K; k++) {
            const uint8_t *xr = xi + ((size_t)(k % s) * Lq + (size_t)(k / s)) * 4;
            const int8_t *wr = wi + (size_t)k * cog * 4;
            __m512i xv[NV];
            for (int v = 0; v < NV; v++) xv[v] = _mm512_loadu_si512((const void *)(xr + (size_t)v * 64));
            for (int c = 0; c < CO; c++) {
                int32_t w4;
                memcpy(&w4, wr + c * 4, 4);
                __m512i wv = _mm512_set1_epi32(w4);
                for (int v = 0; v < NV; v++) acc[c][v] = _mm512_dpbusd_epi32(acc[c][v], xv[v], wv);
            }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) _mm512_storeu_si512((void *)(tmp + c * NV * VW + v * VW), acc[c][v]);
}

#define TILE8 tile_vnni
#define FN8 mrm_eng_conv8_avx512vnni
#include "engine/conv_template.h"
#else
typedef int eng_kern_avx512vnni_unused; /* not an x86-64 build */
#endif
