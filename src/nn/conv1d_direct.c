/* Direct 1-D convolution with AVX-512 register tiles: no im2col, no GEMM packing of the
 * activations. Every pass is one kernel shape,
 *
 *     out[o, t] = sum_{i < Ci, k < Kt} W[i, k, o] * X[i, t*s + k]                      (*)
 *
 * over a zero-padded copy X of the activations, with the weights packed per tile of output
 * channels as W (i, k, o). Two tilings of out, each 24 vectors kept in registers:
 *  - along time (stride 1, contiguous output rows): 6 channels x 64 time steps; per (i, k)
 *    4 input vectors are loaded and 6 weights broadcast: 24 FMAs for 10 loads;
 *  - along channels (any stride and output spacing): 32 channels x 12 steps (16 x 24); per
 *    (i, k) 2 weight vectors are loaded and 12 inputs broadcast: 24 FMAs for 14 loads.
 *
 *  - forward: (*) with X = padded input, W from w, s = stride; bias and ReLU may be applied
 *    as the tiles are stored.
 *  - data gradient: for stride s the outputs din[:, s*m + r] of each phase r get the taps
 *    k = k_r, k_r + s, ... (k_r = (r + pad) mod s), so each phase is (*) with stride 1 over
 *    a padded copy of dout and the flipped, transposed taps of w: one pass per phase.
 *  - weight gradient: dw[o, i, k] = sum_t dout[o, t] * X[i, t*s + k], tiles of 64 (32, 16)
 *    output channels x 6 (12, 24) (i, k) pairs, vectors along o from a transposed copy of dout.
 *
 * Batches run one sample per thread; with fewer samples than threads, the tiles of all the
 * samples are shared out instead (forward), or those of each sample in turn (backward). Each output value is summed by one thread in a fixed order, and
 * the weight gradient from per-thread partial sums added in thread order: same inputs and
 * thread count, same bits. */
#include <string.h>

#include "common/partition.h"
#include "nn/conv1d_impl.h"

/* X (C, Lp): X[c, u] = in[c, u - pad] inside the input, else 0. */
void conv1d_pad_rows(float *X, int Lp, const float *in, int C, int Lin, int pad) {
    for (int c = 0; c < C; c++) {
        float *xr = X + (size_t)c * Lp;
        const float *ir = in + (size_t)c * Lin;
        /* [0, a) zeros, [a, e) in[c, u - pad], [e, Lp) zeros */
        int a = pad < 0 ? 0 : pad < Lp ? pad : Lp, e = pad + Lin < Lp ? pad + Lin : Lp;
        if (e < a) e = a;
        memset(xr, 0, (size_t)a * sizeof(float));
        if (e > a) memcpy(xr + a, ir + (a - pad), (size_t)(e - a) * sizeof(float));
        memset(xr + e, 0, (size_t)(Lp - e) * sizeof(float));
    }
}

#if defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

enum { NT2 = 12, NT1 = 24 }; /* time steps (or (i,k) pairs) per tile with 2 / 1 channel vectors */

/* Channel vectors per tile for co output channels: 2 (32 channels) unless 16 suffice. */
static inline int tile_cv(int co) { return co > 16 ? 2 : 1; }
static inline int tile_nt(int cv) { return cv == 2 ? NT2 : NT1; }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Stride 1 with contiguous output rows has a second tiling, along time: TV_MR output channels
 * x TV_NV vectors of 16 time steps, weights broadcast and inputs loaded as vectors (10 loads
 * for 24 FMAs, stores straight into the rows of out). */
enum { TV_MR = 6, TV_NV = 4, TV_T = 16 * TV_NV, MAX_TILE_T = TV_T };

/* How a pass of Co output channels is tiled: tv (time vectors) or channel vectors; CT
 * channels and TT time steps per tile. */
typedef struct {
    int tv, CT, TT;
} tiling;

static tiling tiling_for(int Co, int s, int ost) {
    tiling t;
    t.tv = s == 1 && ost == 1;
    t.CT = t.tv ? TV_MR : 16 * tile_cv(Co);
    t.TT = t.tv ? TV_T : tile_nt(tile_cv(Co));
    return t;
}

/* Writes (add = 0) or adds (add = 1) the tile acc[c][j] (channel 16c + lane, time j) to
 * out[(16c + lane) * ldo + j * ost], for nco channels and nt time steps. When writing, the
 * epilogue adds bias[channel] (if bias) and applies ReLU (if relu). */
static void store_tile(const __m512 *acc, int CV, int NT, float *out, size_t ldo, int ost, int nco, int nt,
                       int add, const float *bias, int relu) {
    float buf[16];
    for (int c = 0; c < CV; c++) {
        int nl = imin(16, nco - 16 * c);
        if (nl <= 0) break;
        __m512 bv = bias ? _mm512_maskz_loadu_ps((__mmask16)((1u << nl) - 1u), bias + 16 * c) : _mm512_setzero_ps();
        for (int j = 0; j < nt; j++) {
            float *o = out + (size_t)16 * c * ldo + (size_t)j * ost;
            if (add) {
                _mm512_storeu_ps(buf, acc[c * NT + j]);
                for (int l = 0; l < nl; l++) o[(size_t)l * ldo] += buf[l];
            } else {
                __m512 v = _mm512_add_ps(acc[c * NT + j], bv);
                if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
                _mm512_storeu_ps(buf, v);
                for (int l = 0; l < nl; l++) o[(size_t)l * ldo] = buf[l];
            }
        }
    }
}

