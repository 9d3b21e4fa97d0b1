/* EDF/EDF+ reader: the committed fixture against values computed from its raw bytes and against
 * BioSig's save2gdf; the in-memory decoder against the EDFlib path; an EDF+ file written by
 * EDFlib (ECG channels among others, a non-integer record duration, a channel at another rate,
 * patient sex and birth date) read back; malformed headers refused with a message naming the file
 * and the field. */
#include <edflib.h>
#include <stdint.h>

#include "binfmt_testlib.h"

static int16_t rd16(const uint8_t *p) { return (int16_t)(p[0] | p[1] << 8); }

static void fixture(const char *path) {
    size_t len;
    uint8_t *b = bt_read_all(path, &len);
    CHECK(b != NULL, "cannot read %s", path);
    if (!b) return;
    CHECK(mrm_edf_sniff(b, len), "not sniffed as EDF");
    mrm_record m, f;
    mrm_error e = {0};
    mrm_status s1 = mrm_edf_read_mem(&m, b, len, path, 0, &e);
    CHECK(s1 == MRM_OK, "%s", e.msg);
    mrm_status s2 = mrm_edf_read_file(&f, path, 0, &e);
    CHECK(s2 == MRM_OK, "%s", e.msg);
    if (!s1 && !s2) {
        CHECK(m.n_signals == 1 && f.n_signals == 1, "%d / %d signals (the ECG only, not the accelerometer)",
              m.n_signals, f.n_signals);
        CHECK(m.n_samples == 12 * 500 && f.n_samples == m.n_samples, "%lld samples", m.n_samples);
        CHECK_CLOSE(m.fs, 500 / 1.000301, 1e-12, "fs from a non-integer record duration");
        CHECK(!strcmp(m.signals[0].description, "Channel 1") && !strcmp(m.signals[0].units, "uV"), "%s %s",
              m.signals[0].description, m.signals[0].units);
        CHECK(!strcmp(m.base_date, "01/01/2017") && !strcmp(m.base_time, "19:51:40"), "%s %s", m.base_date,
              m.base_time);
        /* from the raw bytes: physical range -3125..3124.905 uV over digital -32768..32767 */
        double worst_raw = 0, worst_lib = 0;
        for (long long t = 0; t < m.n_samples; t++) {
            long long r = t / 500, i = t % 500;
            int d = rd16(b + 768 + r * 1100 + 2 * i);
            double want = (d + 32768.0) * (3124.905 + 3125.0) / 65535.0 - 3125.0;
            worst_raw = fmax(worst_raw, fabs(m.data[t] - want));
            worst_lib = fmax(worst_lib, fabs(m.data[t] - f.data[t]));
        }
        CHECK(worst_raw < 1e-9, "in-memory vs raw bytes: %g uV", worst_raw);
        CHECK(worst_lib < 1e-9, "in-memory vs EDFlib: %g uV", worst_lib);
        printf("  fixture: max |mem - raw| %.3g uV, |mem - EDFlib| %.3g uV\n", worst_raw, worst_lib);
    }
    if (!s1) mrm_record_free(&m);
    if (!s2) mrm_record_free(&f);
    free(b);
}

static void put(uint8_t *b, size_t off, size_t n, const char *s) {
    memset(b + off, ' ', n);
    memcpy(b + off, s, strlen(s) < n ? strlen(s) : n);
}

