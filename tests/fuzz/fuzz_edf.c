/* Fuzz harness: EDF/EDF+ files, read from memory (and asked for representative beats, which it refuses). */
#include <stdint.h>
#include <stdlib.h>

#include "io/binfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int flags[2] = {0, MRM_READ_REPRESENTATIVE};
    for (int i = 0; i < 2; i++) {
        mrm_record rec;
        mrm_error err;
        if (mrm_edf_read_mem(&rec, data, size, "fuzz.edf", flags[i], &err) == MRM_OK) mrm_record_free(&rec);
    }
    return 0;
}
