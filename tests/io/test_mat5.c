/* MATLAB v5 records (original CPSC2018 layout) read by src/io/mat.c, against files written by an
 * independent implementation (libmatio): plain and zlib-compressed, double and single data, other
 * variables beside ECG; and the hostile cases the reader must refuse before it allocates: declared
 * sizes larger than the data, truncated and corrupt compressed streams, every prefix of a file. */
#include <matio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/wfdb.h"
#include "mrmnet.h"
#include "test_util.h"

static char tmp[2048];

static const char *tp(const char *name) {
    static char p[4][4096];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", tmp, name);
    return p[i];
}

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

#define T 300
static double data_d[12 * T];

/* Writes ECG = struct(data 12 x T, age, sex) (and a variable x before it when `extra`). */
static int write_ecg(const char *name, enum matio_classes cls, enum matio_compression z, int extra) {
    mat_t *m = Mat_CreateVer(tp(name), NULL, MAT_FT_MAT5);
    if (!m) return -1;
    if (extra) {
        size_t dims[2] = {2, 2};
        double v[4] = {1, 2, 3, 4};
        matvar_t *x = Mat_VarCreate("x", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, v, 0);
        Mat_VarWrite(m, x, z);
        Mat_VarFree(x);
    }
    size_t sdims[2] = {1, 1}, ddims[2] = {12, T}, one[2] = {1, 1}, sexdims[2] = {1, 6};
    static float data_f[12 * T];
    for (int i = 0; i < 12 * T; i++) data_f[i] = (float)data_d[i];
    double age = 63;
    const char *fields[3] = {"sex", "age", "data"};
    matvar_t *ecg = Mat_VarCreateStruct("ECG", 2, sdims, fields, 3);
    /* char data as MATLAB stores it (UTF-16 code units); libmatio declares compressed UTF-8
     * char fields 8 bytes longer than it writes them */
    const uint16_t sex[6] = {'F', 'e', 'm', 'a', 'l', 'e'};
    Mat_VarSetStructFieldByName(ecg, "sex", 0, Mat_VarCreate("sex", MAT_C_CHAR, MAT_T_UINT16, 2, sexdims, (void *)sex, 0));
    Mat_VarSetStructFieldByName(ecg, "age", 0, Mat_VarCreate("age", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, one, &age, 0));
    Mat_VarSetStructFieldByName(ecg, "data", 0,
                                cls == MAT_C_SINGLE ? Mat_VarCreate("data", MAT_C_SINGLE, MAT_T_SINGLE, 2, ddims, data_f, 0)
                                                    : Mat_VarCreate("data", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, ddims, data_d, 0));
    int rc = Mat_VarWrite(m, ecg, z);
    Mat_VarFree(ecg);
    Mat_Close(m);
    return rc;
}

