/* 1-D convolution with 3 taps, stride 1, by Winograd's minimal filtering F(4, 3) (Lavin and
 * Gray 2016, in one dimension): 4 outputs of one (output, input) channel pair from 6
 * multiplications instead of 12. The BasicBlocks of MRM-Net are made of such convolutions.
 *
 * A tile j of a sample covers the outputs t = 4j .. 4j+3 and reads the 6 padded inputs
 * x[4j - pad .. 4j - pad + 6). With the fixed matrices BT (6x6), G (6x3), AT (4x6),
 *
 *     forward       V[e] = BT x (per input tile),  U[e] = G w,  M[e] = U[e] V[e]  (a GEMM over
 *                   input channels, for each of the 6 points e), y = AT M
 *     data grad     dM = A dy (per output tile),   dV[e] = U[e]^T dM[e],  dx = B dV,
 *                   the overlapping tiles added
 *     weight grad   dU[e] = dM[e] V[e]^T (summed over tiles),  dw = G^T dU
 *
 * where V[e] is (Cin, ncol) and M[e] (Cout, ncol), col = (sample, tile): one GEMM per point for
 * each of the three. This is an exact identity of the arithmetic; its rounding differs from the
 * direct sum by small factors of the input's scale (the tests bound it against float64).
 * The forward shares the batch's columns (sample, tile) out among the threads in contiguous
 * runs (mrm_partition: sizes within one column of each other, from a batch of one record up);
 * each thread works through its run in chunks of at most ncol columns. The backward shares out
 * whole samples the same way (a sample's din tiles overlap; dU is summed per thread, in thread
 * order). Every output value is computed by one thread in a fixed order: same inputs and
 * thread count, same bits. */
#include <omp.h>
#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <string.h>

#include "common/partition.h"
#include "nn/conv1d_impl.h"
#include "nn/simd16.h"

enum { WT = 4, WN = 6 }; /* outputs per tile, points (inputs per tile) */

/* BT (6x6) = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 * AT (4x6) = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1], written out in the
 * transforms below; G (6x3): */
static const float G3[WN][3] = {
    {0.25f, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0, 0, 1},
};
#if defined(__AVX512F__)
/* AVX-512 forms of the transforms' inner loops: 16 tiles at a time, the tiles' 4 interleaved
 * values (x[4j + r]) taken apart (or put together) with permutes instead of strided scalar
 * loads and stores. Each value is the same sequence of single-rounded operations as in the
 * scalar forms (tile_v, tile_y, tile_dm, din_transform), so the same bits. */
