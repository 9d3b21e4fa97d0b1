/* HL7 aECG XML (root AnnotatedECG, namespace urn:hl7-org:v3): the rhythm waveforms are a <series>
 * (code RHYTHM) whose <sequenceSet> holds one <sequence> for time (TIME_ABSOLUTE or TIME_RELATIVE:
 * head and increment) and one per lead (code MDC_ECG_LEAD_*, value SLIST_PQ or SLIST_INT: origin,
 * scale and the digits); the physical value of a digit d is origin + scale * d, in the scale's
 * unit. Representative beats are a series with code REPRESENTATIVE_BEAT, at the top level or as the
 * rhythm series' <derivation><derivedSeries>. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "io/formats.h"
#include "io/xmlutil.h"

#define AECG_MAX_LEADS 64
#define AECG_MAX_SAMPLES (1LL << 26)

int mrm_aecg_sniff(const uint8_t *buf, size_t len) {
    char root[64], ns[128];
    if (mrm_xml_root(buf, len, root, sizeof root, ns, sizeof ns) != 0 || strcmp(root, "AnnotatedECG")) return 0;
    return !ns[0] || !strcmp(ns, "urn:hl7-org:v3");
}

static void code_of(const xmlNode *n, char *out, size_t outsz) { mrm_xml_attr(mrm_xml_child(n, "code"), "code", out, outsz); }

/* A series with this code among n's component/series (or, for representative beats, the
 * derivation/derivedSeries of those). */
static xmlNode *find_series(xmlNode *root, const char *want) {
    for (xmlNode *c = mrm_xml_child(root, "component"); c; c = mrm_xml_next(c, "component")) {
        xmlNode *s = mrm_xml_child(c, "series");
        if (!s) continue;
        char code[64];
        code_of(s, code, sizeof code);
        if (!strcmp(code, want)) return s;
        for (xmlNode *d = mrm_xml_child(s, "derivation"); d; d = mrm_xml_next(d, "derivation")) {
            xmlNode *ds = mrm_xml_child(d, "derivedSeries");
            code_of(ds, code, sizeof code);
            if (ds && !strcmp(code, want)) return ds;
        }
    }
    return NULL;
}

/* Unit factor to the second for a time unit. */
static double time_unit(const char *u) {
    if (!u[0] || !strcmp(u, "s")) return 1.0;
    if (!strcmp(u, "ms")) return 1e-3;
    if (!strcmp(u, "us")) return 1e-6;
    return 0.0;
}

/* Unit factor to the microvolt for a voltage unit; 0 for other units. */
static double volt_unit(const char *u) {
    if (!strcmp(u, "uV")) return 1.0;
    if (!strcmp(u, "mV")) return 1e3;
    if (!strcmp(u, "V")) return 1e6;
    if (!strcmp(u, "nV")) return 1e-3;
    return 0.0;
}

/* HL7 TS "YYYYMMDDHHMMSS[.fff]" -> ISO 8601. */
static void ts_to_iso(const char *ts, char *out, size_t outsz) {
    out[0] = '\0';
    size_t n = 0;
    while (isdigit((unsigned char)ts[n])) n++;
    if (n < 8) return;
    static const int at[6] = {0, 4, 6, 8, 10, 12}, width[6] = {4, 2, 2, 2, 2, 2};
    int v[6] = {0};
    for (int k = 0; k < 6 && (size_t)(at[k] + width[k]) <= n; k++)
        for (int i = 0; i < width[k]; i++) v[k] = v[k] * 10 + (ts[at[k] + i] - '0');
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60) return;
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d", v[0] % 10000, v[1] % 100, v[2] % 100, v[3] % 100, v[4] % 100, v[5] % 100);
}

typedef struct aecg_lead {
    xmlNode *node;
    char name[96];
    double origin, scale; /* in uV */
    long long count;
    long long *digits;
} aecg_lead;

