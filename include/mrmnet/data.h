/* mrmnet public API: data. Included by mrmnet.h; see the conventions there.
 *
 * Datasets (PTB-XL's six tasks, CPSC2018, a user's folder of WFDB records), the preprocessing of
 * one record into the model's input (12 leads in PTB-XL order x 1000 samples at 100 Hz, mV), the
 * train/validation/test split by folds, the global standardisation, and `prepare`'s output folder. */
#ifndef MRMNET_DATA_H
#define MRMNET_DATA_H

#include "../mrmnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MRM_LEADS 12
#define MRM_SAMPLES 1000
#define MRM_FS 100.0

/* The model's lead order. */
extern const char *const mrm_lead_names[MRM_LEADS]; /* I, II, III, aVR, aVL, aVF, V1 .. V6 */

/* ---- preprocessing of one record ----------------------------------------------------------- */

/* How a record of another length than 10 s becomes 1000 samples. */
typedef enum mrm_fit_mode {
    MRM_FIT_CROP_PAD = 0, /* keep the first 10 s; zero-pad a shorter record at its end */
    MRM_FIT_STRETCH = 1,  /* keep the first 10 s; resample a shorter record whole to 1000 samples */
    MRM_FIT_UNNAMED_STANDARD = 0x100 /* flag: 12 leads that all lack a name are taken to be in the
                                        standard order (CPSC2018's MATLAB v5 files) */
} mrm_fit_mode;

/* What preprocessing did to one record. */
typedef struct mrm_preprocess_info {
    long long nan_samples; /* NaN (invalid) samples set to 0 */
    int cropped;           /* longer than 10 s: cut */
    int padded;            /* shorter: zero-padded (MRM_FIT_CROP_PAD) */
    int stretched;         /* shorter: stretched (MRM_FIT_STRETCH) */
    int resampled;         /* fs was not 100 Hz */
    int reordered;         /* the leads were not in the model's order */
    int derived;           /* bit i set: model lead i (mrm_lead_names) was computed from two limb leads */
    int ignored;           /* signals not used: extra or non-standard leads (vx, vy, vz, V3R, ...) */
    double unit_scale;     /* factor applied to reach mV (1 for mV, 0.001 for uV) */
} mrm_preprocess_info;

/* Turns a record (any lead set from which the 12 leads can be formed, see mrm_lead_map_of; any
 * sampling rate, any length, mV/uV/V) into out[12 * 1000] (lead-major, mV, 100 Hz): NaN -> 0,
 * leads reordered to mrm_lead_names by their name, missing limb leads derived, resampled to 100 Hz
 * with libsamplerate (sinc, medium quality, 97 dB), first 10 s kept, a shorter record padded or
 * stretched as `mode` says. A record whose leads cannot form the 12 is an error that lists the
 * leads there and those missing. `info` may be NULL. No standardisation here (see mrm_standardise). */
mrm_status mrm_preprocess_record(const struct mrm_record *rec, float *out, int mode,
                                 mrm_preprocess_info *info, mrm_error *err);

/* The whole record as the model's leads at 100 Hz: *out (malloc'ed, caller frees) is (12, *n_out)
 * lead-major in mV, the leads formed as mrm_preprocess_record forms them, every sample kept
 * (*n_out = round(n_samples * 100 / fs)). For analysing a long record in 10 s windows. */
mrm_status mrm_preprocess_full(const struct mrm_record *rec, int mode, float **out, long long *n_out,
                               mrm_preprocess_info *info, mrm_error *err);

/* The index (0..11) of a lead name in mrm_lead_names, case-insensitive, spaces ignored, across the
 * naming habits of the formats ("I", "Lead I", "MDC_ECG_LEAD_I", "ECG I", "aVR"/"AVR"); -1 if not
 * one of the 12 (V3R, V7, vx, MLII, ...). */
int mrm_lead_index(const char *name);

/* Which of a record's signals give the model's 12 leads. */
typedef struct mrm_lead_map {
    int src[MRM_LEADS]; /* the signal of each model lead, -1 where it is derived */
    int derived;        /* bit i: model lead i is derived from two other limb leads */
    int ignored;        /* signals that are none of the 12 (extra or non-standard leads) */
    int reordered;      /* the signals are not in the model's order */
} mrm_lead_map;

