/* Probabilities of a model on many records: the inference engine (mrmnet/engine.h), built once,
 * in batches shared out over the OpenMP threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "mrmnet/engine_build.h"
#include "mrmnet/train.h"


/* Writes the probabilities of one batch (b records starting at record r0); l2 NULL: a model with
 * one output (p1 = p2 = avg). */
static void store(const float *l1, const float *l2, long long r0, int b, int c, float *p1, float *p2, float *avg) {
    size_t off = (size_t)r0 * c, cnt = (size_t)b * c;
    for (size_t i = 0; i < cnt; i++) {
        float a = 1.0f / (1.0f + expf(-l1[i])), z = l2 ? 1.0f / (1.0f + expf(-l2[i])) : a;
        if (p1) p1[off + i] = a;
        if (p2) p2[off + i] = z;
        if (avg) avg[off + i] = 0.5f * (a + z);
    }
}

mrm_status mrm_predict_probs_engine(mrm_engine_runner *r, const float *X, long long n, int batch, float *p1,
                                    float *p2, float *avg, mrm_progress_fn progress, void *user, mrm_error *err) {
    if (n < 0 || batch <= 0) return mrm_fail(err, MRM_ERR_INVALID, "predict: %lld records in batches of %d", n, batch);
    if (n == 0) return MRM_OK;
    if (batch > n) batch = (int)n;
    const int c = r->engine.n_classes, two = r->engine.n_heads > 1;
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN;
    float *l1 = malloc(sizeof(float) * (size_t)batch * c), *l2 = malloc(sizeof(float) * (size_t)batch * c);
    if (!l1 || !l2) {
        free(l1), free(l2);
        return mrm_fail(err, MRM_ERR_NOMEM, "predict: cannot allocate logits");
    }
    mrm_status st = MRM_OK;
    for (long long r0 = 0; !st && r0 < n; r0 += batch) {
        int b = (int)(n - r0 < batch ? n - r0 : batch);
        st = mrm_engine_runner_run(r, X + (size_t)r0 * rec, b, l1, two ? l2 : NULL, err);
        if (!st) store(l1, two ? l2 : NULL, r0, b, c, p1, p2, avg);
        if (!st && progress) progress(user, "predicting", (size_t)(r0 + b), (size_t)n);
    }
    free(l1), free(l2);
    return st;
}

mrm_status mrm_predict_probs(mrm_model *m, const float *X, long long n, int batch, float *p1,
                             float *p2, float *avg, mrm_progress_fn progress, void *user,
                             mrm_error *err) {
    if (n < 0 || batch <= 0) return mrm_fail(err, MRM_ERR_INVALID, "predict: %lld records in batches of %d", n, batch);
    if (n == 0) return MRM_OK;
    mrm_engine_runner r;
    mrm_status st = mrm_engine_runner_create(&r, m, omp_get_max_threads(), err);
    if (st) return st;
    st = mrm_predict_probs_engine(&r, X, n, batch, p1, p2, avg, progress, user, err);
    mrm_engine_runner_free(&r);
    return st;
}
