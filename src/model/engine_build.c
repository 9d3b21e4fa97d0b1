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

#include "common/bigalloc.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "common/partition.h"
#include "common/team_barrier.h"
#include "engine/engine_image.h"
#include "engine/kernels.h"
#include "engine/wino.h"
#include "engine/fft.h"
#include "io/safetensors.h"
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
    /* the layer each convolution step comes from (names in the quantised file) */
    const cbn *src[MAX_STEPS];
    const basescale *src_bs[MAX_STEPS]; /* the merged multi-scale convolution of a BaseScale */
    const basescale *cur_bs;
    int direct; /* every convolution direct (mrm_engine_build_direct) */
    int cur_lane;   /* the lane of the steps being emitted (engine_image.h) */
    int plan_lanes; /* plan the two lanes' buffers apart (mrm_engine_build_lanes) */
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
    s->lane = B->cur_lane;
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

/* The convolutions computed with Winograd's transforms (engine/wino.h) or the FFT rather than
 * directly (all ungrouped, on 32 input channels and more): the 33-tap multi-scale ones by the
 * FFT; the 3-tap stride-1 ones by F(4,3) (half the products; with its transforms vectorised, in
 * a whole record 0.85-0.9 of the direct kernel's time at twice the weights); others of more than
 * 3 taps whose transformed products are fewer than 0.6 of the direct ones. Not the 5-tap one on
 * 32 channels (0.7 of the products, measured slower), nor the stride-2 3-tap one (F(4,4) over
 * the two phases: 0.9 of the products). */
static int conv_kind(const conv_p *c, int direct_only) {
    if (direct_only || c->groups != 1 || c->cin < 32) return ENG_CONV_DIRECT;
    if (c->k == 3 && c->stride == 1) return ENG_CONV_WINOGRAD;
    if (c->k <= 3) return ENG_CONV_DIRECT;
    /* 16 taps per phase and more (the 33-tap ones at strides 1 and 2): the FFT (engine/fft.h),
     * about an eighth of the direct products against Winograd's half, each complex product as
     * three real ones (kind ENG_CONV_FFT3: 0.80-0.85 of the four-product kernel's time, its
     * weights half as large again) */
    if ((c->k + c->stride - 1) / c->stride >= 16 && (c->k + c->stride - 1) / c->stride <= ENG_FFT_NMAX / 2 + 1)
        return ENG_CONV_FFT3;
    eng_wino w = eng_wino_shape(c->cin, 1, c->k, c->stride, ENG_T_MAX);
    double direct = (double)c->cin * c->k, wino = (double)w.n / ENG_WINO_M * w.Ce * w.J;
    return wino < 0.6 * direct ? ENG_CONV_WINOGRAD : ENG_CONV_DIRECT;
}