/* Parses the whitespace-separated integers of <digits>; counts them when out is NULL. */
static long long parse_digits(const char *s, long long *out, long long cap, long long *bad_at) {
    long long k = 0;
    const char *p = s;
    *bad_at = -1;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        char *e;
        errno = 0;
        long long v = strtoll(p, &e, 10);
        if (e == p || errno == ERANGE || (*e && *e != ' ' && *e != '\t' && *e != '\r' && *e != '\n')) {
            *bad_at = k;
            return -1;
        }
        if (out) {
            if (k >= cap) return -1;
            out[k] = v;
        }
        k++;
        if (k > AECG_MAX_SAMPLES) return -1;
        p = e;
    }
    return k;
}

/* <value> of a lead sequence: origin and scale (each value + unit) in uV. */
static mrm_status lead_scale(xmlNode *val, aecg_lead *l, const char *fn, mrm_error *err) {
    char v[64], u[32];
    xmlNode *o = mrm_xml_child(val, "origin"), *sc = mrm_xml_child(val, "scale");
    l->origin = 0.0;
    l->scale = 1.0;
    if (sc) {
        mrm_xml_attr(sc, "value", v, sizeof v);
        mrm_xml_attr(sc, "unit", u, sizeof u);
        double f = volt_unit(u), x;
        if (mrm_parse_double_text(v, &x) || !isfinite(x) || x == 0)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: scale value '%s' is not a non-zero number", fn, mrm_xml_line(sc), l->name, v);
        if (f == 0)
            return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: lead %s: scale unit '%s' is not a voltage (uV, mV, V)", fn, mrm_xml_line(sc),
                            l->name, u);
        l->scale = x * f;
    } else {
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: no <scale>", fn, mrm_xml_line(val), l->name);
    }
    if (o) {
        mrm_xml_attr(o, "value", v, sizeof v);
        mrm_xml_attr(o, "unit", u, sizeof u);
        double f = u[0] ? volt_unit(u) : 1.0, x;
        if (mrm_parse_double_text(v, &x) || !isfinite(x))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: origin value '%s' is not a number", fn, mrm_xml_line(o), l->name, v);
        if (f == 0)
            return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: lead %s: origin unit '%s' is not a voltage", fn, mrm_xml_line(o), l->name, u);
        l->origin = x * f;
    }
    return MRM_OK;
}

