/* DICOM ECG waveforms (12-Lead ECG, General ECG and Ambulatory ECG Waveform Storage), explicit and
 * implicit VR little endian, with or without the Part 10 preamble.
 *
 * A hand-written parser: Debian 12 has no maintained C DICOM library (DCMTK, GDCM and Odil are
 * C++; CTN and Papyrus are unmaintained), and a waveform object needs only a small part of the
 * standard: elements, sequences and items of defined or undefined length, and a dozen attributes.
 * Every element's length is checked against the bytes that hold it before it is used; nesting is
 * limited in depth.
 *
 * The samples are those of one multiplex group of the Waveform Sequence (5400,0100): the group of
 * the longest duration (the rhythm, not the median beats), the first on a tie; with
 * MRM_READ_REPRESENTATIVE, the first group whose Multiplex Group Label (003A,0020) says "MEDIAN"
 * or "REPRESENTATIVE". A sample's value is
 * (stored + Channel Baseline) x Channel Sensitivity x Channel Sensitivity Correction Factor, in
 * the Channel Sensitivity Units (as pydicom computes it; those units are the signal's units). Samples
 * equal to the Waveform Padding Value are NaN. Lead names come from the Channel Source Sequence:
 * its SCP-ECG ("5.6.3-9-N") or MDC ("2:N") code, else its code meaning without "Lead " and a
 * parenthesis, else the Channel Label. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/binfmt.h"

#define DCM_MAX_DEPTH 12
#define DCM_MAX_CHANNELS 4096
#define DCM_MAX_GROUPS 64
#define TAG(g, e) (((uint32_t)(g) << 16) | (uint32_t)(e))
#define UNDEFINED 0xFFFFFFFFu

typedef struct {
    const uint8_t *base; /* start of the file, for byte offsets in messages */
    const char *name;
    int explicit_vr;
} dcm_ctx;

typedef struct {
    uint32_t tag;
    char vr[3];
    const uint8_t *val; /* value bytes (for an undefined-length sequence: its items) */
    size_t len;
} dcm_elem;

static int is_long_vr(const char *vr) {
    static const char *const l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof l / sizeof *l; i++)
        if (!memcmp(vr, l[i], 2)) return 1;
    return 0;
}

/* Tags read as sequences when the VR is implicit. */
static int is_known_sq(uint32_t tag) {
    return tag == TAG(0x5400, 0x0100) || tag == TAG(0x003A, 0x0200) || tag == TAG(0x003A, 0x0208) ||
           tag == TAG(0x003A, 0x0211);
}

static mrm_status next_elem(const dcm_ctx *c, const uint8_t **pos, const uint8_t *end, dcm_elem *e, int depth,
                            mrm_error *err);

/* Skips the items of an undefined-length sequence starting at p; sets *items_end to the
 * sequence delimiter and *after past it. */
static mrm_status skip_undefined_seq(const dcm_ctx *c, const uint8_t *p, const uint8_t *end, const uint8_t **items_end,
                                     const uint8_t **after, int depth, mrm_error *err) {
    if (depth > DCM_MAX_DEPTH)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: sequences nested more than %d deep", c->name, p - c->base,
                        DCM_MAX_DEPTH);
    for (;;) {
        if (end - p < 8)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: a sequence of undefined length has no delimiter before the end",
                            c->name, p - c->base);
        uint32_t tag = TAG(binfmt_le16(p), binfmt_le16(p + 2));
        uint32_t len = binfmt_le32(p + 4);
        if (tag == TAG(0xFFFE, 0xE0DD)) {
            *items_end = p;
            *after = p + 8;
            return MRM_OK;
        }
        if (tag != TAG(0xFFFE, 0xE000))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: (%04X,%04X) where a sequence item was expected", c->name,
                            p - c->base, tag >> 16, tag & 0xFFFF);
        p += 8;
        if (len != UNDEFINED) {
            if (len > (size_t)(end - p))
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: an item of %u bytes runs past the end (%td left)",
                                c->name, p - 8 - c->base, len, end - p);
            p += len;
            continue;
        }
        for (;;) { /* an item of undefined length: elements up to the item delimiter */
            if (end - p >= 8 && binfmt_le16(p) == 0xFFFE && binfmt_le16(p + 2) == 0xE00D) {
                p += 8;
                break;
            }
            dcm_elem sub;
            mrm_status st = next_elem(c, &p, end, &sub, depth + 1, err);
            if (st) return st;
        }
    }
}

