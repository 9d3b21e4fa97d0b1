/* Fuzz harness: a class map (CSV with columns from,to) parsed from memory. fuzz-link: mrm_data */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mrmnet/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrm_class_map m;
    mrm_error err;
    if (mrm_class_map_parse(&m, "fuzz.csv", (const char *)data, size, &err) != MRM_OK) return 0;
    for (int i = 0; i < m.n; i++)
        if (!m.from[i][0] || !m.to[i][0]) abort();
    mrm_class_map_free(&m);
    return 0;
}
