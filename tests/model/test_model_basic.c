/* The model's structure, its weight files and its gradient, without the PyTorch references:
 *  - parameter counts (1,779,722 for N = 5, 1,792,526 for N = 71), 280 tensors whose names, dtypes
 *    and shapes are the weights table's (when ../shared is present);
 *  - save -> load round trip bit-exact (tensors and metadata);
 *  - malformed safetensors files rejected with a message naming the tensor and field;
 *  - the gradient of the whole loss against central finite differences (width 4, hi_attention);
 *  - argument checks, dropout determinism, eval-mode batch independence. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/rng.h"
#include "io/safetensors.h"
#include "mrmnet.h"
#include "test_util.h"

static char tmpdir[1024];

static mrm_model *make(int n, int width, int hi, uint64_t seed) {
    mrm_model_config cfg;
    mrm_model_config_default(&cfg);
    cfg.n_classes = n, cfg.width = width, cfg.attention = hi ? MRM_ATTENTION_BOTH : MRM_ATTENTION_LOW;
    mrm_model *m = NULL;
    mrm_error err = {0};
    mrm_status s = mrm_model_create(&m, &cfg, &err);
    CHECK(s == MRM_OK, "create: %s", err.msg);
    if (m) mrm_model_init(m, seed);
    return m;
}

static void test_counts(void) {
    mrm_model *m = make(5, 16, 0, 1);
    CHECK(mrm_model_num_params(m) == 1779722, "N=5: %zu parameters", mrm_model_num_params(m));
    CHECK(mrm_model_num_tensors(m) == 280, "N=5: %d tensors", mrm_model_num_tensors(m));
    CHECK(mrm_model_feature_size(m) == 32128, "feature size %d", mrm_model_feature_size(m));
    const char *shared = test_shared_dir();
    char path[1024];
    FILE *f = NULL;
    if (shared) {
        snprintf(path, sizeof path, "%s/spec/mrmnet-weights.tsv", shared);
        f = fopen(path, "r");
    }
    if (f) {
        char line[512];
        int i = 0, bad = 0;
        while (fgets(line, sizeof line, f)) {
            if (line[0] == '#' || !strncmp(line, "name\t", 5)) continue;
            line[strcspn(line, "\r\n")] = 0;
            const mrm_tensor *t = mrm_model_tensor(m, i++);
            if (!t) {
                bad++;
                continue;
            }
            char want[512];
            int k = snprintf(want, sizeof want, "%s\t%s\t", t->name, t->is_int64 ? "I64" : "F32");
            if (!t->ndim) snprintf(want + k, sizeof want - k, "scalar");
            for (int d = 0; d < t->ndim; d++) k += snprintf(want + k, sizeof want - k, d ? "x%lld" : "%lld", t->shape[d]);
            if (strcmp(want, line)) {
                bad++;
                fprintf(stderr, "table: '%s' vs model '%s'\n", line, want);
            }
        }
        fclose(f);
        CHECK(i == 280 && bad == 0, "weights table: %d rows, %d differ", i, bad);
    } else {
        printf("(weights table not found: names not compared)\n");
    }
    size_t total = 0; /* parameters = sum of the trainable tensors */
    for (int i = 0; i < mrm_model_num_tensors(m); i++)
        if (mrm_model_tensor(m, i)->trainable) total += (size_t)mrm_model_tensor(m, i)->numel;
    CHECK(total == mrm_model_num_params(m), "trainable tensors hold %zu values", total);
    mrm_model_free(m);
    m = make(71, 16, 0, 1);
    CHECK(mrm_model_num_params(m) == 1792526, "N=71: %zu parameters", mrm_model_num_params(m));
    mrm_model_free(m);
    m = make(5, 4, 1, 1);
    CHECK(mrm_model_find_tensor(m, "BaseBlock.layer1.5.se.fc.2.weight") >= 0, "hi_attention names");
    CHECK(mrm_model_feature_size(m) == 2008 * 4, "width 4 features");
    mrm_model_free(m);
    mrm_model_config bad;
    mrm_model_config_default(&bad);
    bad.width = 6;
    mrm_error err = {0};
    CHECK(mrm_model_create(&m, &bad, &err) == MRM_ERR_INVALID && strstr(err.msg, "width: 6"), "width 6: %s", err.msg);
    bad.width = 16;
    bad.n_classes = 0;
    CHECK(mrm_model_create(&m, &bad, &err) == MRM_ERR_INVALID && strstr(err.msg, "n_classes"), "0 classes: %s", err.msg);
}

