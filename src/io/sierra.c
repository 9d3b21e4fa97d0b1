/* Philips Sierra ECG XML 1.03, 1.04 and 1.04.01 (root restingecgdata, namespace
 * http://www3.medical.philips.com). The rhythm is <waveforms><parsedwaveforms>: plain integers,
 * base64 of little-endian int16, or base64 of XLI-compressed leads.
 *
 * XLI, as published by C. A. Watford's sierra-ecg-tools: the leads follow one another, each an
 * 8-byte header (int32 LE byte count of the compressed block, a 16-bit word of unknown use, int16
 * LE first delta) and the block: LZW with fixed 10-bit codes read most-significant bit first,
 * a dictionary of the 256 bytes plus up to 767 entries, code 1023 ending the stream. The output
 * bytes are the high bytes of the 16-bit delta codes, then their low bytes. The deltas are second
 * differences with a bias of 64:
 *   v[0], v[1] as stored; last = first delta; for i >= 2: v[i] = 2 v[i-1] - v[i-2] - last,
 *   last = code[i] - 64.
 * With the standard lead order, leads III, aVR, aVL and aVF are stored as what is left after
 * their values from I and II (integer halves truncated toward zero):
 *   III = II - I - r3,  aVR = -r4 - (I + II) / 2,  aVL = (I - III) / 2 - r5,  aVF = (II + III) / 2 - r6.
 * A PageWriter file's 11 s end with a calibration second; the record keeps the 10 s of ECG. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "io/formats.h"
#include "io/xmlutil.h"

#define SIERRA_NS "http://www3.medical.philips.com"
#define SIERRA_MAX_LEADS 16
#define SIERRA_MAX_SAMPLES (1LL << 24)
#define LZW_BITS 10
#define LZW_MAX_CODE ((1 << LZW_BITS) - 2) /* 1022; 1023 ends the stream */

int mrm_sierra_sniff(const uint8_t *buf, size_t len) {
    char root[64], ns[128];
    return mrm_xml_root(buf, len, root, sizeof root, ns, sizeof ns) == 0 && !strcmp(root, "restingecgdata") &&
           (!ns[0] || !strcmp(ns, SIERRA_NS));
}

/* ---- XLI --------------------------------------------------------------------------------------- */

/* The LZW dictionary: each entry is a previous entry plus one byte. */
typedef struct lzw_dict {
    uint16_t prefix[LZW_MAX_CODE + 1];
    uint8_t last[LZW_MAX_CODE + 1];
    uint8_t first[LZW_MAX_CODE + 1];
    uint16_t len[LZW_MAX_CODE + 1];
} lzw_dict;

/* Writes entry `code` (length d->len[code]) at out. */
static void lzw_emit(const lzw_dict *d, int code, uint8_t *out) {
    for (int k = d->len[code] - 1; k >= 0; k--) {
        out[k] = d->last[code];
        code = d->prefix[code];
    }
}

/* Decompresses one block into out (room for cap bytes); returns the byte count, -1 for a code that
 * refers to no entry, -2 for more than cap bytes. */
static long long lzw_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, lzw_dict *d) {
    for (int i = 0; i < 256; i++) d->prefix[i] = 0, d->last[i] = d->first[i] = (uint8_t)i, d->len[i] = 1;
    int next = 256, prev = -1;
    size_t k = 0;
    uint64_t bits = 0;
    int nbits = 0;
    size_t pos = 0;
    for (;;) {
        while (nbits < LZW_BITS && pos < n) {
            bits = bits << 8 | in[pos++];
            nbits += 8;
        }
        if (nbits < LZW_BITS) break; /* the trailing bits of the last byte */
        int code = (int)(bits >> (nbits - LZW_BITS)) & ((1 << LZW_BITS) - 1);
        nbits -= LZW_BITS;
        if (code > LZW_MAX_CODE) break;
        int len;
        uint8_t first;
        if (code < next) {
            len = d->len[code];
            first = d->first[code];
        } else if (code == next && prev >= 0) {
            len = d->len[prev] + 1; /* the previous string plus its own first byte */
            first = d->first[prev];
        } else {
            return -1;
        }
        if ((size_t)len > cap - k) return -2;
        if (code < next) {
            lzw_emit(d, code, out + k);
        } else {
            lzw_emit(d, prev, out + k);
            out[k + (size_t)len - 1] = first;
        }
        if (prev >= 0 && next <= LZW_MAX_CODE) {
            d->prefix[next] = (uint16_t)prev;
            d->last[next] = first;
            d->first[next] = d->first[prev];
            d->len[next] = (uint16_t)(d->len[prev] + 1);
            next++;
        }
        k += (size_t)len;
        prev = code;
    }
    return (long long)k;
}

