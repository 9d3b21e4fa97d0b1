/* MRM-Net internals shared by the model's source files: the layers, the blocks, the model. */
#ifndef MRM_MODEL_INTERNAL_H
#define MRM_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mrmnet.h"
#include "nn/ops.h"

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
#define LN_EPS 1e-6f
#define MS_TAPS 33 /* the merged multi-scale kernel: 3, 13, 23, 33 centred in 33 taps */

/* ---- parameters of the layers (pointers into the model's buffers) ---------------------------- */

typedef struct conv_p {
    float *w, *dw; /* (cout, cin/groups, k) */
    int cin, cout, k, stride, pad, groups;
    float *prep; /* folded model: w prepared for the forward (conv1d_prepare; owned), or NULL */
} conv_p;

typedef struct bn_p {
    float *gamma, *beta, *dgamma, *dbeta, *running_mean, *running_var;
    int64_t *num_batches_tracked;
    int c;
} bn_p;

typedef struct ln_p {
    float *w, *b, *dw, *db;
    int c;
} ln_p;

typedef struct linear_p {
    float *w, *b, *dw, *db; /* w (cout, cin); b NULL when the layer has no bias */
    int cin, cout;
} linear_p;

/* ---- units and blocks, with their saved activations ------------------------------------------ */

/* conv -> BN [-> ReLU]: the unit most blocks are made of. y = relu?(bn(z)), z = conv(in). */
typedef struct cbn {
    conv_p conv;
    bn_p bn;
    int relu;
    int lin, lout;    /* time lengths of the input and the output */
    float *z, *y;     /* (B, cout, lout) */
    float *mean, *rstd; /* (cout) batch statistics of the last training forward */
    float *scale, *shift; /* (cout) its BN as an affine map (y = relu?(z * scale + shift)) */
    float *keep;          /* what the conv's training forward keeps for its backward (conv1d_forward_keep), or NULL */
    size_t keep_floats;
    int kept;             /* the last forward filled keep (a training forward) */
} cbn;

typedef struct basescale { /* BaseBlock.BaseScale1/2 */
    cbn shortcut;          /* conv_block: conv 3 (stride) -> BN -> ReLU; then MaxPool(2) */
    float *shortcut_pool;  /* (B, cout, L/2) */
    conv_p conv[4];        /* conv1..4: kernels 3, 13, 23, 33 (the parameters) */
    cbn ms;                /* the merged 33-tap conv (weights in w33) -> bn -> ReLU */
    float *w33, *dw33;     /* (cout, 64, 33), model-owned */
    float *ms_pool, *drop_mask; /* (B, cout, L/2) */
    float *out;            /* (B, cout, L/2) = shortcut_pool + dropout(ms_pool) */
    int cout, lout;        /* lout = L/2 */
} basescale;

typedef enum { BLK_BASIC, BLK_GATE, BLK_SE } block_kind;

typedef struct block {
    block_kind kind;
    int cin, c, L;
    /* BasicBlock: c1 (relu), c2 (no relu), optional downsample ds (no relu) */
    cbn c1, c2, ds;
    int has_ds;
    /* Gate/SE: c1 is the group conv -> bn -> relu (h = c1.y) */
    float *gap;            /* (B, c) mean over time of h */
    float *gate;           /* (B, c): hardsigmoid(gap) for Gate, sigmoid(fc2) for SE */
    linear_p fc0, fc2;     /* SE: c -> c/4 -> c, no bias */
    float *hid;            /* SE: (B, c/4) relu(fc0(gap)) */
    float *pre;            /* SE: (B, c) fc2(hid) */
    float *out;            /* (B, c, L) */
} block;