static void test_roundtrip(void) {
    mrm_model *m = make(7, 8, 1, 42), *back = NULL;
    mrm_error err = {0};
    /* non-default BN statistics and counts */
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        if (t->is_int64) *(int64_t *)t->data = 1000 + i;
        else if (!t->trainable)
            for (long long j = 0; j < t->numel; j++) ((float *)t->data)[j] = 0.5f + 0.001f * (float)(i + j);
    }
    mrm_meta meta = {0}, got = {0};
    mrm_meta_set(&meta, "classes", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]", &err);
    mrm_meta_set(&meta, "mean", "0.0123", &err);
    mrm_meta_set(&meta, "note", "unicode \xc3\xa9 and \"quotes\"", &err);
    char path[1200];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    CHECK(mrm_model_save(m, &meta, path, &err) == MRM_OK, "save: %s", err.msg);
    CHECK(mrm_model_load(&back, &got, path, &err) == MRM_OK, "load: %s", err.msg);
    if (back) {
        const mrm_model_config *c = mrm_model_config_of(back);
        CHECK(c->n_classes == 7 && c->width == 8 && c->attention == MRM_ATTENTION_BOTH, "config from metadata");
        int same = 1;
        for (int i = 0; i < mrm_model_num_tensors(m); i++) {
            const mrm_tensor *a = mrm_model_tensor(m, i), *b = mrm_model_tensor(back, i);
            size_t bytes = (size_t)a->numel * (a->is_int64 ? 8 : 4);
            if (strcmp(a->name, b->name) || memcmp(a->data, b->data, bytes)) same = 0;
        }
        CHECK(same, "every tensor bit-exact after the round trip");
        CHECK(mrm_meta_get(&got, "note") && !strcmp(mrm_meta_get(&got, "note"), "unicode \xc3\xa9 and \"quotes\""), "metadata kept");
        CHECK(mrm_meta_get(&got, "format") && !strcmp(mrm_meta_get(&got, "format"), "mrmnet-1"), "format key");
    }
    /* the file itself: header length a multiple of 8, data contiguous */
    st_file f;
    CHECK(st_read(&f, path, &err) == MRM_OK, "st_read: %s", err.msg);
    CHECK((f.data_start - 8) % 8 == 0, "header padded to 8");
    size_t end = 0;
    int contiguous = 1;
    for (int i = 0; i < f.n; i++) {
        if (f.t[i].begin != end) contiguous = 0;
        end = f.t[i].end;
    }
    CHECK(contiguous && end == f.len - f.data_start, "tensors contiguous, data fills the file");
    st_free(&f);
    mrm_meta_free(&meta);
    mrm_meta_free(&got);
    mrm_model_free(back);
    mrm_model_free(m);
}

/* ---- malformed files: built from a good file by editing its header ------------------------ */

static char *good;
static size_t good_len;

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

/* The length of the good file's JSON header (its first 8 bytes, little-endian). */
static uint64_t good_header_len(void) {
    uint64_t n0 = 0;
    for (int i = 7; i >= 0; i--) n0 = n0 << 8 | (unsigned char)good[i];
    return n0;
}

