/* The in-memory entry points read exactly what the path-based readers read, on the fixtures:
 * WFDB (PTB-XL, MIT-BIH format 212, a Challenge 2020 MATLAB v4 signal file), MATLAB v5
 * (CPSC2018), .npy, and a model file; and a record read from memory never touches the disk (a
 * signal file missing from the table is an error, even when it exists beside the header). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "io/wfdb.h"
#include "mrmnet.h"
#include "test_util.h"

static char fixtures[2048];

static char *slurp(const char *rel, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixtures, rel);
    char *buf = NULL;
    mrm_error err = {0};
    CHECK(mrm_read_file(path, (size_t)1 << 30, &buf, len, &err) == MRM_OK, "%s: %s", rel, err.msg);
    return buf;
}

static void same_record(const mrm_record *a, const mrm_record *b, const char *what) {
    CHECK(a->n_signals == b->n_signals && a->n_samples == b->n_samples && a->fs == b->fs, "%s: %d x %lld at %g vs %d x %lld at %g",
          what, a->n_signals, a->n_samples, a->fs, b->n_signals, b->n_samples, b->fs);
    if (a->n_signals != b->n_signals || a->n_samples != b->n_samples || !a->data || !b->data) return;
    size_t n = (size_t)a->n_signals * (size_t)a->n_samples;
    CHECK(!memcmp(a->data, b->data, n * sizeof(double)), "%s: the samples differ", what);
    for (int s = 0; s < a->n_signals; s++)
        CHECK(!strcmp(a->signals[s].description, b->signals[s].description) && a->signals[s].gain == b->signals[s].gain &&
                  (!a->checks || (a->checks[s].checksum_ok == b->checks[s].checksum_ok)),
              "%s: signal %d differs", what, s + 1);
    CHECK(a->age == b->age && !strcmp(a->sex, b->sex) && !strcmp(a->format, b->format), "%s: age/sex/format differ", what);
}

static void wfdb_case(const char *rec_rel, const char *hea_rel, const char *sig_rel, const char *sig_name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixtures, rec_rel);
    mrm_record disk, mem;
    mrm_error err = {0};
    CHECK(mrm_record_read(&disk, path, 0, &err) == MRM_OK, "%s: %s", rec_rel, err.msg);
    size_t hl, sl;
    char *h = slurp(hea_rel, &hl), *sg = slurp(sig_rel, &sl);
    mrm_mem_file f = {sig_name, sg, sl};
    CHECK(mrm_wfdb_read_mem(&mem, h, hl, hea_rel, &f, 1, 0, &err) == MRM_OK, "%s from memory: %s", rec_rel, err.msg);
    same_record(&disk, &mem, rec_rel);
    mrm_record_free(&mem);
    /* the table lacks the signal file: an error naming it, though it exists on disk */
    mrm_mem_file other = {"other.dat", sg, sl};
    CHECK(mrm_wfdb_read_mem(&mem, h, hl, hea_rel, &other, 1, 0, &err) == MRM_ERR_NOTFOUND && strstr(err.msg, sig_name),
          "%s without its file: %s", rec_rel, err.msg);
    /* the signal bytes cut short: refused before anything is allocated for them */
    mrm_mem_file cut = {sig_name, sg, sl / 2};
    CHECK(mrm_wfdb_read_mem(&mem, h, hl, hea_rel, &cut, 1, 0, &err) == MRM_ERR_FORMAT && strstr(err.msg, "truncated"),
          "%s cut short: %s", rec_rel, err.msg);
    mrm_record_free(&disk);
    free(h);
    free(sg);
}

int main(void) {
    const char *src = getenv("MRM_SOURCE_DIR");
    snprintf(fixtures, sizeof fixtures, "%s/tests/fixtures", src ? src : ".");
    wfdb_case("ptb-xl/00001_lr", "ptb-xl/00001_lr.hea", "ptb-xl/00001_lr.dat", "00001_lr.dat");
    wfdb_case("mitdb/100s", "mitdb/100s.hea", "mitdb/100s.dat", "100s.dat");
    wfdb_case("challenge2020/A0002", "challenge2020/A0002.hea", "challenge2020/A0002.mat", "A0002.mat");

    /* MATLAB v5, directly and through mrm_record_read_mem (chosen by content) */
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/cpsc2018/A1980.mat", fixtures);
        mrm_record disk, mem;
        mrm_error err = {0};
        CHECK(mrm_record_read(&disk, path, 0, &err) == MRM_OK, "A1980.mat: %s", err.msg);
        size_t n;
        char *b = slurp("cpsc2018/A1980.mat", &n);
        CHECK(mat_read_cpsc_v5_mem(&mem, (const uint8_t *)b, n, "A1980.mat", 0, &err) == MRM_OK, "A1980 from memory: %s", err.msg);
        same_record(&disk, &mem, "A1980.mat");
        mrm_record_free(&mem);
        CHECK(mrm_record_read_mem(&mem, b, n, "A1980.mat", 0, &err) == MRM_OK, "A1980 by content: %s", err.msg);
        same_record(&disk, &mem, "A1980.mat by content");
        mrm_record_free(&mem);
        mrm_record_free(&disk);
        free(b);
    }
    /* .npy */
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/model/ref_input.npy", fixtures);
        float *a = NULL, *b = NULL;
        int na, nb;
        long long sa[4], sb[4];
        mrm_error err = {0};
        CHECK(mrm_npy_read_f32(path, &a, &na, sa, &err) == MRM_OK, "ref_input.npy: %s", err.msg);
        size_t n;
        char *buf = slurp("model/ref_input.npy", &n);
        CHECK(mrm_npy_read_f32_mem(buf, n, "ref_input.npy", &b, &nb, sb, &err) == MRM_OK, "ref_input.npy from memory: %s", err.msg);
        CHECK(a && b && na == nb && !memcmp(sa, sb, sizeof sa), "npy shapes");
        if (a && b && na == nb) {
            size_t count = 1;
            for (int i = 0; i < na; i++) count *= (size_t)sa[i];
            CHECK(!memcmp(a, b, count * sizeof(float)), "npy values");
        }
        float *c = NULL;
        CHECK(mrm_npy_read_f32_mem(buf, n - 1, "short.npy", &c, &nb, sb, &err) == MRM_ERR_FORMAT && !c && strstr(err.msg, "short.npy"),
              "npy one byte short: %s", err.msg);
        free(a);
        free(b);
        free(buf);
    }
    /* a model file */
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/model/ref_weights.safetensors", fixtures);
        mrm_model *a = NULL, *b = NULL;
        mrm_error err = {0};
        CHECK(mrm_model_load(&a, NULL, path, &err) == MRM_OK, "ref_weights: %s", err.msg);
        size_t n;
        char *buf = slurp("model/ref_weights.safetensors", &n);
        CHECK(mrm_model_load_mem(&b, NULL, buf, n, "ref_weights.safetensors", &err) == MRM_OK, "ref_weights from memory: %s",
              err.msg);
        CHECK(a && b && mrm_model_num_tensors(a) == mrm_model_num_tensors(b), "model tensors");
        for (int i = 0; a && b && i < mrm_model_num_tensors(a); i++) {
            const mrm_tensor *x = mrm_model_tensor(a, i), *y = mrm_model_tensor(b, i);
            CHECK(!strcmp(x->name, y->name) && x->numel == y->numel &&
                      !memcmp(x->data, y->data, (size_t)x->numel * (x->is_int64 ? 8 : 4)),
                  "tensor %s", x->name);
        }
        mrm_model_free(a);
        mrm_model_free(b);
        free(buf);
    }
    TEST_END();
}
