/* The evaluation-mode backward from the outputs (mrm_model_backward_outputs), without PyTorch:
 *  - the gradient with respect to the input against central finite differences of the class's
 *    combined logit (width 4, released variant and combine=add), along the gradient and along its
 *    sign on single leads; the feature gradients there, of each branch's shape;
 *  - no side effect: BatchNorm running statistics, counts and logits unchanged by the backward;
 *  - refusals: after a training-mode forward, with other shapes, a head the model lacks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrmnet.h"
#include "test_util.h"

static mrm_model *make(mrm_combine combine, uint64_t seed) {
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    cfg.width = 4;
    cfg.combine = combine;
    mrm_model *m = NULL;
    mrm_error err = {0};
    CHECK(mrm_model_create(&m, &cfg, &err) == MRM_OK, "create: %s", err.msg);
    if (!m) return NULL;
    mrm_model_init(m, seed);
    /* statistics away from their defaults, so that the evaluation-mode BN is not the identity */
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        float *d = t->data;
        if (t->is_int64) continue;
        if (strstr(t->name, "running_var"))
            for (long long j = 0; j < t->numel; j++) d[j] = 0.5f + 0.013f * (float)((j * 7 + i) % 53);
        else if (strstr(t->name, "running_mean"))
            for (long long j = 0; j < t->numel; j++) d[j] = -0.1f + 0.004f * (float)((j * 5 + i) % 50);
    }
    return m;
}

/* The combined logit of class k (mean over the heads) for one record. */
static double score(mrm_model *m, const float *x, int k) {
    mrm_error err = {0};
    mrm_status s = mrm_model_forward(m, x, 1, 0, NULL, &err);
    CHECK(s == MRM_OK, "forward: %s", err.msg);
    int n = mrm_model_num_heads(m), N = mrm_model_config_of(m)->n_classes;
    double v = 0;
    for (int h = 1; h <= n; h++) v += mrm_model_logits(m, h)[k];
    (void)N;
    return v / n;
}

static void input_gradient(mrm_combine combine, const char *what) {
    mrm_model *m = make(combine, 3);
    if (!m) return;
    const int N = mrm_model_config_of(m)->n_classes, n = MRM_INPUT_LEADS * MRM_INPUT_LEN, k = 2;
    float *x = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n), *dl = calloc((size_t)N, sizeof(float));
    for (int i = 0; i < n; i++) x[i] = (float)(sin(0.013 * i) + 0.3 * cos(0.11 * i + (i / 1000)));
    mrm_error err = {0};
    score(m, x, k);
    /* the statistics and logits before the backward */
    size_t ns = 0;
    for (int i = 0; i < mrm_model_num_tensors(m); i++)
        if (!mrm_model_tensor(m, i)->trainable) ns += (size_t)mrm_model_tensor(m, i)->numel * 8;
    char *stats = malloc(ns), *p = stats;
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        if (t->trainable) continue;
        size_t b = (size_t)t->numel * (t->is_int64 ? 8 : 4);
        memcpy(p, t->data, b);
        p += b;
    }
    float logit_before = mrm_model_logits(m, 1)[k];
    int heads = mrm_model_num_heads(m);
    dl[k] = 1.0f / heads;
    mrm_output_grads g = {{dl, heads > 1 ? dl : NULL}, {NULL, NULL}};
    CHECK(mrm_model_backward_outputs(m, 1, N, &g, dx, &err) == MRM_OK, "%s: backward: %s", what, err.msg);
    CHECK(mrm_model_logits(m, 1)[k] == logit_before, "%s: the logits are kept", what);
    p = stats;
    int same = 1;
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        if (t->trainable) continue;
        size_t b = (size_t)t->numel * (t->is_int64 ? 8 : 4);
        same &= !memcmp(p, t->data, b);
        p += b;
    }
    CHECK(same, "%s: no BatchNorm statistic or count changed", what);
    /* the feature gradients of each branch exist and have the branch's shape */
    for (int br = 1; br <= mrm_model_num_branches(m); br++) {
        int c = 0, L = 0;
        CHECK(mrm_model_feature_shape(m, br, &c, &L) == 0 && c * L == mrm_model_feature_size(m), "%s: branch %d shape", what, br);
        CHECK(mrm_model_feature_grads(m, br) != NULL, "%s: branch %d feature gradients", what, br);
    }
    /* directional finite differences: along the gradient (d = |g|), and along sign(g) on one lead
     * at a time (d = sum |g| over that lead): many small steps, so that no ReLU is crossed */
    float *xp = malloc(sizeof(float) * n);
    double norm = 0;
    for (int i = 0; i < n; i++) norm += (double)dx[i] * dx[i];
    norm = sqrt(norm);
    for (int dir = -1; dir < MRM_INPUT_LEADS; dir += 4) {
        double want = 0, h = 0;
        float *v = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) {
            v[i] = dir < 0 ? (float)(dx[i] / norm) : (i / MRM_INPUT_LEN == dir ? (dx[i] > 0) - (dx[i] < 0) : 0.0f);
            want += (double)dx[i] * v[i];
        }
        h = dir < 0 ? 0.005 : 0.0002;
        for (int i = 0; i < n; i++) xp[i] = x[i] + (float)h * v[i];
        double up = score(m, xp, k);
        for (int i = 0; i < n; i++) xp[i] = x[i] - (float)h * v[i];
        double fd = (up - score(m, xp, k)) / (2 * h);
        CHECK(fabs(fd - want) <= 3e-2 * fabs(want), "%s: directional derivative %s%d: %.6g, finite differences %.6g", what,
              dir < 0 ? "along the gradient" : "lead ", dir < 0 ? 0 : dir, want, fd);
        free(v);
    }
    free(xp), free(x), free(dx), free(dl), free(stats);
    mrm_model_free(m);
}

