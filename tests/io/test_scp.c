/* SCP-ECG reader: the sample files against BioSig's save2gdf, sample for sample; the non-standard
 * healforce file refused; malformed variants of the committed fixture (truncated, wrong counts,
 * broken Huffman streams, CRC errors, oversized lengths) refused with a message naming the file
 * and the field. */
#include <stdint.h>

#include "binfmt_testlib.h"

static uint16_t crc(const uint8_t *p, size_t n) {
    uint16_t c = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        c ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++) c = (c & 0x8000) ? (uint16_t)((c << 1) ^ 0x1021) : (uint16_t)(c << 1);
    }
    return c;
}
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr16(uint8_t *p, unsigned v) { p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (v >> (8 * i)) & 0xff; }

/* Offset of section id (from section 0's pointers), or 0. */
static size_t sec_off(const uint8_t *b, int id, size_t *len) {
    size_t n = (rd32(b + 10) - 16) / 10;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = b + 22 + 10 * i;
        if ((e[0] | e[1] << 8) == id && rd32(e + 2)) {
            if (len) *len = rd32(e + 2);
            return rd32(e + 6) - 1;
        }
    }
    return 0;
}

/* Recomputes the CRCs of the sections and of the file, so that a variant reaches the field. */
static void fix_crcs(uint8_t *b, size_t len) {
    for (int id = 0; id < 12; id++) {
        size_t l = 0, o = sec_off(b, id, &l);
        if (l && o + l <= len) wr16(b + o, crc(b + o + 2, l - 2));
    }
    wr16(b, crc(b + 2, len - 2));
}

static void check_fixture_basics(const mrm_record *r) {
    CHECK(r->n_signals == 12, "%d signals", r->n_signals);
    CHECK(r->n_samples == 5000, "%lld samples", r->n_samples);
    CHECK_CLOSE(r->fs, 500.0, 1e-12, "fs");
    CHECK(!strcmp(r->signals[0].description, "I") && !strcmp(r->signals[8].description, "III") &&
              !strcmp(r->signals[9].description, "aVR") && !strcmp(r->signals[11].description, "aVF"),
          "lead names %s %s %s", r->signals[0].description, r->signals[8].description, r->signals[11].description);
    CHECK(!strcmp(r->sex, "Male"), "sex '%s'", r->sex);
    CHECK(r->age == 49, "age %d (born 1953-05-08, recorded 2002-11-22)", r->age);
    CHECK(!strcmp(r->base_date, "22/11/2002") && !strcmp(r->base_time, "09:10:00"), "date/time %s %s", r->base_date,
          r->base_time);
    /* lead I begins -2 -2 -2 -2 -3 units of 2.5 uV (the same ECG's aECG copy says so too) */
    const double first[5] = {-2, -2, -2, -2, -3};
    for (int i = 0; i < 5; i++) CHECK_CLOSE(r->data[i], first[i] * 2.5, 1e-12, "lead I start");
    CHECK(!strcmp(r->signals[0].units, "uV") && r->signals[0].gain == 0.4, "units %s gain %g", r->signals[0].units,
          r->signals[0].gain);
    CHECK(!strcmp(r->format, "scp-ecg") && !strcmp(r->acquired, "2002-11-22T09:10:00"), "format %s acquired %s",
          r->format, r->acquired);
}

