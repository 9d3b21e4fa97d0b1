/* MRM-Net: the builder. The config becomes one ordered list of units (model_internal.h), each
 * registering its tensors in the order of the weights table (mrmnet-weights.tsv, the PyTorch
 * state_dict order); a first pass counts, a second points the units into the parameter,
 * gradient and statistics buffers. This is the only walk of the architecture: the rest of the
 * model iterates the list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/model_internal.h"

typedef struct builder {
    mrm_model *m;
    int pass;              /* 0 count, 1 fill, 2 walk (call fn for each tensor) */
    model_tensor_fn fn;
    void *ctx;
    int stop;              /* walk: fn's first nonzero return */
    size_t np, ns, nc;     /* params, stats, counters so far */
    int nt;
    int nomem;
} builder;

enum { T_PARAM, T_STAT, T_COUNT };

/* Registers one tensor; returns its data (NULL in the counting pass) and sets *grad. */
static void *reg(builder *b, const char *name, int role, init_kind init, float bound, int ndim, long long s0,
                 long long s1, long long s2, float **grad) {
    long long shape[3] = {s0, s1, s2}, numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    void *data = NULL;
    float *g = NULL;
    mrm_model *m = b->m;
    if (b->pass == 2 && !b->stop) b->stop = b->fn(b->ctx, name, role == T_COUNT, ndim, shape);
    if (b->pass == 1) {
        if (role == T_PARAM) {
            data = m->params + b->np;
            g = m->grads + b->np;
        } else if (role == T_STAT) {
            data = m->stats + b->ns;
        } else {
            data = m->counts + b->nc;
        }
        mrm_tensor *t = &m->tensors[b->nt];
        t->name = strdup(name);
        if (!t->name) b->nomem = 1;
        t->is_int64 = role == T_COUNT;
        t->ndim = ndim;
        for (int i = 0; i < 3; i++) t->shape[i] = i < ndim ? shape[i] : 0;
        t->numel = numel;
        t->data = data;
        t->grad = g;
        t->trainable = role == T_PARAM;
        m->init[b->nt] = init;
        m->bound[b->nt] = bound;
    }
    if (role == T_PARAM) b->np += (size_t)numel;
    else if (role == T_STAT) b->ns += (size_t)numel;
    else b->nc += (size_t)numel;
    b->nt++;
    if (grad) *grad = g;
    return data;
}

static void name2(char *out, size_t n, const char *prefix, const char *suffix) {
    size_t a = strlen(prefix), b = strlen(suffix);
    if (a + b + 2 > n) a = b = 0; /* names are short; never reached */
    memcpy(out, prefix, a);
    out[a] = '.';
    memcpy(out + a + 1, suffix, b);
    out[a + 1 + b] = '\0';
}

/* A convolution weight "<prefix>.weight", PyTorch default bound 1/sqrt(fan_in). */
static void reg_conv(builder *b, conv_p *c, const char *prefix, int cin, int cout, int k, int stride, int pad, int groups) {
    char nm[256];
    name2(nm, sizeof nm, prefix, "weight");
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad = pad;
    c->groups = groups;
    c->w = reg(b, nm, T_PARAM, INIT_UNIFORM, 1.0f / sqrtf((float)(cin / groups * k)), 3, cout, cin / groups, k, &c->dw);
}

static void reg_bn(builder *b, bn_p *bn, const char *prefix, int c) {
    char nm[256];
    bn->c = c;
    name2(nm, sizeof nm, prefix, "weight");
    bn->gamma = reg(b, nm, T_PARAM, INIT_ONE, 0, 1, c, 0, 0, &bn->dgamma);
    name2(nm, sizeof nm, prefix, "bias");
    bn->beta = reg(b, nm, T_PARAM, INIT_ZERO, 0, 1, c, 0, 0, &bn->dbeta);
    name2(nm, sizeof nm, prefix, "running_mean");
    bn->running_mean = reg(b, nm, T_STAT, INIT_ZERO, 0, 1, c, 0, 0, NULL);
    name2(nm, sizeof nm, prefix, "running_var");
    bn->running_var = reg(b, nm, T_STAT, INIT_ONE, 0, 1, c, 0, 0, NULL);
    name2(nm, sizeof nm, prefix, "num_batches_tracked");
    bn->num_batches_tracked = reg(b, nm, T_COUNT, INIT_COUNT, 0, 0, 0, 0, 0, NULL);
}

