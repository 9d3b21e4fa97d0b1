/* mrmnet predict: label raw recordings with a trained model. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/explain_common.h"
#include "mrmnet/engine_build.h"
#include "common/error.h"
#include "common/fileutil.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet predict --model W.safetensors [options] RECORD... | DIR\n\n"
               "Reads each recording (a WFDB record or header, a CPSC2018 MATLAB v5 .mat, or a file of HL7\n"
               "aECG, GE MUSE or Philips Sierra XML, SCP-ECG, DICOM waveform or EDF, told apart by content;\n"
               "a folder: every record in it and its subfolders), forms the 12 leads by name (extra leads ignored, missing limb\n"
               "leads derived from I and II), checks that it is fit to be labelled (no flat, mostly invalid or\n"
               "clipped leads, an amplitude plausible for an ECG in its units), resamples it to 100 Hz and\n"
               "standardises it with the model's mean and std. A recording longer than 10 s is analysed in\n"
               "10 s windows (a last window ends at the recording's end when more than 1 s would be left\n"
               "out); each class gets the mean and the maximum of its probability (the mean of both heads)\n"
               "over the windows, and the labels are the classes whose mean (or, with --aggregate max, the\n"
               "maximum) is above the model's threshold (0.5 where the model has none). A recording that\n"
               "cannot be used or is not fit, or a folder without records, is reported on stderr (and in\n"
               "--json / --csv with its error) and the others go on; the exit status is then 1. Checksum or\n"
               "initial-value mismatches and invalid samples are warnings (counted in --json), errors with\n"
               "--strict.\n"
               "The model runs in the embeddable engine; --model may also be a quantised model (int8\n"
               "safetensors of mrmnet quantize) or an engine image (.mrme of mrmnet export or quantize).\n\n"
               "options:\n"
               "  --json             one JSON array on stdout, an entry an input with its windows (\"error\"\n"
               "                     where it failed)\n"
               "  --csv              one CSV row an input: record, a column a class, labels, error\n"
               "  --windows          with --csv: one row a window (record, start_s, end_s, classes, labels,\n"
               "                     error)\n"
               "  --strict           a checksum or initial-value mismatch, or an invalid sample, is an error\n"
               "  --stride S         seconds between the starts of the 10 s windows (10)\n"
               "  --aggregate A      mean or max: what the recording's labels are taken from (mean)\n"
               "  --min-seconds S    refuse recordings shorter than S seconds (10, the model's window); a\n"
               "                     shorter one allowed by a lower S is zero-padded to 10 s\n"
               "  --stretch          stretch a record shorter than 10 s instead of zero-padding it\n"
               "  --force            label recordings that fail the signal checks too (the problem is still\n"
               "                     reported)\n"
               "  --threshold X      one threshold for every class instead of the model's\n"
               "  --batch B          inference batch (32)\n"
               "  --threads T        OpenMP threads\n"
               "  --engine-isa SET   the engine's kernels instead of the best this CPU runs (validation):\n"
               "                     portable, avx2, avx512, avx512vnni (x86-64) or neondot (aarch64);\n"
               "                     refused when the CPU lacks them\n");
}

typedef struct item {
    char *path;   /* what mrm_record_read gets */
    char *name;   /* what the output shows */
    char *error;  /* why it could not be labelled (NULL: not known yet / labelled) */
    mrm_record_integrity integrity;
} item;

typedef struct item_list {
    item *v;
    int n, cap;
} item_list;

static int add_item(item_list *l, const char *path, const char *name) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        item *nv = realloc(l->v, sizeof *nv * (size_t)cap);
        if (!nv) return -1;
        l->v = nv, l->cap = cap;
    }
    memset(&l->v[l->n], 0, sizeof l->v[l->n]);
    l->v[l->n].path = strdup(path);
    l->v[l->n].name = strdup(name);
    if (!l->v[l->n].path || !l->v[l->n].name) return -1;
    l->n++;
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A record given on the command line: a .mat with a .hea beside it is the WFDB record. */
static int add_arg(item_list *l, const char *arg) {
    if (ends_with(arg, ".mat")) {
        char hea[4096];
        snprintf(hea, sizeof hea, "%.*s.hea", (int)(strlen(arg) - 4), arg);
        if (file_exists(hea)) return add_item(l, hea, arg);
    }
    return add_item(l, arg, arg);
}

