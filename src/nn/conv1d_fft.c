/* 1-D convolution by FFT (overlap-save) for long kernels: the merged 33-tap multi-scale
 * convolutions. The same function as the direct and GEMM paths, computed with fewer
 * multiplications: a block of M outputs of one (output, input) channel pair costs one complex
 * multiply-add per frequency (N/2 + 1 of them) instead of M * K real ones.
 *
 * Stride s is handled by polyphase: phase p of the padded input, x_p[i] = xpad[s*i + p], and
 * the taps w_p[j] = w[s*j + p] turn the convolution into a stride-1 correlation over Ce = Cin*s
 * input channels ("ci' = ci*s + p") with Ke = ceil(K/s) taps:
 *
 *     y[co, t] = sum_{ci', j < Ke} w_p[co, ci', j] * x_p[ci', t + j].
 *
 * Blocks: block j of a sample covers outputs t in [jM, jM + M), M = N - Ke + 1, and reads
 * x_p[jM .. jM + N). With real FFTs of size N (F = N/2 + 1 frequencies), per frequency f
 *
 *     forward       Y[co, col]  = sum_ci' conj(W[co, ci']) X[ci', col]
 *     data grad     DX[ci', col] = sum_co  W[co, ci'] DY[co, col]        (overlap-add of blocks)
 *     weight grad   DW[co, ci'] = sum_col conj(DY[co, col]) X[ci', col]  (taps 0..Ke-1 of its IFFT)
 *
 * where col = (sample, block) and DY is the FFT of a block of dout zero-padded to N. None of
 * the three wraps around (t + j <= M - 1 + Ke - 1 = N - 1), so the results are exact, not
 * approximations. Each complex product over all columns is ONE real GEMM per frequency, with
 * the real and imaginary parts stacked:
 *
 *     Wm[f] (2Cout, 2Ce) = [[Wr, Wi], [-Wi, Wr]],  Xm[f] (2Ce, ncol) = [Xr; Xi],
 *     Ym = Wm Xm,  DXm = Wm^T DYm,  G = DYm Xm^T, DW = (G_rr + G_ii) + i (G_ri - G_ir).
 *
 * The transforms are batched: 16 independent complex FFTs side by side, one per vector lane
 * (split real and imaginary arrays, element k of lane l at [k * 16 + l]), each carrying two real
 * sequences as its real and imaginary part; a radix-2 Stockham pass is then one vector
 * operation per butterfly for 32 transforms, and a frequency of 16 columns is one 64-byte run
 * of the GEMM matrices. (FFTW, tried first, does not vectorise such strided batches of real
 * transforms: 220 ns per 128-point transform, about 10 times this.) The GEMMs are oneDNN's,
 * one frequency per thread. Every output value is computed by one thread in a fixed order:
 * same inputs and thread count, same bits. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv1d_impl.h"
#include "nn/simd16.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* transform sizes 64, 128, 256; lanes (columns or channels) per batch of transforms; fewest
 * columns (samples x blocks) for which the forward takes the FFT path unless a size is forced */
enum { FFT_NSIZES = 3, LANES = 16, FFT_MIN_COLS = 16 };

struct nn_fft {
    float *wr[FFT_NSIZES], *wi[FFT_NSIZES]; /* exp(-2 pi i k / n), k < n/2 */
    int force_n; /* 0: choose by cost; else this size (tests and benchmarks) */
};

nn_fft *nn_fft_create(void) {
    nn_fft *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    for (int i = 0; i < FFT_NSIZES; i++) {
        int n = 64 << i;
        p->wr[i] = malloc((size_t)n / 2 * sizeof(float));
        p->wi[i] = malloc((size_t)n / 2 * sizeof(float));
        if (!p->wr[i] || !p->wi[i]) {
            nn_fft_free(p);
            return NULL;
        }
        for (int k = 0; k < n / 2; k++) {
            double a = -2.0 * M_PI * k / n;
            p->wr[i][k] = (float)cos(a);
            p->wi[i][k] = (float)sin(a);
        }
    }
    return p;
}

void nn_fft_free(nn_fft *p) {
    if (!p) return;
    for (int i = 0; i < FFT_NSIZES; i++) free(p->wr[i]), free(p->wi[i]);
    free(p);
}

void nn_fft_force_size(nn_fft *p, int n) {
    if (p) p->force_n = n;
}

/* ---- 16 complex FFTs at once ----------------------------------------------------------------
 * Forward (sign -1, unnormalised) of n elements per lane in (re, im), radix-2 Stockham (each
 * pass reads one buffer and writes the other, no bit reversal); t* are scratch of the same size.
 * Returns 0 when the result is in (re, im), 1 when it is in (tr, ti). */
static int fft_lanes(float *re, float *im, float *tr, float *ti, int n, const float *wr, const float *wi) {
    float *xr = re, *xi = im, *yr = tr, *yi = ti;
    int which = 0;
    for (int ns = n, s = 1; ns > 1; ns /= 2, s *= 2) {
        int m = ns / 2, step = n / ns;
        for (int p = 0; p < m; p++) {
            const float c = wr[p * step], sn = wi[p * step];
            for (int q = 0; q < s; q++) {
                const float *ar = xr + (size_t)(q + s * p) * LANES, *ai = xi + (size_t)(q + s * p) * LANES;
                const float *br = xr + (size_t)(q + s * (p + m)) * LANES, *bi = xi + (size_t)(q + s * (p + m)) * LANES;
                float *y0r = yr + (size_t)(q + s * 2 * p) * LANES, *y0i = yi + (size_t)(q + s * 2 * p) * LANES;
                float *y1r = y0r + (size_t)s * LANES, *y1i = y0i + (size_t)s * LANES;
#pragma omp simd
                for (int l = 0; l < LANES; l++) {
                    float dr = ar[l] - br[l], di = ai[l] - bi[l];
                    y0r[l] = ar[l] + br[l];
                    y0i[l] = ai[l] + bi[l];
                    y1r[l] = dr * c - di * sn;
                    y1i[l] = dr * sn + di * c;
                }
            }
        }
        float *t = xr;
        xr = yr, yr = t;
        t = xi, xi = yi, yi = t;
        which ^= 1;
    }
    return which;
}

