/* Saving and loading models as safetensors files with "mrmnet-1" metadata. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "io/safetensors.h"
#include "model/model_file.h"
#include "model/model_internal.h"

mrm_status mrm_model_save(const mrm_model *m, const mrm_meta *meta, const char *path, mrm_error *err) {
    mrm_meta md = {0};
    mrm_status s = MRM_OK;
    for (int i = 0; !s && meta && i < meta->n; i++) s = mrm_meta_set(&md, meta->keys[i], meta->values[i], err);
    if (!s) s = mrm_model_config_to_meta(&m->cfg, &md, err);
    st_entry *e = s ? NULL : calloc((size_t)m->n_tensors, sizeof *e);
    if (!s && !e) s = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; !s && i < m->n_tensors; i++) {
        const mrm_tensor *t = &m->tensors[i];
        e[i].name = t->name;
        e[i].dtype = t->is_int64 ? ST_I64 : ST_F32;
        e[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e[i].shape[d] = t->shape[d];
        e[i].data = t->data;
    }
    if (!s) s = st_write(path, e, m->n_tensors, &md, err);
    free(e);
    mrm_meta_free(&md);
    return s;
}

/* The architecture from the metadata (mrm_model_config_from_meta); a file without n_classes,
 * width or attention keys (written by other tools) has them inferred from its tensors. */
static mrm_status config_of(const st_file *f, mrm_model_config *cfg, mrm_error *err) {
    mrm_status s = mrm_model_config_from_meta(cfg, &f->meta, f->path, err);
    if (s) return s;
    if (!mrm_meta_get(&f->meta, "n_classes")) {
        const st_tensor_info *t = st_find(f, "fc1.weight");
        if (!t) t = st_find(f, "fc2.weight");
        if (!t) t = st_find(f, "fc.weight");
        if (!t || t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > 100000)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: no n_classes in __metadata__ and no usable 'fc1.weight' (N x C)", f->path);
        cfg->n_classes = (int)t->shape[0];
    }
    if (!mrm_meta_get(&f->meta, "width")) {
        const st_tensor_info *t = st_find(f, "BaseBlock.conv_block1.0.weight");
        if (!t || t->ndim != 3 || t->shape[0] < 4 || t->shape[0] > MRM_MAX_WIDTH || t->shape[0] % 4)
            return mrm_fail(err, MRM_ERR_FORMAT,
                            "%s: no width in __metadata__ and no usable 'BaseBlock.conv_block1.0.weight' (width x 12 x 11)", f->path);
        cfg->width = (int)t->shape[0];
    }
    if (!mrm_meta_get(&f->meta, "attention") && !mrm_meta_get(&f->meta, "hi_attention")) {
        int hi = st_find(f, "BaseBlock.layer1.1.group_conv3x3.weight") != NULL;
        int lo = st_find(f, "BaseBlock.layer2.1.group_conv3x3.weight") != NULL;
        cfg->attention = hi ? (lo ? MRM_ATTENTION_BOTH : MRM_ATTENTION_HIGH) : lo ? MRM_ATTENTION_LOW : MRM_ATTENTION_NONE;
        mrm_model_config_normalize(cfg);
    }
    return MRM_OK;
}

/* Checks that the file holds a tensor of the architecture (walk callback). */
typedef struct holds_ctx {
    const st_file *f;
    mrm_error *err;
} holds_ctx;
static int file_holds(void *ctx, const char *name, int is_int64, int ndim, const long long *shape) {
    holds_ctx *h = ctx;
    return st_expect(h->f, name, is_int64 ? ST_I64 : ST_F32, ndim, shape, h->err) ? 0 : 1;
}

mrm_status model_file_holds(const st_file *f, const mrm_model_config *cfg, mrm_error *err) {
    holds_ctx h = {f, err};
    if (!mrm_model_walk_config(cfg, file_holds, &h, err)) return MRM_OK;
    mrm_status s = err && err->code ? err->code : MRM_ERR_FORMAT;
    char d[512];
    mrm_model_config_describe(cfg, d, sizeof d);
    mrm_error_prefix(err, "%s: the file does not hold the model it describes (%s)", f->path, d);
    return s;
}