/* Writes a file with the good file's data and the header h (JSON text). */
static void write_with_header(const char *path, const char *h) {
    uint64_t n0 = good_header_len();
    size_t hl = strlen(h);
    FILE *f = fopen(path, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(h, 1, hl, f);
    fwrite(good + 8 + n0, 1, good_len - 8 - n0, f);
    fclose(f);
}

/* The good file's data under the JSON header h (which is released). */
static void write_json_header(const char *path, json_t *h) {
    char *txt = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    write_with_header(path, txt);
    free(txt);
    json_decref(h);
}

static json_t *good_header(void) {
    uint64_t n0 = good_header_len();
    return json_loadb(good + 8, n0, 0, NULL);
}

static void expect_reject(const char *what, const char *path, const char *needle1, const char *needle2) {
    mrm_model *m = NULL;
    mrm_error err = {0};
    mrm_status s = mrm_model_load(&m, NULL, path, &err);
    CHECK(s != MRM_OK && m == NULL, "%s: accepted", what);
    CHECK(strstr(err.msg, needle1) != NULL && (!needle2 || strstr(err.msg, needle2) != NULL), "%s: message '%s'", what, err.msg);
    if (getenv("MRM_VERBOSE")) printf("  %-28s %s\n", what, err.msg);
    mrm_model_free(m);
}

static void edit_and_expect(const char *what, const char *tensor, const char *field, json_t *value, const char *n1,
                            const char *n2) {
    char path[1200];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
    json_t *h = good_header();
    json_t *t = json_object_get(h, tensor);
    if (field) json_object_set_new(t, field, value);
    else json_object_del(h, tensor);
    write_json_header(path, h);
    expect_reject(what, path, n1, n2);
}

static void test_malformed(void) {
    mrm_model *m = make(5, 4, 0, 3);
    mrm_error err = {0};
    char path[1200], bad[1200];
    snprintf(path, sizeof path, "%s/good.safetensors", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", tmpdir);
    CHECK(mrm_model_save(m, NULL, path, &err) == MRM_OK, "save: %s", err.msg);
    mrm_model_free(m);
    CHECK(mrm_read_file(path, 1 << 28, &good, &good_len, &err) == MRM_OK, "read: %s", err.msg);
    if (!good) return;

    write_bytes(bad, good, 5);
    expect_reject("5-byte file", bad, "too short", NULL);
    write_bytes(bad, good, good_len - 3);
    expect_reject("truncated data", bad, "data_offsets", "outside");
    write_bytes(bad, good, 200);
    expect_reject("truncated header", bad, "header length", "beyond");
    char *c = malloc(good_len);
    memcpy(c, good, good_len);
    c[5] = 0x7f; /* header length ~ 2^47 */
    write_bytes(bad, c, good_len);
    expect_reject("huge header length", bad, "header length", NULL);
    memcpy(c, good, good_len);
    c[8] = '#'; /* the opening brace */
    write_bytes(bad, c, good_len);
    expect_reject("garbage JSON", bad, "header JSON", "line 1");
    free(c);
    write_with_header(bad, "[1, 2, 3]");
    expect_reject("JSON array header", bad, "not an object", NULL);

    const char *w = "BaseBlock.conv_block2.0.weight";
    edit_and_expect("wrong shape", w, "shape", json_pack("[i,i,i]", 8, 7, 4), w, "shape: [8, 7, 4], expected [8, 4, 7]");
    edit_and_expect("wrong dtype", w, "dtype", json_string("I32"), w, "dtype: I32, expected F32");
    edit_and_expect("dtype of another size", w, "dtype", json_string("F16"), w, "F16");
    edit_and_expect("unknown dtype", w, "dtype", json_string("Q7"), w, "unknown dtype");
    edit_and_expect("shape not an array", w, "shape", json_string("8x4x7"), w, "shape");
    edit_and_expect("negative dimension", w, "shape", json_pack("[i,i,i]", 8, -4, 7), w, "shape[1]");
    edit_and_expect("missing tensor", w, NULL, NULL, w, "missing");
    edit_and_expect("offsets not a pair", w, "data_offsets", json_pack("[i]", 0), w, "data_offsets");
    edit_and_expect("offsets size mismatch", w, "data_offsets", json_pack("[i,i]", 0, 12), w, "bytes for");
    edit_and_expect("offsets beyond data", w, "data_offsets", json_pack("[I,I]", (json_int_t)1 << 40, ((json_int_t)1 << 40) + 896), w,
                    "outside");
    /* overlap: point conv_block2's weight at the first tensor's bytes (same size needed: use a
     * BN tensor of the same length as another) */
    {
        json_t *h = good_header();
        json_t *a = json_object_get(h, "BaseBlock.conv_block1.1.weight");      /* 4 floats */
        json_t *b = json_object_get(h, "BaseBlock.conv_block1.1.bias");        /* 4 floats */
        json_object_set(b, "data_offsets", json_object_get(a, "data_offsets"));
        write_json_header(bad, h);
        expect_reject("overlapping offsets", bad, "overlap", NULL);
    }
    {
        json_t *h = good_header();
        json_object_set_new(h, "extra.weight", json_pack("{s:s,s:[i],s:[i,i]}", "dtype", "F32", "shape", 0, "data_offsets", 0, 0));
        write_json_header(bad, h);
        expect_reject("unknown tensor", bad, "extra.weight", "not part of the model");
    }
    {
        json_t *h = good_header();
        json_object_set_new(json_object_get(h, "__metadata__"), "width", json_integer(4));
        write_json_header(bad, h);
        expect_reject("metadata not a string", bad, "__metadata__", "width");
    }
    {
        json_t *h = good_header();
        json_object_set_new(json_object_get(h, "__metadata__"), "width", json_string("8"));
        write_json_header(bad, h);
        expect_reject("metadata width disagrees", bad, "BaseBlock.conv_block1.0.weight", "expected [8, 12, 11]");
    }
    edit_and_expect("scalar count with a shape", "BaseBlock.conv_block1.1.num_batches_tracked", "shape", json_pack("[i]", 1),
                    "num_batches_tracked", "shape: [1], expected []");
    {   /* a NaN in the data */
        c = malloc(good_len);
        memcpy(c, good, good_len);
        uint64_t n0 = good_header_len();
        float nan = NAN;
        memcpy(c + 8 + n0 + 4 * 10, &nan, 4); /* the first tensor's 11th value */
        write_bytes(bad, c, good_len);
        free(c);
        expect_reject("NaN weight", bad, "BaseBlock.conv_block1.0.weight", "value 10");
    }
    {   /* no metadata at all (a bare state_dict): the architecture comes from the shapes */
        json_t *h = good_header();
        json_object_del(h, "__metadata__");
        write_json_header(bad, h);
        m = NULL;
        CHECK(mrm_model_load(&m, NULL, bad, &err) == MRM_OK, "no metadata: %s", err.msg);
        if (m) CHECK(mrm_model_config_of(m)->width == 4 && mrm_model_config_of(m)->n_classes == 5, "config from shapes");
        mrm_model_free(m);
    }
    {   /* another format */
        json_t *h = good_header();
        json_object_set_new(json_object_get(h, "__metadata__"), "format", json_string("pt"));
        write_json_header(bad, h);
        expect_reject("other format", bad, "format", "mrmnet-1");
    }
    {   /* random damage to the header and the first bytes: never a crash (the sanitizer build
         * runs this), and whatever loads is complete */
        mrm_rng r;
        mrm_rng_seed(&r, 2024);
        uint64_t n0 = good_header_len();
        c = malloc(good_len);
        int loaded = 0, refused = 0;
        for (int it = 0; it < 300; it++) {
            memcpy(c, good, good_len);
            int nflip = 1 + (int)mrm_rng_below(&r, 4);
            for (int k = 0; k < nflip; k++) {
                size_t pos = (size_t)mrm_rng_below(&r, 8 + n0);
                c[pos] = (char)mrm_rng_below(&r, 256);
            }
            size_t len = mrm_rng_below(&r, 8) ? good_len : (size_t)mrm_rng_below(&r, good_len);
            write_bytes(bad, c, len);
            m = NULL;
            mrm_error e2 = {0};
            if (mrm_model_load(&m, NULL, bad, &e2) == MRM_OK) {
                loaded++;
                CHECK(m && mrm_model_num_tensors(m) > 0, "loaded model complete");
            } else {
                refused++;
                CHECK(m == NULL && e2.msg[0] && strstr(e2.msg, bad), "refusal names the file: '%s'", e2.msg);
            }
            mrm_model_free(m);
        }
        free(c);
        printf("damaged headers: %d refused, %d still loaded (damage in names of metadata or padding)\n", refused, loaded);
        CHECK(refused > 200, "most damaged files refused (%d)", refused);
    }
    /* the good file still loads */
    m = NULL;
    CHECK(mrm_model_load(&m, NULL, path, &err) == MRM_OK, "good file: %s", err.msg);
    mrm_model_free(m);
    free(good);
    good = NULL;
}

/* ---- the gradient of the whole loss against central differences ---------------------------
 * The model computes in float32 (loss in double), so a difference quotient carries float32
 * rounding of the forward pass (~1e-7 of the loss) divided by the step, plus the kinks of ReLU
 * and max pooling within the step: 5% agreement is what it can show here; the exact gradients
 * are checked against the float64 references in test_model_parity. A wrong gradient is off by
 * far more (a missing path, a sign, a factor 4 in the merged kernels). */

static double loss_at(mrm_model *m, const float *x, const float *y, int B) {
    mrm_loss l;
    mrm_error err = {0};
    if (mrm_model_forward(m, x, B, 1, NULL, &err) || mrm_model_loss(m, y, &l, &err)) return NAN;
    return l.total;
}

/* Files that claim a model they do not hold are refused before the model is built: metadata
 * alone (the widest width this version builds, and wider), and a whole width-4 model relabelled
 * as width 128 in its metadata. Read from memory, as the fuzz harness reads them. */
static void test_claims(void) {
    char txt[256];
    const int widths[] = {MRM_MAX_WIDTH, 512, 1024};
    for (int i = 0; i < 3; i++) {
        int n = snprintf(txt + 8, sizeof txt - 8,
                         "{\"__metadata__\":{\"format\":\"mrmnet-1\",\"n_classes\":\"5\",\"width\":\"%d\",\"hi_attention\":\"0\"}}",
                         widths[i]);
        for (int k = 0; k < 8; k++) txt[k] = (char)((uint64_t)n >> (8 * k));
        mrm_model *m = NULL;
        mrm_error err = {0};
        mrm_status s = mrm_model_load_mem(&m, NULL, txt, (size_t)n + 8, "meta-only.safetensors", &err);
        CHECK(s != MRM_OK && !m, "metadata-only width %d: accepted", widths[i]);
        CHECK(strstr(err.msg, "meta-only.safetensors") &&
                  (widths[i] > MRM_MAX_WIDTH ? strstr(err.msg, "width") != NULL : strstr(err.msg, "does not hold") != NULL),
              "metadata-only width %d: %s", widths[i], err.msg);
        mrm_model_free(m);
    }
    /* the good file (width 4) with width 128 in its metadata */
    char path[1200];
    snprintf(path, sizeof path, "%s/good.safetensors", tmpdir);
    mrm_error rerr = {0};
    CHECK(mrm_read_file(path, 1 << 28, &good, &good_len, &rerr) == MRM_OK, "read: %s", rerr.msg);
    if (!good) return;
    json_t *h = good_header();
    json_object_set_new(json_object_get(h, "__metadata__"), "width", json_string("128"));
    snprintf(path, sizeof path, "%s/claims.safetensors", tmpdir);
    write_json_header(path, h);
    expect_reject("width 128 over width-4 tensors", path, "does not hold the model", "BaseBlock.conv_block1.0.weight");
    free(good);
    good = NULL;
}

static void test_finite_differences(void) {
    const int B = 3, N = 4;
    mrm_model *m = make(N, 4, 1, 11);
    mrm_model_set_dropout(m, 0.0f);
    mrm_rng rng;
    mrm_rng_seed(&rng, 99);
    float *x = malloc(sizeof(float) * B * 12 * 1000), y[3 * 4] = {1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1};
    for (int i = 0; i < B * 12 * 1000; i++) /* smooth random signals */
        x[i] = sinf(0.01f * (float)(i % 1000) * (1 + (i / 1000) % 7)) + mrm_rng_uniform_range(&rng, -0.5f, 0.5f);
    /* BN and LayerNorm away from their identity defaults */
    for (int i = 0; i < mrm_model_num_tensors(m); i++) {
        const mrm_tensor *t = mrm_model_tensor(m, i);
        if (t->trainable && t->ndim == 1)
            for (long long j = 0; j < t->numel; j++) ((float *)t->data)[j] += mrm_rng_uniform_range(&rng, -0.3f, 0.3f);
    }
    mrm_error err = {0};
    mrm_loss l;
    mrm_model_zero_grad(m);
    CHECK(mrm_model_forward(m, x, B, 1, NULL, &err) == MRM_OK, "%s", err.msg);
    CHECK(mrm_model_backward(m, y, &l, &err) == MRM_OK, "%s", err.msg);
    float *g = malloc(sizeof(float) * mrm_model_num_params(m));
    memcpy(g, mrm_model_grads(m), sizeof(float) * mrm_model_num_params(m));
    static const char *names[] = {
        "BaseBlock.conv_block1.0.weight", "BaseBlock.conv_block3.1.bias", "BaseBlock.BaseScale1.conv2.weight",
        "BaseBlock.BaseScale2.conv1.weight", "BaseBlock.BaseScale2.conv4.weight", "BaseBlock.BaseScale1.bn.weight",
        "BaseBlock.layer1.1.group_conv3x3.weight", "BaseBlock.layer1.2.se.fc.0.weight", "BaseBlock.layer2.5.se.fc.2.weight",
        "Fusion_block1.conv_block2.0.weight", "Fusion_block1.conv_block3.0.weight", "Fusion_block2.conv_block3.2.bias",
        "Fusion_block2.norm1.weight", "Fusion_block1.layer1.0.downsample.0.weight", "Fusion_block2.layer1.3.conv2.weight",
        "conv_norm2.bias", "fc1.weight", "fc2.bias"};
    int nbad = 0, n = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int ti = mrm_model_find_tensor(m, names[k]);
        CHECK(ti >= 0, "tensor %s", names[k]);
        if (ti < 0) continue;
        const mrm_tensor *t = mrm_model_tensor(m, ti);
        float *p = t->data;
        size_t off = (size_t)(t->grad - mrm_model_grads(m));
        long long best = 0; /* the entry with the largest gradient: best signal over float32 noise */
        for (long long j = 1; j < t->numel; j++)
            if (fabsf(g[off + j]) > fabsf(g[off + best])) best = j;
        /* five-point stencil: error O(h^4) */
        /* step: small against the value, large enough that the loss moves by ~2e-5 (float32
         * rounding of the loss is ~1e-7) */
        float save = p[best], h = fmaxf(4e-3f * fmaxf(0.1f, fabsf(save)), 2e-5f / fmaxf(fabsf(g[off + best]), 1e-6f));
        float hs[4] = {-2 * h, -h, h, 2 * h};
        double f[4];
        for (int q = 0; q < 4; q++) {
            p[best] = save + hs[q];
            f[q] = loss_at(m, x, y, B);
        }
        p[best] = save;
        double fd = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12.0 * h), an = g[off + best];
        double e = fabs(fd - an) / fmax(fabs(an), 1e-4);
        n++;
        if (e > 5e-2) nbad++;
        if (getenv("MRM_VERBOSE") || e > 5e-2)
            printf("  %-45s [%lld] analytic %.6g  finite difference %.6g  (%.2g)\n", names[k], best, an, fd, e);
    }
    CHECK(nbad == 0, "%d of %d gradients differ from finite differences by more than 5%%", nbad, n);
    free(g);
    free(x);
    mrm_model_free(m);
}

