/* Fuzz harness: a safetensors file held in memory, parsed (header, offsets, metadata) and loaded
 * as a model (every tensor of the architecture it describes checked before the model is built).
 * fuzz-link: mrm_model */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "mrmnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    mrm_error err;
    if (st_read_mem(&f, data, size, "fuzz.safetensors", &err) == MRM_OK) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < f.n; i++) /* every tensor's bytes lie inside the buffer */
            if (f.t[i].end > f.t[i].begin) {
                const uint8_t *p = st_data(&f, &f.t[i]);
                sink ^= p[0] ^ p[f.t[i].end - f.t[i].begin - 1];
            }
        (void)sink;
        st_free(&f);
    }
    mrm_model *m = NULL;
    mrm_meta meta;
    if (mrm_model_load_mem(&m, &meta, data, size, "fuzz.safetensors", &err) == MRM_OK) {
        mrm_meta_free(&meta);
        mrm_model_free(m);
    }
    return 0;
}
