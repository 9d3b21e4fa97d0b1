/* Losses: binary cross-entropy with logits, temperature-scaled KL divergence of softmaxes. */
#include <math.h>
#include <stdlib.h>

#include "nn/ops.h"

/* mean over B*N of max(x,0) - x*y + log1p(exp(-|x|)); dlogits += scale * (sigmoid(x) - y) / (B*N).
 * With pos_weight (N values, PyTorch's BCEWithLogitsLoss pos_weight) the positive term of class k
 * counts pos_weight[k] times: w y softplus(-x) + (1 - y) softplus(x), whose derivative is
 * sigmoid(x) (w y + 1 - y) - w y. */
double bce_logits_forward_backward(float *dlogits, const float *logits, const float *y, int B, int N,
                                   float scale, const float *pos_weight) {
    size_t n = (size_t)B * N;
    if (n == 0) return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = logits[i], t = y[i];
        double s = dlogits ? (x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x))) : 0.0;
        if (!pos_weight) {
            sum += (x > 0.0 ? x : 0.0) - x * t + log1p(exp(-fabs(x)));
            if (dlogits) dlogits[i] += (float)((double)scale * (s - t) / (double)n);
        } else {
            double w = pos_weight[i % (size_t)N], l = log1p(exp(-fabs(x)));
            sum += w * t * ((x < 0.0 ? -x : 0.0) + l) + (1.0 - t) * ((x > 0.0 ? x : 0.0) + l);
            if (dlogits) dlogits[i] += (float)((double)scale * (s * (w * t + 1.0 - t) - w * t) / (double)n);
        }
    }
    return sum / (double)n;
}

#if defined(__AVX512F__)
#include <immintrin.h>

/* e^x for 8 doubles: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^13
 * (truncation below 2e-16 relative), then times 2^n (scalef). Below -1000 the result is 0;
 * NaN stays NaN. */
static inline __m512d exp8(__m512d x) {
    x = _mm512_max_pd(_mm512_set1_pd(-1000.0), x); /* returns x when x is NaN */
    __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_fact[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                                      1.0 / 3628800.0,    1.0 / 362880.0,    1.0 / 40320.0,
                                      1.0 / 5040.0,       1.0 / 720.0,       1.0 / 120.0,
                                      1.0 / 24.0,         1.0 / 6.0,         0.5,
                                      1.0,                1.0};
    __m512d p = _mm512_set1_pd(inv_fact[0]);
    for (int k = 1; k < 14; k++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inv_fact[k]));
    return _mm512_scalef_pd(p, n);
}

/* Values j .. j+7 of x (fewer where the mask ends them) as doubles. */
static inline __m512d load8(const float *x, __mmask8 m) { return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x)); }
/* y[j .. j+7] += v (masked). */
static inline void add8(float *y, __m512d v, __mmask8 m) {
    _mm256_mask_storeu_ps(y, m, _mm256_add_ps(_mm256_maskz_loadu_ps(m, y), _mm512_cvtpd_ps(v)));
}
static inline __mmask8 tail8(int left) { return left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1u); }

static inline float max_of(const float *x, int N) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < N; j++) m = m > x[j] ? m : x[j];
    return m;
}

/* kl_one, 8 values at a time (same formulas as the portable version below). */
static double kl_one(float *ds, float *dt, const float *s, const float *t, int N, double T, double g,
                     double *scratch) {
    (void)scratch;
    double invT = 1.0 / T, ms = max_of(s, N) * invT, mt = max_of(t, N) * invT;
    __m512d vinvT = _mm512_set1_pd(invT), vms = _mm512_set1_pd(ms), vmt = _mm512_set1_pd(mt);
    __m512d zs = _mm512_setzero_pd(), zt = zs, a = zs;
    for (int j = 0; j < N; j += 8) {
        __mmask8 m = tail8(N - j);
        __m512d vs = load8(s + j, m), vt = load8(t + j, m);
        __m512d es = exp8(_mm512_fmsub_pd(vs, vinvT, vms)), et = exp8(_mm512_fmsub_pd(vt, vinvT, vmt));
        zs = _mm512_mask_add_pd(zs, m, zs, es);
        zt = _mm512_mask_add_pd(zt, m, zt, et);
        a = _mm512_mask3_fmadd_pd(et, _mm512_sub_pd(vt, vs), a, m);
    }
    double Zs = _mm512_reduce_add_pd(zs), Zt = _mm512_reduce_add_pd(zt), A = _mm512_reduce_add_pd(a);
    double lses = ms + log(Zs), lset = mt + log(Zt), kl = A * invT / Zt - (lset - lses);
    if (ds || dt) {
        __m512d vlses = _mm512_set1_pd(lses), vlset = _mm512_set1_pd(lset), vg = _mm512_set1_pd(g),
                vkl = _mm512_set1_pd(kl);
        for (int j = 0; j < N; j += 8) {
            __mmask8 m = tail8(N - j);
            __m512d lq = _mm512_fmsub_pd(load8(s + j, m), vinvT, vlses);
            __m512d lp = _mm512_fmsub_pd(load8(t + j, m), vinvT, vlset), p = exp8(lp);
            if (ds) add8(ds + j, _mm512_mul_pd(vg, _mm512_sub_pd(exp8(lq), p)), m);
            if (dt) add8(dt + j, _mm512_mul_pd(_mm512_mul_pd(vg, p), _mm512_sub_pd(_mm512_sub_pd(lp, lq), vkl)), m);
        }
    }
    return kl;
}