static void test_arguments(void) {
    mrm_model *m = make(3, 4, 0, 5);
    mrm_error err = {0};
    float *x = calloc(4 * 12 * 1000, sizeof(float)), y[12] = {0};
    for (int i = 0; i < 4 * 12 * 1000; i++) x[i] = sinf((float)i * 0.37f);
    mrm_loss l;
    CHECK(mrm_model_backward(m, y, &l, &err) == MRM_ERR_INVALID, "backward before any forward");
    CHECK(mrm_model_forward(m, x, 1, 1, NULL, &err) == MRM_ERR_INVALID && strstr(err.msg, "at least 2"), "train B=1: %s", err.msg);
    CHECK(mrm_model_forward(m, x, 2, 1, NULL, &err) == MRM_ERR_INVALID && strstr(err.msg, "random"), "dropout without rng: %s",
          err.msg);
    CHECK(mrm_model_forward(m, x, 4, 0, NULL, &err) == MRM_OK, "eval: %s", err.msg);
    CHECK(mrm_model_backward(m, y, &l, &err) == MRM_ERR_INVALID && strstr(err.msg, "training"), "backward after eval: %s", err.msg);
    /* eval: a record's logits do not depend on the batch around it */
    float lg[12];
    memcpy(lg, mrm_model_logits(m, 2), sizeof lg);
    CHECK(mrm_model_forward(m, x + 2 * 12000, 1, 0, NULL, &err) == MRM_OK, "eval B=1");
    CHECK(fabsf(mrm_model_logits(m, 2)[1] - lg[2 * 3 + 1]) <= 1e-5f * fmaxf(1, fabsf(lg[7])), "batch independence");
    /* dropout: same seed same outputs, and different from no dropout */
    mrm_rng r1, r2;
    float a[12], b[12];
    mrm_model_set_dropout(m, 0.5f);
    mrm_rng_seed(&r1, 7);
    mrm_rng_seed(&r2, 7);
    CHECK(mrm_model_forward(m, x, 4, 1, &r1, &err) == MRM_OK, "dropout forward");
    memcpy(a, mrm_model_logits(m, 1), sizeof a);
    CHECK(mrm_model_forward(m, x, 4, 1, &r2, &err) == MRM_OK, "dropout forward");
    memcpy(b, mrm_model_logits(m, 1), sizeof b);
    CHECK(!memcmp(a, b, sizeof a), "dropout deterministic for a seed");
    y[0] = 2.0f;
    CHECK(mrm_model_backward(m, y, &l, &err) == MRM_ERR_INVALID && strstr(err.msg, "[0, 0]"), "label 2: %s", err.msg);
    y[0] = 1.0f;
    CHECK(mrm_model_backward(m, y, &l, &err) == MRM_OK && isfinite(l.total), "backward with dropout: %s", err.msg);
    mrm_model_set_dropout(m, 0.0f);
    CHECK(mrm_model_forward(m, x, 4, 1, NULL, &err) == MRM_OK, "no dropout");
    CHECK(memcmp(a, mrm_model_logits(m, 1), sizeof a) != 0, "dropout changes the outputs");
    mrm_infer *inf = NULL;
    CHECK(mrm_infer_create(&inf, m, 0, &err) == MRM_ERR_INVALID, "infer max_batch 0");
    free(x);
    mrm_model_free(m);
}