/* An input that cannot be labelled at all (a folder without records, one that cannot be read):
 * an item with its error already set. */
static int add_failed(item_list *l, const char *name, const char *why) {
    if (add_item(l, name, name)) return -1;
    l->v[l->n - 1].error = strdup(why);
    return l->v[l->n - 1].error ? 0 : -1;
}

typedef struct name_list {
    char **v;
    int n, cap;
} name_list;

/* The record files under dir, as check finds them: each .hea, each .mat without a .hea beside it,
 * and each file whose content is a format read from memory (mrm_record_file_format), in the folder
 * and its subfolders (hidden entries skipped, symbolic links to folders not
 * followed). Returns 0, -1 out of memory, -2 (dir cannot be read; *bad names it). */
static int walk(const char *dir, name_list *out, int depth, char *bad, size_t badsz) {
    if (depth > 64) return 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(bad, badsz, "%s: cannot read the folder: %s", dir, strerror(errno));
        return -2;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        if (mrm_path_join(p, sizeof p, dir, e->d_name) != 0) continue;
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            rc = walk(p, out, depth + 1, bad, badsz);
            continue;
        }
        if (!mrm_record_file_format(p)) continue; /* a signal file of a WFDB record, anything else */
        if (out->n == out->cap) {
            int cap = out->cap ? 2 * out->cap : 64;
            char **nv = realloc(out->v, sizeof *nv * (size_t)cap);
            if (!nv) {
                rc = -1;
                break;
            }
            out->v = nv, out->cap = cap;
        }
        if (!(out->v[out->n] = strdup(p))) rc = -1;
        else out->n++;
    }
    closedir(d);
    return rc;
}

/* Every record under a folder, sorted by path; a folder without any is an input that failed. */
static int add_dir(item_list *l, const char *dir) {
    name_list names = {0};
    char bad[4600] = "";
    int rc = walk(dir, &names, 0, bad, sizeof bad);
    if (names.n) qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
    for (int i = 0; rc == 0 && i < names.n; i++)
        if (add_item(l, names.v[i], names.v[i])) rc = -1;
    if (rc == -2) {
        rc = add_failed(l, dir, bad);
    } else if (rc == 0 && names.n == 0) {
        snprintf(bad, sizeof bad, "no records found in %s", dir);
        rc = add_failed(l, dir, bad);
    }
    for (int i = 0; i < names.n; i++) free(names.v[i]);
    free(names.v);
    return rc;
}

static void csv_field(const char *s) {
    if (strpbrk(s, ",\"\n\r")) {
        putchar('"');
        for (; *s; s++) {
            if (*s == '"') putchar('"');
            putchar(*s);
        }
        putchar('"');
    } else {
        fputs(s, stdout);
    }
}

/* One recording of a chunk: where its windows are in X, and what the checks found. */
typedef struct job {
    int item;            /* index in the item list */
    long long row, n_win; /* its windows: rows [row, row + n_win) of X */
    long long win_frames; /* 100 Hz frames of the recording */
    double seconds;
    char problems[512];  /* the signal checks' findings, "" when fit */
} job;

static void label_list(const float *pr, const float *thr, char **classes, int c, char *out, size_t outsz) {
    size_t len = 0;
    out[0] = '\0';
    for (int k = 0; k < c; k++)
        if (pr[k] > thr[k] && len < outsz - 1) len += (size_t)snprintf(out + len, outsz - len, "%s%s", len ? ";" : "", classes[k]);
}

/* ---- the human-readable output ------------------------------------------------------------ */