/* kl_sym_one, 8 values at a time (same formulas as the portable version below). With scratch
 * (2N doubles) the exponentials of pass 2 are kept there and pass 3 takes the softmaxes from
 * them (pa = ea / Za): half the exponentials. */
static double kl_sym_one(float *da, float *db, const float *a, const float *b, int N, double T, double g,
                         double *scratch) {
    double invT = 1.0 / T, ma = max_of(a, N) * invT, mb = max_of(b, N) * invT;
    __m512d vinvT = _mm512_set1_pd(invT), vma = _mm512_set1_pd(ma), vmb = _mm512_set1_pd(mb);
    __m512d za = _mm512_setzero_pd(), zb = za, sa = za, sb = za;
    double *ka = (da || db) ? scratch : NULL, *kb = ka ? ka + N : NULL;
    for (int j = 0; j < N; j += 8) {
        __mmask8 m = tail8(N - j);
        __m512d va = load8(a + j, m), vb = load8(b + j, m), diff = _mm512_sub_pd(va, vb);
        __m512d ea = exp8(_mm512_fmsub_pd(va, vinvT, vma)), eb = exp8(_mm512_fmsub_pd(vb, vinvT, vmb));
        if (ka) {
            _mm512_mask_storeu_pd(ka + j, m, ea);
            _mm512_mask_storeu_pd(kb + j, m, eb);
        }
        za = _mm512_mask_add_pd(za, m, za, ea);
        zb = _mm512_mask_add_pd(zb, m, zb, eb);
        sa = _mm512_mask3_fmadd_pd(ea, diff, sa, m);
        sb = _mm512_mask3_fnmadd_pd(eb, diff, sb, m);
    }
    double Za = _mm512_reduce_add_pd(za), Zb = _mm512_reduce_add_pd(zb);
    double lsea = ma + log(Za), lseb = mb + log(Zb);
    double kl_ab = _mm512_reduce_add_pd(sb) * invT / Zb - (lseb - lsea);
    double kl_ba = _mm512_reduce_add_pd(sa) * invT / Za - (lsea - lseb);
    if (da || db) {
        __m512d vlsea = _mm512_set1_pd(lsea), vlseb = _mm512_set1_pd(lseb), vg = _mm512_set1_pd(g),
                vab = _mm512_set1_pd(kl_ab), vba = _mm512_set1_pd(kl_ba), ra = _mm512_set1_pd(1.0 / Za),
                rb = _mm512_set1_pd(1.0 / Zb);
        for (int j = 0; j < N; j += 8) {
            __mmask8 m = tail8(N - j);
            __m512d la = _mm512_fmsub_pd(load8(a + j, m), vinvT, vlsea);
            __m512d lb = _mm512_fmsub_pd(load8(b + j, m), vinvT, vlseb);
            __m512d pa, pb, lab = _mm512_sub_pd(la, lb);
            if (ka) {
                pa = _mm512_mul_pd(_mm512_maskz_loadu_pd(m, ka + j), ra);
                pb = _mm512_mul_pd(_mm512_maskz_loadu_pd(m, kb + j), rb);
            } else {
                pa = exp8(la);
                pb = exp8(lb);
            }
            if (da)
                add8(da + j, _mm512_mul_pd(vg, _mm512_fmadd_pd(pa, _mm512_sub_pd(lab, vba), _mm512_sub_pd(pa, pb))), m);
            if (db)
                add8(db + j, _mm512_mul_pd(vg, _mm512_fnmadd_pd(pb, _mm512_add_pd(lab, vab), _mm512_sub_pd(pb, pa))), m);
        }
    }
    return kl_ab + kl_ba;
}

#else /* portable: one value at a time */

/* One sample: returns KL = sum_j p_j (log p_j - log q_j), p = softmax(t/T), q = softmax(s/T),
 * and accumulates g * (q - p) into ds and g * p * (log p - log q - KL) into dt. In double,
 * by log-sum-exp; no scratch: pass 1 finds the maxima, pass 2 the two normalisers and
 *   KL = sum_j e^(t_j/T - mt) (t_j - s_j) / T / Zt - (lse_t - lse_s),
 * pass 3 the gradients. */
