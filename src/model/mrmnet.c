/* MRM-Net: forward and backward of the whole network (spec sections 3-5), block by block.
 * Each block has a forward that saves what its backward needs, and a backward that ACCUMULATES
 * into the gradient of its input (din, may be NULL for the network input) and of its
 * parameters. Shapes: B batch, C channels, L time steps; every map is (B, C, L). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/bigalloc.h"
#include "common/error.h"
#include "common/rng.h"
#include "model/model_internal.h"

/* ---- the gradient stack ------------------------------------------------------------------- */

static gmark gmark_get(const gstack *g) { return (gmark){g->cur, g->used}; }
static void gpop(gstack *g, gmark mk) {
    g->cur = mk.cur;
    g->used = mk.used;
}

/* Zeroes n floats, in parallel when large. */
static void zero_floats(float *p, size_t n) {
    if (n < (1u << 18)) {
        memset(p, 0, n * sizeof(float));
        return;
    }
    size_t step = 1u << 16, nb = (n + step - 1) / step;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nb; i++) memset(p + i * step, 0, sizeof(float) * (i + 1 < nb ? step : n - i * step));
}

/* n floats (zeroed if `zero`), valid until popped. Chunks are kept for the next steps. */
static float *gpush(gstack *g, size_t n, size_t min_chunk, int zero) {
    for (;;) {
        if (g->cur < g->nchunks) {
            if (g->used + n <= g->cap[g->cur]) {
                float *p = g->chunk[g->cur] + g->used;
                g->used += n;
                if (zero) zero_floats(p, n);
                return p;
            }
            if (g->cur + 1 < g->nchunks) {
                g->cur++;
                g->used = 0;
                continue;
            }
        }
        if (g->nchunks == GSTACK_CHUNKS) break;
        size_t cap = n > min_chunk ? n : min_chunk;
        float *c = mrm_alloc_large(cap * sizeof(float));
        if (!c) break;
        g->chunk[g->nchunks] = c;
        g->cap[g->nchunks] = cap;
        g->cur = g->nchunks++;
        g->used = 0;
    }
    /* out of memory: the rest of this backward writes into the sink (the result is discarded
     * and the backward reports MRM_ERR_NOMEM) rather than through a NULL pointer */
    g->failed = 1;
    return n <= g->sink_floats ? g->sink : NULL;
}

/* Frees the chunks (the sink belongs to the activation plan). */
static void gstack_free(gstack *g) {
    for (int i = 0; i < g->nchunks; i++) free(g->chunk[i]);
    float *sink = g->sink;
    size_t sink_floats = g->sink_floats;
    memset(g, 0, sizeof *g);
    g->sink = sink;
    g->sink_floats = sink_floats;
}

#define GSTACK_MIN_CHUNK(m) ((size_t)(m)->B * (size_t)mrm_model_feature_size(m) * 16)
#define GPUSH(m, n) gpush(&(m)->gs, (n), GSTACK_MIN_CHUNK(m), 1)
#define GPUSH_RAW(m, n) gpush(&(m)->gs, (n), GSTACK_MIN_CHUNK(m), 0)

/* ---- create, free, accessors ------------------------------------------------------------- */

/* A model with its architecture set (normalized) and nothing allocated. */
static mrm_model *skeleton(const mrm_model_config *cfg) {
    mrm_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = *cfg;
    mrm_model_config_normalize(&m->cfg);
    m->dropout = 0.2f;
    m->loss_scale = 1.0f;
    m->w = cfg->width;
    return m;
}

int mrm_model_walk_config(const mrm_model_config *cfg, model_tensor_fn fn, void *ctx, mrm_error *err) {
    if (!cfg) {
        mrm_fail(err, MRM_ERR_INVALID, "model: no config");
        return -1;
    }
    if (mrm_model_config_check(cfg, err)) return -1;
    mrm_model *m = skeleton(cfg);
    if (!m) {
        mrm_fail(err, MRM_ERR_NOMEM, "model: out of memory");
        return -1;
    }
    int r = model_walk(m, fn, ctx);
    free(m);
    return r;
}

mrm_status mrm_model_create(mrm_model **out, const mrm_model_config *cfg, mrm_error *err) {
    *out = NULL;
    mrm_status cs = mrm_model_config_check(cfg, err);
    if (cs) return cs;
    mrm_model *m = skeleton(cfg);
    if (!m) return mrm_fail(err, MRM_ERR_NOMEM, "model: out of memory");
    mrm_status s = model_build(m, err);
    if (s) {
        mrm_model_free(m);
        return s;
    }
    mrm_model_init(m, 0);
    *out = m;
    return MRM_OK;
}

void mrm_model_free(mrm_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) free((char *)m->tensors[i].name);
    free(m->tensors);
    free(m->init);
    free(m->bound);
    free(m->params);
    free(m->pos_weight);
    free(m->sync_buf);
    free(m->grads);
    free(m->stats);
    free(m->counts);
    for (int i = 0; i < m->n_units; i++)
        if (m->units[i].kind == UNIT_BASESCALE) {
            free(m->units[i].p.bs.w33);
            free(m->units[i].p.bs.dw33);
        }
    free(m->act);
    free(m->ctx.scratch);
    for (int i = 0; i < MAX_BRANCHES; i++) free(m->branch_ctx[i].scratch);
    nn_fft_free(m->fft);
    gstack_free(&m->gs);
    free(m->gs.sink);
    free(m);
}

const mrm_model_config *mrm_model_config_of(const mrm_model *m) { return &m->cfg; }
mrm_status mrm_model_set_config(mrm_model *m, const mrm_model_config *cfg, mrm_error *err) {
    mrm_status s = mrm_model_config_check(cfg, err);
    if (s) return s;
    mrm_model_config c = *cfg;
    mrm_model_config_normalize(&c);
    const char *d = mrm_model_config_diff(&m->cfg, &c, 1);
    if (d) return mrm_fail(err, MRM_ERR_INVALID, "model: %s differs from the model's (it shapes the weights)", d);
    m->cfg = c;
    return MRM_OK;
}
size_t mrm_model_num_params(const mrm_model *m) { return m->n_params; }
float *mrm_model_params(mrm_model *m) { return m->params; }
float *mrm_model_grads(mrm_model *m) { return m->grads; }
void mrm_model_zero_grad(mrm_model *m) { zero_floats(m->grads, m->n_params); }
int mrm_model_feature_size(const mrm_model *m) { return m->units[m->feat_unit[0]].c * m->units[m->feat_unit[0]].L; }
int mrm_model_num_heads(const mrm_model *m) { return m->n_out; }
int mrm_model_num_branches(const mrm_model *m) { return m->n_branches; }
int mrm_model_num_tensors(const mrm_model *m) { return m->n_tensors; }
const mrm_tensor *mrm_model_tensor(const mrm_model *m, int i) {
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}
int mrm_model_find_tensor(const mrm_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return i;
    return -1;
}
void mrm_model_set_batch_sync(mrm_model *m, mrm_sum_fn fn, void *ctx, int leader) {
    m->sync_fn = fn;
    m->sync_ctx = ctx;
    m->sync_leader = leader;
}
void mrm_model_set_loss_scale(mrm_model *m, float scale) { m->loss_scale = scale; }
void mrm_model_set_dropout(mrm_model *m, float p) { m->dropout = p < 0.0f ? 0.0f : p >= 1.0f ? 0.999f : p; }

mrm_status mrm_model_set_pos_weight(mrm_model *m, const float *pos_weight, mrm_error *err) {
    const int N = m->cfg.n_classes;
    if (!pos_weight) {
        free(m->pos_weight);
        m->pos_weight = NULL;
        return MRM_OK;
    }
    for (int k = 0; k < N; k++)
        if (!(pos_weight[k] > 0.0f) || !isfinite(pos_weight[k]))
            return mrm_fail(err, MRM_ERR_INVALID, "pos_weight of class %d is %g (must be positive)", k, (double)pos_weight[k]);
    float *w = m->pos_weight ? m->pos_weight : malloc((size_t)N * sizeof *w);
    if (!w) return mrm_fail(err, MRM_ERR_NOMEM, "pos_weight: out of memory");
    memcpy(w, pos_weight, (size_t)N * sizeof *w);
    m->pos_weight = w;
    return MRM_OK;
}

