/* The challenges' own scores: the CPSC2018 F1 scores and the PhysioNet/CinC Challenge 2021
 * challenge score with its reward matrix. Definitions: include/mrmnet/eval.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/csv.h"
#include "mrmnet/eval.h"

/* ---- CPSC2018 -------------------------------------------------------------------------------- */

int mrm_cpsc_class_number(const char *name) {
    static const char *const names[9][3] = {
        {"NORM", "Normal", "1"}, {"AFIB", "AF", "2"},   {"1AVB", "I-AVB", "3"}, {"CLBBB", "LBBB", "4"}, {"CRBBB", "RBBB", "5"},
        {"PAC", "PAC", "6"},     {"VPC", "PVC", "7"},   {"STD_", "STD", "8"},   {"STE_", "STE", "9"}};
    for (int j = 0; j < 9; j++)
        for (int a = 0; a < 3; a++)
            if (!strcmp(name, names[j][a])) return j + 1;
    return 0;
}

static double f1_of_block(const long long A[9][9], int lo, int hi) {
    long long diag = 0, rows = 0, cols = 0;
    for (int j = lo; j <= hi; j++) {
        diag += A[j][j];
        for (int q = 0; q < 9; q++) rows += A[j][q], cols += A[q][j];
    }
    return rows + cols ? 2.0 * (double)diag / (double)(rows + cols) : NAN;
}

mrm_status mrm_cpsc_score(mrm_cpsc_scores *out, const float *y, const float *p, int n, int c,
                          const int *class_number, const int *first, mrm_error *err) {
    memset(out, 0, sizeof *out);
    mrm_status st = mrm_check_labels_scores(y, p, n, c, err);
    if (st) return st;
    int col[9]; /* the model's column of each challenge class */
    for (int j = 0; j < 9; j++) col[j] = -1;
    for (int k = 0; k < c; k++) {
        int j = class_number[k];
        if (j < 0 || j > 9) return mrm_fail(err, MRM_ERR_INVALID, "CPSC2018 score: class %d has number %d (1 to 9)", k, j);
        if (j == 0) continue;
        if (col[j - 1] >= 0)
            return mrm_fail(err, MRM_ERR_INVALID, "CPSC2018 score: classes %d and %d are both challenge class %d", col[j - 1], k, j);
        col[j - 1] = k;
    }
    for (int j = 0; j < 9; j++)
        if (col[j] < 0) return mrm_fail(err, MRM_ERR_INVALID, "CPSC2018 score: no class is challenge class %d", j + 1);
    for (int i = 0; i < n; i++) {
        const float *yi = y + (size_t)i * c, *pi = p + (size_t)i * c;
        int pred_col = -1, nlab = 0, lowest = -1;
        for (int k = 0; k < c; k++)
            if (class_number[k] && (pred_col < 0 || pi[k] > pi[pred_col])) pred_col = k;
        for (int j = 0; j < 9; j++)
            if (yi[col[j]] != 0.0f) {
                nlab++;
                if (lowest < 0) lowest = j;
            }
        if (first && (first[i] < 1 || first[i] > 9 || yi[col[first[i] - 1]] == 0.0f))
            return mrm_fail(err, MRM_ERR_INVALID, "CPSC2018 score: record %d: its first label %d is not one of its labels", i,
                            first[i]);
        if (nlab == 0) {
            out->n_unlabelled++;
            continue;
        }
        const int pred = class_number[pred_col] - 1;
        if (yi[pred_col] != 0.0f) {
            out->table[pred][pred]++;
        } else {
            int row = first ? first[i] - 1 : lowest;
            if (!first && nlab > 1) out->n_first_guessed++;
            out->table[row][pred]++;
        }
        out->n_scored++;
    }
    double sum = 0, sum_def = 0;
    for (int j = 0; j < 9; j++) {
        sum += out->f1[j] = f1_of_block(out->table, j, j);
        if (!isnan(out->f1[j])) sum_def += out->f1[j], out->n_defined++;
    }
    out->f1_mean = sum / 9;
    out->f1_mean_defined = out->n_defined ? sum_def / out->n_defined : NAN;
    out->f_af = out->f1[1];
    out->f_block = f1_of_block(out->table, 2, 4);
    out->f_pc = f1_of_block(out->table, 5, 6);
    out->f_st = f1_of_block(out->table, 7, 8);
    return MRM_OK;
}

