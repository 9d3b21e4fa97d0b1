/* Where the time of MRM-Net goes: the model's work decomposed into its units (conv -> BN ->
 * ReLU, pools, residual adds, gates, attention, heads, loss, Adam), each timed alone with the
 * ops of src/nn/ops.h at the shapes the model uses, in model order, grouped by the model's
 * blocks. For a training step (batch 96: train-mode forward, then the backward of the same unit)
 * and for inference (batch 1: evaluation-mode forward with BN as a per-channel bias, as the
 * fast path runs it). The whole model is timed too, so the sum of the parts can be compared
 * with the whole.
 *
 *   bench_layers [--train-batch 96] [--infer-batch 1] [--iters 3] [--json FILE] [--variant K=V,...]
 *
 * The units are read from the model's own unit list (the released model, or --variant).
 *
 * Each unit: one warm-up run, then the least time of `iters` runs (forward and backward timed
 * separately); the whole model likewise. The thread count is OpenMP's (OMP_NUM_THREADS). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/fileutil.h"
#include "common/rng.h"
#include "mrmnet.h"
#include "model/model_internal.h"
#include "nn/ops.h"

typedef enum {
    U_CBN,         /* conv (k, stride, pad, groups) -> BN -> ReLU? */
    U_POOL_S1,     /* MaxPool(k2, s1, p1): (c, L) -> (c, L+1) */
    U_POOL2,       /* MaxPool(2): (c, L) -> (c, L/2) */
    U_DROPOUT_ADD, /* multi-scale path: dropout(0.2), + shortcut */
    U_ADD_RELU,    /* BasicBlock end: relu(main + shortcut) (ds = 1: the shortcut is a conv) */
    U_GATE,        /* x + h * hardsigmoid(GAP h) */
    U_SE,          /* x + h * sigmoid(W2 relu(W1 GAP h)) */
    U_ATTENTION,   /* Fusion block's channel + spatial attention, concat, LayerNorm(2c) */
    U_HEAD,        /* GAP -> LayerNorm -> Linear */
    U_LOSS,        /* BCE x 2, KL4 of features x 2, KL4 of logits x 2, with gradients */
    U_ADAM         /* one Adam step over every parameter */
} lkind;

typedef struct lunit {
    const char *group;
    lkind kind;
    int cin, lin, cout, k, stride, pad, groups, relu; /* U_CBN; others use cin = c, lin = L */
    int flag;     /* U_CBN: 1 = no input gradient (the first layer); U_ADD_RELU: 1 = conv shortcut */
} lunit;

#define CBN(g, ci, l, co, k, s, p, gr, r) {g, U_CBN, ci, l, co, k, s, p, gr, r, 0}
#define OP(g, kind, c, l) {g, kind, c, l, c, 0, 1, 0, 1, 0, 0}

static const char *G_LOSS = "loss", *G_ADAM = "Adam";

/* A BasicBlock, Gate or SE block of the model as the bench's units. */
static int block_units(lunit *u, int n, const char *g, const block *k) {
    const cbn *c1 = &k->c1, *c2 = &k->c2, *ds = &k->ds;
#define CBN_OF(x, r) (lunit) CBN(g, (x)->conv.cin, (x)->lin, (x)->conv.cout, (x)->conv.k, (x)->conv.stride, (x)->conv.pad, (x)->conv.groups, r)
    u[n++] = CBN_OF(c1, 1);
    if (k->kind == BLK_BASIC) {
        u[n++] = CBN_OF(c2, 0);
        if (k->has_ds) u[n++] = CBN_OF(ds, 0);
        u[n++] = (lunit)OP(g, U_ADD_RELU, k->c, k->L);
        u[n - 1].flag = k->has_ds;
    } else {
        u[n++] = (lunit)OP(g, k->kind == BLK_GATE ? U_GATE : U_SE, k->c, k->L);
    }
    return n;
}

/* The model's units (its one list, model_internal.h) decomposed into the bench's, in forward
 * order; each group is named after the model's unit. */
