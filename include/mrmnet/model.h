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

/* The widest model this version builds (width 128: about 114 million parameters, 460 MB). */
#define MRM_MAX_WIDTH 128

/* The architecture and the loss: every variant of MRM-Net is one value of this struct. Start
 * from mrm_model_config_default (the released model) and change fields; a zeroed struct is
 * refused (temperature 0). Written to and read from the weights' metadata through one key table
 * (mrm_model_config_to_meta / _from_meta; the key of each field is its name).
 *
 * width = mid_channels (16 in the paper; the authors ship 16, 32, 64): the stem has width,
 * 2*width, 4*width, 4*width channels, the high branch 4*width, the low branch 8*width. The
 * grouped convolutions have 16 channels a group, so width must be a multiple of 4.
 * attention: which branches run the sequence BasicBlock, Gate, SE, BasicBlock, Gate, SE,
 * BasicBlock (7 blocks); the others run three BasicBlocks. The released model has it in the low
 * branch only (MRM_ATTENTION_LOW); the old key hi_attention = 1 is MRM_ATTENTION_BOTH.
 * fusion: the Fusion block (channel + spatial attention, LayerNorm, four blocks) at the end of
 * each branch (1) or not (0: the branch's blocks feed its head directly).
 * branches: both (the released model), or one branch with one head and one BCE.
 * combine (both branches only): MUTUAL = a head per branch, loss BCE1 + BCE2 + lambda_feat *
 * KL_T(features) + lambda_logit * KL_T(logits) (the released model: 0.01, 0.1, T = 4; a weight
 * of 0 turns its term off); ADD = one output, the sum of the two heads' logits (each head:
 * LayerNorm of its branch's pooled features, Linear), one BCE; CONCAT = one head on the
 * concatenated pooled features of both branches (LayerNorm 12*width, Linear), one BCE. */
typedef enum mrm_attention {
    MRM_ATTENTION_LOW = 0, /* released */
    MRM_ATTENTION_BOTH = 1,
    MRM_ATTENTION_HIGH = 2,
    MRM_ATTENTION_NONE = 3
} mrm_attention;
typedef enum mrm_branches { MRM_BRANCHES_BOTH = 0, MRM_BRANCHES_HIGH = 1, MRM_BRANCHES_LOW = 2 } mrm_branches;
typedef enum mrm_combine { MRM_COMBINE_MUTUAL = 0, MRM_COMBINE_ADD = 1, MRM_COMBINE_CONCAT = 2 } mrm_combine;

typedef struct mrm_model_config {
    int n_classes;           /* N >= 1 (5 by default) */
    int width;               /* 16; a multiple of 4 in 4..MRM_MAX_WIDTH */
    mrm_attention attention; /* MRM_ATTENTION_LOW */
    int fusion;              /* 1 */
    mrm_branches branches;   /* MRM_BRANCHES_BOTH */
    mrm_combine combine;     /* MRM_COMBINE_MUTUAL */
    double lambda_feat;      /* 0.01 */
    double lambda_logit;     /* 0.1 */
    double temperature;      /* 4 */
} mrm_model_config;

/* The released model with 5 classes. */
void mrm_model_config_default(mrm_model_config *cfg);
/* Checks a config (ranges and combinations); the message names the field. */
mrm_status mrm_model_config_check(const mrm_model_config *cfg, mrm_error *err);
/* The canonical form of a config (what mrm_model_create keeps): attention of an absent branch
 * dropped (branches high: both -> high, low -> none; branches low: both -> low, high -> none), and
 * lambda_feat = lambda_logit = 0 when the model has one output (one branch, add, concat). */
void mrm_model_config_normalize(mrm_model_config *cfg);
/* Sets one field from text by its key ("width", "attention", "fusion", "branches", "combine",
 * "lambda_feat", "lambda_logit", "temperature", "n_classes"; '-' may stand for '_'). Values:
 * attention low|high|both|none, fusion on|off (or 1|0), branches both|high|low, combine
 * mutual|add|concat, numbers as decimals. The message names the key and the allowed values. */
mrm_status mrm_model_config_set(mrm_model_config *cfg, const char *key, const char *value,
                                mrm_error *err);
/* Applies a variant "key=value,key=value,..." (e.g. "attention=none,fusion=off") with
 * mrm_model_config_set; "" and "released" change nothing. */
mrm_status mrm_model_config_parse(mrm_model_config *cfg, const char *variant, mrm_error *err);
/* The i-th key of the table (i from 0; NULL past the end), its current value in cfg written into
 * buf (n bytes) and, when allowed is not NULL, a short text of its allowed values. */
const char *mrm_model_config_key(int i, const mrm_model_config *cfg, char *buf, size_t n,
                                 const char **allowed);
