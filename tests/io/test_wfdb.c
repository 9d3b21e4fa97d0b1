/* WFDB and MATLAB record reading: header fields of real headers, checksums, sample values worked
 * out by hand from the raw bytes (xxd), header grammar variants, format helpers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/wfdb.h"
#include "mrmnet.h"
#include "test_util.h"

static char fixtures[2048];

static const char *fx(const char *rel) {
    static char p[8][4096];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof p[i], "%s/%s", fixtures, rel);
    return p[i];
}

static double at(const mrm_record *r, int s, long long t) { return r->data[(size_t)s * (size_t)r->n_samples + (size_t)t]; }

static void test_ptbxl_header(void) {
    char *text;
    size_t len;
    FILE *f = fopen(fx("ptb-xl/00001_lr.hea"), "rb");
    CHECK(f != NULL, "open 00001_lr.hea");
    if (!f) return;
    text = calloc(1, 4096);
    len = fread(text, 1, 4095, f);
    fclose(f);
    mrm_record rec;
    wfdb_header_extra extra;
    mrm_error err = {0};
    CHECK(wfdb_header_parse(text, len, "00001_lr.hea", &rec, &extra, &err) == MRM_OK, "parse: %s", err.msg);
    CHECK(!strcmp(rec.name, "00001_lr"), "name %s", rec.name);
    CHECK(rec.n_signals == 12, "n_signals %d", rec.n_signals);
    CHECK(rec.fs == 100.0, "fs %g", rec.fs);
    CHECK(rec.n_samples == 1000 && extra.n_samples_given, "n_samples %lld", rec.n_samples);
    if (rec.n_signals == 12) {
        const mrm_signal_info *s = &rec.signals[0];
        CHECK(!strcmp(s->file, "00001_lr.dat"), "file %s", s->file);
        CHECK(s->format == 16 && s->byte_offset == 0, "format %d+%lld", s->format, s->byte_offset);
        CHECK(s->gain == 1000.0 && s->baseline == 0 && !strcmp(s->units, "mV"), "gain %g(%d)/%s", s->gain, s->baseline, s->units);
        CHECK(s->adc_res == 16 && s->adc_zero == 0, "adc %d %d", s->adc_res, s->adc_zero);
        CHECK(s->init_value == -119 && s->has_init_value, "init %d", s->init_value);
        CHECK(s->checksum == 1508 && s->has_checksum, "checksum %d", s->checksum);
        CHECK(s->block_size == 0 && !strcmp(s->description, "I"), "block %d desc %s", s->block_size, s->description);
        CHECK(rec.signals[2].checksum == 64758 && !strcmp(rec.signals[3].description, "AVR"), "signal 3/4");
        CHECK(rec.signals[11].init_value == -79 && !strcmp(rec.signals[11].description, "V6"), "signal 12");
        CHECK(extra.signal_line[0] == 2 && extra.signal_line[11] == 13, "signal lines %d %d", extra.signal_line[0],
              extra.signal_line[11]);
    }
    CHECK(rec.data == NULL && rec.checks == NULL, "header parse reads no samples");
    mrm_record_free(&rec);
    wfdb_header_extra_free(&extra);
    free(text);
}

static void test_ptbxl_record(void) {
    mrm_record rec;
    mrm_error err = {0};
    /* The three ways to name a record give the same result. */
    const char *names[] = {"ptb-xl/00001_lr", "ptb-xl/00001_lr.hea"};
    for (int k = 0; k < 2; k++) {
        CHECK(mrm_record_read(&rec, fx(names[k]), MRM_READ_STRICT, &err) == MRM_OK, "%s: %s", names[k], err.msg);
        if (!rec.data) continue;
        CHECK(rec.n_samples == 1000 && rec.n_signals == 12, "shape");
        for (int s = 0; s < 12; s++) {
            CHECK(rec.checks[s].checksum_ok == 1, "signal %d checksum", s + 1);
            CHECK(rec.checks[s].init_value_ok == 1, "signal %d initial value", s + 1);
            CHECK(rec.checks[s].computed_checksum == (rec.signals[s].checksum & 0xffff), "signal %d computed checksum %d", s + 1,
                  rec.checks[s].computed_checksum);
        }
        /* Frame 500 at byte 12000: b5ff c5ff 1000 4300 ... adff */
        CHECK_CLOSE(at(&rec, 0, 500), -75 / 1000.0, 1e-12, "I[500] = 0xffb5 / 1000");
        CHECK_CLOSE(at(&rec, 1, 500), -59 / 1000.0, 1e-12, "II[500] = 0xffc5 / 1000");
        CHECK_CLOSE(at(&rec, 2, 500), 16 / 1000.0, 1e-12, "III[500] = 0x0010 / 1000");
        CHECK_CLOSE(at(&rec, 3, 500), 67 / 1000.0, 1e-12, "AVR[500] = 0x0043 / 1000");
        CHECK_CLOSE(at(&rec, 11, 500), -83 / 1000.0, 1e-12, "V6[500] = 0xffad / 1000");
        CHECK_CLOSE(at(&rec, 0, 0), -0.119, 1e-12, "I[0] = initial value / 1000");
        mrm_record_free(&rec);
    }
    CHECK(mrm_record_read(&rec, fx("ptb-xl/00001_hr"), MRM_READ_STRICT, &err) == MRM_OK, "00001_hr: %s", err.msg);
    CHECK(rec.n_samples == 5000 && rec.fs == 500.0, "00001_hr: %lld samples at %g Hz", rec.n_samples, rec.fs);
    mrm_record_free(&rec);

    CHECK(mrm_record_read(&rec, fx("ptb-xl/01000_lr"), MRM_READ_HEADER_ONLY, &err) == MRM_OK, "header only: %s", err.msg);
    CHECK(rec.data == NULL && rec.n_signals == 12 && rec.n_samples == 1000, "header only leaves data NULL");
    mrm_record_free(&rec);
}