/* Once, before the first recording: what the model is, what the mark means, not a diagnosis. */
static void print_text_preamble(const char *model_path, const mrm_meta *meta) {
    const char *task = mrm_meta_get(meta, "task"), *on = mrm_meta_get(meta, "trained_on");
    printf("Model %s (task %s), trained on %s.\n", model_path, task ? task : "not stated",
           on ? on : "records the model file does not name");
    printf("Not a diagnosis: the outputs of a research model; a qualified clinician must read the ECG.\n"
           "* marks a class whose probability is above its threshold: the label is called.\n\n");
}

/* One recording: its labels, then each class (code and name) with its probability (mean and
 * maximum over the windows of a long recording) and threshold; pw (n_win, c) the windows'. */
static void print_text_result(const char *name, const char *problems, double seconds, long long n_win, int use_max,
                              const float *pr, const float *meanp, const float *maxp, const float *pw, const long long *ws,
                              const float *thr, char **classes, int c) {
    printf("%s:", name);
    int any = 0;
    for (int k = 0; k < c; k++)
        if (pr[k] > thr[k]) printf(" %s", classes[k]), any = 1;
    printf("%s\n", any ? "" : " (no label above its threshold)");
    if (problems[0]) printf("  NOT FIT (labelled with --force): %s\n", problems);
    if (n_win == 1) {
        printf("  %-8s %-34s %11s %9s\n", "class", "", "probability", "threshold");
        for (int k = 0; k < c; k++) {
            const char *ln = xp_class_long_name(classes[k]);
            printf("  %-8s %-34s %11.4f %9.4f%s\n", classes[k], ln ? ln : "", pr[k], thr[k], pr[k] > thr[k] ? "  *" : "");
        }
        return;
    }
    printf("  %.1f s in %lld windows of 10 s; labels from the %s\n  %-8s %-34s %8s %8s %9s\n", seconds, n_win,
           use_max ? "maximum" : "mean", "class", "", "mean", "max", "threshold");
    for (int k = 0; k < c; k++) {
        const char *ln = xp_class_long_name(classes[k]);
        printf("  %-8s %-34s %8.4f %8.4f %9.4f%s\n", classes[k], ln ? ln : "", meanp[k], maxp[k], thr[k],
               pr[k] > thr[k] ? "  *" : "");
    }
    char labels[4096];
    for (long long w = 0; w < n_win; w++) {
        label_list(pw + (size_t)w * c, thr, classes, c, labels, sizeof labels);
        printf("  window %7.1f-%7.1f s: %s\n", ws[w] / MRM_FS, (ws[w] + MRM_SAMPLES) / MRM_FS, labels[0] ? labels : "-");
    }
}