/* Reads the element at *pos (which must lie before end) and advances past it. */
static mrm_status next_elem(const dcm_ctx *c, const uint8_t **pos, const uint8_t *end, dcm_elem *e, int depth,
                            mrm_error *err) {
    const uint8_t *p = *pos;
    size_t left = (size_t)(end - p);
    if (left < 8)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: %zu bytes cannot hold an element header", c->name, p - c->base,
                        left);
    e->tag = TAG(binfmt_le16(p), binfmt_le16(p + 2));
    uint32_t len;
    int explicit_vr = c->explicit_vr && (e->tag >> 16) != 0xFFFE;
    if (explicit_vr) {
        e->vr[0] = (char)p[4];
        e->vr[1] = (char)p[5];
        e->vr[2] = '\0';
        if (!isupper(p[4]) || !isupper(p[5]))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: (%04X,%04X): VR bytes 0x%02X 0x%02X are not a VR", c->name,
                            p - c->base, e->tag >> 16, e->tag & 0xFFFF, p[4], p[5]);
        if (is_long_vr(e->vr)) {
            if (left < 12)
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: (%04X,%04X): truncated element header", c->name,
                                p - c->base, e->tag >> 16, e->tag & 0xFFFF);
            len = binfmt_le32(p + 8);
            p += 12;
        } else {
            len = binfmt_le16(p + 6);
            p += 8;
        }
    } else {
        len = binfmt_le32(p + 4);
        snprintf(e->vr, sizeof e->vr, "%s", is_known_sq(e->tag) ? "SQ" : "UN");
        p += 8;
    }
    if (len == UNDEFINED) {
        if (explicit_vr && strcmp(e->vr, "SQ") && strcmp(e->vr, "UN"))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: (%04X,%04X): undefined length for VR %s", c->name,
                            *pos - c->base, e->tag >> 16, e->tag & 0xFFFF, e->vr);
        const uint8_t *items_end = NULL, *after = NULL;
        mrm_status st = skip_undefined_seq(c, p, end, &items_end, &after, depth + 1, err);
        if (st) return st;
        e->val = p;
        e->len = (size_t)(items_end - p);
        snprintf(e->vr, sizeof e->vr, "SQ");
        *pos = after;
        return MRM_OK;
    }
    if (len > (size_t)(end - p))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: (%04X,%04X): length %u runs past the end of its %s (%td bytes left)",
                        c->name, *pos - c->base, e->tag >> 16, e->tag & 0xFFFF, len, depth ? "item" : "file", end - p);
    e->val = p;
    e->len = len;
    *pos = p + len;
    return MRM_OK;
}

/* Iterates the items of a sequence value [*pos, end): sets the item's dataset range. Returns 1
 * with an item, 0 at the end, minus the status on error (err set). */
static int next_item(const dcm_ctx *c, const uint8_t **pos, const uint8_t *end, const uint8_t **ib, const uint8_t **ie,
                     int depth, mrm_error *err) {
    const uint8_t *p = *pos;
    if (p >= end) return 0;
    if (end - p < 8) {
        return -(int)mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: truncated sequence item", c->name, p - c->base);
    }
    uint32_t tag = TAG(binfmt_le16(p), binfmt_le16(p + 2)), len = binfmt_le32(p + 4);
    if (tag != TAG(0xFFFE, 0xE000)) {
        return -(int)mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: (%04X,%04X) where a sequence item was expected", c->name,
                              p - c->base, tag >> 16, tag & 0xFFFF);
    }
    p += 8;
    if (len != UNDEFINED) {
        if (len > (size_t)(end - p)) {
            return -(int)mrm_fail(err, MRM_ERR_FORMAT, "%s: byte %td: an item of %u bytes runs past its sequence (%td bytes left)",
                                  c->name, p - 8 - c->base, len, end - p);
        }
        *ib = p;
        *ie = p + len;
        *pos = p + len;
        return 1;
    }
    *ib = p;
    for (;;) {
        if (end - p >= 8 && binfmt_le16(p) == 0xFFFE && binfmt_le16(p + 2) == 0xE00D) {
            *ie = p;
            *pos = p + 8;
            return 1;
        }
        if (p >= end) {
            return -(int)mrm_fail(err, MRM_ERR_FORMAT, "%s: an item of undefined length has no delimiter", c->name);
        }
        dcm_elem sub;
        mrm_status st = next_elem(c, &p, end, &sub, depth + 1, err);
        if (st) return -(int)st;
    }
}

