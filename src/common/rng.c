#include "common/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mrm_rng_seed(mrm_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}


uint64_t mrm_rng_next(mrm_rng *r) { return mrm_rng_next_inline(r); }

float mrm_rng_uniform(mrm_rng *r) { return mrm_rng_uniform_inline(r); }

float mrm_rng_uniform_range(mrm_rng *r, float lo, float hi) {
    return lo + (hi - lo) * mrm_rng_uniform(r);
}

uint64_t mrm_rng_below(mrm_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = mrm_rng_next(r);
    while (x >= limit);
    return x % n;
}

void mrm_rng_shuffle(mrm_rng *r, int *idx, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)mrm_rng_below(r, (uint64_t)i + 1);
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

void mrm_rng_fill_normal(mrm_rng *r, float *x, size_t n) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = 1.0 - mrm_rng_uniform(r), u2 = mrm_rng_uniform(r);
        double m = sqrt(-2.0 * log(u1));
        x[i] = (float)(m * cos(2.0 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(m * sin(2.0 * M_PI * u2));
    }
}
