/* Winograd's minimal filtering for the engine's convolutions (a step's kind
 * ENG_CONV_WINOGRAD): tiles of 4 outputs, either F(4,3) (6 points) for 3-tap stride-1
 * convolutions or F(4,4) (7 points) applied to the kernel cut into chunks of 4 taps for longer
 * kernels and strides, so that one set of transformed inputs serves every chunk.
 *
 * A stride-s convolution is first written as a stride-1 one over Ce = cin * s input channels
 * (polyphase: channel c' = i * s + ph reads xph[u] = xpad_i[s u + ph], its taps are w[o, i, s kk
 * + ph], kk < Ke = ceil(K / s)). The kernel's Ke taps are cut into J chunks of r taps (J = 1 for
 * F(4,3)); chunk j covers taps 4j .. 4j + r - 1, which for the output tile q (outputs 4q .. 4q + 3)
 * read the inputs of tile q + j. With the points' matrices BT (n x n), G (n x r), AT (4 x n):
 *
 *     V[e, c', q]    = sum_a BT[e, a] xph_{c'}[4q + a]                      (input transform)
 *     U[e, c', j, o] = sum_b G[e, b] w_{c'}[o, 4j + b]                      (at build time)
 *     M[e, o, q]     = sum_{c', j} U[e, c', j, o] V[e, c', q + j]           (n small convolutions
 *                                                                            over the tile axis)
 *     y[o, 4q + t]   = sum_e AT[t, e] M[e, o, q]                            (output transform)
 *
 * an exact identity of the arithmetic (the matrices are Toom-Cook's for the points 0, +-1, +-2,
 * [-1/2,] infinity: BT is the inverse transposed Vandermonde matrix, G and AT Vandermonde
 * matrices), with about n / (4 r) of the direct convolution's multiplications per tap. Its
 * rounding differs from the direct sum's by a small factor (the parity tests bound it). */
#ifndef MRM_ENGINE_WINO_H
#define MRM_ENGINE_WINO_H

#include <stddef.h>

#define ENG_WINO_M 4   /* outputs per tile */
#define ENG_WINO_NMAX 7
#define ENG_WINO_MROWS 8 /* rows of M past the output channels (the kernels' channel tiles: at most 8) */

static const float eng_wino_bt6[6][6] = {
    {1.0f, 0, -5.0f / 4, 0, 1.0f / 4, 0},
    {0, 2.0f / 3, 2.0f / 3, -1.0f / 6, -1.0f / 6, 0},
    {0, -2.0f / 3, 2.0f / 3, 1.0f / 6, -1.0f / 6, 0},
    {0, -1.0f / 12, -1.0f / 24, 1.0f / 12, 1.0f / 24, 0},
    {0, 1.0f / 12, -1.0f / 24, -1.0f / 12, 1.0f / 24, 0},
    {0, 4.0f, 0, -5.0f, 0, 1.0f}};
static const float eng_wino_g6[6][4] = {{1, 0, 0, 0}, {1, 1, 1, 0}, {1, -1, 1, 0}, {1, 2, 4, 0}, {1, -2, 4, 0}, {0, 0, 1, 0}};
static const float eng_wino_at6[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

static const float eng_wino_bt7[7][7] = {
    {1.0f, 2.0f, -5.0f / 4, -5.0f / 2, 1.0f / 4, 1.0f / 2, 0},
    {0, 2.0f / 9, 2.0f / 3, 7.0f / 18, -1.0f / 6, -1.0f / 9, 0},
    {0, 2.0f / 3, 2.0f / 3, -3.0f / 2, -1.0f / 6, 1.0f / 3, 0},
    {0, -1.0f / 60, -1.0f / 24, 0, 1.0f / 24, 1.0f / 60, 0},
    {0, -1.0f / 36, -1.0f / 24, 1.0f / 18, 1.0f / 24, -1.0f / 36, 0},
    {0, -128.0f / 45, 0, 32.0f / 9, 0, -32.0f / 45, 0},
    {0, 2.0f, 4.0f, -5.0f / 2, -5.0f, 1.0f / 2, 1.0f}};
static const float eng_wino_g7[7][4] = {{1, 0, 0, 0},   {1, 1, 1, 1},     {1, -1, 1, -1},
                                        {1, 2, 4, 8},   {1, -2, 4, -8},   {1, -0.5f, 0.25f, -0.125f},
                                        {0, 0, 0, 1}};
static const float eng_wino_at7[4][7] = {{1, 1, 1, 1, 1, 1, 0},
                                         {0, 1, -1, 2, -2, -0.5f, 0},
                                         {0, 1, 1, 4, 4, 0.25f, 0},
                                         {0, 1, -1, 8, -8, -0.125f, 1}};

/* The shape of a Winograd convolution. Lw: the length of a transformed input row (tiles padded
 * to a multiple of the widest kernel tile, ENG_T_MAX, plus the J - 1 read past them). */
typedef struct eng_wino {
    int n, r, J, Ce, Ke, ntile;
    size_t Lw;
} eng_wino;

static inline eng_wino eng_wino_shape(int cin, int lout, int K, int s, int t_max) {
    eng_wino w;
    w.Ke = (K + s - 1) / s;
    w.r = s == 1 && K == 3 ? 3 : 4;
    w.n = w.r + ENG_WINO_M - 1;
    w.J = (w.Ke + 3) / 4;
    w.Ce = cin * s;
    w.ntile = (lout + ENG_WINO_M - 1) / ENG_WINO_M;
    w.Lw = (size_t)((w.ntile + t_max - 1) / t_max * t_max + w.J - 1);
    return w;
}

/* The length of a row of M (products per point and output channel): tiles padded to ENG_T_MAX. */
static inline size_t eng_wino_lm(int ntile) { return (size_t)(ntile + 63) / 64 * 64; }

#endif
