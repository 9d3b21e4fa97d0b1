/* WFDB header (.hea) parsing from a memory buffer. See wfdb.h for the grammar.
 *
 * Defaults follow PhysioNet's WFDB library: a missing sampling frequency is 250 Hz; a missing
 * or zero gain is 200 ADC units per physical unit (WFDB_DEFGAIN: WFDB itself treats an explicit
 * gain of 0 as "uncalibrated, use 200", and so do we; a negative gain is an error); the baseline
 * defaults to the ADC zero; the initial value defaults to the ADC zero; a missing or zero sample
 * count means "as many as the signal files hold". Fields are checked strictly: anything that is
 * not a number where a number belongs is an error naming the file, line, signal and field. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/wfdb.h"

#define WFDB_DEFAULT_FS 250.0
#define WFDB_DEFAULT_GAIN 200.0
#define WFDB_MAX_TOKENS 64
#define WFDB_MAX_SIGNALS 65536
#define WFDB_MAX_SAMPLES (1LL << 48) /* more than 280 trillion samples is not a header, it is noise */

/* One line of the header, split into whitespace-separated tokens (pointers into `buf`). */
typedef struct header_line {
    char buf[4096];
    char *tok[WFDB_MAX_TOKENS];
    const char *start[WFDB_MAX_TOKENS]; /* where each token starts in `text` (for the description) */
    int n_tok;
    const char *text; /* the trimmed line (a copy in `raw`) */
    char raw[4096];
} header_line;

/* Strict integer: the whole string, in [lo, hi]. */
static int parse_ll(const char *s, long long lo, long long hi, long long *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, int *out) {
    long long v;
    if (parse_ll(s, INT_MIN, INT_MAX, &v)) return -1;
    *out = (int)v;
    return 0;
}

