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
 * The transforms are FFTW's (single precision, plans made once by nn_fft_create); the GEMMs
 * oneDNN's, one frequency per thread. Every output value is computed by one thread in a fixed
 * order: same inputs and thread count, same bits. */
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv1d_impl.h"

/* transform sizes 64, 128, 256; columns per transform task; fewest columns (samples x
 * blocks) for which the forward takes the FFT path unless a size is forced */
enum { FFT_NSIZES = 3, CHUNK = 16, FFT_MIN_COLS = 16 };

struct nn_fft {
    int n[FFT_NSIZES];
    fftwf_plan r2c[FFT_NSIZES], c2r[FFT_NSIZES];
    int force_n; /* 0: choose by cost; else this size (tests and benchmarks) */
};

nn_fft *nn_fft_create(void) {
    nn_fft *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    fftwf_make_planner_thread_safe();
    for (int i = 0; i < FFT_NSIZES; i++) {
        int n = 64 << i;
        p->n[i] = n;
        float *r = fftwf_alloc_real((size_t)n);
        fftwf_complex *c = fftwf_alloc_complex((size_t)n / 2 + 1);
        if (r && c) {
            p->r2c[i] = fftwf_plan_dft_r2c_1d(n, r, c, FFTW_ESTIMATE);
            p->c2r[i] = fftwf_plan_dft_c2r_1d(n, c, r, FFTW_ESTIMATE);
        }
        fftwf_free(r);
        fftwf_free(c);
        if (!p->r2c[i] || !p->c2r[i]) {
            nn_fft_free(p);
            return NULL;
        }
    }
    return p;
}

void nn_fft_free(nn_fft *p) {
    if (!p) return;
    for (int i = 0; i < FFT_NSIZES; i++) {
        if (p->r2c[i]) fftwf_destroy_plan(p->r2c[i]);
        if (p->c2r[i]) fftwf_destroy_plan(p->c2r[i]);
    }
    free(p);
}

void nn_fft_force_size(nn_fft *p, int n) {
    if (p) p->force_n = n;
}

/* ---- geometry ------------------------------------------------------------------------------ */

typedef struct {
    int Cin, Lin, Cout, K, S, pad, Lout;
    int Ce, Ke, N, M, F, nblk, ncol, size_idx;
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
    /* per thread: CHUNK real rows of N, CHUNK spectra of F complex, a line for overlap-add */
    size_t line = (size_t)g.nblk * g.M + g.N;
    size_t chunk_r = (size_t)CHUNK * g.N, chunk_c = (size_t)CHUNK * 2 * lines((size_t)g.F * 2);
    size_t nbc = (size_t)g.nblk * lines((size_t)g.F * 2);
    g.slot = lines(chunk_r) + lines(chunk_c > nbc ? chunk_c : nbc) + lines(line) + lines(g.N);
    return g;
}

int conv1d_fft_applies(const nn_ctx *ctx, int Cin, int K, int stride, int groups) {
    (void)Cin;
    return ctx && ctx->fft && groups == 1 && K >= 15 && stride >= 1 && stride <= 4;
}

static int max_threads(void) {
    int nt = omp_get_max_threads();
    return nt < 1 ? 1 : nt;
}

/* forward: Wm, Xm, Ym; backward: Wm, G, Xm (reused for DXm), Ym (DYm) */
size_t conv1d_fft_scratch_floats(int B, int Cin, int Lin, int Cout, int K, int stride, int pad) {
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

size_t conv1d_fft_weight_floats(const nn_ctx *ctx, int Cin, int Lin, int Cout, int K, int stride, int pad) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, 1)) return 0;
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

/* ---- transforms ---------------------------------------------------------------------------- */

/* One thread's buffers: rows (CHUNK, N) real, spec (CHUNK or nblk, F) complex, a line. */
typedef struct {
    float *rows, *spec, *line, *one;
    size_t spec_ld; /* floats between spectra */
} slot_bufs;

static slot_bufs slot_of(const fft_geom *g, float *slots) {
    slot_bufs s;
    float *p = slots + (size_t)omp_get_thread_num() * g->slot;
    size_t chunk_r = (size_t)CHUNK * g->N, chunk_c = (size_t)CHUNK * 2 * lines((size_t)g->F * 2);
    size_t nbc = (size_t)g->nblk * lines((size_t)g->F * 2);
    s.rows = p;
    s.spec = p + lines(chunk_r);
    s.line = s.spec + lines(chunk_c > nbc ? chunk_c : nbc);
    s.one = s.line + lines((size_t)g->nblk * g->M + g->N);
    s.spec_ld = lines((size_t)g->F * 2);
    return s;
}

