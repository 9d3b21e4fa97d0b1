/* What `explain` and `report` share (explain_common.h). */
#include "cli/explain_common.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

json_t *cli_json_array_of(const char *text, size_t n) {
    if (!text) return NULL;
    json_error_t je;
    json_t *a = json_loads(text, JSON_DECODE_ANY, &je);
    if (a && (!json_is_array(a) || json_array_size(a) != n)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

int xp_model_load(const char *cmd, const char *path, xp_model *xm) {
    memset(xm, 0, sizeof *xm);
    xm->path = path;
    mrm_error err = {0};
    if (mrm_model_load(&xm->m, &xm->meta, path, &err)) {
        fprintf(stderr, "mrmnet %s: %s\n", cmd, err.msg);
        return 1;
    }
    int c = xm->c = mrm_model_config_of(xm->m)->n_classes;
    xm->classes = calloc((size_t)c, sizeof *xm->classes);
    xm->thr = malloc(sizeof(float) * (size_t)c);
    if (!xm->classes || !xm->thr) {
        fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
        return 1;
    }
    json_t *jc = cli_json_array_of(mrm_meta_get(&xm->meta, "classes"), (size_t)c);
    for (int k = 0; k < c; k++) {
        json_t *s = jc ? json_array_get(jc, (size_t)k) : NULL;
        char buf[32];
        snprintf(buf, sizeof buf, "class%d", k);
        xm->classes[k] = strdup(s && json_is_string(s) ? json_string_value(s) : buf);
        xm->thr[k] = 0.5f;
        if (!xm->classes[k]) {
            if (jc) json_decref(jc);
            fprintf(stderr, "mrmnet %s: out of memory\n", cmd);
            return 1;
        }
    }
    if (!jc) fprintf(stderr, "mrmnet %s: warning: %s has no class names; classes are numbered\n", cmd, path);
    else json_decref(jc);
    json_t *jt = cli_json_array_of(mrm_meta_get(&xm->meta, "thresholds"), (size_t)c);
    if (jt) {
        xm->has_thresholds = 1;
        for (int k = 0; k < c; k++) {
            json_t *v = json_array_get(jt, (size_t)k);
            if (json_is_number(v)) xm->thr[k] = (float)json_number_value(v);
        }
        json_decref(jt);
    } else if (mrm_meta_get(&xm->meta, "thresholds")) {
        fprintf(stderr, "mrmnet %s: warning: %s: metadata 'thresholds' is not %d numbers; using 0.5\n", cmd, path, c);
    }
    const char *ms = mrm_meta_get(&xm->meta, "mean"), *ss = mrm_meta_get(&xm->meta, "std");
    char *e1 = NULL, *e2 = NULL;
    xm->mean = ms ? strtod(ms, &e1) : NAN;
    xm->sd = ss ? strtod(ss, &e2) : NAN;
    if (!ms || !ss || *e1 || *e2 || !isfinite(xm->mean) || !(xm->sd > 0)) {
        fprintf(stderr, "mrmnet %s: %s: metadata 'mean' and 'std' (the input standardisation) are missing or invalid\n", cmd,
                path);
        return 1;
    }
    json_t *jl = cli_json_array_of(mrm_meta_get(&xm->meta, "leads"), MRM_LEADS);
    int used[MRM_LEADS] = {0}, ok = !(mrm_meta_get(&xm->meta, "leads") && !jl);
    for (int j = 0; j < MRM_LEADS; j++) {
        const char *nm = jl ? json_string_value(json_array_get(jl, (size_t)j)) : NULL;
        int li = jl ? mrm_lead_index(nm ? nm : "") : j;
        if (li < 0 || used[li]++) ok = 0;
        xm->lead_map[j] = li < 0 ? 0 : li;
    }
    if (jl) json_decref(jl);
    if (!ok) {
        fprintf(stderr, "mrmnet %s: %s: metadata 'leads' is not the 12 standard leads: %s\n", cmd, path,
                mrm_meta_get(&xm->meta, "leads"));
        return 1;
    }
    return 0;
}

void xp_model_free(xp_model *xm) {
    for (int k = 0; xm->classes && k < xm->c; k++) free(xm->classes[k]);
    free(xm->classes);
    free(xm->thr);
    mrm_meta_free(&xm->meta);
    mrm_model_free(xm->m);
    memset(xm, 0, sizeof *xm);
}

mrm_status xp_record_read(const xp_model *xm, const char *path, double start_s, int force, xp_record *r, mrm_error *err) {
    memset(r, 0, sizeof *r);
    mrm_status s = mrm_record_read(&r->rec, path, 0, err);
    if (s) return s;
    r->seconds = r->rec.fs > 0 ? (double)r->rec.n_samples / r->rec.fs : 0;
    mrm_signal_quality q;
    memset(&q, 0, sizeof q);
    s = mrm_quality_check(&r->rec, 0, &q, err);
    if (!s) s = mrm_lead_map_of(&r->rec, 0, &r->map, err);
    if (s) return s;
    snprintf(r->problems, sizeof r->problems, "%s", q.summary);
    if (q.summary[0] && !force)
        return mrm_fail(err, MRM_ERR_CHECK, "%s: not explained, the recording is not fit: %s (--force explains it anyway)", path,
                        q.summary);
    if (llround(r->seconds * MRM_FS) < MRM_SAMPLES)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: %.3g s long, shorter than the model's 10 s window", path, r->seconds);
    s = mrm_preprocess_full(&r->rec, 0, &r->full, &r->frames, &r->info, err);
    if (s) return s;
    if (r->frames < MRM_SAMPLES)
        return mrm_fail(err, MRM_ERR_INVALID, "%s: %lld samples at 100 Hz, fewer than the model's 1000", path, r->frames);
    long long nw = xp_window_starts(r->frames, MRM_SAMPLES, NULL);
    r->win_start = malloc(sizeof *r->win_start * (size_t)nw);
    r->mv100 = malloc(sizeof(float) * MRM_LEADS * MRM_SAMPLES);
    r->x = malloc(sizeof(float) * MRM_LEADS * MRM_SAMPLES);
    if (!r->mv100 || !r->x || !r->win_start) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", path);
    r->n_win = (int)xp_window_starts(r->frames, MRM_SAMPLES, r->win_start);
    xp_record_window(xm, r, llround((start_s > 0 ? start_s : 0) * MRM_FS));
    return MRM_OK;
}

/* The standardised model input (12, 1000) of the window at frame st, in the model's lead order. */
static void model_input(const xp_model *xm, const xp_record *r, long long st, float *x) {
    for (int j = 0; j < MRM_LEADS; j++) {
        const float *src = r->full + (size_t)xm->lead_map[j] * (size_t)r->frames + (size_t)st;
        for (int t = 0; t < MRM_SAMPLES; t++) x[(size_t)j * MRM_SAMPLES + t] = (float)(((double)src[t] - xm->mean) / xm->sd);
    }
}

void xp_record_window(const xp_model *xm, xp_record *r, long long st) {
    if (st > r->frames - MRM_SAMPLES) st = r->frames - MRM_SAMPLES;
    if (st < 0) st = 0;
    r->start_s = (double)st / MRM_FS;
    for (int j = 0; j < MRM_LEADS; j++)
        memcpy(r->mv100 + (size_t)j * MRM_SAMPLES, r->full + (size_t)j * (size_t)r->frames + (size_t)st, sizeof(float) * MRM_SAMPLES);
    model_input(xm, r, st, r->x);
}

long long xp_window_starts(long long m, long long stride, long long *starts) {
    if (m <= MRM_SAMPLES) {
        if (starts) starts[0] = 0;
        return 1;
    }
    long long k = 0, s = 0;
    for (; s + MRM_SAMPLES <= m; s += stride) {
        if (starts) starts[k] = s;
        k++;
    }
    long long end = (s - stride) + MRM_SAMPLES;
    if (m - end > (long long)MRM_FS) {
        if (starts) starts[k] = m - MRM_SAMPLES;
        k++;
    }
    return k;
}

mrm_status xp_window_probs(const xp_model *xm, const xp_record *r, float *pw, float *mean, mrm_error *err) {
    const int c = xm->c, heads = mrm_model_num_heads(xm->m);
    float *x = malloc(sizeof(float) * MRM_LEADS * MRM_SAMPLES);
    if (!x) return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    mrm_status s = MRM_OK;
    for (int w = 0; !s && w < r->n_win; w++) {
        model_input(xm, r, r->win_start[w], x);
        s = mrm_model_forward(xm->m, x, 1, 0, NULL, err);
        for (int k = 0; !s && k < c; k++) {
            double p = 0;
            for (int h = 1; h <= heads; h++) p += 1.0 / (1.0 + exp(-(double)mrm_model_logits(xm->m, h)[k]));
            pw[(size_t)w * c + k] = (float)(p / heads);
        }
    }
    for (int k = 0; !s && k < c; k++) { /* in double, as predict sums them */
        double sum = 0;
        for (int w = 0; w < r->n_win; w++) sum += pw[(size_t)w * c + k];
        mean[k] = (float)(sum / (double)r->n_win);
    }
    free(x);
    return s;
}

void xp_record_free(xp_record *r) {
    mrm_record_free(&r->rec);
    free(r->mv100);
    free(r->x);
    free(r->full);
    free(r->win_start);
    memset(r, 0, sizeof *r);
}

mrm_status xp_maps_compute(const xp_model *xm, const xp_record *r, const int *asked, xp_maps *mp, mrm_error *err) {
    memset(mp, 0, sizeof *mp);
    const int c = xm->c, T = MRM_SAMPLES;
    mrm_model *m = xm->m;
    mp->c = c;
    mp->nb = mrm_model_num_branches(m);
    mp->prob = calloc((size_t)c, sizeof(float));
    mp->score = calloc((size_t)c, sizeof(float));
    mp->cam = calloc((size_t)c * T, sizeof(float));
    mp->cam_branch = calloc((size_t)c * mp->nb * T, sizeof(float));
    mp->ixg = calloc((size_t)c * MRM_LEADS * T, sizeof(float));
    mp->asked = calloc((size_t)c, sizeof(int));
    if (!mp->prob || !mp->score || !mp->cam || !mp->cam_branch || !mp->ixg || !mp->asked)
        return mrm_fail(err, MRM_ERR_NOMEM, "explain: out of memory");
    mrm_status s = mrm_model_forward(m, r->x, 1, 0, NULL, err);
    if (s) return s;
    int heads = mrm_model_num_heads(m);
    for (int k = 0; k < c; k++) {
        double p = 0;
        for (int h = 1; h <= heads; h++) p += 1.0 / (1.0 + exp(-(double)mrm_model_logits(m, h)[k]));
        mp->prob[k] = (float)(p / heads);
    }
    for (int k = 0; !s && k < c; k++) {
        if (asked && !asked[k]) continue;
        mp->asked[k] = 1;
        s = mrm_explain_class(m, r->x, 1, k, &mp->score[k], mp->cam + (size_t)k * T, mp->cam_branch + (size_t)k * mp->nb * T,
                              mp->ixg + (size_t)k * MRM_LEADS * T, err);
    }
    return s;
}

void xp_maps_free(xp_maps *mp) {
    free(mp->prob), free(mp->score), free(mp->cam), free(mp->cam_branch), free(mp->ixg), free(mp->asked);
    memset(mp, 0, sizeof *mp);
}

const char *xp_class_long_name(const char *code) {
    static const char *const names[][2] = {
        {"NORM", "normal ECG"},
        {"MI", "myocardial infarction"},
        {"STTC", "ST/T change"},
        {"CD", "conduction disturbance"},
        {"HYP", "hypertrophy"},
        {"AFIB", "atrial fibrillation"},
        {"AFLT", "atrial flutter"},
        {"1AVB", "first-degree AV block"},
        {"CLBBB", "complete left bundle branch block"},
        {"CRBBB", "complete right bundle branch block"},
        {"IRBBB", "incomplete right bundle branch block"},
        {"LAFB", "left anterior fascicular block"},
        {"PAC", "premature atrial contraction"},
        {"VPC", "ventricular premature contraction"},
        {"PVC", "premature ventricular contraction"},
        {"STD_", "ST depression"},
        {"STE_", "ST elevation"},
        {"SR", "sinus rhythm"},
        {"STACH", "sinus tachycardia"},
        {"SBRAD", "sinus bradycardia"},
        {"SARRH", "sinus arrhythmia"},
        {"LVH", "left ventricular hypertrophy"},
        {"IMI", "inferior myocardial infarction"},
        {"ASMI", "anteroseptal myocardial infarction"},
        {"NDT", "non-diagnostic T abnormalities"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(code, names[i][0])) return names[i][1];
    return NULL;
}

double xp_unit_to_mv(const char *units) {
    if (!units[0] || !strcasecmp(units, "mV") || !strcasecmp(units, "millivolt")) return 1.0;
    if (!strcasecmp(units, "uV") || !strcmp(units, "\xc2\xb5V") || !strcmp(units, "\xce\xbcV") || !strcasecmp(units, "microvolt"))
        return 1e-3;
    if (!strcmp(units, "V") || !strcasecmp(units, "volt")) return 1e3;
    return 0;
}

void xp_base_name(const char *path, char *out, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (!*b) b = "record";
    size_t len = strlen(b);
    const char *dot = strrchr(b, '.');
    if (dot && dot != b) len = (size_t)(dot - b);
    if (len >= n) len = n - 1;
    memcpy(out, b, len);
    out[len] = '\0';
}
