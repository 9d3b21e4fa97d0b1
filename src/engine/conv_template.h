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

typedef float vf __attribute__((vector_size(VW * sizeof(float))));
#define T (NV * VW)

static inline vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One tile: acc (CO x T) = sum over i < cig, k < K of W[i, k, o0 + c] * X_i[phase k%s][t0 + k/s + t]. */
static inline __attribute__((always_inline)) void tile(float *tmp, const float *X, size_t xi_stride, size_t Lq,
                                                        const float *W, int cog, int cig, int K, int s) {
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
        for (int v = 0; v < NV; v++) memcpy(tmp + c * T + v * VW, &acc[c][v], sizeof(vf));
}

static void conv_run(float *out, const float *in, const float *res, const float *wp, const float *bias, int relu,
                     int cin, int lin, int cout, int K, int s, int pad, int groups, int lout, float *X) {
    const int cig = cin / groups, cog = cout / groups;
    const size_t Lq = (size_t)((lout + ENG_T_MAX - 1) / ENG_T_MAX * ENG_T_MAX + (K - 1) / s + 1);
    /* the padded phase rows */
    for (int i = 0; i < cin; i++) {
        const float *src = in + (size_t)i * lin;
        for (int r = 0; r < s; r++) {
            float *row = X + ((size_t)i * s + r) * Lq;
            if (s == 1) {
                size_t lead = (size_t)pad, n = (size_t)lin;
                if (lead > Lq) lead = Lq;
                memset(row, 0, lead * sizeof(float));
                if (n > Lq - lead) n = Lq - lead;
                memcpy(row + lead, src, n * sizeof(float));
                memset(row + lead + n, 0, (Lq - lead - n) * sizeof(float));
            } else {
                for (size_t j = 0; j < Lq; j++) {
                    long long idx = (long long)r + (long long)s * (long long)j - pad;
                    row[j] = idx >= 0 && idx < lin ? src[idx] : 0.0f;
                }
            }
        }
    }
    float tmp[CO * T] __attribute__((aligned(64)));
    for (int g = 0; g < groups; g++) {
        const float *Xg = X + (size_t)g * cig * s * Lq;
        const float *Wg = wp + (size_t)g * cig * K * cog;
        for (int o0 = 0; o0 < cog; o0 += CO) {
            int nco = cog - o0 < CO ? cog - o0 : CO;
            for (int t0 = 0; t0 < lout; t0 += T) {
                int nt = lout - t0 < T ? lout - t0 : T;
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
    }
}

void FN(float *out, const float *in, const float *res, const float *wp, const float *bias, int relu, int cin,
        int lin, int cout, int K, int stride, int pad, int groups, int lout, float *scratch) {
    conv_run(out, in, res, wp, bias, relu, cin, lin, cout, K, stride, pad, groups, lout, scratch);
}

/* ---- int8: weights int8 per output channel, the input quantised to int8 on the fly (one scale
 * per tensor), products summed in int32; out = act(acc * scale[o] + bias[o] [+ res]) ------- */
typedef int32_t vi __attribute__((vector_size(VW * sizeof(int32_t))));
typedef int8_t vb __attribute__((vector_size(VW)));

static inline vi vload8(const int8_t *p) {
    vb b;
    memcpy(&b, p, sizeof b);
    return __builtin_convertvector(b, vi);
}

static inline __attribute__((always_inline)) void tile8(int32_t *tmp, const int8_t *X, size_t xi_stride, size_t Lq,
                                                         const int8_t *W, int cog, int cig, int K, int s) {
    vi acc[CO][NV];
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) acc[c][v] = (vi){0};
    for (int i = 0; i < cig; i++) {
        const int8_t *xi = X + (size_t)i * xi_stride;
        const int8_t *wi = W + (size_t)i * K * cog;
        for (int k = 0; k < K; k++) {
            const int8_t *xr = xi + (size_t)(k % s) * Lq + k / s;
            const int8_t *wr = wi + (size_t)k * cog;
            vi xv[NV];
            for (int v = 0; v < NV; v++) xv[v] = vload8(xr + v * VW);
            for (int c = 0; c < CO; c++) {
                int32_t wc = wr[c];
                for (int v = 0; v < NV; v++) acc[c][v] += wc * xv[v];
            }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) memcpy(tmp + c * T + v * VW, &acc[c][v], sizeof(vi));
}

static inline int8_t q8(float x, float inv) {
    float v = x * inv;
    v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
    return (int8_t)(v >= 0.0f ? (int)(v + 0.5f) : -(int)(0.5f - v));
}

void FN8(float *out, const float *in, const float *res, const int8_t *wp, const float *bias, const float *scale,
         float in_scale, int relu, int cin, int lin, int cout, int K, int s, int pad, int groups, int lout,
         float *scratch) {
    const int cig = cin / groups, cog = cout / groups;
    const size_t Lq = (size_t)((lout + ENG_T_MAX - 1) / ENG_T_MAX * ENG_T_MAX + (K - 1) / s + 1);
    int8_t *X = (int8_t *)scratch;
    const float inv = 1.0f / in_scale;
    for (int i = 0; i < cin; i++) {
        const float *src = in + (size_t)i * lin;
        for (int r = 0; r < s; r++) {
            int8_t *row = X + ((size_t)i * s + r) * Lq;
            for (size_t j = 0; j < Lq; j++) {
                long long idx = (long long)r + (long long)s * (long long)j - pad;
                row[j] = idx >= 0 && idx < lin ? q8(src[idx], inv) : 0;
            }
        }
    }
    int32_t tmp[CO * T] __attribute__((aligned(64)));
    for (int g = 0; g < groups; g++) {
        const int8_t *Xg = X + (size_t)g * cig * s * Lq;
        const int8_t *Wg = wp + (size_t)g * cig * K * cog;
        for (int o0 = 0; o0 < cog; o0 += CO) {
            int nco = cog - o0 < CO ? cog - o0 : CO;
            for (int t0 = 0; t0 < lout; t0 += T) {
                int nt = lout - t0 < T ? lout - t0 : T;
                if (s == 1) tile8(tmp, Xg + t0, (size_t)s * Lq, Lq, Wg + o0, cog, cig, K, 1);
                else if (s == 2) tile8(tmp, Xg + t0, (size_t)s * Lq, Lq, Wg + o0, cog, cig, K, 2);
                else tile8(tmp, Xg + t0, (size_t)s * Lq, Lq, Wg + o0, cog, cig, K, s);
                for (int c = 0; c < nco; c++) {
                    int o = g * cog + o0 + c;
                    float b = bias[o], sc = scale[o];
                    float *dst = out + (size_t)o * lout + t0;
                    const int32_t *a = tmp + c * T;
                    const float *rr = res ? res + (size_t)o * lout + t0 : NULL;
                    for (int t = 0; t < nt; t++) {
                        float y = (float)a[t] * sc + b + (rr ? rr[t] : 0.0f);
                        dst[t] = relu && y < 0.0f ? 0.0f : y;
                    }
                }
            }
        }
    }
}
