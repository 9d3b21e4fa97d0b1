/* mrmnet public API: train. Optimizers, checkpoints, prepared datasets, the training loop and
 * evaluation of a model on a prepared split. Included by mrmnet.h; see the conventions there. */
#ifndef MRMNET_TRAIN_H
#define MRMNET_TRAIN_H

#include "../mrmnet.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- optimizers -----------------------------------------------------------------------------
 * One loop over the model's single contiguous parameter and gradient buffers.
 *
 * Adam, as torch.optim.Adam (amsgrad off, L2 weight decay added to the gradient):
 *   t += 1;  g = grad + weight_decay * param
 *   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
 *   param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * SGD with momentum, as torch.optim.SGD (dampening 0, not Nesterov):
 *   g = grad + weight_decay * param
 *   buf = g at the first step, then buf = momentum * buf + g;   param -= lr * buf
 *   (momentum 0: param -= lr * g). */
typedef enum mrm_opt_kind { MRM_OPT_ADAM = 0, MRM_OPT_SGD = 1 } mrm_opt_kind;

typedef struct mrm_optimizer {
    mrm_opt_kind kind;
    double lr, beta1, beta2, eps, weight_decay, momentum;
    size_t n;           /* parameters */
    long long t;        /* steps taken */
    float *m;           /* Adam: first moment; SGD: momentum buffer (n values) */
    float *v;           /* Adam: second moment (n values); NULL for SGD */
} mrm_optimizer;

/* Allocates the state (zero) for n parameters with the defaults of spec section 6: lr 1e-3,
 * betas 0.9/0.999, eps 1e-8, weight decay 0, momentum 0.9 (SGD). Change the fields after. */
mrm_status mrm_optimizer_init(mrm_optimizer *o, mrm_opt_kind kind, size_t n, mrm_error *err);
void mrm_optimizer_free(mrm_optimizer *o);
/* One step: params (n) updated in place from grads (n). */
void mrm_optimizer_step(mrm_optimizer *o, float *params, const float *grads);

/* ---- checkpoints ------------------------------------------------------------------------------
 * A safetensors file holding every model tensor (weights-table order), the optimizer state as
 * extra tensors ("adam.m" and "adam.v", or "sgd.momentum"; flat, n values each) and string
 * metadata: the model's config keys (mrm_model_config_to_meta), "optimizer" ("adam" or
 * "sgd"), "optimizer_t" (steps taken), lr, beta1, beta2, eps, weight_decay, momentum, plus what
 * the caller adds (the training loop: "train_config" and "train_state", JSON). Written
 * atomically. */
mrm_status mrm_checkpoint_save(const char *path, const mrm_model *m, const mrm_optimizer *o,
                               const mrm_meta *meta, mrm_error *err);
/* Creates *m from the metadata's architecture and fills it, *o (allocated here) and meta (may be
 * NULL; free with mrm_meta_free). Every tensor is checked for presence, dtype and shape. */
mrm_status mrm_checkpoint_load(const char *path, mrm_model **m, mrm_optimizer *o, mrm_meta *meta,
                               mrm_error *err);

/* ---- prepared datasets (the folder `mrmnet prepare` writes) --------------------------------
 * X_<split>.npy (N, 12, 1000) float32, y_<split>.npy (N, C) float32 0/1, ids_<split>.txt (one
 * id a line), classes.txt (one class a line), prepare.json (task, mean, std, ...). */
typedef struct mrm_split_data {
    long long n;
    const float *X;     /* (n, 12, 1000) mapped read-only from X_<split>.npy (see mrm_npy_map_f32):
                           a record's pages are read when it is used; NULL if not loaded */
    float *y;           /* (n, C) */
    char **ids;         /* n ids (NULL when ids_<split>.txt is absent) */
    mrm_npy_map x_map_; /* internal */
} mrm_split_data;

typedef struct mrm_prepared {
    char dir[1024];
    int n_classes;
    char **classes;
    char task[64];
    double mean, std;   /* the standardisation already applied to X (from prepare.json) */
    char *prepare_json; /* the file's text (for the record of a run) */
    long long split_records[3]; /* train, val, test records as prepare.json states them ("splits");
                                   -1 where it does not */
} mrm_prepared;

/* Reads classes.txt and prepare.json (its "classes", when present, must be classes.txt's). */
mrm_status mrm_prepared_open(mrm_prepared *p, const char *dir, mrm_error *err);
/* Checks that the folder is one preparation: every split prepare.json lists is there, and no
 * record id is in two splits (or twice in one). */
