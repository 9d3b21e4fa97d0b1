/* mrmnet forward: run the model on an .npy batch, write logits and features as .npy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/fileutil.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet forward --model W.safetensors --input X.npy [--train-mode | --fast] [--batch 32]\n"
               "                      --out DIR\n\n"
               "X is float32 (B, 12, 1000), already standardised. Writes DIR/out1.npy, DIR/out2.npy\n"
               "(B, N logits of the high and low heads) and DIR/feat1.npy, DIR/feat2.npy (B, F features\n"
               "of the high and low branches). A variant with one output writes out1.npy only; one\n"
               "with one branch, the feature file of that branch only.\n"
               "  --train-mode  BatchNorm with batch statistics (dropout off), the whole input as ONE batch\n"
               "  --fast        the inference path (BatchNorm folded, fused layers): logits only (no features)\n"
               "  --batch N     records per forward pass in evaluation mode (default 32)\n");
}

int cmd_forward(int argc, char **argv) {
    const char *C = "forward", *model = NULL, *input = NULL, *outdir = NULL;
    long batch = 32;
    int train = 0, fast = 0;
    const cli_opt opts[] = {{"--model", CLI_STR, &model, 0, 0},       {"--input", CLI_STR, &input, 0, 0},
                            {"--out", CLI_STR, &outdir, 0, 0},        {"--batch", CLI_INT, &batch, 1, 65536},
                            {"--train-mode", CLI_FLAG, &train, 0, 0}, {"--fast", CLI_FLAG, &fast, 0, 0},
                            {NULL, CLI_FLAG, NULL, 0, 0}};
    int rc = cli_parse_options(C, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    if (!model || !input || !outdir) return cli_missing(C, "--model, --input and --out", usage);
    if (train && fast) {
        fprintf(stderr, "mrmnet forward: --train-mode and --fast exclude each other\n");
        return 2;
    }
    mrm_error err = {0};
    if (mrm_check_output_dir(outdir, &err)) return cli_report(C, &err);
    mrm_model *m = NULL;
    mrm_infer *inf = NULL;
    float *x = NULL, *out[4] = {NULL, NULL, NULL, NULL};
    int nd = 0;
    long long sh[4] = {0};
    mrm_status s = mrm_model_load(&m, NULL, model, &err);
    if (!s) s = mrm_npy_read_f32(input, &x, &nd, sh, &err);
    if (!s) s = mrm_check_finite_f32(input, x, nd, sh, &err);
    if (!s && (nd != 3 || sh[0] < 1 || sh[1] != MRM_INPUT_LEADS || sh[2] != MRM_INPUT_LEN))
        s = mrm_fail(&err, MRM_ERR_FORMAT, "%s: shape (%lld, %lld, %lld) of %d dimensions, expected (B, 12, 1000)", input,
                     sh[0], sh[1], sh[2], nd);
    if (!s && train && sh[0] < 2) s = mrm_fail(&err, MRM_ERR_INVALID, "%s: --train-mode needs at least 2 records", input);
    if (!s) s = mrm_mkdir_p(outdir, &err);
    int N = m ? mrm_model_config_of(m)->n_classes : 0, F = m ? mrm_model_feature_size(m) : 0;
    long long B = sh[0];
    /* items: the heads' logits, then (not with --fast) the branches' features */
    int nh = m ? mrm_model_num_heads(m) : 0, nbr = m ? mrm_model_num_branches(m) : 0;
    int nout = nh + (fast ? 0 : nbr);
    char names[4][24];
    for (int k = 0; k < nout; k++) {
        int first_low = m && mrm_model_config_of(m)->branches == MRM_BRANCHES_LOW; /* the only branch is the low one */
        if (k < nh) snprintf(names[k], sizeof names[k], "out%d.npy", k + 1);
        else snprintf(names[k], sizeof names[k], "feat%d.npy", k - nh + 1 + first_low);
    }
    if (!s && fast) s = mrm_infer_create(&inf, m, (int)(B < batch ? B : batch), &err);
    for (int k = 0; !s && k < nout; k++) {
        out[k] = malloc(sizeof(float) * (size_t)B * (size_t)(k < nh ? N : F));
        if (!out[k]) s = mrm_fail(&err, MRM_ERR_NOMEM, "out of memory for %lld records", B);
    }
    long long step = train ? B : batch;
    for (long long b0 = 0; !s && b0 < B; b0 += step) {
        int nb = (int)(B - b0 < step ? B - b0 : step);
        const float *xb = x + (size_t)b0 * MRM_INPUT_LEADS * MRM_INPUT_LEN;
        if (fast) {
            s = mrm_infer_run(inf, xb, nb, out[0] + (size_t)b0 * N, nh > 1 ? out[1] + (size_t)b0 * N : NULL, &err);
            continue;
        }
        mrm_model_set_dropout(m, 0.0f);
        s = mrm_model_forward(m, xb, nb, train, NULL, &err);
        for (int k = 0; !s && k < nout; k++) {
            size_t w = (size_t)(k < nh ? N : F);
            const float *src = k < nh ? mrm_model_logits(m, k + 1) : mrm_model_features(m, k - nh + 1);
            memcpy(out[k] + (size_t)b0 * w, src, sizeof(float) * (size_t)nb * w);
        }
    }
    for (int k = 0; !s && k < nout; k++) {
        char path[4096];
        long long shape[2] = {B, k < nh ? N : F};
        if (mrm_path_join(path, sizeof path, outdir, names[k]))
            s = mrm_fail(&err, MRM_ERR_INVALID, "%s: path too long", outdir);
        else
            s = mrm_npy_write_f32(path, out[k], 2, shape, &err);
    }
    for (int k = 0; k < 4; k++) free(out[k]);
    mrm_infer_free(inf);
    free(x);
    mrm_model_free(m);
    return s ? cli_report(C, &err) : 0;
}
