/* mrmnet quantize: post-training int8 quantisation of a model for the embeddable engine,
 * calibrated on training records; reports the test split's AUCs of the float and the int8
 * engine side by side. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "mrmnet/engine_build.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet quantize --model W.safetensors --data PREP/ --out W8.safetensors [--calib N] [--scores DIR]\n\n"
               "Compiles the model for the embeddable engine with int8 convolutions (every one but the\n"
               "first: int8 weights with one scale per output channel, int8 inputs with one scale per\n"
               "tensor from the largest value seen on N training records; int32 sums; the attention\n"
               "blocks and the heads stay float) and writes the quantised model: a safetensors file (int8\n"
               "weights, BatchNorm folded, with their float32 scales as tensors of their own; metadata\n"
               "\"quantization\": \"int8\") that predict, eval and bench take like any model, or, when OUT\n"
               "ends in .mrme, the engine image. Then runs the float and the int8 engine on the test split\n"
               "and prints each class's AUC and the macro-AUC of both.\n"
               "  --calib N     training records used for calibration (512; evenly spaced)\n"
               "  --scores DIR  also write DIR/test_probs_float.npy and DIR/test_probs_int8.npy (n, C)\n"
               "                (the mean of the heads' probabilities) and DIR/test_y.npy\n");
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* avg (n, C): the mean of the heads' sigmoid outputs of engine e over X, records shared over threads. */
static mrm_status engine_probs(const mrm_engine *e, const float *X, long long n, float *avg, mrm_error *err) {
    mrm_engine_sizes sz;
    mrm_status st = mrm_engine_get_sizes(e, 1, &sz, err);
    if (st) return st;
    const size_t rec = 12 * 1000, C = (size_t)e->n_classes;
    int nt = omp_get_max_threads();
#pragma omp parallel num_threads(nt)
    {
        void *work = aligned_alloc(MRM_ENGINE_ALIGN, (sz.work_bytes + 63) / 64 * 64);
        float *l1 = malloc(C * sizeof(float)), *l2 = malloc(C * sizeof(float));
        mrm_error e2;
        mrm_status s2 = !work || !l1 || !l2 ? MRM_ERR_NOMEM : MRM_OK;
#pragma omp for schedule(dynamic, 4)
        for (long long r = 0; r < n; r++) {
            if (s2) continue;
            s2 = mrm_engine_run(e, work, sz.work_bytes, X + (size_t)r * rec, 1, l1, e->n_heads > 1 ? l2 : NULL, &e2);
            for (size_t k = 0; !s2 && k < C; k++) {
                float p = 1.0f / (1.0f + expf(-l1[k]));
                if (e->n_heads > 1) p = 0.5f * (p + 1.0f / (1.0f + expf(-l2[k])));
                avg[(size_t)r * C + k] = p;
            }
        }
        if (s2) {
#pragma omp critical(mrm_quantize)
            if (!st) st = mrm_fail(err, s2, "%s", s2 == MRM_ERR_NOMEM ? "out of memory" : e2.msg);
        }
        free(work), free(l1), free(l2);
    }
    return st;
}

