/* One record -> the model's input: leads in PTB-XL order, mV, NaN -> 0, 100 Hz, 1000 samples. */
#include <ctype.h>
#include <math.h>
#include <samplerate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "mrmnet.h"

const char *const mrm_lead_names[MRM_LEADS] = {"I", "II", "III", "aVR", "aVL", "aVF",
                                               "V1", "V2", "V3", "V4", "V5", "V6"};

int mrm_lead_index(const char *name) {
    char s[64];
    size_t n = 0;
    for (const char *p = name; *p; p++) {
        if (*p == ' ' || *p == '\t') continue;
        if (n + 1 >= sizeof s) return -1;
        s[n++] = *p;
    }
    s[n] = '\0';
    /* the naming habits of the formats: "Lead I", "MDC_ECG_LEAD_AVR", "ECG V1", "EKG II" */
    static const char *const prefixes[] = {"MDC_ECG_LEAD_", "LEAD_", "LEAD", "ECG_", "ECG", "EKG_", "EKG"};
    const char *t = s;
    for (size_t k = 0; k < sizeof prefixes / sizeof *prefixes; k++) {
        size_t m = strlen(prefixes[k]);
        if (n > m && !strncasecmp(t, prefixes[k], m)) {
            t += m;
            break;
        }
    }
    for (int i = 0; i < MRM_LEADS; i++)
        if (!strcasecmp(t, mrm_lead_names[i])) return i;
    return -1;
}

enum { L_I, L_II, L_III, L_AVR, L_AVL, L_AVF };

mrm_status mrm_lead_map_of(const mrm_record *rec, int mode, mrm_lead_map *map, mrm_error *err) {
    memset(map, 0, sizeof *map);
    const char *name = rec->name[0] ? rec->name : "record";
    for (int i = 0; i < MRM_LEADS; i++) map->src[i] = -1;
    int unnamed = 0;
    for (int s = 0; s < rec->n_signals; s++) unnamed += rec->signals[s].description[0] == '\0';
    if (rec->n_signals == MRM_LEADS && unnamed == MRM_LEADS && (mode & MRM_FIT_UNNAMED_STANDARD)) {
        for (int i = 0; i < MRM_LEADS; i++) map->src[i] = i;
        return MRM_OK;
    }
    if (rec->n_signals < 1) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no signals", name);
    for (int s = 0; s < rec->n_signals; s++) {
        int k = mrm_lead_index(rec->signals[s].description);
        if (k < 0) {
            map->ignored++;
            continue;
        }
        if (map->src[k] >= 0)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: signal %d: lead %s appears twice (signals %d and %d)", name, s + 1, mrm_lead_names[k],
                            map->src[k] + 1, s + 1);
        map->src[k] = s;
        if (k != s) map->reordered = 1;
    }
    /* limb leads: any two of I, II, III give the others (Einthoven: III = II - I; Goldberger:
     * aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2) */
    int have_i = map->src[L_I] >= 0, have_ii = map->src[L_II] >= 0, have_iii = map->src[L_III] >= 0;
    int limb_ok = (have_i && have_ii) || (have_i && have_iii) || (have_ii && have_iii);
    int chest_ok = 1;
    for (int i = 6; i < MRM_LEADS; i++) chest_ok &= map->src[i] >= 0;
    if (!limb_ok || !chest_ok) {
        char there[512] = "", missing[256] = "", other[256] = "";
        size_t a = 0, b = 0, c = 0;
        for (int s = 0; s < rec->n_signals; s++) {
            const char *d = rec->signals[s].description[0] ? rec->signals[s].description : "(unnamed)";
            if (a < sizeof there) a += (size_t)snprintf(there + a, sizeof there - a, "%s%s", a ? ", " : "", d);
            if (mrm_lead_index(rec->signals[s].description) < 0 && c < sizeof other)
                c += (size_t)snprintf(other + c, sizeof other - c, "%s%s", c ? ", " : "", d);
        }
        for (int i = 0; i < MRM_LEADS; i++) {
            int need = i >= 6 ? map->src[i] < 0 : (!limb_ok && map->src[i] < 0 && i <= L_II);
            if (need && b < sizeof missing) b += (size_t)snprintf(missing + b, sizeof missing - b, "%s%s", b ? ", " : "", mrm_lead_names[i]);
        }
        return mrm_fail(err, MRM_ERR_FORMAT,
                        "%s: the 12 standard leads cannot be formed: the record has %d signals (%s)%s%s; missing: %s "
                        "(needed: V1-V6 and two of I, II, III; the other limb leads are derived)",
                        name, rec->n_signals, there, c ? "; not standard: " : "", other, missing);
    }
    for (int i = 0; i < 6; i++)
        if (map->src[i] < 0) map->derived |= 1 << i;
    return MRM_OK;
}