/* dst[j * ldd + i] = src[i * lds + j] for i, j < 16: rows of 16 columns to lanes and back. */
static void transpose16(const float *src, size_t lds, float *dst, size_t ldd) {
#if defined(__AVX512F__)
    nn_transpose16(src, lds, dst, ldd);
#else
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
#endif
}

/* dst[0..nc) = src[0..nc), nc <= 16 (one masked vector: a call to memcpy costs more here) */
static inline void copy16(float *dst, const float *src, int nc) {
#if defined(__AVX512F__)
    __mmask16 m = (__mmask16)((1u << nc) - 1u);
    _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
#else
    for (int l = 0; l < nc; l++) dst[l] = src[l];
#endif
}

/* rows (LANES, n) <-> lanes (n, LANES), n a multiple of 16 */
static void rows_to_lanes(const float *rows, int n, float *z) {
    for (int i = 0; i < n; i += 16) transpose16(rows + i, (size_t)n, z + (size_t)i * LANES, LANES);
}
static void lanes_to_rows(const float *z, int n, float *rows) {
    for (int i = 0; i < n; i += 16) transpose16(z + (size_t)i * LANES, LANES, rows + i, (size_t)n);
}

/* Buffers of one thread: the lanes (z, and the FFT's scratch t), n <= 256. */
typedef struct {
    float *zr, *zi, *tr, *ti;
} lane_buf;

/* Spectra of two real sequences per lane, a in zr and b in zi (n each), written for f <= n/2 as
 * (ar, ai, br, bi)[f * LANES + l] into out (4 arrays of (n/2 + 1) * LANES). */
static void real_pair_forward(const nn_fft *fft, int idx, int n, lane_buf *lb, float *ar, float *ai, float *br,
                              float *bi) {
    int r = fft_lanes(lb->zr, lb->zi, lb->tr, lb->ti, n, fft->wr[idx], fft->wi[idx]);
    const float *Zr = r ? lb->tr : lb->zr, *Zi = r ? lb->ti : lb->zi;
    for (int f = 0; f <= n / 2; f++) {
        int g = f ? n - f : 0;
        const float *pr = Zr + (size_t)f * LANES, *pi = Zi + (size_t)f * LANES;
        const float *qr = Zr + (size_t)g * LANES, *qi = Zi + (size_t)g * LANES;
        float *o0 = ar + (size_t)f * LANES, *o1 = ai + (size_t)f * LANES, *o2 = br + (size_t)f * LANES,
              *o3 = bi + (size_t)f * LANES;
#pragma omp simd
        for (int l = 0; l < LANES; l++) {
            /* A = (Z[f] + conj Z[n-f]) / 2, B = (Z[f] - conj Z[n-f]) / 2i */
            o0[l] = 0.5f * (pr[l] + qr[l]);
            o1[l] = 0.5f * (pi[l] - qi[l]);
            o2[l] = 0.5f * (pi[l] + qi[l]);
            o3[l] = 0.5f * (qr[l] - pr[l]);
        }
    }
}

/* The inverse (unnormalised: n times the sequences) of two Hermitian half spectra per lane,
 * A = (ar, ai) and B = (br, bi) for f <= n/2 (the imaginary parts at 0 and n/2 are taken as 0);
 * returns a in *xa and b in *xb (n elements per lane, the second negated: b = -xb). */
static void real_pair_inverse(const nn_fft *fft, int idx, int n, lane_buf *lb, const float *ar, const float *ai,
                              const float *br, const float *bi, const float **xa, const float **xb) {
    /* conj(Z), Z = A + iB, through the Hermitian extension; IDFT(Z) = conj(DFT(conj Z)) */
    for (int f = 0; f <= n / 2; f++) {
        const float *a_r = ar + (size_t)f * LANES, *a_i = ai + (size_t)f * LANES, *b_r = br + (size_t)f * LANES,
                    *b_i = bi + (size_t)f * LANES;
        float *zr = lb->zr + (size_t)f * LANES, *zi = lb->zi + (size_t)f * LANES;
        if (f == 0 || f == n / 2) {
#pragma omp simd
            for (int l = 0; l < LANES; l++) zr[l] = a_r[l], zi[l] = -b_r[l];
            continue;
        }
        float *wr = lb->zr + (size_t)(n - f) * LANES, *wi = lb->zi + (size_t)(n - f) * LANES;
#pragma omp simd
        for (int l = 0; l < LANES; l++) {
            zr[l] = a_r[l] - b_i[l];
            zi[l] = -a_i[l] - b_r[l];
            wr[l] = a_r[l] + b_i[l];
            wi[l] = a_i[l] - b_r[l];
        }
    }
    int r = fft_lanes(lb->zr, lb->zi, lb->tr, lb->ti, n, fft->wr[idx], fft->wi[idx]);
    *xa = r ? lb->tr : lb->zr;
    *xb = r ? lb->ti : lb->zi;
}

/* ---- geometry ------------------------------------------------------------------------------ */

typedef struct {
    int Cin, Lin, Cout, K, S, pad, Lout;
    int Ce, Ke, N, M, F, nblk, ncol, size_idx, spt;
    size_t ws, xs, ys;       /* floats from one frequency's matrix of Wm (G), Xm, Ym to the next */
    size_t wm, xm, ym, slot; /* floats: Wm (and G), Xm, Ym, one thread's transform buffers */
} fft_geom;

