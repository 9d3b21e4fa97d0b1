/* NumPy .npy files, format version 1.0, float32 little-endian ('<f4'), C order.
 *
 * Layout: "\x93NUMPY", major 1, minor 0, header length (uint16 LE), then the header: a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces
 * and ended by '\n' so that the data starts at a multiple of 64 bytes; then the raw values. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "io/npy.h"
#include "mrmnet.h"

#define NPY_MAX_NDIM 4
#define NPY_MAX_ELEMENTS (1LL << 40) /* refuse anything absurd before trusting the file size */

/* Builds the header (magic, version, length, dict, padding, '\n') into buf exactly as numpy >= 1.24
 * writes it: the dict, then room for the first dimension to grow to 21 digits, then spaces so that
 * the data starts at a multiple of 64 bytes (a full 64 when already aligned), then '\n'.
 * Returns the header's length, 0 if it does not fit. */
size_t mrm_npy_header_f32(char *buf, size_t bufsz, int ndim, const long long *shape) {
    char dict[1024];
    size_t n = (size_t)snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim && n < sizeof dict; i++)
        n += (size_t)snprintf(dict + n, sizeof dict - n, i ? ", %lld" : "%lld", shape[i]);
    /* a 1-tuple is "(N,)", the empty shape "()" */
    if (n < sizeof dict) n += (size_t)snprintf(dict + n, sizeof dict - n, ndim == 1 ? ",), }" : "), }");
    if (n >= sizeof dict) return 0;
    size_t growth = 0;
    if (ndim > 0) {
        char first[32];
        growth = 21 - (size_t)snprintf(first, sizeof first, "%lld", shape[0]);
    }
    size_t hlen = n + growth + 1;                          /* dict + growth room + '\n' */
    size_t padlen = 64 - ((10 + hlen) % 64);
    size_t total = 10 + hlen + padlen;
    if (total > bufsz || total - 10 > 65535) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', total - 11 - n);
    buf[total - 1] = '\n';
    return total;
}