static int build_units(lunit *u, const mrm_model *m) {
    int n = 0;
    for (int i = 0; i < m->n_units; i++) {
        const unit *mu = &m->units[i];
        const char *g = mu->name;
        switch (mu->kind) {
        case UNIT_STEM: /* conv -> BN -> ReLU -> MaxPool(k2, s1, p1) */
            u[n++] = CBN_OF(&mu->p.stem, 1);
            u[n - 1].flag = mu->in[0] < 0; /* the first layer: no input gradient */
            u[n++] = (lunit)OP(g, U_POOL_S1, mu->p.stem.conv.cout, mu->p.stem.lout);
            break;
        case UNIT_BASESCALE: { /* shortcut conv 3 -> BN -> ReLU -> pool; merged 33-tap conv -> BN
                                * -> ReLU -> pool -> dropout; sum */
            const basescale *bs = &mu->p.bs;
            u[n++] = CBN_OF(&bs->shortcut, 1);
            u[n++] = (lunit)OP(g, U_POOL2, bs->cout, bs->shortcut.lout);
            u[n++] = CBN_OF(&bs->ms, 1);
            u[n++] = (lunit)OP(g, U_POOL2, bs->cout, bs->ms.lout);
            u[n++] = (lunit)OP(g, U_DROPOUT_ADD, bs->cout, bs->lout);
            break;
        }
        case UNIT_BLOCK: n = block_units(u, n, g, &mu->p.blk); break;
        case UNIT_FUSION:
            u[n++] = (lunit)OP(g, U_ATTENTION, mu->p.fu.c, mu->p.fu.L);
            for (int j = 0; j < 4; j++) n = block_units(u, n, g, &mu->p.fu.layer[j]);
            break;
        case UNIT_HEAD: { /* one input, or the concatenation of two of different lengths: timed on
                             * the length that gives the pooling its true number of values */
            long long values = 0;
            for (int k = 0; k < mu->n_in; k++) values += (long long)m->units[mu->in[k]].c * m->units[mu->in[k]].L;
            u[n++] = (lunit)OP(g, U_HEAD, mu->p.hd.c, (int)((values + mu->p.hd.c - 1) / mu->p.hd.c));
            break;
        }
        case UNIT_SUM: break;
        }
    }
#undef CBN_OF
    u[n++] = (lunit)OP(G_LOSS, U_LOSS, mrm_model_feature_size(m), 1);
    u[n++] = (lunit)OP(G_ADAM, U_ADAM, 0, 0);
    return n;
}

/* ---- buffers of one unit --------------------------------------------------------------------- */

#define NBUF 24
typedef struct state {
    int B, N;          /* batch, classes */
    float *b[NBUF];    /* see alloc_state for what each one is per kind */
    nn_ctx ctx;
    mrm_rng rng;
    size_t n_params;
    mrm_optimizer opt; /* U_ADAM */
} state;

static float *rand_buf(size_t n, mrm_rng *r) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_layers: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) x[i] = mrm_rng_uniform_range(r, -1.0f, 1.0f);
    return x;
}

static float *ones(size_t n, mrm_rng *r) {
    float *x = rand_buf(n, r);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f + 0.1f * x[i];
    return x;
}

static int out_len(const lunit *u) {
    switch (u->kind) {
    case U_CBN: return conv1d_out_len(u->lin, u->k, u->stride, u->pad);
    case U_POOL_S1: return u->lin + 1;
    case U_POOL2: return u->lin / 2;
    default: return u->lin;
    }
}

