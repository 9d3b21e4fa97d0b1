/* Internal: what each loader gives the common dataset builder. */
#ifndef MRM_DATA_DATASET_H
#define MRM_DATA_DATASET_H

#include "mrmnet.h"

/* One record as a label table lists it. */
typedef struct mrm_candidate {
    char id[64];       /* the record id written to ids_*.txt */
    char *path;        /* what mrm_record_read is given; NULL when the signal file was not found */
    int fold;          /* 1..31, or 0 when `split` is already drawn */
    int split;         /* MRM_SPLIT_* when drawn at random, else MRM_SPLIT_NONE (decided by fold) */
    int n_labels;
    char **labels;     /* class names (duplicates allowed; they collapse) */
    int line;          /* the line of the label table (for messages) */
} mrm_candidate;

typedef struct mrm_candidates {
    mrm_candidate *v;
    long long n, cap;
} mrm_candidates;

/* Appends a record; returns it (zeroed but id), or NULL when out of memory. */
mrm_candidate *mrm_candidates_add(mrm_candidates *c, const char *id);
/* Adds a label to a record (copied); -1 when out of memory. */
int mrm_candidate_add_label(mrm_candidate *r, const char *label);
void mrm_candidates_free(mrm_candidates *c);

/* Assigns a seeded random 80/10/10 split to every record (fold 0). */
void mrm_candidates_random_split(mrm_candidates *c, unsigned long long seed);

/* Builds the dataset: keeps the records of the three splits, drops records with no label when
 * `drop_unlabeled`, handles absent files (path NULL: error naming the record, or skipped and
 * counted with opt->skip_missing), sorts the class names (the labels found, or `fixed_classes`
 * when given: every label must be one of them), fills y, and reads and preprocesses
 * the signals in parallel (unless opt->labels_only). `table` names the label file in messages.
 * ds->source, task and split_rule are set by the caller before. */
mrm_status mrm_dataset_build(mrm_dataset *ds, mrm_candidates *c, const mrm_load_options *opt, int drop_unlabeled,
                             int fit_mode, const char *const *fixed_classes, int n_fixed, const char *table,
                             mrm_error *err);

/* Fills folds with opt->folds, or the default when all zero. */
mrm_folds mrm_options_folds(const mrm_load_options *opt);

/* Does a regular file exist at path? */
int mrm_file_exists(const char *path);

/* Writes the files of a prepared folder into out_dir (an existing folder; see mrm_prepare_write,
 * which builds a new folder with it and puts it in place). */
mrm_status mrm_prepare_write_files(const mrm_dataset *ds, const char *out_dir, mrm_error *err);

/* Builds a prepared folder: `fill` writes its files into a new folder beside out_dir, which takes
 * out_dir's place only when complete (see prepare_folder.c); out_dir is checked as
 * mrm_prepare_check_out does, before and again after filling. */
typedef mrm_status (*mrm_prepare_fill_fn)(void *ctx, const char *tmp_dir, mrm_error *err);
mrm_status mrm_prepare_folder(const char *out_dir, int replace, mrm_prepare_fill_fn fill, void *ctx, mrm_error *err);

#endif
