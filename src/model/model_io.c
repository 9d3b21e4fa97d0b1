/* Saving and loading models as safetensors files with "mrmnet-1" metadata. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "io/safetensors.h"
#include "model/model_internal.h"

mrm_status mrm_model_save(const mrm_model *m, const mrm_meta *meta, const char *path, mrm_error *err) {
    mrm_meta md = {0};
    mrm_status s = MRM_OK;
    for (int i = 0; !s && meta && i < meta->n; i++) s = mrm_meta_set(&md, meta->keys[i], meta->values[i], err);
    char v[32];
    if (!s) s = mrm_meta_set(&md, "format", "mrmnet-1", err);
    snprintf(v, sizeof v, "%d", m->cfg.n_classes);
    if (!s) s = mrm_meta_set(&md, "n_classes", v, err);
    snprintf(v, sizeof v, "%d", m->cfg.width);
    if (!s) s = mrm_meta_set(&md, "width", v, err);
    if (!s) s = mrm_meta_set(&md, "hi_attention", m->cfg.hi_attention ? "1" : "0", err);
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

/* A decimal integer metadata value in [lo, hi]; -1 absent; -2 malformed (err filled). */
static long meta_int(const st_file *f, const char *key, long lo, long hi, mrm_error *err) {
    const char *v = mrm_meta_get(&f->meta, key);
    if (!v) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        mrm_fail(err, MRM_ERR_FORMAT, "%s: __metadata__: %s: '%s' is not an integer in [%ld, %ld]", f->path, key, v, lo, hi);
        return -2;
    }
    return x;
}

/* The architecture from the metadata, or else from the tensors' shapes. */
static mrm_status config_of(const st_file *f, mrm_model_config *cfg, mrm_error *err) {
    const char *fmt = mrm_meta_get(&f->meta, "format");
    if (fmt && strcmp(fmt, "mrmnet-1") != 0)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: __metadata__: format: '%s', expected 'mrmnet-1'", f->path, fmt);
    long n = meta_int(f, "n_classes", 1, 100000, err), w = meta_int(f, "width", 4, 1024, err),
         h = meta_int(f, "hi_attention", 0, 1, err);
    if (n == -2 || w == -2 || h == -2) return MRM_ERR_FORMAT;
    if (n == -1) {
        const st_tensor_info *t = st_find(f, "fc1.weight");
        if (!t || t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > 100000)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: no n_classes in __metadata__ and no usable 'fc1.weight' (N x C)", f->path);
        n = (long)t->shape[0];
    }
    if (w == -1) {
        const st_tensor_info *t = st_find(f, "BaseBlock.conv_block1.0.weight");
        if (!t || t->ndim != 3 || t->shape[0] < 4 || t->shape[0] > 1024)
            return mrm_fail(err, MRM_ERR_FORMAT,
                            "%s: no width in __metadata__ and no usable 'BaseBlock.conv_block1.0.weight' (width x 12 x 11)", f->path);
        w = (long)t->shape[0];
    }
    if (h == -1) h = st_find(f, "BaseBlock.layer1.1.group_conv3x3.weight") != NULL;
    cfg->n_classes = (int)n;
    cfg->width = (int)w;
    cfg->hi_attention = (int)h;
    return MRM_OK;
}

mrm_status mrm_model_load(mrm_model **out, mrm_meta *meta, const char *path, mrm_error *err) {
    *out = NULL;
    if (meta) memset(meta, 0, sizeof *meta);
    st_file f;
    mrm_status s = st_read(&f, path, err);
    if (s) return s;
    mrm_model_config cfg;
    mrm_model *m = NULL;
    s = config_of(&f, &cfg, err);
    if (!s) {
        s = mrm_model_create(&m, &cfg, err);
        if (s) mrm_error_prefix(err, "%s", path);
    }
    for (int i = 0; !s && i < m->n_tensors; i++) {
        const mrm_tensor *t = &m->tensors[i];
        const st_tensor_info *ti = st_expect(&f, t->name, t->is_int64 ? ST_I64 : ST_F32, t->ndim, t->shape, err);
        if (!ti) {
            s = err ? err->code : MRM_ERR_FORMAT;
            break;
        }
        memcpy(t->data, st_data(&f, ti), ti->end - ti->begin);
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
    for (int i = 0; !s && i < f.n; i++)
        if (mrm_model_find_tensor(m, f.t[i].name) < 0)
            s = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s' is not part of the model (n_classes %d, width %d%s)", path,
                         f.t[i].name, cfg.n_classes, cfg.width, cfg.hi_attention ? ", hi_attention" : "");
    if (!s && meta) {
        *meta = f.meta;
        memset(&f.meta, 0, sizeof f.meta);
    }
    st_free(&f);
    if (s) {
        mrm_model_free(m);
        return s;
    }
    *out = m;
    return MRM_OK;
}
