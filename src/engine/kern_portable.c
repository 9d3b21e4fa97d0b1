/* The portable kernels: plain C with generic vectors of 4 floats (SSE2 on x86-64, NEON on
 * aarch64, scalar code elsewhere); the tile fits 16 vector registers (x86-64) or 32 (aarch64). */
#define VW 4
#if defined(__aarch64__)
#define NV 4
#define CO 6
#else
#define NV 2
#define CO 4
#endif
#define FN mrm_eng_conv_portable
#define FN8 mrm_eng_conv8_portable
#define FNW mrm_eng_convw_portable
#define FNF mrm_eng_convf_portable
#define FNF3 mrm_eng_convf3_portable
#if defined(__aarch64__)
#define FCO 4
#define FNV 2
#define FCO3 2
#else
#define FCO 2
#define FNV 2
#define FCO3 1
#endif
#include "engine/conv_template.h"

#include <string.h>

size_t mrm_eng_conv_scratch_floats(int cin, int lout, int K, int stride) {
    size_t Lq = (size_t)((lout + ENG_T_MAX - 1) / ENG_T_MAX * ENG_T_MAX + (K - 1) / stride + 1);
    return (size_t)cin * stride * Lq;
}

size_t mrm_eng_pack8_bytes(int cin, int cout, int K, int groups) {
    size_t cig4 = (size_t)(cin / groups + 3) / 4;
    return (size_t)groups * cig4 * (size_t)K * (size_t)(cout / groups) * 4 + ENG_W8_TAIL;
}

void mrm_eng_pack8(int8_t *dst, int32_t *comp, const int8_t *w, int cin, int cout, int K, int groups) {
    const int cig = cin / groups, cog = cout / groups, cig4 = (cig + 3) / 4;
    memset(dst, 0, mrm_eng_pack8_bytes(cin, cout, K, groups));
    for (int o = 0; o < cout; o++) {
        int g = o / cog, ol = o % cog;
        int64_t sum = 0; /* 64 bits: a hostile image's layer can hold more weights than an int32 sum takes */
        for (int i = 0; i < cig; i++)
            for (int k = 0; k < K; k++) {
                int8_t v = w[((size_t)o * cig + i) * K + k];
                dst[((((size_t)g * cig4 + i / 4) * K + k) * cog + ol) * 4 + i % 4] = v;
                sum += v;
            }
        comp[o] = (int32_t)(uint32_t)(uint64_t)(128 * sum); /* wraps as the int32 accumulators do */
    }
}

void mrm_eng_unpack8(int8_t *w, const int8_t *packed, int cin, int cout, int K, int groups) {
    const int cig = cin / groups, cog = cout / groups, cig4 = (cig + 3) / 4;
    for (int o = 0; o < cout; o++) {
        int g = o / cog, ol = o % cog;
        for (int i = 0; i < cig; i++)
            for (int k = 0; k < K; k++)
                w[((size_t)o * cig + i) * K + k] = packed[((((size_t)g * cig4 + i / 4) * K + k) * cog + ol) * 4 + i % 4];
    }
}

size_t mrm_eng_conv_scratch_floats2(int kind, int cin, int cout, int lout, int K, int stride) {
    if (kind == ENG_CONV_FFT || kind == ENG_CONV_FFT3) {
        eng_fft f = eng_fft_shape(cin, lout, K, stride);
        /* Z, M, one padded phase row, the twiddles and the twist */
        return (size_t)f.H * (2 * ((size_t)f.Ce + cout) * f.nbp + 32) + (f.Lx + 15) / 16 * 16 + 4 * (size_t)f.H;
    }
    if (kind != ENG_CONV_WINOGRAD) return mrm_eng_conv_scratch_floats(cin, lout, K, stride);
    eng_wino w = eng_wino_shape(cin, lout, K, stride, ENG_T_MAX);
    /* V, M, the phase rows P (or the output rows, 4 x Lm), one padded channel */
    size_t p = ENG_WINO_M * (w.Lw + 1);
    if (p < ENG_WINO_M * eng_wino_lm(w.ntile)) p = ENG_WINO_M * eng_wino_lm(w.ntile);
    return (size_t)w.n * w.Ce * w.Lw + (size_t)w.n * (cout + ENG_WINO_MROWS) * eng_wino_lm(w.ntile) + p + ENG_WINO_M * (w.Lw + 1);
}

