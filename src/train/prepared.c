/* Reading a prepared folder (what `mrmnet prepare` writes): classes, standardisation, splits. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "mrmnet/train.h"

#define MAX_TEXT_BYTES (256u << 20)

static void free_lines(char **lines, long long n) {
    if (!lines) return;
    for (long long i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* Splits a text file into its non-empty lines (trailing '\r' and spaces removed). */
static mrm_status read_lines(const char *path, char ***out, long long *n_out, mrm_error *err) {
    *out = NULL;
    *n_out = 0;
    char *text;
    size_t len;
    mrm_status st = mrm_read_file(path, MAX_TEXT_BYTES, &text, &len, err);
    if (st) return st;
    long long cap = 16, n = 0;
    char **lines = malloc((size_t)cap * sizeof *lines);
    if (!lines) {
        free(text);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate", path);
    }
    char *s = text;
    long long lineno = 0;
    while (*s) {
        char *e = strchr(s, '\n');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        lineno++;
        while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t')) l--;
        if (memchr(s, '\0', l)) {
            free_lines(lines, n), free(text);
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%lld: NUL byte in a text line", path, lineno);
        }
        if (l > 0) {
            if (n == cap) {
                char **nl = realloc(lines, (size_t)(cap *= 2) * sizeof *lines);
                if (!nl) {
                    free_lines(lines, n), free(text);
                    return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate", path);
                }
                lines = nl;
            }
            lines[n] = strndup(s, l);
            if (!lines[n]) {
                free_lines(lines, n), free(text);
                return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate", path);
            }
            n++;
        }
        s = e ? e + 1 : s + l;
        if (!e) break;
    }
    free(text);
    *out = lines;
    *n_out = n;
    return MRM_OK;
}

static double json_number_or_nan(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

mrm_status mrm_prepared_open(mrm_prepared *p, const char *dir, mrm_error *err) {
    memset(p, 0, sizeof *p);
    if (snprintf(p->dir, sizeof p->dir, "%s", dir) >= (int)sizeof p->dir)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", dir);
    char path[2048];
    mrm_path_join(path, sizeof path, dir, "classes.txt");
    long long nc;
    mrm_status st = read_lines(path, &p->classes, &nc, err);
    if (st) return st;
    if (nc < 1 || nc > 100000) {
        mrm_prepared_close(p);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %lld classes", path, nc);
    }
    p->n_classes = (int)nc;
    mrm_path_join(path, sizeof path, dir, "prepare.json");
    size_t len;
    if ((st = mrm_read_file(path, 16u << 20, &p->prepare_json, &len, err))) {
        mrm_prepared_close(p);
        return st;
    }
    json_error_t je;
    json_t *root = json_loads(p->prepare_json, 0, &je);
    if (!root || !json_is_object(root)) {
        if (root) json_decref(root);
        mrm_prepared_close(p);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: %s", path, je.line, root ? "not a JSON object" : je.text);
    }
    for (int k = 0; k < 3; k++) p->split_records[k] = -1;
    static const char *const names[3] = {"train", "val", "test"};
    json_t *splits = json_object_get(root, "splits"), *jc = json_object_get(root, "classes");
    for (int k = 0; k < 3; k++) {
        json_t *r = json_object_get(json_object_get(splits, names[k]), "records");
        if (json_is_integer(r) && json_integer_value(r) >= 0) p->split_records[k] = json_integer_value(r);
    }
    int same = !jc || (json_is_array(jc) && json_array_size(jc) == (size_t)p->n_classes);
    for (int k = 0; same && jc && k < p->n_classes; k++) {
        const char *c = json_string_value(json_array_get(jc, (size_t)k));
        same = c && !strcmp(c, p->classes[k]);
    }
    if (!same) {
        json_decref(root);
        mrm_prepared_close(p);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: \"classes\" differ from %s/classes.txt: the folder mixes two preparations",
                        path, dir);
    }
    json_t *task = json_object_get(root, "task");
    snprintf(p->task, sizeof p->task, "%s", json_is_string(task) ? json_string_value(task) : "");
    p->mean = json_number_or_nan(root, "mean");
    p->std = json_number_or_nan(root, "std");
    json_decref(root);
    if (!isfinite(p->mean) || !isfinite(p->std) || p->std <= 0) {
        mrm_prepared_close(p);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: \"mean\" and \"std\" must be numbers, std > 0", path);
    }
    return MRM_OK;
}

