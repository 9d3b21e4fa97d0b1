/* PTB-XL: the six tasks of the PTB-XL benchmark (Strodthoff et al. 2021, utils.py
 * compute_label_aggregations / select_data) from ptbxl_database.csv and scp_statements.csv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data/dataset.h"
#include "io/csv.h"

typedef enum { TASK_ALL, TASK_DIAG, TASK_SUB, TASK_SUPER, TASK_FORM, TASK_RHYTHM } ptbxl_task;
static const char *const task_names[] = {"all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"};

/* One row of scp_statements.csv. */
typedef struct statement {
    const char *code;
    int diagnostic, form, rhythm;   /* the 1.0 flags */
    const char *dclass, *dsubclass; /* "" when NaN */
} statement;

/* A flag cell: "1.0" / "1" -> 1, "" / "0.0" -> 0, anything else an error. */
static mrm_status flag_cell(const mrm_csv *t, int row, int col, int *out, mrm_error *err) {
    const char *s = mrm_csv_cell(t, row, col);
    double v;
    if (!s[0]) {
        *out = 0;
        return MRM_OK;
    }
    if (mrm_parse_double(s, &v) != 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: column '%s': '%s' is not a number", t->path, t->row_line[row], t->header[col], s);
    *out = v == 1.0;
    return MRM_OK;
}

static const statement *find_statement(const statement *st, int n, const char *code) {
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].code, code)) return &st[i];
    return NULL;
}

