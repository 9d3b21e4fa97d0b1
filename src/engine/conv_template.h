/* The direct convolution, instantiated by kern_*.c with
 *   VW  floats per vector, NV vectors per tile row, CO output channels per tile,
 *   FN  the function's name.
 * Each tile is CO output channels x T = NV*VW time steps kept in registers; per (input
 * channel, tap) NV input vectors are loaded and CO weights broadcast (CO*NV multiply-adds).
 * The input is first copied, zero-padded, into `stride` phase rows per channel (phase r holds
 * padded samples r, r + s, r + 2s, ...), so that every tap reads contiguous vectors at any
 * stride. */
#include <string.h>

#include "engine/engine_image.h"
#include "engine/kernels.h"
#include "engine/wino.h"
#include "engine/fft.h"

#include <math.h>
#define M_PI_ 3.14159265358979323846

#define T (NV * VW)

/* One phase row of a channel, zero-padded: row[u] = src[s u + ph - pad] where that lies in
 * [0, lin), zero elsewhere, for u < Lx (the direct, Winograd and FFT kernels' input rows). */
static inline void phase_row(float *row, size_t Lx, const float *src, int lin, int s, int ph, int pad) {
    long long u0 = pad > ph ? ((long long)pad - ph + s - 1) / s : 0;
    const long long last = (long long)lin - 1 - ph + pad; /* s u <= last: u inside the input */
    long long u1 = last < 0 ? 0 : last / s + 1;           /* the first u past it */
    if (u0 > (long long)Lx) u0 = (long long)Lx;
    if (u1 > (long long)Lx) u1 = (long long)Lx;
    if (u1 < u0) u1 = u0;
    memset(row, 0, (size_t)u0 * sizeof(float));
    if (s == 1) memcpy(row + u0, src + (u0 + ph - pad), (size_t)(u1 - u0) * sizeof(float));
    else {
        const float *q = src + (ph - pad + s * u0);
        float *xo = row + u0;
        for (long long n = u1 - u0; n > 0; n--, q += s) *xo++ = *q;
    }
    memset(row + u1, 0, (Lx - (size_t)u1) * sizeof(float));
}

#ifdef FN
typedef float vf __attribute__((vector_size(VW * sizeof(float))));

static inline vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One tile: acc (CO x T) = sum over i < cig, k < K of W[i, k, o0 + c] * X_i[phase k%s][t0 + k/s + t]. */
static inline __attribute__((always_inline)) void tile_ld(float *tmp, size_t ld, const float *X, size_t xi_stride,
                                                           size_t Lq, const float *W, int cog, int cig, int K, int s) {
    vf acc[CO][NV];
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) acc[c][v] = (vf){0};
    for (int i = 0; i < cig; i++) {
        const float *xi = X + (size_t)i * xi_stride;
        const float *wi = W + (size_t)i * K * cog;
        for (int k = 0; k < K; k++) {
            const float *xr = xi + (size_t)(k % s) * Lq + k / s;
            const float *wr = wi + (size_t)k * cog;
            vf xv[NV];
            for (int v = 0; v < NV; v++) xv[v] = vload(xr + v * VW);
            for (int c = 0; c < CO; c++) {
                float wc = wr[c];
                for (int v = 0; v < NV; v++) acc[c][v] += wc * xv[v];
            }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) memcpy(tmp + c * ld + v * VW, &acc[c][v], sizeof(vf));
}

/* The same into tmp (CO x T). */
static inline __attribute__((always_inline)) void tile(float *tmp, const float *X, size_t xi_stride, size_t Lq,
                                                        const float *W, int cog, int cig, int K, int s) {
    tile_ld(tmp, T, X, xi_stride, Lq, W, cog, cig, K, s);
}

static inline size_t conv_lq(int lout, int K, int s) {
    return (size_t)((lout + ENG_T_MAX - 1) / ENG_T_MAX * ENG_T_MAX + (K - 1) / s + 1);
}

/* The padded phase rows of input channels [i0, i1). */
static void pad_rows(float *X, const float *in, int i0, int i1, int lin, int K, int s, int pad, int lout) {
    const size_t Lq = conv_lq(lout, K, s);
    for (int i = i0; i < i1; i++) {
        const float *src = in + (size_t)i * lin;
        for (int r = 0; r < s; r++) phase_row(X + ((size_t)i * s + r) * Lq, Lq, src, lin, s, r, pad);
    }
}

/* Output tiles [u0, u1) of the order (group, channel tile, time tile) (eng_conv_tile_rect),
 * from the padded rows X. Every output's sum runs over (input channel, tap) in the same order
 * whichever tile holds it, so any split of the tiles gives the same outputs bit for bit. */
static void conv_tiles(float *out, const float *res, const float *wp, const float *bias, int relu, int cin, int cout,
                       int K, int s, int groups, int lout, const float *X, long long u0, long long u1) {
    const int cig = cin / groups, cog = cout / groups;
    const size_t Lq = conv_lq(lout, K, s);
    float tmp[CO * T] __attribute__((aligned(64)));
    for (long long u = u0; u < u1; u++) {
        eng_rect q = eng_conv_tile_rect(u, cout, groups, lout, CO, T);
        int g = q.g, o0 = q.o0 - g * cog, t0 = q.t0, nco = q.o1 - q.o0, nt = q.t1 - q.t0;
        const float *Xg = X + (size_t)g * cig * s * Lq;
        const float *Wg = wp + (size_t)g * cig * K * cog;
        if (s == 1) tile(tmp, Xg + t0, (size_t)s * Lq, Lq, Wg + o0, cog, cig, K, 1);
        else if (s == 2) tile(tmp, Xg + t0, (size_t)s * Lq, Lq, Wg + o0, cog, cig, K, 2);
        else tile(tmp, Xg + t0, (size_t)s * Lq, Lq, Wg + o0, cog, cig, K, s);
        for (int c = 0; c < nco; c++) {
            int o = g * cog + o0 + c;
            float b = bias ? bias[o] : 0.0f;
            float *dst = out + (size_t)o * lout + t0;
            const float *a = tmp + c * T;
            if (res) {
                const float *rr = res + (size_t)o * lout + t0;
                if (relu)
                    for (int t = 0; t < nt; t++) {
                        float y = a[t] + b + rr[t];
                        dst[t] = y > 0.0f ? y : 0.0f;
                    }
                else
                    for (int t = 0; t < nt; t++) dst[t] = a[t] + b + rr[t];
            } else if (relu) {
                for (int t = 0; t < nt; t++) {
                    float y = a[t] + b;
                    dst[t] = y > 0.0f ? y : 0.0f;
                }
            } else {
                for (int t = 0; t < nt; t++) dst[t] = a[t] + b;
            }
        }
    }
}

