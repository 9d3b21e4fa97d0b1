/* Probabilities of a model on many records: the fast inference path when the model provides
 * it, else the plain evaluation-mode forward, in batches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
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

mrm_status mrm_predict_probs(mrm_model *m, const float *X, long long n, int batch, float *p1,
                             float *p2, float *avg, mrm_progress_fn progress, void *user,
                             mrm_error *err) {
    if (n < 0 || batch <= 0) return mrm_fail(err, MRM_ERR_INVALID, "predict: %lld records in batches of %d", n, batch);
    if (n == 0) return MRM_OK;
    if (batch > n) batch = (int)n;
    const int c = mrm_model_config_of(m)->n_classes;
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN;
    float *l1 = malloc(sizeof(float) * (size_t)batch * c), *l2 = malloc(sizeof(float) * (size_t)batch * c);
    if (!l1 || !l2) {
        free(l1), free(l2);
        return mrm_fail(err, MRM_ERR_NOMEM, "predict: cannot allocate logits");
    }
    const int two = mrm_model_num_heads(m) > 1;
    mrm_infer *inf = NULL;
    mrm_status st = mrm_infer_create(&inf, m, batch, err);
    if (st == MRM_ERR_UNSUPPORTED) {
        inf = NULL;
        st = MRM_OK;
    }
    for (long long r0 = 0; !st && r0 < n; r0 += batch) {
        int b = (int)(n - r0 < batch ? n - r0 : batch);
        const float *x = X + (size_t)r0 * rec;
        if (inf) {
            st = mrm_infer_run(inf, x, b, l1, two ? l2 : NULL, err);
            if (!st) store(l1, two ? l2 : NULL, r0, b, c, p1, p2, avg);
        } else {
            st = mrm_model_forward(m, x, b, 0, NULL, err);
            if (!st) store(mrm_model_logits(m, 1), mrm_model_logits(m, 2), r0, b, c, p1, p2, avg);
        }
        if (!st && progress) progress(user, "predicting", (size_t)(r0 + b), (size_t)n);
    }
    if (inf) mrm_infer_free(inf);
    free(l1), free(l2);
    return st;
}
