/* DICOM ECG waveform reader: the committed fixtures (explicit VR with defined lengths; implicit VR
 * with undefined-length sequences and items) and the shared sample against pydicom's
 * waveform_array (sensitivity, correction factor and baseline applied); malformed variants
 * (truncated, wrong counts, oversized lengths, unsupported encodings, deep nesting) refused with a
 * message naming the file and the element. */
#include <stdint.h>

#include "binfmt_testlib.h"

static const char *python(void) {
    static const char *p;
    if (!p) p = system("test -x /usr/bin/python3") == 0 ? "/usr/bin/python3" : "python3";
    return p;
}

/* Compares rec with pydicom's values; returns 0 when compared, 1 when pydicom is absent. */
static int compare_pydicom(const mrm_record *rec, const char *path, const char *tag) {
    char cmd[16384], out[4096];
    snprintf(cmd, sizeof cmd, "%s -c 'import pydicom' >/dev/null 2>&1", python());
    if (system(cmd) != 0) return 1;
    const char *src = getenv("MRM_SOURCE_DIR") ? getenv("MRM_SOURCE_DIR") : ".";
    snprintf(out, sizeof out, "%s/%s.ref", test_tmp_dir(), tag);
    snprintf(cmd, sizeof cmd, "%s '%s/tests/io/dicom_ref.py' '%s' '%s'", python(), src, path, out);
    CHECK(system(cmd) == 0, "pydicom failed on %s", path);
    FILE *f = fopen(out, "r");
    if (!f) return 0;
    int idx, ns, nc;
    double fs;
    CHECK(fscanf(f, "G %d %lf %d %d\n", &idx, &fs, &ns, &nc) == 4, "reference header");
    CHECK(rec->n_signals == nc && rec->n_samples == ns, "%s: %d x %lld, pydicom %d x %d", tag, rec->n_signals,
          rec->n_samples, nc, ns);
    CHECK_CLOSE(rec->fs, fs, 1e-12, "fs");
    char line[256];
    for (int c = 0; c < nc; c++) {
        if (!fgets(line, sizeof line, f)) break;
        bt_trim(line);
        /* "Lead I (Einthoven)" -> "I" */
        char want[128];
        const char *m = !strncmp(line + 2, "Lead ", 5) ? line + 7 : line + 2;
        snprintf(want, sizeof want, "%.*s", (int)strcspn(m, " ("), m);
        CHECK(c < rec->n_signals && !strcmp(rec->signals[c].description, want), "%s: channel %d is '%s', pydicom '%s'",
              tag, c, c < rec->n_signals ? rec->signals[c].description : "-", line + 2);
    }
    long long bad = 0;
    double worst = 0;
    for (int c = 0; c < nc; c++)
        for (int t = 0; t < ns; t++) {
            double v;
            if (fscanf(f, "%lf\n", &v) != 1) {
                bad++;
                continue;
            }
            if (c < rec->n_signals && t < rec->n_samples) {
                double d = fabs(rec->data[(size_t)c * rec->n_samples + t] - v);
                if (d > 1e-9) bad++;
                worst = fmax(worst, d);
            }
        }
    CHECK(bad == 0, "%s: %lld values differ from pydicom's (worst %g uV)", tag, bad, worst);
    char age[32], sex[32];
    if (fscanf(f, "P %31s %31s", age, sex) == 2) {
        CHECK(rec->age == atoi(age), "%s: age %d, pydicom %s", tag, rec->age, age);
        CHECK(!strcmp(sex, "F") ? !strcmp(rec->sex, "Female") : !strcmp(sex, "M") ? !strcmp(rec->sex, "Male") : 1,
              "%s: sex %s, pydicom %s", tag, rec->sex, sex);
    }
    fclose(f);
    printf("  %s: %d channels x %d samples equal pydicom's (max |diff| %.3g uV)\n", tag, nc, ns, worst);
    return 0;
}