void FN(float *out, const float *in, const float *res, const float *wp, const float *bias, int relu, int cin,
        int lin, int cout, int K, int stride, int pad, int groups, int lout, float *scratch) {
    pad_rows(scratch, in, 0, cin, lin, K, stride, pad, lout);
    conv_tiles(out, res, wp, bias, relu, cin, cout, K, stride, groups, lout, scratch, 0,
               eng_conv_tiles(cout, groups, lout, CO, T));
}

/* The two halves of FN for a team of threads (kernels.h: eng_conv_pad_fn, eng_conv_tiles_fn). */
void ENG_CAT(FN, _pad)(float *X, const float *in, int i0, int i1, int lin, int K, int stride, int pad, int lout) {
    pad_rows(X, in, i0, i1, lin, K, stride, pad, lout);
}
void ENG_CAT(FN, _tiles)(float *out, const float *res, const float *wp, const float *bias, int relu, int cin,
                         int cout, int K, int stride, int groups, int lout, const float *X, long long u0, long long u1) {
    conv_tiles(out, res, wp, bias, relu, cin, cout, K, stride, groups, lout, X, u0, u1);
}
eng_tile ENG_CAT(FN, _tile)(void) { return (eng_tile){CO, T}; }

static inline void vstore_(float *p, vf v) { memcpy(p, &v, sizeof v); }
typedef int32_t vmask_any __attribute__((vector_size(VW * sizeof(int32_t))));

/* F(4,3)'s input transform of VW tiles: V[e][q] = sum_a BT6[e, a] x[4q + a] (a < 6), the rows
 * x[4q + a] being P_a[q] for a < 4 and P_{a-4}[q + 1] for a = 4, 5; e's row at v + e * vs. */
static inline __attribute__((always_inline)) void wino_in6(float *v, size_t vs, const float *P0, const float *P1,
                                                            const float *P2, const float *P3) {
    const vf x0 = vload(P0), x1 = vload(P1), x2 = vload(P2), x3 = vload(P3), x4 = vload(P0 + 1), x5 = vload(P1 + 1);
    /* eng_wino_bt6's rows written out (a table walk with its zero tests was not unrolled): each
     * row's terms in the order of a, as the table gives them */
    const float c23 = 2.0f / 3, c16 = 1.0f / 6, c12 = 1.0f / 12, c24 = 1.0f / 24;
    vf r0 = x0, r1 = c23 * x1, r2 = (-c23) * x1, r3 = (-c12) * x1, r4 = c12 * x1, r5 = 4.0f * x1;
    r0 = r0 + (-5.0f / 4) * x2, r1 = r1 + c23 * x2, r2 = r2 + c23 * x2, r3 = r3 + (-c24) * x2, r4 = r4 + (-c24) * x2;
    r1 = r1 + (-c16) * x3, r2 = r2 + c16 * x3, r3 = r3 + c12 * x3, r4 = r4 + (-c12) * x3, r5 = r5 + (-5.0f) * x3;
    r0 = r0 + (1.0f / 4) * x4, r1 = r1 + (-c16) * x4, r2 = r2 + (-c16) * x4, r3 = r3 + c24 * x4, r4 = r4 + c24 * x4;
    r5 = r5 + x5;
    vstore_(v, r0);
    vstore_(v + vs, r1);
    vstore_(v + 2 * vs, r2);
    vstore_(v + 3 * vs, r3);
    vstore_(v + 4 * vs, r4);
    vstore_(v + 5 * vs, r5);
}

/* The 4-way interleave of VW-float vectors: out[4q + t] = y_t[q] for q < VW (4 vectors out). */
#if VW == 4 || VW == 8 || VW == 16
typedef int32_t vmask __attribute__((vector_size(VW * sizeof(int32_t))));
#if VW == 16
#define ZIP_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define ZIP_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#elif VW == 8
#define ZIP_LO 0, 8, 1, 9, 2, 10, 3, 11
#define ZIP_HI 4, 12, 5, 13, 6, 14, 7, 15
#else
#define ZIP_LO 0, 4, 1, 5
#define ZIP_HI 2, 6, 3, 7
#endif
/* a two-vector shuffle with constant indices: clang's builtin takes them as a list, GCC's a mask */
#if defined(__clang__)
#define ZIP(a, b, IDX) __builtin_shufflevector(a, b, IDX)
#else
#define ZIP(a, b, IDX) __builtin_shuffle(a, b, (vmask){IDX})
#endif
static inline __attribute__((always_inline)) void interleave4(vf o[4], const vf y[4]) {
    const vf a0 = ZIP(y[0], y[2], ZIP_LO), a1 = ZIP(y[0], y[2], ZIP_HI);
    const vf b0 = ZIP(y[1], y[3], ZIP_LO), b1 = ZIP(y[1], y[3], ZIP_HI);
    o[0] = ZIP(a0, b0, ZIP_LO), o[1] = ZIP(a0, b0, ZIP_HI);
    o[2] = ZIP(a1, b1, ZIP_LO), o[3] = ZIP(a1, b1, ZIP_HI);
}
#undef ZIP
#undef ZIP_LO
#undef ZIP_HI
#else
static inline void interleave4(vf o[4], const vf y[4]) {
    float a[4 * VW], b[4 * VW];
    memcpy(a, y, sizeof a);
    for (int q = 0; q < VW; q++)
        for (int t = 0; t < 4; t++) b[4 * q + t] = a[t * VW + q];
    memcpy(o, b, sizeof b);
}
#endif

