/* GE MUSE XML (root element RestingECG): each <Waveform> (Rhythm, Median) holds one <LeadData>
 * per stored lead with the samples as base64 of little-endian int16, the count of samples and
 * bytes, the amplitude per unit, and a CRC-32 of the bytes. MUSE stores 8 leads (I, II, V1-V6);
 * the reader derives III, aVR, aVL and aVF from I and II as Einthoven and Goldberger define them:
 *   III = II - I,  aVR = -(I + II) / 2,  aVL = I - II / 2,  aVF = II - I / 2
 * and marks them derived. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "io/formats.h"
#include "io/xmlutil.h"

#define MUSE_MAX_LEADS 64
#define MUSE_MAX_SAMPLES (1LL << 26) /* per lead: 37 hours at 500 Hz */

int mrm_muse_sniff(const uint8_t *buf, size_t len) {
    char root[64], ns[128];
    return mrm_xml_root(buf, len, root, sizeof root, ns, sizeof ns) == 0 && !strcmp(root, "RestingECG");
}

/* MUSE writes dates as MM-DD-YYYY and times as HH:MM:SS. */
static void muse_acquired(xmlNode *root, mrm_record *rec) {
    char d[64], t[64];
    xmlNode *td = mrm_xml_child(root, "TestDemographics");
    mrm_xml_text(mrm_xml_child(td, "AcquisitionDate"), d, sizeof d);
    mrm_xml_text(mrm_xml_child(td, "AcquisitionTime"), t, sizeof t);
    int mo, da, y, h = 0, mi = 0, s = 0;
    if (sscanf(d, "%2d-%2d-%4d", &mo, &da, &y) == 3 && mo >= 1 && mo <= 12 && da >= 1 && da <= 31) {
        if (t[0] && (sscanf(t, "%2d:%2d:%2d", &h, &mi, &s) < 2 || h > 23 || mi > 59 || s > 60)) h = mi = s = 0;
        snprintf(rec->acquired, sizeof rec->acquired, "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, da, h, mi, s);
        snprintf(rec->base_date, sizeof rec->base_date, "%02d/%02d/%04d", da, mo, y);
        if (t[0]) snprintf(rec->base_time, sizeof rec->base_time, "%02d:%02d:%02d", h, mi, s);
    }
}

static void muse_patient(xmlNode *root, mrm_record *rec) {
    xmlNode *pd = mrm_xml_child(root, "PatientDemographics");
    char v[64], u[64];
    long long age;
    mrm_xml_text(mrm_xml_child(pd, "PatientAge"), v, sizeof v);
    mrm_xml_text(mrm_xml_child(pd, "AgeUnits"), u, sizeof u);
    if (v[0] && !mrm_parse_ll_text(v, &age) && age >= 0 && age < 150 && (!u[0] || !strcasecmp(u, "YEARS"))) rec->age = (int)age;
    mrm_xml_text(mrm_xml_child(pd, "Gender"), v, sizeof v);
    if (!strcasecmp(v, "MALE")) snprintf(rec->sex, sizeof rec->sex, "Male");
    else if (!strcasecmp(v, "FEMALE")) snprintf(rec->sex, sizeof rec->sex, "Female");
}

static int find_lead(const mrm_record *rec, int n, const char *name) {
    for (int s = 0; s < n; s++)
        if (!strcasecmp(rec->signals[s].description, name)) return s;
    return -1;
}

typedef struct muse_lead {
    xmlNode *node;
    char id[32];
    long long count;
    double per_bit;
    char units[32];
    int16_t *v;
    int crc_checked;
} muse_lead;

static mrm_status read_waveform(mrm_record *rec, xmlNode *wf, const char *fn, int representative, mrm_error *err) {
    char txt[128];
    mrm_xml_text(mrm_xml_child(wf, "SampleBase"), txt, sizeof txt);
    double base, expo = 0;
    if (mrm_parse_double_text(txt, &base) || !(base > 0) || base > 1e6)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: Waveform: SampleBase '%s' is not a sampling rate", fn,
                        mrm_xml_line(mrm_xml_child(wf, "SampleBase") ? mrm_xml_child(wf, "SampleBase") : wf), txt);
    mrm_xml_text(mrm_xml_child(wf, "SampleExponent"), txt, sizeof txt);
    if (txt[0] && (mrm_parse_double_text(txt, &expo) || expo != floor(expo) || fabs(expo) > 6))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: Waveform: SampleExponent '%s' is not an integer", fn, txt);
    double fs = base * pow(10.0, expo);

    int n = 0;
    for (xmlNode *ld = mrm_xml_child(wf, "LeadData"); ld; ld = mrm_xml_next(ld, "LeadData")) n++;
    if (n == 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: Waveform has no LeadData", fn, mrm_xml_line(wf));
    if (n > MUSE_MAX_LEADS) return mrm_fail(err, MRM_ERR_FORMAT, "%s: Waveform has %d leads (at most %d read)", fn, n, MUSE_MAX_LEADS);
    muse_lead *L = calloc((size_t)n, sizeof *L);
    if (!L) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
    mrm_status st = MRM_OK;
    int k = 0;
    for (xmlNode *ld = mrm_xml_child(wf, "LeadData"); ld && !st; ld = mrm_xml_next(ld, "LeadData"), k++) {
        muse_lead *l = &L[k];
        long line = mrm_xml_line(ld);
        l->node = ld;
        long long bytes = -1, size = 2, count;
        double per_bit;
        mrm_xml_text(mrm_xml_child(ld, "LeadID"), l->id, sizeof l->id);
        if (!l->id[0]) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: LeadData %d: no LeadID", fn, line, k + 1);
            break;
        }
        mrm_xml_text(mrm_xml_child(ld, "LeadSampleCountTotal"), txt, sizeof txt);
        if (mrm_parse_ll_text(txt, &count) || count < 1 || count > MUSE_MAX_SAMPLES) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: LeadSampleCountTotal '%s' is not a count of samples", fn, line, l->id, txt);
            break;
        }
        mrm_xml_text(mrm_xml_child(ld, "LeadSampleSize"), txt, sizeof txt);
        if (txt[0] && (mrm_parse_ll_text(txt, &size) || size != 2)) {
            st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: lead %s: LeadSampleSize '%s' (2-byte samples are read)", fn, line, l->id, txt);
            break;
        }
        mrm_xml_text(mrm_xml_child(ld, "LeadByteCountTotal"), txt, sizeof txt);
        if (txt[0] && (mrm_parse_ll_text(txt, &bytes) || bytes != 2 * count)) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: LeadByteCountTotal '%s' is not 2 x LeadSampleCountTotal (%lld)", fn, line,
                          l->id, txt, count);
            break;
        }
        mrm_xml_text(mrm_xml_child(ld, "LeadAmplitudeUnitsPerBit"), txt, sizeof txt);
        if (mrm_parse_double_text(txt, &per_bit) || !(per_bit > 0) || per_bit > 1e6) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: LeadAmplitudeUnitsPerBit '%s' is not a positive number", fn, line, l->id, txt);
            break;
        }
        mrm_xml_text(mrm_xml_child(ld, "LeadAmplitudeUnits"), txt, sizeof txt);
        if (!txt[0] || !strcasecmp(txt, "MICROVOLTS")) snprintf(l->units, sizeof l->units, "uV");
        else if (!strcasecmp(txt, "MILLIVOLTS")) snprintf(l->units, sizeof l->units, "mV");
        else {
            st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: lead %s: LeadAmplitudeUnits '%s' (MICROVOLTS or MILLIVOLTS)", fn, line, l->id, txt);
            break;
        }
        xmlNode *wd = mrm_xml_child(ld, "WaveFormData");
        size_t tl = 0;
        char *b64 = wd ? mrm_xml_text_dup(wd, &tl) : NULL;
        if (!wd) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: no WaveFormData", fn, line, l->id);
            break;
        }
        l->v = malloc((size_t)count * 2 + 3);
        if (!b64 || !l->v) {
            free(b64);
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
            break;
        }
        long long got = mrm_base64_decode(b64, tl, (uint8_t *)l->v, (size_t)count * 2 + 3);
        free(b64);
        if (got < 0) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: WaveFormData is not valid base64 (or longer than %lld samples)", fn,
                          mrm_xml_line(wd), l->id, count);
            break;
        }
        if (got != 2 * count) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: WaveFormData holds %lld bytes, LeadSampleCountTotal says %lld samples (%lld bytes)",
                          fn, mrm_xml_line(wd), l->id, got, count, 2 * count);
            break;
        }
        mrm_xml_text(mrm_xml_child(ld, "LeadDataCRC32"), txt, sizeof txt);
        long long crc;
        if (txt[0]) {
            if (mrm_parse_ll_text(txt, &crc) || crc < 0 || crc > 0xFFFFFFFFLL) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s: LeadDataCRC32 '%s' is not a 32-bit number", fn, line, l->id, txt);
                break;
            }
            uint32_t c = mrm_crc32((const uint8_t *)l->v, (size_t)got);
            if (c != (uint32_t)crc) {
                st = mrm_fail(err, MRM_ERR_CHECK, "%s:%ld: lead %s: the samples' CRC-32 is %u, LeadDataCRC32 says %lld", fn, line, l->id, c, crc);
                break;
            }
        }
        /* little-endian on any host */
        const uint8_t *b = (const uint8_t *)l->v;
        for (long long t = count - 1; t >= 0; t--) l->v[t] = (int16_t)(uint16_t)(b[2 * t] | b[2 * t + 1] << 8);
        l->count = count;
        l->per_bit = per_bit;
        l->crc_checked = txt[0] != 0;
    }
    if (!st) {
        for (int i = 1; i < n && !st; i++)
            if (L[i].count != L[0].count)
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s has %lld samples, lead %s %lld: the leads of a waveform must be as long", fn,
                              mrm_xml_line(L[i].node), L[i].id, L[i].count, L[0].id, L[0].count);
        for (int i = 0; i < n && !st; i++)
            for (int j = 0; j < i && !st; j++)
                if (!strcasecmp(L[i].id, L[j].id))
                    st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s appears twice", fn, mrm_xml_line(L[i].node), L[i].id);
        for (int i = 1; i < n && !st; i++)
            if (strcmp(L[i].units, L[0].units))
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: lead %s is in %s, lead %s in %s", fn, mrm_xml_line(L[i].node), L[i].id, L[i].units,
                              L[0].id, L[0].units);
    }
    /* the limb leads MUSE leaves out, from I and II */
    static const char *const limb[4] = {"III", "aVR", "aVL", "aVF"};
    int n_derive = 0, i1 = -1, i2 = -1;
    if (!st) {
        for (int i = 0; i < n; i++) {
            if (!strcasecmp(L[i].id, "I")) i1 = i;
            if (!strcasecmp(L[i].id, "II")) i2 = i;
        }
        if (i1 >= 0 && i2 >= 0)
            for (int j = 0; j < 4; j++) {
                int have = 0;
                for (int i = 0; i < n; i++) have |= !strcasecmp(L[i].id, limb[j]);
                n_derive += !have;
            }
        st = mrm_record_alloc(rec, n + n_derive, L[0].count, fs, "ge-muse", fn, err);
    }
    if (!st) {
        long long T = L[0].count;
        for (int i = 0; i < n; i++) {
            mrm_signal_info *si = &rec->signals[i];
            snprintf(si->description, sizeof si->description, "%s", L[i].id);
            snprintf(si->units, sizeof si->units, "%s", L[i].units);
            si->gain = 1.0 / L[i].per_bit;
            si->format = 16;
            if (L[i].crc_checked) rec->checks[i].checksum_ok = 1; /* a mismatch is an error above */
            double *d = rec->data + (size_t)i * (size_t)T;
            for (long long t = 0; t < T; t++) d[t] = L[i].v[t] * L[i].per_bit;
        }
        int s = n;
        for (int j = 0; j < 4 && n_derive; j++) {
            if (find_lead(rec, n, limb[j]) >= 0) continue;
            mrm_signal_info *si = &rec->signals[s];
            snprintf(si->description, sizeof si->description, "%s", limb[j]);
            snprintf(si->units, sizeof si->units, "%s", L[i1].units);
            si->gain = rec->signals[i1].gain;
            si->derived = 1;
            const double *a = rec->data + (size_t)i1 * (size_t)T, *b = rec->data + (size_t)i2 * (size_t)T;
            double *d = rec->data + (size_t)s * (size_t)T;
            for (long long t = 0; t < T; t++) {
                double I = a[t], II = b[t];
                d[t] = j == 0 ? II - I : j == 1 ? -(I + II) / 2 : j == 2 ? I - II / 2 : II - I / 2;
            }
            s++;
        }
        rec->representative = representative;
    }
    for (int i = 0; i < n; i++) free(L[i].v);
    free(L);
    return st;
}

