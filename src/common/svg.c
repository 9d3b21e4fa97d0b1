/* SVG line plots: axes with ticks, one polyline a series, a legend. */
#include "common/svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"

enum { PANEL_W = 640, PANEL_H = 360, MARGIN_L = 70, MARGIN_R = 170, MARGIN_T = 36, MARGIN_B = 48 };

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* Text with the XML special characters escaped. */
static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A "nice" tick step for a range (1, 2 or 5 times a power of ten, about 5 ticks). */
static double tick_step(double range) {
    double raw = range / 5, p = pow(10, floor(log10(raw))), r = raw / p;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
}

static void draw_panel(FILE *f, const mrm_svg_panel *pn, int top) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    if (pn->unit_square) {
        x0 = y0 = 0, x1 = y1 = 1;
    } else {
        for (int s = 0; s < pn->n_series; s++)
            for (int i = 0; i < pn->series[s].n; i++) {
                double x = pn->series[s].x[i], y = pn->series[s].y[i];
                if (!isfinite(x) || !isfinite(y)) continue;
                x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
            }
        if (!isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
        if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
        if (y1 - y0 < 1e-12) y0 -= fmax(0.5, fabs(y0) * 0.1), y1 += fmax(0.5, fabs(y1) * 0.1);
        double pad = 0.05 * (y1 - y0);
        y0 -= pad, y1 += pad;
    }
    const double pw = PANEL_W - MARGIN_L - MARGIN_R, ph = PANEL_H - MARGIN_T - MARGIN_B;
    const double ox = MARGIN_L, oy = top + MARGIN_T;
#define PX(x) (ox + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (oy + ph - ((y) - y0) / (y1 - y0) * ph)
    fprintf(f, "<text x=\"%g\" y=\"%d\" font-size=\"15\" text-anchor=\"middle\">", ox + pw / 2, top + 22);
    put_text(f, pn->title);
    fprintf(f, "</text>\n<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#444\"/>\n", ox, oy, pw, ph);
    double sx = tick_step(x1 - x0), sy = tick_step(y1 - y0);
    for (double t = ceil(x0 / sx) * sx; t <= x1 + 1e-9 * sx; t += sx) {
        fprintf(f, "<line x1=\"%.2f\" y1=\"%g\" x2=\"%.2f\" y2=\"%g\" stroke=\"#ddd\"/>", PX(t), oy, PX(t), oy + ph);
        fprintf(f, "<text x=\"%.2f\" y=\"%g\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n", PX(t), oy + ph + 15,
                fabs(t) < 1e-12 * sx ? 0.0 : t);
    }
    for (double t = ceil(y0 / sy) * sy; t <= y1 + 1e-9 * sy; t += sy) {
        fprintf(f, "<line x1=\"%g\" y1=\"%.2f\" x2=\"%g\" y2=\"%.2f\" stroke=\"#ddd\"/>", ox, PY(t), ox + pw, PY(t));
        fprintf(f, "<text x=\"%g\" y=\"%.2f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n", ox - 5, PY(t) + 4,
                fabs(t) < 1e-12 * sy ? 0.0 : t);
    }
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"12\" text-anchor=\"middle\">", ox + pw / 2, oy + ph + 36);
    put_text(f, pn->xlabel);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"%g\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 %d %g)\">", 18,
            oy + ph / 2, 18, oy + ph / 2);
    put_text(f, pn->ylabel);
    fputs("</text>\n", f);
    if (pn->unit_square)
        fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>\n", PX(0.0), PY(0.0),
                PX(1.0), PY(1.0));
    for (int s = 0; s < pn->n_series; s++) {
        const mrm_svg_series *se = &pn->series[s];
        const char *color = palette[s % (int)(sizeof palette / sizeof palette[0])];
        int open = 0;
        for (int i = 0; i < se->n; i++) {
            double x = se->x[i], y = se->y[i];
            if (!isfinite(x) || !isfinite(y)) {
                if (open) fputs("\"/>\n", f);
                open = 0;
                continue;
            }
            if (!open) fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", color);
            fprintf(f, "%.2f,%.2f ", PX(x), PY(y));
            open = 1;
        }
        if (open) fputs("\"/>\n", f);
        if (se->n == 1 && isfinite(se->x[0]) && isfinite(se->y[0]))
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", PX(se->x[0]), PY(se->y[0]), color);
        double ly = oy + 10 + 16 * s;
        fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/>", ox + pw + 10, ly, ox + pw + 28,
                ly, color);
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\">", ox + pw + 33, ly + 4);
        put_text(f, se->name);
        fputs("</text>\n", f);
    }
#undef PX
#undef PY
}

mrm_status mrm_svg_write(const char *path, const mrm_svg_panel *panels, int n_panels, mrm_error *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate the drawing", path);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            PANEL_W, PANEL_H * (n_panels > 0 ? n_panels : 1));
    for (int p = 0; p < n_panels; p++) draw_panel(f, &panels[p], p * PANEL_H);
    fputs("</svg>\n", f);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot build the drawing", path);
    }
    mrm_status st = mrm_write_file_atomic(path, buf, len, err);
    free(buf);
    return st;
}
