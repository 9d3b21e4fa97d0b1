/* mrmnet report: one self-contained HTML page per recording (inline SVG, no script, no outside
 * resource; one A4 landscape page in print) and an index page for the batch. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/explain_common.h"
#include "common/error.h"
#include "common/fileutil.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mrmnet report --model W.safetensors [options] RECORD... --out DIR/\n\n"
               "Writes DIR/NAME.html for each recording (any file predict reads) and DIR/index.html: the 12\n"
               "leads as recorded (3 x 4 layout and a 10 s lead II rhythm strip at 25 mm/s and 10 mm/mV on\n"
               "1 mm / 5 mm ECG paper, each lead drawn around its median), each class's probability beside\n"
               "its threshold, the labels called and, shaded on the leads, the segments that drove each of\n"
               "them (--shade), the record's metadata, the model's provenance, and that this is not a diagnosis. The pages hold inline\n"
               "SVG and CSS only (no script, no font or file from outside) and print on one A4 landscape\n"
               "page. A recording longer than 10 s is analysed as predict analyses it: its probabilities and\n"
               "labels are the mean over predict's 10 s windows; the page draws and explains one window (the\n"
               "one where the most probable called label is most probable, or --start's), marked on an\n"
               "overview of the whole recording with predict's windows.\n\n"
               "options:\n"
               "  --shade ig|gradcam  what the shaded segments of a called class come from (default ig):\n"
               "                    ig: integrated gradients of the class's score (32 steps from each lead's\n"
               "                    median, as mrmnet explain --ig 32 computes them) summed over the 12 leads and\n"
               "                    averaged over 0.1 s (explain's integrated_smooth.npy); gradcam: the combined\n"
               "                    Grad-CAM (explain's gradcam.npy); either shaded where it is at half its\n"
               "                    maximum or more. docs/explain.md measures both (the deletion test).\n"
               "  --start S         draw and explain the 10 s window starting S seconds in\n"
               "  --force           report recordings that fail the signal checks too (the problem is shown)\n"
               "  --overwrite       replace pages of the same names in DIR\n"
               "  --threads T       OpenMP threads\n");
}

/* ---- a growing text buffer ------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 1 << 16) + (size_t)n;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Text with &, <, >, " escaped. */
static void sb_text(sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

/* ---- geometry of the tracing (millimetres; the SVG's user unit is 1 mm) ----------------------- */

#define MM_PER_S 25.0
#define MM_PER_MV 10.0
#define GRID_X0 10.0  /* left of the paper: the calibration pulse is drawn before it */
#define GRID_W 250.0  /* 10 s */
#define ROW_H 25.0
#define ROWS 4        /* 3 rows of the 3 x 4 layout and the rhythm strip */
#define OVERVIEW_H 14.0

static const int layout[3][4] = {{0, 3, 6, 9}, {1, 4, 7, 10}, {2, 5, 8, 11}}; /* mrm_lead_names indices */
static const char *const label_colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                                           "#bcbd22"};

/* The raw leads of the window, mV, mrm_lead_names order; derived limb leads computed from the two
 * of I, II, III the file has (Einthoven, Goldberger). NaN where the file marks a sample invalid. */
typedef struct raw_leads {
    double fs;
    long long n;        /* samples in the window */
    long long start;    /* first sample of the window in the recording */
    double *v;          /* (12, n) */
    double median[MRM_LEADS];
    int derived;        /* bit i: derived */
    char units[MRM_LEADS][32];
} raw_leads;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static mrm_status raw_window(const xp_record *r, raw_leads *w, mrm_error *err) {
    memset(w, 0, sizeof *w);
    const mrm_record *rec = &r->rec;
    w->fs = rec->fs;
    w->start = llround(r->start_s * rec->fs);
    w->n = llround(10.0 * rec->fs);
    if (w->start + w->n > rec->n_samples) w->n = rec->n_samples - w->start;
    if (w->n < 2) return mrm_fail(err, MRM_ERR_INVALID, "%s: the window holds no samples", rec->name);
    w->v = malloc(sizeof(double) * MRM_LEADS * (size_t)w->n);
    double *tmp = malloc(sizeof(double) * (size_t)w->n);
    if (!w->v || !tmp) {
        free(tmp);
        return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    }
    const long long n = w->n;
    for (int i = 0; i < MRM_LEADS; i++) {
        int s = r->map.src[i];
        if (s < 0) continue;
        double k = xp_unit_to_mv(rec->signals[s].units);
        if (k == 0) k = 1; /* preprocessing refused unknown units already */
        snprintf(w->units[i], sizeof w->units[i], "%s", rec->signals[s].units[0] ? rec->signals[s].units : "mV");
        for (long long t = 0; t < n; t++) w->v[(size_t)i * n + t] = rec->data[(size_t)s * rec->n_samples + w->start + t] * k;
        if (rec->signals[s].derived) w->derived |= 1 << i;
    }
    /* limb leads not in the file: I and II first, then the others from them */
    double *L[MRM_LEADS];
    for (int i = 0; i < MRM_LEADS; i++) L[i] = w->v + (size_t)i * n;
    int have[MRM_LEADS];
    for (int i = 0; i < MRM_LEADS; i++) have[i] = r->map.src[i] >= 0;
    for (long long t = 0; t < n; t++) {
        if (!have[0] && have[1] && have[2]) L[0][t] = L[1][t] - L[2][t];
        if (!have[1] && have[0] && have[2]) L[1][t] = L[0][t] + L[2][t];
        if (!have[2]) L[2][t] = L[1][t] - L[0][t];
        if (!have[3]) L[3][t] = -(L[0][t] + L[1][t]) / 2;
        if (!have[4]) L[4][t] = L[0][t] - L[1][t] / 2;
        if (!have[5]) L[5][t] = L[1][t] - L[0][t] / 2;
    }
    for (int i = 0; i < 6; i++)
        if (!have[i]) {
            w->derived |= 1 << i;
            memcpy(w->units[i], w->units[have[0] ? 0 : 1], sizeof w->units[i]);
        }
    for (int i = 0; i < MRM_LEADS; i++) {
        long long m = 0;
        for (long long t = 0; t < n; t++)
            if (!isnan(L[i][t])) tmp[m++] = L[i][t];
        if (m) {
            qsort(tmp, (size_t)m, sizeof *tmp, cmp_double);
            w->median[i] = m % 2 ? tmp[m / 2] : 0.5 * (tmp[m / 2 - 1] + tmp[m / 2]);
        }
    }
    free(tmp);
    return MRM_OK;
}

