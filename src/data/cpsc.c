/* CPSC2018: labels from REFERENCE.csv, folds from the PTB-XL benchmark's icbeb_database.csv,
 * signals from the original MATLAB v5 files or the Challenge 2020 WFDB copy. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data/dataset.h"
#include "io/csv.h"

/* CPSC2018 class k (1..9) as the ICBEB code the PTB-XL benchmark uses. */
static const char *const icbeb_codes[10] = {NULL, "NORM", "AFIB", "1AVB", "CLBBB", "CRBBB", "PAC", "VPC", "STD_", "STE_"};

#define MAX_SIGNAL_DIRS 64

/* The folder and its immediate subfolders, sorted by name (the folder itself first). */
static int signal_dirs(const char *dir, char dirs[][1024], int max) {
    int n = 0;
    snprintf(dirs[n++], 1024, "%s", dir);
    DIR *d = opendir(dir);
    if (!d) return n;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        if (mrm_path_join(p, sizeof p, dir, e->d_name) != 0) continue;
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(dirs[n++], 1024, "%s", p);
    }
    closedir(d);
    for (int i = 2; i < n; i++) /* insertion sort of the subfolders */
        for (int j = i; j > 1 && strcmp(dirs[j - 1], dirs[j]) > 0; j--) {
            char t[1024];
            memcpy(t, dirs[j], sizeof t);
            memcpy(dirs[j], dirs[j - 1], sizeof t);
            memcpy(dirs[j - 1], t, sizeof t);
        }
    return n;
}

/* The record path for mrm_record_read: "<d>/<name>" when <d>/<name>.hea exists (WFDB), else
 * "<d>/<name>.mat" (MATLAB v5); NULL when neither is in any folder. */
static char *find_record(char dirs[][1024], int nd, const char *name) {
    char p[2200];
    for (int i = 0; i < nd; i++) {
        snprintf(p, sizeof p, "%s/%s.hea", dirs[i], name);
        if (mrm_file_exists(p)) {
            p[strlen(p) - 4] = '\0';
            return strdup(p);
        }
        snprintf(p, sizeof p, "%s/%s.mat", dirs[i], name);
        if (mrm_file_exists(p)) return strdup(p);
    }
    return NULL;
}

typedef struct fold_key {
    const char *name;
    int row;
} fold_key;

static int cmp_fold_key(const void *a, const void *b) {
    return strcmp(((const fold_key *)a)->name, ((const fold_key *)b)->name);
}