/* The output transform of one output channel: y[4q + t] = act(sum_e AT[t, e] M[e, q] + b [+ r]),
 * the terms in the order of e (zeros skipped), for q < ntile (4 ntile >= lout); M's rows at
 * M + e * ms, each at least ntile rounded up to VW long. n and at: constants where inlined. */
static inline __attribute__((always_inline)) void wino_out(float *dst, const float *res, const float *M, size_t ms,
                                                            float b, int relu, int lout, int ntile, const int n,
                                                            const float *at) {
    for (int q0 = 0; q0 < ntile; q0 += VW) {
        vf m[ENG_WINO_NMAX], y[4], o[4];
        for (int e = 0; e < n; e++) m[e] = vload(M + (size_t)e * ms + q0);
        for (int t = 0; t < 4; t++) {
            vf acc = at[t * n] * m[0];
            for (int e = 1; e < n; e++)
                if (at[t * n + e] != 0.0f) acc = acc + at[t * n + e] * m[e];
            y[t] = acc + b;
        }
        interleave4(o, y);
        const int t0 = 4 * q0;
        if (t0 + 4 * VW <= lout) {
            for (int j = 0; j < 4; j++) {
                vf v = o[j];
                if (res) v = v + vload(res + t0 + j * VW);
                if (relu) v = (vf)((vmask_any)v & (v > 0.0f)); /* NaN and -0 to 0, as the scalar form */
                vstore_(dst + t0 + j * VW, v);
            }
        } else {
            float tmp[4 * VW];
            memcpy(tmp, o, sizeof tmp);
            for (int t = t0; t < lout; t++) {
                float v = tmp[t - t0];
                if (res) v = v + res[t];
                dst[t] = relu && !(v > 0.0f) ? 0.0f : v;
            }
        }
    }
}

/* The Winograd convolution (engine/wino.h): the inputs transformed once per record into V
 * (n points x Ce channels x Lw tiles); per point, the small convolution over the tile axis (the
 * direct kernel's tile, J taps) into M (n points x cout x Lm tiles), one point's weights at a
 * time (they are the largest operand); then the output transform with bias, residual and ReLU. */
/* In two halves that a team shares: FNW_IN (one thread) the inputs' transforms into the scratch;
 * FNW_OUT the products and output transforms of output channels [o_begin, o_end) (o_begin a
 * multiple of CO, o_end too or cout: each tile's rows are its own; any split gives the same
 * bits). FNW is the two on one thread. */
#define FNW_IN ENG_CAT(FNW, _in)
#define FNW_OUT ENG_CAT(FNW, _out)
#define FNW_LAYOUT                                                                                                    \
    const eng_wino w = eng_wino_shape(cin, lout, K, s, ENG_T_MAX);                                                    \
    const int n = w.n, ntile = w.ntile;                                                                               \
    const size_t Lw = w.Lw, Lp = Lw + 1, vstride = (size_t)w.Ce * Lw, Lm = eng_wino_lm(ntile);                        \
    float *V = scratch, *M = V + (size_t)n * vstride, *P = M + (size_t)n * (cout + ENG_WINO_MROWS) * Lm;             \
    (void)ntile, (void)Lp, (void)P

void FNW_IN(const float *in, int cin, int lin, int cout, int K, int s, int pad, int lout, float *scratch) {
    FNW_LAYOUT;
    const float *bt = n == 6 ? &eng_wino_bt6[0][0] : &eng_wino_bt7[0][0];
    float *xr = P + ENG_WINO_M * Lp; /* one channel's phase ph, zero-padded: xr[u] = xpad[s u + ph] */
    const size_t Lx = ENG_WINO_M * Lp;
    for (int i = 0; i < cin; i++) {
        const float *src = in + (size_t)i * lin;
        for (int ph = 0; ph < s; ph++) {
            const int c = i * s + ph;
            float *P0 = P, *P1 = P + Lp, *P2 = P + 2 * Lp, *P3 = P + 3 * Lp;
            if (s == 1) {
                /* P_a[u] = xpad[4u + a] straight from the input row (xpad[j] = src[j - pad] for
                 * pad <= j < pad + lin, else 0): the tiles inside it copied, the edges tested */
                const long long lo = pad, hi = (long long)pad + lin;
                long long ua = (lo + 3) / 4, ub = hi >= 4 ? (hi - 4) / 4 + 1 : 0;
                if (ua > (long long)Lp) ua = (long long)Lp;
                if (ub > (long long)Lp) ub = (long long)Lp;
                if (ub < ua) ub = ua;
                for (long long u = 0; u < (long long)Lp; u++) {
                    if (u == ua) u = ub; /* the inside, below */
                    if (u >= (long long)Lp) break;
                    float t[4];
                    for (int a = 0; a < 4; a++) {
                        const long long j = 4 * u + a;
                        t[a] = j >= lo && j < hi ? src[j - lo] : 0.0f;
                    }
                    P0[u] = t[0], P1[u] = t[1], P2[u] = t[2], P3[u] = t[3];
                }
                for (long long u = ua; u < ub; u++) {
                    const float *q = src + (4 * u - lo);
                    P0[u] = q[0];
                    P1[u] = q[1];
                    P2[u] = q[2];
                    P3[u] = q[3];
                }
            } else {
                phase_row(xr, Lx, src, lin, s, ph, pad);
                for (size_t u = 0; u < Lp; u++) {
                    P0[u] = xr[4 * u];
                    P1[u] = xr[4 * u + 1];
                    P2[u] = xr[4 * u + 2];
                    P3[u] = xr[4 * u + 3];
                }
            }
            if (n == 6) { /* F(4,3): the six points in one pass, from six rows held in registers */
                float *vr = V + (size_t)c * Lw;
                for (size_t q = 0; q < Lw; q += VW) /* Lw: a multiple of ENG_T_MAX when J = 1 */
                    wino_in6(vr + q, vstride, P0 + q, P1 + q, P2 + q, P3 + q);
                continue;
            }
            for (int e = 0; e < n; e++) {
                float *vr = V + (size_t)e * vstride + (size_t)c * Lw;
                const float *b = bt + e * n;
                int first = 1;
                for (int a = 0; a < n; a++) {
                    const float ba = b[a];
                    if (ba == 0.0f) continue;
                    const float *pr = P + (size_t)(a % ENG_WINO_M) * Lp + a / ENG_WINO_M;
                    if (first)
                        for (size_t q = 0; q < Lw; q++) vr[q] = ba * pr[q];
                    else
                        for (size_t q = 0; q < Lw; q++) vr[q] += ba * pr[q];
                    first = 0;
                }
            }
        }
    }
}