static void malformed(const char *path) {
    size_t len;
    uint8_t *good = bt_read_all(path, &len), *b = malloc(len + 4096);
    char name[128];
    /* header layout for 2 signals: label 256, ..., dmin at 256+120*2, dmax 256+128*2, spr 256+216*2 */
#define V(label) (memcpy(b, good, len), snprintf(name, sizeof name, "edf-%s.edf", label))
    V("truncated");
    bt_expect_fail(mrm_edf_read_mem, b, len - 1, name, "data records", "truncated");
    bt_expect_fail(mrm_edf_read_mem, b, 700, name, "header", NULL);
    bt_expect_fail(mrm_edf_read_mem, b, 100, name, "EDF header", NULL);
    V("records");
    put(b, 236, 8, "13");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "13 data records", NULL);
    V("records-huge");
    put(b, 236, 8, "99999999");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "data records", NULL);
    V("records-open");
    put(b, 236, 8, "-1");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "number of data records", "not closed");
    V("nsignals");
    put(b, 252, 4, "3");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "header size", NULL);
    V("nsignals-huge");
    put(b, 252, 4, "9999");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "number of signals", NULL);
    V("headersize");
    put(b, 184, 8, "1024");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "header size", NULL);
    V("duration");
    put(b, 244, 8, "abc");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "data record duration", NULL);
    V("duration0");
    put(b, 244, 8, "0");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "data record duration", NULL);
    V("digital");
    put(b, 256 + 120 * 2, 8, "40000");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "signal 1", "digital range");
    V("physical");
    put(b, 256 + 112 * 2, 8, "-3125.00");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "signal 1", "physical range");
    V("spr");
    put(b, 256 + 216 * 2, 8, "0");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "samples per data record", NULL);
    V("spr-more");
    put(b, 256 + 216 * 2, 8, "501");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "data records", NULL);
    V("discontinuous");
    put(b, 192, 44, "EDF+D");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "EDF+D", NULL);
    V("bdf");
    b[0] = 0xFF;
    memcpy(b + 1, "BIOSEMI", 7);
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "BDF", NULL);
    V("binary");
    b[10] = 0x01;
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "patient", NULL);
    V("noecg");
    put(b, 256 + 96 * 2, 8, "mmHg");
    bt_expect_fail(mrm_edf_read_mem, b, len, name, "no ECG channel", "Channel 1");
    /* the file path checks the header before EDFlib sees the file */
    char fp[4096];
    snprintf(fp, sizeof fp, "%s/edf-truncated.edf", test_tmp_dir());
    FILE *f = fopen(fp, "wb");
    fwrite(good, 1, len - 1100, f);
    fclose(f);
    mrm_record r;
    mrm_error e = {0};
    CHECK(mrm_edf_read_file(&r, fp, 0, &e) == MRM_ERR_FORMAT && strstr(e.msg, fp) && strstr(e.msg, "truncated"),
          "file path: %s", e.msg);
    printf("  refused: %s\n", e.msg);
    for (size_t cut = 0; cut < len; cut += cut < 800 ? 1 : 501) {
        snprintf(name, sizeof name, "edf-cut-%zu.edf", cut);
        CHECK(mrm_edf_read_mem(&r, good, cut, name, 0, &e) != MRM_OK, "cut at %zu accepted", cut);
    }
#undef V
    free(b);
    free(good);
}

/* An EDF+ file written by EDFlib: ECG I (uV) and ECG V2 (mV) at 250 samples per 0.5 s record,
 * a respiration channel, and ECG II at 125 per record (another rate: left out, said so). */
