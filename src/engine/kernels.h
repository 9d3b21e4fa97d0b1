/* The engine's kernels. The convolution is written once, with the compiler's generic vectors
 * (vector_size), and compiled once per instruction set (kern_portable.c, kern_avx2.c,
 * kern_avx512.c; the int8 tiles of kern_avx512vnni.c and kern_neondot.c in intrinsics), each TU
 * with its own flags and tile sizes; the engine picks one at open from the CPU it runs on. */
#ifndef MRM_ENGINE_KERNELS_H
#define MRM_ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define ENG_CAT2(a, b) a##b
#define ENG_CAT(a, b) ENG_CAT2(a, b)

/* ---- splitting one convolution over a team of threads (mrm_engine_run_team) ----------------
 * A convolution's outputs are cut into tiles of co output channels x t time steps (the
 * kernel's register tile, eng_tile), numbered group by group, then channel tile, then time
 * tile; a team shares out a contiguous range of tile numbers to each thread (eng_split). The
 * padded input the tiles read is built first, its input channels (float) or channel quads
 * (int8) shared out the same way. */
typedef struct eng_tile {
    int co, t;
} eng_tile;
/* Tile u covers output channels [o0, o1) (of group g) and time steps [t0, t1). */
typedef struct eng_rect {
    int g, o0, o1, t0, t1;
} eng_rect;
static inline long long eng_conv_tiles(int cout, int groups, int lout, int co, int t) {
    long long cog = cout / groups;
    return (long long)groups * ((cog + co - 1) / co) * ((lout + t - 1) / t);
}
static inline eng_rect eng_conv_tile_rect(long long u, int cout, int groups, int lout, int co, int t) {
    int cog = cout / groups;
    long long nt = (lout + t - 1) / t, nc = (cog + co - 1) / co;
    eng_rect r;
    long long tt = u % nt, rest = u / nt;
    int oc = (int)(rest % nc);
    r.g = (int)(rest / nc);
    r.o0 = r.g * cog + oc * co;
    r.o1 = r.o0 + (cog - oc * co < co ? cog - oc * co : co);
    r.t0 = (int)tt * t;
    r.t1 = lout - r.t0 < t ? lout : r.t0 + t;
    return r;
}
/* Part p of n units split into `parts` contiguous parts whose sizes differ by at most one (the
 * first n mod parts get the extra one): [*begin, *end). The library's mrm_partition, kept here
 * so that the engine depends on nothing. */
static inline void eng_split(long long n, int parts, int p, long long *begin, long long *end) {
    if (n < 1 || parts < 1 || p < 0 || p >= parts) {
        *begin = *end = 0;
        return;
    }
    long long q = n / parts, extra = n % parts;
    *begin = (long long)p * q + (p < extra ? p : extra);
    *end = *begin + q + (p < extra ? 1 : 0);
}
typedef void (*eng_conv_pad_fn)(float *X, const float *in, int i0, int i1, int lin, int K, int stride, int pad,
                                int lout);
typedef void (*eng_conv_tiles_fn)(float *out, const float *res, const float *wp, const float *bias, int relu, int cin,
                                  int cout, int K, int stride, int groups, int lout, const float *X, long long u0,
                                  long long u1);
typedef void (*eng_conv8_pack_fn)(void *X, const float *in, float in_scale, int cin, int lin, int groups, int K,
                                  int stride, int pad, int lout, int q0, int q1);
typedef void (*eng_conv8_tiles_fn)(float *out, const float *res, const int8_t *wp, const int32_t *comp,
                                   const float *bias, const float *scale, int relu, int cin, int cout, int K,
                                   int stride, int groups, int lout, const void *X, long long u0, long long u1);
#define ENG_DECL_TEAM(fn)                                                                                            \
    void ENG_CAT(fn, _pad)(float *X, const float *in, int i0, int i1, int lin, int K, int stride, int pad, int lout); \
    void ENG_CAT(fn, _tiles)(float *out, const float *res, const float *wp, const float *bias, int relu, int cin,     \
                             int cout, int K, int stride, int groups, int lout, const float *X, long long u0,          \
                             long long u1);                                                                            \
    eng_tile ENG_CAT(fn, _tile)(void);
#define ENG_DECL_TEAM8(fn)                                                                                           \
    void ENG_CAT(fn, _pack)(void *X, const float *in, float in_scale, int cin, int lin, int groups, int K, int stride, \
                            int pad, int lout, int q0, int q1);                                                        \
    void ENG_CAT(fn, _tiles)(float *out, const float *res, const int8_t *wp, const int32_t *comp, const float *bias,  \
                             const float *scale, int relu, int cin, int cout, int K, int stride, int groups, int lout, \
                             const void *X, long long u0, long long u1);                                               \
    eng_tile ENG_CAT(fn, _tile)(void);