static void fixture_checks(const mrm_record *r, const char *what) {
    static const char *leads[12] = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
    CHECK(r->n_signals == 12 && r->n_samples == 1500 && r->fs == 1000.0, "%s: %d x %lld at %g", what, r->n_signals,
          r->n_samples, r->fs);
    for (int c = 0; c < 12 && c < r->n_signals; c++)
        CHECK(!strcmp(r->signals[c].description, leads[c]), "%s: lead %d '%s'", what, c, r->signals[c].description);
    CHECK(r->age == 42 && !strcmp(r->sex, "Female"), "%s: age %d sex %s", what, r->age, r->sex);
    CHECK(!strcmp(r->base_date, "25/01/2013") && !strcmp(r->base_time, "10:59:19"), "%s: %s %s", what, r->base_date,
          r->base_time);
    /* lead I begins 80, 65, -50 units of 1.25 uV (the rhythm group, not the median beats) */
    CHECK_CLOSE(r->data[0], 100.0, 1e-12, "lead I sample 1");
    CHECK_CLOSE(r->data[1], 81.25, 1e-12, "lead I sample 2");
    CHECK(!strcmp(r->signals[0].units, "uV") && r->signals[0].gain == 0.8, "units %s gain %g", r->signals[0].units,
          r->signals[0].gain);
    CHECK(!strcmp(r->format, "dicom") && !strcmp(r->acquired, "2013-01-25T10:59:19"), "%s %s", r->format, r->acquired);
    CHECK(r->n_comments == 1 && strstr(r->comments[0], "RHYTHM"), "comment on the group read");
}

/* Offset of the first explicit-VR element with this tag (and VR), or SIZE_MAX. */
static size_t find_tag(const uint8_t *b, size_t len, unsigned g, unsigned e, const char *vr) {
    uint8_t pat[6] = {g & 0xff, g >> 8, e & 0xff, e >> 8, (uint8_t)vr[0], (uint8_t)vr[1]};
    for (size_t i = 132; i + 6 <= len; i++)
        if (!memcmp(b + i, pat, 6)) return i;
    return SIZE_MAX;
}

static void put_ds(uint8_t *b, size_t off, const char *text) {
    unsigned n = b[off + 6] | b[off + 7] << 8;
    memset(b + off + 8, ' ', n);
    memcpy(b + off + 8, text, strlen(text) < n ? strlen(text) : n);
}

static void malformed(const uint8_t *good, size_t len) {
    uint8_t *b = malloc(len);
    char name[128];
#define V(label) (memcpy(b, good, len), snprintf(name, sizeof name, "dicom-%s.dcm", label))
    V("truncated");
    bt_expect_fail(mrm_dicom_read_mem, b, len - 1000, name, "(5400,1010)", "past the end");
    bt_expect_fail(mrm_dicom_read_mem, b, len / 2, name, NULL, NULL);
    V("nch");
    size_t o = find_tag(b, len, 0x003A, 0x0005, "US");
    CHECK(o != SIZE_MAX, "no (003A,0005)");
    b[o + 8] = 11;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "more than the 11 channels", "(003A,0005)");
    b[o + 8] = 13;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "13 channels", "do not fit");
    V("nsamp");
    o = find_tag(b, len, 0x003A, 0x0010, "UL");
    b[o + 11] = 0x10;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "Waveform Data (5400,1010)", "do not fit");
    V("fs");
    o = find_tag(b, len, 0x003A, 0x001A, "DS");
    put_ds(b, o, "x");
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "Sampling Frequency", NULL);
    V("fs0");
    put_ds(b, o, "0");
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "sampling frequency", NULL);
    V("bits");
    o = find_tag(b, len, 0x5400, 0x1004, "US");
    b[o + 8] = 12;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "12-bit", NULL);
    V("sensitivity");
    o = find_tag(b, len, 0x003A, 0x0210, "DS");
    put_ds(b, o, "abc");
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "channel 1", "Channel Sensitivity");
    V("datalen");
    o = find_tag(b, len, 0x5400, 0x1010, "OW");
    b[o + 11] = 0x7f;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "(5400,1010)", "runs past");
    V("seqlen");
    o = find_tag(b, len, 0x5400, 0x0100, "SQ");
    CHECK(o != SIZE_MAX, "no (5400,0100)");
    b[o + 8] = b[o + 9] = b[o + 10] = 0x7f;
    b[o + 11] = 0x7f;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "(5400,0100)", "runs past");
    V("itemlen");
    /* the first item of the waveform sequence: tag FFFE,E000 right after the SQ header */
    CHECK(b[o + 12] == 0xFE && b[o + 13] == 0xFF, "item tag");
    b[o + 16] = 0xF0;
    b[o + 17] = 0xFF;
    b[o + 18] = 0xFF;
    b[o + 19] = 0x0F;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "item", NULL);
    V("notitem");
    b[o + 14] = 0x01;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "sequence item was expected", NULL);
    V("bigendian");
    o = find_tag(b, len, 0x0002, 0x0010, "UI");
    CHECK(o != SIZE_MAX && b[o + 6] == 20, "transfer syntax element");
    memcpy(b + o + 8, "1.2.840.10008.1.2.2\0", 20);
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "transfer syntax 1.2.840.10008.1.2.2", NULL);
    V("sopclass");
    o = find_tag(b, len, 0x0008, 0x0016, "UI");
    b[o + 8 + 26] = '2'; /* ...1.1.9.1.1 -> ...1.1.2.1.1 (CT) */
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "not an ECG waveform", NULL);
    V("vr");
    o = find_tag(b, len, 0x0010, 0x0040, "CS");
    b[o + 4] = 0x01;
    bt_expect_fail(mrm_dicom_read_mem, b, len, name, "(0010,0040)", "not a VR");
    /* deeply nested undefined-length sequences after the meta header: refused, no stack overflow */
    size_t meta = find_tag(good, len, 0x0008, 0x0005, "CS");
    if (meta == SIZE_MAX) meta = find_tag(good, len, 0x0008, 0x0008, "CS");
    CHECK(meta != SIZE_MAX, "first dataset element");
    size_t n_nest = 5000, nl = meta + n_nest * 20;
    uint8_t *nest = malloc(nl);
    memcpy(nest, good, meta);
    for (size_t i = 0; i < n_nest; i++) {
        static const uint8_t sq[20] = {0x09, 0x00, 0x10, 0x00, 'S', 'Q', 0, 0, 0xff, 0xff, 0xff, 0xff,
                                       0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff};
        memcpy(nest + meta + 20 * i, sq, 20);
    }
    bt_expect_fail(mrm_dicom_read_mem, nest, nl, "dicom-nested.dcm", "nested", NULL);
    free(nest);
    for (size_t cut = 0; cut < len; cut += cut < 3000 ? 7 : 1999) {
        mrm_record r;
        mrm_error e = {0};
        if (mrm_dicom_read_mem(&r, good, cut, "cut", 0, &e) == MRM_OK) {
            /* a cut inside the trailing elements after the waveform may still read; never past it */
            CHECK(cut > len - 200, "cut at %zu accepted", cut);
            mrm_record_free(&r);
        }
    }
