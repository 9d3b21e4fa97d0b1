/* safetensors read/write (see safetensors.h) and the string metadata of model files. */
#include "io/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_FILE ((size_t)1 << 34)   /* 16 GiB */
#define ST_MAX_HEADER ((size_t)100 << 20) /* as the reference implementation: 100 MB */

/* ---- metadata ------------------------------------------------------------------------------ */

const char *mrm_meta_get(const mrm_meta *meta, const char *key) {
    if (!meta) return NULL;
    for (int i = 0; i < meta->n; i++)
        if (!strcmp(meta->keys[i], key)) return meta->values[i];
    return NULL;
}

mrm_status mrm_meta_set(mrm_meta *meta, const char *key, const char *value, mrm_error *err) {
    if (!meta || !key || !value) return mrm_fail(err, MRM_ERR_INVALID, "metadata: NULL key or value");
    char *v = strdup(value);
    if (!v) return mrm_fail(err, MRM_ERR_NOMEM, "metadata: out of memory");
    for (int i = 0; i < meta->n; i++)
        if (!strcmp(meta->keys[i], key)) {
            free(meta->values[i]);
            meta->values[i] = v;
            return MRM_OK;
        }
    char *k = strdup(key);
    char **nk = realloc(meta->keys, sizeof *nk * (size_t)(meta->n + 1));
    if (nk) meta->keys = nk;
    char **nv = nk ? realloc(meta->values, sizeof *nv * (size_t)(meta->n + 1)) : NULL;
    if (nv) meta->values = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return mrm_fail(err, MRM_ERR_NOMEM, "metadata: out of memory");
    }
    meta->keys[meta->n] = k;
    meta->values[meta->n] = v;
    meta->n++;
    return MRM_OK;
}

void mrm_meta_free(mrm_meta *meta) {
    if (!meta) return;
    for (int i = 0; i < meta->n; i++) {
        free(meta->keys[i]);
        free(meta->values[i]);
    }
    free(meta->keys);
    free(meta->values);
    meta->n = 0;
    meta->keys = meta->values = NULL;
}

/* ---- reading ------------------------------------------------------------------------------- */

static int dtype_size(const char *name, st_dtype *dt) {
    static const struct { const char *name; int size; } known[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},   {"BOOL", 1},
        {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(name, known[i].name)) {
            *dt = !strcmp(name, "F32") ? ST_F32 : !strcmp(name, "I64") ? ST_I64 : !strcmp(name, "I8") ? ST_I8 : ST_OTHER;
            return known[i].size;
        }
    return 0;
}

static const char *dtype_name(st_dtype d) { return d == ST_F32 ? "F32" : d == ST_I64 ? "I64" : d == ST_I8 ? "I8" : "?"; }
static size_t elem_size(st_dtype d) { return d == ST_F32 ? 4 : d == ST_I64 ? 8 : 1; }

void st_free(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    if (!f->borrowed) free(f->buf);
    mrm_meta_free(&f->meta);
    memset(f, 0, sizeof *f);
}

/* Reads a JSON integer >= 0 that fits a size_t. */
static int json_size(const json_t *v, size_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (size_t)json_integer_value(v);
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const st_tensor_info *x = *(const st_tensor_info *const *)a, *y = *(const st_tensor_info *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static mrm_status parse_entry(st_file *f, const char *name, json_t *v, size_t data_len, mrm_error *err) {
    const char *P = f->path;
    if (!json_is_object(v)) return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", P, name);
    st_tensor_info *t = &f->t[f->n];
    memset(t, 0, sizeof *t);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': dtype: missing or not a string", P, name);
    int size = dtype_size(json_string_value(jd), &t->dtype);
    if (!size) return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': dtype: unknown dtype '%s'", P, name, json_string_value(jd));
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", json_string_value(jd));
    if (!json_is_array(js)) return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': shape: missing or not an array", P, name);
    if (json_array_size(js) > ST_MAX_NDIM)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: tensor '%s': shape: %zu dimensions, at most %d supported", P, name,
                        json_array_size(js), ST_MAX_NDIM);
    t->ndim = (int)json_array_size(js);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        size_t dim;
        if (json_size(json_array_get(js, (size_t)d), &dim) != 0)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': shape[%d]: not a non-negative integer", P, name, d);
        if (mrm_mul_size(numel, dim, &numel) != 0 || numel > ((size_t)1 << 50))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': shape: element count overflows", P, name);
        t->shape[d] = (long long)dim;
    }
    t->numel = (long long)numel;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || json_size(json_array_get(jo, 0), &t->begin) != 0 ||
        json_size(json_array_get(jo, 1), &t->end) != 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': data_offsets: not a pair of non-negative integers", P, name);
    if (t->begin > t->end || t->end > data_len)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%zu, %zu] outside the %zu data bytes", P, name,
                        t->begin, t->end, data_len);
    if (t->end - t->begin != numel * (size_t)size)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': data_offsets: %zu bytes for %zu values of %s (%d bytes each)", P,
                        name, t->end - t->begin, numel, t->dtype_name, size);
    t->name = strdup(name);
    if (!t->name) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", P);
    f->n++;
    return MRM_OK;
}

