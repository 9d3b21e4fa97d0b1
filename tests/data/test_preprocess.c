/* Preprocessing of one record (lead order, units, NaN, resampling, crop/pad/stretch), resampling
 * against analytic sines, folds, standardisation against a direct double computation, and the
 * users' records loader on WFDB files written here (shuffled leads, 250 Hz, 12 s, uV). */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "mrmnet.h"
#include "test_util.h"

#define PI 3.14159265358979323846

static const char *shuffled[12] = {"v6", "AVR", "I", "V1", "iii", "aVL", "V3", "II", "aVF", "V2", "V5", "V4"};

/* An in-memory record: signal s holds f(s, t) = (lead index + 1) * sin(2 pi 3 Hz t) + lead index. */
static void make_record(mrm_record *r, mrm_signal_info *si, double *data, double fs, long long n, const char *const *names,
                        const char *units) {
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "synthetic");
    r->n_signals = 12;
    r->fs = fs;
    r->n_samples = n;
    r->signals = si;
    r->data = data;
    for (int s = 0; s < 12; s++) {
        memset(&si[s], 0, sizeof si[s]);
        snprintf(si[s].description, sizeof si[s].description, "%s", names ? names[s] : "");
        snprintf(si[s].units, sizeof si[s].units, "%s", units);
        int lead = names ? mrm_lead_index(names[s]) : s;
        for (long long t = 0; t < n; t++)
            data[s * n + t] = ((lead + 1) * sin(2 * PI * 3.0 * (double)t / fs) + lead) * (units[0] == 'u' ? 1000.0 : 1.0);
    }
}

static double expected(int lead, double t_seconds) {
    return (lead + 1) * sin(2 * PI * 3.0 * t_seconds) + lead;
}

static void test_leads(void) {
    CHECK(mrm_lead_index("I") == 0 && mrm_lead_index("avr") == 3 && mrm_lead_index(" V6 ") == 11 && mrm_lead_index("AVF") == 5,
          "lead names");
    CHECK(mrm_lead_index("Lead I") == 0 && mrm_lead_index("MDC_ECG_LEAD_AVR") == 3 && mrm_lead_index("ECG V1") == 6 &&
              mrm_lead_index("EKG II") == 1 && mrm_lead_index("MDC_ECG_LEAD_III") == 2 && mrm_lead_index("lead avl") == 4,
          "naming habits");
    CHECK(mrm_lead_index("V3R") == -1 && mrm_lead_index("MDC_ECG_LEAD_V7") == -1 && mrm_lead_index("Lead") == -1 &&
              mrm_lead_index("vx") == -1,
          "non-standard leads");
    CHECK(mrm_lead_index("V7") == -1 && mrm_lead_index("") == -1 && mrm_lead_index("MLII") == -1 && mrm_lead_index("IIII") == -1,
          "unknown leads");
}

static void test_resample(void) {
    /* 500 Hz -> 100 Hz, 3 Hz sine: the interior matches the analytic sine */
    int n = 5000;
    float *in = malloc(sizeof(float) * (size_t)n * 2), out[2000];
    for (int t = 0; t < n; t++) {
        in[2 * t] = (float)sin(2 * PI * 3.0 * t / 500.0);
        in[2 * t + 1] = (float)cos(2 * PI * 7.0 * t / 500.0);
    }
    mrm_error err = {0};
    CHECK(mrm_resample(in, 2, n, out, 1000, &err) == MRM_OK, "%s", err.msg);
    double worst = 0;
    for (int t = 50; t < 950; t++) {
        worst = fmax(worst, fabs(out[2 * t] - sin(2 * PI * 3.0 * t / 100.0)));
        worst = fmax(worst, fabs(out[2 * t + 1] - cos(2 * PI * 7.0 * t / 100.0)));
    }
    CHECK(worst < 1e-3, "500->100 Hz interior error %g", worst);
    /* stretch 700 -> 1000 frames */
    for (int t = 0; t < 700; t++) in[t] = (float)sin(2 * PI * 2.0 * t / 700.0);
    CHECK(mrm_resample(in, 1, 700, out, 1000, &err) == MRM_OK, "%s", err.msg);
    worst = 0;
    for (int t = 50; t < 950; t++) worst = fmax(worst, fabs(out[t] - sin(2 * PI * 2.0 * t / 1000.0)));
    CHECK(worst < 1e-3, "stretch error %g", worst);
    CHECK(mrm_resample(in, 1, 0, out, 10, &err) == MRM_ERR_INVALID, "empty input rejected");
    free(in);
}

