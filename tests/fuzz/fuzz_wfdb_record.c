/* Fuzz harness: a whole WFDB record held in memory. The input is the header text, one NUL byte,
 * then the bytes of the signal file; every signal file the header names is given those bytes.
 * Read with and without MRM_READ_STRICT, and header only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/wfdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *sig = nul ? nul + 1 : data + size;
    size_t slen = (size_t)(data + size - sig);
    mrm_record rec;
    wfdb_header_extra extra;
    mrm_error err;
    if (wfdb_header_parse((const char *)data, hlen, "fuzz.hea", &rec, &extra, &err) != MRM_OK) return 0;
    mrm_mem_file *files = calloc((size_t)rec.n_signals + 1, sizeof *files);
    int n = 0;
    for (int s = 0; files && s < rec.n_signals; s++)
        if (s == 0 || strcmp(rec.signals[s].file, rec.signals[s - 1].file)) {
            files[n].name = strdup(rec.signals[s].file);
            files[n].data = sig;
            files[n].len = slen;
            n++;
        }
    wfdb_header_extra_free(&extra);
    mrm_record_free(&rec);
    static const int flags[3] = {0, MRM_READ_STRICT, MRM_READ_HEADER_ONLY};
    for (int i = 0; files && i < 3; i++)
        if (mrm_wfdb_read_mem(&rec, data, hlen, "fuzz.hea", files, n, flags[i], &err) == MRM_OK) mrm_record_free(&rec);
    for (int i = 0; i < n; i++) free((char *)files[i].name);
    free(files);
    return 0;
}