static void reg_ln(builder *b, ln_p *ln, const char *prefix, int c) {
    char nm[256];
    ln->c = c;
    name2(nm, sizeof nm, prefix, "weight");
    ln->w = reg(b, nm, T_PARAM, INIT_ONE, 0, 1, c, 0, 0, &ln->dw);
    name2(nm, sizeof nm, prefix, "bias");
    ln->b = reg(b, nm, T_PARAM, INIT_ZERO, 0, 1, c, 0, 0, &ln->db);
}

/* A linear layer; as_conv: stored as a 1x1 conv weight (cout, cin, 1). */
static void reg_linear(builder *b, linear_p *l, const char *prefix, int cin, int cout, int bias, int as_conv) {
    char nm[256];
    float bound = 1.0f / sqrtf((float)cin);
    l->cin = cin;
    l->cout = cout;
    name2(nm, sizeof nm, prefix, "weight");
    l->w = reg(b, nm, T_PARAM, INIT_UNIFORM, bound, as_conv ? 3 : 2, cout, cin, 1, &l->dw);
    l->b = l->db = NULL;
    if (bias) {
        name2(nm, sizeof nm, prefix, "bias");
        l->b = reg(b, nm, T_PARAM, INIT_UNIFORM, bound, 1, cout, 0, 0, &l->db);
    }
}

/* conv (as named by conv_name) + bn (bn_name) unit. */
static void reg_cbn(builder *b, cbn *u, const char *prefix, const char *conv_name, const char *bn_name, int cin,
                    int cout, int k, int stride, int pad, int groups, int relu, int lin) {
    char nm[256];
    name2(nm, sizeof nm, prefix, conv_name);
    reg_conv(b, &u->conv, nm, cin, cout, k, stride, pad, groups);
    name2(nm, sizeof nm, prefix, bn_name);
    reg_bn(b, &u->bn, nm, cout);
    u->relu = relu;
    u->lin = lin;
    u->lout = conv1d_out_len(lin, k, stride, pad);
}

static void reg_basic(builder *b, block *k, const char *prefix, int cin, int c, int L) {
    memset(k, 0, sizeof *k);
    k->kind = BLK_BASIC;
    k->cin = cin;
    k->c = c;
    k->L = L;
    reg_cbn(b, &k->c1, prefix, "conv1", "bn1", cin, c, 3, 1, 1, 1, 1, L);
    reg_cbn(b, &k->c2, prefix, "conv2", "bn2", c, c, 3, 1, 1, 1, 0, L);
    k->has_ds = cin != c;
    if (k->has_ds) reg_cbn(b, &k->ds, prefix, "downsample.0", "downsample.1", cin, c, 1, 1, 0, 1, 0, L);
}

static void reg_gate(builder *b, block *k, const char *prefix, int c, int L) {
    memset(k, 0, sizeof *k);
    k->kind = BLK_GATE;
    k->cin = k->c = c;
    k->L = L;
    reg_cbn(b, &k->c1, prefix, "group_conv3x3", "bn1", c, c, 7, 1, 3, c / 16, 1, L);
}

static void reg_se(builder *b, block *k, const char *prefix, int c, int L) {
    char nm[256];
    memset(k, 0, sizeof *k);
    k->kind = BLK_SE;
    k->cin = k->c = c;
    k->L = L;
    reg_cbn(b, &k->c1, prefix, "group_conv3x3", "bn1", c, c, 3, 1, 1, c / 16, 1, L);
    name2(nm, sizeof nm, prefix, "se.fc.0");
    reg_linear(b, &k->fc0, nm, c, c / 4, 0, 0);
    name2(nm, sizeof nm, prefix, "se.fc.2");
    reg_linear(b, &k->fc2, nm, c / 4, c, 0, 0);
}