typedef __m512 vf;
static inline vf vset(float a) { return _mm512_set1_ps(a); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
/* lanes l of [s, s + 16) with lo <= s + l < hi */
static inline __mmask16 range_mask(long s, long lo, long hi) {
    long a = lo - s, b = hi - s;
    if (a < 0) a = 0;
    if (b > 16) b = 16;
    if (b <= a) return 0;
    return (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1));
}
/* 16 tiles of 4 interleaved values (a0..a3 = 64 floats) -> x[r][j] = value r of tile j */
static inline void deinterleave4(vf a0, vf a1, vf a2, vf a3, vf x[4]) {
    const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    vf lo01 = _mm512_permutex2var_ps(a0, i01, a1), hi01 = _mm512_permutex2var_ps(a2, i01, a3);
    vf lo23 = _mm512_permutex2var_ps(a0, i23, a1), hi23 = _mm512_permutex2var_ps(a2, i23, a3);
    x[0] = _mm512_shuffle_f32x4(lo01, hi01, 0x44), x[1] = _mm512_shuffle_f32x4(lo01, hi01, 0xEE);
    x[2] = _mm512_shuffle_f32x4(lo23, hi23, 0x44), x[3] = _mm512_shuffle_f32x4(lo23, hi23, 0xEE);
}
/* the inverse: y[r][j] -> o[q] lane l = y[l % 4][4q + l / 4] */
static inline void interleave4(const vf y[4], vf o[4]) {
    const __m512i ia = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
    const __m512i ib = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
    vf lo01 = _mm512_shuffle_f32x4(y[0], y[1], 0x44), hi01 = _mm512_shuffle_f32x4(y[0], y[1], 0xEE);
    vf lo23 = _mm512_shuffle_f32x4(y[2], y[3], 0x44), hi23 = _mm512_shuffle_f32x4(y[2], y[3], 0xEE);
    o[0] = _mm512_permutex2var_ps(lo01, ia, lo23), o[1] = _mm512_permutex2var_ps(lo01, ib, lo23);
    o[2] = _mm512_permutex2var_ps(hi01, ia, hi23), o[3] = _mm512_permutex2var_ps(hi01, ib, hi23);
}
/* x[k] shifted down one lane, `last` into lane 15 */
static inline vf next_lane(vf x, vf last) {
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(last), _mm512_castps_si512(x), 1));
}
/* lane 0 from prev's lane 15, lane k from cur's lane k - 1 */
static inline vf prev_lane(vf cur, vf prev) {
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(cur), _mm512_castps_si512(prev), 15));
}
static inline float lane15(vf x) { return _mm512_cvtss_f32(_mm512_permutexvar_ps(_mm512_set1_epi32(15), x)); }
/* tile_v for the tiles [ja, jb) of a row whose tile j reads x[4j .. 4j + 5] (all inside it) */
static void tile_v_span(float *v0, size_t vs, const float *x, int ja, int jb) {
    const vf c2 = vset(2), c4 = vset(4), c5 = vset(5), m2 = vset(-2), m4 = vset(-4);
    for (int j = ja; j < jb; j += 16) {
        const float *p = x + (size_t)WT * j;
        int r = jb - j < 16 ? jb - j : 16;
        vf a[4], t[4], x4, x5;
        if (r == 16) {
            for (int i = 0; i < 4; i++) a[i] = _mm512_loadu_ps(p + 16 * i);
            deinterleave4(a[0], a[1], a[2], a[3], t);
            x4 = next_lane(t[0], vset(p[64])), x5 = next_lane(t[1], vset(p[65]));
        } else { /* the tiles read p[0 .. 4r + 2) */
            for (int i = 0; i < 4; i++) a[i] = _mm512_maskz_loadu_ps(range_mask(16 * i, 0, 4 * r + 2), p + 16 * i);
            deinterleave4(a[0], a[1], a[2], a[3], t);
            x4 = next_lane(t[0], _mm512_setzero_ps()), x5 = next_lane(t[1], _mm512_setzero_ps());
        }
        __mmask16 m = (__mmask16)((1u << r) - 1);
        vf x0 = t[0], x1 = t[1], x2 = t[2], x3 = t[3];
        vf x1m4 = vmul(c4, x1), x2m4 = vmul(c4, x2), x1m2 = vmul(c2, x1), x3m2 = vmul(c2, x3);
        _mm512_mask_storeu_ps(v0 + j, m, vadd(vsub(vmul(c4, x0), vmul(c5, x2)), x4));
        _mm512_mask_storeu_ps(v0 + vs + j, m, vadd(vadd(vsub(vmul(m4, x1), x2m4), x3), x4));
        _mm512_mask_storeu_ps(v0 + 2 * vs + j, m, vadd(vsub(vsub(x1m4, x2m4), x3), x4));
        _mm512_mask_storeu_ps(v0 + 3 * vs + j, m, vadd(vadd(vsub(vmul(m2, x1), x2), x3m2), x4));
        _mm512_mask_storeu_ps(v0 + 4 * vs + j, m, vadd(vsub(vsub(x1m2, x2), x3m2), x4));
        _mm512_mask_storeu_ps(v0 + 5 * vs + j, m, vadd(vsub(x1m4, vmul(c5, x3)), x5));
    }
}
/* a[e] = the first r (1 .. 16) values of point e's row, p + e * s, zeros after them */
static inline void load_points(vf a[WN], const float *p, size_t s, int r) {
    const __mmask16 m = (__mmask16)((1u << r) - 1);
    for (int e = 0; e < WN; e++) a[e] = _mm512_maskz_loadu_ps(m, p + e * s);
}
/* tile_y for the whole tiles [0, n) of a row: o[4j .. 4j + 4) */
static void tile_y_span(float *o, const float *m0, size_t ms, int n, float bias, int relu) {
    const vf c2 = vset(2), c4 = vset(4), c8 = vset(8), bv = vset(bias), z = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        int r = n - j < 16 ? n - j : 16;
        vf a[WN];
        load_points(a, m0 + j, ms, r);
        const vf a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5];
        vf s12 = vadd(a1, a2), d12 = vsub(a1, a2), s34 = vadd(a3, a4), d34 = vsub(a3, a4), y[4], out[4];
        y[0] = vadd(vadd(vadd(a0, s12), s34), bv);
        y[1] = vadd(vadd(d12, vmul(c2, d34)), bv);
        y[2] = vadd(vadd(s12, vmul(c4, s34)), bv);
        y[3] = vadd(vadd(vadd(d12, vmul(c8, d34)), a5), bv);
        if (relu)
            for (int i = 0; i < 4; i++) y[i] = _mm512_max_ps(y[i], z); /* y > 0 ? y : 0, NaN and -0 included */
        interleave4(y, out);
        float *q = o + (size_t)WT * j;
        for (int i = 0; i < 4; i++) _mm512_mask_storeu_ps(q + 16 * i, range_mask(16 * i, 0, 4 * r), out[i]);
    }
}
/* tile_dm for the whole tiles [0, n) of a row of dy */
static void tile_dm_span(float *m0, size_t ms, const float *d, int n) {
    const vf c2 = vset(2), c4 = vset(4), c8 = vset(8);
    for (int j = 0; j < n; j += 16) {
        int r = n - j < 16 ? n - j : 16;
        const float *p = d + (size_t)WT * j;
        vf a[4], t[4];
        for (int i = 0; i < 4; i++) a[i] = _mm512_maskz_loadu_ps(range_mask(16 * i, 0, 4 * r), p + 16 * i);
        deinterleave4(a[0], a[1], a[2], a[3], t);
        __mmask16 m = (__mmask16)((1u << r) - 1);
        vf d0 = t[0], d1 = t[1], d2 = t[2], d3 = t[3], d1m2 = vmul(c2, d1), d2m4 = vmul(c4, d2), d3m8 = vmul(c8, d3);
        _mm512_mask_storeu_ps(m0 + j, m, d0);
        _mm512_mask_storeu_ps(m0 + ms + j, m, vadd(vadd(vadd(d0, d1), d2), d3));
        _mm512_mask_storeu_ps(m0 + 2 * ms + j, m, vsub(vadd(vsub(d0, d1), d2), d3));
        _mm512_mask_storeu_ps(m0 + 3 * ms + j, m, vadd(vadd(vadd(d0, d1m2), d2m4), d3m8));
        _mm512_mask_storeu_ps(m0 + 4 * ms + j, m, vsub(vadd(vsub(d0, d1m2), d2m4), d3m8));
        _mm512_mask_storeu_ps(m0 + 5 * ms + j, m, d3);
    }
}
/* one din row: padded positions [i0, i1) of B dV (row d holds position i at d[i - i0]) */
static void din_row(float *d, const float *v0, size_t vs, int ntile, int i0, int i1, int set) {
    const vf c2 = vset(2), c4 = vset(4), c5 = vset(5), m4 = vset(-4), m5 = vset(-5);
    vf pe4 = _mm512_setzero_ps(), pe5 = _mm512_setzero_ps();
    for (int j = 0; j < ntile; j += 16) {
        int r = ntile - j < 16 ? ntile - j : 16;
        vf a[WN];
        load_points(a, v0 + j, vs, r);
        const vf a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5];
        vf a2m4 = vmul(c4, a2), a3m2 = vmul(c2, a3), a4m2 = vmul(c2, a4);
        vf y[4], out[4];
        y[0] = vmul(c4, a0);
        y[1] = vadd(vadd(vsub(vadd(vmul(m4, a1), a2m4), a3m2), a4m2), vmul(c4, a5));
        y[2] = vsub(vsub(vsub(vsub(vmul(m5, a0), vmul(c4, a1)), a2m4), a3), a4);
        y[3] = vsub(vsub(vadd(vsub(a1, a2), a3m2), a4m2), vmul(c5, a5));
        vf e4 = vadd(vadd(vadd(vadd(a0, a1), a2), a3), a4), e5 = a5;
        /* position 4j gets the previous tile's e4 added, 4j + 1 its e5 (none before tile 0); in a
         * last partial block, lane r is the row's end: 0 + the last tile's e4, e5 */
        __mmask16 add = j ? 0xFFFF : 0xFFFE;
        y[0] = _mm512_mask_add_ps(y[0], add, y[0], prev_lane(e4, pe4));
        y[1] = _mm512_mask_add_ps(y[1], add, y[1], prev_lane(e5, pe5));
        pe4 = e4, pe5 = e5;
        interleave4(y, out);
        long s = (long)WT * j;
        for (int i = 0; i < 4; i++) {
            __mmask16 mi = range_mask(s + 16 * i, i0, i1);
            float *q = d + (s + 16 * i - i0);
            if (set)
                _mm512_mask_storeu_ps(q, mi, out[i]);
            else
                _mm512_mask_storeu_ps(q, mi, _mm512_add_ps(_mm512_maskz_loadu_ps(mi, q), out[i]));
        }
        if (r == 16 && j + 16 == ntile) /* the row's end after a whole block */
            for (int k = 0; k < 2; k++) {
                long pos = (long)WT * ntile + k;
                if (pos < i0 || pos >= i1) continue;
                float val = 0.0f + (k ? lane15(e5) : lane15(e4));
                if (set)
                    d[pos - i0] = val;
                else
                    d[pos - i0] += val;
            }
    }
}
#endif