mrm_status mrm_cpsc_load(mrm_dataset *ds, const char *dir, const mrm_load_options *opt, mrm_error *err) {
    memset(ds, 0, sizeof *ds);
    mrm_load_options none;
    memset(&none, 0, sizeof none);
    if (!opt) opt = &none;
    char ref_path[4096], fold_path[4096];
    mrm_csv ref, fd;
    memset(&ref, 0, sizeof ref);
    memset(&fd, 0, sizeof fd);
    mrm_candidates cand;
    memset(&cand, 0, sizeof cand);
    mrm_status rc = MRM_OK;
    fold_key *fkeys = NULL;
    char (*sdirs)[1024] = malloc(sizeof(char[MAX_SIGNAL_DIRS][1024]));
    if (!sdirs) return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");

    if (opt->labels_file) snprintf(ref_path, sizeof ref_path, "%s", opt->labels_file);
    else if (mrm_path_join(ref_path, sizeof ref_path, dir, "REFERENCE.csv") != 0) {
        rc = mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", dir);
        goto done;
    }
    if ((rc = mrm_csv_read(&ref, ref_path, err)) != MRM_OK) goto done;
    int c_rec, c_lab[3];
    if ((rc = mrm_csv_require_col(&ref, "Recording", &c_rec, err)) != MRM_OK ||
        (rc = mrm_csv_require_col(&ref, "First_label", &c_lab[0], err)) != MRM_OK)
        goto done;
    c_lab[1] = mrm_csv_col(&ref, "Second_label");
    c_lab[2] = mrm_csv_col(&ref, "Third_label");

    int have_folds = 1;
    if (opt->folds_file) snprintf(fold_path, sizeof fold_path, "%s", opt->folds_file);
    else if (mrm_path_join(fold_path, sizeof fold_path, dir, "icbeb_database.csv") != 0) {
        rc = mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", dir);
        goto done;
    }
    if (!opt->folds_file && !mrm_file_exists(fold_path)) have_folds = 0;
    int c_fname = -1, c_fold = -1;
    if (have_folds) {
        if ((rc = mrm_csv_read(&fd, fold_path, err)) != MRM_OK) goto done;
        if ((rc = mrm_csv_require_col(&fd, "filename", &c_fname, err)) != MRM_OK ||
            (rc = mrm_csv_require_col(&fd, "strat_fold", &c_fold, err)) != MRM_OK)
            goto done;
        fkeys = malloc((size_t)(fd.n_rows ? fd.n_rows : 1) * sizeof *fkeys);
        if (!fkeys) {
            rc = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int q = 0; q < fd.n_rows; q++) fkeys[q] = (fold_key){mrm_csv_cell(&fd, q, c_fname), q};
        qsort(fkeys, (size_t)fd.n_rows, sizeof *fkeys, cmp_fold_key);
        for (int q = 1; q < fd.n_rows; q++)
            if (!strcmp(fkeys[q - 1].name, fkeys[q].name)) {
                rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record %s has two rows", fold_path, fd.row_line[fkeys[q].row],
                              fkeys[q].name);
                goto done;
            }
    }
    int nd = opt->labels_only ? 0 : signal_dirs(dir, sdirs, MAX_SIGNAL_DIRS);

    for (int r = 0; r < ref.n_rows; r++) {
        int line = ref.row_line[r];
        const char *name = mrm_csv_cell(&ref, r, c_rec);
        if (!name[0] || strlen(name) >= 64 || strchr(name, '/')) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: Recording: bad record name '%s'", ref_path, line, name);
            goto done;
        }
        mrm_candidate *c = mrm_candidates_add(&cand, name);
        if (!c) {
            rc = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
            goto done;
        }
        c->line = line;
        for (int k = 0; k < 3; k++) {
            if (c_lab[k] < 0) continue;
            const char *s = mrm_csv_cell(&ref, r, c_lab[k]);
            if (!s[0]) continue;
            long v;
            if (mrm_parse_integer(s, &v) != 0) v = -1; /* pandas writes "5.0" when a column has blanks */
            if (v < 1 || v > 9) {
                rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: %s: '%s' is not a class 1..9", ref_path, line, ref.header[c_lab[k]], s);
                goto done;
            }
            if (mrm_candidate_add_label(c, icbeb_codes[v]) != 0) {
                rc = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
        if (have_folds) {
            /* the tables list records in different orders: look the name up */
            fold_key key = {name, 0};
            const fold_key *hit = bsearch(&key, fkeys, (size_t)fd.n_rows, sizeof *fkeys, cmp_fold_key);
            int found = hit ? hit->row : -1;
            if (found < 0) {
                rc = mrm_fail(err, MRM_ERR_NOTFOUND, "%s: record %s (%s:%d) has no row, so no fold", fold_path, name, ref_path, line);
                goto done;
            }
            long fold;
            const char *fs = mrm_csv_cell(&fd, found, c_fold);
            if (mrm_parse_integer(fs, &fold) != 0) fold = -1;
            if (fold < 1 || fold > 31) {
                rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: strat_fold: '%s' is not a fold 1..31", fold_path, fd.row_line[found], fs);
                goto done;
            }
            c->fold = (int)fold;
        }
        if (!opt->labels_only) c->path = find_record(sdirs, nd, name);
    }
    snprintf(ds->source, sizeof ds->source, "cpsc2018");
    snprintf(ds->task, sizeof ds->task, "cpsc2018");
    if (have_folds) {
        mrm_folds folds = mrm_options_folds(opt);
        char ftext[64];
        mrm_folds_format(&folds, ftext, sizeof ftext);
        snprintf(ds->split_rule, sizeof ds->split_rule, "folds %s (strat_fold of icbeb_database.csv)", ftext);
    } else {
        mrm_candidates_random_split(&cand, opt->seed);
        snprintf(ds->split_rule, sizeof ds->split_rule, "random 80/10/10, seed %llu (no icbeb_database.csv)", opt->seed);
    }
    rc = mrm_dataset_build(ds, &cand, opt, 1, MRM_FIT_STRETCH | MRM_FIT_UNNAMED_STANDARD, icbeb_codes + 1, 9, ref_path,
                           err);
done:
    if (rc != MRM_OK) mrm_dataset_free(ds);
    mrm_candidates_free(&cand);
    mrm_csv_free(&fd);
    mrm_csv_free(&ref);
    free(sdirs);
    free(fkeys);
    return rc;
}
