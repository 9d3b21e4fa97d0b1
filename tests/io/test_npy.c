/* .npy writer and reader: exact header bytes as numpy 1.24 writes them, round trips, files written
 * by numpy itself (when /usr/bin/python3 has numpy), and malformed files rejected with clear errors. */
#include <stdint.h>
#include <unistd.h>

#include "mrmnet.h"
#include "test_util.h"

static char tmpdir[4096];

static size_t slurp(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, n, f);
    fclose(f);
}

/* The header numpy 1.24 writes for a '<f4' C-order array (taken from np.save output). */
static void expected_header(char *out, const char *shape_text) {
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape_text);
    memcpy(out, "\x93NUMPY\x01\x00v\x00", 10); /* header length 118 = 0x76 'v' */
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', 127 - 10 - (size_t)n);
    out[127] = '\n';
}

static void test_header_bytes(void) {
    struct { int ndim; long long shape[3]; const char *text; } cases[] = {
        {2, {2, 3}, "(2, 3)"}, {1, {5}, "(5,)"}, {0, {0}, "()"}, {3, {4, 12, 1000}, "(4, 12, 1000)"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        long long count = 1;
        for (int i = 0; i < cases[c].ndim; i++) count *= cases[c].shape[i];
        float *v = malloc((size_t)count * sizeof(float));
        for (long long i = 0; i < count; i++) v[i] = (float)i * 0.5f - 3.25f;
        char path[4200];
        snprintf(path, sizeof path, "%s/h%zu.npy", tmpdir, c);
        mrm_error err = {0};
        CHECK(mrm_npy_write_f32(path, v, cases[c].ndim, cases[c].shape, &err) == MRM_OK, "write: %s", err.msg);
        static unsigned char got[1 << 20];
        size_t n = slurp(path, got, sizeof got);
        char want[128];
        expected_header(want, cases[c].text);
        CHECK(n == 128 + (size_t)count * 4, "case %zu: size %zu", c, n);
        CHECK(n >= 128 && memcmp(got, want, 128) == 0, "case %zu: header differs from numpy's: %.118s", c, got + 10);
        CHECK(n >= 128 + (size_t)count * 4 && memcmp(got + 128, v, (size_t)count * 4) == 0, "case %zu: payload", c);
        float *r = NULL;
        int nd = -1;
        long long sh[4];
        CHECK(mrm_npy_read_f32(path, &r, &nd, sh, &err) == MRM_OK, "read: %s", err.msg);
        CHECK(nd == cases[c].ndim, "ndim %d", nd);
        for (int i = 0; i < nd && i < 3; i++) CHECK(sh[i] == cases[c].shape[i], "dim %d: %lld", i, sh[i]);
        CHECK(r && memcmp(r, v, (size_t)count * 4) == 0, "case %zu: values differ", c);
        free(r);
        free(v);
    }
}

/* numpy writes, we read; we write, numpy reads and checks. Skipped without numpy. */
static void test_with_numpy(void) {
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        printf("numpy absent: numpy cross-check skipped\n");
        return;
    }
    char cmd[9000], path[4200], path2[4200];
    snprintf(path, sizeof path, "%s/np_written.npy", tmpdir);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np; a=(np.arange(2*3*7,dtype=np.float64).reshape(2,3,7)/7-1)"
             ".astype('<f4'); a[1,2,6]=np.nan; np.save('%s', a)\"", path);
    CHECK(system(cmd) == 0, "numpy save failed");
    float *r = NULL;
    int nd;
    long long sh[4];
    mrm_error err = {0};
    CHECK(mrm_npy_read_f32(path, &r, &nd, sh, &err) == MRM_OK, "read numpy file: %s", err.msg);
    CHECK(nd == 3 && sh[0] == 2 && sh[1] == 3 && sh[2] == 7, "shape");
    int bad = 0;
    for (int i = 0; r && i < 41; i++) bad += r[i] != (float)((double)i / 7 - 1);
    CHECK(r && bad == 0, "%d values differ", bad);
    CHECK(r && isnan(r[41]), "NaN kept");
    free(r);

    snprintf(path2, sizeof path2, "%s/ours.npy", tmpdir);
    float v[24];
    for (int i = 0; i < 24; i++) v[i] = (float)i * 1.5f - 7.0f;
    long long shape[4] = {1, 2, 3, 4};
    CHECK(mrm_npy_write_f32(path2, v, 4, shape, &err) == MRM_OK, "write: %s", err.msg);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np, sys; a=np.load('%s'); "
             "sys.exit(0 if a.shape==(1,2,3,4) and a.dtype==np.float32 and a.flags.c_contiguous and "
             "(a.ravel()==np.arange(24,dtype=np.float32)*1.5-7).all() else 1)\"", path2);
    CHECK(system(cmd) == 0, "numpy does not read our file back exactly");
}