/* b[0] in, b[1] out, b[2] din, b[3] dout; the rest per kind. */
static void alloc_state(state *s, const lunit *u) {
    size_t B = (size_t)s->B, c = (size_t)u->cin, L = (size_t)u->lin, lo = (size_t)out_len(u);
    size_t co = u->kind == U_CBN ? (size_t)u->cout : c;
    memset(s->b, 0, sizeof s->b);
    s->ctx.scratch_floats = 0;
    s->ctx.scratch = NULL;
    mrm_rng *r = &s->rng;
    if (u->kind == U_ADAM) {
        s->b[0] = rand_buf(s->n_params, r); /* params */
        s->b[1] = rand_buf(s->n_params, r); /* grads */
        for (size_t i = 0; i < s->n_params; i++) s->b[1][i] *= 1e-3f;
        if (mrm_optimizer_init(&s->opt, MRM_OPT_ADAM, s->n_params, NULL)) {
            fprintf(stderr, "bench_layers: out of memory for the optimizer\n");
            exit(1);
        }
        return;
    }
    if (u->kind == U_LOSS) {
        size_t F = (size_t)u->cin, N = (size_t)s->N; /* cin: the feature size */
        s->b[0] = rand_buf(B * F, r), s->b[1] = rand_buf(B * F, r); /* features */
        s->b[2] = rand_buf(B * F, r), s->b[3] = rand_buf(B * F, r); /* their gradients */
        s->b[4] = rand_buf(B * N, r), s->b[5] = rand_buf(B * N, r); /* logits */
        s->b[6] = rand_buf(B * N, r), s->b[7] = rand_buf(B * N, r);
        s->b[8] = rand_buf(B * N, r);
        for (size_t i = 0; i < B * N; i++) s->b[8][i] = s->b[8][i] > 0.4f;
        return;
    }
    s->b[0] = rand_buf(B * c * L, r);
    s->b[1] = rand_buf(B * co * lo, r);
    s->b[2] = rand_buf(B * c * L, r);
    s->b[3] = rand_buf(B * co * lo, r);
    switch (u->kind) {
    case U_CBN: {
        size_t nw = (size_t)u->cout * (u->cin / u->groups) * u->k;
        s->b[4] = rand_buf(nw, r), s->b[5] = rand_buf(nw, r);            /* w, dw */
        s->b[6] = rand_buf(B * co * lo, r);                               /* z (before BN) */
        s->b[7] = ones(co, r), s->b[8] = rand_buf(co, r);                 /* gamma, beta */
        s->b[9] = rand_buf(co, r), s->b[10] = rand_buf(co, r);            /* dgamma, dbeta */
        s->b[11] = rand_buf(co, r), s->b[12] = ones(co, r);               /* running mean, var */
        s->b[13] = rand_buf(co, r), s->b[14] = rand_buf(co, r);           /* mean, rstd */
        s->b[15] = rand_buf(B * co * lo, r), s->b[16] = rand_buf(B * co * lo, r); /* dbn, dz */
        s->ctx.scratch_floats = conv1d_scratch_floats(s->B, u->cin, u->lin, u->cout, u->k, u->stride, u->pad,
                                                      u->groups);
        s->ctx.scratch = rand_buf(s->ctx.scratch_floats, r);
        break;
    }
    case U_DROPOUT_ADD:
    case U_ADD_RELU:
        s->b[4] = rand_buf(B * c * L, r); /* the other summand */
        s->b[5] = rand_buf(B * c * L, r); /* dropout mask / the sum's gradient */
        s->b[6] = rand_buf(B * c * L, r);
        break;
    case U_GATE:
    case U_SE:
        s->b[4] = rand_buf(B * c * L, r); /* h */
        s->b[5] = rand_buf(B * c, r), s->b[6] = rand_buf(B * c, r); /* gap, gate */
        s->b[7] = rand_buf(B * c / 4, r), s->b[8] = rand_buf(B * c, r); /* hid, pre */
        s->b[9] = rand_buf(c * c / 4, r), s->b[10] = rand_buf(c * c / 4, r); /* fc0, fc2 */
        s->b[11] = rand_buf(c * c / 4, r), s->b[12] = rand_buf(c * c / 4, r); /* their grads */
        s->b[13] = rand_buf(B * c * L, r); /* dh */
        s->b[14] = rand_buf(B * c, r), s->b[15] = rand_buf(B * c, r), s->b[16] = rand_buf(B * c, r);
        s->b[17] = rand_buf(B * c / 4, r), s->b[18] = rand_buf(B * c / 4, r);
        break;
    case U_ATTENTION: /* x = in, f = b5 (B, 2c, L), b1 is dl2; see attention_forward */
        s->b[4] = rand_buf(B * 2 * c * L, r), s->b[5] = rand_buf(B * 2 * c * L, r); /* cat, f */
        s->b[6] = rand_buf(B * c * L, r), s->b[7] = rand_buf(B * c * L, r);         /* l1, l2 */
        s->b[8] = rand_buf(B * c * 16, r);                    /* (B, c) vectors */
        s->b[9] = rand_buf(c * c / 4 + 16, r), s->b[10] = rand_buf(c * c / 4 + 16, r); /* m0|m1, grads */
        s->b[11] = rand_buf(B * 2 * L, r), s->b[12] = rand_buf(B * L * 9, r); /* maxmean; (B, L) rows */
        s->b[13] = rand_buf(14, r), s->b[14] = rand_buf(14, r);               /* conv 2 -> 1 k7, grad */
        s->b[15] = ones(8 * c + 64, r), s->b[21] = rand_buf(8 * c + 64, r);   /* weights, biases */
        s->b[16] = rand_buf(16 * c + 64, r);                                  /* stats, grads */
        s->b[17] = rand_buf(B * L * 2, r);                                    /* LN mean, rstd */
        s->b[18] = rand_buf(B * 2 * c * L, r), s->b[19] = rand_buf(B * 2 * c * L, r); /* dcat, df */
        s->b[20] = rand_buf(B * c * L, r);                                    /* dl1 */
        s->ctx.scratch_floats = conv1d_scratch_floats(s->B, 2, u->lin, 1, 7, 1, 3, 1);
        s->ctx.scratch = rand_buf(s->ctx.scratch_floats, r);
        break;
    case U_HEAD:
        s->b[4] = rand_buf(B * c * 4, r);              /* gap, n, dn, dg */
        s->b[5] = rand_buf(B * 2, r);                  /* mean, rstd */
        s->b[6] = rand_buf(c * (size_t)s->N + (size_t)s->N, r); /* fc weight | bias */
        s->b[7] = rand_buf(c * (size_t)s->N + (size_t)s->N, r); /* their gradients */
        s->b[8] = ones(c, r), s->b[9] = rand_buf(3 * c, r);    /* LN weight; bias | dw | db */
        s->b[10] = rand_buf(B * (size_t)s->N * 2, r);  /* logits, dlogits */
        break;
    default:
        break;
    }
}

static void free_state(state *s) {
    for (int i = 0; i < NBUF; i++) free(s->b[i]);
    free(s->ctx.scratch);
    mrm_optimizer_free(&s->opt);
    memset(s->b, 0, sizeof s->b);
    s->ctx.scratch = NULL;
}


/* ---- forward and backward of one unit -------------------------------------------------------- */

/* out[b, c, t] += bias[c]: BN folded into the conv, as the fast inference path runs it. */
static void bias_add(float *out, const float *bias, int B, int C, int L) {
#pragma omp parallel for collapse(2) if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *o = out + ((size_t)b * C + c) * L;
            for (int t = 0; t < L; t++) o[t] += bias[c];
        }
}

static void zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

