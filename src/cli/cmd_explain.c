/* mrmnet explain: which part of a recording drove each class's score (Grad-CAM on each branch's
 * last maps, input times gradient per lead; integrated gradients on request). */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/explain_common.h"
#include "common/error.h"
#include "common/fileutil.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet explain --model W.safetensors [options] RECORD... --out DIR/\n"
               "       mrmnet explain --model W.safetensors --input X.npy --out DIR/   (prepared arrays)\n\n"
               "For each recording (any file predict reads) and each class, the maps of what drove the\n"
               "class's score s (the mean over the model's heads of the class's logit) in the analysed 10 s\n"
               "window (the recording read, its leads formed, resampled to 100 Hz and standardised as predict\n"
               "does):\n"
               "  Grad-CAM: on the last maps A (c, L) of each branch, relu(sum_j mean_t(ds/dA[j]) A[j]),\n"
               "  brought to the 1000 steps of the window by linear interpolation (PyTorch's\n"
               "  F.interpolate, align_corners=False); the combined map is the sum over the branches;\n"
               "  input x gradient: x * ds/dx for each lead (the standardised input).\n"
               "Written to DIR (created) for a recording NAME: NAME.gradcam.npy (K, 1000) combined,\n"
               "NAME.gradcam_branches.npy (K, branches, 1000), NAME.saliency.npy (K, 12, 1000) input x\n"
               "gradient (the model's lead order), NAME.input.npy (12, 1000) the model's input, and\n"
               "NAME.json: probabilities, thresholds, labels, scores, the window, the files; K = the classes\n"
               "asked in the model's order. A recording longer than 10 s is explained in every 10 s window\n"
               "predict analyses (10 s apart, and a last one ending at the recording's end when more than 1 s\n"
               "would be left out): the .npy files then have a leading window axis (W, ...), NAME.json lists\n"
               "the windows with their probabilities, and its probabilities and labels are predict's (the\n"
               "mean over the windows); --start explains one window instead.\n"
               "With --input X.npy (N, 12, 1000), standardised as the model was trained (prepare's X_*.npy):\n"
               "DIR/gradcam.npy (N, K, 1000), DIR/saliency.npy (N, K, 12, 1000), DIR/probabilities.npy\n"
               "(N, classes), and with --ig STEPS DIR/integrated.npy (N, K, 12, 1000): integrated gradients\n"
               "from each record's per-lead median (its baseline) in STEPS midpoint steps, and\n"
               "DIR/integrated_smooth.npy (N, K, 1000): their sum over the leads averaged over 0.1 s (the\n"
               "map report --shade ig shades; report uses 32 steps).\n\n"
               "options:\n"
               "  --classes A,B     only these classes (names or 0-based indices)\n"
               "  --start S         explain the one 10 s window starting S seconds in (clamped to end at\n"
               "                    the recording's end)\n"
               "  --force           explain recordings that fail the signal checks too\n"
               "  --overwrite       replace files of the same names in DIR\n"
               "  --ig STEPS        with --input: integrated gradients too\n"
               "  --threads T       OpenMP threads\n");
}

/* Parses --classes into asked[c]; 2 on an unknown class. */
static int parse_classes(const char *cmd, const char *list, const xp_model *xm, int *asked) {
    char *copy = strdup(list), *save = NULL;
    if (!copy) return 2;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = -1;
        for (int i = 0; i < xm->c; i++)
            if (!strcmp(xm->classes[i], t)) k = i;
        char *end;
        long v = strtol(t, &end, 10);
        if (k < 0 && *t && !*end && v >= 0 && v < xm->c) k = (int)v;
        if (k < 0) {
            fprintf(stderr, "mrmnet %s: --classes: '%s' is not a class of %s\n", cmd, t, xm->path);
            rc = 2;
            break;
        }
        asked[k] = 1;
    }
    free(copy);
    return rc;
}

