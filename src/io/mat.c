/* MATLAB files: the v5 records of the original CPSC2018 release (read with libmatio) and the
 * v4 matrix header of the PhysioNet/CinC Challenge 2020 signal files (checked by hand). */
#include <math.h>
#include <matio.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
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

/* matio reports problems through a log function that prints by default; the library must not
 * print, so it is replaced, once and for all, by one that drops the message (the error reaches
 * the caller through matio's return values). */
static void matio_silent(int level, char *msg) {
    (void)level;
    (void)msg;
}
static pthread_once_t matio_log_once = PTHREAD_ONCE_INIT;
static void matio_log_setup(void) { Mat_LogInitFunc("mrmnet", matio_silent); }

/* The first element of a real numeric matrix as a double; -1 if it has none. */
static int numeric_first(const matvar_t *v, double *out) {
    if (!v || !v->data || v->isComplex || v->nbytes == 0) return -1;
    const void *d = v->data;
    switch (v->data_type) {
    case MAT_T_DOUBLE: if (v->nbytes < 8) return -1; *out = *(const double *)d; return 0;
    case MAT_T_SINGLE: if (v->nbytes < 4) return -1; *out = *(const float *)d; return 0;
    case MAT_T_INT8: *out = *(const int8_t *)d; return 0;
    case MAT_T_UINT8: *out = *(const uint8_t *)d; return 0;
    case MAT_T_INT16: if (v->nbytes < 2) return -1; *out = *(const int16_t *)d; return 0;
    case MAT_T_UINT16: if (v->nbytes < 2) return -1; *out = *(const uint16_t *)d; return 0;
    case MAT_T_INT32: if (v->nbytes < 4) return -1; *out = *(const int32_t *)d; return 0;
    case MAT_T_UINT32: if (v->nbytes < 4) return -1; *out = *(const uint32_t *)d; return 0;
    default: return -1;
    }
}

/* A char matrix as ASCII text (other characters become '?'). */
static void char_text(const matvar_t *v, char *out, size_t outsz) {
    out[0] = '\0';
    if (!v || !v->data || v->class_type != MAT_C_CHAR || outsz == 0) return;
    size_t width = v->data_type == MAT_T_UINT16 || v->data_type == MAT_T_UTF16 || v->data_type == MAT_T_INT16 ? 2 : 1;
    size_t n = v->nbytes / width, m = 0;
    for (size_t i = 0; i < n && m + 1 < outsz; i++) {
        unsigned c = width == 2 ? ((const uint16_t *)v->data)[i] : ((const uint8_t *)v->data)[i];
        out[m++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[m] = '\0';
}

static mrm_status check_v5_preamble(const char *path, mrm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mrm_fail(err, MRM_ERR_NOTFOUND, "%s: cannot open", path);
    uint8_t h[128];
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    if (got < sizeof h)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: %zu bytes, too short for a MATLAB v5 file (128-byte header)", path, got);
    if (memcmp(h, "MATLAB", 6))
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: not a MATLAB v5 file (no 'MATLAB' text header) and no WFDB header beside it", path);
    int le = h[126] == 'I' && h[127] == 'M', be = h[126] == 'M' && h[127] == 'I';
    unsigned version = le ? (unsigned)(h[124] | h[125] << 8) : (unsigned)(h[125] | h[124] << 8);
    if (!le && !be)
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB header: endian indicator is not 'IM' or 'MI'", path);
    if (version != 0x0100)
        return mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: MATLAB header: version 0x%04x (only v5 files, version 0x0100, are read)", path,
                        version);
    return MRM_OK;
}

/* Walks the top-level data elements (8-byte tag: type, byte count; then the data, padded to 8
 * bytes unless compressed) and checks that each lies inside the file: libmatio reads a truncated
 * compressed variable without complaint, zero-filling what is missing. */
static mrm_status check_v5_elements(const char *path, mrm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mrm_fail(err, MRM_ERR_NOTFOUND, "%s: cannot open", path);
    uint8_t h[128];
    mrm_status st = MRM_OK;
    if (fread(h, 1, sizeof h, f) != sizeof h || fseeko(f, 0, SEEK_END)) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_IO, "%s: cannot read", path);
    }
    long long size = (long long)ftello(f), pos = 128;
    int big = h[126] == 'M';
    int n_elements = 0;
    while (pos < size && !st) {
        uint8_t tag[8];
        if (size - pos < 8 || fseeko(f, (off_t)pos, SEEK_SET) || fread(tag, 1, 8, f) != 8) {
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB data element at byte %lld: truncated tag (file has %lld bytes)", path,
                          pos, size);
            break;
        }
        uint32_t type = big ? (uint32_t)tag[0] << 24 | (uint32_t)tag[1] << 16 | (uint32_t)tag[2] << 8 | tag[3] : le32(tag);
        uint32_t nbytes = big ? (uint32_t)tag[4] << 24 | (uint32_t)tag[5] << 16 | (uint32_t)tag[6] << 8 | tag[7] : le32(tag + 4);
        long long len;
        if (type >> 16) /* small data element: 4 bytes of data inside the tag */
            len = 8;
        else if (type == 15) /* miCOMPRESSED */
            len = 8 + (long long)nbytes;
        else
            len = 8 + (((long long)nbytes + 7) & ~7LL);
        if (pos + len > size && !(type != 15 && pos + 8 + (long long)nbytes == size))
            st = mrm_fail(err, MRM_ERR_FORMAT, "%s: MATLAB data element %d at byte %lld is truncated: it declares %u bytes, the file "
                          "has %lld after its tag", path, n_elements + 1, pos, nbytes, size - pos - 8);
        pos += len;
        n_elements++;
    }
    fclose(f);
    return st;
}