mrm_status mrm_prepared_check(const mrm_prepared *p, mrm_error *err);
/* Loads one split ("train", "val", "test"); with_X 0 loads labels and ids only. Checks that the
 * arrays agree with each other, with the classes and with the count prepare.json states. A split
 * absent from the folder is an error MRM_ERR_NOTFOUND naming the file, or MRM_ERR_FORMAT when
 * prepare.json lists it (the folder is incomplete). X is mapped, not loaded: its header and size
 * are checked against the file, and its values once for finiteness in one pass in order, after
 * which the pages are let go (memory stays bounded whatever the file's size). */
mrm_status mrm_prepared_load_split(const mrm_prepared *p, const char *split, int with_X,
                                   mrm_split_data *s, mrm_error *err);
/* The same, checking the values of records [n part / parts, n (part + 1) / parts) only: each of
 * `parts` processes that share a split checks its part, and so each value is read once in all. */
mrm_status mrm_prepared_load_split_part(const mrm_prepared *p, const char *split, int with_X, int part, int parts,
                                        mrm_split_data *s, mrm_error *err);
void mrm_split_data_free(mrm_split_data *s);
/* Record i's signals (12 x 1000 values) of a split loaded with X, NULL when i is out of range or X
 * is not loaded. Reading record by record touches only those records' pages of the file. */
const float *mrm_split_record(const mrm_split_data *s, long long i);
void mrm_prepared_close(mrm_prepared *p);

/* ---- probabilities of a model on many records -------------------------------------------------
 * Evaluation mode; p1, p2 (n, C) sigmoid outputs of head 1 and head 2 (either may be NULL), avg
 * (n, C) their mean (may be NULL). A model with one output fills p1, p2 and avg with it. Runs the
 * inference engine (mrmnet/engine.h), compiled from m once per call, in batches of `batch`
 * shared out over the OpenMP threads (mrm_predict_probs_engine, mrmnet/engine_build.h, reuses
 * one engine across calls). */
mrm_status mrm_predict_probs(mrm_model *m, const float *X, long long n, int batch, float *p1,
                             float *p2, float *avg, mrm_progress_fn progress, void *user,
                             mrm_error *err);

/* ---- training ------------------------------------------------------------------------------- */

/* What the loop reports after each step and each epoch (through on_step / on_epoch). */
typedef struct mrm_train_progress {
    int epoch, epochs;        /* 1-based current epoch, total */
    long long step;           /* global optimizer steps done */
    long long step_in_epoch, steps_per_epoch;
    mrm_loss loss;            /* of the last step (per epoch: mean over the epoch's steps) */
    double records_per_s;     /* training throughput over the epoch so far */
    double seconds_left;      /* estimate for the whole run */
    double val_macro_auc;     /* after an epoch: validation macro-AUC of the averaged heads
                                 (NaN when there is no validation split) */
    double val_auc1, val_auc2;/* the same for head 1 and head 2 */
    int is_best;              /* after an epoch: the best validation macro-AUC so far */
} mrm_train_progress;

/* Learning-rate schedules (per epoch; the paper keeps the rate constant). As PyTorch's:
 *   STEP     StepLR: lr * gamma^floor((epoch - 1) / step_epochs)
 *   COSINE   CosineAnnealingLR(T_max = epochs, eta_min = min_lr):
 *            min_lr + (lr - min_lr) (1 + cos(pi (epoch - 1) / epochs)) / 2
 *   PLATEAU  ReduceLROnPlateau(mode 'max' on the validation macro-AUC, factor, patience,
 *            threshold 1e-4 relative, min_lr): after an epoch that does not beat the best by
 *            the threshold for more than `patience` epochs in a row, lr *= factor (not below
 *            min_lr) and the count restarts. */
typedef enum mrm_lr_kind { MRM_LR_CONSTANT = 0, MRM_LR_STEP = 1, MRM_LR_COSINE = 2, MRM_LR_PLATEAU = 3 } mrm_lr_kind;
typedef struct mrm_lr_schedule {
    mrm_lr_kind kind;
    int step_epochs;          /* STEP */
    int patience;             /* PLATEAU */
    double gamma;             /* STEP: the factor; PLATEAU: the factor */
    double min_lr;            /* COSINE, PLATEAU */
} mrm_lr_schedule;
/* Parses "constant", "step:EPOCHS:GAMMA", "cosine[:MIN_LR]", "plateau:PATIENCE:FACTOR[:MIN_LR]";
 * formats the canonical text. */
mrm_status mrm_lr_schedule_parse(const char *text, mrm_lr_schedule *s, mrm_error *err);
void mrm_lr_schedule_format(const mrm_lr_schedule *s, char *out, size_t outsz);

/* Class weighting of the BCE terms (PyTorch's BCEWithLogitsLoss pos_weight). */
typedef enum mrm_pos_weight_mode {
    MRM_POS_WEIGHT_NONE = 0,  /* the paper's loss */
    MRM_POS_WEIGHT_GIVEN = 1, /* pos_weight[] as given (one value: every class) */
    MRM_POS_WEIGHT_AUTO = 2   /* negatives / positives of each class in the training split (a
                                 class without positives: 1) */
} mrm_pos_weight_mode;

