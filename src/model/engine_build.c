/* Compiling a model into an engine image (mrmnet/engine_build.h): one walk of the unit list
 * (model_internal.h) emits the steps, folding each BatchNorm into the layer before it as the
 * evaluation-mode forward computes it,
 *   w'[o, ...] = w[o, ...] * s[o],  bias[o] = beta[o] - running_mean[o] * s[o],
 *   s[o] = gamma[o] / sqrt(running_var[o] + eps),
 * then plans the activation buffers of one record by their lifetimes. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/partition.h"
#include "engine/engine_image.h"
#include "engine/kernels.h"
#include "model/model_internal.h"
#include "mrmnet/engine_build.h"

#define MAX_STEPS 512
#define MAX_BUFS 512

typedef struct bld {
    const mrm_model *m;
    eng_step st[MAX_STEPS];
    int ns;
    eng_buf b[MAX_BUFS];
    int def[MAX_BUFS], last[MAX_BUFS];
    int nb;
    unsigned char *w;
    size_t wlen, wcap;
    size_t scratch;
    int overflow, nomem;
    int unit_out[MAX_UNITS];
} bld;

static int new_buf(bld *B, int c, int L) {
    if (B->nb >= MAX_BUFS) {
        B->overflow = 1;
        return 1;
    }
    int id = B->nb++;
    B->b[id].c = (uint32_t)c;
    B->b[id].L = (uint32_t)L;
    B->b[id].off = 0;
    B->def[id] = B->last[id] = -1;
    return id;
}

/* Appends n floats (NULL: zeros) to the arena, 64-byte aligned; returns the offset. */
static uint64_t put(bld *B, const float *src, size_t n, size_t zero_tail) {
    size_t off = (B->wlen + 63) / 64 * 64, bytes = (n + zero_tail) * sizeof(float);
    if (off + bytes > B->wcap) {
        size_t cap = B->wcap ? B->wcap : 1 << 20;
        while (cap < off + bytes) cap *= 2;
        unsigned char *p = realloc(B->w, cap);
        if (!p) {
            B->nomem = 1;
            return ENG_NONE;
        }
        B->w = p;
        B->wcap = cap;
    }
    memset(B->w + B->wlen, 0, off - B->wlen);
    if (src) memcpy(B->w + off, src, n * sizeof(float));
    else memset(B->w + off, 0, n * sizeof(float));
    memset(B->w + off + n * sizeof(float), 0, zero_tail * sizeof(float));
    B->wlen = off + bytes;
    return off;
}

static eng_step *add_step(bld *B, int op, int in0, int in1, int out) {
    if (B->ns >= MAX_STEPS) {
        B->overflow = 1;
        B->ns = 0;
    }
    eng_step *s = &B->st[B->ns];
    memset(s, 0, sizeof *s);
    s->op = op;
    s->in0 = in0;
    s->in1 = in1;
    s->out = out;
    for (int j = 0; j < ENG_NW; j++) s->w[j] = ENG_NONE;
    int i = B->ns++;
    if (in0 >= 0) B->last[in0] = i;
    if (in1 >= 0) B->last[in1] = i;
    if (out >= 0 && B->def[out] < 0) B->def[out] = i;
    if (out >= 0) B->last[out] = i;
    return s;
}

static void set_w(bld *B, eng_step *s, int j, const float *src, size_t n, size_t tail) {
    s->w[j] = put(B, src, n, tail);
    s->nw[j] = (n + tail) * sizeof(float);
}

