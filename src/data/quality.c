/* Signal checks before a diagnosis: is the recording an ECG that a model may label? */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "mrmnet.h"

#define FLAT_MV 0.02       /* a segment whose range is below 20 uV carries no ECG */
#define SEGMENT_S 2.0      /* segments long enough to hold a beat at 30 bpm */
#define MAX_RANGE_MV 15.0  /* above: not an ECG in mV (uV read as mV, a wrong gain) */
#define MIN_RANGE_MV 0.05  /* below (and not flat): V read as mV, a wrong gain */
#define PCT_SAMPLES 20000  /* samples per lead for the percentiles */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double unit_factor(const char *u) {
    if (!u[0] || !strcasecmp(u, "mV") || !strcasecmp(u, "millivolt")) return 1.0;
    if (!strcasecmp(u, "uV") || !strcmp(u, "\xc2\xb5V") || !strcmp(u, "\xce\xbcV") || !strcasecmp(u, "microvolt")) return 1e-3;
    if (!strcmp(u, "V") || !strcasecmp(u, "volt")) return 1e3;
    return 0.0;
}

static void add_list(char *out, size_t outsz, const char *what, int mask) {
    if (!mask) return;
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, n < outsz ? outsz - n : 0, "%s%s ", n ? "; " : "", what);
    int first = 1;
    for (int i = 0; i < MRM_LEADS && n < outsz; i++)
        if (mask >> i & 1) {
            n += (size_t)snprintf(out + n, outsz - n, "%s%s", first ? "" : ", ", mrm_lead_names[i]);
            first = 0;
        }
}

mrm_status mrm_quality_check(const mrm_record *rec, int mode, mrm_signal_quality *q, mrm_error *err) {
    memset(q, 0, sizeof *q);
    mrm_lead_map map;
    mrm_status st = mrm_lead_map_of(rec, mode, &map, err);
    if (st) return st;
    const char *name = rec->name[0] ? rec->name : "record";
    if (!rec->data || rec->n_samples <= 0 || !(rec->fs > 0)) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no samples", name);
    long long n = rec->n_samples;
    long long seg = (long long)ceil(SEGMENT_S * rec->fs);
    if (seg < 2) seg = 2;
    double ranges[MRM_LEADS];
    int n_ranges = 0;
    double *pick = malloc(sizeof(double) * PCT_SAMPLES);
    if (!pick) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
    for (int i = 0; i < MRM_LEADS; i++) {
        if (map.src[i] < 0) continue;
        const double *x = rec->data + (size_t)map.src[i] * (size_t)n;
        double f = unit_factor(rec->signals[map.src[i]].units);
        if (f == 0) f = 1.0; /* units not a voltage: mrm_preprocess_record refuses it */
        long long valid = 0, segs = 0, flat_segs = 0;
        double lo = INFINITY, hi = -INFINITY;
        for (long long s0 = 0; s0 < n; s0 += seg) {
            long long s1 = s0 + seg < n ? s0 + seg : n;
            double a = INFINITY, b = -INFINITY;
            long long v = 0;
            for (long long t = s0; t < s1; t++) {
                double y = x[t];
                if (isnan(y)) continue;
                v++;
                if (y < a) a = y;
                if (y > b) b = y;
            }
            valid += v;
            if (v * 2 < s1 - s0) continue; /* a mostly invalid segment is counted as invalid, not flat */
            segs++;
            flat_segs += (b - a) * f < FLAT_MV;
            if (a < lo) lo = a;
            if (b > hi) hi = b;
        }
        if (valid * 2 < n) q->invalid |= 1 << i;
        if (segs && flat_segs * 2 > segs) q->flat |= 1 << i;
        if (!valid || (q->flat >> i & 1)) continue;
        /* clipping: the lead held at its extreme value in runs of 3 samples or more */
        long long held = 0;
        for (long long t = 0; t < n;) {
            long long u = t;
            if (x[t] == hi || x[t] == lo) {
                while (u < n && x[u] == x[t]) u++;
                if (u - t >= 3) held += u - t;
                t = u;
            } else {
                t++;
            }
        }
        if (held >= 10 && held * 200 >= valid) q->clipped |= 1 << i;
        /* robust range: 0.5th to 99.5th percentile over an even pick of the valid samples */
        long long step = valid > PCT_SAMPLES ? (valid + PCT_SAMPLES - 1) / PCT_SAMPLES : 1;
        int m = 0;
        long long k = 0;
        for (long long t = 0; t < n && m < PCT_SAMPLES; t++) {
            if (isnan(x[t])) continue;
            if (k++ % step == 0) pick[m++] = x[t];
        }
        qsort(pick, (size_t)m, sizeof *pick, cmp_double);
        double r = (pick[(int)((m - 1) * 0.995)] - pick[(int)((m - 1) * 0.005)]) * f;
        ranges[n_ranges++] = r;
    }
    free(pick);
    if (n_ranges) {
        qsort(ranges, (size_t)n_ranges, sizeof *ranges, cmp_double);
        q->range_mv = n_ranges % 2 ? ranges[n_ranges / 2] : (ranges[n_ranges / 2 - 1] + ranges[n_ranges / 2]) / 2;
        if (q->range_mv > MAX_RANGE_MV) q->amplitude = 1;
        else if (q->range_mv < MIN_RANGE_MV) q->amplitude = -1;
    }
    add_list(q->summary, sizeof q->summary, "flat:", q->flat);
    add_list(q->summary, sizeof q->summary, "mostly invalid samples:", q->invalid);
    add_list(q->summary, sizeof q->summary, "clipped:", q->clipped);
    if (q->amplitude) {
        size_t len = strlen(q->summary);
        snprintf(q->summary + len, sizeof q->summary - len, "%samplitude implausible for an ECG: the leads span %.3g mV (median of the 0.5-99.5%% ranges; %s); the units or gain are likely wrong",
                 len ? "; " : "", q->range_mv, q->amplitude > 0 ? "more than 15" : "less than 0.05");
    }
    return MRM_OK;
}
