/* The common part of every dataset: splits by fold, class lists, multi-hot labels, reading and
 * preprocessing the signals in parallel, standardisation, and prepare's output folder. */
#include "data/dataset.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "io/npy.h"

const char *const mrm_split_names[3] = {"train", "val", "test"};

/* ---- folds ----------------------------------------------------------------------------------- */

mrm_folds mrm_folds_default(void) {
    mrm_folds f = {0x1FEu, 1u << 9, 1u << 10}; /* bits 1..8, 9, 10 */
    return f;
}

mrm_folds mrm_options_folds(const mrm_load_options *opt) {
    if (opt && (opt->folds.train | opt->folds.val | opt->folds.test)) return opt->folds;
    return mrm_folds_default();
}

/* One part of "1-8/9/10": a comma list of folds or ranges, into a mask. */
static mrm_status parse_fold_list(const char *s, size_t len, unsigned *mask, const char *whole, mrm_error *err) {
    *mask = 0;
    size_t i = 0;
    if (len == 0) return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': an empty part", whole);
    while (i < len) {
        long a = 0, b;
        size_t st = i;
        while (i < len && isdigit((unsigned char)s[i]) && i - st < 3) a = a * 10 + (s[i++] - '0');
        if (i == st) return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': expected a fold number at '%.*s'", whole, (int)(len - st), s + st);
        b = a;
        if (i < len && s[i] == '-') {
            i++;
            st = i;
            b = 0;
            while (i < len && isdigit((unsigned char)s[i]) && i - st < 3) b = b * 10 + (s[i++] - '0');
            if (i == st) return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': range without an end", whole);
        }
        if (a < 1 || b > 31 || a > b) return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': %ld-%ld is not within 1..31", whole, a, b);
        for (long f = a; f <= b; f++) *mask |= 1u << f;
        if (i < len) {
            if (s[i] != ',') return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': unexpected '%c'", whole, s[i]);
            i++;
            if (i == len) return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': trailing ','", whole);
        }
    }
    return MRM_OK;
}

mrm_status mrm_folds_parse(const char *text, mrm_folds *folds, mrm_error *err) {
    const char *s1 = strchr(text, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || strchr(s2 + 1, '/'))
        return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': expected TRAIN/VAL/TEST, e.g. 1-8/9/10", text);
    mrm_folds f;
    mrm_status rc;
    if ((rc = parse_fold_list(text, (size_t)(s1 - text), &f.train, text, err)) != MRM_OK) return rc;
    if ((rc = parse_fold_list(s1 + 1, (size_t)(s2 - s1 - 1), &f.val, text, err)) != MRM_OK) return rc;
    if ((rc = parse_fold_list(s2 + 1, strlen(s2 + 1), &f.test, text, err)) != MRM_OK) return rc;
    if ((f.train & f.val) || (f.train & f.test) || (f.val & f.test))
        return mrm_fail(err, MRM_ERR_INVALID, "folds '%s': a fold is in two splits", text);
    *folds = f;
    return MRM_OK;
}

static void format_mask(unsigned m, char *out, size_t outsz) {
    size_t n = 0;
    out[0] = '\0';
    for (int f = 1; f <= 31; f++) {
        if (!(m & (1u << f))) continue;
        int g = f;
        while (g < 31 && (m & (1u << (g + 1)))) g++;
        int w = g > f ? snprintf(out + n, outsz - n, "%s%d-%d", n ? "," : "", f, g)
                      : snprintf(out + n, outsz - n, "%s%d", n ? "," : "", f);
        if (w < 0 || (size_t)w >= outsz - n) return;
        n += (size_t)w;
        f = g;
    }
}

void mrm_folds_format(const mrm_folds *folds, char *out, size_t outsz) {
    char a[96], b[96], c[96];
    format_mask(folds->train, a, sizeof a);
    format_mask(folds->val, b, sizeof b);
    format_mask(folds->test, c, sizeof c);
    snprintf(out, outsz, "%s/%s/%s", a, b, c);
}

/* ---- candidates ------------------------------------------------------------------------------ */