/* One trace: samples [t0, t1) of lead i drawn from x (mm) at 25 mm/s around baseline y0 (mm). A
 * NaN sample breaks the line. */
static void trace(sbuf *b, const raw_leads *w, int i, long long t0, long long t1, double x, double y0, const char *cls) {
    const double *v = w->v + (size_t)i * w->n;
    int open = 0;
    for (long long t = t0; t < t1 && t < w->n; t++) {
        if (isnan(v[t])) {
            if (open) sb_printf(b, "\"/>\n");
            open = 0;
            continue;
        }
        double px = x + (double)(t - t0) / w->fs * MM_PER_S, py = y0 - (v[t] - w->median[i]) * MM_PER_MV;
        if (!open) sb_printf(b, "<polyline class=\"%s\" data-lead=\"%s\" points=\"", cls, mrm_lead_names[i]);
        sb_printf(b, "%s%.3f,%.3f", open ? " " : "", px, py);
        open = 1;
    }
    if (open) sb_printf(b, "\"/>\n");
}

/* Runs of the window's 1000 steps where the map >= half its maximum (none when its maximum is not
 * above 0): [a, b) pairs into seg; count. */
static int driving_segments(const float *cam, int seg[][2], int max_seg) {
    float mx = 0;
    for (int t = 0; t < MRM_SAMPLES; t++)
        if (cam[t] > mx) mx = cam[t];
    if (!(mx > 0)) return 0;
    int n = 0;
    for (int t = 0; t < MRM_SAMPLES && n < max_seg;) {
        if (cam[t] >= 0.5f * mx) {
            int a = t;
            while (t < MRM_SAMPLES && cam[t] >= 0.5f * mx) t++;
            seg[n][0] = a, seg[n][1] = t, n++;
        } else {
            t++;
        }
    }
    return n;
}

static void grid(sbuf *b, double x0, double y0, double w, double h) {
    sb_printf(b, "<g class=\"grid\">\n<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#fff7f7\"/>\n", x0, y0, w, h);
    for (int minor = 1; minor >= 0; minor--) {
        sb_printf(b, "<path class=\"%s\" stroke=\"%s\" stroke-width=\"%s\" fill=\"none\" d=\"", minor ? "minor" : "major",
                  minor ? "#f5c2c2" : "#e08a8a", minor ? "0.1" : "0.25");
        for (int i = 0; i <= (int)lround(w); i++)
            if ((i % 5 == 0) != minor) sb_printf(b, "M%g %gV%g", x0 + i, y0, y0 + h);
        for (int i = 0; i <= (int)lround(h); i++)
            if ((i % 5 == 0) != minor) sb_printf(b, "M%g %gH%g", x0, y0 + i, x0 + w);
        sb_printf(b, "\"/>\n");
    }
    sb_printf(b, "</g>\n");
}

/* The calibration pulse (1 mV, 0.2 s) ending at the grid's left edge, baseline y. */
static void cal_pulse(sbuf *b, double y) {
    sb_printf(b, "<path class=\"cal\" d=\"M%g %gH%gV%gH%gV%gH%g\" stroke=\"#000\" stroke-width=\"0.3\" fill=\"none\"/>\n", 1.0, y,
              3.0, y - MM_PER_MV, 3.0 + 0.2 * MM_PER_S, y, GRID_X0);
}