static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
/* floats rounded up to whole 64-byte lines, so every region starts aligned */
static inline size_t lines(size_t n) { return (n + 15) / 16 * 16; }

static fft_geom geometry(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int force_n) {
    fft_geom g;
    memset(&g, 0, sizeof g);
    g.Cin = Cin, g.Lin = Lin, g.Cout = Cout, g.K = K, g.S = stride, g.pad = pad;
    g.Lout = conv1d_out_len(Lin, K, stride, pad);
    g.Ce = Cin * stride, g.Ke = ceil_div(K, stride);
    double best = -1.0;
    for (int i = 0; i < FFT_NSIZES; i++) {
        int n = 64 << i;
        if (n < 2 * g.Ke) continue; /* at least half of each block useful */
        if (force_n && n != force_n) continue;
        int m = n - g.Ke + 1, nb = ceil_div(g.Lout, m), f = n / 2 + 1;
        /* multiply-adds per sample: the GEMMs, and about 2 N log2 N per transform */
        double cost = (double)nb * f * 4.0 * Cout * g.Ce + (double)nb * (g.Ce + Cout) * 2.0 * n * log2(n);
        if (best < 0 || cost < best) best = cost, g.size_idx = i;
    }
    if (best < 0) return g; /* N == 0: not applicable */
    g.N = 64 << g.size_idx, g.M = g.N - g.Ke + 1, g.F = g.N / 2 + 1;
    g.nblk = ceil_div(g.Lout, g.M), g.ncol = B * g.nblk;
    /* one cache line more than whole lines between frequencies: the writes of one spectrum,
     * one per frequency, then fall into different cache sets (a multiple of 4 KiB would put
     * them all into the same one) */
    g.ws = lines((size_t)4 * Cout * g.Ce) + 16;
    g.xs = lines((size_t)2 * g.Ce * g.ncol) + 16;
    g.ys = lines((size_t)2 * Cout * g.ncol) + 16;
    g.wm = (size_t)g.F * g.ws, g.xm = (size_t)g.F * g.xs, g.ym = (size_t)g.F * g.ys;
    /* samples per transform task: whole samples (so that a task owns the rows it adds to),
     * about LANES columns */
    g.spt = LANES / g.nblk > 1 ? LANES / g.nblk : 1;
    /* per thread: the lanes (4 arrays of N) and the half spectra of a pair (4 of F) */
    g.slot = 5 * (size_t)g.N * LANES + 4 * (size_t)g.F * LANES;
    return g;
}

/* The shapes the path takes: long kernels, no groups, strides up to 4. */
static int shape_ok(int K, int stride, int groups) { return groups == 1 && K >= 15 && stride >= 1 && stride <= 4; }

int conv1d_fft_applies(const nn_ctx *ctx, int Cin, int K, int stride, int groups) {
    (void)Cin;
    return ctx && ctx->fft && shape_ok(K, stride, groups);
}

static int max_threads(void) {
    int nt = omp_get_max_threads();
    return nt < 1 ? 1 : nt;
}

/* forward: Wm, Xm, Ym; backward: Wm, G, Xm (reused for DXm), Ym (DYm) */
size_t conv1d_fft_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    if (!shape_ok(K, stride, groups)) return 0;
    fft_geom g = geometry(B, Cin, Lin, Cout, K, stride, pad, 0);
    if (!g.N) return 0;
    size_t best = 0;
    for (int i = 0; i < FFT_NSIZES; i++) { /* any size a test may force */
        fft_geom h = geometry(B, Cin, Lin, Cout, K, stride, pad, 64 << i);
        if (!h.N) continue;
        size_t s = 2 * h.wm + h.xm + h.ym + (size_t)max_threads() * h.slot + 16;
        if (s > best) best = s;
    }
    return best;
}

/* Prepared spectra: a header of SPEC_HDR floats naming the geometry they were made for
 * (N, Cout, Ce, Ke as integers), then Wm. */
enum { SPEC_HDR = 16 };

static const nn_fft *fft_of(const nn_ctx *ctx) { return ctx ? ctx->fft : NULL; }

size_t conv1d_fft_weight_floats(const nn_ctx *ctx, int Cin, int Lin, int Cout, int K, int stride, int pad, int groups) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, groups)) return 0;
    fft_geom g = geometry(1, Cin, Lin, Cout, K, stride, pad, fft_of(ctx)->force_n);
    return g.N ? SPEC_HDR + g.wm : 0;
}

static void spec_header(int32_t *h, const fft_geom *g) {
    memset(h, 0, SPEC_HDR * sizeof(int32_t));
    h[0] = g->N, h[1] = g->Cout, h[2] = g->Ce, h[3] = g->Ke, h[4] = g->S;
}

/* The scratch regions, 64-byte aligned. */
typedef struct {
    float *wm, *gm, *xm, *ym, *slots;
} fft_mem;

static int carve(const nn_ctx *ctx, const fft_geom *g, fft_mem *mem, int with_wm) {
    if (!ctx || !ctx->scratch) return 0;
    float *base = ctx->scratch;
    size_t skip = (size_t)((64 - ((uintptr_t)base & 63)) & 63) / sizeof(float);
    size_t need = skip + (with_wm ? 2 * g->wm : g->wm) + g->xm + g->ym + (size_t)max_threads() * g->slot;
    if (((uintptr_t)base & 3) || need > ctx->scratch_floats) return 0;
    float *p = base + skip;
    mem->wm = with_wm ? p : NULL;
    p += with_wm ? g->wm : 0;
    mem->gm = p;
    p += g->wm;
    mem->xm = p;
    p += g->xm;
    mem->ym = p;
    p += g->ym;
    mem->slots = p;
    return 1;
}