static void refusals(void) {
    mrm_model *m = make(MRM_COMBINE_ADD, 5);
    if (!m) return;
    mrm_model_set_dropout(m, 0.0f);
    const int N = mrm_model_config_of(m)->n_classes, n = MRM_INPUT_LEADS * MRM_INPUT_LEN;
    float *x = calloc((size_t)n * 2, sizeof(float)), *dl = calloc((size_t)N * 2, sizeof(float));
    for (int i = 0; i < 2 * n; i++) x[i] = (float)sin(0.01 * i);
    mrm_error err = {0};
    mrm_output_grads g = {{dl, NULL}, {NULL, NULL}};
    CHECK(mrm_model_backward_outputs(m, 1, N, &g, NULL, &err) == MRM_ERR_INVALID, "no forward yet");
    CHECK(mrm_model_forward(m, x, 2, 1, NULL, &err) == MRM_OK, "training forward: %s", err.msg);
    CHECK(mrm_model_backward_outputs(m, 2, N, &g, NULL, &err) == MRM_ERR_INVALID && strstr(err.msg, "training mode"),
          "after a training-mode forward: %s", err.msg);
    CHECK(mrm_model_forward(m, x, 2, 0, NULL, &err) == MRM_OK, "forward: %s", err.msg);
    CHECK(mrm_model_backward_outputs(m, 1, N, &g, NULL, &err) == MRM_ERR_INVALID && strstr(err.msg, "(1, 5)"),
          "another batch: %s", err.msg);
    CHECK(mrm_model_backward_outputs(m, 2, N + 1, &g, NULL, &err) == MRM_ERR_INVALID, "other classes");
    mrm_output_grads g2 = {{dl, dl}, {NULL, NULL}};
    CHECK(mrm_model_backward_outputs(m, 2, N, &g2, NULL, &err) == MRM_ERR_INVALID && strstr(err.msg, "head"),
          "a second head on a one-output model: %s", err.msg);
    CHECK(mrm_model_backward_outputs(m, 2, N, &g, NULL, &err) == MRM_OK, "a valid call: %s", err.msg);
    free(x), free(dl);
    mrm_model_free(m);
}

int main(void) {
    input_gradient(MRM_COMBINE_MUTUAL, "released variant");
    input_gradient(MRM_COMBINE_ADD, "combine=add");
    refusals();
    TEST_END();
}
