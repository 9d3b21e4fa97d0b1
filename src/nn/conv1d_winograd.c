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
#include <string.h>

#include "common/partition.h"
#include "nn/conv1d_impl.h"

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
typedef struct {
    int B, Cin, Lin, Cout, pad, Lout, ntile;
    int spc, ncol; /* samples per chunk of the backward, columns of a chunk (spc * ntile) */
    size_t us, vs, ms;     /* floats between the points' matrices of U, V, M */
    size_t slot;           /* one thread's V and M */
} wgeom;

static inline size_t lines(size_t n) { return (n + 15) / 16 * 16; }

/* Columns per chunk aimed at: enough for an efficient GEMM, few enough that a chunk's V and M
 * stay in the core's L2 cache between the transforms and the products. */
enum { CHUNK_COLS = 160 };
/* Smaller batches' forwards go to the direct kernels (measured at 2 threads: faster up to a
 * batch of 2, slower from 4 on). */
enum { WINO_MIN_B = 4 };

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
    g.slot = WN * (g.vs + g.ms);
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
#pragma omp simd
            for (int j = ja; j < jb; j++) tile_v(v0, vs, j, x + (base + WT * j));
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
            if (relu) {
#pragma omp simd
                for (int j = 0; j < full; j++) tile_y(o + WT * j, m0, ms, j, bv, 1);
            } else {
#pragma omp simd
                for (int j = 0; j < full; j++) tile_y(o + WT * j, m0, ms, j, bv, 0);
            }
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
#pragma omp simd
            for (int j = 0; j < full; j++) tile_dm(m0, ms, j, d + WT * j);
            if (full < g->ntile) {
                float t[WT] = {0.0f, 0.0f, 0.0f, 0.0f};
                for (int i = WT * full; i < g->Lout; i++) t[i - WT * full] = d[i];
                tile_dm(m0, ms, full, t);
            }
        }
}

/* din rows of the chunk's samples += B dV (set: = B dV), the tiles' 6 inputs overlapping by 2. */
static void din_transform(float *din, const float *v, const wgeom *g, int b0, int nb, int set) {
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
        }
}

/* dw (Cout, Cin, 3) += G^T dU for the channel pairs of r, dU the sum of the nt threads' partial
 * sums (in thread order). */
static void dw_from_partials(float *dw, const float *du, const wgeom *g, int nt, mrm_range r) {
    for (size_t oi = (size_t)r.begin; oi < (size_t)r.end; oi++) {
        float d[WN];
        for (int e = 0; e < WN; e++) {
            float s = 0.0f;
            for (int t = 0; t < nt; t++) s += du[(size_t)t * WN * g->us + e * g->us + oi];
            d[e] = s;
        }
        for (int k = 0; k < 3; k++) {
            float s = 0.0f;
            for (int e = 0; e < WN; e++) s += G3[e][k] * d[e];
            dw[oi * 3 + k] += s;
        }
    }
}

static int backward_winograd(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in, const float *w,
                             int B, int Cin, int Lin, int Cout, int pad, int set) {
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
                for (int e = 0; e < WN; e++)
                    nn_sgemm('N', 'T', Cout, Cin, ncol, 1.0f, m + e * g.ms, g.ncol, v + e * g.vs, g.ncol,
                             first ? 0.0f : 1.0f, du + e * g.us, Cin);
                first = 0;
            }
            if (din) {
                for (int e = 0; e < WN; e++)
                    nn_sgemm('T', 'N', Cin, ncol, Cout, 1.0f, mem.u + e * g.us, Cin, m + e * g.ms, g.ncol, 0.0f,
                             v + e * g.vs, g.ncol);
                din_transform(din, v, &g, b0, nb, set);
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
    return backward_winograd(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, pad, 0);
}

int conv1d_backward_winograd_set(nn_ctx *ctx, float *din, float *dw, const float *dout, const float *in,
                                 const float *w, int B, int Cin, int Lin, int Cout, int pad) {
    wgeom g = geometry(B, Cin, Lin, Cout, pad);
    if (!din || g.Lout <= 0 || (size_t)g.ntile * WT + 2 < (size_t)Lin + pad) return 0;
    return backward_winograd(ctx, din, dw, dout, in, w, B, Cin, Lin, Cout, pad, 1);
}
