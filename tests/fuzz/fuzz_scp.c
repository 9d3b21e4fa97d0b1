/* Fuzz harness: SCP-ECG files, read from memory (the rhythm, then the representative beats). */
#include <stdint.h>
#include <stdlib.h>

#include "io/binfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int flags[2] = {0, MRM_READ_REPRESENTATIVE};
    for (int i = 0; i < 2; i++) {
        mrm_record rec;
        mrm_error err;
        if (mrm_scp_read_mem(&rec, data, size, "fuzz.scp", flags[i], &err) == MRM_OK) mrm_record_free(&rec);
    }
    return 0;
}
