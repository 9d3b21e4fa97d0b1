/* The FFT (overlap-save) convolution for the engine's long kernels (a step's kind
 * ENG_CONV_FFT): the model's 33-tap multi-scale convolutions.
 *
 * A stride-s convolution is first written as a stride-1 one over Ce = cin * s input channels
 * (polyphase, as for Winograd: channel c' = i * s + ph reads xph[u] = xpad_i[s u + ph], its taps
 * are w[o, i, s kk + ph], kk < Ke = ceil(K / s)). The outputs are cut into blocks of
 * hop = N - Ke + 1; block b reads the N inputs xph[b hop .. b hop + N - 1], and its outputs are
 * the last hop of the N-point cyclic (here negacyclic) convolution of them with the reversed
 * taps h[n] = w[Ke - 1 - n] (the first Ke - 1 wrap round and are dropped; their sign does not
 * matter). N is the smallest power of two with hop >= N / 2.
 *
 * The negacyclic convolution of real sequences of length N is a product at the N/2 points
 * w_j = exp(i pi (4j + 1) / N) (the roots of u^(N/2) = i; the other N/2 roots of u^N = -1 are
 * their conjugates): with zeta = exp(i pi / N) and H = N / 2,
 *
 *     X_j = sum_m (x_m + i x_{m+H}) zeta^m W^(jm),  W = exp(2 pi i / H)     (H-point FFT)
 *     Y_j = sum_{c'} S_j[c', o] X_j[c']                                    (complex products)
 *     q_m = zeta^-m sum_j Y_j W^(-jm);  y_m = Re q_m, y_{m+H} = Im q_m     (inverse FFT)
 *
 * where S_j = (2 / N) sum_n h_n w_j^n are the weights' spectra, computed at build time in double
 * precision (mrm_eng_fft_pack). The forward FFT (decimation in frequency) leaves the bins in
 * bit-reversed order and the inverse (decimation in time) takes them in that order, so the
 * spectra are stored in it too and no reordering is done. Every record's blocks lie side by
 * side on the vectors' lanes (the block axis padded to ENG_FFT_TB), the complex products are
 * small matrix products per bin, about 4 H nblk / (Ke lout) of the direct convolution's
 * multiplications (an eighth for the 33-tap convolution at stride 1, a quarter at stride 2). */
#ifndef MRM_ENGINE_FFT_H
#define MRM_ENGINE_FFT_H

#include <stddef.h>

#define ENG_FFT_TB 32    /* the block axis is padded to a multiple of this (the widest kernel tile) */
#define ENG_FFT_NMAX 256 /* the largest block: taps per phase at most ENG_FFT_NMAX / 2 + 1 */

typedef struct eng_fft {
    int N, H, Ke, Ce, hop, nblk, nbp;
    size_t Lx; /* the length of one padded phase row: (nbp - 1) hop + N */
} eng_fft;

static inline eng_fft eng_fft_shape(int cin, int lout, int K, int s) {
    eng_fft f;
    f.Ke = (K + s - 1) / s;
    f.Ce = cin * s;
    f.N = 8;
    while (f.N < ENG_FFT_NMAX && f.N - f.Ke + 1 < f.N / 2) f.N *= 2;
    f.H = f.N / 2;
    f.hop = f.N - f.Ke + 1;
    if (f.hop < 1) f.hop = 1; /* refused at open (Ke too large); keeps the sizes finite */
    f.nblk = (lout + f.hop - 1) / f.hop;
    f.nbp = (f.nblk + ENG_FFT_TB - 1) / ENG_FFT_TB * ENG_FFT_TB;
    f.Lx = (size_t)(f.nbp - 1) * f.hop + f.N;
    return f;
}

/* The bit reversal of j < n (a power of two). */
static inline int eng_fft_bitrev(int j, int n) {
    int r = 0;
    for (int b = 1; b < n; b <<= 1) r = (r << 1) | ((j & b) ? 1 : 0);
    return r;
}

#endif
