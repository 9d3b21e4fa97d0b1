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

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet eval --model W.safetensors --data PREP/ [options]\n\n"
               "Metrics of the model on one split of a prepared folder, for head 1 (high resolution),\n"
               "head 2 (low resolution) and the average of both heads' probabilities: macro-AUC with a\n"
               "bootstrap interval, per-class AUC, sample-F1, sample-TPR, ACC, macro-F1 (threshold 0.5;\n"
               "the average also at the model's own thresholds when it has them) and Fmax.\n\n"
               "options:\n"
               "  --split NAME         train, val or test (test)\n"
               "  --json FILE          write every number as JSON\n"
               "  --predictions FILE   write the averaged probabilities (N, C) float32 .npy, ids order\n"
               "  --roc FILE.svg       ROC curves of the averaged probabilities, one per class\n"
               "  --resamples N        bootstrap resamples (100; 0: none)\n"
               "  --seed S             bootstrap seed (1)\n"
               "  --batch B            inference batch (64)\n"
               "  --threads T          OpenMP threads\n");
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

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    const char *model_path = NULL, *data = NULL, *split = "test", *json_path = NULL, *pred_path = NULL, *roc_path = NULL;
    long resamples = 100, batch = 64, threads = 0;
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
        else if (!strcmp(a, "--resamples")) {
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
    if (!model_path || !data) {
        fprintf(stderr, "mrmnet %s: --model and --data are required\n", cmd);
        usage(stderr);
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")) {
        fprintf(stderr, "mrmnet %s: --split: '%s' is not train, val or test\n", cmd, split);
        return 2;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    {
        mrm_error perr = {0};
        const char *outs[3] = {json_path, pred_path, roc_path};
        for (int k = 0; k < 3; k++)
            if (outs[k] && mrm_check_output_file(outs[k], &perr)) return cli_report(cmd, &perr);
    }

    mrm_error err = {0};
    mrm_model *m = NULL;
    mrm_meta meta = {0};
    mrm_prepared prep = {0};
    mrm_split_data sd = {0};
    float *p1 = NULL, *p2 = NULL, *avg = NULL, *thr = NULL;
    head_result heads[3];
    memset(heads, 0, sizeof heads);
    int rc = 1;
    if (mrm_model_load(&m, &meta, model_path, &err) || mrm_prepared_open(&prep, data, &err) ||
        mrm_prepared_check(&prep, &err))
        goto fail;
    cli_note_checkpoint(cmd, model_path, &meta);
    const int c = mrm_model_config_of(m)->n_classes;
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
        fprintf(stderr, "mrmnet %s: warning: the model was trained with mean %s, std %s; %s is standardised with %.9g, %.9g\n", cmd,
                ms, ss, data, prep.mean, prep.std);
    if (mrm_prepared_load_split(&prep, split, 1, &sd, &err)) goto fail;
    if (sd.n == 0) {
        mrm_fail(&err, MRM_ERR_INVALID, "%s: the %s split is empty", data, split);
        goto fail;
    }
    int usable = 0; /* a class with both a positive and a negative record: an AUC */
    for (int k = 0; k < c && !usable; k++) {
        long long pos = 0;
        for (long long i = 0; i < sd.n; i++) pos += sd.y[i * c + k] != 0.0f;
        usable = pos > 0 && pos < sd.n;
    }
    if (!usable)
        fprintf(stderr, "mrmnet %s: warning: the %s split (%lld record%s) has no class with both a positive and a negative "
                "record: no AUC can be computed (reported as null)\n", cmd, split, sd.n, sd.n == 1 ? "" : "s");
    const size_t nc = (size_t)sd.n * c;
    p1 = malloc(nc * sizeof *p1), p2 = malloc(nc * sizeof *p2), avg = malloc(nc * sizeof *avg);
    thr = malloc((size_t)c * sizeof *thr);
    if (!p1 || !p2 || !avg || !thr) {
        mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (mrm_predict_probs(m, sd.X, sd.n, (int)batch, p1, p2, avg, NULL, NULL, &err)) goto fail;
    int have_thr = model_thresholds(mrm_meta_get(&meta, "thresholds"), c, thr);
    if (have_thr == -2) fprintf(stderr, "mrmnet %s: warning: %s: metadata 'thresholds' is not %d numbers; ignored\n", cmd, model_path, c);
    heads[0] = (head_result){.name = "head 1 (high)", .p = p1};
    heads[1] = (head_result){.name = "head 2 (low)", .p = p2};
    const int one = mrm_model_num_heads(m) < 2; /* one output: one row */
    heads[2] = (head_result){.name = one ? "output" : "average", .p = avg, .tuned = have_thr == 0};
    const int h0 = one ? 2 : 0;
    for (int h = 0; h < 3; h++) {
        if (mrm_metrics_compute(&heads[h].m, sd.y, heads[h].p, (int)sd.n, c, NULL, (int)resamples, seed, &err)) goto fail;
        if (heads[h].tuned && mrm_metrics_compute(&heads[h].mt, sd.y, heads[h].p, (int)sd.n, c, thr, 0, 0, &err)) goto fail;
    }

    /* the table */
    long long *pos = calloc((size_t)c, sizeof *pos);
    if (!pos) {
        mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (long long i = 0; i < sd.n; i++)
        for (int k = 0; k < c; k++) pos[k] += sd.y[(size_t)i * c + k] != 0.0f;
    printf("%s on %s, %s split: %lld records, %d classes\n\n", model_path, data, split, sd.n, c);
    printf("%-22s %9s  %-17s %9s %10s %7s %8s %7s\n", "", "macro-AUC", resamples ? "95% interval" : "", "sample-F1", "sample-TPR",
           "ACC", "macro-F1", "Fmax");
    for (int h = h0; h < 3; h++) {
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
            printf("%-22s %9s  %-17s %9.4f %10.4f %7.4f %8.4f %7s\n", one ? "output, own thresh." : "average, own thresh.", "", "", t->sample_f1, t->sample_tpr,
                   t->acc, t->macro_f1, "");
        }
    }
    if (resamples && heads[2].m.boot.n_resamples)
        printf("\n(interval: 2.5th-97.5th percentiles of %ld bootstrap resamples, seed %llu; mean %.4f, 5th-95th %.4f-%.4f)\n",
               resamples, seed, heads[2].m.boot.mean, heads[2].m.boot.lo90, heads[2].m.boot.hi90);
    printf("\nper-class AUC          %9s %9s %9s %9s\n", "head 1", "head 2", "average", "positives");
    for (int k = 0; k < c; k++) {
        printf("  %-20.20s", prep.classes[k]);
        for (int h = h0; h < 3; h++) {
            if (isnan(heads[h].m.auc[k]))
                printf(" %9s", "n/a");
            else
                printf(" %9.4f", heads[h].m.auc[k]);
        }
        printf(" %9lld%s\n", pos[k], pos[k] == 0 ? "  (no positive: no AUC)" : pos[k] == sd.n ? "  (no negative: no AUC)" : "");
    }
    if (heads[2].m.n_auc_missing)
        printf("\n%d of %d classes have no AUC on this split; the macro-AUC is the mean over the other %d.\n", heads[2].m.n_auc_missing,
               c, c - heads[2].m.n_auc_missing);
    free(pos);

    if (json_path) {
        json_t *root = json_object(), *cls = json_array(), *hj = json_object();
        for (int k = 0; k < c; k++) json_array_append_new(cls, json_string(prep.classes[k]));
        json_object_set_new(root, "model", json_string(model_path));
        json_object_set_new(root, "data", json_string(data));
        json_object_set_new(root, "split", json_string(split));
        json_object_set_new(root, "records", json_integer(sd.n));
        json_object_set_new(root, "classes", cls);
        json_object_set_new(root, "threshold", json_real(0.5));
        const char *keys[3] = {"head1", "head2", "average"};
        for (int h = h0; h < 3; h++) {
            json_t *o = metrics_json(&heads[h].m, 1, prep.classes);
            if (heads[h].tuned) json_object_set_new(o, "at_model_thresholds", metrics_json(&heads[h].mt, 0, prep.classes));
            json_object_set_new(hj, keys[h], o);
        }
        json_object_set_new(root, "heads", hj);
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
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
            if (isnan(heads[2].m.auc[k])) continue;
            double *fx, *ty;
            int np;
            if ((st = mrm_roc_curve(sd.y, avg, (int)sd.n, c, k, &fx, &ty, &np, &err))) break;
            snprintf(names[ns], sizeof names[ns], "%.60s (AUC %.3f)", prep.classes[k], heads[2].m.auc[k]);
            se[ns] = (mrm_svg_series){names[ns], fx, ty, np};
            ns++;
        }
        char title[256];
        snprintf(title, sizeof title, "ROC, average of both heads, %s split", split);
        mrm_svg_panel panel = {title, "false positive rate", "true positive rate", se, ns, 1};
        if (!st) st = mrm_svg_write(roc_path, &panel, 1, &err);
        for (int s = 0; se && s < ns; s++) free((void *)se[s].x), free((void *)se[s].y);
        free(se), free(names);
        if (st) goto fail;
    }
    rc = 0;
fail:
    if (rc) cli_report(cmd, &err);
    for (int h = 0; h < 3; h++) mrm_metrics_free(&heads[h].m), mrm_metrics_free(&heads[h].mt);
    free(p1), free(p2), free(avg), free(thr);
    mrm_split_data_free(&sd);
    mrm_prepared_close(&prep);
    mrm_meta_free(&meta);
    if (m) mrm_model_free(m);
    return rc;
}