void mrm_model_init(mrm_model *m, uint64_t seed) {
    mrm_rng rng;
    mrm_rng_seed(&rng, seed);
    for (int t = 0; t < m->n_tensors; t++) {
        mrm_tensor *x = &m->tensors[t];
        if (x->is_int64) {
            ((int64_t *)x->data)[0] = 0;
            continue;
        }
        float *d = x->data;
        for (long long i = 0; i < x->numel; i++)
            d[i] = m->init[t] == INIT_UNIFORM ? mrm_rng_uniform_range(&rng, -m->bound[t], m->bound[t])
                   : m->init[t] == INIT_ONE   ? 1.0f
                                              : 0.0f;
    }
}

mrm_status mrm_model_copy_weights(mrm_model *dst, const mrm_model *src, mrm_error *err) {
    const char *d = mrm_model_config_diff(&dst->cfg, &src->cfg, 1);
    if (d) return mrm_fail(err, MRM_ERR_INVALID, "model: copy between different architectures (%s differs)", d);
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
    memcpy(dst->stats, src->stats, src->n_stats * sizeof(float));
    memcpy(dst->counts, src->counts, src->n_counts * sizeof(int64_t));
    return MRM_OK;
}

/* ---- activation memory ---------------------------------------------------------------------- */

typedef struct planner {
    int folded;
    float *base;
    size_t used;
    size_t scratch;
    int B;
    const nn_ctx *ctx; /* its FFT plans decide what the convolutions keep for their backward */
} planner;

static float *take(planner *p, size_t n) {
    float *r = p->base ? p->base + p->used : NULL;
    p->used += (n + 15) / 16 * 16; /* 64-byte alignment of every buffer */
    return r;
}

static void plan_cbn(planner *p, cbn *u) {
    size_t n = (size_t)p->B * u->conv.cout * u->lout;
    u->z = take(p, n);
    u->y = p->folded ? u->z : take(p, n); /* folded: conv output and unit output share */
    u->mean = take(p, (size_t)u->conv.cout);
    u->rstd = take(p, (size_t)u->conv.cout);
    u->scale = take(p, (size_t)u->conv.cout);
    u->shift = take(p, (size_t)u->conv.cout);
    const conv_p *c = &u->conv;
    u->keep_floats = p->folded ? 0 : conv1d_keep_floats(p->ctx, p->B, c->cin, u->lin, c->cout, c->k, c->stride, c->pad,
                                                        c->groups);
    u->keep = u->keep_floats ? take(p, u->keep_floats) : NULL;
    u->kept = 0;
    size_t s = conv1d_scratch_floats(p->B, u->conv.cin, u->lin, u->conv.cout, u->conv.k, u->conv.stride, u->conv.pad,
                                     u->conv.groups);
    if (s > p->scratch) p->scratch = s;
}

static void plan_block(planner *p, block *k) {
    size_t B = (size_t)p->B, n = B * k->c * k->L;
    plan_cbn(p, &k->c1);
    if (k->kind == BLK_BASIC) {
        plan_cbn(p, &k->c2);
        if (k->has_ds) plan_cbn(p, &k->ds);
    } else {
        k->gap = take(p, B * k->c);
        k->gate = take(p, B * k->c);
        if (k->kind == BLK_SE) {
            k->hid = take(p, B * (k->c / 4));
            k->pre = take(p, B * k->c);
        }
    }
    k->out = take(p, n);
}

static void plan_fusion(planner *p, fusion *f) {
    size_t B = (size_t)p->B, c = (size_t)f->c, L = (size_t)f->L;
    f->xmax = take(p, B * c);
    f->xavg = take(p, B * c);
    f->h_max = take(p, B * (c / 8));
    f->h_avg = take(p, B * (c / 8));
    f->z_max = take(p, B * c);
    f->z_avg = take(p, B * c);
    f->y_max = take(p, B * c);
    f->y_avg = take(p, B * c);
    f->mean_max = take(p, c);
    f->rstd_max = take(p, c);
    f->mean_avg = take(p, c);
    f->rstd_avg = take(p, c);
    f->ca = take(p, B * c);
    f->maxmean = take(p, B * 2 * L);
    plan_cbn(p, &f->sp);
    f->sa = take(p, B * L);
    f->cat = take(p, B * 2 * c * L);
    f->f = take(p, B * 2 * c * L);
    f->ln_mean = take(p, B * L);
    f->ln_rstd = take(p, B * L);
    for (int j = 0; j < 4; j++) plan_block(p, &f->layer[j]);
}

static void plan_unit(planner *p, unit *u, int N) {
    size_t B = (size_t)p->B;
    switch (u->kind) {
    case UNIT_STEM:
        plan_cbn(p, &u->p.stem);
        u->out = take(p, B * u->c * u->L);
        break;
    case UNIT_BASESCALE: {
        basescale *s = &u->p.bs;
        size_t n = B * s->cout * s->lout;
        plan_cbn(p, &s->shortcut);
        plan_cbn(p, &s->ms);
        s->shortcut_pool = take(p, n);
        s->ms_pool = take(p, n);
        s->drop_mask = take(p, n);
        s->out = take(p, n);
        u->out = s->out;
        break;
    }
    case UNIT_BLOCK:
        plan_block(p, &u->p.blk);
        u->out = u->p.blk.out;
        break;
    case UNIT_FUSION:
        plan_fusion(p, &u->p.fu);
        u->out = u->p.fu.layer[3].out;
        break;
    case UNIT_HEAD: {
        head *h = &u->p.hd;
        h->gap = take(p, B * h->c);
        h->n = take(p, B * h->c);
        h->mean = take(p, B);
        h->rstd = take(p, B);
        h->logits = take(p, B * N);
        u->out = h->logits;
        break;
    }
    case UNIT_SUM:
        u->out = take(p, B * N);
        break;
    }
}

static void plan_all(mrm_model *m, planner *p) {
    for (int i = 0; i < m->n_units; i++) plan_unit(p, &m->units[i], m->cfg.n_classes);
}

/* Sizes the activations for B samples and the scratch for the caller's thread count (grows
 * only): the ops' per-thread buffers follow omp_get_max_threads() at the call, and with too few
 * of them a fast path would decline and leave threads idle. */
mrm_status model_plan(mrm_model *m, int B, mrm_error *err) {
    int nt = omp_get_max_threads();
    if (B <= m->planned_B && nt <= m->planned_threads) return MRM_OK;
    if (B < m->planned_B) B = m->planned_B;
    if (!m->fft) m->fft = nn_fft_create(); /* the FFT plans of the multi-scale convolutions */
    if (!m->fft) return mrm_fail(err, MRM_ERR_NOMEM, "model: cannot allocate the FFT plans");
    nn_ctx plan_ctx = {NULL, 0, m->fft};
    planner p = {.B = B, .folded = m->folded, .ctx = &plan_ctx};
    plan_all(m, &p);
    float *act = mrm_alloc_large(p.used * sizeof(float));
    float *scr = mrm_alloc_large((p.scratch ? p.scratch : 1) * sizeof(float));
    /* the gradient stack's fallback: the largest single gradient buffer, (B, 2F) */
    size_t sink_floats = (size_t)B * 2 * (size_t)mrm_model_feature_size(m);
    float *sink = m->folded ? NULL : mrm_alloc_large(sink_floats * sizeof(float));
    if (!act || !scr || (!m->folded && !sink)) {
        free(act);
        free(scr);
        free(sink);
        return mrm_fail(err, MRM_ERR_NOMEM, "model: cannot allocate activations for a batch of %d (%zu MB)", B,
                        p.used * sizeof(float) >> 20);
    }
    free(m->act);
    free(m->ctx.scratch);
    gstack_free(&m->gs); /* its chunk size follows the batch */
    free(m->gs.sink);
    m->gs.sink = sink;
    m->gs.sink_floats = sink ? sink_floats : 0;
    m->act = act;
    m->act_floats = p.used;
    m->ctx.scratch = scr;
    m->ctx.scratch_floats = p.scratch;
    m->ctx.fft = m->fft;
    for (int i = 0; i < MAX_BRANCHES; i++) m->branch_ctx[i].fft = m->fft;
    planner q = {.B = B, .base = act, .folded = m->folded, .ctx = &plan_ctx};
    plan_all(m, &q);
    m->planned_B = B;
    m->planned_threads = nt;
    return MRM_OK;
}

/* ---- units -------------------------------------------------------------------------------- */