/* ---- values --------------------------------------------------------------------------------- */

static void str_value(const dcm_elem *e, char *out, size_t cap) {
    size_t n = e->len < cap - 1 ? e->len : cap - 1;
    memcpy(out, e->val, n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (out[i] == '\0' || (unsigned char)out[i] < 32) out[i] = ' ';
    while (n && out[n - 1] == ' ') out[--n] = '\0';
    size_t b = 0;
    while (out[b] == ' ') b++;
    if (b) memmove(out, out + b, n - b + 1);
}

/* First value of a DS/IS (backslash-separated); -1 if not a number. */
static int num_value(const dcm_elem *e, double *v) {
    char s[80];
    str_value(e, s, sizeof s);
    char *bs = strchr(s, '\\');
    if (bs) *bs = '\0';
    char *end;
    *v = strtod(s, &end);
    while (*end == ' ') end++;
    return end == s || *end || !isfinite(*v) ? -1 : 0;
}

static int us_value(const dcm_elem *e, long long *v) {
    if (!strcmp(e->vr, "IS")) {
        double d;
        if (num_value(e, &d)) return -1;
        *v = (long long)d;
        return 0;
    }
    if (e->len == 2) *v = binfmt_le16(e->val);
    else if (e->len == 4) *v = binfmt_le32(e->val);
    else return -1;
    return 0;
}

/* ---- channels and groups -------------------------------------------------------------------- */

typedef struct {
    char lead[128], units[128];
    double sens, corr, baseline;
} dcm_channel;

typedef struct {
    long long n_ch, n_samp, bits;
    double fs;
    char interp[8], label[80];
    const uint8_t *data;
    size_t data_len;
    int has_padding;
    long long padding;
    const uint8_t *chdef;
    size_t chdef_len;
    int index;
} dcm_group;

/* Code (0008,0100), scheme (0008,0102) and meaning (0008,0104) of the first item of a code sequence. */
static mrm_status code_item(const dcm_ctx *c, const dcm_elem *seq, char *value, char *scheme, char *meaning, int depth,
                            mrm_error *err) {
    value[0] = scheme[0] = meaning[0] = '\0';
    const uint8_t *pos = seq->val, *end = seq->val + seq->len, *ib, *ie;
    int r = next_item(c, &pos, end, &ib, &ie, depth, err);
    if (r <= 0) return (mrm_status)(-r);
    for (const uint8_t *p = ib; p < ie;) {
        dcm_elem e;
        mrm_status st = next_elem(c, &p, ie, &e, depth + 1, err);
        if (st) return st;
        if (e.tag == TAG(0x0008, 0x0100)) str_value(&e, value, 64);
        else if (e.tag == TAG(0x0008, 0x0102)) str_value(&e, scheme, 64);
        else if (e.tag == TAG(0x0008, 0x0104)) str_value(&e, meaning, 128);
    }
    return MRM_OK;
}

static void lead_name(const char *value, const char *scheme, const char *meaning, const char *label, int k, char *out,
                      size_t cap) {
    int id = -1;
    if (!strcmp(scheme, "SCPECG") && !strncmp(value, "5.6.3-9-", 8)) id = atoi(value + 8);
    else if (!strcmp(scheme, "MDC") && !strncmp(value, "2:", 2)) id = atoi(value + 2);
    if (id > 0 && mrm_binfmt_scp_lead_name(id)) {
        snprintf(out, cap, "%s", mrm_binfmt_scp_lead_name(id));
        return;
    }
    if (meaning[0]) {
        const char *m = !strncmp(meaning, "Lead ", 5) ? meaning + 5 : meaning;
        size_t n = strcspn(m, "(");
        while (n && m[n - 1] == ' ') n--;
        snprintf(out, cap, "%.*s", (int)n, m);
        return;
    }
    if (label[0]) snprintf(out, cap, "%s", label);
    else snprintf(out, cap, "channel %d", k + 1);
}

static mrm_status parse_channels(const dcm_ctx *c, const dcm_group *g, dcm_channel *ch, mrm_error *err) {
    const uint8_t *pos = g->chdef, *end = g->chdef + g->chdef_len, *ib, *ie;
    int k = 0, r;
    while ((r = next_item(c, &pos, end, &ib, &ie, 2, err)) == 1) {
        if (k == g->n_ch)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d: the Channel Definition Sequence has more than the %lld channels of (003A,0005)",
                            c->name, g->index + 1, g->n_ch);
        dcm_channel *d = &ch[k];
        d->sens = 1.0;
        d->corr = 1.0;
        d->baseline = 0.0;
        char value[64] = "", scheme[64] = "", meaning[128] = "", label[80] = "", uv[64], us[64], um[128];
        for (const uint8_t *p = ib; p < ie;) {
            dcm_elem e;
            mrm_status st = next_elem(c, &p, ie, &e, 3, err);
            if (st) return st;
            const char *bad = NULL;
            if (e.tag == TAG(0x003A, 0x0208)) {
                st = code_item(c, &e, value, scheme, meaning, 3, err);
                if (st) return st;
            } else if (e.tag == TAG(0x003A, 0x0203)) {
                str_value(&e, label, sizeof label);
            } else if (e.tag == TAG(0x003A, 0x0210)) {
                if (num_value(&e, &d->sens) || d->sens == 0) bad = "Channel Sensitivity (003A,0210)";
            } else if (e.tag == TAG(0x003A, 0x0212)) {
                if (num_value(&e, &d->corr) || d->corr == 0) bad = "Channel Sensitivity Correction Factor (003A,0212)";
            } else if (e.tag == TAG(0x003A, 0x0213)) {
                if (num_value(&e, &d->baseline)) bad = "Channel Baseline (003A,0213)";
            } else if (e.tag == TAG(0x003A, 0x0211)) {
                st = code_item(c, &e, uv, us, um, 3, err);
                if (st) return st;
                snprintf(d->units, sizeof d->units, "%s", uv[0] ? uv : um);
            }
            if (bad) {
                char s[80];
                str_value(&e, s, sizeof s);
                return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d, channel %d: %s '%s'", c->name, g->index + 1,
                                k + 1, bad, s);
            }
        }
        lead_name(value, scheme, meaning, label, k, d->lead, sizeof d->lead);
        k++;
    }
    if (r < 0) return (mrm_status)(-r);
    if (k != g->n_ch)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d: %d channel definitions for %lld channels (003A,0005)",
                        c->name, g->index + 1, k, g->n_ch);
    return MRM_OK;
}