mrm_candidate *mrm_candidates_add(mrm_candidates *c, const char *id) {
    if (c->n == c->cap) {
        long long cap = c->cap ? c->cap * 2 : 1024;
        mrm_candidate *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        c->v = v;
        c->cap = cap;
    }
    mrm_candidate *r = &c->v[c->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->split = MRM_SPLIT_NONE;
    return r;
}

int mrm_candidate_add_label(mrm_candidate *r, const char *label) {
    for (int i = 0; i < r->n_labels; i++)
        if (!strcmp(r->labels[i], label)) return 0;
    char **v = realloc(r->labels, (size_t)(r->n_labels + 1) * sizeof *v);
    if (!v) return -1;
    r->labels = v;
    if (!(v[r->n_labels] = strdup(label))) return -1;
    r->n_labels++;
    return 0;
}

void mrm_candidates_free(mrm_candidates *c) {
    for (long long i = 0; i < c->n; i++) {
        for (int k = 0; k < c->v[i].n_labels; k++) free(c->v[i].labels[k]);
        free(c->v[i].labels);
        free(c->v[i].path);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

void mrm_candidates_random_split(mrm_candidates *c, unsigned long long seed) {
    if (c->n <= 0) return;
    int *idx = malloc((size_t)c->n * sizeof *idx);
    if (!idx) { /* no memory for a shuffle: fall back to a deterministic stride */
        for (long long i = 0; i < c->n; i++) c->v[i].split = i % 10 < 8 ? MRM_SPLIT_TRAIN : i % 10 == 8 ? MRM_SPLIT_VAL : MRM_SPLIT_TEST;
        return;
    }
    for (long long i = 0; i < c->n; i++) idx[i] = (int)i;
    mrm_rng rng;
    mrm_rng_seed(&rng, seed);
    mrm_rng_shuffle(&rng, idx, (int)c->n);
    long long n_train = c->n * 8 / 10, n_val = c->n / 10;
    for (long long k = 0; k < c->n; k++) {
        mrm_candidate *r = &c->v[idx[k]];
        r->fold = 0;
        r->split = k < n_train ? MRM_SPLIT_TRAIN : k < n_train + n_val ? MRM_SPLIT_VAL : MRM_SPLIT_TEST;
    }
    free(idx);
}

int mrm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- building -------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void signal_list_free(mrm_signal_list *l);

void mrm_dataset_free(mrm_dataset *ds) {
    for (int i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    for (long long i = 0; i < ds->n; i++) free(ds->ids[i]);
    free(ds->ids);
    free(ds->y);
    free(ds->fold);
    free(ds->split);
    free(ds->X);
    for (int i = 0; i < ds->n_outside_labels; i++) free(ds->outside_labels[i]);
    free(ds->outside_labels);
    free(ds->outside_counts);
    for (long long i = 0; i < ds->n_unfit; i++) free(ds->unfit[i]);
    free(ds->unfit);
    signal_list_free(ds->signals_);
    memset(ds, 0, sizeof *ds);
}

static int ends_with_mat(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && !strcmp(path + n - 4, ".mat");
}

static int split_of(const mrm_candidate *r, const mrm_folds *f) {
    if (r->split != MRM_SPLIT_NONE) return r->split;
    if (r->fold < 1 || r->fold > 31) return MRM_SPLIT_NONE;
    unsigned bit = 1u << r->fold;
    if (f->train & bit) return MRM_SPLIT_TRAIN;
    if (f->val & bit) return MRM_SPLIT_VAL;
    if (f->test & bit) return MRM_SPLIT_TEST;
    return MRM_SPLIT_NONE;
}

/* ---- reading the signals ----------------------------------------------------------------------- */

/* The records of a dataset still to read (mrm_load_options.defer_signals), and how. */
struct mrm_signal_list {
    long long n;
    char **paths; /* n, in the dataset's order */
    int fit_mode, strict, threads;
    mrm_progress_fn progress;
    void *progress_user;
    mrm_log_fn log;
    void *log_user;
};

static void signal_list_free(mrm_signal_list *l) {
    if (!l) return;
    for (long long k = 0; k < l->n; k++) free(l->paths[k]);
    free(l->paths);
    free(l);
}

/* What reading the records found, summed over the chunks they are read in. */
typedef struct read_tally {
    long long n_crop, n_pad, n_stretch, n_res, n_reord, n_nan, n_cks, n_init, n_inv;
    long long n_warned, done;
    double fs_first;
    int fs_mixed;
} read_tally;

static const long long max_warnings = 20; /* integrity warnings logged; then one line saying how many more */

static void tally_init(read_tally *t) {
    memset(t, 0, sizeof *t);
    t->fs_first = -1.0;
}

/* Reads and preprocesses records k0..k1-1 of ds into out (row k - k0 each), in parallel. On
 * failure, the error of the first failing record (in the dataset's order), naming it. */
static mrm_status read_rows(mrm_dataset *ds, const mrm_signal_list *l, long long k0, long long k1, float *out, read_tally *t,
                            mrm_error *err) {
    const size_t per = (size_t)MRM_LEADS * MRM_SAMPLES;
    long long first_bad = -1, done = t->done;
    mrm_error bad_err;
    memset(&bad_err, 0, sizeof bad_err);
    long long n_crop = 0, n_pad = 0, n_stretch = 0, n_res = 0, n_reord = 0, n_nan = 0, n_cks = 0, n_init = 0, n_inv = 0;
    long long n_warned = t->n_warned;
    double fs_first = t->fs_first;
    int fs_mixed = t->fs_mixed;
#pragma omp parallel for schedule(dynamic, 4) num_threads(l->threads) \
    reduction(+ : n_crop, n_pad, n_stretch, n_res, n_reord, n_nan, n_cks, n_init, n_inv)
    for (long long k = k0; k < k1; k++) {
        mrm_record rec;
        memset(&rec, 0, sizeof rec);
        mrm_error e;
        memset(&e, 0, sizeof e);
        mrm_preprocess_info info;
        mrm_status st = mrm_record_read(&rec, l->paths[k], l->strict ? MRM_READ_STRICT : 0, &e);
        char why[1024] = "";
        mrm_record_integrity in = {0, 0, 0};
        if (st == MRM_OK && mrm_record_integrity_check(&rec, &in, why, sizeof why)) {
            if (l->strict) st = mrm_fail(&e, MRM_ERR_CHECK, "%s (an error with --strict)", why);
            n_cks += in.checksum_mismatches > 0;
            n_init += in.init_value_mismatches > 0;
            n_inv += in.invalid_samples > 0;
        }
        if (st == MRM_OK) st = mrm_preprocess_record(&rec, out + (size_t)(k - k0) * per, l->fit_mode, &info, &e);
        /* the signal checks: such records are kept (their labels are the table's) and listed */
        mrm_signal_quality q;
        q.summary[0] = '\0';
        if (st == MRM_OK && mrm_quality_check(&rec, l->fit_mode, &q, NULL) != MRM_OK) q.summary[0] = '\0';
        if (st == MRM_OK) {
            n_crop += info.cropped;
            n_pad += info.padded;
            n_stretch += info.stretched;
            n_res += info.resampled;
            n_reord += info.reordered;
            n_nan += info.nan_samples;
        }
#pragma omp critical(mrm_dataset_build)
        {
            if (st != MRM_OK) {
                if (first_bad < 0 || k < first_bad) {
                    first_bad = k;
                    bad_err = e;
                    mrm_error_prefix(&bad_err, "record %s", ds->ids[k]);
                }
            } else {
                if (fs_first < 0) fs_first = rec.fs;
                else if (rec.fs != fs_first) fs_mixed = 1;
                if (why[0] && l->log && n_warned++ < max_warnings) {
                    char msg[1400];
                    snprintf(msg, sizeof msg, "record %s: %s", ds->ids[k], why);
                    l->log(l->log_user, MRM_LOG_WARN, msg);
                }
                if (q.summary[0]) {
                    char line[700];
                    snprintf(line, sizeof line, "%s: %s", ds->ids[k], q.summary);
                    char **grown = realloc(ds->unfit, sizeof *grown * (size_t)(ds->n_unfit + 1));
                    if (grown) {
                        ds->unfit = grown;
                        if ((ds->unfit[ds->n_unfit] = strdup(line))) ds->n_unfit++;
                    }
                }
            }
            done++;
            if (l->progress) l->progress(l->progress_user, "reading records", (size_t)done, (size_t)l->n);
        }
        mrm_record_free(&rec);
    }
    t->n_crop += n_crop, t->n_pad += n_pad, t->n_stretch += n_stretch, t->n_res += n_res, t->n_reord += n_reord;
    t->n_nan += n_nan, t->n_cks += n_cks, t->n_init += n_init, t->n_inv += n_inv;
    t->n_warned = n_warned, t->done = done, t->fs_first = fs_first, t->fs_mixed = fs_mixed;
    if (first_bad >= 0) {
        if (err) *err = bad_err;
        return bad_err.code ? bad_err.code : MRM_ERR_FORMAT;
    }
    return MRM_OK;
}

/* Puts what the reading found into the dataset once every record is read. */
static void tally_finish(mrm_dataset *ds, const mrm_signal_list *l, const read_tally *t) {
    ds->n_cropped = t->n_crop;
    ds->n_padded = t->n_pad;
    ds->n_stretched = t->n_stretch;
    ds->n_resampled = t->n_res;
    ds->n_reordered = t->n_reord;
    ds->nan_samples = t->n_nan;
    ds->n_checksum_mismatch = t->n_cks;
    ds->n_init_mismatch = t->n_init;
    ds->n_invalid_records = t->n_inv;
    if (t->n_warned > max_warnings && l->log) {
        char msg[200];
        snprintf(msg, sizeof msg, "%lld more records with integrity warnings (counted in prepare.json)", t->n_warned - max_warnings);
        l->log(l->log_user, MRM_LOG_WARN, msg);
    }
    if (ds->n_unfit > 1) qsort(ds->unfit, (size_t)ds->n_unfit, sizeof *ds->unfit, cmp_str);
    ds->fs_source = t->fs_mixed ? 0.0 : t->fs_first;
}

mrm_status mrm_dataset_build(mrm_dataset *ds, mrm_candidates *c, const mrm_load_options *opt, int drop_unlabeled,
                             int fit_mode, const char *const *fixed_classes, int n_fixed, const char *table,
                             mrm_error *err) {
    mrm_load_options none;
    memset(&none, 0, sizeof none);
    if (!opt) opt = &none;
    mrm_folds folds = mrm_options_folds(opt);
    ds->n_listed = c->n;
    ds->mean = 0.0;
    ds->std = 1.0;
    /* which records are kept, in the table's order */
    long long *keep = malloc((size_t)(c->n ? c->n : 1) * sizeof *keep);
    if (!keep) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", table);
    long long nk = 0;
    for (long long i = 0; i < c->n; i++) {
        mrm_candidate *r = &c->v[i];
        if (drop_unlabeled && r->n_labels == 0) {
            ds->n_no_label++;
            continue;
        }
        if (split_of(r, &folds) == MRM_SPLIT_NONE) {
            ds->n_other_fold++;
            continue;
        }
        if (!opt->labels_only && r->path && !ends_with_mat(r->path)) {
            /* a header whose signal file is absent counts as missing too */
            mrm_record hdr;
            mrm_error e;
            if (mrm_record_read(&hdr, r->path, MRM_READ_HEADER_ONLY, &e) == MRM_ERR_NOTFOUND) {
                if (!opt->skip_missing) {
                    free(keep);
                    return mrm_fail(err, MRM_ERR_NOTFOUND, "%s:%d: record %s: %s (use --skip-missing to skip such records)", table,
                                    r->line, r->id, e.msg);
                }
                free(r->path);
                r->path = NULL;
            }
            mrm_record_free(&hdr);
        }
        if (!opt->labels_only && !r->path) {
            if (!opt->skip_missing) {
                free(keep);
                return mrm_fail(err, MRM_ERR_NOTFOUND, "%s:%d: record %s: signal files not found (use --skip-missing to skip such records)",
                                table, r->line, r->id);
            }
            ds->n_missing++;
            continue;
        }
        keep[nk++] = i;
    }
    /* classes: the sorted union of the kept records' labels */
    size_t n_all = 0;
    for (long long k = 0; k < nk; k++) n_all += (size_t)c->v[keep[k]].n_labels;
    if (fixed_classes) n_all = (size_t)n_fixed;
    char **names = malloc((n_all ? n_all : 1) * sizeof *names);
    if (!names) {
        free(keep);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", table);
    }
    size_t m = 0;
    if (fixed_classes)
        for (int j = 0; j < n_fixed; j++) names[m++] = (char *)fixed_classes[j];
    else
        for (long long k = 0; k < nk; k++)
            for (int j = 0; j < c->v[keep[k]].n_labels; j++) names[m++] = c->v[keep[k]].labels[j];
    qsort(names, m, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || strcmp(names[u - 1], names[i])) names[u++] = names[i];
    for (long long k = 0; fixed_classes && k < nk; k++)
        for (int j = 0; j < c->v[keep[k]].n_labels; j++)
            if (!bsearch(&c->v[keep[k]].labels[j], names, u, sizeof *names, cmp_str)) {
                mrm_status rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record %s: label '%s' is not a known class", table,
                                         c->v[keep[k]].line, c->v[keep[k]].id, c->v[keep[k]].labels[j]);
                free(names);
                free(keep);
                return rc;
            }
    ds->n_classes = (int)u;
    ds->n = nk;
    ds->classes = calloc(u ? u : 1, sizeof *ds->classes);
    ds->ids = calloc((size_t)(nk ? nk : 1), sizeof *ds->ids);
    ds->y = calloc((size_t)(nk ? nk : 1) * (u ? u : 1), sizeof *ds->y);
    ds->fold = calloc((size_t)(nk ? nk : 1), sizeof *ds->fold);
    ds->split = calloc((size_t)(nk ? nk : 1), sizeof *ds->split);
    int oom = !ds->classes || !ds->ids || !ds->y || !ds->fold || !ds->split;
    for (size_t i = 0; !oom && i < u; i++) oom = !(ds->classes[i] = strdup(names[i]));
    for (long long k = 0; !oom && k < nk; k++) {
        mrm_candidate *r = &c->v[keep[k]];
        oom = !(ds->ids[k] = strdup(r->id));
        ds->fold[k] = r->fold;
        ds->split[k] = split_of(r, &folds);
        for (int j = 0; j < r->n_labels; j++) {
            char **hit = bsearch(&r->labels[j], names, u, sizeof *names, cmp_str);
            ds->y[(size_t)k * u + (size_t)(hit - names)] = 1.0f;
        }
    }
    free(names);
    if (oom) {
        free(keep);
        ds->n_classes = 0; /* the class strings may be partly filled: free what exists */
        for (size_t i = 0; ds->classes && i < u; i++) free(ds->classes[i]);
        free(ds->classes);
        ds->classes = NULL;
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", table);
    }
    if (opt->labels_only || nk == 0) {
        free(keep);
        return MRM_OK;
    }

    /* the records to read, in the dataset's order */
    mrm_signal_list *list = calloc(1, sizeof *list);
    if (list) list->paths = calloc((size_t)nk, sizeof *list->paths);
    if (!list || !list->paths) {
        free(list);
        free(keep);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", table);
    }
    list->n = nk;
    for (long long k = 0; k < nk; k++) { /* taken from the candidates (freed by the caller) */
        list->paths[k] = c->v[keep[k]].path;
        c->v[keep[k]].path = NULL;
    }
    free(keep);
    list->fit_mode = fit_mode;
    list->strict = opt->strict;
    list->threads = opt->threads > 0 ? opt->threads : omp_get_max_threads();
    list->progress = opt->progress;
    list->progress_user = opt->progress_user;
    list->log = opt->log;
    list->log_user = opt->log_user;
    ds->signals_ = list;
    if (opt->defer_signals) return MRM_OK; /* read by mrm_prepare_stream */

    size_t per = (size_t)MRM_LEADS * MRM_SAMPLES;
    ds->X = malloc((size_t)nk * per * sizeof(float));
    if (!ds->X) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %lld x 12 x 1000 floats", table, nk);
    read_tally t;
    tally_init(&t);
    mrm_status rc = read_rows(ds, list, 0, nk, ds->X, &t, err);
    if (rc == MRM_OK) tally_finish(ds, list, &t);
    signal_list_free(ds->signals_);
    ds->signals_ = NULL;
    return rc;
}

/* ---- standardisation ------------------------------------------------------------------------- */

/* One record's sum and sum of squared deviations, in double: the in-memory and the streaming
 * standardisation make the same sums in the same order (the same mean and std bit for bit). */
static double row_sum(const float *x, size_t per) {
    double s = 0.0;
    for (size_t i = 0; i < per; i++) s += x[i];
    return s;
}

static double row_ss(const float *x, size_t per, double mean) {
    double s = 0.0;
    for (size_t i = 0; i < per; i++) {
        double d = (double)x[i] - mean;
        s += d * d;
    }
    return s;
}

static void standardise_rows(float *x, size_t count, double mean, double std) {
    for (size_t i = 0; i < count; i++) x[i] = (float)(((double)x[i] - mean) / std);
}

static mrm_status std_of(double ss, long long count, double *std, mrm_error *err) {
    *std = sqrt(ss / (double)count);
    if (!(*std > 0.0) || !isfinite(*std))
        return mrm_fail(err, MRM_ERR_INVALID, "standardise: the training signals have standard deviation %g", *std);
    return MRM_OK;
}

mrm_status mrm_standardise(mrm_dataset *ds, mrm_error *err) {
    if (!ds->X) return mrm_fail(err, MRM_ERR_INVALID, "standardise: the dataset has no signals");
    size_t per = (size_t)MRM_LEADS * MRM_SAMPLES;
    double sum = 0.0;
    long long count = 0;
    for (long long k = 0; k < ds->n; k++) {
        if (ds->split[k] != MRM_SPLIT_TRAIN) continue;
        sum += row_sum(ds->X + (size_t)k * per, per);
        count += (long long)per;
    }
    if (count == 0) return mrm_fail(err, MRM_ERR_INVALID, "standardise: the training split is empty");
    double mean = sum / (double)count;
    double ss = 0.0;
    for (long long k = 0; k < ds->n; k++) {
        if (ds->split[k] != MRM_SPLIT_TRAIN) continue;
        ss += row_ss(ds->X + (size_t)k * per, per, mean);
    }
    double std;
    mrm_status rc = std_of(ss, count, &std, err);
    if (rc) return rc;
    standardise_rows(ds->X, (size_t)ds->n * per, mean, std);
    ds->mean = mean;
    ds->std = std;
    return MRM_OK;
}

/* ---- streaming prepare ----------------------------------------------------------------------- */

typedef struct stream_ctx {
    mrm_dataset *ds;
    const char *like;
    double like_mean, like_std;
} stream_ctx;

/* Whole writes and reads at an offset, with the file's path and the system's reason on failure. */
static mrm_status pwrite_all(int fd, const void *buf, size_t len, off_t at, const char *path, mrm_error *err) {
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "nothing written");
        p += w, len -= (size_t)w, at += w;
    }
    return MRM_OK;
}

static mrm_status pread_all(int fd, void *buf, size_t len, off_t at, const char *path, mrm_error *err) {
    char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return mrm_fail(err, MRM_ERR_IO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "file shorter than written");
        p += r, len -= (size_t)r, at += r;
    }
    return MRM_OK;
}