/* A conv + (folded) BN: out = relu?(conv(in) + bias [+ res]); returns the output buffer. */
static int emit_cbn(bld *B, const cbn *u, const float *w_src, int in, int res, int relu) {
    const conv_p *c = &u->conv;
    const bn_p *bn = &u->bn;
    int cig = c->cin / c->groups, cog = c->cout / c->groups;
    const int kind = conv_kind(c, B->direct);
    size_t row = (size_t)cig * c->k, n = (size_t)c->cout * row;
    size_t nu = kind == ENG_CONV_WINOGRAD ? mrm_eng_wino_weight_floats(c->cin, c->cout, c->k, c->stride)
                : kind == ENG_CONV_FFT3     ? mrm_eng_fft3_weight_floats(c->cin, c->cout, c->k, c->stride)
                                            : 0;
    float *wp = malloc(n * sizeof(float)), *bias = malloc((size_t)c->cout * sizeof(float));
    float *U = nu ? malloc(nu * sizeof(float)) : NULL;
    if (!wp || !bias || (nu && !U)) {
        free(wp), free(bias), free(U);
        B->nomem = 1;
        return 1;
    }
    for (int o = 0; o < c->cout; o++) {
        float s = bn->gamma[o] / sqrtf(bn->running_var[o] + BN_EPS);
        bias[o] = bn->beta[o] - bn->running_mean[o] * s;
        int g = o / cog, ol = o % cog;
        for (int i = 0; i < cig; i++)
            for (int k = 0; k < c->k; k++) {
                float v = w_src[(size_t)o * row + (size_t)i * c->k + k] * s;
                if (U) wp[(size_t)o * row + (size_t)i * c->k + k] = v; /* (o, i, k) for the transform */
                else wp[(((size_t)g * cig + i) * c->k + k) * cog + ol] = v;
            }
    }
    int out = new_buf(B, c->cout, u->lout);
    eng_step *s = add_step(B, ENG_OP_CONV, in, res, out);
    B->src[s - B->st] = u;
    B->src_bs[s - B->st] = B->cur_bs;
    s->cin = c->cin, s->cout = c->cout, s->k = c->k, s->stride = c->stride, s->pad = c->pad, s->groups = c->groups;
    s->lin = u->lin, s->lout = u->lout, s->relu = relu, s->kind = kind;
    if (U) {
        if (kind == ENG_CONV_FFT3) mrm_eng_fft3_pack(U, wp, c->cin, c->cout, c->k, c->stride);
        else mrm_eng_wino_pack(U, wp, c->cin, c->cout, c->k, c->stride);
        set_w(B, s, 0, U, nu, 0);
    } else {
        set_w(B, s, 0, wp, n, ENG_W_TAIL);
    }
    set_w(B, s, 1, bias, (size_t)c->cout, 0);
    free(wp), free(bias), free(U);
    size_t scr = mrm_eng_conv_scratch_floats2(kind, c->cin, c->cout, u->lout, c->k, c->stride);
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
        B->cur_bs = bs;
        int t2 = emit_cbn(B, &bs->ms, w33, in, -1, 1);
        B->cur_bs = NULL;
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
 * overlaps no buffer whose life [def, last] overlaps its own, nor, with plan_lanes, any buffer
 * made in the other lane (the two lanes may then run side by side). The outputs live to the end. */
static uint64_t plan(bld *B, const int *outs, int n_out) {
    for (int j = 0; j < n_out; j++) B->last[outs[j]] = B->ns;
    if (B->plan_lanes) /* a buffer made outside the lanes and read inside lives to the lanes' end */
        for (int r0 = 0; r0 < B->ns;) {
            if (!B->st[r0].lane) {
                r0++;
                continue;
            }
            const int r1 = (int)eng_lane_region_end(B->st, (uint32_t)B->ns, (uint32_t)r0);
            for (int i = 1; i < B->nb; i++)
                if (B->def[i] >= 0 && !B->st[B->def[i]].lane && B->def[i] < r1 && B->last[i] >= r0 && B->last[i] < r1)
                    B->last[i] = r1;
            r0 = r1;
        }
    uint64_t total = 0;
    for (int i = 1; i < B->nb; i++) {
        uint64_t need = ((uint64_t)B->b[i].c * B->b[i].L + 15) / 16 * 16, off = 0;
        const int lane_i = B->def[i] >= 0 ? B->st[B->def[i]].lane : 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 1; j < i; j++) {
                const int lane_j = B->def[j] >= 0 ? B->st[B->def[j]].lane : 0;
                const int other_lane = B->plan_lanes && lane_i && lane_j && lane_i != lane_j;
                if (!other_lane && (B->last[j] < B->def[i] || B->def[j] > B->last[i])) continue; /* lives apart */
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

/* The layers of the steps (src, src_bs: MAX_STEPS entries each, may be NULL). */
static mrm_status build_image(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len, const cbn **src,
                              const basescale **src_bs, int direct, int lanes, mrm_error *err) {
    *image = NULL;
    *len = 0;
    bld *B = calloc(1, sizeof *B);
    if (!B) return mrm_fail(err, MRM_ERR_NOMEM, "engine build: out of memory");
    B->m = m;
    B->direct = direct;
    B->plan_lanes = lanes;
    int x = new_buf(B, MRM_INPUT_LEADS, MRM_INPUT_LEN);
    (void)x;
    for (int phase = UNIT_SHARED; phase <= UNIT_TAIL; phase++) {
        /* the two branches of a two-branch model are the two lanes */
        B->cur_lane = m->n_branches == ENG_MAX_LANES && phase >= 0 && phase < ENG_MAX_LANES ? phase + 1 : 0;
        for (int i = 0; i < m->n_units; i++)
            if (m->units[i].branch == phase) emit_unit(B, &m->units[i], i);
    }
    B->cur_lane = 0;
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
    unsigned char *img = mrm_alloc_large(total); /* MRM_ENGINE_ALIGN (64) or more */
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
    if (src) memcpy(src, B->src, sizeof B->src);
    if (src_bs) memcpy(src_bs, B->src_bs, sizeof B->src_bs);
    free(B->w);
    free(B);
    *image = img;
    *len = total;
    return MRM_OK;
}

mrm_status mrm_engine_build(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len, mrm_error *err) {
    return build_image(m, meta, image, len, NULL, NULL, 0, 0, err);
}

mrm_status mrm_engine_build_direct(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len,
                                   mrm_error *err) {
    return build_image(m, meta, image, len, NULL, NULL, 1, 0, err);
}

mrm_status mrm_engine_build_lanes(const mrm_model *m, const mrm_meta *meta, void **image, size_t *len, mrm_error *err) {
    return build_image(m, meta, image, len, NULL, NULL, 0, 1, err);
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
    st = mrm_engine_image_from_mem(data, n, path, image, len, err);
    free(data);
    return st;
}

static mrm_status int8_from_st(const st_file *f, void **image, size_t *len, mrm_error *err);

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
    /* each slot with room for a group of records (mrm_engine_run takes them through each step
     * together when a thread has several); a batch-1 run touches the first context only */
    if (!st) st = mrm_engine_get_sizes(&r->engine, MRM_ENGINE_GROUP, &sz, err);
    if (!st) {
        r->work_bytes = align64(sz.group_work_bytes);
        r->work = calloc((size_t)n_slots, sizeof(void *));
        if (!r->work) st = mrm_fail(err, MRM_ERR_NOMEM, "engine: out of memory");
        for (int i = 0; !st && i < n_slots; i++) {
            r->work[i] = mrm_alloc_large(r->work_bytes); /* MRM_ENGINE_ALIGN (64) or more */
            if (!r->work[i]) st = mrm_fail(err, MRM_ERR_NOMEM, "engine: out of memory (%zu bytes)", r->work_bytes);
            r->n_slots = i + 1;
        }
    }
    if (st) mrm_engine_runner_free(r);
    return st;
}

mrm_status mrm_engine_runner_set_isa(mrm_engine_runner *r, int isa, mrm_error *err) {
    mrm_engine e;
    if (!r->image) return mrm_fail(err, MRM_ERR_INVALID, "engine: the runner has no image");
    if (isa < 0 || isa > MRM_ENGINE_ISA_LAST) return mrm_fail(err, MRM_ERR_INVALID, "engine: no kernel set %d", isa);
    mrm_status st = mrm_engine_open_isa(&e, r->image, r->image_len, (mrm_engine_isa)isa, err);
    if (!st) r->engine = e;
    return st;
}

mrm_status mrm_engine_runner_create(mrm_engine_runner *r, const mrm_model *m, int n_slots, mrm_error *err) {
    memset(r, 0, sizeof *r);
    void *img = NULL;
    size_t len = 0;
    /* two or more threads: the two branches' buffers apart, so that a team of two runs them side by side */
    mrm_status st = n_slots >= 2 ? mrm_engine_build_lanes(m, NULL, &img, &len, err) : mrm_engine_build(m, NULL, &img, &len, err);
    if (st) return st;
    return mrm_engine_runner_open(r, img, len, n_slots, err);
}

int mrm_engine_image_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char head[8];
    int is = fread(head, 1, 8, f) == 8 && !memcmp(head, ENG_MAGIC, 8);
    fclose(f);
    if (is) return 1;
    st_file sf; /* a safetensors file whose metadata says it is quantised */
    mrm_error err = {0};
    if (st_read(&sf, path, &err)) return 0;
    is = mrm_meta_get(&sf.meta, "quantization") != NULL;
    st_free(&sf);
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
    if (nt <= 1) return mrm_engine_run(&r->engine, r->work[0], r->work_bytes, x, B, logits1, logits2, err);
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN, N = (size_t)r->engine.n_classes;
    /* each team's barrier, then its two sub-teams' (the branches side by side) */
    team_bar *bars = aligned_alloc(64, (size_t)3 * nt * sizeof(team_bar));
    if (!bars) return mrm_fail(err, MRM_ERR_NOMEM, "engine run: out of memory");
    for (int j = 0; j < 3 * nt; j++) team_bar_init(&bars[j]);
    mrm_status st = MRM_OK;
#pragma omp parallel num_threads(nt)
    {
        /* the team there is (smaller than nt inside another parallel region, say), cut into teams
         * that share records when the batch is small (mrm_partition_teams) */
        int T = omp_get_num_threads(), t = omp_get_thread_num();
        int g = mrm_partition_teams(B, T), j = 0;
        mrm_range th = mrm_partition_team(B, T, g, 0);
        while (t >= th.end) th = mrm_partition_team(B, T, g, ++j);
        mrm_range rows = mrm_partition(B, g, j);
        int b0 = (int)rows.begin, b1 = (int)rows.end, ith = t - (int)th.begin, nth = (int)(th.end - th.begin);
        float *l1 = logits1 ? logits1 + (size_t)b0 * N : NULL, *l2 = logits2 ? logits2 + (size_t)b0 * N : NULL;
        team_sync ts = {&bars[3 * j], nth};
        const int n1 = mrm_engine_team_lanes(&r->engine, nth); /* 0: every layer shared */
        team_sync ls = {&bars[3 * j + (ith < n1 ? 1 : 2)], ith < n1 ? n1 : nth - n1};
        mrm_error e2;
        mrm_status s2;
        if (nth == 1)
            s2 = mrm_engine_run(&r->engine, r->work[j], r->work_bytes, x + (size_t)b0 * rec, b1 - b0, l1, l2, &e2);
        else
            s2 = mrm_engine_run_subteams(&r->engine, r->work[j], r->work_bytes, x + (size_t)b0 * rec, b1 - b0, l1, l2,
                                         ith, nth, bar_sync, &ts, n1 ? &ls : NULL, &e2);
        if (s2) {
#pragma omp critical(mrm_engine_runner)
            if (!st) {
                st = s2;
                if (err) *err = e2;
            }
        }
    }
    free(bars);
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

/* One convolution step's int8 form: weights (cout, cin/groups, k) as PyTorch lays them out, the
 * weights' per-output step ws (w = int8 * ws[o]), the bias (NULL: the float image's) and the
 * input's step. */
typedef struct qstep {
    int on;
    const int8_t *w8;
    const float *ws, *bias;
    float in_scale;
} qstep;

/* The int8 image of a float image: the steps with q[i].on become CONV8. */
static mrm_status quantize_with(const void *image, size_t len, const qstep *q, void **out, size_t *out_len,
                                mrm_error *err) {
    *out = NULL;
    *out_len = 0;
    mrm_engine e;
    mrm_status st = mrm_engine_open(&e, image, len, err);
    if (st) return st;
    const int has_key = mrm_engine_info(&e, "quantization") != NULL;
    const unsigned char *img = image;
    eng_header h;
    memcpy(&h, img, sizeof h);
    eng_step *steps = malloc((size_t)h.n_steps * sizeof(eng_step));
    arena a = {0};
    if (!steps) return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
    memcpy(steps, img + h.steps_off, (size_t)h.n_steps * sizeof(eng_step));
    float *sc = NULL;
    int8_t *packed = NULL;
    int32_t *comp = NULL;
    for (uint32_t i = 0; i < h.n_steps && !a.nomem; i++) {
        eng_step *s = &steps[i];
        const unsigned char *W = img + h.weights_off;
        int quant = s->op == ENG_OP_CONV && q[i].on;
        uint64_t old[ENG_NW], oldn[ENG_NW];
        memcpy(old, s->w, sizeof old);
        memcpy(oldn, s->nw, sizeof oldn);
        for (int j = 0; j < ENG_NW; j++) {
            if (old[j] == ENG_NONE || (quant && (j == 0 || (j == 1 && q[i].bias)))) continue;
            s->w[j] = arena_put(&a, W + old[j], (size_t)oldn[j], 0);
        }
        if (!quant) continue;
        size_t wbytes = mrm_eng_pack8_bytes(s->cin, s->cout, s->k, s->groups);
        free(sc), free(packed), free(comp);
        sc = malloc((size_t)s->cout * sizeof(float));
        packed = malloc(wbytes);
        comp = malloc((size_t)s->cout * sizeof(int32_t));
        if (!sc || !packed || !comp) {
            a.nomem = 1;
            break;
        }
        mrm_eng_pack8(packed, comp, q[i].w8, s->cin, s->cout, s->k, s->groups);
        for (int o = 0; o < s->cout; o++) sc[o] = q[i].in_scale * q[i].ws[o];
        s->op = ENG_OP_CONV8;
        s->kind = ENG_CONV_DIRECT;
        s->in_scale = q[i].in_scale;
        s->w[0] = arena_put(&a, packed, wbytes, 0);
        s->nw[0] = wbytes;
        s->w[4] = arena_put(&a, comp, (size_t)s->cout * sizeof(int32_t), 0);
        s->nw[4] = (uint64_t)s->cout * sizeof(int32_t);
        if (q[i].bias) {
            s->w[1] = arena_put(&a, q[i].bias, (size_t)s->cout * sizeof(float), 0);
            s->nw[1] = (uint64_t)s->cout * sizeof(float);
        }
        s->w[2] = arena_put(&a, sc, (size_t)s->cout * sizeof(float), 0);
        s->nw[2] = (uint64_t)s->cout * sizeof(float);
        s->w[3] = arena_put(&a, q[i].ws, (size_t)s->cout * sizeof(float), 0);
        s->nw[3] = (uint64_t)s->cout * sizeof(float);
    }
    free(sc), free(packed), free(comp);
    if (a.nomem) {
        free(steps), free(a.p);
        return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
    }
    static const char qkey[] = "quantization\0int8";
    size_t meta_bytes = (size_t)h.meta_bytes + (has_key ? 0 : sizeof qkey);
    size_t weights_off = align64((size_t)h.meta_off + meta_bytes), total = align64(weights_off + a.len);
    unsigned char *o = mrm_alloc_large(total); /* MRM_ENGINE_ALIGN (64) or more */
    if (!o) {
        free(steps), free(a.p);
        return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
    }
    memset(o, 0, total);
    memcpy(o, img, (size_t)h.meta_off); /* header, buffers, (old) steps */
    memcpy(o + h.steps_off, steps, (size_t)h.n_steps * sizeof(eng_step));
    memcpy(o + h.meta_off, img + h.meta_off, (size_t)h.meta_bytes);
    if (!has_key) memcpy(o + h.meta_off + h.meta_bytes, qkey, sizeof qkey);
    memcpy(o + weights_off, a.p, a.len);
    h.meta_bytes = meta_bytes;
    h.weights_off = weights_off;
    h.weights_bytes = total - weights_off;
    h.total_bytes = total;
    h.flags |= ENG_FLAG_INT8;
    h.scratch_floats = mrm_eng_steps_scratch(steps, h.n_steps); /* a Winograd step's scratch is gone */
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

static void free_q(qstep *q, int n) {
    for (int i = 0; q && i < n; i++) {
        free((void *)q[i].w8);
        free((void *)q[i].ws);
        free((void *)q[i].bias);
    }
    free(q);
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
    const eng_step *steps = (const eng_step *)(const void *)(img + h.steps_off);
    qstep *q = calloc(h.n_steps ? h.n_steps : 1, sizeof *q);
    if (!q) return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
    for (uint32_t i = 0; i < h.n_steps; i++) {
        const eng_step *s = &steps[i];
        if (s->op != ENG_OP_CONV || s->in0 == 0) continue; /* the first convolution stays float */
        int cig = s->cin / s->groups, cog = s->cout / s->groups, K = s->k;
        size_t n = (size_t)s->cout * cig * K;
        const float *wf = (const float *)(const void *)(img + h.weights_off + s->w[0]);
        int8_t *w8 = malloc(n);
        float *ws = malloc((size_t)s->cout * sizeof(float));
        const int transformed = s->kind == ENG_CONV_WINOGRAD || s->kind == ENG_CONV_FFT || s->kind == ENG_CONV_FFT3;
        float *wd = transformed ? malloc(n * sizeof(float)) : NULL; /* the taps back */
        q[i].on = 1;
        q[i].w8 = w8;
        q[i].ws = ws;
        if (!w8 || !ws || (transformed && !wd)) {
            free(wd);
            free_q(q, (int)h.n_steps);
            return mrm_fail(err, MRM_ERR_NOMEM, "engine quantize: out of memory");
        }
        if (wd) {
            if (s->kind == ENG_CONV_FFT) mrm_eng_fft_unpack(wd, wf, s->cin, s->cout, K, s->stride);
            else if (s->kind == ENG_CONV_FFT3) mrm_eng_fft3_unpack(wd, wf, s->cin, s->cout, K, s->stride);
            else mrm_eng_wino_unpack(wd, wf, s->cin, s->cout, K, s->stride);
            wf = wd;
        }
        q[i].in_scale = absmax[s->in0] > 0.0f ? absmax[s->in0] / 127.0f : 1.0f;
        for (int o = 0; o < s->cout; o++) {
            int g = o / cog, ol = o % cog;
            float mx = 0.0f;
            for (int r = 0; r < cig * K; r++) {
                float v = fabsf(wf[((size_t)g * cig * K + r) * cog + ol]);
                mx = v > mx ? v : mx;
            }
            float step = mx > 0.0f ? mx / 127.0f : 1.0f;
            for (int r = 0; r < cig * K; r++) {
                long v = lroundf(wf[((size_t)g * cig * K + r) * cog + ol] / step);
                w8[(size_t)o * cig * K + r] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            ws[o] = step;
        }
        free(wd);
    }
    st = quantize_with(image, len, q, out, out_len, err);
    free_q(q, (int)h.n_steps);
    return st;
}

/* ---- the quantised model as a safetensors file ---------------------------------------------
 * A convolution step's name: its convolution's tensor name without ".weight", or for the merged
 * multi-scale convolution of a BaseScale "<BaseScale>.ms". The tensors it replaces: the
 * convolution's weights (conv1..conv4 for the merged one) and the BatchNorm folded into it. */

static const char *tensor_name_of(const mrm_model *m, const void *data) {
    for (int i = 0; data && i < m->n_tensors; i++)
        if (m->tensors[i].data == data) return m->tensors[i].name;
    return NULL;
}

static int tensor_index_of(const mrm_model *m, const void *data) {
    for (int i = 0; data && i < m->n_tensors; i++)
        if (m->tensors[i].data == data) return i;
    return -1;
}

/* The step's name into buf (0) or -1 when the layer is not a model tensor's. */
static int step_name(const mrm_model *m, const cbn *c, const basescale *bs, char *buf, size_t n) {
    const char *nm = tensor_name_of(m, bs ? (const void *)bs->conv[0].w : c ? (const void *)c->conv.w : NULL);
    const char *suffix = bs ? ".conv1.weight" : ".weight";
    if (!nm) return -1;
    size_t l = strlen(nm), sl = strlen(suffix);
    if (l <= sl || strcmp(nm + l - sl, suffix) || l - sl + 4 >= n) return -1;
    memcpy(buf, nm, l - sl);
    strcpy(buf + (l - sl), bs ? ".ms" : "");
    return 0;
}

/* The model tensors (indices) a step replaces; returns their count (at most 9). */
static int step_tensors(const mrm_model *m, const cbn *c, const basescale *bs, int *idx) {
    const void *p[9];
    int n = 0;
    if (bs)
        for (int j = 0; j < 4; j++) p[n++] = bs->conv[j].w;
    else
        p[n++] = c->conv.w;
    p[n++] = c->bn.gamma, p[n++] = c->bn.beta, p[n++] = c->bn.running_mean, p[n++] = c->bn.running_var;
    p[n++] = c->bn.num_batches_tracked;
    int k = 0;
    for (int j = 0; j < n; j++) {
        int t = tensor_index_of(m, p[j]);
        if (t >= 0) idx[k++] = t;
    }
    return k;
}

static const char *const q_suffix[4] = {".weight", ".weight_scale", ".bias", ".input_scale"};
#define Q_NAME 300

mrm_status mrm_engine_int8_save(const mrm_model *m, const mrm_meta *meta, const void *qimg, size_t qlen,
                                const char *path, mrm_error *err) {
    mrm_engine e;
    mrm_status st = mrm_engine_open(&e, qimg, qlen, err);
    if (st) return st;
    const cbn **src = calloc(MAX_STEPS, sizeof *src);
    const basescale **sbs = calloc(MAX_STEPS, sizeof *sbs);
    void *fimg = NULL;
    size_t flen = 0;
    if (!src || !sbs) {
        free(src), free(sbs);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    }
    st = build_image(m, NULL, &fimg, &flen, src, sbs, 0, 0, err);
    mrm_engine_image_free(fimg);
    const eng_header *h = (const eng_header *)qimg;
    const eng_step *steps = (const eng_step *)(const void *)((const unsigned char *)qimg + h->steps_off);
    const int ns = (int)h->n_steps, nt = m->n_tensors;
    int *owner = malloc(sizeof(int) * (size_t)(nt ? nt : 1)), *done = calloc((size_t)ns, sizeof(int));
    char (*names)[4][Q_NAME] = calloc((size_t)ns, sizeof *names);
    int8_t **w8 = calloc((size_t)ns, sizeof *w8);
    st_entry *ent = calloc((size_t)nt + 4 * (size_t)ns, sizeof *ent);
    mrm_meta md = {0};
    if (!st && (!owner || !done || !names || !w8 || !ent)) st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    for (int t = 0; !st && t < nt; t++) owner[t] = -1;
    for (int i = 0; !st && i < ns; i++) {
        const eng_step *s = &steps[i];
        if (s->op != ENG_OP_CONV8) continue;
        char base[Q_NAME - 16];
        int idx[9];
        if (!src[i] || step_name(m, src[i], sbs[i], base, sizeof base)) {
            st = mrm_fail(err, MRM_ERR_INVALID, "%s: quantised step %d is not a layer of the model", path, i);
            break;
        }
        int k = step_tensors(m, src[i], sbs[i], idx);
        for (int j = 0; j < k; j++) owner[idx[j]] = i;
        for (int j = 0; j < 4; j++) snprintf(names[i][j], Q_NAME, "%s%s", base, q_suffix[j]);
        const int8_t *wp = (const int8_t *)(const void *)(e.weights + s->w[0]);
        w8[i] = malloc((size_t)s->cout * (s->cin / s->groups) * s->k);
        if (!w8[i]) {
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        mrm_eng_unpack8(w8[i], wp, s->cin, s->cout, s->k, s->groups);
    }
    int n = 0;
    for (int t = 0; !st && t < nt; t++) {
        const mrm_tensor *tt = &m->tensors[t];
        int i = owner[t];
        if (i < 0) {
            ent[n].name = tt->name;
            ent[n].dtype = tt->is_int64 ? ST_I64 : ST_F32;
            ent[n].ndim = tt->ndim;
            for (int d = 0; d < tt->ndim; d++) ent[n].shape[d] = tt->shape[d];
            ent[n++].data = tt->data;
            continue;
        }
        if (done[i]) continue;
        done[i] = 1;
        const eng_step *s = &steps[i];
        const void *data[4] = {w8[i], e.weights + s->w[3], e.weights + s->w[1], &s->in_scale};
        for (int j = 0; j < 4; j++) {
            ent[n].name = names[i][j];
            ent[n].dtype = j ? ST_F32 : ST_I8;
            ent[n].ndim = j == 0 ? 3 : 1;
            ent[n].shape[0] = j == 3 ? 1 : s->cout;
            if (!j) ent[n].shape[1] = s->cin / s->groups, ent[n].shape[2] = s->k;
            ent[n++].data = data[j];
        }
    }
    for (int i = 0; meta && !st && i < meta->n; i++) st = mrm_meta_set(&md, meta->keys[i], meta->values[i], err);
    if (!st) st = mrm_model_config_to_meta(&m->cfg, &md, err);
    if (!st) st = mrm_meta_set(&md, "quantization", "int8", err);
    if (!st)
        st = mrm_meta_set(&md, "quantization_scheme",
                          "int8 symmetric; BatchNorm folded into each quantised convolution (the multi-scale ones "
                          "merged into one 33-tap kernel, <BaseScale>.ms); weight = int8 * weight_scale[out]; input "
                          "rounded to int8 steps of input_scale; out = sum * input_scale * weight_scale + bias",
                          err);
    if (!st) st = st_write(path, ent, n, &md, err);
    for (int i = 0; w8 && i < ns; i++) free(w8[i]);
    free(w8), free(ent), free(names), free(owner), free(done), free(src), free(sbs);
    mrm_meta_free(&md);
    return st;
}

static int finite_all(const float *d, long long n, long long *bad) {
    for (long long j = 0; j < n; j++)
        if (!isfinite(d[j])) {
            *bad = j;
            return 0;
        }
    return 1;
}

static mrm_status int8_from_st(const st_file *f, void **image, size_t *len, mrm_error *err) {
    *image = NULL;
    *len = 0;
    const char *path = f->path, *qv = mrm_meta_get(&f->meta, "quantization");
    if (!qv || strcmp(qv, "int8"))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: __metadata__ 'quantization': '%s', expected 'int8'", path,
                        qv ? qv : "(absent)");
    if (!mrm_meta_get(&f->meta, "n_classes"))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: __metadata__ 'n_classes' missing", path);
    mrm_model_config cfg;
    mrm_model *m = NULL;
    mrm_status st = mrm_model_config_from_meta(&cfg, &f->meta, path, err);
    if (!st && (st = mrm_model_create(&m, &cfg, err))) mrm_error_prefix(err, "%s", path);
    if (st) return st;
    const int nt = m->n_tensors;
    const cbn **src = calloc(MAX_STEPS, sizeof *src);
    const basescale **sbs = calloc(MAX_STEPS, sizeof *sbs);
    int *present = calloc((size_t)nt, sizeof(int)), *owner = malloc(sizeof(int) * (size_t)nt);
    qstep *q = NULL;
    void *fimg = NULL;
    size_t flen = 0;
    int ns = 0;
    long long bad = 0;
    if (!src || !sbs || !present || !owner) st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    /* the float tensors */
    for (int t = 0; !st && t < nt; t++) {
        const mrm_tensor *tt = &m->tensors[t];
        owner[t] = -1;
        const st_tensor_info *fi = st_find(f, tt->name);
        if (!fi || fi->dtype == ST_I8) continue; /* absent, or a quantised convolution's (below) */
        const st_tensor_info *ti = st_expect(f, tt->name, tt->is_int64 ? ST_I64 : ST_F32, tt->ndim, tt->shape, err);
        if (!ti) {
            st = err ? err->code : MRM_ERR_FORMAT;
            break;
        }
        memcpy(tt->data, st_data(f, ti), ti->end - ti->begin);
        present[t] = 1;
        if (!tt->is_int64 && !finite_all(tt->data, tt->numel, &bad))
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': value %lld is not finite", path, tt->name, bad);
        if (!st && strstr(tt->name, "running_var"))
            for (long long j = 0; j < tt->numel; j++)
                if (((const float *)tt->data)[j] < 0.0f) {
                    st = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': value %lld is negative", path, tt->name, j);
                    break;
                }
    }
    if (!st) st = build_image(m, &f->meta, &fimg, &flen, src, sbs, 0, 0, err);
    if (!st) {
        ns = (int)((const eng_header *)fimg)->n_steps;
        q = calloc((size_t)ns, sizeof *q);
        if (!q) st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    }
    const eng_step *steps = st ? NULL : (const eng_step *)(const void *)((const unsigned char *)fimg +
                                                                         ((const eng_header *)fimg)->steps_off);
    /* the quantised convolutions */
    for (int i = 0; !st && i < ns; i++) {
        const eng_step *s = &steps[i];
        char base[Q_NAME - 16], nm[4][Q_NAME];
        if (s->op != ENG_OP_CONV || !src[i] || step_name(m, src[i], sbs[i], base, sizeof base)) continue;
        for (int j = 0; j < 4; j++) snprintf(nm[j], Q_NAME, "%s%s", base, q_suffix[j]);
        const st_tensor_info *w0 = st_find(f, nm[0]);
        if (!w0 || w0->dtype != ST_I8) continue; /* a float convolution */
        int cig = s->cin / s->groups, K = s->k;
        long long shw[3] = {s->cout, cig, K}, shc[1] = {s->cout}, sh1[1] = {1};
        const st_tensor_info *tw = st_expect(f, nm[0], ST_I8, 3, shw, err);
        int8_t *w8 = malloc((size_t)s->cout * cig * K);
        float *ws = malloc(sizeof(float) * (size_t)s->cout), *bias = malloc(sizeof(float) * (size_t)s->cout), isc = 0.0f;
        q[i].on = 1, q[i].w8 = w8, q[i].ws = ws, q[i].bias = bias;
        if (!tw) {
            st = err ? err->code : MRM_ERR_FORMAT;
            break;
        }
        if (!w8 || !ws || !bias) {
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        if ((st = st_read_f32(f, nm[1], 1, shc, ws, err)) || (st = st_read_f32(f, nm[2], 1, shc, bias, err)) ||
            (st = st_read_f32(f, nm[3], 1, sh1, &isc, err)))
            break;
        for (int o = 0; !st && o < s->cout; o++)
            if (!(ws[o] > 0.0f) || !isfinite(ws[o]) || !isfinite(bias[o]))
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s' or '%s': value %d is not a positive finite step "
                              "and a finite bias", path, nm[1], nm[2], o);
        if (!st && (!(isc > 0.0f) || !isfinite(isc)))
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': %g is not a positive finite step", path, nm[3],
                          (double)isc);
        q[i].in_scale = isc;
        if (!st) memcpy(w8, st_data(f, tw), (size_t)s->cout * cig * K);
        int idx[9], k = step_tensors(m, src[i], sbs[i], idx);
        for (int j = 0; !st && j < k; j++) {
            if (present[idx[j]])
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s' is folded into the quantised '%s' and must not be "
                              "present", path, m->tensors[idx[j]].name, nm[0]);
            owner[idx[j]] = i;
        }
    }
    /* every model tensor is in the file or folded into a quantised convolution; every tensor of
     * the file is one of those */
    for (int t = 0; !st && t < nt; t++)
        if (!present[t] && owner[t] < 0)
            st = mrm_fail(err, MRM_ERR_NOTFOUND, "%s: tensor '%s' missing (neither float nor part of a quantised "
                          "convolution)", path, m->tensors[t].name);
    for (int k = 0; !st && k < f->n; k++) {
        const char *nm = f->t[k].name;
        int ok = mrm_model_find_tensor(m, nm) >= 0;
        for (int i = 0; !ok && i < ns; i++) {
            char base[Q_NAME - 16], full[Q_NAME];
            if (!q[i].on || step_name(m, src[i], sbs[i], base, sizeof base)) continue;
            for (int j = 0; !ok && j < 4; j++) {
                snprintf(full, sizeof full, "%s%s", base, q_suffix[j]);
                ok = !strcmp(full, nm);
            }
        }
        if (!ok) st = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s' is not part of the quantised model", path, nm);
    }
    if (!st) st = quantize_with(fimg, flen, q, image, len, err);
    if (st && err && !strstr(err->msg, path)) mrm_error_prefix(err, "%s", path);
    free_q(q, ns);
    mrm_engine_image_free(fimg);
    free(src), free(sbs), free(present), free(owner);
    mrm_model_free(m);
    return st;
}

mrm_status mrm_engine_image_from_mem(const void *buf, size_t n, const char *name, void **image, size_t *len,
                                     mrm_error *err) {
    *image = NULL;
    *len = 0;
    if (n >= 8 && !memcmp(buf, ENG_MAGIC, 8)) {
        unsigned char *img = aligned_alloc(MRM_ENGINE_ALIGN, align64(n));
        if (!img) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory (%zu bytes)", name, n);
        memcpy(img, buf, n);
        mrm_engine e;
        mrm_status st = mrm_engine_open(&e, img, n, err);
        if (st) {
            mrm_error_prefix(err, "%s", name);
            free(img);
            return st;
        }
        *image = img;
        *len = n;
        return MRM_OK;
    }
    st_file f;
    mrm_status st = st_read_mem(&f, buf, n, name, err);
    if (st) {
        mrm_error_prefix(err, "neither an engine image nor a quantised safetensors model");
        return st;
    }
    st = int8_from_st(&f, image, len, err);
    st_free(&f);
    return st;
}

mrm_status mrm_engine_build_int8(const mrm_model *m, const mrm_meta *meta, const float *X, long long n, void **image,
                                 size_t *len, mrm_error *err) {
    *image = NULL;
    *len = 0;
    if (!X || n < 1) return mrm_fail(err, MRM_ERR_INVALID, "engine int8: no calibration records");
    void *fimg = NULL;
    size_t flen = 0;
    /* every convolution direct: the calibration's activations and the weights quantised are
     * then exactly those of the direct kernels (no taps recovered from transformed weights) */
    mrm_status st = mrm_engine_build_direct(m, meta, &fimg, &flen, err);
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