/* Parses f->buf (f->len bytes; f->path set). On failure *f is freed. */
static mrm_status st_parse(st_file *f, mrm_error *err) {
    char path[sizeof f->path]; /* a copy: st_free clears f */
    memcpy(path, f->path, sizeof path);
    mrm_status s;
    if (f->len < 8) {
        mrm_fail(err, MRM_ERR_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", path, f->len);
        st_free(f);
        return MRM_ERR_FORMAT;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)f->buf[i];
    if (hlen > f->len - 8 || hlen > ST_MAX_HEADER) {
        mrm_fail(err, MRM_ERR_FORMAT, "%s: header length %llu beyond the %zu bytes of the file", path,
                 (unsigned long long)hlen, f->len);
        st_free(f);
        return MRM_ERR_FORMAT;
    }
    f->data_start = 8 + (size_t)hlen;
    size_t data_len = f->len - f->data_start;
    json_error_t je;
    json_t *root = json_loadb(f->buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        mrm_fail(err, MRM_ERR_FORMAT, "%s: header JSON: line %d, column %d: %s", path, je.line, je.column, je.text);
        st_free(f);
        return MRM_ERR_FORMAT;
    }
    s = MRM_OK;
    if (!json_is_object(root)) s = mrm_fail(err, MRM_ERR_FORMAT, "%s: header JSON is not an object", path);
    if (!s) {
        f->t = calloc(json_object_size(root) + 1, sizeof *f->t);
        if (!f->t) s = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    }
    const char *key;
    json_t *v;
    if (!s) json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                s = mrm_fail(err, MRM_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    s = mrm_fail(err, MRM_ERR_FORMAT, "%s: __metadata__: '%s' is not a string", path, mk);
                    break;
                }
                if ((s = mrm_meta_set(&f->meta, mk, json_string_value(mv), err))) break;
            }
            if (s) break;
            continue;
        }
        if ((s = parse_entry(f, key, v, data_len, err))) break;
    }
    json_decref(root);
    if (!s && f->n > 1) { /* no two tensors share a byte */
        const st_tensor_info **order = malloc(sizeof *order * (size_t)f->n);
        if (!order) s = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
        for (int i = 0; !s && i < f->n; i++) order[i] = &f->t[i];
        if (!s) qsort(order, (size_t)f->n, sizeof *order, cmp_begin);
        for (int i = 1; !s && i < f->n; i++)
            if (order[i]->begin < order[i - 1]->end && order[i]->end > order[i]->begin)
                s = mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%zu, %zu] overlap those of '%s' [%zu, %zu]",
                             path, order[i]->name, order[i]->begin, order[i]->end, order[i - 1]->name,
                             order[i - 1]->begin, order[i - 1]->end);
        free(order);
    }
    if (s) st_free(f);
    return s;
}

mrm_status st_read(st_file *f, const char *path, mrm_error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    mrm_status s = mrm_read_file(path, ST_MAX_FILE, &f->buf, &f->len, err);
    if (s) return s;
    return st_parse(f, err);
}

mrm_status st_read_mem(st_file *f, const void *buf, size_t len, const char *name, mrm_error *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", name ? name : "(memory)");
    if (!buf && len) return mrm_fail(err, MRM_ERR_INVALID, "%s: no buffer", f->path);
    f->buf = (char *)(uintptr_t)buf;
    f->len = len;
    f->borrowed = 1;
    return st_parse(f, err);
}