/* Strict finite double: the whole string. strtod also takes "nan", "inf" and hex: refuse them. */
static int parse_double(const char *s, double *out) {
    if (!*s) return -1;
    for (const char *p = s; *p; p++)
        if (!(isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+' || *p == 'e' || *p == 'E'))
            return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static void free_record_header(mrm_record *rec) {
    free(rec->signals);
    for (int i = 0; i < rec->n_comments; i++) free(rec->comments[i]);
    free(rec->comments);
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
}

void wfdb_header_extra_free(wfdb_header_extra *extra) {
    if (!extra) return;
    free(extra->signal_line);
    memset(extra, 0, sizeof *extra);
}

/* "Key: value" comments of the Challenge 2020 headers ("#Age: 74", "# Sex: Male"). */
static void parse_comment_fields(mrm_record *rec, const char *c) {
    const char *colon = strchr(c, ':');
    if (!colon) return;
    size_t klen = (size_t)(colon - c);
    while (klen && isspace((unsigned char)c[klen - 1])) klen--;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (klen == 3 && !strncasecmp(c, "age", 3)) {
        long long a;
        if (!parse_ll(v, 0, 200, &a)) rec->age = (int)a;
    } else if (klen == 3 && !strncasecmp(c, "sex", 3)) {
        snprintf(rec->sex, sizeof rec->sex, "%s", v);
    } else if (klen == 2 && !strncasecmp(c, "dx", 2)) {
        snprintf(rec->dx, sizeof rec->dx, "%s", v);
    }
}

static mrm_status add_comment(mrm_record *rec, const char *c, const char *filename, int line, mrm_error *err) {
    while (*c == ' ' || *c == '\t') c++;
    char **grown = realloc(rec->comments, (size_t)(rec->n_comments + 1) * sizeof *grown);
    if (!grown) return mrm_fail(err, MRM_ERR_NOMEM, "%s:%d: out of memory for comments", filename, line);
    rec->comments = grown;
    char *copy = strdup(c);
    if (!copy) return mrm_fail(err, MRM_ERR_NOMEM, "%s:%d: out of memory for comments", filename, line);
    rec->comments[rec->n_comments++] = copy;
    parse_comment_fields(rec, copy);
    return MRM_OK;
}

/* Splits a line (already trimmed, no NUL inside) into tokens. */
static mrm_status split_line(header_line *L, const char *s, size_t n, const char *filename, int line,
                             mrm_error *err) {
    if (n >= sizeof L->buf) return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: line is longer than %zu bytes", filename, line, sizeof L->buf - 1);
    memcpy(L->buf, s, n);
    L->buf[n] = '\0';
    memcpy(L->raw, s, n);
    L->raw[n] = '\0';
    L->text = L->raw;
    L->n_tok = 0;
    char *p = L->buf;
    while (*p) {
        while (*p == ' ' || *p == '\t') *p++ = '\0';
        if (!*p) break;
        if (L->n_tok == WFDB_MAX_TOKENS) break; /* only the description can be this long */
        L->start[L->n_tok] = L->raw + (p - L->buf);
        L->tok[L->n_tok++] = p;
        while (*p && *p != ' ' && *p != '\t') p++;
    }
    return MRM_OK;
}

static mrm_status parse_record_line(mrm_record *rec, wfdb_header_extra *extra, const header_line *L, int n_lines_left,
                                    const char *filename, int line, mrm_error *err) {
    const char *name = L->tok[0];
    if (strchr(name, '/'))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%d: record name: '%s': multi-segment records are not supported",
                        filename, line, name);
    if (strlen(name) >= sizeof rec->name)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record name: longer than %zu bytes", filename, line, sizeof rec->name - 1);
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.' || *p == '~'))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record name: '%s' has a character other than letters, digits, '_', '-', '.'",
                            filename, line, name);
    snprintf(rec->name, sizeof rec->name, "%s", name);
    if (L->n_tok > 6)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: record line has %d fields, at most 6 expected (name, signals, frequency, samples, time, date)",
                        filename, line, L->n_tok);

    long long nsig = 0;
    if (L->n_tok > 1 && parse_ll(L->tok[1], 0, WFDB_MAX_SIGNALS, &nsig))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: number of signals: '%s' is not an integer in [0, %d]", filename, line,
                        L->tok[1], WFDB_MAX_SIGNALS);
    if (nsig > n_lines_left)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: number of signals: %lld declared but only %d lines follow (too few signal lines)",
                        filename, line, nsig, n_lines_left);
    rec->n_signals = (int)nsig;

    rec->fs = WFDB_DEFAULT_FS;
    if (L->n_tok > 2) {
        /* fs[/counter_fs[(base_counter)]] */
        char f[256];
        snprintf(f, sizeof f, "%s", L->tok[2]);
        char *slash = strchr(f, '/');
        if (slash) {
            *slash = '\0';
            char *cf = slash + 1, *paren = strchr(cf, '(');
            double counter_fs, base_counter;
            if (paren) {
                size_t pl = strlen(paren);
                if (pl < 3 || paren[pl - 1] != ')')
                    return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: base counter: '%s' lacks a closing ')'", filename, line, L->tok[2]);
                paren[pl - 1] = '\0';
                *paren = '\0';
                if (parse_double(paren + 1, &base_counter))
                    return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: base counter: '%s' is not a number", filename, line, paren + 1);
            }
            if (parse_double(cf, &counter_fs) || counter_fs <= 0)
                return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: counter frequency: '%s' is not a positive number", filename, line, cf);
        }
        if (parse_double(f, &rec->fs) || rec->fs <= 0)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: sampling frequency: '%s' is not a positive number", filename, line, f);
    }
    rec->n_samples = 0;
    extra->n_samples_given = 0;
    if (L->n_tok > 3) {
        long long ns;
        if (parse_ll(L->tok[3], LLONG_MIN, LLONG_MAX, &ns))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: number of samples: '%s' is not an integer", filename, line, L->tok[3]);
        if (ns < 0 || ns > WFDB_MAX_SAMPLES)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: number of samples: %lld is out of range [0, %lld]", filename, line, ns,
                            WFDB_MAX_SAMPLES);
        rec->n_samples = ns;
        extra->n_samples_given = ns > 0;
    }
    /* Base time and date are kept as text only. WFDB writes "hh:mm:ss dd/mm/yyyy"; the Challenge
     * 2020 headers write "05-Feb-2020 11:39:16": the field with a ':' is taken as the time. */
    for (int i = 4; i < L->n_tok; i++) {
        int is_time = strchr(L->tok[i], ':') != NULL;
        char *dst = is_time ? rec->base_time : rec->base_date;
        if (strlen(L->tok[i]) >= sizeof rec->base_time)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: base %s: '%.40s' is too long", filename, line, is_time ? "time" : "date",
                            L->tok[i]);
        snprintf(dst, sizeof rec->base_time, "%s", L->tok[i]);
    }
    return MRM_OK;
}