/* Matches a record's signals to the 12 leads by name: extra leads (the 15-lead PTB records' vx, vy,
 * vz) are ignored; V1-V6 are needed, and two of I, II and III, from which the other limb leads are
 * derived (Einthoven and Goldberger) when absent. A record that lacks them, or names a lead twice,
 * is an error listing the signals there, those not standard, and the leads missing. With
 * MRM_FIT_UNNAMED_STANDARD in `mode`, 12 signals without names are taken in the standard order. */
mrm_status mrm_lead_map_of(const struct mrm_record *rec, int mode, mrm_lead_map *map, mrm_error *err);

/* Resamples `channels` interleaved channels of n_in frames (in[t * channels + c]) to exactly
 * n_out frames (out[t * channels + c]) with libsamplerate at ratio n_out / n_in (sinc, medium
 * quality: 97 dB SNR, 90% of the band; 10 ms per 12 x 5500-sample record, against 38 ms for best
 * quality). The straight line through each channel's first and last frames is taken out before
 * and added back after, so that a signal not at zero at its ends does not ring there. */
mrm_status mrm_resample(const float *in, int channels, long long n_in, float *out, long long n_out, mrm_error *err);

/* ---- signal checks ---------------------------------------------------------------------------- */

/* What makes a recording unfit to be labelled as an ECG. Leads are bits in mrm_lead_names order;
 * only the leads the file holds are checked. */
typedef struct mrm_signal_quality {
    int flat;          /* leads whose range is under 20 uV in more than half of their 2 s segments */
    int invalid;       /* leads with more than half of their samples invalid (NaN) */
    int clipped;       /* leads held at their extreme value (runs of 3+ samples, 0.5% of the samples) */
    int amplitude;     /* 1: the median lead spans more than 15 mV (0.5-99.5 percentiles); -1: less
                          than 0.05 mV: not an ECG in the stated units (units or gain wrong) */
    double range_mv;   /* that median span, mV */
    char summary[512]; /* "" when the recording passes, else what is wrong ("flat: V1, V2; ...") */
} mrm_signal_quality;

/* Checks a record's leads (matched as mrm_lead_map_of matches them; `mode` as there). Fails only
 * when the leads cannot be matched; a recording that is not fit is reported in q->summary. */
mrm_status mrm_quality_check(const struct mrm_record *rec, int mode, mrm_signal_quality *q, mrm_error *err);

/* ---- splits ------------------------------------------------------------------------------------ */

enum { MRM_SPLIT_NONE = -1, MRM_SPLIT_TRAIN = 0, MRM_SPLIT_VAL = 1, MRM_SPLIT_TEST = 2 };
extern const char *const mrm_split_names[3]; /* "train", "val", "test" */

/* Which folds (1..31) make each split: bit f of a mask = fold f. */
typedef struct mrm_folds {
    unsigned train, val, test;
} mrm_folds;

/* The default: train 1-8, validation 9, test 10. */
mrm_folds mrm_folds_default(void);
/* Parses "1-8/9/10" (each part a comma list of folds or ranges: "1-6,8/7/9,10"). The three parts
 * must not overlap. */
mrm_status mrm_folds_parse(const char *text, mrm_folds *folds, mrm_error *err);
/* Formats folds as "1-8/9/10" into out. */
void mrm_folds_format(const mrm_folds *folds, char *out, size_t outsz);

/* ---- datasets ---------------------------------------------------------------------------------- */

