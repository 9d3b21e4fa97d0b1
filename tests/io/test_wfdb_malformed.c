/* Malformed records: each must fail with a clear message naming the file and the field at fault
 * (and, under ASan/UBSan, without a sanitizer report). Files are written in MRM_TMPDIR. */
#include <matio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/wfdb.h"
#include "mrmnet.h"
#include "test_util.h"

static char tmp[2048], fixtures[2048];

static const char *tp(const char *name) {
    static char p[8][4096];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof p[i], "%s/%s", tmp, name);
    return p[i];
}

static void write_bytes(const char *name, const void *data, size_t len) {
    FILE *f = fopen(tp(name), "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", tp(name));
        exit(1);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

static void write_text(const char *name, const char *text) { write_bytes(name, text, strlen(text)); }

/* A signal file of n bytes of a repeating pattern. */
static void write_dat(const char *name, size_t n) {
    unsigned char *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 7 + 1);
    write_bytes(name, b, n);
    free(b);
}

static char *read_all(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* Reading `name` (in tmp) must fail with `code` and a message holding each of the needles. */
static void expect_fail(const char *name, int flags, mrm_status code, const char *n1, const char *n2, const char *n3) {
    mrm_record rec;
    mrm_error err = {0};
    mrm_status st = mrm_record_read(&rec, tp(name), flags, &err);
    CHECK(st != MRM_OK, "%s: read should fail", name);
    CHECK(code == (mrm_status)-1 || st == code, "%s: status %d (%s), expected %d: %s", name, st, mrm_status_name(st), code, err.msg);
    CHECK(err.msg[0] != '\0', "%s: empty message", name);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i]) CHECK(strstr(err.msg, needles[i]) != NULL, "%s: message lacks '%s': %s", name, needles[i], err.msg);
    CHECK(rec.data == NULL && rec.signals == NULL && rec.n_signals == 0, "%s: record not left empty", name);
    mrm_record_free(&rec);
}

/* A one-signal header of the given record and signal lines over a 200-byte format-16 file. */
static void hdr(const char *name, const char *record_line, const char *signal_line) {
    char text[1024], dat[256], hea[256];
    snprintf(text, sizeof text, "%s\n%s\n", record_line, signal_line);
    snprintf(hea, sizeof hea, "%s.hea", name);
    write_text(hea, text);
    snprintf(dat, sizeof dat, "%s.dat", name);
    write_dat(dat, 200);
}