/* format[xN][:skew][+offset] */
static mrm_status parse_format(mrm_signal_info *si, const char *tok, const char *filename, int line, int s, mrm_error *err) {
    const char *p = tok;
    long long v = 0;
    int nd = 0;
    while (isdigit((unsigned char)*p) && nd < 6) v = v * 10 + (*p++ - '0'), nd++;
    if (!nd || isdigit((unsigned char)*p))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: format: '%s' is not a format number", filename, line, s, tok);
    si->format = (int)v;
    if (*p == 'x') {
        char *end;
        errno = 0;
        long spf = strtol(p + 1, &end, 10);
        if (end == p + 1 || errno || spf < 1)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: samples per frame: '%s' is not a positive integer", filename,
                            line, s, tok);
        if (spf != 1)
            return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%d: signal %d: samples per frame: %ld (in '%s'): only 1 is supported",
                            filename, line, s, spf, tok);
        p = end;
    }
    if (*p == ':') {
        char *end;
        errno = 0;
        long skew = strtol(p + 1, &end, 10);
        if (end == p + 1 || errno)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: skew: '%s' is not an integer", filename, line, s, tok);
        if (skew != 0)
            return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%d: signal %d: skew: %ld (in '%s'): only 0 is supported", filename,
                            line, s, skew, tok);
        p = end;
    }
    si->byte_offset = 0;
    if (*p == '+') {
        long long off;
        if (parse_ll(p + 1, 0, LLONG_MAX / 4, &off))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: byte offset: '%s' is not a non-negative integer", filename,
                            line, s, p + 1);
        si->byte_offset = off;
        p += strlen(p);
    }
    if (*p)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: format: '%s': unexpected '%s'", filename, line, s, tok, p);
    if (!wfdb_format_supported(si->format))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%d: signal %d: format: %d is not a supported WFDB format "
                        "(8, 16, 24, 32, 61, 80, 160, 212, 310, 311)", filename, line, s, si->format);
    return MRM_OK;
}

/* gain[(baseline)][/units]; has_baseline tells whether "(N)" was given. */
static mrm_status parse_gain(mrm_signal_info *si, const char *tok, int *has_baseline, const char *filename, int line, int s,
                             mrm_error *err) {
    char g[256];
    if (strlen(tok) >= sizeof g)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: gain: field longer than %zu bytes", filename, line, s, sizeof g - 1);
    snprintf(g, sizeof g, "%s", tok);
    char *units = strchr(g, '/');
    if (units) {
        *units++ = '\0';
        if (strlen(units) >= sizeof si->units)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: units: '%s' is longer than %zu bytes", filename, line, s,
                            units, sizeof si->units - 1);
        snprintf(si->units, sizeof si->units, "%s", units);
    }
    char *paren = strchr(g, '(');
    *has_baseline = 0;
    if (paren) {
        size_t pl = strlen(paren);
        if (pl < 3 || paren[pl - 1] != ')')
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: baseline: '%s' is not '(integer)'", filename, line, s, paren);
        paren[pl - 1] = '\0';
        *paren = '\0';
        if (parse_int(paren + 1, &si->baseline))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: baseline: '%s' is not an integer", filename, line, s, paren + 1);
        *has_baseline = 1;
    }
    if (parse_double(g, &si->gain))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: gain: '%s' is not a number", filename, line, s, g);
    if (si->gain < 0)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: gain: '%s' is negative (ADC units per physical unit must be positive)",
                        filename, line, s, g);
    if (si->gain == 0) si->gain = WFDB_DEFAULT_GAIN; /* WFDB: 0 means uncalibrated, use the default */
    return MRM_OK;
}

static mrm_status parse_signal_line(mrm_signal_info *si, const header_line *L, const char *filename, int line, int s,
                                    mrm_error *err) {
    memset(si, 0, sizeof *si);
    if (L->n_tok < 2)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: has %d field(s), at least 2 expected (file name and format)",
                        filename, line, s, L->n_tok);
    if (strlen(L->tok[0]) >= sizeof si->file)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: file name: longer than %zu bytes", filename, line, s, sizeof si->file - 1);
    snprintf(si->file, sizeof si->file, "%s", L->tok[0]);
    if (!strcmp(si->file, "~"))
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s:%d: signal %d: file name: '~' (a null signal) is not supported", filename, line, s);
    if (mrm_path_escapes(si->file))
        return mrm_fail(err, MRM_ERR_FORMAT,
                        "%s:%d: signal %d: file name: '%s' leaves the record's folder (%s); refused", filename, line, s,
                        si->file, si->file[0] == '/' ? "an absolute path" : "a '..' component");
    mrm_status st = parse_format(si, L->tok[1], filename, line, s, err);
    if (st) return st;

    int has_baseline = 0;
    si->gain = WFDB_DEFAULT_GAIN;
    if (L->n_tok > 2 && (st = parse_gain(si, L->tok[2], &has_baseline, filename, line, s, err))) return st;
    if (L->n_tok > 3) {
        long long r;
        if (parse_ll(L->tok[3], 0, 32, &r))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: ADC resolution: '%s' is not an integer in [0, 32]", filename,
                            line, s, L->tok[3]);
        si->adc_res = (int)r;
    }
    if (L->n_tok > 4 && parse_int(L->tok[4], &si->adc_zero))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: ADC zero: '%s' is not an integer", filename, line, s, L->tok[4]);
    si->init_value = si->adc_zero;
    if (L->n_tok > 5) {
        if (parse_int(L->tok[5], &si->init_value))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: initial value: '%s' is not an integer", filename, line, s,
                            L->tok[5]);
        si->has_init_value = 1;
    }
    if (L->n_tok > 6) {
        if (parse_int(L->tok[6], &si->checksum))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: checksum: '%s' is not an integer", filename, line, s, L->tok[6]);
        si->has_checksum = 1;
    }
    if (L->n_tok > 7) {
        long long b;
        if (parse_ll(L->tok[7], 0, INT_MAX, &b))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: block size: '%s' is not a non-negative integer", filename,
                            line, s, L->tok[7]);
        si->block_size = (int)b;
    }
    if (L->n_tok > 8) /* the description is the rest of the line, spaces included */
        snprintf(si->description, sizeof si->description, "%s", L->start[8]);
    if (!has_baseline) si->baseline = si->adc_zero;
    return MRM_OK;
}