/* out[b, c, t] = in[b, c, t] + bias[c] (out may alias in). */
static void bias_forward(float *out, const float *in, const float *bias, int B, int C, int L) {
#pragma omp parallel for collapse(2) if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)b * C + c) * L;
            float v = bias[c];
            for (int t = 0; t < L; t++) out[o + t] = in[o + t] + v;
        }
}

/* Fused epilogues of the folded (inference) path: bias, ReLU, pooling, residual in one pass.
 * With a bias b and ReLU both monotone, relu(max(z1, z2) + b) = max(relu(z1 + b), relu(z2 + b))
 * exactly, so pooling before the bias gives the same bits. (Comparisons rather than fmaxf:
 * they vectorise.) */
static inline float max2(float a, float b) { return a > b ? a : b; }
static inline float relu1(float a) { return a > 0.0f ? a : 0.0f; }

/* out (B, C, L+1) = MaxPool(k2, s1, p1)(relu(z + bias)), z (B, C, L). */
static void bias_relu_pool2s1(float *out, const float *z, const float *bias, int B, int C, int L) {
#pragma omp parallel for collapse(2) if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *zi = z + ((size_t)b * C + c) * L;
            float *o = out + ((size_t)b * C + c) * (L + 1), v = bias[c];
            o[0] = relu1(zi[0] + v);
            for (int t = 1; t < L; t++) o[t] = relu1(max2(zi[t - 1], zi[t]) + v);
            o[L] = relu1(zi[L - 1] + v);
        }
}

/* out (B, C, L/2) = MaxPool(2)(relu(z + bias)) [+ add (B, C, L/2)], z (B, C, L). */
static void bias_relu_pool2(float *out, const float *z, const float *bias, const float *add, int B, int C, int L) {
    int Lo = L / 2;
#pragma omp parallel for collapse(2) if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *zi = z + ((size_t)b * C + c) * L;
            size_t oo = ((size_t)b * C + c) * Lo;
            float v = bias[c];
            if (add)
                for (int t = 0; t < Lo; t++) out[oo + t] = add[oo + t] + relu1(max2(zi[2 * t], zi[2 * t + 1]) + v);
            else
                for (int t = 0; t < Lo; t++) out[oo + t] = relu1(max2(zi[2 * t], zi[2 * t + 1]) + v);
        }
}

/* out = relu(z + bias[c] + sc (+ sc_bias[c])) (B, C, L): the end of a folded BasicBlock. */
static void bias_add_relu(float *out, const float *z, const float *bias, const float *sc, const float *sc_bias, int B, int C,
                          int L) {
#pragma omp parallel for collapse(2) if ((size_t)B * C * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)b * C + c) * L;
            float v = bias[c] + (sc_bias ? sc_bias[c] : 0.0f);
            for (int t = 0; t < L; t++) out[o + t] = relu1(z[o + t] + v + sc[o + t]);
        }
}

/* BN in the mode of the current forward; in training counts the call. */
static void bn_forward(mrm_model *m, bn_p *bn, float *out, const float *in, float *mean, float *rstd, int C, int L) {
    if (m->trained_forward && m->sync_fn) {
        if (batchnorm_forward_train_sync(m, out, mean, rstd, bn->running_mean, bn->running_var, in, bn->gamma, bn->beta, m->B,
                                         C, L, BN_EPS, BN_MOMENTUM))
            m->sync_failed = 1;
        (*bn->num_batches_tracked)++;
    } else if (m->trained_forward) {
        batchnorm_forward_train(out, mean, rstd, bn->running_mean, bn->running_var, in, bn->gamma, bn->beta, m->B, C, L,
                                BN_EPS, BN_MOMENTUM);
        (*bn->num_batches_tracked)++;
    } else if (m->folded) {
        bias_forward(out, in, bn->beta, m->B, C, L);
    } else {
        batchnorm_forward_eval(out, in, bn->gamma, bn->beta, bn->running_mean, bn->running_var, m->B, C, L, BN_EPS);
    }
}

/* in (B, cin, lin) -> z = conv(in), y = relu?(bn(z)) (B, cout, lout). */
/* Folded model: z (= y) = act(conv(in) + bias), with the unit's prepared weights. */
static void conv_folded(mrm_model *m, nn_ctx *ctx, cbn *u, const float *in, const float *bias, int relu) {
    const conv_p *c = &u->conv;
    conv1d_bias_act_forward_prepared(ctx, u->z, in, c->w, c->prep, bias, relu, m->B, c->cin, u->lin, c->cout, c->k,
                                     c->stride, c->pad, c->groups);
}

/* The unit's convolution (not folded) into z; in training, with what its backward would compute
 * from in again kept where the unit keeps it. */
static void cbn_conv(mrm_model *m, nn_ctx *ctx, cbn *u, const float *in) {
    const conv_p *c = &u->conv;
    if (u->keep && m->trained_forward)
        u->kept = conv1d_forward_keep(ctx, u->z, in, c->w, m->B, c->cin, u->lin, c->cout, c->k, c->stride, c->pad,
                                      c->groups, u->keep, u->keep_floats);
    else {
        conv1d_forward(ctx, u->z, in, c->w, m->B, c->cin, u->lin, c->cout, c->k, c->stride, c->pad, c->groups);
        u->kept = 0;
    }
}

static void cbn_forward(mrm_model *m, nn_ctx *ctx, cbn *u, const float *in) {
    const conv_p *c = &u->conv;
    if (m->folded) { /* conv with bias and ReLU in its epilogue */
        conv_folded(m, ctx, u, in, u->bn.beta, u->relu);
        return;
    }
    cbn_conv(m, ctx, u, in);
    if (m->trained_forward && m->sync_fn) {
        const bn_p *bn = &u->bn;
        if (bn_relu_forward_train_sync(m, u->y, u->mean, u->rstd, bn->running_mean, bn->running_var, u->z, bn->gamma,
                                       bn->beta, m->B, c->cout, u->lout, BN_EPS, BN_MOMENTUM, u->relu))
            m->sync_failed = 1;
        (*bn->num_batches_tracked)++;
        return;
    }
    if (m->trained_forward) { /* BN + ReLU in one go */
        const bn_p *bn = &u->bn;
        bn_relu_forward_train(u->y, u->mean, u->rstd, u->scale, u->shift, bn->running_mean, bn->running_var, u->z,
                              bn->gamma, bn->beta, m->B, c->cout, u->lout, BN_EPS, BN_MOMENTUM, u->relu);
        (*bn->num_batches_tracked)++;
        return;
    }
    const bn_p *bn = &u->bn;
    bn_relu_forward_eval(u->y, u->z, bn->gamma, bn->beta, bn->running_mean, bn->running_var, m->B, c->cout, u->lout, BN_EPS,
                         u->relu);
}

/* The folded unit's conv alone into z (its bias is applied by a fused epilogue). */
static void conv_only(mrm_model *m, nn_ctx *ctx, cbn *u, const float *in) { conv_folded(m, ctx, u, in, NULL, 0); }

/* The convolution's backward from dz: din += (set: =) its data gradient, then with add, din +=
 * add where amask > 0 (inside the Winograd backward's rows when din is set there); dw += ... */
static void cbn_conv_backward(mrm_model *m, cbn *u, const float *dz, float *din, const float *in, int set,
                              const float *add, const float *amask) {
    const conv_p *c = &u->conv;
    if (set && conv1d_backward_set_plus(&m->ctx, din, c->dw, dz, in, c->w, m->B, c->cin, u->lin, c->cout, c->k,
                                        c->stride, c->pad, c->groups, add, amask))
        return;
    if (set && din) zero_floats(din, (size_t)m->B * c->cin * u->lin);
    if (u->kept && m->trained_forward)
        conv1d_backward_kept(&m->ctx, din, c->dw, dz, in, c->w, m->B, c->cin, u->lin, c->cout, c->k, c->stride, c->pad,
                             c->groups, u->keep, u->keep_floats);
    else
        conv1d_backward(&m->ctx, din, c->dw, dz, in, c->w, m->B, c->cin, u->lin, c->cout, c->k, c->stride, c->pad,
                        c->groups);
    if (add && din) relu_backward(din, add, amask, (size_t)m->B * c->cin * u->lin);
}

/* dy (B, cout, lout) -> din (B, cin, lin) += ... (set: din = ..., its old contents ignored), dw,
 * dgamma, dbeta += ... With `mask` (a unit without ReLU only), dy is taken where mask > 0 and as
 * 0 elsewhere: the gradient through a ReLU whose output is mask, applied on the fly. With `add`,
 * din += add where amask > 0 afterwards (a residual path through a ReLU), inside the Winograd
 * backward's rows when din is set there. */