static void test_mitdb(void) {
    mrm_record rec;
    mrm_error err = {0};
    CHECK(mrm_record_read(&rec, fx("mitdb/100s"), MRM_READ_STRICT, &err) == MRM_OK, "100s: %s", err.msg);
    if (!rec.data) return;
    CHECK(rec.n_signals == 2 && rec.fs == 360.0 && rec.n_samples == 21600, "100s: %d x %lld at %g", rec.n_signals,
          rec.n_samples, rec.fs);
    CHECK(rec.signals[0].format == 212 && rec.signals[0].gain == 200.0 && rec.signals[0].baseline == 1024,
          "format 212, gain 200, baseline = adc zero 1024");
    CHECK(rec.signals[0].units[0] == '\0', "no units given");
    CHECK(rec.checks[0].checksum_ok == 1 && rec.checks[1].checksum_ok == 1, "checksums 21537 and -3962 (signed) match");
    CHECK(rec.checks[1].computed_checksum == 65536 - 3962, "computed %d", rec.checks[1].computed_checksum);
    /* Bytes 3000..3005: b1 33 ca b1 33 cc -> frame 1000 = (0x3b1, 0x3ca), frame 1001 = (0x3b1, 0x3cc). */
    CHECK_CLOSE(at(&rec, 0, 1000), (945 - 1024) / 200.0, 1e-12, "MLII[1000]");
    CHECK_CLOSE(at(&rec, 1, 1000), (970 - 1024) / 200.0, 1e-12, "V5[1000]");
    CHECK_CLOSE(at(&rec, 0, 1001), (945 - 1024) / 200.0, 1e-12, "MLII[1001]");
    CHECK_CLOSE(at(&rec, 1, 1001), (972 - 1024) / 200.0, 1e-12, "V5[1001]");
    CHECK_CLOSE(at(&rec, 0, 0), (995 - 1024) / 200.0, 1e-12, "MLII[0]");
    CHECK(rec.n_comments == 3 && !strcmp(rec.comments[0], "69 M 1085 1629 x1"), "comments %d", rec.n_comments);
    mrm_record_free(&rec);
}

