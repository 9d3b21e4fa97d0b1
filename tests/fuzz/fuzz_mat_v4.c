/* Fuzz harness: a MATLAB v4 signal file of the PhysioNet/CinC Challenge 2020 held in memory, read
 * through a WFDB header made from its first bytes (rows = signals, 16-bit after the v4 header), as
 * the record's own header would describe it: once with the sample count the matrix declares,
 * once without (as many as the file holds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrmnet.h"

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 20) return 0;
    uint32_t rows = le32(data + 4), cols = le32(data + 8), namlen = le32(data + 16);
    int k = rows >= 1 && rows <= 16 ? (int)rows : 1 + (int)(rows % 16);
    int off = 20 + (int)(namlen % 65);
    char hea[2048];
    mrm_mem_file file = {"fuzz.mat", data, size};
    for (int pass = 0; pass < 2; pass++) {
        int n = snprintf(hea, sizeof hea, "fuzz %d 500 %u\n", k, pass ? 0u : cols % 100000000u);
        for (int s = 0; s < k; s++)
            n += snprintf(hea + n, sizeof hea - (size_t)n, "fuzz.mat 16+%d 1000/mV 16 0 0 0 0 L%d\n", off, s);
        mrm_record rec;
        mrm_error err;
        if (mrm_wfdb_read_mem(&rec, hea, (size_t)n, "fuzz.hea", &file, 1, 0, &err) == MRM_OK) mrm_record_free(&rec);
    }
    return 0;
}