static void cbn_backward_plus(mrm_model *m, cbn *u, const float *dy, const float *mask, float *din, const float *in,
                              int set, const float *add, const float *amask) {
    const conv_p *c = &u->conv;
    size_t n = (size_t)m->B * c->cout * u->lout;
    gmark mk = gmark_get(&m->gs);
    float *dz = GPUSH_RAW(m, n); /* overwritten by the fused BN + ReLU backward */
    const float *y = u->relu ? u->y : mask; /* the ReLU mask's source */
    if (m->trained_forward && m->sync_fn) {
        if (bn_relu_backward_sync(m, dz, u->bn.dgamma, u->bn.dbeta, dy, y, u->z, u->mean, u->rstd, u->bn.gamma, m->B,
                                  c->cout, u->lout))
            m->sync_failed = 1;
    } else if (m->trained_forward) /* the unit's own ReLU: its mask recomputed from z (scale, shift) */
        bn_relu_backward(dz, u->bn.dgamma, u->bn.dbeta, dy, y, u->z, u->mean, u->rstd, u->relu ? u->scale : NULL,
                         u->relu ? u->shift : NULL, u->bn.gamma, m->B, c->cout, u->lout);
    else /* after an evaluation-mode forward: BN with the running statistics */
        bn_relu_backward_eval(dz, u->bn.dgamma, u->bn.dbeta, dy, y, u->z, u->bn.gamma, u->bn.running_mean,
                              u->bn.running_var, m->B, c->cout, u->lout, BN_EPS);
    cbn_conv_backward(m, u, dz, din, in, set, add, amask);
    gpop(&m->gs, mk);
}

static void cbn_backward_masked(mrm_model *m, cbn *u, const float *dy, const float *mask, float *din, const float *in,
                                int set) {
    cbn_backward_plus(m, u, dy, mask, din, in, set, NULL, NULL);
}

static void cbn_backward_to(mrm_model *m, cbn *u, const float *dy, float *din, const float *in, int set) {
    cbn_backward_masked(m, u, dy, NULL, din, in, set);
}

static void cbn_backward(mrm_model *m, cbn *u, const float *dy, float *din, const float *in) {
    cbn_backward_to(m, u, dy, din, in, 0);
}

/* ---- conv -> BN -> ReLU -> MaxPool(window 2) ---------------------------------------------------
 * pool 1: stride 1, padding 1 (lout + 1 outputs); pool 2: stride 2 (lout / 2). In training (not
 * synchronised) the BN, ReLU and pooling are one fused pass each way and the unit's y is not
 * written; otherwise the unit's forward, then the pooling. */
static int cbn_pool_fused(const mrm_model *m) { return m->trained_forward && !m->sync_fn && !m->folded; }

static void cbn_pool_forward(mrm_model *m, nn_ctx *ctx, cbn *u, const float *in, float *out, int pool) {
    const int B = m->B, C = u->conv.cout, L = u->lout;
    if (!cbn_pool_fused(m)) {
        cbn_forward(m, ctx, u, in);
        if (pool == 1)
            maxpool2s1_forward(out, u->y, B, C, L);
        else
            maxpool2_forward(out, u->y, B, C, L);
        return;
    }
    cbn_conv(m, ctx, u, in);
    const bn_p *bn = &u->bn;
    bn_relu_pool_forward_train(out, u->mean, u->rstd, u->scale, u->shift, bn->running_mean, bn->running_var, u->z,
                               bn->gamma, bn->beta, B, C, L, BN_EPS, BN_MOMENTUM, pool);
    (*bn->num_batches_tracked)++;
}

/* dout (the pooled output's gradient) -> din += ... (set: din = ..., its old contents ignored). */
static void cbn_pool_backward(mrm_model *m, cbn *u, const float *dout, float *din, const float *in, int set, int pool) {
    const int B = m->B, C = u->conv.cout, L = u->lout;
    gmark mk = gmark_get(&m->gs);
    float *d = GPUSH_RAW(m, (size_t)B * C * L); /* dz when fused, else the BN output's gradient */
    if (cbn_pool_fused(m)) {
        float *work = GPUSH_RAW(m, bn_relu_pool_backward_work(B, L));
        bn_relu_pool_backward(d, u->bn.dgamma, u->bn.dbeta, dout, u->z, u->mean, u->rstd, u->scale, u->shift,
                              u->bn.gamma, B, C, L, pool, work);
        cbn_conv_backward(m, u, d, din, in, set, NULL, NULL);
    } else {
        if (pool == 1)
            maxpool2s1_backward_set(d, dout, u->y, B, C, L);
        else
            maxpool2_backward_set(d, dout, u->y, B, C, L);
        cbn_backward_to(m, u, d, din, in, set);
    }
    gpop(&m->gs, mk);
}

/* ---- stem unit: conv -> BN -> ReLU -> MaxPool(k2, s1, p1) ------------------------------------ */

static void stem_forward(mrm_model *m, nn_ctx *ctx, unit *su, const float *in) {
    cbn *u = &su->p.stem;
    if (m->folded) {
        conv_only(m, ctx, u, in);
        bias_relu_pool2s1(su->out, u->z, u->bn.beta, m->B, u->conv.cout, u->lout);
    } else
        cbn_pool_forward(m, ctx, u, in, su->out, 1);
}

/* din (NULL for the network input) accumulates, or with `set` is set (its old contents ignored). */
static void stem_backward(mrm_model *m, unit *su, const float *dout, float *din, const float *in, int set) {
    cbn_pool_backward(m, &su->p.stem, dout, din, in, set && din, 1);
}

/* ---- BaseScale: (B, 4w, 1004) -> (B, cout, L/stride/2) ------------------------------------- */

static void basescale_forward(mrm_model *m, nn_ctx *ctx, basescale *s, const float *in, mrm_rng *rng, uint64_t unit_index) {
    size_t n = (size_t)m->B * s->cout * s->lout;
    if (m->folded) { /* shortcut pool + pool(relu(ms conv + bias)), no dropout */
        conv_only(m, ctx, &s->shortcut, in);
        bias_relu_pool2(s->shortcut_pool, s->shortcut.z, s->shortcut.bn.beta, NULL, m->B, s->cout, s->shortcut.lout);
        conv_only(m, ctx, &s->ms, in);
        bias_relu_pool2(s->out, s->ms.z, s->ms.bn.beta, s->shortcut_pool, m->B, s->cout, s->ms.lout);
        return;
    }
    cbn_pool_forward(m, ctx, &s->shortcut, in, s->shortcut_pool, 2);
    basescale_merge(s, s->w33); /* the mean of conv1..4 as one 33-tap conv */
    cbn_pool_forward(m, ctx, &s->ms, in, s->ms_pool, 2);
    if (m->dropout_applied) { /* out = shortcut + dropout(ms), in one pass */
        if (m->drop_keys) /* each record's masks from its own key and the unit */
            dropout_add_forward_keyed(s->out, s->drop_mask, s->ms_pool, s->shortcut_pool, m->B, n / (size_t)m->B,
                                      m->dropout, m->drop_keys, unit_index + 1);
        else
            dropout_add_forward(s->out, s->drop_mask, s->ms_pool, s->shortcut_pool, n, m->dropout, rng);
        return;
    }
    add_forward(s->out, s->shortcut_pool, s->ms_pool, n);
}

static void basescale_backward(mrm_model *m, basescale *s, const float *dout, float *din, const float *in) {
    size_t n = (size_t)m->B * s->cout * s->lout;
    gmark mk = gmark_get(&m->gs);
    const float *dp = dout;
    if (m->dropout_applied) {
        float *t = GPUSH_RAW(m, n);
        dropout_backward_set(t, dout, s->drop_mask, n);
        dp = t;
    }
    const long npair = (long)s->cout * s->conv[0].cin;
    zero_floats(s->dw33, (size_t)npair * MS_TAPS);
    cbn_pool_backward(m, &s->ms, dp, din, in, 0, 2);
    /* dW_k = the centre slice of dW33, / 4; the (o, i) pairs shared out (serially a few tenths
     * of a millisecond a step) */
#pragma omp parallel for if (npair * MS_TAPS > 65536) schedule(static)
    for (long oi = 0; oi < npair; oi++)
        for (int q = 0; q < 4; q++) {
            int k = s->conv[q].k, off = (MS_TAPS - k) / 2;
            float *dw = s->conv[q].dw + (size_t)oi * k;
            const float *g = s->dw33 + (size_t)oi * MS_TAPS + off;
            for (int j = 0; j < k; j++) dw[j] += 0.25f * g[j];
        }
    cbn_pool_backward(m, &s->shortcut, dout, din, in, 0, 2);
    gpop(&m->gs, mk);
}