/* One tile of (*): wp is the packed weights of this channel tile, (Ci, Kt, 16*CV);
 * x points at X[0, t0*s]; rows of X are Lp apart. S is the stride (a constant or `s`). */
#define CONV_TILE(NAME, CV, NT, S)                                                                  \
    __attribute__((optimize("no-predictive-commoning"))) static void NAME(                         \
        float *out, size_t ldo, int ost, int nco, int nt, int add, const float *bias, int relu,       \
        const float *wp, const float *x, int Lp, int Ci, int Kt, int s) {                           \
        (void)s;                                                                                    \
        __m512 acc[CV * NT];                                                                        \
        _Pragma("GCC unroll 24") for (int j = 0; j < CV * NT; j++) acc[j] = _mm512_setzero_ps();    \
        for (int i = 0; i < Ci; i++) {                                                              \
            const float *xr = x + (size_t)i * Lp, *wr = wp + (size_t)i * Kt * (16 * CV);            \
            for (int k = 0; k < Kt; k++) {                                                          \
                __m512 w0 = _mm512_loadu_ps(wr + (size_t)k * 16 * CV);                              \
                __m512 w1 = CV == 2 ? _mm512_loadu_ps(wr + (size_t)k * 16 * CV + 16) : w0;          \
                const float *xp = xr + k;                                                           \
                _Pragma("GCC unroll 24") for (int j = 0; j < NT; j++) {                             \
                    __m512 xv = _mm512_set1_ps(xp[j * (S)]);                                        \
                    acc[j] = _mm512_fmadd_ps(w0, xv, acc[j]);                                       \
                    if (CV == 2) acc[NT + j] = _mm512_fmadd_ps(w1, xv, acc[NT + j]);                \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        __m512 res[CV * NT];                                                                        \
        _Pragma("GCC unroll 48") for (int j = 0; j < CV * NT; j++) res[j] = acc[j];                 \
        store_tile(res, CV, NT, out, ldo, ost, nco, nt, add, bias, relu);                           \
    }

CONV_TILE(tile2_s1, 2, NT2, 1)
CONV_TILE(tile2_s2, 2, NT2, 2)
CONV_TILE(tile2_sn, 2, NT2, s)
CONV_TILE(tile1_s1, 1, NT1, 1)
CONV_TILE(tile1_s2, 1, NT1, 2)
CONV_TILE(tile1_sn, 1, NT1, s)

/* One tile of (*) along time, stride 1: out[o, t0 + t] for TV_MR channels and TV_T steps;
 * wp (Ci, Kt, TV_MR) the packed weights of this channel tile, x points at X[0, t0].
 * KT is Kt (a constant for the common short kernels, so their tap loop unrolls). */
#define TV_TILE(NAME, KT)                                                                             \
    __attribute__((optimize("no-predictive-commoning"))) static void NAME(                           \
        float *out, size_t ldo, int nco, int nt, int add, const float *bias, int relu, const float *wp, \
        const float *x, int Lp, int Ci, int Kt) {                                                     \
        (void)Kt;                                                                                     \
        __m512 acc[TV_MR * TV_NV];                                                                    \
        _Pragma("GCC unroll 24") for (int j = 0; j < TV_MR * TV_NV; j++) acc[j] = _mm512_setzero_ps(); \
        for (int i = 0; i < Ci; i++) {                                                                \
            const float *xr = x + (size_t)i * Lp, *wr = wp + (size_t)i * (KT) * TV_MR;                \
            for (int k = 0; k < (KT); k++) {                                                          \
                __m512 xv[TV_NV];                                                                     \
                _Pragma("GCC unroll 4") for (int v = 0; v < TV_NV; v++) xv[v] =                       \
                    _mm512_loadu_ps(xr + k + 16 * v);                                                 \
                _Pragma("GCC unroll 6") for (int r = 0; r < TV_MR; r++) {                             \
                    __m512 wv = _mm512_set1_ps(wr[k * TV_MR + r]);                                    \
                    _Pragma("GCC unroll 4") for (int v = 0; v < TV_NV; v++) acc[r * TV_NV + v] =      \
                        _mm512_fmadd_ps(wv, xv[v], acc[r * TV_NV + v]);                               \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        __m512 res[TV_MR * TV_NV];                                                                    \
        _Pragma("GCC unroll 24") for (int j = 0; j < TV_MR * TV_NV; j++) res[j] = acc[j];             \
        store_tile_tv(res, out, ldo, nco, nt, add, bias, relu);                                       \
    }

/* Writes or adds a time-vector tile res[r][v] to out[r * ldo + 16v + lane] (nco rows, nt steps),
 * with the forward epilogue when writing. */
static void store_tile_tv(const __m512 *res, float *out, size_t ldo, int nco, int nt, int add, const float *bias,
                          int relu) {
    for (int r = 0; r < nco; r++) {
        float *o = out + (size_t)r * ldo;
        __m512 bv = _mm512_set1_ps(bias && !add ? bias[r] : 0.0f);
        for (int v = 0; v < TV_NV && 16 * v < nt; v++) {
            int left = nt - 16 * v;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
            __m512 y = res[r * TV_NV + v];
            if (add)
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, o + 16 * v));
            else {
                y = _mm512_add_ps(y, bv);
                if (relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
            }
            _mm512_mask_storeu_ps(o + 16 * v, m, y);
        }
    }
}

TV_TILE(tile_tv, Kt)
TV_TILE(tile_tv_k3, 3)

/* One pass of (*) for one group: Co output channels over T time steps, written to
 * out[o * ldo + t * ost]; runs the tiles [q0, q1) of the grid (channel tile, time tile). */
typedef struct {
    int Ci, Kt, s, Lp, Co, T;
    const float *wp, *x; /* packed weights (Co tiles, Ci, Kt, 16*CV), padded input (Ci, Lp) */
    float *out;
    size_t ldo;
    int ost, add;
    const float *bias; /* forward epilogue: bias per output channel (or NULL), then ReLU */
    int relu;
} conv_pass;

static int pass_tiles(const conv_pass *p) {
    tiling tl = tiling_for(p->Co, p->s, p->ost);
    return ceil_div(p->Co, tl.CT) * ceil_div(p->T, tl.TT);
}

static void run_pass(const conv_pass *p, int q0, int q1) {
    tiling tl = tiling_for(p->Co, p->s, p->ost);
    int CV = tile_cv(p->Co), CT = tl.CT, NT = tl.TT, ntt = ceil_div(p->T, NT);
    for (int q = q0; q < q1; q++) {
        int ct = q / ntt, t0 = (q % ntt) * NT;
        const float *wp = p->wp + (size_t)ct * p->Ci * p->Kt * CT, *x = p->x + (size_t)t0 * p->s;
        float *o = p->out + (size_t)ct * CT * p->ldo + (size_t)t0 * p->ost;
        int nco = imin(CT, p->Co - ct * CT), nt = imin(NT, p->T - t0);
        const float *bias = p->bias ? p->bias + ct * CT : NULL;
#define CALL_TILE(f, S) f(o, p->ldo, p->ost, nco, nt, p->add, bias, p->relu, wp, x, p->Lp, p->Ci, p->Kt, S)
        if (tl.tv) {
            /* the tile's rows of out (read when adding, written in any case) fetched while it computes */
            for (int r = 0; r < nco; r++)
                for (int j = 0; j < nt; j += 16) _mm_prefetch((const char *)(o + (size_t)r * p->ldo + j), _MM_HINT_T0);
            (p->Kt == 3 ? tile_tv_k3 : tile_tv)(o, p->ldo, nco, nt, p->add, bias, p->relu, wp, x, p->Lp, p->Ci,
                                                p->Kt);
        } else if (CV == 2) {
            if (p->s == 1) CALL_TILE(tile2_s1, 1);
            else if (p->s == 2) CALL_TILE(tile2_s2, 2);
            else CALL_TILE(tile2_sn, p->s);
        } else {
            if (p->s == 1) CALL_TILE(tile1_s1, 1);
            else if (p->s == 2) CALL_TILE(tile1_s2, 2);
            else CALL_TILE(tile1_sn, p->s);
        }
#undef CALL_TILE
    }
}

/* Runs a pass whole: by this thread alone when inside a parallel batch loop (serial = 1),
 * else with its tiles shared out among the threads. */
static void run_pass_all(const conv_pass *p, int serial) {
    int n = pass_tiles(p);
    double macs = (double)p->Co * p->T * p->Ci * p->Kt;
    if (serial || n < 2 || omp_get_max_threads() < 2 || macs < NN_PARALLEL_MIN_MACS) {
        run_pass(p, 0, n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int q = 0; q < n; q++) run_pass(p, q, q + 1);
}

static inline int wgrad_cv(int Cog);

/* ---- geometry and scratch ------------------------------------------------------------------ */

/* Padded length of the forward input rows: a last tile of TT steps reads up to
 * (ceil(Lout/TT)*TT-1)*s+K-1 (TT divides MAX_TILE_T or is at most it). */
static int fwd_lp(int Lout, int K, int stride) {
    return (ceil_div(Lout, MAX_TILE_T) * MAX_TILE_T - 1) * stride + K + MAX_TILE_T * stride;
}
/* Longest padded row of dout over the data-gradient phases (Kr <= ceil(K/s), Mr <= ceil(Lin/s)). */
static int dgrad_lp(int Lin, int K, int stride) {
    return ceil_div(ceil_div(Lin, stride), MAX_TILE_T) * MAX_TILE_T + MAX_TILE_T + ceil_div(K, stride);
}
static size_t pack_floats(int Cin, int Cout, int K, int groups) {
    int Cig = Cin / groups, Cog = Cout / groups;
    size_t f = (size_t)groups * (size_t)(Cog + 31) * Cig * K, d = (size_t)groups * (size_t)(Cig + 31) * Cog * (K + 1);
    return f > d ? f : d;
}

typedef struct {
    int Cig, Cog, Lout, Lpf, Lpd, ldd;
    size_t pack, x, dT, part, slot;
} conv_geom;

static conv_geom geometry(int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    conv_geom g;
    g.Cig = Cin / groups, g.Cog = Cout / groups;
    g.Lout = conv1d_out_len(Lin, K, stride, pad);
    g.Lpf = fwd_lp(g.Lout, K, stride);
    g.Lpd = dgrad_lp(Lin, K, stride);
    /* rows of the transposed dout: the last channel tile of the last group reads up to
     * ceil(Cog/CT)*CT - Cog columns past Cout; rows padded to whole cache lines */
    int wct = 16 * wgrad_cv(g.Cog);
    g.ldd = (Cout + ceil_div(g.Cog, wct) * wct - g.Cog + 15) / 16 * 16;
    g.pack = pack_floats(Cin, Cout, K, groups);
    size_t xf = (size_t)Cin * g.Lpf, xd = (size_t)Cout * g.Lpd;
    g.x = xf > xd ? xf : xd;
    g.dT = (size_t)g.Lout * g.ldd;
    g.part = (size_t)g.Cig * K * Cout;
    g.slot = g.x + g.dT + g.part;
    return g;
}

int conv1d_direct_applies(int Cin, int K, int groups) { return groups > 0 && Cin / groups * K >= 512; }

size_t conv1d_direct_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    conv_geom g = geometry(Cin, Lin, Cout, K, stride, pad, groups);
    int nt = omp_get_max_threads();
    if (nt > B) nt = B;
    if (nt < 1) nt = 1;
    /* shared: packed weights and a weight-gradient sum; then one slot per thread */
    return g.pack + g.part + (size_t)nt * g.slot;
}

/* Threads for a batch loop: bounded by the batch and by the slots the scratch holds;
 * 0 when not even one fits. */
static int slots_available(const nn_ctx *ctx, const conv_geom *g, int B, double macs) {
    size_t shared = g->pack + g->part;
    if (!ctx || !ctx->scratch || ctx->scratch_floats < shared + g->slot) return 0;
    size_t fit = (ctx->scratch_floats - shared) / g->slot;
    int nt = macs < NN_PARALLEL_MIN_MACS ? 1 : omp_get_max_threads();
    if (nt > B) nt = B;
    if ((size_t)nt > fit) nt = (int)fit;
    return nt;
}

/* ---- forward --------------------------------------------------------------------------------- */

/* wp (groups, Co tiles, Cig, K, CT) from w (Cout, Cig, K), zero beyond each group's channels. */
static void pack_forward(float *wp, const float *w, int Cout, int Cig, int K, int stride, int groups) {
    int Cog = Cout / groups, CT = tiling_for(Cog, stride, 1).CT, nct = ceil_div(Cog, CT);
    /* (group, channel tile, input channel) triples shared out: unless the weights come packed,
     * every call packs them, and at batch 1 the plain forward spent about 2 ms of a 4.5 ms record
     * doing so on one thread */
#pragma omp parallel for collapse(3) if ((size_t)Cout * Cig * K > 65536) schedule(static)
    for (int g = 0; g < groups; g++)
        for (int ct = 0; ct < nct; ct++)
            for (int i = 0; i < Cig; i++)
                for (int k = 0; k < K; k++) {
                    float *dst = wp + ((((size_t)g * nct + ct) * Cig + i) * K + k) * CT;
                    for (int l = 0; l < CT; l++) {
                        int o = ct * CT + l;
                        dst[l] = o < Cog ? w[(((size_t)g * Cog + o) * Cig + i) * K + k] : 0.0f;
                    }
                }
}

/* The forward pass of group g of one sample: X its padded input, out_b its output. */
static conv_pass forward_pass(float *out_b, const float *wp, const float *X, const conv_geom *G, int K, int stride,
                              int g, const float *bias, int relu) {
    int CT = tiling_for(G->Cog, stride, 1).CT, nct = ceil_div(G->Cog, CT);
    conv_pass p = {G->Cig, K, stride, G->Lpf, G->Cog, G->Lout,
                   wp + (size_t)g * nct * CT * G->Cig * K, X + (size_t)g * G->Cig * G->Lpf,
                   out_b + (size_t)g * G->Cog * G->Lout, (size_t)G->Lout, 1, 0,
                   bias ? bias + (size_t)g * G->Cog : NULL, relu};
    return p;
}

static void forward_sample(float *out_b, const float *in_b, const float *wp, float *X, const conv_geom *G,
                           int Cin, int Lin, int K, int stride, int pad, int groups, const float *bias, int relu,
                           int serial) {
    conv1d_pad_rows(X, G->Lpf, in_b, Cin, Lin, pad);
    for (int g = 0; g < groups; g++) {
        conv_pass p = forward_pass(out_b, wp, X, G, K, stride, g, bias, relu);
        run_pass_all(&p, serial);
    }
}

/* Fewer samples than threads: every sample padded into its own slot, then the tiles of all
 * samples and groups (units: sample, group, channel x time tile) shared out among the threads
 * in contiguous runs (mrm_partition). */
static void forward_tiles(float *out, const float *in, const float *wp, float *slots, const conv_geom *G, int B,
                          int Cin, int Lin, int Cout, int K, int stride, int pad, int groups, const float *bias,
                          int relu) {
    conv_pass p0 = forward_pass(out, wp, slots, G, K, stride, 0, bias, relu);
    const long long nq = pass_tiles(&p0), units = (long long)B * groups * nq;
#pragma omp parallel
    {
        int th = omp_get_thread_num(), team = omp_get_num_threads();
        for (int b = th; b < B; b += team)
            conv1d_pad_rows(slots + (size_t)b * G->slot, G->Lpf, in + (size_t)b * Cin * Lin, Cin, Lin, pad);
#pragma omp barrier
        mrm_range r = mrm_partition(units, team, th);
        for (long long u = r.begin; u < r.end; u++) {
            int b = (int)(u / (groups * nq)), g = (int)(u / nq % groups), q = (int)(u % nq);
            conv_pass p = forward_pass(out + (size_t)b * Cout * G->Lout, wp, slots + (size_t)b * G->slot, G, K, stride,
                                       g, bias, relu);
            run_pass(&p, q, q + 1);
        }
    }
}

size_t conv1d_direct_pack_floats(int Cin, int Cout, int K, int groups) { return pack_floats(Cin, Cout, K, groups); }

void conv1d_direct_pack(float *wp, const float *w, int Cin, int Cout, int K, int stride, int groups) {
    pack_forward(wp, w, Cout, Cin / groups, K, stride, groups);
}

/* The forward with the weights packed by the caller (wp) or here, into the scratch (wp NULL). */
static int forward_direct(nn_ctx *ctx, float *out, const float *in, const float *w, const float *wp_given,
                          const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                          int groups) {
    conv_geom G = geometry(Cin, Lin, Cout, K, stride, pad, groups);
    double macs = (double)B * Cout * G.Lout * G.Cig * K;
    int nt = slots_available(ctx, &G, B, macs);
    if (nt < 1) {
        conv1d_fill_nan(out, (size_t)B * Cout * G.Lout);
        return 1;
    }
    float *slots = ctx->scratch + G.pack + G.part;
    const float *wp = wp_given;
    if (!wp) {
        pack_forward(ctx->scratch, w, Cout, G.Cig, K, stride, groups);
        wp = ctx->scratch;
    }
    if (nt == B && B < omp_get_max_threads() && macs >= NN_PARALLEL_MIN_MACS) {
        forward_tiles(out, in, wp, slots, &G, B, Cin, Lin, Cout, K, stride, pad, groups, bias, relu);
        return 1;
    }
    if (nt < 2) {
        for (int b = 0; b < B; b++)
            forward_sample(out + (size_t)b * Cout * G.Lout, in + (size_t)b * Cin * Lin, wp, slots, &G, Cin, Lin,
                           K, stride, pad, groups, bias, relu, 0);
        return 1;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++)
        forward_sample(out + (size_t)b * Cout * G.Lout, in + (size_t)b * Cin * Lin, wp,
                       slots + (size_t)omp_get_thread_num() * G.slot, &G, Cin, Lin, K, stride, pad, groups, bias,
                       relu, 1);
    return 1;
}

int conv1d_forward_direct(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu,
                          int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    return forward_direct(ctx, out, in, w, NULL, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
}

int conv1d_forward_direct_packed(nn_ctx *ctx, float *out, const float *in, const float *wp, const float *bias,
                                 int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    return forward_direct(ctx, out, in, NULL, wp, bias, relu, B, Cin, Lin, Cout, K, stride, pad, groups);
}

/* ---- data gradient --------------------------------------------------------------------------
 * Phase r of stride s: din[i, s*m + r] = sum_{o, j < Kr} Wr[o, j, i] * D_r[o, m + j] with
 *   taps k = k_r + s*(Kr-1-j), k_r = (r + pad) mod s, Kr = #{k < K : k = k_r mod s},
 *   q_r = (r + pad - k_r) / s, D_r[o, v] = dout[o, v - P_r], P_r = Kr - 1 - q_r. */
typedef struct {
    int kr, Kr, P, M; /* first tap, taps, shift of dout, outputs of the phase */
} dphase;

static dphase phase_of(int r, int Lin, int K, int stride, int pad) {
    dphase ph;
    ph.kr = (r + pad) % stride;
    ph.Kr = ph.kr < K ? (K - ph.kr + stride - 1) / stride : 0;
    int q = (r + pad - ph.kr) / stride;
    ph.P = ph.Kr - 1 - q;
    ph.M = r < Lin ? (Lin - r + stride - 1) / stride : 0;
    return ph;
}

/* Packed weights of every (group, phase), one after another: (Ci tiles, Cog, Kr, CT). */
static void pack_dgrad(float *wp, const float *w, int Cout, int Cig, int Lin, int K, int stride, int pad,
                       int groups) {
    int Cog = Cout / groups, CT = tiling_for(Cig, 1, stride).CT, nct = ceil_div(Cig, CT);
    size_t per_group = 0; /* every group packs the same number of floats */
    for (int r = 0; r < stride; r++) per_group += (size_t)nct * Cog * phase_of(r, Lin, K, stride, pad).Kr * CT;
    /* groups shared out (a grouped convolution's pack took 0.1-0.2 ms on one thread a step) */
#pragma omp parallel for if (groups > 1 && (size_t)Cout * Cig * K > 65536) schedule(static)
    for (int g = 0; g < groups; g++) {
        float *p = wp + (size_t)g * per_group;
        for (int r = 0; r < stride; r++) {
            dphase ph = phase_of(r, Lin, K, stride, pad);
            for (int ct = 0; ct < nct; ct++)
                for (int o = 0; o < Cog; o++)
                    for (int j = 0; j < ph.Kr; j++) {
                        int k = ph.kr + stride * (ph.Kr - 1 - j);
                        for (int l = 0; l < CT; l++) {
                            int i = ct * CT + l;
                            p[l] = i < Cig ? w[(((size_t)g * Cog + o) * Cig + i) * K + k] : 0.0f;
                        }
                        p += CT;
                    }
        }
    }
}

static void dgrad_sample(float *din_b, const float *dout_b, const float *wp, float *D, const conv_geom *G,
                         int Lin, int K, int stride, int pad, int groups, int serial) {
    tiling tl = tiling_for(G->Cig, 1, stride);
    int CT = tl.CT, nct = ceil_div(G->Cig, CT);
    for (int g = 0; g < groups; g++)
        for (int r = 0; r < stride; r++) {
            dphase ph = phase_of(r, Lin, K, stride, pad);
            const float *wpr = wp;
            wp += (size_t)nct * CT * G->Cog * ph.Kr;
            if (ph.Kr == 0 || ph.M == 0) continue;
            int Lp = ceil_div(ph.M, tl.TT) * tl.TT + ph.Kr;
            /* the group's dout rows, shifted by P and zero-padded */
            conv1d_pad_rows(D, Lp, dout_b + (size_t)g * G->Cog * G->Lout, G->Cog, G->Lout, ph.P);
            conv_pass p = {G->Cog, ph.Kr, 1, Lp, G->Cig, ph.M, wpr, D,
                           din_b + (size_t)g * G->Cig * Lin + r, (size_t)Lin, stride, 1, NULL, 0};
            run_pass_all(&p, serial);
        }
}

/* ---- weight gradient ------------------------------------------------------------------------
 * part[g, i*K + k, o] += sum_t dT[t, g*Cog + o] * X[g*Cig + i, t*s + k] for one sample, over
 * the tiles [q0, q1) of the grid (group, channel tile, (i,k) tile). */
#define WGRAD_TILE(NAME, CV, NJ, S)                                                                  \
    __attribute__((optimize("no-predictive-commoning"))) static void NAME(                          \
        float *part, int ldp, int nco, int nj, const float *dT, int ldd, const float *const *xj, int T, \
        int s) {                                                                                     \
        (void)s;                                                                                     \
        __m512 acc[CV * NJ];                                                                         \
        _Pragma("GCC unroll 24") for (int j = 0; j < CV * NJ; j++) acc[j] = _mm512_setzero_ps();     \
        for (int t = 0; t < T; t++) {                                                                \
            __m512 d[CV];                                                                            \
            _Pragma("GCC unroll 4") for (int c = 0; c < CV; c++) d[c] = _mm512_loadu_ps(dT + (size_t)t * ldd + 16 * c); \
            _Pragma("GCC unroll 24") for (int j = 0; j < NJ; j++) {                                  \
                __m512 xv = _mm512_set1_ps(xj[j][(size_t)t * (S)]);                                  \
                _Pragma("GCC unroll 4") for (int c = 0; c < CV; c++) acc[c * NJ + j] =               \
                    _mm512_fmadd_ps(d[c], xv, acc[c * NJ + j]);                                      \
            }                                                                                        \
        }                                                                                            \
        __m512 res[CV * NJ];                                                                         \
        _Pragma("GCC unroll 48") for (int j = 0; j < CV * NJ; j++) res[j] = acc[j];                  \
        float buf[16];                                                                               \
        for (int c = 0; c < CV; c++) {                                                               \
            int nl = imin(16, nco - 16 * c);                                                         \
            for (int j = 0; j < nj; j++) {                                                           \
                _mm512_storeu_ps(buf, res[c * NJ + j]);                                              \
                float *p = part + (size_t)j * ldp + 16 * c;                                          \
                for (int l = 0; l < nl; l++) p[l] += buf[l];                                         \
            }                                                                                        \
        }                                                                                            \
    }

/* Weight-gradient tiles: 64 channels x 6 taps (10 loads per 24 FMAs) where a group has 64
 * output channels or more, else 32 x 12 or 16 x 24. */
WGRAD_TILE(wtile4_s1, 4, 6, 1)
WGRAD_TILE(wtile4_s2, 4, 6, 2)
WGRAD_TILE(wtile4_sn, 4, 6, s)
WGRAD_TILE(wtile2_s1, 2, NT2, 1)
WGRAD_TILE(wtile2_s2, 2, NT2, 2)
WGRAD_TILE(wtile2_sn, 2, NT2, s)
WGRAD_TILE(wtile1_s1, 1, NT1, 1)
WGRAD_TILE(wtile1_s2, 1, NT1, 2)
WGRAD_TILE(wtile1_sn, 1, NT1, s)

static inline int wgrad_cv(int Cog) { return Cog >= 64 ? 4 : tile_cv(Cog); }
static inline int wgrad_nj(int cv) { return cv == 4 ? 6 : tile_nt(cv); }

static int wgrad_tiles(const conv_geom *G, int K, int groups) {
    int CV = wgrad_cv(G->Cog), NJ = wgrad_nj(CV);
    return groups * ceil_div(G->Cog, 16 * CV) * ceil_div(G->Cig * K, NJ);
}

static void wgrad_run(float *part, const float *dT, const float *X, const conv_geom *G, int K, int stride,
                      int groups, int q0, int q1) {
    int CV = wgrad_cv(G->Cog), CT = 16 * CV, NJ = wgrad_nj(CV), R = G->Cig * K;
    int nct = ceil_div(G->Cog, CT), njt = ceil_div(R, NJ);
    (void)groups;
    for (int q = q0; q < q1; q++) {
        int g = q / (nct * njt), ct = q / njt % nct, j0 = q % njt * NJ;
        int nj = imin(NJ, R - j0), nco = imin(CT, G->Cog - ct * CT);
        const float *xj[NT1];
        for (int j = 0; j < NJ; j++) {
            int jj = j0 + (j < nj ? j : 0), i = jj / K, k = jj % K;
            xj[j] = X + ((size_t)g * G->Cig + i) * G->Lpf + k;
        }
        float *p = part + ((size_t)g * R + j0) * G->Cog + ct * CT;
        const float *d = dT + (size_t)g * G->Cog + ct * CT;
#define CALL_WTILE(f, S) f(p, G->Cog, nco, nj, d, G->ldd, xj, G->Lout, S)
        if (CV == 4) {
            if (stride == 1) CALL_WTILE(wtile4_s1, 1);
            else if (stride == 2) CALL_WTILE(wtile4_s2, 2);
            else CALL_WTILE(wtile4_sn, stride);
        } else if (CV == 2) {
            if (stride == 1) CALL_WTILE(wtile2_s1, 1);
            else if (stride == 2) CALL_WTILE(wtile2_s2, 2);
            else CALL_WTILE(wtile2_sn, stride);
        } else {
            if (stride == 1) CALL_WTILE(wtile1_s1, 1);
            else if (stride == 2) CALL_WTILE(wtile1_s2, 2);
            else CALL_WTILE(wtile1_sn, stride);
        }
#undef CALL_WTILE
    }
}

/* dT (Lout, ldd) = dout_b^T, zero in the columns past Cout. */
static void transpose_dout(float *dT, const float *dout_b, int Cout, int Lout, int ldd) {
    for (int t = 0; t < Lout; t++) memset(dT + (size_t)t * ldd + Cout, 0, (size_t)(ldd - Cout) * sizeof(float));
    for (int o = 0; o < Cout; o++) {
        const float *src = dout_b + (size_t)o * Lout;
        for (int t = 0; t < Lout; t++) dT[(size_t)t * ldd + o] = src[t];
    }
}

/* dw[g*Cog + o, i, k] += part[g, i*K + k, o] (summed over nparts partials nstride apart). */
static void unpack_dw(float *dw, const float *part, int nparts, size_t nstride, int Cout, int Cig, int K,
                      int groups) {
    int Cog = Cout / groups, R = Cig * K;
#pragma omp parallel for if ((size_t)Cout * R > 65536) schedule(static)
    for (int o = 0; o < Cout; o++) {
        int g = o / Cog, ol = o % Cog;
        for (int j = 0; j < R; j++) {
            size_t idx = ((size_t)g * R + j) * Cog + ol;
            float s = 0.0f;
            for (int n = 0; n < nparts; n++) s += part[n * nstride + idx];
            dw[(size_t)o * R + j] += s;
        }
    }
}

int conv1d_backward_direct(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                           const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                           int groups) {
    if (!din && !dw) return 1;
    conv_geom G = geometry(Cin, Lin, Cout, K, stride, pad, groups);
    double macs = (double)B * Cout * G.Lout * G.Cig * K;
    int nt = slots_available(ctx, &G, B, macs);
    if (nt < 1) {
        conv1d_fill_nan(din, (size_t)B * Cin * Lin);
        conv1d_fill_nan(dw, (size_t)Cout * G.Cig * K);
        return 1;
    }
    float *wp = ctx->scratch, *shared_part = ctx->scratch + G.pack, *slots = shared_part + G.part;
    if (din) pack_dgrad(wp, w, Cout, G.Cig, Lin, K, stride, pad, groups);
    if (nt < 2) { /* sample by sample, tiles shared among the threads */
        if (dw) memset(shared_part, 0, G.part * sizeof(float));
        float *X = slots, *dT = slots + G.x;
        int nq = wgrad_tiles(&G, K, groups);
        for (int b = 0; b < B; b++) {
            if (din)
                dgrad_sample(din + (size_t)b * Cin * Lin, dout + (size_t)b * Cout * G.Lout, wp, X, &G, Lin, K,
                             stride, pad, groups, 0);
            if (dw) {
                conv1d_pad_rows(X, G.Lpf, in + (size_t)b * Cin * Lin, Cin, Lin, pad);
                transpose_dout(dT, dout + (size_t)b * Cout * G.Lout, Cout, G.Lout, G.ldd);
                if (nq < 2 || omp_get_max_threads() < 2 || macs / B < NN_PARALLEL_MIN_MACS)
                    wgrad_run(shared_part, dT, X, &G, K, stride, groups, 0, nq);
                else {
#pragma omp parallel for schedule(static)
                    for (int q = 0; q < nq; q++) wgrad_run(shared_part, dT, X, &G, K, stride, groups, q, q + 1);
                }
            }
        }
        if (dw) unpack_dw(dw, shared_part, 1, 0, Cout, G.Cig, K, groups);
        return 1;
    }
#pragma omp parallel num_threads(nt)
    {
        float *slot = slots + (size_t)omp_get_thread_num() * G.slot;
        float *X = slot, *dT = slot + G.x, *part = dT + G.dT;
        int nq = wgrad_tiles(&G, K, groups);
        if (dw) memset(part, 0, G.part * sizeof(float));
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            if (din)
                dgrad_sample(din + (size_t)b * Cin * Lin, dout + (size_t)b * Cout * G.Lout, wp, X, &G, Lin, K,
                             stride, pad, groups, 1);
            if (dw) {
                conv1d_pad_rows(X, G.Lpf, in + (size_t)b * Cin * Lin, Cin, Lin, pad);
                transpose_dout(dT, dout + (size_t)b * Cout * G.Lout, Cout, G.Lout, G.ldd);
                wgrad_run(part, dT, X, &G, K, stride, groups, 0, nq);
            }
        }
    }
    if (dw) unpack_dw(dw, slots + G.x + G.dT, nt, G.slot, Cout, G.Cig, K, groups);
    return 1;
}

#else /* no AVX-512: the GEMM path does everything */

int conv1d_direct_applies(int Cin, int K, int groups) {
    (void)Cin, (void)K, (void)groups;
    return 0;
}
size_t conv1d_direct_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    (void)B, (void)Cin, (void)Lin, (void)Cout, (void)K, (void)stride, (void)pad, (void)groups;
    return 0;
}
int conv1d_forward_direct(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu,
                          int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    (void)ctx, (void)out, (void)in, (void)w, (void)bias, (void)relu, (void)B, (void)Cin, (void)Lin, (void)Cout;
    (void)K, (void)stride;
    (void)pad, (void)groups;
    return 0;
}
size_t conv1d_direct_pack_floats(int Cin, int Cout, int K, int groups) {
    (void)Cin, (void)Cout, (void)K, (void)groups;
    return 0;
}
void conv1d_direct_pack(float *wp, const float *w, int Cin, int Cout, int K, int stride, int groups) {
    (void)wp, (void)w, (void)Cin, (void)Cout, (void)K, (void)stride, (void)groups;
}
int conv1d_forward_direct_packed(nn_ctx *ctx, float *out, const float *in, const float *wp, const float *bias,
                                 int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    (void)ctx, (void)out, (void)in, (void)wp, (void)bias, (void)relu, (void)B, (void)Cin, (void)Lin, (void)Cout;
    (void)K, (void)stride, (void)pad, (void)groups;
    return 0;
}
int conv1d_backward_direct(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                           const float *w, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                           int groups) {
    (void)ctx, (void)din, (void)dw, (void)dout, (void)in, (void)w, (void)B, (void)Cin, (void)Lin, (void)Cout;
    (void)K, (void)stride, (void)pad, (void)groups;
    return 0;
}
#endif
