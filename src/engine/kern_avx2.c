/* AVX2 + FMA kernels (this file is compiled with -mavx2 -mfma; called only where the CPU has
 * them): 8-float vectors, tiles of 6 channels x 16 steps (12 of the 16 registers). */
#if defined(__x86_64__)
#define VW 8
#define NV 2
#define CO 6
#define FN mrm_eng_conv_avx2
#define FN8 mrm_eng_conv8_avx2
#define FNW mrm_eng_convw_avx2
#define FNF mrm_eng_convf_avx2
#define FNF3 mrm_eng_convf3_avx2
#define FCO 2
#define FNV 2
#define FCO3 1
#include "engine/conv_template.h"
#else
typedef int eng_kern_avx2_unused; /* not an x86-64 build */
#endif