/* A conv + (folded) BN: out = relu?(conv(in) + bias [+ res]); returns the output buffer. */
static int emit_cbn(bld *B, const cbn *u, const float *w_src, int in, int res, int relu) {
    const conv_p *c = &u->conv;
    const bn_p *bn = &u->bn;
    int cig = c->cin / c->groups, cog = c->cout / c->groups;
    size_t row = (size_t)cig * c->k, n = (size_t)c->cout * row;
    float *wp = malloc(n * sizeof(float)), *bias = malloc((size_t)c->cout * sizeof(float));
    if (!wp || !bias) {
        free(wp), free(bias);
        B->nomem = 1;
        return 1;
    }
    for (int o = 0; o < c->cout; o++) {
        float s = bn->gamma[o] / sqrtf(bn->running_var[o] + BN_EPS);
        bias[o] = bn->beta[o] - bn->running_mean[o] * s;
        int g = o / cog, ol = o % cog;
        for (int i = 0; i < cig; i++)
            for (int k = 0; k < c->k; k++)
                wp[(((size_t)g * cig + i) * c->k + k) * cog + ol] = w_src[(size_t)o * row + (size_t)i * c->k + k] * s;
    }
    int out = new_buf(B, c->cout, u->lout);
    eng_step *s = add_step(B, ENG_OP_CONV, in, res, out);
    s->cin = c->cin, s->cout = c->cout, s->k = c->k, s->stride = c->stride, s->pad = c->pad, s->groups = c->groups;
    s->lin = u->lin, s->lout = u->lout, s->relu = relu;
    set_w(B, s, 0, wp, n, ENG_W_TAIL);
    set_w(B, s, 1, bias, (size_t)c->cout, 0);
    free(wp), free(bias);
    size_t scr = mrm_eng_conv_scratch_floats(c->cin, u->lout, c->k, c->stride);
    if (scr > B->scratch) B->scratch = scr;
    return out;
}

static void need_scratch(bld *B, size_t n) {
    if (n > B->scratch) B->scratch = n;
}

static int emit_block(bld *B, const block *k, int in) {
    if (k->kind == BLK_BASIC) {
        int t = emit_cbn(B, &k->c1, k->c1.conv.w, in, -1, 1);
        int res = k->has_ds ? emit_cbn(B, &k->ds, k->ds.conv.w, in, -1, 0) : in;
        return emit_cbn(B, &k->c2, k->c2.conv.w, t, res, 1);
    }
    int h = emit_cbn(B, &k->c1, k->c1.conv.w, in, -1, 1);
    int out = new_buf(B, k->c, k->L);
    eng_step *s = add_step(B, ENG_OP_GATE, in, h, out);
    s->c = k->c, s->L = k->L, s->kind = k->kind == BLK_SE;
    if (k->kind == BLK_SE) {
        set_w(B, s, 0, k->fc0.w, (size_t)(k->c / 4) * k->c, 0);
        set_w(B, s, 1, k->fc2.w, (size_t)k->c * (k->c / 4), 0);
    }
    need_scratch(B, 4 * (size_t)k->c + 64);
    return out;
}

static int emit_fusion(bld *B, const fusion *f, int in) {
    int c = f->c, c8 = c / 8, L = f->L;
    float *m1 = malloc((size_t)c * c8 * sizeof(float)), *mb = malloc((size_t)c * sizeof(float));
    if (!m1 || !mb) {
        free(m1), free(mb);
        B->nomem = 1;
        return 1;
    }
    for (int o = 0; o < c; o++) { /* the channel MLP's BN folded into its second layer */
        float s = f->mbn.gamma[o] / sqrtf(f->mbn.running_var[o] + BN_EPS);
        for (int j = 0; j < c8; j++) m1[(size_t)o * c8 + j] = f->m1.w[(size_t)o * c8 + j] * s;
        mb[o] = f->mbn.beta[o] - f->mbn.running_mean[o] * s;
    }
    float sw[14], sb;
    float s0 = f->sp.bn.gamma[0] / sqrtf(f->sp.bn.running_var[0] + BN_EPS);
    for (int j = 0; j < 14; j++) sw[j] = f->sp.conv.w[j] * s0;
    sb = f->sp.bn.beta[0] - f->sp.bn.running_mean[0] * s0;
    int out = new_buf(B, 2 * c, L);
    eng_step *s = add_step(B, ENG_OP_FUSION, in, -1, out);
    s->c = c, s->L = L;
    set_w(B, s, 0, f->m0.w, (size_t)c8 * c, 0);
    set_w(B, s, 1, m1, (size_t)c * c8, 0);
    set_w(B, s, 2, mb, (size_t)c, 0);
    set_w(B, s, 3, sw, 14, 0);
    set_w(B, s, 4, &sb, 1, 0);
    set_w(B, s, 5, f->norm.w, 2 * (size_t)c, 0);
    set_w(B, s, 6, f->norm.b, 2 * (size_t)c, 0);
    free(m1), free(mb);
    need_scratch(B, 4 * (size_t)c + 4 * (size_t)L);
    int x = out;
    for (int j = 0; j < 4; j++) x = emit_block(B, &f->layer[j], x);
    return x;
}

