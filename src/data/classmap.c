/* Class maps (labels of one vocabulary to another), relabelling a dataset to a model's class
 * list, and standardisation with a given mean and std. Definitions: include/mrmnet/data.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/csv.h"
#include "mrmnet/data.h"

void mrm_class_map_free(mrm_class_map *m) {
    for (int i = 0; i < m->n; i++) {
        if (m->from) free(m->from[i]);
        if (m->to) free(m->to[i]);
    }
    free(m->from), free(m->to);
    memset(m, 0, sizeof *m);
}

mrm_status mrm_class_map_parse(mrm_class_map *m, const char *name, const char *text, size_t len, mrm_error *err) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", name);
    mrm_csv csv;
    mrm_status st = mrm_csv_parse(&csv, name, text, len, err);
    if (st) return st;
    int cf, ct;
    if ((st = mrm_csv_require_col(&csv, "from", &cf, err)) || (st = mrm_csv_require_col(&csv, "to", &ct, err))) goto done;
    m->from = calloc((size_t)(csv.n_rows ? csv.n_rows : 1), sizeof *m->from);
    m->to = calloc((size_t)(csv.n_rows ? csv.n_rows : 1), sizeof *m->to);
    if (!m->from || !m->to) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    for (int r = 0; r < csv.n_rows; r++) {
        const char *f = mrm_csv_cell(&csv, r, cf), *t = mrm_csv_cell(&csv, r, ct);
        if (!f[0] || !t[0]) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: an empty '%s' cell", name, csv.row_line[r], f[0] ? "to" : "from");
            goto done;
        }
        for (int q = 0; q < m->n; q++)
            if (!strcmp(m->from[q], f) && !strcmp(m->to[q], t)) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: the row %s -> %s repeats an earlier row", name, csv.row_line[r], f, t);
                goto done;
            }
        m->from[m->n] = strdup(f);
        m->to[m->n] = strdup(t);
        if (!m->from[m->n] || !m->to[m->n]) {
            free(m->from[m->n]), free(m->to[m->n]);
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
            goto done;
        }
        m->n++;
    }
    if (m->n == 0) st = mrm_fail(err, MRM_ERR_FORMAT, "%s: the map has no rows", name);
done:
    mrm_csv_free(&csv);
    if (st) mrm_class_map_free(m);
    return st;
}

mrm_status mrm_class_map_read(mrm_class_map *m, const char *path, mrm_error *err) {
    memset(m, 0, sizeof *m);
    char *text;
    size_t len;
    mrm_status st = mrm_read_file(path, (size_t)16 << 20, &text, &len, err);
    if (st) return st;
    st = mrm_class_map_parse(m, path, text, len, err);
    free(text);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int index_of(char *const *v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return i;
    return -1;
}

mrm_status mrm_dataset_remap(mrm_dataset *ds, const mrm_class_map *map, const char *const *classes, int n_classes,
                             mrm_error *err) {
    const int C = ds->n_classes;
    /* the targets of each old class: (old, name) pairs */
    int n_pairs = 0, cap = C + (map ? map->n : 0);
    int *pair_old = malloc((size_t)(cap ? cap : 1) * sizeof *pair_old);
    const char **pair_name = malloc((size_t)(cap ? cap : 1) * sizeof *pair_name);
    char **newc = NULL, **outside = NULL;
    long long *outside_n = NULL;
    float *y = NULL;
    int nn = 0, n_out = 0;
    mrm_status st = MRM_OK;
    if (!pair_old || !pair_name) goto oom;
    for (int k = 0; k < C; k++) {
        int hit = 0;
        for (int q = 0; map && q < map->n; q++)
            if (!strcmp(map->from[q], ds->classes[k])) pair_old[n_pairs] = k, pair_name[n_pairs++] = map->to[q], hit = 1;
        if (!hit) pair_old[n_pairs] = k, pair_name[n_pairs++] = ds->classes[k];
    }
    /* the new class list */
    newc = calloc((size_t)(classes ? n_classes : n_pairs) + 1, sizeof *newc);
    if (!newc) goto oom;
    if (classes) {
        for (int j = 0; j < n_classes; j++) {
            if (index_of(newc, nn, classes[j]) >= 0) {
                st = mrm_fail(err, MRM_ERR_INVALID, "class list: '%s' is listed twice", classes[j]);
                goto done;
            }
            if (!(newc[nn++] = strdup(classes[j]))) goto oom;
        }
    } else {
        for (int q = 0; q < n_pairs; q++)
            if (index_of(newc, nn, pair_name[q]) < 0 && !(newc[nn++] = strdup(pair_name[q]))) goto oom;
        qsort(newc, (size_t)nn, sizeof *newc, cmp_str);
    }
    if (nn == 0) {
        st = mrm_fail(err, MRM_ERR_INVALID, "class list: no classes");
        goto done;
    }
    y = calloc((size_t)(ds->n ? ds->n : 1) * (size_t)nn, sizeof *y);
    outside = calloc((size_t)n_pairs + 1, sizeof *outside);
    outside_n = calloc((size_t)n_pairs + 1, sizeof *outside_n);
    if (!y || !outside || !outside_n) goto oom;
    int *target = malloc((size_t)(n_pairs ? n_pairs : 1) * sizeof *target);
    if (!target) goto oom;
    for (int q = 0; q < n_pairs; q++) target[q] = index_of(newc, nn, pair_name[q]);
    long long n_rec_out = 0, n_rec_empty = 0;
    for (long long i = 0; i < ds->n; i++) {
        int any_out = 0, any_in = 0;
        for (int q = 0; q < n_pairs; q++) {
            if (ds->y[(size_t)i * C + pair_old[q]] == 0.0f) continue;
            if (target[q] >= 0) {
                y[(size_t)i * nn + target[q]] = 1.0f;
                any_in = 1;
                continue;
            }
            any_out = 1;
            int o = index_of(outside, n_out, pair_name[q]);
            if (o < 0) {
                if (!(outside[n_out] = strdup(pair_name[q]))) {
                    free(target);
                    goto oom;
                }
                o = n_out++;
            }
            outside_n[o]++; /* a record maps one old label to one name at most once */
        }
        n_rec_out += any_out;
        n_rec_empty += any_out && !any_in;
    }
    free(target);
    /* commit */
    for (int k = 0; k < C; k++) free(ds->classes[k]);
    free(ds->classes);
    free(ds->y);
    for (int i = 0; i < ds->n_outside_labels; i++) free(ds->outside_labels[i]);
    free(ds->outside_labels), free(ds->outside_counts);
    ds->classes = newc, ds->n_classes = nn, ds->y = y;
    ds->outside_labels = outside, ds->outside_counts = outside_n, ds->n_outside_labels = n_out;
    ds->n_outside = n_rec_out, ds->n_outside_unlabelled = n_rec_empty;
    if (map) snprintf(ds->class_map, sizeof ds->class_map, "%s", map->path);
    newc = NULL, y = NULL, outside = NULL, outside_n = NULL, n_out = 0, nn = 0;
    goto done;
oom:
    st = mrm_fail(err, MRM_ERR_NOMEM, "relabelling: out of memory");
done:
    for (int j = 0; newc && j < nn; j++) free(newc[j]);
    for (int j = 0; outside && j < n_out; j++) free(outside[j]);
    free(newc), free(outside), free(outside_n), free(y), free(pair_old), free(pair_name);
    return st;
}

mrm_status mrm_standardise_fixed(mrm_dataset *ds, double mean, double std, const char *like, mrm_error *err) {
    if (!ds->X) return mrm_fail(err, MRM_ERR_INVALID, "standardise: the dataset has no signals");
    if (!isfinite(mean) || !(std > 0.0) || !isfinite(std))
        return mrm_fail(err, MRM_ERR_INVALID, "standardise: mean %g and std %g are not a usable standardisation", mean, std);
    size_t total = (size_t)ds->n * MRM_LEADS * MRM_SAMPLES;
    for (size_t i = 0; i < total; i++) ds->X[i] = (float)(((double)ds->X[i] - mean) / std);
    ds->mean = mean;
    ds->std = std;
    snprintf(ds->standardised_like, sizeof ds->standardised_like, "%s", like ? like : "");
    return MRM_OK;
}