/* ---- PhysioNet/CinC Challenge 2021 ------------------------------------------------------------ */

void mrm_challenge_weights_free(mrm_challenge_weights *w) {
    for (int j = 0; w->names && j < w->n; j++) free(w->names[j]);
    for (int j = 0; w->codes && j < w->n; j++) {
        for (char **q = w->codes[j]; q && *q; q++) free(*q);
        free(w->codes[j]);
    }
    free(w->names), free(w->codes), free(w->w);
    memset(w, 0, sizeof *w);
}

/* Splits a class name at '|' into a NULL-terminated list of non-empty codes. */
static mrm_status split_codes(const char *name, char ***out, const char *file, int line, mrm_error *err) {
    size_t m = 1;
    for (const char *s = name; *s; s++) m += *s == '|';
    char **v = calloc(m + 1, sizeof *v);
    if (!v) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", file);
    *out = v;
    const char *s = name;
    for (size_t i = 0; i < m; i++) {
        const char *e = strchr(s, '|');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        while (l && (*s == ' ')) s++, l--;
        while (l && s[l - 1] == ' ') l--;
        if (!l) return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: class '%s' has an empty code", file, line, name);
        if (!(v[i] = strndup(s, l))) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", file);
        s = e ? e + 1 : s + l;
    }
    return MRM_OK;
}

mrm_status mrm_challenge_weights_parse(mrm_challenge_weights *w, const char *name, const char *text, size_t len,
                                       mrm_error *err) {
    memset(w, 0, sizeof *w);
    mrm_csv csv;
    mrm_status st = mrm_csv_parse(&csv, name, text, len, err);
    if (st) return st;
    const int n = csv.n_cols - 1;
    if (n < 1) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:1: the header names no class (expected ',class1,class2,...')", name);
        goto done;
    }
    if (csv.header[0][0]) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:1: the first header cell should be empty, not '%s'", name, csv.header[0]);
        goto done;
    }
    if (csv.n_rows != n) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: %d classes in the header but %d rows (the matrix must be square)", name, n, csv.n_rows);
        goto done;
    }
    w->names = calloc((size_t)n, sizeof *w->names);
    w->codes = calloc((size_t)n, sizeof *w->codes);
    w->w = malloc((size_t)n * (size_t)n * sizeof *w->w);
    if (!w->names || !w->codes || !w->w) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory for %d classes", name, n);
        goto done;
    }
    w->n = n;
    for (int j = 0; j < n; j++) {
        const char *h = csv.header[j + 1], *r = mrm_csv_cell(&csv, j, 0);
        if (strcmp(h, r)) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: row %d is class '%s' but column %d is '%s' (rows and columns must be in the same order)",
                          name, csv.row_line[j], j + 1, r, j + 1, h);
            goto done;
        }
        if (!(w->names[j] = strdup(h))) {
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
            goto done;
        }
        if ((st = split_codes(h, &w->codes[j], name, 1, err))) goto done;
        for (int q = 0; q < n; q++) {
            double v;
            if (mrm_parse_double(mrm_csv_cell(&csv, j, q + 1), &v) || !isfinite(v)) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: the reward of '%s' for output '%s' is '%s', not a number", name,
                              csv.row_line[j], r, csv.header[q + 1], mrm_csv_cell(&csv, j, q + 1));
                goto done;
            }
            w->w[(size_t)j * n + q] = v;
        }
    }
    /* a code in two classes would make the mapping ambiguous */
    for (int j = 0; j < n; j++)
        for (char **a = w->codes[j]; *a; a++)
            for (int q = j; q < n; q++)
                for (char **b = q == j ? a + 1 : w->codes[q]; *b; b++)
                    if (!strcmp(*a, *b)) {
                        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:1: code %s is in classes '%s' and '%s'", name, *a, w->names[j], w->names[q]);
                        goto done;
                    }