/* BN of the attention's small maps: batch statistics in training, a bias (folded) otherwise. */
static void small_bn(int train, float *y, const float *z, float *mean, float *rstd, float *rm, float *rv,
                     const float *gamma, const float *beta, int B, int C, int L) {
    if (train) {
        batchnorm_forward_train(y, mean, rstd, rm, rv, z, gamma, beta, B, C, L, 1e-5f, 0.1f);
    } else {
        memcpy(y, z, sizeof(float) * (size_t)B * C * L);
        bias_add(y, beta, B, C, L);
    }
}

/* Fusion block front: channel attention l1 = sigmoid(M(max_t x) + M(mean_t x)) * x, spatial
 * attention l2 = sigmoid(BN(conv([max_c x, mean_c x]))) * x, f = LayerNorm(concat[l1, l2]). */
static void attention_forward(state *s, const lunit *u, int train) {
    int B = s->B, c = u->cin, L = u->lin;
    size_t Bc = (size_t)B * c, BL = (size_t)B * L;
    float **b = s->b, *v = b[8], *st = b[16], *g = b[15], *be = b[21], *row = b[12];
    float *m0 = b[9], *m1 = b[9] + (size_t)c * (c / 8);
    const float *x = b[0];
    max_time_forward(v, x, B, c, L);
    mean_time_forward(v + Bc, x, B, c, L);
    for (int q = 0; q < 2; q++) { /* M(max), M(mean): h at 2+q, z at 4+q, y at 6+q */
        linear_forward(v + (2 + q) * Bc, v + q * Bc, m0, NULL, B, c, c / 8);
        linear_forward(v + (4 + q) * Bc, v + (2 + q) * Bc, m1, NULL, B, c / 8, c);
        small_bn(train, v + (6 + q) * Bc, v + (4 + q) * Bc, st + (6 + 2 * q) * c, st + (7 + 2 * q) * c, be + 4 * c,
                 g + 4 * c, g, be, B, c, 1);
    }
    add_forward(v + 8 * Bc, v + 6 * Bc, v + 7 * Bc, Bc);
    sigmoid_forward(v + 8 * Bc, v + 8 * Bc, Bc);
    scale_channels_forward_ld(b[4], 2 * (size_t)c * L, x, v + 8 * Bc, B, c, L); /* l1 into concat's first half */
    channel_maxmean_forward(b[11], x, B, c, L);
    conv1d_forward(&s->ctx, row, b[11], b[13], B, 2, L, 1, 7, 1, 3, 1);
    small_bn(train, row + BL, row, st + 10 * c, st + 10 * c + 1, be + 5 * c, g + 5 * c, g + 3 * c, be + 3 * c, B, 1,
             L);
    sigmoid_forward(row + 2 * BL, row + BL, BL);
    scale_time_forward_ld(b[4] + (size_t)c * L, 2 * (size_t)c * L, x, row + 2 * BL, B, c, L); /* l2: its second */
    layernorm_ch_forward(b[5], b[17], b[17] + BL, b[4], g + c, be + c, B, 2 * c, L, 1e-6f);
}

static void attention_backward(state *s, const lunit *u) {
    int B = s->B, c = u->cin, L = u->lin;
    size_t Bc = (size_t)B * c, BL = (size_t)B * L, n = Bc * L;
    float **b = s->b, *v = b[8], *st = b[16], *g = b[15], *row = b[12], *din = b[2];
    float *m0 = b[9], *m1 = b[9] + (size_t)c * (c / 8), *dm0 = b[10], *dm1 = b[10] + (size_t)c * (c / 8);
    const float *x = b[0];
    layernorm_ch_backward_set(b[18], st + 2 * c, st + 4 * c, b[19], b[4], b[17], b[17] + BL, g + c, B, 2 * c, L);
    const size_t ld = 2 * (size_t)c * L; /* dl1, dl2: the halves of b[18], read in place */
    const float *dl1 = b[18], *dl2 = b[18] + (size_t)c * L;
    /* spatial: dsa row 3, dsy row 4, dsz row 5, dmaxmean rows 6-7 */
    zero(row + 3 * BL, 5 * BL);
    scale_time_backward_ld(NULL, row + 3 * BL, dl2, ld, x, row + 2 * BL, B, c, L);
    sigmoid_backward(row + 4 * BL, row + 3 * BL, row + 2 * BL, BL);
    batchnorm_backward(row + 5 * BL, st + 10 * c + 2, st + 10 * c + 3, row + 4 * BL, row, st + 10 * c, st + 10 * c + 1,
                       g + 3 * c, B, 1, L);
    conv1d_backward(&s->ctx, row + 6 * BL, b[14], row + 5 * BL, b[11], b[13], B, 2, L, 1, 7, 1, 3, 1);
    /* channel: dca 9, da 10, dmax 11, davg 12, dz 13, dh 14 */
    zero(v + 9 * Bc, 6 * Bc);
    scale_channels_backward_ld(NULL, v + 9 * Bc, dl1, ld, x, v + 8 * Bc, B, c, L);
    sigmoid_backward(v + 10 * Bc, v + 9 * Bc, v + 8 * Bc, Bc);
    for (int q = 0; q < 2; q++) {
        zero(v + 13 * Bc, 2 * Bc);
        batchnorm_backward(v + 13 * Bc, st, st + c, v + 10 * Bc, v + (4 + q) * Bc, st + (6 + 2 * q) * c,
                           st + (7 + 2 * q) * c, g, B, c, 1);
        linear_backward(v + 14 * Bc, dm1, NULL, v + 13 * Bc, v + (2 + q) * Bc, m1, B, c / 8, c);
        linear_backward(v + (11 + q) * Bc, dm0, NULL, v + 14 * Bc, v + q * Bc, m0, B, c, c / 8);
    }
    /* the input gradient, every path at once (b[20], b[1]: the argmax scratch) */
    attention_input_backward(din, 1, dl1, dl2, ld, x, v + 8 * Bc, row + 2 * BL, row + 6 * BL, v + 11 * Bc, v + 12 * Bc,
                             (int *)(void *)b[20], b[1], B, c, L);
    (void)n;
}

