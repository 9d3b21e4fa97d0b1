/* mrmnet eval: metrics of a model on a prepared split, for head 1, head 2 and their average. */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "common/svg.h"
#include "io/csv.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet eval --model W.safetensors --data PREP/ [options]\n"
               "       mrmnet eval --scores P.npy --data PREP/ [options]\n\n"
               "Metrics of the model on one split of a prepared folder, for head 1 (high resolution),\n"
               "head 2 (low resolution) and the average of both heads' probabilities: macro-AUC with a\n"
               "bootstrap interval, per-class AUC, sample-F1, sample-TPR, ACC, macro-F1 (threshold 0.5;\n"
               "the average also at the model's own thresholds when it has them) and Fmax. With --scores,\n"
               "the same for given probabilities (N, C) float32 in the split's order, without a model.\n\n"
               "At the operating point (the model's stored thresholds, else 0.5, or --threshold-rule):\n"
               "per class sensitivity, specificity, PPV, NPV, F1, support and the confusion counts; the\n"
               "PTB-XL benchmark's F-beta and G-beta (beta 2); calibration (Brier score, ECE) per class and\n"
               "overall; the CPSC2018 challenge's F1 scores when the classes are its nine; the\n"
               "PhysioNet/CinC 2021 challenge score with --challenge-weights.\n\n"
               "options:\n"
               "  --split NAME         train, val or test (test)\n"
               "  --json FILE          write every number as JSON\n"
               "  --predictions FILE   write the averaged probabilities (N, C) float32 .npy, ids order\n"
               "  --roc FILE.svg       ROC curves of the averaged probabilities, one per class\n"
               "  --resamples N        bootstrap resamples (100; 0: none)\n"
               "  --seed S             bootstrap seed (1)\n"
               "  --batch B            inference batch (64)\n"
               "  --threads T          OpenMP threads\n"
               "  --threshold-rule R   choose the thresholds on THIS split by rule R: f1, youden,\n"
               "                       sensitivity=X, specificity=X, fixed=T (optimistic unless the split\n"
               "                       is one the model was not evaluated on; marked so)\n"
               "  --save-model OUT     with --threshold-rule: write a copy of the model whose metadata\n"
               "                       holds these thresholds, the rule and the split (use --split val)\n"
               "  --bins N             calibration bins (10)\n"
               "  --reliability FILE.svg  reliability diagrams: overall and one per class\n"
               "  --cpsc-reference CSV the CPSC2018 REFERENCE.csv: first labels of the records (by id)\n"
               "                       for the CPSC2018 table (else the lowest-numbered label is used)\n"
               "  --challenge-weights CSV  PhysioNet/CinC 2021 reward matrix (weights.csv)\n"
               "  --challenge-classes CSV  columns from,to: each class's SNOMED code (default: the\n"
               "                       class names are the codes)\n"
               "  --sinus-code CODE    the inactive (sinus rhythm) class of the challenge score (426783006)\n");
}

typedef struct head_result {
    const char *name;
    const float *p;
    mrm_metrics m;
    int tuned;            /* the thresholded metrics at the model's thresholds too */
    mrm_metrics mt;
} head_result;

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *metrics_json(const mrm_metrics *m, int with_auc, char **classes) {
    json_t *o = json_object();
    if (with_auc) {
        json_object_set_new(o, "macro_auc", jnum(m->macro_auc));
        json_t *per = json_object();
        for (int k = 0; k < m->c; k++) json_object_set_new(per, classes[k], jnum(m->auc[k]));
        json_object_set_new(o, "auc", per);
        json_object_set_new(o, "classes_without_auc", json_integer(m->n_auc_missing));
        if (m->boot.n_resamples > 0) {
            json_t *b = json_object();
            json_object_set_new(b, "resamples", json_integer(m->boot.n_resamples));
            json_object_set_new(b, "redrawn", json_integer(m->boot.n_redrawn));
            json_object_set_new(b, "point", jnum(m->boot.point));
            json_object_set_new(b, "mean", jnum(m->boot.mean));
            json_object_set_new(b, "p2.5", jnum(m->boot.lo95));
            json_object_set_new(b, "p97.5", jnum(m->boot.hi95));
            json_object_set_new(b, "p5", jnum(m->boot.lo90));
            json_object_set_new(b, "p95", jnum(m->boot.hi90));
            json_object_set_new(o, "macro_auc_bootstrap", b);
        }
        json_object_set_new(o, "fmax", jnum(m->fmax));
        json_object_set_new(o, "fmax_threshold", jnum(m->fmax_threshold));
    }
    json_object_set_new(o, "sample_f1", jnum(m->sample_f1));
    json_object_set_new(o, "sample_tpr", jnum(m->sample_tpr));
    json_object_set_new(o, "acc", jnum(m->acc));
    json_object_set_new(o, "macro_f1", jnum(m->macro_f1));
    return o;
}