mrm_status mrm_resample(const float *in, int channels, long long n_in, float *out, long long n_out, mrm_error *err) {
    if (channels <= 0 || n_in <= 0 || n_out <= 0 || n_in > 100000000LL || n_out > 100000000LL)
        return mrm_fail(err, MRM_ERR_INVALID, "resample: bad sizes (%d channels, %lld -> %lld frames)", channels, n_in, n_out);
    if (n_in == n_out) {
        memcpy(out, in, (size_t)n_in * (size_t)channels * sizeof(float));
        return MRM_OK;
    }
    /* The filter sees zeros beyond both ends: a signal that does not start and end at 0 would
     * ring there (Gibbs). Take out the straight line through each channel's first and last
     * frames, resample, and add the line back at the output times (frame j <-> input j / ratio). */
    size_t nin = (size_t)n_in * (size_t)channels;
    float *flat = malloc(nin * sizeof(float));
    double *x0 = malloc((size_t)channels * sizeof(double)), *slope = malloc((size_t)channels * sizeof(double));
    /* libsamplerate may produce a frame more or less than n_in * ratio: give it room */
    long long cap = n_out + 16;
    float *tmp = malloc((size_t)cap * (size_t)channels * sizeof(float));
    if (!flat || !x0 || !slope || !tmp) {
        free(flat);
        free(x0);
        free(slope);
        free(tmp);
        return mrm_fail(err, MRM_ERR_NOMEM, "resample: cannot allocate %lld frames", cap);
    }
    for (int c = 0; c < channels; c++) {
        x0[c] = in[c];
        slope[c] = n_in > 1 ? ((double)in[(size_t)(n_in - 1) * (size_t)channels + (size_t)c] - x0[c]) / (double)(n_in - 1) : 0.0;
    }
    for (long long t = 0; t < n_in; t++)
        for (int c = 0; c < channels; c++) {
            size_t i = (size_t)t * (size_t)channels + (size_t)c;
            flat[i] = (float)((double)in[i] - (x0[c] + slope[c] * (double)t));
        }
    SRC_DATA d;
    memset(&d, 0, sizeof d);
    d.data_in = flat;
    d.input_frames = (long)n_in;
    d.data_out = tmp;
    d.output_frames = (long)cap;
    d.src_ratio = (double)n_out / (double)n_in;
    d.end_of_input = 1;
    int e = src_simple(&d, SRC_SINC_MEDIUM_QUALITY, channels);
    free(flat);
    if (e) {
        free(tmp);
        free(x0);
        free(slope);
        return mrm_fail(err, MRM_ERR_INVALID, "resample: %s", src_strerror(e));
    }
    long long got = d.output_frames_gen;
    if (got <= 0) {
        free(tmp);
        free(x0);
        free(slope);
        return mrm_fail(err, MRM_ERR_INVALID, "resample: no output (%lld -> %lld frames)", n_in, n_out);
    }
    double step = (double)n_in / (double)n_out; /* input frames per output frame */
    for (long long t = 0; t < n_out; t++) {
        /* at most a frame or two past what libsamplerate gave: repeat its last one */
        const float *src = tmp + (size_t)(t < got ? t : got - 1) * (size_t)channels;
        for (int c = 0; c < channels; c++)
            out[(size_t)t * (size_t)channels + (size_t)c] = (float)((double)src[c] + x0[c] + slope[c] * (double)t * step);
    }
    free(tmp);
    free(x0);
    free(slope);
    return MRM_OK;
}

