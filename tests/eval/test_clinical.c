/* Hand-worked cases of the operating-point rules, the per-class counts, the benchmark's F-beta /
 * G-beta, calibration bins at their edges, the CPSC2018 table and the challenge score, and the
 * reward-matrix reader's refusals (the comparisons with scikit-learn and numpy on many chosen
 * predictions are in test_eval_clinical.py). */
#include "mrmnet/eval.h"
#include "test_util.h"

static const char *const W3 = ",426783006,164889003,713427006|59118001\n"
                              "426783006,1,0.5,0\n"
                              "164889003,0.5,1,0.25\n"
                              "713427006|59118001,0,0.25,1\n";

int main(void) {
    mrm_error err = {0};
    /* one class, 6 records: scores 0.9 0.8 0.7 0.6 0.4 0.2, labels 1 1 0 1 0 0 */
    const float y[6] = {1, 1, 0, 1, 0, 0}, p[6] = {0.9f, 0.8f, 0.7f, 0.6f, 0.4f, 0.2f};
    float t;
    int und;
    mrm_threshold_rule r;
    /* f1: cut below 0.6 -> TP 3 FP 1 FN 0: F1 6/7 (best); threshold midpoint 0.5 */
    CHECK(mrm_threshold_rule_parse("f1", &r, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_choose_thresholds(y, p, 6, 1, &r, &t, &und, &err) == MRM_OK && t == 0.5f && !und, "f1 -> %g", t);
    /* youden: below 0.8: sens 2/3 spec 1 -> J 0.667; below 0.6: sens 1 spec 2/3 -> 0.667: tie -> higher: 0.75 */
    mrm_threshold_rule_parse("youden", &r, &err);
    CHECK(mrm_choose_thresholds(y, p, 6, 1, &r, &t, &und, &err) == MRM_OK && t == 0.75f, "youden -> %g", t);
    /* sensitivity >= 0.9: the highest cut with sens 1 is below 0.6 */
    mrm_threshold_rule_parse("sensitivity=0.9", &r, &err);
    CHECK(mrm_choose_thresholds(y, p, 6, 1, &r, &t, &und, &err) == MRM_OK && t == 0.5f, "sensitivity -> %g", t);
    /* specificity >= 0.6: spec 2/3 still holds below 0.6 (fp 1 of 3), not below 0.4: t = 0.5 */
    mrm_threshold_rule_parse("specificity=0.6", &r, &err);
    CHECK(mrm_choose_thresholds(y, p, 6, 1, &r, &t, &und, &err) == MRM_OK && t == 0.5f, "specificity -> %g", t);
    /* specificity = 1: nothing above 0.7 may be... the lowest cut with no FP is below 0.8 */
    mrm_threshold_rule_parse("specificity=1", &r, &err);
    CHECK(mrm_choose_thresholds(y, p, 6, 1, &r, &t, &und, &err) == MRM_OK && t == 0.75f, "specificity=1 -> %g", t);
    char txt[64];
    mrm_threshold_rule_parse("sensitivity=0.95", &r, &err);
    mrm_threshold_rule_format(&r, txt, sizeof txt);
    CHECK(!strcmp(txt, "sensitivity=0.95"), "%s", txt);
    CHECK(mrm_threshold_rule_parse("sensitivity=0", &r, &err) == MRM_ERR_INVALID, "0 is no sensitivity target");
    CHECK(mrm_threshold_rule_parse("sensitivity=", &r, &err) == MRM_ERR_INVALID, "empty value");
    CHECK(mrm_threshold_rule_parse("ppv", &r, &err) == MRM_ERR_INVALID && strstr(err.msg, "youden"), "%s", err.msg);
    /* a class without positives: f1 not applicable */
    const float y0[3] = {0, 0, 0}, p0[3] = {0.1f, 0.2f, 0.3f};
    mrm_threshold_rule_parse("f1", &r, &err);
    CHECK(mrm_choose_thresholds(y0, p0, 3, 1, &r, &t, &und, &err) == MRM_OK && t == 0.5f && und, "no positive: 0.5, flagged");

    /* counts at 0.5: TP 3 (0.9 0.8 0.6), FP 1 (0.7), TN 2, FN 0 */
    mrm_class_stats cs;
    mrm_class_stats_compute(y, p, 6, 1, NULL, &cs);
    CHECK(cs.tp == 3 && cs.fp == 1 && cs.tn == 2 && cs.fn == 0 && cs.support == 3, "counts");
    CHECK(cs.sensitivity == 1.0 && cs.ppv == 0.75 && cs.npv == 1.0 && fabs(cs.specificity - 2.0 / 3) < 1e-15, "rates");
    mrm_class_stats_compute(y0, p0, 3, 1, NULL, &cs);
    CHECK(isnan(cs.sensitivity) && isnan(cs.ppv) && isnan(cs.f1) && cs.specificity == 1.0, "undefined ratios are NaN");

    /* F-beta / G-beta: 2 records x 2 classes. Record 0 labels {0,1}, scores below 0.5 -> top class 1
     * forced; record 1 label {0}, predicts 0. Class 0: TP 1, FN 0.5 -> F = 5/(5+2) ; G = 1/(1+1) */
    const float yb[4] = {1, 1, 1, 0}, pb[4] = {0.2f, 0.4f, 0.9f, 0.1f};
    mrm_benchmark_fg fg;
    CHECK(mrm_benchmark_fg_compute(&fg, yb, pb, 2, 2, NULL, 2, 2, &err) == MRM_OK, "%s", err.msg);
    CHECK_CLOSE(fg.f_beta_class[0], 5.0 / 7.0, 1e-15, "F_beta class 0");
    CHECK_CLOSE(fg.g_beta_class[0], 0.5, 1e-15, "G_beta class 0");
    CHECK_CLOSE(fg.f_beta_class[1], 1.0, 1e-15, "F_beta class 1");
    CHECK(fg.n_forced == 1 && fg.n_unlabelled == 0, "one record given its top class");
    mrm_benchmark_fg_free(&fg);

    /* calibration: 0.5 sits on an edge and falls into the bin below (as calibration_curve) */
    const float yc[4] = {0, 1, 0, 1}, pc[4] = {0.5f, 0.25f, 0.0f, 1.0f};
    mrm_reliability rel;
    CHECK(mrm_reliability_compute(&rel, yc, pc, 4, 1, 0, 10, &err) == MRM_OK, "%s", err.msg);
    CHECK(rel.count[0] == 1 && rel.count[2] == 1 && rel.count[4] == 1 && rel.count[9] == 1 && rel.count[5] == 0, "bins");
    CHECK(isnan(rel.mean_score[5]) && rel.frac_pos[2] == 1.0, "empty bins NaN");
    CHECK_CLOSE(rel.brier, (0.25 + 0.5625) / 4, 1e-15, "Brier");
    CHECK_CLOSE(rel.ece, (0.5 + 0.75) / 4, 1e-15, "ECE");
    mrm_reliability_free(&rel);

    /* CPSC2018: model columns in ICBEB order; record 0 labels AF+PAC, predicted PAC: right;
     * record 1 label NORM, predicted AF: a miss, row Normal, column AF */
    const char *icbeb[9] = {"1AVB", "AFIB", "CLBBB", "CRBBB", "NORM", "PAC", "STD_", "STE_", "VPC"};
    int num[9];
    for (int k = 0; k < 9; k++) num[k] = mrm_cpsc_class_number(icbeb[k]);
    CHECK(num[0] == 3 && num[4] == 1 && num[8] == 7 && mrm_cpsc_class_number("I-AVB") == 3 && mrm_cpsc_class_number("X") == 0,
          "class numbers");
    float ycp[18] = {0}, pcp[18] = {0};
    ycp[1] = ycp[5] = 1, pcp[5] = 0.9f;
    ycp[9 + 4] = 1, pcp[9 + 1] = 0.8f;
    mrm_cpsc_scores sc;
    CHECK(mrm_cpsc_score(&sc, ycp, pcp, 2, 9, num, NULL, &err) == MRM_OK, "%s", err.msg);
    CHECK(sc.table[5][5] == 1 && sc.table[0][1] == 1 && sc.n_scored == 2, "CPSC table");
    CHECK(sc.f1[5] == 1.0 && sc.f1[0] == 0.0 && sc.f1[1] == 0.0 && isnan(sc.f1[2]), "CPSC F1");
    const int bad_first[2] = {3, 1};
    CHECK(mrm_cpsc_score(&sc, ycp, pcp, 2, 9, num, bad_first, &err) == MRM_ERR_INVALID, "a first label the record lacks");
    num[8] = 0;
    CHECK(mrm_cpsc_score(&sc, ycp, pcp, 2, 9, num, NULL, &err) == MRM_ERR_INVALID && strstr(err.msg, "7"), "%s", err.msg);

    /* challenge: 2 records, classes SR AF RBBB (codes); record 0 AF predicted AF+SR; record 1
     * RBBB predicted nothing */
    mrm_challenge_weights w;
    CHECK(mrm_challenge_weights_parse(&w, "w.csv", W3, strlen(W3), &err) == MRM_OK, "%s", err.msg);
    CHECK(w.n == 3 && mrm_challenge_class_of(&w, "59118001") == 2 && mrm_challenge_class_of(&w, "1") == -1, "classes");
    const char *codes[3] = {"426783006", "164889003", "59118001"};
    const float yq[6] = {0, 1, 0, 0, 0, 1}, pq[6] = {0.9f, 0.9f, 0, 0, 0, 0};
    mrm_challenge_result cr;
    CHECK(mrm_challenge_score(&cr, &w, yq, pq, 2, 3, NULL, codes, NULL, &err) == MRM_OK, "%s", err.msg);
    /* observed: rec 0 (1*[0.5+1])/2 = 0.75; rec 1: 0. correct: 1 + 1 = 2. inactive: 0.5/2 + 0 */
    CHECK_CLOSE(cr.observed, 0.75, 1e-15, "observed");
    CHECK_CLOSE(cr.correct, 2.0, 1e-15, "correct");
    CHECK_CLOSE(cr.inactive, 0.25, 1e-15, "inactive");
    CHECK_CLOSE(cr.score, (0.75 - 0.25) / 1.75, 1e-15, "score");
    CHECK(mrm_challenge_score(&cr, &w, yq, pq, 2, 3, NULL, codes, "1", &err) == MRM_ERR_INVALID, "unknown sinus code");
    mrm_challenge_weights_free(&w);
    static const char *const bad[] = {"a,b\nb,1\n", ",a\n", ",a,b\na,1,0\nb,0,nan\n", ",a,\na,1,0\n,0,1\n", ",a,b\nb,1,0\na,0,1\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = 0;
        CHECK(mrm_challenge_weights_parse(&w, "bad.csv", bad[i], strlen(bad[i]), &err) != MRM_OK && strstr(err.msg, "bad.csv"),
              "bad matrix %zu refused: %s", i, err.msg);
    }
    TEST_END();
}
