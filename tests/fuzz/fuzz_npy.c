/* Fuzz harness: a .npy file held in memory. */
#include <stdint.h>
#include <stdlib.h>

#include "mrmnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float *x = NULL;
    int ndim;
    long long shape[4];
    mrm_error err;
    if (mrm_npy_read_f32_mem(data, size, "fuzz.npy", &x, &ndim, shape, &err) == MRM_OK) free(x);
    return 0;
}