/* The factor taking `units` to mV, 0 if not a voltage unit we know. "" is WFDB's default, mV. */
static double unit_to_mv(const char *units) {
    if (!units[0] || !strcasecmp(units, "mV") || !strcasecmp(units, "millivolt")) return 1.0;
    if (!strcasecmp(units, "uV") || !strcmp(units, "\xc2\xb5V") || !strcmp(units, "\xce\xbcV") ||
        !strcasecmp(units, "microvolt"))
        return 1e-3;
    if (!strcmp(units, "V") || !strcasecmp(units, "volt")) return 1e3;
    return 0.0;
}

/* The record's 12 leads in mV (NaN -> 0, limb leads derived where absent), frames [0, n_use),
 * interleaved: x[t * 12 + lead]. */
static mrm_status leads_mv(const mrm_record *rec, int mode, long long n_use, float **out, mrm_preprocess_info *info, mrm_error *err) {
    const char *name = rec->name[0] ? rec->name : "record";
    mrm_lead_map map;
    mrm_status st = mrm_lead_map_of(rec, mode, &map, err);
    if (st) return st;
    info->reordered = map.reordered;
    info->derived = map.derived;
    info->ignored = map.ignored;
    double scale[MRM_LEADS];
    for (int i = 0; i < MRM_LEADS; i++) {
        scale[i] = 1.0;
        if (map.src[i] < 0) continue;
        const char *u = rec->signals[map.src[i]].units;
        scale[i] = unit_to_mv(u);
        if (scale[i] == 0.0)
            return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: signal %d: units '%s' are not a voltage (mV, uV, V)", name, map.src[i] + 1, u);
        if (scale[i] != 1.0) info->unit_scale = scale[i];
    }
    long long n = rec->n_samples;
    float *x = malloc((size_t)(n_use ? n_use : 1) * MRM_LEADS * sizeof(float));
    if (!x) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %lld frames", name, n_use);
    for (int i = 0; i < MRM_LEADS; i++) {
        if (map.src[i] < 0) continue;
        const double *src = rec->data + (size_t)map.src[i] * (size_t)n;
        for (long long t = 0; t < n_use; t++) {
            double v = src[t];
            if (isnan(v)) {
                info->nan_samples++;
                v = 0.0;
            }
            x[t * MRM_LEADS + i] = (float)(v * scale[i]);
        }
        /* the whole record's invalid samples are reported, the part not used too */
        for (long long t = n_use; t < n; t++) info->nan_samples += isnan(src[t]) != 0;
    }
    if (map.derived) {
        for (long long t = 0; t < n_use; t++) {
            float *f = x + t * MRM_LEADS;
            if (map.src[L_I] < 0) f[L_I] = f[L_II] - f[L_III];
            if (map.src[L_II] < 0) f[L_II] = f[L_I] + f[L_III];
            double I = f[L_I], II = f[L_II];
            if (map.src[L_III] < 0) f[L_III] = (float)(II - I);
            if (map.src[L_AVR] < 0) f[L_AVR] = (float)(-(I + II) / 2);
            if (map.src[L_AVL] < 0) f[L_AVL] = (float)(I - II / 2);
            if (map.src[L_AVF] < 0) f[L_AVF] = (float)(II - I / 2);
        }
    }
    *out = x;
    return MRM_OK;
}

static mrm_status check_record(const mrm_record *rec) {
    if (!rec->data || rec->n_samples <= 0) return MRM_ERR_FORMAT;
    if (!(rec->fs > 0) || rec->fs > 1e6) return MRM_ERR_FORMAT;
    return MRM_OK;
}

