/* mrmnet prepare: build standardised train/val/test arrays from PTB-XL, CPSC2018 or a folder of
 * the user's WFDB records. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileutil.h"
#include "common/error.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mrmnet prepare --ptbxl DIR [--task TASK] [--hr] --out DIR [options]\n"
            "       mrmnet prepare --cpsc DIR [--cpsc-labels CSV] [--cpsc-folds CSV] --out DIR [options]\n"
            "       mrmnet prepare --records DIR --labels CSV --out DIR [options]\n"
            "\n"
            "Writes into the output folder: X_{train,val,test}.npy (N,12,1000) float32 standardised,\n"
            "y_*.npy (N,C) multi-hot, ids_*.txt, classes.txt and prepare.json.\n"
            "\n"
            "  --ptbxl DIR         PTB-XL folder (ptbxl_database.csv, scp_statements.csv, records100/)\n"
            "  --task TASK         all, diagnostic, subdiagnostic, superdiagnostic (default), form, rhythm\n"
            "  --hr                read the 500 Hz files (records500/) and resample to 100 Hz\n"
            "  --cpsc DIR          CPSC2018 folder: REFERENCE.csv, icbeb_database.csv (folds) and the\n"
            "                      .mat / .hea+.mat files (in DIR or its subfolders)\n"
            "  --cpsc-labels CSV   labels table instead of DIR/REFERENCE.csv\n"
            "  --cpsc-folds CSV    folds table instead of DIR/icbeb_database.csv\n"
            "  --records DIR       a folder of WFDB records (12 leads, any rate, any length)\n"
            "  --labels CSV        columns record,labels[,fold]; labels separated by ';'\n"
            "  --out DIR           output folder (created; a new or empty folder)\n"
            "  --force             replace the prepared dataset already in --out (only when complete)\n"
            "  --folds T/V/T       folds of train/validation/test (default 1-8/9/10)\n"
            "  --seed N            seed of the random 80/10/10 split when there are no folds (default 1)\n"
            "  --skip-missing      skip records whose signal files are absent (counted in prepare.json)\n"
            "  --labels-only       write labels, ids and classes only (no signals are read)\n"
            "  --strict            a checksum or initial-value mismatch, or an invalid sample, is an error\n"
            "                      (without it: a warning, counted in prepare.json under \"integrity\")\n"
            "  --threads N         threads reading records (default: all cores)\n"
            "  --in-memory         hold every record in memory before writing (memory grows with the\n"
            "                      data: 48 KB a record); by default the records are streamed into the\n"
            "                      files a chunk at a time. The files are the same either way\n"
            "  --standardise-like MODEL\n"
            "                      standardise with the mean and std stored in MODEL and use its class\n"
            "                      list (labels outside it are dropped, counted and reported); without\n"
            "                      --folds every record goes to the test split. Then `eval --model MODEL`\n"
            "                      evaluates the model on these records as it was trained\n"
            "  --class-map CSV     columns from,to: rename the data's labels (e.g. SNOMED or CPSC codes\n"
            "                      to a model's classes) before the class list is built\n");
}

/* What --standardise-like takes from a model file's metadata. */
typedef struct {
    double mean, std;
    int n_classes;
    char **classes;
} like_model;

static void like_model_free(like_model *lm) {
    for (int k = 0; k < lm->n_classes; k++) free(lm->classes[k]);
    free(lm->classes);
    memset(lm, 0, sizeof *lm);
}