static mrm_status parse_group(const dcm_ctx *c, const uint8_t *ib, const uint8_t *ie, dcm_group *g, mrm_error *err) {
    int have_fs = 0, have_ch = 0, have_n = 0, have_bits = 0;
    for (const uint8_t *p = ib; p < ie;) {
        dcm_elem e;
        mrm_status st = next_elem(c, &p, ie, &e, 1, err);
        if (st) return st;
        const char *bad = NULL;
        switch (e.tag) {
        case TAG(0x003A, 0x0005): have_ch = !us_value(&e, &g->n_ch); if (!have_ch) bad = "Number of Waveform Channels (003A,0005)"; break;
        case TAG(0x003A, 0x0010): have_n = !us_value(&e, &g->n_samp); if (!have_n) bad = "Number of Waveform Samples (003A,0010)"; break;
        case TAG(0x003A, 0x001A): have_fs = !num_value(&e, &g->fs); if (!have_fs) bad = "Sampling Frequency (003A,001A)"; break;
        case TAG(0x003A, 0x0020): str_value(&e, g->label, sizeof g->label); break;
        case TAG(0x5400, 0x1004): have_bits = !us_value(&e, &g->bits); if (!have_bits) bad = "Waveform Bits Allocated (5400,1004)"; break;
        case TAG(0x5400, 0x1006): str_value(&e, g->interp, sizeof g->interp); break;
        case TAG(0x5400, 0x100A):
            if (e.len == 2) g->padding = (int16_t)binfmt_le16(e.val), g->has_padding = 1;
            else if (e.len == 1) g->padding = (int8_t)e.val[0], g->has_padding = 1;
            else if (e.len == 4) g->padding = (int32_t)binfmt_le32(e.val), g->has_padding = 1;
            break;
        case TAG(0x5400, 0x1010): g->data = e.val; g->data_len = e.len; break;
        case TAG(0x003A, 0x0200): g->chdef = e.val; g->chdef_len = e.len; break;
        default: break;
        }
        if (bad)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d: %s is not a number", c->name, g->index + 1, bad);
    }
    const char *missing = !have_ch ? "Number of Waveform Channels (003A,0005)"
                          : !have_n ? "Number of Waveform Samples (003A,0010)"
                          : !have_fs ? "Sampling Frequency (003A,001A)"
                          : !have_bits ? "Waveform Bits Allocated (5400,1004)"
                          : !g->interp[0] ? "Waveform Sample Interpretation (5400,1006)"
                          : !g->data ? "Waveform Data (5400,1010)"
                          : !g->chdef ? "Channel Definition Sequence (003A,0200)" : NULL;
    if (missing) return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d: no %s", c->name, g->index + 1, missing);
    if (g->n_ch < 1 || g->n_ch > DCM_MAX_CHANNELS)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d: %lld channels (003A,0005)", c->name, g->index + 1, g->n_ch);
    if (g->n_samp < 1)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d: %lld samples (003A,0010)", c->name, g->index + 1, g->n_samp);
    if (!(g->fs > 0) || g->fs > 1e7)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: multiplex group %d: sampling frequency %g (003A,001A)", c->name,
                        g->index + 1, g->fs);
    int ok = (g->bits == 8 && (!strcmp(g->interp, "SB") || !strcmp(g->interp, "UB"))) ||
             (g->bits == 16 && (!strcmp(g->interp, "SS") || !strcmp(g->interp, "US"))) ||
             (g->bits == 32 && (!strcmp(g->interp, "SL") || !strcmp(g->interp, "UL")));
    if (!ok)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: multiplex group %d: %lld-bit samples interpreted as '%s' (5400,1004/1006); "
                                                  "8-bit SB/UB, 16-bit SS/US and 32-bit SL/UL are read",
                        c->name, g->index + 1, g->bits, g->interp);
    unsigned long long need = (unsigned long long)g->n_ch * (unsigned long long)g->n_samp * (unsigned long long)(g->bits / 8);
    if (need / (unsigned long long)g->n_ch / (unsigned long long)(g->bits / 8) != (unsigned long long)g->n_samp ||
        need > g->data_len)
        return mrm_fail(err, MRM_ERR_FORMAT,
                        "%s: multiplex group %d: %lld channels x %lld samples x %lld bytes do not fit in the %zu bytes of Waveform Data (5400,1010)",
                        c->name, g->index + 1, g->n_ch, g->n_samp, g->bits / 8, g->data_len);
    return MRM_OK;
}

