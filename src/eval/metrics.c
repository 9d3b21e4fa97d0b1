/* Metrics of multi-label classification: ROC AUC (ranks with tie groups), thresholded
 * sample/macro metrics, Fmax, per-class F1 thresholds, bootstrap of the macro-AUC.
 * Definitions: include/mrmnet/eval.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "mrmnet/eval.h"

#define DEFAULT_THRESHOLD 0.5f

static float thr_of(const float *thresholds, int k) {
    return thresholds ? thresholds[k] : DEFAULT_THRESHOLD;
}

mrm_status mrm_check_labels_scores(const float *y, const float *p, int n, int c, mrm_error *err) {
    if (n <= 0 || c <= 0) return mrm_fail(err, MRM_ERR_INVALID, "metrics: need at least one record and one class (got %d x %d)", n, c);
    for (long long i = 0; i < (long long)n * c; i++) {
        if (y[i] != 0.0f && y[i] != 1.0f)
            return mrm_fail(err, MRM_ERR_INVALID, "metrics: label of record %lld class %lld is %g, not 0 or 1", i / c, i % c, (double)y[i]);
        if (!isfinite(p[i]))
            return mrm_fail(err, MRM_ERR_INVALID, "metrics: score of record %lld class %lld is not finite", i / c, i % c);
    }
    return MRM_OK;
}

/* ---- AUC ------------------------------------------------------------------------------------ */

typedef struct {
    float s;
    int i;
} scored;

static int cmp_scored_asc(const void *a, const void *b) {
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    if (x < y) return -1;
    if (x > y) return 1;
    int i = ((const scored *)a)->i, j = ((const scored *)b)->i;
    return (i > j) - (i < j);
}

/* order (n) receives the records sorted by the score of class k, ascending. */
static void sort_class(const float *p, int n, int c, int k, scored *tmp, int *order) {
    for (int i = 0; i < n; i++) {
        tmp[i].s = p[(size_t)i * c + k];
        tmp[i].i = i;
    }
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_scored_asc);
    for (int i = 0; i < n; i++) order[i] = tmp[i].i;
}

/* AUC of class k from its ascending order, each record counted w[i] times (w NULL: once).
 * Walks the tie groups: a positive beats every negative below its group and half of those in
 * it. NaN when the weighted positives or negatives are zero. */
static double auc_from_order(const float *y, const float *p, int n, int c, int k, const int *order,
                             const int *w) {
    double neg_below = 0, pos_total = 0, neg_total = 0, area = 0;
    int r = 0;
    while (r < n) {
        float s = p[(size_t)order[r] * c + k];
        double pos_g = 0, neg_g = 0;
        int e = r;
        while (e < n && p[(size_t)order[e] * c + k] == s) {
            int i = order[e];
            double wi = w ? w[i] : 1.0;
            if (y[(size_t)i * c + k] != 0.0f)
                pos_g += wi;
            else
                neg_g += wi;
            e++;
        }
        area += pos_g * (neg_below + 0.5 * neg_g);
        neg_below += neg_g;
        pos_total += pos_g;
        neg_total += neg_g;
        r = e;
    }
    if (pos_total == 0 || neg_total == 0) return NAN;
    return area / (pos_total * neg_total);
}

static double macro_of(const double *auc, int c, int *n_missing) {
    double sum = 0;
    int m = 0, have = 0;
    for (int k = 0; k < c; k++) {
        if (isnan(auc[k])) {
            m++;
        } else {
            sum += auc[k];
            have++;
        }
    }
    if (n_missing) *n_missing = m;
    return have ? sum / have : NAN;
}

/* orders (c, n): each class's records sorted ascending. */
static mrm_status sort_all_classes(const float *p, int n, int c, int **orders, mrm_error *err) {
    *orders = NULL;
    scored *tmp = malloc((size_t)n * sizeof *tmp);
    int *o = malloc((size_t)n * (size_t)c * sizeof *o);
    if (!tmp || !o) {
        free(tmp);
        free(o);
        return mrm_fail(err, MRM_ERR_NOMEM, "metrics: cannot allocate sort buffers for %d x %d scores", n, c);
    }
    for (int k = 0; k < c; k++) sort_class(p, n, c, k, tmp, o + (size_t)k * n);
    free(tmp);
    *orders = o;
    return MRM_OK;
}