/* The config's key table: defaults, text round trip through the metadata, messages naming the
 * field, files written before the table, refusal of another variant's weights. */
static void test_config(void) {
    mrm_model_config d, c, back;
    mrm_error err = {0};
    mrm_model_config_default(&d);
    CHECK(d.width == 16 && d.attention == MRM_ATTENTION_LOW && d.fusion == 1 && d.branches == MRM_BRANCHES_BOTH &&
              d.combine == MRM_COMBINE_MUTUAL && d.lambda_feat == 0.01 && d.lambda_logit == 0.1 && d.temperature == 4.0,
          "defaults are the released model");
    c = d;
    CHECK(mrm_model_config_parse(&c, "width=32,attention=none,lambda-feat=0.5,temperature=2", &err) == MRM_OK, "parse: %s",
          err.msg);
    CHECK(c.width == 32 && c.attention == MRM_ATTENTION_NONE && c.lambda_feat == 0.5 && c.temperature == 2.0, "parsed");
    mrm_meta meta = {0};
    CHECK(mrm_model_config_to_meta(&c, &meta, &err) == MRM_OK, "to_meta");
    CHECK(!strcmp(mrm_meta_get(&meta, "attention"), "none") && !strcmp(mrm_meta_get(&meta, "lambda_feat"), "0.5") &&
              !strcmp(mrm_meta_get(&meta, "lambda_logit"), "0.1"),
          "metadata values as text");
    CHECK(mrm_model_config_from_meta(&back, &meta, "x.safetensors", &err) == MRM_OK, "from_meta: %s", err.msg);
    CHECK(!mrm_model_config_diff(&c, &back, 0), "round trip: %s differs", mrm_model_config_diff(&c, &back, 0));
    mrm_meta_set(&meta, "fusion", "maybe", &err);
    CHECK(mrm_model_config_from_meta(&back, &meta, "x.safetensors", &err) == MRM_ERR_FORMAT &&
              strstr(err.msg, "x.safetensors") && strstr(err.msg, "fusion") && strstr(err.msg, "on or off"),
          "bad value named: %s", err.msg);
    mrm_meta_free(&meta);
    /* a file of the earlier format: only n_classes, width, hi_attention */
    mrm_meta_set(&meta, "n_classes", "5", &err);
    mrm_meta_set(&meta, "width", "16", &err);
    mrm_meta_set(&meta, "hi_attention", "1", &err);
    CHECK(mrm_model_config_from_meta(&back, &meta, "old", &err) == MRM_OK && back.attention == MRM_ATTENTION_BOTH &&
              back.fusion == 1 && back.lambda_logit == 0.1,
          "old keys: %s", err.msg);
    mrm_meta_free(&meta);
    CHECK(mrm_model_config_set(&c, "colour", "red", &err) == MRM_ERR_INVALID && strstr(err.msg, "colour") &&
              strstr(err.msg, "attention"),
          "unknown key: %s", err.msg);
    CHECK(mrm_model_config_set(&c, "attention", "sideways", &err) == MRM_ERR_INVALID && strstr(err.msg, "low, high, both or none"),
          "bad attention: %s", err.msg);
    mrm_model_config z;
    memset(&z, 0, sizeof z);
    z.n_classes = 5, z.width = 16;
    mrm_model *m = NULL;
    CHECK(mrm_model_create(&m, &z, &err) == MRM_ERR_INVALID && strstr(err.msg, "temperature"), "zeroed config: %s", err.msg);
    /* the weights of another variant are refused, naming the field */
    m = make(5, 4, 0, 1);
    c = *mrm_model_config_of(m);
    c.attention = MRM_ATTENTION_NONE;
    CHECK(mrm_model_set_config(m, &c, &err) == MRM_ERR_INVALID && strstr(err.msg, "attention"), "variant refused: %s", err.msg);
    mrm_model *o = NULL;
    c.attention = MRM_ATTENTION_LOW, c.width = 8;
    CHECK(mrm_model_create(&o, &c, &err) == MRM_OK, "width 8");
    CHECK(mrm_model_copy_weights(o, m, &err) == MRM_ERR_INVALID && strstr(err.msg, "width"), "copy refused: %s", err.msg);
    mrm_model_free(o);
    c = *mrm_model_config_of(m);
    c.lambda_feat = 0, c.temperature = 1;
    CHECK(mrm_model_set_config(m, &c, &err) == MRM_OK && mrm_model_config_of(m)->lambda_feat == 0, "loss knobs change");
    mrm_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s", test_tmp_dir());
    test_counts();
    test_config();
    test_roundtrip();
    test_malformed();
    test_claims();
    test_arguments();
    test_finite_differences();
    TEST_END();
}