mrm_status mat_read_cpsc_v5(mrm_record *rec, const char *path, mrm_error *err) {
    memset(rec, 0, sizeof *rec);
    rec->age = -1;
    mrm_status st = check_v5_preamble(path, err);
    if (!st) st = check_v5_elements(path, err);
    if (st) return st;
    pthread_once(&matio_log_once, matio_log_setup);
    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (!mat) return mrm_fail(err, MRM_ERR_FORMAT, "%s: libmatio cannot open it as a MATLAB file", path);
    matvar_t *ecg = Mat_VarRead(mat, "ECG");
    matvar_t *data = NULL;
    if (!ecg) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: no readable variable 'ECG' (a CPSC2018 record holds a struct ECG)", path);
        goto done;
    }
    if (ecg->class_type != MAT_C_STRUCT || ecg->rank != 2 || ecg->dims[0] * ecg->dims[1] != 1) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: variable 'ECG' is not a 1 x 1 struct", path);
        goto done;
    }
    data = Mat_VarGetStructFieldByName(ecg, "data", 0);
    if (!data) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: ECG.data: missing", path);
        goto done;
    }
    if (data->rank != 2 || data->isComplex || !(data->class_type == MAT_C_DOUBLE && data->data_type == MAT_T_DOUBLE)) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: ECG.data: expected a real 2-D double matrix (class %d, rank %d)", path,
                      (int)data->class_type, data->rank);
        goto done;
    }
    size_t rows = data->dims[0], cols = data->dims[1];
    if (rows != 12 || cols < 1 || cols > (size_t)1 << 40) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: ECG.data: %zu x %zu, expected 12 leads x T samples", path, rows, cols);
        goto done;
    }
    if (!data->data || data->nbytes < rows * cols * sizeof(double)) {
        st = mrm_fail(err, MRM_ERR_FORMAT, "%s: ECG.data: holds %zu bytes, a 12 x %zu double matrix needs %zu", path,
                      data->nbytes, cols, rows * cols * sizeof(double));
        goto done;
    }
    rec->n_signals = 12;
    rec->n_samples = (long long)cols;
    rec->fs = CPSC_FS;
    rec->signals = calloc(12, sizeof *rec->signals);
    rec->checks = calloc(12, sizeof *rec->checks);
    rec->data = malloc(rows * cols * sizeof(double));
    if (!rec->signals || !rec->checks || !rec->data) {
        st = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate 12 x %zu samples", path, cols);
        goto done;
    }
    const double *v = data->data; /* column-major: element (lead, t) at lead + 12 t */
    for (size_t s = 0; s < rows; s++) {
        mrm_signal_info *si = &rec->signals[s];
        si->gain = 1.0;
        snprintf(si->units, sizeof si->units, "mV");
        snprintf(si->description, sizeof si->description, "%s", cpsc_leads[s]);
        rec->checks[s].checksum_ok = -1;
        rec->checks[s].init_value_ok = -1;
        for (size_t t = 0; t < cols; t++) rec->data[s * cols + t] = v[s + rows * t];
    }
    double age;
    if (!numeric_first(Mat_VarGetStructFieldByName(ecg, "age", 0), &age) && isfinite(age) && age >= 0 && age <= 200)
        rec->age = (int)lround(age);
    char_text(Mat_VarGetStructFieldByName(ecg, "sex", 0), rec->sex, sizeof rec->sex);
    /* The record name: the file's base name without ".mat". */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(rec->name, sizeof rec->name, "%.*s", (int)(strlen(base) > 4 ? strlen(base) - 4 : strlen(base)), base);
done:
    if (ecg) Mat_VarFree(ecg);
    Mat_Close(mat);
    if (st) {
        free(rec->signals);
        free(rec->checks);
        free(rec->data);
        memset(rec, 0, sizeof *rec);
        rec->age = -1;
    }
    return st;
}
