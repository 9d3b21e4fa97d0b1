/* A small SVG plotting helper: line plots in one or more panels stacked vertically (training
 * curves, ROC curves). Written atomically. */
#ifndef MRM_COMMON_SVG_H
#define MRM_COMMON_SVG_H

#include "mrmnet.h"

/* One line: n points (x[i], y[i]); non-finite points are skipped (the line breaks there). */
typedef struct mrm_svg_series {
    const char *name;      /* legend text */
    const double *x, *y;
    int n;
} mrm_svg_series;

typedef struct mrm_svg_panel {
    const char *title, *xlabel, *ylabel;
    const mrm_svg_series *series;
    int n_series;
    int unit_square;       /* axes fixed to [0, 1] x [0, 1] with the diagonal drawn (ROC) */
} mrm_svg_panel;

/* Writes the panels, one under the other, to path. */
mrm_status mrm_svg_write(const char *path, const mrm_svg_panel *panels, int n_panels, mrm_error *err);

#endif