static void malformed(const uint8_t *good, size_t len, const char *fixture_name) {
    uint8_t *b = malloc(len);
    char name[256];
    (void)fixture_name;
#define VARIANT(label) (memcpy(b, good, len), snprintf(name, sizeof name, "scp-%s.scp", label))
    /* truncated: the file-length field then promises more than there is */
    VARIANT("truncated");
    bt_expect_fail(mrm_scp_read_mem, b, len - 1000, name, "file length", NULL);
    bt_expect_fail(mrm_scp_read_mem, b, 10, name, "file length", NULL);
    bt_expect_fail(mrm_scp_read_mem, b, 0, name, NULL, NULL);
    /* file CRC */
    VARIANT("filecrc");
    b[len / 2] ^= 0x40;
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "file CRC", NULL);
    /* a section CRC (the file CRC made right again) */
    VARIANT("seccrc");
    size_t l6 = 0, o6 = sec_off(b, 6, &l6);
    b[o6 + 100] ^= 0x01;
    wr16(b, crc(b + 2, len - 2));
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "section 6: CRC", NULL);
    /* oversized: a pointer past the end of the file */
    VARIANT("oversized-pointer");
    wr32(b + 22 + 10 * 6 + 2, 0x7fffffff);
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "section 6", "past the end");
    /* oversized: a lead's byte count past the end of section 6 */
    VARIANT("oversized-leadbytes");
    wr16(b + o6 + 16 + 6, 0xffff);
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "section 6", "lead 1");
    /* wrong counts: section 3 claims more leads than it defines */
    VARIANT("leadcount");
    size_t l3 = 0, o3 = sec_off(b, 3, &l3);
    b[o3 + 16] = 200;
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "section 3", "lead definitions");
    /* wrong counts: more samples than lead 1's data can hold */
    VARIANT("samplecount");
    wr32(b + o3 + 16 + 2 + 4, 1000000);
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "section 3", NULL);
    /* broken Huffman stream: lead 1's data cut short (the others shift, the section stays whole) */
    VARIANT("huffman-short");
    unsigned b1 = b[o6 + 16 + 6] | b[o6 + 16 + 7] << 8;
    wr16(b + o6 + 16 + 6, b1 - 200);
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "broken Huffman stream", "lead 1");
    /* broken Huffman stream: a custom table that does not cover the codes in the data (one
     * table of one 1-bit code "0"; the data have 1 bits) written over the default table's
     * marker: 2 + 2 + 9 bytes do not fit the 2-byte section, so that is refused first */
    VARIANT("huffman-table");
    size_t l2 = 0, o2 = sec_off(b, 2, &l2);
    wr16(b + o2 + 16, 1);
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "section 2", NULL);
    /* a bad difference order and sample interval */
    VARIANT("diff");
    b[o6 + 16 + 4] = 7;
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "difference encoding", NULL);
    VARIANT("interval");
    wr16(b + o6 + 16 + 2, 0);
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "sample interval", NULL);
    /* no rhythm section */
    VARIANT("nosec6");
    wr32(b + 22 + 10 * 6 + 2, 0);
    fix_crcs(b, len);
    bt_expect_fail(mrm_scp_read_mem, b, len, name, "section 6", NULL);
    /* every single-byte truncation point of the first 400 bytes, and a few later: no crash, refused */
    for (size_t cut = 0; cut < len; cut += cut < 400 ? 1 : 997) {
        mrm_record r;
        mrm_error e = {0};
        snprintf(name, sizeof name, "scp-cut-%zu.scp", cut);
        CHECK(mrm_scp_read_mem(&r, b, cut, name, 0, &e) != MRM_OK, "cut at %zu accepted", cut);
    }
#undef VARIANT
    free(b);
}

/* Synthetic files (tests/io/scp_synth.py) for what the samples do not use: custom Huffman tables
 * with table switches and escapes, reference-beat subtraction, version 1.3, no Huffman coding.
 * Checked against the generator's true samples; the one without reference beats also against
 * save2gdf (BioSig returns the residual without adding the reference beats back, and stops on
 * the custom tables, so it cannot serve for those). */
static void synthetic(const char *src) {
    if (system("python3 -c 'import math' >/dev/null 2>&1") != 0) {
        printf("skipped: the synthetic SCP files need python3 (absent)\n");
        return;
    }
    static const char *variants[] = {"custom", "raw13", "default", "badcode"};
    for (int v = 0; v < 4; v++) {
        char scp[4096], txt[4096], cmd[16384];
        snprintf(scp, sizeof scp, "%s/synth-%s.scp", test_tmp_dir(), variants[v]);
        snprintf(txt, sizeof txt, "%s/synth-%s.txt", test_tmp_dir(), variants[v]);
        snprintf(cmd, sizeof cmd, "python3 '%s/tests/io/scp_synth.py' %s '%s' '%s'", src, variants[v], scp, txt);
        CHECK(system(cmd) == 0, "generator failed: %s", cmd);
        mrm_record r;
        mrm_error e = {0};
        mrm_status st = mrm_scp_read_file(&r, scp, 0, &e);
        if (v == 3) {
            CHECK(st != MRM_OK && strstr(e.msg, "broken Huffman stream") && strstr(e.msg, "no code matches"),
                  "badcode: %s", e.msg);
            printf("  refused: %s\n", e.msg);
            if (!st) mrm_record_free(&r);
            continue;
        }
        CHECK(st == MRM_OK, "%s", e.msg);
        if (st) continue;
        FILE *f = fopen(txt, "r");
        int nl = 0, ns = 0, avm = 0, iv = 0;
        CHECK(f && fscanf(f, "%d %d %d %d", &nl, &ns, &avm, &iv) == 4, "truth header");
        CHECK(r.n_signals == nl && r.n_samples == ns && fabs(r.fs - 1e6 / iv) < 1e-9, "%s: %d x %lld at %g", variants[v],
              r.n_signals, r.n_samples, r.fs);
        CHECK(r.age == 63 && !strcmp(r.sex, "Female") && !strcmp(r.base_date, "15/06/2020") &&
                  !strcmp(r.base_time, "08:30:05"),
              "%s: metadata %d %s %s %s", variants[v], r.age, r.sex, r.base_date, r.base_time);
        long long bad = 0;
        for (int l = 0; l < nl && l < r.n_signals; l++)
            for (int t = 0; t < ns && t < r.n_samples; t++) {
                int x = 0;
                if (fscanf(f, "%d", &x) != 1 || fabs(r.data[(size_t)l * r.n_samples + t] - x * avm * 1e-3) > 1e-9) bad++;
            }
        if (f) fclose(f);
        CHECK(bad == 0, "%s: %lld samples differ from the generator's", variants[v], bad);
        printf("  synthetic %s: %d leads x %d samples equal the generator's\n", variants[v], nl, ns);
        if (v == 1 && bt_have_tool("save2gdf")) {
            bt_ref ref;
            CHECK(bt_save2gdf(scp, test_tmp_dir(), "synth-raw13", &ref) == 0, "save2gdf failed on %s", scp);
            bt_compare(&r, &ref, NULL, ref.n, avm * 1e-3 / 2, "synthetic raw13");
            bt_ref_free(&ref);
        }
        mrm_record_free(&r);
    }
}

