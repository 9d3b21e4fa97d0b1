/* A user's own records: a folder of records (WFDB or any format mrm_record_read takes) and a CSV
 * `record,labels[,fold]`. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data/dataset.h"
#include "io/csv.h"

mrm_status mrm_records_load(mrm_dataset *ds, const char *dir, const char *labels_csv, const mrm_load_options *opt,
                            mrm_error *err) {
    memset(ds, 0, sizeof *ds);
    mrm_load_options none;
    memset(&none, 0, sizeof none);
    if (!opt) opt = &none;
    mrm_csv t;
    mrm_candidates cand;
    memset(&cand, 0, sizeof cand);
    mrm_status rc = mrm_csv_read(&t, labels_csv, err);
    if (rc != MRM_OK) return rc;
    int c_rec, c_lab;
    if ((rc = mrm_csv_require_col(&t, "record", &c_rec, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&t, "labels", &c_lab, err)) != MRM_OK)
        goto done;
    int c_fold = mrm_csv_col(&t, "fold");
    for (int r = 0; r < t.n_rows; r++) {
        int line = t.row_line[r];
        const char *name = mrm_csv_cell(&t, r, c_rec);
        if (!name[0] || strlen(name) >= 64) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record: '%s' is empty or longer than 63 characters", labels_csv, line, name);
            goto done;
        }
        if (strstr(name, "..")) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record: '%s' leaves the records folder", labels_csv, line, name);
            goto done;
        }
        mrm_candidate *c = mrm_candidates_add(&cand, name);
        if (!c) {
            rc = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
            goto done;
        }
        c->line = line;
        /* labels: ';'-separated, spaces around each trimmed */
        const char *s = mrm_csv_cell(&t, r, c_lab);
        while (*s) {
            const char *e = strchr(s, ';');
            if (!e) e = s + strlen(s);
            const char *a = s, *b = e;
            while (a < b && isspace((unsigned char)*a)) a++;
            while (b > a && isspace((unsigned char)b[-1])) b--;
            if (b > a) {
                char lab[64];
                if ((size_t)(b - a) >= sizeof lab) {
                    rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: labels: a label longer than 63 characters", labels_csv, line);
                    goto done;
                }
                memcpy(lab, a, (size_t)(b - a));
                lab[b - a] = '\0';
                if (mrm_candidate_add_label(c, lab) != 0) {
                    rc = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
                    goto done;
                }
            }
            s = *e ? e + 1 : e;
        }
        if (c_fold >= 0) {
            long fold;
            const char *fs = mrm_csv_cell(&t, r, c_fold);
            if (mrm_parse_long(fs, &fold) != 0 || fold < 1 || fold > 31) {
                rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: fold: '%s' is not an integer 1..31", labels_csv, line, fs);
                goto done;
            }
            c->fold = (int)fold;
        }
        if (!opt->labels_only) {
            char rec[4096], found[4096];
            if (mrm_path_join(rec, sizeof rec, dir, name) != 0) {
                rc = mrm_fail(err, MRM_ERR_INVALID, "%s:%d: path too long", labels_csv, line);
                goto done;
            }
            /* a WFDB record, a .mat, or a file of another format (named with or without its extension) */
            size_t fl;
            if (mrm_record_resolve(rec, found, sizeof found) == 0 &&
                !(c->path = strdup((fl = strlen(found)) > 4 && !strcmp(found + fl - 4, ".hea") ? rec : found))) {
                rc = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
    }
    snprintf(ds->source, sizeof ds->source, "records");
    snprintf(ds->task, sizeof ds->task, "records");
    if (c_fold >= 0) {
        mrm_folds folds = mrm_options_folds(opt);
        char ftext[64];
        mrm_folds_format(&folds, ftext, sizeof ftext);
        snprintf(ds->split_rule, sizeof ds->split_rule, "folds %s (fold column)", ftext);
    } else {
        mrm_candidates_random_split(&cand, opt->seed);
        snprintf(ds->split_rule, sizeof ds->split_rule, "random 80/10/10, seed %llu", opt->seed);
    }
    /* records without a label are kept: they are negatives for every class */
    rc = mrm_dataset_build(ds, &cand, opt, 0, MRM_FIT_CROP_PAD, NULL, 0, labels_csv, err);
done:
    if (rc != MRM_OK) mrm_dataset_free(ds);
    mrm_candidates_free(&cand);
    mrm_csv_free(&t);
    return rc;
}