static int in_buf(const bld *B, const unit *u, int i) { return u->in[i] < 0 ? 0 : B->unit_out[u->in[i]]; }

static void emit_unit(bld *B, const unit *u, int idx) {
    const mrm_model *m = B->m;
    int in = in_buf(B, u, 0), out = 1;
    switch (u->kind) {
    case UNIT_STEM: {
        const cbn *c = &u->p.stem;
        int t = emit_cbn(B, c, c->conv.w, in, -1, 1);
        out = new_buf(B, c->conv.cout, c->lout + 1);
        eng_step *s = add_step(B, ENG_OP_POOL2S1, t, -1, out);
        s->c = c->conv.cout, s->L = c->lout;
        break;
    }
    case UNIT_BASESCALE: {
        const basescale *bs = &u->p.bs;
        int t1 = emit_cbn(B, &bs->shortcut, bs->shortcut.conv.w, in, -1, 1);
        int sp = new_buf(B, bs->cout, bs->shortcut.lout / 2);
        eng_step *s = add_step(B, ENG_OP_POOL2, t1, -1, sp);
        s->c = bs->cout, s->L = bs->shortcut.lout;
        float *w33 = malloc(sizeof(float) * (size_t)bs->cout * bs->conv[0].cin * MS_TAPS);
        if (!w33) {
            B->nomem = 1;
            break;
        }
        basescale_merge(bs, w33);
        int t2 = emit_cbn(B, &bs->ms, w33, in, -1, 1);
        free(w33);
        out = new_buf(B, bs->cout, bs->lout);
        s = add_step(B, ENG_OP_POOL2, t2, sp, out);
        s->c = bs->cout, s->L = bs->ms.lout;
        break;
    }
    case UNIT_BLOCK: out = emit_block(B, &u->p.blk, in); break;
    case UNIT_FUSION: out = emit_fusion(B, &u->p.fu, in); break;
    case UNIT_HEAD: {
        const head *h = &u->p.hd;
        int N = m->cfg.n_classes;
        out = new_buf(B, N, 1);
        eng_step *s = add_step(B, ENG_OP_HEAD, in, u->n_in > 1 ? in_buf(B, u, 1) : -1, out);
        s->c = h->c, s->cout = N;
        set_w(B, s, 0, h->norm.w, (size_t)h->c, 0);
        set_w(B, s, 1, h->norm.b, (size_t)h->c, 0);
        set_w(B, s, 2, h->fc.w, (size_t)N * h->c, 0);
        set_w(B, s, 3, h->fc.b, (size_t)N, 0);
        need_scratch(B, 4 * (size_t)h->c + 64);
        break;
    }
    case UNIT_SUM:
        out = new_buf(B, m->cfg.n_classes, 1);
        add_step(B, ENG_OP_SUM, in, in_buf(B, u, 1), out);
        break;
    }
    B->unit_out[idx] = out;
}

/* Places the activation buffers: each at the lowest offset (multiple of 16 floats) where it
 * overlaps no buffer whose life [def, last] overlaps its own. The outputs live to the end. */
static uint64_t plan(bld *B, const int *outs, int n_out) {
    for (int j = 0; j < n_out; j++) B->last[outs[j]] = B->ns;
    uint64_t total = 0;
    for (int i = 1; i < B->nb; i++) {
        uint64_t need = ((uint64_t)B->b[i].c * B->b[i].L + 15) / 16 * 16, off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 1; j < i; j++) {
                if (B->last[j] < B->def[i] || B->def[j] > B->last[i]) continue; /* lives apart */
                uint64_t oj = B->b[j].off, nj = ((uint64_t)B->b[j].c * B->b[j].L + 15) / 16 * 16;
                if (off < oj + nj && oj < off + need) {
                    off = oj + nj;
                    moved = 1;
                }
            }
        }
        B->b[i].off = off;
        if (off + need > total) total = off + need;
    }
    return total;
}

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