/* ---- BasicBlock, Gate, SE: (B, cin, L) -> (B, c, L) ---------------------------------------- */

/* The end of a BasicBlock in training (not synchronised): the convs and their BN statistics,
 * then out = relu(bn2(conv2 y1) + shortcut) in one pass, without storing bn2's (or the
 * downsample BN's) output, which no backward reads (their BNs have no ReLU). The same float
 * operations in the same order as the unfused units: y = z * scale + shift rounded, then the
 * sum, then the ReLU. */
static void basic_end_train(mrm_model *m, nn_ctx *ctx, block *k, const float *in) {
    const int B = m->B, c = k->c, L = k->L, ds = k->has_ds;
    float aff[4 * c]; /* scale and shift of bn2, then of the downsample's BN */
    cbn *us[2] = {&k->c2, &k->ds};
    const float *ins[2] = {k->c1.y, in};
    for (int i = 0; i < 1 + ds; i++) {
        cbn *u = us[i];
        const conv_p *cv = &u->conv;
        conv1d_forward(ctx, u->z, ins[i], cv->w, B, cv->cin, u->lin, cv->cout, cv->k, cv->stride, cv->pad, cv->groups);
        bn_forward_train_stats(aff + 2 * i * c, aff + (2 * i + 1) * c, u->mean, u->rstd, u->bn.running_mean,
                               u->bn.running_var, u->z, u->bn.gamma, u->bn.beta, B, c, L, BN_EPS, BN_MOMENTUM);
        (*u->bn.num_batches_tracked)++;
    }
    const float *z2 = k->c2.z, *zd = ds ? k->ds.z : NULL;
    float *out = k->out;
#pragma omp parallel for collapse(2) if ((size_t)B * c * L > 65536) schedule(static)
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < c; ch++) {
            const size_t o = ((size_t)b * c + ch) * L;
            const float s2 = aff[ch], h2 = aff[c + ch];
            if (zd) {
                const float sd = aff[2 * c + ch], hd = aff[3 * c + ch];
#pragma omp simd
                for (int t = 0; t < L; t++) {
                    float y2 = z2[o + t] * s2 + h2, yd = zd[o + t] * sd + hd, v = y2 + yd;
                    out[o + t] = v > 0.0f ? v : 0.0f;
                }
            } else {
#pragma omp simd
                for (int t = 0; t < L; t++) {
                    float y2 = z2[o + t] * s2 + h2, v = y2 + in[o + t];
                    out[o + t] = v > 0.0f ? v : 0.0f;
                }
            }
        }
}

static void block_forward(mrm_model *m, nn_ctx *ctx, block *k, const float *in) {
    int B = m->B, c = k->c, L = k->L;
    size_t n = (size_t)B * c * L;
    cbn_forward(m, ctx, &k->c1, in);
    if (k->kind == BLK_BASIC && m->folded) {
        conv_only(m, ctx, &k->c2, k->c1.y);
        if (k->has_ds) conv_only(m, ctx, &k->ds, in);
        bias_add_relu(k->out, k->c2.z, k->c2.bn.beta, k->has_ds ? k->ds.z : in, k->has_ds ? k->ds.bn.beta : NULL, B, c, L);
        return;
    }
    if (k->kind == BLK_BASIC && m->trained_forward && !m->sync_fn) {
        basic_end_train(m, ctx, k, in);
        return;
    }
    if (k->kind == BLK_BASIC) { /* relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)) */
        cbn_forward(m, ctx, &k->c2, k->c1.y);
        const float *sc = in;
        if (k->has_ds) {
            cbn_forward(m, ctx, &k->ds, in);
            sc = k->ds.y;
        }
        add_forward(k->out, k->c2.y, sc, n);
        relu_forward(k->out, k->out, n);
        return;
    }
    const float *h = k->c1.y; /* h = relu(bn(groupconv x)) */
    mean_time_forward(k->gap, h, B, c, L);
    if (k->kind == BLK_GATE) {
        hardsigmoid_forward(k->gate, k->gap, (size_t)B * c);
    } else { /* SE: sigmoid(fc2 relu(fc0 gap)) */
        linear_forward(k->hid, k->gap, k->fc0.w, NULL, B, c, c / 4);
        relu_forward(k->hid, k->hid, (size_t)B * (c / 4));
        linear_forward(k->pre, k->hid, k->fc2.w, NULL, B, c / 4, c);
        sigmoid_forward(k->gate, k->pre, (size_t)B * c);
    }
    scale_channels_add_forward(k->out, h, k->gate, in, B, c, L); /* x + h * gate */
}

/* din accumulates, or with `fresh` (din not initialised) is set. */
static void block_backward(mrm_model *m, block *k, const float *dout, float *din, const float *in, int fresh) {
    int B = m->B, c = k->c, L = k->L;
    size_t n = (size_t)B * c * L;
    gmark mk = gmark_get(&m->gs);
    if (k->kind == BLK_BASIC) { /* the end's ReLU backward (dout where out > 0) applied where dout is read */
        float *dy1 = GPUSH_RAW(m, n); /* set by c2's backward */
        cbn_backward_masked(m, &k->c2, dout, k->out, dy1, k->c1.y, 1);
        if (k->has_ds) {
            cbn_backward_to(m, &k->c1, dy1, din, in, fresh);
            cbn_backward_masked(m, &k->ds, dout, k->out, din, in, 0);
        } else /* the identity path, dout where out > 0, added to c1's data gradient as it is written */
            cbn_backward_plus(m, &k->c1, dy1, NULL, din, in, fresh, dout, k->out);
        gpop(&m->gs, mk);
        return;
    }
    const float *h = k->c1.y;
    float *dh = GPUSH_RAW(m, n), *dgate = GPUSH(m, (size_t)B * c), *dgap = GPUSH(m, (size_t)B * c);
    scale_channels_backward(NULL, dgate, dout, h, k->gate, B, c, L);
    if (k->kind == BLK_GATE) {
        hardsigmoid_backward(dgap, dgate, k->gap, (size_t)B * c);
    } else {
        float *dpre = GPUSH(m, (size_t)B * c), *dhid = GPUSH(m, (size_t)B * (c / 4)), *dhr = GPUSH(m, (size_t)B * (c / 4));
        sigmoid_backward(dpre, dgate, k->gate, (size_t)B * c);
        linear_backward(dhid, k->fc2.dw, NULL, dpre, k->hid, k->fc2.w, B, c / 4, c);
        relu_backward(dhr, dhid, k->hid, (size_t)B * (c / 4));
        linear_backward(dgap, k->fc0.dw, NULL, dhr, k->gap, k->fc0.w, B, c, c / 4);
    }
    gate_input_backward(dh, din, fresh, dout, k->gate, dgap, B, c, L); /* din: the identity path */
    cbn_backward(m, &k->c1, dh, din, in);
    gpop(&m->gs, mk);
}

/* ---- Fusion block: channel and spatial attention, LayerNorm, four blocks ------------------- */

/* M(v) = BN(m1 (m0 v)) on v (B, c): the shared pair of 1x1 convs and their BN. */
static void fusion_m_forward(mrm_model *m, fusion *f, const float *v, float *h, float *z, float *y, float *mean,
                             float *rstd) {
    int c = f->c;
    linear_forward(h, v, f->m0.w, NULL, m->B, c, c / 8);
    linear_forward(z, h, f->m1.w, NULL, m->B, c / 8, c);
    bn_forward(m, &f->mbn, y, z, mean, rstd, c, 1);
}

