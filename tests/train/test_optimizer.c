/* Adam and SGD steps against hand computations of the torch.optim formulas (in double). */
#include "mrmnet/train.h"
#include "test_util.h"

int main(void) {
    enum { N = 5, STEPS = 4 };
    const float p0[N] = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f};
    const float grads[STEPS][N] = {{0.1f, -0.2f, 0.3f, 0.0f, 1.5f},
                                   {-0.3f, 0.1f, 0.2f, 0.01f, -0.5f},
                                   {0.05f, 0.05f, -0.4f, 0.0f, 0.2f},
                                   {0.2f, -0.1f, 0.0f, -0.02f, 0.3f}};
    mrm_error err = {0};

    /* Adam with L2 weight decay 0.01, lr 0.01. */
    for (int wdcase = 0; wdcase < 2; wdcase++) {
        mrm_optimizer o;
        CHECK(mrm_optimizer_init(&o, MRM_OPT_ADAM, N, &err) == MRM_OK, "%s", err.msg);
        CHECK(o.lr == 1e-3 && o.beta1 == 0.9 && o.beta2 == 0.999 && o.eps == 1e-8 && o.weight_decay == 0,
              "spec defaults");
        o.lr = 0.01;
        o.weight_decay = wdcase ? 0.01 : 0.0;
        float p[N];
        double ep[N], m[N] = {0}, v[N] = {0};
        for (int i = 0; i < N; i++) p[i] = p0[i], ep[i] = p0[i];
        for (int t = 1; t <= STEPS; t++) {
            mrm_optimizer_step(&o, p, grads[t - 1]);
            for (int i = 0; i < N; i++) {
                double g = grads[t - 1][i] + o.weight_decay * ep[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                double mhat = m[i] / (1 - pow(0.9, t)), vhat = v[i] / (1 - pow(0.999, t));
                ep[i] -= 0.01 * mhat / (sqrt(vhat) + 1e-8);
            }
            for (int i = 0; i < N; i++) CHECK_CLOSE(p[i], ep[i], 2e-6, wdcase ? "adam+wd param" : "adam param");
        }
        CHECK(o.t == STEPS, "step count %lld", o.t);
        /* The first Adam step moves every parameter with a non-zero gradient by about lr. */
        mrm_optimizer_free(&o);
    }
    {
        mrm_optimizer o;
        mrm_optimizer_init(&o, MRM_OPT_ADAM, N, &err);
        float p[N];
        memcpy(p, p0, sizeof p);
        mrm_optimizer_step(&o, p, grads[0]);
        /* m = 0.1 g, v = 0.001 g^2: mhat = g, vhat = g^2, step = lr * g / (|g| + eps) = lr sign(g). */
        CHECK_CLOSE(p[0], 1.0 - 1e-3, 1e-6, "first step size lr");
        CHECK_CLOSE(p[1], -2.0 + 1e-3, 1e-6, "first step size lr (negative gradient)");
        CHECK(p[3] == 0.0f, "zero gradient, no move");
        mrm_optimizer_free(&o);
    }

    /* SGD with momentum 0.9, lr 0.1, and weight decay 0.01. */
    for (int wdcase = 0; wdcase < 2; wdcase++) {
        mrm_optimizer o;
        CHECK(mrm_optimizer_init(&o, MRM_OPT_SGD, N, &err) == MRM_OK, "%s", err.msg);
        CHECK(o.v == NULL && o.momentum == 0.9, "sgd state");
        o.lr = 0.1;
        o.weight_decay = wdcase ? 0.01 : 0.0;
        float p[N];
        double ep[N], buf[N];
        for (int i = 0; i < N; i++) p[i] = p0[i], ep[i] = p0[i];
        for (int t = 1; t <= STEPS; t++) {
            mrm_optimizer_step(&o, p, grads[t - 1]);
            for (int i = 0; i < N; i++) {
                double g = grads[t - 1][i] + o.weight_decay * ep[i];
                buf[i] = t == 1 ? g : 0.9 * buf[i] + g;
                ep[i] -= 0.1 * buf[i];
            }
            for (int i = 0; i < N; i++) CHECK_CLOSE(p[i], ep[i], 1e-6, wdcase ? "sgd+wd param" : "sgd param");
        }
        mrm_optimizer_free(&o);
    }
    /* Plain SGD, lr 1: the change is exactly minus the gradient. */
    {
        mrm_optimizer o;
        mrm_optimizer_init(&o, MRM_OPT_SGD, N, &err);
        o.lr = 1.0;
        o.momentum = 0.0;
        float p[N];
        memcpy(p, p0, sizeof p);
        mrm_optimizer_step(&o, p, grads[0]);
        int exact = 1;
        for (int i = 0; i < N; i++) exact &= p[i] == p0[i] - grads[0][i];
        CHECK(exact, "lr 1, no momentum: param - grad");
        mrm_optimizer_free(&o);
    }
    mrm_optimizer o;
    CHECK(mrm_optimizer_init(&o, MRM_OPT_ADAM, 0, &err) == MRM_ERR_INVALID, "no parameters refused");
    TEST_END();
}