mrm_status mrm_preprocess_record(const mrm_record *rec, float *out, int mode, mrm_preprocess_info *info,
                                 mrm_error *err) {
    mrm_preprocess_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->unit_scale = 1.0;
    const char *name = rec->name[0] ? rec->name : "record";
    if (check_record(rec)) {
        if (!rec->data || rec->n_samples <= 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no samples", name);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: sampling frequency %g Hz", name, rec->fs);
    }
    long long n = rec->n_samples;
    int same_rate = fabs(rec->fs - MRM_FS) < 1e-9;
    int fit = mode & 0xff;
    /* frames of the source to use: the first 10 s (plus 1 s of context for the filter when
     * resampling) */
    long long n_10s = (long long)ceil(10.0 * rec->fs - 1e-9);
    long long n_use = n;
    if (n > n_10s) {
        info->cropped = 1;
        long long margin = same_rate ? 0 : (long long)ceil(rec->fs);
        n_use = n_10s + margin < n ? n_10s + margin : n;
    }
    float *x = NULL;
    mrm_status st = leads_mv(rec, mode, n_use, &x, info, err);
    if (st) return st;

    long long n_out; /* frames after resampling */
    if (n_use < n_10s && fit == MRM_FIT_STRETCH) {
        n_out = MRM_SAMPLES;
        info->stretched = 1;
    } else {
        n_out = same_rate ? n_use : (long long)llround((double)n_use * MRM_FS / rec->fs);
        if (n_out < 1) n_out = 1;
    }
    float *y = x;
    if (n_out != n_use || !same_rate) {
        info->resampled = !same_rate;
        y = malloc((size_t)n_out * MRM_LEADS * sizeof(float));
        mrm_status rc = y ? mrm_resample(x, MRM_LEADS, n_use, y, n_out, err)
                          : mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %lld frames", name, n_out);
        if (rc != MRM_OK) {
            free(x);
            free(y);
            if (err) mrm_error_prefix(err, "%s", name);
            return rc;
        }
    }
    long long keep = n_out < MRM_SAMPLES ? n_out : MRM_SAMPLES;
    if (keep < MRM_SAMPLES) info->padded = 1;
    for (int i = 0; i < MRM_LEADS; i++) {
        float *o = out + (size_t)i * MRM_SAMPLES;
        for (long long t = 0; t < keep; t++) o[t] = y[t * MRM_LEADS + i];
        for (long long t = keep; t < MRM_SAMPLES; t++) o[t] = 0.0f;
    }
    if (y != x) free(y);
    free(x);
    return MRM_OK;
}

mrm_status mrm_preprocess_full(const mrm_record *rec, int mode, float **out, long long *n_out, mrm_preprocess_info *info,
                               mrm_error *err) {
    mrm_preprocess_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->unit_scale = 1.0;
    *out = NULL;
    *n_out = 0;
    const char *name = rec->name[0] ? rec->name : "record";
    if (check_record(rec)) {
        if (!rec->data || rec->n_samples <= 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no samples", name);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: sampling frequency %g Hz", name, rec->fs);
    }
    long long n = rec->n_samples;
    int same_rate = fabs(rec->fs - MRM_FS) < 1e-9;
    long long m = same_rate ? n : (long long)llround((double)n * MRM_FS / rec->fs);
    if (m < 1) m = 1;
    float *x = NULL;
    mrm_status st = leads_mv(rec, mode, n, &x, info, err);
    if (st) return st;
    float *y = x;
    if (!same_rate) {
        info->resampled = 1;
        y = malloc((size_t)m * MRM_LEADS * sizeof(float));
        st = y ? mrm_resample(x, MRM_LEADS, n, y, m, err) : mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %lld frames", name, m);
        free(x);
        if (st) {
            free(y);
            if (err) mrm_error_prefix(err, "%s", name);
            return st;
        }
    }
    /* lead-major */
    float *o = malloc((size_t)m * MRM_LEADS * sizeof(float));
    if (!o) {
        free(y);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %lld frames", name, m);
    }
    for (int i = 0; i < MRM_LEADS; i++)
        for (long long t = 0; t < m; t++) o[(size_t)i * (size_t)m + (size_t)t] = y[t * MRM_LEADS + i];
    free(y);
    *out = o;
    *n_out = m;
    return MRM_OK;
}
