/* MATLAB files: the v5 records of the original CPSC2018 release and the v4 matrix header of the
 * PhysioNet/CinC Challenge 2020 signal files.
 *
 * MATLAB v5 is read here, not with libmatio: libmatio trusts the sizes a file declares (a corrupt
 * compressed stream left a struct without field storage and crashed the field lookup; files under
 * 1 KB made it allocate gigabytes; a truncated compressed stream was zero-filled and read as
 * millions of samples). The subset CPSC2018 needs is small: a 128-byte header, then data elements
 * (8-byte tag: type and byte count, or a "small" 4-byte element packed into its tag), each variable
 * an miMATRIX (array flags, dimensions, name, then the class's parts; a struct adds the field
 * names and one miMATRIX per element and field), optionally inside an miCOMPRESSED element (a zlib
 * stream, inflated with zlib). Every element is checked to lie inside its parent, a compressed
 * variable is inflated to exactly the size its inner tag declares (at most MAT5_MAX_VARIABLE, the
 * buffer growing only as real output arrives), and a matrix's dimensions must match the bytes of
 * its data before anything is allocated for it. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/wfdb.h"

static const char *const cpsc_leads[12] = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
#define CPSC_FS 500.0

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A v4 matrix header: five little-endian int32 (type MOPT, rows, columns, imaginary flag, name
 * length) then the name. Type 30 = little-endian IEEE, int16, full matrix. */
mrm_status mat_check_v4_header(const char *path, const uint8_t *head, size_t head_len, long long byte_offset, int k,
                               long long n_samples, long long file_size, mrm_error *err) {
    if (head_len < 20) return MRM_OK;
    uint32_t type = le32(head), rows = le32(head + 4), cols = le32(head + 8), imagf = le32(head + 12), namlen = le32(head + 16);
    int looks_v4 = type <= 52 && type % 10 <= 2 && (type / 10) % 10 <= 5 && imagf <= 1 && namlen >= 1 && namlen <= 64;
    if (!looks_v4) return MRM_OK;
    if (20 + (long long)namlen != byte_offset)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB v4 header: the matrix data starts at byte %lld, the WFDB header says +%lld",
                        path, 20 + (long long)namlen, byte_offset);
    if (type != 30 || imagf)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB v4 header: type %u%s, format 16 needs a real little-endian int16 matrix (type 30)",
                        path, type, imagf ? " (complex)" : "");
    if ((int)rows != k)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB v4 header: the matrix has %u rows, the WFDB header names %d signals in it",
                        path, rows, k);
    if ((long long)cols < n_samples)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB v4 header: the matrix has %u columns, the WFDB header says %lld samples",
                        path, cols, n_samples);
    long long need = byte_offset + 2LL * rows * cols;
    if (need > file_size)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB v4 file is truncated: a %u x %u int16 matrix needs %lld bytes, the file has %lld",
                        path, rows, cols, need, file_size);
    return MRM_OK;
}

/* ---- MATLAB v5 -------------------------------------------------------------------------------- */

#define MAT5_MAX_VARIABLE ((size_t)256 << 20) /* the largest variable inflated (a CPSC2018 record: < 8 MB) */
#define MAT5_MAX_FILE ((size_t)1 << 30)
#define MAT5_MAX_DIMS 32
#define MAT5_MAX_FIELDS 4096

enum { /* data types */
    miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7, miDOUBLE = 9,
    miINT64 = 12, miUINT64 = 13, miMATRIX = 14, miCOMPRESSED = 15, miUTF8 = 16, miUTF16 = 17, miUTF32 = 18
};
enum { /* array classes */
    mxSTRUCT = 2, mxCHAR = 4, mxDOUBLE = 6, mxSINGLE = 7, mxINT8 = 8, mxUINT64 = 15
};

typedef struct m5 {
    const char *file; /* for messages */
    int big;          /* big-endian file ('MI') */
} m5;

