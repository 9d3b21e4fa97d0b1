/* A small, fast, seedable random number generator (xoshiro256**, seeded by splitmix64).
 * Its whole state is the struct, so a checkpoint can save and restore it exactly. */
#ifndef MRM_COMMON_RNG_H
#define MRM_COMMON_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct mrm_rng {
    uint64_t s[4];
} mrm_rng;

void mrm_rng_seed(mrm_rng *r, uint64_t seed);
uint64_t mrm_rng_next(mrm_rng *r);

/* The same step and uniform draw inline, for loops that draw once per value (dropout masks). */
static inline uint64_t mrm_rng_next_inline(mrm_rng *r) {
    uint64_t *s = r->s, x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}
static inline float mrm_rng_uniform_inline(mrm_rng *r) {
    return (float)(mrm_rng_next_inline(r) >> 40) * (1.0f / 16777216.0f);
}
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float mrm_rng_uniform(mrm_rng *r);
/* Uniform in [lo, hi). */
float mrm_rng_uniform_range(mrm_rng *r, float lo, float hi);
/* Uniform integer in [0, n), without modulo bias. n > 0. */
uint64_t mrm_rng_below(mrm_rng *r, uint64_t n);
/* x[0..n) standard normal (Box-Muller, two values from each two uniform draws): random inputs
 * for benchmarks and tests. */
void mrm_rng_fill_normal(mrm_rng *r, float *x, size_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void mrm_rng_shuffle(mrm_rng *r, int *idx, int n);

#endif