/* ---- transforms ----------------------------------------------------------------------------
 * Every transform task takes a pair of channels (the two real sequences of each lane) and
 * either a group of whole samples, whose columns go through the lanes LANES at a time, or (for
 * the weights) LANES output channels. */

typedef struct {
    lane_buf lb;
    float *ar, *ai, *br, *bi; /* half spectra of the pair, (F, LANES) each */
    float *rows;              /* (LANES, N): the lanes as rows */
} slot_bufs;

static slot_bufs slot_of(const fft_geom *g, float *slots) {
    slot_bufs s;
    float *p = slots + (size_t)omp_get_thread_num() * g->slot;
    size_t z = (size_t)g->N * LANES, h = (size_t)g->F * LANES;
    s.lb.zr = p, s.lb.zi = p + z, s.lb.tr = p + 2 * z, s.lb.ti = p + 3 * z;
    s.ar = p + 4 * z, s.ai = s.ar + h, s.br = s.ai + h, s.bi = s.br + h;
    s.rows = s.bi + h;
    return s;
}

/* Stores lanes 0..nc of the half spectrum (re, im) into rows ch and nrow + ch of the
 * per-frequency matrices (fstride apart, row length ncol) at column col0. */
static void store_spec(float *mat, size_t fstride, const fft_geom *g, int ch, int nrow, int col0, int nc,
                       const float *re, const float *im) {
#if defined(__AVX512F__)
    /* whole aligned lines (the usual case): stored past the caches, which the spectra (several
     * MiB, read back by the GEMMs frequency by frequency) would only wash out */
    float *d0 = mat + (size_t)ch * g->ncol + col0;
    if (nc == LANES && !((uintptr_t)d0 & 63) && !(g->ncol % 16) && !(fstride % 16)) {
        for (int f = 0; f < g->F; f++) {
            float *dr = d0 + f * fstride, *di = dr + (size_t)nrow * g->ncol;
            _mm512_stream_ps(dr, _mm512_loadu_ps(re + (size_t)f * LANES));
            _mm512_stream_ps(di, _mm512_loadu_ps(im + (size_t)f * LANES));
        }
        return;
    }
#endif
    for (int f = 0; f < g->F; f++) {
        float *dr = mat + f * fstride + (size_t)ch * g->ncol + col0, *di = dr + (size_t)nrow * g->ncol;
        copy16(dr, re + (size_t)f * LANES, nc);
        copy16(di, im + (size_t)f * LANES, nc);
    }
}

/* The reverse: lanes 0..nc of (re, im) from the matrices (other lanes 0). */
static void load_spec(const float *mat, size_t fstride, const fft_geom *g, int ch, int nrow, int col0, int nc,
                      float *re, float *im) {
    for (int f = 0; f < g->F; f++) {
        const float *sr = mat + f * fstride + (size_t)ch * g->ncol + col0, *si = sr + (size_t)nrow * g->ncol;
        float *r = re + (size_t)f * LANES, *i = im + (size_t)f * LANES;
        for (int l = nc; l < LANES; l++) r[l] = 0.0f, i[l] = 0.0f;
        copy16(r, sr, nc);
        copy16(i, si, nc);
    }
}

/* Asks for the lanes col0 .. col0 + 15 of rows ch and nrow + ch of every frequency's matrix ahead
 * of load_spec: F lines a row, fstride apart, which the hardware prefetcher does not follow. */
static void prefetch_spec(const float *mat, size_t fstride, const fft_geom *g, int ch, int nrow, int col0) {
    const float *s0 = mat + (size_t)ch * g->ncol + col0, *s1 = s0 + (size_t)nrow * g->ncol;
    for (int f = 0; f < g->F; f++) {
        __builtin_prefetch(s0 + f * fstride, 0, 3);
        __builtin_prefetch(s1 + f * fstride, 0, 3);
    }
}

/* The i in [*i0, *i1) (i < N) whose position pos0 + S*i lies inside the input. */
static void inside(const fft_geom *g, int pos0, int *i0, int *i1) {
    int a = pos0 >= 0 ? 0 : (-pos0 + g->S - 1) / g->S;
    int b = g->Lin - pos0 <= 0 ? 0 : (g->Lin - pos0 + g->S - 1) / g->S;
    if (b > g->N) b = g->N;
    if (a > b) a = b;
    *i0 = a, *i1 = b;
}

/* r[i] = x[2 i] for i < n (a phase of a stride-2 input row): 16 at a time from two vectors, the
 * last 16 or fewer element by element (x[2 (n - 1)] is the last one readable). */
static void gather_even(float *r, const float *x, int n) {
    int i = 0;
#if defined(__AVX512F__)
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (; i + 16 < n; i += 16) /* reads x[2i .. 2i + 31]: 2i + 31 < 2(n - 1) */
        _mm512_storeu_ps(r + i,
                         _mm512_permutex2var_ps(_mm512_loadu_ps(x + 2 * i), even, _mm512_loadu_ps(x + 2 * i + 16)));
#endif
    for (; i < n; i++) r[i] = x[2 * i];
}

/* Row l of rows (LANES, N) gets block (col0 + l) of phase channel cip of the input:
 * x_p[jM + i] = in[b, ci, S*(jM + i) + p - pad] (0 outside the input), i < N. */
