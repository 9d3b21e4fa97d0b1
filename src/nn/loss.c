/* Losses: binary cross-entropy with logits, temperature-scaled KL divergence of softmaxes. */
#include <math.h>

#include "nn/ops.h"

/* mean over B*N of max(x,0) - x*y + log1p(exp(-|x|)); dlogits += scale * (sigmoid(x) - y) / (B*N). */
double bce_logits_forward_backward(float *dlogits, const float *logits, const float *y, int B, int N,
                                   float scale) {
    size_t n = (size_t)B * N;
    if (n == 0) return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = logits[i], t = y[i];
        sum += (x > 0.0 ? x : 0.0) - x * t + log1p(exp(-fabs(x)));
        if (dlogits) {
            double s = x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
            dlogits[i] += (float)((double)scale * (s - t) / (double)n);
        }
    }
    return sum / (double)n;
}

/* One sample: returns KL = sum_j p_j (log p_j - log q_j), p = softmax(t/T), q = softmax(s/T),
 * and accumulates g * (q - p) into ds and g * p * (log p - log q - KL) into dt. In double,
 * by log-sum-exp; no scratch: pass 1 finds the maxima, pass 2 the two normalisers and
 *   KL = sum_j e^(t_j/T - mt) (t_j - s_j) / T / Zt - (lse_t - lse_s),
 * pass 3 the gradients. */
static double kl_one(float *ds, float *dt, const float *s, const float *t, int N, double T, double g) {
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

/* loss = T^2 / B * sum_b KL_b;  dL/ds = T / B * (q - p),  dL/dt = T / B * p * (log p - log q - KL_b).
 * Per-sample values are summed in order afterwards, so the result does not depend on threads. */
double kl_softmax_forward_backward(float *ds, float *dt, const float *s, const float *t, int B, int N,
                                   float T, float scale) {
    if (B <= 0 || N <= 0) return 0.0;
    enum { CHUNK = 256 };
    double kls[CHUNK], total = 0.0, g = (double)scale * T / (double)B;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
#pragma omp parallel for if ((size_t)nb * N > 16384) schedule(static)
        for (int i = 0; i < nb; i++) {
            size_t off = (size_t)(b0 + i) * N;
            kls[i] = kl_one(ds ? ds + off : NULL, dt ? dt + off : NULL, s + off, t + off, N, T, g);
        }
        for (int i = 0; i < nb; i++) total += kls[i];
    }
    return (double)T * T / (double)B * total;
}

/* Both directions for one sample: KL(a|b) + KL(b|a) and their gradients, sharing the
 * softmaxes (4 exponentials per value instead of 8). With pa, pb the softmaxes of a/T, b/T:
 *   KL(a|b) = sum pb (log pb - log pa),  KL(b|a) = sum pa (log pa - log pb),
 *   da += g (pa - pb) + g pa (log pa - log pb - KL(b|a)),
 *   db += g (pb - pa) + g pb (log pb - log pa - KL(a|b)). */
static double kl_sym_one(float *da, float *db, const float *a, const float *b, int N, double T, double g) {
    double ma = -INFINITY, mb = -INFINITY, invT = 1.0 / T;
    for (int j = 0; j < N; j++) {
        ma = fmax(ma, a[j] * invT);
        mb = fmax(mb, b[j] * invT);
    }
    double za = 0.0, zb = 0.0, sa = 0.0, sb = 0.0;
    for (int j = 0; j < N; j++) {
        double ea = exp(a[j] * invT - ma), eb = exp(b[j] * invT - mb), diff = (double)a[j] - b[j];
        za += ea;
        zb += eb;
        sa += ea * diff;
        sb -= eb * diff;
    }
    double lsea = ma + log(za), lseb = mb + log(zb);
    double kl_ab = sb * invT / zb - (lseb - lsea), kl_ba = sa * invT / za - (lsea - lseb);
    if (da || db)
        for (int j = 0; j < N; j++) {
            double la = a[j] * invT - lsea, lb = b[j] * invT - lseb, pa = exp(la), pb = exp(lb);
            if (da) da[j] += (float)(g * ((pa - pb) + pa * (la - lb - kl_ba)));
            if (db) db[j] += (float)(g * ((pb - pa) + pb * (lb - la - kl_ab)));
        }
    return kl_ab + kl_ba;
}

double kl_sym_softmax_forward_backward(float *da, float *db, const float *a, const float *b, int B, int N,
                                       float T, float scale) {
    if (B <= 0 || N <= 0) return 0.0;
    enum { CHUNK = 256 };
    double kls[CHUNK], total = 0.0, g = (double)scale * T / (double)B;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
#pragma omp parallel for if ((size_t)nb * N > 16384) schedule(static)
        for (int i = 0; i < nb; i++) {
            size_t off = (size_t)(b0 + i) * N;
            kls[i] = kl_sym_one(da ? da + off : NULL, db ? db + off : NULL, a + off, b + off, N, T, g);
        }
        for (int i = 0; i < nb; i++) total += kls[i];
    }
    return (double)T * T / (double)B * total;
}
