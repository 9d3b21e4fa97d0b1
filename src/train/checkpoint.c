/* Checkpoints: model tensors, optimizer moments and metadata in one safetensors file. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "io/safetensors.h"
#include "model/model_file.h"
#include "mrmnet/train.h"

static mrm_status set_num(mrm_meta *meta, const char *key, double v, mrm_error *err) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return mrm_meta_set(meta, key, buf, err);
}

mrm_status mrm_checkpoint_save(const char *path, const mrm_model *m, const mrm_optimizer *o,
                               const mrm_meta *meta, mrm_error *err) {
    const int nt = mrm_model_num_tensors(m);
    if (o->n != mrm_model_num_params(m))
        return mrm_fail(err, MRM_ERR_INVALID, "%s: optimizer has %zu values for %zu parameters", path, o->n, mrm_model_num_params(m));
    st_entry *e = calloc((size_t)nt + 2, sizeof *e);
    mrm_meta md = {0};
    mrm_status st = MRM_OK;
    if (!e) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < nt; i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        e[i].name = t->name;
        e[i].dtype = t->is_int64 ? ST_I64 : ST_F32;
        e[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e[i].shape[d] = t->shape[d];
        e[i].data = t->data;
    }
    int ne = nt;
    const int adam = o->kind == MRM_OPT_ADAM;
    e[ne++] = (st_entry){.name = adam ? "adam.m" : "sgd.momentum", .dtype = ST_F32, .ndim = 1, .shape = {(long long)o->n}, .data = o->m};
    if (adam) e[ne++] = (st_entry){.name = "adam.v", .dtype = ST_F32, .ndim = 1, .shape = {(long long)o->n}, .data = o->v};
    /* the caller's keys, then the architecture and the optimizer's */
    for (int i = 0; !st && meta && i < meta->n; i++) st = mrm_meta_set(&md, meta->keys[i], meta->values[i], err);
    char buf[64];
    if (!st) st = mrm_model_config_to_meta(mrm_model_config_of(m), &md, err);
    if (!st) st = mrm_meta_set(&md, "optimizer", adam ? "adam" : "sgd", err);
    snprintf(buf, sizeof buf, "%lld", o->t);
    if (!st) st = mrm_meta_set(&md, "optimizer_t", buf, err);
    if (!st) st = set_num(&md, "lr", o->lr, err);
    if (!st) st = set_num(&md, "beta1", o->beta1, err);
    if (!st) st = set_num(&md, "beta2", o->beta2, err);
    if (!st) st = set_num(&md, "eps", o->eps, err);
    if (!st) st = set_num(&md, "weight_decay", o->weight_decay, err);
    if (!st) st = set_num(&md, "momentum", o->momentum, err);
    if (!st) st = st_write(path, e, ne, &md, err);
    mrm_meta_free(&md);
    free(e);
    return st;
}

static mrm_status meta_long(const mrm_meta *meta, const char *path, const char *key, long long lo, long long hi,
                            long long *out, mrm_error *err) {
    const char *v = mrm_meta_get(meta, key);
    if (!v) return mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata '%s' is missing", path, key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata '%s': '%s' is not an integer in [%lld, %lld]", path, key, v, lo, hi);
    *out = x;
    return MRM_OK;
}

static mrm_status meta_double(const mrm_meta *meta, const char *path, const char *key, double *out, mrm_error *err) {
    const char *v = mrm_meta_get(meta, key);
    if (!v) return mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata '%s' is missing", path, key);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) return mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata '%s': '%s' is not a number", path, key, v);
    *out = x;
    return MRM_OK;
}

/* An optimizer state tensor: n finite values (non-negative for Adam's second moment). */
static mrm_status read_state(const st_file *f, const char *name, size_t n, int nonneg, float *out, mrm_error *err) {
    long long shape[1] = {(long long)n};
    mrm_status st = st_read_f32(f, name, 1, shape, out, err);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i]) || (nonneg && out[i] < 0.0f))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': value %zu is %g%s", f->path, name, i, (double)out[i],
                            isfinite(out[i]) ? " (negative)" : "");
    return MRM_OK;
}

mrm_status mrm_checkpoint_load(const char *path, mrm_model **m, mrm_optimizer *o, mrm_meta *meta,
                               mrm_error *err) {
    *m = NULL;
    memset(o, 0, sizeof *o);
    st_file f;
    mrm_status st = st_read(&f, path, err);
    if (st) return st;
    long long nc, width, t;
    mrm_opt_kind kind = MRM_OPT_ADAM;
    mrm_model_config cfg;
    if ((st = meta_long(&f.meta, path, "n_classes", 1, 1000000, &nc, err)) ||
        (st = meta_long(&f.meta, path, "width", 1, 4096, &width, err)) ||
        (st = meta_long(&f.meta, path, "optimizer_t", 0, (long long)1 << 62, &t, err)) ||
        (st = mrm_model_config_from_meta(&cfg, &f.meta, path, err)))
        goto fail;
    const char *ok = mrm_meta_get(&f.meta, "optimizer");
    if (!ok || (strcmp(ok, "adam") && strcmp(ok, "sgd"))) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata 'optimizer' must be \"adam\" or \"sgd\"", path);
        goto fail;
    }
    kind = strcmp(ok, "adam") ? MRM_OPT_SGD : MRM_OPT_ADAM;
    /* the model part is read and checked as a model file is (finite values, no foreign tensor) */
    if ((st = mrm_model_from_st(m, &f, err))) goto fail;
    const char *other = kind == MRM_OPT_ADAM ? "sgd.momentum" : st_find(&f, "adam.m") ? "adam.m" : "adam.v";
    if (st_find(&f, other)) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s' does not belong to the %s optimizer the metadata names", path,
                      other, ok);
        goto fail;
    }
    size_t n = mrm_model_num_params(*m);
    if ((st = mrm_optimizer_init(o, kind, n, err))) goto fail;
    if ((st = read_state(&f, kind == MRM_OPT_ADAM ? "adam.m" : "sgd.momentum", n, 0, o->m, err))) goto fail;
    if (kind == MRM_OPT_ADAM && (st = read_state(&f, "adam.v", n, 1, o->v, err))) goto fail;
    o->t = t;
    if ((st = meta_double(&f.meta, path, "lr", &o->lr, err)) || (st = meta_double(&f.meta, path, "beta1", &o->beta1, err)) ||
        (st = meta_double(&f.meta, path, "beta2", &o->beta2, err)) || (st = meta_double(&f.meta, path, "eps", &o->eps, err)) ||
        (st = meta_double(&f.meta, path, "weight_decay", &o->weight_decay, err)) ||
        (st = meta_double(&f.meta, path, "momentum", &o->momentum, err)))
        goto fail;
    if (!(o->lr > 0) || !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) ||
        !(o->weight_decay >= 0) || !(o->momentum >= 0) || !isfinite(o->lr) || !isfinite(o->eps) ||
        !isfinite(o->weight_decay) || !isfinite(o->momentum)) {
        st = mrm_fail(err, MRM_ERR_FORMAT,
                      "%s: metadata: optimizer settings out of range (lr > 0, beta1 and beta2 in [0, 1), eps > 0, "
                      "weight_decay >= 0, momentum >= 0, all finite)", path);
        goto fail;
    }
    if (meta) {
        *meta = f.meta;
        memset(&f.meta, 0, sizeof f.meta);
    }
    st_free(&f);
    return MRM_OK;
fail:
    st_free(&f);
    mrm_optimizer_free(o);
    if (*m) mrm_model_free(*m);
    *m = NULL;
    return st;
}