/* Writes `hdr_dict` as a version-1.0 header followed by `data_bytes` zero bytes. */
static void write_npy_raw(const char *path, const char *hdr_dict, size_t data_bytes) {
    size_t n = strlen(hdr_dict);
    size_t total = 10 + n + 1;
    total = (total + 63) / 64 * 64;
    unsigned char *b = calloc(total + data_bytes, 1);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)((total - 10) & 0xff);
    b[9] = (unsigned char)((total - 10) >> 8);
    memcpy(b + 10, hdr_dict, n);
    memset(b + 10 + n, ' ', total - 11 - n);
    b[total - 1] = '\n';
    spit(path, b, total + data_bytes);
    free(b);
}

static void expect_error(const char *path, const char *needle, const char *what) {
    float *r = (float *)1;
    int nd = 9;
    long long sh[4];
    mrm_error err = {0};
    mrm_status st = mrm_npy_read_f32(path, &r, &nd, sh, &err);
    CHECK(st != MRM_OK, "%s: accepted", what);
    CHECK(r == NULL, "%s: data not NULL on error", what);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    CHECK(strstr(err.msg, path) != NULL, "%s: message '%s' does not name the file", what, err.msg);
    /* the mapped reader refuses it the same way, before mapping anything */
    mrm_npy_map m;
    mrm_error merr = {0};
    st = mrm_npy_map_f32(path, &m, &merr);
    CHECK(st != MRM_OK, "%s: mapped", what);
    CHECK(m.data == NULL && m.count == 0, "%s: map not cleared on error", what);
    CHECK(!strcmp(merr.msg, err.msg), "%s: map message '%s', read message '%s'", what, merr.msg, err.msg);
}

/* A mapped array gives the values the reader gives; the data at an offset that is not a multiple
 * of 4 (another writer's header) are read into memory instead. */
static void test_map(void) {
    char p[4200];
    snprintf(p, sizeof p, "%s/map.npy", tmpdir);
    enum { N = 5000 };
    static float v[N];
    for (int i = 0; i < N; i++) v[i] = (float)i * 0.25f - 7.0f;
    long long sh[3] = {5, 10, 100};
    mrm_error err = {0};
    CHECK(mrm_npy_write_f32(p, v, 3, sh, &err) == MRM_OK, "write: %s", err.msg);
    mrm_npy_map m;
    CHECK(mrm_npy_map_f32(p, &m, &err) == MRM_OK, "map: %s", err.msg);
    CHECK(m.ndim == 3 && m.shape[0] == 5 && m.shape[1] == 10 && m.shape[2] == 100 && m.count == N, "map shape");
    CHECK(m.data && !memcmp(m.data, v, sizeof v), "mapped values differ");
    CHECK(m.data && ((uintptr_t)m.data % 64) == 0, "mapped data not 64-byte aligned");
    mrm_npy_map_advise(&m, MRM_NPY_SEQUENTIAL, 0, 0);
    mrm_npy_map_advise(&m, MRM_NPY_DONTNEED, 1000, 2000);
    mrm_npy_map_advise(&m, MRM_NPY_DONTNEED, 4990, 100000); /* clamped */
    mrm_npy_map_advise(&m, MRM_NPY_NORMAL, N + 5, 1);        /* beyond: nothing */
    CHECK(m.data && !memcmp(m.data, v, sizeof v), "values after DONTNEED differ (read again from the file)");
    mrm_npy_unmap(&m);
    CHECK(m.data == NULL, "unmap clears");

    /* hand-made header of 55 bytes: the data start at byte 65 */
    unsigned char b[65 + 12];
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}";
    size_t dl = strlen(dict); /* 55 */
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)dl, b[9] = 0;
    memcpy(b + 10, dict, dl);
    memcpy(b + 10 + dl, v, 12);
    spit(p, b, 10 + dl + 12);
    CHECK(mrm_npy_map_f32(p, &m, &err) == MRM_OK, "unaligned: %s", err.msg);
    CHECK(m.count == 3 && m.data && !memcmp(m.data, v, 12) && ((uintptr_t)m.data % 4) == 0, "unaligned values");
    mrm_npy_unmap(&m);
    /* an empty array maps to no data */
    long long z[3] = {0, 12, 1000};
    CHECK(mrm_npy_write_f32(p, v, 3, z, &err) == MRM_OK, "write empty: %s", err.msg);
    CHECK(mrm_npy_map_f32(p, &m, &err) == MRM_OK && m.count == 0 && m.shape[0] == 0 && m.shape[2] == 1000, "empty: %s", err.msg);
    mrm_npy_unmap(&m);
}