ENG_DECL_TEAM(mrm_eng_conv_portable)
ENG_DECL_TEAM8(mrm_eng_conv8_portable)
#if defined(__x86_64__)
ENG_DECL_TEAM(mrm_eng_conv_avx2)
ENG_DECL_TEAM(mrm_eng_conv_avx512)
ENG_DECL_TEAM8(mrm_eng_conv8_avx2)
ENG_DECL_TEAM8(mrm_eng_conv8_avx512)
ENG_DECL_TEAM8(mrm_eng_conv8_avx512vnni)
#endif
#if defined(__aarch64__)
ENG_DECL_TEAM8(mrm_eng_conv8_neondot)
#endif

/* out (cout, lout) = act(conv(in (cin, lin), wp) + bias [+ res]) for one record. wp: weights
 * packed (groups, cin/groups, K, cout/groups) followed by ENG_W_TAIL zeros. scratch: at least
 * mrm_eng_conv_scratch_floats floats. */
typedef void (*eng_conv_fn)(float *out, const float *in, const float *res, const float *wp, const float *bias,
                            int relu, int cin, int lin, int cout, int K, int stride, int pad, int groups, int lout,
                            float *scratch);
size_t mrm_eng_conv_scratch_floats(int cin, int lout, int K, int stride);
/* int8: wp packed by mrm_eng_pack8, comp[o] = 128 * (sum of output channel o's weights),
 * scale[o] = in_scale * (the channel's weight step); the input is quantised to int8 with step
 * in_scale on the way into the padded rows (the scratch as for the float kernel). The sums are
 * exact int32, so every ISA's kernel gives the same sums. */
typedef void (*eng_conv8_fn)(float *out, const float *in, const float *res, const int8_t *wp, const int32_t *comp,
                             const float *bias, const float *scale, float in_scale, int relu, int cin, int lin,
                             int cout, int K, int stride, int pad, int groups, int lout, float *scratch);
#define DECL8(name)                                                                                                  \
    void name(float *out, const float *in, const float *res, const int8_t *wp, const int32_t *comp, const float *bias, \
              const float *scale, float in_scale, int relu, int cin, int lin, int cout, int K, int stride, int pad,   \
              int groups, int lout, float *scratch);
DECL8(mrm_eng_conv8_portable)
#if defined(__x86_64__)
DECL8(mrm_eng_conv8_avx2)
DECL8(mrm_eng_conv8_avx512)
DECL8(mrm_eng_conv8_avx512vnni)
#endif
#if defined(__aarch64__)
DECL8(mrm_eng_conv8_neondot)
#endif

/* The int8 weight layout: (groups, ceil(cig/4), K, cog, 4) bytes (input channels in fours,
 * zeros past the group's last) followed by ENG_W8_TAIL zero bytes; from and to PyTorch's (cout,
 * cig, K). pack8 also gives comp (cout). */
#define ENG_W8_TAIL 64
size_t mrm_eng_pack8_bytes(int cin, int cout, int K, int groups);
void mrm_eng_pack8(int8_t *dst, int32_t *comp, const int8_t *w, int cin, int cout, int K, int groups);
void mrm_eng_unpack8(int8_t *w, const int8_t *packed, int cin, int cout, int K, int groups);

void mrm_eng_conv_portable(float *out, const float *in, const float *res, const float *wp, const float *bias, int relu,
                       int cin, int lin, int cout, int K, int stride, int pad, int groups, int lout, float *scratch);
#if defined(__x86_64__)
void mrm_eng_conv_avx2(float *out, const float *in, const float *res, const float *wp, const float *bias, int relu,
                   int cin, int lin, int cout, int K, int stride, int pad, int groups, int lout, float *scratch);
void mrm_eng_conv_avx512(float *out, const float *in, const float *res, const float *wp, const float *bias, int relu,
                     int cin, int lin, int cout, int K, int stride, int pad, int groups, int lout, float *scratch);
#endif

/* The Winograd convolution (engine/wino.h; a step of kind ENG_CONV_WINOGRAD, groups 1): U holds
 * the transformed weights of mrm_eng_wino_pack; scratch at least mrm_eng_conv_scratch_floats2
 * floats for that kind. */
typedef void (*eng_convw_fn)(float *out, const float *in, const float *res, const float *U, const float *bias,
                             int relu, int cin, int lin, int cout, int K, int stride, int pad, int lout, float *scratch);
#define DECLW(name)                                                                                                  \
    void name(float *out, const float *in, const float *res, const float *U, const float *bias, int relu, int cin,    \
              int lin, int cout, int K, int stride, int pad, int lout, float *scratch);
DECLW(mrm_eng_convw_portable)
#if defined(__x86_64__)
DECLW(mrm_eng_convw_avx2)
DECLW(mrm_eng_convw_avx512)
#endif
/* Its two halves, for a team (FNW_IN, FNW_OUT in conv_template.h): the inputs' transforms into
 * the scratch (one thread), then the products and output transforms of output channels
 * [o_begin, o_end) (bounds multiples of the direct tile's channels, or cout; shared out, each
 * channel's bits whatever the split). */