/* Writes the X files into dir (prepare's temporary folder), then the other files. */
static mrm_status stream_fill(void *vctx, const char *dir, mrm_error *err) {
    stream_ctx *cx = vctx;
    mrm_dataset *ds = cx->ds;
    const mrm_signal_list *l = ds->signals_;
    const size_t per = (size_t)MRM_LEADS * MRM_SAMPLES, row_bytes = per * sizeof(float);
    char path[3][4096];
    int fd[3] = {-1, -1, -1};
    off_t data_at[3] = {0, 0, 0}, end[3] = {0, 0, 0};
    long long ns[3] = {0, 0, 0};
    for (long long k = 0; k < ds->n; k++) ns[ds->split[k]]++;
    /* a chunk of rows a few dozen records per thread: bounded memory, whatever the dataset's size */
    long long chunk = 32LL * (l->threads > 0 ? l->threads : 1);
    if (chunk > 512) chunk = 512;
    float *rows = malloc((size_t)chunk * row_bytes);
    mrm_status rc = rows ? MRM_OK : mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %lld rows", dir, chunk);
    for (int s = 0; s < 3 && !rc; s++) {
        char name[32];
        snprintf(name, sizeof name, "X_%s.npy", mrm_split_names[s]);
        if (mrm_path_join(path[s], sizeof path[s], dir, name)) {
            rc = mrm_fail(err, MRM_ERR_INVALID, "%s: path too long", dir);
            break;
        }
        fd[s] = open(path[s], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd[s] < 0) {
            rc = mrm_fail(err, MRM_ERR_IO, "%s: cannot create: %s", path[s], strerror(errno));
            break;
        }
        long long shx[3] = {ns[s], MRM_LEADS, MRM_SAMPLES};
        char header[256];
        size_t hl = mrm_npy_header_f32(header, sizeof header, 3, shx);
        if (!hl) rc = mrm_fail(err, MRM_ERR_INVALID, "%s: header too long", path[s]);
        else rc = pwrite_all(fd[s], header, hl, 0, path[s], err);
        data_at[s] = end[s] = (off_t)hl;
    }
    /* pass 1: read and preprocess a chunk, append each row to its split's file; the training
     * split's sum as mrm_standardise makes it */
    read_tally t;
    tally_init(&t);
    double sum = 0.0;
    long long count = 0;
    for (long long k0 = 0; k0 < ds->n && !rc; k0 += chunk) {
        long long k1 = k0 + chunk < ds->n ? k0 + chunk : ds->n;
        rc = read_rows(ds, l, k0, k1, rows, &t, err);
        for (long long k = k0; k < k1 && !rc; k++) {
            const float *x = rows + (size_t)(k - k0) * per;
            int s = ds->split[k];
            if (s == MRM_SPLIT_TRAIN) {
                sum += row_sum(x, per);
                count += (long long)per;
            }
            rc = pwrite_all(fd[s], x, row_bytes, end[s], path[s], err);
            end[s] += (off_t)row_bytes;
        }
    }
    if (!rc) tally_finish(ds, l, &t);
    /* pass 2: the standard deviation around the mean, from X_train.npy in the same order */
    double mean = cx->like_mean, std = cx->like_std;
    if (!rc && !cx->like) {
        if (count == 0) rc = mrm_fail(err, MRM_ERR_INVALID, "standardise: the training split is empty");
        mean = sum / (double)count;
        double ss = 0.0;
        for (long long j = 0; j < ns[MRM_SPLIT_TRAIN] && !rc; j += chunk) {
            long long m = ns[MRM_SPLIT_TRAIN] - j < chunk ? ns[MRM_SPLIT_TRAIN] - j : chunk;
            rc = pread_all(fd[MRM_SPLIT_TRAIN], rows, (size_t)m * row_bytes, data_at[MRM_SPLIT_TRAIN] + (off_t)j * (off_t)row_bytes,
                           path[MRM_SPLIT_TRAIN], err);
            for (long long r = 0; r < m && !rc; r++) ss += row_ss(rows + (size_t)r * per, per, mean);
        }
        if (!rc) rc = std_of(ss, count, &std, err);
    }
    /* pass 3: every file standardised in place, then flushed to the disk */
    for (int s = 0; s < 3 && !rc; s++) {
        for (long long j = 0; j < ns[s] && !rc; j += chunk) {
            long long m = ns[s] - j < chunk ? ns[s] - j : chunk;
            off_t at = data_at[s] + (off_t)j * (off_t)row_bytes;
            rc = pread_all(fd[s], rows, (size_t)m * row_bytes, at, path[s], err);
            if (!rc) standardise_rows(rows, (size_t)m * per, mean, std);
            if (!rc) rc = pwrite_all(fd[s], rows, (size_t)m * row_bytes, at, path[s], err);
        }
        if (!rc && fsync(fd[s]) != 0) rc = mrm_fail(err, MRM_ERR_IO, "%s: cannot sync: %s", path[s], strerror(errno));
    }
    for (int s = 0; s < 3; s++)
        if (fd[s] >= 0 && close(fd[s]) != 0 && !rc) rc = mrm_fail(err, MRM_ERR_IO, "%s: close failed: %s", path[s], strerror(errno));
    free(rows);
    if (rc) return rc;
    ds->mean = mean;
    ds->std = std;
    if (cx->like) snprintf(ds->standardised_like, sizeof ds->standardised_like, "%s", cx->like);
    return mrm_prepare_write_files(ds, dir, err);
}