static mrm_status parse_lines(const char *text, size_t len, const char *filename, mrm_record *rec, wfdb_header_extra *extra,
                              header_line *L, mrm_error *err) {
    /* Count lines first so a declared signal count can be checked before any allocation. */
    int n_lines = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') n_lines++;
    if (len && text[len - 1] != '\n') n_lines++;

    int line = 0, have_record = 0, n_sig_read = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t e = pos;
        while (e < len && text[e] != '\n') e++;
        line++;
        const char *s = text + pos;
        size_t n = e - pos;
        pos = e + 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
                return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: byte 0x%02x at column %zu: a header is text, this is not",
                                filename, line, c, i + 1);
        }
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        while (n && (*s == ' ' || *s == '\t')) s++, n--;
        if (!n) continue;
        mrm_status st;
        if (*s == '#') {
            char c[4096];
            size_t m = n - 1 < sizeof c - 1 ? n - 1 : sizeof c - 1;
            memcpy(c, s + 1, m);
            c[m] = '\0';
            if ((st = add_comment(rec, c, filename, line, err))) return st;
            continue;
        }
        if ((st = split_line(L, s, n, filename, line, err))) return st;
        if (!have_record) {
            if ((st = parse_record_line(rec, extra, L, n_lines - line, filename, line, err))) return st;
            have_record = 1;
            if (rec->n_signals > 0) {
                rec->signals = calloc((size_t)rec->n_signals, sizeof *rec->signals);
                extra->signal_line = calloc((size_t)rec->n_signals, sizeof *extra->signal_line);
                if (!rec->signals || !extra->signal_line)
                    return mrm_fail(err, MRM_ERR_NOMEM, "%s:%d: out of memory for %d signals", filename, line, rec->n_signals);
            }
        } else if (n_sig_read < rec->n_signals) {
            if ((st = parse_signal_line(&rec->signals[n_sig_read], L, filename, line, n_sig_read + 1, err))) return st;
            extra->signal_line[n_sig_read++] = line;
        } else {
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: unexpected line after the %d signal line(s) the record line declares: '%.40s'",
                            filename, line, rec->n_signals, L->text);
        }
    }
    if (!have_record) return mrm_fail(err, MRM_ERR_FORMAT, "%s: no record line (the file is empty or only comments)", filename);
    if (n_sig_read < rec->n_signals)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: too few signal lines: the record line declares %d signals, the header has %d",
                        filename, line, rec->n_signals, n_sig_read);
    /* Signals sharing a file (consecutive lines) must agree on how it is stored. */
    for (int i = 1; i < rec->n_signals; i++) {
        const mrm_signal_info *a = &rec->signals[i - 1], *b = &rec->signals[i];
        if (strcmp(a->file, b->file)) continue;
        if (a->format != b->format)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: format: %d differs from %d of signal %d in the same file '%s'",
                            filename, extra->signal_line[i], i + 1, b->format, a->format, i, b->file);
        if (a->byte_offset != b->byte_offset)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s:%d: signal %d: byte offset: %lld differs from %lld of signal %d in the same file '%s'",
                            filename, extra->signal_line[i], i + 1, b->byte_offset, a->byte_offset, i, b->file);
    }
    return MRM_OK;
}

mrm_status wfdb_header_parse(const char *text, size_t len, const char *filename, mrm_record *rec, wfdb_header_extra *extra,
                             mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    memset(extra, 0, sizeof *extra);
    if (!filename) filename = "(header)";
    if (!text && len) return mrm_fail(err, MRM_ERR_INVALID, "%s: no text", filename);
    header_line *L = malloc(sizeof *L);
    if (!L) return mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", filename);
    mrm_status st = parse_lines(text, len, filename, rec, extra, L, err);
    free(L);
    if (st) {
        free_record_header(rec);
        wfdb_header_extra_free(extra);
    }
    return st;
}