/* DIR/NAME.SUFFIX into out; refuses an existing file unless overwrite. */
static mrm_status out_path(char *out, size_t n, const char *dir, const char *name, const char *suffix, int overwrite,
                           mrm_error *err) {
    char file[600];
    snprintf(file, sizeof file, "%s%s", name, suffix);
    if (mrm_path_join(out, n, dir, file)) return mrm_fail(err, MRM_ERR_INVALID, "%s/%s: path too long", dir, file);
    struct stat st;
    if (!overwrite && stat(out, &st) == 0)
        return mrm_fail(err, MRM_ERR_INVALID, "%s exists (--overwrite replaces it)", out);
    return MRM_OK;
}

/* Rows of src (rows of `row` floats) whose asked flag is set, into dst. */
static int pick_rows(float *dst, const float *src, const int *asked, int c, size_t row) {
    int k = 0;
    for (int i = 0; i < c; i++)
        if (asked[i]) memcpy(dst + (size_t)k++ * row, src + (size_t)i * row, row * sizeof(float));
    return k;
}

static mrm_status write_json(const char *path, json_t *o, mrm_error *err) {
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    if (!text) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(text);
    mrm_status s = mrm_write_file_atomic(path, text, len, err);
    free(text);
    return s;
}

static const char *file_part(const char *p) { return strrchr(p, '/') ? strrchr(p, '/') + 1 : p; }

/* {class: value} of the asked classes (all when asked is NULL). */
static json_t *by_class(const xp_model *xm, const float *v, const int *asked) {
    json_t *o = json_object();
    for (int k = 0; k < xm->c; k++)
        if (!asked || asked[k]) json_object_set_new(o, xm->classes[k], json_real(v[k]));
    return o;
}

static json_t *labels_of(const xp_model *xm, const float *prob) {
    json_t *a = json_array();
    for (int k = 0; k < xm->c; k++)
        if (prob[k] > xm->thr[k]) json_array_append_new(a, json_string(xm->classes[k]));
    return a;
}

/* One recording: the maps of each window analysed (the one at start_s when given, else every
 * window predict analyses), written as NAME.*.npy (a leading window axis when there are several)
 * and NAME.json. */
