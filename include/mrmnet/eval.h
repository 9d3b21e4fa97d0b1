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


/* ---- per-class metrics at decision thresholds ------------------------------------------------
 * Record i is predicted positive for class k when p > thresholds[k] (NULL: 0.5), as above.
 * sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), PPV = TP/(TP+FP), NPV = TN/(TN+FN),
 * F1 = 2TP/(2TP+FP+FN); a ratio whose denominator is 0 is undefined: NaN (the CLI prints "n/a",
 * JSON null). support = TP+FN (the class's positives). */
typedef struct mrm_class_stats {
    long long tp, fp, tn, fn, support;
    double sensitivity, specificity, ppv, npv, f1;
} mrm_class_stats;
/* out: c entries. */
void mrm_class_stats_compute(const float *y, const float *p, int n, int c, const float *thresholds,
                             mrm_class_stats *out);

/* ---- the PTB-XL benchmark's F-beta and G-beta (its ICBEB/CPSC2018 task, beta1 = beta2 = 2) ----
 * As the benchmark's challenge_metrics over apply_thresholds:
 *  - binary predictions: p > thresholds[k]; a record with no class above its threshold gets its
 *    highest-scoring class instead (the first such class on a tie), as apply_thresholds does;
 *  - each record counts 1/|T| where |T| is its number of labels; per class
 *    TP, FP, TN, FN are sums of those weights;
 *  - F_beta_k = (1+b1^2) TP / ((1+b1^2) TP + FP + b1^2 FN),  G_beta_k = TP / (TP + FP + b2 FN);
 *  - F_beta and G_beta: the means over classes.
 * Where the benchmark's code divides by zero, this says so instead: records with no label have
 * no weight (skipped, counted in n_unlabelled); a class with TP+FP+FN = 0 has no F_beta_k or
 * G_beta_k (NaN) and the means are over the other classes (n_undefined says how many). */
typedef struct mrm_benchmark_fg {
    double f_beta, g_beta;
    double *f_beta_class, *g_beta_class; /* c values each (malloc'ed) */
    int n_undefined;
    long long n_unlabelled;     /* records skipped: no label */
    long long n_forced;         /* records given their top class (none above threshold) */
} mrm_benchmark_fg;
mrm_status mrm_benchmark_fg_compute(mrm_benchmark_fg *out, const float *y, const float *p, int n, int c,
                                    const float *thresholds, double beta1, double beta2, mrm_error *err);
void mrm_benchmark_fg_free(mrm_benchmark_fg *fg);

/* ---- calibration ---------------------------------------------------------------------------
 * Brier score: the mean of (p - y)^2 (scikit-learn's brier_score_loss); per class over its n
 * records, overall over all n*c entries.
 * Reliability bins as scikit-learn's calibration_curve(strategy='uniform'): n_bins equal bins
 * with edges e_j = j * (1/n_bins) (double, as numpy.linspace); a score goes into the bin whose
 * index is the number of inner edges e_1..e_{n_bins-1} strictly below it (so bin b holds
 * e_b < p <= e_{b+1}, and bin 0 also everything at or below 0). Per bin: count, mean score,
 * fraction of positives.
 * Expected calibration error: ECE = sum over bins of count/total * |fraction - mean score|. */
typedef struct mrm_reliability {
    int n_bins;
    long long *count;           /* n_bins each (malloc'ed) */
    double *mean_score, *frac_pos; /* NaN in empty bins */
    double brier, ece;
    long long total;
} mrm_reliability;
/* Class k (0..c-1), or k = -1 for all entries pooled. */
mrm_status mrm_reliability_compute(mrm_reliability *out, const float *y, const float *p, int n, int c, int k,
                                   int n_bins, mrm_error *err);
void mrm_reliability_free(mrm_reliability *r);

/* ---- operating points -------------------------------------------------------------------------
 * A rule choosing each class's threshold t (prediction p > t) on labelled scores:
 *   "f1"              the highest F1 (mrm_best_f1_thresholds);
 *   "youden"          the highest sensitivity + specificity - 1 (Youden's J);
 *   "sensitivity=X"   the highest threshold whose sensitivity is at least X (0 < X <= 1);
 *   "specificity=X"   the lowest threshold whose specificity is at least X (0 < X <= 1);
 *   "fixed=T"         T for every class.
 * The candidates are the cuts between consecutive distinct scores of the class (and above the
 * highest); a chosen cut is reported as the midpoint of the two scores it falls between (float),
 * below the lowest score when every record is positive, at the highest score when none is. Ties
 * of the criterion go to the highest threshold. A class the rule cannot be applied to (f1,
 * sensitivity: no positive; specificity: no negative; youden: either) gets 0.5 and is flagged. */
typedef enum mrm_threshold_rule_kind {
    MRM_RULE_F1 = 0,
    MRM_RULE_YOUDEN = 1,
    MRM_RULE_SENSITIVITY = 2,
    MRM_RULE_SPECIFICITY = 3,
    MRM_RULE_FIXED = 4
} mrm_threshold_rule_kind;
typedef struct mrm_threshold_rule {
    mrm_threshold_rule_kind kind;
    double value;               /* X or T; unused for f1 and youden */
} mrm_threshold_rule;
/* Parses one of the forms above; the error says which forms exist. */
mrm_status mrm_threshold_rule_parse(const char *text, mrm_threshold_rule *rule, mrm_error *err);
/* The canonical text of a rule ("youden", "sensitivity=0.9") into out. */
void mrm_threshold_rule_format(const mrm_threshold_rule *rule, char *out, size_t outsz);
/* thresholds (c values); undetermined (c values, may be NULL): 1 where the rule could not be
 * applied to the class (its threshold is 0.5). */