typedef struct {
    int B, Cin, Lin, Cout, pad, Lout, ntile;
    int spc, ncol; /* samples per chunk of the backward, columns of a chunk (spc * ntile) */
    size_t us, vs, ms;     /* floats between the points' matrices of U, V, M */
    size_t ts;             /* one point's V transposed (ncol, Cin) for the weight gradient; 0: none */
    size_t slot;           /* one thread's V, M and V^T */
} wgeom;

static inline size_t lines(size_t n) { return (n + 15) / 16 * 16; }

/* Columns per chunk aimed at: enough for an efficient GEMM, few enough that a chunk's V and M
 * stay in the core's L2 cache between the transforms and the products. */
enum { CHUNK_COLS = 160 };
/* Smaller batches' forwards go to the direct kernels (measured at 2 threads: faster up to a
 * batch of 2, slower from 4 on). */
enum { WINO_MIN_B = 4 };
/* The weight gradient dU[e] = dM[e] V[e]^T: oneDNN's 'N', 'T' sgemm is slow when V has few rows
 * (1 thread, hot cache, 6 points: Cout = Cin = 64 and 252 columns 141 GFLOP/s, against 166
 * for transposing V[e] and an 'N', 'N' product, transposes included; Cin = 128 or 256: 'N', 'T'
 * 3 to 7% faster). Up to this many input channels V[e] is transposed first. */
