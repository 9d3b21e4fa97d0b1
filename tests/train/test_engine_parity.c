/* The engine (mrmnet/engine.h) against the evaluation-mode forward (mrm_model_forward, train 0)
 * on every variant of the ablation list, with every kernel set this CPU runs (portable, AVX2,
 * AVX-512): the same logits to float rounding. The models have random weights and random
 * BatchNorm statistics and affine parameters, so that the folding is exercised; width 8 keeps
 * the test short. Also: the memory sizes, batches run record by record, the image checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "mrmnet.h"
#include "mrmnet/engine_build.h"
#include "test_util.h"

/* BN statistics and affine parameters away from their initial values. */
static void perturb_bn(mrm_model *m, mrm_rng *rng) {
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        if (t->is_int64) continue;
        size_t n = strlen(t->name);
        float *d = t->data;
        int var = n > 12 && !strcmp(t->name + n - 12, "running_var");
        int mean = n > 13 && !strcmp(t->name + n - 13, "running_mean");
        int bn_w = t->ndim == 1 && !var && !mean;
        for (long long j = 0; j < t->numel; j++) {
            double u = mrm_rng_uniform(rng);
            if (var) d[j] = (float)(0.5 + u);
            else if (mean) d[j] = (float)(0.2 * (u - 0.5));
            else if (bn_w) d[j] += (float)(0.2 * (u - 0.5));
        }
    }
}

/* Writes n floats raw to dir/name. */
static int write_raw(const char *dir, const char *name, const void *p, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static double max_rel(const float *a, const float *ref, size_t n) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]), d = fabs((double)a[i] - ref[i]);
        if (r > mx) mx = r;
        if (d > md || d != d) md = d != d ? INFINITY : d;
    }
    return md / (mx > 1e-30 ? mx : 1e-30);
}