static void test_challenge2020(void) {
    mrm_record rec;
    mrm_error err = {0};
    /* Named by its .mat: the .hea beside it makes it a WFDB record (format 16 at byte 24). */
    CHECK(mrm_record_read(&rec, fx("challenge2020/A0002.mat"), MRM_READ_STRICT, &err) == MRM_OK, "A0002.mat: %s", err.msg);
    if (!rec.data) return;
    CHECK(rec.n_signals == 12 && rec.n_samples == 5000 && rec.fs == 500.0, "A0002 shape");
    CHECK(rec.signals[0].byte_offset == 24 && rec.signals[0].format == 16, "16+24");
    CHECK(rec.age == 49 && !strcmp(rec.sex, "Female") && !strcmp(rec.dx, "Normal"), "age %d sex %s dx %s", rec.age, rec.sex, rec.dx);
    CHECK(rec.n_comments == 6 && !strcmp(rec.comments[0], "Age: 49"), "comments");
    CHECK(!strcmp(rec.base_time, "11:39:16") && !strcmp(rec.base_date, "05-Feb-2020"), "base time/date: %s %s",
          rec.base_time, rec.base_date);
    CHECK(!strcmp(rec.signals[3].description, "aVR"), "aVR");
    /* Frame 100 at byte 24 + 2400: edff e3ff ... dbff */
    CHECK_CLOSE(at(&rec, 0, 100), -19 / 1000.0, 1e-12, "I[100]");
    CHECK_CLOSE(at(&rec, 1, 100), -29 / 1000.0, 1e-12, "II[100]");
    CHECK_CLOSE(at(&rec, 11, 100), -37 / 1000.0, 1e-12, "V6[100]");
    CHECK_CLOSE(at(&rec, 0, 0), -1 / 1000.0, 1e-12, "I[0] = initial value");
    for (int s = 0; s < 12; s++) CHECK(rec.checks[s].checksum_ok == 1, "A0002 signal %d checksum", s + 1);
    mrm_record_free(&rec);
}

static void test_cpsc_v5(void) {
    mrm_record rec;
    mrm_error err = {0};
    CHECK(mrm_record_read(&rec, fx("cpsc2018/A1980.mat"), 0, &err) == MRM_OK, "A1980.mat: %s", err.msg);
    if (!rec.data) return;
    CHECK(rec.n_signals == 12 && rec.n_samples == 5000 && rec.fs == 500.0, "A1980: %d x %lld", rec.n_signals, rec.n_samples);
    CHECK(!strcmp(rec.name, "A1980"), "name %s", rec.name);
    CHECK(rec.age == 52 && !strcmp(rec.sex, "Male"), "age %d sex '%s'", rec.age, rec.sex);
    CHECK(!strcmp(rec.signals[0].description, "I") && !strcmp(rec.signals[6].description, "V1") &&
              !strcmp(rec.signals[5].description, "aVF"), "lead names");
    CHECK(rec.signals[0].gain == 1.0 && !strcmp(rec.signals[0].units, "mV"), "gain 1, mV");
    CHECK(rec.checks[0].checksum_ok == -1 && rec.checks[0].init_value_ok == -1, "nothing to check");
    /* scipy.io.loadmat(...)['ECG'][0,0]['data'][:, 0] */
    CHECK_CLOSE(at(&rec, 0, 0), 0.20186721, 1e-7, "I[0]");
    CHECK_CLOSE(at(&rec, 7, 0), 1.11898662, 1e-7, "V2[0]");
    CHECK_CLOSE(at(&rec, 11, 0), 0.48406081, 1e-7, "V6[0]");
    mrm_record_free(&rec);
    /* By name without extension: no .hea, so the .mat. */
    CHECK(mrm_record_read(&rec, fx("cpsc2018/A1980"), 0, &err) == MRM_OK && rec.n_samples == 5000, "A1980 by name: %s", err.msg);
    mrm_record_free(&rec);
}