static void test_header_fields(void) {
    /* record line */
    hdr("h_nsig", "h_nsig twelve 100 100", "h_nsig.dat 16 200 16 0 0 0 0 I");
    expect_fail("h_nsig.hea", 0, MRM_ERR_FORMAT, "h_nsig.hea:1", "number of signals", "twelve");
    hdr("h_nsig_big", "h_nsig_big 1000000000 100 100", "h_nsig_big.dat 16");
    expect_fail("h_nsig_big.hea", 0, MRM_ERR_FORMAT, "h_nsig_big.hea:1", "number of signals", NULL);
    hdr("h_fs", "h_fs 1 abc 100", "h_fs.dat 16");
    expect_fail("h_fs.hea", 0, MRM_ERR_FORMAT, "h_fs.hea:1", "sampling frequency", "abc");
    hdr("h_fs0", "h_fs0 1 0 100", "h_fs0.dat 16");
    expect_fail("h_fs0.hea", 0, MRM_ERR_FORMAT, "h_fs0.hea:1", "sampling frequency", "positive");
    hdr("h_fsnan", "h_fsnan 1 nan 100", "h_fsnan.dat 16");
    expect_fail("h_fsnan.hea", 0, MRM_ERR_FORMAT, "sampling frequency", "nan", NULL);
    hdr("h_ns", "h_ns 1 100 -5", "h_ns.dat 16");
    expect_fail("h_ns.hea", 0, MRM_ERR_FORMAT, "h_ns.hea:1", "number of samples", "-5");
    hdr("h_ns2", "h_ns2 1 100 1e3", "h_ns2.dat 16");
    expect_fail("h_ns2.hea", 0, MRM_ERR_FORMAT, "number of samples", "1e3", NULL);
    hdr("h_ns3", "h_ns3 1 100 99999999999999999999", "h_ns3.dat 16");
    expect_fail("h_ns3.hea", 0, MRM_ERR_FORMAT, "number of samples", NULL, NULL);
    hdr("h_seg", "h_seg/2 1 100 100", "h_seg.dat 16");
    expect_fail("h_seg.hea", 0, MRM_ERR_UNSUPPORTED, "h_seg.hea:1", "multi-segment", NULL);
    hdr("h_many", "h_many 1 100 100 0:0:0 1/1/2000 extra", "h_many.dat 16");
    expect_fail("h_many.hea", 0, MRM_ERR_FORMAT, "h_many.hea:1", "7 fields", NULL);
    hdr("h_cf", "h_cf 1 100/x 100", "h_cf.dat 16");
    expect_fail("h_cf.hea", 0, MRM_ERR_FORMAT, "counter frequency", NULL, NULL);

    /* signal lines */
    hdr("s_fields", "s_fields 1 100 100", "s_fields.dat");
    expect_fail("s_fields.hea", 0, MRM_ERR_FORMAT, "s_fields.hea:2", "signal 1", "at least 2");
    hdr("s_fmt", "s_fmt 1 100 100", "s_fmt.dat 17 200");
    expect_fail("s_fmt.hea", 0, MRM_ERR_UNSUPPORTED, "s_fmt.hea:2", "format", "17");
    hdr("s_fmt2", "s_fmt2 1 100 100", "s_fmt2.dat abc 200");
    expect_fail("s_fmt2.hea", 0, MRM_ERR_FORMAT, "s_fmt2.hea:2", "format", "abc");
    hdr("s_spf", "s_spf 1 100 100", "s_spf.dat 16x2 200");
    expect_fail("s_spf.hea", 0, MRM_ERR_UNSUPPORTED, "s_spf.hea:2", "samples per frame", "2");
    hdr("s_skew", "s_skew 1 100 100", "s_skew.dat 16:3 200");
    expect_fail("s_skew.hea", 0, MRM_ERR_UNSUPPORTED, "s_skew.hea:2", "skew", NULL);
    hdr("s_off", "s_off 1 100 100", "s_off.dat 16+-4 200");
    expect_fail("s_off.hea", 0, MRM_ERR_FORMAT, "s_off.hea:2", "byte offset", NULL);
    hdr("s_gneg", "s_gneg 1 100 100", "s_gneg.dat 16 -200/mV 16 0 0 0 0 I");
    expect_fail("s_gneg.hea", 0, MRM_ERR_FORMAT, "s_gneg.hea:2", "gain", "negative");
    hdr("s_gnum", "s_gnum 1 100 100", "s_gnum.dat 16 big/mV");
    expect_fail("s_gnum.hea", 0, MRM_ERR_FORMAT, "s_gnum.hea:2", "gain", "big");
    hdr("s_base", "s_base 1 100 100", "s_base.dat 16 200(x)/mV");
    expect_fail("s_base.hea", 0, MRM_ERR_FORMAT, "s_base.hea:2", "baseline", NULL);
    hdr("s_base2", "s_base2 1 100 100", "s_base2.dat 16 200(5/mV");
    expect_fail("s_base2.hea", 0, MRM_ERR_FORMAT, "s_base2.hea:2", "baseline", NULL);
    hdr("s_res", "s_res 1 100 100", "s_res.dat 16 200 99");
    expect_fail("s_res.hea", 0, MRM_ERR_FORMAT, "s_res.hea:2", "ADC resolution", "99");
    hdr("s_zero", "s_zero 1 100 100", "s_zero.dat 16 200 16 1.5");
    expect_fail("s_zero.hea", 0, MRM_ERR_FORMAT, "s_zero.hea:2", "ADC zero", "1.5");
    hdr("s_init", "s_init 1 100 100", "s_init.dat 16 200 16 0 abc");
    expect_fail("s_init.hea", 0, MRM_ERR_FORMAT, "s_init.hea:2", "initial value", "abc");
    hdr("s_sum", "s_sum 1 100 100", "s_sum.dat 16 200 16 0 0 9x");
    expect_fail("s_sum.hea", 0, MRM_ERR_FORMAT, "s_sum.hea:2", "checksum", "9x");
    hdr("s_blk", "s_blk 1 100 100", "s_blk.dat 16 200 16 0 0 0 -1");
    expect_fail("s_blk.hea", 0, MRM_ERR_FORMAT, "s_blk.hea:2", "block size", "-1");
    hdr("s_units", "s_units 1 100 100", "s_units.dat 16 200/abcdefghijklmnopqrstuvwxyzabcdefghijkl");
    expect_fail("s_units.hea", 0, MRM_ERR_FORMAT, "s_units.hea:2", "units", NULL);

    /* Gain 0: WFDB's "uncalibrated", read with the default gain of 200 (not an error). */
    hdr("s_g0", "s_g0 1 100 100", "s_g0.dat 16 0/mV 16 0");
    mrm_record rec;
    mrm_error err = {0};
    CHECK(mrm_record_read(&rec, tp("s_g0"), 0, &err) == MRM_OK, "gain 0: %s", err.msg);
    CHECK(rec.signals && rec.signals[0].gain == 200.0, "gain 0 reads as 200");
    mrm_record_free(&rec);

    /* counts of lines */
    write_text("few.hea", "few 3 100 10\nfew.dat 16\nfew.dat 16\n");
    write_dat("few.dat", 100);
    expect_fail("few.hea", 0, MRM_ERR_FORMAT, "few.hea", "too few signal lines", "3");
    write_text("few2.hea", "few2 3 100 10\nfew2.dat 16\n# a\n# b\n");
    expect_fail("few2.hea", 0, MRM_ERR_FORMAT, "few2.hea", "too few signal lines", NULL);
    write_text("extra.hea", "extra 1 100 10\nextra.dat 16\nextra.dat 16\n");
    write_dat("extra.dat", 100);
    expect_fail("extra.hea", 0, MRM_ERR_FORMAT, "extra.hea:3", "unexpected line", NULL);
    write_text("mixed.hea", "mixed 2 100 10\nmixed.dat 16\nmixed.dat 212\n");
    write_dat("mixed.dat", 100);
    expect_fail("mixed.hea", 0, MRM_ERR_FORMAT, "mixed.hea:3", "format", "same file");
    write_text("empty.hea", "");
    expect_fail("empty.hea", 0, MRM_ERR_FORMAT, "empty.hea", "no record line", NULL);
    write_text("comments.hea", "# only\n#comments\n\n  \r\n");
    expect_fail("comments.hea", 0, MRM_ERR_FORMAT, "comments.hea", "no record line", NULL);
    write_bytes("nul.hea", "nul 1 100 10\nnul.dat 16\0\n", 24);
    expect_fail("nul.hea", 0, MRM_ERR_FORMAT, "nul.hea:2", "0x00", NULL);
    char longline[6000];
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    write_text("long.hea", longline);
    expect_fail("long.hea", 0, MRM_ERR_FORMAT, "long.hea:1", "longer", NULL);
}