static void fusion_m_backward(mrm_model *m, fusion *f, const float *dy, float *dv, const float *v, const float *h,
                              const float *z, const float *mean, const float *rstd) {
    int B = m->B, c = f->c;
    gmark mk = gmark_get(&m->gs);
    float *dz = GPUSH(m, (size_t)B * c), *dh = GPUSH(m, (size_t)B * (c / 8));
    if (m->trained_forward && m->sync_fn) {
        if (batchnorm_backward_sync(m, dz, f->mbn.dgamma, f->mbn.dbeta, dy, z, mean, rstd, f->mbn.gamma, B, c, 1))
            m->sync_failed = 1;
    } else if (m->trained_forward)
        batchnorm_backward(dz, f->mbn.dgamma, f->mbn.dbeta, dy, z, mean, rstd, f->mbn.gamma, B, c, 1);
    else
        bn_relu_backward_eval(dz, f->mbn.dgamma, f->mbn.dbeta, dy, NULL, z, f->mbn.gamma, f->mbn.running_mean,
                              f->mbn.running_var, B, c, 1, BN_EPS);
    linear_backward(dh, f->m1.dw, NULL, dz, h, f->m1.w, B, c / 8, c);
    linear_backward(dv, f->m0.dw, NULL, dh, v, f->m0.w, B, c, c / 8);
    gpop(&m->gs, mk);
}

static void fusion_forward(mrm_model *m, nn_ctx *ctx, fusion *f, const float *x) {
    int B = m->B, c = f->c, L = f->L;
    /* channel attention: l1 = sigmoid(M(max_t x) + M(mean_t x)) * x */
    max_time_forward(f->xmax, x, B, c, L);
    mean_time_forward(f->xavg, x, B, c, L);
    fusion_m_forward(m, f, f->xmax, f->h_max, f->z_max, f->y_max, f->mean_max, f->rstd_max);
    fusion_m_forward(m, f, f->xavg, f->h_avg, f->z_avg, f->y_avg, f->mean_avg, f->rstd_avg);
    add_forward(f->ca, f->y_max, f->y_avg, (size_t)B * c);
    sigmoid_forward(f->ca, f->ca, (size_t)B * c);
    scale_channels_forward_ld(f->cat, 2 * (size_t)c * L, x, f->ca, B, c, L); /* l1: cat's first half */
    /* spatial attention: l2 = sigmoid(BN(conv([max_c x, mean_c x]))) * x */
    channel_maxmean_forward(f->maxmean, x, B, c, L);
    cbn_forward(m, ctx, &f->sp, f->maxmean);
    sigmoid_forward(f->sa, f->sp.y, (size_t)B * L);
    scale_time_forward_ld(f->cat + (size_t)c * L, 2 * (size_t)c * L, x, f->sa, B, c, L); /* l2: its second */
    /* LayerNorm over the 2c channels of [l1, l2], then the blocks */
    layernorm_ch_forward(f->f, f->ln_mean, f->ln_rstd, f->cat, f->norm.w, f->norm.b, B, 2 * c, L, LN_EPS);
    const float *in = f->f;
    for (int i = 0; i < 4; i++) {
        block_forward(m, ctx, &f->layer[i], in);
        in = f->layer[i].out;
    }
}

/* din accumulates, or is set when fresh. */
static void fusion_backward(mrm_model *m, fusion *f, const float *dout, float *din, const float *x, int fresh) {
    int B = m->B, c = f->c, L = f->L;
    gmark mk = gmark_get(&m->gs);
    const float *d = dout;
    for (int i = 3; i >= 0; i--) {
        float *dn = GPUSH_RAW(m, (size_t)B * f->layer[i].cin * L);
        block_backward(m, &f->layer[i], d, dn, i ? f->layer[i - 1].out : f->f, 1);
        d = dn;
    }
    float *dcat = GPUSH_RAW(m, (size_t)B * 2 * c * L); /* set by the LayerNorm backward */
    layernorm_ch_backward_set(dcat, f->norm.dw, f->norm.db, d, f->cat, f->ln_mean, f->ln_rstd, f->norm.w, B, 2 * c, L);
    /* dl1, dl2: dcat's halves, read in place */
    const size_t ld = 2 * (size_t)c * L;
    const float *dl1 = dcat, *dl2 = dcat + (size_t)c * L;
    /* spatial */
    float *dsa = GPUSH(m, (size_t)B * L), *dsy = GPUSH(m, (size_t)B * L), *dmm = GPUSH(m, (size_t)B * 2 * L);
    scale_time_backward_ld(NULL, dsa, dl2, ld, x, f->sa, B, c, L);
    sigmoid_backward(dsy, dsa, f->sa, (size_t)B * L);
    cbn_backward(m, &f->sp, dsy, dmm, f->maxmean);
    /* channel */
    float *dca = GPUSH(m, (size_t)B * c), *da = GPUSH(m, (size_t)B * c);
    float *dmax = GPUSH(m, (size_t)B * c), *davg = GPUSH(m, (size_t)B * c);
    scale_channels_backward_ld(NULL, dca, dl1, ld, x, f->ca, B, c, L);
    sigmoid_backward(da, dca, f->ca, (size_t)B * c);
    fusion_m_backward(m, f, da, dmax, f->xmax, f->h_max, f->z_max, f->mean_max, f->rstd_max);
    fusion_m_backward(m, f, da, davg, f->xavg, f->h_avg, f->z_avg, f->mean_avg, f->rstd_avg);
    /* din: every path at once (scale_time, channel_maxmean, scale_channels, max_time and
     * mean_time's terms in that order) */
    int *amax = (int *)(void *)GPUSH_RAW(m, (size_t)B * L);
    float *vmax = GPUSH_RAW(m, (size_t)B * L);
    attention_input_backward(din, fresh, dl1, dl2, ld, x, f->ca, f->sa, dmm, dmax, davg, amax, vmax, B, c, L);
    gpop(&m->gs, mk);
}

/* ---- heads: logits = fc(LayerNorm(concat of mean_t of each input)) (B, N) --------------------- */

static void head_forward(mrm_model *m, unit *u) {
    head *h = &u->p.hd;
    int B = m->B, N = m->cfg.n_classes;
    const unit *a = &m->units[u->in[0]];
    if (u->n_in == 1) {
        mean_time_forward(h->gap, a->out, B, a->c, a->L);
    } else { /* the pooled inputs side by side; n serves as scratch */
        const unit *b = &m->units[u->in[1]];
        mean_time_forward(h->n, a->out, B, a->c, a->L);
        mean_time_forward(h->n + (size_t)B * a->c, b->out, B, b->c, b->L);
        concat_ch_forward(h->gap, h->n, h->n + (size_t)B * a->c, B, a->c, b->c, 1);
    }
    layernorm_ch_forward(h->n, h->mean, h->rstd, h->gap, h->norm.w, h->norm.b, B, h->c, 1, LN_EPS);
    linear_forward(h->logits, h->n, h->fc.w, h->fc.b, B, h->c, N);
}

/* din[i] (the gradients of the inputs' outputs) accumulate. */
static void head_backward(mrm_model *m, unit *u, const float *dlogits, float *const din[2]) {
    head *h = &u->p.hd;
    int B = m->B, c = h->c;
    gmark mk = gmark_get(&m->gs);
    float *dn = GPUSH(m, (size_t)B * c), *dg = GPUSH(m, (size_t)B * c);
    linear_backward(dn, h->fc.dw, h->fc.db, dlogits, h->n, h->fc.w, B, c, m->cfg.n_classes);
    layernorm_ch_backward(dg, h->norm.dw, h->norm.db, dn, h->gap, h->mean, h->rstd, h->norm.w, B, c, 1);
    const unit *a = &m->units[u->in[0]];
    if (u->n_in == 1) {
        mean_time_backward(din[0], dg, B, c, a->L);
    } else {
        const unit *b = &m->units[u->in[1]];
        float *da = GPUSH(m, (size_t)B * a->c), *db = GPUSH(m, (size_t)B * b->c);
        concat_ch_backward(da, db, dg, B, a->c, b->c, 1);
        mean_time_backward(din[0], da, B, a->c, a->L);
        mean_time_backward(din[1], db, B, b->c, b->L);
    }
    gpop(&m->gs, mk);
}

/* ---- the network: the unit list ----------------------------------------------------------- */

static const float *unit_input(const mrm_model *m, const unit *u, int i) {
    return u->in[i] < 0 ? m->x : m->units[u->in[i]].out;
}