enum { WT_CIN_MAX = 64 };

static wgeom geometry(int B, int Cin, int Lin, int Cout, int pad) {
    wgeom g;
    g.B = B, g.Cin = Cin, g.Lin = Lin, g.Cout = Cout, g.pad = pad;
    g.Lout = conv1d_out_len(Lin, 3, 1, pad);
    g.ntile = g.Lout > 0 ? (g.Lout + WT - 1) / WT : 0;
    g.spc = g.ntile ? (CHUNK_COLS + g.ntile - 1) / g.ntile : 1;
    if (g.spc > B) g.spc = B;
    if (g.spc < 1) g.spc = 1;
    g.ncol = g.spc * g.ntile;
    /* a cache line more than whole lines: the 6 points of one tile fall into different sets */
    g.us = lines((size_t)Cout * Cin) + 16;
    g.vs = lines((size_t)Cin * g.ncol) + 16;
    g.ms = lines((size_t)Cout * g.ncol) + 16;
#if defined(__AVX512F__)
    g.ts = Cin <= WT_CIN_MAX ? lines((size_t)Cin * g.ncol) + 16 : 0;
#else
    g.ts = 0; /* measured with the AVX-512 transpose only */
#endif
    g.slot = WN * (g.vs + g.ms) + g.ts;
    return g;
}

int conv1d_winograd_applies(int Cin, int Cout, int K, int stride, int groups) {
    return K == 3 && stride == 1 && groups == 1 && Cin >= 8 && Cout >= 8;
}

static int max_threads(void) {
    int nt = omp_get_max_threads();
    return nt < 1 ? 1 : nt;
}

/* U, then per thread: dU and a slot (V, M) */
size_t conv1d_winograd_scratch_floats(int B, int Cin, int Lin, int Cout, int pad) {
    wgeom g = geometry(B, Cin, Lin, Cout, pad);
    if (g.Lout <= 0) return 0;
    return WN * g.us + (size_t)max_threads() * (WN * g.us + g.slot) + 16;
}

typedef struct {
    float *u, *du, *slots;
} wmem;

static int carve(const nn_ctx *ctx, const wgeom *g, wmem *mem, int nt) {
    if (!ctx || !ctx->scratch || ((uintptr_t)ctx->scratch & 3)) return 0;
    size_t skip = (size_t)((64 - ((uintptr_t)ctx->scratch & 63)) & 63) / sizeof(float);
    if (skip + WN * g->us + (size_t)nt * (WN * g->us + g->slot) > ctx->scratch_floats) return 0;
    float *p = ctx->scratch + skip;
    mem->u = p, p += WN * g->us;
    mem->du = p, p += (size_t)nt * WN * g->us;
    mem->slots = p;
    return 1;
}

/* U[e] (Cout, Cin) = G w, for the (output, input) channel pairs [r.begin, r.end) */
static void weight_transform_range(float *u, const float *w, const wgeom *g, mrm_range r) {
    for (size_t oi = (size_t)r.begin; oi < (size_t)r.end; oi++) {
        const float *wk = w + oi * 3;
        for (int e = 0; e < WN; e++) u[e * g->us + oi] = G3[e][0] * wk[0] + G3[e][1] * wk[1] + G3[e][2] * wk[2];
    }
}

/* Thread th of team's share of the weight transform (each pair's values do not depend on who
 * computes them); the whole of it for a team of 1. */
static void weight_transform(float *u, const float *w, const wgeom *g, int team, int th) {
    weight_transform_range(u, w, g, mrm_partition((long long)g->Cout * g->Cin, team, th));
}

/* A chunk is the columns [col0, col0 + ncols) of the batch (col = sample * ntile + tile); it may
 * begin or end inside a sample. Its run of one sample that starts at column c: tiles j0 .. j0+nj
 * of sample b, at column off of the chunk. */
typedef struct {
    int b, j0, nj;
    size_t off;
} sample_run;

static sample_run run_at(const wgeom *g, int c, int col0, int end) {
    sample_run r;
    r.b = c / g->ntile, r.j0 = c % g->ntile;
    r.nj = g->ntile - r.j0 < end - c ? g->ntile - r.j0 : end - c;
    r.off = (size_t)(c - col0);
    return r;
}

/* V[e] (Cin, ncol) = BT x for the chunk's columns [col0, col0 + ncols). The tiles whose 6
 * inputs lie inside the row read it in place; the few at its ends take the padding as zeros. */
static inline void tile_v(float *v0, size_t vs, int j, const float *t) {
    float x0 = t[0], x1 = t[1], x2 = t[2], x3 = t[3], x4 = t[4], x5 = t[5];
    v0[j] = 4 * x0 - 5 * x2 + x4;
    v0[vs + j] = -4 * x1 - 4 * x2 + x3 + x4;
    v0[2 * vs + j] = 4 * x1 - 4 * x2 - x3 + x4;
    v0[3 * vs + j] = -2 * x1 - x2 + 2 * x3 + x4;
    v0[4 * vs + j] = 2 * x1 - x2 - 2 * x3 + x4;
    v0[5 * vs + j] = 4 * x1 - 5 * x3 + x5;
}