static void test_preprocess(void) {
    mrm_record r;
    mrm_signal_info si[12];
    static double data[12 * 6000];
    static float out[12 * 1000];
    mrm_preprocess_info info;
    mrm_error err = {0};

    /* 250 Hz, 12 s, shuffled names, uV, two NaNs: reorder, scale, crop, resample */
    make_record(&r, si, data, 250.0, 3000, shuffled, "uV");
    data[5] = NAN;
    data[2 * 3000 + 2999] = NAN; /* in the part cut away: still counted */
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_OK, "%s", err.msg);
    CHECK(info.reordered && info.cropped && info.resampled && !info.padded && info.nan_samples == 2 && info.unit_scale == 1e-3,
          "info: reordered %d cropped %d resampled %d padded %d nan %lld scale %g", info.reordered, info.cropped, info.resampled,
          info.padded, info.nan_samples, info.unit_scale);
    double worst = 0;
    for (int lead = 0; lead < 12; lead++)
        for (int t = 30; t < 1000; t++)
            if (lead != 11) /* the NaN (set to 0) in lead V6 rings for a while */
                worst = fmax(worst, fabs(out[lead * 1000 + t] - expected(lead, t / 100.0)));
    CHECK(worst < 5e-3, "reordered/resampled signal error %g mV", worst);

    /* 100 Hz, 6 s: zero-padded */
    make_record(&r, si, data, 100.0, 600, NULL, "mV");
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD | MRM_FIT_UNNAMED_STANDARD, &info, &err) == MRM_OK, "%s", err.msg);
    CHECK(info.padded && !info.cropped && !info.resampled && !info.reordered, "pad info");
    int bad = 0;
    for (int lead = 0; lead < 12; lead++)
        for (int t = 0; t < 1000; t++) {
            double e = t < 600 ? (float)expected(lead, t / 100.0) : 0.0;
            bad += fabs(out[lead * 1000 + t] - (float)e) > 1e-6 || (t >= 600 && out[lead * 1000 + t] != 0.0f);
        }
    CHECK(bad == 0, "padded copy: %d differ", bad);
    /* same, stretched: 600 samples -> 1000 over the same 6 s */
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_STRETCH | MRM_FIT_UNNAMED_STANDARD, &info, &err) == MRM_OK, "%s", err.msg);
    CHECK(info.stretched && !info.padded, "stretch info");
    worst = 0;
    for (int lead = 0; lead < 12; lead++)
        for (int t = 30; t < 970; t++) worst = fmax(worst, fabs(out[lead * 1000 + t] - expected(lead, t * 0.006)));
    CHECK(worst < 1e-2, "stretched error %g mV (signals up to 23 mV)", worst);
    /* unnamed leads without the flag: error */
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_ERR_FORMAT && strstr(err.msg, "(unnamed)") && strstr(err.msg, "missing: I, II, V1"),
          "unnamed leads: %s", err.msg);

    make_record(&r, si, data, 500.0, 5000, mrm_lead_names, "mV");
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_OK && !info.cropped && !info.reordered, "10 s at 500 Hz");
    snprintf(si[4].description, sizeof si[4].description, "II");
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_ERR_FORMAT &&
              strstr(err.msg, "synthetic: signal 5: lead II appears twice"), "duplicate lead: %s", err.msg);
    snprintf(si[4].description, sizeof si[4].description, "X9");
    /* aVL replaced by a lead that is none of the 12: ignored, and aVL derived from I and II */
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_OK && info.derived == 1 << 4 && info.ignored == 1,
          "unknown lead instead of aVL: %s (derived %x, ignored %d)", err.msg, info.derived, info.ignored);
    {
        static float ref[12 * 1000];
        snprintf(si[4].description, sizeof si[4].description, "aVL");
        CHECK(mrm_preprocess_record(&r, ref, MRM_FIT_CROP_PAD, &info, &err) == MRM_OK, "%s", err.msg);
        snprintf(si[4].description, sizeof si[4].description, "X9");
        CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_OK, "%s", err.msg);
        double worst = 0;
        for (int t = 0; t < 1000; t++) {
            double I = ref[t], II = ref[1000 + t];
            worst = fmax(worst, fabs(out[4 * 1000 + t] - (I - II / 2)));
        }
        CHECK(worst < 1e-5, "derived aVL = I - II/2: error %g", worst);
    }
    snprintf(si[6].description, sizeof si[6].description, "V3R");
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_ERR_FORMAT && strstr(err.msg, "not standard: X9, V3R") &&
              strstr(err.msg, "missing: V1"),
          "V3R instead of V1: %s", err.msg);
    snprintf(si[6].description, sizeof si[6].description, "V1");
    snprintf(si[4].description, sizeof si[4].description, "aVL");
    snprintf(si[2].units, sizeof si[2].units, "mmHg");
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_ERR_UNSUPPORTED && strstr(err.msg, "'mmHg'"),
          "units: %s", err.msg);
    snprintf(si[2].units, sizeof si[2].units, "mV");
    r.n_signals = 11; /* V6 gone */
    CHECK(mrm_preprocess_record(&r, out, MRM_FIT_CROP_PAD, &info, &err) == MRM_ERR_FORMAT && strstr(err.msg, "11 signals") &&
              strstr(err.msg, "missing: V6"),
          "11 leads: %s", err.msg);
}

