/* Labels one 12-lead ECG with the embeddable engine alone (mrmnet/engine.h, libmrmnet_engine).
 *   label_ecg MODEL.mrme RECORD.dat [GAIN]
 * MODEL.mrme: from `mrmnet export --model W.safetensors --engine MODEL.mrme`; built with
 * -DEMBEDDED_MODEL and the C source of `mrmnet export --c-source model.c`, the model is a const
 * array instead and MODEL.mrme is left out of the arguments. RECORD.dat: 10 s at
 * 100 Hz of the 12 standard leads (I II III aVR aVL aVF V1-V6) as interleaved little-endian int16
 * (WFDB format 16, as PTB-XL's records100 files), GAIN units per mV (1000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "mrmnet/engine.h"

static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    void *p = aligned_alloc(MRM_ENGINE_ALIGN, (*len + 63) / 64 * 64);
    if (p && fread(p, 1, *len, f) != *len) free(p), p = NULL;
    fclose(f);
    return p;
}

#ifdef EMBEDDED_MODEL
extern const unsigned char mrm_model_image[];
extern const size_t mrm_model_image_len;
#endif

int main(int argc, char **argv) {
#ifdef EMBEDDED_MODEL
    size_t len = mrm_model_image_len, rlen;
    const void *image = mrm_model_image;
    argv--, argc++; /* no MODEL argument */
#else
    size_t len, rlen;
    void *image = read_file(argc > 1 ? argv[1] : "", &len);
#endif
    if (argc < 3) return fprintf(stderr, "usage: label_ecg [MODEL.mrme] RECORD.dat [GAIN]\n"), 2;
    short *raw = read_file(argv[2], &rlen);
    double gain = argc > 3 ? atof(argv[3]) : 1000.0;
    mrm_engine e;
    mrm_error err;
    if (!image || !raw || rlen < 2 * MRM_ENGINE_LEADS * MRM_ENGINE_SAMPLES || gain <= 0)
        return fprintf(stderr, "label_ecg: cannot read the model or %s (12 x 1000 int16 samples)\n", argv[2]), 1;
    if (mrm_engine_open(&e, image, len, &err)) return fprintf(stderr, "label_ecg: %s\n", err.msg), 1;
    /* the model's input: mV, standardised as in training (the image's metadata), lead-major */
    double mean = atof(mrm_engine_info(&e, "mean") ? mrm_engine_info(&e, "mean") : "0");
    double sd = atof(mrm_engine_info(&e, "std") ? mrm_engine_info(&e, "std") : "1");
    static float x[MRM_ENGINE_LEADS * MRM_ENGINE_SAMPLES], l1[64], l2[64];
    for (int t = 0; t < MRM_ENGINE_SAMPLES; t++)
        for (int j = 0; j < MRM_ENGINE_LEADS; j++)
            x[j * MRM_ENGINE_SAMPLES + t] = (float)((raw[t * MRM_ENGINE_LEADS + j] / gain - mean) / sd);
    mrm_engine_sizes s;
    mrm_engine_get_sizes(&e, 1, &s, &err);
    void *work = aligned_alloc(MRM_ENGINE_ALIGN, (s.work_bytes + 63) / 64 * 64); /* the only buffer */
    if (e.n_classes > 64 || !work || mrm_engine_run(&e, work, s.work_bytes, x, 1, l1, e.n_heads > 1 ? l2 : NULL, &err))
        return fprintf(stderr, "label_ecg: %s\n", e.n_classes > 64 ? "too many classes" : err.msg), 1;
    /* class names and thresholds: JSON arrays in the metadata, e.g. ["CD","HYP","MI","NORM","STTC"] */
    const char *names = mrm_engine_info(&e, "classes"), *thr = mrm_engine_info(&e, "thresholds");
    for (int k = 0; k < e.n_classes; k++) {
        float p = 1.0f / (1.0f + expf(-l1[k]));
        if (e.n_heads > 1) p = 0.5f * (p + 1.0f / (1.0f + expf(-l2[k])));
        char name[32] = "?";
        if (names && (names = strchr(names, '"'))) {
            size_t n = strcspn(++names, "\"");
            snprintf(name, sizeof name, "%.*s", (int)n, names);
            names += n + 1;
        }
        double th = 0.5;
        if (thr && (thr = strpbrk(thr, "0123456789.-"))) th = strtod(thr, (char **)&thr);
        printf("%-6s %.3f%s\n", name, p, p >= th ? "  *" : "");
    }
    free(work), free(raw);
#ifndef EMBEDDED_MODEL
    free(image); /* the engine reads its weights from the image: freed last */
#endif
    return 0;
}