static mrm_status read_series(mrm_record *rec, xmlNode *series, const char *fn, mrm_error *err) {
    xmlNode *set = NULL;
    for (xmlNode *c = mrm_xml_child(series, "component"); c && !set; c = mrm_xml_next(c, "component"))
        set = mrm_xml_child(c, "sequenceSet");
    if (!set) return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: series has no <sequenceSet>", fn, mrm_xml_line(series));
    double increment = 0;
    char head[64] = "";
    int n = 0;
    for (xmlNode *c = mrm_xml_child(set, "component"); c; c = mrm_xml_next(c, "component")) {
        xmlNode *sq = mrm_xml_child(c, "sequence");
        char code[96];
        code_of(sq, code, sizeof code);
        if (!strncmp(code, "TIME_", 5)) {
            xmlNode *val = mrm_xml_child(sq, "value"), *inc = mrm_xml_child(val, "increment");
            char v[64], u[32];
            mrm_xml_attr(inc, "value", v, sizeof v);
            mrm_xml_attr(inc, "unit", u, sizeof u);
            double x, f = time_unit(u);
            if (!inc || mrm_parse_double_text(v, &x) || !(x > 0) || f == 0 || !(1.0 / (x * f) <= 1e6))
                return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: %s: increment '%s %s' is not a sampling interval", fn,
                                mrm_xml_line(inc ? inc : sq), code, v, u);
            increment = x * f;
            mrm_xml_attr(mrm_xml_child(val, "head"), "value", head, sizeof head);
        } else if (sq && code[0]) {
            n++;
        }
    }
    if (!(increment > 0)) return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: sequenceSet has no time sequence (TIME_ABSOLUTE or TIME_RELATIVE)", fn,
                                          mrm_xml_line(set));
    if (n == 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: sequenceSet has no lead sequence", fn, mrm_xml_line(set));
    if (n > AECG_MAX_LEADS) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %d lead sequences (at most %d read)", fn, n, AECG_MAX_LEADS);
    aecg_lead *L = calloc((size_t)n, sizeof *L);
    if (!L) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
    mrm_status st = MRM_OK;
    int k = 0;
    for (xmlNode *c = mrm_xml_child(set, "component"); c && !st; c = mrm_xml_next(c, "component")) {
        xmlNode *sq = mrm_xml_child(c, "sequence");
        char code[96];
        code_of(sq, code, sizeof code);
        if (!sq || !code[0] || !strncmp(code, "TIME_", 5)) continue;
        aecg_lead *l = &L[k++];
        l->node = sq;
        snprintf(l->name, sizeof l->name, "%s", code);
        xmlNode *val = mrm_xml_child(sq, "value");
        char type[32];
        mrm_xml_attr(val, "type", type, sizeof type);
        if (!val || (type[0] && strcmp(type, "SLIST_PQ") && strcmp(type, "SLIST_INT"))) {
            st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: lead %s: value type '%s' (SLIST_PQ or SLIST_INT are read)", fn, mrm_xml_line(sq),
                          code, type);
            break;
        }
        if (!strcmp(type, "SLIST_INT")) {
            /* integer list: origin and scale are plain numbers; the units are those of the series */
            l->origin = 0, l->scale = 1;
            char v[64];
            double x;
            if (mrm_xml_attr(mrm_xml_child(val, "scale"), "value", v, sizeof v) && !mrm_parse_double_text(v, &x) && x != 0) l->scale = x;
            if (mrm_xml_attr(mrm_xml_child(val, "origin"), "value", v, sizeof v) && !mrm_parse_double_text(v, &x)) l->origin = x;
        } else if ((st = lead_scale(val, l, fn, err))) {
            break;
        }
        xmlNode *dg = mrm_xml_child(val, "digits");
        if (!dg) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: no <digits>", fn, mrm_xml_line(val), code);
            break;
        }
        size_t tl;
        char *text = mrm_xml_text_dup(dg, &tl);
        if (!text) {
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
            break;
        }
        long long bad;
        long long cnt = parse_digits(text, NULL, 0, &bad);
        if (cnt > 0 && !(l->digits = malloc((size_t)cnt * sizeof *l->digits))) {
            free(text);
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
            break;
        }
        if (cnt > 0) cnt = parse_digits(text, l->digits, cnt, &bad);
        free(text);
        if (cnt < 0) {
            st = bad >= 0 ? mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: <digits>: item %lld is not an integer", fn, mrm_xml_line(dg), code, bad + 1)
                          : mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: <digits>: more than %lld values", fn, mrm_xml_line(dg), code,
                                     AECG_MAX_SAMPLES);
            break;
        }
        if (cnt == 0) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: <digits> is empty", fn, mrm_xml_line(dg), code);
            break;
        }
        l->count = cnt;
    }
    for (int i = 1; i < n && !st; i++)
        if (L[i].count != L[0].count)
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s has %lld samples, lead %s %lld: the leads of a sequence set must be as long", fn,
                          mrm_xml_line(L[i].node), L[i].name, L[i].count, L[0].name, L[0].count);
    for (int i = 0; i < n && !st; i++)
        for (int j = 0; j < i && !st; j++)
            if (!strcmp(L[i].name, L[j].name))
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s appears twice", fn, mrm_xml_line(L[i].node), L[i].name);
    double fs = 1.0 / increment;
    /* a rate stated as a rounded interval (0.002 s) is the round rate (500 Hz) */
    if (fabs(fs - round(fs)) < 1e-6 * fs) fs = round(fs);
    if (!st) st = mrm_record_alloc(rec, n, L[0].count, fs, "hl7-aecg", fn, err);
    if (!st) {
        long long T = L[0].count;
        for (int i = 0; i < n; i++) {
            mrm_signal_info *si = &rec->signals[i];
            snprintf(si->description, sizeof si->description, "%s", L[i].name);
            snprintf(si->units, sizeof si->units, "uV");
            si->gain = 1.0 / L[i].scale;
            si->baseline = (int)llround(-L[i].origin / L[i].scale);
            double *d = rec->data + (size_t)i * (size_t)T;
            for (long long t = 0; t < T; t++) d[t] = L[i].origin + L[i].scale * (double)L[i].digits[t];
        }
        if (head[0]) {
            ts_to_iso(head, rec->acquired, sizeof rec->acquired);
        }
    }
    for (int i = 0; i < n; i++) free(L[i].digits);
    free(L);
    return st;
}

