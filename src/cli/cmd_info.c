/* mrmnet info: describe a weight file (architecture, classes, parameters, metadata). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet info W.safetensors [--tensors]\n\n"
               "Prints the architecture, the parameter count and the metadata of a model file.\n"
               "  --tensors  also list every tensor: name, dtype, shape\n");
}

int cmd_info(int argc, char **argv) {
    const char *C = "info", *path = NULL;
    int tensors = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--tensors")) {
            tensors = 1;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "mrmnet info: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    mrm_error err = {0};
    mrm_meta meta = {0};
    mrm_model *m = NULL;
    if (mrm_model_load(&m, &meta, path, &err)) return cli_report(C, &err);
    const mrm_model_config *cfg = mrm_model_config_of(m);
    int F = mrm_model_feature_size(m), bn = 0;
    long long steps = -1;
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        if (t->is_int64) {
            bn++;
            if (steps < 0) steps = *(const int64_t *)t->data;
        }
    }
    printf("file:          %s\n", path);
    char desc[512];
    mrm_model_config_describe(cfg, desc, sizeof desc);
    printf("model:         MRM-Net, %s\n", desc);
    if (mrm_meta_get(&meta, "optimizer"))
        printf("kind:          training checkpoint: weights and %s optimizer state after %s steps (resume with train\n"
               "               --resume; the run's best.safetensors holds the selected weights and thresholds)\n",
               mrm_meta_get(&meta, "optimizer"), mrm_meta_get(&meta, "optimizer_t") ? mrm_meta_get(&meta, "optimizer_t") : "?");
    else
        printf("kind:          model\n");
    printf("classes:       %d", cfg->n_classes);
    const char *names = mrm_meta_get(&meta, "classes");
    printf("%s%s\n", names ? "  " : "", names ? names : "");
    printf("parameters:    %zu trainable, in %d tensors (%d BatchNorm layers)\n", mrm_model_num_params(m),
           mrm_model_num_tensors(m), bn);
    const int ch = 4 * cfg->width, cl = 8 * cfg->width;
    if (cfg->branches == MRM_BRANCHES_HIGH)
        printf("branches:      high only (%d channels x %d steps); one head on its %d pooled features\n", ch, F / ch, ch);
    else if (cfg->branches == MRM_BRANCHES_LOW)
        printf("branches:      low only (%d channels x %d steps); one head on its %d pooled features\n", cl, F / cl, cl);
    else if (cfg->combine == MRM_COMBINE_ADD)
        printf("branches:      high (%d x %d) and low (%d x %d); a head on each branch's pooled features (%d, %d), one output:\n"
               "               the sum of the two heads' logits\n", ch, F / ch, cl, F / cl, ch, cl);
    else if (cfg->combine == MRM_COMBINE_CONCAT)
        printf("branches:      high (%d x %d) and low (%d x %d); one head on their concatenated pooled features (%d)\n", ch, F / ch, cl,
               F / cl, ch + cl);
    else
        printf("branches:      high (%d x %d) and low (%d x %d); a head on each branch's pooled features (%d, %d); output: the\n"
               "               mean of the two heads' probabilities; mutual learning compares the %d-value feature maps\n",
               ch, F / ch, cl, F / cl, ch, cl, F);
    printf("batches seen:  %lld (num_batches_tracked of the first BatchNorm)\n", steps);
    printf("metadata:\n");
    for (int i = 0; i < meta.n; i++) printf("  %-14s %s\n", meta.keys[i], meta.values[i]);
    if (tensors) {
        printf("tensors:\n");
        for (int i = 0; i < mrm_model_num_tensors(m); i++) {
            const mrm_tensor *t = mrm_model_tensor(m, i);
            printf("  %-56s %s ", t->name, t->is_int64 ? "I64" : "F32");
            if (!t->ndim) printf("scalar");
            for (int d = 0; d < t->ndim; d++) printf(d ? "x%lld" : "%lld", t->shape[d]);
            printf("\n");
        }
    }
    mrm_meta_free(&meta);
    mrm_model_free(m);
    return 0;
}
