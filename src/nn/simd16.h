/* A 16 x 16 transpose of floats in AVX-512 registers, for the kernels that turn rows of 16
 * values into lanes and back (FFT batches, the Winograd weight gradient's V, the grouped
 * weight gradient's dout). */
#ifndef MRM_NN_SIMD16_H
#define MRM_NN_SIMD16_H
#if defined(__AVX512F__)
#include <immintrin.h>

/* r (row j, lane l) -> r (row l, lane j): 32-bit pairs, 64-bit pairs, then 128-bit chunks. */
static inline void nn_transpose16_regs(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    __m512 s[16];
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        s[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        s[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        s[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        s[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* s[4i + j], 128-bit chunk c: column 4c + j of rows 4i .. 4i+3 */
    for (int j = 0; j < 4; j++) {
        __m512 u1 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0x88), u2 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0xdd);
        __m512 v1 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0x88), v2 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0xdd);
        r[j] = _mm512_shuffle_f32x4(u1, v1, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(u1, v1, 0xdd);
        r[4 + j] = _mm512_shuffle_f32x4(u2, v2, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(u2, v2, 0xdd);
    }
}

/* dst[j * ldd + i] = src[i * lds + j] for i, j < 16 */
static inline void nn_transpose16(const float *src, size_t lds, float *dst, size_t ldd) {
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)i * lds);
    nn_transpose16_regs(r);
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + (size_t)i * ldd, r[i]);
}
#endif
#endif