mrm_status mrm_roc_auc(const float *y, const float *p, int n, int c, double *auc, double *macro,
                       int *n_missing, mrm_error *err) {
    mrm_status st = mrm_check_labels_scores(y, p, n, c, err);
    if (st) return st;
    int *orders;
    if ((st = sort_all_classes(p, n, c, &orders, err))) return st;
    for (int k = 0; k < c; k++) auc[k] = auc_from_order(y, p, n, c, k, orders + (size_t)k * n, NULL);
    free(orders);
    double mac = macro_of(auc, c, n_missing);
    if (macro) *macro = mac;
    return MRM_OK;
}

mrm_status mrm_roc_curve(const float *y, const float *p, int n, int c, int k, double **fpr,
                         double **tpr, int *n_points, mrm_error *err) {
    *fpr = *tpr = NULL;
    *n_points = 0;
    if (k < 0 || k >= c) return mrm_fail(err, MRM_ERR_INVALID, "roc curve: class %d out of range [0, %d)", k, c);
    mrm_status st = mrm_check_labels_scores(y, p, n, c, err);
    if (st) return st;
    scored *tmp = malloc((size_t)n * sizeof *tmp);
    int *order = malloc((size_t)n * sizeof *order);
    double *fx = malloc(((size_t)n + 1) * sizeof *fx), *ty = malloc(((size_t)n + 1) * sizeof *ty);
    if (!tmp || !order || !fx || !ty) {
        free(tmp), free(order), free(fx), free(ty);
        return mrm_fail(err, MRM_ERR_NOMEM, "roc curve: cannot allocate for %d records", n);
    }
    sort_class(p, n, c, k, tmp, order);
    free(tmp);
    double P = 0, N = 0;
    for (int i = 0; i < n; i++) {
        if (y[(size_t)i * c + k] != 0.0f)
            P++;
        else
            N++;
    }
    if (P == 0 || N == 0) {
        free(order), free(fx), free(ty);
        return mrm_fail(err, MRM_ERR_INVALID, "roc curve: class %d has %s", k, P == 0 ? "no positive" : "no negative");
    }
    /* Descending scores: after each tie group, one point. */
    int m = 0;
    double tp = 0, fp = 0;
    fx[m] = 0, ty[m] = 0, m++;
    int r = n - 1;
    while (r >= 0) {
        float s = p[(size_t)order[r] * c + k];
        while (r >= 0 && p[(size_t)order[r] * c + k] == s) {
            if (y[(size_t)order[r] * c + k] != 0.0f)
                tp++;
            else
                fp++;
            r--;
        }
        fx[m] = fp / N, ty[m] = tp / P, m++;
    }
    free(order);
    *fpr = fx, *tpr = ty, *n_points = m;
    return MRM_OK;
}

/* ---- thresholded metrics -------------------------------------------------------------------- */

double mrm_sample_f1(const float *y, const float *p, int n, int c, const float *thresholds) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        int tp = 0, np = 0, nt = 0;
        for (int k = 0; k < c; k++) {
            int t = y[(size_t)i * c + k] != 0.0f, q = p[(size_t)i * c + k] > thr_of(thresholds, k);
            tp += t && q, np += q, nt += t;
        }
        if (np + nt) sum += 2.0 * tp / (np + nt);
    }
    return sum / n;
}

double mrm_sample_tpr(const float *y, const float *p, int n, int c, const float *thresholds) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        int tp = 0, nt = 0;
        for (int k = 0; k < c; k++) {
            int t = y[(size_t)i * c + k] != 0.0f, q = p[(size_t)i * c + k] > thr_of(thresholds, k);
            tp += t && q, nt += t;
        }
        if (nt) sum += (double)tp / nt;
    }
    return sum / n;
}

double mrm_accuracy(const float *y, const float *p, int n, int c, const float *thresholds) {
    long long right = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++)
            right += (y[(size_t)i * c + k] != 0.0f) == (p[(size_t)i * c + k] > thr_of(thresholds, k));
    return (double)right / ((double)n * c);
}

double mrm_macro_f1(const float *y, const float *p, int n, int c, const float *thresholds) {
    double sum = 0;
    for (int k = 0; k < c; k++) {
        long long tp = 0, fp = 0, fn = 0;
        for (int i = 0; i < n; i++) {
            int t = y[(size_t)i * c + k] != 0.0f, q = p[(size_t)i * c + k] > thr_of(thresholds, k);
            tp += t && q, fp += !t && q, fn += t && !q;
        }
        if (2 * tp + fp + fn) sum += 2.0 * tp / (double)(2 * tp + fp + fn);
    }
    return sum / c;
}