/* A dataset split into train / val / test. Records outside the three splits are not kept. */
typedef struct mrm_dataset {
    int n_classes;
    char **classes;      /* n_classes names, sorted byte-wise (as Python's sorted()) */
    long long n;         /* records, in the source's order (PTB-XL: by ecg_id) */
    char **ids;          /* n record ids (PTB-XL: the ecg_id; CPSC: "A0001"; users: the record) */
    float *y;            /* (n, n_classes) multi-hot 0/1 */
    int *fold;           /* n folds (0 where the split was drawn at random) */
    int *split;          /* n MRM_SPLIT_* values */
    float *X;            /* (n, 12, 1000) mV, or standardised after mrm_standardise; NULL when
                            loaded with labels_only */
    /* what happened on the way */
    char source[16];     /* "ptb-xl", "cpsc2018", "records" */
    char task[32];       /* PTB-XL task, or "cpsc2018" / "records" */
    char split_rule[160]; /* "folds 1-8/9/10 (strat_fold)" or "random 80/10/10, seed 1" */
    double fs_source;    /* sampling rate of the files read (0 if mixed or labels only) */
    long long n_listed;  /* records the label table lists */
    long long n_no_label;/* dropped: no label for the task */
    long long n_missing; /* dropped: signal files absent (skip_missing) */
    long long n_other_fold; /* dropped: fold in none of the three splits */
    long long n_cropped, n_padded, n_stretched, n_resampled, n_reordered;
    long long nan_samples;
    /* integrity of the records read (see mrm_record_integrity_check): records with a checksum
     * mismatch, with an initial-value mismatch, with invalid samples */
    long long n_checksum_mismatch, n_init_mismatch, n_invalid_records;
    long long n_unfit;   /* records that fail the signal checks (mrm_quality_check), kept */
    char **unfit;        /* n_unfit lines "id: what is wrong", sorted */
    double mean, std;    /* the standardisation (0 and 1 before mrm_standardise) */
    /* set by mrm_standardise_fixed / mrm_dataset_remap (prepare --standardise-like, --class-map) */
    char standardised_like[1024]; /* the model whose mean and std were applied ("" if fitted) */
    char class_map[1024];         /* the class map applied ("" if none) */
    long long n_outside;          /* records with a label outside the class list (label dropped) */
    long long n_outside_unlabelled; /* of them: left with no label (negatives for every class) */
    int n_outside_labels;         /* distinct labels outside the class list */
    char **outside_labels;        /* their names and the records carrying each */
    long long *outside_counts;
    struct mrm_signal_list *signals_; /* the records still to read (defer_signals; internal) */
} mrm_dataset;
typedef struct mrm_signal_list mrm_signal_list;

/* Options of the loaders. Zero-initialise, then set what you need. */
typedef struct mrm_load_options {
    mrm_folds folds;          /* all zero -> the default 1-8/9/10 */
    int hr;                   /* PTB-XL: read the 500 Hz files (filename_hr) and resample */
    int skip_missing;         /* absent signal files: skip and count instead of failing */
    int labels_only;          /* build labels, ids and splits; read no signals (X stays NULL) */
    const char *labels_file;  /* CPSC2018: REFERENCE.csv override */
    const char *folds_file;   /* CPSC2018: icbeb_database.csv override */
    unsigned long long seed;  /* random split (users' records without a fold column; CPSC without
                                 icbeb_database.csv): 80/10/10 with this seed */
    int threads;              /* OpenMP threads for reading records (0: OpenMP's default) */
    mrm_progress_fn progress; /* may be NULL */
    void *progress_user;
    int strict;               /* a checksum or initial-value mismatch, or an invalid sample, fails the
                                 load; without it each is a warning (log) and counted in the dataset */
    mrm_log_fn log;           /* warnings (may be NULL) */
    void *log_user;
    int defer_signals;        /* keep the list of records instead of reading their signals (X stays
                                 NULL): mrm_prepare_stream reads them, a few at a time */
} mrm_load_options;

/* PTB-XL from its folder (ptbxl_database.csv, scp_statements.csv, records100/ or records500/).
 * task: "all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm" (as the PTB-XL
 * benchmark builds them: any code counts whatever its likelihood, records without a label for the
 * task dropped, classes sorted by name). */
mrm_status mrm_ptbxl_load(mrm_dataset *ds, const char *dir, const char *task, const mrm_load_options *opt,
                          mrm_error *err);

/* CPSC2018 from a folder holding REFERENCE.csv, icbeb_database.csv (folds; optional, else a
 * seeded random split) and the signals: <name>.hea (+.mat, the Challenge 2020 WFDB copy) or
 * <name>.mat (original MATLAB v5), in the folder or its immediate subfolders. 500 Hz -> 100 Hz,
 * first 10 s, shorter records stretched. Classes are the ICBEB codes, sorted:
 * 1AVB AFIB CLBBB CRBBB NORM PAC STD_ STE_ VPC. */
mrm_status mrm_cpsc_load(mrm_dataset *ds, const char *dir, const mrm_load_options *opt, mrm_error *err);

