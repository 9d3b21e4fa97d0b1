/* The fast inference path: a private copy of the model in which every BatchNorm (evaluation
 * mode: an affine map per channel) is folded into the convolution or 1x1 layer before it,
 *   w'[o, ...] = w[o, ...] * s[o],  bias[o] = beta[o] - running_mean[o] * s[o],
 *   s[o] = gamma[o] / sqrt(running_var[o] + eps),
 * and the four multi-scale kernels are merged once into one 33-tap kernel. The forward pass
 * (mrm_model_forward with m->folded set) then follows each convolution with ONE fused pass:
 * bias + ReLU, bias + ReLU + max pool (+ the BaseScale sum), or bias + residual + ReLU at the
 * end of a BasicBlock. Small batches run the two branches on two threads. Activations are
 * sized at create time. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/model_internal.h"

/* Batches up to this size run the two branches in parallel (see mrm_model_forward). */
#define BRANCH_PARALLEL_MAX_B 4

/* Convolutions of the model (stem 4, BaseScales 4, blocks up to 3 each, fusion) */
enum { MAX_PREPARED = 128 };

struct mrm_infer {
    mrm_model *m;
    int max_batch;
    float *prep[MAX_PREPARED]; /* the units' prepared weights (conv_p.prep points here) */
    int n_prep;
};

/* Folds bn into the rows of w (cout rows of `row` values); the bias goes to bn->beta. */
static void fold(bn_p *bn, float *w, size_t row) {
    for (int o = 0; o < bn->c; o++) {
        float s = bn->gamma[o] / sqrtf(bn->running_var[o] + BN_EPS);
        for (size_t j = 0; j < row; j++) w[(size_t)o * row + j] *= s;
        bn->beta[o] -= bn->running_mean[o] * s;
        bn->gamma[o] = 1.0f;
        bn->running_mean[o] = 0.0f;
        bn->running_var[o] = 1.0f - BN_EPS;
    }
}

static void fold_cbn(cbn *u) {
    fold(&u->bn, u->conv.w, (size_t)(u->conv.cin / u->conv.groups) * u->conv.k);
}

/* Prepares u's (folded) weights for the forward: FFT spectra, packed direct kernels. */
static int prepare_cbn(mrm_infer *inf, cbn *u) {
    const conv_p *c = &u->conv;
    nn_ctx *ctx = &inf->m->ctx;
    size_t n = conv1d_prepare_floats(ctx, c->cin, u->lin, c->cout, c->k, c->stride, c->pad, c->groups);
    if (inf->n_prep >= MAX_PREPARED) return 0;
    float *p = malloc(n * sizeof(float));
    if (!p) return -1;
    if (!conv1d_prepare(ctx, p, n, c->w, c->cin, u->lin, c->cout, c->k, c->stride, c->pad, c->groups)) {
        free(p);
        return 0;
    }
    inf->prep[inf->n_prep++] = p;
    u->conv.prep = p;
    return 0;
}

static int prepare_block(mrm_infer *inf, block *k) {
    int r = prepare_cbn(inf, &k->c1);
    if (k->kind == BLK_BASIC) {
        r |= prepare_cbn(inf, &k->c2);
        if (k->has_ds) r |= prepare_cbn(inf, &k->ds);
    }
    return r;
}

static void fold_block(block *k) {
    fold_cbn(&k->c1);
    if (k->kind == BLK_BASIC) {
        fold_cbn(&k->c2);
        if (k->has_ds) fold_cbn(&k->ds);
    }
}

/* Folds the unit's BatchNorms into the layers before them. */
static void fold_unit(unit *u) {
    switch (u->kind) {
    case UNIT_STEM: fold_cbn(&u->p.stem); break;
    case UNIT_BASESCALE:
        fold_cbn(&u->p.bs.shortcut);
        basescale_merge(&u->p.bs, u->p.bs.w33);
        fold_cbn(&u->p.bs.ms); /* its conv weights are w33 */
        break;
    case UNIT_BLOCK: fold_block(&u->p.blk); break;
    case UNIT_FUSION:
        fold_cbn(&u->p.fu.sp);
        fold(&u->p.fu.mbn, u->p.fu.m1.w, (size_t)u->p.fu.m1.cin);
        for (int j = 0; j < 4; j++) fold_block(&u->p.fu.layer[j]);
        break;
    case UNIT_HEAD:
    case UNIT_SUM: break;
    }
}

