/* The registry of ECG file formats read from memory, the content tests that pick one, and the
 * helpers their readers share. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "io/binfmt.h"
#include "io/formats.h"
#include "io/wfdb.h"

/* Binary formats first (their magic bytes are cheap to test), then XML by root element. */
const mrm_format mrm_formats[] = {
    {"scp-ecg", "SCP-ECG", mrm_scp_sniff, mrm_scp_read_mem, NULL},
    {"dicom", "DICOM ECG waveform", mrm_dicom_sniff, mrm_dicom_read_mem, NULL},
    {"edf", "EDF/EDF+", mrm_edf_sniff, mrm_edf_read_mem, mrm_edf_read_file},
    {"hl7-aecg", "HL7 aECG XML", mrm_aecg_sniff, mrm_aecg_read, NULL},
    {"ge-muse", "GE MUSE XML", mrm_muse_sniff, mrm_muse_read, NULL},
    {"philips-sierra", "Philips Sierra ECG XML", mrm_sierra_sniff, mrm_sierra_read, NULL},
    {"matlab-v5", "MATLAB v5 (CPSC2018)", mat_cpsc_v5_sniff, mat_read_cpsc_v5_mem, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

const mrm_format *mrm_format_sniff(const uint8_t *buf, size_t len) {
    if (!buf) return NULL;
    if (len > MRM_FORMAT_SNIFF_BYTES) len = MRM_FORMAT_SNIFF_BYTES;
    for (const mrm_format *f = mrm_formats; f->name; f++)
        if (f->sniff(buf, len)) return f;
    return NULL;
}

mrm_status mrm_record_alloc(mrm_record *rec, int n_signals, long long n_samples, double fs, const char *format,
                            const char *filename, mrm_error *err) {
    if (n_signals < 1 || n_signals > 4096)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %d signals (1..4096 are read)", filename, n_signals);
    if (n_samples < 0 || n_samples > (1LL << 40) / n_signals)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %d signals of %lld samples: too many", filename, n_signals, n_samples);
    if (!(fs > 0) || !isfinite(fs) || fs > 1e6)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: sampling frequency %g Hz (0 < fs <= 1e6 needed)", filename, fs);
    size_t total = (size_t)n_signals * (size_t)(n_samples ? n_samples : 1);
    rec->signals = calloc((size_t)n_signals, sizeof *rec->signals);
    rec->checks = calloc((size_t)n_signals, sizeof *rec->checks);
    rec->data = malloc(total * sizeof *rec->data);
    if (!rec->signals || !rec->checks || !rec->data) {
        free(rec->signals), free(rec->checks), free(rec->data);
        rec->signals = NULL, rec->checks = NULL, rec->data = NULL;
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %d signals of %lld samples", filename, n_signals, n_samples);
    }
    for (size_t i = 0; i < total; i++) rec->data[i] = NAN;
    for (int s = 0; s < n_signals; s++) {
        rec->checks[s].checksum_ok = -1;
        rec->checks[s].init_value_ok = -1;
        rec->signals[s].gain = 1.0;
    }
    rec->n_signals = n_signals;
    rec->n_samples = n_samples;
    rec->fs = fs;
    snprintf(rec->format, sizeof rec->format, "%s", format);
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    const char *dot = strrchr(base, '.');
    int n = dot && dot > base ? (int)(dot - base) : (int)strlen(base);
    snprintf(rec->name, sizeof rec->name, "%.*s", n, base);
    return MRM_OK;
}

mrm_status mrm_record_add_comment(mrm_record *rec, const char *text, mrm_error *err) {
    char **grown = realloc(rec->comments, sizeof *grown * (size_t)(rec->n_comments + 1));
    if (!grown) return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    rec->comments = grown;
    if (!(rec->comments[rec->n_comments] = strdup(text))) return mrm_fail(err, MRM_ERR_NOMEM, "out of memory");
    rec->n_comments++;
    return MRM_OK;
}

/* ---- XML root element ---------------------------------------------------------------------- */

static int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static int is_name_char(uint8_t c) {
    return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == ':';
}

/* Position just after the first occurrence of `pat` at or after i, or len if none. */
static size_t skip_past(const uint8_t *b, size_t len, size_t i, const char *pat) {
    size_t m = strlen(pat);
    for (; i + m <= len; i++)
        if (!memcmp(b + i, pat, m)) return i + m;
    return len;
}

static void copy_out(char *out, size_t outsz, const uint8_t *s, size_t n) {
    if (!outsz) return;
    if (n >= outsz) n = outsz - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int mrm_xml_root(const uint8_t *b, size_t len, char *local, size_t localsz, char *ns, size_t nssz) {
    if (localsz) local[0] = '\0';
    if (nssz) ns[0] = '\0';
    /* UTF-16 (with a byte-order mark, or "<?" as 16-bit units): test the ASCII of its units */
    int le = len >= 4 && ((b[0] == 0xFF && b[1] == 0xFE) || (b[0] == '<' && b[1] == 0 && b[2] == '?' && b[3] == 0));
    int be = len >= 4 && ((b[0] == 0xFE && b[1] == 0xFF) || (b[0] == 0 && b[1] == '<' && b[2] == 0 && b[3] == '?'));
    if (le || be) {
        size_t n = len / 2;
        uint8_t *a = malloc(n ? n : 1);
        if (!a) return -1;
        for (size_t k = 0; k < n; k++) {
            unsigned u = le ? (unsigned)b[2 * k] | (unsigned)b[2 * k + 1] << 8 : (unsigned)b[2 * k] << 8 | (unsigned)b[2 * k + 1];
            a[k] = u == 0xFEFF ? ' ' : u < 0x80 ? (uint8_t)u : 0x80;
        }
        int r = mrm_xml_root(a, n, local, localsz, ns, nssz);
        free(a);
        return r;
    }
    size_t i = 0;
    if (len >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) i = 3;
    for (;;) {
        while (i < len && is_space(b[i])) i++;
        if (i >= len || b[i] != '<') return -1;
        if (i + 1 < len && b[i + 1] == '?') {
            i = skip_past(b, len, i + 2, "?>");
        } else if (i + 3 < len && !memcmp(b + i, "<!--", 4)) {
            i = skip_past(b, len, i + 4, "-->");
        } else if (i + 1 < len && b[i + 1] == '!') {
            /* DOCTYPE, possibly with an internal subset in brackets */
            int depth = 0;
            for (i += 2; i < len; i++) {
                if (b[i] == '[') depth++;
                else if (b[i] == ']') depth--;
                else if (b[i] == '>' && depth <= 0) break;
            }
            if (i < len) i++;
        } else {
            break;
        }
        if (i >= len) return -1;
    }
    size_t n0 = ++i;
    while (i < len && is_name_char(b[i])) i++;
    if (i == n0 || i >= len) return -1;
    size_t n1 = i, colon = n0;
    for (size_t k = n0; k < n1; k++)
        if (b[k] == ':') colon = k + 1;
    copy_out(local, localsz, b + colon, n1 - colon);
    /* the prefix the name uses ("" for the default namespace) */
    size_t plen = colon > n0 ? colon - 1 - n0 : 0;
    /* attributes up to the end of the tag */
    while (i < len && b[i] != '>') {
        while (i < len && is_space(b[i])) i++;
        size_t a0 = i;
        while (i < len && is_name_char(b[i])) i++;
        size_t a1 = i;
        if (a1 == a0) {
            if (i < len && b[i] != '>') i++;
            continue;
        }
        while (i < len && is_space(b[i])) i++;
        if (i >= len || b[i] != '=') continue;
        i++;
        while (i < len && is_space(b[i])) i++;
        if (i >= len || (b[i] != '"' && b[i] != '\'')) return -1;
        uint8_t q = b[i++];
        size_t v0 = i;
        while (i < len && b[i] != q) i++;
        if (i >= len) return -1;
        size_t v1 = i++;
        size_t an = a1 - a0;
        int match = plen == 0 ? an == 5 && !memcmp(b + a0, "xmlns", 5)
                              : an == 6 + plen && !memcmp(b + a0, "xmlns:", 6) && !memcmp(b + a0 + 6, b + n0, plen);
        if (match) copy_out(ns, nssz, b + v0, v1 - v0);
    }
    return 0;
}