mrm_status mrm_engine_build(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len, mrm_error *err) {
    *image = NULL;
    *len = 0;
    bld *B = calloc(1, sizeof *B);
    if (!B) return mrm_fail(err, MRM_ERR_NOMEM, "engine build: out of memory");
    B->m = m;
    int x = new_buf(B, MRM_INPUT_LEADS, MRM_INPUT_LEN);
    (void)x;
    for (int phase = UNIT_SHARED; phase <= UNIT_TAIL; phase++)
        for (int i = 0; i < m->n_units; i++)
            if (m->units[i].branch == phase) emit_unit(B, &m->units[i], i);
    int outs[2] = {B->unit_out[m->out_unit[0]], m->n_out > 1 ? B->unit_out[m->out_unit[1]] : -1};
    mrm_status st = MRM_OK;
    if (B->nomem) st = mrm_fail(err, MRM_ERR_NOMEM, "engine build: out of memory");
    else if (B->overflow) st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "engine build: more than %d steps or buffers", MAX_STEPS);
    if (st) {
        free(B->w);
        free(B);
        return st;
    }
    uint64_t act = plan(B, outs, m->n_out);
    /* metadata */
    size_t meta_bytes = 0;
    for (int i = 0; meta && i < meta->n; i++) meta_bytes += strlen(meta->keys[i]) + strlen(meta->values[i]) + 2;
    size_t bufs_off = align64(sizeof(eng_header)), steps_off = align64(bufs_off + (size_t)B->nb * sizeof(eng_buf));
    size_t meta_off = steps_off + (size_t)B->ns * sizeof(eng_step);
    size_t weights_off = align64(meta_off + meta_bytes), total = align64(weights_off + B->wlen);
    unsigned char *img = aligned_alloc(MRM_ENGINE_ALIGN, total);
    if (!img) {
        free(B->w);
        free(B);
        return mrm_fail(err, MRM_ERR_NOMEM, "engine build: out of memory (%zu bytes)", total);
    }
    memset(img, 0, total);
    eng_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, ENG_MAGIC, 8);
    h.version = ENG_VERSION;
    h.header_bytes = sizeof(eng_header);
    h.step_bytes = sizeof(eng_step);
    h.n_steps = (uint32_t)B->ns;
    h.n_bufs = (uint32_t)B->nb;
    h.n_classes = (uint32_t)m->cfg.n_classes;
    h.n_heads = (uint32_t)m->n_out;
    h.out_buf[0] = outs[0];
    h.out_buf[1] = outs[1];
    h.bufs_off = bufs_off;
    h.steps_off = steps_off;
    h.meta_off = meta_off;
    h.meta_bytes = meta_bytes;
    h.weights_off = weights_off;
    h.weights_bytes = total - weights_off;
    h.total_bytes = total;
    h.act_floats = act;
    h.scratch_floats = (B->scratch + 15) / 16 * 16;
    memcpy(img, &h, sizeof h);
    memcpy(img + bufs_off, B->b, (size_t)B->nb * sizeof(eng_buf));
    memcpy(img + steps_off, B->st, (size_t)B->ns * sizeof(eng_step));
    char *mp = (char *)img + meta_off;
    for (int i = 0; meta && i < meta->n; i++) {
        size_t a = strlen(meta->keys[i]) + 1, b = strlen(meta->values[i]) + 1;
        memcpy(mp, meta->keys[i], a);
        memcpy(mp + a, meta->values[i], b);
        mp += a + b;
    }
    memcpy(img + weights_off, B->w, B->wlen);
    free(B->w);
    free(B);
    *image = img;
    *len = total;
    return MRM_OK;
}

void mrm_engine_image_free(void *image) { free(image); }