/* x + h * gate, gate = hardsigmoid(GAP h) (Gate) or sigmoid(fc2 relu(fc0 GAP h)) (SE). */
static void gate_forward(state *s, const lunit *u) {
    int B = s->B, c = u->cin, L = u->lin;
    float **b = s->b;
    mean_time_forward(b[5], b[4], B, c, L);
    if (u->kind == U_GATE) {
        hardsigmoid_forward(b[6], b[5], (size_t)B * c);
    } else {
        linear_forward(b[7], b[5], b[9], NULL, B, c, c / 4);
        relu_forward(b[7], b[7], (size_t)B * (c / 4));
        linear_forward(b[8], b[7], b[10], NULL, B, c / 4, c);
        sigmoid_forward(b[6], b[8], (size_t)B * c);
    }
    scale_channels_add_forward(b[1], b[4], b[6], b[0], B, c, L);
}

static void gate_backward(state *s, const lunit *u) {
    int B = s->B, c = u->cin, L = u->lin;
    size_t Bc = (size_t)B * c;
    float **b = s->b;
    zero(b[14], Bc), zero(b[15], Bc);
    scale_channels_backward(NULL, b[14], b[3], b[4], b[6], B, c, L);
    if (u->kind == U_GATE) {
        hardsigmoid_backward(b[15], b[14], b[5], Bc);
    } else {
        zero(b[16], Bc), zero(b[17], Bc / 4), zero(b[18], Bc / 4);
        sigmoid_backward(b[16], b[14], b[6], Bc);
        linear_backward(b[17], b[12], NULL, b[16], b[7], b[10], B, c / 4, c);
        relu_backward(b[18], b[17], b[7], Bc / 4);
        linear_backward(b[15], b[11], NULL, b[18], b[5], b[9], B, c, c / 4);
    }
    gate_input_backward(b[13], b[2], 0, b[3], b[6], b[15], B, c, L); /* dh set, din += the identity path */
}

/* The unit's forward: train = 1 training mode (batch statistics, dropout), 0 inference. */
static void unit_forward(state *s, const lunit *u, int train) {
    int B = s->B, c = u->cin, L = u->lin, lo = out_len(u);
    float **b = s->b;
    size_t n = (size_t)B * c * L;
    switch (u->kind) {
    case U_CBN:
        if (!train) { /* the fast path: BN folded into the conv, bias and ReLU in its epilogue */
            conv1d_bias_act_forward(&s->ctx, b[1], b[0], b[4], b[8], u->relu, B, u->cin, u->lin, u->cout, u->k,
                                    u->stride, u->pad, u->groups);
            break;
        }
        conv1d_forward(&s->ctx, b[6], b[0], b[4], B, u->cin, u->lin, u->cout, u->k, u->stride, u->pad, u->groups);
        batchnorm_forward_train(b[1], b[13], b[14], b[11], b[12], b[6], b[7], b[8], B, u->cout, lo, 1e-5f, 0.1f);
        if (u->relu) relu_forward(b[1], b[1], (size_t)B * u->cout * lo);
        break;
    case U_POOL_S1: maxpool2s1_forward(b[1], b[0], B, c, L); break;
    case U_POOL2: maxpool2_forward(b[1], b[0], B, c, L); break;
    case U_DROPOUT_ADD:
        if (train) {
            dropout_forward(b[5], b[6], b[0], n, 0.2f, &s->rng);
            add_forward(b[1], b[4], b[5], n);
        } else {
            add_forward(b[1], b[4], b[0], n);
        }
        break;
    case U_ADD_RELU:
        add_forward(b[1], b[0], b[4], n);
        relu_forward(b[1], b[1], n);
        break;
    case U_GATE:
    case U_SE: gate_forward(s, u); break;
    case U_ATTENTION: attention_forward(s, u, train); break;
    case U_HEAD: {
        size_t Bc = (size_t)B * c;
        mean_time_forward(b[4], b[0], B, c, L);
        layernorm_ch_forward(b[4] + Bc, b[5], b[5] + B, b[4], b[8], b[9], B, c, 1, 1e-6f);
        linear_forward(b[10], b[4] + Bc, b[6], b[6] + (size_t)c * s->N, B, c, s->N);
        break;
    }
    case U_LOSS:
    case U_ADAM: break; /* no forward part */
    }
}

