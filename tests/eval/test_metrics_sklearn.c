/* The metrics against scikit-learn: random and heavily tied scores, a class without positives,
 * records without labels. The references come from tests/eval/sklearn_metrics.py (skips when
 * python3, numpy or scikit-learn is missing). */
#include <stdint.h>
#include <unistd.h>

#include "common/rng.h"
#include "mrmnet/eval.h"
#include "test_util.h"

enum { NCASES = 4 };

static void write_raw(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof *v, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* Case kinds: 0 random scores, 1 scores on a 5-step grid (ties, some exactly 0.5),
 * 2 random with class 2 all negative and some records with no label, 3 grid of 3 values. */
static void make_case(int kind, int n, int c, float *y, float *p, mrm_rng *r) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            float u = mrm_rng_uniform(r);
            int lab = mrm_rng_uniform(r) < 0.3f + 0.1f * k;
            if (kind == 2 && (k == 2 || i % 7 == 0)) lab = 0;
            /* scores mildly informative */
            float s = 0.6f * u + 0.4f * (float)lab * mrm_rng_uniform(r);
            if (kind == 1) s = floorf(s * 4.0f + 0.5f) / 4.0f;
            if (kind == 3) s = floorf(s * 2.0f + 0.5f) / 2.0f;
            y[i * c + k] = (float)lab;
            p[i * c + k] = s;
        }
}

static int read_ref(FILE *f, const char *name, double *v) {
    char key[64], val[64];
    if (fscanf(f, "%63s %63s", key, val) != 2 || strcmp(key, name)) {
        fprintf(stderr, "reference: expected %s\n", name);
        return -1;
    }
    *v = strcmp(val, "nan") ? strtod(val, NULL) : NAN;
    return 0;
}

int main(void) {
    const char *tmp = test_tmp_dir();
    const int ns[NCASES] = {300, 200, 150, 60}, cs[NCASES] = {5, 4, 6, 3};
    mrm_rng r;
    mrm_rng_seed(&r, 2024);
    float *ys[NCASES], *ps[NCASES];
    char path[4096];
    for (int t = 0; t < NCASES; t++) {
        int n = ns[t], c = cs[t];
        ys[t] = malloc(sizeof(float) * n * c);
        ps[t] = malloc(sizeof(float) * n * c);
        make_case(t, n, c, ys[t], ps[t], &r);
        snprintf(path, sizeof path, "%s/case%d.txt", tmp, t);
        FILE *f = fopen(path, "w");
        fprintf(f, "%d %d\n", n, c);
        fclose(f);
        snprintf(path, sizeof path, "%s/case%d_y.f32", tmp, t);
        write_raw(path, ys[t], (size_t)n * c);
        snprintf(path, sizeof path, "%s/case%d_p.f32", tmp, t);
        write_raw(path, ps[t], (size_t)n * c);
    }
    const char *src = getenv("MRM_SOURCE_DIR") ? getenv("MRM_SOURCE_DIR") : ".";
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s/tests/eval/sklearn_metrics.py' '%s'", py, src, tmp);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) == 77 || WEXITSTATUS(rc) == 127)
        TEST_SKIP("python3 with numpy and scikit-learn is not available");
    CHECK(WEXITSTATUS(rc) == 0, "reference script failed (%d)", WEXITSTATUS(rc));
    if (WEXITSTATUS(rc)) TEST_END();

    for (int t = 0; t < NCASES; t++) {
        int n = ns[t], c = cs[t];
        const float *y = ys[t], *p = ps[t];
        snprintf(path, sizeof path, "%s/case%d_ref.txt", tmp, t);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL, "no reference for case %d", t);
        if (!f) continue;
        mrm_metrics m;
        mrm_error err = {0};
        CHECK(mrm_metrics_compute(&m, y, p, n, c, NULL, 0, 0, &err) == MRM_OK, "%s", err.msg);
        char what[64];
        double v;
        int missing = 0;
        for (int k = 0; k < c; k++) {
            snprintf(what, sizeof what, "auc%d", k);
            if (read_ref(f, what, &v)) break;
            snprintf(what, sizeof what, "case %d auc of class %d", t, k);
            if (isnan(v)) {
                missing++;
                CHECK(isnan(m.auc[k]), "%s: expected NaN, got %g", what, m.auc[k]);
            } else {
                CHECK_CLOSE(m.auc[k], v, 1e-6, what);
            }
        }
        CHECK(m.n_auc_missing == missing, "case %d: %d classes without AUC, expected %d", t, m.n_auc_missing, missing);
        const char *names[] = {"macro_auc", "sample_f1", "sample_tpr", "acc", "macro_f1", "fmax", "fmax_t"};
        double got[] = {m.macro_auc, m.sample_f1, m.sample_tpr, m.acc, m.macro_f1, m.fmax, m.fmax_threshold};
        for (int j = 0; j < 7; j++) {
            if (read_ref(f, names[j], &v)) break;
            snprintf(what, sizeof what, "case %d %s", t, names[j]);
            CHECK_CLOSE(got[j], v, 1e-6, what);
        }
        /* ROC curve */
        char key[64];
        int k, np_ref;
        if (fscanf(f, "%63s %d", key, &k) == 2 && fscanf(f, "%63s %d", key, &np_ref) == 2) {
            double *fpr, *tpr;
            int npts;
            CHECK(mrm_roc_curve(y, p, n, c, k, &fpr, &tpr, &npts, &err) == MRM_OK, "%s", err.msg);
            CHECK(npts == np_ref, "case %d roc points %d vs %d", t, npts, np_ref);
            for (int i = 0; i < np_ref; i++) {
                double a, b;
                if (fscanf(f, "%63s %lf %lf", key, &a, &b) != 3) break;
                if (i < npts) {
                    CHECK_CLOSE(fpr[i], a, 1e-9, "roc fpr");
                    CHECK_CLOSE(tpr[i], b, 1e-9, "roc tpr");
                }
            }
            free(fpr), free(tpr);
        }
        /* best thresholds reach the best F1 */
        float *thr = malloc(sizeof(float) * c);
        CHECK(mrm_best_f1_thresholds(y, p, n, c, thr, &err) == MRM_OK, "%s", err.msg);
        for (k = 0; k < c; k++) {
            snprintf(what, sizeof what, "best_f1_%d", k);
            if (read_ref(f, what, &v)) break;
            long long tp = 0, fp = 0, fn = 0;
            for (int i = 0; i < n; i++) {
                int tr = y[i * c + k] != 0, q = p[i * c + k] > thr[k];
                tp += tr && q, fp += !tr && q, fn += tr && !q;
            }
            double f1 = 2 * tp + fp + fn ? 2.0 * tp / (2 * tp + fp + fn) : 0;
            snprintf(what, sizeof what, "case %d F1 at the chosen threshold of class %d", t, k);
            CHECK_CLOSE(f1, v, 1e-9, what);
        }
        free(thr);
        mrm_metrics_free(&m);
        fclose(f);
    }
    for (int t = 0; t < NCASES; t++) free(ys[t]), free(ps[t]);
    TEST_END();
}