typedef void (*eng_convw_in_fn)(const float *in, int cin, int lin, int cout, int K, int s, int pad, int lout,
                                float *scratch);
typedef void (*eng_convw_out_fn)(float *out, const float *res, const float *U, const float *bias, int relu, int cin,
                                 int cout, int K, int s, int lout, float *scratch, int o_begin, int o_end);
#define DECLWT(name)                                                                                                 \
    void ENG_CAT(name, _in)(const float *in, int cin, int lin, int cout, int K, int s, int pad, int lout,            \
                            float *scratch);                                                                          \
    void ENG_CAT(name, _out)(float *out, const float *res, const float *U, const float *bias, int relu, int cin,      \
                             int cout, int K, int s, int lout, float *scratch, int o_begin, int o_end);
DECLWT(mrm_eng_convw_portable)
#if defined(__x86_64__)
DECLWT(mrm_eng_convw_avx2)
DECLWT(mrm_eng_convw_avx512)
#endif
/* The FFT convolution (engine/fft.h; a step of kind ENG_CONV_FFT, groups 1): S holds the
 * weights' spectra of mrm_eng_fft_pack; same signature as the Winograd one. */
DECLW(mrm_eng_convf_portable)
#if defined(__x86_64__)
DECLW(mrm_eng_convf_avx2)
DECLW(mrm_eng_convf_avx512)
#endif
/* Kind ENG_CONV_FFT3: the same convolution with the three real products a bin of Gauss's form
 * (S of mrm_eng_fft3_pack); three quarters of the FFT's multiplications. */
DECLW(mrm_eng_convf3_portable)
#if defined(__x86_64__)
DECLW(mrm_eng_convf3_avx2)
DECLW(mrm_eng_convf3_avx512)
#endif
/* Its two halves, for a team (FNF_IN, FNF_OUT in conv_template.h): the twiddles and the inputs'
 * transforms into the scratch (one thread), then the products, inverse transforms and outputs of
 * output channels [o_begin, o_end) (shared out; each channel's bits whatever the split). */
typedef void (*eng_convf_in_fn)(const float *in, int cin, int lin, int cout, int K, int s, int pad, int lout,
                                float *scratch);
typedef void (*eng_convf_out_fn)(float *out, const float *res, const float *S, const float *bias, int relu, int cin,
                                 int cout, int K, int s, int lout, float *scratch, int o_begin, int o_end);
#define DECLF(name)                                                                                                  \
    void ENG_CAT(name, _in)(const float *in, int cin, int lin, int cout, int K, int s, int pad, int lout,            \
                            float *scratch);                                                                          \
    void ENG_CAT(name, _out)(float *out, const float *res, const float *S, const float *bias, int relu, int cin,      \
                             int cout, int K, int s, int lout, float *scratch, int o_begin, int o_end);         \
    void ENG_CAT(name, _out3)(float *out, const float *res, const float *S, const float *bias, int relu, int cin,     \
                              int cout, int K, int s, int lout, float *scratch, int o_begin, int o_end);
DECLF(mrm_eng_convf_portable)
#if defined(__x86_64__)
DECLF(mrm_eng_convf_avx2)
DECLF(mrm_eng_convf_avx512)
#endif
/* The spectra: their size in floats (ENG_W_TAIL zeros after them), S from w (cout, cin, K)
 * (PyTorch's layout), computed in double precision, and back to the direct kernel's packing
 * (i, k, o) (exact up to float rounding). */
size_t mrm_eng_fft_weight_floats(int cin, int cout, int K, int stride);
void mrm_eng_fft_pack(float *S, const float *w, int cin, int cout, int K, int stride);
void mrm_eng_fft_unpack(float *wp, const float *S, int cin, int cout, int K, int stride);
/* The same for kind ENG_CONV_FFT3: per bin and input channel the planes re, im - re, re + im. */
size_t mrm_eng_fft3_weight_floats(int cin, int cout, int K, int stride);
void mrm_eng_fft3_pack(float *S, const float *w, int cin, int cout, int K, int stride);
void mrm_eng_fft3_unpack(float *wp, const float *S, int cin, int cout, int K, int stride);
/* The scratch of a convolution step of the given kind (ENG_CONV_*). */
size_t mrm_eng_conv_scratch_floats2(int kind, int cin, int cout, int lout, int K, int stride);
/* The transformed weights: their size in floats (ENG_W_TAIL zeros after each point's matrix),
 * U from w (cout, cin, K) (PyTorch's layout), and back to the direct kernel's packing (i, k, o)
 * (exact up to float rounding: the points 0, +-1 and infinity give the taps back). */
size_t mrm_eng_wino_weight_floats(int cin, int cout, int K, int stride);
void mrm_eng_wino_pack(float *U, const float *w, int cin, int cout, int K, int stride);
void mrm_eng_wino_unpack(float *wp, const float *U, int cin, int cout, int K, int stride);

#endif