double mrm_fmax(const float *y, const float *p, int n, int c, double *best_threshold) {
    double best = 0, best_t = 0;
    for (int step = 0; step <= 100; step++) {
        double t = step / 100.0, prec_sum = 0, rec_sum = 0;
        int n_pred = 0;
        for (int i = 0; i < n; i++) {
            int tp = 0, np = 0, nt = 0;
            for (int k = 0; k < c; k++) {
                int tr = y[(size_t)i * c + k] != 0.0f, q = (double)p[(size_t)i * c + k] >= t;
                tp += tr && q, np += q, nt += tr;
            }
            if (np) prec_sum += (double)tp / np, n_pred++;
            if (nt) rec_sum += (double)tp / nt;
        }
        double prec = n_pred ? prec_sum / n_pred : 0, rec = rec_sum / n;
        double f = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
        if (f > best) best = f, best_t = t;
    }
    if (best_threshold) *best_threshold = best_t;
    return best;
}

mrm_status mrm_best_f1_thresholds(const float *y, const float *p, int n, int c, float *thresholds,
                                  mrm_error *err) {
    const mrm_threshold_rule f1 = {MRM_RULE_F1, 0.0};
    return mrm_choose_thresholds(y, p, n, c, &f1, thresholds, NULL, err);
}

/* ---- bootstrap ------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile with linear interpolation on sorted v (m values). */
static double percentile_sorted(const double *v, int m, double q) {
    double pos = q / 100.0 * (m - 1);
    int lo = (int)floor(pos);
    if (lo >= m - 1) return v[m - 1];
    double frac = pos - lo;
    return v[lo] + frac * (v[lo + 1] - v[lo]);
}

double mrm_percentile_sorted(const double *v, int m, double q) { return percentile_sorted(v, m, q); }

mrm_status mrm_bootstrap_macro_auc_sets(const float *y, const float *const *p, int n_sets, int n, int c,
                                        int n_resamples, uint64_t seed, double *vals, int *n_redrawn,
                                        mrm_error *err) {
    if (n_redrawn) *n_redrawn = 0;
    if (n_resamples <= 0 || n_sets <= 0 || n <= 0 || c <= 0)
        return mrm_fail(err, MRM_ERR_INVALID, "bootstrap: %d resamples of %d score sets, %d x %d", n_resamples, n_sets, n, c);
    mrm_status st = MRM_OK;
    for (int s = 0; s < n_sets && !st; s++) st = mrm_check_labels_scores(y, p[s], n, c, err);
    if (st) return st;
    int **orders = calloc((size_t)n_sets, sizeof *orders), *w = malloc((size_t)n * sizeof *w);
    int *valid = malloc((size_t)c * sizeof *valid);
    if (!orders || !w || !valid) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "bootstrap: cannot allocate for %d x %d", n, c);
        goto done;
    }
    for (int s = 0; s < n_sets && !st; s++) st = sort_all_classes(p[s], n, c, &orders[s], err);
    if (st) goto done;
    /* A class has an AUC on the full set when it has a positive and a negative (labels only);
     * those classes must keep both kinds in every draw. */
    int n_valid = 0;
    for (int k = 0; k < c; k++) {
        int pos = 0, neg = 0;
        for (int i = 0; i < n; i++) {
            if (y[(size_t)i * c + k] != 0.0f)
                pos = 1;
            else
                neg = 1;
        }
        valid[k] = pos && neg;
        n_valid += valid[k];
    }
    if (!n_valid) {
        st = mrm_fail(err, MRM_ERR_INVALID, "bootstrap: no class has both positives and negatives");
        goto done;
    }
    mrm_rng rng;
    mrm_rng_seed(&rng, seed);
    long long max_draws = 1000LL * n_resamples;
    int got = 0;
    long long draws = 0;
    while (got < n_resamples) {
        if (draws++ >= max_draws) {
            st = mrm_fail(err, MRM_ERR_INVALID, "bootstrap: %lld draws without %d usable resamples (a class is too rare)", max_draws, n_resamples);
            goto done;
        }
        memset(w, 0, (size_t)n * sizeof *w);
        for (int j = 0; j < n; j++) w[mrm_rng_below(&rng, (uint64_t)n)]++;
        int ok = 1;
        for (int k = 0; k < c && ok; k++) {
            if (!valid[k]) continue;
            long long a = 0, b = 0;
            for (int i = 0; i < n; i++) {
                if (y[(size_t)i * c + k] != 0.0f)
                    a += w[i];
                else
                    b += w[i];
            }
            ok = a > 0 && b > 0;
        }
        if (!ok) {
            if (n_redrawn) (*n_redrawn)++;
            continue;
        }
        for (int s = 0; s < n_sets; s++) {
            double sum = 0;
            for (int k = 0; k < c; k++)
                if (valid[k]) sum += auc_from_order(y, p[s], n, c, k, orders[s] + (size_t)k * n, w);
            vals[(size_t)got * n_sets + s] = sum / n_valid;
        }
        got++;
    }
