/* mrmnet export: a model compiled for the embeddable engine (mrmnet/engine.h), as an image file
 * or as C source holding the image as a const array (a device then needs no file system). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "mrmnet/engine_build.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet export --model W.safetensors (--engine OUT.mrme | --c-source OUT.c) [--name SYMBOL]\n"
               "                     [--direct | --lanes]\n\n"
               "Compiles a model for the embeddable engine (include/mrmnet/engine.h, libmrmnet_engine):\n"
               "BatchNorm folded, the multi-scale kernels merged, the weights packed; the model's metadata\n"
               "(classes, mean, std, thresholds, ...) is kept (mrm_engine_info). A quantised model (mrmnet\n"
               "quantize) is written as its int8 image.\n"
               "  --engine OUT     the engine image (open it with mrm_engine_open after reading it into\n"
               "                   memory aligned to 64 bytes)\n"
               "  --c-source OUT   C source defining the image as a const array:\n"
               "                     const unsigned char SYMBOL[] (aligned to 64), const size_t SYMBOL_len\n"
               "  --name SYMBOL    the array's name (mrm_model_image)\n"
               "  --direct         every convolution computed directly: the smallest image and work memory\n"
               "                   (by default the 33-tap ones use FFTs: faster, about twice their\n"
               "                   weights); not for a quantised model\n"
               "  --lanes          the two branches' activations planned apart, so that a team of two\n"
               "                   threads (mrm_engine_run_team) runs them side by side: about 1.7x the\n"
               "                   work memory; not for a quantised model\n");
}

static int valid_symbol(const char *s) {
    if (!s[0] || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')) return 0;
    return strlen(s) < 200;
}

static mrm_status write_c(const unsigned char *img, size_t len, const char *path, const char *name, const char *model,
                          mrm_error *err) {
    mrm_atomic_file a;
    FILE *f = mrm_atomic_open(&a, path, err);
    if (!f) return err ? err->code : MRM_ERR_IO;
    fprintf(f,
            "/* The MRM-Net engine image of %s, written by mrmnet export (%zu bytes).\n"
            " * Open it with mrm_engine_open(&engine, %s, %s_len, &err) (mrmnet/engine.h). */\n"
            "#include <stddef.h>\n\n"
            "extern const unsigned char %s[];\nextern const size_t %s_len;\n\n"
            "_Alignas(64) const unsigned char %s[%zu] = {\n",
            model, len, name, name, name, name, name, len);
    for (size_t i = 0; i < len; i++) fprintf(f, "%u,%s", img[i], i % 24 == 23 || i + 1 == len ? "\n" : "");
    fprintf(f, "};\nconst size_t %s_len = %zu;\n", name, len);
    if (ferror(f)) {
        int e = errno ? errno : EIO; /* the failed write's reason */
        mrm_atomic_abort(&a);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return mrm_atomic_commit(&a, err);
}

int cmd_export(int argc, char **argv) {
    const char *C = "export", *model = NULL, *engine = NULL, *csrc = NULL, *name = "mrm_model_image";
    int direct = 0, lanes = 0;
    cli_opt opts[] = {{"--model", CLI_STR, &model, 0, 0},
                      {"--engine", CLI_STR, &engine, 0, 0},
                      {"--c-source", CLI_STR, &csrc, 0, 0},
                      {"--name", CLI_STR, &name, 0, 0},
                      {"--direct", CLI_FLAG, &direct, 0, 0},
                      {"--lanes", CLI_FLAG, &lanes, 0, 0},
                      {NULL, CLI_FLAG, NULL, 0, 0}};
    int rc = cli_parse_options(C, argc, argv, opts, usage);
    if (rc >= 0) return rc;
    if (!model || (!engine && !csrc)) return cli_missing(C, "--model and --engine or --c-source", usage);
    if (!valid_symbol(name)) {
        fprintf(stderr, "mrmnet export: --name: '%s' is not a C identifier\n", name);
        return 2;
    }
    mrm_error err = {0};
    mrm_meta meta = {0};
    mrm_model *m = NULL;
    void *img = NULL;
    size_t len = 0;
    mrm_engine e;
    mrm_engine_sizes s;
    rc = 1;
    int quantized = mrm_engine_image_file(model); /* a quantised model or an image: its image as it is */
    if (direct && lanes) {
        fprintf(stderr, "mrmnet export: --direct and --lanes: give one of them\n");
        return 2;
    }
    if (quantized && (direct || lanes)) {
        fprintf(stderr, "mrmnet export: %s: %s is a quantised model or an engine image (written as it is)\n",
                direct ? "--direct" : "--lanes", model);
        return 2;
    }
    if ((quantized ? mrm_engine_image_load(model, &img, &len, &err)
                   : mrm_model_load(&m, &meta, model, &err) ||
                         (direct  ? mrm_engine_build_direct(m, &meta, &img, &len, &err)
                          : lanes ? mrm_engine_build_lanes(m, &meta, &img, &len, &err)
                                  : mrm_engine_build(m, &meta, &img, &len, &err))) ||
        mrm_engine_open(&e, img, len, &err) || mrm_engine_get_sizes(&e, 1, &s, &err) ||
        (engine && mrm_engine_image_save(img, len, engine, &err)) || (csrc && write_c(img, len, csrc, name, model, &err))) {
        cli_report(C, &err);
    } else {
        fprintf(stderr, "mrmnet export: %s: %d steps, weights %zu bytes, work memory %zu bytes per thread%s\n", model,
                e.n_steps, s.weight_bytes, s.work_bytes,
                e.lanes ? " or team of two (the branches side by side)" : "");
        rc = 0;
    }
    mrm_engine_image_free(img);
    mrm_model_free(m);
    mrm_meta_free(&meta);
    return rc;
}