/* Data-parallel training over several processes (src/cli/mpi_comm.c supplies MPI's; the library
 * itself knows nothing of MPI). Every process of a run calls mrm_train with the same options and
 * its own rank; each takes its share of every global batch (shares differ by one at most), the
 * loss gradients are weighted by the share, summed over the processes in one call over the
 * gradient buffer, and every process takes the same optimizer step. Rank 0 alone writes the run's
 * files and reports progress. The functions return 0 on success; every process gets the same
 * bytes. NULL, or size 1: one process (nothing is called). */
typedef struct mrm_comm {
    int rank, size;
    int (*allreduce_f32)(void *ctx, float *buf, size_t n);  /* sum over the processes, in place */
    int (*allreduce_f64)(void *ctx, double *buf, size_t n); /* the same in double */
    int (*broadcast)(void *ctx, void *buf, size_t bytes, int root); /* root's bytes to every process */
    void *ctx;
} mrm_comm;

typedef struct mrm_train_options {
    const char *data_dir;     /* prepared folder */
    const char *out_dir;      /* run folder (created) */
    int epochs;               /* 40 */
    int batch;                /* 96 */
    mrm_opt_kind optimizer;   /* Adam */
    double lr, beta1, beta2, eps, weight_decay, momentum; /* 1e-3, 0.9, 0.999, 1e-8, 0, 0.9 */
    uint64_t seed;            /* initialisation, shuffling and dropout */
    const char *init_path;    /* start from these weights instead of a fresh initialisation */
    long long max_steps;      /* stop after this many optimizer steps in all (0: no limit;
                                 negative: on resume, keep the run's own) */
    int shuffle;              /* 1: reshuffle every epoch */
    float dropout;            /* 0.2 */
    mrm_model_config model;   /* the variant and its loss (mrm_model_config_default: the
                                 released model); n_classes is taken from the data. With
                                 init_path, the file's weight-shaping fields must equal these
                                 (else the error names the field) and the loss fields
                                 (lambda_feat, lambda_logit, temperature) are these. On resume
                                 the checkpoint's config wins. */
    int eval_batch;           /* batch of the validation forward (0: same as batch) */
    int threads;              /* OpenMP threads during the run (0: leave as it is); results are
                                 bit-identical for the same seed and thread count */
    /* beyond the paper's protocol; the defaults keep it, and every run's record holds them */
    mrm_pos_weight_mode pos_weight_mode; /* NONE */
    const float *pos_weight;  /* GIVEN: n_pos_weight values (1 or the number of classes) */
    int n_pos_weight;
    mrm_lr_schedule lr_schedule; /* constant */
    int early_stop;           /* stop after this many epochs without a better validation
                                 macro-AUC (0: never; needs a validation split) */
    int resume;               /* continue the run in out_dir: its saved options win, except
                                 data_dir (when not NULL), epochs (when > 0), max_steps (when
                                 >= 0) and threads (when > 0) */
    int overwrite;            /* a fresh run into a non-empty out_dir: 0 refuses; 1 removes the
                                 files of a run there (last/best.safetensors, log.jsonl,
                                 curves.svg) and starts over */
    int no_validation;        /* 1: do not read the validation split (best = last epoch, no
                                 thresholds); otherwise a validation split too small for the
                                 metrics (one record, or no class with both a positive and a
                                 negative record) is an error */
    const mrm_comm *comm;     /* data-parallel training (NULL: one process) */
    int no_sync_bn;           /* with several processes: 0 (default) = BatchNorm statistics of the
                                 global batch (summed over the processes in forward and backward:
                                 the same step as one process); 1 = each process's own (as
                                 PyTorch DDP without SyncBatchNorm) */
    void (*on_step)(void *user, const mrm_train_progress *p);
    void (*on_epoch)(void *user, const mrm_train_progress *p);
    mrm_log_fn log;
    void *user;
} mrm_train_options;

/* The defaults above. */
void mrm_train_options_default(mrm_train_options *o);

/* Trains (see docs in src/train/train.c): writes out_dir/last.safetensors (weights, optimizer
 * state, RNG states, epoch, position, history) at each epoch end and when max_steps stops the
 * run, out_dir/best.safetensors (the weights of the best validation macro-AUC, with classes,
 * task, mean, std, leads and per-class thresholds in its metadata), out_dir/log.jsonl and
 * out_dir/curves.svg. */
mrm_status mrm_train(const mrm_train_options *opt, mrm_error *err);

