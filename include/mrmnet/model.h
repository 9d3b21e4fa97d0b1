/* mrmnet public API: model. MRM-Net (spec sections 3-5): create, initialise, load, save,
 * forward, backward, and the fast inference path. Included by mrmnet.h; see the conventions
 * there.
 *
 * Memory: one contiguous buffer of trainable parameters (float), a gradient buffer of the same
 * layout, and one buffer of BatchNorm running statistics. Activations are sized for the largest
 * batch seen so far (reallocated only when the batch grows; no allocation in the steady state).
 * A model is not re-entrant: one model per thread of work.
 */
#ifndef MRMNET_MODEL_H
#define MRMNET_MODEL_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrm_rng mrm_rng; /* src/common/rng.h */

/* The architecture. width = mid_channels (16 in the paper): the stem has width, 2*width,
 * 4*width, 4*width channels, the high branch 4*width, the low branch 8*width. The grouped
 * convolutions have 16 channels a group, so width must be a multiple of 4 (4, 8, 12, 16, ...).
 * hi_attention: the high branch is BasicBlock, Gate, SE, BasicBlock, Gate, SE, BasicBlock
 * (like the low branch) instead of three BasicBlocks. */
typedef struct mrm_model_config {
    int n_classes;    /* N >= 1 */
    int width;        /* 16 by default */
    int hi_attention; /* 0 by default */
} mrm_model_config;

/* Input length and the two branch shapes for the 10 s / 100 Hz input. */
#define MRM_INPUT_LEADS 12
#define MRM_INPUT_LEN 1000

typedef struct mrm_model mrm_model; /* opaque */

/* Creates a model initialised as mrm_model_init(m, 0) would. */
mrm_status mrm_model_create(mrm_model **m, const mrm_model_config *cfg, mrm_error *err);
void mrm_model_free(mrm_model *m);
const mrm_model_config *mrm_model_config_of(const mrm_model *m);

/* PyTorch-default initialisation (spec section 4): conv/linear weights and linear biases
 * uniform in +-1/sqrt(fan_in), BN/LayerNorm weight 1, bias 0, running mean 0, var 1, count 0.
 * Deterministic for a given seed. */
void mrm_model_init(mrm_model *m, uint64_t seed);

/* The trainable parameters, contiguous, in weights-table order; grads has the same layout. */
size_t mrm_model_num_params(const mrm_model *m);
float *mrm_model_params(mrm_model *m);
float *mrm_model_grads(mrm_model *m);
void mrm_model_zero_grad(mrm_model *m);
/* Length of one sample's feature vector (feat1 and feat2 have the same length): 2008*width
 * (32,128 for width 16). */
int mrm_model_feature_size(const mrm_model *m);

/* The named tensors, in the order of the weights table (mrmnet-weights.tsv): trainable
 * parameters (float, with grad), BN running_mean/running_var (float, no grad, trainable 0) and
 * num_batches_tracked (int64 scalar: ndim 0, is_int64 1). data points into the model's buffers
 * (writable: optimizers and loaders update it in place). */
typedef struct mrm_tensor {
    const char *name;
    int is_int64;
    int ndim;               /* 0 (scalar) .. 3 */
    long long shape[3];
    long long numel;        /* 1 for a scalar */
    void *data;             /* float * or int64_t * */
    float *grad;            /* NULL for buffers */
    int trainable;
} mrm_tensor;
int mrm_model_num_tensors(const mrm_model *m);
const mrm_tensor *mrm_model_tensor(const mrm_model *m, int i);
/* Index of the tensor with that name, or -1. */
int mrm_model_find_tensor(const mrm_model *m, const char *name);

/* Copies parameters and BN statistics of src into dst (same config). */
mrm_status mrm_model_copy_weights(mrm_model *dst, const mrm_model *src, mrm_error *err);

/* Dropout probability of the multi-scale path in training mode (0.2 by default). */
void mrm_model_set_dropout(mrm_model *m, float p);

/* Forward pass on x (B, 12, 1000). train = 1: batch statistics (running stats updated,
 * num_batches_tracked incremented) and dropout drawn from rng (rng may be NULL when dropout
 * is 0); train = 0: running statistics, no dropout. Afterwards logits and features are
 * available; after a training-mode forward, mrm_model_backward may follow. */
mrm_status mrm_model_forward(mrm_model *m, const float *x, int B, int train, mrm_rng *rng,
                             mrm_error *err);
