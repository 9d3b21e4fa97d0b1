/* mrmnet init: create a model with fresh (PyTorch-default) weights and save it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet init --classes N [variant options] [--seed S] [--names A,B,...]\n"
               "                   [--task NAME] --out W.safetensors\n\n"
               "  --classes N      number of output classes (labels)\n"
               "  --seed S         seed of the initialisation (default 0)\n"
               "  --names A,B,...  class names stored in the metadata (N names)\n"
               "  --task NAME      task name stored in the metadata\n"
               "  --out PATH       the weights file to write (safetensors)\n");
    cli_model_usage(f);
}

/* ["A","B",...] from "A,B,..." with JSON escapes; returns the count of names, -1 if too long. */
static int names_json(const char *list, char *out, size_t n) {
    size_t k = 0;
    int count = 0;
    out[k++] = '[';
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (k + 2 * len + 8 > n) return -1;
        if (count) out[k++] = ',';
        out[k++] = '"';
        for (size_t i = 0; i < len; i++) {
            char c = p[i];
            if (c == '"' || c == '\\') out[k++] = '\\';
            if ((unsigned char)c < 0x20) c = ' ';
            out[k++] = c;
        }
        out[k++] = '"';
        count++;
        if (!e) break;
        p = e + 1;
    }
    out[k++] = ']';
    out[k] = '\0';
    return count;
}

int cmd_init(int argc, char **argv) {
    const char *C = "init";
    long classes = 0, seed = 0;
    const char *out = NULL, *names = NULL, *task = NULL;
    const cli_opt opts[] = {{"--classes", CLI_INT, &classes, 1, 100000}, {"--seed", CLI_INT, &seed, 0, 2147483647L},
                            {"--names", CLI_STR, &names, 0, 0},           {"--task", CLI_STR, &task, 0, 0},
                            {"--out", CLI_STR, &out, 0, 0},               {NULL, CLI_FLAG, NULL, 0, 0}};
    cli_model_opts mo;
    if (cli_model_extract(C, &argc, argv, &mo)) return 2;
    int rc = cli_parse_options(C, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    if (!classes || !out) return cli_missing(C, "--classes and --out", usage);
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    cfg.n_classes = (int)classes;
    if (cli_model_apply(C, &mo, &cfg)) return 2;
    mrm_error err = {0};
    if (mrm_check_output_file(out, &err)) return cli_report(C, &err);
    mrm_meta meta = {0};
    char json[65536], src[128];
    if (names) {
        int n = names_json(names, json, sizeof json);
        if (n != classes) {
            fprintf(stderr, "mrmnet init: --names: %d names for %ld classes\n", n < 0 ? 0 : n, classes);
            return 2;
        }
    }
    mrm_model *m = NULL;
    mrm_status s = mrm_model_create(&m, &cfg, &err);
    if (!s) {
        mrm_model_init(m, (uint64_t)seed);
        snprintf(src, sizeof src, "mrmnet init --seed %ld", seed);
        s = mrm_meta_set(&meta, "source", src, &err);
    }
    if (!s && names) s = mrm_meta_set(&meta, "classes", json, &err);
    if (!s && task) s = mrm_meta_set(&meta, "task", task, &err);
    if (!s) s = mrm_meta_set(&meta, "sampling_rate", "100", &err);
    if (!s) s = mrm_meta_set(&meta, "leads", "[\"I\",\"II\",\"III\",\"aVR\",\"aVL\",\"aVF\",\"V1\",\"V2\",\"V3\",\"V4\",\"V5\",\"V6\"]", &err);
    if (!s) s = mrm_meta_set(&meta, "mean", "0", &err);
    if (!s) s = mrm_meta_set(&meta, "std", "1", &err);
    if (!s) s = mrm_model_save(m, &meta, out, &err);
    if (!s) {
        char d[512];
        mrm_model_config_describe(mrm_model_config_of(m), d, sizeof d);
        fprintf(stderr, "mrmnet init: %s: %zu parameters (%s; seed %ld)\n", out, mrm_model_num_params(m), d, seed);
    }
    mrm_meta_free(&meta);
    mrm_model_free(m);
    return s ? cli_report(C, &err) : 0;
}