/* Spectra of CHUNK (or fewer) rows of N reals into s->spec. */
static void r2c_rows(const nn_fft *fft, const fft_geom *g, slot_bufs *s, int n) {
    for (int c = 0; c < n; c++)
        fftwf_execute_dft_r2c(fft->r2c[g->size_idx], s->rows + (size_t)c * g->N,
                              (fftwf_complex *)(s->spec + (size_t)c * s->spec_ld));
}

/* Rows of Xm[f] for channel `ch` of `nrow` channels, columns col0..col0+n from s->spec. */
static void scatter_spec(float *xm, size_t fstride, const fft_geom *g, const slot_bufs *s, int ch, int nrow, int col0,
                         int n) {
    for (int f = 0; f < g->F; f++) {
        float *re = xm + f * fstride + (size_t)ch * g->ncol + col0, *im = re + (size_t)nrow * g->ncol;
        for (int c = 0; c < n; c++) {
            const float *z = s->spec + (size_t)c * s->spec_ld + 2 * f;
            re[c] = z[0];
            im[c] = z[1];
        }
    }
}

/* Xm from the input: block j of sample b, phase channel ci' = ci*S + p, holds
 * x_p[jM + i] = in[b, ci, S*(jM + i) + p - pad] (0 outside the input), i < N. */
static void input_spectra(const nn_fft *fft, const fft_geom *g, float *xm, float *slots, const float *in) {
    int nch = ceil_div(g->ncol, CHUNK), ntask = g->Ce * nch;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        int cip = task / nch, col0 = (task % nch) * CHUNK, n = g->ncol - col0 < CHUNK ? g->ncol - col0 : CHUNK;
        int ci = cip / g->S, p = cip % g->S;
        for (int c = 0; c < n; c++) {
            int col = col0 + c, b = col / g->nblk, j = col % g->nblk;
            const float *x = in + ((size_t)b * g->Cin + ci) * g->Lin;
            float *r = s.rows + (size_t)c * g->N;
            int pos0 = g->S * j * g->M + p - g->pad; /* position of i = 0 */
            /* i in [i0, i1): inside the input */
            int i0 = pos0 >= 0 ? 0 : (-pos0 + g->S - 1) / g->S;
            int i1 = g->Lin - pos0 <= 0 ? 0 : (g->Lin - pos0 + g->S - 1) / g->S;
            if (i1 > g->N) i1 = g->N;
            if (i0 > i1) i0 = i1;
            memset(r, 0, (size_t)i0 * sizeof(float));
            if (g->S == 1)
                memcpy(r + i0, x + pos0 + i0, (size_t)(i1 - i0) * sizeof(float));
            else
                for (int i = i0; i < i1; i++) r[i] = x[pos0 + g->S * i];
            memset(r + i1, 0, (size_t)(g->N - i1) * sizeof(float));
        }
        r2c_rows(fft, g, &s, n);
        scatter_spec(xm, g->xs, g, &s, cip, g->Ce, col0, n);
    }
}

/* DYm from dout: block j of sample b is dout[b, co, jM .. jM + M) zero-padded to N. */
static void dout_spectra(const nn_fft *fft, const fft_geom *g, float *ym, float *slots, const float *dout) {
    int nch = ceil_div(g->ncol, CHUNK), ntask = g->Cout * nch;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        int co = task / nch, col0 = (task % nch) * CHUNK, n = g->ncol - col0 < CHUNK ? g->ncol - col0 : CHUNK;
        for (int c = 0; c < n; c++) {
            int col = col0 + c, b = col / g->nblk, j = col % g->nblk;
            const float *d = dout + ((size_t)b * g->Cout + co) * g->Lout + (size_t)j * g->M;
            int m = g->Lout - j * g->M < g->M ? g->Lout - j * g->M : g->M;
            float *r = s.rows + (size_t)c * g->N;
            memcpy(r, d, (size_t)m * sizeof(float));
            memset(r + m, 0, (size_t)(g->N - m) * sizeof(float));
        }
        r2c_rows(fft, g, &s, n);
        scatter_spec(ym, g->ys, g, &s, co, g->Cout, col0, n);
    }
}