/* Sex (the first administrativeGenderCode) and age (a relatedObservation of LOINC 21612-7, "Reported
 * Age", in years) wherever they sit in the document (libxml2 caps the depth at 256). */
static void aecg_patient(const xmlNode *n, mrm_record *rec, int depth) {
    for (const xmlNode *c = n ? n->children : NULL; c && depth < 300; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) continue;
        const char *name = mrm_xml_name(c);
        if (!strcmp(name, "administrativeGenderCode") && !rec->sex[0]) {
            char code[16];
            mrm_xml_attr(c, "code", code, sizeof code);
            if (!strcmp(code, "M")) snprintf(rec->sex, sizeof rec->sex, "Male");
            else if (!strcmp(code, "F")) snprintf(rec->sex, sizeof rec->sex, "Female");
        } else if (!strcmp(name, "relatedObservation") && rec->age < 0) {
            char code[32], v[32], u[16];
            code_of(c, code, sizeof code);
            xmlNode *val = mrm_xml_child(c, "value");
            mrm_xml_attr(val, "value", v, sizeof v);
            mrm_xml_attr(val, "unit", u, sizeof u);
            double a;
            if (!strcmp(code, "21612-7") && !mrm_parse_double_text(v, &a) && a >= 0 && a < 150 && (!u[0] || !strcmp(u, "a")))
                rec->age = (int)a;
        } else if (strcmp(name, "series") && strcmp(name, "sequenceSet")) { /* not into the waveforms */
            aecg_patient(c, rec, depth + 1);
        }
    }
}

mrm_status mrm_aecg_read(mrm_record *rec, const uint8_t *buf, size_t len, const char *fn, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    xmlDocPtr doc;
    mrm_status st = mrm_xml_parse(buf, len, fn, &doc, err);
    if (st) return st;
    xmlNode *root = xmlDocGetRootElement(doc);
    if (strcmp(mrm_xml_name(root), "AnnotatedECG")) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: root element <%s>, not HL7 aECG's <AnnotatedECG>", fn, mrm_xml_name(root));
    } else {
        int rep = (flags & MRM_READ_REPRESENTATIVE) != 0;
        const char *want = rep ? "REPRESENTATIVE_BEAT" : "RHYTHM";
        xmlNode *series = find_series(root, want);
        if (!series) st = mrm_fail(err, MRM_ERR_FORMAT, "%s: no <series> with code %s", fn, want);
        else st = read_series(rec, series, fn, err);
        if (!st) {
            rec->representative = rep;
            aecg_patient(root, rec, 0);
            if (!rec->acquired[0] || rep) {
                char ts[64];
                xmlNode *et = mrm_xml_child(root, "effectiveTime");
                if (!mrm_xml_attr(mrm_xml_child(et, "center"), "value", ts, sizeof ts)) mrm_xml_attr(mrm_xml_child(et, "low"), "value", ts, sizeof ts);
                if (ts[0]) ts_to_iso(ts, rec->acquired, sizeof rec->acquired);
            }
        }
    }
    xmlFreeDoc(doc);
    if (st) mrm_record_free(rec);
    return st;
}