typedef struct fusion {    /* Fusion_block1/2 on one branch: c channels, L steps */
    int c, L;
    /* channel attention: a = M(max_t x) + M(mean_t x), M = fc (c -> c/8) -> fc (c/8 -> c) -> BN */
    linear_p m0, m1;
    bn_p mbn;
    float *xmax, *xavg;          /* (B, c) */
    float *h_max, *h_avg;        /* (B, c/8) */
    float *z_max, *z_avg;        /* (B, c) before BN */
    float *y_max, *y_avg;        /* (B, c) after BN */
    float *mean_max, *rstd_max, *mean_avg, *rstd_avg; /* (c) */
    float *ca;                   /* (B, c) sigmoid(a) */
    /* spatial attention: s = BN(conv(2 -> 1, k7, p3)([max_c x, mean_c x])) */
    float *maxmean;              /* (B, 2, L) */
    cbn sp;                      /* conv + BN(1), no relu */
    float *sa;                   /* (B, L) sigmoid(s) */
    float *cat;                  /* (B, 2c, L): [l1, l2] = [x * ca, x * sa], written in place */
    ln_p norm;
    float *f, *ln_mean, *ln_rstd;/* f (B, 2c, L); mean/rstd (B, L) */
    block layer[4];              /* BasicBlock(2c -> c, ds), Gate, SE, BasicBlock */
} fusion;

typedef struct head {      /* logits = fc(LayerNorm(concat of GAP of each input)) */
    ln_p norm;
    linear_p fc;
    int c;                        /* channels of all inputs together */
    float *gap, *n, *mean, *rstd; /* gap, n (B, c); mean, rstd (B) */
    float *logits;                /* (B, N) */
} head;

/* ---- the network: one ordered list of units ------------------------------------------------
 * The builder (build.c) turns the config into this list, in the order of the weights table;
 * planning, forward, backward, folding and preparing for inference all iterate it. A unit's
 * branch says when it runs: the shared units first (UNIT_SHARED), then each branch's units (in
 * list order; the branches may run side by side), then the units after the branches
 * (UNIT_TAIL). Backward runs the tail, then each branch, then the shared units, each in reverse. */
typedef enum {
    UNIT_STEM,      /* conv -> BN -> ReLU -> MaxPool(k2, s1, p1) */
    UNIT_BASESCALE, /* shortcut + multi-scale path (dropout) */
    UNIT_BLOCK,     /* BasicBlock, Gate, SE */
    UNIT_FUSION,    /* the Fusion block of a branch */
    UNIT_HEAD,      /* GAP of each input, concatenated -> LayerNorm -> Linear: logits */
    UNIT_SUM        /* the sum of two heads' logits */
} unit_kind;

#define MAX_BRANCHES 2
#define MAX_UNITS 48
#define UNIT_SHARED (-1)
#define UNIT_TAIL MAX_BRANCHES

typedef struct unit {
    unit_kind kind;
    int branch;         /* UNIT_SHARED, 0 .. n_branches - 1, or UNIT_TAIL */
    int in[2], n_in;    /* the units whose outputs are the inputs; -1: the network input */
    int c, L;           /* output per sample (heads: c = N, L = 1) */
    float *out;         /* (B, c, L), set by planning */
    char name[48];      /* weights prefix, e.g. "BaseBlock.layer2.1", "fc1" */
    union {
        cbn stem;       /* UNIT_STEM; out = the pooled map */
        basescale bs;
        block blk;
        fusion fu;
        head hd;
    } p;
} unit;

/* Initialisation rule of each tensor. */
typedef enum { INIT_UNIFORM, INIT_ONE, INIT_ZERO, INIT_COUNT } init_kind;

/* A stack of zeroed gradient buffers for the backward pass; chunks are kept between steps. */
#define GSTACK_CHUNKS 32
typedef struct gstack {
    float *chunk[GSTACK_CHUNKS];
    size_t cap[GSTACK_CHUNKS];
    int nchunks, cur;
    size_t used;
    int failed;
    float *sink;       /* where pushes go after an allocation failure */
    size_t sink_floats;
} gstack;
typedef struct gmark {
    int cur;
    size_t used;
} gmark;