static void test_malformed(void) {
    char p[4200];
    snprintf(p, sizeof p, "%s/bad.npy", tmpdir);
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

    write_npy_raw(p, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
    expect_error(p, "fortran_order", "fortran order");
    write_npy_raw(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48);
    expect_error(p, "<f8", "float64");
    write_npy_raw(p, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_error(p, ">f4", "big-endian");
    write_npy_raw(p, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }", 48);
    expect_error(p, "<i8", "int64");
    write_npy_raw(p, ok, 20);
    expect_error(p, "shape needs 24 data bytes", "truncated data");
    write_npy_raw(p, ok, 28);
    expect_error(p, "shape needs 24 data bytes", "trailing data");
    write_npy_raw(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999), }", 0);
    expect_error(p, "absurd", "absurd shape");
    write_npy_raw(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", 4);
    expect_error(p, "more than 4 dimensions", "5-d");
    write_npy_raw(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 0);
    expect_error(p, "bad dimension", "negative dim");
    write_npy_raw(p, "{'descr': '<f4', 'fortran_order': False}", 0);
    expect_error(p, "shape", "no shape");
    write_npy_raw(p, "{'fortran_order': False, 'shape': (2,)}", 8);
    expect_error(p, "descr", "no descr");

    unsigned char b[200];
    memset(b, 'x', sizeof b);
    spit(p, b, sizeof b);
    expect_error(p, "bad magic", "random bytes");
    spit(p, "\x93NUM", 4);
    expect_error(p, "too short", "4 bytes");
    spit(p, "", 0);
    expect_error(p, "too short", "empty");
    /* header length pointing beyond the end of the file */
    memcpy(b, "\x93NUMPY\x01\x00\xff\xff", 10);
    spit(p, b, 100);
    expect_error(p, "beyond the file", "header length");
    memcpy(b, "\x93NUMPY\x07\x00\x10\x00", 10);
    spit(p, b, 100);
    expect_error(p, "version 7.0", "version");
    snprintf(p, sizeof p, "%s/does-not-exist.npy", tmpdir);
    expect_error(p, "cannot open", "missing file");

    /* a pseudo-random fuzz of a valid file: must never crash, any result is fine */
    float v[6] = {1, 2, 3, 4, 5, 6};
    long long sh[2] = {2, 3};
    snprintf(p, sizeof p, "%s/fuzz.npy", tmpdir);
    mrm_npy_write_f32(p, v, 2, sh, NULL);
    unsigned char orig[256];
    size_t n = slurp(p, orig, sizeof orig);
    uint32_t s = 12345;
    for (int it = 0; it < 2000; it++) {
        unsigned char m[256];
        memcpy(m, orig, n);
        for (int k = 0; k < 3; k++) {
            s = s * 1664525u + 1013904223u;
            m[(s >> 8) % n] = (unsigned char)(s >> 24);
        }
        s = s * 1664525u + 1013904223u;
        size_t len = (s >> 28) == 0 ? (s >> 8) % n : n; /* sometimes truncate */
        spit(p, m, len);
        float *r = NULL;
        int nd;
        long long shp[4];
        mrm_status st = mrm_npy_read_f32(p, &r, &nd, shp, NULL);
        if (st == MRM_OK) {
            long long c = 1;
            for (int i = 0; i < nd; i++) c *= shp[i];
            CHECK(c * 4 <= (long long)len, "fuzz: accepted shape larger than the file");
        }
        mrm_npy_map mp;
        mrm_status ms = mrm_npy_map_f32(p, &mp, NULL);
        CHECK(ms == st, "fuzz: map %d, read %d", ms, st);
        if (ms == MRM_OK && st == MRM_OK)
            CHECK(mp.count == 0 || !memcmp(mp.data, r, mp.count * sizeof(float)), "fuzz: mapped values differ");
        mrm_npy_unmap(&mp);
        free(r);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s", test_tmp_dir());
    test_header_bytes();
    test_with_numpy();
    test_malformed();
    test_map();
    TEST_END();
}