static void reg_fusion(builder *b, fusion *f, const char *prefix, int c, int L) {
    char nm[256];
    f->c = c;
    f->L = L;
    name2(nm, sizeof nm, prefix, "conv_block2");
    reg_cbn(b, &f->sp, nm, "0", "1", 2, 1, 7, 1, 3, 1, 0, L);
    name2(nm, sizeof nm, prefix, "conv_block3.0");
    reg_linear(b, &f->m0, nm, c, c / 8, 0, 1);
    name2(nm, sizeof nm, prefix, "conv_block3.1");
    reg_linear(b, &f->m1, nm, c / 8, c, 0, 1);
    name2(nm, sizeof nm, prefix, "conv_block3.2");
    reg_bn(b, &f->mbn, nm, c);
    name2(nm, sizeof nm, prefix, "norm1");
    reg_ln(b, &f->norm, nm, 2 * c);
    name2(nm, sizeof nm, prefix, "layer1.0");
    reg_basic(b, &f->layer[0], nm, 2 * c, c, L);
    name2(nm, sizeof nm, prefix, "layer1.1");
    reg_gate(b, &f->layer[1], nm, c, L);
    name2(nm, sizeof nm, prefix, "layer1.2");
    reg_se(b, &f->layer[2], nm, c, L);
    name2(nm, sizeof nm, prefix, "layer1.3");
    reg_basic(b, &f->layer[3], nm, c, c, L);
}

static void reg_basescale(builder *b, basescale *s, const char *prefix, int cin, int cout, int stride, int L) {
    char nm[256];
    static const int ks[4] = {3, 13, 23, 33};
    s->cout = cout;
    reg_cbn(b, &s->shortcut, prefix, "conv_block.0", "conv_block.1", cin, cout, 3, stride, 1, 1, 1, L);
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "%s.conv%d", prefix, i + 1);
        reg_conv(b, &s->conv[i], nm, cin, cout, ks[i], stride, ks[i] / 2, 1);
    }
    name2(nm, sizeof nm, prefix, "bn");
    reg_bn(b, &s->ms.bn, nm, cout);
    /* the merged conv: same function as the mean of conv1..4; its weights live outside the
     * parameter buffer */
    if (b->pass == 1) {
        size_t n = (size_t)cout * cin * MS_TAPS;
        s->w33 = calloc(n, sizeof(float));
        s->dw33 = calloc(n, sizeof(float));
        if (!s->w33 || !s->dw33) b->nomem = 1;
    }
    s->ms.conv = s->conv[3];
    s->ms.conv.w = s->w33;
    s->ms.conv.dw = s->dw33;
    s->ms.relu = 1;
    s->ms.lin = L;
    s->ms.lout = conv1d_out_len(L, MS_TAPS, stride, MS_TAPS / 2);
    s->lout = s->ms.lout / 2;
}

/* Appends a unit (its parameters are registered by the caller); returns its index. */
static int add_unit(builder *b, unit_kind kind, int branch, int in0, int in1, const char *name) {
    mrm_model *m = b->m;
    int i = m->n_units++;
    unit *u = &m->units[i];
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->branch = branch;
    u->in[0] = in0;
    u->in[1] = in1;
    u->n_in = in1 >= 0 ? 2 : 1;
    size_t n = strlen(name);
    if (n >= sizeof u->name) n = sizeof u->name - 1; /* names are short; never reached */
    memcpy(u->name, name, n);
    u->name[n] = '\0';
    return i;
}

/* A branch's blocks at c channels after its BaseScale `in`: 7 blocks, the sequence BasicBlock,
 * Gate, SE, BasicBlock, Gate, SE, BasicBlock (with attention), or 3 BasicBlocks. Returns the
 * last unit. */
static int add_branch_layer(builder *b, int br, int in, int attention, const char *prefix, int c, int L) {
    char nm[256];
    mrm_model *m = b->m;
    int n = attention ? 7 : 3;
    for (int i = 0; i < n; i++) {
        snprintf(nm, sizeof nm, "%s.%d", prefix, i);
        in = add_unit(b, UNIT_BLOCK, br, in, -1, nm);
        block *k = &m->units[in].p.blk;
        if (n == 3 || i % 3 == 0) reg_basic(b, k, nm, c, c, L);
        else if (i % 3 == 1) reg_gate(b, k, nm, c, L);
        else reg_se(b, k, nm, c, L);
        m->units[in].c = c;
        m->units[in].L = L;
    }
    return in;
}