size_t mrm_eng_wino_weight_floats(int cin, int cout, int K, int stride) {
    eng_wino w = eng_wino_shape(cin, 1, K, stride, ENG_T_MAX);
    return (size_t)w.n * ((size_t)w.Ce * w.J * cout + ENG_W_TAIL);
}

/* U[e][(c' J + j) cout + o], c' = i s + ph, from the taps k = s (4j + b) + ph. */
void mrm_eng_wino_pack(float *U, const float *w, int cin, int cout, int K, int s) {
    const eng_wino g = eng_wino_shape(cin, 1, K, s, ENG_T_MAX);
    const float(*G)[4] = g.n == 6 ? eng_wino_g6 : eng_wino_g7;
    const size_t us = (size_t)g.Ce * g.J * cout + ENG_W_TAIL;
    memset(U, 0, (size_t)g.n * us * sizeof(float));
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int ph = 0; ph < s; ph++)
                for (int j = 0; j < g.J; j++) {
                    float tap[4] = {0, 0, 0, 0};
                    for (int b = 0; b < g.r; b++) {
                        int k = s * (4 * j + b) + ph;
                        if (k < K) tap[b] = w[((size_t)o * cin + i) * K + k];
                    }
                    size_t at = ((size_t)(i * s + ph) * g.J + j) * cout + o;
                    for (int e = 0; e < g.n; e++) {
                        float acc = 0.0f;
                        for (int b = 0; b < g.r; b++) acc += G[e][b] * tap[b];
                        U[(size_t)e * us + at] = acc;
                    }
                }
}

/* The taps from the points 0 (tap 0), infinity (the last tap) and +-1 (the middle ones). */
void mrm_eng_wino_unpack(float *wp, const float *U, int cin, int cout, int K, int s) {
    const eng_wino g = eng_wino_shape(cin, 1, K, s, ENG_T_MAX);
    const size_t us = (size_t)g.Ce * g.J * cout + ENG_W_TAIL;
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int ph = 0; ph < s; ph++)
                for (int j = 0; j < g.J; j++) {
                    size_t at = ((size_t)(i * s + ph) * g.J + j) * cout + o;
                    float u[ENG_WINO_NMAX], tap[4];
                    for (int e = 0; e < g.n; e++) u[e] = U[(size_t)e * us + at];
                    tap[0] = u[0];
                    if (g.r == 3) {
                        tap[2] = u[5];
                        tap[1] = (u[1] - u[2]) * 0.5f;
                    } else {
                        tap[3] = u[6];
                        tap[2] = (u[1] + u[2]) * 0.5f - tap[0];
                        tap[1] = (u[1] - u[2]) * 0.5f - tap[3];
                    }
                    for (int b = 0; b < g.r; b++) {
                        int k = s * (4 * j + b) + ph;
                        if (k < K) wp[((size_t)i * K + k) * cout + o] = tap[b];
                    }
                }
}

/* ---- the FFT convolution's weights (engine/fft.h) ------------------------------------------ */

size_t mrm_eng_fft_weight_floats(int cin, int cout, int K, int stride) {
    eng_fft f = eng_fft_shape(cin, 1, K, stride);
    return (size_t)f.H * 2 * f.Ce * cout + ENG_W_TAIL;
}

size_t mrm_eng_fft3_weight_floats(int cin, int cout, int K, int stride) {
    eng_fft f = eng_fft_shape(cin, 1, K, stride);
    return (size_t)f.H * 3 * f.Ce * cout + ENG_W_TAIL;
}

/* S_j[c', o] = (2 / N) sum_n h_n w_j^n, j = bitrev(p), h_n = w[o, i, s (Ke - 1 - n) + ph] (the
 * reversed taps of phase ph; zero past K), stored at [p][c'] as planes of cout: with planes 2 re,
 * im (kind ENG_CONV_FFT); with 3 re, im - re, re + im (kind ENG_CONV_FFT3), from the double values. */