static long long sample_at(const dcm_group *g, size_t i) {
    const uint8_t *p = g->data + i * (size_t)(g->bits / 8);
    switch (g->bits) {
    case 8: return g->interp[0] == 'S' ? (long long)(int8_t)p[0] : (long long)p[0];
    case 16: return g->interp[0] == 'S' ? (long long)(int16_t)binfmt_le16(p) : (long long)binfmt_le16(p);
    default: return g->interp[0] == 'S' ? (long long)(int32_t)binfmt_le32(p) : (long long)binfmt_le32(p);
    }
}

/* ---- the dataset ---------------------------------------------------------------------------- */

static void set_datetime(mrm_record *rec, const char *date, const char *time) {
    int y, m, d, hh, mm, ss = 0;
    if (strlen(date) >= 8 && sscanf(date, "%4d%2d%2d", &y, &m, &d) == 3 && y > 0 && y <= 9999 && m >= 1 && m <= 12 &&
        d >= 1 && d <= 31)
        snprintf(rec->base_date, sizeof rec->base_date, "%02u/%02u/%04u", (unsigned)d % 100u, (unsigned)m % 100u,
                 (unsigned)y % 10000u);
    if (strlen(time) >= 4 && sscanf(time, "%2d%2d%2d", &hh, &mm, &ss) >= 2 && hh >= 0 && hh < 24 && mm >= 0 &&
        mm < 60 && ss >= 0 && ss < 61)
        snprintf(rec->base_time, sizeof rec->base_time, "%02u:%02u:%02u", (unsigned)hh % 100u, (unsigned)mm % 100u,
                 (unsigned)ss % 100u);
}