static void input_transform(float *v, const float *in, const wgeom *g, int col0, int ncols) {
    const size_t vs = g->vs;
    for (int c = col0, nj; c < col0 + ncols; c += nj) {
        sample_run r = run_at(g, c, col0, col0 + ncols);
        const int b = r.b, j0 = r.j0;
        const size_t off = r.off;
        nj = r.nj;
        /* tile j of the run reads x[base + 4j .. base + 4j + 5]: inside the row for j in [ja, jb) */
        const int base = WT * j0 - g->pad;
        int ja = base >= 0 ? 0 : (-base + WT - 1) / WT;
        int jb = g->Lin - WN - base >= 0 ? (g->Lin - WN - base) / WT + 1 : 0;
        if (ja > nj) ja = nj;
        if (jb > nj) jb = nj;
        if (jb < ja) jb = ja;
        for (int ci = 0; ci < g->Cin; ci++) {
            const float *x = in + ((size_t)b * g->Cin + ci) * g->Lin;
            float *v0 = v + (size_t)ci * g->ncol + off;
#if defined(__AVX512F__)
            tile_v_span(v0, vs, x + base, ja, jb);
#else
#pragma omp simd
            for (int j = ja; j < jb; j++) tile_v(v0, vs, j, x + (base + WT * j));
#endif
            for (int j = 0; j < nj; j++) {
                if (j == ja) j = jb; /* past the inside tiles */
                if (j >= nj) break;
                float t[WN];
                for (int i = 0; i < WN; i++) {
                    int p = base + WT * j + i;
                    t[i] = p >= 0 && p < g->Lin ? x[p] : 0.0f;
                }
                tile_v(v0, vs, j, t);
            }
        }
    }
}

/* The outputs of the chunk's columns [col0, col0 + ncols) = act(AT M + bias), written in place
 * (a tile that runs past Lout through a small buffer). */
static inline void tile_y(float *y, const float *m0, size_t ms, int j, float bv, int relu) {
    float a0 = m0[j], a1 = m0[ms + j], a2 = m0[2 * ms + j], a3 = m0[3 * ms + j], a4 = m0[4 * ms + j],
          a5 = m0[5 * ms + j];
    float s12 = a1 + a2, d12 = a1 - a2, s34 = a3 + a4, d34 = a3 - a4;
    float y0 = a0 + s12 + s34 + bv, y1 = d12 + 2 * d34 + bv, y2 = s12 + 4 * s34 + bv, y3 = d12 + 8 * d34 + a5 + bv;
    if (relu) {
        y0 = y0 > 0.0f ? y0 : 0.0f, y1 = y1 > 0.0f ? y1 : 0.0f;
        y2 = y2 > 0.0f ? y2 : 0.0f, y3 = y3 > 0.0f ? y3 : 0.0f;
    }
    y[0] = y0, y[1] = y1, y[2] = y2, y[3] = y3;
}

static void output_transform(float *out, const float *m, const float *bias, int relu, const wgeom *g, int col0,
                             int ncols) {
    const size_t ms = g->ms;
    for (int c = col0, nj; c < col0 + ncols; c += nj) {
        sample_run r = run_at(g, c, col0, col0 + ncols);
        const int b = r.b, j0 = r.j0;
        const size_t off = r.off;
        nj = r.nj;
        int t0 = WT * j0, nout = g->Lout - t0 < nj * WT ? g->Lout - t0 : nj * WT, full = nout / WT;
        for (int co = 0; co < g->Cout; co++) {
            const float *m0 = m + (size_t)co * g->ncol + off;
            float bv = bias ? bias[co] : 0.0f;
            float *o = out + ((size_t)b * g->Cout + co) * g->Lout + t0;
#if defined(__AVX512F__)
            tile_y_span(o, m0, ms, full, bv, relu);
#else
            if (relu) {
#pragma omp simd
                for (int j = 0; j < full; j++) tile_y(o + WT * j, m0, ms, j, bv, 1);
            } else {
#pragma omp simd
                for (int j = 0; j < full; j++) tile_y(o + WT * j, m0, ms, j, bv, 0);
            }
#endif
            if (full < nj) { /* the last tile, past Lout */
                float y[WT];
                tile_y(y, m0, ms, full, bv, relu);
                for (int t = WT * full; t < nout; t++) o[t] = y[t - WT * full];
            }
        }
    }
}

/* Below this many columns (sample, tile) a thread's GEMMs are mostly call overhead. */
enum { MIN_COLS_PER_THREAD = 16 };

/* Threads for the forward: its columns (sample, tile) shared out in contiguous runs, one run
 * per thread (mrm_partition), so every thread has work from a batch of one record up. */
static int forward_threads(const wgeom *g, int max_nt) {
    double macs = (double)g->B * g->Cout * g->Cin * g->Lout * 3;
    if (macs < NN_PARALLEL_MIN_MACS) return 1;
    return mrm_partition_parts((long long)g->B * g->ntile, max_nt, MIN_COLS_PER_THREAD);
}

