/* A user's own records: a folder of records (WFDB or any format mrm_record_read takes) and a CSV
 * `record,labels[,fold]`. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data/dataset.h"
#include "io/csv.h"

typedef struct row_ref {
    const char *name;
    int line;
} row_ref;

static int cmp_row(const void *a, const void *b) {
    const row_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* A record listed on two rows is an error naming both lines (the first such pair in the file). */
static mrm_status refuse_duplicates(const mrm_csv *t, int c_rec, const char *path, mrm_error *err) {
    if (t->n_rows < 2) return MRM_OK;
    row_ref *v = malloc(sizeof *v * (size_t)t->n_rows);
    if (!v) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    for (int r = 0; r < t->n_rows; r++) v[r] = (row_ref){mrm_csv_cell(t, r, c_rec), t->row_line[r]};
    qsort(v, (size_t)t->n_rows, sizeof *v, cmp_row);
    int first = 0, second = 0;
    const char *name = NULL;
    for (int i = 1; i < t->n_rows; i++)
        if (!strcmp(v[i - 1].name, v[i].name) && (!second || v[i].line < second)) {
            first = v[i - 1].line, second = v[i].line, name = v[i].name;
        }
    mrm_status rc = MRM_OK;
    if (second)
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record '%s' is listed again (first at line %d); each record takes one row",
                      path, second, name, first);
    free(v);
    return rc;
}

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
    if ((rc = refuse_duplicates(&t, c_rec, labels_csv, err)) != MRM_OK) goto done;
    long long no_label = 0;
    for (int r = 0; r < t.n_rows; r++) {
        int line = t.row_line[r];
        const char *name = mrm_csv_cell(&t, r, c_rec);
        if (!name[0] || strlen(name) >= 64) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record: '%s' is empty or longer than 63 characters", labels_csv, line, name);
            goto done;
        }
        if (strstr(name, "..") || mrm_path_escapes(name)) {
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
        if (c->n_labels == 0) { /* no label: dropped and counted, as PTB-XL's records without one */
            no_label++;
            for (int k = 0; k < c->n_labels; k++) free(c->labels[k]);
            free(c->labels);
            cand.n--;
            continue;
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
    /* rows without a label were dropped above, before any random split is drawn */
    rc = mrm_dataset_build(ds, &cand, opt, 0, MRM_FIT_CROP_PAD, NULL, 0, labels_csv, err);
    if (rc == MRM_OK) {
        ds->n_no_label += no_label;
        ds->n_listed = t.n_rows;
    }
done:
    if (rc != MRM_OK) mrm_dataset_free(ds);
    mrm_candidates_free(&cand);
    mrm_csv_free(&t);
    return rc;
}
