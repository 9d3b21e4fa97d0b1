/* Compiling a model into an engine image (mrmnet/engine.h), in the full library. */
#ifndef MRMNET_ENGINE_BUILD_H
#define MRMNET_ENGINE_BUILD_H

#include "../mrmnet.h"
#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Compiles m (evaluation mode: BatchNorm folded into the layers before it, the four
 * multi-scale kernels merged into one 33-tap kernel, the weights packed for the kernels) into a
 * new image (*image, *len; aligned to MRM_ENGINE_ALIGN; free with mrm_engine_image_free). The
 * string pairs of meta (may be NULL) are kept in the image (mrm_engine_info). One walk of the
 * model's unit list; the activations of one record are planned so that buffers whose lives do
 * not overlap share memory. */
mrm_status mrm_engine_build(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len, mrm_error *err);
void mrm_engine_image_free(void *image);

/* int8 (post-training quantisation): every convolution but the first (on the raw input) gets
 * int8 weights, one scale per output channel (largest |w| / 127), and an int8 input, one scale
 * per tensor (largest |x| seen on the calibration records / 127); products summed in int32,
 * outputs, biases, the attention blocks and the heads stay float. mrm_engine_build_int8
 * calibrates on X (n records, (n, 12, 1000) standardised as in training) and quantises;
 * mrm_engine_quantize does the second half from a float image and the activations' absmax
 * (mrm_engine_calibrate). The image's metadata gets "quantization" "int8". */
mrm_status mrm_engine_build_int8(const mrm_model *m, const mrm_meta *meta, const float *X, long long n, void **image,
                                 size_t *len, mrm_error *err);
mrm_status mrm_engine_quantize(const void *image, size_t len, const float *absmax, void **out, size_t *out_len,
                               mrm_error *err);

/* Writes an image to path atomically; reads one (checked by mrm_engine_open) into a new aligned
 * buffer (free with mrm_engine_image_free). */
mrm_status mrm_engine_image_save(const void *image, size_t len, const char *path, mrm_error *err);
mrm_status mrm_engine_image_load(const char *path, void **image, size_t *len, mrm_error *err);

/* An engine with its own image and one work buffer per thread slot, made from a model: what
 * predict, eval and bench run. Not re-entrant per slot: slot i is for one thread at a time. */
typedef struct mrm_engine_runner {
    void *image;
    size_t image_len;
    mrm_engine engine;
    int n_slots;
    void **work;      /* n_slots buffers */
    size_t work_bytes;
} mrm_engine_runner;
mrm_status mrm_engine_runner_create(mrm_engine_runner *r, const mrm_model *m, int n_slots, mrm_error *err);
/* The same from an image (of mrm_engine_build, mrm_engine_image_load, ...), which the runner then
 * owns (freed by mrm_engine_runner_free, also when this fails). */
mrm_status mrm_engine_runner_open(mrm_engine_runner *r, void *image, size_t len, int n_slots, mrm_error *err);
/* 1 when the file at path starts with the engine image's magic (an .mrme of mrmnet export or
 * mrmnet quantize), else 0. */
int mrm_engine_image_file(const char *path);
/* Adds the image's metadata pairs to meta (mrm_meta_set). */
mrm_status mrm_engine_meta(const mrm_engine *e, mrm_meta *meta, mrm_error *err);
void mrm_engine_runner_free(mrm_engine_runner *r);
/* Runs B records split over the OpenMP threads of the caller (at most n_slots), each with its
 * own work buffer; logits1/logits2 as mrm_engine_run. */
mrm_status mrm_engine_runner_run(mrm_engine_runner *r, const float *x, int B, float *logits1, float *logits2,
                                 mrm_error *err);

/* mrm_predict_probs (mrmnet/train.h) with an engine built once: the callers that predict in
 * chunks (predict) compile the model once per command. */
mrm_status mrm_predict_probs_engine(mrm_engine_runner *r, const float *X, long long n, int batch, float *p1,
                                    float *p2, float *avg, mrm_progress_fn progress, void *user, mrm_error *err);

#ifdef __cplusplus
}
#endif

#endif