static void fft_pack(float *S, const float *w, int cin, int cout, int K, int s, int planes) {
    const eng_fft f = eng_fft_shape(cin, 1, K, s);
    const size_t sp = (size_t)planes * f.Ce * cout;
    memset(S, 0, ((size_t)f.H * sp + ENG_W_TAIL) * sizeof(float));
    if (f.Ke > ENG_FFT_NMAX / 2 + 1) return; /* not an FFT convolution (the compiler and open refuse it) */
    for (int p = 0; p < f.H; p++) {
        const int j = eng_fft_bitrev(p, f.H);
        double cs[2 * (ENG_FFT_NMAX / 2 + 1)]; /* w_j^n, n < Ke */
        for (int n = 0; n < f.Ke; n++) {
            double a = M_PI_ * (4.0 * j + 1.0) * n / f.N;
            cs[2 * n] = cos(a), cs[2 * n + 1] = sin(a);
        }
        for (int c = 0; c < f.Ce; c++) {
            const int i = c / s, ph = c % s;
            float *row = S + (size_t)p * sp + (size_t)c * planes * cout;
            for (int o = 0; o < cout; o++) {
                double re = 0.0, im = 0.0;
                for (int n = 0; n < f.Ke; n++) {
                    int k = s * (f.Ke - 1 - n) + ph;
                    if (k >= K) continue;
                    double h = w[((size_t)o * cin + i) * K + k];
                    re += h * cs[2 * n], im += h * cs[2 * n + 1];
                }
                re *= 2.0 / f.N, im *= 2.0 / f.N;
                row[o] = (float)re;
                if (planes == 2) row[cout + o] = (float)im;
                else row[cout + o] = (float)(im - re), row[2 * cout + o] = (float)(re + im);
            }
        }
    }
}

void mrm_eng_fft_pack(float *S, const float *w, int cin, int cout, int K, int s) { fft_pack(S, w, cin, cout, K, s, 2); }
void mrm_eng_fft3_pack(float *S, const float *w, int cin, int cout, int K, int s) { fft_pack(S, w, cin, cout, K, s, 3); }

/* h_n = Re sum_j S_j w_j^-n (the other half of the spectrum is the conjugate of this one); with
 * three planes im = (second + third) / 2. */
static void fft_unpack(float *wp, const float *S, int cin, int cout, int K, int s, int planes) {
    const eng_fft f = eng_fft_shape(cin, 1, K, s);
    const size_t sp = (size_t)planes * f.Ce * cout;
    if (f.Ke > ENG_FFT_NMAX / 2 + 1) return;
    for (int n = 0; n < f.Ke; n++) {
        double cs[2 * (ENG_FFT_NMAX / 2)]; /* w_j^n at bin position p */
        for (int p = 0; p < f.H; p++) {
            double a = M_PI_ * (4.0 * eng_fft_bitrev(p, f.H) + 1.0) * n / f.N;
            cs[2 * p] = cos(a), cs[2 * p + 1] = sin(a);
        }
        for (int c = 0; c < f.Ce; c++) {
            const int i = c / s, ph = c % s, k = s * (f.Ke - 1 - n) + ph;
            if (k >= K) continue;
            for (int o = 0; o < cout; o++) {
                double acc = 0.0;
                for (int p = 0; p < f.H; p++) {
                    const float *row = S + (size_t)p * sp + (size_t)c * planes * cout;
                    double re = row[o];
                    double im = planes == 2 ? row[cout + o] : ((double)row[cout + o] + row[2 * cout + o]) * 0.5;
                    acc += re * cs[2 * p] + im * cs[2 * p + 1];
                }
                wp[((size_t)i * K + k) * cout + o] = (float)acc;
            }
        }
    }
}

void mrm_eng_fft_unpack(float *wp, const float *S, int cin, int cout, int K, int s) {
    fft_unpack(wp, S, cin, cout, K, s, 2);
}
void mrm_eng_fft3_unpack(float *wp, const float *S, int cin, int cout, int K, int s) {
    fft_unpack(wp, S, cin, cout, K, s, 3);
}