void mrm_prepared_close(mrm_prepared *p) {
    free_lines(p->classes, p->n_classes);
    free(p->prepare_json);
    memset(p, 0, sizeof *p);
}

mrm_status mrm_prepared_load_split(const mrm_prepared *p, const char *split, int with_X,
                                   mrm_split_data *s, mrm_error *err) {
    return mrm_prepared_load_split_part(p, split, with_X, 0, 1, s, err);
}

mrm_status mrm_prepared_load_split_part(const mrm_prepared *p, const char *split, int with_X, int part, int parts,
                                        mrm_split_data *s, mrm_error *err) {
    if (parts < 1 || part < 0 || part >= parts)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: part %d of %d parts of the %s split", p->dir, part, parts, split);
    memset(s, 0, sizeof *s);
    char name[64], path[2048];
    int ndim;
    long long shape[4];
    const int si = !strcmp(split, "train") ? 0 : !strcmp(split, "val") ? 1 : !strcmp(split, "test") ? 2 : -1;
    const long long stated = si >= 0 ? p->split_records[si] : -1;
    snprintf(name, sizeof name, "y_%s.npy", split);
    mrm_path_join(path, sizeof path, p->dir, name);
    mrm_status st = mrm_npy_read_f32(path, &s->y, &ndim, shape, err);
    if (st == MRM_ERR_NOTFOUND && stated >= 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: missing, but %s/prepare.json lists the %s split (%lld records): the folder "
                        "is incomplete; prepare it again", path, p->dir, split, stated);
    if (st) return st;
    if (ndim != 2 || shape[1] != p->n_classes || shape[0] < 0) {
        mrm_split_data_free(s);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: shape must be (N, %d) for the %d classes of classes.txt", path,
                        p->n_classes, p->n_classes);
    }
    s->n = shape[0];
    if (stated >= 0 && s->n != stated) {
        long long n = s->n;
        mrm_split_data_free(s);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %lld records, but %s/prepare.json says %lld: the folder mixes two "
                        "preparations; prepare it again", path, n, p->dir, stated);
    }
    for (long long i = 0; i < s->n * p->n_classes; i++)
        if (s->y[i] != 0.0f && s->y[i] != 1.0f) {
            float v = s->y[i];
            mrm_split_data_free(s);
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: record %lld class %lld: label %g is not 0 or 1", path,
                            i / p->n_classes, i % p->n_classes, (double)v);
        }
    if (with_X) {
        snprintf(name, sizeof name, "X_%s.npy", split);
        mrm_path_join(path, sizeof path, p->dir, name);
        long long n = s->n;
        if ((st = mrm_npy_map_f32(path, &s->x_map_, err))) {
            mrm_split_data_free(s);
            if (st == MRM_ERR_NOTFOUND && stated >= 0)
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: missing, but %s/prepare.json lists the %s split (%lld records): "
                                "the folder is incomplete (or was prepared with --labels-only); prepare it again", path,
                                p->dir, split, stated);
            return st;
        }
        const mrm_npy_map *xm = &s->x_map_;
        if (xm->ndim != 3 || xm->shape[0] != n || xm->shape[1] != MRM_INPUT_LEADS || xm->shape[2] != MRM_INPUT_LEN) {
            mrm_split_data_free(s);
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: shape must be (%lld, %d, %d) to match y_%s.npy", path, n,
                            MRM_INPUT_LEADS, MRM_INPUT_LEN, split);
        }
        s->X = xm->data;
        /* one pass in order over the values, letting the pages go behind it (a window of 1024
         * records, 48 MB): what training reads later comes back record by record */
        mrm_npy_map_advise(xm, MRM_NPY_SEQUENTIAL, 0, 0);
        const size_t per = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN;
        const long long window = 1024;
        long long bad = -1;
        const long long r0 = n * part / parts, r1 = n * (part + 1) / parts; /* this part's records */
        for (long long r = r0; r < r1 && bad < 0; r++) {
            const float *x = s->X + (size_t)r * per;
            int ok = 1;
            for (size_t i = 0; i < per; i++) ok &= isfinite(x[i]) != 0;
            if (!ok) bad = r;
            if ((r + 1 - r0) % window == 0) mrm_npy_map_advise(xm, MRM_NPY_DONTNEED, (size_t)(r + 1 - window) * per, (size_t)window * per);
        }
        mrm_npy_map_advise(xm, MRM_NPY_DONTNEED, 0, 0);
        mrm_npy_map_advise(xm, MRM_NPY_NORMAL, 0, 0);
        if (bad >= 0) {
            mrm_split_data_free(s);
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: record %lld holds a value that is not finite", path, bad);
        }
    }
    snprintf(name, sizeof name, "ids_%s.txt", split);
    mrm_path_join(path, sizeof path, p->dir, name);
    long long nid;
    char **ids;
    st = read_lines(path, &ids, &nid, err);
    if (st == MRM_ERR_NOTFOUND && stated < 0) return MRM_OK; /* ids are optional in a folder made by hand */
    if (st) {
        mrm_split_data_free(s);
        return st;
    }
    if (nid != s->n) {
        free_lines(ids, nid);
        long long n = s->n;
        mrm_split_data_free(s);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %lld ids for %lld records", path, nid, n);
    }
    s->ids = ids;
    return MRM_OK;
}