static mrm_status explain_one(const xp_model *xm, const char *path, const char *dir, const char *name, const int *asked,
                              double start_s, int force, int overwrite, mrm_error *err) {
    const int c = xm->c, T = MRM_SAMPLES;
    int K = 0;
    for (int k = 0; k < c; k++) K += asked[k];
    xp_record r;
    xp_maps mp;
    memset(&mp, 0, sizeof mp);
    mrm_status s = xp_record_read(xm, path, start_s > 0 ? start_s : 0, force, &r, err);
    const int W = s ? 0 : start_s >= 0 ? 1 : r.n_win, multi = W > 1;
    char p_cam[4200], p_br[4200], p_sal[4200], p_in[4200], p_json[4200];
    if (!s) s = out_path(p_cam, sizeof p_cam, dir, name, ".gradcam.npy", overwrite, err);
    if (!s) s = out_path(p_br, sizeof p_br, dir, name, ".gradcam_branches.npy", overwrite, err);
    if (!s) s = out_path(p_sal, sizeof p_sal, dir, name, ".saliency.npy", overwrite, err);
    if (!s) s = out_path(p_in, sizeof p_in, dir, name, ".input.npy", overwrite, err);
    if (!s) s = out_path(p_json, sizeof p_json, dir, name, ".json", overwrite, err);
    const int nb = mrm_model_num_branches(xm->m);
    float *cam = NULL, *br = NULL, *sal = NULL, *in = NULL, *prob = NULL, *score = NULL, *cmax = NULL, *mean = NULL;
    double *wstart = NULL;
    int written = 0; /* files of this recording written so far: removed again when a later one fails */
    if (!s) {
        cam = malloc(sizeof(float) * (size_t)W * K * T);
        br = malloc(sizeof(float) * (size_t)W * K * nb * T);
        sal = malloc(sizeof(float) * (size_t)W * K * MRM_LEADS * T);
        in = malloc(sizeof(float) * (size_t)W * MRM_LEADS * T);
        prob = malloc(sizeof(float) * (size_t)W * c);
        score = malloc(sizeof(float) * (size_t)W * c);
        cmax = calloc((size_t)W * c, sizeof(float));
        mean = malloc(sizeof(float) * (size_t)c);
        wstart = malloc(sizeof(double) * (size_t)W);
        if (!cam || !br || !sal || !in || !prob || !score || !cmax || !mean || !wstart) s = mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    }
    for (int w = 0; !s && w < W; w++) {
        if (multi) xp_record_window(xm, &r, r.win_start[w]);
        wstart[w] = r.start_s;
        s = xp_maps_compute(xm, &r, asked, &mp, err);
        if (s) break;
        pick_rows(cam + (size_t)w * K * T, mp.cam, asked, c, T);
        pick_rows(br + (size_t)w * K * nb * T, mp.cam_branch, asked, c, (size_t)nb * T);
        pick_rows(sal + (size_t)w * K * MRM_LEADS * T, mp.ixg, asked, c, (size_t)MRM_LEADS * T);
        memcpy(in + (size_t)w * MRM_LEADS * T, r.x, sizeof(float) * MRM_LEADS * T);
        memcpy(prob + (size_t)w * c, mp.prob, sizeof(float) * (size_t)c);
        memcpy(score + (size_t)w * c, mp.score, sizeof(float) * (size_t)c);
        for (int k = 0; k < c; k++)
            for (int t = 0; t < T; t++) cmax[(size_t)w * c + k] = fmaxf(cmax[(size_t)w * c + k], mp.cam[(size_t)k * T + t]);
        xp_maps_free(&mp);
    }
    if (!s) {
        for (int k = 0; k < c; k++) { /* the mean over the windows, in double, as predict */
            double sum = 0;
            for (int w = 0; w < W; w++) sum += prob[(size_t)w * c + k];
            mean[k] = (float)(sum / W);
        }
        long long sh_cam[3] = {W, K, T}, sh_br[4] = {W, K, nb, T}, sh_sal[4] = {W, K, MRM_LEADS, T}, sh_in[3] = {W, MRM_LEADS, T};
        int o = multi ? 0 : 1; /* one window: no window axis */
        s = mrm_npy_write_f32(p_cam, cam, 3 - o, sh_cam + o, err);
        if (!s) written++, s = mrm_npy_write_f32(p_br, br, 4 - o, sh_br + o, err);
        if (!s) written++, s = mrm_npy_write_f32(p_sal, sal, 4 - o, sh_sal + o, err);
        if (!s) written++, s = mrm_npy_write_f32(p_in, in, 3 - o, sh_in + o, err);
        if (!s) written++;
    }
    if (!s) {
        json_t *j = json_object(), *cls = json_array(), *leads = json_array(), *files = json_object(), *wins = json_array();
        for (int k = 0; k < c; k++)
            if (asked[k]) json_array_append_new(cls, json_string(xm->classes[k]));
        for (int jl = 0; jl < MRM_LEADS; jl++) json_array_append_new(leads, json_string(mrm_lead_names[xm->lead_map[jl]]));
        for (int w = 0; w < W; w++) {
            json_t *o = json_object();
            json_object_set_new(o, "start_s", json_real(wstart[w]));
            json_object_set_new(o, "end_s", json_real(wstart[w] + T / MRM_FS));
            json_object_set_new(o, "probabilities", by_class(xm, prob + (size_t)w * c, NULL));
            json_object_set_new(o, "labels", labels_of(xm, prob + (size_t)w * c));
            json_object_set_new(o, "scores", by_class(xm, score + (size_t)w * c, asked));
            json_object_set_new(o, "gradcam_max", by_class(xm, cmax + (size_t)w * c, asked));
            json_array_append_new(wins, o);
        }
        json_object_set_new(files, "gradcam", json_string(file_part(p_cam)));
        json_object_set_new(files, "gradcam_branches", json_string(file_part(p_br)));
        json_object_set_new(files, "saliency", json_string(file_part(p_sal)));
        json_object_set_new(files, "input", json_string(file_part(p_in)));
        json_object_set_new(j, "record", json_string(path));
        json_object_set_new(j, "model", json_string(xm->path));
        json_object_set_new(j, "seconds", json_real(r.seconds));
        if (!multi) {
            json_object_set_new(j, "window_start_s", json_real(wstart[0]));
            json_object_set_new(j, "window_end_s", json_real(wstart[0] + T / MRM_FS));
        }
        json_object_set_new(j, "sampling_rate_maps", json_real(MRM_FS));
        json_object_set_new(j, "classes", cls);
        json_object_set_new(j, "probabilities", by_class(xm, mean, NULL));
        if (multi)
            json_object_set_new(j, "probabilities_are",
                                json_string("the mean over the windows of each window's probability, as predict aggregates them"));
        json_object_set_new(j, "thresholds", by_class(xm, xm->thr, NULL));
        json_object_set_new(j, "labels", labels_of(xm, mean));
        if (!multi) {
            json_object_set_new(j, "scores", by_class(xm, score, asked));
            json_object_set_new(j, "gradcam_max", by_class(xm, cmax, asked));
        }
        json_object_set_new(j, "windows", wins);
        json_object_set_new(j, "branches", json_integer(nb));
        json_object_set_new(j, "leads", leads);
        json_object_set_new(j, "score", json_string("mean over the heads of the class's logit"));
        json_object_set_new(j, "gradcam", json_string("sum over branches of relu(sum_j mean_t(ds/dA_j) A_j) on each branch's "
                                                      "last maps, linearly interpolated to 1000 steps (align_corners=False)"));
        json_object_set_new(j, "saliency", json_string("input x gradient: x * ds/dx, x the standardised model input"));
        if (multi)
            json_object_set_new(j, "window_axis", json_string("the .npy files have a leading axis: one entry a window of 'windows'"));
        if (r.problems[0]) json_object_set_new(j, "problems", json_string(r.problems));
        json_object_set_new(j, "files", files);
        s = write_json(p_json, j, err);
        json_decref(j);
    }
    const char *done[4] = {p_cam, p_br, p_sal, p_in};
    for (int f = 0; s && f < written; f++) unlink(done[f]);
    free(cam), free(br), free(sal), free(in), free(prob), free(score), free(cmax), free(mean), free(wstart);
    xp_maps_free(&mp);
    xp_record_free(&r);
    return s;
}