static void test_roundtrip(void) {
    for (int i = 0; i < 12 * T; i++) data_d[i] = (i % 12 + 1) * 0.001 * (i / 12) - 0.37 * (i % 5);
    const struct { const char *name; enum matio_classes cls; enum matio_compression z; int extra; } cases[] = {
        {"plain.mat", MAT_C_DOUBLE, MAT_COMPRESSION_NONE, 0},
        {"zlib.mat", MAT_C_DOUBLE, MAT_COMPRESSION_ZLIB, 0},
        {"single.mat", MAT_C_SINGLE, MAT_COMPRESSION_ZLIB, 0},
        {"two_vars.mat", MAT_C_DOUBLE, MAT_COMPRESSION_ZLIB, 1},
        {"two_vars_plain.mat", MAT_C_DOUBLE, MAT_COMPRESSION_NONE, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        CHECK(write_ecg(cases[k].name, cases[k].cls, cases[k].z, cases[k].extra) == 0, "libmatio writes %s", cases[k].name);
        mrm_record rec;
        mrm_error err = {0};
        mrm_status st = mrm_record_read(&rec, tp(cases[k].name), 0, &err);
        CHECK(st == MRM_OK, "%s: %s", cases[k].name, err.msg);
        if (st) continue;
        CHECK(rec.n_signals == 12 && rec.n_samples == T && rec.fs == 500.0, "%s: %d x %lld", cases[k].name, rec.n_signals,
              rec.n_samples);
        CHECK(rec.age == 63 && !strcmp(rec.sex, "Female"), "%s: age %d sex '%s'", cases[k].name, rec.age, rec.sex);
        CHECK(!strcmp(rec.format, "matlab-v5"), "%s: format %s", cases[k].name, rec.format);
        int same = 1;
        for (int s = 0; s < 12; s++)
            for (int t = 0; t < T; t++) {
                double want = cases[k].cls == MAT_C_SINGLE ? (double)(float)data_d[s + 12 * t] : data_d[s + 12 * t];
                same &= rec.data[s * T + t] == want;
            }
        CHECK(same, "%s: every sample equals what libmatio wrote", cases[k].name);
        mrm_record_free(&rec);
    }
}

/* The file buffer mutated in place and read from memory: must fail, naming the file. */
static void expect_mem_fail(const uint8_t *b, size_t n, const char *what, const char *needle) {
    mrm_record rec;
    mrm_error err = {0};
    mrm_status st = mat_read_cpsc_v5_mem(&rec, b, n, "bad.mat", 0, &err);
    CHECK(st != MRM_OK, "%s: read", what);
    CHECK(st == MRM_OK || strstr(err.msg, "bad.mat"), "%s: message names the file: %s", what, err.msg);
    if (needle) CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    if (!st) mrm_record_free(&rec);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void test_hostile(void) {
    size_t n_plain, n_z;
    uint8_t *plain = read_all(tp("plain.mat"), &n_plain), *z = read_all(tp("zlib.mat"), &n_z);
    if (!plain || !z) {
        CHECK(0, "the round-trip files are missing");
        free(plain);
        free(z);
        return;
    }
    /* Every prefix of both files: refused with a message (the whole file reads). */
    int bad = 0;
    for (size_t cut = 0; cut < n_z; cut += (cut < 300 ? 1 : 37)) {
        mrm_record rec;
        mrm_error err = {0};
        if (mat_read_cpsc_v5_mem(&rec, z, cut, "cut.mat", 0, &err) == MRM_OK || !strstr(err.msg, "cut.mat")) bad++;
        mrm_record_free(&rec);
    }
    for (size_t cut = 0; cut < n_plain; cut += 53) {
        mrm_record rec;
        mrm_error err = {0};
        if (mat_read_cpsc_v5_mem(&rec, plain, cut, "cut.mat", 0, &err) == MRM_OK || !strstr(err.msg, "cut.mat")) bad++;
        mrm_record_free(&rec);
    }
    CHECK(bad == 0, "%d prefixes read or failed without naming the file", bad);

    /* A truncated compressed stream whose tag is made to agree with the bytes left (libmatio
     * zero-filled the rest and read it as samples): refused as truncated. */
    uint8_t *c = malloc(n_z > n_plain ? n_z : n_plain);
    memcpy(c, z, n_z);
    size_t keep = (n_z - 136) / 2;
    put32(c + 132, (uint32_t)keep);
    expect_mem_fail(c, 136 + keep, "truncated stream", "truncated");

    /* A corrupt stream (bytes in the middle scrambled). */
    memcpy(c, z, n_z);
    for (size_t i = 200; i < 260 && i < n_z; i++) c[i] ^= 0x5a;
    expect_mem_fail(c, n_z, "corrupt stream", NULL);

    /* A compressed element that declares 4 GB inside (its tag inflated from a tiny stream). */
    uint8_t inner[8] = {14, 0, 0, 0, 0xf0, 0xff, 0xff, 0xff}, small[64], bomb[256];
    uLongf zn = sizeof small;
    compress(small, &zn, inner, sizeof inner);
    memcpy(bomb, z, 128);
    put32(bomb + 128, 15);
    put32(bomb + 132, (uint32_t)zn);
    memcpy(bomb + 136, small, zn);
    expect_mem_fail(bomb, 136 + zn, "declared 4 GB", "declares");

    /* Dimensions larger than the data: 12 x 2^30 declared over T columns of data. The dimensions
     * element of ECG.data is found by its value (12, T) in the plain file. */
    memcpy(c, plain, n_plain);
    size_t at = 0;
    for (size_t i = 128; i + 8 <= n_plain; i += 4)
        if (get32(c + i) == 12 && get32(c + i + 4) == T) at = i;
    CHECK(at > 0, "ECG.data dimensions found");
    if (at) {
        put32(c + at + 4, 1u << 30);
        expect_mem_fail(c, n_plain, "12 x 2^30 declared", "dimensions");
    }

    /* A struct that claims a million elements. */
    memcpy(c, plain, n_plain);
    at = 0;
    for (size_t i = 128; i + 8 <= n_plain && !at; i += 4)
        if (get32(c + i) == 1 && get32(c + i + 4) == 1 && get32(c + i - 4) == 8) at = i; /* ECG's 1 x 1 */
    CHECK(at > 0, "ECG dimensions found");
    if (at) {
        put32(c + at, 1000000);
        expect_mem_fail(c, n_plain, "struct of 1e6 elements", NULL);
    }
    free(c);

    /* Random one-byte changes of both files: read or refused, never a crash (ASan build). */
    uint32_t x = 12345;
    bad = 0;
    for (int it = 0; it < 2000; it++) {
        const uint8_t *src = it % 2 ? z : plain;
        size_t n = it % 2 ? n_z : n_plain;
        uint8_t *m = malloc(n);
        memcpy(m, src, n);
        for (int k = 0; k < 1 + it % 4; k++) {
            x = x * 1664525u + 1013904223u;
            size_t i = 128 + (x >> 8) % (it % 3 ? 400 : n - 128);
            if (i < n) m[i] = (uint8_t)(x >> 24);
        }
        mrm_record rec;
        mrm_error err = {0};
        mrm_status st = mat_read_cpsc_v5_mem(&rec, m, n, "mut.mat", 0, &err);
        if (st && !strstr(err.msg, "mut.mat")) bad++;
        if (!st && (rec.n_signals != 12 || rec.n_samples < 1)) bad++;
        mrm_record_free(&rec);
        free(m);
    }
    CHECK(bad == 0, "%d mutated files failed without naming the file or read impossible values", bad);
    free(plain);
    free(z);
}

/* The real CPSC2018 files in ../shared (the original release's .mat files) each read whole. */
static void test_shared(void) {
    const char *sh = test_shared_dir();
    if (!sh) {
        printf("../shared absent: the real CPSC2018 files are skipped\n");
        return;
    }
    char path[4096];
    int read_ok = 0;
    for (int i = 1; i < 7000; i++) {
        snprintf(path, sizeof path, "%s/data/cpsc2018/original_mat/A%04d.mat", sh, i);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fclose(f);
        mrm_record a;
        mrm_error err = {0};
        CHECK(mrm_record_read(&a, path, 0, &err) == MRM_OK, "%s: %s", path, err.msg);
        CHECK(a.n_signals == 12 && a.n_samples >= 3000 && a.age >= 0 && a.sex[0], "%s: %d x %lld, age %d, sex '%s'", path,
              a.n_signals, a.n_samples, a.age, a.sex);
        read_ok += a.data != NULL;
        mrm_record_free(&a);
    }
    printf("%d real CPSC2018 files read\n", read_ok);
    CHECK(read_ok > 0, "no CPSC2018 .mat file in %s/data/cpsc2018/original_mat", sh);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s", test_tmp_dir());
    test_roundtrip();
    test_hostile();
    test_shared();
    TEST_END();
}
