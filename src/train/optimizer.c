/* Adam and SGD with momentum over one contiguous parameter buffer, as torch.optim. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "mrmnet/train.h"

mrm_status mrm_optimizer_init(mrm_optimizer *o, mrm_opt_kind kind, size_t n, mrm_error *err) {
    memset(o, 0, sizeof *o);
    if (kind != MRM_OPT_ADAM && kind != MRM_OPT_SGD) return mrm_fail(err, MRM_ERR_INVALID, "optimizer: unknown kind %d", (int)kind);
    if (n == 0) return mrm_fail(err, MRM_ERR_INVALID, "optimizer: no parameters");
    o->kind = kind;
    o->lr = 1e-3, o->beta1 = 0.9, o->beta2 = 0.999, o->eps = 1e-8, o->weight_decay = 0, o->momentum = 0.9;
    o->n = n;
    o->m = calloc(n, sizeof *o->m);
    if (kind == MRM_OPT_ADAM) o->v = calloc(n, sizeof *o->v);
    if (!o->m || (kind == MRM_OPT_ADAM && !o->v)) {
        mrm_optimizer_free(o);
        return mrm_fail(err, MRM_ERR_NOMEM, "optimizer: cannot allocate state for %zu parameters", n);
    }
    return MRM_OK;
}

void mrm_optimizer_free(mrm_optimizer *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

/* Adam step (float arithmetic as PyTorch's CPU kernels; the bias corrections in double as its
 * Python code computes them). */
/* Below this many parameters a step runs on one thread. */
enum { PAR_MIN_PARAMS = 1 << 16 };

static void adam_step(mrm_optimizer *o, float *params, const float *grads) {
    o->t++;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, wd = (float)o->weight_decay;
    const float one_b1 = (float)(1.0 - o->beta1), one_b2 = (float)(1.0 - o->beta2);
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    const float step_size = (float)(o->lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
    float *m = o->m, *v = o->v;
    const size_t n = o->n;
    /* element by element: the threads' shares give the same bits as one thread */
#pragma omp parallel for schedule(static) if (n > PAR_MIN_PARAMS)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        if (wd != 0.0f) g += wd * params[i];
        m[i] = m[i] * b1 + one_b1 * g;
        v[i] = v[i] * b2 + one_b2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        params[i] -= step_size * (m[i] / denom);
    }
}

static void sgd_step(mrm_optimizer *o, float *params, const float *grads) {
    const float lr = (float)o->lr, mu = (float)o->momentum, wd = (float)o->weight_decay;
    const int first = o->t == 0;
    o->t++;
    float *buf = o->m;
    const size_t n = o->n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN_PARAMS)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        if (wd != 0.0f) g += wd * params[i];
        if (mu != 0.0f) {
            buf[i] = first ? g : buf[i] * mu + g;
            g = buf[i];
        }
        params[i] -= lr * g;
    }
}

void mrm_optimizer_step(mrm_optimizer *o, float *params, const float *grads) {
    if (o->kind == MRM_OPT_ADAM)
        adam_step(o, params, grads);
    else
        sgd_step(o, params, grads);
}