static int explain_records(const char *cmd, const xp_model *xm, char **paths, int n, const char *dir, const int *asked,
                           double start_s, int force, int overwrite) {
    int failed = 0;
    char (*names)[256] = calloc((size_t)n, sizeof *names);
    if (!names) {
        fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        mrm_error err = {0};
        char base[200];
        xp_base_name(paths[i], base, sizeof base);
        snprintf(names[i], sizeof names[i], "%s", base);
        for (int j = 0, dup = 1; j < i; j++) /* two inputs of the same name: NAME_2, NAME_3, ... */
            if (!strcmp(names[j], names[i])) snprintf(names[i], sizeof names[i], "%s_%d", base, ++dup), j = -1;
        if (explain_one(xm, paths[i], dir, names[i], asked, start_s, force, overwrite, &err)) {
            fprintf(stderr, "mrmnet %s: %s: %s\n", cmd, paths[i], err.msg);
            failed++;
        } else {
            fprintf(stderr, "mrmnet %s: %s -> %s/%s.*\n", cmd, paths[i], dir, names[i]);
        }
    }
    free(names);
    if (failed) fprintf(stderr, "mrmnet %s: %d of %d recordings could not be explained\n", cmd, failed, n);
    return failed ? 1 : 0;
}

static int explain_array(const char *cmd, const xp_model *xm, const char *input, const char *dir, const int *asked, int ig_steps,
                         int overwrite) {
    mrm_error err = {0};
    float *X = NULL;
    int nd = 0;
    long long sh[4] = {0};
    mrm_status s = mrm_npy_read_f32(input, &X, &nd, sh, &err);
    if (!s) s = mrm_check_finite_f32(input, X, nd, sh, &err);
    if (!s && (nd != 3 || sh[0] < 1 || sh[1] != MRM_LEADS || sh[2] != MRM_SAMPLES))
        s = mrm_fail(&err, MRM_ERR_FORMAT, "%s: shape of %d dimensions, expected (N, 12, 1000)", input, nd);
    const long long N = s ? 0 : sh[0];
    const int c = xm->c, T = MRM_SAMPLES;
    int K = 0;
    for (int k = 0; k < c; k++) K += asked[k];
    const size_t rec = (size_t)MRM_LEADS * T;
    char p_cam[4200], p_sal[4200], p_prob[4200], p_ig[4200], p_igs[4200];
    if (!s) s = out_path(p_cam, sizeof p_cam, dir, "gradcam", ".npy", overwrite, &err);
    if (!s) s = out_path(p_sal, sizeof p_sal, dir, "saliency", ".npy", overwrite, &err);
    if (!s) s = out_path(p_prob, sizeof p_prob, dir, "probabilities", ".npy", overwrite, &err);
    if (!s && ig_steps) s = out_path(p_ig, sizeof p_ig, dir, "integrated", ".npy", overwrite, &err);
    if (!s && ig_steps) s = out_path(p_igs, sizeof p_igs, dir, "integrated_smooth", ".npy", overwrite, &err);
    float *cam = NULL, *sal = NULL, *prob = NULL, *ig = NULL, *igs = NULL, *base = NULL;
    if (!s) {
        cam = malloc(sizeof(float) * (size_t)N * K * T);
        sal = malloc(sizeof(float) * (size_t)N * K * rec);
        prob = malloc(sizeof(float) * (size_t)N * c);
        base = malloc(sizeof(float) * rec);
        if (ig_steps) ig = malloc(sizeof(float) * (size_t)N * K * rec), igs = malloc(sizeof(float) * (size_t)N * K * T);
        if (!cam || !sal || !prob || !base || (ig_steps && (!ig || !igs))) s = mrm_fail(&err, MRM_ERR_NOMEM, "out of memory for %lld records", N);
    }
    mrm_model *m = xm->m;
    const int heads = mrm_model_num_heads(m);
    for (long long i = 0; !s && i < N; i++) {
        const float *x = X + (size_t)i * rec;
        s = mrm_model_forward(m, x, 1, 0, NULL, &err);
        for (int k = 0; !s && k < c; k++) {
            double p = 0;
            for (int h = 1; h <= heads; h++) p += 1.0 / (1.0 + exp(-(double)mrm_model_logits(m, h)[k]));
            prob[(size_t)i * c + k] = (float)(p / heads);
        }
        if (ig_steps) mrm_explain_baseline(x, base);
        for (int k = 0, q = 0; !s && k < c; k++) {
            if (!asked[k]) continue;
            size_t row = (size_t)i * K + q++;
            s = mrm_explain_class(m, x, 1, k, NULL, cam + row * T, NULL, sal + row * rec, &err);
            if (!s && ig_steps) s = mrm_explain_integrated(m, x, base, 1, k, ig_steps, ig + row * rec, &err);
            if (!s && ig_steps) mrm_explain_smooth(ig + row * rec, MRM_EXPLAIN_SMOOTH_STEPS, igs + row * T);
        }
        if (!s) cli_progress(NULL, "explaining", (size_t)(i + 1), (size_t)N);
    }
    if (!s) {
        long long s2[2] = {N, c}, s3[3] = {N, K, T}, s4[4] = {N, K, MRM_LEADS, T};
        const char *done[4] = {p_prob, p_cam, p_sal, p_ig};
        int written = 0; /* removed again when a later file fails */
        s = mrm_npy_write_f32(p_prob, prob, 2, s2, &err);
        if (!s) written++, s = mrm_npy_write_f32(p_cam, cam, 3, s3, &err);
        if (!s) written++, s = mrm_npy_write_f32(p_sal, sal, 4, s4, &err);
        if (!s) written++;
        if (!s && ig_steps) s = mrm_npy_write_f32(p_ig, ig, 4, s4, &err);
        if (!s && ig_steps) written++, s = mrm_npy_write_f32(p_igs, igs, 3, s3, &err);
        for (int f = 0; s && f < written; f++) unlink(done[f]);
    }
    free(X), free(cam), free(sal), free(prob), free(ig), free(igs), free(base);
    return s ? cli_report(cmd, &err) : 0;
}