static void test_folds(void) {
    mrm_folds f;
    mrm_error err = {0};
    char text[64];
    CHECK(mrm_folds_parse("1-8/9/10", &f, &err) == MRM_OK && f.train == 0x1FE && f.val == 0x200 && f.test == 0x400, "default");
    CHECK(mrm_folds_parse("1-6,8/7/9,10", &f, &err) == MRM_OK, "%s", err.msg);
    mrm_folds_format(&f, text, sizeof text);
    CHECK(!strcmp(text, "1-6,8/7/9-10"), "format '%s'", text);
    CHECK(mrm_folds_parse("1-8/8/10", &f, &err) == MRM_ERR_INVALID && strstr(err.msg, "two splits"), "overlap");
    CHECK(mrm_folds_parse("1-8/9", &f, &err) == MRM_ERR_INVALID, "two parts");
    CHECK(mrm_folds_parse("0-8/9/10", &f, &err) == MRM_ERR_INVALID, "fold 0");
    CHECK(mrm_folds_parse("1-40/9/10", &f, &err) == MRM_ERR_INVALID, "fold 40");
    CHECK(mrm_folds_parse("1-8//10", &f, &err) == MRM_ERR_INVALID, "empty part");
    CHECK(mrm_folds_parse("a/9/10", &f, &err) == MRM_ERR_INVALID, "letters");
    CHECK(mrm_folds_parse("1-8/9/10,", &f, &err) == MRM_ERR_INVALID, "trailing comma");
}

static void test_standardise(void) {
    mrm_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = 3;
    int split[3] = {MRM_SPLIT_TRAIN, MRM_SPLIT_TEST, MRM_SPLIT_TRAIN};
    ds.split = split;
    ds.X = malloc(sizeof(float) * 3 * 12000);
    for (int i = 0; i < 3 * 12000; i++) ds.X[i] = (float)(sin(i * 0.37) * (1 + i % 7) + (i % 3));
    double s = 0, ss = 0;
    for (int k = 0; k < 3; k += 2)
        for (int i = 0; i < 12000; i++) s += ds.X[k * 12000 + i];
    double mean = s / 24000;
    for (int k = 0; k < 3; k += 2)
        for (int i = 0; i < 12000; i++) ss += (ds.X[k * 12000 + i] - mean) * (ds.X[k * 12000 + i] - mean);
    double sd = sqrt(ss / 24000);
    float x1 = ds.X[12000 + 5];
    mrm_error err = {0};
    CHECK(mrm_standardise(&ds, &err) == MRM_OK, "%s", err.msg);
    CHECK_CLOSE(ds.mean, mean, 1e-12, "mean");
    CHECK_CLOSE(ds.std, sd, 1e-12, "std");
    CHECK(ds.X[12000 + 5] == (float)((x1 - mean) / sd), "test split standardised with the training mean/std");
    split[0] = split[2] = MRM_SPLIT_VAL;
    CHECK(mrm_standardise(&ds, &err) == MRM_ERR_INVALID && strstr(err.msg, "empty"), "empty training split");
    free(ds.X);
}