/* A user's records: `labels_csv` has columns `record` (a path relative to `dir`, without
 * extension) and `labels` (class names separated by ';', may be empty), optionally `fold` (an
 * integer 1..31; without it a seeded random 80/10/10 split). Any sampling rate and length
 * (cropped or zero-padded to 10 s). A row with an empty `labels` cell is dropped and counted
 * (n_no_label), as PTB-XL's records without a label are; a record on two rows is an error naming
 * both lines. Record names may contain '/' (subfolders) but not "..". */
mrm_status mrm_records_load(mrm_dataset *ds, const char *dir, const char *labels_csv, const mrm_load_options *opt,
                            mrm_error *err);

void mrm_dataset_free(mrm_dataset *ds);

/* Fits ONE mean and ONE population standard deviation (ddof 0, in double) on every value of the
 * training split and applies x' = (x - mean) / std to every split. Fails if the training split is
 * empty or constant. */
mrm_status mrm_standardise(mrm_dataset *ds, mrm_error *err);

/* Applies x' = (x - mean) / std with a given mean and std (a trained model's, for evaluating it
 * on other data: prepare --standardise-like); `like` names where they come from (prepare.json). */
mrm_status mrm_standardise_fixed(mrm_dataset *ds, double mean, double std, const char *like, mrm_error *err);

/* ---- class maps -------------------------------------------------------------------------------
 * A CSV with columns `from` and `to`: each row maps one label of the data (or one class of a
 * model) to another name; several rows may map one label to several names and several labels to
 * one name. Names are compared exactly; empty names and repeated rows are errors. */
typedef struct mrm_class_map {
    int n;
    char **from, **to;
    char path[1024];
} mrm_class_map;
mrm_status mrm_class_map_parse(mrm_class_map *m, const char *name, const char *text, size_t len, mrm_error *err);
mrm_status mrm_class_map_read(mrm_class_map *m, const char *path, mrm_error *err);
void mrm_class_map_free(mrm_class_map *m);

/* Relabels a dataset: each label becomes the names the map gives it (itself when the map does not
 * list it; map may be NULL), and the classes become `classes` in that order (n_classes of them;
 * NULL: the sorted names that occur). A label outside `classes` is dropped; the records carrying
 * one are counted in ds->n_outside (per label in outside_labels / outside_counts), those left
 * with no label in n_outside_unlabelled. */
mrm_status mrm_dataset_remap(mrm_dataset *ds, const mrm_class_map *map, const char *const *classes, int n_classes,
                             mrm_error *err);

/* Writes X_{train,val,test}.npy (N,12,1000), y_*.npy (N,C), ids_*.txt, classes.txt and
 * prepare.json as the folder out_dir, atomically as a whole: they are written into a new folder
 * beside it, which takes out_dir's place only when complete (a kill leaves out_dir as it was).
 * X files are skipped when the dataset has no signals. An out_dir that exists and is not empty
 * is refused (see mrm_prepare_check_out). */
mrm_status mrm_prepare_write(const mrm_dataset *ds, const char *out_dir, int replace, mrm_error *err);
/* The same for a dataset loaded with defer_signals, in bounded memory whatever its size: the records
 * are read and preprocessed a chunk at a time (a few dozen per thread) straight into the new
 * folder's X files; then one mean and one population std are fitted over the training split with
 * the sums mrm_standardise makes, in its order (a second pass over X_train.npy; the same values
 * bit for bit), or `like_mean` and `like_std` are used when `like` is not NULL (as
 * mrm_standardise_fixed), and the X files are standardised in place before the folder is put in
 * out_dir's place. Fills ds's counts (preprocessing, integrity, signal problems, source rate) and
 * its mean and std, as loading in memory and mrm_standardise do. */
mrm_status mrm_prepare_stream(mrm_dataset *ds, const char *out_dir, int replace, const char *like, double like_mean,
                              double like_std, mrm_error *err);
/* Whether mrm_prepare_write may write out_dir: absent or empty, or (with replace) holding only a
 * prepared folder's files. Anything else is refused with a message naming the folder and a file.
 * Call it before the long work. */
mrm_status mrm_prepare_check_out(const char *out_dir, int replace, mrm_error *err);

#ifdef __cplusplus
}
#endif

#endif
