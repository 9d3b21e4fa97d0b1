/* The format registry and the XML helpers: content tests (root element, namespace, byte-order
 * marks, UTF-16), in-memory reading of the fixtures, base64 and CRC-32 against known values. */
#include "io/formats.h"
#include "io/xmlutil.h"
#include "test_util.h"

static const char *root_of(const char *doc, char *ns) {
    static char local[64];
    if (mrm_xml_root((const uint8_t *)doc, strlen(doc), local, sizeof local, ns, 128) != 0) return "(none)";
    return local;
}

static void test_xml_root(void) {
    char ns[128];
    CHECK(!strcmp(root_of("<?xml version=\"1.0\"?>\n<!-- c -->\n<AnnotatedECG xmlns=\"urn:hl7-org:v3\" a='b'>", ns), "AnnotatedECG") &&
              !strcmp(ns, "urn:hl7-org:v3"),
          "default namespace: %s", ns);
    CHECK(!strcmp(root_of("\xEF\xBB\xBF<!DOCTYPE RestingECG SYSTEM \"restecg.dtd\">\n<RestingECG>", ns), "RestingECG") && !ns[0],
          "BOM and DOCTYPE");
    CHECK(!strcmp(root_of("<!DOCTYPE x [<!ELEMENT a (b)> ]><h:AnnotatedECG xmlns:v=\"v\" xmlns:h=\"urn:hl7-org:v3\">", ns),
                  "AnnotatedECG") &&
              !strcmp(ns, "urn:hl7-org:v3"),
          "prefixed root and internal subset: %s", ns);
    CHECK(!strcmp(root_of("not xml", ns), "(none)") && !strcmp(root_of("<?xml version=\"1.0\"?>", ns), "(none)") &&
              !strcmp(root_of("<a b=\"unterminated>", ns), "(none)"),
          "not XML");
    /* UTF-16 LE with a byte-order mark */
    const char *d = "<?xml version=\"1.0\" encoding=\"utf-16\"?><restingecgdata xmlns=\"http://www3.medical.philips.com\">";
    size_t n = strlen(d);
    uint8_t *u = malloc(2 * n + 2);
    u[0] = 0xFF, u[1] = 0xFE;
    for (size_t i = 0; i < n; i++) u[2 + 2 * i] = (uint8_t)d[i], u[3 + 2 * i] = 0;
    char local[64];
    CHECK(mrm_xml_root(u, 2 * n + 2, local, sizeof local, ns, sizeof ns) == 0 && !strcmp(local, "restingecgdata") &&
              !strcmp(ns, "http://www3.medical.philips.com") && mrm_sierra_sniff(u, 2 * n + 2),
          "UTF-16: %s %s", local, ns);
    free(u);
    CHECK(mrm_aecg_sniff((const uint8_t *)"<AnnotatedECG xmlns=\"urn:hl7-org:v3\">", 37) &&
              !mrm_aecg_sniff((const uint8_t *)"<AnnotatedECG xmlns=\"urn:other\">", 32) &&
              !mrm_muse_sniff((const uint8_t *)"<AnnotatedECG>", 14) && mrm_muse_sniff((const uint8_t *)"<RestingECG>", 12),
          "sniffers");
}

static void test_base64_crc(void) {
    uint8_t out[16];
    CHECK(mrm_base64_decode("TWFu", 4, out, sizeof out) == 3 && !memcmp(out, "Man", 3), "Man");
    CHECK(mrm_base64_decode("TW E=\n", 6, out, sizeof out) == 2 && !memcmp(out, "Ma", 2), "padded, whitespace");
    CHECK(mrm_base64_decode("TQ==", 4, out, sizeof out) == 1 && out[0] == 'M', "M");
    CHECK(mrm_base64_decode("TR==", 4, out, sizeof out) == -1, "non-zero unused bits refused");
    CHECK(mrm_base64_decode("T", 1, out, sizeof out) == -1 && mrm_base64_decode("TW=E", 4, out, sizeof out) == -1 &&
              mrm_base64_decode("TW!u", 4, out, sizeof out) == -1 && mrm_base64_decode("TQ=", 3, out, sizeof out) == -1,
          "malformed refused");
    CHECK(mrm_base64_decode("TWFuTWFu", 8, out, 5) == -1, "more than the room refused");
    CHECK(mrm_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u, "CRC-32 check value");
}

static void test_read_mem(void) {
    static const char *const files[] = {"tests/fixtures/formats/aecg_liryc_synthetic.xml", "tests/fixtures/formats/muse_from_hl7_example.xml",
                                        "tests/fixtures/formats/sierra_1-03_129DYPRG.XML"};
    static const char *const fmt[] = {"hl7-aecg", "ge-muse", "philips-sierra"};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(files[i], "rb");
        CHECK(f != NULL, "%s", files[i]);
        if (!f) continue;
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        CHECK(!strcmp(mrm_record_sniff(buf, n) ? mrm_record_sniff(buf, n) : "", fmt[i]), "%s sniffed", files[i]);
        CHECK(!strcmp(mrm_record_file_format(files[i]) ? mrm_record_file_format(files[i]) : "", fmt[i]), "%s listed", files[i]);
        mrm_record rec;
        mrm_error err = {0};
        CHECK(mrm_record_read_mem(&rec, buf, n, files[i], 0, &err) == MRM_OK && rec.n_signals == 12 && rec.fs > 0 &&
                  !strcmp(rec.format, fmt[i]),
              "%s: %s", files[i], err.msg);
        mrm_record rec2;
        CHECK(mrm_record_read(&rec2, files[i], 0, &err) == MRM_OK && rec2.n_samples == rec.n_samples &&
                  !memcmp(rec2.data, rec.data, sizeof(double) * (size_t)rec.n_samples * 12),
              "%s: from the file as from memory", files[i]);
        mrm_record_free(&rec2);
        /* every prefix of the file is refused or read, never a crash (the ASan build checks) */
        for (size_t cut = 0; cut < n; cut += n / 97 + 1) {
            mrm_record r3;
            if (mrm_record_read_mem(&r3, buf, cut, files[i], 0, &err) == MRM_OK) mrm_record_free(&r3);
        }
        mrm_record_free(&rec);
    }
    mrm_record rec;
    mrm_error err = {0};
    CHECK(mrm_record_read_mem(&rec, "hello", 5, "x.txt", 0, &err) == MRM_ERR_UNSUPPORTED && strstr(err.msg, "x.txt"), "%s", err.msg);
    char name[4096];
    CHECK(mrm_record_resolve("tests/fixtures/formats/muse_from_hl7_example", name, sizeof name) == 0 &&
              !strcmp(name, "tests/fixtures/formats/muse_from_hl7_example.xml"),
          "resolve by name: %s", name);
    CHECK(mrm_record_read(&rec, "tests/fixtures/formats/sierra_1-03_129DYPRG", 0, &err) == MRM_OK && !strcmp(rec.format, "philips-sierra"),
          "read by name without extension: %s", err.msg);
    mrm_record_free(&rec);
    CHECK(mrm_record_file_format("tests/fixtures/formats/ATTRIBUTION.md") == NULL, "not a record");
}

int main(void) {
    test_xml_root();
    test_base64_crc();
    test_read_mem();
    TEST_END();
}