/* The model's "thresholds" metadata: c numbers, else -1 (absent) or -2 (malformed). */
static int model_thresholds(const char *text, int c, float *thr) {
    if (!text) return -1;
    json_error_t je;
    json_t *a = json_loads(text, JSON_DECODE_ANY, &je);
    int ok = a && json_is_array(a) && (int)json_array_size(a) == c;
    for (int k = 0; ok && k < c; k++) {
        json_t *v = json_array_get(a, (size_t)k);
        ok = json_is_number(v);
        if (ok) thr[k] = (float)json_number_value(v);
    }
    if (a) json_decref(a);
    return ok ? 0 : -2;
}

static json_t *class_stats_json(const mrm_class_stats *st, float thr) {
    json_t *o = json_object();
    json_object_set_new(o, "threshold", json_real(thr));
    json_object_set_new(o, "sensitivity", jnum(st->sensitivity));
    json_object_set_new(o, "specificity", jnum(st->specificity));
    json_object_set_new(o, "ppv", jnum(st->ppv));
    json_object_set_new(o, "npv", jnum(st->npv));
    json_object_set_new(o, "f1", jnum(st->f1));
    json_object_set_new(o, "support", json_integer(st->support));
    json_object_set_new(o, "tp", json_integer(st->tp));
    json_object_set_new(o, "fp", json_integer(st->fp));
    json_object_set_new(o, "tn", json_integer(st->tn));
    json_object_set_new(o, "fn", json_integer(st->fn));
    return o;
}

static json_t *reliability_json(const mrm_reliability *r) {
    json_t *o = json_object(), *cnt = json_array(), *ms = json_array(), *fp = json_array();
    for (int b = 0; b < r->n_bins; b++) {
        json_array_append_new(cnt, json_integer(r->count[b]));
        json_array_append_new(ms, jnum(r->mean_score[b]));
        json_array_append_new(fp, jnum(r->frac_pos[b]));
    }
    json_object_set_new(o, "brier", jnum(r->brier));
    json_object_set_new(o, "ece", jnum(r->ece));
    json_object_set_new(o, "bin_count", cnt);
    json_object_set_new(o, "bin_mean_score", ms);
    json_object_set_new(o, "bin_fraction_positive", fp);
    return o;
}

static void print_num(double v, int width) {
    if (isfinite(v))
        printf(" %*.4f", width, v);
    else
        printf(" %*s", width, "n/a");
}

/* The first labels of the records (challenge numbers) from the CPSC2018 REFERENCE.csv, by id. */
static mrm_status cpsc_first_labels(const char *path, char **ids, long long n, int *first, mrm_error *err) {
    mrm_csv csv;
    mrm_status st = mrm_csv_read(&csv, path, err);
    if (st) return st;
    int cr, cf;
    if ((st = mrm_csv_require_col(&csv, "Recording", &cr, err)) || (st = mrm_csv_require_col(&csv, "First_label", &cf, err))) goto done;
    for (long long i = 0; i < n; i++) {
        int r = 0;
        while (r < csv.n_rows && strcmp(mrm_csv_cell(&csv, r, cr), ids[i])) r++;
        if (r == csv.n_rows) {
            st = mrm_fail(err, MRM_ERR_NOTFOUND, "%s: no row for record %s", path, ids[i]);
            goto done;
        }
        long v;
        if (mrm_parse_long(mrm_csv_cell(&csv, r, cf), &v) || v < 1 || v > 9) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: First_label '%s' is not 1 to 9", path, csv.row_line[r], mrm_csv_cell(&csv, r, cf));
            goto done;
        }
        first[i] = (int)v;
    }
done:
    mrm_csv_free(&csv);
    return st;
}

