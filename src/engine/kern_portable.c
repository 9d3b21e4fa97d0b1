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