void FNW_OUT(float *out, const float *res, const float *U, const float *bias, int relu, int cin, int cout, int K, int s,
             int lout, float *scratch, int o_begin, int o_end) {
    FNW_LAYOUT;
    const size_t ustride = (size_t)w.Ce * w.J * cout + ENG_W_TAIL;
    const size_t mstride = (size_t)(cout + ENG_WINO_MROWS) * Lm; /* rows past cout: the last block's spill */
    for (int e = 0; e < n; e++) {
        const float *Ve = V + (size_t)e * vstride, *Ue = U + (size_t)e * ustride;
        float *Me = M + (size_t)e * mstride;
        for (int o0 = o_begin; o0 < o_end; o0 += CO)
            for (int q0 = 0; q0 < ntile; q0 += T) /* each weight read once per record */
                if (w.J == 1) /* F(4,3): one tap (a constant, so no loop over it) */
                    tile_ld(Me + (size_t)o0 * Lm + q0, Lm, Ve + q0, Lw, Lw, Ue + o0, cout, w.Ce, 1, 1);
                else
                    tile_ld(Me + (size_t)o0 * Lm + q0, Lm, Ve + q0, Lw, Lw, Ue + o0, cout, w.Ce, w.J, 1);
    }
    /* y[4q + t] = sum_e AT[t, e] M[e, q], with bias, residual and ReLU, interleaved into the output */
    if (n == 6)
        for (int o = o_begin; o < o_end; o++)
            wino_out(out + (size_t)o * lout, res ? res + (size_t)o * lout : NULL, M + (size_t)o * Lm, mstride,
                     bias ? bias[o] : 0.0f, relu, lout, ntile, 6, &eng_wino_at6[0][0]);
    else
        for (int o = o_begin; o < o_end; o++)
            wino_out(out + (size_t)o * lout, res ? res + (size_t)o * lout : NULL, M + (size_t)o * Lm, mstride,
                     bias ? bias[o] : 0.0f, relu, lout, ntile, 7, &eng_wino_at7[0][0]);
}

void FNW(float *out, const float *in, const float *res, const float *U, const float *bias, int relu, int cin,
         int lin, int cout, int K, int s, int pad, int lout, float *scratch) {
    FNW_IN(in, cin, lin, cout, K, s, pad, lout, scratch);
    FNW_OUT(out, res, U, bias, relu, cin, cout, K, s, lout, scratch, 0, cout);
}
#undef FNW_LAYOUT
#undef FNW_IN
#undef FNW_OUT
#endif /* FN */

#ifdef FNF
/* The FFT convolution (engine/fft.h). Scratch: Z (H bins x re/im x Ce x nbp blocks), M (H x
 * re/im x cout x nbp), one padded phase row, the twiddles. */
#ifndef FCO
#define FCO 2
#endif
#ifndef FNV
#define FNV 2
#endif
#ifndef FCO3
#define FCO3 2
#endif
#define FT (FNV * VW)

static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* In place over the H points of one row set (point m at re + m * ps, im + m * ps; nb blocks
 * each): decimation in frequency with W^j = (twr[j], twi[j]), bins left bit-reversed. */
static void fft_dif(float *re, float *im, size_t ps, int H, int nb, const float *twr, const float *twi) {
    for (int len = H; len >= 2; len >>= 1) {
        const int half = len / 2, step = H / len;
        for (int st = 0; st < H; st += len)
            for (int j = 0; j < half; j++) {
                const float wr = twr[j * step], wi = twi[j * step];
                float *ar = re + (size_t)(st + j) * ps, *ai = im + (size_t)(st + j) * ps;
                float *br = re + (size_t)(st + j + half) * ps, *bi = im + (size_t)(st + j + half) * ps;
                for (int b = 0; b < nb; b += VW) {
                    vf xr = vload(ar + b), xi = vload(ai + b), yr = vload(br + b), yi = vload(bi + b);
                    vf dr = xr - yr, di = xi - yi;
                    vstore(ar + b, xr + yr);
                    vstore(ai + b, xi + yi);
                    vstore(br + b, dr * wr - di * wi);
                    vstore(bi + b, dr * wi + di * wr);
                }
            }
    }
}

