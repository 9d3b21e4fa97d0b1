/* Explanations of the model's scores: Grad-CAM on each branch's last maps, input times gradient
 * and integrated gradients, all from mrm_model_backward_outputs (an evaluation-mode backward).
 * The explained score of class k is the mean over the heads of their logits of class k. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/model_internal.h"

void mrm_resample_linear(const float *src, int n, float *dst, int m) {
    /* PyTorch's upsample_linear1d, align_corners = False: the source index of output i is
     * (i + 0.5) * n / m - 0.5, clamped at 0; the scale in float as PyTorch computes it */
    float scale = (float)n / (float)m;
    for (int i = 0; i < m; i++) {
        float s = scale * ((float)i + 0.5f) - 0.5f;
        if (s < 0.0f) s = 0.0f;
        int i0 = (int)s;
        if (i0 > n - 1) i0 = n - 1;
        int i1 = i0 + (i0 < n - 1 ? 1 : 0);
        float l1 = s - (float)i0, l0 = 1.0f - l1;
        dst[i] = l0 * src[i0] + l1 * src[i1];
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

void mrm_explain_baseline(const float *x, float *base) {
    float tmp[MRM_INPUT_LEN];
    for (int j = 0; j < MRM_INPUT_LEADS; j++) {
        memcpy(tmp, x + (size_t)j * MRM_INPUT_LEN, sizeof tmp);
        qsort(tmp, MRM_INPUT_LEN, sizeof *tmp, cmp_float);
        float med = 0.5f * (tmp[MRM_INPUT_LEN / 2 - 1] + tmp[MRM_INPUT_LEN / 2]);
        for (int t = 0; t < MRM_INPUT_LEN; t++) base[(size_t)j * MRM_INPUT_LEN + t] = med;
    }
}

void mrm_explain_smooth(const float *ig, int width, float *out) {
    enum { T = MRM_INPUT_LEN };
    double pre[T + 1]; /* prefix sums of the sum over the leads */
    pre[0] = 0;
    for (int t = 0; t < T; t++) {
        double v = 0;
        for (int j = 0; j < MRM_INPUT_LEADS; j++) v += ig[(size_t)j * T + t];
        pre[t + 1] = pre[t] + v;
    }
    if (width < 1) width = 1;
    if (width > T) width = T;
    for (int t = 0; t < T; t++) {
        int a = t - width / 2, b = a + width;
        if (a < 0) a = 0;
        if (b > T) b = T;
        out[t] = (float)((pre[b] - pre[a]) / (b - a));
    }
}

/* The seed of the combined score of class cls: 1 / heads at [b, cls] of every head's logits. */
static float *score_seed(const mrm_model *m, int B, int cls) {
    int N = m->cfg.n_classes;
    float *d = calloc((size_t)B * N, sizeof *d);
    if (!d) return NULL;
    for (int b = 0; b < B; b++) d[(size_t)b * N + cls] = 1.0f / (float)m->n_out;
    return d;
}

static mrm_status check_args(const mrm_model *m, const float *x, int B, int cls, const char *what, mrm_error *err) {
    if (!x || B < 1) return mrm_fail(err, MRM_ERR_INVALID, "%s: batch of %d", what, B);
    if (cls < 0 || cls >= m->cfg.n_classes)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: class %d of a model of %d classes", what, cls, m->cfg.n_classes);
    return MRM_OK;
}

/* Backward of the combined score of cls after a forward of B records. */
static mrm_status backward_score(mrm_model *m, int B, int cls, float *dx, mrm_error *err) {
    float *seed = score_seed(m, B, cls);
    if (!seed) return mrm_fail(err, MRM_ERR_NOMEM, "explain: out of memory");
    mrm_output_grads g = {{seed, m->n_out > 1 ? seed : NULL}, {NULL, NULL}};
    mrm_status s = mrm_model_backward_outputs(m, B, m->cfg.n_classes, &g, dx, err);
    free(seed);
    return s;
}

mrm_status mrm_explain_class(mrm_model *m, const float *x, int B, int cls, float *score, float *cam, float *cam_branch,
                             float *ixg, mrm_error *err) {
    mrm_status s = check_args(m, x, B, cls, "explain", err);
    if (s) return s;
    const int N = m->cfg.n_classes, T = MRM_INPUT_LEN, nb = m->n_branches;
    const size_t rec = (size_t)MRM_INPUT_LEADS * T;
    float *dx = NULL, *map = NULL, *up = NULL;
    s = mrm_model_forward(m, x, B, 0, NULL, err);
    if (s) return s;
    if (score)
        for (int b = 0; b < B; b++) {
            double v = 0;
            for (int h = 1; h <= m->n_out; h++) v += mrm_model_logits(m, h)[(size_t)b * N + cls];
            score[b] = (float)(v / m->n_out);
        }
    if (ixg) {
        dx = malloc(sizeof(float) * rec * (size_t)B);
        if (!dx) return mrm_fail(err, MRM_ERR_NOMEM, "explain: out of memory");
    }
    s = backward_score(m, B, cls, dx, err);
    if (!s && ixg)
        for (size_t i = 0; i < rec * (size_t)B; i++) ixg[i] = x[i] * dx[i];
    free(dx);
    if (s || (!cam && !cam_branch)) return s;
    int maxL = 0;
    for (int br = 1; br <= nb; br++) {
        int c, L;
        mrm_model_feature_shape(m, br, &c, &L);
        if (L > maxL) maxL = L;
    }
    map = malloc(sizeof(float) * (size_t)maxL);
    up = malloc(sizeof(float) * (size_t)T);
    if (!map || !up) {
        free(map), free(up);
        return mrm_fail(err, MRM_ERR_NOMEM, "explain: out of memory");
    }
    if (cam) memset(cam, 0, sizeof(float) * (size_t)B * T);
    for (int br = 1; br <= nb; br++) {
        int C, L;
        mrm_model_feature_shape(m, br, &C, &L);
        const float *A = mrm_model_features(m, br), *G = mrm_model_feature_grads(m, br);
        for (int b = 0; b < B; b++) {
            const float *a = A + (size_t)b * C * L, *g = G + (size_t)b * C * L;
            double *acc = calloc((size_t)L, sizeof *acc);
            if (!acc) {
                free(map), free(up);
                return mrm_fail(err, MRM_ERR_NOMEM, "explain: out of memory");
            }
            for (int j = 0; j < C; j++) {
                double w = 0;
                for (int t = 0; t < L; t++) w += g[(size_t)j * L + t];
                w /= L;
                for (int t = 0; t < L; t++) acc[t] += w * a[(size_t)j * L + t];
            }
            for (int t = 0; t < L; t++) map[t] = acc[t] > 0 ? (float)acc[t] : 0.0f;
            free(acc);
            mrm_resample_linear(map, L, up, T);
            if (cam_branch) memcpy(cam_branch + ((size_t)b * nb + (br - 1)) * T, up, sizeof(float) * T);
            if (cam)
                for (int t = 0; t < T; t++) cam[(size_t)b * T + t] += up[t];
        }
    }
    free(map), free(up);
    return MRM_OK;
}

mrm_status mrm_explain_integrated(mrm_model *m, const float *x, const float *baseline, int B, int cls, int steps, float *ig,
                                  mrm_error *err) {
    mrm_status s = check_args(m, x, B, cls, "integrated gradients", err);
    if (s) return s;
    if (!baseline || !ig || steps < 1)
        return mrm_fail(err, MRM_ERR_INVALID, "integrated gradients: %d steps, baseline and output needed", steps);
    const size_t n = (size_t)B * MRM_INPUT_LEADS * MRM_INPUT_LEN;
    float *xs = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
    double *sum = calloc(n, sizeof *sum);
    if (!xs || !dx || !sum) {
        free(xs), free(dx), free(sum);
        return mrm_fail(err, MRM_ERR_NOMEM, "integrated gradients: out of memory");
    }
    for (int i = 0; !s && i < steps; i++) {
        float a = ((float)i + 0.5f) / (float)steps;
        for (size_t j = 0; j < n; j++) xs[j] = baseline[j] + a * (x[j] - baseline[j]);
        s = mrm_model_forward(m, xs, B, 0, NULL, err);
        if (!s) s = backward_score(m, B, cls, dx, err);
        if (!s)
            for (size_t j = 0; j < n; j++) sum[j] += dx[j];
    }
    if (!s)
        for (size_t j = 0; j < n; j++) ig[j] = (float)((x[j] - baseline[j]) * (sum[j] / steps));
    free(xs), free(dx), free(sum);
    return s;
}