static int read_like_model(const char *path, like_model *lm, mrm_error *err) {
    mrm_model *m = NULL;
    mrm_meta meta = {0};
    int rc = -1;
    if (mrm_model_load(&m, &meta, path, err)) return -1;
    const char *ms = mrm_meta_get(&meta, "mean"), *ss = mrm_meta_get(&meta, "std"), *cs = mrm_meta_get(&meta, "classes");
    char *end1 = NULL, *end2 = NULL;
    if (ms) lm->mean = strtod(ms, &end1);
    if (ss) lm->std = strtod(ss, &end2);
    if (!ms || !ss || *end1 || *end2 || !isfinite(lm->mean) || !(lm->std > 0) || !isfinite(lm->std)) {
        mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata 'mean' and 'std' are %s and %s, not a standardisation", path, ms ? ms : "absent",
                 ss ? ss : "absent");
        goto done;
    }
    const int c = mrm_model_config_of(m)->n_classes;
    json_error_t je;
    json_t *a = cs ? json_loads(cs, 0, &je) : NULL;
    if (!a || !json_is_array(a) || (int)json_array_size(a) != c) {
        mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata 'classes' is %s, not a list of its %d class names", path, cs ? cs : "absent", c);
        if (a) json_decref(a);
        goto done;
    }
    lm->classes = calloc((size_t)c, sizeof *lm->classes);
    for (int k = 0; lm->classes && k < c; k++) {
        json_t *v = json_array_get(a, (size_t)k);
        if (!json_is_string(v) || !json_string_value(v)[0]) {
            mrm_fail(err, MRM_ERR_FORMAT, "%s: metadata 'classes': entry %d is not a class name", path, k + 1);
            json_decref(a);
            goto done;
        }
        if (!(lm->classes[k] = strdup(json_string_value(v)))) break;
        lm->n_classes = k + 1;
    }
    json_decref(a);
    if (lm->n_classes != c) {
        mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
        goto done;
    }
    rc = 0;
done:
    if (rc) like_model_free(lm);
    mrm_meta_free(&meta);
    mrm_model_free(m);
    return rc;
}

/* Warns of splits too small for their use: a validation or test split of fewer than two records
 * or with no class that has both a positive and a negative record (no AUC, thresholds fitted on
 * nothing), a training split of fewer than two records; with folds asked for, of a fold that
 * holds no record. `train` refuses such a validation split, `eval` such a split. */
static void degenerate_splits(const char *cmd, const mrm_dataset *ds, const mrm_folds *asked) {
    int bad = 0;
    const int c = ds->n_classes;
    if (asked) {
        const unsigned masks[3] = {asked->train, asked->val, asked->test};
        for (int s = 0; s < 3; s++)
            for (int f = 1; f <= 31; f++) {
                if (!(masks[s] & (1u << f))) continue;
                long long k = 0;
                while (k < ds->n && ds->fold[k] != f) k++;
                if (k == ds->n) fprintf(stderr, "mrmnet %s: warning: --folds: fold %d (%s) holds no record\n", cmd, f, mrm_split_names[s]);
            }
    }
    for (int s = 0; s < 3; s++) {
        long long n = 0;
        int usable = s == MRM_SPLIT_TRAIN;
        for (long long k = 0; k < ds->n; k++) n += ds->split[k] == s;
        for (int q = 0; q < c && !usable; q++) {
            long long pos = 0;
            for (long long k = 0; k < ds->n; k++) pos += ds->split[k] == s && ds->y[(size_t)k * c + q] != 0.0f;
            usable = pos > 0 && pos < n;
        }
        if (n >= 2 && usable) continue;
        char why[96];
        if (n < 2) snprintf(why, sizeof why, "%lld record%s", n, n == 1 ? "" : "s");
        else snprintf(why, sizeof why, "%lld records but no class with both a positive and a negative one", n);
        fprintf(stderr, "mrmnet %s: warning: the %s split has %s: too few for %s\n", cmd, mrm_split_names[s], why,
                s == MRM_SPLIT_TRAIN ? "training" : "its metrics (AUC, thresholds)");
        bad = 1;
    }
    if (bad) fprintf(stderr, "mrmnet %s: warning: the splits are %s\n", cmd, ds->split_rule);
}

