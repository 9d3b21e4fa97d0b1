/* mrmnet public API: eval. Metrics of multi-label classification (spec section 8).
 * Included by mrmnet.h; see the conventions there.
 *
 * Inputs everywhere: y (n, c) multi-hot labels (each value 0 or 1) and p (n, c) scores
 * (probabilities), float32, C order: record i, class k at [i * c + k].
 *
 * Definitions (what each number means exactly):
 *  - ROC AUC of a class: the area under the ROC curve with tied scores counted half, equal to
 *    scikit-learn's roc_auc_score (computed by ranks with average ranks for tie groups).
 *    A class without a positive or without a negative has no AUC: NaN.
 *  - macro-AUC: the mean of the AUCs that exist; n_auc_missing says how many classes had none.
 *  - Thresholded metrics: a record is predicted positive for class k when p > threshold
 *    (strictly above; 0.5 by default). As scikit-learn with zero_division=0:
 *      sample-F1  = mean over records of 2|P&T| / (|P| + |T|), 0 for a record with |P|+|T| = 0;
 *      sample-TPR = mean over records of |P&T| / |T|, 0 for a record with no positive label
 *                   (recall_score(average='samples', zero_division=0));
 *      ACC        = the fraction of the n*c label entries predicted right (element-wise);
 *      macro-F1   = mean over classes of 2TP / (2TP + FP + FN), 0 for a class with 2TP+FP+FN = 0.
 *  - Fmax (the PTB-XL benchmark's sample-centric maximum F-measure, after the CAFA protein
 *    function challenge): for each threshold t in 0.00, 0.01, ..., 1.00, a record predicts class
 *    k when p >= t; precision(t) = mean over records with at least one prediction of |P&T|/|P|,
 *    recall(t) = mean over all records of |P&T|/|T| (0 for records with no label),
 *    F(t) = 2 precision recall / (precision + recall) (0 when both are 0 or no record predicts);
 *    Fmax = max over t, with the t that reached it (the lowest such t).
 *  - Bootstrap of the macro-AUC: draw n records with replacement (mrm_rng with the given seed);
 *    a draw in which a class that has an AUC on the full set lacks a positive or a negative is
 *    redrawn (the benchmark redraws draws without a positive; without a negative it would fail).
 *    Reports the point value (full set), the mean over resamples and the 2.5/97.5 and 5/95
 *    percentiles (linear interpolation between order statistics, as numpy.percentile).
 */
#ifndef MRMNET_EVAL_H
#define MRMNET_EVAL_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks that y holds only 0/1 and p only finite values; names the first bad entry. */
mrm_status mrm_check_labels_scores(const float *y, const float *p, int n, int c, mrm_error *err);

/* ROC AUC per class into auc[c] (NaN where a class lacks positives or negatives); the macro
 * mean over the classes that have one into *macro (NaN if none) and their count missing into
 * *n_missing. Either of macro, n_missing may be NULL. */
mrm_status mrm_roc_auc(const float *y, const float *p, int n, int c, double *auc, double *macro,
                       int *n_missing, mrm_error *err);

/* ROC curve of class k: the points (fpr, tpr) at each distinct score, from (0, 0) to (1, 1),
 * as scikit-learn's roc_curve(drop_intermediate=False) plus the (0, 0) start. *fpr, *tpr are
 * malloc'ed (caller frees), *n_points their length. Fails if the class lacks positives or
 * negatives. */
mrm_status mrm_roc_curve(const float *y, const float *p, int n, int c, int k, double **fpr,
                         double **tpr, int *n_points, mrm_error *err);

/* Thresholded metrics (no allocation; inputs assumed checked). thresholds: per class (c
 * values), or NULL for 0.5 everywhere. */
double mrm_sample_f1(const float *y, const float *p, int n, int c, const float *thresholds);
double mrm_sample_tpr(const float *y, const float *p, int n, int c, const float *thresholds);
double mrm_accuracy(const float *y, const float *p, int n, int c, const float *thresholds);
double mrm_macro_f1(const float *y, const float *p, int n, int c, const float *thresholds);
/* Fmax and the threshold reaching it (either output may be NULL for the threshold). */
double mrm_fmax(const float *y, const float *p, int n, int c, double *best_threshold);

/* Per-class decision thresholds maximising that class's F1 (prediction p > t) on (y, p):
 * thresholds[k] is the midpoint between the lowest score predicted positive and the next lower
 * score (below every score when all are positive). A class without positives gets 0.5.
 * Ties of F1 go to the highest threshold. */
mrm_status mrm_best_f1_thresholds(const float *y, const float *p, int n, int c, float *thresholds,
                                  mrm_error *err);

/* Bootstrap interval of the macro-AUC. */
typedef struct mrm_bootstrap {
    double point;          /* macro-AUC on the full set */
    double mean;           /* mean over the resamples */
    double lo95, hi95;     /* 2.5th and 97.5th percentiles */
    double lo90, hi90;     /* 5th and 95th percentiles (what the PTB-XL benchmark reports) */
    int n_resamples;
    int n_redrawn;         /* draws thrown away because a class lacked a positive or negative */
} mrm_bootstrap;
mrm_status mrm_bootstrap_macro_auc(const float *y, const float *p, int n, int c, int n_resamples,
                                   uint64_t seed, mrm_bootstrap *out, mrm_error *err);

/* Paired bootstrap: the macro-AUC of n_sets score sets p[s] (each (n, c)) against the same labels
 * on the same resamples (the draws mrm_bootstrap_macro_auc makes with that seed, with its redraw
 * rule; the classes kept are those with a positive and a negative in y), into
 * vals[r * n_sets + s] for r < n_resamples. Differences taken at the same r compare two sets on
 * the same records. *n_redrawn (may be NULL): draws thrown away. */
mrm_status mrm_bootstrap_macro_auc_sets(const float *y, const float *const *p, int n_sets, int n, int c,
                                        int n_resamples, uint64_t seed, double *vals, int *n_redrawn,
                                        mrm_error *err);
/* The q-th percentile (0..100) of m sorted values, interpolated linearly as numpy.percentile. */
double mrm_percentile_sorted(const double *v, int m, double q);

/* Every metric at once, for one set of scores. */
typedef struct mrm_metrics {
    int n, c;
    double *auc;           /* c values, NaN where a class has no AUC (malloc'ed) */
    int n_auc_missing;
    double macro_auc;
    double sample_f1, sample_tpr, acc, macro_f1;
    double fmax, fmax_threshold;
    mrm_bootstrap boot;    /* when n_resamples > 0 was asked and some class has an AUC
                              (else boot.n_resamples is 0) */
} mrm_metrics;
/* thresholds: per class or NULL (0.5). n_resamples 0 skips the bootstrap. */
mrm_status mrm_metrics_compute(mrm_metrics *m, const float *y, const float *p, int n, int c,
                               const float *thresholds, int n_resamples, uint64_t seed,
                               mrm_error *err);
void mrm_metrics_free(mrm_metrics *m);

#ifdef __cplusplus
}
#endif

#endif
