/* Metrics at decision thresholds (per-class confusion counts and rates, the PTB-XL benchmark's
 * F-beta / G-beta), calibration (Brier score, reliability bins, ECE) and operating points chosen
 * by a rule. Definitions: include/mrmnet/eval.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "mrmnet/eval.h"

static float thr_of(const float *thresholds, int k) {
    return thresholds ? thresholds[k] : 0.5f;
}

static double ratio(long long a, long long b) {
    return b ? (double)a / (double)b : NAN;
}

/* ---- per-class counts ------------------------------------------------------------------------ */

void mrm_class_stats_compute(const float *y, const float *p, int n, int c, const float *thresholds,
                             mrm_class_stats *out) {
    for (int k = 0; k < c; k++) {
        mrm_class_stats s;
        memset(&s, 0, sizeof s);
        const float t = thr_of(thresholds, k);
        for (int i = 0; i < n; i++) {
            int tr = y[(size_t)i * c + k] != 0.0f, q = p[(size_t)i * c + k] > t;
            s.tp += tr && q, s.fp += !tr && q, s.tn += !tr && !q, s.fn += tr && !q;
        }
        s.support = s.tp + s.fn;
        s.sensitivity = ratio(s.tp, s.tp + s.fn);
        s.specificity = ratio(s.tn, s.tn + s.fp);
        s.ppv = ratio(s.tp, s.tp + s.fp);
        s.npv = ratio(s.tn, s.tn + s.fn);
        s.f1 = ratio(2 * s.tp, 2 * s.tp + s.fp + s.fn);
        out[k] = s;
    }
}

/* ---- the PTB-XL benchmark's F-beta and G-beta ------------------------------------------------ */

mrm_status mrm_benchmark_fg_compute(mrm_benchmark_fg *out, const float *y, const float *p, int n, int c,
                                    const float *thresholds, double beta1, double beta2, mrm_error *err) {
    memset(out, 0, sizeof *out);
    mrm_status st = mrm_check_labels_scores(y, p, n, c, err);
    if (st) return st;
    if (!(beta1 > 0) || !(beta2 > 0) || !isfinite(beta1) || !isfinite(beta2))
        return mrm_fail(err, MRM_ERR_INVALID, "F-beta/G-beta: beta must be positive (got %g, %g)", beta1, beta2);
    double *acc = calloc((size_t)c * 4, sizeof *acc); /* TP, FP, TN, FN per class */
    unsigned char *pred = malloc((size_t)c);
    out->f_beta_class = malloc((size_t)c * sizeof *out->f_beta_class);
    out->g_beta_class = malloc((size_t)c * sizeof *out->g_beta_class);
    if (!acc || !pred || !out->f_beta_class || !out->g_beta_class) {
        free(acc), free(pred);
        mrm_benchmark_fg_free(out);
        return mrm_fail(err, MRM_ERR_NOMEM, "F-beta/G-beta: cannot allocate for %d classes", c);
    }
    for (int i = 0; i < n; i++) {
        const float *yi = y + (size_t)i * c, *pi = p + (size_t)i * c;
        int nt = 0, np = 0, top = 0;
        for (int k = 0; k < c; k++) {
            nt += yi[k] != 0.0f;
            pred[k] = pi[k] > thr_of(thresholds, k);
            np += pred[k];
            if (pi[k] > pi[top]) top = k;
        }
        if (np == 0) {
            pred[top] = 1;
            out->n_forced++;
        }
        if (nt == 0) {
            out->n_unlabelled++;
            continue;
        }
        const double w = 1.0 / nt;
        for (int k = 0; k < c; k++) {
            int tr = yi[k] != 0.0f;
            acc[4 * k + (tr ? (pred[k] ? 0 : 3) : (pred[k] ? 1 : 2))] += w;
        }
    }
    double fs = 0, gs = 0;
    int have = 0;
    const double b1 = beta1 * beta1;
    for (int k = 0; k < c; k++) {
        double tp = acc[4 * k], fp = acc[4 * k + 1], fn = acc[4 * k + 3];
        if (tp + fp + fn > 0) {
            out->f_beta_class[k] = (1 + b1) * tp / ((1 + b1) * tp + fp + b1 * fn);
            out->g_beta_class[k] = tp / (tp + fp + beta2 * fn);
            fs += out->f_beta_class[k], gs += out->g_beta_class[k], have++;
        } else {
            out->f_beta_class[k] = out->g_beta_class[k] = NAN;
            out->n_undefined++;
        }
    }
    out->f_beta = have ? fs / have : NAN;
    out->g_beta = have ? gs / have : NAN;
    free(acc), free(pred);
    return MRM_OK;
}