static void build_pass(builder *b) {
    mrm_model *m = b->m;
    const mrm_model_config *cfg = &m->cfg;
    int w = m->w, N = cfg->n_classes;
    int L = MRM_INPUT_LEN;
    static const int stem_k[4] = {11, 7, 5, 3};
    int stem_c[5] = {MRM_INPUT_LEADS, w, 2 * w, 4 * w, 4 * w};
    char nm[64]; /* the prefixes; the layers add their suffixes in 256 */
    m->n_units = 0;
    /* the stem: (12, 1000) -> (4w, 1004) */
    int prev = -1;
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "BaseBlock.conv_block%d", i + 1);
        prev = add_unit(b, UNIT_STEM, UNIT_SHARED, prev, -1, nm);
        unit *u = &m->units[prev];
        reg_cbn(b, &u->p.stem, nm, "0", "1", stem_c[i], stem_c[i + 1], stem_k[i], 1, stem_k[i] / 2, 1, 1, L);
        L = u->p.stem.lout + 1; /* MaxPool(k2, s1, p1) */
        u->c = stem_c[i + 1];
        u->L = L;
    }
    const int stem_out = prev;
    /* the branches present: high (4w channels, stride 1), low (8w, stride 2) */
    const int has[2] = {cfg->branches != MRM_BRANCHES_LOW, cfg->branches != MRM_BRANCHES_HIGH};
    const int att[2] = {cfg->attention == MRM_ATTENTION_BOTH || cfg->attention == MRM_ATTENTION_HIGH,
                        cfg->attention == MRM_ATTENTION_BOTH || cfg->attention == MRM_ATTENTION_LOW};
    int br_of[2], last[2] = {-1, -1}, nb = 0;
    for (int r = 0; r < 2; r++) br_of[r] = has[r] ? nb++ : -1;
    m->n_branches = nb;
    for (int r = 0; r < 2; r++) {
        if (!has[r]) continue;
        snprintf(nm, sizeof nm, "BaseBlock.BaseScale%d", r + 1);
        last[r] = add_unit(b, UNIT_BASESCALE, br_of[r], stem_out, -1, nm);
        unit *u = &m->units[last[r]];
        reg_basescale(b, &u->p.bs, nm, 4 * w, (r + 1) * 4 * w, r + 1, L);
        u->c = u->p.bs.cout;
        u->L = u->p.bs.lout;
    }
    for (int r = 0; r < 2; r++) {
        if (!has[r]) continue;
        const unit *s = &m->units[last[r]];
        snprintf(nm, sizeof nm, "BaseBlock.layer%d", r + 1);
        last[r] = add_branch_layer(b, br_of[r], last[r], att[r], nm, s->c, s->L);
    }
    for (int r = 0; r < 2 && cfg->fusion; r++) {
        if (!has[r]) continue;
        int c = m->units[last[r]].c, Lr = m->units[last[r]].L;
        snprintf(nm, sizeof nm, "Fusion_block%d", r + 1);
        last[r] = add_unit(b, UNIT_FUSION, br_of[r], last[r], -1, nm);
        reg_fusion(b, &m->units[last[r]].p.fu, nm, c, Lr);
        m->units[last[r]].c = c;
        m->units[last[r]].L = Lr;
    }
    for (int r = 0; r < 2; r++)
        if (has[r]) m->feat_unit[br_of[r]] = last[r];
    /* the heads: LayerNorms first, then the Linears (the state_dict order) */
    int hd[2] = {-1, -1};
    if (cfg->combine == MRM_COMBINE_CONCAT) {
        hd[0] = add_unit(b, UNIT_HEAD, UNIT_TAIL, last[0], last[1], "fc");
        head *h = &m->units[hd[0]].p.hd;
        h->c = m->units[last[0]].c + m->units[last[1]].c;
        reg_ln(b, &h->norm, "conv_norm", h->c);
        reg_linear(b, &h->fc, "fc", h->c, N, 1, 0);
    } else {
        for (int r = 0; r < 2; r++) {
            if (!has[r]) continue;
            snprintf(nm, sizeof nm, "fc%d", r + 1);
            hd[r] = add_unit(b, UNIT_HEAD, br_of[r], last[r], -1, nm);
            head *h = &m->units[hd[r]].p.hd;
            h->c = m->units[last[r]].c;
            snprintf(nm, sizeof nm, "conv_norm%d", r + 1);
            reg_ln(b, &h->norm, nm, h->c);
        }
        for (int r = 0; r < 2; r++) {
            if (!has[r]) continue;
            head *h = &m->units[hd[r]].p.hd;
            snprintf(nm, sizeof nm, "fc%d", r + 1);
            reg_linear(b, &h->fc, nm, h->c, N, 1, 0);
        }
    }
    m->n_out = 0;
    if (cfg->combine == MRM_COMBINE_ADD) {
        m->out_unit[m->n_out++] = add_unit(b, UNIT_SUM, UNIT_TAIL, hd[0], hd[1], "sum");
    } else {
        for (int r = 0; r < 2; r++)
            if (hd[r] >= 0) m->out_unit[m->n_out++] = hd[r];
    }
    for (int i = 0; i < m->n_units; i++)
        if (m->units[i].kind == UNIT_HEAD || m->units[i].kind == UNIT_SUM) {
            m->units[i].c = N;
            m->units[i].L = 1;
        }
}

