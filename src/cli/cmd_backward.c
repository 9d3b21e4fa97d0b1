/* mrmnet backward: one training-mode forward (dropout off) and backward on a batch; writes the
 * loss, every parameter's gradient and the updated BatchNorm statistics. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "io/safetensors.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet backward --model W.safetensors --input X.npy --labels Y.npy --out G.safetensors\n\n"
               "X float32 (B, 12, 1000), Y float32 (B, N) multi-hot, B >= 2. One training-mode forward (batch\n"
               "statistics, dropout off) and backward. G holds \"loss\" (scalar) and its parts \"loss.bce1\",\n"
               "\"loss.bce2\", \"loss.kl_feat\", \"loss.kl_logits\"; the gradient of every trainable parameter\n"
               "under the parameter's name; the updated BatchNorm running statistics and counts under theirs.\n");
}

int cmd_backward(int argc, char **argv) {
    const char *C = "backward", *model = NULL, *input = NULL, *labels = NULL, *out = NULL;
    const cli_opt opts[] = {{"--model", CLI_STR, &model, 0, 0},   {"--input", CLI_STR, &input, 0, 0},
                            {"--labels", CLI_STR, &labels, 0, 0}, {"--out", CLI_STR, &out, 0, 0},
                            {NULL, CLI_FLAG, NULL, 0, 0}};
    int rc = cli_parse_options(C, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    if (!model || !input || !labels || !out) return cli_missing(C, "--model, --input, --labels and --out", usage);
    mrm_error err = {0};
    if (mrm_check_output_file(out, &err)) return cli_report(C, &err);
    mrm_model *m = NULL;
    float *x = NULL, *y = NULL;
    int nd = 0, ndy = 0;
    long long sh[4] = {0}, shy[4] = {0};
    st_entry *e = NULL;
    mrm_status s = mrm_model_load(&m, NULL, model, &err);
    if (!s) s = mrm_npy_read_f32(input, &x, &nd, sh, &err);
    if (!s) s = mrm_check_finite_f32(input, x, nd, sh, &err);
    if (!s && (nd != 3 || sh[0] < 2 || sh[1] != MRM_INPUT_LEADS || sh[2] != MRM_INPUT_LEN))
        s = mrm_fail(&err, MRM_ERR_FORMAT, "%s: shape (%lld, %lld, %lld) of %d dimensions, expected (B, 12, 1000), B >= 2",
                     input, sh[0], sh[1], sh[2], nd);
    if (!s) s = mrm_npy_read_f32(labels, &y, &ndy, shy, &err);
    if (!s) s = mrm_check_finite_f32(labels, y, ndy, shy, &err);
    int N = m ? mrm_model_config_of(m)->n_classes : 0;
    if (!s && (ndy != 2 || shy[0] != sh[0] || shy[1] != N))
        s = mrm_fail(&err, MRM_ERR_FORMAT, "%s: shape (%lld, %lld) of %d dimensions, expected (%lld, %d)", labels, shy[0],
                     shy[1], ndy, sh[0], N);
    mrm_loss loss = {0};
    if (!s) {
        mrm_model_set_dropout(m, 0.0f);
        mrm_model_zero_grad(m);
        s = mrm_model_forward(m, x, (int)sh[0], 1, NULL, &err);
    }
    if (!s) s = mrm_model_backward(m, y, &loss, &err);
    int nt = m ? mrm_model_num_tensors(m) : 0, n = 0;
    float lv[5] = {(float)loss.total, (float)loss.bce1, (float)loss.bce2, (float)loss.kl_feat, (float)loss.kl_logits};
    static const char *lnames[5] = {"loss", "loss.bce1", "loss.bce2", "loss.kl_feat", "loss.kl_logits"};
    if (!s) {
        e = calloc((size_t)nt + 5, sizeof *e);
        if (!e) s = mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; !s && i < 5; i++, n++) {
        e[n].name = lnames[i];
        e[n].dtype = ST_F32;
        e[n].ndim = 0;
        e[n].data = &lv[i];
    }
    for (int i = 0; !s && i < nt; i++, n++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        e[n].name = t->name;
        e[n].dtype = t->is_int64 ? ST_I64 : ST_F32;
        e[n].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e[n].shape[d] = t->shape[d];
        e[n].data = t->trainable ? (const void *)t->grad : t->data;
    }
    if (!s) {
        mrm_meta meta = {0};
        s = mrm_meta_set(&meta, "format", "mrmnet-grad-1", &err);
        if (!s) s = mrm_meta_set(&meta, "model", model, &err);
        if (!s) s = mrm_meta_set(&meta, "content", "loss; d loss / d parameter under each parameter's name; BatchNorm statistics after the step", &err);
        if (!s) s = st_write(out, e, n, &meta, &err);
        mrm_meta_free(&meta);
    }
    if (!s) fprintf(stderr, "mrmnet backward: loss %.6f (bce1 %.6f, bce2 %.6f, kl_feat %.6f, kl_logits %.6f)\n", loss.total,
                    loss.bce1, loss.bce2, loss.kl_feat, loss.kl_logits);
    free(e);
    free(x);
    free(y);
    mrm_model_free(m);
    return s ? cli_report(C, &err) : 0;
}