/* Decodes the XLI leads of `data` into leads[n_leads][n_samples] (digital values). */
static mrm_status xli_decode(const uint8_t *data, size_t n, int n_leads, long long n_samples, int32_t *leads, const char *fn,
                             mrm_error *err) {
    size_t cap = (size_t)n_samples * 2 + 2;
    uint8_t *bytes = malloc(cap);
    lzw_dict *d = malloc(sizeof *d);
    if (!bytes || !d) {
        free(bytes), free(d);
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
    }
    mrm_status st = MRM_OK;
    size_t off = 0;
    for (int l = 0; l < n_leads && !st; l++) {
        if (n - off < 8) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: XLI: the data ends after %d of %d leads (no header for lead %d at byte %zu)", fn, l, n_leads,
                          l + 1, off);
            break;
        }
        const uint8_t *h = data + off;
        int32_t size = (int32_t)((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24);
        int16_t start = (int16_t)(uint16_t)(h[6] | h[7] << 8);
        off += 8;
        if (size < 0 || (size_t)size > n - off) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: XLI: lead %d: block of %d bytes at byte %zu, the data has %zu left", fn, l + 1, size, off,
                          n - off);
            break;
        }
        long long got = lzw_decode(data + off, (size_t)size, bytes, cap, d);
        off += (size_t)size;
        if (got == -1) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: XLI: lead %d: broken LZW stream (a code that names no entry)", fn, l + 1);
            break;
        }
        /* the samples: (got + 1) / 2 codes; more than the record holds is an error, fewer too */
        long long codes = got < 0 ? -1 : (got + 1) / 2;
        if (got == -2 || codes > n_samples + 1) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: XLI: lead %d decompresses to more than the %lld samples the file states", fn, l + 1, n_samples);
            break;
        }
        if (codes < n_samples) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: XLI: lead %d holds %lld samples, the file states %lld", fn, l + 1, codes, n_samples);
            break;
        }
        int32_t *v = leads + (size_t)l * (size_t)n_samples;
        /* second differences in 64 bits: a hostile stream can drive the running value past any int. Values are kept
         * within +-2^28 so that deriving III, aVR, aVL and aVF from them below cannot overflow either. */
        int64_t x = 0, y = 0, last = start;
        for (long long i = 0; i < n_samples; i++) {
            long long j = codes + i;
            int16_t c = (int16_t)(uint16_t)(bytes[i] << 8 | (j < got ? bytes[j] : 0));
            if (i < 2) {
                v[i] = c;
                if (i == 0) x = c;
                else y = c;
                continue;
            }
            int64_t z = 2 * y - x - last;
            if (z > (INT64_C(1) << 28) || z < -(INT64_C(1) << 28)) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: XLI: lead %d: sample %lld decodes to %lld, outside any ECG's range", fn, l + 1, i + 1,
                              (long long)z);
                break;
            }
            last = (int64_t)c - 64;
            v[i] = (int32_t)z;
            x = y;
            y = z;
        }
    }
    free(bytes);
    free(d);
    return st;
}

/* ---- the document -------------------------------------------------------------------------------- */

static int attr_or_child(xmlNode *el, xmlNode *alt, const char *name, char *out, size_t outsz) {
    if (mrm_xml_attr(el, name, out, outsz)) return 1;
    xmlNode *c = mrm_xml_child(alt, name);
    if (!c) return 0;
    mrm_xml_text(c, out, outsz);
    return 1;
}