const st_tensor_info *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const void *st_data(const st_file *f, const st_tensor_info *t) { return f->buf + f->data_start + t->begin; }

static void shape_str(char *out, size_t n, int ndim, const long long *shape) {
    size_t k = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(out + k, n - k, i ? ", %lld" : "%lld", shape[i]);
    if (k < n) snprintf(out + k, n - k, "]");
}

const st_tensor_info *st_expect(const st_file *f, const char *name, st_dtype dtype, int ndim,
                                const long long *shape, mrm_error *err) {
    const st_tensor_info *t = st_find(f, name);
    if (!t) {
        mrm_fail(err, MRM_ERR_NOTFOUND, "%s: tensor '%s' is missing", f->path, name);
        return NULL;
    }
    if (t->dtype != dtype) {
        mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': dtype: %s, expected %s", f->path, name, t->dtype_name,
                 dtype_name(dtype));
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        mrm_fail(err, MRM_ERR_FORMAT, "%s: tensor '%s': shape: %s, expected %s", f->path, name, got, want);
        return NULL;
    }
    return t;
}

mrm_status st_read_f32(const st_file *f, const char *name, int ndim, const long long *shape, float *out,
                       mrm_error *err) {
    const st_tensor_info *t = st_expect(f, name, ST_F32, ndim, shape, err);
    if (!t) return err ? err->code : MRM_ERR_FORMAT;
    memcpy(out, st_data(f, t), t->end - t->begin);
    return MRM_OK;
}

/* ---- writing ------------------------------------------------------------------------------- */

mrm_status st_write(const char *path, const st_entry *e, int n, const mrm_meta *meta, mrm_error *err) {
    json_t *root = json_object();
    if (!root) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    mrm_status s = MRM_OK;
    if (meta && meta->n > 0) {
        json_t *jm = json_object();
        for (int i = 0; jm && i < meta->n; i++) json_object_set_new(jm, meta->keys[i], json_string(meta->values[i]));
        if (!jm || json_object_set_new(root, "__metadata__", jm) != 0) s = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t offset = 0;
    for (int i = 0; !s && i < n; i++) {
        if (e[i].dtype != ST_F32 && e[i].dtype != ST_I64 && e[i].dtype != ST_I8)
            s = mrm_fail(err, MRM_ERR_INVALID, "%s: tensor '%s': unsupported dtype", path, e[i].name);
        if (!s && (e[i].ndim < 0 || e[i].ndim > ST_MAX_NDIM))
            s = mrm_fail(err, MRM_ERR_INVALID, "%s: tensor '%s': %d dimensions", path, e[i].name, e[i].ndim);
        size_t numel = 1;
        json_t *js = json_array();
        for (int d = 0; !s && d < e[i].ndim; d++) {
            if (e[i].shape[d] < 0 || mrm_mul_size(numel, (size_t)e[i].shape[d], &numel) != 0)
                s = mrm_fail(err, MRM_ERR_INVALID, "%s: tensor '%s': bad shape", path, e[i].name);
            json_array_append_new(js, json_integer(e[i].shape[d]));
        }
        size_t bytes = numel * elem_size(e[i].dtype);
        json_t *ent = json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtype_name(e[i].dtype), "shape", js, "data_offsets",
                                (json_int_t)offset, (json_int_t)(offset + bytes));
        if (!s && (!ent || json_object_set_new(root, e[i].name, ent) != 0))
            s = mrm_fail(err, MRM_ERR_INVALID, "%s: tensor '%s': cannot add to the header (duplicate name?)", path, e[i].name);
        else if (s)
            json_decref(ent);
        offset += bytes;
    }
    char *hdr = s ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (s) return s;
    if (!hdr) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot serialise the header", path);
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    mrm_atomic_file a;
    FILE *fp = mrm_atomic_open(&a, path, err);
    if (!fp) {
        free(hdr);
        return err ? err->code : MRM_ERR_IO;
    }
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    free(hdr);
    for (int i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
        size_t bytes = numel * elem_size(e[i].dtype);
        ok = !bytes || fwrite(e[i].data, 1, bytes, fp) == bytes;
    }
    if (!ok) {
        int errnum = errno;
        mrm_atomic_abort(&a);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, strerror(errnum));
    }
    return mrm_atomic_commit(&a, err);
}