/* An unsigned integer of `bytes` (1, 2, 4, 8) in the file's byte order. */
static uint64_t m5_uint(const m5 *c, const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[c->big ? bytes - 1 - i : i] << (8 * i);
    return v;
}
static uint32_t m5_u32(const m5 *c, const uint8_t *p) { return (uint32_t)m5_uint(c, p, 4); }

/* Bytes per value of a numeric data type, 0 for others. */
static int m5_type_size(uint32_t type) {
    switch (type) {
    case miINT8: case miUINT8: case miUTF8: return 1;
    case miINT16: case miUINT16: case miUTF16: return 2;
    case miINT32: case miUINT32: case miSINGLE: case miUTF32: return 4;
    case miDOUBLE: case miINT64: case miUINT64: return 8;
    default: return 0;
    }
}

/* Value i of numeric data of a type, as a double. */
static double m5_value(const m5 *c, uint32_t type, const uint8_t *p, size_t i) {
    switch (type) {
    case miINT8: return (int8_t)p[i];
    case miUINT8: return p[i];
    case miINT16: return (int16_t)(uint16_t)m5_uint(c, p + 2 * i, 2);
    case miUINT16: return (uint16_t)m5_uint(c, p + 2 * i, 2);
    case miINT32: return (int32_t)(uint32_t)m5_uint(c, p + 4 * i, 4);
    case miUINT32: return (uint32_t)m5_uint(c, p + 4 * i, 4);
    case miINT64: return (double)(int64_t)m5_uint(c, p + 8 * i, 8);
    case miUINT64: return (double)m5_uint(c, p + 8 * i, 8);
    case miSINGLE: {
        uint32_t b = (uint32_t)m5_uint(c, p + 4 * i, 4);
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    case miDOUBLE: {
        uint64_t b = m5_uint(c, p + 8 * i, 8);
        double d;
        memcpy(&d, &b, 8);
        return d;
    }
    default: return NAN;
    }
}

/* One data element at p, with `avail` bytes left in its parent: its type, data and data bytes, and
 * the bytes it occupies (its data padded to 8 bytes, except a compressed element, a small element
 * (4 bytes of data inside its 8-byte tag), and the last element of its parent, which may end
 * unpadded). -1 when it does not fit. */
static int m5_element(const m5 *c, const uint8_t *p, size_t avail, uint32_t *type, const uint8_t **data, size_t *n,
                      size_t *size) {
    if (avail < 8) return -1;
    uint32_t w = m5_u32(c, p);
    if (w >> 16) { /* small data element */
        *type = w & 0xffff;
        *n = w >> 16;
        *data = p + 4;
        *size = 8;
        return *n <= 4 ? 0 : -1;
    }
    *type = w;
    *n = m5_u32(c, p + 4);
    *data = p + 8;
    if (*n > avail - 8) return -1;
    size_t padded = 8 + ((*n + 7) & ~(size_t)7);
    *size = *type != miCOMPRESSED && padded <= avail ? padded : 8 + *n;
    return 0;
}

/* A matrix (the content of an miMATRIX element), with the parts this reader uses. */
typedef struct m5_matrix {
    int empty;            /* an miMATRIX of 0 bytes (MATLAB's empty field) */
    int cls, complex;
    int ndims;
    uint32_t dims[MAT5_MAX_DIMS];
    size_t numel;
    char name[64];
    uint32_t type;        /* numeric and char classes: the real part's data type, data and bytes */
    const uint8_t *data;
    size_t n;
    size_t field_len;     /* struct: the length of each field name, the names, how many */
    const uint8_t *names;
    int n_fields;
    const uint8_t *rest;  /* struct: the field matrices (numel x n_fields miMATRIX elements) */
    size_t rest_n;
} m5_matrix;

/* Parses the content of an miMATRIX element (p, n bytes); `what` names it in messages. */
static mrm_status m5_matrix_parse(const m5 *c, const uint8_t *p, size_t n, const char *what, m5_matrix *m,
                                  mrm_error *err) {
    memset(m, 0, sizeof *m);
    if (n == 0) {
        m->empty = 1;
        return MRM_OK;
    }
    const char *F = c->file;
    uint32_t type;
    const uint8_t *d;
    size_t dn, sz, pos = 0;
    /* array flags: miUINT32 x 2, the class in the low byte of the first, 0x0800 = complex */
    if (m5_element(c, p, n, &type, &d, &dn, &sz) || type != miUINT32 || dn != 8)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: the array flags are missing or malformed (a 2 x uint32 element)", F, what);
    uint32_t flags = m5_u32(c, d);
    m->cls = (int)(flags & 0xff);
    m->complex = (flags & 0x0800) != 0;
    pos += sz;
    /* dimensions: miINT32, at least two */
    if (m5_element(c, p + pos, n - pos, &type, &d, &dn, &sz) || type != miINT32 || dn % 4 || dn < 8 || dn / 4 > MAT5_MAX_DIMS)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: the dimensions are missing or malformed (2 to %d int32 values)", F, what,
                        MAT5_MAX_DIMS);
    m->ndims = (int)(dn / 4);
    m->numel = 1;
    for (int i = 0; i < m->ndims; i++) {
        int32_t v = (int32_t)m5_u32(c, d + 4 * i);
        if (v < 0) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: dimension %d is negative (%d)", F, what, i + 1, (int)v);
        m->dims[i] = (uint32_t)v;
        if (mrm_mul_size(m->numel, (size_t)v, &m->numel) || m->numel > ((size_t)1 << 40))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: the dimensions overflow", F, what);
    }
    pos += sz;
    /* name: miINT8 (MATLAB names have at most 63 characters) */
    if (m5_element(c, p + pos, n - pos, &type, &d, &dn, &sz) || (type != miINT8 && type != miUINT8))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: the array name is missing or malformed", F, what);
    if (dn >= sizeof m->name) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: array name of %zu bytes (at most 63)", F, what, dn);
    memcpy(m->name, d, dn);
    m->name[dn] = '\0';
    pos += sz;
    if (m->cls == mxSTRUCT) {
        if (m5_element(c, p + pos, n - pos, &type, &d, &dn, &sz) || type != miINT32 || dn != 4)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: the struct's field name length is missing or malformed", F, what);
        uint32_t L = m5_u32(c, d);
        if (L < 1 || L > 64)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: field name length %u out of range [1, 64]", F, what, L);
        m->field_len = L;
        pos += sz;
        if (m5_element(c, p + pos, n - pos, &type, &d, &dn, &sz) || (type != miINT8 && type != miUINT8) || dn % L ||
            dn / L > MAT5_MAX_FIELDS)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: the struct's field names are missing or malformed", F, what);
        m->names = d;
        m->n_fields = (int)(dn / L);
        pos += sz;
        m->rest = p + pos;
        m->rest_n = n - pos;
        /* every field of every element is at least an 8-byte tag: refuse a count the bytes cannot hold */
        size_t cells;
        if (mrm_mul_size(m->numel, (size_t)m->n_fields, &cells) || cells > m->rest_n / 8)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: a struct of %zu element(s) x %d field(s) in %zu bytes", F, what,
                            m->numel, m->n_fields, m->rest_n);
        return MRM_OK;
    }
    if (m->cls == mxCHAR || (m->cls >= mxDOUBLE && m->cls <= mxUINT64)) {
        if (m5_element(c, p + pos, n - pos, &type, &d, &dn, &sz))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: the data element is missing or goes beyond the matrix", F, what);
        int vs = m5_type_size(type);
        if (!vs || (m->cls != mxCHAR && type >= miUTF8))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: data of type %u is not numeric", F, what, type);
        size_t need;
        if (m->cls != mxCHAR && (mrm_mul_size(m->numel, (size_t)vs, &need) || need != dn))
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: %zu values (dimensions) but %zu bytes of %d-byte data", F, what, m->numel,
                            dn, vs);
        m->type = type;
        m->data = d;
        m->n = dn;
    }
    return MRM_OK;
}