int cmd_quantize(int argc, char **argv) {
    const char *C = "quantize", *model = NULL, *data = NULL, *out = NULL, *scores = NULL;
    long calib = 512;
    cli_opt opts[] = {{"--model", CLI_STR, &model, 0, 0},   {"--data", CLI_STR, &data, 0, 0},
                      {"--out", CLI_STR, &out, 0, 0},       {"--calib", CLI_INT, &calib, 1, 1000000},
                      {"--scores", CLI_STR, &scores, 0, 0}, {NULL, CLI_FLAG, NULL, 0, 0}};
    int rc = cli_parse_options(C, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    if (!model || !data || !out) return cli_missing(C, "--model, --data and --out", usage);
    mrm_error err = {0};
    mrm_meta meta = {0};
    mrm_model *m = NULL;
    mrm_prepared prep;
    memset(&prep, 0, sizeof prep);
    mrm_split_data tr = {0}, te = {0};
    void *fimg = NULL, *qimg = NULL;
    size_t flen = 0, qlen = 0;
    float *Xc = NULL, *pf = NULL, *pq = NULL;
    double *auc_f = NULL, *auc_q = NULL;
    rc = 1;
    if (mrm_model_load(&m, &meta, model, &err) || mrm_prepared_open(&prep, data, &err) ||
        mrm_prepared_check(&prep, &err) || mrm_prepared_load_split(&prep, "train", 1, &tr, &err) ||
        mrm_prepared_load_split(&prep, "test", 1, &te, &err))
        goto fail;
    int nc = mrm_model_config_of(m)->n_classes;
    if (prep.n_classes != nc) {
        mrm_fail(&err, MRM_ERR_INVALID, "%s has %d classes, the model %d", data, prep.n_classes, nc);
        goto fail;
    }
    const size_t rec = 12 * 1000;
    long long ncal = calib < tr.n ? calib : tr.n;
    Xc = malloc(sizeof(float) * rec * (size_t)(ncal ? ncal : 1));
    pf = malloc(sizeof(float) * (size_t)nc * (size_t)(te.n ? te.n : 1));
    pq = malloc(sizeof(float) * (size_t)nc * (size_t)(te.n ? te.n : 1));
    auc_f = calloc((size_t)nc, sizeof(double)), auc_q = calloc((size_t)nc, sizeof(double));
    if (!Xc || !pf || !pq || !auc_f || !auc_q) {
        mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (long long i = 0; i < ncal; i++) /* evenly spaced over the training split */
        memcpy(Xc + (size_t)i * rec, tr.X + (size_t)(i * tr.n / ncal) * rec, rec * sizeof(float));
    if (mrm_engine_build(m, &meta, &fimg, &flen, &err) || mrm_engine_build_int8(m, &meta, Xc, ncal, &qimg, &qlen, &err) ||
        (ends_with(out, ".mrme") ? mrm_engine_image_save(qimg, qlen, out, &err)
                                           : mrm_engine_int8_save(m, &meta, qimg, qlen, out, &err)))
        goto fail;
    mrm_engine ef, eq;
    double mf = NAN, mq = NAN;
    if (mrm_engine_open(&ef, fimg, flen, &err) || mrm_engine_open(&eq, qimg, qlen, &err) ||
        engine_probs(&ef, te.X, te.n, pf, &err) || engine_probs(&eq, te.X, te.n, pq, &err) ||
        mrm_roc_auc(te.y, pf, (int)te.n, nc, auc_f, &mf, NULL, &err) ||
        mrm_roc_auc(te.y, pq, (int)te.n, nc, auc_q, &mq, NULL, &err))
        goto fail;
    mrm_engine_sizes sf, sq;
    mrm_engine_get_sizes(&ef, 1, &sf, &err);
    mrm_engine_get_sizes(&eq, 1, &sq, &err);
    printf("calibrated on %lld training records; test split: %lld records (%s)\n", ncal, te.n, data);
    printf("%-8s %9s %9s %9s\n", "class", "float", "int8", "diff");
    for (int k = 0; k < nc; k++)
        printf("%-8s %9.4f %9.4f %+9.4f\n", prep.classes[k], auc_f[k], auc_q[k], auc_q[k] - auc_f[k]);
    printf("%-8s %9.4f %9.4f %+9.4f\n", "macro", mf, mq, mq - mf);
    printf("image: float %zu bytes, int8 %zu bytes; work memory %zu bytes per thread\n", sf.weight_bytes,
           sq.weight_bytes, sq.work_bytes);
    if (scores) {
        char path[4096];
        long long shp[2] = {te.n, nc};
        const char *names[3] = {"test_probs_float.npy", "test_probs_int8.npy", "test_y.npy"};
        const float *arrs[3] = {pf, pq, te.y};
        if (mrm_mkdir_p(scores, &err)) goto fail;
        for (int j = 0; j < 3; j++) {
            if (mrm_path_join(path, sizeof path, scores, names[j])) {
                mrm_fail(&err, MRM_ERR_INVALID, "%s: path too long", scores);
                goto fail;
            }
            if (mrm_npy_write_f32(path, arrs[j], 2, shp, &err)) goto fail;
        }
    }
    rc = 0;
fail:
    if (rc) cli_report(C, &err);
    free(Xc), free(pf), free(pq), free(auc_f), free(auc_q);
    mrm_engine_image_free(fimg);
    mrm_engine_image_free(qimg);
    mrm_split_data_free(&tr);
    mrm_split_data_free(&te);
    mrm_prepared_close(&prep);
    mrm_model_free(m);
    mrm_meta_free(&meta);
    return rc;
}