mrm_status mrm_engine_image_save(const void *image, size_t len, const char *path, mrm_error *err) {
    return mrm_write_file_atomic(path, image, len, err);
}

mrm_status mrm_engine_image_load(const char *path, void **image, size_t *len, mrm_error *err) {
    *image = NULL;
    *len = 0;
    char *data = NULL;
    size_t n = 0;
    mrm_status st = mrm_read_file(path, (size_t)1 << 32, &data, &n, err);
    if (st) return st;
    unsigned char *img = aligned_alloc(MRM_ENGINE_ALIGN, align64(n ? n : 1));
    if (!img) {
        free(data);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, n);
    }
    memcpy(img, data, n);
    free(data);
    mrm_engine e;
    st = mrm_engine_open(&e, img, n, err);
    if (st) {
        mrm_error_prefix(err, "%s", path);
        free(img);
        return st;
    }
    *image = img;
    *len = n;
    return MRM_OK;
}

/* ---- a runner: image + per-thread work buffers -------------------------------------------- */

mrm_status mrm_engine_runner_open(mrm_engine_runner *r, void *image, size_t len, int n_slots, mrm_error *err) {
    memset(r, 0, sizeof *r);
    r->image = image;
    r->image_len = len;
    if (n_slots < 1 || n_slots > 1024) {
        mrm_engine_runner_free(r);
        return mrm_fail(err, MRM_ERR_INVALID, "engine: %d thread slots", n_slots);
    }
    mrm_engine_sizes sz;
    mrm_status st = mrm_engine_open(&r->engine, r->image, r->image_len, err);
    if (!st) st = mrm_engine_get_sizes(&r->engine, 1, &sz, err);
    if (!st) {
        r->work_bytes = align64(sz.work_bytes);
        r->work = calloc((size_t)n_slots, sizeof(void *));
        if (!r->work) st = mrm_fail(err, MRM_ERR_NOMEM, "engine: out of memory");
        for (int i = 0; !st && i < n_slots; i++) {
            r->work[i] = aligned_alloc(MRM_ENGINE_ALIGN, r->work_bytes);
            if (!r->work[i]) st = mrm_fail(err, MRM_ERR_NOMEM, "engine: out of memory (%zu bytes)", r->work_bytes);
            r->n_slots = i + 1;
        }
    }
    if (st) mrm_engine_runner_free(r);
    return st;
}

mrm_status mrm_engine_runner_create(mrm_engine_runner *r, const mrm_model *m, int n_slots, mrm_error *err) {
    memset(r, 0, sizeof *r);
    void *img = NULL;
    size_t len = 0;
    mrm_status st = mrm_engine_build(m, NULL, &img, &len, err);
    if (st) return st;
    return mrm_engine_runner_open(r, img, len, n_slots, err);
}

int mrm_engine_image_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[8];
    int is = fread(magic, 1, 8, f) == 8 && !memcmp(magic, ENG_MAGIC, 8);
    fclose(f);
    return is;
}

mrm_status mrm_engine_meta(const mrm_engine *e, mrm_meta *meta, mrm_error *err) {
    const eng_header *h = (const eng_header *)(const void *)e->image;
    const char *p = (const char *)e->image + h->meta_off, *end = p + h->meta_bytes;
    while (p < end) {
        const char *k = p, *v = k + strlen(k) + 1;
        if (v >= end) break;
        mrm_status st = mrm_meta_set(meta, k, v, err);
        if (st) return st;
        p = v + strlen(v) + 1;
    }
    return MRM_OK;
}

void mrm_engine_runner_free(mrm_engine_runner *r) {
    for (int i = 0; r->work && i < r->n_slots; i++) free(r->work[i]);
    free(r->work);
    free(r->image);
    memset(r, 0, sizeof *r);
}