static void test_signal_files(void) {
    /* truncated: 12 x 1000 format 16 needs 24000 bytes */
    size_t len;
    char path[4096];
    snprintf(path, sizeof path, "%s/ptb-xl/00001_lr.hea", fixtures);
    char *h = read_all(path, &len);
    CHECK(h != NULL, "fixture header");
    if (!h) return;
    /* rename the signal file in the header: 00001_lr.dat -> trunc.dat */
    char text[8192];
    size_t m = 0;
    for (size_t i = 0; i < len && m < sizeof text - 16; i++) {
        if (!strncmp(h + i, "00001_lr.dat", 12)) {
            memcpy(text + m, "trunc.dat", 9), m += 9, i += 11;
        } else if (!strncmp(h + i, "00001_lr", 8)) {
            memcpy(text + m, "trunc", 5), m += 5, i += 7;
        } else {
            text[m++] = h[i];
        }
    }
    text[m] = '\0';
    free(h);
    write_text("trunc.hea", text);
    write_dat("trunc.dat", 23999);
    expect_fail("trunc.hea", 0, MRM_ERR_FORMAT, "trunc.hea:2", "truncated", "24000");
    expect_fail("trunc", 0, MRM_ERR_FORMAT, "trunc.dat", "23999", NULL);

    /* a header claiming 2^40 samples over a 200-byte file */
    write_dat("huge.dat", 200);
    write_text("huge.hea", "huge 2 100 1099511627776\nhuge.dat 16\nhuge.dat 16\n");
    expect_fail("huge.hea", 0, MRM_ERR_FORMAT, "huge.hea:2", "truncated", "4398046511104");
    /* same with 212 and several files: the second file is short */
    write_text("two.hea", "two 2 100 100\ntwo_a.dat 212\ntwo_b.dat 212\n");
    write_dat("two_a.dat", 150);
    write_dat("two_b.dat", 149);
    expect_fail("two.hea", 0, MRM_ERR_FORMAT, "two.hea:3", "two_b.dat", "150");
    /* missing signal file */
    write_text("missing.hea", "missing 1 100 100\nmissing_signal.dat 16 200\n");
    expect_fail("missing.hea", 0, MRM_ERR_NOTFOUND, "missing.hea:2", "missing_signal.dat", "not found");
    /* byte offset beyond the end of a file, no sample count */
    write_text("offs.hea", "offs 1 100\noffs.dat 16+1000 200\n");
    write_dat("offs.dat", 10);
    expect_fail("offs.hea", 0, MRM_ERR_FORMAT, "offs.hea:2", "byte offset", NULL);
    /* missing record */
    expect_fail("no_such_record", 0, MRM_ERR_NOTFOUND, "no_such_record", NULL, NULL);
    /* checksum mismatch: fine without --strict, MRM_ERR_CHECK with it */
    write_text("csum.hea", "csum 1 100 4\ncsum.dat 16 200 16 0 1 1234 0 II\n");
    unsigned char d[8] = {1, 0, 2, 0, 3, 0, 4, 0}; /* 1+2+3+4 = 10 */
    write_bytes("csum.dat", d, 8);
    mrm_record rec;
    mrm_error err = {0};
    CHECK(mrm_record_read(&rec, tp("csum"), 0, &err) == MRM_OK, "csum: %s", err.msg);
    CHECK(rec.checks && rec.checks[0].checksum_ok == 0 && rec.checks[0].computed_checksum == 10 && rec.checks[0].init_value_ok == 1,
          "checksum mismatch recorded");
    mrm_record_free(&rec);
    expect_fail("csum", MRM_READ_STRICT, MRM_ERR_CHECK, "csum.hea:2", "checksum", "1234");
    write_text("init.hea", "init 1 100 4\ninit.dat 16 200 16 0 7 10 0 II\n");
    write_bytes("init.dat", d, 8);
    expect_fail("init", MRM_READ_STRICT, MRM_ERR_CHECK, "init.hea:2", "initial value", "7");
}