/* The inverse: decimation in time from bit-reversed bins with W^-j, natural order out. */
static void fft_dit_inv(float *re, float *im, size_t ps, int H, int nb, const float *twr, const float *twi) {
    for (int len = 2; len <= H; len <<= 1) {
        const int half = len / 2, step = H / len;
        for (int st = 0; st < H; st += len)
            for (int j = 0; j < half; j++) {
                const float wr = twr[j * step], wi = -twi[j * step];
                float *ar = re + (size_t)(st + j) * ps, *ai = im + (size_t)(st + j) * ps;
                float *br = re + (size_t)(st + j + half) * ps, *bi = im + (size_t)(st + j + half) * ps;
                for (int b = 0; b < nb; b += VW) {
                    vf xr = vload(ar + b), xi = vload(ai + b), yr = vload(br + b), yi = vload(bi + b);
                    vf tr = yr * wr - yi * wi, ti = yr * wi + yi * wr;
                    vstore(ar + b, xr + tr);
                    vstore(ai + b, xi + ti);
                    vstore(br + b, xr - tr);
                    vstore(bi + b, xi - ti);
                }
            }
    }
}

/* One tile of the products at one bin (kind ENG_CONV_FFT): FCO output channels x FT blocks,
 * M[o] = sum_c' S[c', o] Z[c'] (complex); S: re at [c' * 2 cout + o], im at [+ cout]. */
static inline __attribute__((always_inline)) void fft_tile4(float *mr, float *mi, size_t ms, int nco, const float *zr,
                                                             const float *zi, size_t zs, const float *S, int cout,
                                                             int Ce) {
    vf ar[FCO][FNV], ai[FCO][FNV];
    for (int c = 0; c < FCO; c++)
        for (int v = 0; v < FNV; v++) ar[c][v] = (vf){0}, ai[c][v] = (vf){0};
    for (int i = 0; i < Ce; i++) {
        const float *sr = S + (size_t)i * 2 * cout, *si = sr + cout;
        vf xr[FNV], xi[FNV];
        for (int v = 0; v < FNV; v++) xr[v] = vload(zr + (size_t)i * zs + v * VW), xi[v] = vload(zi + (size_t)i * zs + v * VW);
        for (int c = 0; c < FCO; c++) {
            const float wr = sr[c], wi = si[c];
            for (int v = 0; v < FNV; v++) {
                ar[c][v] += wr * xr[v];
                ai[c][v] += wr * xi[v];
                ar[c][v] -= wi * xi[v];
                ai[c][v] += wi * xr[v];
            }
        }
    }
    for (int c = 0; c < nco; c++)
        for (int v = 0; v < FNV; v++) {
            vstore(mr + (size_t)c * ms + v * VW, ar[c][v]);
            vstore(mi + (size_t)c * ms + v * VW, ai[c][v]);
        }
}

/* The same in three real products (kind ENG_CONV_FFT3, Gauss's form): FCO3 output channels x FT blocks,
 * P1 = sum W1 (Zr + Zi), P2 = sum W2 Zr, P3 = sum W3 Zi, Re M = P1 - P3, Im M = P1 + P2, with
 * W1 = Re S, W2 = Im S - Re S, W3 = Re S + Im S at [c' * 3 cout + o], [+ cout], [+ 2 cout]. */
static inline __attribute__((always_inline)) void fft_tile3(float *mr, float *mi, size_t ms, int nco, const float *zr,
                                                            const float *zi, size_t zs, const float *S, int cout,
                                                            int Ce) {
    vf p1[FCO3][FNV], p2[FCO3][FNV], p3[FCO3][FNV];
    for (int c = 0; c < FCO3; c++)
        for (int v = 0; v < FNV; v++) p1[c][v] = (vf){0}, p2[c][v] = (vf){0}, p3[c][v] = (vf){0};
    for (int i = 0; i < Ce; i++) {
        const float *w1 = S + (size_t)i * 3 * cout, *w2 = w1 + cout, *w3 = w2 + cout;
        vf xr[FNV], xi[FNV], xs[FNV];
        for (int v = 0; v < FNV; v++) {
            xr[v] = vload(zr + (size_t)i * zs + v * VW), xi[v] = vload(zi + (size_t)i * zs + v * VW);
            xs[v] = xr[v] + xi[v];
        }
        for (int c = 0; c < FCO3; c++) {
            const float a = w1[c], b = w2[c], d = w3[c];
            for (int v = 0; v < FNV; v++) {
                p1[c][v] += a * xs[v];
                p2[c][v] += b * xr[v];
                p3[c][v] += d * xi[v];
            }
        }
    }
    for (int c = 0; c < nco; c++)
        for (int v = 0; v < FNV; v++) {
            vstore(mr + (size_t)c * ms + v * VW, p1[c][v] - p3[c][v]);
            vstore(mi + (size_t)c * ms + v * VW, p1[c][v] + p2[c][v]);
        }
}

/* The FFT convolution in two halves that a team shares: FNF_IN (one thread) the twiddles and the
 * inputs' transforms into the scratch; FNF_OUT the products, inverse transforms and outputs of
 * output channels [o0, o1) (each output channel's work is its own: any split gives the same
 * bits). FNF is the two on one thread. */
