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
/* The convolutions are computed directly, with Winograd's transforms or with FFTs (fewer
 * multiplications, about twice the weights and more work memory for those layers), chosen per
 * layer by its shape; mrm_engine_build_direct makes every convolution direct: the smallest image and work
 * memory, slower. Both compute the same function (to float rounding). */
mrm_status mrm_engine_build_direct(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len,
                                   mrm_error *err);
/* As mrm_engine_build, with the two branches' activation buffers planned apart, so that a team
 * of two threads (mrm_engine_run_team) runs the branches side by side, one a thread, rather
 * than sharing every layer: about 0.4 MB more activations and a second scratch (the released
 * model: about 1.7x the work memory). The runner of two or more threads uses it. */
mrm_status mrm_engine_build_lanes(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len, mrm_error *err);
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
 * buffer (free with mrm_engine_image_free). mrm_engine_image_load also takes a quantised
 * safetensors file (mrm_engine_int8_save) and builds its int8 image. */
mrm_status mrm_engine_image_save(const void *image, size_t len, const char *path, mrm_error *err);
mrm_status mrm_engine_image_load(const char *path, void **image, size_t *len, mrm_error *err);
/* The same from bytes in memory (name names them in messages): an engine image or a quantised
 * safetensors file, every size, shape and value checked. Safe on any bytes (the fuzzing entry
 * point). */
mrm_status mrm_engine_image_from_mem(const void *buf, size_t n, const char *name, void **image, size_t *len,
                                     mrm_error *err);

/* The quantised model as a safetensors file: the int8 image qimg of m (mrm_engine_build_int8)
 * written as the model's float tensors, except that each quantised convolution's weights and
 * the BatchNorm folded into it are replaced by four tensors under its name P (the convolution's
 * tensor name without ".weight"; "<BaseScale>.ms" for the merged multi-scale convolution, the
 * mean of conv1..conv4 centred in 33 taps):
 *   P.weight        I8  (cout, cin/groups, k)  BatchNorm folded: w = weight * weight_scale[o]
 *   P.weight_scale  F32 (cout)
 *   P.bias          F32 (cout)                 the folded bias
 *   P.input_scale   F32 (1)                    the input is rounded to int8 steps of this
 * with the model's metadata and config plus "quantization": "int8" and "quantization_scheme".
 * mrm_model_load refuses such a file (naming "quantization"); mrm_engine_image_load builds the
 * same int8 image from it. */
mrm_status mrm_engine_int8_save(const mrm_model *m, const mrm_meta *meta, const void *qimg, size_t qlen,
                                const char *path, mrm_error *err);

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
/* Runs the runner's engine with the kernels isa (mrm_engine_isa) instead of the ones chosen from
 * the CPU (timing and validating the kernel sets); refused, the runner unchanged, when the CPU
 * lacks them. */
mrm_status mrm_engine_runner_set_isa(mrm_engine_runner *r, int isa, mrm_error *err);
/* 1 when the file at path is an engine image (an .mrme of mrmnet export or mrmnet quantize) or a
 * quantised safetensors file (metadata "quantization"), else 0. */
int mrm_engine_image_file(const char *path);
/* Adds the image's metadata pairs to meta (mrm_meta_set). */
mrm_status mrm_engine_meta(const mrm_engine *e, mrm_meta *meta, mrm_error *err);
void mrm_engine_runner_free(mrm_engine_runner *r);
/* Runs B records on the OpenMP threads of the caller (at most n_slots): the threads form teams
 * (mrm_partition_teams: one team for one record, one thread a team when B is a multiple of
 * the threads), each team with one work buffer, its threads sharing each of its records
 * (mrm_engine_run_team); logits1/logits2 as mrm_engine_run, and the same bit for bit. */
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
