/* The weight gradient of grouped 1-D convolutions with 16 output channels per group, stride 1
 * and 3, 5 or 7 taps (the model's Gate and SE convolutions: 64 or 128 channels in groups of
 * 16) on AVX-512, without im2col or GEMM:
 *
 *     dw[g*16 + o, i, k] = sum_t dout[g*16 + o, t] * X[g*Cig + i, t + k],
 *
 * X the zero-padded input (X[c, u] = in[c, u - pad]). One vector holds a group's 16 output
 * channels, so per sample and group dout is transposed once into D (rows t, 16 channels) with
 * K-1 zero rows in front, Dp[r] = D[r - K + 1]. Walking u along the input row, X[i, u] meets
 * Dp[u + K - 1 - k] for tap k, so a sliding window of the last K rows of Dp stays in registers:
 * per step one vector load, one broadcast per input channel of the tile and K FMAs per input
 * channel (NI input channels x K taps of accumulators).
 *
 * Batches run one sample per thread (static schedule), each thread adding into its own
 * partial sums (layout [g][i][k][o]), which are then added to dw in thread order: the same
 * inputs and thread count give the same bits. */
#include <stdint.h>
#include <string.h>

#include "nn/conv1d_impl.h"
#include "nn/simd16.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

enum { GW_CO = 16 }; /* output channels per group the kernel takes */

static inline int ceil_to(int a, int b) { return (a + b - 1) / b * b; }

int conv1d_wgrad_grouped_applies(int Cin, int Cout, int K, int stride, int groups) {
    return groups > 1 && Cout / groups == GW_CO && Cout % groups == 0 && Cin % groups == 0 && stride == 1 &&
           (K == 3 || K == 5 || K == 7);
}

/* Steps u of the walk: Lout + K - 1, rounded up to whole windows of K. */
static int walk_steps(int Lout, int K) { return ceil_to(Lout + K - 1, K); }

typedef struct {
    int Lout, U, LpX, nD;
    size_t x, d, part, slot;
} gw_geom;

static gw_geom gw_geometry(int Cin, int Lin, int Cout, int K, int pad, int groups) {
    gw_geom G;
    int Cig = Cin / groups;
    G.Lout = conv1d_out_len(Lin, K, 1, pad);
    G.U = walk_steps(G.Lout, K);
    G.LpX = ceil_to(G.U, 16);
    G.nD = ceil_to(G.U + K - 1 + 16, 16); /* rows of Dp: the walk's, and whole 16-row blocks */
    G.x = (size_t)Cig * G.LpX;
    G.d = (size_t)G.nD * GW_CO;
    G.part = (size_t)Cout * Cig * K;
    G.slot = (G.x + G.d + G.part + 15) / 16 * 16;
    return G;
}

static int gw_threads(int B) {
    int nt = omp_get_max_threads();
    if (nt > B) nt = B;
    return nt < 1 ? 1 : nt;
}

size_t conv1d_wgrad_grouped_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    if (!conv1d_wgrad_grouped_applies(Cin, Cout, K, stride, groups) || conv1d_out_len(Lin, K, stride, pad) <= 0)
        return 0;
    gw_geom G = gw_geometry(Cin, Lin, Cout, K, pad, groups);
    return (size_t)gw_threads(B) * G.slot + 16; /* + alignment */
}

/* Dp (nD, 16): rows [K-1, K-1+Lout) the transpose of the group's dout rows (16, Lout), the
 * others zero. */
static void fill_dp(float *Dp, const float *dout_g, int Lout, int K, int nD) {
    memset(Dp, 0, (size_t)(K - 1) * GW_CO * sizeof(float));
    float *D = Dp + (size_t)(K - 1) * GW_CO;
    for (int t0 = 0; t0 < Lout; t0 += 16) {
        int n = Lout - t0 < 16 ? Lout - t0 : 16;
        __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
        __m512 r[16];
        for (int o = 0; o < 16; o++) {
            const float *src = dout_g + (size_t)o * Lout + t0;
            r[o] = _mm512_maskz_loadu_ps(m, src);
            _mm_prefetch((const char *)(src + 64), _MM_HINT_T0); /* 16 rows are more streams than the hardware follows */
        }
        nn_transpose16_regs(r);
        for (int j = 0; j < 16; j++) _mm512_storeu_ps(D + (size_t)(t0 + j) * GW_CO, r[j]);
    }
    /* rows past the last whole block written are zero; those inside it are zero from the mask */
    int end = K - 1 + ceil_to(Lout, 16);
    if (end < nD) memset(Dp + (size_t)end * GW_CO, 0, (size_t)(nD - end) * GW_CO * sizeof(float));
}

/* One tile: NI input channels (rows x[0..NI) of X, LpX apart) x KK taps, over the walk of U
 * steps (a multiple of KK); part[(n*KK + k)*16 + o] += the sums. */
