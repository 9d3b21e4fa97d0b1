/* Fuzz harness: a MATLAB v5 file (CPSC2018 layout) held in memory. */
#include <stdint.h>
#include <stdlib.h>

#include "io/wfdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrm_record rec;
    mrm_error err;
    if (mat_read_cpsc_v5_mem(&rec, data, size, "fuzz.mat", 0, &err) == MRM_OK) mrm_record_free(&rec);
    return 0;
}