#define FNF_IN ENG_CAT(FNF, _in)
#define FNF_OUT ENG_CAT(FNF, _out)
#define FNF_OUT3 ENG_CAT(FNF, _out3)
#define FNF_FINISH ENG_CAT(FNF, _finish)
#define FNF_PROD ENG_CAT(FNF, _prod)
#define FNF_LAYOUT                                                                                                    \
    const eng_fft f = eng_fft_shape(cin, lout, K, s);                                                                 \
    const int H = f.H, N = f.N, nbp = f.nbp, hop = f.hop, Ce = f.Ce;                                                  \
    const size_t zs = (size_t)nbp, zp = 2 * (size_t)Ce * nbp + 16, mp = 2 * (size_t)cout * nbp + 16;                 \
    float *Z = scratch, *M = Z + (size_t)H * zp, *xr = M + (size_t)H * mp;                                            \
    float *twr = xr + (f.Lx + 15) / 16 * 16, *twi = twr + H, *zc = twi + H, *zsn = zc + H;                            \
    (void)N, (void)hop, (void)xr, (void)twr, (void)twi, (void)zc, (void)zsn, (void)M, (void)Z

void FNF_IN(const float *in, int cin, int lin, int cout, int K, int s, int pad, int lout, float *scratch) {
    /* the bins' planes one cache line longer than their rows: a power-of-two stride between the
     * points an FFT butterfly reads would map them all to the same cache sets */
    FNF_LAYOUT;
    (void)M;
    for (int j = 0; j < H; j++) {
        twr[j] = (float)cos(2.0 * M_PI_ * j / H), twi[j] = (float)sin(2.0 * M_PI_ * j / H);
        zc[j] = (float)cos(M_PI_ * j / N), zsn[j] = (float)sin(M_PI_ * j / N);
    }
    /* the inputs: twisted, transformed */
    for (int c = 0; c < Ce; c++) {
        const int i = c / s, ph = c % s;
        const float *src = in + (size_t)i * lin;
        phase_row(xr, f.Lx, src, lin, s, ph, pad);
        float *re = Z + (size_t)c * zs, *im = re + (size_t)Ce * zs;
        for (int m = 0; m < H; m++) {
            const float cz = zc[m], sz = zsn[m];
            float *rr = re + (size_t)m * zp, *ii = im + (size_t)m * zp;
            const float *xa = xr + m, *xb = xr + m + H;
            for (int b = 0; b < nbp; b++) {
                const float a = xa[(size_t)b * hop], bb = xb[(size_t)b * hop];
                rr[b] = a * cz - bb * sz;
                ii[b] = a * sz + bb * cz;
            }
        }
        fft_dif(re, im, zp, H, nbp, twr, twi);
    }
}

/* The inverse transforms and outputs of output channels [o_begin, o_end) from the products M. */
static inline __attribute__((always_inline)) void FNF_FINISH(float *out, const float *res, const float *bias, int relu,
                                                            int cin, int cout, int K, int s, int lout, float *scratch,
                                                            int o_begin, int o_end) {
    FNF_LAYOUT;

    /* per output channel: inverse, untwisted, the valid outputs of each block */
    for (int o = o_begin; o < o_end; o++) {
        float *re = M + (size_t)o * zs, *im = re + (size_t)cout * zs;
        fft_dit_inv(re, im, mp, H, nbp, twr, twi);
        for (int m = 0; m < H; m++) {
            const float cz = zc[m], sz = zsn[m];
            float *rr = re + (size_t)m * mp, *ii = im + (size_t)m * mp;
            for (int b = 0; b < nbp; b += VW) {
                vf a = vload(rr + b), c = vload(ii + b);
                vstore(rr + b, a * cz + c * sz);
                vstore(ii + b, c * cz - a * sz);
            }
        }
        const float bo = bias ? bias[o] : 0.0f;
        float *dst = out + (size_t)o * lout;
        const float *rrow = res ? res + (size_t)o * lout : NULL;
        for (int n = f.Ke - 1; n < N; n++) {
            const float *y = n < H ? re + (size_t)n * mp : im + (size_t)(n - H) * mp;
            const int off = n - (f.Ke - 1);
            const int nb = off < lout ? (lout - off + hop - 1) / hop : 0; /* blocks with t = b hop + off < lout */
            float *d = dst + off;
            const float *r = rrow ? rrow + off : NULL;
            if (r && relu)
                for (int b = 0; b < nb; b++) {
                    float val = (y[b] + bo) + r[(size_t)b * hop];
                    d[(size_t)b * hop] = val > 0.0f ? val : 0.0f;
                }
            else if (r)
                for (int b = 0; b < nb; b++) d[(size_t)b * hop] = (y[b] + bo) + r[(size_t)b * hop];
            else if (relu)
                for (int b = 0; b < nb; b++) {
                    float val = y[b] + bo;
                    d[(size_t)b * hop] = val > 0.0f ? val : 0.0f;
                }
            else
                for (int b = 0; b < nb; b++) d[(size_t)b * hop] = y[b] + bo;
        }
    }
}

/* The products, bin by bin (each weight read once per record), of output channels [o_begin,
 * o_end): four real products a bin (three 0: S holds re and im, mrm_eng_fft_pack) or three
 * (three 1: mrm_eng_fft3_pack). Always inlined with a constant three: one loop for both kinds. */
static inline __attribute__((always_inline)) void FNF_PROD(const float *S, int three, int cin, int cout, int K, int s,
                                                          int lout, float *scratch, int o_begin, int o_end) {
    FNF_LAYOUT;
    const size_t sp = (three ? 3 : 2) * (size_t)Ce * cout;
    const int fco = three ? FCO3 : FCO;
    for (int p = 0; p < H; p++) {
        const float *Zp = Z + (size_t)p * zp, *Sp = S + (size_t)p * sp;
        float *Mp = M + (size_t)p * mp;
        for (int o0 = o_begin; o0 < o_end; o0 += fco) {
            const int nco = o_end - o0 < fco ? o_end - o0 : fco;
            for (int b0 = 0; b0 < nbp; b0 += FT) {
                float *mr = Mp + (size_t)o0 * zs + b0, *mi = Mp + (size_t)(cout + o0) * zs + b0;
                const float *zr = Zp + b0, *zi = Zp + (size_t)Ce * zs + b0;
                if (three)
                    fft_tile3(mr, mi, zs, nco, zr, zi, zs, Sp + o0, cout, Ce);
                else
                    fft_tile4(mr, mi, zs, nco, zr, zi, zs, Sp + o0, cout, Ce);
            }
        }
    }
}

