/* Checkpoints round-trip exactly and refuse damaged files; the prepared-folder reader checks its
 * files; batched probabilities equal the plain evaluation forward; the SVG writer. */
#include <unistd.h>

#include "common/fileutil.h"
#include "common/rng.h"
#include "common/svg.h"
#include "mrmnet.h"
#include "test_util.h"

static void write_text(const char *dir, const char *name, const char *text) {
    char p[4096];
    mrm_path_join(p, sizeof p, dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

int main(void) {
    mrm_error err = {0};
    char dir[2048], path[4096];
    snprintf(dir, sizeof dir, "%s/ckpt", test_tmp_dir());
    CHECK(mrm_mkdir_p(dir, &err) == MRM_OK, "%s", err.msg);

    /* ---- checkpoint round trip ---- */
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    cfg.n_classes = 3, cfg.width = 4;
    mrm_model *m = NULL, *m2 = NULL;
    CHECK(mrm_model_create(&m, &cfg, &err) == MRM_OK, "%s", err.msg);
    if (!m) TEST_END();
    mrm_model_init(m, 7);
    mrm_optimizer o, o2;
    CHECK(mrm_optimizer_init(&o, MRM_OPT_ADAM, mrm_model_num_params(m), &err) == MRM_OK, "%s", err.msg);
    /* a few steps with made-up gradients so the moments are not zero */
    float *g = mrm_model_grads(m);
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < o.n; i++) g[i] = (float)sin((double)i * 0.37 + s);
        mrm_optimizer_step(&o, mrm_model_params(m), g);
    }
    o.weight_decay = 0.25;
    mrm_meta meta = {0}, meta2 = {0};
    mrm_meta_set(&meta, "classes", "[\"A\",\"B\",\"C\"]", &err);
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    CHECK(mrm_checkpoint_save(path, m, &o, &meta, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_checkpoint_load(path, &m2, &o2, &meta2, &err) == MRM_OK, "%s", err.msg);
    if (m2) {
        CHECK(!memcmp(mrm_model_params(m), mrm_model_params(m2), sizeof(float) * o.n), "weights round trip");
        int same = 1;
        for (int i = 0; i < mrm_model_num_tensors(m); i++) {
            const mrm_tensor *a = mrm_model_tensor(m, i), *b = mrm_model_tensor(m2, i);
            same &= !strcmp(a->name, b->name) && !memcmp(a->data, b->data, (size_t)a->numel * (a->is_int64 ? 8 : 4));
        }
        CHECK(same, "every tensor (BN statistics included) round trip");
        CHECK(o2.kind == MRM_OPT_ADAM && o2.t == 3 && o2.n == o.n, "optimizer kind, steps, size");
        CHECK(!memcmp(o.m, o2.m, sizeof(float) * o.n) && !memcmp(o.v, o2.v, sizeof(float) * o.n), "moments round trip");
        CHECK(o2.weight_decay == 0.25 && o2.lr == o.lr && o2.beta2 == o.beta2 && o2.eps == o.eps, "hyper-parameters round trip");
        CHECK(mrm_meta_get(&meta2, "classes") && !strcmp(mrm_meta_get(&meta2, "classes"), "[\"A\",\"B\",\"C\"]"), "caller's metadata kept");
        /* the next step continues identically */
        mrm_optimizer_step(&o, mrm_model_params(m), g);
        mrm_optimizer_step(&o2, mrm_model_params(m2), g);
        CHECK(!memcmp(mrm_model_params(m), mrm_model_params(m2), sizeof(float) * o.n), "same step after the round trip");
        mrm_model_free(m2);
        mrm_optimizer_free(&o2);
    }
    mrm_meta_free(&meta2);
    /* a plain model file is not a checkpoint: the optimizer is missing */
    snprintf(path, sizeof path, "%s/plain.safetensors", dir);
    CHECK(mrm_model_save(m, &meta, path, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_checkpoint_load(path, &m2, &o2, NULL, &err) != MRM_OK && m2 == NULL, "model file refused as a checkpoint");
    CHECK(strstr(err.msg, "optimizer") != NULL, "message: %s", err.msg);
    /* a truncated checkpoint */
    char *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    mrm_read_file(path, 1 << 28, &buf, &len, &err);
    snprintf(path, sizeof path, "%s/cut.safetensors", dir);
    mrm_write_file_atomic(path, buf, len / 2, &err);
    free(buf);
    CHECK(mrm_checkpoint_load(path, &m2, &o2, NULL, &err) != MRM_OK && m2 == NULL, "truncated checkpoint refused");
    CHECK(strstr(err.msg, "cut.safetensors") != NULL, "message names the file: %s", err.msg);
    /* SGD state */
    mrm_optimizer s;
    mrm_optimizer_init(&s, MRM_OPT_SGD, mrm_model_num_params(m), &err);
    mrm_optimizer_step(&s, mrm_model_params(m), g);
    snprintf(path, sizeof path, "%s/sgd.safetensors", dir);
    CHECK(mrm_checkpoint_save(path, m, &s, NULL, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_checkpoint_load(path, &m2, &o2, NULL, &err) == MRM_OK, "%s", err.msg);
    if (m2) {
        CHECK(o2.kind == MRM_OPT_SGD && o2.v == NULL && !memcmp(o2.m, s.m, sizeof(float) * s.n) && o2.momentum == 0.9, "SGD round trip");
        mrm_model_free(m2);
        mrm_optimizer_free(&o2);
    }
    mrm_optimizer_free(&s);
    /* a checkpoint is also a model file: its weights load as a model's */
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    mrm_model *mw = NULL;
    CHECK(mrm_model_load(&mw, NULL, path, &err) == MRM_OK, "checkpoint as a model: %s", err.msg);
    CHECK(mrm_checkpoint_load(path, &m2, &o2, NULL, &err) == MRM_OK, "%s", err.msg);
    if (mw && m2)
        CHECK(!memcmp(mrm_model_params(mw), mrm_model_params(m2), sizeof(float) * mrm_model_num_params(m2)),
              "the same weights either way");
    if (m2) mrm_model_free(m2), mrm_optimizer_free(&o2);
    if (mw) mrm_model_free(mw);
    /* a non-finite optimizer state is refused, naming the tensor */
    float keep = o.m[5];
    o.m[5] = NAN;
    snprintf(path, sizeof path, "%s/nan.safetensors", dir);
    CHECK(mrm_checkpoint_save(path, m, &o, NULL, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_checkpoint_load(path, &m2, &o2, NULL, &err) == MRM_ERR_FORMAT && m2 == NULL && strstr(err.msg, "adam.m") &&
              strstr(err.msg, "value 5"),
          "NaN in adam.m refused: %s", err.msg);
    o.m[5] = keep;
    keep = o.v[7];
    o.v[7] = -1.0f;
    CHECK(mrm_checkpoint_save(path, m, &o, NULL, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_checkpoint_load(path, &m2, &o2, NULL, &err) == MRM_ERR_FORMAT && strstr(err.msg, "adam.v") &&
              strstr(err.msg, "negative"),
          "negative second moment refused: %s", err.msg);
    o.v[7] = keep;
    mrm_meta_free(&meta);

    /* ---- batched probabilities = plain evaluation forward + sigmoid ---- */
    enum { N = 5 };
    const size_t rec = (size_t)MRM_INPUT_LEADS * MRM_INPUT_LEN;
    float *X = malloc(sizeof(float) * rec * N), p1[N * 3], p2[N * 3], avg[N * 3];
    mrm_rng r;
    mrm_rng_seed(&r, 3);
    for (size_t i = 0; i < rec * N; i++) X[i] = mrm_rng_uniform_range(&r, -2, 2);
    CHECK(mrm_predict_probs(m, X, N, 2, p1, p2, avg, NULL, NULL, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_model_forward(m, X, N, 0, NULL, &err) == MRM_OK, "%s", err.msg);
    const float *l1 = mrm_model_logits(m, 1), *l2 = mrm_model_logits(m, 2);
    double worst = 0;
    for (int i = 0; i < N * 3; i++) {
        double a = 1 / (1 + exp(-(double)l1[i])), b = 1 / (1 + exp(-(double)l2[i]));
        worst = fmax(worst, fmax(fabs(p1[i] - a), fmax(fabs(p2[i] - b), fabs(avg[i] - 0.5 * (a + b)))));
    }
    CHECK(worst < 1e-5, "probabilities in batches of 2 vs one forward of 5: max diff %g", worst);
    free(X);
    mrm_optimizer_free(&o);
    mrm_model_free(m);

    /* ---- prepared folder checks ---- */
    snprintf(dir, sizeof dir, "%s/prep", test_tmp_dir());
    mrm_mkdir_p(dir, &err);
    const char *leftovers[] = {"classes.txt", "prepare.json", "y_val.npy", "X_val.npy", "ids_val.txt"};
    for (int i = 0; i < 5; i++) { /* from an earlier run of this test */
        mrm_path_join(path, sizeof path, dir, leftovers[i]);
        unlink(path);
    }
    mrm_prepared p;
    CHECK(mrm_prepared_open(&p, dir, &err) == MRM_ERR_NOTFOUND && strstr(err.msg, "classes.txt"), "no classes.txt: %s", err.msg);
    write_text(dir, "classes.txt", "A\r\nB\n\n");
    write_text(dir, "prepare.json", "{\"task\": \"t\", \"mean\": 1.5}");
    CHECK(mrm_prepared_open(&p, dir, &err) == MRM_ERR_FORMAT && strstr(err.msg, "std"), "no std: %s", err.msg);
    write_text(dir, "prepare.json", "{\"task\": \"t\", \"mean\": 1.5, \"std\": 2");
    CHECK(mrm_prepared_open(&p, dir, &err) == MRM_ERR_FORMAT && strstr(err.msg, "prepare.json:1"), "bad JSON: %s", err.msg);
    write_text(dir, "prepare.json", "{\"task\": \"t\", \"mean\": 1.5, \"std\": 2}");
    CHECK(mrm_prepared_open(&p, dir, &err) == MRM_OK, "%s", err.msg);
    CHECK(p.n_classes == 2 && !strcmp(p.classes[0], "A") && !strcmp(p.classes[1], "B") && p.mean == 1.5 && p.std == 2 &&
              !strcmp(p.task, "t"),
          "classes (CR and blank lines ignored), mean, std, task");
    float y[9] = {1, 0, 0, 1, 1, 1, 0, 0, 0};
    long long shape[2] = {3, 2};
    snprintf(path, sizeof path, "%s/y_val.npy", dir);
    mrm_npy_write_f32(path, y, 2, shape, &err);
    mrm_split_data sd;
    CHECK(mrm_prepared_load_split(&p, "val", 0, &sd, &err) == MRM_OK && sd.n == 3 && sd.ids == NULL, "labels only, no ids: %s", err.msg);
    mrm_split_data_free(&sd);
    CHECK(mrm_prepared_load_split(&p, "val", 1, &sd, &err) == MRM_ERR_NOTFOUND && strstr(err.msg, "X_val.npy"), "no X: %s", err.msg);
    write_text(dir, "ids_val.txt", "a\nb\n");
    float *xs = calloc(3 * rec, sizeof(float));
    long long xshape[3] = {3, 12, 1000};
    snprintf(path, sizeof path, "%s/X_val.npy", dir);
    mrm_npy_write_f32(path, xs, 3, xshape, &err);
    CHECK(mrm_prepared_load_split(&p, "val", 1, &sd, &err) == MRM_ERR_FORMAT && strstr(err.msg, "2 ids for 3"), "ids count: %s", err.msg);
    write_text(dir, "ids_val.txt", "a\nb\nc\n");
    xs[2 * rec + 7] = 4.5f;
    mrm_npy_write_f32(path, xs, 3, xshape, &err);
    CHECK(mrm_prepared_load_split(&p, "val", 1, &sd, &err) == MRM_OK && sd.n == 3 && !strcmp(sd.ids[2], "c"), "%s", err.msg);
    CHECK(mrm_split_record(&sd, 2) == sd.X + 2 * rec && mrm_split_record(&sd, 2)[7] == 4.5f, "record 2 from the mapping");
    CHECK(mrm_split_record(&sd, 3) == NULL && mrm_split_record(&sd, -1) == NULL, "records out of range");
    mrm_split_data_free(&sd);
    CHECK(sd.X == NULL && mrm_split_record(&sd, 0) == NULL, "freed split");
    /* a truncated X file is refused before it is mapped, naming the file and the header field */
    {
        FILE *f = fopen(path, "r+b");
        CHECK(f && ftruncate(fileno(f), 128 + 3 * (long)rec * 4 - 100) == 0, "truncate");
        if (f) fclose(f);
        CHECK(mrm_prepared_load_split(&p, "val", 1, &sd, &err) == MRM_ERR_FORMAT && strstr(err.msg, "X_val.npy") &&
                  strstr(err.msg, "shape needs 144000 data bytes but the file has 143900"),
              "truncated X: %s", err.msg);
    }
    xs[rec + 5] = NAN;
    mrm_npy_write_f32(path, xs, 3, xshape, &err);
    CHECK(mrm_prepared_load_split(&p, "val", 1, &sd, &err) == MRM_ERR_FORMAT && strstr(err.msg, "record 1"), "NaN signal: %s", err.msg);
    xshape[0] = 2;
    mrm_npy_write_f32(path, xs, 3, xshape, &err);
    CHECK(mrm_prepared_load_split(&p, "val", 1, &sd, &err) == MRM_ERR_FORMAT && strstr(err.msg, "(3, 12, 1000)"), "X/y mismatch: %s", err.msg);
    y[3] = 0.5f;
    snprintf(path, sizeof path, "%s/y_val.npy", dir);
    mrm_npy_write_f32(path, y, 2, shape, &err);
    CHECK(mrm_prepared_load_split(&p, "val", 0, &sd, &err) == MRM_ERR_FORMAT && strstr(err.msg, "record 1 class 1"), "label 0.5: %s", err.msg);
    shape[1] = 3;
    mrm_npy_write_f32(path, y, 2, shape, &err);
    CHECK(mrm_prepared_load_split(&p, "val", 0, &sd, &err) == MRM_ERR_FORMAT && strstr(err.msg, "classes.txt"), "C mismatch: %s", err.msg);
    free(xs);
    mrm_prepared_close(&p);

    /* ---- SVG ---- */
    double xv[3] = {1, 2, 3}, yv[3] = {0.5, NAN, 0.7};
    mrm_svg_series se[2] = {{"a<b & c", xv, yv, 3}, {"single", xv, yv, 1}};
    mrm_svg_panel pn[2] = {{"t", "x", "y", se, 2, 0}, {"roc", "fpr", "tpr", se, 1, 1}};
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    CHECK(mrm_svg_write(path, pn, 2, &err) == MRM_OK, "%s", err.msg);
    mrm_read_file(path, 1 << 20, &buf, &len, &err);
    CHECK(strstr(buf, "a&lt;b &amp; c") != NULL, "legend escaped");
    CHECK(strstr(buf, "<circle") != NULL && strstr(buf, "stroke-dasharray") != NULL, "single point and diagonal drawn");
    CHECK(!strcmp(buf + len - 7, "</svg>\n"), "complete document");
    free(buf);
    CHECK(mrm_svg_write("/nonexistent/dir/p.svg", pn, 1, &err) == MRM_ERR_IO, "unwritable path reported");
    TEST_END();
}