mrm_status mrm_muse_read(mrm_record *rec, const uint8_t *buf, size_t len, const char *fn, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    xmlDocPtr doc;
    mrm_status st = mrm_xml_parse(buf, len, fn, &doc, err);
    if (st) return st;
    xmlNode *root = xmlDocGetRootElement(doc);
    const char *want = flags & MRM_READ_REPRESENTATIVE ? "Median" : "Rhythm";
    xmlNode *wf = NULL;
    if (strcmp(mrm_xml_name(root), "RestingECG")) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: root element <%s>, not GE MUSE's <RestingECG>", fn, mrm_xml_name(root));
        goto done;
    }
    for (xmlNode *w = mrm_xml_child(root, "Waveform"); w; w = mrm_xml_next(w, "Waveform")) {
        char type[64];
        mrm_xml_text(mrm_xml_child(w, "WaveformType"), type, sizeof type);
        if (!strcasecmp(type, want)) {
            wf = w;
            break;
        }
    }
    if (!wf) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: no <Waveform> of type %s", fn, want);
        goto done;
    }
    st = read_waveform(rec, wf, fn, (flags & MRM_READ_REPRESENTATIVE) != 0, err);
    if (!st) {
        muse_patient(root, rec);
        muse_acquired(root, rec);
        char v[256];
        mrm_xml_text(mrm_xml_path(root, "MuseInfo/MuseVersion"), v, sizeof v);
        if (v[0]) {
            char c[300];
            snprintf(c, sizeof c, "MUSE version: %s", v);
            st = mrm_record_add_comment(rec, c, err);
        }
    }
done:
    xmlFreeDoc(doc);
    if (st) mrm_record_free(rec);
    return st;
}
