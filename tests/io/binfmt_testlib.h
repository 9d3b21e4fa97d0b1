/* Helpers of the binary clinical-format tests: whole-file reads, BioSig's save2gdf as an
 * independent reference (its ASCII export: a header file and one value per line per channel),
 * comparisons of records, and expected failures with message checks. */
#ifndef MRM_TESTS_BINFMT_TESTLIB_H
#define MRM_TESTS_BINFMT_TESTLIB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/binfmt.h"
#include "mrmnet.h"
#include "test_util.h"

static inline unsigned char *bt_read_all(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static inline int bt_have_tool(const char *tool) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* One channel of a save2gdf ASCII export. */
typedef struct {
    char label[128], units[32];
    double fs;
    long long n;
    double *v;
} bt_channel;

typedef struct {
    int n;
    bt_channel ch[64];
} bt_ref;

static inline void bt_ref_free(bt_ref *r) {
    for (int i = 0; i < r->n; i++) free(r->ch[i].v);
    r->n = 0;
}

static inline void bt_trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
}

/* Runs save2gdf -f=ASCII on path into dir; returns 0 and fills ref, or -1. */
static inline int bt_save2gdf(const char *path, const char *dir, const char *tag, bt_ref *ref) {
    memset(ref, 0, sizeof *ref);
    char cmd[16384], out[4096];
    snprintf(out, sizeof out, "%s/%s.out", dir, tag);
    snprintf(cmd, sizeof cmd, "save2gdf -f=ASCII '%s' '%s' >/dev/null 2>&1", path, out);
    if (system(cmd) != 0) return -1;
    FILE *f = fopen(out, "r");
    if (!f) return -1;
    char line[1024];
    int in_channels = 0;
    bt_channel *c = NULL;
    while (fgets(line, sizeof line, f)) {
        bt_trim(line);
        if (!strncmp(line, "[Header 2]", 10)) in_channels = 1;
        if (!strncmp(line, "[EVENT", 6)) break;
        if (!in_channels) continue;
        char *eq = strchr(line, '=');
        if (!eq) continue;
        char *val = eq + 1;
        while (*val == ' ' || *val == '\t') val++;
        char *hash = strstr(val, "\t#");
        if (hash) *hash = '\0';
        bt_trim(val);
        if (!strncmp(line, "Filename", 8)) {
            if (ref->n == 64) break;
            c = &ref->ch[ref->n++];
            char data[8192];
            snprintf(data, sizeof data, "%s/%s", dir, strrchr(val, '/') ? strrchr(val, '/') + 1 : val);
            FILE *d = fopen(data, "r");
            if (!d) continue;
            size_t cap = 1024;
            c->v = malloc(cap * sizeof(double));
            char num[128];
            while (fgets(num, sizeof num, d)) {
                if ((size_t)c->n == cap) c->v = realloc(c->v, (cap *= 2) * sizeof(double));
                c->v[c->n++] = strtod(num, NULL);
            }
            fclose(d);
        } else if (c && !strncmp(line, "Label", 5)) {
            snprintf(c->label, sizeof c->label, "%s", val);
        } else if (c && !strncmp(line, "PhysicalUnits", 13)) {
            snprintf(c->units, sizeof c->units, "%s", val);
        } else if (c && !strncmp(line, "SamplingRate", 12)) {
            c->fs = strtod(val, NULL);
        }
    }
    fclose(f);
    return ref->n ? 0 : -1;
}

typedef mrm_status (*bt_mem_reader)(mrm_record *, const uint8_t *, size_t, const char *, int, mrm_error *);

/* Reading buf must fail; the message must hold each non-NULL needle. */
static inline void bt_expect_fail(bt_mem_reader fn, const void *buf, size_t len, const char *name, const char *n1,
                                  const char *n2) {
    mrm_record r;
    mrm_error e = {0};
    /* a copy of exactly len bytes, so that ASan sees any read past the end */
    void *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, buf, len);
    mrm_status s = fn(&r, copy, len, name, 0, &e);
    free(copy);
    CHECK(s != MRM_OK, "%s: accepted", name);
    if (s == MRM_OK) {
        mrm_record_free(&r);
        return;
    }
    CHECK(r.data == NULL && r.signals == NULL, "%s: record not left empty", name);
    CHECK(strstr(e.msg, name) != NULL, "%s: message '%s' does not name it", name, e.msg);
    if (n1) CHECK(strstr(e.msg, n1) != NULL, "%s: message '%s' lacks '%s'", name, e.msg, n1);
    if (n2) CHECK(strstr(e.msg, n2) != NULL, "%s: message '%s' lacks '%s'", name, e.msg, n2);
    printf("  refused: %s\n", e.msg);
}

/* Compares a record with a save2gdf export: same channel labels in order (channel map[k] of the
 * record against the export's k-th, or k against k), same sampling rate, and every sample within
 * tol (in the record's units; the export's are converted when they differ). */
static inline void bt_compare(const mrm_record *rec, const bt_ref *ref, const int *map, int n_map, double tol,
                              const char *what) {
    for (int k = 0; k < n_map; k++) {
        int s = map ? map[k] : k, r = k;
        if (s >= rec->n_signals || r >= ref->n) {
            CHECK(0, "%s: channel %d missing", what, k);
            continue;
        }
        const bt_channel *c = &ref->ch[r];
        double from = mrm_binfmt_unit_to_mv(c->units), to = mrm_binfmt_unit_to_mv(rec->signals[s].units);
        CHECK(from > 0 && to > 0, "%s: channel %s in '%s', save2gdf says '%s'", what, c->label, rec->signals[s].units,
              c->units);
        if (!(from > 0 && to > 0)) continue;
        double factor = from / to;
        CHECK(!strcmp(rec->signals[s].description, c->label), "%s: signal %d is '%s', save2gdf says '%s'", what, s,
              rec->signals[s].description, c->label);
        CHECK(fabs(rec->fs - c->fs) <= 1e-4 * c->fs, "%s: fs %.6f vs %.6f", what, rec->fs, c->fs);
        CHECK(rec->n_samples == c->n, "%s: %s: %lld samples, save2gdf %lld", what, c->label, rec->n_samples, c->n);
        long long n = rec->n_samples < c->n ? rec->n_samples : c->n, bad = 0;
        double worst = 0;
        for (long long t = 0; t < n; t++) {
            double a = rec->data[(size_t)s * rec->n_samples + t], b = c->v[t] * factor;
            double d = isnan(a) && isnan(b) ? 0 : fabs(a - b);
            if (!(d <= tol)) bad++;
            if (!(d <= worst)) worst = d;
        }
        CHECK(bad == 0, "%s: %s: %lld of %lld samples differ by more than %g %s (worst %g)", what, c->label, bad, n,
              tol, rec->signals[s].units, worst);
        printf("  %s %s: %lld samples, max |diff| %.3g %s\n", what, c->label, n, worst, rec->signals[s].units);
    }
}

#endif