mrm_status mrm_choose_thresholds(const float *y, const float *p, int n, int c, const mrm_threshold_rule *rule,
                                 float *thresholds, int *undetermined, mrm_error *err);

/* ---- the CPSC2018 challenge's F1 scores -------------------------------------------------------
 * The challenge numbers its nine classes 1 Normal, 2 AF, 3 I-AVB, 4 LBBB, 5 RBBB, 6 PAC, 7 PVC,
 * 8 STD, 9 STE. Its scoring takes ONE predicted class a record (here the class of the highest
 * score; the first in the model's order on a tie) and builds a 9 x 9 table A: when the
 * prediction is one of the record's labels, A[pred][pred] += 1, else A[first][pred] += 1 where
 * first is the record's first label in the reference table. Then
 *   F1_j    = 2 A[j][j] / (row sum j + column sum j), F1 = their mean over the nine classes,
 *   Faf     = F1 of AF,  Fblock = 2 (A33+A44+A55) / (rows 3-5 + columns 3-5),
 *   Fpc     = the same over PAC and PVC,  Fst = over STD and STE.
 * A quotient 0/0 is NaN (the challenge's code would give NaN as well). */
typedef struct mrm_cpsc_scores {
    double f1[9];                /* in the challenge's order */
    double f1_mean, f_af, f_block, f_pc, f_st;
    double f1_mean_defined;      /* the mean over the classes whose F1 is defined (NaN if none) */
    int n_defined;               /* how many (9 on any sizeable test set) */
    long long table[9][9];       /* A: rows the (first) label, columns the prediction */
    long long n_scored;
    long long n_unlabelled;      /* records with no label: not scored, counted */
    long long n_first_guessed;   /* misses on multi-label records whose first label was not
                                    given (first = the label with the lowest challenge number) */
} mrm_cpsc_scores;
/* The challenge number (1..9) of a class name: the ICBEB codes NORM AFIB 1AVB CLBBB CRBBB PAC
 * VPC STD_ STE_, the challenge's abbreviations (Normal AF I-AVB LBBB RBBB PAC PVC STD STE) or
 * the numbers "1".."9"; 0 for anything else. */
int mrm_cpsc_class_number(const char *name);
/* class_number: c values (mrm_cpsc_class_number of each class); each of 1..9 must occur exactly
 * once (other classes are ignored). first: n values (1..9) from the reference table, or NULL
 * (see n_first_guessed); a first label the record does not have is an error. */
mrm_status mrm_cpsc_score(mrm_cpsc_scores *out, const float *y, const float *p, int n, int c,
                          const int *class_number, const int *first, mrm_error *err);

/* ---- the PhysioNet/CinC Challenge 2021 challenge score ----------------------------------------
 * The reward matrix file (the challenge's weights.csv): a CSV whose header row is an empty cell
 * followed by the scored classes, then one row per class (its name first, then its rewards),
 * in the same order. A class name may join equivalent SNOMED codes with '|' ("713427006|59118001").
 * Scoring, as the challenge's compute_challenge_metric: with labels L and binary outputs O over
 * the scored classes, A[j][k] = sum over records of L[i][j] O[i][k] / max(1, |L_i or O_i|), the
 * score s(O) = sum W * A; the result is (s(O) - s(inactive)) / (s(L) - s(inactive)), where
 * `inactive` predicts only the sinus rhythm class (426783006 by default), and 0 when the
 * denominator is 0. */
typedef struct mrm_challenge_weights {
    int n;                      /* scored classes */
    char **names;               /* n names as in the file */
    char ***codes;              /* n NULL-terminated lists of the codes of each name */
    double *w;                  /* (n, n) rewards, rows the label, columns the output */
} mrm_challenge_weights;
/* In-memory entry point: `name` is used in messages. */
mrm_status mrm_challenge_weights_parse(mrm_challenge_weights *w, const char *name, const char *text, size_t len,
                                       mrm_error *err);
mrm_status mrm_challenge_weights_read(mrm_challenge_weights *w, const char *path, mrm_error *err);
void mrm_challenge_weights_free(mrm_challenge_weights *w);
/* The index of the scored class holding `code`, or -1. */
int mrm_challenge_class_of(const mrm_challenge_weights *w, const char *code);

typedef struct mrm_challenge_result {
    double score;               /* the normalised challenge score */
    double observed, correct, inactive; /* s(O), s(L), s(inactive) */
    int n_mapped;               /* the model's classes that map to a scored class */
    int n_scored_present;       /* scored classes with at least one model class */
} mrm_challenge_result;
/* codes: c SNOMED codes, one per model class (NULL or "" for a class with no code); class k
 * counts for the scored class holding codes[k] (a label or output of several model classes that
 * map to one scored class is their OR). sinus: the inactive class's code (NULL: 426783006); it
 * must be a scored class and some model class must map to a scored class. */
mrm_status mrm_challenge_score(mrm_challenge_result *out, const mrm_challenge_weights *w, const float *y,
                               const float *p, int n, int c, const float *thresholds,
                               const char *const *codes, const char *sinus, mrm_error *err);

#ifdef __cplusplus
}
#endif

#endif