/* Writes a WFDB format-16 record: shuffled lead names, 250 Hz, `n` samples, uV, gain 1 per uV. */
static void write_wfdb(const char *dir, const char *name, long long n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.dat", dir, name);
    FILE *f = fopen(path, "wb");
    for (long long t = 0; t < n; t++)
        for (int s = 0; s < 12; s++) {
            int lead = mrm_lead_index(shuffled[s]);
            int16_t v = (int16_t)lrint(expected(lead, t / 250.0) * 1000.0);
            fwrite(&v, 2, 1, f);
        }
    fclose(f);
    snprintf(path, sizeof path, "%s/%s.hea", dir, name);
    f = fopen(path, "w");
    fprintf(f, "%s 12 250 %lld\n", name, n);
    for (int s = 0; s < 12; s++) fprintf(f, "%s.dat 16 1(0)/uV 16 0 0 0 0 %s\n", name, shuffled[s]);
    fclose(f);
}

static void test_records_loader(void) {
    char dir[4096], csv[4200], out[4200];
    snprintf(dir, sizeof dir, "%s/recs", test_tmp_dir());
    mkdir(dir, 0755);
    const char *names[10] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"};
    for (int i = 0; i < 10; i++) write_wfdb(dir, names[i], i == 3 ? 1000 : 3000); /* r3: 4 s, padded */
    snprintf(csv, sizeof csv, "%s/labels.csv", dir);
    FILE *f = fopen(csv, "w");
    fprintf(f, "record,labels\n");
    for (int i = 0; i < 10; i++) fprintf(f, "%s,%s\n", names[i], i % 3 == 0 ? "AF; NORM" : i % 3 == 1 ? "NORM" : " AF ");
    fclose(f);
    mrm_dataset ds;
    mrm_load_options opt;
    memset(&opt, 0, sizeof opt);
    opt.seed = 7;
    mrm_error err = {0};
    CHECK(mrm_records_load(&ds, dir, csv, &opt, &err) == MRM_OK, "%s", err.msg);
    long long per[3] = {0, 0, 0};
    for (long long k = 0; k < ds.n; k++) per[ds.split[k]]++;
    CHECK(ds.n == 10 && per[0] == 8 && per[1] == 1 && per[2] == 1, "random 80/10/10: %lld %lld %lld", per[0], per[1], per[2]);
    CHECK(ds.n_classes == 2 && !strcmp(ds.classes[0], "AF") && !strcmp(ds.classes[1], "NORM"), "classes");
    CHECK(ds.y[0] == 1 && ds.y[1] == 1 && ds.y[2] == 0 && ds.y[3] == 1 && ds.y[4] == 1 && ds.y[5] == 0, "labels of r0..r2");
    CHECK(ds.n_cropped == 9 && ds.n_padded == 1 && ds.n_reordered == 10 && ds.n_resampled == 10 && ds.fs_source == 250,
          "counts: cropped %lld padded %lld", ds.n_cropped, ds.n_padded);
    double worst = 0;
    for (int lead = 0; ds.X && lead < 12; lead++)
        for (int t = 30; t < 1000; t++) worst = fmax(worst, fabs(ds.X[lead * 1000 + t] - expected(lead, t / 100.0)));
    CHECK(worst < 5e-3, "r0 signal error %g mV", worst);
    for (int t = 400; ds.X && t < 1000; t++) CHECK(ds.X[3 * 12000 + t] == 0.0f, "r3 padded with zeros at %d", t);
    /* the same seed draws the same split; prepare's output reads back */
    mrm_dataset ds2;
    CHECK(mrm_records_load(&ds2, dir, csv, &opt, &err) == MRM_OK && !memcmp(ds.split, ds2.split, sizeof(int) * 10), "seeded split");
    mrm_dataset_free(&ds2);
    CHECK(mrm_standardise(&ds, &err) == MRM_OK, "%s", err.msg);
    snprintf(out, sizeof out, "%s/prep", dir);
    CHECK(mrm_prepare_write(&ds, out, 1, &err) == MRM_OK, "%s", err.msg); /* replaces an earlier run's */
    /* a prepared folder is replaced only when asked, and only when it holds nothing else */
    CHECK(mrm_prepare_write(&ds, out, 0, &err) != MRM_OK && strstr(err.msg, "already holds a prepared dataset"),
          "an existing prepared folder refused: %s", err.msg);
    char p[4400];
    snprintf(p, sizeof p, "%s/notes.txt", out);
    FILE *nf = fopen(p, "w");
    if (nf) fclose(nf);
    CHECK(mrm_prepare_write(&ds, out, 1, &err) != MRM_OK && strstr(err.msg, "notes.txt"), "a user's file kept: %s", err.msg);
    CHECK(mrm_file_exists(p), "the user's file is still there");
    remove(p);
    CHECK(mrm_prepare_write(&ds, out, 1, &err) == MRM_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/prep.tmp.%ld", dir, (long)getpid());
    CHECK(!mrm_file_exists(p) && access(p, F_OK) != 0, "no temporary folder left beside it");
    snprintf(p, sizeof p, "%s/X_train.npy", out);
    float *X = NULL;
    int nd;
    long long sh[4];
    CHECK(mrm_npy_read_f32(p, &X, &nd, sh, &err) == MRM_OK && nd == 3 && sh[0] == 8 && sh[1] == 12 && sh[2] == 1000, "X_train");
    long long first_train = 0;
    while (ds.split[first_train] != MRM_SPLIT_TRAIN) first_train++;
    CHECK(X && !memcmp(X, ds.X + first_train * 12000, 12000 * sizeof(float)), "X_train row 0");
    free(X);
    mrm_dataset_free(&ds);

    /* a fold column; a missing record; a bad fold */
    f = fopen(csv, "w");
    fprintf(f, "record,labels,fold\nr0,AF,1\nr1,NORM,9\nr2,,10\nr3,AF;AF,2\nnothere,AF,1\n");
    fclose(f);
    CHECK(mrm_records_load(&ds, dir, csv, &opt, &err) == MRM_ERR_NOTFOUND && strstr(err.msg, "labels.csv:6: record nothere"),
          "missing record named: %s", err.msg);
    opt.skip_missing = 1;
    /* r2 has no label: dropped and counted, as PTB-XL's records without one */
    CHECK(mrm_records_load(&ds, dir, csv, &opt, &err) == MRM_OK && ds.n == 3 && ds.n_missing == 1 && ds.n_no_label == 1 &&
              ds.n_listed == 5 && ds.split[0] == MRM_SPLIT_TRAIN && ds.split[1] == MRM_SPLIT_VAL && ds.split[2] == MRM_SPLIT_TRAIN &&
              !strcmp(ds.ids[2], "r3"),
          "fold column: %s", err.msg);
    mrm_dataset_free(&ds);
    f = fopen(csv, "w");
    fprintf(f, "record,labels,fold\nr0,AF,x\n");
    fclose(f);
    CHECK(mrm_records_load(&ds, dir, csv, &opt, &err) == MRM_ERR_FORMAT && strstr(err.msg, "labels.csv:2: fold: 'x'"), "bad fold: %s",
          err.msg);
    f = fopen(csv, "w");
    fprintf(f, "name,labels\nr0,AF\n");
    fclose(f);
    CHECK(mrm_records_load(&ds, dir, csv, &opt, &err) == MRM_ERR_FORMAT && strstr(err.msg, "labels.csv:1: no column 'record'"),
          "no record column: %s", err.msg);
    /* a record with a broken header: the reader's error, prefixed with the record */
    snprintf(p, sizeof p, "%s/r1.hea", dir);
    f = fopen(p, "w");
    fprintf(f, "r1 12 abc 3000\n");
    fclose(f);
    f = fopen(csv, "w");
    fprintf(f, "record,labels\nr0,AF\nr1,AF\n");
    fclose(f);
    CHECK(mrm_records_load(&ds, dir, csv, &opt, &err) != MRM_OK && strstr(err.msg, "record r1") && strstr(err.msg, "r1.hea"),
          "broken record: %s", err.msg);
}

int main(void) {
    test_leads();
    test_resample();
    test_preprocess();
    test_folds();
    test_standardise();
    test_records_loader();
    TEST_END();
}