static void unit_forward(mrm_model *m, nn_ctx *ctx, unit *u, mrm_rng *rng) {
    const float *in = unit_input(m, u, 0);
    switch (u->kind) {
    case UNIT_STEM: stem_forward(m, ctx, u, in); break;
    case UNIT_BASESCALE: basescale_forward(m, ctx, &u->p.bs, in, rng, (uint64_t)(u - m->units)); break;
    case UNIT_BLOCK: block_forward(m, ctx, &u->p.blk, in); break;
    case UNIT_FUSION: fusion_forward(m, ctx, &u->p.fu, in); break;
    case UNIT_HEAD: head_forward(m, u); break;
    case UNIT_SUM: add_forward(u->out, in, unit_input(m, u, 1), (size_t)m->B * m->cfg.n_classes); break;
    }
}

/* dout: the gradient of u's output; din[i]: of its inputs' outputs (NULL: not needed). fresh:
 * din[0] holds nothing yet (set rather than accumulated where the unit can); otherwise every
 * din accumulates. */
static void unit_backward(mrm_model *m, unit *u, const float *dout, float *const din[2], int fresh) {
    const float *in = unit_input(m, u, 0);
    size_t nin = u->in[0] < 0 ? 0 : (size_t)m->B * m->units[u->in[0]].c * m->units[u->in[0]].L;
    switch (u->kind) {
    case UNIT_STEM: stem_backward(m, u, dout, din[0], in, fresh); break;
    case UNIT_BASESCALE:
        if (fresh) zero_floats(din[0], nin);
        basescale_backward(m, &u->p.bs, dout, din[0], in);
        break;
    case UNIT_BLOCK: block_backward(m, &u->p.blk, dout, din[0], in, fresh); break;
    case UNIT_FUSION: fusion_backward(m, &u->p.fu, dout, din[0], in, fresh); break;
    case UNIT_HEAD:
        if (fresh) zero_floats(din[0], nin);
        head_backward(m, u, dout, din);
        break;
    case UNIT_SUM:
        for (int i = 0; i < 2; i++) accumulate(din[i], dout, (size_t)m->B * m->cfg.n_classes);
        break;
    }
}

/* The units of one phase (UNIT_SHARED, a branch, UNIT_TAIL) in list order. */
static void run_phase(mrm_model *m, nn_ctx *ctx, int phase, mrm_rng *rng) {
    for (int i = 0; i < m->n_units; i++)
        if (m->units[i].branch == phase) unit_forward(m, ctx, &m->units[i], rng);
}

mrm_status mrm_model_forward(mrm_model *m, const float *x, int B, int train, mrm_rng *rng, mrm_error *err) {
    return mrm_model_forward_keyed(m, x, B, train, rng, NULL, err);
}

mrm_status mrm_model_forward_keyed(mrm_model *m, const float *x, int B, int train, mrm_rng *rng,
                                   const uint64_t *record_keys, mrm_error *err) {
    if (!x || B < 1) return mrm_fail(err, MRM_ERR_INVALID, "model forward: batch of %d", B);
    m->sync_failed = 0;
    if (train && m->sync_fn) { /* the global batch: the records of every process */
        double nb = B;
        if (m->sync_fn(m->sync_ctx, &nb, 1))
            return mrm_fail(err, MRM_ERR_IO, "model forward: the batch sizes could not be summed over the processes");
        m->sync_B = nb;
    }
    if (train && (m->sync_fn ? m->sync_B < 2 : B < 2))
        return mrm_fail(err, MRM_ERR_INVALID,
                        "model forward: training mode needs a batch of at least 2 (BatchNorm of the channel attention "
                        "has one value per sample)");
    if (train && m->dropout > 0.0f && !rng && !record_keys)
        return mrm_fail(err, MRM_ERR_INVALID, "model forward: dropout %g needs a random generator", m->dropout);
    mrm_status s = model_plan(m, B, err);
    if (s) return s;
    m->B = B;
    m->trained_forward = train ? 1 : 0;
    m->dropout_applied = train && m->dropout > 0.0f;
    m->drop_keys = record_keys;
    m->x = x;
    for (int br = 0; br < MAX_BRANCHES; br++) m->feat_grad[br] = NULL;
    run_phase(m, &m->ctx, UNIT_SHARED, rng);
    if (!train && m->n_branches > 1 && B <= m->branch_parallel_max_B && omp_get_max_threads() <= m->n_branches) {
        /* the branches at once, one thread each (the ops inside run single-threaded); with more
         * threads than branches, one after the other, every op sharing its tiles among all the
         * threads (one thread a branch would leave the others idle) */
#pragma omp parallel for num_threads(m->n_branches) schedule(static, 1)
        for (int br = 0; br < m->n_branches; br++) run_phase(m, &m->branch_ctx[br], br, NULL);
    } else {
        /* in this order: the dropout draws of the BaseScales, one branch after the other */
        for (int br = 0; br < m->n_branches; br++) run_phase(m, &m->ctx, br, rng);
    }
    run_phase(m, &m->ctx, UNIT_TAIL, rng);
    m->drop_keys = NULL;
    if (m->sync_failed)
        return mrm_fail(err, MRM_ERR_IO, "model forward: the BatchNorm statistics could not be summed over the processes");
    return MRM_OK;
}

const float *mrm_model_logits(const mrm_model *m, int head) {
    return m->B && head >= 1 && head <= m->n_out ? m->units[m->out_unit[head - 1]].out : NULL;
}
const float *mrm_model_features(const mrm_model *m, int branch) {
    return m->B && branch >= 1 && branch <= m->n_branches ? m->units[m->feat_unit[branch - 1]].out : NULL;
}
const float *model_unit_output(const mrm_model *m, const char *name) {
    for (int i = 0; i < m->n_units; i++)
        if (!strcmp(m->units[i].name, name)) return m->B ? m->units[i].out : NULL;
    return NULL;
}

/* The loss; with the gradient buffers given (dl of each output, df of each branch; all or none)
 * accumulates its gradient. Two outputs: BCE of each, and the mutual-learning terms; one: BCE. */
static void loss_parts(const mrm_model *m, const float *y, mrm_loss *l, float *const dl[2], float *const df[2]) {
    int B = m->B, N = m->cfg.n_classes, F = mrm_model_feature_size(m);
    memset(l, 0, sizeof *l);
    const float *o1 = mrm_model_logits(m, 1);
    l->bce1 = bce_logits_forward_backward(dl ? dl[0] : NULL, o1, y, B, N, 1.0f, m->pos_weight);
    if (m->n_out < 2) {
        l->total = l->bce1;
        return;
    }
    const float *o2 = mrm_model_logits(m, 2), *f1 = mrm_model_features(m, 1), *f2 = mrm_model_features(m, 2);
    l->bce2 = bce_logits_forward_backward(dl ? dl[1] : NULL, o2, y, B, N, 1.0f, m->pos_weight);
    /* a weight of 0 turns its term off (not computed, reported as 0) */
    float T = (float)m->cfg.temperature, wf = (float)m->cfg.lambda_feat, wl = (float)m->cfg.lambda_logit;
    l->kl_feat = wf > 0.0f ? kl_sym_softmax_forward_backward(df ? df[0] : NULL, df ? df[1] : NULL, f1, f2, B, F, T, wf) : 0.0;
    l->kl_logits = wl > 0.0f ? kl_sym_softmax_forward_backward(dl ? dl[0] : NULL, dl ? dl[1] : NULL, o1, o2, B, N, T, wl) : 0.0;
    l->total = l->bce1 + l->bce2 + wf * l->kl_feat + wl * l->kl_logits;
}

static mrm_status check_labels(const mrm_model *m, const float *y, mrm_error *err) {
    if (!m->B) return mrm_fail(err, MRM_ERR_INVALID, "model loss: no forward pass yet");
    if (!y) return mrm_fail(err, MRM_ERR_INVALID, "model loss: no labels");
    size_t n = (size_t)m->B * m->cfg.n_classes;
    for (size_t i = 0; i < n; i++)
        if (!(y[i] >= 0.0f && y[i] <= 1.0f))
            return mrm_fail(err, MRM_ERR_INVALID, "model loss: label [%zu, %zu] = %g is not in [0, 1]",
                            i / m->cfg.n_classes, i % m->cfg.n_classes, y[i]);
    return MRM_OK;
}

mrm_status mrm_model_loss(const mrm_model *m, const float *y, mrm_loss *loss, mrm_error *err) {
    mrm_status s = check_labels(m, y, err);
    if (s) return s;
    loss_parts(m, y, loss, NULL, NULL);
    return MRM_OK;
}

/* The gradient buffers of a backward pass, on the gradient stack: grad[i] of each branch's
 * features, of every head's logits, and of the shared units' last (the branches' input). Returns
 * the index of that last shared unit, or -1 when memory is short. */