mrm_status model_build(mrm_model *m, mrm_error *err) {
    builder b = {.m = m, .pass = 0};
    build_pass(&b);
    m->n_params = b.np;
    m->n_stats = b.ns;
    m->n_counts = b.nc;
    m->n_tensors = b.nt;
    m->params = calloc(b.np, sizeof(float));
    m->grads = calloc(b.np, sizeof(float));
    m->stats = calloc(b.ns ? b.ns : 1, sizeof(float));
    m->counts = calloc(b.nc ? b.nc : 1, sizeof(int64_t));
    m->tensors = calloc((size_t)b.nt, sizeof(mrm_tensor));
    m->init = calloc((size_t)b.nt, sizeof(init_kind));
    m->bound = calloc((size_t)b.nt, sizeof(float));
    if (!m->params || !m->grads || !m->stats || !m->counts || !m->tensors || !m->init || !m->bound)
        return mrm_fail(err, MRM_ERR_NOMEM, "model: out of memory (%zu parameters)", b.np);
    builder b1 = {.m = m, .pass = 1};
    build_pass(&b1);
    if (b1.nomem) return mrm_fail(err, MRM_ERR_NOMEM, "model: out of memory");
    return MRM_OK;
}

int model_walk(mrm_model *m, model_tensor_fn fn, void *ctx) {
    builder b = {.m = m, .pass = 2, .fn = fn, .ctx = ctx};
    build_pass(&b);
    return b.stop;
}

/* w33[o, i, j] = (sum over the kernels k of w_k[o, i, j - (33 - k)/2]) / 4. */
void basescale_merge(const basescale *s, float *w33) {
    const long n = (long)s->conv[0].cout * s->conv[0].cin;
    /* (o, i) pairs shared out: it runs before every training forward, serially a few tenths of a
     * millisecond; each tap still sums the kernels in the order 1..4 */
#pragma omp parallel for if (n * MS_TAPS > 65536) schedule(static)
    for (long oi = 0; oi < n; oi++) {
        float *r = w33 + (size_t)oi * MS_TAPS;
        for (int j = 0; j < MS_TAPS; j++) r[j] = 0.0f;
        for (int q = 0; q < 4; q++) {
            int k = s->conv[q].k, off = (MS_TAPS - k) / 2;
            const float *wk = s->conv[q].w + (size_t)oi * k;
            for (int j = 0; j < k; j++) r[off + j] += 0.25f * wk[j];
        }
    }
}