/* Threads for the backward: whole samples per thread (the din tiles of a sample overlap and
 * are added by one thread; dU is summed per thread). */
static int backward_threads(const wgeom *g, int max_nt) {
    double macs = (double)g->B * g->Cout * g->Cin * g->Lout * 3;
    if (macs < NN_PARALLEL_MIN_MACS) return 1;
    return mrm_partition_parts(g->B, max_nt, 1);
}

int conv1d_winograd_threads(int B, int Cin, int Lin, int Cout, int pad, int max_threads, int backward) {
    wgeom g = geometry(B, Cin, Lin, Cout, pad);
    if (g.Lout <= 0 || max_threads < 1) return 1;
    return backward ? backward_threads(&g, max_threads) : forward_threads(&g, max_threads);
}

/* Thread th of nt: its run of the n units, cut into pieces of at most cap units (even sizes);
 * *pieces of them; piece k is [*first + ..) per mrm_partition of the run. */
static mrm_range run_of(long long n, int nt, int th) { return mrm_partition(n, nt, th); }
static int pieces_of(mrm_range r, long long cap) {
    long long len = r.end - r.begin;
    return len > 0 ? (int)((len + cap - 1) / cap) : 0;
}
static mrm_range piece_of(mrm_range r, int pieces, int k) {
    mrm_range q = mrm_partition(r.end - r.begin, pieces, k);
    q.begin += r.begin, q.end += r.begin;
    return q;
}

/* The forward of the columns [c0, c1) of the batch in pieces of at most g->ncol columns. */
static void forward_columns(float *out, const float *in, const float *bias, int relu, const wgeom *g, const float *u,
                            float *v, mrm_range run) {
    float *m = v + WN * g->vs;
    int np = pieces_of(run, g->ncol);
    for (int k = 0; k < np; k++) {
        mrm_range q = piece_of(run, np, k);
        int col0 = (int)q.begin, ncol = (int)(q.end - q.begin);
        input_transform(v, in, g, col0, ncol);
        for (int e = 0; e < WN; e++)
            nn_sgemm('N', 'N', g->Cout, ncol, g->Cin, 1.0f, u + e * g->us, g->Cin, v + e * g->vs, g->ncol, 0.0f,
                     m + e * g->ms, g->ncol);
        output_transform(out, m, bias, relu, g, col0, ncol);
    }
}

int conv1d_forward_winograd(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu,
                            int B, int Cin, int Lin, int Cout, int pad) {
    wgeom g = geometry(B, Cin, Lin, Cout, pad);
    wmem mem;
    int nt = forward_threads(&g, max_threads());
    if (B < WINO_MIN_B) return 0;
    if (g.Lout <= 0 || !carve(ctx, &g, &mem, nt)) return 0;
    long long ncols = (long long)B * g.ntile;
    if (nt < 2) {
        weight_transform(mem.u, w, &g, 1, 0);
        forward_columns(out, in, bias, relu, &g, mem.u, mem.slots, run_of(ncols, 1, 0));
        return 1;
    }
#pragma omp parallel num_threads(nt)
    {
        /* the team may be smaller than asked for: share out over the threads there are */
        int th = omp_get_thread_num(), team = omp_get_num_threads();
        weight_transform(mem.u, w, &g, team, th);
#pragma omp barrier
        forward_columns(out, in, bias, relu, &g, mem.u, mem.slots + (size_t)th * g.slot, run_of(ncols, team, th));
    }
    return 1;
}

/* dM[e] (Cout, ncol) = A dy for every output tile of the chunk (outputs past Lout count as 0):
 * the whole tiles read dy in place, a last partial one through a small zero-padded buffer. */
static inline void tile_dm(float *m0, size_t ms, int j, const float *d) {
    float d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
    /* A = AT^T: point e gets sum_t AT[t][e] d_t */
    m0[j] = d0;
    m0[ms + j] = d0 + d1 + d2 + d3;
    m0[2 * ms + j] = d0 - d1 + d2 - d3;
    m0[3 * ms + j] = d0 + 2 * d1 + 4 * d2 + 8 * d3;
    m0[4 * ms + j] = d0 - 2 * d1 + 4 * d2 - 8 * d3;
    m0[5 * ms + j] = d3;
}

static void dout_transform(float *m, const float *dout, const wgeom *g, int b0, int nb) {
    const size_t ms = g->ms;
    const int full = g->Lout / WT;
    for (int bb = 0; bb < nb; bb++)
        for (int co = 0; co < g->Cout; co++) {
            const float *d = dout + ((size_t)(b0 + bb) * g->Cout + co) * g->Lout;
            float *m0 = m + (size_t)co * g->ncol + (size_t)bb * g->ntile;
#if defined(__AVX512F__)
            tile_dm_span(m0, ms, d, full);
#else
#pragma omp simd
            for (int j = 0; j < full; j++) tile_dm(m0, ms, j, d + WT * j);
#endif
            if (full < g->ntile) {
                float t[WT] = {0.0f, 0.0f, 0.0f, 0.0f};
                for (int i = WT * full; i < g->Lout; i++) t[i - WT * full] = d[i];
                tile_dm(m0, ms, full, t);
            }
        }
}

