/* CSV reader (RFC 4180) and Python dict literals. See csv.h. */
#include "io/csv.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"

#define CSV_MAX_BYTES ((size_t)1 << 31)

void mrm_csv_free(mrm_csv *csv) {
    free(csv->header);
    free(csv->row_line);
    free(csv->buf);
    memset(csv, 0, sizeof *csv);
}

/* A growable array of field pointers. */
typedef struct {
    char **v;
    size_t n, cap;
} ptr_vec;

static int ptr_push(ptr_vec *p, char *s) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        char **v = realloc(p->v, cap * sizeof *v);
        if (!v) return -1;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = s;
    return 0;
}

mrm_status mrm_csv_parse(mrm_csv *csv, const char *name, const char *text, size_t len, mrm_error *err) {
    memset(csv, 0, sizeof *csv);
    snprintf(csv->path, sizeof csv->path, "%s", name);
    if (len > CSV_MAX_BYTES) return mrm_fail(err, MRM_ERR_FORMAT, "%s: file too large", name);
    size_t pos = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) pos = 3; /* UTF-8 byte order mark */
    /* every field's text plus its NUL fits in the bytes it used in the input, plus one at the end */
    csv->buf = malloc(len + 2);
    if (!csv->buf) return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu bytes", name, len + 2);
    char *w = csv->buf;
    ptr_vec fields = {0};
    int *lines = NULL;     /* start line of each record */
    size_t n_rec = 0, cap_rec = 0;
    size_t ncols = 0;      /* fields in the header */
    long line = 1;
    mrm_status rc = MRM_OK;

    while (pos < len) {
        long rec_line = line;
        size_t rec_first = fields.n;
        for (;;) { /* one field */
            char *start = w;
            long field_line = line;
            if (pos < len && text[pos] == '"') {
                pos++;
                for (;;) {
                    if (pos >= len) {
                        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: unbalanced quote: the quoted field starting here is never closed",
                                      name, field_line);
                        goto fail;
                    }
                    char c = text[pos];
                    if (c == '"') {
                        if (pos + 1 < len && text[pos + 1] == '"') {
                            *w++ = '"';
                            pos += 2;
                            continue;
                        }
                        pos++;
                        break;
                    }
                    if (c == '\0') {
                        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: NUL byte inside a field", name, line);
                        goto fail;
                    }
                    if (c == '\n') line++;
                    *w++ = c;
                    pos++;
                }
                if (pos < len && text[pos] != ',' && text[pos] != '\n' && !(text[pos] == '\r' && pos + 1 < len && text[pos + 1] == '\n') &&
                    !(text[pos] == '\r' && pos + 1 == len)) {
                    rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: unexpected character '%c' after a closing quote", name, line,
                                  isprint((unsigned char)text[pos]) ? text[pos] : '?');
                    goto fail;
                }
            } else {
                while (pos < len && text[pos] != ',' && text[pos] != '\n') {
                    char c = text[pos];
                    if (c == '\r' && (pos + 1 == len || text[pos + 1] == '\n')) break;
                    if (c == '"') {
                        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: quote inside an unquoted field", name, line);
                        goto fail;
                    }
                    if (c == '\0') {
                        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: NUL byte in the file (not a text file?)", name, line);
                        goto fail;
                    }
                    *w++ = c;
                    pos++;
                }
            }
            *w++ = '\0';
            if (ptr_push(&fields, start) != 0) {
                rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
                goto fail;
            }
            if (pos < len && text[pos] == ',') {
                pos++;
                continue;
            }
            /* end of the record */
            if (pos < len && text[pos] == '\r') pos++;
            if (pos < len && text[pos] == '\n') {
                pos++;
                line++;
            }
            break;
        }
        size_t nf = fields.n - rec_first;
        if (nf == 1 && fields.v[rec_first][0] == '\0') { /* a blank line */
            fields.n = rec_first;
            continue;
        }
        if (n_rec == 0) {
            ncols = nf;
        } else if (nf != ncols) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:%ld: row has %zu fields, the header has %zu", name, rec_line, nf, ncols);
            goto fail;
        }
        if (n_rec == cap_rec) {
            size_t cap = cap_rec ? cap_rec * 2 : 256;
            int *l = realloc(lines, cap * sizeof *l);
            if (!l) {
                rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", name);
                goto fail;
            }
            lines = l;
            cap_rec = cap;
        }
        if (n_rec >= INT_MAX - 1 || rec_line > INT_MAX) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: too many rows", name);
            goto fail;
        }
        lines[n_rec++] = (int)rec_line;
    }
    if (n_rec == 0) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s:1: empty file: no header row", name);
        goto fail;
    }
    csv->n_cols = (int)ncols;
    csv->n_rows = (int)(n_rec - 1);
    csv->header = fields.v; /* header fields first, then the cells */
    csv->cells = fields.v + ncols;
    csv->row_line = lines;
    if (csv->n_rows > 0) memmove(lines, lines + 1, (size_t)csv->n_rows * sizeof *lines);
    return MRM_OK;