static void edfplus(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/written.edf", test_tmp_dir());
    int h = edfopen_file_writeonly(path, EDFLIB_FILETYPE_EDFPLUS, 4);
    CHECK(h >= 0, "EDFlib cannot write %s", path);
    if (h < 0) return;
    static const char *labels[4] = {"ECG I", "Resp", "ECG V2", "ECG II"};
    static const char *dims[4] = {"uV", "Ohm", "mV", "uV"};
    static const int spr[4] = {250, 25, 250, 125};
    static const double pmax[4] = {5000, 100, 8, 5000}, pmin[4] = {-5000, -100, -8, -5000};
    static const int dmax[4] = {32767, 2047, 10000, 32767}, dmin[4] = {-32768, -2048, -10000, -32768};
    CHECK(edf_set_datarecord_duration(h, 50000) == 0, "duration");
    for (int s = 0; s < 4; s++) {
        edf_set_samplefrequency(h, s, spr[s]);
        edf_set_physical_maximum(h, s, pmax[s]);
        edf_set_physical_minimum(h, s, pmin[s]);
        edf_set_digital_maximum(h, s, dmax[s]);
        edf_set_digital_minimum(h, s, dmin[s]);
        edf_set_label(h, s, labels[s]);
        edf_set_physical_dimension(h, s, dims[s]);
    }
    edf_set_startdatetime(h, 2021, 3, 14, 15, 9, 26);
    edf_set_gender(h, 0); /* female */
    edf_set_birthdate(h, 1960, 7, 20);
    edf_set_patientcode(h, "P-001");
    short buf[250];
    const int records = 7;
    for (int r = 0; r < records; r++)
        for (int s = 0; s < 4; s++) {
            for (int i = 0; i < spr[s]; i++) buf[i] = (short)((r * 977 + i * 31 + s * 7) % (dmax[s] - dmin[s]) + dmin[s]);
            CHECK(edfwrite_digital_short_samples(h, buf) == 0, "write");
        }
    CHECK(edfclose_file(h) == 0, "close");

    mrm_record m, f;
    mrm_error e = {0};
    size_t len;
    uint8_t *b = bt_read_all(path, &len);
    mrm_status s1 = mrm_edf_read_mem(&m, b, len, path, 0, &e);
    CHECK(s1 == MRM_OK, "%s", e.msg);
    mrm_status s2 = mrm_edf_read_file(&f, path, 0, &e);
    CHECK(s2 == MRM_OK, "%s", e.msg);
    if (!s1 && !s2) {
        CHECK(m.n_signals == 2 && !strcmp(m.signals[0].description, "I") && !strcmp(m.signals[1].description, "V2"),
              "%d signals: %s %s", m.n_signals, m.signals[0].description, m.n_signals > 1 ? m.signals[1].description : "");
        CHECK_CLOSE(m.fs, 500.0, 1e-12, "fs (250 samples per 0.5 s)");
        CHECK(m.n_samples == records * 250, "%lld samples", m.n_samples);
        CHECK(m.n_comments == 1 && strstr(m.comments[0], "ECG II"), "comment on the channel left out");
        CHECK(!strcmp(m.sex, "Female") && m.age == 60, "sex %s age %d", m.sex, m.age);
        CHECK(!strcmp(m.base_date, "14/03/2021") && !strcmp(m.base_time, "15:09:26"), "%s %s", m.base_date, m.base_time);
        double worst = 0, worst_lib = 0;
        for (int k = 0; k < 2; k++) {
            int s = k ? 2 : 0;
            for (long long t = 0; t < m.n_samples; t++) {
                long long r = t / 250, i = t % 250;
                int d = (int)((r * 977 + i * 31 + s * 7) % (dmax[s] - dmin[s]) + dmin[s]);
                double want = (d - dmin[s]) * (pmax[s] - pmin[s]) / (dmax[s] - dmin[s]) + pmin[s];
                worst = fmax(worst, fabs(m.data[k * m.n_samples + t] - want));
                worst_lib = fmax(worst_lib, fabs(m.data[k * m.n_samples + t] - f.data[k * m.n_samples + t]));
            }
        }
        CHECK(worst < 1e-9 && worst_lib < 1e-9, "written values: %g, EDFlib %g", worst, worst_lib);
        CHECK(!strcmp(m.signals[0].units, "uV") && !strcmp(m.signals[1].units, "mV"), "units %s %s", m.signals[0].units,
              m.signals[1].units);
        if (bt_have_tool("save2gdf")) {
            bt_ref ref;
            if (bt_save2gdf(path, test_tmp_dir(), "written", &ref) == 0) {
                /* save2gdf lists every channel (I, Resp, V2, II): compare I and V2; its labels keep
                 * the "ECG " prefix, so compare the values only */
                for (int k = 0; k < 2; k++) {
                    int s = k ? 2 : 0;
                    double w = 0, to = mrm_binfmt_unit_to_mv(m.signals[k].units);
                    double factor = to > 0 ? mrm_binfmt_unit_to_mv(ref.ch[s].units) / to : 0;
                    CHECK(ref.ch[s].n == m.n_samples, "save2gdf: %lld samples", ref.ch[s].n);
                    for (long long t = 0; t < m.n_samples && t < ref.ch[s].n; t++)
                        w = fmax(w, fabs(m.data[k * m.n_samples + t] - ref.ch[s].v[t] * factor));
                    double step = (pmax[s] - pmin[s]) / (dmax[s] - dmin[s]);
                    CHECK(w <= step / 2, "EDF+ %s vs save2gdf: %g %s (step %g)", labels[s], w, dims[s], step);
                    printf("  EDF+ %s vs save2gdf: max |diff| %.3g %s\n", labels[s], w, dims[s]);
                }
                bt_ref_free(&ref);
            } else {
                CHECK(0, "save2gdf failed on %s", path);
            }
        }
    }
    if (!s1) mrm_record_free(&m);
    if (!s2) mrm_record_free(&f);
    free(b);
}

int main(void) {
    char path[4096];
    const char *src = getenv("MRM_SOURCE_DIR") ? getenv("MRM_SOURCE_DIR") : ".";
    snprintf(path, sizeof path, "%s/tests/fixtures/formats/biorecorder_ekg_12s.edf", src);
    fixture(path);
    malformed(path);
    edfplus();
    if (!bt_have_tool("save2gdf")) {
        printf("skipped: the comparisons with save2gdf need it (Debian biosig-tools), absent\n");
        TEST_END();
    }
    const char *shared = test_shared_dir();
    char files[2][4096];
    snprintf(files[0], sizeof files[0], "%s", path);
    int n = 1;
    if (shared) snprintf(files[n++], sizeof files[1], "%s/data/formats/edf/biorecorder_ekg_93s.edf", shared);
    else printf("skipped: the shared EDF sample needs ../shared (absent)\n");
    for (int k = 0; k < n; k++) {
        mrm_record r;
        mrm_error e = {0};
        mrm_status st = mrm_edf_read_file(&r, files[k], 0, &e);
        CHECK(st == MRM_OK, "%s", e.msg);
        if (st) continue;
        bt_ref ref;
        char tag[32];
        snprintf(tag, sizeof tag, "ref%d", k);
        if (bt_save2gdf(files[k], test_tmp_dir(), tag, &ref) == 0) {
            /* quantisation step: 6249.905 uV over 65535 levels */
            bt_compare(&r, &ref, NULL, 1, 0.5 * 6249.905 / 65535, files[k]);
            bt_ref_free(&ref);
        } else {
            CHECK(0, "save2gdf failed on %s", files[k]);
        }
        mrm_record_free(&r);
    }
    TEST_END();
}
