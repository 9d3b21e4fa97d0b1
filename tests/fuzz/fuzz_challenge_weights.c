/* Fuzz harness: a PhysioNet/CinC 2021 reward matrix (weights.csv) parsed from memory, then every
 * class's codes looked up. fuzz-link: mrm_eval */
#include <stdint.h>
#include <stdlib.h>

#include "mrmnet/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrm_challenge_weights w;
    mrm_error err;
    if (mrm_challenge_weights_parse(&w, "fuzz.csv", (const char *)data, size, &err) != MRM_OK) return 0;
    for (int j = 0; j < w.n; j++)
        for (char **c = w.codes[j]; *c; c++)
            if (mrm_challenge_class_of(&w, *c) != j) abort();
    mrm_challenge_weights_free(&w);
    return 0;
}