static void fill_input(float *rows, const float *in, const fft_geom *g, int cip, int col0, int nc) {
    int ci = cip / g->S, p = cip % g->S;
    for (int l = 0; l < LANES; l++) {
        float *r = rows + (size_t)l * g->N;
        if (l >= nc || cip >= g->Ce) {
            memset(r, 0, (size_t)g->N * sizeof(float));
            continue;
        }
        int col = col0 + l, b = col / g->nblk, j = col % g->nblk;
        const float *x = in + ((size_t)b * g->Cin + ci) * g->Lin;
        int pos0 = g->S * j * g->M + p - g->pad, i0, i1; /* position of i = 0 */
        inside(g, pos0, &i0, &i1);
        memset(r, 0, (size_t)i0 * sizeof(float));
        if (g->S == 1)
            memcpy(r + i0, x + pos0 + i0, (size_t)(i1 - i0) * sizeof(float));
        else if (g->S == 2)
            gather_even(r + i0, x + pos0 + 2 * i0, i1 - i0);
        else
            for (int i = i0; i < i1; i++) r[i] = x[pos0 + g->S * i];
        memset(r + i1, 0, (size_t)(g->N - i1) * sizeof(float));
    }
}

/* Row l of rows gets block (col0 + l) of channel co of dout: dout[b, co, jM .. jM + M), then 0. */
static void fill_dout(float *rows, const float *dout, const fft_geom *g, int co, int col0, int nc) {
    for (int l = 0; l < LANES; l++) {
        float *r = rows + (size_t)l * g->N;
        int m = 0;
        if (l < nc && co < g->Cout) {
            int col = col0 + l, b = col / g->nblk, j = col % g->nblk;
            m = g->Lout - j * g->M < g->M ? g->Lout - j * g->M : g->M;
            memcpy(r, dout + ((size_t)b * g->Cout + co) * g->Lout + (size_t)j * g->M, (size_t)m * sizeof(float));
        }
        memset(r + m, 0, (size_t)(g->N - m) * sizeof(float));
    }
}

/* Tasks (channel pair, column group) over nch channels; the group's columns LANES at a time.
 * A pass that adds overlapping blocks into its output (own_samples) takes groups of whole
 * samples, so that a task owns the rows it adds to; the others take LANES columns per group,
 * whole 64-byte runs of the per-frequency matrices when the row length allows. */
typedef struct {
    int ch, col0, ncols;
} pair_task;

static int pair_groups(const fft_geom *g, int own_samples) {
    return own_samples ? (g->ncol / g->nblk + g->spt - 1) / g->spt : (g->ncol + LANES - 1) / LANES;
}

static int pair_tasks(const fft_geom *g, int nch, int own_samples) {
    return (nch + 1) / 2 * pair_groups(g, own_samples);
}

static pair_task pair_task_of(const fft_geom *g, int task, int own_samples) {
    int ngroup = pair_groups(g, own_samples), grp = task % ngroup;
    pair_task t;
    t.ch = 2 * (task / ngroup);
    if (own_samples) {
        int B = g->ncol / g->nblk, b0 = grp * g->spt, nb = B - b0 < g->spt ? B - b0 : g->spt;
        t.col0 = b0 * g->nblk, t.ncols = nb * g->nblk;
    } else {
        t.col0 = grp * LANES, t.ncols = g->ncol - t.col0 < LANES ? g->ncol - t.col0 : LANES;
    }
    return t;
}

/* A transform pass over every task (channel pair, group of whole samples) and chunk of LANES
 * columns, channels ch and ch + 1 of the nch rows of the per-frequency matrices mat:
 *  - forward: the pair's blocks of src (the input, or dout when is_dout) transformed into mat;
 *  - inverse: the pair's spectra in mat transformed back, unnormalised, and handed to emit as
 *    rows (LANES, N), one call per channel, with the factor sc that normalises them. */
typedef void (*rows_fn)(const fft_geom *g, void *arg, int ch, int c0, int nc, const float *rows, float sc);

typedef struct {
    int inverse;
    const float *src; /* forward */
    int is_dout;
    rows_fn emit; /* inverse */
    void *arg;
    int own_samples; /* emit adds into rows that overlapping blocks share */
} pair_pass;

static void transform_pairs(const nn_fft *fft, const fft_geom *g, float *mat, size_t fstride, int nch, float *slots,
                            const pair_pass *pp) {
    int ntask = pair_tasks(g, nch, pp->own_samples);
    float scale = 1.0f / (float)g->N;
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait
        for (int task = 0; task < ntask; task++) {
            slot_bufs s = slot_of(g, slots);
            pair_task t = pair_task_of(g, task, pp->own_samples);
            for (int c0 = t.col0; c0 < t.col0 + t.ncols; c0 += LANES) {
                int nc = t.col0 + t.ncols - c0 < LANES ? t.col0 + t.ncols - c0 : LANES;
                if (!pp->inverse) {
                    for (int h = 0; h < 2; h++) {
                        if (pp->is_dout) fill_dout(s.rows, pp->src, g, t.ch + h, c0, nc);
                        else fill_input(s.rows, pp->src, g, t.ch + h, c0, nc);
                        rows_to_lanes(s.rows, g->N, h ? s.lb.zi : s.lb.zr);
                    }
                    real_pair_forward(fft, g->size_idx, g->N, &s.lb, s.ar, s.ai, s.br, s.bi);
                    store_spec(mat, fstride, g, t.ch, nch, c0, nc, s.ar, s.ai);
                    if (t.ch + 1 < nch) store_spec(mat, fstride, g, t.ch + 1, nch, c0, nc, s.br, s.bi);
                    continue;
                }
                /* the next columns of this pair (the next chunk, or the task after this one) */
                if (c0 + LANES < g->ncol)
                    for (int h = 0; h < 2 && t.ch + h < nch; h++)
                        prefetch_spec(mat, fstride, g, t.ch + h, nch, c0 + LANES);
                load_spec(mat, fstride, g, t.ch, nch, c0, nc, s.ar, s.ai);
                if (t.ch + 1 < nch) load_spec(mat, fstride, g, t.ch + 1, nch, c0, nc, s.br, s.bi);
                else memset(s.br, 0, 2 * (size_t)g->F * LANES * sizeof(float));
                const float *xa, *xb;
                real_pair_inverse(fft, g->size_idx, g->N, &s.lb, s.ar, s.ai, s.br, s.bi, &xa, &xb);
                for (int h = 0; h < 2 && t.ch + h < nch; h++) {
                    lanes_to_rows(h ? xb : xa, g->N, s.rows);
                    pp->emit(g, pp->arg, t.ch + h, c0, nc, s.rows, h ? -scale : scale); /* the second came negated */
                }
            }
        }
#if defined(__AVX512F__)
    _mm_sfence(); /* the streamed stores of store_spec, before other threads read them */
#endif
    }
}