struct mrm_model {
    mrm_model_config cfg;
    float dropout;
    float *pos_weight;          /* n_classes BCE weights of the positive term, or NULL */
    /* buffers */
    size_t n_params, n_stats, n_counts;
    float *params, *grads, *stats;
    int64_t *counts;
    int n_tensors;
    mrm_tensor *tensors;
    init_kind *init;   /* per tensor */
    float *bound;      /* per tensor: the uniform bound */
    /* architecture */
    int w;             /* width */
    int n_units;
    unit units[MAX_UNITS];
    int n_branches;              /* 1 or 2 */
    int feat_unit[MAX_BRANCHES]; /* each branch's last unit: its features */
    int n_out;                   /* 1 or 2 */
    int out_unit[2];             /* the units giving the logits of head 1, 2 */
    /* activations, sized for planned_B samples; the ops' scratch for planned_threads threads */
    int planned_B, planned_threads;
    float *act;
    size_t act_floats;
    nn_ctx ctx;
    nn_fft *fft; /* FFT plans for ctx and branch_ctx (owned) */
    /* set in the private copy of an mrm_infer: every BN is folded into the layer before it
     * (eval BN = add beta), the multi-scale kernels are merged once (w33) */
    int folded;
    /* evaluation batches of at most this size run the two branches in parallel, one thread
     * each, with their own scratch (0: never; set by mrm_infer) */
    int branch_parallel_max_B;
    nn_ctx branch_ctx[MAX_BRANCHES];
    /* data-parallel training: synchronised BatchNorm (mrm_model_set_batch_sync) and the loss
     * gradient's factor */
    mrm_sum_fn sync_fn;
    void *sync_ctx;
    int sync_leader;         /* this process holds the global batch's first record */
    int sync_failed;         /* a sum failed during the last forward/backward */
    double sync_B;           /* records of the global batch of the last training forward */
    double *sync_buf;        /* scratch of the sums (grown as needed) */
    size_t sync_cap;
    float loss_scale;
    const uint64_t *drop_keys; /* the last forward's per-record dropout keys, or NULL */
    /* last forward */
    int B, trained_forward, dropout_applied;
    const float *x;    /* the caller's input of the last forward (needed by backward) */
    /* after mrm_model_backward_outputs: the gradient of each branch's features (on gs), or NULL */
    const float *feat_grad[MAX_BRANCHES];
    gstack gs;
};

/* Builds the unit list and the tensor table (two passes: counting, then pointing into allocated
 * buffers). */
mrm_status model_build(mrm_model *m, mrm_error *err);
/* The output of the unit named `name` after a forward (tests), or NULL. */
const float *model_unit_output(const mrm_model *m, const char *name);

/* Sizes the activations for B samples (grows only). */
mrm_status model_plan(mrm_model *m, int B, mrm_error *err);
/* BN (training mode) with an optional ReLU after it, fused (fused.c). Forward: y = relu?(BN(z)),
 * saves mean/rstd (and, where scale/shift are given, each channel's affine map: y = relu?(z *
 * scale + shift)), updates the running statistics. Backward: dz = d/dz given dy, the ReLU mask
 * taken from y (NULL: no ReLU), or where scale/shift (the forward's) are given, recomputed
 * from z as the forward computed y (z * scale + shift > 0: the same bits, without reading y);
 * dz is OVERWRITTEN, dgamma/dbeta accumulate. */
void bn_relu_forward_train(float *y, float *mean, float *rstd, float *scale, float *shift, float *running_mean,
                           float *running_var, const float *z, const float *gamma, const float *beta, int B, int C, int L,
                           float eps, float momentum, int relu);
void bn_relu_backward(float *dz, float *dgamma, float *dbeta, const float *dy, const float *y, const float *z,
                      const float *mean, const float *rstd, const float *scale, const float *shift, const float *gamma,
                      int B, int C, int L);
/* The statistics pass of bn_relu_forward_train alone: mean/rstd saved, the running statistics
 * updated, and each channel's affine map (y = z * scale + shift) returned for a later pass. */
void bn_forward_train_stats(float *scale, float *shift, float *mean, float *rstd, float *running_mean, float *running_var,
                            const float *z, const float *gamma, const float *beta, int B, int C, int L, float eps,
                            float momentum);
/* BN + ReLU (training mode) then max pooling with window 2 (pool 1: stride 1, padding 1, out (B,
 * C, L + 1); pool 2: stride 2, out (B, C, L / 2)), fused: the BN output is never stored.
 * Forward: out, mean/rstd, scale/shift (each channel's affine map, for the backward) saved, the
 * running statistics updated. Backward: dz (OVERWRITTEN) from dout, the pooling's and the ReLU's
 * routes recomputed from z; dgamma/dbeta accumulate. Same bits as bn_relu_forward_train +
 * maxpool2(s1)_forward and maxpool2(s1)_backward_set + bn_relu_backward. */