/* Results of the last forward: logits (B, N) of head 1 (high branch) or 2 (low branch);
 * features (B, mrm_model_feature_size), index c*L + t. Valid until the next forward. */
const float *mrm_model_logits(const mrm_model *m, int head);
const float *mrm_model_features(const mrm_model *m, int head);

/* The loss of spec section 5 and its parts:
 * total = bce1 + bce2 + 0.01 * kl_feat + 0.1 * kl_logits, where kl_feat = KL4(f1|f2) + KL4(f2|f1)
 * and kl_logits = KL4(o1|o2) + KL4(o2|o1). */
typedef struct mrm_loss {
    double total, bce1, bce2, kl_feat, kl_logits;
} mrm_loss;
/* After a forward (either mode): the loss against y (B, N) multi-hot, no gradients. */
mrm_status mrm_model_loss(const mrm_model *m, const float *y, mrm_loss *loss, mrm_error *err);
/* After a TRAINING-mode forward: the loss and its gradient, ACCUMULATED (+=) into the grads
 * buffer (call mrm_model_zero_grad first for a plain step). */
mrm_status mrm_model_backward(mrm_model *m, const float *y, mrm_loss *loss, mrm_error *err);

/* ---- metadata: string key -> string value, stored in the safetensors "__metadata__" ----------
 * Keys written by mrmnet:
 *   "format"        "mrmnet-1"
 *   "n_classes"     decimal, e.g. "5"
 *   "width"         decimal, "16"
 *   "hi_attention"  "0" or "1"
 *   "classes"       JSON array of class names, e.g. ["CD","HYP","MI","NORM","STTC"]
 *   "task"          e.g. "superdiagnostic", "cpsc2018"
 *   "mean", "std"   input standardisation (decimal, %.9g): x' = (x - mean) / std
 *   "leads"         JSON array of lead names ["I","II",...,"V6"]
 *   "sampling_rate" "100"
 *   "thresholds"    JSON array of per-class decision thresholds (optional)
 *   "source"        free text: what produced the file (e.g. "mrmnet init --seed 1")
 * Other keys are kept as they are. */
typedef struct mrm_meta {
    int n;
    char **keys;
    char **values;
} mrm_meta;
/* The value of key, or NULL. */
const char *mrm_meta_get(const mrm_meta *meta, const char *key);
/* Sets (adds or replaces) key. Copies both strings. */
mrm_status mrm_meta_set(mrm_meta *meta, const char *key, const char *value, mrm_error *err);
void mrm_meta_free(mrm_meta *meta); /* frees the strings, leaves {0} */

/* Saves every tensor (weights-table order) and the metadata to a safetensors file, atomically.
 * The keys format/n_classes/width/hi_attention are always written from the model (meta may be
 * NULL). */
mrm_status mrm_model_save(const mrm_model *m, const mrm_meta *meta, const char *path,
                          mrm_error *err);
/* Loads a model saved by mrm_model_save (or by the PyTorch twin): the architecture comes from
 * the metadata (n_classes, width, hi_attention), else it is inferred from the tensor shapes.
 * meta may be NULL; otherwise it receives the metadata (free with mrm_meta_free). Every tensor
 * is checked (presence, dtype, shape, offsets). */
mrm_status mrm_model_load(mrm_model **m, mrm_meta *meta, const char *path, mrm_error *err);

/* ---- the fast inference path -------------------------------------------------------------
 * BN folded into the convolutions, the four multi-scale kernels merged into one 33-tap kernel,
 * bias, ReLU, pooling and residual sums fused into one pass after each convolution; evaluation
 * mode only, the same logits as mrm_model_forward(train = 0) to float rounding. Sized for up to
 * max_batch records; no allocation in run. The weights are copied at create time (later
 * changes to the model are not seen). Batches of up to 4 records run the two branches side by
 * side when OpenMP offers 2 threads or more; larger batches split the records over the
 * threads. One engine per concurrent caller. */
typedef struct mrm_infer mrm_infer;
mrm_status mrm_infer_create(mrm_infer **inf, const mrm_model *m, int max_batch, mrm_error *err);
/* x (B, 12, 1000), B <= max_batch; logits1/logits2 (B, N) either may be NULL. */
mrm_status mrm_infer_run(mrm_infer *inf, const float *x, int B, float *logits1, float *logits2,
                         mrm_error *err);
void mrm_infer_free(mrm_infer *inf);

#ifdef __cplusplus
}
#endif

#endif