static mrm_status read_dicom(mrm_record *rec, const uint8_t *buf, size_t len, const char *name, int flags,
                             mrm_error *err) {
    dcm_ctx c = {buf, name, 1};
    const uint8_t *p = buf, *end = buf + len;
    char ts[80] = "";
    if (len >= 132 && !memcmp(buf + 128, "DICM", 4)) {
        p = buf + 132;
        while (end - p >= 8 && binfmt_le16(p) == 0x0002) { /* file meta information: explicit VR LE */
            dcm_elem e;
            mrm_status st = next_elem(&c, &p, end, &e, 0, err);
            if (st) return st;
            if (e.tag == TAG(0x0002, 0x0010)) str_value(&e, ts, sizeof ts);
        }
        if (!ts[0]) return mrm_fail(err, MRM_ERR_FORMAT, "%s: the file meta information has no Transfer Syntax UID (0002,0010)", name);
    } else if (len >= 8 && isupper(buf[4]) && isupper(buf[5])) {
        snprintf(ts, sizeof ts, "1.2.840.10008.1.2.1");
    } else {
        snprintf(ts, sizeof ts, "1.2.840.10008.1.2");
    }
    if (!strcmp(ts, "1.2.840.10008.1.2")) c.explicit_vr = 0;
    else if (!strcmp(ts, "1.2.840.10008.1.2.1")) c.explicit_vr = 1;
    else
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: transfer syntax %s (explicit and implicit VR little endian are read)",
                        name, ts);

    char sop[80] = "", age[32] = "", sex[16] = "", dt[64] = "", adate[32] = "", atime[32] = "", cdate[32] = "",
         ctime_[32] = "";
    const dcm_elem *wave = NULL;
    dcm_elem wave_e;
    while (p < end) {
        dcm_elem e;
        mrm_status st = next_elem(&c, &p, end, &e, 0, err);
        if (st) return st;
        switch (e.tag) {
        case TAG(0x0008, 0x0016): str_value(&e, sop, sizeof sop); break;
        case TAG(0x0010, 0x1010): str_value(&e, age, sizeof age); break;
        case TAG(0x0010, 0x0040): str_value(&e, sex, sizeof sex); break;
        case TAG(0x0008, 0x002A): str_value(&e, dt, sizeof dt); break;
        case TAG(0x0008, 0x0022): str_value(&e, adate, sizeof adate); break;
        case TAG(0x0008, 0x0032): str_value(&e, atime, sizeof atime); break;
        case TAG(0x0008, 0x0023): str_value(&e, cdate, sizeof cdate); break;
        case TAG(0x0008, 0x0033): str_value(&e, ctime_, sizeof ctime_); break;
        case TAG(0x5400, 0x0100): wave_e = e; wave = &wave_e; break;
        default: break;
        }
    }
    if (sop[0] && strncmp(sop, "1.2.840.10008.5.1.4.1.1.9.1.", 28))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: SOP Class UID (0008,0016) %s is not an ECG waveform (1.2.840.10008.5.1.4.1.1.9.1.x)",
                        name, sop);
    if (!wave) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no Waveform Sequence (5400,0100)", name);

    dcm_group groups[DCM_MAX_GROUPS];
    int n_groups = 0, r, best = -1, median = -1;
    const uint8_t *pos = wave->val, *wend = wave->val + wave->len, *ib, *ie;
    while ((r = next_item(&c, &pos, wend, &ib, &ie, 1, err)) == 1) {
        if (n_groups == DCM_MAX_GROUPS)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: Waveform Sequence (5400,0100): more than %d multiplex groups", name,
                            DCM_MAX_GROUPS);
        dcm_group *g = &groups[n_groups];
        memset(g, 0, sizeof *g);
        g->index = n_groups;
        mrm_status st = parse_group(&c, ib, ie, g, err);
        if (st) return st;
        if (best < 0 || g->n_samp / g->fs > groups[best].n_samp / groups[best].fs) best = n_groups;
        if (median < 0 && (strcasestr(g->label, "MEDIAN") || strcasestr(g->label, "REPRESENTATIVE"))) median = n_groups;
        n_groups++;
    }
    if (r < 0) return (mrm_status)(-r);
    if (best < 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: the Waveform Sequence (5400,0100) has no multiplex group", name);
    if (flags & MRM_READ_REPRESENTATIVE) {
        if (median < 0)
            return mrm_fail(err, MRM_ERR_NOTFOUND, "%s: no multiplex group labelled as median or representative beats", name);
        best = median;
        rec->representative = 1;
    }
    const dcm_group *g = &groups[best];
    dcm_channel *ch = calloc((size_t)g->n_ch, sizeof *ch);
    if (!ch) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
    mrm_status st = parse_channels(&c, g, ch, err);
    if (!st) st = mrm_binfmt_record_alloc(rec, (int)g->n_ch, g->n_samp, flags & MRM_READ_HEADER_ONLY, name, err);
    if (st) {
        free(ch);
        return st;
    }
    rec->fs = g->fs;
    for (int k = 0; k < g->n_ch; k++) {
        mrm_signal_info *si = &rec->signals[k];
        snprintf(si->description, sizeof si->description, "%s", ch[k].lead);
        double per_unit = ch[k].sens * ch[k].corr;
        snprintf(si->units, sizeof si->units, "%.31s", ch[k].units);
        si->gain = 1.0 / per_unit;
        si->baseline = (int)lrint(fmax(fmin(-ch[k].baseline, 1e9), -1e9));
        si->format = (int)g->bits;
        si->adc_res = (int)g->bits;
        if (!(flags & MRM_READ_HEADER_ONLY)) {
            double *out = rec->data + (size_t)k * (size_t)g->n_samp;
            for (long long t = 0; t < g->n_samp; t++) {
                long long v = sample_at(g, (size_t)t * (size_t)g->n_ch + (size_t)k);
                out[t] = g->has_padding && v == g->padding ? NAN : (v + ch[k].baseline) * per_unit;
            }
        }
    }
    free(ch);
    if (n_groups > 1) {
        rec->comments = calloc(1, sizeof *rec->comments);
        char line[256];
        snprintf(line, sizeof line, "multiplex group %d of %d (%s) read", best + 1, n_groups, g->label[0] ? g->label : "no label");
        if (!rec->comments || !(rec->comments[0] = strdup(line)))
            return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
        rec->n_comments = 1;
    }
    /* patient and acquisition */
    int a = 0;
    char unit = 0;
    if (sscanf(age, "%3d%c", &a, &unit) == 2 && a >= 0)
        rec->age = unit == 'Y' ? a : (unit == 'M' || unit == 'W' || unit == 'D') ? 0 : -1;
    if (!strcmp(sex, "M")) snprintf(rec->sex, sizeof rec->sex, "Male");
    else if (!strcmp(sex, "F")) snprintf(rec->sex, sizeof rec->sex, "Female");
    if (strlen(dt) >= 8) {
        char d8[9];
        memcpy(d8, dt, 8);
        d8[8] = '\0';
        set_datetime(rec, d8, dt + 8);
    } else if (adate[0]) {
        set_datetime(rec, adate, atime);
    } else {
        set_datetime(rec, cdate, ctime_);
    }
    return MRM_OK;
}

int mrm_dicom_sniff(const uint8_t *buf, size_t len) {
    return len >= 132 && !memcmp((const uint8_t *)buf + 128, "DICM", 4);
}

mrm_status mrm_dicom_read_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *name, int flags,
                              mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    name = name ? name : "(memory)";
    mrm_status st = read_dicom(rec, buf, len, name, flags, err);
    if (st) {
        mrm_record_free(rec);
        return st;
    }
    mrm_binfmt_record_name(rec, name);
    mrm_binfmt_finish(rec, "dicom");
    return MRM_OK;
}

mrm_status mrm_dicom_read_file(mrm_record *rec, const char *path, int flags, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    char *data = NULL;
    size_t len = 0;
    mrm_status st = mrm_read_file(path, BINFMT_MAX_FILE_BYTES, &data, &len, err);
    if (st) return st;
    st = mrm_dicom_read_mem(rec, (const uint8_t *)data, len, path, flags, err);
    free(data);
    return st;
}