static void test_grammar(void) {
    const char *h = "# leading comment\r\n"
                    "rec-1 3 360/1000(5) 100 10:00:00 01/01/2000  \r\n"
                    "a.dat 16x1:0+16 200(-5)/uV 12 7 3 -100 0 chest lead V1\r\n"
                    "a.dat 16x1:0+16 0 \r\n"
                    "b.dat 212\r\n"
                    "# Age: 74\r\n"
                    "# sex: M\r\n"
                    "#Dx: 164889003,59118001\r\n";
    mrm_record rec;
    wfdb_header_extra extra;
    mrm_error err = {0};
    CHECK(wfdb_header_parse(h, strlen(h), "mem.hea", &rec, &extra, &err) == MRM_OK, "grammar: %s", err.msg);
    if (rec.n_signals != 3) return;
    CHECK(!strcmp(rec.name, "rec-1") && rec.fs == 360.0 && rec.n_samples == 100, "record line");
    CHECK(!strcmp(rec.base_time, "10:00:00") && !strcmp(rec.base_date, "01/01/2000"), "time/date");
    const mrm_signal_info *a = &rec.signals[0], *b = &rec.signals[1], *c = &rec.signals[2];
    CHECK(a->format == 16 && a->byte_offset == 16, "16x1:0+16");
    CHECK(a->gain == 200.0 && a->baseline == -5 && !strcmp(a->units, "uV"), "200(-5)/uV");
    CHECK(a->adc_res == 12 && a->adc_zero == 7 && a->init_value == 3 && a->checksum == -100, "numbers");
    CHECK(!strcmp(a->description, "chest lead V1"), "description with spaces: '%s'", a->description);
    CHECK(b->gain == 200.0 && b->baseline == 0 && !b->has_init_value && !b->has_checksum, "gain 0 -> 200 (WFDB default)");
    CHECK(c->format == 212 && c->gain == 200.0 && c->description[0] == '\0', "defaults");
    CHECK(rec.age == 74 && !strcmp(rec.sex, "M") && !strcmp(rec.dx, "164889003,59118001"), "comment fields");
    CHECK(rec.n_comments == 4 && !strcmp(rec.comments[0], "leading comment"), "comments %d", rec.n_comments);
    CHECK(extra.signal_line[2] == 5, "line of signal 3: %d", extra.signal_line[2]);
    mrm_record_free(&rec);
    wfdb_header_extra_free(&extra);

    /* Minimal record line: defaults 250 Hz, sample count derived later. */
    const char *h2 = "r 1\nr.dat 80 100(128) 8 128 128\n";
    CHECK(wfdb_header_parse(h2, strlen(h2), "m2.hea", &rec, &extra, &err) == MRM_OK, "minimal: %s", err.msg);
    CHECK(rec.fs == 250.0 && !extra.n_samples_given && rec.signals[0].baseline == 128, "minimal defaults");
    mrm_record_free(&rec);
    wfdb_header_extra_free(&extra);
}