const float *mrm_split_record(const mrm_split_data *s, long long i) {
    if (!s->X || i < 0 || i >= s->n) return NULL;
    return s->X + (size_t)i * MRM_INPUT_LEADS * MRM_INPUT_LEN;
}

void mrm_split_data_free(mrm_split_data *s) {
    mrm_npy_unmap(&s->x_map_);
    free(s->y);
    free_lines(s->ids, s->n);
    memset(s, 0, sizeof *s);
}

static int cmp_id(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    int c = strcmp(x[0], y[0]);
    return c ? c : (x[1] > y[1]) - (x[1] < y[1]);
}

mrm_status mrm_prepared_check(const mrm_prepared *p, mrm_error *err) {
    static const char *const names[3] = {"train", "val", "test"};
    char **ids[3] = {NULL, NULL, NULL};
    long long n[3] = {0, 0, 0}, total = 0;
    mrm_status st = MRM_OK;
    char path[2048], name[64];
    for (int k = 0; k < 3 && !st; k++) {
        snprintf(name, sizeof name, "y_%s.npy", names[k]);
        mrm_path_join(path, sizeof path, p->dir, name);
        if (p->split_records[k] >= 0 && access(path, F_OK) != 0)
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: missing, but %s/prepare.json lists the %s split (%lld records): the "
                          "folder is incomplete; prepare it again", path, p->dir, names[k], p->split_records[k]);
        snprintf(name, sizeof name, "ids_%s.txt", names[k]);
        mrm_path_join(path, sizeof path, p->dir, name);
        if (!st) {
            st = read_lines(path, &ids[k], &n[k], err);
            if (st == MRM_ERR_NOTFOUND && p->split_records[k] < 0) st = MRM_OK;
        }
        total += n[k];
    }
    /* (id, split name) pairs sorted by id: a repeated id is adjacent */
    const char **pairs = st || !total ? NULL : malloc(sizeof *pairs * 2 * (size_t)total);
    if (!st && total && !pairs) st = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate", p->dir);
    if (pairs) {
        long long j = 0;
        for (int k = 0; k < 3; k++)
            for (long long i = 0; i < n[k]; i++, j++) pairs[2 * j] = ids[k][i], pairs[2 * j + 1] = names[k];
        qsort(pairs, (size_t)total, sizeof *pairs * 2, cmp_id);
        for (long long i = 1; i < total && !st; i++) {
            if (strcmp(pairs[2 * i], pairs[2 * i - 2])) continue;
            const char *a = pairs[2 * i - 1], *b = pairs[2 * i + 1];
            if (a == b)
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: record '%s' is twice in the %s split (ids_%s.txt)", p->dir,
                              pairs[2 * i], a, a);
            else
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: record '%s' is in both the %s and the %s split: the folder mixes "
                              "two preparations; prepare it again", p->dir, pairs[2 * i],
                              a == names[0] || b == names[2] ? a : b, a == names[0] || b == names[2] ? b : a);
        }
        free(pairs);
    }
    for (int k = 0; k < 3; k++) free_lines(ids[k], n[k]);
    return st;
}
