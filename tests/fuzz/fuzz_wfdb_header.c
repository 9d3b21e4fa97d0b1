/* Fuzz harness: WFDB header (.hea) text, parsed from memory. */
#include <stdint.h>
#include <stdlib.h>

#include "io/wfdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrm_record rec;
    wfdb_header_extra extra;
    mrm_error err;
    if (wfdb_header_parse((const char *)data, size, "fuzz.hea", &rec, &extra, &err) == MRM_OK) {
        wfdb_header_extra_free(&extra);
        mrm_record_free(&rec);
    }
    return 0;
}