/* The field `name` of element 0 of a struct: fills f (f->empty when the field is absent). */
static mrm_status m5_field(const m5 *c, const m5_matrix *s, const char *name, m5_matrix *f, mrm_error *err) {
    memset(f, 0, sizeof *f);
    f->empty = 1;
    size_t pos = 0;
    for (int i = 0; i < s->n_fields; i++) {
        uint32_t type;
        const uint8_t *d;
        size_t dn, sz;
        const uint8_t *fn = s->names + (size_t)i * s->field_len;
        size_t fl = strnlen((const char *)fn, s->field_len);
        char what[96];
        snprintf(what, sizeof what, "%s.%.*s", s->name, (int)(fl < 63 ? fl : 63), (const char *)fn);
        if (m5_element(c, s->rest + pos, s->rest_n - pos, &type, &d, &dn, &sz) || type != miMATRIX)
            return mrm_fail(err, MRM_ERR_FORMAT, "%s: %s: field %d of %d is not a matrix inside the struct", c->file, what, i + 1,
                            s->n_fields);
        pos += sz;
        if (fl == strlen(name) && !memcmp(fn, name, fl)) return m5_matrix_parse(c, d, dn, what, f, err);
    }
    return MRM_OK;
}

/* Inflates a compressed element (z, zn bytes) holding one data element: to exactly the size that
 * element's tag declares, at most MAT5_MAX_VARIABLE; the buffer grows only as output arrives. */