mrm_status mrm_engine_runner_run(mrm_engine_runner *r, const float *x, int B, float *logits1, float *logits2,
                                 mrm_error *err) {
    if (B < 1) return mrm_fail(err, MRM_ERR_INVALID, "engine run: batch of %d", B);
    int nt = omp_get_max_threads();
    if (nt > r->n_slots) nt = r->n_slots;
    if (nt > B) nt = B;
    if (nt <= 1) return mrm_engine_run(&r->engine, r->work[0], r->work_bytes, x, B, logits1, logits2, err);
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN, N = (size_t)r->engine.n_classes;
    mrm_status st = MRM_OK;
#pragma omp parallel num_threads(nt)
    {
        /* over the team there is (smaller than nt inside another parallel region, say) */
        int t = omp_get_thread_num();
        mrm_range rows = mrm_partition(B, omp_get_num_threads(), t);
        int b0 = (int)rows.begin, b1 = (int)rows.end;
        mrm_error e2;
        mrm_status s2 = mrm_engine_run(&r->engine, r->work[t], r->work_bytes, x + (size_t)b0 * rec, b1 - b0,
                                       logits1 ? logits1 + (size_t)b0 * N : NULL, logits2 ? logits2 + (size_t)b0 * N : NULL,
                                       &e2);
        if (s2) {
#pragma omp critical(mrm_engine_runner)
            if (!st) {
                st = s2;
                if (err) *err = e2;
            }
        }
    }
    return st;
}

/* ---- int8 ------------------------------------------------------------------------------------ */

typedef struct arena {
    unsigned char *p;
    size_t len, cap;
    int nomem;
} arena;

static uint64_t arena_put(arena *a, const void *src, size_t bytes, size_t zero_tail) {
    size_t off = (a->len + 63) / 64 * 64, n = bytes + zero_tail;
    if (off + n > a->cap) {
        size_t cap = a->cap ? a->cap : 1 << 20;
        while (cap < off + n) cap *= 2;
        unsigned char *q = realloc(a->p, cap);
        if (!q) {
            a->nomem = 1;
            return ENG_NONE;
        }
        a->p = q;
        a->cap = cap;
    }
    memset(a->p + a->len, 0, off - a->len);
    memcpy(a->p + off, src, bytes);
    memset(a->p + off + bytes, 0, zero_tail);
    a->len = off + n;
    return off;
}