int cmd_predict(int argc, char **argv) {
    const char *cmd = "predict";
    const char *model_path = NULL;
    int as_json = 0, as_csv = 0, stretch = 0, force = 0, per_window = 0, use_max = 0, strict = 0;
    double min_seconds = 10.0, one_threshold = NAN, stride_s = 10.0;
    long batch = 32, threads = 0;
    int engine_isa = -1; /* --engine-isa: the engine's kernels, or -1: chosen from the CPU */
    item_list items = {0};
    int failed = 0, rc = 1; /* failed: folders that could not be read, then records too */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (!strcmp(a, "--csv")) {
            as_csv = 1;
        } else if (!strcmp(a, "--windows")) {
            per_window = 1;
        } else if (!strcmp(a, "--stretch")) {
            stretch = 1;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--strict")) {
            strict = 1;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--batch") || !strcmp(a, "--threads") || !strcmp(a, "--min-seconds") ||
                   !strcmp(a, "--threshold") || !strcmp(a, "--stride") || !strcmp(a, "--aggregate") ||
                   !strcmp(a, "--engine-isa")) {
            if (!v) {
                fprintf(stderr, "mrmnet %s: %s needs a value\n", cmd, a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--model")) model_path = v;
            else if (!strcmp(a, "--batch") && cli_parse_int(cmd, a, v, 1, 4096, &batch)) return 2;
            else if (!strcmp(a, "--threads") && cli_parse_int(cmd, a, v, 1, 4096, &threads)) return 2;
            else if (!strcmp(a, "--engine-isa") && (engine_isa = cli_parse_engine_isa(cmd, a, v)) < 0) return 2;
            else if (!strcmp(a, "--min-seconds") && cli_parse_double_in(cmd, a, v, 0, 0, INFINITY, 1, &min_seconds)) return 2;
            else if (!strcmp(a, "--threshold") && cli_parse_double_in(cmd, a, v, 0, 0, 1, 0, &one_threshold)) return 2;
            else if (!strcmp(a, "--stride") && (cli_parse_double(cmd, a, v, &stride_s) || !(stride_s >= 0.01) || stride_s > 1e6)) {
                fprintf(stderr, "mrmnet %s: --stride: '%s' is not a number of seconds >= 0.01\n", cmd, v);
                return 2;
            } else if (!strcmp(a, "--aggregate")) {
                if (strcmp(v, "mean") && strcmp(v, "max")) {
                    fprintf(stderr, "mrmnet %s: --aggregate: '%s' is not mean or max\n", cmd, v);
                    return 2;
                }
                use_max = !strcmp(v, "max");
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "mrmnet %s: unknown option '%s'\n", cmd, a);
            usage(stderr);
            return 2;
        } else {
            struct stat st;
            int r = stat(a, &st) == 0 && S_ISDIR(st.st_mode) ? add_dir(&items, a) : add_arg(&items, a);
            if (r == -1) {
                fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
                return 1;
            }
        }
    }
    if (as_json && as_csv) {
        fprintf(stderr, "mrmnet %s: --json and --csv exclude each other\n", cmd);
        return 2;
    }
    if (per_window && !as_csv) {
        fprintf(stderr, "mrmnet %s: --windows goes with --csv (the text and JSON outputs always show the windows)\n", cmd);
        return 2;
    }
    if (!model_path || items.n == 0) {
        fprintf(stderr, "mrmnet %s: --model and at least one record or folder are required\n", cmd);
        usage(stderr);
        return 2;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    const long long stride = (long long)llround(stride_s * MRM_FS) > 0 ? (long long)llround(stride_s * MRM_FS) : 1;

    mrm_error err = {0};
    mrm_model *m = NULL;
    mrm_meta meta = {0};
    float *X = NULL, *p = NULL, *thr = NULL;
    job *jobs = NULL;
    long long *starts = NULL;
    char **classes = NULL;
    int c = 0, lead_map[MRM_LEADS];
    json_t *jclasses = NULL, *out = NULL;
    mrm_engine_runner engine = {0}; /* the model compiled once for every chunk */
    if (mrm_engine_image_file(model_path)) { /* an engine image (mrmnet export, mrmnet quantize) */
        void *img = NULL;
        size_t img_len = 0;
        if (mrm_engine_image_load(model_path, &img, &img_len, &err) ||
            mrm_engine_runner_open(&engine, img, img_len, omp_get_max_threads(), &err) ||
            mrm_engine_meta(&engine.engine, &meta, &err)) {
            cli_report(cmd, &err);
            goto done;
        }
    } else if (mrm_model_load(&m, &meta, model_path, &err) ||
               mrm_engine_runner_create(&engine, m, omp_get_max_threads(), &err)) {
        cli_report(cmd, &err);
        goto done;
    }
    if (engine_isa >= 0 && mrm_engine_runner_set_isa(&engine, engine_isa, &err)) {
        cli_report(cmd, &err);
        goto done;
    }
    c = engine.engine.n_classes;
    /* classes, thresholds, standardisation and lead order from the metadata */
    jclasses = cli_json_array_of(mrm_meta_get(&meta, "classes"), (size_t)c);
    classes = calloc((size_t)c, sizeof *classes);
    thr = malloc(sizeof(float) * (size_t)c);
    if (!classes || !thr) {
        fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
        goto done;
    }
    for (int k = 0; k < c; k++) {
        json_t *s = jclasses ? json_array_get(jclasses, (size_t)k) : NULL;
        char buf[32];
        snprintf(buf, sizeof buf, "class%d", k);
        classes[k] = strdup(s && json_is_string(s) ? json_string_value(s) : buf);
        thr[k] = 0.5f;
    }
    if (!jclasses) fprintf(stderr, "mrmnet %s: warning: %s has no class names; classes are numbered\n", cmd, model_path);
    json_t *jt = cli_json_array_of(mrm_meta_get(&meta, "thresholds"), (size_t)c);
    if (jt) {
        for (int k = 0; k < c; k++) {
            json_t *v = json_array_get(jt, (size_t)k);
            if (json_is_number(v)) thr[k] = (float)json_number_value(v);
        }
        json_decref(jt);
    } else if (mrm_meta_get(&meta, "thresholds")) {
        fprintf(stderr, "mrmnet %s: warning: %s: metadata 'thresholds' is not %d numbers; using 0.5\n", cmd, model_path, c);
    }
    if (isfinite(one_threshold))
        for (int k = 0; k < c; k++) thr[k] = (float)one_threshold;
    const char *ms = mrm_meta_get(&meta, "mean"), *ss = mrm_meta_get(&meta, "std");
    char *e1 = NULL, *e2 = NULL;
    double mean = ms ? strtod(ms, &e1) : NAN, sd = ss ? strtod(ss, &e2) : NAN;
    if (!ms || !ss || *e1 || *e2 || !isfinite(mean) || !(sd > 0)) {
        fprintf(stderr, "mrmnet %s: %s: metadata 'mean' and 'std' (the input standardisation) are missing or invalid\n", cmd,
                model_path);
        goto done;
    }
    json_t *jl = cli_json_array_of(mrm_meta_get(&meta, "leads"), MRM_LEADS);
    int used[MRM_LEADS] = {0}, leads_ok = 1;
    for (int j = 0; j < MRM_LEADS; j++) {
        int li = jl ? mrm_lead_index(json_string_value(json_array_get(jl, (size_t)j)) ? json_string_value(json_array_get(jl, (size_t)j)) : "")
                    : j;
        if (li < 0 || used[li]++) leads_ok = 0;
        lead_map[j] = li;
    }
    if (!jl && mrm_meta_get(&meta, "leads")) leads_ok = 0;
    if (jl) json_decref(jl);
    if (!leads_ok) {
        fprintf(stderr, "mrmnet %s: %s: metadata 'leads' is not the 12 standard leads: %s\n", cmd, model_path, mrm_meta_get(&meta, "leads"));
        goto done;
    }

    /* in chunks of about `batch` windows: read, check and cut records into windows, predict, print */
    const size_t rec_len = (size_t)MRM_LEADS * MRM_SAMPLES;
    long long x_cap = batch, n_rows = 0;
    X = malloc(sizeof(float) * rec_len * (size_t)x_cap);
    jobs = malloc(sizeof *jobs * (size_t)(batch + 1));
    float *tmp = malloc(sizeof(float) * rec_len);
    if (!X || !jobs || !tmp) {
        free(tmp);
        fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
        goto done;
    }
    if (as_csv) {
        fputs(per_window ? "record,start_s,end_s" : "record", stdout);
        for (int k = 0; k < c; k++) putchar(','), csv_field(classes[k]);
        fputs(",labels,error\n", stdout);
    }
    if (as_json) out = json_array();
    if (!as_json && !as_csv) print_text_preamble(model_path, &meta);
    int next = 0;
    while (next < items.n) {
        int n_jobs = 0;
        n_rows = 0;
        /* gather records until the chunk holds `batch` windows */
        while (next < items.n && n_rows < batch && n_jobs < batch) {
            int i = next++;
            const char *name = items.v[i].name;
            mrm_record rec;
            mrm_error e = {0};
            mrm_preprocess_info info;
            job *jb = &jobs[n_jobs++];
            memset(jb, 0, sizeof *jb);
            jb->item = i;
            jb->row = n_rows;
            if (items.v[i].error) { /* a folder without records, or one that cannot be read */
                fprintf(stderr, "mrmnet %s: %s\n", cmd, items.v[i].error);
                failed++;
                continue;
            }
            char why[1024];
            mrm_status st = mrm_record_read(&rec, items.v[i].path, strict ? MRM_READ_STRICT : 0, &e);
            if (!st && mrm_record_integrity_check(&rec, &items.v[i].integrity, why, sizeof why)) {
                if (strict)
                    st = mrm_fail(&e, MRM_ERR_CHECK, "%s (an error with --strict)", why);
                else
                    fprintf(stderr, "mrmnet %s: warning: %s: %s\n", cmd, name, why);
            }
            double seconds = !st && rec.fs > 0 ? (double)rec.n_samples / rec.fs : 0;
            mrm_signal_quality q;
            memset(&q, 0, sizeof q);
            if (!st) st = mrm_quality_check(&rec, 0, &q, &e); /* also matches the leads: the first error names them */
            if (!st && rec.fs > 0 && llround(seconds * MRM_FS) < llround(min_seconds * MRM_FS))
                st = mrm_fail(&e, MRM_ERR_INVALID, "%.3g s long, shorter than %.3g s (the minimum: --min-seconds)", seconds, min_seconds);
            if (!st && q.summary[0] && !force) {
                snprintf(jb->problems, sizeof jb->problems, "%s", q.summary);
                st = mrm_fail(&e, MRM_ERR_CHECK, "not labelled, the recording is not fit: %s (--force labels it anyway)", q.summary);
            }
            if (st) {
                fprintf(stderr, "mrmnet %s: %s: %s\n", cmd, name, e.msg);
                items.v[i].error = strdup(e.msg[0] ? e.msg : "cannot be read");
                mrm_record_free(&rec);
                failed++;
                continue;
            }
            float *full = NULL;
            long long frames = 0, nw = 0;
            if (!st) {
                long long m100 = llround(seconds * MRM_FS);
                if (m100 <= MRM_SAMPLES) {
                    /* one window: the first 10 s, padded or stretched as asked */
                    st = mrm_preprocess_record(&rec, tmp, stretch ? MRM_FIT_STRETCH : MRM_FIT_CROP_PAD, &info, &e);
                    full = tmp;
                    frames = MRM_SAMPLES;
                    nw = 1;
                    if (!st && (info.padded || info.stretched))
                        fprintf(stderr, "mrmnet %s: warning: %s: %.3g s long, %s to 10 s\n", cmd, name, seconds,
                                info.padded ? "zero-padded" : "stretched");
                } else {
                    st = mrm_preprocess_full(&rec, 0, &full, &frames, &info, &e);
                    if (!st) nw = xp_window_starts(frames, stride, NULL);
                }
            }
            mrm_record_free(&rec);
            if (st) {
                fprintf(stderr, "mrmnet %s: %s: %s\n", cmd, name, e.msg);
                items.v[i].error = strdup(e.msg[0] ? e.msg : "cannot be read");
                if (full != tmp) free(full);
                failed++;
                continue;
            }
            if (info.nan_samples) fprintf(stderr, "mrmnet %s: warning: %s: %lld invalid samples set to 0\n", cmd, name, info.nan_samples);
            if (q.summary[0]) fprintf(stderr, "mrmnet %s: warning: %s: labelled although not fit (--force): %s\n", cmd, name, q.summary);
            if (n_rows + nw > x_cap) {
                long long cap = n_rows + nw > 2 * x_cap ? n_rows + nw : 2 * x_cap;
                float *nx = realloc(X, sizeof(float) * rec_len * (size_t)cap);
                if (!nx) {
                    if (full != tmp) free(full);
                    free(tmp);
                    fprintf(stderr, "mrmnet %s: %s: out of memory for %lld windows\n", cmd, name, nw);
                    goto done;
                }
                X = nx, x_cap = cap;
            }
            long long *st_buf = malloc(sizeof *st_buf * (size_t)nw);
            if (!st_buf) {
                if (full != tmp) free(full);
                free(tmp);
                fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
                goto done;
            }
            xp_window_starts(frames, stride, st_buf);
            for (long long w = 0; w < nw; w++) {
                float *x = X + (size_t)(n_rows + w) * rec_len;
                for (int j = 0; j < MRM_LEADS; j++) {
                    const float *src = full + (size_t)lead_map[j] * (size_t)frames + (size_t)st_buf[w];
                    for (int t = 0; t < MRM_SAMPLES; t++) x[(size_t)j * MRM_SAMPLES + t] = (float)(((double)src[t] - mean) / sd);
                }
            }
            free(st_buf);
            if (full != tmp) free(full);
            jb->n_win = nw;
            jb->win_frames = frames;
            jb->seconds = seconds;
            snprintf(jb->problems, sizeof jb->problems, "%s", q.summary);
            n_rows += nw;
        }
        float *np = realloc(p, sizeof(float) * (size_t)c * (size_t)(n_rows ? n_rows : 1));
        if (!np) {
            free(tmp);
            fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
            goto done;
        }
        p = np;
        if (n_rows && mrm_predict_probs_engine(&engine, X, n_rows, (int)batch, NULL, NULL, p, NULL, NULL, &err)) {
            free(tmp);
            cli_report(cmd, &err);
            goto done;
        }
        for (int jn = 0; jn < n_jobs; jn++) {
            const job *jb = &jobs[jn];
            const char *name = items.v[jb->item].name;
            if (!jb->n_win) { /* its error: on stderr already; in the structured outputs too */
                const char *why = items.v[jb->item].error ? items.v[jb->item].error : "cannot be labelled";
                if (as_csv) {
                    csv_field(name);
                    for (int k = 0; k <= c + (per_window ? 2 : 0); k++) putchar(',');
                    putchar(',');
                    csv_field(why);
                    putchar('\n');
                } else if (as_json) {
                    json_t *o = json_object();
                    json_object_set_new(o, "record", json_string(name));
                    json_object_set_new(o, "error", json_string(why));
                    if (jb->problems[0]) json_object_set_new(o, "problems", json_string(jb->problems));
                    json_array_append_new(out, o);
                }
                continue;
            }
            float mean_p[256], max_p[256];
            float *meanp = c <= 256 ? mean_p : malloc(sizeof(float) * (size_t)c), *maxp = c <= 256 ? max_p : malloc(sizeof(float) * (size_t)c);
            long long *ws = malloc(sizeof *ws * (size_t)jb->n_win);
            if (!meanp || !maxp || !ws) {
                free(tmp);
                fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
                goto done;
            }
            xp_window_starts(jb->win_frames, stride, ws);
            for (int k = 0; k < c; k++) {
                double sum = 0, mx = 0;
                for (long long w = 0; w < jb->n_win; w++) {
                    double v = p[(size_t)(jb->row + w) * c + k];
                    sum += v;
                    if (w == 0 || v > mx) mx = v;
                }
                meanp[k] = (float)(sum / (double)jb->n_win);
                maxp[k] = (float)mx;
            }
            const float *pr = use_max ? maxp : meanp;
            char labels[4096];
            if (as_csv && per_window) {
                for (long long w = 0; w < jb->n_win; w++) {
                    const float *pw = p + (size_t)(jb->row + w) * c;
                    csv_field(name);
                    printf(",%g,%g", ws[w] / MRM_FS, (ws[w] + MRM_SAMPLES) / MRM_FS);
                    for (int k = 0; k < c; k++) printf(",%.6f", pw[k]);
                    putchar(',');
                    label_list(pw, thr, classes, c, labels, sizeof labels);
                    csv_field(labels);
                    fputs(",\n", stdout); /* no error */
                }
            } else if (as_csv) {
                csv_field(name);
                for (int k = 0; k < c; k++) printf(",%.6f", pr[k]);
                putchar(',');
                label_list(pr, thr, classes, c, labels, sizeof labels);
                csv_field(labels);
                fputs(",\n", stdout); /* no error */
            } else if (as_json) {
                json_t *o = json_object(), *probs = json_object(), *jmean = json_object(), *jmax = json_object(), *jlab = json_array(),
                       *jw = json_array();
                for (int k = 0; k < c; k++) {
                    json_object_set_new(probs, classes[k], json_real(pr[k]));
                    json_object_set_new(jmean, classes[k], json_real(meanp[k]));
                    json_object_set_new(jmax, classes[k], json_real(maxp[k]));
                    if (pr[k] > thr[k]) json_array_append_new(jlab, json_string(classes[k]));
                }
                for (long long w = 0; w < jb->n_win; w++) {
                    const float *pw = p + (size_t)(jb->row + w) * c;
                    json_t *wo = json_object(), *wp = json_object(), *wl = json_array();
                    for (int k = 0; k < c; k++) {
                        json_object_set_new(wp, classes[k], json_real(pw[k]));
                        if (pw[k] > thr[k]) json_array_append_new(wl, json_string(classes[k]));
                    }
                    json_object_set_new(wo, "start_s", json_real(ws[w] / MRM_FS));
                    json_object_set_new(wo, "end_s", json_real((ws[w] + MRM_SAMPLES) / MRM_FS));
                    json_object_set_new(wo, "probabilities", wp);
                    json_object_set_new(wo, "labels", wl);
                    json_array_append_new(jw, wo);
                }
                json_object_set_new(o, "record", json_string(name));
                json_object_set_new(o, "seconds", json_real(jb->seconds));
                json_object_set_new(o, "aggregate", json_string(use_max ? "max" : "mean"));
                json_object_set_new(o, "probabilities", probs);
                json_object_set_new(o, "labels", jlab);
                json_object_set_new(o, "mean", jmean);
                json_object_set_new(o, "max", jmax);
                json_object_set_new(o, "windows", jw);
                if (jb->problems[0]) json_object_set_new(o, "problems", json_string(jb->problems));
                const mrm_record_integrity *in = &items.v[jb->item].integrity;
                json_t *ij = json_object();
                json_object_set_new(ij, "checksum_mismatches", json_integer(in->checksum_mismatches));
                json_object_set_new(ij, "init_value_mismatches", json_integer(in->init_value_mismatches));
                json_object_set_new(ij, "invalid_samples", json_integer(in->invalid_samples));
                json_object_set_new(o, "integrity", ij);
                json_array_append_new(out, o);
            } else {
                print_text_result(name, jb->problems, jb->seconds, jb->n_win, use_max, pr, meanp, maxp, p + (size_t)jb->row * c, ws,
                                  thr, classes, c);
            }
            free(ws);
            if (meanp != mean_p) free(meanp);
            if (maxp != max_p) free(maxp);
        }
        fflush(stdout);
    }
    free(tmp);
    if (as_json) {
        char *text = json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(7));
        if (text) puts(text);
        free(text);
    }
    rc = failed ? 1 : 0;
    if (failed) fprintf(stderr, "mrmnet %s: %d of the inputs could not be labelled\n", cmd, failed);
done:
    if (out) json_decref(out);
    if (jclasses) json_decref(jclasses);
    for (int k = 0; classes && k < c; k++) free(classes[k]);
    free(classes), free(thr), free(X), free(p), free(jobs), free(starts);
    for (int i = 0; i < items.n; i++) free(items.v[i].path), free(items.v[i].name), free(items.v[i].error);
    free(items.v);
    mrm_meta_free(&meta);
    mrm_engine_runner_free(&engine);
    if (m) mrm_model_free(m);
    return rc;
}