/* The key of the first field in which a and b differ, or NULL. weights_only: only the fields
 * that change the tensors (n_classes, width, attention, fusion, branches, combine). */
const char *mrm_model_config_diff(const mrm_model_config *a, const mrm_model_config *b,
                                  int weights_only);
/* "width 16, attention low, ..." (every key) into buf. */
void mrm_model_config_describe(const mrm_model_config *cfg, char *buf, size_t n);

/* Input length and the two branch shapes for the 10 s / 100 Hz input. */
#define MRM_INPUT_LEADS 12
#define MRM_INPUT_LEN 1000

typedef struct mrm_model mrm_model; /* opaque */

/* Creates a model initialised as mrm_model_init(m, 0) would. */
mrm_status mrm_model_create(mrm_model **m, const mrm_model_config *cfg, mrm_error *err);
void mrm_model_free(mrm_model *m);
const mrm_model_config *mrm_model_config_of(const mrm_model *m);
/* Changes the loss fields (lambda_feat, lambda_logit, temperature) of m; cfg's weight-shaping
 * fields must equal m's (else MRM_ERR_INVALID naming the first that differs). */
mrm_status mrm_model_set_config(mrm_model *m, const mrm_model_config *cfg, mrm_error *err);

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
/* Weights of the positive term of each class in both heads' BCE (n_classes positive values, as
 * PyTorch's BCEWithLogitsLoss(pos_weight)); NULL: none (the paper's loss). Copied. */
mrm_status mrm_model_set_pos_weight(mrm_model *m, const float *pos_weight, mrm_error *err);

/* Forward pass on x (B, 12, 1000). train = 1: batch statistics (running stats updated,
 * num_batches_tracked incremented) and dropout drawn from rng (rng may be NULL when dropout
 * is 0); train = 0: running statistics, no dropout. Afterwards logits and features are
 * available; after a training-mode forward, mrm_model_backward may follow. */
mrm_status mrm_model_forward(mrm_model *m, const float *x, int B, int train, mrm_rng *rng,
                             mrm_error *err);
/* The same, with the dropout masks of record b drawn from record_keys[b] alone (B keys; NULL: as
 * mrm_model_forward, from rng): a record's masks then do not depend on the other records of the
 * batch nor on the process that computes it (data-parallel training draws them from the seed, the
 * epoch and the record's index). */
mrm_status mrm_model_forward_keyed(mrm_model *m, const float *x, int B, int train, mrm_rng *rng,
                                   const uint64_t *record_keys, mrm_error *err);

/* Data-parallel training: the batch of a step is split over processes.
 * mrm_sum_fn sums n values of buf over the processes, in place, every process getting the same
 * bytes (0 on success). With one set (mrm_model_set_batch_sync), a training-mode forward and the
 * backward after it compute every BatchNorm's batch statistics, and the sums of its gradient,
 * over the records of all processes (synchronised BatchNorm, with one process's arithmetic); the
 * processes must then run the same forwards and backwards in the same order.
 * A process may then hold a single record. NULL: off (the batch is this process's own). */
typedef int (*mrm_sum_fn)(void *ctx, double *buf, size_t n);
/* leader: 1 in the process whose share begins the global batch (its first record's values shift
 * the sums, as one process shifts them), 0 in the others. */
void mrm_model_set_batch_sync(mrm_model *m, mrm_sum_fn fn, void *ctx, int leader);
/* The factor the loss gradient is multiplied by before the backward pass (1 by default): a
 * process holding b of the global batch's B records sets b / B, so that the gradients summed over
 * the processes are those of the global batch's mean loss. */
void mrm_model_set_loss_scale(mrm_model *m, float scale);

/* The model's outputs: 2 heads for the released model (head 1 on the high branch, head 2 on
 * the low branch), 1 for the one-branch, add and concat variants. Branches: 2 or 1. */
int mrm_model_num_heads(const mrm_model *m);
int mrm_model_num_branches(const mrm_model *m);
/* Results of the last forward: logits (B, N) of head 1 .. mrm_model_num_heads; features
 * (B, mrm_model_feature_size), index c*L + t, of branch 1 .. mrm_model_num_branches (the
 * branches present, high before low). NULL for a head or branch the model does not have.
 * Valid until the next forward. */
const float *mrm_model_logits(const mrm_model *m, int head);
const float *mrm_model_features(const mrm_model *m, int branch);

/* The loss of spec section 5 and its parts:
 * total = bce1 + bce2 + lambda_feat * kl_feat + lambda_logit * kl_logits (0.01, 0.1 and T = 4
 * for the released model), where kl_feat = KL_T(f1|f2) + KL_T(f2|f1) and kl_logits =
 * KL_T(o1|o2) + KL_T(o2|o1); a term whose weight is 0 is not computed (reported as 0). A model
 * with one output: total = bce1 (bce2 = kl_feat = kl_logits = 0). */