static void sierra_meta(xmlNode *root, mrm_record *rec) {
    xmlNode *da = mrm_xml_child(root, "dataacquisition");
    char d[32], t[32];
    mrm_xml_attr(da, "date", d, sizeof d);
    mrm_xml_attr(da, "time", t, sizeof t);
    int y, mo, dd, h = 0, mi = 0, s = 0;
    if (sscanf(d, "%4d-%2d-%2d", &y, &mo, &dd) == 3 && mo >= 1 && mo <= 12 && dd >= 1 && dd <= 31) {
        if (t[0] && (sscanf(t, "%2d:%2d:%2d", &h, &mi, &s) < 2 || h > 23 || mi > 59 || s > 60)) h = mi = s = 0;
        snprintf(rec->acquired, sizeof rec->acquired, "%04d-%02d-%02dT%02d:%02d:%02d", y % 10000, mo, dd, h % 100, mi % 100, s % 100);
    }
    xmlNode *gp = mrm_xml_path(root, "patient/generalpatientdata");
    char v[64];
    mrm_xml_text(mrm_xml_child(gp, "sex"), v, sizeof v);
    if (!strcasecmp(v, "Male")) snprintf(rec->sex, sizeof rec->sex, "Male");
    else if (!strcasecmp(v, "Female")) snprintf(rec->sex, sizeof rec->sex, "Female");
    xmlNode *age = mrm_xml_child(gp, "age");
    long long a;
    mrm_xml_text(mrm_xml_child(age, "years"), v, sizeof v);
    if (v[0] && !mrm_parse_ll_text(v, &a) && a >= 0 && a < 150) {
        rec->age = (int)a;
    } else {
        int by, bm, bd;
        mrm_xml_text(mrm_xml_child(age, "dateofbirth"), v, sizeof v);
        if (rec->acquired[0] && sscanf(v, "%4d-%2d-%2d", &by, &bm, &bd) == 3) {
            int years = y - by - (mo < bm || (mo == bm && dd < bd));
            if (years >= 0 && years < 150) rec->age = years;
        }
    }
}

static const char *const std_leads[12] = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};

