/* Inverted dropout. */
#include <math.h>
#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common/partition.h"
#include "nn/ops.h"

/* Values per block of the mask: each block draws from its own generator, seeded by one draw
 * of rng, so blocks can be filled in parallel and the mask depends on the seed only (not on
 * the number of threads). */
enum { DROP_BLOCK = 16384 };

/* Keeps each value with probability 1-p (uniform draw >= p), scaled by 1/(1-p); mask holds
 * the factor applied. rng advances by one draw per block of DROP_BLOCK values. */
/* out = in * mask, or with add: out = add + in * mask (the product rounded first, as a separate
 * add of the dropped values would). */
static inline void drop_value(float *out, float *mask, const float *in, const float *add, size_t i, float m) {
    mask[i] = m;
    float d = in[i] * m;
    out[i] = add ? add[i] + d : d;
}

/* The uniform draw u = (x >> 40) / 2^24 of a generator output x is kept when u >= p, that is
 * when the integer x >> 40 >= thr = ceil(p 2^24) (u is exact, so this is the same test). */
static uint64_t keep_threshold(float p) {
    double t = ceil((double)p * 16777216.0);
    return t <= 0.0 ? 0 : t >= 16777216.0 ? (uint64_t)1 << 24 : (uint64_t)t;
}

/* ns (1 .. 8) independent streams of values: stream k covers [start[k], start[k] + len[k]) and
 * draws from a generator seeded with seed[k], one draw a value in order (as mrm_rng_uniform_inline
 * would). With AVX-512 the 8 generators step side by side, one per 64-bit lane (the same
 * xoshiro256** arithmetic, so the same draws), 64 draws at a time into a bit mask per stream. */
static void drop_streams(float *out, float *mask, const float *in, const float *add, const size_t *start,
                         const size_t *len, const uint64_t *seed, int ns, uint64_t thr, float keep) {
#if defined(__AVX512F__)
    uint64_t st[4][8];
    for (int k = 0; k < 8; k++) {
        mrm_rng r;
        mrm_rng_seed(&r, seed[k < ns ? k : 0]);
        for (int j = 0; j < 4; j++) st[j][k] = r.s[j];
    }
    __m512i s0 = _mm512_loadu_si512(st[0]), s1 = _mm512_loadu_si512(st[1]), s2 = _mm512_loadu_si512(st[2]),
            s3 = _mm512_loadu_si512(st[3]);
    const __m512i vthr = _mm512_set1_epi64((long long)thr);
    const __m512 vkeep = _mm512_set1_ps(keep);
    size_t most = 0;
    for (int k = 0; k < ns; k++) most = len[k] > most ? len[k] : most;
    for (size_t i0 = 0; i0 < most; i0 += 64) {
        __m512i bits = _mm512_setzero_si512();
        for (int q = 0; q < 64; q++) {
            __m512i x = _mm512_add_epi64(_mm512_slli_epi64(s1, 2), s1); /* s1 * 5 */
            __m512i r7 = _mm512_rol_epi64(x, 7);
            __m512i res = _mm512_add_epi64(_mm512_slli_epi64(r7, 3), r7); /* rotl(x, 7) * 9 */
            __m512i t = _mm512_slli_epi64(s1, 17);
            s2 = _mm512_xor_si512(s2, s0);
            s3 = _mm512_xor_si512(s3, s1);
            s1 = _mm512_xor_si512(s1, s2);
            s0 = _mm512_xor_si512(s0, s3);
            s2 = _mm512_xor_si512(s2, t);
            s3 = _mm512_rol_epi64(s3, 45);
            __mmask8 kept = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(res, 40), vthr);
            bits = _mm512_mask_or_epi64(bits, kept, bits, _mm512_set1_epi64((long long)((uint64_t)1 << q)));
        }
        uint64_t w[8];
        _mm512_storeu_si512(w, bits);
        for (int k = 0; k < ns; k++) {
            if (i0 >= len[k]) continue;
            const size_t n = len[k] - i0 < 64 ? len[k] - i0 : 64, base = start[k] + i0;
            for (size_t j = 0; j < n; j += 16) {
                const __mmask16 lm = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
                const __m512 m = _mm512_maskz_mov_ps((__mmask16)(w[k] >> j), vkeep);
                const size_t o = base + j;
                _mm512_mask_storeu_ps(mask + o, lm, m);
                __m512 d = _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, in + o), m);
                if (add) d = _mm512_add_ps(_mm512_maskz_loadu_ps(lm, add + o), d);
                _mm512_mask_storeu_ps(out + o, lm, d);
            }
        }
    }