mrm_status mrm_ptbxl_load(mrm_dataset *ds, const char *dir, const char *task, const mrm_load_options *opt,
                          mrm_error *err) {
    memset(ds, 0, sizeof *ds);
    mrm_load_options none;
    memset(&none, 0, sizeof none);
    if (!opt) opt = &none;
    int tk = -1;
    for (int i = 0; i < 6; i++)
        if (task && !strcmp(task, task_names[i])) tk = i;
    if (tk < 0)
        return mrm_fail(err, MRM_ERR_INVALID, "PTB-XL task '%s': expected all, diagnostic, subdiagnostic, superdiagnostic, form or rhythm",
                        task ? task : "(null)");
    char path[4096];
    mrm_csv stab, db;
    memset(&stab, 0, sizeof stab);
    memset(&db, 0, sizeof db);
    mrm_candidates cand;
    memset(&cand, 0, sizeof cand);
    statement *st = NULL;
    mrm_status rc;

    if (mrm_path_join(path, sizeof path, dir, "scp_statements.csv") != 0)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", dir);
    if ((rc = mrm_csv_read(&stab, path, err)) != MRM_OK) goto done;
    int c_diag, c_form, c_rhythm, c_class, c_sub;
    if ((rc = mrm_csv_require_col(&stab, "diagnostic", &c_diag, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&stab, "form", &c_form, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&stab, "rhythm", &c_rhythm, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&stab, "diagnostic_class", &c_class, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&stab, "diagnostic_subclass", &c_sub, err)) != MRM_OK)
        goto done;
    st = calloc((size_t)(stab.n_rows ? stab.n_rows : 1), sizeof *st);
    if (!st) {
        rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int r = 0; r < stab.n_rows; r++) {
        st[r].code = mrm_csv_cell(&stab, r, 0);
        if (!st[r].code[0]) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: empty statement code", path, stab.row_line[r]);
            goto done;
        }
        if ((rc = flag_cell(&stab, r, c_diag, &st[r].diagnostic, err)) != MRM_OK ||
            (rc = flag_cell(&stab, r, c_form, &st[r].form, err)) != MRM_OK ||
            (rc = flag_cell(&stab, r, c_rhythm, &st[r].rhythm, err)) != MRM_OK)
            goto done;
        st[r].dclass = mrm_csv_cell(&stab, r, c_class);
        st[r].dsubclass = mrm_csv_cell(&stab, r, c_sub);
    }

    if (mrm_path_join(path, sizeof path, dir, "ptbxl_database.csv") != 0) {
        rc = mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", dir);
        goto done;
    }
    if ((rc = mrm_csv_read(&db, path, err)) != MRM_OK) goto done;
    int c_id, c_scp, c_fold, c_file;
    if ((rc = mrm_csv_require_col(&db, "ecg_id", &c_id, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&db, "scp_codes", &c_scp, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&db, "strat_fold", &c_fold, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&db, opt->hr ? "filename_hr" : "filename_lr", &c_file, err)) != MRM_OK)
        goto done;
    for (int r = 0; r < db.n_rows; r++) {
        int line = db.row_line[r];
        const char *ids = mrm_csv_cell(&db, r, c_id);
        long id, fold;
        /* pandas may write integers as "1.0"; accept an integral float too */
        if (mrm_parse_integer(ids, &id) != 0 || id < 0) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: ecg_id: '%s' is not a non-negative integer", path, line, ids);
            goto done;
        }
        const char *fs = mrm_csv_cell(&db, r, c_fold);
        if (mrm_parse_integer(fs, &fold) != 0) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: strat_fold: '%s' is not an integer", path, line, fs);
            goto done;
        }
        if (fold < 1 || fold > 31) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: strat_fold: %ld is not within 1..31", path, line, fold);
            goto done;
        }
        mrm_dict_entry e[128];
        int ne;
        if ((rc = mrm_parse_dict_literal(mrm_csv_cell(&db, r, c_scp), e, 128, &ne, err)) != MRM_OK) {
            mrm_error_prefix(err, "%s:%d: scp_codes", path, line);
            goto done;
        }
        char idtext[32];
        snprintf(idtext, sizeof idtext, "%ld", id);
        mrm_candidate *c = mrm_candidates_add(&cand, idtext);
        if (!c) {
            rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        c->fold = (int)fold;
        c->line = line;
        for (int k = 0; k < ne; k++) {
            const statement *s = find_statement(st, stab.n_rows, e[k].key);
            const char *label = NULL;
            switch ((ptbxl_task)tk) {
            case TASK_ALL: label = e[k].key; break;
            case TASK_DIAG: label = s && s->diagnostic ? e[k].key : NULL; break;
            case TASK_SUB: label = s && s->diagnostic && s->dsubclass[0] ? s->dsubclass : NULL; break;
            case TASK_SUPER: label = s && s->diagnostic && s->dclass[0] ? s->dclass : NULL; break;
            case TASK_FORM: label = s && s->form ? e[k].key : NULL; break;
            case TASK_RHYTHM: label = s && s->rhythm ? e[k].key : NULL; break;
            }
            if (label && mrm_candidate_add_label(c, label) != 0) {
                rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
        }
        /* the signal files: <dir>/<filename>.hea (and its .dat) */
        const char *fn = mrm_csv_cell(&db, r, c_file);
        char rec[4096], hea[4200];
        if (!fn[0] || mrm_path_join(rec, sizeof rec, dir, fn) != 0) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: %s: bad file name '%s'", path, line, db.header[c_file], fn);
            goto done;
        }
        if (mrm_path_escapes(fn)) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: %s: '%s' leaves the PTB-XL folder (an absolute path or '..'); refused", path,
                          line, db.header[c_file], fn);
            goto done;
        }
        snprintf(hea, sizeof hea, "%s.hea", rec);
        if (!opt->labels_only && mrm_file_exists(hea) && !(c->path = strdup(rec))) {
            rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    }
    snprintf(ds->source, sizeof ds->source, "ptb-xl");
    snprintf(ds->task, sizeof ds->task, "%s", task_names[tk]);
    mrm_folds folds = mrm_options_folds(opt);
    char ftext[64];
    mrm_folds_format(&folds, ftext, sizeof ftext);
    snprintf(ds->split_rule, sizeof ds->split_rule, "folds %s (strat_fold)", ftext);
    rc = mrm_dataset_build(ds, &cand, opt, 1, MRM_FIT_CROP_PAD, NULL, 0, path, err);
done:
    if (rc != MRM_OK) mrm_dataset_free(ds);
    mrm_candidates_free(&cand);
    free(st);
    mrm_csv_free(&db);
    mrm_csv_free(&stab);
    return rc;
}
