/* The HL7 aECG and SCP-ECG copies of the same ECG in ../shared (HL7's 2003 example and ECGToolkit's
 * conversion of it) give the same samples, lead for lead: the rhythm and the representative
 * beats, each read through mrm_record_read (the format picked by content). */
#include <strings.h>

#include "binfmt_testlib.h"

static void compare(const char *aecg, const char *scp, int flags, const char *what) {
    mrm_record a, s;
    mrm_error e = {0};
    mrm_status sa = mrm_record_read(&a, aecg, flags, &e);
    CHECK(sa == MRM_OK, "%s", e.msg);
    mrm_status ss = mrm_record_read(&s, scp, flags, &e);
    CHECK(ss == MRM_OK, "%s", e.msg);
    if (!sa && !ss) {
        CHECK(!strcmp(a.format, "hl7-aecg") && !strcmp(s.format, "scp-ecg"), "formats %s %s", a.format, s.format);
        CHECK(a.fs == s.fs, "%s: fs %g vs %g", what, a.fs, s.fs);
        long long n = a.n_samples < s.n_samples ? a.n_samples : s.n_samples;
        CHECK(n > 0 && llabs(a.n_samples - s.n_samples) <= 1, "%s: %lld vs %lld samples", what, a.n_samples, s.n_samples);
        int matched = 0;
        for (int i = 0; i < s.n_signals; i++) {
            int j = -1;
            for (int k = 0; k < a.n_signals; k++)
                if (!strcmp(a.signals[k].description, s.signals[i].description) ||
                    (strstr(a.signals[k].description, "LEAD_") &&
                     !strcasecmp(strstr(a.signals[k].description, "LEAD_") + 5, s.signals[i].description)))
                    j = k;
            if (j < 0) continue;
            matched++;
            CHECK(!strcmp(a.signals[j].units, s.signals[i].units), "%s: units %s vs %s", what, a.signals[j].units,
                  s.signals[i].units);
            long long bad = 0;
            double worst = 0;
            for (long long t = 0; t < n; t++) {
                double d = fabs(a.data[(size_t)j * a.n_samples + t] - s.data[(size_t)i * s.n_samples + t]);
                if (d > 1e-9) bad++;
                worst = fmax(worst, d);
            }
            CHECK(bad == 0, "%s: lead %s: %lld of %lld samples differ (worst %g)", what, s.signals[i].description,
                  bad, n, worst);
        }
        CHECK(matched == s.n_signals, "%s: %d of %d SCP leads found in the aECG", what, matched, s.n_signals);
        printf("  %s: %d leads x %lld samples equal\n", what, matched, n);
    }
    if (!sa) mrm_record_free(&a);
    if (!ss) mrm_record_free(&s);
}

int main(void) {
    const char *shared = test_shared_dir();
    if (!shared) TEST_SKIP("the aECG and SCP copies of the example ECG are in ../shared (absent)");
    char aecg[4096], scp[4096];
    snprintf(aecg, sizeof aecg, "%s/data/formats/aecg/hl7_Example_aECG.xml", shared);
    snprintf(scp, sizeof scp, "%s/data/formats/scp/ecgtoolkit_Example.scp", shared);
    compare(aecg, scp, 0, "rhythm");
    compare(aecg, scp, MRM_READ_REPRESENTATIVE, "representative beats");
    TEST_END();
}