mrm_status mrm_prepare_stream(mrm_dataset *ds, const char *out_dir, int replace, const char *like, double like_mean,
                              double like_std, mrm_error *err) {
    if (!ds->signals_ || ds->X)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: the dataset was not loaded with defer_signals (use mrm_prepare_write)", out_dir);
    if (ds->signals_->n != ds->n)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: the dataset holds %lld records, its signal list %lld", out_dir, ds->n,
                        ds->signals_->n);
    if (like && (!isfinite(like_mean) || !(like_std > 0.0) || !isfinite(like_std)))
        return mrm_fail(err, MRM_ERR_INVALID, "standardise: mean %g and std %g are not a usable standardisation", like_mean, like_std);
    for (long long k = 0; k < ds->n; k++)
        if (ds->split[k] < 0 || ds->split[k] > 2)
            return mrm_fail(err, MRM_ERR_INVALID, "%s: record %s is in no split", out_dir, ds->ids[k]);
    stream_ctx cx = {ds, like, like_mean, like_std};
    return mrm_prepare_folder(out_dir, replace, stream_fill, &cx, err);
}

/* ---- prepare's output ------------------------------------------------------------------------ */

static mrm_status write_text_atomic(const char *path, const char *text, mrm_error *err) {
    return mrm_write_file_atomic(path, text, strlen(text), err);
}