/* Reliability diagrams: the overall one, then one panel per class. */
static mrm_status write_reliability(const char *path, const mrm_reliability *overall, const mrm_reliability *per, int c,
                                    char **classes, mrm_error *err) {
    const int np = c + 1;
    mrm_svg_panel *panels = calloc((size_t)np, sizeof *panels);
    mrm_svg_series *se = calloc((size_t)np, sizeof *se);
    double *xy = malloc((size_t)np * 2 * (size_t)overall->n_bins * sizeof *xy);
    char (*titles)[160] = calloc((size_t)np, sizeof *titles);
    if (!panels || !se || !xy || !titles) {
        free(panels), free(se), free(xy), free(titles);
        return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    }
    for (int q = 0; q < np; q++) {
        const mrm_reliability *r = q == 0 ? overall : &per[q - 1];
        double *x = xy + (size_t)q * 2 * r->n_bins, *y = x + r->n_bins;
        int m = 0;
        for (int b = 0; b < r->n_bins; b++)
            if (r->count[b]) x[m] = r->mean_score[b], y[m] = r->frac_pos[b], m++;
        snprintf(titles[q], sizeof titles[q], "%.80s: Brier %.4f, ECE %.4f (%d bins)", q == 0 ? "all classes" : classes[q - 1],
                 r->brier, r->ece, r->n_bins);
        se[q] = (mrm_svg_series){"fraction positive per bin", x, y, m};
        panels[q] = (mrm_svg_panel){titles[q], "mean predicted probability", "fraction of positives", &se[q], 1, 1};
    }
    mrm_status st = mrm_svg_write(path, panels, np, err);
    free(panels), free(se), free(xy), free(titles);
    return st;
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    const char *model_path = NULL, *data = NULL, *split = "test", *json_path = NULL, *pred_path = NULL, *roc_path = NULL;
    const char *scores_path = NULL, *rule_text = NULL, *save_path = NULL, *rel_path = NULL, *cpsc_ref = NULL;
    const char *cw_path = NULL, *cc_path = NULL, *sinus = "426783006";
    long resamples = 100, batch = 64, threads = 0, bins = 10;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "mrmnet %s: %s: unknown option or missing value\n", cmd, a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--json")) json_path = v;
        else if (!strcmp(a, "--predictions")) pred_path = v;
        else if (!strcmp(a, "--roc")) roc_path = v;
        else if (!strcmp(a, "--scores")) scores_path = v;
        else if (!strcmp(a, "--threshold-rule")) rule_text = v;
        else if (!strcmp(a, "--save-model")) save_path = v;
        else if (!strcmp(a, "--reliability")) rel_path = v;
        else if (!strcmp(a, "--cpsc-reference")) cpsc_ref = v;
        else if (!strcmp(a, "--challenge-weights")) cw_path = v;
        else if (!strcmp(a, "--challenge-classes")) cc_path = v;
        else if (!strcmp(a, "--sinus-code")) sinus = v;
        else if (!strcmp(a, "--bins")) {
            if (cli_parse_int(cmd, a, v, 1, 1000, &bins)) return 2;
        } else if (!strcmp(a, "--resamples")) {
            if (cli_parse_int(cmd, a, v, 0, 100000, &resamples)) return 2;
        } else if (!strcmp(a, "--batch")) {
            if (cli_parse_int(cmd, a, v, 1, 65536, &batch)) return 2;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int(cmd, a, v, 1, 4096, &threads)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_u64(cmd, a, v, &seed)) return 2;
        } else {
            fprintf(stderr, "mrmnet %s: unknown option '%s'\n", cmd, a);
            usage(stderr);
            return 2;
        }
    }
    if (!data || (!model_path) == (!scores_path)) {
        fprintf(stderr, "mrmnet %s: --data and one of --model, --scores are required\n", cmd);
        usage(stderr);
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")) {
        fprintf(stderr, "mrmnet %s: --split: '%s' is not train, val or test\n", cmd, split);
        return 2;
    }
    if (save_path && (!rule_text || !model_path)) {
        fprintf(stderr, "mrmnet %s: --save-model needs --model and --threshold-rule\n", cmd);
        return 2;
    }
    if (cc_path && !cw_path) {
        fprintf(stderr, "mrmnet %s: --challenge-classes goes with --challenge-weights\n", cmd);
        return 2;
    }
    mrm_error err = {0};
    mrm_threshold_rule rule;
    if (rule_text && mrm_threshold_rule_parse(rule_text, &rule, &err)) {
        fprintf(stderr, "mrmnet %s: --threshold-rule: %s\n", cmd, err.msg);
        return 2;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    {
        mrm_error perr = {0};
        const char *outs[3] = {json_path, pred_path, roc_path};
        for (int k = 0; k < 3; k++)
            if (outs[k] && mrm_check_output_file(outs[k], &perr)) return cli_report(cmd, &perr);
    }

    mrm_model *m = NULL;
    mrm_engine_runner eng = {0}; /* a quantised model (or an engine image) runs only in the engine */
    mrm_meta meta = {0};
    mrm_prepared prep = {0};
    mrm_split_data sd = {0};
    float *p1 = NULL, *p2 = NULL, *avg = NULL, *thr = NULL, *op = NULL;
    long long *pos = NULL;
    mrm_class_stats *cs = NULL;
    mrm_reliability overall = {0}, *rel = NULL;
    mrm_benchmark_fg fg = {0};
    mrm_challenge_weights cw = {0};
    mrm_class_map cmap = {0};
    int *first = NULL, *cnum = NULL, *undet = NULL, n_heads = 0;
    const char **codes = NULL;
    head_result heads[3];
    memset(heads, 0, sizeof heads);
    int rc = 1, c = 0;
    if (mrm_prepared_open(&prep, data, &err) || mrm_prepared_check(&prep, &err)) goto fail;
    if (model_path) {
        if (mrm_engine_image_file(model_path)) {
            void *img = NULL;
            size_t img_len = 0;
            if (mrm_engine_image_load(model_path, &img, &img_len, &err) ||
                mrm_engine_runner_open(&eng, img, img_len, omp_get_max_threads(), &err) ||
                mrm_engine_meta(&eng.engine, &meta, &err))
                goto fail;
            c = eng.engine.n_classes;
        } else {
            if (mrm_model_load(&m, &meta, model_path, &err)) goto fail;
            cli_note_checkpoint(cmd, model_path, &meta);
            c = mrm_model_config_of(m)->n_classes;
        }
        if (c != prep.n_classes) {
            mrm_fail(&err, MRM_ERR_INVALID, "%s has %d classes, %s/classes.txt %d", model_path, c, data, prep.n_classes);
            goto fail;
        }
        const char *mc = mrm_meta_get(&meta, "classes");
        if (mc) {
            json_error_t je;
            json_t *a = json_loads(mc, 0, &je);
            int same = a && json_is_array(a) && (int)json_array_size(a) == c;
            for (int k = 0; same && k < c; k++)
                same = json_is_string(json_array_get(a, (size_t)k)) && !strcmp(json_string_value(json_array_get(a, (size_t)k)), prep.classes[k]);
            if (a) json_decref(a);
            if (!same) {
                mrm_fail(&err, MRM_ERR_INVALID, "%s: its classes %s are not those of %s/classes.txt", model_path, mc, data);
                goto fail;
            }
        }
        const char *ms = mrm_meta_get(&meta, "mean"), *ss = mrm_meta_get(&meta, "std");
        if (ms && ss && (fabs(strtod(ms, NULL) - prep.mean) > 1e-6 * fmax(1, fabs(prep.mean)) ||
                         fabs(strtod(ss, NULL) - prep.std) > 1e-6 * fmax(1, fabs(prep.std))))
            fprintf(stderr,
                    "mrmnet %s: warning: the model was trained with mean %s, std %s; %s is standardised with %.9g, %.9g "
                    "(prepare it with --standardise-like %s)\n",
                    cmd, ms, ss, data, prep.mean, prep.std, model_path);
    } else {
        c = prep.n_classes;
    }
    if (mrm_prepared_load_split(&prep, split, model_path != NULL, &sd, &err)) goto fail;
    if (sd.n == 0) {
        mrm_fail(&err, MRM_ERR_INVALID, "%s: the %s split is empty", data, split);
        goto fail;
    }
    int usable = 0; /* a class with both a positive and a negative record: an AUC */
    for (int k = 0; k < c && !usable; k++) {
        long long npos = 0;
        for (long long i = 0; i < sd.n; i++) npos += sd.y[i * c + k] != 0.0f;
        usable = npos > 0 && npos < sd.n;
    }
    if (!usable)
        fprintf(stderr, "mrmnet %s: warning: the %s split (%lld record%s) has no class with both a positive and a negative "
                "record: no AUC can be computed (reported as null)\n", cmd, split, sd.n, sd.n == 1 ? "" : "s");
    const size_t nc = (size_t)sd.n * c;
    thr = malloc((size_t)c * sizeof *thr), op = malloc((size_t)c * sizeof *op);
    undet = calloc((size_t)c, sizeof *undet);
    if (!thr || !op || !undet) {
        mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int have_thr = -1;
    if (model_path) {
        p1 = malloc(nc * sizeof *p1), p2 = malloc(nc * sizeof *p2), avg = malloc(nc * sizeof *avg);
        if (!p1 || !p2 || !avg) {
            mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (m ? mrm_predict_probs(m, sd.X, sd.n, (int)batch, p1, p2, avg, NULL, NULL, &err)
              : mrm_predict_probs_engine(&eng, sd.X, sd.n, (int)batch, p1, p2, avg, NULL, NULL, &err))
            goto fail;
        have_thr = model_thresholds(mrm_meta_get(&meta, "thresholds"), c, thr);
        if (have_thr == -2) fprintf(stderr, "mrmnet %s: warning: %s: metadata 'thresholds' is not %d numbers; ignored\n", cmd, model_path, c);
        if ((m ? mrm_model_num_heads(m) : eng.engine.n_heads) < 2) { /* one output: one row */
            heads[0] = (head_result){.name = "output", .p = avg, .tuned = have_thr == 0};
            n_heads = 1;
        } else {
            heads[0] = (head_result){.name = "head 1 (high)", .p = p1};
            heads[1] = (head_result){.name = "head 2 (low)", .p = p2};
            heads[2] = (head_result){.name = "average", .p = avg, .tuned = have_thr == 0};
            n_heads = 3;
        }
    } else {
        int nd;
        long long shape[4];
        if (mrm_npy_read_f32(scores_path, &avg, &nd, shape, &err)) goto fail;
        if (nd != 2 || shape[0] != sd.n || shape[1] != c) {
            mrm_fail(&err, MRM_ERR_FORMAT, "%s: shape must be (%lld, %d) to match %s's %s split", scores_path, sd.n, c, data, split);
            goto fail;
        }
        heads[0] = (head_result){.name = "scores", .p = avg};
        n_heads = 1;
    }
    for (int h = 0; h < n_heads; h++) {
        if (mrm_metrics_compute(&heads[h].m, sd.y, heads[h].p, (int)sd.n, c, NULL, (int)resamples, seed, &err)) goto fail;
        if (heads[h].tuned && mrm_metrics_compute(&heads[h].mt, sd.y, heads[h].p, (int)sd.n, c, thr, 0, 0, &err)) goto fail;
    }
    const int main_head = n_heads - 1;

    /* the operating point */
    const char *stored_rule = model_path ? mrm_meta_get(&meta, "threshold_rule") : NULL;
    const char *stored_split = model_path ? mrm_meta_get(&meta, "threshold_split") : NULL;
    char op_desc[512];
    const char *op_source;
    char rule_canon[64] = "";
    if (rule_text) {
        if (mrm_choose_thresholds(sd.y, avg, (int)sd.n, c, &rule, op, undet, &err)) goto fail;
        mrm_threshold_rule_format(&rule, rule_canon, sizeof rule_canon);
        op_source = "rule applied to the evaluated split";
        snprintf(op_desc, sizeof op_desc, "rule %s chosen on this %s split (optimistic: chosen on the records it is evaluated on)",
                 rule_canon, split);
    } else if (have_thr == 0) {
        memcpy(op, thr, (size_t)c * sizeof *op);
        op_source = "stored";
        snprintf(op_desc, sizeof op_desc, "the model's stored thresholds (rule %s, chosen on the %s split)",
                 stored_rule ? stored_rule : "f1", stored_split ? stored_split : "validation");
    } else {
        for (int k = 0; k < c; k++) op[k] = 0.5f;
        op_source = "default";
        snprintf(op_desc, sizeof op_desc, "0.5 for every class (%s)", model_path ? "the model stores no thresholds" : "no model");
    }
    cs = calloc((size_t)c, sizeof *cs);
    rel = calloc((size_t)c, sizeof *rel);
    if (!cs || !rel) {
        mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    mrm_class_stats_compute(sd.y, avg, (int)sd.n, c, op, cs);
    if (mrm_benchmark_fg_compute(&fg, sd.y, avg, (int)sd.n, c, op, 2.0, 2.0, &err)) goto fail;
    if (mrm_reliability_compute(&overall, sd.y, avg, (int)sd.n, c, -1, (int)bins, &err)) goto fail;
    for (int k = 0; k < c; k++)
        if (mrm_reliability_compute(&rel[k], sd.y, avg, (int)sd.n, c, k, (int)bins, &err)) goto fail;

    /* CPSC2018: when the classes are its nine */
    mrm_cpsc_scores cpsc;
    int have_cpsc = 0;
    cnum = calloc((size_t)c, sizeof *cnum);
    if (!cnum) {
        mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int n_cpsc = 0;
    for (int k = 0; k < c; k++) n_cpsc += (cnum[k] = mrm_cpsc_class_number(prep.classes[k])) != 0;
    if (n_cpsc == 9 && c == 9) {
        if (cpsc_ref) {
            if (!sd.ids) {
                mrm_fail(&err, MRM_ERR_NOTFOUND, "%s: --cpsc-reference needs the record ids (ids_%s.txt)", data, split);
                goto fail;
            }
            if (!(first = malloc((size_t)sd.n * sizeof *first))) {
                mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
                goto fail;
            }
            if (cpsc_first_labels(cpsc_ref, sd.ids, sd.n, first, &err)) goto fail;
        }
        if (mrm_cpsc_score(&cpsc, sd.y, avg, (int)sd.n, c, cnum, first, &err)) goto fail;
        have_cpsc = 1;
    } else if (cpsc_ref) {
        fprintf(stderr, "mrmnet %s: warning: --cpsc-reference: the classes are not CPSC2018's nine; no CPSC2018 table\n", cmd);
    }

    /* PhysioNet/CinC 2021 */
    mrm_challenge_result chal;
    int have_chal = 0;
    if (cw_path) {
        if (mrm_challenge_weights_read(&cw, cw_path, &err)) goto fail;
        if (!(codes = calloc((size_t)c, sizeof *codes))) {
            mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (cc_path) {
            if (mrm_class_map_read(&cmap, cc_path, &err)) goto fail;
            for (int q = 0; q < cmap.n; q++) {
                int k = 0;
                while (k < c && strcmp(prep.classes[k], cmap.from[q])) k++;
                if (k == c) {
                    mrm_fail(&err, MRM_ERR_INVALID, "%s: '%s' is not one of the classes", cc_path, cmap.from[q]);
                    goto fail;
                }
                if (codes[k]) {
                    mrm_fail(&err, MRM_ERR_INVALID, "%s: class '%s' has two codes (%s, %s)", cc_path, cmap.from[q], codes[k], cmap.to[q]);
                    goto fail;
                }
                codes[k] = cmap.to[q];
            }
        } else {
            for (int k = 0; k < c; k++) codes[k] = prep.classes[k];
        }
        if (mrm_challenge_score(&chal, &cw, sd.y, avg, (int)sd.n, c, op, codes, sinus, &err)) goto fail;
        have_chal = 1;
    }

    /* the table */
    pos = calloc((size_t)c, sizeof *pos);
    if (!pos) {
        mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (long long i = 0; i < sd.n; i++)
        for (int k = 0; k < c; k++) pos[k] += sd.y[(size_t)i * c + k] != 0.0f;
    printf("%s on %s, %s split: %lld records, %d classes\n\n", model_path ? model_path : scores_path, data, split, sd.n, c);
    printf("%-22s %9s  %-17s %9s %10s %7s %8s %7s\n", "", "macro-AUC", resamples ? "95% interval" : "", "sample-F1", "sample-TPR",
           "ACC", "macro-F1", "Fmax");
    for (int h = 0; h < n_heads; h++) {
        const mrm_metrics *x = &heads[h].m;
        char ci[64] = "";
        if (resamples && x->boot.n_resamples)
            snprintf(ci, sizeof ci, "[%.4f, %.4f]", x->boot.lo95, x->boot.hi95);
        else if (resamples)
            snprintf(ci, sizeof ci, "n/a");
        printf("%-22s %9.4f  %-17s %9.4f %10.4f %7.4f %8.4f %7.4f\n", heads[h].name, x->macro_auc, ci, x->sample_f1, x->sample_tpr,
               x->acc, x->macro_f1, x->fmax);
        if (heads[h].tuned) {
            const mrm_metrics *t = &heads[h].mt;
            printf("%-22s %9s  %-17s %9.4f %10.4f %7.4f %8.4f %7s\n", n_heads == 1 ? "output, own thresh." : "average, own thresh.", "", "", t->sample_f1, t->sample_tpr,
                   t->acc, t->macro_f1, "");
        }
    }
    if (resamples && heads[main_head].m.boot.n_resamples)
        printf("\n(interval: 2.5th-97.5th percentiles of %ld bootstrap resamples, seed %llu; mean %.4f, 5th-95th %.4f-%.4f)\n",
               resamples, seed, heads[main_head].m.boot.mean, heads[main_head].m.boot.lo90, heads[main_head].m.boot.hi90);
    printf("\nper-class AUC          ");
    for (int h = 0; h < n_heads; h++) printf(" %9.9s", n_heads == 1 ? (model_path ? "output" : "AUC") : h == 0 ? "head 1" : h == 1 ? "head 2" : "average");
    printf(" %9s\n", "positives");
    for (int k = 0; k < c; k++) {
        printf("  %-20.20s", prep.classes[k]);
        for (int h = 0; h < n_heads; h++) print_num(heads[h].m.auc[k], 9);
        printf(" %9lld%s\n", pos[k], pos[k] == 0 ? "  (no positive: no AUC)" : pos[k] == sd.n ? "  (no negative: no AUC)" : "");
    }
    if (heads[main_head].m.n_auc_missing)
        printf("\n%d of %d classes have no AUC on this split; the macro-AUC is the mean over the other %d.\n",
               heads[main_head].m.n_auc_missing, c, c - heads[main_head].m.n_auc_missing);

    printf("\nat the operating point: %s\n", op_desc);
    printf("  %-20s %9s %7s %7s %7s %7s %7s %7s %6s %6s %6s %6s\n", "class", "threshold", "sens", "spec", "PPV", "NPV", "F1", "support",
           "TP", "FP", "TN", "FN");
    for (int k = 0; k < c; k++) {
        printf("  %-20.20s %9.4g", prep.classes[k], (double)op[k]);
        print_num(cs[k].sensitivity, 7), print_num(cs[k].specificity, 7), print_num(cs[k].ppv, 7), print_num(cs[k].npv, 7);
        print_num(cs[k].f1, 7);
        printf(" %7lld %6lld %6lld %6lld %6lld%s\n", cs[k].support, cs[k].tp, cs[k].fp, cs[k].tn, cs[k].fn,
               undet[k] ? "  (rule not applicable: 0.5)" : "");
    }
    printf("  (n/a: the ratio's denominator is 0)\n");
    printf("\nPTB-XL benchmark (ICBEB), beta 2: F_beta %.4f, G_beta %.4f", fg.f_beta, fg.g_beta);
    if (fg.n_forced || fg.n_unlabelled || fg.n_undefined)
        printf(" (%lld records given their top class, %lld without a label skipped, %d classes undefined)", fg.n_forced,
               fg.n_unlabelled, fg.n_undefined);
    printf("\n\ncalibration (%ld bins): overall Brier %.4f, ECE %.4f\n", bins, overall.brier, overall.ece);
    printf("  %-20s %9s %9s\n", "class", "Brier", "ECE");
    for (int k = 0; k < c; k++) printf("  %-20.20s %9.4f %9.4f\n", prep.classes[k], rel[k].brier, rel[k].ece);
    if (have_cpsc) {
        static const char *cn[9] = {"Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"};
        printf("\nCPSC2018 challenge scores (one predicted class a record: the highest score):\n ");
        for (int j = 0; j < 9; j++) printf(" %7s", cn[j]);
        printf("\n ");
        for (int j = 0; j < 9; j++) print_num(cpsc.f1[j], 7);
        printf("\n  F1");
        print_num(cpsc.f1_mean, 0);
        printf("  Faf");
        print_num(cpsc.f_af, 0);
        printf("  Fblock");
        print_num(cpsc.f_block, 0);
        printf("  Fpc");
        print_num(cpsc.f_pc, 0);
        printf("  Fst");
        print_num(cpsc.f_st, 0);
        if (cpsc.n_defined < 9)
            printf("\n  (n/a: a class neither labelled nor predicted; the mean over the %d defined classes is %.4f)", cpsc.n_defined,
                   cpsc.f1_mean_defined);
        printf("\n  (%lld records scored", cpsc.n_scored);
        if (cpsc.n_unlabelled) printf(", %lld without a label not scored", cpsc.n_unlabelled);
        if (cpsc.n_first_guessed)
            printf("; %lld misses on multi-label records counted under their lowest-numbered label (give --cpsc-reference for the "
                   "first label)",
                   cpsc.n_first_guessed);
        printf(")\n");
    }
    if (have_chal)
        printf("\nPhysioNet/CinC 2021 challenge score: %.4f (%d of %d classes map to %d of the %d scored classes; sinus rhythm %s)\n",
               chal.score, chal.n_mapped, c, chal.n_scored_present, cw.n, sinus);

    if (json_path) {
        json_t *root = json_object(), *cls = json_array(), *hj = json_object();
        for (int k = 0; k < c; k++) json_array_append_new(cls, json_string(prep.classes[k]));
        json_object_set_new(root, model_path ? "model" : "scores", json_string(model_path ? model_path : scores_path));
        json_object_set_new(root, "data", json_string(data));
        json_object_set_new(root, "split", json_string(split));
        json_object_set_new(root, "records", json_integer(sd.n));
        json_object_set_new(root, "classes", cls);
        json_object_set_new(root, "threshold", json_real(0.5));
        const char *keys[3] = {"head1", "head2", "average"};
        for (int h = 0; h < n_heads; h++) {
            json_t *o = metrics_json(&heads[h].m, 1, prep.classes);
            if (heads[h].tuned) json_object_set_new(o, "at_model_thresholds", metrics_json(&heads[h].mt, 0, prep.classes));
            json_object_set_new(hj, n_heads == 1 ? (model_path ? "average" : "scores") : keys[h], o);
        }
        json_object_set_new(root, "heads", hj);
        json_t *opj = json_object(), *pc = json_object(), *cal = json_object(), *calc = json_object();
        json_object_set_new(opj, "source", json_string(op_source));
        json_object_set_new(opj, "description", json_string(op_desc));
        json_object_set_new(opj, "optimistic", json_boolean(rule_text != NULL));
        if (rule_text) json_object_set_new(opj, "rule", json_string(rule_canon));
        else if (have_thr == 0 && stored_rule) json_object_set_new(opj, "rule", json_string(stored_rule));
        for (int k = 0; k < c; k++) {
            json_t *o = class_stats_json(&cs[k], op[k]);
            if (undet[k]) json_object_set_new(o, "rule_not_applicable", json_true());
            json_object_set_new(pc, prep.classes[k], o);
        }
        json_object_set_new(opj, "per_class", pc);
        json_t *fj = json_object(), *fc = json_object(), *gc = json_object();
        json_object_set_new(fj, "beta", json_real(2.0));
        json_object_set_new(fj, "f_beta", jnum(fg.f_beta));
        json_object_set_new(fj, "g_beta", jnum(fg.g_beta));
        for (int k = 0; k < c; k++) {
            json_object_set_new(fc, prep.classes[k], jnum(fg.f_beta_class[k]));
            json_object_set_new(gc, prep.classes[k], jnum(fg.g_beta_class[k]));
        }
        json_object_set_new(fj, "f_beta_class", fc);
        json_object_set_new(fj, "g_beta_class", gc);
        json_object_set_new(fj, "records_given_top_class", json_integer(fg.n_forced));
        json_object_set_new(fj, "records_without_label", json_integer(fg.n_unlabelled));
        json_object_set_new(fj, "classes_undefined", json_integer(fg.n_undefined));
        json_object_set_new(opj, "ptbxl_benchmark", fj);
        json_object_set_new(root, "operating_point", opj);
        json_object_set_new(cal, "bins", json_integer(bins));
        json_object_set_new(cal, "overall", reliability_json(&overall));
        for (int k = 0; k < c; k++) json_object_set_new(calc, prep.classes[k], reliability_json(&rel[k]));
        json_object_set_new(cal, "per_class", calc);
        json_object_set_new(root, "calibration", cal);
        if (have_cpsc) {
            json_t *o = json_object(), *f = json_array(), *t = json_array();
            for (int j = 0; j < 9; j++) {
                json_array_append_new(f, jnum(cpsc.f1[j]));
                json_t *row = json_array();
                for (int q = 0; q < 9; q++) json_array_append_new(row, json_integer(cpsc.table[j][q]));
                json_array_append_new(t, row);
            }
            json_object_set_new(o, "classes", json_pack("[sssssssss]", "Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"));
            json_object_set_new(o, "f1", f);
            json_object_set_new(o, "F1", jnum(cpsc.f1_mean));
            json_object_set_new(o, "F1_defined_classes", jnum(cpsc.f1_mean_defined));
            json_object_set_new(o, "classes_defined", json_integer(cpsc.n_defined));
            json_object_set_new(o, "Faf", jnum(cpsc.f_af));
            json_object_set_new(o, "Fblock", jnum(cpsc.f_block));
            json_object_set_new(o, "Fpc", jnum(cpsc.f_pc));
            json_object_set_new(o, "Fst", jnum(cpsc.f_st));
            json_object_set_new(o, "table", t);
            json_object_set_new(o, "records_scored", json_integer(cpsc.n_scored));
            json_object_set_new(o, "records_without_label", json_integer(cpsc.n_unlabelled));
            json_object_set_new(o, "first_label_from_reference", json_boolean(first != NULL));
            json_object_set_new(o, "misses_first_label_guessed", json_integer(cpsc.n_first_guessed));
            json_object_set_new(root, "cpsc2018", o);
        }
        if (have_chal) {
            json_t *o = json_object();
            json_object_set_new(o, "score", jnum(chal.score));
            json_object_set_new(o, "observed", jnum(chal.observed));
            json_object_set_new(o, "correct", jnum(chal.correct));
            json_object_set_new(o, "inactive", jnum(chal.inactive));
            json_object_set_new(o, "classes_mapped", json_integer(chal.n_mapped));
            json_object_set_new(o, "scored_classes_present", json_integer(chal.n_scored_present));
            json_object_set_new(o, "sinus_rhythm", json_string(sinus));
            json_object_set_new(o, "weights", json_string(cw_path));
            json_object_set_new(root, "challenge2021", o);
        }
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        json_decref(root);
        mrm_status st = text ? mrm_write_file_atomic(json_path, text, strlen(text), &err) : mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        free(text);
        if (st) goto fail;
    }
    if (pred_path) {
        long long shape[2] = {sd.n, c};
        if (mrm_npy_write_f32(pred_path, avg, 2, shape, &err)) goto fail;
    }
    if (roc_path) {
        mrm_svg_series *se = calloc((size_t)c, sizeof *se);
        char (*names)[96] = calloc((size_t)c, sizeof *names);
        int ns = 0;
        mrm_status st = se && names ? MRM_OK : mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        for (int k = 0; !st && k < c; k++) {
            if (isnan(heads[main_head].m.auc[k])) continue;
            double *fx, *ty;
            int np;
            if ((st = mrm_roc_curve(sd.y, avg, (int)sd.n, c, k, &fx, &ty, &np, &err))) break;
            snprintf(names[ns], sizeof names[ns], "%.60s (AUC %.3f)", prep.classes[k], heads[main_head].m.auc[k]);
            se[ns] = (mrm_svg_series){names[ns], fx, ty, np};
            ns++;
        }
        char title[256];
        snprintf(title, sizeof title, "ROC, %s, %s split", model_path ? "average of both heads" : "given scores", split);
        mrm_svg_panel panel = {title, "false positive rate", "true positive rate", se, ns, 1};
        if (!st) st = mrm_svg_write(roc_path, &panel, 1, &err);
        for (int s = 0; se && s < ns; s++) free((void *)se[s].x), free((void *)se[s].y);
        free(se), free(names);
        if (st) goto fail;
    }
    if (rel_path && write_reliability(rel_path, &overall, rel, c, prep.classes, &err)) goto fail;
    if (save_path) {
        json_t *a = json_array();
        for (int k = 0; k < c; k++) json_array_append_new(a, json_real(op[k]));
        char *tj = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(9));
        json_decref(a);
        char nrec[32];
        snprintf(nrec, sizeof nrec, "%lld", sd.n);
        mrm_status st = tj ? MRM_OK : mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        if (!st) st = mrm_meta_set(&meta, "thresholds", tj, &err);
        if (!st) st = mrm_meta_set(&meta, "threshold_rule", rule_canon, &err);
        if (!st) st = mrm_meta_set(&meta, "threshold_split", split, &err);
        if (!st) st = mrm_meta_set(&meta, "threshold_records", nrec, &err);
        free(tj);
        if (!st) st = mrm_model_save(m, &meta, save_path, &err);
        if (st) goto fail;
        printf("\nwrote %s: thresholds by rule %s on the %s split (%lld records)%s\n", save_path, rule_canon, split, sd.n,
               strcmp(split, "val") ? "; warning: thresholds are meant to be chosen on the validation split" : "");
    }
    rc = 0;
fail:
    if (rc) cli_report(cmd, &err);
    for (int h = 0; h < 3; h++) mrm_metrics_free(&heads[h].m), mrm_metrics_free(&heads[h].mt);
    for (int k = 0; rel && k < c; k++) mrm_reliability_free(&rel[k]);
    mrm_reliability_free(&overall);
    mrm_benchmark_fg_free(&fg);
    mrm_challenge_weights_free(&cw);
    mrm_class_map_free(&cmap);
    free(rel), free(cs), free(pos), free(first), free(cnum), free(undet), free(codes);
    free(p1), free(p2), free(avg), free(thr), free(op);
    mrm_split_data_free(&sd);
    mrm_prepared_close(&prep);
    mrm_meta_free(&meta);
    if (m) mrm_model_free(m);
    mrm_engine_runner_free(&eng);
    return rc;
}