typedef struct mrm_loss {
    double total, bce1, bce2, kl_feat, kl_logits;
} mrm_loss;
/* After a forward (either mode): the loss against y (B, N) multi-hot, no gradients. */
mrm_status mrm_model_loss(const mrm_model *m, const float *y, mrm_loss *loss, mrm_error *err);
/* After a TRAINING-mode forward: the loss and its gradient, ACCUMULATED (+=) into the grads
 * buffer (call mrm_model_zero_grad first for a plain step). */
mrm_status mrm_model_backward(mrm_model *m, const float *y, mrm_loss *loss, mrm_error *err);

/* Backward from the outputs after an EVALUATION-mode forward (train = 0) of B records, without
 * labels: nothing of the model changes but the parameter gradients (BatchNorm uses its running
 * statistics backward as forward; no statistics are updated). The seed is the gradient of some
 * scalar s with respect to each output:
 *   dlogits[h]   (B, n_classes): ds / d logits of head h + 1 (NULL: 0; must be NULL past
 *                mrm_model_num_heads);
 *   dfeatures[b] (B, mrm_model_feature_size): ds / d features of branch b + 1 (NULL: 0; must be
 *                NULL past mrm_model_num_branches).
 * B and n_classes must be those of the last forward (else MRM_ERR_INVALID). dx (B, 12, 1000) is
 * OVERWRITTEN with ds / d input (NULL: not computed). The parameter gradients accumulate into
 * mrm_model_grads as mrm_model_backward's do. Afterwards mrm_model_feature_grads gives ds / d
 * features of each branch (the activation gradients Grad-CAM needs), valid until the next
 * forward or backward. */
typedef struct mrm_output_grads {
    const float *dlogits[2];   /* (B, n_classes) each */
    const float *dfeatures[2]; /* (B, mrm_model_feature_size) each */
} mrm_output_grads;
mrm_status mrm_model_backward_outputs(mrm_model *m, int B, int n_classes, const mrm_output_grads *dout,
                                      float *dx /* (B, 12, 1000) or NULL */, mrm_error *err);
/* (B, channels, length) of branch 1 .. mrm_model_num_branches after mrm_model_backward_outputs,
 * or NULL. */
const float *mrm_model_feature_grads(const mrm_model *m, int branch);
/* The shape (channels, length) of one record's features of a branch (the last maps of the
 * branch, index c*length + t): (4*width, 502) for the high branch, (8*width, 251) for the low
 * one. Returns 0, or -1 when the model has no such branch. */
int mrm_model_feature_shape(const mrm_model *m, int branch, int *channels, int *length);

/* ---- explanations (src/model/explain.c) -----------------------------------------------------
 * The explained score of class k is the model's combined logit: the mean over the heads of
 * their logits of class k (the released model: (o1[k] + o2[k]) / 2; one-output variants: the
 * one logit).
 *   Grad-CAM of a branch (Selvaraju et al. 2017) on its last maps A (c, L): weights
 *   a_j = mean_t ds/dA[j, t], map relu(sum_j a_j A[j, t]) (L), brought to the input's 1000 time
 *   steps by linear interpolation (half-sample centres, as PyTorch's
 *   F.interpolate(mode="linear", align_corners=False)). The combined map is the sum of the
 *   branches' maps (for the released model, the mean of what each head's logit gives its
 *   branch, as the model averages its heads).
 *   Input times gradient: x * ds/dx, per lead (12, 1000).
 * Each call runs an evaluation-mode forward of x (B, 12, 1000) and one backward per class. */
mrm_status mrm_explain_class(mrm_model *m, const float *x /* (B, 12, 1000) */, int B, int cls,
                             float *score /* (B) or NULL */, float *cam /* (B, 1000) or NULL */,
                             float *cam_branch /* (B, num_branches, 1000) or NULL */,
                             float *ixg /* (B, 12, 1000) or NULL */, mrm_error *err);
/* Integrated gradients (Sundararajan et al. 2017) of the same score from baseline (B, 12, 1000)
 * to x along the straight line, `steps` midpoint-rule steps: ig (B, 12, 1000) = (x - baseline)
 * * mean over the steps of ds/dx at baseline + (i + 0.5)/steps (x - baseline). */
mrm_status mrm_explain_integrated(mrm_model *m, const float *x /* (B, 12, 1000) */,
                                  const float *baseline /* (B, 12, 1000) */, int B, int cls,
                                  int steps, float *ig /* (B, 12, 1000) */, mrm_error *err);