mrm_status mrm_prepare_write_files(const mrm_dataset *ds, const char *out_dir, mrm_error *err) {
    mrm_status rc = MRM_OK;
    char path[4096];
    size_t per = (size_t)MRM_LEADS * MRM_SAMPLES;
    size_t C = (size_t)ds->n_classes;
    json_t *root = json_object();
    json_t *splits = json_object();
    if (!root || !splits) {
        json_decref(root);
        json_decref(splits);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", out_dir);
    }
    for (int s = 0; s < 3 && rc == MRM_OK; s++) {
        long long ns = 0;
        for (long long k = 0; k < ds->n; k++) ns += ds->split[k] == s;
        float *y = malloc((size_t)(ns ? ns : 1) * (C ? C : 1) * sizeof(float));
        size_t idlen = 1;
        for (long long k = 0; k < ds->n; k++)
            if (ds->split[k] == s) idlen += strlen(ds->ids[k]) + 1;
        char *ids = malloc(idlen);
        long long *cc = calloc(C ? C : 1, sizeof *cc);
        json_t *counts = json_object(), *sj = json_object();
        if (!y || !ids || !cc || !counts || !sj) {
            rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", out_dir);
            json_decref(counts);
            json_decref(sj);
        } else {
            long long j = 0;
            size_t o = 0;
            ids[0] = '\0';
            for (long long k = 0; k < ds->n; k++) {
                if (ds->split[k] != s) continue;
                memcpy(y + (size_t)j * C, ds->y + (size_t)k * C, C * sizeof(float));
                for (size_t q = 0; q < C; q++) cc[q] += ds->y[(size_t)k * C + q] != 0.0f;
                size_t l = strlen(ds->ids[k]);
                memcpy(ids + o, ds->ids[k], l);
                ids[o + l] = '\n';
                o += l + 1;
                ids[o] = '\0';
                j++;
            }
            for (size_t q = 0; q < C; q++) json_object_set_new(counts, ds->classes[q], json_integer(cc[q]));
            json_object_set_new(sj, "records", json_integer(ns));
            json_object_set_new(sj, "class_counts", counts);
            json_object_set_new(splits, mrm_split_names[s], sj);
            /* X: the header, then the split's rows straight from the dataset (no copy) */
            if (ds->X) {
                long long shx[3] = {ns, MRM_LEADS, MRM_SAMPLES};
                char header[256];
                size_t hl = mrm_npy_header_f32(header, sizeof header, 3, shx);
                snprintf(path, sizeof path, "%s/X_%s.npy", out_dir, mrm_split_names[s]);
                mrm_atomic_file af;
                FILE *f = mrm_atomic_open(&af, path, err);
                if (!f) rc = err ? err->code : MRM_ERR_IO;
                int ok = f && hl && fwrite(header, 1, hl, f) == hl;
                for (long long k = 0; ok && k < ds->n; k++)
                    if (ds->split[k] == s) ok = fwrite(ds->X + (size_t)k * per, sizeof(float), per, f) == per;
                if (f && !ok) {
                    mrm_atomic_abort(&af);
                    rc = mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
                } else if (f) {
                    rc = mrm_atomic_commit(&af, err);
                }
            }
            long long shy[2] = {ns, (long long)C};
            if (rc == MRM_OK) {
                snprintf(path, sizeof path, "%s/y_%s.npy", out_dir, mrm_split_names[s]);
                rc = mrm_npy_write_f32(path, y, 2, shy, err);
            }
            if (rc == MRM_OK) {
                snprintf(path, sizeof path, "%s/ids_%s.txt", out_dir, mrm_split_names[s]);
                rc = write_text_atomic(path, ids, err);
            }
        }
        free(cc);
        free(y);
        free(ids);
    }
    if (rc == MRM_OK) {
        size_t len = 1;
        for (size_t q = 0; q < C; q++) len += strlen(ds->classes[q]) + 1;
        char *t = malloc(len);
        if (!t) rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", out_dir);
        else {
            size_t o = 0;
            t[0] = '\0';
            for (size_t q = 0; q < C; q++) o += (size_t)sprintf(t + o, "%s\n", ds->classes[q]);
            snprintf(path, sizeof path, "%s/classes.txt", out_dir);
            rc = write_text_atomic(path, t, err);
            free(t);
        }
    }
    if (rc == MRM_OK) {
        json_t *classes = json_array(), *leads = json_array(), *dropped = json_object(), *pre = json_object();
        for (size_t q = 0; q < C; q++) json_array_append_new(classes, json_string(ds->classes[q]));
        for (int i = 0; i < MRM_LEADS; i++) json_array_append_new(leads, json_string(mrm_lead_names[i]));
        json_object_set_new(root, "source", json_string(ds->source));
        json_object_set_new(root, "task", json_string(ds->task));
        json_object_set_new(root, "split", json_string(ds->split_rule));
        json_object_set_new(root, "classes", classes);
        json_object_set_new(root, "n_classes", json_integer((json_int_t)C));
        json_object_set_new(root, "signals", json_boolean(ds->X != NULL || ds->signals_ != NULL));
        json_object_set_new(root, "mean", json_real(ds->mean));
        json_object_set_new(root, "std", json_real(ds->std));
        if (ds->standardised_like[0]) {
            char note[1200];
            snprintf(note, sizeof note, "the mean and std stored in %s (--standardise-like)", ds->standardised_like);
            json_object_set_new(root, "standardisation", json_string(note));
            json_object_set_new(root, "standardised_like", json_string(ds->standardised_like));
        } else {
            json_object_set_new(root, "standardisation", json_string("one mean and one population std (ddof 0) over every value of the training split"));
        }
        if (ds->class_map[0]) json_object_set_new(root, "class_map", json_string(ds->class_map));
        if (ds->n_outside) {
            json_t *o = json_object(), *per = json_object();
            for (int q = 0; q < ds->n_outside_labels; q++) json_object_set_new(per, ds->outside_labels[q], json_integer(ds->outside_counts[q]));
            json_object_set_new(o, "records", json_integer(ds->n_outside));
            json_object_set_new(o, "records_left_without_label", json_integer(ds->n_outside_unlabelled));
            json_object_set_new(o, "labels", per);
            json_object_set_new(root, "labels_outside_classes", o);
        }
        json_object_set_new(root, "sampling_rate", json_real(MRM_FS));
        json_object_set_new(root, "source_sampling_rate", json_real(ds->fs_source));
        json_object_set_new(root, "samples", json_integer(MRM_SAMPLES));
        json_object_set_new(root, "lead_order", leads);
        json_object_set_new(root, "units", json_string("mV, then standardised"));
        json_object_set_new(root, "records", json_integer(ds->n));
        json_object_set_new(root, "records_listed", json_integer(ds->n_listed));
        json_object_set_new(root, "splits", splits);
        splits = NULL;
        json_object_set_new(dropped, "no_label", json_integer(ds->n_no_label));
        json_object_set_new(dropped, "missing", json_integer(ds->n_missing));
        json_object_set_new(dropped, "other_fold", json_integer(ds->n_other_fold));
        json_object_set_new(root, "dropped", dropped);
        json_object_set_new(pre, "cropped", json_integer(ds->n_cropped));
        json_object_set_new(pre, "padded", json_integer(ds->n_padded));
        json_object_set_new(pre, "stretched", json_integer(ds->n_stretched));
        json_object_set_new(pre, "resampled", json_integer(ds->n_resampled));
        json_object_set_new(pre, "reordered", json_integer(ds->n_reordered));
        json_object_set_new(pre, "nan_samples", json_integer(ds->nan_samples));
        json_object_set_new(root, "preprocessing", pre);
        json_t *integ = json_object();
        json_object_set_new(integ, "checksum_mismatch", json_integer(ds->n_checksum_mismatch));
        json_object_set_new(integ, "init_value_mismatch", json_integer(ds->n_init_mismatch));
        json_object_set_new(integ, "invalid_samples", json_integer(ds->n_invalid_records));
        json_object_set_new(integ, "counts", json_string("records; invalid samples are set to 0 (preprocessing.nan_samples)"));
        json_object_set_new(root, "integrity", integ);
        /* records that fail the signal checks (flat, invalid, clipped, implausible amplitude):
         * kept with their labels, listed here for the user to look at */
        json_t *unfit = json_array();
        for (long long i = 0; i < ds->n_unfit; i++) json_array_append_new(unfit, json_string(ds->unfit[i]));
        json_object_set_new(root, "signal_problems", unfit);
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        if (!text) rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot format prepare.json", out_dir);
        else {
            size_t l = strlen(text);
            char *t2 = malloc(l + 2);
            if (!t2) rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", out_dir);
            else {
                memcpy(t2, text, l);
                t2[l] = '\n';
                t2[l + 1] = '\0';
                snprintf(path, sizeof path, "%s/prepare.json", out_dir);
                rc = write_text_atomic(path, t2, err);
                free(t2);
            }
            free(text);
        }
    }
    json_decref(splits);
    json_decref(root);
    return rc;
}