/* ---- the ablation study -------------------------------------------------------------------------
 * Every variant trained with every seed under the paper's protocol (src/train/ablate.c): an
 * ordinary training run a pair, in out_dir/VARIANT/seedS, the epoch chosen by the validation
 * macro-AUC, then the test split evaluated once with best.safetensors (the averaged output of
 * the model). Each run folder gets test_eval.json (test macro-AUC with its bootstrap interval,
 * best epoch, validation macro-AUC, parameters, training seconds, the variant and seed) and
 * test_probs.npy (the test probabilities, ids order). A run with test_eval.json is finished and
 * skipped; a run with last.safetensors resumes from it; a run of another config, seed or epoch
 * count in the same folder is refused. The study is summarised in out_dir/ablation.json,
 * out_dir/ablation.md and out_dir/ablation.svg. */

/* A variant: a short name (letters, digits, '.', '_', '-'; the run folder's name) and its config
 * string for mrm_model_config_parse ("" or "released": the released model). */
typedef struct mrm_ablate_variant {
    const char *name;
    const char *config;
} mrm_ablate_variant;

/* The default list (covers the paper's claims): released, no-attention, attention-both,
 * attention-high, no-fusion, no-mutual, high-only, low-only, add, concat. *n gets its length. */
const mrm_ablate_variant *mrm_ablate_default_variants(int *n);

/* Parses a list: items separated by ','; an item is the name of a default variant, or
 * NAME=KEY=VALUE (a variant of one's own), and the KEY=VALUE items after it that name a config
 * key extend it ("released,wide=width=32,attention=none,no-fusion"); NAME=released is the
 * released model under another name. Each config is checked with mrm_model_config_parse and names
 * must differ. *out (n entries) is allocated: free with mrm_ablate_variants_free. */
mrm_status mrm_ablate_parse_variants(const char *list, mrm_ablate_variant **out, int *n, mrm_error *err);
void mrm_ablate_variants_free(mrm_ablate_variant *v, int n);

typedef enum mrm_ablate_event_kind {
    MRM_ABLATE_SKIP = 0,  /* a finished run, read back */
    MRM_ABLATE_START = 1, /* a fresh run starts */
    MRM_ABLATE_RESUME = 2,/* a stopped run continues from its checkpoint */
    MRM_ABLATE_EPOCH = 3, /* a run finished an epoch (epoch is set) */
    MRM_ABLATE_DONE = 4,  /* a run was trained and evaluated on the test split */
    MRM_ABLATE_RESTART = 5 /* a run stopped before its first checkpoint starts again (its log
                              of that partial first epoch is replaced) */
} mrm_ablate_event_kind;

typedef struct mrm_ablate_event {
    mrm_ablate_event_kind kind;
    const char *variant;
    uint64_t seed;
    int run, n_runs;                   /* this run's index (0-based) and the study's total */
    int runs_finished;                 /* runs finished so far (this one included when done) */
    const mrm_train_progress *epoch;   /* MRM_ABLATE_EPOCH only */
    double test_macro_auc;             /* SKIP and DONE */
    double train_seconds;              /* SKIP and DONE: the epochs' seconds summed */
} mrm_ablate_event;

typedef struct mrm_ablate_options {
    const char *data_dir;      /* prepared folder (train, val and test splits) */
    const char *out_dir;       /* the study's folder (created) */
    const mrm_ablate_variant *variants; /* (mrm_ablate_default_variants when NULL) */
    int n_variants;
    const uint64_t *seeds;     /* training seeds (1, 2, 3 when NULL) */
    int n_seeds;
    int epochs;                /* 40 */
    int jobs;                  /* runs trained at once, each on its own thread (1) */
    int threads;               /* OpenMP threads of each run (0: OpenMP's default) */
    int resamples;             /* bootstrap resamples of the test records (1000) */
    uint64_t bootstrap_seed;   /* 1 */
    mrm_train_options train;   /* the other training options (batch, optimizer, lr, dropout, ...);
                                  data_dir, out_dir, epochs, seed, model, threads, resume, max_steps,
                                  init_path and the callbacks are set by the study */
    /* Called from the study's threads, one call at a time (never concurrently). */
    void (*on_event)(void *user, const mrm_ablate_event *e);
    mrm_log_fn log;
    void *user;
} mrm_ablate_options;

/* The defaults above (the training options' own defaults). */
void mrm_ablate_options_default(mrm_ablate_options *o);

/* Runs the study. Every variant is checked (config and model creation) before any training. On a
 * failed run, no further run starts, the running ones finish, and the first error is returned
 * (naming the run); a rerun continues where the study stopped. The calling thread's OpenMP
 * settings are left as they are. */
mrm_status mrm_ablate(const mrm_ablate_options *opt, mrm_error *err);

#ifdef __cplusplus
}
#endif

#endif