/* A training checkpoint's optimizer state (src/train/checkpoint.c), allowed beside the model's
 * tensors when the metadata names an optimizer: such a file is also a model file (its weights). */
static int is_optimizer_tensor(const st_file *f, const char *name) {
    return mrm_meta_get(&f->meta, "optimizer") &&
           (!strcmp(name, "adam.m") || !strcmp(name, "adam.v") || !strcmp(name, "sgd.momentum"));
}

mrm_status mrm_model_from_st(mrm_model **out, const st_file *f, mrm_error *err) {
    *out = NULL;
    const char *path = f->path;
    mrm_model_config cfg;
    mrm_model *m = NULL;
    const char *q = mrm_meta_get(&f->meta, "quantization");
    if (q)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED,
                        "%s: __metadata__ 'quantization' is '%s': a quantised model (int8 weights and their scales), "
                        "run only by the engine (mrmnet predict, eval, bench); this needs the float model",
                        path, q);
    mrm_status s = config_of(f, &cfg, err);
    if (!s) s = model_file_holds(f, &cfg, err);
    if (!s) {
        s = mrm_model_create(&m, &cfg, err);
        if (s) mrm_error_prefix(err, "%s", path);
    }
    for (int i = 0; !s && i < m->n_tensors; i++) {
        const mrm_tensor *t = &m->tensors[i];
        const st_tensor_info *ti = st_expect(f, t->name, t->is_int64 ? ST_I64 : ST_F32, t->ndim, t->shape, err);
        if (!ti) {
            s = err ? err->code : MRM_ERR_FORMAT;
            break;
        }
        memcpy(t->data, st_data(f, ti), ti->end - ti->begin);
        if (t->is_int64) {
            if (*(int64_t *)t->data < 0)
                s = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': negative count %lld", path, t->name,
                             (long long)*(int64_t *)t->data);
            continue;
        }
        const float *d = t->data;
        for (long long j = 0; j < t->numel; j++)
            if (!isfinite(d[j])) {
                s = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': value %lld is %g", path, t->name, j, d[j]);
                break;
            }
        if (!s && strstr(t->name, "running_var"))
            for (long long j = 0; j < t->numel; j++)
                if (d[j] < 0.0f) {
                    s = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': value %lld is negative (%g)", path, t->name, j, d[j]);
                    break;
                }
    }
    for (int i = 0; !s && i < f->n; i++)
        if (mrm_model_find_tensor(m, f->t[i].name) < 0 && !is_optimizer_tensor(f, f->t[i].name)) {
            char d[512];
            mrm_model_config_describe(&cfg, d, sizeof d);
            s = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s' is not part of the model (%s)", path, f->t[i].name, d);
        }
    if (s) {
        mrm_model_free(m);
        return s;
    }
    *out = m;
    return MRM_OK;
}

mrm_status mrm_model_load(mrm_model **out, mrm_meta *meta, const char *path, mrm_error *err) {
    *out = NULL;
    if (meta) memset(meta, 0, sizeof *meta);
    st_file f;
    mrm_status s = st_read(&f, path, err);
    if (s) return s;
    s = mrm_model_from_st(out, &f, err);
    if (!s && meta) {
        *meta = f.meta;
        memset(&f.meta, 0, sizeof f.meta);
    }
    st_free(&f);
    return s;
}

mrm_status mrm_model_load_mem(mrm_model **out, mrm_meta *meta, const void *buf, size_t len, const char *name,
                              mrm_error *err) {
    *out = NULL;
    if (meta) memset(meta, 0, sizeof *meta);
    st_file f;
    mrm_status s = st_read_mem(&f, buf, len, name, err);
    if (s) return s;
    s = mrm_model_from_st(out, &f, err);
    if (!s && meta) {
        *meta = f.meta;
        memset(&f.meta, 0, sizeof f.meta);
    }
    st_free(&f);
    return s;
}