mrm_status mrm_engine_quantize(const void *image, size_t len, const float *absmax, void **out, size_t *out_len,
                               mrm_error *err) {
    *out = NULL;
    *out_len = 0;
    mrm_engine e;
    mrm_status st = mrm_engine_open(&e, image, len, err);
    if (st) return st;
    const unsigned char *img = image;
    eng_header h;
    memcpy(&h, img, sizeof h);
    eng_step *steps = malloc((size_t)h.n_steps * sizeof(eng_step));
    arena a = {0};
    if (!steps) return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
    memcpy(steps, img + h.steps_off, (size_t)h.n_steps * sizeof(eng_step));
    int8_t *w8 = NULL;
    float *sc = NULL;
    for (uint32_t i = 0; i < h.n_steps && !a.nomem; i++) {
        eng_step *s = &steps[i];
        const unsigned char *W = img + h.weights_off;
        int quant = s->op == ENG_OP_CONV && s->in0 != 0; /* the first convolution stays float */
        uint64_t old[ENG_NW], oldn[ENG_NW];
        memcpy(old, s->w, sizeof old);
        memcpy(oldn, s->nw, sizeof oldn);
        for (int j = 0; j < ENG_NW; j++) {
            if (old[j] == ENG_NONE || (quant && j == 0)) continue;
            s->w[j] = arena_put(&a, W + old[j], (size_t)oldn[j], 0);
        }
        if (!quant) continue;
        int cig = s->cin / s->groups, cog = s->cout / s->groups, K = s->k;
        size_t n = (size_t)s->cout * cig * K;
        const float *wf = (const float *)(const void *)(W + old[0]);
        free(w8), free(sc);
        w8 = calloc(n + ENG_W_TAIL + 4, 1);
        sc = malloc((size_t)s->cout * sizeof(float));
        if (!w8 || !sc) {
            a.nomem = 1;
            break;
        }
        float in_scale = absmax[s->in0] > 0.0f ? absmax[s->in0] / 127.0f : 1.0f;
        for (int o = 0; o < s->cout; o++) {
            int g = o / cog, ol = o % cog;
            float mx = 0.0f;
            for (int q = 0; q < cig * K; q++) {
                float v = fabsf(wf[((size_t)g * cig * K + q) * cog + ol]);
                mx = v > mx ? v : mx;
            }
            float ws = mx > 0.0f ? mx / 127.0f : 1.0f;
            for (int q = 0; q < cig * K; q++) {
                size_t idx = ((size_t)g * cig * K + q) * cog + ol;
                long v = lroundf(wf[idx] / ws);
                w8[idx] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            sc[o] = in_scale * ws;
        }
        size_t wbytes = (n + ENG_W_TAIL + 3) / 4 * 4;
        s->op = ENG_OP_CONV8;
        s->in_scale = in_scale;
        s->w[0] = arena_put(&a, w8, wbytes, 0);
        s->nw[0] = wbytes;
        s->w[2] = arena_put(&a, sc, (size_t)s->cout * sizeof(float), 0);
        s->nw[2] = (uint64_t)s->cout * sizeof(float);
    }
    free(w8), free(sc);
    if (a.nomem) {
        free(steps), free(a.p);
        return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
    }
    static const char qkey[] = "quantization\0int8";
    size_t meta_bytes = (size_t)h.meta_bytes + sizeof qkey;
    size_t weights_off = align64((size_t)h.meta_off + meta_bytes), total = align64(weights_off + a.len);
    unsigned char *o = aligned_alloc(MRM_ENGINE_ALIGN, total);
    if (!o) {
        free(steps), free(a.p);
        return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
    }
    memset(o, 0, total);
    memcpy(o, img, (size_t)h.meta_off); /* header, buffers, (old) steps */
    memcpy(o + h.steps_off, steps, (size_t)h.n_steps * sizeof(eng_step));
    memcpy(o + h.meta_off, img + h.meta_off, (size_t)h.meta_bytes);
    memcpy(o + h.meta_off + h.meta_bytes, qkey, sizeof qkey);
    memcpy(o + weights_off, a.p, a.len);
    h.meta_bytes = meta_bytes;
    h.weights_off = weights_off;
    h.weights_bytes = total - weights_off;
    h.total_bytes = total;
    h.flags |= ENG_FLAG_INT8;
    memcpy(o, &h, sizeof h);
    free(steps), free(a.p);
    st = mrm_engine_open(&e, o, total, err);
    if (st) {
        free(o);
        return st;
    }
    *out = o;
    *out_len = total;
    return MRM_OK;
}

mrm_status mrm_engine_build_int8(const mrm_model *m, const mrm_meta *meta, const float *X, long long n, void **image,
                                 size_t *len, mrm_error *err) {
    *image = NULL;
    *len = 0;
    if (!X || n < 1) return mrm_fail(err, MRM_ERR_INVALID, "engine int8: no calibration records");
    void *fimg = NULL;
    size_t flen = 0;
    mrm_status st = mrm_engine_build(m, meta, &fimg, &flen, err);
    if (st) return st;
    mrm_engine e;
    mrm_engine_sizes sz;
    st = mrm_engine_open(&e, fimg, flen, err);
    if (!st) st = mrm_engine_get_sizes(&e, 1, &sz, err);
    float *absmax = NULL;
    void *work = NULL;
    if (!st) {
        absmax = calloc((size_t)mrm_engine_num_buffers(&e), sizeof(float));
        work = aligned_alloc(MRM_ENGINE_ALIGN, align64(sz.work_bytes));
        if (!absmax || !work) st = mrm_fail(err, MRM_ERR_NOMEM, "engine int8: out of memory");
    }
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN;
    for (long long r = 0; !st && r < n; r += 64) {
        int b = (int)(n - r < 64 ? n - r : 64);
        st = mrm_engine_calibrate(&e, work, sz.work_bytes, X + (size_t)r * rec, b, absmax, err);
    }
    if (!st) st = mrm_engine_quantize(fimg, flen, absmax, image, len, err);
    free(absmax);
    free(work);
    free(fimg);
    return st;
}