/* d[i] += mask[i] > 0 ? add[i] : 0 for i < n (relu_backward), on a row just written */
static void add_masked_row(float *d, const float *add, const float *mask, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) d[i] += mask[i] > 0.0f ? add[i] : 0.0f;
}

/* din rows of the chunk's samples += B dV (set: = B dV), the tiles' 6 inputs overlapping by 2;
 * then, with add, each row += add where mask > 0 (while the row is in cache). */
static void din_transform(float *din, const float *v, const wgeom *g, int b0, int nb, int set, const float *add,
                          const float *mask) {
#if defined(__AVX512F__)
    int i1 = g->Lin + g->pad < g->ntile * WT + 2 ? g->Lin + g->pad : g->ntile * WT + 2;
    for (int bb = 0; bb < nb; bb++)
        for (int ci = 0; ci < g->Cin; ci++) {
            size_t row = ((size_t)(b0 + bb) * g->Cin + ci) * g->Lin;
            din_row(din + row, v + (size_t)ci * g->ncol + (size_t)bb * g->ntile, g->vs, g->ntile, g->pad, i1, set);
            if (add) add_masked_row(din + row, add + row, mask + row, g->Lin);
        }
#else
    int nt4 = g->ntile * WT + 2;
    float acc[nt4 + 16], e4[nt4 + 16], e5[nt4 + 16];
    for (int bb = 0; bb < nb; bb++)
        for (int ci = 0; ci < g->Cin; ci++) {
            const float *v0 = v + (size_t)ci * g->ncol + (size_t)bb * g->ntile;
            /* tile j adds to padded inputs 4j .. 4j+5: its first 4 into acc[4j..4j+3], its last 2
             * (which overlap the next tile's first 2) kept apart and added after */
#pragma omp simd
            for (int j = 0; j < g->ntile; j++) {
                float a0 = v0[j], a1 = v0[g->vs + j], a2 = v0[2 * g->vs + j], a3 = v0[3 * g->vs + j],
                      a4 = v0[4 * g->vs + j], a5 = v0[5 * g->vs + j];
                /* B = BT^T: input i gets sum_e BT[e][i] a_e */
                acc[WT * j] = 4 * a0;
                acc[WT * j + 1] = -4 * a1 + 4 * a2 - 2 * a3 + 2 * a4 + 4 * a5;
                acc[WT * j + 2] = -5 * a0 - 4 * a1 - 4 * a2 - a3 - a4;
                acc[WT * j + 3] = a1 - a2 + 2 * a3 - 2 * a4 - 5 * a5;
                e4[j] = a0 + a1 + a2 + a3 + a4;
                e5[j] = a5;
            }
            acc[nt4 - 2] = 0.0f, acc[nt4 - 1] = 0.0f;
            for (int j = 0; j < g->ntile; j++) {
                acc[WT * j + 4] += e4[j];
                acc[WT * j + 5] += e5[j];
            }
            float *d = din + ((size_t)(b0 + bb) * g->Cin + ci) * g->Lin;
            /* padded position i is input i - pad; the tiles cover every input (nt4 >= Lin + pad) */
            int i0 = g->pad, i1 = g->Lin + g->pad < nt4 ? g->Lin + g->pad : nt4;
            if (set)
                memcpy(d, acc + i0, (size_t)(i1 - i0) * sizeof(float));
            else
#pragma omp simd
                for (int i = i0; i < i1; i++) d[i - i0] += acc[i];
            if (add) {
                size_t row = ((size_t)(b0 + bb) * g->Cin + ci) * g->Lin;
                add_masked_row(d, add + row, mask + row, g->Lin);
            }
        }
#endif
}

/* t (n, m), row stride ldt = a^T for a (m, n), row stride lda */
static void transpose(float *t, size_t ldt, const float *a, size_t lda, int m, int n) {
    int i0 = 0;
#if defined(__AVX512F__)
    for (; i0 + 16 <= m; i0 += 16) {
        int j0 = 0;
        for (; j0 + 16 <= n; j0 += 16) nn_transpose16(a + (size_t)i0 * lda + j0, lda, t + (size_t)j0 * ldt + i0, ldt);
        for (int i = i0; i < i0 + 16; i++)
            for (int j = j0; j < n; j++) t[(size_t)j * ldt + i] = a[(size_t)i * lda + j];
    }
#endif
    for (; i0 < m; i0 += 8) {
        int ie = i0 + 8 < m ? i0 + 8 : m;
        for (int j0 = 0; j0 < n; j0 += 64) {
            int je = j0 + 64 < n ? j0 + 64 : n;
            for (int j = j0; j < je; j++)
                for (int i = i0; i < ie; i++) t[(size_t)j * ldt + i] = a[(size_t)i * lda + j];
        }
    }
}