static void test_matlab(void) {
    char path[4096];
    size_t len;
    /* Challenge 2020 v4 signal file whose matrix disagrees with the header */
    snprintf(path, sizeof path, "%s/challenge2020/A0002.mat", fixtures);
    char *mat = read_all(path, &len);
    CHECK(mat != NULL && len == 120024, "A0002.mat fixture");
    if (!mat) return;
    write_bytes("v4.mat", mat, len);
    write_text("v4.hea", "v4 11 500 5000\nv4.mat 16+24 1000/mV\nv4.mat 16+24\nv4.mat 16+24\nv4.mat 16+24\nv4.mat 16+24\n"
                         "v4.mat 16+24\nv4.mat 16+24\nv4.mat 16+24\nv4.mat 16+24\nv4.mat 16+24\nv4.mat 16+24\n");
    expect_fail("v4.mat", 0, MRM_ERR_FORMAT, "v4.mat", "12 rows", "11 signals");
    write_text("v4off.hea", "v4off 1 500 5000\nv4off.mat 16+20 1000/mV\n");
    write_bytes("v4off.mat", mat, len);
    expect_fail("v4off.hea", 0, MRM_ERR_FORMAT, "v4off.mat", "byte 24", "+20");
    write_bytes("v4short.mat", mat, len - 2);
    char h12[2048] = "v4short 12 500 5000\n";
    for (int i = 0; i < 12; i++) strcat(h12, "v4short.mat 16+24 1000/mV\n");
    write_text("v4short.hea", h12);
    expect_fail("v4short.hea", 0, MRM_ERR_FORMAT, "v4short.mat", "truncated", "120024");
    free(mat);

    /* random bytes as a .mat without header, and as a header */
    unsigned char rnd[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof rnd; i++) x = x * 1664525u + 1013904223u, rnd[i] = (unsigned char)(x >> 24);
    write_bytes("random.mat", rnd, sizeof rnd);
    expect_fail("random.mat", 0, MRM_ERR_FORMAT, "random.mat", "MATLAB", NULL);
    write_bytes("randhdr.hea", rnd, sizeof rnd);
    expect_fail("randhdr.hea", 0, MRM_ERR_FORMAT, "randhdr.hea", "0x", NULL);
    write_bytes("tiny.mat", "MATLAB", 6);
    expect_fail("tiny.mat", 0, MRM_ERR_FORMAT, "tiny.mat", "too short", NULL);
    /* a MATLAB v5 header followed by garbage */
    unsigned char fake[1024];
    memcpy(fake, rnd, sizeof fake);
    memset(fake, ' ', 116);
    memcpy(fake, "MATLAB 5.0 MAT-file", 19);
    fake[124] = 0x00, fake[125] = 0x01, fake[126] = 'I', fake[127] = 'M';
    write_bytes("garbage.mat", fake, sizeof fake);
    expect_fail("garbage.mat", 0, (mrm_status)-1, "garbage.mat", NULL, NULL);
    /* a truncated CPSC2018 v5 file */
    snprintf(path, sizeof path, "%s/cpsc2018/A1980.mat", fixtures);
    mat = read_all(path, &len);
    CHECK(mat != NULL, "A1980.mat fixture");
    if (mat) {
        write_bytes("cut.mat", mat, len / 2);
        expect_fail("cut.mat", 0, MRM_ERR_FORMAT, "cut.mat", NULL, NULL);
        free(mat);
    }
    /* valid MATLAB v5 files that are not CPSC2018 records */
    mat_t *m = Mat_CreateVer(tp("noecg.mat"), NULL, MAT_FT_MAT5);
    CHECK(m != NULL, "create noecg.mat");
    if (m) {
        size_t dims[2] = {2, 2};
        double v[4] = {1, 2, 3, 4};
        matvar_t *var = Mat_VarCreate("x", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, v, 0);
        Mat_VarWrite(m, var, MAT_COMPRESSION_NONE);
        Mat_VarFree(var);
        Mat_Close(m);
        expect_fail("noecg.mat", 0, MRM_ERR_FORMAT, "noecg.mat", "ECG", NULL);
    }
    m = Mat_CreateVer(tp("ecg3.mat"), NULL, MAT_FT_MAT5);
    if (m) {
        size_t sdims[2] = {1, 1}, ddims[2] = {3, 4};
        double v[12] = {0};
        const char *fields[1] = {"data"};
        matvar_t *ecg = Mat_VarCreateStruct("ECG", 2, sdims, fields, 1);
        Mat_VarSetStructFieldByName(ecg, "data", 0, Mat_VarCreate("data", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, ddims, v, 0));
        Mat_VarWrite(m, ecg, MAT_COMPRESSION_ZLIB);
        Mat_VarFree(ecg);
        Mat_Close(m);
        expect_fail("ecg3.mat", 0, MRM_ERR_FORMAT, "ecg3.mat", "ECG.data", "3 x 4");
    }
}