int main(void) {
    int nv = 0;
    const mrm_ablate_variant *v = mrm_ablate_default_variants(&nv);
    const int B = 3, N = 5;
    const size_t rec = 12 * 1000;
    float *x = malloc(sizeof(float) * B * rec);
    mrm_rng rng;
    mrm_rng_seed(&rng, 7);
    for (size_t i = 0; i < B * rec; i++) x[i] = mrm_rng_uniform_range(&rng, -2.0f, 2.0f);
    for (int vi = 0; vi < nv; vi++) {
        mrm_error err = {0};
        mrm_model_config cfg;
        mrm_model_config_default(&cfg);
        cfg.width = 8;
        cfg.n_classes = N;
        CHECK(mrm_model_config_parse(&cfg, v[vi].config, &err) == MRM_OK, "%s: %s", v[vi].name, err.msg);
        mrm_model *m = NULL;
        if (mrm_model_create(&m, &cfg, &err)) {
            CHECK(0, "%s: %s", v[vi].name, err.msg);
            continue;
        }
        mrm_model_init(m, 100 + (uint64_t)vi);
        perturb_bn(m, &rng);
        CHECK(mrm_model_forward(m, x, B, 0, NULL, &err) == MRM_OK, "%s", err.msg);
        int heads = mrm_model_num_heads(m);
        void *img = NULL;
        size_t len = 0;
        CHECK(mrm_engine_build(m, NULL, &img, &len, &err) == MRM_OK, "%s: build: %s", v[vi].name, err.msg);
        if (!img) {
            mrm_model_free(m);
            continue;
        }
        /* the released variant's image, input and logits: the fixtures of the engine-only tests
         * (tests/engine, also run cross-compiled under qemu-aarch64) */
        const char *fx = getenv("MRM_ENGINE_FIXTURES_OUT");
        if (vi == 0 && fx && *fx) {
            int w = write_raw(fx, "engine.mrme", img, len) | write_raw(fx, "x.f32", x, sizeof(float) * B * rec) |
                    write_raw(fx, "logits1.f32", mrm_model_logits(m, 1), sizeof(float) * B * N) |
                    write_raw(fx, "logits2.f32", mrm_model_logits(m, 2), sizeof(float) * B * N);
            CHECK(w == 0, "cannot write the engine fixtures into %s", fx);
        }
        /* the image as built (Winograd convolutions where they are faster) and with every
         * convolution direct: the same function */
        void *dimg = NULL;
        size_t dlen = 0;
        CHECK(mrm_engine_build_direct(m, NULL, &dimg, &dlen, &err) == MRM_OK, "%s: build: %s", v[vi].name, err.msg);
        const int n_isa = MRM_ENGINE_ISA_LAST - MRM_ENGINE_PORTABLE + 1;
        for (int run = 0; run < 2 * n_isa; run++) {
            const int dv = run / n_isa, isa = MRM_ENGINE_PORTABLE + run % n_isa;
            if (dv == 1 && !dimg) break;
            mrm_engine e;
            const void *im = dv ? dimg : img;
            size_t imlen = dv ? dlen : len;
            mrm_status st = mrm_engine_open_isa(&e, im, imlen, (mrm_engine_isa)isa, &err);
            if (st == MRM_ERR_UNSUPPORTED) continue; /* this CPU lacks them */
            CHECK(st == MRM_OK, "%s: open: %s", v[vi].name, err.msg);
            if (st) continue;
            CHECK(e.n_heads == heads && e.n_classes == N, "%s: heads %d classes %d", v[vi].name, e.n_heads, e.n_classes);
            mrm_engine_sizes s1, s32;
            CHECK(mrm_engine_get_sizes(&e, 1, &s1, &err) == MRM_OK && mrm_engine_get_sizes(&e, 32, &s32, &err) == MRM_OK,
                  "sizes");
            CHECK(s1.weight_bytes == imlen && s1.work_bytes > 0 && s32.work_bytes == s1.work_bytes, "sizes %zu %zu",
                  s1.work_bytes, s32.work_bytes);
            void *work = aligned_alloc(MRM_ENGINE_ALIGN, (s1.work_bytes + 63) / 64 * 64);
            float l1[3 * 5], l2[3 * 5];
            st = mrm_engine_run(&e, work, s1.work_bytes, x, B, l1, heads > 1 ? l2 : NULL, &err);
            CHECK(st == MRM_OK, "%s: run: %s", v[vi].name, err.msg);
            double e1 = max_rel(l1, mrm_model_logits(m, 1), (size_t)B * N);
            double e2 = heads > 1 ? max_rel(l2, mrm_model_logits(m, 2), (size_t)B * N) : 0.0;
            printf("%-16s %-8s %s logits max rel. error %.2e %.2e  (image %zu bytes, work %zu bytes)\n", v[vi].name,
                   mrm_engine_isa_name(isa), dv ? "direct" : "built ", e1, e2, imlen, s1.work_bytes);
            CHECK(e1 < 1e-4 && e2 < 1e-4, "%s %s: %.3g %.3g", v[vi].name, mrm_engine_isa_name(isa), e1, e2);
            /* a smaller work buffer is refused; logits2 of a one-head model too */
            CHECK(mrm_engine_run(&e, work, s1.work_bytes - 64, x, 1, l1, NULL, &err) == MRM_ERR_INVALID, "short work");
            if (heads == 1) CHECK(mrm_engine_run(&e, work, s1.work_bytes, x, 1, l1, l2, &err) == MRM_ERR_INVALID, "head 2");
            free(work);
        }
        /* int8: calibrated on the inputs themselves; near the float logits, and the same with every
         * kernel set (the same int32 sums; the float epilogues may round apart) */
        void *qimg = NULL;
        size_t qlen = 0;
        CHECK(mrm_engine_build_int8(m, NULL, x, B, &qimg, &qlen, &err) == MRM_OK, "%s: int8: %s", v[vi].name, err.msg);
        float q0[3 * 5] = {0};
        for (int isa = MRM_ENGINE_PORTABLE; qimg && isa <= MRM_ENGINE_ISA_LAST; isa++) {
            mrm_engine e;
            mrm_status st = mrm_engine_open_isa(&e, qimg, qlen, (mrm_engine_isa)isa, &err);
            if (st == MRM_ERR_UNSUPPORTED) continue;
            CHECK(st == MRM_OK && e.quantized, "%s: int8 open: %s", v[vi].name, err.msg);
            if (st) continue;
            mrm_engine_sizes s1;
            mrm_engine_get_sizes(&e, 1, &s1, &err);
            void *work = aligned_alloc(MRM_ENGINE_ALIGN, (s1.work_bytes + 63) / 64 * 64);
            float q1[3 * 5];
            CHECK(mrm_engine_run(&e, work, s1.work_bytes, x, B, q1, NULL, &err) == MRM_OK, "int8 run: %s", err.msg);
            double eq = max_rel(q1, mrm_model_logits(m, 1), (size_t)B * N);
            if (isa == MRM_ENGINE_PORTABLE) memcpy(q0, q1, sizeof q0);
            double ei = max_rel(q1, q0, (size_t)B * N);
            printf("%-16s %-8s int8: logits max rel. error %.2e vs float, %.2e vs portable int8 (image %zu bytes)\n",
                   v[vi].name, mrm_engine_isa_name(isa), eq, ei, qlen);
            CHECK(eq < 0.1, "%s %s: int8 error %.3g", v[vi].name, mrm_engine_isa_name(isa), eq);
            /* the float epilogues round differently (FMA); a value then and again lands on the other side
             * of an int8 step in a later layer */
            CHECK(ei < 2e-3, "%s %s: int8 kernels disagree %.3g", v[vi].name, mrm_engine_isa_name(isa), ei);
            CHECK(qlen < len, "int8 image %zu not smaller than %zu", qlen, len);
            free(work);
        }
        /* the int8 image and its portable kernels' logits: fixtures of the engine-only tests too */
        if (vi == 0 && fx && *fx && qimg)
            CHECK((write_raw(fx, "engine_int8.mrme", qimg, qlen) | write_raw(fx, "logits1_int8.f32", q0, sizeof(float) * B * N)) == 0,
                  "cannot write the int8 engine fixtures into %s", fx);
        mrm_engine_image_free(qimg);
        /* mrm_engine_quantize from the image as built (its Winograd steps' taps recovered from the
         * transformed weights): near the int8 model above, made from the direct image */
        {
            mrm_engine e;
            mrm_engine_sizes s1;
            float *am = NULL, qw[3 * 5];
            void *work = NULL, *wq = NULL;
            size_t wqlen = 0;
            CHECK(mrm_engine_open(&e, img, len, &err) == MRM_OK && mrm_engine_get_sizes(&e, 1, &s1, &err) == MRM_OK,
                  "%s: open: %s", v[vi].name, err.msg);
            am = calloc((size_t)mrm_engine_num_buffers(&e), sizeof(float));
            work = aligned_alloc(MRM_ENGINE_ALIGN, (s1.work_bytes + 63) / 64 * 64);
            CHECK(am && work && mrm_engine_calibrate(&e, work, s1.work_bytes, x, B, am, &err) == MRM_OK &&
                      mrm_engine_quantize(img, len, am, &wq, &wqlen, &err) == MRM_OK,
                  "%s: quantize: %s", v[vi].name, err.msg);
            free(work);
            work = NULL;
            if (wq && mrm_engine_open(&e, wq, wqlen, &err) == MRM_OK && mrm_engine_get_sizes(&e, 1, &s1, &err) == MRM_OK &&
                (work = aligned_alloc(MRM_ENGINE_ALIGN, (s1.work_bytes + 63) / 64 * 64)) &&
                mrm_engine_run(&e, work, s1.work_bytes, x, B, qw, NULL, &err) == MRM_OK) {
                double d = max_rel(qw, q0, (size_t)B * N);
                printf("%-16s int8 from the Winograd image: %.2e from the int8 model (image %zu bytes)\n", v[vi].name, d,
                       wqlen);
                CHECK(d < 2e-3 && wqlen == qlen, "%s: int8 from the Winograd image: %.3g, %zu bytes", v[vi].name, d, wqlen);
            } else {
                CHECK(0, "%s: int8 from the Winograd image: %s", v[vi].name, err.msg);
            }
            free(work), free(am);
            mrm_engine_image_free(wq);
        }
        /* the image's checks: a truncated or altered image is refused, never read past its end */
        mrm_engine e;
        unsigned char *bad = aligned_alloc(MRM_ENGINE_ALIGN, (len + 63) / 64 * 64);
        memcpy(bad, img, len);
        CHECK(mrm_engine_open(&e, bad, len - 64, &err) == MRM_ERR_FORMAT, "truncated");
        for (size_t off = 8; off < 512 && off + 4 <= len; off += 4) {
            uint32_t old;
            memcpy(&old, bad + off, 4);
            uint32_t nv2 = old ^ 0x40000000u;
            memcpy(bad + off, &nv2, 4);
            mrm_status st = mrm_engine_open(&e, bad, len, &err);
            if (st == MRM_OK) { /* still consistent: it must still run within its buffers */
                mrm_engine_sizes s;
                mrm_engine_get_sizes(&e, 1, &s, &err);
                CHECK(s.work_bytes < ((size_t)1 << 31), "offset %zu: work %zu", off, s.work_bytes);
            }
            memcpy(bad + off, &old, 4);
        }
        free(bad);
        mrm_engine_image_free(img);
        mrm_engine_image_free(dimg);
        mrm_model_free(m);
    }
    free(x);
    TEST_END();
}