static void test_format_helpers(void) {
    const int fmts[] = {8, 16, 24, 32, 61, 80, 160, 212, 310, 311};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        int bad = 0;
        for (long long n = 0; n < 40; n++)
            /* 310 stores 2 trailing values in a whole 4-byte group, which then reads as 3 */
            if (wfdb_format_values(fmts[i], wfdb_format_bytes(fmts[i], n)) != n + (fmts[i] == 310 && n % 3 == 2)) bad++;
        CHECK(!bad, "format %d: values(bytes(n)) != n for %d n", fmts[i], bad);
    }
    CHECK(wfdb_format_bytes(212, 3) == 5 && wfdb_format_bytes(310, 4) == 6 && wfdb_format_bytes(311, 5) == 7, "packed sizes");
    CHECK(wfdb_format_bytes(16, -1) < 0 && wfdb_format_bytes(32, 1LL << 62) < 0, "overflow refused");
    /* 212: e3 33 f3 -> 0x3e3, 0x3f3; 00 08 00 -> -2048 (invalid) and 0 */
    uint8_t b212[10] = {0xe3, 0x33, 0xf3, 0x00, 0x08, 0x00};
    int32_t out[8];
    wfdb_decode(212, b212, 2, 2, NULL, out);
    CHECK(out[0] == 995 && out[1] == 1011 && out[2] == -2048 && out[3] == 0, "212: %d %d %d %d", out[0], out[1], out[2], out[3]);
    /* 310: w0 = 0x0002 | (0x1f << 11) -> s0 = 1, s1 from w1 = 0x07fe -> 0x3ff = -1, s2 = 0x1f | (0 << 5) = 31 */
    uint8_t b310[8] = {0x02, 0xf8, 0xfe, 0x07};
    wfdb_decode(310, b310, 3, 1, NULL, out);
    CHECK(out[0] == 1 && out[1] == -1 && out[2] == 31, "310: %d %d %d", out[0], out[1], out[2]);
    /* 311: 0x3ff | 0x001 << 10 | 0x200 << 20 -> -1, 1, -512 */
    uint32_t w = 0x3ffu | 0x001u << 10 | 0x200u << 20;
    uint8_t b311[8] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16), (uint8_t)(w >> 24)};
    wfdb_decode(311, b311, 3, 1, NULL, out);
    CHECK(out[0] == -1 && out[1] == 1 && out[2] == -512, "311: %d %d %d", out[0], out[1], out[2]);
    /* 8: two signals, differences (+1, -1), (+127, -128) from 100 and -100 */
    uint8_t b8[8] = {0x01, 0xff, 0x7f, 0x80};
    int init[2] = {100, -100};
    wfdb_decode(8, b8, 2, 2, init, out);
    CHECK(out[0] == 101 && out[1] == -101 && out[2] == 228 && out[3] == -229, "8: %d %d %d %d", out[0], out[1], out[2], out[3]);
    /* 24, 32, 61, 80, 160 */
    uint8_t b24[8] = {0x00, 0x00, 0x80, 0xff, 0xff, 0x7f};
    wfdb_decode(24, b24, 1, 2, NULL, out);
    CHECK(out[0] == -8388608 && out[1] == 8388607, "24: %d %d", out[0], out[1]);
    uint8_t b32[8] = {0x00, 0x00, 0x00, 0x80, 0xfe, 0xff, 0xff, 0xff};
    wfdb_decode(32, b32, 1, 2, NULL, out);
    CHECK(out[0] == INT32_MIN && out[1] == -2, "32: %d %d", out[0], out[1]);
    uint8_t b61[8] = {0x80, 0x00, 0x01, 0x02};
    wfdb_decode(61, b61, 1, 2, NULL, out);
    CHECK(out[0] == -32768 && out[1] == 258, "61: %d %d", out[0], out[1]);
    uint8_t b80[8] = {0x00, 0xff};
    wfdb_decode(80, b80, 1, 2, NULL, out);
    CHECK(out[0] == -128 && out[1] == 127, "80: %d %d", out[0], out[1]);
    uint8_t b160[8] = {0x00, 0x00, 0x01, 0x80};
    wfdb_decode(160, b160, 1, 2, NULL, out);
    CHECK(out[0] == -32768 && out[1] == 1, "160: %d %d", out[0], out[1]);
}

int main(void) {
    const char *src = getenv("MRM_SOURCE_DIR");
    snprintf(fixtures, sizeof fixtures, "%s/tests/fixtures", src ? src : ".");
    test_ptbxl_header();
    test_ptbxl_record();
    test_mitdb();
    test_challenge2020();
    test_cpsc_v5();
    test_grammar();
    test_format_helpers();
    TEST_END();
}