static void input_spectra(const nn_fft *fft, const fft_geom *g, float *xm, float *slots, const float *in) {
    pair_pass pp = {0, in, 0, NULL, NULL, 0};
    transform_pairs(fft, g, xm, g->xs, g->Ce, slots, &pp);
}

static void dout_spectra(const nn_fft *fft, const fft_geom *g, float *ym, float *slots, const float *dout) {
    pair_pass pp = {0, dout, 1, NULL, NULL, 0};
    transform_pairs(fft, g, ym, g->ys, g->Cout, slots, &pp);
}

/* Tasks over the weights: (pair of output channels co0, co0 + 1; LANES phase channels from cip0,
 * nc of them present). */
typedef struct {
    int co0, cip0, nc;
} weight_task;

static int weight_tasks(const fft_geom *g) { return (g->Cout + 1) / 2 * ((g->Ce + LANES - 1) / LANES); }

static weight_task weight_task_of(const fft_geom *g, int task) {
    int ncc = (g->Ce + LANES - 1) / LANES;
    weight_task t;
    t.co0 = 2 * (task / ncc), t.cip0 = (task % ncc) * LANES;
    t.nc = g->Ce - t.cip0 < LANES ? g->Ce - t.cip0 : LANES;
    return t;
}

/* Wm from w (Cout, Cin, K): weight tasks, so that a frequency's values are runs of LANES along
 * the rows of Wm. */
static void weight_spectra(const nn_fft *fft, const fft_geom *g, float *wm, float *slots, const float *w) {
    int ntask = weight_tasks(g);
    size_t ld = (size_t)2 * g->Ce, fstride = g->ws;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        weight_task wt = weight_task_of(g, task);
        int co0 = wt.co0, cip0 = wt.cip0, nc = wt.nc;
        for (int h = 0; h < 2; h++) {
            int co = co0 + h;
            for (int l = 0; l < LANES; l++) { /* row l: the taps of phase channel cip0 + l */
                float *r = s.rows + (size_t)l * g->N;
                memset(r, 0, (size_t)g->N * sizeof(float));
                if (l >= nc || co >= g->Cout) continue;
                int cip = cip0 + l, ci = cip / g->S, p = cip % g->S;
                const float *wr = w + ((size_t)co * g->Cin + ci) * g->K;
                for (int i = 0; i < g->Ke && g->S * i + p < g->K; i++) r[i] = wr[g->S * i + p];
            }
            rows_to_lanes(s.rows, g->N, h ? s.lb.zi : s.lb.zr);
        }
        real_pair_forward(fft, g->size_idx, g->N, &s.lb, s.ar, s.ai, s.br, s.bi);
        for (int h = 0; h < 2 && co0 + h < g->Cout; h++) {
            const float *re = h ? s.br : s.ar, *im = h ? s.bi : s.ai;
            for (int f = 0; f < g->F; f++) {
                float *top = wm + f * fstride + (size_t)(co0 + h) * ld + cip0, *bot = top + (size_t)g->Cout * ld;
                const float *vr = re + (size_t)f * LANES, *vi = im + (size_t)f * LANES;
                float neg[LANES];
                for (int l = 0; l < LANES; l++) neg[l] = -vi[l];
                copy16(top, vr, nc);
                copy16(top + g->Ce, vi, nc);
                copy16(bot, neg, nc);
                copy16(bot + g->Ce, vr, nc);
            }
        }
    }
}

/* ---- forward ------------------------------------------------------------------------------- */

size_t conv1d_fft_prepare(const nn_ctx *ctx, float *wspec, size_t wspec_floats, const float *w, int Cin, int Lin,
                          int Cout, int K, int stride, int pad) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, 1)) return 0;
    fft_geom g = geometry(1, Cin, Lin, Cout, K, stride, pad, ctx->fft->force_n);
    fft_mem mem;
    if (!g.N || wspec_floats < SPEC_HDR + g.wm || !carve(ctx, &g, &mem, 0)) return 0;
    int32_t h[SPEC_HDR];
    spec_header(h, &g);
    memcpy(wspec, h, sizeof h);
    weight_spectra(ctx->fft, &g, wspec + SPEC_HDR, mem.slots, w);
    return SPEC_HDR + g.wm;
}

typedef struct {
    float *out;
    const float *bias;
    int relu;
} out_arg;

/* out rows of channel co for columns c0 .. c0 + nc: act(x * sc + bias) */
static void emit_output(const fft_geom *g, void *arg, int co, int c0, int nc, const float *rows, float sc) {
    const out_arg *a = arg;
    float bv = a->bias ? a->bias[co] : 0.0f;
    for (int l = 0; l < nc; l++) {
        int col = c0 + l, b = col / g->nblk, j = col % g->nblk;
        int m = g->Lout - j * g->M < g->M ? g->Lout - j * g->M : g->M;
        scale_shift_act_row(a->out + ((size_t)b * g->Cout + co) * g->Lout + (size_t)j * g->M, rows + (size_t)l * g->N,
                            (size_t)m, sc, bv, a->relu);
    }
}