typedef struct page_in {
    const xp_model *xm;
    const xp_record *r;
    const xp_maps *mp;
    const raw_leads *w;
    const char *record_path;
    const char *name;
    double test_auc;     /* NaN if unknown */
    const char *test_auc_from;
    const float *pw;     /* (r->n_win, classes) each of predict's windows' probabilities */
    int chosen;          /* the window shown, chosen as the one where the most probable called label peaks; -1: as asked (--start) or the only one */
    const float *shade;  /* (classes, 1000) the map shaded (rows of the called classes) */
    int shade_ig;        /* 1: smoothed integrated gradients, 0: Grad-CAM */
} page_in;

static void ecg_svg(sbuf *b, const page_in *in) {
    const raw_leads *w = in->w;
    const xp_model *xm = in->xm;
    const int long_rec = in->r->seconds > 10.0 + 1e-9;
    const double H = ROWS * ROW_H + (long_rec ? OVERVIEW_H : 0) + 1;
    const double W = GRID_X0 + GRID_W + 2;
    sb_printf(b,
              "<svg id=\"ecg\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%gmm\" height=\"%gmm\" viewBox=\"0 0 %g %g\" "
              "data-mm-per-s=\"%g\" data-mm-per-mv=\"%g\" data-grid-x0=\"%g\" data-row-h=\"%g\" data-fs=\"%g\" "
              "data-window-start=\"%lld\">\n",
              W, H, W, H, MM_PER_S, MM_PER_MV, GRID_X0, ROW_H, w->fs, w->start);
    grid(b, GRID_X0, 0, GRID_W, ROWS * ROW_H);
    /* shading of the called labels' driving segments, under the traces */
    int q = 0;
    for (int k = 0; k < xm->c; k++) {
        if (!(in->mp->prob[k] > xm->thr[k])) continue;
        const char *col = label_colors[q++ % (int)(sizeof label_colors / sizeof label_colors[0])];
        int seg[MRM_SAMPLES / 2][2], ns = driving_segments(in->shade + (size_t)k * MRM_SAMPLES, seg, MRM_SAMPLES / 2);
        sb_printf(b, "<g class=\"drive\" data-label=\"");
        sb_text(b, xm->classes[k]);
        sb_printf(b, "\" data-source=\"%s\" fill=\"%s\" fill-opacity=\"0.16\">\n", in->shade_ig ? "ig" : "gradcam", col);
        for (int s = 0; s < ns; s++) {
            double a = seg[s][0] / MRM_FS, e = seg[s][1] / MRM_FS; /* seconds in the window */
            for (int c = 0; c < 4; c++) { /* the 3 x 4 panels: column c shows [2.5c, 2.5c + 2.5) */
                double lo = fmax(a, 2.5 * c), hi = fmin(e, 2.5 * (c + 1));
                if (hi > lo)
                    sb_printf(b, "<rect x=\"%.2f\" y=\"0\" width=\"%.2f\" height=\"%g\"/>\n", GRID_X0 + lo * MM_PER_S,
                              (hi - lo) * MM_PER_S, 3 * ROW_H);
            }
            sb_printf(b, "<rect x=\"%.2f\" y=\"%g\" width=\"%.2f\" height=\"%g\"/>\n", GRID_X0 + a * MM_PER_S, 3 * ROW_H,
                      (e - a) * MM_PER_S, ROW_H);
        }
        sb_printf(b, "</g>\n");
    }
    sb_printf(b, "<g class=\"traces\" stroke=\"#000\" stroke-width=\"0.3\" fill=\"none\" stroke-linejoin=\"round\">\n");
    const long long quarter = llround(2.5 * w->fs);
    for (int r = 0; r < 3; r++) {
        double y0 = (r + 0.5) * ROW_H;
        cal_pulse(b, y0);
        for (int c = 0; c < 4; c++) {
            int i = layout[r][c];
            trace(b, w, i, c * quarter, (c + 1) * quarter, GRID_X0 + c * 2.5 * MM_PER_S, y0, "lead");
        }
    }
    double y3 = 3.5 * ROW_H;
    cal_pulse(b, y3);
    trace(b, w, 1, 0, w->n, GRID_X0, y3, "rhythm");
    sb_printf(b, "</g>\n<g class=\"labels\" font-family=\"sans-serif\" font-size=\"3\" fill=\"#000\">\n");
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) {
            int i = layout[r][c];
            sb_printf(b, "<text x=\"%g\" y=\"%g\">%s%s</text>\n", GRID_X0 + c * 62.5 + 1, r * ROW_H + 4, mrm_lead_names[i],
                      w->derived >> i & 1 ? " (derived)" : "");
            if (c) sb_printf(b, "<path d=\"M%g %gv4\" stroke=\"#000\" stroke-width=\"0.3\"/>\n", GRID_X0 + c * 62.5, (r + 0.5) * ROW_H - 2);
        }
    sb_printf(b, "<text x=\"%g\" y=\"%g\">II (rhythm, 10 s)</text>\n</g>\n", GRID_X0 + 1, 3 * ROW_H + 4);
    if (long_rec) { /* the whole recording's lead II, compressed, with the analysed window marked */
        const mrm_record *rec = &in->r->rec;
        double y = ROWS * ROW_H + 2, scale = GRID_W / in->r->seconds;
        int s = in->r->map.src[1] >= 0 ? in->r->map.src[1] : in->r->map.src[0];
        double k = xp_unit_to_mv(rec->signals[s].units);
        if (k == 0) k = 1;
        long long step = rec->n_samples / 2000 + 1;
        sb_printf(b, "<g class=\"overview\"><rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#f4f4f4\"/>\n", GRID_X0, y, GRID_W,
                  OVERVIEW_H - 5);
        sb_printf(b, "<rect class=\"window\" x=\"%.2f\" y=\"%g\" width=\"%.2f\" height=\"%g\" fill=\"#ffd54f\" fill-opacity=\"0.5\" "
                     "stroke=\"#c68600\" stroke-width=\"0.3\"/>\n",
                  GRID_X0 + in->r->start_s * scale, y, 10.0 * scale, OVERVIEW_H - 5);
        for (int v = 0; v < in->r->n_win; v++) /* the windows predict analyses (and their mean gives the probabilities) */
            sb_printf(b, "<rect class=\"pwindow\" data-start-s=\"%.2f\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"1.2\" "
                         "fill=\"%s\"/>\n",
                      in->r->win_start[v] / MRM_FS, GRID_X0 + in->r->win_start[v] / MRM_FS * scale + 0.3, y + (v % 2) * 1.4,
                      10.0 * scale - 0.6, fabs(in->r->win_start[v] / MRM_FS - in->r->start_s) < 1e-9 ? "#c68600" : "#888");
        sb_printf(b, "<polyline stroke=\"#333\" stroke-width=\"0.2\" fill=\"none\" points=\"");
        for (long long t = 0; t < rec->n_samples; t += step) {
            double v = rec->data[(size_t)s * rec->n_samples + t] * k - w->median[in->r->map.src[1] >= 0 ? 1 : 0];
            if (isnan(v)) continue;
            v = fmax(-1.2, fmin(1.2, v));
            sb_printf(b, "%.2f,%.2f ", GRID_X0 + t / rec->fs * scale, y + (OVERVIEW_H - 5) / 2 - v * 3);
        }
        sb_printf(b, "\"/>\n<text x=\"%g\" y=\"%g\" font-family=\"sans-serif\" font-size=\"2.6\">whole recording (%s, %.1f s); "
                     "window shown above %.1f-%.1f s highlighted; bars: the %d windows of 10 s whose mean gives the "
                     "probabilities</text></g>\n",
                  GRID_X0, y + OVERVIEW_H - 2, in->r->map.src[1] >= 0 ? "II" : "I", in->r->seconds, in->r->start_s,
                  in->r->start_s + 10.0, in->r->n_win);
    }
    sb_printf(b, "</svg>\n");
}

