/* Shared pieces of the binary clinical-format readers. */
#include "io/binfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

mrm_status mrm_binfmt_record_alloc(mrm_record *rec, int n_signals, long long n_samples, int header_only,
                               const char *name, mrm_error *err) {
    if (n_signals <= 0 || n_samples < 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %d signals of %lld samples", name, n_signals, n_samples);
    rec->n_signals = n_signals;
    rec->n_samples = n_samples;
    rec->signals = calloc((size_t)n_signals, sizeof *rec->signals);
    rec->checks = calloc((size_t)n_signals, sizeof *rec->checks);
    if (!rec->signals || !rec->checks)
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %d signal descriptions", name, n_signals);
    for (int s = 0; s < n_signals; s++) {
        rec->checks[s].checksum_ok = -1;
        rec->checks[s].init_value_ok = -1;
    }
    if (header_only) return MRM_OK;
    if ((unsigned long long)n_samples > (SIZE_MAX / sizeof(double)) / (size_t)n_signals)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %d signals of %lld samples is too large", name, n_signals, n_samples);
    size_t n = (size_t)n_signals * (size_t)n_samples;
    rec->data = malloc((n ? n : 1) * sizeof(double));
    if (!rec->data) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu samples", name, n);
    for (size_t i = 0; i < n; i++) rec->data[i] = NAN;
    return MRM_OK;
}

void mrm_binfmt_record_name(mrm_record *rec, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n >= sizeof rec->name) n = sizeof rec->name - 1;
    memcpy(rec->name, base, n);
    rec->name[n] = '\0';
}

double mrm_binfmt_unit_to_mv(const char *unit) {
    if (!strcmp(unit, "uV") || !strcasecmp(unit, "microvolt") || !strcmp(unit, "\xc2\xb5V") || !strcmp(unit, "\xb5V"))
        return 1e-3;
    if (!strcmp(unit, "mV") || !strcasecmp(unit, "millivolt")) return 1.0;
    if (!strcmp(unit, "V") || !strcasecmp(unit, "volt")) return 1e3;
    if (!strcmp(unit, "nV")) return 1e-6;
    return 0.0;
}

void mrm_binfmt_finish(mrm_record *rec, const char *format) {
    snprintf(rec->format, sizeof rec->format, "%s", format);
    unsigned d, m, y, hh, mm, ss;
    if (sscanf(rec->base_date, "%2u/%2u/%4u", &d, &m, &y) != 3) return;
    if (sscanf(rec->base_time, "%2u:%2u:%2u", &hh, &mm, &ss) == 3)
        snprintf(rec->acquired, sizeof rec->acquired, "%04u-%02u-%02uT%02u:%02u:%02u", y % 10000u, m % 100u, d % 100u,
                 hh % 100u, mm % 100u, ss % 100u);
    else
        snprintf(rec->acquired, sizeof rec->acquired, "%04u-%02u-%02u", y % 10000u, m % 100u, d % 100u);
}