/* Kind ENG_CONV_FFT: S holds re and im (mrm_eng_fft_pack). */
void FNF_OUT(float *out, const float *res, const float *S, const float *bias, int relu, int cin, int cout, int K, int s,
             int lout, float *scratch, int o_begin, int o_end) {
    FNF_PROD(S, 0, cin, cout, K, s, lout, scratch, o_begin, o_end);
    FNF_FINISH(out, res, bias, relu, cin, cout, K, s, lout, scratch, o_begin, o_end);
}

/* Kind ENG_CONV_FFT3: S holds the three products' weights (mrm_eng_fft3_pack). */
void FNF_OUT3(float *out, const float *res, const float *S, const float *bias, int relu, int cin, int cout, int K,
              int s, int lout, float *scratch, int o_begin, int o_end) {
    FNF_PROD(S, 1, cin, cout, K, s, lout, scratch, o_begin, o_end);
    FNF_FINISH(out, res, bias, relu, cin, cout, K, s, lout, scratch, o_begin, o_end);
}

void FNF(float *out, const float *in, const float *res, const float *S, const float *bias, int relu, int cin, int lin,
         int cout, int K, int s, int pad, int lout, float *scratch) {
    FNF_IN(in, cin, lin, cout, K, s, pad, lout, scratch);
    FNF_OUT(out, res, S, bias, relu, cin, cout, K, s, lout, scratch, 0, cout);
}

void FNF3(float *out, const float *in, const float *res, const float *S, const float *bias, int relu, int cin, int lin,
          int cout, int K, int s, int pad, int lout, float *scratch) {
    FNF_IN(in, cin, lin, cout, K, s, pad, lout, scratch);
    FNF_OUT3(out, res, S, bias, relu, cin, cout, K, s, lout, scratch, 0, cout);
}
#undef FNF_LAYOUT
#undef FNF_IN
#undef FNF_OUT
#undef FNF_OUT3
#undef FNF_FINISH
#undef FNF_PROD
#undef FT
#endif /* FNF */

/* ---- int8: weights int8 per output channel, the input quantised to int8 on the fly (one scale
 * per tensor) and stored offset by 128 as uint8 (q + 128), 4 input channels interleaved per
 * time step; products summed in int32 four at a time (4 input channels x 1 tap, the shape of
 * AVX512-VNNI's vpdpbusd); the offset is taken back with comp[o] = 128 * sum of the channel's
 * weights: out = act((acc - comp[o]) * scale[o] + bias[o] [+ res]). Weights packed (g, i/4, k,
 * o, 4) by mrm_eng_pack8. ------------------------------------------------------------------- */
/* X8_ZERO: the byte that stands for 0 in the packed input (128: q + 128 as uint8, for the
 * unsigned x signed products of vpdpbusd and the generic tile; a TU may define it 0 for q as
 * int8, the signed x signed products of ARM's sdot, whose tile then adds comp back itself). */
#ifndef X8_ZERO
#define X8_ZERO 128
#endif
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the int8 kernels read 4 interleaved bytes as one little-endian 32-bit word"
#endif

static inline uint8_t q8u(float x, float inv) {
    float v = x * inv;
    v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
    if (v != v) v = 0.0f; /* NaN (a broken activation or scale) must not reach the conversion to int */
    int q = v >= 0.0f ? (int)(v + 0.5f) : -(int)(0.5f - v);
    return (uint8_t)(q + X8_ZERO);
}

/* The quantised input: quad c4 (4 channels), phase r, position j: bytes X + ((c4 * s + r) * Lq +
 * j) * 4 + b, channel 4 c4 + b of the group (X8_ZERO, i.e. 0, past the group's channels and in the
 * padding). Quads [q0, q1) of the groups * ceil(cig / 4) quads. */
static void pack_input8(uint8_t *X, const float *in, float in_scale, int cin, int lin, int groups, int s, int pad,
                        size_t Lq, int q0, int q1) {
    const int cig = cin / groups, cig4 = (cig + 3) / 4;
    const float inv = 1.0f / in_scale;
    (void)groups;
    memset(X + (size_t)q0 * s * Lq * 4, X8_ZERO, (size_t)(q1 - q0) * s * Lq * 4);
    for (int c4 = q0; c4 < q1; c4++) {
        int g = c4 / cig4, i4 = c4 % cig4;
        for (int b = 0; b < 4 && 4 * i4 + b < cig; b++) {
            int i = 4 * i4 + b;
            const float *src = in + ((size_t)g * cig + i) * lin;
            for (int r = 0; r < s; r++) {
                uint8_t *row = X + ((size_t)c4 * s + r) * Lq * 4 + b;
                for (size_t j = 0; j < Lq; j++) {
                    long long idx = (long long)r + (long long)s * (long long)j - pad;
                    if (idx >= 0 && idx < lin) row[j * 4] = q8u(src[idx], inv);
                }
            }
        }
    }
}

#ifndef TILE8
typedef int32_t vi __attribute__((vector_size(VW * sizeof(int32_t))));