static void page(sbuf *b, const page_in *in) {
    const xp_model *xm = in->xm;
    const xp_record *r = in->r;
    const mrm_record *rec = &r->rec;
    sb_printf(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ECG ");
    sb_text(b, in->name);
    sb_printf(b, " - mrmnet report</title>\n<style>\n"
                 "@page { size: A4 landscape; margin: 6mm; }\n"
                 "html, body { margin: 0; padding: 0; }\n"
                 "body { font-family: sans-serif; font-size: 8.5pt; color: #000; width: 285mm; }\n"
                 "h1 { font-size: 12pt; margin: 0 0 1mm 0; }\n"
                 ".meta, .prov { margin: 0.5mm 0; }\n"
                 ".cols { display: flex; gap: 4mm; margin-top: 1mm; }\n"
                 "table { border-collapse: collapse; }\n"
                 "td, th { padding: 0.3mm 1.5mm; text-align: left; border-bottom: 0.2mm solid #ccc; }\n"
                 ".called { font-weight: bold; }\n"
                 ".warn { border: 0.4mm solid #b00; padding: 1mm; margin: 1mm 0; font-weight: bold; }\n"
                 ".note { color: #333; }\n"
                 "svg { display: block; }\n"
                 "@media print { body { width: auto; } .pagebreak { page-break-after: avoid; } }\n"
                 "</style>\n</head>\n<body>\n<h1>12-lead ECG: ");
    sb_text(b, in->name);
    sb_printf(b, "</h1>\n<div class=\"meta\">File: ");
    sb_text(b, in->record_path);
    sb_printf(b, " (%s, %g Hz, %.2f s", rec->format[0] ? rec->format : "wfdb", rec->fs, r->seconds);
    if (rec->age >= 0) sb_printf(b, "; age %d", rec->age);
    if (rec->sex[0]) sb_printf(b, "; sex "), sb_text(b, rec->sex);
    if (rec->acquired[0]) sb_printf(b, "; acquired "), sb_text(b, rec->acquired);
    else if (rec->base_date[0]) sb_printf(b, "; date "), sb_text(b, rec->base_date), sb_printf(b, " "), sb_text(b, rec->base_time);
    if (rec->dx[0]) sb_printf(b, "; diagnosis codes in the file: "), sb_text(b, rec->dx);
    sb_printf(b, "). 25 mm/s, 10 mm/mV; amplitudes as recorded (units: ");
    sb_text(b, in->w->units[1][0] ? in->w->units[1] : "mV");
    sb_printf(b, "), each lead drawn around its median over the window.");
    if (r->seconds > 10.0 + 1e-9) {
        sb_printf(b, " <b>Shown and explained: the window %.1f-%.1f s of %.1f s</b> (marked below)", r->start_s, r->start_s + 10,
                  r->seconds);
        if (in->chosen >= 0) {
            int best = -1;
            for (int k = 0; k < xm->c; k++)
                if (in->mp->prob[k] > xm->thr[k] && (best < 0 || in->mp->prob[k] > in->mp->prob[best])) best = k;
            if (best >= 0) sb_printf(b, ", the one where "), sb_text(b, xm->classes[best]), sb_printf(b, " is most probable");
        }
        sb_printf(b, ". <span id=\"windows\">The probabilities are the mean over the %d windows of 10 s that mrmnet predict "
                     "analyses (", r->n_win);
        for (int v = 0; v < r->n_win; v++) sb_printf(b, "%s%.1f-%.1f s", v ? ", " : "", r->win_start[v] / MRM_FS, r->win_start[v] / MRM_FS + 10);
        sb_printf(b, ")</span>.");
    }
    sb_printf(b, "</div>\n");
    /* leads not in the file, leads ignored */
    if (in->w->derived || r->map.ignored) {
        sb_printf(b, "<div class=\"meta\">");
        if (in->w->derived) {
            sb_printf(b, "Not in the file, derived from the other limb leads: ");
            for (int i = 0, f = 1; i < MRM_LEADS; i++)
                if (in->w->derived >> i & 1) sb_printf(b, "%s%s", f ? "" : ", ", mrm_lead_names[i]), f = 0;
            sb_printf(b, ". ");
        }
        if (r->map.ignored) sb_printf(b, "%d signal%s of the file not among the 12 leads ignored.", r->map.ignored, r->map.ignored > 1 ? "s" : "");
        sb_printf(b, "</div>\n");
    }
    if (r->problems[0]) {
        sb_printf(b, "<div class=\"warn\">This recording failed the signal checks (reported with --force): ");
        sb_text(b, r->problems);
        sb_printf(b, "</div>\n");
    }
    ecg_svg(b, in);
    sb_printf(b, "<div class=\"cols\">\n<div>\n<table id=\"probabilities\">\n<tr><th>class</th><th></th><th>probability");
    if (r->n_win > 1) sb_printf(b, " (mean of %d windows)", r->n_win);
    sb_printf(b, "</th><th>threshold</th><th></th><th>called</th></tr>\n");
    int q = 0;
    for (int k = 0; k < xm->c; k++) {
        int called = in->mp->prob[k] > xm->thr[k];
        const char *ln = xp_class_long_name(xm->classes[k]);
        sb_printf(b, "<tr%s data-class=\"", called ? " class=\"called\"" : "");
        sb_text(b, xm->classes[k]);
        sb_printf(b, "\"><td>");
        sb_text(b, xm->classes[k]);
        sb_printf(b, "</td><td>");
        sb_text(b, ln ? ln : "");
        sb_printf(b, "</td><td>%.3f</td><td>%.3f</td><td><svg width=\"40mm\" height=\"3mm\" viewBox=\"0 0 40 3\">"
                     "<rect x=\"0\" y=\"0.5\" width=\"40\" height=\"2\" fill=\"#eee\"/>"
                     "<rect x=\"0\" y=\"0.5\" width=\"%.2f\" height=\"2\" fill=\"%s\"/>"
                     "<path d=\"M%.2f 0V3\" stroke=\"#000\" stroke-width=\"0.4\"/></svg></td><td>",
                  in->mp->prob[k], xm->thr[k], 40.0 * in->mp->prob[k],
                  called ? label_colors[q % (int)(sizeof label_colors / sizeof label_colors[0])] : "#999", 40.0 * xm->thr[k]);
        if (called)
            sb_printf(b, "<span style=\"color:%s\">&#9632;</span> called", label_colors[q++ % (int)(sizeof label_colors / sizeof label_colors[0])]);
        sb_printf(b, "</td></tr>\n");
    }
    sb_printf(b, "</table>\n<div class=\"note\">A class is called when its probability (the mean of the model's two heads) is "
                 "above its threshold (the black tick).</div>\n<div class=\"note\" id=\"shading\" data-source=\"%s\">"
                 "<b>Shaded on the leads</b>, in the colour of each called class: the time segments that drove it, by %s",
              in->shade_ig ? "ig" : "gradcam", in->shade_ig ? "integrated gradients" : "Grad-CAM");
    if (in->shade_ig)
        sb_printf(b, " (the attribution of the class's score to each sample, from each lead's median to the recording in %d "
                     "steps, summed over the 12 leads and averaged over %.2g s), at half its maximum or more.",
                  MRM_EXPLAIN_IG_STEPS, MRM_EXPLAIN_SMOOTH_STEPS / MRM_FS);
    else
        sb_printf(b, " (of the class on the last maps of each of the model's branches, summed), at half its maximum or more.");
    sb_printf(b, "</div>\n</div>\n<div>\n");
    sb_printf(b, "<div class=\"prov\"><b>Model:</b> ");
    sb_text(b, xm->path);
    const char *task = mrm_meta_get(&xm->meta, "task");
    sb_printf(b, "<br>Task: ");
    sb_text(b, task ? task : "not stated in the file");
    sb_printf(b, " (classes ");
    for (int k = 0; k < xm->c; k++) sb_printf(b, "%s", k ? ", " : ""), sb_text(b, xm->classes[k]);
    sb_printf(b, ")<br>Trained on: ");
    const char *on = mrm_meta_get(&xm->meta, "trained_on");
    if (on) sb_text(b, on);
    else sb_printf(b, "not recorded in the model file (see the model's documentation)");
    const char *va = mrm_meta_get(&xm->meta, "val_macro_auc");
    if (va) sb_printf(b, "<br>Validation macro-AUC: "), sb_text(b, va);
    if (isfinite(in->test_auc)) {
        sb_printf(b, "<br>Test macro-AUC: %.3f (", in->test_auc);
        sb_text(b, in->test_auc_from);
        sb_printf(b, ")");
    } else {
        sb_printf(b, "<br>Test macro-AUC: not available beside the model");
    }
    const char *rule = mrm_meta_get(&xm->meta, "threshold_rule");
    sb_printf(b, "<br>Thresholds: %s", xm->has_thresholds ? "stored in the model" : "0.5 (the model stores none)");
    if (rule) sb_printf(b, " (rule "), sb_text(b, rule), sb_printf(b, ")");
    sb_printf(b, "<br>Report by mrmnet %s</div>\n", MRMNET_VERSION);
    sb_printf(b, "<div class=\"warn\" id=\"disclaimer\">Not a diagnosis. These are the outputs of a research model; a "
                 "qualified clinician must read the ECG.</div>\n</div>\n</div>\n</body>\n</html>\n");
}

/* The maps shaded, (c, 1000) into *out (rows of the classes asked; others 0): the smoothed
 * integrated gradients (mrm_explain_smooth of MRM_EXPLAIN_IG_STEPS steps from each lead's median,
 * as explain --input X --ig 32 writes integrated_smooth.npy) or the combined Grad-CAM. */
static mrm_status shade_maps(const xp_model *xm, const xp_record *r, const int *asked, int ig, const xp_maps *mp, float **out,
                             mrm_error *err) {
    const size_t T = MRM_SAMPLES, rec = (size_t)MRM_LEADS * MRM_SAMPLES;
    float *sh = calloc((size_t)xm->c * T, sizeof *sh);
    float *base = ig ? malloc(sizeof(float) * rec) : NULL, *att = ig ? malloc(sizeof(float) * rec) : NULL;
    mrm_status s = !sh || (ig && (!base || !att)) ? mrm_fail(err, MRM_ERR_NOMEM, "out of memory") : MRM_OK;
    if (!s && ig) mrm_explain_baseline(r->x, base);
    for (int k = 0; !s && k < xm->c; k++) {
        if (!asked[k]) continue;
        if (!ig) {
            memcpy(sh + (size_t)k * T, mp->cam + (size_t)k * T, sizeof(float) * T);
            continue;
        }
        s = mrm_explain_integrated(xm->m, r->x, base, 1, k, MRM_EXPLAIN_IG_STEPS, att, err);
        if (!s) mrm_explain_smooth(att, MRM_EXPLAIN_SMOOTH_STEPS, sh + (size_t)k * T);
    }
    free(base), free(att);
    if (s) {
        free(sh);
        sh = NULL;
    }
    *out = sh;
    return s;
}

/* The test macro-AUC of the model: metadata "test_macro_auc", or the "-test.json" evaluation
 * written beside it (mrmnet eval --json; the average of the heads). */
static double test_auc_of(const xp_model *xm, char *from, size_t n) {
    const char *t = mrm_meta_get(&xm->meta, "test_macro_auc");
    if (t) {
        const char *sp = mrm_meta_get(&xm->meta, "test_split");
        snprintf(from, n, "%s", sp ? sp : "the model's metadata");
        return strtod(t, NULL);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s", xm->path);
    char *dot = strrchr(path, '.');
    if (dot && !strcmp(dot, ".safetensors")) *dot = '\0';
    strncat(path, "-test.json", sizeof path - strlen(path) - 1);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    double v = NAN;
    if (j) {
        json_t *h = json_object_get(json_object_get(j, "heads"), "average");
        if (!h) h = json_object_get(json_object_get(j, "heads"), "head1");
        json_t *a = json_object_get(h, "macro_auc");
        if (json_is_number(a)) {
            v = json_number_value(a);
            json_t *rc = json_object_get(j, "records");
            snprintf(from, n, "%s: %lld records of the test split", path, json_is_integer(rc) ? (long long)json_integer_value(rc) : -1LL);
        }
        json_decref(j);
    }
    return v;
}

int cmd_report(int argc, char **argv) {
    const char *cmd = "report", *model_path = NULL, *dir = NULL;
    double start_s = -1; /* not given: the window is chosen among predict's */
    long threads = 0;
    int force = 0, overwrite = 0, n = 0, failed = 0, rc = 1, shade_ig = 1;
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
        } else if (!strcmp(a, "--model") || !strcmp(a, "--out") || !strcmp(a, "--start") || !strcmp(a, "--threads") ||
                   !strcmp(a, "--shade")) {
            if (!v) {
                fprintf(stderr, "mrmnet %s: %s needs a value\n", cmd, a);
                free(paths);
                return 2;
            }
            i++;
            int bad = 0;
            if (!strcmp(a, "--model")) model_path = v;
            else if (!strcmp(a, "--out")) dir = v;
            else if (!strcmp(a, "--start")) bad = cli_parse_double_in(cmd, a, v, 0, 0, 1e9, 0, &start_s);
            else if (!strcmp(a, "--shade")) {
                if (!strcmp(v, "ig")) shade_ig = 1;
                else if (!strcmp(v, "gradcam")) shade_ig = 0;
                else fprintf(stderr, "mrmnet %s: --shade: '%s' is not ig or gradcam\n", cmd, v), bad = 1;
            }
            else bad = cli_parse_int(cmd, a, v, 1, 4096, &threads);
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
    if (!model_path || !dir || !n) {
        fprintf(stderr, "mrmnet %s: --model, --out and at least one record are required\n", cmd);
        usage(stderr);
        free(paths);
        return 2;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    xp_model xm;
    mrm_error err = {0};
    char (*names)[256] = calloc((size_t)n, sizeof *names);
    int *ok = calloc((size_t)n, sizeof *ok);
    char **summary = calloc((size_t)n, sizeof *summary);
    if (!names || !ok || !summary) {
        free(paths), free(names), free(ok), free(summary);
        return 1;
    }
    if (xp_model_load(cmd, model_path, &xm)) goto done;
    if (mrm_mkdir_p(dir, &err) || mrm_check_output_dir(dir, &err)) {
        rc = cli_report(cmd, &err);
        goto done;
    }
    char auc_from[4400] = "";
    double test_auc = test_auc_of(&xm, auc_from, sizeof auc_from);
    for (int i = 0; i < n; i++) {
        char base[200];
        xp_base_name(paths[i], base, sizeof base);
        snprintf(names[i], sizeof names[i], "%s", base);
        for (int j = 0, dup = 1; j < i; j++)
            if (!strcmp(names[j], names[i])) snprintf(names[i], sizeof names[i], "%s_%d", base, ++dup), j = -1;
        if (!strcmp(names[i], "index")) snprintf(names[i], sizeof names[i], "index_record");
        xp_record r;
        xp_maps mp;
        raw_leads w;
        memset(&mp, 0, sizeof mp);
        memset(&w, 0, sizeof w);
        sbuf b = {0};
        char path[4400], file[300];
        snprintf(file, sizeof file, "%s.html", names[i]);
        mrm_status s = mrm_path_join(path, sizeof path, dir, file) ? mrm_fail(&err, MRM_ERR_INVALID, "%s/%s: path too long", dir, file) : MRM_OK;
        struct stat st;
        if (!s && !overwrite && stat(path, &st) == 0) s = mrm_fail(&err, MRM_ERR_INVALID, "%s exists (--overwrite replaces it)", path);
        if (!s) s = xp_record_read(&xm, paths[i], start_s > 0 ? start_s : 0, force, &r, &err);
        else memset(&r, 0, sizeof r);
        int *asked = NULL;
        if (!s) {
            asked = calloc((size_t)xm.c, sizeof *asked);
            if (!asked) s = mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
        }
        float *pw = NULL, *mean = NULL;
        if (!s) { /* predict's windows and probabilities (the mean over the windows) */
            pw = malloc(sizeof(float) * (size_t)r.n_win * xm.c);
            mean = malloc(sizeof(float) * (size_t)xm.c);
            if (!pw || !mean) s = mrm_fail(&err, MRM_ERR_NOMEM, "out of memory");
            if (!s) s = xp_window_probs(&xm, &r, pw, mean, &err);
        }
        int shown = -1; /* the window drawn and explained: --start's, else where the most probable called label peaks */
        if (!s && start_s < 0 && r.n_win > 1) {
            int best = -1;
            for (int k = 0; k < xm.c; k++)
                if (mean[k] > xm.thr[k] && (best < 0 || mean[k] > mean[best])) best = k;
            shown = 0;
            for (int v = 1; best >= 0 && v < r.n_win; v++)
                if (pw[(size_t)v * xm.c + best] > pw[(size_t)shown * xm.c + best]) shown = v;
            xp_record_window(&xm, &r, r.win_start[shown]);
        }
        if (!s) { /* the maps of the called classes only, in the window shown */
            for (int k = 0; k < xm.c; k++) asked[k] = mean[k] > xm.thr[k];
            s = xp_maps_compute(&xm, &r, asked, &mp, &err);
            if (!s) memcpy(mp.prob, mean, sizeof(float) * (size_t)xm.c);
        }
        float *shade = NULL;
        if (!s) s = shade_maps(&xm, &r, asked, shade_ig, &mp, &shade, &err);
        free(asked);
        if (!s) s = raw_window(&r, &w, &err);
        if (!s) {
            page_in in = {&xm, &r, &mp, &w, paths[i], names[i], test_auc, auc_from, pw, shown, shade, shade_ig};
            page(&b, &in);
            if (b.failed) s = mrm_fail(&err, MRM_ERR_NOMEM, "%s: out of memory", path);
        }
        if (!s) s = mrm_write_file_atomic(path, b.p, b.len, &err);
        if (!s) {
            char lab[1024] = "";
            size_t len = 0;
            for (int k = 0; k < xm.c; k++)
                if (mp.prob[k] > xm.thr[k] && len + 64 < sizeof lab) len += (size_t)snprintf(lab + len, sizeof lab - len, "%s%s", len ? ", " : "", xm.classes[k]);
            summary[i] = strdup(lab[0] ? lab : "no class above its threshold");
            ok[i] = 1;
            fprintf(stderr, "mrmnet %s: %s -> %s\n", cmd, paths[i], path);
        } else {
            fprintf(stderr, "mrmnet %s: %s: %s\n", cmd, paths[i], err.msg);
            summary[i] = strdup(err.msg);
            failed++;
        }
        free(b.p);
        free(w.v);
        free(pw), free(mean), free(shade);
        xp_maps_free(&mp);
        xp_record_free(&r);
    }
    { /* the index page */
        sbuf b = {0};
        char path[4400];
        if (mrm_path_join(path, sizeof path, dir, "index.html")) {
            fprintf(stderr, "mrmnet %s: %s/index.html: path too long\n", cmd, dir);
            goto done;
        }
        sb_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>mrmnet reports</title>\n"
                      "<style>body { font-family: sans-serif; font-size: 10pt; } td, th { padding: 1mm 3mm; text-align: left; "
                      "border-bottom: 0.2mm solid #ccc; } table { border-collapse: collapse; }</style>\n</head>\n<body>\n"
                      "<h1>ECG reports</h1>\n<p>Model: ");
        sb_text(&b, model_path);
        sb_printf(&b, ". Not a diagnosis: the outputs of a research model; a qualified clinician must read each ECG.</p>\n"
                      "<table>\n<tr><th>recording</th><th>labels called</th></tr>\n");
        for (int i = 0; i < n; i++) {
            sb_printf(&b, "<tr><td>");
            if (ok[i]) {
                sb_printf(&b, "<a href=\"");
                sb_text(&b, names[i]);
                sb_printf(&b, ".html\">");
            }
            sb_text(&b, paths[i]);
            sb_printf(&b, "%s</td><td>%s", ok[i] ? "</a>" : "", ok[i] ? "" : "not reported: ");
            sb_text(&b, summary[i] ? summary[i] : "");
            sb_printf(&b, "</td></tr>\n");
        }
        sb_printf(&b, "</table>\n</body>\n</html>\n");
        mrm_status s = b.failed ? mrm_fail(&err, MRM_ERR_NOMEM, "%s: out of memory", path) : mrm_write_file_atomic(path, b.p, b.len, &err);
        free(b.p);
        if (s) {
            cli_report(cmd, &err);
            goto done;
        }
    }
    if (failed) fprintf(stderr, "mrmnet %s: %d of %d recordings could not be reported\n", cmd, failed, n);
    rc = failed ? 1 : 0;
done:
    xp_model_free(&xm);
    for (int i = 0; i < n; i++) free(summary[i]);
    free(paths), free(names), free(ok), free(summary);
    return rc;
}