mrm_status mrm_npy_write_f32(const char *path, const float *data, int ndim, const long long *shape,
                             mrm_error *err) {
    if (ndim < 0 || ndim > 32) return mrm_fail(err, MRM_ERR_INVALID, "%s: ndim %d out of range 0..32", path, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return mrm_fail(err, MRM_ERR_INVALID, "%s: dimension %d is negative (%lld)", path, i, shape[i]);
        if (mrm_mul_size(count, (size_t)shape[i], &count) != 0)
            return mrm_fail(err, MRM_ERR_INVALID, "%s: shape overflows", path);
    }
    if (count > 0 && !data) return mrm_fail(err, MRM_ERR_INVALID, "%s: no data", path);
    char header[2048];
    size_t hlen = mrm_npy_header_f32(header, sizeof header, ndim, shape);
    if (!hlen) return mrm_fail(err, MRM_ERR_INVALID, "%s: header too long", path);
    mrm_atomic_file a;
    FILE *f = mrm_atomic_open(&a, path, err);
    if (!f) return err ? err->code : MRM_ERR_IO;
    int ok = fwrite(header, 1, hlen, f) == hlen;
    /* little-endian host assumed for the payload (x86-64, aarch64) */
    if (ok && count) ok = fwrite(data, sizeof(float), count, f) == count;
    if (!ok) {
        int e = errno;
        mrm_atomic_abort(&a);
        return mrm_fail(err, MRM_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return mrm_atomic_commit(&a, err);
}

/* Finds the value of key `key` in the header dict; returns a pointer after "'key':" and spaces. */
static const char *npy_find_key(const char *dict, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(dict, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\"", key);
        p = strstr(dict, pat);
    }
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

mrm_status mrm_npy_read_f32(const char *path, float **data, int *ndim, long long shape[4], mrm_error *err) {
    *data = NULL;
    *ndim = 0;
    for (int i = 0; i < 4; i++) shape[i] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mrm_fail(err, errno == ENOENT ? MRM_ERR_NOTFOUND : MRM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return mrm_fail(err, MRM_ERR_IO, "%s: not a regular file", path);
    }
    unsigned long long fsize = (unsigned long long)st.st_size;
    mrm_status rc = MRM_OK;
    char *dict = NULL;
    float *out = NULL;
    unsigned char pre[12];
    if (fsize < 10 || fread(pre, 1, 10, f) != 10) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: %llu bytes, too short for a .npy file", path, fsize);
        goto done;
    }
    if (memcmp(pre, "\x93NUMPY", 6) != 0) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: bad magic (not a .npy file)", path);
        goto done;
    }
    unsigned long long hlen, hstart;
    if (pre[6] == 1) {
        hlen = (unsigned long long)pre[8] | ((unsigned long long)pre[9] << 8);
        hstart = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fsize < 12 || fread(pre + 10, 1, 2, f) != 2) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: truncated preamble", path);
            goto done;
        }
        hlen = (unsigned long long)pre[8] | ((unsigned long long)pre[9] << 8) | ((unsigned long long)pre[10] << 16) |
               ((unsigned long long)pre[11] << 24);
        hstart = 12;
    } else {
        rc = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: .npy format version %d.%d not supported", path, pre[6], pre[7]);
        goto done;
    }
    if (hlen > 65536 || hstart + hlen > fsize) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header length %llu goes beyond the file (%llu bytes)", path, hlen, fsize);
        goto done;
    }
    dict = malloc(hlen + 1);
    if (!dict) {
        rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate the header", path);
        goto done;
    }
    if (fread(dict, 1, hlen, f) != hlen) {
        rc = mrm_fail(err, MRM_ERR_IO, "%s: cannot read the header", path);
        goto done;
    }
    dict[hlen] = '\0';
    if (strlen(dict) != hlen) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header contains a NUL byte", path);
        goto done;
    }
    const char *p = npy_find_key(dict, "descr");
    if (!p) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header: no 'descr' key", path);
        goto done;
    }
    if (strncmp(p, "'<f4'", 5) != 0 && strncmp(p, "\"<f4\"", 5) != 0) {
        char d[24] = {0};
        size_t k = 0;
        while (p[k] && p[k] != ',' && p[k] != '}' && k < sizeof d - 1) d[k] = p[k], k++;
        rc = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: header: descr %s is not '<f4' (little-endian float32)", path, d);
        goto done;
    }
    p = npy_find_key(dict, "fortran_order");
    if (!p) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header: no 'fortran_order' key", path);
        goto done;
    }
    if (strncmp(p, "False", 5) != 0) {
        rc = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: header: fortran_order is not False (only C order is read)", path);
        goto done;
    }
    p = npy_find_key(dict, "shape");
    if (!p || *p != '(') {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header: no 'shape' tuple", path);
        goto done;
    }
    p++;
    int nd = 0;
    unsigned long long count = 1;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p)) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape: bad dimension at '%.10s'", path, p);
            goto done;
        }
        if (nd == NPY_MAX_NDIM) {
            rc = mrm_fail(err, MRM_ERR_UNSUPPORTED, "%s: header: shape has more than %d dimensions", path, NPY_MAX_NDIM);
            goto done;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || v > (unsigned long long)NPY_MAX_ELEMENTS) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape: dimension %d is absurd", path, nd);
            goto done;
        }
        shape[nd++] = (long long)v;
        if (v && count > (unsigned long long)NPY_MAX_ELEMENTS / v) {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape is absurd (more than 2^40 elements)", path);
            goto done;
        }
        count *= v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') {
            rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: header: shape: expected ',' or ')' at '%.10s'", path, p);
            goto done;
        }
    }
    unsigned long long need = hstart + hlen + count * 4ULL;
    if (need != fsize) {
        rc = mrm_fail(err, MRM_ERR_FORMAT, "%s: shape needs %llu data bytes but the file has %llu", path, count * 4ULL,
                      fsize - hstart - hlen);
        goto done;
    }
    out = malloc(count ? (size_t)count * sizeof(float) : 1);
    if (!out) {
        rc = mrm_fail(err, MRM_ERR_NOMEM, "%s: cannot allocate %llu floats", path, count);
        goto done;
    }
    if (count && fread(out, sizeof(float), (size_t)count, f) != (size_t)count) {
        rc = mrm_fail(err, MRM_ERR_IO, "%s: cannot read the data", path);
        goto done;
    }
    *data = out;
    out = NULL;
    *ndim = nd;
done:
    if (rc != MRM_OK)
        for (int i = 0; i < 4; i++) shape[i] = 0;
    free(out);
    free(dict);
    fclose(f);
    return rc;
}

mrm_status mrm_check_finite_f32(const char *path, const float *data, int ndim, const long long *shape, mrm_error *err) {
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)(shape[i] > 0 ? shape[i] : 0);
    for (size_t k = 0; k < count; k++) {
        if (isfinite(data[k])) continue;
        char idx[160];
        size_t used = 0, rest = k;
        long long at[8] = {0};
        for (int i = ndim - 1; i >= 0 && i < 8; i--) {
            at[i] = (long long)(rest % (size_t)shape[i]);
            rest /= (size_t)shape[i];
        }
        idx[0] = '\0';
        for (int i = 0; i < ndim && i < 8 && used < sizeof idx; i++)
            used += (size_t)snprintf(idx + used, sizeof idx - used, "%s%lld", i ? ", " : "", at[i]);
        return mrm_fail(err, MRM_ERR_FORMAT, "%s: element [%s] (flat index %zu) is %s; the values must be finite", path, idx, k,
                        isnan(data[k]) ? "nan" : data[k] > 0 ? "inf" : "-inf");
    }
    return MRM_OK;
}