void mrm_benchmark_fg_free(mrm_benchmark_fg *fg) {
    free(fg->f_beta_class), free(fg->g_beta_class);
    memset(fg, 0, sizeof *fg);
}

/* ---- calibration ----------------------------------------------------------------------------- */

mrm_status mrm_reliability_compute(mrm_reliability *out, const float *y, const float *p, int n, int c, int k,
                                   int n_bins, mrm_error *err) {
    memset(out, 0, sizeof *out);
    if (k < -1 || k >= c) return mrm_fail(err, MRM_ERR_INVALID, "calibration: class %d out of range [0, %d)", k, c);
    if (n_bins < 1 || n_bins > 1000) return mrm_fail(err, MRM_ERR_INVALID, "calibration: %d bins (1 to 1000)", n_bins);
    mrm_status st = mrm_check_labels_scores(y, p, n, c, err);
    if (st) return st;
    out->n_bins = n_bins;
    out->count = calloc((size_t)n_bins, sizeof *out->count);
    out->mean_score = calloc((size_t)n_bins, sizeof *out->mean_score);
    out->frac_pos = calloc((size_t)n_bins, sizeof *out->frac_pos);
    double *edges = malloc((size_t)n_bins * sizeof *edges);
    if (!out->count || !out->mean_score || !out->frac_pos || !edges) {
        free(edges);
        mrm_reliability_free(out);
        return mrm_fail(err, MRM_ERR_NOMEM, "calibration: cannot allocate %d bins", n_bins);
    }
    const double step = 1.0 / n_bins;
    for (int j = 0; j < n_bins; j++) edges[j] = (double)j * step; /* edges[1..n_bins-1] are the inner ones */
    double brier = 0;
    const int k0 = k < 0 ? 0 : k, k1 = k < 0 ? c : k + 1;
    for (int i = 0; i < n; i++)
        for (int q = k0; q < k1; q++) {
            double s = p[(size_t)i * c + q], t = y[(size_t)i * c + q];
            int lo = 1, hi = n_bins; /* first inner edge >= s, by bisection: bin = its index - 1 */
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (edges[mid] < s)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            int b = lo - 1;
            out->count[b]++;
            out->mean_score[b] += s;
            out->frac_pos[b] += t;
            brier += (s - t) * (s - t);
            out->total++;
        }
    free(edges);
    double ece = 0;
    for (int b = 0; b < n_bins; b++) {
        if (out->count[b]) {
            out->mean_score[b] /= (double)out->count[b];
            out->frac_pos[b] /= (double)out->count[b];
            ece += (double)out->count[b] / (double)out->total * fabs(out->frac_pos[b] - out->mean_score[b]);
        } else {
            out->mean_score[b] = out->frac_pos[b] = NAN;
        }
    }
    out->brier = brier / (double)out->total;
    out->ece = ece;
    return MRM_OK;
}

void mrm_reliability_free(mrm_reliability *r) {
    free(r->count), free(r->mean_score), free(r->frac_pos);
    memset(r, 0, sizeof *r);
}

/* ---- operating points ------------------------------------------------------------------------ */

mrm_status mrm_threshold_rule_parse(const char *text, mrm_threshold_rule *rule, mrm_error *err) {
    static const struct {
        const char *name;
        mrm_threshold_rule_kind kind;
    } valued[] = {{"sensitivity=", MRM_RULE_SENSITIVITY}, {"specificity=", MRM_RULE_SPECIFICITY}, {"fixed=", MRM_RULE_FIXED}};
    memset(rule, 0, sizeof *rule);
    if (!strcmp(text, "f1")) return rule->kind = MRM_RULE_F1, MRM_OK;
    if (!strcmp(text, "youden")) return rule->kind = MRM_RULE_YOUDEN, MRM_OK;
    for (size_t i = 0; i < sizeof valued / sizeof *valued; i++) {
        size_t l = strlen(valued[i].name);
        if (strncmp(text, valued[i].name, l)) continue;
        const char *v = text + l;
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        int fixed = valued[i].kind == MRM_RULE_FIXED;
        if (!*v || *end || errno || !isfinite(x) || (fixed ? (x < 0 || x > 1) : (x <= 0 || x > 1)))
            return mrm_fail(err, MRM_ERR_INVALID, "threshold rule '%s': the value must be a number in %s", text,
                            fixed ? "[0, 1]" : "(0, 1]");
        rule->kind = valued[i].kind;
        rule->value = x;
        return MRM_OK;
    }
    return mrm_fail(err, MRM_ERR_INVALID,
                    "threshold rule '%s': expected f1, youden, sensitivity=X, specificity=X or fixed=T", text);
}