/* The unit's backward (after a training forward). The loss and Adam do all their work here. */
static void unit_backward(state *s, const lunit *u) {
    int B = s->B, c = u->cin, L = u->lin, lo = out_len(u);
    float **b = s->b;
    size_t n = (size_t)B * c * L;
    switch (u->kind) {
    case U_CBN: {
        size_t no = (size_t)B * u->cout * lo;
        const float *dbn = b[3];
        if (u->relu) {
            zero(b[15], no);
            relu_backward(b[15], b[3], b[1], no);
            dbn = b[15];
        }
        zero(b[16], no);
        batchnorm_backward(b[16], b[9], b[10], dbn, b[6], b[13], b[14], b[7], B, u->cout, lo);
        conv1d_backward(&s->ctx, u->flag ? NULL : b[2], b[5], b[16], b[0], b[4], B, u->cin, u->lin, u->cout, u->k,
                        u->stride, u->pad, u->groups);
        break;
    }
    case U_POOL_S1:
        zero(b[2], n);
        maxpool2s1_backward(b[2], b[3], b[0], B, c, L);
        break;
    case U_POOL2:
        zero(b[2], n);
        maxpool2_backward(b[2], b[3], b[0], B, c, L);
        break;
    case U_DROPOUT_ADD:
        zero(b[2], n);
        dropout_backward(b[2], b[3], b[6], n);
        break;
    case U_ADD_RELU:
        zero(b[5], n);
        relu_backward(b[5], b[3], b[1], n);
        if (!u->flag) accumulate(b[2], b[5], n);
        break;
    case U_GATE:
    case U_SE: gate_backward(s, u); break;
    case U_ATTENTION: attention_backward(s, u); break;
    case U_HEAD: {
        size_t Bc = (size_t)B * c;
        zero(b[4] + 2 * Bc, 2 * Bc);
        linear_backward(b[4] + 2 * Bc, b[7], b[7] + (size_t)c * s->N, b[10] + (size_t)B * s->N, b[4] + Bc, b[6], B,
                        c, s->N);
        layernorm_ch_backward(b[4] + 3 * Bc, b[9] + c, b[9] + 2 * c, b[4] + 2 * Bc, b[4], b[5], b[5] + B, b[8], B, c,
                              1);
        mean_time_backward(b[2], b[4] + 3 * Bc, B, c, L);
        break;
    }
    case U_LOSS: { /* as the model's loss_parts, with the zeroed gradient buffers */
        int F = 32128, N = s->N;
        zero(b[2], (size_t)B * F), zero(b[3], (size_t)B * F), zero(b[6], (size_t)B * N), zero(b[7], (size_t)B * N);
        bce_logits_forward_backward(b[6], b[4], b[8], B, N, 1.0f, NULL);
        bce_logits_forward_backward(b[7], b[5], b[8], B, N, 1.0f, NULL);
        kl_sym_softmax_forward_backward(b[2], b[3], b[0], b[1], B, F, 4.0f, 0.01f);
        kl_sym_softmax_forward_backward(b[6], b[7], b[4], b[5], B, N, 4.0f, 0.1f);
        break;
    }
    case U_ADAM: mrm_optimizer_step(&s->opt, b[0], b[1]); break;
    }
}