/* out (B, Cout, Lout) = act(conv + bias) from Ym. */
static void output_rows(const nn_fft *fft, const fft_geom *g, float *out, float *ym, float *slots, const float *bias,
                        int relu) {
    out_arg a = {out, bias, relu};
    pair_pass pp = {1, NULL, 0, emit_output, &a, 0};
    transform_pairs(fft, g, ym, g->ys, g->Cout, slots, &pp);
}

/* The per-frequency products are shared out by frequency; with F frequencies over nt threads
 * the slowest thread may have one more than the mean (65 over 16: 5 against 4.06, a fifth of the
 * product's time lost). So each frequency's product is cut into P pieces along a dimension of
 * length dim (columns, or rows of the weight gradient), P the least up to 4 that leaves the
 * slowest thread within 1/16 of the mean, pieces whole multiples of 16 and at least 32 long. */
static int freq_pieces(int F, int nt, int dim) {
    for (int p = 1; p < 4; p++) {
        long u = (long)F * p, per = (u + nt - 1) / nt;
        if (per * nt * 16 <= u * 17 || dim / (p + 1) < 32) return p;
    }
    return 4;
}
static int piece_begin(int dim, int P, int k) { return k >= P ? dim : (int)((long)dim * k / P) / 16 * 16; }

/* keep: where the input's spectra go (keep_floats of conv1d_fft_keep_floats), or NULL */
static int forward_with(nn_ctx *ctx, float *out, const float *in, const float *w, const float *wspec,
                        const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                        float *keep, size_t keep_floats) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, 1)) return 0;
    fft_geom g = geometry(B, Cin, Lin, Cout, K, stride, pad, ctx->fft->force_n);
    fft_mem mem;
    /* a product with few columns runs the GEMMs slowly: the model's single records are faster
     * on the direct kernels (measured: batch 1 at 2 threads) */
    if (!g.N || (g.ncol < FFT_MIN_COLS && !ctx->fft->force_n) || !carve(ctx, &g, &mem, 0)) return 0;
    if (keep && keep_floats != g.xm) return 0;
    float *xm = keep ? keep : mem.xm;
    const float *wm = NULL;
    if (wspec) { /* spectra made for another geometry (another transform size): not used */
        int32_t h[SPEC_HDR], want[SPEC_HDR];
        memcpy(h, wspec, sizeof h);
        spec_header(want, &g);
        if (!memcmp(h, want, sizeof h)) wm = wspec + SPEC_HDR;
    }
    if (!wm) {
        if (!w) return 0;
        weight_spectra(ctx->fft, &g, mem.gm, mem.slots, w);
        wm = mem.gm;
    }
    input_spectra(ctx->fft, &g, xm, mem.slots, in);
    size_t xs = g.xs, ys = g.ys, ws = g.ws;
    const int P = freq_pieces(g.F, max_threads(), g.ncol);
#pragma omp parallel for schedule(static)
    for (int u = 0; u < g.F * P; u++) {
        const int f = u / P, c0 = piece_begin(g.ncol, P, u % P), c1 = piece_begin(g.ncol, P, u % P + 1);
        nn_sgemm('N', 'N', 2 * g.Cout, c1 - c0, 2 * g.Ce, 1.0f, wm + f * ws, 2 * g.Ce, xm + f * xs + c0, g.ncol, 0.0f,
                 mem.ym + f * ys + c0, g.ncol);
    }
    output_rows(ctx->fft, &g, out, mem.ym, mem.slots, bias, relu);
    return 1;
}

int conv1d_forward_fft(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu, int B,
                       int Cin, int Lin, int Cout, int K, int stride, int pad) {
    return forward_with(ctx, out, in, w, NULL, bias, relu, B, Cin, Lin, Cout, K, stride, pad, NULL, 0);
}

size_t conv1d_fft_keep_floats(const nn_ctx *ctx, int B, int Cin, int Lin, int Cout, int K, int stride, int pad,
                              int groups) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, groups)) return 0;
    fft_geom g = geometry(B, Cin, Lin, Cout, K, stride, pad, ctx->fft->force_n);
    return g.N && (g.ncol >= FFT_MIN_COLS || ctx->fft->force_n) ? g.xm : 0;
}

int conv1d_forward_fft_keep(nn_ctx *ctx, float *out, const float *in, const float *w, int B, int Cin, int Lin,
                            int Cout, int K, int stride, int pad, float *keep, size_t keep_floats) {
    if (!keep) return 0;
    return forward_with(ctx, out, in, w, NULL, NULL, 0, B, Cin, Lin, Cout, K, stride, pad, keep, keep_floats);
}

int conv1d_forward_fft_prepared(nn_ctx *ctx, float *out, const float *in, const float *w, const float *wspec,
                                const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K, int stride,
                                int pad) {
    return forward_with(ctx, out, in, w, wspec, bias, relu, B, Cin, Lin, Cout, K, stride, pad, NULL, 0);
}

/* ---- backward ------------------------------------------------------------------------------ */

/* din rows of phase channel cip: element i of block j is the gradient of x_p[jM + i], at
 * position S*(jM + i) + p - pad; added where inside the input. */
static void emit_din(const fft_geom *g, void *arg, int cip, int c0, int nc, const float *rows, float sc) {
    float *din = arg;
    int ci = cip / g->S, p = cip % g->S;
    for (int l = 0; l < nc; l++) {
        int col = c0 + l, b = col / g->nblk, j = col % g->nblk;
        float *d = din + ((size_t)b * g->Cin + ci) * g->Lin;
        const float *x = rows + (size_t)l * g->N;
        int pos0 = g->S * j * g->M + p - g->pad, i0, i1;
        inside(g, pos0, &i0, &i1);
        if (g->S == 1) {
            float *dd = d + pos0;
#pragma omp simd
            for (int i = i0; i < i1; i++) dd[i] += x[i] * sc;
        } else
            for (int i = i0; i < i1; i++) d[pos0 + g->S * i] += x[i] * sc;
    }
}