void mrm_threshold_rule_format(const mrm_threshold_rule *rule, char *out, size_t outsz) {
    switch (rule->kind) {
    case MRM_RULE_F1: snprintf(out, outsz, "f1"); break;
    case MRM_RULE_YOUDEN: snprintf(out, outsz, "youden"); break;
    case MRM_RULE_SENSITIVITY: snprintf(out, outsz, "sensitivity=%.6g", rule->value); break;
    case MRM_RULE_SPECIFICITY: snprintf(out, outsz, "specificity=%.6g", rule->value); break;
    default: snprintf(out, outsz, "fixed=%.6g", rule->value); break;
    }
}

typedef struct {
    float s;
    int i;
} scored;

static int cmp_scored_desc(const void *a, const void *b) {
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    if (x > y) return -1;
    if (x < y) return 1;
    int i = ((const scored *)a)->i, j = ((const scored *)b)->i;
    return (i > j) - (i < j);
}

/* The threshold of the cut below tie group `s` (scores at or above s positive), the next lower
 * score being `below` (has_below 0: s is the lowest score). */
static float cut_below(float s, float below, int has_below) {
    if (!has_below) return nextafterf(s, -INFINITY);
    float mid = (float)(0.5 * ((double)s + (double)below));
    return (mid < s && mid >= below) ? mid : below;
}

mrm_status mrm_choose_thresholds(const float *y, const float *p, int n, int c, const mrm_threshold_rule *rule,
                                 float *thresholds, int *undetermined, mrm_error *err) {
    mrm_status st = mrm_check_labels_scores(y, p, n, c, err);
    if (st) return st;
    if (rule->kind == MRM_RULE_FIXED) {
        for (int k = 0; k < c; k++) {
            thresholds[k] = (float)rule->value;
            if (undetermined) undetermined[k] = 0;
        }
        return MRM_OK;
    }
    scored *v = malloc((size_t)n * sizeof *v);
    if (!v) return mrm_fail(err, MRM_ERR_NOMEM, "thresholds: cannot allocate for %d records", n);
    for (int k = 0; k < c; k++) {
        long long P = 0, N = 0;
        for (int i = 0; i < n; i++) {
            v[i].s = p[(size_t)i * c + k], v[i].i = i;
            if (y[(size_t)i * c + k] != 0.0f)
                P++;
            else
                N++;
        }
        int ok = rule->kind == MRM_RULE_F1 || rule->kind == MRM_RULE_SENSITIVITY ? P > 0
                 : rule->kind == MRM_RULE_SPECIFICITY                          ? N > 0
                                                                               : P > 0 && N > 0;
        if (undetermined) undetermined[k] = !ok;
        thresholds[k] = 0.5f;
        if (!ok) continue;
        qsort(v, (size_t)n, sizeof *v, cmp_scored_desc);
        /* The cut above every score: nothing positive. */
        double tp = 0, fp = 0;
        double best = -INFINITY;
        if (rule->kind == MRM_RULE_SPECIFICITY || rule->kind == MRM_RULE_YOUDEN) {
            thresholds[k] = v[0].s;
            best = rule->kind == MRM_RULE_YOUDEN ? 0.0 : INFINITY;
        }
        int r = 0;
        while (r < n) {
            float s = v[r].s;
            while (r < n && v[r].s == s) {
                if (y[(size_t)v[r].i * c + k] != 0.0f)
                    tp++;
                else
                    fp++;
                r++;
            }
            float t = cut_below(s, r < n ? v[r].s : 0.0f, r < n);
            double sens = P ? tp / (double)P : NAN, spec = N ? ((double)N - fp) / (double)N : NAN;
            if (rule->kind == MRM_RULE_F1) {
                double f1 = 2 * tp / (tp + fp + (double)P);
                if (f1 > best) best = f1, thresholds[k] = t;
            } else if (rule->kind == MRM_RULE_YOUDEN) {
                /* J * P * N = TP * N - FP * P, exact in integers (ties compare equal) */
                double j = tp * (double)N - fp * (double)P;
                if (j > best) best = j, thresholds[k] = t;
            } else if (rule->kind == MRM_RULE_SENSITIVITY) {
                if (sens >= rule->value) { /* the first (highest) cut reaching it */
                    thresholds[k] = t;
                    break;
                }
            } else { /* specificity: walk on while it holds; the last cut that holds wins */
                if (spec >= rule->value)
                    thresholds[k] = t;
                else
                    break;
            }
        }
    }
    free(v);
    return MRM_OK;
}