int main(void) {
    char path[4096];
    const char *src = getenv("MRM_SOURCE_DIR") ? getenv("MRM_SOURCE_DIR") : ".";
    snprintf(path, sizeof path, "%s/tests/fixtures/formats/ecgtoolkit_Example.scp", src);
    size_t len = 0;
    unsigned char *good = bt_read_all(path, &len);
    CHECK(good != NULL, "cannot read %s", path);
    if (!good) TEST_END();

    /* the committed fixture, in memory and through its path */
    mrm_record r;
    mrm_error e = {0};
    CHECK(mrm_scp_sniff(good, len), "fixture not recognised as SCP-ECG");
    mrm_status st = mrm_scp_read_mem(&r, good, len, path, 0, &e);
    CHECK(st == MRM_OK, "%s", e.msg);
    if (st == MRM_OK) {
        check_fixture_basics(&r);
        mrm_record r2;
        st = mrm_scp_read_file(&r2, path, 0, &e);
        CHECK(st == MRM_OK, "%s", e.msg);
        if (st == MRM_OK) {
            CHECK(!memcmp(r.data, r2.data, sizeof(double) * 12 * 5000), "file and memory entry points differ");
            CHECK(!strcmp(r2.name, "ecgtoolkit_Example"), "name %s", r2.name);
            mrm_record_free(&r2);
        }
        mrm_record_free(&r);
    }
    st = mrm_scp_read_file(&r, path, MRM_READ_HEADER_ONLY, &e);
    CHECK(st == MRM_OK && r.data == NULL && r.n_signals == 12, "header only: %s", e.msg);
    if (st == MRM_OK) mrm_record_free(&r);
    malformed(good, len, path);
    free(good);
    synthetic(src);

    /* the shared samples against save2gdf */
    const char *shared = test_shared_dir();
    if (!shared) {
        printf("skipped: the comparisons with save2gdf need ../shared (absent)\n");
        TEST_END();
    }
    if (!bt_have_tool("save2gdf")) {
        printf("skipped: the comparisons need save2gdf (Debian biosig-tools), absent\n");
        TEST_END();
    }
    static const struct {
        const char *file;
        double step_uv;
    } files[] = {{"ecgtoolkit_Example.scp", 2.5}, {"welchallyn_ECG_20070321_110542_ANON000004.SCP", 3.75}};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(path, sizeof path, "%s/data/formats/scp/%s", shared, files[k].file);
        st = mrm_scp_read_file(&r, path, 0, &e);
        CHECK(st == MRM_OK, "%s", e.msg);
        if (st) continue;
        bt_ref ref;
        int rc = bt_save2gdf(path, test_tmp_dir(), files[k].file, &ref);
        CHECK(rc == 0, "save2gdf failed on %s", path);
        if (rc == 0) {
            CHECK(ref.n == r.n_signals, "%s: %d signals, save2gdf %d", files[k].file, r.n_signals, ref.n);
            bt_compare(&r, &ref, NULL, ref.n < r.n_signals ? ref.n : r.n_signals, files[k].step_uv / 2, files[k].file);
            bt_ref_free(&ref);
        }
        mrm_record_free(&r);
    }
    snprintf(path, sizeof path, "%s/data/formats/scp/healforce_62.SCP", shared);
    unsigned char *hf = bt_read_all(path, &len);
    CHECK(hf != NULL, "cannot read %s", path);
    if (hf) bt_expect_fail(mrm_scp_read_mem, hf, len, path, "not a standard SCP-ECG file", NULL);
    free(hf);
    TEST_END();
}
