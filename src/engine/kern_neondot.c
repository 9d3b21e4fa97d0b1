/* aarch64 int8 kernel with the dot-product instructions of ARMv8.2, called only where the CPU
 * has them (Linux: HWCAP_ASIMDDP). This file is compiled with -march=armv8.2-a+dotprod
 * -ffp-contract=off -fno-predictive-commoning (without the last, GCC unrolls the taps of stride
 * 1 by 4 to reuse the input vectors and spills accumulators). Tiles of 6 output channels x 16
 * steps (24 of the 32 registers, 4 for the input, 2 for the weights), each sdot adding 4 input
 * channels' int8 x int8 products into 4 int32 sums. The input is packed as q (int8, X8_ZERO 0)
 * instead of q + 128, so the products are signed x signed; the tile starts its sums at comp[o] =
 * 128 * (sum of the channel's weights), which gives the int32 sums of the other kernels (of q +
 * 128) exactly, wrapping the same way. The epilogue is the portable kernel's (conv_template.h),
 * compiled without contraction into FMA, so the outputs are those of the exact reference bit for
 * bit. */
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#define VW 4
#define NV 4
#define CO 6
#define X8_ZERO 0

static inline __attribute__((always_inline)) void tile_sdot(int32_t *tmp, const uint8_t *X, size_t xq_stride,
                                                             size_t Lq, const int8_t *W, int cog, int cig4, int K,
                                                             int s, const int32_t *cp, int nco) {
    int32x4_t acc[CO][NV];
    for (int c = 0; c < CO; c++) {
        int32x4_t c0 = vdupq_n_s32(c < nco ? cp[c] : 0);
        for (int v = 0; v < NV; v++) acc[c][v] = c0;
    }
    for (int i = 0; i < cig4; i++) {
        const int8_t *xi = (const int8_t *)(const void *)X + (size_t)i * xq_stride;
        const int8_t *wi = W + (size_t)i * K * cog * 4;
        for (int k = 0; k < K; k++) {
            const int8_t *xr = xi + ((size_t)(k % s) * Lq + (size_t)(k / s)) * 4;
            const int8_t *wr = wi + (size_t)k * cog * 4;
            int8x16_t xv[NV];
            for (int v = 0; v < NV; v++) xv[v] = vld1q_s8(xr + v * 16);
            const int8x16_t w0 = vld1q_s8(wr);    /* channels 0-3, 4 input channels each */
            const int8x8_t w1 = vld1_s8(wr + 16); /* channels 4-5 */
            for (int v = 0; v < NV; v++) {
                acc[0][v] = vdotq_laneq_s32(acc[0][v], xv[v], w0, 0);
                acc[1][v] = vdotq_laneq_s32(acc[1][v], xv[v], w0, 1);
                acc[2][v] = vdotq_laneq_s32(acc[2][v], xv[v], w0, 2);
                acc[3][v] = vdotq_laneq_s32(acc[3][v], xv[v], w0, 3);
                acc[4][v] = vdotq_lane_s32(acc[4][v], xv[v], w1, 0);
                acc[5][v] = vdotq_lane_s32(acc[5][v], xv[v], w1, 1);
            }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) vst1q_s32(tmp + c * NV * VW + v * VW, acc[c][v]);
}

#define TILE8 tile_sdot
#define FN8 mrm_eng_conv8_neondot
#include "engine/conv_template.h"
#else
typedef int eng_kern_neondot_unused; /* not an aarch64 build with the dot-product instructions */
#endif