int cmd_explain(int argc, char **argv) {
    const char *cmd = "explain", *model_path = NULL, *dir = NULL, *classes = NULL, *input = NULL;
    double start_s = -1; /* not given: every window predict analyses */
    long threads = 0, ig_steps = 0;
    int force = 0, overwrite = 0, n = 0;
    char **paths = calloc((size_t)argc, sizeof *paths);
    if (!paths) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(paths);
            return 0;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--overwrite")) {
            overwrite = 1;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--out") || !strcmp(a, "--classes") || !strcmp(a, "--start") ||
                   !strcmp(a, "--threads") || !strcmp(a, "--input") || !strcmp(a, "--ig")) {
            if (!v) {
                fprintf(stderr, "mrmnet %s: %s needs a value\n", cmd, a);
                free(paths);
                return 2;
            }
            i++;
            int bad = 0;
            if (!strcmp(a, "--model")) model_path = v;
            else if (!strcmp(a, "--out")) dir = v;
            else if (!strcmp(a, "--classes")) classes = v;
            else if (!strcmp(a, "--input")) input = v;
            else if (!strcmp(a, "--start")) bad = cli_parse_double_in(cmd, a, v, 0, 0, 1e9, 0, &start_s);
            else if (!strcmp(a, "--threads")) bad = cli_parse_int(cmd, a, v, 1, 4096, &threads);
            else bad = cli_parse_int(cmd, a, v, 1, 10000, &ig_steps);
            if (bad) {
                free(paths);
                return 2;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "mrmnet %s: unknown option '%s'\n", cmd, a);
            usage(stderr);
            free(paths);
            return 2;
        } else {
            paths[n++] = argv[i];
        }
    }
    if (!model_path || !dir || (!n && !input) || (n && input)) {
        fprintf(stderr, "mrmnet %s: --model, --out and either records or --input are required\n", cmd);
        usage(stderr);
        free(paths);
        return 2;
    }
    if (ig_steps && !input) {
        fprintf(stderr, "mrmnet %s: --ig goes with --input\n", cmd);
        free(paths);
        return 2;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    xp_model xm;
    int rc = 1;
    int *asked = NULL;
    mrm_error err = {0};
    if (xp_model_load(cmd, model_path, &xm)) goto done;
    asked = calloc((size_t)xm.c, sizeof *asked);
    if (!asked) goto done;
    if (classes) {
        if (parse_classes(cmd, classes, &xm, asked)) {
            rc = 2;
            goto done;
        }
    } else {
        for (int k = 0; k < xm.c; k++) asked[k] = 1;
    }
    if (mrm_mkdir_p(dir, &err) || mrm_check_output_dir(dir, &err)) {
        rc = cli_report(cmd, &err);
        goto done;
    }
    rc = input ? explain_array(cmd, &xm, input, dir, asked, (int)ig_steps, overwrite)
               : explain_records(cmd, &xm, paths, n, dir, asked, start_s, force, overwrite);
done:
    free(asked);
    xp_model_free(&xm);
    free(paths);
    return rc;
}