/* Wm from w (Cout, Cin, K). */
static void weight_spectra(const nn_fft *fft, const fft_geom *g, float *wm, float *slots, const float *w) {
    int ntask = g->Cout * g->Ce;
    size_t ld = (size_t)2 * g->Ce, fstride = g->ws;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        int co = task / g->Ce, cip = task % g->Ce, ci = cip / g->S, p = cip % g->S;
        const float *wr = w + ((size_t)co * g->Cin + ci) * g->K;
        float *r = s.rows;
        for (int i = 0; i < g->N; i++) {
            int k = g->S * i + p;
            r[i] = i < g->Ke && k < g->K ? wr[k] : 0.0f;
        }
        r2c_rows(fft, g, &s, 1);
        for (int f = 0; f < g->F; f++) {
            float re = s.spec[2 * f], im = s.spec[2 * f + 1];
            float *top = wm + f * fstride + (size_t)co * ld, *bot = top + (size_t)g->Cout * ld;
            top[cip] = re;
            top[g->Ce + cip] = im;
            bot[cip] = -im;
            bot[g->Ce + cip] = re;
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

/* out (B, Cout, Lout) = act(conv + bias) from Ym. */
static void output_rows(const nn_fft *fft, const fft_geom *g, float *out, const float *ym, float *slots,
                        const float *bias, int relu) {
    int nch = ceil_div(g->ncol, CHUNK), ntask = g->Cout * nch;
    size_t fstride = g->ys;
    float scale = 1.0f / (float)g->N;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        int co = task / nch, col0 = (task % nch) * CHUNK, n = g->ncol - col0 < CHUNK ? g->ncol - col0 : CHUNK;
        for (int f = 0; f < g->F; f++) {
            const float *re = ym + f * fstride + (size_t)co * g->ncol + col0, *im = re + (size_t)g->Cout * g->ncol;
            for (int c = 0; c < n; c++) {
                float *z = s.spec + (size_t)c * s.spec_ld + 2 * f;
                z[0] = re[c];
                z[1] = im[c];
            }
        }
        float bv = bias ? bias[co] : 0.0f;
        for (int c = 0; c < n; c++) {
            int col = col0 + c, b = col / g->nblk, j = col % g->nblk;
            float *r = s.rows + (size_t)c * g->N;
            fftwf_execute_dft_c2r(fft->c2r[g->size_idx], (fftwf_complex *)(s.spec + (size_t)c * s.spec_ld), r);
            int m = g->Lout - j * g->M < g->M ? g->Lout - j * g->M : g->M;
            float *o = out + ((size_t)b * g->Cout + co) * g->Lout + (size_t)j * g->M;
            if (relu)
                for (int t = 0; t < m; t++) {
                    float v = r[t] * scale + bv;
                    o[t] = v > 0.0f ? v : 0.0f;
                }
            else
                for (int t = 0; t < m; t++) o[t] = r[t] * scale + bv;
        }
    }
}

static int forward_with(nn_ctx *ctx, float *out, const float *in, const float *w, const float *wspec,
                        const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K, int stride, int pad) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, 1)) return 0;
    fft_geom g = geometry(B, Cin, Lin, Cout, K, stride, pad, ctx->fft->force_n);
    fft_mem mem;
    /* a product with few columns runs the GEMMs slowly: the model's single records are faster
     * on the direct kernels (measured: batch 1 at 2 threads) */
    if (!g.N || (g.ncol < FFT_MIN_COLS && !ctx->fft->force_n) || !carve(ctx, &g, &mem, 0)) return 0;
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
    input_spectra(ctx->fft, &g, mem.xm, mem.slots, in);
    size_t xs = g.xs, ys = g.ys, ws = g.ws;
#pragma omp parallel for schedule(static)
    for (int f = 0; f < g.F; f++)
        nn_sgemm('N', 'N', 2 * g.Cout, g.ncol, 2 * g.Ce, 1.0f, wm + f * ws, 2 * g.Ce, mem.xm + f * xs, g.ncol, 0.0f,
                 mem.ym + f * ys, g.ncol);
    output_rows(ctx->fft, &g, out, mem.ym, mem.slots, bias, relu);
    return 1;
}

int conv1d_forward_fft(nn_ctx *ctx, float *out, const float *in, const float *w, const float *bias, int relu, int B,
                       int Cin, int Lin, int Cout, int K, int stride, int pad) {
    return forward_with(ctx, out, in, w, NULL, bias, relu, B, Cin, Lin, Cout, K, stride, pad);
}

int conv1d_forward_fft_prepared(nn_ctx *ctx, float *out, const float *in, const float *w, const float *wspec,
                                const float *bias, int relu, int B, int Cin, int Lin, int Cout, int K, int stride,
                                int pad) {
    return forward_with(ctx, out, in, w, wspec, bias, relu, B, Cin, Lin, Cout, K, stride, pad);
}

/* ---- backward ------------------------------------------------------------------------------ */

