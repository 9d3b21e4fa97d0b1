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

size_t mrm_eng_conv_scratch_floats(int cin, int lout, int K, int stride) {
    size_t Lq = (size_t)((lout + ENG_T_MAX - 1) / ENG_T_MAX * ENG_T_MAX + (K - 1) / stride + 1);
    return (size_t)cin * stride * Lq;
}
