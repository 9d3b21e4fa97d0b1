/* AVX-512F kernels (this file is compiled with -mavx512f -mfma; called only where the CPU has
 * them): 16-float vectors, tiles of 6 channels x 64 steps (24 of the 32 registers). */
#if defined(__x86_64__)
#define VW 16
#define NV 4
#define CO 6
#define FN mrm_eng_conv_avx512
#define FN8 mrm_eng_conv8_avx512
#define FNW mrm_eng_convw_avx512
#define FNF mrm_eng_convf_avx512
#define FNF3 mrm_eng_convf3_avx512
#define FCO 6
#define FNV 2
#define FCO3 4
#include "engine/conv_template.h"
#else
typedef int eng_kern_avx512_unused; /* not an x86-64 build */
#endif