/* din (B, Cin, Lin) += the overlap-added blocks of DXm (stored in xm). */
static void din_rows(const nn_fft *fft, const fft_geom *g, float *din, const float *dxm, float *slots) {
    int ntask = g->Ce * (g->ncol / g->nblk);
    size_t fstride = g->xs;
    float scale = 1.0f / (float)g->N;
    int llen = g->nblk * g->M + g->N;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        int cip = task % g->Ce, b = task / g->Ce, ci = cip / g->S, p = cip % g->S;
        int col0 = b * g->nblk;
        for (int f = 0; f < g->F; f++) {
            const float *re = dxm + f * fstride + (size_t)cip * g->ncol + col0, *im = re + (size_t)g->Ce * g->ncol;
            for (int j = 0; j < g->nblk; j++) {
                float *z = s.spec + (size_t)j * s.spec_ld + 2 * f;
                z[0] = re[j];
                z[1] = im[j];
            }
        }
        memset(s.line, 0, (size_t)llen * sizeof(float));
        for (int j = 0; j < g->nblk; j++) {
            fftwf_execute_dft_c2r(fft->c2r[g->size_idx], (fftwf_complex *)(s.spec + (size_t)j * s.spec_ld), s.one);
            float *l = s.line + (size_t)j * g->M;
            for (int i = 0; i < g->N; i++) l[i] += s.one[i];
        }
        float *d = din + ((size_t)b * g->Cin + ci) * g->Lin;
        /* line[q] is the gradient of x_p[q], position S*q + p - pad */
        for (int q = 0; q < llen; q++) {
            int pos = g->S * q + p - g->pad;
            if (pos >= g->Lin) break;
            if (pos >= 0) d[pos] += s.line[q] * scale;
        }
    }
}

/* dw (Cout, Cin, K) += taps of the inverse transforms of DW (from G). */
static void dw_taps(const nn_fft *fft, const fft_geom *g, float *dw, const float *gm, float *slots) {
    int ntask = g->Cout * g->Ce;
    size_t ld = (size_t)2 * g->Ce, fstride = g->ws;
    float scale = 1.0f / (float)g->N;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask; task++) {
        slot_bufs s = slot_of(g, slots);
        int co = task / g->Ce, cip = task % g->Ce, ci = cip / g->S, p = cip % g->S;
        for (int f = 0; f < g->F; f++) {
            const float *top = gm + f * fstride + (size_t)co * ld, *bot = top + (size_t)g->Cout * ld;
            s.spec[2 * f] = top[cip] + bot[g->Ce + cip];
            s.spec[2 * f + 1] = top[g->Ce + cip] - bot[cip];
        }
        fftwf_execute_dft_c2r(fft->c2r[g->size_idx], (fftwf_complex *)s.spec, s.one);
        float *d = dw + ((size_t)co * g->Cin + ci) * g->K;
        for (int j = 0; j < g->Ke; j++) {
            int k = g->S * j + p;
            if (k < g->K) d[k] += s.one[j] * scale;
        }
    }
}

int conv1d_backward_fft(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w, int B,
                        int Cin, int Lin, int Cout, int K, int stride, int pad) {
    if (!conv1d_fft_applies(ctx, Cin, K, stride, 1)) return 0;
    if (!din && !dw) return 1;
    fft_geom g = geometry(B, Cin, Lin, Cout, K, stride, pad, ctx->fft->force_n);
    fft_mem mem;
    if (!g.N || !carve(ctx, &g, &mem, 1)) return 0;
    size_t xs = g.xs, ys = g.ys, ws = g.ws;
    dout_spectra(ctx->fft, &g, mem.ym, mem.slots, dout);
    if (dw) {
        input_spectra(ctx->fft, &g, mem.xm, mem.slots, in);
#pragma omp parallel for schedule(static)
        for (int f = 0; f < g.F; f++)
            nn_sgemm('N', 'T', 2 * g.Cout, 2 * g.Ce, g.ncol, 1.0f, mem.ym + f * ys, g.ncol, mem.xm + f * xs, g.ncol, 0.0f,
                     mem.gm + f * ws, 2 * g.Ce);
        dw_taps(ctx->fft, &g, dw, mem.gm, mem.slots);
    }
    if (din) {
        weight_spectra(ctx->fft, &g, mem.wm, mem.slots, w);
#pragma omp parallel for schedule(static)
        for (int f = 0; f < g.F; f++)
            nn_sgemm('T', 'N', 2 * g.Ce, g.ncol, 2 * g.Cout, 1.0f, mem.wm + f * ws, 2 * g.Ce, mem.ym + f * ys, g.ncol,
                     0.0f, mem.xm + f * xs, g.ncol);
        din_rows(ctx->fft, &g, din, mem.xm, mem.slots);
    }
    return 1;
}