#undef V
    free(b);
}

int main(void) {
    const char *src = getenv("MRM_SOURCE_DIR") ? getenv("MRM_SOURCE_DIR") : ".";
    static const char *fixtures[2] = {"pydicom_waveform_ecg_1500.dcm", "pydicom_waveform_ecg_1500_implicit.dcm"};
    mrm_record recs[2];
    int ok[2] = {0, 0}, no_pydicom = 0;
    uint8_t *explicit_buf = NULL;
    size_t explicit_len = 0;
    for (int k = 0; k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/fixtures/formats/%s", src, fixtures[k]);
        size_t len;
        uint8_t *b = bt_read_all(path, &len);
        CHECK(b != NULL, "cannot read %s", path);
        if (!b) continue;
        CHECK(mrm_dicom_sniff(b, len), "%s not sniffed", path);
        mrm_error e = {0};
        mrm_status st = mrm_dicom_read_mem(&recs[k], b, len, path, 0, &e);
        CHECK(st == MRM_OK, "%s", e.msg);
        if (st == MRM_OK) {
            ok[k] = 1;
            fixture_checks(&recs[k], fixtures[k]);
            mrm_record f;
            st = mrm_dicom_read_file(&f, path, 0, &e);
            CHECK(st == MRM_OK, "%s", e.msg);
            if (!st) {
                CHECK(!memcmp(f.data, recs[k].data, sizeof(double) * 12 * 1500), "file and memory differ");
                mrm_record_free(&f);
            }
            no_pydicom |= compare_pydicom(&recs[k], path, fixtures[k]);
        }
        if (k == 0) {
            explicit_buf = b;
            explicit_len = len;
        } else {
            free(b);
        }
    }
    if (ok[0] && ok[1])
        CHECK(!memcmp(recs[0].data, recs[1].data, sizeof(double) * 12 * 1500), "explicit and implicit VR differ");
    for (int k = 0; k < 2; k++)
        if (ok[k]) mrm_record_free(&recs[k]);
    if (explicit_buf) malformed(explicit_buf, explicit_len);
    free(explicit_buf);

    const char *shared = test_shared_dir();
    if (!shared) {
        printf("skipped: the shared DICOM sample needs ../shared (absent)\n");
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/data/formats/dicom/pydicom_waveform_ecg.dcm", shared);
        mrm_record r;
        mrm_error e = {0};
        mrm_status st = mrm_dicom_read_file(&r, path, 0, &e);
        CHECK(st == MRM_OK, "%s", e.msg);
        if (!st) {
            CHECK(r.n_samples == 10000 && r.n_signals == 12, "%lld samples", r.n_samples);
            no_pydicom |= compare_pydicom(&r, path, "pydicom_waveform_ecg.dcm");
            mrm_record_free(&r);
        }
    }
    if (no_pydicom) printf("skipped: the comparisons with pydicom need python3-pydicom (absent)\n");
    TEST_END();
}