int cmd_prepare(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *ptbxl = NULL, *cpsc = NULL, *records = NULL, *labels = NULL, *out = NULL;
    const char *task = "superdiagnostic";
    int force = 0, folds_given = 0, in_memory = 0;
    const char *like = NULL, *map_path = NULL;
    mrm_load_options opt;
    memset(&opt, 0, sizeof opt);
    opt.seed = 1;
    mrm_error err;
    memset(&err, 0, sizeof err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
#define VALUE()                                                                   \
    (has_value ? argv[++i] : (fprintf(stderr, "mrmnet %s: %s needs a value\n", cmd, a), (char *)NULL))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--ptbxl")) {
            if (!(ptbxl = VALUE())) return 2;
        } else if (!strcmp(a, "--task")) {
            if (!(task = VALUE())) return 2;
        } else if (!strcmp(a, "--cpsc")) {
            if (!(cpsc = VALUE())) return 2;
        } else if (!strcmp(a, "--cpsc-labels")) {
            if (!(opt.labels_file = VALUE())) return 2;
        } else if (!strcmp(a, "--cpsc-folds")) {
            if (!(opt.folds_file = VALUE())) return 2;
        } else if (!strcmp(a, "--records")) {
            if (!(records = VALUE())) return 2;
        } else if (!strcmp(a, "--labels")) {
            if (!(labels = VALUE())) return 2;
        } else if (!strcmp(a, "--out")) {
            if (!(out = VALUE())) return 2;
        } else if (!strcmp(a, "--folds")) {
            const char *v = VALUE();
            if (!v) return 2;
            if (mrm_folds_parse(v, &opt.folds, &err) != MRM_OK) {
                fprintf(stderr, "mrmnet %s: --folds: %s\n", cmd, err.msg);
                return 2;
            }
            folds_given = 1;
        } else if (!strcmp(a, "--standardise-like")) {
            if (!(like = VALUE())) return 2;
        } else if (!strcmp(a, "--class-map")) {
            if (!(map_path = VALUE())) return 2;
        } else if (!strcmp(a, "--seed")) {
            const char *v = VALUE();
            long s;
            if (!v || cli_parse_int(cmd, a, v, 0, 2147483647L, &s) != 0) return 2;
            opt.seed = (unsigned long long)s;
        } else if (!strcmp(a, "--threads")) {
            const char *v = VALUE();
            long t;
            if (!v || cli_parse_int(cmd, a, v, 1, 1024, &t) != 0) return 2;
            opt.threads = (int)t;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--hr")) {
            opt.hr = 1;
        } else if (!strcmp(a, "--skip-missing")) {
            opt.skip_missing = 1;
        } else if (!strcmp(a, "--labels-only")) {
            opt.labels_only = 1;
        } else if (!strcmp(a, "--in-memory")) {
            in_memory = 1;
        } else if (!strcmp(a, "--strict")) {
            opt.strict = 1;
        } else {
            fprintf(stderr, "mrmnet %s: unknown option '%s'\n", cmd, a);
            usage(stderr);
            return 2;
        }
#undef VALUE
    }
    int sources = (ptbxl != NULL) + (cpsc != NULL) + (records != NULL);
    if (sources != 1 || !out) {
        fprintf(stderr, "mrmnet %s: give exactly one of --ptbxl, --cpsc, --records, and --out\n", cmd);
        usage(stderr);
        return 2;
    }
    if (records && !labels) {
        fprintf(stderr, "mrmnet %s: --records needs --labels CSV\n", cmd);
        return 2;
    }
    if ((labels && !records) || ((opt.labels_file || opt.folds_file) && !cpsc) || (opt.hr && !ptbxl)) {
        fprintf(stderr, "mrmnet %s: --labels goes with --records, --cpsc-* with --cpsc, --hr with --ptbxl\n", cmd);
        return 2;
    }
    opt.progress = cli_progress;
    opt.log = cli_log;
    opt.defer_signals = !opt.labels_only && !in_memory; /* read while writing, a chunk at a time (bounded memory) */
    if (mrm_prepare_check_out(out, force, &err) != MRM_OK) return cli_report(cmd, &err);
    if (mrm_check_output_dir(out, &err)) return cli_report(cmd, &err);

    /* --standardise-like: the model's mean, std and classes */
    like_model lm;
    memset(&lm, 0, sizeof lm);
    mrm_class_map map;
    memset(&map, 0, sizeof map);
    if (like && read_like_model(like, &lm, &err)) return cli_report(cmd, &err);
    if (map_path && mrm_class_map_read(&map, map_path, &err)) {
        like_model_free(&lm);
        return cli_report(cmd, &err);
    }
    if (like && !folds_given) opt.folds = (mrm_folds){0u, 0u, 0xFFFFFFFEu}; /* every fold: test */

    mrm_dataset ds;
    mrm_status rc;
    if (ptbxl) rc = mrm_ptbxl_load(&ds, ptbxl, task, &opt, &err);
    else if (cpsc) rc = mrm_cpsc_load(&ds, cpsc, &opt, &err);
    else rc = mrm_records_load(&ds, records, labels, &opt, &err);
    const int loaded = rc == MRM_OK;
    if (rc == MRM_OK && like && !folds_given) {
        for (long long k = 0; k < ds.n; k++) ds.split[k] = MRM_SPLIT_TEST;
        snprintf(ds.split_rule, sizeof ds.split_rule, "every record in the test split (--standardise-like)");
    }
    if (rc == MRM_OK && (like || map_path))
        rc = mrm_dataset_remap(&ds, map_path ? &map : NULL, like ? (const char *const *)lm.classes : NULL, lm.n_classes, &err);
    mrm_class_map_free(&map);
    if (rc != MRM_OK) {
        like_model_free(&lm);
        if (loaded) mrm_dataset_free(&ds);
        return cli_report(cmd, &err);
    }
    if (ds.n == 0) {
        mrm_dataset_free(&ds);
        like_model_free(&lm);
        fprintf(stderr, "mrmnet %s: no records left to prepare\n", cmd);
        return 1;
    }
    if (!like || folds_given) degenerate_splits(cmd, &ds, folds_given ? &opt.folds : NULL); /* --standardise-like alone: a test split only */
    /* the signals are read, standardised and written in bounded memory (labels only: no signals;
     * --in-memory: they were read by the loader) */
    if (opt.defer_signals) rc = mrm_prepare_stream(&ds, out, force, like, lm.mean, lm.std, &err);
    else {
        if (!opt.labels_only)
            rc = like ? mrm_standardise_fixed(&ds, lm.mean, lm.std, like, &err) : mrm_standardise(&ds, &err);
        if (rc == MRM_OK) rc = mrm_prepare_write(&ds, out, force, &err);
    }
    like_model_free(&lm);
    if (rc != MRM_OK) {
        mrm_dataset_free(&ds);
        return cli_report(cmd, &err);
    }
    long long per[3] = {0, 0, 0};
    for (long long k = 0; k < ds.n; k++) per[ds.split[k]]++;
    printf("%s %s: %lld records (train %lld, val %lld, test %lld), %d classes", ds.source, ds.task, ds.n, per[0], per[1],
           per[2], ds.n_classes);
    if (!opt.labels_only) printf(", mean %.6g mV, std %.6g mV", ds.mean, ds.std);
    printf("\n");
    if (ds.n_no_label || ds.n_missing || ds.n_other_fold)
        printf("dropped: %lld without a label, %lld with missing files, %lld in other folds\n", ds.n_no_label, ds.n_missing,
               ds.n_other_fold);
    if (ds.n_outside) {
        printf("labels outside the class list (dropped): %lld records", ds.n_outside);
        for (int q = 0; q < ds.n_outside_labels; q++) printf("%s %s x%lld", q ? "," : ":", ds.outside_labels[q], ds.outside_counts[q]);
        printf("; %lld of them have no label left (negatives for every class)\n", ds.n_outside_unlabelled);
    }
    if (ds.n_cropped || ds.n_padded || ds.n_stretched || ds.nan_samples)
        printf("preprocessing: %lld cropped, %lld padded, %lld stretched, %lld NaN samples set to 0\n", ds.n_cropped,
               ds.n_padded, ds.n_stretched, ds.nan_samples);
    if (ds.n_checksum_mismatch || ds.n_init_mismatch || ds.n_invalid_records)
        printf("integrity: %lld records with a checksum mismatch, %lld with an initial-value mismatch, %lld with invalid "
               "samples (warnings; --strict refuses them)\n",
               ds.n_checksum_mismatch, ds.n_init_mismatch, ds.n_invalid_records);
    if (ds.n_unfit) {
        fprintf(stderr, "mrmnet prepare: warning: %lld records fail the signal checks (kept; listed in prepare.json, signal_problems):\n",
                ds.n_unfit);
        for (long long i = 0; i < ds.n_unfit && i < 10; i++) fprintf(stderr, "  %s\n", ds.unfit[i]);
        if (ds.n_unfit > 10) fprintf(stderr, "  ...\n");
    }
    printf("wrote %s\n", out);
    mrm_dataset_free(&ds);
    return 0;
}