static mrm_status m5_inflate(const m5 *c, const uint8_t *z, size_t zn, long long at, uint8_t **out, size_t *out_n,
                             mrm_error *err) {
    *out = NULL;
    *out_n = 0;
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit(&s) != Z_OK) return mrm_fail(err, MRM_ERR_NOMEM, "%s: zlib: cannot start inflating", c->file);
    size_t cap = 8, total = 0, got = 0;
    uint8_t *buf = malloc(cap);
    mrm_status st = buf ? MRM_OK : mrm_fail(err, MRM_ERR_NOMEM, "%s: out of memory", c->file);
    size_t in_left = zn;
    s.next_in = (Bytef *)(uintptr_t)z;
    int zr = Z_OK;
    while (!st) {
        if (got == cap) {
            if (total == 0) { /* the tag is in: the size of the whole element is known */
                uint32_t w = m5_u32(c, buf);
                if (w >> 16) { /* a small element: its 8 bytes are all there is */
                    total = 8;
                    break;
                }
                total = 8 + (size_t)m5_u32(c, buf + 4);
                if (total > MAT5_MAX_VARIABLE) {
                    st = mrm_fail(err, MRM_ERR_FORMAT, "%s: compressed variable at byte %lld declares %zu bytes, more than the %zu "
                                  "this reader takes", c->file, at, total - 8, MAT5_MAX_VARIABLE);
                    break;
                }
            }
            if (got == total) break;
            size_t ncap = cap < total / 2 ? cap * 2 : total;
            if (ncap < 4096 && total > 4096) ncap = 4096;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                st = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %zu bytes to inflate a variable", c->file, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        if (zr == Z_STREAM_END) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: compressed variable at byte %lld is truncated: its stream ends after %zu of the "
                          "%zu bytes it declares", c->file, at, got, total ? total : (size_t)8);
            break;
        }
        s.next_out = buf + got;
        s.avail_out = (uInt)((cap - got) > UINT_MAX ? UINT_MAX : cap - got);
        uInt chunk = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        s.avail_in = chunk;
        zr = inflate(&s, Z_NO_FLUSH);
        in_left -= chunk - s.avail_in;
        got = cap - s.avail_out;
        if (zr != Z_OK && zr != Z_STREAM_END) {
            if (zr == Z_BUF_ERROR && in_left == 0)
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: compressed variable at byte %lld is truncated: %zu of %zu bytes inflated "
                              "when its %zu compressed bytes end", c->file, at, got, total ? total : (size_t)8, zn);
            else
                st = mrm_fail(err, MRM_ERR_FORMAT, "%s: compressed variable at byte %lld: zlib: %s", c->file, at,
                              s.msg ? s.msg : "corrupt stream");
        }
    }
    inflateEnd(&s);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_n = got;
    return MRM_OK;
}