static inline vi vload32(const uint8_t *p) {
    vi v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One tile: acc (CO x T) = sum over quads i4 < cig4, taps k of sum_b W[i4, k, o0 + c, b] *
 * X_{i4}[phase k%s][t0 + k/s + t][b]. (A TU's own TILE8 has the same arguments; cp: comp of the
 * tile's nco <= CO output channels, for a tile whose products are of q rather than q + 128.) */
static inline __attribute__((always_inline)) void tile8(int32_t *tmp, const uint8_t *X, size_t xq_stride, size_t Lq,
                                                         const int8_t *W, int cog, int cig4, int K, int s,
                                                         const int32_t *cp, int nco) {
    (void)cp, (void)nco;
    vi acc[CO][NV];
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) acc[c][v] = (vi){0};
    for (int i = 0; i < cig4; i++) {
        const uint8_t *xi = X + (size_t)i * xq_stride;
        const int8_t *wi = W + (size_t)i * K * cog * 4;
        for (int k = 0; k < K; k++) {
            const uint8_t *xr = xi + ((size_t)(k % s) * Lq + (size_t)(k / s)) * 4;
            const int8_t *wr = wi + (size_t)k * cog * 4;
            vi xb[4][NV];
            for (int v = 0; v < NV; v++) {
                vi x = vload32(xr + (size_t)v * VW * 4);
                for (int b = 0; b < 4; b++) xb[b][v] = (x >> (8 * b)) & 255;
            }
            for (int c = 0; c < CO; c++)
                for (int b = 0; b < 4; b++) {
                    int32_t wc = wr[c * 4 + b];
                    for (int v = 0; v < NV; v++) acc[c][v] += wc * xb[b][v];
                }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) memcpy(tmp + c * T + v * VW, &acc[c][v], sizeof(vi));
}
#define TILE8 tile8
#endif

static inline size_t conv8_lq(int lout, int K, int s) {
    return (size_t)((lout + ENG_T_MAX - 1) / ENG_T_MAX * ENG_T_MAX + (K - 1) / s + 1);
}

/* Output tiles [u0, u1) (eng_conv_tile_rect) from the packed input X. */
static void conv8_tiles(float *out, const float *res, const int8_t *wp, const int32_t *comp, const float *bias,
                        const float *scale, int relu, int cin, int cout, int K, int s, int groups, int lout,
                        const uint8_t *X, long long u0, long long u1) {
    const int cig = cin / groups, cog = cout / groups, cig4 = (cig + 3) / 4;
    const size_t Lq = conv8_lq(lout, K, s);
    int32_t tmp[CO * T] __attribute__((aligned(64)));
    const size_t xq = (size_t)s * Lq * 4;
    for (long long u = u0; u < u1; u++) {
        eng_rect q = eng_conv_tile_rect(u, cout, groups, lout, CO, T);
        int g = q.g, o0 = q.o0 - g * cog, t0 = q.t0, nco = q.o1 - q.o0, nt = q.t1 - q.t0;
        const uint8_t *Xg = X + (size_t)g * cig4 * xq;
        const int8_t *Wg = wp + (size_t)g * cig4 * K * cog * 4;
        const uint8_t *Xt = Xg + (size_t)t0 * 4;
        if (s == 1) TILE8(tmp, Xt, xq, Lq, Wg + o0 * 4, cog, cig4, K, 1, comp + q.o0, nco);
        else if (s == 2) TILE8(tmp, Xt, xq, Lq, Wg + o0 * 4, cog, cig4, K, 2, comp + q.o0, nco);
        else TILE8(tmp, Xt, xq, Lq, Wg + o0 * 4, cog, cig4, K, s, comp + q.o0, nco);
        for (int c = 0; c < nco; c++) {
            int o = g * cog + o0 + c;
            float b = bias[o], sc = scale[o];
            int32_t cp = comp[o];
            float *dst = out + (size_t)o * lout + t0;
            const int32_t *a = tmp + c * T;
            const float *rr = res ? res + (size_t)o * lout + t0 : NULL;
            for (int t = 0; t < nt; t++) {
                float y = (float)((int64_t)a[t] - cp) * sc;
                y = y + b;
                if (rr) y = y + rr[t];
                dst[t] = relu && y < 0.0f ? 0.0f : y;
            }
        }
    }
}

void FN8(float *out, const float *in, const float *res, const int8_t *wp, const int32_t *comp, const float *bias,
         const float *scale, float in_scale, int relu, int cin, int lin, int cout, int K, int s, int pad, int groups,
         int lout, float *scratch) {
    const int cig4 = (cin / groups + 3) / 4;
    uint8_t *X = (uint8_t *)scratch;
    pack_input8(X, in, in_scale, cin, lin, groups, s, pad, conv8_lq(lout, K, s), 0, groups * cig4);
    conv8_tiles(out, res, wp, comp, bias, scale, relu, cin, cout, K, s, groups, lout, X, 0,
                eng_conv_tiles(cout, groups, lout, CO, T));
}

/* The two halves of FN8 for a team of threads (kernels.h: eng_conv8_pack_fn, eng_conv8_tiles_fn). */
void ENG_CAT(FN8, _pack)(void *X, const float *in, float in_scale, int cin, int lin, int groups, int K, int stride,
                         int pad, int lout, int q0, int q1) {
    pack_input8((uint8_t *)X, in, in_scale, cin, lin, groups, stride, pad, conv8_lq(lout, K, stride), q0, q1);
}
void ENG_CAT(FN8, _tiles)(float *out, const float *res, const int8_t *wp, const int32_t *comp, const float *bias,
                          const float *scale, int relu, int cin, int cout, int K, int stride, int groups, int lout,
                          const void *X, long long u0, long long u1) {
    conv8_tiles(out, res, wp, comp, bias, scale, relu, cin, cout, K, stride, groups, lout, (const uint8_t *)X, u0, u1);
}
eng_tile ENG_CAT(FN8, _tile)(void) { return (eng_tile){CO, T}; }