mrm_status mrm_sierra_read(mrm_record *rec, const uint8_t *buf, size_t len, const char *fn, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    if (flags & MRM_READ_REPRESENTATIVE)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: representative beats are read from HL7 aECG, GE MUSE and SCP-ECG files, not Philips Sierra XML",
                        fn);
    xmlDocPtr doc;
    mrm_status st = mrm_xml_parse(buf, len, fn, &doc, err);
    if (st) return st;
    xmlNode *root = xmlDocGetRootElement(doc);
    char txt[256], version[32];
    int32_t *digital = NULL;
    uint8_t *bytes = NULL;
    char *text = NULL;
    char labels[SIERRA_MAX_LEADS][32];
    if (strcmp(mrm_xml_name(root), "restingecgdata")) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: root element <%s>, not Philips Sierra's <restingecgdata>", fn, mrm_xml_name(root));
        goto done;
    }
    mrm_xml_text(mrm_xml_path(root, "documentinfo/documentversion"), version, sizeof version);
    if (strcmp(version, "1.03") && strcmp(version, "1.04") && strcmp(version, "1.04.01") && strcmp(version, "1.04.02")) {
        st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: Sierra ECG XML version '%s' (1.03, 1.04 and 1.04.01 are read)", fn, version);
        goto done;
    }
    xmlNode *sc = mrm_xml_path(root, "dataacquisition/signalcharacteristics");
    xmlNode *pw = mrm_xml_path(root, "waveforms/parsedwaveforms");
    if (!pw) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: no <waveforms><parsedwaveforms>", fn);
        goto done;
    }
    long line = mrm_xml_line(pw);
    /* the rate, resolution, offset and lead count: on parsedwaveforms (1.04) or in signalcharacteristics */
    double fs, res, offset = 0, dur;
    long long n_leads;
    if (!(mrm_xml_attr(pw, "samplespersecond", txt, sizeof txt) || attr_or_child(NULL, sc, "samplingrate", txt, sizeof txt)) ||
        mrm_parse_double_text(txt, &fs) || !(fs > 0) || fs > 1e5) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: sampling rate '%s' is not a rate", fn, line, txt);
        goto done;
    }
    if (!(mrm_xml_attr(pw, "resolution", txt, sizeof txt) || attr_or_child(NULL, sc, "resolution", txt, sizeof txt) ||
          attr_or_child(NULL, sc, "signalresolution", txt, sizeof txt)) ||
        mrm_parse_double_text(txt, &res) || !(res > 0) || res > 1e6) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: resolution '%s' is not a positive number of uV", fn, line, txt);
        goto done;
    }
    if ((mrm_xml_attr(pw, "signaloffset", txt, sizeof txt) || attr_or_child(NULL, sc, "signaloffset", txt, sizeof txt)) &&
        (mrm_parse_double_text(txt, &offset) || fabs(offset) > 1e9)) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: signaloffset '%s' is not a number", fn, line, txt);
        goto done;
    }
    if ((mrm_xml_attr(pw, "bitspersample", txt, sizeof txt) || attr_or_child(NULL, sc, "bitspersample", txt, sizeof txt)) && strcmp(txt, "16")) {
        st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: %s bits per sample (16 are read)", fn, line, txt);
        goto done;
    }
    if (!mrm_xml_attr(pw, "numberofleads", txt, sizeof txt) && !attr_or_child(NULL, sc, "numberchannelsallocated", txt, sizeof txt)) txt[0] = '\0';
    if (mrm_parse_ll_text(txt, &n_leads) || n_leads < 1 || n_leads > SIERRA_MAX_LEADS) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: number of leads '%s' (1..%d)", fn, line, txt, SIERRA_MAX_LEADS);
        goto done;
    }
    if (!mrm_xml_attr(pw, "durationperchannel", txt, sizeof txt) || mrm_parse_double_text(txt, &dur) || !(dur > 0)) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: durationperchannel '%s' is not a duration in ms", fn, line, txt);
        goto done;
    }
    double ns_d = dur * fs / 1000.0;
    if (ns_d > (double)SIERRA_MAX_SAMPLES || fabs(ns_d - round(ns_d)) > 1e-6) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: durationperchannel %s ms at %g Hz is not a whole count of samples up to %lld", fn, line, txt, fs,
                      SIERRA_MAX_SAMPLES);
        goto done;
    }
    long long T = llround(ns_d);
    /* lead names: leadlabels (1.04), else the standard order */
    for (int l = 0; l < n_leads; l++) {
        if (l < 12) snprintf(labels[l], sizeof labels[l], "%s", std_leads[l]);
        else snprintf(labels[l], sizeof labels[l], "channel %d", l + 1);
    }
    if (mrm_xml_attr(pw, "leadlabels", txt, sizeof txt)) {
        int l = 0;
        char *save = NULL;
        for (char *p = strtok_r(txt, " \t\r\n", &save); p; p = strtok_r(NULL, " \t\r\n", &save), l++)
            if (l < n_leads) snprintf(labels[l], sizeof labels[l], "%s", p);
        if (l != n_leads) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: leadlabels names %d leads, numberofleads says %lld", fn, line, l, n_leads);
            goto done;
        }
    }
    char enc[32], comp[32], flag[16];
    mrm_xml_attr(pw, "dataencoding", enc, sizeof enc);
    if (!mrm_xml_attr(pw, "compression", comp, sizeof comp)) {
        mrm_xml_attr(pw, "compressmethod", comp, sizeof comp);
        if (mrm_xml_attr(pw, "compressflag", flag, sizeof flag) && strcasecmp(flag, "True")) comp[0] = '\0';
    }
    if (!strcasecmp(comp, "None")) comp[0] = '\0';
    size_t tl;
    text = mrm_xml_text_dup(pw, &tl);
    if (!text) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
        goto done;
    }
    /* What the element's text can hold, before anything is allocated for the stated size: plain
     * text needs two characters a value, uncompressed base64 4/3 characters a byte, and an LZW
     * stream of k codes (each at least one base64 character) decodes to at most k(k+1)/2 bytes. */
    {
        double values = (double)n_leads * (double)T, most;
        if (!strcasecmp(enc, "Plain")) most = (double)tl / 2.0 + 1.0;
        else if (!comp[0]) most = (double)tl * 3.0 / 8.0 + 2.0;
        else most = ((double)tl * ((double)tl + 1.0) / 2.0 + (double)tl) / 2.0;
        if (values > most) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: parsedwaveforms: %lld leads x %lld samples stated, the element's %zu characters hold at most %.0f",
                          fn, line, n_leads, T, tl, most);
            goto done;
        }
    }
    digital = malloc((size_t)n_leads * (size_t)T * sizeof *digital);
    if (!digital) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
        goto done;
    }
    if (!strcasecmp(enc, "Plain")) {
        if (comp[0]) {
            st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: plain data compressed with '%s'", fn, line, comp);
            goto done;
        }
        long long k = 0, want = n_leads * T;
        char *p = text, *e;
        while (*p) {
            while (isspace((unsigned char)*p)) p++;
            if (!*p) break;
            long v = strtol(p, &e, 10);
            if (e == p || (*e && !isspace((unsigned char)*e)) || v < -32768 || v > 65535) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: plain data: item %lld is not a 16-bit integer", fn, line, k + 1);
                goto done;
            }
            if (k >= want) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: plain data holds more than %lld leads x %lld samples", fn, line, n_leads, T);
                goto done;
            }
            digital[k++] = (int32_t)v;
            p = e;
        }
        if (k != want) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: plain data holds %lld values, %lld leads x %lld samples expected", fn, line, k, n_leads, T);
            goto done;
        }
    } else if (!strcasecmp(enc, "Base64")) {
        size_t cap = tl / 4 * 3 + 3;
        bytes = malloc(cap ? cap : 1);
        long long nb = bytes ? mrm_base64_decode(text, tl, bytes, cap) : -2;
        if (nb == -2) {
            st = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", fn);
            goto done;
        }
        if (nb < 0) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: parsedwaveforms is not valid base64", fn, line);
            goto done;
        }
        if (!strcasecmp(comp, "XLI")) {
            st = xli_decode(bytes, (size_t)nb, (int)n_leads, T, digital, fn, err);
            if (st) goto done;
            /* III, aVR, aVL, aVF are stored as residuals when the leads are in the standard order */
            int standard = n_leads >= 6;
            for (int l = 0; l < 6 && standard; l++) standard = !strcmp(labels[l], std_leads[l]);
            if (standard) {
                int32_t *I = digital, *II = digital + T, *III = digital + 2 * T, *R = digital + 3 * T, *L = digital + 4 * T, *F = digital + 5 * T;
                for (long long t = 0; t < T; t++) {
                    III[t] = II[t] - I[t] - III[t];
                    R[t] = -R[t] - (I[t] + II[t]) / 2;
                    L[t] = (I[t] - III[t]) / 2 - L[t];
                    F[t] = (II[t] + III[t]) / 2 - F[t];
                }
            }
        } else if (!comp[0]) {
            if (nb != 2 * n_leads * T) {
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: parsedwaveforms holds %lld bytes, %lld leads x %lld int16 samples expected", fn, line, nb,
                              n_leads, T);
                goto done;
            }
            for (long long i = 0; i < n_leads * T; i++) digital[i] = (int16_t)(uint16_t)(bytes[2 * i] | bytes[2 * i + 1] << 8);
        } else {
            st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: compression '%s' (XLI or none are read)", fn, line, comp);
            goto done;
        }
    } else {
        st = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%ld: dataencoding '%s' (Base64 or Plain are read)", fn, line, enc);
        goto done;
    }
    /* PageWriter files hold 11 s: 10 s of ECG, then a second that ends with the 1 mV calibration
     * pulse (every lead at the same value for 0.2 s). That second is not ECG: the record keeps the
     * first 10 s when it holds such a pulse. */
    long long T_ecg = T, ten = llround(10.0 * fs);
    int calibration = 0;
    if (T > ten) {
        long long run = 0, need = llround(0.05 * fs) > 2 ? llround(0.05 * fs) : 2;
        for (long long t = ten; t < T && !calibration; t++) {
            int same = digital[t] != 0 && (t == ten || digital[t] == digital[t - 1]);
            for (int l = 1; l < n_leads && same; l++) same = digital[(size_t)l * (size_t)T + (size_t)t] == digital[t];
            run = same ? run + 1 : 0;
            calibration = run >= need;
        }
        if (calibration) T_ecg = ten;
    }
    if ((st = mrm_record_alloc(rec, (int)n_leads, T_ecg, fs, "philips-sierra", fn, err))) goto done;
    for (int l = 0; l < n_leads; l++) {
        mrm_signal_info *si = &rec->signals[l];
        snprintf(si->description, sizeof si->description, "%s", labels[l]);
        snprintf(si->units, sizeof si->units, "uV");
        si->gain = 1.0 / res;
        si->baseline = (int)llround(offset);
        si->format = 16;
        double *d = rec->data + (size_t)l * (size_t)T_ecg;
        const int32_t *v = digital + (size_t)l * (size_t)T;
        for (long long t = 0; t < T_ecg; t++) d[t] = ((double)v[t] - offset) * res;
    }
    sierra_meta(root, rec);
    snprintf(txt, sizeof txt, "Sierra ECG XML version: %s", version);
    st = mrm_record_add_comment(rec, txt, err);
    if (!st && calibration) {
        snprintf(txt, sizeof txt, "the file's last %.3g s (ending with the calibration pulse) are not part of the record", (T - T_ecg) / fs);
        st = mrm_record_add_comment(rec, txt, err);
    }
done:
    free(digital);
    free(bytes);
    free(text);
    xmlFreeDoc(doc);
    if (st) mrm_record_free(rec);
    return st;
}
