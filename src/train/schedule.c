/* Learning-rate schedules (include/mrmnet/train.h): parsing, formatting and the rate of an epoch. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "mrmnet/train.h"
#include "train/schedule.h"

/* Splits "a:b:c" into at most 3 numbers after the name; returns how many, -1 on a bad number. */
static int numbers(const char *s, double *v, int max) {
    int n = 0;
    while (*s == ':') {
        if (n == max) return -1;
        char *end;
        errno = 0;
        v[n] = strtod(s + 1, &end);
        if (end == s + 1 || errno || !isfinite(v[n]) || (*end && *end != ':')) return -1;
        n++;
        s = end;
    }
    return *s ? -1 : n;
}

mrm_status mrm_lr_schedule_parse(const char *text, mrm_lr_schedule *s, mrm_error *err) {
    memset(s, 0, sizeof *s);
    double v[3];
    int n;
    if (!strcmp(text, "constant")) return MRM_OK;
    if (!strncmp(text, "step", 4) && (n = numbers(text + 4, v, 3)) == 2 && v[0] >= 1 && v[0] <= 1e6 && v[0] == floor(v[0]) &&
        v[1] > 0 && v[1] <= 1) {
        s->kind = MRM_LR_STEP, s->step_epochs = (int)v[0], s->gamma = v[1];
        return MRM_OK;
    }
    if (!strncmp(text, "cosine", 6) && (n = numbers(text + 6, v, 3)) >= 0 && n <= 1 && (n == 0 || v[0] >= 0)) {
        s->kind = MRM_LR_COSINE, s->min_lr = n ? v[0] : 0.0;
        return MRM_OK;
    }
    if (!strncmp(text, "plateau", 7) && (n = numbers(text + 7, v, 3)) >= 2 && v[0] >= 0 && v[0] <= 1e6 && v[0] == floor(v[0]) &&
        v[1] > 0 && v[1] < 1 && (n == 2 || v[2] >= 0)) {
        s->kind = MRM_LR_PLATEAU, s->patience = (int)v[0], s->gamma = v[1], s->min_lr = n == 3 ? v[2] : 0.0;
        return MRM_OK;
    }
    return mrm_fail(err, MRM_ERR_INVALID,
                    "learning-rate schedule '%s': expected constant, step:EPOCHS:GAMMA (EPOCHS >= 1, 0 < GAMMA <= 1), "
                    "cosine[:MIN_LR] or plateau:PATIENCE:FACTOR[:MIN_LR] (0 < FACTOR < 1)",
                    text);
}

void mrm_lr_schedule_format(const mrm_lr_schedule *s, char *out, size_t outsz) {
    switch (s->kind) {
    case MRM_LR_STEP: snprintf(out, outsz, "step:%d:%.9g", s->step_epochs, s->gamma); break;
    case MRM_LR_COSINE: snprintf(out, outsz, "cosine:%.9g", s->min_lr); break;
    case MRM_LR_PLATEAU: snprintf(out, outsz, "plateau:%d:%.9g:%.9g", s->patience, s->gamma, s->min_lr); break;
    default: snprintf(out, outsz, "constant"); break;
    }
}

double train_lr_of_epoch(const mrm_lr_schedule *s, double base, int epoch, int epochs, double plateau_lr) {
    switch (s->kind) {
    case MRM_LR_STEP: return base * pow(s->gamma, (double)((epoch - 1) / s->step_epochs));
    case MRM_LR_COSINE:
        return s->min_lr + (base - s->min_lr) * (1.0 + cos(M_PI * (double)(epoch - 1) / (double)epochs)) / 2.0;
    case MRM_LR_PLATEAU: return plateau_lr;
    default: return base;
    }
}

void train_plateau_update(const mrm_lr_schedule *s, double metric, double *best, int *bad, double *lr) {
    if (s->kind != MRM_LR_PLATEAU || !isfinite(metric)) return;
    if (!isfinite(*best) || metric > *best * (1.0 + 1e-4)) {
        *best = metric;
        *bad = 0;
    } else {
        (*bad)++;
    }
    if (*bad > s->patience) {
        double next = *lr * s->gamma;
        if (next < s->min_lr) next = s->min_lr;
        *lr = next;
        *bad = 0;
    }
}