done:
    mrm_csv_free(&csv);
    if (st) mrm_challenge_weights_free(w);
    return st;
}

mrm_status mrm_challenge_weights_read(mrm_challenge_weights *w, const char *path, mrm_error *err) {
    memset(w, 0, sizeof *w);
    char *text;
    size_t len;
    mrm_status st = mrm_read_file(path, (size_t)64 << 20, &text, &len, err);
    if (st) return st;
    st = mrm_challenge_weights_parse(w, path, text, len, err);
    free(text);
    return st;
}

int mrm_challenge_class_of(const mrm_challenge_weights *w, const char *code) {
    for (int j = 0; code && j < w->n; j++)
        for (char **a = w->codes[j]; *a; a++)
            if (!strcmp(*a, code)) return j;
    return -1;
}

/* sum over records of W * A for labels L and outputs O (n x m, 0/1). */
static double reward(const mrm_challenge_weights *w, const unsigned char *L, const unsigned char *O, int n) {
    const int m = w->n;
    double total = 0;
    for (int i = 0; i < n; i++) {
        const unsigned char *l = L + (size_t)i * m, *o = O + (size_t)i * m;
        int u = 0;
        for (int j = 0; j < m; j++) u += l[j] || o[j];
        const double norm = u > 1 ? u : 1;
        double s = 0;
        for (int j = 0; j < m; j++)
            if (l[j])
                for (int q = 0; q < m; q++)
                    if (o[q]) s += w->w[(size_t)j * m + q];
        total += s / norm;
    }
    return total;
}

mrm_status mrm_challenge_score(mrm_challenge_result *out, const mrm_challenge_weights *w, const float *y,
                               const float *p, int n, int c, const float *thresholds,
                               const char *const *codes, const char *sinus, mrm_error *err) {
    memset(out, 0, sizeof *out);
    mrm_status st = mrm_check_labels_scores(y, p, n, c, err);
    if (st) return st;
    if (!sinus) sinus = "426783006";
    const int m = w->n, sr = mrm_challenge_class_of(w, sinus);
    if (sr < 0) return mrm_fail(err, MRM_ERR_INVALID, "challenge score: the sinus rhythm code %s is not a scored class", sinus);
    int *map = malloc((size_t)c * sizeof *map);
    int *present = calloc((size_t)m, sizeof *present);
    unsigned char *L = calloc((size_t)n * m, 1), *O = calloc((size_t)n * m, 1), *I = calloc((size_t)n * m, 1);
    if (!map || !present || !L || !O || !I) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "challenge score: cannot allocate for %d x %d", n, m);
        goto done;
    }
    for (int k = 0; k < c; k++) {
        map[k] = codes && codes[k] && codes[k][0] ? mrm_challenge_class_of(w, codes[k]) : -1;
        if (map[k] >= 0) out->n_mapped++, present[map[k]] = 1;
    }
    for (int j = 0; j < m; j++) out->n_scored_present += present[j];
    if (!out->n_mapped) {
        st = mrm_fail(err, MRM_ERR_INVALID, "challenge score: none of the %d classes maps to a scored class", c);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < c; k++) {
            if (map[k] < 0) continue;
            size_t at = (size_t)i * m + map[k];
            L[at] |= y[(size_t)i * c + k] != 0.0f;
            O[at] |= p[(size_t)i * c + k] > (thresholds ? thresholds[k] : 0.5f);
        }
        I[(size_t)i * m + sr] = 1;
    }
    out->observed = reward(w, L, O, n);
    out->correct = reward(w, L, L, n);
    out->inactive = reward(w, L, I, n);
    out->score = out->correct != out->inactive ? (out->observed - out->inactive) / (out->correct - out->inactive) : 0.0;
done:
    free(map), free(present), free(L), free(O), free(I);
    return st;
}