done:
    if (orders)
        for (int s = 0; s < n_sets; s++) free(orders[s]);
    free(orders), free(w), free(valid);
    return st;
}

mrm_status mrm_bootstrap_macro_auc(const float *y, const float *p, int n, int c, int n_resamples,
                                   uint64_t seed, mrm_bootstrap *out, mrm_error *err) {
    memset(out, 0, sizeof *out);
    if (n_resamples <= 0) return mrm_fail(err, MRM_ERR_INVALID, "bootstrap: %d resamples", n_resamples);
    double *vals = malloc((size_t)n_resamples * sizeof *vals), *auc = malloc((size_t)(c > 0 ? c : 1) * sizeof *auc);
    if (!vals || !auc) {
        free(vals), free(auc);
        return mrm_fail(err, MRM_ERR_NOMEM, "bootstrap: cannot allocate %d resamples", n_resamples);
    }
    int n_missing;
    mrm_status st = mrm_roc_auc(y, p, n, c, auc, &out->point, &n_missing, err);
    if (!st) st = mrm_bootstrap_macro_auc_sets(y, &p, 1, n, c, n_resamples, seed, vals, &out->n_redrawn, err);
    if (!st) {
        double mean = 0;
        for (int r = 0; r < n_resamples; r++) mean += vals[r];
        out->mean = mean / n_resamples;
        qsort(vals, (size_t)n_resamples, sizeof *vals, cmp_double);
        out->lo95 = percentile_sorted(vals, n_resamples, 2.5);
        out->hi95 = percentile_sorted(vals, n_resamples, 97.5);
        out->lo90 = percentile_sorted(vals, n_resamples, 5);
        out->hi90 = percentile_sorted(vals, n_resamples, 95);
        out->n_resamples = n_resamples;
    }
    free(vals), free(auc);
    return st;
}

/* ---- everything ----------------------------------------------------------------------------- */

mrm_status mrm_metrics_compute(mrm_metrics *m, const float *y, const float *p, int n, int c,
                               const float *thresholds, int n_resamples, uint64_t seed,
                               mrm_error *err) {
    memset(m, 0, sizeof *m);
    if (n <= 0 || c <= 0) return mrm_fail(err, MRM_ERR_INVALID, "metrics: need at least one record and one class (got %d x %d)", n, c);
    m->n = n, m->c = c;
    m->auc = malloc((size_t)c * sizeof *m->auc);
    if (!m->auc) return mrm_fail(err, MRM_ERR_NOMEM, "metrics: cannot allocate");
    mrm_status st = mrm_roc_auc(y, p, n, c, m->auc, &m->macro_auc, &m->n_auc_missing, err);
    if (st) goto fail;
    m->sample_f1 = mrm_sample_f1(y, p, n, c, thresholds);
    m->sample_tpr = mrm_sample_tpr(y, p, n, c, thresholds);
    m->acc = mrm_accuracy(y, p, n, c, thresholds);
    m->macro_f1 = mrm_macro_f1(y, p, n, c, thresholds);
    m->fmax = mrm_fmax(y, p, n, c, &m->fmax_threshold);
    /* no class with an AUC: no interval either (boot.n_resamples stays 0) */
    if (n_resamples > 0 && m->n_auc_missing < c &&
        (st = mrm_bootstrap_macro_auc(y, p, n, c, n_resamples, seed, &m->boot, err)))
        goto fail;
    return MRM_OK;
fail:
    mrm_metrics_free(m);
    return st;
}

void mrm_metrics_free(mrm_metrics *m) {
    free(m->auc);
    memset(m, 0, sizeof *m);
}