#else
    for (int k = 0; k < ns; k++) {
        mrm_rng r;
        mrm_rng_seed(&r, seed[k]);
        for (size_t i = start[k], e = start[k] + len[k]; i < e; i++)
            drop_value(out, mask, in, add, i, (mrm_rng_next_inline(&r) >> 40) >= thr ? keep : 0.0f);
    }
#endif
}

static void dropout_impl(float *out, float *mask, const float *in, const float *add, size_t n, float p, mrm_rng *rng) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) drop_value(out, mask, in, add, i, 1.0f);
        return;
    }
    float keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    const uint64_t thr = keep_threshold(p);
    size_t nblocks = (n + DROP_BLOCK - 1) / DROP_BLOCK;
    enum { SEEDS = 256 };
    uint64_t seeds[SEEDS];
    for (size_t b0 = 0; b0 < nblocks; b0 += SEEDS) {
        size_t nb = nblocks - b0 < SEEDS ? nblocks - b0 : SEEDS;
        for (size_t j = 0; j < nb; j++) seeds[j] = mrm_rng_next(rng);
        /* each thread its run of blocks, eight streams at a time */
#pragma omp parallel if (nb > 1)
        {
            mrm_range r = mrm_partition((long long)nb, omp_get_num_threads(), omp_get_thread_num());
            for (long long j0 = r.begin; j0 < r.end; j0 += 8) {
                size_t start[8], len[8];
                int ns = r.end - j0 < 8 ? (int)(r.end - j0) : 8;
                for (int k = 0; k < ns; k++) {
                    size_t i0 = (b0 + (size_t)j0 + (size_t)k) * DROP_BLOCK;
                    start[k] = i0, len[k] = i0 + DROP_BLOCK < n ? DROP_BLOCK : n - i0;
                }
                drop_streams(out, mask, in, add, start, len, seeds + j0, ns, thr, keep);
            }
        }
    }
}

void dropout_forward(float *out, float *mask, const float *in, size_t n, float p, mrm_rng *rng) {
    dropout_impl(out, mask, in, NULL, n, p, rng);
}
void dropout_add_forward(float *out, float *mask, const float *in, const float *add, size_t n, float p, mrm_rng *rng) {
    dropout_impl(out, mask, in, add, n, p, rng);
}

/* din += dout * mask (set: din = dout * mask). */
void dropout_backward(float *din, const float *dout, const float *mask, size_t n) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}
void dropout_backward_set(float *din, const float *dout, const float *mask, size_t n) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * mask[i];
}

static void dropout_keyed_impl(float *out, float *mask, const float *in, const float *add, int rows, size_t row_len,
                               float p, const uint64_t *keys, uint64_t salt) {
    if (p <= 0.0f) {
        dropout_impl(out, mask, in, add, (size_t)rows * row_len, p, NULL);
        return;
    }
    float keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    const uint64_t thr = keep_threshold(p);
    /* each thread its run of rows, eight streams at a time */
#pragma omp parallel if ((size_t)rows * row_len > 65536)
    {
        mrm_range r = mrm_partition(rows, omp_get_num_threads(), omp_get_thread_num());
        for (long long b0 = r.begin; b0 < r.end; b0 += 8) {
            size_t start[8], len[8];
            uint64_t seed[8];
            int ns = r.end - b0 < 8 ? (int)(r.end - b0) : 8;
            for (int k = 0; k < ns; k++) {
                start[k] = (size_t)(b0 + k) * row_len, len[k] = row_len;
                seed[k] = keys[b0 + k] ^ (salt * 0x9e3779b97f4a7c15ULL);
            }
            drop_streams(out, mask, in, add, start, len, seed, ns, thr, keep);
        }
    }
}

void dropout_forward_keyed(float *out, float *mask, const float *in, int rows, size_t row_len, float p,
                           const uint64_t *keys, uint64_t salt) {
    dropout_keyed_impl(out, mask, in, NULL, rows, row_len, p, keys, salt);
}
void dropout_add_forward_keyed(float *out, float *mask, const float *in, const float *add, int rows, size_t row_len,
                               float p, const uint64_t *keys, uint64_t salt) {
    dropout_keyed_impl(out, mask, in, add, rows, row_len, p, keys, salt);
}