fail:
    free(fields.v);
    free(lines);
    free(csv->buf);
    memset(csv, 0, sizeof *csv);
    return rc;
}

mrm_status mrm_csv_read(mrm_csv *csv, const char *path, mrm_error *err) {
    memset(csv, 0, sizeof *csv);
    char *text;
    size_t len;
    mrm_status rc = mrm_read_file(path, CSV_MAX_BYTES, &text, &len, err);
    if (rc != MRM_OK) return rc;
    rc = mrm_csv_parse(csv, path, text, len, err);
    free(text);
    return rc;
}

int mrm_csv_col(const mrm_csv *csv, const char *name) {
    for (int i = 0; i < csv->n_cols; i++)
        if (!strcmp(csv->header[i], name)) return i;
    return -1;
}

mrm_status mrm_csv_require_col(const mrm_csv *csv, const char *name, int *col, mrm_error *err) {
    *col = mrm_csv_col(csv, name);
    if (*col < 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s:1: no column '%s' in the header", csv->path, name);
    return MRM_OK;
}

int mrm_parse_double(const char *s, double *out) {
    while (*s == ' ' || *s == '\t') s++;
    if (!(isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.')) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE) return -1;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

int mrm_parse_long(const char *s, long *out) {
    while (*s == ' ' || *s == '\t') s++;
    if (!(isdigit((unsigned char)*s) || *s == '-' || *s == '+')) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno == ERANGE) return -1;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

int mrm_parse_integer(const char *s, long *out) {
    if (mrm_parse_long(s, out) == 0) return 0;
    double v;
    /* an integral float such as "5.0" (pandas writes them): range-checked before the conversion,
     * which is undefined behaviour in C for a value a long cannot hold ("1e300") */
    if (mrm_parse_double(s, &v) != 0 || !(v >= -9007199254740992.0 && v <= 9007199254740992.0) || v != floor(v)) return -1;
    *out = (long)v;
    return 0;
}

mrm_status mrm_parse_dict_literal(const char *text, mrm_dict_entry *entries, int max_entries, int *n,
                                  mrm_error *err) {
    *n = 0;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (*p != '{') return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': does not start with '{'", text);
    p++;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (*p == '}') {
            p++;
            break;
        }
        char q = *p;
        if (q != '\'' && q != '"')
            return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': expected a quoted key at offset %ld", text, (long)(p - text));
        p++;
        const char *k = p;
        while (*p && *p != q) {
            if (*p == '\\') return mrm_fail(err, MRM_ERR_UNSUPPORTED, "dict literal '%.40s': escapes in keys are not supported", text);
            p++;
        }
        if (!*p) return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': unterminated key", text);
        size_t klen = (size_t)(p - k);
        if (klen == 0 || klen >= sizeof entries[0].key)
            return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': key of %zu characters (1..%zu allowed)", text, klen,
                            sizeof entries[0].key - 1);
        p++;
        while (isspace((unsigned char)*p)) p++;
        if (*p != ':') return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': expected ':' after key '%.*s'", text, (int)klen, k);
        p++;
        while (isspace((unsigned char)*p)) p++;
        if (!(isdigit((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.'))
            return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': value of '%.*s' is not a number", text, (int)klen, k);
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno == ERANGE)
            return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': value of '%.*s' is not a number", text, (int)klen, k);
        p = end;
        int idx = -1;
        for (int i = 0; i < *n; i++)
            if (strlen(entries[i].key) == klen && !memcmp(entries[i].key, k, klen)) idx = i;
        if (idx < 0) {
            if (*n >= max_entries) return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': more than %d keys", text, max_entries);
            idx = (*n)++;
            memcpy(entries[idx].key, k, klen);
            entries[idx].key[klen] = '\0';
        }
        entries[idx].value = v;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') {
            p++;
            break;
        }
        return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': expected ',' or '}' at offset %ld", text, (long)(p - text));
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p) return mrm_fail(err, MRM_ERR_FORMAT, "dict literal '%.40s': text after the closing '}'", text);
    return MRM_OK;
}