#define GW_TILE(NAME, KK, NI)                                                                         \
    __attribute__((optimize("no-predictive-commoning"))) static void NAME(                           \
        float *part, const float *Dp, const float *const *xr, int U) {                               \
        __m512 acc[NI][KK], win[KK];                                                                 \
        _Pragma("GCC unroll 8") for (int n = 0; n < NI; n++)                                         \
            _Pragma("GCC unroll 8") for (int k = 0; k < KK; k++) acc[n][k] = _mm512_setzero_ps();    \
        _Pragma("GCC unroll 8") for (int k = 0; k < KK - 1; k++) win[k] = _mm512_loadu_ps(Dp + 16 * k); \
        win[KK - 1] = _mm512_setzero_ps();                                                           \
        for (int u = 0; u < U; u += KK) {                                                            \
            const float *dr = Dp + (size_t)(u + KK - 1) * 16;                                        \
            _Pragma("GCC unroll 8") for (int s = 0; s < KK; s++) {                                   \
                win[(s + KK - 1) % KK] = _mm512_loadu_ps(dr + 16 * s);                               \
                _Pragma("GCC unroll 8") for (int n = 0; n < NI; n++) {                               \
                    __m512 b = _mm512_set1_ps(xr[n][u + s]);                                         \
                    _Pragma("GCC unroll 8") for (int k = 0; k < KK; k++) acc[n][k] =                 \
                        _mm512_fmadd_ps(win[(s + KK - 1 - k) % KK], b, acc[n][k]);                   \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
        _Pragma("GCC unroll 8") for (int n = 0; n < NI; n++)                                         \
            _Pragma("GCC unroll 8") for (int k = 0; k < KK; k++) {                                   \
                float *p = part + ((size_t)n * KK + k) * 16;                                         \
                _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), acc[n][k]));                    \
            }                                                                                        \
    }

GW_TILE(gw_k3, 3, 8)
GW_TILE(gw_k5, 5, 4)
GW_TILE(gw_k7, 7, 2)

static int gw_ni(int K) { return K == 3 ? 8 : K == 5 ? 4 : 2; }

/* One sample: part[g][i][k][o] += its weight gradient. */
static void gw_sample(float *part, float *X, float *Dp, const float *dout_b, const float *in_b, const gw_geom *G,
                      int Cin, int Lin, int K, int pad, int groups) {
    int Cig = Cin / groups, NI = gw_ni(K);
    float tmp[8 * 7 * 16];
    for (int g = 0; g < groups; g++) {
        conv1d_pad_rows(X, G->LpX, in_b + (size_t)g * Cig * Lin, Cig, Lin, pad);
        fill_dp(Dp, dout_b + (size_t)g * GW_CO * G->Lout, G->Lout, K, G->nD);
        float *pg = part + (size_t)g * Cig * K * GW_CO;
        for (int i0 = 0; i0 < Cig; i0 += NI) {
            int ni = Cig - i0 < NI ? Cig - i0 : NI;
            const float *xr[8];
            for (int n = 0; n < NI; n++) xr[n] = X + (size_t)(i0 + (n < ni ? n : 0)) * G->LpX;
            /* a whole tile adds in place; a partial one through tmp */
            float *dst = pg + (size_t)i0 * K * GW_CO;
            if (ni < NI) memset(tmp, 0, (size_t)NI * K * GW_CO * sizeof(float)), dst = tmp;
            if (K == 3) gw_k3(dst, Dp, xr, G->U);
            else if (K == 5) gw_k5(dst, Dp, xr, G->U);
            else gw_k7(dst, Dp, xr, G->U);
            if (ni < NI)
                for (size_t j = 0; j < (size_t)ni * K * GW_CO; j++) pg[(size_t)i0 * K * GW_CO + j] += tmp[j];
        }
    }
}

int conv1d_wgrad_grouped(nn_ctx *ctx, float *dw, const float *dout, const float *in, int B, int Cin, int Lin,
                         int Cout, int K, int stride, int pad, int groups) {
    if (!conv1d_wgrad_grouped_applies(Cin, Cout, K, stride, groups) || B <= 0) return 0;
    gw_geom G = gw_geometry(Cin, Lin, Cout, K, pad, groups);
    if (G.Lout <= 0) return 0;
    int nt = gw_threads(B);
    if (!ctx || !ctx->scratch || ctx->scratch_floats < (size_t)nt * G.slot + 16) return 0;
    if ((double)B * Cout * G.Lout * (Cin / groups) * K < NN_PARALLEL_MIN_MACS) nt = 1;
    /* slots on 64-byte boundaries */
    float *base = ctx->scratch + ((16 - ((uintptr_t)ctx->scratch / sizeof(float)) % 16) % 16);
    int Cig = Cin / groups;
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num();
        float *X = base + (size_t)tid * G.slot, *Dp = X + G.x, *part = Dp + G.d;
        memset(part, 0, G.part * sizeof(float));
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++)
            gw_sample(part, X, Dp, dout + (size_t)b * Cout * G.Lout, in + (size_t)b * Cin * Lin, &G, Cin, Lin, K, pad,
                      groups);
        /* implicit barrier: the partials are complete; added in thread order */
#pragma omp for schedule(static)
        for (int o = 0; o < Cout; o++) {
            int g = o / GW_CO, ol = o % GW_CO;
            for (int j = 0; j < Cig * K; j++) {
                size_t idx = ((size_t)g * Cig * K + j) * GW_CO + ol;
                float s = 0.0f;
                for (int n = 0; n < nt; n++) s += base[(size_t)n * G.slot + G.x + G.d + idx];
                dw[(size_t)o * Cig * K + j] += s;
            }
        }
    }
    return 1;
}

#else /* no AVX-512: the GEMM path */

int conv1d_wgrad_grouped_applies(int Cin, int Cout, int K, int stride, int groups) {
    (void)Cin, (void)Cout, (void)K, (void)stride, (void)groups;
    return 0;
}
size_t conv1d_wgrad_grouped_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    (void)B, (void)Cin, (void)Lin, (void)Cout, (void)K, (void)stride, (void)pad, (void)groups;
    return 0;
}
int conv1d_wgrad_grouped(nn_ctx *ctx, float *dw, const float *dout, const float *in, int B, int Cin, int Lin,
                         int Cout, int K, int stride, int pad, int groups) {
    (void)ctx, (void)dw, (void)dout, (void)in, (void)B, (void)Cin, (void)Lin, (void)Cout, (void)K, (void)stride;
    (void)pad, (void)groups;
    return 0;
}
#endif
