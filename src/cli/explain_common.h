/* What `explain` and `report` share: the model with its metadata (classes, thresholds,
 * standardisation, lead order, provenance), a recording read and cut to the analysed 10 s
 * window, and the explanation maps of one recording. */
#ifndef MRM_CLI_EXPLAIN_COMMON_H
#define MRM_CLI_EXPLAIN_COMMON_H

#include <jansson.h>

#include "mrmnet.h"

/* Parses text as a JSON array of n strings or numbers; NULL when absent, not an array or of
 * another length. */
json_t *cli_json_array_of(const char *text, size_t n);

typedef struct xp_model {
    const char *path;
    mrm_model *m;
    mrm_meta meta;
    int c;          /* classes */
    char **classes; /* c names */
    float *thr;     /* c thresholds (0.5 where the file has none) */
    int has_thresholds;
    double mean, sd;
    int lead_map[MRM_LEADS]; /* model input row j = lead lead_map[j] of mrm_lead_names */
} xp_model;

/* Loads the model and its metadata; prints what is wrong ("mrmnet <cmd>: ...") and returns 1, or 0. */
int xp_model_load(const char *cmd, const char *path, xp_model *xm);
void xp_model_free(xp_model *xm);

/* The 10 s windows predict analyses in a recording of m frames at 100 Hz: one every `stride`
 * frames, and a last one ending at the recording's end when more than 1 s would be left out (one
 * window, at 0, when m <= 1000). Returns the count; starts (frames) may be NULL. */
long long xp_window_starts(long long m, long long stride, long long *starts);

/* One recording, its analysed window and the model's input. */
typedef struct xp_record {
    mrm_record rec;        /* as read (physical units, the file's rate) */
    mrm_preprocess_info info;
    mrm_lead_map map;      /* which signals give the 12 leads (mrm_lead_names order) */
    char problems[512];    /* the signal checks' findings, "" when fit */
    double seconds;        /* the recording's length */
    double start_s;        /* the analysed window: [start_s, start_s + 10) */
    float *mv100;          /* (12, 1000) the window at 100 Hz in mV, mrm_lead_names order */
    float *x;              /* (12, 1000) the model's input: standardised, in the model's lead order */
    float *full;           /* (12, frames) the whole recording at 100 Hz in mV, mrm_lead_names order */
    long long frames;
    int n_win;             /* the windows predict analyses (10 s apart; xp_window_starts) */
    long long *win_start;  /* (n_win) their first frames */
} xp_record;

/* Reads `path` and cuts the 10 s window starting at start_s (clamped so that it ends at the
 * recording's end at the latest). A recording shorter than 10 s, or one that fails the signal checks
 * (unless force), is an error (message in err). */
mrm_status xp_record_read(const xp_model *xm, const char *path, double start_s, int force, xp_record *r, mrm_error *err);
/* Makes the window starting at frame `start` (clamped as above) the analysed one. */
void xp_record_window(const xp_model *xm, xp_record *r, long long start);
/* The mean of the heads' probabilities in each of predict's windows, pw (n_win, c), and their mean
 * over the windows, mean (c), as predict aggregates them. The analysed window is left as it was. */
mrm_status xp_window_probs(const xp_model *xm, const xp_record *r, float *pw, float *mean, mrm_error *err);
void xp_record_free(xp_record *r);

/* The model's outputs and maps on one recording, for the classes asked (all when n_sel = 0). */
typedef struct xp_maps {
    int c, nb;              /* classes of the model, branches */
    float *prob;            /* (c) the mean of the heads' probabilities */
    float *score;           /* (c) the explained score: the mean of the heads' logits */
    float *cam;             /* (c, 1000) combined Grad-CAM (rows of classes not asked: 0) */
    float *cam_branch;      /* (c, nb, 1000) */
    float *ixg;             /* (c, 12, 1000) input x gradient, model lead order */
    int *asked;             /* (c) 1 where computed */
} xp_maps;
mrm_status xp_maps_compute(const xp_model *xm, const xp_record *r, const int *asked, xp_maps *mp, mrm_error *err);
void xp_maps_free(xp_maps *mp);

/* "CD" -> "conduction disturbance" for the PTB-XL superclasses and common codes; NULL if unknown. */
const char *xp_class_long_name(const char *code);

/* The factor from a signal's units to mV (1 for "" and mV, 1e-3 for uV, 1e3 for V), 0 if unknown. */
double xp_unit_to_mv(const char *units);

/* A file's base name without its extension ("a/b/00001_lr.hea" -> "00001_lr") into out. */
void xp_base_name(const char *path, char *out, size_t n);

#endif
