/* Fuzz harness: GE MUSE XML, read from memory (rhythm, then representative beats). */
#include <stdint.h>
#include <stdlib.h>

#include "io/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrm_record rec;
    mrm_error err;
    for (int flags = 0; flags <= MRM_READ_REPRESENTATIVE; flags += MRM_READ_REPRESENTATIVE)
        if (mrm_muse_read(&rec, data, size, "fuzz.xml", flags, &err) == MRM_OK) mrm_record_free(&rec);
    (void)mrm_muse_sniff(data, size);
    return 0;
}