void bn_relu_pool_forward_train(float *out, float *mean, float *rstd, float *scale, float *shift, float *running_mean,
                                float *running_var, const float *z, const float *gamma, const float *beta, int B, int C,
                                int L, float eps, float momentum, int pool);
void bn_relu_pool_backward(float *dz, float *dgamma, float *dbeta, const float *dout, const float *z, const float *mean,
                           const float *rstd, const float *scale, const float *shift, const float *gamma, int B, int C,
                           int L, int pool, float *work);
/* Floats of the backward's work: (B + 2) rows of L for each of omp_get_max_threads() threads. */
size_t bn_relu_pool_backward_work(int B, int L);
/* Backward of the evaluation-mode BN (+ ReLU): BN is then the affine map z -> gamma (z - rm) rstd + beta
 * with the running statistics, so dz = gamma rstd dy (masked by the ReLU, from y; NULL: no ReLU);
 * dz is OVERWRITTEN, dgamma/dbeta (may be NULL) accumulate. The statistics are not touched. */
void bn_relu_backward_eval(float *dz, float *dgamma, float *dbeta, const float *dy, const float *y, const float *z,
                           const float *gamma, const float *running_mean, const float *running_var, int B, int C, int L,
                           float eps);
/* Evaluation mode (running statistics): y = relu?(BN(z)) in one pass. */
void bn_relu_forward_eval(float *y, const float *z, const float *gamma, const float *beta, const float *running_mean,
                          const float *running_var, int B, int C, int L, float eps, int relu);
/* Synchronised BatchNorm (+ ReLU) over the processes of a data-parallel run: the same function
 * as bn_relu_forward_train / bn_relu_backward on the global batch (Bg records in all; sums taken
 * with m->sync_fn). dz is OVERWRITTEN; dgamma/dbeta accumulate this process's part only (the
 * gradient buffers are summed afterwards). Return nonzero when a sum failed. */
int bn_relu_forward_train_sync(mrm_model *m, float *y, float *mean, float *rstd, float *running_mean, float *running_var,
                               const float *z, const float *gamma, const float *beta, int B, int C, int L, float eps,
                               float momentum, int relu);
int bn_relu_backward_sync(mrm_model *m, float *dz, float *dgamma, float *dbeta, const float *dy, const float *y,
                          const float *z, const float *mean, const float *rstd, const float *gamma, int B, int C, int L);
/* The same for batchnorm_forward_train / batchnorm_backward of src/nn (din accumulates). */
int batchnorm_forward_train_sync(mrm_model *m, float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                 const float *in, const float *gamma, const float *beta, int B, int C, int L, float eps,
                                 float momentum);
int batchnorm_backward_sync(mrm_model *m, float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *mean, const float *rstd, const float *gamma, int B, int C, int L);
/* Merges conv1..4 of a BaseScale into one 33-tap kernel w33 (cout, cin, 33). */
void basescale_merge(const basescale *s, float *w33);

/* Calls fn(ctx, name, is_int64, ndim, shape) for each tensor of the architecture of `m` (its cfg,
 * w, hi_c, lo_c and n_hi_blocks set; nothing allocated) in weights-table order, stopping at the
 * first nonzero return, which it returns. model_build's first pass, without the model's buffers. */
typedef int (*model_tensor_fn)(void *ctx, const char *name, int is_int64, int ndim, const long long *shape);
int model_walk(mrm_model *m, model_tensor_fn fn, void *ctx);
/* The same for an architecture: checks cfg as mrm_model_create does; returns fn's first nonzero
 * return, 0, or -1 (err filled) when cfg is out of range or memory is short. */
int mrm_model_walk_config(const mrm_model_config *cfg, model_tensor_fn fn, void *ctx, mrm_error *err);

/* Checks that a safetensors file holds every tensor of the architecture cfg (name, dtype, shape;
 * st_read checked that their bytes lie inside the file), before anything is allocated for the
 * model: a small file cannot make a reader build a large model. */
struct st_file;
mrm_status model_file_holds(const struct st_file *f, const mrm_model_config *cfg, mrm_error *err);

#endif