static double kl_one(float *ds, float *dt, const float *s, const float *t, int N, double T, double g,
                     double *scratch) {
    (void)scratch;
    double ms = -INFINITY, mt = -INFINITY, invT = 1.0 / T;
    for (int j = 0; j < N; j++) {
        ms = fmax(ms, s[j] * invT);
        mt = fmax(mt, t[j] * invT);
    }
    double zs = 0.0, zt = 0.0, a = 0.0;
    for (int j = 0; j < N; j++) {
        double et = exp(t[j] * invT - mt);
        zs += exp(s[j] * invT - ms);
        zt += et;
        a += et * ((double)t[j] - s[j]);
    }
    double lses = ms + log(zs), lset = mt + log(zt);
    double kl = a * invT / zt - (lset - lses);
    if (ds || dt)
        for (int j = 0; j < N; j++) {
            double lq = s[j] * invT - lses, lp = t[j] * invT - lset, p = exp(lp);
            if (ds) ds[j] += (float)(g * (exp(lq) - p));
            if (dt) dt[j] += (float)(g * p * (lp - lq - kl));
        }
    return kl;
}

/* Both directions for one sample: KL(a|b) + KL(b|a) and their gradients, sharing the
 * softmaxes (4 exponentials per value instead of 8; 2 with scratch, 2N doubles, where pass 2
 * keeps them and pass 3 divides by the normalisers). With pa, pb the softmaxes of a/T, b/T:
 *   KL(a|b) = sum pb (log pb - log pa),  KL(b|a) = sum pa (log pa - log pb),
 *   da += g (pa - pb) + g pa (log pa - log pb - KL(b|a)),
 *   db += g (pb - pa) + g pb (log pb - log pa - KL(a|b)). */
static double kl_sym_one(float *da, float *db, const float *a, const float *b, int N, double T, double g,
                         double *scratch) {
    double ma = -INFINITY, mb = -INFINITY, invT = 1.0 / T;
    double *ka = (da || db) ? scratch : NULL, *kb = ka ? ka + N : NULL;
    for (int j = 0; j < N; j++) {
        ma = fmax(ma, a[j] * invT);
        mb = fmax(mb, b[j] * invT);
    }
    double za = 0.0, zb = 0.0, sa = 0.0, sb = 0.0;
    for (int j = 0; j < N; j++) {
        double ea = exp(a[j] * invT - ma), eb = exp(b[j] * invT - mb), diff = (double)a[j] - b[j];
        if (ka) ka[j] = ea, kb[j] = eb;
        za += ea;
        zb += eb;
        sa += ea * diff;
        sb -= eb * diff;
    }
    double lsea = ma + log(za), lseb = mb + log(zb);
    double kl_ab = sb * invT / zb - (lseb - lsea), kl_ba = sa * invT / za - (lsea - lseb);
    if (da || db) {
        double ra = 1.0 / za, rb = 1.0 / zb;
        for (int j = 0; j < N; j++) {
            double la = a[j] * invT - lsea, lb = b[j] * invT - lseb;
            double pa = ka ? ka[j] * ra : exp(la), pb = ka ? kb[j] * rb : exp(lb);
            if (da) da[j] += (float)(g * ((pa - pb) + pa * (la - lb - kl_ba)));
            if (db) db[j] += (float)(g * ((pb - pa) + pb * (lb - la - kl_ab)));
        }
    }
    return kl_ab + kl_ba;
}

#endif

/* One sample's KL term(s) with its gradient accumulated: kl_one or kl_sym_one. scratch: 2N
 * doubles or NULL. */
typedef double (*kl_sample_fn)(float *dx, float *dy, const float *x, const float *y, int N, double T, double g,
                               double *scratch);

/* T^2 / B * the sum over the batch of kl(sample). Per-sample values are summed in order
 * afterwards, so the result does not depend on threads. Each thread has its own scratch (none
 * when it cannot be had: the same values, computed again instead of kept). */
static double kl_batch(kl_sample_fn kl, float *dx, float *dy, const float *x, const float *y, int B, int N,
                       float T, float scale) {
    if (B <= 0 || N <= 0) return 0.0;
    enum { CHUNK = 256 };
    double kls[CHUNK], total = 0.0, g = (double)scale * T / (double)B;
    int grad = dx || dy;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
#pragma omp parallel if ((size_t)nb * N > 16384)
        {
            double *scratch = grad ? malloc(2 * (size_t)N * sizeof(double)) : NULL;
#pragma omp for schedule(static)
            for (int i = 0; i < nb; i++) {
                size_t off = (size_t)(b0 + i) * N;
                kls[i] = kl(dx ? dx + off : NULL, dy ? dy + off : NULL, x + off, y + off, N, T, g, scratch);
            }
            free(scratch);
        }
        for (int i = 0; i < nb; i++) total += kls[i];
    }
    return (double)T * T / (double)B * total;
}

/* loss = T^2 / B * sum_b KL_b;  dL/ds = T / B * (q - p),  dL/dt = T / B * p * (log p - log q - KL_b). */
double kl_softmax_forward_backward(float *ds, float *dt, const float *s, const float *t, int B, int N,
                                   float T, float scale) {
    return kl_batch(kl_one, ds, dt, s, t, B, N, T, scale);
}

double kl_sym_softmax_forward_backward(float *da, float *db, const float *a, const float *b, int B, int N,
                                       float T, float scale) {
    return kl_batch(kl_sym_one, da, db, a, b, B, N, T, scale);
}
