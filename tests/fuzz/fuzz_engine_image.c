/* Fuzz harness: a model for the engine held in memory: an engine image (.mrme) or a quantised
 * safetensors file (mrmnet quantize), checked and, for the latter, built into its int8 image;
 * an image that opens is run on one record of zeros.
 * fuzz-link: mrm_model */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mrmnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *img = NULL;
    size_t len = 0;
    mrm_error err;
    if (mrm_engine_image_from_mem(data, size, "fuzz.model", &img, &len, &err) == MRM_OK) {
        mrm_engine e;
        mrm_engine_sizes s;
        if (mrm_engine_open(&e, img, len, &err) == MRM_OK && mrm_engine_get_sizes(&e, 1, &s, &err) == MRM_OK &&
            s.work_bytes < ((size_t)64 << 20)) {
            void *work = aligned_alloc(MRM_ENGINE_ALIGN, (s.work_bytes + 63) / 64 * 64);
            float *x = calloc(12 * 1000, sizeof(float)), l[2 * 1024];
            if (work && x && e.n_classes <= 1024)
                (void)mrm_engine_run(&e, work, s.work_bytes, x, 1, l, e.n_heads > 1 ? l + 1024 : NULL, &err);
            free(work);
            free(x);
        }
        mrm_engine_image_free(img);
    }
    return 0;
}