/* The per-lead median of one record x (12, 1000) (the mean of the two middle values), written to
 * every step of base (12, 1000): the baseline of integrated gradients in explain and report. */
void mrm_explain_baseline(const float *x /* (12, 1000) */, float *base /* (12, 1000) */);
/* The map that `report` shades by default, from the integrated gradients of one record and class
 * ig (12, 1000): the sum over the 12 leads of the (signed) attribution at each step, averaged over
 * a centred window of `width` steps (steps [t - width/2, t - width/2 + width) that lie in
 * [0, 1000), the mean over those): out (1000). Positive where the segment's samples, moved from
 * the baseline to their recorded values, raised the class's score. width <= 1: no averaging. */
#define MRM_EXPLAIN_SMOOTH_STEPS 10 /* 0.1 s at 100 Hz: the report's shading granularity */
void mrm_explain_smooth(const float *ig /* (12, 1000) */, int width, float *out /* (1000) */);
/* The number of integrated-gradients steps the report uses (explain --ig takes any). */
#define MRM_EXPLAIN_IG_STEPS 32
/* Linear interpolation of src (n) onto dst (m) as F.interpolate(mode="linear",
 * align_corners=False). */
void mrm_resample_linear(const float *src, int n, float *dst, int m);

/* ---- metadata: string key -> string value, stored in the safetensors "__metadata__" ----------
 * Keys written by mrmnet:
 *   "format"        "mrmnet-1"
 *   "n_classes"     decimal, e.g. "5"
 *   the model's config (mrm_model_config_key; missing keys mean the released model):
 *   "width" "16", "attention" "low", "fusion" "on", "branches" "both", "combine" "mutual",
 *   "lambda_feat" "0.01", "lambda_logit" "0.1", "temperature" "4"
 *   (files written before these keys hold "hi_attention" "0"/"1": attention low/both)
 *   "classes"       JSON array of class names, e.g. ["CD","HYP","MI","NORM","STTC"]
 *   "task"          e.g. "superdiagnostic", "cpsc2018"
 *   "mean", "std"   input standardisation (decimal, %.9g): x' = (x - mean) / std
 *   "leads"         JSON array of lead names ["I","II",...,"V6"]
 *   "sampling_rate" "100"
 *   "thresholds"    JSON array of per-class decision thresholds (optional)
 *   "threshold_rule", "threshold_split", "threshold_records"  how they were chosen: the rule
 *                   (mrm_threshold_rule_format: "f1", "youden", "sensitivity=0.9", ...), the
 *                   split and its record count (optional; absent: F1 on the validation split)
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

/* Writes every key of the config's table into meta ("format" "mrmnet-1" too). */
mrm_status mrm_model_config_to_meta(const mrm_model_config *cfg, mrm_meta *meta, mrm_error *err);
/* Reads the config from meta: each key present is parsed and checked, each missing key keeps the
 * released model's value. path names the file in messages. */
mrm_status mrm_model_config_from_meta(mrm_model_config *cfg, const mrm_meta *meta, const char *path,
                                      mrm_error *err);

/* Saves every tensor (weights-table order) and the metadata to a safetensors file, atomically.
 * The config's keys (mrm_model_config_to_meta) are always written from the model (meta may be
 * NULL). */
mrm_status mrm_model_save(const mrm_model *m, const mrm_meta *meta, const char *path,
                          mrm_error *err);
/* Loads a model saved by mrm_model_save (or by the PyTorch twin): the architecture comes from
 * the metadata (mrm_model_config_from_meta; n_classes, width and the attention of a file without
 * them are inferred from the tensor shapes).
 * meta may be NULL; otherwise it receives the metadata (free with mrm_meta_free). Every tensor
 * is checked (presence, dtype, shape, offsets). */
mrm_status mrm_model_load(mrm_model **m, mrm_meta *meta, const char *path, mrm_error *err);
/* The same from a file held in memory (`name` names it in messages). The file must hold every
 * tensor of the architecture its metadata or shapes give, with the right dtype and shape and its
 * bytes inside the file, before the model is allocated. Safe on any bytes: the fuzzing entry point. */
mrm_status mrm_model_load_mem(mrm_model **m, mrm_meta *meta, const void *buf, size_t len, const char *name,
                              mrm_error *err);

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
/* x (B, 12, 1000), B <= max_batch; logits1/logits2 (B, N) of heads 1 and 2, either may be
 * NULL (logits2 must be for a model with one output). */
mrm_status mrm_infer_run(mrm_infer *inf, const float *x, int B, float *logits1, float *logits2,
                         mrm_error *err);
void mrm_infer_free(mrm_infer *inf);

#ifdef __cplusplus
}
#endif

#endif