/* din (B, Cin, Lin) += the overlap-added blocks of DXm (stored in xm). A task owns whole
 * samples, so the blocks that overlap are added by one thread, in column order. */
static void din_rows(const nn_fft *fft, const fft_geom *g, float *din, float *dxm, float *slots) {
    pair_pass pp = {1, NULL, 0, emit_din, din, 1};
    transform_pairs(fft, g, dxm, g->xs, g->Ce, slots, &pp);
}

/* dw (Cout, Cin, K) += taps of the inverse transforms of DW (from G): weight tasks, reading runs
 * of LANES along the rows of G. */
static void dw_taps(const nn_fft *fft, const fft_geom *g, float *dw, const float *gm, float *slots) {
    int ntask = weight_tasks(g);
    size_t ld = (size_t)2 * g->Ce, fstride = g->ws;
    float scale = 1.0f / (float)g->N;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        weight_task wt = weight_task_of(g, task);
        int co0 = wt.co0, cip0 = wt.cip0, nc = wt.nc;
        for (int h = 0; h < 2; h++) {
            int co = co0 + h;
            float *re = h ? s.br : s.ar, *im = h ? s.bi : s.ai;
            for (int f = 0; f < g->F; f++) {
                float *vr = re + (size_t)f * LANES, *vi = im + (size_t)f * LANES;
                for (int l = 0; l < LANES; l++) vr[l] = 0.0f, vi[l] = 0.0f;
                if (co >= g->Cout) continue;
                const float *top = gm + f * fstride + (size_t)co * ld + cip0, *bot = top + (size_t)g->Cout * ld;
#pragma omp simd
                for (int l = 0; l < nc; l++) {
                    vr[l] = top[l] + bot[g->Ce + l];
                    vi[l] = top[g->Ce + l] - bot[l];
                }
            }
        }
        const float *xa, *xb;
        real_pair_inverse(fft, g->size_idx, g->N, &s.lb, s.ar, s.ai, s.br, s.bi, &xa, &xb);
        for (int h = 0; h < 2 && co0 + h < g->Cout; h++) {
            const float *x = h ? xb : xa;
            float sc = h ? -scale : scale;
            for (int l = 0; l < nc; l++) {
                int cip = cip0 + l, ci = cip / g->S, p = cip % g->S;
                float *d = dw + ((size_t)(co0 + h) * g->Cin + ci) * g->K;
                for (int j = 0; j < g->Ke; j++) {
                    int k = g->S * j + p;
                    if (k < g->K) d[k] += x[(size_t)j * LANES + l] * sc;
                }
            }
        }
    }
}

/* kept: the input's spectra from conv1d_forward_fft_keep (kept_floats of them), or NULL */
static int backward_with(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w, int B,
                         int Cin, int Lin, int Cout, int K, int stride, int pad, const float *kept, size_t kept_floats) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, 1)) return 0;
    if (!din && !dw) return 1;
    fft_geom g = geometry(B, Cin, Lin, Cout, K, stride, pad, ctx->fft->force_n);
    fft_mem mem;
    if (!g.N || !carve(ctx, &g, &mem, 1)) return 0;
    if (kept && kept_floats != g.xm) return 0;
    size_t xs = g.xs, ys = g.ys, ws = g.ws;
    dout_spectra(ctx->fft, &g, mem.ym, mem.slots, dout);
    if (dw) {
        const float *xm = kept;
        if (!xm) {
            input_spectra(ctx->fft, &g, mem.xm, mem.slots, in);
            xm = mem.xm;
        }
        const int P = freq_pieces(g.F, max_threads(), 2 * g.Cout);
#pragma omp parallel for schedule(static)
        for (int u = 0; u < g.F * P; u++) { /* dG[f] = DY[f] X[f]^T, rows of dG in pieces */
            const int f = u / P, r0 = piece_begin(2 * g.Cout, P, u % P), r1 = piece_begin(2 * g.Cout, P, u % P + 1);
            nn_sgemm('N', 'T', r1 - r0, 2 * g.Ce, g.ncol, 1.0f, mem.ym + f * ys + (size_t)r0 * g.ncol, g.ncol,
                     xm + f * xs, g.ncol, 0.0f, mem.gm + f * ws + (size_t)r0 * 2 * g.Ce, 2 * g.Ce);
        }
        dw_taps(ctx->fft, &g, dw, mem.gm, mem.slots);
    }
    if (din) {
        weight_spectra(ctx->fft, &g, mem.wm, mem.slots, w);
        const int Pd = freq_pieces(g.F, max_threads(), g.ncol);
#pragma omp parallel for schedule(static)
        for (int u = 0; u < g.F * Pd; u++) { /* DX[f] = W[f]^T DY[f], columns in pieces */
            const int f = u / Pd, c0 = piece_begin(g.ncol, Pd, u % Pd), c1 = piece_begin(g.ncol, Pd, u % Pd + 1);
            nn_sgemm('T', 'N', 2 * g.Ce, c1 - c0, 2 * g.Cout, 1.0f, mem.wm + f * ws, 2 * g.Ce, mem.ym + f * ys + c0,
                     g.ncol, 0.0f, mem.xm + f * xs + c0, g.ncol);
        }
        din_rows(ctx->fft, &g, din, mem.xm, mem.slots);
    }
    return 1;
}

int conv1d_backward_fft(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w, int B,
                        int Cin, int Lin, int Cout, int K, int stride, int pad) {
    return backward_with(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, NULL, 0);
}

int conv1d_backward_fft_kept(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int K, int stride, int pad, const float *kept,
                             size_t kept_floats) {
    if (!kept) return 0;
    return backward_with(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, K, stride, pad, kept, kept_floats);
}