static int backward_begin(mrm_model *m, float *grad[MAX_UNITS]) {
    int B = m->B, N = m->cfg.n_classes;
    size_t F = (size_t)mrm_model_feature_size(m);
    gstack *g = &m->gs;
    g->cur = 0;
    g->used = 0;
    g->failed = 0;
    for (int i = 0; i < MAX_UNITS; i++) grad[i] = NULL;
    for (int br = 0; br < MAX_BRANCHES; br++) m->feat_grad[br] = NULL;
    for (int br = 0; br < m->n_branches; br++) grad[m->feat_unit[br]] = GPUSH(m, B * F);
    for (int i = 0; i < m->n_units; i++)
        if (m->units[i].kind == UNIT_HEAD || m->units[i].kind == UNIT_SUM) grad[i] = GPUSH(m, (size_t)B * N);
    int first_branch_unit = -1; /* the shared units' last: the branches' input */
    for (int i = 0; i < m->n_units; i++)
        if (m->units[i].branch == UNIT_SHARED) first_branch_unit = i;
    const unit *sl = &m->units[first_branch_unit];
    grad[first_branch_unit] = GPUSH(m, (size_t)B * sl->c * sl->L);
    return g->failed ? -1 : first_branch_unit;
}

/* Runs the units backward from the output gradients in grad[] (set by backward_begin and then
 * filled): the tail, then each branch, each in reverse, then the shared units. dx (B, 12, 1000):
 * the gradient of the network input accumulates there (NULL: not computed). */
static mrm_status backward_run(mrm_model *m, float *grad[MAX_UNITS], int first_branch_unit, float *dx, mrm_error *err) {
    int B = m->B;
    size_t F = (size_t)mrm_model_feature_size(m);
    float *turn[2] = {GPUSH_RAW(m, B * F), GPUSH_RAW(m, B * F)}; /* each handed to a unit as fresh */
    if (m->gs.failed) return mrm_fail(err, MRM_ERR_NOMEM, "model backward: out of memory for the gradients");
    for (int phase = UNIT_TAIL, pass = 0; pass <= m->n_branches; pass++, phase = pass - 1) {
        int t = 0;
        for (int i = m->n_units - 1; i >= 0; i--) {
            unit *u = &m->units[i];
            if (u->branch != phase) continue;
            float *din[2] = {NULL, NULL};
            int fresh = 0;
            for (int j = 0; j < u->n_in; j++) {
                int v = u->in[j];
                if (!grad[v]) { /* a unit inside the branch: the other turn buffer */
                    grad[v] = turn[t];
                    t ^= 1;
                    fresh = 1;
                }
                din[j] = grad[v];
            }
            unit_backward(m, u, grad[i], din, fresh);
        }
    }
    /* the shared units, in reverse: each input's gradient on the stack (the network input's: dx) */
    for (int i = first_branch_unit; i >= 0; i--) {
        unit *u = &m->units[i];
        float *din[2] = {NULL, NULL};
        if (u->in[0] >= 0) {
            const unit *v = &m->units[u->in[0]];
            din[0] = grad[u->in[0]] = GPUSH_RAW(m, (size_t)B * v->c * v->L); /* set by the unit (fresh) */
        } else {
            din[0] = dx;
        }
        unit_backward(m, u, grad[i], din, u->in[0] >= 0);
    }
    if (m->gs.failed) return mrm_fail(err, MRM_ERR_NOMEM, "model backward: out of memory for the gradients");
    if (m->sync_failed)
        return mrm_fail(err, MRM_ERR_IO, "model backward: the BatchNorm gradient sums could not be summed over the processes");
    for (int br = 0; br < m->n_branches; br++) m->feat_grad[br] = grad[m->feat_unit[br]];
    return MRM_OK;
}

mrm_status mrm_model_backward(mrm_model *m, const float *y, mrm_loss *loss, mrm_error *err) {
    mrm_status s = check_labels(m, y, err);
    if (s) return s;
    if (!m->trained_forward)
        return mrm_fail(err, MRM_ERR_INVALID, "model backward: the last forward was not in training mode");
    /* the gradient of each unit's output: the branches' features and every head's logits are
     * held for the whole pass; inside a branch two buffers take turns */
    float *grad[MAX_UNITS];
    int fb = backward_begin(m, grad);
    if (fb < 0) return mrm_fail(err, MRM_ERR_NOMEM, "model backward: out of memory for the gradients");
    float *df[2] = {NULL, NULL}, *dl[2] = {NULL, NULL};
    for (int br = 0; br < m->n_branches; br++) df[br] = grad[m->feat_unit[br]];
    for (int k = 0; k < m->n_out; k++) dl[k] = grad[m->out_unit[k]];
    mrm_loss l;
    loss_parts(m, y, &l, dl, df);
    if (loss) *loss = l;
    if (m->loss_scale != 1.0f) { /* this process's weight in the global batch */
        const size_t BN = (size_t)m->B * m->cfg.n_classes, BF = (size_t)m->B * mrm_model_feature_size(m);
        for (int k = 0; k < m->n_out; k++)
            for (size_t i = 0; i < BN; i++) dl[k][i] *= m->loss_scale;
        for (int br = 0; br < m->n_branches; br++)
            for (size_t i = 0; i < BF; i++) df[br][i] *= m->loss_scale;
    }
    m->sync_failed = 0;
    return backward_run(m, grad, fb, NULL, err);
}

mrm_status mrm_model_backward_outputs(mrm_model *m, int B, int n_classes, const mrm_output_grads *dout, float *dx,
                                      mrm_error *err) {
    if (!m->B) return mrm_fail(err, MRM_ERR_INVALID, "model backward: no forward pass yet");
    if (m->trained_forward)
        return mrm_fail(err, MRM_ERR_INVALID,
                        "model backward from the outputs: the last forward was in training mode (this backward follows "
                        "an evaluation-mode forward)");
    if (m->folded) return mrm_fail(err, MRM_ERR_UNSUPPORTED, "model backward: a folded (inference) model has no backward");
    if (B != m->B || n_classes != m->cfg.n_classes)
        return mrm_fail(err, MRM_ERR_INVALID,
                        "model backward from the outputs: gradients of shape (%d, %d), the last forward gave (%d, %d)", B,
                        n_classes, m->B, m->cfg.n_classes);
    if (!dout) return mrm_fail(err, MRM_ERR_INVALID, "model backward from the outputs: no output gradients");
    for (int h = m->n_out; h < 2; h++)
        if (dout->dlogits[h])
            return mrm_fail(err, MRM_ERR_INVALID, "model backward from the outputs: dlogits[%d] given, the model has %d head%s", h,
                            m->n_out, m->n_out > 1 ? "s" : "");
    for (int br = m->n_branches; br < 2; br++)
        if (dout->dfeatures[br])
            return mrm_fail(err, MRM_ERR_INVALID, "model backward from the outputs: dfeatures[%d] given, the model has %d branch%s",
                            br, m->n_branches, m->n_branches > 1 ? "es" : "");
    float *grad[MAX_UNITS];
    int fb = backward_begin(m, grad);
    if (fb < 0) return mrm_fail(err, MRM_ERR_NOMEM, "model backward: out of memory for the gradients");
    size_t nl = (size_t)B * n_classes, nf = (size_t)B * mrm_model_feature_size(m);
    for (int h = 0; h < m->n_out; h++)
        if (dout->dlogits[h]) memcpy(grad[m->out_unit[h]], dout->dlogits[h], nl * sizeof(float));
    for (int br = 0; br < m->n_branches; br++)
        if (dout->dfeatures[br]) memcpy(grad[m->feat_unit[br]], dout->dfeatures[br], nf * sizeof(float));
    if (dx) zero_floats(dx, (size_t)B * MRM_INPUT_LEADS * MRM_INPUT_LEN);
    return backward_run(m, grad, fb, dx, err);
}

const float *mrm_model_feature_grads(const mrm_model *m, int branch) {
    return branch >= 1 && branch <= m->n_branches ? m->feat_grad[branch - 1] : NULL;
}

int mrm_model_feature_shape(const mrm_model *m, int branch, int *channels, int *length) {
    if (branch < 1 || branch > m->n_branches) return -1;
    const unit *u = &m->units[m->feat_unit[branch - 1]];
    if (channels) *channels = u->c;
    if (length) *length = u->L;
    return 0;
}