/* dw (Cout, Cin, 3) += G^T dU for the channel pairs of r, dU the sum of the nt threads' partial
 * sums (in thread order). A block of pairs at a time, each thread's partial read as a contiguous
 * row (a read of 16 threads' partials pair by pair, 96 strided loads a pair, cost as much as a
 * thread's share of the product at 16 threads); every value is summed in the same order as
 * pair by pair. */
static void dw_from_partials(float *dw, const float *du, const wgeom *g, int nt, mrm_range r) {
    enum { BLK = 64 };
    float d[WN][BLK], s[BLK];
    for (long long o0 = r.begin; o0 < r.end; o0 += BLK) {
        const int n = r.end - o0 < BLK ? (int)(r.end - o0) : BLK;
        for (int e = 0; e < WN; e++) {
            float *de = d[e];
            for (int i = 0; i < n; i++) de[i] = 0.0f;
            for (int t = 0; t < nt; t++) {
                const float *q = du + (size_t)t * WN * g->us + e * g->us + (size_t)o0;
                for (int i = 0; i < n; i++) de[i] += q[i];
            }
        }
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < n; i++) s[i] = 0.0f;
            for (int e = 0; e < WN; e++) {
                const float gk = G3[e][k];
                for (int i = 0; i < n; i++) s[i] += gk * d[e][i];
            }
            for (int i = 0; i < n; i++) dw[((size_t)o0 + i) * 3 + k] += s[i];
        }
    }
}

static int backward_winograd(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int pad, int set, const float *add,
                             const float *mask) {
    if (!din && !dw) return 1;
    wgeom g = geometry(B, Cin, Lin, Cout, pad);
    wmem mem;
    int nt = backward_threads(&g, max_threads());
    if (g.Lout <= 0 || !carve(ctx, &g, &mem, nt)) return 0;
#pragma omp parallel num_threads(nt)
    {
        int th = omp_get_thread_num(), team = omp_get_num_threads();
        if (din) {
            weight_transform(mem.u, w, &g, team, th);
#pragma omp barrier
        }
        float *v = mem.slots + (size_t)th * g.slot, *m = v + WN * g.vs, *du = mem.du + (size_t)th * WN * g.us;
        int first = 1; /* this thread's dU partial sums start at its first piece */
        mrm_range run = run_of(B, team, th);
        int np = pieces_of(run, g.spc);
        for (int k = 0; k < np; k++) {
            mrm_range q = piece_of(run, np, k);
            int b0 = (int)q.begin, nb = (int)(q.end - q.begin), ncol = nb * g.ntile;
            dout_transform(m, dout, &g, b0, nb);
            if (dw) {
                input_transform(v, in, &g, b0 * g.ntile, ncol);
                /* dU[e] += dM[e] V[e]^T */
                float *vt = m + WN * g.ms;
                for (int e = 0; e < WN; e++)
                    if (g.ts) { /* dM[e] (V[e]^T stored): an 'N', 'N' product */
                        transpose(vt, (size_t)Cin, v + e * g.vs, g.ncol, Cin, ncol);
                        nn_sgemm('N', 'N', Cout, Cin, ncol, 1.0f, m + e * g.ms, g.ncol, vt, Cin, first ? 0.0f : 1.0f,
                                 du + e * g.us, Cin);
                    } else
                        nn_sgemm('N', 'T', Cout, Cin, ncol, 1.0f, m + e * g.ms, g.ncol, v + e * g.vs, g.ncol,
                                 first ? 0.0f : 1.0f, du + e * g.us, Cin);
                first = 0;
            }
            if (din) {
                for (int e = 0; e < WN; e++)
                    nn_sgemm('T', 'N', Cin, ncol, Cout, 1.0f, mem.u + e * g.us, Cin, m + e * g.ms, g.ncol, 0.0f,
                             v + e * g.vs, g.ncol);
                din_transform(din, v, &g, b0, nb, set, add, mask);
            }
        }
        if (first && dw) /* no piece: a zero partial sum */
            for (int e = 0; e < WN; e++) memset(du + e * g.us, 0, (size_t)Cout * Cin * sizeof(float));
        if (dw) { /* every partial sum complete: dw += G^T (their sum, in thread order), pairs shared out */
#pragma omp barrier
            dw_from_partials(dw, mem.du, &g, team, mrm_partition((long long)Cout * Cin, team, th));
        }
    }
    return 1;
}

int conv1d_backward_winograd(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int pad) {
    return backward_winograd(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, pad, 0, NULL, NULL);
}

int conv1d_backward_winograd_set(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                                 const float *w, int B, int Cin, int Lin, int Cout, int pad) {
    return conv1d_backward_winograd_set_plus(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, pad, NULL, NULL);
}

int conv1d_backward_winograd_set_plus(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                                      const float *w, int B, int Cin, int Lin, int Cout, int pad, const float *add,
                                      const float *mask) {
    wgeom g = geometry(B, Cin, Lin, Cout, pad);
    if (!din || (add && !mask) || g.Lout <= 0 || (size_t)g.ntile * WT + 2 < (size_t)Lin + pad) return 0;
    return backward_winograd(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, pad, 1, add, mask);
}