/* ---- timing ------------------------------------------------------------------------------------ */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static double least(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

/* Best (least) ms of iters runs of the forward (what 0), the backward (1); one warm-up run
 * first. The least time, not the median: on a machine shared with other work the units of a
 * millisecond or less are otherwise measured as scheduler ticks. */
static double time_unit(state *s, const lunit *u, int what, int train, int iters) {
    double best = 1e30;
    for (int i = -1; i < iters; i++) {
        double t0 = now_ms();
        if (what == 0) unit_forward(s, u, train);
        else unit_backward(s, u);
        double t = now_ms() - t0;
        if (i >= 0 && t < best) best = t;
    }
    return best;
}

static void unit_name(const lunit *u, char *buf, size_t n) {
    switch (u->kind) {
    case U_CBN:
        snprintf(buf, n, "conv %d->%d k%d s%d%s L%d +BN%s", u->cin, u->cout, u->k, u->stride,
                 u->groups > 1 ? (u->k == 7 ? " grouped(gate)" : " grouped(SE)") : "", u->lin, u->relu ? "+ReLU" : "");
        break;
    case U_POOL_S1: snprintf(buf, n, "maxpool k2 s1 (%d, %d)", u->cin, u->lin); break;
    case U_POOL2: snprintf(buf, n, "maxpool 2 (%d, %d)", u->cin, u->lin); break;
    case U_DROPOUT_ADD: snprintf(buf, n, "dropout + shortcut (%d, %d)", u->cin, u->lin); break;
    case U_ADD_RELU: snprintf(buf, n, "residual add + ReLU (%d, %d)", u->cin, u->lin); break;
    case U_GATE: snprintf(buf, n, "gate: GAP, hardsigmoid, scale, add (%d, %d)", u->cin, u->lin); break;
    case U_SE: snprintf(buf, n, "SE: GAP, fc, fc, sigmoid, scale, add (%d, %d)", u->cin, u->lin); break;
    case U_ATTENTION: snprintf(buf, n, "channel+spatial attention, LayerNorm (%d, %d)", u->cin, u->lin); break;
    case U_HEAD: snprintf(buf, n, "head: GAP, LayerNorm, Linear (%d)", u->cin); break;
    case U_LOSS: snprintf(buf, n, "loss: BCE x2, KL4 features x2, KL4 logits x2 + gradients"); break;
    case U_ADAM: snprintf(buf, n, "Adam step"); break;
    }
}

/* The whole model, for comparison with the sum of its parts. */
typedef struct whole_times {
    double fwd, bwd, adam, infer;
} whole_times;

static void time_whole(int Bt, int Bi, const mrm_model_config *cfg0, int iters, int iters_infer, whole_times *w) {
    mrm_error err = {0};
    mrm_model *m = NULL;
    mrm_infer *inf = NULL;
    mrm_optimizer opt = {0};
    mrm_model_config cfg = *cfg0;
    int N = cfg.n_classes;
    mrm_rng rng;
    mrm_rng_seed(&rng, 7);
    size_t nx = (size_t)Bt * 12 * 1000;
    float *x = malloc(nx * sizeof(float)), *y = malloc((size_t)Bt * N * sizeof(float));
    if (!x || !y || mrm_model_create(&m, &cfg, &err) || mrm_infer_create(&inf, m, Bi, &err) ||
        mrm_optimizer_init(&opt, MRM_OPT_ADAM, mrm_model_num_params(m), &err)) {
        fprintf(stderr, "bench_layers: %s\n", err.msg[0] ? err.msg : "out of memory");
        exit(1);
    }
    for (size_t i = 0; i < nx; i++) x[i] = mrm_rng_uniform_range(&rng, -1.7f, 1.7f);
    for (int i = 0; i < Bt * N; i++) y[i] = mrm_rng_uniform(&rng) < 0.3f;
    double tf[256], tb[256], ta[256], ti[256];
    if (iters > 256) iters = 256;
    if (iters_infer > 256) iters_infer = 256;
    mrm_loss loss;
    for (int i = -1; i < iters; i++) {
        mrm_model_zero_grad(m);
        double t0 = now_ms();
        if (mrm_model_forward(m, x, Bt, 1, &rng, &err)) break;
        double t1 = now_ms();
        if (mrm_model_backward(m, y, &loss, &err)) break;
        double t2 = now_ms();
        mrm_optimizer_step(&opt, mrm_model_params(m), mrm_model_grads(m));
        double t3 = now_ms();
        if (i >= 0) tf[i] = t1 - t0, tb[i] = t2 - t1, ta[i] = t3 - t2;
    }
    for (int i = -2; i < iters_infer && !err.msg[0]; i++) {
        double t0 = now_ms();
        if (mrm_infer_run(inf, x, Bi, NULL, NULL, &err)) break;
        if (i >= 0) ti[i] = now_ms() - t0;
    }
    if (err.msg[0]) {
        fprintf(stderr, "bench_layers: %s\n", err.msg);
        exit(1);
    }
    w->fwd = least(tf, iters), w->bwd = least(tb, iters), w->adam = least(ta, iters);
    w->infer = least(ti, iters_infer);
    mrm_optimizer_free(&opt);
    mrm_infer_free(inf);
    mrm_model_free(m);
    free(x);
    free(y);
}

#define MAX_LUNITS 128

int main(int argc, char **argv) {
    int Bt = 96, Bi = 1, iters = 3, iters_infer = 20, N = 5;
    const char *json_path = NULL, *variant = "";
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--train-batch") && has) Bt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--infer-batch") && has) Bi = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && has) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--infer-iters") && has) iters_infer = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && has) json_path = argv[++i];
        else if (!strcmp(argv[i], "--variant") && has) variant = argv[++i];
        else {
            fprintf(stderr, "usage: bench_layers [--train-batch 96] [--infer-batch 1] [--iters 3] "
                            "[--infer-iters 20] [--json FILE] [--variant K=V,...]\n");
            return 2;
        }
    }
    if (Bt < 2 || Bi < 1 || iters < 1 || iters_infer < 1) {
        fprintf(stderr, "bench_layers: batches and iterations must be positive (train batch >= 2)\n");
        return 2;
    }
    lunit units[MAX_LUNITS];
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    cfg.n_classes = N;
    mrm_model *model = NULL;
    mrm_error err = {0};
    if (mrm_model_config_parse(&cfg, variant, &err) || mrm_model_create(&model, &cfg, &err)) {
        fprintf(stderr, "bench_layers: %s\n", err.msg);
        return 2;
    }
    int nu = build_units(units, model);
    size_t n_params = mrm_model_num_params(model);
    double fwd[MAX_LUNITS], bwd[MAX_LUNITS], inf[MAX_LUNITS];
    nn_fft *fft = nn_fft_create(); /* as the model: the FFT path for the 33-tap convolutions */
    printf("threads %d, training batch %d, inference batch %d; least ms of %d (training) and %d (inference) runs\n",
           omp_get_max_threads(), Bt, Bi, iters, iters_infer);
    printf("%-18s %-58s %10s %10s %10s\n", "block", "unit", "train fwd", "train bwd", "infer");
    for (int i = 0; i < nu; i++) {
        const lunit *u = &units[i];
        state s = {.B = Bt, .N = N, .n_params = n_params};
        mrm_rng_seed(&s.rng, 11 + (uint64_t)i);
        alloc_state(&s, u);
        s.ctx.fft = fft;
        unit_forward(&s, u, 1); /* the saved values the backward reads */
        fwd[i] = time_unit(&s, u, 0, 1, iters);
        bwd[i] = time_unit(&s, u, 1, 1, iters);
        free_state(&s);
        inf[i] = 0;
        if (u->kind != U_LOSS && u->kind != U_ADAM) {
            state si = {.B = Bi, .N = N, .n_params = n_params};
            mrm_rng_seed(&si.rng, 11 + (uint64_t)i);
            alloc_state(&si, u);
            si.ctx.fft = fft;
            inf[i] = time_unit(&si, u, 0, 0, iters_infer);
            free_state(&si);
        }
        char name[128];
        unit_name(u, name, sizeof name);
        printf("%-18s %-58s %10.3f %10.3f %10.4f\n", u->group, name, fwd[i], bwd[i], inf[i]);
        fflush(stdout);
    }
    whole_times w;
    time_whole(Bt, Bi, &cfg, iters, iters_infer, &w);

    /* groups in model order */
    const char *gname[16];
    double gf[16] = {0}, gb[16] = {0}, gi[16] = {0}, sf = 0, sb = 0, si = 0;
    int ng = 0;
    for (int i = 0; i < nu; i++) {
        int g = 0;
        while (g < ng && strcmp(gname[g], units[i].group)) g++;
        if (g == ng) gname[ng++] = units[i].group;
        gf[g] += fwd[i], gb[g] += bwd[i], gi[g] += inf[i];
        sf += fwd[i], sb += bwd[i], si += inf[i];
    }
    printf("\n%-18s %12s %12s %12s %12s\n", "block", "train fwd", "train bwd", "train total", "infer");
    for (int g = 0; g < ng; g++)
        printf("%-18s %12.2f %12.2f %12.2f %12.3f\n", gname[g], gf[g], gb[g], gf[g] + gb[g], gi[g]);
    printf("%-18s %12.2f %12.2f %12.2f %12.3f\n", "sum of the parts", sf, sb, sf + sb, si);
    printf("%-18s %12.2f %12.2f %12.2f %12.3f   (backward column: loss + backward + Adam)\n", "whole model", w.fwd,
           w.bwd + w.adam, w.fwd + w.bwd + w.adam, w.infer);

    if (json_path) {
        json_t *root = json_object(), *ju = json_array(), *jg = json_array(), *jw = json_object();
        json_object_set_new(root, "threads", json_integer(omp_get_max_threads()));
        json_object_set_new(root, "train_batch", json_integer(Bt));
        json_object_set_new(root, "infer_batch", json_integer(Bi));
        json_object_set_new(root, "iters", json_integer(iters));
        json_object_set_new(root, "infer_iters", json_integer(iters_infer));
        for (int i = 0; i < nu; i++) {
            char name[128];
            unit_name(&units[i], name, sizeof name);
            json_array_append_new(ju, json_pack("{s:s, s:s, s:f, s:f, s:f}", "block", units[i].group, "unit", name,
                                                "train_fwd_ms", fwd[i], "train_bwd_ms", bwd[i], "infer_ms", inf[i]));
        }
        for (int g = 0; g < ng; g++)
            json_array_append_new(jg, json_pack("{s:s, s:f, s:f, s:f}", "block", gname[g], "train_fwd_ms", gf[g],
                                                "train_bwd_ms", gb[g], "infer_ms", gi[g]));
        json_object_set_new(jw, "train_fwd_ms", json_real(w.fwd));
        json_object_set_new(jw, "train_bwd_ms", json_real(w.bwd));
        json_object_set_new(jw, "adam_ms", json_real(w.adam));
        json_object_set_new(jw, "infer_ms", json_real(w.infer));
        json_object_set_new(root, "units", ju);
        json_object_set_new(root, "blocks", jg);
        json_object_set_new(root, "whole", jw);
        json_object_set_new(root, "sum_of_parts",
                            json_pack("{s:f, s:f, s:f}", "train_fwd_ms", sf, "train_bwd_ms", sb, "infer_ms", si));
        char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        mrm_error err = {0};
        int bad = !text || mrm_write_file_atomic(json_path, text, strlen(text), &err);
        free(text);
        json_decref(root);
        if (bad) {
            fprintf(stderr, "bench_layers: %s\n", err.msg[0] ? err.msg : "cannot write the JSON");
            return 1;
        }
    }
    nn_fft_free(fft);
    mrm_model_free(model);
    return 0;
}
