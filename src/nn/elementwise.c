/* Broadcast products, sums and channel concatenation. */
#include <string.h>

#include "nn/ops.h"

/* out[b,c,t] = x[b,c,t] * s[b,c]; ld: floats between the samples of out. */
void scale_channels_forward_ld(float *out, size_t ld, const float *x, const float *s, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *xr = x + (size_t)bc * L;
        float *o = out + (size_t)(bc / C) * ld + (size_t)(bc % C) * L, sv = s[bc];
        for (int t = 0; t < L; t++) o[t] = xr[t] * sv;
    }
}
void scale_channels_forward(float *out, const float *x, const float *s, int B, int C, int L) {
    scale_channels_forward_ld(out, (size_t)C * L, x, s, B, C, L);
}

/* out[b,c,t] = x[b,c,t] * s[b,c] + r[b,c,t], the product rounded first: scale_channels_forward
 * then add_forward(out, out, r) in one pass. */
void scale_channels_add_forward(float *out, const float *x, const float *s, const float *r, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        size_t off = (size_t)bc * L;
        const float *xr = x + off, *rr = r + off;
        float *o = out + off, sv = s[bc];
        for (int t = 0; t < L; t++) {
            float p = xr[t] * sv;
            o[t] = p + rr[t];
        }
    }
}

/* dx += dout * s; ds[b,c] += sum_t dout * x; ld: floats between the samples of dout. */
void scale_channels_backward_ld(float *dx, float *ds, const float *dout, size_t ld, const float *x, const float *s,
                                int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *g = dout + (size_t)(bc / C) * ld + (size_t)(bc % C) * L;
        if (dx) {
            float *d = dx + (size_t)bc * L, sv = s[bc];
            for (int t = 0; t < L; t++) d[t] += g[t] * sv;
        }
        if (ds) {
            const float *xr = x + (size_t)bc * L;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (int t = 0; t < L; t++) acc += (double)g[t] * xr[t];
            ds[bc] += (float)acc;
        }
    }
}
void scale_channels_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                             int B, int C, int L) {
    scale_channels_backward_ld(dx, ds, dout, (size_t)C * L, x, s, B, C, L);
}

/* The backward of out = x + h * s[b,c] with s = f(mean over time of h), once s's gradient has
 * come back to the mean as gmean (B, C): in one pass over dout,
 *     dh = dout * s + gmean / L  (set),   dx = dout (dx_set) or dx += dout.
 * The same values as zeroing dh, scale_channels_backward (dx NULL), mean_time_backward and a copy
 * (or add) of dout into dx, in that order. */
void gate_input_backward(float *dh, float *dx, int dx_set, const float *dout, const float *s, const float *gmean,
                         int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        size_t off = (size_t)bc * L;
        const float *g = dout + off;
        float *d = dh + off, *e = dx + off, sv = s[bc], gm = gmean[bc] / (float)L;
        for (int t = 0; t < L; t++) d[t] = (0.0f + g[t] * sv) + gm;
        if (dx_set)
            memcpy(e, g, (size_t)L * sizeof(float));
        else
            for (int t = 0; t < L; t++) e[t] += g[t];
    }
}

/* out[b,c,t] = x[b,c,t] * s[b,t]; ld: floats between the samples of out. */
void scale_time_forward_ld(float *out, size_t ld, const float *x, const float *s, int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int bc = 0; bc < B * C; bc++) {
        const float *xr = x + (size_t)bc * L, *sr = s + (size_t)(bc / C) * L;
        float *o = out + (size_t)(bc / C) * ld + (size_t)(bc % C) * L;
        for (int t = 0; t < L; t++) o[t] = xr[t] * sr[t];
    }
}
void scale_time_forward(float *out, const float *x, const float *s, int B, int C, int L) {
    scale_time_forward_ld(out, (size_t)C * L, x, s, B, C, L);
}

/* dx += dout * s[b,t]; ds[b,t] += sum_c dout * x; ld: floats between the samples of dout. */
void scale_time_backward_ld(float *dx, float *ds, const float *dout, size_t ld, const float *x, const float *s,
                            int B, int C, int L) {
#pragma omp parallel for if ((size_t)B * C * L > 65536)
    for (int b = 0; b < B; b++) {
        const float *sr = s + (size_t)b * L;
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)b * C + c) * L;
            const float *g = dout + (size_t)b * ld + (size_t)c * L, *xr = x + off;
            if (dx)
                for (int t = 0; t < L; t++) dx[off + t] += g[t] * sr[t];
            if (ds) {
                float *dsr = ds + (size_t)b * L;
                for (int t = 0; t < L; t++) dsr[t] += g[t] * xr[t];
            }
        }
    }
}
void scale_time_backward(float *dx, float *ds, const float *dout, const float *x, const float *s,
                         int B, int C, int L) {
    scale_time_backward_ld(dx, ds, dout, (size_t)C * L, x, s, B, C, L);
}

/* out = a + b. */
void add_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* d += src. */
void accumulate(float *d, const float *src, size_t n) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) d[i] += src[i];
}

/* out (B, Ca+Cb, L) = [a (B, Ca, L), b (B, Cb, L)] along channels; samples in parallel when
 * large. */
void concat_ch_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int L) {
    size_t na = (size_t)Ca * L, nb = (size_t)Cb * L;
#pragma omp parallel for if ((size_t)B * (na + nb) > 65536) schedule(static)
    for (int i = 0; i < B; i++) {
        memcpy(out + i * (na + nb), a + i * na, na * sizeof(float));
        memcpy(out + i * (na + nb) + na, b + i * nb, nb * sizeof(float));
    }
}

/* da += dout[:, :Ca], db += dout[:, Ca:]; samples in parallel when large. */
void concat_ch_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int L) {
    size_t na = (size_t)Ca * L, nb = (size_t)Cb * L;
#pragma omp parallel for if ((size_t)B * (na + nb) > 65536) schedule(static)
    for (int i = 0; i < B; i++) {
        const float *src = dout + i * (na + nb);
        float *d[2] = {da ? da + i * na : NULL, db ? db + i * nb : NULL};
        size_t n[2] = {na, nb};
        for (int h = 0; h < 2; h++) {
            if (!d[h]) continue;
            const float *x = src + (h ? na : 0);
            float *y = d[h];
#pragma omp simd
            for (size_t t = 0; t < n[h]; t++) y[t] += x[t];
        }
    }
}

