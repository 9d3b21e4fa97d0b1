/* The metrics on small cases computed by hand. */
#include "mrmnet/eval.h"
#include "test_util.h"

int main(void) {
    mrm_error err = {0};
    /* 4 records x 2 classes. Class 0: positives at 0.9 and 0.5, negatives at 0.1 and 0.5:
     * pairs won 1 + 1 + 1 + 0.5 (tie) of 4 -> 0.875. Class 1: no positive -> NaN. */
    const float y[] = {1, 0, /**/ 0, 0, /**/ 1, 0, /**/ 0, 0};
    const float p[] = {0.9f, 0.2f, /**/ 0.1f, 0.7f, /**/ 0.5f, 0.1f, /**/ 0.5f, 0.3f};
    double auc[2], macro;
    int missing;
    CHECK(mrm_roc_auc(y, p, 4, 2, auc, &macro, &missing, &err) == MRM_OK, "%s", err.msg);
    CHECK_CLOSE(auc[0], 0.875, 1e-12, "AUC with a tie");
    CHECK(isnan(auc[1]), "class without positives has no AUC: %g", auc[1]);
    CHECK(missing == 1, "one class missing, got %d", missing);
    CHECK_CLOSE(macro, 0.875, 1e-12, "macro over the classes that have an AUC");

    /* Thresholded at 0.5 (p > 0.5): predictions
     *   r0: {0}      truth {0}  -> F1 1, recall 1
     *   r1: {1}      truth {}   -> F1 0 (2*0/(1+0)), recall 0 (no label)
     *   r2: {}       truth {0}  -> F1 0, recall 0   (0.5 is not above 0.5)
     *   r3: {}       truth {}   -> F1 0 (zero division), recall 0
     * sample-F1 = 1/4, sample-TPR = 1/4; ACC: wrong entries r1c1, r2c0 -> 6/8.
     * class 0: TP 1, FP 0, FN 1 -> F1 2/3; class 1: TP 0, FP 1, FN 0 -> 0; macro-F1 = 1/3. */
    CHECK_CLOSE(mrm_sample_f1(y, p, 4, 2, NULL), 0.25, 1e-12, "sample-F1");
    CHECK_CLOSE(mrm_sample_tpr(y, p, 4, 2, NULL), 0.25, 1e-12, "sample-TPR");
    CHECK_CLOSE(mrm_accuracy(y, p, 4, 2, NULL), 0.75, 1e-12, "ACC");
    CHECK_CLOSE(mrm_macro_f1(y, p, 4, 2, NULL), 1.0 / 3.0, 1e-12, "macro-F1");
    /* per-class thresholds: class 0 at 0.45 makes r2 (and r3) positive. */
    const float thr[] = {0.45f, 0.8f};
    CHECK_CLOSE(mrm_sample_f1(y, p, 4, 2, thr), (1.0 + 0 + 1.0 + 0) / 4, 1e-12, "sample-F1, thresholds");
    /* Fmax (p >= t; precision over records predicting something, recall over all records):
     *   t = 0.00: every label predicted: precision (1/2 + 0 + 1/2 + 0)/4 = 1/4, recall 2/4 -> 1/3;
     *   t = 0.11..0.20: r0 {0,1} r1 {1} r2 {0} r3 {0,1}: precision 3/8, recall 1/2 -> 3/7;
     *   t = 0.21..0.30: r0 {0} r1 {1} r2 {0} r3 {0,1}: precision 1/2, recall 1/2 -> 1/2;
     *   t = 0.31..0.50: r3 {0}: the same 1/2; above 0.5 only r0 and r1 predict: less.
     * So Fmax = 0.5, first reached at t = 0.21. */
    double ft;
    CHECK_CLOSE(mrm_fmax(y, p, 4, 2, &ft), 0.5, 1e-12, "Fmax");
    CHECK_CLOSE(ft, 0.21, 1e-12, "Fmax threshold (lowest reaching the max)");

    /* Best F1 threshold of class 0: scores 0.9(+) 0.5(+) 0.5(-) 0.1(-): cut above 0.9 -> F1 2/3;
     * cut between 0.5 and 0.1 -> TP 2 FP 1 -> 0.8; best: midpoint 0.3. Class 1: no positive: 0.5. */
    float best[2];
    CHECK(mrm_best_f1_thresholds(y, p, 4, 2, best, &err) == MRM_OK, "%s", err.msg);
    CHECK_CLOSE(best[0], 0.3, 1e-6, "best threshold class 0");
    CHECK_CLOSE(best[1], 0.5, 1e-12, "best threshold of a class without positives");

    /* Bad input: a label 2 and a NaN score are named by record and class. */
    float yb[] = {1, 0, 2, 0}, pb[] = {0.1f, 0.2f, 0.3f, NAN};
    CHECK(mrm_roc_auc(yb, p, 2, 2, auc, &macro, &missing, &err) == MRM_ERR_INVALID, "bad label accepted");
    CHECK(strstr(err.msg, "record 1 class 0") != NULL, "message: %s", err.msg);
    CHECK(mrm_roc_auc(y, pb, 2, 2, auc, &macro, &missing, &err) == MRM_ERR_INVALID, "NaN score accepted");
    CHECK(strstr(err.msg, "record 1 class 1") != NULL, "message: %s", err.msg);

    /* ROC curve of class 0: descending groups 0.9 (+), 0.5 (+,-), 0.1 (-):
     * (0,0) (0,0.5) (0.5,1) (1,1). */
    double *fpr, *tpr;
    int np;
    CHECK(mrm_roc_curve(y, p, 4, 2, 0, &fpr, &tpr, &np, &err) == MRM_OK, "%s", err.msg);
    const double ef[] = {0, 0, 0.5, 1}, et[] = {0, 0.5, 1, 1};
    CHECK(np == 4, "4 points, got %d", np);
    for (int i = 0; i < np && i < 4; i++) CHECK(fpr[i] == ef[i] && tpr[i] == et[i], "point %d: (%g, %g)", i, fpr[i], tpr[i]);
    free(fpr), free(tpr);
    CHECK(mrm_roc_curve(y, p, 4, 2, 1, &fpr, &tpr, &np, &err) == MRM_ERR_INVALID, "curve of a class without positives");

    /* Bootstrap: 40 records, 3 classes; class 2 never positive. */
    enum { N = 40, C = 3 };
    float by[N * C], bp[N * C];
    for (int i = 0; i < N; i++) {
        by[i * C + 0] = (float)(i % 2);
        bp[i * C + 0] = (float)(i % 2) * 0.2f + (float)(i % 5) * 0.1f; /* overlapping */
        by[i * C + 1] = (float)(i % 3 == 0);
        bp[i * C + 1] = (float)(i % 3 == 0) + 0.01f * i;                /* perfectly separable */
        by[i * C + 2] = 0;
        bp[i * C + 2] = 0.5f;
    }
    mrm_bootstrap b1, b2, b3;
    CHECK(mrm_bootstrap_macro_auc(by, bp, N, C, 100, 7, &b1, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_bootstrap_macro_auc(by, bp, N, C, 100, 7, &b2, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_bootstrap_macro_auc(by, bp, N, C, 100, 8, &b3, &err) == MRM_OK, "%s", err.msg);
    double a3[C];
    mrm_roc_auc(by, bp, N, C, a3, &macro, &missing, &err);
    CHECK_CLOSE(b1.point, macro, 1e-15, "bootstrap point = macro-AUC");
    CHECK(b1.mean == b2.mean && b1.lo95 == b2.lo95 && b1.hi90 == b2.hi90, "same seed, same interval");
    CHECK(b1.mean != b3.mean, "another seed, another draw");
    CHECK(b1.lo95 <= b1.lo90 && b1.lo90 <= b1.mean && b1.mean <= b1.hi90 && b1.hi90 <= b1.hi95,
          "ordered: %g %g %g %g %g", b1.lo95, b1.lo90, b1.mean, b1.hi90, b1.hi95);
    CHECK(b1.lo95 > 0.5 && b1.hi95 <= 1.0, "interval within (0.5, 1]: %g %g", b1.lo95, b1.hi95);
    CHECK(b1.n_resamples == 100, "100 resamples");
    /* A class that is perfectly separable gives AUC 1 in every resample: interval [1, 1]. */
    float sy[N], sp[N];
    for (int i = 0; i < N; i++) sy[i] = (float)(i % 4 == 0), sp[i] = sy[i] + 0.001f * i;
    CHECK(mrm_bootstrap_macro_auc(sy, sp, N, 1, 50, 1, &b1, &err) == MRM_OK, "%s", err.msg);
    CHECK(b1.lo95 == 1.0 && b1.hi95 == 1.0 && b1.mean == 1.0, "separable: %g %g", b1.lo95, b1.hi95);
    /* Two positives in 40: many draws lack one and are redrawn. */
    for (int i = 0; i < N; i++) sy[i] = (float)(i < 2), sp[i] = 0.02f * i;
    CHECK(mrm_bootstrap_macro_auc(sy, sp, N, 1, 50, 1, &b1, &err) == MRM_OK, "%s", err.msg);
    CHECK(b1.n_redrawn > 0, "rare class redraws: %d", b1.n_redrawn);
    /* Paired sets: set 0 reproduces the single bootstrap's draws, the same scores twice give equal
     * values at every resample, other scores other values. */
    {
        float bq[N * C];
        for (int i = 0; i < N * C; i++) bq[i] = bp[i] + 0.05f * (float)((i * 7) % 11);
        const float *sets[3] = {bp, bp, bq};
        double vals[3 * 100], one[100];
        int redrawn = -1;
        CHECK(mrm_bootstrap_macro_auc_sets(by, sets, 3, N, C, 100, 7, vals, &redrawn, &err) == MRM_OK, "%s", err.msg);
        CHECK(mrm_bootstrap_macro_auc(by, bp, N, C, 100, 7, &b2, &err) == MRM_OK, "%s", err.msg);
        int same = 1, differ = 0;
        double mean = 0;
        for (int r = 0; r < 100; r++) {
            same &= vals[r * 3] == vals[r * 3 + 1];
            differ += vals[r * 3] != vals[r * 3 + 2];
            one[r] = vals[r * 3];
            mean += one[r] / 100;
        }
        CHECK(same, "the same scores: the same value at every resample");
        CHECK(differ > 50, "other scores: other values (%d of 100 differ)", differ);
        CHECK_CLOSE(mean, b2.mean, 1e-12, "set 0 = the single bootstrap's mean");
        CHECK(redrawn == b2.n_redrawn, "same redraws: %d %d", redrawn, b2.n_redrawn);
        for (int i = 1; i < 100; i++)
            for (int j = i; j > 0 && one[j - 1] > one[j]; j--) {
                double t = one[j];
                one[j] = one[j - 1], one[j - 1] = t;
            }
        CHECK(mrm_percentile_sorted(one, 100, 2.5) == b2.lo95 && mrm_percentile_sorted(one, 100, 95) == b2.hi90,
              "percentiles as the single bootstrap's");
        CHECK(mrm_bootstrap_macro_auc_sets(by, sets, 0, N, C, 100, 7, vals, NULL, &err) == MRM_ERR_INVALID, "no sets refused");
    }
    /* No class with an AUC: an error, not a silent NaN. */
    for (int i = 0; i < N; i++) sy[i] = 0;
    CHECK(mrm_bootstrap_macro_auc(sy, sp, N, 1, 50, 1, &b1, &err) == MRM_ERR_INVALID, "no AUC at all");

    mrm_metrics m;
    CHECK(mrm_metrics_compute(&m, y, p, 4, 2, NULL, 0, 0, &err) == MRM_OK, "%s", err.msg);
    CHECK(m.n_auc_missing == 1 && isnan(m.auc[1]) && m.macro_auc == 0.875, "all metrics at once");
    mrm_metrics_free(&m);
    /* one record: no class has an AUC, so no interval, and no failure */
    CHECK(mrm_metrics_compute(&m, y, p, 1, 2, NULL, 100, 1, &err) == MRM_OK, "%s", err.msg);
    CHECK(m.n_auc_missing == 2 && isnan(m.macro_auc) && m.boot.n_resamples == 0, "no AUC, no bootstrap");
    mrm_metrics_free(&m);
    TEST_END();
}