/* Every prefix and many one-byte corruptions of real headers go through the parser without a
 * crash or sanitizer report; each either parses or fails with a message naming the file. */
static void test_mutations(void) {
    const char *files[] = {"ptb-xl/00001_lr.hea", "mitdb/100s.hea", "challenge2020/A0002.hea"};
    int bad = 0, parsed = 0, failed = 0;
    uint32_t x = 777;
    for (int fi = 0; fi < 3; fi++) {
        char path[4096];
        size_t len;
        snprintf(path, sizeof path, "%s/%s", fixtures, files[fi]);
        char *h = read_all(path, &len);
        if (!h) continue;
        for (size_t cut = 0; cut <= len; cut++) {
            mrm_record rec;
            wfdb_header_extra extra;
            mrm_error err = {0};
            mrm_status st = wfdb_header_parse(h, cut, "cut.hea", &rec, &extra, &err);
            if (st && !strstr(err.msg, "cut.hea")) bad++;
            st ? failed++ : parsed++;
            mrm_record_free(&rec);
            wfdb_header_extra_free(&extra);
        }
        const char pokes[] = {'0', '9', '-', '(', ')', '/', '+', 'x', ':', ' ', '\n', '#', '\xff', '.', 'e'};
        for (int it = 0; it < 3000; it++) {
            char *c = malloc(len);
            memcpy(c, h, len);
            for (int k = 0; k < 1 + it % 3; k++) {
                x = x * 1664525u + 1013904223u;
                c[(x >> 8) % len] = pokes[(x >> 20) % sizeof pokes];
            }
            mrm_record rec;
            wfdb_header_extra extra;
            mrm_error err = {0};
            mrm_status st = wfdb_header_parse(c, len, "mut.hea", &rec, &extra, &err);
            if (st && !strstr(err.msg, "mut.hea")) bad++;
            if (!st && (rec.n_signals < 0 || rec.fs <= 0 || rec.n_samples < 0)) bad++;
            st ? failed++ : parsed++;
            mrm_record_free(&rec);
            wfdb_header_extra_free(&extra);
            free(c);
        }
        free(h);
    }
    CHECK(bad == 0, "%d parses failed without naming the file or gave impossible values", bad);
    CHECK(parsed > 100 && failed > 100, "mutations: %d parsed, %d failed", parsed, failed);

    /* Whole reads through mutated headers over real signal files (formats, offsets, counts, gains
     * all get scrambled): each read succeeds with a complete record or fails naming a file. */
    const char *recs[] = {"mitdb/100s", "ptb-xl/00001_lr"};
    int reads_ok = 0, reads_failed = 0;
    bad = 0;
    for (int ri = 0; ri < 2; ri++) {
        char path[4096], name[64];
        size_t len = 0, dlen = 0;
        snprintf(path, sizeof path, "%s/%s.dat", fixtures, recs[ri]);
        char *dat = read_all(path, &dlen);
        snprintf(path, sizeof path, "%s/%s.hea", fixtures, recs[ri]);
        char *h = read_all(path, &len);
        if (!dat || !h) {
            bad++;
            free(dat);
            free(h);
            continue;
        }
        snprintf(name, sizeof name, "%s.dat", strrchr(recs[ri], '/') + 1);
        write_bytes(name, dat, dlen);
        const char pokes[] = {'0', '1', '2', '9', '-', '+', '8', ' ', '(', '/', 'x'};
        for (int it = 0; it < 400; it++) {
            char *c = malloc(len);
            memcpy(c, h, len);
            x = x * 1664525u + 1013904223u;
            c[(x >> 8) % len] = pokes[(x >> 20) % sizeof pokes];
            write_bytes("mutrec.hea", c, len);
            free(c);
            mrm_record rec;
            mrm_error err = {0};
            if (mrm_record_read(&rec, tp("mutrec.hea"), 0, &err) == MRM_OK) {
                reads_ok++;
                if (!rec.data || !rec.checks || rec.n_samples < 0) bad++;
                for (long long t = 0; rec.data && t < rec.n_samples * rec.n_signals; t++)
                    if (isinf(rec.data[t])) bad++;
            } else {
                reads_failed++;
                if (!strstr(err.msg, "mutrec.hea")) bad++, fprintf(stderr, "no file named: %s\n", err.msg);
            }
            mrm_record_free(&rec);
        }
        free(dat);
        free(h);
    }
    CHECK(bad == 0, "%d mutated reads misbehaved", bad);
    CHECK(reads_ok > 50 && reads_failed > 50, "mutated reads: %d ok, %d failed", reads_ok, reads_failed);
}

int main(void) {
    const char *src = getenv("MRM_SOURCE_DIR");
    snprintf(fixtures, sizeof fixtures, "%s/tests/fixtures", src ? src : ".");
    snprintf(tmp, sizeof tmp, "%s", test_tmp_dir());
    test_header_fields();
    test_signal_files();
    test_matlab();
    test_mutations();
    TEST_END();
}