static const char *m5_class_name(int cls) {
    static const char *const names[] = {"?", "cell", "struct", "object", "char", "sparse", "double", "single", "int8",
                                        "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"};
    return cls >= 0 && cls < 16 ? names[cls] : "?";
}

/* Fills rec from the struct ECG (element 0 of a 1 x 1 struct). */
static mrm_status m5_read_ecg(const m5 *c, const m5_matrix *ecg, mrm_record *rec, mrm_error *err) {
    const char *F = c->file;
    if (ecg->empty || ecg->cls != mxSTRUCT || ecg->ndims != 2 || ecg->numel != 1)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: variable 'ECG' is not a 1 x 1 struct (class %s)", F, m5_class_name(ecg->cls));
    m5_matrix data, age, sex;
    mrm_status st = m5_field(c, ecg, "data", &data, err);
    if (st) return st;
    if (data.empty) return mrm_fail(err, MRM_ERR_FORMAT, "%s: ECG.data: missing", F);
    if (data.ndims != 2 || data.complex || (data.cls != mxDOUBLE && data.cls != mxSINGLE))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: ECG.data: expected a real 2-D double matrix (class %s%s, %d dimensions)", F,
                        m5_class_name(data.cls), data.complex ? ", complex" : "", data.ndims);
    size_t rows = data.dims[0], cols = data.dims[1];
    if (rows != 12 || cols < 1)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: ECG.data: %zu x %zu, expected 12 leads x T samples", F, rows, cols);
    /* m5_matrix_parse checked rows x cols against the data's bytes: the allocation is backed by the file */
    rec->signals = calloc(12, sizeof *rec->signals);
    rec->checks = calloc(12, sizeof *rec->checks);
    rec->data = malloc(rows * cols * sizeof(double));
    if (!rec->signals || !rec->checks || !rec->data)
        return mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate 12 x %zu samples", F, cols);
    rec->n_signals = 12;
    rec->n_samples = (long long)cols;
    rec->fs = CPSC_FS;
    for (size_t s = 0; s < rows; s++) { /* column-major: element (lead, t) at lead + 12 t */
        mrm_signal_info *si = &rec->signals[s];
        si->gain = 1.0;
        snprintf(si->units, sizeof si->units, "mV");
        snprintf(si->description, sizeof si->description, "%s", cpsc_leads[s]);
        rec->checks[s].checksum_ok = -1;
        rec->checks[s].init_value_ok = -1;
        for (size_t t = 0; t < cols; t++) rec->data[s * cols + t] = m5_value(c, data.type, data.data, s + rows * t);
    }
    if ((st = m5_field(c, ecg, "age", &age, err))) return st;
    if (!age.empty && age.data && age.cls >= mxDOUBLE && !age.complex && age.numel >= 1) {
        double a = m5_value(c, age.type, age.data, 0);
        if (isfinite(a) && a >= 0 && a <= 200) rec->age = (int)lround(a);
    }
    if ((st = m5_field(c, ecg, "sex", &sex, err))) return st;
    if (!sex.empty && sex.data && sex.cls == mxCHAR) {
        int w = m5_type_size(sex.type);
        size_t n = w ? sex.n / (size_t)w : 0, m = 0;
        for (size_t i = 0; i < n && m + 1 < sizeof rec->sex; i++) {
            uint64_t ch = m5_uint(c, sex.data + i * (size_t)w, w);
            rec->sex[m++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        rec->sex[m] = '\0';
    }
    return MRM_OK;
}

int mat_cpsc_v5_sniff(const uint8_t *buf, size_t len) {
    if (len < 128 || memcmp(buf, "MATLAB", 6)) return 0;
    if (buf[126] == 'I' && buf[127] == 'M') return buf[124] == 0x00 && buf[125] == 0x01;
    if (buf[126] == 'M' && buf[127] == 'I') return buf[124] == 0x01 && buf[125] == 0x00;
    return 0;
}

mrm_status mat_read_cpsc_v5_mem(mrm_record *rec, const uint8_t *buf, size_t len, const char *filename, int flags,
                                mrm_error *err) {
    (void)flags;
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    const char *F = filename ? filename : "(memory)";
    if (!buf && len) return mrm_fail(err, MRM_ERR_INVALID, "%s: no buffer", F);
    if (len < 128) return mrm_fail(err, MRM_ERR_FORMAT, "%s: %zu bytes, too short for a MATLAB v5 file (128-byte header)", F, len);
    if (memcmp(buf, "MATLAB", 6))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: not a MATLAB v5 file (no 'MATLAB' text header) and no WFDB header beside it", F);
    int le = buf[126] == 'I' && buf[127] == 'M', be = buf[126] == 'M' && buf[127] == 'I';
    if (!le && !be) return mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB header: endian indicator is not 'IM' or 'MI'", F);
    unsigned version = le ? (unsigned)(buf[124] | buf[125] << 8) : (unsigned)(buf[125] | buf[124] << 8);
    if (version != 0x0100)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: MATLAB header: version 0x%04x (only v5 files, version 0x0100, are read)", F,
                        version);
    m5 c = {F, be};
    mrm_status st = MRM_OK;
    size_t pos = 128;
    int index = 0, found = 0;
    while (pos < len && !st && !found) {
        uint32_t type;
        const uint8_t *d;
        size_t dn, sz;
        index++;
        if (m5_element(&c, buf + pos, len - pos, &type, &d, &dn, &sz)) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB data element %d at byte %zu is truncated: it goes beyond the %zu bytes "
                          "of the file", F, index, pos, len);
            break;
        }
        uint8_t *inflated = NULL;
        if (type == miCOMPRESSED) {
            size_t in_n;
            st = m5_inflate(&c, d, dn, (long long)pos, &inflated, &in_n, err);
            if (!st) {
                size_t isz;
                if (m5_element(&c, inflated, in_n, &type, &d, &dn, &isz))
                    st = mrm_fail(err, MRM_ERR_FORMAT, "%s: compressed variable at byte %zu: its element is malformed", F, pos);
            }
        }
        if (!st && type == miMATRIX) {
            m5_matrix m;
            char what[64];
            snprintf(what, sizeof what, "variable %d", index);
            st = m5_matrix_parse(&c, d, dn, what, &m, err);
            if (!st && !strcmp(m.name, "ECG")) {
                found = 1;
                st = m5_read_ecg(&c, &m, rec, err);
            }
        }
        free(inflated);
        pos += sz;
    }
    if (!st && !found) st = mrm_fail(err, MRM_ERR_FORMAT, "%s: no variable 'ECG' (a CPSC2018 record holds a struct ECG)", F);
    if (st) {
        free(rec->signals);
        free(rec->checks);
        free(rec->data);
        memset(rec, 0, sizeof *rec);
        rec->age = -1;
        return st;
    }
    /* The record name: the file's base name without ".mat". */
    const char *base = strrchr(F, '/');
    base = base ? base + 1 : F;
    size_t bl = strlen(base);
    if (bl > 4 && !strcmp(base + bl - 4, ".mat")) bl -= 4;
    snprintf(rec->name, sizeof rec->name, "%.*s", (int)(bl < sizeof rec->name ? bl : sizeof rec->name - 1), base);
    snprintf(rec->format, sizeof rec->format, "matlab-v5");
    return MRM_OK;
}

mrm_status mat_read_cpsc_v5(mrm_record *rec, const char *path, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    char *buf = NULL;
    size_t len = 0;
    mrm_status st = mrm_read_file(path, MAT5_MAX_FILE, &buf, &len, err);
    if (st) return st;
    st = mat_read_cpsc_v5_mem(rec, (const uint8_t *)buf, len, path, 0, err);
    free(buf);
    return st;
}