/* Prepares the unit's (folded) convolution weights for the forward. */
static int prepare_unit(mrm_infer *inf, unit *u) {
    int r = 0;
    switch (u->kind) {
    case UNIT_STEM: r = prepare_cbn(inf, &u->p.stem); break;
    case UNIT_BASESCALE: r = prepare_cbn(inf, &u->p.bs.shortcut) | prepare_cbn(inf, &u->p.bs.ms); break;
    case UNIT_BLOCK: r = prepare_block(inf, &u->p.blk); break;
    case UNIT_FUSION:
        r = prepare_cbn(inf, &u->p.fu.sp);
        for (int j = 0; j < 4; j++) r |= prepare_block(inf, &u->p.fu.layer[j]);
        break;
    case UNIT_HEAD:
    case UNIT_SUM: break;
    }
    return r;
}

mrm_status mrm_infer_create(mrm_infer **out, const mrm_model *src, int max_batch, mrm_error *err) {
    *out = NULL;
    if (max_batch < 1 || max_batch > 1000000)
        return mrm_fail(err, MRM_ERR_INVALID, "infer: max_batch %d out of range", max_batch);
    mrm_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return mrm_fail(err, MRM_ERR_NOMEM, "infer: out of memory");
    inf->max_batch = max_batch;
    mrm_status s = mrm_model_create(&inf->m, &src->cfg, err);
    if (!s) s = mrm_model_copy_weights(inf->m, src, err);
    if (!s) {
        inf->m->folded = 1; /* before planning: the folded units need one buffer, not two */
        s = model_plan(inf->m, max_batch, err);
    }
    if (s) {
        mrm_infer_free(inf);
        return s;
    }
    mrm_model *m = inf->m;
    for (int i = 0; i < m->n_units; i++) fold_unit(&m->units[i]);
    /* the folded weights prepared once for the forward */
    int bad = 0;
    for (int i = 0; i < m->n_units; i++) bad |= prepare_unit(inf, &m->units[i]);
    if (bad) {
        mrm_infer_free(inf);
        return mrm_fail(err, MRM_ERR_NOMEM, "infer: out of memory");
    }
    /* small batches: the branches side by side, each single-threaded */
    if (m->n_branches > 1 && omp_get_max_threads() >= m->n_branches) {
        for (int i = 0; i < m->n_branches; i++) {
            m->branch_ctx[i].scratch_floats = m->ctx.scratch_floats;
            m->branch_ctx[i].scratch = malloc(sizeof(float) * (m->ctx.scratch_floats ? m->ctx.scratch_floats : 1));
            if (!m->branch_ctx[i].scratch) {
                mrm_infer_free(inf);
                return mrm_fail(err, MRM_ERR_NOMEM, "infer: out of memory");
            }
        }
        m->branch_parallel_max_B = BRANCH_PARALLEL_MAX_B;
    }
    *out = inf;
    return MRM_OK;
}

mrm_status mrm_infer_run(mrm_infer *inf, const float *x, int B, float *logits1, float *logits2, mrm_error *err) {
    if (!x || B < 1 || B > inf->max_batch)
        return mrm_fail(err, MRM_ERR_INVALID, "infer: batch of %d, this engine takes 1..%d", B, inf->max_batch);
    mrm_status s = mrm_model_forward(inf->m, x, B, 0, NULL, err);
    if (s) return s;
    size_t n = (size_t)B * inf->m->cfg.n_classes * sizeof(float);
    if (logits2 && inf->m->n_out < 2)
        return mrm_fail(err, MRM_ERR_INVALID, "infer: the model has one output (no head 2)");
    if (logits1) memcpy(logits1, mrm_model_logits(inf->m, 1), n);
    if (logits2) memcpy(logits2, mrm_model_logits(inf->m, 2), n);
    return MRM_OK;
}

void mrm_infer_free(mrm_infer *inf) {
    if (!inf) return;
    for (int i = 0; i < inf->n_prep; i++) free(inf->prep[i]);
    mrm_model_free(inf->m);
    free(inf);
}
